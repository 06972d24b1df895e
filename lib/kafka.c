/* kafka.c: one place that knows how liveflow configures librdkafka producers and consumers. */
#include "kafka.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "settings.h"
#include "signals.h"

int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                   size_t errstr_size)
{
        char why[256];

        if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
                snprintf(errstr, errstr_size, "kafka property %s=%s: %s", name, value, why);
                return -1;
        }
        return 0;
}

/* librdkafka's own lines go through our logger, so one format covers the process. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
        (void)rk;
        if (level <= 3)
                log_error(NULL, "kafka %s: %s", fac, buf);
        else if (level <= 5)
                log_warn(NULL, "kafka %s: %s", fac, buf);
        else
                log_debug(NULL, "kafka %s: %s", fac, buf);
}

/* Errors librdkafka reports through error_cb, by kind: what a "broker unreachable" alert reads. */
enum kafka_error_kind {
        KAFKA_ERR_TRANSPORT,        /* a broker connection failed or was lost */
        KAFKA_ERR_ALL_BROKERS_DOWN, /* no broker reachable at all */
        KAFKA_ERR_RESOLVE,          /* a bootstrap or broker name did not resolve */
        KAFKA_ERR_AUTHENTICATION,   /* SASL or SSL refused us */
        KAFKA_ERR_TIMED_OUT,        /* requests timed out */
        KAFKA_ERR_FATAL,
        KAFKA_ERR_OTHER,
        KAFKA_ERR_KIND_CNT,
};

static const char *const kafka_error_kinds[] = {
        "transport", "all_brokers_down", "resolve", "authentication", "timed_out", "fatal", "other",
};

/* Process-wide, like librdkafka's own error_cb: every client of the process counts here. */
static atomic_llong kafka_errors[KAFKA_ERR_KIND_CNT];

static enum kafka_error_kind error_kind(int err)
{
        switch (err) {
        case RD_KAFKA_RESP_ERR__TRANSPORT:
                return KAFKA_ERR_TRANSPORT;
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
                return KAFKA_ERR_ALL_BROKERS_DOWN;
        case RD_KAFKA_RESP_ERR__RESOLVE:
                return KAFKA_ERR_RESOLVE;
        case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        case RD_KAFKA_RESP_ERR__SSL:
        case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
                return KAFKA_ERR_AUTHENTICATION;
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
                return KAFKA_ERR_TIMED_OUT;
        case RD_KAFKA_RESP_ERR__FATAL:
                return KAFKA_ERR_FATAL;
        default:
                return KAFKA_ERR_OTHER;
        }
}

static double errors_of_kind(void *arg)
{
        return (double)atomic_load((atomic_llong *)arg);
}

void kafka_register_metrics(struct metrics *m)
{
        char labels[64];

        for (int k = 0; k < KAFKA_ERR_KIND_CNT; k++) {
                snprintf(labels, sizeof(labels), "kind=\"%s\"", kafka_error_kinds[k]);
                metrics_counter_fn(m, "liveflow_kafka_errors_total",
                                   "Errors librdkafka reported (broker connections, name "
                                   "resolution, authentication, ...), by kind",
                                   labels, errors_of_kind, &kafka_errors[k]);
        }
}

/* Everything but a fatal error is recovered by librdkafka itself. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        (void)opaque;
        atomic_fetch_add(&kafka_errors[error_kind(err)], 1);
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char why[512];

                rd_kafka_fatal_error(rk, why, sizeof(why));
                log_error(NULL, "kafka fatal error: %s; stopping", why);
                signals_request_stop();
                return;
        }
        log_warn(NULL, "kafka: %s: %s", rd_kafka_err2name(err), reason);
}

rd_kafka_conf_t *kafka_conf_new(const struct settings *s, const char *client_id, char *errstr,
                                size_t errstr_size)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();

        if (kafka_conf_set(conf, "bootstrap.servers", s->kafka_bootstrap, errstr, errstr_size) ==
                    -1 ||
            kafka_conf_set(conf, "client.id", client_id, errstr, errstr_size) == -1) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        rd_kafka_conf_set_log_cb(conf, on_log);
        rd_kafka_conf_set_error_cb(conf, on_error);
        return conf;
}

int kafka_conf_apply_operator(rd_kafka_conf_t *conf, const struct settings *s, char *errstr,
                              size_t errstr_size)
{
        for (size_t i = 0; i < s->kafka_prop_cnt; i++)
                if (kafka_conf_set(conf, s->kafka_props[i].name, s->kafka_props[i].value, errstr,
                                   errstr_size) == -1)
                        return -1;
        return 0;
}

rd_kafka_t *kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr,
                             size_t errstr_size)
{
        char why[512];
        rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof(why));

        if (!rk) {
                snprintf(errstr, errstr_size, "kafka client: %s", why);
                rd_kafka_conf_destroy(conf);
        }
        return rk; /* on success conf is owned by rk */
}

