/* reconcile.h: `liveflow-ctl reconcile` (alias `liveflow-settlement reconcile`): the money
 * tables, Redis and the reward topic checked against each other. */
#ifndef LIVEFLOW_RECONCILE_H
#define LIVEFLOW_RECONCILE_H

/* The exit statuses, for cron: all agree, a difference was found, usage or connection error. */
enum reconcile_status {
        RECONCILE_AGREE = 0,
        RECONCILE_DIFFER = 1,
        RECONCILE_ERROR = 2,
};

/**
 * @brief Parses a --from/--to time: Unix seconds ("1767225600"), an ISO 8601 date-time
 * ("2026-01-01T08:00:00Z", "2026-01-01T16:00:00+08:00", "2026-01-01 08:00", fractions of a
 * second dropped; no zone means UTC) or a date ("2026-01-01", midnight UTC).
 * @returns 0 with *unix_s set, or -1 when s is none of these (*unix_s untouched).
 */
__attribute__((warn_unused_result)) int reconcile_parse_time(const char *s, long long *unix_s);

/**
 * @brief The whole command (`liveflow-ctl reconcile`, `liveflow-settlement reconcile`).
 * argv[0] is "reconcile"; options: --from T, --to T (default: the 24 hours up to now),
 * --limit N (lines listed per check, default 20), --no-redis (skip 4 and 5), --no-topic (skip
 * 6), --reward-topic T (default live.reward), --json (one JSON document), --help. Reads
 * LIVEFLOW_MYSQL_URL, LIVEFLOW_REDIS_URL, LIVEFLOW_KAFKA_BOOTSTRAP (and
 * LIVEFLOW_KAFKA_PROP_*) from the environment. Checks, the MySQL ones in one consistent
 * snapshot:
 *  1. recharge vs settlement_detail in the range: totals, per anchor, per tip, the split rule;
 *  2. recharge vs hourly_reward_stats over the range widened to whole hours, per hour and anchor;
 *  3. settlement balances, all time: total = SUM(anchor_amount), withdrawn = SUM(succeeded
 *     withdrawals), available = total - withdrawn, none negative;
 *  4. Redis live:room:earnings:{room} / live:room:recharge_count:{room} vs recharge, all time;
 *  5. set:live:online and hash:anchor:status:* vs live_streams (lib/rebuild.h's diff);
 *  6. every tip of the reward topic whose ts_ms is in the range is in recharge,
 *     settlement_detail and stats_tip, or in the topic's .dlq twin for that ledger's group
 *     (each such tip named with its DLQ offset); read up to the end offsets at the start.
 * Prints the report on stdout and errors on stderr.
 * @returns an enum reconcile_status.
 */
int reconcile_main(int argc, char **argv);

/* The --help text of reconcile_main(). */
extern const char reconcile_usage[];

#endif
