/* rebuild_diff.c: what a rebuild would change: Redis compared with what MySQL says it should
 * hold, read-only (the dry runs of liveflow-ctl rebuild, and reconcile). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "rebuild.h"
#include "redis_conn.h"

#define ID_MAX     64
#define STREAM_MAX 255
#define KEY_MAX    320

/* qsort() and bsearch() of n items; an empty array may have a NULL base, which they must not get.
 */
static void sort_items(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
        if (n > 1)
                qsort(base, n, size, cmp);
}

static void *find_item(const void *key, const void *base, size_t n, size_t size,
                       int (*cmp)(const void *, const void *))
{
        return n ? bsearch(key, base, n, size, cmp) : NULL;
}

/* ------------------------------------------------------------------ rows collected from MySQL */

struct room_row {
        char room[ID_MAX + 1];
        long long seq, earnings, count;
};

struct stream_row {
        char stream[STREAM_MAX + 1], anchor[ID_MAX + 1];
        long long session, started_s;
};

/* A growable array of rows of `size` bytes, filled by db_text_query(). */
struct rows {
        void *items;
        size_t n, cap, size;
        bool is_oom;
        void (*fill)(void *item, const struct db_col *cols);
};

static void on_row(const struct db_col *cols, void *arg)
{
        struct rows *r = arg;

        if (r->is_oom)
                return;
        if (r->n == r->cap) {
                size_t cap = r->cap ? 2 * r->cap : 64;
                void *items = realloc(r->items, cap * r->size);

                if (!items) {
                        r->is_oom = true;
                        return;
                }
                r->items = items;
                r->cap = cap;
        }
        r->fill((char *)r->items + r->n++ * r->size, cols);
}

static void fill_room(void *item, const struct db_col *cols)
{
        struct room_row *rr = item;

        snprintf(rr->room, sizeof(rr->room), "%s", cols[0].s);
        rr->seq = cols[1].i;
        rr->earnings = cols[2].i;
        rr->count = cols[3].i;
}

static void fill_stream(void *item, const struct db_col *cols)
{
        struct stream_row *sr = item;

        snprintf(sr->stream, sizeof(sr->stream), "%s", cols[0].s);
        snprintf(sr->anchor, sizeof(sr->anchor), "%s", cols[1].is_null ? "" : cols[1].s);
        sr->session = cols[2].is_null ? 0 : cols[2].i;
        sr->started_s = cols[3].is_null ? 0 : cols[3].i;
}

static int collect(struct db *db, const char *sql, struct db_col *cols, size_t ncols,
                   struct rows *r, char *errstr, size_t errstr_size)
{
        struct db_text t = {0};
        enum db_result res;

        db_text_add(&t, "%s", sql);
        res = db_text_query(db, &t, cols, ncols, on_row, r, errstr, errstr_size);
        db_text_free(&t);
        if (res == DB_OK && r->is_oom)
                snprintf(errstr, errstr_size, "out of memory");
        return res == DB_OK && !r->is_oom ? 0 : -1;
}

/* The reply as text: "(nil)" for a missing key. */
static const char *reply_text(const redisReply *r, char *buf, size_t buf_size)
{
        if (r->type == REDIS_REPLY_STRING)
                return r->str;
        if (r->type == REDIS_REPLY_INTEGER) {
                snprintf(buf, buf_size, "%lld", r->integer);
                return buf;
        }
        return "(nil)";
}

static void report(rebuild_on_finding on, void *arg, const char *what, const char *id,
                   const char *redis, const char *mysql)
{
        struct rebuild_finding f = {.what = what, .id = id};

        snprintf(f.redis, sizeof(f.redis), "%.*s", (int)sizeof(f.redis) - 1, redis);
        snprintf(f.mysql, sizeof(f.mysql), "%.*s", (int)sizeof(f.mysql) - 1, mysql);
        on(&f, arg);
}

/* ------------------------------------------------------------------ rooms */

