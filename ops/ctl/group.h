/*
 * group.h: `liveflow-ctl group status|rewind`: consumer groups seen from outside (committed
 * offsets by OffsetFetch, end offsets, lag in records and in seconds), and moving a group's
 * offsets as its only member while no copy of its role runs.
 */
#ifndef LIVEFLOW_CTL_GROUP_H
#define LIVEFLOW_CTL_GROUP_H

#include <librdkafka/rdkafka.h>

#include "ctl.h"

#define GROUP_MAX_TOPICS 32

/* A group and the topics it reads. */
struct group_target {
        const char *group;
        const char *topics[GROUP_MAX_TOPICS + 1]; /* NULL-terminated */
        int topic_cnt;
};

/**
 * @brief The topics of group: those given (--topic), else the role table's. @returns 0, or -1
 * with errstr when liveflow does not know the group and no topic was given.
 */
int group_target_init(struct group_target *t, const char *group, const char *const *given,
                      int given_cnt, char *errstr, size_t errstr_size);

/**
 * @brief Every partition of t's topics (filtered to one topic/partition when not NULL / -1),
 * offsets unset. @returns NULL with errstr when the broker does not answer.
 */
rd_kafka_topic_partition_list_t *group_partitions(rd_kafka_t *rk, const struct group_target *t,
                                                  const char *topic, int partition, int timeout_ms,
                                                  char *errstr, size_t errstr_size);

/** @brief `group rewind` (group_rewind.c). */
int group_rewind_run(struct ctl *ctl, int argc, char **argv);

/* The `group` table for main.c. */
extern const struct ctl_command group_commands[];

#endif
