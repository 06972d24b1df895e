/* snapshot.c: screenshots (live.snapshot) into live_snapshots, and the newest one as the stream's
 * cover. */
#include "snapshot.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "keyset.h"
#include "ledger.h"
#include "log.h"
#include "role_kit.h"
#include "snapshot_role.h"

static const char *const snapshot_topics[] = {LF_TOPIC_SNAPSHOT, NULL};

#define TIME_MAX_MS    2147483647000LL /* FROM_UNIXTIME on MariaDB 10.11 stops in 2038 */
#define SWEEP_EVERY_MS 5000

static int prepare(struct snapshot_state *st)
{
        struct db *db = st->db;

        st->ledger = ledger_new(db, "snapshot");
        /* Newer by the picture's time; at equal times the greater URL, so any order ends the same.
         */
        st->set_cover = db_stmt(
                db, "UPDATE live_streams SET cover_url = ?, cover_time = FROM_UNIXTIME(? / 1000) "
                    "WHERE vendor = ? AND stream_id = ? "
                    "AND (cover_time IS NULL OR cover_time < FROM_UNIXTIME(? / 1000) "
                    "OR (cover_time = FROM_UNIXTIME(? / 1000) AND cover_url < ?))");
        /* A stream id is unique per vendor: the screenshot's vendor names whose stream. */
        st->stream_exists =
                db_stmt(db, "SELECT 1 FROM live_streams WHERE vendor = ? AND stream_id = ?");
        st->insert_snapshot = db_stmt(
                db,
                "INSERT INTO live_snapshots (stream_id, vendor, pic_url, pic_full_url, width, height, "
                "file_size, taken_at, event_id, cover_pending) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000), ?, ?) "
                "ON DUPLICATE KEY UPDATE id = id");
        /* The newest snapshot of each stream that now has a row, if it is still pending. */
        st->sweep_cover = db_stmt(
                db,
                "UPDATE live_snapshots p STRAIGHT_JOIN live_streams s "
                "ON s.stream_id = p.stream_id AND s.vendor = p.vendor "
                "SET s.cover_url = COALESCE(p.pic_full_url, p.pic_url), s.cover_time = p.taken_at "
                "WHERE p.cover_pending = 1 AND (s.cover_time IS NULL OR s.cover_time < p.taken_at) "
                "AND p.taken_at = (SELECT MAX(x.taken_at) FROM live_snapshots x "
                "WHERE x.stream_id = p.stream_id AND x.vendor = p.vendor)");
        /*
         * Settled: the cover is at least as new as the snapshot. A row that appeared after the
         * statement above has no such cover yet, so its snapshots wait for the next sweep.
         */
        st->sweep_settle = db_stmt(
                db,
                "UPDATE live_snapshots p STRAIGHT_JOIN live_streams s "
                "ON s.stream_id = p.stream_id AND s.vendor = p.vendor "
                "SET p.cover_pending = NULL WHERE p.cover_pending = 1 AND s.cover_time >= p.taken_at");
        st->sweep_expire =
                db_stmt(db, "UPDATE live_snapshots SET cover_pending = NULL "
                            "WHERE cover_pending = 1 AND created_at < NOW(3) - INTERVAL 1 DAY");
        return st->ledger && st->set_cover && st->stream_exists && st->insert_snapshot &&
                               st->sweep_cover && st->sweep_settle && st->sweep_expire
                       ? 0
                       : -1;
}

