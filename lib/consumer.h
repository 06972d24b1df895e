/* consumer.h: the runtime every liveflow consumer role runs on (batches, retries, DLQ, drain). */
#ifndef LIVEFLOW_CONSUMER_H
#define LIVEFLOW_CONSUMER_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#include "codec.h"

struct db;
struct produce_ack;
struct redis_conn;
struct metrics;
struct settings;

/* What a role's apply() says about one record. */
enum apply_result {
        APPLY_DONE,      /* effects written in the open transaction (or already there) */
        APPLY_RETRY,     /* transient: the store is unreachable, a deadlock, a lock wait */
        APPLY_PERMANENT, /* the record can never succeed: to the dead-letter topic at once */
};

/* One Kafka record as a role sees it. */
struct consumer_record {
        const char *topic;
        int partition;
        long long offset;
        long long timestamp_ms; /* the Kafka record timestamp */
        const char *trace_id;   /* from the trace_id header, else the envelope; never NULL */
        struct event ev;        /* the decoded envelope */
        bool publish;           /* set by apply(): run publish() after the commit */
        long long note;         /* free for the role: carried from apply() to publish() */
};

/* One record of a set-based apply (see consumer_role.apply_many). */
struct apply_slot {
        struct consumer_record *rec;
        enum apply_result result; /* set by apply_many(): APPLY_DONE or APPLY_PERMANENT */
        char *error;              /* apply_many() writes why a record is APPLY_PERMANENT */
        size_t error_size;
};

/* What a role gets to work with; all owned by the runtime. */
struct role_env {
        const struct settings *settings;
        struct db *db;
        struct redis_conn *redis;
        struct metrics *metrics;
        rd_kafka_t *producer;    /* idempotent producer (hand-offs, DLQ) */
        struct produce_ack *ack; /* produce_acked() on producer (produce.h) */
        const char *role;
        int lane; /* this group member's number in the process, 1..LIVEFLOW_CONSUMER_LANES; state
                     a role keeps per process (an id generator's worker bits) tells lanes apart
                     with it */
        struct codec *codec; /* the lane's (its decode; encodes in the lane's thread may share it);
                                NULL: none to share */
};

/*
 * A consumer role: a handler on the shared runtime. apply() runs inside the batch's MySQL
 * transaction and must be idempotent (keyed by the event); publish() runs after the commit
 * for records whose apply() set rec->publish, and must be idempotent too (it may run again
 * after a crash between commit and offset commit).
 */
struct consumer_role {
        const char *name;          /* group liveflow.<name> */
        const char *const *topics; /* NULL-terminated */
        int (*open)(const struct role_env *env, void **state, char *errstr, size_t errstr_size);
        enum apply_result (*apply)(void *state, struct consumer_record *rec, char *errstr,
                                   size_t errstr_size);
        /* @returns 0, or -1 (transient, retried) with errstr. NULL when the role has none. */
        int (*publish)(void *state, struct consumer_record *rec, char *errstr, size_t errstr_size);
        /*
         * Optional set-based fast path, for throughput: applies every record of the batch with
         * a few statements in the batch's transaction (no savepoint per record), with the same
         * effects as apply() on each record in turn. It sets each slot's result: APPLY_DONE, or
         * APPLY_PERMANENT for a record refused before anything was written for it. It
         * @returns APPLY_DONE when every slot is set; anything else (a transient failure, or a
         * failure it cannot pin on one record) rolls the batch back, and the runtime applies
         * the records one at a time with apply(), which sorts them out.
         */
        enum apply_result (*apply_many)(void *state, struct apply_slot *slots, size_t n,
                                        char *errstr, size_t errstr_size);
        /*
         * Optional: publish() for n records at once (after the commit). @returns 0 when every
         * record is published, or -1 with errstr: the runtime then runs publish() on each
         * record, so publish_many() may have done any part of the work.
         */
        int (*publish_many)(void *state, struct consumer_record *const *recs, size_t n,
                            char *errstr, size_t errstr_size);
        /* Called about once a second between batches (sweeps, periodic flushes); may be NULL. */
        void (*tick)(void *state, long long now_ms);
        void (*close)(void *state);
};

/**
 * @brief The lane's codec (env->codec) for a role's encodes in the lane's thread, or, when the
 * caller gave none (a test's role_env), a new one that *owned keeps for codec_destroy() (NULL when
 * borrowed): a codec_new() parses the schema and plans its writer, ~13 M instructions.
 * @returns NULL with errstr.
 */
struct codec *role_env_codec(const struct role_env *env, struct codec **owned, char *errstr,
                             size_t errstr_size);

/**
 * @brief The INFO line of a record a role applied: "<event_type> key=value ... topic=<topic>
 * partition=<partition> offset=<offset>", pairs a NULL-terminated list of keys and values (a
 * NULL value is written "-"). Built by appending, not printf: a batch writes one per record.
 */
void consumer_log_applied(const struct consumer_record *rec, const char *const pairs[]);

struct consumer;

/**
 * @brief Connects MySQL, Redis and Kafka, opens the role and joins group liveflow.<role> as
 * lane `lane` (1..lane_cnt) of the process: with several lanes its client.id and
 * group.instance.id end in ".lane<N>". s and metrics are borrowed and must outlive it.
 * @returns NULL with errstr naming what failed (e.g. "mysql 127.0.0.1:3306: ...").
 */
struct consumer *consumer_new(const struct consumer_role *role, const struct settings *s, int lane,
                              int lane_cnt, struct metrics *metrics, char *errstr,
                              size_t errstr_size);

/** @brief Processes batches until a stop is requested; returns after the current batch. */
void consumer_run(struct consumer *c);

/**
 * @brief The drain's first beat, after consumer_run() returned: commits the stored offsets
 * now, while the member still belongs to a stable group. Several members of one process
 * (consumer_lanes.h) all commit before any of them leaves. @returns 0, or -1 (logged; the
 * drain commits again).
 */
int consumer_commit(struct consumer *c);

/**
 * @brief Drain: commits the stored offsets, leaves the group, flushes the producer.
 * @returns 0 when everything was committed and delivered, -1 otherwise.
 */
int consumer_drain(struct consumer *c, int timeout_ms);

/** @brief Frees everything; NULL is fine. */
void consumer_destroy(struct consumer *c);

/** @brief For /readyz: joined its group (a first assignment came, maybe empty) and not draining. */
bool consumer_is_ready(void *c, char *why, size_t why_size);

#endif
