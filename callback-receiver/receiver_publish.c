/*
 * receiver_publish.c: a request's last call, once its body is read: the vendor module maps
 * and verifies it (after an anchor lookup off the loop when it needs one), its claim
 * (lock:callback:{event_key}) is asked with those of the loop's other requests of the turn,
 * and once its answer is in, its event is encoded and produced with the connection suspended;
 * the delivery report marks the claim "done", the mark's confirmation resumes the connection,
 * and the handler answers 200 or 503 (or spools, for a caller that never retries). A batch of
 * /v1/events takes one claim and waits for its last delivery report.
 */
#include "receiver_int.h"
#include "receiver_request.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "claim.h"
#include "delivery.h"
#include "encoder.h"
#include "log.h"
#include "metrics.h"
#include "routes.h"
#include "settings.h"
#include "spool.h"
#include "text.h"
#include "vendor.h"
#include "webhook.h"

static int map_callback(struct request *req, struct webhook_verdict *v)
{
        struct webhook_request wr = request_as_webhook(req);

        if (req->vendor->map(receiver_vendor_state(req->rcv, req->vendor), &wr, &req->ev, v) == -1)
                return -1;
        /* No 200 for what a consumer could not store: every field against its column. */
        if (webhook_check_limits(&req->ev, "", v) == -1) {
                webhook_event_fini(&req->ev);
                return -1;
        }
        return 0;
}

/* After the broker's ack: what an endpoint remembers of an accepted request. */
static void note_delivered(struct request *req)
{
        struct webhook_request wr = request_as_webhook(req);

        if (req->vendor->acked)
                req->vendor->acked(receiver_vendor_state(req->rcv, req->vendor), &wr, &req->ev);
        request_count_recording_failure(req);
}

/*
 * A caller that never retries (SRS): when Kafka could not take its event, the event is made
 * durable in the local spool instead (replayed by receiver_serve()), and the caller gets 200.
 */
static bool spool_event(struct request *req, const char *why)
{
        struct receiver *rcv = req->rcv;
        const struct webhook_event *ev = &req->ev;
        char errstr[256];

        if (!ev->value) /* not a spooling endpoint, or no copy could be made */
                return false;
        if (spool_append(rcv->spool, ev, errstr, sizeof(errstr)) == -1) {
                log_error(req->trace_id, "cannot spool %s event_id=%s: %s", ev->event_type,
                          ev->event_id, errstr);
                return false;
        }
        metric_add(rcv->m_spooled, 1);
        log_warn(req->trace_id, "spooled %s event_id=%s to replay later: %s", ev->event_type,
                 ev->event_id, why);
        return true;
}

static const char errstr_busy[] = "a request with this id is being stored; retry";

/*
 * lock:callback:{event_key}, CONTRACT §5: a signed internal call is its endpoint and
 * webhook-id, a vendor callback its vendor, event type and event id (which joins the vendor's
 * sequence or natural key). Writes the key; @returns how long the key says "done".
 */
static long long claim_key(struct request *req, char *key, size_t key_size)
{
        const struct settings *s = req->rcv->s;
        const char *webhook_id =
                MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "webhook-id");
        bool is_internal =
                !strcmp(req->route->vendor, "internal") || !strcmp(req->route->vendor, "admin");
        size_t len = 0;

        key[0] = '\0';
        if (is_internal && webhook_id) {
                (void)text_append(key, key_size, &len, req->route->endpoint);
                (void)text_append(key, key_size, &len, ":");
                (void)text_append(key, key_size, &len, webhook_id);
                return 2 * s->webhook_tolerance_s * 1000; /* ts may be now + tolerance */
        }
        (void)text_append(key, key_size, &len, req->ev.vendor);
        (void)text_append(key, key_size, &len, ":");
        (void)text_append(key, key_size, &len, req->ev.event_type);
        (void)text_append(key, key_size, &len, ":");
        (void)text_append(key, key_size, &len, req->ev.event_id);
        return s->callback_lock_ttl_s * 1000;
}

/*
 * What a claim found means for the answer: 0 to go on and produce, 200 when the event was
 * stored before (by this or another receiver), 503 when another request holds it right now.
 */
static unsigned int claim_verdict(const struct request *req, enum claim_result res)
{
        switch (res) {
        case CLAIM_DONE:
                log_info(req->trace_id, "%s event_id=%s stored already: answered without an event",
                         req->ev.event_type, req->ev.event_id);
                return 200;
        case CLAIM_BUSY:
                return 503;
        default:
                return 0;
        }
}

