/*
 * claim_int.h: what the guard's two halves share. claim.c asks Redis from any thread over a pool
 * of blocking connections (a batch's claim, a release, a spooled event's "done"); claim_loop.c
 * asks it from an event loop without blocking (every single event's claim and "done"). Both
 * count into the same series and skip Redis for the same while after a failure.
 */
#ifndef LIVEFLOW_RECEIVER_CLAIM_INT_H
#define LIVEFLOW_RECEIVER_CLAIM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "claim.h"

#define CLAIM_KEY_PREFIX "lock:callback:"

struct slot {
        pthread_mutex_t lock;
        struct redis_conn *rc; /* NULL until first used, or after a failed connect */
};

/* A script and its SHA-1 (hex), worked out once rather than for every call. */
struct script {
        const char *text;
        char sha[41];
};

enum { SCRIPT_TAKE, SCRIPT_CONFIRM, SCRIPT_RELEASE, SCRIPT_CNT };

struct claim {
        char *url; /* NULL: no Redis */
        struct script scripts[SCRIPT_CNT];
        int timeout_ms, retry_ms;
        long long pending_ttl_ms;
        char pending_ttl[24];       /* pending_ttl_ms, as the take script's argument */
        atomic_llong skip_until_ms; /* Redis failed: not asked before this (monotonic ms) */
        struct slot *slots;
        int slot_cnt;
        struct metric *m_result[4];
        struct metric *m_errors;
};

/* Whether Redis may be asked now: configured, and not skipped after a failure. */
bool claim_is_asked(struct claim *cl);

/* A failure: counted, logged (why, with trace_id), Redis skipped for retry_ms. */
void claim_failed(struct claim *cl, const char *trace_id, const char *why);

/* The take script's integer answer as a result (anything else: unguarded). */
enum claim_result claim_result_of(long long answer);

/* A take's outcome: t->is_taken set, the result counted. */
void claim_note_result(struct claim *cl, struct claim_ticket *t, enum claim_result res);

#endif
