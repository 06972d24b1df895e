/*
 * delivery.c: a producer and the list of connections waiting for their acks. Each event loop
 * owns one: it produces from its HTTP handler, and serves the delivery reports (which resume
 * its connections) on its own thread, woken through the report queue's file descriptor.
 * A request state is borrowed by its message only while its connection is suspended, and a
 * connection is suspended only while its ticket is on the list, so whoever unlinks a ticket
 * (the delivery report, a failed produce, or the drain) is the one that resumes it, or hands
 * the resume to the on_acked hook, which then owns it.
 */
#include "delivery.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "settings.h"

#define TOPICS_MAX 16

/*
 * Kafka reachability: a thread asks the cluster for its broker list (a metadata request, which
 * needs a live broker connection) every PROBE_INTERVAL_MS; with no answer for DOWN_AFTER_MS the
 * receiver is not ready and answers 503 (or spools) at once instead of holding each request for
 * the whole ack timeout. librdkafka's reconnect back-off is capped at RECONNECT_MAX_MS (default
 * 10 s) so that service resumes within about a second of the broker's return.
 */
#define PROBE_INTERVAL_MS 250
#define PROBE_TIMEOUT_MS  1000
#define DOWN_AFTER_MS     3000
#define RECONNECT_MAX_MS  "500"

struct delivery {
        rd_kafka_t *rk;
        rd_kafka_topic_t *topics[TOPICS_MAX]; /* held so their metadata stays fresh */
        pthread_mutex_t lock;                 /* guards the list and the two flags */
        struct delivery_ticket *head;
        size_t waiting;
        rd_kafka_queue_t *reports; /* the main queue, when it wakes a loop */
        size_t resumed;            /* connections resumed so far (on the owning thread) */
        bool (*on_acked)(void *arg, void *owner);
        void *on_acked_arg;
        bool is_closed;   /* draining: no new sends */
        bool is_detached; /* past the drain deadline: report opaques may be freed */
        struct metric *inflight;
        struct metric *ack_seconds;
        struct metric *errors;
        pthread_t probe;
        bool has_probe;
        atomic_bool stop_probe;
        atomic_llong last_answer_ms; /* monotonic: the cluster's last metadata answer */
};

static void *probe_run(void *arg)
{
        struct delivery *d = arg;
        bool was_reachable = true;

        while (!atomic_load(&d->stop_probe)) {
                const struct rd_kafka_metadata *md = NULL;
                long long start = clock_mono_us();
                bool is_reachable;

                if (rd_kafka_metadata(d->rk, 0, NULL, &md, PROBE_TIMEOUT_MS) ==
                            RD_KAFKA_RESP_ERR_NO_ERROR &&
                    md->broker_cnt > 0)
                        atomic_store(&d->last_answer_ms, clock_mono_us() / 1000);
                if (md)
                        rd_kafka_metadata_destroy(md);
                is_reachable = delivery_is_reachable(d);
                if (is_reachable != was_reachable)
                        log_warn(NULL,
                                 is_reachable ? "kafka: a broker answers again: ready"
                                              : "kafka: no broker answered for %d ms: not "
                                                "ready, answering 503 (SRS: spooling) at once",
                                 DOWN_AFTER_MS);
                was_reachable = is_reachable;
                for (long long left = PROBE_INTERVAL_MS - (clock_mono_us() - start) / 1000;
                     left > 0 && !atomic_load(&d->stop_probe); left -= 50) {
                        struct timespec ts = {0, 50 * 1000000L};

                        nanosleep(&ts, NULL);
                }
        }
        return NULL;
}

bool delivery_is_reachable(struct delivery *d)
{
        return clock_mono_us() / 1000 - atomic_load(&d->last_answer_ms) < DOWN_AFTER_MS;
}

/* Both run under d->lock. */
static void link_ticket(struct delivery *d, struct delivery_ticket *t)
{
        t->prev = NULL;
        t->next = d->head;
        if (d->head)
                d->head->prev = t;
        d->head = t;
        t->is_waiting = true;
        d->waiting++;
        metric_add(d->inflight, 1);
}

