/*
 * audience_batch.h: the audience role's set-based engine (see audience.h for what the figures
 * mean). Operations are added in record order; aud_batch_apply() reads every row they touch in
 * a few statements (ledger, streams, rooms' live sessions, visits and rooms FOR UPDATE, known
 * session viewers), applies the operations in order in memory, and writes the changed rows
 * back with one multi-row statement per table, in the caller's transaction.
 */
#ifndef LIVEFLOW_AUDIENCE_BATCH_H
#define LIVEFLOW_AUDIENCE_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"

#define AUD_ROOM_MAX     64  /* audience_visit.room_id */
#define AUD_STREAM_MAX   255 /* live_streams.stream_id */
#define AUD_AUDIENCE_MAX 128 /* an audience id or SRS client id */
#define AUD_KEY_MAX      140 /* audience_visit.audience_key: "app:" / "srs:" + the id */

/* The viewer kinds come first: a kind below AUD_CHAT concerns a visit. */
enum aud_kind {
        AUD_ENTER,     /* viewer.enter, viewer.join */
        AUD_HEARTBEAT, /* viewer.heartbeat */
        AUD_EXIT,      /* viewer.exit, viewer.leave */
        AUD_TIMEOUT,   /* the sweep: close the visit if still silent since ts_ms */
        AUD_CHAT,
        AUD_LIKE,
        AUD_FOLLOW,
        AUD_UNFOLLOW,
        AUD_SHARE,
};

/* One operation, copied by aud_batch_add(). */
struct aud_op {
        enum aud_kind kind;
        char event_id[65];                  /* "" for AUD_TIMEOUT (no ledger) */
        char audience_key[AUD_KEY_MAX + 1]; /* "app:<audience_id>" or "<vendor>:<client_id>" */
        char stream_id[AUD_STREAM_MAX + 1]; /* "" when none */
        char room_id[AUD_ROOM_MAX + 1];     /* "" when none */
        long long ts_ms;
        long long count; /* a like's count; 1 otherwise */
};

struct aud_batch;

/** @brief A reusable batch on db (borrowed). @returns NULL when out of memory. */
struct aud_batch *aud_batch_new(struct db *db);

/** @brief Frees it; NULL is fine. */
void aud_batch_destroy(struct aud_batch *b);

/** @brief Empties the operations (the dirty rooms and sessions stay until cleared). */
void aud_batch_reset(struct aud_batch *b);

/** @brief Appends a copy of op. @returns 0, or -1 when out of memory. */
int aud_batch_add(struct aud_batch *b, const struct aud_op *op);

/**
 * @brief Applies the operations in the caller's open transaction (see the file comment);
 * rooms and sessions whose figures may have changed become dirty. @returns DB_OK, or the
 * first failure (errstr says which statement): the caller rolls back.
 */
enum db_result aud_batch_apply(struct aud_batch *b, char *errstr, size_t errstr_size);

/** @brief Operations added. */
size_t aud_batch_count(const struct aud_batch *b);

/** @brief Operations of the last apply that changed something (new, not stale). */
size_t aud_batch_applied(const struct aud_batch *b);

/** @brief Visits the last apply closed. */
size_t aud_batch_closed(const struct aud_batch *b);

/** @brief How many rooms / sessions are dirty. */
size_t aud_batch_dirty_rooms(const struct aud_batch *b);
size_t aud_batch_dirty_sessions(const struct aud_batch *b);

/**
 * @brief Builds in t the query of the dirty rooms' (room_id, online), or of the dirty
 * sessions' (session_id, views, unique_viewers, peak_online, chats, likes, follows, shares).
 * @returns false when none is dirty (t untouched).
 */
bool aud_batch_rooms_query(struct aud_batch *b, struct db_text *t);
bool aud_batch_sessions_query(struct aud_batch *b, struct db_text *t);

/** @brief Forgets the dirty rooms and sessions (their figures are in Redis). */
void aud_batch_clear_dirty(struct aud_batch *b);

#endif
