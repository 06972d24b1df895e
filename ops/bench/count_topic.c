/*
 * count_topic.c (liveflow-bench-count): how many records a Kafka topic holds, for make bench.
 *
 *   liveflow-bench-count BOOTSTRAP TOPIC [GROUP]
 *
 * prints one line:
 *
 *   partitions=6 high=20000 low=0 [committed=20000 lag=0]
 *
 * high is the sum over all partitions of the high watermark: every record ever appended,
 * which retention never lowers (the dev broker drops old batches silently, so low rises
 * and high - low is only what is still kept). committed is the sum of GROUP's committed
 * offsets (a partition without one counts as its low watermark) and lag the sum of
 * high - committed. Reads only: it joins no group and commits nothing. Exit 0, or 1 with
 * a line on stderr.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#define TIMEOUT_MS 10000

static rd_kafka_t *client_new(rd_kafka_type_t type, const char *bootstrap, const char *group)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char errstr[512];
        rd_kafka_t *rk;

        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) !=
                    RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "client.id", "liveflow-bench-count", errstr, sizeof(errstr)) !=
                    RD_KAFKA_CONF_OK ||
            (group && rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) !=
                              RD_KAFKA_CONF_OK) ||
            (group && rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                                        sizeof(errstr)) != RD_KAFKA_CONF_OK)) {
                fprintf(stderr, "liveflow-bench-count: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        if (!(rk = rd_kafka_new(type, conf, errstr, sizeof(errstr)))) {
                fprintf(stderr, "liveflow-bench-count: %s\n", errstr);
                return NULL; /* rd_kafka_new() destroyed conf */
        }
        return rk;
}

/* The partition count of topic, or -1. */
static int partition_count(rd_kafka_t *rk, const char *topic)
{
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err;
        int n = -1;

        if (!rkt)
                return -1;
        err = rd_kafka_metadata(rk, 0, rkt, &md, TIMEOUT_MS);
        if (err)
                fprintf(stderr, "liveflow-bench-count: metadata of %s: %s\n", topic,
                        rd_kafka_err2str(err));
        else if (md->topic_cnt != 1 || md->topics[0].err)
                fprintf(stderr, "liveflow-bench-count: topic %s: %s\n", topic,
                        md->topic_cnt ? rd_kafka_err2str(md->topics[0].err)
                                      : "not in the metadata");
        else
                n = md->topics[0].partition_cnt;
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        return n;
}

/* Sums the committed offsets of group over partitions 0..n-1 into *committed and *lag. */
static int committed_sum(const char *bootstrap, const char *group, const char *topic, int n,
                         const int64_t *low, const int64_t *high, int64_t *committed, int64_t *lag)
{
        rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, bootstrap, group);
        rd_kafka_topic_partition_list_t *parts;
        rd_kafka_resp_err_t err;
        int rc = -1;

        if (!rk)
                return -1;
        parts = rd_kafka_topic_partition_list_new(n);
        for (int p = 0; p < n; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p);
        err = rd_kafka_committed(rk, parts, TIMEOUT_MS);
        if (err) {
                fprintf(stderr, "liveflow-bench-count: committed offsets of %s: %s\n", group,
                        rd_kafka_err2str(err));
                goto out;
        }
        *committed = *lag = 0;
        for (int i = 0; i < parts->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &parts->elems[i];
                int64_t off = tp->offset >= 0 ? tp->offset : low[tp->partition];

                if (tp->err) {
                        fprintf(stderr, "liveflow-bench-count: committed offset of %s [%d]: %s\n",
                                topic, (int)tp->partition, rd_kafka_err2str(tp->err));
                        goto out;
                }
                *committed += off;
                *lag += high[tp->partition] - off;
        }
        rc = 0;
out:
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_destroy(rk);
        return rc;
}

int main(int argc, char **argv)
{
        const char *bootstrap, *topic, *group;
        int64_t *low = NULL, *high = NULL, low_sum = 0, high_sum = 0, committed = 0, lag = 0;
        rd_kafka_t *rk;
        int n, status = 1;

        if (argc < 3 || argc > 4) {
                fprintf(stderr, "usage: liveflow-bench-count BOOTSTRAP TOPIC [GROUP]\n");
                return 1;
        }
        bootstrap = argv[1];
        topic = argv[2];
        group = argc == 4 ? argv[3] : NULL;
        if (!(rk = client_new(RD_KAFKA_PRODUCER, bootstrap, NULL)))
                return 1;
        if ((n = partition_count(rk, topic)) <= 0)
                goto out;
        if (!(low = calloc((size_t)n, sizeof(*low))) ||
            !(high = calloc((size_t)n, sizeof(*high)))) {
                fprintf(stderr, "liveflow-bench-count: out of memory\n");
                goto out;
        }
        for (int p = 0; p < n; p++) {
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, p, &low[p],
                                                                           &high[p], TIMEOUT_MS);

                if (err) {
                        fprintf(stderr, "liveflow-bench-count: watermarks of %s [%d]: %s\n", topic,
                                p, rd_kafka_err2str(err));
                        goto out;
                }
                low_sum += low[p];
                high_sum += high[p];
        }
        if (group && committed_sum(bootstrap, group, topic, n, low, high, &committed, &lag) == -1)
                goto out;
        printf("partitions=%d high=%" PRId64 " low=%" PRId64, n, high_sum, low_sum);
        if (group)
                printf(" committed=%" PRId64 " lag=%" PRId64, committed, lag);
        printf("\n");
        status = 0;
out:
        free(low);
        free(high);
        rd_kafka_destroy(rk);
        return status;
}
