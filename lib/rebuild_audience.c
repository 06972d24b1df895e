/* rebuild_audience.c: the audience role's Redis keys (viewers online, the sessions' audience
 * figures, the hot ranking) derived again from MySQL; see rebuild_audience.h. */
#include "rebuild_audience.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "redis_conn.h"

#define ROOM_MAX  64  /* audience_room.room_id */
#define KEY_MAX   128 /* the longest key: a prefix and a room or session id */
#define ROOM_PAGE 200 /* rooms read per page of a rebuild of every room */

/* live:stats fields, in the order of the figures below and of the role's projection. */
enum { F_VIEWS, F_UV, F_PEAK, F_CHATS, F_LIKES, F_FOLLOWS, F_SHARES, F_COUNT };
static const char *const field_names[F_COUNT] = {"views", "uv",      "peak_online", "chats",
                                                 "likes", "follows", "shares"};

struct rebuild_audience_sql {
        struct db_stmt *lock_room, *read_room, *open_visits, *sessions, *lock_session,
                *read_session, *viewers, *fix_online, *fix_session, *room_page;
};

struct rebuild_audience {
        struct db *db;
        struct redis_conn *redis;
        long long stats_ttl_s;
        struct rebuild_audience_sql sql;
};

/* One session's figures as they should be in Redis; has[f] false: NULL in MySQL, not written. */
struct aud_session {
        long long id;
        bool is_live;
        long long v[F_COUNT];
        bool has[F_COUNT];
        long long uv_col, peak_col; /* what live_statistics holds (-1: NULL) */
        char key[KEY_MAX], text[F_COUNT][24], ttl[24];
        const char *argv[2 + 2 * F_COUNT], *expire[3];
};

/* One room's figures: its online count, and its sessions. */
struct aud_room {
        char room[ROOM_MAX + 1];
        bool is_known; /* audience_room has a row */
        long long online, online_col;
        struct aud_session *s;
        size_t n, cap;
        bool is_oom;
        char key[KEY_MAX], text[24];
};

static const struct db_stmt_def statements[] = {
        {offsetof(struct rebuild_audience_sql, lock_room),
         "SELECT online FROM audience_room WHERE room_id = ? FOR UPDATE"},
        {offsetof(struct rebuild_audience_sql, read_room),
         "SELECT online FROM audience_room WHERE room_id = ?"},
        {offsetof(struct rebuild_audience_sql, open_visits),
         "SELECT COUNT(*) FROM audience_visit WHERE room_id = ? AND is_open = 1"},
        /* The sessions of the room whose live:stats may still be read; as the role resolves a
         * room, a stream without one counts in the room named by its id. */
        {offsetof(struct rebuild_audience_sql, sessions),
         "SELECT s.session_id, ls.status = 'live' FROM live_streams ls JOIN live_statistics s "
         "ON s.session_id = ls.session_id WHERE (ls.room_id = ? OR (COALESCE(ls.room_id, '') = "
         "'' AND ls.stream_id = ?)) AND (ls.status = 'live' OR ls.ended_at >= NOW(3) - "
         "INTERVAL ? SECOND) ORDER BY s.session_id"},
        {offsetof(struct rebuild_audience_sql, lock_session),
         "SELECT views, unique_viewers, peak_online, chats, likes, follows, shares FROM "
         "live_statistics WHERE session_id = ? FOR UPDATE"},
        {offsetof(struct rebuild_audience_sql, read_session),
         "SELECT views, unique_viewers, peak_online, chats, likes, follows, shares FROM "
         "live_statistics WHERE session_id = ?"},
        {offsetof(struct rebuild_audience_sql, viewers),
         "SELECT COUNT(*) FROM audience_session_viewer WHERE session_id = ?"},
        {offsetof(struct rebuild_audience_sql, fix_online),
         "UPDATE audience_room SET online = ? WHERE room_id = ?"},
        {offsetof(struct rebuild_audience_sql, fix_session),
         "UPDATE live_statistics SET unique_viewers = ?, peak_online = ? WHERE session_id = ?"},
        /* Rooms with viewers online, and rooms of streams whose live:stats may be read. */
        {offsetof(struct rebuild_audience_sql, room_page),
         "SELECT r FROM (SELECT room_id AS r FROM audience_room WHERE online > 0 UNION SELECT "
         "IF(COALESCE(room_id, '') = '', stream_id, room_id) FROM live_streams WHERE status = "
         "'live' OR ended_at >= NOW(3) - INTERVAL ? SECOND) x WHERE r > ? AND CHAR_LENGTH(r) <= "
         "64 ORDER BY r LIMIT 200"},
};

