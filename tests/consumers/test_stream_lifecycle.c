/* test_stream_lifecycle.c: the stream role, run as its binary against the real fixtures: begin,
 * end, duplicates and reordering, the DLQ. Its parts in stream_lifecycle/: handoff.c (sessions
 * handed off, notify records, bans and suspensions), redis_lost.c (live keys rebuilt after a
 * flush), sweep.c (the ghost sweep, run only by test_stream_sweep); fixture.h is what they share.
 * test_stream_sweep.c and stream_sweep/ compile the same files with STREAM_SWEEP_ONLY. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "url.h"
#include "stream_lifecycle/fixture.h"

struct fixture fx;

/* Starts the stream role with the fixed test environment plus extra "K=V" entries (NULL-terminated;
 * NULL for none). */
void start_consumer_with(const char *const *extra)
{
        char bin[512], e_boot[512], e_mysql[600], e_redis[300], e_admin[64], e_group[128];
        char *argv[] = {bin, (char *)"stream", NULL};
        char *env[16] = {e_boot,
                         e_mysql,
                         e_redis,
                         e_admin,
                         e_group,
                         (char *)"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000",
                         (char *)"LIVEFLOW_RETRY_BACKOFF_MS=50",
                         (char *)"LIVEFLOW_LOG_LEVEL=debug",
                         NULL};
        size_t n = 8;

        for (size_t i = 0; extra && extra[i]; i++) {
                cr_assert(n + 1 < sizeof(env) / sizeof(env[0]), "too many extra variables");
                env[n++] = (char *)extra[i];
        }
        env[n] = NULL;

        support_bin_path("liveflow-consumer", bin, sizeof(bin));
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.w.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        fx.w.admin_port = support_free_port();
        /* Tests run in parallel: each needs every partition, so each gets its own group. */
        snprintf(e_group, sizeof(e_group), "LIVEFLOW_GROUP_ID=%s", fx.w.group);
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", fx.w.admin_port);
        fx.w.pid = support_spawn(argv, env, fx.w.log_path);
        cr_assert(support_wait_ready(fx.w.admin_port, 20000) == 0, "consumer not ready; see %s",
                  fx.w.log_path);
}

void start_consumer(void)
{
        start_consumer_with(NULL);
}

/* Everything but the consumer, which a test then starts with the environment it needs. */
void setup_stores(void)
{
        support_worker_fx_open(&fx.w, "st");
        fx.redis = redisConnect("127.0.0.1", atoi(support_fixture("LIVEFLOW_TEST_REDIS_PORT")));
        cr_assert(fx.redis && !fx.redis->err);
        /* What earlier suites left on live.stream is not this test's backlog (its group is
         * test.<prefix>, see start_consumer_with()). */
        support_group_at_end(fx.w.group, (const char *const[]){"live.stream", NULL});
}

static void setup(void)
{
        setup_stores();
        start_consumer();
}

void teardown(void)
{
        support_worker_fx_close(&fx.w);
        if (fx.redis)
                redisFree(fx.redis);
        memset(&fx, 0, sizeof(fx));
}