/* The claim taken at once (a batch of /v1/events). False when req->status is set: answer it. */
static bool take_claim(struct request *req)
{
        char key[400];
        long long done_ttl_ms = claim_key(req, key, sizeof(key));

        req->status = claim_verdict(
                req, claim_take(req->rcv->claim, key, done_ttl_ms, req->trace_id, &req->claim));
        return req->status == 0;
}

/*
 * The answer to a request, from the handler (queued at once) or from the loop after a turn's
 * claims (kept for the handler, which the resume calls again; no response may be queued
 * outside it).
 */
static enum MHD_Result respond(struct request *req, unsigned int status, const char *message)
{
        if (!req->is_outside)
                return request_reply(req, status, message);
        req->answer_status = status;
        snprintf(req->answer_message, sizeof(req->answer_message), "%s", message ? message : "");
        MHD_resume_connection(req->conn);
        req->lp->is_resumed = true;
        return MHD_YES;
}

/* Encodes ev (req's, or one of its batch) into its value, raw being its body as received; the
 * envelope borrows from req and ev. */
static int encode_event(struct request *req, struct webhook_event *ev, const void *raw,
                        size_t raw_len, char *errstr, size_t errstr_size)
{
        const struct envelope env =
                webhook_envelope(ev, req->receive_ms, req->trace_id, raw, raw_len);

        ev->trace_id = req->trace_id;
        return encoder_encode(req->rcv->encoder, &env, ev->payload_name, ev->fields, ev->payload,
                              &ev->value, &ev->value_len, errstr, errstr_size);
}

/* A copy of the encoded value for the spool (delivery_send() takes the value); NULL: none. */
static void *spool_copy(const struct request *req)
{
        const struct webhook_event *ev = &req->ev;
        void *copy;

        if (!req->rcv->spool || req->vendor->when_kafka_down != VENDOR_SPOOL ||
            !(copy = malloc(ev->value_len ? ev->value_len : 1)))
                return NULL;
        memcpy(copy, ev->value, ev->value_len);
        return copy;
}

/*
 * A map_batch endpoint (POST /v1/events): every event of the batch is encoded and produced,
 * and the one answer waits for the last delivery report (delivery_send_many()): 200 only when
 * the broker acknowledged them all. A batch answered 503 may be sent again whole: its events
 * keep their ids.
 */
static enum MHD_Result publish_batch(struct request *req)
{
        struct receiver *rcv = req->rcv;
        struct webhook_request wr = request_as_webhook(req);
        struct webhook_verdict v = {0};
        struct webhook_batch *b = &req->batch;
        struct webhook_event *evs;
        char errstr[256];

        if (req->vendor->map_batch(receiver_vendor_state(rcv, req->vendor), &wr, b, &v) == -1) {
                if (v.auth_failure)
                        receiver_count_signature_failure(rcv, req->route->vendor, v.auth_failure);
                return request_reply(req, v.status, v.message);
        }
        for (size_t i = 0; i < b->n; i++) {
                char prefix[32];

                snprintf(prefix, sizeof(prefix), "events[%zu].", i);
                if (webhook_check_limits(&b->items[i].ev, prefix, &v) == -1)
                        return request_reply(req, v.status, v.message);
        }
        /* For the request's log line and labels: a batch has no single event id or topic. */
        req->ev.event_type = "batch";
        snprintf(req->ev.event_id, sizeof(req->ev.event_id), "%zu-events", b->n);
        /* lock:callback:events:<webhook-id>: one receiver stores a batch at a time. */
        if (!take_claim(req))
                return request_reply(req, req->status, req->status == 200 ? NULL : errstr_busy);
        if (!(evs = calloc(b->n, sizeof(*evs)))) {
                claim_release(rcv->claim, &req->claim);
                return request_reply(req, 503, "out of memory; retry");
        }
        for (size_t i = 0; i < b->n; i++) {
                struct webhook_event *ev = &b->items[i].ev;

                if (encode_event(req, ev, b->items[i].raw, b->items[i].raw_len, errstr,
                                 sizeof(errstr)) == -1) {
                        log_error(req->trace_id, "encoding event %zu %s event_id=%s: %s", i,
                                  ev->event_type, ev->event_id, errstr);
                        for (size_t j = 0; j < i; j++)
                                free(evs[j].value);
                        free(evs);
                        claim_release(rcv->claim, &req->claim);
                        return request_reply(req, 500, "cannot encode the event");
                }
                evs[i] = *ev; /* a shallow view: delivery takes the value, b keeps the rest */
                ev->value = NULL;
        }
        if (!receiver_kafka_reachable(req->rcv)) {
                for (size_t i = 0; i < b->n; i++)
                        free(evs[i].value);
                free(evs);
                return request_reply(req, 503, "Kafka is unreachable; retry");
        }
        req->ticket.conn = req->conn;
        req->ticket.trace_id = req->trace_id;
        req->ticket.owner = req;
        req->is_sent = true;
        if (delivery_send_many(req->lp->delivery, &req->ticket, evs, b->n) == -1) {
                free(evs);
                req->is_sent = false;
                claim_release(rcv->claim, &req->claim);
                return request_reply(req, 503, "shutting down; retry");
        }
        free(evs);
        return MHD_YES; /* suspended: called again once the last delivery report is in */
}

