/* reward_sync.c: tips into recharge, Redis room figures (rebuilt after outages) and
 * live_room_realtime. */
#include "reward_sync.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "redis_conn.h"
#include "settings.h"

static const char *const reward_topics[] = {"live.reward", NULL};

#define ID_MAX          64   /* the VARCHAR(64) of recharge's id columns */
#define KEY_MAX         96   /* the longest key prefix plus ID_MAX */
#define STAGE_CHUNK     128  /* members per ZADD / SADD while a rebuild stages a key */
#define TICK_REBUILD_MS 1000 /* rebuild work per tick before the partitions get their turn */

/* The statements, prepared lazily by db; see sql/004_reward_sync.sql for the tables. */
struct reward_sql {
        struct db_stmt *live_session, *insert_tip, *number_tip, *set_seq, *tip_row, *mark_room,
                *lock_room, *marked_sessions, *room_sums, *room_top, *session_sums, *session_payers,
                *clear_marks, *next_marked, *flag_due, *fold_due, *unflag;
};

static const struct {
        size_t offset;
        const char *sql;
} reward_statements[] = {
        {offsetof(struct reward_sql, live_session),
         "SELECT session_id FROM live_streams WHERE room_id = ? AND status = 'live' AND session_id IS NOT NULL "
         "ORDER BY started_at DESC LIMIT 1"},
        {offsetof(struct reward_sql, insert_tip),
         "INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, session_id, amount, gift_id, gift_count, "
         "audience_gender, anchor_gender, audience_type, tipped_at) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000))"},
        /* LAST_INSERT_ID(expr) hands the new number back as the statement's insert id. */
        {offsetof(struct reward_sql, number_tip),
         "INSERT INTO live_room_sync (room_id, tip_seq, earnings_pending, count_pending, pending_since) "
         "VALUES (?, LAST_INSERT_ID(1), ?, 1, NOW(3)) ON DUPLICATE KEY UPDATE tip_seq = LAST_INSERT_ID(tip_seq + 1), "
         "earnings_pending = earnings_pending + VALUES(earnings_pending), count_pending = count_pending + 1, "
         "pending_since = COALESCE(pending_since, VALUES(pending_since))"},
        {offsetof(struct reward_sql, set_seq),
         "UPDATE recharge SET room_seq = ? WHERE trace_id = ?"},
        {offsetof(struct reward_sql, tip_row),
         "SELECT audience_id, room_id, session_id, amount, gift_count, room_seq FROM recharge WHERE trace_id = ?"},
        {offsetof(struct reward_sql, mark_room),
         "INSERT IGNORE INTO live_room_rebuild (room_id, session_id) VALUES (?, ?)"},
        {offsetof(struct reward_sql, lock_room),
         "SELECT tip_seq FROM live_room_sync WHERE room_id = ? FOR UPDATE"},
        {offsetof(struct reward_sql, marked_sessions),
         "SELECT session_id FROM live_room_rebuild WHERE room_id = ? FOR UPDATE"},
        {offsetof(struct reward_sql, room_sums),
         "SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM recharge WHERE room_id = ? AND room_seq BETWEEN 1 AND ?"},
        {offsetof(struct reward_sql, room_top),
         "SELECT audience_id, SUM(amount) FROM recharge WHERE room_id = ? AND room_seq BETWEEN 1 AND ? "
         "GROUP BY audience_id"},
        {offsetof(struct reward_sql, session_sums),
         "SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(gift_count), 0), COUNT(*) FROM recharge "
         "WHERE room_id = ? AND room_seq BETWEEN 1 AND ? AND session_id = ?"},
        {offsetof(struct reward_sql, session_payers),
         "SELECT DISTINCT audience_id FROM recharge WHERE room_id = ? AND room_seq BETWEEN 1 AND ? AND session_id = ?"},
        {offsetof(struct reward_sql, clear_marks),
         "DELETE FROM live_room_rebuild WHERE room_id = ?"},
        {offsetof(struct reward_sql, next_marked),
         "SELECT room_id FROM live_room_rebuild WHERE room_id > ? ORDER BY room_id LIMIT 1"},
        /* The fold: flag the due rooms (locking them), add their deltas, zero them. */
        {offsetof(struct reward_sql, flag_due),
         "UPDATE live_room_sync SET flushing = 1 WHERE pending_since IS NOT NULL AND "
         "(count_pending >= ? OR pending_since <= NOW(3) - INTERVAL ? SECOND)"},
        {offsetof(struct reward_sql, fold_due),
         "INSERT INTO live_room_realtime (room_id, earnings, recharge_count) "
         "SELECT room_id, earnings_pending, count_pending FROM live_room_sync WHERE flushing = 1 "
         "ON DUPLICATE KEY UPDATE earnings = earnings + VALUES(earnings), "
         "recharge_count = recharge_count + VALUES(recharge_count)"},
        {offsetof(struct reward_sql, unflag),
         "UPDATE live_room_sync SET earnings_pending = 0, count_pending = 0, pending_since = NULL, flushing = 0 "
         "WHERE flushing = 1"},
};

