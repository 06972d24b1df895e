/* record.c: recording files and recording states (live.record) into live_records and live_events.
 */
#include "record.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "ledger.h"
#include "log.h"

static const char *const record_topics[] = {LF_TOPIC_RECORD, NULL};

/*
 * A file belongs to the session whose span holds its time t. The begin callback may be
 * stamped a little after the recording started, and the last file of a session is often
 * reported a little after the interrupt, hence the slack on each side.
 */
#define SESSION_HOLDS(t)                                                                           \
        "s.session_id IS NOT NULL AND s.started_at IS NOT NULL AND " t                             \
        " >= s.started_at - INTERVAL 5 SECOND AND (s.ended_at IS NULL OR " t                       \
        " <= s.ended_at + INTERVAL 60 SECOND)"

#define SWEEP_EVERY_MS 5000

struct record_state {
        struct db *db;
        long long last_sweep_ms;
        struct ledger *ledger;
        struct db_stmt *find_session, *upsert_file, *link_sweep;
};

/* A record.file as its RecordFile payload gives it; numbers are -1 when unknown. */
struct record_file {
        const char *file_id;
        const char *video_url;
        const char *file_format;
        const char *session_key;
        long long start_ms, end_ms, duration_s, file_size;
};

static int prepare(struct record_state *st)
{
        struct db *db = st->db;

        st->ledger = ledger_new(db, "record");
        st->find_session = db_stmt(
                db,
                "SELECT s.session_id FROM live_streams s WHERE s.stream_id = ? AND " SESSION_HOLDS(
                        "FROM_UNIXTIME(? / 1000)"));
        /* A known file keeps what it has; only a session it lacked may be filled in. */
        st->upsert_file = db_stmt(
                db,
                "INSERT INTO live_records (file_id, stream_id, session_id, session_key, vendor, video_url, "
                "file_format, duration_s, file_size, start_time, end_time, trace_id) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(? / 1000), ?) "
                "ON DUPLICATE KEY UPDATE session_id = IF(stream_id = VALUES(stream_id), "
                "COALESCE(session_id, VALUES(session_id)), session_id)");
        /* Files that came before their session's begin; the receive time stands in for a file
         * without times. */
        st->link_sweep = db_stmt(
                db,
                "UPDATE live_records r STRAIGHT_JOIN live_streams s ON s.stream_id = r.stream_id "
                "SET r.session_id = s.session_id WHERE r.session_id IS NULL "
                "AND r.created_at > NOW(3) - INTERVAL 1 DAY AND " SESSION_HOLDS(
                        "COALESCE(r.start_time, r.end_time, r.created_at)"));
        return st->ledger && st->find_session && st->upsert_file && st->link_sweep ? 0 : -1;
}

