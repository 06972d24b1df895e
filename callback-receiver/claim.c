/*
 * claim.c: lock:callback:{event_key} in Redis (see claim.h), from any thread over a pool of
 * blocking connections; claim_loop.c asks the same from an event loop without blocking. A take
 * is SET key token NX PX; when the SET did not set the key, a GET of it tells whether it says
 * "done" or is another request's (here both go in one write; the loop sends the GET only when
 * the SET's reply asks for it). Between the two the key may only move on: to "done", or away
 * once released or expired; each is answered safely. "done" is a plain SET; "release if still
 * mine" is a Lua script, so that it is atomic. The pool holds a connection per concurrent
 * caller; a caller takes the first free one. While Redis fails, it is skipped for retry_ms so
 * that an outage costs the requests nothing but the guard.
 */
#include "claim.h"
#include "claim_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "redis_conn.h"
#include "text.h"
#include "trace.h"

static const char release_script[] =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
        "return 0";

static const char *const result_names[] = {"taken", "done", "busy", "unguarded"};

/* A Redis round trip's buckets (seconds): 100 µs to the longest LIVEFLOW_CALLBACK_LOCK_TIMEOUT_MS.
 */
static const double lock_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,     0.25,   0.5,   1,      2.5,   10};

struct claim *claim_new(const char *redis_url, int timeout_ms, int retry_ms,
                        long long pending_ttl_ms, int pool_size, struct metrics *metrics)
{
        struct claim *cl = calloc(1, sizeof(*cl));
        char labels[64];

        if (!cl)
                return NULL;
        cl->timeout_ms = timeout_ms;
        cl->retry_ms = retry_ms;
        text_int(cl->pending_ttl, sizeof(cl->pending_ttl), pending_ttl_ms);
        cl->slot_cnt = pool_size > 0 ? pool_size : 1;
        if ((redis_url && *redis_url && !(cl->url = strdup(redis_url))) ||
            !(cl->slots = calloc((size_t)cl->slot_cnt, sizeof(*cl->slots)))) {
                claim_destroy(cl);
                return NULL;
        }
        for (int i = 0; i < cl->slot_cnt; i++)
                pthread_mutex_init(&cl->slots[i].lock, NULL);
        for (int i = 0; i < 4; i++) {
                snprintf(labels, sizeof(labels), "result=\"%s\"", result_names[i]);
                cl->m_result[i] = metrics_counter(
                        metrics, "liveflow_receiver_callback_lock_total",
                        "Duplicate-callback guard (lock:callback:*) outcomes; unguarded: no Redis "
                        "answered, the consumers' ledgers dedup alone",
                        labels);
        }
        cl->m_errors = metrics_counter(metrics, "liveflow_receiver_callback_lock_errors_total",
                                       "Redis failures of the duplicate-callback guard", NULL);
        for (int i = 0; i < 2; i++)
                cl->m_seconds[i] = metrics_histogram(
                        metrics, "liveflow_receiver_callback_lock_seconds",
                        "Redis round trip of the duplicate-callback guard, answered calls only: a "
                        "claim (SET NX, and GET when the key is held) or a \"done\" mark",
                        i == 0 ? "call=\"claim\"" : "call=\"done\"", lock_bounds,
                        sizeof(lock_bounds) / sizeof(lock_bounds[0]));
        return cl;
}

void claim_destroy(struct claim *cl)
{
        if (!cl)
                return;
        for (int i = 0; cl->slots && i < cl->slot_cnt; i++) {
                redis_conn_destroy(cl->slots[i].rc);
                pthread_mutex_destroy(&cl->slots[i].lock);
        }
        free(cl->slots);
        free(cl->url);
        free(cl);
}

bool claim_is_asked(struct claim *cl)
{
        return cl->url && clock_mono_ms() >= atomic_load(&cl->skip_until_ms);
}

void claim_failed(struct claim *cl, const char *trace_id, const char *why)
{
        metric_add(cl->m_errors, 1);
        atomic_store(&cl->skip_until_ms, clock_mono_ms() + cl->retry_ms);
        log_warn(trace_id, "callback lock: %s; failing open for %d ms", why, cl->retry_ms);
}

void claim_take_argv(const struct claim *cl, const struct claim_ticket *t, const char *set[6])
{
        set[0] = "SET";
        set[1] = t->key;
        set[2] = t->token;
        set[3] = "NX";
        set[4] = "PX";
        set[5] = cl->pending_ttl;
}

int claim_take_outcome(int set_type, const redisReply *get, enum claim_result *res)
{
        if (set_type == REDIS_REPLY_STATUS) { /* OK: set, the key is ours */
                *res = CLAIM_TAKEN;
                return 0;
        }
        if (set_type != REDIS_REPLY_NIL)
                return -1;
        if (get->type == REDIS_REPLY_STRING) {
                *res = !strcmp(get->str, "done") ? CLAIM_DONE : CLAIM_BUSY;
                return 0;
        }
        if (get->type != REDIS_REPLY_NIL)
                return -1;
        *res = CLAIM_BUSY; /* released or expired just now: the sender's retry takes it */
        return 0;
}

const char *claim_reply_why(const redisReply *r)
{
        return r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply";
}

