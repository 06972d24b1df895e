/* notify_mark.c: the live.notify outbox's mark thread (see notify_mark.h). */
#include "notify_mark.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define NOTIFY_MARK_CHUNK    4096 /* rows per UPDATE */
#define NOTIFY_MARK_RETRY_MS 1000 /* after a failed UPDATE */

struct notify_mark {
        struct db *db; /* the thread's */
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond; /* a hand-over, a stop, or a round done (broadcast) */
        bool is_stopping;
        /* under lock: handed over (q), and being marked by the thread (work, work_n: the
           thread reads work without the lock, nobody writes it meanwhile) */
        struct notify_mark_row *q, *work;
        size_t q_n, q_cap, work_n, work_cap;
};

/* Appends n rows to *a (n_a of cap_a). @returns -1 when out of memory. */
static int append(struct notify_mark_row **a, size_t *n_a, size_t *cap_a,
                  const struct notify_mark_row *rows, size_t n)
{
        if (n == 0) /* *a may still be NULL, which memcpy() may not be given */
                return 0;
        if (*n_a + n > *cap_a) {
                size_t cap = *cap_a ? *cap_a : 512;
                struct notify_mark_row *grown;

                while (cap < *n_a + n)
                        cap *= 2;
                if (!(grown = realloc(*a, cap * sizeof(*grown))))
                        return -1;
                *a = grown;
                *cap_a = cap;
        }
        memcpy(*a + *n_a, rows, n * sizeof(*rows));
        *n_a += n;
        return 0;
}

/* One UPDATE of the rows of one kind (is_bundle) among rows[0..n). */
static int mark_chunk(struct db *db, struct db_text *sql, const struct notify_mark_row *rows,
                      size_t n, bool is_bundle, char *errstr, size_t errstr_size)
{
        size_t cnt = 0;

        db_text_reset(sql);
        db_text_add(sql, is_bundle ? "UPDATE notify_batch SET sent_at = NOW(3) WHERE id IN ("
                                   : "UPDATE notify_outbox SET sent_at = NOW(3) WHERE id IN (");
        for (size_t i = 0; i < n; i++)
                if (rows[i].is_bundle == is_bundle)
                        db_text_add(sql, cnt++ ? ", %lld" : "%lld", rows[i].id);
        if (!cnt)
                return 0;
        /* A notify_outbox row is found by id (the primary key) and marked only when the event
           id is one the broker acknowledged too: an id a row was given by guess cannot mark
           another row sent. A bundle's id is its INSERT's own. */
        if (!is_bundle) {
                db_text_add(sql, ") AND event_id IN (");
                cnt = 0;
                for (size_t i = 0; i < n; i++)
                        if (!rows[i].is_bundle) {
                                db_text_add(sql, cnt++ ? ", " : "");
                                db_text_str(db, sql, rows[i].event_id);
                        }
        }
        db_text_add(sql, ")");
        return db_text_exec(db, sql, NULL, errstr, errstr_size) == DB_OK ? 0 : -1;
}

int notify_mark_now(struct db *db, const struct notify_mark_row *rows, size_t n, char *errstr,
                    size_t errstr_size)
{
        struct db_text sql = {0};
        int rc = 0;

        for (size_t at = 0; at < n && rc == 0; at += NOTIFY_MARK_CHUNK) {
                size_t cnt = n - at < NOTIFY_MARK_CHUNK ? n - at : NOTIFY_MARK_CHUNK;

                if (mark_chunk(db, &sql, rows + at, cnt, false, errstr, errstr_size) == -1 ||
                    mark_chunk(db, &sql, rows + at, cnt, true, errstr, errstr_size) == -1)
                        rc = -1;
        }
        db_text_free(&sql);
        return rc;
}

static void deadline_in(struct timespec *ts, int ms)
{
        clock_gettime(CLOCK_MONOTONIC, ts);
        ts->tv_sec += ms / 1000;
        ts->tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts->tv_nsec >= 1000000000L) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000L;
        }
}

