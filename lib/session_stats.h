/* session_stats.h: one session's live_statistics row computed from the ledgers; shared by
 * liveflow-stats (stats-worker/sessions.c) and `liveflow-ctl rebuild session`. */
#ifndef LIVEFLOW_SESSION_STATS_H
#define LIVEFLOW_SESSION_STATS_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"

/*
 * A session's figures cover its stats_session window [started_at, ended_at], both ends
 * included: gift_amount, gift_count and paying_users are the stats_tip rows of its room
 * tipped in the window. unique_viewers and peak_online are the audience role's
 * (consumers/audience.h): never written here, read as live_statistics holds them (-1 for NULL:
 * no source reported viewers), so a derived row never disagrees with the stored one on them.
 */
struct session_figures {
        char stream_id[1024];
        char anchor_id[257]; /* "" when NULL */
        bool has_anchor;
        long long duration_s, gift_amount, gift_count, paying_users, unique_viewers, peak_online;
};

struct session_stats;

/** @brief Prepares the statements on db (borrowed). @returns NULL when out of memory. */
struct session_stats *session_stats_new(struct db *db);

/** @brief Frees it (the statements belong to db); NULL is fine. */
void session_stats_destroy(struct session_stats *ss);

/**
 * @brief Computes session_id again into live_statistics in its own READ COMMITTED transaction,
 * under the stats_session row's lock (a tip or viewer transaction that would mark it dirty
 * waits for the commit, and marks it again after); clears its dirty flag. With only_dirty, a
 * session no longer dirty is left alone (*computed false). f (may be NULL) receives the
 * figures written. @returns DB_OK (*computed false when there is no such session either).
 */
enum db_result session_stats_compute(struct session_stats *ss, long long session_id,
                                     bool only_dirty, bool *computed, struct session_figures *f,
                                     char *errstr, size_t errstr_size);

/**
 * @brief What session_stats_compute() would write, read without a lock or a write.
 * *found says whether stats_session knows the session.
 */
enum db_result session_stats_derive(struct session_stats *ss, long long session_id,
                                    struct session_figures *f, bool *found, char *errstr,
                                    size_t errstr_size);

/**
 * @brief The session's live_statistics row as it is (the figures of session_figures; stream
 * and anchor included). *found says whether there is one; a NULL viewer figure reads -1.
 */
enum db_result session_stats_current(struct session_stats *ss, long long session_id,
                                     struct session_figures *f, bool *found, char *errstr,
                                     size_t errstr_size);

#endif
