/*
 * receiver.c: the HTTP side of the receiver. Each event loop's daemon runs the handler on
 * the loop's thread: route, early checks, body, vendor verification, encoding, then
 * delivery_send() suspends the connection until the delivery report (served by the same
 * loop) resumes it and the handler, called again, answers 200 or 503. The request state is
 * made on the first handler call and freed only in the completion callback. The loops
 * themselves, and the process around them: receiver_run.c.
 */
#include "receiver.h"
#include "receiver_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "admin_http.h"
#include "anchor_store.h"
#include "claim.h"
#include "conn_guard.h"
#include "contract.h"
#include "crypto.h"
#include "delivery.h"
#include "encoder.h"
#include "http_reply.h"
#include "log.h"
#include "metrics.h"
#include "routes.h"
#include "settings.h"
#include "spool.h"
#include "trace.h"
#include "vendor.h"
#include "webhook.h"

/* One HTTP request, owned by its connection (see the file comment). */
struct request {
        struct receiver *rcv;
        struct loop *lp; /* the loop whose daemon owns the connection */
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
        bool is_sent; /* handed to delivery_send(): the next call answers from the ticket */
        bool is_looked_up; /* the anchor lookup ran off this thread: map uses answer */
        struct anchor_answer answer;
        char *body;
        size_t body_len, body_cap;
        struct webhook_event ev; /* ev.value: after the send, a copy kept for the spool */
        struct webhook_batch batch; /* a map_batch endpoint's events (ev then unused) */
        struct delivery_ticket ticket;
        struct claim_ticket claim;
        struct request *claim_next; /* the loop's claims of this turn */
        bool is_outside;            /* handled by the loop outside the handler: respond() */
        unsigned int answer_status; /* kept by respond() for the handler's next call */
        char answer_message[160];
};

static long long now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ metrics and logs */

/* The loop's remembered series of req (see struct series_slot); NULL when it cannot hold it. */
static struct series_slot *series_of(const struct request *req)
{
        const char *type = req->ev.event_type ? req->ev.event_type : "none";
        size_t len = strlen(type);
        uint32_t h = 2166136261u ^ (uint32_t)req->status;
        struct series_slot *slot;

        if (len >= sizeof(slot->event_type))
                return NULL;
        h = (h ^ (uint32_t)(uintptr_t)req->route) * 16777619u;
        for (size_t i = 0; i < len; i++)
                h = (h ^ (unsigned char)type[i]) * 16777619u;
        slot = &req->lp->series[h % SERIES_SLOTS];
        if (slot->route == req->route && slot->status == req->status &&
            strcmp(slot->event_type, type) == 0)
                return slot;
        if (slot->route) /* taken by another series: not remembered */
                return NULL;
        slot->status = req->status;
        memcpy(slot->event_type, type, len + 1);
        return slot; /* filled by count_request() */
}

static void count_request(const struct request *req)
{
        struct series_slot *slot = req->route ? series_of(req) : NULL;
        struct metric *requests, *duration = NULL;
        char labels[256];

        if (slot && slot->route) {
                metric_add(slot->requests, 1);
                if (slot->duration)
                        metric_observe(slot->duration, (double)(now_us() - req->start_us) / 1e6);
                return;
        }
        snprintf(labels, sizeof(labels),
                 "endpoint=\"%s\",vendor=\"%s\",event_type=\"%s\",status=\"%u\"",
                 req->route ? req->route->endpoint : "unknown",
                 req->route ? req->route->vendor : "-",
                 req->ev.event_type ? req->ev.event_type : "none", req->status);
        requests = metrics_counter(req->rcv->metrics, "liveflow_receiver_requests_total",
                                   "HTTP requests by endpoint, vendor, event type and status",
                                   labels);
        metric_add(requests, 1);
        if (req->route && req->status) { /* answered: timed (a client that left is not) */
                snprintf(labels, sizeof(labels), "endpoint=\"%s\"", req->route->endpoint);
                duration = metrics_histogram(
                        req->rcv->metrics, "liveflow_receiver_request_duration_seconds",
                        "From the request's headers to its answer, by endpoint", labels,
                        metrics_latency_bounds, metrics_latency_bound_cnt);
                metric_observe(duration, (double)(now_us() - req->start_us) / 1e6);
        }
        if (slot && requests) {
                slot->requests = requests;
                slot->duration = duration;
                slot->route = req->route; /* last: the slot is in use from now on */
        }
}

