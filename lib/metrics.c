/* metrics.c: series live in an append-only list read without locks; values are C11 atomics. */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

static const char *const type_names[] = {"counter", "gauge", "histogram"};

struct metric {
        _Atomic(struct metric *) next; /* next series, in registration order */
        enum metric_type type;
        char *name;
        char *help;
        char *labels; /* "" when none */
        atomic_llong value;
        atomic_bool is_removed; /* not rendered until registered again */
        /* histograms */
        double *bounds;
        size_t bound_cnt;
        atomic_ullong *buckets;   /* bound_cnt + 1 (the last is +Inf) */
        atomic_ullong sum_micros; /* sum of observations, in millionths */
        /* callback gauges: set again when the series is registered again (maybe by another
           thread, e.g. another lane taking over a partition) while a scrape reads them */
        _Atomic(double (*)(void *)) fn;
        _Atomic(void *) arg;
};

struct metrics {
        pthread_mutex_t lock; /* serializes creation only */
        _Atomic(struct metric *) head;
        struct metric *tail;
};

const double metrics_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t metrics_latency_bound_cnt = sizeof(metrics_latency_bounds) / sizeof(double);

struct metrics *metrics_new(void)
{
        struct metrics *m = calloc(1, sizeof(*m));

        if (!m)
                return NULL;
        pthread_mutex_init(&m->lock, NULL);
        atomic_init(&m->head, NULL);
        return m;
}

static void metric_free(struct metric *mt)
{
        free(mt->name);
        free(mt->help);
        free(mt->labels);
        free(mt->bounds);
        free(mt->buckets);
        free(mt);
}

void metrics_destroy(struct metrics *m)
{
        struct metric *mt, *next;

        if (!m)
                return;
        for (mt = atomic_load(&m->head); mt; mt = next) {
                next = mt->next;
                metric_free(mt);
        }
        pthread_mutex_destroy(&m->lock);
        free(m);
}

static struct metric *find(struct metrics *m, const char *name, const char *labels)
{
        for (struct metric *mt = atomic_load_explicit(&m->head, memory_order_acquire); mt;
             mt = mt->next)
                if (strcmp(mt->name, name) == 0 && strcmp(mt->labels, labels) == 0)
                        return mt;
        return NULL;
}

static bool name_has_other_type(struct metrics *m, const char *name, enum metric_type type)
{
        for (struct metric *mt = atomic_load(&m->head); mt; mt = mt->next)
                if (strcmp(mt->name, name) == 0 && mt->type != type)
                        return true;
        return false;
}

static struct metric *make(const char *name, const char *help, const char *labels,
                           enum metric_type type, const double *bounds, size_t bound_cnt)
{
        struct metric *mt = calloc(1, sizeof(*mt));

        if (!mt)
                return NULL;
        mt->type = type;
        mt->name = strdup(name);
        mt->help = strdup(help ? help : "");
        mt->labels = strdup(labels);
        if (type == METRIC_HISTOGRAM) {
                mt->bound_cnt = bound_cnt;
                mt->bounds = malloc(bound_cnt * sizeof(double) + 1);
                mt->buckets = calloc(bound_cnt + 1, sizeof(atomic_ullong));
                if (mt->bounds)
                        memcpy(mt->bounds, bounds, bound_cnt * sizeof(double));
        }
        if (!mt->name || !mt->help || !mt->labels ||
            (type == METRIC_HISTOGRAM && (!mt->bounds || !mt->buckets))) {
                metric_free(mt);
                return NULL;
        }
        return mt;
}

/* Appends at the tail so families render in registration order; readers never block. */
static struct metric *get_or_create(struct metrics *m, const char *name, const char *help,
                                    const char *labels, enum metric_type type, const double *bounds,
                                    size_t bound_cnt)
{
        struct metric *mt;

        if (!m)
                return NULL;
        labels = labels ? labels : "";
        if ((mt = find(m, name, labels))) {
                if (mt->type != type)
                        return NULL;
                atomic_store(&mt->is_removed, false); /* registered again: shown again */
                return mt;
        }
        pthread_mutex_lock(&m->lock);
        if (!(mt = find(m, name, labels)) && !name_has_other_type(m, name, type) &&
            (mt = make(name, help, labels, type, bounds, bound_cnt))) {
                if (m->tail)
                        m->tail->next = mt;
                m->tail = mt;
                if (!atomic_load(&m->head))
                        atomic_store_explicit(&m->head, mt, memory_order_release);
        }
        pthread_mutex_unlock(&m->lock);
        return mt && mt->type == type ? mt : NULL;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels)
{
        return get_or_create(m, name, help, labels, METRIC_COUNTER, NULL, 0);
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels)
{
        return get_or_create(m, name, help, labels, METRIC_GAUGE, NULL, 0);
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *bounds, size_t bound_cnt)
{
        return get_or_create(m, name, help, labels, METRIC_HISTOGRAM, bounds, bound_cnt);
}

/* arg before fn: a scrape that sees the new fn sees the new arg. */
static struct metric *set_fn(struct metric *mt, double (*fn)(void *arg), void *arg)
{
        if (mt) {
                atomic_store(&mt->arg, arg);
                atomic_store(&mt->fn, fn);
        }
        return mt;
}

struct metric *metrics_counter_fn(struct metrics *m, const char *name, const char *help,
                                  const char *labels, double (*fn)(void *arg), void *arg)
{
        return set_fn(get_or_create(m, name, help, labels, METRIC_COUNTER, NULL, 0), fn, arg);
}

