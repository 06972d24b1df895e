/*
 * stdwebhooks.c: verifies Standard Webhooks v1 signatures (spec 1.0.0, "Verifying webhook
 * authenticity"): HMAC-SHA256 keyed with the base64-decoded secret over
 * "<webhook-id>.<webhook-timestamp>.<body>", sent as "v1,<base64>" in a space-separated list.
 */
#include "stdwebhooks.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "fields.h"
#include "strlist.h"

#define SECRET_PREFIX   "whsec_"
#define SECRET_TEXT_MAX 128 /* base64 of STDWEBHOOKS_KEY_MAX bytes is 88 characters */
#define MAC_LEN         32
#define SIG_TEXT_MAX    64 /* base64 of a 32-byte MAC is 44 characters */
#define TIMESTAMP_MAX   19 /* digits of INT64_MAX */

struct stdwebhooks_key {
        unsigned char bytes[STDWEBHOOKS_KEY_MAX];
        size_t len;
};

struct stdwebhooks {
        struct stdwebhooks_key keys[STDWEBHOOKS_SECRETS_MAX];
        size_t key_cnt;
        long long tolerance_s;
};

/* ------------------------------------------------------------ secrets */

void stdwebhooks_destroy(struct stdwebhooks *sw)
{
        if (!sw)
                return;
        explicit_bzero(sw->keys, sizeof(sw->keys));
        free(sw);
}

/* Decodes one secret (blanks trimmed, prefix optional) into the next key slot. */
static int add_secret(struct stdwebhooks *sw, const char *s, size_t len, char *errstr,
                      size_t errstr_size)
{
        size_t prefix_len = strlen(SECRET_PREFIX);
        unsigned char bytes[SECRET_TEXT_MAX];
        char text[SECRET_TEXT_MAX + 4];
        int n = -1;

        if (sw->key_cnt == STDWEBHOOKS_SECRETS_MAX) {
                snprintf(errstr, errstr_size, "LIVEFLOW_HMAC_SECRET: more than %d secrets",
                         STDWEBHOOKS_SECRETS_MAX);
                return -1;
        }
        if (len >= prefix_len && memcmp(s, SECRET_PREFIX, prefix_len) == 0) {
                s += prefix_len;
                len -= prefix_len;
        }
        /* The reference libraries accept unpadded base64: pad it for the strict decoder. */
        if (len > 0 && len <= SECRET_TEXT_MAX && len % 4 != 1) {
                memcpy(text, s, len);
                while (len % 4)
                        text[len++] = '=';
                n = crypto_base64_decode(text, len, bytes, sizeof(bytes));
                explicit_bzero(text, sizeof(text));
        }
        if (n < STDWEBHOOKS_KEY_MIN || n > STDWEBHOOKS_KEY_MAX) {
                explicit_bzero(bytes, sizeof(bytes));
                snprintf(
                        errstr, errstr_size,
                        "LIVEFLOW_HMAC_SECRET: secret %zu is not whsec_ + base64 of %d to %d bytes",
                        sw->key_cnt + 1, STDWEBHOOKS_KEY_MIN, STDWEBHOOKS_KEY_MAX);
                return -1;
        }
        memcpy(sw->keys[sw->key_cnt].bytes, bytes, (size_t)n);
        sw->keys[sw->key_cnt].len = (size_t)n;
        sw->key_cnt++;
        explicit_bzero(bytes, sizeof(bytes));
        return 0;
}

/* strlist_each()'s view of add_secret(). */
struct secret_adder {
        struct stdwebhooks *sw;
        char *errstr;
        size_t errstr_size;
};

static int add_listed_secret(const char *secret, size_t len, void *arg)
{
        struct secret_adder *a = arg;

        return add_secret(a->sw, secret, len, a->errstr, a->errstr_size);
}

struct stdwebhooks *stdwebhooks_new(const char *secrets, long long tolerance_s, char *errstr,
                                    size_t errstr_size)
{
        struct stdwebhooks *sw = calloc(1, sizeof(*sw));
        struct secret_adder adder = {sw, errstr, errstr_size};

        if (!sw) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        sw->tolerance_s = tolerance_s;
        if (strlist_each(secrets, add_listed_secret, &adder) == -1) {
                stdwebhooks_destroy(sw);
                return NULL;
        }
        return sw;
}

size_t stdwebhooks_secret_count(const struct stdwebhooks *sw)
{
        return sw ? sw->key_cnt : 0;
}

/* ------------------------------------------------------------ headers */

int stdwebhooks_parse_timestamp(const char *s, int64_t *out)
{
        size_t len = strspn(s, "0123456789");

        /* Canonical text only: the signed bytes are the header's, and a sender signs its own
         * rendering of the number, which never has a sign, blanks or leading zeros. */
        if (len == 0 || len > TIMESTAMP_MAX || s[len] != '\0' || (s[0] == '0' && len > 1))
                return -1;
        return fields_parse_decimal(s, out);
}

static bool is_valid_id(const char *id)
{
        size_t len = strlen(id);

        if (len > STDWEBHOOKS_ID_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)id[i];

                if (c == '.' || c <= ' ' || c > '~')
                        return false;
        }
        return true;
}

/* ------------------------------------------------------------ signatures */

