/* notify_bundle.c: a batch's notifications as one notify_batch row (see notify.h): recorded in
 * the batch's transaction, produced message by message after the commit and marked sent once
 * every message is acknowledged; the read-back of a bundle whose commit is not known, and the
 * sweep of bundles nobody sent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "notify_int.h"
#include "text.h"
#include "notify_mark.h"
#include "notify_payload.h"
#include "produce.h"

/* A bundle's messages, one row each in batch order (what the notify_messages view lists). */
#define BUNDLE_MSGS_SQL                                                                            \
        "SELECT b.id, j.event_id, j.kind, j.anchor_id, j.room_id, j.stream_id, j.payload "         \
        "FROM notify_batch b, JSON_TABLE(b.body, '$[*]' COLUMNS (seq FOR ORDINALITY, "             \
        "event_id CHAR(64) CHARACTER SET utf8mb4 PATH '$.event_id', "                              \
        "kind VARCHAR(32) CHARACTER SET utf8mb4 PATH '$.kind', "                                   \
        "anchor_id VARCHAR(64) CHARACTER SET utf8mb4 PATH '$.anchor_id', "                         \
        "room_id VARCHAR(64) CHARACTER SET utf8mb4 PATH '$.room_id', "                             \
        "stream_id VARCHAR(255) CHARACTER SET utf8mb4 PATH '$.stream_id', "                        \
        "payload JSON PATH '$.payload')) j "                                                       \
        "WHERE b.sent_at IS NULL AND b.id IN ("

void notify_bundle_free(struct bundle *b)
{
        if (!b)
                return;
        for (size_t i = 0; i < b->n; i++) {
                free(b->msgs[i].payload);
                payload_destroy(b->msgs[i].fields);
        }
        free(b->msgs);
        free(b->state);
        free(b);
}

static void free_list(struct bundle *b)
{
        while (b) {
                struct bundle *next = b->next;

                notify_bundle_free(b);
                b = next;
        }
}

static void drop_building(struct notify *n)
{
        for (size_t i = 0; i < n->building_n; i++) {
                free(n->building[i].payload);
                payload_destroy(n->building[i].fields);
        }
        n->building_n = 0;
}

void notify_bundles_fini(struct notify *n)
{
        drop_building(n);
        free(n->building);
        free_list(n->recorded);
        free_list(n->sending);
        free(n->unread);
        n->recorded = n->sending = NULL;
        n->recorded_tail = &n->recorded;
}

/* A bundle of cnt messages with room for them (states SEND_UNSENT), or NULL. msgs (cnt of
   them) become its messages when not NULL (the caller's still when NULL is returned). */
static struct bundle *bundle_new(long long id, size_t cnt, struct outbox_row *msgs)
{
        struct bundle *b = calloc(1, sizeof(*b));

        if (!b)
                return NULL;
        b->id = id;
        b->msgs = msgs ? msgs : calloc(cnt ? cnt : 1, sizeof(*b->msgs));
        b->state = calloc(cnt ? cnt : 1, sizeof(*b->state));
        if (!b->msgs || !b->state) {
                if (msgs)
                        b->msgs = NULL; /* not taken */
                notify_bundle_free(b);
                return NULL;
        }
        for (size_t i = 0; i < cnt; i++)
                b->state[i] = SEND_UNSENT;
        return b;
}

/* ------------------------------------------------------------------ recording */

void notify_text_begin(struct db_text *t)
{
        db_text_reset(t);
}

/* Copies v into buf (cut to size - 1 bytes: the widths the relay reads back). */
static void copy_col(char *buf, size_t size, const char *v, bool *has)
{
        if (has)
                *has = v != NULL;
        text_copy(buf, size, v ? v : "");
}

