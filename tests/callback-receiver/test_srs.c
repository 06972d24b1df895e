/*
 * test_srs.c: SRS http_hooks (callback-receiver/srs.c): mapping of every hook, malformed
 * bodies, the anti-leech signature and the on_publish decision with a fake anchor lookup;
 * then the receiver binary against the fixture broker, Redis and MariaDB.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "crypto.h"
#include "metrics.h"
#include "settings.h"
#include "srs.h"
#include "support.h"
#include "url.h"

/* The samples of shared/payloads/srs (SRS 5/6/7 field set), inline as SRS writes them. */
static const char publish_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_publish\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.10\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"stream\":\"livestream\","
        "\"param\":\"?token=xxx&salt=yyy\",\"stream_url\":\"/live/livestream\","
        "\"stream_id\":\"vid-124q9y3\"}";

static const char unpublish_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_unpublish\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.10\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"stream\":\"livestream\","
        "\"param\":\"?token=xxx&salt=yyy\",\"stream_url\":\"/live/livestream\","
        "\"stream_id\":\"vid-124q9y3\"}";

static const char play_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_play\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.11\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"stream\":\"livestream\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\","
        "\"param\":\"?token=zzz\",\"pageUrl\":\"http://www.test.com/live.html\","
        "\"stream_url\":\"/live/livestream\",\"stream_id\":\"vid-124q9y3\"}";

static const char stop_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_stop\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.11\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"stream\":\"livestream\","
        "\"param\":\"?token=zzz\",\"stream_url\":\"/live/livestream\",\"stream_id\":\"vid-124q9y3\"}";

static const char dvr_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_dvr\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.10\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"stream\":\"livestream\","
        "\"param\":\"\",\"cwd\":\"/usr/local/srs\","
        "\"file\":\"./objs/nginx/html/live/livestream.1420254068776.flv\","
        "\"stream_url\":\"/live/livestream\",\"stream_id\":\"vid-124q9y3\"}";

static const char hls_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_hls\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.10\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"stream\":\"livestream\","
        "\"param\":\"\",\"duration\":9.36,\"cwd\":\"/usr/local/srs\","
        "\"file\":\"./objs/nginx/html/live/livestream-100.ts\",\"url\":\"live/livestream-100.ts\","
        "\"m3u8\":\"./objs/nginx/html/live/livestream.m3u8\",\"m3u8_url\":\"live/livestream.m3u8\","
        "\"seq_no\":100,\"stream_url\":\"/live/livestream\",\"stream_id\":\"vid-124q9y3\"}";

static const char connect_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_connect\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.10\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"stream\":\"livestream\",\"param\":\"?token=xxx&salt=yyy\","
        "\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"pageUrl\":\"\"}";

static const char close_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_close\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.10\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"send_bytes\":10240,\"recv_bytes\":1548906}";

static const char forward_json[] =
        "{\"action\":\"on_forward\",\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.10\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"stream\":\"livestream\","
        "\"param\":\"\"}";

/* SRS 3.0's on_publish: no server_id or service_id, client_id a number (vendor-callbacks §2.4). */
static const char publish_v3_json[] =
        "{\"action\":\"on_publish\",\"client_id\":107,\"ip\":\"192.168.1.10\","
        "\"vhost\":\"__defaultVhost__\",\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\","
        "\"stream\":\"livestream\",\"param\":\"?anchor_id=a1\"}";

static const char play_v3_json[] =
        "{\"action\":\"on_play\",\"client_id\":108,\"ip\":\"192.168.1.11\","
        "\"vhost\":\"__defaultVhost__\",\"app\":\"live\",\"stream\":\"livestream\",\"param\":\"\","
        "\"pageUrl\":\"\"}";

#define NOW_MS 1700000000000LL /* the receive time of every unit test */
#define NOW_S  (NOW_MS / 1000)
#define SAMPLE_ID_KEY                                                                              \
        "[\"vid-0xk989d\",\"kd8q2ml1\",\"341w361a\",\"__defaultVhost__\",\"live\",\"livestream\"]"
#define KEY_A "srs-publish-key"
#define KEY_B "srs-publish-key-2026"

/* ------------------------------------------------------------ unit fixture */

/* The fake anchor lookup: answers `result` with `anchor`, remembers what it was asked. */
static struct {
        enum anchor_lookup_result result;
        struct anchor_record anchor;
        int calls;
        char asked[256];
} fake;

static struct settings cfg;
static struct metrics *metrics;
static struct srs *srs;
static struct webhook_event ev;
static struct webhook_verdict verdict;

static enum anchor_lookup_result fake_lookup(void *ctx, const char *anchor_id, const char *trace_id,
                                          struct anchor_record *anchor)
{
        (void)ctx;
        (void)trace_id;
        fake.calls++;
        snprintf(fake.asked, sizeof(fake.asked), "%s", anchor_id);
        *anchor = fake.anchor;
        return fake.result;
}

static const struct anchor_lookup fake_lookup_fn = {.fn = fake_lookup, .ctx = NULL};

/* Makes the endpoint from cfg; with_fake installs the fake lookup. */
static void make_srs(bool with_fake)
{
        char errstr[256];

        srs_destroy(srs);
        srs = srs_new(&cfg, metrics, errstr, sizeof(errstr));
        cr_assert(srs != NULL, "srs_new: %s", errstr);
        if (with_fake)
                srs_set_lookup(srs, &fake_lookup_fn);
}

static void setup(void)
{
        memset(&cfg, 0, sizeof(cfg));
        memset(&fake, 0, sizeof(fake));
        memset(&ev, 0, sizeof(ev));
        memset(&verdict, 0, sizeof(verdict));
        cfg.srs_token = (char *)"hook-token";
        cfg.srs_fail_open = 1;
        /* The mapping tests run without a key; the identity tests below set the defaults. */
        cfg.srs_publish_unsigned = 1;
        cfg.srs_store_retry_ms = 60000;
        cfg.redis_timeout_ms = 200;
        cfg.mysql_timeout_s = 1;
        fake.result = ANCHOR_LOOKUP_FOUND;
        fake.anchor = (struct anchor_record){.status = ANCHOR_ACTIVE, .store = "fake"};
        metrics = metrics_new();
        cr_assert(metrics != NULL);
        srs = NULL;
        make_srs(true);
}

static void teardown(void)
{
        webhook_event_fini(&ev);
        srs_destroy(srs);
        metrics_destroy(metrics);
}

TestSuite(srs, .init = setup, .fini = teardown);

/* ------------------------------------------------------------ helpers */

static int map_len(const char *body, size_t len)
{
        const struct webhook_request req = {.body = body,
                                            .len = len,
                                            .now_ms = NOW_MS,
                                            .path_arg = "",
                                            .trace_id = "test-trace"};

        webhook_event_fini(&ev);
        memset(&verdict, 0, sizeof(verdict));
        return srs_map(srs, &req, &ev, &verdict);
}

static int map(const char *body)
{
        return map_len(body, strlen(body));
}

static void assert_mapped(int rc)
{
        cr_assert(eq(int, rc, 0), "refused %u: %s", verdict.status, verdict.message);
}

/* The sample with `field` set to value (json_null(): removed); the caller frees the text. */
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
        s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(root);
        return s;
}

static char *with_param(const char *sample, const char *param)
{
        return edit(sample, "param", json_string(param));
}

/*
 * "?txSecret=MD5(key + stream + anchor_id + tx_time)&txTime=tx_time" + extra, where anchor_id
 * is what extra's "&anchor_id=" names (written plain in these tests), "" when it names none.
 */
static char *signed_param(const char *key, const char *stream, const char *tx_time,
                          const char *extra)
{
        char msg[1024], md5[33], anchor[128] = "", *s;
        const char *a = strstr(extra, "anchor_id=");

        if (a)
                snprintf(anchor, sizeof(anchor), "%.*s", (int)strcspn(a + 10, "&"), a + 10);
        snprintf(msg, sizeof(msg), "%s%s%s%s", key, stream, anchor, tx_time);
        crypto_md5_hex(msg, strlen(msg), md5);
        cr_assert(asprintf(&s, "?txSecret=%s&txTime=%s%s", md5, tx_time, extra) > 0);
        return s;
}

static char *hex_time(long long t)
{
        char *s;

        cr_assert(asprintf(&s, "%llX", t) > 0);
        return s;
}

/* The publish sample with a push URL signed with key, expiring at expiry_s. */
static char *signed_publish(const char *key, long long expiry_s, const char *extra)
{
        char *t = hex_time(expiry_s), *param = signed_param(key, "livestream", t, extra);
        char *body = with_param(publish_json, param);

        free(t);
        free(param);
        return body;
}