void claim_done_argv(const struct claim_ticket *t, char ttl[24], const char *argv[5])
{
        text_int(ttl, 24, t->done_ttl_ms);
        argv[0] = "SET";
        argv[1] = t->key;
        argv[2] = "done";
        argv[3] = "PX";
        argv[4] = ttl;
}

void claim_note_seconds(struct claim *cl, bool is_claim, long long since_us)
{
        metric_observe(cl->m_seconds[is_claim ? 0 : 1], (double)(clock_mono_us() - since_us) / 1e6);
}

void claim_note_result(struct claim *cl, struct claim_ticket *t, enum claim_result res)
{
        t->is_taken = res == CLAIM_TAKEN;
        metric_add(cl->m_result[res], 1);
}

/* A free slot, locked, with a connection (NULL: Redis not asked or not reached: counted). */
static struct slot *slot_acquire(struct claim *cl, const char *trace_id)
{
        static atomic_uint next;
        struct slot *sl = NULL;
        char errstr[256];

        if (!claim_is_asked(cl))
                return NULL;
        for (int i = 0; !sl && i < cl->slot_cnt; i++)
                if (pthread_mutex_trylock(&cl->slots[i].lock) == 0)
                        sl = &cl->slots[i];
        if (!sl) { /* more callers than the pool: wait for one */
                sl = &cl->slots[atomic_fetch_add(&next, 1) % (unsigned)cl->slot_cnt];
                pthread_mutex_lock(&sl->lock);
        }
        if (!sl->rc &&
            !(sl->rc = redis_conn_new(cl->url, cl->timeout_ms, errstr, sizeof(errstr)))) {
                pthread_mutex_unlock(&sl->lock);
                claim_failed(cl, trace_id, errstr);
                return NULL;
        }
        return sl;
}

/* n commands in one round trip; their replies in replies[] (the caller frees them). */
static int ask(struct claim *cl, size_t n, const int *argcs, const char **const *cmds,
               redisReply **replies, const char *trace_id)
{
        struct slot *sl = slot_acquire(cl, trace_id);
        char errstr[256];
        int rc;

        if (!sl)
                return -1;
        rc = redis_conn_pipeline_replies(sl->rc, n, argcs, cmds, replies, errstr, sizeof(errstr));
        pthread_mutex_unlock(&sl->lock);
        if (rc == -1)
                claim_failed(cl, trace_id, errstr);
        return rc;
}

/* A fresh ticket for event_key. */
void claim_ticket_init(struct claim_ticket *t, const char *event_key, long long done_ttl_ms)
{
        size_t len = 0;

        memset(t, 0, sizeof(*t));
        (void)text_append(t->key, sizeof(t->key), &len, CLAIM_KEY_PREFIX);
        (void)text_append(t->key, sizeof(t->key), &len, event_key);
        trace_id_new(t->token);
        t->done_ttl_ms = done_ttl_ms;
}

enum claim_result claim_take(struct claim *cl, const char *event_key, long long done_ttl_ms,
                             const char *trace_id, struct claim_ticket *t)
{
        const char *set[6], *get[2] = {"GET", t->key}; /* in the same write: a blocking call */
        const char **cmds[2] = {set, get};
        const int argcs[2] = {6, 2};
        redisReply *replies[2];
        enum claim_result res = CLAIM_UNGUARDED;
        long long start_us = clock_mono_us();

        claim_ticket_init(t, event_key, done_ttl_ms);
        claim_take_argv(cl, t, set);
        if (ask(cl, 2, argcs, cmds, replies, trace_id) == 0) {
                if (claim_take_outcome(replies[0]->type, replies[1], &res) == 0)
                        claim_note_seconds(cl, true, start_us);
                else
                        claim_failed(cl, trace_id,
                                     claim_reply_why(replies[0]->type == REDIS_REPLY_ERROR
                                                             ? replies[0]
                                                             : replies[1]));
                freeReplyObject(replies[0]);
                freeReplyObject(replies[1]);
        }
        claim_note_result(cl, t, res);
        return res;
}

void claim_confirm(struct claim *cl, struct claim_ticket *t)
{
        char ttl[24];
        const char *argv[5];
        const char **cmds[1] = {argv};
        const int argcs[1] = {5};
        redisReply *reply;
        long long start_us = clock_mono_us();

        if (!t->is_taken)
                return;
        t->is_taken = 0;
        claim_done_argv(t, ttl, argv);
        /* A failure here only shortens the guard to the pending TTL: the ledgers still hold. */
        if (ask(cl, 1, argcs, cmds, &reply, NULL) == 0) {
                if (reply->type == REDIS_REPLY_STATUS)
                        claim_note_seconds(cl, false, start_us);
                else
                        claim_failed(cl, NULL, claim_reply_why(reply));
                freeReplyObject(reply);
        }
}

void claim_release(struct claim *cl, struct claim_ticket *t)
{
        const char *keys[1] = {t->key}, *args[1] = {t->token};
        struct slot *sl;
        redisReply *r;
        char errstr[256];

        if (!t->is_taken)
                return;
        t->is_taken = 0;
        if (!(sl = slot_acquire(cl, NULL)))
                return;
        r = redis_conn_eval(sl->rc, release_script, 1, keys, 1, args, errstr, sizeof(errstr));
        pthread_mutex_unlock(&sl->lock);
        if (r)
                freeReplyObject(r);
        else
                claim_failed(cl, NULL, errstr);
}
