/*
 * claim.c: lock:callback:{event_key} in Redis (see claim.h). Each verb is one Lua script, so
 * "take or tell what holds it", "done" and "release if still mine" are atomic. The pool holds a
 * connection per concurrent caller; a caller takes the first free one. While Redis fails, it
 * is skipped for retry_ms so that an outage costs the requests nothing but the guard.
 */
#include "claim.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "redis_conn.h"
#include "text.h"
#include "trace.h"

#define KEY_PREFIX "lock:callback:"

static const char take_script[] =
        "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end "
        "if redis.call('GET', KEYS[1]) == 'done' then return 2 end "
        "return 3";
static const char confirm_script[] = "redis.call('SET', KEYS[1], 'done', 'PX', ARGV[1]) "
                                     "return 1";
static const char release_script[] =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
        "return 0";

struct slot {
        pthread_mutex_t lock;
        struct redis_conn *rc; /* NULL until first used, or after a failed connect */
};

/* A script and its SHA-1 (hex), worked out once rather than for every call. */
struct script {
        const char *text;
        char sha[41];
};

enum { SCRIPT_TAKE, SCRIPT_CONFIRM, SCRIPT_RELEASE, SCRIPT_CNT };

struct claim {
        char *url; /* NULL: no Redis */
        struct script scripts[SCRIPT_CNT];
        int timeout_ms, retry_ms;
        long long pending_ttl_ms;
        atomic_llong skip_until_ms; /* Redis failed: not asked before this (monotonic ms) */
        struct slot *slots;
        int slot_cnt;
        struct metric *m_result[4];
        struct metric *m_errors;
};

static const char *const result_names[] = {"taken", "done", "busy", "unguarded"};

