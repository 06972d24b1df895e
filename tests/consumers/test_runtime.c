/*
 * test_runtime.c: the consumer runtime's guarantees, through the stream role's binary on the
 * real fixtures: a MySQL outage dead-letters after three attempts and the partition moves on;
 * kill -9 at any moment loses and doubles nothing; several copies of a role share the work.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "url.h"

#define MAX_COPIES 3

struct copy {
        pid_t pid;
        int admin_port;
};

static struct {
        char mysql_url[512];    /* the test's database */
        char consumer_url[512]; /* what the consumers connect to (maybe through the relay) */
        char prefix[48];
        char group[96];
        char log_path[256];
        struct copy copies[MAX_COPIES];
        rd_kafka_t *producer;
        struct codec *codec;
        MYSQL *mysql;
        redisContext *redis;
        struct support_proxy *proxy;
} fx;

static void setup(void)
{
        char err[256];

        support_unique_name("rt", fx.prefix, sizeof(fx.prefix));
        snprintf(fx.group, sizeof(fx.group), "test.%s", fx.prefix);
        snprintf(fx.log_path, sizeof(fx.log_path), "/tmp/%s.consumer.log", fx.prefix);
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        snprintf(fx.consumer_url, sizeof(fx.consumer_url), "%s", fx.mysql_url);
        fx.mysql = support_mysql_connect(fx.mysql_url);
        fx.redis = redisConnect("127.0.0.1", atoi(support_fixture("LIVEFLOW_TEST_REDIS_PORT")));
        cr_assert(fx.redis && !fx.redis->err);
        fx.producer = support_producer();
        cr_assert((fx.codec = codec_new(err, sizeof(err))) != NULL, "%s", err);
}