void notify_text_row(struct notify *n, struct db_text *t, const struct notify_msg *m,
                     bool is_first_row)
{
        char event_id[65];
        struct payload *fields = NULL;
        char *payload = notify_encode_msg(n, m, event_id, &fields);
        struct outbox_row *r;

        if (is_first_row)
                drop_building(n); /* a statement built and never run */
        if (payload && n->building_n == n->building_cap) {
                size_t cap = n->building_cap ? n->building_cap * 2 : 512;
                struct outbox_row *a =
                        cap <= NOTIFY_STAGED_MAX ? realloc(n->building, cap * sizeof(*a)) : NULL;

                if (a) {
                        n->building = a;
                        n->building_cap = cap;
                }
        }
        if (!payload || n->building_n == n->building_cap) {
                free(payload);
                payload_destroy(fields);
                t->is_oom = true; /* notify_text_exec() reports it: the batch is tried again */
                return;
        }
        r = &n->building[n->building_n++];
        memset(r, 0, sizeof(*r));
        memcpy(r->event_id, event_id, sizeof(r->event_id));
        copy_col(r->kind, sizeof(r->kind), m->kind, NULL);
        copy_col(r->anchor, sizeof(r->anchor), m->anchor_id, &r->has_anchor);
        copy_col(r->room, sizeof(r->room), m->room_id, &r->has_room);
        copy_col(r->stream, sizeof(r->stream), m->stream_id, &r->has_stream);
        r->payload = payload;
        r->fields = fields;
}

/* By event id, then by place: the first of equal event ids sorts first. */
static int cmp_place(const void *a, const void *b, void *arg)
{
        const struct outbox_row *rows = arg;
        size_t x = *(const size_t *)a, y = *(const size_t *)b;
        int c = strcmp(rows[x].event_id, rows[y].event_id);

        return c ? c : (x > y) - (x < y);
}

/*
 * Keeps the first message of each event id, in order: one change told twice in a batch (two
 * copies of an event, two events of one change) is one message. @returns -1 when out of memory.
 */
static int dedupe_building(struct notify *n)
{
        size_t *place = malloc(n->building_n * sizeof(*place)), kept = 0;
        bool *is_dup = calloc(n->building_n, sizeof(*is_dup));

        if (!place || !is_dup) {
                free(place);
                free(is_dup);
                return -1;
        }
        for (size_t i = 0; i < n->building_n; i++)
                place[i] = i;
        qsort_r(place, n->building_n, sizeof(*place), cmp_place, n->building);
        for (size_t i = 1; i < n->building_n; i++)
                is_dup[place[i]] = strcmp(n->building[place[i]].event_id,
                                          n->building[place[i - 1]].event_id) == 0;
        for (size_t i = 0; i < n->building_n; i++) {
                if (is_dup[i]) {
                        free(n->building[i].payload);
                        payload_destroy(n->building[i].fields);
                } else {
                        n->building[kept++] = n->building[i];
                }
        }
        n->building_n = kept;
        free(place);
        free(is_dup);
        return 0;
}

/*
 * A bundle's body as it is built: JSON text written here rather than through a json_t per
 * message (that cost a tenth of the record role's CPU), each payload as the object text
 * notify_encode_msg() wrote, so it is not escaped a second time.
 */
struct body {
        char *s;
        size_t len, cap;
        bool is_oom;
};

/* Room for len more bytes and the NUL: where they go, or NULL (b->is_oom) when out of memory. */
static char *body_reserve(struct body *b, size_t len)
{
        if (b->is_oom)
                return NULL;
        if (b->len + len + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 16384;
                char *grown;

                while (cap < b->len + len + 1)
                        cap *= 2;
                if (!(grown = realloc(b->s, cap))) {
                        b->is_oom = true;
                        return NULL;
                }
                b->s = grown;
                b->cap = cap;
        }
        return b->s + b->len;
}

static void body_put(struct body *b, const char *s, size_t len)
{
        char *at = body_reserve(b, len);

        if (!at)
                return;
        memcpy(at, s, len);
        b->len += len;
        b->s[b->len] = '\0';
}

