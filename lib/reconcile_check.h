/* reconcile_check.h: what the checks of reconcile share (lib/reconcile*.c only): the run's
 * state, and the report that goes out as text or as one JSON document. */
#ifndef LIVEFLOW_RECONCILE_CHECK_H
#define LIVEFLOW_RECONCILE_CHECK_H

#include <jansson.h>
#include <mysql.h>
#include <stdbool.h>

struct db;
struct redis_conn;

#define PROG   "reconcile" /* the prefix of error lines on stderr */
#define HOUR_S 3600LL

struct reconcile {
        MYSQL *mysql;
        struct db *db;            /* a second connection, for the checks built on lib/db.h */
        struct redis_conn *redis; /* NULL with --no-redis */
        const char *bootstrap;    /* LIVEFLOW_KAFKA_BOOTSTRAP; NULL: no topic check */
        const char *reward_topic; /* live.reward, or --reward-topic */
        long long from_s, to_s;   /* the range [from, to) in Unix seconds */
        long long limit;          /* lines listed per finding kind */
        long long differences;    /* findings across all checks */
        bool json;                /* --json: the report is one JSON document */
        json_t *checks;           /* with json: one object per check */
        json_t *check;            /* with json: the current check (borrowed from checks) */
};

/** @brief Starts a check: "[n] title" in text, a new object named name in JSON. */
void reconcile_heading(struct reconcile *rc, int n, const char *name, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/** @brief One line of the current check (indented in text, an element of "lines" in JSON). */
void reconcile_say(struct reconcile *rc, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/** @brief Ends a check with its count of findings (-1: it failed). @returns 0 or -1. */
int reconcile_verdict(struct reconcile *rc, long long found);

/** @brief Runs sql on rc->mysql. @returns its result, which the caller frees with
 *  mysql_free_result(), or NULL after saying why on stderr. */
MYSQL_RES *reconcile_query(struct reconcile *rc, const char *sql);

/** @brief Formats Unix time t in UTC with strftime's fmt into out ("@t" when it cannot). */
void reconcile_format_time(long long t, const char *fmt, char *out, size_t out_size);

/** @brief [1] recharge against settlement_detail: totals, per anchor, per tip, the split.
 *  @returns 0 or -1 (reconcile_money.c, as [2] to [4]). */
int reconcile_check_details(struct reconcile *rc);

/** @brief [2] recharge against hourly_reward_stats, hour by hour. @returns 0 or -1. */
int reconcile_check_hourly(struct reconcile *rc);

/** @brief [3] each anchor's balance against its settled shares and withdrawals. @returns 0 or -1.
 */
int reconcile_check_balances(struct reconcile *rc);

/** @brief [4] the rooms' Redis figures against recharge, and room keys without a room.
 *  @returns 0 or -1. */
int reconcile_check_redis(struct reconcile *rc);

/** @brief [5] set:live:online and hash:anchor:status:* against live_streams. @returns 0 or -1. */
int reconcile_check_streams(struct reconcile *rc);

/**
 * @brief [6] every tip of the reward topic in the range is in recharge, settlement_detail and
 * stats_tip, or in the DLQ twin for that ledger's group (named). @returns 0 or -1.
 */
int reconcile_check_topic(struct reconcile *rc);

#endif
