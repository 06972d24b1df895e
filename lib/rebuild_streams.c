/* rebuild_streams.c: the live-stream keys (set:live:online, the anchors' status hashes,
 * temp:live:{stream}) projected from live_streams; the room figures are in rebuild.c. */
#include "rebuild.h"
#include "rebuild_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "redis_conn.h"
#include "text.h"

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

/*
 * An ended stream's part that needs Redis's own state: the anchor's status hash goes offline
 * only when it still names this stream. KEYS: the anchor's status hash. ARGV: stream_id.
 */
static const char end_anchor_script[] =
        "if redis.call('HGET', KEYS[1], 'stream_id') == ARGV[1] then\n"
        "  redis.call('HSET', KEYS[1], 'status', 'offline')\n"
        "  redis.call('HDEL', KEYS[1], 'stream_id', 'session_id', 'started_at')\n"
        "end\n"
        "return 1\n";

/* One stream of rebuild_project_streams(): its row as read and its keys. */
struct many_stream {
        long long live, touched_ms; /* which row of several vendors' wins, as project()'s */
        char status[8], anchor[ID_MAX + 1], room[ID_MAX + 1], session[24], started[24];
        char k_anchor[KEY_MAX], k_temp[KEY_MAX];
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
        /* text.h's copies: six snprintf calls per stream were most of this callback */
        text_copy(m->status, sizeof(m->status), cols[1].s);
        text_copy(mr->out[i].status, sizeof(mr->out[i].status), cols[1].s);
        text_copy(m->anchor, sizeof(m->anchor), cols[2].is_null ? "" : cols[2].s);
        text_copy(m->room, sizeof(m->room), cols[3].is_null ? "" : cols[3].s);
        text_int(m->session, sizeof(m->session), cols[4].is_null ? 0 : cols[4].i);
        text_int(m->started, sizeof(m->started), cols[5].is_null ? 0 : cols[5].i / 1000);
        text_copy(mr->out[i].vendor, sizeof(mr->out[i].vendor), cols[6].is_null ? "" : cols[6].s);
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

/* The commands of one MULTI/EXEC, built into arrays sized by project_tx_new(). */
struct project_tx {
        const char ***cmds;
        int *argcs;
        size_t n;
        const char **words; /* every command's argv, one after the other */
        size_t used;
        char ttl[24];
};

/* Starts a command of the transaction; its words follow with tx_word(). */
static void tx_cmd(struct project_tx *tx, const char *name)
{
        tx->cmds[tx->n] = &tx->words[tx->used];
        tx->words[tx->used++] = name;
        tx->argcs[tx->n++] = 1;
}

static void tx_word(struct project_tx *tx, const char *word)
{
        tx->words[tx->used++] = word;
        tx->argcs[tx->n - 1]++;
}

static bool is_live_row(const struct many_read *mr, size_t i)
{
        return mr->out[i].found && strcmp(mr->ms[i].status, "live") == 0;
}

/*
 * The ended streams (and those without a row): out of set:live:online, their temp hashes
 * deleted, and the anchor's hash offline where it still names the stream (a script: that
 * needs Redis's state).
 */
static void tx_ended(struct project_tx *tx, struct many_read *mr, size_t ended)
{
        if (!ended)
                return;
        tx_cmd(tx, "SREM");
        tx_word(tx, LF_KEY_ONLINE);
        for (size_t i = 0; i < mr->n; i++)
                if (!is_live_row(mr, i))
                        tx_word(tx, mr->ids[i]);
        tx_cmd(tx, "DEL");
        for (size_t i = 0; i < mr->n; i++)
                if (!is_live_row(mr, i))
                        tx_word(tx, mr->ms[i].k_temp);
        for (size_t i = 0; i < mr->n; i++) {
                if (is_live_row(mr, i) || !mr->ms[i].k_anchor[0])
                        continue;
                tx_cmd(tx, "EVAL");
                tx_word(tx, end_anchor_script);
                tx_word(tx, "1");
                tx_word(tx, mr->ms[i].k_anchor);
                tx_word(tx, mr->ids[i]);
        }
}

/*
 * The live streams: one SADD, and per stream its anchor's hash, its temp hash and the temp
 * hash's TTL, in stream id order (of two live streams of one anchor, the later id names it,
 * as one project() after another leaves it).
 */
static void tx_live(struct project_tx *tx, struct many_read *mr, size_t live)
{
        if (!live)
                return;
        tx_cmd(tx, "SADD");
        tx_word(tx, LF_KEY_ONLINE);
        for (size_t i = 0; i < mr->n; i++)
                if (is_live_row(mr, i))
                        tx_word(tx, mr->ids[i]);
        for (size_t i = 0; i < mr->n; i++) {
                struct many_stream *m = &mr->ms[i];
                const char *hash[] = {"status",     "live",     "stream_id",  mr->ids[i],
                                      "session_id", m->session, "started_at", m->started};
                const char *temp[] = {"session_id", m->session, "started_at", m->started,
                                      "anchor_id",  m->anchor,  "room_id",    m->room};

                if (!is_live_row(mr, i))
                        continue;
                if (m->k_anchor[0]) {
                        tx_cmd(tx, "HSET");
                        tx_word(tx, m->k_anchor);
                        for (size_t w = 0; w < 8; w++)
                                tx_word(tx, hash[w]);
                }
                tx_cmd(tx, "HSET");
                tx_word(tx, m->k_temp);
                for (size_t w = 0; w < 8; w++)
                        tx_word(tx, temp[w]);
                tx_cmd(tx, "EXPIRE");
                tx_word(tx, m->k_temp);
                tx_word(tx, tx->ttl);
        }
}

/* Each stream's keys and values, as project_locked() makes them. @returns the live ones. */
static size_t many_keys(struct many_read *mr)
{
        size_t live = 0;

        for (size_t i = 0; i < mr->n; i++) {
                struct many_stream *m = &mr->ms[i];

                if (!mr->out[i].found) {
                        text_copy(m->status, sizeof(m->status), "ended");
                        text_copy(m->session, sizeof(m->session), "0");
                        text_copy(m->started, sizeof(m->started), "0");
                } else if (m->anchor[0]) {
                        rebuild_key_of(m->k_anchor, LF_KEY_ANCHOR_STATUS, m->anchor);
                }
                rebuild_key_of(m->k_temp, LF_KEY_STREAM_TEMP, mr->ids[i]);
                live += is_live_row(mr, i);
        }
        return live;
}

/*
 * Every stream's projection in one MULTI/EXEC (readers never see part of a batch) and one
 * round trip: plain commands where nothing depends on what Redis holds, a script only for the
 * ended streams' anchors. Every command sets a value or removes one, so a batch projected
 * twice leaves what it left once.
 */
static int run_tx(struct rebuild *rb, struct many_read *mr, char *errstr, size_t errstr_size)
{
        size_t live = many_keys(mr), max_cmds = 3 * mr->n + 4;
        struct project_tx tx = {.cmds = calloc(max_cmds, sizeof(*tx.cmds)),
                                .argcs = calloc(max_cmds, sizeof(*tx.argcs)),
                                .words = calloc(32 * mr->n + 8, sizeof(*tx.words))};
        int rc = -1;

        if (tx.cmds && tx.argcs && tx.words) {
                text_int(tx.ttl, sizeof(tx.ttl), rb->live_ttl_s);
                tx_ended(&tx, mr, mr->n - live);
                tx_live(&tx, mr, live);
                rc = redis_conn_multi_exec(rb->redis, tx.n, tx.argcs, (const char **const *)tx.cmds,
                                           errstr, errstr_size);
        } else {
                snprintf(errstr, errstr_size, "out of memory");
        }
        free(tx.cmds);
        free(tx.argcs);
        free(tx.words);
        return rc;
}

int rebuild_project_streams(struct rebuild *rb, const char *const *stream_ids, size_t n,
                            struct rebuild_stream *out, char *errstr, size_t errstr_size)
{
        struct many_read mr = {.ids = stream_ids, .n = n, .out = out};
        int rc = -1;

