/*
 * notify_mark.h: marks the live.notify outbox's acknowledged rows and bundles sent
 * (lib/notify.c), on a connection and a thread of its own, so that the UPDATE (it moves each
 * row's entry in the unsent index) never runs on a batch's thread or connection, and a row
 * lock another instance's sweep holds never stalls a batch.
 *
 * The relay hands over what the broker acknowledged (notify_mark_add()); the thread marks
 * what is handed over in one statement per table per NOTIFY_MARK_CHUNK rows (a notify_outbox
 * row's id and event id must both match; a bundle is a notify_batch id), and when one fails keeps
 * the rows and tries again a second later. What is handed over and not marked yet counts as in
 * flight: the sweep leaves it alone. A crash before the mark sends those rows again, with the same
 * event ids.
 */
#ifndef LIVEFLOW_NOTIFY_MARK_H
#define LIVEFLOW_NOTIFY_MARK_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"

/* One acknowledged row: of notify_outbox (id and event id), or a bundle (notify_batch, id). */
struct notify_mark_row {
        long long id;
        char event_id[65];
        bool is_bundle;
};

/**
 * @brief Marks rows[0..n) sent on db now, in one statement per NOTIFY_MARK_CHUNK rows (what the
 * thread runs; the caller's own way when it has no thread). @returns 0, or -1 with errstr.
 */
int notify_mark_now(struct db *db, const struct notify_mark_row *rows, size_t n, char *errstr,
                    size_t errstr_size);

struct notify_mark;

/**
 * @brief Opens a second connection like db's and starts the thread.
 * @returns NULL with errstr when it cannot (the caller then marks on its own connection).
 */
struct notify_mark *notify_mark_new(const struct db *like, char *errstr, size_t errstr_size);

/**
 * @brief Marks what was handed over (one try), stops the thread and closes its connection;
 * NULL is fine. What is not marked is sent again by a later sweep.
 */
void notify_mark_destroy(struct notify_mark *m);

/** @brief Hands n rows over to be marked sent. @returns 0, or -1 when out of memory. */
int notify_mark_add(struct notify_mark *m, const struct notify_mark_row *rows, size_t n);

/** @brief How many rows are handed over and not marked yet. */
size_t notify_mark_pending(struct notify_mark *m);

/**
 * @brief A copy of the rows notify_mark_pending() counts, malloc'd into *rows (NULL when none).
 * @returns how many, or -1 when out of memory.
 */
long notify_mark_pending_rows(struct notify_mark *m, struct notify_mark_row **rows);

/** @brief Waits until nothing is pending or timeout_ms passed. @returns whether nothing is. */
bool notify_mark_wait(struct notify_mark *m, int timeout_ms);

#endif
