/* test_tencent.c: parsing, signature checks and mapping of Tencent CSS callbacks (callback-receiver/tencent.c). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "../../callback-receiver/tencent.h" /* the Makefile gives tests no -I<program dir> */

/*
 * Samples from shared/payloads/tencent-css (signed there with the probe key below), inline
 * so the suite does not depend on a path outside the repository.
 */
#define PROBE_KEY "tencent-probe-callback-key"
#define PUSH_T    1703732078LL
#define GRACE_S   900

static const char push_json[] =
        "{\"app\":\"test.domain.com\",\"appid\":12345678,\"appname\":\"live\","
        "\"channel_id\":\"test_stream\",\"errcode\":0,\"errmsg\":\"ok\",\"event_time\":1703731478,"
        "\"event_type\":1,\"height\":0,\"idc_id\":34,\"node\":\"42.81.194.37\","
        "\"sequence\":\"2210464508206756938\",\"set_id\":2,"
        "\"sign\":\"b5299e53c0c3c6b1e1e064f01f9f315b\",\"stream_id\":\"test_stream\","
        "\"stream_param\":\"stream_param=test\",\"t\":1703732078,\"user_ip\":\"1.1.1.1\",\"width\":0}";

static const char interrupt_json[] =
        "{\"app\":\"test.domain.com\",\"appid\":12345678,\"appname\":\"live\","
        "\"channel_id\":\"test_stream\",\"errcode\":1,\"errmsg\":\"recv rtmp deleteStream\","
        "\"event_time\":1703735203,\"event_type\":0,\"height\":720,\"idc_id\":34,"
        "\"node\":\"42.81.194.37\",\"push_duration\":\"3725118\","
        "\"sequence\":\"2210464508206756938\",\"set_id\":2,"
        "\"sign\":\"5ba3f1156b39031427f1ad276e9b5bb8\",\"stream_id\":\"test_stream\","
        "\"stream_param\":\"stream_param=test\",\"t\":1703735803,\"user_ip\":\"1.1.1.1\",\"width\":1280}";

static const char record_json[] =
        "{\"event_type\":100,\"appid\":12345678,\"app\":\"test.domain.com\","
        "\"appname\":\"live\",\"stream_id\":\"test_stream\",\"channel_id\":\"test_stream\","
        "\"file_id\":\"387702304138941858\",\"record_file_id\":\"387702304138941858\","
        "\"file_format\":\"hls\",\"start_time\":1642089445,\"end_time\":1642089598,"
        "\"duration\":154,\"file_size\":277941079,\"stream_param\":\"stream_param=test\","
        "\"video_url\":\"http://12345678.vod2.myqcloud.com/xxxx/yyyy/zzzz.m3u8\","
        "\"sign\":\"71411b74d5ba4a68a67004074216c48d\",\"t\":1642090198}";

static const char relay_json[] =
        "{\"appid\":12345678,\"callback_event\":\"TaskStart\",\"event_type\":314,"
        "\"interface\":\"general_callback\",\"msg\":\"{\\\"task_start_time\\\":0}\","
        "\"product_name\":\"pullpush\",\"stream_id\":\"testvod\",\"task_id\":\"118148\"}";

static struct tencent *tc;
static struct webhook_event ev;
static struct webhook_verdict verdict;

static void setup(void)
{
        char errstr[256];

        tc = tencent_new(PROBE_KEY, GRACE_S, errstr, sizeof(errstr));
        cr_assert(tc != NULL, "tencent_new: %s", errstr);
        memset(&ev, 0, sizeof(ev));
        memset(&verdict, 0, sizeof(verdict));
}

static void teardown(void)
{
        webhook_event_fini(&ev);
        tencent_destroy(tc);
}

TestSuite(tencent, .init = setup, .fini = teardown);

/* ------------------------------------------------------------ helpers */

static int map_at(const char *body, long long now_s)
{
        return tencent_map(tc, body, strlen(body), now_s * 1000, &ev, &verdict);
}

/* The sample with `field` replaced (json_null(): removed); the caller frees the text. */
static char *edit(const char *sample, const char *field, json_t *value)
{
        json_t *root = json_loads(sample, 0, NULL);
        char *s;

        cr_assert(root != NULL);
        if (json_is_null(value))
                json_object_del(root, field);
        else
                json_object_set(root, field, value);
        json_decref(value);
        s = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return s;
}

