/*
 * audience_load.c (liveflow-bench-audience): app audience events for the audience role's
 * benchmark, produced straight into live.viewer and live.interaction as the receiver's
 * POST /v1/events would encode them.
 *
 *   liveflow-bench-audience BOOTSTRAP EVENTS ROOMS PREFIX
 *
 * Room r is stream "<PREFIX>s<r>"; viewers are spread over the rooms, and each viewer's life is
 * enter, heartbeat, chat, like (count 3), heartbeat, exit: six events, so EVENTS / 6 viewers
 * (every one of them closed at the end, so every room ends with 0 online). Prints one line:
 *
 *   produced=N viewer=V interaction=I viewers=W ms=T
 *
 * Exit 0, or 1 with a line on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "codec.h"
#include "crypto.h"

static long long failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
        (void)rk;
        (void)opaque;
        if (rkm->err)
                failed++;
}

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int produce(rd_kafka_t *rk, struct codec *codec, const char *topic, const char *stream,
                   const char *type, const char *who, const char *app_id, long long ts, int count)
{
        char event_type[32], key[160], event_id[65], err[256];
        json_t *p = json_pack("{s:s,s:s,s:s,s:I}", "source_event_id", app_id, "action", type,
                              "audience_id", who, "ts_ms", (json_int_t)ts);
        bool is_viewer = strcmp(topic, "live.viewer") == 0;
        void *buf;
        size_t len;
        int n = snprintf(key, sizeof(key), "internal|event|%s", app_id);

        crypto_sha256_hex(key, (size_t)n, event_id);
        snprintf(event_type, sizeof(event_type), "%s.%s", is_viewer ? "viewer" : "interaction",
                 type);
        if (count)
                json_object_set_new(p, "count", json_integer(count));
        struct envelope env = {.event_id = event_id,
                               .vendor = "internal",
                               .event_type = event_type,
                               .stream_id = stream,
                               .event_time_ms = ts,
                               .receive_time_ms = ts,
                               .trace_id = "0123456789abcdef0123456789abcdef",
                               .raw = "{}",
                               .raw_len = 2};

        if (codec_encode(codec, &env, "AudienceEvent", p, &buf, &len, err, sizeof(err)) == -1) {
                fprintf(stderr, "liveflow-bench-audience: %s\n", err);
                json_decref(p);
                return -1;
        }
        json_decref(p);
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                 RD_KAFKA_V_KEY(stream, strlen(stream)), RD_KAFKA_V_VALUE(buf, len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                 RD_KAFKA_V_HEADER("trace_id", env.trace_id, -1),
                                 RD_KAFKA_V_HEADER("event_type", event_type, -1),
                                 RD_KAFKA_V_HEADER("event_id", event_id, -1),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 10);
        return 0;
}

int main(int argc, char **argv)
{
        static const struct {
                const char *topic, *type;
                int count;
        } life[] = {{"live.viewer", "enter", 0},     {"live.viewer", "heartbeat", 0},
                    {"live.interaction", "chat", 0}, {"live.interaction", "like", 3},
                    {"live.viewer", "heartbeat", 0}, {"live.viewer", "exit", 0}};
        const int steps = (int)(sizeof(life) / sizeof(life[0]));
        char errstr[256], stream[96], who[32], app_id[96];
        rd_kafka_conf_t *conf;
        struct codec *codec;
        rd_kafka_t *rk;
        long long events, rooms, viewers, t0, base, viewer_n = 0;

        if (argc != 5 || (events = atoll(argv[2])) < 6 || (rooms = atoll(argv[3])) < 1) {
                fprintf(stderr, "usage: liveflow-bench-audience BOOTSTRAP EVENTS ROOMS PREFIX\n");
                return 1;
        }
        viewers = events / steps;
        if (!(codec = codec_new(errstr, sizeof(errstr)))) {
                fprintf(stderr, "liveflow-bench-audience: %s\n", errstr);
                return 1;
        }
        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof(errstr)) !=
                    RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof(errstr)) !=
                    RD_KAFKA_CONF_OK ||
            !(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
                fprintf(stderr, "liveflow-bench-audience: %s\n", errstr);
                return 1;
        }
        t0 = now_ms();
        base = t0; /* from now on: no visit is silent long enough for the timeout sweep */
        /* A step at a time over every viewer, so that a batch mixes rooms and kinds. */
        for (int s = 0; s < steps; s++)
                for (long long v = 0; v < viewers; v++) {
                        snprintf(stream, sizeof(stream), "%ss%lld", argv[4], v % rooms);
                        snprintf(who, sizeof(who), "u%lld", v);
                        snprintf(app_id, sizeof(app_id), "%s-%lld-%d", argv[4], v, s);
                        if (produce(rk, codec, life[s].topic, stream, life[s].type, who, app_id,
                                    base + v + s * 60000LL, life[s].count) == -1)
                                return 1;
                        viewer_n += strcmp(life[s].topic, "live.viewer") == 0;
                        rd_kafka_poll(rk, 0);
                }
        if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR || failed) {
                fprintf(stderr, "liveflow-bench-audience: %lld records not delivered\n",
                        failed + rd_kafka_outq_len(rk));
                return 1;
        }
        printf("produced=%lld viewer=%lld interaction=%lld viewers=%lld ms=%lld\n", viewers * steps,
               viewer_n, viewers * steps - viewer_n, viewers, now_ms() - t0);
        rd_kafka_destroy(rk);
        codec_destroy(codec);
        return 0;
}
