/* stream_close.c: one stream.close record to live.stream, sent and acknowledged. */
#include "stream_close.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "codec.h"
#include "consumer.h"
#include "contract.h"
#include "produce.h"

#define CLOSE_TOPIC            LF_TOPIC_STREAM
#define CLOSE_EVENT_TYPE       "stream.close"
#define CLOSE_DELIVERY_WAIT_MS 40000 /* beyond the producer's message.timeout.ms (30 s) */

struct stream_close {
        struct codec *codec;
        rd_kafka_t *producer; /* the runtime's */
        struct produce_ack *ack;
};

struct stream_close *stream_close_new(const struct role_env *env, char *errstr, size_t errstr_size)
{
        struct stream_close *sc = calloc(1, sizeof(*sc));

        if (!sc) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        sc->producer = env->producer;
        sc->ack = env->ack;
        if (!(sc->codec = codec_new(errstr, errstr_size))) {
                stream_close_destroy(sc);
                return NULL;
        }
        return sc;
}

void stream_close_destroy(struct stream_close *sc)
{
        if (!sc)
                return;
        codec_destroy(sc->codec);
        free(sc);
}

static int encode(struct stream_close *sc, const struct stream_close_msg *m, void **buf,
                  size_t *len, char *errstr, size_t errstr_size)
{
        json_t *payload = json_pack("{s:s?,s:i,s:s?}", "sequence", m->sequence, "close_method",
                                    m->close_method, "reason", m->reason);
        json_t *raw = m->raw ? NULL : json_pack("{s:s}", "cause", m->cause);
        char *raw_text = m->raw ? strdup(m->raw) : raw ? json_dumps(raw, JSON_COMPACT) : NULL;
        struct envelope env = {
                .event_id = m->event_id,
                .vendor = m->vendor ? m->vendor : "liveflow",
                .event_type = CLOSE_EVENT_TYPE,
                .stream_id = m->stream_id,
                .anchor_id = m->anchor_id,
                .room_id = m->room_id,
                .event_time_ms = m->event_time_ms,
                .receive_time_ms = clock_wall_ms(),
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
        struct produce_msg pm = {.topic = CLOSE_TOPIC,
                                 .key = m->stream_id,
                                 .trace_id = m->trace_id,
                                 .event_type = CLOSE_EVENT_TYPE,
                                 .event_id = m->event_id};

        if (encode(sc, m, &pm.value, &pm.len, errstr, errstr_size) == -1)
                return -1;
        return produce_acked(sc->producer, sc->ack, &pm, CLOSE_DELIVERY_WAIT_MS, errstr,
                             errstr_size);
}

int stream_close_send_many(struct stream_close *sc, const struct stream_close_msg *ms, size_t n,
                           char *errstr, size_t errstr_size)
{
        struct produce_msg *pm = calloc(n ? n : 1, sizeof(*pm));
        bool *is_acked = calloc(n ? n : 1, sizeof(*is_acked));
        size_t cnt = 0;
        int rc = -1;

        if (!pm || !is_acked) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        for (; cnt < n; cnt++) {
                pm[cnt] = (struct produce_msg){.topic = CLOSE_TOPIC,
                                               .key = ms[cnt].stream_id,
                                               .trace_id = ms[cnt].trace_id,
                                               .event_type = CLOSE_EVENT_TYPE,
                                               .event_id = ms[cnt].event_id};
                if (encode(sc, &ms[cnt], &pm[cnt].value, &pm[cnt].len, errstr, errstr_size) == -1)
                        break;
        }
        if (cnt == n)
                rc = produce_acked_many(sc->producer, sc->ack, pm, n, is_acked,
                                        CLOSE_DELIVERY_WAIT_MS, errstr, errstr_size);
        else
                for (size_t i = 0; i < cnt; i++)
                        free(pm[i].value); /* not produced */
out:
        free(pm);
        free(is_acked);
        return rc;
}