static void unlink_ticket(struct delivery *d, struct delivery_ticket *t)
{
        if (t->prev)
                t->prev->next = t->next;
        else
                d->head = t->next;
        if (t->next)
                t->next->prev = t->prev;
        t->prev = t->next = NULL;
        t->is_waiting = false;
        d->waiting--;
        metric_add(d->inflight, -1);
}

/* Runs on the thread that calls rd_kafka_poll()/rd_kafka_flush(): the owning loop's. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
        struct delivery *d = opaque;
        struct delivery_ticket *t = rkm->_private;

        (void)rk;
        if (rkm->err)
                metric_add(d->errors, 1);
        pthread_mutex_lock(&d->lock);
        /* Detached first: after the drain deadline t may point to freed memory. */
        if (d->is_detached || !t || (!t->is_sync && !t->is_waiting)) {
                pthread_mutex_unlock(&d->lock);
                if (rkm->err)
                        log_warn(NULL, "late delivery failure topic=%s: %s",
                                 rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(rkm->err));
                return;
        }
        if (!t->is_sync && t->pending > 1) { /* a batch: its last report resumes the connection */
                t->pending--;
                if (rkm->err && !t->err)
                        t->err = rkm->err;
                pthread_mutex_unlock(&d->lock);
                return;
        }
        if (t->is_sync) { /* alive until its report: delivery_send_sync() waits for it */
                pthread_mutex_unlock(&d->lock);
                t->err = rkm->err;
                t->is_done = true;
                return;
        }
        unlink_ticket(d, t);
        t->pending = 0;
        pthread_mutex_unlock(&d->lock);
        if (!t->err) /* a batch keeps the first error of its messages */
                t->err = rkm->err;
        t->partition = rkm->partition;
        t->offset = rkm->offset;
        metric_observe(d->ack_seconds, (double)(clock_mono_us() - t->produced_us) / 1e6);
        if (rkm->err)
                log_warn(t->trace_id, "delivery failed topic=%s partition=%d: %s",
                         rd_kafka_topic_name(rkm->rkt), (int)rkm->partition,
                         rd_kafka_err2str(rkm->err));
        if (!t->err && d->on_acked && d->on_acked(d->on_acked_arg, t->owner))
                return; /* the hook resumes the connection once its own work is done */
        MHD_resume_connection(t->conn); /* the connection is suspended until this call */
        d->resumed++;
}

void delivery_on_acked(struct delivery *d, bool (*fn)(void *arg, void *owner), void *arg)
{
        d->on_acked = fn;
        d->on_acked_arg = arg;
}

size_t delivery_resumed(const struct delivery *d)
{
        return d->resumed;
}

size_t delivery_queue_length(struct delivery *d)
{
        return d->rk ? (size_t)rd_kafka_outq_len(d->rk) : 0;
}

/*
 * The ack timeout becomes librdkafka's message.timeout.ms, appended after the operator's
 * LIVEFLOW_KAFKA_PROP_* so that it wins: a longer timeout would hold connections beyond
 * the ack timeout. The settings are copied shallowly with a longer property list.
 */
