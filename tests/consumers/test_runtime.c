/*
 * test_runtime.c: the consumer runtime's guarantees, through the stream role's binary on the
 * real fixtures: a MySQL or Redis outage (connection lost, a table renamed away, a commit whose
 * answer was lost) holds the partitions and dead-letters nothing, then resumes by itself;
 * kill -9 at any moment loses and doubles nothing; several copies of a role share the work.
 *
 * This file holds the fixture and the outages; its part runtime/copies.c holds kill -9 under
 * load, several copies, lag, scaling, the planned stop's handover and a publish that keeps
 * failing; runtime/fixture.h is what they share.
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
#include "runtime/fixture.h"

struct runtime_fixture fx;

static void setup(void)
{
        support_worker_fx_open(&fx.w, "rt");
        snprintf(fx.consumer_url, sizeof(fx.consumer_url), "%s", fx.w.mysql_url);
        fx.redis = support_redis_connect(0, false, NULL, 0);
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
void spawn_copy(int i)
{
        char instance[96], redis_url[160];
        const char *const env[] = {instance, "LIVEFLOW_MYSQL_TIMEOUT_S=2", "LIVEFLOW_BATCH_MAX=50",
                                   redis_url, NULL};

        snprintf(instance, sizeof(instance), "LIVEFLOW_INSTANCE_ID=%s-%d", fx.w.prefix, i);
        snprintf(redis_url, sizeof(redis_url), "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%s/%d",
                 support_fixture("LIVEFLOW_TEST_REDIS_PORT"), fx.redis_db);
        fx.copies[i].pid =
                support_spawn_worker("liveflow-consumer", "stream", fx.consumer_url, fx.w.group,
                                     env, fx.w.log_path, &fx.copies[i].admin_port);
}

void wait_copy_ready(int i)
{
        cr_assert(support_wait_ready(fx.copies[i].admin_port, 30000) == 0,
                  "copy %d not ready; see %s", i, fx.w.log_path);
}

void start_copy(int i)
{
        spawn_copy(i);
        wait_copy_ready(i);
}

/* A stream event as the receiver makes it, with fx.replay_header as its replay.time. */
void produce_event(const char *stream_id, bool begin, long long sequence, long long event_time_s)
{
        support_worker_produce_stream_event(&fx.w, stream_id, begin, sequence, event_time_s,
                                            fx.replay_header);
}

void flush(void)
{
        cr_assert(rd_kafka_flush(fx.w.producer, 20000) == 0);
}

long long count_events(void)
{
        return support_query_int(fx.w.mysql,
                                 "SELECT COUNT(*) FROM live_events WHERE stream_id LIKE '%s%%'",
                                 fx.w.prefix);
}

bool wait_events(long long want, int timeout_ms)
{
        long long deadline = support_now_ms() + timeout_ms;

        while (count_events() < want && support_now_ms() < deadline)
                support_sleep_ms(100);
        return count_events() == want;
}

void wait_status(const char *stream_id, const char *want)
{
        char got[32] = "";
        long long deadline = support_now_ms() + 20000;

        while (support_now_ms() < deadline) {
                support_query1(fx.w.mysql, got, sizeof(got),
                               "SELECT status FROM live_streams WHERE stream_id = '%s'", stream_id);
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(50);
        }
        cr_assert_fail("%s is \"%s\", want \"%s\" (log %s)", stream_id, got, want, fx.w.log_path);
}

/* The counter of one copy's /metrics line that starts with `series`, or -1. */
long long scrape(int port, const char *series)
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
        cr_assert_fail("%s is %lld, want %lld (log %s)", series, got, want, fx.w.log_path);
}

/* A relay in front of MySQL (or Redis), so an outage is this test's consumer's alone. */
static void relay_mysql(void)
{
        char url_err[256];
        struct mysql_url u;

        cr_assert(url_parse_mysql(fx.w.mysql_url, &u, url_err, sizeof(url_err)) == 0, "%s",
                  url_err);
        fx.proxy = support_proxy_start(u.port);
        snprintf(fx.consumer_url, sizeof(fx.consumer_url), "mysql://%s:%s@127.0.0.1:%d/%s", u.user,
                 u.password, support_proxy_port(fx.proxy), u.database);
}

/*
 * Every test's worker reads every test's records of live.stream and projects them into Redis:
 * a test that asserts what Redis lacks gives its worker a Redis database of its own (1..15).
 */
void use_redis_db(int db)
{
        redisReply *r = redisCommand(fx.redis, "SELECT %d", db);

        cr_assert(r && r->type != REDIS_REPLY_ERROR);
        freeReplyObject(r);
        fx.redis_db = db;
}

void start_at_end(const char *const extra_env[])
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
        snprintf(instance, sizeof(instance), "LIVEFLOW_INSTANCE_ID=%s-0", fx.w.prefix);
        support_group_at_end(fx.w.group, topics);
        fx.copies[0].pid =
                support_start_worker("liveflow-consumer", "stream", fx.consumer_url, fx.w.group,
                                     env, fx.w.log_path, &fx.copies[0].admin_port);
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
                  fx.w.log_path);
}

void stop_copy0(void)
{
        cr_assert(kill(fx.copies[0].pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.copies[0].pid, 20000), 0, "no clean drain; see %s",
                     fx.w.log_path);
        fx.copies[0].pid = 0;
}

