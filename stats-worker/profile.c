/* profile.c: the periodic audience_profile run, one instance per period, swapped in whole. */
#include "profile.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "profile_run.h"
#include "redis_conn.h"
#include "settings.h"
#include "trace.h"

/* A failed run is tried again this much later, or a period later. */
#define PROFILE_RETRY_MS 30000

struct profile {
        struct db *db; /* ours: its timeout is the lock's TTL */
        struct redis_conn *redis;
        long long interval_s, high_pct, mid_pct, lock_ttl_s;
        char instance[128];
        long long done_period;   /* the last period known to be done; -1 at start */
        long long retry_at_ms;   /* after a failure, no new attempt before this */
        struct profile_run *run; /* the run itself, shared with liveflow-ctl (lib/) */
        struct metric *m_done, *m_failed, *m_superseded, *m_busy;
};

static void register_metrics(struct profile *p, struct metrics *metrics)
{
        static const char runs[] = "liveflow_stats_profile_runs_total";

        p->m_done = metrics_counter(metrics, runs, "audience_profile runs, by outcome",
                                    "outcome=\"done\"");
        p->m_failed = metrics_counter(metrics, runs, NULL, "outcome=\"failed\"");
        p->m_superseded = metrics_counter(metrics, runs, NULL, "outcome=\"superseded\"");
        p->m_busy = metrics_counter(
                metrics, "liveflow_stats_profile_lock_busy_total",
                "Ticks that found the period's profiling lock held by another instance", NULL);
}

struct profile *profile_new(const struct settings *s, struct redis_conn *redis,
                            struct metrics *metrics, char *errstr, size_t errstr_size)
{
        struct profile *p = calloc(1, sizeof(*p));
        char host[64] = "";

        if (!p) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        p->redis = redis;
        p->interval_s = s->stats_profile_interval_s;
        p->high_pct = s->stats_profile_high_pct;
        p->mid_pct = s->stats_profile_mid_pct;
        p->lock_ttl_s = s->stats_profile_lock_ttl_s;
        p->done_period = -1;
        if (gethostname(host, sizeof(host) - 1) == -1)
                snprintf(host, sizeof(host), "localhost");
        snprintf(p->instance, sizeof(p->instance), "%s:%d", s->instance_id ? s->instance_id : host,
                 (int)getpid());
        register_metrics(p, metrics);
        if (!(p->db = db_new(s->mysql_url, (int)p->lock_ttl_s, errstr, errstr_size)))
                goto fail;
        if (!(p->run = profile_run_new(p->db, p->interval_s, p->high_pct, p->mid_pct))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        return p;
fail:
        profile_destroy(p);
        return NULL;
}

void profile_destroy(struct profile *p)
{
        if (!p)
                return;
        profile_run_destroy(p->run);
        db_destroy(p->db);
        free(p);
}

/* ------------------------------------------------------------------ the lock */

static void lock_release(struct profile *p, long long period, const char *token)
{
        char errstr[256];
        int r = profile_run_unlock(p->redis, period, token, errstr, sizeof(errstr));

        if (r == -1)
                log_warn(NULL,
                         "profile: releasing lock:stats:profile:%lld: %s (it expires by itself)",
                         period, errstr);
        else if (r == 0)
                log_warn(
                        NULL,
                        "profile: lock:stats:profile:%lld had expired before the run ended (LIVEFLOW_STATS_PROFILE_LOCK_TTL_S)",
                        period);
}

/* ------------------------------------------------------------------ the run */

/* @returns 0 when the period is done (by this run or an earlier one), -1 with errstr. */
static int run_unless_done(struct profile *p, long long period, char *errstr, size_t errstr_size)
{
        long long started_ms = clock_wall_ms(), staged = 0, newer = -1;
        bool done = false;
        enum db_result r;

        /* Checked under the lock: a run that finished has recorded itself before releasing it. */
        if (profile_run_is_done(p->run, period, &done, errstr, errstr_size) != DB_OK)
                return -1;
        if (done)
                return 0;
        log_info(NULL, "profile run started period=%lld interval_s=%lld instance=%s", period,
                 p->interval_s, p->instance);
        if (profile_run_stage(p->run, period, &staged, errstr, errstr_size) != DB_OK)
                return -1;
        if ((r = profile_run_swap(p->run, period, staged, started_ms, p->instance, false, &newer,
                                  errstr, errstr_size)) == DB_DUPLICATE) {
                metric_add(p->m_superseded, 1);
                if (newer >= 0)
                        log_warn(NULL,
                                 "profile period=%lld superseded: period %lld ran meanwhile and "
                                 "its profile is newer; this one is dropped",
                                 period, newer);
                else
                        log_warn(NULL,
                                 "profile period=%lld was recorded by another run meanwhile; this "
                                 "one is dropped",
                                 period);
                return 0;
        }
        if (r != DB_OK)
                return -1;
        metric_add(p->m_done, 1);
        log_info(NULL, "profile run done period=%lld audiences=%lld ms=%lld", period, staged,
                 clock_wall_ms() - started_ms);
        return 0;
}

void profile_tick(struct profile *p, long long now)
{
        long long period = now / 1000 / p->interval_s * p->interval_s;
        long long retry_ms =
                p->interval_s * 1000 < PROFILE_RETRY_MS ? p->interval_s * 1000 : PROFILE_RETRY_MS;
        char token[33], errstr[512];

        if (period == p->done_period || now < p->retry_at_ms)
                return;
        switch (profile_run_lock(p->redis, period, p->lock_ttl_s, token, errstr, sizeof(errstr))) {
        case PROFILE_LOCK_BUSY:
                metric_add(p->m_busy, 1); /* another instance runs it: look again next tick */
                return;
        case PROFILE_LOCK_ERROR:
                log_warn(NULL, "profile period=%lld: no lock: %s", period, errstr);
                p->retry_at_ms = now + retry_ms;
                return;
        case PROFILE_LOCK_TAKEN:
                break;
        }
        if (run_unless_done(p, period, errstr, sizeof(errstr)) == 0) {
                p->done_period = period;
        } else {
                metric_add(p->m_failed, 1);
                log_error(NULL, "profile run failed period=%lld, the previous profile stays: %s",
                          period, errstr);
                p->retry_at_ms = now + retry_ms;
        }
        lock_release(p, period, token);
}
