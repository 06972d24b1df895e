/*
 * topics.c: the topic plan and its creation. The plan reads the cluster's metadata for all
 * topics at once (asking for one topic by name would let a broker with auto-creation create
 * it); creation and the config check go through the Admin API, which the dev broker does not
 * serve (its requests time out): that is said in one line, exit 2.
 */
#include "topics.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_kafka.h"
#include "kafka.h"
#include "log.h"
#include "names.h"

static const char plan_usage[] =
        "usage: liveflow-ctl topics plan [--json]\n"
        "  every liveflow topic and its .dlq twin with the partitions, replication factor,\n"
        "  retention.ms and min.insync.replicas it should have (LIVEFLOW_TOPIC_PARTITIONS,\n"
        "  LIVEFLOW_TOPIC_REPLICATION_FACTOR, LIVEFLOW_TOPIC_RETENTION_MS,\n"
        "  LIVEFLOW_DLQ_RETENTION_MS, LIVEFLOW_TOPIC_MIN_INSYNC_REPLICAS) against what the\n"
        "  cluster has. Exit 1 when a topic is missing or differs.\n";

static const char create_usage[] =
        "usage: liveflow-ctl topics create [--execute] [--json]\n"
        "  creates the missing topics through the Admin API (a dry run without --execute) and\n"
        "  checks retention.ms and min.insync.replicas of the others; existing topics are never\n"
        "  changed: a different partition count or config is reported (exit 1). The dev broker\n"
        "  does not serve the Admin API (it creates its topics itself): exit 2.\n";

/* ------------------------------------------------------------------ the plan */

static const struct rd_kafka_metadata_topic *find_topic(const struct rd_kafka_metadata *md,
                                                        const char *name)
{
        for (int i = 0; i < md->topic_cnt; i++)
                if (strcmp(md->topics[i].topic, name) == 0 && !md->topics[i].err)
                        return &md->topics[i];
        return NULL;
}

static json_t *want_json(const struct settings *s, const char *name)
{
        return json_pack("{s:s,s:I,s:I,s:I,s:I}", "topic", name, "partitions",
                         (json_int_t)s->topic_partitions, "replication_factor",
                         (json_int_t)s->topic_replication, "retention_ms",
                         (json_int_t)(names_is_dlq(name) ? s->topic_dlq_retention_ms
                                                         : s->topic_retention_ms),
                         "min_insync_replicas", (json_int_t)s->topic_min_insync);
}

/* Fills "state" (missing / ok / differs) and "differences" from the metadata. */
static void compare(json_t *t, const struct rd_kafka_metadata_topic *have, int brokers)
{
        json_t *diffs = json_array();
        long long want_p = json_integer_value(json_object_get(t, "partitions"));
        long long want_rf = json_integer_value(json_object_get(t, "replication_factor"));

        if (!have) {
                json_object_set_new(t, "state", json_string("missing"));
                if (want_rf > brokers)
                        json_array_append_new(diffs, json_sprintf("replication factor %lld > "
                                                                  "%d broker(s): cannot be made",
                                                                  want_rf, brokers));
        } else {
                int rf = have->partition_cnt > 0 ? have->partitions[0].replica_cnt : 0;

                json_object_set_new(t, "has_partitions", json_integer(have->partition_cnt));
                json_object_set_new(t, "has_replication_factor", json_integer(rf));
                if (have->partition_cnt != want_p)
                        json_array_append_new(diffs, json_sprintf("partitions: has %d, wants %lld",
                                                                  have->partition_cnt, want_p));
                if (rf != want_rf)
                        json_array_append_new(diffs,
                                              json_sprintf("replication factor: has %d, wants %lld",
                                                           rf, want_rf));
                json_object_set_new(t, "state",
                                    json_string(json_array_size(diffs) ? "differs" : "ok"));
        }
        json_object_set_new(t, "differences", diffs);
}

