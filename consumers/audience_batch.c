/*
 * audience_batch.c: the set-based engine of the audience role (see audience_batch.h). Every
 * table the operations touch is read once into small arrays indexed by a string hash, the
 * operations run in record order against them, and what changed is written back with one
 * multi-row statement per table. Rows are locked (FOR UPDATE) in one statement per table, in
 * key order, so two instances of the role wait for each other rather than deadlock often.
 */
#include "audience_batch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MINUTE_MS 60000LL

/* ------------------------------------------------------------------ a string -> index map */

struct strmap {
        size_t *slots; /* index + 1; 0 is empty */
        size_t cap;    /* a power of two */
        size_t n;
};

static uint64_t hash_str(const char *s)
{
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return h;
}

static void strmap_clear(struct strmap *m)
{
        if (m->slots)
                memset(m->slots, 0, m->cap * sizeof(*m->slots));
        m->n = 0;
}

/*
 * The index of key, looked up with name(i) giving the key of entry i; when absent and add is
 * set, records next as its index and returns it. SIZE_MAX: absent (or out of memory).
 */
static size_t strmap_find(struct strmap *m, const char *key, const char *(*name)(void *, size_t),
                          void *arg, bool add, size_t next)
{
        size_t i;

        if (add && (m->n + 1) * 2 > m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 64, *slots = calloc(cap, sizeof(*slots));

                if (!slots)
                        return SIZE_MAX;
                for (size_t j = 0; j < m->cap; j++) {
                        size_t k;

                        if (!m->slots[j])
                                continue;
                        k = hash_str(name(arg, m->slots[j] - 1)) & (cap - 1);
                        while (slots[k])
                                k = (k + 1) & (cap - 1);
                        slots[k] = m->slots[j];
                }
                free(m->slots);
                m->slots = slots;
                m->cap = cap;
        }
        if (!m->cap)
                return SIZE_MAX;
        for (i = hash_str(key) & (m->cap - 1); m->slots[i]; i = (i + 1) & (m->cap - 1))
                if (strcmp(name(arg, m->slots[i] - 1), key) == 0)
                        return m->slots[i] - 1;
        if (!add)
                return SIZE_MAX;
        m->slots[i] = next + 1;
        m->n++;
        return next;
}

/* A growable array of fixed-size elements. */
struct vec {
        void *v;
        size_t n, cap, size;
};

static void *vec_push(struct vec *a)
{
        if (a->n == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 64;
                void *v = realloc(a->v, cap * a->size);

                if (!v)
                        return NULL;
                a->v = v;
                a->cap = cap;
        }
        memset((char *)a->v + a->n * a->size, 0, a->size);
        return (char *)a->v + a->n++ * a->size;
}

#define AT(a, type, i) (&((type *)(a).v)[i])

/* ------------------------------------------------------------------ the rows */

struct op_row {
        struct aud_op op;
        bool is_new;                     /* first copy of its event (or a timeout) */
        char room[AUD_ROOM_MAX + 1];     /* resolved */
        char stream[AUD_STREAM_MAX + 1]; /* resolved: the session's stream, else the event's */
        long long session_id;            /* 0: none */
};

struct stream_row {
        char key[AUD_STREAM_MAX + 1];
        char room[AUD_ROOM_MAX + 1];
        long long session_id, ended_ms;
        bool is_live, found;
};

struct room_live_row {
        char key[AUD_ROOM_MAX + 1];
        char stream[AUD_STREAM_MAX + 1];
        long long session_id; /* 0: not live */
};

struct visit_row {
        char key[AUD_ROOM_MAX + AUD_KEY_MAX + 2]; /* room \x1f audience_key */
        char room[AUD_ROOM_MAX + 1];
        char akey[AUD_KEY_MAX + 1];
        char visit_id[65];
        char stream[AUD_STREAM_MAX + 1];
        long long session_id, entered_ms, last_seen_ms, left_ms; /* 0: NULL */
        bool is_open, dirty;
};

struct room_row {
        char key[AUD_ROOM_MAX + 1];
        long long online;
        bool dirty;
};

struct session_row {
        char key[24]; /* the id in decimal */
        long long id;
        char stream[AUD_STREAM_MAX + 1];
        long long views, uv, chats, likes, follows, unfollows, shares, watch_s, watch_visits,
                buckets[5], peak;
        bool has_viewers, has_interactions;
};

struct pair_row {
        char key[24 + AUD_KEY_MAX + 2]; /* session \x1f audience_key */
        long long session_id;
        char akey[AUD_KEY_MAX + 1];
        bool exists, is_new;
};

struct history_row {
        char visit_id[65];
        char akey[AUD_KEY_MAX + 1];
        char room[AUD_ROOM_MAX + 1];
        char stream[AUD_STREAM_MAX + 1];
        long long session_id, entered_ms, left_ms, seconds;
        const char *reason;
};

struct minute_row {
        char key[AUD_ROOM_MAX + 24];
        char room[AUD_ROOM_MAX + 1];
        long long minute_ms, chats, likes, follows, shares;
};

struct seen_row {
        char key[65];
};

/* A table: its rows and their index. */
struct table {
        struct vec rows;
        struct strmap map;
};

struct aud_batch {
        struct db *db;
        struct db_text t;
        struct vec ops;
        struct table seen, streams, room_lives, visits, rooms, sessions, pairs, minutes;
        struct vec history;
        struct table dirty_rooms, dirty_sessions; /* struct seen_row-sized keys; kept on reset */
        size_t applied, closed;
        bool is_oom;
};

