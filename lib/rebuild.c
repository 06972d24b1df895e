/* rebuild.c: Redis room figures, session tip counters and the live-stream keys, derived from
 * MySQL; shared by the projecting roles and liveflow-ctl. */
#include "rebuild.h"

#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "redis_conn.h"
#include "trace.h"

#define ID_MAX      64   /* the VARCHAR(64) of room and anchor ids */
#define STREAM_MAX  255  /* live_streams.stream_id */
#define KEY_MAX     320  /* the longest key prefix plus STREAM_MAX */
#define STAGE_CHUNK 128  /* members per ZADD / SADD while a rebuild stages a key */
#define STREAM_PAGE 200  /* live streams projected per transaction */

#define EPOCH_MS(col) "CAST(UNIX_TIMESTAMP(" col ") * 1000 AS SIGNED)"

struct rebuild_sql {
        struct db_stmt *mark_room, *mark_rooms, *mark_sessions, *lock_room, *marked_sessions,
                *room_sums, *room_top, *session_sums, *session_payers, *clear_marks, *next_marked,
                *project, *live_page, *is_live, *has_room;
};

static const struct {
        size_t offset;
        const char *sql;
} rebuild_statements[] = {
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
        {offsetof(struct rebuild_sql, clear_marks), "DELETE FROM live_room_rebuild WHERE room_id = ?"},
        {offsetof(struct rebuild_sql, next_marked),
         "SELECT room_id FROM live_room_rebuild WHERE room_id > ? ORDER BY room_id LIMIT 1"},
        {offsetof(struct rebuild_sql, project),
         "SELECT status, anchor_id, room_id, session_id, " EPOCH_MS(
                 "started_at") ", vendor FROM live_streams WHERE stream_id = ? "
         /* Redis keys a stream by its id: live under any vendor, else the row touched last. */
         "ORDER BY status = 'live' DESC, last_event_at DESC LIMIT 1 FOR UPDATE"},
        {offsetof(struct rebuild_sql, live_page),
         "SELECT stream_id FROM live_streams WHERE status = 'live' AND stream_id > ? ORDER BY stream_id LIMIT 200"},
        {offsetof(struct rebuild_sql, has_room),
         "SELECT COUNT(*) FROM live_room_sync WHERE room_id = ? COLLATE utf8mb4_bin"},
        {offsetof(struct rebuild_sql, is_live),
         "SELECT COUNT(*) FROM live_streams WHERE stream_id = ? AND status = 'live'"},
};

struct rebuild {
        struct db *db;
        struct redis_conn *redis;
        long long live_ttl_s, stats_ttl_s;
        struct rebuild_sql sql;
};

/*
 * Ends with the keys of the stream's projection; one round trip, atomic per stream.
 * KEYS: set:live:online, the anchor's status hash ('' without an anchor), temp:live:{stream}.
 * ARGV: stream_id, status, session_id, started_at (Unix s), temp TTL, anchor_id, room_id.
 */
static const char project_script[] =
        "if ARGV[2] == 'live' then\n"
        "  redis.call('SADD', KEYS[1], ARGV[1])\n"
        "  if KEYS[2] ~= '' then\n"
        "    redis.call('HSET', KEYS[2], 'status', 'live', 'stream_id', ARGV[1], 'session_id', ARGV[3], 'started_at', ARGV[4])\n"
        "  end\n"
        "  redis.call('HSET', KEYS[3], 'session_id', ARGV[3], 'started_at', ARGV[4], 'anchor_id', ARGV[6], 'room_id', ARGV[7])\n"
        "  redis.call('EXPIRE', KEYS[3], ARGV[5])\n"
        "else\n"
        "  redis.call('SREM', KEYS[1], ARGV[1])\n"
        "  if KEYS[2] ~= '' and redis.call('HGET', KEYS[2], 'stream_id') == ARGV[1] then\n"
        "    redis.call('HSET', KEYS[2], 'status', 'offline')\n"
        "    redis.call('HDEL', KEYS[2], 'stream_id', 'session_id', 'started_at')\n"
        "  end\n"
        "  redis.call('DEL', KEYS[3])\n"
        "end\n"
        "return 1\n";

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

