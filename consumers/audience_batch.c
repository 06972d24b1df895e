/*
 * audience_batch.c: the set-based engine of the audience role (see audience_batch.h). Every
 * table the operations touch is read once into small arrays indexed by a string hash, the
 * operations run in record order against them, and what changed is written back with one
 * multi-row statement per table. Rows are locked (FOR UPDATE) in one statement per table, in
 * key order, so two instances of the role wait for each other rather than deadlock often.
 */
#include "audience_rows.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

struct aud_batch *aud_batch_new(struct db *db)
{
        struct aud_batch *b = calloc(1, sizeof(*b));

        if (!b)
                return NULL;
        b->db = db;
        b->ops.size = sizeof(struct op_row);
        b->history.size = sizeof(struct history_row);
        aud_table_init(&b->seen, sizeof(struct seen_row));
        aud_table_init(&b->streams, sizeof(struct stream_row));
        aud_table_init(&b->room_lives, sizeof(struct room_live_row));
        aud_table_init(&b->visits, sizeof(struct visit_row));
        aud_table_init(&b->rooms, sizeof(struct room_row));
        aud_table_init(&b->sessions, sizeof(struct session_row));
        aud_table_init(&b->pairs, sizeof(struct pair_row));
        aud_table_init(&b->minutes, sizeof(struct minute_row));
        aud_table_init(&b->dirty_rooms, sizeof(struct room_row));
        aud_table_init(&b->dirty_sessions, sizeof(struct seen_row));
        return b;
}

void aud_batch_destroy(struct aud_batch *b)
{
        struct table *tables[] = {&b->seen,        &b->streams,       &b->room_lives, &b->visits,
                                  &b->rooms,       &b->sessions,      &b->pairs,      &b->minutes,
                                  &b->dirty_rooms, &b->dirty_sessions};

        if (!b)
                return;
        for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
                aud_table_free(tables[i]);
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
                aud_table_clear(tables[i]);
        b->ops.n = 0;
        b->history.n = 0;
        b->applied = b->closed = 0;
        b->is_oom = false;
}

int aud_batch_add(struct aud_batch *b, const struct aud_op *op)
{
        struct op_row *row = aud_vec_push(&b->ops);

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
        aud_table_clear(&b->dirty_rooms);
        aud_table_clear(&b->dirty_sessions);
}

/* ------------------------------------------------------------------ reading */

static void on_seen(const struct db_col *cols, void *arg)
{
        struct aud_batch *b = arg;

        aud_table_row(b, &b->seen, cols[0].s, true);
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
                aud_sep(&b->t, listed++);
                db_text_str(b->db, &b->t, o->op.event_id);
        }
        db_text_add(&b->t, ")");
        if (listed &&
            (r = db_text_query(b->db, &b->t, &col, 1, on_seen, b, errstr, errstr_size)) != DB_OK)
                return r;
        for (size_t i = 0; i < b->ops.n; i++) {
                struct op_row *o = AT(b->ops, struct op_row, i);

                if (!o->op.event_id[0]) {
                        o->is_new = true; /* a timeout */
                        continue;
                }
                o->is_new = !aud_table_row(b, &b->seen, o->op.event_id, false);
                if (o->is_new && !aud_table_row(b, &b->seen, o->op.event_id, true))
                        return aud_oom(errstr, errstr_size);
        }
        return b->is_oom ? aud_oom(errstr, errstr_size) : DB_OK;
}

