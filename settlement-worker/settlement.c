/* settlement.c: tips into settlement_detail and the anchor's balance, withdrawals against it,
 * session summaries. */
#include "settlement.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "ledger.h"
#include "notify.h"
#include "log.h"
#include "metrics.h"
#include "reward.h"
#include "role_kit.h"
#include "settings.h"

static const char *const settlement_topics[] = {LF_TOPIC_REWARD, LF_TOPIC_WITHDRAWAL,
                                                LF_TOPIC_SESSION, NULL};

#define ID_MAX 64 /* trace_id, request_id and anchor_id are VARCHAR(64) */

/* consumer_record.note: what apply() did; publish() counts it once the commit made it so. */
enum settlement_note {
        NOTE_NONE,
        NOTE_TIP_SETTLED,
        NOTE_TIP_DUPLICATE,
        NOTE_WITHDRAWAL_SUCCEEDED,
        NOTE_WITHDRAWAL_REJECTED,
        NOTE_SESSION_SUMMED,
        NOTE_COUNT,
};

enum settlement_kind { KIND_TIP, KIND_WITHDRAWAL, KIND_SESSION_END };

/* What one record asks for, read from its envelope and payload (borrowed from the event). */
struct settlement_event {
        enum settlement_kind kind;
        const char *id; /* tip_id or request_id */
        const char *anchor_id;
        long long amount;
        long long time_ms; /* tip: ts_ms; withdrawal: event time; session: ended_at_ms */
        long long session_id;
        long long started_ms; /* session: -1 when unknown */
};

struct settlement_state {
        struct db *db;
        long long default_ratio_bp;
        long long recompute_s;
        long long sweep_ms;
        long long last_sweep_ms;
        struct metric *counted[NOTE_COUNT];
        struct ledger *ledger;
        struct notify *notify; /* live.notify: withdrawal succeeded / rejected */
        struct db_stmt *find_ratio, *insert_detail, *find_detail, *credit, *claim_request, *debit,
                *find_available, *decide_request, *upsert_session, *sum_session, *sweep_sessions;
};

/*
 * Rewrites the sums of the sessions that `where` picks (on settlement_session s) from their
 * recharge rows, joined to settlement_detail for the shares. Grouping on s gives every picked
 * session a row, zeros when reward-sync has recorded none of its tips yet.
 */
#define SESSION_SUMS(where)                                                                           \
        "INSERT INTO settlement_session (session_id, ended_at, gross, anchor_share, platform_share, " \
        "tips, settled_tips, paying_audience, computed_at) "                                          \
        "SELECT s.session_id, s.ended_at, COALESCE(SUM(r.amount), 0), "                               \
        "COALESCE(SUM(d.anchor_amount), 0), COALESCE(SUM(d.platform_amount), 0), "                    \
        "COUNT(r.trace_id), COUNT(d.trace_id), COUNT(DISTINCT r.audience_id), NOW(3) "                \
        "FROM settlement_session s LEFT JOIN recharge r ON r.session_id = s.session_id "              \
        "LEFT JOIN settlement_detail d ON d.trace_id = r.trace_id WHERE " where " "                   \
        "GROUP BY s.session_id, s.ended_at ON DUPLICATE KEY UPDATE gross = VALUES(gross), "           \
        "anchor_share = VALUES(anchor_share), platform_share = VALUES(platform_share), "              \
        "tips = VALUES(tips), settled_tips = VALUES(settled_tips), "                                  \
        "paying_audience = VALUES(paying_audience), computed_at = VALUES(computed_at)"