static const char *payload_str(const char *name)
{
        return json_string_value(json_object_get(ev.payload, name));
}

static void assert_id_of(const char *text)
{
        char want[65];

        crypto_sha256_hex(text, strlen(text), want);
        cr_assert_str_eq(ev.event_id, want, "event_id should be SHA-256 of %s", text);
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
        cr_assert_null(ev.anchor_id);
}

static long long decisions(const char *decision, const char *reason)
{
        char labels[128];

        snprintf(labels, sizeof(labels), "decision=\"%s\",reason=\"%s\"", decision, reason);
        return metric_value(metrics_counter(
                metrics, "liveflow_receiver_srs_publish_decisions_total", NULL, labels));
}

/* ------------------------------------------------------------ mapping */

Test(srs, publish_maps_to_stream_begin)
{
        assert_mapped(map(publish_json));
        cr_assert_str_eq(ev.vendor, "srs");
        cr_assert_str_eq(ev.event_type, "stream.begin");
        cr_assert_str_eq(ev.topic, "live.stream");
        cr_assert_str_eq(ev.payload_name, "StreamBegin");
        cr_assert_str_eq(ev.stream_id, "livestream");
        cr_assert_str_eq(ev.key, "livestream");
        cr_assert(eq(i64, ev.event_time_ms, NOW_MS));
        cr_assert_str_eq(payload_str("sequence"), "341w361a");
        cr_assert_str_eq(payload_str("client_ip"), "192.168.1.10");
        cr_assert_str_eq(payload_str("stream_param"), "token=xxx&salt=yyy");
        cr_assert_str_eq(payload_str("app"), "live");
        cr_assert_str_eq(payload_str("node"), "vid-0xk989d");
        assert_id_of("srs|on_publish|" SAMPLE_ID_KEY);
        cr_assert_null(ev.anchor_id);
        cr_assert_null(ev.room_id);
}

Test(srs, publish_takes_anchor_and_room_from_param)
{
        char *body = with_param(publish_json, "?token=x&anchor_id=anchor%2042&room_id=room+7");

        assert_mapped(map(body));
        cr_assert_str_eq(ev.anchor_id, "anchor 42");
        cr_assert_str_eq(ev.room_id, "room 7");
        cr_assert_str_eq(fake.asked, "anchor 42");
        free(body);
}

Test(srs, room_defaults_to_the_anchor)
{
        char *body = with_param(publish_json, "anchor_id=a-9");

        assert_mapped(map(body));
        cr_assert_str_eq(ev.anchor_id, "a-9");
        cr_assert_str_eq(ev.room_id, "a-9");
        cr_assert_str_eq(payload_str("stream_param"), "anchor_id=a-9", "no '?' to strip");
        free(body);
}

Test(srs, percent_sequence_that_decodes_to_nul_is_kept_as_sent)
{
        char *body = with_param(publish_json, "?anchor_id=a%00b");

        assert_mapped(map(body));
        cr_assert_str_eq(ev.anchor_id, "a%00b");
        free(body);
}

Test(srs, empty_param_leaves_stream_param_unset)
{
        char *body = with_param(publish_json, "?");

        assert_mapped(map(body));
        cr_assert_null(json_object_get(ev.payload, "stream_param"));
        free(body);
}

Test(srs, unpublish_maps_to_stream_end_of_the_same_session)
{
        char *body = with_param(unpublish_json, "?anchor_id=a1");

        assert_mapped(map(body));
        cr_assert_str_eq(ev.event_type, "stream.end");
        cr_assert_str_eq(ev.topic, "live.stream");
        cr_assert_str_eq(ev.payload_name, "StreamEnd");
        cr_assert_str_eq(ev.key, "livestream");
        cr_assert_str_eq(payload_str("sequence"), "341w361a", "pairs with the begin's sequence");
        cr_assert(eq(i64, json_integer_value(json_object_get(ev.payload, "close_method")), 1));
        cr_assert_str_eq(ev.anchor_id, "a1");
        assert_id_of("srs|on_unpublish|" SAMPLE_ID_KEY);
        free(body);
}

Test(srs, play_maps_to_viewer_join_on_live_viewer)
{
        char *body = with_param(play_json, "?anchor_id=not-the-publisher");

        assert_mapped(map(body));
        cr_assert_str_eq(ev.event_type, "viewer.join");
        cr_assert_str_eq(ev.topic, "live.viewer");
        cr_assert_str_eq(ev.payload_name, "Viewer");
        cr_assert_str_eq(ev.key, "livestream");
        cr_assert_str_eq(payload_str("action"), "join");
        cr_assert_str_eq(payload_str("client_id"), "341w361a");
        cr_assert_str_eq(payload_str("ip"), "192.168.1.11");
        cr_assert_str_eq(payload_str("server_id"), "vid-0xk989d");
        cr_assert_str_eq(payload_str("service_id"), "kd8q2ml1");
        cr_assert_null(ev.anchor_id, "a player's param names no anchor");
        assert_id_of("srs|on_play|" SAMPLE_ID_KEY);
        free(body);
}

Test(srs, stop_maps_to_viewer_leave)
{
        assert_mapped(map(stop_json));
        cr_assert_str_eq(ev.event_type, "viewer.leave");
        cr_assert_str_eq(ev.topic, "live.viewer");
        cr_assert_str_eq(payload_str("action"), "leave");
        cr_assert_str_eq(payload_str("client_id"), "341w361a");
        assert_id_of("srs|on_stop|" SAMPLE_ID_KEY);
}

Test(srs, dvr_maps_to_record_file)
{
        char file_id[65];
        const char *place = "srs|file|[\"vid-0xk989d\",\"/usr/local/srs\","
                            "\"./objs/nginx/html/live/livestream.1420254068776.flv\"]";

        assert_mapped(map(dvr_json));
        cr_assert_str_eq(ev.event_type, "record.file");
        cr_assert_str_eq(ev.topic, "live.record");
        cr_assert_str_eq(ev.payload_name, "RecordFile");
        cr_assert_str_eq(ev.key, "livestream");
        crypto_sha256_hex(place, strlen(place), file_id);
        cr_assert_str_eq(payload_str("file_id"), file_id);
        cr_assert_str_eq(payload_str("video_url"),
                         "./objs/nginx/html/live/livestream.1420254068776.flv");
        cr_assert_str_eq(payload_str("file_format"), "flv");
        cr_assert_str_eq(payload_str("session_key"), "341w361a");
        assert_id_of(
                "srs|on_dvr|[\"vid-0xk989d\",\"kd8q2ml1\",\"341w361a\",\"__defaultVhost__\","
                "\"live\",\"livestream\",\"./objs/nginx/html/live/livestream.1420254068776.flv\"]");
}

Test(srs, dvr_prefers_url_and_reads_the_format_from_the_extension)
{
        char *a = edit(dvr_json, "url", json_string("http://cdn.example/live/x.MP4"));
        char *b = edit(dvr_json, "file", json_string("./objs/live/livestream.m3u8"));
        char *c = edit(dvr_json, "file", json_string("./objs/live.d/livestream"));

        assert_mapped(map(a));
        cr_assert_str_eq(payload_str("video_url"), "http://cdn.example/live/x.MP4");
        cr_assert_str_eq(payload_str("file_format"), "flv", "the format is the file's");
        assert_mapped(map(b));
        cr_assert_str_eq(payload_str("file_format"), "hls");
        assert_mapped(map(c));
        cr_assert_null(json_object_get(ev.payload, "file_format"), "no extension, no format");
        free(a);
        free(b);
        free(c);
}

Test(srs, two_dvr_files_of_one_session_have_two_ids)
{
        char *other =
                edit(dvr_json, "file", json_string("./objs/nginx/html/live/livestream.2.flv"));
        char first_id[65], first_file[65];

        assert_mapped(map(dvr_json));
        strcpy(first_id, ev.event_id);
        strcpy(first_file, payload_str("file_id"));
        assert_mapped(map(other));
        cr_assert_str_neq(ev.event_id, first_id);
        cr_assert_str_neq(payload_str("file_id"), first_file);
        free(other);
}

Test(srs, hls_is_kept_on_live_other_with_a_null_payload)
{
        assert_mapped(map(hls_json));
        cr_assert_str_eq(ev.event_type, "other");
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_null(ev.payload_name);
        cr_assert_null(ev.payload);
        cr_assert_str_eq(ev.key, "livestream");
        assert_id_of(
                "srs|on_hls|[\"vid-0xk989d\",\"kd8q2ml1\",\"341w361a\",\"__defaultVhost__\","
                "\"live\",\"livestream\",\"./objs/nginx/html/live/livestream-100.ts\",\"100\"]");
}

