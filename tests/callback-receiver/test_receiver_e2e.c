/*
 * test_receiver_e2e.c: the built liveflow-receiver against the fixture Kafka broker: signed
 * Tencent callbacks over HTTP come out of live.stream as Avro events; refused ones do not;
 * SIGTERM drains and exits 0; a broker outage. Its part receiver_e2e/edges.c holds the SRS spool,
 * readiness, recording failures, HTTP framing, the drain of kept-alive connections, verdicts and a
 * frozen anchor store; receiver_e2e/fixture.h is what they share.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "receiver_e2e/fixture.h"

/* The Tencent push sample (shared/payloads/tencent-css/push.json) without t and sign. */
const char push_sample[] =
        "{\"app\":\"test.domain.com\",\"appid\":12345678,\"appname\":\"live\","
        "\"channel_id\":\"test_stream\",\"errcode\":0,\"errmsg\":\"ok\",\"event_time\":1703731478,"
        "\"event_type\":1,\"height\":0,\"idc_id\":34,\"node\":\"42.81.194.37\","
        "\"sequence\":\"2210464508206756938\",\"set_id\":2,\"stream_id\":\"test_stream\","
        "\"stream_param\":\"stream_param=test\",\"user_ip\":\"1.1.1.1\",\"width\":0}";

struct support_receiver rcv; /* the receiver under test */

static pid_t private_broker; /* a test's own dev broker, stopped by teardown */

/* ------------------------------------------------------------ the receiver process */

void start_receiver_with(const char *bootstrap, const char *const extra_env[])
{
        const char *env[16] = {"LIVEFLOW_HTTP_ADDR=127.0.0.1", "LIVEFLOW_TENCENT_KEY=" KEY,
                               "LIVEFLOW_MAX_BODY_BYTES=4096", "LIVEFLOW_DRAIN_TIMEOUT_MS=5000"};
        int n = 4;

        for (int i = 0; extra_env && extra_env[i] && n < 15; i++)
                env[n++] = extra_env[i];
        support_receiver_start(&rcv, "receiver", bootstrap, env);
}

void start_receiver(const char *const extra_env[])
{
        start_receiver_with(support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), extra_env);
}

static void setup(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        memset(&rcv, 0, sizeof(rcv));
}

static void teardown(void)
{
        support_receiver_kill(&rcv); /* a failed test: do not leave the process behind */
        if (private_broker > 0) {
                kill(private_broker, SIGTERM);
                if (support_wait_exit(private_broker, 10000) == -1)
                        kill(private_broker, SIGKILL);
                private_broker = 0;
        }
        curl_global_cleanup();
}

TestSuite(receiver_e2e, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------ HTTP */

void keep_header(const char *line, size_t len, const char *name, char *out, size_t size)
{
        size_t name_len = strlen(name);

        if (len > name_len + 1 && strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
                const char *v = line + name_len + 1;
                size_t vlen = len - name_len - 1;

                while (vlen && (*v == ' ')) {
                        v++;
                        vlen--;
                }
                while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
                        vlen--;
                snprintf(out, size, "%.*s", (int)vlen, v);
        }
}

size_t on_header(char *line, size_t size, size_t n, void *arg)
{
        struct reply *r = arg;

        keep_header(line, size * n, "X-Request-Id", r->request_id, sizeof(r->request_id));
        keep_header(line, size * n, "Retry-After", r->retry_after, sizeof(r->retry_after));
        keep_header(line, size * n, "Allow", r->allow, sizeof(r->allow));
        return size * n;
}

/* The probes answer on the admin port only (LIVEFLOW_HTTP_PROBES=0, the default). */
bool is_probe_path(const char *path)
{
        return !strcmp(path, "/metrics") || !strcmp(path, "/healthz") || !strcmp(path, "/readyz");
}

/* method "POST" sends body (may be NULL); content_type NULL sends none; trace_id NULL sends none.
 */
struct reply http(const char *method, const char *path, const char *body, const char *content_type,
                  const char *trace_id)
{
        struct reply r = {0};
        struct curl_slist *headers = NULL;
        char url[512], h[256];
        CURL *curl = curl_easy_init();
        CURLcode rc;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s",
                 is_probe_path(path) ? rcv.admin_port : rcv.port, path);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
        struct support_body sb = SUPPORT_BODY(r.body);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, support_curl_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sb);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
        /* libcurl would add a form Content-Type to a POST: the default is "none". */
        snprintf(h, sizeof(h), "Content-Type:%s%s", content_type ? " " : "",
                 content_type ? content_type : "");
        headers = curl_slist_append(headers, h);
        headers = curl_slist_append(headers, "Expect:");
        if (trace_id) {
                snprintf(h, sizeof(h), "X-Request-Id: %s", trace_id);
                headers = curl_slist_append(headers, h);
        }
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        if (strcmp(method, "POST") == 0) {
                curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
                curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
        } else if (strcmp(method, "GET") != 0) {
                curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        }
        rc = curl_easy_perform(curl);
        cr_assert(eq(int, rc, CURLE_OK), "%s %s: %s; log: %s", method, path, curl_easy_strerror(rc),
                  rcv.log_path);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        return r;
}

