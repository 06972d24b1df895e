/* settlement.c: tips into settlement_detail and the anchor's balance, withdrawals against it,
 * session summaries. */
#include "settlement.h"
#include "settlement_role.h"

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
        role_gate_init(&st->gate, m, "liveflow_settlement_tip_runs_total",
                       "Runs of tips written set-based, by way: unread (written without looking up "
                       "the ledger and settlement_detail first), read_first (looked up first, "
                       "after rows held before were met), conflict (written unread, met a row held "
                       "before, rolled back and looked up)");
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
int settlement_read_event(const struct event *ev, struct settlement_event *se, char *errstr,
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
                struct notify_msg m =
                        notify_msg_init(is_done ? "withdrawal.succeeded" : "withdrawal.rejected",
                                        se->id, rec->ev.event_time_ms);

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
bool settlement_is_ignored(const struct consumer_record *rec)
{
        if (strcmp(rec->topic, LF_TOPIC_SESSION) != 0 ||
            strcmp(rec->ev.event_type, "session.end") == 0)
                return false;
        log_debug(rec->trace_id, "%s ignored topic=%s partition=%d offset=%lld", rec->ev.event_type,
                  rec->topic, rec->partition, rec->offset);
        return true;
}

/* One event read by settlement_read_event(): the ledger row, then what the event asks for. */
enum apply_result settlement_apply_event(struct settlement_state *st, struct consumer_record *rec,
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

static enum apply_result settlement_apply(void *state, struct consumer_record *rec, char *errstr,
                                          size_t errstr_size)
{
        struct settlement_event se;

        rec->note = NOTE_NONE;
        if (settlement_is_ignored(rec))
                return APPLY_DONE;
        if (settlement_read_event(&rec->ev, &se, errstr, errstr_size) == -1)
                return APPLY_PERMANENT;
        return settlement_apply_event(state, rec, &se, errstr, errstr_size);
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