/* The event was not handed to Kafka (why): spooled and 200 where the vendor spools, else 503. */
static enum MHD_Result answer_unsent(struct request *req, const char *why)
{
        char message[96];

        if (spool_event(req, why)) {
                claim_confirm(req->rcv->claim, &req->claim);
                return respond(req, 200, NULL);
        }
        claim_release(req->rcv->claim, &req->claim);
        snprintf(message, sizeof(message), "%s; retry", why);
        return respond(req, 503, message);
}

/* On the request's loop, once req->answer is filled: the handler is called again. */
static void lookup_resume(void *arg)
{
        struct request *req = arg;
        struct loop *lp = req->lp; /* req may be gone once the connection is resumed */

        MHD_resume_connection(req->conn);
        lp->is_resumed = true;
        atomic_fetch_sub(&lp->lookups_waiting, 1);
}

/* From a lookup thread: the connection is resumed on the loop that owns it. */
static void lookup_done(void *arg)
{
        struct request *req = arg;

        req->lookup_task.fn = lookup_resume;
        req->lookup_task.arg = req;
        loop_post(req->lp, &req->lookup_task);
}

/*
 * The anchor lookup map would block on runs on the lookup threads with the connection
 * suspended, so the other connections of this loop never wait for a store; the lookup's
 * deadline bounds the suspension.
 */
static enum MHD_Result start_lookup(struct request *req)
{
        struct receiver *rcv = req->rcv;

        req->is_looked_up = true;
        atomic_fetch_add(&req->lp->lookups_waiting, 1);
        MHD_suspend_connection(req->conn);
        req->vendor->lookup_start(receiver_vendor_state(rcv, req->vendor), req->answer.anchor_id,
                                  req->trace_id, &req->answer, lookup_done, req);
        return MHD_YES; /* suspended: called again once the answer is in */
}

/* Whether map would block on a lookup not done yet. */
static bool needs_lookup(struct request *req)
{
        struct webhook_request wr;

        if (!req->vendor->lookup_start || req->is_looked_up)
                return false;
        wr = request_as_webhook(req);
        return req->vendor->lookup_wanted(receiver_vendor_state(req->rcv, req->vendor), &wr,
                                          req->answer.anchor_id,
                                          sizeof(req->answer.anchor_id)) == 1;
}

/*
 * The claim is asked with those of every request the loop verified in this turn, after the
 * daemon's run (receiver_claim_turn()); its answer comes as one of the loop's events. The
 * connection waits suspended meanwhile, and stays so until its delivery report.
 */
static enum MHD_Result defer_claim(struct request *req)
{
        struct loop *lp = req->lp;
        char key[400];
        long long done_ttl_ms = claim_key(req, key, sizeof(key));

        claim_ticket_init(&req->claim, key, done_ttl_ms);
        req->claim_next = lp->claiming;
        lp->claiming = req;
        MHD_suspend_connection(req->conn);
        return MHD_YES;
}

enum MHD_Result request_publish(struct request *req)
{
        struct receiver *rcv = req->rcv;
        struct webhook_verdict v = {0};
        char errstr[256];

