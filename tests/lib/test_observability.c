/*
 * test_observability.c: what every process exports about itself (process_*, build_info, Kafka
 * errors by kind), --version and --help on every binary without configuration, and JSON logs.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "process_metrics.h"
#include "settings.h"
#include "support.h"
#include "version.h"

/* The value of the first sample line of text that starts with series, or -1. */
static double sample(const char *text, const char *series)
{
        size_t n = strlen(series);

        for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (strncmp(p, series, n) == 0 && (p[n] == ' ' || p[n] == '{'))
                        return atof(strchr(p + n, ' ') + 1);
        return -1;
}

/* Runs until the process has used ms of CPU: /proc counts it in clock ticks (10 ms here), and
 * a fixed loop count came to less than one tick on a fast or busy machine. */
static void spin_cpu_ms(long ms)
{
        struct timespec t;

        do
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        while ((long long)t.tv_sec * 1000 + t.tv_nsec / 1000000 < ms);
}

Test(observability, process_series_are_read_from_proc)
{
        struct metrics *m = metrics_new();
        char *text;
        int fd = open("/dev/null", O_RDONLY);

        process_metrics_register(m);
        spin_cpu_ms(100); /* some CPU time to report, whatever the machine's speed */
        text = metrics_render(m, NULL);
        cr_assert(strstr(text, "# TYPE process_cpu_seconds_total counter\n"), "%s", text);
        cr_assert_gt(sample(text, "process_cpu_seconds_total"), 0, "%s", text);
        cr_assert_gt(sample(text, "process_resident_memory_bytes"), 1 << 20, "%s", text);
        cr_assert_geq(sample(text, "process_open_fds"), 4, "stdin, stdout, stderr, /dev/null");
        cr_assert_gt(sample(text, "process_max_fds"), 0);
        double start = sample(text, "process_start_time_seconds"), now = (double)time(NULL);

        cr_assert(start > now - 600 && start <= now + 1, "start %f, now %f", start, now);
        free(text);
        metrics_destroy(m);
        close(fd);
}

Test(observability, build_info_names_the_version_and_commit)
{
        struct metrics *m = metrics_new();
        char *text, want[256];

        process_metrics_register(m);
        text = metrics_render(m, NULL);
        snprintf(want, sizeof(want), "liveflow_build_info{version=\"%s\",commit=\"%s\"} 1\n",
                 liveflow_version, liveflow_commit);
        cr_assert(strstr(text, want), "%s", text);
        cr_assert(liveflow_version[0] && strcmp(liveflow_version, "unknown") != 0,
                  "built from a git checkout: the version is its description");
        free(text);
        metrics_destroy(m);
}

Test(observability, unreachable_brokers_are_counted_by_kind)
{
        struct settings s = {0};
        struct metrics *m = metrics_new();
        char err[256], bootstrap[64], *text = NULL;
        rd_kafka_t *rk;
        long long deadline = support_now_ms() + 15000;
        double transport = 0, down = 0;

        process_metrics_register(m);
        snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%d", support_free_port()); /* closed */
        s.kafka_bootstrap = bootstrap;
        cr_assert((rk = kafka_producer_new(&s, "test", NULL, NULL, err, sizeof(err))) != NULL, "%s",
                  err);
        while (support_now_ms() < deadline && (transport <= 0 || down <= 0)) {
                rd_kafka_poll(rk, 200); /* serves the error callback */
                free(text);
                text = metrics_render(m, NULL);
                transport = sample(text, "liveflow_kafka_errors_total{kind=\"transport\"}");
                down = sample(text, "liveflow_kafka_errors_total{kind=\"all_brokers_down\"}");
        }
        cr_assert_gt(transport, 0, "%s", text);
        cr_assert_gt(down, 0, "%s", text);
        cr_assert_eq(sample(text, "liveflow_kafka_errors_total{kind=\"authentication\"}"), 0);
        free(text);
        rd_kafka_destroy(rk);
        metrics_destroy(m);
}

/* Runs a binary with an empty environment; out receives its stdout. @returns its exit status. */
static int run_bare(const char *binary, const char *arg, char *out, size_t out_size)
{
        char bin[512], cmd[700];
        FILE *p;
        size_t n;

        support_bin_path(binary, bin, sizeof(bin));
        snprintf(cmd, sizeof(cmd), "env -i %s %s 2>/dev/null", bin, arg);
        cr_assert((p = popen(cmd, "r")) != NULL);
        n = fread(out, 1, out_size - 1, p);
        out[n] = '\0';
        int status = pclose(p);

        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

Test(observability, every_binary_answers_version_and_help_without_configuration)
{
        static const char *const binaries[] = {
                "liveflow-receiver",  "liveflow-consumer", "liveflow-settlement", "liveflow-stats",
                "liveflow-devbroker", "liveflow-migrate",  "liveflow-ctl"};
        char out[4096], want[256];

        for (size_t i = 0; i < sizeof(binaries) / sizeof(binaries[0]); i++) {
                cr_assert_eq(run_bare(binaries[i], "--version", out, sizeof(out)), 0, "%s",
                             binaries[i]);
                snprintf(want, sizeof(want), "%s %s (commit %s)\n", binaries[i], liveflow_version,
                         liveflow_commit);
                cr_assert_str_eq(out, want);
                cr_assert_eq(run_bare(binaries[i], "--help", out, sizeof(out)), 0, "%s --help",
                             binaries[i]);
                cr_assert(strstr(out, "usage: "), "%s --help: %s", binaries[i], out);
        }
}

Test(observability, json_logs_are_one_object_per_line_with_the_text_fields)
{
        char path[] = "/tmp/lf_log_XXXXXX", *text;
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);
        json_t *obj;
        json_error_t jerr;

        cr_assert(fd >= 0 && saved >= 0);
        cr_assert(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
        log_set_format(LOG_FORMAT_JSON);
        log_write(LOG_LEVEL_WARN, "abc123", "tip \"%s\"\nsecond line\ttab \\ %d", "quoted", 7);
        log_write(LOG_LEVEL_ERROR, NULL, "plain");
        log_set_format(LOG_FORMAT_TEXT);
        log_write(LOG_LEVEL_ERROR, "t1", "text again");
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(fd);
        text = support_read_file(path, NULL);
        unlink(path);
        cr_assert_not_null(text);

        char *second = strchr(text, '\n') + 1, *third = strchr(second, '\n') + 1;

        second[-1] = third[-1] = '\0';
        cr_assert((obj = json_loads(text, 0, &jerr)) != NULL, "%s: %s", jerr.text, text);
        cr_assert_str_eq(json_string_value(json_object_get(obj, "level")), "WARN");
        cr_assert_str_eq(json_string_value(json_object_get(obj, "trace")), "abc123");
        cr_assert_str_eq(json_string_value(json_object_get(obj, "msg")),
                         "tip \"quoted\"\nsecond line\ttab \\ 7");
        cr_assert(json_is_integer(json_object_get(obj, "pid")));
        cr_assert(json_is_string(json_object_get(obj, "time")));
        cr_assert(json_is_string(json_object_get(obj, "process")));
        json_decref(obj);
        cr_assert((obj = json_loads(second, 0, &jerr)) != NULL, "%s: %s", jerr.text, second);
        cr_assert_str_eq(json_string_value(json_object_get(obj, "trace")), "-");
        json_decref(obj);
        cr_assert(strstr(third, " ERROR trace=t1 text again"), "text stays the default: %s", third);
        free(text);
}
