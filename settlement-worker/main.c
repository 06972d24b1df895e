/*
 * liveflow-settlement: runs the settlement role (group liveflow.settlement) until SIGTERM;
 * `liveflow-settlement reconcile ...` is the same command as `liveflow-ctl reconcile`
 * (lib/reconcile.c), kept for the cron lines that call it so.
 */
#include <string.h>

#include "reconcile.h"
#include "settings.h"
#include "settlement.h"
#include "worker_main.h"

static const struct consumer_role *const settlement_roles[] = {&settlement_role, NULL};

int main(int argc, char **argv)
{
        if (argc > 1 && strcmp(argv[1], "reconcile") == 0)
                return reconcile_main(argc - 1, argv + 1);
        return worker_main("liveflow-settlement", settlement_roles, SETTINGS_SETTLEMENT, argc,
                           argv);
}