/* Produces one raw value to live.stream keyed by the stream, and waits for the ack. */
void produce_raw(const char *stream_id, const void *value, size_t len)
{
        cr_assert(rd_kafka_producev(
                          fx.w.producer, RD_KAFKA_V_TOPIC("live.stream"),
                          RD_KAFKA_V_KEY(stream_id, strlen(stream_id)),
                          RD_KAFKA_V_VALUE((void *)value, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADER("trace_id", "0123456789abcdef0123456789abcdef", -1),
                          RD_KAFKA_V_HEADER("event_type", "test", -1), RD_KAFKA_V_END) == 0);
        cr_assert(rd_kafka_flush(fx.w.producer, 10000) == 0);
}

/* The event id produce_event() gives a stream event: it follows vendor, type, stream, sequence. */
void stream_event_id(const char *stream_id, bool begin, const char *sequence, char out[65])
{
        char key[256];

        snprintf(key, sizeof(key), "tencent|%d|%s|%s", begin ? 1 : 0, stream_id, sequence);
        crypto_sha256_hex(key, strlen(key), out);
}

/* A stream event of `anchor` as the receiver would make it. */
void produce_event_of(const char *anchor, const char *stream_id, bool begin, const char *sequence,
                      long long event_time_s, int close_method, long long push_duration_ms)
{
        void *buf;
        size_t len;

        support_worker_encode_stream_event(&fx.w, anchor, stream_id, begin, sequence, event_time_s,
                                           close_method, push_duration_ms, &buf, &len);
        produce_raw(stream_id, buf, len);
        free(buf);
}

/* A stream event of this test's anchor, anchor_<prefix>. */
void produce_event(const char *stream_id, bool begin, const char *sequence, long long event_time_s,
                   int close_method, long long push_duration_ms)
{
        char anchor[64];

        snprintf(anchor, sizeof(anchor), "anchor_%s", fx.w.prefix);
        produce_event_of(anchor, stream_id, begin, sequence, event_time_s, close_method,
                         push_duration_ms);
}

/* First column of the first row as text, or "" when there is no row or it is NULL. */
void query1(char *out, size_t out_size, const char *fmt, ...)
{
        char sql[1024];
        va_list ap;
        MYSQL_RES *res;
        MYSQL_ROW row;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        out[0] = '\0';
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.w.mysql));
        res = mysql_store_result(fx.w.mysql);
        if (res && (row = mysql_fetch_row(res)) && row[0])
                snprintf(out, out_size, "%s", row[0]);
        if (res)
                mysql_free_result(res);
}

/* Waits until the stream's status column reads `want`. */
void wait_status(const char *stream_id, const char *want)
{
        char got[32] = "";
        long long deadline = support_now_ms() + 20000;

        while (support_now_ms() < deadline) {
                query1(got, sizeof(got), "SELECT status FROM live_streams WHERE stream_id = '%s'",
                       stream_id);
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(50);
        }
        cr_assert_fail("stream %s status is \"%s\", want \"%s\" (consumer log: %s)", stream_id, got,
                       want, fx.w.log_path);
}

/* Waits until the role has recorded n events for the stream (applied, stale or duplicate). */
void wait_events(const char *stream_id, int n)
{
        char got[32] = "";
        long long deadline = support_now_ms() + 20000;

        while (support_now_ms() < deadline) {
                query1(got, sizeof(got), "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'",
                       stream_id);
                if (atoi(got) >= n)
                        return;
                support_sleep_ms(50);
        }
        cr_assert_fail("stream %s has %s events, want %d (log: %s)", stream_id, got, n,
                       fx.w.log_path);
}

bool is_online(const char *stream_id)
{
        redisReply *r = redisCommand(fx.redis, "SISMEMBER set:live:online %s", stream_id);
        bool yes = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;

        freeReplyObject(r);
        return yes;
}

/* Redis follows MySQL right after the commit: wait for it rather than race it. */
bool wait_online(const char *stream_id, bool want)
{
        long long deadline = support_now_ms() + 10000;

        while (is_online(stream_id) != want && support_now_ms() < deadline)
                support_sleep_ms(20);
        return is_online(stream_id) == want;
}

void stop_consumer_expect_clean_exit(void)
{
        cr_assert(kill(fx.w.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.w.pid, 20000), 0,
                     "consumer did not drain cleanly; see %s", fx.w.log_path);
        fx.w.pid = 0;
}

TestSuite(stream_lifecycle, .init = setup, .fini = teardown, .timeout = 120,
          .disabled = IS_SWEEP_BINARY);

