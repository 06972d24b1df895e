/* ctl_rebuild.h: the store side of liveflow-ctl: `rebuild` (what the workers derive, derived
 * again from MySQL), `share` (revenue_share ratios) and `reconcile`. */
#ifndef LIVEFLOW_CTL_REBUILD_H
#define LIVEFLOW_CTL_REBUILD_H

#include "ctl.h"

/* redis, session, profile: the rows of `liveflow-ctl rebuild` (see each --help). */
extern const struct ctl_command ctl_rebuild_commands[];

/* set, list: the rows of `liveflow-ctl share`, the write path of revenue_share (share.c). */
extern const struct ctl_command ctl_share_commands[];

/** @brief `liveflow-ctl reconcile`: lib/reconcile.h's reconcile_main(), --json passed on. */
int ctl_reconcile_run(struct ctl *ctl, int argc, char **argv);

#endif
