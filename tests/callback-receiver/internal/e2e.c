/* e2e.c: test_internal's receiver over HTTP (suite internal_e2e): the receiver fixture, the
 * Kafka checks, and rewards, withdrawals and admin commands reaching their topics. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
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
#include "internal.h" /* the program's header: a part is given -I<program dir> */
#include "fixture.h"

/* ================================================================ the receiver over HTTP */

struct support_receiver rcv;

/* A second receiver of a test (two sharing Redis); the teardown kills it too. */
struct other_proc other;

void start_receiver_with(const char *secret_env, const char *extra_env)
{
        const char *const env[] = {"LIVEFLOW_HTTP_ADDR=127.0.0.1", "LIVEFLOW_DRAIN_TIMEOUT_MS=5000",
                                   secret_env, extra_env, NULL};

        support_receiver_start(&rcv, "internal", NULL, env);
}

void start_receiver(const char *secret_env)
{
        start_receiver_with(secret_env, NULL);
}

static void e2e_setup(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        memset(&rcv, 0, sizeof(rcv));
}

static void e2e_teardown(void)
{
        support_receiver_kill(&rcv);
        if (other.pid > 0) {
                kill(other.pid, SIGKILL);
                support_wait_exit(other.pid, 5000);
                other.pid = 0;
        }
        curl_global_cleanup();
}

TestSuite(internal_e2e, .init = e2e_setup, .fini = e2e_teardown, .timeout = 60);

struct signed_headers sign_now(const char *id, const char *body, long long offset_s,
                               const char *key_b64)
{
        struct signed_headers h;

        snprintf(h.id, sizeof(h.id), "%s", id);
        snprintf(h.ts, sizeof(h.ts), "%lld", (long long)time(NULL) + offset_s);
        support_webhook_sign(key_b64, h.id, h.ts, body, strlen(body), h.sig);
        return h;
}

/* One more request header for the next posts ("Name: value"), NULL for none. */
const char *extra_header;

/* POSTs body as JSON to port with the headers h (NULL: unsigned), X-Request-Id trace_id. */
struct reply post_at(int port, const char *path, const char *body, const struct signed_headers *h,
                     const char *trace_id)
{
        char lines[4][256] = {""};
        const char *headers[6] = {0};
        size_t n = 0;
        struct reply r = {0};

        if (h) {
                snprintf(lines[0], sizeof(lines[0]), "webhook-id: %s", h->id);
                snprintf(lines[1], sizeof(lines[1]), "webhook-timestamp: %s", h->ts);
                snprintf(lines[2], sizeof(lines[2]), "webhook-signature: %s", h->sig);
        }
        if (trace_id)
                snprintf(lines[3], sizeof(lines[3]), "X-Request-Id: %s", trace_id);
        for (size_t i = 0; i < 4; i++)
                if (lines[i][0])
                        headers[n++] = lines[i];
        if (extra_header)
                headers[n++] = extra_header;
        r.status = support_request(&(struct support_request){.port = port,
                                                             .method = "POST",
                                                             .path = path,
                                                             .body = body,
                                                             .headers = headers,
                                                             .timeout_ms = 20000,
                                                             .log_path = rcv.log_path},
                                   SUPPORT_BODY(r.body));
        return r;
}

struct reply post(const char *path, const char *body, const struct signed_headers *h,
                  const char *trace_id)
{
        return post_at(rcv.port, path, body, h, trace_id);
}

/* Signs body now with the test secret under id and POSTs it. */
struct reply post_signed(const char *path, const char *body, const char *id, const char *trace_id)
{
        struct signed_headers h = sign_now(id, body, 0, SECRET_B64);

        return post(path, body, &h, trace_id);
}

struct reply get_metrics(void)
{
        struct reply r = {0};

        r.status = support_request(&(struct support_request){.port = rcv.admin_port,
                                                             .method = "GET",
                                                             .path = "/metrics",
                                                             .log_path = rcv.log_path},
                                   SUPPORT_BODY(r.body));
        return r;
}

