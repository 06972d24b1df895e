/*
 * fixture.h: what test_stats.c shares with its parts (profile.c, live_statistics.c): the
 * fixture (a Kafka mock cluster, MariaDB, Redis, copies of liveflow-stats), the records it
 * produces and the reads of MariaDB, the logs and /metrics.
 */
#ifndef LIVEFLOW_TEST_STATS_WORKER_STATS_FIXTURE_H
#define LIVEFLOW_TEST_STATS_WORKER_STATS_FIXTURE_H

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"

#define MAX_WORKERS 2
#define MAX_ENV     24
#define HOUR_MS     3600000LL
#define TRACE       "0123456789abcdef0123456789abcdef"

struct worker {
        pid_t pid;
        int admin_port;
        char log[256];
};

/* One test's fixture: its Kafka mock cluster, its stores, its producer and its workers. */
struct stats_fixture {
        char prefix[48];
        char mysql_url[512];
        char bootstrap[256];
        int redis_db;
        rd_kafka_t *mock_rk; /* the handle the mock cluster lives on */
        rd_kafka_mock_cluster_t *mc;
        rd_kafka_t *producer;
        struct codec *codec;
        MYSQL *mysql;
        redisContext *redis;
        struct worker workers[MAX_WORKERS];
};
extern struct stats_fixture fx;

/* One tip as the test describes it; ids are suffixes of the test's prefix. */
struct tip_spec {
        const char *tip, *audience, *anchor;
        long long amount, ts_ms;
        const char *anchor_gender, *audience_gender; /* NULL: absent from the tip */
};

/* One viewer event; `n` makes the event id (a second join of a client is another event). */
struct viewer_spec {
        const char *client;
        bool is_join;
        long long at_ms;
        int n;
};

/* Runs a statement that returns no rows; fails the test on a SQL error. */
void exec_sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void flush(void);
/* The test's own id for a suffix: "<prefix>_<suffix>". */
void id_of(char *out, size_t out_size, const char *suffix);
void produce_session_end(const char *stream, const char *anchor, long long session,
                         long long started_ms, long long ended_ms);
void produce_tip(const struct tip_spec *t, const char *room_suffix);
void produce_viewer(const char *stream, const struct viewer_spec *v);
/* The value of a worker's /metrics series (name{labels} as rendered), or -1 when absent. */
long long scrape(int i, const char *series);
/* Starts worker i without waiting for it: its first profile run may start before it is ready. */
void spawn_worker(int i, const char *const extra[]);
void start_worker(int i, const char *const extra[]);
void stop_worker_expect_clean_exit(int i);
/* Selects the test's own Redis database, empty, for its workers and itself. */
void use_redis_db(int db);
/* Waits until the query's integer is at least want. */
void wait_at_least(long long want, int timeout_ms, const char *what, const char *sql);
/* Waits until `needle` is in the log file. */
bool wait_log(const char *path, const char *needle, int timeout_ms);
long long wall_ms(void);

#endif
