/* stream_role.c: test_vendor_api's stream role, which asks the vendor to drop a stream it
 * force-closed and, before the ghost sweep closes a silent stream, whether it is still live. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "crypto.h"
#include "fixture.h"
#include "support.h"
#include "support_worker.h"
#include "url.h"

static struct support_worker_fx rf;

static void start_stream_role_with(const char *const *extra);

static const char *const stream_topics[] = {"live.stream", NULL};

static void start_stream_role(void)
{
        start_stream_role_with(NULL);
}

static void start_stream_role_with(const char *const *extra)
{
        char bin[512], e_boot[512], e_mysql[600], e_redis[300], e_admin[64], e_group[128], e_ep[96];
        char *argv[] = {bin, (char *)"stream", NULL};
        char *env[20] = {e_boot,
                         e_mysql,
                         e_redis,
                         e_admin,
                         e_group,
                         e_ep,
                         (char *)"LIVEFLOW_TENCENT_SECRET_ID=" SECRET_ID,
                         (char *)"LIVEFLOW_TENCENT_SECRET_KEY=" SECRET_KEY,
                         (char *)"LIVEFLOW_TENCENT_PUSH_DOMAIN=push.example.com",
                         (char *)"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000",
                         (char *)"LIVEFLOW_RETRY_BACKOFF_MS=50",
                         (char *)"LIVEFLOW_LOG_LEVEL=debug",
                         NULL};
        size_t n = 12;

        support_worker_fx_open(&rf, "va");
        rf.admin_port = support_free_port();
        support_bin_path("liveflow-consumer", bin, sizeof(bin));
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", rf.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", rf.admin_port);
        snprintf(e_group, sizeof(e_group), "LIVEFLOW_GROUP_ID=%s", rf.group);
        snprintf(e_ep, sizeof(e_ep), "LIVEFLOW_TENCENT_API_ENDPOINT=http://127.0.0.1:%d", srv.port);
        for (; extra && *extra && n < 19; extra++)
                env[n++] = (char *)*extra;
        env[n] = NULL;
        /* The group starts at live.stream's end: what earlier suites left there is never this
         * worker's backlog (it would hold the test's own records back past its waits). */
        support_group_at_end(rf.group, stream_topics);
        rf.pid = support_spawn(argv, env, rf.log_path);
        cr_assert(support_wait_ready(rf.admin_port, 20000) == 0, "consumer not ready; see %s",
                  rf.log_path);
}

static void stop_stream_role(void)
{
        support_worker_fx_close(&rf);
}

