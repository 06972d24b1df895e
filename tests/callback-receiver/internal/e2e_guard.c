/*
 * e2e_guard.c: test_internal's receiver over HTTP, continued: the duplicate-callback guard
 * (lock:callback:*) as the event loop asks it without blocking: "done" before the 200, failing
 * open without Redis or with a Redis that does not answer, and a Redis that restarts.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "fixture.h"

/* GET key on the Redis at host:port (AUTH password first, unless NULL), db; the string in out
 * ("" when absent). */
static void redis_get_as(const char *host, int port, const char *password, int db, const char *key,
                         char *out, size_t out_size)
{
        redisContext *c = redisConnect(host, port);
        redisReply *r;

        cr_assert(c != NULL && !c->err, "redis %s:%d", host, port);
        if (password)
                freeReplyObject(redisCommand(c, "AUTH %s", password));
        if (db)
                freeReplyObject(redisCommand(c, "SELECT %d", db));
        r = redisCommand(c, "GET %s", key);
        cr_assert(r != NULL);
        snprintf(out, out_size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
        freeReplyObject(r);
        redisFree(c);
}

static void redis_get_at(const char *host, int port, int db, const char *key, char *out,
                         size_t out_size)
{
        redis_get_as(host, port, NULL, db, key, out, out_size);
}

/* GET key on the fixture Redis. */
static void redis_get(const char *key, char *out, size_t out_size)
{
        const char *url = support_fixture("LIVEFLOW_TEST_REDIS_URL");
        char host[64] = "127.0.0.1";
        int port = 0, db = 0;

        cr_assert(eq(int, sscanf(url, "redis://%63[^:]:%d/%d", host, &port, &db) >= 2, 1), "%s",
                  url);
        redis_get_at(host, port, db, key, out, out_size);
}

/* The value of one series ("name" or "name{labels}") in a /metrics body; -1 when absent. */
static long long series_value(const char *body, const char *series)
{
        char want[256];
        const char *at;

        snprintf(want, sizeof(want), "\n%s ", series);
        at = strstr(body, want);
        return at ? strtoll(at + strlen(want), NULL, 10) : -1;
}

static long long guard_series(const char *series)
{
        struct reply r = get_metrics();

        cr_assert(eq(long, r.status, 200), "%s", r.body);
        return series_value(r.body, series);
}

#define TAKEN       "liveflow_receiver_callback_lock_total{result=\"taken\"}"
#define UNGUARDED   "liveflow_receiver_callback_lock_total{result=\"unguarded\"}"
#define ERRORS      "liveflow_receiver_callback_lock_errors_total"
#define CLAIM_TIMES "liveflow_receiver_callback_lock_seconds_count{call=\"claim\"}"
#define MARK_TIMES  "liveflow_receiver_callback_lock_seconds_count{call=\"done\"}"

/* A signed unban of a fresh anchor under webhook-id msg (fresh too); the path in path. */
static struct reply post_unban(char *msg, size_t msg_size, char *path, size_t path_size)
{
        char anchor[64], body[256];

        support_unique_name("anchor", anchor, sizeof(anchor));
        support_unique_name("msg", msg, msg_size);
        snprintf(body, sizeof(body), "{\"action\":\"unban\",\"anchor_id\":\"%s\"}", anchor);
        snprintf(path, path_size, "/v1/admin/anchors/%s/unban", anchor);
        return post_signed(path, body, msg, NULL);
}

/*
 * An event loop marks a claim done once the broker acknowledged its event, and holds the 200
 * until Redis confirmed the mark: whoever saw the 200 finds lock:callback:* saying "done".
 */
Test(internal_e2e, the_claim_says_done_before_the_200_is_written)
{
        char path[256], msg[64], key[128], value[64], redis_env[256];
        struct reply r;

        start_sharing_redis(redis_env, sizeof(redis_env));
        for (int i = 0; i < 10; i++) {
                r = post_unban(msg, sizeof(msg), path, sizeof(path));
                cr_assert(eq(long, r.status, 200), "%s", r.body);
                snprintf(key, sizeof(key), "lock:callback:admin:%s", msg);
                redis_get(key, value, sizeof(value));
                cr_assert(strcmp(value, "done") == 0, "%s is \"%s\" after the 200 of request %d",
                          key, value, i);
        }
        cr_assert(eq(i64, guard_series(TAKEN), 10));
        cr_assert(eq(i64, guard_series(ERRORS), 0));
        /* every claim and every mark was answered: each round trip is in the histogram */
        cr_assert(eq(i64, guard_series(CLAIM_TIMES), 10));
        cr_assert(eq(i64, guard_series(MARK_TIMES), 10));
        support_receiver_stop(&rcv, false);
}

Test(internal_e2e, with_redis_down_the_guard_fails_open_and_counts)
{
        char path[256], msg[64];
        struct reply r;

        /* Nothing listens on port 1. */
        start_receiver_with("LIVEFLOW_HMAC_SECRET=" SECRET,
                            "LIVEFLOW_REDIS_URL=redis://127.0.0.1:1/0");
        r = post_unban(msg, sizeof(msg), path, sizeof(path));
        cr_assert(eq(long, r.status, 200), "%s", r.body);
        cr_assert(eq(i64, guard_series(UNGUARDED), 1));
        cr_assert(eq(i64, guard_series(ERRORS), 1));
        support_receiver_stop(&rcv, false);
}

/* ------------------------------------------------------------ a Redis that does not answer */

struct timed_unban {
        char msg[64], path[256];
        struct reply r;
        long long ms;
};

static void *unban_in_background(void *arg)
{
        struct timed_unban *tu = arg;
        long long t0 = support_now_ms();

        tu->r = post_unban(tu->msg, sizeof(tu->msg), tu->path, sizeof(tu->path));
        tu->ms = support_now_ms() - t0;
        return NULL;
}

/*
 * The loop waits for no Redis call: while a claim waits for a Redis that does not answer,
 * requests that need no claim on the same loop are answered at once; the claim fails open at
 * the guard's timeout, counted once.
 */
Test(internal_e2e, a_silent_redis_holds_up_only_the_request_whose_claim_waits)
{
        char redis_env[128];
        int port, fd = support_silent_listener(&port);
        const char *env[] = {"LIVEFLOW_HTTP_ADDR=127.0.0.1",
                             "LIVEFLOW_DRAIN_TIMEOUT_MS=5000",
                             "LIVEFLOW_HMAC_SECRET=" SECRET,
                             "LIVEFLOW_HTTP_THREADS=1", /* every connection on one loop */
                             "LIVEFLOW_CALLBACK_LOCK_TIMEOUT_MS=3000",
                             redis_env,
                             NULL};
        struct timed_unban tu = {0};
        long long slowest_ms = 0;
        pthread_t thread;

        snprintf(redis_env, sizeof(redis_env), "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%d/0", port);
        support_receiver_start(&rcv, "internal", NULL, env);
        cr_assert(eq(int, pthread_create(&thread, NULL, unban_in_background, &tu), 0));
        support_sleep_ms(300); /* its claim waits for Redis by now */
        for (int i = 0; i < 4; i++) {
                long long t0 = support_now_ms(), ms;
                struct reply r = post("/v1/rewards", reward_json, NULL, NULL); /* unsigned */

                ms = support_now_ms() - t0;
                cr_assert(eq(long, r.status, 401), "%s", r.body);
                slowest_ms = ms > slowest_ms ? ms : slowest_ms;
        }
        pthread_join(thread, NULL);
        fprintf(stderr,
                "silent redis: the guarded request was answered in %lld ms (timeout 3000 ms); "
                "the slowest of 4 requests meanwhile on the same loop took %lld ms\n",
                tu.ms, slowest_ms);
        /* The claim did wait for Redis, then failed open: stored, answered 200, counted... */
        cr_assert(eq(long, tu.r.status, 200), "%s; log %s", tu.r.body, rcv.log_path);
        cr_assert(ge(i64, tu.ms, 2500), "answered in %lld ms: the claim did not wait", tu.ms);
        cr_assert(eq(i64, guard_series(UNGUARDED), 1));
        cr_assert(eq(i64, guard_series(ERRORS), 1));
        cr_assert(eq(i64, guard_series(CLAIM_TIMES), 0)); /* no answer: no round trip */
        /* ...and nothing else on its loop waited. */
        cr_assert(lt(i64, slowest_ms, 1500), "a request waited %lld ms behind the claim",
                  slowest_ms);
        close(fd);
        support_receiver_stop(&rcv, false);
}

/* ------------------------------------------------------------ a Redis that restarts */

/*
 * A redis-server of the test's own on port, without persistence; up when it answers PING. It is
 * the test's "other" process, so that the suite's teardown kills it when the test fails.
 */
static pid_t start_private_redis_with(int port, const char *log_path, const char *password)
{
        char sh[] = "/bin/sh", dash_c[] = "-c", command[256];
        char *argv[] = {sh, dash_c, command, NULL};
        pid_t pid;

        snprintf(command, sizeof(command),
                 "exec redis-server --bind 127.0.0.1 --port %d --save '' --appendonly no%s%s", port,
                 password ? " --requirepass " : "", password ? password : "");
        pid = support_spawn(argv, NULL, log_path);
        other.pid = pid;
        for (int i = 0; i < 200; i++) {
                redisContext *c = redisConnect("127.0.0.1", port);
                redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
                /* up: PONG, or NOAUTH when it wants a password */
                bool is_up = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR);

                if (r)
                        freeReplyObject(r);
                if (c)
                        redisFree(c);
                if (is_up)
                        return pid;
                support_sleep_ms(50);
        }
        cr_assert(false, "redis-server on port %d did not answer in 10 s; log %s", port, log_path);
        return -1;
}

