/*
 * agora.h: Agora Notification Center (NCS) callbacks at POST /callbacks/agora: verify
 * Agora-Signature-V2 (HMAC-SHA256 of the raw body) and map RTC, Broadcast Streaming and
 * Cloud Recording notices onto liveflow's topics.
 */
#ifndef LIVEFLOW_RECEIVER_AGORA_H
#define LIVEFLOW_RECEIVER_AGORA_H

#include <stdbool.h>
#include <stddef.h>

#include "webhook.h"

struct settings;

#define AGORA_SECRET_MAX 256 /* longest accepted NCS secret, in bytes */

/* The verifier and mapper: secrets, freshness bound, anchor convention. Thread-safe. */
struct agora;

/** @brief Checks the Agora settings of s (--check-config). @returns 0, or -1 with errstr. */
__attribute__((warn_unused_result)) int agora_check_config(const struct settings *s, char *errstr,
                                                           size_t errstr_size);

/**
 * @brief Makes the endpoint from s: LIVEFLOW_AGORA_SECRET (comma-separated, blanks around a
 * secret ignored, all valid at once during a rotation; unset: every notice is answered 503),
 * LIVEFLOW_AGORA_ACCEPT_SHA1, LIVEFLOW_AGORA_MAX_AGE_S, LIVEFLOW_AGORA_ANCHOR_FROM (channel
 * or uid). @returns the endpoint (agora_destroy() frees it), or NULL with errstr set.
 */
struct agora *agora_new(const struct settings *s, char *errstr, size_t errstr_size);

/** @brief Frees it and wipes its secrets; NULL is fine. */
void agora_destroy(struct agora *ag);

/** @brief How many secrets are configured (0: the endpoint answers 503). */
size_t agora_secret_count(const struct agora *ag);

/**
 * @brief Verifies one NCS notice and fills ev.
 *
 * Signature: Agora-Signature-V2 = lowercase hex HMAC-SHA256(secret, req->body) under any
 * configured secret, compared in constant time (hex case ignored); only when it is absent and
 * LIVEFLOW_AGORA_ACCEPT_SHA1=1, Agora-Signature (HMAC-SHA1). Then the envelope: noticeId,
 * productId, eventType, notifyMs (numbers or decimal text), and notifyMs within
 * LIVEFLOW_AGORA_MAX_AGE_S of req->now_ms either way (NCS has no timestamp header; notifyMs is
 * signed and renewed on every retry).
 *
 * event_id: lowercase hex SHA-256 of "agora|<productId>|<eventType>|<noticeId>": a retry
 * (new notifyMs) and a duplicate notice keep their id.
 *
 * Mapping (productId/eventType):
 *   7/1 stream.begin, 7/2 stream.end (live.stream, key streamName);
 *   7/3, 7/101 record.file (live.record); 7/4, 7/102 snapshot (live.snapshot);
 *   7/5, 7/103 audit.image (live.audit; suggestion Pass/Review/Block, label = the scene,
 *   score = the highest non-neutral output × 100);
 *   1/101 stream.begin and 1/102 stream.end of the channel (one session per channel);
 *   1/103 stream.join and 1/104 stream.leave: a broadcaster joining or leaving, which the
 *   stream role records and which opens the session when the channel is not live yet;
 *   1/105, 1/112 viewer.join and 1/106, 1/111 viewer.leave (live.viewer, client_id = uid);
 *   3/31 record.file (the first playable file of fileList), 3/45 snapshot (live.snapshot),
 *   key cname; everything else "other" on live.other (each unknown pair logged once).
 * The stream id is streamName (7), channelName (1) or cname (3). Anchor and room: with
 * LIVEFLOW_AGORA_ANCHOR_FROM=channel both are the stream id; with uid the room is the stream
 * id and the anchor is the uid of a broadcaster event (1/103, 1/104), none otherwise. An
 * audit verdict never carries an anchor of its own: the audit role punishes the anchor the
 * stream role recorded for the stream, never a name the moderation notice implies.
 * The event time is eventMs when sent, else the payload's ts (s) or sendts (ms), else notifyMs.
 *
 * @param ev zeroed by the caller; on success owns what it points to, on failure left zeroed.
 * @param v on failure: 400 (malformed JSON, a missing or malformed field, named), 401
 *        (signature missing or mismatched, notifyMs stale: auth_failure says which), 503 (no
 *        secret) or 500 (out of memory). @returns 0 or -1. Thread-safe.
 */
__attribute__((warn_unused_result)) int agora_map(struct agora *ag,
                                                  const struct webhook_request *req,
                                                  struct webhook_event *ev,
                                                  struct webhook_verdict *v);

#endif
