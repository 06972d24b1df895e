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
#include "notify_mark.h"
#include "produce.h"

#define NOTIFY_DELIVERY_WAIT_MS 40000 /* beyond the producer's message.timeout.ms (30 s) */
#define NOTIFY_FLUSH_ROWS       500   /* rows claimed per flush transaction: a batch's worth */
#define NOTIFY_FLUSH_ROWS_SQL   "500"
#define NOTIFY_FLUSH_ROUNDS     20    /* transactions per flush at most: the rest waits */
#define NOTIFY_SWEEP_MS         10000 /* how often the relay sweeps for rows nobody sent */
/* Acknowledged rows go to the mark's thread (one UPDATE there) at most this often, or once
   this many wait: not a statement per batch. A crash before the mark sends them again (same
   event ids). */
#define NOTIFY_MARK_MS   1000
#define NOTIFY_MARK_ROWS    4096
#define NOTIFY_MARK_WAIT_MS 5000 /* notify_flush(always) waits for the mark's thread */
/* A row this old is in nobody's flight: message.timeout.ms (30 s) has given up on it. */
#define NOTIFY_SWEEP_AGE_SQL "60"
#define NOTIFY_PAYLOAD_MAX 8192 /* the read-back's payload buffer */
#define NOTIFY_STAGED_MAX                                                                          \
        (1u << 16) /* event ids waiting for the relay (4 MiB); beyond: the sweep */

enum send_state { SEND_PENDING, SEND_ACKED, SEND_FAILED };

/* A row to send: one claimed or read back (id > 0), or one a batch recorded (id 0). */
struct outbox_row {
        long long id;
        char event_id[65], kind[33], anchor[65], room[65], stream[256];
        bool has_anchor, has_room, has_stream;
        bool in_flight; /* find_in_flight() */
        char *payload;
};

/*
 * A row notify_text_row() put in a batch's statement, kept as written: sent from memory
 * once the transaction its statement ran in (txn) committed whole with every row inserted,
 * or else read back (staged) like notify_record()'s.
 */
struct mem_row {
        struct outbox_row row;
        uint64_t txn; /* 0: its statement has not run (yet) */
        bool fits;    /* every value fits its column as is (else read back) */
};

/* A row the relay produced: its report is awaited, then it is marked sent. */
struct in_flight {
        long long id; /* as far as known: the mark wants the id and the event id to match */
        uint64_t token;
        enum send_state state;
        char event_id[65], kind[33];
};

struct notify {
        struct db *db;
        struct codec *codec;
        rd_kafka_t *producer;
        struct produce_ack *ack;
        struct db_stmt *insert, *stream_row, *claim, *claim_old;
        /* the sweep is due: recorded since the last flush (without the relay), or unknown (at
           start), or more than it took last time */
        bool has_pending;
        bool is_async;  /* the relay listens to the producer's reports (else each flush waits) */
        bool has_swept; /* this life swept every unsent row once */
        long long next_sweep_ms, next_mark_ms;
        long long id_step; /* the server's auto_increment_increment */
        char (*staged)[65]; /* event ids recorded since the last flush */
        size_t staged_n, staged_cap;
        struct mem_row *mem; /* a batch's rows recorded since the last flush, in order */
        size_t mem_n, mem_cap;
        struct notify_mark *mark; /* the mark's thread (NULL: the relay marks on db) */
        struct in_flight *inflight; /* in token order */
        size_t inflight_n, inflight_cap;
        uint64_t token;
};

