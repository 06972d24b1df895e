/* rebuild_streams.c: the live-stream keys (set:live:online, the anchors' status hashes,
 * temp:live:{stream}) projected from live_streams; the room figures are in rebuild.c. */
#include "rebuild.h"
#include "rebuild_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "redis_conn.h"

#define STREAM_PAGE 200 /* live streams projected per transaction */

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
        struct db_col cols[] = {
                {.type = DB_PARAM_STR, .s = status, .s_size = sizeof(status)},
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
                rebuild_key_of(k_anchor, LF_KEY_ANCHOR_STATUS, anchor);
        }
        snprintf(out->status, sizeof(out->status), "%s", out->found ? status : "");
        snprintf(session, sizeof(session), "%lld", cols[3].is_null ? 0 : cols[3].i);
        snprintf(started, sizeof(started), "%lld", cols[4].is_null ? 0 : cols[4].i / 1000);
        snprintf(ttl, sizeof(ttl), "%lld", rb->live_ttl_s);
        rebuild_key_of(k_temp, LF_KEY_STREAM_TEMP, stream_id);
        const char *keys[] = {k_online, k_anchor, k_temp};
        const char *args[] = {stream_id, status, session, started, ttl, anchor, room};

        return rebuild_redis_eval(rb, project_script, 3, keys, 7, args, errstr, errstr_size);
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
        if (mr->out[i].found &&
            (m->live > cols[7].i || (m->live == cols[7].i && m->touched_ms >= cols[8].i)))
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

        db_text_add(
                &sql,
                "SELECT stream_id, status, anchor_id, room_id, session_id, " EPOCH_MS("started_at") ", vendor, status = 'live', " EPOCH_MS(
                        "last_event_at") " FROM live_streams FORCE INDEX (live_streams_stream) WHERE ");
        /*
         * The index named: with statistics taken when the table was small, MariaDB scans (and
         * locks) every row for a long IN list. Lists of STREAM_PAGE ids: 1 000 values or more
         * it turns into a join with a table of them.
         */
        for (size_t i = 0; i < mr->n; i++) {
                if (i % STREAM_PAGE == 0)
                        db_text_add(&sql, i ? ") OR stream_id IN (" : "stream_id IN (");
                else
                        db_text_add(&sql, ", ");
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
                        rebuild_key_of(m->k_anchor, LF_KEY_ANCHOR_STATUS, m->anchor);
                }
                rebuild_key_of(m->k_temp, LF_KEY_STREAM_TEMP, mr->ids[i]);
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

        if (rebuild_redis_eval(rb, project_script, 3, &mr->ms[0].argv[3], 7, &mr->ms[0].argv[6],
                               errstr, errstr_size) == -1)
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

/* SSCAN over set:live:online: as rebuild_scan_step() for the set's members. */
static int sscan_step(struct rebuild *rb, char cursor[32], long long *projected, char *errstr,
                      size_t errstr_size)
{
        const char *argv[] = {"SSCAN", LF_KEY_ONLINE, cursor, "COUNT", "500"};
        redisReply *r = redis_conn_cmd(rb->redis, 5, argv, NULL, errstr, errstr_size);
        int rc = 0;

        if (!r)
                return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
                freeReplyObject(r);
                snprintf(errstr, errstr_size, "redis: unexpected SSCAN reply");
                return -1;
        }
        snprintf(cursor, 32, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements && rc == 0; i++)
                if (r->element[1]->element[i]->type == REDIS_REPLY_STRING)
                        rc = on_online_member(rb, r->element[1]->element[i]->str, projected, errstr,
                                              errstr_size);
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
                rc = rebuild_scan_step(rb, LF_KEY_ANCHOR_STATUS "*", cursor, on_anchor_key, &n,
                                       errstr, errstr_size);
                if (strcmp(cursor, "0") == 0)
                        break;
        }
        if (projected)
                *projected = n;
        return rc;
}
