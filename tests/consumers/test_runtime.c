/*
 * test_runtime.c: the consumer runtime's guarantees, through the stream role's binary on the
 * real fixtures: a MySQL or Redis outage (connection lost, a table renamed away, a commit whose
 * answer was lost) holds the partitions and dead-letters nothing, then resumes by itself;
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
#include "support_stack.h"
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
        int redis_db;              /* the worker's and fx.redis's Redis database */
        const char *replay_header; /* produce_event() adds replay.time with this value */
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

/*
 * Starts a copy of the stream role in the test's group, on the test's Redis database
 * (use_redis_db), without waiting for it to join.
 */
static void spawn_copy(int i)
{
        char instance[96], redis_url[160];
        const char *const env[] = {instance, "LIVEFLOW_MYSQL_TIMEOUT_S=2", "LIVEFLOW_BATCH_MAX=50",
                                   redis_url, NULL};

        snprintf(instance, sizeof(instance), "LIVEFLOW_INSTANCE_ID=%s-%d", fx.prefix, i);
        snprintf(redis_url, sizeof(redis_url), "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%s/%d",
                 support_fixture("LIVEFLOW_TEST_REDIS_PORT"), fx.redis_db);
        fx.copies[i].pid =
                support_spawn_worker("liveflow-consumer", "stream", fx.consumer_url, fx.group, env,
                                     fx.log_path, &fx.copies[i].admin_port);
}

static void wait_copy_ready(int i)
{
        cr_assert(support_wait_ready(fx.copies[i].admin_port, 30000) == 0,
                  "copy %d not ready; see %s", i, fx.log_path);
}

