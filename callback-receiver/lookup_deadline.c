/*
 * lookup_deadline.c: see lookup_deadline.h. A job is shared by the asking thread and a worker
 * and freed by whichever of the two lets go of it last, so a caller that gave up at its
 * deadline never waits for the worker.
 */
#include "lookup_deadline.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

struct job {
        struct job *next;
        char *anchor_id;
        char trace_id[80];
        struct anchor_record record;
        enum anchor_lookup_result result;
        bool is_done;
        int refs; /* the caller (or the timer list) and the worker; under ld->lock */
        /* lookup_deadline_start(): answered once, by the worker or the timer thread */
        struct anchor_answer *ans;
        void (*done)(void *arg);
        void *arg;
        struct timespec deadline;
        struct job *timer_next; /* on ld->timers until answered */
};

struct lookup_deadline {
        struct anchor_lookup inner;
        int timeout_ms, queue_max, queued, worker_cnt;
        pthread_mutex_t lock;
        pthread_cond_t work, done, timer;
        struct job *head, *tail;
        struct job *timers; /* started lookups not answered yet */
        bool is_stopping, has_timer_thread;
        pthread_t *workers, timer_thread;
        struct metric *m_timeouts;
};

static void release(struct job *j) /* lock held */
{
        if (--j->refs == 0) {
                free(j->anchor_id);
                free(j);
        }
}

/* Takes j off ld->timers; false when it is not there (answered already). Lock held. */
static bool untime(struct lookup_deadline *ld, struct job *j)
{
        for (struct job **p = &ld->timers; *p; p = &(*p)->timer_next)
                if (*p == j) {
                        *p = j->timer_next;
                        return true;
                }
        return false;
}

/* Fills a started lookup's answer and calls its done, once (lock held). */
static void answer(struct job *j, enum anchor_lookup_result result)
{
        j->ans->result = result;
        if (result == ANCHOR_LOOKUP_FOUND)
                j->ans->record = j->record;
        j->done(j->arg);
        release(j); /* the timer list's reference */
}

static bool is_past(const struct timespec *t, const struct timespec *now)
{
        return t->tv_sec < now->tv_sec || (t->tv_sec == now->tv_sec && t->tv_nsec <= now->tv_nsec);
}

/* Answers started lookups at their deadline: unavailable, counted. */
static void *timer_run(void *arg)
{
        struct lookup_deadline *ld = arg;

        pthread_mutex_lock(&ld->lock);
        while (!ld->is_stopping) {
                struct timespec now, *next = NULL;

                clock_gettime(CLOCK_MONOTONIC, &now);
                for (struct job **p = &ld->timers; *p;) {
                        struct job *j = *p;

                        if (!is_past(&j->deadline, &now)) {
                                if (!next || !is_past(next, &j->deadline))
                                        next = &j->deadline;
                                p = &j->timer_next;
                                continue;
                        }
                        *p = j->timer_next;
                        metric_add(ld->m_timeouts, 1);
                        log_warn(j->trace_id, "anchor lookup of %s missed its %d ms deadline",
                                 j->anchor_id, ld->timeout_ms);
                        answer(j, ANCHOR_LOOKUP_UNAVAILABLE);
                }
                if (next) {
                        struct timespec until = *next; /* next's job may go while we wait */

                        pthread_cond_timedwait(&ld->timer, &ld->lock, &until);
                } else {
                        pthread_cond_wait(&ld->timer, &ld->lock);
                }
        }
        pthread_mutex_unlock(&ld->lock);
        return NULL;
}

static void *worker_run(void *arg)
{
        struct lookup_deadline *ld = arg;

        pthread_mutex_lock(&ld->lock);
        for (;;) {
                struct job *j;

                while (!ld->head && !ld->is_stopping)
                        pthread_cond_wait(&ld->work, &ld->lock);
                if (!ld->head)
                        break;
                j = ld->head;
                ld->head = j->next;
                if (!ld->head)
                        ld->tail = NULL;
                ld->queued--;
                pthread_mutex_unlock(&ld->lock);
                j->result = ld->inner.fn(ld->inner.ctx, j->anchor_id, j->trace_id, &j->record);
                pthread_mutex_lock(&ld->lock);
                j->is_done = true;
                if (j->done && untime(ld, j))
                        answer(j, j->result);
                pthread_cond_broadcast(&ld->done);
                release(j);
        }
        pthread_mutex_unlock(&ld->lock);
        return NULL;
}

