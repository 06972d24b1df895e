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

#include <stdbool.h>
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
        /* private to claim_loop.c: the call waiting for Redis's answer */
        struct claim_ticket *next_call;
        const char *trace_id;
        void (*on_taken)(void *arg, enum claim_result res);
        void (*on_confirmed)(void *arg);
        void *arg;
        long long sent_us; /* monotonic: when the call was queued */
};

/* Thread-safe: a small pool of blocking connections, one per concurrent caller. An event loop
 * asks through claim_loop.h instead, without blocking. */
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

/** @brief Prepares t for claim_loop_take(): its key and a fresh token (nothing is asked). */
void claim_ticket_init(struct claim_ticket *t, const char *event_key, long long done_ttl_ms);

/** @brief The event of t is durable: the key says "done" for t->done_ttl_ms. */
void claim_confirm(struct claim *cl, struct claim_ticket *t);

/** @brief The event of t was not stored: the key is deleted if it is still t's. */
void claim_release(struct claim *cl, struct claim_ticket *t);

#endif
