/* settlement.h: the settlement role: tips split between anchor and platform, withdrawals, session
 * summaries. */
#ifndef LIVEFLOW_SETTLEMENT_H
#define LIVEFLOW_SETTLEMENT_H

#include "consumer.h"

/* revenue_share.ratio_bp is in basis points of the gross: 10000 is all of it. */
#define SETTLEMENT_BP_WHOLE 10000LL

/* One tip's split; anchor_amount + platform_amount is the tip's amount exactly. */
struct settlement_split {
        long long anchor_amount;
        long long platform_amount;
};

/**
 * @brief Splits a tip by the rounding rule: anchor_amount = floor(amount * ratio_bp / 10000),
 * the platform gets the remainder (so the platform keeps every fraction of a minor unit).
 * Exact for every amount in 0..LLONG_MAX without a wider type: with amount = q * 10000 + r,
 * floor(amount * ratio_bp / 10000) = q * ratio_bp + floor(r * ratio_bp / 10000), where
 * q * ratio_bp <= amount and r * ratio_bp < 10^8.
 * @returns 0, or -1 when amount is negative or ratio_bp is outside 0..10000 (out untouched).
 */
__attribute__((warn_unused_result)) int settlement_split(long long amount, long long ratio_bp,
                                                         struct settlement_split *out);

/*
 * Group liveflow.settlement on live.reward, live.withdrawal and live.session:
 *  - a Reward becomes a settlement_detail row (unique trace_id = tip_id) and, only when that
 *    row is new, the same transaction credits settlement.total_amount and available_amount;
 *  - a Withdrawal (unique request_id) succeeds only when available_amount covers it, by one
 *    conditional UPDATE, so the balance never goes negative whatever runs concurrently;
 *    an amount <= 0 is permanent (dead-lettered);
 *  - a session.end rewrites the session's row of settlement_session from recharge and
 *    settlement_detail; tick() sums recently ended sessions again for late recharge rows.
 * Tips and withdrawals are two topics: one key puts an anchor's records on the same partition
 * number of each, but Kafka orders nothing across topics, so a withdrawal is decided against
 * what is settled when it is applied (a tip still in flight does not count yet). Within
 * live.withdrawal an anchor's requests are decided in order.
 */
extern const struct consumer_role settlement_role;

#endif
