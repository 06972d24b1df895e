/* sessions.c: session.end and viewer events into stats_session and live_statistics. */
#include "sessions.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "keyset.h"
#include "log.h"
#include "metrics.h"
#include "role_kit.h"
#include "session_stats.h"

#define EPOCH_MS(col) "CAST(UNIX_TIMESTAMP(" col ") * 1000 AS SIGNED)"

/* A late record marks the ended sessions whose window holds it, seen ended late_s ago at most. */
#define LATE_WINDOW                                                                                \
        "started_at <= FROM_UNIXTIME(? / 1000) AND ended_at >= FROM_UNIXTIME(? / 1000) "           \
        "AND closed_at >= NOW(3) - INTERVAL ? SECOND"

struct sessions {
        struct db *db;
        long long late_s;
        struct metric *m_computed;
        struct session_stats *stats; /* the computation, shared with liveflow-ctl (lib/) */
        struct db_stmt *insert_viewer, *dirty_by_stream, *dirty_by_room, *upsert_session,
                *next_dirty;
};

static int prepare(struct sessions *s)
{
        struct db *db = s->db;

        s->insert_viewer = db_stmt(
                db,
                "INSERT INTO stats_viewer_event (event_id, stream_id, client_id, action, at) "
                "VALUES (?, ?, ?, ?, FROM_UNIXTIME(? / 1000)) ON DUPLICATE KEY UPDATE event_id = event_id");
        s->dirty_by_stream = db_stmt(
                db, "UPDATE stats_session SET dirty = 1 WHERE stream_id = ? AND " LATE_WINDOW);
        s->dirty_by_room = db_stmt(
                db, "UPDATE stats_session SET dirty = 1 WHERE room_id = ? AND " LATE_WINDOW);
        s->upsert_session = db_stmt(
                db,
                "INSERT INTO stats_session (session_id, stream_id, anchor_id, room_id, started_at, ended_at, "
                "duration_s, close_method, dirty) VALUES (?, ?, ?, ?, FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(? / 1000), "
                "?, ?, 1) ON DUPLICATE KEY UPDATE stream_id = VALUES(stream_id), anchor_id = VALUES(anchor_id), "
                "room_id = VALUES(room_id), started_at = VALUES(started_at), ended_at = VALUES(ended_at), "
                "duration_s = VALUES(duration_s), close_method = VALUES(close_method), dirty = 1");
        s->next_dirty = db_stmt(
                db,
                "SELECT session_id FROM stats_session WHERE dirty = 1 AND session_id > ? ORDER BY session_id LIMIT 1");
        s->stats = session_stats_new(db);
        return s->insert_viewer && s->dirty_by_stream && s->dirty_by_room && s->upsert_session &&
                               s->next_dirty && s->stats
                       ? 0
                       : -1;
}

struct sessions *sessions_new(struct db *db, struct metrics *metrics, long long late_s)
{
        struct sessions *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->db = db;
        s->late_s = late_s;
        s->m_computed =
                metrics_counter(metrics, "liveflow_stats_sessions_computed_total",
                                "Sessions whose live_statistics row was computed (again)", NULL);
        if (prepare(s) == -1) {
                sessions_destroy(s);
                return NULL;
        }
        return s;
}

void sessions_destroy(struct sessions *s)
{
        if (s)
                session_stats_destroy(s->stats);
        free(s); /* the statements belong to the db */
}

static bool has_payload(const struct event *ev, const char *name, char *errstr, size_t errstr_size)
{
        if (ev->payload_name && strcmp(ev->payload_name, name) == 0)
                return true;
        snprintf(errstr, errstr_size, "event_type %s with payload %s, not %s", ev->event_type,
                 ev->payload_name ? ev->payload_name : "null", name);
        return false;
}

/* Marks the ended sessions of a stream or room whose window holds at_ms dirty. */
static enum apply_result mark_late(struct sessions *s, struct db_stmt *st, const char *key,
                                   long long at_ms, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(key), DB_I64(at_ms), DB_I64(at_ms), DB_I64(s->late_s)};

        return apply_from_db(db_exec(s->db, st, p, 4, NULL, NULL, errstr, errstr_size));
}

/* ------------------------------------------------------------------ applying */