/* A room's TOP10 set as "member=score" lines sorted by member, from Redis or MySQL. */
struct top {
        char (*lines)[ID_MAX + 32];
        size_t n, cap;
        bool is_oom;
};

static void top_add(struct top *t, const char *member, long long score)
{
        if (t->is_oom)
                return;
        if (t->n == t->cap) {
                size_t cap = t->cap ? 2 * t->cap : 16;
                void *lines = realloc(t->lines, cap * sizeof(*t->lines));

                if (!lines) {
                        t->is_oom = true;
                        return;
                }
                t->lines = lines;
                t->cap = cap;
        }
        snprintf(t->lines[t->n++], sizeof(t->lines[0]), "%s=%lld", member, score);
}

static int cmp_line(const void *a, const void *b)
{
        return strcmp((const char *)a, (const char *)b);
}

static void on_top_row(const struct db_col *cols, void *arg)
{
        top_add(arg, cols[0].s, cols[1].i);
}

static int redis_top(struct redis_conn *redis, const char *room, struct top *t, char *errstr,
                     size_t errstr_size)
{
        char key[KEY_MAX];
        const char *argv[] = {"ZRANGE", key, "0", "-1", "WITHSCORES"};
        redisReply *r;

        snprintf(key, sizeof(key), LF_KEY_ROOM_TOP "%s", room);
        if (!(r = redis_conn_cmd(redis, 5, argv, NULL, errstr, errstr_size)))
                return -1;
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
                top_add(t, r->element[i]->str, atoll(r->element[i + 1]->str));
        freeReplyObject(r);
        return 0;
}

/* Compares the room's TOP10 set; one finding naming the first difference. */
static int diff_top(struct db *db, struct db_stmt *top_sql, struct redis_conn *redis,
                    const struct room_row *rr, rebuild_on_finding on, void *arg, char *errstr,
                    size_t errstr_size)
{
        struct top want = {0}, got = {0};
        char member[ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = member, .s_size = sizeof(member)},
                                {.type = DB_PARAM_I64}};
        struct db_param p[] = {DB_STR(rr->room), DB_I64(rr->seq)};
        int rc = -1;

        if (db_query_each(db, top_sql, p, 2, cols, 2, on_top_row, &want, errstr, errstr_size) ==
                    DB_OK &&
            redis_top(redis, rr->room, &got, errstr, errstr_size) == 0) {
                rc = 0;
                if (want.is_oom || got.is_oom) {
                        snprintf(errstr, errstr_size, "out of memory");
                        rc = -1;
                }
        }
        if (rc == 0) {
                size_t i = 0;

                sort_items(want.lines, want.n, sizeof(*want.lines), cmp_line);
                sort_items(got.lines, got.n, sizeof(*got.lines), cmp_line);
                while (i < want.n && i < got.n && strcmp(want.lines[i], got.lines[i]) == 0)
                        i++;
                if (i < want.n || i < got.n)
                        report(on, arg, "top", rr->room, i < got.n ? got.lines[i] : "(none)",
                               i < want.n ? want.lines[i] : "(none)");
        }
        free(want.lines);
        free(got.lines);
        return rc;
}

/* Compares earnings and count; a missing key reads as 0. */
static int diff_figures(struct redis_conn *redis, const struct room_row *rr, rebuild_on_finding on,
                        void *arg, char *errstr, size_t errstr_size)
{
        char k_earn[KEY_MAX], k_count[KEY_MAX], b1[32], b2[32], got[192], want[192];
        const char *argv[] = {"MGET", k_earn, k_count};
        redisReply *r;
        long long e, c;

        snprintf(k_earn, sizeof(k_earn), LF_KEY_ROOM_EARNINGS "%s", rr->room);
        snprintf(k_count, sizeof(k_count), LF_KEY_ROOM_RECHARGE_COUNT "%s", rr->room);
        if (!(r = redis_conn_cmd(redis, 3, argv, NULL, errstr, errstr_size)))
                return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                freeReplyObject(r);
                snprintf(errstr, errstr_size, "redis: unexpected MGET reply");
                return -1;
        }
        e = atoll(reply_text(r->element[0], b1, sizeof(b1)));
        c = atoll(reply_text(r->element[1], b2, sizeof(b2)));
        if (e != rr->earnings || c != rr->count) {
                snprintf(got, sizeof(got), "earnings %s count %s",
                         reply_text(r->element[0], b1, sizeof(b1)),
                         reply_text(r->element[1], b2, sizeof(b2)));
                snprintf(want, sizeof(want), "earnings %lld count %lld", rr->earnings, rr->count);
                report(on, arg, "room", rr->room, got, want);
        }
        freeReplyObject(r);
        return 0;
}

