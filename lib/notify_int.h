/*
 * notify_int.h: what lib/notify.c (recording) and lib/notify_relay.c (sending: the relay, the
 * sweep, the hand-over to the mark's thread) share; not for other modules (they use notify.h).
 */
#ifndef LIVEFLOW_NOTIFY_INT_H
#define LIVEFLOW_NOTIFY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "produce.h"
#include "notify.h"

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
#define NOTIFY_STAGED_MAX                                                                          \
        (1u << 16) /* event ids waiting for the relay (4 MiB); beyond: the sweep */

enum send_state { SEND_PENDING, SEND_ACKED, SEND_FAILED };

/* A row to send: one claimed or read back (id > 0), or one a batch recorded (id 0). */
struct outbox_row {
        long long id;
        char event_id[65], kind[33], anchor[65], room[65], stream[256];
        bool has_anchor, has_room, has_stream;
        bool in_flight; /* find_in_flight() */
        char *payload;
};

/*
 * A row notify_text_row() put in a batch's statement, kept as written: sent from memory
 * once the transaction its statement ran in (txn) committed whole with every row inserted,
 * or else read back (staged) like notify_record()'s.
 */
struct mem_row {
        struct outbox_row row;
        uint64_t txn; /* 0: its statement has not run (yet) */
        bool fits;    /* every value fits its column as is (else read back) */
};

/* A row the relay produced: its report is awaited, then it is marked sent. */
struct in_flight {
        long long id; /* as far as known: the mark wants the id and the event id to match */
        uint64_t token;
        enum send_state state;
        char event_id[65], kind[33];
};

struct notify {
        struct db *db;
        struct codec *codec;
        rd_kafka_t *producer;
        struct produce_ack *ack;
        struct db_stmt *insert, *stream_row, *claim, *claim_old;
        /* the sweep is due: recorded since the last flush (without the relay), or unknown (at
           start), or more than it took last time */
        bool has_pending;
        bool is_async;  /* the relay listens to the producer's reports (else each flush waits) */
        bool has_swept; /* this life swept every unsent row once */
        long long next_sweep_ms, next_mark_ms;
        long long id_step;  /* the server's auto_increment_increment */
        char (*staged)[65]; /* event ids recorded since the last flush */
        size_t staged_n, staged_cap;
        struct mem_row *mem; /* a batch's rows recorded since the last flush, in order */
        size_t mem_n, mem_cap;
        struct notify_mark *mark;   /* the mark's thread (NULL: the relay marks on db) */
        struct in_flight *inflight; /* in token order */
        size_t inflight_n, inflight_cap;
        uint64_t token;
};

/* Remembers event_id (recorded in the open transaction) for the read-back after the commit. */
void notify_stage(struct notify *n, const char event_id[65]);

/* The batch's rows kept in memory whose statement did not run (is_all: every one) go to the
   read-back (notify_stage()). */
void notify_mem_unstage(struct notify *n, bool is_all);

/* The producer's report of the relay's record token (from inside a poll: memory only). */
void notify_on_report(void *arg, uint64_t token, rd_kafka_resp_err_t err);

/* Hands the acknowledged rows in flight to the mark (or marks them); a failed send is staged
   again. @returns 0, or -1 with errstr (they stay in flight). */
int notify_mark_sent(struct notify *n, char *errstr, size_t errstr_size);

#endif
