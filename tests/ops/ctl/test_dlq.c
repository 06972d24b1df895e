/*
 * test_dlq.c: `liveflow-ctl dlq list|show|replay` against the fixture broker (and MariaDB and
 * Redis for --auto). Each test dead-letters into its own topic "<name>.dlq" and keeps its
 * replay progress in its own group, so tests run side by side.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "codec.h"
#include "ctl.h"
#include "ctl_run.h"
#include "kafka_fixture.h"

static char out[1 << 20];
static char source[64];
static rd_kafka_t *producer;

static void setup(void)
{
        char group[64];

        ctl_env_fixture();
        support_unique_name("ctl_dlq", source, sizeof(source));
        support_unique_name("liveflow.ctl.dlq-replay-test", group, sizeof(group));
        setenv("LIVEFLOW_CTL_REPLAY_GROUP", group, 1);
        unsetenv("LIVEFLOW_MYSQL_URL");
        unsetenv("LIVEFLOW_REDIS_URL");
        producer = support_producer();
}

static void teardown(void)
{
        if (producer)
                rd_kafka_destroy(producer);
}

TestSuite(dlq, .init = setup, .fini = teardown, .timeout = 180);

static void dead(const char *key, const char *event_type, const char *klass, const char *group,
                 long long age_ms, int partition)
{
        struct fx_dead d = {.key = key,
                            .value = "not avro",
                            .event_type = event_type,
                            .error_class = klass,
                            .group = group,
                            .dead_at_ms = ctl_now_ms() - age_ms,
                            .partition = partition};

        fx_produce_dead(producer, source, &d);
}

static long long jint(json_t *o, const char *path1, const char *path2)
{
        json_t *v = json_object_get(o, path1);

        return json_integer_value(path2 ? json_object_get(v, path2) : v);
}

/* Dead-letters n transient rewards keyed <prefix>0 .. <prefix>n-1 (group g, a second ago). */
static void dead_keys(const char *prefix, int n)
{
        for (int i = 0; i < n; i++) {
                char key[16];

                snprintf(key, sizeof(key), "%s%d", prefix, i);
                dead(key, "reward", "transient", "g", 1000, 0);
        }
}

/* A field of the first topic of a `dlq list --json` document. */
static long long listed(json_t *doc, const char *field)
{
        return jint(json_array_get(json_object_get(doc, "topics"), 0), field, NULL);
}

/* `dlq replay --topic <source> ARGS --json`, which must exit 0: its document (to decref). */
static json_t *replay(const char *args)
{
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out), "dlq replay --topic %s %s --json", source, args), 0),
                  "%s", out);
        return ctl_json(out);
}

/* replay(): how many records it replayed. */
static long long replayed(const char *args)
{
        json_t *doc = replay(args);
        long long n = jint(doc, "replayed", NULL);

        json_decref(doc);
        return n;
}

Test(dlq, list_counts_per_error_class_and_group)
{
        json_t *doc, *t;

        dead("a1", "reward", "transient", "liveflow.settlement", 3600000, 0);
        dead("a2", "reward", "transient", "liveflow.settlement", 60000, 1);
        dead("a3", "reward", "permanent", "liveflow.stats", 1000, 2);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq list --topic %s --json", source), 0));
        doc = ctl_json(out);
        t = json_array_get(json_object_get(doc, "topics"), 0);
        cr_assert(eq(i64, jint(t, "count", NULL), 3));
        cr_assert(eq(i64, jint(t, "pending", NULL), 3));
        cr_assert(eq(i64, jint(t, "by_class", "transient"), 2));
        cr_assert(eq(i64, jint(t, "by_class", "permanent"), 1));
        cr_assert(eq(i64, jint(t, "by_group", "liveflow.settlement"), 2));
        cr_assert(eq(i64, jint(t, "by_group", "liveflow.stats"), 1));
        cr_assert(jint(t, "oldest_ms", NULL) < jint(t, "newest_ms", NULL));
        json_decref(doc);
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out), "dlq list --topic %s --group liveflow.stats --json",
                             source),
                     0));
        doc = ctl_json(out);
        cr_assert(eq(i64, listed(doc, "count"), 1));
        json_decref(doc);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq list --topic %s", source), 0));
        cr_assert(strstr(out, "3 record(s)") != NULL, "%s", out);
}