/* ,"name":"v" with v a JSON string, escaped as the payloads are (notify_json_string()). */
static void body_field(struct body *b, const char *name, const char *v)
{
        size_t name_len = strlen(name), len = strlen(v);
        char *start = body_reserve(b, name_len + 6 + 6 * len), *at = start;

        if (!at)
                return;
        memcpy(at, ",\"", 2);
        memcpy(at + 2, name, name_len);
        memcpy(at + 2 + name_len, "\":", 2);
        at = notify_json_string(at + name_len + 4, v, len);
        b->len += (size_t)(at - start);
        b->s[b->len] = '\0';
}

/* The body of cnt messages into b: a JSON array, batch order. */
static void bundle_body(struct body *b, const struct outbox_row *rows, size_t cnt)
{
        body_put(b, "[", 1);
        for (size_t i = 0; i < cnt; i++) {
                const struct outbox_row *r = &rows[i];

                body_put(b, i ? ",{\"event_id\":\"" : "{\"event_id\":\"", i ? 14 : 13);
                body_put(b, r->event_id, strlen(r->event_id));
                body_put(b, "\"", 1);
                body_field(b, "kind", r->kind);
                if (r->has_anchor)
                        body_field(b, "anchor_id", r->anchor);
                if (r->has_room)
                        body_field(b, "room_id", r->room);
                if (r->has_stream)
                        body_field(b, "stream_id", r->stream);
                body_put(b, ",\"payload\":", 11);
                body_put(b, r->payload, strlen(r->payload));
                body_put(b, "}", 1);
        }
        body_put(b, "]", 1);
}

/*
 * Inserts rows[0..cnt) as one notify_batch row, and keeps it (taking the payloads) for the
 * relay once its transaction commits.
 */
static enum db_result insert_bundle(struct notify *n, struct outbox_row *rows, size_t cnt,
                                    char *errstr, size_t errstr_size)
{
        unsigned long long id = 0;
        struct body body = {0};
        struct bundle *b;
        enum db_result r;
        bool is_whole;

        bundle_body(&body, rows, cnt);
        if (body.is_oom) {
                free(body.s);
                snprintf(errstr, errstr_size, "out of memory");
                return DB_RETRY;
        }
        /* A prepared statement: the body goes as it is, not escaped into the statement's text. */
        struct db_param params[] = {DB_I64(cnt),
                                    {.type = DB_PARAM_STR, .s = body.s, .len = body.len}};

        r = db_exec(n->db, n->insert_bundle, params, 2, NULL, &id, errstr, errstr_size);
        free(body.s);
        if (r != DB_OK)
                return r;
        if (!n->is_async) {
                n->has_pending = true; /* the flush's sweep sends it, and waits */
                return DB_OK;
        }
        /* One row: its id is exact. Without room for it, the next life's sweep sends it. A batch
           of one bundle (the usual) hands its messages over whole rather than copying them. */
        if ((is_whole = rows == n->building && cnt == n->building_n)) {
                /* Shrunk to its messages (in place: nothing copied), for the bundle's life. */
                struct outbox_row *fit = realloc(rows, cnt * sizeof(*rows));

                if (fit) {
                        rows = n->building = fit;
                        n->building_cap = cnt;
                }
        }
        if (!(b = bundle_new((long long)id, cnt, is_whole ? rows : NULL))) {
                n->has_pending = true;
                return DB_OK;
        }
        b->txn = db_txn(n->db);
        b->n = cnt;
        if (is_whole) {
                n->building = NULL; /* the bundle's now */
                n->building_n = n->building_cap = 0;
        } else {
                memcpy(b->msgs, rows, cnt * sizeof(*rows));
                for (size_t i = 0; i < cnt; i++) { /* the bundle's now */
                        rows[i].payload = NULL;
                        rows[i].fields = NULL;
                }
        }
        *n->recorded_tail = b;
        n->recorded_tail = &b->next;
        return DB_OK;
}

