/*
 * receiver_run.c: the receiver's event loops and the process around them (see receiver_int.h
 * for the thread model): the shared listening socket, one daemon and producer per loop, the
 * loop itself, the main thread's chores, the drain.
 */
#include "receiver.h"
#include "clock.h"
#include "receiver_int.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "admin_http.h"
#include "claim.h"
#include "conn_guard.h"
#include "contract.h"
#include "delivery.h"
#include "encoder.h"
#include "log.h"
#include "metrics.h"
#include "process_metrics.h"
#include "settings.h"
#include "spool.h"
#include "vendor.h"

#define STATS_INTERVAL_MS 60000

/* Every topic an endpoint may produce to: their metadata is fetched at startup. */
static const char *const receiver_topics[] = {LF_TOPIC_STREAM,      LF_TOPIC_RECORD,
                                              LF_TOPIC_SNAPSHOT,    LF_TOPIC_AUDIT,
                                              LF_TOPIC_REWARD,      LF_TOPIC_WITHDRAWAL,
                                              LF_TOPIC_VIEWER,      LF_TOPIC_OTHER,
                                              LF_TOPIC_INTERACTION, NULL};
/* After the drain deadline, for the last answers to be written. */
#define RESPONSE_GRACE_MS 1000
/* While draining, a loop stops its daemon once no request came for this long. */
#define DRAIN_QUIET_MS 1000
/* The longest a loop waits when nothing happens. */
#define LOOP_WAIT_MS 100
/* More loops than this are not made, whatever the CPU count. */
#define LOOPS_MAX 64

/* ------------------------------------------------------------ one loop */

