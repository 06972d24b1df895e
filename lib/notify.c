/* notify.c: live.notify through the notify_outbox table (see notify.h). */
#include "notify.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "codec.h"
#include "consumer.h"
#include "contract.h"
#include "crypto.h"
#include "log.h"
#include "produce.h"

#define NOTIFY_DELIVERY_WAIT_MS 40000 /* beyond the producer's message.timeout.ms (30 s) */
#define NOTIFY_FLUSH_ROWS       500   /* rows claimed per flush transaction: a batch's worth */
#define NOTIFY_FLUSH_ROWS_SQL   "500"
#define NOTIFY_FLUSH_ROUNDS     20    /* transactions per flush at most: the rest waits */

struct notify {
        struct db *db;
        struct codec *codec;
        rd_kafka_t *producer;
        struct produce_ack *ack;
        struct db_stmt *insert, *stream_row, *claim;
        bool has_pending; /* recorded since the last flush, or unknown (at start) */
};

struct notify_msg notify_msg_init(const char *kind, const char *key, long long at_ms)
{
        return (struct notify_msg){.kind = kind,
                                   .key = key,
                                   .at_ms = at_ms,
                                   .duration_s = -1,
                                   .close_method = -1,
                                   .until_ms = -1,
                                   .amount = -1};
}

struct notify *notify_new(const struct role_env *env, char *errstr, size_t errstr_size)
{
        struct notify *n = calloc(1, sizeof(*n));

