/*
 * test_group.c: `liveflow-ctl group status|rewind` against the fixture broker: lag with no
 * member alive, a rewind by time (the dev broker's offsets_for_times answers -1) while another
 * group consumes, and a refusal while the group has a member.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <string.h>

#include "ctl.h"
#include "ctl_run.h"
#include "kafka_fixture.h"

static char out[1 << 20];
static char topic[64], group[64];
static rd_kafka_t *producer;

static void setup(void)
{
        ctl_env_fixture();
        support_unique_name("ctl_group_t", topic, sizeof(topic));
        support_unique_name("liveflow.ctl-test", group, sizeof(group));
        producer = support_producer();
}

static void teardown(void)
{
        if (producer)
                rd_kafka_destroy(producer);
}

TestSuite(group, .init = setup, .fini = teardown, .timeout = 240);

static void produce_at(int n, long long base_ms, long long step_ms)
{
        for (int i = 0; i < n; i++) {
                char key[16];

                static char value[] = "v";
                rd_kafka_resp_err_t err;

                snprintf(key, sizeof(key), "k%d", i);
                err = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                        RD_KAFKA_V_KEY(key, strlen(key)),
                                        RD_KAFKA_V_VALUE(value, 1),
                                        RD_KAFKA_V_TIMESTAMP(base_ms + i * step_ms),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                cr_assert(eq(int, err, 0));
        }
        cr_assert(eq(int, rd_kafka_flush(producer, 10000), 0));
}

static rd_kafka_t *plain_consumer(const char *g, bool cooperative)
{
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;

        rd_kafka_conf_set(conf, "bootstrap.servers",
                          support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err, sizeof(err));
        rd_kafka_conf_set(conf, "group.id", g, err, sizeof(err));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
        rd_kafka_conf_set(conf, "session.timeout.ms", "3000", err, sizeof(err));
        rd_kafka_conf_set(conf, "heartbeat.interval.ms", "500", err, sizeof(err));
        if (cooperative)
                rd_kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err,
                                  sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        cr_assert(rk != NULL, "%s", err);
        rd_kafka_poll_set_consumer(rk);
        return rk;
}

/* Commits offset on partition 0 and 0 on the others, for a group nobody has joined yet. */
static void commit_at(const char *g, int64_t offset)
{
        rd_kafka_t *rk = plain_consumer(g, false);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
        int parts = fx_partitions(topic);
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

        for (int p = 0; p < parts; p++)
                rd_kafka_topic_partition_list_add(l, topic, p)->offset = p == 0 ? offset : 0;
        for (int attempt = 0; attempt < 20; attempt++) {
                if ((err = rd_kafka_commit(rk, l, 0)) == RD_KAFKA_RESP_ERR_NO_ERROR)
                        break;
                support_sleep_ms(250);
        }
        cr_assert(eq(int, err, 0), "%s", rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_destroy(rk);
}

static int64_t committed0(const char *g)
{
        rd_kafka_t *rk = plain_consumer(g, false);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        int64_t off;

        rd_kafka_topic_partition_list_add(l, topic, 0);
        cr_assert(eq(int, rd_kafka_committed(rk, l, 10000), 0));
        off = l->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_destroy(rk);
        return off;
}

static json_t *partition0(json_t *doc)
{
        json_t *parts = json_object_get(json_array_get(json_object_get(doc, "groups"), 0),
                                        "partitions"),
               *p;
        size_t i;

        json_array_foreach(parts, i, p)
        {
                if (json_integer_value(json_object_get(p, "partition")) == 0)
                        return p;
        }
        cr_assert(eq(int, 0, 1), "no partition 0 in %s", out);
        return NULL;
}

Test(group, status_gives_lag_in_records_and_seconds_with_no_member_alive)
{
        long long base = ctl_now_ms() - 600000;
        json_t *doc, *p, *members;
        double lag_s;

        produce_at(10, base, 1000);
        commit_at(group, 4);
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out), "group status %s --topic %s --json", group, topic),
                     0));
        doc = ctl_json(out);
        p = partition0(doc);
        cr_assert(eq(i64, json_integer_value(json_object_get(p, "committed")), 4));
        cr_assert(eq(i64, json_integer_value(json_object_get(p, "end")), 10));
        cr_assert(eq(i64, json_integer_value(json_object_get(p, "lag")), 6));
        cr_assert(eq(i64, json_integer_value(json_object_get(p, "oldest_unconsumed_ms")),
                     base + 4000));
        lag_s = json_real_value(json_object_get(p, "lag_seconds"));
        cr_assert(lag_s >= 596.0, "%f", lag_s);
        cr_assert(lag_s < 596.0 + 120, "%f", lag_s);
        members = json_object_get(json_array_get(json_object_get(doc, "groups"), 0), "members");
        cr_assert(eq(int, json_typeof(json_object_get(members, "known")), JSON_FALSE), "%s", out);
        cr_assert(strstr(json_string_value(json_object_get(members, "why")), "cannot list") != NULL,
                  "%s", out);
        json_decref(doc);
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out), "group status %s --topic %s --max-lag-seconds 60",
                             group, topic),
                     1));
        cr_assert(strstr(out, "over --max-lag-seconds") != NULL, "%s", out);
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out), "group status %s --topic %s --max-lag-seconds 3600",
                             group, topic),
                     0));
}

