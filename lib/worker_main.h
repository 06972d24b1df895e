/* worker_main.h: the skeleton of every process that runs consumer roles (config, connect, loop,
 * drain). */
#ifndef LIVEFLOW_WORKER_MAIN_H
#define LIVEFLOW_WORKER_MAIN_H

#include "consumer.h"

/**
 * @brief The whole life of a worker process: loads the LIVEFLOW_* keys of settings_user,
 * picks the role (argv's first non-option argument, else LIVEFLOW_ROLE, else the only role
 * of a one-role table), connects, serves /metrics /healthz /readyz, runs the role until
 * SIGTERM or SIGINT, then drains. Options: --check-config (validate and exit), --list-roles.
 * @param prog the process name for messages, e.g. "liveflow-consumer".
 * @param roles the roles this binary can run, NULL-terminated.
 * @returns the exit status: 0 after a clean drain, 1 on a startup or drain failure, 2 on
 * bad configuration or usage.
 */
int worker_main(const char *prog, const struct consumer_role *const roles[], unsigned settings_user,
                int argc, char **argv);

#endif