/* Recording states that mean a recording is lost or never started (Tencent 332). */
static const char *const recording_failures[] = {"record_start_failed", "record_error", NULL};

/* Counts a recording failure an alert can fire on, once its event is durable. */
static void count_recording_failure(const struct request *req)
{
        const char *state = json_string_value(json_object_get(req->ev.payload, "record_event"));
        char labels[160];

        if (!state || !req->ev.event_type || strcmp(req->ev.event_type, "record.status") != 0)
                return;
        for (size_t i = 0; recording_failures[i]; i++) {
                if (strcmp(state, recording_failures[i]) != 0)
                        continue;
                snprintf(labels, sizeof(labels), "vendor=\"%s\",state=\"%s\"", req->ev.vendor,
                         recording_failures[i]);
                metric_add(metrics_counter(req->rcv->metrics,
                                           "liveflow_receiver_recording_failures_total",
                                           "Recordings reported failed by the vendor (Tencent 332 "
                                           "record_start_failed, record_error)",
                                           labels),
                           1);
                log_warn(req->trace_id, "recording failure stream=%s state=%s",
                         req->ev.stream_id ? req->ev.stream_id : "-", state);
        }
}

static void count_signature_failure(struct receiver *rcv, const char *vendor, const char *reason)
{
        char labels[128];

        snprintf(labels, sizeof(labels), "vendor=\"%s\",reason=\"%s\"", vendor, reason);
        metric_add(metrics_counter(rcv->metrics, "liveflow_receiver_signature_failures_total",
                                   "Callbacks refused for their signature", labels),
                   1);
}

static const char *termination_name(enum MHD_RequestTerminationCode toe)
{
        switch (toe) {
        case MHD_REQUEST_TERMINATED_COMPLETED_OK:
                return NULL;
        case MHD_REQUEST_TERMINATED_WITH_ERROR:
                return "error";
        case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
                return "timeout";
        case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
                return "shutdown";
        case MHD_REQUEST_TERMINATED_READ_ERROR:
                return "read-error";
        case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
                return "client-abort";
        }
        return "unknown";
}

/* One line per request; probes only at debug, so scrapes do not drown the traffic. */
static void log_request(const struct request *req, enum MHD_RequestTerminationCode toe)
{
        const char *aborted = termination_name(toe);
        char delivered[96] = "", tip[96] = "";
        double ms = (double)(now_us() - req->start_us) / 1000.0;
        const char *tip_id = json_string_value(json_object_get(req->ev.payload, "tip_id"));

        /* A tip's own id, so that from the id the tip service knows the request is found. */
        if (tip_id)
                snprintf(tip, sizeof(tip), " tip_trace_id=%.64s", tip_id);
        if (req->is_sent && !req->ticket.err && req->ev.topic)
                snprintf(delivered, sizeof(delivered), " topic=%s partition=%d offset=%lld",
                         req->ev.topic, (int)req->ticket.partition, (long long)req->ticket.offset);
        if (aborted && !req->status) {
                /* A client that left (or was closed) before its answer: a slow-client attack
                 * makes thousands; counted, and summed up once in a while by the main loop. */
                atomic_fetch_add(&req->rcv->aborted_quiet, 1);
                log_debug(req->trace_id, "%s %s aborted=%s ms=%.1f", req->method, req->path,
                          aborted, ms);
                return;
        }
        if (req->route && !strcmp(req->route->vendor, "-") && !aborted) {
                log_debug(req->trace_id, "%s %s status=%u ms=%.1f", req->method, req->path,
                          req->status, ms);
                return;
        }
        log_info(req->trace_id, "%s %s status=%u event_type=%s event_id=%s%s%s ms=%.1f%s%s",
                 req->method, req->path, req->status, req->ev.event_type ? req->ev.event_type : "-",
                 req->ev.event_type ? req->ev.event_id : "-", tip, delivered, ms,
                 aborted ? " aborted=" : "", aborted ? aborted : "");
}

static void count_stats(struct receiver *rcv, unsigned int status)
{
        atomic_fetch_add(&rcv->received, 1);
        if (status == 200)
                atomic_fetch_add(&rcv->accepted, 1);
        else if (status >= 400 && status < 500)
                atomic_fetch_add(&rcv->rejected, 1);
        else
                atomic_fetch_add(&rcv->failed, 1);
}

