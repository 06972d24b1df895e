/*
 * audience.h: the "audience" role: viewers and interactions into visits, watch history,
 * session figures and the Redis real-time figures.
 *
 * Group liveflow.audience on live.viewer and live.interaction:
 *  - viewer.enter / .heartbeat / .exit (POST /v1/events, audience "app:<audience_id>") and
 *    viewer.join / .leave (SRS on_play / on_stop, Agora RTC audience join / leave: audience
 *    "<vendor>:<client_id>", e.g. "srs:<client_id>") open, refresh and
 *    close a visit per (room, audience member) in audience_visit. A viewer is online once however
 *    often it enters; an enter or heartbeat older than the visit's close is a late copy and
 *    ignored; an exit without an open visit closes nothing (it is remembered, so an older enter
 *    that arrives after it opens nothing); a visit without a heartbeat for
 *    LIVEFLOW_AUDIENCE_VISIT_TIMEOUT_S is closed at its last sign of life by tick(). A closed
 *    visit is a live_watch_history row (idempotent by the id of the event that opened it).
 *  - interaction.chat / .like (count) / .follow / .unfollow / .share count per session
 *    (live_statistics) and per room and minute (audience_room_minute, for the ranking);
 *    profile.update is skipped.
 * The room and session of an event: its stream's live_streams row (the session when the stream
 * is live, or when the event is not later than the session's end), else the live stream of its
 * room_id; an event of an unknown stream without room_id counts in the room named by its stream id.
 * live_statistics (per session): views (visits opened), unique_viewers (exact: one
 * audience_session_viewer row per member), peak_online (the room's online count at its highest
 * while an event of the session raised it), total_watch_s, watch_visits, avg_watch_s, the
 * watch-time distribution of closed visits (< 1, 1-5, 5-15, 15-60, >= 60 minutes), chats, likes,
 * follows, unfollows, shares. The viewer columns stay NULL for a session no viewer event named.
 * Exactly once: an event id is applied in the transaction that records it in
 * audience_event_seen. A batch is applied set-based: a few multi-row statements, and one
 * pipelined Redis round trip (absolute values read back from MySQL, so a replay rewrites the
 * same figures): live:room:online:{room_id} and live:stats:{session_id} fields views, uv,
 * peak_online, chats, likes, follows, shares (TTL LIVEFLOW_REWARD_STATS_TTL_S).
 * Every LIVEFLOW_AUDIENCE_RANK_INTERVAL_S tick() rewrites live:rank:hot with the
 * LIVEFLOW_AUDIENCE_RANK_SIZE hottest rooms live now:
 *   heat = online + 0.2 chats + 0.05 likes + 2 follows + shares + tips / 100
 * with interactions (audience_room_minute: the minutes that overlap the last interval) and
 * tips (recharge.amount in minor units, tipped within the last interval).
 * Redis that lost its data (its liveflow:redis:epoch:audience gone or changed, or a new run_id)
 * gets these keys back from MySQL (lib/rebuild_audience.c, as `liveflow-ctl rebuild redis`).
 */
#ifndef LIVEFLOW_AUDIENCE_H
#define LIVEFLOW_AUDIENCE_H

#include "consumer.h"

extern const struct consumer_role audience_role;

#endif
