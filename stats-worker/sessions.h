/* sessions.h: live_statistics per ended session, from the tip and viewer ledgers. */
#ifndef LIVEFLOW_STATS_SESSIONS_H
#define LIVEFLOW_STATS_SESSIONS_H

#include <stddef.h>

#include "consumer.h"
#include "tips.h"

struct db;
struct metrics;

/*
 * A session's figures cover its window [started_at, ended_at], both ends included:
 * gift_amount, gift_count and paying_users are the stats_tip rows of its room (the
 * session.end's room, else its anchor) tipped in the window. The viewer columns
 * (unique_viewers, peak_online, watch time, interactions) are the audience role's
 * (consumers/audience.h): this worker never writes them, so they stay NULL for a session no
 * source reported viewers for (a Tencent session, say) rather than reading 0. The viewer
 * ledger (stats_viewer_event) is still kept.
 *
 * A session.end marks its stats_session row dirty; so do tips and viewer events that land
 * in an ended session's window up to late_s after the worker saw the end. sessions_refresh()
 * computes dirty sessions again (lib/session_stats.c, the code liveflow-ctl rebuild session
 * runs too), so live_statistics catches up with records that arrive
 * after the session.end. Later ones are not counted (LIVEFLOW_STATS_LATE_S).
 */
struct sessions;

/**
 * @brief Prepares the statements on db (borrowed: it must outlive this) and registers the
 * metrics. @returns NULL when out of memory.
 */
struct sessions *sessions_new(struct db *db, struct metrics *metrics, long long late_s);

/** @brief Frees it; NULL is fine. */
void sessions_destroy(struct sessions *s);

/**
 * @brief In the apply transaction: records a viewer.join / viewer.leave once (by event id)
 * and marks the ended session whose window holds it dirty.
 * @returns APPLY_DONE, APPLY_RETRY or APPLY_PERMANENT (not a Viewer event), errstr set on failure.
 */
enum apply_result sessions_apply_viewer(struct sessions *s, const struct event *ev, char *errstr,
                                        size_t errstr_size);

/**
 * @brief In the apply transaction: records a session.end (again: the newest one wins) and
 * marks the session dirty. @returns as sessions_apply_viewer().
 */
enum apply_result sessions_apply_end(struct sessions *s, const struct event *ev, char *errstr,
                                     size_t errstr_size);

/**
 * @brief In the apply transaction: a tip of room_id at ts_ms was just recorded; marks the
 * ended sessions of that room whose window holds it dirty. @returns as sessions_apply_viewer().
 */
enum apply_result sessions_note_tip(struct sessions *s, const char *room_id, long long ts_ms,
                                    char *errstr, size_t errstr_size);

/**
 * @brief sessions_note_tip() for the tips of a batch whose is_new[i] is set: one read of the
 * rooms' sessions that ended within the late window, and an UPDATE only when a tip falls in one.
 * @returns as sessions_apply_viewer().
 */
enum apply_result sessions_note_tips(struct sessions *s, const struct tip *tips, const bool *is_new,
                                     size_t n, char *errstr, size_t errstr_size);

/**
 * @brief Outside any transaction: computes up to max dirty sessions again, each in its own
 * transaction, into live_statistics. @returns how many were computed, or -1 with errstr
 * when MySQL failed (the rest waits for the next call).
 */
int sessions_refresh(struct sessions *s, int max, char *errstr, size_t errstr_size);

#endif
