/* test_agora.c: verification and mapping of Agora NCS notices (callback-receiver/agora.c). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#include "settings.h"
#include "support.h"
#include "../../callback-receiver/agora.h" /* the Makefile gives tests no -I<program dir> */

#define FIXTURES "tests/fixtures/payloads/agora-ncs/"
#define SECRET   "secret" /* the docs' test vector */
#define SECRET_2 "ncs-secret-after-rotation"

static struct settings cfg;
static struct agora *ag;
static struct webhook_event ev;
static struct webhook_verdict verdict;

/* The request's signature headers as a test sets them. */
static struct {
        const char *v2, *v1;
} hdr;

static const char *fake_lookup(void *ctx, enum webhook_lookup kind, const char *name)
{
        (void)ctx;
        if (kind != WEBHOOK_HEADER)
                return NULL;
        if (strcasecmp(name, "Agora-Signature-V2") == 0)
                return hdr.v2;
        if (strcasecmp(name, "Agora-Signature") == 0)
                return hdr.v1;
        return NULL;
}

static void make(void)
{
        char errstr[256];

        agora_destroy(ag);
        ag = agora_new(&cfg, errstr, sizeof(errstr));
        cr_assert_not_null(ag, "agora_new: %s", errstr);
}

static void setup(void)
{
        memset(&cfg, 0, sizeof(cfg));
        memset(&ev, 0, sizeof(ev));
        memset(&hdr, 0, sizeof(hdr));
        cfg.agora_secrets = (char *)SECRET_2 ", " SECRET;
        cfg.agora_max_age_s = 600;
        cfg.agora_anchor_from = (char *)"channel";
        ag = NULL;
        make();
}

static void teardown(void)
{
        webhook_event_fini(&ev);
        agora_destroy(ag);
}

TestSuite(agora, .init = setup, .fini = teardown);

/* ------------------------------------------------------------ helpers */

static char *read_file(const char *name, size_t *len)
{
        char path[256], *buf;

        snprintf(path, sizeof(path), FIXTURES "%s", name);
        buf = support_read_file(path, len);
        cr_assert_not_null(buf, "cannot read %s", path);
        return buf;
}

