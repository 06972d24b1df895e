/* redis_conn.c: reconnect-on-error wrapper over hiredis 0.14 (no redisOptions there). */
#include "redis_conn.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "url.h"

struct redis_conn {
        redisContext *redis;
        struct redis_url url;
        int timeout_ms;
        bool is_unavailable; /* a failure since the last clear was Redis's, not a command's */
        char unavailable_why[256];
};

bool redis_conn_is_outage_reply(const char *msg)
{
        /* Redis is there but cannot serve: loading, a replica, no master, out of memory, a
         * failed save that stops writes, a script that blocks it, a full client table, or a
         * password it now wants. */
        static const char *const prefixes[] = {"LOADING",
                                               "READONLY",
                                               "MASTERDOWN",
                                               "OOM",
                                               "MISCONF",
                                               "BUSY",
                                               "NOAUTH",
                                               "WRONGPASS",
                                               "CLUSTERDOWN",
                                               "TRYAGAIN",
                                               "ERR max number of clients"};

        for (size_t i = 0; msg && i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
                if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

static void mark_unavailable(struct redis_conn *rc, const char *why)
{
        rc->is_unavailable = true;
        snprintf(rc->unavailable_why, sizeof(rc->unavailable_why), "%s", why);
}

bool redis_conn_unavailable(const struct redis_conn *rc, char *why, size_t why_size)
{
        if (!rc || !rc->is_unavailable)
                return false;
        if (why)
                snprintf(why, why_size, "%s", rc->unavailable_why);
        return true;
}

void redis_conn_clear_unavailable(struct redis_conn *rc)
{
        if (rc)
                rc->is_unavailable = false;
}

static struct timeval to_tv(int ms)
{
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

        return tv;
}

static int run_setup(struct redis_conn *rc, const char *cmd, const char *arg, char *errstr,
                     size_t errstr_size)
{
        redisReply *r = redisCommand(rc->redis, "%s %s", cmd, arg);
        int ok = r && r->type != REDIS_REPLY_ERROR;

        if (!ok)
                snprintf(errstr, errstr_size, "redis %s:%d: %s failed: %s", rc->url.host,
                         rc->url.port, cmd, r ? r->str : rc->redis->errstr);
        if (r)
                freeReplyObject(r);
        return ok ? 0 : -1;
}

static int connect_redis(struct redis_conn *rc, char *errstr, size_t errstr_size)
{
        char db[16];

        if (rc->redis)
                redisFree(rc->redis);
        rc->redis = redisConnectWithTimeout(rc->url.host, rc->url.port, to_tv(rc->timeout_ms));
        if (!rc->redis || rc->redis->err) {
                snprintf(errstr, errstr_size, "redis %s:%d: %s", rc->url.host, rc->url.port,
                         rc->redis ? rc->redis->errstr : "out of memory");
                if (rc->redis)
                        redisFree(rc->redis);
                rc->redis = NULL;
                return -1;
        }
        redisSetTimeout(rc->redis, to_tv(rc->timeout_ms));
        snprintf(db, sizeof(db), "%d", rc->url.db);
        if ((rc->url.password[0] &&
             run_setup(rc, "AUTH", rc->url.password, errstr, errstr_size) == -1) ||
            (rc->url.db && run_setup(rc, "SELECT", db, errstr, errstr_size) == -1)) {
                redisFree(rc->redis);
                rc->redis = NULL;
                return -1;
        }
        return 0;
}

struct redis_conn *redis_conn_new(const char *url, int timeout_ms, char *errstr, size_t errstr_size)
{
        struct redis_conn *rc = calloc(1, sizeof(*rc));

        if (!rc) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        rc->timeout_ms = timeout_ms;
        if (url_parse_redis(url, &rc->url, errstr, errstr_size) == -1 ||
            connect_redis(rc, errstr, errstr_size) == -1) {
                redis_conn_destroy(rc);
                return NULL;
        }
        return rc;
}

void redis_conn_destroy(struct redis_conn *rc)
{
        if (!rc)
                return;
        if (rc->redis)
                redisFree(rc->redis);
        free(rc);
}

static int ensure(struct redis_conn *rc, char *errstr, size_t errstr_size)
{
        if (rc->redis && !rc->redis->err)
                return 0;
        if (connect_redis(rc, errstr, errstr_size) == 0)
                return 0;
        mark_unavailable(rc, errstr);
        return -1;
}

/* A NULL reply means the context is dead; an error reply is freed and reported. */
/* An error reply's text into errstr; an outage (redis_conn_is_outage_reply) is remembered. */
static void note_error_reply(struct redis_conn *rc, const char *msg, char *errstr,
                             size_t errstr_size)
{
        snprintf(errstr, errstr_size, "redis %s:%d: %s", rc->url.host, rc->url.port, msg);
        if (redis_conn_is_outage_reply(msg))
                mark_unavailable(rc, errstr);
}

static redisReply *check(struct redis_conn *rc, redisReply *r, char *errstr, size_t errstr_size)
{
        if (!r) {
                snprintf(errstr, errstr_size, "redis %s:%d: %s", rc->url.host, rc->url.port,
                         rc->redis->errstr[0] ? rc->redis->errstr : "connection lost");
                if (!rc->redis->err)
                        rc->redis->err = REDIS_ERR_IO;
                mark_unavailable(rc, errstr);
                return NULL;
        }
        if (r->type == REDIS_REPLY_ERROR) {
                note_error_reply(rc, r->str, errstr, errstr_size);
                freeReplyObject(r);
                return NULL;
        }
        return r;
}

redisReply *redis_conn_cmd(struct redis_conn *rc, int argc, const char **argv, const size_t *lens,
                           char *errstr, size_t errstr_size)
{
        if (ensure(rc, errstr, errstr_size) == -1)
                return NULL;
        return check(rc, redisCommandArgv(rc->redis, argc, argv, lens), errstr, errstr_size);
}

/* Appends the decimal text of v to buf at *n. */
static void put_count(char *buf, size_t *n, size_t v)
{
        char digits[24];
        int k = 0;

        do {
                digits[k++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        while (k > 0)
                buf[(*n)++] = digits[--k];
}

size_t redis_resp_format(char *buf, size_t size, int argc, const char **argv)
{
        size_t n = 0;

        if (size < 32)
                return 0;
        buf[n++] = '*';
        put_count(buf, &n, (size_t)argc);
        buf[n++] = '\r';
        buf[n++] = '\n';
        for (int i = 0; i < argc; i++) {
                size_t len = strlen(argv[i]);

                if (n + len + 32 > size)
                        return 0;
                buf[n++] = '$';
                put_count(buf, &n, len);
                buf[n++] = '\r';
                buf[n++] = '\n';
                memcpy(buf + n, argv[i], len);
                n += len;
                buf[n++] = '\r';
                buf[n++] = '\n';
        }
        return n;
}

/* redisAppendCommandArgv() of a command written in RESP by redis_resp_format(). */
static int append_command(redisContext *c, int argc, const char **argv)
{
        char buf[1024];
        size_t n = redis_resp_format(buf, sizeof(buf), argc, argv);

        return n ? redisAppendFormattedCommand(c, buf, n)
                 : redisAppendCommandArgv(c, argc, argv, NULL);
}

int redis_conn_scan_page(struct redis_conn *rc, int argc, const char **argv, char cursor[32],
                         int (*each)(void *arg, const char *s, size_t len, char *errstr,
                                     size_t errstr_size),
                         void *arg, char *errstr, size_t errstr_size)
{
        redisReply *r = redis_conn_cmd(rc, argc, argv, NULL, errstr, errstr_size);
        int rc_ = 0;

        if (!r)
                return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
                freeReplyObject(r);
                snprintf(errstr, errstr_size, "redis: unexpected %s reply", argv[0]);
                return -1;
        }
        for (size_t i = 0; i < r->element[1]->elements && rc_ == 0; i++) {
                const redisReply *s = r->element[1]->element[i];

                if (s->type == REDIS_REPLY_STRING)
                        rc_ = each(arg, s->str, s->len, errstr, errstr_size);
        }
        if (rc_ == 0)
                snprintf(cursor, 32, "%s", r->element[0]->str);
        freeReplyObject(r);
        return rc_;
}

/* Connects if need be and queues the n commands of a pipeline (sent by the first read). */
static int send_pipeline(struct redis_conn *rc, size_t n, const int *argcs,
                         const char **const *cmds, char *errstr, size_t errstr_size)
{
        if (ensure(rc, errstr, errstr_size) == -1)
                return -1;
        for (size_t i = 0; i < n; i++)
                if (append_command(rc->redis, argcs[i], (const char **)cmds[i]) != REDIS_OK) {
                        snprintf(errstr, errstr_size, "redis: out of memory");
                        rc->redis->err = REDIS_ERR_OOM;
                        return -1;
                }
        return 0;
}

int redis_conn_pipeline(struct redis_conn *rc, size_t n, const int *argcs, const char **const *cmds,
                        char *errstr, size_t errstr_size)
{
        int rc_ = 0;

        if (send_pipeline(rc, n, argcs, cmds, errstr, errstr_size) == -1)
                return -1;
        /* Read every reply even after an error, so the connection stays in step. */
        for (size_t i = 0; i < n; i++) {
                void *reply = NULL;

                if (redisGetReply(rc->redis, &reply) != REDIS_OK) {
                        check(rc, NULL, errstr, errstr_size);
                        return -1;
                }
                redisReply *r = check(rc, reply, errstr, errstr_size);

                if (!r)
                        rc_ = -1;
                else
                        freeReplyObject(r);
        }
        return rc_;
}

int redis_conn_pipeline_replies(struct redis_conn *rc, size_t n, const int *argcs,
                                const char **const *cmds, redisReply **replies, char *errstr,
                                size_t errstr_size)
{
        for (size_t i = 0; i < n; i++)
                replies[i] = NULL;
        if (send_pipeline(rc, n, argcs, cmds, errstr, errstr_size) == -1)
                return -1;
        for (size_t i = 0; i < n; i++) {
                void *reply = NULL;

                if (redisGetReply(rc->redis, &reply) != REDIS_OK) {
                        check(rc, NULL, errstr, errstr_size);
                        for (size_t j = 0; j < i; j++) {
                                freeReplyObject(replies[j]);
                                replies[j] = NULL;
                        }
                        return -1;
                }
                replies[i] = reply;
        }
        return 0;
}

/* The reply to EXEC of n queued commands: an array of n replies, none an error. */
static int check_exec(struct redis_conn *rc, const redisReply *r, size_t n, char *errstr,
                      size_t errstr_size)
{
        if (r->type == REDIS_REPLY_ERROR) { /* EXECABORT: a command was refused when queued */
                note_error_reply(rc, r->str, errstr, errstr_size);
                return -1;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
                snprintf(errstr, errstr_size, "redis %s:%d: unexpected EXEC reply", rc->url.host,
                         rc->url.port);
                return -1;
        }
        for (size_t i = 0; i < n; i++)
                if (r->element[i]->type == REDIS_REPLY_ERROR) {
                        note_error_reply(rc, r->element[i]->str, errstr, errstr_size);
                        return -1;
                }
        return 0;
}

int redis_conn_multi_exec(struct redis_conn *rc, size_t n, const int *argcs,
                          const char **const *cmds, char *errstr, size_t errstr_size)
{
        const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
        int rc_ = 0;

        if (ensure(rc, errstr, errstr_size) == -1)
                return -1;
        if (append_command(rc->redis, 1, multi) != REDIS_OK)
                goto oom;
        for (size_t i = 0; i < n; i++)
                if (append_command(rc->redis, argcs[i], (const char **)cmds[i]) != REDIS_OK)
                        goto oom;
        if (append_command(rc->redis, 1, exec) != REDIS_OK)
                goto oom;
        /* Every reply is read, even after an error, so the connection stays in step. */
        for (size_t i = 0; i < n + 2; i++) {
                redisReply *r = NULL;

                if (redisGetReply(rc->redis, (void **)&r) != REDIS_OK) {
                        check(rc, NULL, errstr, errstr_size);
                        return -1;
                }
                if (rc_ == 0 && i == n + 1) {
                        rc_ = check_exec(rc, r, n, errstr, errstr_size);
                } else if (rc_ == 0 && r->type == REDIS_REPLY_ERROR) {
                        note_error_reply(rc, r->str, errstr, errstr_size);
                        rc_ = -1; /* the first error is the one to tell: EXEC then aborts */
                }
                freeReplyObject(r);
        }
        return rc_;
oom:
        snprintf(errstr, errstr_size, "redis: out of memory");
        rc->redis->err = REDIS_ERR_OOM;
        return -1;
}

redisReply *redis_conn_eval(struct redis_conn *rc, const char *script, int nkeys, const char **keys,
                            int nargs, const char **args, char *errstr, size_t errstr_size)
{
        const char *argv[64];
        unsigned char sha[EVP_MAX_MD_SIZE];
        char hex[41], n[16];
        unsigned int shalen = 0;
        int argc = 0;

        if (3 + nkeys + nargs > 64) {
                snprintf(errstr, errstr_size, "redis eval: too many arguments");
                return NULL;
        }
        EVP_Digest(script, strlen(script), sha, &shalen, EVP_sha1(), NULL);
        for (unsigned int i = 0; i < 20; i++)
                snprintf(hex + 2 * i, 3, "%02x", sha[i]);
        snprintf(n, sizeof(n), "%d", nkeys);
        argv[argc++] = "EVALSHA";
        argv[argc++] = hex;
        argv[argc++] = n;
        for (int i = 0; i < nkeys; i++)
                argv[argc++] = keys[i];
        for (int i = 0; i < nargs; i++)
                argv[argc++] = args[i];
        redisReply *r = redis_conn_cmd(rc, argc, argv, NULL, errstr, errstr_size);

        if (r || strstr(errstr, "NOSCRIPT") == NULL)
                return r;
        argv[0] = "EVAL"; /* not cached on this server yet: EVAL caches it for the next call */
        argv[1] = script;
        return redis_conn_cmd(rc, argc, argv, NULL, errstr, errstr_size);
}

int redis_conn_ping(struct redis_conn *rc, char *errstr, size_t errstr_size)
{
        const char *argv[] = {"PING"};
        redisReply *r = redis_conn_cmd(rc, 1, argv, NULL, errstr, errstr_size);

        if (!r)
                return -1;
        freeReplyObject(r);
        return 0;
}
