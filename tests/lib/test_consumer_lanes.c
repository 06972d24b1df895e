/*
 * test_consumer_lanes.c: the consumer runtime in-process with a role of the test's own, on the
 * fixture broker, MariaDB and Redis: two lanes (lib/consumer_lanes.h) split a topic's records
 * between them, each applied once, and answer /readyz for both; a batch rolled back by a
 * transient failure (a deadlock) is tried again whole before one record at a time
 * (lib/consumer_apply.c), and one record at a time once the whole tries are spent.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "consumer.h"
#include "consumer_lanes.h"
#include "crypto.h"
#include "metrics.h"
#include "settings.h"
#include "signals.h"
#include "support.h"

#define RECORDS 400
#define LANES   2

static struct {
        char prefix[48];
        char topic[96];
        const char *topics[2];
        struct settings settings;
        struct metrics *metrics;
        /* what the test role saw */
        atomic_int apply_calls;      /* apply(): one record at a time */
        atomic_int apply_many_calls; /* apply_many() */
        atomic_int many_failures;    /* apply_many() calls that said APPLY_RETRY */
        atomic_int fail_many;        /* apply_many() says APPLY_RETRY this many more times */
        atomic_int by_lane[LANES + 1];
        atomic_int seen[RECORDS]; /* per record: times its effects were committed */
} fx;

/* ------------------------------------------------------------------ the test's role */

struct test_state {
        struct db *db;
        int lane;
};

static int test_open(const struct role_env *env, void **state, char *errstr, size_t errstr_size)
{
        struct test_state *st = calloc(1, sizeof(*st));

        if (!st) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        st->db = env->db;
        st->lane = env->lane;
        *state = st;
        return 0;
}

/* The record's number, from its stream id "<prefix>_<n>". */
static int record_number(const struct consumer_record *rec)
{
        const char *us = strrchr(rec->ev.stream_id, '_');
        int n = us ? atoi(us + 1) : -1;

        cr_assert(n >= 0 && n < RECORDS, "a record the test did not produce: %s",
                  rec->ev.stream_id);
        return n;
}

/* The role's only effect: what a committed batch would have written (the runtime commits
 * right after a successful apply() or apply_many(); the test's transactions are empty). */
static void count(const struct test_state *st, const struct consumer_record *rec)
{
        atomic_fetch_add(&fx.seen[record_number(rec)], 1);
        atomic_fetch_add(&fx.by_lane[st->lane], 1);
}

static enum apply_result test_apply(void *state, struct consumer_record *rec, char *errstr,
                                    size_t errstr_size)
{
        (void)errstr;
        (void)errstr_size;
        atomic_fetch_add(&fx.apply_calls, 1);
        count(state, rec);
        return APPLY_DONE;
}

static enum apply_result test_apply_many(void *state, struct apply_slot *slots, size_t n,
                                         char *errstr, size_t errstr_size)
{
        atomic_fetch_add(&fx.apply_many_calls, 1);
        if (atomic_fetch_sub(&fx.fail_many, 1) > 0) {
                atomic_fetch_add(&fx.many_failures, 1);
                snprintf(errstr, errstr_size, "Deadlock found when trying to get lock (test)");
                return APPLY_RETRY;
        }
        for (size_t i = 0; i < n; i++) {
                slots[i].result = APPLY_DONE;
                count(state, slots[i].rec);
        }
        return APPLY_DONE;
}

static void test_close(void *state)
{
        free(state);
}

static struct consumer_role test_role = {
        .name = "lanes-test",
        .open = test_open,
        .apply = test_apply,
        .apply_many = test_apply_many,
        .close = test_close,
};

/* ------------------------------------------------------------------ fixture */

static void setup(void)
{
        char url[512], group[96];

        support_unique_name("cl", fx.prefix, sizeof(fx.prefix));
        snprintf(fx.topic, sizeof(fx.topic), "test.%s", fx.prefix);
        snprintf(group, sizeof(group), "test.%s", fx.prefix);
        fx.topics[0] = fx.topic;
        test_role.topics = fx.topics;
        support_create_database(url, sizeof(url));
        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), 1);
        setenv("LIVEFLOW_MYSQL_URL", url, 1);
        setenv("LIVEFLOW_REDIS_URL", support_fixture("LIVEFLOW_TEST_REDIS_URL"), 1);
        setenv("LIVEFLOW_GROUP_ID", group, 1);
        setenv("LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS", "3000", 1);
        setenv("LIVEFLOW_RETRY_BACKOFF_MS", "10", 1);
        setenv("LIVEFLOW_BATCH_MAX", "100", 1);
        cr_assert((fx.metrics = metrics_new()) != NULL);
}

static void teardown(void)
{
        settings_fini(&fx.settings);
        metrics_destroy(fx.metrics);
}

TestSuite(consumer_lanes, .init = setup, .fini = teardown, .timeout = 120);

static void load_settings(const char *lanes)
{
        char err[512];

        setenv("LIVEFLOW_CONSUMER_LANES", lanes, 1);
        cr_assert(settings_load(&fx.settings, SETTINGS_CONSUMER, err, sizeof(err)) == 0, "%s", err);
}

