/* kafka_fixture.h: dead letters and topic reads on the fixture broker for tests/ops/ctl/. */
#ifndef LIVEFLOW_TEST_CTL_KAFKA_FIXTURE_H
#define LIVEFLOW_TEST_CTL_KAFKA_FIXTURE_H

#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* A dead letter as a liveflow consumer writes it. */
struct fx_dead {
        const char *key;
        const char *value;
        size_t value_len; /* 0: strlen(value) */
        const char *event_type;
        const char *error_class;
        const char *group;
        long long dead_at_ms;
        int partition;
        long long source_offset; /* dlq.offset; 0: a new one per record */
};

static inline void fx_produce_dead(rd_kafka_t *p, const char *source, const struct fx_dead *d)
{
        static long long next_offset = 1000;
        char dlq[300], ts[32], off[32];
        size_t len = d->value_len ? d->value_len : strlen(d->value);

        snprintf(dlq, sizeof(dlq), "%s.dlq", source);
        snprintf(ts, sizeof(ts), "%lld", d->dead_at_ms);
        snprintf(off, sizeof(off), "%lld", d->source_offset ? d->source_offset : next_offset++);
        cr_assert(
                rd_kafka_producev(
                        p, RD_KAFKA_V_TOPIC(dlq), RD_KAFKA_V_PARTITION(d->partition),
                        RD_KAFKA_V_KEY(d->key, strlen(d->key)),
                        RD_KAFKA_V_VALUE((void *)d->value, len),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_HEADER("trace_id", "0123456789abcdef0123456789abcdef", -1),
                        RD_KAFKA_V_HEADER("event_type", d->event_type, -1),
                        RD_KAFKA_V_HEADER("dlq.topic", source, -1),
                        RD_KAFKA_V_HEADER("dlq.partition", "1", -1),
                        RD_KAFKA_V_HEADER("dlq.offset", off, -1),
                        RD_KAFKA_V_HEADER("dlq.timestamp", ts, -1),
                        RD_KAFKA_V_HEADER("dlq.group", d->group, -1),
                        RD_KAFKA_V_HEADER("dlq.attempts", "3", -1),
                        RD_KAFKA_V_HEADER("dlq.error.class", d->error_class, -1),
                        RD_KAFKA_V_HEADER("dlq.error.message", "Table 'x' doesn't exist, a, b", -1),
                        RD_KAFKA_V_END) == 0);
        cr_assert(eq(int, rd_kafka_flush(p, 10000), 0));
}

/* A record read back; a consumer's messages must all be gone before it can be destroyed. */
struct fx_rec {
        int partition;
        char key[128];
        size_t key_len;
        char value[1024];
        size_t len;
        rd_kafka_headers_t *headers; /* a copy; fx_rec_fini() frees it */
};

static inline void fx_rec_fini(struct fx_rec *r, int n)
{
        for (int i = 0; i < n; i++)
                if (r[i].headers)
                        rd_kafka_headers_destroy(r[i].headers);
}

static inline void fx_rec_copy(struct fx_rec *r, const rd_kafka_message_t *m)
{
        rd_kafka_headers_t *h = NULL;

        memset(r, 0, sizeof(*r));
        r->partition = (int)m->partition;
        r->key_len = m->key_len < sizeof(r->key) ? m->key_len : sizeof(r->key) - 1;
        memcpy(r->key, m->key, r->key_len);
        r->len = m->len < sizeof(r->value) ? m->len : sizeof(r->value) - 1;
        memcpy(r->value, m->payload, r->len);
        r->headers = rd_kafka_message_headers(m, &h) == 0 ? rd_kafka_headers_copy(h)
                                                          : rd_kafka_headers_new(1);
}

/* Every record of topic, oldest first per partition (fx_rec_fini() frees them). */
static inline int fx_read_all(const char *topic, struct fx_rec *out, int max)
{
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt;
        rd_kafka_t *rk;
        int n = 0, parts, eofs = 0;
        long long deadline = support_now_ms() + 15000;
        char group[64];

        rd_kafka_conf_set(conf, "bootstrap.servers",
                          support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err, sizeof(err));
        support_unique_name("fx-reader", group, sizeof(group));
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        cr_assert(rk != NULL, "%s", err);
        rkt = rd_kafka_topic_new(rk, topic, NULL);
        cr_assert(eq(int, rd_kafka_metadata(rk, 0, rkt, &md, 10000), 0));
        parts = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        for (int i = 0; i < parts; i++)
                rd_kafka_topic_partition_list_add(list, topic, i)->offset =
                        RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        while (eofs < parts && support_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);

                if (!m)
                        continue;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        eofs++;
                if (!m->err && n < max)
                        fx_rec_copy(&out[n++], m);
                rd_kafka_message_destroy(m);
        }
        rd_kafka_assign(rk, NULL);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return n;
}

static inline int fx_partitions(const char *topic)
{
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt;
        rd_kafka_t *rk;
        int n;

        rd_kafka_conf_set(conf, "bootstrap.servers",
                          support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        rkt = rd_kafka_topic_new(rk, topic, NULL);
        cr_assert(eq(int, rd_kafka_metadata(rk, 0, rkt, &md, 10000), 0));
        n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return n;
}

/* A member of a group that keeps polling, as a running role does (or a replay in progress). */
struct fx_busy {
        char group[64];
        char topic[128];
        bool cooperative;
        atomic_bool stop;
        atomic_int assigned;
        pthread_t thread;
};

static inline void *fx_busy_run(void *arg)
{
        struct fx_busy *b = arg;
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_t *mine = NULL;
        rd_kafka_t *rk;

        rd_kafka_conf_set(conf, "bootstrap.servers", getenv("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err,
                          sizeof(err));
        rd_kafka_conf_set(conf, "group.id", b->group, err, sizeof(err));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
        rd_kafka_conf_set(conf, "session.timeout.ms", "3000", err, sizeof(err));
        rd_kafka_conf_set(conf, "heartbeat.interval.ms", "500", err, sizeof(err));
        rd_kafka_conf_set(conf, "partition.assignment.strategy",
                          b->cooperative ? "cooperative-sticky" : "range", err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        rd_kafka_poll_set_consumer(rk);
        rd_kafka_topic_partition_list_add(sub, b->topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        while (!atomic_load(&b->stop)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

                if (m)
                        rd_kafka_message_destroy(m);
                if (rd_kafka_assignment(rk, &mine) == 0) {
                        atomic_store(&b->assigned, mine->cnt);
                        rd_kafka_topic_partition_list_destroy(mine);
                }
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return NULL;
}

/* Starts b (its group set by the caller) on topic; returns once it holds a partition. */
static inline void fx_busy_start(struct fx_busy *b, const char *topic, bool cooperative)
{
        snprintf(b->topic, sizeof(b->topic), "%s", topic);
        b->cooperative = cooperative;
        pthread_create(&b->thread, NULL, fx_busy_run, b);
        for (int i = 0; i < 300 && atomic_load(&b->assigned) == 0; i++)
                support_sleep_ms(100);
        cr_assert(atomic_load(&b->assigned) > 0, "the busy member got no partition");
}

static inline void fx_busy_stop(struct fx_busy *b)
{
        atomic_store(&b->stop, true);
        pthread_join(b->thread, NULL);
}

#endif
