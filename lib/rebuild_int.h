/*
 * rebuild_int.h: what rebuild's own files share (rebuild.c: marking and rebuilding rooms,
 * Redis that lost its data; rebuild_streams.c: the live-stream keys). Not for callers.
 */
#ifndef LIVEFLOW_REBUILD_INT_H
#define LIVEFLOW_REBUILD_INT_H

#include <stddef.h>

#include "rebuild.h"

#define ID_MAX     64  /* the VARCHAR(64) of room and anchor ids */
#define STREAM_MAX 255 /* live_streams.stream_id */
#define KEY_MAX    320 /* the longest key prefix plus STREAM_MAX */

#define EPOCH_MS(col) "CAST(UNIX_TIMESTAMP(" col ") * 1000 AS SIGNED)"

struct rebuild_sql {
        struct db_stmt *mark_room, *mark_rooms, *mark_sessions, *lock_room, *marked_sessions,
                *room_sums, *room_top, *session_sums, *session_payers, *clear_marks, *next_marked,
                *project, *live_page, *is_live, *has_room;
};

struct rebuild {
        struct db *db;
        struct redis_conn *redis;
        long long live_ttl_s, stats_ttl_s;
        struct rebuild_sql sql;
};

/** @brief Writes prefix followed by id into out (KEY_MAX bytes), truncating. */
void rebuild_key_of(char *out, const char *prefix, const char *id);

/** @brief Runs a Lua script and drops its reply. @returns 0, or -1 with errstr. */
int rebuild_redis_eval(struct rebuild *rb, const char *script, int nkeys, const char **keys,
                       int nargs, const char **args, char *errstr, size_t errstr_size);

/** @brief One step of a SCAN-family command (argv naming cursor; redis_conn_scan_page()): each
 *  key or member of the reply goes to on_key with count, until one returns -1. @returns 0, or
 *  -1 with errstr. */
int rebuild_scan_step(struct rebuild *rb, int argc, const char **argv, char cursor[32],
                      int (*on_key)(struct rebuild *, const char *, long long *, char *, size_t),
                      long long *count, char *errstr, size_t errstr_size);

#endif
