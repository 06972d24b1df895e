/* notify_relay.c: sending what the outbox holds (see notify.h): the relay of what this
 * instance recorded, the sweep of what nobody sent, the hand-over to the mark's thread. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "codec.h"
#include "contract.h"
#include "log.h"
#include "notify_int.h"
#include "notify_mark.h"
#include "payload.h"
#include "produce.h"
#include "text.h"

struct claimed {
        struct outbox_row rows[NOTIFY_FLUSH_ROWS];
        size_t n;
};

struct db_col *notify_row_cols_init(struct notify_row_cols *rc)
{
        const struct db_col cols[] = {
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_STR, .s = rc->event_id, .s_size = sizeof(rc->event_id)},
                {.type = DB_PARAM_STR, .s = rc->kind, .s_size = sizeof(rc->kind)},
                {.type = DB_PARAM_STR, .s = rc->anchor, .s_size = sizeof(rc->anchor)},
                {.type = DB_PARAM_STR, .s = rc->room, .s_size = sizeof(rc->room)},
                {.type = DB_PARAM_STR, .s = rc->stream, .s_size = sizeof(rc->stream)},
                {.type = DB_PARAM_STR, .s = rc->payload, .s_size = sizeof(rc->payload)}};

        memcpy(rc->cols, cols, sizeof(cols));
        return rc->cols;
}

/* A column's text into buf, "" for NULL; *has (unless NULL) says whether it had one. */
static void read_col(char *buf, size_t size, const struct db_col *col, bool *has)
{
        if (has)
                *has = !col->is_null;
        text_copy(buf, size, col->is_null ? "" : col->s);
}

int notify_row_read(const struct db_col *cols, struct outbox_row *r)
{
        read_col(r->event_id, sizeof(r->event_id), &cols[1], NULL);
        read_col(r->kind, sizeof(r->kind), &cols[2], NULL);
        read_col(r->anchor, sizeof(r->anchor), &cols[3], &r->has_anchor);
        read_col(r->room, sizeof(r->room), &cols[4], &r->has_room);
        read_col(r->stream, sizeof(r->stream), &cols[5], &r->has_stream);
        r->payload = strdup(cols[6].is_null ? "{}" : cols[6].s);
        return r->payload ? 0 : -1;
}

static void on_claimed(const struct db_col *cols, void *arg)
{
        struct claimed *c = arg;
        struct outbox_row *r;

        if (c->n == NOTIFY_FLUSH_ROWS)
                return;
        r = &c->rows[c->n++];
        r->id = cols[0].i;
        notify_row_read(cols, r); /* a payload it could not copy is refused when sent */
}

/* r's at_ms: from the fields the batch kept, else from its payload read back (*json, the
   caller's reference, NULL when the text does not parse). */
static long long row_at_ms(const struct outbox_row *r, json_t **json)
{
        const struct payload_field *f;

        *json = NULL;
        if (r->fields)
                return (f = payload_get(r->fields, "at_ms")) ? f->n : 0;
        if (r->payload)
                *json = json_loads(r->payload, 0, NULL);
        return json_integer_value(json_object_get(*json, "at_ms"));
}

