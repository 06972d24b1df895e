/*
 * codec_int.h: what the codec's own files share (codec.c: schemas and lifetime; codec_encode.c:
 * envelope and payload to Avro; codec_decode.c: the body walk and Avro to event). Not for
 * callers: they use codec.h.
 */
#ifndef LIVEFLOW_CODEC_INT_H
#define LIVEFLOW_CODEC_INT_H

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

struct codec_plan;

#define PATH_MAX_LEN 160

enum envelope_field {
        FIELD_EVENT_ID,
        FIELD_VENDOR,
        FIELD_EVENT_TYPE,
        FIELD_STREAM_ID,
        FIELD_ANCHOR_ID,
        FIELD_ROOM_ID,
        FIELD_EVENT_TIME,
        FIELD_RECEIVE_TIME,
        FIELD_TRACE_ID,
        FIELD_RAW,
        FIELD_PAYLOAD,
        FIELD_COUNT
};

extern const char *const codec_field_names[FIELD_COUNT];

/* The envelope fields carried as strings (the last three nullable). */
#define CODEC_STRING_FIELDS 7
extern const enum envelope_field codec_string_fields[CODEC_STRING_FIELDS];

/*
 * A schema records may have been written with: the current one, or a released one kept under
 * schemas/history/. A historic body is read through avro-c's resolved writer, an instance of
 * the historic schema that sets what it reads into the codec's value of the current schema
 * (Avro schema resolution: union branches matched by name, fields by name).
 */
struct writer_schema {
        char *name; /* "event" or "history/event-v1", for messages */
        uint64_t fingerprint;
        avro_schema_t schema;
        avro_value_iface_t *resolver; /* NULL for the current schema */
        avro_value_t resolved;        /* wraps the codec's value; unused for the current one */
};

struct codec {
        avro_schema_t schema;
        avro_value_iface_t *iface;
        avro_value_t value; /* reused by every encode and decode */
        avro_reader_t reader;
        avro_writer_t writer;
        size_t field_index[FIELD_COUNT];
        uint64_t fingerprint;
        struct writer_schema *writers; /* [0] the current schema, then schemas/history/ */
        size_t n_writers;
        struct codec_plan *plan; /* codec_write.c's; NULL when it cannot describe the schema */
};

/* The envelope field f of the codec's value. @returns avro-c's result (0 done). */
static inline int codec_field(struct codec *c, enum envelope_field f, avro_value_t *out)
{
        return avro_value_get_by_index(&c->value, c->field_index[f], out, NULL);
}

/** @brief How a JSON value of this Avro type is spelled, for "expected ..." errors (both writers).
 */
const char *codec_json_spelling(avro_type_t type);

#define PLAN_MAX_BRANCHES 4

/* One field's type: a primitive, or a union of primitives (type AVRO_UNION). */
struct plan_field {
        const char *name; /* borrowed from the codec's schema */
        avro_type_t type;
        size_t n_branches;
        avro_type_t branches[PLAN_MAX_BRANCHES];
};

struct plan_record {
        const char *name; /* the short name callers pass ("StreamEnd") */
        int branch;       /* its index in the payload union */
        size_t n_fields;
        struct plan_field *fields;
};

/* What codec_write.c writes where and codec_read.c reads, for the current schema. */
struct codec_plan {
        size_t n_envelope;
        enum envelope_field order[FIELD_COUNT]; /* the envelope's fields in schema order */
        struct plan_field envelope[FIELD_COUNT];
        int payload_null_branch; /* -1 when the payload cannot be null */
        size_t n_records;
        struct plan_record *records;
        size_t last_record; /* the payload record written last (tried first) */
        unsigned char *buf; /* the reused output buffer */
        size_t len, cap;
        bool is_out_of_memory;
};

/*
 * codec_write.c: the plan of what codec_encode_direct() writes where, made from c->schema
 * (c->plan stays NULL for a schema it cannot describe). @returns 0, or -1 when out of memory.
 */
int codec_plan_new(struct codec *c, char *errstr, size_t errstr_size);
void codec_plan_destroy(struct codec_plan *plan);

/**
 * @brief codec_read.c: a body of the current schema (len bytes after the single-object header)
 * read by the plan into ev (zeroed first). @returns 0, or -1 with ev left empty when the body is
 * not one the plan reads whole and clean (corrupt, truncated, a value jansson refuses, out of
 * memory): codec_decode() then takes the checked avro-c path, which names what is wrong.
 */
int codec_read_event(const struct codec_plan *plan, const unsigned char *body, size_t len,
                     struct event *ev);

/**
 * @brief codec_decode() through avro-c alone, after the body walk: the reference
 * codec_read_event() is held to (tests). Same contract as codec_decode().
 */
int codec_decode_avro_c(struct codec *c, const void *data, size_t len, struct event *ev,
                        char *errstr, size_t errstr_size);

/** @brief The writer schema of fingerprint fp, or NULL when the codec knows none. */
struct writer_schema *codec_writer_schema(struct codec *c, uint64_t fp);

#endif