struct claim *claim_new(const char *redis_url, int timeout_ms, int retry_ms,
                        long long pending_ttl_ms, int pool_size, struct metrics *metrics)
{
        struct claim *cl = calloc(1, sizeof(*cl));
        char labels[64];

        if (!cl)
                return NULL;
        cl->scripts[SCRIPT_TAKE].text = take_script;
        cl->scripts[SCRIPT_CONFIRM].text = confirm_script;
        cl->scripts[SCRIPT_RELEASE].text = release_script;
        for (int i = 0; i < SCRIPT_CNT; i++) {
                unsigned char sha[EVP_MAX_MD_SIZE];
                unsigned int len = 0;

                EVP_Digest(cl->scripts[i].text, strlen(cl->scripts[i].text), sha, &len, EVP_sha1(),
                           NULL);
                for (unsigned int j = 0; j < 20 && j < len; j++)
                        snprintf(cl->scripts[i].sha + 2 * j, 3, "%02x", sha[j]);
        }
        cl->timeout_ms = timeout_ms;
        cl->retry_ms = retry_ms;
        cl->pending_ttl_ms = pending_ttl_ms;
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

/* A free slot, locked; waits on one when all are busy (more callers than the pool). */
static struct slot *slot_acquire(struct claim *cl)
{
        static atomic_uint next;
        struct slot *sl;

        for (int i = 0; i < cl->slot_cnt; i++)
                if (pthread_mutex_trylock(&cl->slots[i].lock) == 0)
                        return &cl->slots[i];
        sl = &cl->slots[atomic_fetch_add(&next, 1) % (unsigned)cl->slot_cnt];
        pthread_mutex_lock(&sl->lock);
        return sl;
}

/* EVALSHA of sc on key with args (at most 2), EVAL when the server does not hold it yet. */
static redisReply *eval(struct redis_conn *rc, const struct script *sc, const char *key, int nargs,
                        const char **args, char *errstr, size_t errstr_size)
{
        const char *argv[6] = {"EVALSHA", sc->sha, "1", key};
        redisReply *r;

        for (int i = 0; i < nargs && i < 2; i++)
                argv[4 + i] = args[i];
        if ((r = redis_conn_cmd(rc, 4 + nargs, argv, NULL, errstr, errstr_size)) ||
            !strstr(errstr, "NOSCRIPT"))
                return r;
        argv[0] = "EVAL"; /* EVAL caches it on the server for the next EVALSHA */
        argv[1] = sc->text;
        return redis_conn_cmd(rc, 4 + nargs, argv, NULL, errstr, errstr_size);
}

/* Runs script on key; the integer reply, or -1 (logged, counted, Redis skipped a while). */
static long long run(struct claim *cl, const struct script *script, const char *key, int nargs,
                     const char **args, const char *trace_id)
{
        struct slot *sl;
        redisReply *r = NULL;
        char errstr[256] = "";
        long long answer = -1;

        if (!cl->url || clock_mono_ms() < atomic_load(&cl->skip_until_ms))
                return -1;
        sl = slot_acquire(cl);
        if (!sl->rc)
                sl->rc = redis_conn_new(cl->url, cl->timeout_ms, errstr, sizeof(errstr));
        if (sl->rc)
                r = eval(sl->rc, script, key, nargs, args, errstr, sizeof(errstr));
        if (r && r->type == REDIS_REPLY_INTEGER)
                answer = r->integer;
        else if (r)
                snprintf(errstr, sizeof(errstr), "unexpected reply type %d", r->type);
        if (r)
                freeReplyObject(r);
        pthread_mutex_unlock(&sl->lock);
        if (answer == -1) {
                metric_add(cl->m_errors, 1);
                atomic_store(&cl->skip_until_ms, clock_mono_ms() + cl->retry_ms);
                log_warn(trace_id, "callback lock: %s; failing open for %d ms", errstr,
                         cl->retry_ms);
        }
        return answer;
}

/* A fresh ticket for event_key. */
static void ticket_init(struct claim_ticket *t, const char *event_key, long long done_ttl_ms)
{
        memset(t, 0, sizeof(*t));
        size_t len = 0;

        (void)text_append(t->key, sizeof(t->key), &len, KEY_PREFIX);
        (void)text_append(t->key, sizeof(t->key), &len, event_key);
        trace_id_new(t->token);
        t->done_ttl_ms = done_ttl_ms;
}

static enum claim_result result_of(long long answer)
{
        return answer == 1   ? CLAIM_TAKEN
               : answer == 2 ? CLAIM_DONE
               : answer == 3 ? CLAIM_BUSY
                             : CLAIM_UNGUARDED;
}

void claim_take_many(struct claim *cl, struct claim_ticket *const *tickets,
                     const char *const *trace_ids, enum claim_result *results, size_t n)
{
        enum { CHUNK = 64 };
        const char *argv[CHUNK][6];
        const char **cmds[CHUNK];
        redisReply *replies[CHUNK];
        int argcs[CHUNK];
        char ttl[24], errstr[256] = "";
        struct slot *sl = NULL;
        size_t done = 0;

        snprintf(ttl, sizeof(ttl), "%lld", cl->pending_ttl_ms);
        for (size_t i = 0; i < n; i++)
                results[i] = CLAIM_UNGUARDED;
        if (cl->url && clock_mono_ms() >= atomic_load(&cl->skip_until_ms)) {
                sl = slot_acquire(cl);
                if (!sl->rc)
                        sl->rc = redis_conn_new(cl->url, cl->timeout_ms, errstr, sizeof(errstr));
        }
        while (sl && sl->rc && done < n) {
                size_t m = n - done < CHUNK ? n - done : CHUNK;
                bool is_unloaded = false;

                for (size_t i = 0; i < m; i++) {
                        const struct claim_ticket *t = tickets[done + i];

                        argv[i][0] = "EVALSHA";
                        argv[i][1] = cl->scripts[SCRIPT_TAKE].sha;
                        argv[i][2] = "1";
                        argv[i][3] = t->key;
                        argv[i][4] = t->token;
                        argv[i][5] = ttl;
                        argcs[i] = 6;
                        cmds[i] = argv[i];
                }
                if (redis_conn_pipeline_replies(sl->rc, m, argcs, cmds, replies, errstr,
                                                sizeof(errstr)) == -1)
                        break;
                for (size_t i = 0; i < m; i++) {
                        redisReply *r = replies[i];

                        if (r->type == REDIS_REPLY_INTEGER)
                                results[done + i] = result_of(r->integer);
                        else if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOSCRIPT"))
                                is_unloaded = true; /* taken below, one by one */
                        else
                                snprintf(errstr, sizeof(errstr), "unexpected reply type %d",
                                         r->type);
                        freeReplyObject(r);
                }
                if (is_unloaded) /* EVAL loads the script for the next turns */
                        for (size_t i = 0; i < m; i++)
                                if (!tickets[done + i]->is_taken &&
                                    results[done + i] == CLAIM_UNGUARDED) {
                                        pthread_mutex_unlock(&sl->lock);
                                        results[done + i] = result_of(
                                                run(cl, &cl->scripts[SCRIPT_TAKE],
                                                    tickets[done + i]->key, 2,
                                                    (const char *[]){tickets[done + i]->token, ttl},
                                                    trace_ids[done + i]));
                                        pthread_mutex_lock(&sl->lock);
                                }
                done += m;
        }
        if (sl)
                pthread_mutex_unlock(&sl->lock);
        if (cl->url && done < n && sl) {
                metric_add(cl->m_errors, 1);
                atomic_store(&cl->skip_until_ms, clock_mono_ms() + cl->retry_ms);
                log_warn(n ? trace_ids[0] : NULL, "callback lock: %s; failing open for %d ms",
                         errstr, cl->retry_ms);
        }
        for (size_t i = 0; i < n; i++) {
                tickets[i]->is_taken = results[i] == CLAIM_TAKEN;
                metric_add(cl->m_result[results[i]], 1);
        }
}

void claim_ticket_init(struct claim_ticket *t, const char *event_key, long long done_ttl_ms)
{
        ticket_init(t, event_key, done_ttl_ms);
}

enum claim_result claim_take(struct claim *cl, const char *event_key, long long done_ttl_ms,
                             const char *trace_id, struct claim_ticket *t)
{
        char ttl[24];
        const char *args[2] = {t->token, ttl};
        enum claim_result res;
        long long answer;

        ticket_init(t, event_key, done_ttl_ms);
        snprintf(ttl, sizeof(ttl), "%lld", cl->pending_ttl_ms);
        answer = run(cl, &cl->scripts[SCRIPT_TAKE], t->key, 2, args, trace_id);
        res = result_of(answer);
        t->is_taken = res == CLAIM_TAKEN;
        metric_add(cl->m_result[res], 1);
        return res;
}

void claim_confirm(struct claim *cl, struct claim_ticket *t)
{
        char ttl[24];
        const char *args[1] = {ttl};

        if (!t->is_taken)
                return;
        t->is_taken = 0;
        snprintf(ttl, sizeof(ttl), "%lld", t->done_ttl_ms);
        /* A failure here only shortens the guard to the pending TTL: the ledgers still hold. */
        (void)run(cl, &cl->scripts[SCRIPT_CONFIRM], t->key, 1, args, NULL);
}

void claim_confirm_later(struct claim *cl, struct claim_ticket *t, struct claim_batch *b)
{
        if (!t->is_taken)
                return;
        if (b->n == b->cap) {
                size_t cap = b->cap ? 2 * b->cap : 16;
                struct claim_pending *grown = realloc(b->items, cap * sizeof(*grown));

                if (!grown) { /* out of memory: confirmed now, one round trip */
                        claim_confirm(cl, t);
                        return;
                }
                b->items = grown;
                b->cap = cap;
        }
        t->is_taken = 0;
        memcpy(b->items[b->n].key, t->key, sizeof(t->key));
        text_int(b->items[b->n].ttl, sizeof(b->items[b->n].ttl), t->done_ttl_ms);
        b->n++;
}

void claim_flush(struct claim *cl, struct claim_batch *b)
{
        enum { CHUNK = 64 };
        const char *argv[CHUNK][5];
        const char **cmds[CHUNK];
        int argcs[CHUNK];
        char errstr[256] = "";
        struct slot *sl;
        size_t done = 0;

        if (!b->n)
                return;
        if (!cl->url || clock_mono_ms() < atomic_load(&cl->skip_until_ms)) {
                b->n = 0; /* failing open: the pending TTL bounds these keys */
                return;
        }
        sl = slot_acquire(cl);
        if (!sl->rc)
                sl->rc = redis_conn_new(cl->url, cl->timeout_ms, errstr, sizeof(errstr));
        while (sl->rc && done < b->n) {
                size_t n = b->n - done < CHUNK ? b->n - done : CHUNK;

                for (size_t i = 0; i < n; i++) {
                        argv[i][0] = "EVALSHA";
                        argv[i][1] = cl->scripts[SCRIPT_CONFIRM].sha;
                        argv[i][2] = "1";
                        argv[i][3] = b->items[done + i].key;
                        argv[i][4] = b->items[done + i].ttl;
                        argcs[i] = 5;
                        cmds[i] = argv[i];
                }
                if (redis_conn_pipeline(sl->rc, n, argcs, cmds, errstr, sizeof(errstr)) == -1)
                        break;
                done += n;
        }
        pthread_mutex_unlock(&sl->lock);
        if (done < b->n && strstr(errstr, "NOSCRIPT")) /* a restarted Redis: one by one */
                for (; done < b->n; done++)
                        (void)run(cl, &cl->scripts[SCRIPT_CONFIRM], b->items[done].key, 1,
                                  (const char *[]){b->items[done].ttl}, NULL);
        if (done < b->n) {
                metric_add(cl->m_errors, 1);
                atomic_store(&cl->skip_until_ms, clock_mono_ms() + cl->retry_ms);
                log_warn(NULL,
                         "callback lock: %zu confirmations not written: %s; failing open for %d ms",
                         b->n - done, errstr, cl->retry_ms);
        }
        b->n = 0;
}

void claim_batch_fini(struct claim_batch *b)
{
        free(b->items);
        memset(b, 0, sizeof(*b));
}

void claim_release(struct claim *cl, struct claim_ticket *t)
{
        const char *args[1] = {t->token};

        if (!t->is_taken)
                return;
        t->is_taken = 0;
        (void)run(cl, &cl->scripts[SCRIPT_RELEASE], t->key, 1, args, NULL);
}
