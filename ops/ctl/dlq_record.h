/*
 * dlq_record.h: one dead-lettered record read back: its dlq.* headers parsed, the filters of
 * `dlq list|show|replay` applied to it, and its JSON form (headers, the error, the decoded
 * envelope).
 */
#ifndef LIVEFLOW_CTL_DLQ_RECORD_H
#define LIVEFLOW_CTL_DLQ_RECORD_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>

struct codec;

struct dlq_record {
        const rd_kafka_message_t *m; /* borrowed */
        char dlq_topic[256];         /* where it came from ("" when the header is missing) */
        long long source_partition, source_offset; /* -1 when missing */
        long long dead_at_ms; /* dlq.timestamp, else the record's own timestamp */
        char group[256];
        char error_class[32];
        char error_message[1024];
        long long attempts;
        char event_type[128];
};

/* What selects records; a field left NULL / -1 selects everything. */
struct dlq_filter {
        const char *group;
        const char *error_class;
        const char *key;
        const char *event_type;
        long long since_ms, until_ms; /* on dead_at_ms; -1: open */
        int partition;                /* of the .dlq topic; -1: every one */
        long long offset;             /* with partition: that one record; -1: every one */
};

/** @brief A filter selecting everything. */
void dlq_filter_init(struct dlq_filter *f);

/** @brief Reads m's headers into r. */
void dlq_record_parse(struct dlq_record *r, const rd_kafka_message_t *m);

/** @brief Whether r passes f (every field but until_ms, which the caller treats as a stop). */
bool dlq_filter_match(const struct dlq_filter *f, const struct dlq_record *r);

/**
 * @brief r as JSON: where it is, key, every header, the error, the source, and the value
 * decoded by codec as "envelope" (or "decode_error" saying why not).
 */
json_t *dlq_record_json(const struct dlq_record *r, struct codec *codec);

#endif