static json_t *build_plan(struct ctl *ctl, rd_kafka_t *rk, char *errstr, size_t errstr_size)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err =
                rd_kafka_metadata(rk, 1, NULL, &md, (int)ctl->settings.ctl_timeout_ms);
        json_t *topics = json_array();

        if (err) {
                snprintf(errstr, errstr_size, "metadata: %s", rd_kafka_err2str(err));
                json_decref(topics);
                return NULL;
        }
        for (size_t i = 0; names_topics[i]; i++) {
                char dlq[300];
                const char *both[2] = {names_topics[i], dlq};

                names_dlq_of(names_topics[i], dlq, sizeof(dlq));
                for (int k = 0; k < 2; k++) {
                        json_t *t = want_json(&ctl->settings, both[k]);

                        compare(t, find_topic(md, both[k]), md->broker_cnt);
                        json_array_append_new(topics, t);
                }
        }
        rd_kafka_metadata_destroy(md);
        return topics;
}

static size_t count_state(const json_t *topics, const char *state)
{
        json_t *t;
        size_t i, n = 0;

        json_array_foreach(topics, i, t) n +=
                strcmp(json_string_value(json_object_get(t, "state")), state) == 0;
        return n;
}

static void plan_human(const json_t *doc, FILE *out)
{
        json_t *t, *d;
        size_t i, j;

        fprintf(out, "%-26s %5s %3s %13s %4s  %s\n", "topic", "parts", "rf", "retention.ms", "isr",
                "state");
        json_array_foreach(json_object_get(doc, "topics"), i, t)
        {
                fprintf(out, "%-26s %5lld %3lld %13lld %4lld  %s%s%s\n",
                        json_string_value(json_object_get(t, "topic")),
                        ctl_json_ll(t, "partitions"), ctl_json_ll(t, "replication_factor"),
                        ctl_json_ll(t, "retention_ms"), ctl_json_ll(t, "min_insync_replicas"),
                        json_string_value(json_object_get(t, "state")),
                        json_is_string(json_object_get(t, "action")) ? ": " : "",
                        json_is_string(json_object_get(t, "action"))
                                ? json_string_value(json_object_get(t, "action"))
                                : "");
                json_array_foreach(json_object_get(t, "differences"), j, d)
                        fprintf(out, "    %s\n", json_string_value(d));
        }
        fprintf(out, "%lld missing, %lld differ, %lld ok\n", ctl_json_ll(doc, "missing"),
                ctl_json_ll(doc, "differ"), ctl_json_ll(doc, "ok"));
}

static json_t *plan_doc(json_t *topics, bool dry_run)
{
        return json_pack("{s:O,s:b,s:I,s:I,s:I}", "topics", topics, "dry_run", dry_run, "missing",
                         (json_int_t)count_state(topics, "missing"), "differ",
                         (json_int_t)count_state(topics, "differs"), "ok",
                         (json_int_t)count_state(topics, "ok"));
}

static int plan_run(struct ctl *ctl, int argc, char **argv)
{
        char errstr[512];
        rd_kafka_t *rk;
        json_t *topics;
        int rc;

        if (argc > 1)
                return ctl_usage_error("liveflow-ctl topics plan", "unexpected argument \"%s\"",
                                       argv[1]);
        if (!(rk = ctlk_reader_new(ctl, NULL, errstr, sizeof(errstr))) ||
            !(topics = build_plan(ctl, rk, errstr, sizeof(errstr)))) {
                if (rk)
                        rd_kafka_destroy(rk);
                return ctl_usage_error("liveflow-ctl topics plan", "%s", errstr);
        }
        rc = count_state(topics, "ok") == json_array_size(topics) ? CTL_EXIT_OK : CTL_EXIT_LEFT;
        log_info(NULL, "topics plan: %zu topic(s), %zu missing, %zu differ on %s",
                 json_array_size(topics), count_state(topics, "missing"),
                 count_state(topics, "differs"), ctl->settings.kafka_bootstrap);
        ctl_emit(ctl, plan_doc(topics, true), plan_human);
        json_decref(topics);
        rd_kafka_destroy(rk);
        return rc;
}

/* ------------------------------------------------------------------ the Admin API */

static rd_kafka_AdminOptions_t *admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op,
                                              int timeout_ms)
{
        rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
        char err[256];

        rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, err, sizeof(err));
        rd_kafka_AdminOptions_set_operation_timeout(o, timeout_ms, err, sizeof(err));
        return o;
}

