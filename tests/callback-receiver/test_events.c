/*
 * test_events.c: POST /v1/events (callback-receiver/events.c): a batch mapped to one event per
 * element with its topic, key and payload, refused whole on one bad element (index and field
 * named), bounded in size; then the built liveflow-receiver against the fixture broker (suite
 * events_e2e): one 200 once every event of the batch is in Kafka, nothing written for a 400.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
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
#include "support.h"
#include "support_stack.h"
#include "../../callback-receiver/events.h"
#include "../../callback-receiver/internal.h"

/* "liveflow-test-secret-of-32-bytes!" */
#define SECRET_B64  "bGl2ZWZsb3ctdGVzdC1zZWNyZXQtb2YtMzItYnl0ZXMh"
#define SECRET      "whsec_" SECRET_B64
#define TOLERANCE_S 300
#define NOW_S       1714564800LL
#define MAX_BATCH   8

/* ------------------------------------------------------------ ids (requests are signed by
 * support_webhook_sign(), independently of the code) */

static void event_id_of(const char *app_id, char out[65])
{
        char text[256];
        int n = snprintf(text, sizeof(text), "internal|event|%s", app_id);

        crypto_sha256_hex(text, (size_t)n, out);
}

/* ------------------------------------------------------------ unit fixture */

static struct {
        char id[64], ts[32], sig[64];
        const char *names[3];
        const char *values[3];
        struct webhook_request req;
} call;

static struct settings settings;
static struct metrics *metrics;
static struct internal *in;
static struct webhook_batch batch;
static struct webhook_verdict verdict;

static const char *fake_lookup(void *ctx, enum webhook_lookup kind, const char *name)
{
        (void)ctx;
        for (int i = 0; kind == WEBHOOK_HEADER && i < 3; i++)
                if (call.names[i] && strcasecmp(call.names[i], name) == 0)
                        return call.values[i];
        return NULL;
}

static void setup(void)
{
        char errstr[256];

        metrics = metrics_new();
        cr_assert(metrics != NULL);
        settings = (struct settings){.hmac_secrets = (char *)SECRET,
                                     .webhook_tolerance_s = TOLERANCE_S,
                                     .webhook_replay_max = 100,
                                     .max_amount = 1000};
        in = internal_new(&settings, metrics, errstr, sizeof(errstr));
        cr_assert(in != NULL, "%s", errstr);
        memset(&batch, 0, sizeof(batch));
}

static void teardown(void)
{
        webhook_batch_fini(&batch);
        internal_destroy(in);
        metrics_destroy(metrics);
}

TestSuite(events, .init = setup, .fini = teardown);

/* Signs body under webhook-id id and maps it. */
static int map_signed(const char *body, const char *id, bool is_signed)
{
        size_t len = strlen(body);

        snprintf(call.id, sizeof(call.id), "%s", id);
        snprintf(call.ts, sizeof(call.ts), "%lld", NOW_S);
        support_webhook_sign(SECRET_B64, call.id, call.ts, body, len, call.sig);
        call.names[0] = "webhook-id";
        call.values[0] = call.id;
        call.names[1] = "webhook-timestamp";
        call.values[1] = call.ts;
        call.names[2] = is_signed ? "webhook-signature" : NULL;
        call.values[2] = call.sig;
        call.req = (struct webhook_request){.body = body,
                                            .len = len,
                                            .now_ms = NOW_S * 1000,
                                            .path_arg = "",
                                            .trace_id = "test-trace",
                                            .lookup = fake_lookup};
        webhook_batch_fini(&batch);
        memset(&verdict, 0, sizeof(verdict));
        return events_map(in, metrics, MAX_BATCH, &call.req, &batch, &verdict);
}

static int map(const char *body)
{
        return map_signed(body, "msg_1", true);
}

static void assert_refused(int rc, unsigned int status, const char *in_message)
{
        cr_assert(eq(int, rc, -1));
        cr_assert(eq(u32, verdict.status, status), "status %u: %s", verdict.status,
                  verdict.message);
        cr_assert(strstr(verdict.message, in_message) != NULL, "\"%s\" lacks \"%s\"",
                  verdict.message, in_message);
        cr_assert(eq(sz, batch.n, 0));
}