int notify_encode_row(struct notify *n, const struct outbox_row *r, struct produce_msg *pm,
                      char trace_id[33], char *errstr, size_t errstr_size)
{
        /* A batch's message keeps its payload's fields: its text is not parsed again. */
        json_t *payload;
        long long at_ms = row_at_ms(r, &payload);
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
        text_copy(trace_id, 33, r->event_id);
        if (!r->fields && !payload) {
                snprintf(errstr, errstr_size, "notify_outbox %lld: unreadable payload", r->id);
                return -1;
        }
        /* liveflow's own writer: avro-c's bytes (tests/lib/codec/write.c) at a fraction of
         * the cost, which was the largest part of a consumer's CPU per notified record. */
        rc = codec_encode_direct(n->codec, &env, "Notify", r->fields, payload, &pm->value, &pm->len,
                                 errstr, errstr_size);
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
        struct notify_mark_row *marking = NULL; /* acknowledged, handed to the mark's thread */
        long marking_n = n->mark && cnt ? notify_mark_pending_rows(n->mark, &marking) : 0;
        size_t ids_n = n->inflight_n + (marking_n > 0 ? (size_t)marking_n : 0), k = 0;
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
                if (!n->inflight[i].bundle)
                        ids[k++] = n->inflight[i].event_id;
        for (long i = 0; i < marking_n; i++)
                if (!marking[i].is_bundle)
                        ids[k++] = marking[i].event_id;
        qsort(ids, k, sizeof(*ids), cmp_event_id);
        for (size_t i = 0; i < cnt && k; i++) {
                const char *id = rows[i].event_id;

                rows[i].in_flight = bsearch(&id, ids, k, sizeof(*ids), cmp_event_id) != NULL;
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
                if (notify_encode_row(n, &c->rows[i], &msgs[cnt], trace_ids[cnt], errstr,
                                      errstr_size) == -1) {
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
        struct notify_row_cols row;
        struct db_col *cols = notify_row_cols_init(&row);
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
        bool more_bundles = false;

        /* A full claim may have more behind it (rows in flight count as not claimed: the
           relay's own rows end the loop). */
        for (int round = 0; round < NOTIFY_FLUSH_ROUNDS && claimed == NOTIFY_FLUSH_ROWS; round++)
                if (sweep_round(n, claim, &claimed, errstr, errstr_size) == -1)
                        return -1;
        if (notify_sweep_bundles(n, claim == n->claim_old, &more_bundles, errstr, errstr_size) ==
            -1)
                return -1;
        /* more than the rounds took */
        n->has_pending = claimed == NOTIFY_FLUSH_ROWS || more_bundles;
        return 0;
}

/* ------------------------------------------------------------------ the relay */

/* The producer's report of the relay's record token (from inside a poll: memory only). */
void notify_on_report(void *arg, uint64_t token, rd_kafka_resp_err_t err)
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
        if (n->inflight[lo].bundle) /* the bundle's message: produced again when it failed */
                n->inflight[lo].bundle->state[n->inflight[lo].msg] = err ? SEND_UNSENT : SEND_ACKED;
        if (err)
                log_warn(NULL, "live.notify %s event_id=%s not acknowledged: %s (sent again)",
                         n->inflight[lo].kind, n->inflight[lo].event_id, rd_kafka_err2str(err));
}

/* Remembers event_id (recorded in the open transaction) for the relay after the commit. */
void notify_stage(struct notify *n, const char event_id[65])
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

int notify_add_in_flight(struct notify *n, const struct outbox_row *r, struct bundle *bundle,
                         size_t msg, uint64_t token)
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
        f->bundle = bundle;
        f->msg = msg;
        f->token = token;
        f->state = SEND_PENDING;
        memcpy(f->event_id, r->event_id, sizeof(f->event_id));
        text_copy(f->kind, sizeof(f->kind), r->kind);
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
                if (notify_add_in_flight(n, &rows[i], NULL, 0, token) == -1) {
                        snprintf(errstr, errstr_size, "out of memory");
                        goto unsent;
                }
                if (notify_encode_row(n, &rows[i], &pm, trace_id, errstr, errstr_size) == -1 ||
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
                        notify_stage(n, rows[i].event_id);
        return -1;
}

/*
 * The rows this instance recorded since the last flush (their event ids, staged), as they
 * are now: a row the transaction rolled back is not there, one sent already is left out.
 * Read in chunks of NOTIFY_FLUSH_ROWS and produced without waiting.
 */
static int relay_staged(struct notify *n, char *errstr, size_t errstr_size)
{
        struct notify_row_cols row;
        struct db_col *cols = notify_row_cols_init(&row);
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
        /* The chunks not read: staged again (after what relay_rows() put back). */
        for (size_t i = done; i < staged_n; i++)
                notify_stage(n, n->staged[i]);
        db_text_free(&sql);
        free(c);
        return rc;
}

/*
 * Marks the acknowledged rows sent, in one statement; a row whose send failed leaves the
 * flight and is staged again (sent again by the next flush, with the same event id). A
 * bundle's reported messages leave the flight (the bundle keeps their state); a bundle whose
 * every message is acknowledged is marked.
 */
int notify_mark_sent(struct notify *n, char *errstr, size_t errstr_size)
{
        struct notify_mark_row *rows;
        size_t acked = 0, kept = 0, reported = 0;
        int rc = 0;

        for (size_t i = 0; i < n->inflight_n; i++)
                reported += n->inflight[i].state != SEND_PENDING;
        if (!reported && !n->sending)
                return 0; /* nothing came since the last flush */
        if (!(rows = malloc((n->inflight_n + 1) * sizeof(*rows)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1; /* they stay in flight: the next flush */
        }
        for (size_t i = 0; i < n->inflight_n; i++)
                if (n->inflight[i].state == SEND_ACKED && !n->inflight[i].bundle) {
                        rows[acked].id = n->inflight[i].id;
                        rows[acked].is_bundle = false;
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

                if (f->state == SEND_PENDING || (rc == -1 && !f->bundle && f->state == SEND_ACKED))
                        n->inflight[kept++] = *f;
                else if (f->state == SEND_FAILED && !f->bundle)
                        notify_stage(n, f->event_id);
        }
        n->inflight_n = kept;
        if (notify_mark_bundles(n, errstr, errstr_size) == -1)
                rc = -1;
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
                if (notify_mark_sent(n, errstr, errstr_size) == -1)
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
        if (notify_relay_bundles(n, errstr, errstr_size) == -1)
                rc = -1;
        if (relay_staged(n, errstr, errstr_size) == -1)
                rc = -1;
        return rc;
}

size_t notify_in_flight(const struct notify *n)
{
        size_t cnt = n->unread_n + (n->mark ? notify_mark_pending(n->mark) : 0);

        for (size_t i = 0; i < n->inflight_n; i++)
                cnt += !n->inflight[i].bundle;
        for (const struct bundle *b = n->recorded; b; b = b->next)
                cnt++;
        for (const struct bundle *b = n->sending; b; b = b->next)
                cnt++;
        return cnt;
}
