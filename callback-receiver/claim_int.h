/*
 * claim_int.h: what the guard's two halves share. claim.c asks Redis from any thread over a pool
 * of blocking connections (a batch's claim, a release, a spooled event's "done"); claim_loop.c
 * asks it from an event loop without blocking (every single event's claim and "done"). Both
 * send the same commands, count into the same series and skip Redis for the same while after a
 * failure.
 */
#ifndef LIVEFLOW_RECEIVER_CLAIM_INT_H
#define LIVEFLOW_RECEIVER_CLAIM_INT_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "claim.h"

#define CLAIM_KEY_PREFIX "lock:callback:"

struct slot {
        pthread_mutex_t lock;
        struct redis_conn *rc; /* NULL until first used, or after a failed connect */
};

struct claim {
        char *url; /* NULL: no Redis */
        int timeout_ms, retry_ms;
        char pending_ttl[24];       /* ms a claim is held without an ack (a crash) */
        atomic_llong skip_until_ms; /* Redis failed: not asked before this (monotonic ms) */
        struct slot *slots;
        int slot_cnt;
        struct metric *m_result[4];
        struct metric *m_errors;
        struct metric *m_seconds[2]; /* answered calls' round trips: a claim's, a mark's */
};

/* Whether Redis may be asked now: configured, and not skipped after a failure. */
bool claim_is_asked(struct claim *cl);

/* A failure: counted, logged (why, with trace_id), Redis skipped for retry_ms. */
void claim_failed(struct claim *cl, const char *trace_id, const char *why);

/* A take's SET key token NX PX <pending TTL>; a GET of the key tells whose it is when held. */
void claim_take_argv(const struct claim *cl, const struct claim_ticket *t, const char *set[6]);

/*
 * What a take found, from its SET's reply type and its GET's reply, in *res; -1 when they are
 * not a take's (an error reply).
 */
int claim_take_outcome(int set_type, const redisReply *get, enum claim_result *res);

/* The "done" mark: SET key done PX <t's done TTL>, its TTL written in ttl. */
void claim_done_argv(const struct claim_ticket *t, char ttl[24], const char *argv[5]);

/* An unexpected reply, in words for the log. */
const char *claim_reply_why(const redisReply *r);

/* An answered call's round trip, since since_us (monotonic): a claim's or a "done" mark's. */
void claim_note_seconds(struct claim *cl, bool is_claim, long long since_us);

/* A take's outcome: t->is_taken set, the result counted. */
void claim_note_result(struct claim *cl, struct claim_ticket *t, enum claim_result res);

#endif
