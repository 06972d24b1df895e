/*
 * fixture.h: what test_settlement.c shares with its parts (withdrawals.c, sessions.c): the rule
 * evaluated in 128 bits, the worker's fixture (copies of liveflow-settlement, MariaDB, a producer),
 * the records it produces and the reads of MariaDB and /metrics.
 */
#ifndef LIVEFLOW_TEST_SETTLEMENT_WORKER_SETTLEMENT_FIXTURE_H
#define LIVEFLOW_TEST_SETTLEMENT_WORKER_SETTLEMENT_FIXTURE_H

#include <ctype.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include "codec.h"
#include "crypto.h"
#include "settlement.h"
#include "support.h"
#include "support_worker.h"

#define MAX_COPIES 2
#define BASE_MS    1767225600000LL /* 2026-01-01T00:00:00Z */
#define TRACE      "0123456789abcdef0123456789abcdef"

struct copy {
        pid_t pid;
        int admin_port;
};

struct fixture {
        struct support_worker_fx w; /* w.prefix: ids, the group; w.pid unused: the copies run */
        struct copy copies[MAX_COPIES];
};

extern struct fixture fx;
/* The rule, independently of settlement_split(): the anchor's share, floored, in 128 bits. */
long long anchor_share(long long amount, long long ratio_bp);
/* Starts copy i of the worker; extra is one more "K=V" or NULL. */
void start_copy(int i, const char *extra);
void stop_copy(int i);
/* Encodes and queues one event; id_key makes the event id, as the receiver's ids are made. */
void produce(const char *topic, const char *key, const char *event_type, const char *id_key,
             const char *anchor, const char *room, long long time_ms, const char *payload_name,
             json_t *payload);
/* A tip as the receiver produces it; `copy` > 0 makes a different event id for the same tip. */
void produce_tip_as(const char *anchor, const char *tip_id, long long amount, long long ts_ms,
                    const char *audience, int copy);
void produce_tip(const char *anchor, const char *tip_id, long long amount, long long ts_ms);
void produce_withdrawal_as(const char *key, const char *anchor, const char *request_id,
                           long long amount, int copy);
void produce_withdrawal(const char *anchor, const char *request_id, long long amount);
void produce_session_end(long long session_id, const char *anchor, const char *room,
                         long long started_ms, long long ended_ms);
void flush(void);
long long query_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Polls until the query returns want; @returns the last value seen. */
long long wait_int(long long want, int timeout_ms, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void exec_sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void set_ratio(const char *anchor, long long effective_ms, long long ratio_bp);
void wait_details(const char *like, long long want);
void expect_balance(const char *anchor, long long total, long long withdrawn);
/* The counter of one copy's /metrics line that starts with `series`, or -1. */
long long scrape(int port, const char *series);

#endif
