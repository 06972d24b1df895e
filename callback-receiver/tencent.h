/* tencent.h: Tencent Cloud CSS callbacks: parse, verify (sign = MD5(key + t)) and map to an event.
 */
#ifndef LIVEFLOW_RECEIVER_TENCENT_H
#define LIVEFLOW_RECEIVER_TENCENT_H

#include <stddef.h>
#include <stdint.h>

#include "webhook.h"

#define TENCENT_KEY_MAX 256 /* longest accepted callback key, in bytes */

/* Every topic tencent_map() may choose, NULL-terminated. */
extern const char *const tencent_topics[];

/* The verifier: the callback keys and the grace period. Immutable once made, so thread-safe. */
struct tencent;

/**
 * @brief Makes a verifier. keys is LIVEFLOW_TENCENT_KEY: comma-separated, blanks around each
 * key ignored, several valid at once during a rotation; NULL or empty means no key, and then
 * every callback is refused with 503 (check tencent_key_count() to warn at startup).
 * grace_s: a callback is accepted until t + grace_s (t is Tencent's expiry time).
 * @returns the verifier (the caller frees it with tencent_destroy()), or NULL with errstr set
 * (a key longer than TENCENT_KEY_MAX, out of memory). keys is copied.
 */
struct tencent *tencent_new(const char *keys, long long grace_s, char *errstr, size_t errstr_size);

/** @brief Frees the verifier and wipes its keys; NULL is fine. */
void tencent_destroy(struct tencent *tc);

/** @brief How many keys are configured (0: the endpoint answers 503). */
size_t tencent_key_count(const struct tencent *tc);

/**
 * @brief Reads one callback body (req->body, the exact bytes received), checks its signature
 * against every key (every type must carry t and sign), and fills ev:
 *   1 stream.begin (StreamBegin) and 0 stream.end (StreamEnd) on live.stream;
 *   100 record.file (RecordFile) and 332 record.status (RecordStatus) on live.record;
 *   200 snapshot (Snapshot) on live.snapshot;
 *   317 audit.image and 315 audit.audio (AuditVerdict, source tencent.image / tencent.audio)
 *   on live.audit; 315 documents no suggestion, so HitFlag 1 becomes "Review", 0 "Pass";
 *   every other type (321, 314, 348, unknown) "other" with a null payload on live.other.
 * The typed ones need their stream (stream_id; streamId for 317) and their payload's required
 * fields (100: file_id or record_file_id, video_url; 332: record_event; 200: pic_url or
 * pic_full_url, create_time; 317: suggestion; 315: HitFlag or suggestion); optional fields
 * that are malformed are left out, the raw body keeps them. Vendor times in seconds become
 * ms. The event time is event_time, else the file's end_time (100), create_time (200) or
 * screenshotTime (317), else now_ms. anchor_id and room_id come from stream_param's query
 * string. event_id is the lowercase hex SHA-256 of "tencent|<type>|<key>",
 * key being "<stream_id>|<sequence>" for 0 and 1, the natural key of vendor-callbacks §1.6
 * (a JSON array of texts) for the others, else the body without t and sign (sorted, compact);
 * so a retry with a new t and sign keeps its id. Integers may come as numbers or decimal text.
 * req->now_ms, the receive time (Unix ms), checks t's expiry, and is the event time when
 * the body has no time of its own. Only the body and now_ms of req are read.
 * @param ev zeroed by the caller; on success owns what it points to (webhook_event_fini()),
 *        on failure is left zeroed. ev->raw is not set: the caller keeps the body.
 * @param v on failure: 400 (malformed JSON, a missing or malformed field, named), 401 (sign
 *        or t missing, mismatched, expired; auth_failure says which), 503 (no key configured)
 *        or 500 (out of memory). Untouched on success.
 * @returns 0 or -1. Thread-safe.
 */
__attribute__((warn_unused_result)) int tencent_map(const struct tencent *tc,
                                                    const struct webhook_request *req,
                                                    struct webhook_event *ev,
                                                    struct webhook_verdict *v);

/**
 * @brief tencent_map() for a caller whose source was vouched for (a path token or a source
 * allowlist is configured and was passed): a 321 (push abnormal) or 314 (relay) without t and
 * sign, as Tencent sends them, is accepted to live.other with event_type "other.unverified";
 * everything else is tencent_map(). @returns as tencent_map().
 */
__attribute__((warn_unused_result)) int tencent_map_vouched(const struct tencent *tc,
                                                            const struct webhook_request *req,
                                                            struct webhook_event *ev,
                                                            struct webhook_verdict *v);

#endif
