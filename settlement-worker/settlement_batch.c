/*
 * settlement_batch.c: the settlement role a batch at once, runs of tips set-based
 * (settlement_apply() per record in settlement.c stays the fallback and the oracle).
 */
#include "settlement_role.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "ledger.h"
#include "log.h"
#include "role_kit.h"
#include "settlement.h"

/* ------------------------------------------------------------------ a batch at once */

/*
 * settlement_apply() for a batch. Tips go set-based, a run of consecutive tips at a time, in
 * six statements per run instead of five per tip: which events the ledger holds, which tips
 * settlement_detail holds (plain reads: a row committed since shows up as a duplicate key
 * below), every tip's ratio in one query, then one multi-row INSERT each into live_events and
 * settlement_detail and one upsert of the balances, anchors in key order. Withdrawals and
 * session ends keep their own statements in their place in the batch, so a withdrawal sees
 * the tips before it. Anything that would be refused after a write (a tip_id settled with
 * another anchor or amount, a ratio out of range), ids MySQL matches other than byte for
 * byte, or rows another transaction took meanwhile roll the batch back to settlement_apply()
 * one record at a time, which sorts them out.
 */
struct run_tip {
        struct consumer_record *rec;
        struct settlement_event se;
        size_t index;    /* in the run: ties keep it */
        bool is_replay;  /* the ledger holds this event (or an earlier copy in the run is it) */
        bool is_settled; /* settlement_detail (or an earlier tip of the run) holds the tip_id */
        bool is_known;   /* a row came back for it */
        long long ratio_bp;
        struct settlement_split split;
};

struct tip_run {
        struct settlement_state *st;
        struct run_tip *tips;
        struct run_tip **sorted; /* by event_id or tip_id, then run order */
        size_t n;
        bool is_mismatch;
        struct db_text sql;
};

enum run_key { KEY_EVENT, KEY_TIP };

static const char *run_key(const struct run_tip *t, enum run_key key)
{
        return key == KEY_EVENT ? t->rec->ev.event_id : t->se.id;
}

static int cmp_by_event(const void *a, const void *b)
{
        const struct run_tip *x = *(struct run_tip *const *)a, *y = *(struct run_tip *const *)b;
        int c = strcmp(x->rec->ev.event_id, y->rec->ev.event_id);

        return c ? c : (x->index > y->index) - (x->index < y->index);
}