static void stage(struct notify *n, const char event_id[65]);
static void mem_unstage(struct notify *n, bool is_all);
static void on_report(void *arg, uint64_t token, rd_kafka_resp_err_t err);
static int mark_sent(struct notify *n, char *errstr, size_t errstr_size);

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
        n->is_async = n->ack && produce_ack_listen(n->ack, on_report, n) == 0;
        n->id_step = id_step(n->db);
        if (n->is_async && !(n->mark = notify_mark_new(n->db, errstr, errstr_size)))
                log_warn(NULL, "live.notify: no mark thread (%s): marking on the batch's "
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
                if (n->inflight_n && mark_sent(n, err, sizeof(err)) == -1)
                        log_warn(NULL, "live.notify: marking sent: %s (sent again later)", err);
                notify_mark_destroy(n->mark); /* marks what it was handed */
                if (produce_ack_listen(n->ack, NULL, NULL) != 0)
                        log_warn(NULL, "live.notify: the producer's listener stays");
        }
        mem_unstage(n, true);
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
                stage(n, event_id);
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
static void mem_unstage(struct notify *n, bool is_all)
{
        size_t kept = 0;

        for (size_t i = 0; i < n->mem_n; i++) {
                struct mem_row *mr = &n->mem[i];

                if (!is_all && mr->txn) {
                        n->mem[kept++] = *mr;
                        continue;
                }
                stage(n, mr->row.event_id);
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
                mem_unstage(n, false); /* a statement built and never run */
        for (size_t i = 0; i < 6; i++) {
                db_text_add(t, i ? ", " : is_first_row ? "(" : ", (");
                db_text_str(n->db, t, cols[i]);
        }
        db_text_add(t, ")");
        if (n->is_async && mem_stage(n, m, event_id, payload_text))
                return;
        free(payload_text);
        stage(n, event_id); /* not found after the commit when the insert does not happen */
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
        mem_unstage(n, false);
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

/* ------------------------------------------------------------------ sending */

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

static int cmp_event_id(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Sets each row's in_flight: the relay produced its event id and its report has not been
 * marked yet (the rows of one read are distinct). @returns -1 when out of memory.
 */
static int find_in_flight(const struct notify *n, struct outbox_row *rows, size_t cnt)
{
        char(*marking)[65] = NULL; /* acknowledged, handed to the mark's thread */
        long marking_n = n->mark && cnt ? notify_mark_pending_ids(n->mark, &marking) : 0;
        size_t ids_n = n->inflight_n + (marking_n > 0 ? (size_t)marking_n : 0);
        const char **ids;

        for (size_t i = 0; i < cnt; i++)
                rows[i].in_flight = false;
        if (marking_n == -1)
                return -1;
        if (!ids_n || !cnt)
                return 0;
        if (!(ids = malloc(ids_n * sizeof(*ids)))) {
                free(marking);
                return -1;
        }
        for (size_t i = 0; i < n->inflight_n; i++)
                ids[i] = n->inflight[i].event_id;
        for (size_t i = n->inflight_n; i < ids_n; i++)
                ids[i] = marking[i - n->inflight_n];
        qsort(ids, ids_n, sizeof(*ids), cmp_event_id);
        for (size_t i = 0; i < cnt; i++) {
                const char *id = rows[i].event_id;

                rows[i].in_flight = bsearch(&id, ids, ids_n, sizeof(*ids), cmp_event_id) != NULL;
        }
        free(ids);
        free(marking);
        return 0;
}

static void log_sent(const struct outbox_row *r)
{
        log_info(NULL, "live.notify %s anchor=%s stream=%s event_id=%s", r->kind,
                 r->has_anchor ? r->anchor : "-", r->has_stream ? r->stream : "-", r->event_id);
}

/*
 * The sweep's way: sends the claimed rows at once (produced together, every acknowledgement
 * awaited), then marks the acknowledged ones sent in one statement. Rows the relay has in
 * flight are left to it. *sent receives how many are marked.
 */
static int send_rows(struct notify *n, struct claimed *c, size_t *sent, char *errstr,
                     size_t errstr_size)
{
        struct produce_msg *msgs = calloc(c->n + 1, sizeof(*msgs));
        char(*trace_ids)[33] = calloc(c->n + 1, sizeof(*trace_ids));
        bool *is_acked = calloc(c->n + 1, sizeof(*is_acked));
        size_t *row_of = calloc(c->n + 1, sizeof(*row_of));
        struct db_text sql = {0};
        size_t cnt = 0, acked = 0;
        int rc = 0;

        *sent = 0;
        if (!msgs || !trace_ids || !is_acked || !row_of) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = -1; /* nothing sent: what is claimed waits for the next flush */
                goto out;
        }
        for (size_t i = 0; i < c->n; i++) {
                if (c->rows[i].in_flight)
                        continue;
                if (encode_row(n, &c->rows[i], &msgs[cnt], trace_ids[cnt], errstr, errstr_size) ==
                    -1) {
                        rc = -1; /* the rows before it go; this one and the rest wait */
                        break;
                }
                row_of[cnt++] = i;
        }
        if (produce_acked_many(n->producer, n->ack, msgs, cnt, is_acked, NOTIFY_DELIVERY_WAIT_MS,
                               errstr, errstr_size) == -1)
                rc = -1;
        db_text_add(&sql, "UPDATE notify_outbox SET sent_at = NOW(3) WHERE id IN (");
        for (size_t i = 0; i < cnt; i++) {
                if (!is_acked[i])
                        continue;
                db_text_add(&sql, acked++ ? ", %lld" : "%lld", c->rows[row_of[i]].id);
                log_sent(&c->rows[row_of[i]]);
        }
        db_text_add(&sql, ")");
        if (acked && db_text_exec(n->db, &sql, NULL, errstr, errstr_size) != DB_OK) {
                acked = 0;
                rc = -1;
        }
        *sent = acked;
out:
        db_text_free(&sql);
        free(msgs);
        free(trace_ids);
        free(is_acked);
        free(row_of);
        return rc;
}

/*
 * One transaction of the sweep: claims up to NOTIFY_FLUSH_ROWS, sends them, marks those sent.
 * *claimed receives how many it claimed that the relay does not have in flight.
 */
static int sweep_round(struct notify *n, struct db_stmt *claim, size_t *claimed, char *errstr,
                       size_t errstr_size)
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
        size_t sent = 0;
        int rc = -1;

        *claimed = 0;
        if (!c) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (db_begin(n->db, errstr, errstr_size) != DB_OK)
                goto out;
        if (db_query_each(n->db, claim, NULL, 0, cols, 7, on_claimed, c, errstr, errstr_size) !=
            DB_OK)
                goto rollback;
        if (find_in_flight(n, c->rows, c->n) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                goto rollback;
        }
        for (size_t i = 0; i < c->n; i++)
                *claimed += !c->rows[i].in_flight;
        if (send_rows(n, c, &sent, errstr, errstr_size) == -1 && !sent)
                goto rollback; /* what was sent stays marked: commit it */
        if (db_commit(n->db, errstr, errstr_size) != DB_OK)
                goto rollback;
        rc = sent == *claimed ? 0 : -1; /* what was not marked waits for the next sweep */
        goto out;
rollback:
        db_rollback(n->db);
out:
        for (size_t i = 0; i < c->n; i++)
                free(c->rows[i].payload);
        free(c);
        return rc;
}

/*
 * The sweep: every row nobody sent (an earlier life's, one whose send failed, one another
 * instance recorded and lost), claimed FOR UPDATE SKIP LOCKED so that instances sweeping side
 * by side do not send a row twice. claim is n->claim (every unsent row: the first sweep of
 * this life, or a caller's `always`) or n->claim_old (rows older than any send in flight).
 */
static int sweep(struct notify *n, struct db_stmt *claim, char *errstr, size_t errstr_size)
{
        size_t claimed = NOTIFY_FLUSH_ROWS;

        /* A full claim may have more behind it (rows in flight count as not claimed: the
           relay's own rows end the loop). */
        for (int round = 0; round < NOTIFY_FLUSH_ROUNDS && claimed == NOTIFY_FLUSH_ROWS; round++)
                if (sweep_round(n, claim, &claimed, errstr, errstr_size) == -1)
                        return -1;
        n->has_pending = claimed == NOTIFY_FLUSH_ROWS; /* more than the rounds took */
        return 0;
}

/* ------------------------------------------------------------------ the relay */

/* The producer's report of the relay's record token (from inside a poll: memory only). */
static void on_report(void *arg, uint64_t token, rd_kafka_resp_err_t err)
{
        struct notify *n = arg;
        size_t lo = 0, hi = n->inflight_n;

        while (lo < hi) { /* tokens rise in the array's order */
                size_t mid = lo + (hi - lo) / 2;

                if (n->inflight[mid].token < token)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == n->inflight_n || n->inflight[lo].token != token)
                return; /* not ours any more */
        n->inflight[lo].state = err ? SEND_FAILED : SEND_ACKED;
        if (err)
                log_warn(NULL, "live.notify %s event_id=%s not acknowledged: %s (sent again)",
                         n->inflight[lo].kind, n->inflight[lo].event_id, rd_kafka_err2str(err));
}

/* Remembers event_id (recorded in the open transaction) for the relay after the commit. */
static void stage(struct notify *n, const char event_id[65])
{
        if (!n->is_async)
                return;
        if (n->staged_n == n->staged_cap) {
                size_t cap = n->staged_cap ? n->staged_cap * 2 : 512;
                char(*staged)[65] =
                        cap <= NOTIFY_STAGED_MAX ? realloc(n->staged, cap * sizeof(*staged)) : NULL;

                if (!staged) {
                        n->has_pending = true; /* the sweep takes what is not staged */
                        return;
                }
                n->staged = staged;
                n->staged_cap = cap;
        }
        memcpy(n->staged[n->staged_n++], event_id, 65);
}

static int add_in_flight(struct notify *n, const struct outbox_row *r, uint64_t token)
{
        struct in_flight *f;

        if (n->inflight_n == n->inflight_cap) {
                size_t cap = n->inflight_cap ? n->inflight_cap * 2 : 512;
                struct in_flight *a = realloc(n->inflight, cap * sizeof(*a));

                if (!a)
                        return -1;
                n->inflight = a;
                n->inflight_cap = cap;
        }
        f = &n->inflight[n->inflight_n++];
        memset(f, 0, sizeof(*f));
        f->id = r->id;
        f->token = token;
        f->state = SEND_PENDING;
        memcpy(f->event_id, r->event_id, sizeof(f->event_id));
        snprintf(f->kind, sizeof(f->kind), "%s", r->kind);
        return 0;
}

/* Produces the rows without waiting; each goes in flight. */
static int relay_rows(struct notify *n, struct outbox_row *rows, size_t cnt, char *errstr,
                      size_t errstr_size)
{
        size_t i = 0;

        if (find_in_flight(n, rows, cnt) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                goto unsent;
        }
        for (; i < cnt; i++) {
                struct produce_msg pm;
                char trace_id[33];
                uint64_t token = ++n->token;

                if (rows[i].in_flight)
                        continue;
                if (add_in_flight(n, &rows[i], token) == -1) {
                        snprintf(errstr, errstr_size, "out of memory");
                        goto unsent;
                }
                if (encode_row(n, &rows[i], &pm, trace_id, errstr, errstr_size) == -1 ||
                    produce_async(n->producer, n->ack, &pm, token, errstr, errstr_size) == -1) {
                        n->inflight_n--;
                        goto unsent;
                }
                log_sent(&rows[i]);
        }
        return 0;
unsent: /* this row and the rest: staged again, for the next flush (read back) */
        for (; i < cnt; i++)
                if (!rows[i].in_flight)
                        stage(n, rows[i].event_id);
        return -1;
}

/*
 * The rows a batch recorded whose transaction committed whole (db_txn_committed()): produced
 * as they were written, without reading them back. The others (rolled back, or not known
 * committed) go to the read-back, which sends what is there.
 */
static int relay_mem(struct notify *n, char *errstr, size_t errstr_size)
{
        struct outbox_row *rows;
        size_t cnt = 0, kept = 0;
        int rc = 0;

        if (!n->mem_n)
                return 0;
        if (!(rows = malloc(n->mem_n * sizeof(*rows)))) {
                mem_unstage(n, true);
                return 0; /* the read-back has them */
        }
        for (size_t i = 0; i < n->mem_n; i++) {
                struct mem_row *mr = &n->mem[i];

                if (mr->txn && db_txn_committed(n->db, mr->txn)) {
                        rows[cnt++] = mr->row; /* takes its payload */
                        continue;
                }
                if (mr->txn && mr->txn == db_txn(n->db)) {
                        n->mem[kept++] = *mr; /* not committed yet: a later flush */
                        continue;
                }
                stage(n, mr->row.event_id);
                free(mr->row.payload);
        }
        n->mem_n = kept;
        rc = relay_rows(n, rows, cnt, errstr, errstr_size);
        for (size_t i = 0; i < cnt; i++)
                free(rows[i].payload);
        free(rows);
        return rc;
}

/*
 * The rows this instance recorded since the last flush (their event ids, staged), as they
 * are now: a row the transaction rolled back is not there, one sent already is left out.
 * Read in chunks of NOTIFY_FLUSH_ROWS and produced without waiting.
 */
static int relay_staged(struct notify *n, char *errstr, size_t errstr_size)
{
        char event_id[65], kind[33], anchor[65], room[65], stream[256], payload[8192];
        struct db_col cols[] = {{.type = DB_PARAM_I64},
                                {.type = DB_PARAM_STR, .s = event_id, .s_size = sizeof(event_id)},
                                {.type = DB_PARAM_STR, .s = kind, .s_size = sizeof(kind)},
                                {.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)},
                                {.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                                {.type = DB_PARAM_STR, .s = stream, .s_size = sizeof(stream)},
                                {.type = DB_PARAM_STR, .s = payload, .s_size = sizeof(payload)}};
        size_t staged_n = n->staged_n, done = 0;
        struct db_text sql = {0};
        struct claimed *c;
        int rc = 0;

        if (!staged_n)
                return 0;
        if (!(c = calloc(1, sizeof(*c)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        n->staged_n = 0; /* what fails below is staged again */
        while (done < staged_n && rc == 0) {
                size_t cnt =
                        staged_n - done < NOTIFY_FLUSH_ROWS ? staged_n - done : NOTIFY_FLUSH_ROWS;

                db_text_reset(&sql);
                db_text_add(&sql, "SELECT id, event_id, kind, anchor_id, room_id, stream_id, "
                                  "payload FROM notify_outbox WHERE sent_at IS NULL AND "
                                  "event_id IN (");
                for (size_t i = 0; i < cnt; i++) {
                        db_text_add(&sql, i ? ", " : "");
                        db_text_str(n->db, &sql, n->staged[done + i]);
                }
                db_text_add(&sql, ") ORDER BY id");
                c->n = 0;
                if (db_text_query(n->db, &sql, cols, 7, on_claimed, c, errstr, errstr_size) !=
                    DB_OK) {
                        rc = -1;
                        break;
                }
                done += cnt;
                rc = relay_rows(n, c->rows, c->n, errstr, errstr_size);
                for (size_t i = 0; i < c->n; i++)
                        free(c->rows[i].payload);
        }
        /* The chunks not read: staged again (stage() appends after what relay_rows() put back). */
        for (size_t i = done; i < staged_n; i++)
                stage(n, n->staged[i]);
        db_text_free(&sql);
        free(c);
        return rc;
}

/*
 * Marks the acknowledged rows sent, in one statement; a row whose send failed leaves the
 * flight and is staged again (sent again by the next flush, with the same event id).
 */
static int mark_sent(struct notify *n, char *errstr, size_t errstr_size)
{
        struct notify_mark_row *rows;
        size_t acked = 0, kept = 0, reported = 0;
        int rc = 0;

        for (size_t i = 0; i < n->inflight_n; i++)
                reported += n->inflight[i].state != SEND_PENDING;
        if (!reported)
                return 0; /* nothing came since the last flush */
        if (!(rows = malloc(n->inflight_n * sizeof(*rows)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1; /* they stay in flight: the next flush */
        }
        for (size_t i = 0; i < n->inflight_n; i++)
                if (n->inflight[i].state == SEND_ACKED) {
                        rows[acked].id = n->inflight[i].id;
                        memcpy(rows[acked++].event_id, n->inflight[i].event_id, 65);
                }
        /* Handed to the mark's thread (then they count in flight there), or marked here. */
        if (acked && n->mark && notify_mark_add(n->mark, rows, acked) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = -1;
        } else if (acked && !n->mark) {
                rc = notify_mark_now(n->db, rows, acked, errstr, errstr_size);
        }
        free(rows); /* on -1 they stay acknowledged in flight: the next flush */
        for (size_t i = 0; i < n->inflight_n; i++) {
                struct in_flight *f = &n->inflight[i];

                if (f->state == SEND_FAILED)
                        stage(n, f->event_id);
                else if (f->state == SEND_PENDING || rc == -1)
                        n->inflight[kept++] = *f;
        }
        n->inflight_n = kept;
        return rc;
}

int notify_flush(struct notify *n, bool always, char *errstr, size_t errstr_size)
{
        long long now = clock_mono_ms();
        int rc = 0;

        if (!n->is_async) /* every flush waits for its acknowledgements */
                return always || n->has_pending ? sweep(n, n->claim, errstr, errstr_size) : 0;
        if (always || now >= n->next_mark_ms || n->inflight_n >= NOTIFY_MARK_ROWS) {
                n->next_mark_ms = now + NOTIFY_MARK_MS;
                if (mark_sent(n, errstr, errstr_size) == -1)
                        rc = -1;
                else if (always && n->mark && !notify_mark_wait(n->mark, NOTIFY_MARK_WAIT_MS))
                        log_warn(NULL, "live.notify: the mark is still under way");
        }
        if (rc == 0 && (always || n->has_pending || now >= n->next_sweep_ms)) {
                /* The first sweep of a life (before its relay sends anything) takes every
                 * unsent row, so what a crash left goes at once; later ones only rows older
                 * than any send in flight, which another instance's relay may have. */
                struct db_stmt *claim = n->has_swept ? n->claim_old : n->claim;

                n->next_sweep_ms = now + NOTIFY_SWEEP_MS;
                if (sweep(n, claim, errstr, errstr_size) == -1)
                        rc = -1;
                else
                        n->has_swept = true;
        }
        if (relay_mem(n, errstr, errstr_size) == -1)
                rc = -1;
        if (relay_staged(n, errstr, errstr_size) == -1)
                rc = -1;
        return rc;
}

size_t notify_in_flight(const struct notify *n)
{
        return n->inflight_n + (n->mark ? notify_mark_pending(n->mark) : 0);
}