Test(stream_lifecycle, begin_then_end_sets_live_then_ended_and_redis)
{
        char s[64], v[64];

        snprintf(s, sizeof(s), "%s_a", fx.w.prefix);
        produce_event(s, true, "9001", 1703731478, 0, -1);
        wait_status(s, "live");
        cr_assert(wait_online(s, true), "%s not in set:live:online", s);
        redisReply *r =
                redisCommand(fx.redis, "HGET hash:anchor:status:anchor_%s stream_id", fx.w.prefix);
        cr_assert(r && r->type == REDIS_REPLY_STRING);
        cr_assert_str_eq(r->str, s);
        freeReplyObject(r);
        query1(v, sizeof(v),
               "SELECT session_id IS NOT NULL FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "1");

        produce_event(s, false, "9001", 1703735203, 1, 3725118);
        wait_status(s, "ended");
        query1(v, sizeof(v), "SELECT duration_s FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "3725");
        query1(v, sizeof(v), "SELECT close_method FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "1");
        cr_assert(wait_online(s, false), "%s still in set:live:online", s);
        stop_consumer_expect_clean_exit();
}

Test(stream_lifecycle, duplicates_and_reordering_leave_one_correct_session)
{
        char a[64], b[64], c[64], v[64], session[32];

        snprintf(a, sizeof(a), "%s_dup", fx.w.prefix);
        snprintf(b, sizeof(b), "%s_late", fx.w.prefix);
        snprintf(c, sizeof(c), "%s_stale", fx.w.prefix);

        /* a: begin, begin again (vendor retry), end, end again. */
        produce_event(a, true, "1", 1000, 0, -1);
        produce_event(a, true, "1", 1000, 0, -1);
        produce_event(a, false, "1", 1060, 1, 60000);
        produce_event(a, false, "1", 1060, 1, 60000);
        /* b: the end overtakes the begin. */
        produce_event(b, false, "2", 2100, 1, -1);
        produce_event(b, true, "2", 2000, 0, -1);
        /* c: a newer session, then a stale begin of an older one. */
        produce_event(c, true, "31", 3000, 0, -1);
        produce_event(c, true, "30", 2500, 0, -1);

        wait_events(a, 2);
        wait_events(b, 2);
        wait_events(c, 2);
        wait_status(a, "ended");
        query1(v, sizeof(v), "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", a);
        cr_assert_str_eq(v, "2", "duplicates must be recorded once");
        query1(v, sizeof(v), "SELECT duration_s FROM live_streams WHERE stream_id = '%s'", a);
        cr_assert_str_eq(v, "60");

        wait_status(b, "ended");
        query1(v, sizeof(v), "SELECT duration_s FROM live_streams WHERE stream_id = '%s'", b);
        cr_assert_str_eq(v, "100", "the late begin must supply the start");
        cr_assert(wait_online(b, false));

        query1(v, sizeof(v), "SELECT vendor_session FROM live_streams WHERE stream_id = '%s'", c);
        cr_assert_str_eq(v, "31", "a stale begin must not replace the newer session");
        query1(session, sizeof(session),
               "SELECT session_id FROM live_streams WHERE stream_id = '%s'", c);
        cr_assert(wait_online(c, true));
        stop_consumer_expect_clean_exit();
}

Test(stream_lifecycle, undecodable_record_goes_to_dlq_and_the_partition_moves_on)
{
        char bad[64];
        struct support_dead_letter dead;

        /* Same key, so same partition: the good record must not be held behind the bad one. */
        snprintf(bad, sizeof(bad), "%s_bad", fx.w.prefix);
        produce_raw(bad, "\xc3\x01garbage", 9);
        produce_event(bad, true, "77", 5000, 0, -1);
        wait_status(bad, "live");
        cr_assert_eq(support_dead_letters("live.stream", bad, fx.w.group, &dead, 1, 20000), 1,
                     "no DLQ record for %s", bad);
        cr_assert(dead.has_headers, "dlq.* headers missing on the dead letter of %s", bad);
        cr_assert_str_eq(dead.error_class, "permanent");
        stop_consumer_expect_clean_exit();
}
