/*
 * claim_loop.c: one event loop's asynchronous connection to the guard's Redis (see
 * claim_loop.h). hiredis's asynchronous context is driven by the loop itself: its event hooks
 * only note whether there is something to write, the loop polls the descriptor, and
 * claim_loop_serve() hands hiredis what became readable or writable. hiredis 0.14 has no
 * timeouts of its own, so the calls waiting are kept in the order they were sent (Redis answers
 * in that order) and the oldest one's age is the connection's: past the guard's timeout the
 * context is freed, which ends every waiting call, and the guard fails open as claim.c's does.
 */
#include "claim_loop.h"
#include "claim_int.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "redis_conn.h"
#include "text.h"
#include "url.h"

struct claim_loop {
        struct claim *cl;
        struct redis_url url;
        bool has_url;                     /* cl's URL parsed (it was checked at startup) */
        redisAsyncContext *ac;            /* NULL: not connected */
        bool wants_write;                 /* hiredis holds commands not written yet */
        bool is_quiet;                    /* abandoning: what fails is not counted or logged */
        bool is_detached;                 /* destroying: no callback is called */
        struct claim_ticket *head, *tail; /* calls waiting for an answer, oldest first */
};

struct claim_loop *claim_loop_new(struct claim *cl)
{
        struct claim_loop *cll = calloc(1, sizeof(*cll));
        char errstr[256];

        if (!cll)
                return NULL;
        cll->cl = cl;
        cll->has_url = cl->url && url_parse_redis(cl->url, &cll->url, errstr, sizeof(errstr)) == 0;
        return cll;
}

void claim_loop_destroy(struct claim_loop *cll)
{
        if (!cll)
                return;
        cll->is_detached = true;
        claim_loop_abandon(cll);
        free(cll);
}

/* ------------------------------------------------------------ hiredis's event hooks */

static void hook_nothing(void *data)
{
        (void)data; /* the loop always polls for reading while connected */
}

static void hook_add_write(void *data)
{
        ((struct claim_loop *)data)->wants_write = true;
}

static void hook_del_write(void *data)
{
        ((struct claim_loop *)data)->wants_write = false;
}

/* The context is being freed (after every waiting call's callback). */
static void hook_cleanup(void *data)
{
        struct claim_loop *cll = data;

        cll->ac = NULL;
        cll->wants_write = false;
}

/* ------------------------------------------------------------ calls */

static void push(struct claim_loop *cll, struct claim_ticket *t)
{
        t->next_call = NULL;
        if (cll->tail)
                cll->tail->next_call = t;
        else
                cll->head = t;
        cll->tail = t;
}

/* Unlinks t: the oldest call, as Redis answers in order, unless its take asked a GET since. */
static void unlink_call(struct claim_loop *cll, struct claim_ticket *t)
{
        struct claim_ticket **p = &cll->head, *prev = NULL;

        while (*p && *p != t) {
                prev = *p;
                p = &(*p)->next_call;
        }
        if (!*p)
                return;
        *p = t->next_call;
        if (cll->tail == t)
                cll->tail = prev;
        t->next_call = NULL;
}

/* Counted and logged once per outage: the first failure makes the guard skip Redis a while. */
static void note_failure(struct claim_loop *cll, const char *trace_id, const char *what)
{
        char why[512];

        if (cll->is_quiet || !claim_is_asked(cll->cl))
                return;
        snprintf(why, sizeof(why), "redis %.255s:%d: %.200s", cll->url.host, cll->url.port, what);
        claim_failed(cll->cl, trace_id, why);
}

/* The call of t ends: a take with res, a confirmation (res unused). */
static void finish(struct claim_loop *cll, struct claim_ticket *t, enum claim_result res)
{
        void (*on_taken)(void *, enum claim_result) = t->on_taken;
        void (*on_confirmed)(void *) = t->on_confirmed;

        t->on_taken = NULL;
        t->on_confirmed = NULL;
        if (on_taken) {
                claim_note_result(cll->cl, t, res);
                if (!cll->is_detached)
                        on_taken(t->arg, res);
        } else if (on_confirmed && !cll->is_detached) {
                on_confirmed(t->arg);
        }
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
        struct claim_loop *cll = ac->data;
        const redisReply *r = reply;

        (void)privdata;
        if (!r || r->type != REDIS_REPLY_ERROR)
                return;
        note_failure(cll, NULL, r->str);
        redisAsyncFree(ac); /* after this callback: every waiting call ends unguarded */
}