static int cmp_room(const void *a, const void *b)
{
        return strcmp(((const struct room_row *)a)->room, ((const struct room_row *)b)->room);
}

/* What the orphan scan needs: the rooms (sorted with strcmp) and where to report. */
struct orphans {
        const struct rows *rooms;
        rebuild_on_finding on;
        void *arg;
};

/* The scan callbacks below find, and never fail (redis_conn_scan_page()). */
static int on_room_key(void *ctx, const char *key, size_t len, char *errstr, size_t errstr_size)
{
        struct orphans *o = ctx;
        struct room_row want;
        const char *room = rebuild_room_of_key(key);

        (void)len, (void)errstr, (void)errstr_size;
        if (!room)
                return 0;
        snprintf(want.room, sizeof(want.room), "%s", room);
        if (!find_item(&want, o->rooms->items, o->rooms->n, sizeof(want), cmp_room))
                report(o->on, o->arg, "orphan", room, key, "no tip in the room");
        return 0;
}

/* Room keys of rooms live_room_sync does not know (SCAN may name a key twice: reported twice). */
static int diff_orphans(struct redis_conn *redis, struct rows *rooms, rebuild_on_finding on,
                        void *arg, char *errstr, size_t errstr_size)
{
        char cursor[32] = "0";
        const char *scan[] = {"SCAN", cursor, "MATCH", "live:room:*", "COUNT", "500"};
        struct orphans o = {rooms, on, arg};
        int rc = 0;

        sort_items(rooms->items, rooms->n, rooms->size, cmp_room);
        do {
                rc = redis_conn_scan_page(redis, 6, scan, cursor, on_room_key, &o, errstr,
                                          errstr_size);
        } while (rc == 0 && strcmp(cursor, "0") != 0);
        return rc;
}

int rebuild_diff_rooms(struct db *db, struct redis_conn *redis, rebuild_on_finding on, void *arg,
                       long long *checked, char *errstr, size_t errstr_size)
{
        static const char rooms_sql[] =
                "SELECT s.room_id, s.tip_seq, CAST(COALESCE(SUM(r.amount), 0) AS SIGNED), COUNT(r.trace_id) "
                "FROM live_room_sync s LEFT JOIN recharge r ON r.room_id = s.room_id "
                "AND r.room_seq BETWEEN 1 AND s.tip_seq GROUP BY s.room_id, s.tip_seq ORDER BY s.room_id";
        struct db_stmt *top_sql = db_stmt(
                db,
                "SELECT audience_id, CAST(SUM(amount) AS SIGNED) FROM recharge WHERE room_id = ? "
                "AND room_seq BETWEEN 1 AND ? GROUP BY audience_id");
        struct db_col cols[] = {{.type = DB_PARAM_STR},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64}};
        struct rows rooms = {.size = sizeof(struct room_row), .fill = fill_room};
        char room[ID_MAX + 1];
        int rc;

        cols[0].s = room;
        cols[0].s_size = sizeof(room);
        if (!top_sql) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        rc = collect(db, rooms_sql, cols, 4, &rooms, errstr, errstr_size);
        for (size_t i = 0; rc == 0 && i < rooms.n; i++) {
                const struct room_row *rr = (const struct room_row *)rooms.items + i;

                rc = diff_figures(redis, rr, on, arg, errstr, errstr_size);
                if (rc == 0)
                        rc = diff_top(db, top_sql, redis, rr, on, arg, errstr, errstr_size);
        }
        if (rc == 0)
                rc = diff_orphans(redis, &rooms, on, arg, errstr, errstr_size);
        if (checked)
                *checked = (long long)rooms.n;
        free(rooms.items);
        return rc;
}

