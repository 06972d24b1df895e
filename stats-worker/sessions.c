/* sessions.c: session.end and viewer events into stats_session and live_statistics. */
#include "sessions.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
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

enum apply_result sessions_note_tips(struct sessions *s, const struct tip *tips, const bool *is_new,
                                     size_t n, char *errstr, size_t errstr_size)
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
