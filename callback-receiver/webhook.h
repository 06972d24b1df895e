/* webhook.h: what a vendor module makes of one callback, handed to the receiver to publish. */
#ifndef LIVEFLOW_RECEIVER_WEBHOOK_H
#define LIVEFLOW_RECEIVER_WEBHOOK_H

#include <jansson.h>
#include <stdint.h>

#include "codec.h"
#include "payload.h"

struct sockaddr;
struct anchor_answer;

#define WEBHOOK_EVENT_ID_LEN 64 /* lowercase hex SHA-256 */

/*
 * One accepted callback, end to end: a vendor module fills it, the receiver encodes it into
 * value, delivery produces it and the spool keeps it. Zero it before the vendor module fills
 * it, and release it with webhook_event_fini(). The const char pointers are static strings
 * of the vendor module (or borrowed, see trace_id); the char pointers, the payload and the
 * value are owned. An event read back from the spool borrows everything and is not finished.
 */
struct webhook_event {
        char event_id[WEBHOOK_EVENT_ID_LEN + 1];
        const char *vendor;     /* "tencent" */
        const char *event_type; /* "stream.begin", ..., "other" */
        const char *topic;      /* "live.stream", "live.other", ... */
        const char
                *payload_name;  /* a payload record of schemas/event.avsc, or NULL (null payload) */
        json_t *payload;        /* that record's fields; NULL with a null payload */
        struct payload *fields; /* or the same as fields without jansson (the Tencent module's);
                                   at most one of payload and fields is set */
        char *stream_id;        /* NULL when the callback names no stream */
        char *anchor_id;        /* NULL when unknown */
        char *room_id;          /* NULL when unknown */
        const char *key;        /* the Kafka key: borrows one of the ids above; NULL for none */
        int64_t event_time_ms;  /* the vendor's event time, or the receive time */
        char *raw;              /* the envelope's raw text when not the body (a GET's query as
                                   JSON); NULL: the request body */
        size_t raw_len;
        /* Set by the receiver, not the vendor module: */
        const char *trace_id; /* borrowed from the request */
        void *value;          /* the encoded Avro value (malloc'd), NULL until encoded */
        size_t value_len;
};

/*
 * A request that carries several events (POST /v1/events): items in body order, each event
 * with its own raw text (the envelope's raw), owned. Release it with webhook_batch_fini().
 */
struct webhook_batch_item {
        struct webhook_event ev;
        char *raw;
        size_t raw_len;
};

struct webhook_batch {
        struct webhook_batch_item *items;
        size_t n;
};

/** @brief Frees what b owns and zeroes it; safe on a zeroed batch. */
void webhook_batch_fini(struct webhook_batch *b);

/* What webhook_request_lookup() looks up. */
enum webhook_lookup {
        WEBHOOK_HEADER, /* a request header, by case-insensitive name */
        WEBHOOK_QUERY,  /* a query-string argument, URL-decoded */
};

/*
 * One request as a vendor module sees it, independent of the HTTP server (so the modules
 * are tested and fuzzed without one). Everything is borrowed for the call.
 */
struct webhook_request {
        const char *body; /* the exact bytes received (not NUL-terminated) */
        size_t len;
        int64_t now_ms;       /* receive time, Unix ms */
        const char *path_arg; /* what follows the route's path + "/" (ROUTE_SUBPATH), else "" */
        const char *trace_id; /* the request's trace id, for logs */
        const struct sockaddr *client_addr; /* the peer's address; NULL when unknown */
        const char *method;                 /* "GET", "POST"; NULL when unknown (tests) */
        /* An anchor lookup done before map, off the HTTP thread (vendor.h lookup_start); NULL:
           map looks the anchor up itself. */
        const struct anchor_answer *anchor_answer;
        /* Returns the value or NULL when absent; the value lives as long as the request. */
        const char *(*lookup)(void *ctx, enum webhook_lookup kind, const char *name);
        void *ctx;
};

/** @brief A header of req (case-insensitive name) or NULL. */
const char *webhook_header(const struct webhook_request *req, const char *name);

/** @brief A query argument of req or NULL. */
const char *webhook_query(const struct webhook_request *req, const char *name);

/*
 * Why a callback was refused. status is the HTTP status to answer (400, 401, 503, ...);
 * message names the field or the check that failed and is safe to return to the caller.
 * A status of 200 means "accepted already": a replay of a request that was acknowledged
 * before, answered 200 {"code":0} without producing a second event.
 */
struct webhook_verdict {
        unsigned int status;
        const char
                *auth_failure; /* "missing", "mismatch" or "expired" for a signature; else NULL */
        char message[200];
};

/**
 * @brief Measures ev against the column limits (lib/field_limits.h): its stream_id, anchor_id
 * and room_id, and every text of its payload whose name has a limit there (each tag of a
 * "tags" list), in characters, as the utf8mb4 columns count them. An event that passes can
 * be stored; one that does not must not get a 200. prefix goes before the field's name in
 * the message ("events[2]."; "" for none).
 * @returns 0, or -1 with v set to 400 naming the field.
 */
int webhook_check_limits(const struct webhook_event *ev, const char *prefix,
                         struct webhook_verdict *v);

/**
 * @brief The text of ev's payload field name, whether the payload is fields or JSON.
 * @returns it (owned by ev), or NULL when absent, not text, or the payload is null.
 */
const char *webhook_payload_text(const struct webhook_event *ev, const char *name);

/** @brief Frees what ev owns and zeroes it; safe on a zeroed or already finished event. */
void webhook_event_fini(struct webhook_event *ev);

/**
 * @brief The envelope the receiver writes to Kafka for ev: received at receive_ms under
 * trace_id, raw its body as received. It borrows from ev, trace_id and raw.
 */
struct envelope webhook_envelope(const struct webhook_event *ev, long long receive_ms,
                                 const char *trace_id, const void *raw, size_t raw_len);

/**
 * @brief Fills v with status, auth_failure (may be NULL) and a printf-style message.
 * @returns -1, so a vendor module can write `return webhook_refuse(v, 400, NULL, ...)`.
 */
int webhook_refuse(struct webhook_verdict *v, unsigned int status, const char *auth_failure,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/**
 * @brief The request body as a JSON object into *root (json_decref() it), duplicate keys
 * refused (two fields of one name must not be read two ways). @returns 0, or -1 with v filled
 * in: 400 for malformed JSON or another value than an object, 500 when out of memory.
 */
int webhook_json_body(const struct webhook_request *req, json_t **root, struct webhook_verdict *v);

/**
 * @brief Sets *dst to a copy of the id s unless s is NULL or empty; an id of more than
 * max_chars UTF-8 characters is refused (400, "<what>: longer than N characters").
 * @returns 0, or -1 with v filled in.
 */
int webhook_set_id(char **dst, const char *s, size_t max_chars, const char *what,
                   struct webhook_verdict *v);

#endif