static const char *row_key(void *arg, size_t i)
{
        struct vec *rows = arg;

        /* Every row struct starts with its key. */
        return (const char *)rows->v + i * rows->size;
}

/* The row of key in t, made (zeroed, key set) when absent and add is set; NULL otherwise. */
static void *table_row(struct aud_batch *b, struct table *t, const char *key, bool add)
{
        size_t i = strmap_find(&t->map, key, row_key, &t->rows, add, t->rows.n);
        char *row;

        if (i == SIZE_MAX) {
                if (add)
                        b->is_oom = true;
                return NULL;
        }
        if (i < t->rows.n)
                return (char *)t->rows.v + i * t->rows.size;
        if (!(row = vec_push(&t->rows))) {
                b->is_oom = true;
                return NULL;
        }
        memcpy(row, key, strlen(key) + 1); /* every key fits its row's key array */
        return row;
}

static void table_clear(struct table *t)
{
        t->rows.n = 0;
        strmap_clear(&t->map);
}

static void table_free(struct table *t)
{
        free(t->rows.v);
        free(t->map.slots);
}

static void table_init(struct table *t, size_t size)
{
        t->rows.size = size;
}

struct aud_batch *aud_batch_new(struct db *db)
{
        struct aud_batch *b = calloc(1, sizeof(*b));

        if (!b)
                return NULL;
        b->db = db;
        b->ops.size = sizeof(struct op_row);
        b->history.size = sizeof(struct history_row);
        table_init(&b->seen, sizeof(struct seen_row));
        table_init(&b->streams, sizeof(struct stream_row));
        table_init(&b->room_lives, sizeof(struct room_live_row));
        table_init(&b->visits, sizeof(struct visit_row));
        table_init(&b->rooms, sizeof(struct room_row));
        table_init(&b->sessions, sizeof(struct session_row));
        table_init(&b->pairs, sizeof(struct pair_row));
        table_init(&b->minutes, sizeof(struct minute_row));
        table_init(&b->dirty_rooms, sizeof(struct room_row));
        table_init(&b->dirty_sessions, sizeof(struct seen_row));
        return b;
}

void aud_batch_destroy(struct aud_batch *b)
{
        struct table *tables[] = {&b->seen,     &b->streams, &b->room_lives, &b->visits,
                                  &b->rooms,    &b->sessions, &b->pairs,     &b->minutes,
                                  &b->dirty_rooms, &b->dirty_sessions};

        if (!b)
                return;
        for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
                table_free(tables[i]);
        free(b->ops.v);
        free(b->history.v);
        db_text_free(&b->t);
        free(b);
}

void aud_batch_reset(struct aud_batch *b)
{
        struct table *tables[] = {&b->seen,  &b->streams,  &b->room_lives, &b->visits,
                                  &b->rooms, &b->sessions, &b->pairs,      &b->minutes};

        for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
                table_clear(tables[i]);
        b->ops.n = 0;
        b->history.n = 0;
        b->applied = b->closed = 0;
        b->is_oom = false;
}

int aud_batch_add(struct aud_batch *b, const struct aud_op *op)
{
        struct op_row *row = vec_push(&b->ops);

        if (!row)
                return -1;
        row->op = *op;
        return 0;
}

size_t aud_batch_count(const struct aud_batch *b)
{
        return b->ops.n;
}

size_t aud_batch_applied(const struct aud_batch *b)
{
        return b->applied;
}

size_t aud_batch_closed(const struct aud_batch *b)
{
        return b->closed;
}

size_t aud_batch_dirty_rooms(const struct aud_batch *b)
{
        return b->dirty_rooms.rows.n;
}

size_t aud_batch_dirty_sessions(const struct aud_batch *b)
{
        return b->dirty_sessions.rows.n;
}

void aud_batch_clear_dirty(struct aud_batch *b)
{
        table_clear(&b->dirty_rooms);
        table_clear(&b->dirty_sessions);
}

/* ------------------------------------------------------------------ reading */

static enum db_result oom(char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "out of memory");
        return DB_RETRY;
}

/* Appends ", " between list items. */
static void sep(struct db_text *t, size_t i)
{
        if (i)
                db_text_add(t, ", ");
}

static void on_seen(const struct db_col *cols, void *arg)
{
        struct aud_batch *b = arg;

        table_row(b, &b->seen, cols[0].s, true);
}

/* Marks each operation new or not: known to the ledger, or an earlier copy in this batch. */
static enum db_result read_ledger(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        char id[65];
        struct db_col col = {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)};
        size_t listed = 0;
        enum db_result r;

        db_text_reset(&b->t);
        db_text_add(&b->t, "SELECT event_id FROM audience_event_seen WHERE event_id IN (");
        for (size_t i = 0; i < b->ops.n; i++) {
                struct op_row *o = AT(b->ops, struct op_row, i);

                if (!o->op.event_id[0])
                        continue;
                sep(&b->t, listed++);
                db_text_str(b->db, &b->t, o->op.event_id);
        }
        db_text_add(&b->t, ")");
        if (listed && (r = db_text_query(b->db, &b->t, &col, 1, on_seen, b, errstr,
                                         errstr_size)) != DB_OK)
                return r;
        for (size_t i = 0; i < b->ops.n; i++) {
                struct op_row *o = AT(b->ops, struct op_row, i);

                if (!o->op.event_id[0]) {
                        o->is_new = true; /* a timeout */
                        continue;
                }
                o->is_new = !table_row(b, &b->seen, o->op.event_id, false);
                if (o->is_new && !table_row(b, &b->seen, o->op.event_id, true))
                        return oom(errstr, errstr_size);
        }
        return b->is_oom ? oom(errstr, errstr_size) : DB_OK;
}

