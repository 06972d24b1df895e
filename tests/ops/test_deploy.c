/* test_deploy.c: the deployment artefacts under ops/: the systemd units pass `systemd-analyze
 * verify` as shipped, the consumer template starts the role its instance names, every unit's stop
 * timeout leaves room for the drain, the example environment file is the settings table, and the
 * Prometheus configuration for the units is valid. */
#include "support.h"

#include "settings.h"

#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(deploy, .timeout = 120);

static const char *build_dir(void)
{
        const char *b = getenv("LIVEFLOW_TEST_BUILD");

        return b && *b ? b : "build";
}

/* The example file is what lib/settings.c's table says, key for key. */
Test(deploy, env_example_is_the_settings_table)
{
        char *want = NULL, *have, path[512];
        size_t want_len = 0;
        FILE *mem = open_memstream(&want, &want_len);
        bool same, required_open, default_shown;

        cr_assert(mem);
        settings_write_example(mem);
        fclose(mem);
        required_open = strstr(want, "\nLIVEFLOW_KAFKA_BOOTSTRAP=\n") != NULL;
        default_shown = strstr(want, "\n#LIVEFLOW_DRAIN_TIMEOUT_MS=10000\n") != NULL;
        have = support_read_file("ops/systemd/liveflow.env.example", NULL);
        same = have && strcmp(have, want) == 0;
        snprintf(path, sizeof(path), "%s/liveflow.env.example", build_dir());
        /* Always written, so that `make env-example` can copy it. */
        {
                FILE *f = fopen(path, "w");

                if (f) {
                        fputs(want, f);
                        fclose(f);
                }
        }
        free(have);
        free(want);
        cr_expect(required_open, "a required key is not left open (KEY=)");
        cr_expect(default_shown, "a key with a default is not shown commented out with it");
        cr_assert(same,
                  "ops/systemd/liveflow.env.example differs from the settings table; the table's "
                  "version is %s (make env-example copies it to ops/systemd/)",
                  path);
}

/* Every LIVEFLOW_* name the code reads from the table is in the example file. */
Test(deploy, env_example_names_every_key)
{
        char *have = support_read_file("ops/systemd/liveflow.env.example", NULL);
        static const char *const keys[] = {"LIVEFLOW_KAFKA_BOOTSTRAP",  "LIVEFLOW_MYSQL_URL",
                                           "LIVEFLOW_REDIS_URL",        "LIVEFLOW_ADMIN_PORT",
                                           "LIVEFLOW_DRAIN_TIMEOUT_MS", "LIVEFLOW_HMAC_SECRET",
                                           "LIVEFLOW_CONFIG_FILE"};

        cr_assert(have);
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                char line[128];

                snprintf(line, sizeof(line), "%s=", keys[i]);
                cr_expect(strstr(have, line), "%s is missing", keys[i]);
        }
        free(have);
}

/* A root with the units as shipped, the binaries where they point and systemd's own units. */
static void make_root(const char *root)
{
        cr_assert(
                support_sh(
                        "mkdir -p %s/usr/local/bin %s/etc/systemd/system %s/lib/systemd "
                        "%s/bin && cp -a /lib/systemd/system %s/lib/systemd/ && "
                        "cp ops/systemd/*.service ops/systemd/*.target ops/systemd/*.timer "
                        "%s/etc/systemd/system/ && cp /bin/sh %s/bin/sh && "
                        "mkdir -p %s/usr/local/share/liveflow && "
                        "cp ops/reconcile-metrics.sh ops/dlq-metrics.sh %s/usr/local/share/liveflow/",
                        root, root, root, root, root, root, root, root, root) == 0);
        cr_assert(support_sh("for b in receiver consumer settlement stats ctl; do "
                             "cp %s/bin/liveflow-$b %s/usr/local/bin/ || exit 1; done",
                             build_dir(), root) == 0,
                  "the liveflow binaries are not built");
}

Test(deploy, systemd_units_pass_systemd_analyze_verify)
{
        char root[] = "/tmp/lfunits.XXXXXX";

        cr_assert(support_sh("command -v systemd-analyze >/dev/null") == 0,
                  "systemd-analyze is missing");
        cr_assert(mkdtemp(root));
        make_root(root);
        /* Templates are verified through instances: two copies of a role whose name has a dash. */
        cr_expect(
                support_sh("systemd-analyze verify --root=%s liveflow-receiver.service "
                           "liveflow-consumer@record.1.service "
                           "liveflow-consumer@reward-sync.2.service liveflow-settlement@1.service "
                           "liveflow-stats@2.service liveflow.target liveflow-reconcile.service "
                           "liveflow-reconcile.timer liveflow-dlq-metrics.service "
                           "liveflow-dlq-metrics.timer >%s/verify.log 2>&1 && "
                           "! grep -q . %s/verify.log",
                           root, root, root) == 0,
                "systemd-analyze verify is not clean");
        support_sh("cat %s/verify.log >&2", root);
        /* The check itself fails on a unit pointing at a missing binary. */
        cr_expect(support_sh("rm %s/usr/local/bin/liveflow-stats && systemd-analyze verify "
                             "--root=%s liveflow-stats@1.service >/dev/null 2>&1",
                             root, root) != 0);
        support_sh("rm -rf %s", root);
}

