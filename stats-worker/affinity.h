/* affinity.h: tag_affinity (anchor tag x audience tag), computed once per period by one stats
 * worker. */
#ifndef LIVEFLOW_STATS_AFFINITY_H
#define LIVEFLOW_STATS_AFFINITY_H

#include <stddef.h>

struct settings;
struct redis_conn;
struct metrics;

/*
 * Every LIVEFLOW_AFFINITY_INTERVAL_S, from the last LIVEFLOW_AFFINITY_WINDOW_DAYS of tips
 * (stats_tip) and app watch time (live_watch_history, the anchor of each visit's session),
 * for each anchor tag X and audience tag Y (anchor_tags, audience_tags):
 *
 *   tip(X,Y)   = sum of the tips from audiences tagged Y to anchors tagged X
 *   watch(X,Y) = sum of the seconds audiences tagged Y watched anchors tagged X
 *   score(X,Y) = (Wt * tip(X,Y) / tip(*,Y) + Ww * watch(X,Y) / watch(*,Y)) / (Wt + Ww)
 *
 * where tip(*,Y) and watch(*,Y) count each tip and second of audiences tagged Y once, whatever
 * the anchor's tags (a share is 0 when its total is), Wt = LIVEFLOW_AFFINITY_TIP_WEIGHT and
 * Ww = LIVEFLOW_AFFINITY_WATCH_WEIGHT. So a score is the weighted share of what audiences
 * tagged Y give (money, time) that goes to anchors tagged X, from 0 to 1. rank_no orders the
 * pairs by score, then tip, then watch time, then the tags' names.
 *
 * The instance that takes Redis lock:stats:affinity:{period} (SET NX EX, TTL
 * LIVEFLOW_STATS_PROFILE_LOCK_TTL_S; released by compare-and-delete) and finds no run of the
 * period in stats_affinity_run computes into a stage of its own (a temporary table of its
 * connection, so runs of different periods may overlap), then in one transaction records
 * itself and replaces tag_affinity's rows with the stage: readers see the old rows or the new
 * ones, and a run that dies keeps the previous table. The swaps take turns (a MySQL named
 * lock), and a run whose period is older than a recorded run's is dropped (superseded), so a
 * run that ends late never replaces a newer period's table. Outcomes are counted in
 * liveflow_stats_affinity_runs_total{outcome}.
 */
struct affinity;

/** @brief Opens its connection (statements bounded by the lock's TTL). NULL with errstr. */
struct affinity *affinity_new(const struct settings *s, struct redis_conn *redis,
                              struct metrics *metrics, char *errstr, size_t errstr_size);

/** @brief NULL is fine. */
void affinity_destroy(struct affinity *a);

/** @brief Runs the current period unless done, locked elsewhere or a failure is recent. */
void affinity_tick(struct affinity *a, long long now_ms);

#endif
