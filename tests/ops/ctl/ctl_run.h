/* ctl_run.h: runs build/bin/liveflow-ctl as an operator would, for the suites of tests/ops/ctl/. */
#ifndef LIVEFLOW_TEST_CTL_RUN_H
#define LIVEFLOW_TEST_CTL_RUN_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <mysql.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "support.h"

/*
 * Runs `liveflow-ctl ARGS` (ARGS is shell text) with the current environment; stdout goes to
 * out (NUL-terminated, truncated to out_size), stderr is appended to ctl-<pid>.log in
 * LIVEFLOW_TEST_DIR (or /tmp) and its last run kept in the static ctl_run_stderr.
 * @returns the exit status.
 */
static char ctl_run_stderr[8192];

static inline int ctl_run(char *out, size_t out_size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static inline int ctl_run(char *out, size_t out_size, const char *fmt, ...)
{
        char bin[512], args[2048], cmd[4096], errpath[256];
        const char *dir = getenv("LIVEFLOW_TEST_DIR");
        va_list ap;
        FILE *p, *e;
        size_t n = 0;
        int status;

        va_start(ap, fmt);
        vsnprintf(args, sizeof(args), fmt, ap);
        va_end(ap);
        support_bin_path("liveflow-ctl", bin, sizeof(bin));
        snprintf(errpath, sizeof(errpath), "%s/ctl-%d.err", dir && *dir ? dir : "/tmp",
                 (int)getpid());
        snprintf(cmd, sizeof(cmd), "%s %s 2>%s", bin, args, errpath);
        p = popen(cmd, "r");
        cr_assert(p != NULL);
        while (out && n + 1 < out_size && !feof(p)) {
                size_t got = fread(out + n, 1, out_size - 1 - n, p);

                if (got == 0)
                        break;
                n += got;
        }
        if (out)
                out[n] = '\0';
        {
                char sink[4096];

                while (fread(sink, 1, sizeof(sink), p) > 0)
                        ;
        }
        status = pclose(p);
        ctl_run_stderr[0] = '\0';
        if ((e = fopen(errpath, "r"))) {
                size_t m = fread(ctl_run_stderr, 1, sizeof(ctl_run_stderr) - 1, e);

                ctl_run_stderr[m] = '\0';
                fclose(e);
                unlink(errpath);
        }
        fprintf(stderr, "$ liveflow-ctl %s -> %d\n%s", args,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1, ctl_run_stderr);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Parses out as one JSON document; fails the test otherwise. */
static inline json_t *ctl_json(const char *out)
{
        json_error_t jerr;
        json_t *doc = json_loads(out, 0, &jerr);

        cr_assert(doc != NULL, "not JSON (%s): %s", jerr.text, out);
        return doc;
}

/* Points liveflow-ctl at the fixture broker, with a short session timeout for group joins. */
static inline void ctl_env_fixture(void)
{
        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), 1);
        setenv("LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS", "3000", 1);
        setenv("LIVEFLOW_ENV_FILE", "/dev/null", 1);
}

/*
 * ctl_env_fixture() and a migrated database of the test's own: its URL into url (url_size
 * bytes) and LIVEFLOW_MYSQL_URL, the fixture Redis in LIVEFLOW_REDIS_URL.
 * @returns a connection to the database (the caller closes it).
 */
static inline MYSQL *ctl_env_database(char *url, size_t url_size)
{
        support_create_database(url, url_size);
        ctl_env_fixture();
        setenv("LIVEFLOW_MYSQL_URL", url, 1);
        setenv("LIVEFLOW_REDIS_URL", support_fixture("LIVEFLOW_TEST_REDIS_URL"), 1);
        return support_mysql_connect(url);
}

/* Runs one statement (printf-style) on mysql; a failure fails the test with the server's words. */
static inline void ctl_sql(MYSQL *mysql, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static inline void ctl_sql(MYSQL *mysql, const char *fmt, ...)
{
        char sql[4096];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        cr_assert(mysql_query(mysql, sql) == 0, "%s: %s", sql, mysql_error(mysql));
}

#endif
