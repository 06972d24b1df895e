/* profile.c: test_stats's audience_profile: the levels by percentile band, two instances running
 * each period once, a held lock, failed, older and killed runs leaving the profile whole. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"

#include "fixture.h"

/* ------------------------------------------------------------------ audience_profile */

struct spender {
        char audience[96];
        long long total;
};

static const char *expected_level(long long at_most, long long spenders, long long high_pct,
                                  long long mid_pct)
{
        if (100 * at_most > high_pct * spenders)
                return "high";
        return 100 * at_most > mid_pct * spenders ? "mid" : "low";
}

/* Checks every spender's row by the rule of profile.h. */
static void assert_profile(const struct spender *s, size_t n, long long high_pct, long long mid_pct)
{
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM audience_profile"),
                     (long long)n);
        for (size_t i = 0; i < n; i++) {
                long long at_most = 0;
                char level[16], pct[32];

                for (size_t j = 0; j < n; j++)
                        at_most += s[j].total <= s[i].total;
                cr_assert_eq(
                        support_query_int(
                                fx.mysql,
                                "SELECT total_amount FROM audience_profile WHERE audience_id = '%s'",
                                s[i].audience),
                        s[i].total, "%s", s[i].audience);
                support_query1(fx.mysql, level, sizeof(level),
                               "SELECT level FROM audience_profile WHERE audience_id = '%s'",
                               s[i].audience);
                cr_assert_str_eq(level, expected_level(at_most, (long long)n, high_pct, mid_pct),
                                 "%s total %lld", s[i].audience, s[i].total);
                support_query1(fx.mysql, pct, sizeof(pct),
                               "SELECT percentile FROM audience_profile WHERE audience_id = '%s'",
                               s[i].audience);
                cr_assert(fabs(atof(pct) - 100.0 * (double)at_most / (double)n) < 0.0006,
                          "%s percentile %s", s[i].audience, pct);
        }
}

/* Sends each spender's total as two tips to one of three anchors; returns the tip count. */
static size_t produce_spenders(struct spender *s, const long long *totals, size_t n,
                               const char *tag)
{
        size_t tips = 0;

        for (size_t i = 0; i < n; i++) {
                char tip_a[32], tip_b[32], audience[32], anchor[32];

                snprintf(audience, sizeof(audience), "%s%02zu", tag, i);
                snprintf(anchor, sizeof(anchor), "%sa%zu", tag, i % 3);
                snprintf(tip_a, sizeof(tip_a), "%s%02zu_a", tag, i);
                snprintf(tip_b, sizeof(tip_b), "%s%02zu_b", tag, i);
                id_of(s[i].audience, sizeof(s[i].audience), audience);
                s[i].total = totals[i];
                produce_tip(&(struct tip_spec){tip_a, audience, anchor, totals[i] / 2,
                                               1767225600000LL + (long long)i, NULL, NULL},
                            NULL);
                produce_tip(&(struct tip_spec){tip_b, audience, anchor, totals[i] - totals[i] / 2,
                                               1767229200000LL + (long long)i, NULL, NULL},
                            NULL);
                tips += 2;
        }
        flush();
        return tips;
}

/* Waits for a run that started after `after_ms` (wall clock), i.e. saw the ledger as it is. */
static void wait_run_after(long long after_ms, int timeout_ms)
{
        char sql[256];

        snprintf(
                sql, sizeof(sql),
                "SELECT COUNT(*) FROM stats_profile_run WHERE started_at >= FROM_UNIXTIME(%lld / 1000)",
                after_ms);
        wait_at_least(1, timeout_ms, "profile runs after the ledger was complete", sql);
}

