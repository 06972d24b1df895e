/* rebuild.h: what liveflow keeps in Redis, derived again from MySQL. One implementation for the
 * roles that project (stream, reward-sync), their rebuild after Redis lost its data, and
 * `liveflow-ctl rebuild`. */
#ifndef LIVEFLOW_REBUILD_H
#define LIVEFLOW_REBUILD_H

#include <stdbool.h>
#include <stddef.h>

struct db;
struct redis_conn;

/*
 * Room figures (live:room:earnings:{room}, live:room:recharge_count:{room}, live:room:top:{room})
 * and a session's tip counters (live:stats:{session} tip fields, live:stats:payers:{session})
 * are the sums of recharge. recharge.room_seq numbers a room's tips in commit order under the
 * room's live_room_sync row lock; a rebuild takes that lock, sets the figures to the sums of
 * the tips numbered 1..tip_seq, and records tip_seq in live:room:rebuilt:{room} (and
 * live:stats:rebuilt:{session}), so that a later projection of a tip at or below it adds
 * nothing. Rooms (and sessions) to rebuild are marked in live_room_rebuild and rebuilt one by
 * one, each in its own transaction.
 *
 * set:live:online and hash:anchor:status:{anchor} (fields status, stream_id, session_id,
 * started_at) and temp:live:{stream} are what live_streams says, projected per stream under
 * the row's lock (rebuild_project_stream()).
 */
struct rebuild;

/**
 * @brief Prepares the statements on db. db and redis are borrowed and must outlive it.
 * live_ttl_s is temp:live:{stream}'s TTL, stats_ttl_s live:stats:{session}'s.
 * @returns NULL when out of memory.
 */
struct rebuild *rebuild_new(struct db *db, struct redis_conn *redis, long long live_ttl_s,
                            long long stats_ttl_s);

/** @brief Frees it (the statements belong to db); NULL is fine. */
void rebuild_destroy(struct rebuild *rb);

/* ------------------------------------------------------------------ rooms */

/** @brief Marks room (and session_id, 0 for the room alone) for a rebuild, in its own statement. */
int rebuild_mark_room(struct rebuild *rb, const char *room_id, long long session_id, char *errstr,
                      size_t errstr_size);

/**
 * @brief Marks every room that ever had a tip, and the sessions whose live:stats keys may
 * still be read: those of live streams, of streams that ended in the last stats_ttl_s seconds,
 * and of tips of that time. *marked receives the rows marked (may be NULL; a session with
 * no tip is marked too, and rebuilt to zeros). @returns 0 or -1 with errstr.
 */
int rebuild_mark_all_rooms(struct rebuild *rb, unsigned long long *marked, char *errstr,
                           size_t errstr_size);

/**
 * @brief Replaces room_id (in/out, 65 bytes) with the next marked room after it in key order
 * ("" to start); *found says whether there is one. @returns 0 or -1 with errstr.
 */
int rebuild_next_marked(struct rebuild *rb, char *room_id, bool *found, char *errstr,
                        size_t errstr_size);

/**
 * @brief Makes the room's Redis figures, and those of its marked sessions, the sums of recharge,
 * in one transaction, and clears its marks. *through (may be NULL) receives the last tip number
 * covered, *sessions (may be NULL) how many sessions were rebuilt. @returns 0 or -1 with errstr
 * (MySQL or Redis failed; nothing is cleared).
 */
int rebuild_room(struct rebuild *rb, const char *room_id, long long *through, size_t *sessions,
                 char *errstr, size_t errstr_size);

/**
 * @brief Deletes the room keys (figures, TOP10, watermark) of rooms that live_room_sync does
 * not know: no tip was ever recorded for them. A room's keys are written only after its first
 * tip committed, so a room that is there when its key is seen keeps it. *deleted (may be NULL)
 * receives how many keys went. @returns 0 or -1 with errstr.
 */
int rebuild_orphan_rooms(struct rebuild *rb, long long *deleted, char *errstr, size_t errstr_size);

/**
 * @brief The room of a room-figure key (live:room:earnings:, live:room:recharge_count:,
 * live:room:top:, live:room:rebuilt:), or NULL for any other key (live:room:online: is the
 * audience role's). Points into key.
 */
const char *rebuild_room_of_key(const char *key);

/* ------------------------------------------------------------------ live streams */

/* What rebuild_project_stream() found in live_streams. */
struct rebuild_stream {
        bool found;
        char status[8]; /* "live" or "ended"; "" when not found */
        char vendor[17];
};

/**
 * @brief The stream role's projection: in one transaction, reads the stream's live_streams row
 * FOR UPDATE (another copy changing the stream waits for this projection, so Redis never goes
 * back to an older state) and makes set:live:online, hash:anchor:status:{anchor} and
 * temp:live:{stream} say what the row says. A stream with no row leaves set:live:online.
 * out (may be NULL) receives the row's status and vendor. @returns 0 or -1 with errstr.
 */