static pid_t start_private_redis(int port, const char *log_path)
{
        return start_private_redis_with(port, log_path, NULL);
}

static void stop_private_redis(pid_t pid)
{
        kill(pid, SIGKILL);
        support_wait_exit(pid, 5000);
        other.pid = 0;
}

/*
 * rcv asking a redis-server of the test's own (password NULL: none) on a free port, in database
 * db; the server's pid, its port in *port and its log in log_path.
 */
static pid_t start_on_private_redis(int *port, const char *password, int db, char *log_path,
                                    size_t log_size)
{
        char redis_env[192];
        pid_t redis;

        *port = support_free_port();
        support_unique_name("/tmp/liveflow_e2e_guard_redis", log_path, log_size);
        redis = start_private_redis_with(*port, log_path, password);
        snprintf(redis_env, sizeof(redis_env), "LIVEFLOW_REDIS_URL=redis://%s%s%s127.0.0.1:%d/%d",
                 password ? ":" : "", password ? password : "", password ? "@" : "", *port, db);
        start_receiver_with("LIVEFLOW_HMAC_SECRET=" SECRET, redis_env);
        return redis;
}

/* Stops rcv, then the redis-server, and removes its log. */
static void stop_on_private_redis(pid_t redis, const char *log_path)
{
        support_receiver_stop(&rcv, false);
        stop_private_redis(redis);
        unlink(log_path);
}