static enum db_result write_ledger(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        size_t listed = 0;

        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT INTO audience_event_seen (event_id) VALUES ");
        for (size_t i = 0; i < b->ops.n; i++) {
                struct op_row *o = AT(b->ops, struct op_row, i);

                if (!o->is_new || !o->op.event_id[0])
                        continue;
                sep(&b->t, listed++);
                db_text_add(&b->t, "(");
                db_text_str(b->db, &b->t, o->op.event_id);
                db_text_add(&b->t, ")");
        }
        return listed ? db_text_exec(b->db, &b->t, NULL, errstr, errstr_size) : DB_OK;
}

static void on_stream(const struct db_col *cols, void *arg)
{
        struct aud_batch *b = arg;
        struct stream_row *s = table_row(b, &b->streams, cols[0].s, false);

        if (!s)
                return;
        snprintf(s->room, sizeof(s->room), "%s", cols[1].s);
        s->session_id = cols[2].is_null ? 0 : cols[2].i;
        s->is_live = cols[3].i == 1;
        s->ended_ms = cols[4].is_null ? 0 : cols[4].i;
        s->found = true;
}

static void on_room_live(const struct db_col *cols, void *arg)
{
        struct aud_batch *b = arg;
        struct room_live_row *r = table_row(b, &b->room_lives, cols[0].s, false);

        if (!r) /* ordered by start: the newest live stream of the room is the last one */
                return;
        snprintf(r->stream, sizeof(r->stream), "%s", cols[1].s);
        r->session_id = cols[2].i;
}

