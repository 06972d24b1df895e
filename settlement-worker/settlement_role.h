/*
 * settlement_role.h: what the settlement role's two halves share: settlement.c (open, apply()
 * one record at a time, publish(), the session sweep) and settlement_batch.c (apply_many(), runs
 * of tips set-based, with settlement_apply() as its fallback and oracle). Private to the role.
 */
#ifndef LIVEFLOW_SETTLEMENT_ROLE_H
#define LIVEFLOW_SETTLEMENT_ROLE_H

#include <stdbool.h>
#include <stddef.h>

#include "consumer.h"
#include "role_kit.h"

#define ID_MAX 64 /* trace_id, request_id and anchor_id are VARCHAR(64) */

/* consumer_record.note: what apply() did; publish() counts it once the commit made it so. */
enum settlement_note {
        NOTE_NONE,
        NOTE_TIP_SETTLED,
        NOTE_TIP_DUPLICATE,
        NOTE_WITHDRAWAL_SUCCEEDED,
        NOTE_WITHDRAWAL_REJECTED,
        NOTE_SESSION_SUMMED,
        NOTE_COUNT,
};

enum settlement_kind { KIND_TIP, KIND_WITHDRAWAL, KIND_SESSION_END };

/* What one record asks for, read from its envelope and payload (borrowed from the event). */
struct settlement_event {
        enum settlement_kind kind;
        const char *id; /* tip_id or request_id */
        const char *anchor_id;
        long long amount;
        long long time_ms; /* tip: ts_ms; withdrawal: event time; session: ended_at_ms */
        long long session_id;
        long long started_ms; /* session: -1 when unknown */
};

struct settlement_state {
        struct db *db;
        long long default_ratio_bp;
        long long recompute_s;
        long long sweep_ms;
        long long last_sweep_ms;
        struct metric *counted[NOTE_COUNT];
        struct role_gate gate; /* runs unread, or read first (settlement_batch.c, role_kit.h) */
        struct ledger *ledger;
        struct notify *notify; /* live.notify: withdrawal succeeded / rejected */
        struct db_stmt *find_ratio, *insert_detail, *find_detail, *credit, *claim_request, *debit,
                *find_available, *decide_request, *upsert_session, *sum_session, *sweep_sessions;
};

/** @brief Reads what one record asks for; the strings in *se are borrowed from ev.
 *  @returns 0, or -1 with errstr when the record can never be settled. */
int settlement_read_event(const struct event *ev, struct settlement_event *se, char *errstr,
                          size_t errstr_size);

/** @brief Whether the record is on the hand-off topic but not an event this role acts on. */
bool settlement_is_ignored(const struct consumer_record *rec);

/** @brief Applies one event read by settlement_read_event(): the ledger row, then what the
 *  event asks for; sets rec->note and rec->publish. */
enum apply_result settlement_apply_event(struct settlement_state *st, struct consumer_record *rec,
                                         const struct settlement_event *se, char *errstr,
                                         size_t errstr_size);

/** @brief settlement_apply() for a batch (settlement_batch.c); the runtime falls back to
 *  settlement_apply() per record on APPLY_RETRY. */
enum apply_result settlement_apply_many(void *state, struct apply_slot *slots, size_t n,
                                        char *errstr, size_t errstr_size);

#endif
