/*
 * test_reconcile.c: `liveflow-settlement reconcile` on a consistent data set written here as
 * reward-sync, the settlement worker and the stats worker would write it, then with one row
 * corrupted on purpose: exit 0 when all agree, 1 with a diff naming the anchor, tip or room,
 * 2 on usage and connection errors.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "reconcile.h"
#include "support.h"

#define BASE_S    1767225600LL /* 2026-01-01T00:00:00Z */
#define ANCHORS   3
#define TIPS      30
#define TIP_GAP_S 600 /* so the tips cover five hours */

/* ------------------------------------------------------------------ parsing times */

TestSuite(reconcile_time);

Test(reconcile_time, reads_unix_seconds_and_iso_8601)
{
        static const char *const same[] = {
                "1767225600",
                "2026-01-01T00:00:00Z",
                "2026-01-01",
                "2026-01-01 00:00",
                "2026-01-01T00:00:00.999Z",
                "2026-01-01T08:00:00+08:00",
                "2025-12-31T19:00:00-0500",
                "2026-01-01T00:00:00+00",
        };

        for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
                long long t = 0;

                cr_assert(eq(int, reconcile_parse_time(same[i], &t), 0), "%s", same[i]);
                cr_assert(eq(i64, t, BASE_S), "%s", same[i]);
        }
        long long leap = 0;

        cr_assert(eq(int, reconcile_parse_time("2024-02-29T12:00:00Z", &leap), 0));
        cr_assert(eq(i64, leap, 1709208000LL));
}

Test(reconcile_time, refuses_what_is_neither)
{
        static const char *const bad[] = {
                "",
                "yesterday",
                "2026-13-01",
                "2026-02-29",
                "2026-01-32",
                "2026-01-01T24:00:00Z",
                "2026-01-01T00:60Z",
                "2026-1-01",
                "2026-01-01T00:00:00+0x",
                "2026-01-01T00:00:00Z junk",
                "-5",
                "12345678901234",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                long long t = 42;

                cr_assert(eq(int, reconcile_parse_time(bad[i], &t), -1), "\"%s\"", bad[i]);
                cr_assert(eq(i64, t, 42), "untouched on error");
        }
}

/* ------------------------------------------------------------------ the data set */

static struct {
        char mysql_url[512];
        char redis_url[128];
        char prefix[48];
        char anchor[ANCHORS][64];
        char room[ANCHORS][64];
        char *out; /* the last run's stdout and stderr */
        MYSQL *mysql;
        redisContext *redis;
} fx;

static void setup(void)
{
        support_unique_name("rc", fx.prefix, sizeof(fx.prefix));
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        fx.mysql = support_mysql_connect(fx.mysql_url);
        for (int a = 0; a < ANCHORS; a++) {
                snprintf(fx.anchor[a], sizeof(fx.anchor[a]), "%s_a%d", fx.prefix, a);
                snprintf(fx.room[a], sizeof(fx.room[a]), "%s_r%d", fx.prefix, a);
        }
}