Test(dlq, show_decodes_the_envelope_and_names_the_error)
{
        char errstr[256];
        struct codec *c = codec_new(errstr, sizeof(errstr));
        struct envelope env = {.event_id = "ev-show-1",
                               .vendor = "internal",
                               .event_type = "reward",
                               .anchor_id = "anchor-9",
                               .event_time_ms = 1796464800000LL,
                               .receive_time_ms = 1796464800001LL,
                               .trace_id = "0123456789abcdef0123456789abcdef",
                               .raw = "{\"a\":1}",
                               .raw_len = 7};
        void *val = NULL;
        size_t len = 0;
        json_t *doc, *rec;

        cr_assert(c != NULL, "%s", errstr);
        cr_assert(eq(int, codec_encode(c, &env, NULL, NULL, &val, &len, errstr, sizeof(errstr)), 0),
                  "%s", errstr);
        fx_produce_dead(producer, source,
                        &(struct fx_dead){.key = "anchor-9",
                                          .value = val,
                                          .value_len = len,
                                          .event_type = "reward",
                                          .error_class = "permanent",
                                          .group = "liveflow.reward-sync",
                                          .dead_at_ms = 5});
        dead("garbage", "reward", "permanent", "liveflow.reward-sync", 0, 0);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq show --topic %s.dlq --json", source), 0));
        doc = ctl_json(out);
        cr_assert(eq(sz, json_array_size(json_object_get(doc, "records")), 2));
        rec = json_array_get(json_object_get(doc, "records"), 0);
        cr_assert_str_eq(json_string_value(json_object_get(rec, "key")), "anchor-9");
        cr_assert_str_eq(
                json_string_value(json_object_get(json_object_get(rec, "envelope"), "event_id")),
                "ev-show-1");
        cr_assert(eq(i64, jint(json_object_get(json_object_get(rec, "envelope"), "raw"), "a", NULL),
                     1));
        cr_assert_str_eq(
                json_string_value(json_object_get(json_object_get(rec, "error"), "message")),
                "Table 'x' doesn't exist, a, b");
        cr_assert_str_eq(
                json_string_value(json_object_get(json_object_get(rec, "source"), "topic")),
                source);
        rec = json_array_get(json_object_get(doc, "records"), 1);
        cr_assert(json_object_get(rec, "decode_error") != NULL, "%s", out);
        json_decref(doc);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq show --topic %s --limit 1 --json", source),
                     0));
        doc = ctl_json(out);
        cr_assert(eq(sz, json_array_size(json_object_get(doc, "records")), 1));
        json_decref(doc);
        free(val);
        codec_destroy(c);
}

/* Kafka's Utils.murmur2 (the Java client's default partitioner for keyed records). */
static uint32_t murmur2(const void *key, size_t len)
{
        const uint32_t seed = 0x9747b28c, m = 0x5bd1e995;
        const int r = 24;
        uint32_t h = seed ^ (uint32_t)len;
        const unsigned char *d = key;

        for (; len >= 4; d += 4, len -= 4) {
                uint32_t k = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 |
                             (uint32_t)d[3] << 24;

                k *= m;
                k ^= k >> r;
                k *= m;
                h *= m;
                h ^= k;
        }
        switch (len) {
        case 3:
                h ^= (uint32_t)d[2] << 16; /* fall through */
        case 2:
                h ^= (uint32_t)d[1] << 8; /* fall through */
        case 1:
                h ^= d[0];
                h *= m;
        }
        h ^= h >> 13;
        h *= m;
        h ^= h >> 15;
        return h;
}

static int header_eq(const struct fx_rec *m, const char *name, const char *want)
{
        const void *val;
        size_t len;

        return rd_kafka_header_get_last(m->headers, name, &val, &len) == 0 && len == strlen(want) &&
               memcmp(val, want, len) == 0;
}

static int has_header_prefix(const struct fx_rec *m, const char *prefix)
{
        rd_kafka_headers_t *h = m->headers;
        const char *name;
        const void *val;
        size_t len;

        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &len); i++)
                if (strncmp(name, prefix, strlen(prefix)) == 0)
                        return 1;
        return 0;
}