Test(stats, profile_levels_follow_the_percentile_bands)
{
        /* Ties at 50 and at the top; HIGH 80 and MID 40 rather than the defaults. */
        static const long long totals[] = {10,  20,  30,  40,  50,  50,  70,  80,  90,  100,
                                           110, 120, 130, 140, 150, 160, 170, 180, 500, 500};
        const size_t n = sizeof(totals) / sizeof(totals[0]);
        struct spender s[sizeof(totals) / sizeof(totals[0])];
        size_t tips;

        use_redis_db(2);
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_INTERVAL_S=2",
                                              "LIVEFLOW_STATS_PROFILE_HIGH_PCT=80",
                                              "LIVEFLOW_STATS_PROFILE_MID_PCT=40", NULL});
        tips = produce_spenders(s, totals, n, "p");
        wait_at_least((long long)tips, 30000, "tips in the ledger",
                      "SELECT COUNT(*) FROM stats_tip");
        wait_run_after(wall_ms(), 20000);
        assert_profile(s, n, 80, 40);
        stop_worker_expect_clean_exit(0);
}

/* How many lines of a worker's log contain needle. */
static long long count_log_lines(int i, const char *needle)
{
        char *text = support_read_file(fx.workers[i].log, NULL);
        long long n = 0;

        cr_assert(text, "no log %s", fx.workers[i].log);
        for (const char *p = text; (p = strstr(p, needle)); p++)
                n++;
        free(text);
        return n;
}

/* Milliseconds into the day of a log line's timestamp ("2026-01-01T12:34:56.789Z ..."). */
static long long log_line_ms(const char *line)
{
        int h, m, sec, ms;

        if (sscanf(line, "%*d-%*d-%*dT%d:%d:%d.%dZ", &h, &m, &sec, &ms) != 4)
                return -1;
        return ((h * 60LL + m) * 60 + sec) * 1000 + ms;
}

/* The longest profile run in a worker's log, from its "started" line to its "done" or "failed". */
static long long longest_run_ms(int i)
{
        char *text = support_read_file(fx.workers[i].log, NULL);
        long long started = -1, longest = 0;

        cr_assert(text, "no log %s", fx.workers[i].log);
        for (char *line = text, *next; line && *line; line = next) {
                long long t = log_line_ms(line);

                if ((next = strchr(line, '\n')))
                        *next++ = '\0';
                if (strstr(line, "profile run started")) {
                        started = t;
                } else if (started >= 0 && t >= started &&
                           (strstr(line, "profile run done") ||
                            strstr(line, "profile run failed"))) {
                        if (t - started > longest)
                                longest = t - started;
                        started = -1;
                }
        }
        free(text);
        return longest;
}

/* Puts `rows` tips of `audiences` spenders straight into the ledger; @returns their sum. */
static long long fill_ledger(long long rows, long long audiences)
{
        long long sum = 0;

        exec_sql(
                "INSERT INTO stats_tip (trace_id, event_id, audience_id, anchor_id, room_id, amount, gift_count, "
                "anchor_gender, audience_gender, tipped_at, hour) SELECT CONCAT('k', seq), 'x', CONCAT('%s_u', seq %% %lld), "
                "'x', 'x', 1 + (seq * 7919) %% 10000, 1, 'unknown', 'unknown', NOW(3), NOW() FROM seq_1_to_%lld",
                fx.prefix, audiences, rows);
        for (long long seq = 1; seq <= rows; seq++)
                sum += 1 + (seq * 7919) % 10000;
        return sum;
}

