/*
 * test_alibaba.c: verification and mapping of Alibaba ApsaraVideo Live callbacks
 * (callback-receiver/alibaba.c).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <ctype.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "settings.h"
#include "../../callback-receiver/alibaba.h" /* the Makefile gives tests no -I<program dir> */

#define FIXTURES      "tests/fixtures/payloads/alibaba-live/"
#define PROBE_KEY     "alibaba-probe-auth-key" /* what the fixtures are signed with */
#define NEW_KEY       "alibaba-key-after-rotation"
#define INGEST        "push.example.com"
#define CALLBACK_HOST "hooks.liveflow.example"

static struct settings cfg;
static struct alibaba *al;
static struct webhook_event ev;
static struct webhook_verdict verdict;

/* The request as a test builds it: decoded query arguments and headers. */
static struct {
        char names[16][32];
        char values[16][512];
        size_t n;
        const char *ts, *sig, *host;
        char sig_buf[33], ts_buf[24];
} rq;

static const char *fake_lookup(void *ctx, enum webhook_lookup kind, const char *name)
{
        (void)ctx;
        if (kind == WEBHOOK_QUERY) {
                for (size_t i = 0; i < rq.n; i++)
                        if (strcmp(rq.names[i], name) == 0)
                                return rq.values[i];
                return NULL;
        }
        if (strcasecmp(name, "ALI-LIVE-TIMESTAMP") == 0)
                return rq.ts;
        if (strcasecmp(name, "ALI-LIVE-SIGNATURE") == 0)
                return rq.sig;
        if (strcasecmp(name, "Host") == 0)
                return rq.host;
        return NULL;
}

static void make(void)
{
        char errstr[256];

        alibaba_destroy(al);
        al = alibaba_new(&cfg, errstr, sizeof(errstr));
        cr_assert_not_null(al, "alibaba_new: %s", errstr);
}

static void setup(void)
{
        memset(&cfg, 0, sizeof(cfg));
        memset(&ev, 0, sizeof(ev));
        memset(&rq, 0, sizeof(rq));
        cfg.alibaba_keys = (char *)NEW_KEY "," PROBE_KEY;
        cfg.alibaba_domains = (char *)INGEST;
        cfg.alibaba_max_skew_s = 300;
        al = NULL;
        make();
}

static void teardown(void)
{
        webhook_event_fini(&ev);
        alibaba_destroy(al);
}

TestSuite(alibaba, .init = setup, .fini = teardown);

/* ------------------------------------------------------------ helpers */

static json_t *load(const char *name)
{
        char path[256];
        json_error_t err;
        json_t *root;

        snprintf(path, sizeof(path), FIXTURES "%s", name);
        root = json_load_file(path, 0, &err);
        cr_assert_not_null(root, "%s: %s", path, err.text);
        return root;
}

static void percent_decode(const char *s, size_t len, char *out, size_t size)
{
        size_t n = 0;

        for (size_t i = 0; i < len && n + 1 < size; i++) {
                if (s[i] == '%' && i + 2 < len) {
                        char hex[3] = {s[i + 1], s[i + 2], '\0'};

                        out[n++] = (char)strtol(hex, NULL, 16);
                        i += 2;
                } else {
                        out[n++] = s[i] == '+' ? ' ' : s[i];
                }
        }
        out[n] = '\0';
}

/* Splits raw_query into decoded arguments, as libmicrohttpd hands them over. */
static void set_query(const char *qs)
{
        rq.n = 0;
        while (*qs && rq.n < 16) {
                size_t len = strcspn(qs, "&"), eq = strcspn(qs, "=");

                if (eq < len) {
                        percent_decode(qs, eq, rq.names[rq.n], sizeof(rq.names[0]));
                        percent_decode(qs + eq + 1, len - eq - 1, rq.values[rq.n],
                                       sizeof(rq.values[0]));
                        rq.n++;
                }
                qs += len;
                if (*qs == '&')
                        qs++;
        }
}

