/*
 * consumer_apply.c: a batch's records decoded, applied in MySQL (the whole batch in one
 * transaction, set-based when the role can; else one record at a time, three attempts) and
 * published after the commit.
 */
#include "consumer_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "signals.h"
#include "text.h"

/* ------------------------------------------------------------------ decoding */

void consumer_decode(struct consumer *c, struct item *it)
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

/* A failure of a whole-batch attempt: transient ones (a deadlock) are worth a second try. */
static enum apply_result batch_failure(enum db_result r)
{
        return r == DB_RETRY ? APPLY_RETRY : APPLY_PERMANENT;
}

/*
 * The set-based fast path (roles with apply_many): the whole batch in one transaction and a
 * few statements. @returns APPLY_DONE, or APPLY_RETRY / APPLY_PERMANENT (transient or not)
 * with err when it rolled everything back.
 */
static enum apply_result apply_many_once(struct consumer *c, char *err, size_t err_size)
{
        enum apply_result r;
        enum db_result dr;
        size_t n;

        if (!reserve_slots(c)) {
                snprintf(err, err_size, "out of memory");
                return APPLY_PERMANENT;
        }
        if (!(n = fill_slots(c)))
                return APPLY_DONE;
        if ((dr = db_begin(c->db, err, err_size)) != DB_OK)
                return batch_failure(dr);
        if ((r = c->role->apply_many(c->state, c->slots, n, err, err_size)) != APPLY_DONE) {
                db_rollback(c->db);
                return r == APPLY_RETRY ? APPLY_RETRY : APPLY_PERMANENT;
        }
        if ((dr = db_commit(c->db, err, err_size)) != DB_OK) {
                db_rollback(c->db);
                return batch_failure(dr);
        }
        take_slot_results(c);
        return APPLY_DONE;
}

/*
 * The fast path of a role without apply_many: the whole batch in one transaction, a savepoint
 * per record so that a permanent failure drops only its own record. @returns as
 * apply_many_once(); the records it applied are pending again after a rollback.
 */
static enum apply_result apply_savepoints_once(struct consumer *c, char *err, size_t err_size)
{
        enum apply_result r = APPLY_RETRY;
        enum db_result dr;

        if ((dr = db_begin(c->db, err, err_size)) != DB_OK)
                return batch_failure(dr);
        for (size_t i = 0; i < c->item_cnt; i++) {
                struct item *it = &c->items[i];

                if (it->state != ITEM_PENDING)
                        continue;
                if (!savepoint(c, "SAVEPOINT rec", err, err_size))
                        goto rollback;
                if ((r = apply_one(c, it)) == APPLY_RETRY) {
                        snprintf(err, err_size, "%s", it->error);
                        goto rollback;
                }
                if (r == APPLY_PERMANENT &&
                    !savepoint(c, "ROLLBACK TO SAVEPOINT rec", err, err_size))
                        goto rollback;
        }
        if ((dr = db_commit(c->db, err, err_size)) != DB_OK) {
                r = batch_failure(dr);
                goto rollback;
        }
        for (size_t i = 0; i < c->item_cnt; i++)
                if (c->items[i].state == ITEM_APPLIED && !c->items[i].rec.publish)
                        c->items[i].state = ITEM_DONE;
        return APPLY_DONE;
rollback:
        db_rollback(c->db);
        for (size_t i = 0; i < c->item_cnt; i++)
                if (c->items[i].state == ITEM_APPLIED)
                        c->items[i].state = ITEM_PENDING;
        return r == APPLY_DONE ? APPLY_RETRY : r;
}

/*
 * The whole batch in one transaction, tried again whole after a transient failure. Two
 * members of a group (lanes of one process, or copies) apply batches at the same time, and
 * a batch's locking reads lock the gaps where its new rows go: two batches inserting into each
 * other's gaps deadlock, and MariaDB rolls one back. The other commits meanwhile, so the
 * victim's second try usually goes through, where one record at a time would cost a
 * transaction per record. @returns false when it gave up: the caller then goes one record at
 * a time, which also pins a permanent failure on its own record.
 */
bool consumer_apply_batch(struct consumer *c)
{
        char err[512] = "";

        for (int attempt = 1;; attempt++) {
                enum apply_result r = c->role->apply_many
                                              ? apply_many_once(c, err, sizeof(err))
                                              : apply_savepoints_once(c, err, sizeof(err));

                if (r == APPLY_DONE)
                        return true;
                if (r != APPLY_RETRY || attempt >= BATCH_ATTEMPTS || consumer_outage_now(c) ||
                    signals_stop_requested())
                        break;
                metric_add(c->m_retried, 1);
                log_info(NULL, "batch of %zu rolled back (%s), trying it whole again", c->item_cnt,
                         err);
        }
        log_warn(NULL, "batch of %zu rolled back, retrying one record at a time: %s", c->item_cnt,
                 err);
        return false;
}

/* One record, in its own transaction, three attempts. */
void consumer_apply_single(struct consumer *c, struct item *it)
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
void consumer_publish_batch(struct consumer *c)
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

struct codec *role_env_codec(const struct role_env *env, struct codec **owned, char *errstr,
                             size_t errstr_size)
{
        *owned = env->codec ? NULL : codec_new(errstr, errstr_size);
        return env->codec ? env->codec : *owned;
}

void consumer_log_applied(const struct consumer_record *rec, const char *const pairs[])
{
        char line[1024], num[TEXT_LL_MAX];
        size_t len = 0;

        if (log_current_level < LOG_LEVEL_INFO)
                return;
        line[0] = '\0';
        text_append(line, sizeof(line), &len, rec->ev.event_type ? rec->ev.event_type : "-");
        for (size_t i = 0; pairs[i]; i += 2) {
                text_append(line, sizeof(line), &len, " ");
                text_append(line, sizeof(line), &len, pairs[i]);
                text_append(line, sizeof(line), &len, "=");
                text_append(line, sizeof(line), &len, pairs[i + 1] ? pairs[i + 1] : "-");
        }
        text_append(line, sizeof(line), &len, " topic=");
        text_append(line, sizeof(line), &len, rec->topic);
        text_append(line, sizeof(line), &len, " partition=");
        text_int(num, sizeof(num), rec->partition);
        text_append(line, sizeof(line), &len, num);
        text_append(line, sizeof(line), &len, " offset=");
        text_int(num, sizeof(num), rec->offset);
        text_append(line, sizeof(line), &len, num);
        log_write_msg(LOG_LEVEL_INFO, rec->trace_id, line);
}