/* The live_streams rows of the operations' streams, and the live stream of their rooms. */
static enum db_result read_streams(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        char stream[AUD_STREAM_MAX + 1], room[AUD_ROOM_MAX + 1];
        struct db_col cols[5] = {{.type = DB_PARAM_STR, .s = stream, .s_size = sizeof(stream)},
                                 {.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                                 {.type = DB_PARAM_I64},
                                 {.type = DB_PARAM_I64},
                                 {.type = DB_PARAM_I64}};
        struct db_col room_cols[3] = {{.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                                      {.type = DB_PARAM_STR, .s = stream, .s_size = sizeof(stream)},
                                      {.type = DB_PARAM_I64}};
        enum db_result r;

        for (size_t i = 0; i < b->ops.n; i++) {
                struct op_row *o = AT(b->ops, struct op_row, i);

                if (!o->is_new || o->op.kind == AUD_TIMEOUT)
                        continue;
                if (o->op.stream_id[0])
                        table_row(b, &b->streams, o->op.stream_id, true);
                if (o->op.room_id[0])
                        table_row(b, &b->room_lives, o->op.room_id, true);
        }
        if (b->is_oom)
                return oom(errstr, errstr_size);
        if (b->streams.rows.n) {
                db_text_reset(&b->t);
                db_text_add(&b->t,
                            "SELECT stream_id, COALESCE(room_id, ''), session_id, status = 'live', "
                            "ROUND(UNIX_TIMESTAMP(ended_at) * 1000) FROM live_streams WHERE "
                            "stream_id IN (");
                for (size_t i = 0; i < b->streams.rows.n; i++) {
                        sep(&b->t, i);
                        db_text_str(b->db, &b->t, AT(b->streams.rows, struct stream_row, i)->key);
                }
                db_text_add(&b->t, ")");
                if ((r = db_text_query(b->db, &b->t, cols, 5, on_stream, b, errstr,
                                       errstr_size)) != DB_OK)
                        return r;
        }
        if (b->room_lives.rows.n) {
                db_text_reset(&b->t);
                db_text_add(&b->t, "SELECT room_id, stream_id, session_id FROM live_streams WHERE "
                                   "status = 'live' AND session_id IS NOT NULL AND room_id IN (");
                for (size_t i = 0; i < b->room_lives.rows.n; i++) {
                        sep(&b->t, i);
                        db_text_str(b->db, &b->t,
                                    AT(b->room_lives.rows, struct room_live_row, i)->key);
                }
                db_text_add(&b->t, ") ORDER BY started_at, stream_id");
                if ((r = db_text_query(b->db, &b->t, room_cols, 3, on_room_live, b, errstr,
                                       errstr_size)) != DB_OK)
                        return r;
        }
        return DB_OK;
}

/* The room, stream and session of each new operation (see audience.h). */
static void resolve(struct aud_batch *b)
{
        for (size_t i = 0; i < b->ops.n; i++) {
                struct op_row *o = AT(b->ops, struct op_row, i);
                struct stream_row *s = NULL;
                struct room_live_row *rl = NULL;

                if (!o->is_new)
                        continue;
                if (o->op.kind == AUD_TIMEOUT) {
                        snprintf(o->room, sizeof(o->room), "%s", o->op.room_id);
                        continue;
                }
                if (o->op.stream_id[0])
                        s = table_row(b, &b->streams, o->op.stream_id, false);
                if (s && s->found) {
                        const char *room = s->room[0]      ? s->room
                                           : o->op.room_id[0] ? o->op.room_id
                                                              : o->op.stream_id;

                        if (strlen(room) <= AUD_ROOM_MAX) /* else no room: no visit counted */
                                memcpy(o->room, room, strlen(room) + 1);
                        snprintf(o->stream, sizeof(o->stream), "%s", o->op.stream_id);
                        if (s->session_id && (s->is_live || o->op.ts_ms <= s->ended_ms))
                                o->session_id = s->session_id;
                        continue;
                }
                if (o->op.room_id[0]) {
                        snprintf(o->room, sizeof(o->room), "%s", o->op.room_id);
                        rl = table_row(b, &b->room_lives, o->op.room_id, false);
                        if (rl && rl->session_id) {
                                o->session_id = rl->session_id;
                                snprintf(o->stream, sizeof(o->stream), "%s", rl->stream);
                        } else {
                                snprintf(o->stream, sizeof(o->stream), "%s", o->op.stream_id);
                        }
                        continue;
                }
                /* An unknown stream without a room: its id names the room (when it fits). */
                snprintf(o->stream, sizeof(o->stream), "%s", o->op.stream_id);
                if (strlen(o->op.stream_id) <= AUD_ROOM_MAX)
                        memcpy(o->room, o->op.stream_id, strlen(o->op.stream_id) + 1);
        }
}

static void visit_key(char *out, size_t size, const char *room, const char *akey)
{
        snprintf(out, size, "%s\x1f%s", room, akey);
}

static void on_visit(const struct db_col *cols, void *arg)
{
        struct aud_batch *b = arg;
        char key[sizeof(((struct visit_row *)0)->key)];
        struct visit_row *v;

        visit_key(key, sizeof(key), cols[0].s, cols[1].s);
        if (!(v = table_row(b, &b->visits, key, false)))
                return;
        v->is_open = cols[2].i == 1;
        snprintf(v->visit_id, sizeof(v->visit_id), "%s", cols[3].is_null ? "" : cols[3].s);
        v->session_id = cols[4].is_null ? 0 : cols[4].i;
        snprintf(v->stream, sizeof(v->stream), "%s", cols[5].is_null ? "" : cols[5].s);
        v->entered_ms = cols[6].is_null ? 0 : cols[6].i;
        v->last_seen_ms = cols[7].is_null ? 0 : cols[7].i;
        v->left_ms = cols[8].is_null ? 0 : cols[8].i;
}

static void on_room(const struct db_col *cols, void *arg)
{
        struct aud_batch *b = arg;
        struct room_row *r = table_row(b, &b->rooms, cols[0].s, false);

        if (r)
                r->online = cols[1].i;
}

static int cmp_visit(const void *a, const void *b)
{
        return strcmp(((const struct visit_row *)a)->key, ((const struct visit_row *)b)->key);
}

/* The visits and rooms the viewer operations touch, locked. */
static enum db_result read_visits(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        char room[AUD_ROOM_MAX + 1], akey[AUD_KEY_MAX + 1], visit_id[65],
                stream[AUD_STREAM_MAX + 1];
        struct db_col cols[9] = {{.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                                 {.type = DB_PARAM_STR, .s = akey, .s_size = sizeof(akey)},
                                 {.type = DB_PARAM_I64},
                                 {.type = DB_PARAM_STR, .s = visit_id, .s_size = sizeof(visit_id)},
                                 {.type = DB_PARAM_I64},
                                 {.type = DB_PARAM_STR, .s = stream, .s_size = sizeof(stream)},
                                 {.type = DB_PARAM_I64},
                                 {.type = DB_PARAM_I64},
                                 {.type = DB_PARAM_I64}};
        struct db_col room_cols[2] = {{.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                                      {.type = DB_PARAM_I64}};
        char key[sizeof(((struct visit_row *)0)->key)];
        enum db_result r;
        struct vec sorted = {.size = sizeof(struct visit_row)};

        for (size_t i = 0; i < b->ops.n; i++) {
                struct op_row *o = AT(b->ops, struct op_row, i);
                struct visit_row *v;

                if (!o->is_new || o->op.kind >= AUD_CHAT || !o->room[0])
                        continue;
                visit_key(key, sizeof(key), o->room, o->op.audience_key);
                if ((v = table_row(b, &b->visits, key, true))) {
                        snprintf(v->room, sizeof(v->room), "%s", o->room);
                        snprintf(v->akey, sizeof(v->akey), "%s", o->op.audience_key);
                }
                table_row(b, &b->rooms, o->room, true);
        }
        if (b->is_oom)
                return oom(errstr, errstr_size);
        if (!b->visits.rows.n)
                return DB_OK;
        /* Locks are taken in key order: copies sorted, the table's index left as it is. */
        if (!(sorted.v = malloc(b->visits.rows.n * sorted.size)))
                return oom(errstr, errstr_size);
        memcpy(sorted.v, b->visits.rows.v, b->visits.rows.n * sorted.size);
        qsort(sorted.v, b->visits.rows.n, sorted.size, cmp_visit);
        db_text_reset(&b->t);
        db_text_add(&b->t,
                    "SELECT room_id, audience_key, is_open, visit_id, session_id, stream_id, "
                    "ROUND(UNIX_TIMESTAMP(entered_at) * 1000), "
                    "ROUND(UNIX_TIMESTAMP(last_seen_at) * 1000), "
                    "ROUND(UNIX_TIMESTAMP(left_at) * 1000) FROM audience_visit WHERE "
                    "(room_id, audience_key) IN (");
        for (size_t i = 0; i < b->visits.rows.n; i++) {
                struct visit_row *v = AT(sorted, struct visit_row, i);

                sep(&b->t, i);
                db_text_add(&b->t, "(");
                db_text_str(b->db, &b->t, v->room);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, v->akey);
                db_text_add(&b->t, ")");
        }
        free(sorted.v);
        db_text_add(&b->t, ") ORDER BY room_id, audience_key FOR UPDATE");
        if ((r = db_text_query(b->db, &b->t, cols, 9, on_visit, b, errstr, errstr_size)) != DB_OK)
                return r;
        db_text_reset(&b->t);
        db_text_add(&b->t, "SELECT room_id, online FROM audience_room WHERE room_id IN (");
        for (size_t i = 0; i < b->rooms.rows.n; i++) {
                sep(&b->t, i);
                db_text_str(b->db, &b->t, AT(b->rooms.rows, struct room_row, i)->key);
        }
        db_text_add(&b->t, ") ORDER BY room_id FOR UPDATE");
        return db_text_query(b->db, &b->t, room_cols, 2, on_room, b, errstr, errstr_size);
}

static void pair_key(char *out, size_t size, long long session_id, const char *akey)
{
        snprintf(out, size, "%lld\x1f%s", session_id, akey);
}

static void on_pair(const struct db_col *cols, void *arg)
{
        struct aud_batch *b = arg;
        char key[sizeof(((struct pair_row *)0)->key)];
        struct pair_row *p;

        pair_key(key, sizeof(key), cols[0].i, cols[1].s);
        if ((p = table_row(b, &b->pairs, key, false)))
                p->exists = true;
}

/* Which of the (session, audience member) pairs an enter may make are known already. */
static enum db_result read_pairs(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        char akey[AUD_KEY_MAX + 1], key[sizeof(((struct pair_row *)0)->key)];
        struct db_col cols[2] = {{.type = DB_PARAM_I64},
                                 {.type = DB_PARAM_STR, .s = akey, .s_size = sizeof(akey)}};

        for (size_t i = 0; i < b->ops.n; i++) {
                struct op_row *o = AT(b->ops, struct op_row, i);
                struct pair_row *p;

                if (!o->is_new || !o->session_id ||
                    (o->op.kind != AUD_ENTER && o->op.kind != AUD_HEARTBEAT))
                        continue;
                pair_key(key, sizeof(key), o->session_id, o->op.audience_key);
                if ((p = table_row(b, &b->pairs, key, true))) {
                        p->session_id = o->session_id;
                        snprintf(p->akey, sizeof(p->akey), "%s", o->op.audience_key);
                }
        }
        if (b->is_oom)
                return oom(errstr, errstr_size);
        if (!b->pairs.rows.n)
                return DB_OK;
        db_text_reset(&b->t);
        db_text_add(&b->t, "SELECT session_id, audience_key FROM audience_session_viewer WHERE "
                           "(session_id, audience_key) IN (");
        for (size_t i = 0; i < b->pairs.rows.n; i++) {
                struct pair_row *p = AT(b->pairs.rows, struct pair_row, i);

                sep(&b->t, i);
                db_text_add(&b->t, "(");
                db_text_i64(&b->t, p->session_id);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, p->akey);
                db_text_add(&b->t, ")");
        }
        db_text_add(&b->t, ")");
        return db_text_query(b->db, &b->t, cols, 2, on_pair, b, errstr, errstr_size);
}

/* ------------------------------------------------------------------ applying in order */

static struct session_row *session_of(struct aud_batch *b, long long id, const char *stream)
{
        char key[24];
        struct session_row *s;

        snprintf(key, sizeof(key), "%lld", id);
        if (!(s = table_row(b, &b->sessions, key, true)))
                return NULL;
        s->id = id;
        if (!s->stream[0] && stream)
                snprintf(s->stream, sizeof(s->stream), "%s", stream);
        table_row(b, &b->dirty_sessions, key, true);
        return s;
}

static struct room_row *room_of(struct aud_batch *b, const char *room)
{
        struct room_row *r = table_row(b, &b->rooms, room, true);

        if (r) {
                r->dirty = true;
                table_row(b, &b->dirty_rooms, room, true);
        }
        return r;
}

static int bucket_of(long long seconds)
{
        return seconds < 60 ? 0 : seconds < 300 ? 1 : seconds < 900 ? 2 : seconds < 3600 ? 3 : 4;
}

static void close_visit(struct aud_batch *b, struct visit_row *v, long long at_ms,
                        const char *reason)
{
        struct history_row *h = vec_push(&b->history);
        struct room_row *r = room_of(b, v->room);
        long long seconds = at_ms > v->entered_ms ? (at_ms - v->entered_ms) / 1000 : 0;

        if (!h || !r) {
                b->is_oom = true;
                return;
        }
        snprintf(h->visit_id, sizeof(h->visit_id), "%s", v->visit_id);
        snprintf(h->akey, sizeof(h->akey), "%s", v->akey);
        snprintf(h->room, sizeof(h->room), "%s", v->room);
        snprintf(h->stream, sizeof(h->stream), "%s", v->stream);
        h->session_id = v->session_id;
        h->entered_ms = v->entered_ms;
        h->left_ms = at_ms > v->entered_ms ? at_ms : v->entered_ms;
        h->seconds = seconds;
        h->reason = reason;
        v->is_open = false;
        v->left_ms = h->left_ms;
        v->dirty = true;
        if (r->online > 0)
                r->online--;
        if (v->session_id) {
                struct session_row *s = session_of(b, v->session_id, v->stream);

                if (!s) {
                        b->is_oom = true;
                        return;
                }
                s->has_viewers = true;
                s->watch_s += seconds;
                s->watch_visits++;
                s->buckets[bucket_of(seconds)]++;
        }
        b->closed++;
}

static void open_visit(struct aud_batch *b, struct visit_row *v, const struct op_row *o)
{
        struct room_row *r = room_of(b, v->room);
        char key[sizeof(((struct pair_row *)0)->key)];

        if (!r) {
                b->is_oom = true;
                return;
        }
        v->is_open = true;
        v->dirty = true;
        snprintf(v->visit_id, sizeof(v->visit_id), "%s", o->op.event_id);
        snprintf(v->stream, sizeof(v->stream), "%s", o->stream);
        v->session_id = o->session_id;
        v->entered_ms = v->last_seen_ms = o->op.ts_ms;
        r->online++;
        if (o->session_id) {
                struct session_row *s = session_of(b, o->session_id, o->stream);
                struct pair_row *p;

                if (!s) {
                        b->is_oom = true;
                        return;
                }
                s->has_viewers = true;
                s->views++;
                if (s->peak < r->online)
                        s->peak = r->online;
                pair_key(key, sizeof(key), o->session_id, o->op.audience_key);
                if ((p = table_row(b, &b->pairs, key, false)) && !p->exists && !p->is_new) {
                        p->is_new = true;
                        s->uv++;
                }
        }
}

/* @returns whether the operation changed anything. */
static bool apply_viewer(struct aud_batch *b, const struct op_row *o)
{
        char key[sizeof(((struct visit_row *)0)->key)];
        struct visit_row *v;
        long long ts = o->op.ts_ms;

        if (!o->room[0])
                return false;
        visit_key(key, sizeof(key), o->room, o->op.audience_key);
        if (!(v = table_row(b, &b->visits, key, false)))
                return false;
        switch (o->op.kind) {
        case AUD_ENTER:
        case AUD_HEARTBEAT:
                if (v->is_open) {
                        if (ts > v->last_seen_ms) {
                                v->last_seen_ms = ts;
                                v->dirty = true;
                        }
                        return true;
                }
                if (v->left_ms && ts <= v->left_ms)
                        return false; /* older than the close: a late copy */
                open_visit(b, v, o);
                return true;
        case AUD_EXIT:
                if (v->is_open) {
                        if (ts < v->entered_ms)
                                return false; /* older than this visit */
                        close_visit(b, v, ts, "exit");
                        return true;
                }
                if (ts > v->left_ms) { /* remembered: an older enter arriving later opens nothing */
                        v->left_ms = ts;
                        v->dirty = true;
                }
                return false;
        case AUD_TIMEOUT:
                if (!v->is_open || v->last_seen_ms > ts)
                        return false; /* closed meanwhile, or a sign of life came */
                close_visit(b, v, v->last_seen_ms, "timeout");
                return true;
        default:
                return false;
        }
}

static bool apply_interaction(struct aud_batch *b, const struct op_row *o)
{
        struct session_row *s = NULL;
        struct minute_row *m = NULL;
        char key[sizeof(((struct minute_row *)0)->key)];
        long long minute = o->op.ts_ms - o->op.ts_ms % MINUTE_MS;
        long long *counter_s = NULL, *counter_m = NULL, n = 1;

        if (o->session_id && !(s = session_of(b, o->session_id, o->stream)))
                return false;
        if (o->room[0]) {
                snprintf(key, sizeof(key), "%s\x1f%lld", o->room, minute);
                if ((m = table_row(b, &b->minutes, key, true))) {
                        snprintf(m->room, sizeof(m->room), "%s", o->room);
                        m->minute_ms = minute;
                }
        }
        switch (o->op.kind) {
        case AUD_CHAT:
                counter_s = s ? &s->chats : NULL;
                counter_m = m ? &m->chats : NULL;
                break;
        case AUD_LIKE:
                n = o->op.count;
                counter_s = s ? &s->likes : NULL;
                counter_m = m ? &m->likes : NULL;
                break;
        case AUD_FOLLOW:
                counter_s = s ? &s->follows : NULL;
                counter_m = m ? &m->follows : NULL;
                break;
        case AUD_UNFOLLOW:
                counter_s = s ? &s->unfollows : NULL;
                break;
        case AUD_SHARE:
                counter_s = s ? &s->shares : NULL;
                counter_m = m ? &m->shares : NULL;
                break;
        default:
                return false;
        }
        if (s) {
                s->has_interactions = true;
                *counter_s += n;
        }
        if (counter_m)
                *counter_m += n;
        return s || m;
}

/* ------------------------------------------------------------------ writing */

static void add_time(struct db_text *t, long long ms)
{
        if (!ms) {
                db_text_add(t, "NULL");
                return;
        }
        db_text_add(t, "FROM_UNIXTIME(");
        db_text_i64(t, ms);
        db_text_add(t, " / 1000)");
}

static void add_id(struct db_text *t, long long id)
{
        if (id)
                db_text_i64(t, id);
        else
                db_text_add(t, "NULL");
}

static void add_str_or_null(struct aud_batch *b, const char *s)
{
        db_text_str(b->db, &b->t, s[0] ? s : NULL);
}

static enum db_result write_visits(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        size_t listed = 0;

        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT INTO audience_visit (room_id, audience_key, is_open, visit_id, "
                           "session_id, stream_id, entered_at, last_seen_at, left_at) VALUES ");
        for (size_t i = 0; i < b->visits.rows.n; i++) {
                struct visit_row *v = AT(b->visits.rows, struct visit_row, i);

                if (!v->dirty)
                        continue;
                sep(&b->t, listed++);
                db_text_add(&b->t, "(");
                db_text_str(b->db, &b->t, v->room);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, v->akey);
                db_text_add(&b->t, ", %d, ", v->is_open ? 1 : 0);
                add_str_or_null(b, v->visit_id);
                db_text_add(&b->t, ", ");
                add_id(&b->t, v->session_id);
                db_text_add(&b->t, ", ");
                add_str_or_null(b, v->stream);
                db_text_add(&b->t, ", ");
                add_time(&b->t, v->entered_ms);
                db_text_add(&b->t, ", ");
                add_time(&b->t, v->last_seen_ms);
                db_text_add(&b->t, ", ");
                add_time(&b->t, v->left_ms);
                db_text_add(&b->t, ")");
        }
        db_text_add(&b->t, " ON DUPLICATE KEY UPDATE is_open = VALUES(is_open), visit_id = "
                           "VALUES(visit_id), session_id = VALUES(session_id), stream_id = "
                           "VALUES(stream_id), entered_at = VALUES(entered_at), last_seen_at = "
                           "VALUES(last_seen_at), left_at = VALUES(left_at)");
        return listed ? db_text_exec(b->db, &b->t, NULL, errstr, errstr_size) : DB_OK;
}

static enum db_result write_history(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT IGNORE INTO live_watch_history (visit_id, audience_id, source, "
                           "room_id, session_id, stream_id, entered_at, left_at, seconds, "
                           "close_reason) VALUES ");
        for (size_t i = 0; i < b->history.n; i++) {
                struct history_row *h = AT(b->history, struct history_row, i);
                const char *colon = strchr(h->akey, ':');
                char source[8];

                snprintf(source, sizeof(source), "%.*s",
                         colon ? (int)(colon - h->akey) : 0, h->akey);
                sep(&b->t, i);
                db_text_add(&b->t, "(");
                db_text_str(b->db, &b->t, h->visit_id);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, colon ? colon + 1 : h->akey);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, source);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, h->room);
                db_text_add(&b->t, ", ");
                add_id(&b->t, h->session_id);
                db_text_add(&b->t, ", ");
                add_str_or_null(b, h->stream);
                db_text_add(&b->t, ", ");
                add_time(&b->t, h->entered_ms ? h->entered_ms : h->left_ms);
                db_text_add(&b->t, ", ");
                add_time(&b->t, h->left_ms);
                db_text_add(&b->t, ", %lld, '%s')", h->seconds, h->reason);
        }
        return b->history.n ? db_text_exec(b->db, &b->t, NULL, errstr, errstr_size) : DB_OK;
}

