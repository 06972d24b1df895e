/* consumer_dlq.c: dead letters, with their coordinates, acked before the offsets move. */
#include "consumer_int.h"

#include <stdio.h>
#include <string.h>

#include "contract.h"
#include "log.h"
#include "metrics.h"
#include "produce.h"

struct dlq_wait {
        int pending;
        int failed;
        char error[256];
};

/* The producer's delivery reports: a role's produce_acked() record, or a dead-letter record. */
void consumer_on_dlq_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
        struct consumer *c = opaque;
        struct dlq_wait *w = rkm->_private;

        (void)rk;
        if (produce_ack_report(&c->ack, rkm) || !w)
                return;
        if (rkm->err) {
                w->failed++;
                snprintf(w->error, sizeof(w->error), "%s", rd_kafka_err2str(rkm->err));
        }
        w->pending--;
}

static rd_kafka_headers_t *dlq_headers(const struct consumer *c, const struct item *it)
{
        rd_kafka_headers_t *orig = NULL, *h;
        char buf[64];

        h = rd_kafka_message_headers(it->rkm, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR
                    ? rd_kafka_headers_copy(orig)
                    : rd_kafka_headers_new(10);
        rd_kafka_header_add(h, "dlq.topic", -1, it->rec.topic, -1);
        snprintf(buf, sizeof(buf), "%d", it->rec.partition);
        rd_kafka_header_add(h, "dlq.partition", -1, buf, -1);
        snprintf(buf, sizeof(buf), "%lld", it->rec.offset);
        rd_kafka_header_add(h, "dlq.offset", -1, buf, -1);
        snprintf(buf, sizeof(buf), "%lld", consumer_now_ms());
        rd_kafka_header_add(h, "dlq.timestamp", -1, buf, -1);
        rd_kafka_header_add(h, "dlq.group", -1, c->group, -1);
        snprintf(buf, sizeof(buf), "%d", it->attempts ? it->attempts : 1);
        rd_kafka_header_add(h, "dlq.attempts", -1, buf, -1);
        rd_kafka_header_add(h, "dlq.error.class", -1,
                            it->error_class == ERROR_TRANSIENT ? "transient" : "permanent", -1);
        rd_kafka_header_add(h, "dlq.error.message", -1, it->error, -1);
        return h;
}

static int dlq_produce(struct consumer *c, struct item *it, struct dlq_wait *w)
{
        char topic[300];
        rd_kafka_resp_err_t err;
        rd_kafka_headers_t *h = dlq_headers(c, it);

        snprintf(topic, sizeof(topic), "%s" LF_DLQ_SUFFIX, it->rec.topic);
        err = rd_kafka_producev(c->producer, RD_KAFKA_V_TOPIC(topic),
                                RD_KAFKA_V_KEY(it->rkm->key, it->rkm->key_len),
                                RD_KAFKA_V_VALUE(it->rkm->payload, it->rkm->len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                                RD_KAFKA_V_OPAQUE(w), RD_KAFKA_V_END);
        if (err) {
                rd_kafka_headers_destroy(h); /* not handed over on failure */
                snprintf(w->error, sizeof(w->error), "%s", rd_kafka_err2str(err));
                return -1;
        }
        w->pending++;
        return 0;
}

/*
 * Sends every dead item to its .dlq topic and waits for the acks. Until they are acked the
 * items stay unfinished, so their offsets are not stored: if the DLQ write fails, nothing moves.
 */
void consumer_dead_letter(struct consumer *c)
{
        for (int attempt = 1;; attempt++) {
                struct dlq_wait w = {0};
                size_t n = 0;

                for (size_t i = 0; i < c->item_cnt; i++) {
                        if (c->items[i].state != ITEM_DEAD)
                                continue;
                        n++;
                        if (dlq_produce(c, &c->items[i], &w) == -1)
                                w.failed++;
                }
                if (!n)
                        return;
                while (w.pending > 0)
                        rd_kafka_poll(c->producer, 100);
                if (!w.failed) {
                        for (size_t i = 0; i < c->item_cnt; i++) {
                                struct item *it = &c->items[i];

                                if (it->state != ITEM_DEAD)
                                        continue;
                                it->state = ITEM_DONE;
                                metric_add(c->m_dead, 1);
                                log_warn(it->rec.trace_id,
                                         "dead-lettered topic=%s partition=%d offset=%lld "
                                         "class=%s: %s",
                                         it->rec.topic, it->rec.partition, it->rec.offset,
                                         it->error_class == ERROR_TRANSIENT ? "transient"
                                                                            : "permanent",
                                         it->error);
                        }
                        return;
                }
                metric_add(c->m_dlq_failed, w.failed);
                log_error(NULL, "dead-letter write failed (%d of %zu), not moving on: %s", w.failed,
                          n, w.error);
                if (!consumer_backoff(c, attempt > 5 ? 5 : attempt)) {
                        for (size_t i = 0; i < c->item_cnt; i++)
                                if (c->items[i].state == ITEM_DEAD)
                                        c->items[i].state = ITEM_STOPPED;
                        return;
                }
        }
}
