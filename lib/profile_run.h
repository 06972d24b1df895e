/* profile_run.h: one audience_profile run (stage, then swap); shared by liveflow-stats
 * (stats-worker/profile.c, which decides when and under which lock) and
 * `liveflow-ctl rebuild profile`. */
#ifndef LIVEFLOW_PROFILE_RUN_H
#define LIVEFLOW_PROFILE_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"

/*
 * Each audience's total spend (the stats_tip ledger, all time) gets a percentile among all
 * spenders and a level:
 *
 *   percentile = 100 * (spenders whose total <= this total) / spenders
 *   high when percentile > high_pct, else mid when > mid_pct, else low.
 *
 * A run computes into a stage of its own (a temporary table of its connection, so runs of
 * different periods may overlap), then in one transaction records itself in stats_profile_run
 * (unique per interval and period) and replaces audience_profile with the stage: a run that
 * fails or dies halfway leaves the previous profile whole. The swaps take turns (a MySQL named
 * lock), and one whose period is older than a recorded run's is dropped: a run that finishes
 * late never replaces a newer period's profile.
 */
struct profile_run;

/** @brief Prepares the statements on db (borrowed). @returns NULL when out of memory. */
struct profile_run *profile_run_new(struct db *db, long long interval_s, long long high_pct,
                                    long long mid_pct);

/** @brief Frees it (the statements belong to db); NULL is fine. */
void profile_run_destroy(struct profile_run *pr);

/** @brief *done says whether a run of period (its start, Unix s) is recorded. */
enum db_result profile_run_is_done(struct profile_run *pr, long long period, bool *done,
                                   char *errstr, size_t errstr_size);

/** @brief Computes every spender's row into the run's stage (a temporary table of db's
 * connection: stage, diff and swap on the same db); *staged receives how many. */
enum db_result profile_run_stage(struct profile_run *pr, long long period, long long *staged,
                                 char *errstr, size_t errstr_size);

/**
 * @brief After profile_run_stage(): how many audiences the swap would change (a new, changed
 * or removed level, total or percentile). @returns DB_OK with *changed set.
 */
enum db_result profile_run_diff(struct profile_run *pr, long long *changed, char *errstr,
                                size_t errstr_size);

/**
 * @brief Records the run (instance names who ran it) and replaces audience_profile with the
 * stage, all or nothing. With replace, a run recorded for the period before is replaced;
 * without it, such a run makes this one fail with DB_DUPLICATE (another instance was first).
 * A run recorded for a newer period (same interval) also makes it DB_DUPLICATE, with *newer
 * set to that period (else -1), replace or not: nothing changes.
 */
enum db_result profile_run_swap(struct profile_run *pr, long long period, long long staged,
                                long long started_ms, const char *instance, bool replace,
                                long long *newer, char *errstr, size_t errstr_size);

struct redis_conn;

/* What profile_run_lock() found. */
enum profile_lock { PROFILE_LOCK_TAKEN, PROFILE_LOCK_BUSY, PROFILE_LOCK_ERROR };

/**
 * @brief Takes Redis lock:stats:profile:{period} for ttl_s (SET NX EX with token, 33 bytes,
 * made here): of the stats workers and liveflow-ctl, only the holder runs the period.
 * @returns PROFILE_LOCK_ERROR with errstr when Redis failed.
 */
enum profile_lock profile_run_lock(struct redis_conn *redis, long long period, long long ttl_s,
                                   char token[33], char *errstr, size_t errstr_size);

/**
 * @brief Releases the lock while it still holds token (an expired lock that another took since
 * is not ours). @returns 1 released, 0 it had expired, -1 with errstr (it expires by itself).
 */
int profile_run_unlock(struct redis_conn *redis, long long period, const char *token, char *errstr,
                       size_t errstr_size);

#endif