Test(stats, two_instances_run_each_period_once)
{
        const char *const env[] = {"LIVEFLOW_STATS_PROFILE_INTERVAL_S=4",
                                   "LIVEFLOW_STATS_PROFILE_LOCK_TTL_S=30", NULL};
        long long runs, span, started = 0, failed = 0, done = 0, busy = 0, newer = 0, longest;
        long long deadline;

        use_redis_db(3);
        /* A ledger that takes a run about a second or more, so the other instance's ticks
         * (one a second) fall inside runs and find the lock taken. */
        fill_ledger(300000, 80000);
        spawn_worker(0, env); /* both join at once: one rebalance, not three */
        spawn_worker(1, env);
        for (int i = 0; i < 2; i++)
                cr_assert(support_wait_ready(fx.workers[i].admin_port, 30000) == 0,
                          "stats worker %d not ready; see %s", i, fx.workers[i].log);
        /* Until three periods have run and the instances have met at the lock (a loaded
         * machine stretches the runs, so no fixed time). */
        deadline = support_now_ms() + 120000;
        do {
                support_sleep_ms(200);
                busy = 0;
                for (int i = 0; i < 2; i++)
                        busy += scrape(i, "liveflow_stats_profile_lock_busy_total");
                runs = support_query_int(fx.mysql, "SELECT COUNT(*) FROM stats_profile_run");
        } while ((runs < 3 || busy <= 0) && support_now_ms() < deadline);
        for (int i = 0; i < 2; i++)
                stop_worker_expect_clean_exit(i);
        /* Counted from the logs once both have stopped, so no run falls between two counts. */
        for (int i = 0; i < 2; i++) {
                started += count_log_lines(i, "profile run started");
                failed += count_log_lines(i, "profile run failed");
                done += count_log_lines(i, "profile run done");
                newer += count_log_lines(i, "its profile is newer");
        }
        runs = support_query_int(fx.mysql, "SELECT COUNT(*) FROM stats_profile_run");
        span = support_query_int(fx.mysql,
                                 "SELECT MAX(period) - MIN(period) FROM stats_profile_run");
        cr_assert(runs >= 3, "%lld runs of 4 s periods in 2 minutes (logs %s, %s)", runs,
                  fx.workers[0].log, fx.workers[1].log);
        cr_assert(busy > 0, "the instances never met at the lock");
        /*
         * Every period between the first and the last ran, and apart from runs that failed
         * (and let the period go to whoever tried next), no instance even started a period
         * the other one ran: such a run would end superseded, neither done nor failed. A
         * period passes unrun by design when both instances are in runs longer than a period
         * meanwhile, which only a loaded machine makes of this ledger: then the skipped
         * periods prove nothing and are not counted. A run that ends after the next period's
         * run is dropped (its profile would be older): such a period has no run either.
         */
        longest = longest_run_ms(0) > longest_run_ms(1) ? longest_run_ms(0) : longest_run_ms(1);
        if (longest < 4000)
                cr_assert_eq(span, (runs - 1 + newer) * 4,
                             "periods skipped: %lld runs (%lld dropped) over %lld s", runs, newer,
                             span);
        else
                cr_log_warn("a run took %lld ms, longer than a 4 s period: skipped periods not "
                            "checked (%lld runs over %lld s)",
                            longest, runs, span);
        cr_assert_eq(started - failed - newer, runs,
                     "%lld runs started, %lld failed and %lld ended after a newer period's for "
                     "%lld periods (logs %s, %s)",
                     started, failed, newer, runs, fx.workers[0].log, fx.workers[1].log);
        cr_assert_eq(done, runs);
}

Test(stats, a_period_whose_lock_is_held_elsewhere_waits_for_it)
{
        const long long interval_s = 6;
        long long now, period;
        redisReply *r;

        use_redis_db(4);
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_INTERVAL_S=6", NULL});
        wait_at_least(1, 20000, "a first profile run", "SELECT COUNT(*) FROM stats_profile_run");
        /* The next period, at least 1.5 s away, held by "another instance" (this test). */
        now = wall_ms();
        period = (now / 1000 / interval_s + 1) * interval_s;
        if (period * 1000 - now < 1500)
                period += interval_s;
        r = redisCommand(fx.redis, "SET lock:stats:profile:%lld other-instance NX EX 60", period);
        cr_assert(r && r->type == REDIS_REPLY_STATUS, "the lock was taken already");
        freeReplyObject(r);
        support_sleep_ms((int)(period * 1000 + 3000 - wall_ms()));
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM stats_profile_run WHERE period = %lld",
                                       period),
                     0, "period %lld ran although its lock was held", period);
        cr_assert(scrape(0, "liveflow_stats_profile_lock_busy_total") > 0);

        r = redisCommand(fx.redis, "DEL lock:stats:profile:%lld", period);
        freeReplyObject(r);
        char sql[128];

        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM stats_profile_run WHERE period = %lld",
                 period);
        wait_at_least(1, 2500, "the period's run once the lock was free", sql);
        stop_worker_expect_clean_exit(0);
}

