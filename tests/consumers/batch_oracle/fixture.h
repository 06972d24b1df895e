/*
 * fixture.h: what test_batch_oracle.c shares with its parts (stream_snapshot.c, audit.c): the
 * inputs and batches, the two paths (a side each: its own database and Redis) and the comparison of
 * what they wrote.
 */
#ifndef LIVEFLOW_TEST_CONSUMERS_BATCH_ORACLE_FIXTURE_H
#define LIVEFLOW_TEST_CONSUMERS_BATCH_ORACLE_FIXTURE_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <mysql.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "audit.h"
#include "codec.h"
#include "consumer.h"
#include "crypto.h"
#include "db.h"
#include "kafka.h"
#include "metrics.h"
#include "other.h"
#include "produce.h"
#include "record.h"
#include "redis_conn.h"
#include "settings.h"
#include "snapshot.h"
#include "stream_lifecycle.h"
#include "support.h"

#define T0_MS    1700000000000LL
#define MAX_RECS 64

/* One input record before it is encoded. */
struct input {
        const char *event_key; /* the event id is its sha256: equal keys are one event */
        const char *event_type, *payload_name, *stream_id, *raw;
        json_t *payload; /* owned */
        long long event_time_ms;
        const char *anchor_id, *room_id;
};

/* A decoded batch, as the runtime hands it to a role. */
struct batch {
        struct consumer_record recs[MAX_RECS];
        struct apply_slot slots[MAX_RECS];
        char errors[MAX_RECS][512];
        size_t n;
};

/* One path's database, Redis database, producer and role. */
struct side {
        char url[512];
        struct db *db;
        MYSQL *mysql;
        struct redis_conn *redis;
        rd_kafka_t *producer;
        struct produce_ack ack;
        struct metrics *metrics;
        void *state;
        bool took_fast_path;
};

extern struct codec *codec;
extern struct settings settings;
void decode_into(struct consumer_record *rec, const struct input *in, long long offset);
/*
 * The batch: every input once, some twice (a redelivery with a later offset), in an order
 * shuffled by seed.
 */
void make_batch(struct batch *b, const struct input *in, size_t n, unsigned seed);
void free_batch(struct batch *b);
/*
 * A side on a fresh database seeded with the seed statements (NULL-terminated, may be NULL),
 * and Redis database redis_db, emptied first (0: the fixture's, left alone: the role does not
 * use Redis). Tests run in parallel: each that uses Redis names databases of its own.
 */
void open_side(struct side *s, const struct consumer_role *role, const char *const *seed,
               int redis_db);
void close_side(struct side *s, const struct consumer_role *role);
/* The per-record path: a transaction per record, as the runtime's one-at-a-time path. */
void apply_each(struct side *s, const struct consumer_role *role, struct batch *b,
                enum apply_result *results);
/* The batch path: one transaction; when apply_many() declines, a rollback and apply_each(). */
void apply_batch(struct side *s, const struct consumer_role *role, struct batch *b,
                 enum apply_result *results);
/* publish() of every applied record that asked for it, in batch order. */
void publish_each(struct side *s, const struct consumer_role *role, struct batch *b,
                  const enum apply_result *results);
/* publish_many() of the same records, as the runtime calls it (publish() each when it fails). */
void publish_batch(struct side *s, const struct consumer_role *role, struct batch *b,
                   const enum apply_result *results);
void expect_same_redis(struct side *a, struct side *b);
/* Every row of a query, "|"-joined columns and one line per row. */
char *dump(MYSQL *mysql, const char *sql);
void expect_same_tables(struct side *a, struct side *b, const char *const *queries);
/*
 * Runs in through both paths (shuffled by seed, with duplicates) and compares the results of
 * every record and the tables. @returns whether the batch path took its fast path.
 */
bool run_oracle(const struct consumer_role *role, const struct input *in, size_t n, unsigned seed,
                const char *const *seed_sql, const char *const *queries, int redis_db);
void free_inputs(struct input *in, size_t n);

/* A batch of a run in turns: the inputs it holds, and the batch side's gate counters after it. */
struct turn {
        const size_t *idx;
        size_t n;
        long long ways[3]; /* batches that went unread, read_first, conflict so far */
};

/** @brief The batch side's liveflow_<role>_batches_total{way="way"}, 0 when absent. */
long long gate_count(struct side *s, const char *role_name, const char *way);

/*
 * The turns' batches in order through both paths (each shuffled, with duplicates), each
 * expected to take the set-based path; after each, the results, the gate's counters and the
 * tables compared.
 */
void run_turns(const struct consumer_role *role, const struct input *in, const struct turn *turns,
               size_t turn_cnt, const char *const *seed_sql, const char *const *queries);

#endif