Test(srs, connect_and_forward_are_kept_on_live_other)
{
        assert_mapped(map(connect_json));
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_null(ev.payload);
        assert_id_of("srs|on_connect|" SAMPLE_ID_KEY);
        assert_mapped(map(forward_json));
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_str_eq(ev.key, "livestream");
        assert_id_of("srs|on_forward|" SAMPLE_ID_KEY);
        cr_assert(eq(int, fake.calls, 0));
}

Test(srs, close_has_no_stream_and_no_key)
{
        assert_mapped(map(close_json));
        cr_assert_str_eq(ev.event_type, "other");
        cr_assert_null(ev.stream_id);
        cr_assert_null(ev.key);
        assert_id_of("srs|on_close|[\"vid-0xk989d\",\"kd8q2ml1\",\"341w361a\",\"__defaultVhost__\","
                     "\"live\"]");
}

Test(srs, unknown_action_is_kept_with_an_id_from_its_body)
{
        assert_mapped(map("{\"b\":1,\"action\":\"on_custom\",\"a\":\"x\"}"));
        cr_assert_str_eq(ev.event_type, "other");
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_null(ev.key);
        assert_id_of("srs|on_custom|{\"a\":\"x\",\"action\":\"on_custom\",\"b\":1}");
}

Test(srs, srs3_numeric_client_id_and_missing_server_id)
{
        assert_mapped(map(publish_v3_json));
        cr_assert_str_eq(ev.event_type, "stream.begin");
        cr_assert_str_eq(payload_str("sequence"), "107");
        cr_assert_null(json_object_get(ev.payload, "node"));
        cr_assert_str_eq(ev.anchor_id, "a1");
        assert_id_of(
                "srs|on_publish|[\"\",\"\",\"107\",\"__defaultVhost__\",\"live\",\"livestream\"]");
        assert_mapped(map(play_v3_json));
        cr_assert_str_eq(payload_str("client_id"), "108");
        cr_assert_null(json_object_get(ev.payload, "server_id"));
}

Test(srs, client_id_as_number_or_text_gives_one_id)
{
        char *as_text = edit(publish_v3_json, "client_id", json_string("107"));
        char first[65];

        assert_mapped(map(publish_v3_json));
        strcpy(first, ev.event_id);
        assert_mapped(map(as_text));
        cr_assert_str_eq(ev.event_id, first);
        free(as_text);
}

Test(srs, replayed_body_keeps_its_id_at_another_time)
{
        const struct webhook_request later = {.body = publish_json,
                                              .len = strlen(publish_json),
                                              .now_ms = NOW_MS + 86400000,
                                              .trace_id = "t2"};
        char first[65];

        assert_mapped(map(publish_json));
        strcpy(first, ev.event_id);
        webhook_event_fini(&ev);
        assert_mapped(srs_map(srs, &later, &ev, &verdict));
        cr_assert_str_eq(ev.event_id, first);
        cr_assert(eq(i64, ev.event_time_ms, NOW_MS + 86400000), "SRS sends no time");
}

Test(srs, another_connection_or_process_run_gets_another_id)
{
        char *client = edit(publish_json, "client_id", json_string("99zz99zz"));
        char *service = edit(publish_json, "service_id", json_string("restart1"));
        char first[65];

        assert_mapped(map(publish_json));
        strcpy(first, ev.event_id);
        assert_mapped(map(client));
        cr_assert_str_neq(ev.event_id, first);
        assert_mapped(map(service));
        cr_assert_str_neq(ev.event_id, first);
        free(client);
        free(service);
}

Test(srs, unicode_stream_name)
{
        char *body = edit(play_json, "stream", json_string("直播间-1"));

        assert_mapped(map(body));
        cr_assert_str_eq(ev.stream_id, "直播间-1");
        cr_assert_str_eq(ev.key, "直播间-1");
        assert_id_of("srs|on_play|[\"vid-0xk989d\",\"kd8q2ml1\",\"341w361a\",\"__defaultVhost__\","
                     "\"live\",\"直播间-1\"]");
        free(body);
}

Test(srs, unknown_fields_are_ignored)
{
        char *body = edit(play_json, "extra", json_pack("{s:[i,f,n],s:b}", "x", 1, 2.5, "y", 1));

        assert_mapped(map(body));
        cr_assert_str_eq(ev.event_type, "viewer.join");
        free(body);
}

/* A string of n copies of unit (UTF-8 text); the caller frees it. */
static char *repeat(const char *unit, size_t n)
{
        size_t len = strlen(unit);
        char *s = malloc(len * n + 1);

        cr_assert(s != NULL);
        for (size_t i = 0; i < n; i++)
                memcpy(s + i * len, unit, len);
        s[len * n] = '\0';
        return s;
}

Test(srs, stream_is_limited_in_characters_not_bytes)
{
        char *ok_ascii = repeat("s", 255), *long_ascii = repeat("s", 256),
             *ok_cjk = repeat("流", 255);
        char *a = edit(play_json, "stream", json_string(ok_ascii));
        char *b = edit(play_json, "stream", json_string(long_ascii));
        char *c = edit(play_json, "stream", json_string(ok_cjk));

        assert_mapped(map(a));
        assert_refused(map(b), 400, NULL, "stream");
        assert_mapped(map(c));
        cr_assert_str_eq(ev.stream_id, ok_cjk);
        free(ok_ascii);
        free(long_ascii);
        free(ok_cjk);
        free(a);
        free(b);
        free(c);
}

Test(srs, too_long_ids_are_refused_by_name)
{
        char *client = repeat("c", 129), *anchor = repeat("a", 65), *param;
        char *a = edit(stop_json, "client_id", json_string(client)), *b;

        cr_assert(asprintf(&param, "?anchor_id=%s", anchor) > 0);
        b = with_param(publish_json, param);
        assert_refused(map(a), 400, NULL, "client_id");
        assert_refused(map(b), 400, NULL, "anchor_id");
        cr_assert(eq(int, fake.calls, 0));
        free(client);
        free(anchor);
        free(param);
        free(a);
        free(b);
}

Test(srs, very_long_unknown_field_and_param_are_kept)
{
        char *big = repeat("x", 60000), *param;
        char *a = edit(hls_json, "m3u8_url", json_string(big)), *b;

        cr_assert(asprintf(&param, "?anchor_id=a1&pad=%s", big) > 0);
        b = with_param(publish_json, param);
        assert_mapped(map(a));
        assert_mapped(map(b));
        cr_assert(eq(sz, strlen(payload_str("stream_param")), strlen(param) - 1));
        free(big);
        free(param);
        free(a);
        free(b);
}

/* ------------------------------------------------------------ malformed bodies */

Test(srs, malformed_json_is_400)
{
        assert_refused(map("{\"action\":\"on_play\","), 400, NULL, "JSON");
        assert_refused(map("not json"), 400, NULL, "JSON");
}

Test(srs, empty_body_is_400)
{
        assert_refused(map_len(NULL, 0), 400, NULL, "body");
        assert_refused(map(""), 400, NULL, "body");
}

Test(srs, body_that_is_not_an_object_is_400)
{
        assert_refused(map("[{\"action\":\"on_play\"}]"), 400, NULL, "object");
        assert_refused(map("42"), 400, NULL, "body");
        assert_refused(map("\"on_play\""), 400, NULL, "body");
        assert_refused(map("null"), 400, NULL, "body");
}

Test(srs, duplicate_keys_are_400)
{
        assert_refused(map("{\"action\":\"on_stop\",\"action\":\"on_publish\",\"stream\":\"s\","
                           "\"client_id\":\"c\"}"),
                       400, NULL, "JSON");
}

Test(srs, invalid_utf8_and_nul_bytes_are_400)
{
        static const char nul_inside[] =
                "{\"action\":\"on_play\",\"stream\":\"a\0b\",\"client_id\":\"c\"}";

        assert_refused(map("{\"action\":\"on_play\",\"stream\":\"\xff\xfe\",\"client_id\":\"c\"}"),
                       400, NULL, "JSON");
        assert_refused(map_len(nul_inside, sizeof(nul_inside) - 1), 400, NULL, "JSON");
        assert_refused(map("{\"action\":\"on_play\",\"stream\":\"a\\u0000b\",\"client_id\":\"c\"}"),
                       400, NULL, "JSON");
}

Test(srs, missing_action_is_named)
{
        char *body = edit(play_json, "action", json_null());

        assert_refused(map(body), 400, NULL, "action");
        free(body);
}

Test(srs, action_that_is_not_a_string_is_named)
{
        char *a = edit(play_json, "action", json_integer(3));
        char *b = edit(play_json, "action", json_string(""));

        assert_refused(map(a), 400, NULL, "action");
        assert_refused(map(b), 400, NULL, "action");
        free(a);
        free(b);
}