struct reply post_json(const char *path, const char *body, const char *trace_id)
{
        return http("POST", path, body, "application/json", trace_id);
}

/* ------------------------------------------------------------ bodies */

/* The push sample for stream_id, with t = now + t_offset_s and sign = MD5(key + t). */
char *signed_push(const char *stream_id, const char *key, long long t_offset_s)
{
        json_t *root = json_loads(push_sample, 0, NULL);
        long long t = (long long)time(NULL) + t_offset_s;
        char sign[33], *s;

        cr_assert(root != NULL);
        support_tencent_sign(key, t, sign);
        json_object_set_new(root, "stream_id", json_string(stream_id));
        json_object_set_new(root, "stream_param",
                            json_string("txSecret=x&anchor_id=anchor%2042&room_id=room-7"));
        json_object_set_new(root, "t", json_integer(t));
        json_object_set_new(root, "sign", json_string(sign));
        s = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return s;
}

/* ------------------------------------------------------------ Kafka */

/* ------------------------------------------------------------ tests */

Test(receiver_e2e, signed_push_is_acked_then_published_to_live_stream)
{
        struct support_reader *tr;
        char stream[64], trace[64], want_id[65], value[128];
        struct event ev = {0};
        rd_kafka_message_t *rkm;
        struct reply r;
        char *body;
        support_unique_name("e2e_stream", stream, sizeof(stream));
        support_unique_name("e2e-trace-push", trace, sizeof(trace));
        tr = support_reader_open("live.stream");
        start_receiver(NULL);
        body = signed_push(stream, KEY, 600);
        r = post_json("/callbacks/tencent", body, trace);
        cr_assert(eq(long, r.status, 200), "body %s; log %s", r.body, rcv.log_path);
        cr_assert_str_eq(r.body, "{\"code\":0}");
        cr_assert_str_eq(r.request_id, trace);

        rkm = support_reader_until(tr, trace, NULL, NULL, NULL, 20000);
        cr_assert(rkm != NULL, "no record with trace_id %s in live.stream", trace);
        cr_assert(eq(sz, rkm->key_len, strlen(stream)));
        cr_assert(eq(int, memcmp(rkm->key, stream, rkm->key_len), 0));
        cr_assert(eq(int, support_header(rkm, "event_type", value, sizeof(value)), 0));
        cr_assert_str_eq(value, "stream.begin");
        cr_assert(eq(int, support_header(rkm, "vendor", value, sizeof(value)), 0));
        cr_assert_str_eq(value, "tencent");
        {
                char key[160];
                int n = snprintf(key, sizeof(key), "tencent|1|%s|2210464508206756938", stream);

                crypto_sha256_hex(key, (size_t)n, want_id);
        }
        cr_assert(eq(int, support_header(rkm, "event_id", value, sizeof(value)), 0));
        cr_assert_str_eq(value, want_id);

        support_decode(rkm, &ev);
        cr_assert_str_eq(ev.event_id, want_id);
        cr_assert_str_eq(ev.vendor, "tencent");
        cr_assert_str_eq(ev.event_type, "stream.begin");
        cr_assert_str_eq(ev.stream_id, stream);
        cr_assert_str_eq(ev.anchor_id, "anchor 42");
        cr_assert_str_eq(ev.room_id, "room-7");
        cr_assert_str_eq(ev.trace_id, trace);
        cr_assert(eq(i64, ev.event_time_ms, 1703731478000LL));
        cr_assert(ev.receive_time_ms > 1703731478000LL);
        cr_assert(eq(sz, ev.raw_len, strlen(body)));
        cr_assert(eq(int, memcmp(ev.raw, body, ev.raw_len), 0));
        cr_assert_str_eq(ev.payload_name, "StreamBegin");
        cr_assert_str_eq(json_string_value(json_object_get(ev.payload, "sequence")),
                         "2210464508206756938");
        cr_assert_str_eq(json_string_value(json_object_get(ev.payload, "client_ip")), "1.1.1.1");

        event_fini(&ev);
        rd_kafka_message_destroy(rkm);
        support_reader_close(tr);
        free(body);
        support_receiver_stop(&rcv, false);
}