static void key_of(char *out, const char *prefix, const char *id)
{
        snprintf(out, KEY_MAX, "%s%s", prefix, id);
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
        for (size_t i = 0; i < sizeof(rebuild_statements) / sizeof(rebuild_statements[0]); i++) {
                struct db_stmt **slot =
                        (struct db_stmt **)((char *)&rb->sql + rebuild_statements[i].offset);

                if (!(*slot = db_stmt(db, rebuild_statements[i].sql))) {
                        free(rb);
                        return NULL;
                }
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

static int redis_eval(struct rebuild *rb, const char *script, int nkeys, const char **keys,
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
        key_of(k_staged, "live:rebuild:top:", room_id);
        if (stage(rb, rb->sql.room_top, p, 2, k_staged, true, errstr, errstr_size) == -1)
                return -1;
        key_of(k_earn, LF_KEY_ROOM_EARNINGS, room_id);
        key_of(k_count, LF_KEY_ROOM_RECHARGE_COUNT, room_id);
        key_of(k_top, LF_KEY_ROOM_TOP, room_id);
        key_of(k_wm, LF_KEY_ROOM_REBUILT, room_id);
        snprintf(earnings, sizeof(earnings), "%lld", sums[0].i);
        snprintf(count, sizeof(count), "%lld", sums[1].i);
        snprintf(through, sizeof(through), "%lld", seq);
        const char *keys[] = {k_earn, k_count, k_top, k_staged, k_wm};
        const char *args[] = {earnings, count, through};

        return redis_eval(rb, room_script, 5, keys, 3, args, errstr, errstr_size);
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
        key_of(k_staged, "live:rebuild:payers:", session);
        if (stage(rb, rb->sql.session_payers, p, 3, k_staged, false, errstr, errstr_size) == -1)
                return -1;
        key_of(k_stats, LF_KEY_SESSION_STATS, session);
        key_of(k_payers, LF_KEY_SESSION_PAYERS, session);
        key_of(k_wm, LF_KEY_SESSION_REBUILT, session);
        snprintf(amount, sizeof(amount), "%lld", sums[0].i);
        snprintf(gifts, sizeof(gifts), "%lld", sums[1].i);
        snprintf(tips, sizeof(tips), "%lld", sums[2].i);
        snprintf(through, sizeof(through), "%lld", seq);
        snprintf(ttl, sizeof(ttl), "%lld", rb->stats_ttl_s);
        const char *keys[] = {k_stats, k_payers, k_staged, k_wm};
        const char *args[] = {amount, gifts, tips, through, ttl};

        return redis_eval(rb, session_script, 4, keys, 5, args, errstr, errstr_size);
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

static int scan_step(struct rebuild *rb, const char *pattern, char cursor[32],
                     int (*on_key)(struct rebuild *, const char *, long long *, char *, size_t),
                     long long *count, char *errstr, size_t errstr_size);

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
        long long n = 0;
        int rc = 0;

        do {
                rc = scan_step(rb, "live:room:*", cursor, on_room_key, &n, errstr, errstr_size);
        } while (rc == 0 && strcmp(cursor, "0") != 0);
        if (deleted)
                *deleted = n;
        return rc;
}

/* ------------------------------------------------------------------ live streams */

/* Ends the projection's transaction after a failure; the failure's own message is what counts. */
static void rollback(struct db *db)
{
        char ignored[256];

        db_sql(db, "ROLLBACK", NULL, ignored, sizeof(ignored));
}

/* The projection of one stream: anchor_key names the status hash to end when there is no row. */
static int project_locked(struct rebuild *rb, const char *stream_id, const char *anchor_key,
                          struct rebuild_stream *out, char *errstr, size_t errstr_size)
{
        char status[8] = "", anchor[ID_MAX + 1] = "", room[ID_MAX + 1] = "", session[24],
             started[24], ttl[24], k_online[] = LF_KEY_ONLINE, k_anchor[KEY_MAX] = "",
             k_temp[KEY_MAX];
        struct db_param p[] = {DB_STR(stream_id)};
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = status, .s_size = sizeof(status)},
                                {.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)},
                                {.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_STR, .s = out->vendor, .s_size = sizeof(out->vendor)}};

        if (db_query_row(rb->db, rb->sql.project, p, 1, cols, 6, &out->found, errstr,
                         errstr_size) != DB_OK)
                return -1;
        if (!out->found) {
                snprintf(status, sizeof(status), "ended");
                snprintf(k_anchor, sizeof(k_anchor), "%s", anchor_key ? anchor_key : "");
        } else if (!cols[1].is_null && anchor[0]) {
                key_of(k_anchor, LF_KEY_ANCHOR_STATUS, anchor);
        }
        snprintf(out->status, sizeof(out->status), "%s", out->found ? status : "");
        snprintf(session, sizeof(session), "%lld", cols[3].is_null ? 0 : cols[3].i);
        snprintf(started, sizeof(started), "%lld", cols[4].is_null ? 0 : cols[4].i / 1000);
        snprintf(ttl, sizeof(ttl), "%lld", rb->live_ttl_s);
        key_of(k_temp, LF_KEY_STREAM_TEMP, stream_id);
        const char *keys[] = {k_online, k_anchor, k_temp};
        const char *args[] = {stream_id, status, session, started, ttl, anchor, room};

        return redis_eval(rb, project_script, 3, keys, 7, args, errstr, errstr_size);
}

