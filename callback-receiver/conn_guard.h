/*
 * conn_guard.h: deadlines for slow clients, on top of libmicrohttpd's inactivity timeout
 * (which any byte resets, so a client sending one byte every few seconds keeps a connection
 * for ever). Every connection is tracked from accept to close: waiting for its request's
 * headers (a new or an idle keep-alive connection), reading its body, or busy (being answered,
 * or suspended until the broker's ack, which has its own deadline). A waiting connection gets
 * header_timeout_ms, a reading one request_timeout_ms; near the connection limit the waiting
 * ones older than a second go first, then slow readers, so legitimate requests find room.
 * A connection is closed by shutdown(2) on a duplicate of its socket: libmicrohttpd then sees
 * the end of the stream and closes it as usual, and the duplicate keeps the descriptor number
 * from being reused until libmicrohttpd reports the close.
 */
#ifndef LIVEFLOW_RECEIVER_CONN_GUARD_H
#define LIVEFLOW_RECEIVER_CONN_GUARD_H

#include <microhttpd.h>
#include <stddef.h>

struct metrics;

struct conn_guard_config {
        long long header_timeout_ms;  /* accept (or the last answer) to complete headers */
        long long request_timeout_ms; /* complete headers to complete body */
        size_t max_connections;       /* over every loop; pressure starts at 3/4 of it */
        size_t max_per_ip;            /* over every loop, per client address; 0: no limit */
};

/*
 * Thread-safe: every loop's daemon reports its connections, the main thread sweeps. The
 * per-address limit holds over all the loops: a connection past it is closed as soon as it
 * is accepted (each daemon's own per-address limit is only a backstop). The connection limit
 * is the daemons' (each loop takes its share and stops accepting when full, as
 * libmicrohttpd's own thread pool does); the pressure sweep counts every loop's connections.
 */
struct conn_guard;

/** @brief Makes the guard; metrics is borrowed. @returns NULL when out of memory. */
struct conn_guard *conn_guard_new(const struct conn_guard_config *cfg, struct metrics *metrics);

/** @brief Frees it (after MHD_stop_daemon(): every connection was reported closed). */
void conn_guard_destroy(struct conn_guard *g);

/** @brief The MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void conn_guard_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe);

/** @brief conn's request headers are complete: it is reading its body now. */
void conn_guard_reading(struct conn_guard *g, struct MHD_Connection *conn);

/** @brief conn's request is read (answered or handed to Kafka): no deadline of ours. */
void conn_guard_busy(struct conn_guard *g, struct MHD_Connection *conn);

/** @brief conn's request was completed: it waits for the next one (keep-alive). */
void conn_guard_waiting(struct conn_guard *g, struct MHD_Connection *conn);

/**
 * @brief Closes the connections past their deadline, and under pressure the oldest waiting
 * ones, then the slowest readers. Called from the main loop a few times a second.
 * @returns how many were closed now.
 */
size_t conn_guard_sweep(struct conn_guard *g);

#endif