        if (req->is_too_large) {
                snprintf(errstr, sizeof(errstr), "body: larger than %lld bytes",
                         request_body_limit(req));
                return request_reply(req, 413, errstr);
        }
        if (req->vendor->map_batch)
                return publish_batch(req);
        if (needs_lookup(req))
                return start_lookup(req);
        if (map_callback(req, &v) == -1) {
                if (v.auth_failure)
                        receiver_count_signature_failure(rcv, req->route->vendor, v.auth_failure);
                return request_reply(req, v.status, v.message);
        }
        return defer_claim(req);
}

/*
 * Once the claim's answer is in (on_claimed()), outside the handler with the connection still
 * suspended: encode and produce, or keep the answer for the handler (respond()).
 */
static void publish_claimed(struct request *req, enum claim_result res)
{
        unsigned int verdict = claim_verdict(req, res);
        char errstr[256];
        void *copy;
        int rc;

        if (verdict) {
                respond(req, verdict, verdict == 200 ? NULL : errstr_busy);
                return;
        }
        if (encode_event(req, &req->ev, req->ev.raw ? req->ev.raw : req->body,
                         req->ev.raw ? req->ev.raw_len : req->body_len, errstr,
                         sizeof(errstr)) == -1) {
                log_error(req->trace_id, "encoding %s event_id=%s: %s", req->ev.event_type,
                          req->ev.event_id, errstr);
                claim_release(req->rcv->claim, &req->claim);
                respond(req, 500, "cannot encode the event");
                return;
        }
        free(req->body); /* the encoded value carries the raw body from here on */
        req->body = NULL;
        req->body_len = 0;
        copy = spool_copy(req);
        if (!receiver_kafka_reachable(req->rcv)) {
                /* No broker answers: say so now rather than after the whole ack timeout. */
                free(req->ev.value);
                req->ev.value = copy;
                answer_unsent(req, "Kafka is unreachable");
                return;
        }
        req->ticket.conn = req->conn;
        req->ticket.trace_id = req->trace_id;
        req->ticket.owner = req;
        req->ticket.is_suspended = true; /* since defer_claim() */
        req->is_sent = true;
        rc = delivery_send(req->lp->delivery, &req->ticket, &req->ev);
        req->ev.value = copy; /* delivery_send() took the value; the copy stays for the spool */
        if (rc == -1) {
                req->is_sent = false;
                answer_unsent(req, "shutting down");
        }
        /* else: resumed by the delivery report (or a produce that failed at once) */
}

/* A claim's answer, on the loop after Redis's reply (or at once when Redis is not asked). */
static void on_claimed(void *arg, enum claim_result res)
{
        struct request *req = arg;

        req->is_outside = true;
        publish_claimed(req, res);
        req->is_outside = false;
}

void receiver_claim_turn(struct loop *lp)
{
        struct request *req = lp->claiming, *next;

        lp->claiming = NULL;
        for (; req; req = next) {
                next = req->claim_next;
                claim_loop_take(lp->claims, &req->claim, req->trace_id, on_claimed, req);
        }
        claim_loop_flush(lp->claims); /* every claim of the turn in one write */
}

/* The claim says "done" (or Redis failed: the guard fails open): the 200 may be written. */
static void on_marked(void *arg)
{
        struct request *req = arg;

        MHD_resume_connection(req->conn);
        req->lp->is_resumed = true;
}

/*
 * The delivery hook of every loop: the broker acknowledged req's event. A taken claim is marked
 * done first, and the connection stays suspended until Redis confirmed it: whoever sees the
 * 200 finds the key saying "done". The mark goes out with the others of the loop's turn.
 */
bool receiver_acked(void *arg, void *owner)
{
        struct loop *lp = arg;
        struct request *req = owner;

        if (!req->claim.is_taken)
                return false;
        claim_loop_confirm(lp->claims, &req->claim, on_marked, req);
        return true;
}

/* Called again after the resume: the ticket holds the broker's answer. */
enum MHD_Result request_reply_delivery(struct request *req)
{
        char message[160];

        if (!req->ticket.err) {
                note_delivered(req); /* the claim says "done" already: receiver_acked() */
                return request_reply(req, 200, NULL);
        }
        if (spool_event(req, rd_kafka_err2str(req->ticket.err))) {
                claim_confirm(req->rcv->claim, &req->claim);
                return request_reply(req, 200, NULL);
        }
        claim_release(req->rcv->claim, &req->claim);
        snprintf(message, sizeof(message), "event not stored (%s); retry",
                 rd_kafka_err2str(req->ticket.err));
        return request_reply(req, 503, message);
}