static enum db_result write_pairs(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        size_t listed = 0;

        db_text_reset(&b->t);
        db_text_add(&b->t,
                    "INSERT IGNORE INTO audience_session_viewer (session_id, audience_key) VALUES ");
        for (size_t i = 0; i < b->pairs.rows.n; i++) {
                struct pair_row *p = AT(b->pairs.rows, struct pair_row, i);

                if (!p->is_new)
                        continue;
                sep(&b->t, listed++);
                db_text_add(&b->t, "(");
                db_text_i64(&b->t, p->session_id);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, p->akey);
                db_text_add(&b->t, ")");
        }
        return listed ? db_text_exec(b->db, &b->t, NULL, errstr, errstr_size) : DB_OK;
}

static enum db_result write_rooms(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        size_t listed = 0;

        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT INTO audience_room (room_id, online) VALUES ");
        for (size_t i = 0; i < b->rooms.rows.n; i++) {
                struct room_row *r = AT(b->rooms.rows, struct room_row, i);

                if (!r->dirty)
                        continue;
                sep(&b->t, listed++);
                db_text_add(&b->t, "(");
                db_text_str(b->db, &b->t, r->key);
                db_text_add(&b->t, ", %lld)", r->online);
        }
        db_text_add(&b->t, " ON DUPLICATE KEY UPDATE online = VALUES(online)");
        return listed ? db_text_exec(b->db, &b->t, NULL, errstr, errstr_size) : DB_OK;
}