struct reward_state {
        struct db *db;
        struct redis_conn *redis;
        struct reward_sql sql;
        long long flush_tips, flush_s, dedup_ttl_s, stats_ttl_s;
        bool is_degraded; /* Redis failed: publish() skips it until tick() finds it answering */
        struct metric *m_degraded, *m_degraded_now, *m_rebuilt, *m_folded;
};

/* A tip as its payload gives it; the strings are borrowed from the event. */
struct tip {
        const char *tip_id, *audience_id, *anchor_id, *room_id, *gift_id;
        const char *audience_gender, *anchor_gender, *audience_type;
        long long amount, gift_count, ts_ms;
};

/* A tip as recharge holds it: what publish() projects. */
struct tip_row {
        char audience_id[ID_MAX + 1];
        char room_id[ID_MAX + 1];
        long long session_id; /* 0: none */
        long long amount, gift_count, room_seq;
};

/*
 * The projection of one tip; see reward_sync.h. KEYS: applied marker, earnings, count, top,
 * room watermark, then stats, payers, session watermark ('' without a session).
 * ARGV: marker TTL, amount, audience_id, room_seq, gift_count, stats TTL.
 * @returns 0 already counted, 1 counted now but covered by a rebuild, 2 counted now.
 */
static const char tip_script[] =
        "if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end\n"
        "local seq = tonumber(ARGV[4])\n"
        "local counted = 1\n"
        "if seq > tonumber(redis.call('GET', KEYS[5]) or '0') then\n"
        "  redis.call('INCRBY', KEYS[2], ARGV[2])\n"
        "  redis.call('INCR', KEYS[3])\n"
        "  redis.call('ZINCRBY', KEYS[4], ARGV[2], ARGV[3])\n"
        "  counted = 2\n"
        "end\n"
        "if KEYS[6] ~= '' and seq > tonumber(redis.call('GET', KEYS[8]) or '0') then\n"
        "  redis.call('HINCRBY', KEYS[6], 'gift_amount', ARGV[2])\n"
        "  redis.call('HINCRBY', KEYS[6], 'gift_count', ARGV[5])\n"
        "  redis.call('HINCRBY', KEYS[6], 'tip_count', 1)\n"
        "  redis.call('SADD', KEYS[7], ARGV[3])\n"
        "  redis.call('HSET', KEYS[6], 'paying_users', redis.call('SCARD', KEYS[7]))\n"
        "end\n"
        "if KEYS[6] ~= '' then\n"
        "  for i = 6, 8 do redis.call('EXPIRE', KEYS[i], ARGV[6]) end\n"
        "end\n"
        "return counted\n";

/* Swaps in a rebuilt room. KEYS: earnings, count, top, staged top, room watermark.
 * ARGV: earnings, count, room_seq covered. */
static const char room_script[] =
        "redis.call('SET', KEYS[1], ARGV[1])\n"
        "redis.call('SET', KEYS[2], ARGV[2])\n"
        "if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('RENAME', KEYS[4], KEYS[3])\n"
        "else redis.call('DEL', KEYS[3]) end\n"
        "redis.call('SET', KEYS[5], ARGV[3])\n"
        "return 1\n";

/* Swaps in a rebuilt session; other roles' fields of the stats hash stay. KEYS: stats,
 * payers, staged payers, session watermark. ARGV: gift_amount, gift_count, tip_count,
 * room_seq covered, stats TTL. */
static const char session_script[] =
        "if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('RENAME', KEYS[3], KEYS[2])\n"
        "else redis.call('DEL', KEYS[2]) end\n"
        "redis.call('HSET', KEYS[1], 'gift_amount', ARGV[1], 'gift_count', ARGV[2], 'tip_count', ARGV[3],\n"
        "           'paying_users', redis.call('SCARD', KEYS[2]))\n"
        "redis.call('SET', KEYS[4], ARGV[4], 'EX', ARGV[5])\n"
        "redis.call('EXPIRE', KEYS[1], ARGV[5])\n"
        "redis.call('EXPIRE', KEYS[2], ARGV[5])\n"
        "return 1\n";

static long long monotonic_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void key_of(char *out, const char *prefix, const char *id)
{
        snprintf(out, KEY_MAX, "%s%s", prefix, id);
}

/* ------------------------------------------------------------------ open and close */

