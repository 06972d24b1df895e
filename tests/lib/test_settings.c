/* test_settings.c: configuration from the environment, strictly validated. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"

static void base_env(void)
{
        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092", 1);
        setenv("LIVEFLOW_MYSQL_URL", "mysql://u:p@127.0.0.1:3306/db", 1);
        setenv("LIVEFLOW_REDIS_URL", "redis://127.0.0.1:6379/0", 1);
}

TestSuite(settings, .init = base_env);

Test(settings, defaults_apply_when_unset)
{
        struct settings s;
        char err[256];

        cr_assert_eq(settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(s.http_port, 8080);
        cr_assert_eq(s.max_body_bytes, 65536);
        cr_assert_str_eq(s.log_level, "info");
        settings_fini(&s);
}

Test(settings, unparsable_number_names_key_and_value)
{
        struct settings s;
        char err[256];

        setenv("LIVEFLOW_HTTP_PORT", "80x", 1);
        cr_assert_eq(settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), -1);
        cr_assert_str_eq(err, "LIVEFLOW_HTTP_PORT: \"80x\" is not an integer");
        settings_fini(&s);
}

Test(settings, out_of_range_number_is_refused)
{
        struct settings s;
        char err[256];

        setenv("LIVEFLOW_HTTP_PORT", "70000", 1);
        cr_assert_eq(settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), -1);
        cr_assert(strstr(err, "LIVEFLOW_HTTP_PORT") && strstr(err, "70000"), "%s", err);
        settings_fini(&s);
}

Test(settings, missing_required_key_is_an_error_only_for_its_users)
{
        struct settings s;
        char err[256];

        unsetenv("LIVEFLOW_MYSQL_URL");
        cr_assert_eq(settings_load(&s, SETTINGS_CONSUMER, err, sizeof(err)), -1);
        cr_assert(strstr(err, "LIVEFLOW_MYSQL_URL is not set"), "%s", err);
        settings_fini(&s);
        cr_assert_eq(settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), 0, "%s", err);
        settings_fini(&s);
}

Test(settings, kafka_props_pass_through_with_dots)
{
        struct settings s;
        char err[256];
        bool seen = false;

        setenv("LIVEFLOW_KAFKA_PROP_SECURITY_PROTOCOL", "SASL_SSL", 1);
        cr_assert_eq(settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), 0, "%s", err);
        for (size_t i = 0; i < s.kafka_prop_cnt; i++)
                if (strcmp(s.kafka_props[i].name, "security.protocol") == 0 &&
                    strcmp(s.kafka_props[i].value, "SASL_SSL") == 0)
                        seen = true;
        cr_assert(seen, "security.protocol=SASL_SSL not collected");
        settings_fini(&s);
}

Test(settings, config_file_adds_keys_and_environment_wins)
{
        struct settings s;
        char err[256], path[] = "/tmp/lfcfgXXXXXX";
        int fd = mkstemp(path);
        FILE *f = fdopen(fd, "w");

        fprintf(f, "# comment\nLIVEFLOW_HTTP_PORT = 8181\nLIVEFLOW_HTTP_THREADS = 3\n");
        fclose(f);
        setenv("LIVEFLOW_CONFIG_FILE", path, 1);
        setenv("LIVEFLOW_HTTP_THREADS", "4", 1);
        cr_assert_eq(settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(s.http_port, 8181);
        cr_assert_eq(s.http_threads, 4);
        settings_fini(&s);
        unlink(path);
}

Test(settings, config_file_syntax_error_names_file_and_line)
{
        struct settings s;
        char err[256], path[] = "/tmp/lfcfgXXXXXX", want[300];
        int fd = mkstemp(path);
        FILE *f = fdopen(fd, "w");

        fprintf(f, "LIVEFLOW_HTTP_PORT = 8181\nnonsense\n");
        fclose(f);
        setenv("LIVEFLOW_CONFIG_FILE", path, 1);
        cr_assert_eq(settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "%s:2: expected LIVEFLOW_KEY = value", path);
        cr_assert_str_eq(err, want);
        settings_fini(&s);
        unlink(path);
}

Test(settings, bad_log_level_is_refused)
{
        struct settings s;
        char err[256];

        setenv("LIVEFLOW_LOG_LEVEL", "loud", 1);
        cr_assert_eq(settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), -1);
        cr_assert(strstr(err, "LIVEFLOW_LOG_LEVEL"), "%s", err);
        settings_fini(&s);
}

Test(settings, dump_masks_secrets)
{
        struct settings s;
        char err[256], out[8192];

        setenv("LIVEFLOW_TENCENT_KEY", "topsecret", 1);
        cr_assert_eq(settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), 0, "%s", err);
        settings_dump(&s, SETTINGS_RECEIVER, out, sizeof(out));
        cr_assert(strstr(out, "LIVEFLOW_TENCENT_KEY=***"), "%s", out);
        cr_assert_null(strstr(out, "topsecret"));
        settings_fini(&s);
}

Test(settings, affinity_weights_may_not_both_be_zero)
{
        struct settings s;
        char err[256];

        setenv("LIVEFLOW_AFFINITY_TIP_WEIGHT", "0", 1);
        cr_assert_eq(settings_load(&s, SETTINGS_STATS, err, sizeof(err)), 0, "%s", err);
        settings_fini(&s);
        setenv("LIVEFLOW_AFFINITY_WATCH_WEIGHT", "0", 1);
        cr_assert_eq(settings_load(&s, SETTINGS_STATS, err, sizeof(err)), -1);
        cr_assert(strstr(err, "LIVEFLOW_AFFINITY_TIP_WEIGHT"), "%s", err);
        settings_fini(&s);
        unsetenv("LIVEFLOW_AFFINITY_TIP_WEIGHT");
        unsetenv("LIVEFLOW_AFFINITY_WATCH_WEIGHT");
}
