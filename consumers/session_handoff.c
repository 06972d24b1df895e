/* session_handoff.c: session.end records for live.session, kept in a MySQL outbox until
 * acknowledged. */
#include "session_handoff.h"

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
#include "crypto.h"
#include "kafka.h"
#include "log.h"
#include "signals.h"

#define HANDOFF_TOPIC            LF_TOPIC_SESSION
#define HANDOFF_EVENT_TYPE       "session.end"
#define HANDOFF_DELIVERY_WAIT_MS 40000 /* beyond the producer's message.timeout.ms (30 s) */

#define EPOCH_MS(col) "CAST(UNIX_TIMESTAMP(" col ") * 1000 AS SIGNED)"

struct session_handoff {
        struct db *db;
        struct codec *codec;
        /*
         * Our own producer: send() may return only once its record is acknowledged, and the
         * runtime's producer reports its deliveries to the runtime.
         */
        rd_kafka_t *producer;
        uint64_t seq; /* the record send() is waiting for */
        bool has_report;
        rd_kafka_resp_err_t report_err;
        int report_partition;
        long long report_offset;
        struct db_stmt *record, *read;
};

/* One outbox row: the session as the transaction that ended it saw it. */
struct ended_session {
        long long session_id;
        char stream_id[1024], anchor_id[257], room_id[257];
        long long started_ms; /* -1 when unknown */
        long long ended_ms;
        long long duration_s; /* -1 when unknown */
        long long close_method;
};

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
        struct session_handoff *h = opaque;

        (void)rk;
        /* The opaque is a sequence number, not a pointer: a late report of a record an earlier
         * wait gave up on cannot be taken for the current one. */
        if ((uint64_t)(uintptr_t)rkm->_private != h->seq)
                return;
        h->has_report = true;
        h->report_err = rkm->err;
        h->report_partition = (int)rkm->partition;
        h->report_offset = (long long)rkm->offset;
}

struct session_handoff *session_handoff_new(const struct settings *s, struct db *db, char *errstr,
                                            size_t errstr_size)
{
        struct session_handoff *h = calloc(1, sizeof(*h));

        if (!h) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        h->db = db;
        /* The row is read in the transaction that ended the session, so it is that session. */
        h->record = db_stmt(
                db,
                "INSERT INTO session_handoff (event_id, session_id, stream_id, anchor_id, room_id, started_at, "
                "ended_at, duration_s, close_method) SELECT ?, session_id, stream_id, anchor_id, room_id, "
                "started_at, ended_at, duration_s, COALESCE(close_method, 1) FROM live_streams "
                "WHERE stream_id = ? AND status = 'ended' AND session_id IS NOT NULL AND ended_at IS NOT NULL");
        h->read = db_stmt(
                db,
                "SELECT session_id, stream_id, anchor_id, room_id, " EPOCH_MS("started_at") ", " EPOCH_MS(
                        "ended_at") ", duration_s, close_method FROM session_handoff WHERE event_id = ?");
        if (!h->record || !h->read) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        if (!(h->codec = codec_new(errstr, errstr_size)) ||
            !(h->producer = kafka_producer_new(s, LF_GROUP_PREFIX "stream.session", on_delivery, h,
                                               errstr, errstr_size)))
                goto fail;
        return h;
fail:
        session_handoff_destroy(h);
        return NULL;
}

void session_handoff_destroy(struct session_handoff *h)
{
        if (!h)
                return;
        if (h->producer) {
                rd_kafka_flush(h->producer, 5000);
                rd_kafka_destroy(h->producer);
        }
        codec_destroy(h->codec);
        free(h);
}

enum db_result session_handoff_record(struct session_handoff *h, const char *event_id,
                                      const char *stream_id, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(event_id), DB_STR(stream_id)};
        unsigned long long affected = 0;
        enum db_result r = db_exec(h->db, h->record, p, 2, &affected, NULL, errstr, errstr_size);

        if (r == DB_DUPLICATE)
                return DB_OK; /* recorded by an earlier attempt that committed */
        if (r == DB_OK && affected == 0)
                log_warn(NULL, "session hand-off: stream %s has no ended session to hand off",
                         stream_id);
        return r;
}

/* ------------------------------------------------------------------ sending */

static enum db_result read_session(struct session_handoff *h, const char *event_id,
                                   struct ended_session *es, bool *found, char *errstr,
                                   size_t errstr_size)
{
        struct db_param p[] = {DB_STR(event_id)};
        struct db_col cols[] = {
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_STR, .s = es->stream_id, .s_size = sizeof(es->stream_id)},
                {.type = DB_PARAM_STR, .s = es->anchor_id, .s_size = sizeof(es->anchor_id)},
                {.type = DB_PARAM_STR, .s = es->room_id, .s_size = sizeof(es->room_id)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
        };
        enum db_result r = db_query_row(h->db, h->read, p, 1, cols, 8, found, errstr, errstr_size);

        es->session_id = cols[0].i;
        if (cols[2].is_null)
                es->anchor_id[0] = '\0';
        if (cols[3].is_null)
                es->room_id[0] = '\0';
        es->started_ms = cols[4].is_null ? -1 : cols[4].i;
        es->ended_ms = cols[5].i;
        es->duration_s = cols[6].is_null ? -1 : cols[6].i;
        es->close_method = cols[7].i;
        return r;
}