Test(receiver_e2e, bad_sign_is_401_and_never_published)
{
        struct support_reader *tr;
        char stream[64], bad_trace[64], good_trace[64];
        char *bad = NULL, *good;
        int saw_bad = 0;
        rd_kafka_message_t *rkm;
        struct reply r;

        support_unique_name("e2e_stream", stream, sizeof(stream));
        support_unique_name("e2e-trace-bad", bad_trace, sizeof(bad_trace));
        support_unique_name("e2e-trace-good", good_trace, sizeof(good_trace));
        tr = support_reader_open("live.stream");
        start_receiver(NULL);
        bad = signed_push(stream, "not-the-key", 600);
        r = post_json("/callbacks/tencent", bad, bad_trace);
        cr_assert(eq(long, r.status, 401), "body %s", r.body);
        cr_assert(strstr(r.body, "\"code\":401") != NULL, "%s", r.body);
        cr_assert(strstr(r.body, "sign") != NULL, "%s", r.body);

        /* Same stream, same partition: had the bad one been written, it would come first. */
        good = signed_push(stream, KEY, 600);
        cr_assert(eq(long, post_json("/callbacks/tencent", good, good_trace).status, 200));
        rkm = support_reader_until(tr, good_trace, "trace_id", bad_trace, &saw_bad, 20000);
        cr_assert(rkm != NULL, "the accepted record never arrived");
        cr_assert(eq(int, saw_bad, 0), "the refused callback reached Kafka");
        rd_kafka_message_destroy(rkm);
        support_reader_close(tr);
        free(bad);
        free(good);
        support_receiver_stop(&rcv, false);
}

Test(receiver_e2e, refusals_answer_json_with_the_right_status)
{
        char stream[64], big[MAX_BODY_BYTES + 64];
        char *expired, *body;
        struct reply r;

        support_unique_name("e2e_stream", stream, sizeof(stream));
        start_receiver(NULL);

        expired = signed_push(stream, KEY, -3600); /* beyond the 900 s grace */
        r = post_json("/callbacks/tencent", expired, NULL);
        cr_assert(eq(long, r.status, 401), "%s", r.body);
        cr_assert(strstr(r.body, "expired") != NULL, "%s", r.body);
        cr_assert(eq(sz, strlen(r.request_id), 32), "a trace id is made when none is sent");

        r = post_json("/callbacks/tencent", "{\"event_type\":1,", NULL);
        cr_assert(eq(long, r.status, 400), "%s", r.body);
        cr_assert(strstr(r.body, "\"code\":400,\"message\":\"") != NULL, "%s", r.body);

        r = post_json("/callbacks/nobody", "{}", NULL);
        cr_assert(eq(long, r.status, 404), "%s", r.body);
        cr_assert(strstr(r.body, "\"code\":404") != NULL, "%s", r.body);

        r = http("GET", "/callbacks/tencent", NULL, NULL, NULL);
        cr_assert(eq(long, r.status, 405), "%s", r.body);
        cr_assert_str_eq(r.allow, "POST");

        memset(big, ' ', sizeof(big) - 1);
        big[0] = '{';
        big[sizeof(big) - 2] = '}';
        big[sizeof(big) - 1] = '\0';
        r = post_json("/callbacks/tencent", big, NULL);
        cr_assert(eq(long, r.status, 413), "%s", r.body);

        body = signed_push(stream, KEY, 600);
        r = http("POST", "/callbacks/tencent", body, "text/plain", NULL);
        cr_assert(eq(long, r.status, 415), "%s", r.body);
        r = http("POST", "/callbacks/tencent", body, "application/vnd.tencent+json; charset=utf-8",
                 NULL);
        cr_assert(eq(long, r.status, 200), "a */*+json type is JSON: %s", r.body);
        r = http("POST", "/callbacks/tencent", body, NULL, NULL);
        cr_assert(eq(long, r.status, 200), "no Content-Type is accepted: %s", r.body);

        free(expired);
        free(body);
        support_receiver_stop(&rcv, false);
}

