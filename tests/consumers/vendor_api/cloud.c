/* cloud.c: test_vendor_api's Agora (kicking rule) and Alibaba (ForbidLiveStream, signed RPC)
 * drops and live-state questions. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "crypto.h"
#include "fixture.h"
#include "support.h"
#include "url.h"
#include "agora_api.h"
#include "alibaba_api.h"

/*
 * Alibaba's worked example of an RPC signature (signature version 1.0, HMAC-SHA1): ECS
 * DescribeRegions with AccessKeyId testid and secret testsecret, whose documented signature is
 * OLeaidS1JvxuMvnyHOwuJ+uX5qY=.
 */
Test(vendor_api, alibaba_signature_matches_alibabas_documented_example)
{
        const struct alibaba_param params[] = {
                {"Timestamp", "2016-02-23T12:46:24Z"},
                {"Format", "XML"},
                {"AccessKeyId", "testid"},
                {"Action", "DescribeRegions"},
                {"SignatureMethod", "HMAC-SHA1"},
                {"SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"},
                {"Version", "2014-05-26"},
                {"SignatureVersion", "1.0"},
        };
        char query[1024];

        cr_assert_eq(alibaba_api_signed_query("GET", params, 8, "testsecret", query, sizeof(query)),
                     0);
        cr_assert_str_eq(query,
                         "AccessKeyId=testid&Action=DescribeRegions&Format=XML&"
                         "SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-"
                         "4e0ad82fd6cf&SignatureVersion=1.0&Timestamp=2016-02-23T12%3A46%3A24Z&"
                         "Version=2014-05-26&Signature=OLeaidS1JvxuMvnyHOwuJ%2BuX5qY%3D");
        cr_assert_eq(alibaba_api_signed_query("GET", params, 8, "testsecret", query, 100), -1,
                     "a short buffer must fail, not truncate");
}

Test(vendor_api, agora_drop_is_a_kicking_rule_with_basic_auth)
{
        struct settings s;
        char err[256], b64[128], want[160];
        struct seen got;
        json_t *body, *privileges;

        load_cloud_settings(&s, true, false);
        cr_assert_eq(drop(&s, "agora", "room_7", err, sizeof(err)), VENDOR_DROP_DONE, "%s", err);
        cr_assert_eq(seen_count(), 1);
        got = seen_at(0);
        cr_assert_str_eq(got.method, "POST");
        cr_assert_str_eq(got.path, "/dev/v1/kicking-rule");
        cr_assert_str_eq(got.content_type, "application/json");
        crypto_base64_encode(AGORA_ID ":" AGORA_SECRET, strlen(AGORA_ID ":" AGORA_SECRET), b64,
                             sizeof(b64));
        snprintf(want, sizeof(want), "Basic %s", b64);
        cr_assert_str_eq(got.authorization, want);
        body = json_loads(got.body, 0, NULL);
        cr_assert(body, "body is not JSON: %s", got.body);
        cr_assert_str_eq(json_string_value(json_object_get(body, "appid")),
                         "4855xxxxxxxxxxxxxxxxxxxxxxxxeae2");
        cr_assert_str_eq(json_string_value(json_object_get(body, "cname")), "room_7");
        cr_assert_eq(json_integer_value(json_object_get(body, "time_in_seconds")), 0);
        privileges = json_object_get(body, "privileges");
        cr_assert_eq(json_array_size(privileges), 1);
        cr_assert_str_eq(json_string_value(json_array_get(privileges, 0)), "join_channel");
        json_decref(body);
        settings_fini(&s);
}