Test(dlq, replay_is_a_dry_run_until_execute_then_happens_once)
{
        struct fx_rec msgs[16];
        json_t *doc;
        int n, parts;

        dead("anchor-1", "reward", "transient", "liveflow.settlement", 1000, 0);
        dead("anchor-22", "withdrawal", "permanent", "liveflow.settlement", 1000, 0);
        dead("anchor-333", "reward", "transient", "liveflow.stats", 1000, 1);
        doc = replay("--error-class transient");
        cr_assert(eq(int, json_typeof(json_object_get(doc, "dry_run")), JSON_TRUE));
        cr_assert(eq(i64, jint(doc, "replayed", NULL), 2));
        json_decref(doc);
        cr_assert(eq(int, fx_read_all(source, msgs, 16), 0), "a dry run wrote records");

        doc = replay("--error-class transient --execute");
        cr_assert(eq(i64, jint(doc, "replayed", NULL), 2));
        cr_assert(eq(i64, jint(doc, "passed_over", NULL), 1));
        json_decref(doc);
        n = fx_read_all(source, msgs, 16);
        cr_assert(eq(int, n, 2));
        parts = fx_partitions(source);
        for (int i = 0; i < n; i++) {
                struct fx_rec *m = &msgs[i];
                char dlq[128];

                snprintf(dlq, sizeof(dlq), "%s.dlq", source);
                cr_assert(eq(int, header_eq(m, "trace_id", "0123456789abcdef0123456789abcdef"), 1));
                cr_assert(eq(int, header_eq(m, "replay.dlq_topic", dlq), 1));
                cr_assert(eq(int, has_header_prefix(m, "dlq."), 0), "dlq.* kept");
                cr_assert(eq(int, has_header_prefix(m, "replay.time"), 1));
                cr_assert(eq(int, has_header_prefix(m, "replay.by"), 1));
                cr_assert(eq(int, has_header_prefix(m, "replay.dlq_offset"), 1));
                cr_assert(eq(int, has_header_prefix(m, "replay.dlq_partition"), 1));
                cr_assert(eq(int, (int)m->len, 8));
                cr_assert(eq(int, memcmp(m->value, "not avro", 8), 0));
                /* the partition a Java producer (murmur2, positive, modulo) would choose */
                cr_assert(eq(int, (int)m->partition,
                             (int)((murmur2(m->key, m->key_len) & 0x7fffffff) % (uint32_t)parts)),
                          "key %.*s", (int)m->key_len, (const char *)m->key);
        }
        fx_rec_fini(msgs, n);
        /* the same cron line again: nothing new */
        cr_assert(eq(i64, replayed("--error-class transient --execute"), 0));
        cr_assert(eq(int, (n = fx_read_all(source, msgs, 16)), 2));
        fx_rec_fini(msgs, n);
        /* what the progress passed over is still reachable */
        cr_assert(eq(i64, replayed("--history --error-class permanent"), 1));
}

Test(dlq, replay_resumes_where_the_last_run_stopped)
{
        struct fx_rec msgs[16];
        int n;

        dead_keys("k", 5);
        cr_assert(eq(i64, replayed("--execute --limit 2"), 2));
        cr_assert(eq(i64, replayed("--execute --rate 50"), 3));
        n = fx_read_all(source, msgs, 16);
        cr_assert(eq(int, n, 5), "each record exactly once");
        fx_rec_fini(msgs, n);
}

Test(dlq, one_record_by_partition_and_offset_moves_no_progress)
{
        struct fx_rec msgs[16];
        json_t *doc;

        dead("x0", "reward", "permanent", "g", 1000, 3);
        dead("x1", "reward", "permanent", "g", 1000, 3);
        cr_assert(eq(i64, replayed("--partition 3 --offset 1 --execute"), 1));
        cr_assert(eq(int, fx_read_all(source, msgs, 16), 1));
        cr_assert_str_eq(msgs[0].key, "x1");
        fx_rec_fini(msgs, 1);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq list --topic %s --json", source), 0));
        doc = ctl_json(out);
        cr_assert(eq(i64, listed(doc, "pending"), 2));
        json_decref(doc);
}

