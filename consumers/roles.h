/* roles.h: the table of consumer roles this binary can run. */
#ifndef LIVEFLOW_ROLES_H
#define LIVEFLOW_ROLES_H

#include "consumer.h"

/** @brief The role called `name`, or NULL. */
const struct consumer_role *roles_find(const char *name);

/** @brief The roles, ending with NULL. */
extern const struct consumer_role *const roles_all[];

#endif
