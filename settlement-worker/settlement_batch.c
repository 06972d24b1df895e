/*
 * settlement_batch.c: the settlement role a batch at once, runs of tips set-based
 * (settlement_apply() per record in settlement.c stays the fallback and the oracle).
 */
#include "settlement_role.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "keyset.h"
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
 *
 * In a stream of new tips the two look-ups find nothing, so a run first goes without them
 * (write_unread()): the copies within the run are sorted out in memory, a SAVEPOINT is taken,
 * and the writes themselves say whether the ledger or settlement_detail held a row (a skipped
 * ledger row, a duplicate key). Then the run rolls back to the savepoint and takes the reading
 * way above; after that, runs read first until one finds nothing held (a replay after a
 * restart is many runs of rows held before, each then read once instead of written twice).
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
        size_t held; /* rows the look-ups found in the ledger or settlement_detail */
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
        run->held++;
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

/* A revenue_share row of one of the run's anchors: from when (Unix ms) which ratio. */
struct share_row {
        size_t anchor; /* index into the run's distinct anchors */
        long long effective_ms, ratio_bp;
};

struct share_sink {
        struct tip_run *run;
        const char **anchors; /* the distinct anchors of the new tips, byte order */
        size_t anchor_cnt;
        struct share_row *rows;
        size_t n, cap;
        char anchor_id[ID_MAX + 1];
};

static int cmp_share_row(const void *a, const void *b)
{
        const struct share_row *x = a, *y = b;

        if (x->anchor != y->anchor)
                return (x->anchor > y->anchor) - (x->anchor < y->anchor);
        return (x->effective_ms > y->effective_ms) - (x->effective_ms < y->effective_ms);
}

static void on_share(const struct db_col *cols, void *arg)
{
        struct share_sink *ss = arg;
        const char *key = ss->anchor_id;
        const char **hit =
                bsearch(&key, ss->anchors, ss->anchor_cnt, sizeof(*ss->anchors), role_cmp_str);

        if (!hit || cols[1].is_null || cols[2].is_null) { /* another spelling of one of ours */
                ss->run->is_mismatch = true;
                return;
        }
        if (ss->n == ss->cap) {
                size_t cap = ss->cap ? ss->cap * 2 : 64;
                struct share_row *rows = realloc(ss->rows, cap * sizeof(*rows));

                if (!rows) {
                        ss->run->is_mismatch = true; /* one at a time needs no memory */
                        return;
                }
                ss->rows = rows;
                ss->cap = cap;
        }
        ss->rows[ss->n++] = (struct share_row){(size_t)(hit - ss->anchors), cols[1].i, cols[2].i};
}

/* The ratio in force at time_ms among the anchor's rows (sorted): the newest not after it. */
static bool ratio_at(const struct share_sink *ss, size_t anchor, long long time_ms,
                     long long *ratio_bp)
{
        const struct share_row *best = NULL;
        size_t lo = 0, hi = ss->n;

        while (lo < hi) { /* the first row of a later anchor, or of this one after time_ms */
                size_t mid = lo + (hi - lo) / 2;
                const struct share_row *r = &ss->rows[mid];

                if (r->anchor < anchor || (r->anchor == anchor && r->effective_ms <= time_ms))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo > 0 && ss->rows[lo - 1].anchor == anchor)
                best = &ss->rows[lo - 1];
        if (best)
                *ratio_bp = best->ratio_bp;
        return best != NULL;
}

/* The latest tip time FROM_UNIXTIME() takes on every server: later ones go one at a time. */
#define RATIO_TIME_MAX_MS 2147483647000LL

/*
 * find_ratio() of every new tip in one query: the revenue_share rows of the run's distinct
 * anchors up to its latest tip, each tip then taking its anchor's newest row not after it. The
 * times compare as find_ratio's do (UTC sessions: FROM_UNIXTIME(ms / 1000) is the epoch plus
 * ms). MySQL matches the ids: a row under another spelling of an anchor (or two anchors MySQL
 * might take for one) sends the run one tip at a time, where find_ratio() decides.
 */
static enum db_result find_ratios(struct tip_run *run, char *errstr, size_t errstr_size)
{
        struct share_sink ss = {.run = run};
        struct db_col cols[] = {
                {.type = DB_PARAM_STR, .s = ss.anchor_id, .s_size = sizeof(ss.anchor_id)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64}};
        long long max_ms = 0;
        size_t m = 0;
        enum db_result r = DB_OK;

