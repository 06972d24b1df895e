/* stream_lifecycle.h: the "stream" role: live.stream into live_streams and the live Redis keys. */
#ifndef LIVEFLOW_STREAM_LIFECYCLE_H
#define LIVEFLOW_STREAM_LIFECYCLE_H

#include "consumer.h"

/*
 * Begin, end and forced close of streams, tolerant of duplicates, late and out-of-order
 * callbacks: every event is recorded once in live_events (unique per consumer and event id),
 * the stream row is locked and the event applied only when it is newer than what the row
 * holds; Redis (set:live:online, hash:anchor:status:{anchor_id}, temp:live:{stream_id}) is
 * then made to match the row (lib/rebuild.c's projection, the one liveflow-ctl rebuild redis
 * runs; tick() projects every live stream again when Redis lost its data, lib/rebuild.h's
 * epoch). An event that ends a live session (or supplies the start of
 * one that ended first) hands it to live.session as a session.end record (session_handoff.h).
 *
 * Ghost sweep: a stream whose end never arrives is closed after LIVEFLOW_STREAM_GHOST_SILENCE_S
 * (0: never). At most every LIVEFLOW_STREAM_SWEEP_INTERVAL_S, tick() selects the live rows
 * whose last_event_at is older than the silence (a few hundred per sweep, oldest first) and
 * produces for each a stream.close to live.stream (vendor "liveflow", StreamEnd close_method
 * 1, reason "ghost: no event for N s", the session's sequence, event time the sweep's) with
 * event_id sha256("ghost|<stream_id>|<session_id>"): instances sweeping at once produce
 * duplicates, recorded once. The role then ends the stream as any end (Redis, session
 * hand-off); liveflow_stream_ghosts_closed_total counts the closes. Only stream events (this
 * role's begin, end and close, including a repeated begin of the live session) refresh
 * last_event_at; snapshots, tips, viewers and other topics do not, so a stream that stays
 * up longer than the silence without a stream event is closed too.
 *
 * Cut-off: a begin that makes the stream live looks up anchors.status and suspended_until
 * for its anchor in the same transaction (no row: active). A banned anchor, or one suspended
 * beyond the begin's event time, gets the begin recorded as cutoff_banned/cutoff_suspended,
 * and publish() produces a stream.close (close_method 3, reason "anchor banned"/"anchor
 * suspended", the begin's sequence and event time, event_id sha256("cutoff|<begin event
 * id>")) and waits for its acknowledgement; that close, like any close_method 3, has the
 * vendor drop the stream. A replayed begin sends the same close while the stream is live.
 */
extern const struct consumer_role stream_lifecycle_role;

#endif