static int record_open(const struct role_env *env, void **state, char *errstr, size_t errstr_size)
{
        struct record_state *st = calloc(1, sizeof(*st));

        if (!st) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        st->db = env->db;
        if (prepare(st) == -1) {
                ledger_destroy(st->ledger);
                free(st);
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        *state = st;
        return 0;
}

static void record_close(void *state)
{
        struct record_state *st = state;

        ledger_destroy(st->ledger);
        free(st);
}

/* ------------------------------------------------------------------ reading the event */

static const char *payload_str(const struct event *ev, const char *key)
{
        return json_string_value(json_object_get(ev->payload, key));
}

/* A non-negative integer of the payload, or -1 when it is null, absent or negative. */
static long long payload_count(const struct event *ev, const char *key)
{
        json_t *v = json_object_get(ev->payload, key);

        return json_is_integer(v) && json_integer_value(v) >= 0 ? (long long)json_integer_value(v)
                                                                : -1;
}

static bool is_event(const struct event *ev, const char *event_type, const char *payload_name)
{
        return strcmp(ev->event_type, event_type) == 0 && ev->payload_name &&
               strcmp(ev->payload_name, payload_name) == 0;
}

/* Checks the envelope; *is_file says whether it is a record.file (else a record.status). */
static int read_event(const struct event *ev, bool *is_file, char *errstr, size_t errstr_size)
{
        if (!ev->stream_id || !*ev->stream_id) {
                snprintf(errstr, errstr_size, "event %s has no stream_id", ev->event_type);
                return -1;
        }
        *is_file = is_event(ev, "record.file", "RecordFile");
        if (!*is_file && !is_event(ev, "record.status", "RecordStatus")) {
                snprintf(errstr, errstr_size,
                         "event_type %s with payload %s is not a recording event", ev->event_type,
                         ev->payload_name ? ev->payload_name : "null");
                return -1;
        }
        return 0;
}

static int read_file(const struct event *ev, struct record_file *f, char *errstr,
                     size_t errstr_size)
{
        memset(f, 0, sizeof(*f));
        f->file_id = payload_str(ev, "file_id");
        f->video_url = payload_str(ev, "video_url");
        if (!f->file_id || !*f->file_id || !f->video_url || !*f->video_url) {
                snprintf(errstr, errstr_size, "RecordFile.%s is missing or empty",
                         !f->file_id || !*f->file_id ? "file_id" : "video_url");
                return -1;
        }
        f->file_format = payload_str(ev, "file_format");
        f->session_key = payload_str(ev, "session_key");
        f->start_ms = payload_count(ev, "start_time_ms");
        f->end_ms = payload_count(ev, "end_time_ms");
        f->duration_s = payload_count(ev, "duration_s");
        f->file_size = payload_count(ev, "file_size");
        return 0;
}

/* ------------------------------------------------------------------ applying */

static enum apply_result from_db(enum db_result r)
{
        return r == DB_OK || r == DB_DUPLICATE ? APPLY_DONE
               : r == DB_RETRY                 ? APPLY_RETRY
                                               : APPLY_PERMANENT;
}

static struct db_param count_param(long long v)
{
        return v >= 0 ? DB_I64(v) : DB_NULL;
}

/* The session of the stream that holds t_ms; *session is 0 when none does. */
static enum db_result find_session(struct record_state *st, const char *stream_id, long long t_ms,
                                   long long *session, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(stream_id), DB_I64(t_ms), DB_I64(t_ms)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found;
        enum db_result r =
                db_query_row(st->db, st->find_session, p, 3, &col, 1, &found, errstr, errstr_size);

        *session = r == DB_OK && found && !col.is_null ? col.i : 0;
        return r;
}

/* Inserts the file, or fills in the session of a known one; says which in *outcome. */
static enum db_result store_file(struct record_state *st, const struct consumer_record *rec,
                                 const struct record_file *f, const char **outcome, char *errstr,
                                 size_t errstr_size)
{
        const struct event *ev = &rec->ev;
        /* Where the file sits in time: its start, else its end, else when the vendor reported it.
         */
        long long t_ms = f->start_ms >= 0 ? f->start_ms
                         : f->end_ms >= 0 ? f->end_ms
                                          : ev->event_time_ms;
        long long session;
        unsigned long long affected = 0;
        enum db_result r;

        if ((r = find_session(st, ev->stream_id, t_ms, &session, errstr, errstr_size)) != DB_OK)
                return r;
        struct db_param p[] = {DB_STR(f->file_id),
                               DB_STR(ev->stream_id),
                               session ? DB_I64(session) : DB_NULL,
                               DB_STR(f->session_key),
                               DB_STR(ev->vendor),
                               DB_STR(f->video_url),
                               DB_STR(f->file_format),
                               count_param(f->duration_s),
                               count_param(f->file_size),
                               count_param(f->start_ms),
                               count_param(f->end_ms),
                               DB_STR(ev->trace_id)};

        if ((r = db_exec(st->db, st->upsert_file, p, 12, &affected, NULL, errstr, errstr_size)) !=
            DB_OK)
                return r;
        /* Affected rows: 1 inserted, 2 a known file got its session, 0 a known file as it was. */
        *outcome = affected != 1 ? "duplicate_file" : session ? "applied" : "no_session";
        return DB_OK;
}

static enum db_result record_event(struct record_state *st, const struct consumer_record *rec,
                                   bool *first, char *errstr, size_t errstr_size)
{
        return ledger_record(st->ledger, rec, first, errstr, errstr_size);
}

static enum apply_result record_apply(void *state, struct consumer_record *rec, char *errstr,
                                      size_t errstr_size)
{
        struct record_state *st = state;
        struct record_file f = {0};
        const char *outcome = "applied";
        bool is_file, first;
        enum db_result r;

        if (read_event(&rec->ev, &is_file, errstr, errstr_size) == -1 ||
            (is_file && read_file(&rec->ev, &f, errstr, errstr_size) == -1))
                return APPLY_PERMANENT;
        if ((r = record_event(st, rec, &first, errstr, errstr_size)) != DB_OK)
                return from_db(r);
        if (!first) {
                log_debug(rec->trace_id, "duplicate event %s stream=%s", rec->ev.event_id,
                          rec->ev.stream_id);
                return APPLY_DONE;
        }
        /* A recording state is kept in live_events only: nothing acts on it yet. */
        if (is_file && (r = store_file(st, rec, &f, &outcome, errstr, errstr_size)) != DB_OK)
                return from_db(r);
        if (strcmp(outcome, "applied") != 0) {
                if ((r = ledger_set_outcome(st->ledger, rec->ev.event_id, outcome, errstr,
                                            errstr_size)) != DB_OK)
                        return from_db(r);
        }
        log_info(rec->trace_id, "%s stream=%s file=%s outcome=%s topic=%s partition=%d offset=%lld",
                 rec->ev.event_type, rec->ev.stream_id, is_file ? f.file_id : "-", outcome,
                 rec->topic, rec->partition, rec->offset);
        return APPLY_DONE;
}

/* ------------------------------------------------------------------ the sweep */

/* Links the files that arrived before their session; runs outside any batch (autocommit). */
static void record_tick(void *state, long long now_ms)
{
        struct record_state *st = state;
        unsigned long long linked = 0;
        char errstr[512];

        if (now_ms - st->last_sweep_ms < SWEEP_EVERY_MS)
                return;
        st->last_sweep_ms = now_ms;
        if (db_exec(st->db, st->link_sweep, NULL, 0, &linked, NULL, errstr, sizeof(errstr)) !=
            DB_OK)
                log_warn(NULL, "linking recordings to their sessions: %s (next try in %d s)",
                         errstr, SWEEP_EVERY_MS / 1000);
        else if (linked)
                log_info(NULL, "linked %llu recording(s) to their session", linked);
}

const struct consumer_role record_role = {
        .name = "record",
        .topics = record_topics,
        .open = record_open,
        .apply = record_apply,
        .publish = NULL,
        .tick = record_tick,
        .close = record_close,
};