Test(receiver_e2e, path_token_is_required_when_configured)
{
        const char *const env[] = {"LIVEFLOW_TENCENT_PATH_TOKEN=" PATH_TOKEN, NULL};
        char stream[64], *body;

        support_unique_name("e2e_stream", stream, sizeof(stream));
        start_receiver(env);
        body = signed_push(stream, KEY, 600);
        cr_assert(eq(long, post_json("/callbacks/tencent", body, NULL).status, 404));
        cr_assert(eq(long, post_json("/callbacks/tencent/wrong-token", body, NULL).status, 404));
        cr_assert(eq(long, post_json("/callbacks/tencent/" PATH_TOKEN, body, NULL).status, 200));
        free(body);
        support_receiver_stop(&rcv, false);
}

Test(receiver_e2e, probes_answer_on_the_admin_port_only_by_default)
{
        char out[4096];
        struct reply r;

        start_receiver(NULL);
        raw_exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out,
                     sizeof(out), 5000);
        cr_assert(strncmp(out, "HTTP/1.1 404", 12) == 0, "/metrics on the traffic port: %s", out);
        raw_exchange("GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out,
                     sizeof(out), 5000);
        cr_assert(strncmp(out, "HTTP/1.1 404", 12) == 0, "/readyz on the traffic port: %s", out);
        r = http("GET", "/healthz", NULL, NULL, NULL);
        cr_assert(eq(long, r.status, 200));
        r = http("GET", "/readyz", NULL, NULL, NULL);
        cr_assert(eq(long, r.status, 200));
        r = http("GET", "/metrics", NULL, NULL, NULL);
        cr_assert(eq(long, r.status, 200));
        cr_assert(strstr(r.body, "liveflow_receiver_inflight") != NULL, "%s", r.body);
        support_receiver_stop(&rcv, false);
}

Test(receiver_e2e, unreachable_broker_answers_503_with_retry_after)
{
        const char *const env[] = {"LIVEFLOW_ACK_TIMEOUT_MS=500", NULL};
        char stream[64], *body;
        struct reply r;

        support_unique_name("e2e_stream", stream, sizeof(stream));
        start_receiver_with("127.0.0.1:1", env); /* nothing listens on port 1 */
        body = signed_push(stream, KEY, 600);
        r = post_json("/callbacks/tencent", body, NULL);
        cr_assert(eq(long, r.status, 503), "%s", r.body);
        cr_assert_str_eq(r.retry_after, "1");
        cr_assert(strstr(r.body, "\"code\":503") != NULL, "%s", r.body);
        free(body);
        /* The message timed out, so nothing is left to flush: the drain still exits 0. */
        support_receiver_stop(&rcv, false);
}

struct pending_post {
        const char *body;
        struct reply r;
};

static void *post_in_background(void *arg)
{
        struct pending_post *pp = arg;

        pp->r = post_json("/callbacks/tencent", pp->body, NULL);
        return NULL;
}

