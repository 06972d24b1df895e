/* stats_cmd.h: `liveflow-ctl stats`, the multi-dimensional query over the tip statistics. */
#ifndef LIVEFLOW_CTL_STATS_CMD_H
#define LIVEFLOW_CTL_STATS_CMD_H

#include "ctl.h"

extern const char ctl_stats_usage[];

/** @brief `liveflow-ctl stats`: see ctl_stats_usage. */
int ctl_stats_run(struct ctl *ctl, int argc, char **argv);

#endif