static const char *payload_str(const struct webhook_event *ev, const char *name)
{
        return json_string_value(json_object_get(ev->payload, name));
}

/* ------------------------------------------------------------ unit tests */

Test(events, a_mixed_batch_maps_every_event_with_its_topic_key_and_payload)
{
        const char *body = "{\"events\":["
                           "{\"event_id\":\"e1\",\"type\":\"enter\",\"ts\":1714564800001,"
                           "\"audience_id\":12345,\"room_id\":\"r1\",\"stream_id\":\"s1\","
                           "\"audience_type\":\"guest\"},"
                           "{\"event_id\":\"e2\",\"type\":\"heartbeat\",\"ts\":1714564800002,"
                           "\"audience_id\":\"u2\",\"room_id\":77},"
                           "{\"event_id\":3,\"type\":\"exit\",\"ts\":1714564800003,"
                           "\"audience_id\":\"u2\",\"stream_id\":\"s1\"},"
                           "{\"event_id\":\"e4\",\"type\":\"chat\",\"ts\":1714564800004,"
                           "\"audience_id\":\"u3\",\"stream_id\":\"s1\",\"text\":\"hi\"},"
                           "{\"event_id\":\"e5\",\"type\":\"like\",\"ts\":1714564800005,"
                           "\"audience_id\":\"u3\",\"room_id\":\"r1\",\"count\":5},"
                           "{\"event_id\":\"e6\",\"type\":\"follow\",\"ts\":1714564800006,"
                           "\"audience_id\":\"u3\",\"anchor_id\":\"a9\"},"
                           "{\"event_id\":\"e7\",\"type\":\"share\",\"ts\":1714564800007,"
                           "\"audience_id\":\"u4\",\"stream_id\":\"s1\"},"
                           "{\"event_id\":\"e8\",\"type\":\"profile\",\"ts\":1714564800008,"
                           "\"subject\":\"audience\",\"audience_id\":991,\"gender\":\"female\","
                           "\"region\":\"north\",\"tags\":[\"music\",\"games\"]}]}";
        static const struct {
                const char *topic, *type, *key;
        } want[] = {
                {"live.viewer", "viewer.enter", "s1"},
                {"live.viewer", "viewer.heartbeat", "77"},
                {"live.viewer", "viewer.exit", "s1"},
                {"live.interaction", "interaction.chat", "s1"},
                {"live.interaction", "interaction.like", "r1"},
                {"live.interaction", "interaction.follow", "a9"},
                {"live.interaction", "interaction.share", "s1"},
                {"live.interaction", "profile.update", "991"},
        };
        char id[65];

        cr_assert(eq(int, map(body), 0), "%s", verdict.message);
        cr_assert(eq(sz, batch.n, 8));
        for (size_t i = 0; i < 8; i++) {
                const struct webhook_event *ev = &batch.items[i].ev;

                cr_assert_str_eq(ev->topic, want[i].topic, "item %zu", i);
                cr_assert_str_eq(ev->event_type, want[i].type, "item %zu", i);
                cr_assert_str_eq(ev->key, want[i].key, "item %zu", i);
                cr_assert_str_eq(ev->vendor, "internal");
                cr_assert(batch.items[i].raw != NULL && batch.items[i].raw[0] == '{');
        }
        /* An integer id is its decimal text, in ids and in the event id alike. */
        cr_assert_str_eq(payload_str(&batch.items[0].ev, "audience_id"), "12345");
        cr_assert_str_eq(payload_str(&batch.items[0].ev, "audience_type"), "guest");
        cr_assert_str_eq(batch.items[1].ev.room_id, "77");
        event_id_of("3", id);
        cr_assert_str_eq(batch.items[2].ev.event_id, id);
        cr_assert_str_eq(payload_str(&batch.items[2].ev, "source_event_id"), "3");
        event_id_of("e1", id);
        cr_assert_str_eq(batch.items[0].ev.event_id, id);
        cr_assert(eq(i64, json_integer_value(json_object_get(batch.items[4].ev.payload, "count")),
                     5));
        cr_assert(eq(i64, batch.items[4].ev.event_time_ms, 1714564800005LL));
        cr_assert_str_eq(batch.items[5].ev.anchor_id, "a9");
        cr_assert_str_eq(batch.items[7].ev.payload_name, "Profile");
        cr_assert_str_eq(payload_str(&batch.items[7].ev, "subject_id"), "991");
        cr_assert_str_eq(payload_str(&batch.items[7].ev, "tags"), "[\"music\",\"games\"]");
        cr_assert_str_eq(batch.items[3].ev.payload_name, "AudienceEvent");
        cr_assert(strstr(batch.items[3].raw, "\"text\":\"hi\"") != NULL);
}

