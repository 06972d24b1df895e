/*
 * dlq.h: `liveflow-ctl dlq list|show|replay`: what sits in the .dlq topics, each record with
 * its error and decoded envelope, and the replay back to the record's dlq.topic (dry run by
 * default; progress kept as committed offsets of LIVEFLOW_CTL_REPLAY_GROUP).
 */
#ifndef LIVEFLOW_CTL_DLQ_H
#define LIVEFLOW_CTL_DLQ_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

#include "ctl.h"
#include "ctl_kafka.h"
#include "dlq_record.h"

#define DLQ_MAX_TOPICS 64

/* What `dlq list|show|replay` was asked. */
struct dlq_opts {
        const char *topics[DLQ_MAX_TOPICS]; /* .dlq names, pointing into names */
        char names[DLQ_MAX_TOPICS][256];
        int topic_cnt;
        struct dlq_filter filter;
        long long limit; /* show: records shown; replay: records replayed; -1: no limit */
        bool execute;    /* replay: act (else a dry run) */
        bool auto_mode;  /* replay: transient, older than min_age_ms, stores answering */
        bool history;    /* replay: the records before the progress; the progress stays */
        long long min_age_ms;
        double rate; /* replay: records per second; 0: as fast as acks come */
};

/* The .dlq partitions to read: their ranges and the topic names they point into. */
struct dlq_plan {
        char names[DLQ_MAX_TOPICS][256];
        struct ctlk_range *ranges;
        int64_t *lows; /* low watermark per range */
        size_t range_cnt;
};

/** @brief Partitions and watermarks of every topic of opts. @returns 0 or -1 with errstr. */
int dlq_plan_build(struct dlq_plan *p, rd_kafka_t *rk, const struct dlq_opts *opts, int timeout_ms,
                   char *errstr, size_t errstr_size);

/**
 * @brief The committed offsets of LIVEFLOW_CTL_REPLAY_GROUP for every range of the plan
 * (RD_KAFKA_OFFSET_INVALID where none). @returns NULL with errstr.
 */
rd_kafka_topic_partition_list_t *dlq_plan_progress(struct ctl *ctl, const struct dlq_plan *p,
                                                   char *errstr, size_t errstr_size);

/** @brief Frees what the plan holds. */
void dlq_plan_fini(struct dlq_plan *p);

/** @brief `dlq replay` (dlq_replay.c). */
int dlq_replay_run(struct ctl *ctl, const struct dlq_opts *opts);

/** @brief Parses the options of `dlq <which>`. @returns CTL_EXIT_OK or CTL_EXIT_USAGE. */
int dlq_opts_parse(struct dlq_opts *o, const char *which, int argc, char **argv);

/* The `dlq` table for main.c. */
extern const struct ctl_command dlq_commands[];

#endif
