/*
 * notify_int.h: what lib/notify.c (recording one change), lib/notify_bundle.c (a batch's
 * bundle: recording, relaying, sweeping) and lib/notify_relay.c (sending: the relay, the
 * sweep, the hand-over to the mark's thread) share; not for other modules (they use notify.h).
 */
#ifndef LIVEFLOW_NOTIFY_INT_H
#define LIVEFLOW_NOTIFY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "notify.h"
#include "payload.h"
#include "produce.h"

struct crypto_sha256;

#define NOTIFY_DELIVERY_WAIT_MS 40000 /* beyond the producer's message.timeout.ms (30 s) */
#define NOTIFY_FLUSH_ROWS       500   /* rows claimed per flush transaction: a batch's worth */
#define NOTIFY_FLUSH_ROWS_SQL   "500"
#define NOTIFY_FLUSH_ROUNDS     20    /* transactions per flush at most: the rest waits */
#define NOTIFY_SWEEP_MS         10000 /* how often the relay sweeps for rows nobody sent */
/* Acknowledged rows go to the mark's thread (one UPDATE there) at most this often, or once
   this many wait: not a statement per batch. A crash before the mark sends them again (same
   event ids). */
#define NOTIFY_MARK_MS      1000
#define NOTIFY_MARK_ROWS    4096
#define NOTIFY_MARK_WAIT_MS 5000 /* notify_flush(always) waits for the mark's thread */
/* A row this old is in nobody's flight: message.timeout.ms (30 s) has given up on it. */
#define NOTIFY_SWEEP_AGE_SQL "60"
#define NOTIFY_PAYLOAD_MAX   8192 /* the read-back's payload buffer */
/* The ids' buffers: their columns' characters (VARCHAR(64), VARCHAR(255)) at 4 bytes each in
   utf8mb4, so a multibyte id is never cut (a cut one is not UTF-8 any more). */
#define NOTIFY_ANCHOR_SIZE (64 * 4 + 1)
#define NOTIFY_ROOM_SIZE   (64 * 4 + 1)
#define NOTIFY_STREAM_SIZE (255 * 4 + 1)
#define NOTIFY_STAGED_MAX                                                                          \
        (1u << 16) /* event ids waiting for the relay (4 MiB); beyond: the sweep */

/* SEND_UNSENT: a bundle's message not produced yet, or whose send failed (produced again). */
enum send_state { SEND_PENDING, SEND_ACKED, SEND_FAILED, SEND_UNSENT };

/* A row to send: a notify_outbox row claimed or read back (id > 0), or a bundle's message. */
struct outbox_row {
        long long id;
        char event_id[65], kind[33], anchor[NOTIFY_ANCHOR_SIZE], room[NOTIFY_ROOM_SIZE],
                stream[NOTIFY_STREAM_SIZE];
        bool has_anchor, has_room, has_stream;
        bool in_flight; /* find_in_flight() */
        char *payload;
        struct payload *fields; /* payload's fields when the batch recorded it (owned), or NULL:
                                   read back, the relay parses payload */
};

/* How many messages one notify_batch row holds at most (a bigger batch writes several rows). */
#define NOTIFY_BUNDLE_MSGS      1000
#define NOTIFY_BUNDLE_CLAIM     20 /* bundles claimed per sweep transaction */
#define NOTIFY_BUNDLE_CLAIM_SQL "20"

/*
 * A bundle: the notifications of one batch, one notify_batch row (lib/notify_bundle.c). The
 * relay produces each message as its own record and marks the row sent once the broker
 * acknowledged every one; a message whose send failed is produced again by the next flush.
 */
struct bundle {
        long long id; /* notify_batch.id */
        uint64_t txn; /* the transaction its INSERT ran in (0: read back, committed) */
        struct outbox_row *msgs;
        enum send_state *state; /* per message: SEND_PENDING produced, SEND_ACKED, SEND_FAILED
                                   not produced (yet, or again) */
        size_t n;
        struct bundle *next;
};

/* A row (or a bundle's message) the relay produced: its report is awaited, then it is marked
   sent (the row; the bundle once every message is acknowledged). */
struct in_flight {
        long long id; /* as far as known: the mark wants the id and the event id to match */
        struct bundle *bundle; /* NULL: a notify_outbox row */
        size_t msg;            /* the message's place in bundle */
        uint64_t token;
        enum send_state state;
        char event_id[65], kind[33];
};