Test(events, one_bad_event_refuses_the_whole_batch_naming_its_index_and_field)
{
        static const struct {
                const char *bad, *message;
        } cases[] = {
                {"{\"event_id\":\"b\",\"type\":\"enter\",\"ts\":1714564800001,\"room_id\":\"r\"}",
                 "events[1].audience_id: missing"},
                {"{\"event_id\":\"b\",\"type\":\"dance\",\"ts\":1714564800001,"
                 "\"audience_id\":\"u\",\"room_id\":\"r\"}",
                 "events[1].type"},
                {"{\"event_id\":\"b\",\"type\":\"enter\",\"ts\":1714564800,"
                 "\"audience_id\":\"u\",\"room_id\":\"r\"}",
                 "events[1].ts"},
                {"{\"event_id\":\"b\",\"type\":\"chat\",\"ts\":1714564800001,"
                 "\"audience_id\":\"u\"}",
                 "events[1].room_id: missing"},
                {"{\"event_id\":\"b\",\"type\":\"chat\",\"ts\":1714564800001,"
                 "\"audience_id\":\"u\",\"room_id\":"
                 "\"r123456789012345678901234567890123456789012345678901234567890abcd\"}",
                 "events[1].room_id: expected a string of 1 to 64 bytes"},
                {"{\"event_id\":\"b\",\"type\":\"chat\",\"ts\":1714564800001,"
                 "\"audience_id\":\"u\",\"room_id\":\"r\",\"count\":2}",
                 "events[1].count: only a like"},
                {"{\"event_id\":\"b\",\"type\":\"like\",\"ts\":1714564800001,"
                 "\"audience_id\":\"u\",\"room_id\":\"r\",\"count\":0}",
                 "events[1].count"},
                {"{\"event_id\":\"b\",\"type\":\"enter\",\"ts\":1714564800001,"
                 "\"audience_id\":1.5,\"room_id\":\"r\"}",
                 "events[1].audience_id"},
                {"{\"event_id\":\"b\",\"type\":\"enter\",\"ts\":1714564800001,"
                 "\"audience_id\":\"u\",\"room_id\":\"r\",\"audience_type\":\"vip\"}",
                 "events[1].audience_type"},
                {"{\"event_id\":\"b\",\"type\":\"profile\",\"ts\":1714564800001,"
                 "\"subject\":\"robot\",\"audience_id\":\"u\"}",
                 "events[1].subject"},
                {"{\"event_id\":\"b\",\"type\":\"profile\",\"ts\":1714564800001,"
                 "\"subject\":\"anchor\",\"anchor_id\":\"a\",\"tags\":[\"ok\",7]}",
                 "events[1].tags"},
                {"{\"type\":\"enter\",\"ts\":1714564800001,\"audience_id\":\"u\","
                 "\"room_id\":\"r\"}",
                 "events[1].event_id: missing"},
                {"\"enter\"", "events[1].event: expected a JSON object"},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char body[1024];

                snprintf(body, sizeof(body),
                         "{\"events\":[{\"event_id\":\"ok\",\"type\":\"enter\","
                         "\"ts\":1714564800001,\"audience_id\":\"u\",\"room_id\":\"r\"},%s]}",
                         cases[i].bad);
                assert_refused(map(body), 400, cases[i].message);
        }
}

Test(events, bodies_that_are_not_a_list_of_events_are_400)
{
        assert_refused(map("{\"events\":[]}"), 400, "events: expected a list");
        assert_refused(map("{\"events\":{}}"), 400, "events: expected a list");
        assert_refused(map("{\"event\":[1]}"), 400, "events: expected a list");
        assert_refused(map("[1,2]"), 400, "body: expected a JSON object");
        assert_refused(map("{\"events\":[1,"), 400, "body: malformed JSON");
}

