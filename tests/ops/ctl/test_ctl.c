/* test_ctl.c: liveflow-ctl's shared plumbing: help, exit codes, configuration, --json. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_run.h"

static char out[65536];

static void env_clean(void)
{
        unsetenv("LIVEFLOW_KAFKA_BOOTSTRAP");
        unsetenv("LIVEFLOW_ENV_FILE");
        unsetenv("LIVEFLOW_CTL_TIMEOUT_MS");
        unsetenv("LIVEFLOW_MYSQL_URL");
}

TestSuite(ctl, .init = env_clean, .timeout = 60);

Test(ctl, help_on_the_tool_lists_commands_and_exits_0)
{
        cr_assert(eq(int, ctl_run(out, sizeof(out), "--help"), 0));
        cr_assert(strstr(out, "usage: liveflow-ctl") != NULL, "%s", out);
        cr_assert(strstr(out, "config") != NULL, "%s", out);
}

Test(ctl, help_on_a_subcommand_exits_0_without_configuration)
{
        cr_assert(eq(int, ctl_run(out, sizeof(out), "config --help"), 0));
        cr_assert(strstr(out, "usage: liveflow-ctl config") != NULL, "%s", out);
}

Test(ctl, no_command_or_an_unknown_one_is_a_usage_error)
{
        cr_assert(eq(int, ctl_run(out, sizeof(out), "%s", ""), 2));
        cr_assert(eq(int, ctl_run(out, sizeof(out), "frobnicate"), 2));
        cr_assert(strstr(ctl_run_stderr, "frobnicate") != NULL, "%s", ctl_run_stderr);
}

Test(ctl, missing_bootstrap_is_a_usage_error_naming_the_key)
{
        setenv("LIVEFLOW_ENV_FILE", "/dev/null", 1);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "config"), 2));
        cr_assert(strstr(ctl_run_stderr, "LIVEFLOW_KAFKA_BOOTSTRAP") != NULL, "%s", ctl_run_stderr);
}

Test(ctl, bad_value_is_a_usage_error)
{
        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:1", 1);
        setenv("LIVEFLOW_CTL_TIMEOUT_MS", "soon", 1);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "config"), 2));
        cr_assert(strstr(ctl_run_stderr, "LIVEFLOW_CTL_TIMEOUT_MS") != NULL, "%s", ctl_run_stderr);
}

/* .run/env as make run writes it: export lines; the operator's environment wins. */
Test(ctl, env_file_fills_what_the_environment_does_not_set)
{
        char path[] = "/tmp/ctl-envXXXXXX";
        int fd = mkstemp(path);
        FILE *f = fdopen(fd, "w");
        json_t *doc;

        cr_assert(f != NULL);
        fprintf(f, "# written by ops/stack.sh\nexport LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:9\n"
                   "export LIVEFLOW_CTL_TIMEOUT_MS='2500'\nexport LIVEFLOW_MYSQL_URL="
                   "mysql://u:secret@h:1/d\nPATH_NOT_OURS=1\n");
        fclose(f);
        setenv("LIVEFLOW_ENV_FILE", path, 1);
        setenv("LIVEFLOW_CTL_TIMEOUT_MS", "1500", 1);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "config --json"), 0));
        doc = ctl_json(out);
        cr_assert_str_eq(json_string_value(json_object_get(doc, "LIVEFLOW_KAFKA_BOOTSTRAP")),
                         "127.0.0.1:9");
        cr_assert_str_eq(json_string_value(json_object_get(doc, "LIVEFLOW_CTL_TIMEOUT_MS")),
                         "1500");
        cr_assert(strstr(out, "secret") == NULL, "a secret in the output: %s", out);
        json_decref(doc);
        unlink(path);
}

Test(ctl, json_may_come_before_the_command)
{
        json_t *doc;

        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9", 1);
        setenv("LIVEFLOW_ENV_FILE", "/dev/null", 1);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "--json config"), 0));
        doc = ctl_json(out);
        cr_assert(json_object_get(doc, "LIVEFLOW_KAFKA_BOOTSTRAP") != NULL, "%s", out);
        json_decref(doc);
        cr_assert(eq(int, ctl_run(out, sizeof(out), "config"), 0));
        cr_assert(strstr(out, "LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:9") != NULL, "%s", out);
}

/* The parsers every subcommand's options go through. */
Test(ctl, parses_times_and_durations)
{
        long long ms;

        cr_assert(eq(int, ctl_parse_time("2026-12-05T10:00:00Z", &ms), 0));
        cr_assert(eq(i64, ms, 1796464800000LL));
        cr_assert(eq(int, ctl_parse_time("1796464800", &ms), 0));
        cr_assert(eq(i64, ms, 1796464800000LL));
        cr_assert(eq(int, ctl_parse_time("1796464800123", &ms), 0));
        cr_assert(eq(i64, ms, 1796464800123LL));
        cr_assert(eq(int, ctl_parse_time("-5m", &ms), 0));
        cr_assert(ms <= ctl_now_ms() - 300000, "%lld", ms);
        cr_assert(ms > ctl_now_ms() - 310000, "%lld", ms);
        cr_assert(eq(int, ctl_parse_time("yesterday", &ms), -1));
        cr_assert(eq(int, ctl_parse_duration("2h", &ms), 0));
        cr_assert(eq(i64, ms, 7200000));
        cr_assert(eq(int, ctl_parse_duration("90", &ms), 0));
        cr_assert(eq(i64, ms, 90000));
        cr_assert(eq(int, ctl_parse_duration("5x", &ms), -1));
}
