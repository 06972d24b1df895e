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

#endif
