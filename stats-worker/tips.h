/* tips.h: the stats worker's tip ledger and hourly_reward_stats, both kept in the apply
 * transaction. */
#ifndef LIVEFLOW_STATS_TIPS_H
#define LIVEFLOW_STATS_TIPS_H

#include <stdbool.h>
#include <stddef.h>

#include "consumer.h"

struct db;
struct metrics;

/*
 * A tip is recorded once in stats_tip (keyed by its own trace_id, Reward.tip_id); only the
 * transaction that records it adds it to its hourly_reward_stats row, so a replayed tip
 * changes nothing. The row's hour is the UTC hour of the tip's ts_ms. Each gender is the
 * tip's when it says male or female, else the one on file (anchors.gender, audiences.gender),
 * else unknown; a tip that states the audience's gender also puts it on file.
 */
struct tips;

/* The tip's fields apply() read, for the caller's follow-up (borrowed from the record). */
struct tip {
        const char *tip_id;
        const char *room_id;
        long long ts_ms;
};

/**
 * @brief Prepares the statements on db (borrowed: it must outlive the ledger) and registers the
 * ledger's counters in metrics.
 * @returns a ledger the caller frees with tips_destroy(), or NULL when out of memory.
 */
struct tips *tips_new(struct db *db, struct metrics *metrics);

/** @brief Frees the ledger; NULL is fine. */
void tips_destroy(struct tips *t);

/**
 * @brief Applies one reward event in the open transaction. *is_new says whether this call
 * recorded the tip (false for a replay); tip receives its fields, borrowed from ev.
 * @returns APPLY_DONE, APPLY_RETRY (transient MySQL failure) or APPLY_PERMANENT (not a valid
 * Reward, or MySQL refused the data), with errstr set on failure.
 */
enum apply_result tips_apply(struct tips *t, const struct event *ev, struct tip *tip, bool *is_new,
                             char *errstr, size_t errstr_size);

/**
 * @brief tips_apply() on n reward records at once, in a few set-based statements in the open
 * transaction, with the same effects as tips_apply() on each in turn. A tip that is not a valid
 * Reward gets APPLY_PERMANENT in its slot (nothing is written for it); tips[i] and is_new[i]
 * receive slots[i]'s fields and whether it was recorded here. Ids are matched byte for byte:
 * ids MySQL's collation may match otherwise, a tip recorded meanwhile by another transaction,
 * an overflowing sum or any MySQL failure make it return APPLY_RETRY or APPLY_PERMANENT with
 * errstr, and the caller rolls back and goes one tip at a time.
 * @returns APPLY_DONE when every slot is set.
 */
enum apply_result tips_apply_many(struct tips *t, struct apply_slot *const *slots, size_t n,
                                  struct tip *tips, bool *is_new, char *errstr, size_t errstr_size);

#endif