void metrics_remove(struct metric *mt)
{
        if (!mt)
                return;
        atomic_store(&mt->is_removed, true);
        atomic_store_explicit(&mt->value, 0, memory_order_relaxed);
        for (size_t i = 0; mt->buckets && i <= mt->bound_cnt; i++)
                atomic_store_explicit(&mt->buckets[i], 0, memory_order_relaxed);
        atomic_store_explicit(&mt->sum_micros, 0, memory_order_relaxed);
}

struct metric *metrics_gauge_fn(struct metrics *m, const char *name, const char *help,
                                const char *labels, double (*fn)(void *arg), void *arg)
{
        return set_fn(get_or_create(m, name, help, labels, METRIC_GAUGE, NULL, 0), fn, arg);
}

void metric_add(struct metric *mt, long long delta)
{
        if (mt)
                atomic_fetch_add_explicit(&mt->value, delta, memory_order_relaxed);
}

void metric_set(struct metric *mt, long long value)
{
        if (mt)
                atomic_store_explicit(&mt->value, value, memory_order_relaxed);
}

long long metric_value(const struct metric *mt)
{
        return mt ? atomic_load_explicit(&mt->value, memory_order_relaxed) : 0;
}

void metric_observe(struct metric *mt, double value)
{
        size_t i = 0;

        if (!mt || mt->type != METRIC_HISTOGRAM)
                return;
        while (i < mt->bound_cnt && value > mt->bounds[i])
                i++;
        atomic_fetch_add_explicit(&mt->buckets[i], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&mt->sum_micros,
                                  (unsigned long long)(value > 0 ? value * 1e6 : 0),
                                  memory_order_relaxed);
}

/* A growing output buffer; a failed append leaves `failed` set. */
struct out {
        char *buf;
        size_t len, cap;
        bool failed;
};

__attribute__((format(printf, 2, 3))) static void out_printf(struct out *o, const char *fmt, ...)
{
        for (;;) {
                va_list ap;
                int n;

                if (o->failed)
                        return;
                va_start(ap, fmt);
                n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        o->failed = true;
                        return;
                }
                if ((size_t)n < o->cap - o->len) {
                        o->len += (size_t)n;
                        return;
                }
                char *nb = realloc(o->buf, o->cap * 2 + (size_t)n);

                if (!nb) {
                        o->failed = true;
                        return;
                }
                o->buf = nb;
                o->cap = o->cap * 2 + (size_t)n;
        }
}

static void render_histogram(struct out *o, const struct metric *mt)
{
        const char *sep = mt->labels[0] ? "," : "";
        unsigned long long cum = 0;

        for (size_t i = 0; i <= mt->bound_cnt; i++) {
                cum += atomic_load_explicit(&mt->buckets[i], memory_order_relaxed);
                if (i < mt->bound_cnt)
                        out_printf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", mt->name, mt->labels, sep,
                                   mt->bounds[i], cum);
                else
                        out_printf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", mt->name, mt->labels,
                                   sep, cum);
        }
        out_printf(o, "%s_sum%s%s%s %.6f\n", mt->name, mt->labels[0] ? "{" : "", mt->labels,
                   mt->labels[0] ? "}" : "", (double)atomic_load(&mt->sum_micros) / 1e6);
        out_printf(o, "%s_count%s%s%s %llu\n", mt->name, mt->labels[0] ? "{" : "", mt->labels,
                   mt->labels[0] ? "}" : "", cum);
}

static void render_family(struct out *o, struct metric *first)
{
        double (*fn)(void *arg);
        bool is_shown = false;

        for (struct metric *mt = first; mt && !is_shown; mt = mt->next)
                is_shown = strcmp(mt->name, first->name) == 0 && !atomic_load(&mt->is_removed);
        if (!is_shown)
                return; /* every series of the family was removed */
        out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", first->name, first->help, first->name,
                   type_names[first->type]);
        for (struct metric *mt = first; mt; mt = mt->next) {
                if (strcmp(mt->name, first->name) != 0 || atomic_load(&mt->is_removed))
                        continue;
                if (mt->type == METRIC_HISTOGRAM)
                        render_histogram(o, mt);
                else if ((fn = atomic_load(&mt->fn)))
                        out_printf(o, "%s%s%s%s %.17g\n", mt->name, mt->labels[0] ? "{" : "",
                                   mt->labels, mt->labels[0] ? "}" : "", fn(atomic_load(&mt->arg)));
                else
                        out_printf(o, "%s%s%s%s %lld\n", mt->name, mt->labels[0] ? "{" : "",
                                   mt->labels, mt->labels[0] ? "}" : "", metric_value(mt));
        }
}

static bool seen_before(struct metric *head, struct metric *mt)
{
        for (struct metric *p = head; p != mt; p = p->next)
                if (strcmp(p->name, mt->name) == 0)
                        return true;
        return false;
}

char *metrics_render(struct metrics *m, size_t *len)
{
        struct out o = {malloc(8192), 0, 8192, false};
        struct metric *head = atomic_load_explicit(&m->head, memory_order_acquire);

        if (!o.buf)
                return NULL;
        o.buf[0] = '\0';
        for (struct metric *mt = head; mt; mt = mt->next)
                if (!seen_before(head, mt))
                        render_family(&o, mt);
        if (o.failed) {
                free(o.buf);
                return NULL;
        }
        if (len)
                *len = o.len;
        return o.buf;
}
