/*
 * delivery.h: publishes a request's event to Kafka and parks its HTTP connection until the
 * broker acknowledged it (or librdkafka gave up), so the answer can wait for durability.
 */
#ifndef LIVEFLOW_RECEIVER_DELIVERY_H
#define LIVEFLOW_RECEIVER_DELIVERY_H

#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "webhook.h"

struct metrics;
struct settings;

/*
 * One request's claim on a delivery report, embedded in the request state. The caller sets
 * conn and trace_id; the result fields are written before the connection is resumed and
 * may be read once libmicrohttpd calls the handler again. The links are private.
 */
struct delivery_ticket {
        struct MHD_Connection *conn;
        const char *trace_id;
        void *owner;       /* handed to the on_acked hook (delivery_on_acked()) */
        bool is_suspended; /* the caller suspended conn already (delivery_send()) */
        /* result */
        rd_kafka_resp_err_t err; /* 0: acknowledged by the broker (acks=all) */
        int32_t partition;
        int64_t offset;
        /* private */
        long long produced_us;
        bool is_sync; /* a delivery_send_sync() message: no connection to resume */
        bool is_done; /* is_sync: the report is in */
        bool is_waiting;
        size_t pending; /* delivery_send_many(): reports still to come */
        struct delivery_ticket *prev, *next;
};

struct delivery;

/**
 * @brief Makes an idempotent acks=all producer (one per event loop, plus one for the spool's
 * replay). Its message timeout is ack_timeout_ms, so every produced message gets a delivery report
 * within about that time, and a suspended connection is always resumed. topics (NULL-terminated,
 * borrowed) are the topics it will produce to: their metadata is fetched now rather than on the
 * first request. Registers liveflow_receiver_inflight, _ack_seconds and _delivery_errors_total in
 * metrics (shared by every delivery: the series are summed; borrowed, it must outlive the
 * delivery).
 * @returns NULL with errstr set on a bad Kafka property.
 */
struct delivery *delivery_new(const struct settings *s, const char *const topics[],
                              struct metrics *metrics, char *errstr, size_t errstr_size);

/** @brief Destroys the producer (call delivery_flush() first to keep messages); NULL is fine. */
void delivery_destroy(struct delivery *d);

/**
 * @brief From the access handler (or the owning loop, with t->is_suspended set because the
 * caller suspended t->conn itself): suspends t->conn, then produces ev (topic, key, value)
 * with the headers trace_id, event_type, vendor and event_id and t as the message's opaque.
 * The delivery report fills t's result and resumes the connection. If producing fails at
 * once (queue full, unknown topic), t->err says why and the connection is resumed before
 * this returns. Takes ev->value in every case (ev->value is NULL on return).
 * @returns 0 when the connection was suspended (the handler will be called again and should
 * answer from t), or -1 when the delivery is closed (draining): nothing suspended, answer 503.
 */
int delivery_send(struct delivery *d, struct delivery_ticket *t, struct webhook_event *ev);

/**
 * @brief delivery_send() for a batch: suspends t->conn once, produces evs[0..n) (n >= 1) with
 * t as every message's opaque, and resumes the connection when the last report is in. t->err
 * is then the first error of any message (0: the broker acknowledged every one); partition and
 * offset are those of the last report. When a produce fails at once, the messages from it on
 * are not produced and count as failed. Takes every evs[i].value.
 * @returns as delivery_send().
 */
int delivery_send_many(struct delivery *d, struct delivery_ticket *t, struct webhook_event *evs,
                       size_t n);

/**
 * @brief On the owning thread only: produces evs[0..n) (values borrowed, copied by librdkafka) and
 * serves delivery reports until every one is in (within about the ack timeout).
 * @returns how many of the leading messages the broker acknowledged (0..n).
 */
size_t delivery_send_sync(struct delivery *d, const struct webhook_event *evs, size_t n);

/**
 * @brief False once no broker has answered a metadata request for about 3 s (a background
 * probe asks every 250 ms): the receiver is then not ready and answers at once. Thread-safe.
 */
bool delivery_is_reachable(struct delivery *d);

/** @brief Serves delivery reports for up to timeout_ms (0: those already in), on the owning thread.
 */
void delivery_poll(struct delivery *d, int timeout_ms);

/**
 * @brief Makes librdkafka write to fd (an eventfd: 8 bytes) whenever a delivery report (or any
 * event of the producer's main queue) arrives on an empty queue, so the owning loop can wait
 * on fd and then call delivery_poll(d, 0). @returns 0, or -1 (out of memory).
 */
int delivery_wake_on(struct delivery *d, int fd);

/**
 * @brief fn(arg, t->owner) is called for each ticket the broker acknowledged (every message of
 * it), on the owning thread, just before its connection is resumed: what must be true before
 * the 200 is written can be started there. When fn returns true it has taken the resume over:
 * the connection stays suspended (and off the waiting list) until fn's side resumes t->conn.
 */
void delivery_on_acked(struct delivery *d, bool (*fn)(void *arg, void *owner), void *arg);

/** @brief How many connections this delivery resumed so far (on the owning thread). */
size_t delivery_resumed(const struct delivery *d);

/** @brief Messages in librdkafka's queue (rd_kafka_outq_len). Thread-safe. */
size_t delivery_queue_length(struct delivery *d);

/** @brief How many connections wait for a delivery report. Thread-safe. */
size_t delivery_waiting(struct delivery *d);

/** @brief Refuses every later delivery_send() (the start of a drain). Thread-safe. */
void delivery_close(struct delivery *d);

/**
 * @brief At the drain deadline: resumes every waiting connection with t->err =
 * RD_KAFKA_RESP_ERR__TIMED_OUT, and from then on ignores the opaque of delivery reports
 * (the request states may be freed). On the owning thread. @returns how many were resumed.
 */
size_t delivery_abandon(struct delivery *d);

/** @brief rd_kafka_flush() for up to timeout_ms. @returns the messages still not delivered. */
int delivery_flush(struct delivery *d, int timeout_ms);

#endif