/* Why the connection's calls end without an answer. */
static const char *lost_why(const redisAsyncContext *ac)
{
        return ac->err && ac->errstr ? ac->errstr : "connection closed";
}

/* redisAsyncCommandArgv() of a command written in RESP by redis_resp_format(). */
static int queue_command(struct claim_loop *cll, redisCallbackFn *fn, struct claim_ticket *t,
                         int argc, const char **argv)
{
        char buf[1024];
        size_t n = redis_resp_format(buf, sizeof(buf), argc, argv);

        return n ? redisAsyncFormattedCommand(cll->ac, fn, t, buf, n)
                 : redisAsyncCommandArgv(cll->ac, fn, t, argc, argv, NULL);
}

/* A take's GET, asked when its SET found the key: whose it is ("done", or another request's). */
static void on_take_get(redisAsyncContext *ac, void *reply, void *privdata)
{
        struct claim_loop *cll = ac->data;
        struct claim_ticket *t = privdata;
        const redisReply *r = reply;
        enum claim_result res = CLAIM_UNGUARDED;

        unlink_call(cll, t);
        if (!r)
                note_failure(cll, t->trace_id, lost_why(ac)); /* every waiting call ends so */
        else if (claim_take_outcome(REDIS_REPLY_NIL, r, &res) == -1)
                note_failure(cll, t->trace_id, claim_reply_why(r));
        else
                claim_note_seconds(cll->cl, true, t->sent_us);
        finish(cll, t, res);
}

/*
 * A take's SET: OK ends the call, the key is ours. nil (the key is held) asks whose it is with
 * a GET, which only a duplicate pays for; the call waits on in its place meanwhile.
 */
static void on_take_set(redisAsyncContext *ac, void *reply, void *privdata)
{
        struct claim_loop *cll = ac->data;
        struct claim_ticket *t = privdata;
        const redisReply *r = reply;
        const char *get[2] = {"GET", t->key};

        if (r && r->type == REDIS_REPLY_NIL &&
            queue_command(cll, on_take_get, t, 2, get) == REDIS_OK)
                return;
        unlink_call(cll, t);
        if (r && r->type == REDIS_REPLY_STATUS) {
                claim_note_seconds(cll->cl, true, t->sent_us);
                finish(cll, t, CLAIM_TAKEN);
                return;
        }
        note_failure(cll, t->trace_id,
                     !r                           ? lost_why(ac)
                     : r->type == REDIS_REPLY_NIL ? "the connection is closing"
                                                  : claim_reply_why(r));
        finish(cll, t, CLAIM_UNGUARDED);
}

static void on_done_set(redisAsyncContext *ac, void *reply, void *privdata)
{
        struct claim_loop *cll = ac->data;
        struct claim_ticket *t = privdata;
        const redisReply *r = reply;

        unlink_call(cll, t);
        if (!r)
                note_failure(cll, t->trace_id, lost_why(ac));
        else if (r->type != REDIS_REPLY_STATUS)
                note_failure(cll, t->trace_id, claim_reply_why(r));
        else
                claim_note_seconds(cll->cl, false, t->sent_us);
        finish(cll, t, CLAIM_TAKEN); /* the result is a take's only */
}

