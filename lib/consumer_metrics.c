/* consumer_metrics.c: the consumer runtime's metrics: records by outcome, retries, batch time,
 * freshness, per-topic fetches and replays, and consumer lag from librdkafka's statistics. */
#include "consumer_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer_lag.h"
#include "metrics.h"

/* End-to-end freshness: tens of milliseconds when all is well, minutes behind an outage. */
static const double freshness_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                          2.5,  5,     10,   30,  60,   300, 900};

/* Fetched and replayed records per topic of the role. @returns -1 when out of memory. */
int consumer_register_topic_metrics(struct consumer *c)
{
        size_t n = 0;
        char l[256];

        while (c->role->topics[n])
                n++;
        if (!(c->m_fetched = calloc(n + 1, sizeof(*c->m_fetched))) ||
            !(c->m_replayed = calloc(n + 1, sizeof(*c->m_replayed))))
                return -1;
        for (size_t i = 0; i < n; i++) {
                snprintf(l, sizeof(l), "role=\"%s\",topic=\"%s\"", c->role->name,
                         c->role->topics[i]);
                c->m_fetched[i] =
                        metrics_counter(c->metrics, "liveflow_consumer_fetched_total",
                                        "Records fetched, by topic (replays included)", l);
                c->m_replayed[i] = metrics_counter(
                        c->metrics, "liveflow_consumer_replayed_total",
                        "Records fetched that are dead letters written back (replay.time header)",
                        l);
        }
        return 0;
}

/* The role topic's index for the per-topic metrics (its last slot, NULL, when unknown). */
size_t consumer_topic_index(const struct consumer *c, const char *topic)
{
        size_t i = 0;

        while (c->role->topics[i] && strcmp(c->role->topics[i], topic) != 0)
                i++;
        return i;
}

void consumer_register_metrics(struct consumer *c)
{
        char l[160];

        snprintf(l, sizeof(l), "role=\"%s\",outcome=\"applied\"", c->role->name);
        c->m_done = metrics_counter(c->metrics, "liveflow_consumer_records_total",
                                    "Records processed, by outcome", l);
        snprintf(l, sizeof(l), "role=\"%s\",outcome=\"dead_lettered\"", c->role->name);
        c->m_dead = metrics_counter(c->metrics, "liveflow_consumer_records_total", NULL, l);
        snprintf(l, sizeof(l), "role=\"%s\"", c->role->name);
        c->m_retried = metrics_counter(c->metrics, "liveflow_consumer_retries_total",
                                       "Attempts repeated after a transient failure", l);
        c->m_batch = metrics_histogram(c->metrics, "liveflow_consumer_batch_seconds",
                                       "Time to process one batch", l, metrics_latency_bounds,
                                       metrics_latency_bound_cnt);
        c->m_out_of_range =
                metrics_counter(c->metrics, "liveflow_consumer_offset_out_of_range_total",
                                "Offsets the broker no longer had (records lost to retention)", l);
        c->m_consumer_errors = metrics_counter(c->metrics, "liveflow_consumer_errors_total",
                                               "Consumer errors reported by librdkafka", l);
        c->m_assigned = metrics_gauge(c->metrics, "liveflow_consumer_assigned_partitions",
                                      "Partitions assigned to this instance", l);
        c->m_freshness = metrics_histogram(
                c->metrics, "liveflow_consumer_freshness_seconds",
                "From the receiver's receive_time to the record's effects applied (replays left "
                "out)",
                l, freshness_bounds, sizeof(freshness_bounds) / sizeof(freshness_bounds[0]));
        c->m_dlq_failed = metrics_counter(
                c->metrics, "liveflow_consumer_dlq_write_failures_total",
                "Dead-letter writes that failed (the partition is held until one succeeds)", l);
}

/* librdkafka statistics: consumer_lag per assigned partition. Runs on the poll thread. */
int consumer_on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
        struct consumer *c = opaque;
        json_t *root = json_loadb(json, len, 0, NULL), *topics, *t, *parts, *p;
        const char *tname, *pname;

        (void)rk;
        if (!root)
                return 0;
        topics = json_object_get(root, "topics");
        json_object_foreach(topics, tname, t)
        {
                parts = json_object_get(t, "partitions");
                json_object_foreach(parts, pname, p)
                {
                        long long lag = json_integer_value(json_object_get(p, "consumer_lag"));
                        int pid = atoi(pname);

                        if (pid < 0 || !json_is_integer(json_object_get(p, "consumer_lag")) ||
                            lag < 0)
                                continue;
                        consumer_lag_records(c->lag, tname, pid, lag);
                }
        }
        json_decref(root);
        return 0; /* librdkafka frees json */
}