static rd_kafka_t *producer_new(const struct settings *s, struct delivery *d, char *errstr,
                                size_t errstr_size)
{
        char name[] = "message.timeout.ms", value[24];
        char backoff_name[] = "reconnect.backoff.max.ms", backoff[] = RECONNECT_MAX_MS;
        struct settings with_timeout = *s;
        struct kafka_prop *props = calloc(s->kafka_prop_cnt + 2, sizeof(*props));
        size_t n = 0;
        rd_kafka_t *rk;

        if (!props) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        /* First, so that LIVEFLOW_KAFKA_PROP_RECONNECT_BACKOFF_MAX_MS may replace it. */
        props[n++] = (struct kafka_prop){backoff_name, backoff};
        for (size_t i = 0; i < s->kafka_prop_cnt; i++) {
                props[n++] = s->kafka_props[i];
                if (strcmp(s->kafka_props[i].name, name) == 0)
                        log_warn(NULL,
                                 "LIVEFLOW_KAFKA_PROP_MESSAGE_TIMEOUT_MS is replaced by "
                                 "LIVEFLOW_ACK_TIMEOUT_MS=%lld",
                                 s->ack_timeout_ms);
        }
        snprintf(value, sizeof(value), "%lld", s->ack_timeout_ms);
        props[n++] = (struct kafka_prop){name, value};
        with_timeout.kafka_props = props;
        with_timeout.kafka_prop_cnt = n;
        rk = kafka_producer_new(&with_timeout, "liveflow-receiver", on_delivery, d, errstr,
                                errstr_size);
        free(props);
        return rk;
}

/*
 * A topic handle makes librdkafka fetch the topic's metadata in the background: without it
 * the first request waits up to a second for the next metadata scan.
 */
static void hold_topics(struct delivery *d, const char *const topics[])
{
        for (size_t i = 0; topics && topics[i] && i < TOPICS_MAX; i++)
                d->topics[i] = rd_kafka_topic_new(d->rk, topics[i], NULL);
}

struct delivery *delivery_new(const struct settings *s, const char *const topics[],
                              struct metrics *metrics, char *errstr, size_t errstr_size)
{
        struct delivery *d = calloc(1, sizeof(*d));

        if (!d) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        pthread_mutex_init(&d->lock, NULL);
        d->inflight = metrics_gauge(metrics, "liveflow_receiver_inflight",
                                    "Requests waiting for the broker's ack", NULL);
        d->ack_seconds = metrics_histogram(metrics, "liveflow_receiver_ack_seconds",
                                           "Time from produce to the delivery report", NULL,
                                           metrics_latency_bounds, metrics_latency_bound_cnt);
        d->errors = metrics_counter(metrics, "liveflow_receiver_delivery_errors_total",
                                    "Messages the broker did not acknowledge", NULL);
        if (!(d->rk = producer_new(s, d, errstr, errstr_size))) {
                delivery_destroy(d);
                return NULL;
        }
        hold_topics(d, topics);
        atomic_store(&d->last_answer_ms, clock_mono_us() / 1000); /* the first probe has 3 s */
        if (pthread_create(&d->probe, NULL, probe_run, d) == 0)
                d->has_probe = true;
        return d;
}

void delivery_destroy(struct delivery *d)
{
        if (!d)
                return;
        atomic_store(&d->stop_probe, true);
        if (d->has_probe)
                pthread_join(d->probe, NULL);
        pthread_mutex_lock(&d->lock);
        d->is_detached = true; /* rd_kafka_destroy() may still serve reports */
        pthread_mutex_unlock(&d->lock);
        if (d->reports) {
                rd_kafka_queue_io_event_enable(d->reports, -1, NULL, 0);
                rd_kafka_queue_destroy(d->reports);
        }
        for (size_t i = 0; i < TOPICS_MAX; i++)
                if (d->topics[i])
                        rd_kafka_topic_destroy(d->topics[i]);
        if (d->rk)
                rd_kafka_destroy(d->rk);
        pthread_mutex_destroy(&d->lock);
        free(d);
}

/* A produce that failed at once: unlink and resume, unless the drain already did. */
static void fail_at_once(struct delivery *d, struct delivery_ticket *t, rd_kafka_resp_err_t err)
{
        bool was_waiting;

        t->err = err;
        pthread_mutex_lock(&d->lock);
        if ((was_waiting = t->is_waiting))
                unlink_ticket(d, t);
        pthread_mutex_unlock(&d->lock);
        metric_add(d->errors, 1);
        log_warn(t->trace_id, "produce failed: %s", rd_kafka_err2str(err));
        if (was_waiting) {
                MHD_resume_connection(t->conn);
                d->resumed++;
        }
}

