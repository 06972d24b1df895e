/*
 * reward_sync_role.h: what the reward-sync role's two halves share: reward_sync.c (open,
 * apply() and publish() one tip at a time, the rebuild and the live_room_realtime fold in tick())
 * and reward_sync_batch.c / reward_sync_batch_publish.c (apply_many() and publish_many(), a
 * batch at once, with reward_apply() and reward_publish() as their fallback and oracle). Private
 * to the role.
 */
#ifndef LIVEFLOW_REWARD_SYNC_ROLE_H
#define LIVEFLOW_REWARD_SYNC_ROLE_H

#include <stdbool.h>
#include <stddef.h>

#include "consumer.h"
#include "rebuild.h"
#include "role_kit.h"

#define ID_MAX  64 /* the VARCHAR(64) of recharge's id columns */
#define KEY_MAX 96 /* the longest key prefix plus ID_MAX */

/* The statements, prepared lazily by db; see sql/004_reward_sync.sql for the tables. */
struct reward_sql {
        struct db_stmt *live_session, *insert_tip, *number_tip, *set_seq, *tip_row, *flag_due,
                *fold_due, *unflag, *pending;
};

/* A tip as recharge holds it: what publish() projects. */
struct tip_row {
        char audience_id[ID_MAX + 1];
        char room_id[ID_MAX + 1];
        long long session_id; /* 0: none */
        long long amount, gift_count, room_seq;
};

/*
 * The recharge rows the last apply_many() wrote, for publish_many() to project without reading
 * them back. A record's note names its row: (gen << 32) | (index + 1); a note of another
 * generation (a per-record retry, an older batch) or 0 means "read it back from recharge".
 */
struct known_rows {
        struct tip_row *rows;
        size_t n, cap;
        unsigned long long gen;
};

struct reward_state {
        struct db *db;
        struct redis_conn *redis;
        struct reward_sql sql;
        long long flush_tips, flush_s, dedup_ttl_s, stats_ttl_s;
        struct rebuild *rebuild; /* the room figures from recharge (lib/rebuild.c) */
        bool is_degraded; /* Redis failed: publish() skips it until tick() finds it answering */
        struct rebuild_epoch
                redis_epoch;     /* what Redis looked like last: a change means a rebuild */
        bool is_redis_lost;      /* ... and its rooms are still to be marked for the rebuild */
        char batch_sha[41];      /* SHA-1 of reward_batch_script, for EVALSHA in a pipeline */
        struct known_rows known; /* what the last apply_many() wrote */
        struct role_gate gate;   /* unread, or recharge looked up first (role_kit.h) */
        struct metric *m_degraded, *m_degraded_now, *m_rebuilt, *m_folded, *m_redis_lost,
                *m_pending, *m_read_back;
};

/* A tip as its payload gives it; the strings are borrowed from the event. */
struct tip {
        const char *tip_id, *audience_id, *anchor_id, *room_id, *gift_id;
        const char *audience_gender, *anchor_gender, *audience_type;
        long long amount, gift_count, ts_ms;
};

/* The keys and arguments of reward_tip_script for one tip (see its comment for the order). */
struct tip_call {
        char k_mark[KEY_MAX], k_earn[KEY_MAX], k_count[KEY_MAX], k_top[KEY_MAX], k_room_wm[KEY_MAX];
        char k_stats[KEY_MAX], k_payers[KEY_MAX], k_session_wm[KEY_MAX];
        char ttl[24], amount[24], seq[24], gifts[24], stats_ttl[24];
        const char *keys[8];
        const char *args[6];
};

/* The projection of one tip (Lua); see reward_sync.c for its keys, arguments and replies. */
extern const char reward_tip_script[];

/* reward_tip_script for a batch of tips in one call (Lua); see reward_sync.c. */
extern const char reward_batch_script[];

/** @brief Reads and checks a tip; the strings in *t are borrowed from ev.
 *  @returns 0, or -1 with errstr when the record is not a valid tip. */
int reward_read_tip(const struct event *ev, struct tip *t, char *errstr, size_t errstr_size);

/** @brief Marks Redis as failing (why is logged once): publish() skips it until tick() finds it
 *  answering. */
void reward_redis_failed(struct reward_state *st, const char *why);

/** @brief Fills *c with reward_tip_script's keys and arguments for one tip; c's pointers point
 *  into c itself and into row (row->audience_id), which must outlive the call's use. */
void reward_tip_call_fill(const struct reward_state *st, const char *tip_id,
                          const struct tip_row *row, struct tip_call *c);

/** @brief reward_apply() for a batch (reward_sync_batch.c); the runtime falls back to
 *  reward_apply() per record on APPLY_RETRY. */
enum apply_result reward_apply_many(void *state, struct apply_slot *slots, size_t n, char *errstr,
                                    size_t errstr_size);

/** @brief reward_publish() for a batch (reward_sync_batch_publish.c); -1 makes the runtime publish
 * one tip at a time. */
int reward_publish_many(void *state, struct consumer_record *const *recs, size_t n, char *errstr,
                        size_t errstr_size);

#endif
