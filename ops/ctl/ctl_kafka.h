/*
 * ctl_kafka.h: the Kafka clients of liveflow-ctl: a reader that is no group member (assign()ed
 * partitions, committed offsets of any group by OffsetFetch), watermarks and partition counts,
 * a scan of offset ranges, and a group member that joins only to commit (the only way a
 * broker accepts a commit, the dev broker included).
 */
#ifndef LIVEFLOW_CTL_KAFKA_H
#define LIVEFLOW_CTL_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

struct ctl;

/**
 * @brief A consumer that never joins: group.id `group` only names whose committed offsets
 * rd_kafka_committed() reads (NULL: a private name). @returns NULL with errstr.
 */
rd_kafka_t *ctlk_reader_new(const struct ctl *ctl, const char *group, char *errstr,
                            size_t errstr_size);

/** @brief An idempotent acks=all producer configured as every liveflow producer is. */
rd_kafka_t *ctlk_producer_new(const struct ctl *ctl,
                              void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                              char *errstr, size_t errstr_size);

/**
 * @brief Partition count of topic in *cnt (0 when the broker does not know it).
 * @returns 0, or -1 with errstr when the broker did not answer (a connection error).
 */
int ctlk_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, int *cnt, char *errstr,
                         size_t errstr_size);

/** @brief Low and high watermark of one partition. @returns 0 or -1 with errstr. */
int ctlk_watermarks(rd_kafka_t *rk, const char *topic, int partition, int timeout_ms, int64_t *lo,
                    int64_t *hi, char *errstr, size_t errstr_size);

/**
 * @brief Fills each element's offset with the committed offset of rk's group
 * (RD_KAFKA_OFFSET_INVALID when none). @returns 0 or -1 with errstr.
 */
int ctlk_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list, int timeout_ms,
                   char *errstr, size_t errstr_size);

/* One partition's offsets to read: [start, end). */
struct ctlk_range {
        const char *topic; /* borrowed */
        int partition;
        int64_t start, end;
        bool done; /* set by the scan */
};

/* @returns 0 to go on, 1 to stop reading this record's partition, -1 to stop the scan. */
typedef int (*ctlk_record_fn)(const rd_kafka_message_t *m, struct ctlk_range *r, void *opaque);

/**
 * @brief Reads every range from start to end (each record once, in offset order per
 * partition) and calls fn for each. Ranges with start >= end are done at once. Gives up when
 * no record came for timeout_ms. @returns 0, 1 when fn stopped the scan, or -1 with errstr.
 */
int ctlk_scan(rd_kafka_t *rk, struct ctlk_range *ranges, size_t n, ctlk_record_fn fn, void *opaque,
              int timeout_ms, char *errstr, size_t errstr_size);

/* ------------------------------------------------------------------ group membership */

struct ctlk_member;

/**
 * @brief Joins `group` subscribed to `topics` (NULL-terminated), with the cooperative-sticky
 * protocol of the liveflow roles when cooperative, else range, and waits for the first
 * assignment. Nothing is fetched. @returns NULL with errstr when no assignment came in time.
 */
struct ctlk_member *ctlk_member_join(const struct ctl *ctl, const char *group,
                                     const char *const topics[], bool cooperative, char *errstr,
                                     size_t errstr_size);

/** @brief The partitions the group gave this member (owned by m). */
const rd_kafka_topic_partition_list_t *ctlk_member_assignment(const struct ctlk_member *m);

/** @brief Serves the member's callbacks (heartbeats need no call; rebalances do). */
void ctlk_member_poll(struct ctlk_member *m, int timeout_ms);

/**
 * @brief Commits the offsets of list for the group, synchronously; retries while the group
 * is rebalancing. @returns 0 or -1 with errstr (e.g. the partition's own error).
 */
int ctlk_member_commit(struct ctlk_member *m, const rd_kafka_topic_partition_list_t *list,
                       char *errstr, size_t errstr_size);

/** @brief Leaves the group and frees m; NULL is fine. */
void ctlk_member_leave(struct ctlk_member *m);

#endif
