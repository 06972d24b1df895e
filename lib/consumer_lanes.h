/*
 * consumer_lanes.h: several members of a role's group in one process (LIVEFLOW_CONSUMER_LANES),
 * as Kafka Streams' num.stream.threads: each lane is a complete consumer (consumer.h) with its
 * own Kafka consumer and producer, MySQL and Redis connections and role state, on its own
 * thread. The group splits the partitions between them as between processes. What stays once
 * per process: the metrics registry (each series summed over the lanes), readiness, the stop.
 */
#ifndef LIVEFLOW_CONSUMER_LANES_H
#define LIVEFLOW_CONSUMER_LANES_H

#include <stdbool.h>
#include <stddef.h>

struct consumer_role;
struct metrics;
struct settings;
struct consumer_lanes;

/**
 * @brief Connects s->consumer_lanes lanes of role, one after the other on the calling thread
 * (client libraries initialise once, before any lane thread runs). s and metrics are borrowed
 * and must outlive the lanes. @returns NULL with errstr naming the lane and what failed.
 */
struct consumer_lanes *consumer_lanes_new(const struct consumer_role *role,
                                          const struct settings *s, struct metrics *metrics,
                                          char *errstr, size_t errstr_size);

/**
 * @brief Runs every lane on its own thread until a stop is requested (signals.h); then each
 * lane finishes its batch, commits and leaves the group (consumer_drain(), drain_timeout_ms),
 * all at once. SIGTERM and SIGINT are taken by the calling thread, which waits here.
 * @returns 0 when every lane drained cleanly, -1 otherwise (or when a thread could not start:
 * the stop is then requested for the others).
 */
int consumer_lanes_run(struct consumer_lanes *ls, int drain_timeout_ms);

/**
 * @brief For /readyz (admin_ready_fn; any thread): ready when every lane is; otherwise why
 * names the first lane that is not ("lane 2: joining group liveflow.stream").
 */
bool consumer_lanes_ready(void *ls, char *why, size_t why_size);

/** @brief Frees every lane (after consumer_lanes_run() returned, or instead of it); NULL is
 *  fine. */
void consumer_lanes_destroy(struct consumer_lanes *ls);

#endif
