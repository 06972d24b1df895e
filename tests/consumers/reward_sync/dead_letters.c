/* dead_letters.c: test_reward_sync's dead letters: reading this test's records from
 * live.reward.dlq, and malformed tips to send. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"

#include "fixture.h"

/* ------------------------------------------------------------------ dead letters */

static void header(rd_kafka_message_t *m, const char *name, char *out, size_t out_size)
{
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t len;

        if (rd_kafka_message_headers(m, &h) == 0 &&
            rd_kafka_header_get_last(h, name, &v, &len) == 0)
                snprintf(out, out_size, "%.*s", (int)len, (const char *)v);
}

/*
 * Reads live.reward.dlq until every key's `until` record was seen or timeout_ms passed, counting
 * only this test's group (the other tests' consumers dead-letter the same records). A key's
 * records are in one partition, in the order they were dead-lettered.
 */
void read_dead_letters(struct dead_letter *dl, int n, int timeout_ms)
{
        char err[256], group[64];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
        long long deadline = support_now_ms() + timeout_ms;
        rd_kafka_t *rk;
        int missing = n;

        support_unique_name("dlq", group, sizeof(group));
        rd_kafka_conf_set(conf, "bootstrap.servers",
                          support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err, sizeof(err));
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
        rd_kafka_conf_set(conf, "session.timeout.ms", "3000", err, sizeof(err));
        rd_kafka_conf_set(conf, "heartbeat.interval.ms", "500", err, sizeof(err));
        cr_assert((rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) != NULL, "%s",
                  err);
        rd_kafka_poll_set_consumer(rk);
        rd_kafka_topic_partition_list_add(t, "live.reward.dlq", RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, t);
        rd_kafka_topic_partition_list_destroy(t);
        while (missing > 0 && support_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                char from[96] = "";

                if (!m)
                        continue;
                if (!m->err)
                        header(m, "dlq.group", from, sizeof(from));
                for (int i = 0; i < n && strcmp(from, fx.w.group) == 0; i++) {
                        if (dl[i].is_found || m->key_len != strlen(dl[i].key) ||
                            memcmp(m->key, dl[i].key, m->key_len) != 0)
                                continue;
                        dl[i].count++;
                        header(m, "dlq.error.class", dl[i].error_class, sizeof(dl[i].error_class));
                        header(m, "dlq.error.message", dl[i].message, sizeof(dl[i].message));
                        if (strstr(dl[i].message, dl[i].until)) {
                                dl[i].is_found = true;
                                missing--;
                        }
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
}

/* A malformed record keyed `key`: a valid tip with `field` replaced, or another payload type. */
void send_bad_tip(const char *key, const char *field, json_t *value, const char *payload_name)
{
        char tip_id[96], err[256], event_id[65];
        json_t *payload;
        void *buf;
        size_t len;

        snprintf(tip_id, sizeof(tip_id), "%s_tip", key);
        if (strcmp(payload_name, "Reward") == 0)
                payload =
                        json_pack("{s:s,s:s,s:s,s:s,s:I,s:n,s:I,s:I}", "tip_id", tip_id,
                                  "audience_id", ids.audiences[0], "anchor_id", key, "room_id",
                                  ids.rooms[0], "amount", (json_int_t)100, "gift_id", "gift_count",
                                  (json_int_t)1, "ts_ms", (json_int_t)1700000000000LL);
        else
                payload = json_object(); /* e.g. a StreamBegin: every field optional */
        cr_assert(payload);
        if (field)
                json_object_set_new(payload, field, value);
        crypto_sha256_hex(tip_id, strlen(tip_id), event_id);
        struct envelope env = {
                .event_id = event_id,
                .vendor = "internal",
                .event_type = "reward",
                .anchor_id = key,
                .room_id = ids.rooms[0],
                .event_time_ms = 1700000000000LL,
                .receive_time_ms = 1700000000005LL,
                .trace_id = "0123456789abcdef0123456789abcdef",
                .raw = "{}",
                .raw_len = 2,
        };
        cr_assert(codec_encode(fx.w.codec, &env, payload_name, payload, &buf, &len, err,
                               sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        produce_raw(key, buf, len, "reward");
        free(buf);
}