static int cmp_by_tip(const void *a, const void *b)
{
        const struct run_tip *x = *(struct run_tip *const *)a, *y = *(struct run_tip *const *)b;
        int c = strcmp(x->se.id, y->se.id);

        return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Sorts the run's tips (all, or only those not replayed) by key; @returns how many. */
static size_t sort_run(struct tip_run *run, enum run_key key)
{
        size_t m = 0;

        for (size_t i = 0; i < run->n; i++)
                if (key == KEY_EVENT || !run->tips[i].is_replay)
                        run->sorted[m++] = &run->tips[i];
        qsort(run->sorted, m, sizeof(*run->sorted), key == KEY_EVENT ? cmp_by_event : cmp_by_tip);
        return m;
}

/* The first of the sorted tips with this key, or m when none. */
static size_t find_sorted(const struct tip_run *run, size_t m, enum run_key key, const char *id)
{
        size_t lo = 0, hi = m;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (strcmp(run_key(run->sorted[mid], key), id) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < m && strcmp(run_key(run->sorted[lo], key), id) == 0 ? lo : m;
}

/* Appends "(k1, k2, ...)": the distinct keys of the m sorted tips. */
static void add_keys(struct tip_run *run, size_t m, enum run_key key)
{
        db_text_add(&run->sql, "(");
        for (size_t i = 0; i < m; i++) {
                const char *id = run_key(run->sorted[i], key);

                if (i && strcmp(id, run_key(run->sorted[i - 1], key)) == 0)
                        continue;
                db_text_add(&run->sql, i ? ", " : "");
                db_text_str(run->st->db, &run->sql, id);
        }
        db_text_add(&run->sql, ")");
}

struct key_sink {
        struct tip_run *run;
        size_t m;
        enum run_key key;
        char id[ID_MAX + 1];
        char anchor[ID_MAX + 1];
};

/* Marks the sorted tips whose key came back (the copies of one key are adjacent). */
static void on_known_key(const struct db_col *cols, void *arg)
{
        struct key_sink *ks = arg;
        struct tip_run *run = ks->run;
        size_t i = find_sorted(run, ks->m, ks->key, ks->id);

        if (i == ks->m) {
                run->is_mismatch = true;
                return;
        }
        for (; i < ks->m && strcmp(run_key(run->sorted[i], ks->key), ks->id) == 0; i++) {
                struct run_tip *t = run->sorted[i];

                t->is_known = true;
                if (ks->key == KEY_TIP &&
                    (strcmp(ks->anchor, t->se.anchor_id) != 0 || cols[2].i != t->se.amount))
                        run->is_mismatch = true; /* settled_before() refuses it, one at a time */
        }
}

/* Which events the ledger holds; the later copies of one event in the run are replays too. */
static enum db_result find_replays(struct tip_run *run, char *errstr, size_t errstr_size)
{
        struct key_sink ks = {.run = run, .m = sort_run(run, KEY_EVENT), .key = KEY_EVENT};
        struct db_col col = {.type = DB_PARAM_STR, .s = ks.id, .s_size = sizeof(ks.id)};
        enum db_result r;

        db_text_reset(&run->sql);
        db_text_add(&run->sql, "SELECT event_id FROM live_events WHERE consumer = 'settlement' AND "
                               "event_id IN ");
        add_keys(run, ks.m, KEY_EVENT);
        if ((r = db_text_query(run->st->db, &run->sql, &col, 1, on_known_key, &ks, errstr,
                               errstr_size)) != DB_OK)
                return r;
        for (size_t i = 0; i < ks.m; i++) {
                struct run_tip *t = run->sorted[i];

                t->is_replay =
                        t->is_known || (i && strcmp(t->rec->ev.event_id,
                                                    run->sorted[i - 1]->rec->ev.event_id) == 0);
                t->is_known = false;
        }
        return DB_OK;
}

/*
 * Which tips settlement_detail holds (with the same anchor and amount, else a mismatch); the
 * later copies of one tip_id in the run are duplicates of the first, if they agree with it.
 */
static enum db_result find_settled(struct tip_run *run, char *errstr, size_t errstr_size)
{
        struct key_sink ks = {.run = run, .m = sort_run(run, KEY_TIP), .key = KEY_TIP};
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = ks.id, .s_size = sizeof(ks.id)},
                                {.type = DB_PARAM_STR, .s = ks.anchor, .s_size = sizeof(ks.anchor)},
                                {.type = DB_PARAM_I64}};
        enum db_result r;

        if (!ks.m)
                return DB_OK;
        db_text_reset(&run->sql);
        db_text_add(&run->sql, "SELECT trace_id, anchor_id, amount FROM settlement_detail WHERE "
                               "trace_id IN ");
        add_keys(run, ks.m, KEY_TIP);
        if ((r = db_text_query(run->st->db, &run->sql, cols, 3, on_known_key, &ks, errstr,
                               errstr_size)) != DB_OK)
                return r;
        for (size_t i = 0; i < ks.m; i++) {
                struct run_tip *t = run->sorted[i], *prev = i ? run->sorted[i - 1] : NULL;
                bool is_copy = prev && strcmp(t->se.id, prev->se.id) == 0;

                t->is_settled = t->is_known || is_copy;
                t->is_known = false; /* free for find_ratios() */
                if (is_copy && (strcmp(t->se.anchor_id, prev->se.anchor_id) != 0 ||
                                t->se.amount != prev->se.amount))
                        run->is_mismatch = true;
        }
        return DB_OK;
}

static bool is_new_tip(const struct run_tip *t)
{
        return !t->is_replay && !t->is_settled;
}

static void on_ratio(const struct db_col *cols, void *arg)
{
        struct tip_run *run = arg;

        if (cols[0].i < 0 || (size_t)cols[0].i >= run->n) {
                run->is_mismatch = true;
                return;
        }
        run->tips[cols[0].i].ratio_bp = cols[1].is_null ? run->st->default_ratio_bp : cols[1].i;
        run->tips[cols[0].i].is_known = true;
}

/*
 * find_ratio() of every new tip in one query: a row per tip, keyed by its place in the run,
 * each with find_ratio's own subquery (so MySQL compares ids and times as it always did).
 */
static enum db_result find_ratios(struct tip_run *run, char *errstr, size_t errstr_size)
{
        struct db_col cols[] = {{.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}};
        bool is_first = true;
        enum db_result r;

