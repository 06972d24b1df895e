/*
 * consumer_batch.c: one batch's course: collected from poll, decoded, applied, published,
 * dead letters written, offsets stored in order, lag reported.
 */
#include "consumer_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "consumer_lag.h"
#include "contract.h"
#include "dlq_headers.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "settings.h"
#include "signals.h"
#include "store_breaker.h"

/* ------------------------------------------------------------------ batch collection */

static void item_fini(struct item *it)
{
        event_fini(&it->rec.ev);
        if (it->rkm)
                rd_kafka_message_destroy(it->rkm);
        memset(it, 0, sizeof(*it));
}

void consumer_batch_clear(struct consumer *c)
{
        for (size_t i = 0; i < c->item_cnt; i++)
                item_fini(&c->items[i]);
        c->item_cnt = 0;
}

static int batch_add(struct consumer *c, rd_kafka_message_t *rkm)
{
        char replay_time[32];

        if (c->item_cnt == c->item_cap) {
                size_t cap = c->item_cap ? c->item_cap * 2 : 64;
                struct item *n = realloc(c->items, cap * sizeof(*n));

                if (!n)
                        return -1;
                c->items = n;
                c->item_cap = cap;
        }
        struct item *it = &c->items[c->item_cnt++];

        memset(it, 0, sizeof(*it));
        it->rkm = rkm;
        it->rec.topic = rd_kafka_topic_name(rkm->rkt);
        it->rec.partition = (int)rkm->partition;
        it->rec.offset = (long long)rkm->offset;
        it->rec.timestamp_ms = (long long)rd_kafka_message_timestamp(rkm, NULL);
        it->is_replay = kafka_header_get(rkm, REPLAY_TIME, replay_time, sizeof(replay_time)) == 0;
        metric_add(c->m_fetched[consumer_topic_index(c, it->rec.topic)], 1);
        if (it->is_replay)
                metric_add(c->m_replayed[consumer_topic_index(c, it->rec.topic)], 1);
        consumer_lag_pending(c->lag, it->rec.topic, it->rec.partition, it->rec.offset,
                             it->rec.timestamp_ms);
        return 0;
}

/* Polls until the batch is full or batch_wait_ms passed since its first record. */
size_t consumer_collect(struct consumer *c)
{
        long long first = 0;

        while (!signals_stop_requested() && c->item_cnt < (size_t)c->settings->batch_max &&
               (!store_breaker_is_open(c->breaker) || c->is_probing)) {
                int wait =
                        first ? (int)(first + c->settings->batch_wait_ms - consumer_now_ms()) : 100;
                rd_kafka_message_t *rkm;

                if (first && wait <= 0)
                        break;
                rkm = rd_kafka_consumer_poll(c->rk, wait > 0 ? wait : 0);
                if (rkm && !rkm->err && store_breaker_is_open(c->breaker) && !c->is_probing) {
                        consumer_put_back(c,
                                          rkm); /* a revocation's batch met an outage meanwhile */
                        break;
                }
                if (!rkm) {
                        if (!first)
                                break; /* idle: let the caller tick */
                        continue;
                }
                if (rkm->err) {
                        consumer_on_error(c, rkm);
                        rd_kafka_message_destroy(rkm);
                        continue;
                }
                if (batch_add(c, rkm) == -1) {
                        rd_kafka_message_destroy(rkm);
                        break; /* out of memory: process what we have; the record comes back */
                }
                if (!first)
                        first = consumer_now_ms();
        }
        return c->item_cnt;
}

/* ------------------------------------------------------------------ offsets */

/* Stores offsets in order; a partition stops at its first unfinished record. */
static void store_offsets(struct consumer *c)
{
        for (size_t i = 0; i < c->item_cnt; i++) {
                struct item *it = &c->items[i];
                bool blocked = it->state != ITEM_DONE;

                for (size_t j = 0; j < i && !blocked; j++)
                        blocked = c->items[j].state != ITEM_DONE &&
                                  c->items[j].rec.partition == it->rec.partition &&
                                  strcmp(c->items[j].rec.topic, it->rec.topic) == 0;
                if (blocked)
                        continue;
                rd_kafka_resp_err_t err =
                        rd_kafka_offset_store(it->rkm->rkt, it->rkm->partition, it->rkm->offset);

                if (err)
                        log_warn(it->rec.trace_id,
                                 "offset store topic=%s partition=%d offset=%lld: %s "
                                 "(partition revoked? the record will be seen again)",
                                 it->rec.topic, it->rec.partition, it->rec.offset,
                                 rd_kafka_err2str(err));
        }
}

