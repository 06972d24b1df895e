/*
 * test_stdwebhooks.c: Standard Webhooks v1 verification (callback-receiver/stdwebhooks.c)
 * against the published vectors, and the header, secret and tolerance rules around them.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../callback-receiver/stdwebhooks.h"
#include "support_stack.h"

/*
 * shared/payloads/standard-webhooks/signature-test-vector.json: the reference Python
 * library's test_sign_function vector (standard-webhooks repo, libraries/python/tests).
 */
#define LIB_SECRET    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define LIB_KEY_B64   "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define LIB_ID        "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define LIB_TS        "1614265330"
#define LIB_NOW       1614265330LL
#define LIB_BODY      "{\"test\": 2432232314}"
#define LIB_SIGNATURE "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/*
 * shared/payloads/internal-tipping/tip.created.json and tip.created.headers.json: the body
 * bytes exactly (no trailing newline) and the headers signed over them with the probe secret.
 */
#define TIP_SECRET    "whsec_cHJvYmUtaW50ZXJuYWwtdGlwLXdlYmhvb2stc2VjcmV0LTMyYiE="
#define TIP_ID        "msg_tip_01HX3V7N"
#define TIP_TS        "1714564800"
#define TIP_NOW       1714564800LL
#define TIP_SIGNATURE "v1,MFtcvPVO+Fux+u1B3Tv9eTKNSFINYC6yKpePBDh1YKg="
static const char tip_body[] =
        "{\"type\":\"reward.tip.created\",\"timestamp\":\"2024-05-01T12:00:00.000000Z\","
        "\"data\":{\"tip_id\":\"tip_01HX3V7N\",\"room_id\":\"test_stream\",\"from_user_id\":\"u_1001\","
        "\"to_user_id\":\"u_2002\",\"gift_id\":\"rocket\",\"quantity\":3,\"amount_minor\":29700,"
        "\"currency\":\"CNY\"}}";

/* Another key (33 bytes, so no base64 padding), for the wrong and rotated secret cases. */
#define OTHER_SECRET "whsec_b3RoZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXMh"

#define TOLERANCE_S 300

static struct stdwebhooks *sw;
static char why[200];

static void teardown(void)
{
        stdwebhooks_destroy(sw);
        sw = NULL;
}

TestSuite(stdwebhooks, .fini = teardown);

/* ------------------------------------------------------------ helpers */

static struct stdwebhooks *make(const char *secrets)
{
        char errstr[256];
        struct stdwebhooks *made = stdwebhooks_new(secrets, TOLERANCE_S, errstr, sizeof(errstr));

        cr_assert(made != NULL, "stdwebhooks_new: %s", errstr);
        return made;
}

static enum stdwebhooks_result verify(const char *id, const char *ts, const char *signature,
                                      const char *body, long long now_s)
{
        return stdwebhooks_verify(sw, id, ts, signature, body, body ? strlen(body) : 0, now_s, why,
                                  sizeof(why));
}

/* The tests' signer (support_stack.h), independent of the code under test: the first test
 * below checks it against the published vectors. */
static void sign(const char *key_b64, const char *id, const char *ts, const char *body,
                 char out[64])
{
        support_webhook_sign(key_b64, id, ts, body, strlen(body), out);
}

static void assert_result(enum stdwebhooks_result got, enum stdwebhooks_result want,
                          const char *in_why)
{
        cr_assert(eq(int, got, want), "result %d, want %d: %s", got, want, why);
        cr_assert(strstr(why, in_why) != NULL, "why \"%s\" should name \"%s\"", why, in_why);
}

/* ------------------------------------------------------------ the published vectors */

Test(stdwebhooks, test_signer_reproduces_both_published_signatures)
{
        char sig[64];

        /* The signer below builds every other case, so it is held to the vectors first. */
        sign(LIB_KEY_B64, LIB_ID, LIB_TS, LIB_BODY, sig);
        cr_assert_str_eq(sig, LIB_SIGNATURE);
        sign(TIP_SECRET + strlen("whsec_"), TIP_ID, TIP_TS, tip_body, sig);
        cr_assert_str_eq(sig, TIP_SIGNATURE);
}

