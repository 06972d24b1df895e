/* group_members.c: ListConsumerGroups as a probe, then DescribeConsumerGroups where it answered. */
#include "group_members.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, int timeout_ms)
{
        return rd_kafka_queue_poll(q, timeout_ms + 1000);
}

static rd_kafka_AdminOptions_t *options(rd_kafka_t *rk, rd_kafka_admin_op_t op, int timeout_ms)
{
        rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
        char err[256];

        rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, err, sizeof(err));
        return o;
}

/* NULL when the broker lists groups, else why not. */
static const char *list_probe(rd_kafka_t *rk, rd_kafka_queue_t *q, int timeout_ms, char *why,
                              size_t why_size)
{
        rd_kafka_AdminOptions_t *o = options(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, timeout_ms);
        rd_kafka_event_t *ev;
        const rd_kafka_error_t **errors;
        size_t cnt = 0;

        rd_kafka_ListConsumerGroups(rk, o, q);
        rd_kafka_AdminOptions_destroy(o);
        if (!(ev = admin_wait(q, timeout_ms))) {
                snprintf(why, why_size, "the broker did not answer ListConsumerGroups");
                return why;
        }
        if (rd_kafka_event_error(ev)) {
                snprintf(why, why_size, "the broker cannot list groups (ListConsumerGroups: %s)",
                         rd_kafka_event_error_string(ev));
        } else {
                errors = rd_kafka_ListConsumerGroups_result_errors(
                        rd_kafka_event_ListConsumerGroups_result(ev), &cnt);
                if (cnt > 0)
                        snprintf(why, why_size,
                                 "the broker cannot list groups (ListConsumerGroups: %s)",
                                 rd_kafka_error_string(errors[0]));
        }
        rd_kafka_event_destroy(ev);
        return *why ? why : NULL;
}

static json_t *member_json(const rd_kafka_MemberDescription_t *m)
{
        const rd_kafka_topic_partition_list_t *parts =
                rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
        const char *instance = rd_kafka_MemberDescription_group_instance_id(m);
        json_t *assignment = json_array();

        for (int i = 0; parts && i < parts->cnt; i++)
                json_array_append_new(assignment, json_sprintf("%s/%d", parts->elems[i].topic,
                                                               (int)parts->elems[i].partition));
        return json_pack("{s:s,s:s,s:s,s:o,s:o}", "client_id",
                         rd_kafka_MemberDescription_client_id(m), "host",
                         rd_kafka_MemberDescription_host(m), "consumer_id",
                         rd_kafka_MemberDescription_consumer_id(m), "instance_id",
                         instance ? json_string(instance) : json_null(), "assignment", assignment);
}

static json_t *description_json(const rd_kafka_ConsumerGroupDescription_t *d)
{
        const rd_kafka_error_t *err = rd_kafka_ConsumerGroupDescription_error(d);
        json_t *members = json_array();

        if (err)
                return json_pack("{s:b,s:s}", "known", 0, "why", rd_kafka_error_string(err));
        for (size_t i = 0; i < rd_kafka_ConsumerGroupDescription_member_count(d); i++)
                json_array_append_new(members,
                                      member_json(rd_kafka_ConsumerGroupDescription_member(d, i)));
        return json_pack(
                "{s:b,s:s,s:o}", "known", 1, "state",
                rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d)),
                "members", members);
}

static void describe(rd_kafka_t *rk, rd_kafka_queue_t *q, const char *const *groups, size_t n,
                     int timeout_ms, json_t *out)
{
        rd_kafka_AdminOptions_t *o =
                options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, timeout_ms);
        const rd_kafka_ConsumerGroupDescription_t **descs;
        rd_kafka_event_t *ev;
        size_t cnt = 0;

        rd_kafka_DescribeConsumerGroups(rk, (const char **)groups, n, o, q);
        rd_kafka_AdminOptions_destroy(o);
        if (!(ev = admin_wait(q, timeout_ms)))
                return;
        if (!rd_kafka_event_error(ev)) {
                descs = rd_kafka_DescribeConsumerGroups_result_groups(
                        rd_kafka_event_DescribeConsumerGroups_result(ev), &cnt);
                for (size_t i = 0; i < cnt; i++)
                        json_object_set_new(out,
                                            rd_kafka_ConsumerGroupDescription_group_id(descs[i]),
                                            description_json(descs[i]));
        }
        rd_kafka_event_destroy(ev);
}

/*
 * librdkafka's mock cluster names itself "mockCluster<hex>". It is not asked at all: it
 * refuses ListConsumerGroups, and librdkafka 2.0.2 leaks the failed request's state.
 */
static const char *dev_broker(rd_kafka_t *rk, int timeout_ms, char *why, size_t why_size)
{
        char *id = rd_kafka_clusterid(rk, timeout_ms);
        bool mock = id && strncmp(id, "mockCluster", 11) == 0;

        if (id)
                rd_kafka_mem_free(rk, id);
        if (!mock)
                return NULL;
        snprintf(why, why_size,
                 "the dev broker (librdkafka's mock cluster) cannot list or "
                 "describe groups (ListConsumerGroups, DescribeConsumerGroups)");
        return why;
}

json_t *group_members(rd_kafka_t *rk, const char *const *groups, size_t n, int timeout_ms)
{
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        json_t *out = json_object();
        char why[512] = "";
        const char *not_listed = dev_broker(rk, timeout_ms, why, sizeof(why));

        if (!not_listed)
                not_listed = list_probe(rk, q, timeout_ms, why, sizeof(why));

        if (!not_listed && n > 0)
                describe(rk, q, groups, n, timeout_ms, out);
        for (size_t i = 0; i < n; i++)
                if (!json_object_get(out, groups[i]))
                        json_object_set_new(out, groups[i],
                                            json_pack("{s:b,s:s}", "known", 0, "why",
                                                      not_listed
                                                              ? not_listed
                                                              : "the broker did not describe it"));
        rd_kafka_queue_destroy(q);
        return out;
}