static int prepare(struct reward_state *st)
{
        for (size_t i = 0; i < sizeof(reward_statements) / sizeof(reward_statements[0]); i++) {
                struct db_stmt **slot =
                        (struct db_stmt **)((char *)&st->sql + reward_statements[i].offset);

                if (!(*slot = db_stmt(st->db, reward_statements[i].sql)))
                        return -1;
        }
        return 0;
}

static void register_metrics(struct reward_state *st, struct metrics *m)
{
        st->m_degraded = metrics_counter(
                m, "liveflow_reward_redis_degraded_total",
                "Tips kept in MySQL only because Redis failed; their rooms are rebuilt", NULL);
        st->m_degraded_now = metrics_gauge(m, "liveflow_reward_redis_degraded",
                                           "1 while Redis is failing and tips skip it", NULL);
        st->m_rebuilt =
                metrics_counter(m, "liveflow_reward_rooms_rebuilt_total",
                                "Rooms whose Redis figures were rebuilt from recharge", NULL);
        st->m_folded = metrics_counter(
                m, "liveflow_reward_realtime_folds_total",
                "Rooms whose pending tips were folded into live_room_realtime", NULL);
}

static int reward_open(const struct role_env *env, void **state, char *errstr, size_t errstr_size)
{
        const struct settings *s = env->settings;
        struct reward_state *st = calloc(1, sizeof(*st));

        if (!st) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        st->db = env->db;
        st->redis = env->redis;
        st->flush_tips = s->reward_flush_tips;
        st->flush_s = s->reward_flush_s;
        st->dedup_ttl_s = s->reward_dedup_ttl_s;
        st->stats_ttl_s = s->reward_stats_ttl_s;
        if (prepare(st) == -1) {
                free(st); /* the statements made so far belong to db */
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        register_metrics(st, env->metrics);
        log_info(
                NULL,
                "reward-sync: live_room_realtime folds at %lld tips or %lld s; tips are remembered "
                "in Redis for %lld s",
                st->flush_tips, st->flush_s, st->dedup_ttl_s);
        *state = st;
        return 0;
}

static void reward_close(void *state)
{
        free(state);
}

/* ------------------------------------------------------------------ reading the tip */

static const char *payload_str(const struct event *ev, const char *key)
{
        return json_string_value(json_object_get(ev->payload, key));
}

static int payload_int(const struct event *ev, const char *key, long long *out)
{
        json_t *v = json_object_get(ev->payload, key);

        if (!json_is_integer(v))
                return -1;
        *out = (long long)json_integer_value(v);
        return 0;
}

static int check_id(const char *name, const char *v, bool is_required, char *errstr,
                    size_t errstr_size)
{
        if (!v || !*v) {
                if (!is_required)
                        return 0;
                snprintf(errstr, errstr_size, "%s is missing", name);
                return -1;
        }
        if (strlen(v) > ID_MAX) {
                snprintf(errstr, errstr_size, "%s is longer than %d bytes", name, ID_MAX);
                return -1;
        }
        return 0;
}

/* NULL is fine (the field is optional); anything else must be one of `allowed`. */
static int check_word(const char *name, const char *v, const char *const *allowed, char *errstr,
                      size_t errstr_size)
{
        if (!v)
                return 0;
        for (size_t i = 0; allowed[i]; i++)
                if (strcmp(v, allowed[i]) == 0)
                        return 0;
        snprintf(errstr, errstr_size, "%s \"%.32s\" is not one of the known values", name, v);
        return -1;
}

static int check_numbers(const struct event *ev, struct tip *t, char *errstr, size_t errstr_size)
{
        if (payload_int(ev, "amount", &t->amount) == -1 || t->amount <= 0) {
                snprintf(errstr, errstr_size, "amount must be an integer > 0");
                return -1;
        }
        if (payload_int(ev, "gift_count", &t->gift_count) == -1 || t->gift_count < 1 ||
            t->gift_count > INT32_MAX) {
                snprintf(errstr, errstr_size, "gift_count must be an integer from 1 to %ld",
                         (long)INT32_MAX);
                return -1;
        }
        if (payload_int(ev, "ts_ms", &t->ts_ms) == -1 || t->ts_ms <= 0) {
                snprintf(errstr, errstr_size, "ts_ms must be an integer > 0");
                return -1;
        }
        return 0;
}

static int read_tip(const struct event *ev, struct tip *t, char *errstr, size_t errstr_size)
{
        static const char *const genders[] = {"male", "female", "unknown", NULL};
        static const char *const audience_types[] = {"registered", "guest", NULL};

        if (strcmp(ev->event_type, "reward") != 0 || !ev->payload_name ||
            strcmp(ev->payload_name, "Reward") != 0) {
                snprintf(errstr, errstr_size, "event_type %s with payload %s is not a tip",
                         ev->event_type, ev->payload_name ? ev->payload_name : "null");
                return -1;
        }
        memset(t, 0, sizeof(*t));
        t->tip_id = payload_str(ev, "tip_id");
        t->audience_id = payload_str(ev, "audience_id");
        t->anchor_id = payload_str(ev, "anchor_id");
        t->room_id = payload_str(ev, "room_id");
        t->gift_id = payload_str(ev, "gift_id");
        t->audience_gender = payload_str(ev, "audience_gender");
        t->anchor_gender = payload_str(ev, "anchor_gender");
        t->audience_type = payload_str(ev, "audience_type");
        if (check_id("tip_id", t->tip_id, true, errstr, errstr_size) == -1 ||
            check_id("audience_id", t->audience_id, true, errstr, errstr_size) == -1 ||
            check_id("anchor_id", t->anchor_id, true, errstr, errstr_size) == -1 ||
            check_id("room_id", t->room_id, true, errstr, errstr_size) == -1 ||
            check_id("gift_id", t->gift_id, false, errstr, errstr_size) == -1 ||
            check_word("audience_gender", t->audience_gender, genders, errstr, errstr_size) == -1 ||
            check_word("anchor_gender", t->anchor_gender, genders, errstr, errstr_size) == -1 ||
            check_word("audience_type", t->audience_type, audience_types, errstr, errstr_size) ==
                    -1)
                return -1;
        return check_numbers(ev, t, errstr, errstr_size);
}

/* ------------------------------------------------------------------ applying (MySQL) */

static enum apply_result from_db(enum db_result r)
{
        return r == DB_OK || r == DB_DUPLICATE ? APPLY_DONE
               : r == DB_RETRY                 ? APPLY_RETRY
                                               : APPLY_PERMANENT;
}

/* The room's live session, or 0. */
static enum db_result live_session(struct reward_state *st, const char *room_id,
                                   long long *session_id, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(room_id)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found;
        enum db_result r = db_query_row(st->db, st->sql.live_session, p, 1, &col, 1, &found, errstr,
                                        errstr_size);

        *session_id = r == DB_OK && found && !col.is_null ? col.i : 0;
        return r;
}

static enum db_result insert_tip(struct reward_state *st, const struct tip *t, long long session_id,
                                 bool *is_new, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {
                DB_STR(t->tip_id),
                DB_STR(t->audience_id),
                DB_STR(t->anchor_id),
                DB_STR(t->room_id),
                session_id ? DB_I64(session_id) : DB_NULL,
                DB_I64(t->amount),
                DB_STR(t->gift_id),
                DB_I64(t->gift_count),
                DB_STR(t->audience_gender ? t->audience_gender : "unknown"),
                DB_STR(t->anchor_gender ? t->anchor_gender : "unknown"),
                DB_STR(t->audience_type),
                DB_I64(t->ts_ms),
        };
        enum db_result r =
                db_exec(st->db, st->sql.insert_tip, p, 12, NULL, NULL, errstr, errstr_size);

        *is_new = r == DB_OK;
        return r == DB_DUPLICATE ? DB_OK : r;
}

/* Numbers a new tip in its room and adds it to the room's pending delta, under the room's lock. */
static enum db_result number_tip(struct reward_state *st, const struct tip *t, long long *seq,
                                 char *errstr, size_t errstr_size)
{
        struct db_param room[] = {DB_STR(t->room_id), DB_I64(t->amount)};
        unsigned long long id = 0;
        enum db_result r =
                db_exec(st->db, st->sql.number_tip, room, 2, NULL, &id, errstr, errstr_size);

        if (r != DB_OK)
                return r;
        if (id == 0) {
                snprintf(errstr, errstr_size, "live_room_sync gave room %s no tip number",
                         t->room_id);
                return DB_FATAL;
        }
        *seq = (long long)id;
        struct db_param p[] = {DB_I64(*seq), DB_STR(t->tip_id)};

        return db_exec(st->db, st->sql.set_seq, p, 2, NULL, NULL, errstr, errstr_size);
}

static enum apply_result reward_apply(void *state, struct consumer_record *rec, char *errstr,
                                      size_t errstr_size)
{
        struct reward_state *st = state;
        struct tip t;
        long long session_id = 0, seq = 0;
        bool is_new = false;
        enum db_result r;

        if (read_tip(&rec->ev, &t, errstr, errstr_size) == -1)
                return APPLY_PERMANENT;
        if ((r = live_session(st, t.room_id, &session_id, errstr, errstr_size)) != DB_OK ||
            (r = insert_tip(st, &t, session_id, &is_new, errstr, errstr_size)) != DB_OK ||
            (is_new && (r = number_tip(st, &t, &seq, errstr, errstr_size)) != DB_OK))
                return from_db(r);
        /* Duplicates too: the first copy may have committed without reaching Redis. */
        rec->publish = true;
        log_info(rec->trace_id,
                 "reward tip=%s room=%s amount=%lld session=%lld seq=%lld outcome=%s topic=%s "
                 "partition=%d offset=%lld",
                 t.tip_id, t.room_id, t.amount, session_id, seq, is_new ? "applied" : "duplicate",
                 rec->topic, rec->partition, rec->offset);
        return APPLY_DONE;
}

/* ------------------------------------------------------------------ Redis */

/* A Redis call failed: publish() keeps tips in MySQL only until tick() finds Redis answering. */
static void redis_failed(struct reward_state *st, const char *why)
{
        if (!st->is_degraded)
                log_warn(
                        NULL,
                        "redis degraded: %s; tips are kept in MySQL only and their rooms are rebuilt "
                        "from it once Redis answers",
                        why);
        st->is_degraded = true;
        metric_set(st->m_degraded_now, 1);
}

static redisReply *redis_eval(struct reward_state *st, const char *script, int nkeys,
                              const char **keys, int nargs, const char **args, char *errstr,
                              size_t errstr_size)
{
        redisReply *reply =
                redis_conn_eval(st->redis, script, nkeys, keys, nargs, args, errstr, errstr_size);

        if (!reply)
                redis_failed(st, errstr);
        return reply;
}

static int redis_run(struct reward_state *st, int argc, const char **argv, char *errstr,
                     size_t errstr_size)
{
        redisReply *reply = redis_conn_cmd(st->redis, argc, argv, NULL, errstr, errstr_size);

        if (!reply) {
                redis_failed(st, errstr);
                return -1;
        }
        freeReplyObject(reply);
        return 0;
}

/* ------------------------------------------------------------------ publishing */

static enum db_result read_tip_row(struct reward_state *st, const char *tip_id, struct tip_row *row,
                                   bool *found, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(tip_id)};
        struct db_col cols[] = {
                {.type = DB_PARAM_STR, .s = row->audience_id, .s_size = sizeof(row->audience_id)},
                {.type = DB_PARAM_STR, .s = row->room_id, .s_size = sizeof(row->room_id)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
        };
        enum db_result r =
                db_query_row(st->db, st->sql.tip_row, p, 1, cols, 6, found, errstr, errstr_size);

        row->session_id = cols[2].is_null ? 0 : cols[2].i;
        row->amount = cols[3].i;
        row->gift_count = cols[4].i;
        row->room_seq = cols[5].i;
        return r;
}

static int project_tip(struct reward_state *st, const struct consumer_record *rec,
                       const char *tip_id, const struct tip_row *row, char *errstr,
                       size_t errstr_size)
{
        char k_mark[KEY_MAX], k_earn[KEY_MAX], k_count[KEY_MAX], k_top[KEY_MAX], k_room_wm[KEY_MAX];
        char k_stats[KEY_MAX] = "", k_payers[KEY_MAX] = "", k_session_wm[KEY_MAX] = "", session[24];
        char ttl[24], amount[24], seq[24], gifts[24], stats_ttl[24];
        redisReply *reply;

        key_of(k_mark, "live:tip:applied:", tip_id);
        key_of(k_earn, "live:room:earnings:", row->room_id);
        key_of(k_count, "live:room:recharge_count:", row->room_id);
        key_of(k_top, "live:room:top:", row->room_id);
        key_of(k_room_wm, "live:room:rebuilt:", row->room_id);
        if (row->session_id) {
                snprintf(session, sizeof(session), "%lld", row->session_id);
                key_of(k_stats, "live:stats:", session);
                key_of(k_payers, "live:stats:payers:", session);
                key_of(k_session_wm, "live:stats:rebuilt:", session);
        }
        snprintf(ttl, sizeof(ttl), "%lld", st->dedup_ttl_s);
        snprintf(amount, sizeof(amount), "%lld", row->amount);
        snprintf(seq, sizeof(seq), "%lld", row->room_seq);
        snprintf(gifts, sizeof(gifts), "%lld", row->gift_count);
        snprintf(stats_ttl, sizeof(stats_ttl), "%lld", st->stats_ttl_s);
        const char *keys[] = {k_mark,    k_earn,  k_count,  k_top,
                              k_room_wm, k_stats, k_payers, k_session_wm};
        const char *args[] = {ttl, amount, row->audience_id, seq, gifts, stats_ttl};

        if (!(reply = redis_eval(st, tip_script, 8, keys, 6, args, errstr, errstr_size)))
                return -1;
        log_debug(rec->trace_id, "tip %s room=%s redis=%s", tip_id, row->room_id,
                  reply->integer == 0   ? "already counted"
                  : reply->integer == 1 ? "in a rebuild"
                                        : "counted");
        freeReplyObject(reply);
        return 0;
}

/* Leaves the tip's room (and session) for the rebuild, in its own statement (no transaction is
 * open). */
static int mark_for_rebuild(struct reward_state *st, const struct tip_row *row, char *errstr,
                            size_t errstr_size)
{
        struct db_param p[] = {DB_STR(row->room_id), DB_I64(row->session_id)};

        return db_exec(st->db, st->sql.mark_room, p, 2, NULL, NULL, errstr, errstr_size) == DB_OK
                       ? 0
                       : -1;
}

static int reward_publish(void *state, struct consumer_record *rec, char *errstr,
                          size_t errstr_size)
{
        struct reward_state *st = state;
        const char *tip_id = payload_str(&rec->ev, "tip_id");
        struct tip_row row;
        bool found;

        if (read_tip_row(st, tip_id, &row, &found, errstr, errstr_size) != DB_OK)
                return -1;
        if (!found)
                return 0; /* apply() committed it; nothing else deletes tips */
        if (!st->is_degraded && project_tip(st, rec, tip_id, &row, errstr, errstr_size) == 0)
                return 0;
        /* Redis is out: the tip is in MySQL, and the rebuild will bring Redis to it. */
        metric_add(st->m_degraded, 1);
        log_debug(rec->trace_id, "tip %s left for the rebuild of room %s", tip_id, row.room_id);
        return mark_for_rebuild(st, &row, errstr, errstr_size);
}

/* ------------------------------------------------------------------ rebuilding from MySQL */

/* Copies a query's rows into a Redis key, STAGE_CHUNK members per ZADD (score, member) or SADD. */
struct stage {
        struct reward_state *st;
        const char *key;
        bool is_scored;
        char member[STAGE_CHUNK][ID_MAX + 1];
        char score[STAGE_CHUNK][24];
        size_t rows;
        bool has_failed;
        char err[256];
};

static void stage_send(struct stage *sg)
{
        const char *argv[2 + 2 * STAGE_CHUNK];
        int argc = 0;

        if (!sg->rows || sg->has_failed)
                return;
        argv[argc++] = sg->is_scored ? "ZADD" : "SADD";
        argv[argc++] = sg->key;
        for (size_t i = 0; i < sg->rows; i++) {
                if (sg->is_scored)
                        argv[argc++] = sg->score[i];
                argv[argc++] = sg->member[i];
        }
        sg->rows = 0;
        if (redis_run(sg->st, argc, argv, sg->err, sizeof(sg->err)) == -1)
                sg->has_failed = true;
}

static void stage_row(const struct db_col *cols, void *arg)
{
        struct stage *sg = arg;

        if (sg->has_failed)
                return;
        snprintf(sg->member[sg->rows], sizeof(sg->member[0]), "%s", cols[0].s);
        if (sg->is_scored)
                snprintf(sg->score[sg->rows], sizeof(sg->score[0]), "%lld", cols[1].i);
        if (++sg->rows == STAGE_CHUNK)
                stage_send(sg);
}

/* Fills key (emptied first) from query, whose first column is the member and second the score. */
static int stage(struct reward_state *st, struct db_stmt *query, const struct db_param *p, size_t n,
                 const char *key, bool is_scored, char *errstr, size_t errstr_size)
{
        struct stage *sg = calloc(1, sizeof(*sg));
        char member[ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = member, .s_size = sizeof(member)},
                                {.type = DB_PARAM_I64}};
        const char *del[] = {"DEL", key};
        int rc = -1;

        if (!sg) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        sg->st = st;
        sg->key = key;
        sg->is_scored = is_scored;
        if (redis_run(st, 2, del, errstr, errstr_size) == 0 &&
            db_query_each(st->db, query, p, n, cols, is_scored ? 2 : 1, stage_row, sg, errstr,
                          errstr_size) == DB_OK) {
                stage_send(sg);
                rc = sg->has_failed ? -1 : 0;
                if (sg->has_failed)
                        snprintf(errstr, errstr_size, "%s", sg->err);
        }
        free(sg);
        return rc;
}