static void start_copy(int i)
{
        spawn_copy(i);
        wait_copy_ready(i);
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
        rd_kafka_headers_t *h = rd_kafka_headers_new(3);

        rd_kafka_header_add(h, "trace_id", -1, "0123456789abcdef0123456789abcdef", -1);
        rd_kafka_header_add(h, "event_type", -1, env.event_type, -1);
        if (fx.replay_header)
                rd_kafka_header_add(h, "replay.time", -1, fx.replay_header, -1);
        cr_assert(rd_kafka_producev(fx.producer, RD_KAFKA_V_TOPIC("live.stream"),
                                    RD_KAFKA_V_KEY(stream_id, strlen(stream_id)),
                                    RD_KAFKA_V_VALUE(buf, len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_HEADERS(h),
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

/* GET /readyz of a copy: the HTTP status, or 0 when it does not answer. */
static int readyz(int port)
{
        char cmd[160], out[16] = "";
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/readyz", port);
        if (!(p = popen(cmd, "r")))
                return 0;
        if (!fgets(out, sizeof(out), p))
                out[0] = '\0';
        pclose(p);
        return atoi(out);
}

/* Waits until copy 0's series reads want; fails the test after 30 s. */
static void wait_metric(const char *series, long long want)
{
        long long deadline = support_now_ms() + 30000, got = -1;

        while (support_now_ms() < deadline) {
                if ((got = scrape(fx.copies[0].admin_port, series)) == want)
                        return;
                support_sleep_ms(100);
        }
        cr_assert_fail("%s is %lld, want %lld (log %s)", series, got, want, fx.log_path);
}

#define STORE_DOWN(store) "liveflow_consumer_store_unavailable{role=\"stream\",store=\"" store "\"}"

/* A relay in front of MySQL (or Redis), so an outage is this test's consumer's alone. */
static void relay_mysql(void)
{
        char url_err[256];
        struct mysql_url u;

        cr_assert(url_parse_mysql(fx.mysql_url, &u, url_err, sizeof(url_err)) == 0, "%s", url_err);
        fx.proxy = support_proxy_start(u.port);
        snprintf(fx.consumer_url, sizeof(fx.consumer_url), "mysql://%s:%s@127.0.0.1:%d/%s", u.user,
                 u.password, support_proxy_port(fx.proxy), u.database);
}

/*
 * Every test's worker reads every test's records of live.stream and projects them into Redis:
 * a test that asserts what Redis lacks gives its worker a Redis database of its own (1..15).
 */
static void use_redis_db(int db)
{
        redisReply *r = redisCommand(fx.redis, "SELECT %d", db);

        cr_assert(r && r->type != REDIS_REPLY_ERROR);
        freeReplyObject(r);
        fx.redis_db = db;
}

static void start_at_end(const char *const extra_env[])
{
        static const char *const topics[] = {"live.stream", NULL};
        char instance[96], redis_url[160];
        const char *env[9] = {instance, "LIVEFLOW_MYSQL_TIMEOUT_S=2", "LIVEFLOW_BATCH_MAX=50",
                              "LIVEFLOW_STORE_BACKOFF_MAX_MS=500", redis_url};
        int n = 5;

        snprintf(redis_url, sizeof(redis_url), "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%s/%d",
                 support_fixture("LIVEFLOW_TEST_REDIS_PORT"), fx.redis_db);
        for (int i = 0; extra_env && extra_env[i] && n < 8; i++)
                env[n++] = extra_env[i];
        env[n] = NULL;
        snprintf(instance, sizeof(instance), "LIVEFLOW_INSTANCE_ID=%s-0", fx.prefix);
        support_group_at_end(fx.group, topics);
        fx.copies[0].pid =
                support_start_worker("liveflow-consumer", "stream", fx.consumer_url, fx.group, env,
                                     fx.log_path, &fx.copies[0].admin_port);
}

/* The dead letters of stream_id so far: the worker dead-letters a record before it moves past
 * it, so once it is past, what the DLQ holds now is all there will be. */
static int dlq_records(const char *stream_id)
{
        return support_count_records_now("live.stream.dlq", stream_id, NULL, NULL, 0);
}

static bool is_online(const char *stream_id)
{
        redisReply *r = redisCommand(fx.redis, "SISMEMBER set:live:online %s", stream_id);
        bool yes;

        cr_assert(r && r->type == REDIS_REPLY_INTEGER);
        yes = r->integer == 1;
        freeReplyObject(r);
        return yes;
}

static void wait_online(const char *stream_id)
{
        long long deadline = support_now_ms() + 30000;

        while (!is_online(stream_id) && support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert(is_online(stream_id), "%s never reached set:live:online (log %s)", stream_id,
                  fx.log_path);
}

static void stop_copy0(void)
{
        cr_assert(kill(fx.copies[0].pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.copies[0].pid, 20000), 0, "no clean drain; see %s",
                     fx.log_path);
        fx.copies[0].pid = 0;
}

Test(runtime, mysql_outage_holds_the_partition_dead_letters_nothing_and_resumes)
{
        char first[128], held[128], after[128];

        use_redis_db(2);
        relay_mysql();
        start_at_end(NULL);
        snprintf(first, sizeof(first), "%s_first", fx.prefix);
        snprintf(held, sizeof(held), "%s_held", fx.prefix);
        snprintf(after, sizeof(after), "%s_after", fx.prefix);
        produce_event(first, true, 1, 1000);
        flush();
        wait_status(first, "live");
        cr_assert_eq(readyz(fx.copies[0].admin_port), 200);

        support_proxy_cut(fx.proxy); /* connections lost, new ones refused */
        produce_event(held, true, 2, 2000);
        produce_event(after, true, 3, 3000);
        flush();
        wait_metric(STORE_DOWN("mysql"), 1);
        cr_assert_eq(readyz(fx.copies[0].admin_port), 503, "/readyz says ready during the outage");
        support_sleep_ms(2000); /* far longer than three attempts at the 50 ms back-off */
        cr_assert_eq(dlq_records(held), 0, "a store outage sent %s to the DLQ (log %s)", held,
                     fx.log_path);

        support_proxy_restore(fx.proxy);
        wait_status(held, "live");
        wait_status(after, "live");
        wait_online(held);
        wait_metric(STORE_DOWN("mysql"), 0);
        cr_assert_eq(scrape(fx.copies[0].admin_port, "liveflow_consumer_store_outages_total{role="
                                                     "\"stream\",store=\"mysql\"}"),
                     1);
        cr_assert_eq(readyz(fx.copies[0].admin_port), 200);
        cr_assert_eq(dlq_records(held) + dlq_records(after), 0);
        cr_assert_eq(
                support_query_int(fx.mysql,
                                  "SELECT COUNT(*) FROM live_events WHERE stream_id LIKE '%s%%'",
                                  fx.prefix),
                3, "each event recorded once");
        stop_copy0();
}

Test(runtime, a_table_renamed_away_holds_the_partition_until_it_is_back)
{
        char first[128], held[128];

        use_redis_db(3);
        start_at_end(NULL);
        snprintf(first, sizeof(first), "%s_first", fx.prefix);
        snprintf(held, sizeof(held), "%s_held", fx.prefix);
        produce_event(first, true, 1, 1000);
        flush();
        wait_status(first, "live");

        cr_assert(mysql_query(fx.mysql, "RENAME TABLE live_events TO live_events_away") == 0, "%s",
                  mysql_error(fx.mysql));
        produce_event(held, true, 2, 2000);
        flush();
        wait_metric(STORE_DOWN("mysql"), 1);
        cr_assert_eq(readyz(fx.copies[0].admin_port), 503);
        support_sleep_ms(1500);
        cr_assert_eq(dlq_records(held), 0, "a missing table sent %s to the DLQ (log %s)", held,
                     fx.log_path);

        cr_assert(mysql_query(fx.mysql, "RENAME TABLE live_events_away TO live_events") == 0, "%s",
                  mysql_error(fx.mysql));
        wait_status(held, "live");
        wait_online(held);
        wait_metric(STORE_DOWN("mysql"), 0);
        cr_assert_eq(dlq_records(held), 0);
        stop_copy0();
}

/*
 * The COMMIT reaches MariaDB, which holds it (a backup lock); the client's connection is lost
 * meanwhile, so it cannot know whether the commit happened; then the commit completes. The
 * record must not be dead-lettered, and its Redis step must still run.
 */
Test(runtime, a_commit_lost_on_the_way_back_is_found_again_and_published)
{
        char first[128], amb[128], db[96] = "";
        long long deadline;

        use_redis_db(4);
        relay_mysql();
        start_at_end(NULL);
        snprintf(first, sizeof(first), "%s_first", fx.prefix);
        snprintf(amb, sizeof(amb), "%s_amb", fx.prefix);
        produce_event(first, true, 1, 1000);
        flush();
        wait_status(first, "live");
        support_query1(fx.mysql, db, sizeof(db), "SELECT DATABASE()");

        cr_assert(mysql_query(fx.mysql, "BACKUP STAGE START") == 0, "%s", mysql_error(fx.mysql));
        cr_assert(mysql_query(fx.mysql, "BACKUP STAGE BLOCK_COMMIT") == 0, "%s",
                  mysql_error(fx.mysql));
        produce_event(amb, true, 2, 2000);
        flush();
        deadline = support_now_ms() + 20000;
        while (support_query_int(fx.mysql,
                                 "SELECT COUNT(*) FROM information_schema.processlist WHERE db = "
                                 "'%s' AND info = 'COMMIT'",
                                 db) == 0 &&
               support_now_ms() < deadline)
                support_sleep_ms(20);
        support_proxy_cut(fx.proxy); /* the answer to that COMMIT never comes back */
        wait_metric(STORE_DOWN("mysql"), 1);
        cr_assert(mysql_query(fx.mysql, "BACKUP STAGE END") == 0, "%s", mysql_error(fx.mysql));
        /* The commit did happen; Redis has not heard of it. */
        wait_status(amb, "live");
        cr_assert(!is_online(amb));

        support_proxy_restore(fx.proxy);
        wait_online(amb);
        wait_metric(STORE_DOWN("mysql"), 0);
        cr_assert_eq(dlq_records(amb), 0, "an applied record was dead-lettered (log %s)",
                     fx.log_path);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'",
                                       amb),
                     1);
        stop_copy0();
}

Test(runtime, redis_outage_holds_the_stream_role_instead_of_dead_lettering)
{
        char first[128], held[128], redis_url[160];
        const char *const env[] = {redis_url, NULL};

        use_redis_db(5);
        fx.proxy = support_proxy_start(atoi(support_fixture("LIVEFLOW_TEST_REDIS_PORT")));
        snprintf(redis_url, sizeof(redis_url), "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%d/5",
                 support_proxy_port(fx.proxy));
        start_at_end(env);
        snprintf(first, sizeof(first), "%s_first", fx.prefix);
        snprintf(held, sizeof(held), "%s_held", fx.prefix);
        produce_event(first, true, 1, 1000);
        flush();
        wait_online(first);

        support_proxy_cut(fx.proxy);
        produce_event(held, true, 2, 2000);
        flush();
        wait_metric(STORE_DOWN("redis"), 1);
        cr_assert_eq(readyz(fx.copies[0].admin_port), 503);
        support_sleep_ms(1500);
        cr_assert_eq(dlq_records(held), 0, "a Redis outage sent %s to the DLQ (log %s)", held,
                     fx.log_path);

        support_proxy_restore(fx.proxy);
        wait_online(held);
        wait_metric(STORE_DOWN("redis"), 0);
        cr_assert_eq(dlq_records(held), 0);
        stop_copy0();
}

/* A record whose content the role refuses still goes to the DLQ at once (not held). */
Test(runtime, a_record_the_role_refuses_is_still_dead_lettered)
{
        char bad[128], attempts[16] = "", cls[32] = "";

        start_at_end(NULL);
        snprintf(bad, sizeof(bad), "%s_bad", fx.prefix);
        support_produce(fx.producer, "live.stream", bad, "not avro", 8, "stream.begin");
        cr_assert_eq(support_count_records("live.stream.dlq", bad, "dlq.error.class", cls,
                                           sizeof(cls), 30000, 1),
                     1, "no DLQ record for %s (log %s)", bad, fx.log_path);
        cr_assert_str_eq(cls, "permanent");
        support_count_records("live.stream.dlq", bad, "dlq.attempts", attempts, sizeof(attempts),
                              10000, 1);
        cr_assert_str_eq(attempts, "1");
        cr_assert_eq(scrape(fx.copies[0].admin_port, STORE_DOWN("mysql")), 0);
        stop_copy0();
        /* Logged with the trace id its header carries, so the request can be found. */
        char *log = support_read_file(fx.log_path, NULL);

        cr_assert_not_null(log);
        cr_assert(strstr(log, "trace=0123456789abcdef0123456789abcdef undecodable record"),
                  "the undecodable record is logged without its trace id (log %s)", fx.log_path);
        free(log);
}

/* A dead letter written back (replay.time) is counted as a replay and kept out of freshness. */
Test(runtime, replays_are_counted_apart_from_new_records)
{
        char replayed[128], fresh[128];

        start_at_end(NULL);
        snprintf(replayed, sizeof(replayed), "%s_replayed", fx.prefix);
        snprintf(fresh, sizeof(fresh), "%s_fresh", fx.prefix);
        produce_event(fresh, true, 1, 1000);
        flush();
        wait_status(fresh, "live");
        long long fetched =
                scrape(fx.copies[0].admin_port,
                       "liveflow_consumer_fetched_total{role=\"stream\",topic=\"live.stream\"}");
        long long fresh_count =
                scrape(fx.copies[0].admin_port,
                       "liveflow_consumer_freshness_seconds_count{role=\"stream\"}");

        cr_assert_geq(fetched, 1);
        cr_assert_geq(fresh_count, 1, "a new record's freshness is observed");
        cr_assert_eq(scrape(fx.copies[0].admin_port, "liveflow_consumer_replayed_total{role="
                                                     "\"stream\",topic=\"live.stream\"}"),
                     0);

        /* The same kind of record, written back by a replay. */
        fx.replay_header = "1765000000000";
        produce_event(replayed, true, 2, 2000);
        fx.replay_header = NULL;
        flush();
        wait_status(replayed, "live");
        cr_assert_eq(scrape(fx.copies[0].admin_port, "liveflow_consumer_replayed_total{role="
                                                     "\"stream\",topic=\"live.stream\"}"),
                     1, "(log %s)", fx.log_path);
        /* Every series, the new ones included, passes Prometheus' own lint. */
        cr_assert_eq(support_sh("curl -sf http://127.0.0.1:%d/metrics | promtool check metrics",
                                fx.copies[0].admin_port),
                     0, "promtool check metrics complains (see the output above)");
        stop_copy0();
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

        use_redis_db(7);
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

        use_redis_db(8);
        spawn_copy(0); /* the first two join together: one rebalance fewer to wait for */
        spawn_copy(1);
        wait_copy_ready(0);
        wait_copy_ready(1);
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

/*
 * The lag series of one copy: how many partitions it reports, the largest age, and a bitmask of
 * the live.stream partitions it reports.
 */
struct lag_view {
        int series;
        double max_seconds;
        unsigned partitions;
};

static struct lag_view scrape_lag(int port)
{
        struct lag_view v = {0, 0, 0};
        char cmd[256], line[512];
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "curl -sf http://127.0.0.1:%d/metrics | grep '^liveflow_consumer_lag_seconds{'",
                 port);
        cr_assert((p = popen(cmd, "r")) != NULL);
        while (fgets(line, sizeof(line), p)) {
                const char *part = strstr(line, "partition=\"");
                const char *value = strrchr(line, ' ');
                double seconds = value ? atof(value + 1) : 0;

                v.series++;
                if (part)
                        v.partitions |= 1u << atoi(part + strlen("partition=\""));
                if (seconds > v.max_seconds)
                        v.max_seconds = seconds;
        }
        pclose(p);
        return v;
}

Test(runtime, lag_seconds_is_the_age_of_the_oldest_unconsumed_record)
{
        char first[128], second[128];
        long long applied_at, produced_at;
        struct lag_view v;

        start_at_end(NULL);
        v = scrape_lag(fx.copies[0].admin_port);
        cr_assert_eq(v.series, 6, "every assigned partition is reported from assignment on");
        cr_assert(v.max_seconds == 0, "caught up: %g", v.max_seconds);
        snprintf(first, sizeof(first), "%s_first", fx.prefix);
        snprintf(second, sizeof(second), "%s_second", fx.prefix);
        produce_event(first, true, 1, 1000);
        flush();
        wait_status(first, "live");
        applied_at = support_now_ms();
        support_sleep_ms(3000); /* a quiet gap: it must not count as lag */

        cr_assert(mysql_query(fx.mysql, "LOCK TABLES live_events WRITE, live_streams WRITE") == 0,
                  "%s", mysql_error(fx.mysql));
        produced_at = support_now_ms();
        produce_event(second, true, 2, 2000);
        flush();
        support_sleep_ms(2500);
        v = scrape_lag(fx.copies[0].admin_port);
        long long since_produced = support_now_ms() - produced_at;
        long long since_applied = support_now_ms() - applied_at;

        cr_assert(mysql_query(fx.mysql, "UNLOCK TABLES") == 0);
        cr_assert_geq(v.max_seconds * 1000, since_produced - 1000,
                      "lag %g s while the record waits %lld ms (log %s)", v.max_seconds,
                      since_produced, fx.log_path);
        cr_assert_lt(v.max_seconds * 1000, since_applied,
                     "lag %g s counts the quiet gap before the record (log %s)", v.max_seconds,
                     fx.log_path);
        wait_status(second, "live");
        long long deadline = support_now_ms() + 30000;

        while ((v = scrape_lag(fx.copies[0].admin_port)).max_seconds > 0 &&
               support_now_ms() < deadline)
                support_sleep_ms(200);
        cr_assert(v.max_seconds == 0, "caught up again, lag still %g s", v.max_seconds);
        stop_copy0();
}

/* Waits until the copies in `which` report each partition exactly once between them. */
static bool wait_partitions_once(const int *which, int n, int timeout_ms)
{
        long long deadline = support_now_ms() + timeout_ms;

        do {
                unsigned seen = 0;
                int series = 0;
                bool is_disjoint = true;

                for (int i = 0; i < n; i++) {
                        struct lag_view v = scrape_lag(fx.copies[which[i]].admin_port);

                        is_disjoint = is_disjoint && !(seen & v.partitions);
                        seen |= v.partitions;
                        series += v.series;
                }
                if (is_disjoint && seen == 0x3f && series == 6)
                        return true;
                support_sleep_ms(200);
        } while (support_now_ms() < deadline);
        return false;
}

Test(runtime, scaling_one_two_one_leaves_no_stale_lag_series)
{
        static const int one[] = {0}, two[] = {0, 1};

        start_at_end(NULL);
        cr_assert(wait_partitions_once(one, 1, 30000), "one copy: 6 series, one per partition");
        start_copy(1);
        cr_assert(wait_partitions_once(two, 2, 60000),
                  "two copies: each partition reported by exactly one of them (log %s)",
                  fx.log_path);
        cr_assert_gt(scrape_lag(fx.copies[1].admin_port).series, 0);
        cr_assert(kill(fx.copies[1].pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.copies[1].pid, 30000), 0);
        fx.copies[1].pid = 0;
        cr_assert(wait_partitions_once(one, 1, 60000),
                  "back to one copy: it reports every partition again, once (log %s)", fx.log_path);
        stop_copy0();
}

static void start_copy_with(int i, const char *session_timeout)
{
        char instance[96];
        const char *const env[] = {instance, "LIVEFLOW_MYSQL_TIMEOUT_S=2", "LIVEFLOW_BATCH_MAX=50",
                                   session_timeout, NULL};

        snprintf(instance, sizeof(instance), "LIVEFLOW_INSTANCE_ID=%s-%d", fx.prefix, i);
        fx.copies[i].pid =
                support_start_worker("liveflow-consumer", "stream", fx.consumer_url, fx.group, env,
                                     fx.log_path, &fx.copies[i].admin_port);
}

#define ASSIGNED "liveflow_consumer_assigned_partitions{role=\"stream\"}"

static bool wait_partitions_shared(void)
{
        long long t0 = support_now_ms();

        while (support_now_ms() - t0 < 60000) {
                long long a = scrape(fx.copies[0].admin_port, ASSIGNED);
                long long b = scrape(fx.copies[1].admin_port, ASSIGNED);

                if (a > 0 && b > 0 && a + b == 6)
                        return true;
                support_sleep_ms(50);
        }
        return false;
}

/* Waits until copy `to` holds every partition and `other` (-1: none) none or is gone. */
static long long ms_until_all_owned_by(int to, int timeout_ms)
{
        long long t0 = support_now_ms();

        while (support_now_ms() - t0 < timeout_ms) {
                if (scrape(fx.copies[to].admin_port, ASSIGNED) == 6)
                        return support_now_ms() - t0;
                support_sleep_ms(50);
        }
        return -1;
}

/*
 * Static members (LIVEFLOW_INSTANCE_ID) and a 6 s session: a planned stop (SIGTERM) leaves the
 * group, so its partitions move without waiting for its session to time out; a crash (kill -9)
 * leaves them unowned until it does. The measured stalls are logged (README, Scaling).
 */
#define SESSION_MS 6000

Test(runtime, a_planned_stop_hands_the_partitions_over_at_once)
{
        static const char *const topics[] = {"live.stream", NULL};
        char session[64];
        long long t0, up_ms, stop_ms, crash_ms;

        snprintf(session, sizeof(session), "LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=%d", SESSION_MS);
        support_group_at_end(fx.group, topics);
        start_copy_with(0, session);
        cr_assert_geq(ms_until_all_owned_by(0, 30000), 0, "one copy: every partition");

        /* Scale-up: from the new copy's start until both share the six partitions. */
        t0 = support_now_ms();
        start_copy_with(1, session);
        while (support_now_ms() - t0 < 60000 &&
               !(scrape(fx.copies[1].admin_port, ASSIGNED) > 0 &&
                 scrape(fx.copies[0].admin_port, ASSIGNED) +
                                 scrape(fx.copies[1].admin_port, ASSIGNED) ==
                         6))
                support_sleep_ms(50);
        up_ms = support_now_ms() - t0;
        cr_assert_gt(scrape(fx.copies[1].admin_port, ASSIGNED), 0, "(log %s)", fx.log_path);

        /* Planned scale-down. */
        t0 = support_now_ms();
        cr_assert(kill(fx.copies[1].pid, SIGTERM) == 0);
        stop_ms = ms_until_all_owned_by(0, 30000);
        cr_assert_eq(support_wait_exit(fx.copies[1].pid, 20000), 0, "(log %s)", fx.log_path);
        fx.copies[1].pid = 0;
        cr_assert_geq(stop_ms, 0, "the partitions never came back (log %s)", fx.log_path);
        /*
         * The dev broker (librdkafka's mock cluster) ends a rebalance that lost a member after the
         * session timeout less a second; a copy that did not leave is only noticed when its
         * session times out, which doubles that (measured: 9.1 s with the leave, 19.9 s without,
         * for a 10 s session). A real broker rebalances at once on the leave. The bound lies
         * half a session from either.
         */
        cr_assert_lt(stop_ms, SESSION_MS * 3 / 2,
                     "a planned stop left its partitions unowned for %lld ms: it did not leave "
                     "the group, the %d ms session had to time out first (log %s)",
                     stop_ms, SESSION_MS, fx.log_path);

        /* A crash: nobody tells the group; the session runs out. */
        start_copy_with(1, session);
        cr_assert(wait_partitions_shared(), "(log %s)", fx.log_path);
        t0 = support_now_ms();
        cr_assert(kill(fx.copies[1].pid, SIGKILL) == 0);
        support_wait_exit(fx.copies[1].pid, 5000);
        fx.copies[1].pid = 0;
        crash_ms = ms_until_all_owned_by(0, 60000);
        cr_assert_geq(crash_ms, 0, "(log %s)", fx.log_path);
        cr_log_info("stall with a %d ms session: scale-up %lld ms (from process start), planned "
                    "stop %lld ms, crash %lld ms",
                    SESSION_MS, up_ms, stop_ms, crash_ms);
        stop_copy0();
}

/*
 * A publish (Redis) step that fails for the record's own reason (here a key of the wrong type)
 * gets three attempts, then the DLQ, and dlq.attempts says 3: the publish attempts count.
 */
Test(runtime, a_publish_that_keeps_failing_is_dead_lettered_after_three_attempts)
{
        char bad[128], attempts[16] = "", cls[32] = "";
        redisReply *r;

        use_redis_db(6);
        r = redisCommand(fx.redis, "SET set:live:online not-a-set");
        cr_assert(r && r->type != REDIS_REPLY_ERROR);
        freeReplyObject(r);
        start_at_end(NULL);
        snprintf(bad, sizeof(bad), "%s_wrongtype", fx.prefix);
        produce_event(bad, true, 1, 1000);
        flush();
        cr_assert_eq(support_count_records("live.stream.dlq", bad, "dlq.attempts", attempts,
                                           sizeof(attempts), 30000, 1),
                     1, "no DLQ record for %s (log %s)", bad, fx.log_path);
        cr_assert_str_eq(attempts, "3");
        support_count_records("live.stream.dlq", bad, "dlq.error.class", cls, sizeof(cls), 10000,
                              1);
        cr_assert_str_eq(cls, "transient");
        cr_assert_eq(scrape(fx.copies[0].admin_port, STORE_DOWN("redis")), 0,
                     "a command's error is not an outage");
        r = redisCommand(fx.redis, "DEL set:live:online");
        freeReplyObject(r);
        stop_copy0();
}
