/*
 * noop_server.c (liveflow-bench-noop): the HTTP ceiling of make bench. It runs
 * libmicrohttpd the way the receiver does (internal polling thread, epoll, a pool of 2
 * threads unless told otherwise), reads each request's body and answers 200 {"code":0}
 * without doing anything else, so a receiver figure can be read as a fraction of what
 * this HTTP stack can do on the same machine with the same load generator.
 *
 *   liveflow-bench-noop PORT [THREADS]
 *
 * Listens on 127.0.0.1:PORT until SIGTERM or SIGINT, then exits 0; exit 1 when it cannot
 * start.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

static const char reply_body[] = "{\"code\":0}";

/* A persistent, shared response: queuing it from several threads is what MHD allows. */
static struct MHD_Response *reply;

/* The marker stored in *req_cls after the first call of a request. */
static int request_marker;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
        (void)cls;
        (void)url;
        (void)method;
        (void)version;
        (void)upload;
        if (!*req_cls) { /* headers only: the body, if any, comes in the next calls */
                *req_cls = &request_marker;
                return MHD_YES;
        }
        if (*upload_size) { /* read and dropped */
                *upload_size = 0;
                return MHD_YES;
        }
        return MHD_queue_response(conn, MHD_HTTP_OK, reply);
}

static int parse_int(const char *s, long min, long max, long *out)
{
        char *end;
        long n = strtol(s, &end, 10);

        if (!*s || *end || n < min || n > max)
                return -1;
        *out = n;
        return 0;
}

int main(int argc, char **argv)
{
        struct sockaddr_in sin = {.sin_family = AF_INET};
        struct MHD_Daemon *daemon;
        long port, threads = 2;
        sigset_t stop_signals;
        int sig;

        if (argc < 2 || argc > 3 || parse_int(argv[1], 1, 65535, &port) == -1 ||
            (argc == 3 && parse_int(argv[2], 1, 64, &threads) == -1)) {
                fprintf(stderr, "usage: liveflow-bench-noop PORT [THREADS]\n");
                return 1;
        }
        sin.sin_port = htons((uint16_t)port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

        /* Blocked before MHD makes its threads, so only sigwait() below sees them. */
        sigemptyset(&stop_signals);
        sigaddset(&stop_signals, SIGTERM);
        sigaddset(&stop_signals, SIGINT);
        pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
        signal(SIGPIPE, SIG_IGN);

        reply = MHD_create_response_from_buffer(strlen(reply_body), (void *)reply_body,
                                                MHD_RESPMEM_PERSISTENT);
        if (!reply || MHD_add_response_header(reply, MHD_HTTP_HEADER_CONTENT_TYPE,
                                              "application/json") == MHD_NO) {
                fprintf(stderr, "liveflow-bench-noop: cannot make the response\n");
                return 1;
        }
        daemon = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY | MHD_USE_ERROR_LOG,
                (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
                (struct sockaddr *)&sin, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
                MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_CONNECTION_LIMIT, 1024u,
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024), /* as the receiver */
                MHD_OPTION_END);
        if (!daemon) {
                fprintf(stderr, "liveflow-bench-noop: cannot listen on 127.0.0.1:%ld\n", port);
                MHD_destroy_response(reply);
                return 1;
        }
        sigwait(&stop_signals, &sig);
        MHD_stop_daemon(daemon);
        MHD_destroy_response(reply);
        return 0;
}
