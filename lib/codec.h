/* codec.h: the event envelope (schemas/event.avsc) to and from Avro single-object encoding. */
#ifndef LIVEFLOW_CODEC_H
#define LIVEFLOW_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Opaque; holds the parsed schema and one reusable Avro value. NOT thread-safe: one per thread. */
struct codec;

/* Input to codec_encode(). Every pointer is borrowed for the duration of the call. */
struct envelope {
        const char *event_id;   /* required, non-empty */
        const char *vendor;     /* required, non-empty: tencent, srs, internal, admin */
        const char *event_type; /* required, non-empty: stream.begin, reward, ... */
        const char *stream_id;  /* NULL -> Avro null */
        const char *anchor_id;  /* NULL -> Avro null */
        const char *room_id;    /* NULL -> Avro null */
        int64_t event_time_ms;
        int64_t receive_time_ms;
        const char *trace_id; /* required, non-empty */
        const void *raw;      /* the vendor's body as received; may be NULL when raw_len is 0 */
        size_t raw_len;
};

/* Output of codec_decode(). Owns everything it points to; event_fini() frees it. */
struct event {
        char *event_id;
        char *vendor;
        char *event_type;
        char *stream_id; /* NULL when null */
        char *anchor_id; /* NULL when null */
        char *room_id;   /* NULL when null */
        char *trace_id;
        int64_t event_time_ms;
        int64_t receive_time_ms;
        void *raw; /* raw_len bytes, followed by a NUL that raw_len does not count */
        size_t raw_len;
        char *payload_name; /* e.g. "StreamBegin"; NULL when the payload is null */
        json_t *payload;    /* the payload's fields, null fields as json null; NULL when none */
};

/**
 * @brief Parses the embedded "event" schema and computes its CRC-64-AVRO fingerprint.
 * @returns a codec the caller destroys with codec_destroy(), or NULL with the reason in errstr.
 */
struct codec *codec_new(char *errstr, size_t errstr_size);

/** @brief Frees the codec; NULL is fine. */
void codec_destroy(struct codec *c);

/** @brief The fingerprint written into every encoding's header (the current schema's). */
uint64_t codec_fingerprint(const struct codec *c);

/**
 * @brief Encodes one event as C3 01, the 8-byte little-endian fingerprint, then the Avro body.
 * @param payload_name the short name of a record of the payload union ("StreamEnd"), or NULL
 *        for a null payload (payload must then be NULL or json null).
 * @param payload a JSON object whose keys are fields of that record: integers for int and
 *        long, strings for string, true/false for boolean; a nullable field may be json null
 *        or absent. Unknown keys, wrong types and missing required fields are errors that
 *        name the field ("payload.StreamEnd.close_method: expected integer"). NULL is read as
 *        an empty object. Strings (envelope and payload) must be UTF-8 without NUL bytes.
 * @param out receives a malloc'd buffer of *out_len bytes that the caller frees (or hands to
 *        librdkafka with RD_KAFKA_MSG_F_FREE). Untouched on error.
 * @returns 0 on success, -1 with the reason in errstr.
 */
__attribute__((warn_unused_result)) int
codec_encode(struct codec *c, const struct envelope *env, const char *payload_name,
             const json_t *payload, void **out, size_t *out_len, char *errstr, size_t errstr_size);

struct payload;

/**
 * @brief codec_encode(), written by liveflow's own Avro writer into the codec's reused buffer
 * and copied out: the same bytes and the same refusals, at a fraction of the cost. The payload
 * comes as fields (lib/payload.h, each text checked to be UTF-8 without NUL) or as JSON (as
 * for codec_encode()); at most one of the two is non-NULL, and both NULL is an empty record
 * (or a null payload when payload_name is NULL). For a schema its plan cannot describe it
 * goes through codec_encode(). Ownership of *out as for codec_encode().
 * @returns 0, or -1 with the reason in errstr.
 */
__attribute__((warn_unused_result)) int
codec_encode_direct(struct codec *c, const struct envelope *env, const char *payload_name,
                    const struct payload *fields, const json_t *payload, void **out,
                    size_t *out_len, char *errstr, size_t errstr_size);

/**
 * @brief Decodes one single-object encoding into ev, which the caller later passes to
 * event_fini(). The body may be written with schemas/event.avsc or with any released schema
 * kept in schemas/history/ (found by the header's fingerprint); it reads as the current
 * schema either way (Avro schema resolution). Safe on any bytes: the body is checked against the
 * schema (every length within the input, union branches in range, strings UTF-8 without NUL,
 * nothing left over) before avro-c reads it.
 * @returns 0 on success; -1 with the reason in errstr (too short, bad magic, unknown
 * fingerprint in hex, truncated or corrupt body), ev then zeroed and owning nothing.
 */
__attribute__((warn_unused_result)) int codec_decode(struct codec *c, const void *data, size_t len,
                                                     struct event *ev, char *errstr,
                                                     size_t errstr_size);

/** @brief Frees what ev owns and zeroes it; safe on a zeroed or already finished event. */
void event_fini(struct event *ev);

/**
 * @brief Whether s[0..n) is RFC 3629 UTF-8 without NUL (no overlong forms, surrogates or code
 * points past U+10FFFF): what an Avro string must be. @returns 1 or 0.
 */
int codec_is_clean_utf8(const unsigned char *s, size_t n);

#endif