static int project(struct rebuild *rb, const char *stream_id, const char *anchor_key,
                   struct rebuild_stream *out, char *errstr, size_t errstr_size)
{
        struct rebuild_stream ignored;

        if (!out)
                out = &ignored;
        memset(out, 0, sizeof(*out));
        /*
         * The row is read and Redis written under the row's lock: another copy of the role
         * (after a rebalance) that changes the stream waits for this projection to finish,
         * and projects its own change after it, so Redis never goes back to an older state.
         */
        if (db_sql(rb->db, "START TRANSACTION", NULL, errstr, errstr_size) != DB_OK)
                return -1;
        if (project_locked(rb, stream_id, anchor_key, out, errstr, errstr_size) == -1) {
                rollback(rb->db);
                return -1;
        }
        return db_sql(rb->db, "COMMIT", NULL, errstr, errstr_size) == DB_OK ? 0 : -1;
}

int rebuild_project_stream(struct rebuild *rb, const char *stream_id, struct rebuild_stream *out,
                           char *errstr, size_t errstr_size)
{
        return project(rb, stream_id, NULL, out, errstr, errstr_size);
}

/* One stream of rebuild_project_streams(): its row as read and its script call. */
struct many_stream {
        long long live, touched_ms; /* which row of several vendors' wins, as project()'s */
        char status[8], anchor[ID_MAX + 1], room[ID_MAX + 1], session[24], started[24];
        char k_anchor[KEY_MAX], k_temp[KEY_MAX];
        const char *argv[13];
};

struct many_read {
        const char *const *ids;
        size_t n;
        struct rebuild_stream *out;
        struct many_stream *ms;
        bool is_mismatch; /* MySQL returned a stream id none of ours is byte for byte */
};

static int cmp_id_key(const void *key, const void *elem)
{
        return strcmp(key, *(const char *const *)elem);
}

static void on_many_row(const struct db_col *cols, void *arg)
{
        struct many_read *mr = arg;
        const char *const *hit = bsearch(cols[0].s, mr->ids, mr->n, sizeof(*mr->ids), cmp_id_key);
        size_t i;
        struct many_stream *m;

        if (!hit) {
                mr->is_mismatch = true;
                return;
        }
        i = (size_t)(hit - mr->ids);
        m = &mr->ms[i];
        /* Redis keys a stream by its id: live under any vendor, else the row touched last. */
        if (mr->out[i].found && (m->live > cols[7].i ||
                                 (m->live == cols[7].i && m->touched_ms >= cols[8].i)))
                return;
        m->live = cols[7].i;
        m->touched_ms = cols[8].i;
        mr->out[i].found = true;
        snprintf(m->status, sizeof(m->status), "%s", cols[1].s);
        snprintf(mr->out[i].status, sizeof(mr->out[i].status), "%s", cols[1].s);
        snprintf(m->anchor, sizeof(m->anchor), "%s", cols[2].is_null ? "" : cols[2].s);
        snprintf(m->room, sizeof(m->room), "%s", cols[3].is_null ? "" : cols[3].s);
        snprintf(m->session, sizeof(m->session), "%lld", cols[4].is_null ? 0 : cols[4].i);
        snprintf(m->started, sizeof(m->started), "%lld", cols[5].is_null ? 0 : cols[5].i / 1000);
        snprintf(mr->out[i].vendor, sizeof(mr->out[i].vendor), "%s",
                 cols[6].is_null ? "" : cols[6].s);
}