Test(stdwebhooks, accepts_the_reference_library_vector)
{
        sw = make(LIB_SECRET);
        cr_assert(eq(int, verify(LIB_ID, LIB_TS, LIB_SIGNATURE, LIB_BODY, LIB_NOW), STDWEBHOOKS_OK),
                  "%s", why);
}

Test(stdwebhooks, accepts_the_internal_tipping_sample)
{
        sw = make(TIP_SECRET);
        cr_assert(eq(int, verify(TIP_ID, TIP_TS, TIP_SIGNATURE, tip_body, TIP_NOW), STDWEBHOOKS_OK),
                  "%s", why);
}

Test(stdwebhooks, any_change_to_id_timestamp_or_body_is_a_mismatch)
{
        sw = make(LIB_SECRET);
        assert_result(verify(LIB_ID, LIB_TS, LIB_SIGNATURE, "{\"test\": 2432232315}", LIB_NOW),
                      STDWEBHOOKS_MISMATCH, "webhook-signature");
        assert_result(verify(LIB_ID, LIB_TS, LIB_SIGNATURE, "{\"test\":2432232314}", LIB_NOW),
                      STDWEBHOOKS_MISMATCH, "webhook-signature");
        assert_result(
                verify("msg_p5jXN8AQM9LWM0D4loKWxJeK", LIB_TS, LIB_SIGNATURE, LIB_BODY, LIB_NOW),
                STDWEBHOOKS_MISMATCH, "webhook-signature");
        assert_result(verify(LIB_ID, "1614265331", LIB_SIGNATURE, LIB_BODY, LIB_NOW),
                      STDWEBHOOKS_MISMATCH, "webhook-signature");
}

Test(stdwebhooks, wrong_secret_is_a_mismatch)
{
        sw = make(OTHER_SECRET);
        assert_result(verify(LIB_ID, LIB_TS, LIB_SIGNATURE, LIB_BODY, LIB_NOW),
                      STDWEBHOOKS_MISMATCH, "no v1 signature matches");
}

/* ------------------------------------------------------------ tolerance */

static enum stdwebhooks_result verify_at_offset(long long offset_s)
{
        char ts[32], sig[64];

        snprintf(ts, sizeof(ts), "%lld", LIB_NOW + offset_s);
        sign(LIB_KEY_B64, LIB_ID, ts, LIB_BODY, sig);
        return verify(LIB_ID, ts, sig, LIB_BODY, LIB_NOW);
}

Test(stdwebhooks, timestamp_within_the_tolerance_both_ways_is_accepted)
{
        sw = make(LIB_SECRET);
        cr_assert(eq(int, verify_at_offset(-TOLERANCE_S), STDWEBHOOKS_OK), "%s", why);
        cr_assert(eq(int, verify_at_offset(TOLERANCE_S), STDWEBHOOKS_OK), "%s", why);
        cr_assert(eq(int, verify_at_offset(0), STDWEBHOOKS_OK), "%s", why);
}

Test(stdwebhooks, timestamp_beyond_the_tolerance_either_way_is_expired)
{
        sw = make(LIB_SECRET);
        assert_result(verify_at_offset(-TOLERANCE_S - 1), STDWEBHOOKS_EXPIRED,
                      "webhook-timestamp: 301 s old");
        assert_result(verify_at_offset(TOLERANCE_S + 1), STDWEBHOOKS_EXPIRED,
                      "webhook-timestamp: 301 s in the future");
        assert_result(verify_at_offset(-86400LL * 365), STDWEBHOOKS_EXPIRED, "webhook-timestamp");
}

Test(stdwebhooks, a_forged_old_request_is_a_mismatch_not_expired)
{
        sw = make(OTHER_SECRET);
        /* Signed with another key and outside the window: "expired" is only said of genuine ones.
         */
        assert_result(verify_at_offset(-3600), STDWEBHOOKS_MISMATCH, "webhook-signature");
}