        db_text_reset(&run->sql);
        for (size_t i = 0; i < run->n; i++) {
                const struct run_tip *t = &run->tips[i];

                if (!is_new_tip(t))
                        continue;
                db_text_add(&run->sql,
                            "%sSELECT %zu, (SELECT ratio_bp FROM revenue_share WHERE "
                            "anchor_id = ",
                            is_first ? "" : " UNION ALL ", i);
                db_text_str(run->st->db, &run->sql, t->se.anchor_id);
                db_text_add(&run->sql,
                            " AND effective_at <= FROM_UNIXTIME(%lld / 1000) ORDER BY "
                            "effective_at DESC LIMIT 1)",
                            t->se.time_ms);
                is_first = false;
        }
        if (is_first)
                return DB_OK;
        if ((r = db_text_query(run->st->db, &run->sql, cols, 2, on_ratio, run, errstr,
                               errstr_size)) != DB_OK)
                return r;
        for (size_t i = 0; i < run->n; i++) {
                struct run_tip *t = &run->tips[i];

                if (!is_new_tip(t))
                        continue;
                if (!t->is_known || settlement_split(t->se.amount, t->ratio_bp, &t->split) == -1)
                        run->is_mismatch = true; /* apply_tip() refuses it, one at a time */
        }
        return DB_OK;
}

/*
 * ledger_record() for every event seen first in the run, with its final outcome, in one
 * INSERT IGNORE; a row fewer than sent means another transaction recorded one of them
 * meanwhile.
 */
static enum db_result record_run(struct tip_run *run, char *errstr, size_t errstr_size)
{
        size_t rows = 0;

        ledger_text_begin(&run->sql);
        for (size_t i = 0; i < run->n; i++) {
                const struct run_tip *t = &run->tips[i];

                if (!t->is_replay)
                        ledger_text_row(run->st->ledger, &run->sql, t->rec,
                                        t->is_settled ? "duplicate_tip" : "applied", rows++ == 0);
        }
        return ledger_text_exec(run->st->ledger, &run->sql, rows, errstr, errstr_size);
}

/* insert_detail() for every new tip; a plain INSERT, as there. */
static enum db_result insert_details(struct tip_run *run, size_t *count, char *errstr,
                                     size_t errstr_size)
{
        db_text_reset(&run->sql);
        db_text_add(&run->sql, "INSERT INTO settlement_detail (trace_id, anchor_id, amount, "
                               "ratio_bp, anchor_amount, platform_amount, tipped_at) VALUES ");
        *count = 0;
        for (size_t i = 0; i < run->n; i++) {
                const struct run_tip *t = &run->tips[i];

                if (!is_new_tip(t))
                        continue;
                db_text_add(&run->sql, (*count)++ ? ", (" : "(");
                db_text_str(run->st->db, &run->sql, t->se.id);
                db_text_add(&run->sql, ", ");
                db_text_str(run->st->db, &run->sql, t->se.anchor_id);
                db_text_add(&run->sql, ", %lld, %lld, %lld, %lld, FROM_UNIXTIME(%lld / 1000))",
                            t->se.amount, t->ratio_bp, t->split.anchor_amount,
                            t->split.platform_amount, t->se.time_ms);
        }
        return *count ? db_text_exec(run->st->db, &run->sql, NULL, errstr, errstr_size) : DB_OK;
}

static int cmp_by_anchor(const void *a, const void *b)
{
        const struct run_tip *x = *(struct run_tip *const *)a, *y = *(struct run_tip *const *)b;

        return strcmp(x->se.anchor_id, y->se.anchor_id);
}

/* credit() for every anchor of the new tips, their shares summed, anchors in key order. */
static enum db_result credit_run(struct tip_run *run, char *errstr, size_t errstr_size)
{
        size_t m = 0;

        for (size_t i = 0; i < run->n; i++)
                if (is_new_tip(&run->tips[i]))
                        run->sorted[m++] = &run->tips[i];
        qsort(run->sorted, m, sizeof(*run->sorted), cmp_by_anchor);
        db_text_reset(&run->sql);
        db_text_add(&run->sql, "INSERT INTO settlement (anchor_id, total_amount, withdrawn_amount, "
                               "available_amount) VALUES ");
        for (size_t i = 0, rows = 0; i < m; rows++) {
                const char *anchor = run->sorted[i]->se.anchor_id;
                long long share = 0;

                for (; i < m && strcmp(run->sorted[i]->se.anchor_id, anchor) == 0; i++)
                        if (__builtin_add_overflow(share, run->sorted[i]->split.anchor_amount,
                                                   &share)) {
                                /* credit() refuses the tip that overflows, one at a time */
                                snprintf(errstr, errstr_size, "anchor %s: shares overflow", anchor);
                                return DB_FATAL;
                        }
                db_text_add(&run->sql, rows ? ", (" : "(");
                db_text_str(run->st->db, &run->sql, anchor);
                db_text_add(&run->sql, ", %lld, 0, %lld)", share, share);
        }
        db_text_add(&run->sql, " ON DUPLICATE KEY UPDATE total_amount = total_amount + "
                               "VALUES(total_amount), available_amount = available_amount + "
                               "VALUES(available_amount)");
        return db_text_exec(run->st->db, &run->sql, NULL, errstr, errstr_size);
}