/* The rows of the n streams under FOR UPDATE, into mr (streams without a row stay "ended"). */
static int read_many(struct rebuild *rb, struct many_read *mr, char *errstr, size_t errstr_size)
{
        char id[STREAM_MAX * 4 + 1], status[8], anchor[ID_MAX + 1], room[ID_MAX + 1], vendor[17];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_STR, .s = status, .s_size = sizeof(status)},
                                {.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)},
                                {.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_STR, .s = vendor, .s_size = sizeof(vendor)},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64}};
        struct db_text sql = {0};
        enum db_result r;

        db_text_add(&sql, "SELECT stream_id, status, anchor_id, room_id, session_id, " EPOCH_MS(
                                  "started_at") ", vendor, status = 'live', " EPOCH_MS(
                                  "last_event_at") " FROM live_streams WHERE stream_id IN (");
        for (size_t i = 0; i < mr->n; i++) {
                db_text_add(&sql, i ? ", " : "");
                db_text_str(rb->db, &sql, mr->ids[i]);
        }
        db_text_add(&sql, ") ORDER BY stream_id FOR UPDATE");
        r = db_text_query(rb->db, &sql, cols, 9, on_many_row, mr, errstr, errstr_size);
        db_text_free(&sql);
        if (r == DB_OK && mr->is_mismatch) {
                snprintf(errstr, errstr_size, "a stream id MySQL matches other than byte for byte");
                return -1;
        }
        return r == DB_OK ? 0 : -1;
}

/* Each stream's project_script call, as project_locked() makes it. */
static void many_calls(struct rebuild *rb, struct many_read *mr, const char *sha, const char *ttl)
{
        for (size_t i = 0; i < mr->n; i++) {
                struct many_stream *m = &mr->ms[i];
                const char **a = m->argv;

                if (!mr->out[i].found) {
                        snprintf(m->status, sizeof(m->status), "ended");
                        snprintf(m->session, sizeof(m->session), "0");
                        snprintf(m->started, sizeof(m->started), "0");
                } else if (m->anchor[0]) {
                        key_of(m->k_anchor, LF_KEY_ANCHOR_STATUS, m->anchor);
                }
                key_of(m->k_temp, LF_KEY_STREAM_TEMP, mr->ids[i]);
                a[0] = "EVALSHA", a[1] = sha, a[2] = "3", a[3] = LF_KEY_ONLINE, a[4] = m->k_anchor;
                a[5] = m->k_temp, a[6] = mr->ids[i], a[7] = m->status, a[8] = m->session;
                a[9] = m->started, a[10] = ttl, a[11] = m->anchor, a[12] = m->room;
        }
        (void)rb;
}

/* The calls in one round trip after the first, which loads the script if Redis lacks it. */
static int run_calls(struct rebuild *rb, struct many_read *mr, char *errstr, size_t errstr_size)
{
        const char **cmds[STREAM_PAGE];
        int argcs[STREAM_PAGE];

        if (redis_eval(rb, project_script, 3, &mr->ms[0].argv[3], 7, &mr->ms[0].argv[6], errstr,
                       errstr_size) == -1)
                return -1;
        for (size_t i = 1; i < mr->n; i += STREAM_PAGE) {
                size_t cnt = mr->n - i < STREAM_PAGE ? mr->n - i : STREAM_PAGE;

                for (size_t j = 0; j < cnt; j++) {
                        cmds[j] = mr->ms[i + j].argv;
                        argcs[j] = 13;
                }
                if (redis_conn_pipeline(rb->redis, cnt, argcs, (const char **const *)cmds, errstr,
                                        errstr_size) == -1)
                        return -1;
        }
        return 0;
}