/* The profile as one comparable string (computed_at aside, which every run renews). */
static void profile_text(char *out, size_t out_size)
{
        support_query1(
                fx.mysql, out, out_size,
                "SELECT CONCAT(COUNT(*), ':', COALESCE(GROUP_CONCAT(audience_id, '=', total_amount, '/', level, "
                "'/', percentile ORDER BY audience_id SEPARATOR ','), '')) FROM audience_profile");
}

Test(stats, a_failed_run_leaves_the_previous_profile_and_a_later_one_replaces_it)
{
        static const long long totals[] = {100, 200, 300, 400, 500};
        struct spender s[5];
        char before[4096], after[4096], bad[96], sql[256];
        long long injected_ms;
        size_t tips;

        use_redis_db(5);
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_INTERVAL_S=2", NULL});
        tips = produce_spenders(s, totals, 5, "f");
        wait_at_least((long long)tips, 30000, "tips in the ledger",
                      "SELECT COUNT(*) FROM stats_tip");
        wait_run_after(wall_ms(), 20000);
        assert_profile(s, 5, 90, 50);
        profile_text(before, sizeof(before));

        /* Two tips whose sum no BIGINT holds: the staging insert fails (strict mode). */
        id_of(bad, sizeof(bad), "bad");
        exec_sql(
                "INSERT INTO stats_tip (trace_id, event_id, audience_id, anchor_id, room_id, amount, gift_count, "
                "anchor_gender, audience_gender, tipped_at, hour) SELECT CONCAT('%s', seq), 'x', '%s', 'x', 'x', "
                "5000000000000000000, 1, 'unknown', 'unknown', NOW(3), NOW() FROM seq_1_to_2",
                bad, bad);
        injected_ms = wall_ms();
        {
                long long deadline = support_now_ms() + 20000;

                while (scrape(0, "liveflow_stats_profile_runs_total{outcome=\"failed\"}") < 2 &&
                       support_now_ms() < deadline)
                        support_sleep_ms(100);
        }
        cr_assert(scrape(0, "liveflow_stats_profile_runs_total{outcome=\"failed\"}") >= 2,
                  "the poisoned ledger did not fail two runs (log %s)", fx.workers[0].log);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM stats_profile_run WHERE started_at >= "
                                       "FROM_UNIXTIME(%lld / 1000)",
                                       injected_ms),
                     0);
        profile_text(after, sizeof(after));
        cr_assert_str_eq(after, before, "a failed run changed the profile");

        /* Repaired, the next period's run goes through: the failures left no lock behind. */
        exec_sql("DELETE FROM stats_tip WHERE audience_id = '%s'", bad);
        snprintf(
                sql, sizeof(sql),
                "SELECT COUNT(*) FROM stats_profile_run WHERE started_at >= FROM_UNIXTIME(%lld / 1000)",
                wall_ms());
        wait_at_least(1, 20000, "a run after the repair", sql);
        assert_profile(s, 5, 90, 50);
        stop_worker_expect_clean_exit(0);
}

/* A run of a period older than one with a recorded run (another instance's, or a rebuild) ends
 * superseded: the newer period's profile stays. */
