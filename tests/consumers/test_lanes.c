/*
 * test_lanes.c: LIVEFLOW_CONSUMER_LANES, several members of a role's group in one process, through
 * the real binaries on the fixtures: a backlog drained by two lanes with every record applied
 * once and every offset committed, /metrics summing the lanes, a SIGTERM while both lanes are
 * busy that loses and redoes nothing, and bad values refused.
 *
 * Each test reads a topic no other test of this file writes (live.stream, live.other), from a
 * group that starts at the topic's end, so the records between the group's committed offsets
 * and the ends are exactly what its worker must process: the counts below are exact.
 */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "support_stack.h"
#include "support_worker.h"

#define MAX_PARTITIONS 64

static struct support_worker_fx fx;

/* Offsets of every partition of one topic, by partition number. */
struct offsets {
        int cnt;
        long long at[MAX_PARTITIONS];
};

static void setup(void)
{
        support_worker_fx_open(&fx, "ln");
}

static void teardown(void)
{
        support_worker_fx_close(&fx);
}

TestSuite(lanes, .init = setup, .fini = teardown, .timeout = 240);

/* ------------------------------------------------------------------ Kafka offsets */

/* The partitions of topic, of which struct offsets holds at most MAX_PARTITIONS. */
static int partition_count(rd_kafka_t *rk, const char *topic)
{
        int cnt = support_partition_count(rk, topic);

        cr_assert(cnt <= MAX_PARTITIONS, "%s has %d partitions", topic, cnt);
        return cnt;
}

/* The high watermark of every partition of topic. */
static struct offsets ends_of(const char *topic)
{
        rd_kafka_t *rk = support_group_client(fx.group);
        struct offsets o = {partition_count(rk, topic), {0}};

        for (int p = 0; p < o.cnt; p++) {
                int64_t low, high;

                cr_assert(rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, 10000) ==
                          RD_KAFKA_RESP_ERR_NO_ERROR);
                o.at[p] = high;
        }
        rd_kafka_destroy(rk);
        return o;
}

/* What the test's group has committed for every partition of topic (-1: nothing). */
static struct offsets committed_of(const char *topic)
{
        rd_kafka_t *rk = support_group_client(fx.group);
        struct offsets o = {partition_count(rk, topic), {0}};
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(o.cnt);

        for (int p = 0; p < o.cnt; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p);
        cr_assert(rd_kafka_committed(rk, parts, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
        for (int i = 0; i < parts->cnt; i++)
                o.at[parts->elems[i].partition] = parts->elems[i].offset;
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_destroy(rk);
        return o;
}

/* Records between from and to, over every partition. */
static long long records_between(const struct offsets *from, const struct offsets *to)
{
        long long n = 0;

        cr_assert_eq(from->cnt, to->cnt);
        for (int p = 0; p < from->cnt; p++)
                n += to->at[p] - from->at[p];
        return n;
}

static void expect_all_committed(const char *topic)
{
        struct offsets ends = ends_of(topic), done = committed_of(topic);

        for (int p = 0; p < ends.cnt; p++)
                cr_assert_eq(done.at[p], ends.at[p],
                             "%s[%d]: committed %lld, the partition ends at %lld (log %s)", topic,
                             p, done.at[p], ends.at[p], fx.log_path);
}

/* ------------------------------------------------------------------ records */

static void produce(const char *topic, const char *key, const struct envelope *env,
                    const char *record_name, json_t *payload)
{
        char err[256];
        void *buf;
        size_t len;
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);

        cr_assert(codec_encode(fx.codec, env, record_name, payload, &buf, &len, err, sizeof(err)) ==
                          0,
                  "%s", err);
        rd_kafka_header_add(h, "trace_id", -1, env->trace_id, -1);
        rd_kafka_header_add(h, "event_type", -1, env->event_type, -1);
        cr_assert(rd_kafka_producev(fx.producer, RD_KAFKA_V_TOPIC(topic),
                                    RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_HEADERS(h),
                                    RD_KAFKA_V_END) == 0);
}

/* A callback the "other" role keeps (one live_events row), unique by i. */
static void produce_other(int i)
{
        char stream[96], key[160], event_id[65];

        snprintf(stream, sizeof(stream), "%s_o%d", fx.prefix, i);
        snprintf(key, sizeof(key), "tencent|other|%s", stream);
        crypto_sha256_hex(key, strlen(key), event_id);
        const struct envelope env = {
                .event_id = event_id,
                .vendor = "tencent",
                .event_type = "other",
                .stream_id = stream,
                .event_time_ms = 1703731478000LL + i,
                .receive_time_ms = 1703731478123LL + i,
                .trace_id = "0123456789abcdef0123456789abcdef",
                .raw = "{\"event_type\":9999}",
                .raw_len = 18,
        };
        produce("live.other", stream, &env, NULL, NULL);
}

static void flush(void)
{
        cr_assert(rd_kafka_flush(fx.producer, 30000) == 0);
}

/* ------------------------------------------------------------------ the worker */

static void start_worker(const char *role, const char *batch_max)
{
        char instance[96];
        const char *const env[] = {"LIVEFLOW_CONSUMER_LANES=2", batch_max, instance,
                                   "LIVEFLOW_MYSQL_TIMEOUT_S=5", NULL};

        /* Static membership: two lanes with one group.instance.id would fence each other. */
        snprintf(instance, sizeof(instance), "LIVEFLOW_INSTANCE_ID=%s", fx.prefix);
        fx.pid = support_start_worker("liveflow-consumer", role, fx.mysql_url, fx.group, env,
                                      fx.log_path, &fx.admin_port);
}

static void stop_worker(void)
{
        cr_assert(kill(fx.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.pid, 30000), 0, "no clean drain; see %s", fx.log_path);
        fx.pid = 0;
}

/* The sum of the /metrics lines that start with series (each lane's would be a line of its
 * own if they were not summed), or -1 when there is none. */
static long long scrape(const char *series)
{
        char cmd[320], out[64] = "";
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "curl -sf http://127.0.0.1:%d/metrics | grep -F '%s' | "
                 "awk '{n++; s+=$2} END {if (n) printf \"%%d\", s; else print -1}'",
                 fx.admin_port, series);
        if (!(p = popen(cmd, "r")))
                return -1;
        if (!fgets(out, sizeof(out), p))
                out[0] = '\0';
        pclose(p);
        return out[0] ? atoll(out) : -1;
}