static int prepare(struct settlement_state *st)
{
        struct db *db = st->db;

        st->ledger = ledger_new(db, "settlement");
        st->find_ratio = db_stmt(
                db,
                "SELECT ratio_bp FROM revenue_share WHERE anchor_id = ? AND effective_at <= FROM_UNIXTIME(? / 1000) "
                "ORDER BY effective_at DESC LIMIT 1");
        /*
         * A plain INSERT, not INSERT IGNORE: IGNORE would also turn a failed CHECK or a
         * truncation into "0 rows", which would then pass for a tip settled before.
         */
        st->insert_detail = db_stmt(
                db,
                "INSERT INTO settlement_detail (trace_id, anchor_id, amount, ratio_bp, anchor_amount, "
                "platform_amount, tipped_at) VALUES (?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000))");
        /* A locking read: the row may have been committed after this transaction's snapshot. */
        st->find_detail = db_stmt(
                db,
                "SELECT anchor_id, amount FROM settlement_detail WHERE trace_id = ? LOCK IN SHARE MODE");
        st->credit = db_stmt(
                db,
                "INSERT INTO settlement (anchor_id, total_amount, withdrawn_amount, available_amount) "
                "VALUES (?, ?, 0, ?) ON DUPLICATE KEY UPDATE total_amount = total_amount + VALUES(total_amount), "
                "available_amount = available_amount + VALUES(available_amount)");
        st->claim_request = db_stmt(
                db,
                "INSERT INTO withdrawal (request_id, anchor_id, amount, status, reason, requested_at) "
                "VALUES (?, ?, ?, 'rejected', 'deciding', FROM_UNIXTIME(? / 1000))");
        st->debit = db_stmt(
                db,
                "UPDATE settlement SET withdrawn_amount = withdrawn_amount + ?, "
                "available_amount = available_amount - ? WHERE anchor_id = ? AND available_amount >= ?");
        st->find_available = db_stmt(
                db,
                "SELECT available_amount FROM settlement WHERE anchor_id = ? LOCK IN SHARE MODE");
        st->decide_request =
                db_stmt(db, "UPDATE withdrawal SET status = ?, reason = ? WHERE request_id = ?");
        st->upsert_session = db_stmt(
                db,
                "INSERT INTO settlement_session (session_id, anchor_id, room_id, stream_id, started_at, ended_at) "
                "VALUES (?, ?, ?, ?, FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(? / 1000)) ON DUPLICATE KEY UPDATE "
                "anchor_id = VALUES(anchor_id), room_id = VALUES(room_id), stream_id = VALUES(stream_id), "
                "started_at = VALUES(started_at), ended_at = VALUES(ended_at)");
        st->sum_session = db_stmt(db, SESSION_SUMS("s.session_id = ?"));
        st->sweep_sessions = db_stmt(db, SESSION_SUMS("s.ended_at >= NOW(3) - INTERVAL ? SECOND"));
        return st->ledger && st->find_ratio && st->insert_detail && st->find_detail && st->credit &&
                               st->claim_request && st->debit && st->find_available &&
                               st->decide_request && st->upsert_session && st->sum_session &&
                               st->sweep_sessions
                       ? 0
                       : -1;
}

static void register_metrics(struct settlement_state *st, struct metrics *m)
{
        st->counted[NOTE_TIP_SETTLED] =
                metrics_counter(m, "liveflow_settlement_tips_total", "Tips settled, by outcome",
                                "outcome=\"settled\"");
        st->counted[NOTE_TIP_DUPLICATE] =
                metrics_counter(m, "liveflow_settlement_tips_total", NULL, "outcome=\"duplicate\"");
        st->counted[NOTE_WITHDRAWAL_SUCCEEDED] =
                metrics_counter(m, "liveflow_settlement_withdrawals_total",
                                "Withdrawals decided, by status", "status=\"succeeded\"");
        st->counted[NOTE_WITHDRAWAL_REJECTED] = metrics_counter(
                m, "liveflow_settlement_withdrawals_total", NULL, "status=\"rejected\"");
        st->counted[NOTE_SESSION_SUMMED] =
                metrics_counter(m, "liveflow_settlement_sessions_total",
                                "Session summaries written on session.end", NULL);
}

/* The tables this role writes must exist: a missing migration is a startup error, not a DLQ flood.
 */
