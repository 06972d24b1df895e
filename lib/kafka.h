/* kafka.h: librdkafka clients configured the liveflow way (idempotent producer, manual offset
 * store). */
#ifndef LIVEFLOW_KAFKA_H
#define LIVEFLOW_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

struct settings;
struct metrics;

/**
 * @brief Registers liveflow_kafka_errors_total{kind}: what the error callback of every client
 * of this process counted (transport, all_brokers_down, resolve, authentication, timed_out,
 * fatal, other).
 */
void kafka_register_metrics(struct metrics *m);

/**
 * @brief A configuration with the bootstrap servers, liveflow's logger as log_cb, an error_cb
 * that requests a stop only on RD_KAFKA_RESP_ERR__FATAL, and every LIVEFLOW_KAFKA_PROP_* applied
 * last so an operator can override any default. @returns NULL with errstr naming the property.
 */
rd_kafka_conf_t *kafka_conf_new(const struct settings *s, const char *client_id, char *errstr,
                                size_t errstr_size);

/** @brief Sets a property; @returns 0 or -1 with errstr ("name=value: reason"). */
__attribute__((warn_unused_result)) int kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
                                                       const char *value, char *errstr,
                                                       size_t errstr_size);

/** @brief Applies every LIVEFLOW_KAFKA_PROP_* (last, so it overrides). @returns 0 or -1. */
__attribute__((warn_unused_result)) int kafka_conf_apply_operator(rd_kafka_conf_t *conf,
                                                                  const struct settings *s,
                                                                  char *errstr, size_t errstr_size);

/**
 * @brief rd_kafka_new() with its error as "kafka client: ..." in errstr. Takes conf: rk owns
 * it, or it is destroyed when the client cannot be made. @returns the client, or NULL.
 */
rd_kafka_t *kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr,
                             size_t errstr_size);

/**
 * @brief An idempotent, acks=all producer. dr_cb (may be NULL) receives every delivery report
 * from rd_kafka_poll(). Operator properties from the settings override the defaults.
 */
rd_kafka_t *kafka_producer_new(const struct settings *s, const char *client_id,
                               void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               void *opaque, char *errstr, size_t errstr_size);

/**
 * @brief A consumer in group `group` subscribed to the NULL-terminated `topics`, with
 * cooperative-sticky assignment, static membership when LIVEFLOW_INSTANCE_ID is set,
 * enable.auto.offset.store=false (offsets are stored only after effects are durable),
 * auto-commit of stored offsets, and statistics every stats_interval_ms (0: off) delivered
 * to stats_cb. rebalance_cb may be NULL for the default incremental behaviour.
 */
rd_kafka_t *kafka_consumer_new(const struct settings *s, const char *group,
                               const char *const topics[],
                               void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                    rd_kafka_topic_partition_list_t *, void *),
                               int (*stats_cb)(rd_kafka_t *, char *, size_t, void *),
                               int stats_interval_ms, void *opaque, char *errstr,
                               size_t errstr_size);

/** @brief Value of the last header `name` as a NUL-terminated copy in out, or -1 when absent. */
int kafka_header_get(const rd_kafka_message_t *rkm, const char *name, char *out, size_t out_size);

#endif
