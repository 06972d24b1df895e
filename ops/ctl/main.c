/*
 * liveflow-ctl: the operator's tool. One table of subcommands; each lives in its own module
 * (dlq.c, group.c, topics.c, ...) and shares the plumbing of ctl.c: LIVEFLOW_* configuration
 * and .run/env, --help, --json, dry runs, exit codes 0 done / 1 something left / 2 usage or
 * connection error.
 */
#include "ctl.h"
#include "ctl_rebuild.h"
#include "dlq.h"
#include "group.h"
#include "log.h"
#include "reconcile.h"
#include "stats_cmd.h"
#include "topics.h"
#include "version.h"

static const char usage[] =
        "usage: liveflow-ctl [--json] COMMAND [SUBCOMMAND] [OPTIONS]\n"
        "  the operator's tool for liveflow: dead letters, consumer groups, topics, stores.\n"
        "  Configuration: LIVEFLOW_* variables, then .run/env (or LIVEFLOW_ENV_FILE) for the\n"
        "  ones not set. Anything that changes something is a dry run without --execute.\n";

static const char config_usage[] =
        "usage: liveflow-ctl config [--json]\n"
        "  prints the configuration liveflow-ctl runs with (secrets masked)\n";

/* One row per subcommand: name, one-line summary, usage, function (or a table of its own). */
static const struct ctl_command commands[] = {
        {"config", "the configuration in effect", config_usage, ctl_config_run, NULL},
        {"dlq", "dead letters: list, show, replay", NULL, NULL, dlq_commands},
        {"group", "consumer groups: status, rewind", NULL, NULL, group_commands},
        {"reconcile", "the money tables, Redis and live.reward checked against each other",
         reconcile_usage, ctl_reconcile_run, NULL},
        {"share", "revenue-share ratios: set (dry run unless --execute), list", NULL, NULL,
         ctl_share_commands},
        {"rebuild", "derive Redis, live_statistics or a profile again from MySQL", NULL, NULL,
         ctl_rebuild_commands},
        {"stats", "tips by time, genders, region, age band, audience type, tag", ctl_stats_usage,
         ctl_stats_run, NULL},
        {"topics", "topics: plan, create", NULL, NULL, topics_commands},
        {NULL, NULL, NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
        static const struct ctl_command top[] = {
                {"liveflow-ctl", "the operator's tool", usage, NULL, commands},
                {NULL, NULL, NULL, NULL, NULL},
        };
        struct ctl ctl = {0};
        int rc;

        argv[0] = (char *)"liveflow-ctl";
        /* --version before the command only: a subcommand's own options are its own. */
        if (argc == 2 && version_requested("liveflow-ctl", argc, argv))
                return 0;
        rc = ctl_dispatch(&ctl, "", top, argc, argv);
        log_flush();
        ctl_fini(&ctl);
        return rc;
}