        if (!n || !(n->codec = codec_new(errstr, errstr_size))) {
                if (!n)
                        snprintf(errstr, errstr_size, "out of memory");
                free(n);
                return NULL;
        }
        n->db = env->db;
        n->producer = env->producer;
        n->ack = env->ack;
        n->has_pending = true; /* what an earlier life recorded and did not send */
        n->insert = db_stmt(n->db,
                            "INSERT IGNORE INTO notify_outbox (event_id, kind, anchor_id, room_id, "
                            "stream_id, payload) VALUES (?, ?, ?, ?, ?, ?)");
        n->stream_row = db_stmt(
                n->db, "SELECT anchor_id, room_id, session_id, cover_url, duration_s, close_method, "
                       "close_reason FROM live_streams WHERE stream_id = ?");
        n->claim = db_stmt(n->db, "SELECT id, event_id, kind, anchor_id, room_id, stream_id, "
                                  "payload FROM notify_outbox WHERE sent_at IS NULL ORDER BY id "
                                  "LIMIT " NOTIFY_FLUSH_ROWS_SQL " FOR UPDATE SKIP LOCKED");
        if (!n->insert || !n->stream_row || !n->claim) {
                notify_destroy(n);
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        return n;
}

void notify_destroy(struct notify *n)
{
        if (!n)
                return;
        codec_destroy(n->codec);
        free(n); /* the statements belong to db */
}

/* ------------------------------------------------------------------ recording */

static void set_str(json_t *p, const char *name, const char *v)
{
        if (v && *v)
                json_object_set_new(p, name, json_string(v));
}

static void set_num(json_t *p, const char *name, long long v)
{
        if (v >= 0)
                json_object_set_new(p, name, json_integer(v));
}

/* m's event id and payload text (malloc'd), or NULL when out of memory. */
static char *encode_msg(const struct notify_msg *m, char event_id[65])
{
        char text[512], *payload_text;
        json_t *p = json_pack("{s:s,s:I}", "kind", m->kind, "at_ms", (json_int_t)m->at_ms);
        int len = snprintf(text, sizeof(text), "notify|%s|%s", m->kind, m->key ? m->key : "");

        if (!p)
                return NULL;
        if (m->session_id > 0)
                json_object_set_new(p, "session_id", json_integer(m->session_id));
        set_str(p, "title", m->title);
        set_str(p, "cover_url", m->cover_url);
        set_str(p, "reason", m->reason);
        set_str(p, "request_id", m->request_id);
        set_str(p, "file_id", m->file_id);
        set_str(p, "playback_url", m->playback_url);
        set_num(p, "duration_s", m->duration_s);
        set_num(p, "close_method", m->close_method);
        set_num(p, "until_ms", m->until_ms);
        set_num(p, "amount", m->amount);
        payload_text = json_dumps(p, JSON_COMPACT);
        json_decref(p);
        crypto_sha256_hex(text, (size_t)len < sizeof(text) ? (size_t)len : sizeof(text) - 1,
                          event_id);
        return payload_text;
}

enum db_result notify_record(struct notify *n, const struct notify_msg *m, char *errstr,
                             size_t errstr_size)
{
        char event_id[65], *payload_text = encode_msg(m, event_id);
        enum db_result r;

        if (!payload_text) {
                snprintf(errstr, errstr_size, "out of memory");
                return DB_RETRY;
        }
        struct db_param params[] = {DB_STR(event_id),    DB_STR(m->kind),
                                    DB_STR(m->anchor_id), DB_STR(m->room_id),
                                    DB_STR(m->stream_id), DB_STR(payload_text)};

        r = db_exec(n->db, n->insert, params, 6, NULL, NULL, errstr, errstr_size);
        free(payload_text);
        if (r == DB_OK)
                n->has_pending = true;
        return r;
}

void notify_text_begin(struct db_text *t)
{
        db_text_reset(t);
        db_text_add(t, "INSERT IGNORE INTO notify_outbox (event_id, kind, anchor_id, room_id, "
                       "stream_id, payload) VALUES ");
}

void notify_text_row(struct notify *n, struct db_text *t, const struct notify_msg *m,
                     bool is_first_row)
{
        char event_id[65], *payload_text = encode_msg(m, event_id);
        const char *const cols[] = {event_id, m->kind, m->anchor_id, m->room_id, m->stream_id,
                                    payload_text};

        if (!payload_text) {
                t->is_oom = true;
                return;
        }
        for (size_t i = 0; i < 6; i++) {
                db_text_add(t, i ? ", " : is_first_row ? "(" : ", (");
                db_text_str(n->db, t, cols[i]);
        }
        db_text_add(t, ")");
        free(payload_text);
}

enum db_result notify_text_exec(struct notify *n, const struct db_text *t, size_t rows,
                                char *errstr, size_t errstr_size)
{
        enum db_result r;

        if (!rows)
                return DB_OK;
        if ((r = db_text_exec(n->db, t, NULL, errstr, errstr_size)) == DB_OK)
                n->has_pending = true;
        return r;
}

enum db_result notify_record_stream(struct notify *n, const char *kind, const char *stream_id,
                                    long long at_ms, char *errstr, size_t errstr_size)
{
        char anchor[65] = "", room[65] = "", cover[2049] = "", reason[1025] = "", key[32];
        struct db_param p[] = {DB_STR(stream_id)};
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)},
                                {.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_STR, .s = cover, .s_size = sizeof(cover)},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_STR, .s = reason, .s_size = sizeof(reason)}};
        bool found = false, is_end = strcmp(kind, "stream.ended") == 0;
        enum db_result r = db_query_row(n->db, n->stream_row, p, 1, cols, 7, &found, errstr,
                                        errstr_size);
        struct notify_msg m;

        if (r != DB_OK || !found || cols[2].is_null)
                return r;
        snprintf(key, sizeof(key), "%lld", cols[2].i);
        m = notify_msg_init(kind, key, at_ms);
        m.anchor_id = cols[0].is_null ? NULL : anchor;
        m.room_id = cols[1].is_null ? NULL : room;
        m.stream_id = stream_id;
        m.session_id = cols[2].i;
        m.cover_url = cols[3].is_null ? NULL : cover;
        if (is_end) {
                m.duration_s = cols[4].is_null ? -1 : cols[4].i;
                m.close_method = cols[5].is_null ? -1 : cols[5].i;
                m.reason = cols[6].is_null ? NULL : reason;
        }
        return notify_record(n, &m, errstr, errstr_size);
}

