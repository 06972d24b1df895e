/*
 * topics.h: `liveflow-ctl topics plan|create`: every topic liveflow uses (the contract's,
 * live.session, and each .dlq twin) with its partitions, replication factor, retention.ms and
 * min.insync.replicas from LIVEFLOW_TOPIC_* settings, compared with the cluster, and created
 * through the Admin API where missing.
 */
#ifndef LIVEFLOW_CTL_TOPICS_H
#define LIVEFLOW_CTL_TOPICS_H

#include "ctl.h"

/* The `topics` table for main.c. */
extern const struct ctl_command topics_commands[];

#endif
