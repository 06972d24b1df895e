/*
 * fuzz.h: what the libFuzzer targets share: avro-c's codec and splitting an input into lines;
 * and for the receiver's (fuzz_events.c, fuzz_receiver.c) the Standard Webhooks secret and
 * clock they run with, the request's Standard Webhooks headers, signing a body as a sender
 * would, and the envelope the receiver makes of an accepted event.
 */
#ifndef LIVEFLOW_TEST_FUZZ_H
#define LIVEFLOW_TEST_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "crypto.h"
#include "webhook.h"

/* whsec_ + base64("fuzz-hmac-secret-32-bytes-long!!") */
#define HMAC_SECRET "whsec_ZnV6ei1obWFjLXNlY3JldC0zMi1ieXRlcy1sb25nISE="
#define HMAC_KEY    "fuzz-hmac-secret-32-bytes-long!!"
#define NOW_MS      1764000000000LL

/* avro-c's codec (schemas/event.avsc); a target that cannot have it aborts. */
static inline struct codec *fuzz_codec_new(void)
{
        char errstr[256];
        struct codec *c = codec_new(errstr, sizeof(errstr));

        if (!c) {
                fprintf(stderr, "codec_new: %s\n", errstr);
                abort();
        }
        return c;
}

/* Splits off the text up to the next '\n' into a NUL-terminated copy (at most cap - 1 bytes; a
 * NUL byte ends it early) and moves *p past the '\n'. */
static inline void fuzz_take_line(const char **p, const char *end, char *out, size_t cap)
{
        const char *nl = memchr(*p, '\n', (size_t)(end - *p));
        size_t n = (size_t)((nl ? nl : end) - *p);

        snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), *p);
        *p = nl ? nl + 1 : end;
}

/* The value of the Standard Webhooks header name of a request with id, ts and sig; NULL when
 * name is another header. */
static inline const char *fuzz_webhook_header(const char *name, const char *id, const char *ts,
                                              const char *sig)
{
        if (strcasecmp(name, "webhook-id") == 0)
                return id;
        if (strcasecmp(name, "webhook-timestamp") == 0)
                return ts;
        if (strcasecmp(name, "webhook-signature") == 0)
                return sig;
        return NULL;
}

/* The signature "v1,<base64 HMAC-SHA256>" of id.ts.body under HMAC_KEY, as a sender signs it.
 * @returns 0, or -1 when it cannot be computed. */
static inline int fuzz_webhook_sign(const char *id, const char *ts, const void *body, size_t len,
                                    char *sig, size_t sig_size)
{
        const void *parts[] = {id, ".", ts, ".", body};
        const size_t lens[] = {strlen(id), 1, strlen(ts), 1, len};
        unsigned char mac[32];
        char b64[64];

        if (crypto_hmac_sha256(HMAC_KEY, strlen(HMAC_KEY), parts, lens, 5, mac) != 0)
                return -1;
        crypto_base64_encode(mac, sizeof(mac), b64, sizeof(b64));
        snprintf(sig, sig_size, "v1,%s", b64);
        return 0;
}

/* The envelope the receiver makes of the accepted ev, raw being its body as received. */
static inline struct envelope fuzz_envelope(const struct webhook_event *ev, const void *raw,
                                            size_t raw_len)
{
        return webhook_envelope(ev, NOW_MS, "0123456789abcdef0123456789abcdef", raw, raw_len);
}

#endif
