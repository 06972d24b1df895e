/* test_topics.c: `liveflow-ctl topics plan|create` against the fixture (dev) broker. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <string.h>

#include "ctl_run.h"

static char out[1 << 18];

static void setup(void)
{
        ctl_env_fixture();
        setenv("LIVEFLOW_TOPIC_REPLICATION_FACTOR", "1", 1);
        setenv("LIVEFLOW_TOPIC_MIN_INSYNC_REPLICAS", "1", 1);
        setenv("LIVEFLOW_TOPIC_PARTITIONS", "6", 1);
        setenv("LIVEFLOW_CTL_TIMEOUT_MS", "1500", 1);
}

TestSuite(topics, .init = setup, .timeout = 60);

static json_t *topic_of(json_t *doc, const char *name)
{
        json_t *t;
        size_t i;

        json_array_foreach(json_object_get(doc, "topics"), i, t)
        {
                if (strcmp(json_string_value(json_object_get(t, "topic")), name) == 0)
                        return t;
        }
        return NULL;
}

Test(topics, plan_names_every_topic_and_its_dlq_with_the_settings)
{
        static const char *const names[] = {
                "live.stream",      "live.record",     "live.snapshot", "live.audit",
                "live.reward",      "live.withdrawal", "live.viewer",   "live.other",
                "live.interaction", "live.notify",     "live.session",
        };
        json_t *doc, *t;
        char dlq[64];

        setenv("LIVEFLOW_TOPIC_RETENTION_MS", "3600000", 1);
        setenv("LIVEFLOW_DLQ_RETENTION_MS", "7200000", 1);
        ctl_run(out, sizeof(out), "topics plan --json");
        doc = ctl_json(out);
        cr_assert(eq(sz, json_array_size(json_object_get(doc, "topics")), 22), "%s", out);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                snprintf(dlq, sizeof(dlq), "%s.dlq", names[i]);
                t = topic_of(doc, names[i]);
                cr_assert(t != NULL, "%s missing", names[i]);
                cr_assert(eq(i64, json_integer_value(json_object_get(t, "retention_ms")), 3600000));
                cr_assert(eq(i64, json_integer_value(json_object_get(t, "partitions")), 6));
                t = topic_of(doc, dlq);
                cr_assert(t != NULL, "%s missing", dlq);
                cr_assert(eq(i64, json_integer_value(json_object_get(t, "retention_ms")), 7200000));
        }
        /* the fixture broker made live.stream with 6 partitions on its one broker */
        t = topic_of(doc, "live.stream");
        cr_assert_str_eq(json_string_value(json_object_get(t, "state")), "ok");
        json_decref(doc);
}

Test(topics, plan_reports_a_different_partition_count_and_exits_1)
{
        json_t *doc, *t;

        setenv("LIVEFLOW_TOPIC_PARTITIONS", "8", 1);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "topics plan --json"), 1));
        doc = ctl_json(out);
        t = topic_of(doc, "live.reward");
        cr_assert_str_eq(json_string_value(json_object_get(t, "state")), "differs");
        cr_assert_str_eq(json_string_value(json_array_get(json_object_get(t, "differences"), 0)),
                         "partitions: has 6, wants 8");
        json_decref(doc);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "topics plan"), 1));
        cr_assert(strstr(out, "partitions: has 6, wants 8") != NULL, "%s", out);
}

Test(topics, create_on_the_dev_broker_says_why_in_one_line_and_exits_2)
{
        char *nl;

        cr_assert(eq(int, ctl_run(out, sizeof(out), "topics create --execute"), 2));
        cr_assert(strstr(ctl_run_stderr, "Admin API") != NULL, "%s", ctl_run_stderr);
        nl = strstr(ctl_run_stderr, "topics create:");
        cr_assert(nl != NULL, "%s", ctl_run_stderr);
        cr_assert(strchr(nl, '\n') == nl + strlen(nl) - 1, "more than one line: %s", nl);
        /* without --execute: the plan, nothing asked of the Admin API */
        ctl_run(out, sizeof(out), "topics create --json");
        cr_assert(strstr(out, "\"dry_run\":true") != NULL, "%s", out);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "topics create --now"), 2));
}
