/*
 * internal.h: the platform's own endpoints (/v1/rewards, /v1/withdrawals, /v1/admin/...):
 * Standard Webhooks verification, replay memory, body validation, mapping to events.
 */
#ifndef LIVEFLOW_RECEIVER_INTERNAL_H
#define LIVEFLOW_RECEIVER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "webhook.h"

struct settings;
struct metrics;

/* Every topic internal_map() may choose, NULL-terminated. */
extern const char *const internal_topics[];

/* Which internal endpoint a request came to. */
enum internal_endpoint {
        INTERNAL_REWARDS,
        INTERNAL_WITHDRAWALS,
        INTERNAL_ADMIN, /* req->path_arg is the rest of the path */
};

struct internal;

/**
 * @brief Makes the endpoints from s (LIVEFLOW_HMAC_SECRET, LIVEFLOW_WEBHOOK_TOLERANCE_S,
 * LIVEFLOW_MAX_AMOUNT, ...). s and metrics are borrowed and must outlive it.
 * @returns NULL with errstr set on a bad setting.
 */
struct internal *internal_new(const struct settings *s, struct metrics *metrics, char *errstr,
                              size_t errstr_size);

/** @brief Frees it; NULL is fine. */
void internal_destroy(struct internal *in);

/**
 * @brief Verifies one request and fills ev, as tencent_map() does (see webhook.h).
 * @returns 0, or -1 with v set (v->status 200: a replay of an acknowledged request).
 * Thread-safe.
 */
__attribute__((warn_unused_result)) int internal_map(struct internal *in, enum internal_endpoint ep,
                                                     const struct webhook_request *req,
                                                     struct webhook_event *ev,
                                                     struct webhook_verdict *v);

/**
 * @brief Called once the broker acknowledged ev (the request was answered 200): remembers
 * its webhook-id for the tolerance window, so a replay is answered 200 without a second
 * event. Thread-safe.
 */
void internal_acked(struct internal *in, const struct webhook_request *req,
                    const struct webhook_event *ev);

#endif