Test(receiver_e2e, drain_deadline_answers_waiting_requests_503_and_exits_1)
{
        const char *const env[] = {"LIVEFLOW_ACK_TIMEOUT_MS=19000", "LIVEFLOW_DRAIN_TIMEOUT_MS=500",
                                   NULL};
        char stream[64], *body;
        struct pending_post pp;
        pthread_t thread;

        support_unique_name("e2e_stream", stream, sizeof(stream));
        start_receiver_with("127.0.0.1:1", env); /* no broker: the request waits for its ack */
        body = signed_push(stream, KEY, 600);
        pp.body = body;
        cr_assert(eq(int, pthread_create(&thread, NULL, post_in_background, &pp), 0));
        support_sleep_ms(300); /* the request is suspended by now */
        cr_assert(eq(int, kill(rcv.pid, SIGTERM), 0));
        pthread_join(thread, NULL);
        cr_assert(eq(long, pp.r.status, 503), "%s", pp.r.body);
        cr_assert_str_eq(pp.r.retry_after, "1");
        /* The message is still queued: the drain must say so with exit 1. */
        cr_assert(eq(int, support_wait_exit(rcv.pid, 15000), 1), "log: %s", rcv.log_path);
        rcv.pid = 0;
        unlink(rcv.log_path);
        free(body);
}

/* --check-config: 0 on a valid configuration, 2 naming the key on a bad one; no broker needed. */
static int check_config(const char *bad_setting)
{
        return support_receiver_check_config(
                (char *[]){(char *)"LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1", (char *)bad_setting,
                           NULL},
                NULL);
}

Test(receiver_e2e, check_config_exits_0_or_2)
{
        cr_assert(eq(int, check_config(NULL), 0));
        cr_assert(eq(int, check_config("LIVEFLOW_HTTP_PORT=80x"), 2));
        cr_assert(eq(int, check_config("LIVEFLOW_TENCENT_ALLOW_IPS=10.0.0.0/40"), 2));
        cr_assert(eq(int, check_config("LIVEFLOW_HTTP_ADDR=localhost"), 2));
        cr_assert(eq(int, check_config("LIVEFLOW_LOG_LEVEL=loud"), 2));
}

/* ------------------------------------------------------------ broker outage */

#define OUTAGE_POSTS 12

/* A dev broker of this test's own, so taking it down touches no other test. */
pid_t start_private_broker(char *bootstrap, size_t bootstrap_size)
{
        char bin[256], name[64], file[256], file_env[300], log_path[300];
        char *argv[] = {bin, NULL};
        char *env[] = {file_env, (char *)"LIVEFLOW_DEVBROKER_TOPICS=live.stream", NULL};
        long long deadline = support_now_ms() + 20000;
        char *text = NULL;
        pid_t pid;

        support_bin_path("liveflow-devbroker", bin, sizeof(bin));
        support_unique_name("broker", name, sizeof(name));
        snprintf(file, sizeof(file), "/tmp/liveflow_e2e_%s.bootstrap", name);
        snprintf(log_path, sizeof(log_path), "/tmp/liveflow_e2e_%s.log", name);
        snprintf(file_env, sizeof(file_env), "LIVEFLOW_DEVBROKER_BOOTSTRAP_FILE=%s", file);
        pid = private_broker = support_spawn(argv, env, log_path);
        while (support_now_ms() < deadline && !(text = support_read_file(file, NULL)))
                support_sleep_ms(50);
        cr_assert_not_null(text, "dev broker wrote no bootstrap file; log: %s", log_path);
        snprintf(bootstrap, bootstrap_size, "%.*s", (int)strcspn(text, "\r\n"), text);
        free(text);
        unlink(file);
        return pid;
}

/* How many records of topic on bootstrap have each key: reads every partition to its end. */
void count_keys(const char *bootstrap, const char *topic, char keys[][64], int key_cnt,
                int counts[])
{
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTITIONS);
        long long deadline = support_now_ms() + 20000;
        int eofs = 0;
        rd_kafka_t *rk;

        memset(counts, 0, sizeof(int) * (size_t)key_cnt);
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(conf, "group.id", "outage-check", err, sizeof(err));
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        cr_assert_not_null(rk, "%s", err);
        rd_kafka_poll_set_consumer(rk);
        for (int p = 0; p < PARTITIONS; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                        RD_KAFKA_OFFSET_BEGINNING;
        cr_assert(eq(int, rd_kafka_assign(rk, parts), 0));
        rd_kafka_topic_partition_list_destroy(parts);
        while (eofs < PARTITIONS && support_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);

                if (!m)
                        continue;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        eofs++;
                for (int i = 0; !m->err && i < key_cnt; i++)
                        if (m->key_len == strlen(keys[i]) &&
                            memcmp(m->key, keys[i], m->key_len) == 0)
                                counts[i]++;
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        cr_assert(eq(int, eofs, PARTITIONS), "did not read %s to its end", topic);
}