Test(dlq, auto_replays_old_transient_records_only_while_the_stores_answer)
{
        struct fx_rec msgs[16];
        json_t *doc;

        dead("old-transient", "reward", "transient", "liveflow.settlement", 3600000, 0);
        dead("old-permanent", "reward", "permanent", "liveflow.settlement", 3600000, 0);
        dead("young-transient", "reward", "transient", "liveflow.settlement", 1000, 0);
        setenv("LIVEFLOW_MYSQL_URL", support_fixture("LIVEFLOW_TEST_MYSQL_URL"), 1);
        setenv("LIVEFLOW_REDIS_URL", "redis://127.0.0.1:1/0", 1);
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out),
                             "dlq replay --topic %s --auto --min-age 10m --execute --json", source),
                     1));
        cr_assert(strstr(out, "Redis") != NULL, "%s", out);
        cr_assert(eq(int, fx_read_all(source, msgs, 16), 0));

        setenv("LIVEFLOW_REDIS_URL", support_fixture("LIVEFLOW_TEST_REDIS_URL"), 1);
        doc = replay("--auto --min-age 10m --execute");
        cr_assert(eq(i64, jint(doc, "replayed", NULL), 1));
        cr_assert(eq(i64, jint(doc, "passed_over", NULL), 1));
        cr_assert(eq(sz, json_array_size(json_object_get(doc, "stopped")), 1));
        json_decref(doc);
        cr_assert(eq(int, fx_read_all(source, msgs, 16), 1));
        cr_assert_str_eq(msgs[0].key, "old-transient");
        cr_assert(eq(int, has_header_prefix(&msgs[0], "replay.by"), 1));
        fx_rec_fini(msgs, 1);
        /* the young one becomes due with a shorter minimum age; nothing else is replayed again */
        cr_assert(eq(i64, replayed("--auto --min-age 0s --execute"), 1));
        cr_assert(eq(int, fx_read_all(source, msgs, 16), 2));
        fx_rec_fini(msgs, 2);
}

Test(dlq, bad_options_are_usage_errors)
{
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq replay --error-class sometimes"), 2));
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq replay --offset 3"), 2));
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq list --execute"), 2));
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq replay --auto"), 2));
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq replay --help"), 0));
        cr_assert(strstr(out, "--execute") != NULL, "%s", out);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq --help"), 0));
        cr_assert(strstr(out, "replay") != NULL, "%s", out);
}

Test(dlq, filters_select_by_key_event_type_and_time)
{
        json_t *doc;

        dead("k-a", "reward", "transient", "g", 7200000, 0);
        dead("k-b", "withdrawal", "transient", "g", 60000, 0);
        dead("k-a", "withdrawal", "permanent", "g", 1000, 1);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "dlq list --topic %s --key k-a --json", source),
                     0));
        doc = ctl_json(out);
        cr_assert(eq(i64, listed(doc, "count"), 2));
        json_decref(doc);
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out),
                             "dlq show --topic %s --event-type withdrawal --since -30m --json",
                             source),
                     0));
        doc = ctl_json(out);
        cr_assert(eq(sz, json_array_size(json_object_get(doc, "records")), 2));
        json_decref(doc);
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out), "dlq show --topic %s --until -30m --json", source),
                     0));
        doc = ctl_json(out);
        cr_assert(eq(sz, json_array_size(json_object_get(doc, "records")), 1));
        cr_assert_str_eq(json_string_value(json_object_get(
                                 json_array_get(json_object_get(doc, "records"), 0), "key")),
                         "k-a");
        json_decref(doc);
}

Test(dlq, a_second_replay_at_the_same_time_is_refused)
{
        static struct fx_busy other;
        char dlq[128];

        dead("r1", "reward", "transient", "g", 1000, 0);
        snprintf(dlq, sizeof(dlq), "%s.dlq", source);
        snprintf(other.group, sizeof(other.group), "%s", getenv("LIVEFLOW_CTL_REPLAY_GROUP"));
        fx_busy_start(&other, dlq, false);
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out), "dlq replay --topic %s --execute --json", source),
                     1));
        cr_assert(strstr(out, "another member") != NULL, "%s", out);
        fx_busy_stop(&other);
}

