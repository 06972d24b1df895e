/*
 * receiver_request.h: what the three parts of a request's handling share. receiver.c makes the
 * request state and runs the libmicrohttpd callbacks (headers, body, completion);
 * receiver_publish.c verifies, claims, encodes and produces the event and answers from the
 * delivery report; receiver_reply.c queues the answers and counts and logs each request.
 * Every function here runs on the loop that owns the request's connection.
 */
#ifndef LIVEFLOW_RECEIVER_RECEIVER_REQUEST_H
#define LIVEFLOW_RECEIVER_RECEIVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "anchor_store.h"
#include "claim.h"
#include "delivery.h"
#include "receiver_int.h"
#include "trace.h"
#include "webhook.h"

struct route;
struct vendor;

/* One HTTP request, owned by its connection (see receiver.c). */
struct request {
        struct receiver *rcv;
        struct loop *lp;              /* the loop whose daemon owns the connection */
        struct loop_task lookup_task; /* the lookup's answer, handed to lp */
        struct MHD_Connection *conn;
        const struct route *route;   /* NULL: no such endpoint */
        const struct vendor *vendor; /* route's row; NULL for a probe */
        char trace_id[TRACE_ID_MAX + 1];
        char method[16];
        char path[160];
        char path_arg[320];  /* ROUTE_SUBPATH: what follows the route's path + "/" */
        int64_t receive_ms;  /* wall clock, for the envelope */
        long long start_us;  /* monotonic, for the duration */
        unsigned int status; /* the status queued; 0 until then */
        bool is_early;       /* answered before the body was read */
        bool has_body;       /* Content-Length > 0 or chunked */
        bool is_too_large;
        bool is_sent;      /* handed to delivery_send(): the next call answers from the ticket */
        bool is_looked_up; /* the anchor lookup ran off this thread: map uses answer */
        struct anchor_answer answer;
        char *body;
        size_t body_len, body_cap;
        struct webhook_event ev;    /* ev.value: after the send, a copy kept for the spool */
        struct webhook_batch batch; /* a map_batch endpoint's events (ev then unused) */
        struct delivery_ticket ticket;
        struct claim_ticket claim;
        struct request *claim_next; /* the loop's claims of this turn */
        bool is_outside;            /* handled by the loop outside the handler: respond() */
        unsigned int answer_status; /* kept by respond() for the handler's next call */
        char answer_message[160];
};

/* receiver.c */
/* The request as the vendor modules see it (body NULL before it is read and once sent). */
struct webhook_request request_as_webhook(struct request *req);
/* The state the vendor module of vd made at startup. */
void *receiver_vendor_state(const struct receiver *rcv, const struct vendor *vd);
/* The body limit of req's endpoint: a batch of events may be larger than one callback. */
long long request_body_limit(const struct request *req);

/* receiver_publish.c: the last call (body read), and the call after the delivery report. */
enum MHD_Result request_publish(struct request *req);
enum MHD_Result request_reply_delivery(struct request *req);

/* receiver_reply.c: answers */
enum MHD_Result request_reply(struct request *req, unsigned int status, const char *message);
/* An answer before the body was read: the connection is closed after it if a body follows. */
enum MHD_Result request_reply_early(struct request *req, unsigned int status, const char *message);
enum MHD_Result request_reply_method_not_allowed(struct request *req);
/* /healthz, /readyz and /metrics on the traffic port. */
enum MHD_Result request_serve_probe(struct request *req);
/* Whether every loop's producer reaches a broker. */
bool receiver_kafka_reachable(const struct receiver *rcv);

/* receiver_reply.c: what is counted and logged of a request */
void request_count(const struct request *req);
void request_count_recording_failure(const struct request *req);
void receiver_count_signature_failure(struct receiver *rcv, const char *vendor, const char *reason);
void receiver_count_stats(struct receiver *rcv, unsigned int status);
/* One line per request, at its completion (toe: how it ended). */
void request_log(const struct request *req, enum MHD_RequestTerminationCode toe);

#endif