/* A reward body for this test: its own tip and anchor, so partitions and ids are its own. */
char *reward_for(const char *tip, const char *anchor)
{
        json_t *root = json_loads(reward_json, 0, NULL);
        char *s;

        cr_assert(root != NULL);
        json_object_set_new(root, "trace_id", json_string(tip));
        json_object_set_new(root, "anchor_id", json_string(anchor));
        s = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return s;
}

/* ------------------------------------------------------------ Kafka */

void assert_key(const rd_kafka_message_t *rkm, const char *key)
{
        cr_assert(eq(sz, rkm->key_len, strlen(key)), "key %.*s, want %s", (int)rkm->key_len,
                  (const char *)rkm->key, key);
        cr_assert(eq(int, memcmp(rkm->key, key, rkm->key_len), 0));
}

void assert_header(const rd_kafka_message_t *rkm, const char *name, const char *want)
{
        char value[256];

        cr_assert(eq(int, support_header(rkm, name, value, sizeof(value)), 0), "no %s header",
                  name);
        cr_assert_str_eq(value, want);
}

/* ------------------------------------------------------------ tests */

Test(internal_e2e, a_replayed_reward_is_answered_200_and_written_once)
{
        char tip[64], anchor[64], first[64], replay[64], sentinel[64], msg_id[64], want_id[65];
        char *body, *sentinel_body;
        struct signed_headers h;
        struct support_reader *tr;
        rd_kafka_message_t *rkm;
        struct reply r;
        int seen = 0;

        support_unique_name("tip", tip, sizeof(tip));
        support_unique_name("anchor", anchor, sizeof(anchor));
        support_unique_name("trace-first", first, sizeof(first));
        support_unique_name("trace-replay", replay, sizeof(replay));
        support_unique_name("trace-sentinel", sentinel, sizeof(sentinel));
        support_unique_name("msg", msg_id, sizeof(msg_id));
        tr = support_reader_open("live.reward");
        start_receiver("LIVEFLOW_HMAC_SECRET=" SECRET);

        body = reward_for(tip, anchor);
        h = sign_now(msg_id, body, 0, SECRET_B64);
        r = post("/v1/rewards", body, &h, first);
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, rcv.log_path);
        cr_assert_str_eq(r.body, "{\"code\":0}");
        r = post("/v1/rewards", body, &h, replay); /* the very same request again */
        cr_assert(eq(long, r.status, 200), "%s", r.body);
        cr_assert_str_eq(r.body, "{\"code\":0}");

        /* Same anchor, same partition: had the replay been written, it would come first. */
        sentinel_body = reward_for("sentinel-tip", anchor);
        cr_assert(eq(long,
                     post_signed("/v1/rewards", sentinel_body, "msg_sentinel", sentinel).status,
                     200));
        sha256_of("internal|reward", tip, want_id);
        rkm = support_reader_until(tr, sentinel, "event_id", want_id, &seen, 20000);
        cr_assert(rkm != NULL, "the sentinel never arrived");
        cr_assert(eq(int, seen, 1), "records of the tip: %d", seen);
        rd_kafka_message_destroy(rkm);
        support_reader_close(tr);

        r = get_metrics();
        cr_assert(strstr(r.body,
                         "liveflow_receiver_webhook_replays_total{endpoint=\"rewards\"} 1") != NULL,
                  "%s", r.body);
        free(body);
        free(sentinel_body);
        support_receiver_stop(&rcv, false);
}

