/*
 * group_members.h: who is in a consumer group, where the broker can tell. A broker that does
 * not list groups (the dev broker answers ListConsumerGroups with UNSUPPORTED_FEATURE, and
 * DescribeConsumerGroups hangs it) is never asked to describe one: the answer then says that
 * members cannot be known.
 */
#ifndef LIVEFLOW_CTL_GROUP_MEMBERS_H
#define LIVEFLOW_CTL_GROUP_MEMBERS_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>

/**
 * @brief For each group, {"known": true, "state": ..., "members": [{client_id, host,
 * consumer_id, instance_id, assignment: ["topic/partition", ...]}]} or {"known": false,
 * "why": "..."}, keyed by group name.
 */
json_t *group_members(rd_kafka_t *rk, const char *const *groups, size_t n, int timeout_ms);

#endif