Test(srs, stream_actions_need_a_stream)
{
        const char *const samples[] = {publish_json, unpublish_json, play_json, stop_json,
                                       dvr_json};

        for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
                char *missing = edit(samples[i], "stream", json_null());
                char *empty = edit(samples[i], "stream", json_string(""));

                assert_refused(map(missing), 400, NULL, "stream is missing");
                assert_refused(map(empty), 400, NULL, "stream is missing");
                free(missing);
                free(empty);
        }
        cr_assert(eq(int, fake.calls, 0));
}

Test(srs, stream_actions_need_a_client_id)
{
        char *a = edit(play_json, "client_id", json_null());
        char *b = edit(publish_json, "client_id", json_string(""));

        assert_refused(map(a), 400, NULL, "client_id");
        assert_refused(map(b), 400, NULL, "client_id");
        free(a);
        free(b);
}

Test(srs, other_actions_need_no_stream)
{
        char *body = edit(hls_json, "stream", json_null());

        assert_mapped(map(body));
        cr_assert_null(ev.key);
        free(body);
}

Test(srs, dvr_needs_a_file)
{
        char *body = edit(dvr_json, "file", json_null());

        assert_refused(map(body), 400, NULL, "file");
        free(body);
}

Test(srs, fields_of_the_wrong_type_are_named)
{
        char *a = edit(play_json, "ip", json_integer(5));
        char *b = edit(play_json, "client_id", json_real(1.5));
        char *c = edit(play_json, "stream", json_integer(7));
        char *d = edit(publish_json, "param", json_pack("{s:s}", "anchor_id", "a1"));

        assert_refused(map(a), 400, NULL, "ip");
        assert_refused(map(b), 400, NULL, "client_id");
        assert_refused(map(c), 400, NULL, "stream");
        assert_refused(map(d), 400, NULL, "param");
        free(a);
        free(b);
        free(c);
        free(d);
}

/* The sample with field set to JSON null (edit() removes a field given json_null()). */
static char *with_null(const char *sample, const char *field)
{
        json_t *root = json_loads(sample, 0, NULL);
        char *s;

        cr_assert(root != NULL);
        json_object_set_new(root, field, json_null());
        s = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return s;
}

Test(srs, null_is_the_same_as_absent)
{
        char *ip = with_null(play_json, "ip"), *stream = with_null(play_json, "stream");

        assert_mapped(map(ip));
        cr_assert_null(json_object_get(ev.payload, "ip"));
        assert_refused(map(stream), 400, NULL, "stream is missing");
        free(ip);
        free(stream);
}

/* ------------------------------------------------------------ anti-leech signature */

/* Makes the endpoint with LIVEFLOW_SRS_PUBLISH_KEY = keys. */
static void use_keys(const char *keys)
{
        cfg.srs_publish_keys = (char *)keys;
        make_srs(true);
}

Test(srs, signature_matches_a_known_md5)
{
        /* MD5("srs-publish-key" "livestream" "a1" "6553F100"), computed with Python's hashlib. */
        char *body = with_param(publish_json, "?txSecret=d4cb3a025ca8d3a5bf781ba9b169f3a0"
                                              "&txTime=6553F100&anchor_id=a1");

        use_keys(KEY_A);
        assert_mapped(map(body));
        cr_assert(eq(i64, decisions("allow", "active"), 1));
        free(body);
}

Test(srs, valid_signature_is_allowed)
{
        char *body = signed_publish(KEY_A, NOW_S + 600, "&anchor_id=a1");

        use_keys(KEY_A);
        assert_mapped(map(body));
        cr_assert_str_eq(ev.anchor_id, "a1");
        cr_assert(eq(int, fake.calls, 1));
        free(body);
}

Test(srs, wrong_signature_is_refused_before_the_lookup)
{
        char *body = signed_publish("not-the-key", NOW_S + 600, "&anchor_id=a1");

        use_keys(KEY_A);
        assert_refused(map(body), 403, "mismatch", "txSecret");
        cr_assert(eq(int, fake.calls, 0));
        cr_assert(eq(i64, decisions("deny", "signature_mismatch"), 1));
        free(body);
}

Test(srs, signature_of_another_stream_is_refused)
{
        char *t = hex_time(NOW_S + 600), *param = signed_param(KEY_A, "otherstream", t, "");
        char *body = with_param(publish_json, param);

        use_keys(KEY_A);
        assert_refused(map(body), 403, "mismatch", "txSecret");
        free(t);
        free(param);
        free(body);
}

Test(srs, expired_signature_is_refused)
{
        char *body = signed_publish(KEY_A, NOW_S - 1, "");
        char *still_valid = signed_publish(KEY_A, NOW_S, "");

        use_keys(KEY_A);
        assert_refused(map(body), 403, "expired", "expired");
        cr_assert(eq(i64, decisions("deny", "signature_expired"), 1));
        assert_mapped(map(still_valid));
        free(body);
        free(still_valid);
}

Test(srs, every_key_of_a_rotation_is_accepted)
{
        char *old_key = signed_publish(KEY_A, NOW_S + 60, "");
        char *new_key = signed_publish(KEY_B, NOW_S + 60, "");
        char *retired = signed_publish("retired-key", NOW_S + 60, "");

        use_keys(" " KEY_B " ,, " KEY_A " ");
        assert_mapped(map(old_key));
        assert_mapped(map(new_key));
        assert_refused(map(retired), 403, "mismatch", "txSecret");
        free(old_key);
        free(new_key);
        free(retired);
}

