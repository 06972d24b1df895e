/* test_tencent.c: parsing, signature checks and mapping of Tencent CSS callbacks
 * (callback-receiver/tencent.c). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "field_limits.h"
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
        "\"callback_ext\":\"{\\\"video_codec\\\":\\\"h264\\\","
        "\\\"resolution\\\":\\\"640x480\\\","
        "\\\"session_id\\\":\\\"2918085116267032069\\\"}\",\"appname\":\"live\","
        "\"stream_id\":\"test_stream\",\"channel_id\":\"test_stream\","
        "\"file_id\":\"387702304138941858\",\"record_file_id\":\"387702304138941858\","
        "\"record_temp_id\":\"\",\"file_format\":\"hls\",\"task_id\":\"\","
        "\"start_time\":1642089445,\"end_time\":1642089598,\"start_time_usec\":316441,"
        "\"end_time_usec\":618577,\"duration\":154,\"file_size\":277941079,"
        "\"stream_param\":\"stream_param=test\","
        "\"video_url\":\"http://12345678.vod2.myqcloud.com/xxxx/yyyy/zzzz.m3u8\","
        "\"media_start_time\":135802,\"record_bps\":0,"
        "\"sign\":\"71411b74d5ba4a68a67004074216c48d\",\"t\":1642090198}";

static const char record_status_json[] =
        "{\"appid\":123456789,\"appname\":\"live\",\"domain\":\"test.livepush.myqcloud.com\","
        "\"event_time\":1700207929,\"event_type\":332,"
        "\"record_detail\":\"{\\\"file_format\\\":2,\\\"record_bps\\\":0,"
        "\\\"start_model\\\":1,\\\"record_content\\\":1,\\\"source_type\\\":1,"
        "\\\"codec_temp_id\\\":0}\",\"record_event\":\"record_ended\","
        "\"seq\":\"3266441426274648065\",\"session_id\":\"2918085116267032069\","
        "\"stream_id\":\"test_stream\",\"task_id\":\"\","
        "\"sign\":\"a05ed83c6b595e3abedf9cef9a8dde7e\",\"t\":1700208529}";

static const char screenshot_json[] =
        "{\"app\":\"test.domain.com\",\"appname\":\"live\",\"channel_id\":\"test_stream\","
        "\"create_time\":1622599925,\"event_type\":200,\"file_size\":30670,\"height\":720,"
        "\"pic_full_url\":\"http://your.cos.region.myqcloud.com/test_stream/"
        "test_stream-screenshot-10-12-05-1280x720.jpg\","
        "\"pic_url\":\"/test_stream/test_stream-screenshot-10-12-05-1280x720.jpg\","
        "\"sign\":\"56c6fe44c4d236879a6094c2f96b62ff\",\"stream_id\":\"test_stream\","
        "\"stream_param\":\"txSecret=ca3e25e5dc17a6f9909a9ae7281e300d&txTime=60B83800\","
        "\"t\":1622600525,\"width\":1280}";

static const char image_json[] =
        "{\"ocrMsg\":\"\",\"type\":[1],\"score\":[99],\"screenshotTime\":1610640000,"
        "\"img\":\"http://1.1.1.1/download/porn/test.jpg\",\"sendTime\":1615859827,"
        "\"suggestion\":\"Block\",\"label\":\"Porn\",\"subLabel\":\"PornHigh\","
        "\"labelResults\":[{\"HitFlag\":0,\"Scene\":\"Illegal\",\"Suggestion\":\"Pass\","
        "\"Label\":\"Normal\",\"SubLabel\":\"\",\"Score\":0,\"Details\":[]},{\"HitFlag\":1,"
        "\"Scene\":\"Porn\",\"Suggestion\":\"Block\",\"Label\":\"Porn\","
        "\"SubLabel\":\"PornHigh\",\"Score\":99,\"Details\":[{\"Id\":0,\"Name\":\"PornHigh\","
        "\"Score\":99},{\"Id\":1,\"Name\":\"WomenChest\",\"Score\":99}]}],"
        "\"objectResults\":[{\"HitFlag\":0,\"Scene\":\"QrCode\",\"Suggestion\":\"Pass\","
        "\"Label\":\"Normal\",\"SubLabel\":\"\",\"Score\":0,\"Names\":[],\"Details\":[]}],"
        "\"ocrResults\":[{\"HitFlag\":0,\"Scene\":\"OCR\",\"Suggestion\":\"Pass\","
        "\"Label\":\"Normal\",\"SubLabel\":\"\",\"Score\":0,\"Text\":\"\",\"Details\":[]}],"
        "\"libResults\":[],\"streamId\":\"test_stream\",\"channelId\":\"test_stream\","
        "\"stream_param\":\"txSecret=40f38f69f574fd51126c421a3d96c374&txTime=5DEBEC80\","
        "\"app\":\"test.domain.com\",\"appname\":\"live\",\"appid\":12345678,"
        "\"event_type\":317,\"sign\":\"388bb5c4b3d6c3f6159b1efb0e418685\",\"t\":1615860427}";

static const char audio_json[] =
        "{\"appid\":12345678,\"stream_id\":\"test_stream\",\"channel_id\":\"test_stream\","
        "\"domain\":\"test.domain.com\",\"path\":\"live\",\"HitFlag\":1,\"Score\":92,"
        "\"SubTag\":\"\",\"task_id\":1234567,\"status\":2,"
        "\"asr_text\":\"sample transcript text\","
        "\"cdn_url\":\"http://test.domain.com/live/test_stream.flv\",\"duration\":30,"
        "\"label\":\"Abuse\",\"event_type\":315,"
        "\"sign\":\"3b46767f3692edf6343bd7acb75a8f8e\",\"t\":1700000600}";

/* push-abnormal.json and relay.json: the doc samples carry no t/sign. */
static const char push_abnormal_json[] =
        "{\"abnormal_event\":[{\"count\":2,"
        "\"detail\":[{\"desc\":\"video frame arrive interval too long, interval=3046(msec)\","
        "\"occur_time\":1670588070569},{\"desc\":\"video frame arrive interval too long,"
        " interval=2953(msec)\",\"occur_time\":1670588073522}],\"type\":6,"
        "\"type_desc_cn\":\"\","
        "\"type_desc_en\":\"video frame arrive interval bigger than 1000(ms)\"}],"
        "\"appid\":12345678,\"data_time\":1670588074971,\"domain\":\"test.domain.com\","
        "\"event_type\":321,\"interface\":\"general_callback\",\"path\":\"live\","
        "\"report_interval\":5000,\"sequence\":\"2210464508206756938\","
        "\"stream_id\":\"test_stream\","
        "\"stream_param\":\"txSecret=f5828cd4a8a09109304b060172fb3960&txTime=665982e4\","
        "\"timeout\":5000}";