        for (size_t i = 0; i < run->n; i++) {
                const struct run_tip *t = &run->tips[i];

                if (!is_new_tip(t))
                        continue;
                run->sorted[m++] = (struct run_tip *)t;
                if (t->se.time_ms > max_ms)
                        max_ms = t->se.time_ms;
        }
        if (!m)
                return DB_OK;
        if (max_ms > RATIO_TIME_MAX_MS || !(ss.anchors = calloc(m, sizeof(*ss.anchors)))) {
                run->is_mismatch = true;
                return DB_OK;
        }
        for (size_t i = 0; i < m; i++)
                ss.anchors[i] = run->sorted[i]->se.anchor_id;
        ss.anchor_cnt = role_distinct(ss.anchors, m);
        if (keys_may_collide(ss.anchors, ss.anchor_cnt)) {
                run->is_mismatch = true;
                goto out;
        }
        qsort(ss.anchors, ss.anchor_cnt, sizeof(*ss.anchors), role_cmp_str); /* it reorders */
        db_text_reset(&run->sql);
        db_text_add(&run->sql, "SELECT anchor_id, TIMESTAMPDIFF(MICROSECOND, '1970-01-01', "
                               "effective_at) DIV 1000, ratio_bp FROM revenue_share WHERE "
                               "anchor_id IN (");
        for (size_t i = 0; i < ss.anchor_cnt; i++) {
                db_text_add(&run->sql, i ? ", " : "");
                db_text_str(run->st->db, &run->sql, ss.anchors[i]);
        }
        db_text_add(&run->sql, ") AND effective_at <= FROM_UNIXTIME(%lld / 1000)", max_ms);
        if ((r = db_text_query(run->st->db, &run->sql, cols, 3, on_share, &ss, errstr,
                               errstr_size)) != DB_OK ||
            run->is_mismatch)
                goto out;
        if (ss.n) /* no rows: every tip takes the default */
                qsort(ss.rows, ss.n, sizeof(*ss.rows), cmp_share_row);
        for (size_t i = 0; i < m; i++) {
                struct run_tip *t = run->sorted[i];
                const char *key = t->se.anchor_id;
                const char **hit =
                        bsearch(&key, ss.anchors, ss.anchor_cnt, sizeof(*ss.anchors), role_cmp_str);

                if (!ratio_at(&ss, (size_t)(hit - ss.anchors), t->se.time_ms, &t->ratio_bp))
                        t->ratio_bp = run->st->default_ratio_bp;
                if (settlement_split(t->se.amount, t->ratio_bp, &t->split) == -1)
                        run->is_mismatch = true; /* apply_tip() refuses it, one at a time */
        }
out:
        free(ss.anchors);
        free(ss.rows);
        return r;
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
                const char *ids[] = {t->se.id, t->se.anchor_id};

                if (!is_new_tip(t))
                        continue;
                db_text_add(&run->sql, (*count)++ ? ", (" : "(");
                role_text_strs(run->st->db, &run->sql, ids, 2);
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

/* The ledger row, the settlement_detail rows and the balances of a run whose flags are set. */
static enum db_result write_rows(struct tip_run *run, char *errstr, size_t errstr_size)
{
        size_t settled = 0;
        enum db_result r;

        if ((r = record_run(run, errstr, errstr_size)) != DB_OK ||
            (r = insert_details(run, &settled, errstr, errstr_size)) != DB_OK ||
            (settled && (r = credit_run(run, errstr, errstr_size)) != DB_OK))
                return r;
        return DB_OK;
}

/* A run settlement_apply() sorts out one record at a time. */
static enum db_result sort_out(char *errstr, size_t errstr_size)
{
        return role_batch_fall_back("a tip to sort out one at a time", errstr, errstr_size);
}

/* The run with the ledger and settlement_detail looked up first. A duplicate key here means
 * another transaction took a row since our reads. */
static enum db_result write_read_first(void *arg, char *errstr, size_t errstr_size)
{
        struct tip_run *run = arg;
        enum db_result r;

        if ((r = find_replays(run, errstr, errstr_size)) != DB_OK ||
            (r = find_settled(run, errstr, errstr_size)) != DB_OK ||
            (r = find_ratios(run, errstr, errstr_size)) != DB_OK)
                return r;
        if (run->is_mismatch)
                return sort_out(errstr, errstr_size);
        run->st->gate.is_reading_first = run->held > 0;
        return write_rows(run, errstr, errstr_size);
}

/*
 * The copies within the run, as find_replays() and find_settled() mark them when MySQL holds
 * none of the run's events and tips: a later copy of an event is a replay; a later copy of a
 * tip_id under another event is a duplicate, or a mismatch when its anchor or amount differ.
 */
static void mark_copies(struct tip_run *run)
{
        size_t m = sort_run(run, KEY_EVENT);

        for (size_t i = 0; i < m; i++)
                run->sorted[i]->is_replay = i && strcmp(run->sorted[i]->rec->ev.event_id,
                                                        run->sorted[i - 1]->rec->ev.event_id) == 0;
        m = sort_run(run, KEY_TIP);
        for (size_t i = 0; i < m; i++) {
                struct run_tip *t = run->sorted[i], *prev = i ? run->sorted[i - 1] : NULL;

                t->is_settled = prev && strcmp(t->se.id, prev->se.id) == 0;
                if (t->is_settled && (strcmp(t->se.anchor_id, prev->se.anchor_id) != 0 ||
                                      t->se.amount != prev->se.amount))
                        run->is_mismatch = true;
        }
}

/* The flags the look-ups set, cleared for write_read_first(). */
static void clear_marks(void *arg)
{
        struct tip_run *run = arg;

        for (size_t i = 0; i < run->n; i++)
                run->tips[i].is_replay = run->tips[i].is_settled = run->tips[i].is_known = false;
        run->held = 0;
        run->is_mismatch = false;
}

/*
 * The run written without the look-ups (behind the gate's savepoint). DB_DUPLICATE: the ledger
 * or settlement_detail held one of its rows (a skipped ledger row, a duplicate key).
 */
static enum db_result write_unread(void *arg, char *errstr, size_t errstr_size)
{
        struct tip_run *run = arg;
        enum db_result r;

        mark_copies(run);
        if (run->is_mismatch)
                return sort_out(errstr, errstr_size);
        if ((r = find_ratios(run, errstr, errstr_size)) != DB_OK)
                return r;
        if (run->is_mismatch)
                return sort_out(errstr, errstr_size);
        return write_rows(run, errstr, errstr_size);
}

/* Unread behind a savepoint, or read first (struct role_gate); then the run's outcomes. */
static enum apply_result write_run(struct tip_run *run, char *errstr, size_t errstr_size)
{
        static const struct role_gate_ways ways = {"settlement_run", write_unread, clear_marks,
                                                   write_read_first};
        enum db_result r = role_gate_write(&run->st->gate, &ways, run->st->db, &run->sql, run,
                                           errstr, errstr_size);

        if (r != DB_OK)
                return role_gate_result(r);
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
