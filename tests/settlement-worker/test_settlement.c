/*
 * test_settlement.c: the settlement role through liveflow-settlement on the real fixtures: the
 * split rule on awkward amounts, ratios that change over time, replays, withdrawals, two
 * copies racing for one anchor's balance, kill -9 mid-run, and session summaries. Every
 * expectation is computed here from what the test sent, with the rule stated in
 * settlement.h (anchor gets floor(amount * ratio_bp / 10000)) evaluated in 128 bits. This file
 * holds the split and the tips; its parts in settlement/: withdrawals.c (withdrawals, two copies,
 * kill -9) and sessions.c (session summaries, the dead letter); fixture.h is what they share.
 */
#include <ctype.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "codec.h"
#include "crypto.h"
#include "settlement.h"
#include "support.h"
#include "settlement/fixture.h"

/* The rule, independently of settlement_split(): the anchor's share, floored, in 128 bits. */
long long anchor_share(long long amount, long long ratio_bp)
{
        return (long long)((__int128)amount * ratio_bp / 10000);
}

/* ------------------------------------------------------------------ the split, no fixtures */

TestSuite(split);

Test(split, anchor_gets_the_floor_and_the_platform_the_rest_for_awkward_amounts)
{
        static const long long amounts[] = {
                0, 1, 3, 9999, 10000, 10001, 99999999, 100000000, 9000000000000000000LL, LLONG_MAX};
        static const long long ratios[] = {0, 1, 3333, 5000, 6667, 9999, 10000};

        for (size_t i = 0; i < sizeof(amounts) / sizeof(amounts[0]); i++) {
                for (size_t j = 0; j < sizeof(ratios) / sizeof(ratios[0]); j++) {
                        struct settlement_split s;
                        long long want = anchor_share(amounts[i], ratios[j]);

                        cr_assert(eq(int, settlement_split(amounts[i], ratios[j], &s), 0));
                        cr_assert(eq(i64, s.anchor_amount, want), "amount %lld ratio %lld",
                                  amounts[i], ratios[j]);
                        cr_assert(eq(i64, s.platform_amount, amounts[i] - want),
                                  "amount %lld ratio %lld", amounts[i], ratios[j]);
                }
        }
}

Test(split, refuses_negative_amounts_and_ratios_outside_0_to_10000)
{
        struct settlement_split s = {-7, -7};

        cr_assert(eq(int, settlement_split(-1, 5000, &s), -1));
        cr_assert(eq(int, settlement_split(100, -1, &s), -1));
        cr_assert(eq(int, settlement_split(100, 10001, &s), -1));
        cr_assert(eq(i64, s.anchor_amount, -7), "untouched on error");
}

/* ------------------------------------------------------------------ the worker's fixture */

struct fixture fx;

static void setup(void)
{
        support_worker_fx_open(&fx.w, "st");
        snprintf(fx.w.log_path, sizeof(fx.w.log_path), "/tmp/%s.settlement.log", fx.w.prefix);
        /* What earlier suites left on the shared topics is not this test's backlog. */
        support_group_at_end(fx.w.group, (const char *const[]){"live.reward", "live.withdrawal",
                                                               "live.session", NULL});
}

