/* consumer.c: at-least-once batches with idempotent effects, three tries, then the DLQ. */
#include "consumer_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "consumer_lag.h"
#include "contract.h"
#include "db.h"
#include "dlq_headers.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "produce.h"
#include "redis_conn.h"
#include "settings.h"
#include "signals.h"
#include "store_breaker.h"

long long consumer_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long long ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

        nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ batch collection */

static void item_fini(struct item *it)
{
        event_fini(&it->rec.ev);
        if (it->rkm)
                rd_kafka_message_destroy(it->rkm);
        memset(it, 0, sizeof(*it));
}

static void batch_clear(struct consumer *c)
{
        for (size_t i = 0; i < c->item_cnt; i++)
                item_fini(&c->items[i]);
        c->item_cnt = 0;
}

void consumer_on_error(struct consumer *c, const rd_kafka_message_t *rkm)
{
        const char *topic = rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "-";

        metric_add(c->m_consumer_errors, 1);
        if (rkm->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
            rkm->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
                /* The broker dropped records this group had not consumed yet: say it loudly. */
                metric_add(c->m_out_of_range, 1);
                log_error(NULL,
                          "offset out of range topic=%s partition=%d offset=%lld: records lost to "
                          "retention: %s",
                          topic, (int)rkm->partition, (long long)rkm->offset,
                          rd_kafka_message_errstr(rkm));
                return;
        }
        if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                return;
        log_warn(NULL, "consumer: topic=%s partition=%d: %s", topic, (int)rkm->partition,
                 rd_kafka_message_errstr(rkm));
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

void consumer_put_back(struct consumer *c, rd_kafka_message_t *rkm);

/* Polls until the batch is full or batch_wait_ms passed since its first record. */
static size_t collect(struct consumer *c)
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

/* ------------------------------------------------------------------ decoding */

static void decode(struct consumer *c, struct item *it)
{
        static const char unknown[] = "-";
        char trace[80];

        if (codec_decode(c->codec, it->rkm->payload, it->rkm->len, &it->rec.ev, it->error,
                         sizeof(it->error)) == -1) {
                it->state = ITEM_DEAD;
                it->error_class = ERROR_PERMANENT;
                /* The receiver's trace id travels in a header too: the record can be found. */
                it->rec.trace_id = kafka_header_get(it->rkm, "trace_id", it->trace_header,
                                                    sizeof(it->trace_header)) == 0 &&
                                                   it->trace_header[0]
                                           ? it->trace_header
                                           : unknown;
                log_warn(it->rec.trace_id,
                         "undecodable record topic=%s partition=%d offset=%lld: %s", it->rec.topic,
                         it->rec.partition, it->rec.offset, it->error);
                return;
        }
        it->decoded = true;
        /* The header wins: it is what the receiver logged; fall back to the envelope. */
        if (kafka_header_get(it->rkm, "trace_id", trace, sizeof(trace)) == 0 && trace[0] &&
            strcmp(trace, it->rec.ev.trace_id) != 0)
                log_debug(it->rec.ev.trace_id, "trace_id header %s differs from the envelope",
                          trace);
        it->rec.trace_id = it->rec.ev.trace_id;
}

/* ------------------------------------------------------------------ applying */

static void mark_permanent(struct item *it)
{
        it->state = ITEM_DEAD;
        it->error_class = ERROR_PERMANENT;
        log_warn(it->rec.trace_id, "permanent failure topic=%s partition=%d offset=%lld: %s",
                 it->rec.topic, it->rec.partition, it->rec.offset, it->error);
}

static enum apply_result apply_one(struct consumer *c, struct item *it)
{
        enum apply_result r;

        it->error[0] = '\0';
        it->rec.publish = false;
        consumer_step_begins(c);
        r = c->role->apply(c->state, &it->rec, it->error, sizeof(it->error));
        if (r != APPLY_DONE && consumer_outage_now(c)) {
                it->state = ITEM_STOPPED;
                return APPLY_RETRY;
        }
        if (r == APPLY_PERMANENT)
                mark_permanent(it);
        else if (r == APPLY_DONE)
                it->state = ITEM_APPLIED;
        return r;
}

static bool savepoint(struct consumer *c, const char *verb, char *err, size_t err_size)
{
        return db_sql(c->db, verb, NULL, err, err_size) == DB_OK;
}

/* Sizes the apply_many / publish_many arguments for the batch; false when out of memory. */
static bool reserve_slots(struct consumer *c)
{
        struct apply_slot *slots;
        struct consumer_record **recs;

        if (c->slot_cap >= c->item_cnt)
                return true;
        if (!(slots = realloc(c->slots, c->item_cap * sizeof(*slots))))
                return false;
        c->slots = slots;
        if (!(recs = realloc(c->recs, c->item_cap * sizeof(*recs))))
                return false;
        c->recs = recs;
        c->slot_cap = c->item_cap;
        return true;
}

/* Every pending record, in batch order, as apply_many() slots. @returns how many. */
static size_t fill_slots(struct consumer *c)
{
        size_t n = 0;

        for (size_t i = 0; i < c->item_cnt; i++) {
                struct item *it = &c->items[i];

                if (it->state != ITEM_PENDING)
                        continue;
                it->error[0] = '\0';
                it->rec.publish = false;
                c->slots[n++] =
                        (struct apply_slot){&it->rec, APPLY_DONE, it->error, sizeof(it->error)};
        }
        return n;
}

/* After the commit: the slots' results, in the order fill_slots() took the items. */
static void take_slot_results(struct consumer *c)
{
        size_t n = 0;

        for (size_t i = 0; i < c->item_cnt; i++) {
                struct item *it = &c->items[i];

                if (it->state != ITEM_PENDING)
                        continue;
                if (c->slots[n++].result == APPLY_PERMANENT)
                        mark_permanent(it);
                else
                        it->state = it->rec.publish ? ITEM_APPLIED : ITEM_DONE;
        }
}

/*
 * The set-based fast path (roles with apply_many): the whole batch in one transaction and a
 * few statements. @returns false when it rolled everything back (the caller then goes one
 * record at a time, which also pins a permanent failure on its own record).
 */
static bool apply_batch_many(struct consumer *c)
{
        char err[512] = "";
        size_t n;

        if (!reserve_slots(c)) {
                snprintf(err, sizeof(err), "out of memory");
                goto fallback;
        }
        if (!(n = fill_slots(c)))
                return true;
        if (db_begin(c->db, err, sizeof(err)) != DB_OK)
                goto fallback;
        if (c->role->apply_many(c->state, c->slots, n, err, sizeof(err)) != APPLY_DONE ||
            db_commit(c->db, err, sizeof(err)) != DB_OK) {
                db_rollback(c->db);
                goto fallback;
        }
        take_slot_results(c);
        return true;
fallback:
        log_warn(NULL, "batch of %zu rolled back, retrying one record at a time: %s", c->item_cnt,
                 err);
        return false;
}

/*
 * The fast path: the whole batch in one transaction, a savepoint per record so that a
 * permanent failure drops only its own record. @returns false when a transient failure
 * rolled everything back (the caller then goes one record at a time).
 */
static bool apply_batch(struct consumer *c)
{
        char err[512];

        if (c->role->apply_many)
                return apply_batch_many(c);
        if (db_begin(c->db, err, sizeof(err)) != DB_OK)
                goto transient;
        for (size_t i = 0; i < c->item_cnt; i++) {
                struct item *it = &c->items[i];
                enum apply_result r;

                if (it->state != ITEM_PENDING)
                        continue;
                if (!savepoint(c, "SAVEPOINT rec", err, sizeof(err)))
                        goto rollback;
                r = apply_one(c, it);
                if (r == APPLY_RETRY) {
                        snprintf(err, sizeof(err), "%s", it->error);
                        goto rollback;
                }
                if (r == APPLY_PERMANENT &&
                    !savepoint(c, "ROLLBACK TO SAVEPOINT rec", err, sizeof(err)))
                        goto rollback;
        }
        if (db_commit(c->db, err, sizeof(err)) != DB_OK)
                goto rollback;
        for (size_t i = 0; i < c->item_cnt; i++)
                if (c->items[i].state == ITEM_APPLIED && !c->items[i].rec.publish)
                        c->items[i].state = ITEM_DONE;
        return true;
rollback:
        db_rollback(c->db);
transient:
        log_warn(NULL, "batch of %zu rolled back, retrying one record at a time: %s", c->item_cnt,
                 err);
        for (size_t i = 0; i < c->item_cnt; i++)
                if (c->items[i].state == ITEM_APPLIED || c->items[i].state == ITEM_PENDING)
                        c->items[i].state = ITEM_PENDING;
        return false;
}

static long long backoff_ms(const struct consumer *c, int attempt)
{
        return c->settings->retry_backoff_ms << (attempt > 1 ? attempt - 1 : 0);
}

/* Waits before the next attempt; false when a stop was requested meanwhile. */
bool consumer_backoff(struct consumer *c, int attempt)
{
        long long until = consumer_now_ms() + backoff_ms(c, attempt);

        while (consumer_now_ms() < until) {
                if (signals_stop_requested())
                        return false;
                /* Keep the group membership alive while we hold the partition. */
                rd_kafka_poll(c->producer, 0);
                sleep_ms(20);
        }
        return true;
}

/* One record, in its own transaction, three attempts. */
static void apply_single(struct consumer *c, struct item *it)
{
        char err[512];

        for (it->attempts = 1;; it->attempts++) {
                enum apply_result r = APPLY_RETRY;

                consumer_step_begins(c);
                if (db_begin(c->db, err, sizeof(err)) != DB_OK) {
                        snprintf(it->error, sizeof(it->error), "%s", err);
                } else if ((r = apply_one(c, it)) == APPLY_DONE &&
                           (consumer_step_begins(c), db_commit(c->db, err, sizeof(err)) != DB_OK)) {
                        snprintf(it->error, sizeof(it->error), "%s", err);
                        r = APPLY_RETRY;
                }
                if (r == APPLY_DONE) {
                        it->state = it->rec.publish ? ITEM_APPLIED : ITEM_DONE;
                        return;
                }
                db_rollback(c->db);
                if (consumer_outage_now(
                            c)) { /* even a lost COMMIT: the record is tried again later */
                        it->state = ITEM_STOPPED;
                        return;
                }
                if (r == APPLY_PERMANENT)
                        return;
                log_warn(it->rec.trace_id,
                         "attempt %d/%d failed topic=%s partition=%d offset=%lld: %s", it->attempts,
                         MAX_ATTEMPTS, it->rec.topic, it->rec.partition, it->rec.offset, it->error);
                if (it->attempts >= MAX_ATTEMPTS) {
                        it->state = ITEM_DEAD;
                        it->error_class = ERROR_TRANSIENT;
                        return;
                }
                metric_add(c->m_retried, 1);
                if (!consumer_backoff(c, it->attempts)) {
                        it->state = ITEM_STOPPED;
                        return;
                }
        }
}

/* Publish (Redis) effects after the commit, with the same three attempts. */
static void publish_one(struct consumer *c, struct item *it)
{
        for (int attempt = 1;; attempt++) {
                it->attempts = attempt; /* what dlq.attempts says if this step gives up */
                consumer_step_begins(c);
                if (c->role->publish(c->state, &it->rec, it->error, sizeof(it->error)) == 0) {
                        it->state = ITEM_DONE;
                        return;
                }
                if (consumer_outage_now(c)) {
                        it->state = ITEM_STOPPED;
                        return;
                }
                log_warn(it->rec.trace_id,
                         "publish attempt %d/%d failed topic=%s partition=%d offset=%lld: %s",
                         attempt, MAX_ATTEMPTS, it->rec.topic, it->rec.partition, it->rec.offset,
                         it->error);
                if (attempt >= MAX_ATTEMPTS) {
                        /* MySQL has it; replaying the DLQ record re-runs this idempotent step. */
                        it->state = ITEM_DEAD;
                        it->error_class = ERROR_TRANSIENT;
                        return;
                }
                metric_add(c->m_retried, 1);
                if (!consumer_backoff(c, attempt)) {
                        it->state = ITEM_STOPPED;
                        return;
                }
        }
}

/* The publish step of every applied record: all at once when the role can, else one by one. */
static void publish_batch(struct consumer *c)
{
        char err[512];
        size_t n = 0;

        for (size_t i = 0; i < c->item_cnt; i++)
                if (c->items[i].state == ITEM_APPLIED && !c->role->publish)
                        c->items[i].state = ITEM_DONE;
        if (c->role->publish_many && reserve_slots(c)) {
                for (size_t i = 0; i < c->item_cnt; i++)
                        if (c->items[i].state == ITEM_APPLIED)
                                c->recs[n++] = &c->items[i].rec;
                if (!n)
                        return;
                consumer_step_begins(c);
                if (c->role->publish_many(c->state, c->recs, n, err, sizeof(err)) == 0) {
                        for (size_t i = 0; i < c->item_cnt; i++)
                                if (c->items[i].state == ITEM_APPLIED)
                                        c->items[i].state = ITEM_DONE;
                        return;
                }
                if (consumer_outage_now(c))
                        return;
                log_warn(NULL, "publishing %zu record(s) at once failed, one at a time now: %s", n,
                         err);
        }
        for (size_t i = 0; i < c->item_cnt && !c->is_outage; i++)
                if (c->items[i].state == ITEM_APPLIED)
                        publish_one(c, &c->items[i]);
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
static void process_batch(struct consumer *c)
{
        long long t0 = clock_mono_us(), t_apply, t_publish;
        size_t applied = 0;

        c->is_outage = false;
        consumer_step_begins(c);
        for (size_t i = 0; i < c->item_cnt; i++)
                decode(c, &c->items[i]);
        if (!apply_batch(c) && !consumer_outage_now(c)) {
                for (size_t i = 0; i < c->item_cnt; i++) {
                        if (c->items[i].state == ITEM_PENDING)
                                apply_single(c, &c->items[i]);
                        if (c->items[i].state == ITEM_STOPPED)
                                break; /* a stop or an outage: leave the rest for next time */
                }
        }
        t_apply = clock_mono_us();
        if (!c->is_outage)
                publish_batch(c);
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
        batch_clear(c);
}

/* ------------------------------------------------------------------ rebalance */

/* Revocation drains first: the current batch is already finished (we are inside poll only
 * between batches), so commit what is stored before giving the partitions away. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
        struct consumer *c = opaque;
        rd_kafka_error_t *error = NULL;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                error = rd_kafka_incremental_assign(rk, parts);
                if (!error && store_breaker_is_open(c->breaker) && !c->is_probing)
                        rd_kafka_pause_partitions(rk, parts); /* held like the others */
                c->joined = true;
                consumer_lag_assign(c->lag, parts);
                c->assigned += parts->cnt;
                log_info(NULL, "assigned %d partition(s), %d in all", parts->cnt, c->assigned);
        } else {
                if (c->item_cnt)
                        process_batch(c);
                rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);

                if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                        log_warn(NULL, "commit on revoke: %s (the records will be seen again)",
                                 rd_kafka_err2str(cerr));
                error = rd_kafka_incremental_unassign(rk, parts);
                consumer_lag_revoke(c->lag, parts);
                c->assigned -= parts->cnt;
                if (c->assigned < 0)
                        c->assigned = 0;
                log_info(NULL, "revoked %d partition(s), %d left", parts->cnt, c->assigned);
        }
        metric_set(c->m_assigned, c->assigned);
        if (error) {
                log_error(NULL, "rebalance: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        }
}

/* ------------------------------------------------------------------ life cycle */

static int open_stores(struct consumer *c, char *errstr, size_t errstr_size)
{
        const struct settings *s = c->settings;

        if (!(c->codec = codec_new(errstr, errstr_size)))
                return -1;
        if (!(c->db = db_new(s->mysql_url, (int)s->mysql_timeout_s, errstr, errstr_size)))
                return -1;
        if (!(c->redis =
                      redis_conn_new(s->redis_url, (int)s->redis_timeout_ms, errstr, errstr_size)))
                return -1;
        if (!(c->producer = kafka_producer_new(s, c->group, consumer_on_dlq_delivery, c, errstr,
                                               errstr_size)))
                return -1;
        return 0;
}

struct consumer *consumer_new(const struct consumer_role *role, const struct settings *s,
                              struct metrics *metrics, char *errstr, size_t errstr_size)
{
        struct consumer *c = calloc(1, sizeof(*c));

        if (!c) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        c->role = role;
        c->settings = s;
        c->metrics = metrics;
        if (s->group_id)
                snprintf(c->group, sizeof(c->group), "%s", s->group_id);
        else
                snprintf(c->group, sizeof(c->group), LF_GROUP_PREFIX "%s", role->name);
        consumer_register_metrics(c);
        if (consumer_register_topic_metrics(c) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        if (!(c->lag = consumer_lag_new(metrics, role->name)) ||
            !(c->breaker = store_breaker_new(metrics, role->name, s->retry_backoff_ms,
                                             s->store_backoff_max_ms))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        if (open_stores(c, errstr, errstr_size) == -1)
                goto fail;
        c->env = (struct role_env){s, c->db, c->redis, metrics, c->producer, &c->ack, role->name};
        if (role->open && role->open(&c->env, &c->state, errstr, errstr_size) == -1)
                goto fail;
        if (!(c->rk = kafka_consumer_new(s, c->group, role->topics, on_rebalance, consumer_on_stats,
                                         5000, c, errstr, errstr_size)))
                goto fail;
        consumer_lag_set_consumer(c->lag, c->rk);
        return c;
fail:
        consumer_destroy(c);
        return NULL;
}

void consumer_run(struct consumer *c)
{
        while (!signals_stop_requested()) {
                long long now;

                if (store_breaker_is_open(c->breaker) && !c->is_probing) {
                        consumer_wait_for_store(c);
                        continue;
                }
                c->collect_start_us = clock_mono_us();
                if (collect(c))
                        process_batch(c);
                else if (c->is_probing && consumer_now_ms() - c->probe_started_ms > 2000)
                        process_batch(c); /* nothing came back to try (revoked?): the ping was it */
                rd_kafka_poll(c->producer, 0);
                now = consumer_now_ms();
                if (c->role->tick && now - c->last_tick_ms >= 1000) {
                        c->last_tick_ms = now;
                        c->role->tick(c->state, now);
                }
        }
}

/*
 * A static member (group.instance.id) does not leave its group when it closes, so its
 * partitions would sit unowned until its session times out. A planned stop leaves explicitly:
 * unsubscribing sends the LeaveGroup (with the instance id) before the close, and the revocation
 * commits what is stored, so the group hands the partitions over at once. A copy that comes back
 * at once (a rolling restart) can keep them instead: LIVEFLOW_LEAVE_ON_STOP=0.
 */
static void leave_group(struct consumer *c, int timeout_ms)
{
        long long deadline = consumer_now_ms() + timeout_ms;
        rd_kafka_resp_err_t err = rd_kafka_unsubscribe(c->rk);

        if (err) {
                log_warn(NULL, "leaving group %s: %s", c->group, rd_kafka_err2str(err));
                return;
        }
        while (c->assigned > 0 && consumer_now_ms() < deadline) {
                rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, 100); /* the revocation */

                if (rkm) /* fetched before the revocation: the next owner reads it */
                        rd_kafka_message_destroy(rkm);
        }
        log_info(NULL, "left group %s (static member %s), %d partition(s) still held", c->group,
                 c->settings->instance_id, c->assigned);
}

int consumer_drain(struct consumer *c, int timeout_ms)
{
        rd_kafka_resp_err_t err;
        int rc = 0;

        c->draining = true;
        log_info(NULL, "draining: committing offsets and leaving group %s", c->group);
        if (c->item_cnt) /* records polled but not processed: they will be seen again */
                batch_clear(c);
        if (c->settings->instance_id && c->settings->leave_on_stop)
                leave_group(c, timeout_ms);
        err = rd_kafka_consumer_close(c->rk);
        if (err) {
                log_error(NULL, "consumer close: %s", rd_kafka_err2str(err));
                rc = -1;
        }
        if (rd_kafka_flush(c->producer, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            rd_kafka_outq_len(c->producer) > 0) {
                log_error(NULL, "%d produced record(s) not delivered at the deadline",
                          rd_kafka_outq_len(c->producer));
                rc = -1;
        }
        return rc;
}

void consumer_destroy(struct consumer *c)
{
        if (!c)
                return;
        batch_clear(c);
        if (c->state && c->role->close)
                c->role->close(c->state);
        consumer_lag_destroy(c->lag); /* before the consumer its scrapes read */
        if (c->rk)
                rd_kafka_destroy(c->rk);
        if (c->producer)
                rd_kafka_destroy(c->producer);
        db_destroy(c->db);
        redis_conn_destroy(c->redis);
        codec_destroy(c->codec);
        store_breaker_destroy(c->breaker);
        free(c->m_fetched);
        free(c->m_replayed);
        free(c->items);
        free(c->slots);
        free(c->recs);
        free(c);
}

bool consumer_is_ready(void *arg, char *why, size_t why_size)
{
        struct consumer *c = arg;

        if (c->draining) {
                snprintf(why, why_size, "draining");
                return false;
        }
        if (!c->joined) { /* until then, records produced now would wait for the join */
                snprintf(why, why_size, "joining group %s", c->group);
                return false;
        }
        return store_breaker_ready(c->breaker, why, why_size);
}
