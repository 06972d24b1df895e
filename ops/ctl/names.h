/*
 * names.h: the topics and consumer groups liveflow-ctl knows without being told: every topic of
 * the contract plus live.session (each with its .dlq twin), and each role's group with the
 * topics it reads. The dev broker cannot list groups, so this table is where `group status`
 * starts.
 */
#ifndef LIVEFLOW_CTL_NAMES_H
#define LIVEFLOW_CTL_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* The event topics, NULL-terminated (no .dlq names). */
extern const char *const names_topics[];

struct names_group {
        const char *group;         /* "liveflow.<role>" */
        const char *const *topics; /* NULL-terminated */
};

/* The roles' groups, ending with a row whose group is NULL. */
extern const struct names_group names_groups[];

/** @brief The row of group, or NULL when liveflow does not know it. */
const struct names_group *names_group_find(const char *group);

/** @brief Whether liveflow knows the group. */
bool names_group_known(const char *group);

/** @brief Whether name ends with ".dlq". */
bool names_is_dlq(const char *name);

/** @brief Writes the .dlq twin of topic ("x" -> "x.dlq"; "x.dlq" stays). */
void names_dlq_of(const char *topic, char *out, size_t out_size);

#endif
