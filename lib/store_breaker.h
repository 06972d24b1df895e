/*
 * store_breaker.h: a circuit breaker for the stores a consumer role writes to. When MySQL or
 * Redis itself is unavailable (not one record's fault) the runtime trips it, holds its
 * partitions, and probes the store with a growing back-off until it answers again.
 */
#ifndef LIVEFLOW_STORE_BREAKER_H
#define LIVEFLOW_STORE_BREAKER_H

#include <stdbool.h>
#include <stddef.h>

struct metrics;

enum store_kind { STORE_MYSQL, STORE_REDIS, STORE_KIND_CNT };

struct store_breaker;

/**
 * @brief A closed breaker for role; its series are liveflow_consumer_store_unavailable and
 * liveflow_consumer_store_outages_total{role,store}. Back-off starts at first_ms and doubles up
 * to max_ms. @returns NULL when out of memory.
 */
struct store_breaker *store_breaker_new(struct metrics *metrics, const char *role,
                                        long long first_ms, long long max_ms);

/** @brief Frees it; NULL is fine. */
void store_breaker_destroy(struct store_breaker *b);

/**
 * @brief The store is unavailable: opens the breaker (an ERROR line naming why) or, when it is
 * open already (a probe failed), doubles the back-off. The next probe is due after it.
 */
void store_breaker_trip(struct store_breaker *b, enum store_kind store, const char *why,
                        int partitions);

/** @brief Open: the role's partitions are held. */
bool store_breaker_is_open(const struct store_breaker *b);

/** @brief Which store tripped it (meaningful while open). */
enum store_kind store_breaker_store(const struct store_breaker *b);

/** @brief Open and the back-off since the last trip has passed: time to probe the store. */
bool store_breaker_probe_due(const struct store_breaker *b);

/** @brief A probe failed before records were tried: wait another (doubled) back-off. */
void store_breaker_wait_more(struct store_breaker *b, const char *why);

/** @brief The store answered and records went through: closes it (an INFO line). */
void store_breaker_close(struct store_breaker *b);

/** @brief For /readyz (any thread): false with why while open. */
bool store_breaker_ready(const struct store_breaker *b, char *why, size_t why_size);

/** @brief "mysql" or "redis". */
const char *store_kind_name(enum store_kind store);

#endif