static int check_schema(struct db *db, char *errstr, size_t errstr_size)
{
        char err[512];

        if (db_sql(db,
                   "SELECT 1 FROM settlement_session, settlement_detail, settlement, withdrawal, "
                   "revenue_share, recharge, live_events LIMIT 0",
                   NULL, err, sizeof(err)) == DB_OK)
                return 0;
        snprintf(errstr, errstr_size, "%s (are the sql/ migrations applied? liveflow-migrate)",
                 err);
        return -1;
}

static int settlement_open(const struct role_env *env, void **state, char *errstr,
                           size_t errstr_size)
{
        struct settlement_state *st = calloc(1, sizeof(*st));

        if (!st) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        st->db = env->db;
        st->default_ratio_bp = env->settings->settlement_default_ratio_bp;
        st->recompute_s = env->settings->settlement_recompute_s;
        st->sweep_ms = env->settings->settlement_sweep_ms;
        register_metrics(st, env->metrics);
        if (prepare(st) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                ledger_destroy(st->ledger);
                free(st);
                return -1;
        }
        if (check_schema(st->db, errstr, errstr_size) == -1 ||
            !(st->notify = notify_new(env, errstr, errstr_size))) {
                free(st); /* the statements belong to the db, which frees them */
                return -1;
        }
        *state = st;
        return 0;
}

static void settlement_close(void *state)
{
        struct settlement_state *st = state;

        notify_destroy(st->notify);
        ledger_destroy(st->ledger);
        free(st);
}

/* ------------------------------------------------------------------ the split */

int settlement_split(long long amount, long long ratio_bp, struct settlement_split *out)
{
        long long q, r;

        if (amount < 0 || ratio_bp < 0 || ratio_bp > SETTLEMENT_BP_WHOLE)
                return -1;
        q = amount / SETTLEMENT_BP_WHOLE;
        r = amount % SETTLEMENT_BP_WHOLE;
        out->anchor_amount = q * ratio_bp + r * ratio_bp / SETTLEMENT_BP_WHOLE;
        out->platform_amount = amount - out->anchor_amount;
        return 0;
}

/* ------------------------------------------------------------------ reading the event */

static bool is_id(const char *s)
{
        return s && *s && strlen(s) <= ID_MAX;
}

static int read_money(const struct event *ev, const char *id_key, struct settlement_event *se,
                      char *errstr, size_t errstr_size)
{
        se->id = payload_str(ev, id_key);
        se->anchor_id = payload_str(ev, "anchor_id");
        if (!is_id(se->id) || !is_id(se->anchor_id)) {
                snprintf(errstr, errstr_size, "%s and anchor_id must be strings of 1 to %d bytes",
                         id_key, ID_MAX);
                return -1;
        }
        if (!payload_int(ev, "amount", &se->amount) || se->amount <= 0) {
                snprintf(errstr, errstr_size,
                         "%s %s: amount %lld is not a positive number of minor units", id_key,
                         se->id, se->amount);
                return -1;
        }
        return 0;
}

static int read_session_end(const struct event *ev, struct settlement_event *se, char *errstr,
                            size_t errstr_size)
{
        if (!payload_int(ev, "session_id", &se->session_id) || se->session_id <= 0 ||
            !payload_int(ev, "ended_at_ms", &se->time_ms) || se->time_ms <= 0) {
                snprintf(errstr, errstr_size,
                         "session.end needs a positive session_id and ended_at_ms");
                return -1;
        }
        if (!payload_int(ev, "started_at_ms", &se->started_ms) || se->started_ms <= 0)
                se->started_ms = -1;
        return 0;
}