/* The sample signed with key for t (a JSON number or string); the caller frees the text. */
static char *signed_body(const char *sample, const char *key, json_t *t)
{
        char msg[512], sign[33], *with_t, *s;

        snprintf(msg, sizeof(msg), "%s%s", key,
                 json_is_string(t) ? json_string_value(t) : "");
        if (json_is_integer(t))
                snprintf(msg, sizeof(msg), "%s%lld", key, (long long)json_integer_value(t));
        crypto_md5_hex(msg, strlen(msg), sign);
        with_t = edit(sample, "t", t);
        s = edit(with_t, "sign", json_string(sign));
        free(with_t);
        return s;
}

static const char *payload_str(const char *name)
{
        return json_string_value(json_object_get(ev.payload, name));
}

static long long payload_int(const char *name)
{
        return (long long)json_integer_value(json_object_get(ev.payload, name));
}

static void expected_id(const char *key, char out[65])
{
        crypto_sha256_hex(key, strlen(key), out);
}

static void assert_refused(int rc, unsigned int status, const char *auth_failure,
                           const char *in_message)
{
        cr_assert(eq(int, rc, -1));
        cr_assert(eq(u32, verdict.status, status), "status %u: %s", verdict.status, verdict.message);
        if (auth_failure)
                cr_assert_str_eq(verdict.auth_failure, auth_failure);
        else
                cr_assert_null(verdict.auth_failure);
        cr_assert(strstr(verdict.message, in_message) != NULL, "message \"%s\" should name \"%s\"",
                  verdict.message, in_message);
        cr_assert_null(ev.payload);
        cr_assert_null(ev.stream_id);
}

/* ------------------------------------------------------------ signatures */

Test(tencent, valid_sign_of_key_and_t_is_accepted)
{
        cr_assert(eq(int, map_at(push_json, PUSH_T - 1), 0), "%s", verdict.message);
}

Test(tencent, wrong_sign_is_refused_as_mismatch)
{
        char *body = edit(push_json, "sign", json_string("b5299e53c0c3c6b1e1e064f01f9f3150"));

        assert_refused(map_at(body, PUSH_T - 1), 401, "mismatch", "sign");
        free(body);
}

Test(tencent, sign_of_another_key_is_refused)
{
        char *body = signed_body(push_json, "some-other-key", json_integer(PUSH_T));

        assert_refused(map_at(body, PUSH_T - 1), 401, "mismatch", "sign");
        free(body);
}

Test(tencent, uppercase_hex_sign_is_accepted)
{
        char *body = edit(push_json, "sign", json_string("B5299E53C0C3C6B1E1E064F01F9F315B"));

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        free(body);
}

Test(tencent, sign_of_wrong_length_is_refused)
{
        char *body = edit(push_json, "sign", json_string("b5299e53"));

        assert_refused(map_at(body, PUSH_T - 1), 401, "mismatch", "sign");
        free(body);
}

Test(tencent, missing_sign_is_refused_as_missing)
{
        char *body = edit(push_json, "sign", json_null());

        assert_refused(map_at(body, PUSH_T - 1), 401, "missing", "sign");
        free(body);
}

Test(tencent, missing_t_is_refused_as_missing)
{
        char *body = edit(push_json, "t", json_null());

        assert_refused(map_at(body, PUSH_T - 1), 401, "missing", "t");
        free(body);
}

Test(tencent, t_that_is_not_a_time_is_refused)
{
        char *body = signed_body(push_json, PROBE_KEY, json_string("soon"));

        assert_refused(map_at(body, PUSH_T - 1), 401, "missing", "t");
        free(body);
}

Test(tencent, expired_beyond_grace_is_refused)
{
        assert_refused(map_at(push_json, PUSH_T + GRACE_S + 1), 401, "expired", "expired");
}

Test(tencent, expired_within_grace_is_accepted)
{
        cr_assert(eq(int, map_at(push_json, PUSH_T + GRACE_S), 0), "%s", verdict.message);
}

Test(tencent, t_as_string_is_signed_as_its_text)
{
        char *body = signed_body(push_json, PROBE_KEY, json_string("1703732078"));

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        free(body);
}

Test(tencent, t_as_number_is_signed_as_its_decimal_text)
{
        char *body = signed_body(push_json, PROBE_KEY, json_integer(PUSH_T + 60));

        cr_assert(eq(int, map_at(body, PUSH_T), 0), "%s", verdict.message);
        free(body);
}

