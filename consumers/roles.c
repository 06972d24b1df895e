/* roles.c: every consumer role in one list; adding a role is one module and one line here. */
#include "roles.h"

#include <string.h>

#include "audience.h"
#include "audit.h"
#include "other.h"
#include "profiles.h"
#include "record.h"
#include "reward_sync.h"
#include "snapshot.h"
#include "stream_lifecycle.h"

const struct consumer_role *const roles_all[] = {
        &stream_lifecycle_role,
        &record_role,
        &snapshot_role,
        &audit_role,
        &reward_sync_role,
        &other_role,
        &audience_role,
        &profiles_role,
        NULL,
};

const struct consumer_role *roles_find(const char *name)
{
        for (size_t i = 0; roles_all[i]; i++)
                if (strcmp(roles_all[i]->name, name) == 0)
                        return roles_all[i];
        return NULL;
}
