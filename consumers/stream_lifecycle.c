/* stream_lifecycle.c: stream begin, end and forced close into live_streams and the live Redis keys
 * (the batch path: stream_batch.c; tick(), the ghost sweep: stream_sweep.c). */
#include "stream_lifecycle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "crypto.h"
#include "db.h"
#include "ids.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "rebuild.h"
#include "redis_conn.h"
#include "role_kit.h"
#include "session_handoff.h"
#include "settings.h"
#include "signals.h"
#include "stream_close.h"
#include "stream_role.h"
#include "vendor_api.h"

static const char *const stream_topics[] = {LF_TOPIC_STREAM, NULL};

#define STR_(x)         #x
#define STR(x)          STR_(x)
#define GHOST_LIMIT_SQL STR(GHOST_SWEEP_LIMIT)

#define EPOCH_MS(col) "CAST(UNIX_TIMESTAMP(" col ") * 1000 AS SIGNED)"

static int prepare(struct stream_state *st)
{
        struct db *db = st->db;

        st->ledger = ledger_new(db, "stream");
        /* This role projects streams only: the session counters' TTL is not used. */
        st->rebuild = rebuild_new(db, st->redis, st->live_ttl_s, 0);
        st->lock_row = db_stmt(
                db,
                "SELECT vendor_session, status, " EPOCH_MS("started_at") ", " EPOCH_MS(
                        "ended_at") ", session_id FROM live_streams WHERE vendor = ? AND stream_id = ? FOR UPDATE");
        st->insert_live = db_stmt(
                db,
                "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, vendor_session, "
                "status, started_at, last_event_at) VALUES (?, ?, ?, ?, ?, ?, 'live', FROM_UNIXTIME(? / 1000), NOW(3))");
        st->new_session = db_stmt(
                db,
                "UPDATE live_streams SET anchor_id = ?, room_id = ?, session_id = ?, vendor = ?, vendor_session = ?, "
                "status = 'live', started_at = FROM_UNIXTIME(? / 1000), ended_at = NULL, duration_s = NULL, "
                "close_method = NULL, close_reason = NULL, last_event_at = NOW(3) "
                "WHERE vendor = ? AND stream_id = ?");
        /* The end came first: the begin supplies the real start and so the real duration. */
        st->late_begin = db_stmt(
                db,
                "UPDATE live_streams SET started_at = FROM_UNIXTIME(? / 1000), "
                "duration_s = GREATEST(0, TIMESTAMPDIFF(SECOND, FROM_UNIXTIME(? / 1000), ended_at)), "
                "anchor_id = COALESCE(anchor_id, ?), room_id = COALESCE(room_id, ?), last_event_at = NOW(3) "
                "WHERE vendor = ? AND stream_id = ?");
        st->insert_ended = db_stmt(
                db,
                "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, vendor_session, "
                "status, started_at, ended_at, duration_s, close_method, close_reason, last_event_at) VALUES "
                "(?, ?, ?, ?, ?, ?, 'ended', FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(? / 1000), ?, ?, ?, NOW(3)) "
                "ON DUPLICATE KEY UPDATE anchor_id = VALUES(anchor_id), room_id = VALUES(room_id), "
                "session_id = VALUES(session_id), vendor = VALUES(vendor), vendor_session = VALUES(vendor_session), "
                "status = 'ended', started_at = VALUES(started_at), ended_at = VALUES(ended_at), "
                "duration_s = VALUES(duration_s), close_method = VALUES(close_method), "
                "close_reason = VALUES(close_reason), last_event_at = NOW(3)");
        st->end_session = db_stmt(
                db,
                "UPDATE live_streams SET status = 'ended', ended_at = FROM_UNIXTIME(? / 1000), duration_s = ?, "
                "close_method = ?, close_reason = ?, last_event_at = NOW(3) "
                "WHERE vendor = ? AND stream_id = ?");
        st->event_outcome = db_stmt(
                db, "SELECT outcome FROM live_events WHERE consumer = 'stream' AND event_id = ?");
        /* No row is an active anchor; a suspension is judged at the begin's event time. */
        st->anchor_state = db_stmt(
                db,
                "SELECT status = 'banned', status = 'suspended' AND suspended_until IS NOT NULL AND "
                "suspended_until > FROM_UNIXTIME(? / 1000) FROM anchors WHERE anchor_id = ?");
        st->touch = db_stmt(db, "UPDATE live_streams SET last_event_at = NOW(3) "
                                "WHERE vendor = ? AND stream_id = ?");
        st->adopt_tips = db_stmt(
                db,
                "UPDATE recharge r JOIN live_streams s ON s.vendor = ? AND s.stream_id = ? "
                "SET r.session_id = s.session_id WHERE r.session_id IS NULL "
                "AND r.room_id = COALESCE(s.room_id, s.anchor_id) AND s.session_id IS NOT NULL "
                "AND s.started_at IS NOT NULL AND r.tipped_at BETWEEN s.started_at AND s.ended_at");
        st->adopt_anchor =
                db_stmt(db, "UPDATE live_streams SET anchor_id = COALESCE(anchor_id, ?), "
                            "room_id = COALESCE(room_id, ?), last_event_at = NOW(3) "
                            "WHERE vendor = ? AND stream_id = ?");
        /* Served by live_streams_status (status, last_event_at). */
        /*
         * Silent streams: no stream event for the silence (live_streams_status) and no other
         * sign of life for as long either: a screenshot, a recording, a viewer still watching, an
         * interaction in the room.
         */
        st->ghosts = db_stmt(
                db, "SELECT stream_id, anchor_id, room_id, vendor_session, session_id, "
                    "TIMESTAMPDIFF(SECOND, sign, NOW(3)), vendor FROM (SELECT s.stream_id, "
                    "s.anchor_id, s.room_id, s.vendor_session, s.session_id, s.vendor, "
                    "GREATEST(s.last_event_at, "
                    "COALESCE((SELECT MAX(p.taken_at) FROM live_snapshots p WHERE p.stream_id = "
                    "s.stream_id), s.last_event_at), "
                    "COALESCE((SELECT MAX(r.created_at) FROM live_records r WHERE r.stream_id = "
                    "s.stream_id), s.last_event_at), "
                    "COALESCE((SELECT MAX(v.last_seen_at) FROM audience_visit v WHERE "
                    "v.stream_id = s.stream_id AND v.is_open = 1), s.last_event_at), "
                    "COALESCE((SELECT MAX(m.minute) + INTERVAL 1 MINUTE FROM audience_room_minute "
                    "m WHERE m.room_id = s.room_id), s.last_event_at)) AS sign "
                    "FROM live_streams s WHERE s.status = 'live' AND s.last_event_at < NOW(3) - "
                    "INTERVAL ? SECOND) g WHERE sign < NOW(3) - INTERVAL ? SECOND "
                    "ORDER BY sign LIMIT " GHOST_LIMIT_SQL);
        /*
         * The vendor of a stream named by liveflow itself or an operator (a forced close, a
         * ghost, a cut-off): the stream live under that id, else the one touched last.
         */
        st->vendor_of = db_stmt(db, "SELECT vendor FROM live_streams WHERE stream_id = ? "
                                    "ORDER BY status = 'live' DESC, last_event_at DESC LIMIT 1");
        return st->ledger && st->rebuild && st->lock_row && st->insert_live && st->new_session &&
                               st->late_begin && st->insert_ended && st->end_session &&
                               st->event_outcome && st->anchor_state && st->touch &&
                               st->adopt_anchor && st->vendor_of && st->ghosts && st->adopt_tips
                       ? 0
                       : -1;
}