/* @returns 0, or -1 with errstr when the record can never be settled. */
static int read_event(const struct event *ev, struct settlement_event *se, char *errstr,
                      size_t errstr_size)
{
        memset(se, 0, sizeof(*se));
        if (event_is(ev, "reward", "Reward")) {
                se->kind = KIND_TIP;
                /* What every money role accepts: a tip the others refuse is not credited. */
                if (reward_check(ev, errstr, errstr_size) == -1 ||
                    read_money(ev, "tip_id", se, errstr, errstr_size) == -1)
                        return -1;
                if (!payload_int(ev, "ts_ms", &se->time_ms) || se->time_ms <= 0) {
                        snprintf(errstr, errstr_size, "tip %s: ts_ms is missing or not positive",
                                 se->id);
                        return -1;
                }
                return 0;
        }
        if (event_is(ev, "withdrawal", "Withdrawal")) {
                se->kind = KIND_WITHDRAWAL;
                se->time_ms = ev->event_time_ms;
                return read_money(ev, "request_id", se, errstr, errstr_size);
        }
        if (event_is(ev, "session.end", "SessionEnd")) {
                se->kind = KIND_SESSION_END;
                return read_session_end(ev, se, errstr, errstr_size);
        }
        snprintf(errstr, errstr_size,
                 "event_type %s with payload %s is not a tip, withdrawal or session.end",
                 ev->event_type, ev->payload_name ? ev->payload_name : "null");
        return -1;
}

/* ------------------------------------------------------------------ the ledger */

static enum db_result record_event(struct settlement_state *st, const struct consumer_record *rec,
                                   bool *first, char *errstr, size_t errstr_size)
{
        return ledger_record(st->ledger, rec, first, errstr, errstr_size);
}

static enum db_result set_outcome(struct settlement_state *st, const struct consumer_record *rec,
                                  const char *outcome, char *errstr, size_t errstr_size)
{
        return ledger_set_outcome(st->ledger, rec->ev.event_id, outcome, errstr, errstr_size);
}

/* ------------------------------------------------------------------ tips */

/* The anchor's ratio in force at the tip's time: the newest revenue_share row not after it. */
static enum db_result find_ratio(struct settlement_state *st, const struct settlement_event *se,
                                 long long *ratio_bp, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(se->anchor_id), DB_I64(se->time_ms)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found = false;
        enum db_result r =
                db_query_row(st->db, st->find_ratio, p, 2, &col, 1, &found, errstr, errstr_size);

        *ratio_bp = found && !col.is_null ? col.i : st->default_ratio_bp;
        return r;
}

static enum db_result insert_detail(struct settlement_state *st, const struct settlement_event *se,
                                    long long ratio_bp, const struct settlement_split *split,
                                    char *errstr, size_t errstr_size)
{
        struct db_param p[] = {
                DB_STR(se->id),     DB_STR(se->anchor_id),        DB_I64(se->amount),
                DB_I64(ratio_bp),   DB_I64(split->anchor_amount), DB_I64(split->platform_amount),
                DB_I64(se->time_ms)};

        return db_exec(st->db, st->insert_detail, p, 7, NULL, NULL, errstr, errstr_size);
}

static enum db_result credit(struct settlement_state *st, const char *anchor_id,
                             long long anchor_amount, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(anchor_id), DB_I64(anchor_amount), DB_I64(anchor_amount)};

        return db_exec(st->db, st->credit, p, 3, NULL, NULL, errstr, errstr_size);
}

/*
 * The tip_id was settled before (a replay under another event id): nothing to do when it is
 * the same tip; a different anchor or amount under one tip_id is an upstream error.
 */
static enum apply_result settled_before(struct settlement_state *st, struct consumer_record *rec,
                                        const struct settlement_event *se, char *errstr,
                                        size_t errstr_size)
{
        char anchor[ID_MAX + 1] = "";
        struct db_param p[] = {DB_STR(se->id)};
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)},
                                {.type = DB_PARAM_I64}};
        bool found = false;
        enum db_result r =
                db_query_row(st->db, st->find_detail, p, 1, cols, 2, &found, errstr, errstr_size);

        if (r != DB_OK)
                return apply_from_db(r);
        if (!found) {
                snprintf(errstr, errstr_size, "tip %s: duplicate key but no settlement_detail row",
                         se->id);
                return APPLY_RETRY;
        }
        if (strcmp(anchor, se->anchor_id) != 0 || cols[1].i != se->amount) {
                snprintf(errstr, errstr_size,
                         "tip %s was settled as anchor %s amount %lld, this one says anchor %s "
                         "amount %lld",
                         se->id, anchor, cols[1].i, se->anchor_id, se->amount);
                return APPLY_PERMANENT;
        }
        rec->note = NOTE_TIP_DUPLICATE;
        log_info(rec->trace_id, "tip %s settled before anchor=%s topic=%s partition=%d offset=%lld",
                 se->id, se->anchor_id, rec->topic, rec->partition, rec->offset);
        return apply_from_db(set_outcome(st, rec, "duplicate_tip", errstr, errstr_size));
}