enum apply_result sessions_apply_viewer(struct sessions *s, const struct event *ev, char *errstr,
                                        size_t errstr_size)
{
        const char *action, *client;
        unsigned long long affected = 0;
        enum db_result r;

        if (!has_payload(ev, "Viewer", errstr, errstr_size))
                return APPLY_PERMANENT;
        action = json_string_value(json_object_get(ev->payload, "action"));
        client = json_string_value(json_object_get(ev->payload, "client_id"));
        if (!ev->stream_id || !*ev->stream_id || !client || !*client || !action ||
            (strcmp(action, "join") != 0 && strcmp(action, "leave") != 0) ||
            ev->event_time_ms <= 0) {
                snprintf(errstr, errstr_size,
                         "viewer event without stream_id, client_id, join/leave or time");
                return APPLY_PERMANENT;
        }
        struct db_param p[] = {DB_STR(ev->event_id), DB_STR(ev->stream_id), DB_STR(client),
                               DB_STR(action), DB_I64(ev->event_time_ms)};

        r = db_exec(s->db, s->insert_viewer, p, 5, &affected, NULL, errstr, errstr_size);
        if (r != DB_OK || affected != 1)
                return apply_from_db(r); /* a replay, or a failure */
        return mark_late(s, s->dirty_by_stream, ev->stream_id, ev->event_time_ms, errstr,
                         errstr_size);
}

enum apply_result sessions_note_tip(struct sessions *s, const char *room_id, long long ts_ms,
                                    char *errstr, size_t errstr_size)
{
        return mark_late(s, s->dirty_by_room, room_id, ts_ms, errstr, errstr_size);
}

/* The late-window condition of mark_late() for one tip, as SQL text. */
static void add_tip_window(struct sessions *s, struct db_text *sql, const struct tip *tip)
{
        db_text_add(sql, "(room_id = ");
        db_text_str(s->db, sql, tip->room_id);
        db_text_add(sql,
                    " AND started_at <= FROM_UNIXTIME(%lld / 1000) AND ended_at >= "
                    "FROM_UNIXTIME(%lld / 1000))",
                    tip->ts_ms, tip->ts_ms);
}

/* sessions_note_tip() for every new tip in one UPDATE of their windows OR'ed: the fallback. */
static enum db_result note_tips_by_window(struct sessions *s, const struct tip *tips,
                                          const bool *is_new, size_t n, char *errstr,
                                          size_t errstr_size)
{
        struct db_text sql = {0};
        size_t cnt = 0;
        enum db_result r = DB_OK;

        db_text_add(&sql,
                    "UPDATE stats_session SET dirty = 1 WHERE closed_at >= NOW(3) - INTERVAL %lld "
                    "SECOND AND (",
                    s->late_s);
        for (size_t i = 0; i < n; i++) {
                if (!is_new[i])
                        continue;
                if (cnt++)
                        db_text_add(&sql, " OR ");
                add_tip_window(s, &sql, &tips[i]);
        }
        db_text_add(&sql, ")");
        if (cnt)
                r = db_text_exec(s->db, &sql, NULL, errstr, errstr_size);
        db_text_free(&sql);
        return r;
}

/* The latest tip time FROM_UNIXTIME() takes on every server: later ones take the fallback. */
#define TIP_TIME_MAX_MS 2147483647000LL

/* The new tips by room (byte order), then time. */
static int cmp_tip_ptr(const void *a, const void *b)
{
        const struct tip *x = *(const struct tip *const *)a, *y = *(const struct tip *const *)b;
        int c = strcmp(x->room_id, y->room_id);

        return c ? c : (x->ts_ms > y->ts_ms) - (x->ts_ms < y->ts_ms);
}

struct late_sink {
        const struct tip **by_room; /* the new tips, cmp_tip_ptr order */
        size_t n;
        long long *hits; /* session ids whose window holds a tip */
        size_t hit_cnt, hit_cap;
        bool is_mismatch; /* a row under another spelling of a room, or a NULL time */
        char room_id[256 * 4];
};