Test(vendor_api, agora_refusals_fail_and_trouble_is_retried)
{
        struct settings s;
        char err[256];

        load_cloud_settings(&s, true, false);
        srv.agora_status = 401;
        srv.agora_body = "{\"message\":\"Invalid authentication credentials\"}";
        cr_assert_eq(drop(&s, "agora", "room_7", err, sizeof(err)), VENDOR_DROP_FAILED);
        cr_assert(strstr(err, "401") != NULL, "%s", err);
        srv.agora_status = 503;
        srv.agora_body = "{}";
        cr_assert_eq(drop(&s, "agora", "room_7", err, sizeof(err)), VENDOR_DROP_RETRY);
        srv.agora_status = 200;
        srv.agora_body = "not json";
        cr_assert_eq(drop(&s, "agora", "room_7", err, sizeof(err)), VENDOR_DROP_RETRY);
        settings_fini(&s);
}

/* Alibaba's signature of the request as the server received it, computed here independently. */
static void alibaba_expected_signature(const struct seen *s, char *out, size_t out_size)
{
        char names[ARGS_MAX][32], query[4096] = "", to_sign[8192], key[64];
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        int n = 0;

        for (int i = 0; i < s->arg_cnt; i++)
                if (strcmp(s->arg_names[i], "Signature") != 0)
                        snprintf(names[n++], sizeof(names[0]), "%s", s->arg_names[i]);
        qsort(names, (size_t)n, sizeof(names[0]), (int (*)(const void *, const void *))strcmp);
        for (int i = 0; i < n; i++) {
                char *k = curl_easy_escape(NULL, names[i], 0);
                char *v = curl_easy_escape(NULL, arg_of(s, names[i]), 0);

                snprintf(query + strlen(query), sizeof(query) - strlen(query), "%s%s=%s",
                         i ? "&" : "", k, v);
                curl_free(k);
                curl_free(v);
        }
        {
                char *q = curl_easy_escape(NULL, query, 0);

                snprintf(to_sign, sizeof(to_sign), "GET&%%2F&%s", q);
                curl_free(q);
        }
        snprintf(key, sizeof(key), "%s&", ALI_SECRET);
        HMAC(EVP_sha1(), key, (int)strlen(key), (const unsigned char *)to_sign, strlen(to_sign),
             mac, &mac_len);
        crypto_base64_encode(mac, mac_len, out, out_size);
}

Test(vendor_api, alibaba_drop_is_a_signed_forbidlivestream_call)
{
        struct settings s;
        char err[256], want[64];
        struct seen got;
        time_t now = time(NULL);
        struct tm tm;

        load_cloud_settings(&s, false, true);
        cr_assert_eq(drop(&s, "alibaba", "liveStream001", err, sizeof(err)), VENDOR_DROP_DONE, "%s",
                     err);
        cr_assert_eq(seen_count(), 1);
        got = seen_at(0);
        cr_assert_str_eq(got.method, "GET");
        cr_assert_str_eq(got.path, "/");
        cr_assert_str_eq(arg_of(&got, "Action"), "ForbidLiveStream");
        cr_assert_str_eq(arg_of(&got, "DomainName"), "push.example.com");
        cr_assert_str_eq(arg_of(&got, "AppName"), "live");
        cr_assert_str_eq(arg_of(&got, "StreamName"), "liveStream001");
        cr_assert_str_eq(arg_of(&got, "LiveStreamType"), "publisher");
        cr_assert_str_eq(arg_of(&got, "Oneshot"), "yes");
        cr_assert_str_eq(arg_of(&got, "Version"), "2016-11-01");
        cr_assert_str_eq(arg_of(&got, "AccessKeyId"), ALI_KEY_ID);
        cr_assert_str_eq(arg_of(&got, "SignatureMethod"), "HMAC-SHA1");
        cr_assert_str_eq(arg_of(&got, "SignatureVersion"), "1.0");
        cr_assert_eq(strlen(arg_of(&got, "SignatureNonce")), 32);
        memset(&tm, 0, sizeof(tm));
        cr_assert(strptime(arg_of(&got, "Timestamp"), "%Y-%m-%dT%H:%M:%SZ", &tm) != NULL,
                  "Timestamp %s is not yyyy-MM-ddTHH:mm:ssZ", arg_of(&got, "Timestamp"));
        cr_assert(labs((long)(timegm(&tm) - now)) <= 5, "Timestamp %s is not now (UTC)",
                  arg_of(&got, "Timestamp"));
        alibaba_expected_signature(&got, want, sizeof(want));
        cr_assert_str_eq(arg_of(&got, "Signature"), want);
        settings_fini(&s);
}

