/* rebuild.c: Redis room figures and session tip counters derived from MySQL, and Redis that lost
 * its data; shared by the projecting roles and liveflow-ctl (the live-stream keys:
 * rebuild_streams.c). */
#include "rebuild.h"
#include "rebuild_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "redis_conn.h"
#include "trace.h"

#define STAGE_CHUNK 128 /* members per ZADD / SADD while a rebuild stages a key */

static const struct db_stmt_def rebuild_statements[] = {
        {offsetof(struct rebuild_sql, mark_room),
         "INSERT IGNORE INTO live_room_rebuild (room_id, session_id) VALUES (?, ?)"},
        {offsetof(struct rebuild_sql, mark_rooms),
         "INSERT IGNORE INTO live_room_rebuild (room_id, session_id) SELECT room_id, 0 FROM live_room_sync"},
        {offsetof(struct rebuild_sql, mark_sessions),
         "INSERT IGNORE INTO live_room_rebuild (room_id, session_id) SELECT DISTINCT room_id, session_id "
         "FROM recharge WHERE session_id IS NOT NULL AND session_id > 0 AND tipped_at >= NOW(3) - INTERVAL ? SECOND "
         "UNION SELECT room_id, session_id FROM live_streams WHERE session_id IS NOT NULL AND room_id IS NOT NULL "
         "AND (status = 'live' OR ended_at >= NOW(3) - INTERVAL ? SECOND) "
         "AND room_id IN (SELECT room_id FROM live_room_sync)"},
        {offsetof(struct rebuild_sql, lock_room),
         "SELECT tip_seq FROM live_room_sync WHERE room_id = ? FOR UPDATE"},
        {offsetof(struct rebuild_sql, marked_sessions),
         "SELECT session_id FROM live_room_rebuild WHERE room_id = ? FOR UPDATE"},
        {offsetof(struct rebuild_sql, room_sums),
         "SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM recharge WHERE room_id = ? AND room_seq BETWEEN 1 AND ?"},
        {offsetof(struct rebuild_sql, room_top),
         "SELECT audience_id, SUM(amount) FROM recharge WHERE room_id = ? AND room_seq BETWEEN 1 AND ? "
         "GROUP BY audience_id"},
        {offsetof(struct rebuild_sql, session_sums),
         "SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(gift_count), 0), COUNT(*) FROM recharge "
         "WHERE room_id = ? AND room_seq BETWEEN 1 AND ? AND session_id = ?"},
        {offsetof(struct rebuild_sql, session_payers),
         "SELECT DISTINCT audience_id FROM recharge WHERE room_id = ? AND room_seq BETWEEN 1 AND ? AND session_id = ?"},
        {offsetof(struct rebuild_sql, clear_marks),
         "DELETE FROM live_room_rebuild WHERE room_id = ?"},
        {offsetof(struct rebuild_sql, next_marked),
         "SELECT room_id FROM live_room_rebuild WHERE room_id > ? ORDER BY room_id LIMIT 1"},
        /* Redis keys a stream by its id: live under any vendor, else the row touched last. */
        {offsetof(struct rebuild_sql, project),
         "SELECT status, anchor_id, room_id, session_id, " EPOCH_MS(
                 "started_at") ", vendor FROM live_streams WHERE stream_id = ? "
                               "ORDER BY status = 'live' DESC, last_event_at DESC LIMIT 1 FOR UPDATE"},
        {offsetof(struct rebuild_sql, live_page),
         "SELECT stream_id FROM live_streams WHERE status = 'live' AND stream_id > ? ORDER BY stream_id LIMIT 200"},
        {offsetof(struct rebuild_sql, has_room),
         "SELECT COUNT(*) FROM live_room_sync WHERE room_id = ? COLLATE utf8mb4_bin"},
        {offsetof(struct rebuild_sql, is_live),
         "SELECT COUNT(*) FROM live_streams WHERE stream_id = ? AND status = 'live'"},
};

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

