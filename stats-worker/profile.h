/* profile.h: audience_profile, computed once per period by one stats worker. */
#ifndef LIVEFLOW_STATS_PROFILE_H
#define LIVEFLOW_STATS_PROFILE_H

#include <stddef.h>

struct settings;
struct redis_conn;
struct metrics;

/*
 * Every LIVEFLOW_STATS_PROFILE_INTERVAL_S, each audience's total spend (the stats_tip
 * ledger, all time) gets a percentile among all spenders and a level:
 *
 *   percentile = 100 * (spenders whose total <= this total) / spenders
 *   high when percentile > LIVEFLOW_STATS_PROFILE_HIGH_PCT, else mid when > ..._MID_PCT,
 *   else low.
 *
 * So with 90 and 50 and no ties, the top 10 % are high and the bottom half low; equal
 * totals share a level. (Compared in integers: 100 * at_most > pct * spenders.)
 *
 * A period is the interval that holds the current time, named by its start in Unix seconds.
 * Of all the instances, the one that takes Redis lock:stats:profile:{period} (SET NX EX with a
 * random token; released by a compare-and-delete script) runs it, after checking that no run
 * of the period is recorded. A run computes into a stage of its own connection, then in one
 * transaction records itself in stats_profile_run (unique per period) and replaces
 * audience_profile with the stage: a run that fails or dies halfway leaves the previous profile
 * whole, and a run that ends after a newer period's is dropped (superseded). The
 * run itself is lib/profile_run.c, which liveflow-ctl rebuild profile runs too. Its
 * statements use a connection of their own whose timeout is the lock's TTL, so that no
 * statement outlives the lock; the unique run row covers a run that does.
 */
struct profile;

/**
 * @brief Opens the profiling connection (LIVEFLOW_MYSQL_URL) and reads the LIVEFLOW_STATS_PROFILE_*
 * keys of s. redis and metrics are borrowed and must outlive the profile.
 * @returns a profile the caller frees with profile_destroy(), or NULL with errstr set.
 */
struct profile *profile_new(const struct settings *s, struct redis_conn *redis,
                            struct metrics *metrics, char *errstr, size_t errstr_size);

/** @brief Closes the connection and frees the profile; NULL is fine. */
void profile_destroy(struct profile *p);

/**
 * @brief Runs the current period's profile unless it is done, another instance holds its
 * lock (liveflow_stats_profile_lock_busy_total; looked at again next tick), or the last
 * attempt failed less than min(interval, 30 s) ago. Outcomes are counted in
 * liveflow_stats_profile_runs_total{outcome="done"|"failed"|"superseded"} and logged; a
 * failure never stops the worker. Blocks for the length of a run.
 */
void profile_tick(struct profile *p, long long now_ms);

#endif
