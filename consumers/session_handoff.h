/* session_handoff.h: the stream role's session.end records on live.session, through a MySQL outbox.
 */
#ifndef LIVEFLOW_SESSION_HANDOFF_H
#define LIVEFLOW_SESSION_HANDOFF_H

#include <stddef.h>

#include "db.h"

struct role_env;

/*
 * When a stream event ends a live session, apply() copies the session as its transaction
 * sees it into the session_handoff table (keyed by that event's id), and publish() sends it
 * as a session.end record once the transaction is committed. The outbox keeps the session's
 * figures even when the next session of the stream has replaced the live_streams row by the
 * time publish() runs (an end and a begin in one batch), and lets a replayed event send the
 * same record again. The record's event_id is sha256("session.end|<session_id>"), so
 * consumers downstream can drop repeats.
 */
struct session_handoff;

/**
 * @brief Prepares the outbox statements on env->db; send() produces on the runtime's producer
 * (env->producer, waited for with env->ack). env is borrowed: it must outlive the hand-off.
 * @returns a hand-off the caller frees with session_handoff_destroy(), or NULL with errstr set.
 */
struct session_handoff *session_handoff_new(const struct role_env *env, char *errstr,
                                            size_t errstr_size);

/** @brief Frees the hand-off (the producer is the runtime's); NULL is fine. */
void session_handoff_destroy(struct session_handoff *h);

/**
 * @brief In the apply transaction: records that event_id ended the session the stream's row
 * holds now (the row must say status 'ended'). @returns what MySQL said; DB_OK when the
 * event was recorded already.
 */
__attribute__((warn_unused_result)) enum db_result
session_handoff_record(struct session_handoff *h, const char *event_id, const char *stream_id,
                       char *errstr, size_t errstr_size);

/**
 * @brief After the commit: when event_id ended a session, produces its session.end record
 * (key stream_id, headers trace_id, event_type and event_id) and waits for the broker's
 * acknowledgement. Any other event_id is nothing to do.
 * @returns 0, or -1 with errstr (transient: the caller tries again).
 */
__attribute__((warn_unused_result)) int session_handoff_send(struct session_handoff *h,
                                                             const char *event_id,
                                                             const char *trace_id, char *errstr,
                                                             size_t errstr_size);

/**
 * @brief session_handoff_send() for n events at once (a batch's, in batch order): their outbox
 * rows in one query, their session.end records produced together and waited for together. An
 * event named twice sends once; an event without a row is nothing to do.
 * @returns 0, or -1 with errstr (transient: the caller tries again, or one event at a time).
 */
__attribute__((warn_unused_result)) int
session_handoff_send_many(struct session_handoff *h, const char *const *event_ids,
                          const char *const *trace_ids, size_t n, char *errstr, size_t errstr_size);

#endif
