/* receiver.h: the callback receiver: HTTP in, verified events out to Kafka, 200 only once durable.
 */
#ifndef LIVEFLOW_RECEIVER_RECEIVER_H
#define LIVEFLOW_RECEIVER_RECEIVER_H

#include <stddef.h>

struct settings;
struct receiver;

/**
 * @brief Checks what settings_load() cannot: the log level, the listen addresses, the
 * Tencent keys and allowlist. Connects nothing (--check-config).
 * @returns 0, or -1 with errstr naming the key and the value.
 */
__attribute__((warn_unused_result)) int receiver_check_config(const struct settings *s,
                                                              char *errstr, size_t errstr_size);

/**
 * @brief Makes the producer, then serves HTTP on LIVEFLOW_HTTP_ADDR:PORT (libmicrohttpd's
 * threads) and the probes on LIVEFLOW_ADMIN_ADDR:PORT. s is borrowed and must outlive the
 * receiver. @returns the receiver (receiver_destroy() frees it), or NULL with errstr set.
 */
struct receiver *receiver_new(const struct settings *s, char *errstr, size_t errstr_size);

/** @brief Writes "http=addr:port admin=... librdkafka=... libmicrohttpd=..." for the ready line. */
void receiver_describe(const struct receiver *rcv, char *out, size_t out_size);

/**
 * @brief One turn of the main loop: serves delivery reports (which answer the waiting
 * requests) for up to timeout_ms, and logs the stats line once a minute.
 */
void receiver_serve(struct receiver *rcv, int timeout_ms);

/**
 * @brief The SIGTERM drain: stop accepting, let the waiting requests get their acks until
 * timeout_ms, answer the rest 503, stop HTTP, flush the producer within what is left.
 * @returns 0 when every message reached the broker, -1 when some did not (logged).
 */
int receiver_drain(struct receiver *rcv, long long timeout_ms);

/** @brief Stops what still runs and frees everything; NULL is fine. */
void receiver_destroy(struct receiver *rcv);

#endif
