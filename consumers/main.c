/* consumer: runs one consumer role (a Kafka consumer group) until SIGTERM, then drains. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "admin_http.h"
#include "consumer.h"
#include "log.h"
#include "metrics.h"
#include "roles.h"
#include "settings.h"
#include "signals.h"

static void usage(void)
{
        fprintf(stderr, "usage: liveflow-consumer [--check-config] ROLE | --list-roles\nroles:");
        for (size_t i = 0; roles_all[i]; i++)
                fprintf(stderr, " %s", roles_all[i]->name);
        fprintf(stderr, "\n");
}

static const struct consumer_role *pick_role(int argc, char **argv, const struct settings *s,
                                             bool *check_only)
{
        const char *name = s->role;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--check-config") == 0)
                        *check_only = true;
                else if (argv[i][0] != '-')
                        name = argv[i];
        }
        return name ? roles_find(name) : NULL;
}

int main(int argc, char **argv)
{
        struct settings s;
        struct metrics *metrics = NULL;
        struct consumer *c = NULL;
        struct admin_http *admin = NULL;
        const struct consumer_role *role;
        char errstr[512];
        bool check_only = false;
        int status = 2;

        if (argc > 1 && strcmp(argv[1], "--list-roles") == 0) {
                for (size_t i = 0; roles_all[i]; i++)
                        printf("%s\n", roles_all[i]->name);
                return 0;
        }
        if (settings_load(&s, SETTINGS_CONSUMER, errstr, sizeof(errstr)) == -1) { /* config */
                fprintf(stderr, "consumer: %s\n", errstr);
                goto out;
        }
        if (!(role = pick_role(argc, argv, &s, &check_only))) {
                usage();
                goto out;
        }
        if (check_only) {
                printf("consumer %s: configuration ok\n", role->name);
                status = 0;
                goto out;
        }
        log_init(role->name, (enum log_level)log_level_parse(s.log_level));
        signals_install();
        status = 1;
        if (!(metrics = metrics_new()) ||                                      /* connect */
            !(c = consumer_new(role, &s, metrics, errstr, sizeof(errstr))) ||
            !(admin = admin_http_start(s.admin_addr, (int)s.admin_port, metrics, consumer_is_ready, c,
                                       errstr, sizeof(errstr)))) {
                log_error(NULL, "startup failed: %s", metrics ? errstr : "out of memory");
                goto out;
        }
        log_info(NULL, "ready role=%s group=%s%s admin=%s:%lld librdkafka=%s", role->name,
                 s.group_id ? "" : "liveflow.", s.group_id ? s.group_id : role->name, s.admin_addr,
                 s.admin_port, rd_kafka_version_str());

        consumer_run(c);                                                       /* loop */

        log_info(NULL, "draining");
        if (consumer_drain(c, (int)s.drain_timeout_ms) == 0)                  /* drain */
                status = 0;
        log_info(NULL, "stopped status=%d", status);
out:
        admin_http_stop(admin);
        consumer_destroy(c);
        metrics_destroy(metrics);
        settings_fini(&s);
        return status;
}
