/*
 * lookup_deadline.h: an anchor lookup with a deadline, run off the HTTP threads. The store's
 * own lookup (Redis, then MySQL) runs on a small pool of worker threads; the HTTP thread that
 * asked waits at most timeout_ms and then gets ANCHOR_LOOKUP_UNAVAILABLE (the caller's
 * LIVEFLOW_SRS_FAIL_OPEN decides), counted. So a frozen store costs one request at most the
 * deadline, never the store's connect and read timeouts. lookup_deadline_start() is the same
 * lookup without a waiting thread: the receiver suspends the connection instead, so the other
 * connections of its HTTP thread never wait for a store.
 */
#ifndef LIVEFLOW_RECEIVER_LOOKUP_DEADLINE_H
#define LIVEFLOW_RECEIVER_LOOKUP_DEADLINE_H

#include "anchor_store.h"

struct metrics;

struct lookup_deadline;

/**
 * @brief Starts workers threads (>= 1) running inner (copied; its fn must be thread-safe and
 * may block). At most queue_max lookups wait for a worker; more are unavailable at once.
 * Registers liveflow_receiver_srs_lookup_timeouts_total in metrics (borrowed, may be NULL).
 * @returns the wrapper (lookup_deadline_destroy() stops and frees it) or NULL.
 */
struct lookup_deadline *lookup_deadline_new(const struct anchor_lookup *inner, int timeout_ms,
                                            int workers, int queue_max, struct metrics *metrics);

/** @brief Stops the workers (each finishes the lookup it runs) and frees it; NULL is fine. */
void lookup_deadline_destroy(struct lookup_deadline *ld);

/**
 * @brief The lookup without a waiting thread: queues anchor_id for a worker and returns at
 * once. done(arg) is called exactly once, after *ans is filled: by the worker that answered,
 * or by ld's timer thread at the deadline (ANCHOR_LOOKUP_UNAVAILABLE, counted), or before
 * this returns when every worker is busy for long (unavailable, counted). ans must stay valid
 * until done runs; done must not call into ld. A lookup still unanswered when ld is destroyed
 * is dropped without done: answer (or wait for) them first.
 */
void lookup_deadline_start(struct lookup_deadline *ld, const char *anchor_id, const char *trace_id,
                           struct anchor_answer *ans, void (*done)(void *arg), void *arg);

/** @brief The lookup to hand to callers: fn = the deadline wrapper, ctx = ld. */
struct anchor_lookup lookup_deadline_lookup(struct lookup_deadline *ld);

#endif