Test(tencent, second_key_of_a_rotation_is_accepted)
{
        char errstr[256];

        tencent_destroy(tc);
        tc = tencent_new(" new-key-2026 , " PROBE_KEY " ", GRACE_S, errstr, sizeof(errstr));
        cr_assert(tc != NULL, "%s", errstr);
        cr_assert(eq(sz, tencent_key_count(tc), 2));
        cr_assert(eq(int, map_at(push_json, PUSH_T - 1), 0), "%s", verdict.message);
}

Test(tencent, first_key_of_a_rotation_is_accepted)
{
        char errstr[256], *body = signed_body(push_json, "new-key-2026", json_integer(PUSH_T));

        tencent_destroy(tc);
        tc = tencent_new("new-key-2026," PROBE_KEY, GRACE_S, errstr, sizeof(errstr));
        cr_assert(tc != NULL, "%s", errstr);
        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        free(body);
}

Test(tencent, no_key_configured_answers_503)
{
        char errstr[256];

        tencent_destroy(tc);
        tc = tencent_new(" , ", GRACE_S, errstr, sizeof(errstr));
        cr_assert(tc != NULL, "%s", errstr);
        cr_assert(eq(sz, tencent_key_count(tc), 0));
        assert_refused(map_at(push_json, PUSH_T - 1), 503, NULL, "LIVEFLOW_TENCENT_KEY");
}

Test(tencent, key_longer_than_the_limit_is_a_config_error)
{
        char errstr[256], key[TENCENT_KEY_MAX + 2];

        memset(key, 'k', sizeof(key) - 1);
        key[sizeof(key) - 1] = '\0';
        cr_assert_null(tencent_new(key, GRACE_S, errstr, sizeof(errstr)));
        cr_assert(strstr(errstr, "LIVEFLOW_TENCENT_KEY") != NULL, "%s", errstr);
}

Test(tencent, unsigned_callback_type_is_refused)
{
        assert_refused(map_at(relay_json, 1700000000), 401, "missing", "sign");
}

/* ------------------------------------------------------------ malformed bodies */

Test(tencent, malformed_json_is_400)
{
        assert_refused(map_at("{\"event_type\":1,", PUSH_T), 400, NULL, "JSON");
}

Test(tencent, body_that_is_not_an_object_is_400)
{
        assert_refused(map_at("[1,2]", PUSH_T), 400, NULL, "object");
}

Test(tencent, duplicate_keys_are_400)
{
        assert_refused(map_at("{\"sign\":\"a\",\"sign\":\"b\"}", PUSH_T), 400, NULL, "JSON");
}

Test(tencent, missing_stream_id_is_named)
{
        char *a = edit(push_json, "stream_id", json_null());
        char *body = edit(a, "channel_id", json_null());

        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "stream_id");
        free(a);
        free(body);
}

Test(tencent, empty_stream_id_is_named)
{
        char *body = edit(push_json, "stream_id", json_string(""));

        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "stream_id");
        free(body);
}

Test(tencent, missing_event_type_is_named)
{
        char *body = edit(push_json, "event_type", json_null());

        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "event_type");
        free(body);
}

Test(tencent, event_type_that_is_not_an_integer_is_named)
{
        char *body = edit(push_json, "event_type", json_string("push"));

        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "event_type");
        free(body);
}

Test(tencent, fractional_event_type_is_named)
{
        char *body = edit(push_json, "event_type", json_real(1.5));

        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "event_type");
        free(body);
}

/* ------------------------------------------------------------ mapping */

