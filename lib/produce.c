/* produce.c: one record on a shared producer, and the wait for its acknowledgement. */
#include "produce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "signals.h"

/*
 * The opaque of our records is odd (a pointer the producer's other records carry never is):
 * ...01 a waiter's sequence, ...11 an async sender's token.
 */
#define TAG_ACKED 1u
#define TAG_ASYNC 3u

static void *ack_opaque(uint64_t seq)
{
        return (void *)(uintptr_t)(seq << 2 | TAG_ACKED);
}

bool produce_ack_report(struct produce_ack *a, const rd_kafka_message_t *rkm)
{
        uintptr_t tag = (uintptr_t)rkm->_private;
        uint64_t seq;

        if (!(tag & 1))
                return false;
        if ((tag & 3) == TAG_ASYNC) {
                if (a->on_async)
                        a->on_async(a->async_arg, (uint64_t)(tag >> 2), rkm->err);
                return true;
        }
        seq = (uint64_t)(tag >> 2);
        if (a->pending && a->is_acked && seq >= a->first_seq && seq <= a->seq) {
                size_t i = (size_t)(seq - a->first_seq);

                if (!a->is_acked[i] && !rkm->err)
                        a->is_acked[i] = true;
                if (rkm->err)
                        a->err = rkm->err;
                a->pending--;
                return true;
        }
        if (seq == a->seq) {
                a->has_report = true;
                a->err = rkm->err;
                a->partition = (int)rkm->partition;
                a->offset = (long long)rkm->offset;
        }
        return true;
}