void rebuild_key_of(char *out, const char *prefix, const char *id)
{
        size_t lp = strnlen(prefix, KEY_MAX - 1), li = strnlen(id, KEY_MAX - 1 - lp);

        /* snprintf("%s%s") without the format parsing: two keys per stream of every batch */
        memcpy(out, prefix, lp);
        memcpy(out + lp, id, li);
        out[lp + li] = '\0';
}

struct rebuild *rebuild_new(struct db *db, struct redis_conn *redis, long long live_ttl_s,
                            long long stats_ttl_s)
{
        struct rebuild *rb = calloc(1, sizeof(*rb));

        if (!rb)
                return NULL;
        rb->db = db;
        rb->redis = redis;
        rb->live_ttl_s = live_ttl_s;
        rb->stats_ttl_s = stats_ttl_s;
        if (db_stmts(db, &rb->sql, rebuild_statements,
                     sizeof(rebuild_statements) / sizeof(rebuild_statements[0])) == -1) {
                free(rb);
                return NULL;
        }
        return rb;
}

void rebuild_destroy(struct rebuild *rb)
{
        free(rb); /* the statements belong to db */
}

static int redis_run(struct rebuild *rb, int argc, const char **argv, char *errstr,
                     size_t errstr_size)
{
        redisReply *reply = redis_conn_cmd(rb->redis, argc, argv, NULL, errstr, errstr_size);

        if (!reply)
                return -1;
        freeReplyObject(reply);
        return 0;
}

int rebuild_redis_eval(struct rebuild *rb, const char *script, int nkeys, const char **keys,
                       int nargs, const char **args, char *errstr, size_t errstr_size)
{
        redisReply *reply =
                redis_conn_eval(rb->redis, script, nkeys, keys, nargs, args, errstr, errstr_size);

        if (!reply)
                return -1;
        freeReplyObject(reply);
        return 0;
}

/* ------------------------------------------------------------------ marking rooms */

int rebuild_mark_room(struct rebuild *rb, const char *room_id, long long session_id, char *errstr,
                      size_t errstr_size)
{
        struct db_param p[] = {DB_STR(room_id), DB_I64(session_id)};

        return db_exec(rb->db, rb->sql.mark_room, p, 2, NULL, NULL, errstr, errstr_size) == DB_OK
                       ? 0
                       : -1;
}

int rebuild_mark_all_rooms(struct rebuild *rb, unsigned long long *marked, char *errstr,
                           size_t errstr_size)
{
        struct db_param p[] = {DB_I64(rb->stats_ttl_s), DB_I64(rb->stats_ttl_s)};
        unsigned long long rooms = 0, sessions = 0;

        if (db_exec(rb->db, rb->sql.mark_rooms, NULL, 0, &rooms, NULL, errstr, errstr_size) !=
                    DB_OK ||
            db_exec(rb->db, rb->sql.mark_sessions, p, 2, &sessions, NULL, errstr, errstr_size) !=
                    DB_OK)
                return -1;
        if (marked)
                *marked = rooms + sessions;
        return 0;
}

int rebuild_next_marked(struct rebuild *rb, char *room_id, bool *found, char *errstr,
                        size_t errstr_size)
{
        char after[ID_MAX + 1];
        struct db_col col = {.type = DB_PARAM_STR, .s = room_id, .s_size = ID_MAX + 1};

        /* The key goes in from a copy: the same buffer receives the next room. */
        snprintf(after, sizeof(after), "%s", room_id);
        struct db_param p[] = {DB_STR(after)};

        return db_query_row(rb->db, rb->sql.next_marked, p, 1, &col, 1, found, errstr,
                            errstr_size) == DB_OK
                       ? 0
                       : -1;
}

/* ------------------------------------------------------------------ rebuilding a room */