Test(group, status_of_every_role_group_works_on_the_dev_broker)
{
        json_t *doc;

        cr_assert(eq(int, ctl_run(out, sizeof(out), "group status --json"), 0));
        doc = ctl_json(out);
        cr_assert(json_array_size(json_object_get(doc, "groups")) >= 8, "%s", out);
        json_decref(doc);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "group status liveflow.nobody"), 2));
}

Test(group, rewind_to_time_searches_timestamps_and_the_group_rereads_from_there)
{
        long long base = ctl_now_ms() - 3600000;
        static struct fx_busy other;
        json_t *doc, *p;
        rd_kafka_t *rk;
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_message_t *m = NULL;

        produce_at(10, base, 60000);
        commit_at(group, 10);
        support_unique_name("liveflow.ctl-busy", other.group, sizeof(other.group));
        fx_busy_start(&other, topic, true);
        /* dry run: the plan, nothing committed */
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out),
                             "group rewind %s --topic %s --partition 0 --to-time %lld --json",
                             group, topic, base + 5 * 60000 - 1),
                     0));
        doc = ctl_json(out);
        p = json_array_get(json_object_get(doc, "plan"), 0);
        cr_assert(eq(i64, json_integer_value(json_object_get(p, "target")), 5), "%s", out);
        cr_assert(eq(i64, json_integer_value(json_object_get(p, "current")), 10));
        cr_assert(strstr(json_string_value(json_object_get(p, "method")), "timestamp search") !=
                          NULL,
                  "%s", out);
        json_decref(doc);
        cr_assert(eq(i64, committed0(group), 10));
        /* applied */
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out),
                             "group rewind %s --topic %s --partition 0 --to-time %lld "
                             "--execute --json",
                             group, topic, base + 5 * 60000 - 1),
                     0));
        doc = ctl_json(out);
        cr_assert(eq(int, json_typeof(json_object_get(doc, "applied")), JSON_TRUE), "%s", out);
        json_decref(doc);
        cr_assert(eq(i64, committed0(group), 5));
        /* the other group kept consuming, untouched */
        cr_assert(atomic_load(&other.assigned) > 0);
        cr_assert(eq(i64, committed0(other.group), RD_KAFKA_OFFSET_INVALID));
        /* ... and refuses a rewind while its member runs */
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out),
                             "group rewind %s --topic %s --to-earliest --execute --json",
                             other.group, topic),
                     1));
        cr_assert(strstr(out, "other active members") != NULL, "%s", out);
        fx_busy_stop(&other);
        /* the rewound group reads again from the record at that time */
        rk = plain_consumer(group, true);
        rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        for (int i = 0; i < 300 && !m; i++) {
                m = rd_kafka_consumer_poll(rk, 100);
                if (m && (m->err || m->partition != 0)) {
                        rd_kafka_message_destroy(m);
                        m = NULL;
                }
        }
        cr_assert(m != NULL, "the rewound group read nothing");
        cr_assert(eq(i64, m->offset, 5));
        cr_assert(eq(i64, rd_kafka_message_timestamp(m, NULL), base + 5 * 60000));
        rd_kafka_message_destroy(m);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
}

/* The target offset of the first partition in the plan of `group rewind <group> --topic
 * <topic> ARGS --json` (a dry run, which must exit 0). */
static long long planned_target(const char *args)
{
        json_t *doc;
        long long target;

        cr_assert(eq(int,
                     ctl_run(out, sizeof(out), "group rewind %s --topic %s %s --json", group, topic,
                             args),
                     0),
                  "%s", out);
        doc = ctl_json(out);
        target = json_integer_value(
                json_object_get(json_array_get(json_object_get(doc, "plan"), 0), "target"));
        json_decref(doc);
        return target;
}

Test(group, rewind_by_offset_shift_and_ends_plans_within_the_partition)
{
        produce_at(6, ctl_now_ms() - 10000, 1);
        commit_at(group, 3);
        cr_assert(eq(i64, planned_target("--partition 0 --shift-by -2"), 1));
        cr_assert(eq(i64, planned_target("--partition 0 --to-offset 99"), 6));
        cr_assert(eq(int,
                     ctl_run(out, sizeof(out),
                             "group rewind %s --topic %s --to-earliest --execute --json", group,
                             topic),
                     0));
        cr_assert(eq(i64, committed0(group), 0));
        cr_assert(
                eq(int, ctl_run(out, sizeof(out), "group rewind %s --topic %s", group, topic), 2));
        cr_assert(eq(int, ctl_run(out, sizeof(out), "group rewind --to-latest"), 2));
}