/* Signs as Alibaba does: md5hex(domain|ts|key), computed here independently. */
static void sign(const char *domain, long long ts, const char *key)
{
        char text[512];

        snprintf(rq.ts_buf, sizeof(rq.ts_buf), "%lld", ts);
        snprintf(text, sizeof(text), "%s|%lld|%s", domain, ts, key);
        crypto_md5_hex(text, strlen(text), rq.sig_buf);
        rq.ts = rq.ts_buf;
        rq.sig = rq.sig_buf;
}

static int map_request(const char *method, const char *body, long long now_s)
{
        const struct webhook_request req = {.body = body,
                                            .len = body ? strlen(body) : 0,
                                            .now_ms = now_s * 1000 + 123,
                                            .path_arg = "",
                                            .trace_id = "test-trace",
                                            .method = method,
                                            .lookup = fake_lookup};

        webhook_event_fini(&ev);
        memset(&verdict, 0, sizeof(verdict));
        return alibaba_map(al, &req, &ev, &verdict);
}

/* A fixture's GET exactly as described: its query and its own signature headers. */
static int map_ingest_fixture(const char *name, long long now_s)
{
        json_t *f = load(name);
        json_t *h = json_object_get(f, "headers");

        set_query(json_string_value(json_object_get(f, "raw_query")));
        snprintf(rq.ts_buf, sizeof(rq.ts_buf), "%s",
                 json_string_value(json_object_get(h, "ALI-LIVE-TIMESTAMP")));
        snprintf(rq.sig_buf, sizeof(rq.sig_buf), "%s",
                 json_string_value(json_object_get(h, "ALI-LIVE-SIGNATURE")));
        rq.ts = rq.ts_buf;
        rq.sig = rq.sig_buf;
        json_decref(f);
        return map_request("GET", NULL, now_s);
}

