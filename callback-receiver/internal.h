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

/* The endpoints' state: the secrets, the replay memory, the limits. Thread-safe. */
struct internal;

/**
 * @brief Validates the settings internal_new() reads (LIVEFLOW_HMAC_SECRET: see
 * stdwebhooks_new()), for --check-config. @returns 0, or -1 with errstr naming the key.
 */
__attribute__((warn_unused_result)) int internal_check_config(const struct settings *s,
                                                              char *errstr, size_t errstr_size);

/**
 * @brief Makes the endpoints from s (LIVEFLOW_HMAC_SECRET, LIVEFLOW_WEBHOOK_TOLERANCE_S,
 * LIVEFLOW_WEBHOOK_REPLAY_MAX, LIVEFLOW_MAX_AMOUNT). s and metrics are borrowed and must
 * outlive it; metrics may be NULL. Without a secret every request is answered 503 (a warning
 * is logged here). A webhook_replay_max of 0 (a hand-made struct) means the default, 100000.
 * @returns NULL with errstr set on a bad setting or out of memory.
 */
struct internal *internal_new(const struct settings *s, struct metrics *metrics, char *errstr,
                              size_t errstr_size);

/** @brief Frees it; NULL is fine. */
void internal_destroy(struct internal *in);

/**
 * @brief (internal_map_rewards(), _withdrawals(), _admin(): one per endpoint, the same
 * signature as every vendor's map.) Verifies one request and fills ev, as tencent_map()
 * does (see webhook.h). In order:
 * 503 without a secret; 401 when the Standard Webhooks headers fail (auth_failure "missing",
 * "mismatch" or "expired", the message naming the header); then the body or path:
 *  - INTERNAL_REWARDS: the Reward body of CONTRACT §2, at the top level or in a "data" object
 *    (the Standard Webhooks payload structure) -> live.reward, key anchor_id, "reward",
 *    event_time ts, event_id = hex SHA-256 of "internal|reward|<trace_id>";
 *  - INTERNAL_WITHDRAWALS: request_id, anchor_id, amount (also at the top level or in "data")
 *    -> live.withdrawal, key anchor_id, "withdrawal", event_time the receive time, event_id
 *    from "internal|withdrawal|<request_id>";
 *  - INTERNAL_ADMIN: streams/<id>/close -> live.stream (StreamEnd, close_method 2),
 *    anchors/<id>/ban and /unban -> live.audit keyed by the anchor (AuditVerdict, source
 *    "admin"). The signature does not cover the path, so the body must name the command and
 *    its target as the path does ({"action":"ban","anchor_id":"X"}, CONTRACT §2), else 400;
 *    optional "reason", a ban's "stream_id" and "until" (Unix s: a suspension, suspend_s);
 *    event_id from "admin|<path>|<webhook-id>".
 * Then 200 when the webhook-id was acknowledged within the window (a replay: nothing to
 * produce). Ids may be JSON strings or integers (their decimal text) and must fit their
 * column (field_limits.h, in characters), without control characters; amounts are
 * JSON integers from 1 to LIVEFLOW_MAX_AMOUNT. A refusal is 400 naming the field, or 404 for
 * an unknown admin path. Unknown body fields are ignored (the raw body travels with the event).
 * @param ev zeroed by the caller; on success owns what it points to, on failure left zeroed.
 * @returns 0, or -1 with v set (v->status 200: a replay of an acknowledged request).
 * Thread-safe.
 */
__attribute__((warn_unused_result)) int internal_map_rewards(struct internal *in,
                                                             const struct webhook_request *req,
                                                             struct webhook_event *ev,
                                                             struct webhook_verdict *v);

/** @brief INTERNAL_WITHDRAWALS of the verification and mapping above. */
__attribute__((warn_unused_result)) int internal_map_withdrawals(struct internal *in,
                                                                 const struct webhook_request *req,
                                                                 struct webhook_event *ev,
                                                                 struct webhook_verdict *v);

/** @brief INTERNAL_ADMIN of the verification and mapping above (req->path_arg: the rest of the
 * path). */
__attribute__((warn_unused_result)) int internal_map_admin(struct internal *in,
                                                           const struct webhook_request *req,
                                                           struct webhook_event *ev,
                                                           struct webhook_verdict *v);

/**
 * @brief The checks every internal endpoint starts with, for endpoints mapped elsewhere
 * (events.c): 503 without a secret, 401 on bad Standard Webhooks headers, 200 for a replay of
 * an acknowledged webhook-id (counted under endpoint). @returns 0, or -1 with v set.
 */
__attribute__((warn_unused_result)) int internal_verify(struct internal *in, const char *endpoint,
                                                        const struct webhook_request *req,
                                                        struct webhook_verdict *v);

/**
 * @brief Called once the broker acknowledged ev (the request was answered 200): remembers
 * its webhook-id until the tolerance window has passed both since its webhook-timestamp and
 * since the request was received, so a replay is answered 200 without a second event. Reads
 * only req's headers and now_ms (the body may be gone). ev may be NULL. Thread-safe.
 */
void internal_acked(struct internal *in, const struct webhook_request *req,
                    const struct webhook_event *ev);

#endif