struct rebuild_audience *rebuild_audience_new(struct db *db, struct redis_conn *redis,
                                              long long stats_ttl_s)
{
        struct rebuild_audience *ra = calloc(1, sizeof(*ra));

        if (!ra)
                return NULL;
        ra->db = db;
        ra->redis = redis;
        ra->stats_ttl_s = stats_ttl_s;
        if (db_stmts(db, &ra->sql, statements, sizeof(statements) / sizeof(statements[0])) == -1) {
                free(ra);
                return NULL;
        }
        return ra;
}

void rebuild_audience_destroy(struct rebuild_audience *ra)
{
        free(ra); /* the statements belong to db */
}

/* ------------------------------------------------------------------ deriving a room's figures */

static int query_int(struct rebuild_audience *ra, struct db_stmt *st, const struct db_param *p,
                     size_t n, long long *v, bool *found, char *errstr, size_t errstr_size)
{
        struct db_col col = {.type = DB_PARAM_I64};
        bool is_row = false;

        if (db_query_row(ra->db, st, p, n, &col, 1, &is_row, errstr, errstr_size) != DB_OK)
                return -1;
        *v = is_row && !col.is_null ? col.i : 0;
        if (found)
                *found = is_row && !col.is_null;
        return 0;
}

static void add_session(const struct db_col *cols, void *arg)
{
        struct aud_room *r = arg;

        if (r->is_oom)
                return;
        if (r->n == r->cap) {
                size_t cap = r->cap ? 2 * r->cap : 4;
                struct aud_session *s = realloc(r->s, cap * sizeof(*s));

                if (!s) {
                        r->is_oom = true;
                        return;
                }
                r->s = s;
                r->cap = cap;
        }
        memset(&r->s[r->n], 0, sizeof(r->s[0]));
        r->s[r->n].id = cols[0].i;
        r->s[r->n++].is_live = cols[1].i == 1;
}

/* The session's row (locked when is_locked) and what its rows say; see the header. */
static int derive_session(struct rebuild_audience *ra, const struct aud_room *r,
                          struct aud_session *s, bool is_locked, char *errstr, size_t errstr_size)
{
        struct db_col cols[F_COUNT];
        struct db_param id[] = {DB_I64(s->id)};
        long long uv_rows;
        bool found;

        for (size_t f = 0; f < F_COUNT; f++)
                cols[f] = (struct db_col){.type = DB_PARAM_I64};
        if (db_query_row(ra->db, is_locked ? ra->sql.lock_session : ra->sql.read_session, id, 1,
                         cols, F_COUNT, &found, errstr, errstr_size) != DB_OK ||
            query_int(ra, ra->sql.viewers, id, 1, &uv_rows, NULL, errstr, errstr_size) == -1)
                return -1;
        for (size_t f = 0; f < F_COUNT; f++) {
                s->has[f] = found && !cols[f].is_null;
                s->v[f] = s->has[f] ? cols[f].i : 0;
        }
        s->uv_col = s->has[F_UV] ? s->v[F_UV] : -1;
        s->peak_col = s->has[F_PEAK] ? s->v[F_PEAK] : -1;
        /* The viewer figures stay NULL for a session no viewer event named. */
        if (!s->has[F_UV] && !s->has[F_PEAK] && uv_rows == 0)
                return 0;
        s->has[F_UV] = s->has[F_PEAK] = true;
        s->v[F_UV] = uv_rows;
        if (s->is_live && r->is_known && s->v[F_PEAK] < r->online)
                s->v[F_PEAK] = r->online;
        return 0;
}

