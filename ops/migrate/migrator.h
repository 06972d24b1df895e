/* migrator.h: applies numbered migrations to one MariaDB database, once each, in order. */
#ifndef LIVEFLOW_MIGRATOR_H
#define LIVEFLOW_MIGRATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "migration_dir.h"
#include "url.h"

struct migrator;

/**
 * @brief Connects to url's server with CLIENT_MULTI_STATEMENTS. With create_database, it
 *        connects without a database and first runs CREATE DATABASE IF NOT EXISTS (utf8mb4).
 * @returns the migrator (caller owns it, migrator_destroy()), or NULL with errstr set.
 */
struct migrator *migrator_new(const struct mysql_url *url, bool create_database,
                              char *errstr, size_t errstr_size);

/**
 * @brief Takes the server-wide advisory lock 'liveflow.migrate' (GET_LOCK), waiting up to
 *        timeout_s, so that concurrent runs apply each migration once. Released by
 *        migrator_destroy() or when the connection ends.
 * @returns 0, or -1 with errstr set.
 */
__attribute__((warn_unused_result)) int migrator_lock(struct migrator *mg, int timeout_s,
                                                      char *errstr, size_t errstr_size);

/**
 * @brief Applies every migration of md that schema_migrations lacks, in version order, and
 *        records each. A migration applied earlier whose file changed since is an error,
 *        checked before anything is applied.
 * @returns 0, or -1 with errstr naming the file (and the failing statement's number).
 */
__attribute__((warn_unused_result)) int migrator_apply(struct migrator *mg,
                                                       const struct migration_dir *md,
                                                       char *errstr, size_t errstr_size);

/**
 * @brief Writes one line per migration to out: applied, pending, changed (file edited after
 *        it was applied) or missing (recorded, but no file). Changes nothing.
 * @returns 0, or -1 when a migration changed or the database failed (errstr set).
 */
__attribute__((warn_unused_result)) int migrator_status(struct migrator *mg,
                                                        const struct migration_dir *md,
                                                        FILE *out, char *errstr,
                                                        size_t errstr_size);

/** @brief Releases the lock, closes the connection and frees mg; NULL does nothing. */
void migrator_destroy(struct migrator *mg);

#endif
