/*
 * snapshot_role.h: what the snapshot role's two halves share: snapshot.c (open, apply() one
 * screenshot at a time, the cover sweep) and snapshot_batch.c (apply_many(), a batch at once,
 * with snapshot_apply() as its fallback and oracle). Private to the role.
 */
#ifndef LIVEFLOW_SNAPSHOT_ROLE_H
#define LIVEFLOW_SNAPSHOT_ROLE_H

#include <stddef.h>

#include "consumer.h"

struct snapshot_state {
        struct db *db;
        long long last_sweep_ms;
        struct ledger *ledger;
        struct db_stmt *set_cover, *stream_exists, *insert_snapshot, *sweep_cover, *sweep_settle,
                *sweep_expire;
};

/* A snapshot as its Snapshot payload gives it; numbers are -1 when unknown. */
struct snapshot {
        const char *pic_url;
        const char *pic_full_url; /* NULL when absent or empty */
        long long taken_ms;
        long long width, height, file_size;
};

/** @brief A screenshot's Snapshot payload; -1 with errstr when it cannot be stored. */
int snapshot_read_event(const struct event *ev, struct snapshot *sn, char *errstr,
                        size_t errstr_size);

/* snapshot_batch.c */
enum apply_result snapshot_apply_many(void *state, struct apply_slot *slots, size_t n, char *errstr,
                                      size_t errstr_size);

#endif