static void *run(void *arg)
{
        struct notify_mark *m = arg;
        char err[512];

        pthread_mutex_lock(&m->lock);
        for (;;) {
                struct notify_mark_row *t;
                size_t cap;
                int rc;

                while (!m->q_n && !m->is_stopping)
                        pthread_cond_wait(&m->cond, &m->lock);
                if (!m->q_n)
                        break; /* stopping, nothing left */
                /* take what is handed over: q and work swap buffers */
                t = m->work, m->work = m->q, m->q = t;
                cap = m->work_cap, m->work_cap = m->q_cap, m->q_cap = cap;
                m->work_n = m->q_n;
                m->q_n = 0;
                pthread_mutex_unlock(&m->lock);
                rc = notify_mark_now(m->db, m->work, m->work_n, err, sizeof(err));
                pthread_mutex_lock(&m->lock);
                if (rc == -1 && m->is_stopping) {
                        log_warn(NULL, "live.notify: marking %zu rows sent: %s (sent again later)",
                                 m->work_n + m->q_n, err);
                        m->work_n = m->q_n = 0;
                } else if (rc == -1) {
                        log_warn(NULL, "live.notify: marking %zu rows sent: %s (tried again)",
                                 m->work_n, err);
                        if (append(&m->q, &m->q_n, &m->q_cap, m->work, m->work_n) == -1)
                                log_warn(NULL,
                                         "live.notify: out of memory: %zu rows to be "
                                         "marked are left to the sweep (sent again)",
                                         m->work_n);
                        m->work_n = 0;
                        pthread_cond_broadcast(&m->cond);
                        struct timespec ts;

                        deadline_in(&ts, NOTIFY_MARK_RETRY_MS);
                        while (!m->is_stopping &&
                               pthread_cond_timedwait(&m->cond, &m->lock, &ts) != ETIMEDOUT)
                                ;
                        continue;
                }
                m->work_n = 0;
                pthread_cond_broadcast(&m->cond);
        }
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
        return NULL;
}

struct notify_mark *notify_mark_new(const struct db *like, char *errstr, size_t errstr_size)
{
        struct notify_mark *m = calloc(1, sizeof(*m));
        pthread_condattr_t attr;
        int e;

        if (!m) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        if (!(m->db = db_new_like(like, errstr, errstr_size))) {
                free(m);
                return NULL;
        }
        pthread_mutex_init(&m->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&m->cond, &attr);
        pthread_condattr_destroy(&attr);
        if ((e = pthread_create(&m->thread, NULL, run, m)) != 0) {
                snprintf(errstr, errstr_size, "starting the mark thread: %s", strerror(e));
                pthread_cond_destroy(&m->cond);
                pthread_mutex_destroy(&m->lock);
                db_destroy(m->db);
                free(m);
                return NULL;
        }
        return m;
}

void notify_mark_destroy(struct notify_mark *m)
{
        if (!m)
                return;
        pthread_mutex_lock(&m->lock);
        m->is_stopping = true;
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
        pthread_join(m->thread, NULL); /* it marks what is queued first */
        pthread_cond_destroy(&m->cond);
        pthread_mutex_destroy(&m->lock);
        db_destroy(m->db);
        free(m->q);
        free(m->work);
        free(m);
}

int notify_mark_add(struct notify_mark *m, const struct notify_mark_row *rows, size_t n)
{
        int rc;

        if (!n)
                return 0;
        pthread_mutex_lock(&m->lock);
        if ((rc = append(&m->q, &m->q_n, &m->q_cap, rows, n)) == 0)
                pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
        return rc;
}

size_t notify_mark_pending(struct notify_mark *m)
{
        size_t n;

        pthread_mutex_lock(&m->lock);
        n = m->q_n + m->work_n;
        pthread_mutex_unlock(&m->lock);
        return n;
}

long notify_mark_pending_rows(struct notify_mark *m, struct notify_mark_row **rows)
{
        long n;

        *rows = NULL;
        pthread_mutex_lock(&m->lock);
        n = (long)(m->q_n + m->work_n);
        if (n && (*rows = malloc((size_t)n * sizeof(**rows)))) {
                /* either list may be empty, and then NULL, which memcpy() may not be given */
                if (m->q_n)
                        memcpy(*rows, m->q, m->q_n * sizeof(**rows));
                if (m->work_n)
                        memcpy(*rows + m->q_n, m->work, m->work_n * sizeof(**rows));
        } else if (n) {
                n = -1;
        }
        pthread_mutex_unlock(&m->lock);
        return n;
}

bool notify_mark_wait(struct notify_mark *m, int timeout_ms)
{
        struct timespec ts;
        bool is_idle;

        deadline_in(&ts, timeout_ms);
        pthread_mutex_lock(&m->lock);
        while ((m->q_n || m->work_n) &&
               pthread_cond_timedwait(&m->cond, &m->lock, &ts) != ETIMEDOUT)
                ;
        is_idle = !m->q_n && !m->work_n;
        pthread_mutex_unlock(&m->lock);
        return is_idle;
}
