/* stream_lifecycle.h: the "stream" role: live.stream into live_streams and the live Redis keys. */
#ifndef LIVEFLOW_STREAM_LIFECYCLE_H
#define LIVEFLOW_STREAM_LIFECYCLE_H

#include "consumer.h"

/*
 * Begin, end and forced close of streams, tolerant of duplicates, late and out-of-order
 * callbacks: every event is recorded once in live_events (unique per consumer and event id),
 * the stream row is locked and the event applied only when it is newer than what the row
 * holds; Redis (set:live:online, hash:anchor:status:{anchor_id}, temp:live:{stream_id}) is
 * then made to match the row. An event that ends a live session (or supplies the start of
 * one that ended first) hands it to live.session as a session.end record (session_handoff.h).
 */
extern const struct consumer_role stream_lifecycle_role;

#endif