Test(srs, uppercase_secret_and_lowercase_time_are_read_as_sent)
{
        char *t = hex_time(NOW_S + 60), *param, *body;

        for (char *p = t; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        param = signed_param(KEY_A, "livestream", t, "");
        for (char *p = param + strlen("?txSecret="); *p != '&'; p++)
                *p = (char)toupper((unsigned char)*p);
        body = with_param(publish_json, param);
        use_keys(KEY_A);
        assert_mapped(map(body));
        free(t);
        free(param);
        free(body);
}

Test(srs, missing_or_malformed_signature_parts_are_refused)
{
        char *no_secret = with_param(publish_json, "?txTime=6553F100");
        char *no_time = with_param(publish_json, "?txSecret=5a785ce3671462f600795b1fb1f7cf62");
        char *bad_time = with_param(publish_json,
                                    "?txSecret=5a785ce3671462f600795b1fb1f7cf62&txTime=-6553F1");
        char *long_time = with_param(publish_json, "?txSecret=5a785ce3671462f600795b1fb1f7cf62"
                                                   "&txTime=00000000000000001");
        char *short_secret = with_param(publish_json, "?txSecret=5a785ce3&txTime=6553F100");

        use_keys(KEY_A);
        assert_refused(map(publish_json), 403, "missing", "txSecret");
        assert_refused(map(no_secret), 403, "missing", "txSecret");
        assert_refused(map(no_time), 403, "missing", "txTime");
        assert_refused(map(bad_time), 403, "missing", "txTime");
        assert_refused(map(long_time), 403, "missing", "txTime");
        assert_refused(map(short_secret), 403, "mismatch", "txSecret");
        cr_assert(eq(i64, decisions("deny", "signature_missing"), 5));
        free(no_secret);
        free(no_time);
        free(bad_time);
        free(long_time);
        free(short_secret);
}

Test(srs, signature_is_checked_only_on_publish)
{
        use_keys(KEY_A);
        assert_mapped(map(unpublish_json));
        assert_mapped(map(play_json));
        assert_mapped(map(dvr_json));
}

Test(srs, no_key_means_no_signature_check)
{
        assert_mapped(map(publish_json));
        cr_assert(eq(i64, decisions("allow", "no_anchor"), 1));
}

Test(srs, key_longer_than_the_limit_is_a_config_error)
{
        char errstr[256], *key = repeat("k", SRS_KEY_MAX + 1);

        cfg.srs_publish_keys = key;
        cr_assert_null(srs_new(&cfg, metrics, errstr, sizeof(errstr)));
        cr_assert(strstr(errstr, "LIVEFLOW_SRS_PUBLISH_KEY") != NULL, "%s", errstr);
        cr_assert(eq(int, srs_check_config(&cfg, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "LIVEFLOW_SRS_PUBLISH_KEY") != NULL, "%s", errstr);
        free(key);
}

Test(srs, bad_store_url_is_a_config_error)
{
        char errstr[256];

        cfg.redis_url = (char *)"http://127.0.0.1:6379";
        cr_assert(eq(int, srs_check_config(&cfg, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "LIVEFLOW_REDIS_URL") != NULL, "%s", errstr);
        cfg.redis_url = NULL;
        cfg.mysql_url = (char *)"postgres://u:p@h/db";
        cr_assert(eq(int, srs_check_config(&cfg, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "LIVEFLOW_MYSQL_URL") != NULL, "%s", errstr);
        cfg.mysql_url = NULL;
        cr_assert(eq(int, srs_check_config(&cfg, errstr, sizeof(errstr)), 0), "%s", errstr);
}

/* ------------------------------------------------------------ the anchor decision */

static char *publish_by(const char *anchor_id)
{
        char param[160];

        snprintf(param, sizeof(param), "?anchor_id=%s&room_id=r1", anchor_id);
        return with_param(publish_json, param);
}

Test(srs, banned_anchor_is_refused)
{
        char *body = publish_by("anchor-b");

        fake.anchor.status = ANCHOR_BANNED;
        assert_refused(map(body), 403, NULL, "banned");
        cr_assert(strstr(verdict.message, "anchor-b") != NULL, "%s", verdict.message);
        cr_assert_str_eq(fake.asked, "anchor-b");
        cr_assert(eq(i64, decisions("deny", "banned"), 1));
        cr_assert(eq(i64, decisions("allow", "active"), 0));
        free(body);
}

Test(srs, suspended_anchor_is_refused_until_the_end)
{
        char *body = publish_by("anchor-s");

        fake.anchor.status = ANCHOR_SUSPENDED;
        fake.anchor.suspended_until_ms = NOW_MS + 1;
        assert_refused(map(body), 403, NULL, "suspended");
        cr_assert(eq(i64, decisions("deny", "suspended"), 1));
        fake.anchor.suspended_until_ms = NOW_MS;
        assert_mapped(map(body));
        cr_assert(eq(i64, decisions("allow", "suspension_over"), 1));
        free(body);
}

Test(srs, suspension_without_an_end_is_refused)
{
        char *body = publish_by("anchor-s");

        fake.anchor.status = ANCHOR_SUSPENDED;
        fake.anchor.suspended_until_ms = 0;
        assert_refused(map(body), 403, NULL, "suspended");
        free(body);
}

Test(srs, active_anchor_is_allowed)
{
        char *body = publish_by("anchor-a");

        assert_mapped(map(body));
        cr_assert_str_eq(ev.anchor_id, "anchor-a");
        cr_assert_str_eq(ev.room_id, "r1");
        cr_assert(eq(i64, decisions("allow", "active"), 1));
        free(body);
}

Test(srs, unavailable_stores_allow_when_fail_open)
{
        char *body = publish_by("anchor-x");

        fake.result = ANCHOR_LOOKUP_UNAVAILABLE;
        assert_mapped(map(body));
        cr_assert(eq(i64, decisions("allow", "stores_down"), 1));
        free(body);
}

Test(srs, unavailable_stores_answer_503_when_fail_closed)
{
        char *body = publish_by("anchor-x");

        cfg.srs_fail_open = 0;
        make_srs(true);
        fake.result = ANCHOR_LOOKUP_UNAVAILABLE;
        assert_refused(map(body), 503, NULL, "unavailable");
        cr_assert(eq(i64, decisions("deny", "stores_down"), 1));
        free(body);
}

Test(srs, publish_without_anchor_is_allowed_unless_required)
{
        assert_mapped(map(publish_json));
        cr_assert(eq(int, fake.calls, 0));
        cr_assert(eq(i64, decisions("allow", "no_anchor"), 1));
        cfg.srs_require_anchor = 1;
        make_srs(true);
        assert_refused(map(publish_json), 400, NULL, "anchor_id");
        cr_assert(eq(i64, decisions("deny", "no_anchor"), 1));
}

Test(srs, only_publish_is_authorized)
{
        char *unpublish = with_param(unpublish_json, "?anchor_id=anchor-b");
        char *dvr = with_param(dvr_json, "?anchor_id=anchor-b");

        fake.anchor.status = ANCHOR_BANNED;
        assert_mapped(map(unpublish)); /* the end of a stream is recorded whoever pushed it */
        assert_mapped(map(dvr));
        assert_mapped(map(play_json));
        cr_assert(eq(int, fake.calls, 0));
        free(unpublish);
        free(dvr);
}

Test(srs, checks_are_off_without_stores)
{
        char *body = publish_by("anchor-b");

        make_srs(false);
        fake.anchor.status = ANCHOR_BANNED;
        assert_mapped(map(body));
        cr_assert(eq(int, fake.calls, 0));
        cr_assert(eq(i64, decisions("allow", "checks_off"), 1));
        free(body);
}

/* ------------------------------------------------------------ the store lookup, stores down */

static long long store_errors(const char *store)
{
        char labels[32];

        snprintf(labels, sizeof(labels), "store=\"%s\"", store);
        return metric_value(
                metrics_counter(metrics, "liveflow_receiver_srs_store_errors_total", NULL, labels));
}

Test(srs, unreachable_redis_fails_open_and_is_skipped_for_a_while)
{
        char *body = publish_by("anchor-r");

        cfg.redis_url = (char *)"redis://127.0.0.1:1/0"; /* nothing listens on port 1 */
        make_srs(false);
        assert_mapped(map(body));
        cr_assert(eq(i64, decisions("allow", "stores_down"), 1));
        cr_assert(eq(i64, store_errors("redis"), 1));
        assert_mapped(map(body));
        cr_assert(eq(i64, decisions("allow", "stores_down"), 2));
        cr_assert(eq(i64, store_errors("redis"), 1), "within the retry period Redis is not asked");
        free(body);
}

Test(srs, unreachable_stores_refuse_when_fail_closed)
{
        char *body = publish_by("anchor-r");

        cfg.redis_url = (char *)"redis://127.0.0.1:1/0";
        cfg.mysql_url = (char *)"mysql://u:p@127.0.0.1:1/db";
        cfg.srs_fail_open = 0;
        make_srs(false);
        assert_refused(map(body), 503, NULL, "unavailable");
        cr_assert(eq(i64, store_errors("redis"), 1));
        cr_assert(eq(i64, store_errors("mysql"), 1));
        free(body);
}

/* ------------------------------------------------------------ the lookup done off the HTTP thread */

/* srs_lookup_wanted() of body: 1 with the anchor id in *out, else 0. */
static int wanted(const char *body, char *out, size_t size)
{
        const struct webhook_request req = {.body = body,
                                            .len = strlen(body),
                                            .now_ms = NOW_MS,
                                            .path_arg = "",
                                            .trace_id = "test-trace",
                                            .method = "POST"};

        out[0] = '\0';
        return srs_lookup_wanted(srs, &req, out, size);
}

/* srs_map() of body with ans as the lookup done before. */
static int map_answered(const char *body, const struct anchor_answer *ans)
{
        const struct webhook_request req = {.body = body,
                                            .len = strlen(body),
                                            .now_ms = NOW_MS,
                                            .path_arg = "",
                                            .trace_id = "test-trace",
                                            .anchor_answer = ans};

        webhook_event_fini(&ev);
        memset(&verdict, 0, sizeof(verdict));
        return srs_map(srs, &req, &ev, &verdict);
}

Test(srs, a_lookup_is_wanted_only_for_a_publish_that_would_ask_the_stores)
{
        char *body = publish_by("anchor-w"), *unpublish = with_param(unpublish_json, "?anchor_id=w");
        char *good = signed_publish(KEY_A, NOW_S + 600, "&anchor_id=a1");
        char *forged = signed_publish("not-the-key", NOW_S + 600, "&anchor_id=a1");
        char anchor[ANCHOR_ID_BYTES_MAX + 1];

        cfg.redis_url = (char *)"redis://127.0.0.1:1/0"; /* a store: lookups have workers */
        make_srs(false);
        cr_assert(eq(int, wanted(body, anchor, sizeof(anchor)), 1));
        cr_assert_str_eq(anchor, "anchor-w");
        cr_assert(eq(int, wanted(publish_json, anchor, sizeof(anchor)), 0), "no anchor named");
        cr_assert(eq(int, wanted(unpublish, anchor, sizeof(anchor)), 0));
        cr_assert(eq(int, wanted(play_json, anchor, sizeof(anchor)), 0));
        cr_assert(eq(int, wanted("{\"action\":", anchor, sizeof(anchor)), 0), "malformed");
        cr_assert(eq(int, wanted(body, anchor, 4), 0), "no room for the id");
        cfg.srs_publish_keys = (char *)KEY_A;
        make_srs(false);
        cr_assert(eq(int, wanted(good, anchor, sizeof(anchor)), 1));
        cr_assert_str_eq(anchor, "a1");
        cr_assert(eq(int, wanted(forged, anchor, sizeof(anchor)), 0), "refused before a lookup");
        cfg.redis_url = NULL;
        make_srs(false);
        cr_assert(eq(int, wanted(good, anchor, sizeof(anchor)), 0), "checks are off");
        cr_assert(eq(i64, decisions("allow", "active") + decisions("deny", "signature_mismatch"), 0),
                  "asking decides nothing");
        free(body);
        free(unpublish);
        free(good);
        free(forged);
}

Test(srs, a_publish_mapped_with_its_answer_is_decided_by_it_without_asking_again)
{
        char *body = publish_by("anchor-b");
        struct anchor_answer ans = {.anchor_id = "anchor-b",
                                    .result = ANCHOR_LOOKUP_FOUND,
                                    .record = {.status = ANCHOR_BANNED, .store = "redis"}};

        make_srs(true); /* the fake says active: the answer says banned */
        assert_refused(map_answered(body, &ans), 403, NULL, "banned");
        cr_assert(eq(int, fake.calls, 0));
        cr_assert(eq(i64, decisions("deny", "banned"), 1));

        ans.result = ANCHOR_LOOKUP_UNAVAILABLE; /* the deadline passed: fail open */
        assert_mapped(map_answered(body, &ans));
        cr_assert(eq(i64, decisions("allow", "stores_down"), 1));
        cfg.srs_fail_open = 0;
        make_srs(true);
        assert_refused(map_answered(body, &ans), 503, NULL, "unavailable");
        cr_assert(eq(i64, decisions("deny", "stores_down"), 1));
        cr_assert(eq(int, fake.calls, 0));

        /* An answer about another anchor is not this publish's: it is looked up. */
        snprintf(ans.anchor_id, sizeof(ans.anchor_id), "someone-else");
        assert_mapped(map_answered(body, &ans));
        cr_assert(eq(int, fake.calls, 1));
        free(body);
}

/* ------------------------------------------------------------ settings */

Test(srs, receiver_settings_make_stores_optional)
{
        struct settings s;
        char err[256];

        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092", 1);
        unsetenv("LIVEFLOW_MYSQL_URL");
        unsetenv("LIVEFLOW_REDIS_URL");
        cr_assert(eq(int, settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), 0), "%s", err);
        cr_assert_null(s.mysql_url);
        cr_assert_null(s.redis_url);
        cr_assert(eq(i64, s.srs_fail_open, 1));
        cr_assert(eq(i64, s.srs_require_anchor, 1));
        cr_assert(eq(i64, s.srs_publish_unsigned, 0));
        cr_assert(eq(i64, s.srs_store_retry_ms, 1000));
        cr_assert(eq(i64, s.mysql_timeout_s, 5));
        settings_fini(&s);
        setenv("LIVEFLOW_REDIS_URL", "redis://127.0.0.1:6379/0", 1);
        setenv("LIVEFLOW_SRS_PUBLISH_KEY", "k1,k2", 1);
        cr_assert(eq(int, settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), 0), "%s", err);
        cr_assert_str_eq(s.redis_url, "redis://127.0.0.1:6379/0");
        cr_assert_str_eq(s.srs_publish_keys, "k1,k2");
        settings_fini(&s);
        cr_assert(eq(int, settings_load(&s, SETTINGS_CONSUMER, err, sizeof(err)), -1));
        cr_assert(strstr(err, "LIVEFLOW_MYSQL_URL is not set") != NULL, "%s", err);
        settings_fini(&s);
}

/* ------------------------------------------------------------ the publisher's identity */

/* The defaults of settings_load(): a key is required and so is the anchor. */
static void make_default_srs(const char *keys)
{
        cfg.srs_publish_keys = (char *)keys;
        cfg.srs_publish_unsigned = 0;
        cfg.srs_require_anchor = 1;
        make_srs(true);
}

Test(srs, without_a_publish_key_every_publish_is_refused_by_default)
{
        char *body = with_param(publish_json, "?anchor_id=a1");

        make_default_srs(NULL);
        assert_refused(map(body), 403, NULL, "LIVEFLOW_SRS_PUBLISH_KEY");
        cr_assert(eq(i64, decisions("deny", "no_publish_key"), 1));
        cr_assert(eq(int, fake.calls, 0));
        /* The other hooks are not authorizations: they still map. */
        assert_mapped(map(play_json));
        free(body);
}

Test(srs, the_signature_covers_the_anchor_id)
{
        char *own = signed_publish(KEY_A, NOW_S + 600, "&anchor_id=a1");
        char *t = hex_time(NOW_S + 600), *param = signed_param(KEY_A, "livestream", t, "&anchor_id=a1");
        char *other = NULL, *body;

        make_default_srs(KEY_A);
        assert_mapped(map(own));
        cr_assert_str_eq(ev.anchor_id, "a1");
        /* A banned a2 holding a URL signed for a1 (or for nobody) cannot claim to be a1. */
        cr_assert(asprintf(&other, "%.*sanchor_id=a2", (int)(strstr(param, "anchor_id=") - param),
                           param) > 0);
        body = with_param(publish_json, other);
        assert_refused(map(body), 403, "mismatch", "txSecret");
        free(body);
        free(param);
        param = signed_param(KEY_A, "livestream", t, "");
        free(other);
        cr_assert(asprintf(&other, "%s&anchor_id=a1", param) > 0);
        body = with_param(publish_json, other);
        assert_refused(map(body), 403, "mismatch", "txSecret");
        free(body);
        free(other);
        free(param);
        free(own);
        free(t);
}

Test(srs, a_missing_empty_or_repeated_anchor_id_is_refused_by_default)
{
        static const char *const extras[] = {"", "&anchor_id=", "&anchor_id=a1&anchor_id=a2",
                                             "&anchor_id=a1&room_id=r1&room_id=r2"};
        static const char *const why[] = {"anchor_id is missing", "anchor_id is empty",
                                          "anchor_id is repeated", "room_id is repeated"};

        make_default_srs(KEY_A);
        fake.anchor.status = ANCHOR_BANNED;
        for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
                char *body = signed_publish(KEY_A, NOW_S + 600, extras[i]);

                cr_log_info("param extra %s", extras[i]);
                assert_refused(map(body), 400, NULL, why[i]);
                free(body);
        }
        cr_assert(eq(int, fake.calls, 0), "refused before any store lookup");
}

Test(srs, a_banned_anchor_is_refused_however_its_id_is_sent)
{
        char *body = signed_publish(KEY_A, NOW_S + 600, "&anchor_id=banned-1");

        make_default_srs(KEY_A);
        fake.anchor.status = ANCHOR_BANNED;
        assert_refused(map(body), 403, NULL, "banned");
        cr_assert_str_eq(fake.asked, "banned-1");
        free(body);
}

Test(srs, fail_open_accepts_only_0_or_1)
{
        struct settings s;
        char err[256];

        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092", 1);
        setenv("LIVEFLOW_SRS_FAIL_OPEN", "2", 1);
        cr_assert(eq(int, settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), -1));
        cr_assert(strstr(err, "LIVEFLOW_SRS_FAIL_OPEN") != NULL, "%s", err);
        settings_fini(&s);
}

