/* reconcile.h: `liveflow-settlement reconcile`: the money tables checked against each other and
 * Redis. */
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
 * @brief The whole subcommand. argv[0] is "reconcile"; options: --from T, --to T (default: the
 * 24 whole hours before the current hour), --limit N (lines listed per check, default 20),
 * --no-redis (skip check 4), --help. Reads LIVEFLOW_MYSQL_URL and LIVEFLOW_REDIS_URL from the
 * environment. Checks, in one consistent MySQL snapshot:
 *  1. recharge vs settlement_detail in the range: totals, per anchor, per tip, the split rule;
 *  2. recharge vs hourly_reward_stats over the range widened to whole hours, per hour and anchor;
 *  3. settlement balances, all time: total = SUM(anchor_amount), withdrawn = SUM(succeeded
 *     withdrawals), available = total - withdrawn, none negative;
 *  4. Redis live:room:earnings:{room} / live:room:recharge_count:{room} vs recharge, all time.
 * Prints the report on stdout and errors on stderr.
 * @returns an enum reconcile_status.
 */
int reconcile_main(int argc, char **argv);

#endif
