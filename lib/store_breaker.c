/* store_breaker.c: open on a store outage, probe with back-off, close when records go through. */
#include "store_breaker.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"

struct store_breaker {
        atomic_int open_store; /* -1 closed, else the enum store_kind that tripped it */
        long long first_ms, max_ms, backoff_ms;
        long long opened_at_ms, probe_at_ms;
        int trips; /* since it opened */
        struct metric *m_unavailable[STORE_KIND_CNT], *m_outages[STORE_KIND_CNT];
};

const char *store_kind_name(enum store_kind store)
{
        return store == STORE_REDIS ? "redis" : "mysql";
}

struct store_breaker *store_breaker_new(struct metrics *metrics, const char *role,
                                        long long first_ms, long long max_ms)
{
        struct store_breaker *b = calloc(1, sizeof(*b));
        char l[160];

        if (!b)
                return NULL;
        atomic_init(&b->open_store, -1);
        b->first_ms = first_ms > 0 ? first_ms : 1;
        b->max_ms = max_ms > b->first_ms ? max_ms : b->first_ms;
        for (int s = 0; s < STORE_KIND_CNT; s++) {
                snprintf(l, sizeof(l), "role=\"%s\",store=\"%s\"", role, store_kind_name(s));
                b->m_unavailable[s] = metrics_gauge(
                        metrics, "liveflow_consumer_store_unavailable",
                        "1 while the role holds its partitions because the store is unavailable "
                        "(the circuit breaker is open); with several lanes, how many hold theirs",
                        l);
                b->m_outages[s] =
                        metrics_counter(metrics, "liveflow_consumer_store_outages_total",
                                        "Times the store became unavailable to the role", l);
        }
        return b;
}

void store_breaker_destroy(struct store_breaker *b)
{
        free(b);
}

void store_breaker_trip(struct store_breaker *b, enum store_kind store, const char *why,
                        int partitions)
{
        long long now = clock_mono_ms();

        if (atomic_load(&b->open_store) < 0) {
                b->opened_at_ms = now;
                b->backoff_ms = b->first_ms;
                b->trips = 1;
                atomic_store(&b->open_store, (int)store);
                metric_add(b->m_unavailable[store], 1); /* summed over the process's lanes */
                metric_add(b->m_outages[store], 1);
                log_error(NULL,
                          "%s unavailable: %s; holding %d partition(s) at their first unfinished "
                          "record (nothing goes to the DLQ) and retrying with back-off",
                          store_kind_name(store), why, partitions);
        } else {
                b->trips++;
                b->backoff_ms = b->backoff_ms * 2 < b->max_ms ? b->backoff_ms * 2 : b->max_ms;
                log_warn(NULL, "%s still unavailable after %lld s (try %d): %s",
                         store_kind_name(store), (now - b->opened_at_ms) / 1000, b->trips, why);
        }
        b->probe_at_ms = now + b->backoff_ms;
}

void store_breaker_wait_more(struct store_breaker *b, const char *why)
{
        int store = atomic_load(&b->open_store);

        if (store >= 0)
                store_breaker_trip(b, (enum store_kind)store, why, 0);
}

bool store_breaker_is_open(const struct store_breaker *b)
{
        return atomic_load(&b->open_store) >= 0;
}

enum store_kind store_breaker_store(const struct store_breaker *b)
{
        int store = atomic_load(&b->open_store);

        return store >= 0 ? (enum store_kind)store : STORE_MYSQL;
}

bool store_breaker_probe_due(const struct store_breaker *b)
{
        return store_breaker_is_open(b) && clock_mono_ms() >= b->probe_at_ms;
}

void store_breaker_close(struct store_breaker *b)
{
        int store = atomic_load(&b->open_store);

        if (store < 0)
                return;
        atomic_store(&b->open_store, -1);
        metric_add(b->m_unavailable[store], -1);
        log_info(NULL, "%s is back after %.1f s: partitions resumed",
                 store_kind_name((enum store_kind)store),
                 (double)(clock_mono_ms() - b->opened_at_ms) / 1000.0);
}

bool store_breaker_ready(const struct store_breaker *b, char *why, size_t why_size)
{
        int store = atomic_load(&b->open_store);

        if (store < 0)
                return true;
        snprintf(why, why_size, "%s unavailable: partitions held", store_kind_name(store));
        return false;
}
