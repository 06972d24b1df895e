/* reward_sync.h: the "reward-sync" role: tips into recharge, Redis room figures and
 * live_room_realtime. */
#ifndef LIVEFLOW_REWARD_SYNC_H
#define LIVEFLOW_REWARD_SYNC_H

#include "consumer.h"

/*
 * One tip (payload Reward) is counted once everywhere, whatever is replayed or crashes.
 *
 * MySQL (apply, in the batch transaction). The tip becomes one recharge row keyed by its
 * trace_id (= Reward.tip_id); a second record with that id changes nothing, whatever its
 * amount. session_id is the room's live session (live_streams, status 'live'), else NULL.
 * Only when the row is new, the room's live_room_sync row is upserted in the same
 * transaction: it hands the tip the next room_seq and adds the tip to the room's pending
 * delta for live_room_realtime. The upsert holds that row's lock until the commit, so a
 * room's tips are numbered in commit order: whoever holds the lock sees every tip with a
 * smaller number committed.
 *
 * Redis (publish, after the commit, for every valid tip, duplicates included: a crash
 * between the commit and publish leaves a duplicate as the only carrier of the projection).
 * publish() reads the tip back from recharge (so a re-posted tip with other values projects
 * the stored ones) and runs one Lua script that first sets live:tip:applied:{trace_id}
 * (SET NX EX LIVEFLOW_REWARD_DEDUP_TTL_S) and returns when the marker was there. A new
 * marker adds the tip to live:room:earnings / recharge_count / top:{room_id} unless its
 * room_seq is at or below live:room:rebuilt:{room_id}, and to live:stats:{session_id}
 * (gift_amount, gift_count = gifts, tip_count, paying_users = SCARD of
 * live:stats:payers:{session_id}) unless at or below live:stats:rebuilt:{session_id}.
 * So publish() may run any number of times: the script is atomic, and the marker makes
 * every run after the first a no-op. Replays older than the marker's lifetime would count
 * again in Redis (never in MySQL); a rebuild ends that window for the tips it covers.
 *
 * Redis unreachable. Tips still land in MySQL. publish() then counts
 * liveflow_reward_redis_degraded_total, marks (room_id, session_id or 0) in
 * live_room_rebuild in its own small statement and returns 0: the partition moves on and no
 * tip goes to the dead-letter topic for Redis' sake. Until Redis answers again publish()
 * skips Redis at once. tick() pings it; once it answers, every marked room is rebuilt from
 * recharge in one MySQL transaction that locks the room's live_room_sync row (so no tip of
 * the room commits meanwhile) and its live_room_rebuild rows: with W the room's last
 * room_seq, the room figures and the marked sessions' stats are recomputed over the tips
 * numbered 1..W, staged under live:rebuild:* and swapped in by one script that also sets
 * the watermarks to W; then the marks are deleted and the lock released. A tip numbered
 * at or below W is in the rebuilt figures, so its later publish adds nothing there; a tip
 * above W committed after the swap and is added by its own publish. Any Redis error
 * (also WRONGTYPE and the like) takes this path, and the rebuild repairs the keys.
 * A session's tips all belong to one room (the session is looked up by room), which is what
 * makes the room's numbers valid for its sessions. The rebuild is lib/rebuild.c, which
 * liveflow-ctl rebuild redis runs too.
 *
 * Redis that lost its data. tick() also reads liveflow's epoch key and the server's run_id
 * (lib/rebuild.h): when Redis comes back empty, was flushed or restarted from a snapshot,
 * every room and recent session is marked and rebuilt as above
 * (liveflow_redis_data_lost_total, a WARN line).
 *
 * live_room_realtime. tick() folds, in one transaction, every room with at least
 * LIVEFLOW_REWARD_FLUSH_TIPS pending tips or whose oldest pending tip is
 * LIVEFLOW_REWARD_FLUSH_S old: the pending deltas are added to live_room_realtime and
 * zeroed. Both writes of a tip (recharge and its pending delta) and both writes of a fold
 * are each one transaction, so no crash loses or doubles a delta, and after a fold a room's
 * live_room_realtime equals the sums of its recharge rows.
 *
 * A record that is not a valid tip (not event_type "reward" with payload Reward, an id
 * missing or longer than 64 bytes, amount <= 0, gift_count outside 1..2^31-1, an unknown
 * gender or audience type) goes to live.reward.dlq at once.
 *
 * Several copies may run: rooms are serialized by their live_room_sync row, so two copies
 * holding tips of one room in different partitions may deadlock; MySQL then rolls one back
 * and the runtime retries it.
 */
extern const struct consumer_role reward_sync_role;

#endif
