/* consumer_lag.c: per-partition lag, computed at scrape time from what the runtime has read. */
#include "consumer_lag.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "metrics.h"

/* One partition ever assigned; kept (and reused) after revocation so pointers stay valid. */
struct part_lag {
        struct consumer_lag *owner;
        char topic[128];
        int partition;
        atomic_bool is_assigned;
        atomic_llong pending_ts_ms;   /* timestamp of the oldest unfinished record; 0: none */
        atomic_llong pending_offset;  /* its offset */
        atomic_llong next_offset;     /* the position: the next record to finish; -1 unknown */
        atomic_llong records;         /* librdkafka's consumer_lag; -1 unknown */
        atomic_llong behind_since_ms; /* behind with no record read yet: since when (scrape) */
        struct metric *m_seconds, *m_records;
};

struct consumer_lag {
        struct metrics *metrics;
        char role[64];
        _Atomic(rd_kafka_t *) rk;
        struct part_lag **parts;
        size_t part_cnt;
};

struct consumer_lag *consumer_lag_new(struct metrics *metrics, const char *role)
{
        struct consumer_lag *l = calloc(1, sizeof(*l));

        if (!l)
                return NULL;
        l->metrics = metrics;
        snprintf(l->role, sizeof(l->role), "%s", role);
        return l;
}

void consumer_lag_destroy(struct consumer_lag *l)
{
        if (!l)
                return;
        for (size_t i = 0; i < l->part_cnt; i++) {
                metrics_remove(l->parts[i]->m_seconds); /* their fn must not be called again */
                metrics_remove(l->parts[i]->m_records);
                free(l->parts[i]);
        }
        free(l->parts);
        free(l);
}

void consumer_lag_set_consumer(struct consumer_lag *l, rd_kafka_t *rk)
{
        if (l)
                atomic_store(&l->rk, rk);
}

/*
 * Scrape time (admin thread). The record being processed or held gives the age exactly. With
 * none, a partition at its end is caught up (0); one that is behind but whose next record has
 * not been read yet counts from when it was first seen behind (a fetch, at most a scrape late).
 */
static double lag_seconds(void *arg)
{
        struct part_lag *p = arg;
        long long now = clock_wall_ms(), ts = atomic_load(&p->pending_ts_ms);
        long long next = atomic_load(&p->next_offset), records = atomic_load(&p->records);
        int64_t lo = 0, hi = -1;
        rd_kafka_t *rk = atomic_load(&p->owner->rk);
        bool is_behind;

        if (!atomic_load(&p->is_assigned))
                return 0;
        if (ts > 0)
                return now > ts ? (double)(now - ts) / 1000.0 : 0;
        if (rk && next >= 0 &&
            rd_kafka_get_watermark_offsets(rk, p->topic, p->partition, &lo, &hi) == 0 && hi >= 0)
                is_behind = hi > next;
        else
                is_behind = records > 0;
        if (!is_behind) {
                atomic_store(&p->behind_since_ms, 0);
                return 0;
        }
        long long zero = 0;

        atomic_compare_exchange_strong(&p->behind_since_ms, &zero, now);
        ts = atomic_load(&p->behind_since_ms);
        return now > ts ? (double)(now - ts) / 1000.0 : 0;
}

static double lag_records(void *arg)
{
        struct part_lag *p = arg;
        long long records = atomic_load(&p->records);

        return records > 0 ? (double)records : 0;
}

static struct part_lag *find(struct consumer_lag *l, const char *topic, int partition)
{
        for (size_t i = 0; i < l->part_cnt; i++)
                if (l->parts[i]->partition == partition && strcmp(l->parts[i]->topic, topic) == 0)
                        return l->parts[i];
        return NULL;
}

