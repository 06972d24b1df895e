/* stream_close.h: produce one stream.close record to live.stream and wait for its acknowledgement.
 */
#ifndef LIVEFLOW_STREAM_CLOSE_H
#define LIVEFLOW_STREAM_CLOSE_H

#include <stddef.h>

struct role_env;

/*
 * A stream.close a role decides on its own (a sweep, a cut-off): an envelope with vendor
 * "liveflow" and a StreamEnd payload, keyed by the stream, with headers trace_id, event_type
 * and event_id. The event_id must be derived from what caused the close, so that a replay
 * or another instance making the same decision produces a record the stream role drops as a
 * duplicate (live_events is unique per event id).
 */
struct stream_close_msg {
        const char *event_id; /* 64 hex digits, deterministic */
        const char *stream_id;
        const char *anchor_id; /* NULL when unknown */
        const char *room_id;   /* NULL when unknown */
        const char *sequence;  /* the session's vendor sequence, NULL when none */
        const char *trace_id;
        long long event_time_ms;
        int close_method;   /* 1 ended by stream, 2 forced by operator, 3 punishment */
        const char *reason; /* NULL for none */
        const char *cause;  /* why, for the envelope's raw field (e.g. "ghost") */
        const char *vendor; /* the envelope's vendor; NULL for "liveflow" */
        const char *raw;    /* the envelope's raw JSON; NULL for {"cause": cause} */
};

struct stream_close;

/**
 * @brief A sender on the runtime's producer (env->producer, waited for with env->ack), borrowed:
 * env must outlive it. @returns a sender freed with stream_close_destroy(), or NULL with errstr.
 */
struct stream_close *stream_close_new(const struct role_env *env, char *errstr, size_t errstr_size);

/** @brief Frees the sender (the producer is the runtime's); NULL is fine. */
void stream_close_destroy(struct stream_close *sc);

/**
 * @brief Produces the stream.close and waits for the broker's acknowledgement (at most 40 s,
 * less when a stop is requested). @returns 0, or -1 with errstr (transient: try again).
 */
__attribute__((warn_unused_result)) int stream_close_send(struct stream_close *sc,
                                                          const struct stream_close_msg *m,
                                                          char *errstr, size_t errstr_size);

/**
 * @brief stream_close_send() for n records at once: produces them all (in order), then waits
 * for every acknowledgement. @returns 0 when each was acknowledged, or -1 with errstr
 * (transient: send them all again; their event ids make the repeats duplicates).
 */
__attribute__((warn_unused_result)) int stream_close_send_many(struct stream_close *sc,
                                                               const struct stream_close_msg *ms,
                                                               size_t n, char *errstr,
                                                               size_t errstr_size);

#endif
