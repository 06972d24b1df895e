/* liveflow-stats: hourly tip figures, audience profiles and session statistics, until SIGTERM. */
#include "settings.h"
#include "stats.h"
#include "worker_main.h"

static const struct consumer_role *const stats_roles[] = {&stats_role, NULL};

int main(int argc, char **argv)
{
        return worker_main("liveflow-stats", stats_roles, SETTINGS_STATS, argc, argv);
}