/* ------------------------------------------------------------ answers */

static enum MHD_Result request_reply(struct request *req, unsigned int status, const char *message)
{
        /*
         * An early answer leaves the body unread: the connection cannot be reused. While
         * draining, every answer closes its connection, so no client sends another request on
         * it that the stopping daemon would drop unanswered.
         */
        struct http_reply_opts opts = {.trace_id = req->trace_id,
                                       .must_close = (req->is_early && req->has_body) ||
                                                     atomic_load(&req->rcv->is_draining)};

        conn_guard_busy(req->rcv->guard, req->conn);
        req->status = status;
        if (status == 200 && req->vendor && req->vendor->ok_body)
                return http_reply_raw(req->conn, 200, "application/json",
                                      (void *)req->vendor->ok_body, strlen(req->vendor->ok_body),
                                      MHD_RESPMEM_PERSISTENT, &opts);
        return http_reply_json(req->conn, status, message, &opts);
}

static enum MHD_Result request_reply_early(struct request *req, unsigned int status,
                                           const char *message)
{
        req->is_early = true;
        return request_reply(req, status, message);
}

static enum MHD_Result reply_method_not_allowed(struct request *req)
{
        struct http_reply_opts opts = {
                .trace_id = req->trace_id, .allow = req->route->allow, .must_close = req->has_body};

        req->is_early = true;
        req->status = 405;
        return http_reply_json(req->conn, 405, "method not allowed", &opts);
}

bool receiver_shares_admin_port(const struct settings *s)
{
        return s->admin_port == s->http_port &&
               (!strcmp(s->admin_addr, s->http_addr) || !strcmp(s->http_addr, "0.0.0.0"));
}

/*
 * Whether every loop's producer reaches a broker. One answer for all the loops, so that a
 * request is refused at once exactly when /readyz says so, whichever loop it lands on.
 */
static bool kafka_reachable(const struct receiver *rcv)
{
        for (size_t i = 0; i < rcv->loop_cnt; i++)
                if (!delivery_is_reachable(rcv->loops[i].delivery))
                        return false;
        return true;
}

bool receiver_is_ready(void *arg, char *why, size_t why_size)
{
        struct receiver *rcv = arg;

        if (atomic_load(&rcv->is_draining)) {
                snprintf(why, why_size, "draining");
                return false;
        }
        if (!kafka_reachable(rcv)) {
                snprintf(why, why_size, "no Kafka broker answers");
                return false;
        }
        return true;
}

/* The probes on the traffic port answer as the admin port does. */
static enum MHD_Result serve_probe(struct request *req)
{
        struct http_reply_opts opts = {.trace_id = req->trace_id};
        char why[64] = "", body[160];
        size_t len;
        char *text;

        switch (req->route->id) {
        case ROUTE_METRICS:
                if (!(text = metrics_render(req->rcv->metrics, &len)))
                        return request_reply(req, 500, "out of memory");
                req->status = 200;
                return http_reply_raw(req->conn, 200, "text/plain; version=0.0.4", text, len,
                                      MHD_RESPMEM_MUST_FREE, &opts);
        case ROUTE_READYZ:
                if (!receiver_is_ready(req->rcv, why, sizeof(why))) {
                        len = (size_t)snprintf(body, sizeof(body),
                                               "{\"status\":\"not ready\",\"reason\":\"%s\"}\n",
                                               why);
                        req->status = 503;
                        return http_reply_raw(req->conn, 503, "application/json", body, len,
                                              MHD_RESPMEM_MUST_COPY, &opts);
                }
                len = (size_t)snprintf(body, sizeof(body), "{\"status\":\"ready\"}\n");
                break;
        default:
                len = (size_t)snprintf(body, sizeof(body), "{\"status\":\"ok\"}\n");
                break;
        }
        req->status = 200;
        return http_reply_raw(req->conn, 200, "application/json", body, len, MHD_RESPMEM_MUST_COPY,
                              &opts);
}

/* ------------------------------------------------------------ first call: headers only */

/* The declared body length; 0 when absent (libmicrohttpd already refused a malformed one). */
static unsigned long long content_length(struct MHD_Connection *conn)
{
        const char *s =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

        return s ? strtoull(s, NULL, 10) : 0;
}