Test(internal_e2e, reward_record_carries_key_headers_and_payload)
{
        char tip[64], anchor[64], trace[64], want_id[65];
        struct support_reader *tr;
        struct event out = {0};
        rd_kafka_message_t *rkm;
        char *body;

        support_unique_name("tip", tip, sizeof(tip));
        support_unique_name("anchor", anchor, sizeof(anchor));
        support_unique_name("trace", trace, sizeof(trace));
        tr = support_reader_open("live.reward");
        start_receiver("LIVEFLOW_HMAC_SECRET=" SECRET);
        body = reward_for(tip, anchor);
        cr_assert(eq(long, post_signed("/v1/rewards", body, "msg_1", trace).status, 200));
        rkm = support_reader_until(tr, trace, NULL, NULL, NULL, 20000);
        cr_assert(rkm != NULL);
        sha256_of("internal|reward", tip, want_id);
        assert_key(rkm, anchor);
        assert_header(rkm, "event_type", "reward");
        assert_header(rkm, "event_id", want_id);
        support_decode(rkm, &out);
        cr_assert_str_eq(out.vendor, "internal");
        cr_assert_str_eq(out.anchor_id, anchor);
        cr_assert_str_eq(out.room_id, "r_7");
        cr_assert(eq(i64, out.event_time_ms, 1714564800123LL));
        cr_assert(eq(sz, out.raw_len, strlen(body)));
        cr_assert_str_eq(out.payload_name, "Reward");
        cr_assert_str_eq(payload_str(&out, "tip_id"), tip);
        cr_assert(eq(i64, payload_int(&out, "amount"), 29700));
        event_fini(&out);
        rd_kafka_message_destroy(rkm);
        support_reader_close(tr);
        free(body);
        support_receiver_stop(&rcv, false);
}

Test(internal_e2e, the_same_tip_under_two_webhook_ids_is_two_records_with_one_event_id)
{
        char tip[64], anchor[64], t1[64], t2[64], id1[128], id2[128];
        struct support_reader *tr;
        rd_kafka_message_t *a, *b;
        char *body;

        support_unique_name("tip", tip, sizeof(tip));
        support_unique_name("anchor", anchor, sizeof(anchor));
        support_unique_name("trace-1", t1, sizeof(t1));
        support_unique_name("trace-2", t2, sizeof(t2));
        tr = support_reader_open("live.reward");
        start_receiver("LIVEFLOW_HMAC_SECRET=" SECRET);
        body = reward_for(tip, anchor);
        cr_assert(eq(long, post_signed("/v1/rewards", body, "msg_first", t1).status, 200));
        cr_assert(eq(long, post_signed("/v1/rewards", body, "msg_second", t2).status, 200));
        a = support_reader_until(tr, t1, NULL, NULL, NULL, 20000);
        cr_assert(a != NULL);
        b = support_reader_until(tr, t2, NULL, NULL, NULL, 20000);
        cr_assert(b != NULL);
        cr_assert(eq(int, support_header(a, "event_id", id1, sizeof(id1)), 0));
        cr_assert(eq(int, support_header(b, "event_id", id2, sizeof(id2)), 0));
        cr_assert_str_eq(id1, id2);
        rd_kafka_message_destroy(a);
        rd_kafka_message_destroy(b);
        support_reader_close(tr);
        free(body);
        support_receiver_stop(&rcv, false);
}

Test(internal_e2e, withdrawal_reaches_live_withdrawal_keyed_by_anchor)
{
        char anchor[64], trace[64], body[256];
        struct support_reader *tr;
        struct event out = {0};
        rd_kafka_message_t *rkm;

        support_unique_name("anchor", anchor, sizeof(anchor));
        support_unique_name("trace", trace, sizeof(trace));
        snprintf(body, sizeof(body),
                 "{\"request_id\":\"wd-%s\",\"anchor_id\":\"%s\",\"amount\":5000}", trace, anchor);
        tr = support_reader_open("live.withdrawal");
        start_receiver("LIVEFLOW_HMAC_SECRET=" SECRET);
        cr_assert(eq(long, post_signed("/v1/withdrawals", body, "msg_wd", trace).status, 200));
        rkm = support_reader_until(tr, trace, NULL, NULL, NULL, 20000);
        cr_assert(rkm != NULL);
        assert_key(rkm, anchor);
        assert_header(rkm, "event_type", "withdrawal");
        support_decode(rkm, &out);
        cr_assert_str_eq(out.payload_name, "Withdrawal");
        cr_assert(eq(i64, payload_int(&out, "amount"), 5000));
        event_fini(&out);
        rd_kafka_message_destroy(rkm);
        support_reader_close(tr);
        support_receiver_stop(&rcv, false);
}

