/*
 * alibaba.h: Alibaba Cloud ApsaraVideo Live callbacks at /callbacks/alibaba: ingest and
 * interruption as GET with the event in the query string, recording, snapshot and moderation
 * as POST JSON; ALI-LIVE-SIGNATURE = md5hex(domain|ALI-LIVE-TIMESTAMP|key).
 */
#ifndef LIVEFLOW_RECEIVER_ALIBABA_H
#define LIVEFLOW_RECEIVER_ALIBABA_H

#include <stddef.h>

#include "webhook.h"

struct settings;

#define ALIBABA_KEY_MAX    256 /* longest accepted auth key, in bytes */
#define ALIBABA_DOMAIN_MAX 253 /* longest DNS name */

/* The verifier and mapper: keys, domains, skew. Immutable once made, so thread-safe. */
struct alibaba;

/** @brief Checks the Alibaba settings of s (--check-config). @returns 0, or -1 with errstr. */
__attribute__((warn_unused_result)) int alibaba_check_config(const struct settings *s, char *errstr,
                                                             size_t errstr_size);

/**
 * @brief Makes the endpoint from s: LIVEFLOW_ALIBABA_KEY (comma-separated: two during a
 * rotation, both valid; unset: every callback is answered 503), LIVEFLOW_ALIBABA_DOMAIN
 * (comma-separated ingest domains), LIVEFLOW_ALIBABA_MAX_SKEW_S.
 * @returns the endpoint (alibaba_destroy() frees it), or NULL with errstr set.
 */
struct alibaba *alibaba_new(const struct settings *s, char *errstr, size_t errstr_size);

/** @brief Frees it and wipes its keys; NULL is fine. */
void alibaba_destroy(struct alibaba *al);

/** @brief How many keys are configured (0: the endpoint answers 503). */
size_t alibaba_key_count(const struct alibaba *al);

/**
 * @brief Verifies one callback and fills ev.
 *
 * Signature: ALI-LIVE-SIGNATURE = lowercase hex MD5(domain + "|" + ALI-LIVE-TIMESTAMP + "|" +
 * key) for any key; the domain is one of LIVEFLOW_ALIBABA_DOMAIN (the ingest domains; when the
 * list is empty, a GET's `app`), and for a POST also the host the callback was sent to (its
 * Host header: Alibaba signs recording and snapshot callbacks with the callback URL's host).
 * Compared in constant time, hex case ignored; ALI-LIVE-TIMESTAMP within
 * LIVEFLOW_ALIBABA_MAX_SKEW_S of req->now_ms either way.
 *
 * A GET (req->body NULL) is an ingest callback, its fields in the query: action=publish ->
 * stream.begin, publish_done -> stream.end (live.stream), any other action "other"; the stream
 * is `id`, the event time `time` (s), anchor_id and room_id come from `usrargs` (the push URL's
 * parameters; the room defaults to the anchor). The event's raw text is the query as a JSON
 * object. event_id: hex SHA-256 of "alibaba|<action>|" + JSON [app, appname, id, time].
 *
 * A POST is JSON, whatever its Content-Type: a body with `uri` is a recording file
 * (record.file: file_id and video_url the OSS object, duration, start_time, stop_time), with
 * `event` a recording status (record.status), with a `result` array a moderation verdict
 * (audit.audio, or audit.image when no item has text details; the gravest suggestion wins;
 * no anchor of its own: the audit role punishes the anchor the stream role recorded), with
 * an OSS object or picture URL a snapshot (the body is undocumented: OssObject, oss_object,
 * pic_url or url); anything else "other". The stream is `stream`; anchor_id and room_id may
 * come from push_args (anchor_id / callback_anchor_id, room_id / callback_room_id).
 * event_id: "alibaba|<type>|" + the body's natural key (uri; domain, app, stream, event and
 * the signed timestamp; the moderation's timestamp), else the body itself.
 *
 * @param ev zeroed by the caller; on success owns what it points to (ev->raw included), on
 *        failure left zeroed.
 * @param v on failure: 400 (malformed, a missing field, named), 401 (signature missing,
 *        mismatched or outside the skew: auth_failure says which), 503 (no key) or 500.
 * @returns 0 or -1. Thread-safe.
 */
__attribute__((warn_unused_result)) int alibaba_map(const struct alibaba *al,
                                                    const struct webhook_request *req,
                                                    struct webhook_event *ev,
                                                    struct webhook_verdict *v);

#endif