/* A new connection, with AUTH and SELECT queued first as the URL says. */
static bool connect_redis(struct claim_loop *cll, const char *trace_id)
{
        redisAsyncContext *ac = redisAsyncConnect(cll->url.host, cll->url.port);
        char db[16];

        if (!ac || ac->err) {
                note_failure(cll, trace_id, ac ? ac->errstr : "out of memory");
                if (ac)
                        redisAsyncFree(ac);
                return false;
        }
        ac->data = cll;
        ac->ev.data = cll;
        ac->ev.addRead = hook_nothing;
        ac->ev.delRead = hook_nothing;
        ac->ev.addWrite = hook_add_write;
        ac->ev.delWrite = hook_del_write;
        ac->ev.cleanup = hook_cleanup;
        cll->ac = ac;
        text_int(db, sizeof(db), cll->url.db);
        if (cll->url.password[0])
                (void)redisAsyncCommandArgv(ac, on_setup_reply, NULL, 2,
                                            (const char *[]){"AUTH", cll->url.password}, NULL);
        if (cll->url.db)
                (void)redisAsyncCommandArgv(ac, on_setup_reply, NULL, 2,
                                            (const char *[]){"SELECT", db}, NULL);
        return true;
}

/* Queues t's take or "done" mark, or ends the call at once when Redis is not asked. */
static void send_call(struct claim_loop *cll, struct claim_ticket *t)
{
        const char *set[6], *done[5];
        char ttl[24];
        int rc;

        if (!cll->has_url || !claim_is_asked(cll->cl) ||
            (!cll->ac && !connect_redis(cll, t->trace_id))) {
                finish(cll, t, CLAIM_UNGUARDED);
                return;
        }
        if (t->on_taken) {
                claim_take_argv(cll->cl, t, set); /* the GET only if the SET finds the key held */
                rc = queue_command(cll, on_take_set, t, 6, set);
        } else {
                claim_done_argv(t, ttl, done);
                rc = queue_command(cll, on_done_set, t, 5, done);
        }
        if (rc != REDIS_OK) {
                note_failure(cll, t->trace_id, "the connection is closing");
                finish(cll, t, CLAIM_UNGUARDED);
                return;
        }
        t->sent_us = clock_mono_us();
        push(cll, t);
}

void claim_loop_take(struct claim_loop *cll, struct claim_ticket *t, const char *trace_id,
                     void (*on_taken)(void *arg, enum claim_result res), void *arg)
{
        t->trace_id = trace_id;
        t->on_taken = on_taken;
        t->on_confirmed = NULL;
        t->arg = arg;
        send_call(cll, t);
}

void claim_loop_confirm(struct claim_loop *cll, struct claim_ticket *t,
                        void (*on_confirmed)(void *arg), void *arg)
{
        if (!t->is_taken) {
                on_confirmed(arg);
                return;
        }
        t->is_taken = 0;
        t->on_taken = NULL;
        t->on_confirmed = on_confirmed;
        t->arg = arg;
        send_call(cll, t);
}

/* ------------------------------------------------------------ the loop's side */

void claim_loop_pollfd(const struct claim_loop *cll, struct pollfd *pfd)
{
        pfd->fd = cll->ac ? cll->ac->c.fd : -1;
        pfd->events = (short)(POLLIN | (cll->wants_write ? POLLOUT : 0));
        pfd->revents = 0;
}

void claim_loop_flush(struct claim_loop *cll)
{
        if (cll->ac && cll->wants_write)
                redisAsyncHandleWrite(cll->ac);
}

void claim_loop_serve(struct claim_loop *cll, short revents)
{
        if (cll->ac && (revents & (POLLIN | POLLERR | POLLHUP)))
                redisAsyncHandleRead(cll->ac);
        if (cll->ac && cll->head &&
            clock_mono_us() - cll->head->sent_us >= cll->cl->timeout_ms * 1000LL) {
                char why[64];

                snprintf(why, sizeof(why), "no answer within %d ms", cll->cl->timeout_ms);
                note_failure(cll, cll->head->trace_id, why);
                redisAsyncFree(cll->ac); /* every waiting call ends unguarded */
        }
        claim_loop_flush(cll);
}

int claim_loop_wait_ms(const struct claim_loop *cll)
{
        long long left;

        if (!cll->head)
                return -1;
        left = (cll->head->sent_us + cll->cl->timeout_ms * 1000LL - clock_mono_us() + 999) / 1000;
        return left < 0 ? 0 : (int)left;
}

void claim_loop_abandon(struct claim_loop *cll)
{
        if (!cll->ac)
                return;
        cll->is_quiet = true;
        redisAsyncFree(cll->ac);
        cll->is_quiet = false;
}
