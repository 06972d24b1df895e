/*
 * rebuild_audience.h: the audience role's Redis keys derived again from MySQL, shared by the
 * audience role (after Redis lost its data, and its hot ranking) and `liveflow-ctl rebuild
 * redis`.
 *
 * What is rebuilt, per room and per session whose live:stats key may still be read (streams
 * live, or ended within stats_ttl_s):
 *  - live:room:online:{room}: the room's open visits (audience_visit, is_open = 1). Exact.
 *  - live:stats:{session} fields uv (the session's audience_session_viewer rows: exact), views,
 *    chats, likes, follows, shares (live_statistics' counters, each event counted once in the
 *    transaction that records its id: exact; the single interactions are not kept).
 *  - peak_online: live_statistics.peak_online, raised to the room's online count while the
 *    session is live: the role's own figure (the room's online count at its highest while an
 *    event of the session raised it, in the order the events were applied), so a rebuild
 *    restores what the role projected rather than a figure of its own.
 * MySQL's own counters (audience_room.online, live_statistics.unique_viewers and peak_online)
 * are set to the derived values when they differ, so that the role's later projections, which
 * read them, agree with the rebuild.
 *
 * Safe while the role runs: a room is rebuilt in one transaction that first locks its
 * audience_room row, then its sessions' live_statistics rows (the order the role takes them),
 * reads committed rows (READ COMMITTED) and writes Redis before it commits. A batch of the
 * role that changes the room waits for the lock and projects its absolute values after its own
 * commit, after the rebuild's; one that committed before is in what the rebuild reads. Redis
 * gets absolute values only, so nothing is counted twice.
 *
 * live:rank:hot: rebuild_audience_rank(), the role's own refresh.
 */
#ifndef LIVEFLOW_REBUILD_AUDIENCE_H
#define LIVEFLOW_REBUILD_AUDIENCE_H

#include <stdbool.h>
#include <stddef.h>

#include "rebuild.h"

struct db;
struct redis_conn;
struct rebuild_audience;

/* What rebuilding did so far (added to by each call). */
struct rebuild_audience_count {
        long long rooms;          /* rooms whose keys were rebuilt */
        long long sessions;       /* live:stats hashes rebuilt */
        long long keys_deleted;   /* live:room:online keys of rooms audience_room does not know */
        long long mysql_counters; /* MySQL counters that differed from their rows and were set */
};

/* Where a rebuild of every room stands between calls of rebuild_audience_step(). */
struct rebuild_audience_cursor {
        int phase;      /* 0 rooms from MySQL, 1 Redis keys, 2 done */
        char after[65]; /* phase 0: the last room rebuilt */
        char scan[32];  /* phase 1: the SCAN cursor */
};

/**
 * @brief Prepares the statements on db. db and redis are borrowed and must outlive it.
 * stats_ttl_s is live:stats:{session}'s TTL (LIVEFLOW_REWARD_STATS_TTL_S).
 * @returns NULL when out of memory.
 */
struct rebuild_audience *rebuild_audience_new(struct db *db, struct redis_conn *redis,
                                              long long stats_ttl_s);

/** @brief Frees it (the statements belong to db); NULL is fine. */
void rebuild_audience_destroy(struct rebuild_audience *ra);

/** @brief Starts cur at the beginning of a rebuild of every room. */
void rebuild_audience_cursor_init(struct rebuild_audience_cursor *cur);

/**
 * @brief Rebuilds up to max_rooms rooms of a rebuild of every room: the rooms with viewers
 * online and those of streams live or ended within stats_ttl_s, then every room a
 * live:room:online key names. Each room's online key and its sessions' live:stats audience
 * fields are rebuilt in one transaction (see the file comment); the key of a room
 * audience_room does not know is deleted. cur (from rebuild_audience_cursor_init()) moves on; *done
 * is set when nothing is left. c (may be NULL) is added to. @returns 0 or -1 with errstr (cur stays
 * where it was: call again).
 */
int rebuild_audience_step(struct rebuild_audience *ra, struct rebuild_audience_cursor *cur,
                          size_t max_rooms, bool *done, struct rebuild_audience_count *c,
                          char *errstr, size_t errstr_size);

/**
 * @brief The audience role's live:rank:hot refresh: the size hottest rooms live now,
 * heat = online + 0.2 chats + 0.05 likes + 2 follows + shares + tips / 100, interactions of
 * the minutes overlapping the last interval_s, tips (minor units) of the last interval_s; built
 * under live:rank:hot:next and renamed over the old one (deleted when no room is live).
 * *ranked (may be NULL) receives how many rooms it holds. @returns 0 or -1 with errstr.
 */
int rebuild_audience_rank(struct db *db, struct redis_conn *redis, long long interval_s,
                          long long size, long long *ranked, char *errstr, size_t errstr_size);

/**
 * @brief Compares the audience keys with what rebuild_audience_step() would write, read-only:
 * what "viewers" (live:room:online:{room}), "audience" (a live:stats:{session}'s audience
 * fields; a field MySQL holds as NULL is not compared) and "rank" (live:rank:hot missing while
 * rooms are live; its scores are a moving window and are not compared). A missing
 * live:room:online key reads as 0. *checked receives the rooms compared.
 * @returns 0 or -1 with errstr.
 */
int rebuild_diff_audience(struct db *db, struct redis_conn *redis, long long stats_ttl_s,
                          rebuild_on_finding on, void *arg, long long *checked, char *errstr,
                          size_t errstr_size);

#endif
