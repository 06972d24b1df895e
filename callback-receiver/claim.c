/*
 * claim.c: lock:callback:{event_key} in Redis (see claim.h). Each verb is one Lua script, so
 * "take or tell what holds it", "done" and "release if still mine" are atomic. The pool holds a
 * connection per concurrent caller; a caller takes the first free one. While Redis fails, it
 * is skipped for retry_ms so that an outage costs the requests nothing but the guard.
 */
#include "claim.h"
#include "claim_int.h"

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

static const char take_script[] =
        "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end "
        "if redis.call('GET', KEYS[1]) == 'done' then return 2 end "
        "return 3";
static const char confirm_script[] = "redis.call('SET', KEYS[1], 'done', 'PX', ARGV[1]) "
                                     "return 1";
static const char release_script[] =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
        "return 0";

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

        if (!claim_is_asked(cl))
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
        if (answer == -1)
                claim_failed(cl, trace_id, errstr);
        return answer;
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

/* A fresh ticket for event_key. */
static void ticket_init(struct claim_ticket *t, const char *event_key, long long done_ttl_ms)
{
        memset(t, 0, sizeof(*t));
        size_t len = 0;

        (void)text_append(t->key, sizeof(t->key), &len, CLAIM_KEY_PREFIX);
        (void)text_append(t->key, sizeof(t->key), &len, event_key);
        trace_id_new(t->token);
        t->done_ttl_ms = done_ttl_ms;
}

enum claim_result claim_result_of(long long answer)
{
        return answer == 1   ? CLAIM_TAKEN
               : answer == 2 ? CLAIM_DONE
               : answer == 3 ? CLAIM_BUSY
                             : CLAIM_UNGUARDED;
}

void claim_note_result(struct claim *cl, struct claim_ticket *t, enum claim_result res)
{
        t->is_taken = res == CLAIM_TAKEN;
        metric_add(cl->m_result[res], 1);
}

void claim_ticket_init(struct claim_ticket *t, const char *event_key, long long done_ttl_ms)
{
        ticket_init(t, event_key, done_ttl_ms);
}

enum claim_result claim_take(struct claim *cl, const char *event_key, long long done_ttl_ms,
                             const char *trace_id, struct claim_ticket *t)
{
        const char *args[2] = {t->token, cl->pending_ttl};
        enum claim_result res;

        ticket_init(t, event_key, done_ttl_ms);
        res = claim_result_of(run(cl, &cl->scripts[SCRIPT_TAKE], t->key, 2, args, trace_id));
        claim_note_result(cl, t, res);
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

void claim_release(struct claim *cl, struct claim_ticket *t)
{
        const char *args[1] = {t->token};

        if (!t->is_taken)
                return;
        t->is_taken = 0;
        (void)run(cl, &cl->scripts[SCRIPT_RELEASE], t->key, 1, args, NULL);
}