/* RECORDS envelopes on the test's topic, keyed so that they spread over its partitions. */
static void produce_records(void)
{
        rd_kafka_t *producer = support_producer();
        struct codec *codec;
        char err[256], stream[96], event_id[65];

        cr_assert((codec = codec_new(err, sizeof(err))) != NULL, "%s", err);
        for (int i = 0; i < RECORDS; i++) {
                void *buf;
                size_t len;

                snprintf(stream, sizeof(stream), "%s_%d", fx.prefix, i);
                crypto_sha256_hex(stream, strlen(stream), event_id);
                const struct envelope env = {
                        .event_id = event_id,
                        .vendor = "tencent",
                        .event_type = "other",
                        .stream_id = stream,
                        .event_time_ms = 1703731478000LL + i,
                        .receive_time_ms = 1703731478123LL + i,
                        .trace_id = "0123456789abcdef0123456789abcdef",
                        .raw = "{}",
                        .raw_len = 2,
                };
                cr_assert(codec_encode(codec, &env, NULL, NULL, &buf, &len, err, sizeof(err)) == 0,
                          "%s", err);
                cr_assert(rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(fx.topic),
                                            RD_KAFKA_V_KEY(stream, strlen(stream)),
                                            RD_KAFKA_V_VALUE(buf, len),
                                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                            RD_KAFKA_V_END) == 0);
        }
        cr_assert(rd_kafka_flush(producer, 20000) == 0);
        rd_kafka_destroy(producer);
        codec_destroy(codec);
}

static int records_seen(void)
{
        int n = 0;

        for (int i = 0; i < RECORDS; i++)
                n += atomic_load(&fx.seen[i]) > 0;
        return n;
}

static void wait_all_seen(void)
{
        long long deadline = support_now_ms() + 60000;

        while (records_seen() < RECORDS && support_now_ms() < deadline)
                support_sleep_ms(20);
        cr_assert_eq(records_seen(), RECORDS, "only %d of %d records applied", records_seen(),
                     RECORDS);
}

static void expect_each_once(void)
{
        for (int i = 0; i < RECORDS; i++)
                cr_assert_eq(atomic_load(&fx.seen[i]), 1, "record %d applied %d times", i,
                             atomic_load(&fx.seen[i]));
}

/* ------------------------------------------------------------------ lanes */

struct lanes_run {
        struct consumer_lanes *lanes;
        int rc;
};

static void *run_lanes(void *arg)
{
        struct lanes_run *r = arg;

        r->rc = consumer_lanes_run(r->lanes, 10000);
        return NULL;
}

/* The lanes, each a member of the group on its own thread, until the test has seen what it
 * waits for; then the stop, as SIGTERM would request it. */
static int with_lanes(void (*wait_for)(void))
{
        char err[512], why[200] = "";
        struct lanes_run r = {0};
        pthread_t tid;
        long long deadline;

        r.lanes = consumer_lanes_new(&test_role, &fx.settings, fx.metrics, err, sizeof(err));
        cr_assert(r.lanes != NULL, "%s", err);
        cr_assert(pthread_create(&tid, NULL, run_lanes, &r) == 0);
        deadline = support_now_ms() + 30000;
        while (!consumer_lanes_ready(r.lanes, why, sizeof(why)) && support_now_ms() < deadline)
                support_sleep_ms(20);
        cr_assert(consumer_lanes_ready(r.lanes, why, sizeof(why)), "not ready: %s", why);
        wait_for();
        signals_request_stop();
        pthread_join(tid, NULL);
        cr_assert(!consumer_lanes_ready(r.lanes, why, sizeof(why)), "ready while stopped");
        cr_assert(strstr(why, "draining") != NULL, "%s", why);
        consumer_lanes_destroy(r.lanes);
        return r.rc;
}

static long long metric(const char *series)
{
        char *text = metrics_render(fx.metrics, NULL), *line;
        long long v = -1;

        cr_assert(text != NULL);
        if ((line = strstr(text, series)))
                v = atoll(line + strlen(series));
        free(text);
        return v;
}

Test(consumer_lanes, two_lanes_share_the_partitions_and_apply_each_record_once)
{
        load_settings("2");
        produce_records();
        cr_assert_eq(with_lanes(wait_all_seen), 0, "a lane did not drain cleanly");
        expect_each_once();
        cr_assert(atomic_load(&fx.by_lane[1]) > 0 && atomic_load(&fx.by_lane[2]) > 0,
                  "lane 1 applied %d, lane 2 %d: both lanes take part", atomic_load(&fx.by_lane[1]),
                  atomic_load(&fx.by_lane[2]));
        cr_assert_eq(atomic_load(&fx.by_lane[1]) + atomic_load(&fx.by_lane[2]), RECORDS);
        cr_assert_eq(
                metric("liveflow_consumer_records_total{role=\"lanes-test\",outcome=\"applied\"} "),
                RECORDS, "the lanes' counts are summed in one series");
        cr_assert_eq(atomic_load(&fx.apply_calls), 0, "no batch fell back to one record at a time");
}

Test(consumer_lanes, a_batch_rolled_back_by_a_deadlock_is_tried_again_whole)
{
        load_settings("1");
        atomic_store(&fx.fail_many, 1);
        produce_records();
        cr_assert_eq(with_lanes(wait_all_seen), 0);
        expect_each_once();
        cr_assert_eq(atomic_load(&fx.many_failures), 1);
        cr_assert_eq(atomic_load(&fx.apply_calls), 0,
                     "the batch went one record at a time (%d apply() calls) after one deadlock",
                     atomic_load(&fx.apply_calls));
        cr_assert_eq(metric("liveflow_consumer_retries_total{role=\"lanes-test\"} "), 1);
}

Test(consumer_lanes, a_batch_that_keeps_deadlocking_goes_one_record_at_a_time)
{
        load_settings("1");
        atomic_store(&fx.fail_many, 2); /* both whole tries of the first batch */
        produce_records();
        cr_assert_eq(with_lanes(wait_all_seen), 0);
        expect_each_once();
        cr_assert_eq(atomic_load(&fx.many_failures), 2);
        cr_assert_gt(atomic_load(&fx.apply_calls), 0,
                     "the first batch never went record by record");
}