/* A stream event on live.stream; an end carries close_method (2 and 3 are forced closes). */
static void produce_stream_event(const char *stream_id, bool begin, long long time_s,
                                 int close_method)
{
        char key[256], event_id[65], err[256];
        json_t *payload = begin ? json_pack("{s:s}", "sequence", "1")
                                : json_pack("{s:i}", "close_method", close_method);
        struct envelope env = {
                .event_id = event_id,
                .vendor = begin ? "tencent" : "internal",
                .event_type = begin               ? "stream.begin"
                              : close_method == 1 ? "stream.end"
                                                  : "stream.close",
                .stream_id = stream_id,
                .anchor_id = "anchor_va",
                .room_id = "anchor_va",
                .event_time_ms = time_s * 1000,
                .receive_time_ms = time_s * 1000,
                .trace_id = "0123456789abcdef0123456789abcdef",
                .raw = "{}",
                .raw_len = 2,
        };
        void *buf;
        size_t len;

        snprintf(key, sizeof(key), "%s|%d|%d", stream_id, begin, close_method);
        crypto_sha256_hex(key, strlen(key), event_id);
        cr_assert(codec_encode(rf.codec, &env, begin ? "StreamBegin" : "StreamEnd", payload, &buf,
                               &len, err, sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        cr_assert(rd_kafka_producev(
                          rf.producer, RD_KAFKA_V_TOPIC("live.stream"),
                          RD_KAFKA_V_KEY(stream_id, strlen(stream_id)), RD_KAFKA_V_VALUE(buf, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                          RD_KAFKA_V_HEADER("trace_id", "0123456789abcdef0123456789abcdef", -1),
                          RD_KAFKA_V_HEADER("event_type", env.event_type, -1),
                          RD_KAFKA_V_END) == 0);
        cr_assert(rd_kafka_flush(rf.producer, 10000) == 0);
}

static long long count_rows(const char *fmt, ...)
{
        char sql[512];
        va_list ap;
        MYSQL_RES *res;
        MYSQL_ROW row;
        long long n = 0;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        cr_assert(mysql_query(rf.mysql, sql) == 0, "%s: %s", sql, mysql_error(rf.mysql));
        res = mysql_store_result(rf.mysql);
        if (res && (row = mysql_fetch_row(res)) && row[0])
                n = atoll(row[0]);
        if (res)
                mysql_free_result(res);
        return n;
}

/* How many DropLiveStream calls named stream_id. */
static int drops_of(const char *stream_id)
{
        char want[128];
        int n = 0;

        snprintf(want, sizeof(want), "\"StreamName\":\"%s\"", stream_id);
        for (int i = 0; i < seen_count(); i++) {
                struct seen s = seen_at(i);

                n += strcmp(s.action, "DropLiveStream") == 0 && strstr(s.body, want) != NULL;
        }
        return n;
}

static void wait_for(bool (*cond)(const char *), const char *arg, const char *what)
{
        long long deadline = support_now_ms() + 20000;

        while (!cond(arg) && support_now_ms() < deadline)
                support_sleep_ms(50);
        cr_assert(cond(arg), "%s %s (consumer log: %s)", what, arg, rf.log_path);
}

static bool has_drop(const char *stream_id)
{
        return drops_of(stream_id) > 0;
}

static bool has_two_events(const char *stream_id)
{
        return count_rows("SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", stream_id) >=
               2;
}

Test(vendor_api, stream_role_drops_a_forced_close_of_a_live_stream_only, .fini = stop_stream_role)
{
        char forced[64], ended[64], never[64];

        start_stream_role();
        snprintf(forced, sizeof(forced), "%s_forced", rf.prefix);
        snprintf(ended, sizeof(ended), "%s_ended", rf.prefix);
        snprintf(never, sizeof(never), "%s_never", rf.prefix);
        /* An anchor ending their own stream, and a close of a stream that already ended. */
        produce_stream_event(ended, true, 1000, 0);
        produce_stream_event(ended, false, 1060, 1);
        produce_stream_event(never, true, 1000, 0);
        produce_stream_event(never, false, 1060, 1);
        produce_stream_event(never, false, 1070, 3);
        /* An operator closing a live stream. */
        produce_stream_event(forced, true, 1000, 0);
        produce_stream_event(forced, false, 1090, 2);
        wait_for(has_drop, forced, "no DropLiveStream for");
        wait_for(has_two_events, ended, "events not recorded for");
        wait_for(has_two_events, never, "events not recorded for");
        support_sleep_ms(500);
        cr_assert_eq(drops_of(ended), 0, "a stream the anchor ended must not be dropped");
        cr_assert_eq(drops_of(never), 0, "a stream that was no longer live must not be dropped");
        cr_assert_eq(
                count_rows("SELECT close_method FROM live_streams WHERE stream_id = '%s'", forced),
                2);

        /* A replay of the close (redelivery after a crash) repeats the drop: the vendor is
         * idempotent. */
        produce_stream_event(forced, false, 1090, 2);
        {
                long long deadline = support_now_ms() + 20000;

                while (drops_of(forced) < 2 && support_now_ms() < deadline)
                        support_sleep_ms(50);
        }
        cr_assert_eq(drops_of(forced), 2, "the replayed close was not dropped again (log %s)",
                     rf.log_path);
        cr_assert_eq(count_rows("SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", forced),
                     2);
        cr_assert(kill(rf.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(rf.pid, 20000), 0, "consumer did not drain cleanly; see %s",
                     rf.log_path);
        rf.pid = 0;
}

/* How many DescribeLiveStreamState calls named stream_id. */
static int state_asks_of(const char *stream_id)
{
        char want[128];
        int n = 0;

        snprintf(want, sizeof(want), "\"StreamName\":\"%s\"", stream_id);
        for (int i = 0; i < seen_count(); i++) {
                struct seen s = seen_at(i);

                n += strcmp(s.action, "DescribeLiveStreamState") == 0 &&
                     strstr(s.body, want) != NULL;
        }
        return n;
}

static bool has_state_ask(const char *stream_id)
{
        return state_asks_of(stream_id) > 0;
}

static bool is_ended(const char *stream_id)
{
        return count_rows("SELECT COUNT(*) FROM live_streams WHERE stream_id = '%s' AND status = "
                          "'ended'",
                          stream_id) == 1;
}

Test(vendor_api, the_ghost_sweep_closes_only_what_the_vendor_says_is_not_live,
     .fini = stop_stream_role)
{
        static const char *const ghost_env[] = {
                "LIVEFLOW_STREAM_GHOST_SILENCE_S=2", "LIVEFLOW_STREAM_SWEEP_INTERVAL_S=1",
                "LIVEFLOW_STREAM_GHOST_UNVERIFIED_SILENCE_S=3600", NULL};
        char alive[64], dead[64];

        start_stream_role_with(ghost_env);
        snprintf(alive, sizeof(alive), "%s_alive", rf.prefix);
        snprintf(dead, sizeof(dead), "%s_dead", rf.prefix);
        produce_stream_event(alive, true, 1000, 0);
        produce_stream_event(dead, true, 1000, 0);
        /* Silent for the sweep; the vendor is asked about each. */
        wait_for(is_ended, dead, "the stream the vendor calls inactive was not closed:");
        wait_for(has_drop, dead, "the ghost close was not dropped at the vendor:");
        wait_for(has_state_ask, alive, "the vendor was not asked about");
        cr_assert_eq(count_rows("SELECT COUNT(*) FROM live_streams WHERE stream_id = '%s' AND "
                                "close_reason LIKE 'ghost: tencent says not live after %%'",
                                dead),
                     1);
        /* The live one stays live however many sweeps run; the dead one is closed once. */
        {
                long long deadline = support_now_ms() + 20000;

                while (state_asks_of(alive) < 2 && support_now_ms() < deadline)
                        support_sleep_ms(50);
        }
        cr_assert(state_asks_of(alive) >= 2, "the live stream was asked about once only");
        cr_assert_eq(count_rows("SELECT COUNT(*) FROM live_streams WHERE stream_id = '%s' AND "
                                "status = 'live'",
                                alive),
                     1, "the stream the vendor calls active was closed (log %s)", rf.log_path);
        cr_assert_eq(drops_of(alive), 0, "the live stream was dropped");
        cr_assert_eq(count_rows("SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", dead), 2,
                     "a begin and one ghost close");
        cr_assert(kill(rf.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(rf.pid, 20000), 0, "consumer did not drain cleanly; see %s",
                     rf.log_path);
        rf.pid = 0;
}
