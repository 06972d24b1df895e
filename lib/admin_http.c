/* admin_http.c: a small libmicrohttpd server for probes and Prometheus, apart from traffic. */
#include "admin_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

struct admin_http {
        struct MHD_Daemon *daemon;
        struct metrics *metrics;
        admin_ready_fn ready;
        void *ready_arg;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, const char *type,
                             void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
        struct MHD_Response *rsp = MHD_create_response_from_buffer(len, body, mode);
        enum MHD_Result ret;

        if (!rsp)
                return MHD_NO;
        MHD_add_response_header(rsp, "Content-Type", type);
        ret = MHD_queue_response(conn, status, rsp);
        MHD_destroy_response(rsp);
        return ret;
}

static enum MHD_Result serve_metrics(struct admin_http *ah, struct MHD_Connection *conn)
{
        size_t len = 0;
        char *text = metrics_render(ah->metrics, &len);

        if (!text)
                return reply(conn, 500, "text/plain", (void *)"out of memory\n", 14,
                             MHD_RESPMEM_PERSISTENT);
        return reply(conn, 200, "text/plain; version=0.0.4", text, len, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result serve_ready(struct admin_http *ah, struct MHD_Connection *conn)
{
        char why[200] = "", body[256];
        bool ok = !ah->ready || ah->ready(ah->ready_arg, why, sizeof(why));
        int n;

        if (ok)
                return reply(conn, 200, "application/json", (void *)"{\"status\":\"ready\"}\n", 19,
                             MHD_RESPMEM_PERSISTENT);
        for (char *p = why; *p; p++) /* keep the reason a valid JSON string */
                if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
                        *p = ' ';
        n = snprintf(body, sizeof(body), "{\"status\":\"not ready\",\"reason\":\"%s\"}\n", why);
        return reply(conn, 503, "application/json", body, (size_t)n, MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
        struct admin_http *ah = cls;

        (void)version;
        (void)upload;
        if (!*req_cls) { /* first call: headers only */
                *req_cls = ah;
                return MHD_YES;
        }
        if (*upload_size) { /* probes send no body; swallow any */
                *upload_size = 0;
                return MHD_YES;
        }
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
                return reply(conn, 405, "text/plain", (void *)"method not allowed\n", 19,
                             MHD_RESPMEM_PERSISTENT);
        if (strcmp(url, "/metrics") == 0)
                return serve_metrics(ah, conn);
        if (strcmp(url, "/healthz") == 0)
                return reply(conn, 200, "application/json", (void *)"{\"status\":\"ok\"}\n", 16,
                             MHD_RESPMEM_PERSISTENT);
        if (strcmp(url, "/readyz") == 0)
                return serve_ready(ah, conn);
        return reply(conn, 404, "text/plain", (void *)"not found\n", 10, MHD_RESPMEM_PERSISTENT);
}

struct admin_http *admin_http_start(const char *addr, int port, struct metrics *metrics,
                                    admin_ready_fn ready, void *ready_arg, char *errstr,
                                    size_t errstr_size)
{
        struct admin_http *ah = calloc(1, sizeof(*ah));
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

        if (!ah) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
                snprintf(errstr, errstr_size, "LIVEFLOW_ADMIN_ADDR: \"%s\" is not an IPv4 address",
                         addr);
                free(ah);
                return NULL;
        }
        ah->metrics = metrics;
        ah->ready = ready;
        ah->ready_arg = ready_arg;
        ah->daemon = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY, (uint16_t)port, NULL,
                NULL, on_request, ah, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_CONNECTION_LIMIT,
                (unsigned int)64, MHD_OPTION_END);
        if (!ah->daemon) {
                snprintf(errstr, errstr_size, "admin endpoint %s:%d: cannot listen (port in use?)",
                         addr, port);
                free(ah);
                return NULL;
        }
        return ah;
}

void admin_http_stop(struct admin_http *ah)
{
        if (!ah)
                return;
        MHD_stop_daemon(ah->daemon);
        free(ah);
}
