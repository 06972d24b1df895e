/* notify.c: live.notify through the notify_outbox table (see notify.h): recording a change in
 * the caller's transaction; lib/notify_relay.c sends it after the commit. */
#include "notify.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "crypto.h"
#include "log.h"
#include "notify_int.h"
#include "notify_mark.h"
#include "produce.h"

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

static void on_step(const struct db_col *cols, void *arg)
{
        if (!cols[0].is_null && cols[0].i > 0)
                *(long long *)arg = cols[0].i;
}

/* The server's auto_increment_increment (1 when it cannot be read: see notify_text_exec()). */
static long long id_step(struct db *db)
{
        char err[256];
        long long step = 1;
        struct db_text sql = {0};
        struct db_col col = {.type = DB_PARAM_I64};

        db_text_add(&sql, "SELECT @@auto_increment_increment");
        if (db_text_query(db, &sql, &col, 1, on_step, &step, err, sizeof(err)) != DB_OK)
                log_warn(NULL, "live.notify: auto_increment_increment: %s (1 assumed)", err);
        db_text_free(&sql);
        return step;
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
                n->db,
                "SELECT anchor_id, room_id, session_id, cover_url, duration_s, close_method, "
                "close_reason FROM live_streams WHERE stream_id = ?");
        n->claim = db_stmt(n->db, "SELECT id, event_id, kind, anchor_id, room_id, stream_id, "
                                  "payload FROM notify_outbox WHERE sent_at IS NULL ORDER BY id "
                                  "LIMIT " NOTIFY_FLUSH_ROWS_SQL " FOR UPDATE SKIP LOCKED");
        n->claim_old = db_stmt(n->db, "SELECT id, event_id, kind, anchor_id, room_id, stream_id, "
                                      "payload FROM notify_outbox WHERE sent_at IS NULL AND "
                                      "created_at < NOW(3) - INTERVAL " NOTIFY_SWEEP_AGE_SQL
                                      " SECOND ORDER BY id LIMIT " NOTIFY_FLUSH_ROWS_SQL
                                      " FOR UPDATE SKIP LOCKED");
        if (!n->insert || !n->stream_row || !n->claim || !n->claim_old) {
                notify_destroy(n);
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        /* One relay per producer: a second outbox on it waits for its acknowledgements. */
        n->is_async = n->ack && produce_ack_listen(n->ack, notify_on_report, n) == 0;
        n->id_step = id_step(n->db);
        if (n->is_async && !(n->mark = notify_mark_new(n->db, errstr, errstr_size)))
                log_warn(NULL,
                         "live.notify: no mark thread (%s): marking on the batch's "
                         "connection",
                         errstr);
        return n;
}

void notify_destroy(struct notify *n)
{
        char err[256];

        if (!n)
                return;
        if (n->is_async) {
                /* The drain flushed the producer: what it acknowledged is marked now, not sent
                 * again by the next life's sweep. */
                if (n->inflight_n && notify_mark_sent(n, err, sizeof(err)) == -1)
                        log_warn(NULL, "live.notify: marking sent: %s (sent again later)", err);
                notify_mark_destroy(n->mark); /* marks what it was handed */
                if (produce_ack_listen(n->ack, NULL, NULL) != 0)
                        log_warn(NULL, "live.notify: the producer's listener stays");
        }
        notify_mem_unstage(n, true);
        codec_destroy(n->codec);
        free(n->mem);
        free(n->staged);
        free(n->inflight);
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
        struct db_param params[] = {DB_STR(event_id),   DB_STR(m->kind),      DB_STR(m->anchor_id),
                                    DB_STR(m->room_id), DB_STR(m->stream_id), DB_STR(payload_text)};

        r = db_exec(n->db, n->insert, params, 6, NULL, NULL, errstr, errstr_size);
        free(payload_text);
        if (r == DB_OK && n->is_async)
                notify_stage(n, event_id);
        else if (r == DB_OK)
                n->has_pending = true;
        return r;
}

void notify_text_begin(struct db_text *t)
{
        db_text_reset(t);
        db_text_add(t, "INSERT IGNORE INTO notify_outbox (event_id, kind, anchor_id, room_id, "
                       "stream_id, payload) VALUES ");
}

/* Copies v into buf when it fits as is; false when it does not (*has: v is not NULL). */
static bool copy_col(char *buf, size_t size, const char *v, bool *has)
{
        size_t len = v ? strlen(v) : 0;

        if (has)
                *has = v != NULL;
        if (len >= size)
                return false;
        memcpy(buf, v ? v : "", len + 1);
        return true;
}