static void show(struct consumer_lag *l, struct part_lag *p)
{
        char labels[256];

        snprintf(labels, sizeof(labels), "role=\"%s\",topic=\"%s\",partition=\"%d\"", l->role,
                 p->topic, p->partition);
        p->m_seconds = metrics_gauge_fn(
                l->metrics, "liveflow_consumer_lag_seconds",
                "Age of the oldest record not yet consumed (the record at the consumer's "
                "position); 0 when caught up",
                labels, lag_seconds, p);
        p->m_records = metrics_gauge_fn(l->metrics, "liveflow_consumer_lag_records",
                                        "Records between the consumer's position and the "
                                        "partition's end",
                                        labels, lag_records, p);
}

static struct part_lag *get(struct consumer_lag *l, const char *topic, int partition)
{
        struct part_lag *p = find(l, topic, partition), **n;

        if (p)
                return p;
        if (!(p = calloc(1, sizeof(*p))) ||
            !(n = realloc(l->parts, (l->part_cnt + 1) * sizeof(*n)))) {
                free(p);
                return NULL;
        }
        l->parts = n;
        l->parts[l->part_cnt++] = p;
        p->owner = l;
        snprintf(p->topic, sizeof(p->topic), "%s", topic);
        p->partition = partition;
        return p;
}

void consumer_lag_assign(struct consumer_lag *l, const rd_kafka_topic_partition_list_t *parts)
{
        for (int i = 0; l && i < parts->cnt; i++) {
                struct part_lag *p = get(l, parts->elems[i].topic, parts->elems[i].partition);

                if (!p)
                        continue;
                atomic_store(&p->pending_ts_ms, 0);
                atomic_store(&p->next_offset, -1);
                atomic_store(&p->records, -1);
                atomic_store(&p->behind_since_ms, 0);
                atomic_store(&p->is_assigned, true);
                show(l, p);
        }
}

void consumer_lag_revoke(struct consumer_lag *l, const rd_kafka_topic_partition_list_t *parts)
{
        for (int i = 0; l && i < parts->cnt; i++) {
                struct part_lag *p = find(l, parts->elems[i].topic, parts->elems[i].partition);

                if (!p)
                        continue;
                atomic_store(&p->is_assigned, false);
                metrics_remove(p->m_seconds);
                metrics_remove(p->m_records);
        }
}

void consumer_lag_pending(struct consumer_lag *l, const char *topic, int partition,
                          long long offset, long long timestamp_ms)
{
        struct part_lag *p = l ? find(l, topic, partition) : NULL;

        if (!p || timestamp_ms <= 0)
                return;
        if (atomic_load(&p->pending_ts_ms) == 0 || offset < atomic_load(&p->pending_offset)) {
                atomic_store(&p->pending_offset, offset);
                atomic_store(&p->pending_ts_ms, timestamp_ms);
        }
}

void consumer_lag_done(struct consumer_lag *l, const char *topic, int partition,
                       long long next_offset, long long unfinished_ts_ms, long long last_ts_ms)
{
        struct part_lag *p = l ? find(l, topic, partition) : NULL;
        rd_kafka_t *rk = l ? atomic_load(&l->rk) : NULL;
        int64_t lo = 0, hi = -1;
        long long ts = unfinished_ts_ms;

        if (!p)
                return;
        /*
         * Still behind and the next record not read yet: it is no older than the last one
         * finished, which bounds its age until the next batch reads it (milliseconds later,
         * unless the loop is stuck on another partition's batch).
         */
        if (ts <= 0 && rk && rd_kafka_get_watermark_offsets(rk, topic, partition, &lo, &hi) == 0 &&
            hi > next_offset)
                ts = last_ts_ms;
        atomic_store(&p->next_offset, next_offset);
        atomic_store(&p->pending_offset, next_offset);
        atomic_store(&p->pending_ts_ms, ts > 0 ? ts : 0);
        atomic_store(&p->behind_since_ms, 0);
}

void consumer_lag_records(struct consumer_lag *l, const char *topic, int partition,
                          long long records)
{
        struct part_lag *p = l ? find(l, topic, partition) : NULL;

        if (p && atomic_load(&p->is_assigned))
                atomic_store(&p->records, records);
}