Test(stdwebhooks, huge_timestamp_neither_overflows_nor_passes)
{
        char sig[64];

        sw = make(LIB_SECRET);
        sign(LIB_KEY_B64, LIB_ID, "9223372036854775807", LIB_BODY, sig);
        assert_result(verify(LIB_ID, "9223372036854775807", sig, LIB_BODY, LIB_NOW),
                      STDWEBHOOKS_EXPIRED, "in the future");
        sign(LIB_KEY_B64, LIB_ID, "0", LIB_BODY, sig);
        assert_result(verify(LIB_ID, "0", sig, LIB_BODY, LIB_NOW), STDWEBHOOKS_EXPIRED, "old");
}

/* ------------------------------------------------------------ the signature list */

Test(stdwebhooks, one_valid_signature_among_several_is_enough)
{
        const char *const lists[] = {
                "v1,Zm9yZ2VkLXNpZ25hdHVyZS1vZi0zMi1ieXRlcyEhISE= " LIB_SIGNATURE,
                LIB_SIGNATURE " v1,Zm9yZ2VkLXNpZ25hdHVyZS1vZi0zMi1ieXRlcyEhISE=",
                "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== " LIB_SIGNATURE,
                "v2,abc junk v1,%%% " LIB_SIGNATURE,
                "  " LIB_SIGNATURE "  ",
        };

        sw = make(LIB_SECRET);
        for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
                cr_assert(eq(int, verify(LIB_ID, LIB_TS, lists[i], LIB_BODY, LIB_NOW),
                             STDWEBHOOKS_OK),
                          "list \"%s\": %s", lists[i], why);
}

Test(stdwebhooks, only_v1_is_read)
{
        sw = make(LIB_SECRET);
        /* The right bytes under another version name do not count. */
        assert_result(verify(LIB_ID, LIB_TS,
                             "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", LIB_BODY, LIB_NOW),
                      STDWEBHOOKS_MISMATCH, "webhook-signature: no v1 signature");
        assert_result(verify(LIB_ID, LIB_TS,
                             "V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", LIB_BODY, LIB_NOW),
                      STDWEBHOOKS_MISMATCH, "webhook-signature");
}

Test(stdwebhooks, malformed_signatures_are_mismatches)
{
        const char *const lists[] = {
                "v1,",
                "v1",
                "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",   /* unpadded */
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE==", /* one char too many */
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O==",  /* 31 bytes */
                "v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE=",  /* base64url */
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=,",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\t",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        };

        sw = make(LIB_SECRET);
        for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
                cr_assert(eq(int, verify(LIB_ID, LIB_TS, lists[i], LIB_BODY, LIB_NOW),
                             STDWEBHOOKS_MISMATCH),
                          "list \"%s\" should not verify: %s", lists[i], why);
}

Test(stdwebhooks, a_long_signature_header_is_read_to_the_end)
{
        size_t n = 2000, len = n * 48 + sizeof(LIB_SIGNATURE);
        char *list = malloc(len), *p = list;

        cr_assert(list != NULL);
        for (size_t i = 0; i < n; i++)
                p += sprintf(p, "v1,Zm9yZ2VkLXNpZ25hdHVyZS1vZi0zMi1ieXRlcyEhISE= ");
        strcpy(p, LIB_SIGNATURE);
        sw = make(LIB_SECRET);
        cr_assert(eq(int, verify(LIB_ID, LIB_TS, list, LIB_BODY, LIB_NOW), STDWEBHOOKS_OK), "%s",
                  why);
        free(list);
}

/* ------------------------------------------------------------ the other headers */

Test(stdwebhooks, absent_or_empty_headers_are_missing_and_named)
{
        sw = make(LIB_SECRET);
        assert_result(verify(NULL, LIB_TS, LIB_SIGNATURE, LIB_BODY, LIB_NOW), STDWEBHOOKS_MISSING,
                      "webhook-id");
        assert_result(verify("", LIB_TS, LIB_SIGNATURE, LIB_BODY, LIB_NOW), STDWEBHOOKS_MISSING,
                      "webhook-id");
        assert_result(verify(LIB_ID, NULL, LIB_SIGNATURE, LIB_BODY, LIB_NOW), STDWEBHOOKS_MISSING,
                      "webhook-timestamp");
        assert_result(verify(LIB_ID, "", LIB_SIGNATURE, LIB_BODY, LIB_NOW), STDWEBHOOKS_MISSING,
                      "webhook-timestamp");
        assert_result(verify(LIB_ID, LIB_TS, NULL, LIB_BODY, LIB_NOW), STDWEBHOOKS_MISSING,
                      "webhook-signature");
        assert_result(verify(LIB_ID, LIB_TS, "", LIB_BODY, LIB_NOW), STDWEBHOOKS_MISSING,
                      "webhook-signature");
}

