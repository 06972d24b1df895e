/*
 * test_affinity.c: liveflow-stats' tag_affinity run, as its binary on the real MariaDB and
 * Redis fixtures, over a population written straight into the tables it reads (stats_tip,
 * live_watch_history, live_streams, anchor_tags, audience_tags), where the answer is known.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static struct {
        char prefix[48];
        char mysql_url[512];
        char group[96];
        char log[256], log2[256];
        pid_t pid, pid2;
        int seq;
        MYSQL *mysql;
        redisContext *redis;          /* the overlap test's */
        long long held_from, held_to; /* periods whose affinity lock the test holds */
} fx;

static void setup(void)
{
        support_unique_name("af", fx.prefix, sizeof(fx.prefix));
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        fx.mysql = support_mysql_connect(fx.mysql_url);
        snprintf(fx.group, sizeof(fx.group), "test.%s", fx.prefix);
        snprintf(fx.log, sizeof(fx.log), "/tmp/%s.stats.log", fx.prefix);
        snprintf(fx.log2, sizeof(fx.log2), "/tmp/%s.stats2.log", fx.prefix);
}

/* Lets go of the locks hold_later_periods() took (not the workers'). */
static void release_held(void)
{
        static const char script[] = "if redis.call('GET', KEYS[1]) == 'held' then return "
                                     "redis.call('DEL', KEYS[1]) end return 0";

        for (long long p = fx.held_from; p < fx.held_to; p++) {
                char key[64];

                snprintf(key, sizeof(key), "lock:stats:affinity:%lld", p);
                freeReplyObject(redisCommand(fx.redis, "EVAL %s 1 %s", script, key));
        }
        fx.held_from = fx.held_to = 0;
}

static void teardown(void)
{
        if (fx.pid2 > 0 && support_wait_exit(fx.pid2, 0) == -1) {
                kill(fx.pid2, SIGKILL);
                support_wait_exit(fx.pid2, 5000);
        }
        if (fx.pid > 0 && support_wait_exit(fx.pid, 0) == -1) {
                kill(fx.pid, SIGKILL);
                support_wait_exit(fx.pid, 5000);
        }
        if (fx.mysql)
                mysql_close(fx.mysql);
        if (fx.redis) {
                release_held();
                redisFree(fx.redis);
        }
        memset(&fx, 0, sizeof(fx));
}

TestSuite(affinity, .init = setup, .fini = teardown, .timeout = 120);

/* Starts liveflow-stats, without waiting for it to be ready when spawn (its run may block). */
static pid_t start_stats_logging(const char *tip_weight, const char *watch_weight, const char *log,
                                 bool spawn)
{
        static const char *const topics[] = {"live.reward", "live.viewer", "live.session", NULL};
        char tw[64], ww[64];
        const char *const env[] = {"LIVEFLOW_AFFINITY_INTERVAL_S=1", tw, ww, NULL};
        int admin_port;

        snprintf(tw, sizeof(tw), "LIVEFLOW_AFFINITY_TIP_WEIGHT=%s", tip_weight);
        snprintf(ww, sizeof(ww), "LIVEFLOW_AFFINITY_WATCH_WEIGHT=%s", watch_weight);
        if (log == fx.log) /* a second instance joins the group the first one is in */
                support_group_at_end(fx.group, topics);
        if (spawn)
                return support_spawn_worker("liveflow-stats", NULL, fx.mysql_url, fx.group, env,
                                            log, &admin_port);
        return support_start_worker("liveflow-stats", NULL, fx.mysql_url, fx.group, env, log,
                                    &admin_port);
}

static void start_stats(const char *tip_weight, const char *watch_weight)
{
        fx.pid = start_stats_logging(tip_weight, watch_weight, fx.log, false);
}

static void exec_sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void exec_sql(const char *fmt, ...)
{
        char sql[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.mysql));
}

static void tag(const char *table, const char *key, const char *id, const char *name)
{
        exec_sql("INSERT IGNORE INTO tags (name) VALUES ('%s')", name);
        exec_sql("INSERT INTO %s (%s, tag_id) SELECT '%s', tag_id FROM tags WHERE name = '%s'",
                 table, key, id, name);
}