static int rebuild_room_figures(struct reward_state *st, const char *room_id, long long seq,
                                char *errstr, size_t errstr_size)
{
        char k_earn[KEY_MAX], k_count[KEY_MAX], k_top[KEY_MAX], k_staged[KEY_MAX], k_wm[KEY_MAX];
        char earnings[24], count[24], through[24];
        struct db_param p[] = {DB_STR(room_id), DB_I64(seq)};
        struct db_col sums[] = {{.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}};
        bool found;
        redisReply *reply;

        if (db_query_row(st->db, st->sql.room_sums, p, 2, sums, 2, &found, errstr, errstr_size) !=
            DB_OK)
                return -1;
        key_of(k_staged, "live:rebuild:top:", room_id);
        if (stage(st, st->sql.room_top, p, 2, k_staged, true, errstr, errstr_size) == -1)
                return -1;
        key_of(k_earn, "live:room:earnings:", room_id);
        key_of(k_count, "live:room:recharge_count:", room_id);
        key_of(k_top, "live:room:top:", room_id);
        key_of(k_wm, "live:room:rebuilt:", room_id);
        snprintf(earnings, sizeof(earnings), "%lld", sums[0].i);
        snprintf(count, sizeof(count), "%lld", sums[1].i);
        snprintf(through, sizeof(through), "%lld", seq);
        const char *keys[] = {k_earn, k_count, k_top, k_staged, k_wm};
        const char *args[] = {earnings, count, through};

        if (!(reply = redis_eval(st, room_script, 5, keys, 3, args, errstr, errstr_size)))
                return -1;
        freeReplyObject(reply);
        return 0;
}

