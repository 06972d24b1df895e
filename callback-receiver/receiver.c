/*
 * receiver.c: the HTTP side of the receiver. Each event loop's daemon runs the handler on
 * the loop's thread: route, early checks, body, vendor verification, encoding, then
 * delivery_send() suspends the connection until the delivery report (served by the same
 * loop) resumes it and the handler, called again, answers 200 or 503. The request state is
 * made on the first handler call and freed only in the completion callback.
 *
 * This file holds the libmicrohttpd callbacks, the request state, and the first calls
 * (headers, body). The last call (verify, claim, encode, produce) and the answer from the
 * delivery report: receiver_publish.c. The answers, metrics and log lines: receiver_reply.c.
 * The loops themselves, and the process around them: receiver_run.c.
 */
#include "receiver.h"
#include "receiver_int.h"
#include "receiver_request.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "clock.h"
#include "conn_guard.h"
#include "crypto.h"
#include "log.h"
#include "routes.h"
#include "settings.h"
#include "text.h"
#include "trace.h"
#include "vendor.h"
#include "webhook.h"

/* ------------------------------------------------------------ first call: headers only */

/* The declared body length; 0 when absent (libmicrohttpd already refused a malformed one). */
static unsigned long long content_length(struct MHD_Connection *conn)
{
        const char *s =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

        return s ? strtoull(s, NULL, 10) : 0;
}

static struct request *request_new(struct loop *lp, struct MHD_Connection *conn, const char *url,
                                   const char *method)
{
        struct receiver *rcv = lp->rcv;
        struct request *req = calloc(1, sizeof(*req));
        const char *id;

        if (!req)
                return NULL;
        req->rcv = rcv;
        req->lp = lp;
        req->conn = conn;
        req->start_us = clock_mono_us();
        req->receive_ms = clock_wall_ms();
        text_copy(req->method, sizeof(req->method), method);
        text_copy(req->path, sizeof(req->path), url);
        req->has_body = content_length(conn) > 0 ||
                        MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_TRANSFER_ENCODING);
        /* The platform's tip service sends X-Trace-Id; others X-Request-Id. */
        id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        if (!trace_id_is_valid(id))
                id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Trace-Id");
        if (trace_id_is_valid(id))
                text_copy(req->trace_id, sizeof(req->trace_id), id);
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

static const char *lookup_value(void *ctx, enum webhook_lookup kind, const char *name)
{
        struct request *req = ctx;

        return MHD_lookup_connection_value(
                req->conn, kind == WEBHOOK_HEADER ? MHD_HEADER_KIND : MHD_GET_ARGUMENT_KIND, name);
}

void *receiver_vendor_state(const struct receiver *rcv, const struct vendor *vd)
{
        return rcv->vendor_states[vendor_module_index(vd->module)];
}

/* The request as the vendor modules see it (body NULL before it is read and once sent). */
struct webhook_request request_as_webhook(struct request *req)
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
        struct webhook_request wr = request_as_webhook(req);
        struct webhook_verdict v = {0};

        if (!req->vendor->admit ||
            req->vendor->admit(receiver_vendor_state(req->rcv, req->vendor), &wr, &v) == 0)
                return 0;
        if (v.auth_failure)
                receiver_count_signature_failure(req->rcv, req->route->vendor, v.auth_failure);
        request_reply_early(req, v.status, v.message);
        return -1;
}

/* The body limit of req's endpoint: a batch of events may be larger than one callback. */
long long request_body_limit(const struct request *req)
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
        if (declared > (unsigned long long)request_body_limit(req)) {
                snprintf(message, sizeof(message), "body: larger than %lld bytes",
                         request_body_limit(req));
                return request_reply_early(req, 413, message);
        }
        if (atomic_load(&req->rcv->is_draining))
                return request_reply_early(req, 503, "shutting down; retry");
        if (declared && !(req->body = malloc(declared))) /* the usual case: one allocation */
                return request_reply_early(req, 503, "out of memory; retry");
        req->body_cap = declared;
        return MHD_YES;
}

static enum MHD_Result request_start(struct loop *lp, struct MHD_Connection *conn, const char *url,
                                     const char *method, bool is_bad_path, void **req_cls)
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
                return request_reply_method_not_allowed(req);
        if (is_probe(req->route) && !rcv->s->http_probes && !receiver_shares_admin_port(rcv->s))
                return request_reply_early(req, 404, "no such endpoint (probes: the admin port)");
        if (is_probe(req->route))
                return request_serve_probe(req);
        return check_upload(req);
}

/* ------------------------------------------------------------ body */

static enum MHD_Result read_body(struct request *req, const char *data, size_t *size)
{
        size_t max = (size_t)request_body_limit(req), n = *size;

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
                return request_reply_delivery(req);
        conn_guard_busy(req->rcv->guard, conn); /* read: the ack timeout bounds the rest */
        return request_publish(req);
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
        request_count(req);
        if (!req->route || !is_probe(req->route)) /* probes are not traffic */
                receiver_count_stats(rcv, req->status);
        request_log(req, toe);
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
        long long now = clock_mono_us() / 1000, start = atomic_load(&rcv->mhd_window_start_ms);
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

/* The sums of what was not written line by line (on_mhd_log, request_log), once a window. */
void receiver_report_quiet(struct receiver *rcv)
{
        long long aborted, mhd;

        if (clock_mono_us() / 1000 < rcv->next_quiet_report_ms)
                return;
        rcv->next_quiet_report_ms = clock_mono_us() / 1000 + QUIET_WINDOW_MS;
        aborted = atomic_exchange(&rcv->aborted_quiet, 0);
        mhd = atomic_exchange(&rcv->mhd_lines_quiet, 0);
        if (aborted || mhd)
                log_warn(NULL,
                         "http: in the last %d s %lld requests ended before their answer (client "
                         "gone or closed as too slow) and %lld libmicrohttpd messages were not "
                         "logged",
                         QUIET_WINDOW_MS / 1000, aborted, mhd);
}
