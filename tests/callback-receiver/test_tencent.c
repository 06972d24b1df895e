/* test_tencent.c: parsing, signature checks and mapping of Tencent CSS callbacks
 * (callback-receiver/tencent.c): the samples, the fixture, signatures, malformed bodies and the
 * mapping here; tencent/payloads.c: event ids, typed payloads and what the codec takes;
 * tencent/columns.c: what the columns hold and the unsigned 321 and 314. */
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
#include "tencent.h"
#include "tencent/fixture.h"
#include "refusal.h"

/* Samples from shared/payloads/tencent-css, signed there with PROBE_KEY (tencent/fixture.h). */

const char push_json[] =
        "{\"app\":\"test.domain.com\",\"appid\":12345678,\"appname\":\"live\","
        "\"channel_id\":\"test_stream\",\"errcode\":0,\"errmsg\":\"ok\",\"event_time\":1703731478,"
        "\"event_type\":1,\"height\":0,\"idc_id\":34,\"node\":\"42.81.194.37\","
        "\"sequence\":\"2210464508206756938\",\"set_id\":2,"
        "\"sign\":\"b5299e53c0c3c6b1e1e064f01f9f315b\",\"stream_id\":\"test_stream\","
        "\"stream_param\":\"stream_param=test\",\"t\":1703732078,\"user_ip\":\"1.1.1.1\",\"width\":0}";

const char interrupt_json[] =
        "{\"app\":\"test.domain.com\",\"appid\":12345678,\"appname\":\"live\","
        "\"channel_id\":\"test_stream\",\"errcode\":1,\"errmsg\":\"recv rtmp deleteStream\","
        "\"event_time\":1703735203,\"event_type\":0,\"height\":720,\"idc_id\":34,"
        "\"node\":\"42.81.194.37\",\"push_duration\":\"3725118\","
        "\"sequence\":\"2210464508206756938\",\"set_id\":2,"
        "\"sign\":\"5ba3f1156b39031427f1ad276e9b5bb8\",\"stream_id\":\"test_stream\","
        "\"stream_param\":\"stream_param=test\",\"t\":1703735803,\"user_ip\":\"1.1.1.1\",\"width\":1280}";

const char record_json[] =
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

const char record_status_json[] =
        "{\"appid\":123456789,\"appname\":\"live\",\"domain\":\"test.livepush.myqcloud.com\","
        "\"event_time\":1700207929,\"event_type\":332,"
        "\"record_detail\":\"{\\\"file_format\\\":2,\\\"record_bps\\\":0,"
        "\\\"start_model\\\":1,\\\"record_content\\\":1,\\\"source_type\\\":1,"
        "\\\"codec_temp_id\\\":0}\",\"record_event\":\"record_ended\","
        "\"seq\":\"3266441426274648065\",\"session_id\":\"2918085116267032069\","
        "\"stream_id\":\"test_stream\",\"task_id\":\"\","
        "\"sign\":\"a05ed83c6b595e3abedf9cef9a8dde7e\",\"t\":1700208529}";

const char screenshot_json[] =
        "{\"app\":\"test.domain.com\",\"appname\":\"live\",\"channel_id\":\"test_stream\","
        "\"create_time\":1622599925,\"event_type\":200,\"file_size\":30670,\"height\":720,"
        "\"pic_full_url\":\"http://your.cos.region.myqcloud.com/test_stream/"
        "test_stream-screenshot-10-12-05-1280x720.jpg\","
        "\"pic_url\":\"/test_stream/test_stream-screenshot-10-12-05-1280x720.jpg\","
        "\"sign\":\"56c6fe44c4d236879a6094c2f96b62ff\",\"stream_id\":\"test_stream\","
        "\"stream_param\":\"txSecret=ca3e25e5dc17a6f9909a9ae7281e300d&txTime=60B83800\","
        "\"t\":1622600525,\"width\":1280}";

const char image_json[] =
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

