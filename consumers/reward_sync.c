/* reward_sync.c: tips into recharge, Redis room figures (rebuilt after outages) and
 * live_room_realtime. */
#include "reward_sync.h"
#include "reward_sync_role.h"

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "contract.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "rebuild.h"
#include "redis_conn.h"
#include "reward.h"
#include "role_kit.h"
#include "settings.h"

static const char *const reward_topics[] = {LF_TOPIC_REWARD, NULL};

#define TICK_REBUILD_MS 1000 /* rebuild work per tick before the partitions get their turn */

static const struct db_stmt_def reward_statements[] = {
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
        {offsetof(struct reward_sql, pending),
         "SELECT COALESCE(SUM(count_pending), 0) FROM live_room_sync WHERE pending_since IS NOT NULL"},
};

/*
 * The projection of one tip; see reward_sync.h. tip(k, a) reads the tip's KEYS from k + 1 and
 * its ARGV from a + 1. KEYS: applied marker, earnings, count, top, room watermark, then stats,
 * payers, session watermark ('' without a session). ARGV: marker TTL, amount, audience_id,
 * room_seq, gift_count, stats TTL. tip() returns 0 already counted, 1 counted now but covered
 * by a rebuild, 2 counted now.
 */
#define REWARD_TIP_FN                                                                              \
        "local function tip(k, a)\n"                                                               \
        "  if not redis.call('SET', KEYS[k+1], '1', 'NX', 'EX', ARGV[a+1]) then return 0 end\n"    \
        "  local seq = tonumber(ARGV[a+4])\n"                                                      \
        "  local counted = 1\n"                                                                    \
        "  if seq > tonumber(redis.call('GET', KEYS[k+5]) or '0') then\n"                          \
        "    redis.call('INCRBY', KEYS[k+2], ARGV[a+2])\n"                                         \
        "    redis.call('INCR', KEYS[k+3])\n"                                                      \
        "    redis.call('ZINCRBY', KEYS[k+4], ARGV[a+2], ARGV[a+3])\n"                             \
        "    counted = 2\n"                                                                        \
        "  end\n"                                                                                  \
        "  if KEYS[k+6] ~= '' and seq > tonumber(redis.call('GET', KEYS[k+8]) or '0') then\n"      \
        "    redis.call('HINCRBY', KEYS[k+6], 'gift_amount', ARGV[a+2])\n"                         \
        "    redis.call('HINCRBY', KEYS[k+6], 'gift_count', ARGV[a+5])\n"                          \
        "    redis.call('HINCRBY', KEYS[k+6], 'tip_count', 1)\n"                                   \
        "    redis.call('SADD', KEYS[k+7], ARGV[a+3])\n"                                           \
        "    redis.call('HSET', KEYS[k+6], 'paying_users', redis.call('SCARD', KEYS[k+7]))\n"      \
        "  end\n"                                                                                  \
        "  if KEYS[k+6] ~= '' then\n"                                                              \
        "    for i = 6, 8 do redis.call('EXPIRE', KEYS[k+i], ARGV[a+6]) end\n"                     \
        "  end\n"                                                                                  \
        "  return counted\n"                                                                       \
        "end\n"

/* One tip: its 8 KEYS and 6 ARGV. @returns what tip() says. */
const char reward_tip_script[] = REWARD_TIP_FN "return tip(0, 0)\n";

/*
 * A batch of tips in one call: 8 KEYS and 6 ARGV per tip, the tips in order (each as
 * reward_tip_script takes it). @returns what tip() says of each, in order.
 */
const char reward_batch_script[] = REWARD_TIP_FN "local out = {}\n"
                                                 "for i = 0, #KEYS / 8 - 1 do\n"
                                                 "  out[i + 1] = tip(i * 8, i * 6)\n"
                                                 "end\n"
                                                 "return out\n";

static void key_of(char *out, const char *prefix, const char *id)
{
        snprintf(out, KEY_MAX, "%s%s", prefix, id);
}

/* ------------------------------------------------------------------ open and close */

static int prepare(struct reward_state *st)
{
        return db_stmts(st->db, &st->sql, reward_statements,
                        sizeof(reward_statements) / sizeof(reward_statements[0]));
}