int rebuild_project_stream(struct rebuild *rb, const char *stream_id, struct rebuild_stream *out,
                           char *errstr, size_t errstr_size);

/**
 * @brief rebuild_project_stream() for n distinct streams, sorted by strcmp(), in one
 * transaction: one read of their rows under FOR UPDATE, then one MULTI/EXEC in one round trip
 * (plain commands; a script only where an ended stream's anchor hash must be read). out[i]
 * (n of them) receives stream_ids[i]'s row. @returns 0, or -1 with errstr (MySQL or Redis
 * failed, or MySQL matched a stream id other than byte for byte: project them one by one).
 */
int rebuild_project_streams(struct rebuild *rb, const char *const *stream_ids, size_t n,
                            struct rebuild_stream *out, char *errstr, size_t errstr_size);

/**
 * @brief Projects every live stream, then every stream set:live:online or a
 * hash:anchor:status:* hash calls live that live_streams does not. *projected (may be NULL)
 * receives how many streams were projected. @returns 0 or -1 with errstr.
 */
int rebuild_streams(struct rebuild *rb, long long *projected, char *errstr, size_t errstr_size);

/* ------------------------------------------------------------------ Redis that lost its data */

#define REBUILD_EPOCH_KEY "liveflow:redis:epoch"

/* What a caller saw of Redis last time: liveflow's epoch token and the server's run_id. */
struct rebuild_epoch {
        char key[64];    /* the token's key: REBUILD_EPOCH_KEY ":" scope, or REBUILD_EPOCH_KEY */
        char token[33];  /* "" at first */
        char run_id[41]; /* INFO server's run_id; "" at first */
};

/**
 * @brief Gives ep a token of its own under REBUILD_EPOCH_KEY ":" scope. Each part of Redis that
 * is rebuilt on its own (the stream role's keys, reward-sync's rooms) needs its own token: with
 * one shared token, the first role to find Redis empty would set it and every other role,
 * starting after, would adopt it and never rebuild its part. Without a scope (ep zeroed) the
 * token is REBUILD_EPOCH_KEY itself.
 */
void rebuild_epoch_init(struct rebuild_epoch *ep, const char *scope);

/**
 * @brief Tells whether Redis lost what liveflow wrote there since the last call: liveflow keeps a
 * random token in ep's key (set once, SET NX, never expiring); a Redis restarted
 * without its data, or flushed, no longer has it. A server that restarted with its data
 * reloaded (RDB/AOF) has a new run_id: what it reloaded may be older than what liveflow wrote
 * before the restart, so that counts too. *lost is set when the token is missing or differs
 * from the one seen, or the run_id changed; at the first call (ep zeroed) only when the token
 * was missing. ep is updated. @returns 0 or -1 with errstr (Redis unreachable: *lost untouched).
 */
int rebuild_epoch_check(struct redis_conn *redis, struct rebuild_epoch *ep, bool *lost,
                        char *errstr, size_t errstr_size);

/* ------------------------------------------------------------------ differences (dry runs,
 * reconcile) */

/* One difference between Redis and what MySQL says Redis should hold. */
struct rebuild_finding {
        const char *what; /* "room" (figures), "top" (TOP10 set), "online" (set:live:online),
                             "anchor" */
        const char *id;   /* the room, stream or anchor */
        char redis[384];  /* what Redis holds (cut to fit) */
        char mysql[384];  /* what MySQL says (cut to fit) */
};

/* Called once per finding; f and its strings live for the call only. */
typedef void (*rebuild_on_finding)(const struct rebuild_finding *f, void *arg);

/**
 * @brief Compares every room of live_room_sync with its Redis figures and TOP10 set (the sums
 * of the room's numbered tips; a missing key reads as 0 / empty), and reports room keys of
 * rooms it does not know ("orphan"). Read-only. *checked receives
 * the rooms compared. @returns 0 or -1 with errstr.
 */
int rebuild_diff_rooms(struct db *db, struct redis_conn *redis, rebuild_on_finding on, void *arg,
                       long long *checked, char *errstr, size_t errstr_size);

/**
 * @brief Compares set:live:online and hash:anchor:status:* with live_streams: every live stream
 * is a member and its anchor's hash names it (status, stream_id, session_id, started_at);
 * no other stream is a member, and no hash calls a stream live that is not. Read-only.
 * *checked receives the live streams compared. @returns 0 or -1 with errstr.
 */
int rebuild_diff_streams(struct db *db, struct redis_conn *redis, rebuild_on_finding on, void *arg,
                         long long *checked, char *errstr, size_t errstr_size);

#endif
