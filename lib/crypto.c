/* crypto.c: thin wrappers over OpenSSL so callers never hand-roll a hash, a MAC or base64. */
#include "crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/*
 * OpenSSL 3 looks an algorithm up in its provider store (under a lock) on every use of
 * EVP_md5() and friends; fetching each once keeps that lookup off the request path.
 */
static EVP_MD *md5_alg, *sha256_alg;
static EVP_MAC *hmac_alg;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_algorithms(void)
{
        md5_alg = EVP_MD_fetch(NULL, "MD5", NULL);
        sha256_alg = EVP_MD_fetch(NULL, "SHA256", NULL);
        hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static const EVP_MD *md5_md(void)
{
        pthread_once(&fetch_once, fetch_algorithms);
        return md5_alg ? md5_alg : EVP_md5();
}

static const EVP_MD *sha256_md(void)
{
        pthread_once(&fetch_once, fetch_algorithms);
        return sha256_alg ? sha256_alg : EVP_sha256();
}

void crypto_hex(const unsigned char *d, size_t n, char *out)
{
        static const char hex[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = hex[d[i] >> 4];
                out[2 * i + 1] = hex[d[i] & 15];
        }
        out[2 * n] = '\0';
}

static void digest_hex(const EVP_MD *md, const void *data, size_t len, char *out)
{
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int n = 0;

        if (EVP_Digest(data, len, d, &n, md, NULL) != 1) {
                out[0] = '\0';
                return;
        }
        crypto_hex(d, n, out);
}

void crypto_md5_hex(const void *data, size_t len, char *out)
{
        digest_hex(md5_md(), data, len, out);
}

void crypto_sha256_hex(const void *data, size_t len, char *out)
{
        digest_hex(sha256_md(), data, len, out);
}

struct crypto_sha256 {
        EVP_MD_CTX *ctx;
        const EVP_MD *md;
};

struct crypto_sha256 *crypto_sha256_new(void)
{
        struct crypto_sha256 *h = malloc(sizeof(*h));

        if (h && !(h->ctx = EVP_MD_CTX_new())) {
                free(h);
                return NULL;
        }
        if (h)
                h->md = sha256_md();
        return h;
}

void crypto_sha256_destroy(struct crypto_sha256 *h)
{
        if (!h)
                return;
        EVP_MD_CTX_free(h->ctx);
        free(h);
}

void crypto_sha256_hex_with(struct crypto_sha256 *h, const void *data, size_t len, char *out)
{
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int n = 0;

        if (!h) {
                crypto_sha256_hex(data, len, out);
                return;
        }
        /* The same digest on the same context: OpenSSL re-initialises its state in place. */
        if (EVP_DigestInit_ex(h->ctx, h->md, NULL) != 1 ||
            EVP_DigestUpdate(h->ctx, data, len) != 1 || EVP_DigestFinal_ex(h->ctx, d, &n) != 1) {
                out[0] = '\0';
                return;
        }
        crypto_hex(d, n, out);
}

void crypto_sha256_hex_parts(const void *const parts[], const size_t part_lens[], size_t n,
                             char *out)
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        int ok = ctx && EVP_DigestInit_ex(ctx, sha256_md(), NULL) == 1;

        for (size_t i = 0; ok && i < n; i++)
                ok = EVP_DigestUpdate(ctx, parts[i], part_lens[i]) == 1;
        ok = ok && EVP_DigestFinal_ex(ctx, d, &len) == 1;
        EVP_MD_CTX_free(ctx);
        if (!ok) {
                out[0] = '\0';
                return;
        }
        crypto_hex(d, len, out);
}

int crypto_hmac_sha256(const void *key, size_t key_len, const void *const parts[],
                       const size_t part_lens[], size_t n, unsigned char mac[32])
{
        EVP_MAC_CTX *ctx;
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                               OSSL_PARAM_construct_end()};
        size_t out_len = 0;
        int rc = -1;

        pthread_once(&fetch_once, fetch_algorithms);
        ctx = hmac_alg ? EVP_MAC_CTX_new(hmac_alg) : NULL;
        if (!ctx || EVP_MAC_init(ctx, key, key_len, params) != 1)
                goto out;
        for (size_t i = 0; i < n; i++)
                if (EVP_MAC_update(ctx, parts[i], part_lens[i]) != 1)
                        goto out;
        if (EVP_MAC_final(ctx, mac, &out_len, 32) == 1 && out_len == 32)
                rc = 0;
out:
        EVP_MAC_CTX_free(ctx);
        return rc;
}

void crypto_base64_encode(const void *data, size_t len, char *out, size_t out_size)
{
        if (out_size < 4 * ((len + 2) / 3) + 1) {
                out[0] = '\0';
                return;
        }
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}

int crypto_base64_decode(const char *s, size_t len, unsigned char *out, size_t out_size)
{
        unsigned char tmp[512];
        int n, pad = 0;

        if (len == 0 || len % 4 != 0 || (len / 4) * 3 > sizeof(tmp))
                return -1;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (c == '=') {
                        if (i < len - 2)
                                return -1;
                        pad++;
                } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                             (c >= '0' && c <= '9') || c == '+' || c == '/') ||
                           pad) {
                        return -1;
                }
        }
        /* EVP_DecodeBlock counts the padding as zero bytes; take it off. */
        n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
        if (n < 0 || n - pad < 0 || (size_t)(n - pad) > out_size)
                return -1;
        memcpy(out, tmp, (size_t)(n - pad));
        OPENSSL_cleanse(tmp, sizeof(tmp));
        return n - pad;
}

bool crypto_equal(const void *a, const void *b, size_t len)
{
        return CRYPTO_memcmp(a, b, len) == 0;
}

bool crypto_hex_equal_nocase(const char *a, const char *b, size_t len)
{
        unsigned char diff = 0;

        /* ASCII letters differ from their capitals only in bit 0x20; digits are unaffected. */
        for (size_t i = 0; i < len; i++)
                diff |= (unsigned char)((a[i] | 0x20) ^ (b[i] | 0x20));
        return diff == 0;
}