static void register_metrics(struct reward_state *st, struct metrics *m)
{
        st->m_degraded = metrics_counter(
                m, "liveflow_reward_redis_degraded_total",
                "Tips kept in MySQL only because Redis failed; their rooms are rebuilt", NULL);
        st->m_degraded_now = metrics_gauge(m, "liveflow_reward_redis_degraded",
                                           "1 while Redis is failing and tips skip it (with "
                                           "several lanes: how many find it failing)",
                                           NULL);
        st->m_rebuilt =
                metrics_counter(m, "liveflow_reward_rooms_rebuilt_total",
                                "Rooms whose Redis figures were rebuilt from recharge", NULL);
        st->m_redis_lost = metrics_counter(
                m, "liveflow_redis_data_lost_total",
                "Times Redis was found without liveflow's data (restarted empty or flushed) and "
                "a rebuild from MySQL was started",
                NULL);
        st->m_pending = metrics_gauge(
                m, "liveflow_reward_realtime_pending",
                "Tips counted in Redis but not yet folded into live_room_realtime (the sync "
                "backlog)",
                NULL);
        st->m_folded = metrics_counter(
                m, "liveflow_reward_realtime_folds_total",
                "Rooms whose pending tips were folded into live_room_realtime", NULL);
        st->m_read_back = metrics_counter(
                m, "liveflow_reward_rows_read_back_total",
                "Tips whose recharge row publish read back from MySQL before projecting it to "
                "Redis (duplicates and replays; a tip the batch wrote is projected as written)",
                NULL);
        role_gate_init(
                &st->gate, m, "liveflow_reward_batches_total",
                "Batches of tips written set-based, by way: unread (written without looking "
                "recharge up first), read_first (looked up first, after tips held before were "
                "met), conflict (written unread, met a tip held before, rolled back and looked up)");
}

static void script_sha(const char *script, char hex[41])
{
        unsigned char sha[EVP_MAX_MD_SIZE];
        unsigned int len = 0;

        EVP_Digest(script, strlen(script), sha, &len, EVP_sha1(), NULL);
        for (unsigned int i = 0; i < 20; i++)
                snprintf(hex + 2 * i, 3, "%02x", sha[i]);
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
        rebuild_epoch_init(&st->redis_epoch, "reward-sync");
        st->flush_tips = s->reward_flush_tips;
        st->flush_s = s->reward_flush_s;
        st->dedup_ttl_s = s->reward_dedup_ttl_s;
        st->stats_ttl_s = s->reward_stats_ttl_s;
        st->rebuild = rebuild_new(st->db, st->redis, s->live_ttl_s, st->stats_ttl_s);
        if (!st->rebuild || prepare(st) == -1) {
                rebuild_destroy(st->rebuild);
                free(st); /* the statements made so far belong to db */
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        register_metrics(st, env->metrics);
        script_sha(reward_batch_script, st->batch_sha);
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
        struct reward_state *st = state;

        rebuild_destroy(st->rebuild);
        free(st->known.rows);
        free(st);
}

/* ------------------------------------------------------------------ reading the tip */

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
        if (!payload_int(ev, "amount", &t->amount) || t->amount <= 0) {
                snprintf(errstr, errstr_size, "amount must be an integer > 0");
                return -1;
        }
        if (!payload_int(ev, "gift_count", &t->gift_count) || t->gift_count < 1 ||
            t->gift_count > INT32_MAX) {
                snprintf(errstr, errstr_size, "gift_count must be an integer from 1 to %ld",
                         (long)INT32_MAX);
                return -1;
        }
        if (!payload_int(ev, "ts_ms", &t->ts_ms) || t->ts_ms <= 0) {
                snprintf(errstr, errstr_size, "ts_ms must be an integer > 0");
                return -1;
        }
        return 0;
}