/* Lowercase hex HMAC of body under key, computed here independently of agora.c. */
static void sign(const EVP_MD *md, const char *key, const char *body, size_t len, char *out)
{
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int n = 0;

        HMAC(md, key, (int)strlen(key), (const unsigned char *)body, len, mac, &n);
        for (unsigned int i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", mac[i]);
}

static int map_at(const char *body, size_t len, long long now_ms)
{
        const struct webhook_request req = {.body = body,
                                            .len = len,
                                            .now_ms = now_ms,
                                            .path_arg = "",
                                            .trace_id = "test-trace",
                                            .lookup = fake_lookup};

        webhook_event_fini(&ev);
        memset(&verdict, 0, sizeof(verdict));
        return agora_map(ag, &req, &ev, &verdict);
}

static long long notify_ms_of(const char *body)
{
        json_t *root = json_loads(body, 0, NULL);
        long long ms;

        cr_assert_not_null(root);
        ms = json_is_string(json_object_get(root, "notifyMs"))
                     ? strtoll(json_string_value(json_object_get(root, "notifyMs")), NULL, 10)
                     : (long long)json_integer_value(json_object_get(root, "notifyMs"));
        json_decref(root);
        return ms;
}

/* Signs body with key (V2) and maps it a second after its notifyMs. */
static int map_signed_with(const char *key, const char *body)
{
        static char v2[65];

        sign(EVP_sha256(), key, body, strlen(body), v2);
        hdr.v2 = v2;
        return map_at(body, strlen(body), notify_ms_of(body) + 1000);
}

static int map_signed(const char *body)
{
        return map_signed_with(SECRET, body);
}

/* Maps a sample file, signed correctly, and asserts it was accepted. */
static void map_sample(const char *name)
{
        size_t len;
        char *body = read_file(name, &len);
        int rc = map_signed(body);

        free(body);
        cr_assert(eq(int, rc, 0), "%s: %u %s", name, verdict.status, verdict.message);
}

static const char *payload_str(const char *key)
{
        return json_string_value(json_object_get(ev.payload, key));
}

static long long payload_int(const char *key)
{
        json_t *v = json_object_get(ev.payload, key);
        bool is_int = json_is_integer(v);

        cr_assert(is_int, "payload.%s is not an integer", key);
        return (long long)json_integer_value(v);
}

/* ------------------------------------------------------------ the signature */

Test(agora, docs_test_vector_passes_byte_for_byte)
{
        size_t len;
        char *body = read_file("signature-test-vector-body.json", &len);

        hdr.v2 = "6d3320c60b11101395b7fc8f9068748808a0aa1bfa064438e39d1bc2c7d74d99";
        cr_assert(eq(int, map_at(body, len, 1560408533119LL + 5000), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.topic, "live.other"); /* 1/10 is not mapped */
        cr_assert_str_eq(ev.vendor, "agora");
        cr_assert(eq(i64, ev.event_time_ms, 1560408533119LL)); /* eventMs */
        free(body);
}

Test(agora, sha1_signature_only_when_enabled)
{
        size_t len;
        char *body = read_file("signature-test-vector-body.json", &len);

        hdr.v1 = "033c62f40f687675f17f0f41f91a40c71c0f134c";
        cr_assert(eq(int, map_at(body, len, 1560408533119LL), -1));
        cr_assert(eq(u32, verdict.status, 401));
        cr_assert_str_eq(verdict.auth_failure, "missing");
        cfg.agora_accept_sha1 = 1;
        make();
        cr_assert(eq(int, map_at(body, len, 1560408533119LL), 0), "%s", verdict.message);
        hdr.v1 = "033c62f40f687675f17f0f41f91a40c71c0f134d";
        cr_assert(eq(int, map_at(body, len, 1560408533119LL), -1));
        cr_assert_str_eq(verdict.auth_failure, "mismatch");
        free(body);
}

Test(agora, uppercase_hex_and_any_rotated_secret_are_accepted)
{
        size_t len;
        char *body = read_file("bcast-1-publish-start.json", &len);
        char v2[65];

        sign(EVP_sha256(), SECRET_2, body, len, v2);
        for (char *c = v2; *c; c++)
                *c = (char)toupper((unsigned char)*c);
        hdr.v2 = v2;
        cr_assert(eq(int, map_at(body, len, notify_ms_of(body)), 0), "%s", verdict.message);
        free(body);
}

Test(agora, forged_body_or_signature_is_refused)
{
        size_t len;
        char *body = read_file("bcast-1-publish-start.json", &len);
        char v2[65];
        long long now = notify_ms_of(body);

        sign(EVP_sha256(), SECRET, body, len, v2);
        hdr.v2 = v2;
        body[len - 3] ^= 1; /* one bit of the body */
        cr_assert(eq(int, map_at(body, len, now), -1));
        cr_assert(eq(u32, verdict.status, 401));
        cr_assert_str_eq(verdict.auth_failure, "mismatch");
        body[len - 3] ^= 1;
        sign(EVP_sha256(), "not-the-secret", body, len, v2);
        cr_assert(eq(int, map_at(body, len, now), -1));
        cr_assert(eq(u32, verdict.status, 401));
        hdr.v2 = "6d3320c6"; /* too short */
        cr_assert(eq(int, map_at(body, len, now), -1));
        hdr.v2 = NULL;
        cr_assert(eq(int, map_at(body, len, now), -1));
        cr_assert_str_eq(verdict.auth_failure, "missing");
        free(body);
}

Test(agora, stale_or_future_notice_is_refused)
{
        const char *body = "{\"noticeId\":\"n1\",\"productId\":7,\"eventType\":1,"
                           "\"notifyMs\":1700000000000,\"payload\":{\"streamName\":\"s1\"}}";
        char v2[65];

        sign(EVP_sha256(), SECRET, body, strlen(body), v2);
        hdr.v2 = v2;
        cr_assert(eq(int, map_at(body, strlen(body), 1700000000000LL + 601000), -1));
        cr_assert(eq(u32, verdict.status, 401));
        cr_assert_str_eq(verdict.auth_failure, "expired");
        cr_assert(eq(int, map_at(body, strlen(body), 1700000000000LL - 601000), -1));
        cr_assert_str_eq(verdict.auth_failure, "expired");
        cr_assert(eq(int, map_at(body, strlen(body), 1700000000000LL + 599000), 0), "%s",
                  verdict.message);
}

Test(agora, no_secret_answers_503)
{
        cfg.agora_secrets = NULL;
        make();
        cr_assert(eq(int, map_signed("{}"), -1));
        cr_assert(eq(u32, verdict.status, 503));
}

Test(agora, bad_configuration_is_named)
{
        char errstr[256];

        cfg.agora_anchor_from = (char *)"room";
        cr_assert(eq(int, agora_check_config(&cfg, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "LIVEFLOW_AGORA_ANCHOR_FROM") != NULL, "%s", errstr);
}

/* ------------------------------------------------------------ identity */

Test(agora, event_id_follows_the_notice_not_its_attempt)
{
        const char *a = "{\"noticeId\":\"n1\",\"productId\":7,\"eventType\":1,"
                        "\"notifyMs\":1700000000000,\"payload\":{\"streamName\":\"s1\"}}";
        const char *retry = "{\"noticeId\":\"n1\",\"productId\":7,\"eventType\":1,"
                            "\"notifyMs\":1700000004000,\"payload\":{\"streamName\":\"s1\"}}";
        const char *other = "{\"noticeId\":\"n2\",\"productId\":7,\"eventType\":1,"
                            "\"notifyMs\":1700000000000,\"payload\":{\"streamName\":\"s1\"}}";
        char first[65];

        cr_assert(eq(int, map_signed(a), 0), "%s", verdict.message);
        snprintf(first, sizeof(first), "%s", ev.event_id);
        cr_assert(eq(int, map_signed(retry), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_id, first);
        cr_assert(eq(int, map_signed(other), 0), "%s", verdict.message);
        cr_assert_str_neq(ev.event_id, first);
}

Test(agora, numbers_as_strings_and_extra_fields_map_the_same)
{
        const char *body = "{\"noticeId\":2000001428,\"productId\":\"7\",\"eventType\":\"2\","
                           "\"notifyMs\":\"1700000000000\",\"extra\":[1,2],"
                           "\"payload\":{\"streamName\":\"s1\",\"new\":{\"x\":1}}}";

        cr_assert(eq(int, map_signed(body), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "stream.end");
        cr_assert_str_eq(ev.stream_id, "s1");
}

Test(agora, malformed_notices_are_400_naming_the_field)
{
        cr_assert(eq(int,
                     map_signed("{\"noticeId\":\"n\",\"productId\":7,\"eventType\":1,"
                                "\"notifyMs\":1700000000000,\"payload\":{}}"),
                     -1));
        cr_assert(eq(u32, verdict.status, 400));
        cr_assert(strstr(verdict.message, "streamName") != NULL, "%s", verdict.message);
        cr_assert(eq(int, map_signed("{\"productId\":7,\"eventType\":1,\"notifyMs\":1}"), -1));
        cr_assert(strstr(verdict.message, "noticeId") != NULL, "%s", verdict.message);
        cr_assert(eq(int,
                     map_signed("{\"noticeId\":\"n\",\"productId\":7,\"eventType\":1.5,"
                                "\"notifyMs\":1700000000000}"),
                     -1));
        cr_assert(strstr(verdict.message, "eventType") != NULL, "%s", verdict.message);
        cr_assert(eq(int,
                     map_signed("{\"noticeId\":\"n\",\"noticeId\":\"m\",\"productId\":7,"
                                "\"eventType\":1,\"notifyMs\":1700000000000}"),
                     -1));
        cr_assert(eq(u32, verdict.status, 400)); /* duplicate keys */
        hdr.v2 = NULL;
}

/* ------------------------------------------------------------ Broadcast Streaming */

Test(agora, publish_start_and_end_are_the_stream_lifecycle)
{
        map_sample("bcast-1-publish-start.json");
        cr_assert_str_eq(ev.topic, "live.stream");
        cr_assert_str_eq(ev.event_type, "stream.begin");
        cr_assert_str_eq(ev.payload_name, "StreamBegin");
        cr_assert_str_eq(ev.stream_id, "test_stream");
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_str_eq(ev.anchor_id, "test_stream");
        cr_assert_str_eq(ev.room_id, "test_stream");
        cr_assert_str_eq(payload_str("client_ip"), "253.199.199.199");
        cr_assert(eq(i64, ev.event_time_ms, 1611566412700LL));
        map_sample("bcast-2-publish-end.json");
        cr_assert_str_eq(ev.event_type, "stream.end");
        cr_assert(eq(i64, payload_int("close_method"), 1));
}

Test(agora, record_files_go_to_live_record)
{
        map_sample("bcast-3-custom-record-file.json");
        cr_assert_str_eq(ev.topic, "live.record");
        cr_assert_str_eq(ev.payload_name, "RecordFile");
        cr_assert_str_eq(payload_str("file_id"),
                         "live/test_stream/536694d6ef4b06c137b0e8a0a3f225a7_20211122094718109_0_"
                         "20211123051243120.mp4");
        cr_assert_str_eq(payload_str("file_format"), "mp4");
        cr_assert_str_eq(payload_str("session_key"), "536694d6ef4b06c137b0e8a0a3f225a7");
        cr_assert(eq(i64, payload_int("end_time_ms"), 1637644363000LL)); /* 2021-11-23 05:12:43 */
        map_sample("bcast-101-standard-record-file.json");
        cr_assert_str_eq(ev.event_type, "record.file");
        cr_assert(strncmp(payload_str("video_url"), "record/", 7) == 0);
}

Test(agora, snapshots_go_to_live_snapshot_with_the_file_time)
{
        map_sample("bcast-4-custom-snapshot-file.json");
        cr_assert_str_eq(ev.topic, "live.snapshot");
        cr_assert_str_eq(ev.payload_name, "Snapshot");
        cr_assert(eq(i64, payload_int("create_time_ms"), 1637644363000LL));
        map_sample("bcast-102-standard-snapshot-file.json");
        cr_assert(strncmp(payload_str("pic_url"), "snapshot/", 9) == 0);
}

Test(agora, moderation_is_an_audit_verdict_without_an_anchor_of_its_own)
{
        map_sample("bcast-5-custom-moderation-result.json");
        cr_assert_str_eq(ev.topic, "live.audit");
        cr_assert_str_eq(ev.event_type, "audit.image");
        cr_assert_str_eq(payload_str("suggestion"), "Pass");
        cr_assert_str_eq(payload_str("label"), "neutral");
        cr_assert_str_eq(payload_str("source"), "agora.moderation");
        cr_assert(eq(i64, payload_int("score"), 8)); /* porn 0.0825 */
        cr_assert_null(ev.anchor_id);
        cr_assert_str_eq(ev.stream_id, "test_stream");
        map_sample("bcast-103-standard-moderation-result.json");
        cr_assert_str_eq(ev.event_type, "audit.image");
}

Test(agora, block_suggestion_in_any_case_and_unknown_ones_refused)
{
        cr_assert(eq(int,
                     map_signed("{\"noticeId\":\"m1\",\"productId\":7,\"eventType\":5,"
                                "\"notifyMs\":1700000000000,\"payload\":{\"streamName\":\"s\","
                                "\"fileName\":\"a.jpg\",\"suggestion\":\"BLOCK\",\"results\":"
                                "{\"porn\":{\"outputs\":{\"porn\":0.97,\"neutral\":0.01},"
                                "\"scene\":\"porn\"}}}}"),
                     0),
                  "%s", verdict.message);
        cr_assert_str_eq(payload_str("suggestion"), "Block");
        cr_assert(eq(i64, payload_int("score"), 97));
        cr_assert(eq(int,
                     map_signed("{\"noticeId\":\"m2\",\"productId\":7,\"eventType\":5,"
                                "\"notifyMs\":1700000000000,\"payload\":{\"streamName\":\"s\","
                                "\"suggestion\":\"maybe\"}}"),
                     -1));
        cr_assert(eq(u32, verdict.status, 400));
}

Test(agora, media_info_is_kept_on_live_other)
{
        map_sample("bcast-11-publish-media-info.json");
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_str_eq(ev.event_type, "other");
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_null(ev.payload);
}

/* ------------------------------------------------------------ RTC */

Test(agora, channel_create_and_destroy_are_one_session)
{
        map_sample("rtc-101-channel-create.json");
        cr_assert_str_eq(ev.topic, "live.stream");
        cr_assert_str_eq(ev.event_type, "stream.begin");
        cr_assert_str_eq(ev.stream_id, "test_webhook");
        cr_assert(eq(i64, ev.event_time_ms, 1560399999000LL)); /* payload ts */
        map_sample("rtc-102-channel-destroy.json");
        cr_assert_str_eq(ev.event_type, "stream.end");
}

Test(agora, broadcaster_join_and_leave_are_recorded_on_the_stream)
{
        map_sample("rtc-103-broadcaster-join.json");
        cr_assert_str_eq(ev.topic, "live.stream");
        cr_assert_str_eq(ev.event_type, "stream.join");
        cr_assert_str_eq(ev.payload_name, "StreamBegin");
        cr_assert_str_eq(ev.anchor_id, "test_webhook"); /* channel convention */
        map_sample("rtc-104-broadcaster-leave.json");
        cr_assert_str_eq(ev.event_type, "stream.leave");
        cr_assert_str_eq(ev.payload_name, "StreamEnd");
}

Test(agora, uid_convention_names_the_broadcaster_as_anchor)
{
        cfg.agora_anchor_from = (char *)"uid";
        make();
        map_sample("rtc-103-broadcaster-join.json");
        cr_assert_str_eq(ev.anchor_id, "12121212");
        cr_assert_str_eq(ev.room_id, "test_webhook");
        map_sample("rtc-101-channel-create.json");
        cr_assert_null(ev.anchor_id);
        map_sample("rtc-105-audience-join.json");
        cr_assert_null(ev.anchor_id); /* an audience member is no anchor */
}

Test(agora, audience_and_role_changes_are_viewers)
{
        static const struct {
                const char *file, *action;
        } cases[] = {{"rtc-105-audience-join.json", "join"},
                     {"rtc-106-audience-leave.json", "leave"},
                     {"rtc-111-role-to-broadcaster.json", "leave"},
                     {"rtc-112-role-to-audience.json", "join"}};

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                map_sample(cases[i].file);
                cr_assert_str_eq(ev.topic, "live.viewer", "%s", cases[i].file);
                cr_assert_str_eq(ev.payload_name, "Viewer");
                cr_assert_str_eq(payload_str("action"), cases[i].action, "%s", cases[i].file);
                cr_assert_str_eq(payload_str("client_id"), "12121213");
                cr_assert_str_eq(ev.stream_id, "test_webhook");
        }
}

/* ------------------------------------------------------------ Cloud Recording */

Test(agora, cloud_recording_files_snapshots_and_others)
{
        map_sample("cloudrec-31-uploaded.json");
        cr_assert_str_eq(ev.topic, "live.record");
        cr_assert_str_eq(ev.stream_id, "test_webhook");
        cr_assert_str_eq(payload_str("file_id"), "d12fdce9024d37862a8f3a88e387c817/xxx.m3u8");
        cr_assert_str_eq(payload_str("file_format"), "hls");
        cr_assert_str_eq(payload_str("session_key"), "d12fdce9024d37862a8f3a88e387c817");
        cr_assert(eq(i64, payload_int("start_time_ms"), 1619170461821LL));
        map_sample("cloudrec-45-snapshot-file.json");
        cr_assert_str_eq(ev.topic, "live.snapshot");
        cr_assert(strncmp(payload_str("pic_url"), "snapshots/", 10) == 0);
        /* The file name's own time (…_20210423071234.jpg, UTC), not when it was reported. */
        cr_assert(eq(i64, payload_int("create_time_ms"), 1619161954000LL));
        map_sample("cloudrec-40-recorder-started.json");
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_str_eq(ev.key, "test_webhook");
}

Test(agora, unknown_products_and_types_are_kept_as_other)
{
        cr_assert(eq(int,
                     map_signed("{\"noticeId\":\"u1\",\"productId\":17,\"eventType\":9,"
                                "\"notifyMs\":1700000000000}"),
                     0),
                  "%s", verdict.message);
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_null(ev.key);
}
