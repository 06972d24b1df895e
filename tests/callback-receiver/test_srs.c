/*
 * test_srs.c: SRS http_hooks (callback-receiver/srs.c): the samples, the unit fixture with a
 * fake anchor lookup, and the mapping of every hook; srs/malformed.c: malformed bodies;
 * srs/identity.c: the anti-leech signature, the on_publish decision and the lookup behind it;
 * srs/e2e.c: the receiver binary against the fixture broker, Redis and MariaDB.
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
#include "srs/fixture.h"
#include "refusal.h"
#include "url.h"

/* The samples of shared/payloads/srs (SRS 5/6/7 field set), inline as SRS writes them. */
const char publish_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_publish\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.10\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"stream\":\"livestream\","
        "\"param\":\"?token=xxx&salt=yyy\",\"stream_url\":\"/live/livestream\","
        "\"stream_id\":\"vid-124q9y3\"}";

const char unpublish_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_unpublish\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.10\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"stream\":\"livestream\","
        "\"param\":\"?token=xxx&salt=yyy\",\"stream_url\":\"/live/livestream\","
        "\"stream_id\":\"vid-124q9y3\"}";

const char play_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_play\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.11\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"stream\":\"livestream\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\","
        "\"param\":\"?token=zzz\",\"pageUrl\":\"http://www.test.com/live.html\","
        "\"stream_url\":\"/live/livestream\",\"stream_id\":\"vid-124q9y3\"}";

const char stop_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_stop\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.11\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"stream\":\"livestream\","
        "\"param\":\"?token=zzz\",\"stream_url\":\"/live/livestream\",\"stream_id\":\"vid-124q9y3\"}";

const char dvr_json[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"kd8q2ml1\",\"action\":\"on_dvr\","
        "\"client_id\":\"341w361a\",\"ip\":\"192.168.1.10\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"stream\":\"livestream\","
        "\"param\":\"\",\"cwd\":\"/usr/local/srs\","
        "\"file\":\"./objs/nginx/html/live/livestream.1420254068776.flv\","
        "\"stream_url\":\"/live/livestream\",\"stream_id\":\"vid-124q9y3\"}";

const char hls_json[] =
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

/* ------------------------------------------------------------ unit fixture */

struct fake_anchors fake;

struct settings cfg;
struct metrics *metrics;
struct srs *srs;
struct webhook_event ev;
struct webhook_verdict verdict;

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
void make_srs(bool with_fake)
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

int map_len(const char *body, size_t len)
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

int map(const char *body)
{
        return map_len(body, strlen(body));
}

void assert_mapped(int rc)
{
        cr_assert(eq(int, rc, 0), "refused %u: %s", verdict.status, verdict.message);
}

char *with_param(const char *sample, const char *param)
{
        return support_json_edit(sample, "param", json_string(param));
}

/*
 * "?txSecret=MD5(key + stream + anchor_id + tx_time)&txTime=tx_time" + extra, where anchor_id
 * is what extra's "&anchor_id=" names (written plain in these tests), "" when it names none.
 */
char *signed_param(const char *key, const char *stream, const char *tx_time, const char *extra)
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

char *hex_time(long long t)
{
        char *s;

        cr_assert(asprintf(&s, "%llX", t) > 0);
        return s;
}

/* The publish sample with a push URL signed with key, expiring at expiry_s. */
char *signed_publish(const char *key, long long expiry_s, const char *extra)
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

void assert_refused(int rc, unsigned int status, const char *auth_failure, const char *in_message)
{
        assert_verdict_refused(&verdict, rc, status, auth_failure, in_message);
        cr_assert_null(ev.payload);
        cr_assert_null(ev.stream_id);
        cr_assert_null(ev.anchor_id);
}

long long decisions(const char *decision, const char *reason)
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
        char *a = support_json_edit(dvr_json, "url", json_string("http://cdn.example/live/x.MP4"));
        char *b = support_json_edit(dvr_json, "file", json_string("./objs/live/livestream.m3u8"));
        char *c = support_json_edit(dvr_json, "file", json_string("./objs/live.d/livestream"));

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
        char *other = support_json_edit(dvr_json, "file",
                                        json_string("./objs/nginx/html/live/livestream.2.flv"));
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
        char *as_text = support_json_edit(publish_v3_json, "client_id", json_string("107"));
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
        char *client = support_json_edit(publish_json, "client_id", json_string("99zz99zz"));
        char *service = support_json_edit(publish_json, "service_id", json_string("restart1"));
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
        char *body = support_json_edit(play_json, "stream", json_string("直播间-1"));

        assert_mapped(map(body));
        cr_assert_str_eq(ev.stream_id, "直播间-1");
        cr_assert_str_eq(ev.key, "直播间-1");
        assert_id_of("srs|on_play|[\"vid-0xk989d\",\"kd8q2ml1\",\"341w361a\",\"__defaultVhost__\","
                     "\"live\",\"直播间-1\"]");
        free(body);
}

Test(srs, unknown_fields_are_ignored)
{
        char *body = support_json_edit(play_json, "extra",
                                       json_pack("{s:[i,f,n],s:b}", "x", 1, 2.5, "y", 1));

        assert_mapped(map(body));
        cr_assert_str_eq(ev.event_type, "viewer.join");
        free(body);
}

/* A string of n copies of unit (UTF-8 text); the caller frees it. */
char *repeat(const char *unit, size_t n)
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
        char *a = support_json_edit(play_json, "stream", json_string(ok_ascii));
        char *b = support_json_edit(play_json, "stream", json_string(long_ascii));
        char *c = support_json_edit(play_json, "stream", json_string(ok_cjk));

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
        char *a = support_json_edit(stop_json, "client_id", json_string(client)), *b;

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
        char *a = support_json_edit(hls_json, "m3u8_url", json_string(big)), *b;

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