enum db_result notify_text_exec(struct notify *n, struct db_text *t, size_t rows, char *errstr,
                                size_t errstr_size)
{
        enum db_result r = DB_OK;

        if (t->is_oom || n->building_n != rows || dedupe_building(n) == -1) {
                drop_building(n);
                snprintf(errstr, errstr_size, "out of memory");
                return DB_RETRY;
        }
        for (size_t at = 0; at < n->building_n && r == DB_OK; at += NOTIFY_BUNDLE_MSGS) {
                size_t cnt = n->building_n - at < NOTIFY_BUNDLE_MSGS ? n->building_n - at
                                                                     : NOTIFY_BUNDLE_MSGS;

                r = insert_bundle(n, n->building + at, cnt, errstr, errstr_size);
        }
        drop_building(n);
        return r;
}

/* ------------------------------------------------------------------ reading bundles back */

struct loaded {
        struct bundle *head, **tail, *cur;
        size_t cur_cap;
        bool is_oom;
};

/* A message of the bundles read: appended to the bundle of its id (rows come by id, seq). */
static void on_msg(const struct db_col *cols, void *arg)
{
        struct loaded *l = arg;
        struct outbox_row *r;

        if (l->is_oom)
                return;
        if (!l->cur || l->cur->id != cols[0].i) {
                if (!(l->cur = bundle_new(cols[0].i, 64, NULL))) {
                        l->is_oom = true;
                        return;
                }
                l->cur_cap = 64;
                *l->tail = l->cur;
                l->tail = &l->cur->next;
        }
        if (l->cur->n == l->cur_cap) {
                size_t cap = l->cur_cap * 2;
                struct outbox_row *m = realloc(l->cur->msgs, cap * sizeof(*m));
                enum send_state *s = m ? realloc(l->cur->state, cap * sizeof(*s)) : NULL;

                if (m)
                        l->cur->msgs = m;
                if (!s) {
                        l->is_oom = true;
                        return;
                }
                l->cur->state = s;
                l->cur_cap = cap;
        }
        r = &l->cur->msgs[l->cur->n];
        memset(r, 0, sizeof(*r));
        if (notify_row_read(cols, r) == -1) {
                l->is_oom = true;
                return;
        }
        l->cur->state[l->cur->n++] = SEND_UNSENT;
}

/* The messages of the unsent bundles among ids[0..cnt), into *out (a list). */
static int load_bundles(struct notify *n, const long long *ids, size_t cnt, struct bundle **out,
                        char *errstr, size_t errstr_size)
{
        struct notify_row_cols row;
        struct db_col *cols = notify_row_cols_init(&row);
        struct loaded l = {.tail = out};
        struct db_text sql = {0};
        enum db_result r;

        *out = NULL;
        db_text_add(&sql, BUNDLE_MSGS_SQL);
        for (size_t i = 0; i < cnt; i++)
                db_text_add(&sql, i ? ", %lld" : "%lld", ids[i]);
        db_text_add(&sql, ") ORDER BY b.id, j.seq");
        r = db_text_query(n->db, &sql, cols, 7, on_msg, &l, errstr, errstr_size);
        db_text_free(&sql);
        if (r == DB_OK && !l.is_oom)
                return 0;
        if (l.is_oom)
                snprintf(errstr, errstr_size, "out of memory");
        free_list(*out);
        *out = NULL;
        return -1;
}

/* ------------------------------------------------------------------ the relay */

static void log_msg(enum log_level level, const struct outbox_row *r, long long bundle)
{
        LOG_AT(level, NULL, "live.notify %s anchor=%s stream=%s event_id=%s bundle=%lld", r->kind,
               r->has_anchor ? r->anchor : "-", r->has_stream ? r->stream : "-", r->event_id,
               bundle);
}

/*
 * Produces b's messages not produced yet (or whose send failed), without waiting. One that
 * cannot be produced stays for the next flush; the others go. One line per bundle at info (a
 * line per message cost as much as its Avro encoding); each message's at debug.
 */
