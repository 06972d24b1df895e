/* ctl.c: liveflow-ctl's shared plumbing: dispatch, configuration, options, output. */
#include "ctl.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

/* ------------------------------------------------------------------ dispatch */

/* --help or -h before "--" anywhere in argv[1..]. */
static bool wants_help(int argc, char **argv)
{
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
                        return true;
        return false;
}

/* Takes every --json before "--" out of argv; @returns the new argc. */
static int take_json(struct ctl *ctl, int argc, char **argv)
{
        int n = 1;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0) {
                        while (i < argc)
                                argv[n++] = argv[i++];
                        break;
                }
                if (strcmp(argv[i], "--json") == 0)
                        ctl->json = true;
                else
                        argv[n++] = argv[i];
        }
        argv[n] = NULL;
        return n;
}

static void print_help(FILE *out, const char *path, const struct ctl_command *row)
{
        if (row->usage)
                fputs(row->usage, out);
        else
                fprintf(out, "usage: %s COMMAND [OPTIONS]\n  %s\n", path, row->summary);
        if (!row->sub)
                return;
        fputs("commands:\n", out);
        for (const struct ctl_command *c = row->sub; c->name; c++)
                fprintf(out, "  %-10s %s\n", c->name, c->summary);
        fprintf(out, "Every command takes --help and --json. Exit: 0 done or nothing to do, "
                     "1 something left or failed, 2 usage or connection error.\n");
}

static const char *env_file(void)
{
        const char *file = getenv("LIVEFLOW_ENV_FILE");

        if (file && *file)
                return file;
        return access(".run/env", R_OK) == 0 ? ".run/env" : NULL;
}

static void who_init(struct ctl *ctl)
{
        const char *user = getenv("SUDO_USER");
        char host[64] = "localhost";

        if (!user || !*user)
                user = getenv("USER");
        if (!user || !*user)
                user = getlogin();
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(ctl->who, sizeof(ctl->who), "%s@%s", user && *user ? user : "unknown", host);
}

/* LIVEFLOW_* from the environment, then .run/env (or LIVEFLOW_ENV_FILE) under it. */
static int config_load(struct ctl *ctl, const char *prog)
{
        const char *file = env_file();
        char errstr[512];

        if (file && settings_import_env_file(file, errstr, sizeof(errstr)) == -1)
                return ctl_usage_error(prog, "LIVEFLOW_ENV_FILE: %s", errstr);
        ctl->settings_loaded = true;
        if (settings_load(&ctl->settings, SETTINGS_CTL, errstr, sizeof(errstr)) == -1)
                return ctl_usage_error(prog, "%s", errstr);
        log_init("ctl", (enum log_level)log_level_parse(ctl->settings.log_level));
        who_init(ctl);
        return CTL_EXIT_OK;
}

static const struct ctl_command *find_row(const struct ctl_command *table, const char *name)
{
        for (const struct ctl_command *c = table; c->name; c++)
                if (strcmp(c->name, name) == 0)
                        return c;
        return NULL;
}

int ctl_dispatch(struct ctl *ctl, const char *prog, const struct ctl_command *table, int argc,
                 char **argv)
{
        const struct ctl_command *row = argc > 0 ? find_row(table, argv[0]) : NULL;
        char path[256];
        int rc;

        if (!row)
                return ctl_usage_error(prog, "unknown command \"%s\" (see %s --help)",
                                       argc > 0 ? argv[0] : "", prog);
        snprintf(path, sizeof(path), "%s%s%s", prog, *prog ? " " : "", row->name);
        argc = take_json(ctl, argc, argv);
        if (row->sub && argc > 1 && !wants_help(2, argv))
                return ctl_dispatch(ctl, path, row->sub, argc - 1, argv + 1);
        if (wants_help(argc, argv)) {
                print_help(stdout, path, row);
                return CTL_EXIT_OK;
        }
        if (row->sub) {
                print_help(stderr, path, row);
                return CTL_EXIT_USAGE;
        }
        if (!ctl->settings_loaded && (rc = config_load(ctl, path)) != CTL_EXIT_OK)
                return rc;
        optind = 0; /* glibc: start over with this argv */
        return row->run(ctl, argc, argv);
}

