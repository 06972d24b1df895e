/*
 * record_role.h: what the record role's two halves share: record.c (open, apply() one record
 * at a time, publish(), the sweep) and record_batch.c (apply_many(), a batch at once, with
 * record_apply() as its fallback and oracle). Private to the role.
 */
#ifndef LIVEFLOW_RECORD_ROLE_H
#define LIVEFLOW_RECORD_ROLE_H

#include <stdbool.h>
#include <stddef.h>

#include "consumer.h"
#include "notify.h"
#include "role_kit.h"

#define TIME_MAX_MS 2147483647999LL /* FROM_UNIXTIME on MariaDB 10.11 stops in 2038 */

struct record_state {
        struct db *db;
        long long last_sweep_ms;
        /* The sweep's cursor: the last file it visited (created_at, file_id), and whether the
         * page it ended was full (the next page then comes at the next tick). */
        char sweep_at[32], sweep_file[513]; /* file_id: 128 characters of utf8mb4 */
        bool sweep_more;
        struct ledger *ledger;
        struct db_stmt *find_session, *upsert_file, *sweep_page_end, *link_sweep;
        struct notify *notify;         /* live.notify: record.ready */
        struct role_gate gate;         /* unread, or the ledger looked up first (role_kit.h) */
        const char *srs_playback_base; /* from the settings; NULL: no SRS playback URL */
};

/* A record.file as its RecordFile payload gives it; numbers are -1 when unknown. */
struct record_file {
        const char *file_id;
        const char *video_url;
        const char *file_format;
        const char *session_key;
        long long start_ms, end_ms, duration_s, file_size;
};

/** @brief Checks the envelope; *is_file says whether it is a record.file (else a record.status). */
int record_read_event(const struct event *ev, bool *is_file, char *errstr, size_t errstr_size);

/** @brief A record.file's RecordFile payload; -1 with errstr without file_id or video_url. */
int record_read_file(const struct event *ev, struct record_file *f, char *errstr,
                     size_t errstr_size);

/** @brief Where the file sits in time: its start, else its end, else the event's time. */
long long record_file_time(const struct event *ev, const struct record_file *f);

/** @brief The record.ready of a file recorded for the first time; url holds its playback URL. */
struct notify_msg record_file_msg(struct record_state *st, struct consumer_record *rec,
                                  const struct record_file *f, long long session, char *url,
                                  size_t url_size);

/* record_batch.c */
enum apply_result record_apply_many(void *state, struct apply_slot *slots, size_t n, char *errstr,
                                    size_t errstr_size);

#endif