static struct request *request_new(struct loop *lp, struct MHD_Connection *conn,
                                   const char *url, const char *method)
{
        struct receiver *rcv = lp->rcv;
        struct request *req = calloc(1, sizeof(*req));
        const char *id;

        if (!req)
                return NULL;
        req->rcv = rcv;
        req->lp = lp;
        req->conn = conn;
        req->start_us = now_us();
        req->receive_ms = wall_ms();
        snprintf(req->method, sizeof(req->method), "%s", method);
        snprintf(req->path, sizeof(req->path), "%s", url);
        req->has_body = content_length(conn) > 0 ||
                        MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_TRANSFER_ENCODING);
        /* The platform's tip service sends X-Trace-Id; others X-Request-Id. */
        id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        if (!trace_id_is_valid(id))
                id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Trace-Id");
        if (trace_id_is_valid(id))
                snprintf(req->trace_id, sizeof(req->trace_id), "%s", id);
        else
                trace_id_new(req->trace_id);
        atomic_fetch_add(&lp->open_requests, 1);
        atomic_store(&lp->last_request_us, req->start_us);
        return req;
}

/* The secret path token of a route: compared in constant time, absent when not configured. */
static bool token_matches(const struct receiver *rcv, const struct vendor *vd, const char *token)
{
        const char *want = vd && vd->path_token ? vd->path_token(rcv->s) : NULL;
        size_t len = strlen(token);

        if (!want || !*want)
                return len == 0;
        return len == strlen(want) && crypto_equal(token, want, len);
}

static bool is_probe(const struct route *r)
{
        return r->id != ROUTE_VENDOR;
}

/* application/json or any type/subtype+json; parameters (charset) are ignored. */
static bool is_json_media_type(const char *content_type)
{
        size_t len = strcspn(content_type, ";");

        while (len > 0 && (content_type[len - 1] == ' ' || content_type[len - 1] == '\t'))
                len--;
        if (len == 16 && strncasecmp(content_type, "application/json", 16) == 0)
                return true;
        return len > 5 && memchr(content_type, '/', len) &&
               strncasecmp(content_type + len - 5, "+json", 5) == 0;
}

static const char *lookup_value(void *ctx, enum webhook_lookup kind, const char *name);

static void *vendor_state(const struct receiver *rcv, const struct vendor *vd)
{
        return rcv->vendor_states[vendor_module_index(vd->module)];
}

/* The request as the vendor modules see it (body NULL before it is read and once sent). */
static struct webhook_request webhook_request_of(struct request *req)
{
        const union MHD_ConnectionInfo *info =
                MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

        return (struct webhook_request){
                .body = req->body_len ? req->body : NULL,
                .len = req->body_len,
                .now_ms = req->receive_ms,
                .path_arg = req->path_arg,
                .trace_id = req->trace_id,
                .client_addr = info ? info->client_addr : NULL,
                .method = req->method,
                .anchor_answer = req->is_looked_up ? &req->answer : NULL,
                .lookup = lookup_value,
                .ctx = req,
        };
}

/* The row's own checks of headers, query and source; a refusal is answered at once. */
static int admit(struct request *req)
{
        struct webhook_request wr = webhook_request_of(req);
        struct webhook_verdict v = {0};

        if (!req->vendor->admit || req->vendor->admit(vendor_state(req->rcv, req->vendor), &wr,
                                                       &v) == 0)
                return 0;
        if (v.auth_failure)
                count_signature_failure(req->rcv, req->route->vendor, v.auth_failure);
        request_reply_early(req, v.status, v.message);
        return -1;
}

/* The body limit of req's endpoint: a batch of events may be larger than one callback. */
static long long body_limit(const struct request *req)
{
        if (req->vendor && req->vendor->body_limit)
                return req->vendor->body_limit(req->rcv->s);
        return req->rcv->s->max_body_bytes;
}

/* Everything that can be refused before reading the body is refused before reading it. */
/*
 * How the body is framed and encoded, refused before it is read (RFC 9112 §6.1: a message with
 * both Content-Length and Transfer-Encoding is a smuggling attempt, and the connection must be
 * closed after answering). True when the request was answered.
 */