static int count_key(const struct fx_rec *r, int n, const char *key)
{
        int c = 0;

        for (int i = 0; i < n; i++)
                c += strcmp(r[i].key, key) == 0;
        return c;
}

/* Starts `dlq replay --topic <source> --execute --rate RATE` in the background and waits
 * until at least started records are back on the source topic. @returns its pid. */
static pid_t replay_in_background(const char *rate, int started)
{
        static struct fx_rec msgs[128];
        char bin[512], topic[128], rate_arg[16];
        char *argv[] = {bin,   (char *)"dlq",       (char *)"replay", (char *)"--topic",
                        topic, (char *)"--execute", (char *)"--rate", rate_arg,
                        NULL};
        int n = 0;
        pid_t pid;

        support_bin_path("liveflow-ctl", bin, sizeof(bin));
        snprintf(topic, sizeof(topic), "%s", source);
        snprintf(rate_arg, sizeof(rate_arg), "%s", rate);
        pid = support_spawn(argv, NULL, "/dev/null");
        for (int i = 0; i < 300 && n < started; i++) {
                fx_rec_fini(msgs, n);
                n = fx_read_all(source, msgs, 128);
                support_sleep_ms(100);
        }
        fx_rec_fini(msgs, n);
        cr_assert(n >= started, "the replay did not start");
        return pid;
}

Test(dlq, a_killed_replay_resumes_and_loses_nothing)
{
        static struct fx_rec msgs[128];
        int n, rc = -1;
        pid_t pid;

        dead_keys("c", 30);
        pid = replay_in_background("10", 8);
        kill(pid, SIGKILL);
        support_wait_exit(pid, 5000);
        /* as cron would: again until the dead run's membership has timed out */
        for (int attempt = 0; attempt < 10 && rc != 0; attempt++) {
                rc = ctl_run(out, sizeof(out), "dlq replay --topic %s --execute --json", source);
                if (rc != 0)
                        support_sleep_ms(1000);
        }
        cr_assert(eq(int, rc, 0), "%s", out);
        n = fx_read_all(source, msgs, 128);
        for (int i = 0; i < 30; i++) {
                char key[16];

                snprintf(key, sizeof(key), "c%d", i);
                cr_assert(count_key(msgs, n, key) >= 1, "%s lost", key);
        }
        /* at most what one commit interval (a second at 10 a second) held came twice */
        cr_assert(n <= 30 + 12, "%d records for 30", n);
        fx_rec_fini(msgs, n);
}

Test(dlq, one_source_record_dead_lettered_by_several_groups_is_replayed_once)
{
        static struct fx_rec msgs[16];
        json_t *doc;
        int n;

        for (int g = 0; g < 3; g++) {
                static const char *const groups[] = {"liveflow.reward-sync", "liveflow.settlement",
                                                     "liveflow.stats"};

                fx_produce_dead(producer, source,
                                &(struct fx_dead){.key = "anchor-5",
                                                  .value = "v",
                                                  .event_type = "reward",
                                                  .error_class = "transient",
                                                  .group = groups[g],
                                                  .dead_at_ms = 1,
                                                  .partition = g,
                                                  .source_offset = 77});
        }
        doc = replay("--execute");
        cr_assert(eq(i64, jint(doc, "replayed", NULL), 1));
        cr_assert(eq(i64, jint(doc, "same_source", NULL), 2));
        json_decref(doc);
        n = fx_read_all(source, msgs, 16);
        cr_assert(eq(int, n, 1));
        fx_rec_fini(msgs, n);
}

Test(dlq, sigterm_stops_a_replay_with_its_progress_committed)
{
        static struct fx_rec msgs[64];
        long long again;
        int n;
        pid_t pid;

        dead_keys("s", 30);
        pid = replay_in_background("2", 3);
        kill(pid, SIGTERM);
        n = support_wait_exit(pid, 15000);
        cr_assert(eq(int, n, 1), "stopped early, something left: exit %d", n);
        again = replayed("--execute");
        cr_assert(again > 0 && again < 30, "%lld replayed after the stop", again);
        n = fx_read_all(source, msgs, 64);
        cr_assert(eq(int, n, 30), "every record once, none twice");
        fx_rec_fini(msgs, n);
}