/* Produces m with opaque; the headers and value are librdkafka's after. */
static rd_kafka_resp_err_t produce_tagged(rd_kafka_t *rk, const struct produce_msg *m, void *opaque)
{
        rd_kafka_headers_t *h = rd_kafka_headers_new(3);
        rd_kafka_resp_err_t err;

        rd_kafka_header_add(h, "trace_id", -1, m->trace_id, -1);
        rd_kafka_header_add(h, "event_type", -1, m->event_type, -1);
        if (m->event_id)
                rd_kafka_header_add(h, "event_id", -1, m->event_id, -1);
        err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(m->topic), RD_KAFKA_V_KEY(m->key, strlen(m->key)),
                RD_KAFKA_V_VALUE(m->value, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (err) {
                rd_kafka_headers_destroy(h); /* neither is handed over on failure */
                free(m->value);
        }
        return err;
}

/* Produces m with the waiter's sequence seq. */
static rd_kafka_resp_err_t produce_one(rd_kafka_t *rk, const struct produce_msg *m, uint64_t seq)
{
        return produce_tagged(rk, m, ack_opaque(seq));
}

int produce_acked_many(rd_kafka_t *rk, struct produce_ack *a, const struct produce_msg *msgs,
                       size_t n, bool *is_acked, int wait_ms, char *errstr, size_t errstr_size)
{
        long long deadline = clock_mono_ms() + wait_ms;
        size_t produced = 0;
        int rc = 0;

        if (!n)
                return 0;
        memset(is_acked, 0, n * sizeof(*is_acked));
        a->first_seq = a->seq + 1;
        a->seq += n;
        a->is_acked = is_acked;
        a->err = RD_KAFKA_RESP_ERR_NO_ERROR;
        a->pending = 0;
        for (size_t i = 0; i < n; i++) {
                rd_kafka_resp_err_t err = produce_one(rk, &msgs[i], a->first_seq + i);

                if (err) {
                        snprintf(errstr, errstr_size, "produce %s: %s", msgs[i].topic,
                                 rd_kafka_err2str(err));
                        for (size_t j = i + 1; j < n; j++)
                                free(msgs[j].value);
                        rc = -1;
                        break;
                }
                a->pending++;
                produced++;
        }
        while (a->pending && clock_mono_ms() < deadline && !signals_stop_requested())
                rd_kafka_poll(rk, 100);
        for (size_t i = 0; i < produced && rc == 0; i++)
                if (!is_acked[i]) {
                        snprintf(errstr, errstr_size, "%s for %s not acknowledged: %s",
                                 msgs[i].event_type, msgs[i].key,
                                 a->err ? rd_kafka_err2str(a->err) : "no delivery report yet");
                        rc = -1;
                }
        a->pending = 0; /* late reports of these are dropped by their sequence */
        a->is_acked = NULL;
        return rc;
}

int produce_acked(rd_kafka_t *rk, struct produce_ack *a, const struct produce_msg *m, int wait_ms,
                  char *errstr, size_t errstr_size)
{
        long long deadline = clock_mono_ms() + wait_ms;
        rd_kafka_resp_err_t err;

        a->has_report = false;
        a->seq++;
        if ((err = produce_one(rk, m, a->seq))) {
                snprintf(errstr, errstr_size, "produce %s: %s", m->topic, rd_kafka_err2str(err));
                return -1;
        }
        while (!a->has_report && clock_mono_ms() < deadline && !signals_stop_requested())
                rd_kafka_poll(rk, 100);
        if (!a->has_report || a->err) {
                snprintf(errstr, errstr_size, "%s for %s not acknowledged: %s", m->event_type,
                         m->key,
                         a->has_report ? rd_kafka_err2str(a->err) : "no delivery report yet");
                return -1;
        }
        return 0;
}

int produce_ack_listen(struct produce_ack *a,
                       void (*fn)(void *arg, uint64_t token, rd_kafka_resp_err_t err), void *arg)
{
        if (fn && a->on_async)
                return -1;
        a->on_async = fn;
        a->async_arg = fn ? arg : NULL;
        return 0;
}

int produce_async(rd_kafka_t *rk, struct produce_ack *a, const struct produce_msg *m,
                  uint64_t token, char *errstr, size_t errstr_size)
{
        rd_kafka_resp_err_t err;

        (void)a; /* the reports find the listener through the producer's delivery callback */
        err = produce_tagged(rk, m, (void *)(uintptr_t)(token << 2 | TAG_ASYNC));
        if (err) {
                snprintf(errstr, errstr_size, "produce %s: %s", m->topic, rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

int produce_encode(struct codec *c, struct envelope *env, const char *payload_name, json_t *payload,
                   char *raw_text, void **buf, size_t *len, char *errstr, size_t errstr_size)
{
        int rc = -1;

        env->receive_time_ms = clock_wall_ms();
        env->raw = raw_text;
        env->raw_len = raw_text ? strlen(raw_text) : 0;
        if (!payload || !raw_text)
                snprintf(errstr, errstr_size, "out of memory");
        else
                rc = codec_encode(c, env, payload_name, payload, buf, len, errstr, errstr_size);
        json_decref(payload);
        free(raw_text);
        return rc;
}

int produce_acked_made(rd_kafka_t *rk, struct produce_ack *a, size_t n,
                       int (*make)(void *arg, size_t i, struct produce_msg *m, char *errstr,
                                   size_t errstr_size),
                       void *arg, int wait_ms, char *errstr, size_t errstr_size)
{
        struct produce_msg *pm = calloc(n ? n : 1, sizeof(*pm));
        bool *is_acked = calloc(n ? n : 1, sizeof(*is_acked));
        size_t cnt = 0;
        int rc = -1;

        if (!pm || !is_acked) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                int made = make(arg, i, &pm[cnt], errstr, errstr_size);

                if (made == -1) {
                        for (size_t j = 0; j < cnt; j++)
                                free(pm[j].value); /* not produced */
                        goto out;
                }
                cnt += (size_t)made;
        }
        rc = produce_acked_many(rk, a, pm, cnt, is_acked, wait_ms, errstr, errstr_size);
out:
        free(pm);
        free(is_acked);
        return rc;
}