/* ------------------------------------------------------------------ live streams */

static int cmp_stream(const void *a, const void *b)
{
        return strcmp(((const struct stream_row *)a)->stream,
                      ((const struct stream_row *)b)->stream);
}

static const struct stream_row *find_live(const struct rows *live, const char *stream)
{
        struct stream_row key;

        snprintf(key.stream, sizeof(key.stream), "%s", stream);
        return find_item(&key, live->items, live->n, sizeof(key), cmp_stream);
}

/* A live stream: a member of set:live:online, and named by its anchor's hash. */
static int diff_live(struct redis_conn *redis, const struct rows *live, const struct stream_row *sr,
                     rebuild_on_finding on, void *arg, char *errstr, size_t errstr_size)
{
        char key[KEY_MAX], got[640], want[640], b[4][32];
        const char *is_member[] = {"SISMEMBER", LF_KEY_ONLINE, sr->stream};
        const char *fields[] = {"HMGET", key, "status", "stream_id", "session_id", "started_at"};
        const struct stream_row *named;
        redisReply *r;

        if (!(r = redis_conn_cmd(redis, 3, is_member, NULL, errstr, errstr_size)))
                return -1;
        if (r->type != REDIS_REPLY_INTEGER || r->integer != 1)
                report(on, arg, "online", sr->stream, "not a member", "live");
        freeReplyObject(r);
        if (!sr->anchor[0])
                return 0;
        snprintf(key, sizeof(key), LF_KEY_ANCHOR_STATUS "%s", sr->anchor);
        if (!(r = redis_conn_cmd(redis, 6, fields, NULL, errstr, errstr_size)))
                return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
                freeReplyObject(r);
                snprintf(errstr, errstr_size, "redis: unexpected HMGET reply");
                return -1;
        }
        snprintf(got, sizeof(got), "status %s stream_id %s session_id %s started_at %s",
                 reply_text(r->element[0], b[0], 32), reply_text(r->element[1], b[1], 32),
                 reply_text(r->element[2], b[2], 32), reply_text(r->element[3], b[3], 32));
        freeReplyObject(r);
        snprintf(want, sizeof(want), "status live stream_id %s session_id %lld started_at %lld",
                 sr->stream, sr->session, sr->started_s);
        if (strcmp(got, want) == 0)
                return 0;
        /* Another live stream of the same anchor may hold the hash: that one is right too. */
        if (strncmp(got, "status live stream_id ", 22) == 0) {
                char other[STREAM_MAX + 1] = "";

                sscanf(got + 22, "%255s", other);
                named = find_live(live, other);
                if (named && named != sr && strcmp(named->anchor, sr->anchor) == 0)
                        return 0;
        }
        report(on, arg, "anchor", sr->anchor, got, want);
        return 0;
}

/* What the reverse checks need: the live streams, where to report, and the anchor keys seen. */
struct reverse {
        const struct rows *live;
        rebuild_on_finding on;
        void *arg;
        struct top anchor_keys; /* reused as a list of strings */
};

static int on_member(void *ctx, const char *stream, size_t len, char *errstr, size_t errstr_size)
{
        struct reverse *rv = ctx;

        (void)len, (void)errstr, (void)errstr_size;
        if (!find_live(rv->live, stream))
                report(rv->on, rv->arg, "online", stream, "a member", "not live");
        return 0;
}

static int on_anchor_key(void *ctx, const char *key, size_t len, char *errstr, size_t errstr_size)
{
        (void)len, (void)errstr, (void)errstr_size;
        top_add(&((struct reverse *)ctx)->anchor_keys, key, 0);
        return 0;
}