/* Reads room_id's figures into r (zeroed first; r->s freed by the caller). */
static int derive_room(struct rebuild_audience *ra, const char *room_id, struct aud_room *r,
                       bool is_locked, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(room_id)};
        struct db_param sp[] = {DB_STR(room_id), DB_STR(room_id), DB_I64(ra->stats_ttl_s)};
        struct db_col cols[2] = {{.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}};

        memset(r, 0, sizeof(*r));
        snprintf(r->room, sizeof(r->room), "%s", room_id);
        if (query_int(ra, is_locked ? ra->sql.lock_room : ra->sql.read_room, p, 1, &r->online_col,
                      &r->is_known, errstr, errstr_size) == -1 ||
            query_int(ra, ra->sql.open_visits, p, 1, &r->online, NULL, errstr, errstr_size) == -1 ||
            db_query_each(ra->db, ra->sql.sessions, sp, 3, cols, 2, add_session, r, errstr,
                          errstr_size) != DB_OK)
                return -1;
        if (r->is_oom) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        for (size_t i = 0; i < r->n; i++)
                if (derive_session(ra, r, &r->s[i], is_locked, errstr, errstr_size) == -1)
                        return -1;
        return 0;
}

/* ------------------------------------------------------------------ rebuilding a room */

/* MySQL's counters made what their rows say (normally they do already). */
static int fix_counters(struct rebuild_audience *ra, const struct aud_room *r, long long *fixed,
                        char *errstr, size_t errstr_size)
{
        if (r->is_known && r->online_col != r->online) {
                struct db_param p[] = {DB_I64(r->online), DB_STR(r->room)};

                if (db_exec(ra->db, ra->sql.fix_online, p, 2, NULL, NULL, errstr, errstr_size) !=
                    DB_OK)
                        return -1;
                (*fixed)++;
        }
        for (size_t i = 0; i < r->n; i++) {
                const struct aud_session *s = &r->s[i];
                struct db_param p[] = {DB_I64(s->v[F_UV]), DB_I64(s->v[F_PEAK]), DB_I64(s->id)};

                if (!s->has[F_UV] || (s->uv_col == s->v[F_UV] && s->peak_col == s->v[F_PEAK]))
                        continue;
                if (db_exec(ra->db, ra->sql.fix_session, p, 3, NULL, NULL, errstr, errstr_size) !=
                    DB_OK)
                        return -1;
                (*fixed)++;
        }
        return 0;
}

/* The session's HSET and EXPIRE as the role projects them into cmds; none when all are NULL.
 * @returns how many commands. */
static size_t session_cmds(struct aud_session *s, long long ttl_s, const char ***cmds, int *argcs)
{
        int argc = 2;

        snprintf(s->key, sizeof(s->key), LF_KEY_SESSION_STATS "%lld", s->id);
        s->argv[0] = "HSET";
        s->argv[1] = s->key;
        for (size_t f = 0; f < F_COUNT; f++) {
                if (!s->has[f])
                        continue;
                snprintf(s->text[f], sizeof(s->text[f]), "%lld", s->v[f]);
                s->argv[argc++] = field_names[f];
                s->argv[argc++] = s->text[f];
        }
        if (argc == 2)
                return 0;
        snprintf(s->ttl, sizeof(s->ttl), "%lld", ttl_s);
        s->expire[0] = "EXPIRE";
        s->expire[1] = s->key;
        s->expire[2] = s->ttl;
        cmds[0] = s->argv;
        argcs[0] = argc;
        cmds[1] = s->expire;
        argcs[1] = 3;
        return 2;
}

/*
 * The room's keys in one round trip. A room audience_room does not know loses its key when
 * is_orphan (its key was seen): no lock keeps a first viewer's row from being inserted
 * meanwhile, so a live room without viewers is left alone.
 */
static int write_room(struct rebuild_audience *ra, struct aud_room *r, bool is_orphan,
                      long long *sessions, char *errstr, size_t errstr_size)
{
        size_t n = 0, cap = 1 + 2 * r->n;
        const char ***cmds = calloc(cap, sizeof(*cmds));
        int *argcs = calloc(cap, sizeof(*argcs));
        const char *set[3] = {"SET", r->key, r->text}, *del[2] = {"DEL", r->key};
        int rc = -1;

        if (!cmds || !argcs) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        snprintf(r->key, sizeof(r->key), LF_KEY_ROOM_ONLINE "%s", r->room);
        snprintf(r->text, sizeof(r->text), "%lld", r->online);
        if (r->is_known || is_orphan) {
                cmds[n] = r->is_known ? set : del;
                argcs[n++] = r->is_known ? 3 : 2;
        }
        for (size_t i = 0; i < r->n; i++) {
                size_t added = session_cmds(&r->s[i], ra->stats_ttl_s, &cmds[n], &argcs[n]);

                *sessions += added > 0;
                n += added;
        }
        rc = n ? redis_conn_pipeline(ra->redis, n, argcs, cmds, errstr, errstr_size) : 0;
out:
        free(cmds);
        free(argcs);
        return rc;
}

