/* support_kafka.c: the test suites' Kafka helpers: producing, reading a topic from its end,
 * consumer groups' offsets and dead letters (support.h). */
#include "support.h"

#include "codec.h"

#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rd_kafka_t *support_producer(void)
{
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;

        cr_assert(rd_kafka_conf_set(conf, "bootstrap.servers",
                                    support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err,
                                    sizeof(err)) == RD_KAFKA_CONF_OK);
        cr_assert(rd_kafka_conf_set(conf, "acks", "all", err, sizeof(err)) == RD_KAFKA_CONF_OK);
        /* the records of one key share a partition with those liveflow's producers write */
        cr_assert(rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, sizeof(err)) ==
                  RD_KAFKA_CONF_OK);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        cr_assert(rk, "%s", err);
        return rk;
}

void support_produce(rd_kafka_t *producer, const char *topic, const char *key, const void *value,
                     size_t len, const char *event_type)
{
        cr_assert(rd_kafka_producev(
                          producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE((void *)value, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADER("trace_id", "0123456789abcdef0123456789abcdef", -1),
                          RD_KAFKA_V_HEADER("event_type", event_type, -1), RD_KAFKA_V_END) == 0);
        cr_assert(rd_kafka_flush(producer, 10000) == 0);
}

int support_count_records(const char *topic, const char *key, const char *header_name,
                          char *header_out, size_t header_size, int timeout_ms, int want)
{
        char group[64];
        rd_kafka_topic_partition_list_t *t;
        long long deadline = support_now_ms() + timeout_ms;
        rd_kafka_t *rk;
        int count = 0, cnt;

        support_unique_name("count", group, sizeof(group));
        rk = support_group_client(group);
        /* Every partition assigned from its start: no group join (on the dev broker a new
         * group's first join alone takes 3 s). */
        cnt = support_partition_count(rk, topic);
        t = rd_kafka_topic_partition_list_new(cnt);
        for (int p = 0; p < cnt; p++)
                rd_kafka_topic_partition_list_add(t, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        cr_assert(rd_kafka_assign(rk, t) == RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_topic_partition_list_destroy(t);
        if (header_out && header_size)
                header_out[0] = '\0';
        while (support_now_ms() < deadline && (want < 0 || count < want)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                rd_kafka_headers_t *h = NULL;
                const void *val;
                size_t len;

                if (!m)
                        continue;
                if (!m->err && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0) {
                        count++;
                        if (header_name && rd_kafka_message_headers(m, &h) == 0 &&
                            rd_kafka_header_get_last(h, header_name, &val, &len) == 0)
                                snprintf(header_out, header_size, "%.*s", (int)len,
                                         (const char *)val);
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return count;
}

/* ------------------------------------------------------------ topic reader */

#define READER_MAX_PARTITIONS 64

struct support_reader {
        rd_kafka_t *rk;
};

struct support_reader *support_reader_open(const char *topic)
{
        char group[64];
        struct support_reader *r = calloc(1, sizeof(*r));
        rd_kafka_topic_partition_list_t *parts;
        int cnt;

        cr_assert_not_null(r);
        support_unique_name("reader", group, sizeof(group));
        r->rk = support_group_client(group); /* assigned, never subscribed: it joins nothing */
        cnt = support_partition_count(r->rk, topic);
        cr_assert(cnt <= READER_MAX_PARTITIONS, "%s has %d partitions", topic, cnt);
        parts = rd_kafka_topic_partition_list_new(cnt);
        for (int p = 0; p < cnt; p++) {
                int64_t low, high;
                rd_kafka_resp_err_t err =
                        rd_kafka_query_watermark_offsets(r->rk, topic, p, &low, &high, 10000);

                cr_assert(err == RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks %s[%d]: %s", topic, p,
                          rd_kafka_err2str(err));
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset = high;
        }
        cr_assert(rd_kafka_assign(r->rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_topic_partition_list_destroy(parts);
        return r;
}

int support_header(const rd_kafka_message_t *m, const char *name, char *out, size_t size)
{
        rd_kafka_headers_t *hdrs;
        const void *v;
        size_t len;

        if (rd_kafka_message_headers(m, &hdrs) || rd_kafka_header_get_last(hdrs, name, &v, &len))
                return -1;
        snprintf(out, size, "%.*s", (int)len, (const char *)v);
        return 0;
}

void support_decode(const rd_kafka_message_t *m, struct event *out)
{
        char errstr[256];
        struct codec *codec = codec_new(errstr, sizeof(errstr));

        cr_assert(codec != NULL, "%s", errstr);
        cr_assert(codec_decode(codec, m->payload, m->len, out, errstr, sizeof(errstr)) == 0, "%s",
                  errstr);
        codec_destroy(codec);
}

rd_kafka_message_t *support_reader_until(struct support_reader *r, const char *trace_id,
                                         const char *count_header, const char *count_value,
                                         int *count, int timeout_ms)
{
        long long deadline = support_now_ms() + timeout_ms;

        while (support_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 200);
                char trace[128], value[256];

                if (!m)
                        continue;
                if (m->err || support_header(m, "trace_id", trace, sizeof(trace)) == -1) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (count && count_header &&
                    support_header(m, count_header, value, sizeof(value)) == 0 &&
                    strcmp(value, count_value) == 0)
                        (*count)++;
                if (strcmp(trace, trace_id) == 0)
                        return m;
                rd_kafka_message_destroy(m);
        }
        return NULL;
}

int support_reader_count(struct support_reader *r, const char *header, const char *prefix,
                         char *first, size_t first_size, int timeout_ms)
{
        long long deadline = support_now_ms() + timeout_ms;
        int count = 0;

        if (first && first_size)
                first[0] = '\0';
        while (support_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 200);
                char value[256];

                if (!m)
                        continue;
                if (!m->err && support_header(m, header, value, sizeof(value)) == 0 &&
                    strncmp(value, prefix, strlen(prefix)) == 0) {
                        if (count++ == 0 && first && first_size)
                                snprintf(first, first_size, "%s [%d] offset %lld key %.*s (%s %s)",
                                         rd_kafka_topic_name(m->rkt), (int)m->partition,
                                         (long long)m->offset,
                                         (int)(m->key_len < 80 ? m->key_len : 80),
                                         m->key ? (const char *)m->key : "", header, value);
                }
                rd_kafka_message_destroy(m);
        }
        return count;
}

void support_reader_close(struct support_reader *r)
{
        if (!r)
                return;
        rd_kafka_consumer_close(r->rk);
        rd_kafka_destroy(r->rk);
        free(r);
}

/* ------------------------------------------------------------ consumer groups */

int support_partition_count(rd_kafka_t *rk, const char *topic)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        int cnt;

        cr_assert(rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                          md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR,
                  "no metadata for %s", topic);
        cnt = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        cr_assert(cnt > 0, "%s has %d partitions", topic, cnt);
        return cnt;
}

rd_kafka_t *support_group_client(const char *group)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char errstr[512];
        rd_kafka_t *rk;

        cr_assert(rd_kafka_conf_set(conf, "bootstrap.servers",
                                    support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), errstr,
                                    sizeof(errstr)) == RD_KAFKA_CONF_OK,
                  "%s", errstr);
        cr_assert(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ==
                  RD_KAFKA_CONF_OK);
        cr_assert(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ==
                  RD_KAFKA_CONF_OK);
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        cr_assert(rk != NULL, "%s", errstr);
        return rk;
}

/* Adds every partition of topic to ends, at its current end (high watermark). */
static void add_ends_of(rd_kafka_t *rk, const char *topic, rd_kafka_topic_partition_list_t *ends)
{
        int cnt = support_partition_count(rk, topic);

        for (int p = 0; p < cnt; p++) {
                int64_t low, high;
                rd_kafka_resp_err_t err =
                        rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, 10000);

                cr_assert(err == RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks of %s[%d]: %s", topic, p,
                          rd_kafka_err2str(err));
                rd_kafka_topic_partition_list_add(ends, topic, p)->offset = high;
        }
}

void support_group_at_end(const char *group, const char *const topics[])
{
        rd_kafka_topic_partition_list_t *ends = rd_kafka_topic_partition_list_new(32), *check;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        rd_kafka_t *rk = support_group_client(group);
        for (size_t t = 0; topics[t]; t++)
                add_ends_of(rk, topics[t], ends);
        for (int attempt = 0; attempt < 20;
             attempt++) { /* the coordinator may not be known at once */
                if ((err = rd_kafka_commit(rk, ends, 0)) == RD_KAFKA_RESP_ERR_NO_ERROR)
                        break;
                support_sleep_ms(250);
        }
        cr_assert(err == RD_KAFKA_RESP_ERR_NO_ERROR, "commit for %s: %s", group,
                  rd_kafka_err2str(err));
        check = rd_kafka_topic_partition_list_copy(ends);
        cr_assert(rd_kafka_committed(rk, check, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
        for (int i = 0; i < check->cnt; i++)
                cr_assert(check->elems[i].offset == ends->elems[i].offset,
                          "%s: %s[%d] committed at %lld, not %lld", group, check->elems[i].topic,
                          check->elems[i].partition, (long long)check->elems[i].offset,
                          (long long)ends->elems[i].offset);
        rd_kafka_topic_partition_list_destroy(check);
        rd_kafka_topic_partition_list_destroy(ends);
        rd_kafka_destroy(rk);
}

/* ------------------------------------------------------------ dead letters */

static bool dead_letter_header(rd_kafka_headers_t *h, const char *name, char *out, size_t size)
{
        const void *val;
        size_t len;

        if (rd_kafka_header_get_last(h, name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
                return false;
        snprintf(out, size, "%.*s", (int)len, (const char *)val);
        return true;
}

/* The record's dlq.* headers into d when group dead-lettered it; @returns whether it did. */
static bool read_dead_letter(const rd_kafka_message_t *m, const char *topic, const char *group,
                             struct support_dead_letter *d)
{
        rd_kafka_headers_t *h = NULL;
        char from[128] = "", source[256] = "", part[16], offset[32], attempts[16], at[32],
             trace[64];

        if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            !dead_letter_header(h, "dlq.group", from, sizeof(from)) || strcmp(from, group) != 0)
                return false;
        memset(d, 0, sizeof(*d));
        d->has_headers =
                dead_letter_header(h, "dlq.error.class", d->error_class, sizeof(d->error_class)) &
                dead_letter_header(h, "dlq.error.message", d->message, sizeof(d->message)) &
                dead_letter_header(h, "dlq.topic", source, sizeof(source)) &
                (strcmp(source, topic) == 0) &
                dead_letter_header(h, "dlq.partition", part, sizeof(part)) &
                dead_letter_header(h, "dlq.offset", offset, sizeof(offset)) &
                dead_letter_header(h, "dlq.attempts", attempts, sizeof(attempts)) &
                dead_letter_header(h, "dlq.timestamp", at, sizeof(at)) &
                dead_letter_header(h, "trace_id", trace, sizeof(trace));
        return true;
}

int support_scan_topic(const char *topic, const char *key, int want, int timeout_ms,
                       bool (*each)(const rd_kafka_message_t *m, void *arg), void *arg)
{
        char err[256], reader[64];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
        long long deadline = support_now_ms() + timeout_ms;
        rd_kafka_t *rk;
        int n = 0;

        support_unique_name("scan", reader, sizeof(reader));
        rd_kafka_conf_set(conf, "bootstrap.servers",
                          support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err, sizeof(err));
        rd_kafka_conf_set(conf, "group.id", reader, err, sizeof(err));
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
        rd_kafka_conf_set(conf, "session.timeout.ms", "3000", err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        cr_assert(rk, "%s", err);
        rd_kafka_poll_set_consumer(rk);
        rd_kafka_topic_partition_list_add(t, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, t);
        rd_kafka_topic_partition_list_destroy(t);
        while (n < want && support_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);

                if (!m)
                        continue;
                if (!m->err && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0)
                        n += each(m, arg);
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return n;
}

struct dead_letter_scan {
        const char *topic, *group;
        struct support_dead_letter *out;
        size_t n;
};

static bool on_dead_letter(const rd_kafka_message_t *m, void *arg)
{
        struct dead_letter_scan *scan = arg;

        if (!read_dead_letter(m, scan->topic, scan->group, &scan->out[scan->n]))
                return false;
        scan->n++;
        return true;
}

size_t support_dead_letters(const char *topic, const char *key, const char *group,
                            struct support_dead_letter *out, size_t want, int timeout_ms)
{
        struct dead_letter_scan scan = {.topic = topic, .group = group, .out = out};
        char dlq[256];

        snprintf(dlq, sizeof(dlq), "%s.dlq", topic);
        support_scan_topic(dlq, key, (int)want, timeout_ms, on_dead_letter, &scan);
        return scan.n;
}