Test(stats, a_run_older_than_a_recorded_newer_period_is_dropped)
{
        /* Two periods ahead, so that the hour may turn meanwhile. */
        const long long newer = wall_ms() / 1000 / 3600 * 3600 + 7200;
        long long deadline, superseded = 0;
        char id[96];

        use_redis_db(8);
        id_of(id, sizeof(id), "n");
        exec_sql(
                "INSERT INTO stats_tip (trace_id, event_id, audience_id, anchor_id, room_id, amount, "
                "gift_count, anchor_gender, audience_gender, tipped_at, hour) VALUES ('%s', 'x', "
                "'%s', 'x', 'x', 700, 1, 'unknown', 'unknown', NOW(3), NOW())",
                id, id);
        exec_sql(
                "INSERT INTO stats_profile_run (interval_s, period, period_start, instance, audiences, "
                "started_at) VALUES (3600, %lld, FROM_UNIXTIME(%lld), 'elsewhere', 1, NOW(3))",
                newer, newer);
        exec_sql("INSERT INTO audience_profile (audience_id, total_amount, percentile, level, "
                 "period_start) VALUES ('%s', 5, 100, 'high', FROM_UNIXTIME(%lld))",
                 id, newer);
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_INTERVAL_S=3600", NULL});
        deadline = support_now_ms() + 30000;
        while ((superseded = scrape(
                        0, "liveflow_stats_profile_runs_total{outcome=\"superseded\"}")) < 1 &&
               scrape(0, "liveflow_stats_profile_runs_total{outcome=\"done\"}") < 1 &&
               support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert_eq(superseded, 1, "the run was not dropped (log %s)", fx.workers[0].log);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM audience_profile WHERE audience_id = "
                                       "'%s' AND total_amount = 5 AND UNIX_TIMESTAMP(period_start) "
                                       "= %lld",
                                       id, newer),
                     1, "the newer period's profile was replaced");
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM audience_profile"), 1);
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM stats_profile_run"), 1);
        cr_assert_eq(count_log_lines(0, "its profile is newer"), 1);
        stop_worker_expect_clean_exit(0);
}

Test(stats, a_run_killed_halfway_leaves_the_previous_profile_whole)
{
        const long long rows = 400000, audiences = 100000;
        char before[4096], after[4096], prev_a[96], prev_b[96];
        long long want_sum;

        use_redis_db(6);
        /* The previous profile, and a ledger big enough that computing a new one takes a while. */
        id_of(prev_a, sizeof(prev_a), "prev_a");
        id_of(prev_b, sizeof(prev_b), "prev_b");
        exec_sql(
                "INSERT INTO audience_profile (audience_id, total_amount, percentile, level, period_start) VALUES "
                "('%s', 10, 50, 'low', NOW(3)), ('%s', 20, 100, 'high', NOW(3))",
                prev_a, prev_b);
        profile_text(before, sizeof(before));
        want_sum = fill_ledger(rows, audiences);

        /*
         * A short lock TTL, so that the next instance need not wait long for the dead one's lock.
         * Not waiting for /readyz (the group join): the run starts meanwhile and is killed in it.
         */
        spawn_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_LOCK_TTL_S=3", NULL});
        cr_assert(wait_log(fx.workers[0].log, "profile run started", 20000),
                  "no run started (log %s)", fx.workers[0].log);
        cr_assert(kill(fx.workers[0].pid, SIGKILL) == 0);
        cr_assert_eq(support_wait_exit(fx.workers[0].pid, 10000), 128 + SIGKILL);
        fx.workers[0].pid = 0;
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM stats_profile_run"), 0,
                     "the run finished before the kill: make the ledger bigger");
        profile_text(after, sizeof(after));
        cr_assert_str_eq(after, before, "the killed run changed the profile");

        /*
         * The next instance runs the period once the dead one's lock has expired. Its own lock
         * TTL is long: the TTL also bounds its run's queries, which a loaded machine can stretch
         * past 3 s (the run would fail and wait 30 s to try again).
         */
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_LOCK_TTL_S=120", NULL});
        wait_at_least(1, 60000, "the period's run by the next instance",
                      "SELECT COUNT(*) FROM stats_profile_run");
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM audience_profile"),
                     audiences);
        cr_assert_eq(support_query_int(fx.mysql, "SELECT SUM(total_amount) FROM audience_profile"),
                     want_sum);
        cr_assert_eq(
                support_query_int(
                        fx.mysql,
                        "SELECT COUNT(*) FROM audience_profile WHERE audience_id IN ('%s', '%s')",
                        prev_a, prev_b),
                0);
        stop_worker_expect_clean_exit(0);
}
