/*
 * claim.h: the duplicate-callback guard shared by every receiver instance (CONTRACT §5
 * lock:callback:{event_key}). A verified request takes its event key with SET NX before it is
 * produced; the key says "done" once the broker acknowledged the event, and is released when
 * the produce failed, so the sender's retry goes through. Without Redis (unset, or down) the
 * guard fails open: the request goes on, counted, and the consumers' ledgers (unique per
 * event id) still absorb a duplicate.
 */
#ifndef LIVEFLOW_RECEIVER_CLAIM_H
#define LIVEFLOW_RECEIVER_CLAIM_H

#include <stddef.h>

struct metrics;

/* What claim_take() found. */
enum claim_result {
        CLAIM_TAKEN,     /* the key is ours: produce, then claim_confirm() or claim_release() */
        CLAIM_DONE,      /* acknowledged before, by any receiver: answer 200 without an event */
        CLAIM_BUSY,      /* another request holds it and has no ack yet: answer 503, retry */
        CLAIM_UNGUARDED, /* no Redis to ask (unset or unreachable): go on without the guard */
};

#define CLAIM_TOKEN_LEN 32 /* hex digits of a claim's token */

/* One claim taken by a request: its key and the token that proves it is ours. */
struct claim_ticket {
        char key[512];
        char token[CLAIM_TOKEN_LEN + 1];
        long long done_ttl_ms; /* how long "done" is kept after the ack */
        int is_taken;
};

/* Thread-safe: a small pool of connections, one per concurrent caller. */
struct claim;

/**
 * @brief Makes the guard. redis_url NULL or "": every claim is CLAIM_UNGUARDED. Connects
 * lazily. timeout_ms bounds each Redis call; after a failure Redis is skipped for retry_ms.
 * pending_ttl_ms bounds a claim whose request never finished (a crash). metrics is borrowed.
 * @returns the guard (claim_destroy() frees it) or NULL when out of memory.
 */
struct claim *claim_new(const char *redis_url, int timeout_ms, int retry_ms,
                        long long pending_ttl_ms, int pool_size, struct metrics *metrics);

/** @brief Frees the guard and its connections; NULL is fine. */
void claim_destroy(struct claim *cl);

/**
 * @brief Takes lock:callback:{event_key} for this request. t receives the key and a fresh
 * token; done_ttl_ms is how long the key says "done" after claim_confirm(). trace_id (may be
 * NULL) is for the log. @returns what was found (see enum claim_result).
 */
enum claim_result claim_take(struct claim *cl, const char *event_key, long long done_ttl_ms,
                             const char *trace_id, struct claim_ticket *t);

/** @brief Prepares t for claim_take_many(): its key and a fresh token (nothing is asked). */
void claim_ticket_init(struct claim_ticket *t, const char *event_key, long long done_ttl_ms);

/**
 * @brief claim_take() for n tickets prepared by claim_ticket_init(), in one pipelined round
 * trip (an event loop takes the claims of every request it verified in a turn together).
 * results[i] is what was found for tickets[i]; trace_ids[i] (may be NULL) is for the log.
 */
void claim_take_many(struct claim *cl, struct claim_ticket *const *tickets,
                     const char *const *trace_ids, enum claim_result *results, size_t n);

/** @brief The event of t is durable: the key says "done" for t->done_ttl_ms. */
void claim_confirm(struct claim *cl, struct claim_ticket *t);

/* Confirmations written together: one pipelined round trip for every one of a loop's turn. */
struct claim_pending {
        char key[512];
        char ttl[24];
};

struct claim_batch {
        struct claim_pending *items;
        size_t n, cap;
};

/**
 * @brief claim_confirm() deferred to the next claim_flush() of b (a copy of the key is kept;
 * t is done with). An event loop confirms the claims of every delivery report of a poll in
 * one round trip, instead of one round trip each, before it writes their 200s.
 */
void claim_confirm_later(struct claim *cl, struct claim_ticket *t, struct claim_batch *b);

/** @brief Writes every confirmation b holds (EVALSHA pipelined) and empties it. */
void claim_flush(struct claim *cl, struct claim_batch *b);

/** @brief Frees what b holds (flush it first). */
void claim_batch_fini(struct claim_batch *b);

/** @brief The event of t was not stored: the key is deleted if it is still t's. */
void claim_release(struct claim *cl, struct claim_ticket *t);

#endif
