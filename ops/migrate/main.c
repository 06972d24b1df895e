/*
 * liveflow-migrate: applies the numbered migrations of sql/ to the database named by
 * LIVEFLOW_MYSQL_URL, once each, under an advisory lock. Exit 0 on success, 1 when a
 * migration (or the database) failed, 2 on bad configuration.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "migration_dir.h"
#include "migrator.h"
#include "url.h"
#include "version.h"

#define LOCK_TIMEOUT_S 30

struct options {
        const char *dir;
        bool create_database;
        bool status_only;
        bool help;
        struct mysql_url url;
        int log_level;
};

static void usage(FILE *out)
{
        fputs("usage: liveflow-migrate [--dir DIR] [--create-database] [--status] | --version | --help\n"
              "  applies DIR/NNN_name.sql (default sql/) to the database of LIVEFLOW_MYSQL_URL\n"
              "  --create-database  CREATE DATABASE IF NOT EXISTS (utf8mb4) first\n"
              "  --status           list applied and pending migrations; change nothing\n",
              out);
}

static int options_parse(struct options *opt, int argc, char **argv, char *errstr,
                         size_t errstr_size)
{
        static const struct option longopts[] = {
                {"dir", required_argument, NULL, 'd'},
                {"create-database", no_argument, NULL, 'c'},
                {"status", no_argument, NULL, 's'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        int c;

        opt->dir = "sql";
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (c) {
                case 'd':
                        opt->dir = optarg;
                        break;
                case 'c':
                        opt->create_database = true;
                        break;
                case 's':
                        opt->status_only = true;
                        break;
                case 'h':
                        opt->help = true;
                        break;
                default:
                        snprintf(errstr, errstr_size, "bad option (see --help)");
                        return -1;
                }
        }
        if (optind < argc) {
                snprintf(errstr, errstr_size, "unexpected argument \"%s\"", argv[optind]);
                return -1;
        }
        return 0;
}

/* Options first, then the environment; every message names what is wrong. */
static int config_load(struct options *opt, int argc, char **argv, char *errstr, size_t errstr_size)
{
        const char *url = getenv("LIVEFLOW_MYSQL_URL");
        const char *level = getenv("LIVEFLOW_LOG_LEVEL");
        char why[512];

        if (options_parse(opt, argc, argv, errstr, errstr_size) == -1 || opt->help)
                return opt->help ? 0 : -1;
        opt->log_level = LOG_LEVEL_INFO;
        if (level && *level && (opt->log_level = log_level_parse(level)) == -1) {
                snprintf(errstr, errstr_size,
                         "LIVEFLOW_LOG_LEVEL: \"%s\" is not error, warn, info or debug", level);
                return -1;
        }
        if (!url || !*url) {
                snprintf(errstr, errstr_size,
                         "LIVEFLOW_MYSQL_URL is not set (mysql://user:pass@host:port/db)");
                return -1;
        }
        if (url_parse_mysql(url, &opt->url, why, sizeof(why)) == -1) {
                snprintf(errstr, errstr_size, "LIVEFLOW_MYSQL_URL: %s", why);
                return -1;
        }
        return 0;
}

static int run(struct migrator *mg, const struct options *opt, const struct migration_dir *md,
               char *errstr, size_t errstr_size)
{
        if (opt->status_only)
                return migrator_status(mg, md, stdout, errstr, errstr_size);
        if (migrator_lock(mg, LOCK_TIMEOUT_S, errstr, errstr_size) == -1)
                return -1;
        return migrator_apply(mg, md, errstr, errstr_size);
}

/* LIVEFLOW_LOG_FORMAT: text (the default) or json, as every liveflow process reads it. */
static int set_log_format(const char *format)
{
        if (format && log_format_parse(format) == -1) {
                fprintf(stderr,
                        "liveflow-migrate: LIVEFLOW_LOG_FORMAT: \"%s\" is not text or json\n",
                        format);
                return -1;
        }
        log_set_format(format ? (enum log_format)log_format_parse(format) : LOG_FORMAT_TEXT);
        return 0;
}

int main(int argc, char **argv)
{
        struct options opt = {0};
        struct migration_dir md = {0};
        struct migrator *mg = NULL;
        char errstr[1024];
        int status = 1;

        if (version_requested("liveflow-migrate", argc, argv))
                return 0;
        if (config_load(&opt, argc, argv, errstr, sizeof(errstr)) == -1) {
                fprintf(stderr, "liveflow-migrate: %s\n", errstr);
                return 2;
        }
        if (opt.help) {
                usage(stdout);
                return 0;
        }
        if (set_log_format(getenv("LIVEFLOW_LOG_FORMAT")) == -1)
                return 2;
        log_init("migrate", (enum log_level)opt.log_level);
        if (migration_dir_init(&md, opt.dir, errstr, sizeof(errstr)) == -1) {
                log_error(NULL, "--dir %s", errstr);
                return 2;
        }

        if (!(mg = migrator_new(&opt.url, opt.create_database, errstr, sizeof(errstr))) ||
            run(mg, &opt, &md, errstr, sizeof(errstr)) == -1) {
                log_error(NULL, "%s", errstr);
                goto out;
        }
        status = 0;
out:
        migrator_destroy(mg);
        migration_dir_fini(&md);
        return status;
}