/* A viewer figure: the delta when the session had viewer events, else NULL (left as it is). */
static void add_viewer_figure(struct db_text *t, const struct session_row *s, long long v)
{
        if (s->has_viewers)
                db_text_i64(t, v);
        else
                db_text_add(t, "NULL");
}

static enum db_result write_sessions(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        static const char *const viewer_cols[] = {"views",       "unique_viewers", "total_watch_s",
                                                  "watch_visits", "watch_lt_1m",    "watch_1_5m",
                                                  "watch_5_15m", "watch_15_60m",   "watch_gt_60m"};
        static const char *const count_cols[] = {"chats", "likes", "follows", "unfollows",
                                                 "shares"};

        if (!b->sessions.rows.n)
                return DB_OK;
        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT INTO live_statistics (session_id, stream_id, views, "
                           "unique_viewers, total_watch_s, watch_visits, watch_lt_1m, watch_1_5m, "
                           "watch_5_15m, watch_15_60m, watch_gt_60m, peak_online, avg_watch_s, "
                           "chats, likes, follows, unfollows, shares) VALUES ");
        for (size_t i = 0; i < b->sessions.rows.n; i++) {
                struct session_row *s = AT(b->sessions.rows, struct session_row, i);
                long long viewer[] = {s->views,      s->uv,         s->watch_s,
                                      s->watch_visits, s->buckets[0], s->buckets[1],
                                      s->buckets[2], s->buckets[3], s->buckets[4]};

                sep(&b->t, i);
                db_text_add(&b->t, "(");
                db_text_i64(&b->t, s->id);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, s->stream);
                for (size_t c = 0; c < sizeof(viewer) / sizeof(viewer[0]); c++) {
                        db_text_add(&b->t, ", ");
                        add_viewer_figure(&b->t, s, viewer[c]);
                }
                db_text_add(&b->t, ", ");
                add_viewer_figure(&b->t, s, s->peak);
                db_text_add(&b->t, ", ");
                if (s->has_viewers && s->watch_visits)
                        db_text_i64(&b->t, s->watch_s / s->watch_visits);
                else
                        db_text_add(&b->t, "NULL");
                db_text_add(&b->t, ", %lld, %lld, %lld, %lld, %lld)", s->chats, s->likes,
                            s->follows, s->unfollows, s->shares);
        }
        db_text_add(&b->t, " ON DUPLICATE KEY UPDATE ");
        for (size_t c = 0; c < sizeof(viewer_cols) / sizeof(viewer_cols[0]); c++)
                db_text_add(&b->t,
                            "%s = IF(VALUES(%s) IS NULL, %s, COALESCE(%s, 0) + VALUES(%s)), ",
                            viewer_cols[c], viewer_cols[c], viewer_cols[c], viewer_cols[c],
                            viewer_cols[c]);
        db_text_add(&b->t, "peak_online = IF(VALUES(peak_online) IS NULL, peak_online, "
                           "GREATEST(COALESCE(peak_online, 0), VALUES(peak_online))), "
                           "avg_watch_s = IF(watch_visits > 0, total_watch_s DIV watch_visits, "
                           "avg_watch_s)");
        for (size_t c = 0; c < sizeof(count_cols) / sizeof(count_cols[0]); c++)
                db_text_add(&b->t, ", %s = COALESCE(%s, 0) + VALUES(%s)", count_cols[c],
                            count_cols[c], count_cols[c]);
        return db_text_exec(b->db, &b->t, NULL, errstr, errstr_size);
}