/* Keeps the row m makes (event_id, payload taken) for the relay; false when out of memory. */
static bool mem_stage(struct notify *n, const struct notify_msg *m, const char event_id[65],
                      char *payload)
{
        struct mem_row *mr;

        if (n->mem_n == n->mem_cap) {
                size_t cap = n->mem_cap ? n->mem_cap * 2 : 512;
                struct mem_row *a =
                        cap <= NOTIFY_STAGED_MAX ? realloc(n->mem, cap * sizeof(*a)) : NULL;

                if (!a)
                        return false;
                n->mem = a;
                n->mem_cap = cap;
        }
        mr = &n->mem[n->mem_n++];
        memset(mr, 0, sizeof(*mr));
        memcpy(mr->row.event_id, event_id, 65);
        /* the read-back's limits: a payload it could not read back is not sent from memory */
        mr->fits = copy_col(mr->row.kind, sizeof(mr->row.kind), m->kind, NULL) &&
                   copy_col(mr->row.anchor, sizeof(mr->row.anchor), m->anchor_id,
                            &mr->row.has_anchor) &&
                   copy_col(mr->row.room, sizeof(mr->row.room), m->room_id, &mr->row.has_room) &&
                   copy_col(mr->row.stream, sizeof(mr->row.stream), m->stream_id,
                            &mr->row.has_stream) &&
                   strlen(payload) < NOTIFY_PAYLOAD_MAX;
        mr->row.payload = payload;
        return true;
}

/*
 * The memory rows whose statement did not run (is_all: every one) go to the read-back: a row
 * that is not there after the commit is not sent.
 */
void notify_mem_unstage(struct notify *n, bool is_all)
{
        size_t kept = 0;

        for (size_t i = 0; i < n->mem_n; i++) {
                struct mem_row *mr = &n->mem[i];

                if (!is_all && mr->txn) {
                        n->mem[kept++] = *mr;
                        continue;
                }
                notify_stage(n, mr->row.event_id);
                free(mr->row.payload);
        }
        n->mem_n = kept;
}

void notify_text_row(struct notify *n, struct db_text *t, const struct notify_msg *m,
                     bool is_first_row)
{
        char event_id[65], *payload_text = encode_msg(m, event_id);
        const char *const cols[] = {event_id,   m->kind,      m->anchor_id,
                                    m->room_id, m->stream_id, payload_text};

        if (!payload_text) {
                t->is_oom = true;
                return;
        }
        if (is_first_row)
                notify_mem_unstage(n, false); /* a statement built and never run */
        for (size_t i = 0; i < 6; i++) {
                db_text_add(t, i ? ", " : is_first_row ? "(" : ", (");
                db_text_str(n->db, t, cols[i]);
        }
        db_text_add(t, ")");
        if (n->is_async && mem_stage(n, m, event_id, payload_text))
                return;
        free(payload_text);
        notify_stage(n, event_id); /* not found after the commit when the insert does not happen */
}

enum db_result notify_text_exec(struct notify *n, const struct db_text *t, size_t rows,
                                char *errstr, size_t errstr_size)
{
        unsigned long long affected = 0;
        uint64_t txn = db_txn(n->db);
        size_t first = n->mem_n;
        enum db_result r;

        if (!rows)
                return DB_OK;
        if ((r = db_text_exec(n->db, t, &affected, errstr, errstr_size)) == DB_OK && !n->is_async)
                n->has_pending = true;
        while (first > 0 && !n->mem[first - 1].txn)
                first--;
        /* Every row it holds inserted now, in a transaction db follows: sent from memory once
           that commits. Else (a replay's row, one of the same change twice, a failure) what is
           there after the commit is read back. */
        if (r == DB_OK && txn && affected == rows && n->mem_n - first == rows) {
                /* A multi-row INSERT that inserts every row takes consecutive ids (in steps
                   of auto_increment_increment) from the first; the mark also matches the
                   event id, so a wrong guess only leaves a row to the sweep. */
                long long id = (long long)db_last_insert_id(n->db);

                for (size_t i = first; i < n->mem_n; i++, id += n->id_step) {
                        n->mem[i].txn = n->mem[i].fits ? txn : 0;
                        n->mem[i].row.id = id;
                }
        }
        notify_mem_unstage(n, false);
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
        enum db_result r =
                db_query_row(n->db, n->stream_row, p, 1, cols, 7, &found, errstr, errstr_size);
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