/*
 * Redis restarts between two requests: the loop sees its connection closed while no call
 * waits, and makes a new one for the next claim without failing open: the second claim is
 * taken and marked done on the new server, and no failure is counted.
 */
Test(internal_e2e, after_redis_restarts_the_guard_connects_again_and_holds)
{
        char log_path[256], path[256], msg[64], key[128], value[64];
        int port;
        pid_t redis = start_on_private_redis(&port, NULL, 0, log_path, sizeof(log_path));
        struct reply r;

        r = post_unban(msg, sizeof(msg), path, sizeof(path));
        cr_assert(eq(long, r.status, 200), "%s", r.body);

        stop_private_redis(redis); /* its scripts and keys are gone with it */
        redis = start_private_redis(port, log_path);
        support_sleep_ms(200); /* the receiver sees its connection closed */

        r = post_unban(msg, sizeof(msg), path, sizeof(path));
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, rcv.log_path);
        snprintf(key, sizeof(key), "lock:callback:admin:%s", msg);
        redis_get_at("127.0.0.1", port, 0, key, value, sizeof(value));
        cr_assert(strcmp(value, "done") == 0, "%s is \"%s\" on the restarted Redis", key, value);

        cr_assert(eq(i64, guard_series(TAKEN), 2));
        cr_assert(eq(i64, guard_series(ERRORS), 0), "log %s", rcv.log_path);
        stop_on_private_redis(redis, log_path);
}

/*
 * The loop's connection says AUTH and SELECT as LIVEFLOW_REDIS_URL does: with the password the
 * claim is taken and marked in the URL's database; with a wrong one the guard fails open,
 * counted once, and the request is still stored.
 */
Test(internal_e2e, the_guard_asks_redis_with_the_urls_password_and_database)
{
        char redis_env[160], log_path[256], path[256], msg[64], key[128], value[64];
        int port;
        pid_t redis = start_on_private_redis(&port, "guard-secret", 3, log_path, sizeof(log_path));
        struct reply r;

        r = post_unban(msg, sizeof(msg), path, sizeof(path));
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, rcv.log_path);
        snprintf(key, sizeof(key), "lock:callback:admin:%s", msg);
        redis_get_as("127.0.0.1", port, "guard-secret", 3, key, value, sizeof(value));
        cr_assert(strcmp(value, "done") == 0, "%s is \"%s\" in database 3", key, value);
        redis_get_as("127.0.0.1", port, "guard-secret", 0, key, value, sizeof(value));
        cr_assert(strcmp(value, "") == 0, "%s is in database 0 too", key);
        cr_assert(eq(i64, guard_series(TAKEN), 1));
        cr_assert(eq(i64, guard_series(ERRORS), 0), "log %s", rcv.log_path);
        support_receiver_stop(&rcv, false);

        snprintf(redis_env, sizeof(redis_env),
                 "LIVEFLOW_REDIS_URL=redis://:not-the-secret@127.0.0.1:%d/3", port);
        start_receiver_with("LIVEFLOW_HMAC_SECRET=" SECRET, redis_env);
        r = post_unban(msg, sizeof(msg), path, sizeof(path));
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, rcv.log_path);
        cr_assert(eq(i64, guard_series(UNGUARDED), 1));
        cr_assert(eq(i64, guard_series(ERRORS), 1));
        stop_on_private_redis(redis, log_path);
}
