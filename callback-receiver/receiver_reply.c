/*
 * receiver_reply.c: the answers to a request (queued on its connection, a probe's included,
 * and whether the receiver is ready to take requests at all) and what is counted and logged
 * of it: its metric series, remembered by the loop, the stats line's sums and one log line.
 */
#include "receiver.h"
#include "receiver_int.h"
#include "receiver_request.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

#include "clock.h"
#include "conn_guard.h"
#include "delivery.h"
#include "http_reply.h"
#include "log.h"
#include "metrics.h"
#include "routes.h"
#include "settings.h"
#include "vendor.h"

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
        return slot; /* filled by request_count() */
}

void request_count(const struct request *req)
{
        struct series_slot *slot = req->route ? series_of(req) : NULL;
        struct metric *requests, *duration = NULL;
        char labels[256];

        if (slot && slot->route) {
                metric_add(slot->requests, 1);
                if (slot->duration)
                        metric_observe(slot->duration,
                                       (double)(clock_mono_us() - req->start_us) / 1e6);
                return;
        }
        snprintf(labels, sizeof(labels),
                 "endpoint=\"%s\",vendor=\"%s\",event_type=\"%s\",status=\"%u\"",
                 req->route ? req->route->endpoint : "unknown",
                 req->route ? req->route->vendor : "-",
                 req->ev.event_type ? req->ev.event_type : "none", req->status);
        requests =
                metrics_counter(req->rcv->metrics, "liveflow_receiver_requests_total",
                                "HTTP requests by endpoint, vendor, event type and status", labels);
        metric_add(requests, 1);
        if (req->route && req->status) { /* answered: timed (a client that left is not) */
                snprintf(labels, sizeof(labels), "endpoint=\"%s\"", req->route->endpoint);
                duration = metrics_histogram(
                        req->rcv->metrics, "liveflow_receiver_request_duration_seconds",
                        "From the request's headers to its answer, by endpoint", labels,
                        metrics_latency_bounds, metrics_latency_bound_cnt);
                metric_observe(duration, (double)(clock_mono_us() - req->start_us) / 1e6);
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
void request_count_recording_failure(const struct request *req)
{
        const char *state = webhook_payload_text(&req->ev, "record_event");
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

void receiver_count_signature_failure(struct receiver *rcv, const char *vendor, const char *reason)
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

/* A log line built by appending: printf's machinery cost more than the rest of the line. */
struct line {
        char text[640];
        size_t len;
};

/* Appends at most max bytes of s (the line stops short when full). */
static void put_n(struct line *l, const char *s, size_t max)
{
        size_t len = strnlen(s, max), room = sizeof(l->text) - 1 - l->len;

        if (len > room)
                len = room;
        memcpy(l->text + l->len, s, len);
        l->len += len;
        l->text[l->len] = '\0';
}

static void put(struct line *l, const char *s)
{
        put_n(l, s, SIZE_MAX);
}

static void put_int(struct line *l, long long v)
{
        char digits[24];
        unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
        size_t k = sizeof(digits) - 1;

        digits[k] = '\0';
        do {
                digits[--k] = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                digits[--k] = '-';
        put(l, digits + k);
}

/* Microseconds as milliseconds with one decimal, rounded ("ms=%.1f"). */
static void put_ms(struct line *l, long long us)
{
        long long tenths = (us < 0 ? 0 : us + 50) / 100;

        put_int(l, tenths / 10);
        put(l, ".");
        put_int(l, tenths % 10);
}

/* One line per request; probes only at debug, so scrapes do not drown the traffic. */
void request_log(const struct request *req, enum MHD_RequestTerminationCode toe)
{
        const char *aborted = termination_name(toe);
        long long us = clock_mono_us() - req->start_us;
        const char *tip_id;
        struct line l = {.len = 0};

        if (aborted && !req->status) {
                /* A client that left (or was closed) before its answer: a slow-client attack
                 * makes thousands; counted, and summed up once in a while by the main loop. */
                atomic_fetch_add(&req->rcv->aborted_quiet, 1);
                log_debug(req->trace_id, "%s %s aborted=%s ms=%.1f", req->method, req->path,
                          aborted, (double)us / 1000.0);
                return;
        }
        if (req->route && !strcmp(req->route->vendor, "-") && !aborted) {
                log_debug(req->trace_id, "%s %s status=%u ms=%.1f", req->method, req->path,
                          req->status, (double)us / 1000.0);
                return;
        }
        if (LOG_LEVEL_INFO > log_current_level)
                return;
        put(&l, req->method);
        put(&l, " ");
        put(&l, req->path);
        put(&l, " status=");
        put_int(&l, req->status);
        put(&l, " event_type=");
        put(&l, req->ev.event_type ? req->ev.event_type : "-");
        put(&l, " event_id=");
        put(&l, req->ev.event_type ? req->ev.event_id : "-");
        /* A tip's own id, so that from the id the tip service knows the request is found. */
        if ((tip_id = webhook_payload_text(&req->ev, "tip_id"))) {
                put(&l, " tip_trace_id=");
                put_n(&l, tip_id, 64);
        }
        if (req->is_sent && !req->ticket.err && req->ev.topic) {
                put(&l, " topic=");
                put(&l, req->ev.topic);
                put(&l, " partition=");
                put_int(&l, req->ticket.partition);
                put(&l, " offset=");
                put_int(&l, req->ticket.offset);
        }
        put(&l, " ms=");
        put_ms(&l, us);
        if (aborted) {
                put(&l, " aborted=");
                put(&l, aborted);
        }
        log_write_msg(LOG_LEVEL_INFO, req->trace_id, l.text);
}

void receiver_count_stats(struct receiver *rcv, unsigned int status)
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

enum MHD_Result request_reply(struct request *req, unsigned int status, const char *message)
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

enum MHD_Result request_reply_early(struct request *req, unsigned int status, const char *message)
{
        req->is_early = true;
        return request_reply(req, status, message);
}

enum MHD_Result request_reply_method_not_allowed(struct request *req)
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
bool receiver_kafka_reachable(const struct receiver *rcv)
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
        if (!receiver_kafka_reachable(rcv)) {
                snprintf(why, why_size, "no Kafka broker answers");
                return false;
        }
        return true;
}

/* The probes on the traffic port answer as the admin port does. */
enum MHD_Result request_serve_probe(struct request *req)
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