static bool refuse_framing(struct request *req)
{
        const char *te = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_TRANSFER_ENCODING);
        const char *cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *ce = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_ENCODING);

        if (te && cl) {
                request_reply_early(req, 400,
                                    "Content-Length with Transfer-Encoding: refused (RFC 9112)");
                return true;
        }
        if (te && strcasecmp(te, "chunked") != 0) {
                request_reply_early(req, 501, "Transfer-Encoding: only chunked is supported");
                return true;
        }
        if (ce && *ce && strcasecmp(ce, "identity") != 0) {
                request_reply_early(req, 415, "Content-Encoding: only identity is accepted");
                return true;
        }
        return false;
}

static enum MHD_Result check_upload(struct request *req)
{
        const char *type = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_CONTENT_TYPE);
        unsigned long long declared = content_length(req->conn);
        char message[96];

        if (refuse_framing(req))
                return MHD_YES; /* answered */
        if (admit(req) == -1)
                return MHD_YES; /* answered */
        /* Tencent does not document its Content-Type, so only a wrong one is refused. */
        if (type && !req->vendor->is_any_content_type && !is_json_media_type(type))
                return request_reply_early(req, 415, "Content-Type: expected application/json");
        if (declared > (unsigned long long)body_limit(req)) {
                snprintf(message, sizeof(message), "body: larger than %lld bytes",
                         body_limit(req));
                return request_reply_early(req, 413, message);
        }
        if (atomic_load(&req->rcv->is_draining))
                return request_reply_early(req, 503, "shutting down; retry");
        if (declared && !(req->body = malloc(declared))) /* the usual case: one allocation */
                return request_reply_early(req, 503, "out of memory; retry");
        req->body_cap = declared;
        return MHD_YES;
}

static enum MHD_Result request_start(struct loop *lp, struct MHD_Connection *conn,
                                     const char *url, const char *method, bool is_bad_path,
                                     void **req_cls)
{
        struct receiver *rcv = lp->rcv;
        struct request *req = request_new(lp, conn, url, method);
        const char *suffix = "";

        if (!req)
                return MHD_NO; /* out of memory: close the connection */
        *req_cls = req;
        if (is_bad_path)
                return request_reply_early(req, 400,
                                           "path: an escape that changes its meaning (%00, %2F, "
                                           "a control character)");
        req->route = routes_match(url, &suffix);
        req->vendor = vendor_of(req->route);
        if (req->route && req->route->suffix == ROUTE_SUBPATH) {
                if (strlen(suffix) >= sizeof(req->path_arg))
                        return request_reply_early(req, 414, "path: too long");
                snprintf(req->path_arg, sizeof(req->path_arg), "%s", suffix);
                suffix = "";
        }
        if (req->route && *suffix) /* a path token is a secret: keep it out of the logs */
                snprintf(req->path, sizeof(req->path), "%s/<token>", req->route->path);
        if (req->route && !token_matches(rcv, req->vendor, suffix))
                req->route = NULL, req->vendor = NULL; /* a wrong token looks like no endpoint */
        if (!req->route)
                return request_reply_early(req, 404, "no such endpoint");
        if (!route_allows(req->route, method))
                return reply_method_not_allowed(req);
        if (is_probe(req->route) && !rcv->s->http_probes && !receiver_shares_admin_port(rcv->s))
                return request_reply_early(req, 404, "no such endpoint (probes: the admin port)");
        if (is_probe(req->route))
                return serve_probe(req);
        return check_upload(req);
}

/* ------------------------------------------------------------ body */

static enum MHD_Result read_body(struct request *req, const char *data, size_t *size)
{
        size_t max = (size_t)body_limit(req), n = *size;

        *size = 0; /* consumed, whether kept or not */
        if (req->is_too_large)
                return MHD_YES;
        if (n >
            max - req->body_len) { /* only a chunked body gets here: Content-Length was checked */
                req->is_too_large = true;
                free(req->body);
                req->body = NULL;
                req->body_len = req->body_cap = 0;
                return MHD_YES;
        }
        if (req->body_len + n > req->body_cap) {
                size_t cap = req->body_cap ? req->body_cap * 2 : 4096;
                char *grown;

                while (cap < req->body_len + n)
                        cap *= 2;
                if (cap > max)
                        cap = max;
                if (!(grown = realloc(req->body, cap)))
                        return MHD_NO;
                req->body = grown;
                req->body_cap = cap;
        }
        memcpy(req->body + req->body_len, data, n);
        req->body_len += n;
        return MHD_YES;
}

