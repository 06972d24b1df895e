/* process_metrics.h: the series every liveflow process exports about itself. */
#ifndef LIVEFLOW_PROCESS_METRICS_H
#define LIVEFLOW_PROCESS_METRICS_H

struct metrics;

/**
 * @brief Registers, read from /proc at scrape time: process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
 * process_max_fds, process_start_time_seconds; liveflow_build_info{version,commit} (1); and
 * liveflow_kafka_errors_total{kind} (lib/kafka.c's error callback).
 */
void process_metrics_register(struct metrics *m);

#endif