static int rebuild_session(struct reward_state *st, const char *room_id, long long seq,
                           long long session_id, char *errstr, size_t errstr_size)
{
        char session[24], k_stats[KEY_MAX], k_payers[KEY_MAX], k_staged[KEY_MAX], k_wm[KEY_MAX];
        char amount[24], gifts[24], tips[24], through[24], ttl[24];
        struct db_param p[] = {DB_STR(room_id), DB_I64(seq), DB_I64(session_id)};
        struct db_col sums[] = {
                {.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}};
        bool found;
        redisReply *reply;

        if (db_query_row(st->db, st->sql.session_sums, p, 3, sums, 3, &found, errstr,
                         errstr_size) != DB_OK)
                return -1;
        snprintf(session, sizeof(session), "%lld", session_id);
        key_of(k_staged, "live:rebuild:payers:", session);
        if (stage(st, st->sql.session_payers, p, 3, k_staged, false, errstr, errstr_size) == -1)
                return -1;
        key_of(k_stats, "live:stats:", session);
        key_of(k_payers, "live:stats:payers:", session);
        key_of(k_wm, "live:stats:rebuilt:", session);
        snprintf(amount, sizeof(amount), "%lld", sums[0].i);
        snprintf(gifts, sizeof(gifts), "%lld", sums[1].i);
        snprintf(tips, sizeof(tips), "%lld", sums[2].i);
        snprintf(through, sizeof(through), "%lld", seq);
        snprintf(ttl, sizeof(ttl), "%lld", st->stats_ttl_s);
        const char *keys[] = {k_stats, k_payers, k_staged, k_wm};
        const char *args[] = {amount, gifts, tips, through, ttl};

        if (!(reply = redis_eval(st, session_script, 4, keys, 5, args, errstr, errstr_size)))
                return -1;
        freeReplyObject(reply);
        return 0;
}