static void teardown(void)
{
        for (int i = 0; i < MAX_COPIES; i++) {
                if (fx.copies[i].pid > 0 && support_wait_exit(fx.copies[i].pid, 0) == -1) {
                        kill(fx.copies[i].pid, SIGKILL);
                        support_wait_exit(fx.copies[i].pid, 5000);
                }
        }
        support_worker_fx_close(&fx.w);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(settlement, .init = setup, .fini = teardown, .timeout = 240);

/* Starts copy i of the worker; extra is one more "K=V" or NULL. */
void start_copy(int i, const char *extra)
{
        char bin[512], e_boot[512], e_mysql[600], e_redis[300], e_admin[64], e_group[128],
                e_inst[96];
        char *argv[] = {bin, NULL};
        char *env[] = {e_boot,
                       e_mysql,
                       e_redis,
                       e_admin,
                       e_group,
                       e_inst,
                       (char *)"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000",
                       (char *)"LIVEFLOW_RETRY_BACKOFF_MS=50",
                       (char *)"LIVEFLOW_BATCH_MAX=50",
                       (char *)"LIVEFLOW_SETTLEMENT_DEFAULT_RATIO_BP=4500",
                       (char *)extra,
                       NULL};

        support_bin_path("liveflow-settlement", bin, sizeof(bin));
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.w.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        fx.copies[i].admin_port = support_free_port();
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", fx.copies[i].admin_port);
        snprintf(e_group, sizeof(e_group), "LIVEFLOW_GROUP_ID=%s", fx.w.group);
        snprintf(e_inst, sizeof(e_inst), "LIVEFLOW_INSTANCE_ID=%s-%d", fx.w.prefix, i);
        fx.copies[i].pid = support_spawn(argv, env, fx.w.log_path);
        cr_assert(support_wait_ready(fx.copies[i].admin_port, 20000) == 0,
                  "copy %d not ready; see %s", i, fx.w.log_path);
}

void stop_copy(int i)
{
        cr_assert(kill(fx.copies[i].pid, SIGTERM) == 0);
        cr_assert(eq(int, support_wait_exit(fx.copies[i].pid, 30000), 0),
                  "copy %d: no clean drain; see %s", i, fx.w.log_path);
        fx.copies[i].pid = 0;
}

/* ------------------------------------------------------------------ producing */

/* Encodes and queues one event; id_key makes the event id, as the receiver's ids are made. */
void produce(const char *topic, const char *key, const char *event_type, const char *id_key,
             const char *anchor, const char *room, long long time_ms, const char *payload_name,
             json_t *payload)
{
        char event_id[65], err[256];
        void *buf;
        size_t len;
        struct envelope env = {
                .event_id = event_id,
                .vendor = "internal",
                .event_type = event_type,
                .anchor_id = anchor,
                .room_id = room,
                .event_time_ms = time_ms,
                .receive_time_ms = time_ms + 5,
                .trace_id = TRACE,
                .raw = "{}",
                .raw_len = 2,
        };

        crypto_sha256_hex(id_key, strlen(id_key), event_id);
        cr_assert(codec_encode(fx.w.codec, &env, payload_name, payload, &buf, &len, err,
                               sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        cr_assert(rd_kafka_producev(
                          fx.w.producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                          RD_KAFKA_V_HEADER("trace_id", TRACE, -1),
                          RD_KAFKA_V_HEADER("event_type", event_type, -1), RD_KAFKA_V_END) == 0);
}

/* A tip as the receiver produces it; `copy` > 0 makes a different event id for the same tip. */
void produce_tip_as(const char *anchor, const char *tip_id, long long amount, long long ts_ms,
                    const char *audience, int copy)
{
        char id_key[160], room[96];

        snprintf(id_key, sizeof(id_key), copy ? "internal|reward|%s|copy%d" : "internal|reward|%s",
                 tip_id, copy);
        snprintf(room, sizeof(room), "room_%s", anchor);
        produce("live.reward", anchor, "reward", id_key, anchor, room, ts_ms, "Reward",
                json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "tip_id", tip_id, "audience_id",
                          audience, "anchor_id", anchor, "room_id", room, "amount",
                          (json_int_t)amount, "gift_count", (json_int_t)1, "ts_ms",
                          (json_int_t)ts_ms));
}

void produce_tip(const char *anchor, const char *tip_id, long long amount, long long ts_ms)
{
        produce_tip_as(anchor, tip_id, amount, ts_ms, "aud", 0);
}

void produce_withdrawal_as(const char *key, const char *anchor, const char *request_id,
                           long long amount, int copy)
{
        char id_key[160];

        snprintf(id_key, sizeof(id_key),
                 copy ? "internal|withdrawal|%s|copy%d" : "internal|withdrawal|%s", request_id,
                 copy);
        produce("live.withdrawal", key, "withdrawal", id_key, anchor, NULL, BASE_MS, "Withdrawal",
                json_pack("{s:s,s:s,s:I}", "request_id", request_id, "anchor_id", anchor, "amount",
                          (json_int_t)amount));
}

void produce_withdrawal(const char *anchor, const char *request_id, long long amount)
{
        produce_withdrawal_as(anchor, anchor, request_id, amount, 0);
}

void produce_session_end(long long session_id, const char *anchor, const char *room,
                         long long started_ms, long long ended_ms)
{
        char id_key[64], stream[96];

        snprintf(id_key, sizeof(id_key), "session.end|%lld", session_id);
        snprintf(stream, sizeof(stream), "stream_%s", anchor);
        produce("live.session", stream, "session.end", id_key, anchor, room, ended_ms, "SessionEnd",
                json_pack("{s:I,s:I,s:I,s:I,s:i}", "session_id", (json_int_t)session_id,
                          "started_at_ms", (json_int_t)started_ms, "ended_at_ms",
                          (json_int_t)ended_ms, "duration_s",
                          (json_int_t)((ended_ms - started_ms) / 1000), "close_method", 1));
}

void flush(void)
{
        cr_assert(rd_kafka_flush(fx.w.producer, 20000) == 0);
}

/* ------------------------------------------------------------------ reading MySQL */

long long query_int(const char *fmt, ...)
{
        char sql[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        return support_query_int(fx.w.mysql, "%s", sql);
}

/* Polls until the query returns want; @returns the last value seen. */
long long wait_int(long long want, int timeout_ms, const char *fmt, ...)
{
        char sql[2048];
        long long deadline = support_now_ms() + timeout_ms, got;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        while ((got = support_query_int(fx.w.mysql, "%s", sql)) != want &&
               support_now_ms() < deadline)
                support_sleep_ms(100);
        return got;
}

void exec_sql(const char *fmt, ...)
{
        char sql[4096];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.w.mysql));
}

void set_ratio(const char *anchor, long long effective_ms, long long ratio_bp)
{
        exec_sql(
                "INSERT INTO revenue_share (anchor_id, effective_at, ratio_bp) VALUES ('%s', FROM_UNIXTIME(%lld / 1000), %lld)",
                anchor, effective_ms, ratio_bp);
}

void wait_details(const char *like, long long want)
{
        long long got =
                wait_int(want, 60000,
                         "SELECT COUNT(*) FROM settlement_detail WHERE trace_id LIKE '%s'", like);

        cr_assert(eq(i64, got, want), "settlement_detail rows like %s (log %s)", like,
                  fx.w.log_path);
}

void expect_balance(const char *anchor, long long total, long long withdrawn)
{
        cr_assert(
                eq(i64,
                   query_int("SELECT total_amount FROM settlement WHERE anchor_id = '%s'", anchor),
                   total),
                "total of %s", anchor);
        cr_assert(eq(i64,
                     query_int("SELECT withdrawn_amount FROM settlement WHERE anchor_id = '%s'",
                               anchor),
                     withdrawn),
                  "withdrawn of %s", anchor);
        cr_assert(eq(i64,
                     query_int("SELECT available_amount FROM settlement WHERE anchor_id = '%s'",
                               anchor),
                     total - withdrawn),
                  "available of %s", anchor);
}

/* The counter of one copy's /metrics line that starts with `series`, or -1. */
long long scrape(int port, const char *series)
{
        char cmd[300], out[64] = "";
        FILE *p;

        snprintf(
                cmd, sizeof(cmd),
                "curl -sf http://127.0.0.1:%d/metrics | grep -v '^#' | grep -F '%s' | awk '{print $2}'",
                port, series);
        if (!(p = popen(cmd, "r")))
                return -1;
        if (!fgets(out, sizeof(out), p))
                out[0] = '\0';
        pclose(p);
        return out[0] ? atoll(out) : -1;
}

/* ------------------------------------------------------------------ tips */

Test(settlement, each_tip_takes_the_ratio_in_force_at_its_own_time)
{
        char a[64], b[64], like[80];
        const long long t1 = BASE_MS + 10000, t2 = BASE_MS + 20000;
        struct {
                const char *anchor;
                long long ts_ms, amount,
                        ratio_bp; /* ratio_bp: what the revenue_share rows below mean */
        } tips[] = {
                {a, BASE_MS, 1001, 4500}, /* before any row: LIVEFLOW_SETTLEMENT_DEFAULT_RATIO_BP */
                {a, t1 - 1, 1003, 4500},  {a, t1, 1007, 3000}, /* effective_at itself counts */
                {a, t2 - 1, 9999, 3000},  {a, t2, 9999, 7000}, {a, t2 + 3600000, 12345, 7000},
                {b, t1, 501, 4500}, /* b's own row starts later: another anchor's ratio is not b's
                                     */
                {b, t2 + 1, 501, 9000},
        };
        const size_t n = sizeof(tips) / sizeof(tips[0]);
        long long total_a = 0, total_b = 0;

        snprintf(a, sizeof(a), "%s_a", fx.w.prefix);
        snprintf(b, sizeof(b), "%s_b", fx.w.prefix);
        snprintf(like, sizeof(like), "%s_t%%", fx.w.prefix);
        set_ratio(a, t1, 3000);
        set_ratio(a, t2, 7000);
        set_ratio(b, t2, 9000);
        start_copy(0, NULL);
        /* Newest first: the ratio follows each tip's time, not the order of arrival. */
        for (size_t i = n; i-- > 0;) {
                char tip[96];

                snprintf(tip, sizeof(tip), "%s_t%zu", fx.w.prefix, i);
                produce_tip(tips[i].anchor, tip, tips[i].amount, tips[i].ts_ms);
        }
        flush();
        wait_details(like, (long long)n);
        for (size_t i = 0; i < n; i++) {
                long long share = anchor_share(tips[i].amount, tips[i].ratio_bp);
                char tip[96];

                snprintf(tip, sizeof(tip), "%s_t%zu", fx.w.prefix, i);
                cr_assert(
                        eq(i64,
                           query_int("SELECT ratio_bp FROM settlement_detail WHERE trace_id = '%s'",
                                     tip),
                           tips[i].ratio_bp),
                        "ratio of tip %zu", i);
                cr_assert(
                        eq(i64,
                           query_int(
                                   "SELECT anchor_amount FROM settlement_detail WHERE trace_id = '%s'",
                                   tip),
                           share),
                        "anchor_amount of tip %zu", i);
                cr_assert(
                        eq(i64,
                           query_int(
                                   "SELECT platform_amount FROM settlement_detail WHERE trace_id = '%s'",
                                   tip),
                           tips[i].amount - share),
                        "platform_amount of tip %zu", i);
                *(tips[i].anchor == a ? &total_a : &total_b) += share;
        }
        expect_balance(a, total_a, 0);
        expect_balance(b, total_b, 0);
        stop_copy(0);
}

/* MySQL takes ids that differ only in case for one: a ratio filed under another spelling of
 * the anchor is the tip's ratio, in a batch as one record at a time. */
Test(settlement, a_ratio_filed_under_another_spelling_of_the_anchor_applies)
{
        char a[64], upper[64], b[64], like[80];
        const long long t1 = BASE_MS + 10000;
        struct {
                const char *anchor;
                long long ts_ms, amount, ratio_bp;
        } tips[] = {
                {a, BASE_MS, 1001, 4500}, /* before the row: the default */
                {a, t1, 1003, 3000},
                {a, t1 + 5, 777, 3000},
                {b, t1, 1009, 6000}, /* a plain anchor beside it in the same batch */
        };
        const size_t n = sizeof(tips) / sizeof(tips[0]);
        long long total_a = 0, total_b = 0;

        snprintf(a, sizeof(a), "%s_a", fx.w.prefix);
        snprintf(b, sizeof(b), "%s_b", fx.w.prefix);
        snprintf(like, sizeof(like), "%s_t%%", fx.w.prefix);
        for (size_t i = 0; i <= strlen(a); i++)
                upper[i] = (char)toupper((unsigned char)a[i]);
        cr_assert(strcmp(upper, a) != 0, "the prefix has letters");
        set_ratio(upper, t1, 3000);
        set_ratio(b, BASE_MS - 1000, 6000);
        start_copy(0, NULL);
        for (size_t i = 0; i < n; i++) {
                char tip[96];

                snprintf(tip, sizeof(tip), "%s_t%zu", fx.w.prefix, i);
                produce_tip(tips[i].anchor, tip, tips[i].amount, tips[i].ts_ms);
        }
        flush();
        wait_details(like, (long long)n);
        for (size_t i = 0; i < n; i++) {
                char tip[96];

                snprintf(tip, sizeof(tip), "%s_t%zu", fx.w.prefix, i);
                cr_assert(
                        eq(i64,
                           query_int("SELECT ratio_bp FROM settlement_detail WHERE trace_id = '%s'",
                                     tip),
                           tips[i].ratio_bp),
                        "ratio of tip %zu", i);
                *(tips[i].anchor == a ? &total_a : &total_b) +=
                        anchor_share(tips[i].amount, tips[i].ratio_bp);
        }
        expect_balance(a, total_a, 0);
        expect_balance(b, total_b, 0);
        stop_copy(0);
}

Test(settlement, anchor_and_platform_add_up_exactly_for_awkward_amounts)
{
        /* 100000000 is LIVEFLOW_MAX_AMOUNT's default, 9e18 the most it may be set to. */
        static const long long amounts[] = {
                1, 3, 9999, 10001, 99999999, 100000000, 9000000000000000000LL};
        const long long ratio_bp = 3333;
        const size_t n = sizeof(amounts) / sizeof(amounts[0]);
        char anchor[64], big[64], like[80], bad[96], dlq_class[32] = "";
        long long total = 0;

        snprintf(anchor, sizeof(anchor), "%s_a", fx.w.prefix);
        snprintf(like, sizeof(like), "%s_t%%", fx.w.prefix);
        set_ratio(anchor, 946684800000LL, ratio_bp);
        start_copy(0, NULL);
        for (size_t i = 0; i < n; i++) {
                char tip[96];

                snprintf(tip, sizeof(tip), "%s_t%zu", fx.w.prefix, i);
                produce_tip(anchor, tip, amounts[i], BASE_MS + (long long)i);
        }
        snprintf(bad, sizeof(bad), "%s_zero", fx.w.prefix);
        produce_tip(anchor, bad, 0, BASE_MS); /* never valid: to the dead-letter topic */
        /* Two of the largest tips at 100 %: the second would take the balance past BIGINT. */
        snprintf(big, sizeof(big), "%s_big", fx.w.prefix);
        set_ratio(big, 946684800000LL, 10000);
        for (int i = 0; i < 2; i++) {
                char tip[96];

                snprintf(tip, sizeof(tip), "%s_big%d", fx.w.prefix, i);
                produce_tip(big, tip, 9000000000000000000LL, BASE_MS + i);
        }
        flush();
        wait_details(like, (long long)n);
        for (size_t i = 0; i < n; i++) {
                long long share = anchor_share(amounts[i], ratio_bp);
                char tip[96];

                snprintf(tip, sizeof(tip), "%s_t%zu", fx.w.prefix, i);
                cr_assert(
                        eq(i64,
                           query_int(
                                   "SELECT anchor_amount FROM settlement_detail WHERE trace_id = '%s'",
                                   tip),
                           share),
                        "amount %lld", amounts[i]);
                cr_assert(
                        eq(i64,
                           query_int(
                                   "SELECT platform_amount FROM settlement_detail WHERE trace_id = '%s'",
                                   tip),
                           amounts[i] - share),
                        "amount %lld", amounts[i]);
                total += share;
        }
        cr_assert(eq(i64,
                     query_int("SELECT COUNT(*) FROM settlement_detail WHERE anchor_id = '%s' AND "
                               "anchor_amount + platform_amount <> amount",
                               anchor),
                     0));
        expect_balance(anchor, total, 0);
        cr_assert(eq(int,
                     support_count_records("live.reward.dlq", anchor, "dlq.error.class", dlq_class,
                                           sizeof(dlq_class), 30000, 1),
                     1),
                  "the zero tip is dead-lettered");
        cr_assert_str_eq(dlq_class, "permanent");
        cr_assert(eq(i64,
                     query_int("SELECT COUNT(*) FROM settlement_detail WHERE trace_id = '%s'", bad),
                     0));
        cr_assert(eq(int,
                     support_count_records("live.reward.dlq", big, "dlq.error.class", dlq_class,
                                           sizeof(dlq_class), 30000, 1),
                     1),
                  "the overflowing tip is dead-lettered");
        cr_assert_str_eq(dlq_class, "permanent");
        expect_balance(big, 9000000000000000000LL, 0);
        cr_assert(
                eq(i64,
                   query_int("SELECT COUNT(*) FROM settlement_detail WHERE anchor_id = '%s'", big),
                   1),
                "the dead-lettered tip left no detail row");
        stop_copy(0);
}

/*
 * New tips are written without looking the ledger and settlement_detail up first; a replay of
 * them is looked up (either at once, or after its unread write met the rows and was rolled
 * back), and settles nothing twice.
 */
Test(settlement, new_tips_are_written_unread_and_their_replay_is_looked_up)
{
        const char *unread = "liveflow_settlement_tip_runs_total{way=\"unread\"}";
        const char *read_first = "liveflow_settlement_tip_runs_total{way=\"read_first\"}";
        const char *conflict = "liveflow_settlement_tip_runs_total{way=\"conflict\"}";
        char anchor[64], tip[96], like[80];
        long long share = 0, looked_up;
        int port, sent = 0;

        snprintf(anchor, sizeof(anchor), "%s_u", fx.w.prefix);
        snprintf(like, sizeof(like), "%s_u%%", fx.w.prefix);
        start_copy(0, NULL);
        port = fx.copies[0].admin_port;
        /* Other tests' records reach this group too, replays among them: a run that meets one
         * makes the next look up first, until one finds nothing. Rounds of new tips until one
         * run went unread. */
        for (int round = 0; round < 10 && scrape(port, unread) < 1; round++) {
                for (int i = 0; i < 30; i++, sent++) {
                        snprintf(tip, sizeof(tip), "%s_u%d", fx.w.prefix, sent);
                        produce_tip(anchor, tip, 100 + sent * 37, BASE_MS + sent);
                        share += anchor_share(100 + sent * 37, 4500);
                }
                flush();
                wait_details(like, sent);
        }
        expect_balance(anchor, share, 0);
        cr_assert(ge(i64, scrape(port, unread), 1), "no run was written unread (log %s)",
                  fx.w.log_path);
        looked_up = scrape(port, read_first) + scrape(port, conflict);
        cr_assert(ge(i64, looked_up, 0), "no read_first or conflict counter");

        for (int i = 0; i < sent; i++) { /* the same records again: a replay */
                snprintf(tip, sizeof(tip), "%s_u%d", fx.w.prefix, i);
                produce_tip(anchor, tip, 100 + i * 37, BASE_MS + i);
        }
        snprintf(tip, sizeof(tip), "%s_ulast", fx.w.prefix); /* same partition: after them */
        produce_tip(anchor, tip, 5, BASE_MS + 99999);
        flush();
        wait_details(like, sent + 1);
        expect_balance(anchor, share + anchor_share(5, 4500), 0);
        cr_assert(eq(i64,
                     query_int("SELECT COUNT(*) FROM live_events WHERE consumer = 'settlement' AND "
                               "outcome = 'applied' AND event_id IN (SELECT SHA2(CONCAT("
                               "'internal|reward|', trace_id), 256) FROM settlement_detail WHERE "
                               "trace_id LIKE '%s')",
                               like),
                     sent + 1),
                  "the ledger holds each tip's event");
        cr_assert(gt(i64, scrape(port, read_first) + scrape(port, conflict), looked_up),
                  "the replay was neither looked up first nor rolled back (log %s)", fx.w.log_path);
        stop_copy(0);
}

Test(settlement, a_replayed_tip_is_settled_once)
{
        char anchor[64], tip[96], last[96], like[80], dlq_msg[512] = "";

        snprintf(anchor, sizeof(anchor), "%s_a", fx.w.prefix);
        snprintf(tip, sizeof(tip), "%s_t1", fx.w.prefix);
        snprintf(last, sizeof(last), "%s_t2", fx.w.prefix);
        snprintf(like, sizeof(like), "%s_t%%", fx.w.prefix);
        start_copy(0, NULL);
        produce_tip(anchor, tip, 777, BASE_MS);
        produce_tip(anchor, tip, 777, BASE_MS); /* the same record again (a Kafka replay) */
        produce_tip_as(anchor, tip, 777, BASE_MS, "aud",
                       1); /* the same tip under another event id */
        produce_tip_as(anchor, tip, 778, BASE_MS, "aud",
                       2);                          /* one tip_id, another amount: refused */
        produce_tip(anchor, last, 50, BASE_MS + 1); /* same partition, so processed after them */
        flush();
        wait_details(like, 2);
        expect_balance(anchor, anchor_share(777, 4500) + anchor_share(50, 4500), 0);
        cr_assert(eq(i64,
                     query_int("SELECT amount FROM settlement_detail WHERE trace_id = '%s'", tip),
                     777));
        cr_assert(eq(int,
                     support_count_records("live.reward.dlq", anchor, "dlq.error.message", dlq_msg,
                                           sizeof(dlq_msg), 30000, 1),
                     1),
                  "the conflicting tip is dead-lettered");
        cr_assert(strstr(dlq_msg, tip) != NULL, "the DLQ message names the tip: %s", dlq_msg);
        stop_copy(0);
}