/* ------------------------------------------------------------------ sending */

/* One claimed row. */
struct outbox_row {
        long long id;
        char event_id[65], kind[33], anchor[65], room[65], stream[256];
        bool has_anchor, has_room, has_stream;
        char *payload;
};

struct claimed {
        struct outbox_row rows[NOTIFY_FLUSH_ROWS];
        size_t n;
};

static void on_claimed(const struct db_col *cols, void *arg)
{
        struct claimed *c = arg;
        struct outbox_row *r;

        if (c->n == NOTIFY_FLUSH_ROWS)
                return;
        r = &c->rows[c->n++];
        r->id = cols[0].i;
        snprintf(r->event_id, sizeof(r->event_id), "%s", cols[1].s);
        snprintf(r->kind, sizeof(r->kind), "%s", cols[2].s);
        snprintf(r->anchor, sizeof(r->anchor), "%s", cols[3].is_null ? "" : cols[3].s);
        snprintf(r->room, sizeof(r->room), "%s", cols[4].is_null ? "" : cols[4].s);
        snprintf(r->stream, sizeof(r->stream), "%s", cols[5].is_null ? "" : cols[5].s);
        r->has_anchor = !cols[3].is_null;
        r->has_room = !cols[4].is_null;
        r->has_stream = !cols[5].is_null;
        r->payload = strdup(cols[6].is_null ? "{}" : cols[6].s);
}

/* The record of one claimed row into pm (its strings point into r and trace_id). */
static int encode_row(struct notify *n, const struct outbox_row *r, struct produce_msg *pm,
                      char trace_id[33], char *errstr, size_t errstr_size)
{
        json_t *payload = r->payload ? json_loads(r->payload, 0, NULL) : NULL;
        long long at_ms = json_integer_value(json_object_get(payload, "at_ms"));
        struct envelope env = {
                .event_id = r->event_id,
                .vendor = "liveflow",
                .event_type = r->kind,
                .stream_id = r->has_stream ? r->stream : NULL,
                .anchor_id = r->has_anchor ? r->anchor : NULL,
                .room_id = r->has_room ? r->room : NULL,
                .event_time_ms = at_ms,
                .receive_time_ms = clock_wall_ms(),
                .trace_id = trace_id,
                .raw = r->payload,
                .raw_len = r->payload ? strlen(r->payload) : 0,
        };
        int rc;

        *pm = (struct produce_msg){.topic = LF_TOPIC_NOTIFY,
                                   .key = r->has_anchor   ? r->anchor
                                          : r->has_stream ? r->stream
                                                          : r->room,
                                   .trace_id = trace_id,
                                   .event_type = r->kind,
                                   .event_id = r->event_id};
        snprintf(trace_id, 33, "%.32s", r->event_id);
        if (!payload) {
                snprintf(errstr, errstr_size, "notify_outbox %lld: unreadable payload", r->id);
                return -1;
        }
        rc = codec_encode(n->codec, &env, "Notify", payload, &pm->value, &pm->len, errstr,
                          errstr_size);
        json_decref(payload);
        return rc;
}

/*
 * Sends the claimed rows at once (produced together, every acknowledgement awaited), then
 * marks the acknowledged ones sent in one statement. *sent receives how many are marked.
 */