Test(vendor_api, alibaba_not_live_throttled_and_refused)
{
        struct settings s;
        char err[256];

        load_cloud_settings(&s, false, true);
        srv.alibaba_status = 404;
        srv.alibaba_body = "{\"Code\":\"InvalidStream.NotFound\",\"Message\":\"not found\"}";
        cr_assert_eq(drop(&s, "alibaba", "s1", err, sizeof(err)), VENDOR_DROP_NOT_LIVE, "%s", err);
        srv.alibaba_status = 400;
        srv.alibaba_body = "{\"Code\":\"Throttling.User\",\"Message\":\"slow down\"}";
        cr_assert_eq(drop(&s, "alibaba", "s1", err, sizeof(err)), VENDOR_DROP_RETRY, "%s", err);
        srv.alibaba_status = 403;
        srv.alibaba_body = "{\"Code\":\"Forbidden.RAM\",\"Message\":\"no permission\"}";
        cr_assert_eq(drop(&s, "alibaba", "s1", err, sizeof(err)), VENDOR_DROP_FAILED);
        cr_assert(strstr(err, "Forbidden.RAM") != NULL, "%s", err);
        settings_fini(&s);
}

Test(vendor_api, unconfigured_agora_and_alibaba_are_skipped_without_a_request)
{
        struct settings s;
        char err[256];

        load_settings(&s, false, false);
        cr_assert_eq(drop(&s, "agora", "room_7", err, sizeof(err)), VENDOR_DROP_SKIPPED);
        cr_assert_eq(drop(&s, "alibaba", "s1", err, sizeof(err)), VENDOR_DROP_SKIPPED);
        cr_assert_eq(seen_count(), 0);
        settings_fini(&s);
}

static enum vendor_state state(const struct settings *s, const char *vendor, const char *stream_id)
{
        char e[256], err[256];
        struct vendor_api *va = vendor_api_new(s, e, sizeof(e));
        enum vendor_state st;

        cr_assert(va, "%s", e);
        st = vendor_api_stream_state(va, vendor, stream_id, "trace-test", err, sizeof(err));
        vendor_api_destroy(va);
        return st;
}

Test(vendor_api, agora_and_alibaba_say_whether_a_stream_is_live)
{
        struct settings s;
        char want[64];
        struct seen got;

        load_cloud_settings(&s, true, true);
        cr_assert_eq(state(&s, "agora", "room_alive"), VENDOR_STATE_LIVE);
        cr_assert_eq(state(&s, "agora", "room_gone"), VENDOR_STATE_NOT_LIVE);
        got = seen_at(0);
        cr_assert_str_eq(got.path,
                         "/dev/v1/channel/user/4855xxxxxxxxxxxxxxxxxxxxxxxxeae2/room_alive");
        cr_assert(strncmp(got.authorization, "Basic ", 6) == 0, "%s", got.authorization);
        cr_assert_eq(state(&s, "alibaba", "s_alive"), VENDOR_STATE_LIVE);
        cr_assert_eq(state(&s, "alibaba", "s_gone"), VENDOR_STATE_NOT_LIVE);
        got = seen_at(2);
        cr_assert_str_eq(arg_of(&got, "Action"), "DescribeLiveStreamsOnlineList");
        cr_assert_str_eq(arg_of(&got, "StreamName"), "s_alive");
        alibaba_expected_signature(&got, want, sizeof(want));
        cr_assert_str_eq(arg_of(&got, "Signature"), want);
        settings_fini(&s);
}