/* A fixture's POST body, signed with the callback host and key at ts. */
static int map_post_fixture(const char *name, long long ts)
{
        json_t *f = load(name);
        char *body = json_dumps(f, JSON_COMPACT);
        int rc;

        json_decref(f);
        rq.host = CALLBACK_HOST ":8080";
        sign(CALLBACK_HOST, ts, PROBE_KEY);
        rc = map_request("POST", body, ts);
        free(body);
        return rc;
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

/* ------------------------------------------------------------ ingest (GET) */

Test(alibaba, fixture_publish_verifies_with_its_expected_signature)
{
        cr_assert(eq(int, map_ingest_fixture("ingest-publish.json", 1609220386), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(ev.vendor, "alibaba");
        cr_assert_str_eq(ev.topic, "live.stream");
        cr_assert_str_eq(ev.event_type, "stream.begin");
        cr_assert_str_eq(ev.payload_name, "StreamBegin");
        cr_assert_str_eq(ev.stream_id, "liveStream001");
        cr_assert_str_eq(ev.key, "liveStream001");
        cr_assert(eq(i64, ev.event_time_ms, 1609220385000LL)); /* `time` */
        cr_assert_str_eq(payload_str("client_ip"), "192.168.0.1");
        cr_assert_str_eq(payload_str("stream_param"), "a=b&callback_uid=42");
        cr_assert_null(ev.anchor_id); /* usrargs names no anchor */
        cr_assert_not_null(ev.raw);
        cr_assert(strstr(ev.raw, "\"action\":\"publish\"") != NULL, "%s", ev.raw);
}

Test(alibaba, fixture_publish_done_ends_the_stream)
{
        cr_assert(eq(int, map_ingest_fixture("ingest-publish-done.json", 1609224001), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(ev.event_type, "stream.end");
        cr_assert(eq(i64, payload_int("close_method"), 1));
}

Test(alibaba, without_a_domain_list_the_ingest_domain_is_the_app_parameter)
{
        cfg.alibaba_domains = NULL;
        make();
        cr_assert(eq(int, map_ingest_fixture("ingest-publish.json", 1609220386), 0), "%s",
                  verdict.message);
}

Test(alibaba, usrargs_carries_anchor_and_room)
{
        set_query("action=publish&id=s1&app=" INGEST "&appname=live&time=1700000000&"
                  "usrargs=anchor_id%3D42%26room_id%3Dr%252F7");
        sign(INGEST, 1700000000, NEW_KEY);
        cr_assert(eq(int, map_request("GET", NULL, 1700000000), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "42");
        cr_assert_str_eq(ev.room_id, "r/7");
        set_query("action=publish&id=s1&app=" INGEST "&time=1700000000&usrargs=anchor_id%3D42");
        cr_assert(eq(int, map_request("GET", NULL, 1700000000), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.room_id, "42"); /* the room defaults to the anchor */
}

Test(alibaba, a_retry_keeps_its_event_id_and_another_push_does_not)
{
        char first[65];

        set_query("action=publish&id=s1&app=" INGEST "&appname=live&time=1700000000");
        sign(INGEST, 1700000001, PROBE_KEY);
        cr_assert(eq(int, map_request("GET", NULL, 1700000001), 0), "%s", verdict.message);
        snprintf(first, sizeof(first), "%s", ev.event_id);
        sign(INGEST, 1700000003, PROBE_KEY); /* the retry a second later, signed anew */
        cr_assert(eq(int, map_request("GET", NULL, 1700000003), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_id, first);
        set_query("action=publish_done&id=s1&app=" INGEST "&appname=live&time=1700000000");
        cr_assert(eq(int, map_request("GET", NULL, 1700000003), 0), "%s", verdict.message);
        cr_assert_str_neq(ev.event_id, first);
}

Test(alibaba, forged_stale_or_unsigned_callbacks_are_refused)
{
        set_query("action=publish&id=s1&app=" INGEST "&time=1700000000");
        sign(INGEST, 1700000000, "not-the-key");
        cr_assert(eq(int, map_request("GET", NULL, 1700000000), -1));
        cr_assert(eq(u32, verdict.status, 401));
        cr_assert_str_eq(verdict.auth_failure, "mismatch");
        sign("other.example.com", 1700000000, PROBE_KEY); /* a domain not configured */
        cr_assert(eq(int, map_request("GET", NULL, 1700000000), -1));
        cr_assert_str_eq(verdict.auth_failure, "mismatch");
        sign(INGEST, 1700000000, PROBE_KEY);
        cr_assert(eq(int, map_request("GET", NULL, 1700000000 + 301), -1));
        cr_assert_str_eq(verdict.auth_failure, "expired");
        cr_assert(eq(int, map_request("GET", NULL, 1700000000 - 301), -1));
        cr_assert_str_eq(verdict.auth_failure, "expired");
        rq.sig = NULL;
        cr_assert(eq(int, map_request("GET", NULL, 1700000000), -1));
        cr_assert_str_eq(verdict.auth_failure, "missing");
}

Test(alibaba, no_key_answers_503)
{
        cfg.alibaba_keys = NULL;
        make();
        cr_assert(eq(int, map_request("GET", NULL, 1700000000), -1));
        cr_assert(eq(u32, verdict.status, 503));
}

Test(alibaba, ingest_without_action_or_id_is_400)
{
        set_query("id=s1&app=" INGEST);
        sign(INGEST, 1700000000, PROBE_KEY);
        cr_assert(eq(int, map_request("GET", NULL, 1700000000), -1));
        cr_assert(eq(u32, verdict.status, 400));
        set_query("action=publish&app=" INGEST);
        cr_assert(eq(int, map_request("GET", NULL, 1700000000), -1));
        cr_assert(strstr(verdict.message, "id") != NULL, "%s", verdict.message);
}

/* ------------------------------------------------------------ POST */

Test(alibaba, record_file_is_signed_with_the_callback_host)
{
        cr_assert(eq(int, map_post_fixture("record-file.json", 1700000000), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(ev.topic, "live.record");
        cr_assert_str_eq(ev.event_type, "record.file");
        cr_assert_str_eq(ev.stream_id, "liveStream001");
        cr_assert_str_eq(payload_str("file_id"),
                         "liveApp/liveStream001/0_2017-03-08-23:09:46_2017-03-08-23:10:40.flv");
        cr_assert_str_eq(payload_str("file_format"), "flv");
        cr_assert(eq(i64, payload_int("duration_s"), 69));
        cr_assert(eq(i64, payload_int("start_time_ms"), 1488985786000LL));
        cr_assert(eq(i64, payload_int("end_time_ms"), 1488985840000LL));
        cr_assert(eq(i64, ev.event_time_ms, 1488985840000LL));
}

Test(alibaba, record_status_and_moderation)
{
        cr_assert(eq(int, map_post_fixture("record-status.json", 1700000000), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(ev.event_type, "record.status");
        cr_assert_str_eq(payload_str("record_event"), "record_started");
        cr_assert(eq(int, map_post_fixture("audio-moderation.json", 1700000000), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(ev.topic, "live.audit");
        cr_assert_str_eq(ev.event_type, "audit.audio");
        cr_assert_str_eq(payload_str("suggestion"), "Block");
        cr_assert_str_eq(payload_str("label"), "ad");
        cr_assert(eq(i64, payload_int("score"), 100));
        cr_assert_null(ev.anchor_id); /* a verdict never names the anchor it punishes */
        cr_assert(eq(i64, ev.event_time_ms, 1571989540000LL));
}

Test(alibaba, post_with_the_ingest_domain_or_a_rotated_key_verifies_too)
{
        const char *body = "{\"domain\":\"play.example.com\",\"app\":\"a\",\"stream\":\"s\","
                           "\"event\":\"record_paused\"}";

        sign(INGEST, 1700000000, NEW_KEY);
        cr_assert(eq(int, map_request("POST", body, 1700000000), 0), "%s", verdict.message);
        rq.host = "evil.example.com";
        sign(CALLBACK_HOST, 1700000000, NEW_KEY); /* signed for a host it was not sent to */
        cr_assert(eq(int, map_request("POST", body, 1700000000), -1));
        cr_assert(eq(u32, verdict.status, 401));
}

Test(alibaba, snapshot_and_unknown_bodies)
{
        const char *snap = "{\"domain\":\"d\",\"app\":\"a\",\"stream\":\"s\","
                           "\"OssObject\":\"snap/s/1.jpg\",\"CreateTime\":1700000005}";
        const char *unknown = "{\"domain\":\"d\",\"something\":\"new\"}";

        rq.host = CALLBACK_HOST;
        sign(CALLBACK_HOST, 1700000000, PROBE_KEY);
        cr_assert(eq(int, map_request("POST", snap, 1700000000), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.topic, "live.snapshot");
        cr_assert_str_eq(payload_str("pic_url"), "snap/s/1.jpg");
        cr_assert(eq(i64, payload_int("create_time_ms"), 1700000005000LL));
        cr_assert(eq(int, map_request("POST", unknown, 1700000000), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_null(ev.key);
}

Test(alibaba, malformed_posts_are_400)
{
        rq.host = CALLBACK_HOST;
        sign(CALLBACK_HOST, 1700000000, PROBE_KEY);
        cr_assert(eq(int, map_request("POST", "{\"uri\":", 1700000000), -1));
        cr_assert(eq(u32, verdict.status, 400));
        cr_assert(eq(int, map_request("POST", "{\"uri\":\"x.flv\"}", 1700000000), -1));
        cr_assert(strstr(verdict.message, "stream") != NULL, "%s", verdict.message);
        cr_assert(
                eq(int,
                   map_request("POST", "{\"stream\":\"s\",\"result\":[{\"suggestion\":\"maybe\"}]}",
                               1700000000),
                   -1));
        cr_assert(eq(u32, verdict.status, 400));
}