/* The sessions marked for a room (0, the room alone, left out). */
struct session_list {
        long long *ids;
        size_t n, cap;
        bool is_oom;
};

static void add_session(const struct db_col *cols, void *arg)
{
        struct session_list *l = arg;

        if (cols[0].i == 0 || l->is_oom)
                return;
        if (l->n == l->cap) {
                size_t cap = l->cap ? 2 * l->cap : 8;
                long long *ids = realloc(l->ids, cap * sizeof(*ids));

                if (!ids) {
                        l->is_oom = true;
                        return;
                }
                l->ids = ids;
                l->cap = cap;
        }
        l->ids[l->n++] = cols[0].i;
}

/* Locks the room's counter row (no tip of the room commits until we do) and its marks. */
static int lock_room(struct reward_state *st, const char *room_id, long long *seq,
                     struct session_list *sessions, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(room_id)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found;

        if (db_query_row(st->db, st->sql.lock_room, p, 1, &col, 1, &found, errstr, errstr_size) !=
            DB_OK)
                return -1;
        *seq = found ? col.i : 0;
        if (db_query_each(st->db, st->sql.marked_sessions, p, 1, &col, 1, add_session, sessions,
                          errstr, errstr_size) != DB_OK)
                return -1;
        if (sessions->is_oom) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        return 0;
}