int reward_read_tip(const struct event *ev, struct tip *t, char *errstr, size_t errstr_size)
{
        static const char *const genders[] = {"male", "female", "unknown", NULL};
        static const char *const audience_types[] = {"registered", "guest", NULL};

        if (strcmp(ev->event_type, "reward") != 0 || !ev->payload_name ||
            strcmp(ev->payload_name, "Reward") != 0) {
                snprintf(errstr, errstr_size, "event_type %s with payload %s is not a tip",
                         ev->event_type, ev->payload_name ? ev->payload_name : "null");
                return -1;
        }
        if (reward_check(ev, errstr, errstr_size) == -1) /* what every money role accepts */
                return -1;
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

        rec->note = 0; /* publish() reads the row back */
        if (reward_read_tip(&rec->ev, &t, errstr, errstr_size) == -1)
                return APPLY_PERMANENT;
        if ((r = live_session(st, t.room_id, &session_id, errstr, errstr_size)) != DB_OK ||
            (r = insert_tip(st, &t, session_id, &is_new, errstr, errstr_size)) != DB_OK ||
            (is_new && (r = number_tip(st, &t, &seq, errstr, errstr_size)) != DB_OK))
                return apply_from_db(r);
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
void reward_redis_failed(struct reward_state *st, const char *why)
{
        if (!st->is_degraded) {
                log_warn(
                        NULL,
                        "redis degraded: %s; tips are kept in MySQL only and their rooms are rebuilt "
                        "from it once Redis answers",
                        why);
                metric_add(st->m_degraded_now, 1); /* the series sums the process's lanes */
        }
        st->is_degraded = true;
}

static redisReply *redis_eval(struct reward_state *st, const char *script, int nkeys,
                              const char **keys, int nargs, const char **args, char *errstr,
                              size_t errstr_size)
{
        redisReply *reply =
                redis_conn_eval(st->redis, script, nkeys, keys, nargs, args, errstr, errstr_size);

        if (!reply)
                reward_redis_failed(st, errstr);
        return reply;
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

void reward_tip_call_fill(const struct reward_state *st, const char *tip_id,
                          const struct tip_row *row, struct tip_call *c)
{
        char session[24];

        key_of(c->k_mark, "live:tip:applied:", tip_id);
        key_of(c->k_earn, LF_KEY_ROOM_EARNINGS, row->room_id);
        key_of(c->k_count, LF_KEY_ROOM_RECHARGE_COUNT, row->room_id);
        key_of(c->k_top, LF_KEY_ROOM_TOP, row->room_id);
        key_of(c->k_room_wm, LF_KEY_ROOM_REBUILT, row->room_id);
        c->k_stats[0] = c->k_payers[0] = c->k_session_wm[0] = '\0';
        if (row->session_id) {
                snprintf(session, sizeof(session), "%lld", row->session_id);
                key_of(c->k_stats, LF_KEY_SESSION_STATS, session);
                key_of(c->k_payers, LF_KEY_SESSION_PAYERS, session);
                key_of(c->k_session_wm, LF_KEY_SESSION_REBUILT, session);
        }
        snprintf(c->ttl, sizeof(c->ttl), "%lld", st->dedup_ttl_s);
        snprintf(c->amount, sizeof(c->amount), "%lld", row->amount);
        snprintf(c->seq, sizeof(c->seq), "%lld", row->room_seq);
        snprintf(c->gifts, sizeof(c->gifts), "%lld", row->gift_count);
        snprintf(c->stats_ttl, sizeof(c->stats_ttl), "%lld", st->stats_ttl_s);
        const char *keys[] = {c->k_mark,    c->k_earn,  c->k_count,  c->k_top,
                              c->k_room_wm, c->k_stats, c->k_payers, c->k_session_wm};
        const char *args[] = {c->ttl, c->amount, row->audience_id, c->seq, c->gifts, c->stats_ttl};

        memcpy(c->keys, keys, sizeof(keys));
        memcpy(c->args, args, sizeof(args));
}

static int project_tip(struct reward_state *st, const struct consumer_record *rec,
                       const char *tip_id, const struct tip_row *row, char *errstr,
                       size_t errstr_size)
{
        struct tip_call c;
        redisReply *reply;

        reward_tip_call_fill(st, tip_id, row, &c);
        if (!(reply = redis_eval(st, reward_tip_script, 8, c.keys, 6, c.args, errstr, errstr_size)))
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
        return rebuild_mark_room(st->rebuild, row->room_id, row->session_id, errstr, errstr_size);
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
        metric_add(st->m_read_back, 1);
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

/* Makes the room's Redis figures (and its marked sessions') those of recharge (lib/rebuild.c). */
static int rebuild_one_room(struct reward_state *st, const char *room_id, char *errstr,
                            size_t errstr_size)
{
        long long through = 0;
        size_t sessions = 0;

        if (rebuild_room(st->rebuild, room_id, &through, &sessions, errstr, errstr_size) == -1) {
                char ping_err[256];

                if (redis_conn_ping(st->redis, ping_err, sizeof(ping_err)) == -1)
                        reward_redis_failed(st, errstr);
                return -1;
        }
        metric_add(st->m_rebuilt, 1);
        log_info(NULL, "rebuilt room %s in Redis from recharge through tip %lld, %zu session(s)",
                 room_id, through, sessions);
        return 0;
}

/* Rebuilds marked rooms for up to TICK_REBUILD_MS; the rest wait for the next tick. */
static void rebuild_marked(struct reward_state *st)
{
        char room_id[ID_MAX + 1] = "", err[512];
        long long deadline = clock_mono_ms() + TICK_REBUILD_MS;
        bool found;

        while (!st->is_degraded && clock_mono_ms() < deadline) {
                if (rebuild_next_marked(st->rebuild, room_id, &found, err, sizeof(err)) == -1) {
                        log_warn(NULL, "rooms to rebuild: %s", err);
                        return;
                }
                if (!found)
                        return;
                if (rebuild_one_room(st, room_id, err, sizeof(err)) == -1) {
                        log_warn(NULL, "rebuild of room %s: %s (tried again in a second)", room_id,
                                 err);
                        return;
                }
        }
}

/* ------------------------------------------------------------------ live_room_realtime */

/* Folds every due room's pending tips into live_room_realtime, in one transaction. */
/* The tips still waiting for a fold, for liveflow_reward_realtime_pending. */
static void count_pending(struct reward_state *st)
{
        struct db_col col = {.type = DB_PARAM_I64};
        bool found = false;
        char err[256];

        if (db_query_row(st->db, st->sql.pending, NULL, 0, &col, 1, &found, err, sizeof(err)) ==
                    DB_OK &&
            found)
                metric_set(st->m_pending, col.is_null ? 0 : col.i);
}

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
        count_pending(st);
        return;
rollback:
        db_rollback(st->db);
fail:
        log_warn(NULL, "live_room_realtime fold: %s (tried again in a second)", err);
}

/* Redis restarted empty or flushed: every room (and recent session) is rebuilt from recharge. */
static void check_redis_epoch(struct reward_state *st)
{
        unsigned long long marked = 0;
        bool is_lost = false;
        char err[512];

        if (rebuild_epoch_check(st->redis, &st->redis_epoch, &is_lost, err, sizeof(err)) == -1) {
                reward_redis_failed(st, err);
                return;
        }
        if (is_lost) {
                st->is_redis_lost = true;
                metric_add(st->m_redis_lost, 1);
        }
        if (!st->is_redis_lost)
                return;
        if (rebuild_mark_all_rooms(st->rebuild, &marked, err, sizeof(err)) == -1) {
                log_warn(NULL, "redis lost its data, marking the rooms failed: %s (tried again)",
                         err);
                return;
        }
        st->is_redis_lost = false;
        log_warn(
                NULL,
                "redis holds none of liveflow's data, or an older copy (new, restarted or flushed; epoch now "
                "%s): rebuilding %llu room(s) and session(s) from recharge",
                st->redis_epoch.token, marked);
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
                metric_add(st->m_degraded_now, -1);
                log_info(NULL, "redis answers again: rebuilding the marked rooms from recharge");
        }
        check_redis_epoch(st);
        rebuild_marked(st);
}

const struct consumer_role reward_sync_role = {
        .name = "reward-sync",
        .topics = reward_topics,
        .open = reward_open,
        .apply = reward_apply,
        .publish = reward_publish,
        .apply_many = reward_apply_many,
        .publish_many = reward_publish_many,
        .tick = reward_tick,
        .close = reward_close,
};