struct outage_post {
        char stream[64];
        char *body;
        struct reply r;
        long long ms;
};

static void *outage_post_run(void *arg)
{
        struct outage_post *op = arg;
        long long t0 = support_now_ms();

        op->r = post_json("/callbacks/tencent", op->body, NULL);
        op->ms = support_now_ms() - t0;
        return NULL;
}

/* Posts n callbacks at once, each for a stream of its own. */
static void post_batch(struct outage_post *ops, int n)
{
        pthread_t threads[OUTAGE_POSTS];

        for (int i = 0; i < n; i++) {
                support_unique_name("outage", ops[i].stream, sizeof(ops[i].stream));
                ops[i].body = signed_push(ops[i].stream, KEY, 600);
                cr_assert(eq(int, pthread_create(&threads[i], NULL, outage_post_run, &ops[i]), 0));
        }
        for (int i = 0; i < n; i++) {
                pthread_join(threads[i], NULL);
                free(ops[i].body);
        }
}

Test(receiver_e2e, broker_outage_answers_503_in_bound_and_every_200_is_in_kafka_once)
{
        const char *const env[] = {"LIVEFLOW_ACK_TIMEOUT_MS=1500", NULL};
        static struct outage_post before[OUTAGE_POSTS], during[OUTAGE_POSTS], after[OUTAGE_POSTS];
        static char keys[3 * OUTAGE_POSTS][64];
        int counts[3 * OUTAGE_POSTS], n = 0, ok_after = 0;
        char bootstrap[256];
        pid_t broker = start_private_broker(bootstrap, sizeof(bootstrap));

        start_receiver_with(bootstrap, env);
        post_batch(before, OUTAGE_POSTS);
        for (int i = 0; i < OUTAGE_POSTS; i++)
                cr_assert(eq(long, before[i].r.status, 200), "before the outage: %s",
                          before[i].r.body);

        cr_assert(eq(int, kill(broker, SIGUSR1), 0)); /* every broker down */
        support_sleep_ms(500);
        post_batch(during, OUTAGE_POSTS);
        for (int i = 0; i < OUTAGE_POSTS; i++) {
                cr_assert(eq(long, during[i].r.status, 503), "during the outage: %ld %s",
                          during[i].r.status, during[i].r.body);
                cr_assert_str_eq(during[i].r.retry_after, "1");
                /* The bound: the ack timeout, plus scheduling slack on a loaded machine. */
                cr_assert(lt(i64, during[i].ms, 1500 + 2000), "503 after %lld ms", during[i].ms);
        }

        cr_assert(eq(int, kill(broker, SIGUSR2), 0)); /* back */
        for (int round = 0; round < 20 && ok_after < OUTAGE_POSTS; round++) {
                post_batch(after, OUTAGE_POSTS);
                ok_after = 0;
                for (int i = 0; i < OUTAGE_POSTS; i++)
                        ok_after += after[i].r.status == 200;
                if (ok_after < OUTAGE_POSTS)
                        support_sleep_ms(500); /* the producer reconnects; the caller retries */
        }
        cr_assert(eq(int, ok_after, OUTAGE_POSTS),
                  "the receiver did not recover after the broker came back");
        support_receiver_stop(&rcv, false);

        for (int i = 0; i < OUTAGE_POSTS; i++) {
                snprintf(keys[n++], 64, "%s", before[i].stream);
                snprintf(keys[n++], 64, "%s", during[i].stream);
                snprintf(keys[n++], 64, "%s", after[i].stream);
        }
        count_keys(bootstrap, "live.stream", keys, n, counts);
        for (int i = 0; i < n; i++) {
                bool got_200 = i % 3 != 1; /* before and after: 200; during: 503 */

                if (got_200)
                        cr_assert(eq(int, counts[i], 1), "%s answered 200 but is in Kafka %d times",
                                  keys[i], counts[i]);
                else
                        cr_assert(le(int, counts[i], 1), "%s is in Kafka %d times", keys[i],
                                  counts[i]);
        }
}