static void tip(const char *audience, const char *anchor, long long amount)
{
        exec_sql("INSERT INTO stats_tip (trace_id, event_id, audience_id, anchor_id, room_id, "
                 "amount, gift_count, anchor_gender, audience_gender, tipped_at, hour) VALUES "
                 "('%s_t%d', SHA2('%s_t%d', 256), '%s', '%s', '%s', %lld, 1, 'unknown', "
                 "'unknown', NOW(3) - INTERVAL 1 HOUR, DATE_FORMAT(NOW() - INTERVAL 1 HOUR, "
                 "'%%Y-%%m-%%d %%H:00:00'))",
                 fx.prefix, fx.seq, fx.prefix, fx.seq, audience, anchor, anchor, amount);
        fx.seq++;
}

/* An app visit of seconds to the anchor's session (one stream and session per anchor). */
static void watch(const char *audience, const char *anchor, long long session, long long seconds)
{
        exec_sql("INSERT IGNORE INTO live_streams (stream_id, anchor_id, room_id, session_id, "
                 "status, started_at) VALUES ('%s_s', '%s', '%s', %lld, 'live', NOW(3) - "
                 "INTERVAL 2 HOUR)",
                 anchor, anchor, anchor, session);
        exec_sql("INSERT INTO live_watch_history (visit_id, audience_id, source, room_id, "
                 "session_id, stream_id, entered_at, left_at, seconds, close_reason) VALUES "
                 "(SHA2('%s_v%d', 256), '%s', 'app', '%s', %lld, '%s_s', NOW(3) - INTERVAL 1 HOUR, "
                 "NOW(3) - INTERVAL 1 HOUR + INTERVAL %lld SECOND, %lld, 'exit')",
                 fx.prefix, fx.seq, audience, anchor, session, anchor, seconds, seconds);
        fx.seq++;
}

/* Waits for a run that finished after the newest one now recorded. */
static void wait_new_run(void)
{
        long long before = support_query_int(fx.mysql, "SELECT IFNULL(MAX(id), 0) FROM "
                                                       "stats_affinity_run");
        long long deadline = support_now_ms() + 30000;

        while (support_query_int(fx.mysql, "SELECT IFNULL(MAX(id), 0) FROM stats_affinity_run") <=
               before) {
                cr_assert(support_now_ms() < deadline, "no affinity run; see %s", fx.log);
                support_sleep_ms(200);
        }
}

/*
 * Anchors a1, a2 are tagged B (a2 also M), a3 C, a4 D. Audiences u1, u2 are tagged A and tip
 * only anchors tagged B; u3, u4 (tag E) tip everyone, more than A does; u5 (F) tips B and C.
 */
static void population(void)
{
        char a[4][64], u[5][64];

        for (int i = 0; i < 4; i++)
                snprintf(a[i], sizeof(a[i]), "%s_a%d", fx.prefix, i + 1);
        for (int i = 0; i < 5; i++)
                snprintf(u[i], sizeof(u[i]), "%s_u%d", fx.prefix, i + 1);
        tag("anchor_tags", "anchor_id", a[0], "B");
        tag("anchor_tags", "anchor_id", a[1], "B");
        tag("anchor_tags", "anchor_id", a[1], "M");
        tag("anchor_tags", "anchor_id", a[2], "C");
        tag("anchor_tags", "anchor_id", a[3], "D");
        tag("audience_tags", "audience_id", u[0], "A");
        tag("audience_tags", "audience_id", u[1], "A");
        tag("audience_tags", "audience_id", u[2], "E");
        tag("audience_tags", "audience_id", u[3], "E");
        tag("audience_tags", "audience_id", u[4], "F");
        tip(u[0], a[0], 100);
        tip(u[0], a[1], 50);
        tip(u[1], a[0], 30);
        for (int i = 0; i < 4; i++) {
                tip(u[2], a[i], 400);
                tip(u[3], a[i], 300);
        }
        tip(u[4], a[0], 70);
        tip(u[4], a[2], 70);
        /* Watch time: E watches only D, A watches B and C alike. */
        watch(u[2], a[3], 9001, 600);
        watch(u[3], a[3], 9001, 300);
        watch(u[0], a[0], 9002, 100);
        watch(u[0], a[2], 9003, 100);
}

