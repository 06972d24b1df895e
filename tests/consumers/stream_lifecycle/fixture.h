/*
 * fixture.h: what test_stream_lifecycle.c shares with its parts (handoff.c, redis_lost.c, sweep.c):
 * the fixture (the stream role's process, MariaDB, Redis, a producer), the stream events it
 * produces, the waits on MariaDB and Redis, and which binary this is (IS_SWEEP_BINARY).
 */
#ifndef LIVEFLOW_TEST_CONSUMERS_STREAM_LIFECYCLE_FIXTURE_H
#define LIVEFLOW_TEST_CONSUMERS_STREAM_LIFECYCLE_FIXTURE_H

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "support_worker.h"
#include "url.h"

/*
 * The ghost sweep's consumer closes every stream it sees silent, the streams of tests running
 * beside it included: its suite runs in test_stream_sweep.c, a binary of its own (binaries
 * run one after another), which compiles test_stream_lifecycle.c and its parts
 * with STREAM_SWEEP_ONLY (stream_sweep/).
 */
#ifdef STREAM_SWEEP_ONLY
#define IS_SWEEP_BINARY true
#else
#define IS_SWEEP_BINARY false
#endif

struct fixture {
        struct support_worker_fx w; /* the stream role's process, its database, a producer */
        redisContext *redis;
};

extern struct fixture fx;
/* Starts the stream role with the fixed test environment plus extra "K=V" entries (NULL-terminated;
 * NULL for none). */
void start_consumer_with(const char *const *extra);
void start_consumer(void);
/* Everything but the consumer, which a test then starts with the environment it needs. */
void setup_stores(void);
void teardown(void);
/* Produces one raw value to live.stream keyed by the stream, and waits for the ack. */
void produce_raw(const char *stream_id, const void *value, size_t len);
/* The event id produce_event() gives a stream event: it follows vendor, type, stream, sequence. */
void stream_event_id(const char *stream_id, bool begin, const char *sequence, char out[65]);
/* A stream event of `anchor` as the receiver would make it. */
void produce_event_of(const char *anchor, const char *stream_id, bool begin, const char *sequence,
                      long long event_time_s, int close_method, long long push_duration_ms);
/* A stream event of this test's anchor, anchor_<prefix>. */
void produce_event(const char *stream_id, bool begin, const char *sequence, long long event_time_s,
                   int close_method, long long push_duration_ms);
/* First column of the first row as text, or "" when there is no row or it is NULL. */
void query1(char *out, size_t out_size, const char *fmt, ...);
/* Waits until the stream's status column reads `want`. */
void wait_status(const char *stream_id, const char *want);
/* Waits until the role has recorded n events for the stream (applied, stale or duplicate). */
void wait_events(const char *stream_id, int n);
bool is_online(const char *stream_id);
/* Redis follows MySQL right after the commit: wait for it rather than race it. */
bool wait_online(const char *stream_id, bool want);
void stop_consumer_expect_clean_exit(void);

/* ------------------------------------------------------------------ handoff.c */

/* One session.end record of live.session as the test reads it back. */
struct session_end {
        char event_id_header[80];
        char event_type_header[32];
        char event_id[80];
        long long session_id, started_at_ms, ended_at_ms, duration_s, close_method;
};

/*
 * Reads every partition of live.session from the start for timeout_ms, or until `want`
 * session.end records of `session` keyed `key` were seen (want < 0: the whole time). @returns how
 * many.
 */
int read_session_ends(const char *key, long long session, struct session_end *out, int max,
                      int want, int timeout_ms);
/* Whether the consumer's log has a line containing every one of the NULL-terminated needles. */
bool log_has_line(const char *const *needles);
/* The close_method and event_type of the stream's recorded event `event_id` ("" when absent). */
void recorded_close(const char *event_id, char *type, size_t type_size);

#endif
