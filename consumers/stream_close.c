/* stream_close.c: one stream.close record to live.stream, sent and acknowledged. */
#include "stream_close.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "codec.h"
#include "contract.h"
#include "kafka.h"
#include "signals.h"

#define CLOSE_TOPIC            LF_TOPIC_STREAM
#define CLOSE_EVENT_TYPE       "stream.close"
#define CLOSE_DELIVERY_WAIT_MS 40000 /* beyond the producer's message.timeout.ms (30 s) */

struct stream_close {
        struct codec *codec;
        rd_kafka_t *producer;
        uint64_t seq; /* the record send() is waiting for */
        bool has_report;
        rd_kafka_resp_err_t report_err;
};

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
        struct stream_close *sc = opaque;

        (void)rk;
        /* A sequence number, not a pointer: a late report of a record an earlier wait gave up
         * on cannot be taken for the current one. */
        if ((uint64_t)(uintptr_t)rkm->_private != sc->seq)
                return;
        sc->has_report = true;
        sc->report_err = rkm->err;
}

struct stream_close *stream_close_new(const struct settings *s, const char *client_id, char *errstr,
                                      size_t errstr_size)
{
        struct stream_close *sc = calloc(1, sizeof(*sc));

        if (!sc) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        if (!(sc->codec = codec_new(errstr, errstr_size)) ||
            !(sc->producer =
                      kafka_producer_new(s, client_id, on_delivery, sc, errstr, errstr_size))) {
                stream_close_destroy(sc);
                return NULL;
        }
        return sc;
}

void stream_close_destroy(struct stream_close *sc)
{
        if (!sc)
                return;
        if (sc->producer) {
                rd_kafka_flush(sc->producer, 5000);
                rd_kafka_destroy(sc->producer);
        }
        codec_destroy(sc->codec);
        free(sc);
}

static int encode(struct stream_close *sc, const struct stream_close_msg *m, void **buf,
                  size_t *len, char *errstr, size_t errstr_size)
{
        json_t *payload = json_pack("{s:s?,s:i,s:s?}", "sequence", m->sequence, "close_method",
                                    m->close_method, "reason", m->reason);
        json_t *raw = json_pack("{s:s}", "cause", m->cause);
        char *raw_text = raw ? json_dumps(raw, JSON_COMPACT) : NULL;
        struct envelope env = {
                .event_id = m->event_id,
                .vendor = "liveflow",
                .event_type = CLOSE_EVENT_TYPE,
                .stream_id = m->stream_id,
                .anchor_id = m->anchor_id,
                .room_id = m->room_id,
                .event_time_ms = m->event_time_ms,
                .receive_time_ms = now_ms(),
                .trace_id = m->trace_id,
                .raw = raw_text,
                .raw_len = raw_text ? strlen(raw_text) : 0,
        };
        int rc = -1;

        if (!payload || !raw_text)
                snprintf(errstr, errstr_size, "out of memory");
        else
                rc = codec_encode(sc->codec, &env, "StreamEnd", payload, buf, len, errstr,
                                  errstr_size);
        json_decref(payload);
        json_decref(raw);
        free(raw_text);
        return rc;
}

int stream_close_send(struct stream_close *sc, const struct stream_close_msg *m, char *errstr,
                      size_t errstr_size)
{
        void *buf = NULL;
        size_t len = 0;
        long long deadline = now_ms() + CLOSE_DELIVERY_WAIT_MS;
        rd_kafka_resp_err_t err;

        if (encode(sc, m, &buf, &len, errstr, errstr_size) == -1)
                return -1;
        sc->has_report = false;
        sc->seq++;
        err = rd_kafka_producev(sc->producer, RD_KAFKA_V_TOPIC(CLOSE_TOPIC),
                                RD_KAFKA_V_KEY(m->stream_id, strlen(m->stream_id)),
                                RD_KAFKA_V_VALUE(buf, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                RD_KAFKA_V_HEADER("trace_id", m->trace_id, -1),
                                RD_KAFKA_V_HEADER("event_type", CLOSE_EVENT_TYPE, -1),
                                RD_KAFKA_V_HEADER("event_id", m->event_id, -1),
                                RD_KAFKA_V_OPAQUE((void *)(uintptr_t)sc->seq), RD_KAFKA_V_END);
        if (err) {
                free(buf); /* not handed over on failure */
                snprintf(errstr, errstr_size, "produce %s: %s", CLOSE_TOPIC, rd_kafka_err2str(err));
                return -1;
        }
        /* buf is librdkafka's from here (RD_KAFKA_MSG_F_FREE). */
        while (!sc->has_report && now_ms() < deadline && !signals_stop_requested())
                rd_kafka_poll(sc->producer, 100);
        if (!sc->has_report || sc->report_err) {
                snprintf(errstr, errstr_size, "stream.close for %s not acknowledged: %s",
                         m->stream_id,
                         sc->has_report ? rd_kafka_err2str(sc->report_err)
                                        : "no delivery report yet");
                return -1;
        }
        return 0;
}