Test(internal_e2e, admin_close_ban_and_unban_reach_their_topics)
{
        char stream[64], anchor[64], t_close[64], t_ban[64], t_unban[64], path[256], body[256];
        struct support_reader *streams, *audits;
        struct event out = {0};
        rd_kafka_message_t *rkm;

        support_unique_name("stream", stream, sizeof(stream));
        support_unique_name("anchor", anchor, sizeof(anchor));
        support_unique_name("trace-close", t_close, sizeof(t_close));
        support_unique_name("trace-ban", t_ban, sizeof(t_ban));
        support_unique_name("trace-unban", t_unban, sizeof(t_unban));
        streams = support_reader_open("live.stream");
        audits = support_reader_open("live.audit");
        start_receiver("LIVEFLOW_HMAC_SECRET=" SECRET);

        /* The path is percent-decoded once: "%20" is a blank in the stream id. */
        snprintf(path, sizeof(path), "/v1/admin/streams/%s%%20x/close", stream);
        snprintf(body, sizeof(body),
                 "{\"action\":\"close\",\"stream_id\":\"%s x\",\"reason\":\"tos\"}", stream);
        cr_assert(eq(long, post_signed(path, body, "msg_close", t_close).status, 200));
        snprintf(path, sizeof(path), "/v1/admin/anchors/%s/ban", anchor);
        snprintf(body, sizeof(body),
                 "{\"action\":\"ban\",\"anchor_id\":\"%s\",\"reason\":\"spam\","
                 "\"stream_id\":\"%s\"}",
                 anchor, stream);
        cr_assert(eq(long, post_signed(path, body, "msg_ban", t_ban).status, 200));
        snprintf(path, sizeof(path), "/v1/admin/anchors/%s/unban", anchor);
        snprintf(body, sizeof(body), "{\"action\":\"unban\",\"anchor_id\":\"%s\"}", anchor);
        cr_assert(eq(long, post_signed(path, body, "msg_unban", t_unban).status, 200));

        rkm = support_reader_until(streams, t_close, NULL, NULL, NULL, 20000);
        cr_assert(rkm != NULL, "no close in live.stream");
        {
                char want[80];

                snprintf(want, sizeof(want), "%s x", stream);
                assert_key(rkm, want);
        }
        assert_header(rkm, "event_type", "stream.close");
        support_decode(rkm, &out);
        cr_assert_str_eq(out.vendor, "admin");
        cr_assert_str_eq(out.payload_name, "StreamEnd");
        cr_assert(eq(i64, payload_int(&out, "close_method"), 2));
        cr_assert_str_eq(payload_str(&out, "reason"), "tos");
        event_fini(&out);
        rd_kafka_message_destroy(rkm);

        rkm = support_reader_until(audits, t_ban, NULL, NULL, NULL, 20000);
        cr_assert(rkm != NULL, "no ban in live.audit");
        assert_key(rkm, anchor);
        assert_header(rkm, "event_type", "audit.admin");
        support_decode(rkm, &out);
        cr_assert_str_eq(out.payload_name, "AuditVerdict");
        cr_assert_str_eq(out.stream_id, stream);
        cr_assert_str_eq(payload_str(&out, "source"), "admin");
        cr_assert_str_eq(payload_str(&out, "action"), "ban");
        cr_assert_str_eq(payload_str(&out, "reason"), "spam");
        event_fini(&out);
        rd_kafka_message_destroy(rkm);

        rkm = support_reader_until(audits, t_unban, NULL, NULL, NULL,
                                   20000); /* same key, same partition, after the ban */
        cr_assert(rkm != NULL, "no unban in live.audit");
        assert_key(rkm, anchor);
        support_decode(rkm, &out);
        cr_assert_str_eq(payload_str(&out, "action"), "unban");
        event_fini(&out);
        rd_kafka_message_destroy(rkm);

        support_reader_close(streams);
        support_reader_close(audits);
        support_receiver_stop(&rcv, false);
}
