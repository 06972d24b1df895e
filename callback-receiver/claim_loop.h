/*
 * claim_loop.h: the duplicate-callback guard (claim.h) as one event loop asks it, without
 * blocking. Each loop holds a hiredis asynchronous connection whose descriptor it polls beside
 * its daemon's: a claim's answer and a "done" mark's confirmation come in as the loop's own
 * events, and the loop serves its other connections while Redis works. The calls of a turn go
 * out together (pipelined) when the loop flushes them.
 *
 * Every call ends in its callback exactly once, on the loop's thread: with Redis's answer, or
 * failing open (CLAIM_UNGUARDED, or "confirmed" without the mark) when Redis is not configured,
 * skipped after a failure, unreachable, or silent for the guard's timeout. A callback may come
 * before the call returns (when Redis is not asked) and may make further calls.
 */
#ifndef LIVEFLOW_RECEIVER_CLAIM_LOOP_H
#define LIVEFLOW_RECEIVER_CLAIM_LOOP_H

#include <poll.h>
#include <stddef.h>

#include "claim.h"

struct claim_loop;

/** @brief One loop's connection to the guard's Redis (made on the first call); NULL: no memory. */
struct claim_loop *claim_loop_new(struct claim *cl);

/** @brief Closes the connection without calling the callbacks still waiting; NULL is fine. */
void claim_loop_destroy(struct claim_loop *cll);

/**
 * @brief Takes t's key (t prepared by claim_ticket_init()); on_taken(arg, result) says what was
 * found, t->is_taken set as claim_take() sets it. trace_id (may be NULL) is for the log and
 * must live until the callback.
 */
void claim_loop_take(struct claim_loop *cll, struct claim_ticket *t, const char *trace_id,
                     void (*on_taken)(void *arg, enum claim_result res), void *arg);

/**
 * @brief Marks t's key "done" (claim_confirm()); on_confirmed(arg) once Redis confirmed it or
 * failed (the guard then fails open: the pending TTL bounds the key). A ticket not taken is
 * confirmed at once.
 */
void claim_loop_confirm(struct claim_loop *cll, struct claim_ticket *t,
                        void (*on_confirmed)(void *arg), void *arg);

/** @brief The connection's descriptor and the events to wait for in pfd (fd -1: none). */
void claim_loop_pollfd(const struct claim_loop *cll, struct pollfd *pfd);

/**
 * @brief After the loop's poll, with the revents of claim_loop_pollfd()'s descriptor: reads the
 * answers (their callbacks run), fails the calls when the oldest has waited past the timeout,
 * and writes what is queued.
 */
void claim_loop_serve(struct claim_loop *cll, short revents);

/** @brief Writes the calls queued since the last serve (end of a turn). */
void claim_loop_flush(struct claim_loop *cll);

/** @brief The longest the loop may wait before the oldest call's timeout (-1: no call waits). */
int claim_loop_wait_ms(const struct claim_loop *cll);

/**
 * @brief Ends every waiting call now as if Redis had failed (callbacks called, nothing counted
 * or logged): at the drain deadline, before the daemon stops.
 */
void claim_loop_abandon(struct claim_loop *cll);

#endif
