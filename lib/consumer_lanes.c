/*
 * consumer_lanes.c: N group members of one role in one process, a thread each (see
 * consumer_lanes.h). Nothing is shared between lanes but what is made for it: the settings
 * (read only), the metrics registry (atomics), the logger (thread-safe) and the stop flag.
 */
#include "consumer_lanes.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "log.h"
#include "settings.h"
#include "signals.h"

struct lane {
        struct consumer_lanes *owner;
        struct consumer *c;
        pthread_t tid;
        bool is_started;
        int number; /* 1.. */
        int drain_timeout_ms;
        int drain_rc;
        char tag[24]; /* "lane=<N>" in its log lines; "" with a single lane */
};

struct consumer_lanes {
        struct lane *lanes;
        int lane_cnt;
        /* the drain's gate: no lane leaves the group before every lane has committed */
        pthread_mutex_t lock;
        pthread_cond_t all_committed;
        int to_commit; /* lanes running that have not committed yet */
};

struct consumer_lanes *consumer_lanes_new(const struct consumer_role *role,
                                          const struct settings *s, struct metrics *metrics,
                                          char *errstr, size_t errstr_size)
{
        struct consumer_lanes *ls = calloc(1, sizeof(*ls));
        int n = s->consumer_lanes > 0 ? (int)s->consumer_lanes : 1;
        char why[512];

        if (!ls || !(ls->lanes = calloc((size_t)n, sizeof(*ls->lanes)))) {
                free(ls);
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        ls->lane_cnt = n;
        pthread_mutex_init(&ls->lock, NULL);
        pthread_cond_init(&ls->all_committed, NULL);
        for (int i = 0; i < n; i++) {
                struct lane *l = &ls->lanes[i];

                l->owner = ls;
                l->number = i + 1;
                if (n > 1)
                        snprintf(l->tag, sizeof(l->tag), "lane=%d", l->number);
                log_set_thread_tag(l->tag); /* what the role says while opening is this lane's */
                l->c = consumer_new(role, s, l->number, n, metrics, why, sizeof(why));
                log_set_thread_tag(NULL);
                if (!l->c) {
                        if (n > 1)
                                snprintf(errstr, errstr_size, "lane %d of %d: %s", l->number, n,
                                         why);
                        else
                                snprintf(errstr, errstr_size, "%s", why);
                        consumer_lanes_destroy(ls);
                        return NULL;
                }
        }
        return ls;
}

/* n lanes committed (or will never run): the last one opens the gate. */
static void gate_pass(struct consumer_lanes *ls, int n, bool wait)
{
        pthread_mutex_lock(&ls->lock);
        ls->to_commit -= n;
        if (ls->to_commit <= 0)
                pthread_cond_broadcast(&ls->all_committed);
        while (wait && ls->to_commit > 0)
                pthread_cond_wait(&ls->all_committed, &ls->lock);
        pthread_mutex_unlock(&ls->lock);
}

/*
 * A lane's life after connecting: batches until the stop, then the drain in two beats. Its
 * commit comes while every lane is still a member; only then do the lanes leave, so that one
 * lane's leaving (a rebalance) never refuses another's commit.
 */
static void *lane_main(void *arg)
{
        struct lane *l = arg;

        log_set_thread_tag(l->tag);
        consumer_run(l->c);
        consumer_commit(l->c);
        gate_pass(l->owner, 1, true);
        l->drain_rc = consumer_drain(l->c, l->drain_timeout_ms);
        return NULL;
}

/* Lanes inherit a mask without SIGTERM and SIGINT: the waiting thread takes them, so a signal
 * never interrupts a lane's system call halfway (a MySQL read). */
static int start_lanes(struct consumer_lanes *ls, int drain_timeout_ms)
{
        sigset_t stops, old;
        int rc = 0;

        sigemptyset(&stops);
        sigaddset(&stops, SIGTERM);
        sigaddset(&stops, SIGINT);
        pthread_sigmask(SIG_BLOCK, &stops, &old);
        ls->to_commit = ls->lane_cnt;
        for (int i = 0; i < ls->lane_cnt && rc == 0; i++) {
                struct lane *l = &ls->lanes[i];

                l->drain_timeout_ms = drain_timeout_ms;
                if ((rc = pthread_create(&l->tid, NULL, lane_main, l)) != 0) {
                        log_error(NULL, "lane %d: cannot start its thread: %s", l->number,
                                  strerror(rc));
                        signals_request_stop(); /* the lanes already running drain */
                        gate_pass(ls, ls->lane_cnt - i, false); /* this one and the rest */
                } else {
                        l->is_started = true;
                }
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return rc == 0 ? 0 : -1;
}

int consumer_lanes_run(struct consumer_lanes *ls, int drain_timeout_ms)
{
        int rc = start_lanes(ls, drain_timeout_ms);

        for (int i = 0; i < ls->lane_cnt; i++) {
                struct lane *l = &ls->lanes[i];

                if (!l->is_started)
                        continue;
                pthread_join(l->tid, NULL);
                l->is_started = false;
                if (l->drain_rc != 0)
                        rc = -1;
        }
        return rc;
}

bool consumer_lanes_ready(void *arg, char *why, size_t why_size)
{
        struct consumer_lanes *ls = arg;
        char lane_why[200];

        for (int i = 0; i < ls->lane_cnt; i++) {
                lane_why[0] = '\0';
                if (consumer_is_ready(ls->lanes[i].c, lane_why, sizeof(lane_why)))
                        continue;
                if (ls->lane_cnt > 1)
                        snprintf(why, why_size, "lane %d: %s", i + 1, lane_why);
                else
                        snprintf(why, why_size, "%s", lane_why);
                return false;
        }
        return true;
}

void consumer_lanes_destroy(struct consumer_lanes *ls)
{
        if (!ls)
                return;
        for (int i = 0; i < ls->lane_cnt; i++)
                consumer_destroy(ls->lanes[i].c);
        pthread_cond_destroy(&ls->all_committed);
        pthread_mutex_destroy(&ls->lock);
        free(ls->lanes);
        free(ls);
}
