/* worker_main.c: the skeleton every worker process shares (see worker_main.h). */
#include "worker_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "admin_http.h"
#include "consumer_lanes.h"
#include "contract.h"
#include "log.h"
#include "metrics.h"
#include "process_metrics.h"
#include "settings.h"
#include "signals.h"
#include "version.h"

#define EXIT_CONFIG 2

static size_t role_count(const struct consumer_role *const roles[])
{
        size_t n = 0;

        while (roles[n])
                n++;
        return n;
}

static void usage(FILE *out, const char *prog, const struct consumer_role *const roles[])
{
        fprintf(out,
                "usage: %s [--check-config] %s | --list-roles | --version | --help\n"
                "Runs a consumer role: reads its topics as group liveflow.<role>, applies each "
                "record to MySQL and Redis,\nserves /metrics /healthz /readyz on "
                "LIVEFLOW_ADMIN_ADDR:LIVEFLOW_ADMIN_PORT, drains on SIGTERM.\nroles:",
                prog, role_count(roles) == 1 ? "[ROLE]" : "ROLE");
        for (size_t i = 0; roles[i]; i++)
                fprintf(out, " %s", roles[i]->name);
        fprintf(out, "\nconfiguration: LIVEFLOW_* environment variables (LIVEFLOW_KAFKA_BOOTSTRAP, "
                     "LIVEFLOW_MYSQL_URL, LIVEFLOW_REDIS_URL, ...; see the README)\n"
                     "LIVEFLOW_CONSUMER_LANES=N (1..64, default 1) runs N members of the group in "
                     "this process, each on its own\nthread with its own connections (Kafka "
                     "Streams' num.stream.threads): raise it when batches wait on MySQL\nand a "
                     "core is idle; /metrics sums the lanes, /readyz waits for all of them\n"
                     "exit: 0 after a clean drain, 1 startup or drain failure, 2 bad "
                     "configuration or usage\n");
}

static const struct consumer_role *find_role(const struct consumer_role *const roles[],
                                             const char *name)
{
        for (size_t i = 0; roles[i]; i++)
                if (strcmp(roles[i]->name, name) == 0)
                        return roles[i];
        return NULL;
}

/* @returns 0, or -1 on an unknown option or role (usage printed). */
static int parse_args(const char *prog, const struct consumer_role *const roles[], int argc,
                      char **argv, const struct settings *s, const struct consumer_role **role,
                      bool *check_only)
{
        const char *name = s->role;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--check-config") == 0) {
                        *check_only = true;
                } else if (argv[i][0] == '-') {
                        usage(stderr, prog, roles);
                        return -1;
                } else {
                        name = argv[i];
                }
        }
        if (!name && role_count(roles) == 1)
                name = roles[0]->name;
        if (!name || !(*role = find_role(roles, name))) {
                if (name)
                        fprintf(stderr, "%s: no role \"%s\"\n", prog, name);
                usage(stderr, prog, roles);
                return -1;
        }
        return 0;
}

int worker_main(const char *prog, const struct consumer_role *const roles[], unsigned settings_user,
                int argc, char **argv)
{
        struct settings s = {0};
        struct metrics *metrics = NULL;
        struct consumer_lanes *lanes = NULL;
        struct admin_http *admin = NULL;
        const struct consumer_role *role = NULL;
        char errstr[512];
        bool check_only = false;
        int status = EXIT_CONFIG;

        if (version_requested(prog, argc, argv))
                return 0;
        if (help_requested(argc, argv)) {
                usage(stdout, prog, roles);
                return 0;
        }
        if (argc > 1 && strcmp(argv[1], "--list-roles") == 0) {
                for (size_t i = 0; roles[i]; i++)
                        printf("%s\n", roles[i]->name);
                return 0;
        }
        if (settings_load(&s, settings_user, errstr, sizeof(errstr)) == -1) { /* config */
                fprintf(stderr, "%s: %s\n", prog, errstr);
                goto out;
        }
        if (log_level_parse(s.log_level) == -1) {
                fprintf(stderr,
                        "%s: LIVEFLOW_LOG_LEVEL: \"%s\" is not error, warn, info or debug\n", prog,
                        s.log_level);
                goto out;
        }
        if (log_format_parse(s.log_format) == -1) {
                fprintf(stderr, "%s: LIVEFLOW_LOG_FORMAT: \"%s\" is not text or json\n", prog,
                        s.log_format);
                goto out;
        }
        if (parse_args(prog, roles, argc, argv, &s, &role, &check_only) == -1)
                goto out;
        if (check_only) {
                printf("%s %s: configuration ok (%lld lane%s)\n", prog, role->name,
                       s.consumer_lanes, s.consumer_lanes == 1 ? "" : "s");
                status = 0;
                goto out;
        }
        log_set_format((enum log_format)log_format_parse(s.log_format));
        log_init(role->name, (enum log_level)log_level_parse(s.log_level));
        signals_install();
        status = EXIT_FAILURE;
        if ((metrics = metrics_new()))
                process_metrics_register(metrics);
        if (!metrics || /* connect */
            !(lanes = consumer_lanes_new(role, &s, metrics, errstr, sizeof(errstr))) ||
            !(admin = admin_http_start(s.admin_addr, (int)s.admin_port, metrics,
                                       consumer_lanes_ready, lanes, errstr, sizeof(errstr)))) {
                log_error(NULL, "startup failed: %s", metrics ? errstr : "out of memory");
                goto out;
        }
        log_info(NULL, "ready role=%s version=%s group=%s%s lanes=%lld admin=%s:%lld librdkafka=%s",
                 role->name, liveflow_version, s.group_id ? "" : LF_GROUP_PREFIX,
                 s.group_id ? s.group_id : role->name, s.consumer_lanes, s.admin_addr, s.admin_port,
                 rd_kafka_version_str());

        /* loop, then drain: each lane on its own thread, until SIGTERM/SIGINT */
        if (consumer_lanes_run(lanes, (int)s.drain_timeout_ms) == 0)
                status = 0;
        log_info(NULL, "stopped status=%d", status);
out:
        admin_http_stop(admin);
        consumer_lanes_destroy(lanes); /* after the admin server: /metrics reads the lanes */
        metrics_destroy(metrics);
        settings_fini(&s);
        return status;
}
