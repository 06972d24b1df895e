/* session_handoff.c: session.end records for live.session, kept in a MySQL outbox until
 * acknowledged. */
#include "session_handoff.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "consumer.h"
#include "contract.h"
#include "crypto.h"
#include "log.h"
#include "produce.h"

#define HANDOFF_TOPIC            LF_TOPIC_SESSION
#define HANDOFF_EVENT_TYPE       "session.end"
#define HANDOFF_DELIVERY_WAIT_MS 40000 /* beyond the producer's message.timeout.ms (30 s) */

#define EPOCH_MS(col) "CAST(UNIX_TIMESTAMP(" col ") * 1000 AS SIGNED)"

struct session_handoff {
        struct db *db;
        struct codec *codec, *own_codec; /* the lane's, or own_codec (role_env_codec()) */
        rd_kafka_t *producer; /* the runtime's: send() waits for its record's ack on it */
        struct produce_ack *ack;
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

struct session_handoff *session_handoff_new(const struct role_env *env, char *errstr,
                                            size_t errstr_size)
{
        struct session_handoff *h = calloc(1, sizeof(*h));

        if (!h) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        h->db = env->db;
        h->producer = env->producer;
        h->ack = env->ack;
        /* The row is read in the transaction that ended the session, so it is that session. */
        h->record = db_stmt(
                h->db,
                "INSERT INTO session_handoff (event_id, session_id, stream_id, anchor_id, room_id, started_at, "
                "ended_at, duration_s, close_method) SELECT ?, session_id, stream_id, anchor_id, room_id, "
                "started_at, ended_at, duration_s, COALESCE(close_method, 1) FROM live_streams "
                "WHERE stream_id = ? AND status = 'ended' AND session_id IS NOT NULL AND ended_at IS NOT NULL "
                /* Several vendors may use the id: the session just ended is the one touched last.
                 */
                "ORDER BY last_event_at DESC LIMIT 1");
        h->read = db_stmt(
                h->db,
                "SELECT session_id, stream_id, anchor_id, room_id, " EPOCH_MS("started_at") ", " EPOCH_MS(
                        "ended_at") ", duration_s, close_method FROM session_handoff WHERE event_id = ?");
        if (!h->record || !h->read) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        if (!(h->codec = role_env_codec(env, &h->own_codec, errstr, errstr_size)))
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
        codec_destroy(h->own_codec);
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

/* The session.end record of es, handoff_id, in *pm, encoded. @returns 0, or -1 with errstr. */
static int make_msg(struct session_handoff *h, const struct ended_session *es,
                    const char *handoff_id, const char *source_event_id, const char *trace_id,
                    struct produce_msg *pm, char *errstr, size_t errstr_size)
{
        json_t *raw = json_pack("{s:s}", "ended_by", source_event_id);
        char *raw_text = raw ? json_dumps(raw, JSON_COMPACT) : NULL;
        struct envelope env = {
                .event_id = handoff_id,
                .vendor = "liveflow",
                .event_type = HANDOFF_EVENT_TYPE,
                .stream_id = es->stream_id,
                .anchor_id = es->anchor_id[0] ? es->anchor_id : NULL,
                .room_id = es->room_id[0] ? es->room_id : NULL,
                .event_time_ms = es->ended_ms,
                .trace_id = trace_id,
        };

        json_decref(raw);
        *pm = (struct produce_msg){.topic = HANDOFF_TOPIC,
                                   .key = es->stream_id,
                                   .trace_id = trace_id,
                                   .event_type = HANDOFF_EVENT_TYPE,
                                   .event_id = handoff_id};
        return produce_encode(h->codec, &env, "SessionEnd", session_payload(es), raw_text,
                              &pm->value, &pm->len, errstr, errstr_size);
}

int session_handoff_send(struct session_handoff *h, const char *event_id, const char *trace_id,
                         char *errstr, size_t errstr_size)
{
        struct ended_session es;
        char handoff_id[65];
        struct produce_msg pm;
        bool found = false;

        if (read_session(h, event_id, &es, &found, errstr, errstr_size) != DB_OK)
                return -1;
        if (!found)
                return 0; /* this event ended no session */
        handoff_event_id(es.session_id, handoff_id);
        if (make_msg(h, &es, handoff_id, event_id, trace_id, &pm, errstr, errstr_size) == -1)
                return -1;
        if (produce_acked(h->producer, h->ack, &pm, HANDOFF_DELIVERY_WAIT_MS, errstr,
                          errstr_size) == -1)
                return -1;
        log_info(trace_id,
                 "session.end sent session=%lld stream=%s duration_s=%lld event_id=%s topic=%s "
                 "partition=%d offset=%lld",
                 es.session_id, es.stream_id, es.duration_s, handoff_id, HANDOFF_TOPIC,
                 h->ack->partition, h->ack->offset);
        return 0;
}

/* ------------------------------------------------------------------ sending a batch's */

#define SEND_IN_LIST_MAX 250 /* event ids per IN list: 1 000 values MariaDB turns into a join */

/* One event of session_handoff_send_many(), sorted by id to find the outbox rows. */
struct send_item {
        const char *event_id;
        size_t index;
};

struct send_batch {
        struct send_item *items; /* sorted by event id, then index */
        size_t n;
        struct ended_session *es; /* per index */
        bool *found;              /* per index */
        bool is_mismatch;         /* MySQL returned an id none of ours is byte for byte */
};

static int cmp_send_item(const void *a, const void *b)
{
        const struct send_item *x = a, *y = b;
        int c = strcmp(x->event_id, y->event_id);

        return c ? c : (x->index > y->index) - (x->index < y->index);
}

static int cmp_send_key(const void *key, const void *elem)
{
        return strcmp(key, ((const struct send_item *)elem)->event_id);
}

static void on_send_row(const struct db_col *cols, void *arg)
{
        struct send_batch *sb = arg;
        struct send_item *hit =
                bsearch(cols[0].s, sb->items, sb->n, sizeof(*sb->items), cmp_send_key);
        struct ended_session *es;

        if (!hit) {
                sb->is_mismatch = true;
                return;
        }
        while (hit > sb->items && strcmp(hit[-1].event_id, cols[0].s) == 0)
                hit--;
        es = &sb->es[hit->index]; /* the first copy of the event sends it */
        sb->found[hit->index] = true;
        es->session_id = cols[1].i;
        snprintf(es->stream_id, sizeof(es->stream_id), "%s", cols[2].s);
        snprintf(es->anchor_id, sizeof(es->anchor_id), "%s", cols[3].is_null ? "" : cols[3].s);
        snprintf(es->room_id, sizeof(es->room_id), "%s", cols[4].is_null ? "" : cols[4].s);
        es->started_ms = cols[5].is_null ? -1 : cols[5].i;
        es->ended_ms = cols[6].i;
        es->duration_s = cols[7].is_null ? -1 : cols[7].i;
        es->close_method = cols[8].i;
}

/* The outbox rows of the batch's distinct events, in one query. */
static enum db_result read_sessions(struct session_handoff *h, struct send_batch *sb, char *errstr,
                                    size_t errstr_size)
{
        char id[65], stream[1024], anchor[257], room[257];
        struct db_col cols[] = {
                {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_STR, .s = stream, .s_size = sizeof(stream)},
                {.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)},
                {.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
        };
        struct db_text sql = {0};
        size_t listed = 0;
        enum db_result r;

        db_text_add(&sql, "SELECT event_id, session_id, stream_id, anchor_id, room_id, " EPOCH_MS(
                                  "started_at") ", " EPOCH_MS("ended_at") ", duration_s, "
                                                                          "close_method FROM "
                                                                          "session_handoff "
                                                                          "WHERE ");
        for (size_t i = 0; i < sb->n; i++) {
                if (i && strcmp(sb->items[i].event_id, sb->items[i - 1].event_id) == 0)
                        continue;
                if (listed % SEND_IN_LIST_MAX == 0)
                        db_text_add(&sql, listed ? ") OR event_id IN (" : "event_id IN (");
                else
                        db_text_add(&sql, ", ");
                db_text_str(h->db, &sql, sb->items[i].event_id);
                listed++;
        }
        db_text_add(&sql, ")");
        r = db_text_query(h->db, &sql, cols, sizeof(cols) / sizeof(*cols), on_send_row, sb, errstr,
                          errstr_size);
        db_text_free(&sql);
        if (r == DB_OK && sb->is_mismatch) {
                snprintf(errstr, errstr_size, "an event id MySQL matches other than byte for byte");
                return DB_RETRY;
        }
        return r;
}

struct send_many {
        struct session_handoff *h;
        struct send_batch *sb;
        const char *const *event_ids, *const *trace_ids;
        char (*handoff_ids)[65];
};

/* The record of the batch's i-th event, when it ended a session. */
static int make_nth(void *arg, size_t i, struct produce_msg *pm, char *errstr, size_t errstr_size)
{
        struct send_many *s = arg;

        if (!s->sb->found[i])
                return 0;
        handoff_event_id(s->sb->es[i].session_id, s->handoff_ids[i]);
        return make_msg(s->h, &s->sb->es[i], s->handoff_ids[i], s->event_ids[i], s->trace_ids[i],
                        pm, errstr, errstr_size) == -1
                       ? -1
                       : 1;
}

int session_handoff_send_many(struct session_handoff *h, const char *const *event_ids,
                              const char *const *trace_ids, size_t n, char *errstr,
                              size_t errstr_size)
{
        struct send_batch sb = {.n = n};
        char(*handoff_ids)[65] = calloc(n ? n : 1, sizeof(*handoff_ids));
        struct send_many sm = {h, &sb, event_ids, trace_ids, handoff_ids};
        int rc = -1;

        sb.items = calloc(n ? n : 1, sizeof(*sb.items));
        sb.es = calloc(n ? n : 1, sizeof(*sb.es));
        sb.found = calloc(n ? n : 1, sizeof(*sb.found));
        if (!handoff_ids || !sb.items || !sb.es || !sb.found) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        if (!n) {
                rc = 0;
                goto out;
        }
        for (size_t i = 0; i < n; i++)
                sb.items[i] = (struct send_item){event_ids[i], i};
        qsort(sb.items, n, sizeof(*sb.items), cmp_send_item);
        if (read_sessions(h, &sb, errstr, errstr_size) != DB_OK ||
            produce_acked_made(h->producer, h->ack, n, make_nth, &sm, HANDOFF_DELIVERY_WAIT_MS,
                               errstr, errstr_size) == -1)
                goto out;
        for (size_t i = 0; i < n; i++)
                if (sb.found[i])
                        log_info(trace_ids[i],
                                 "session.end sent session=%lld stream=%s duration_s=%lld "
                                 "event_id=%s topic=%s",
                                 sb.es[i].session_id, sb.es[i].stream_id, sb.es[i].duration_s,
                                 handoff_ids[i], HANDOFF_TOPIC);
        rc = 0;
out:
        free(handoff_ids);
        free(sb.items);
        free(sb.es);
        free(sb.found);
        return rc;
}