static void wake(struct loop *lp)
{
        static const uint64_t one = 1;

        if (write(lp->wake_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
                log_warn(NULL, "loop %d: cannot wake it: %s", lp->index, strerror(errno));
}

void loop_post(struct loop *lp, struct loop_task *task)
{
        pthread_mutex_lock(&lp->tasks_lock);
        task->next = lp->tasks;
        lp->tasks = task;
        pthread_mutex_unlock(&lp->tasks_lock);
        wake(lp);
}

static void run_tasks(struct loop *lp)
{
        struct loop_task *list, *next;

        pthread_mutex_lock(&lp->tasks_lock);
        list = lp->tasks;
        lp->tasks = NULL;
        pthread_mutex_unlock(&lp->tasks_lock);
        for (; list; list = next) {
                next = list->next; /* fn may free the task */
                list->fn(list->arg);
        }
}

/*
 * One turn: wait for the daemon's epoll descriptor, the wake eventfd (delivery reports, posted
 * tasks, the drain) or the guard's Redis connection, at most max_wait_ms and never past
 * libmicrohttpd's own timeout or the oldest Redis call's; serve the delivery reports that came
 * (each sends its claim's "done" mark, or resumes its connection when it has no claim), then
 * Redis's answers (a claim's produces its event, a mark's resumes its connection) and the
 * posted tasks; then let libmicrohttpd read, call the handler and write, and send the claims
 * of the requests it verified. Without an inter-thread channel a resume is not signalled to
 * the daemon, so a resume made after MHD_run() (a produce that failed at once, inside the
 * handler) makes the next turn not wait.
 *
 * libmicrohttpd 0.9.75 in epoll mode visits a resumed connection once per run: that visit
 * calls the handler, which queues the answer, and the answer is written on the next visit.
 * A turn that resumed connections therefore runs the daemon a second time, so that their
 * answers leave in this turn and not after the next turn's wait.
 */
static void loop_turn(struct loop *lp, int max_wait_ms)
{
        struct pollfd pfd[3] = {{.fd = lp->epoll_fd, .events = POLLIN},
                                {.fd = lp->wake_fd, .events = POLLIN}};
        MHD_UNSIGNED_LONG_LONG mhd_ms;
        int wait_ms = max_wait_ms, redis_ms = claim_loop_wait_ms(lp->claims);
        bool has_resumed;
        uint64_t n;

        claim_loop_pollfd(lp->claims, &pfd[2]);
        if (lp->is_resumed || delivery_resumed(lp->delivery) != lp->resumed_seen)
                wait_ms = 0;
        else if (MHD_get_timeout(lp->daemon, &mhd_ms) == MHD_YES &&
                 mhd_ms < (MHD_UNSIGNED_LONG_LONG)wait_ms)
                wait_ms = (int)mhd_ms;
        if (redis_ms >= 0 && redis_ms < wait_ms)
                wait_ms = redis_ms;
        if (poll(pfd, 3, wait_ms) > 0 && (pfd[1].revents & POLLIN))
                (void)!read(lp->wake_fd, &n, sizeof(n)); /* reset before serving what woke us */
        delivery_poll(lp->delivery, 0);                  /* acks: their "done" marks are queued */
        claim_loop_serve(lp->claims, pfd[2].revents);    /* answers; the marks go out */
        run_tasks(lp);
        has_resumed = lp->is_resumed || delivery_resumed(lp->delivery) != lp->resumed_seen;
        lp->is_resumed = false;
        lp->resumed_seen = delivery_resumed(lp->delivery);
        MHD_run(lp->daemon);
        if (has_resumed)
                MHD_run(lp->daemon); /* writes the answers the first run queued */
        receiver_claim_turn(lp);     /* produces, or resumes to answer */
}

/* Turns until no request of this loop is open or the deadline (monotonic µs) passes. */
static void wait_for_requests(struct loop *lp, long long deadline_us)
{
        while (atomic_load(&lp->open_requests) > 0 && clock_mono_us() < deadline_us)
                loop_turn(lp, 10);
}

/*
 * After the last in-flight answer, keep serving until no request has come for DRAIN_QUIET_MS
 * (bounded by until_us): a request that arrives on a kept-alive connection meanwhile is read
 * and answered 503 with Connection: close, instead of being dropped by MHD_stop_daemon().
 */
static void linger(struct loop *lp, long long until_us)
{
        while (clock_mono_us() < until_us &&
               (atomic_load(&lp->open_requests) > 0 ||
                clock_mono_us() - atomic_load(&lp->last_request_us) < DRAIN_QUIET_MS * 1000LL))
                loop_turn(lp, 10);
}

/*
 * The SIGTERM drain of one loop, on its thread: stop accepting, let the waiting requests get
 * their acks until the deadline, answer the rest 503, answer what comes on kept-alive
 * connections for a while, stop the daemon, flush the producer within what is left.
 */
static void loop_drain(struct loop *lp)
{
        long long deadline_us = atomic_load(&lp->rcv->drain_deadline_us), left_ms;
        size_t abandoned;

        delivery_close(lp->delivery);
        (void)MHD_quiesce_daemon(lp->daemon); /* the shared socket is closed once all stopped */
        /* Each delivery report resumes its connection, which then writes 200 or 503. */
        wait_for_requests(lp, deadline_us);
        /* MHD_stop_daemon() with suspended connections is an API violation: answer them now. */
        if ((abandoned = delivery_abandon(lp->delivery)) > 0)
                log_warn(NULL,
                         "drain deadline: answered 503 to %zu requests still waiting for acks",
                         abandoned);
        /* a claim still unanswered is produced unguarded (and refused: closed), a mark lets
         * its 200 out */
        claim_loop_abandon(lp->claims);
        wait_for_requests(lp, clock_mono_us() + RESPONSE_GRACE_MS * 1000);
        linger(lp, deadline_us + RESPONSE_GRACE_MS * 1000);
        /* Not with a connection suspended: each lookup is answered by its deadline. */
        while (atomic_load(&lp->lookups_waiting) > 0)
                loop_turn(lp, 10);
        claim_loop_abandon(lp->claims); /* what a lookup's claim still waits for */
        wait_for_requests(lp,
                          clock_mono_us() + RESPONSE_GRACE_MS * 1000); /* what a lookup resumed */
        MHD_stop_daemon(lp->daemon);
        lp->daemon = NULL;
        left_ms = (deadline_us - clock_mono_us()) / 1000;
        lp->undelivered = delivery_flush(lp->delivery, left_ms > 0 ? (int)left_ms : 0);
}

static void *loop_run(void *arg)
{
        struct loop *lp = arg;
        struct receiver *rcv = lp->rcv;
        char name[16];

        snprintf(name, sizeof(name), "lf-loop-%d", lp->index); /* top -H, /proc/PID/task */
        pthread_setname_np(pthread_self(), name);

        while (!atomic_load(&rcv->is_stopping) && !atomic_load(&rcv->is_draining))
                loop_turn(lp, LOOP_WAIT_MS);
        if (!atomic_load(&rcv->is_stopping))
                loop_drain(lp);
        atomic_store(&lp->is_done, true);
        return NULL;
}

static unsigned int connection_share(const struct settings *s, size_t loops, int index)
{
        size_t max = (size_t)s->http_max_connections;
        size_t share = max / loops + ((size_t)index < max % loops ? 1 : 0);

        return (unsigned int)(share > 0 ? share : 1);
}

/* libmicrohttpd's per-address limit for one daemon: a backstop one above conn_guard's limit over
 * every loop (0, no limit, stays 0). */
static unsigned int per_ip_backstop(const struct settings *s)
{
        return s->http_max_connections_per_ip ? (unsigned int)s->http_max_connections_per_ip + 1
                                              : 0;
}

/* The loop's producer and daemon on the shared socket; its thread starts later. */
static int loop_open(struct receiver *rcv, struct loop *lp, int index, char *errstr,
                     size_t errstr_size)
{
        const struct settings *s = rcv->s;
        const union MHD_DaemonInfo *info;
        /*
         * External events: the loop waits on the daemon's epoll descriptor itself, beside the
         * descriptor librdkafka wakes it through. No MHD_USE_ITC: every resume happens on the
         * loop's own thread, which then runs the daemon (see loop_turn()).
         */
        unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;

        lp->rcv = rcv;
        lp->index = index;
        lp->wake_fd = -1;
        lp->epoll_fd = -1;
        pthread_mutex_init(&lp->tasks_lock, NULL);
        if ((lp->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
                snprintf(errstr, errstr_size, "eventfd: %s", strerror(errno));
                return -1;
        }
        if (!(lp->delivery = delivery_new(s, receiver_topics, rcv->metrics, errstr, errstr_size)))
                return -1;
        if (!(lp->claims = claim_loop_new(rcv->claim))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        delivery_on_acked(lp->delivery, receiver_acked, lp);
        if (delivery_wake_on(lp->delivery, lp->wake_fd) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (rcv->listen_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        /* The logger comes first so that libmicrohttpd reports option errors through it. */
        lp->daemon = MHD_start_daemon(
                flags, 0, NULL, NULL, receiver_on_request, lp, MHD_OPTION_EXTERNAL_LOGGER,
                receiver_on_mhd_log, rcv, MHD_OPTION_LISTEN_SOCKET, rcv->listen_fd,
                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)s->http_timeout_s,
                /* each loop its share, as libmicrohttpd's thread pool divides it; a full loop
                 * stops accepting and leaves new connections to the others */
                MHD_OPTION_CONNECTION_LIMIT, connection_share(s, rcv->loop_cnt, index),
                /* over every loop: conn_guard's, which closes and counts the one too many;
                 * one above it here, so that a daemon holding every connection of an address
                 * still lets conn_guard see the next one rather than refusing it uncounted */
                MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip_backstop(s),
                /* the pool holds the request's head and the answer's; libmicrohttpd 0.9.75
                 * zeroes all of it after each request (MHD_pool_reset) and half of it when a
                 * request has been read, so it is kept as small as a head needs */
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)s->http_connection_memory,
                MHD_OPTION_NOTIFY_CONNECTION, conn_guard_on_connection, rcv->guard,
                MHD_OPTION_NOTIFY_COMPLETED, receiver_on_completed, lp, MHD_OPTION_URI_LOG_CALLBACK,
                receiver_on_uri, lp, MHD_OPTION_END);
        if (!lp->daemon || !(info = MHD_get_daemon_info(lp->daemon, MHD_DAEMON_INFO_EPOLL_FD))) {
                snprintf(errstr, errstr_size, "http %s:%lld: cannot start loop %d", s->http_addr,
                         s->http_port, index);
                return -1;
        }
        lp->epoll_fd = info->epoll_fd;
        return 0;
}

/* After its thread stopped (or never started). */
static void loop_close(struct loop *lp)
{
        claim_loop_destroy(lp->claims); /* no callback: the request states go with the daemon */
        if (lp->daemon) {               /* a failed start: nothing is suspended */
                (void)MHD_quiesce_daemon(lp->daemon); /* keeps the shared socket open */
                MHD_stop_daemon(lp->daemon);
        }
        delivery_destroy(lp->delivery);
        if (lp->wake_fd != -1)
                close(lp->wake_fd);
        pthread_mutex_destroy(&lp->tasks_lock);
}

/* ------------------------------------------------------------ startup */

/* The one listening socket every loop's daemon accepts from: the idlest loop wakes first. */
static int listen_socket(struct receiver *rcv, char *errstr, size_t errstr_size)
{
        const struct settings *s = rcv->s;
        struct sockaddr_storage ss;
        socklen_t len;
        int on = 1, fd;

        if (receiver_listen_addr("LIVEFLOW_HTTP_ADDR", s->http_addr, s->http_port, &ss, errstr,
                                 errstr_size) == -1)
                return -1;
        rcv->listen_family = ss.ss_family;
        len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
            (ss.ss_family == AF_INET6 &&
             setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
            bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, SOMAXCONN) != 0) {
                snprintf(errstr, errstr_size, "http %s:%lld: cannot listen (address in use?): %s",
                         s->http_addr, s->http_port, strerror(errno));
                if (fd != -1)
                        close(fd);
                return -1;
        }
        rcv->listen_fd = fd;
        return 0;
}

/*
 * LIVEFLOW_HTTP_THREADS, or by default two loops for every three online CPUs, at least one. A
 * loop's producer has a broker thread of its own, which spends about half as much CPU per
 * request as the loop (/proc per thread at 64 connections: the loops 68-69 % of the
 * receiver's CPU, the broker threads 30-32 %): a loop and its broker thread keep about 1.5 CPUs
 * busy at full load. One loop per CPU made them take turns on the cores; on two CPUs one loop
 * answered as many requests for 10-20 % less CPU per request (README, performance).
 */
static size_t loop_count(const struct settings *s)
{
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        long n = s->http_threads > 0 ? (long)s->http_threads : cpus * 2 / 3;

        return n < 1 ? 1 : n > LOOPS_MAX ? LOOPS_MAX : (size_t)n;
}

static int start_http(struct receiver *rcv, char *errstr, size_t errstr_size)
{
        const struct settings *s = rcv->s;

        if (!(rcv->guard = conn_guard_new(
                      &(struct conn_guard_config){
                              .header_timeout_ms = s->http_header_timeout_ms,
                              .request_timeout_ms = s->http_request_timeout_ms,
                              .max_connections = (size_t)s->http_max_connections,
                              .max_per_ip = (size_t)s->http_max_connections_per_ip},
                      rcv->metrics)) ||
            !(rcv->loops = calloc(rcv->loop_cnt, sizeof(*rcv->loops)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (listen_socket(rcv, errstr, errstr_size) == -1)
                return -1;
        for (size_t i = 0; i < rcv->loop_cnt; i++)
                if (loop_open(rcv, &rcv->loops[i], (int)i, errstr, errstr_size) == -1)
                        return -1;
        return 0;
}

static int start_loops(struct receiver *rcv, char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < rcv->loop_cnt; i++) {
                struct loop *lp = &rcv->loops[i];
                int rc = pthread_create(&lp->thread, NULL, loop_run, lp);

                if (rc != 0) {
                        snprintf(errstr, errstr_size, "loop %zu: %s", i, strerror(rc));
                        return -1;
                }
                lp->has_thread = true;
        }
        return 0;
}

/*
 * The probes are the admin listener's (loopback by default): the traffic port answers them only
 * with LIVEFLOW_HTTP_PROBES=1, or when the two are configured as one port.
 */
static int start_admin(struct receiver *rcv, char *errstr, size_t errstr_size)
{
        const struct settings *s = rcv->s;

        if (receiver_shares_admin_port(s))
                return 0;
        rcv->admin = admin_http_start(s->admin_addr, (int)s->admin_port, rcv->metrics,
                                      receiver_is_ready, rcv, errstr, errstr_size);
        return rcv->admin ? 0 : -1;
}

static void block_stop_signals(sigset_t *old)
{
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, old);
}

/*
 * Each connection holds two descriptors (libmicrohttpd's and conn_guard's duplicate), so the
 * soft RLIMIT_NOFILE is raised toward the hard one, as Redis does for maxclients; a limit that
 * still cannot hold the connection limit is said at startup.
 */
static void raise_fd_limit(const struct settings *s)
{
        rlim_t want = (rlim_t)(2 * s->http_max_connections + 256);
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
                return;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
                log_warn(NULL,
                         "open files limit %llu is below the %llu that "
                         "LIVEFLOW_HTTP_MAX_CONNECTIONS=%lld needs: connections past it are "
                         "refused (raise LimitNOFILE or ulimit -n)",
                         (unsigned long long)rl.rlim_cur, (unsigned long long)want,
                         s->http_max_connections);
}

static double spool_length(void *arg)
{
        return (double)spool_pending(arg);
}

static double reachable_value(void *arg)
{
        struct receiver *rcv = arg;

        for (size_t i = 0; i < rcv->loop_cnt; i++)
                if (!delivery_is_reachable(rcv->loops[i].delivery))
                        return 0;
        return 1;
}

static double queue_length(void *arg)
{
        struct receiver *rcv = arg;
        size_t n = 0;

        for (size_t i = 0; i < rcv->loop_cnt; i++)
                n += delivery_queue_length(rcv->loops[i].delivery);
        return (double)n;
}

static int open_spool(struct receiver *rcv, char *errstr, size_t errstr_size)
{
        const struct settings *s = rcv->s;

        if (!(rcv->spool = spool_open(s->spool_dir, s->spool_max_bytes, errstr, errstr_size)) ||
            !(rcv->replay = delivery_new(s, receiver_topics, rcv->metrics, errstr, errstr_size)))
                return -1;
        rcv->m_spooled = metrics_counter(
                rcv->metrics, "liveflow_receiver_spooled_total",
                "SRS events spooled locally because Kafka could not take them", NULL);
        rcv->m_replayed = metrics_counter(rcv->metrics, "liveflow_receiver_spool_replayed_total",
                                          "Spooled events replayed to Kafka", NULL);
        metrics_gauge_fn(rcv->metrics, "liveflow_receiver_spool_records",
                         "Events in the local spool waiting for Kafka", NULL, spool_length,
                         rcv->spool);
        if (spool_pending(rcv->spool))
                log_warn(NULL, "spool %s holds %zu events from an earlier run: replaying",
                         s->spool_dir, spool_pending(rcv->spool));
        return 0;
}

static int start(struct receiver *rcv, char *errstr, size_t errstr_size)
{
        const struct settings *s = rcv->s;

        if (!(rcv->metrics = metrics_new())) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        process_metrics_register(rcv->metrics);
        raise_fd_limit(s);
        for (size_t i = 0; vendor_modules[i]; i++) {
                if (i >= VENDOR_MODULES_MAX) {
                        snprintf(errstr, errstr_size, "more than %d vendor modules",
                                 VENDOR_MODULES_MAX);
                        return -1;
                }
                if (!(rcv->vendor_states[i] =
                              vendor_modules[i]->open(s, rcv->metrics, errstr, errstr_size)))
                        return -1;
        }
        if (!(rcv->claim =
                      claim_new(s->redis_url, (int)s->callback_lock_timeout_ms, 1000,
                                s->ack_timeout_ms + 5000, (int)rcv->loop_cnt + 1, rcv->metrics)) ||
            !(rcv->encoder = encoder_new(errstr, errstr_size)))
                return -1;
        if (s->spool_dir && open_spool(rcv, errstr, errstr_size) == -1)
                return -1;
        if (start_http(rcv, errstr, errstr_size) == -1)
                return -1;
        metrics_gauge_fn(rcv->metrics, "liveflow_receiver_kafka_reachable",
                         "1 while a broker answered within the last 3 s", NULL, reachable_value,
                         rcv);
        metrics_gauge_fn(rcv->metrics, "liveflow_receiver_producer_queue",
                         "Messages in librdkafka's queues (rd_kafka_outq_len, every loop)", NULL,
                         queue_length, rcv);
        if (start_admin(rcv, errstr, errstr_size) == -1 ||
            start_loops(rcv, errstr, errstr_size) == -1)
                return -1;
        return 0;
}

/*
 * glibc gives a thread's heap back to the kernel (madvise MADV_DONTNEED) whenever a free leaves
 * more than M_TRIM_THRESHOLD (128 KiB) at its top, and faults the pages in again on the next
 * allocation. librdkafka's broker threads free a request's buffers about once per batch, and
 * at small batches that was 0.6 madvise per request and its page faults (strace -c -f at 8
 * connections). Keeping up to this much at the top of each heap costs at most that much memory
 * per malloc arena.
 */
#define MALLOC_TRIM_THRESHOLD (1024 * 1024)

struct receiver *receiver_new(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct receiver *rcv;
        sigset_t old;
        int rc;

        mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
        rcv = calloc(1, sizeof(*rcv));
        if (!rcv) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        rcv->s = s;
        rcv->listen_fd = -1;
        rcv->loop_cnt = loop_count(s);
        block_stop_signals(&old);
        rc = start(rcv, errstr, errstr_size);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == -1) {
                receiver_destroy(rcv);
                return NULL;
        }
        rcv->next_stats_ms = clock_wall_ms() + STATS_INTERVAL_MS;
        return rcv;
}

void receiver_describe(const struct receiver *rcv, char *out, size_t out_size)
{
        const struct settings *s = rcv->s;
        size_t len;

        len = (size_t)snprintf(
                out, out_size,
                "http=%s:%lld admin=%s:%lld loops=%zu kafka=%s librdkafka=%s libmicrohttpd=%s",
                s->http_addr, s->http_port, rcv->admin ? s->admin_addr : s->http_addr,
                rcv->admin ? s->admin_port : s->http_port, rcv->loop_cnt, s->kafka_bootstrap,
                rd_kafka_version_str(), MHD_get_version());
        for (size_t i = 0; vendor_modules[i] && len < out_size; i++) {
                if (!vendor_modules[i]->describe)
                        continue;
                vendor_modules[i]->describe(rcv->vendor_states[i], out + len, out_size - len);
                len += strlen(out + len);
        }
}

/* ------------------------------------------------------------ the main thread */

static size_t waiting(struct receiver *rcv)
{
        size_t n = 0;

        for (size_t i = 0; i < rcv->loop_cnt; i++)
                n += delivery_waiting(rcv->loops[i].delivery);
        return n;
}

static int open_requests(struct receiver *rcv)
{
        int n = 0;

        for (size_t i = 0; i < rcv->loop_cnt; i++)
                n += atomic_load(&rcv->loops[i].open_requests);
        return n;
}

static void log_stats(struct receiver *rcv)
{
        log_info(NULL, "stats received=%lld accepted=%lld rejected=%lld failed=%lld waiting=%zu",
                 atomic_load(&rcv->received), atomic_load(&rcv->accepted),
                 atomic_load(&rcv->rejected), atomic_load(&rcv->failed), waiting(rcv));
}

#define REPLAY_INTERVAL_MS 2000
#define REPLAY_BATCH       500

static size_t replay_send(void *arg, const struct webhook_event *recs, size_t n)
{
        struct receiver *rcv = arg;

        return delivery_send_sync(rcv->replay, recs, n < REPLAY_BATCH ? n : REPLAY_BATCH);
}

/* Replays the spool to Kafka every couple of seconds while it holds anything. */
static void replay_spool(struct receiver *rcv)
{
        char errstr[256];
        long n;

        if (!rcv->spool || clock_wall_ms() < rcv->next_replay_ms || spool_pending(rcv->spool) == 0)
                return;
        rcv->next_replay_ms = clock_wall_ms() + REPLAY_INTERVAL_MS;
        n = spool_replay(rcv->spool, replay_send, rcv, errstr, sizeof(errstr));
        if (n < 0) {
                log_error(NULL, "spool replay: %s", errstr);
                return;
        }
        metric_add(rcv->m_replayed, n);
        if (n > 0)
                log_info(NULL, "spool replay: %ld events now in Kafka, %zu left", n,
                         spool_pending(rcv->spool));
}

#define SWEEP_INTERVAL_MS 250

void receiver_serve(struct receiver *rcv, int timeout_ms)
{
        if (clock_mono_us() / 1000 >= rcv->next_sweep_ms) {
                conn_guard_sweep(rcv->guard);
                receiver_report_quiet(rcv);
                rcv->next_sweep_ms = clock_mono_us() / 1000 + SWEEP_INTERVAL_MS;
        }
        if (rcv->replay)
                delivery_poll(rcv->replay, timeout_ms);
        else
                poll(NULL, 0, timeout_ms); /* a signal ends it early */
        replay_spool(rcv);
        if (clock_wall_ms() >= rcv->next_stats_ms) {
                log_stats(rcv);
                rcv->next_stats_ms += STATS_INTERVAL_MS;
        }
}

/* Stops and joins every loop thread still running. */
static void join_loops(struct receiver *rcv)
{
        for (size_t i = 0; rcv->loops && i < rcv->loop_cnt; i++)
                wake(&rcv->loops[i]);
        for (size_t i = 0; rcv->loops && i < rcv->loop_cnt; i++) {
                struct loop *lp = &rcv->loops[i];

                if (lp->has_thread)
                        pthread_join(lp->thread, NULL);
                lp->has_thread = false;
        }
}

int receiver_drain(struct receiver *rcv, long long timeout_ms)
{
        long long deadline_us = clock_mono_us() + timeout_ms * 1000;
        int undelivered = 0;

        log_info(NULL, "draining: open=%d waiting=%zu timeout_ms=%lld loops=%zu",
                 open_requests(rcv), waiting(rcv), timeout_ms, rcv->loop_cnt);
        atomic_store(&rcv->drain_deadline_us, deadline_us);
        atomic_store(&rcv->is_draining, true);
        /* Each loop drains itself (loop_drain()); the slow-client sweep goes on meanwhile. */
        for (size_t i = 0; i < rcv->loop_cnt; i++)
                wake(&rcv->loops[i]);
        for (size_t i = 0; i < rcv->loop_cnt; i++) {
                struct loop *lp = &rcv->loops[i];

                while (lp->has_thread && !atomic_load(&lp->is_done)) {
                        conn_guard_sweep(rcv->guard);
                        poll(NULL, 0, 50);
                }
                if (lp->has_thread)
                        pthread_join(lp->thread, NULL);
                lp->has_thread = false;
                undelivered += lp->undelivered;
        }
        if (rcv->listen_fd != -1)
                close(rcv->listen_fd); /* only now: every daemon has stopped */
        rcv->listen_fd = -1;
        log_stats(rcv);
        if (undelivered > 0) {
                log_error(NULL, "drained with %d messages not delivered", undelivered);
                return -1;
        }
        log_info(NULL, "drained");
        return 0;
}

void receiver_destroy(struct receiver *rcv)
{
        if (!rcv)
                return;
        atomic_store(&rcv->is_stopping, true);
        join_loops(rcv);
        admin_http_stop(rcv->admin);
        for (size_t i = 0; rcv->loops && i < rcv->loop_cnt; i++)
                loop_close(&rcv->loops[i]);
        free(rcv->loops);
        if (rcv->listen_fd != -1)
                close(rcv->listen_fd);
        conn_guard_destroy(rcv->guard); /* every connection was reported closed */
        delivery_destroy(rcv->replay);
        encoder_destroy(rcv->encoder);
        for (size_t i = 0; i < VENDOR_MODULES_MAX && vendor_modules[i]; i++)
                if (rcv->vendor_states[i])
                        vendor_modules[i]->close(rcv->vendor_states[i]);
        claim_destroy(rcv->claim);
        spool_close(rcv->spool);
        metrics_destroy(rcv->metrics);
        free(rcv);
}