/* ============================================================ the receiver binary */

#define HOOK_TOKEN "srs-hook-token"
#define PARTITIONS 6 /* the fixture broker's topics */

static struct {
        pid_t pid;
        int port, admin_port;
        char log_path[512];
        char mysql_url[512];
        redisContext *redis;
        MYSQL *mysql;
} e2e;

struct reply {
        long status;
        char body[65536];
};

static void e2e_setup(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        memset(&e2e, 0, sizeof(e2e));
}

static void e2e_teardown(void)
{
        if (e2e.pid > 0) { /* a failed test: do not leave the process behind */
                kill(e2e.pid, SIGKILL);
                support_wait_exit(e2e.pid, 5000);
        }
        if (e2e.redis)
                redisFree(e2e.redis);
        if (e2e.mysql)
                mysql_close(e2e.mysql);
        curl_global_cleanup();
}

TestSuite(srs_e2e, .init = e2e_setup, .fini = e2e_teardown, .timeout = 90);

/* Connects the test's own clients to the fixture Redis and to a fresh migrated database. */
static void connect_stores(void)
{
        const char *port = support_fixture("LIVEFLOW_TEST_REDIS_PORT");
        struct mysql_url mu;
        char errstr[256];

        e2e.redis = redisConnect("127.0.0.1", atoi(port));
        cr_assert(e2e.redis && !e2e.redis->err, "redis 127.0.0.1:%s", port);
        support_create_database(e2e.mysql_url, sizeof(e2e.mysql_url));
        cr_assert(eq(int, url_parse_mysql(e2e.mysql_url, &mu, errstr, sizeof(errstr)), 0), "%s",
                  errstr);
        e2e.mysql = mysql_init(NULL);
        cr_assert(mysql_real_connect(e2e.mysql, mu.host, mu.user, mu.password, mu.database, mu.port,
                                     NULL, 0) != NULL,
                  "%s", mysql_error(e2e.mysql));
}

