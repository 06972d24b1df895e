/*
 * fixture.h: what test_audit.c shares with its parts (streams.c): the fixture (the audit and stream
 * roles' processes, MariaDB, Redis, a producer), the verdicts it produces and the checks of MariaDB
 * and Redis.
 */
#ifndef LIVEFLOW_TEST_CONSUMERS_AUDIT_FIXTURE_H
#define LIVEFLOW_TEST_CONSUMERS_AUDIT_FIXTURE_H

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "audit.h"
#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "support_worker.h"
#include "url.h"

#define TRACE_ID   "feedfacefeedfacefeedfacefeedface"
#define SUSPEND_S  86400LL
#define MAX_CLOSES 8

struct fixture {
        struct support_worker_fx w; /* w.pid unused: the two roles below are the workers */
        pid_t audit_pid, stream_pid;
        redisContext *redis;
        long long t0_ms; /* now, rounded to the second: suspensions from it are in force */
};

/* A verdict as the receiver would produce it. score and suspend_s: 0 means absent. */
struct vspec {
        const char *id;         /* unique in the test: the event id derives from it */
        const char *event_type; /* default audit.image */
        const char *stream, *anchor;
        long long at_s; /* event time: t0 + at_s */
        const char *action, *suggestion, *label, *reason;
        int score;
        long long suspend_s;
};

extern struct fixture fx;
pid_t start_role(const char *role, const char *group);
void stop_cleanly(pid_t *pid);
void kill_left(pid_t pid);
void produce_raw(const char *topic, const char *key, const void *value, size_t len,
                 const char *event_type);
void event_id_of(const char *id, char out[65]);
void encode_and_send(const struct envelope *env, const char *payload_name, json_t *payload,
                     const char *key);
void verdict(const struct vspec *v);
void query1(char *out, size_t out_size, const char *fmt, ...);
long long query_int(const char *fmt, ...);
/* A column of the verdict's log row, as text ("" for NULL or no row). */
void log_col(char *out, size_t out_size, const char *id, const char *col);
void wait_logged(const char *id);
void anchor_col(char *out, size_t out_size, const char *anchor, const char *col);
void expect_log(const char *id, const char *punishment, const char *outcome);
void expect_anchor(const char *anchor, const char *status, long long until_ms, long long warnings);
void redis_field(const char *anchor, const char *field, char *out, size_t out_size);
/* Redis follows MySQL right after the commit: wait for it rather than race it. */
void expect_redis(const char *anchor, const char *status, long long until_ms);
void name(char *out, size_t out_size, const char *what);

#endif