#define APPLIED(role) "liveflow_consumer_records_total{role=\"" role "\",outcome=\"applied\"}"
#define DEAD(role)    "liveflow_consumer_records_total{role=\"" role "\",outcome=\"dead_lettered\"}"

/* Records the worker counted as finished (applied or dead-lettered) once it has caught up with
 * the topic: polls until the count equals the records after from, or 60 s. */
static long long finished_after(const char *role_applied, const char *role_dead, const char *topic,
                                const struct offsets *from, long long *want)
{
        long long deadline = support_now_ms() + 60000, got = -1;

        do {
                struct offsets ends = ends_of(topic);

                *want = records_between(from, &ends);
                got = scrape(role_applied) + (scrape(role_dead) > 0 ? scrape(role_dead) : 0);
                if (got == *want)
                        break;
                support_sleep_ms(200);
        } while (support_now_ms() < deadline);
        return got;
}

static bool log_has(const char *needle)
{
        char *text = support_read_file(fx.log_path, NULL);
        bool yes = text && strstr(text, needle);

        free(text);
        return yes;
}

static long long count_prefix(const char *table, const char *column)
{
        return support_query_int(fx.mysql, "SELECT COUNT(*) FROM %s WHERE %s LIKE '%s\\_%%'", table,
                                 column, fx.prefix);
}

static bool wait_count(const char *table, const char *column, long long want)
{
        long long deadline = support_now_ms() + 90000;

        while (count_prefix(table, column) < want && support_now_ms() < deadline)
                support_sleep_ms(100);
        return count_prefix(table, column) == want;
}

/* ------------------------------------------------------------------ tests */

Test(lanes, two_lanes_drain_a_backlog_once_sum_their_metrics_and_commit_every_offset)
{
        static const char *const topics[] = {"live.stream", NULL};
        const int streams = 300;
        char stream[96], series[160];
        long long want = 0, got;
        struct offsets start;

        support_group_at_end(fx.group, topics);
        start = committed_of("live.stream");
        for (int i = 0; i < streams; i++) { /* the backlog: begin, a vendor retry, end */
                snprintf(stream, sizeof(stream), "%s_s%d", fx.prefix, i);
                support_worker_produce_stream_event(&fx, stream, true, i, 10000 + i, NULL);
                support_worker_produce_stream_event(&fx, stream, true, i, 10000 + i, NULL);
                support_worker_produce_stream_event(&fx, stream, false, i, 10000 + i + 60 + i % 7,
                                                    NULL);
        }
        flush();
        start_worker("stream", "LIVEFLOW_BATCH_MAX=50");

        cr_assert(wait_count("live_events", "stream_id", 2LL * streams),
                  "live_events has %lld, want %d (log %s)",
                  count_prefix("live_events", "stream_id"), 2 * streams, fx.log_path);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM live_streams WHERE stream_id LIKE "
                                       "'%s\\_s%%' AND status = 'ended' AND duration_s = 60 + "
                                       "CAST(SUBSTRING_INDEX(stream_id, '_s', -1) AS SIGNED) %% 7",
                                       fx.prefix),
                     streams, "every stream ends once with the duration it was sent");
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(DISTINCT session_id) FROM live_streams WHERE "
                                       "stream_id LIKE '%s\\_s%%'",
                                       fx.prefix),
                     streams, "one session per stream");

        /* /metrics: one line per series, the lanes' counts summed, equal to the records. */
        got = finished_after(APPLIED("stream"), DEAD("stream"), "live.stream", &start, &want);
        cr_assert_eq(got, want, "/metrics counts %lld records, the group processed %lld (log %s)",
                     got, want, fx.log_path);
        cr_assert_geq(want, 3LL * streams);
        snprintf(series, sizeof(series), "liveflow_consumer_assigned_partitions{role=\"stream\"}");
        cr_assert_eq(scrape(series), start.cnt, "the lanes hold every partition between them");
        cr_assert(log_has("lane=1 assigned") && log_has("lane=2 assigned"),
                  "both lanes joined the group (log %s)", fx.log_path);
        cr_assert(!log_has("FENCED"), "a lane was fenced (log %s)", fx.log_path);

        stop_worker();
        expect_all_committed("live.stream");
}