/* Whether a tip of room lies in [from_ms, to_ms]. */
static bool room_has_tip_in(const struct late_sink *ls, const char *room, long long from_ms,
                            long long to_ms)
{
        size_t lo = 0, hi = ls->n;

        while (lo < hi) { /* the first tip of room at from_ms or later, or of a later room */
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(ls->by_room[mid]->room_id, room);

                if (c < 0 || (c == 0 && ls->by_room[mid]->ts_ms < from_ms))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < ls->n && strcmp(ls->by_room[lo]->room_id, room) == 0 &&
               ls->by_room[lo]->ts_ms <= to_ms;
}

static void on_late_session(const struct db_col *cols, void *arg)
{
        struct late_sink *ls = arg;
        size_t lo = 0, hi = ls->n;
        bool is_ours = false;

        while (lo < hi) { /* is room_id, byte for byte, one of the tips' rooms? */
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(ls->by_room[mid]->room_id, ls->room_id);

                if (c == 0) {
                        is_ours = true;
                        break;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (!is_ours || cols[0].is_null || cols[2].is_null || cols[3].is_null) {
                ls->is_mismatch = true;
                return;
        }
        if (!room_has_tip_in(ls, ls->room_id, cols[2].i, cols[3].i))
                return;
        if (ls->hit_cnt == ls->hit_cap) {
                size_t cap = ls->hit_cap ? ls->hit_cap * 2 : 16;
                long long *hits = realloc(ls->hits, cap * sizeof(*hits));

                if (!hits) {
                        ls->is_mismatch = true; /* the fallback needs no memory */
                        return;
                }
                ls->hits = hits;
                ls->hit_cap = cap;
        }
        ls->hits[ls->hit_cnt++] = cols[0].i;
}

/*
 * The sessions of the tips' rooms that ended within late_s, read with a locking (current)
 * read as the UPDATE would, their windows matched against the tips here (UTC sessions:
 * FROM_UNIXTIME(ms / 1000) is the epoch plus ms), then one UPDATE by session_id of those a tip
 * falls in. Rooms MySQL might take for one another, a row under another spelling of a room, or
 * a tip time FROM_UNIXTIME() may not take: the UPDATE of every window, as one at a time.
 */
static enum db_result note_tips_by_session(struct sessions *s, const struct tip *tips,
                                           const bool *is_new, size_t n, bool *is_done,
                                           char *errstr, size_t errstr_size)
{
        struct late_sink ls = {0};
        const char **rooms = NULL;
        size_t room_cnt = 0, cap = 0;
        struct db_col cols[] = {
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_STR, .s = ls.room_id, .s_size = sizeof(ls.room_id)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64}};
        struct db_text sql = {0};
        enum db_result r = DB_OK;

        *is_done = false;
        for (size_t i = 0; i < n; i++)
                cap += is_new[i];
        if (!cap) {
                *is_done = true;
                return DB_OK;
        }
        ls.by_room = calloc(cap, sizeof(*ls.by_room));
        rooms = calloc(cap, sizeof(*rooms));
        if (!ls.by_room || !rooms)
                goto out;
        for (size_t i = 0; i < n; i++) {
                if (!is_new[i])
                        continue;
                if (tips[i].ts_ms > TIP_TIME_MAX_MS)
                        goto out;
                ls.by_room[ls.n++] = &tips[i];
        }
        qsort(ls.by_room, ls.n, sizeof(*ls.by_room), cmp_tip_ptr);
        for (size_t i = 0; i < ls.n; i++)
                if (i == 0 || strcmp(ls.by_room[i]->room_id, ls.by_room[i - 1]->room_id) != 0)
                        rooms[room_cnt++] = ls.by_room[i]->room_id;
        if (keys_may_collide(rooms, room_cnt)) /* reorders rooms: not used after */
                goto out;
        db_text_add(&sql,
                    "SELECT session_id, room_id, TIMESTAMPDIFF(MICROSECOND, '1970-01-01', "
                    "started_at) DIV 1000, TIMESTAMPDIFF(MICROSECOND, '1970-01-01', ended_at) "
                    "DIV 1000 FROM stats_session WHERE closed_at >= NOW(3) - INTERVAL %lld SECOND "
                    "AND room_id IN (",
                    s->late_s);
        for (size_t i = 0; i < room_cnt; i++) {
                db_text_add(&sql, i ? ", " : "");
                db_text_str(s->db, &sql, rooms[i]);
        }
        db_text_add(&sql, ") FOR UPDATE");
        if ((r = db_text_query(s->db, &sql, cols, 4, on_late_session, &ls, errstr, errstr_size)) !=
                    DB_OK ||
            ls.is_mismatch)
                goto out;
        *is_done = true;
        if (!ls.hit_cnt)
                goto out;
        db_text_reset(&sql);
        db_text_add(&sql, "UPDATE stats_session SET dirty = 1 WHERE session_id IN (");
        for (size_t i = 0; i < ls.hit_cnt; i++)
                db_text_add(&sql, "%s%lld", i ? ", " : "", ls.hits[i]);
        db_text_add(&sql, ")");
        r = db_text_exec(s->db, &sql, NULL, errstr, errstr_size);
out:
        free(rooms);
        free(ls.by_room);
        free(ls.hits);
        db_text_free(&sql);
        return r;
}

enum apply_result sessions_note_tips(struct sessions *s, const struct tip *tips, const bool *is_new,
                                     size_t n, char *errstr, size_t errstr_size)
{
        bool is_done = false;
        enum db_result r = note_tips_by_session(s, tips, is_new, n, &is_done, errstr, errstr_size);

        if (r == DB_OK && !is_done)
                r = note_tips_by_window(s, tips, is_new, n, errstr, errstr_size);
        return apply_from_db(r);
}

enum apply_result sessions_apply_end(struct sessions *s, const struct event *ev, char *errstr,
                                     size_t errstr_size)
{
        long long session, started_ms, ended_ms, duration_s;
        const char *room;

        if (!has_payload(ev, "SessionEnd", errstr, errstr_size))
                return APPLY_PERMANENT;
        session = payload_int_or(ev, "session_id", 0);
        ended_ms = payload_int_or(ev, "ended_at_ms", 0);
        duration_s = payload_int_or(ev, "duration_s", -1);
        /* Unknown ends of the window: from the duration, else an empty window at the end. */
        started_ms = payload_int_or(ev, "started_at_ms",
                                    duration_s >= 0 ? ended_ms - duration_s * 1000 : ended_ms);
        if (duration_s < 0)
                duration_s = (ended_ms - started_ms) / 1000;
        if (session <= 0 || ended_ms <= 0 || started_ms <= 0 || started_ms > ended_ms ||
            !ev->stream_id || !*ev->stream_id) {
                snprintf(errstr, errstr_size,
                         "session.end without stream_id, session_id or a valid window");
                return APPLY_PERMANENT;
        }
        /* The contract's rooms default to the anchor; an unknown room counts no tips. */
        room = ev->room_id ? ev->room_id : ev->anchor_id ? ev->anchor_id : "";
        struct db_param p[] = {
                DB_I64(session),       DB_STR(ev->stream_id),
                DB_STR(ev->anchor_id), DB_STR(room),
                DB_I64(started_ms),    DB_I64(ended_ms),
                DB_I64(duration_s),    DB_I64(payload_int_or(ev, "close_method", 1))};

        return apply_from_db(
                db_exec(s->db, s->upsert_session, p, 8, NULL, NULL, errstr, errstr_size));
}

/* ------------------------------------------------------------------ computing */

int sessions_refresh(struct sessions *s, int max, char *errstr, size_t errstr_size)
{
        long long after = 0;
        int done = 0;

        /* In session_id order from the start each time, so one failing session holds up
         * only itself; it is tried again on the next call. */
        while (done < max) {
                struct db_param p[] = {DB_I64(after)};
                struct db_col col = {.type = DB_PARAM_I64};
                bool found = false, computed = false;
                enum db_result r = db_query_row(s->db, s->next_dirty, p, 1, &col, 1, &found, errstr,
                                                errstr_size);

                if (r != DB_OK)
                        return -1;
                if (!found)
                        break;
                after = col.i;
                if ((r = session_stats_compute(s->stats, after, true, &computed, NULL, errstr,
                                               errstr_size)) == DB_RETRY)
                        return -1;
                if (r != DB_OK) {
                        log_error(NULL, "live_statistics session=%lld: %s (tried again later)",
                                  after, errstr);
                        continue;
                }
                if (computed) {
                        metric_add(s->m_computed, 1);
                        done++;
                }
        }
        return done;
}