static int snapshot_open(const struct role_env *env, void **state, char *errstr, size_t errstr_size)
{
        struct snapshot_state *st = calloc(1, sizeof(*st));

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

static void snapshot_close(void *state)
{
        struct snapshot_state *st = state;

        ledger_destroy(st->ledger);
        free(st);
}

/* ------------------------------------------------------------------ reading the event */

int snapshot_read_event(const struct event *ev, struct snapshot *sn, char *errstr,
                        size_t errstr_size)
{
        json_t *taken = json_object_get(ev->payload, "create_time_ms");

        memset(sn, 0, sizeof(*sn));
        if (!ev->stream_id || !*ev->stream_id) {
                snprintf(errstr, errstr_size, "event %s has no stream_id", ev->event_type);
                return -1;
        }
        if (strcmp(ev->event_type, "snapshot") != 0 || !ev->payload_name ||
            strcmp(ev->payload_name, "Snapshot") != 0) {
                snprintf(errstr, errstr_size, "event_type %s with payload %s is not a snapshot",
                         ev->event_type, ev->payload_name ? ev->payload_name : "null");
                return -1;
        }
        sn->pic_url = payload_str(ev, "pic_url");
        if (!sn->pic_url || !*sn->pic_url) {
                snprintf(errstr, errstr_size, "Snapshot.pic_url is missing or empty");
                return -1;
        }
        sn->taken_ms = json_is_integer(taken) ? (long long)json_integer_value(taken) : -1;
        if (sn->taken_ms <= 0 || sn->taken_ms > TIME_MAX_MS) {
                snprintf(errstr, errstr_size,
                         "Snapshot.create_time_ms %lld is not a time MySQL can store "
                         "(1970 to 2038)",
                         sn->taken_ms);
                return -1;
        }
        sn->pic_full_url = payload_str(ev, "pic_full_url");
        if (sn->pic_full_url && !*sn->pic_full_url)
                sn->pic_full_url = NULL;
        sn->width = payload_count(ev, "width", INT32_MAX);
        sn->height = payload_count(ev, "height", INT32_MAX);
        sn->file_size = payload_count(ev, "file_size", INT64_MAX);
        return 0;
}

/* ------------------------------------------------------------------ applying */

static struct db_param count_param(long long v)
{
        return v >= 0 ? DB_I64(v) : DB_NULL;
}

/*
 * Offers the snapshot as the stream's cover. *outcome: "applied" (it is the cover now),
 * "older_than_cover" or "no_stream" (no row yet: the snapshot is kept pending).
 */
static enum db_result offer_cover(struct snapshot_state *st, const struct event *ev,
                                  const struct snapshot *sn, const char **outcome, char *errstr,
                                  size_t errstr_size)
{
        const char *url = sn->pic_full_url ? sn->pic_full_url : sn->pic_url;
        struct db_param p[] = {DB_STR(url),          DB_I64(sn->taken_ms),
                               DB_STR(ev->vendor),   DB_STR(ev->stream_id),
                               DB_I64(sn->taken_ms), DB_I64(sn->taken_ms),
                               DB_STR(url)};
        struct db_param q[] = {DB_STR(ev->vendor), DB_STR(ev->stream_id)};
        struct db_col col = {.type = DB_PARAM_I64};
        unsigned long long affected = 0;
        bool found;
        enum db_result r;

        if ((r = db_exec(st->db, st->set_cover, p, 7, &affected, NULL, errstr, errstr_size)) !=
            DB_OK)
                return r;
        if (affected) {
                *outcome = "applied";
                return DB_OK;
        }
        if ((r = db_query_row(st->db, st->stream_exists, q, 2, &col, 1, &found, errstr,
                              errstr_size)) != DB_OK)
                return r;
        *outcome = found ? "older_than_cover" : "no_stream";
        return DB_OK;
}

static enum db_result insert_snapshot(struct snapshot_state *st, const struct event *ev,
                                      const struct snapshot *sn, bool is_pending, char *errstr,
                                      size_t errstr_size)
{
        struct db_param p[] = {DB_STR(ev->stream_id),      DB_STR(ev->vendor),
                               DB_STR(sn->pic_url),        DB_STR(sn->pic_full_url),
                               count_param(sn->width),     count_param(sn->height),
                               count_param(sn->file_size), DB_I64(sn->taken_ms),
                               DB_STR(ev->event_id),       is_pending ? DB_I64(1) : DB_NULL};

        return db_exec(st->db, st->insert_snapshot, p, 10, NULL, NULL, errstr, errstr_size);
}

static enum db_result record_event(struct snapshot_state *st, const struct consumer_record *rec,
                                   bool *first, char *errstr, size_t errstr_size)
{
        return ledger_record(st->ledger, rec, first, errstr, errstr_size);
}

static enum apply_result snapshot_apply(void *state, struct consumer_record *rec, char *errstr,
                                        size_t errstr_size)
{
        struct snapshot_state *st = state;
        const char *outcome = "applied";
        struct snapshot sn;
        enum db_result r;
        bool first;

        if (snapshot_read_event(&rec->ev, &sn, errstr, errstr_size) == -1)
                return APPLY_PERMANENT;
        if ((r = record_event(st, rec, &first, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        if (!first) {
                log_debug(rec->trace_id, "duplicate event %s stream=%s", rec->ev.event_id,
                          rec->ev.stream_id);
                return APPLY_DONE;
        }
        if ((r = offer_cover(st, &rec->ev, &sn, &outcome, errstr, errstr_size)) != DB_OK ||
            (r = insert_snapshot(st, &rec->ev, &sn, strcmp(outcome, "no_stream") == 0, errstr,
                                 errstr_size)) != DB_OK)
                return apply_from_db(r);
        if (strcmp(outcome, "applied") != 0) {
                if ((r = ledger_set_outcome(st->ledger, rec->ev.event_id, outcome, errstr,
                                            errstr_size)) != DB_OK)
                        return apply_from_db(r);
        }
        log_info(rec->trace_id,
                 "snapshot stream=%s taken_ms=%lld outcome=%s topic=%s partition=%d offset=%lld",
                 rec->ev.stream_id, sn.taken_ms, outcome, rec->topic, rec->partition, rec->offset);
        return APPLY_DONE;
}

/* ------------------------------------------------------------------ the sweep */

/* Covers for the streams whose row appeared after their snapshots; runs outside any batch. */
static void snapshot_tick(void *state, long long now_ms)
{
        struct snapshot_state *st = state;
        struct db_stmt *const steps[] = {st->sweep_cover, st->sweep_settle, st->sweep_expire};
        unsigned long long affected[3] = {0};
        char errstr[512];

        if (now_ms - st->last_sweep_ms < SWEEP_EVERY_MS)
                return;
        st->last_sweep_ms = now_ms;
        for (size_t i = 0; i < 3; i++) {
                if (db_exec(st->db, steps[i], NULL, 0, &affected[i], NULL, errstr,
                            sizeof(errstr)) != DB_OK) {
                        log_warn(NULL, "pending covers: %s (next try in %d s)", errstr,
                                 SWEEP_EVERY_MS / 1000);
                        return;
                }
        }
        if (affected[0] || affected[2])
                log_info(
                        NULL,
                        "pending covers: %llu stream(s) got a cover, %llu snapshot(s) gave up waiting",
                        affected[0], affected[2]);
}

const struct consumer_role snapshot_role = {
        .name = "snapshot",
        .topics = snapshot_topics,
        .open = snapshot_open,
        .apply = snapshot_apply,
        .apply_many = snapshot_apply_many,
        .publish = NULL,
        .tick = snapshot_tick,
        .close = snapshot_close,
};
