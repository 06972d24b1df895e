/*
 * produce.h: produce one record on a shared producer and wait for its acknowledgement.
 *
 * The consumer runtime owns one producer per process (its dead-letter records use it too). A
 * role that must know its record is on the broker before it moves on (a stream.close, a
 * session.end) sends it with produce_acked() on that producer. The record's opaque is an odd
 * number, the waiter's sequence, never a pointer: the producer's delivery callback hands
 * every report to produce_ack_report() first, which takes the waiter's records and leaves the
 * others (the dead-letter bookkeeping's) alone; a late report of a record an earlier wait gave
 * up on is recognised and dropped.
 *
 * A sender that must not wait (the live.notify relay, notify.h) produces with produce_async()
 * instead: its records carry a token of its own, and their reports go to the one listener
 * registered on the producer's produce_ack (produce_ack_listen()), whenever the producer is
 * polled next.
 */
#ifndef LIVEFLOW_PRODUCE_H
#define LIVEFLOW_PRODUCE_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

/* The record (or the records) a producer's waiter waits for; zeroed to start. */
struct produce_ack {
        uint64_t seq; /* of the record waited for (the last of a produce_acked_many()) */
        bool has_report;
        rd_kafka_resp_err_t err;
        int partition;
        long long offset;
        /* produce_acked_many(): records first_seq .. seq, their reports in is_acked */
        uint64_t first_seq;
        size_t pending;
        bool *is_acked;
        /* produce_async(): the listener told each report (see produce_ack_listen()) */
        void (*on_async)(void *arg, uint64_t token, rd_kafka_resp_err_t err);
        void *async_arg;
};

/* One record to produce. */
struct produce_msg {
        const char *topic;
        const char *key; /* NUL-terminated */
        void *value;     /* malloc'd; librdkafka frees it, also when produce fails */
        size_t len;
        const char *trace_id; /* the headers; event_id NULL for none */
        const char *event_type;
        const char *event_id;
};

/**
 * @brief For the producer's delivery callback: @returns true when rkm is a record of
 * produce_acked() (then it is taken: the caller must not treat it as its own).
 */
bool produce_ack_report(struct produce_ack *a, const rd_kafka_message_t *rkm);

/**
 * @brief Produces m on rk and polls rk until its delivery report comes (at most wait_ms on
 * the monotonic clock, less when a stop is requested). rk's delivery callback must pass its
 * reports to produce_ack_report(a, ...). @returns 0 when the broker acknowledged it, or -1
 * with errstr (transient: try again).
 */
__attribute__((warn_unused_result)) int produce_acked(rd_kafka_t *rk, struct produce_ack *a,
                                                      const struct produce_msg *m, int wait_ms,
                                                      char *errstr, size_t errstr_size);

/**
 * @brief produce_acked() for n records at once: produces them all, then polls rk until every
 * report came (at most wait_ms, less when a stop is requested). is_acked[i] (n of them) says
 * whether the broker acknowledged msgs[i]. @returns 0 when every record was acknowledged, or
 * -1 with errstr (the first failure; the others may have been acknowledged: see is_acked).
 */
__attribute__((warn_unused_result)) int produce_acked_many(rd_kafka_t *rk, struct produce_ack *a,
                                                           const struct produce_msg *msgs, size_t n,
                                                           bool *is_acked, int wait_ms,
                                                           char *errstr, size_t errstr_size);

/**
 * @brief Makes fn the listener of a's produce_async() records: fn(arg, token, err) runs for
 * each report, from inside the poll that serves it (it must not poll or block). NULL fn removes
 * the listener; reports that come without one are dropped. @returns 0, or -1 when another
 * listener holds a (there is one per producer).
 */
__attribute__((warn_unused_result)) int
produce_ack_listen(struct produce_ack *a,
                   void (*fn)(void *arg, uint64_t token, rd_kafka_resp_err_t err), void *arg);

/**
 * @brief Produces m on rk without waiting: its report goes to a's listener with token (at
 * most 2^61). @returns 0 when librdkafka took it, or -1 with errstr (its queue is full: the
 * record was not produced).
 */
__attribute__((warn_unused_result)) int produce_async(rd_kafka_t *rk, struct produce_ack *a,
                                                      const struct produce_msg *m, uint64_t token,
                                                      char *errstr, size_t errstr_size);

/* ------------------------------------------------------------------ records liveflow makes */

/**
 * @brief Encodes a record liveflow itself produces (a stream.close, a session.end): env with
 * payload under payload_name, env's raw set to raw_text and its receive time to now. Takes
 * payload and raw_text (NULL: out of memory). @returns 0 with a malloc'd encoding in *buf, or
 * -1 with errstr.
 */
__attribute__((warn_unused_result)) int produce_encode(struct codec *c, struct envelope *env,
                                                       const char *payload_name, json_t *payload,
                                                       char *raw_text, void **buf, size_t *len,
                                                       char *errstr, size_t errstr_size);

/**
 * @brief produce_acked_many() of the records make(arg, i, m, ...) fills in for i = 0 .. n-1:
 * it returns 1 when it filled *m, 0 when i has none, -1 with errstr when it failed (then
 * nothing is produced). @returns 0 when every record made was acknowledged (or none was
 * made), or -1 with errstr.
 */
__attribute__((warn_unused_result)) int produce_acked_made(
        rd_kafka_t *rk, struct produce_ack *a, size_t n,
        int (*make)(void *arg, size_t i, struct produce_msg *m, char *errstr, size_t errstr_size),
        void *arg, int wait_ms, char *errstr, size_t errstr_size);

#endif