/* Copies a query's rows into a Redis key, STAGE_CHUNK members per ZADD (score, member) or SADD. */
struct stage {
        struct rebuild *rb;
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
        if (redis_run(sg->rb, argc, argv, sg->err, sizeof(sg->err)) == -1)
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
static int stage(struct rebuild *rb, struct db_stmt *query, const struct db_param *p, size_t n,
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
        sg->rb = rb;
        sg->key = key;
        sg->is_scored = is_scored;
        if (redis_run(rb, 2, del, errstr, errstr_size) == 0 &&
            db_query_each(rb->db, query, p, n, cols, is_scored ? 2 : 1, stage_row, sg, errstr,
                          errstr_size) == DB_OK) {
                stage_send(sg);
                rc = sg->has_failed ? -1 : 0;
                if (sg->has_failed)
                        snprintf(errstr, errstr_size, "%s", sg->err);
        }
        free(sg);
        return rc;
}

static int rebuild_room_figures(struct rebuild *rb, const char *room_id, long long seq,
                                char *errstr, size_t errstr_size)
{
        char k_earn[KEY_MAX], k_count[KEY_MAX], k_top[KEY_MAX], k_staged[KEY_MAX], k_wm[KEY_MAX];
        char earnings[24], count[24], through[24];
        struct db_param p[] = {DB_STR(room_id), DB_I64(seq)};
        struct db_col sums[] = {{.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}};
        bool found;

        if (db_query_row(rb->db, rb->sql.room_sums, p, 2, sums, 2, &found, errstr, errstr_size) !=
            DB_OK)
                return -1;
        rebuild_key_of(k_staged, "live:rebuild:top:", room_id);
        if (stage(rb, rb->sql.room_top, p, 2, k_staged, true, errstr, errstr_size) == -1)
                return -1;
        rebuild_key_of(k_earn, LF_KEY_ROOM_EARNINGS, room_id);
        rebuild_key_of(k_count, LF_KEY_ROOM_RECHARGE_COUNT, room_id);
        rebuild_key_of(k_top, LF_KEY_ROOM_TOP, room_id);
        rebuild_key_of(k_wm, LF_KEY_ROOM_REBUILT, room_id);
        snprintf(earnings, sizeof(earnings), "%lld", sums[0].i);
        snprintf(count, sizeof(count), "%lld", sums[1].i);
        snprintf(through, sizeof(through), "%lld", seq);
        const char *keys[] = {k_earn, k_count, k_top, k_staged, k_wm};
        const char *args[] = {earnings, count, through};

        return rebuild_redis_eval(rb, room_script, 5, keys, 3, args, errstr, errstr_size);
}

static int rebuild_session(struct rebuild *rb, const char *room_id, long long seq,
                           long long session_id, char *errstr, size_t errstr_size)
{
        char session[24], k_stats[KEY_MAX], k_payers[KEY_MAX], k_staged[KEY_MAX], k_wm[KEY_MAX];
        char amount[24], gifts[24], tips[24], through[24], ttl[24];
        struct db_param p[] = {DB_STR(room_id), DB_I64(seq), DB_I64(session_id)};
        struct db_col sums[] = {
                {.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}};
        bool found;

        if (db_query_row(rb->db, rb->sql.session_sums, p, 3, sums, 3, &found, errstr,
                         errstr_size) != DB_OK)
                return -1;
        snprintf(session, sizeof(session), "%lld", session_id);
        rebuild_key_of(k_staged, "live:rebuild:payers:", session);
        if (stage(rb, rb->sql.session_payers, p, 3, k_staged, false, errstr, errstr_size) == -1)
                return -1;
        rebuild_key_of(k_stats, LF_KEY_SESSION_STATS, session);
        rebuild_key_of(k_payers, LF_KEY_SESSION_PAYERS, session);
        rebuild_key_of(k_wm, LF_KEY_SESSION_REBUILT, session);
        snprintf(amount, sizeof(amount), "%lld", sums[0].i);
        snprintf(gifts, sizeof(gifts), "%lld", sums[1].i);
        snprintf(tips, sizeof(tips), "%lld", sums[2].i);
        snprintf(through, sizeof(through), "%lld", seq);
        snprintf(ttl, sizeof(ttl), "%lld", rb->stats_ttl_s);
        const char *keys[] = {k_stats, k_payers, k_staged, k_wm};
        const char *args[] = {amount, gifts, tips, through, ttl};

        return rebuild_redis_eval(rb, session_script, 4, keys, 5, args, errstr, errstr_size);
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
static int lock_room(struct rebuild *rb, const char *room_id, long long *seq,
                     struct session_list *sessions, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(room_id)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found;

        if (db_query_row(rb->db, rb->sql.lock_room, p, 1, &col, 1, &found, errstr, errstr_size) !=
            DB_OK)
                return -1;
        *seq = found ? col.i : 0;
        if (db_query_each(rb->db, rb->sql.marked_sessions, p, 1, &col, 1, add_session, sessions,
                          errstr, errstr_size) != DB_OK)
                return -1;
        if (sessions->is_oom) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        return 0;
}

static int rebuild_locked(struct rebuild *rb, const char *room_id, long long seq,
                          const struct session_list *sessions, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(room_id)};

        if (rebuild_room_figures(rb, room_id, seq, errstr, errstr_size) == -1)
                return -1;
        for (size_t i = 0; i < sessions->n; i++)
                if (rebuild_session(rb, room_id, seq, sessions->ids[i], errstr, errstr_size) == -1)
                        return -1;
        return db_exec(rb->db, rb->sql.clear_marks, p, 1, NULL, NULL, errstr, errstr_size) == DB_OK
                       ? 0
                       : -1;
}

int rebuild_room(struct rebuild *rb, const char *room_id, long long *through, size_t *sessions,
                 char *errstr, size_t errstr_size)
{
        struct session_list marked = {0};
        long long seq = 0;
        int rc = -1;

        if (db_begin(rb->db, errstr, errstr_size) != DB_OK)
                return -1;
        if (lock_room(rb, room_id, &seq, &marked, errstr, errstr_size) == 0 &&
            rebuild_locked(rb, room_id, seq, &marked, errstr, errstr_size) == 0 &&
            db_commit(rb->db, errstr, errstr_size) == DB_OK)
                rc = 0;
        else
                db_rollback(rb->db);
        if (rc == 0 && through)
                *through = seq;
        if (rc == 0 && sessions)
                *sessions = marked.n;
        free(marked.ids);
        return rc;
}

/* ------------------------------------------------------------------ rooms without tips */

const char *rebuild_room_of_key(const char *key)
{
        static const char *const prefixes[] = {LF_KEY_ROOM_EARNINGS, LF_KEY_ROOM_RECHARGE_COUNT,
                                               LF_KEY_ROOM_TOP, LF_KEY_ROOM_REBUILT};

        for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
                if (strncmp(key, prefixes[i], strlen(prefixes[i])) == 0)
                        return key + strlen(prefixes[i]);
        return NULL;
}

struct scan_step {
        struct rebuild *rb;
        int (*on_key)(struct rebuild *, const char *, long long *, char *, size_t);
        long long *count;
};

static int scan_step_key(void *arg, const char *key, size_t len, char *errstr, size_t errstr_size)
{
        const struct scan_step *s = arg;

        (void)len;
        return s->on_key(s->rb, key, s->count, errstr, errstr_size);
}

int rebuild_scan_step(struct rebuild *rb, int argc, const char **argv, char cursor[32],
                      int (*on_key)(struct rebuild *, const char *, long long *, char *, size_t),
                      long long *count, char *errstr, size_t errstr_size)
{
        struct scan_step s = {rb, on_key, count};

        return redis_conn_scan_page(rb->redis, argc, argv, cursor, scan_step_key, &s, errstr,
                                    errstr_size);
}
/* A room key whose room has no live_room_sync row goes. */
static int on_room_key(struct rebuild *rb, const char *key, long long *deleted, char *errstr,
                       size_t errstr_size)
{
        const char *room = rebuild_room_of_key(key);
        const char *del[] = {"DEL", key};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found = false;

        if (!room)
                return 0;
        struct db_param p[] = {DB_STR(room)};

        if (db_query_row(rb->db, rb->sql.has_room, p, 1, &col, 1, &found, errstr, errstr_size) !=
            DB_OK)
                return -1;
        if (found && col.i > 0)
                return 0;
        (*deleted)++;
        return redis_run(rb, 2, del, errstr, errstr_size);
}

int rebuild_orphan_rooms(struct rebuild *rb, long long *deleted, char *errstr, size_t errstr_size)
{
        char cursor[32] = "0";
        const char *scan[] = {"SCAN", cursor, "MATCH", "live:room:*", "COUNT", "500"};
        long long n = 0;
        int rc = 0;

        do {
                rc = rebuild_scan_step(rb, 6, scan, cursor, on_room_key, &n, errstr, errstr_size);
        } while (rc == 0 && strcmp(cursor, "0") != 0);
        if (deleted)
                *deleted = n;
        return rc;
}

/* ------------------------------------------------------------------ Redis that lost its data */

/* The run_id line of INFO server, or "" when the reply has none. */
static int server_run_id(struct redis_conn *redis, char run_id[41], char *errstr,
                         size_t errstr_size)
{
        const char *argv[] = {"INFO", "server"};
        redisReply *r = redis_conn_cmd(redis, 2, argv, NULL, errstr, errstr_size);
        const char *line;

        if (!r)
                return -1;
        run_id[0] = '\0';
        if (r->type == REDIS_REPLY_STRING && (line = strstr(r->str, "run_id:")))
                sscanf(line + 7, "%40[0-9a-fA-F]", run_id);
        freeReplyObject(r);
        return 0;
}

void rebuild_epoch_init(struct rebuild_epoch *ep, const char *scope)
{
        memset(ep, 0, sizeof(*ep));
        snprintf(ep->key, sizeof(ep->key), "%s:%s", REBUILD_EPOCH_KEY, scope);
}

int rebuild_epoch_check(struct redis_conn *redis, struct rebuild_epoch *ep, bool *lost,
                        char *errstr, size_t errstr_size)
{
        char token[33], run_id[41];
        const char *key = ep->key[0] ? ep->key : REBUILD_EPOCH_KEY;
        const char *set[] = {"SET", key, token, "NX"};
        const char *get[] = {"GET", key};
        bool is_first = !ep->token[0];
        redisReply *r;

        if (server_run_id(redis, run_id, errstr, errstr_size) == -1)
                return -1;
        /* Set only when missing: the first process to see Redis empty names its new epoch. */
        trace_id_new(token);
        if (!(r = redis_conn_cmd(redis, 4, set, NULL, errstr, errstr_size)))
                return -1;
        freeReplyObject(r);
        if (!(r = redis_conn_cmd(redis, 2, get, NULL, errstr, errstr_size)))
                return -1;
        if (r->type != REDIS_REPLY_STRING) {
                freeReplyObject(r);
                snprintf(errstr, errstr_size, "redis: %s is not a string", key);
                return -1;
        }
        /* At start, an epoch someone else set is adopted; one we just set is news. */
        if (is_first)
                *lost = strcmp(token, r->str) == 0;
        else
                *lost = strcmp(ep->token, r->str) != 0 || strcmp(ep->run_id, run_id) != 0;
        snprintf(ep->token, sizeof(ep->token), "%s", r->str);
        snprintf(ep->run_id, sizeof(ep->run_id), "%s", run_id);
        freeReplyObject(r);
        return 0;
}