/* One room in one transaction (see the header), is_orphan as write_room()'s; *is_known (may be
 * NULL) says whether audience_room has the room. */
static int aud_rebuild_room(struct rebuild_audience *ra, const char *room_id, bool is_orphan,
                            struct rebuild_audience_count *c, bool *is_known, char *errstr,
                            size_t errstr_size)
{
        struct aud_room r;
        long long fixed = 0, sessions = 0;
        int rc = -1;

        /* READ COMMITTED: the counting reads see what committed before the locks were taken. */
        if (db_sql(ra->db, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", NULL, errstr,
                   errstr_size) != DB_OK ||
            db_begin(ra->db, errstr, errstr_size) != DB_OK)
                return -1;
        if (derive_room(ra, room_id, &r, true, errstr, errstr_size) == 0 &&
            fix_counters(ra, &r, &fixed, errstr, errstr_size) == 0 &&
            write_room(ra, &r, is_orphan, &sessions, errstr, errstr_size) == 0 &&
            db_commit(ra->db, errstr, errstr_size) == DB_OK)
                rc = 0;
        else
                db_rollback(ra->db);
        if (rc == 0 && c) {
                c->rooms += r.is_known;
                c->sessions += sessions;
                c->mysql_counters += fixed;
        }
        if (is_known)
                *is_known = r.is_known;
        free(r.s);
        return rc;
}

/* ------------------------------------------------------------------ every room */

void rebuild_audience_cursor_init(struct rebuild_audience_cursor *cur)
{
        memset(cur, 0, sizeof(*cur));
        snprintf(cur->scan, sizeof(cur->scan), "0");
}

/* A page of room ids. */
struct room_page {
        char ids[ROOM_PAGE][ROOM_MAX + 1];
        size_t n;
};

static void add_room(const struct db_col *cols, void *arg)
{
        struct room_page *pg = arg;

        if (pg->n < ROOM_PAGE)
                snprintf(pg->ids[pg->n++], ROOM_MAX + 1, "%s", cols[0].s);
}

/* The next page of rooms after `after` that phase 0 covers. */
static int read_page(struct rebuild_audience *ra, const char *after, struct room_page *pg,
                     char *errstr, size_t errstr_size)
{
        char id[ROOM_MAX * 4 + 1];
        struct db_col col = {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)};
        struct db_param p[] = {DB_I64(ra->stats_ttl_s), DB_STR(after)};

        pg->n = 0;
        return db_query_each(ra->db, ra->sql.room_page, p, 2, &col, 1, add_room, pg, errstr,
                             errstr_size) == DB_OK
                       ? 0
                       : -1;
}

/* Phase 0: up to max_rooms rooms of the MySQL list. */
static int step_rooms(struct rebuild_audience *ra, struct rebuild_audience_cursor *cur,
                      size_t max_rooms, struct rebuild_audience_count *c, char *errstr,
                      size_t errstr_size)
{
        struct room_page *pg = malloc(sizeof(*pg));
        size_t i = 0;
        int rc = -1;

        if (!pg) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (read_page(ra, cur->after, pg, errstr, errstr_size) == -1)
                goto out;
        for (; i < pg->n && i < max_rooms; i++) {
                if (aud_rebuild_room(ra, pg->ids[i], false, c, NULL, errstr, errstr_size) == -1)
                        goto out;
                snprintf(cur->after, sizeof(cur->after), "%s", pg->ids[i]);
        }
        if (i == pg->n && pg->n < ROOM_PAGE)
                cur->phase = 1;
        rc = 0;
out:
        free(pg);
        return rc;
}

