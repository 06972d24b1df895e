/*
 * consumer_int.h: what the runtime's own files share (consumer.c: life cycle, rebalances, the
 * loop; consumer_batch.c: a batch from poll to stored offsets; consumer_apply.c: decoding,
 * applying and publishing its records; consumer_hold.c: store outages; consumer_dlq.c: dead
 * letters; consumer_metrics.c: its metrics; consumer_lanes.c: several members in one process).
 * Not for roles.
 */
#ifndef LIVEFLOW_CONSUMER_INT_H
#define LIVEFLOW_CONSUMER_INT_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "consumer.h"
#include "produce.h"
#include "settings.h"
#include "store_breaker.h"

#define MAX_ATTEMPTS   3
#define BATCH_ATTEMPTS 2 /* a whole batch, before one record at a time (consumer_apply.c) */

enum item_state {
        ITEM_PENDING, /* not yet applied */
        ITEM_APPLIED, /* applied in the open transaction; publish may be due */
        ITEM_DONE,    /* effects durable */
        ITEM_DEAD,    /* to be dead-lettered */
        ITEM_STOPPED, /* a stop or a store outage cut it short: neither done nor dead-lettered,
                         seen again */
};

enum error_class { ERROR_TRANSIENT, ERROR_PERMANENT };

struct item {
        rd_kafka_message_t *rkm;
        struct consumer_record rec;
        enum item_state state;
        bool decoded;
        bool is_replay;        /* carries replay.time: a dead letter written back */
        char trace_header[80]; /* an undecodable record's trace_id header */
        enum error_class error_class;
        int attempts;
        char error[512];
};

struct consumer {
        const struct consumer_role *role;
        const struct settings *settings; /* &lane_settings */
        int lane, lane_cnt;              /* this member is lane 1..lane_cnt of the process */
        struct settings lane_settings;   /* the process's, with this lane's names (borrowed) */
        struct kafka_prop *lane_props;   /* its kafka_props when renamed (owned; strings not) */
        char client_id[160];             /* "<client.id>.lane<N>" with several lanes */
        char instance_id[160];           /* "<LIVEFLOW_INSTANCE_ID>.lane<N>" likewise */
        void *state;
        struct role_env env;
        rd_kafka_t *rk;
        rd_kafka_t *producer;
        struct produce_ack ack; /* the roles' produce_acked() records on producer */
        struct db *db;
        struct redis_conn *redis;
        struct codec *codec;
        struct metrics *metrics;
        char group[96];
        struct item *items;
        size_t item_cnt, item_cap;
        /* apply_many / publish_many arguments, item_cap long */
        struct apply_slot *slots;
        struct consumer_record **recs;
        size_t slot_cap;
        int assigned;
        atomic_bool draining; /* read by the admin thread */
        atomic_bool joined;   /* a first assignment (maybe empty) came: read by the admin thread */
        long long last_tick_ms;
        long long collect_start_us, batch_end_us; /* the debug line's timings (monotonic) */
        /* a store outage: the batch is held (see hold()) and the breaker probes the store */
        struct store_breaker *breaker;
        bool is_outage;  /* this batch met one: stop trying its records */
        bool is_probing; /* partitions resumed after a probe; closed once a batch goes through */
        long long probe_started_ms;
        enum store_kind outage_store;
        char outage_why[256];
        /* metrics */
        struct metric *m_done, *m_dead, *m_retried, *m_batch, *m_out_of_range, *m_consumer_errors,
                *m_assigned, *m_dlq_failed, *m_freshness;
        /* per topic of the role, in role->topics order */
        struct metric **m_fetched, **m_replayed;
        struct consumer_lag *lag;
};

/* consumer.c */
long long consumer_now_ms(void);
/** @brief Waits before the next attempt; false when a stop was requested meanwhile. */
bool consumer_backoff(struct consumer *c, int attempt);
void consumer_on_error(struct consumer *c, const rd_kafka_message_t *rkm);

/* consumer_batch.c */
/** @brief Polls until the batch is full or LIVEFLOW_BATCH_WAIT_MS passed since its first
 *  record. @returns the records collected (0: idle, or a stop). */
size_t consumer_collect(struct consumer *c);
/** @brief Decode, apply, publish, dead letters, offsets and lag of the collected batch; empties
 *  it. */
void consumer_process_batch(struct consumer *c);
/** @brief Drops the collected records (they are read again: their offsets are not stored). */
void consumer_batch_clear(struct consumer *c);

/* consumer_apply.c */
/** @brief Decodes the record; an undecodable one is dead (permanent). */
void consumer_decode(struct consumer *c, struct item *it);
/** @brief The whole batch in one transaction. @returns false when it was rolled back: the
 *  caller then goes one record at a time with consumer_apply_single(). */
bool consumer_apply_batch(struct consumer *c);
/** @brief One record in its own transaction, up to MAX_ATTEMPTS attempts. */
void consumer_apply_single(struct consumer *c, struct item *it);
/** @brief The publish step of every applied record, after the commit. */
void consumer_publish_batch(struct consumer *c);

/* consumer_metrics.c */
/** @brief Registers the runtime's metrics of c's role on c->metrics. */
void consumer_register_metrics(struct consumer *c);
/** @brief Registers the fetched and replayed counters per topic of the role. @returns 0, or -1
 *  when out of memory. */
int consumer_register_topic_metrics(struct consumer *c);
/** @brief The index of topic among the role's topics (the NULL slot's when it is not one). */
size_t consumer_topic_index(const struct consumer *c, const char *topic);
/** @brief librdkafka's stats_cb: consumer_lag per assigned partition (opaque: the consumer). */
int consumer_on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque);

/* consumer_hold.c: a store outage holds the batch's partitions (see consumer_hold()) */
void consumer_step_begins(struct consumer *c);
bool consumer_outage_now(struct consumer *c);
void consumer_hold(struct consumer *c);
void consumer_put_back(struct consumer *c, rd_kafka_message_t *rkm);
void consumer_wait_for_store(struct consumer *c);

/* consumer_dlq.c */
void consumer_on_dlq_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque);
void consumer_dead_letter(struct consumer *c);

#endif