Test(events, a_batch_over_the_limit_is_413_and_the_limit_itself_is_fine)
{
        char body[4096] = "{\"events\":[";

        for (int i = 0; i < MAX_BATCH + 1; i++) {
                char one[200];

                snprintf(one, sizeof(one),
                         "%s{\"event_id\":\"e%d\",\"type\":\"like\",\"ts\":1714564800001,"
                         "\"audience_id\":\"u\",\"room_id\":\"r\"}",
                         i ? "," : "", i);
                strcat(body, one);
                if (i == MAX_BATCH - 1) {
                        char exact[4096 + 8];

                        snprintf(exact, sizeof(exact), "%s]}", body);
                        cr_assert(eq(int, map(exact), 0), "%s", verdict.message);
                        cr_assert(eq(sz, batch.n, MAX_BATCH));
                }
        }
        strcat(body, "]}");
        assert_refused(map(body), 413, "more than 8");
}

Test(events, the_data_envelope_of_standard_webhooks_is_read_too)
{
        cr_assert(eq(int,
                     map("{\"type\":\"events\",\"data\":{\"events\":[{\"event_id\":\"e\","
                         "\"type\":\"share\",\"ts\":1714564800001,\"audience_id\":\"u\","
                         "\"stream_id\":\"s\"}]}}"),
                     0),
                  "%s", verdict.message);
        cr_assert(eq(sz, batch.n, 1));
}

Test(events, an_unsigned_batch_is_401_and_an_acknowledged_one_is_a_200_replay)
{
        const char *body = "{\"events\":[{\"event_id\":\"e\",\"type\":\"share\","
                           "\"ts\":1714564800001,\"audience_id\":\"u\",\"stream_id\":\"s\"}]}";

        cr_assert(eq(int, map_signed(body, "msg_r", false), -1));
        cr_assert(eq(u32, verdict.status, 401));
        cr_assert(eq(int, map_signed(body, "msg_r", true), 0));
        internal_acked(in, &call.req, NULL);
        cr_assert(eq(int, map_signed(body, "msg_r", true), -1));
        cr_assert(eq(u32, verdict.status, 200));
        cr_assert(eq(sz, batch.n, 0));
}

/* ================================================================ the receiver over HTTP */

static struct support_receiver rcv;

struct reply {
        long status;
        char body[4096];
};