static const char relay_json[] =
        "{\"appid\":12345678,\"callback_event\":\"TaskStart\",\"event_type\":314,"
        "\"interface\":\"general_callback\",\"msg\":\"{\\\"task_start_time\\\":0}\","
        "\"product_name\":\"pullpush\","
        "\"source_urls\":\"[\\\"http://example.com/live/source/playlist.m3u8\\\"]\\n\","
        "\"stream_id\":\"testvod\",\"task_id\":\"118148\","
        "\"to_url\":\"rtmp://test.livepush.myqcloud.com/live/testvod\"}";

/* The t of each signed sample (shared/payloads/tencent-css/README.md). */
#define RECORD_T 1642090198LL
#define STATUS_T 1700208529LL
#define SNAP_T   1622600525LL
#define IMAGE_T  1615860427LL
#define AUDIO_T  1700000600LL

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

static int map_at_ms(const char *body, long long now_ms)
{
        const struct webhook_request req = {.body = body, .len = strlen(body), .now_ms = now_ms};

        return tencent_map(tc, &req, &ev, &verdict);
}

static int map_at(const char *body, long long now_s)
{
        return map_at_ms(body, now_s * 1000);
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

        snprintf(msg, sizeof(msg), "%s%s", key, json_is_string(t) ? json_string_value(t) : "");
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
        cr_assert(eq(u32, verdict.status, status), "status %u: %s", verdict.status,
                  verdict.message);
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

/*
 * Bodies the fast parser (cJSON) alone would read otherwise than jansson: each must be
 * accepted, refused and read as jansson reads it.
 */

/* sample with the first `from` replaced by `to`; the caller frees the text. */
static char *replaced(const char *sample, const char *from, const char *to)
{
        const char *at = strstr(sample, from);
        char *s;

        cr_assert(at != NULL, "%s not in %s", from, sample);
        cr_assert(asprintf(&s, "%.*s%s%s", (int)(at - sample), sample, to, at + strlen(from)) > 0);
        return s;
}

static void assert_malformed(const char *from, const char *to)
{
        char *compact = edit(push_json, "app", json_string("live")), *body;

        body = replaced(compact, from, to);
        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "JSON");
        free(body);
        free(compact);
}

Test(tencent, integral_real_event_type_is_named)
{
        char *body = edit(push_json, "event_type", json_real(1.0));

        cr_assert(strstr(body, "\"event_type\":1.0") != NULL, "%s", body);
        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "event_type");
        free(body);
}

Test(tencent, number_with_a_leading_zero_is_malformed)
{
        assert_malformed("\"event_type\":1", "\"event_type\":01");
}

Test(tencent, nested_duplicate_keys_are_400)
{
        assert_malformed("\"event_type\":1", "\"event_type\":1,\"x\":{\"a\":1,\"a\":2}");
}

Test(tencent, nul_escape_in_a_string_is_400)
{
        assert_malformed("\"app\":\"live\"", "\"app\":\"li\\u0000ve\"");
}