Test(stdwebhooks, malformed_timestamps_are_refused_even_when_signed)
{
        const char *const stamps[] = {
                "+1614265330", "-1614265330",         " 1614265330", "1614265330 ",
                "01614265330", "1614265330.0",        "1.6e9",       "0x603a6b72",
                "abc",         "16142653300000000000"};
        char sig[64];

        sw = make(LIB_SECRET);
        for (size_t i = 0; i < sizeof(stamps) / sizeof(stamps[0]); i++) {
                sign(LIB_KEY_B64, LIB_ID, stamps[i], LIB_BODY, sig); /* a signature over them */
                assert_result(verify(LIB_ID, stamps[i], sig, LIB_BODY, LIB_NOW),
                              STDWEBHOOKS_MISMATCH, "webhook-timestamp");
        }
}

Test(stdwebhooks, ids_with_dots_blanks_or_over_255_bytes_are_refused_even_when_signed)
{
        char long_id[300], sig[64];
        const char *ids[] = {"msg.1", "msg 1", "msg\x01", "msg\xc3\xa9", long_id};

        memset(long_id, 'a', 256);
        long_id[256] = '\0';
        sw = make(LIB_SECRET);
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                sign(LIB_KEY_B64, ids[i], LIB_TS, LIB_BODY, sig);
                assert_result(verify(ids[i], LIB_TS, sig, LIB_BODY, LIB_NOW), STDWEBHOOKS_MISMATCH,
                              "webhook-id");
        }
        long_id[255] = '\0'; /* 255 bytes is the limit, and fine */
        sign(LIB_KEY_B64, long_id, LIB_TS, LIB_BODY, sig);
        cr_assert(eq(int, verify(long_id, LIB_TS, sig, LIB_BODY, LIB_NOW), STDWEBHOOKS_OK), "%s",
                  why);
}

Test(stdwebhooks, empty_body_is_signed_as_nothing)
{
        char sig[64];

        sw = make(LIB_SECRET);
        sign(LIB_KEY_B64, LIB_ID, LIB_TS, "", sig);
        cr_assert(
                eq(int,
                   stdwebhooks_verify(sw, LIB_ID, LIB_TS, sig, NULL, 0, LIB_NOW, why, sizeof(why)),
                   STDWEBHOOKS_OK),
                "%s", why);
}

/* ------------------------------------------------------------ secrets */

Test(stdwebhooks, rotated_secrets_each_verify_in_any_order)
{
        char sig[64];

        sw = make(OTHER_SECRET ", " LIB_SECRET);
        cr_assert(eq(sz, stdwebhooks_secret_count(sw), 2));
        cr_assert(eq(int, verify(LIB_ID, LIB_TS, LIB_SIGNATURE, LIB_BODY, LIB_NOW), STDWEBHOOKS_OK),
                  "%s", why);
        sign(OTHER_SECRET + strlen("whsec_"), LIB_ID, LIB_TS, LIB_BODY, sig);
        cr_assert(eq(int, verify(LIB_ID, LIB_TS, sig, LIB_BODY, LIB_NOW), STDWEBHOOKS_OK), "%s",
                  why);
        stdwebhooks_destroy(sw);
        sw = make(" " LIB_SECRET " ,," OTHER_SECRET ",");
        cr_assert(eq(sz, stdwebhooks_secret_count(sw), 2));
        cr_assert(eq(int, verify(LIB_ID, LIB_TS, sig, LIB_BODY, LIB_NOW), STDWEBHOOKS_OK), "%s",
                  why);
}