const char audio_json[] =
        "{\"appid\":12345678,\"stream_id\":\"test_stream\",\"channel_id\":\"test_stream\","
        "\"domain\":\"test.domain.com\",\"path\":\"live\",\"HitFlag\":1,\"Score\":92,"
        "\"SubTag\":\"\",\"task_id\":1234567,\"status\":2,"
        "\"asr_text\":\"sample transcript text\","
        "\"cdn_url\":\"http://test.domain.com/live/test_stream.flv\",\"duration\":30,"
        "\"label\":\"Abuse\",\"event_type\":315,"
        "\"sign\":\"3b46767f3692edf6343bd7acb75a8f8e\",\"t\":1700000600}";

/* push-abnormal.json and relay.json: the doc samples carry no t/sign. */
const char push_abnormal_json[] =
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

const char relay_json[] =
        "{\"appid\":12345678,\"callback_event\":\"TaskStart\",\"event_type\":314,"
        "\"interface\":\"general_callback\",\"msg\":\"{\\\"task_start_time\\\":0}\","
        "\"product_name\":\"pullpush\","
        "\"source_urls\":\"[\\\"http://example.com/live/source/playlist.m3u8\\\"]\\n\","
        "\"stream_id\":\"testvod\",\"task_id\":\"118148\","
        "\"to_url\":\"rtmp://test.livepush.myqcloud.com/live/testvod\"}";

struct tencent *tc;
struct webhook_event ev;
struct webhook_verdict verdict;

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

int map_at(const char *body, long long now_s)
{
        return map_at_ms(body, now_s * 1000);
}

/* The sample signed with key for t (a JSON number or string); the caller frees the text. */
char *signed_body(const char *sample, const char *key, json_t *t)
{
        char msg[512], sign[33], *with_t, *s;

        snprintf(msg, sizeof(msg), "%s%s", key, json_is_string(t) ? json_string_value(t) : "");
        if (json_is_integer(t))
                snprintf(msg, sizeof(msg), "%s%lld", key, (long long)json_integer_value(t));
        crypto_md5_hex(msg, strlen(msg), sign);
        with_t = support_json_edit(sample, "t", t);
        s = support_json_edit(with_t, "sign", json_string(sign));
        free(with_t);
        return s;
}

const char *payload_str(const char *name)
{
        return payload_get_text(ev.fields, name);
}

long long payload_int(const char *name)
{
        const struct payload_field *f = payload_get(ev.fields, name);

        cr_assert(f && f->kind == PAYLOAD_INT, "payload field %s is not an integer", name);
        return (long long)f->n;
}

void expected_id(const char *key, char out[65])
{
        crypto_sha256_hex(key, strlen(key), out);
}

void assert_refused(int rc, unsigned int status, const char *auth_failure, const char *in_message)
{
        assert_verdict_refused(&verdict, rc, status, auth_failure, in_message);
        cr_assert_null(ev.payload);
        cr_assert_null(ev.fields);
        cr_assert_null(ev.stream_id);
}

/* ------------------------------------------------------------ signatures */

Test(tencent, valid_sign_of_key_and_t_is_accepted)
{
        cr_assert(eq(int, map_at(push_json, PUSH_T - 1), 0), "%s", verdict.message);
}

Test(tencent, wrong_sign_is_refused_as_mismatch)
{
        char *body = support_json_edit(push_json, "sign",
                                       json_string("b5299e53c0c3c6b1e1e064f01f9f3150"));

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
        char *body = support_json_edit(push_json, "sign",
                                       json_string("B5299E53C0C3C6B1E1E064F01F9F315B"));

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        free(body);
}

Test(tencent, sign_of_wrong_length_is_refused)
{
        char *body = support_json_edit(push_json, "sign", json_string("b5299e53"));

        assert_refused(map_at(body, PUSH_T - 1), 401, "mismatch", "sign");
        free(body);
}

Test(tencent, missing_sign_is_refused_as_missing)
{
        char *body = support_json_edit(push_json, "sign", json_null());

        assert_refused(map_at(body, PUSH_T - 1), 401, "missing", "sign");
        free(body);
}

Test(tencent, missing_t_is_refused_as_missing)
{
        char *body = support_json_edit(push_json, "t", json_null());

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
        char *a = support_json_edit(push_json, "stream_id", json_null());
        char *body = support_json_edit(a, "channel_id", json_null());

        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "stream_id");
        free(a);
        free(body);
}

