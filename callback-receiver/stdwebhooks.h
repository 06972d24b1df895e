/*
 * stdwebhooks.h: Standard Webhooks v1 verification (HMAC-SHA256 over "id.timestamp.body"),
 * without HTTP: the caller hands over the three header values and the raw body.
 */
#ifndef LIVEFLOW_RECEIVER_STDWEBHOOKS_H
#define LIVEFLOW_RECEIVER_STDWEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#define STDWEBHOOKS_SECRETS_MAX 8  /* secrets valid at once (a rotation needs two or three) */
#define STDWEBHOOKS_KEY_MIN     24 /* decoded key bytes, as the spec asks */
#define STDWEBHOOKS_KEY_MAX     64
#define STDWEBHOOKS_ID_MAX      255 /* longest accepted webhook-id, in bytes */

/* The outcome of stdwebhooks_verify(). */
enum stdwebhooks_result {
        STDWEBHOOKS_OK,
        STDWEBHOOKS_MISSING,  /* webhook-id, webhook-timestamp or webhook-signature absent or empty
                               */
        STDWEBHOOKS_MISMATCH, /* a malformed header, or no v1 signature matches any secret */
        STDWEBHOOKS_EXPIRED,  /* a matching signature, but the timestamp is outside the tolerance */
};

/* The secrets and the tolerance. Immutable once made, so thread-safe. */
struct stdwebhooks;

/**
 * @brief Makes a verifier. secrets is LIVEFLOW_HMAC_SECRET: comma-separated, blanks around each
 * ignored; each is "whsec_" + base64 of the key, and, as the reference libraries do, a secret
 * without the prefix is base64-decoded all the same (padding may be left out). A key must
 * decode to STDWEBHOOKS_KEY_MIN..STDWEBHOOKS_KEY_MAX bytes. NULL or empty means no secret:
 * stdwebhooks_secret_count() is then 0 and every request fails with STDWEBHOOKS_MISMATCH.
 * tolerance_s: how far webhook-timestamp may be from now, both ways.
 * @returns the verifier (free it with stdwebhooks_destroy()), or NULL with errstr naming the
 * secret by position, never by value. secrets is not kept.
 */
struct stdwebhooks *stdwebhooks_new(const char *secrets, long long tolerance_s, char *errstr,
                                    size_t errstr_size);

/** @brief Wipes the keys and frees the verifier; NULL is fine. */
void stdwebhooks_destroy(struct stdwebhooks *sw);

/** @brief How many secrets are configured. */
size_t stdwebhooks_secret_count(const struct stdwebhooks *sw);

/**
 * @brief Checks one request. id, timestamp and signature are the header values (each may be
 * NULL when absent). id must be 1..STDWEBHOOKS_ID_MAX printable ASCII bytes without '.' (a
 * '.' would make the signed content ambiguous); timestamp canonical decimal Unix seconds;
 * signature a space-separated list of "<version>,<base64>" of which only v1 is read. The
 * signature is checked before the timestamp's age, so STDWEBHOOKS_EXPIRED is only said of a
 * genuine request. Every v1 signature is compared with every key in constant time.
 * @param body the exact bytes received; may be NULL when len is 0.
 * @param why receives a message naming the header, safe to return to the caller.
 * @returns the outcome. Thread-safe.
 */
enum stdwebhooks_result stdwebhooks_verify(const struct stdwebhooks *sw, const char *id,
                                           const char *timestamp, const char *signature,
                                           const void *body, size_t len, int64_t now_s, char *why,
                                           size_t why_size);

/** @brief "missing", "mismatch" or "expired" (the auth_failure of a verdict); NULL for OK. */
const char *stdwebhooks_result_name(enum stdwebhooks_result r);

/**
 * @brief Parses a webhook-timestamp as stdwebhooks_verify() does: canonical decimal digits
 * (no sign, no leading zero, no blanks) within int64. @returns 0, or -1 when malformed.
 */
__attribute__((warn_unused_result)) int stdwebhooks_parse_timestamp(const char *s, int64_t *out);

#endif
