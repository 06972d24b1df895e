/* record.c: recording files and recording states (live.record) into live_records and live_events.
 */
#include "record.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "keyset.h"
#include "ledger.h"
#include "notify.h"
#include "settings.h"
#include "log.h"
#include "record_role.h"
#include "role_kit.h"

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

/*
 * The sweep visits at most 500 unlinked files per tick (the runtime ticks about once a
 * second), page after page while pages come full, then waits SWEEP_EVERY_MS and starts again
 * from the oldest: a backlog of files whose streams have no session costs each tick one
 * bounded page, not a scan of the whole day.
 */
#define SWEEP_EVERY_MS  5000
#define SWEEP_PAGE_LAST "499" /* the OFFSET of a page's last row: pages of 500 */
#define SWEEP_START_AT  "1000-01-01 00:00:00.000"
#define SWEEP_END_AT    "9999-12-31 23:59:59.999"

static int prepare(struct record_state *st)
{
        struct db *db = st->db;

        st->ledger = ledger_new(db, "record");
        st->find_session = db_stmt(
                db,
                "SELECT s.session_id FROM live_streams s WHERE s.vendor = ? AND s.stream_id = ? AND " SESSION_HOLDS(
                        "FROM_UNIXTIME(? / 1000)"));
        /* A known file keeps what it has; only a session it lacked may be filled in. */
        st->upsert_file = db_stmt(
                db,
                "INSERT INTO live_records (file_id, stream_id, session_id, session_key, vendor, video_url, "
                "file_format, duration_s, file_size, start_time, end_time, trace_id) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(? / 1000), ?) "
                "ON DUPLICATE KEY UPDATE session_id = IF(stream_id = VALUES(stream_id), "
                "COALESCE(session_id, VALUES(session_id)), session_id)");
        /*
         * Files that came before their session's begin, a page at a time in (created_at,
         * file_id) order along live_records_unlinked (the primary key closes each of its
         * entries): sweep_page_end names the page's last file (no row: the rest of the day
         * fits in one page), link_sweep links the files of (after, upto]. The receive time
         * stands in for a file without times.
         */
#define UNLINKED_AFTER(a, f)                                                                       \
        "r.session_id IS NULL AND r.created_at > NOW(3) - INTERVAL 1 DAY AND (r.created_at > " a   \
        " OR (r.created_at = " a " AND r.file_id > " f "))"
        st->sweep_page_end = db_stmt(
                db,
                "SELECT CAST(r.created_at AS CHAR), r.file_id FROM live_records r "
                "FORCE INDEX (live_records_unlinked) WHERE " UNLINKED_AFTER(
                        "?",
                        "?") " "
                             "ORDER BY r.created_at, r.file_id LIMIT 1 OFFSET " SWEEP_PAGE_LAST);
        st->link_sweep = db_stmt(
                db,
                "UPDATE live_records r FORCE INDEX (live_records_unlinked) STRAIGHT_JOIN "
                "live_streams s ON s.vendor = r.vendor AND s.stream_id = r.stream_id "
                "SET r.session_id = s.session_id WHERE " UNLINKED_AFTER(
                        "?", "?") " AND (r.created_at < ? OR (r.created_at = ? AND "
                                  "r.file_id <= ?)) AND " SESSION_HOLDS("COALESCE(r.start_time, "
                                                                        "r.end_time, "
                                                                        "r.created_at)"));
#undef UNLINKED_AFTER
        return st->ledger && st->find_session && st->upsert_file && st->sweep_page_end &&
                               st->link_sweep
                       ? 0
                       : -1;
}

