/*
 * audit_batch.h: what the three files of the audit role's set-based apply share: reading and
 * locking the batch (audit_batch.c), deciding it in memory (audit_batch_decide.c) and writing
 * it (audit_batch_write.c). Private to the role.
 */
#ifndef LIVEFLOW_AUDIT_BATCH_H
#define LIVEFLOW_AUDIT_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit_role.h"
#include "db.h"
#include "keyset.h"

#define AUDIT_NO_ANCHOR SIZE_MAX

struct batch_verdict {
        struct apply_slot *slot;
        struct verdict v;
        char anchor[65];
        bool is_valid, is_new;
        size_t anchor_ix; /* into batch.anchors, AUDIT_NO_ANCHOR without one */
        struct decision d;
        int close_wanted;     /* a punishment in force: its close_method, the stream found after */
        long long decided_ms; /* its log row's created_at, as the insert returned it */
};

/* A distinct anchor of the batch: its row as the verdicts so far leave it. */
struct batch_anchor {
        const char *id; /* a batch_verdict's anchor */
        struct anchor_row row;
        bool does_exist;    /* its row existed when the batch looked (read_known()) */
        bool is_locked;     /* its row exists (and is locked); else the batch inserts it */
        bool is_changed;    /* the batch's verdicts changed its row */
        long long warnings; /* added to warning_count */
        long long *warns;   /* event times of its warnings (severity warn), sorted */
        size_t nw, cap;
        long long window_ms;
        long long version_ms; /* updated_at: as locked, then as the write returned it */
};

/* A live stream of the batch's streams or anchors (live_streams, status live). */
struct live_row {
        char *stream_id, *vendor, *anchor_id; /* anchor_id may be NULL */
        long long started_ms;                 /* LLONG_MIN when NULL: last in DESC order */
};

struct batch {
        struct audit_state *st;
        struct apply_slot *slots; /* the runtime's, n of them */
        bool is_unread; /* every first copy taken for new, live_audit_logs not looked up */
        struct live_row *live;
        size_t live_cnt, live_cap;
        struct batch_verdict *bv;
        struct batch_anchor *anchors; /* sorted by id */
        size_t n, anchor_cnt;
        struct keyset ids, anchor_ids;
        struct keyset streams; /* stream ids of the verdicts without an anchor in the envelope */
        bool is_mismatch;
        size_t returned; /* rows a write's RETURNING gave back */
        struct db_text sql;
        struct audit_steps steps;
};

/** @brief errstr = why, and DB_RETRY: the batch goes to audit_apply() one verdict at a time. */
enum db_result audit_batch_fall_back(const char *why, char *errstr, size_t errstr_size);

/** @brief The batch's anchor of that id (byte for byte), or NULL. */
struct batch_anchor *audit_batch_find_anchor(const struct batch *b, const char *id);

/** @brief Whether FROM_UNIXTIME(ms / 1000) stores the time. */
bool audit_batch_time_storable(long long ms);

/** @brief Appends ms as FROM_UNIXTIME(ms / 1000), or NULL when negative. */
void audit_batch_add_ms(struct db_text *t, long long ms);

/**
 * @brief Decides every new verdict in batch order as audit_apply() would, against the rows
 * read and locked (the warnings and live streams in memory), and leaves each anchor's row
 * as its last verdict leaves it.
 */
enum db_result audit_batch_decide_all(struct batch *b, char *errstr, size_t errstr_size);

/**
 * @brief The live stream each punishment in force closes (audit.c's live_stream statement
 * over the rows audit_batch_load_live() read), once every verdict is decided.
 */
enum db_result audit_batch_find_closes(struct batch *b, char *errstr, size_t errstr_size);

/**
 * @brief Writes what the batch decided: the log rows, the anchors rows, the notifications
 * (one statement each), and logs each verdict.
 */
enum db_result audit_batch_write(struct batch *b, char *errstr, size_t errstr_size);

#endif