static int produce_bundle(struct notify *n, struct bundle *b, char *errstr, size_t errstr_size)
{
        size_t produced = 0;
        int rc = 0;

        for (size_t i = 0; i < b->n; i++) {
                struct produce_msg pm;
                char trace_id[33];
                uint64_t token;

                if (b->state[i] != SEND_UNSENT)
                        continue;
                token = ++n->token;
                if (notify_add_in_flight(n, &b->msgs[i], b, i, token) == -1) {
                        snprintf(errstr, errstr_size, "out of memory");
                        rc = -1;
                        break;
                }
                if (notify_encode_row(n, &b->msgs[i], &pm, trace_id, errstr, errstr_size) == -1 ||
                    produce_async(n->producer, n->ack, &pm, token, errstr, errstr_size) == -1) {
                        n->inflight_n--;
                        rc = -1;
                        continue;
                }
                b->state[i] = SEND_PENDING;
                produced++;
                log_msg(LOG_LEVEL_DEBUG, &b->msgs[i], b->id);
        }
        if (produced)
                log_info(NULL, "live.notify bundle=%lld produced=%zu of %zu messages", b->id,
                         produced, b->n);
        return rc;
}

/* Remembers id for the read-back (its commit is not known). */
static void unread_add(struct notify *n, long long id)
{
        if (n->unread_n == n->unread_cap) {
                size_t cap = n->unread_cap ? n->unread_cap * 2 : 64;
                long long *a =
                        cap <= NOTIFY_STAGED_MAX ? realloc(n->unread, cap * sizeof(*a)) : NULL;

                if (!a) {
                        n->has_pending = true; /* the sweep takes it */
                        return;
                }
                n->unread = a;
                n->unread_cap = cap;
        }
        n->unread[n->unread_n++] = id;
}

/* Appends the list l to the bundles being sent. */
static void to_sending(struct notify *n, struct bundle *l)
{
        struct bundle **tail = &n->sending;

        while (*tail)
                tail = &(*tail)->next;
        *tail = l;
}

/*
 * The recorded bundles: those whose transaction committed whole go to the sending list as
 * they were written; one still open stays; the others (rolled back, to a savepoint too, or a
 * commit not known) are read back by id: a bundle that is not there is not sent.
 */
static void settle_recorded(struct notify *n)
{
        struct bundle *b = n->recorded, *keep = NULL, **keep_tail = &keep;

        n->recorded = NULL;
        while (b) {
                struct bundle *next = b->next;

                b->next = NULL;
                if (b->txn && db_txn_committed(n->db, b->txn)) {
                        to_sending(n, b);
                } else if (b->txn && b->txn == db_txn(n->db)) {
                        *keep_tail = b;
                        keep_tail = &b->next;
                } else {
                        unread_add(n, b->id);
                        notify_bundle_free(b);
                }
                b = next;
        }
        n->recorded = keep;
        n->recorded_tail = keep ? keep_tail : &n->recorded;
}

/* The bundles whose commit is not known, as they are now (an unsent one is sent). */
static int read_back(struct notify *n, char *errstr, size_t errstr_size)
{
        struct bundle *l;

        if (!n->unread_n)
                return 0;
        if (load_bundles(n, n->unread, n->unread_n, &l, errstr, errstr_size) == -1)
                return -1; /* they stay, for the next flush */
        n->unread_n = 0;
        to_sending(n, l);
        return 0;
}

int notify_relay_bundles(struct notify *n, char *errstr, size_t errstr_size)
{
        int rc = 0;

        settle_recorded(n);
        if (read_back(n, errstr, errstr_size) == -1)
                rc = -1;
        for (struct bundle *b = n->sending; b; b = b->next)
                if (produce_bundle(n, b, errstr, errstr_size) == -1)
                        rc = -1;
        return rc;
}

