/* support_proxy.c: the TCP relay the test suites put in front of a store, to cut and restore
 * one test's connections to it (support_proxy_* in support.h). */
#include "support.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROXY_MAX_PAIRS 64

struct support_proxy {
        pthread_t thread;
        pthread_mutex_t lock;
        int upstream_port, port, listen_fd, wake[2];
        int parked_fd;                 /* while cut: holds the port without listening */
        int pairs[PROXY_MAX_PAIRS][2]; /* client, upstream; -1 when free */
        bool is_stopping;
};

/* A socket bound to port on loopback: listening, or (is_listening false) only holding the port,
 * so connections are refused and no other test's relay can take the port meanwhile. */
static int proxy_bind(int port, bool is_listening)
{
        struct sockaddr_in sin = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd == -1)
                return -1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
            (is_listening && listen(fd, 64) == -1)) {
                close(fd);
                return -1;
        }
        return fd;
}

static int proxy_listen(int port)
{
        return proxy_bind(port, true);
}

static void proxy_accept(struct support_proxy *p)
{
        struct sockaddr_in up = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)p->upstream_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int client = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC), server;

        if (client == -1)
                return;
        server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (server == -1 || connect(server, (struct sockaddr *)&up, sizeof(up)) == -1) {
                close(client);
                if (server != -1)
                        close(server);
                return;
        }
        for (int i = 0; i < PROXY_MAX_PAIRS; i++) {
                if (p->pairs[i][0] == -1) {
                        p->pairs[i][0] = client;
                        p->pairs[i][1] = server;
                        return;
                }
        }
        close(client);
        close(server);
}

static void proxy_close_pair(struct support_proxy *p, int i)
{
        close(p->pairs[i][0]);
        close(p->pairs[i][1]);
        p->pairs[i][0] = p->pairs[i][1] = -1;
}

static void *proxy_run(void *arg)
{
        struct support_proxy *p = arg;
        char buf[16384];

        for (;;) {
                struct pollfd fds[2 + 2 * PROXY_MAX_PAIRS];
                int map[2 + 2 * PROXY_MAX_PAIRS], n = 0;

                pthread_mutex_lock(&p->lock);
                if (p->is_stopping) {
                        pthread_mutex_unlock(&p->lock);
                        return NULL;
                }
                fds[n] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
                map[n++] = -1;
                if (p->listen_fd != -1) {
                        fds[n] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
                        map[n++] = -2;
                }
                for (int i = 0; i < PROXY_MAX_PAIRS; i++) {
                        for (int side = 0; side < 2 && p->pairs[i][0] != -1; side++) {
                                fds[n] = (struct pollfd){.fd = p->pairs[i][side], .events = POLLIN};
                                map[n++] = i * 2 + side;
                        }
                }
                pthread_mutex_unlock(&p->lock);
                if (poll(fds, (nfds_t)n, 1000) <= 0)
                        continue;
                pthread_mutex_lock(&p->lock);
                for (int k = 0; k < n; k++) {
                        if (!fds[k].revents)
                                continue;
                        if (map[k] == -1) {
                                while (read(p->wake[0], buf, sizeof(buf)) > 0)
                                        ;
                                break; /* the sets changed: poll again */
                        }
                        if (map[k] == -2) {
                                proxy_accept(p);
                                continue;
                        }
                        int i = map[k] / 2, side = map[k] % 2;
                        ssize_t got;

                        if (p->pairs[i][0] == -1)
                                continue;
                        got = read(p->pairs[i][side], buf, sizeof(buf));
                        if (got <= 0 || write(p->pairs[i][!side], buf, (size_t)got) != got)
                                proxy_close_pair(p, i);
                }
                pthread_mutex_unlock(&p->lock);
        }
}

static void proxy_wake(struct support_proxy *p)
{
        char c = 1;

        if (write(p->wake[1], &c, 1) != 1) {
                /* the pipe is full: the thread wakes anyway */
        }
}

struct support_proxy *support_proxy_start(int upstream_port)
{
        struct support_proxy *p = calloc(1, sizeof(*p));

        cr_assert_not_null(p);
        p->upstream_port = upstream_port;
        for (int i = 0; i < PROXY_MAX_PAIRS; i++)
                p->pairs[i][0] = p->pairs[i][1] = -1;
        pthread_mutex_init(&p->lock, NULL);
        cr_assert(pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) == 0);
        p->parked_fd = -1;
        for (int attempt = 0; attempt < 5 && p->listen_fd <= 0; attempt++) {
                p->port = support_free_port();
                p->listen_fd = proxy_listen(p->port);
        }
        cr_assert(p->listen_fd > 0, "proxy: cannot listen");
        cr_assert(pthread_create(&p->thread, NULL, proxy_run, p) == 0);
        return p;
}

int support_proxy_port(const struct support_proxy *p)
{
        return p->port;
}

void support_proxy_cut(struct support_proxy *p)
{
        pthread_mutex_lock(&p->lock);
        if (p->listen_fd != -1)
                close(p->listen_fd);
        p->listen_fd = -1;
        if (p->parked_fd == -1)
                p->parked_fd = proxy_bind(p->port, false);
        for (int i = 0; i < PROXY_MAX_PAIRS; i++)
                if (p->pairs[i][0] != -1)
                        proxy_close_pair(p, i);
        pthread_mutex_unlock(&p->lock);
        proxy_wake(p);
}

void support_proxy_restore(struct support_proxy *p)
{
        pthread_mutex_lock(&p->lock);
        if (p->listen_fd == -1 && p->parked_fd != -1 && listen(p->parked_fd, 64) == 0) {
                p->listen_fd = p->parked_fd;
                p->parked_fd = -1;
        }
        if (p->listen_fd == -1)
                p->listen_fd = proxy_listen(p->port);
        pthread_mutex_unlock(&p->lock);
        cr_assert(p->listen_fd != -1, "proxy: cannot listen on %d again", p->port);
        proxy_wake(p);
}

void support_proxy_stop(struct support_proxy *p)
{
        if (!p)
                return;
        support_proxy_cut(p);
        pthread_mutex_lock(&p->lock);
        p->is_stopping = true;
        pthread_mutex_unlock(&p->lock);
        proxy_wake(p);
        pthread_join(p->thread, NULL);
        if (p->parked_fd != -1)
                close(p->parked_fd);
        close(p->wake[0]);
        close(p->wake[1]);
        pthread_mutex_destroy(&p->lock);
        free(p);
}