/* ------------------------------------------------------------ last call: verify, encode, produce
 */

static const char *lookup_value(void *ctx, enum webhook_lookup kind, const char *name)
{
        struct request *req = ctx;

        return MHD_lookup_connection_value(
                req->conn, kind == WEBHOOK_HEADER ? MHD_HEADER_KIND : MHD_GET_ARGUMENT_KIND, name);
}

static int map_callback(struct request *req, struct webhook_verdict *v)
{
        struct webhook_request wr = webhook_request_of(req);

        if (req->vendor->map(vendor_state(req->rcv, req->vendor), &wr, &req->ev, v) == -1)
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
        struct webhook_request wr = webhook_request_of(req);

        if (req->vendor->acked)
                req->vendor->acked(vendor_state(req->rcv, req->vendor), &wr, &req->ev);
        count_recording_failure(req);
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
        bool is_internal = !strcmp(req->route->vendor, "internal") ||
                           !strcmp(req->route->vendor, "admin");

        if (is_internal && webhook_id) {
                snprintf(key, key_size, "%s:%s", req->route->endpoint, webhook_id);
                return 2 * s->webhook_tolerance_s * 1000; /* ts may be now + tolerance */
        }
        snprintf(key, key_size, "%s:%s:%s", req->ev.vendor, req->ev.event_type, req->ev.event_id);
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

/* Encodes req->ev into its value; the envelope borrows from req. */
static int encode(struct request *req, char *errstr, size_t errstr_size)
{
        struct webhook_event *ev = &req->ev;
        const struct envelope env = {
                .event_id = ev->event_id,
                .vendor = ev->vendor,
                .event_type = ev->event_type,
                .stream_id = ev->stream_id,
                .anchor_id = ev->anchor_id,
                .room_id = ev->room_id,
                .event_time_ms = ev->event_time_ms,
                .receive_time_ms = req->receive_ms,
                .trace_id = req->trace_id,
                .raw = ev->raw ? ev->raw : req->body,
                .raw_len = ev->raw ? ev->raw_len : req->body_len,
        };

        ev->trace_id = req->trace_id;
        return encoder_encode(req->rcv->encoder, &env, ev->payload_name, ev->payload, &ev->value,
                              &ev->value_len, errstr, errstr_size);
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
        struct webhook_request wr = webhook_request_of(req);
        struct webhook_verdict v = {0};
        struct webhook_batch *b = &req->batch;
        struct webhook_event *evs;
        char errstr[256];

        if (req->vendor->map_batch(vendor_state(rcv, req->vendor), &wr, b, &v) == -1) {
                if (v.auth_failure)
                        count_signature_failure(rcv, req->route->vendor, v.auth_failure);
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
                const struct envelope env = {
                        .event_id = ev->event_id,
                        .vendor = ev->vendor,
                        .event_type = ev->event_type,
                        .stream_id = ev->stream_id,
                        .anchor_id = ev->anchor_id,
                        .room_id = ev->room_id,
                        .event_time_ms = ev->event_time_ms,
                        .receive_time_ms = req->receive_ms,
                        .trace_id = req->trace_id,
                        .raw = b->items[i].raw,
                        .raw_len = b->items[i].raw_len,
                };

                ev->trace_id = req->trace_id;
                if (encoder_encode(rcv->encoder, &env, ev->payload_name, ev->payload, &ev->value,
                                   &ev->value_len, errstr, sizeof(errstr)) == -1) {
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
        if (!kafka_reachable(req->rcv)) {
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
        req->vendor->lookup_start(vendor_state(rcv, req->vendor), req->answer.anchor_id,
                                  req->trace_id, &req->answer, lookup_done, req);
        return MHD_YES; /* suspended: called again once the answer is in */
}

/* Whether map would block on a lookup not done yet. */
static bool needs_lookup(struct request *req)
{
        struct webhook_request wr;

        if (!req->vendor->lookup_start || req->is_looked_up)
                return false;
        wr = webhook_request_of(req);
        return req->vendor->lookup_wanted(vendor_state(req->rcv, req->vendor), &wr,
                                          req->answer.anchor_id,
                                          sizeof(req->answer.anchor_id)) == 1;
}

/*
 * The claim is taken with those of every request the loop verified in this turn, in one
 * pipelined round trip after the daemon's run (receiver_claim_turn()): the connection waits
 * suspended meanwhile, and stays so until its delivery report.
 */
static enum MHD_Result defer_claim(struct request *req)
{
        struct loop *lp = req->lp;
        char key[400];
        long long done_ttl_ms = claim_key(req, key, sizeof(key));

        claim_ticket_init(&req->claim, key, done_ttl_ms);
        req->claim_next = lp->claiming;
        lp->claiming = req;
        lp->claiming_cnt++;
        MHD_suspend_connection(req->conn);
        return MHD_YES;
}

static enum MHD_Result publish(struct request *req)
{
        struct receiver *rcv = req->rcv;
        struct webhook_verdict v = {0};
        char errstr[256];

        if (req->is_too_large) {
                snprintf(errstr, sizeof(errstr), "body: larger than %lld bytes", body_limit(req));
                return request_reply(req, 413, errstr);
        }
        if (req->vendor->map_batch)
                return publish_batch(req);
        if (needs_lookup(req))
                return start_lookup(req);
        if (map_callback(req, &v) == -1) {
                if (v.auth_failure)
                        count_signature_failure(rcv, req->route->vendor, v.auth_failure);
                return request_reply(req, v.status, v.message);
        }
        return defer_claim(req);
}

/*
 * After the turn's claims (receiver_claim_turn()), outside the handler with the connection
 * still suspended: encode and produce, or keep the answer for the handler (respond()).
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
        if (encode(req, errstr, sizeof(errstr)) == -1) {
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
        if (!kafka_reachable(req->rcv)) {
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

void receiver_claim_turn(struct loop *lp)
{
        struct request *list = lp->claiming, **reqs;
        struct claim_ticket **tickets;
        const char **trace_ids;
        enum claim_result *results;
        size_t n = lp->claiming_cnt, i = 0;

        if (!n)
                return;
        lp->claiming = NULL;
        lp->claiming_cnt = 0;
        reqs = malloc(n * sizeof(*reqs));
        tickets = malloc(n * sizeof(*tickets));
        trace_ids = malloc(n * sizeof(*trace_ids));
        results = malloc(n * sizeof(*results));
        for (struct request *req = list; req; req = req->claim_next, i++) {
                if (reqs && tickets && trace_ids && results) {
                        reqs[i] = req;
                        tickets[i] = &req->claim;
                        trace_ids[i] = req->trace_id;
                } else { /* out of memory: one round trip each */
                        enum claim_result res =
                                claim_take(lp->rcv->claim, req->claim.key + strlen("lock:callback:"),
                                           req->claim.done_ttl_ms, req->trace_id, &req->claim);

                        req->is_outside = true;
                        publish_claimed(req, res);
                        req->is_outside = false;
                }
        }
        if (reqs && tickets && trace_ids && results) {
                claim_take_many(lp->rcv->claim, tickets, trace_ids, results, n);
                for (i = 0; i < n; i++) {
                        reqs[i]->is_outside = true;
                        publish_claimed(reqs[i], results[i]);
                        reqs[i]->is_outside = false;
                }
        }
        free(reqs);
        free(tickets);
        free(trace_ids);
        free(results);
}

/*
 * The delivery hook of every loop: the broker acknowledged req's event, and its connection is
 * about to be resumed. Its claim is marked done with the others of this poll, in one round
 * trip that the loop makes before it lets the daemon write the 200s (receiver_run.c).
 */
void receiver_acked(void *arg, void *owner)
{
        struct loop *lp = arg;
        struct request *req = owner;

        claim_confirm_later(lp->rcv->claim, &req->claim, &lp->confirms);
}

/* Called again after the resume: the ticket holds the broker's answer. */
static enum MHD_Result reply_delivery(struct request *req)
{
        char message[160];

        if (!req->ticket.err) {
                note_delivered(req);
                claim_confirm(req->rcv->claim, &req->claim); /* done already: receiver_acked() */
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

/* ------------------------------------------------------------ libmicrohttpd callbacks */

/* The *req_cls of a request whose raw path was refused by on_uri(), until request_start(). */
static char bad_path_marker;

/* True when the raw path holds an escape whose decoding changes what the path means. */
static bool has_bad_escape(const char *uri)
{
        size_t len = strcspn(uri, "?");

        for (size_t i = 0; i + 2 < len; i++) {
                unsigned int c;

                if (uri[i] != '%' || !isxdigit((unsigned char)uri[i + 1]) ||
                    !isxdigit((unsigned char)uri[i + 2]) || sscanf(uri + i + 1, "%2x", &c) != 1)
                        continue;
                if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
                        return true;
        }
        return false;
}

/*
 * libmicrohttpd decodes the path before the handler sees it: "%00" would cut it short and
 * "%2F" make one segment two. The raw path is checked here, first; what this returns becomes
 * the request's *req_cls.
 */
void *receiver_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
        (void)cls;
        (void)conn;
        return has_bad_escape(uri) ? &bad_path_marker : NULL;
}

enum MHD_Result receiver_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version, const char *upload,
                                    size_t *upload_size, void **req_cls)
{
        struct request *req = *req_cls;

        (void)version;
        if (!req || req == (void *)&bad_path_marker) {
                conn_guard_reading(((struct loop *)cls)->rcv->guard, conn);
                return request_start(cls, conn, url, method, req != NULL, req_cls);
        }
        if (req->status) { /* answered already: discard whatever is still coming */
                *upload_size = 0;
                return MHD_YES;
        }
        if (*upload_size)
                return read_body(req, upload, upload_size);
        if (req->answer_status)
                return request_reply(req, req->answer_status,
                                     req->answer_message[0] ? req->answer_message : NULL);
        if (req->is_sent)
                return reply_delivery(req);
        conn_guard_busy(req->rcv->guard, conn); /* read: the ack timeout bounds the rest */
        return publish(req);
}

void receiver_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                           enum MHD_RequestTerminationCode toe)
{
        struct loop *lp = cls;
        struct receiver *rcv = lp->rcv;
        struct request *req = *req_cls;

        conn_guard_waiting(rcv->guard, conn); /* a keep-alive connection waits for the next */
        if (!req || req == (void *)&bad_path_marker) {
                *req_cls = NULL;
                return;
        }
        count_request(req);
        if (!req->route || !is_probe(req->route)) /* probes are not traffic */
                count_stats(rcv, req->status);
        log_request(req, toe);
        claim_release(rcv->claim, &req->claim); /* answered without a verdict on the event */
        webhook_event_fini(&req->ev);
        webhook_batch_fini(&req->batch);
        free(req->body);
        free(req);
        *req_cls = NULL;
        atomic_fetch_sub(&lp->open_requests, 1);
}

