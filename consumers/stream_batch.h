/*
 * stream_batch.h: the stream role's batch in memory, shared by stream_batch.c (reading the
 * batch and its rows, deciding every event in batch order, publishing) and
 * stream_batch_write.c (writing what was decided). Private to the role.
 */
#ifndef LIVEFLOW_STREAM_BATCH_H
#define LIVEFLOW_STREAM_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "keyset.h"
#include "role_kit.h"
#include "stream_role.h"

/* A live_streams row in memory: as read, then as the batch leaves it. NULL strings are NULL. */
struct sb_stream {
        const char *stream_id;
        const char *key_vendor; /* live_streams is keyed by (vendor, stream_id) */
        char *db_strs;          /* the row's strings as read, one allocation (NULL: no row) */
        const char *cover_url;  /* as read: the batch does not change it */
        bool does_exist;        /* the row existed before the batch (and is locked) */
        bool found, is_changed;
        const char *anchor, *room, *vendor, *vendor_session, *status, *close_reason;
        long long session_id;                                     /* 0: NULL */
        long long started_ms, ended_ms, duration_s, close_method; /* -1: NULL */
};

/* A session the batch ended, as its session_handoff row. */
struct sb_handoff {
        long long session_id, started_ms, ended_ms, duration_s, close_method;
        const char *anchor, *room;
};

struct sb_rec {
        struct apply_slot *slot;
        struct stream_event se;
        bool is_valid, is_new;
        size_t first; /* the batch index of the first copy of this event id */
        const char *outcome;
        bool has_handoff, is_only_end; /* is_only_end: adopt_tips() on the row as it left it */
        struct sb_handoff handoff, only_end;
        bool has_notify; /* stream.live or stream.ended, on the row as this event left it */
        struct sb_handoff notify;
        const char *notify_cover, *notify_reason;
};

/* An anchor of the batch's begins and its standing. */
struct sb_anchor {
        const char *anchor_id;
        bool is_banned, is_suspended;
        long long until_ms; /* -1: NULL */
};

struct stream_batch {
        struct stream_state *st;
        struct role_batch rb; /* the shared half: the slots, their event ids, which are new */
        struct sb_rec *recs;
        struct sb_stream *streams;
        struct sb_anchor *anchors;
        const char **scratch;
        size_t n, stream_cnt, anchor_cnt, exist_cnt;
        bool is_mismatch, is_oom, needs_outcomes;
        struct db_text sql;
};

/**
 * @brief Writes what the batch decided, in one multi-row statement per table: live_events
 * (each new event with its outcome), live_streams (each row as the batch leaves it: the rows
 * that existed in one upsert, the new ones in one plain INSERT that fails on a duplicate),
 * recharge (adopt_tips of each session recorded from its end alone), session_handoff and
 * the batch's live.notify messages (one notify_batch row). @returns what MySQL said.
 */
enum db_result stream_batch_write(struct stream_batch *b, char *errstr, size_t errstr_size);

#endif