static void on_stream(const struct db_col *cols, void *arg)
{
        struct aud_batch *b = arg;
        struct stream_row *s = aud_table_row(b, &b->streams, cols[0].s, false);

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
        struct room_live_row *r = aud_table_row(b, &b->room_lives, cols[0].s, false);

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
                        aud_table_row(b, &b->streams, o->op.stream_id, true);
                if (o->op.room_id[0])
                        aud_table_row(b, &b->room_lives, o->op.room_id, true);
        }
        if (b->is_oom)
                return aud_oom(errstr, errstr_size);
        if (b->streams.rows.n) {
                db_text_reset(&b->t);
                db_text_add(&b->t,
                            "SELECT stream_id, COALESCE(room_id, ''), session_id, status = 'live', "
                            "ROUND(UNIX_TIMESTAMP(ended_at) * 1000) FROM live_streams WHERE "
                            "stream_id IN (");
                for (size_t i = 0; i < b->streams.rows.n; i++) {
                        aud_sep(&b->t, i);
                        db_text_str(b->db, &b->t, AT(b->streams.rows, struct stream_row, i)->key);
                }
                db_text_add(&b->t, ")");
                if ((r = db_text_query(b->db, &b->t, cols, 5, on_stream, b, errstr, errstr_size)) !=
                    DB_OK)
                        return r;
        }
        if (b->room_lives.rows.n) {
                db_text_reset(&b->t);
                db_text_add(&b->t, "SELECT room_id, stream_id, session_id FROM live_streams WHERE "
                                   "status = 'live' AND session_id IS NOT NULL AND room_id IN (");
                for (size_t i = 0; i < b->room_lives.rows.n; i++) {
                        aud_sep(&b->t, i);
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
                        s = aud_table_row(b, &b->streams, o->op.stream_id, false);
                if (s && s->found) {
                        const char *room = s->room[0]         ? s->room
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
                        rl = aud_table_row(b, &b->room_lives, o->op.room_id, false);
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
        if (!(v = aud_table_row(b, &b->visits, key, false)))
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
        struct room_row *r = aud_table_row(b, &b->rooms, cols[0].s, false);

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
                if ((v = aud_table_row(b, &b->visits, key, true))) {
                        snprintf(v->room, sizeof(v->room), "%s", o->room);
                        snprintf(v->akey, sizeof(v->akey), "%s", o->op.audience_key);
                }
                aud_table_row(b, &b->rooms, o->room, true);
        }
        if (b->is_oom)
                return aud_oom(errstr, errstr_size);
        if (!b->visits.rows.n)
                return DB_OK;
        /* Locks are taken in key order: copies sorted, the table's index left as it is. */
        if (!(sorted.v = malloc(b->visits.rows.n * sorted.size)))
                return aud_oom(errstr, errstr_size);
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

                aud_sep(&b->t, i);
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
                aud_sep(&b->t, i);
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
        if ((p = aud_table_row(b, &b->pairs, key, false)))
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
                if ((p = aud_table_row(b, &b->pairs, key, true))) {
                        p->session_id = o->session_id;
                        snprintf(p->akey, sizeof(p->akey), "%s", o->op.audience_key);
                }
        }
        if (b->is_oom)
                return aud_oom(errstr, errstr_size);
        if (!b->pairs.rows.n)
                return DB_OK;
        db_text_reset(&b->t);
        db_text_add(&b->t, "SELECT session_id, audience_key FROM audience_session_viewer WHERE "
                           "(session_id, audience_key) IN (");
        for (size_t i = 0; i < b->pairs.rows.n; i++) {
                struct pair_row *p = AT(b->pairs.rows, struct pair_row, i);

                aud_sep(&b->t, i);
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
        if (!(s = aud_table_row(b, &b->sessions, key, true)))
                return NULL;
        s->id = id;
        if (!s->stream[0] && stream)
                snprintf(s->stream, sizeof(s->stream), "%s", stream);
        aud_table_row(b, &b->dirty_sessions, key, true);
        return s;
}

static struct room_row *room_of(struct aud_batch *b, const char *room)
{
        struct room_row *r = aud_table_row(b, &b->rooms, room, true);

        if (r) {
                r->dirty = true;
                aud_table_row(b, &b->dirty_rooms, room, true);
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
        struct history_row *h = aud_vec_push(&b->history);
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
                if ((p = aud_table_row(b, &b->pairs, key, false)) && !p->exists && !p->is_new) {
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
        if (!(v = aud_table_row(b, &b->visits, key, false)))
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
                if ((m = aud_table_row(b, &b->minutes, key, true))) {
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

/* ------------------------------------------------------------------ the verb */

enum db_result aud_batch_apply(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        enum db_result (*const readers[])(struct aud_batch *, char *, size_t) = {
                read_ledger, read_streams, NULL, read_visits, read_pairs};
        long long t[8];
        enum db_result r;

        if (!b->ops.n)
                return DB_OK;
        t[0] = clock_mono_us();
        for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]); i++) {
                if (!readers[i])
                        resolve(b);
                else if ((r = readers[i](b, errstr, errstr_size)) != DB_OK)
                        return r;
                t[i + 1] = clock_mono_us();
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
                return aud_oom(errstr, errstr_size);
        t[6] = clock_mono_us();
        r = aud_batch_write(b, errstr, errstr_size);
        t[7] = clock_mono_us();
        log_debug(NULL,
                  "audience batch ops=%zu us: ledger %lld streams %lld visits %lld pairs %lld "
                  "apply %lld write %lld",
                  b->ops.n, t[1] - t[0], t[2] - t[1], t[4] - t[3], t[5] - t[4], t[6] - t[5],
                  t[7] - t[6]);
        return r;
}