/* What phase 1 does with a live:room:online key's room: nothing when phase 0 covered it. */
static bool needs_key_pass(struct rebuild_audience *ra, const char *room, bool *is_known,
                           char *errstr, size_t errstr_size, int *rc)
{
        struct db_param p[] = {DB_STR(room)};
        long long online = 0;

        *is_known = false;
        if (strlen(room) > ROOM_MAX)
                return true;
        if (query_int(ra, ra->sql.read_room, p, 1, &online, is_known, errstr, errstr_size) == -1) {
                *rc = -1;
                return false;
        }
        return !*is_known || online == 0;
}

struct scan_rooms {
        struct rebuild_audience *ra;
        int (*on_room)(struct rebuild_audience *, const char *, const char *, void *, char *,
                       size_t);
        void *arg;
};

static int scan_room_key(void *arg, const char *key, size_t len, char *errstr, size_t errstr_size)
{
        const struct scan_rooms *s = arg;
        size_t prefix = strlen(LF_KEY_ROOM_ONLINE);

        if (len <= prefix)
                return 0;
        return s->on_room(s->ra, key, key + prefix, s->arg, errstr, errstr_size);
}

/* One SCAN step over live:room:online:*, each key's room handed to on_room. */
static int scan_keys(struct rebuild_audience *ra, char cursor[32],
                     int (*on_room)(struct rebuild_audience *, const char *, const char *, void *,
                                    char *, size_t),
                     void *arg, char *errstr, size_t errstr_size)
{
        const char *argv[] = {"SCAN", cursor, "MATCH", LF_KEY_ROOM_ONLINE "*", "COUNT", "500"};
        struct scan_rooms s = {ra, on_room, arg};

        return redis_conn_scan_page(ra->redis, 6, argv, cursor, scan_room_key, &s, errstr,
                                    errstr_size);
}

static int rebuild_key_room(struct rebuild_audience *ra, const char *key, const char *room,
                            void *arg, char *errstr, size_t errstr_size)
{
        struct rebuild_audience_count *c = arg;
        const char *del[] = {"DEL", key};
        bool is_known = false;
        int rc = 0;
        redisReply *r;

        if (!needs_key_pass(ra, room, &is_known, errstr, errstr_size, &rc))
                return rc;
        if (strlen(room) > ROOM_MAX) { /* no room of MySQL's has such an id */
                if (!(r = redis_conn_cmd(ra->redis, 2, del, NULL, errstr, errstr_size)))
                        return -1;
                freeReplyObject(r);
        } else if (aud_rebuild_room(ra, room, true, c, &is_known, errstr, errstr_size) == -1) {
                return -1;
        }
        if (!is_known)
                c->keys_deleted++;
        return 0;
}

int rebuild_audience_step(struct rebuild_audience *ra, struct rebuild_audience_cursor *cur,
                          size_t max_rooms, bool *done, struct rebuild_audience_count *c,
                          char *errstr, size_t errstr_size)
{
        struct rebuild_audience_count ignored = {0};

        if (!c)
                c = &ignored;
        *done = false;
        if (cur->phase == 0 &&
            step_rooms(ra, cur, max_rooms ? max_rooms : 1, c, errstr, errstr_size) == -1)
                return -1;
        else if (cur->phase == 1) {
                if (scan_keys(ra, cur->scan, rebuild_key_room, c, errstr, errstr_size) == -1)
                        return -1;
                if (strcmp(cur->scan, "0") == 0)
                        cur->phase = 2;
        }
        *done = cur->phase == 2;
        return 0;
}

/* ------------------------------------------------------------------ differences */

struct diff {
        struct rebuild_audience *ra;
        rebuild_on_finding on;
        void *arg;
        long long checked;
        char (*seen)[ROOM_MAX + 1]; /* phase 0's rooms, in order: phase 1 skips them */
        size_t n_seen, cap_seen;
};

/* A Redis reply's string, or "(none)". */
static void reply_text(const redisReply *r, char *out, size_t size)
{
        if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
                snprintf(out, size, "%s", r->str);
        else if (r && r->type == REDIS_REPLY_INTEGER)
                snprintf(out, size, "%lld", r->integer);
        else
                snprintf(out, size, "(none)");
}

