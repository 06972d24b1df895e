/*
 * events.h: POST /v1/events, the app gateway's batches of audience and profile events
 * (CONTRACT §2 "Events body"): verified as the other internal endpoints (internal.h), validated
 * whole, and mapped to one Kafka event per element.
 */
#ifndef LIVEFLOW_RECEIVER_EVENTS_H
#define LIVEFLOW_RECEIVER_EVENTS_H

#include <stddef.h>

#include "contract.h"
#include "webhook.h"

struct internal;
struct metrics;

#define EVENTS_TOPIC_VIEWER      LF_TOPIC_VIEWER
#define EVENTS_TOPIC_INTERACTION LF_TOPIC_INTERACTION

/* Column sizes of what the audience role stores (sql/040_audience.sql). */
#define EVENTS_ID_MAX        64  /* event_id, audience_id, anchor_id, room_id */
#define EVENTS_STREAM_ID_MAX 255 /* stream_id */
#define EVENTS_LIKE_MAX      1000000
#define EVENTS_TAGS_MAX      64
#define EVENTS_TAG_MAX       32 /* characters per tag (tags.name) */

/**
 * @brief Verifies a request with internal_verify() under the endpoint name "events", then
 * reads {"events":[...]} (also inside a Standard Webhooks "data" object): 1 to max_batch
 * elements, each an object with event_id, type, ts and the fields its type needs, ids as JSON
 * strings or integers (an integer means its decimal text) no longer than their columns.
 * The first invalid element refuses the whole batch: 400 "events[<i>].<field>: ...";
 * more than max_batch elements: 413. Types go to:
 *  - enter, exit, heartbeat -> live.viewer, "viewer.enter" / ".exit" / ".heartbeat";
 *  - chat, like, follow, unfollow, share -> live.interaction, "interaction.<type>";
 *  - profile -> live.interaction, "profile.update", keyed by the subject's id;
 * with payload AudienceEvent or Profile (schemas/event.avsc), the room events keyed by stream_id,
 * else room_id (else, for a follow, anchor_id). Each element's event_id is the lowercase hex
 * SHA-256 of "internal|event|<event_id>", so a batch sent again is deduplicated downstream.
 * Each item's raw is its element's compact JSON text. metrics may be NULL. A batch larger
 * than LIVEFLOW_EVENTS_MAX_BODY_BYTES is refused 413 by the receiver before this is called.
 * @returns 0 with batch filled (the caller frees it), or -1 with v set (200: a replay).
 */
__attribute__((warn_unused_result)) int events_map(struct internal *in, struct metrics *metrics,
                                                   long long max_batch,
                                                   const struct webhook_request *req,
                                                   struct webhook_batch *batch,
                                                   struct webhook_verdict *v);

#endif