/* The consumer template's ExecStartPre line, run as systemd would expand it for the instance
 * reward-sync.2, checks the configuration of the role reward-sync. */
Test(deploy, consumer_template_runs_the_role_of_its_instance)
{
        char *unit = support_read_file("ops/systemd/liveflow-consumer@.service", NULL), *line, *end,
             *bin, cmd[2048], out[] = "/tmp/lfunit-out.XXXXXX";
        char expanded[1024];
        size_t o = 0;
        int fd, n;

        cr_assert(unit);
        cr_assert((line = strstr(unit, "\nExecStartPre=")));
        line += strlen("\nExecStartPre=");
        cr_assert((end = strchr(line, '\n')));
        *end = '\0';
        /* systemd's specifiers: $$ is $, %% is %, %i the instance. */
        for (const char *p = line; *p && o + 32 < sizeof(expanded); p++) {
                if (p[0] == '$' && p[1] == '$')
                        expanded[o++] = '$', p++;
                else if (p[0] == '%' && p[1] == '%')
                        expanded[o++] = '%', p++;
                else if (p[0] == '%' && p[1] == 'i')
                        o += (size_t)snprintf(expanded + o, sizeof(expanded) - o, "reward-sync.2"),
                                p++;
                else
                        expanded[o++] = *p;
        }
        expanded[o] = '\0';
        cr_assert((bin = strstr(expanded, "/usr/local/bin/liveflow-consumer")));
        cr_assert((fd = mkstemp(out)) != -1);
        close(fd);
        /* Pointed at the built binary, with just enough configuration to pass the check. */
        n = snprintf(cmd, sizeof(cmd),
                     "env -i PATH=/usr/bin:/bin LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1 "
                     "LIVEFLOW_MYSQL_URL=mysql://u:p@127.0.0.1:1/db "
                     "LIVEFLOW_REDIS_URL=redis://127.0.0.1:1/0 %.*s%s/bin/liveflow-consumer%s "
                     ">%s 2>&1",
                     (int)(bin - expanded), expanded, build_dir(),
                     bin + strlen("/usr/local/bin/liveflow-consumer"), out);
        cr_assert(n > 0 && (size_t)n < sizeof(cmd));
        cr_assert(support_sh("%s", cmd) == 0, "the ExecStartPre line failed: %s", cmd);
        {
                char *text = support_read_file(out, NULL);

                cr_assert(text);
                cr_expect(strstr(text, "reward-sync: configuration ok"), "%s", text);
                free(text);
        }
        unlink(out);
        free(unit);
}

/* TimeoutStopSec of every unit is above the drain deadline the workers default to (the
 * example file's LIVEFLOW_DRAIN_TIMEOUT_MS) plus the receiver's ack timeout. */
Test(deploy, stop_timeouts_leave_room_for_the_drain)
{
        char *env = support_read_file("ops/systemd/liveflow.env.example", NULL), *p;
        long drain_ms, ack_ms;
        static const char *const units[] = {
                "ops/systemd/liveflow-receiver.service", "ops/systemd/liveflow-consumer@.service",
                "ops/systemd/liveflow-settlement@.service", "ops/systemd/liveflow-stats@.service"};

        cr_assert(env);
        cr_assert((p = strstr(env, "#LIVEFLOW_DRAIN_TIMEOUT_MS=")));
        drain_ms = strtol(p + strlen("#LIVEFLOW_DRAIN_TIMEOUT_MS="), NULL, 10);
        cr_assert((p = strstr(env, "#LIVEFLOW_ACK_TIMEOUT_MS=")));
        ack_ms = strtol(p + strlen("#LIVEFLOW_ACK_TIMEOUT_MS="), NULL, 10);
        cr_assert(drain_ms > 0 && ack_ms > 0);
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                char *u = support_read_file(units[i], NULL), *t;
                long stop_s;

                cr_assert(u, "%s", units[i]);
                cr_assert((t = strstr(u, "\nTimeoutStopSec=")), "%s has no TimeoutStopSec",
                          units[i]);
                stop_s = strtol(t + strlen("\nTimeoutStopSec="), NULL, 10);
                cr_expect(stop_s * 1000 > drain_ms + ack_ms, "%s: TimeoutStopSec=%lds", units[i],
                          stop_s);
                cr_expect(strstr(u, "\nRestart=on-failure\n"), "%s", units[i]);
                cr_expect(strstr(u, "\nEnvironmentFile=/etc/liveflow/liveflow.env\n"), "%s",
                          units[i]);
                free(u);
        }
        free(env);
}

Test(deploy, prometheus_config_for_the_units_is_valid)
{
        cr_assert(support_sh("promtool check config ops/prometheus/prometheus.yml >/dev/null") ==
                  0);
        cr_assert(support_sh("python3 -m json.tool ops/prometheus/targets/example-host.json "
                             ">/dev/null") == 0);
}
