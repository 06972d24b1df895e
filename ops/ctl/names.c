/* names.c: the topics and groups of the contract and the roles, in one place for liveflow-ctl. */
#include "names.h"

#include <stdio.h>
#include <string.h>

#include "contract.h"

const char *const names_topics[] = {
        LF_TOPIC_STREAM,      LF_TOPIC_RECORD,     LF_TOPIC_SNAPSHOT, LF_TOPIC_AUDIT,
        LF_TOPIC_REWARD,      LF_TOPIC_WITHDRAWAL, LF_TOPIC_VIEWER,   LF_TOPIC_OTHER,
        LF_TOPIC_INTERACTION, LF_TOPIC_NOTIFY,     LF_TOPIC_SESSION,  NULL,
};

static const char *const t_stream[] = {LF_TOPIC_STREAM, NULL};
static const char *const t_record[] = {LF_TOPIC_RECORD, NULL};
static const char *const t_snapshot[] = {LF_TOPIC_SNAPSHOT, NULL};
static const char *const t_audit[] = {LF_TOPIC_AUDIT, NULL};
static const char *const t_reward[] = {LF_TOPIC_REWARD, NULL};
static const char *const t_other[] = {LF_TOPIC_OTHER, NULL};
static const char *const t_audience[] = {LF_TOPIC_VIEWER, LF_TOPIC_INTERACTION, NULL};
static const char *const t_settlement[] = {LF_TOPIC_REWARD, LF_TOPIC_WITHDRAWAL, LF_TOPIC_SESSION,
                                           NULL};
static const char *const t_stats[] = {LF_TOPIC_REWARD, LF_TOPIC_VIEWER, LF_TOPIC_SESSION, NULL};
#define DLQ(t) t LF_DLQ_SUFFIX
static const char *const t_dlq[] = {
        DLQ(LF_TOPIC_STREAM), DLQ(LF_TOPIC_RECORD),  DLQ(LF_TOPIC_SNAPSHOT),
        DLQ(LF_TOPIC_AUDIT),  DLQ(LF_TOPIC_REWARD),  DLQ(LF_TOPIC_WITHDRAWAL),
        DLQ(LF_TOPIC_VIEWER), DLQ(LF_TOPIC_OTHER),   DLQ(LF_TOPIC_INTERACTION),
        DLQ(LF_TOPIC_NOTIFY), DLQ(LF_TOPIC_SESSION), NULL,
};
#undef DLQ

/*
 * One row per role (consumers/roles.c, the workers' roles), and the default progress group of
 * `liveflow-ctl dlq replay`, whose lag is what no replay has looked at yet.
 */
const struct names_group names_groups[] = {
        {LF_GROUP_PREFIX "stream", t_stream},
        {LF_GROUP_PREFIX "record", t_record},
        {LF_GROUP_PREFIX "snapshot", t_snapshot},
        {LF_GROUP_PREFIX "audit", t_audit},
        {LF_GROUP_PREFIX "reward-sync", t_reward},
        {LF_GROUP_PREFIX "other", t_other},
        {LF_GROUP_PREFIX "audience", t_audience},
        {LF_GROUP_PREFIX "settlement", t_settlement},
        {LF_GROUP_PREFIX "stats", t_stats},
        {LF_GROUP_PREFIX "ctl.dlq-replay", t_dlq},
        {NULL, NULL},
};

const struct names_group *names_group_find(const char *group)
{
        for (const struct names_group *g = names_groups; g->group; g++)
                if (strcmp(g->group, group) == 0)
                        return g;
        return NULL;
}

bool names_group_known(const char *group)
{
        return names_group_find(group) != NULL;
}

bool names_is_dlq(const char *name)
{
        size_t n = strlen(name), s = strlen(LF_DLQ_SUFFIX);

        return n > s && strcmp(name + n - s, LF_DLQ_SUFFIX) == 0;
}

void names_dlq_of(const char *topic, char *out, size_t out_size)
{
        snprintf(out, out_size, "%s%s", topic, names_is_dlq(topic) ? "" : LF_DLQ_SUFFIX);
}
