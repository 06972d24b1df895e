/*
 * conn_guard.c: slow-client deadlines (see conn_guard.h). The tracked connections form a
 * doubly linked list under one mutex; a sweep walks it, which at a thousand connections a few
 * times a second costs microseconds.
 */
#include "conn_guard.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"

#define PRESSURE_GRACE_MS 1000 /* under pressure, a waiting connection older than this goes */
#define PRESSURE_READ_MS  2000 /* ... and a reader that has not finished its body by then */

enum track_state { TRACK_WAITING, TRACK_READING, TRACK_BUSY, TRACK_CLOSING };

/* Open connections from one client address. */
struct per_ip {
        struct per_ip *next;
        size_t count;
        unsigned char addr[16];
        unsigned char len;
};

#define PER_IP_BUCKETS 1024

struct track {
        struct track *prev, *next;
        struct per_ip *ip; /* NULL: not counted */
        int fd;            /* our duplicate of the connection's socket; -1 if none could be made */
        enum track_state state;
        long long since_ms; /* when the state began (monotonic) */
};

enum close_reason {
        CLOSE_HEADER_TIMEOUT,
        CLOSE_REQUEST_TIMEOUT,
        CLOSE_PRESSURE,
        CLOSE_PER_IP,
        CLOSE_CNT
};

static const char *const reason_labels[CLOSE_CNT] = {
        "reason=\"header_timeout\"",
        "reason=\"request_timeout\"",
        "reason=\"pressure\"",
        "reason=\"per_ip_limit\"",
};

struct conn_guard {
        struct conn_guard_config cfg;
        pthread_mutex_t lock;
        struct track head; /* sentinel of the list, oldest first */
        size_t count;
        struct per_ip *per_ip[PER_IP_BUCKETS];
        struct metric *m_closed[CLOSE_CNT];
        struct metric *m_open;
};

struct conn_guard *conn_guard_new(const struct conn_guard_config *cfg, struct metrics *metrics)
{
        struct conn_guard *g = calloc(1, sizeof(*g));

        if (!g)
                return NULL;
        g->cfg = *cfg;
        pthread_mutex_init(&g->lock, NULL);
        g->head.prev = g->head.next = &g->head;
        for (int i = 0; i < CLOSE_CNT; i++)
                g->m_closed[i] = metrics_counter(
                        metrics, "liveflow_receiver_connections_closed_total",
                        "Connections the receiver closed itself: past the header or request "
                        "deadline, to make room near the connection limit, or past the limit "
                        "per address",
                        reason_labels[i]);
        g->m_open = metrics_gauge(metrics, "liveflow_receiver_connections",
                                  "Open HTTP connections on the traffic port", NULL);
        return g;
}

void conn_guard_destroy(struct conn_guard *g)
{
        if (!g)
                return;
        while (g->head.next != &g->head) { /* only after a failed start */
                struct track *t = g->head.next;

                g->head.next = t->next;
                if (t->fd != -1)
                        close(t->fd);
                free(t);
        }
        for (size_t i = 0; i < PER_IP_BUCKETS; i++)
                while (g->per_ip[i]) {
                        struct per_ip *ip = g->per_ip[i];

                        g->per_ip[i] = ip->next;
                        free(ip);
                }
        pthread_mutex_destroy(&g->lock);
        free(g);
}

static void set_state(struct track *t, enum track_state state)
{
        t->state = state;
        t->since_ms = clock_mono_ms();
}

/* Moves t to the list's end: the list stays ordered by since_ms. Lock held. */
static void move_to_end(struct conn_guard *g, struct track *t)
{
        t->prev->next = t->next;
        t->next->prev = t->prev;
        t->prev = g->head.prev;
        t->next = &g->head;
        g->head.prev->next = t;
        g->head.prev = t;
}

/* The address bytes of a client (IPv4, or IPv6 with IPv4-mapped ones as IPv4). */
static size_t address_of(struct MHD_Connection *conn, unsigned char out[16])
{
        const union MHD_ConnectionInfo *info =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = info ? info->client_addr : NULL;

        if (sa && sa->sa_family == AF_INET) {
                memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
                return 4;
        }
        if (sa && sa->sa_family == AF_INET6) {
                const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

                if (IN6_IS_ADDR_V4MAPPED(a6)) {
                        memcpy(out, a6->s6_addr + 12, 4);
                        return 4;
                }
                memcpy(out, a6->s6_addr, 16);
                return 16;
        }
        return 0;
}

/* The count of addr (FNV-1a bucket), made at 0 when new; NULL when out of memory. Lock held. */
static struct per_ip *per_ip_of(struct conn_guard *g, const unsigned char *addr, size_t len)
{
        uint32_t h = 2166136261u;
        struct per_ip **slot, *ip;

        for (size_t i = 0; i < len; i++)
                h = (h ^ addr[i]) * 16777619u;
        slot = &g->per_ip[h % PER_IP_BUCKETS];
        for (ip = *slot; ip; ip = ip->next)
                if (ip->len == len && memcmp(ip->addr, addr, len) == 0)
                        return ip;
        if (!(ip = calloc(1, sizeof(*ip))))
                return NULL;
        memcpy(ip->addr, addr, len);
        ip->len = (unsigned char)len;
        ip->next = *slot;
        *slot = ip;
        return ip;
}

