/* admin_http.h: the operator endpoints every process serves: /metrics, /healthz, /readyz. */
#ifndef LIVEFLOW_ADMIN_HTTP_H
#define LIVEFLOW_ADMIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct admin_http;
struct metrics;

/**
 * @brief Tells /readyz whether the process can do its work now (connections up, assigned,
 * not draining). Called from the HTTP thread; must be thread-safe. On false, why (may be
 * left empty) is written to the 503 body.
 */
typedef bool (*admin_ready_fn)(void *arg, char *why, size_t why_size);

/**
 * @brief Starts serving on addr:port in its own thread. metrics is borrowed and must outlive
 * the server. @returns NULL with errstr set when the port cannot be bound.
 */
struct admin_http *admin_http_start(const char *addr, int port, struct metrics *metrics,
                                    admin_ready_fn ready, void *ready_arg, char *errstr,
                                    size_t errstr_size);

/** @brief Stops the server and frees it; NULL is fine. */
void admin_http_stop(struct admin_http *ah);

#endif