/* The admin result event, or NULL with the one line about the Admin API in errstr. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, const char *what, int timeout_ms,
                                    char *errstr, size_t errstr_size)
{
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);

        if (ev && !rd_kafka_event_error(ev))
                return ev;
        snprintf(errstr, errstr_size,
                 "the broker did not answer %s through the Admin API (%s): a dev broker does not "
                 "serve it and creates its topics itself; against a real cluster check the "
                 "bootstrap address and ACLs",
                 what, ev ? rd_kafka_event_error_string(ev) : "no answer");
        if (ev)
                rd_kafka_event_destroy(ev);
        return NULL;
}

static void new_topic_config(rd_kafka_NewTopic_t *nt, const json_t *t)
{
        char buf[32];

        snprintf(buf, sizeof(buf), "%lld", ctl_json_ll(t, "retention_ms"));
        rd_kafka_NewTopic_set_config(nt, "retention.ms", buf);
        snprintf(buf, sizeof(buf), "%lld", ctl_json_ll(t, "min_insync_replicas"));
        rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", buf);
}

static void note_created(json_t *topics, const rd_kafka_topic_result_t *r)
{
        json_t *t;
        size_t i;

        json_array_foreach(topics, i, t)
        {
                if (strcmp(json_string_value(json_object_get(t, "topic")),
                           rd_kafka_topic_result_name(r)) != 0)
                        continue;
                if (!rd_kafka_topic_result_error(r) ||
                    rd_kafka_topic_result_error(r) == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                        json_object_set_new(t, "state", json_string("ok"));
                        json_object_set_new(t, "action", json_string("created"));
                } else {
                        json_object_set_new(t, "action",
                                            json_sprintf("not created: %s",
                                                         rd_kafka_topic_result_error_string(r)));
                }
        }
}

static int create_missing(rd_kafka_t *rk, rd_kafka_queue_t *q, json_t *topics, int timeout_ms,
                          char *errstr, size_t errstr_size)
{
        rd_kafka_NewTopic_t *nts[128];
        rd_kafka_AdminOptions_t *o;
        rd_kafka_event_t *ev;
        const rd_kafka_topic_result_t **res;
        size_t n = 0, cnt = 0, i;
        json_t *t;

        json_array_foreach(topics, i, t)
        {
                char why[256];

                if (strcmp(json_string_value(json_object_get(t, "state")), "missing") != 0 ||
                    n == 128)
                        continue;
                nts[n] = rd_kafka_NewTopic_new(
                        json_string_value(json_object_get(t, "topic")),
                        (int)json_integer_value(json_object_get(t, "partitions")),
                        (int)json_integer_value(json_object_get(t, "replication_factor")), why,
                        sizeof(why));
                if (nts[n]) {
                        new_topic_config(nts[n], t);
                        n++;
                }
        }
        if (n == 0)
                return 0;
        o = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout_ms);
        rd_kafka_CreateTopics(rk, nts, n, o, q);
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_NewTopic_destroy_array(nts, n);
        if (!(ev = admin_wait(q, "CreateTopics", timeout_ms, errstr, errstr_size)))
                return -1;
        res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (i = 0; i < cnt; i++)
                note_created(topics, res[i]);
        rd_kafka_event_destroy(ev);
        return 0;
}

/* retention.ms and min.insync.replicas of one existing topic against the plan. */
static void compare_configs(json_t *t, const rd_kafka_ConfigResource_t *res)
{
        static const char *const keys[][2] = {{"retention.ms", "retention_ms"},
                                              {"min.insync.replicas", "min_insync_replicas"}};
        const rd_kafka_ConfigEntry_t **entries;
        json_t *diffs = json_object_get(t, "differences");
        size_t cnt = 0;

        entries = rd_kafka_ConfigResource_configs(res, &cnt);
        for (size_t i = 0; i < cnt; i++)
                for (size_t k = 0; k < 2; k++) {
                        const char *v = rd_kafka_ConfigEntry_value(entries[i]);
                        long long want = json_integer_value(json_object_get(t, keys[k][1]));

                        if (strcmp(rd_kafka_ConfigEntry_name(entries[i]), keys[k][0]) == 0 && v &&
                            atoll(v) != want)
                                json_array_append_new(diffs, json_sprintf("%s: has %s, wants %lld",
                                                                          keys[k][0], v, want));
                }
        if (json_array_size(diffs) > 0)
                json_object_set_new(t, "state", json_string("differs"));
}

