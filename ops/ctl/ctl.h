/*
 * ctl.h: what every liveflow-ctl subcommand shares: the command table and its dispatch, the
 * configuration (LIVEFLOW_* variables, .run/env), options, output (human text or --json) and
 * exit codes.
 *
 * A subcommand is a row of a table (name, one-line summary, usage text, function); a row may
 * instead hold a table of its own (`dlq list`, `dlq replay`, ...). The dispatcher answers
 * --help on every level with exit 0, takes --json anywhere before "--", loads the
 * configuration, then calls the function with argv[0] = the subcommand's name.
 */
#ifndef LIVEFLOW_CTL_H
#define LIVEFLOW_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "settings.h"

/* Exit codes a cron job can act on. */
enum ctl_exit {
        CTL_EXIT_OK = 0,    /* done, or nothing to do */
        CTL_EXIT_LEFT = 1,  /* something is left or failed: the output says what */
        CTL_EXIT_USAGE = 2, /* usage, configuration or connection error */
};

struct ctl {
        struct settings settings;
        bool settings_loaded;
        bool json;     /* --json: one JSON document on stdout */
        char who[160]; /* "user@host", for the records a subcommand writes */
};

struct ctl_command {
        const char *name;
        const char *summary; /* one line, shown in the parent's --help */
        const char *usage;   /* the whole --help text: "usage: ..." and the options */
        int (*run)(struct ctl *ctl, int argc, char **argv);
        const struct ctl_command *sub; /* subcommands instead of run; a row with name NULL ends */
};

/**
 * @brief Runs the row of `table` named by argv[0] (prog is the command path so far, e.g.
 * "liveflow-ctl dlq"). @returns its exit code; CTL_EXIT_USAGE for an unknown name.
 */
int ctl_dispatch(struct ctl *ctl, const char *prog, const struct ctl_command *table, int argc,
                 char **argv);

/** @brief `liveflow-ctl config`: the configuration in effect, secrets masked. */
int ctl_config_run(struct ctl *ctl, int argc, char **argv);

/** @brief Frees what the configuration holds. */
void ctl_fini(struct ctl *ctl);

/**
 * @brief Writes doc on stdout: as one JSON line with --json, else through human(doc, stdout).
 * Takes the reference.
 */
void ctl_emit(const struct ctl *ctl, json_t *doc, void (*human)(const json_t *doc, FILE *out));

/** @brief o's member key as a long long; 0 when it is absent or not an integer (the printers). */
long long ctl_json_ll(const json_t *o, const char *key);

/** @brief "PROG: message" on stderr and @returns CTL_EXIT_USAGE. */
int ctl_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** @brief Parses a whole decimal integer in [min, max]. @returns 0 or -1. */
int ctl_parse_ll(const char *s, long long min, long long max, long long *out);

/**
 * @brief Parses a time: Unix ms (13+ digits), Unix s, "now", "-30m" / "-2h" / "-1d" / "-45s"
 * before now, or UTC "YYYY-MM-DDTHH:MM[:SS][Z]" / "YYYY-MM-DD HH:MM[:SS]". @returns 0 and Unix
 * ms in *ms, or -1.
 */
int ctl_parse_time(const char *s, long long *ms);

/** @brief Parses a duration: "300", "300s", "5m", "2h", "1d" into ms. @returns 0 or -1. */
int ctl_parse_duration(const char *s, long long *ms);

/** @brief Wall clock, Unix ms. */
long long ctl_now_ms(void);

/** @brief Writes Unix ms as "2026-12-05T10:33:14.123Z" (or "-" for ms < 0). */
void ctl_format_time(long long ms, char *out, size_t out_size);

#endif