Test(runtime, mysql_outage_holds_the_partition_dead_letters_nothing_and_resumes)
{
        char first[128], held[128], after[128];

        use_redis_db(2);
        relay_mysql();
        start_at_end(NULL);
        snprintf(first, sizeof(first), "%s_first", fx.w.prefix);
        snprintf(held, sizeof(held), "%s_held", fx.w.prefix);
        snprintf(after, sizeof(after), "%s_after", fx.w.prefix);
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
                     fx.w.log_path);

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
                support_query_int(fx.w.mysql,
                                  "SELECT COUNT(*) FROM live_events WHERE stream_id LIKE '%s%%'",
                                  fx.w.prefix),
                3, "each event recorded once");
        stop_copy0();
}

Test(runtime, a_table_renamed_away_holds_the_partition_until_it_is_back)
{
        char first[128], held[128];

        use_redis_db(3);
        start_at_end(NULL);
        snprintf(first, sizeof(first), "%s_first", fx.w.prefix);
        snprintf(held, sizeof(held), "%s_held", fx.w.prefix);
        produce_event(first, true, 1, 1000);
        flush();
        wait_status(first, "live");

        cr_assert(mysql_query(fx.w.mysql, "RENAME TABLE live_events TO live_events_away") == 0,
                  "%s", mysql_error(fx.w.mysql));
        produce_event(held, true, 2, 2000);
        flush();
        wait_metric(STORE_DOWN("mysql"), 1);
        cr_assert_eq(readyz(fx.copies[0].admin_port), 503);
        support_sleep_ms(1500);
        cr_assert_eq(dlq_records(held), 0, "a missing table sent %s to the DLQ (log %s)", held,
                     fx.w.log_path);

        cr_assert(mysql_query(fx.w.mysql, "RENAME TABLE live_events_away TO live_events") == 0,
                  "%s", mysql_error(fx.w.mysql));
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
        snprintf(first, sizeof(first), "%s_first", fx.w.prefix);
        snprintf(amb, sizeof(amb), "%s_amb", fx.w.prefix);
        produce_event(first, true, 1, 1000);
        flush();
        wait_status(first, "live");
        support_query1(fx.w.mysql, db, sizeof(db), "SELECT DATABASE()");

        cr_assert(mysql_query(fx.w.mysql, "BACKUP STAGE START") == 0, "%s",
                  mysql_error(fx.w.mysql));
        cr_assert(mysql_query(fx.w.mysql, "BACKUP STAGE BLOCK_COMMIT") == 0, "%s",
                  mysql_error(fx.w.mysql));
        produce_event(amb, true, 2, 2000);
        flush();
        deadline = support_now_ms() + 20000;
        while (support_query_int(fx.w.mysql,
                                 "SELECT COUNT(*) FROM information_schema.processlist WHERE db = "
                                 "'%s' AND info = 'COMMIT'",
                                 db) == 0 &&
               support_now_ms() < deadline)
                support_sleep_ms(20);
        support_proxy_cut(fx.proxy); /* the answer to that COMMIT never comes back */
        wait_metric(STORE_DOWN("mysql"), 1);
        cr_assert(mysql_query(fx.w.mysql, "BACKUP STAGE END") == 0, "%s", mysql_error(fx.w.mysql));
        /* The commit did happen; Redis has not heard of it. */
        wait_status(amb, "live");
        cr_assert(!is_online(amb));

        support_proxy_restore(fx.proxy);
        wait_online(amb);
        wait_metric(STORE_DOWN("mysql"), 0);
        cr_assert_eq(dlq_records(amb), 0, "an applied record was dead-lettered (log %s)",
                     fx.w.log_path);
        cr_assert_eq(support_query_int(fx.w.mysql,
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
        snprintf(first, sizeof(first), "%s_first", fx.w.prefix);
        snprintf(held, sizeof(held), "%s_held", fx.w.prefix);
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
                     fx.w.log_path);

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
        snprintf(bad, sizeof(bad), "%s_bad", fx.w.prefix);
        support_produce(fx.w.producer, "live.stream", bad, "not avro", 8, "stream.begin");
        cr_assert_eq(support_count_records("live.stream.dlq", bad, "dlq.error.class", cls,
                                           sizeof(cls), 30000, 1),
                     1, "no DLQ record for %s (log %s)", bad, fx.w.log_path);
        cr_assert_str_eq(cls, "permanent");
        support_count_records("live.stream.dlq", bad, "dlq.attempts", attempts, sizeof(attempts),
                              10000, 1);
        cr_assert_str_eq(attempts, "1");
        cr_assert_eq(scrape(fx.copies[0].admin_port, STORE_DOWN("mysql")), 0);
        stop_copy0();
        /* Logged with the trace id its header carries, so the request can be found. */
        char *log = support_read_file(fx.w.log_path, NULL);

        cr_assert_not_null(log);
        cr_assert(strstr(log, "trace=0123456789abcdef0123456789abcdef undecodable record"),
                  "the undecodable record is logged without its trace id (log %s)", fx.w.log_path);
        free(log);
}

/* A dead letter written back (replay.time) is counted as a replay and kept out of freshness. */
Test(runtime, replays_are_counted_apart_from_new_records)
{
        char replayed[128], fresh[128];

        start_at_end(NULL);
        snprintf(replayed, sizeof(replayed), "%s_replayed", fx.w.prefix);
        snprintf(fresh, sizeof(fresh), "%s_fresh", fx.w.prefix);
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
                     1, "(log %s)", fx.w.log_path);
        /* Every series, the new ones included, passes Prometheus' own lint. */
        cr_assert_eq(support_sh("curl -sf http://127.0.0.1:%d/metrics | promtool check metrics",
                                fx.copies[0].admin_port),
                     0, "promtool check metrics complains (see the output above)");
        stop_copy0();
}
