/* produce.c: one record on a shared producer, and the wait for its acknowledgement. */
#include "produce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "signals.h"

/* Odd: a pointer the producer's other records carry is never odd. */
static void *ack_opaque(uint64_t seq)
{
        return (void *)(uintptr_t)(seq << 1 | 1);
}

bool produce_ack_report(struct produce_ack *a, const rd_kafka_message_t *rkm)
{
        uintptr_t tag = (uintptr_t)rkm->_private;

        if (!(tag & 1))
                return false;
        if (tag == (uintptr_t)ack_opaque(a->seq)) {
                a->has_report = true;
                a->err = rkm->err;
                a->partition = (int)rkm->partition;
                a->offset = (long long)rkm->offset;
        }
        return true;
}

int produce_acked(rd_kafka_t *rk, struct produce_ack *a, const struct produce_msg *m, int wait_ms,
                  char *errstr, size_t errstr_size)
{
        long long deadline = clock_mono_ms() + wait_ms;
        rd_kafka_headers_t *h = rd_kafka_headers_new(3);
        rd_kafka_resp_err_t err;

        rd_kafka_header_add(h, "trace_id", -1, m->trace_id, -1);
        rd_kafka_header_add(h, "event_type", -1, m->event_type, -1);
        if (m->event_id)
                rd_kafka_header_add(h, "event_id", -1, m->event_id, -1);
        a->has_report = false;
        a->seq++;
        err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(m->topic), RD_KAFKA_V_KEY(m->key, strlen(m->key)),
                RD_KAFKA_V_VALUE(m->value, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(ack_opaque(a->seq)), RD_KAFKA_V_END);
        if (err) {
                rd_kafka_headers_destroy(h); /* neither is handed over on failure */
                free(m->value);
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
