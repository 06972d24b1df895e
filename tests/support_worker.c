/* support_worker.c: the fixture of a suite that runs one worker role (support_worker.h). */
#include "support_worker.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"

void support_worker_fx_open(struct support_worker_fx *fx, const char *prefix)
{
        char err[512];

        support_unique_name(prefix, fx->prefix, sizeof(fx->prefix));
        snprintf(fx->group, sizeof(fx->group), "test.%s", fx->prefix);
        snprintf(fx->log_path, sizeof(fx->log_path), "/tmp/%s.consumer.log", fx->prefix);
        support_create_database(fx->mysql_url, sizeof(fx->mysql_url));
        fx->mysql = support_mysql_connect(fx->mysql_url);
        fx->producer = support_producer();
        cr_assert((fx->codec = codec_new(err, sizeof(err))) != NULL, "%s", err);
}

void support_worker_fx_close(struct support_worker_fx *fx)
{
        if (fx->pid > 0 && support_wait_exit(fx->pid, 0) == -1) {
                kill(fx->pid, SIGKILL);
                support_wait_exit(fx->pid, 5000);
        }
        if (fx->producer)
                rd_kafka_destroy(fx->producer);
        codec_destroy(fx->codec);
        if (fx->mysql)
                mysql_close(fx->mysql);
        memset(fx, 0, sizeof(*fx));
}

void support_worker_encode_stream_event(const struct support_worker_fx *fx, const char *anchor,
                                        const char *stream_id, bool begin, const char *sequence,
                                        long long event_time_s, int close_method,
                                        long long push_duration_ms, void **out, size_t *out_len)
{
        char key[256], event_id[65], err[256];
        json_t *payload;

        snprintf(key, sizeof(key), "tencent|%d|%s|%s", begin ? 1 : 0, stream_id, sequence);
        crypto_sha256_hex(key, strlen(key), event_id);
        payload =
                begin ? json_pack("{s:s}", "sequence", sequence)
                      : json_pack("{s:s,s:i}", "sequence", sequence, "close_method", close_method);
        if (!begin && push_duration_ms >= 0)
                json_object_set_new(payload, "push_duration_ms", json_integer(push_duration_ms));
        const struct envelope env = {
                .event_id = event_id,
                .vendor = "tencent",
                .event_type = begin ? "stream.begin" : "stream.end",
                .stream_id = stream_id,
                .anchor_id = anchor,
                .room_id = anchor,
                .event_time_ms = event_time_s * 1000,
                .receive_time_ms = event_time_s * 1000 + 5,
                .trace_id = SUPPORT_WORKER_TRACE,
                .raw = "{}",
                .raw_len = 2,
        };
        cr_assert(codec_encode(fx->codec, &env, begin ? "StreamBegin" : "StreamEnd", payload, out,
                               out_len, err, sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
}

void support_worker_produce_stream_event(const struct support_worker_fx *fx, const char *stream_id,
                                         bool begin, long long sequence, long long event_time_s,
                                         const char *replay_time)
{
        char seq[32], anchor[96];
        void *buf;
        size_t len;

        snprintf(anchor, sizeof(anchor), "a_%s", stream_id);
        snprintf(seq, sizeof(seq), "%lld", sequence);
        support_worker_encode_stream_event(fx, anchor, stream_id, begin, seq, event_time_s, 1, -1,
                                           &buf, &len);
        rd_kafka_headers_t *h = rd_kafka_headers_new(3);

        rd_kafka_header_add(h, "trace_id", -1, SUPPORT_WORKER_TRACE, -1);
        rd_kafka_header_add(h, "event_type", -1, begin ? "stream.begin" : "stream.end", -1);
        if (replay_time)
                rd_kafka_header_add(h, "replay.time", -1, replay_time, -1);
        cr_assert(rd_kafka_producev(fx->producer, RD_KAFKA_V_TOPIC("live.stream"),
                                    RD_KAFKA_V_KEY(stream_id, strlen(stream_id)),
                                    RD_KAFKA_V_VALUE(buf, len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_HEADERS(h),
                                    RD_KAFKA_V_END) == 0);
}

void support_worker_produce_raw(const struct support_worker_fx *fx, const char *topic,
                                const char *key, const void *value, size_t len,
                                const char *event_type)
{
        cr_assert(rd_kafka_producev(
                          fx->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE((void *)value, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADER("trace_id", SUPPORT_WORKER_TRACE, -1),
                          RD_KAFKA_V_HEADER("event_type", event_type, -1), RD_KAFKA_V_END) == 0);
        cr_assert(rd_kafka_flush(fx->producer, 10000) == 0);
}

void support_worker_produce_event(const struct support_worker_fx *fx, const char *topic,
                                  const char *key, const char *stream_id, const char *event_key,
                                  const char *event_type, long long event_time_ms,
                                  const char *payload_name, json_t *payload)
{
        char event_id[65], err[256];
        void *buf;
        size_t len;

        crypto_sha256_hex(event_key, strlen(event_key), event_id);
        const struct envelope env = {
                .event_id = event_id,
                .vendor = "tencent",
                .event_type = event_type,
                .stream_id = stream_id,
                .event_time_ms = event_time_ms,
                .receive_time_ms = event_time_ms + 5,
                .trace_id = SUPPORT_WORKER_TRACE,
                .raw = "{}",
                .raw_len = 2,
        };
        cr_assert(codec_encode(fx->codec, &env, payload_name, payload, &buf, &len, err,
                               sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        support_worker_produce_raw(fx, topic, key, buf, len, event_type);
        free(buf);
}
