/* stores.h: MySQL and Redis for the subcommands that read or repair what the workers derive
 * (rebuild, share, reconcile), and the options they share. */
#ifndef LIVEFLOW_CTL_STORES_H
#define LIVEFLOW_CTL_STORES_H

#include <stdbool.h>

#include "ctl.h"

struct db;
struct redis_conn;

/* The connections a subcommand asked for; NULL where it did not. */
struct ctl_stores {
        struct db *db;
        struct redis_conn *redis;
};

/**
 * @brief Connects to LIVEFLOW_MYSQL_URL and, with need_redis, LIVEFLOW_REDIS_URL.
 * @returns CTL_EXIT_OK, or CTL_EXIT_USAGE after saying on stderr which store failed and why.
 */
int ctl_stores_open(const struct ctl *ctl, const char *prog, bool need_redis,
                    struct ctl_stores *st);

/** @brief Closes what is open. */
void ctl_stores_close(struct ctl_stores *st);

/* The flags every changing subcommand of these takes. */
struct ctl_change_opts {
        bool execute;    /* --execute: act; without it, a dry run */
        long long limit; /* --limit N: lines listed per kind (default 20) */
};

/**
 * @brief Reads --execute, --limit N and positional arguments (up to max_pos, into pos; npos
 * receives how many) from argv[1..]. @returns 0, or CTL_EXIT_USAGE after saying why.
 */
int ctl_change_parse(const char *prog, int argc, char **argv, struct ctl_change_opts *o,
                     const char **pos, int max_pos, int *npos);

#endif
