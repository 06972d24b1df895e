/*
 * support_worker.h: the fixture of a suite that runs one worker role against the fixtures: a
 * fresh database, a producer, a codec, and the worker's pid, group and log named after the test.
 */
#ifndef LIVEFLOW_TEST_SUPPORT_WORKER_H
#define LIVEFLOW_TEST_SUPPORT_WORKER_H

#include <sys/types.h>

#include "support.h"

#include <stdbool.h>

struct codec;
typedef struct json_t json_t;

/** What every worker suite's setup() makes and its teardown() undoes. */
struct support_worker_fx {
        char prefix[48];     /* support_unique_name() of the test, e.g. "rec_4711_1" */
        char group[96];      /* "test.<prefix>": tests run in parallel, each with its own group */
        char log_path[256];  /* "/tmp/<prefix>.consumer.log" */
        char mysql_url[512]; /* the test's own database */
        MYSQL *mysql;
        rd_kafka_t *producer;
        struct codec *codec;
        pid_t pid;      /* the worker, once the suite starts it (0: none) */
        int admin_port; /* its admin port */
};

/**
 * @brief Names the test after prefix (support_unique_name()), sets group and log_path, creates
 * its database (support_create_database()) and connects to it, opens a producer and a codec.
 * Starts no worker. Fails the test when one of them cannot be had.
 */
void support_worker_fx_open(struct support_worker_fx *fx, const char *prefix);

/**
 * @brief Stops the worker (SIGKILL when it is still running), closes what open made and zeroes
 * fx. Fine on a fixture open did not finish.
 */
void support_worker_fx_close(struct support_worker_fx *fx);

#define SUPPORT_WORKER_TRACE "0123456789abcdef0123456789abcdef" /* the events' trace id */

/**
 * @brief Produces value to topic, keyed key, with the headers trace_id (SUPPORT_WORKER_TRACE)
 * and event_type, and waits for the broker's ack.
 */
void support_worker_produce_raw(const struct support_worker_fx *fx, const char *topic,
                                const char *key, const void *value, size_t len,
                                const char *event_type);

/**
 * @brief A Tencent event as the receiver would make it, encoded by fx's codec and produced to
 * topic keyed key (support_worker_produce_raw()): its event id the SHA-256 of event_key (the
 * same event_key is the same event), received 5 ms after event_time_ms. Takes payload's
 * reference.
 */
void support_worker_produce_event(const struct support_worker_fx *fx, const char *topic,
                                  const char *key, const char *stream_id, const char *event_key,
                                  const char *event_type, long long event_time_ms,
                                  const char *payload_name, json_t *payload);

/**
 * @brief A Tencent stream begin or end of anchor (its anchor and room) as the receiver encodes it,
 * into a malloc'd *out of *out_len bytes: its event id follows vendor, type, stream and sequence;
 * an end carries close_method and, when push_duration_ms >= 0, push_duration_ms.
 */
void support_worker_encode_stream_event(const struct support_worker_fx *fx, const char *anchor,
                                        const char *stream_id, bool begin, const char *sequence,
                                        long long event_time_s, int close_method,
                                        long long push_duration_ms, void **out, size_t *out_len);

/**
 * @brief Produces to live.stream, keyed by stream_id, a Tencent stream begin or end as the
 * receiver makes it (its event id follows vendor, type, stream and sequence; anchor and room
 * "a_<stream_id>"), with the trace_id and event_type headers and, when replay_time is not NULL,
 * the replay.time header.
 */
void support_worker_produce_stream_event(const struct support_worker_fx *fx, const char *stream_id,
                                         bool begin, long long sequence, long long event_time_s,
                                         const char *replay_time);

#endif