static void teardown(void)
{
        free(fx.out);
        if (fx.mysql)
                mysql_close(fx.mysql);
        if (fx.redis)
                redisFree(fx.redis);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(reconcile, .init = setup, .fini = teardown, .timeout = 120);

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

static void redis_cmd(const char *fmt, ...)
{
        va_list ap;
        redisReply *r;

        va_start(ap, fmt);
        r = redisvCommand(fx.redis, fmt, ap);
        va_end(ap);
        cr_assert(r && r->type != REDIS_REPLY_ERROR, "redis %s: %s", fmt,
                  r ? r->str : fx.redis->errstr);
        freeReplyObject(r);
}

/* Redis database `db` of the fixture, emptied: each test of this file has its own. */
static void use_redis_db(int db)
{
        fx.redis = support_redis_connect(db, true, fx.redis_url, sizeof(fx.redis_url));
}

static long long tip_amount(int k)
{
        return k == 7 ? 1 : 100 + k * 37;
}

static void tip_id(int k, char *out, size_t out_size)
{
        snprintf(out, out_size, "%s_t%d", fx.prefix, k);
}

/*
 * The rows the pipeline would have written for TIPS tips spread over ANCHORS anchors and five
 * hours: recharge (reward-sync), settlement_detail and settlement (settlement worker, with
 * the rule floor(amount * ratio_bp / 10000)), hourly_reward_stats (stats worker), Redis room
 * figures (reward-sync); one succeeded and one rejected withdrawal per anchor.
 */
static void seed(int redis_db)
{
        long long total[ANCHORS] = {0}, earnings[ANCHORS] = {0}, count[ANCHORS] = {0};

        use_redis_db(redis_db);
        for (int k = 0; k < TIPS; k++) {
                int a = k % ANCHORS;
                long long amount = tip_amount(k), ratio_bp = 3000 + a * 1111,
                          ts = BASE_S + k * TIP_GAP_S;
                long long share = (long long)((__int128)amount * ratio_bp / 10000);
                char tip[96];

                tip_id(k, tip, sizeof(tip));
                exec_sql(
                        "INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, amount, tipped_at) VALUES "
                        "('%s', 'u%d', '%s', '%s', %lld, FROM_UNIXTIME(%lld))",
                        tip, k % 4, fx.anchor[a], fx.room[a], amount, ts);
                exec_sql(
                        "INSERT INTO settlement_detail (trace_id, anchor_id, amount, ratio_bp, anchor_amount, "
                        "platform_amount, tipped_at) VALUES ('%s', '%s', %lld, %lld, %lld, %lld, FROM_UNIXTIME(%lld))",
                        tip, fx.anchor[a], amount, ratio_bp, share, amount - share, ts);
                exec_sql(
                        "INSERT INTO hourly_reward_stats (hour, anchor_id, anchor_gender, audience_gender, amount_sum, "
                        "reward_count) VALUES (FROM_UNIXTIME(%lld), '%s', 'unknown', 'unknown', %lld, 1) ON DUPLICATE "
                        "KEY UPDATE amount_sum = amount_sum + VALUES(amount_sum), reward_count = reward_count + 1",
                        ts / 3600 * 3600, fx.anchor[a], amount);
                total[a] += share;
                earnings[a] += amount;
                count[a]++;
        }
        for (int a = 0; a < ANCHORS; a++) {
                long long withdrawn = total[a] / 3;

                exec_sql(
                        "INSERT INTO withdrawal (request_id, anchor_id, amount, status, requested_at) VALUES "
                        "('%s_w%d_ok', '%s', %lld, 'succeeded', NOW()), ('%s_w%d_no', '%s', %lld, 'rejected', NOW())",
                        fx.prefix, a, fx.anchor[a], withdrawn, fx.prefix, a, fx.anchor[a],
                        total[a] * 10);
                exec_sql(
                        "INSERT INTO settlement (anchor_id, total_amount, withdrawn_amount, available_amount) VALUES "
                        "('%s', %lld, %lld, %lld)",
                        fx.anchor[a], total[a], withdrawn, total[a] - withdrawn);
                redis_cmd("SET live:room:earnings:%s %lld", fx.room[a], earnings[a]);
                redis_cmd("SET live:room:recharge_count:%s %lld", fx.room[a], count[a]);
        }
}

/* ------------------------------------------------------------------ running it */

/* Runs `liveflow-settlement reconcile` with args (NULL-terminated) and the two URLs. */
static int run_with(const char *mysql_url, const char *redis_url, const char *const args[])
{
        char bin[512], e_mysql[600], e_redis[200], log_path[256];
        char *argv[16] = {bin, (char *)"reconcile"};
        char *env[] = {e_mysql, e_redis, NULL};
        static int run;
        int status, n = 2;

        support_bin_path("liveflow-settlement", bin, sizeof(bin));
        for (int i = 0; args[i] && n < 15; i++)
                argv[n++] = (char *)args[i];
        argv[n] = NULL;
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s", redis_url);
        snprintf(log_path, sizeof(log_path), "/tmp/%s.reconcile.%d.log", fx.prefix, ++run);
        unlink(log_path); /* a file left by an earlier run whose process had this pid */
        status = support_wait_exit(support_spawn(argv, env, log_path), 60000);
        free(fx.out);
        fx.out = support_read_file(log_path, NULL);
        cr_assert(fx.out != NULL, "no output in %s", log_path);
        cr_log_info("reconcile exited %d:\n%s", status, fx.out);
        return status;
}

/* The range of the data set, one end as ISO 8601 and the other as Unix seconds. */
static int run(void)
{
        static const char *const args[] = {"--from", "2026-01-01T00:00:00Z", "--to", "1767243600",
                                           NULL};

        return run_with(fx.mysql_url, fx.redis_url, args);
}

static void expect_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void expect_line(const char *fmt, ...)
{
        char want[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(want, sizeof(want), fmt, ap);
        va_end(ap);
        cr_assert(strstr(fx.out, want) != NULL, "the report lacks \"%s\":\n%s", want, fx.out);
}

static void expect_no(const char *what)
{
        cr_assert(strstr(fx.out, what) == NULL, "the report has \"%s\":\n%s", what, fx.out);
}

/* ------------------------------------------------------------------ verdicts */

Test(reconcile, consistent_data_exits_0)
{
        long long gross = 0;

        for (int k = 0; k < TIPS; k++)
                gross += tip_amount(k);
        seed(10);
        cr_assert(eq(int, run(), RECONCILE_AGREE));
        expect_line("recharge %d tips sum %lld, settlement_detail %d tips sum %lld", TIPS, gross,
                    TIPS, gross);
        expect_line("recharge %d tips sum %lld, hourly_reward_stats %d tips sum %lld", TIPS, gross,
                    TIPS, gross);
        expect_line("result: all agree");
        expect_no("DIFFERENT");
}

Test(reconcile, a_corrupted_balance_exits_1_naming_the_anchor)
{
        seed(11);
        exec_sql("UPDATE settlement SET total_amount = total_amount + 1 WHERE anchor_id = '%s'",
                 fx.anchor[1]);
        cr_assert(eq(int, run(), RECONCILE_DIFFER));
        expect_line("anchor %s: total_amount", fx.anchor[1]);
        expect_line("anchor %s: available_amount", fx.anchor[1]);
        expect_line("[3] settlement balances");
        expect_line("DIFFERENT: 1 finding(s)");
        expect_no(fx.anchor[0]);
        expect_no(fx.anchor[2]);
}

Test(reconcile, a_missing_detail_exits_1_naming_the_tip_and_its_anchor)
{
        char tip[96];

        seed(12);
        tip_id(4, tip, sizeof(tip)); /* anchor 4 % ANCHORS */
        exec_sql("DELETE FROM settlement_detail WHERE trace_id = '%s'", tip);
        cr_assert(eq(int, run(), RECONCILE_DIFFER));
        expect_line("tip %s (anchor %s, amount %lld): in recharge, missing from settlement_detail",
                    tip, fx.anchor[4 % ANCHORS], tip_amount(4));
        expect_line("anchor %s: recharge %d tips sum", fx.anchor[4 % ANCHORS], TIPS / ANCHORS);
        expect_line("anchor %s: total_amount",
                    fx.anchor[4 % ANCHORS]); /* the balance no longer adds up either */
}

Test(reconcile, a_split_off_the_rule_exits_1_naming_the_tip)
{
        char tip[96];

        seed(13);
        tip_id(5, tip, sizeof(tip));
        /* Still adds up to the amount, so only the rule (and the balance) can tell. */
        exec_sql(
                "UPDATE settlement_detail SET anchor_amount = anchor_amount + 1, platform_amount = platform_amount - 1 "
                "WHERE trace_id = '%s'",
                tip);
        cr_assert(eq(int, run(), RECONCILE_DIFFER));
        expect_line("tip %s (anchor %s): amount %lld at ratio_bp", tip, fx.anchor[5 % ANCHORS],
                    tip_amount(5));
}

Test(reconcile, redis_drift_exits_1_naming_the_room)
{
        seed(14);
        redis_cmd("INCRBY live:room:earnings:%s 5", fx.room[2]);
        redis_cmd("SET live:room:recharge_count:%s_ghost 3", fx.prefix);
        cr_assert(eq(int, run(), RECONCILE_DIFFER));
        expect_line("room %s: Redis earnings", fx.room[2]);
        expect_line("room %s_ghost: Redis has live:room:recharge_count:%s_ghost", fx.prefix,
                    fx.prefix);
        expect_no(fx.room[0]);
}

Test(reconcile, empty_hourly_stats_is_a_difference)
{
        seed(15);
        exec_sql("DELETE FROM hourly_reward_stats");
        cr_assert(eq(int, run(), RECONCILE_DIFFER));
        expect_line("hourly_reward_stats has no row for these hours");
        expect_line("hour 2026-01-01T00:00Z anchor %s: recharge", fx.anchor[0]);
}

Test(reconcile, usage_and_connection_errors_exit_2)
{
        static const char *const bad_time[] = {"--from", "noon", NULL};
        static const char *const reversed[] = {"--from", "1767243600", "--to", "1767225600", NULL};
        static const char *const unknown[] = {"--since", "1767225600", NULL};
        static const char *const no_redis[] = {"--no-redis", NULL};
        char unreachable[128];

        cr_assert(eq(int, run_with(fx.mysql_url, "redis://127.0.0.1:1/0", bad_time),
                     RECONCILE_ERROR));
        expect_line("--from noon");
        cr_assert(eq(int, run_with(fx.mysql_url, "redis://127.0.0.1:1/0", reversed),
                     RECONCILE_ERROR));
        cr_assert(
                eq(int, run_with(fx.mysql_url, "redis://127.0.0.1:1/0", unknown), RECONCILE_ERROR));
        expect_line("usage:");
        snprintf(unreachable, sizeof(unreachable), "mysql://u:p@127.0.0.1:%d/db",
                 support_free_port());
        cr_assert(
                eq(int, run_with(unreachable, "redis://127.0.0.1:1/0", no_redis), RECONCILE_ERROR));
        expect_line("mysql 127.0.0.1:");
        cr_assert(
                eq(int, run_with(fx.mysql_url, "", (const char *const[]){NULL}), RECONCILE_ERROR));
        expect_line("LIVEFLOW_REDIS_URL is not set");
        cr_assert(eq(int,
                     run_with(fx.mysql_url, "redis://127.0.0.1:1/0", (const char *const[]){NULL}),
                     RECONCILE_ERROR),
                  "Redis unreachable");
        /* An empty, migrated database without Redis: nothing to disagree about. */
        cr_assert(eq(int, run_with(fx.mysql_url, "redis://127.0.0.1:1/0", no_redis),
                     RECONCILE_AGREE));
        expect_line("skipped (--no-redis)");
}

/* ------------------------------------------------------------------ what the tables alone miss */

Test(reconcile, by_default_the_range_runs_up_to_now_and_json_is_one_document)
{
        static const char *const json_args[] = {"--json", NULL};
        json_t *doc, *check;
        json_error_t jerr;
        size_t i;
        bool found_tip = false, found_old = false;

        use_redis_db(1);
        /* A tip of this very minute that the settlement worker has not seen (yet). */
        exec_sql(
                "INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, amount, tipped_at) "
                "VALUES ('%s_now', 'u', '%s', '%s', 42, NOW(3))",
                fx.prefix, fx.anchor[0], fx.room[0]);
        /* And one of long ago that no other table has either: all of time is in range. */
        exec_sql(
                "INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, amount, tipped_at) "
                "VALUES ('%s_old', 'u', '%s', '%s', 43, '2020-02-02 02:02:02')",
                fx.prefix, fx.anchor[0], fx.room[0]);
        cr_assert(eq(int, run_with(fx.mysql_url, fx.redis_url, json_args), RECONCILE_DIFFER));
        doc = json_loadb(fx.out, strcspn(fx.out, "\n"), 0, &jerr);
        cr_assert(doc != NULL, "not one JSON line (%s): %s", jerr.text, fx.out);
        cr_assert_str_eq(json_string_value(json_object_get(doc, "result")), "differ");
        cr_assert(json_integer_value(json_object_get(doc, "differences")) >= 1);
        cr_assert(eq(sz, json_array_size(json_object_get(doc, "checks")), 6));
        json_array_foreach(json_object_get(doc, "checks"), i, check)
        {
                const json_t *line;
                size_t j;

                json_array_foreach(json_object_get(check, "lines"), j, line) found_tip |=
                        strstr(json_string_value(line), "_now (anchor") != NULL;
                json_array_foreach(json_object_get(check, "lines"), j, line) found_old |=
                        strstr(json_string_value(line), "_old (anchor") != NULL;
        }
        cr_assert_str_eq(json_string_value(json_object_get(
                                 json_array_get(json_object_get(doc, "checks"), 4), "check")),
                         "live_streams");
        cr_assert(found_tip, "the tip of now is not named: %s", fx.out);
        cr_assert(found_old, "the tip of 2020 is not named: %s", fx.out);
        json_decref(doc);
}

Test(reconcile, live_stream_keys_that_disagree_with_live_streams_exit_1)
{
        static const char *const no_args[] = {NULL};

        use_redis_db(2);
        exec_sql(
                "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, status, "
                "started_at, last_event_at) VALUES ('%s_s1', '%s', '%s', 9, 'srs', 'live', NOW(3), NOW(3))",
                fx.prefix, fx.anchor[0], fx.room[0]);
        redis_cmd("SADD set:live:online %s_gone", fx.prefix);
        cr_assert(eq(int, run_with(fx.mysql_url, fx.redis_url, no_args), RECONCILE_DIFFER));
        expect_line("[5] set:live:online and hash:anchor:status:* vs live_streams");
        expect_line("online %s_s1: Redis not a member, live_streams says live", fx.prefix);
        expect_line("online %s_gone: Redis a member, live_streams says not live", fx.prefix);
        expect_line("anchor %s: Redis status (nil)", fx.anchor[0]);
        /* Projected as the stream role does: agreed. */
        redis_cmd("SREM set:live:online %s_gone", fx.prefix);
        redis_cmd("SADD set:live:online %s_s1", fx.prefix);
        redis_cmd("HSET hash:anchor:status:%s status live stream_id %s_s1 session_id 9 started_at "
                  "%lld",
                  fx.anchor[0], fx.prefix,
                  support_query_int(fx.mysql, "SELECT CAST(UNIX_TIMESTAMP(started_at) * 1000 AS "
                                              "SIGNED) DIV 1000 FROM live_streams"));
        cr_assert(eq(int, run_with(fx.mysql_url, fx.redis_url, no_args), RECONCILE_AGREE));
}

/* Produces one tip (or, with group, its dead letter for that group) to topic. */
static void produce_tip(rd_kafka_t *rk, struct codec *codec, const char *topic, const char *tip,
                        long long ts_ms, const char *group)
{
        char err[256];
        void *buf;
        size_t len;
        json_t *payload =
                json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "tip_id", tip, "audience_id", "u1",
                          "anchor_id", fx.anchor[0], "room_id", fx.room[0], "amount",
                          (json_int_t)77, "gift_count", (json_int_t)1, "ts_ms", (json_int_t)ts_ms);
        struct envelope env = {.event_id = tip,
                               .vendor = "internal",
                               .event_type = "reward",
                               .anchor_id = fx.anchor[0],
                               .room_id = fx.room[0],
                               .event_time_ms = ts_ms,
                               .receive_time_ms = ts_ms,
                               .trace_id = tip,
                               .raw = "{}",
                               .raw_len = 2};

        cr_assert(codec_encode(codec, &env, "Reward", payload, &buf, &len, err, sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        cr_assert(rd_kafka_producev(
                          rk, RD_KAFKA_V_TOPIC(topic),
                          RD_KAFKA_V_KEY(fx.anchor[0], strlen(fx.anchor[0])),
                          RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADER("dlq.group", group, (ssize_t)(group ? -1 : 0)),
                          RD_KAFKA_V_END) == 0);
        free(buf);
}

Test(reconcile, every_tip_of_the_topic_is_in_each_ledger_or_named_in_the_dlq)
{
        static const char *const ledgers[] = {"recharge", "settlement_detail", "stats_tip"};
        char topic[96], dlq[128], a[96], b[96], c[96], err[256];
        const char *args[] = {"--from",     "2026-01-01",     "--to", "2026-01-02",
                              "--no-redis", "--reward-topic", topic,  NULL};
        rd_kafka_t *rk = support_producer();
        struct codec *codec = codec_new(err, sizeof(err));

        cr_assert(codec != NULL, "%s", err);
        snprintf(topic, sizeof(topic), "test.%s.reward", fx.prefix);
        snprintf(dlq, sizeof(dlq), "%s.dlq", topic);
        snprintf(a, sizeof(a), "%s_a", fx.prefix);
        snprintf(b, sizeof(b), "%s_b", fx.prefix);
        snprintf(c, sizeof(c), "%s_c", fx.prefix);
        produce_tip(rk, codec, topic, a, BASE_S * 1000 + 1000, NULL);
        produce_tip(rk, codec, topic, b, BASE_S * 1000 + 2000, NULL);
        produce_tip(rk, codec, topic, b, BASE_S * 1000 + 2000, NULL); /* posted twice: one tip */
        produce_tip(rk, codec, topic, c, BASE_S * 1000 + 3000, NULL);
        produce_tip(rk, codec, topic, "outside", BASE_S * 1000 + 2 * 86400000LL, NULL);
        produce_tip(rk, codec, dlq, b, BASE_S * 1000 + 2000, "liveflow.settlement");
        cr_assert(rd_kafka_flush(rk, 20000) == 0);
        rd_kafka_destroy(rk);
        codec_destroy(codec);
        /* a in every ledger, b in recharge only (settlement dead-lettered it), c nowhere. */
        exec_sql(
                "INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, amount, tipped_at) "
                "VALUES ('%s', 'u1', '%s', '%s', 77, FROM_UNIXTIME(%lld)), ('%s', 'u1', '%s', '%s', 77, "
                "FROM_UNIXTIME(%lld))",
                a, fx.anchor[0], fx.room[0], BASE_S + 1, b, fx.anchor[0], fx.room[0], BASE_S + 2);
        exec_sql(
                "INSERT INTO settlement_detail (trace_id, anchor_id, amount, ratio_bp, anchor_amount, "
                "platform_amount, tipped_at) VALUES ('%s', '%s', 77, 5000, 38, 39, FROM_UNIXTIME(%lld))",
                a, fx.anchor[0], BASE_S + 1);
        exec_sql(
                "INSERT INTO stats_tip (trace_id, event_id, audience_id, anchor_id, room_id, amount, "
                "gift_count, anchor_gender, audience_gender, tipped_at, hour) VALUES ('%s', 'e', 'u1', "
                "'%s', '%s', 77, 1, 'unknown', 'unknown', FROM_UNIXTIME(%lld), FROM_UNIXTIME(%lld))",
                a, fx.anchor[0], fx.room[0], BASE_S + 1, BASE_S);

        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), 1);
        cr_assert(eq(int, run_with(fx.mysql_url, "", args), RECONCILE_DIFFER));
        expect_line("[6] every tip of %s in the range", topic);
        expect_line("tip %s (amount 77, %s [", b, topic);
        expect_line("not in settlement_detail, dead-lettered by liveflow.settlement at %s [", dlq);
        expect_line("tip %s (amount 77, %s [", c, topic);
        for (size_t l = 0; l < 3; l++)
                expect_line("not in %s and not in %s for", ledgers[l], dlq);
        expect_line("3 tip(s) on %s in the range, 1 dead letter(s)", topic);
        expect_line("DIFFERENT: 5 finding(s)");
        expect_no("outside");
        /* Without a broker address the check says it was skipped. */
        unsetenv("LIVEFLOW_KAFKA_BOOTSTRAP");
        run_with(fx.mysql_url, "", args);
        expect_line("skipped (--no-topic, or LIVEFLOW_KAFKA_BOOTSTRAP not set)");
}