struct lookup_deadline *lookup_deadline_new(const struct anchor_lookup *inner, int timeout_ms,
                                            int workers, int queue_max, struct metrics *metrics)
{
        struct lookup_deadline *ld = calloc(1, sizeof(*ld));
        pthread_condattr_t attr;

        if (!ld ||
            !(ld->workers = calloc((size_t)(workers > 0 ? workers : 1), sizeof(pthread_t)))) {
                free(ld);
                return NULL;
        }
        ld->inner = *inner;
        ld->timeout_ms = timeout_ms;
        ld->queue_max = queue_max;
        pthread_mutex_init(&ld->lock, NULL);
        pthread_cond_init(&ld->work, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* deadlines ignore clock steps */
        pthread_cond_init(&ld->done, &attr);
        pthread_cond_init(&ld->timer, &attr);
        pthread_condattr_destroy(&attr);
        ld->m_timeouts = metrics_counter(
                metrics, "liveflow_receiver_srs_lookup_timeouts_total",
                "Anchor lookups that missed their deadline (LIVEFLOW_SRS_LOOKUP_TIMEOUT_MS) or "
                "found every worker busy: LIVEFLOW_SRS_FAIL_OPEN decided",
                NULL);
        for (int i = 0; i < (workers > 0 ? workers : 1); i++) {
                if (pthread_create(&ld->workers[i], NULL, worker_run, ld) != 0)
                        break;
                ld->worker_cnt++;
        }
        ld->has_timer_thread =
                ld->worker_cnt > 0 && pthread_create(&ld->timer_thread, NULL, timer_run, ld) == 0;
        if (!ld->has_timer_thread) {
                lookup_deadline_destroy(ld);
                return NULL;
        }
        return ld;
}

void lookup_deadline_destroy(struct lookup_deadline *ld)
{
        if (!ld)
                return;
        pthread_mutex_lock(&ld->lock);
        ld->is_stopping = true;
        /* Lookups nobody ran: their callers gave up at their deadline (or will). */
        while (ld->head) {
                struct job *j = ld->head;

                ld->head = j->next;
                j->is_done = true;
                release(j);
        }
        ld->tail = NULL;
        while (ld->timers) { /* dropped unanswered: their requests are gone (see the header) */
                struct job *j = ld->timers;

                ld->timers = j->timer_next;
                release(j);
        }
        pthread_cond_broadcast(&ld->work);
        pthread_cond_broadcast(&ld->done);
        pthread_cond_broadcast(&ld->timer);
        pthread_mutex_unlock(&ld->lock);
        for (int i = 0; i < ld->worker_cnt; i++)
                pthread_join(ld->workers[i], NULL);
        if (ld->has_timer_thread)
                pthread_join(ld->timer_thread, NULL);
        pthread_cond_destroy(&ld->work);
        pthread_cond_destroy(&ld->done);
        pthread_cond_destroy(&ld->timer);
        pthread_mutex_destroy(&ld->lock);
        free(ld->workers);
        free(ld);
}

static struct timespec deadline_after(int ms)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        return ts;
}

/* A job for anchor_id, held by its submitter and a worker; NULL when out of memory. */
static struct job *job_new(const char *anchor_id, const char *trace_id)
{
        struct job *j = calloc(1, sizeof(*j));

        if (!j || !(j->anchor_id = strdup(anchor_id))) {
                free(j);
                return NULL;
        }
        snprintf(j->trace_id, sizeof(j->trace_id), "%s", trace_id ? trace_id : "-");
        j->refs = 2;
        return j;
}

/*
 * Queues j for a worker, ld->lock held. @returns false when the queue is full or stopping
 * (every worker stuck for long): then the lock is released, j freed and a timeout counted.
 */
static bool enqueue_locked(struct lookup_deadline *ld, struct job *j)
{
        if (ld->queued >= ld->queue_max || ld->is_stopping) {
                pthread_mutex_unlock(&ld->lock);
                free(j->anchor_id);
                free(j);
                metric_add(ld->m_timeouts, 1);
                return false;
        }
        if (ld->tail)
                ld->tail->next = j;
        else
                ld->head = j;
        ld->tail = j;
        ld->queued++;
        pthread_cond_signal(&ld->work);
        return true;
}

static enum anchor_lookup_result lookup(void *ctx, const char *anchor_id, const char *trace_id,
                                        struct anchor_record *anchor)
{
        struct lookup_deadline *ld = ctx;
        struct timespec deadline = deadline_after(ld->timeout_ms);
        enum anchor_lookup_result result = ANCHOR_LOOKUP_UNAVAILABLE;
        struct job *j = job_new(anchor_id, trace_id);
        int rc = 0;

        if (!j)
                return ANCHOR_LOOKUP_UNAVAILABLE;
        pthread_mutex_lock(&ld->lock);
        if (!enqueue_locked(ld, j))
                return ANCHOR_LOOKUP_UNAVAILABLE;
        while (!j->is_done && rc != ETIMEDOUT)
                rc = pthread_cond_timedwait(&ld->done, &ld->lock, &deadline);
        if (j->is_done && !ld->is_stopping) {
                result = j->result;
                *anchor = j->record;
        } else {
                metric_add(ld->m_timeouts, 1);
                log_warn(trace_id, "anchor lookup of %s missed its %d ms deadline", anchor_id,
                         ld->timeout_ms);
        }
        release(j);
        pthread_mutex_unlock(&ld->lock);
        return result;
}

void lookup_deadline_start(struct lookup_deadline *ld, const char *anchor_id, const char *trace_id,
                           struct anchor_answer *ans, void (*done)(void *arg), void *arg)
{
        struct job *j = job_new(anchor_id, trace_id);

        if (!j) {
                metric_add(ld->m_timeouts, 1);
                goto unavailable;
        }
        j->ans = ans;
        j->done = done;
        j->arg = arg;
        j->deadline = deadline_after(ld->timeout_ms);
        pthread_mutex_lock(&ld->lock);
        if (!enqueue_locked(ld, j))
                goto unavailable;
        j->timer_next = ld->timers;
        ld->timers = j;
        pthread_cond_signal(&ld->timer);
        pthread_mutex_unlock(&ld->lock);
        return;
unavailable:
        ans->result = ANCHOR_LOOKUP_UNAVAILABLE;
        done(arg);
}

struct anchor_lookup lookup_deadline_lookup(struct lookup_deadline *ld)
{
        return (struct anchor_lookup){.fn = lookup, .ctx = ld};
}