        memset(out, 0, n * sizeof(*out));
        if (!n)
                return 0;
        if (!(mr.ms = calloc(n, sizeof(*mr.ms)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        /* As project(): the rows are read and Redis written under the rows' locks. */
        if (db_sql(rb->db, "START TRANSACTION", NULL, errstr, errstr_size) == DB_OK) {
                if (read_many(rb, &mr, errstr, errstr_size) == 0)
                        rc = run_tx(rb, &mr, errstr, errstr_size);
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

int rebuild_streams(struct rebuild *rb, long long *projected, char *errstr, size_t errstr_size)
{
        char cursor[32] = "0";
        const char *sscan[] = {"SSCAN", LF_KEY_ONLINE, cursor, "COUNT", "500"};
        const char *scan[] = {"SCAN", cursor, "MATCH", LF_KEY_ANCHOR_STATUS "*", "COUNT", "500"};
        long long n = 0;
        int rc = project_live(rb, &n, errstr, errstr_size);

        /* SSCAN may return a member twice; projecting twice is harmless. */
        while (rc == 0) {
                rc = rebuild_scan_step(rb, 5, sscan, cursor, on_online_member, &n, errstr,
                                       errstr_size);
                if (strcmp(cursor, "0") == 0)
                        break;
        }
        snprintf(cursor, sizeof(cursor), "0");
        while (rc == 0) {
                rc = rebuild_scan_step(rb, 6, scan, cursor, on_anchor_key, &n, errstr, errstr_size);
                if (strcmp(cursor, "0") == 0)
                        break;
        }
        if (projected)
                *projected = n;
        return rc;
}