static int stream_open(const struct role_env *env, void **state, char *errstr, size_t errstr_size)
{
        struct stream_state *st = calloc(1, sizeof(*st));

        /* Lanes of one process share its pid (the worker bits without an instance id). */
        if (!st || !(st->ids = ids_new(ids_worker_from(env->settings->instance_id) +
                                       (unsigned int)env->lane - 1))) {
                free(st);
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (!(st->vendor = vendor_api_new(env->settings, errstr, errstr_size))) {
                ids_destroy(st->ids);
                free(st);
                return -1;
        }
        st->db = env->db;
        st->redis = env->redis;
        rebuild_epoch_init(&st->redis_epoch, "stream");
        st->live_ttl_s = env->settings->live_ttl_s;
        st->ghost_silence_s = env->settings->stream_ghost_silence_s;
        st->ghost_unverified_s = env->settings->stream_ghost_unverified_s;
        st->ghosts_alive = metrics_counter(
                env->metrics, "liveflow_stream_ghosts_alive_total",
                "Silent streams kept live because their vendor said they are live", NULL);
        st->ghosts_deferred = metrics_counter(
                env->metrics, "liveflow_stream_ghosts_deferred_total",
                "Silent streams kept because their vendor could not be asked (yet)", NULL);
        st->ghosts_unverified = metrics_counter(
                env->metrics, "liveflow_stream_ghosts_unverified_total",
                "Silent streams closed without the vendor's word, after the longer silence", NULL);
        st->sweep_interval_ms = env->settings->stream_sweep_interval_s * 1000;
        st->ghosts_closed =
                metrics_counter(env->metrics, "liveflow_stream_ghosts_closed_total",
                                "Live streams the ghost sweep closed after a silence", NULL);
        st->redis_lost = metrics_counter(
                env->metrics, "liveflow_redis_data_lost_total",
                "Times Redis was found without liveflow's data (restarted empty or flushed) and "
                "a rebuild from MySQL was started",
                NULL);
        st->cutoffs = metrics_counter(
                env->metrics, "liveflow_stream_anchor_cutoffs_total",
                "Streams of banned or suspended anchors closed at their begin", NULL);
        role_gate_init(&st->gate, env->metrics, "liveflow_stream_batches_total",
                       "Batches of stream events written set-based, by way: unread (written "
                       "without looking the ledger up first), read_first (looked up first, after "
                       "events held before were met), conflict (written unread, met an event "
                       "held before, looked up)");
        if (prepare(st) == -1) {
                vendor_api_destroy(st->vendor);
                ids_destroy(st->ids);
                ledger_destroy(st->ledger);
                rebuild_destroy(st->rebuild);
                free(st);
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (!(st->handoff = session_handoff_new(env, errstr, errstr_size))) {
                vendor_api_destroy(st->vendor);
                ids_destroy(st->ids);
                free(st);
                return -1;
        }
        if (!(st->closer = stream_close_new(env, errstr, errstr_size)) ||
            !(st->notify = notify_new(env, errstr, errstr_size))) {
                stream_close_destroy(st->closer);
                session_handoff_destroy(st->handoff);
                vendor_api_destroy(st->vendor);
                ids_destroy(st->ids);
                free(st);
                return -1;
        }
        *state = st;
        return 0;
}

static void stream_role_close(void *state)
{
        struct stream_state *st = state;

        notify_destroy(st->notify);
        stream_close_destroy(st->closer);
        session_handoff_destroy(st->handoff);
        vendor_api_destroy(st->vendor);
        ids_destroy(st->ids);
        ledger_destroy(st->ledger);
        rebuild_destroy(st->rebuild);
        free(st);
}

/* ------------------------------------------------------------------ reading the event */

int stream_read_event(const struct event *ev, struct stream_event *se, char *errstr,
                      size_t errstr_size)
{
        memset(se, 0, sizeof(*se));
        se->ev = ev;
        if (!ev->stream_id || !*ev->stream_id) {
                snprintf(errstr, errstr_size, "event %s has no stream_id", ev->event_type);
                return -1;
        }
        se->is_join = strcmp(ev->event_type, "stream.join") == 0;
        se->is_leave = strcmp(ev->event_type, "stream.leave") == 0;
        if ((strcmp(ev->event_type, "stream.begin") == 0 || se->is_join) && ev->payload_name &&
            strcmp(ev->payload_name, "StreamBegin") == 0) {
                se->is_begin = true;
        } else if ((strcmp(ev->event_type, "stream.end") == 0 ||
                    strcmp(ev->event_type, "stream.close") == 0 || se->is_leave) &&
                   ev->payload_name && strcmp(ev->payload_name, "StreamEnd") == 0) {
                se->close_method = (int)payload_int_or(ev, "close_method", 1);
                if (se->close_method < 1 || se->close_method > 3) {
                        snprintf(errstr, errstr_size, "close_method %d is not 1, 2 or 3",
                                 se->close_method);
                        return -1;
                }
        } else {
                snprintf(errstr, errstr_size, "event_type %s with payload %s is not a stream event",
                         ev->event_type, ev->payload_name ? ev->payload_name : "null");
                return -1;
        }
        se->sequence = payload_str(ev, "sequence");
        se->push_duration_ms = payload_int_or(ev, "push_duration_ms", -1);
        return 0;
}

/* ------------------------------------------------------------------ applying */

static enum db_result lock_row(struct stream_state *st, const struct stream_event *se,
                               struct stream_row *row, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(se->vendor), DB_STR(se->ev->stream_id)};
        struct db_col cols[] = {
                {.type = DB_PARAM_STR,
                 .s = row->vendor_session,
                 .s_size = sizeof(row->vendor_session)},
                {.type = DB_PARAM_STR, .s = row->status, .s_size = sizeof(row->status)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
        };
        enum db_result r =
                db_query_row(st->db, st->lock_row, p, 2, cols, 5, &row->found, errstr, errstr_size);

        row->started_ms = cols[2].is_null ? -1 : cols[2].i;
        row->ended_ms = cols[3].is_null ? -1 : cols[3].i;
        row->session_id = cols[4].is_null ? 0 : cols[4].i;
        if (cols[0].is_null)
                row->vendor_session[0] = '\0';
        return r;
}

static bool same_session(const struct stream_row *row, const char *sequence)
{
        return stream_same_session(row->vendor_session, sequence);
}

bool stream_same_session(const char *vendor_session, const char *sequence)
{
        return sequence && vendor_session && vendor_session[0] &&
               strcmp(vendor_session, sequence) == 0;
}

static enum db_result begin_new(struct stream_state *st, const struct stream_event *se, bool exists,
                                char *errstr, size_t errstr_size)
{
        const struct event *ev = se->ev;
        long long session = (long long)ids_next(st->ids);

        if (!exists) {
                struct db_param p[] = {DB_STR(ev->stream_id),    DB_STR(ev->anchor_id),
                                       DB_STR(ev->room_id),      DB_I64(session),
                                       DB_STR(se->vendor),       DB_STR(se->sequence),
                                       DB_I64(ev->event_time_ms)};

                return db_exec(st->db, st->insert_live, p, 7, NULL, NULL, errstr, errstr_size);
        }
        struct db_param p[] = {DB_STR(ev->anchor_id), DB_STR(ev->room_id),
                               DB_I64(session),       DB_STR(se->vendor),
                               DB_STR(se->sequence),  DB_I64(ev->event_time_ms),
                               DB_STR(se->vendor),    DB_STR(ev->stream_id)};

        return db_exec(st->db, st->new_session, p, 8, NULL, NULL, errstr, errstr_size);
}

/* Decides what a begin means given the row; returns the outcome recorded in live_events. */
static const char *apply_begin(struct stream_state *st, const struct stream_event *se,
                               const struct stream_row *row, enum db_result *r, char *errstr,
                               size_t errstr_size)
{
        const struct event *ev = se->ev;
        long long newest = row->ended_ms > row->started_ms ? row->ended_ms : row->started_ms;

        if (se->is_join && row->found && strcmp(row->status, "live") == 0) {
                /* A co-host in a live room: recorded; the room's anchor if it had none yet. */
                struct db_param p[] = {DB_STR(ev->anchor_id), DB_STR(ev->room_id),
                                       DB_STR(se->vendor), DB_STR(ev->stream_id)};

                *r = db_exec(st->db, st->adopt_anchor, p, 4, NULL, NULL, errstr, errstr_size);
                return "cohost_join";
        }
        if (!row->found || (!same_session(row, se->sequence) && ev->event_time_ms >= newest)) {
                *r = begin_new(st, se, row->found, errstr, errstr_size);
                return "applied";
        }
        if (same_session(row, se->sequence) && strcmp(row->status, "ended") == 0) {
                struct db_param p[] = {DB_I64(ev->event_time_ms), DB_I64(ev->event_time_ms),
                                       DB_STR(ev->anchor_id),     DB_STR(ev->room_id),
                                       DB_STR(se->vendor),        DB_STR(ev->stream_id)};

                *r = db_exec(st->db, st->late_begin, p, 6, NULL, NULL, errstr, errstr_size);
                return "late_begin";
        }
        *r = DB_OK;
        return same_session(row, se->sequence) ? "already_live" : "stale";
}

long long stream_duration_s(const struct stream_event *se, long long started_ms)
{
        long long d;

        if (started_ms >= 0)
                d = (se->ev->event_time_ms - started_ms) / 1000;
        else
                d = se->push_duration_ms >= 0 ? se->push_duration_ms / 1000 : 0;
        return d < 0 ? 0 : d;
}

/*
 * live_streams.close_reason: the close's own reason (an operator's, moderation's, a ghost
 * sweep's), else what its close_method says.
 */
const char *stream_close_reason(const struct stream_event *se)
{
        const char *reason = payload_str(se->ev, "reason");

        if (reason && *reason)
                return reason;
        return se->close_method == 2   ? "closed by an operator"
               : se->close_method == 3 ? "audit punishment"
                                       : "ended by the stream";
}

/* A close the ghost sweep sent (it also drops the stream at the vendor). */
bool stream_is_ghost_close(const struct event *ev)
{
        const char *reason = payload_str(ev, "reason");

        return ev->vendor && strcmp(ev->vendor, "liveflow") == 0 && reason &&
               strncmp(reason, "ghost", 5) == 0;
}

static enum db_result insert_ended(struct stream_state *st, const struct stream_event *se,
                                   char *errstr, size_t errstr_size)
{
        const struct event *ev = se->ev;
        struct db_param started = se->push_duration_ms >= 0
                                          ? DB_I64(ev->event_time_ms - se->push_duration_ms)
                                          : DB_NULL;
        struct db_param p[] = {DB_STR(ev->stream_id),
                               DB_STR(ev->anchor_id),
                               DB_STR(ev->room_id),
                               DB_I64(ids_next(st->ids)),
                               DB_STR(se->vendor),
                               DB_STR(se->sequence),
                               started,
                               DB_I64(ev->event_time_ms),
                               DB_I64(stream_duration_s(se, -1)),
                               DB_I64(se->close_method),
                               DB_STR(stream_close_reason(se))};

        return db_exec(st->db, st->insert_ended, p, 11, NULL, NULL, errstr, errstr_size);
}

static const char *apply_end(struct stream_state *st, const struct stream_event *se,
                             const struct stream_row *row, enum db_result *r, char *errstr,
                             size_t errstr_size)
{
        const struct event *ev = se->ev;
        bool live = row->found && strcmp(row->status, "live") == 0;

        *r = DB_OK;
        if (!row->found) {
                *r = insert_ended(st, se, errstr, errstr_size);
                return "end_before_begin";
        }
        if (live && (!se->sequence || same_session(row, se->sequence) ||
                     ev->event_time_ms >= row->started_ms)) {
                struct db_param p[] = {
                        DB_I64(ev->event_time_ms), DB_I64(stream_duration_s(se, row->started_ms)),
                        DB_I64(se->close_method),  DB_STR(stream_close_reason(se)),
                        DB_STR(se->vendor),        DB_STR(ev->stream_id)};

                *r = db_exec(st->db, st->end_session, p, 6, NULL, NULL, errstr, errstr_size);
                return "applied";
        }
        if (!live && se->sequence && !same_session(row, se->sequence) &&
            ev->event_time_ms > row->ended_ms && ev->event_time_ms > row->started_ms) {
                *r = insert_ended(st, se, errstr, errstr_size);
                return "end_before_begin";
        }
        return live ? "stale" : "already_ended";
}

static enum db_result record_event(struct stream_state *st, const struct consumer_record *rec,
                                   bool *first, char *errstr, size_t errstr_size)
{
        return ledger_record(st->ledger, rec, first, errstr, errstr_size);
}

/*
 * A forced close seen again (a replay, or a redelivery after a crash between the commit and
 * the vendor call) repeats the vendor drop when the first time ended a live session; a begin
 * that made a banned or suspended anchor live repeats the cut-off (publish() sends it only
 * while the stream is still live).
 */
static enum db_result replayed_event(struct stream_state *st, struct consumer_record *rec,
                                     const struct stream_event *se, char *errstr,
                                     size_t errstr_size)
{
        char outcome[33] = "";
        struct db_param p[] = {DB_STR(rec->ev.event_id)};
        struct db_col col = {.type = DB_PARAM_STR, .s = outcome, .s_size = sizeof(outcome)};
        bool found = false;
        enum db_result r;

        if (!se->is_begin && se->close_method < 2 && !stream_is_ghost_close(&rec->ev))
                return DB_OK;
        r = db_query_row(st->db, st->event_outcome, p, 1, &col, 1, &found, errstr, errstr_size);
        if (r != DB_OK || !found || col.is_null)
                return r;
        if (!se->is_begin && strcmp(outcome, "applied") == 0)
                rec->note = NOTE_VENDOR_DROP;
        else if (se->is_begin && strcmp(outcome, OUTCOME_CUTOFF_BANNED) == 0)
                rec->note = NOTE_CUTOFF_BANNED;
        else if (se->is_begin && strcmp(outcome, OUTCOME_CUTOFF_SUSPENDED) == 0)
                rec->note = NOTE_CUTOFF_SUSPENDED;
        return r;
}

/*
 * For a begin that made the stream live: the anchor's standing in this transaction. A
 * banned anchor, or one suspended beyond the begin's event time, is to be cut off; no
 * anchors row is an active anchor. @returns the outcome to record instead of "applied".
 */
static const char *check_anchor(struct stream_state *st, struct consumer_record *rec,
                                enum db_result *r, char *errstr, size_t errstr_size)
{
        const struct event *ev = &rec->ev;
        struct db_param p[] = {DB_I64(ev->event_time_ms), DB_STR(ev->anchor_id)};
        struct db_col cols[] = {{.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}};
        bool found = false;

        *r = DB_OK;
        if (!ev->anchor_id || !*ev->anchor_id)
                return "applied";
        if ((*r = db_query_row(st->db, st->anchor_state, p, 2, cols, 2, &found, errstr,
                               errstr_size)) != DB_OK ||
            !found)
                return "applied";
        if (!cols[0].is_null && cols[0].i) {
                rec->note = NOTE_CUTOFF_BANNED;
                return OUTCOME_CUTOFF_BANNED;
        }
        if (!cols[1].is_null && cols[1].i) {
                rec->note = NOTE_CUTOFF_SUSPENDED;
                return OUTCOME_CUTOFF_SUSPENDED;
        }
        return "applied";
}

/*
 * An end that ended a live session, an end whose begin never came (the session is recorded
 * ended, and is summarised with what is known), or a begin that supplied the start of an
 * ended one.
 */
bool stream_ends_session(const struct stream_event *se, const char *outcome)
{
        if (se->is_begin)
                return strcmp(outcome, "late_begin") == 0;
        return strcmp(outcome, "applied") == 0 || strcmp(outcome, "end_before_begin") == 0;
}

/*
 * A session recorded from its end alone (its begin never came): the room's tips that
 * reward-sync could give no session, within the window the end's push duration gives, become
 * the session's, so its settlement summary counts them. Tips recorded after this (reward-sync
 * is a separate consumer) stay without a session.
 */
static enum db_result adopt_tips(struct stream_state *st, const struct stream_event *se,
                                 char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(se->vendor), DB_STR(se->ev->stream_id)};

        return db_exec(st->db, st->adopt_tips, p, 2, NULL, NULL, errstr, errstr_size);
}

/* A vendor's own callbacks name their vendor; liveflow's and operators' closes do not. */
bool stream_is_stream_vendor(const char *vendor)
{
        static const char *const others[] = {"liveflow", "admin", "internal"};

        for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
                if (strcmp(vendor, others[i]) == 0)
                        return false;
        return true;
}

/* The vendor a close by liveflow names in its raw JSON ({"vendor": ...}); false when none. */
static bool named_vendor(const struct event *ev, char *out, size_t out_size)
{
        json_t *raw = ev->raw_len ? json_loadb(ev->raw, ev->raw_len, 0, NULL) : NULL;
        const char *v = json_string_value(json_object_get(raw, "vendor"));
        bool is_named = v && *v && strlen(v) < out_size && stream_is_stream_vendor(v);

        if (is_named)
                snprintf(out, out_size, "%s", v);
        json_decref(raw);
        return is_named;
}

/*
 * se->vendor: the event's own; for a close by liveflow or an operator, the vendor it names
 * (an audit punishment does), else the stream's live under that id.
 */
static enum db_result resolve_vendor(struct stream_state *st, struct stream_event *se, char *errstr,
                                     size_t errstr_size)
{
        struct db_param p[] = {DB_STR(se->ev->stream_id)};
        struct db_col col = {
                .type = DB_PARAM_STR, .s = se->vendor_buf, .s_size = sizeof(se->vendor_buf)};
        bool found = false;
        enum db_result r;

        se->vendor = se->ev->vendor;
        if (stream_is_stream_vendor(se->ev->vendor))
                return DB_OK;
        if (named_vendor(se->ev, se->vendor_buf, sizeof(se->vendor_buf))) {
                se->vendor = se->vendor_buf;
                return DB_OK;
        }
        r = db_query_row(st->db, st->vendor_of, p, 1, &col, 1, &found, errstr, errstr_size);
        if (r == DB_OK && found && !col.is_null)
                se->vendor = se->vendor_buf;
        return r;
}

static enum apply_result stream_apply(void *state, struct consumer_record *rec, char *errstr,
                                      size_t errstr_size)
{
        struct stream_state *st = state;
        struct stream_event se;
        struct stream_row row;
        enum db_result r;
        const char *outcome;
        bool first, is_only_end;

        if (stream_read_event(&rec->ev, &se, errstr, errstr_size) == -1)
                return APPLY_PERMANENT;
        if ((r = record_event(st, rec, &first, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        rec->publish = true; /* a replay re-projects Redis from MySQL: harmless and self-healing */
        rec->note = 0;
        if (!first) {
                log_debug(rec->trace_id, "duplicate event %s stream=%s", rec->ev.event_id,
                          rec->ev.stream_id);
                return apply_from_db(replayed_event(st, rec, &se, errstr, errstr_size));
        }
        if (se.is_leave) { /* a co-host left: the room's session ends with the room */
                rec->note |= NOTE_NO_HANDOFF;
                return apply_from_db(ledger_set_outcome(st->ledger, rec->ev.event_id,
                                                        "cohost_leave", errstr, errstr_size));
        }
        if ((r = resolve_vendor(st, &se, errstr, errstr_size)) != DB_OK ||
            (r = lock_row(st, &se, &row, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        outcome = se.is_begin ? apply_begin(st, &se, &row, &r, errstr, errstr_size)
                              : apply_end(st, &se, &row, &r, errstr, errstr_size);
        if (r != DB_OK)
                return apply_from_db(r);
        is_only_end = !se.is_begin && strcmp(outcome, "end_before_begin") == 0;
        if (se.is_begin && strcmp(outcome, "applied") == 0) {
                outcome = check_anchor(st, rec, &r, errstr, errstr_size);
                if (r != DB_OK)
                        return apply_from_db(r);
        }
        if (se.is_begin && strcmp(outcome, "already_live") == 0) {
                /* The vendor said the session is live again: not a ghost. */
                struct db_param p[] = {DB_STR(se.vendor), DB_STR(rec->ev.stream_id)};

                if ((r = db_exec(st->db, st->touch, p, 2, NULL, NULL, errstr, errstr_size)) !=
                    DB_OK)
                        return apply_from_db(r);
        }
        if (!se.is_begin && (se.close_method >= 2 || stream_is_ghost_close(&rec->ev)) &&
            strcmp(outcome, "applied") == 0)
                rec->note = NOTE_VENDOR_DROP; /* this close ended a live session */
        if (is_only_end && (r = adopt_tips(st, &se, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        if (stream_ends_session(&se, outcome) &&
            (r = session_handoff_record(st->handoff, rec->ev.event_id, rec->ev.stream_id, errstr,
                                        errstr_size)) != DB_OK)
                return apply_from_db(r);
        /* live.notify: the fans' "went live" and the room's "closed", once per session. */
        if ((se.is_begin && strcmp(outcome, "applied") == 0) ||
            (!se.is_begin && stream_ends_session(&se, outcome)))
                r = notify_record_stream(st->notify, se.is_begin ? "stream.live" : "stream.ended",
                                         rec->ev.stream_id, rec->ev.event_time_ms, errstr,
                                         errstr_size);
        if (r != DB_OK)
                return apply_from_db(r);
        if (strcmp(outcome, "applied") != 0) {
                if ((r = ledger_set_outcome(st->ledger, rec->ev.event_id, outcome, errstr,
                                            errstr_size)) != DB_OK)
                        return apply_from_db(r);
        }
        if (!stream_ends_session(&se, outcome))
                rec->note |= NOTE_NO_HANDOFF;
        consumer_log_applied(
                rec, (const char *const[]){"stream", rec->ev.stream_id, "outcome", outcome, NULL});
        return APPLY_DONE;
}

/* ------------------------------------------------------------------ Redis projection */

/* Cuts the push at the vendor; a stream the vendor no longer has, or no API for it, is fine. */
static int drop_at_vendor(struct stream_state *st, const struct consumer_record *rec,
                          const char *vendor, char *errstr, size_t errstr_size)
{
        enum vendor_drop r = vendor_api_drop_stream(st->vendor, vendor, rec->ev.stream_id,
                                                    rec->trace_id, errstr, errstr_size);

        return r == VENDOR_DROP_RETRY || r == VENDOR_DROP_FAILED ? -1 : 0;
}

/*
 * Closes the stream a banned or suspended anchor made live: the close carries the begin's
 * sequence and event time, so it ends that session and no newer one, and its event id is
 * derived from the begin's, so a replayed begin sends the same close.
 */
static int cut_off(struct stream_state *st, const struct consumer_record *rec, char *errstr,
                   size_t errstr_size)
{
        const struct event *ev = &rec->ev;
        const char *reason =
                NOTE_KIND(rec->note) == NOTE_CUTOFF_BANNED ? "anchor banned" : "anchor suspended";
        char key[160], event_id[65];
        int n = snprintf(key, sizeof(key), "cutoff|%s", ev->event_id);

        crypto_sha256_hex(key, (size_t)n < sizeof(key) ? (size_t)n : sizeof(key) - 1, event_id);
        struct stream_close_msg m = {
                .event_id = event_id,
                .stream_id = ev->stream_id,
                .anchor_id = ev->anchor_id,
                .room_id = ev->room_id,
                .sequence = payload_str(ev, "sequence"),
                .trace_id = rec->trace_id,
                .event_time_ms = ev->event_time_ms,
                .close_method = 3,
                .reason = reason,
                .cause = "cutoff",
        };

        if (stream_close_send(st->closer, &m, errstr, errstr_size) == -1)
                return -1;
        metric_add(st->cutoffs, 1);
        log_warn(rec->trace_id,
                 "anchor cut off stream=%s anchor=%s reason=\"%s\" begin=%s event_id=%s",
                 ev->stream_id, ev->anchor_id ? ev->anchor_id : "-", reason, ev->event_id,
                 event_id);
        return 0;
}

/*
 * Makes Redis say what MySQL says about the stream, whatever Redis said before (lib/rebuild.c);
 * then, for a forced close that ended a live session, has the vendor cut the push (unless the
 * stream is live again by now: a newer session must not be cut).
 */
static int stream_publish(void *state, struct consumer_record *rec, char *errstr,
                          size_t errstr_size)
{
        struct stream_state *st = state;
        struct rebuild_stream row;

        if (rebuild_project_stream(st->rebuild, rec->ev.stream_id, &row, errstr, errstr_size) == -1)
                return -1;
        if (!row.found)
                return 0;
        return stream_publish_rest(st, rec, row.status, row.vendor, !(rec->note & NOTE_NO_HANDOFF),
                                   errstr, errstr_size);
}

int stream_publish_rest(struct stream_state *st, struct consumer_record *rec, const char *status,
                        const char *vendor, bool may_hand_off, char *errstr, size_t errstr_size)
{
        int kind = NOTE_KIND(rec->note);

        if (may_hand_off && session_handoff_send(st->handoff, rec->ev.event_id, rec->trace_id,
                                                 errstr, errstr_size) == -1)
                return -1; /* a replayed or retried event sends the same session.end again */
        if (notify_flush(st->notify, false, errstr, errstr_size) == -1)
                return -1;
        if (kind == NOTE_VENDOR_DROP && strcmp(status, "live") != 0)
                return drop_at_vendor(st, rec, vendor, errstr, errstr_size);
        if ((kind == NOTE_CUTOFF_BANNED || kind == NOTE_CUTOFF_SUSPENDED) &&
            strcmp(status, "live") == 0)
                return cut_off(st, rec, errstr, errstr_size);
        return 0;
}

const struct consumer_role stream_lifecycle_role = {
        .name = "stream",
        .topics = stream_topics,
        .open = stream_open,
        .apply = stream_apply,
        .apply_many = stream_apply_many,
        .publish = stream_publish,
        .publish_many = stream_publish_many,
        .tick = stream_tick,
        .close = stream_role_close,
};