/* HMAC of "id.timestamp.body" under every key; macs[i] belongs to key i. */
static int compute_macs(const struct stdwebhooks *sw, const char *id, const char *timestamp,
                        const void *body, size_t len, unsigned char macs[][MAC_LEN])
{
        const void *const parts[] = {id, ".", timestamp, ".", body ? body : ""};
        const size_t part_lens[] = {strlen(id), 1, strlen(timestamp), 1, body ? len : 0};

        for (size_t i = 0; i < sw->key_cnt; i++)
                if (crypto_hmac_sha256(sw->keys[i].bytes, sw->keys[i].len, parts, part_lens, 5,
                                       macs[i]) == -1)
                        return -1;
        return 0;
}

/*
 * Walks the space-separated list; every well-formed v1 entry is compared with every MAC, with
 * no early exit, so the time taken says nothing about which entry or key matched. Other
 * versions (v1a, ...) and malformed entries are skipped: some other entry must match.
 */
static bool any_signature_matches(const struct stdwebhooks *sw, const char *list,
                                  unsigned char macs[][MAC_LEN], size_t *v1_cnt)
{
        bool is_match = false;

        *v1_cnt = 0;
        while (*list) {
                size_t len = strcspn(list, " ");
                unsigned char sig[MAC_LEN + 1];
                int n = -1;

                if (len > 3 && len - 3 <= SIG_TEXT_MAX && memcmp(list, "v1,", 3) == 0) {
                        (*v1_cnt)++;
                        n = crypto_base64_decode(list + 3, len - 3, sig, sizeof(sig));
                }
                for (size_t i = 0; n == MAC_LEN && i < sw->key_cnt; i++)
                        is_match |= crypto_equal(sig, macs[i], MAC_LEN);
                list += len;
                list += strspn(list, " ");
        }
        return is_match;
}

/* ------------------------------------------------------------ the verb */

static enum stdwebhooks_result fail(enum stdwebhooks_result r, char *why, size_t why_size,
                                    const char *message)
{
        snprintf(why, why_size, "%s", message);
        return r;
}

static enum stdwebhooks_result check_age(const struct stdwebhooks *sw, int64_t ts, int64_t now_s,
                                         char *why, size_t why_size)
{
        /* now_s +- tolerance cannot overflow (both are small); ts is compared, not subtracted. */
        if (ts < now_s - sw->tolerance_s) {
                snprintf(why, why_size, "webhook-timestamp: %" PRId64 " s old, tolerance %lld s",
                         now_s - ts, sw->tolerance_s);
                return STDWEBHOOKS_EXPIRED;
        }
        if (ts > now_s + sw->tolerance_s) {
                snprintf(why, why_size,
                         "webhook-timestamp: %" PRId64 " s in the future, tolerance %lld s",
                         ts - now_s, sw->tolerance_s);
                return STDWEBHOOKS_EXPIRED;
        }
        return STDWEBHOOKS_OK;
}

enum stdwebhooks_result stdwebhooks_verify(const struct stdwebhooks *sw, const char *id,
                                           const char *timestamp, const char *signature,
                                           const void *body, size_t len, int64_t now_s, char *why,
                                           size_t why_size)
{
        unsigned char macs[STDWEBHOOKS_SECRETS_MAX][MAC_LEN];
        bool is_match;
        size_t v1_cnt;
        int64_t ts;

        if (!id || !*id)
                return fail(STDWEBHOOKS_MISSING, why, why_size, "webhook-id is missing");
        if (!timestamp || !*timestamp)
                return fail(STDWEBHOOKS_MISSING, why, why_size, "webhook-timestamp is missing");
        if (!signature || !*signature)
                return fail(STDWEBHOOKS_MISSING, why, why_size, "webhook-signature is missing");
        if (!is_valid_id(id)) {
                snprintf(why, why_size,
                         "webhook-id: expected at most %d printable ASCII characters without '.'",
                         STDWEBHOOKS_ID_MAX);
                return STDWEBHOOKS_MISMATCH;
        }
        if (stdwebhooks_parse_timestamp(timestamp, &ts) == -1)
                return fail(STDWEBHOOKS_MISMATCH, why, why_size,
                            "webhook-timestamp: expected Unix seconds in decimal");
        if (sw->key_cnt == 0)
                return fail(STDWEBHOOKS_MISMATCH, why, why_size,
                            "webhook-signature: no secret to check it with");
        if (compute_macs(sw, id, timestamp, body, len, macs) == -1)
                return fail(STDWEBHOOKS_MISMATCH, why, why_size,
                            "webhook-signature: cannot be checked (HMAC failed)");
        is_match = any_signature_matches(sw, signature, macs, &v1_cnt);
        explicit_bzero(macs, sizeof(macs));
        if (!is_match)
                return fail(STDWEBHOOKS_MISMATCH, why, why_size,
                            v1_cnt ? "webhook-signature: no v1 signature matches"
                                   : "webhook-signature: no v1 signature");
        return check_age(sw, ts, now_s, why, why_size);
}

const char *stdwebhooks_result_name(enum stdwebhooks_result r)
{
        switch (r) {
        case STDWEBHOOKS_MISSING:
                return "missing";
        case STDWEBHOOKS_MISMATCH:
                return "mismatch";
        case STDWEBHOOKS_EXPIRED:
                return "expired";
        case STDWEBHOOKS_OK:
                break;
        }
        return NULL;
}