static int rebuild_locked(struct reward_state *st, const char *room_id, long long seq,
                          const struct session_list *sessions, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(room_id)};

        if (rebuild_room_figures(st, room_id, seq, errstr, errstr_size) == -1)
                return -1;
        for (size_t i = 0; i < sessions->n; i++)
                if (rebuild_session(st, room_id, seq, sessions->ids[i], errstr, errstr_size) == -1)
                        return -1;
        return db_exec(st->db, st->sql.clear_marks, p, 1, NULL, NULL, errstr, errstr_size) == DB_OK
                       ? 0
                       : -1;
}

/* Makes the room's Redis figures (and its marked sessions') those of recharge, in one transaction.
 */
static int rebuild_room(struct reward_state *st, const char *room_id, char *errstr,
                        size_t errstr_size)
{
        struct session_list sessions = {0};
        long long seq = 0;
        int rc = -1;

        if (db_begin(st->db, errstr, errstr_size) != DB_OK)
                return -1;
        if (lock_room(st, room_id, &seq, &sessions, errstr, errstr_size) == 0 &&
            rebuild_locked(st, room_id, seq, &sessions, errstr, errstr_size) == 0 &&
            db_commit(st->db, errstr, errstr_size) == DB_OK)
                rc = 0;
        else
                db_rollback(st->db);
        if (rc == 0) {
                metric_add(st->m_rebuilt, 1);
                log_info(NULL,
                         "rebuilt room %s in Redis from recharge through tip %lld, %zu session(s)",
                         room_id, seq, sessions.n);
        }
        free(sessions.ids);
        return rc;
}