static void teardown(void)
{
        for (int i = 0; i < MAX_COPIES; i++) {
                if (fx.copies[i].pid > 0 && support_wait_exit(fx.copies[i].pid, 0) == -1) {
                        kill(fx.copies[i].pid, SIGKILL);
                        support_wait_exit(fx.copies[i].pid, 5000);
                }
        }
        if (fx.producer)
                rd_kafka_destroy(fx.producer);
        codec_destroy(fx.codec);
        if (fx.mysql)
                mysql_close(fx.mysql);
        if (fx.redis)
                redisFree(fx.redis);
        support_proxy_stop(fx.proxy);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(runtime, .init = setup, .fini = teardown, .timeout = 240);

static void start_copy(int i)
{
        char instance[96];
        const char *const env[] = {instance, "LIVEFLOW_MYSQL_TIMEOUT_S=2", "LIVEFLOW_BATCH_MAX=50",
                                   NULL};

        snprintf(instance, sizeof(instance), "LIVEFLOW_INSTANCE_ID=%s-%d", fx.prefix, i);
        fx.copies[i].pid =
                support_start_worker("liveflow-consumer", "stream", fx.consumer_url, fx.group, env,
                                     fx.log_path, &fx.copies[i].admin_port);
}

/* A stream event as the receiver makes it: the id follows vendor, type, stream and sequence. */
static void produce_event(const char *stream_id, bool begin, long long sequence,
                          long long event_time_s)
{
        char key[256], seq[32], event_id[65], err[256], anchor[96];
        json_t *payload;
        void *buf;
        size_t len;

        snprintf(anchor, sizeof(anchor), "a_%s", stream_id);
        snprintf(seq, sizeof(seq), "%lld", sequence);
        snprintf(key, sizeof(key), "tencent|%d|%s|%s", begin ? 1 : 0, stream_id, seq);
        crypto_sha256_hex(key, strlen(key), event_id);
        payload = begin ? json_pack("{s:s}", "sequence", seq)
                        : json_pack("{s:s,s:i}", "sequence", seq, "close_method", 1);
        struct envelope env = {
                .event_id = event_id,
                .vendor = "tencent",
                .event_type = begin ? "stream.begin" : "stream.end",
                .stream_id = stream_id,
                .anchor_id = anchor,
                .room_id = anchor,
                .event_time_ms = event_time_s * 1000,
                .receive_time_ms = event_time_s * 1000 + 5,
                .trace_id = "0123456789abcdef0123456789abcdef",
                .raw = "{}",
                .raw_len = 2,
        };
        cr_assert(codec_encode(fx.codec, &env, begin ? "StreamBegin" : "StreamEnd", payload, &buf,
                               &len, err, sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        cr_assert(rd_kafka_producev(
                          fx.producer, RD_KAFKA_V_TOPIC("live.stream"),
                          RD_KAFKA_V_KEY(stream_id, strlen(stream_id)), RD_KAFKA_V_VALUE(buf, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                          RD_KAFKA_V_HEADER("trace_id", "0123456789abcdef0123456789abcdef", -1),
                          RD_KAFKA_V_HEADER("event_type", env.event_type, -1),
                          RD_KAFKA_V_END) == 0);
}

static void flush(void)
{
        cr_assert(rd_kafka_flush(fx.producer, 20000) == 0);
}

static long long count_events(void)
{
        return support_query_int(fx.mysql,
                                 "SELECT COUNT(*) FROM live_events WHERE stream_id LIKE '%s%%'",
                                 fx.prefix);
}

static bool wait_events(long long want, int timeout_ms)
{
        long long deadline = support_now_ms() + timeout_ms;

        while (count_events() < want && support_now_ms() < deadline)
                support_sleep_ms(100);
        return count_events() == want;
}

static void wait_status(const char *stream_id, const char *want)
{
        char got[32] = "";
        long long deadline = support_now_ms() + 20000;

        while (support_now_ms() < deadline) {
                support_query1(fx.mysql, got, sizeof(got),
                               "SELECT status FROM live_streams WHERE stream_id = '%s'", stream_id);
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(50);
        }
        cr_assert_fail("%s is \"%s\", want \"%s\" (log %s)", stream_id, got, want, fx.log_path);
}

/* The counter of one copy's /metrics line that starts with `series`, or -1. */
static long long scrape(int port, const char *series)
{
        char cmd[256], out[64] = "";
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

/* Records in live.stream now (every test's): the sum over partitions of high - low watermarks. */
static long long records_in_live_stream(void)
{
        long long total = 0;

        for (int p = 0; p < 6; p++) {
                int64_t lo = 0, hi = 0;

                cr_assert_eq(rd_kafka_query_watermark_offsets(fx.producer, "live.stream", p, &lo,
                                                              &hi, 10000),
                             0);
                total += hi - lo;
        }
        return total;
}

/*
 * Waits until copy i has been through every record of live.stream: a new group reads the
 * other tests' records too, and during an outage each of those would take three attempts.
 */
static void wait_caught_up(int i)
{
        long long want = records_in_live_stream(), seen = 0;
        long long deadline = support_now_ms() + 60000;

        while (support_now_ms() < deadline) {
                long long applied = scrape(
                        fx.copies[i].admin_port,
                        "liveflow_consumer_records_total{role=\"stream\",outcome=\"applied\"}");
                long long dead = scrape(
                        fx.copies[i].admin_port,
                        "liveflow_consumer_records_total{role=\"stream\",outcome=\"dead_lettered\"}");

                seen = (applied > 0 ? applied : 0) + (dead > 0 ? dead : 0);
                if (seen >= want)
                        return;
                support_sleep_ms(200);
        }
        cr_assert_fail("copy %d has processed %lld of %lld records (log %s)", i, seen, want,
                       fx.log_path);
}

Test(runtime, mysql_outage_dead_letters_after_three_attempts_and_the_partition_moves_on)
{
        char url_err[256], first[128], lost[128], after[128], attempts[16] = "", cls[32] = "",
                                                              offset[32] = "";
        struct mysql_url u;

        /* The consumer reaches MySQL through a relay, so the outage is its alone. */
        cr_assert(url_parse_mysql(fx.mysql_url, &u, url_err, sizeof(url_err)) == 0, "%s", url_err);
        fx.proxy = support_proxy_start(u.port);
        snprintf(fx.consumer_url, sizeof(fx.consumer_url), "mysql://%s:%s@127.0.0.1:%d/%s", u.user,
                 u.password, support_proxy_port(fx.proxy), u.database);
        start_copy(0);

        snprintf(first, sizeof(first), "%s_first", fx.prefix);
        snprintf(lost, sizeof(lost), "%s_lost", fx.prefix);
        snprintf(after, sizeof(after), "%s_after", fx.prefix);
        produce_event(first, true, 1, 1000);
        flush();
        wait_status(first, "live");
        wait_caught_up(0);

        support_proxy_cut(fx.proxy);
        produce_event(lost, true, 2, 2000);
        flush();
        cr_assert_eq(support_count_records("live.stream.dlq", lost, "dlq.attempts", attempts,
                                           sizeof(attempts), 30000, 1),
                     1, "no DLQ record for %s (log %s)", lost, fx.log_path);
        cr_assert_str_eq(attempts, "3");
        support_count_records("live.stream.dlq", lost, "dlq.error.class", cls, sizeof(cls), 10000,
                              1);
        cr_assert_str_eq(cls, "transient");
        support_count_records("live.stream.dlq", lost, "dlq.offset", offset, sizeof(offset), 10000,
                              1);
        cr_assert(offset[0] != '\0', "dlq.offset missing");
        /* >= : tests run in parallel, and this group also reads the other tests' records. */
        cr_assert_geq(scrape(fx.copies[0].admin_port, "liveflow_consumer_retries_total"), 2,
                      "the record was tried again after its first attempt");

        /* Back again: the next record of the stream's partition is applied, the lost one is not. */
        support_proxy_restore(fx.proxy);
        produce_event(after, true, 3, 3000);
        flush();
        wait_status(after, "live");
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM live_streams WHERE stream_id = '%s'",
                                       lost),
                     0);

        cr_assert(kill(fx.copies[0].pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.copies[0].pid, 20000), 0, "no clean drain; see %s",
                     fx.log_path);
        fx.copies[0].pid = 0;
}

/*
 * Every stream gets a begin and an end (and a duplicate begin), in order per stream; the
 * expected end state follows from what was sent: every stream ended, with its duration.
 */
static int produce_sessions(int from, int to)
{
        char stream[128];
        int produced = 0;

        for (int i = from; i < to; i++) {
                snprintf(stream, sizeof(stream), "%s_s%d", fx.prefix, i);
                produce_event(stream, true, i, 10000 + i);
                produce_event(stream, true, i, 10000 + i); /* a vendor retry */
                produce_event(stream, false, i, 10000 + i + 60 + i % 7);
                produced += 3;
        }
        flush();
        return produced;
}

static void expect_every_session_once(int streams)
{
        /* Two distinct events per stream: the duplicate begin shares its id with the first. */
        cr_assert(wait_events(2LL * streams, 60000), "live_events has %lld, want %d (log %s)",
                  count_events(), 2 * streams, fx.log_path);
        cr_assert_eq(
                support_query_int(
                        fx.mysql,
                        "SELECT COUNT(*) FROM live_streams WHERE stream_id LIKE '%s_s%%' AND "
                        "status = 'ended' AND duration_s = 60 + CAST(SUBSTRING_INDEX(stream_id, "
                        "'_s', -1) AS SIGNED) %% 7",
                        fx.prefix),
                streams, "every stream ends once with the duration it was sent");
        cr_assert_eq(
                support_query_int(
                        fx.mysql,
                        "SELECT COUNT(DISTINCT session_id) FROM live_streams WHERE stream_id LIKE '%s_s%%'",
                        fx.prefix),
                streams);
        /* Redis follows each commit (publish runs after it): give it a moment to converge. */
        char stale[128] = "";
        long long deadline = support_now_ms() + 15000;

        do {
                redisReply *r = redisCommand(fx.redis, "SMEMBERS set:live:online");

                cr_assert(r && r->type == REDIS_REPLY_ARRAY);
                stale[0] = '\0';
                for (size_t i = 0; i < r->elements && !stale[0]; i++)
                        if (strncmp(r->element[i]->str, fx.prefix, strlen(fx.prefix)) == 0)
                                snprintf(stale, sizeof(stale), "%s", r->element[i]->str);
                freeReplyObject(r);
                if (stale[0])
                        support_sleep_ms(100);
        } while (stale[0] && support_now_ms() < deadline);
        cr_assert(stale[0] == '\0', "%s is still online after its end (log %s)", stale,
                  fx.log_path);
}

Test(runtime, kill_9_under_load_then_restart_processes_every_record_once)
{
        const int streams = 600;
        long long seen;

        start_copy(0);
        produce_sessions(0, streams);
        /* Kill it mid-stream: after some records are durable, well before the last. */
        long long deadline = support_now_ms() + 60000;
        while ((seen = count_events()) < 100 && support_now_ms() < deadline)
                support_sleep_ms(5);
        cr_assert(kill(fx.copies[0].pid, SIGKILL) == 0);
        support_wait_exit(fx.copies[0].pid, 5000);
        cr_log_info("killed after %lld of %d events", seen, 2 * streams);
        start_copy(0);
        expect_every_session_once(streams);
        cr_assert(kill(fx.copies[0].pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.copies[0].pid, 20000), 0, "no clean drain; see %s",
                     fx.log_path);
        fx.copies[0].pid = 0;
}

Test(runtime, two_then_three_copies_share_partitions_and_lose_nothing)
{
        const int streams = 300;
        char series[160];

        start_copy(0);
        start_copy(1);
        produce_sessions(0, streams / 2);
        start_copy(2);
        produce_sessions(streams / 2, streams);
        expect_every_session_once(streams);
        snprintf(series, sizeof(series), "liveflow_consumer_assigned_partitions{role=\"stream\"}");
        long long total = 0;
        for (int i = 0; i < MAX_COPIES; i++) {
                long long parts = scrape(fx.copies[i].admin_port, series);

                cr_assert_gt(parts, 0, "copy %d holds no partition", i);
                total += parts;
        }
        cr_assert_eq(total, 6, "the 6 partitions of live.stream are shared, each held once");
        for (int i = 0; i < MAX_COPIES; i++) {
                cr_assert(kill(fx.copies[i].pid, SIGTERM) == 0);
                cr_assert_eq(support_wait_exit(fx.copies[i].pid, 30000), 0,
                             "copy %d: no clean drain; see %s", i, fx.log_path);
                fx.copies[i].pid = 0;
        }
}
