/*
 * receiver_int.h: what the receiver's two halves share. receiver.c answers requests (the
 * libmicrohttpd callbacks, with receiver_publish.c and receiver_reply.c: receiver_request.h);
 * receiver_run.c runs the event loops and the process around them.
 *
 * The thread model: LIVEFLOW_HTTP_THREADS event loops (default: two per three CPUs), each a
 * thread that owns a libmicrohttpd daemon in external-event mode on the one shared listening
 * socket, its own producer, and every connection it accepted. A request is read, verified,
 * encoded and produced on its loop; its connection is suspended until the delivery report,
 * which the same loop serves (librdkafka wakes it through an eventfd) and which resumes the
 * connection there. The duplicate-callback guard's Redis is one more descriptor the loop polls
 * (claim_loop.h): a claim's answer lets the event be produced, and the "done" mark's
 * confirmation lets the 200 out, while the loop serves its other connections meanwhile.
 * Nothing hops to another thread on the way. The main thread sweeps slow
 * connections, replays the SRS spool with a producer of its own, logs the stats line and runs
 * the drain.
 */
#ifndef LIVEFLOW_RECEIVER_RECEIVER_INT_H
#define LIVEFLOW_RECEIVER_RECEIVER_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "claim.h"
#include "claim_loop.h"

struct settings;
struct request;

/* More vendor modules than vendor_modules[] may list. */
#define VENDOR_MODULES_MAX 16

/* Work handed to a loop from another thread (an anchor lookup's answer), run on the loop. */
struct loop_task {
        struct loop_task *next;
        void (*fn)(void *arg);
        void *arg;
};

/*
 * A request's two series (liveflow_receiver_requests_total and _request_duration_seconds) by
 * route, event type and status, remembered by the loop so that a request does not format
 * labels and search the registry for them.
 */
#define SERIES_SLOTS 256
struct series_slot {
        const void *route; /* NULL: empty */
        unsigned int status;
        char event_type[48];
        struct metric *requests, *duration;
};

/* One event loop: a thread, its daemon, its producer, the connections it accepted. */
struct loop {
        struct receiver *rcv;
        int index;
        pthread_t thread;
        bool has_thread;
        struct MHD_Daemon *daemon;
        struct delivery *delivery;
        int epoll_fd; /* the daemon's */
        int wake_fd;  /* eventfd: delivery reports, posted tasks, the drain */
        pthread_mutex_t tasks_lock;
        struct loop_task *tasks;      /* posted, not run yet (newest first) */
        atomic_int open_requests;     /* request states alive: made, not yet completed */
        atomic_int lookups_waiting;   /* connections suspended for an anchor lookup */
        atomic_llong last_request_us; /* monotonic: when the last request state was made */
        struct claim_loop *claims;    /* lock:callback:*, asked without blocking the loop */
        struct series_slot series[SERIES_SLOTS];
        struct request *claiming; /* verified this turn: claims asked after the daemon's run */
        int undelivered;          /* after its drain: messages its producer still held */
        atomic_bool is_done;      /* its thread returned */
        bool is_resumed;          /* a connection was resumed: run the daemon without waiting */
        size_t resumed_seen;      /* delivery_resumed() when the daemon last ran */
};

struct receiver {
        const struct settings *s;
        struct metrics *metrics;
        struct admin_http *admin;
        void *vendor_states[VENDOR_MODULES_MAX]; /* by vendor_module_index() */
        struct claim *claim;                     /* lock:callback:{event_key} */
        struct conn_guard *guard; /* slow-client deadlines and limits, over every loop */
        long long next_sweep_ms;
        /* rate-limited lines: aborted requests and libmicrohttpd's own messages */
        atomic_llong aborted_quiet, mhd_lines_quiet, mhd_window_start_ms;
        atomic_int mhd_lines_in_window;
        long long next_quiet_report_ms;
        struct spool *spool;     /* NULL: LIVEFLOW_SPOOL_DIR unset */
        struct delivery *replay; /* the spool's replay producer (main thread); NULL without spool */
        struct metric *m_spooled, *m_replayed;
        long long next_replay_ms;
        struct encoder *encoder;
        struct loop *loops;
        size_t loop_cnt;
        int listen_fd; /* shared by every loop's daemon */
        int listen_family;
        atomic_bool is_draining;
        atomic_bool is_stopping;        /* loops return at once (startup failure, destroy) */
        atomic_llong drain_deadline_us; /* monotonic; set before is_draining */
        /* for the stats line */
        atomic_llong received, accepted, rejected, failed;
        long long next_stats_ms;
};

/* receiver.c: the libmicrohttpd callbacks; their cls is the loop (on_mhd_log: the receiver). */
enum MHD_Result receiver_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version, const char *upload,
                                    size_t *upload_size, void **req_cls);
void receiver_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                           enum MHD_RequestTerminationCode toe);
void *receiver_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
void receiver_on_mhd_log(void *cls, const char *fmt, va_list ap);
/* The sums of what was not logged line by line, once a window (main thread). */
void receiver_report_quiet(struct receiver *rcv);

/*
 * receiver_publish.c: after the daemon's run, the claims of the requests verified in it, sent
 * together.
 */
void receiver_claim_turn(struct loop *lp);
/* The delivery_on_acked() hook of each loop's producer; arg is the loop. */
bool receiver_acked(void *arg, void *owner);

/* receiver_reply.c: whether the admin listener is the traffic port. */
bool receiver_shares_admin_port(const struct settings *s);
/* /readyz: not draining, and every loop's producer reaches a broker. Thread-safe. */
bool receiver_is_ready(void *arg, char *why, size_t why_size);

/* receiver_config.c: addr:port (IPv4 or IPv6) in *ss; -1 with errstr naming key otherwise. */
struct sockaddr_storage;
int receiver_listen_addr(const char *key, const char *addr, long long port,
                         struct sockaddr_storage *ss, char *errstr, size_t errstr_size);

/* receiver_run.c: runs task->fn(task->arg) on lp's thread soon. Thread-safe. */
void loop_post(struct loop *lp, struct loop_task *task);

#endif
