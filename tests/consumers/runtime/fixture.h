/*
 * fixture.h: what test_runtime.c shares with its part copies.c: the fixture (copies of the
 * stream role, MariaDB, Redis, a producer), the events it produces and the reads of MariaDB,
 * Redis and /metrics.
 */
#ifndef LIVEFLOW_TEST_CONSUMERS_RUNTIME_FIXTURE_H
#define LIVEFLOW_TEST_CONSUMERS_RUNTIME_FIXTURE_H

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "support_stack.h"
#include "support_worker.h"
#include "url.h"

#define MAX_COPIES 3

struct copy {
        pid_t pid;
        int admin_port;
};

/* One test's fixture: the copies of the stream role it runs, its stores and its producer. */
struct runtime_fixture {
        struct support_worker_fx w; /* w.pid unused: the copies are the workers */
        char consumer_url[512];     /* what the consumers connect to (maybe through the relay) */
        struct copy copies[MAX_COPIES];
        redisContext *redis;
        struct support_proxy *proxy;
        int redis_db;              /* the worker's and fx.redis's Redis database */
        const char *replay_header; /* produce_event() adds replay.time with this value */
};
extern struct runtime_fixture fx;

#define STORE_DOWN(store) "liveflow_consumer_store_unavailable{role=\"stream\",store=\"" store "\"}"

long long count_events(void);
void flush(void);
/* A stream event as the receiver makes it: the id follows vendor, type, stream and sequence. */
void produce_event(const char *stream_id, bool begin, long long sequence, long long event_time_s);
/* The counter of one copy's /metrics line that starts with `series`, or -1. */
long long scrape(int port, const char *series);
/*
 * Starts a copy of the stream role in the test's group, on the test's Redis database
 * (use_redis_db), without waiting for it to join.
 */
void spawn_copy(int i);
void start_at_end(const char *const extra_env[]);
void start_copy(int i);
void stop_copy0(void);
/*
 * Every test's worker reads every test's records of live.stream and projects them into Redis:
 * a test that asserts what Redis lacks gives its worker a Redis database of its own (1..15).
 */
void use_redis_db(int db);
void wait_copy_ready(int i);
bool wait_events(long long want, int timeout_ms);
void wait_status(const char *stream_id, const char *want);

#endif