/* Each partition of the batch: where it stands now, for its lag (see consumer_lag.h). */
static void report_lag(struct consumer *c)
{
        for (size_t i = 0; i < c->item_cnt; i++) {
                const struct item *first = &c->items[i];
                long long next = -1, unfinished_ts = 0, last_ts = 0;
                bool is_seen = false;

                for (size_t j = 0; j < i && !is_seen; j++)
                        is_seen = c->items[j].rec.partition == first->rec.partition &&
                                  strcmp(c->items[j].rec.topic, first->rec.topic) == 0;
                if (is_seen)
                        continue;
                for (size_t j = i; j < c->item_cnt && !unfinished_ts; j++) {
                        const struct item *it = &c->items[j];

                        if (it->rec.partition != first->rec.partition ||
                            strcmp(it->rec.topic, first->rec.topic) != 0)
                                continue;
                        next = it->rec.offset;
                        if (it->state != ITEM_DONE)
                                unfinished_ts = it->rec.timestamp_ms > 0 ? it->rec.timestamp_ms : 1;
                        else
                                last_ts = it->rec.timestamp_ms, next++;
                }
                consumer_lag_done(c->lag, first->rec.topic, first->rec.partition, next,
                                  unfinished_ts, last_ts);
        }
}

/* ------------------------------------------------------------------ the batch */

static void observe_freshness(struct consumer *c, const struct item *it)
{
        long long received = it->decoded ? (long long)it->rec.ev.receive_time_ms : 0;

        if (received > 0 && !it->is_replay)
                metric_observe(c->m_freshness, (double)(consumer_now_ms() - received) / 1000.0);
}

/*
 * One batch: decode, apply (one transaction), publish, dead letters, offsets. The debug line
 * names where its time went: in poll before it (waited), applying and committing (apply),
 * the publish step (publish) and the dead letters and offsets (rest), in milliseconds.
 */
void consumer_process_batch(struct consumer *c)
{
        long long t0 = clock_mono_us(), t_apply, t_publish;
        size_t applied = 0;

        c->is_outage = false;
        consumer_step_begins(c);
        for (size_t i = 0; i < c->item_cnt; i++)
                consumer_decode(c, &c->items[i]);
        if (!consumer_apply_batch(c) && !consumer_outage_now(c)) {
                for (size_t i = 0; i < c->item_cnt; i++) {
                        if (c->items[i].state == ITEM_PENDING)
                                consumer_apply_single(c, &c->items[i]);
                        if (c->items[i].state == ITEM_STOPPED)
                                break; /* a stop or an outage: leave the rest for next time */
                }
        }
        t_apply = clock_mono_us();
        if (!c->is_outage)
                consumer_publish_batch(c);
        t_publish = clock_mono_us();
        if (c->is_outage)
                consumer_hold(c);
        else if (c->is_probing) {
                c->is_probing = false;
                store_breaker_close(c->breaker);
        }
        for (size_t i = 0; i < c->item_cnt; i++)
                if (c->items[i].state == ITEM_DONE) {
                        applied++;
                        observe_freshness(c, &c->items[i]);
                }
        consumer_dead_letter(c);
        store_offsets(c);
        report_lag(c);
        metric_add(c->m_done, (long long)applied);
        c->batch_end_us = clock_mono_us();
        metric_observe(c->m_batch, (double)(c->batch_end_us - t0) / 1e6);
        log_debug(NULL,
                  "batch records=%zu applied=%zu ms=%.1f waited=%.1f apply=%.1f publish=%.1f "
                  "rest=%.1f",
                  c->item_cnt, applied, (double)(c->batch_end_us - t0) / 1000.0,
                  (double)(t0 - c->collect_start_us) / 1000.0, (double)(t_apply - t0) / 1000.0,
                  (double)(t_publish - t_apply) / 1000.0,
                  (double)(c->batch_end_us - t_publish) / 1000.0);
        consumer_batch_clear(c);
}
