/*
 * dlq_headers.h: names of the Kafka headers of dead letters and of their replays.
 *
 * A consumer that gives up on a record writes it to <topic>.dlq with the original key, value and
 * headers plus the DLQ_* headers. `liveflow-ctl dlq replay` writes such a record back to
 * DLQ_TOPIC with the original key, value and headers, without any dlq.* header, plus the
 * REPLAY_* headers, so a consumer can tell a replay from new work (REPLAY_TIME is there exactly
 * when the record is a replay).
 */
#ifndef LIVEFLOW_DLQ_HEADERS_H
#define LIVEFLOW_DLQ_HEADERS_H

#define DLQ_SUFFIX          ".dlq"
#define DLQ_HEADER_PREFIX   "dlq."
#define DLQ_TOPIC           "dlq.topic"         /* topic the record was consumed from */
#define DLQ_PARTITION       "dlq.partition"     /* its partition, decimal */
#define DLQ_OFFSET          "dlq.offset"        /* its offset, decimal */
#define DLQ_TIMESTAMP       "dlq.timestamp"     /* when it was dead-lettered, Unix ms */
#define DLQ_GROUP           "dlq.group"         /* consumer group that gave up */
#define DLQ_ATTEMPTS        "dlq.attempts"      /* attempts made, decimal */
#define DLQ_ERROR_CLASS     "dlq.error.class"   /* "transient" or "permanent" */
#define DLQ_ERROR_MESSAGE   "dlq.error.message" /* the last error */
#define DLQ_CLASS_TRANSIENT "transient"
#define DLQ_CLASS_PERMANENT "permanent"

#define REPLAY_HEADER_PREFIX "replay."
#define REPLAY_TIME          "replay.time"      /* when it was replayed, Unix ms */
#define REPLAY_BY            "replay.by"        /* who: "liveflow-ctl user@host" or "... auto" */
#define REPLAY_DLQ_TOPIC     "replay.dlq_topic" /* the .dlq topic it came back from */
#define REPLAY_DLQ_PARTITION "replay.dlq_partition" /* its partition there, decimal */
#define REPLAY_DLQ_OFFSET    "replay.dlq_offset"    /* its offset there, decimal */

#endif