int notify_mark_bundles(struct notify *n, char *errstr, size_t errstr_size)
{
        struct notify_mark_row *rows;
        struct bundle **p = &n->sending;
        size_t cnt = 0, done = 0;
        int rc = 0;

        for (struct bundle *b = n->sending; b; b = b->next)
                cnt++;
        if (!cnt)
                return 0;
        if (!(rows = calloc(cnt, sizeof(*rows)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        for (struct bundle *b = n->sending; b; b = b->next) {
                size_t acked = 0;

                for (size_t i = 0; i < b->n; i++)
                        acked += b->state[i] == SEND_ACKED;
                if (acked == b->n)
                        rows[done++] = (struct notify_mark_row){.id = b->id, .is_bundle = true};
        }
        if (done && n->mark && notify_mark_add(n->mark, rows, done) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = -1;
        } else if (done && !n->mark) {
                rc = notify_mark_now(n->db, rows, done, errstr, errstr_size);
        }
        free(rows);
        /* Handed over (or marked): their in-flight entries are gone (reported), so they go. */
        while (rc == 0 && *p) {
                struct bundle *b = *p;
                size_t acked = 0;

                for (size_t i = 0; i < b->n; i++)
                        acked += b->state[i] == SEND_ACKED;
                if (acked == b->n) {
                        *p = b->next;
                        notify_bundle_free(b);
                } else {
                        p = &b->next;
                }
        }
        return rc;
}

static bool in_list(const struct bundle *b, long long id)
{
        for (; b; b = b->next)
                if (b->id == id)
                        return true;
        return false;
}

bool notify_bundle_is_ours(const struct notify *n, long long id)
{
        for (size_t i = 0; i < n->unread_n; i++)
                if (n->unread[i] == id)
                        return true;
        return in_list(n->recorded, id) || in_list(n->sending, id);
}

/* ------------------------------------------------------------------ the sweep */

struct claimed_ids {
        long long ids[NOTIFY_BUNDLE_CLAIM];
        size_t n;
};

static void on_claimed_id(const struct db_col *cols, void *arg)
{
        struct claimed_ids *c = arg;

        if (c->n < NOTIFY_BUNDLE_CLAIM)
                c->ids[c->n++] = cols[0].i;
}

/*
 * Sends every message of the bundles in l at once and waits for the acknowledgements; ids
 * receives the bundles whose every message was acknowledged (*acked of them).
 */
static int send_waiting(struct notify *n, struct bundle *l, long long *ids, size_t *acked,
                        char *errstr, size_t errstr_size)
{
        size_t total = 0, at = 0;
        struct produce_msg *msgs;
        char(*trace_ids)[33];
        bool *is_acked;
        int rc = 0;

        *acked = 0;
        for (struct bundle *b = l; b; b = b->next)
                total += b->n;
        msgs = calloc(total + 1, sizeof(*msgs));
        trace_ids = calloc(total + 1, sizeof(*trace_ids));
        is_acked = calloc(total + 1, sizeof(*is_acked));
        if (!msgs || !trace_ids || !is_acked) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = -1;
                goto out;
        }
        for (struct bundle *b = l; b; b = b->next)
                for (size_t i = 0; i < b->n; i++, at++)
                        if (notify_encode_row(n, &b->msgs[i], &msgs[at], trace_ids[at], errstr,
                                              errstr_size) == -1) {
                                rc = -1; /* the messages before it go; its bundle stays unsent */
                                goto send;
                        }
send:
        if (produce_acked_many(n->producer, n->ack, msgs, at, is_acked, NOTIFY_DELIVERY_WAIT_MS,
                               errstr, errstr_size) == -1)
                rc = -1;
        at = 0;
        for (struct bundle *b = l; b; b = b->next) {
                size_t ok = 0;

                for (size_t i = 0; i < b->n; i++, at++)
                        if (at < total && is_acked[at]) {
                                ok++;
                                log_msg(LOG_LEVEL_INFO, &b->msgs[i], b->id);
                        }
                if (ok == b->n)
                        ids[(*acked)++] = b->id;
        }
out:
        free(msgs);
        free(trace_ids);
        free(is_acked);
        return rc;
}

/* Marks ids[0..cnt) sent in the sweep's transaction. */
static enum db_result mark_claimed(struct notify *n, const long long *ids, size_t cnt, char *errstr,
                                   size_t errstr_size)
{
        struct db_text sql = {0};
        enum db_result r;

        db_text_add(&sql, "UPDATE notify_batch SET sent_at = NOW(3) WHERE id IN (");
        for (size_t i = 0; i < cnt; i++)
                db_text_add(&sql, i ? ", %lld" : "%lld", ids[i]);
        db_text_add(&sql, ")");
        r = db_text_exec(n->db, &sql, NULL, errstr, errstr_size);
        db_text_free(&sql);
        return r;
}

static bool is_marking(const struct notify_mark_row *rows, long cnt, long long id)
{
        for (long i = 0; i < cnt; i++)
                if (rows[i].is_bundle && rows[i].id == id)
                        return true;
        return false;
}

/* One transaction of the sweep: claims, sends and marks up to NOTIFY_BUNDLE_CLAIM bundles. */
static int sweep_round(struct notify *n, bool is_old, size_t *claimed, size_t *theirs, char *errstr,
                       size_t errstr_size)
{
        struct db_col col = {.type = DB_PARAM_I64};
        struct claimed_ids c = {.n = 0};
        long long acked_ids[NOTIFY_BUNDLE_CLAIM];
        size_t acked = 0, kept = 0;
        struct bundle *l = NULL;
        struct db_text sql = {0};
        struct notify_mark_row *marking = NULL; /* acknowledged, handed to the mark's thread */
        long marking_n = 0;
        int rc = -1;

        *claimed = *theirs = 0;
        db_text_add(
                &sql,
                "SELECT id FROM notify_batch WHERE sent_at IS NULL%s ORDER BY id LIMIT " NOTIFY_BUNDLE_CLAIM_SQL
                " FOR UPDATE SKIP LOCKED",
                is_old ? " AND created_at < NOW(3) - INTERVAL " NOTIFY_SWEEP_AGE_SQL " SECOND"
                       : "");
        if (db_begin(n->db, errstr, errstr_size) != DB_OK)
                goto out;
        if (db_text_query(n->db, &sql, &col, 1, on_claimed_id, &c, errstr, errstr_size) != DB_OK)
                goto rollback;
        *claimed = c.n;
        if (c.n && n->mark && (marking_n = notify_mark_pending_rows(n->mark, &marking)) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                goto rollback;
        }
        for (size_t i = 0; i < c.n; i++) /* the relay's own are left to it */
                if (!notify_bundle_is_ours(n, c.ids[i]) &&
                    !is_marking(marking, marking_n, c.ids[i]))
                        c.ids[kept++] = c.ids[i];
        *theirs = kept;
        if (kept && load_bundles(n, c.ids, kept, &l, errstr, errstr_size) == -1)
                goto rollback;
        if (kept && send_waiting(n, l, acked_ids, &acked, errstr, errstr_size) == -1 && !acked)
                goto rollback;
        if (acked && mark_claimed(n, acked_ids, acked, errstr, errstr_size) != DB_OK)
                goto rollback;
        if (db_commit(n->db, errstr, errstr_size) != DB_OK)
                goto rollback;
        rc = acked == kept ? 0 : -1; /* what was not marked waits for the next sweep */
        if (rc == -1 && !errstr[0])
                snprintf(errstr, errstr_size, "%zu of %zu bundles not acknowledged", kept - acked,
                         kept);
        goto out;
rollback:
        db_rollback(n->db);
out:
        free_list(l);
        free(marking);
        db_text_free(&sql);
        return rc;
}

int notify_sweep_bundles(struct notify *n, bool is_old, bool *more, char *errstr,
                         size_t errstr_size)
{
        size_t claimed = NOTIFY_BUNDLE_CLAIM, theirs = 1;

        /* A full claim may have more behind it; one of only the relay's own ends the loop. */
        for (int round = 0; round < NOTIFY_FLUSH_ROUNDS && claimed == NOTIFY_BUNDLE_CLAIM && theirs;
             round++) {
                errstr[0] = '\0';
                if (sweep_round(n, is_old, &claimed, &theirs, errstr, errstr_size) == -1)
                        return -1;
        }
        *more = claimed == NOTIFY_BUNDLE_CLAIM && theirs;
        return 0;
}