#define MHD_LINES_PER_WINDOW 5
#define QUIET_WINDOW_MS      10000

/*
 * libmicrohttpd's own messages ("connection limit reached", a client's protocol error) are
 * written at most MHD_LINES_PER_WINDOW per QUIET_WINDOW_MS: a flood of bad clients must not
 * become a flood of synchronous log lines. The rest are counted and summed up by the main loop.
 */
void receiver_on_mhd_log(void *cls, const char *fmt, va_list ap)
{
        struct receiver *rcv = cls;
        long long now = now_us() / 1000, start = atomic_load(&rcv->mhd_window_start_ms);
        char line[512];

        if (now - start >= QUIET_WINDOW_MS &&
            atomic_compare_exchange_strong(&rcv->mhd_window_start_ms, &start, now))
                atomic_store(&rcv->mhd_lines_in_window, 0);
        if (atomic_fetch_add(&rcv->mhd_lines_in_window, 1) >= MHD_LINES_PER_WINDOW) {
                atomic_fetch_add(&rcv->mhd_lines_quiet, 1);
                return;
        }
        vsnprintf(line, sizeof(line), fmt, ap);
        log_warn(NULL, "http: %s", line);
}

/* The sums of what was not written line by line (on_mhd_log, log_request), once a window. */
void receiver_report_quiet(struct receiver *rcv)
{
        long long aborted, mhd;

        if (now_us() / 1000 < rcv->next_quiet_report_ms)
                return;
        rcv->next_quiet_report_ms = now_us() / 1000 + QUIET_WINDOW_MS;
        aborted = atomic_exchange(&rcv->aborted_quiet, 0);
        mhd = atomic_exchange(&rcv->mhd_lines_quiet, 0);
        if (aborted || mhd)
                log_warn(NULL,
                         "http: in the last %d s %lld requests ended before their answer (client "
                         "gone or closed as too slow) and %lld libmicrohttpd messages were not "
                         "logged",
                         QUIET_WINDOW_MS / 1000, aborted, mhd);
}