/* Replaces room_id with the next marked room after it in key order; *found says whether there is
 * one. */
static enum db_result next_marked(struct reward_state *st, char *room_id, bool *found, char *errstr,
                                  size_t errstr_size)
{
        char after[ID_MAX + 1];
        struct db_col col = {.type = DB_PARAM_STR, .s = room_id, .s_size = ID_MAX + 1};

        /* The key goes in from a copy: the same buffer receives the next room. */
        snprintf(after, sizeof(after), "%s", room_id);
        struct db_param p[] = {DB_STR(after)};

        return db_query_row(st->db, st->sql.next_marked, p, 1, &col, 1, found, errstr, errstr_size);
}

/* Rebuilds marked rooms for up to TICK_REBUILD_MS; the rest wait for the next tick. */
static void rebuild_marked(struct reward_state *st)
{
        char room_id[ID_MAX + 1] = "", err[512];
        long long deadline = monotonic_ms() + TICK_REBUILD_MS;
        bool found;

        while (!st->is_degraded && monotonic_ms() < deadline) {
                if (next_marked(st, room_id, &found, err, sizeof(err)) != DB_OK) {
                        log_warn(NULL, "rooms to rebuild: %s", err);
                        return;
                }
                if (!found)
                        return;
                if (rebuild_room(st, room_id, err, sizeof(err)) == -1) {
                        log_warn(NULL, "rebuild of room %s: %s (tried again in a second)", room_id,
                                 err);
                        return;
                }
        }
}

/* ------------------------------------------------------------------ live_room_realtime */

/* Folds every due room's pending tips into live_room_realtime, in one transaction. */
static void fold_realtime(struct reward_state *st)
{
        struct db_param p[] = {DB_I64(st->flush_tips), DB_I64(st->flush_s)};
        unsigned long long rooms = 0;
        char err[512];

        if (db_begin(st->db, err, sizeof(err)) != DB_OK)
                goto fail;
        if (db_exec(st->db, st->sql.flag_due, p, 2, &rooms, NULL, err, sizeof(err)) != DB_OK ||
            (rooms &&
             (db_exec(st->db, st->sql.fold_due, NULL, 0, NULL, NULL, err, sizeof(err)) != DB_OK ||
              db_exec(st->db, st->sql.unflag, NULL, 0, NULL, NULL, err, sizeof(err)) != DB_OK)) ||
            db_commit(st->db, err, sizeof(err)) != DB_OK)
                goto rollback;
        if (rooms) {
                metric_add(st->m_folded, (long long)rooms);
                log_debug(NULL, "live_room_realtime: folded %llu room(s)", rooms);
        }
        return;
rollback:
        db_rollback(st->db);
fail:
        log_warn(NULL, "live_room_realtime fold: %s (tried again in a second)", err);
}

static void reward_tick(void *state, long long now_ms)
{
        struct reward_state *st = state;
        char err[512];

        (void)now_ms;
        fold_realtime(st);
        if (st->is_degraded) {
                if (redis_conn_ping(st->redis, err, sizeof(err)) == -1)
                        return;
                st->is_degraded = false;
                metric_set(st->m_degraded_now, 0);
                log_info(NULL, "redis answers again: rebuilding the marked rooms from recharge");
        }
        rebuild_marked(st);
}

const struct consumer_role reward_sync_role = {
        .name = "reward-sync",
        .topics = reward_topics,
        .open = reward_open,
        .apply = reward_apply,
        .publish = reward_publish,
        .tick = reward_tick,
        .close = reward_close,
};