rd_kafka_t *kafka_producer_new(const struct settings *s, const char *client_id,
                               void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               void *opaque, char *errstr, size_t errstr_size)
{
        /*
         * Durable before 200: every write waits for all in-sync replicas; idempotence keeps
         * librdkafka's internal retries from duplicating or reordering records. No linger:
         * every caller waits for its ack, and under load batches form by themselves while
         * earlier requests are in flight (measured: at 8 connections linger.ms=2 costs 3 ms
         * of every answer, at 64 it buys nothing). LIVEFLOW_KAFKA_PROP_LINGER_MS overrides.
         * Snappy rather than lz4: librdkafka builds a fresh LZ4 frame context (a 64 KiB
         * memset) for every batch, which made the producer thread 3x dearer per message at
         * the small batches of linger 0 (callgrind: 74 k vs 47 k instructions per message).
         * murmur2_random is the Java client's partitioner: a keyed record lands on the
         * partition Kafka's own tools (and a replay by liveflow-ctl) would pick for its key,
         * so per-key order holds whichever client writes; a record without a key goes to a
         * random partition.
         */
        static const char *const defaults[][2] = {
                {"enable.idempotence", "true"},
                {"acks", "all"},
                {"linger.ms", "0"},
                {"compression.type", "snappy"},
                {"message.timeout.ms", "30000"},
                {"queue.buffering.max.messages", "200000"},
                {"partitioner", "murmur2_random"},
        };
        rd_kafka_conf_t *conf = kafka_conf_new(s, client_id, errstr, errstr_size);

        if (!conf)
                return NULL;
        for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
                if (kafka_conf_set(conf, defaults[i][0], defaults[i][1], errstr, errstr_size) == -1)
                        goto fail;
        if (kafka_conf_apply_operator(conf, s, errstr, errstr_size) == -1)
                goto fail;
        if (dr_cb)
                rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_conf_set_opaque(conf, opaque);
        return kafka_client_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
fail:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

static int consumer_defaults(rd_kafka_conf_t *conf, const struct settings *s, const char *group,
                             int stats_interval_ms, char *errstr, size_t errstr_size)
{
        char session[32], heartbeat[32], stats[32];

        snprintf(session, sizeof(session), "%lld", s->session_timeout_ms);
        /* The default 3 s heartbeat would let a short (dev) session time out between beats. */
        snprintf(heartbeat, sizeof(heartbeat), "%lld",
                 s->session_timeout_ms / 3 < 3000 ? s->session_timeout_ms / 3 : 3000);
        snprintf(stats, sizeof(stats), "%d", stats_interval_ms);
        if (kafka_conf_set(conf, "group.id", group, errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "enable.auto.commit", "true", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "auto.commit.interval.ms", "1000", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", errstr,
                           errstr_size) == -1 ||
            kafka_conf_set(conf, "session.timeout.ms", session, errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "heartbeat.interval.ms", heartbeat, errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "statistics.interval.ms", stats, errstr, errstr_size) == -1 ||
            /*
             * A broker may hold a fetch for the whole wait even when records arrive meanwhile
             * (the dev broker does: tip-to-balance took 0.3 s at the default 500 ms, 29 ms at
             * 10 ms); Kafka answers at the first byte either way. 50 ms costs an idle consumer
             * 20 small fetches a second per broker.
             */
            kafka_conf_set(conf, "fetch.wait.max.ms", "50", errstr, errstr_size) == -1)
                return -1;
        /* Static membership: a restarted instance gets its partitions back without a rebalance. */
        if (s->instance_id &&
            kafka_conf_set(conf, "group.instance.id", s->instance_id, errstr, errstr_size) == -1)
                return -1;
        return 0;
}

static int subscribe(rd_kafka_t *rk, const char *const topics[], char *errstr, size_t errstr_size)
{
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
        rd_kafka_resp_err_t err;

        for (size_t i = 0; topics[i]; i++)
                rd_kafka_topic_partition_list_add(list, topics[i], RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        if (err) {
                snprintf(errstr, errstr_size, "kafka subscribe: %s", rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

rd_kafka_t *kafka_consumer_new(const struct settings *s, const char *group,
                               const char *const topics[],
                               void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                    rd_kafka_topic_partition_list_t *, void *),
                               int (*stats_cb)(rd_kafka_t *, char *, size_t, void *),
                               int stats_interval_ms, void *opaque, char *errstr,
                               size_t errstr_size)
{
        rd_kafka_conf_t *conf = kafka_conf_new(s, group, errstr, errstr_size);
        rd_kafka_t *rk;

        if (!conf)
                return NULL;
        if (consumer_defaults(conf, s, group, stats_cb ? stats_interval_ms : 0, errstr,
                              errstr_size) == -1 ||
            kafka_conf_apply_operator(conf, s, errstr, errstr_size) == -1) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        if (rebalance_cb)
                rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        if (stats_cb)
                rd_kafka_conf_set_stats_cb(conf, stats_cb);
        rd_kafka_conf_set_opaque(conf, opaque);
        if (!(rk = kafka_client_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size)))
                return NULL;
        rd_kafka_poll_set_consumer(rk);
        if (subscribe(rk, topics, errstr, errstr_size) == -1) {
                rd_kafka_destroy(rk);
                return NULL;
        }
        return rk;
}

int kafka_header_get(const rd_kafka_message_t *rkm, const char *name, char *out, size_t out_size)
{
        rd_kafka_headers_t *hdrs = NULL;
        const void *val;
        size_t len;

        if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            rd_kafka_header_get_last(hdrs, name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR || !val)
                return -1;
        if (len >= out_size)
                len = out_size - 1;
        memcpy(out, val, len);
        out[len] = '\0';
        return 0;
}
