/* notify.c: live.notify's outbox (see notify.h): the relay's setup, and recording one change in
 * the caller's transaction as a notify_outbox row (a batch's changes: lib/notify_bundle.c);
 * lib/notify_relay.c sends after the commit. */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "crypto.h"
#include "log.h"
#include "notify_int.h"
#include "notify_mark.h"
#include "notify_payload.h"
#include "produce.h"
#include "text.h"

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

        if (!n) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        /* The relay encodes in the lane's thread, between its decodes: one codec serves both
           (a codec_new() parses the schema and plans its writer, ~13 M instructions). */
        if (!(n->codec = role_env_codec(env, &n->own_codec, errstr, errstr_size))) {
                free(n);
                return NULL;
        }
        n->sha = crypto_sha256_new(); /* without it, each hash makes its own context */
        n->db = env->db;
        n->producer = env->producer;
        n->ack = env->ack;
        n->has_pending = true; /* what an earlier life recorded and did not send */
        n->recorded_tail = &n->recorded;
        n->insert = db_stmt(n->db,
                            "INSERT IGNORE INTO notify_outbox (event_id, kind, anchor_id, room_id, "
                            "stream_id, payload) VALUES (?, ?, ?, ?, ?, ?)");
        n->insert_bundle =
                db_stmt(n->db, "INSERT INTO notify_batch (messages, body) VALUES (?, ?)");
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
        if (!n->insert || !n->insert_bundle || !n->stream_row || !n->claim || !n->claim_old) {
                notify_destroy(n);
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        /* One relay per producer: a second outbox on it waits for its acknowledgements. */
        n->is_async = n->ack && produce_ack_listen(n->ack, notify_on_report, n) == 0;
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
                if ((n->inflight_n || n->sending) && notify_mark_sent(n, err, sizeof(err)) == -1)
                        log_warn(NULL, "live.notify: marking sent: %s (sent again later)", err);
                notify_mark_destroy(n->mark); /* marks what it was handed */
                if (produce_ack_listen(n->ack, NULL, NULL) != 0)
                        log_warn(NULL, "live.notify: the producer's listener stays");
        }
        notify_bundles_fini(n);
        codec_destroy(n->own_codec);
        crypto_sha256_destroy(n->sha);
        free(n->staged);
        free(n->inflight);
        free(n); /* the statements belong to db */
}

/* ------------------------------------------------------------------ recording */

char *notify_encode_msg(struct notify *n, const struct notify_msg *m, char event_id[65],
                        struct payload **fields)
{
        char key[512];
        size_t key_len = 0;

        /* The event id: the hex SHA-256 of "notify|<kind>|<key>" (cut to 511 bytes). */
        text_append(key, sizeof(key), &key_len, "notify|");
        text_append(key, sizeof(key), &key_len, m->kind ? m->kind : "");
        text_append(key, sizeof(key), &key_len, "|");
        text_append(key, sizeof(key), &key_len, m->key ? m->key : "");
        crypto_sha256_hex_with(n->sha, key, key_len, event_id);
        return notify_payload_json(m, NULL, fields);
}

enum db_result notify_record(struct notify *n, const struct notify_msg *m, char *errstr,
                             size_t errstr_size)
{
        char event_id[65], *payload_text = notify_encode_msg(n, m, event_id, NULL);
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

enum db_result notify_record_stream(struct notify *n, const char *kind, const char *stream_id,
                                    long long at_ms, char *errstr, size_t errstr_size)
{
        char anchor[NOTIFY_ANCHOR_SIZE] = "", room[NOTIFY_ROOM_SIZE] = "", cover[2049] = "";
        char reason[1025] = "", key[32];
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