Test(lanes, sigterm_while_both_lanes_are_busy_loses_and_redoes_nothing)
{
        static const char *const topics[] = {"live.other", NULL};
        const int records = 3000;
        struct offsets start, after_stop;
        long long durable, committed, want = 0, got;

        support_group_at_end(fx.group, topics);
        start = committed_of("live.other");
        for (int i = 0; i < records; i++)
                produce_other(i);
        flush();
        start_worker("other", "LIVEFLOW_BATCH_MAX=20");
        long long deadline = support_now_ms() + 60000;

        while (count_prefix("live_events", "stream_id") < 200 && support_now_ms() < deadline)
                support_sleep_ms(5);
        stop_worker(); /* each lane finishes its batch, commits and leaves */

        /* Everything committed is durable: nothing was committed ahead of its effects. */
        after_stop = committed_of("live.other");
        committed = records_between(&start, &after_stop);
        durable = count_prefix("live_events", "stream_id");
        cr_log_info("stopped after %lld of %d records committed, %lld durable", committed, records,
                    durable);
        cr_assert_geq(durable, committed, "offsets committed past the effects (log %s)",
                      fx.log_path);

        /* A new process takes up exactly where the lanes stopped: what they finished is not
         * done again, and nothing is skipped. */
        start_worker("other", "LIVEFLOW_BATCH_MAX=20");
        cr_assert(wait_count("live_events", "stream_id", records),
                  "live_events has %lld of %d (log %s)", count_prefix("live_events", "stream_id"),
                  records, fx.log_path);
        got = finished_after(APPLIED("other"), DEAD("other"), "live.other", &after_stop, &want);
        cr_assert_eq(got, want,
                     "the second process processed %lld records, %lld were left (log %s)", got,
                     want, fx.log_path);
        cr_assert_eq(want, records - committed);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(DISTINCT event_id) FROM live_events WHERE "
                                       "stream_id LIKE '%s\\_o%%'",
                                       fx.prefix),
                     records);
        stop_worker();
        expect_all_committed("live.other");
}

/* Runs prog with LIVEFLOW_CONSUMER_LANES=value; @returns its exit status, its output in out. */
static int run_with_lanes(const char *prog, const char *value, bool check_only, char *out,
                          size_t out_size)
{
        char bin[512], lanes[64], log[256];
        char *argv[] = {bin, (char *)(check_only ? "--check-config" : NULL), NULL};
        char *const env[] = {lanes,
                             (char *)"LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1",
                             (char *)"LIVEFLOW_MYSQL_URL=mysql://u:p@127.0.0.1:1/db",
                             (char *)"LIVEFLOW_REDIS_URL=redis://127.0.0.1:1/0",
                             (char *)"LIVEFLOW_ROLE=other",
                             NULL};
        char *text;
        int status;

        support_bin_path(prog, bin, sizeof(bin));
        snprintf(lanes, sizeof(lanes), "LIVEFLOW_CONSUMER_LANES=%s", value);
        snprintf(log, sizeof(log), "/tmp/%s.%s.lanes.log", fx.prefix, prog);
        unlink(log);
        status = support_wait_exit(support_spawn(argv, env, log), 20000);
        text = support_read_file(log, NULL);
        snprintf(out, out_size, "%s", text ? text : "");
        free(text);
        return status;
}

Test(lanes, a_bad_lane_count_is_refused_with_the_key_named)
{
        static const char *const progs[] = {"liveflow-consumer", "liveflow-settlement",
                                            "liveflow-stats"};
        static const char *const bad[] = {"0", "65", "two", "-1", "2x"};
        char out[2048];

        for (size_t p = 0; p < sizeof(progs) / sizeof(progs[0]); p++) {
                for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                        for (int check = 0; check < 2; check++) {
                                int status =
                                        run_with_lanes(progs[p], bad[i], check, out, sizeof(out));

                                cr_assert_eq(status, 2, "%s with %s exits %d: %s", progs[p], bad[i],
                                             status, out);
                                cr_assert(strstr(out, "LIVEFLOW_CONSUMER_LANES") != NULL,
                                          "%s: the message does not name the key: %s", progs[p],
                                          out);
                        }
                }
                cr_assert_eq(run_with_lanes(progs[p], "2", true, out, sizeof(out)), 0, "%s: %s",
                             progs[p], out);
                cr_assert(strstr(out, "2 lanes") != NULL, "%s: %s", progs[p], out);
        }
}