static int send_rows(struct notify *n, struct claimed *c, size_t *sent, char *errstr,
                     size_t errstr_size)
{
        struct produce_msg *msgs = calloc(c->n + 1, sizeof(*msgs));
        char(*trace_ids)[33] = calloc(c->n + 1, sizeof(*trace_ids));
        bool *is_acked = calloc(c->n + 1, sizeof(*is_acked));
        struct db_text sql = {0};
        size_t cnt = 0, acked = 0;
        int rc = 0;

        *sent = 0;
        if (!msgs || !trace_ids || !is_acked) {
                snprintf(errstr, errstr_size, "out of memory");
                free(msgs);
                free(trace_ids);
                free(is_acked);
                return -1; /* nothing sent: what is claimed waits for the next flush */
        }

        for (; cnt < c->n; cnt++)
                if (encode_row(n, &c->rows[cnt], &msgs[cnt], trace_ids[cnt], errstr,
                               errstr_size) == -1) {
                        rc = -1; /* the rows before it go; this one and the rest wait */
                        break;
                }
        if (produce_acked_many(n->producer, n->ack, msgs, cnt, is_acked,
                               NOTIFY_DELIVERY_WAIT_MS, errstr, errstr_size) == -1)
                rc = -1;
        db_text_add(&sql, "UPDATE notify_outbox SET sent_at = NOW(3) WHERE id IN (");
        for (size_t i = 0; i < cnt; i++) {
                if (!is_acked[i])
                        continue;
                db_text_add(&sql, acked++ ? ", %lld" : "%lld", c->rows[i].id);
                log_info(NULL, "live.notify %s anchor=%s stream=%s event_id=%s", c->rows[i].kind,
                         c->rows[i].has_anchor ? c->rows[i].anchor : "-",
                         c->rows[i].has_stream ? c->rows[i].stream : "-", c->rows[i].event_id);
        }
        db_text_add(&sql, ")");
        if (acked && db_text_exec(n->db, &sql, NULL, errstr, errstr_size) != DB_OK) {
                acked = 0;
                rc = -1;
        }
        db_text_free(&sql);
        free(msgs);
        free(trace_ids);
        free(is_acked);
        *sent = acked;
        return rc;
}

/* One transaction: claims up to NOTIFY_FLUSH_ROWS, sends them, marks those sent. */
static int flush_round(struct notify *n, size_t *sent, char *errstr, size_t errstr_size)
{
        char event_id[65], kind[33], anchor[65], room[65], stream[256], payload[8192];
        struct db_col cols[] = {{.type = DB_PARAM_I64},
                                {.type = DB_PARAM_STR, .s = event_id, .s_size = sizeof(event_id)},
                                {.type = DB_PARAM_STR, .s = kind, .s_size = sizeof(kind)},
                                {.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)},
                                {.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                                {.type = DB_PARAM_STR, .s = stream, .s_size = sizeof(stream)},
                                {.type = DB_PARAM_STR, .s = payload, .s_size = sizeof(payload)}};
        struct claimed *c = calloc(1, sizeof(*c));
        int rc = -1;

        *sent = 0;
        if (!c) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (db_begin(n->db, errstr, errstr_size) != DB_OK)
                goto out;
        if (db_query_each(n->db, n->claim, NULL, 0, cols, 7, on_claimed, c, errstr,
                          errstr_size) != DB_OK)
                goto rollback;
        if (send_rows(n, c, sent, errstr, errstr_size) == -1 && !*sent)
                goto rollback; /* what was sent stays marked: commit it */
        if (db_commit(n->db, errstr, errstr_size) != DB_OK)
                goto rollback;
        rc = *sent == c->n ? 0 : -1;
        goto out;
rollback:
        db_rollback(n->db);
out:
        for (size_t i = 0; i < c->n; i++)
                free(c->rows[i].payload);
        free(c);
        return rc;
}

int notify_flush(struct notify *n, bool always, char *errstr, size_t errstr_size)
{
        size_t sent = NOTIFY_FLUSH_ROWS;

        if (!always && !n->has_pending)
                return 0;
        for (int round = 0; round < NOTIFY_FLUSH_ROUNDS && sent == NOTIFY_FLUSH_ROWS; round++)
                if (flush_round(n, &sent, errstr, errstr_size) == -1)
                        return -1;
        n->has_pending = sent == NOTIFY_FLUSH_ROWS; /* more than the rounds took */
        return 0;
}
