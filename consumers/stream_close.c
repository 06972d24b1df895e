/* stream_close.c: one stream.close record to live.stream, sent and acknowledged. */
#include "stream_close.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "consumer.h"
#include "contract.h"
#include "produce.h"

#define CLOSE_TOPIC            LF_TOPIC_STREAM
#define CLOSE_EVENT_TYPE       "stream.close"
#define CLOSE_DELIVERY_WAIT_MS 40000 /* beyond the producer's message.timeout.ms (30 s) */

struct stream_close {
        struct codec *codec, *own_codec; /* the lane's, or own_codec (role_env_codec()) */
        rd_kafka_t *producer;            /* the runtime's */
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
        if (!(sc->codec = role_env_codec(env, &sc->own_codec, errstr, errstr_size))) {
                stream_close_destroy(sc);
                return NULL;
        }
        return sc;
}

void stream_close_destroy(struct stream_close *sc)
{
        if (!sc)
                return;
        codec_destroy(sc->own_codec);
        free(sc);
}

/* The record of m in *pm, encoded. @returns 0, or -1 with errstr. */
static int make_msg(struct stream_close *sc, const struct stream_close_msg *m,
                    struct produce_msg *pm, char *errstr, size_t errstr_size)
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
                .trace_id = m->trace_id,
        };

        json_decref(raw);
        *pm = (struct produce_msg){.topic = CLOSE_TOPIC,
                                   .key = m->stream_id,
                                   .trace_id = m->trace_id,
                                   .event_type = CLOSE_EVENT_TYPE,
                                   .event_id = m->event_id};
        return produce_encode(sc->codec, &env, "StreamEnd", payload, raw_text, &pm->value, &pm->len,
                              errstr, errstr_size);
}

int stream_close_send(struct stream_close *sc, const struct stream_close_msg *m, char *errstr,
                      size_t errstr_size)
{
        struct produce_msg pm;

        if (make_msg(sc, m, &pm, errstr, errstr_size) == -1)
                return -1;
        return produce_acked(sc->producer, sc->ack, &pm, CLOSE_DELIVERY_WAIT_MS, errstr,
                             errstr_size);
}

struct close_many {
        struct stream_close *sc;
        const struct stream_close_msg *ms;
};

static int make_nth(void *arg, size_t i, struct produce_msg *pm, char *errstr, size_t errstr_size)
{
        const struct close_many *cm = arg;

        return make_msg(cm->sc, &cm->ms[i], pm, errstr, errstr_size) == -1 ? -1 : 1;
}

int stream_close_send_many(struct stream_close *sc, const struct stream_close_msg *ms, size_t n,
                           char *errstr, size_t errstr_size)
{
        struct close_many cm = {sc, ms};

        return produce_acked_made(sc->producer, sc->ack, n, make_nth, &cm, CLOSE_DELIVERY_WAIT_MS,
                                  errstr, errstr_size);
}