void ctl_fini(struct ctl *ctl)
{
        if (ctl->settings_loaded)
                settings_fini(&ctl->settings);
        ctl->settings_loaded = false;
}

/* ------------------------------------------------------------------ output */

void ctl_emit(const struct ctl *ctl, json_t *doc, void (*human)(const json_t *doc, FILE *out))
{
        if (ctl->json) {
                json_dumpf(doc, stdout, JSON_COMPACT);
                fputc('\n', stdout);
        } else {
                human(doc, stdout);
        }
        fflush(stdout);
        json_decref(doc);
}

long long ctl_json_ll(const json_t *o, const char *key)
{
        return (long long)json_integer_value(json_object_get(o, key));
}

int ctl_usage_error(const char *prog, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "%s: ", prog);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return CTL_EXIT_USAGE;
}

/* ------------------------------------------------------------------ values */

int ctl_parse_ll(const char *s, long long min, long long max, long long *out)
{
        char *end;
        long long v;

        if (!s || !*s || isspace((unsigned char)*s))
                return -1;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -1;
        *out = v;
        return 0;
}

int ctl_parse_duration(const char *s, long long *ms)
{
        static const struct {
                char unit;
                long long ms;
        } units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
        char num[32];
        size_t n = s ? strlen(s) : 0;
        long long v, mult = 1000;

        if (n == 0 || n >= sizeof(num))
                return -1;
        memcpy(num, s, n + 1);
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (num[n - 1] == units[i].unit) {
                        mult = units[i].ms;
                        num[n - 1] = '\0';
                }
        if (ctl_parse_ll(num, 0, 100LL * 365 * 86400, &v) == -1)
                return -1;
        *ms = v * mult;
        return 0;
}

long long ctl_now_ms(void)
{
        return clock_wall_ms();
}

static int parse_utc(const char *s, long long *ms)
{
        static const char *const formats[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
                                              "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"};

        for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
                struct tm tm = {0};
                const char *end = strptime(s, formats[i], &tm);

                if (end && (!*end || strcmp(end, "Z") == 0)) {
                        *ms = (long long)timegm(&tm) * 1000;
                        return 0;
                }
        }
        return -1;
}

int ctl_parse_time(const char *s, long long *ms)
{
        long long v;

        if (!s || !*s)
                return -1;
        if (strcmp(s, "now") == 0) {
                *ms = ctl_now_ms();
                return 0;
        }
        if (s[0] == '-' && ctl_parse_duration(s + 1, &v) == 0) {
                *ms = ctl_now_ms() - v;
                return 0;
        }
        if (ctl_parse_ll(s, 0, 9999999999999LL, &v) == 0) {
                *ms = strlen(s) >= 12 ? v : v * 1000;
                return 0;
        }
        return parse_utc(s, ms);
}

void ctl_format_time(long long ms, char *out, size_t out_size)
{
        time_t t = (time_t)(ms / 1000);
        struct tm tm;

        if (ms < 0 || !gmtime_r(&t, &tm)) {
                snprintf(out, out_size, "-");
                return;
        }
        snprintf(out, out_size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* ------------------------------------------------------------------ config */

static void config_human(const json_t *doc, FILE *out)
{
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)doc, key, v)
                fprintf(out, "%s=%s\n", key, json_string_value(v));
}

int ctl_config_run(struct ctl *ctl, int argc, char **argv)
{
        char buf[8192];
        json_t *doc = json_object();

        if (argc > 1)
                return ctl_usage_error("liveflow-ctl config", "unexpected argument \"%s\"",
                                       argv[1]);
        settings_dump(&ctl->settings, SETTINGS_CTL, buf, sizeof(buf));
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
                char *eq = strchr(line, '=');

                if (!eq)
                        continue;
                *eq = '\0';
                json_object_set_new(doc, line, json_string(eq + 1));
        }
        ctl_emit(ctl, doc, config_human);
        return CTL_EXIT_OK;
}