static void start_receiver(void)
{
        char redis_env[300];
        const char *const env[] = {redis_env,
                                   "LIVEFLOW_HTTP_ADDR=127.0.0.1",
                                   "LIVEFLOW_DRAIN_TIMEOUT_MS=5000",
                                   "LIVEFLOW_HMAC_SECRET=" SECRET,
                                   "LIVEFLOW_EVENTS_MAX_BATCH=4",
                                   "LIVEFLOW_EVENTS_MAX_BODY_BYTES=4096",
                                   NULL};

        /* lock:callback:events:<webhook-id> is shared by every receiver through Redis. */
        snprintf(redis_env, sizeof(redis_env), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        support_receiver_start(&rcv, "events", NULL, env);
}

static void e2e_setup(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        memset(&rcv, 0, sizeof(rcv));
}

static void e2e_teardown(void)
{
        support_receiver_kill(&rcv);
        curl_global_cleanup();
}

TestSuite(events_e2e, .init = e2e_setup, .fini = e2e_teardown, .timeout = 60);

/* POSTs body to /v1/events signed now under webhook-id id, with X-Request-Id trace_id. */
static struct reply post_events(const char *body, const char *id, const char *trace_id)
{
        char ts[32], sig[64], lines[4][256];
        const char *headers[] = {lines[0], lines[1], lines[2], lines[3], NULL};
        struct reply r = {0};

        snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
        support_webhook_sign(SECRET_B64, id, ts, body, strlen(body), sig);
        snprintf(lines[0], sizeof(lines[0]), "webhook-id: %s", id);
        snprintf(lines[1], sizeof(lines[1]), "webhook-timestamp: %s", ts);
        snprintf(lines[2], sizeof(lines[2]), "webhook-signature: %s", sig);
        snprintf(lines[3], sizeof(lines[3]), "X-Request-Id: %s", trace_id);
        r.status = support_request(&(struct support_request){.port = rcv.port,
                                                             .method = "POST",
                                                             .path = "/v1/events",
                                                             .body = body,
                                                             .headers = headers,
                                                             .timeout_ms = 20000,
                                                             .log_path = rcv.log_path},
                                   SUPPORT_BODY(r.body));
        return r;
}

Test(events_e2e, a_batch_is_answered_200_with_every_event_in_its_topic)
{
        char stream[64], trace[64], app_id[64], want_id[96], body[1024];
        struct support_reader *viewer = support_reader_open("live.viewer");
        struct support_reader *inter = support_reader_open("live.interaction");
        rd_kafka_message_t *rkm;
        struct event ev = {0};
        struct reply r;

        support_unique_name("stream", stream, sizeof(stream));
        support_unique_name("trace", trace, sizeof(trace));
        support_unique_name("app", app_id, sizeof(app_id));
        start_receiver();
        snprintf(body, sizeof(body),
                 "{\"events\":[{\"event_id\":\"%s-1\",\"type\":\"enter\",\"ts\":%lld000,"
                 "\"audience_id\":42,\"stream_id\":\"%s\",\"room_id\":\"room-1\"},"
                 "{\"event_id\":\"%s-2\",\"type\":\"like\",\"ts\":%lld000,"
                 "\"audience_id\":42,\"stream_id\":\"%s\",\"count\":3}]}",
                 app_id, (long long)time(NULL), stream, app_id, (long long)time(NULL), stream);
        r = post_events(body, "msg-e2e-1", trace);
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, rcv.log_path);
        cr_assert_str_eq(r.body, "{\"code\":0}");

        rkm = support_reader_until(viewer, trace, NULL, NULL, NULL, 20000);
        cr_assert(rkm != NULL, "no live.viewer record");
        support_decode(rkm, &ev);
        snprintf(want_id, sizeof(want_id), "%s-1", app_id);
        cr_assert_str_eq(ev.event_type, "viewer.enter");
        cr_assert_str_eq(ev.stream_id, stream);
        cr_assert_str_eq(ev.room_id, "room-1");
        cr_assert_str_eq(ev.payload_name, "AudienceEvent");
        cr_assert_str_eq(json_string_value(json_object_get(ev.payload, "audience_id")), "42");
        cr_assert_str_eq(json_string_value(json_object_get(ev.payload, "source_event_id")),
                         want_id);
        cr_assert(eq(sz, rkm->key_len, strlen(stream)));
        event_fini(&ev);
        rd_kafka_message_destroy(rkm);

        rkm = support_reader_until(inter, trace, NULL, NULL, NULL, 20000);
        cr_assert(rkm != NULL, "no live.interaction record");
        support_decode(rkm, &ev);
        cr_assert_str_eq(ev.event_type, "interaction.like");
        cr_assert(eq(i64, json_integer_value(json_object_get(ev.payload, "count")), 3));
        event_fini(&ev);
        rd_kafka_message_destroy(rkm);
        support_reader_close(viewer);
        support_reader_close(inter);
        support_receiver_stop(&rcv, false);
}