static enum db_result write_minutes(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        if (!b->minutes.rows.n)
                return DB_OK;
        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT INTO audience_room_minute (room_id, minute, chats, likes, "
                           "follows, shares) VALUES ");
        for (size_t i = 0; i < b->minutes.rows.n; i++) {
                struct minute_row *m = AT(b->minutes.rows, struct minute_row, i);

                sep(&b->t, i);
                db_text_add(&b->t, "(");
                db_text_str(b->db, &b->t, m->room);
                db_text_add(&b->t, ", FROM_UNIXTIME(%lld), %lld, %lld, %lld, %lld)",
                            m->minute_ms / 1000, m->chats, m->likes, m->follows, m->shares);
        }
        db_text_add(&b->t, " ON DUPLICATE KEY UPDATE chats = chats + VALUES(chats), likes = likes "
                           "+ VALUES(likes), follows = follows + VALUES(follows), shares = shares "
                           "+ VALUES(shares)");
        return db_text_exec(b->db, &b->t, NULL, errstr, errstr_size);
}

/* ------------------------------------------------------------------ the verb */

enum db_result aud_batch_apply(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        enum db_result (*const readers[])(struct aud_batch *, char *, size_t) = {
                read_ledger, read_streams, NULL, read_visits, read_pairs};
        enum db_result (*const writers[])(struct aud_batch *, char *, size_t) = {
                write_ledger, write_visits, write_history, write_pairs,
                write_rooms,  write_sessions, write_minutes};
        enum db_result r;

        if (!b->ops.n)
                return DB_OK;
        for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]); i++) {
                if (!readers[i]) {
                        resolve(b);
                        continue;
                }
                if ((r = readers[i](b, errstr, errstr_size)) != DB_OK)
                        return r;
        }
        for (size_t i = 0; i < b->ops.n; i++) {
                const struct op_row *o = AT(b->ops, struct op_row, i);
                bool changed;

                if (!o->is_new)
                        continue;
                changed = o->op.kind < AUD_CHAT ? apply_viewer(b, o) : apply_interaction(b, o);
                if (changed && o->op.kind != AUD_TIMEOUT)
                        b->applied++;
                /* Even a change-nothing op may correct Redis: its room is projected again. */
                if (o->room[0] && o->op.kind < AUD_CHAT)
                        room_of(b, o->room);
        }
        if (b->is_oom)
                return oom(errstr, errstr_size);
        for (size_t i = 0; i < sizeof(writers) / sizeof(writers[0]); i++)
                if ((r = writers[i](b, errstr, errstr_size)) != DB_OK)
                        return r;
        return DB_OK;
}

/* ------------------------------------------------------------------ Redis projection queries */

bool aud_batch_rooms_query(struct aud_batch *b, struct db_text *t)
{
        if (!b->dirty_rooms.rows.n)
                return false;
        db_text_reset(t);
        db_text_add(t, "SELECT room_id, online FROM audience_room WHERE room_id IN (");
        for (size_t i = 0; i < b->dirty_rooms.rows.n; i++) {
                sep(t, i);
                db_text_str(b->db, t, AT(b->dirty_rooms.rows, struct room_row, i)->key);
        }
        db_text_add(t, ")");
        return true;
}

bool aud_batch_sessions_query(struct aud_batch *b, struct db_text *t)
{
        if (!b->dirty_sessions.rows.n)
                return false;
        db_text_reset(t);
        db_text_add(t, "SELECT session_id, views, unique_viewers, peak_online, chats, likes, "
                       "follows, shares FROM live_statistics WHERE session_id IN (");
        for (size_t i = 0; i < b->dirty_sessions.rows.n; i++) {
                sep(t, i);
                db_text_add(t, "%s", AT(b->dirty_sessions.rows, struct seen_row, i)->key);
        }
        db_text_add(t, ")");
        return true;
}