Test(tencent, push_maps_to_stream_begin)
{
        char id[65];

        cr_assert(eq(int, map_at(push_json, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.vendor, "tencent");
        cr_assert_str_eq(ev.event_type, "stream.begin");
        cr_assert_str_eq(ev.topic, "live.stream");
        cr_assert_str_eq(ev.payload_name, "StreamBegin");
        cr_assert_str_eq(ev.stream_id, "test_stream");
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert(eq(i64, ev.event_time_ms, 1703731478000LL));
        cr_assert_str_eq(payload_str("sequence"), "2210464508206756938");
        cr_assert_str_eq(payload_str("client_ip"), "1.1.1.1");
        cr_assert_str_eq(payload_str("stream_param"), "stream_param=test");
        cr_assert_str_eq(payload_str("app"), "test.domain.com");
        cr_assert_str_eq(payload_str("node"), "42.81.194.37");
        expected_id("tencent|1|test_stream|2210464508206756938", id);
        cr_assert_str_eq(ev.event_id, id);
        cr_assert_null(ev.anchor_id);
        cr_assert_null(ev.room_id);
}

Test(tencent, interrupt_maps_to_stream_end)
{
        char id[65];

        cr_assert(eq(int, map_at(interrupt_json, 1703735803 - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "stream.end");
        cr_assert_str_eq(ev.topic, "live.stream");
        cr_assert_str_eq(ev.payload_name, "StreamEnd");
        cr_assert_str_eq(payload_str("sequence"), "2210464508206756938");
        cr_assert(eq(i64, payload_int("push_duration_ms"), 3725118));
        cr_assert(eq(i64, payload_int("errcode"), 1));
        cr_assert_str_eq(payload_str("errmsg"), "recv rtmp deleteStream");
        cr_assert(eq(i64, payload_int("close_method"), 1));
        expected_id("tencent|0|test_stream|2210464508206756938", id);
        cr_assert_str_eq(ev.event_id, id);
}

Test(tencent, push_duration_as_a_number_is_accepted)
{
        char *body = edit(interrupt_json, "push_duration", json_integer(42));

        cr_assert(eq(int, map_at(body, 1703735803 - 1), 0), "%s", verdict.message);
        cr_assert(eq(i64, payload_int("push_duration_ms"), 42));
        free(body);
}

Test(tencent, numbers_as_strings_are_accepted)
{
        char *a = edit(interrupt_json, "event_type", json_string("0"));
        char *b = edit(a, "event_time", json_string("1703735203"));
        char *c = edit(b, "sequence", json_integer(77));
        char *body = signed_body(c, PROBE_KEY, json_string("1703735803"));
        char id[65];

        cr_assert(eq(int, map_at(body, 1703735803 - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "stream.end");
        cr_assert(eq(i64, ev.event_time_ms, 1703735203000LL));
        cr_assert_str_eq(payload_str("sequence"), "77");
        expected_id("tencent|0|test_stream|77", id);
        cr_assert_str_eq(ev.event_id, id);
        free(a);
        free(b);
        free(c);
        free(body);
}

Test(tencent, missing_event_time_is_the_receive_time)
{
        char *body = edit(push_json, "event_time", json_null());

        cr_assert(eq(int, tencent_map(tc, body, strlen(body), 1703732000123LL, &ev, &verdict), 0),
                  "%s", verdict.message);
        cr_assert(eq(i64, ev.event_time_ms, 1703732000123LL));
        free(body);
}

Test(tencent, channel_id_stands_in_for_a_missing_stream_id)
{
        char *body = edit(push_json, "stream_id", json_null());

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.stream_id, "test_stream");
        free(body);
}

Test(tencent, unicode_stream_id_is_kept)
{
        const char *name = "\xe7\x9b\xb4\xe6\x92\xad_\xf0\x9f\x8e\xa5_stream"; /* 直播_🎥_stream */
        char *body = edit(push_json, "stream_id", json_string(name));

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.stream_id, name);
        cr_assert_str_eq(ev.key, name);
        free(body);
}

Test(tencent, very_long_stream_id_is_kept)
{
        size_t len = 40000;
        char *name = malloc(len + 1), *body;

        memset(name, 's', len);
        name[len] = '\0';
        body = edit(push_json, "stream_id", json_string(name));
        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert(eq(sz, strlen(ev.stream_id), len));
        free(name);
        free(body);
}

Test(tencent, anchor_and_room_come_from_stream_param_decoded)
{
        char *body = edit(push_json, "stream_param",
                          json_string("txSecret=x&anchor_id=a%2F1+b&room_id=%E6%88%BF%E9%97%B4"));

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "a/1 b");
        cr_assert_str_eq(ev.room_id, "\xe6\x88\xbf\xe9\x97\xb4"); /* 房间 */
        free(body);
}

Test(tencent, room_defaults_to_the_anchor)
{
        char *body = edit(push_json, "stream_param", json_string("anchor_id=a42&txTime=5DEBEC80"));

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "a42");
        cr_assert_str_eq(ev.room_id, "a42");
        free(body);
}

Test(tencent, undecodable_anchor_is_kept_as_sent)
{
        char *body = edit(push_json, "stream_param", json_string("anchor_id=a%00b&room_id=%FF"));

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "a%00b");
        cr_assert_str_eq(ev.room_id, "%FF");
        free(body);
}

/* ------------------------------------------------------------ event ids */

Test(tencent, retry_with_new_t_and_sign_keeps_the_event_id)
{
        char first[65], *retry = signed_body(push_json, PROBE_KEY, json_integer(PUSH_T + 600));

        cr_assert(eq(int, map_at(push_json, PUSH_T - 1), 0), "%s", verdict.message);
        memcpy(first, ev.event_id, sizeof(first));
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(retry, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_id, first);
        free(retry);
}

Test(tencent, same_sequence_on_another_stream_differs)
{
        char first[65], *other = edit(push_json, "stream_id", json_string("other_stream"));

        cr_assert(eq(int, map_at(push_json, PUSH_T - 1), 0), "%s", verdict.message);
        memcpy(first, ev.event_id, sizeof(first));
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(other, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_neq(ev.event_id, first);
        free(other);
}

Test(tencent, push_and_interrupt_of_one_sequence_differ)
{
        char push_id[65];

        cr_assert(eq(int, map_at(push_json, PUSH_T - 1), 0), "%s", verdict.message);
        memcpy(push_id, ev.event_id, sizeof(push_id));
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(interrupt_json, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_neq(ev.event_id, push_id);
}

Test(tencent, other_type_goes_to_live_other_with_a_null_payload)
{
        cr_assert(eq(int, map_at(record_json, 1642090198 - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "other");
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_null(ev.payload_name);
        cr_assert_null(ev.payload);
        cr_assert_str_eq(ev.stream_id, "test_stream");
        cr_assert(eq(int, (int)strlen(ev.event_id), 64));
}

Test(tencent, other_type_id_uses_its_natural_key_across_retries)
{
        char first[65], id[65];
        char *retry = signed_body(record_json, PROBE_KEY, json_string("1642099999"));

        cr_assert(eq(int, map_at(record_json, 1642090198 - 1), 0), "%s", verdict.message);
        memcpy(first, ev.event_id, sizeof(first));
        expected_id("tencent|100|[\"387702304138941858\",\"1642089445\"]", id);
        cr_assert_str_eq(first, id);
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(retry, 1642090198 - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_id, first);
        free(retry);
}

Test(tencent, unknown_type_id_is_the_body_without_t_and_sign)
{
        char *a = edit(push_json, "event_type", json_integer(999));
        char *first = signed_body(a, PROBE_KEY, json_integer(PUSH_T));
        char *retry = signed_body(a, PROBE_KEY, json_integer(PUSH_T + 120));
        char first_id[65];

        cr_assert(eq(int, map_at(first, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "other");
        memcpy(first_id, ev.event_id, sizeof(first_id));
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(retry, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_id, first_id);
        free(a);
        free(first);
        free(retry);
}

/* ------------------------------------------------------------ the codec takes what the module makes */

static void assert_encodes(const char *body, long long now_s)
{
        char errstr[256];
        struct codec *c = codec_new(errstr, sizeof(errstr));
        struct event out = {0};
        struct envelope env;
        void *buf = NULL;
        size_t len = 0;

        cr_assert(c != NULL, "%s", errstr);
        cr_assert(eq(int, map_at(body, now_s), 0), "%s", verdict.message);
        env = (struct envelope){.event_id = ev.event_id, .vendor = ev.vendor,
                                .event_type = ev.event_type, .stream_id = ev.stream_id,
                                .anchor_id = ev.anchor_id, .room_id = ev.room_id,
                                .event_time_ms = ev.event_time_ms, .receive_time_ms = now_s * 1000,
                                .trace_id = "0123456789abcdef", .raw = body, .raw_len = strlen(body)};
        cr_assert(eq(int, codec_encode(c, &env, ev.payload_name, ev.payload, &buf, &len, errstr,
                                       sizeof(errstr)), 0), "%s", errstr);
        cr_assert(eq(int, codec_decode(c, buf, len, &out, errstr, sizeof(errstr)), 0), "%s", errstr);
        cr_assert_str_eq(out.event_type, ev.event_type);
        cr_assert(eq(sz, out.raw_len, strlen(body)));
        if (ev.payload_name)
                cr_assert_str_eq(out.payload_name, ev.payload_name);
        else
                cr_assert_null(out.payload_name);
        event_fini(&out);
        free(buf);
        codec_destroy(c);
}

Test(tencent, push_payload_fits_the_schema)
{
        char *body = edit(push_json, "stream_param", json_string("anchor_id=a1&room_id=r1"));

        assert_encodes(body, PUSH_T - 1);
        free(body);
}

Test(tencent, interrupt_payload_fits_the_schema)
{
        assert_encodes(interrupt_json, 1703735803 - 1);
}

Test(tencent, other_type_fits_the_schema)
{
        assert_encodes(record_json, 1642090198 - 1);
}
