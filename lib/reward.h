/*
 * reward.h: the one definition of a valid tip (a Reward event), shared by every role that
 * reads live.reward (reward-sync, settlement, stats), so that a record one of them would
 * dead-letter is never applied by another (a gift_count of -1 credited by one role and
 * refused by two). The receiver checks the same bounds at the door (callback-receiver/internal.c);
 * this is what holds for a record written to Kafka some other way.
 */
#ifndef LIVEFLOW_REWARD_H
#define LIVEFLOW_REWARD_H

#include <stddef.h>

#include "codec.h"

#define REWARD_GIFT_COUNT_MAX 2147483647LL /* recharge.gift_count INT */

/**
 * @brief Checks that ev is a tip every role can apply: event_type "reward" with a Reward
 * payload; tip_id, audience_id, anchor_id and room_id non-empty strings that fit their
 * columns (field_limits.h), gift_id absent or fitting; amount > 0; gift_count from 1 to
 * REWARD_GIFT_COUNT_MAX; ts_ms > 0; audience_gender and anchor_gender absent or male, female,
 * unknown; audience_type absent or registered, guest.
 * @returns 0, or -1 with errstr naming the field (a permanent error: dead-letter the record).
 */
__attribute__((warn_unused_result)) int reward_check(const struct event *ev, char *errstr,
                                                     size_t errstr_size);

#endif