static void start_receiver(void)
{
        char bin[256], name[64], port_env[64], admin_env[64], boot_env[512], redis_env[512],
                mysql_env[600];
        char *argv[] = {bin, NULL};
        char *env[] = {port_env,
                       admin_env,
                       boot_env,
                       redis_env,
                       mysql_env,
                       (char *)"LIVEFLOW_HTTP_ADDR=127.0.0.1",
                       (char *)"LIVEFLOW_SRS_TOKEN=" HOOK_TOKEN,
                       (char *)"LIVEFLOW_SRS_FAIL_OPEN=0",
                       (char *)"LIVEFLOW_SRS_PUBLISH_UNSIGNED=1",
                       (char *)"LIVEFLOW_DRAIN_TIMEOUT_MS=5000",
                       NULL};

        support_bin_path("liveflow-receiver", bin, sizeof(bin));
        support_unique_name("srs", name, sizeof(name));
        snprintf(e2e.log_path, sizeof(e2e.log_path), "/tmp/liveflow_e2e_%s.log", name);
        e2e.port = support_free_port();
        snprintf(port_env, sizeof(port_env), "LIVEFLOW_HTTP_PORT=%d", e2e.port);
        e2e.admin_port = support_free_port();
        snprintf(admin_env, sizeof(admin_env), "LIVEFLOW_ADMIN_PORT=%d", e2e.admin_port);
        snprintf(boot_env, sizeof(boot_env), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(redis_env, sizeof(redis_env), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        snprintf(mysql_env, sizeof(mysql_env), "LIVEFLOW_MYSQL_URL=%s", e2e.mysql_url);
        e2e.pid = support_spawn(argv, env, e2e.log_path);
        cr_assert(e2e.pid > 0);
        cr_assert(eq(int, support_wait_ready(e2e.admin_port, 10000), 0), "receiver not ready; log: %s",
                  e2e.log_path);
}

static void stop_receiver_expect_clean_exit(void)
{
        cr_assert(eq(int, kill(e2e.pid, SIGTERM), 0));
        cr_assert(eq(int, support_wait_exit(e2e.pid, 15000), 0), "drain failed; log: %s",
                  e2e.log_path);
        e2e.pid = 0;
        unlink(e2e.log_path); /* kept only when something failed */
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
        struct reply *r = arg;
        size_t have = strlen(r->body), len = size * n;

        if (len > sizeof(r->body) - 1 - have)
                len = sizeof(r->body) - 1 - have;
        memcpy(r->body + have, p, len);
        r->body[have + len] = '\0';
        return size * n;
}

/* POSTs body as SRS does (application/json) to path; trace_id goes in X-Request-Id. */
static struct reply post(const char *path, const char *body, const char *trace_id)
{
        struct reply r = {0};
        struct curl_slist *headers = NULL;
        char url[512], h[160];
        CURL *curl = curl_easy_init();
        CURLcode rc;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", e2e.port, path);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
        headers = curl_slist_append(headers, "Content-Type: application/json");
        headers = curl_slist_append(headers, "Expect:");
        snprintf(h, sizeof(h), "X-Request-Id: %s", trace_id);
        headers = curl_slist_append(headers, h);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        rc = curl_easy_perform(curl);
        cr_assert(eq(int, rc, CURLE_OK), "POST %s: %s; log: %s", path, curl_easy_strerror(rc),
                  e2e.log_path);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        return r;
}

static struct reply get(const char *path)
{
        struct reply r = {0};
        char url[512];
        CURL *curl = curl_easy_init();
        CURLcode rc;

        /* The probes are on the admin port. */
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s",
                 strcmp(path, "/metrics") == 0 ? e2e.admin_port : e2e.port, path);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
        rc = curl_easy_perform(curl);
        cr_assert(eq(int, rc, CURLE_OK), "GET %s: %s", path, curl_easy_strerror(rc));
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
        curl_easy_cleanup(curl);
        return r;
}

static struct reply hook(const char *body, const char *trace_id)
{
        return post("/callbacks/srs?token=" HOOK_TOKEN, body, trace_id);
}

/* The publish sample for stream by anchor. */
static char *publish_of(const char *stream, const char *anchor)
{
        char param[160], *a, *body;

        snprintf(param, sizeof(param), "?anchor_id=%s", anchor);
        a = edit(publish_json, "stream", json_string(stream));
        body = with_param(a, param);
        free(a);
        return body;
}

static void redis_ok(const char *fmt, const char *a, const char *b, const char *c)
{
        redisReply *r = redisCommand(e2e.redis, fmt, a, b, c);

        cr_assert(r != NULL && r->type != REDIS_REPLY_ERROR, "redis: %s",
                  r ? r->str : e2e.redis->errstr);
        freeReplyObject(r);
}

/* ---------------------------------------------------- Kafka */

/* ---------------------------------------------------- tests */

Test(srs_e2e, wrong_or_missing_token_is_401)
{
        struct reply r;

        connect_stores();
        start_receiver();
        r = post("/callbacks/srs?token=wrong", play_json, "srs-e2e-wrong-token");
        cr_assert(eq(long, r.status, 401), "%s", r.body);
        cr_assert(strstr(r.body, "\"code\":401") != NULL, "%s", r.body);
        r = post("/callbacks/srs", play_json, "srs-e2e-no-token");
        cr_assert(eq(long, r.status, 401), "%s", r.body);
        cr_assert(strstr(r.body, "token") != NULL, "%s", r.body);
        stop_receiver_expect_clean_exit();
}

Test(srs_e2e, banned_anchor_in_redis_is_refused_and_never_published)
{
        struct support_reader *tr;
        char stream[64], banned[64], active[64], key[128], refused_trace[64], allowed_trace[64];
        char errstr[256];
        char *refused_body, *allowed_body;
        struct codec *codec = codec_new(errstr, sizeof(errstr));
        struct event ev_read = {0};
        int saw_refused = 0;
        rd_kafka_message_t *rkm;
        struct reply r;

        cr_assert(codec != NULL, "%s", errstr);
        connect_stores();
        support_unique_name("srs_stream", stream, sizeof(stream));
        support_unique_name("banned", banned, sizeof(banned));
        support_unique_name("active", active, sizeof(active));
        support_unique_name("srs-e2e-refused", refused_trace, sizeof(refused_trace));
        support_unique_name("srs-e2e-allowed", allowed_trace, sizeof(allowed_trace));
        snprintf(key, sizeof(key), "hash:anchor:status:%s", banned);
        redis_ok("HSET %s anchor_status %s suspended_until %s", key, "banned", "0");
        tr = support_reader_open("live.stream");
        start_receiver();

        refused_body = publish_of(stream, banned);
        r = hook(refused_body, refused_trace);
        cr_assert(eq(long, r.status, 403), "%s; log %s", r.body, e2e.log_path);
        cr_assert(strstr(r.body, "\"code\":403") != NULL, "SRS refuses any code but 0: %s", r.body);
        cr_assert(strstr(r.body, "banned") != NULL, "%s", r.body);

        /* Same stream, same partition: had the refused one been written, it would come first. */
        allowed_body = publish_of(stream, active);
        r = hook(allowed_body, allowed_trace);
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, e2e.log_path);
        cr_assert_str_eq(r.body, "{\"code\":0}");
        rkm = support_reader_until(tr, allowed_trace, "trace_id", refused_trace, &saw_refused,
                                   20000);
        cr_assert(rkm != NULL, "the allowed publish never reached live.stream");
        cr_assert(eq(int, saw_refused, 0), "the refused publish reached Kafka");
        cr_assert(eq(int,
                     codec_decode(codec, rkm->payload, rkm->len, &ev_read, errstr, sizeof(errstr)),
                     0),
                  "%s", errstr);
        cr_assert_str_eq(ev_read.event_type, "stream.begin");
        cr_assert_str_eq(ev_read.stream_id, stream);
        cr_assert_str_eq(ev_read.anchor_id, active);
        cr_assert_str_eq(ev_read.room_id, active);
        cr_assert_str_eq(ev_read.payload_name, "StreamBegin");

        r = get("/metrics");
        cr_assert(strstr(r.body, "liveflow_receiver_srs_publish_decisions_total{decision=\"deny\","
                                 "reason=\"banned\"} 1") != NULL,
                  "%s", r.body);
        cr_assert(strstr(r.body,
                         "liveflow_receiver_srs_anchor_lookup_seconds_count{store=\"redis\"} 2") !=
                          NULL,
                  "%s", r.body);
        event_fini(&ev_read);
        codec_destroy(codec);
        rd_kafka_message_destroy(rkm);
        support_reader_close(tr);
        free(refused_body);
        free(allowed_body);
        stop_receiver_expect_clean_exit();
}

