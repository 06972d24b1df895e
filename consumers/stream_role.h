/*
 * stream_role.h: what the stream role's files share: stream_lifecycle.c (open, apply() one
 * record at a time, publish()), stream_batch.c and stream_batch_publish.c (apply_many() and
 * publish_many(), a batch at once) and stream_sweep.c (tick(): the ghost sweep, Redis that lost its
 * data). Private to the role.
 *
 * Which step runs where, and why:
 *  - apply / apply_many run in the runtime's batch transaction: the ledger row, the stream
 *    row under FOR UPDATE, the anchor check of a begin that goes live, the session.end outbox
 *    row. Everything that must commit together with the offsets' eligibility.
 *  - publish / publish_many run after the commit, in the poll loop: Redis is made to say what
 *    the committed rows say (re-read under the row lock, in a short transaction of its own,
 *    so that Redis never goes back to an older state), then the session.end records of the
 *    outbox are produced and acknowledged on the runtime's producer (live.session; at least
 *    once, deduplicated downstream by event id), then the vendor's drop API (HTTP) for a
 *    forced close and the stream.close of a cut-off (produced into live.stream itself, read
 *    back by this role as any close). They run serially because each must be acknowledged
 *    before the offsets are stored: a failure is retried, and a crash before the offsets are
 *    committed repeats them, each idempotent. Last, the batch's live.notify rows (went live,
 *    ended) are relayed without waiting for the broker: the outbox row is the guarantee
 *    (lib/notify.h), so the offsets need not wait for them.
 *  - The batch path does the same work with a few statements per batch instead of several
 *    per record; any batch it cannot decide the way one record at a time would (ids MySQL's
 *    collation may match, a time out of MySQL's range, an id returned in another spelling)
 *    rolls back and goes one record at a time, which stays the oracle.
 */
#ifndef LIVEFLOW_STREAM_ROLE_H
#define LIVEFLOW_STREAM_ROLE_H

#include <stdbool.h>
#include <stddef.h>

#include "consumer.h"
#include "rebuild.h"
#include "role_kit.h"

/* consumer_record.note: this forced close ended a live session; publish() drops it at the vendor.
 */
#define NOTE_VENDOR_DROP 1
/* consumer_record.note: this begin made a banned (suspended) anchor live; publish() cuts it off. */
#define NOTE_CUTOFF_BANNED    2
#define NOTE_CUTOFF_SUSPENDED 3

/* consumer_record.note's kind (the values above) ... */
#define NOTE_KIND(note) ((note)&0xff)
/*
 * ... and a flag beside it: apply() took this event for the first time and it ended no session,
 * so the outbox holds no session.end of it and publish() need not look (a replay does look).
 */
#define NOTE_NO_HANDOFF 0x100

/* The live_events outcome of such a begin, so that a replay of it cuts off again. */
#define OUTCOME_CUTOFF_BANNED    "cutoff_banned"
#define OUTCOME_CUTOFF_SUSPENDED "cutoff_suspended"

struct stream_state {
        struct db *db;
        struct redis_conn *redis;
        struct ids *ids;
        struct vendor_api *vendor;
        struct session_handoff *handoff; /* session.end records to live.session */
        struct stream_close *closer;     /* our own stream.close records (ghosts, cut-offs) */
        struct notify *notify;           /* live.notify: went live, ended */
        struct metric *ghosts_closed, *cutoffs;
        long long live_ttl_s;
        long long ghost_silence_s; /* 0: no ghost sweep */
        long long ghost_unverified_s;
        struct metric *ghosts_alive, *ghosts_deferred, *ghosts_unverified;
        long long sweep_interval_ms;
        long long last_sweep_ms;
        struct ledger *ledger;
        struct role_gate gate; /* a batch unread, or the ledger looked up first (role_kit.h) */
        struct db_stmt *lock_row, *insert_live, *new_session, *late_begin, *insert_ended,
                *end_session, *event_outcome, *anchor_state, *touch, *adopt_anchor, *ghosts,
                *adopt_tips, *vendor_of;
        struct rebuild *rebuild; /* the Redis projection, shared with liveflow-ctl rebuild */
        struct rebuild_epoch
                redis_epoch; /* what Redis looked like last: a change means a rebuild */
        bool is_redis_lost;  /* ... and the live streams are still to be projected again */
        struct metric *redis_lost;
};

/* The stream's row as it is now, read under FOR UPDATE. */
struct stream_row {
        bool found;
        char vendor_session[129];
        char status[8];
        long long started_ms; /* -1 when NULL */
        long long ended_ms;   /* -1 when NULL */
        long long session_id;
};

/* What one event means, taken from the envelope and its payload. */
struct stream_event {
        const struct event *ev;
        const char *sequence;       /* NULL for forced closes and vendors without one */
        long long push_duration_ms; /* -1 when unknown */
        int close_method;
        bool is_begin;
        bool is_join;  /* stream.join: a broadcaster joined a room (begins it when not live) */
        bool is_leave; /* stream.leave: a broadcaster left; the room's session goes on */
        /* The stream's vendor: a stream id is unique per vendor, not globally. */
        const char *vendor;
        char vendor_buf[17];
};

/** @brief Reads one event; -1 with errstr when it is not a stream event (permanent). */
int stream_read_event(const struct event *ev, struct stream_event *se, char *errstr,
                      size_t errstr_size);

/** @brief Whether the row's vendor session (may be NULL or "") is the event's sequence. */
bool stream_same_session(const char *vendor_session, const char *sequence);

/** @brief The duration an end gives a session that started at started_ms (-1: unknown). */
long long stream_duration_s(const struct stream_event *se, long long started_ms);

/** @brief live_streams.close_reason of an end: its own reason, else its close_method's. */
const char *stream_close_reason(const struct stream_event *se);

/** @brief Whether a vendor names a streaming vendor (not liveflow, an operator or moderation). */
bool stream_is_stream_vendor(const char *vendor);

/** @brief A close the ghost sweep sent (it drops the stream at the vendor too). */
bool stream_is_ghost_close(const struct event *ev);

/**
 * @brief An end that ended a live session, an end whose begin never came, or a begin that
 * supplied the start of an ended one: the session goes to live.session.
 */
bool stream_ends_session(const struct stream_event *se, const char *outcome);

/**
 * @brief publish() after the Redis projection, for a record whose stream row says status
 * and vendor now: its session.end (when may_hand_off: the outbox may hold one), the vendor
 * drop of a forced close, the cut-off of a banned or suspended anchor. @returns 0 or -1.
 */
int stream_publish_rest(struct stream_state *st, struct consumer_record *rec, const char *status,
                        const char *vendor, bool may_hand_off, char *errstr, size_t errstr_size);

/* Streams closed per sweep at most; the next sweep takes the rest. */
#define GHOST_SWEEP_LIMIT 300

/** @brief The role's tick() (stream_sweep.c): the Redis epoch check, the live.notify outbox,
 *  and at most every sweep interval the ghost sweep. */
void stream_tick(void *state, long long now_ms);

/* stream_batch.c */
enum apply_result stream_apply_many(void *state, struct apply_slot *slots, size_t n, char *errstr,
                                    size_t errstr_size);
/* stream_batch_publish.c */
int stream_publish_many(void *state, struct consumer_record *const *recs, size_t n, char *errstr,
                        size_t errstr_size);

#endif
