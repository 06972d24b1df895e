/*
 * consumer_lag.h: lag per assigned partition, in records and in seconds. Seconds are the age of
 * the oldest record not yet consumed: the record at the consumer's position, whose timestamp
 * the runtime has read (it is in the batch being processed, or held by a store outage), and 0
 * when the partition is caught up. Computed when /metrics is scraped, so a batch that is stuck
 * (a locked table) still shows its lag growing. Series exist from assignment to revocation.
 */
#ifndef LIVEFLOW_CONSUMER_LAG_H
#define LIVEFLOW_CONSUMER_LAG_H

#include <librdkafka/rdkafka.h>

struct metrics;
struct consumer_lag;

/** @brief Lag series of role in metrics; NULL when out of memory. */
struct consumer_lag *consumer_lag_new(struct metrics *metrics, const char *role);

/** @brief Frees it (the registry keeps its series, removed); NULL is fine. */
void consumer_lag_destroy(struct consumer_lag *l);

/** @brief The consumer whose cached high watermarks tell when a partition is caught up. */
void consumer_lag_set_consumer(struct consumer_lag *l, rd_kafka_t *rk);

/** @brief Partitions assigned: their series appear (0 until a record says otherwise). */
void consumer_lag_assign(struct consumer_lag *l, const rd_kafka_topic_partition_list_t *parts);

/** @brief Partitions revoked: their series are removed. */
void consumer_lag_revoke(struct consumer_lag *l, const rd_kafka_topic_partition_list_t *parts);

/**
 * @brief A record of the partition was read and is not finished: when no older one is pending,
 * it is the oldest unconsumed record, and its timestamp sets the partition's lag.
 */
void consumer_lag_pending(struct consumer_lag *l, const char *topic, int partition,
                          long long offset, long long timestamp_ms);

/**
 * @brief The partition's records before next_offset are finished. unfinished_ts_ms is the
 * timestamp of the record at next_offset when the runtime holds it (0: not read yet);
 * last_ts_ms that of the last record finished, which bounds the next one's age while the
 * partition is behind and its next record not read yet.
 */
void consumer_lag_done(struct consumer_lag *l, const char *topic, int partition,
                       long long next_offset, long long unfinished_ts_ms, long long last_ts_ms);

/** @brief librdkafka's consumer_lag (records) of an assigned partition, from its statistics. */
void consumer_lag_records(struct consumer_lag *l, const char *topic, int partition,
                          long long records);

#endif