int delivery_send(struct delivery *d, struct delivery_ticket *t, struct webhook_event *ev)
{
        void *value = ev->value;
        rd_kafka_resp_err_t err;

        ev->value = NULL; /* taken: librdkafka frees it, or this function does */

        /*
         * Suspend before producing, and under the lock: a delivery report (or the drain) may
         * resume the connection as soon as the message exists, and resuming a connection that
         * is not suspended yet is undefined in libmicrohttpd.
         */
        pthread_mutex_lock(&d->lock);
        if (d->is_closed) {
                pthread_mutex_unlock(&d->lock);
                free(value);
                return -1;
        }
        t->produced_us = clock_mono_us();
        link_ticket(d, t);
        if (!t->is_suspended)
                MHD_suspend_connection(t->conn);
        pthread_mutex_unlock(&d->lock);
        err = rd_kafka_producev(
                d->rk, RD_KAFKA_V_TOPIC(ev->topic),
                RD_KAFKA_V_KEY(ev->key, ev->key ? strlen(ev->key) : 0),
                RD_KAFKA_V_VALUE(value, ev->value_len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), /* librdkafka frees the value */
                RD_KAFKA_V_HEADER("trace_id", ev->trace_id, -1),
                RD_KAFKA_V_HEADER("event_type", ev->event_type, -1),
                RD_KAFKA_V_HEADER("vendor", ev->vendor, -1),
                RD_KAFKA_V_HEADER("event_id", ev->event_id, -1), RD_KAFKA_V_OPAQUE(t),
                RD_KAFKA_V_END);
        if (err) {
                free(value); /* on failure the value stays ours, F_FREE or not */
                fail_at_once(d, t, err);
        }
        return 0;
}