static void handoff_event_id(long long session_id, char out[65])
{
        char key[64];
        int n = snprintf(key, sizeof(key), HANDOFF_EVENT_TYPE "|%lld", session_id);

        crypto_sha256_hex(key, (size_t)n, out);
}

/* The SessionEnd payload as a JSON object, or NULL when out of memory. */
static json_t *session_payload(const struct ended_session *es)
{
        return json_pack("{s:I,s:o,s:I,s:o,s:I}", "session_id", (json_int_t)es->session_id,
                         "started_at_ms",
                         es->started_ms >= 0 ? json_integer(es->started_ms) : json_null(),
                         "ended_at_ms", (json_int_t)es->ended_ms, "duration_s",
                         es->duration_s >= 0 ? json_integer(es->duration_s) : json_null(),
                         "close_method", (json_int_t)es->close_method);
}

/* @returns 0 with a malloc'd encoding in *buf, or -1 with errstr. */
static int encode(struct session_handoff *h, const struct ended_session *es, const char *event_id,
                  const char *source_event_id, const char *trace_id, void **buf, size_t *len,
                  char *errstr, size_t errstr_size)
{
        json_t *payload = session_payload(es);
        json_t *raw = json_pack("{s:s}", "ended_by", source_event_id);
        char *raw_text = raw ? json_dumps(raw, JSON_COMPACT) : NULL;
        struct envelope env = {
                .event_id = event_id,
                .vendor = "liveflow",
                .event_type = HANDOFF_EVENT_TYPE,
                .stream_id = es->stream_id,
                .anchor_id = es->anchor_id[0] ? es->anchor_id : NULL,
                .room_id = es->room_id[0] ? es->room_id : NULL,
                .event_time_ms = es->ended_ms,
                .receive_time_ms = now_ms(),
                .trace_id = trace_id,
                .raw = raw_text,
                .raw_len = raw_text ? strlen(raw_text) : 0,
        };
        int rc = -1;

        if (!payload || !raw_text)
                snprintf(errstr, errstr_size, "out of memory");
        else
                rc = codec_encode(h->codec, &env, "SessionEnd", payload, buf, len, errstr,
                                  errstr_size);
        json_decref(payload);
        json_decref(raw);
        free(raw_text);
        return rc;
}

/* Produces one encoded record and waits for its report. @returns 0, or -1 with errstr. */
static int produce_and_wait(struct session_handoff *h, const struct ended_session *es,
                            const char *event_id, const char *trace_id, void *buf, size_t len,
                            char *errstr, size_t errstr_size)
{
        long long deadline = now_ms() + HANDOFF_DELIVERY_WAIT_MS;
        rd_kafka_resp_err_t err;

        h->has_report = false;
        h->seq++;
        err = rd_kafka_producev(h->producer, RD_KAFKA_V_TOPIC(HANDOFF_TOPIC),
                                RD_KAFKA_V_KEY(es->stream_id, strlen(es->stream_id)),
                                RD_KAFKA_V_VALUE(buf, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                RD_KAFKA_V_HEADER("trace_id", trace_id, -1),
                                RD_KAFKA_V_HEADER("event_type", HANDOFF_EVENT_TYPE, -1),
                                RD_KAFKA_V_HEADER("event_id", event_id, -1),
                                RD_KAFKA_V_OPAQUE((void *)(uintptr_t)h->seq), RD_KAFKA_V_END);
        if (err) {
                free(buf); /* not handed over on failure */
                snprintf(errstr, errstr_size, "produce %s: %s", HANDOFF_TOPIC,
                         rd_kafka_err2str(err));
                return -1;
        }
        /* buf is librdkafka's from here (RD_KAFKA_MSG_F_FREE). */
        while (!h->has_report && now_ms() < deadline && !signals_stop_requested())
                rd_kafka_poll(h->producer, 100);
        if (!h->has_report || h->report_err) {
                snprintf(errstr, errstr_size, "session.end of session %lld not acknowledged: %s",
                         es->session_id,
                         h->has_report ? rd_kafka_err2str(h->report_err)
                                       : "no delivery report yet");
                return -1;
        }
        return 0;
}

int session_handoff_send(struct session_handoff *h, const char *event_id, const char *trace_id,
                         char *errstr, size_t errstr_size)
{
        struct ended_session es;
        char handoff_id[65];
        void *buf = NULL;
        size_t len = 0;
        bool found = false;

        if (read_session(h, event_id, &es, &found, errstr, errstr_size) != DB_OK)
                return -1;
        if (!found)
                return 0; /* this event ended no session */
        handoff_event_id(es.session_id, handoff_id);
        if (encode(h, &es, handoff_id, event_id, trace_id, &buf, &len, errstr, errstr_size) == -1)
                return -1;
        if (produce_and_wait(h, &es, handoff_id, trace_id, buf, len, errstr, errstr_size) == -1)
                return -1;
        log_info(trace_id,
                 "session.end sent session=%lld stream=%s duration_s=%lld event_id=%s topic=%s "
                 "partition=%d offset=%lld",
                 es.session_id, es.stream_id, es.duration_s, handoff_id, HANDOFF_TOPIC,
                 h->report_partition, h->report_offset);
        return 0;
}