Test(stdwebhooks, secret_without_prefix_or_padding_is_decoded_as_the_reference_libraries_do)
{
        sw = make(LIB_KEY_B64);
        cr_assert(eq(int, verify(LIB_ID, LIB_TS, LIB_SIGNATURE, LIB_BODY, LIB_NOW), STDWEBHOOKS_OK),
                  "%s", why);
        stdwebhooks_destroy(sw);
        sw = make("whsec_cHJvYmUtaW50ZXJuYWwtdGlwLXdlYmhvb2stc2VjcmV0LTMyYiE"); /* '=' dropped */
        cr_assert(eq(int, verify(TIP_ID, TIP_TS, TIP_SIGNATURE, tip_body, TIP_NOW), STDWEBHOOKS_OK),
                  "%s", why);
}

Test(stdwebhooks, bad_secrets_are_refused_by_position_without_their_value)
{
        const char *const bad[] = {
                LIB_SECRET ",whsec_not*base64*at*all*here*!!!!!",
                LIB_SECRET ",whsec_c2hvcnQta2V5LTE2Ynl0ZQ==", /* 16 bytes: below 24 */
                LIB_SECRET
                ",whsec_" /* 65 bytes: above 64 */
                "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
                LIB_SECRET ",whsec_",
                LIB_SECRET ",whsec_A",
        };
        char errstr[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct stdwebhooks *made =
                        stdwebhooks_new(bad[i], TOLERANCE_S, errstr, sizeof(errstr));

                cr_assert_null(made, "\"%s\" should be refused", bad[i]);
                cr_assert(strstr(errstr, "LIVEFLOW_HMAC_SECRET: secret 2") != NULL, "%s", errstr);
                const char *value = strchr(bad[i], ',') + 1 + strlen("whsec_");

                cr_assert_null(strstr(errstr, LIB_KEY_B64), "the secret leaked: %s", errstr);
                if (strlen(value) >= 4)
                        cr_assert_null(strstr(errstr, value), "the secret leaked: %s", errstr);
        }
}

Test(stdwebhooks, more_than_eight_secrets_are_refused)
{
        char list[1024] = "", errstr[256];

        for (int i = 0; i < STDWEBHOOKS_SECRETS_MAX + 1; i++)
                strcat(strcat(list, i ? "," : ""), LIB_SECRET);
        cr_assert_null(stdwebhooks_new(list, TOLERANCE_S, errstr, sizeof(errstr)));
        cr_assert(strstr(errstr, "more than 8") != NULL, "%s", errstr);
}

Test(stdwebhooks, no_secret_verifies_nothing)
{
        sw = make(NULL);
        cr_assert(eq(sz, stdwebhooks_secret_count(sw), 0));
        assert_result(verify(LIB_ID, LIB_TS, LIB_SIGNATURE, LIB_BODY, LIB_NOW),
                      STDWEBHOOKS_MISMATCH, "webhook-signature");
        stdwebhooks_destroy(sw);
        sw = make(" , ");
        cr_assert(eq(sz, stdwebhooks_secret_count(sw), 0));
}

/* ------------------------------------------------------------ small parts */

Test(stdwebhooks, result_names_are_the_verdict_reasons)
{
        cr_assert_null(stdwebhooks_result_name(STDWEBHOOKS_OK));
        cr_assert_str_eq(stdwebhooks_result_name(STDWEBHOOKS_MISSING), "missing");
        cr_assert_str_eq(stdwebhooks_result_name(STDWEBHOOKS_MISMATCH), "mismatch");
        cr_assert_str_eq(stdwebhooks_result_name(STDWEBHOOKS_EXPIRED), "expired");
}

Test(stdwebhooks, parse_timestamp_takes_canonical_decimal_only)
{
        int64_t ts = -1;

        cr_assert(eq(int, stdwebhooks_parse_timestamp("1614265330", &ts), 0));
        cr_assert(eq(i64, ts, 1614265330));
        cr_assert(eq(int, stdwebhooks_parse_timestamp("0", &ts), 0));
        cr_assert(eq(i64, ts, 0));
        cr_assert(eq(int, stdwebhooks_parse_timestamp("9223372036854775807", &ts), 0));
        cr_assert(eq(int, stdwebhooks_parse_timestamp("9223372036854775808", &ts), -1));
        cr_assert(eq(int, stdwebhooks_parse_timestamp("00", &ts), -1));
        cr_assert(eq(int, stdwebhooks_parse_timestamp("", &ts), -1));
        cr_assert(eq(int, stdwebhooks_parse_timestamp("12a", &ts), -1));
}