int delivery_send_many(struct delivery *d, struct delivery_ticket *t, struct webhook_event *evs,
                       size_t n)
{
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        bool was_waiting = false;
        size_t i;

        pthread_mutex_lock(&d->lock);
        if (d->is_closed) {
                pthread_mutex_unlock(&d->lock);
                for (i = 0; i < n; i++) {
                        free(evs[i].value);
                        evs[i].value = NULL;
                }
                return -1;
        }
        t->produced_us = clock_mono_us();
        t->err = RD_KAFKA_RESP_ERR_NO_ERROR;
        t->pending = n; /* before any report can come */
        link_ticket(d, t);
        MHD_suspend_connection(t->conn);
        pthread_mutex_unlock(&d->lock);
        for (i = 0; i < n; i++) {
                struct webhook_event *ev = &evs[i];
                void *value = ev->value;

                ev->value = NULL; /* taken: librdkafka frees it, or this function does */
                err = rd_kafka_producev(d->rk, RD_KAFKA_V_TOPIC(ev->topic),
                                        RD_KAFKA_V_KEY(ev->key, ev->key ? strlen(ev->key) : 0),
                                        RD_KAFKA_V_VALUE(value, ev->value_len),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                        RD_KAFKA_V_HEADER("trace_id", ev->trace_id, -1),
                                        RD_KAFKA_V_HEADER("event_type", ev->event_type, -1),
                                        RD_KAFKA_V_HEADER("vendor", ev->vendor, -1),
                                        RD_KAFKA_V_HEADER("event_id", ev->event_id, -1),
                                        RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
                if (err) {
                        free(value);
                        break;
                }
        }
        if (!err)
                return 0;
        for (size_t j = i + 1; j < n; j++) { /* never produced */
                free(evs[j].value);
                evs[j].value = NULL;
        }
        metric_add(d->errors, 1);
        log_warn(t->trace_id, "produce failed at message %zu of %zu: %s", i + 1, n,
                 rd_kafka_err2str(err));
        pthread_mutex_lock(&d->lock);
        if (!t->err)
                t->err = err;
        /* The n - i messages not produced never report; the drain may have resumed t already. */
        if (t->is_waiting) {
                t->pending -= n - i;
                if (t->pending == 0) {
                        unlink_ticket(d, t);
                        was_waiting = true;
                }
        }
        pthread_mutex_unlock(&d->lock);
        if (was_waiting) {
                MHD_resume_connection(t->conn);
                d->resumed++;
        }
        return 0;
}

size_t delivery_send_sync(struct delivery *d, const struct webhook_event *evs, size_t n)
{
        struct delivery_ticket *tickets = calloc(n ? n : 1, sizeof(*tickets));
        size_t produced = 0, acked = 0;

        if (!tickets)
                return 0;
        for (; produced < n; produced++) {
                const struct webhook_event *m = &evs[produced];
                struct delivery_ticket *t = &tickets[produced];
                rd_kafka_resp_err_t err;

                t->is_sync = true;
                t->trace_id = m->trace_id;
                t->produced_us = clock_mono_us();
                err = rd_kafka_producev(d->rk, RD_KAFKA_V_TOPIC(m->topic),
                                        RD_KAFKA_V_KEY(m->key, m->key ? strlen(m->key) : 0),
                                        RD_KAFKA_V_VALUE(m->value, m->value_len),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_HEADER("trace_id", m->trace_id, -1),
                                        RD_KAFKA_V_HEADER("event_type", m->event_type, -1),
                                        RD_KAFKA_V_HEADER("vendor", m->vendor, -1),
                                        RD_KAFKA_V_HEADER("event_id", m->event_id, -1),
                                        RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
                if (err) {
                        log_warn(m->trace_id, "replay produce failed: %s", rd_kafka_err2str(err));
                        break;
                }
        }
        /*
         * Every produced message gets its report within message.timeout.ms (the ack timeout);
         * reports are served on this thread, so is_done needs no lock.
         */
        for (;;) {
                size_t pending = 0;

                for (size_t i = 0; i < produced; i++)
                        pending += !tickets[i].is_done;
                if (!pending)
                        break;
                rd_kafka_poll(d->rk, 100);
        }
        while (acked < produced && !tickets[acked].err)
                acked++;
        free(tickets);
        return acked;
}

void delivery_poll(struct delivery *d, int timeout_ms)
{
        rd_kafka_poll(d->rk, timeout_ms);
}

int delivery_wake_on(struct delivery *d, int fd)
{
        static const uint64_t one = 1; /* an eventfd takes 8 bytes */

        if (!(d->reports = rd_kafka_queue_get_main(d->rk)))
                return -1;
        rd_kafka_queue_io_event_enable(d->reports, fd, &one, sizeof(one));
        return 0;
}

size_t delivery_waiting(struct delivery *d)
{
        size_t n;

        pthread_mutex_lock(&d->lock);
        n = d->waiting;
        pthread_mutex_unlock(&d->lock);
        return n;
}

void delivery_close(struct delivery *d)
{
        pthread_mutex_lock(&d->lock);
        d->is_closed = true;
        pthread_mutex_unlock(&d->lock);
}

size_t delivery_abandon(struct delivery *d)
{
        struct delivery_ticket *list, *t, *next;
        size_t n = 0;

        pthread_mutex_lock(&d->lock);
        d->is_closed = true;
        d->is_detached = true;
        list = d->head;
        for (t = list; t; t = t->next) { /* they stay chained for the walk below */
                t->is_waiting = false;
                metric_add(d->inflight, -1);
                n++;
        }
        d->head = NULL;
        d->waiting = 0;
        pthread_mutex_unlock(&d->lock);
        /* Resumed outside the lock; these connections stay suspended until resumed here. */
        for (t = list; t; t = next) {
                next = t->next;
                t->prev = t->next = NULL;
                t->err = RD_KAFKA_RESP_ERR__TIMED_OUT;
                MHD_resume_connection(t->conn);
                d->resumed++;
        }
        return n;
}

int delivery_flush(struct delivery *d, int timeout_ms)
{
        rd_kafka_flush(d->rk, timeout_ms);
        return rd_kafka_outq_len(d->rk);
}