static int record_open(const struct role_env *env, void **state, char *errstr, size_t errstr_size)
{
        struct record_state *st = calloc(1, sizeof(*st));

        if (!st) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        st->db = env->db;
        snprintf(st->sweep_at, sizeof(st->sweep_at), "%s", SWEEP_START_AT);
        st->srs_playback_base = env->settings->srs_playback_base;
        if (prepare(st) == -1) {
                ledger_destroy(st->ledger);
                free(st);
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (!(st->notify = notify_new(env, errstr, errstr_size))) {
                ledger_destroy(st->ledger);
                free(st);
                return -1;
        }
        role_gate_init(&st->gate, env->metrics, "liveflow_record_batches_total",
                       "Batches of recording events written set-based, by way: unread (written "
                       "without looking the ledger up first), read_first (looked up first, after "
                       "events held before were met), conflict (written unread, met an event "
                       "held before, looked up)");
        *state = st;
        return 0;
}

static void record_close(void *state)
{
        struct record_state *st = state;

        notify_destroy(st->notify);
        ledger_destroy(st->ledger);
        free(st);
}

/*
 * Where the file can be played: a vendor URL as it is; an SRS file path under
 * LIVEFLOW_SRS_PLAYBACK_BASE (the part after ".../html/", SRS's web root, else the path without
 * a leading "./"). NULL when there is none.
 */
static const char *playback_url(const struct record_state *st, const struct event *ev,
                                const char *video_url, char *out, size_t out_size)
{
        const char *path = video_url, *html;
        size_t base_len;

        if (strncmp(video_url, "http://", 7) == 0 || strncmp(video_url, "https://", 8) == 0)
                return video_url;
        if (!ev->vendor || strcmp(ev->vendor, "srs") != 0 || !st->srs_playback_base ||
            !*st->srs_playback_base)
                return NULL;
        if ((html = strstr(path, "/html/")))
                path = html + 6;
        while (*path == '.' || *path == '/')
                path++;
        base_len = strlen(st->srs_playback_base);
        while (base_len > 0 && st->srs_playback_base[base_len - 1] == '/')
                base_len--;
        snprintf(out, out_size, "%.*s/%s", (int)base_len, st->srs_playback_base, path);
        return out;
}

/* The record.ready of a file recorded for the first time; url holds its playback URL. */
struct notify_msg record_file_msg(struct record_state *st, struct consumer_record *rec,
                                  const struct record_file *f, long long session, char *url,
                                  size_t url_size)
{
        struct notify_msg m = notify_msg_init("record.ready", f->file_id, rec->ev.event_time_ms);

        m.anchor_id = rec->ev.anchor_id;
        m.room_id = rec->ev.room_id;
        m.stream_id = rec->ev.stream_id;
        m.session_id = session;
        m.file_id = f->file_id;
        m.duration_s = f->duration_s;
        m.playback_url = playback_url(st, &rec->ev, f->video_url, url, url_size);
        rec->publish = true;
        return m;
}

/* live.notify record.ready for a file recorded for the first time (once per file). */
static enum db_result notify_file(struct record_state *st, struct consumer_record *rec,
                                  const struct record_file *f, long long session, char *errstr,
                                  size_t errstr_size)
{
        char url[2400];
        struct notify_msg m = record_file_msg(st, rec, f, session, url, sizeof(url));

        return notify_record(st->notify, &m, errstr, errstr_size);
}

/* ------------------------------------------------------------------ reading the event */

/* Checks the envelope; *is_file says whether it is a record.file (else a record.status). */
int record_read_event(const struct event *ev, bool *is_file, char *errstr, size_t errstr_size)
{
        if (!ev->stream_id || !*ev->stream_id) {
                snprintf(errstr, errstr_size, "event %s has no stream_id", ev->event_type);
                return -1;
        }
        *is_file = event_is(ev, "record.file", "RecordFile");
        if (!*is_file && !event_is(ev, "record.status", "RecordStatus")) {
                snprintf(errstr, errstr_size,
                         "event_type %s with payload %s is not a recording event", ev->event_type,
                         ev->payload_name ? ev->payload_name : "null");
                return -1;
        }
        return 0;
}

int record_read_file(const struct event *ev, struct record_file *f, char *errstr,
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
        f->start_ms = payload_count(ev, "start_time_ms", INT64_MAX);
        f->end_ms = payload_count(ev, "end_time_ms", INT64_MAX);
        f->duration_s = payload_count(ev, "duration_s", INT64_MAX);
        f->file_size = payload_count(ev, "file_size", INT64_MAX);
        return 0;
}

/* ------------------------------------------------------------------ applying */

static struct db_param count_param(long long v)
{
        return v >= 0 ? DB_I64(v) : DB_NULL;
}

/* The session of the stream that holds t_ms; *session is 0 when none does. */
static enum db_result find_session(struct record_state *st, const struct event *ev, long long t_ms,
                                   long long *session, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(ev->vendor), DB_STR(ev->stream_id), DB_I64(t_ms),
                               DB_I64(t_ms)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found;
        enum db_result r =
                db_query_row(st->db, st->find_session, p, 4, &col, 1, &found, errstr, errstr_size);

        *session = r == DB_OK && found && !col.is_null ? col.i : 0;
        return r;
}

/* Where the file sits in time: its start, else its end, else when the vendor reported it. */
long long record_file_time(const struct event *ev, const struct record_file *f)
{
        return f->start_ms >= 0 ? f->start_ms : f->end_ms >= 0 ? f->end_ms : ev->event_time_ms;
}

/* Inserts the file, or fills in the session of a known one; says which in *outcome. */
static enum db_result store_file(struct record_state *st, struct consumer_record *rec,
                                 const struct record_file *f, const char **outcome, char *errstr,
                                 size_t errstr_size)
{
        const struct event *ev = &rec->ev;
        long long t_ms = record_file_time(ev, f);
        long long session;
        unsigned long long affected = 0;
        enum db_result r;

        if ((r = find_session(st, ev, t_ms, &session, errstr, errstr_size)) != DB_OK)
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
        if (affected == 1)
                return notify_file(st, rec, f, session, errstr, errstr_size);
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

        if (record_read_event(&rec->ev, &is_file, errstr, errstr_size) == -1 ||
            (is_file && record_read_file(&rec->ev, &f, errstr, errstr_size) == -1))
                return APPLY_PERMANENT;
        if ((r = record_event(st, rec, &first, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        if (!first) {
                log_debug(rec->trace_id, "duplicate event %s stream=%s", rec->ev.event_id,
                          rec->ev.stream_id);
                return APPLY_DONE;
        }
        /* A recording state is kept in live_events only: nothing acts on it yet. */
        if (is_file && (r = store_file(st, rec, &f, &outcome, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        if (strcmp(outcome, "applied") != 0) {
                if ((r = ledger_set_outcome(st->ledger, rec->ev.event_id, outcome, errstr,
                                            errstr_size)) != DB_OK)
                        return apply_from_db(r);
        }
        consumer_log_applied(rec, (const char *const[]){"stream", rec->ev.stream_id, "file",
                                                        is_file ? f.file_id : NULL, "outcome",
                                                        outcome, NULL});
        return APPLY_DONE;
}

/* ------------------------------------------------------------------ the sweep */

/* After the commit: the live.notify records of the files the batch recorded. */
static int record_publish(void *state, struct consumer_record *rec, char *errstr,
                          size_t errstr_size)
{
        struct record_state *st = state;

        (void)rec;
        return notify_flush(st->notify, false, errstr, errstr_size);
}

/* The same for a whole batch: one relay of what it recorded (notify.h), not one per file. */
static int record_publish_many(void *state, struct consumer_record *const *recs, size_t n,
                               char *errstr, size_t errstr_size)
{
        struct record_state *st = state;

        (void)recs;
        (void)n;
        return notify_flush(st->notify, false, errstr, errstr_size);
}

/* One page of the sweep: links what it can of the unlinked files after the cursor. */
static void sweep_page(struct record_state *st)
{
        char end_at[32] = "", end_file[513] = "", errstr[512];
        struct db_col cols[] = {
                {.type = DB_PARAM_STR, .s = end_at, .s_size = sizeof(end_at)},
                {.type = DB_PARAM_STR, .s = end_file, .s_size = sizeof(end_file)},
        };
        const struct db_param after[] = {DB_STR(st->sweep_at), DB_STR(st->sweep_at),
                                         DB_STR(st->sweep_file)};
        unsigned long long linked = 0;
        bool full = false;

        if (db_query_row(st->db, st->sweep_page_end, after, 3, cols, 2, &full, errstr,
                         sizeof(errstr)) != DB_OK)
                goto failed;
        if (!full) {
                snprintf(end_at, sizeof(end_at), "%s", SWEEP_END_AT);
                end_file[0] = '\0';
        }
        const struct db_param range[] = {
                DB_STR(st->sweep_at), DB_STR(st->sweep_at), DB_STR(st->sweep_file),
                DB_STR(end_at),       DB_STR(end_at),       DB_STR(end_file),
        };
        if (db_exec(st->db, st->link_sweep, range, 6, &linked, NULL, errstr, sizeof(errstr)) !=
            DB_OK)
                goto failed;
        if (linked)
                log_info(NULL, "linked %llu recording(s) to their session", linked);
        st->sweep_more = full;
        snprintf(st->sweep_at, sizeof(st->sweep_at), "%s", full ? end_at : SWEEP_START_AT);
        snprintf(st->sweep_file, sizeof(st->sweep_file), "%s", full ? end_file : "");
        return;
failed:
        st->sweep_more = false;
        log_warn(NULL, "linking recordings to their sessions: %s (next try in %d s)", errstr,
                 SWEEP_EVERY_MS / 1000);
}

/* Links the files that arrived before their session; runs outside any batch (autocommit). */
static void record_tick(void *state, long long now_ms)
{
        struct record_state *st = state;
        char errstr[512];

        if (notify_flush(st->notify, false, errstr, sizeof(errstr)) == -1)
                log_warn(NULL, "live.notify: %s (tried again)", errstr);
        if (!st->sweep_more && now_ms - st->last_sweep_ms < SWEEP_EVERY_MS)
                return;
        st->last_sweep_ms = now_ms;
        sweep_page(st);
}

const struct consumer_role record_role = {
        .name = "record",
        .topics = record_topics,
        .open = record_open,
        .apply = record_apply,
        .apply_many = record_apply_many,
        .publish = record_publish,
        .publish_many = record_publish_many,
        .tick = record_tick,
        .close = record_close,
};