Test(tencent, empty_stream_id_is_named)
{
        char *body = support_json_edit(push_json, "stream_id", json_string(""));

        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "stream_id");
        free(body);
}

Test(tencent, missing_event_type_is_named)
{
        char *body = support_json_edit(push_json, "event_type", json_null());

        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "event_type");
        free(body);
}

Test(tencent, event_type_that_is_not_an_integer_is_named)
{
        char *body = support_json_edit(push_json, "event_type", json_string("push"));

        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "event_type");
        free(body);
}

Test(tencent, fractional_event_type_is_named)
{
        char *body = support_json_edit(push_json, "event_type", json_real(1.5));

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
        char *compact = support_json_edit(push_json, "app", json_string("live")), *body;

        body = replaced(compact, from, to);
        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "JSON");
        free(body);
        free(compact);
}

Test(tencent, integral_real_event_type_is_named)
{
        char *body = support_json_edit(push_json, "event_type", json_real(1.0));

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
        char *compact = support_json_edit(push_json, "app", json_string("live")), *body;

        cr_assert(asprintf(&body, "%s x", compact) > 0);
        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "JSON");
        free(body);
        free(compact);
}

Test(tencent, sequence_beyond_2_to_the_53_as_a_number_keeps_every_digit)
{
        char *as_number =
                support_json_edit(push_json, "sequence", json_integer(9007199254740993LL));
        char *as_text = support_json_edit(push_json, "sequence", json_string("9007199254740993"));
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
        char *compact = support_json_edit(push_json, "app", json_string("live")), *body;

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
        char *body = support_json_edit(interrupt_json, "push_duration", json_integer(42));

        cr_assert(eq(int, map_at(body, 1703735803 - 1), 0), "%s", verdict.message);
        cr_assert(eq(i64, payload_int("push_duration_ms"), 42));
        free(body);
}

Test(tencent, numbers_as_strings_are_accepted)
{
        char *a = support_json_edit(interrupt_json, "event_type", json_string("0"));
        char *b = support_json_edit(a, "event_time", json_string("1703735203"));
        char *c = support_json_edit(b, "sequence", json_integer(77));
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
        char *body = support_json_edit(push_json, "event_time", json_null());

        cr_assert(eq(int, map_at_ms(body, 1703732000123LL), 0), "%s", verdict.message);
        cr_assert(eq(i64, ev.event_time_ms, 1703732000123LL));
        free(body);
}

Test(tencent, channel_id_stands_in_for_a_missing_stream_id)
{
        char *body = support_json_edit(push_json, "stream_id", json_null());

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.stream_id, "test_stream");
        free(body);
}

Test(tencent, unicode_stream_id_is_kept)
{
        const char *name = "\xe7\x9b\xb4\xe6\x92\xad_\xf0\x9f\x8e\xa5_stream"; /* 直播_🎥_stream */
        char *body = support_json_edit(push_json, "stream_id", json_string(name));

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
        body = support_json_edit(push_json, "stream_id", json_string(name));
        assert_refused(map_at(body, PUSH_T - 1), 400, NULL, "stream_id: longer than 255");
        free(name);
        free(body);
}

Test(tencent, anchor_and_room_come_from_stream_param_decoded)
{
        char *body = support_json_edit(
                push_json, "stream_param",
                json_string("txSecret=x&anchor_id=a%2F1+b&room_id=%E6%88%BF%E9%97%B4"));

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "a/1 b");
        cr_assert_str_eq(ev.room_id, "\xe6\x88\xbf\xe9\x97\xb4"); /* 房间 */
        free(body);
}

Test(tencent, room_defaults_to_the_anchor)
{
        char *body = support_json_edit(push_json, "stream_param",
                                       json_string("anchor_id=a42&txTime=5DEBEC80"));

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "a42");
        cr_assert_str_eq(ev.room_id, "a42");
        free(body);
}

Test(tencent, undecodable_anchor_is_kept_as_sent)
{
        char *body = support_json_edit(push_json, "stream_param",
                                       json_string("anchor_id=a%00b&room_id=%FF"));

        cr_assert(eq(int, map_at(body, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "a%00b");
        cr_assert_str_eq(ev.room_id, "%FF");
        free(body);
}
