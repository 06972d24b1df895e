/* crypto.h: the hashes and MACs liveflow's signatures need, on OpenSSL. */
#ifndef LIVEFLOW_CRYPTO_H
#define LIVEFLOW_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

/** @brief The n bytes of d as lowercase hex; out must hold 2 * n + 1 bytes. */
void crypto_hex(const unsigned char *d, size_t n, char *out);

/** @brief Lowercase hex MD5 of data; out must hold 33 bytes. */
void crypto_md5_hex(const void *data, size_t len, char *out);

/** @brief Lowercase hex SHA-256 of data; out must hold 65 bytes. */
void crypto_sha256_hex(const void *data, size_t len, char *out);

/* A SHA-256 context kept for many hashes (one thread at a time): no allocation per hash. */
struct crypto_sha256;

/** @brief @returns a context (crypto_sha256_destroy() frees it), or NULL when out of memory. */
struct crypto_sha256 *crypto_sha256_new(void);

/** @brief Frees h; NULL is fine. */
void crypto_sha256_destroy(struct crypto_sha256 *h);

/** @brief crypto_sha256_hex() on h's context ("" when OpenSSL fails); h NULL: without one. */
void crypto_sha256_hex_with(struct crypto_sha256 *h, const void *data, size_t len, char *out);

/**
 * @brief Lowercase hex SHA-256 of the concatenation of n parts (no copy of them is made); out
 * must hold 65 bytes, and is "" when OpenSSL fails.
 */
void crypto_sha256_hex_parts(const void *const parts[], const size_t part_lens[], size_t n,
                             char *out);

/** @brief HMAC-SHA256 of the concatenation of n parts; mac receives 32 bytes. @returns 0 or -1. */
int crypto_hmac_sha256(const void *key, size_t key_len, const void *const parts[],
                       const size_t part_lens[], size_t n, unsigned char mac[32]);

/** @brief Standard base64 of data into out (NUL-terminated); out_size >= 4*ceil(len/3)+1. */
void crypto_base64_encode(const void *data, size_t len, char *out, size_t out_size);

/** @brief Decodes standard base64; @returns the decoded length, or -1 when malformed or too long.
 */
int crypto_base64_decode(const char *s, size_t len, unsigned char *out, size_t out_size);

/** @brief Constant-time equality of two byte strings of the same length. */
bool crypto_equal(const void *a, const void *b, size_t len);

/** @brief Constant-time, case-insensitive equality of two hex strings of length len. */
bool crypto_hex_equal_nocase(const char *a, const char *b, size_t len);

#endif