Test(tencent, control_character_between_members_is_400)
{
        assert_malformed("\"app\":", "\x01\"app\":");
}

Test(tencent, control_character_in_a_string_is_400)
{
        assert_malformed("\"app\":\"live\"", "\"app\":\"li\tve\"");
}

Test(tencent, invalid_utf8_in_a_string_is_400)
{
        assert_malformed("\"app\":\"live\"", "\"app\":\"li\xC0\xAFve\"");
}

Test(tencent, encoded_surrogate_in_a_string_is_400)
{
        assert_malformed("\"app\":\"live\"", "\"app\":\"li\xED\xA0\x80ve\"");
}

Test(tencent, text_after_the_object_is_400)
{
        char *compact = edit(push_json, "app", json_string("live")), *body;

        cr_assert(asprintf(&body, "%s x", compact) > 0);
        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "JSON");
        free(body);
        free(compact);
}

Test(tencent, sequence_beyond_2_to_the_53_as_a_number_keeps_every_digit)
{
        char *as_number = edit(push_json, "sequence", json_integer(9007199254740993LL));
        char *as_text = edit(push_json, "sequence", json_string("9007199254740993"));
        char first[65];

        cr_assert(eq(int, map_at(as_number, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(payload_str("sequence"), "9007199254740993");
        memcpy(first, ev.event_id, sizeof(first));
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(as_text, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_id, first);
        free(as_number);
        free(as_text);
}

Test(tencent, escaped_text_is_read_decoded)
{
        char *compact = edit(push_json, "app", json_string("live")), *body;

        body = replaced(compact, "\"stream_id\":\"", "\"stream_id\":\"\\u4e2d\\ud83d\\ude00\\/");
        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert(strncmp(ev.stream_id, "\xE4\xB8\xAD\xF0\x9F\x98\x80/", 8) == 0, "%s",
                  ev.stream_id);
        free(body);
        free(compact);
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

        cr_assert(eq(int, map_at_ms(body, 1703732000123LL), 0), "%s", verdict.message);
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

Test(tencent, a_stream_id_longer_than_its_column_is_a_400)
{
        size_t len = 40000;
        char *name = malloc(len + 1), *body;

        /* A 200 would end in a permanent dead letter ("Data too long"), and Tencent does not
         * retry after a 200: the event would be lost. */
        memset(name, 's', len);
        name[len] = '\0';
        body = edit(push_json, "stream_id", json_string(name));
        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "stream_id: longer than 255");
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

Test(tencent, record_id_uses_its_natural_key_across_retries)
{
        char first[65], id[65];
        char *retry = signed_body(record_json, PROBE_KEY, json_string("1642099999"));

        cr_assert(eq(int, map_at(record_json, RECORD_T - 1), 0), "%s", verdict.message);
        memcpy(first, ev.event_id, sizeof(first));
        expected_id("tencent|100|[\"387702304138941858\",\"1642089445\"]", id);
        cr_assert_str_eq(first, id);
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(retry, RECORD_T - 1), 0), "%s", verdict.message);
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

/* ------------------------------------------------------------ typed payloads */

/* Maps the sample with `field` replaced (json_null(): removed), signed as it was. */
static int map_edited(const char *sample, long long t, const char *field, json_t *value)
{
        char *body = edit(sample, field, value);
        int rc = map_at(body, t - 1);

        free(body);
        return rc;
}

static void assert_refused_edit(const char *sample, long long t, const char *field, json_t *value,
                                const char *in_message)
{
        assert_refused(map_edited(sample, t, field, value), 400, NULL, in_message);
}

static bool payload_has(const char *name)
{
        return json_object_get(ev.payload, name) != NULL;
}

Test(tencent, record_file_maps_to_live_record)
{
        cr_assert(eq(int, map_at(record_json, RECORD_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "record.file");
        cr_assert_str_eq(ev.topic, "live.record");
        cr_assert_str_eq(ev.payload_name, "RecordFile");
        cr_assert_str_eq(ev.stream_id, "test_stream");
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_str_eq(payload_str("file_id"), "387702304138941858");
        cr_assert_str_eq(payload_str("video_url"),
                         "http://12345678.vod2.myqcloud.com/xxxx/yyyy/zzzz.m3u8");
        cr_assert_str_eq(payload_str("file_format"), "hls");
        cr_assert_str_eq(payload_str("session_key"), "2918085116267032069"); /* from callback_ext */
        cr_assert(eq(i64, payload_int("start_time_ms"), 1642089445316LL));   /* + start_time_usec */
        cr_assert(eq(i64, payload_int("end_time_ms"), 1642089598618LL));
        cr_assert(eq(i64, payload_int("duration_s"), 154));
        cr_assert(eq(i64, payload_int("file_size"), 277941079));
        /* No event_time in a 100: the file is ready at its end. */
        cr_assert(eq(i64, ev.event_time_ms, 1642089598000LL));
}

Test(tencent, record_numbers_as_strings_are_accepted)
{
        static const char *const fields[] = {"event_type",      "start_time", "end_time",
                                             "start_time_usec", "duration",   "file_size"};
        char *body = strdup(record_json), *next;

        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                json_t *root = json_loads(body, 0, NULL);
                char text[32];

                snprintf(text, sizeof(text), "%lld",
                         (long long)json_integer_value(json_object_get(root, fields[i])));
                json_decref(root);
                next = edit(body, fields[i], json_string(text));
                free(body);
                body = next;
        }
        cr_assert(eq(int, map_at(body, RECORD_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "record.file");
        cr_assert(eq(i64, payload_int("start_time_ms"), 1642089445316LL));
        cr_assert(eq(i64, payload_int("end_time_ms"), 1642089598618LL));
        cr_assert(eq(i64, payload_int("duration_s"), 154));
        cr_assert(eq(i64, payload_int("file_size"), 277941079));
        free(body);
}

Test(tencent, record_file_format_is_lower_cased)
{
        cr_assert(eq(int, map_edited(record_json, RECORD_T, "file_format", json_string("MP4")), 0),
                  "%s", verdict.message);
        cr_assert_str_eq(payload_str("file_format"), "mp4");
}

Test(tencent, record_file_id_stands_in_for_a_missing_file_id)
{
        char *a = edit(record_json, "file_id", json_null());
        char *body = edit(a, "record_file_id", json_string("rf-42"));

        cr_assert(eq(int, map_at(body, RECORD_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(payload_str("file_id"), "rf-42");
        free(a);
        free(body);
}

Test(tencent, record_without_any_file_id_is_400_naming_file_id)
{
        char *a = edit(record_json, "file_id", json_null());

        assert_refused_edit(a, RECORD_T, "record_file_id", json_null(), "file_id is missing");
        free(a);
}

Test(tencent, record_with_an_empty_file_id_is_400)
{
        char *a = edit(record_json, "file_id", json_string(""));

        assert_refused_edit(a, RECORD_T, "record_file_id", json_null(), "file_id: expected");
        free(a);
}

Test(tencent, record_without_video_url_is_400)
{
        assert_refused_edit(record_json, RECORD_T, "video_url", json_null(),
                            "video_url is missing");
}

Test(tencent, record_with_a_video_url_that_is_not_text_is_400)
{
        assert_refused_edit(record_json, RECORD_T, "video_url", json_true(), "video_url: expected");
}

Test(tencent, record_without_stream_id_is_400)
{
        char *a = edit(record_json, "stream_id", json_null());

        assert_refused_edit(a, RECORD_T, "channel_id", json_null(), "stream_id is missing");
        free(a);
}

Test(tencent, record_without_start_time_starts_at_end_minus_duration)
{
        cr_assert(eq(int, map_edited(record_json, RECORD_T, "start_time", json_null()), 0), "%s",
                  verdict.message);
        cr_assert(eq(i64, payload_int("start_time_ms"), 1642089598618LL - 154000));
}

Test(tencent, record_optional_fields_that_are_malformed_are_left_out)
{
        char *a = edit(record_json, "file_size", json_string("lots"));
        char *b = edit(a, "callback_ext", json_string("{not json"));
        char *body = edit(b, "end_time", json_real(1.5));

        cr_assert(eq(int, map_at(body, RECORD_T - 1), 0), "%s", verdict.message);
        cr_assert_not(payload_has("file_size"));
        cr_assert_not(payload_has("session_key"));
        cr_assert_not(payload_has("end_time_ms"));
        cr_assert(eq(i64, payload_int("start_time_ms"), 1642089445316LL));
        free(a);
        free(b);
        free(body);
}

Test(tencent, record_status_maps_to_live_record)
{
        char id[65];

        cr_assert(eq(int, map_at(record_status_json, STATUS_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "record.status");
        cr_assert_str_eq(ev.topic, "live.record");
        cr_assert_str_eq(ev.payload_name, "RecordStatus");
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_str_eq(payload_str("record_event"), "record_ended");
        cr_assert_str_eq(payload_str("session_key"), "2918085116267032069");
        cr_assert_str_eq(payload_str("seq"), "3266441426274648065");
        cr_assert(eq(i64, ev.event_time_ms, 1700207929000LL));
        expected_id("tencent|332|[\"3266441426274648065\"]", id);
        cr_assert_str_eq(ev.event_id, id);
}

Test(tencent, record_status_spelled_recordevent_is_accepted)
{
        char *a = edit(record_status_json, "record_event", json_null());
        char *body = edit(a, "recordevent", json_string("record_paused"));

        cr_assert(eq(int, map_at(body, STATUS_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(payload_str("record_event"), "record_paused");
        free(a);
        free(body);
}

Test(tencent, record_status_without_record_event_is_400)
{
        assert_refused_edit(record_status_json, STATUS_T, "record_event", json_null(),
                            "record_event is missing");
}

Test(tencent, screenshot_maps_to_live_snapshot)
{
        char id[65];

        cr_assert(eq(int, map_at(screenshot_json, SNAP_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "snapshot");
        cr_assert_str_eq(ev.topic, "live.snapshot");
        cr_assert_str_eq(ev.payload_name, "Snapshot");
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_str_eq(payload_str("pic_url"),
                         "/test_stream/test_stream-screenshot-10-12-05-1280x720.jpg");
        cr_assert_str_eq(payload_str("pic_full_url"),
                         "http://your.cos.region.myqcloud.com/test_stream/"
                         "test_stream-screenshot-10-12-05-1280x720.jpg");
        cr_assert(eq(i64, payload_int("create_time_ms"), 1622599925000LL));
        cr_assert(eq(i64, payload_int("width"), 1280));
        cr_assert(eq(i64, payload_int("height"), 720));
        cr_assert(eq(i64, payload_int("file_size"), 30670));
        cr_assert(eq(i64, ev.event_time_ms, 1622599925000LL)); /* the picture's own time */
        expected_id("tencent|200|[\"/test_stream/test_stream-screenshot-10-12-05-1280x720.jpg\"]",
                    id);
        cr_assert_str_eq(ev.event_id, id);
}

Test(tencent, screenshot_numbers_as_strings_are_accepted)
{
        char *a = edit(screenshot_json, "create_time", json_string("1622599925"));
        char *b = edit(a, "width", json_string("1280"));
        char *body = edit(b, "file_size", json_string("30670"));

        cr_assert(eq(int, map_at(body, SNAP_T - 1), 0), "%s", verdict.message);
        cr_assert(eq(i64, payload_int("create_time_ms"), 1622599925000LL));
        cr_assert(eq(i64, payload_int("width"), 1280));
        cr_assert(eq(i64, payload_int("file_size"), 30670));
        free(a);
        free(b);
        free(body);
}

Test(tencent, screenshot_gives_anchor_and_room_from_stream_param)
{
        cr_assert(eq(int,
                     map_edited(screenshot_json, SNAP_T, "stream_param",
                                json_string("txSecret=x&anchor_id=a7&room_id=r9")),
                     0),
                  "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "a7");
        cr_assert_str_eq(ev.room_id, "r9");
}

Test(tencent, screenshot_without_create_time_is_400)
{
        assert_refused_edit(screenshot_json, SNAP_T, "create_time", json_null(),
                            "create_time is missing");
}

Test(tencent, screenshot_with_a_malformed_create_time_is_400)
{
        assert_refused_edit(screenshot_json, SNAP_T, "create_time", json_string("yesterday"),
                            "create_time: expected");
}

Test(tencent, screenshot_without_pic_url_keeps_the_full_url)
{
        cr_assert(eq(int, map_edited(screenshot_json, SNAP_T, "pic_url", json_null()), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(payload_str("pic_url"), payload_str("pic_full_url"));
}

Test(tencent, screenshot_without_any_picture_is_400)
{
        char *a = edit(screenshot_json, "pic_full_url", json_null());

        assert_refused_edit(a, SNAP_T, "pic_url", json_null(), "pic_url is missing");
        free(a);
}

Test(tencent, image_moderation_maps_to_live_audit)
{
        char id[65];

        cr_assert(eq(int, map_at(image_json, IMAGE_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "audit.image");
        cr_assert_str_eq(ev.topic, "live.audit");
        cr_assert_str_eq(ev.payload_name, "AuditVerdict");
        cr_assert_str_eq(ev.stream_id, "test_stream"); /* from streamId */
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_str_eq(payload_str("source"), "tencent.image");
        cr_assert_str_eq(payload_str("suggestion"), "Block");
        cr_assert_str_eq(payload_str("label"), "Porn");
        cr_assert_str_eq(payload_str("sub_label"), "PornHigh");
        cr_assert_str_eq(payload_str("img"), "http://1.1.1.1/download/porn/test.jpg");
        cr_assert(eq(i64, payload_int("score"), 99));
        cr_assert_not(payload_has("reason"));                  /* ocrMsg is empty */
        cr_assert(eq(i64, ev.event_time_ms, 1610640000000LL)); /* screenshotTime */
        expected_id("tencent|317|[\"test_stream\",\"http://1.1.1.1/download/porn/test.jpg\","
                    "\"1610640000\"]",
                    id);
        cr_assert_str_eq(ev.event_id, id);
}

Test(tencent, image_moderation_score_is_the_highest_of_the_array)
{
        json_t *scores = json_pack("[i,s,i]", 40, "87", 12);

        cr_assert(eq(int, map_edited(image_json, IMAGE_T, "score", scores), 0), "%s",
                  verdict.message);
        cr_assert(eq(i64, payload_int("score"), 87));
}

Test(tencent, image_moderation_scalar_score_is_accepted)
{
        cr_assert(eq(int, map_edited(image_json, IMAGE_T, "score", json_string("64")), 0), "%s",
                  verdict.message);
        cr_assert(eq(i64, payload_int("score"), 64));
}

Test(tencent, image_moderation_without_stream_is_400_naming_stream_id)
{
        char *a = edit(image_json, "streamId", json_null());

        assert_refused_edit(a, IMAGE_T, "channelId", json_null(), "streamId is missing");
        free(a);
}

Test(tencent, image_moderation_without_suggestion_is_400)
{
        assert_refused_edit(image_json, IMAGE_T, "suggestion", json_null(),
                            "suggestion is missing");
}

Test(tencent, audio_moderation_maps_to_live_audit)
{
        cr_assert(eq(int, map_at(audio_json, AUDIO_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "audit.audio");
        cr_assert_str_eq(ev.topic, "live.audit");
        cr_assert_str_eq(ev.payload_name, "AuditVerdict");
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_str_eq(payload_str("source"), "tencent.audio");
        cr_assert_str_eq(payload_str("suggestion"), "Review"); /* HitFlag 1 */
        cr_assert_str_eq(payload_str("label"), "Abuse");
        cr_assert(eq(i64, payload_int("score"), 92));
        cr_assert_str_eq(payload_str("reason"), "sample transcript text");
        cr_assert_not(payload_has("sub_label")); /* SubTag is empty */
        cr_assert_not(payload_has("img"));
}

/* A verdict quoting more speech than live_audit_logs.reason holds keeps its first characters. */
Test(tencent, a_long_moderation_excerpt_is_cut_to_its_column_not_refused)
{
        char text[3 * 300 + 1] = "", want[3 * 255 + 1] = "";

        for (int i = 0; i < 300; i++)
                strcat(text, "\xe8\xaf\xad"); /* one three-byte character */
        memcpy(want, text, 3 * 255);
        cr_assert(eq(int, map_edited(audio_json, AUDIO_T, "asr_text", json_string(text)), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(payload_str("reason"), want);
        cr_assert(
                field_fits(payload_str("reason"), strlen(payload_str("reason")), FIELD_MAX_REASON));
        webhook_event_fini(&ev);
        memset(&ev, 0, sizeof(ev));
        cr_assert(eq(int, map_edited(image_json, IMAGE_T, "ocrMsg", json_string(text)), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(payload_str("reason"), want);
}

Test(tencent, audio_moderation_without_a_hit_passes)
{
        cr_assert(eq(int, map_edited(audio_json, AUDIO_T, "HitFlag", json_string("0")), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(payload_str("suggestion"), "Pass");
}

Test(tencent, audio_moderation_vendor_suggestion_wins)
{
        cr_assert(eq(int, map_edited(audio_json, AUDIO_T, "suggestion", json_string("Block")), 0),
                  "%s", verdict.message);
        cr_assert_str_eq(payload_str("suggestion"), "Block");
}

Test(tencent, audio_moderation_without_hit_flag_is_400)
{
        assert_refused_edit(audio_json, AUDIO_T, "HitFlag", json_null(), "HitFlag is missing");
}

Test(tencent, audio_moderation_hit_flag_out_of_range_is_400)
{
        assert_refused_edit(audio_json, AUDIO_T, "HitFlag", json_integer(2),
                            "HitFlag: expected 0 or 1");
}

/* The untyped types keep going to live.other, once they are signed. */
static void assert_other(const char *sample)
{
        char *body = signed_body(sample, PROBE_KEY, json_integer(1700000000));

        cr_assert(eq(int, map_at(body, 1700000000 - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "other");
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_null(ev.payload_name);
        cr_assert_null(ev.payload);
        cr_assert(eq(int, (int)strlen(ev.event_id), 64));
        free(body);
}

Test(tencent, push_abnormal_goes_to_live_other)
{
        char id[65];

        assert_other(push_abnormal_json);
        cr_assert_str_eq(ev.stream_id, "test_stream");
        cr_assert(eq(i64, ev.event_time_ms, 1700000000LL * 1000 - 1000)); /* no event time: now */
        expected_id("tencent|321|[\"2210464508206756938\",\"1670588074971\"]", id);
        cr_assert_str_eq(ev.event_id, id);
}

Test(tencent, relay_goes_to_live_other)
{
        assert_other(relay_json);
        cr_assert_str_eq(ev.stream_id, "testvod");
}

Test(tencent, live_summary_goes_to_live_other)
{
        char *body = edit(push_abnormal_json, "event_type", json_integer(348));

        assert_other(body);
        free(body);
}

Test(tencent, unsigned_push_abnormal_is_refused)
{
        assert_refused(map_at(push_abnormal_json, 1700000000), 401, "missing", "sign");
}

/* Every signed sample of shared/payloads/tencent-css and what it becomes. */
struct sample {
        const char *json;
        long long t;
        const char *topic;
        const char *payload_name; /* NULL: null payload */
};

static const struct sample samples[] = {
        {push_json, PUSH_T, "live.stream", "StreamBegin"},
        {interrupt_json, 1703735803LL, "live.stream", "StreamEnd"},
        {record_json, RECORD_T, "live.record", "RecordFile"},
        {record_status_json, STATUS_T, "live.record", "RecordStatus"},
        {screenshot_json, SNAP_T, "live.snapshot", "Snapshot"},
        {image_json, IMAGE_T, "live.audit", "AuditVerdict"},
        {audio_json, AUDIO_T, "live.audit", "AuditVerdict"},
};

#define SAMPLE_CNT (sizeof(samples) / sizeof(samples[0]))

Test(tencent, every_sample_resigned_keeps_its_event_id)
{
        for (size_t i = 0; i < SAMPLE_CNT; i++) {
                char first[65],
                        *retry = signed_body(samples[i].json, PROBE_KEY, json_string("1999999999"));

                cr_assert(eq(int, map_at(samples[i].json, samples[i].t - 1), 0), "sample %zu: %s",
                          i, verdict.message);
                cr_assert_str_eq(ev.topic, samples[i].topic, "sample %zu", i);
                memcpy(first, ev.event_id, sizeof(first));
                webhook_event_fini(&ev);
                cr_assert(eq(int, map_at(retry, samples[i].t - 1), 0), "sample %zu: %s", i,
                          verdict.message);
                cr_assert_str_eq(ev.event_id, first, "sample %zu", i);
                webhook_event_fini(&ev);
                free(retry);
        }
}

Test(tencent, every_topic_chosen_is_listed_in_tencent_topics)
{
        for (size_t i = 0; i < SAMPLE_CNT; i++) {
                bool is_listed = false;

                cr_assert(eq(int, map_at(samples[i].json, samples[i].t - 1), 0), "sample %zu: %s",
                          i, verdict.message);
                for (size_t j = 0; tencent_topics[j]; j++)
                        is_listed |= strcmp(tencent_topics[j], ev.topic) == 0;
                cr_assert(is_listed, "sample %zu: %s is not in tencent_topics", i, ev.topic);
                webhook_event_fini(&ev);
        }
}

Test(tencent, typed_samples_have_distinct_event_ids)
{
        char ids[SAMPLE_CNT][65];

        for (size_t i = 0; i < SAMPLE_CNT; i++) {
                cr_assert(eq(int, map_at(samples[i].json, samples[i].t - 1), 0), "sample %zu: %s",
                          i, verdict.message);
                memcpy(ids[i], ev.event_id, sizeof(ids[i]));
                webhook_event_fini(&ev);
                for (size_t j = 0; j < i; j++)
                        cr_assert_str_neq(ids[i], ids[j], "samples %zu and %zu", j, i);
        }
}

Test(tencent, every_typed_sample_refuses_a_missing_stream)
{
        for (size_t i = 0; i < SAMPLE_CNT; i++) {
                char *a = edit(samples[i].json, "stream_id", json_null());
                char *b = edit(a, "streamId", json_null());
                char *c = edit(b, "channel_id", json_null());
                char *body = edit(c, "channelId", json_null());

                cr_assert(eq(int, map_at(body, samples[i].t - 1), -1), "sample %zu", i);
                cr_assert(eq(u32, verdict.status, 400), "sample %zu", i);
                cr_assert(strstr(verdict.message, "is missing") != NULL, "sample %zu: %s", i,
                          verdict.message);
                cr_assert_null(ev.payload);
                free(a);
                free(b);
                free(c);
                free(body);
        }
}

/* ------------------------------------------------------------ the codec takes what the module
 * makes */

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
        env = (struct envelope){.event_id = ev.event_id,
                                .vendor = ev.vendor,
                                .event_type = ev.event_type,
                                .stream_id = ev.stream_id,
                                .anchor_id = ev.anchor_id,
                                .room_id = ev.room_id,
                                .event_time_ms = ev.event_time_ms,
                                .receive_time_ms = now_s * 1000,
                                .trace_id = "0123456789abcdef",
                                .raw = body,
                                .raw_len = strlen(body)};
        cr_assert(eq(int,
                     codec_encode(c, &env, ev.payload_name, ev.payload, &buf, &len, errstr,
                                  sizeof(errstr)),
                     0),
                  "%s", errstr);
        cr_assert(eq(int, codec_decode(c, buf, len, &out, errstr, sizeof(errstr)), 0), "%s",
                  errstr);
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

Test(tencent, every_sample_fits_the_schema)
{
        for (size_t i = 0; i < SAMPLE_CNT; i++) {
                assert_encodes(samples[i].json, samples[i].t - 1);
                if (samples[i].payload_name)
                        cr_assert_str_eq(ev.payload_name, samples[i].payload_name, "sample %zu", i);
                webhook_event_fini(&ev);
        }
}

Test(tencent, other_type_fits_the_schema)
{
        char *body = signed_body(relay_json, PROBE_KEY, json_integer(1700000000));

        assert_encodes(body, 1700000000 - 1);
        free(body);
}

Test(tencent, record_without_optional_fields_fits_the_schema)
{
        static const char *const optional[] = {"file_format",   "start_time", "end_time",
                                               "duration",      "file_size",  "callback_ext",
                                               "record_file_id"};
        char *body = strdup(record_json), *next;

        for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
                next = edit(body, optional[i], json_null());
                free(body);
                body = next;
        }
        assert_encodes(body, RECORD_T - 1);
        cr_assert_str_eq(ev.payload_name, "RecordFile");
        free(body);
}

/* ------------------------------------------------------------ what the columns hold */

/* A string of n copies of unit (a UTF-8 character), for the length tests. */
static json_t *repeated(const char *unit, int n)
{
        char buf[2048] = "";

        for (int i = 0; i < n; i++)
                strcat(buf, unit);
        return json_string(buf);
}

static char *param_with(const char *name, const char *unit, int n)
{
        char buf[2048];

        snprintf(buf, sizeof(buf), "%s=", name);
        for (int i = 0; i < n; i++)
                strcat(buf, unit);
        return strdup(buf);
}

Test(tencent, every_id_that_fits_its_column_is_accepted_and_one_more_is_a_400)
{
        char *p;

        /* live_streams.stream_id VARCHAR(255), in characters (utf8mb4) */
        cr_assert(eq(int, map_edited(push_json, PUSH_T, "stream_id", repeated("\xe6\xb5\x81", 255)),
                     0),
                  "%s", verdict.message);
        webhook_event_fini(&ev); /* map_at() does not finish the last event */
        assert_refused_edit(push_json, PUSH_T, "stream_id", repeated("s", 256),
                            "stream_id: longer than 255");
        /* anchors.anchor_id and room ids VARCHAR(64), from stream_param */
        p = param_with("anchor_id", "a", 64);
        cr_assert(eq(int, map_edited(push_json, PUSH_T, "stream_param", json_string(p)), 0), "%s",
                  verdict.message);
        webhook_event_fini(&ev);
        free(p);
        p = param_with("anchor_id", "a", 65);
        assert_refused_edit(push_json, PUSH_T, "stream_param", json_string(p),
                            "stream_param: anchor_id longer than 64");
        free(p);
        p = param_with("room_id", "r", 65);
        assert_refused_edit(push_json, PUSH_T, "stream_param", json_string(p),
                            "stream_param: room_id longer than 64");
        free(p);
        /* live_streams.vendor_session VARCHAR(128) */
        cr_assert(eq(int, map_edited(push_json, PUSH_T, "sequence", repeated("9", 128)), 0), "%s",
                  verdict.message);
        webhook_event_fini(&ev);
        assert_refused_edit(push_json, PUSH_T, "sequence", repeated("9", 129),
                            "sequence: longer than 128");
}

/* ------------------------------------------------------------ unsigned 321 and 314 */

static int map_vouched(const char *body)
{
        const struct webhook_request req = {
                .body = body, .len = strlen(body), .now_ms = 1700000000LL * 1000};

        webhook_event_fini(&ev);
        memset(&verdict, 0, sizeof(verdict));
        return tencent_map_vouched(tc, &req, &ev, &verdict);
}

Test(tencent, unsigned_push_abnormal_and_relay_are_kept_unverified_when_the_source_is_vouched)
{
        cr_assert(eq(int, map_vouched(push_abnormal_json), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_str_eq(ev.event_type, "other.unverified");
        cr_assert_str_eq(ev.stream_id, "test_stream");
        cr_assert(eq(int, map_vouched(relay_json), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "other.unverified");
        cr_assert_str_eq(ev.stream_id, "testvod");
}

Test(tencent, without_a_voucher_or_for_other_types_unsigned_stays_401)
{
        char *unsigned_push = edit(push_json, "sign", json_null()), *no_t;

        webhook_event_fini(&ev);
        assert_refused(map_at(relay_json, 1700000000), 401, "missing", "sign");
        /* A stream begin acts on the stream: never unsigned, vouched or not. */
        no_t = edit(unsigned_push, "t", json_null());
        assert_refused(map_vouched(no_t), 401, "missing", "sign");
        /* A 321 with a wrong signature is a forgery, not an unsigned sample. */
        {
                char *forged = edit(push_abnormal_json, "sign",
                                    json_string("00000000000000000000000000000000"));
                char *with_t = edit(forged, "t", json_integer(1700000600));

                assert_refused(map_vouched(with_t), 401, "mismatch", "sign");
                free(forged);
                free(with_t);
        }
        free(unsigned_push);
        free(no_t);
}