static int diff_online(struct diff *d, const struct aud_room *r, char *errstr, size_t errstr_size)
{
        char key[KEY_MAX], got[64];
        const char *argv[] = {"GET", key};
        struct rebuild_finding f = {.what = "viewers", .id = r->room};
        redisReply *rep;

        snprintf(key, sizeof(key), LF_KEY_ROOM_ONLINE "%s", r->room);
        if (!(rep = redis_conn_cmd(d->ra->redis, 2, argv, NULL, errstr, errstr_size)))
                return -1;
        reply_text(rep, got, sizeof(got));
        freeReplyObject(rep);
        if (!r->is_known) {
                if (strcmp(got, "(none)") == 0)
                        return 0;
                snprintf(f.mysql, sizeof(f.mysql), "no audience_room row");
        } else {
                if (strcmp(got, "(none)") == 0)
                        snprintf(got, sizeof(got), "0");
                if (strtoll(got, NULL, 10) == r->online && strspn(got, "0123456789") == strlen(got))
                        return 0;
                snprintf(f.mysql, sizeof(f.mysql), "%lld", r->online);
        }
        snprintf(f.redis, sizeof(f.redis), "%s", got);
        d->on(&f, d->arg);
        return 0;
}

static int diff_session(struct diff *d, const struct aud_session *s, char *errstr,
                        size_t errstr_size)
{
        char key[KEY_MAX], id[24], got[64];
        const char *argv[2 + F_COUNT] = {"HMGET", key};
        struct rebuild_finding f = {.what = "audience", .id = id};
        size_t used_r = 0, used_m = 0;
        redisReply *rep;

        snprintf(key, sizeof(key), LF_KEY_SESSION_STATS "%lld", s->id);
        snprintf(id, sizeof(id), "%lld", s->id);
        for (size_t i = 0; i < F_COUNT; i++)
                argv[2 + i] = field_names[i];
        if (!(rep = redis_conn_cmd(d->ra->redis, 2 + F_COUNT, argv, NULL, errstr, errstr_size)))
                return -1;
        for (size_t i = 0; i < F_COUNT; i++) {
                const redisReply *e = rep->type == REDIS_REPLY_ARRAY && rep->elements == F_COUNT
                                              ? rep->element[i]
                                              : NULL;

                reply_text(e, got, sizeof(got));
                if (!s->has[i] ||
                    (e && e->type == REDIS_REPLY_STRING &&
                     strspn(got, "0123456789") == strlen(got) && strtoll(got, NULL, 10) == s->v[i]))
                        continue;
                used_r += (size_t)snprintf(f.redis + used_r, sizeof(f.redis) - used_r, "%s%s=%s",
                                           used_r ? " " : "", field_names[i], got);
                used_m += (size_t)snprintf(f.mysql + used_m, sizeof(f.mysql) - used_m, "%s%s=%lld",
                                           used_m ? " " : "", field_names[i], s->v[i]);
                if (used_r >= sizeof(f.redis) || used_m >= sizeof(f.mysql))
                        break;
        }
        freeReplyObject(rep);
        if (used_m)
                d->on(&f, d->arg);
        return 0;
}

static int diff_room(struct diff *d, const char *room, char *errstr, size_t errstr_size)
{
        struct aud_room r;
        int rc = -1;

        if (derive_room(d->ra, room, &r, false, errstr, errstr_size) == 0 &&
            diff_online(d, &r, errstr, errstr_size) == 0) {
                rc = 0;
                for (size_t i = 0; i < r.n && rc == 0; i++)
                        rc = diff_session(d, &r.s[i], errstr, errstr_size);
        }
        free(r.s);
        d->checked++;
        return rc;
}

static int remember(struct diff *d, const char *room)
{
        if (d->n_seen == d->cap_seen) {
                size_t cap = d->cap_seen ? 2 * d->cap_seen : 64;
                char(*seen)[ROOM_MAX + 1] = realloc(d->seen, cap * sizeof(*seen));

                if (!seen)
                        return -1;
                d->seen = seen;
                d->cap_seen = cap;
        }
        snprintf(d->seen[d->n_seen++], ROOM_MAX + 1, "%s", room);
        return 0;
}

static int cmp_room(const void *a, const void *b)
{
        return strcmp(a, b);
}