struct notify {
        struct db *db;
        struct codec *codec;       /* the lane's (borrowed), or own_codec */
        struct codec *own_codec;   /* role_env_codec(): NULL when borrowed */
        struct crypto_sha256 *sha; /* the event ids' (NULL: a context per hash) */
        rd_kafka_t *producer;
        struct produce_ack *ack;
        struct db_stmt *insert, *insert_bundle, *stream_row, *claim, *claim_old;
        /* the sweep is due: recorded since the last flush (without the relay), or unknown (at
           start), or more than it took last time */
        bool has_pending;
        bool is_async;  /* the relay listens to the producer's reports (else each flush waits) */
        bool has_swept; /* this life swept every unsent row once */
        long long next_sweep_ms, next_mark_ms;
        char (*staged)[65]; /* event ids recorded since the last flush */
        size_t staged_n, staged_cap;
        struct outbox_row *building; /* notify_text_row()'s messages, for notify_text_exec() */
        size_t building_n, building_cap;
        struct bundle *recorded; /* bundles inserted, not produced yet (in order; tail) */
        struct bundle **recorded_tail;
        struct bundle *sending; /* bundles produced, not every message acknowledged yet */
        long long *unread;      /* ids of bundles to read back (their commit is not known) */
        size_t unread_n, unread_cap;
        struct notify_mark *mark;   /* the mark's thread (NULL: the relay marks on db) */
        struct in_flight *inflight; /* in token order */
        size_t inflight_n, inflight_cap;
        uint64_t token;
};

/*
 * What a read of outbox messages returns, in this order: an id (a row's or a bundle's), event_id,
 * kind, anchor_id, room_id, stream_id, payload; notify_row_cols_init() points cols at the buffers
 * and returns them.
 */
struct notify_row_cols {
        char event_id[65], kind[33], anchor[NOTIFY_ANCHOR_SIZE], room[NOTIFY_ROOM_SIZE];
        char stream[NOTIFY_STREAM_SIZE], payload[NOTIFY_PAYLOAD_MAX];
        struct db_col cols[7];
};

struct db_col *notify_row_cols_init(struct notify_row_cols *rc);

/* cols[1..6] of such a read into r (not its id); its payload strdup()'d, "{}" for NULL.
   @returns -1 when out of memory (r->payload is then NULL). */
int notify_row_read(const struct db_col *cols, struct outbox_row *r);

/* Remembers event_id (recorded in the open transaction) for the read-back after the commit. */
void notify_stage(struct notify *n, const char event_id[65]);

/* Frees a bundle and its messages; NULL is fine. */
void notify_bundle_free(struct bundle *b);

/* Frees every bundle this instance holds and what notify_text_row() kept. */
void notify_bundles_fini(struct notify *n);

/* Produces (without waiting) the bundles whose transaction committed, reads back those whose
   commit is not known, and produces again the failed messages of bundles in flight. */
int notify_relay_bundles(struct notify *n, char *errstr, size_t errstr_size);

/* Hands the bundles whose every message is acknowledged to the mark. @returns -1 with errstr
   (they stay). */
int notify_mark_bundles(struct notify *n, char *errstr, size_t errstr_size);

/* The sweep of notify_batch: bundles nobody sent (is_old: only those older than any send in
   flight), claimed FOR UPDATE SKIP LOCKED, sent and marked. *more: a full claim was seen. */
int notify_sweep_bundles(struct notify *n, bool is_old, bool *more, char *errstr,
                         size_t errstr_size);

/* Whether the bundle id is this instance's (recorded, to be read back, or in flight). */
bool notify_bundle_is_ours(const struct notify *n, long long id);

/* m's event id and payload text (malloc'd, lib/notify_payload.h), or NULL when out of memory;
   fields (may be NULL) receives the payload's fields (the caller's: payload_destroy()). */
char *notify_encode_msg(struct notify *n, const struct notify_msg *m, char event_id[65],
                        struct payload **fields);

/* The record of one row or message into pm (its strings point into r and trace_id). */
int notify_encode_row(struct notify *n, const struct outbox_row *r, struct produce_msg *pm,
                      char trace_id[33], char *errstr, size_t errstr_size);

/* Appends an in-flight entry for r (bundle NULL for a notify_outbox row). @returns -1 OOM. */
int notify_add_in_flight(struct notify *n, const struct outbox_row *r, struct bundle *bundle,
                         size_t msg, uint64_t token);

/* The producer's report of the relay's record token (from inside a poll: memory only). */
void notify_on_report(void *arg, uint64_t token, rd_kafka_resp_err_t err);

/* Hands the acknowledged rows in flight to the mark (or marks them); a failed send is staged
   again. @returns 0, or -1 with errstr (they stay in flight). */
int notify_mark_sent(struct notify *n, char *errstr, size_t errstr_size);

#endif
