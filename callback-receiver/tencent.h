/* tencent.h: Tencent Cloud CSS callbacks: parse, verify (sign = MD5(key + t)) and map to an event. */
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
struct tencent *tencent_new(const char *keys, long long grace_s, char *errstr,
                            size_t errstr_size);

/** @brief Frees the verifier and wipes its keys; NULL is fine. */
void tencent_destroy(struct tencent *tc);

/** @brief How many keys are configured (0: the endpoint answers 503). */
size_t tencent_key_count(const struct tencent *tc);

/**
 * @brief Reads one callback body (the exact bytes received), checks its signature against
 * every key, and fills ev: event 1 becomes stream.begin (payload StreamBegin) and 0
 * stream.end (StreamEnd) on live.stream; every other type becomes "other" with a null
 * payload on live.other. event_id is the lowercase hex SHA-256 of "tencent|<type>|<key>",
 * key being "<stream_id>|<sequence>" for 0 and 1, the natural key of vendor-callbacks §1.6
 * (a JSON array of texts) for the others, else the body without t and sign (sorted, compact);
 * so a retry with a new t and sign keeps its id. Integers may come as numbers or decimal text.
 * @param now_ms the receive time (Unix ms): checks t's expiry, and is the event time when
 *        the body has no event_time.
 * @param ev zeroed by the caller; on success owns what it points to (webhook_event_fini()),
 *        on failure is left zeroed. ev->raw is not set: the caller keeps the body.
 * @param v on failure: 400 (malformed JSON, a missing or malformed field, named), 401 (sign
 *        or t missing, mismatched, expired; auth_failure says which), 503 (no key configured)
 *        or 500 (out of memory). Untouched on success.
 * @returns 0 or -1. Thread-safe.
 */
__attribute__((warn_unused_result)) int tencent_map(const struct tencent *tc, const void *body,
                                                    size_t len, int64_t now_ms,
                                                    struct webhook_event *ev,
                                                    struct webhook_verdict *v);

#endif