/* Phase 0 of the diff: every room of the MySQL list. */
static int diff_rooms(struct diff *d, char *errstr, size_t errstr_size)
{
        struct room_page *pg = malloc(sizeof(*pg));
        char after[ROOM_MAX + 1] = "";
        int rc = 0;

        if (!pg) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        do {
                if ((rc = read_page(d->ra, after, pg, errstr, errstr_size)) == -1)
                        break;
                for (size_t i = 0; i < pg->n && rc == 0; i++) {
                        rc = diff_room(d, pg->ids[i], errstr, errstr_size);
                        if (rc == 0 && remember(d, pg->ids[i]) == -1) {
                                snprintf(errstr, errstr_size, "out of memory");
                                rc = -1;
                        }
                }
                if (pg->n)
                        snprintf(after, sizeof(after), "%s", pg->ids[pg->n - 1]);
        } while (rc == 0 && pg->n == ROOM_PAGE);
        free(pg);
        if (d->n_seen > 1)
                qsort(d->seen, d->n_seen, sizeof(d->seen[0]), cmp_room);
        return rc;
}

/* Phase 1 of the diff: a key of a room phase 0 did not compare. */
static int diff_key_room(struct rebuild_audience *ra, const char *key, const char *room, void *arg,
                         char *errstr, size_t errstr_size)
{
        struct diff *d = arg;
        bool is_known;
        int rc = 0;

        (void)key;
        if (d->n_seen && bsearch(room, d->seen, d->n_seen, sizeof(d->seen[0]), cmp_room))
                return 0;
        if (!needs_key_pass(ra, room, &is_known, errstr, errstr_size, &rc))
                return rc;
        if (strlen(room) > ROOM_MAX) {
                struct rebuild_finding f = {.what = "viewers", .id = room};

                snprintf(f.redis, sizeof(f.redis), "a key");
                snprintf(f.mysql, sizeof(f.mysql), "no audience_room row");
                d->on(&f, d->arg);
                return 0;
        }
        return diff_room(d, room, errstr, errstr_size);
}

static void on_count(const struct db_col *cols, void *arg)
{
        *(long long *)arg = cols[0].i;
}

/* live:rank:hot is missing while rooms are live. */
static int diff_rank(struct diff *d, char *errstr, size_t errstr_size)
{
        struct db_text t = {0};
        struct db_col col = {.type = DB_PARAM_I64};
        const char *argv[] = {"EXISTS", LF_KEY_RANK_HOT};
        struct rebuild_finding f = {.what = "rank", .id = LF_KEY_RANK_HOT};
        redisReply *rep;
        enum db_result r;
        long long exists, live = 0;

        db_text_add(&t, "SELECT COUNT(DISTINCT room_id) FROM live_streams WHERE status = 'live' "
                        "AND room_id IS NOT NULL");
        r = db_text_query(d->ra->db, &t, &col, 1, on_count, &live, errstr, errstr_size);
        db_text_free(&t);
        if (r != DB_OK)
                return -1;
        if (live == 0)
                return 0;
        if (!(rep = redis_conn_cmd(d->ra->redis, 2, argv, NULL, errstr, errstr_size)))
                return -1;
        exists = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
        freeReplyObject(rep);
        if (exists)
                return 0;
        snprintf(f.redis, sizeof(f.redis), "missing");
        snprintf(f.mysql, sizeof(f.mysql), "%lld live room(s) to rank", live);
        d->on(&f, d->arg);
        return 0;
}

int rebuild_diff_audience(struct db *db, struct redis_conn *redis, long long stats_ttl_s,
                          rebuild_on_finding on, void *arg, long long *checked, char *errstr,
                          size_t errstr_size)
{
        struct diff d = {.on = on, .arg = arg};
        char cursor[32] = "0";
        int rc;

        if (!(d.ra = rebuild_audience_new(db, redis, stats_ttl_s))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        rc = diff_rooms(&d, errstr, errstr_size);
        while (rc == 0) {
                rc = scan_keys(d.ra, cursor, diff_key_room, &d, errstr, errstr_size);
                if (strcmp(cursor, "0") == 0)
                        break;
        }
        if (rc == 0)
                rc = diff_rank(&d, errstr, errstr_size);
        if (checked)
                *checked = d.checked;
        free(d.seen);
        rebuild_audience_destroy(d.ra);
        return rc;
}