static json_t *topic_named(json_t *topics, const char *name)
{
        json_t *t;
        size_t i;

        json_array_foreach(topics, i, t) if (strcmp(json_string_value(json_object_get(t, "topic")),
                                                    name) == 0) return t;
        return NULL;
}

static int check_configs(rd_kafka_t *rk, rd_kafka_queue_t *q, json_t *topics, int timeout_ms,
                         char *errstr, size_t errstr_size)
{
        rd_kafka_ConfigResource_t *crs[128];
        const rd_kafka_ConfigResource_t **res;
        rd_kafka_AdminOptions_t *o;
        rd_kafka_event_t *ev;
        size_t n = 0, cnt = 0, i;
        json_t *t;

        json_array_foreach(topics, i, t) if (strcmp(json_string_value(json_object_get(t, "state")),
                                                    "missing") != 0 &&
                                             n < 128) crs[n++] =
                rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC,
                                            json_string_value(json_object_get(t, "topic")));
        o = admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeout_ms);
        rd_kafka_DescribeConfigs(rk, crs, n, o, q);
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_ConfigResource_destroy_array(crs, n);
        if (!(ev = admin_wait(q, "DescribeConfigs", timeout_ms, errstr, errstr_size)))
                return -1;
        res = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev),
                                                        &cnt);
        for (i = 0; i < cnt; i++)
                if ((t = topic_named(topics, rd_kafka_ConfigResource_name(res[i]))))
                        compare_configs(t, res[i]);
        rd_kafka_event_destroy(ev);
        return 0;
}

static int create_run(struct ctl *ctl, int argc, char **argv)
{
        const char *prog = "liveflow-ctl topics create";
        int timeout = (int)ctl->settings.ctl_timeout_ms, rc = CTL_EXIT_USAGE;
        bool execute = argc == 2 && strcmp(argv[1], "--execute") == 0;
        rd_kafka_queue_t *q = NULL;
        json_t *topics = NULL;
        char errstr[512] = "";
        rd_kafka_t *rk;

        if (argc > 1 && !execute)
                return ctl_usage_error(prog, "unexpected argument \"%s\"", argv[1]);
        if (!(rk = ctlk_reader_new(ctl, NULL, errstr, sizeof(errstr))) ||
            !(topics = build_plan(ctl, rk, errstr, sizeof(errstr))))
                goto out;
        if (execute) {
                q = rd_kafka_queue_new(rk);
                if (check_configs(rk, q, topics, timeout, errstr, sizeof(errstr)) == -1 ||
                    create_missing(rk, q, topics, timeout, errstr, sizeof(errstr)) == -1)
                        goto out;
        }
        rc = count_state(topics, "ok") == json_array_size(topics) ? CTL_EXIT_OK : CTL_EXIT_LEFT;
        log_info(NULL, "topics create: %s, %zu missing, %zu differ of %zu on %s",
                 execute ? "executed" : "dry run", count_state(topics, "missing"),
                 count_state(topics, "differs"), json_array_size(topics),
                 ctl->settings.kafka_bootstrap);
        ctl_emit(ctl, plan_doc(topics, !execute), plan_human);
out:
        if (rc == CTL_EXIT_USAGE)
                ctl_usage_error(prog, "%s", errstr);
        json_decref(topics);
        if (q)
                rd_kafka_queue_destroy(q);
        if (rk)
                rd_kafka_destroy(rk);
        return rc;
}

const struct ctl_command topics_commands[] = {
        {"plan", "every topic with partitions, replication, retention, min ISR vs the cluster",
         plan_usage, plan_run, NULL},
        {"create", "create the missing topics (dry run unless --execute)", create_usage, create_run,
         NULL},
        {NULL, NULL, NULL, NULL, NULL},
};
