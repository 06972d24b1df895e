/* ctl_rebuild.h: `liveflow-ctl rebuild` (what the workers derive, derived again from MySQL) and
 * `liveflow-ctl reconcile`. */
#ifndef LIVEFLOW_CTL_REBUILD_H
#define LIVEFLOW_CTL_REBUILD_H

#include "ctl.h"

/* redis, session, profile: the rows of `liveflow-ctl rebuild` (see each --help). */
extern const struct ctl_command ctl_rebuild_commands[];

/** @brief `liveflow-ctl reconcile`: lib/reconcile.h's reconcile_main(), --json passed on. */
int ctl_reconcile_run(struct ctl *ctl, int argc, char **argv);

#endif