static void top(char *out, size_t out_size)
{
        support_query1(fx.mysql, out, out_size,
                       "SELECT CONCAT(anchor_tag, '|', audience_tag, '|', tip_amount, '|', "
                       "watch_s, '|', ROUND(score, 4)) FROM tag_affinity WHERE rank_no = 1");
}

Test(affinity, audiences_that_tip_only_one_anchor_tag_rank_that_pair_first)
{
        char got[256];

        population();
        start_stats("2", "1");
        wait_new_run();
        top(got, sizeof(got));
        /* A's 180 all went to B anchors: tip share 1; A's watch went half to B: 0.5.
         * score = (2 * 1 + 1 * 0.5) / 3. */
        cr_assert_str_eq(got, "B|A|180|100|0.8333", "see %s", fx.log);
        /* E tipped B anchors 1400 of 2800: (2 * 0.5 + 1 * 0) / 3. */
        support_query1(fx.mysql, got, sizeof(got),
                       "SELECT CONCAT(tip_amount, '|', watch_s, '|', ROUND(score, 4)) FROM "
                       "tag_affinity WHERE anchor_tag = 'B' AND audience_tag = 'E'");
        cr_assert_str_eq(got, "1400|0|0.3333");
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM tag_affinity"),
                     support_query_int(fx.mysql, "SELECT COUNT(DISTINCT rank_no) FROM "
                                                 "tag_affinity"),
                     "ranks are distinct");
}

Test(affinity, the_watch_weight_alone_ranks_by_watch_time)
{
        char got[256];

        population();
        start_stats("0", "1");
        wait_new_run();
        top(got, sizeof(got));
        cr_assert_str_eq(got, "D|E|700|900|1.0000", "see %s", fx.log);
}

Test(affinity, a_failed_run_keeps_the_previous_table_and_a_later_run_replaces_it)
{
        char got[256];

        population();
        start_stats("2", "1");
        wait_new_run();
        /* Without tags the stage can not be computed: every run now fails. */
        exec_sql("RENAME TABLE tags TO tags_away");
        tip(fx.prefix, fx.prefix, 1); /* a change the table does not show yet */
        support_sleep_ms(2500);
        top(got, sizeof(got));
        cr_assert_str_eq(got, "B|A|180|100|0.8333", "the previous table must stay");
        cr_assert(support_query_int(fx.mysql, "SELECT COUNT(*) FROM information_schema.tables "
                                              "WHERE table_schema = DATABASE() AND table_name = "
                                              "'tag_affinity'") == 1);
        exec_sql("RENAME TABLE tags_away TO tags");
        exec_sql("UPDATE stats_tip SET amount = amount * 2 WHERE audience_id LIKE '%%_u1'");
        wait_new_run();
        top(got, sizeof(got));
        cr_assert_str_eq(got, "B|A|330|100|0.8333", "see %s", fx.log);
}

static long long count_in_log(const char *log, const char *needle)
{
        char *text = support_read_file(log, NULL);
        long long n = 0;

        for (const char *p = text; p && (p = strstr(p, needle)); p++)
                n++;
        free(text);
        return n;
}

/* Sessions of this database waiting for a table lock or a named lock. */
static long long blocked_sessions(void)
{
        return support_query_int(fx.mysql,
                                 "SELECT COUNT(*) FROM information_schema.processlist WHERE db = "
                                 "DATABASE() AND (state LIKE 'Waiting for table%%' OR state = "
                                 "'User lock')");
}

static void wait_blocked(long long n)
{
        long long deadline = support_now_ms() + 30000;

        while (blocked_sessions() < n) {
                cr_assert(support_now_ms() < deadline, "%lld runs never reached their swap; see %s",
                          n, fx.log);
                support_sleep_ms(100);
        }
}

static void redis_ok(redisReply *r, const char *what)
{
        cr_assert(r && r->type != REDIS_REPLY_ERROR, "redis %s: %s", what,
                  r ? r->str : fx.redis->errstr);
        freeReplyObject(r);
}

/* Holds the affinity locks of the next `periods` seconds' periods, so that no run starts
 * (the workers' Redis database is shared with the suite's other tests: held briefly). */