int rebuild_project_streams(struct rebuild *rb, const char *const *stream_ids, size_t n,
                            struct rebuild_stream *out, char *errstr, size_t errstr_size)
{
        struct many_read mr = {.ids = stream_ids, .n = n, .out = out};
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int digest_len = 0;
        char sha[41], ttl[24];
        int rc = -1;

        memset(out, 0, n * sizeof(*out));
        if (!n)
                return 0;
        if (!(mr.ms = calloc(n, sizeof(*mr.ms)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        EVP_Digest(project_script, strlen(project_script), digest, &digest_len, EVP_sha1(), NULL);
        for (unsigned i = 0; i < digest_len && i < 20; i++)
                snprintf(sha + 2 * i, 3, "%02x", digest[i]);
        snprintf(ttl, sizeof(ttl), "%lld", rb->live_ttl_s);
        /* As project(): the rows are read and Redis written under the rows' locks. */
        if (db_sql(rb->db, "START TRANSACTION", NULL, errstr, errstr_size) == DB_OK) {
                if (read_many(rb, &mr, errstr, errstr_size) == 0) {
                        many_calls(rb, &mr, sha, ttl);
                        rc = run_calls(rb, &mr, errstr, errstr_size);
                }
                if (rc == 0)
                        rc = db_sql(rb->db, "COMMIT", NULL, errstr, errstr_size) == DB_OK ? 0 : -1;
                else
                        rollback(rb->db);
        }
        free(mr.ms);
        return rc;
}

/* A page of stream ids read by db_query_each(). */
struct id_page {
        char (*ids)[STREAM_MAX + 1];
        size_t n;
};

static void add_id(const struct db_col *cols, void *arg)
{
        struct id_page *pg = arg;

        if (pg->n < STREAM_PAGE)
                snprintf(pg->ids[pg->n++], STREAM_MAX + 1, "%s", cols[0].s);
}

/* Projects every live stream, a page of ids at a time. */
static int project_live(struct rebuild *rb, long long *projected, char *errstr, size_t errstr_size)
{
        char after[STREAM_MAX + 1] = "", id[STREAM_MAX + 1];
        struct id_page pg = {.ids = calloc(STREAM_PAGE, sizeof(*pg.ids))};
        struct db_col col = {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)};
        int rc = 0;

        if (!pg.ids) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        do {
                struct db_param p[] = {DB_STR(after)};

                pg.n = 0;
                if (db_query_each(rb->db, rb->sql.live_page, p, 1, &col, 1, add_id, &pg, errstr,
                                  errstr_size) != DB_OK) {
                        rc = -1;
                        break;
                }
                for (size_t i = 0; i < pg.n && rc == 0; i++) {
                        rc = project(rb, pg.ids[i], NULL, NULL, errstr, errstr_size);
                        (*projected)++;
                }
                if (pg.n)
                        snprintf(after, sizeof(after), "%s", pg.ids[pg.n - 1]);
        } while (rc == 0 && pg.n == STREAM_PAGE);
        free(pg.ids);
        return rc;
}

static int is_live(struct rebuild *rb, const char *stream_id, bool *live, char *errstr,
                   size_t errstr_size)
{
        struct db_param p[] = {DB_STR(stream_id)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found;

        if (db_query_row(rb->db, rb->sql.is_live, p, 1, &col, 1, &found, errstr, errstr_size) !=
            DB_OK)
                return -1;
        *live = found && col.i > 0;
        return 0;
}

/* One SCAN step over pattern: *cursor (in/out); the reply's keys are handed to on_key. */
static int scan_step(struct rebuild *rb, const char *pattern, char cursor[32],
                     int (*on_key)(struct rebuild *, const char *, long long *, char *, size_t),
                     long long *projected, char *errstr, size_t errstr_size)
{
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
        redisReply *r = redis_conn_cmd(rb->redis, 6, argv, NULL, errstr, errstr_size);
        int rc = 0;

        if (!r)
                return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
                freeReplyObject(r);
                snprintf(errstr, errstr_size, "redis: unexpected SCAN reply");
                return -1;
        }
        snprintf(cursor, 32, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements && rc == 0; i++)
                if (r->element[1]->element[i]->type == REDIS_REPLY_STRING)
                        rc = on_key(rb, r->element[1]->element[i]->str, projected, errstr,
                                    errstr_size);
        freeReplyObject(r);
        return rc;
}

/* A hash:anchor:status:* that says live with a stream live_streams does not call live. */
static int on_anchor_key(struct rebuild *rb, const char *key, long long *projected, char *errstr,
                         size_t errstr_size)
{
        const char *argv[] = {"HMGET", key, "status", "stream_id"};
        redisReply *r = redis_conn_cmd(rb->redis, 4, argv, NULL, errstr, errstr_size);
        char stream[STREAM_MAX + 1] = "";
        bool live = true, says_live;

        if (!r)
                return -1;
        says_live = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                    r->element[0]->type == REDIS_REPLY_STRING &&
                    strcmp(r->element[0]->str, "live") == 0 &&
                    r->element[1]->type == REDIS_REPLY_STRING;
        if (says_live)
                snprintf(stream, sizeof(stream), "%s", r->element[1]->str);
        freeReplyObject(r);
        if (!says_live || is_live(rb, stream, &live, errstr, errstr_size) == -1)
                return says_live ? -1 : 0;
        if (live)
                return 0;
        (*projected)++;
        return project(rb, stream, key, NULL, errstr, errstr_size);
}

/* A member of set:live:online that live_streams does not call live. */
static int on_online_member(struct rebuild *rb, const char *stream, long long *projected,
                            char *errstr, size_t errstr_size)
{
        bool live = true;

        if (is_live(rb, stream, &live, errstr, errstr_size) == -1)
                return -1;
        if (live)
                return 0;
        (*projected)++;
        return project(rb, stream, NULL, NULL, errstr, errstr_size);
}

/* SSCAN over set:live:online: as scan_step() for the set's members. */
static int sscan_step(struct rebuild *rb, char cursor[32], long long *projected, char *errstr,
                      size_t errstr_size)
{
        const char *argv[] = {"SSCAN", LF_KEY_ONLINE, cursor, "COUNT", "500"};
        redisReply *r = redis_conn_cmd(rb->redis, 5, argv, NULL, errstr, errstr_size);
        int rc = 0;

        if (!r)
                return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
                freeReplyObject(r);
                snprintf(errstr, errstr_size, "redis: unexpected SSCAN reply");
                return -1;
        }
        snprintf(cursor, 32, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements && rc == 0; i++)
                if (r->element[1]->element[i]->type == REDIS_REPLY_STRING)
                        rc = on_online_member(rb, r->element[1]->element[i]->str, projected,
                                              errstr, errstr_size);
        freeReplyObject(r);
        return rc;
}

int rebuild_streams(struct rebuild *rb, long long *projected, char *errstr, size_t errstr_size)
{
        char cursor[32] = "0";
        long long n = 0;
        int rc = project_live(rb, &n, errstr, errstr_size);

        /* SSCAN may return a member twice; projecting twice is harmless. */
        while (rc == 0) {
                rc = sscan_step(rb, cursor, &n, errstr, errstr_size);
                if (strcmp(cursor, "0") == 0)
                        break;
        }
        snprintf(cursor, sizeof(cursor), "0");
        while (rc == 0) {
                rc = scan_step(rb, LF_KEY_ANCHOR_STATUS "*", cursor, on_anchor_key, &n, errstr,
                               errstr_size);
                if (strcmp(cursor, "0") == 0)
                        break;
        }
        if (projected)
                *projected = n;
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

int rebuild_epoch_check(struct redis_conn *redis, struct rebuild_epoch *ep, bool *lost,
                        char *errstr, size_t errstr_size)
{
        char token[33], run_id[41];
        const char *set[] = {"SET", REBUILD_EPOCH_KEY, token, "NX"};
        const char *get[] = {"GET", REBUILD_EPOCH_KEY};
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
                snprintf(errstr, errstr_size, "redis: %s is not a string", REBUILD_EPOCH_KEY);
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