/* Drops one connection of t's address; the entry goes with its last one. Lock held. */
static void per_ip_release(struct conn_guard *g, struct track *t)
{
        struct per_ip *ip = t->ip, **slot;
        uint32_t h = 2166136261u;

        if (!ip || --ip->count > 0)
                return;
        for (size_t i = 0; i < ip->len; i++)
                h = (h ^ ip->addr[i]) * 16777619u;
        for (slot = &g->per_ip[h % PER_IP_BUCKETS]; *slot != ip; slot = &(*slot)->next)
                ;
        *slot = ip->next;
        free(ip);
        t->ip = NULL;
}

static void started(struct conn_guard *g, struct MHD_Connection *conn, void **socket_context)
{
        const union MHD_ConnectionInfo *info =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct track *t = calloc(1, sizeof(*t));
        enum close_reason why = CLOSE_CNT;
        unsigned char addr[16];
        size_t addr_len;

        if (!t)
                return; /* untracked: only libmicrohttpd's own timeout applies */
        t->fd = info ? fcntl(info->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
        addr_len = address_of(conn, addr);
        set_state(t, TRACK_WAITING);
        pthread_mutex_lock(&g->lock);
        t->prev = t->next = t;
        move_to_end(g, t);
        g->count++;
        if (g->cfg.max_per_ip && addr_len && (t->ip = per_ip_of(g, addr, addr_len)))
                t->ip->count++;
        if (t->ip && t->ip->count > g->cfg.max_per_ip)
                why = CLOSE_PER_IP;
        if (why != CLOSE_CNT && t->fd != -1) { /* libmicrohttpd sees the end and closes it */
                shutdown(t->fd, SHUT_RDWR);
                t->state = TRACK_CLOSING;
                metric_add(g->m_closed[why], 1);
        }
        metric_set(g->m_open, (long long)g->count);
        pthread_mutex_unlock(&g->lock);
        *socket_context = t;
}

static void closed(struct conn_guard *g, void **socket_context)
{
        struct track *t = *socket_context;

        if (!t)
                return;
        pthread_mutex_lock(&g->lock);
        t->prev->next = t->next;
        t->next->prev = t->prev;
        g->count--;
        per_ip_release(g, t);
        metric_set(g->m_open, (long long)g->count);
        pthread_mutex_unlock(&g->lock);
        if (t->fd != -1)
                close(t->fd); /* only now may the descriptor number be reused */
        free(t);
        *socket_context = NULL;
}

void conn_guard_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
        if (toe == MHD_CONNECTION_NOTIFY_STARTED)
                started(cls, conn, socket_context);
        else
                closed(cls, socket_context);
}

static void change(struct conn_guard *g, struct MHD_Connection *conn, enum track_state state)
{
        const union MHD_ConnectionInfo *info =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct track *t = info ? info->socket_context : NULL;

        if (!g || !t)
                return;
        pthread_mutex_lock(&g->lock);
        if (t->state != TRACK_CLOSING) {
                set_state(t, state);
                move_to_end(g, t);
        }
        pthread_mutex_unlock(&g->lock);
}

void conn_guard_reading(struct conn_guard *g, struct MHD_Connection *conn)
{
        change(g, conn, TRACK_READING);
}

void conn_guard_busy(struct conn_guard *g, struct MHD_Connection *conn)
{
        change(g, conn, TRACK_BUSY);
}

void conn_guard_waiting(struct conn_guard *g, struct MHD_Connection *conn)
{
        change(g, conn, TRACK_WAITING);
}

/* Why t should be closed now, or CLOSE_CNT. Lock held. */
static enum close_reason verdict_of(const struct conn_guard *g, const struct track *t,
                                    long long now_ms, bool is_pressed)
{
        long long age = now_ms - t->since_ms;

        if (t->state == TRACK_WAITING && age > g->cfg.header_timeout_ms)
                return CLOSE_HEADER_TIMEOUT;
        if (t->state == TRACK_READING && age > g->cfg.request_timeout_ms)
                return CLOSE_REQUEST_TIMEOUT;
        if (is_pressed && ((t->state == TRACK_WAITING && age > PRESSURE_GRACE_MS) ||
                           (t->state == TRACK_READING && age > PRESSURE_READ_MS)))
                return CLOSE_PRESSURE;
        return CLOSE_CNT;
}

size_t conn_guard_sweep(struct conn_guard *g)
{
        long long now_ms = clock_mono_ms();
        size_t closed_now = 0, pressure_at = g->cfg.max_connections * 3 / 4;
        size_t relieved_at = g->cfg.max_connections / 2;
        bool is_pressed;

        pthread_mutex_lock(&g->lock);
        is_pressed = g->count >= pressure_at;
        /* Oldest first: under pressure, close until half the limit is free again. */
        for (struct track *t = g->head.next; t != &g->head; t = t->next) {
                enum close_reason why;

                if (t->state == TRACK_CLOSING || t->fd == -1)
                        continue;
                if (is_pressed && g->count - closed_now <= relieved_at)
                        is_pressed = false;
                if ((why = verdict_of(g, t, now_ms, is_pressed)) == CLOSE_CNT)
                        continue;
                shutdown(t->fd, SHUT_RDWR);
                t->state = TRACK_CLOSING;
                metric_add(g->m_closed[why], 1);
                closed_now++;
        }
        pthread_mutex_unlock(&g->lock);
        if (closed_now)
                log_debug(NULL, "http: closed %zu slow or idle connections", closed_now);
        return closed_now;
}
