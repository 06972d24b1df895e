/* metrics.h: a Prometheus registry whose hot path is one atomic add and no lock. */
#ifndef LIVEFLOW_METRICS_H
#define LIVEFLOW_METRICS_H

#include <stddef.h>

struct metrics;
struct metric;

/** @brief A new, empty registry; NULL when out of memory. */
struct metrics *metrics_new(void);

/** @brief Frees the registry and every metric in it; NULL is fine. */
void metrics_destroy(struct metrics *m);

/**
 * @brief Finds or creates the series `name{labels}`. labels is the Prometheus label text
 * without braces (`endpoint="tencent",status="200"`) or NULL. The returned pointer lives as
 * long as the registry; cache it. Thread-safe. NULL when out of memory or when `name` was
 * registered with another type; metric_* calls accept NULL and do nothing.
 */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels);
/** @brief As above, a histogram with the given upper bounds (ascending, +Inf implied). */
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *bounds, size_t bound_cnt);

/** @brief A gauge whose value is read from fn(arg) at scrape time (fn must be thread-safe). */
struct metric *metrics_gauge_fn(struct metrics *m, const char *name, const char *help,
                                const char *labels, double (*fn)(void *arg), void *arg);

/** @brief A counter whose value is read from fn(arg) at scrape time (e.g. CPU seconds). */
struct metric *metrics_counter_fn(struct metrics *m, const char *name, const char *help,
                                  const char *labels, double (*fn)(void *arg), void *arg);

/**
 * @brief Removes a series from the exposition (e.g. a partition this instance no longer
 * owns): it is not rendered, and its value is reset, until the same name and labels are
 * registered again, which returns the same pointer. The memory stays with the registry, so
 * pointers held elsewhere stay valid; a removed series still accepts updates (not shown).
 */
void metrics_remove(struct metric *mt);

void metric_add(struct metric *mt, long long delta);
void metric_set(struct metric *mt, long long value);
long long metric_value(const struct metric *mt);
/** @brief Records one observation (seconds for latencies) in a histogram. */
void metric_observe(struct metric *mt, double value);

/** @brief Renders the text exposition format into a malloc'd string the caller frees. */
char *metrics_render(struct metrics *m, size_t *len);

/** @brief Default latency buckets in seconds, 0.5 ms .. 10 s. */
extern const double metrics_latency_bounds[];
extern const size_t metrics_latency_bound_cnt;

#endif