Test(events_e2e, a_refused_batch_writes_none_of_its_events)
{
        char stream[64], trace_bad[64], trace_ok[64], app_id[64], good_id[65], body[1024];
        char good[96];
        struct support_reader *viewer = support_reader_open("live.viewer");
        rd_kafka_message_t *rkm;
        struct reply r;
        int seen = 0;
        long long now = (long long)time(NULL);

        support_unique_name("stream", stream, sizeof(stream));
        support_unique_name("trace-bad", trace_bad, sizeof(trace_bad));
        support_unique_name("trace-ok", trace_ok, sizeof(trace_ok));
        support_unique_name("app", app_id, sizeof(app_id));
        start_receiver();
        /* Element 0 is valid; element 1 is not: neither may reach Kafka. */
        snprintf(body, sizeof(body),
                 "{\"events\":[{\"event_id\":\"%s-good\",\"type\":\"enter\",\"ts\":%lld000,"
                 "\"audience_id\":\"u1\",\"stream_id\":\"%s\"},"
                 "{\"event_id\":\"%s-bad\",\"type\":\"enter\",\"ts\":%lld000,"
                 "\"stream_id\":\"%s\"}]}",
                 app_id, now, stream, app_id, now, stream);
        r = post_events(body, "msg-e2e-bad", trace_bad);
        cr_assert(eq(long, r.status, 400), "%s", r.body);
        cr_assert(strstr(r.body, "events[1].audience_id") != NULL, "%s", r.body);

        /* Over LIVEFLOW_EVENTS_MAX_BATCH=4 and over the 4096-byte body limit. */
        r = post_events("{\"events\":[1,2,3,4,5]}", "msg-e2e-many", trace_bad);
        cr_assert(eq(long, r.status, 413), "%s", r.body);
        {
                char big[6000];

                memset(big, ' ', sizeof(big) - 1);
                big[sizeof(big) - 1] = '\0';
                memcpy(big, "{\"events\":[]}", 13);
                r = post_events(big, "msg-e2e-big", trace_bad);
                cr_assert(eq(long, r.status, 413), "%s", r.body);
        }

        /* A sentinel on the same stream (so the same partition) comes after anything written. */
        snprintf(body, sizeof(body),
                 "{\"events\":[{\"event_id\":\"%s-sentinel\",\"type\":\"heartbeat\","
                 "\"ts\":%lld000,\"audience_id\":\"u1\",\"stream_id\":\"%s\"}]}",
                 app_id, now, stream);
        cr_assert(eq(long, post_events(body, "msg-e2e-ok", trace_ok).status, 200));
        snprintf(good, sizeof(good), "%s-good", app_id);
        event_id_of(good, good_id);
        rkm = support_reader_until(viewer, trace_ok, "event_id", good_id, &seen, 20000);
        cr_assert(rkm != NULL, "the sentinel never arrived");
        cr_assert(eq(int, seen, 0), "records of the refused batch: %d", seen);
        rd_kafka_message_destroy(rkm);
        support_reader_close(viewer);
        support_receiver_stop(&rcv, false);
}

Test(events_e2e, a_batch_stored_once_is_not_stored_again_by_another_receiver)
{
        char stream[64], trace1[64], trace2[64], trace3[64], app_id[64], msg[64], body[1024];
        char sentinel[1024], first_id[96], want_id[65];
        struct support_reader *viewer = support_reader_open("live.viewer");
        rd_kafka_message_t *rkm;
        long long now = (long long)time(NULL);
        int seen = 0;

        support_unique_name("stream", stream, sizeof(stream));
        support_unique_name("trace-1", trace1, sizeof(trace1));
        support_unique_name("trace-2", trace2, sizeof(trace2));
        support_unique_name("trace-3", trace3, sizeof(trace3));
        support_unique_name("app", app_id, sizeof(app_id));
        support_unique_name("msg", msg, sizeof(msg));
        snprintf(body, sizeof(body),
                 "{\"events\":[{\"event_id\":\"%s-1\",\"type\":\"enter\",\"ts\":%lld000,"
                 "\"audience_id\":\"u1\",\"stream_id\":\"%s\"}]}",
                 app_id, now, stream);
        start_receiver();
        cr_assert(eq(long, post_events(body, msg, trace1).status, 200));
        support_receiver_stop(&rcv, false);
        /* Another receiver (no memory of the first's replays): the same webhook-id again. */
        start_receiver();
        cr_assert(eq(long, post_events(body, msg, trace2).status, 200));
        snprintf(sentinel, sizeof(sentinel),
                 "{\"events\":[{\"event_id\":\"%s-s\",\"type\":\"heartbeat\",\"ts\":%lld000,"
                 "\"audience_id\":\"u1\",\"stream_id\":\"%s\"}]}",
                 app_id, now, stream);
        cr_assert(eq(long, post_events(sentinel, "msg-sentinel-batch", trace3).status, 200));
        snprintf(first_id, sizeof(first_id), "%s-1", app_id);
        event_id_of(first_id, want_id);
        rkm = support_reader_until(viewer, trace3, "event_id", want_id, &seen, 20000);
        cr_assert(rkm != NULL, "the sentinel never arrived");
        cr_assert(eq(int, seen, 1), "records of the batch: %d (log %s)", seen, rcv.log_path);
        rd_kafka_message_destroy(rkm);
        support_reader_close(viewer);
        support_receiver_stop(&rcv, false);
}