static enum apply_result apply_tip(struct settlement_state *st, struct consumer_record *rec,
                                   const struct settlement_event *se, char *errstr,
                                   size_t errstr_size)
{
        struct settlement_split split;
        long long ratio_bp;
        enum db_result r;

        if ((r = find_ratio(st, se, &ratio_bp, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        if (settlement_split(se->amount, ratio_bp, &split) == -1) {
                snprintf(errstr, errstr_size,
                         "revenue_share.ratio_bp %lld of anchor %s is outside 0..%lld", ratio_bp,
                         se->anchor_id, SETTLEMENT_BP_WHOLE);
                return APPLY_PERMANENT;
        }
        r = insert_detail(st, se, ratio_bp, &split, errstr, errstr_size);
        if (r == DB_DUPLICATE)
                return settled_before(st, rec, se, errstr, errstr_size);
        /* Credited only with a new detail row, in the same transaction: a replay adds nothing. */
        if (r != DB_OK ||
            (r = credit(st, se->anchor_id, split.anchor_amount, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        rec->note = NOTE_TIP_SETTLED;
        log_info(rec->trace_id,
                 "tip %s anchor=%s amount=%lld ratio_bp=%lld anchor_amount=%lld "
                 "platform_amount=%lld topic=%s partition=%d offset=%lld",
                 se->id, se->anchor_id, se->amount, ratio_bp, split.anchor_amount,
                 split.platform_amount, rec->topic, rec->partition, rec->offset);
        return APPLY_DONE;
}

/* ------------------------------------------------------------------ withdrawals */

/*
 * Claims the request_id before touching the balance: the new primary key stays locked until
 * the commit, so a second copy handling the same request waits here and then finds it taken,
 * instead of debiting twice. The row is decided further down in the same transaction.
 */
static enum db_result claim_request(struct settlement_state *st, const struct settlement_event *se,
                                    char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(se->id), DB_STR(se->anchor_id), DB_I64(se->amount),
                               DB_I64(se->time_ms)};

        return db_exec(st->db, st->claim_request, p, 4, NULL, NULL, errstr, errstr_size);
}

/*
 * One conditional UPDATE: InnoDB re-reads the row under its lock, so however many copies
 * and requests race, a debit happens only while the balance covers it.
 */
static enum db_result debit(struct settlement_state *st, const struct settlement_event *se,
                            bool *is_done, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_I64(se->amount), DB_I64(se->amount), DB_STR(se->anchor_id),
                               DB_I64(se->amount)};
        unsigned long long affected = 0;
        enum db_result r = db_exec(st->db, st->debit, p, 4, &affected, NULL, errstr, errstr_size);

        *is_done = r == DB_OK && affected == 1;
        return r;
}

static enum db_result rejection_reason(struct settlement_state *st,
                                       const struct settlement_event *se, char *reason,
                                       size_t reason_size, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(se->anchor_id)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found = false;
        enum db_result r = db_query_row(st->db, st->find_available, p, 1, &col, 1, &found, errstr,
                                        errstr_size);

        if (found)
                snprintf(reason, reason_size,
                         "insufficient balance: available %lld, requested %lld", col.i, se->amount);
        else
                snprintf(reason, reason_size, "no settled earnings: requested %lld", se->amount);
        return r;
}

static enum apply_result apply_withdrawal(struct settlement_state *st, struct consumer_record *rec,
                                          const struct settlement_event *se, char *errstr,
                                          size_t errstr_size)
{
        char reason[160] = "";
        bool is_done = false;
        enum db_result r = claim_request(st, se, errstr, errstr_size);

        if (r == DB_DUPLICATE) {
                log_info(rec->trace_id,
                         "withdrawal %s decided before anchor=%s topic=%s partition=%d offset=%lld",
                         se->id, se->anchor_id, rec->topic, rec->partition, rec->offset);
                return apply_from_db(
                        set_outcome(st, rec, "duplicate_request", errstr, errstr_size));
        }
        if (r != DB_OK || (r = debit(st, se, &is_done, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        if (!is_done &&
            (r = rejection_reason(st, se, reason, sizeof(reason), errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        struct db_param p[] = {DB_STR(is_done ? "succeeded" : "rejected"),
                               is_done ? DB_NULL : DB_STR(reason), DB_STR(se->id)};

        if ((r = db_exec(st->db, st->decide_request, p, 3, NULL, NULL, errstr, errstr_size)) !=
                    DB_OK ||
            (!is_done && (r = set_outcome(st, rec, "rejected", errstr, errstr_size)) != DB_OK))
                return apply_from_db(r);
        rec->note = is_done ? NOTE_WITHDRAWAL_SUCCEEDED : NOTE_WITHDRAWAL_REJECTED;
        {
                struct notify_msg m = notify_msg_init(
                        is_done ? "withdrawal.succeeded" : "withdrawal.rejected", se->id,
                        rec->ev.event_time_ms);

                m.anchor_id = se->anchor_id;
                m.request_id = se->id;
                m.amount = se->amount;
                m.reason = is_done ? NULL : reason;
                if ((r = notify_record(st->notify, &m, errstr, errstr_size)) != DB_OK)
                        return apply_from_db(r);
        }
        log_info(rec->trace_id,
                 "withdrawal %s anchor=%s amount=%lld %s%s%s topic=%s partition=%d offset=%lld",
                 se->id, se->anchor_id, se->amount, is_done ? "succeeded" : "rejected",
                 is_done ? "" : ": ", reason, rec->topic, rec->partition, rec->offset);
        return APPLY_DONE;
}

/* ------------------------------------------------------------------ sessions */

/*
 * Known limit: the sums come from recharge, which reward-sync writes; tips it has not written
 * yet are missing here. tick() sums recently ended sessions again to pick them up.
 */
static enum apply_result apply_session_end(struct settlement_state *st, struct consumer_record *rec,
                                           const struct settlement_event *se, char *errstr,
                                           size_t errstr_size)
{
        const struct event *ev = &rec->ev;
        struct db_param p[] = {DB_I64(se->session_id),
                               DB_STR(ev->anchor_id),
                               DB_STR(ev->room_id),
                               DB_STR(ev->stream_id),
                               se->started_ms > 0 ? DB_I64(se->started_ms) : DB_NULL,
                               DB_I64(se->time_ms)};
        struct db_param id[] = {DB_I64(se->session_id)};
        enum db_result r;

        if ((r = db_exec(st->db, st->upsert_session, p, 6, NULL, NULL, errstr, errstr_size)) !=
                    DB_OK ||
            (r = db_exec(st->db, st->sum_session, id, 1, NULL, NULL, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        rec->note = NOTE_SESSION_SUMMED;
        log_info(rec->trace_id,
                 "session %lld summed anchor=%s room=%s topic=%s partition=%d offset=%lld",
                 se->session_id, ev->anchor_id ? ev->anchor_id : "-",
                 ev->room_id ? ev->room_id : "-", rec->topic, rec->partition, rec->offset);
        return APPLY_DONE;
}

/* ------------------------------------------------------------------ the role */

/* The hand-off topic may carry more than this role acts on. */
static bool is_ignored(const struct consumer_record *rec)
{
        if (strcmp(rec->topic, LF_TOPIC_SESSION) != 0 ||
            strcmp(rec->ev.event_type, "session.end") == 0)
                return false;
        log_debug(rec->trace_id, "%s ignored topic=%s partition=%d offset=%lld", rec->ev.event_type,
                  rec->topic, rec->partition, rec->offset);
        return true;
}

/* One event read by read_event(): the ledger row, then what the event asks for. */
static enum apply_result apply_event(struct settlement_state *st, struct consumer_record *rec,
                                     const struct settlement_event *se, char *errstr,
                                     size_t errstr_size)
{
        enum apply_result ar;
        enum db_result r;
        bool first;

        if ((r = record_event(st, rec, &first, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        if (se->kind == KIND_SESSION_END)
                ar = apply_session_end(st, rec, se, errstr,
                                       errstr_size); /* a recompute: again is fine */
        else if (!first)
                ar = APPLY_DONE; /* this very event was applied before */
        else if (se->kind == KIND_TIP)
                ar = apply_tip(st, rec, se, errstr, errstr_size);
        else
                ar = apply_withdrawal(st, rec, se, errstr, errstr_size);
        rec->publish = ar == APPLY_DONE && rec->note != NOTE_NONE;
        return ar;
}

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
                if (is_ignored(rec))
                        continue;
                if (read_event(&rec->ev, &se, slots[i].error, slots[i].error_size) == -1) {
                        slots[i].result = APPLY_PERMANENT; /* nothing written for it */
                        continue;
                }
                if (se.kind == KIND_TIP) {
                        run->tips[run->n] = (struct run_tip){.rec = rec, .se = se, .index = run->n};
                        run->n++;
                        continue;
                }
                if ((ar = flush_run(run, errstr, errstr_size)) != APPLY_DONE ||
                    (ar = apply_event(run->st, rec, &se, errstr, errstr_size)) != APPLY_DONE)
                        return ar;
        }
        return flush_run(run, errstr, errstr_size);
}

static enum apply_result settlement_apply_many(void *state, struct apply_slot *slots, size_t n,
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

static enum apply_result settlement_apply(void *state, struct consumer_record *rec, char *errstr,
                                          size_t errstr_size)
{
        struct settlement_event se;

        rec->note = NOTE_NONE;
        if (is_ignored(rec))
                return APPLY_DONE;
        if (read_event(&rec->ev, &se, errstr, errstr_size) == -1)
                return APPLY_PERMANENT;
        return apply_event(state, rec, &se, errstr, errstr_size);
}

/* No Redis effects: publish() only counts what the commit made true. */
static int settlement_publish(void *state, struct consumer_record *rec, char *errstr,
                              size_t errstr_size)
{
        struct settlement_state *st = state;

        if ((rec->note == NOTE_WITHDRAWAL_SUCCEEDED || rec->note == NOTE_WITHDRAWAL_REJECTED) &&
            notify_flush(st->notify, false, errstr, errstr_size) == -1)
                return -1; /* counted when the notification is out: the retry counts it once */
        if (rec->note > NOTE_NONE && rec->note < NOTE_COUNT)
                metric_add(st->counted[rec->note], 1);
        return 0;
}

/* Sums recently ended sessions again: recharge rows that reward-sync wrote after session.end. */
static void settlement_tick(void *state, long long now_ms)
{
        struct settlement_state *st = state;
        struct db_param p[] = {DB_I64(st->recompute_s)};
        char err[512];

        if (notify_flush(st->notify, false, err, sizeof(err)) == -1)
                log_warn(NULL, "live.notify: %s (tried again)", err);
        if (st->recompute_s == 0 || now_ms - st->last_sweep_ms < st->sweep_ms)
                return;
        st->last_sweep_ms = now_ms;
        if (db_exec(st->db, st->sweep_sessions, p, 1, NULL, NULL, err, sizeof(err)) != DB_OK)
                log_warn(NULL, "session sweep failed (next try in %lld ms): %s", st->sweep_ms, err);
}

const struct consumer_role settlement_role = {
        .name = "settlement",
        .topics = settlement_topics,
        .open = settlement_open,
        .apply = settlement_apply,
        .apply_many = settlement_apply_many,
        .publish = settlement_publish,
        .tick = settlement_tick,
        .close = settlement_close,
};