/* A hash that calls a stream live that live_streams does not. */
static int check_anchor_key(struct redis_conn *redis, struct reverse *rv, const char *key,
                            char *errstr, size_t errstr_size)
{
        const char *argv[] = {"HMGET", key, "status", "stream_id"};
        redisReply *r = redis_conn_cmd(redis, 4, argv, NULL, errstr, errstr_size);
        char got[192];

        if (!r)
                return -1;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "live") == 0 &&
            (r->element[1]->type != REDIS_REPLY_STRING ||
             !find_live(rv->live, r->element[1]->str))) {
                snprintf(got, sizeof(got), "status live stream_id %s",
                         r->element[1]->type == REDIS_REPLY_STRING ? r->element[1]->str : "(nil)");
                report(rv->on, rv->arg, "anchor", key + strlen(LF_KEY_ANCHOR_STATUS), got,
                       "no live stream");
        }
        freeReplyObject(r);
        return 0;
}

static int diff_reverse(struct redis_conn *redis, struct reverse *rv, char *errstr,
                        size_t errstr_size)
{
        char cursor[32] = "0";
        const char *sscan[] = {"SSCAN", LF_KEY_ONLINE, cursor, "COUNT", "500"};
        const char *scan[] = {"SCAN", cursor, "MATCH", LF_KEY_ANCHOR_STATUS "*", "COUNT", "500"};
        int rc = 0;

        do {
                rc = redis_conn_scan_page(redis, 5, sscan, cursor, on_member, rv, errstr,
                                          errstr_size);
        } while (rc == 0 && strcmp(cursor, "0") != 0);
        /* SCAN may return a key twice: the keys are sorted and each is checked once. */
        while (rc == 0) {
                rc = redis_conn_scan_page(redis, 6, scan, cursor, on_anchor_key, rv, errstr,
                                          errstr_size);
                if (strcmp(cursor, "0") == 0)
                        break;
        }
        if (rc == 0 && rv->anchor_keys.is_oom) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = -1;
        }
        sort_items(rv->anchor_keys.lines, rv->anchor_keys.n, sizeof(*rv->anchor_keys.lines),
                   cmp_line);
        for (size_t i = 0; rc == 0 && i < rv->anchor_keys.n; i++) {
                char *eq = strrchr(rv->anchor_keys.lines[i], '=');

                if (eq)
                        *eq = '\0';
                if (i && strcmp(rv->anchor_keys.lines[i], rv->anchor_keys.lines[i - 1]) == 0)
                        continue;
                rc = check_anchor_key(redis, rv, rv->anchor_keys.lines[i], errstr, errstr_size);
        }
        return rc;
}

int rebuild_diff_streams(struct db *db, struct redis_conn *redis, rebuild_on_finding on, void *arg,
                         long long *checked, char *errstr, size_t errstr_size)
{
        static const char live_sql[] =
                "SELECT stream_id, anchor_id, session_id, CAST(UNIX_TIMESTAMP(started_at) * 1000 AS SIGNED) DIV 1000 "
                "FROM live_streams WHERE status = 'live'";
        char stream[STREAM_MAX + 1], anchor[ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = stream, .s_size = sizeof(stream)},
                                {.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64}};
        struct rows live = {.size = sizeof(struct stream_row), .fill = fill_stream};
        struct reverse rv = {.live = &live, .on = on, .arg = arg};
        int rc = collect(db, live_sql, cols, 4, &live, errstr, errstr_size);

        /* strcmp order, as Redis compares members byte for byte. */
        if (rc == 0)
                sort_items(live.items, live.n, sizeof(struct stream_row), cmp_stream);
        for (size_t i = 0; rc == 0 && i < live.n; i++)
                rc = diff_live(redis, &live, (const struct stream_row *)live.items + i, on, arg,
                               errstr, errstr_size);
        if (rc == 0)
                rc = diff_reverse(redis, &rv, errstr, errstr_size);
        if (checked)
                *checked = (long long)live.n;
        free(rv.anchor_keys.lines);
        free(live.items);
        return rc;
}
