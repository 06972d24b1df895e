/*
 * ledger.h: live_events, the ledger every consumer role keeps: one row per (role, event id),
 * written in the same transaction as the record's business change, so that a replayed
 * record is recognised and changes nothing.
 */
#ifndef LIVEFLOW_LEDGER_H
#define LIVEFLOW_LEDGER_H

#include <stdbool.h>
#include <stddef.h>

#include "consumer.h"
#include "db.h"
#include "keyset.h"

struct ledger;

/**
 * @brief Prepares the ledger's statements for role `consumer` (at most 32 bytes) on db
 * (borrowed: it must outlive the ledger). @returns NULL when out of memory.
 */
struct ledger *ledger_new(struct db *db, const char *consumer);

/** @brief Frees the ledger; NULL is fine. */
void ledger_destroy(struct ledger *l);

/**
 * @brief Records rec (its event id, vendor, type, stream, trace id, times and Kafka
 * position) with outcome "applied". *first is true when this is the event's first row,
 * false for a replay. @returns what MySQL said.
 */
enum db_result ledger_record(struct ledger *l, const struct consumer_record *rec, bool *first,
                             char *errstr, size_t errstr_size);

/** @brief Sets the outcome (at most 32 bytes) of an event recorded before. */
enum db_result ledger_set_outcome(struct ledger *l, const char *event_id, const char *outcome,
                                  char *errstr, size_t errstr_size);

/* ------------------------------------------------------------------ a batch at once */

/**
 * @brief Which of the set's event ids the ledger holds for this role, in one query (see
 * keyset_find_known()); t is the caller's statement buffer.
 */
enum db_result ledger_find_known(struct ledger *l, struct keyset *ks, struct db_text *t,
                                 char *errstr, size_t errstr_size);

/**
 * @brief Starts a multi-row ledger insert in t: "INSERT IGNORE INTO live_events (...) VALUES ".
 * Add rows with ledger_text_row(); run it with ledger_text_exec().
 */
void ledger_text_begin(struct db_text *t);

/**
 * @brief As ledger_text_begin(), a plain INSERT, for rows taken for new without a look-up: a
 * row the ledger holds fails the whole statement with DB_DUPLICATE (ER_DUP_ENTRY rolls back
 * the statement, not the transaction), so nothing of it is written and no savepoint is needed.
 */
void ledger_text_begin_unread(struct db_text *t);

/** @brief Appends rec's row as ledger_record() writes it, with its outcome; first row or not. */
void ledger_text_row(struct ledger *l, struct db_text *t, const struct consumer_record *rec,
                     const char *outcome, bool is_first_row);

/**
 * @brief Runs the insert of `rows` rows. A row it skips means another transaction recorded one
 * of the events meanwhile (or MySQL took two ids for one): @returns DB_DUPLICATE then, with
 * errstr; the caller rolls the batch back and goes one record at a time.
 */
enum db_result ledger_text_exec(struct ledger *l, const struct db_text *t, size_t rows,
                                char *errstr, size_t errstr_size);

#endif