static void hold_later_periods(int periods)
{
        redisReply *t = redisCommand(fx.redis, "TIME");
        long long now;

        cr_assert(t && t->type == REDIS_REPLY_ARRAY && t->elements == 2, "redis TIME");
        now = atoll(t->element[0]->str);
        freeReplyObject(t);
        fx.held_from = now - 2;
        fx.held_to = now + periods;
        for (long long p = fx.held_from; p < fx.held_to; p++)
                redis_ok(redisCommand(fx.redis, "SET lock:stats:affinity:%lld held NX EX %d", p,
                                      periods + 60),
                         "SET");
}

static long long runs_of(pid_t pid)
{
        return support_query_int(fx.mysql,
                                 "SELECT COUNT(*) FROM stats_affinity_run WHERE instance LIKE "
                                 "'%%:%d'",
                                 (int)pid);
}

/*
 * Two runs of different periods overlap: the older one (instance 1) has staged and waits to
 * swap (a reader holds tag_affinity), the tips change, and a second instance's run of a later
 * period stages the new figures and waits too. Later periods' locks are then held, so that
 * these two runs are the last ones (unless Redis loses the locks: a later run has the same
 * figures). When the reader lets go, each run swaps its own stage, neither
 * fails, and the newer period's figures are the ones in the table.
 */
Test(affinity, overlapping_runs_of_two_periods_leave_the_newer_periods_figures)
{
        MYSQL *reader = support_mysql_connect(fx.mysql_url);
        long long deadline;
        char got[256];

        fx.redis = support_redis_connect(0, false, NULL, 0);
        population();
        cr_assert(mysql_query(reader, "LOCK TABLES tag_affinity READ") == 0, "%s",
                  mysql_error(reader));
        fx.pid = start_stats_logging("2", "1", fx.log, true);
        wait_blocked(1);
        exec_sql("UPDATE stats_tip SET amount = amount * 2 WHERE audience_id LIKE '%%_u1'");
        fx.pid2 = start_stats_logging("2", "1", fx.log2, true);
        wait_blocked(2);
        hold_later_periods(120); /* the two runs are the last ones */
        cr_assert(mysql_query(reader, "UNLOCK TABLES") == 0, "%s", mysql_error(reader));
        mysql_close(reader);
        deadline = support_now_ms() + 30000;
        while (runs_of(fx.pid) < 1 || runs_of(fx.pid2) < 1) {
                cr_assert(support_now_ms() < deadline, "a run never ended; see %s and %s", fx.log,
                          fx.log2);
                support_sleep_ms(100);
        }
        cr_assert_eq(count_in_log(fx.log, "affinity run failed"), 0, "see %s", fx.log);
        cr_assert_eq(count_in_log(fx.log2, "affinity run failed"), 0, "see %s", fx.log2);
        top(got, sizeof(got));
        cr_assert_str_eq(got, "B|A|330|100|0.8333", "see %s and %s", fx.log, fx.log2);
        release_held();
}

/* A run of a period older than one with a recorded run (another instance's, finished first) is
 * dropped as superseded: the newer period's table stays, exactly. */
Test(affinity, a_run_older_than_a_recorded_newer_period_is_dropped)
{
        long long deadline;
        char got[256];

        population();
        exec_sql("INSERT INTO stats_affinity_run (interval_s, period, instance, pairs, started_at) "
                 "VALUES (1, UNIX_TIMESTAMP() + 3600, 'elsewhere', 1, NOW(3))");
        exec_sql("INSERT INTO tag_affinity (anchor_tag, audience_tag, tip_amount, watch_s, score, "
                 "rank_no, computed_at) VALUES ('X', 'Y', 5, 6, 0.5, 1, NOW(3))");
        start_stats("2", "1");
        deadline = support_now_ms() + 30000;
        while (count_in_log(fx.log, "superseded") < 1) {
                cr_assert(support_now_ms() < deadline, "no run was dropped; see %s", fx.log);
                support_sleep_ms(100);
        }
        top(got, sizeof(got));
        cr_assert_str_eq(got, "X|Y|5|6|0.5000", "the newer period's table was replaced; see %s",
                         fx.log);
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM tag_affinity"), 1);
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM stats_affinity_run"), 1);
}
