/* test_crypto.c: known-answer tests of the signature primitives. */
#include <criterion/criterion.h>
#include <string.h>

#include "crypto.h"

Test(crypto, md5_hex_matches_rfc1321)
{
        char out[33];

        crypto_md5_hex("abc", 3, out);
        cr_assert_str_eq(out, "900150983cd24fb0d6963f7d28e17f72");
}

/* Standard Webhooks reference vector (vendor-callbacks.md 5.1). */
Test(crypto, hmac_sha256_base64_matches_standard_webhooks_vector)
{
        const char *secret_b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        const char *id = "msg_p5jXN8AQM9LWM0D4loKWxJek", *ts = "1614265330",
                   *body = "{\"test\": 2432232314}";
        unsigned char key[64], mac[32];
        char b64[64];
        int klen = crypto_base64_decode(secret_b64, strlen(secret_b64), key, sizeof(key));
        const void *parts[] = {id, ".", ts, ".", body};
        const size_t lens[] = {strlen(id), 1, strlen(ts), 1, strlen(body)};

        cr_assert_gt(klen, 0);
        cr_assert_eq(crypto_hmac_sha256(key, (size_t)klen, parts, lens, 5, mac), 0);
        crypto_base64_encode(mac, 32, b64, sizeof(b64));
        cr_assert_str_eq(b64, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

Test(crypto, base64_decode_rejects_malformed_input)
{
        unsigned char out[64];

        cr_assert_eq(crypto_base64_decode("abc", 3, out, sizeof(out)), -1);
        cr_assert_eq(crypto_base64_decode("ab!d", 4, out, sizeof(out)), -1);
        cr_assert_eq(crypto_base64_decode("a=bc", 4, out, sizeof(out)), -1);
        cr_assert_eq(crypto_base64_decode("YQ==", 4, out, sizeof(out)), 1);
        cr_assert_eq(out[0], 'a');
}

Test(crypto, hex_compare_ignores_case_but_not_content)
{
        cr_assert(crypto_hex_equal_nocase("ab12ef", "AB12EF", 6));
        cr_assert_not(crypto_hex_equal_nocase("ab12ef", "ab12ee", 6));
        cr_assert(crypto_equal("same", "same", 4));
        cr_assert_not(crypto_equal("same", "sane", 4));
}

Test(crypto, sha256_hex_matches_fips180_vector)
{
        char out[65];

        crypto_sha256_hex("abc", 3, out);
        cr_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* FIPS 180-2's two-block message, hashed in uneven parts (one empty): the digest of the whole. */
Test(crypto, sha256_hex_of_parts_is_that_of_their_concatenation)
{
        const char *msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        const void *parts[] = {msg, msg + 1, msg + 1, msg + 40};
        const size_t lens[] = {1, 0, 39, strlen(msg) - 40};
        char out[65];

        crypto_sha256_hex_parts(parts, lens, 4, out);
        cr_assert_str_eq(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        crypto_sha256_hex_parts(parts, lens, 0, out);
        cr_assert_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* One context for many hashes: each is that of its own input, whatever came before. */
Test(crypto, a_kept_sha256_context_hashes_each_input_afresh)
{
        const char *msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        struct crypto_sha256 *h = crypto_sha256_new();
        char out[65];

        cr_assert(h != NULL);
        for (int round = 0; round < 2; round++) {
                crypto_sha256_hex_with(h, "abc", 3, out);
                cr_assert_str_eq(
                        out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
                crypto_sha256_hex_with(h, msg, strlen(msg), out);
                cr_assert_str_eq(
                        out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
                crypto_sha256_hex_with(h, "", 0, out);
                cr_assert_str_eq(
                        out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        }
        crypto_sha256_hex_with(NULL, "abc", 3, out);
        cr_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        crypto_sha256_destroy(h);
        crypto_sha256_destroy(NULL);
}

Test(crypto, hex_writes_each_byte_as_two_lowercase_digits)
{
        const unsigned char d[] = {0x00, 0x0f, 0xa5, 0xff};
        char out[2 * sizeof(d) + 1];

        memset(out, 'x', sizeof(out));
        crypto_hex(d, sizeof(d), out);
        cr_assert_str_eq(out, "000fa5ff");
        crypto_hex(d, 0, out);
        cr_assert_str_eq(out, "");
}