Test(srs_e2e, suspension_that_ended_is_allowed)
{
        char stream[64], anchor[64], key[128], until[32];
        char *body;
        struct reply r;

        connect_stores();
        support_unique_name("srs_stream", stream, sizeof(stream));
        support_unique_name("suspended", anchor, sizeof(anchor));
        snprintf(key, sizeof(key), "hash:anchor:status:%s", anchor);
        snprintf(until, sizeof(until), "%lld", (long long)time(NULL) * 1000 - 60000);
        redis_ok("HSET %s anchor_status %s suspended_until %s", key, "suspended", until);
        start_receiver();
        body = publish_of(stream, anchor);
        r = hook(body, "srs-e2e-suspension-over");
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, e2e.log_path);
        cr_assert_str_eq(r.body, "{\"code\":0}");

        /* The same anchor suspended for another minute is refused. */
        snprintf(until, sizeof(until), "%lld", (long long)time(NULL) * 1000 + 60000);
        redis_ok("HSET %s anchor_status %s suspended_until %s", key, "suspended", until);
        r = hook(body, "srs-e2e-suspended");
        cr_assert(eq(long, r.status, 403), "%s", r.body);
        free(body);
        stop_receiver_expect_clean_exit();
}

Test(srs_e2e, mysql_answers_when_redis_has_no_anchor_status)
{
        char stream[64], anchor[64], key[128], sql[256];
        char *body;
        struct reply r;

        connect_stores();
        support_unique_name("srs_stream", stream, sizeof(stream));
        support_unique_name("mysql_banned", anchor, sizeof(anchor));
        /* The stream consumer's fields only: no anchor_status. */
        snprintf(key, sizeof(key), "hash:anchor:status:%s", anchor);
        redis_ok("HSET %s status %s stream_id %s", key, "offline", stream);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO anchors (anchor_id, status) VALUES ('%s', 'banned')", anchor);
        cr_assert(eq(int, mysql_query(e2e.mysql, sql), 0), "%s", mysql_error(e2e.mysql));
        start_receiver();
        body = publish_of(stream, anchor);
        r = hook(body, "srs-e2e-mysql-banned");
        cr_assert(eq(long, r.status, 403), "%s; log %s", r.body, e2e.log_path);
        cr_assert(strstr(r.body, "banned") != NULL, "%s", r.body);

        /* Lifted in MySQL: the next publish is allowed (nothing is cached). */
        snprintf(sql, sizeof(sql), "UPDATE anchors SET status = 'active' WHERE anchor_id = '%s'",
                 anchor);
        cr_assert(eq(int, mysql_query(e2e.mysql, sql), 0), "%s", mysql_error(e2e.mysql));
        r = hook(body, "srs-e2e-mysql-lifted");
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, e2e.log_path);
        free(body);
        stop_receiver_expect_clean_exit();
}

Test(srs_e2e, play_reaches_live_viewer_keyed_by_stream)
{
        struct support_reader *tr;
        char stream[64], trace[64], value[128], errstr[256];
        struct codec *codec = codec_new(errstr, sizeof(errstr));
        struct event ev_read = {0};
        rd_kafka_message_t *rkm;
        struct reply r;
        char *body;

        cr_assert(codec != NULL, "%s", errstr);
        connect_stores();
        support_unique_name("srs_stream", stream, sizeof(stream));
        support_unique_name("srs-e2e-play", trace, sizeof(trace));
        tr = support_reader_open("live.viewer");
        start_receiver();
        body = edit(play_json, "stream", json_string(stream));
        r = hook(body, trace);
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, e2e.log_path);
        cr_assert_str_eq(r.body, "{\"code\":0}");

        rkm = support_reader_until(tr, trace, NULL, NULL, NULL, 20000);
        cr_assert(rkm != NULL, "no record with trace_id %s in live.viewer", trace);
        cr_assert(eq(sz, rkm->key_len, strlen(stream)));
        cr_assert(eq(int, memcmp(rkm->key, stream, rkm->key_len), 0));
        cr_assert(eq(int, support_header(rkm, "trace_id", value, sizeof(value)), 0));
        cr_assert_str_eq(value, trace);
        cr_assert(eq(int, support_header(rkm, "event_type", value, sizeof(value)), 0));
        cr_assert_str_eq(value, "viewer.join");
        cr_assert(eq(int,
                     codec_decode(codec, rkm->payload, rkm->len, &ev_read, errstr, sizeof(errstr)),
                     0),
                  "%s", errstr);
        cr_assert_str_eq(ev_read.vendor, "srs");
        cr_assert_str_eq(ev_read.stream_id, stream);
        cr_assert_str_eq(ev_read.payload_name, "Viewer");
        cr_assert_str_eq(json_string_value(json_object_get(ev_read.payload, "action")), "join");
        cr_assert_str_eq(json_string_value(json_object_get(ev_read.payload, "client_id")),
                         "341w361a");
        cr_assert(eq(sz, ev_read.raw_len, strlen(body)));

        event_fini(&ev_read);
        rd_kafka_message_destroy(rkm);
        support_reader_close(tr);
        codec_destroy(codec);
        free(body);
        stop_receiver_expect_clean_exit();
}

/* --check-config: exit 2 naming the key on a bad SRS setting; no broker or store needed. */
static int check_config(const char *bad_setting)
{
        char bin[256], name[64], log_path[512];
        char *argv[] = {bin, (char *)"--check-config", NULL};
        char *env[] = {(char *)"LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1", (char *)bad_setting, NULL};
        int rc;

        support_bin_path("liveflow-receiver", bin, sizeof(bin));
        support_unique_name("srs_check", name, sizeof(name));
        snprintf(log_path, sizeof(log_path), "/tmp/liveflow_e2e_%s.log", name);
        rc = support_wait_exit(support_spawn(argv, env, log_path), 10000);
        unlink(log_path);
        return rc;
}

Test(srs_e2e, check_config_refuses_bad_srs_settings)
{
        char *long_key = repeat("k", SRS_KEY_MAX + 1), *setting;

        cr_assert(asprintf(&setting, "LIVEFLOW_SRS_PUBLISH_KEY=%s", long_key) > 0);
        cr_assert(eq(int, check_config(NULL), 0));
        cr_assert(eq(int, check_config("LIVEFLOW_SRS_PUBLISH_KEY=k1, k2"), 0));
        cr_assert(eq(int, check_config(setting), 2));
        cr_assert(eq(int, check_config("LIVEFLOW_REDIS_URL=http://127.0.0.1:6379"), 2));
        cr_assert(eq(int, check_config("LIVEFLOW_SRS_FAIL_OPEN=yes"), 2));
        free(long_key);
        free(setting);
}

/* ------------------------------------------------------------ on_hls_notify (a GET) */

static const char *notify_query(void *ctx, enum webhook_lookup kind, const char *name)
{
        static const char *const args[][2] = {{"action", "on_hls_notify"},
                                              {"app", "live"},
                                              {"stream", "livestream"},
                                              {"ts_url", "live/livestream-7.ts"},
                                              {"token", "hook-token"}};

        (void)ctx;
        for (size_t i = 0; kind == WEBHOOK_QUERY && i < sizeof(args) / sizeof(args[0]); i++)
                if (strcmp(args[i][0], name) == 0)
                        return args[i][1];
        return NULL;
}

Test(srs, hls_notify_is_a_get_kept_on_live_other)
{
        const struct webhook_request req = {.now_ms = NOW_MS,
                                            .path_arg = "",
                                            .trace_id = "test-trace",
                                            .method = "GET",
                                            .lookup = notify_query};
        char first[65];

        assert_mapped(srs_map(srs, &req, &ev, &verdict));
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_str_eq(ev.event_type, "other");
        cr_assert_str_eq(ev.stream_id, "livestream");
        cr_assert_not_null(ev.raw);
        cr_assert(strstr(ev.raw, "\"ts_url\":\"live/livestream-7.ts\"") != NULL, "%s", ev.raw);
        cr_assert(strstr(ev.raw, "token") == NULL, "the hook token stays out: %s", ev.raw);
        assert_id_of("srs|on_hls_notify|[\"\",\"live\",\"livestream\",\"live/livestream-7.ts\"]");
        memcpy(first, ev.event_id, sizeof(first));
        webhook_event_fini(&ev);
        assert_mapped(srs_map(srs, &req, &ev, &verdict));
        cr_assert_str_eq(ev.event_id, first, "a retried notify is one event");
}