/* What apply_tip() and settled_before() say of each tip, once the run is written. */
static void finish_run(struct tip_run *run)
{
        for (size_t i = 0; i < run->n; i++) {
                struct run_tip *t = &run->tips[i];
                struct consumer_record *rec = t->rec;

                if (t->is_replay)
                        continue; /* this very event was applied before */
                if (t->is_settled) {
                        rec->note = NOTE_TIP_DUPLICATE;
                        log_info(rec->trace_id,
                                 "tip %s settled before anchor=%s topic=%s partition=%d "
                                 "offset=%lld",
                                 t->se.id, t->se.anchor_id, rec->topic, rec->partition,
                                 rec->offset);
                } else {
                        rec->note = NOTE_TIP_SETTLED;
                        log_info(rec->trace_id,
                                 "tip %s anchor=%s amount=%lld ratio_bp=%lld anchor_amount=%lld "
                                 "platform_amount=%lld topic=%s partition=%d offset=%lld",
                                 t->se.id, t->se.anchor_id, t->se.amount, t->ratio_bp,
                                 t->split.anchor_amount, t->split.platform_amount, rec->topic,
                                 rec->partition, rec->offset);
                }
                rec->publish = true;
        }
}

static enum apply_result write_run(struct tip_run *run, char *errstr, size_t errstr_size)
{
        size_t settled = 0;
        enum db_result r;

        if ((r = find_replays(run, errstr, errstr_size)) != DB_OK ||
            (r = find_settled(run, errstr, errstr_size)) != DB_OK ||
            (r = find_ratios(run, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        if (run->is_mismatch) {
                snprintf(errstr, errstr_size, "a tip to sort out one at a time");
                return APPLY_RETRY;
        }
        if ((r = record_run(run, errstr, errstr_size)) != DB_OK ||
            (r = insert_details(run, &settled, errstr, errstr_size)) != DB_OK ||
            (settled && (r = credit_run(run, errstr, errstr_size)) != DB_OK))
                /* a duplicate key: another transaction took a row since our reads */
                return r == DB_DUPLICATE ? APPLY_RETRY : apply_from_db(r);
        finish_run(run);
        return APPLY_DONE;
}

/* Applies the run's tips (if any) and empties it. */
static enum apply_result flush_run(struct tip_run *run, char *errstr, size_t errstr_size)
{
        enum apply_result ar = APPLY_DONE;

        if (run->n)
                ar = write_run(run, errstr, errstr_size);
        run->n = 0;
        run->is_mismatch = false;
        return ar;
}

/* Each record in batch order: tips gather in the run, anything else flushes it first. */
static enum apply_result apply_slots(struct tip_run *run, struct apply_slot *slots, size_t n,
                                     char *errstr, size_t errstr_size)
{
        enum apply_result ar;

        for (size_t i = 0; i < n; i++) {
                struct consumer_record *rec = slots[i].rec;
                struct settlement_event se;

                rec->note = NOTE_NONE;
                if (settlement_is_ignored(rec))
                        continue;
                if (settlement_read_event(&rec->ev, &se, slots[i].error, slots[i].error_size) ==
                    -1) {
                        slots[i].result = APPLY_PERMANENT; /* nothing written for it */
                        continue;
                }
                if (se.kind == KIND_TIP) {
                        run->tips[run->n] = (struct run_tip){.rec = rec, .se = se, .index = run->n};
                        run->n++;
                        continue;
                }
                if ((ar = flush_run(run, errstr, errstr_size)) != APPLY_DONE ||
                    (ar = settlement_apply_event(run->st, rec, &se, errstr, errstr_size)) !=
                            APPLY_DONE)
                        return ar;
        }
        return flush_run(run, errstr, errstr_size);
}

enum apply_result settlement_apply_many(void *state, struct apply_slot *slots, size_t n,
                                        char *errstr, size_t errstr_size)
{
        struct tip_run run = {.st = state};
        enum apply_result ar = APPLY_RETRY;

        run.tips = calloc(n, sizeof(*run.tips));
        run.sorted = calloc(n, sizeof(*run.sorted));
        if (run.tips && run.sorted)
                ar = apply_slots(&run, slots, n, errstr, errstr_size);
        else
                snprintf(errstr, errstr_size, "out of memory");
        db_text_free(&run.sql);
        free(run.tips);
        free(run.sorted);
        return ar;
}
