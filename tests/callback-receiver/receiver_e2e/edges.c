/* edges.c: test_receiver_e2e's SRS hooks spooled while Kafka is down, the loops' metric series,
 * readiness following Kafka, recording failures, HTTP framing that could smuggle or hang, heads
 * larger than the connection's memory, the
 * drain of kept-alive connections, verdicts that need a second signal and a frozen anchor store. */
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

#include "fixture.h"

/* ------------------------------------------------------------ SRS spool */

/* The first value of a /metrics series on the receiver's traffic port, or -1. */
static long long scrape_metric(const char *series)
{
        struct reply r = http("GET", "/metrics", NULL, NULL, NULL);
        const char *p = r.body;

        while ((p = strstr(p, series)) != NULL) {
                if ((p == r.body || p[-1] == '\n') && p[strlen(series)] == ' ')
                        return atoll(p + strlen(series) + 1);
                p += strlen(series);
        }
        return -1;
}

/* The sum of the requests_total series of endpoint tencent with the given status. */
static long long tencent_requests(const char *status)
{
        struct reply r = http("GET", "/metrics", NULL, NULL, NULL);
        char want[64];
        long long sum = 0;

        snprintf(want, sizeof(want), "status=\"%s\"} ", status);
        for (const char *p = r.body; (p = strstr(p, "liveflow_receiver_requests_total{")); p++) {
                const char *end = strchr(p, '\n'), *st = strstr(p, want);

                if ((p == r.body || p[-1] == '\n') && strstr(p, "endpoint=\"tencent\"") < end &&
                    st && st < end)
                        sum += atoll(st + strlen(want));
        }
        return sum;
}

/*
 * Each loop answers the connections it accepted, but /metrics is one registry: with four loops
 * and a fresh connection per request, the series count every request once, the first ones of
 * a series (looked up) as the later ones (remembered by the loop).
 */
Test(receiver_e2e, the_loops_count_into_one_set_of_series)
{
        char stream[64], log_line[512] = "";
        struct reply r;
        FILE *log;

        start_receiver((const char *const[]){"LIVEFLOW_HTTP_THREADS=4", NULL});
        for (int i = 0; i < 12; i++) {
                char *body;

                support_unique_name("loops_stream", stream, sizeof(stream));
                body = signed_push(stream, KEY, 600);
                r = post_json("/callbacks/tencent", body, NULL);
                free(body);
                cr_assert(eq(long, r.status, 200), "%s", r.body);
        }
        for (int i = 0; i < 3; i++) {
                char *body = signed_push("loops_bad", "not-the-key", 600);

                r = post_json("/callbacks/tencent", body, NULL);
                free(body);
                cr_assert(eq(long, r.status, 401), "%s", r.body);
        }
        /* A request is counted once its answer is sent, which the client may see first: wait
           (bounded) for the last ones, then the counts must be exact. */
        for (long long start = support_now_ms();
             (tencent_requests("200") < 12 || tencent_requests("401") < 3) &&
             support_now_ms() - start < 5000;
             support_sleep_ms(20)) {
        }
        cr_assert(eq(i64, tencent_requests("200"), 12));
        cr_assert(eq(i64, tencent_requests("401"), 3));
        cr_assert(eq(i64,
                     scrape_metric("liveflow_receiver_request_duration_seconds_count{endpoint="
                                   "\"tencent\"}"),
                     15));
        /* Info lines are written in batches: the ready line may take a moment. */
        for (long long start = support_now_ms();
             !strstr(log_line, " ready ") && support_now_ms() - start < 5000;
             support_sleep_ms(50)) {
                log = fopen(rcv.log_path, "r");
                cr_assert(log != NULL);
                while (fgets(log_line, sizeof(log_line), log) && !strstr(log_line, " ready "))
                        ;
                fclose(log);
        }
        cr_assert(strstr(log_line, " loops=4 ") != NULL, "ready line: %s", log_line);
        support_receiver_stop(&rcv, false);
}

Test(receiver_e2e, srs_hooks_are_spooled_while_kafka_is_down_and_replayed_once_it_is_back)
{
        char spool_dir[] = "/tmp/liveflow_e2e_spool_XXXXXX", spool_env[128], bootstrap[256],
             body[512];
        char keys[1][64];
        int counts[1] = {0};
        const char *env[] = {"LIVEFLOW_ACK_TIMEOUT_MS=1000", "LIVEFLOW_SRS_TOKEN=spool-token",
                             spool_env, NULL};
        pid_t broker = start_private_broker(bootstrap, sizeof(bootstrap));
        struct reply r;

        cr_assert_not_null(mkdtemp(spool_dir));
        snprintf(spool_env, sizeof(spool_env), "LIVEFLOW_SPOOL_DIR=%s", spool_dir);
        start_receiver_with(bootstrap, env);
        support_unique_name("spooled", keys[0], sizeof(keys[0]));
        snprintf(
                body, sizeof(body),
                "{\"server_id\":\"vid-1\",\"service_id\":\"s1\",\"action\":\"on_play\",\"client_id\":\"c1\","
                "\"ip\":\"192.168.1.11\",\"vhost\":\"__defaultVhost__\",\"app\":\"live\",\"stream\":\"%s\"}",
                keys[0]);

        cr_assert(eq(int, kill(broker, SIGUSR1), 0)); /* every broker down */
        support_sleep_ms(500);
        r = post_json("/callbacks/srs?token=spool-token", body, NULL);
        cr_assert(eq(long, r.status, 200), "SRS never retries: a spooled hook is accepted; %s",
                  r.body);
        cr_assert(eq(i64, scrape_metric("liveflow_receiver_spooled_total"), 1));
        cr_assert(eq(i64, scrape_metric("liveflow_receiver_spool_records"), 1));

        cr_assert(eq(int, kill(broker, SIGUSR2), 0)); /* back: the spool is replayed */
        long long deadline = support_now_ms() + 30000;
        while (scrape_metric("liveflow_receiver_spool_replayed_total") < 1 &&
               support_now_ms() < deadline)
                support_sleep_ms(200);
        cr_assert(eq(i64, scrape_metric("liveflow_receiver_spool_records"), 0), "log: %s",
                  rcv.log_path);
        support_receiver_stop(&rcv, false);
        count_keys(bootstrap, "live.viewer", keys, 1, counts);
        cr_assert(eq(int, counts[0], 1), "the spooled hook is in Kafka once");
        support_sh("rm -rf %s", spool_dir);
}

/* ------------------------------------------------------------ readiness follows Kafka */

/* Posts a signed push of a new stream; its status, *ms how long the answer took. */
static long post_timed(long long *ms)
{
        char stream[64], *body;
        long long t0 = support_now_ms();
        struct reply r;

        support_unique_name("ready-stream", stream, sizeof(stream));
        body = signed_push(stream, KEY, 0);
        r = post_json("/callbacks/tencent", body, NULL);
        *ms = support_now_ms() - t0;
        free(body);
        return r.status;
}

Test(receiver_e2e, without_a_broker_readyz_is_503_and_callers_are_answered_at_once)
{
        long long down_at, up_at, ready_503_ms = -1, ms, fast_ms, back_ms = -1;
        char bootstrap[256];
        pid_t broker = start_private_broker(bootstrap, sizeof(bootstrap));

        start_receiver_with(bootstrap, NULL); /* the ack timeout stays 5 s */
        cr_assert(eq(long, post_timed(&ms), 200));

        cr_assert(eq(int, kill(broker, SIGUSR1), 0)); /* every broker down */
        down_at = support_now_ms();
        while (support_now_ms() - down_at < 20000) {
                if (http("GET", "/readyz", NULL, NULL, NULL).status == 503) {
                        ready_503_ms = support_now_ms() - down_at;
                        break;
                }
                support_sleep_ms(100);
        }
        cr_assert(ready_503_ms >= 0, "/readyz stayed 200 for 20 s without a broker");
        cr_assert(eq(long, post_timed(&fast_ms), 503));
        cr_assert(eq(i64, scrape_metric("liveflow_receiver_kafka_reachable"), 0));

        cr_assert(eq(int, kill(broker, SIGUSR2), 0)); /* back */
        up_at = support_now_ms();
        while (support_now_ms() - up_at < 20000) {
                if (post_timed(&ms) == 200) {
                        back_ms = support_now_ms() - up_at;
                        break;
                }
                support_sleep_ms(50);
        }
        fprintf(stderr,
                "kafka outage: /readyz 503 after %lld ms, a callback then answered 503 in %lld ms "
                "(ack timeout 5000 ms); after the broker's return the first 200 came %lld ms "
                "later\n",
                ready_503_ms, fast_ms, back_ms);
        cr_assert(lt(i64, fast_ms, 2500), "503 took %lld ms: not at once", fast_ms);
        cr_assert(back_ms >= 0, "no 200 within 20 s of the broker's return");
        cr_assert(eq(long, http("GET", "/readyz", NULL, NULL, NULL).status, 200));
        support_receiver_stop(&rcv, false);
}

/* ------------------------------------------------------------ recording failures */

/* A signed 332 recording status of stream with record_event state. */
static char *signed_record_status(const char *stream, const char *state)
{
        long long t = (long long)time(NULL) + 60;
        char msg[128], sign[33], *s;

        snprintf(msg, sizeof(msg), "%s%lld", KEY, t);
        crypto_md5_hex(msg, strlen(msg), sign);
        cr_assert(asprintf(&s,
                           "{\"appid\":12345678,\"appname\":\"live\",\"domain\":\"d\","
                           "\"event_time\":1700208529,\"event_type\":332,\"record_event\":\"%s\","
                           "\"task_id\":\"task-1\",\"seq\":\"%s-%s\",\"session_id\":\"s1\","
                           "\"stream_id\":\"%s\",\"t\":%lld,\"sign\":\"%s\"}",
                           state, stream, state, stream, t, sign) > 0);
        return s;
}

Test(receiver_e2e, recording_failures_are_counted_for_an_alert)
{
        char stream[64];
        char *failed, *error, *ok;

        support_unique_name("rec-stream", stream, sizeof(stream));
        failed = signed_record_status(stream, "record_start_failed");
        error = signed_record_status(stream, "record_error");
        ok = signed_record_status(stream, "record_start_succeeded");
        start_receiver(NULL);
        cr_assert(eq(long, post_json("/callbacks/tencent", failed, NULL).status, 200));
        cr_assert(eq(long, post_json("/callbacks/tencent", error, NULL).status, 200));
        cr_assert(eq(long, post_json("/callbacks/tencent", ok, NULL).status, 200));
        cr_assert(eq(i64,
                     scrape_metric("liveflow_receiver_recording_failures_total{vendor=\"tencent\","
                                   "state=\"record_start_failed\"}"),
                     1));
        cr_assert(eq(i64,
                     scrape_metric("liveflow_receiver_recording_failures_total{vendor=\"tencent\","
                                   "state=\"record_error\"}"),
                     1));
        support_receiver_stop(&rcv, false);
        free(failed);
        free(error);
        free(ok);
}

/* ------------------------------------------------------------ HTTP framing */

/*
 * Sends raw bytes on a new connection and reads what comes back until the receiver closes
 * it or wait_ms passes; the text read (NUL-terminated) in out. @returns how long it took.
 */
long long raw_exchange(const char *request, char *out, size_t out_size, int wait_ms)
{
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rcv.port)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        long long t0 = support_now_ms();
        size_t have = 0;

        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
        cr_assert(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
        cr_assert(send(fd, request, strlen(request), MSG_NOSIGNAL) == (ssize_t)strlen(request));
        while (support_now_ms() - t0 < wait_ms && have + 1 < out_size) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ssize_t n;

                if (poll(&p, 1, 100) <= 0)
                        continue;
                if ((n = recv(fd, out + have, out_size - 1 - have, 0)) <= 0)
                        break;
                have += (size_t)n;
        }
        out[have] = '\0';
        close(fd);
        return support_now_ms() - t0;
}

static int status_lines(const char *text)
{
        int n = 0;

        for (const char *p = text; (p = strstr(p, "HTTP/1.1 ")) != NULL; p++)
                n++;
        return n;
}

Test(receiver_e2e, framing_that_could_smuggle_or_hang_is_refused_at_once)
{
        char out[8192];
        long long ms;

        start_receiver(NULL);
        /* Both lengths: the tail would be a second request. One answer, then the close. */
        ms = raw_exchange("POST /callbacks/tencent HTTP/1.1\r\nHost: x\r\n"
                          "Content-Type: application/json\r\nContent-Length: 5\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                          "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                          out, sizeof(out), 5000);
        cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%s", out);
        cr_assert(strstr(out, "RFC 9112") != NULL, "%s", out);
        cr_assert(eq(int, status_lines(out), 1), "the tail was run as a request: %s", out);
        cr_assert(lt(i64, ms, 4000), "the connection was not closed");

        /* A coding the receiver cannot read: 501 at once, not a 30 s wait. */
        ms = raw_exchange("POST /callbacks/tencent HTTP/1.1\r\nHost: x\r\n"
                          "Transfer-Encoding: gzip\r\n\r\nxxxx",
                          out, sizeof(out), 5000);
        cr_assert(strncmp(out, "HTTP/1.1 501", 12) == 0, "%s", out);
        cr_assert(lt(i64, ms, 4000), "took %lld ms", ms);

        ms = raw_exchange("POST /callbacks/tencent HTTP/1.1\r\nHost: x\r\n"
                          "Content-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",
                          out, sizeof(out), 5000);
        cr_assert(strncmp(out, "HTTP/1.1 415", 12) == 0, "%s", out);
        cr_assert(strstr(out, "\"code\":415") != NULL, "%s", out);
        support_receiver_stop(&rcv, false);
}

/*
 * A signed push whose head carries `headers` padding headers of `bytes` in all (what a chain
 * of proxies adds: X-Forwarded-For, Via, a long User-Agent), sent with Connection: close.
 */
static char *padded_push(const char *stream, int headers, size_t bytes)
{
        char *body = signed_push(stream, KEY, 600), *req, *p;
        size_t per = bytes / (size_t)headers,
               size = bytes + (size_t)headers * 32 + strlen(body) + 256;

        cr_assert(not(eq(ptr, req = malloc(size), NULL)));
        p = req + sprintf(req, "POST /callbacks/tencent HTTP/1.1\r\nHost: x\r\n"
                               "Content-Type: application/json\r\nConnection: close\r\n");
        for (int i = 0; i < headers; i++) {
                p += sprintf(p, "X-Proxy-%02d: ", i);
                memset(p, 'a' + i % 26, per);
                p += per;
                p += sprintf(p, "\r\n");
        }
        sprintf(p, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
        free(body);
        return req;
}

/* The status of the one answer to a padded push (0: the connection closed without one). */
static int padded_push_status(int headers, size_t bytes)
{
        char stream[64], out[8192], *req;

        support_unique_name("e2e_head", stream, sizeof(stream));
        req = padded_push(stream, headers, bytes);
        raw_exchange(req, out, sizeof(out), 10000);
        free(req);
        return strncmp(out, "HTTP/1.1 ", 9) == 0 ? atoi(out + 9) : 0;
}

/*
 * libmicrohttpd keeps a request's head in the connection's pool (LIVEFLOW_HTTP_CONNECTION_MEMORY,
 * 8 KiB) and clears the pool after every request: a head that fits is served, a larger one is
 * refused with 431 and the receiver goes on serving; the setting raises the limit.
 */
Test(receiver_e2e, a_head_larger_than_the_connection_memory_is_431_and_the_setting_raises_it)
{
        const char *const env[] = {"LIVEFLOW_HTTP_CONNECTION_MEMORY=16384", NULL};

        start_receiver(NULL);
        cr_assert(eq(int, padded_push_status(30, 4096), 200), "30 headers, 4 KiB: %s",
                  rcv.log_path);
        cr_assert(eq(int, padded_push_status(10, 10240), 431), "10 KiB of headers");
        cr_assert(eq(int, padded_push_status(1, 64), 200), "served after the 431");
        support_receiver_stop(&rcv, false);

        start_receiver(env);
        cr_assert(eq(int, padded_push_status(10, 10240), 200), "16 KiB: %s", rcv.log_path);
        support_receiver_stop(&rcv, false);
}

Test(receiver_e2e, a_path_whose_escapes_change_its_meaning_is_a_400)
{
        static const char *const paths[] = {
                "/v1/admin/anchors/a%00b/ban", "/v1/admin/anchors/a%2Fb/ban",
                "/v1/admin/anchors/a%2fb/ban", "/callbacks/tencent%00", "/callbacks/tencent/%0a"};
        char out[8192], request[512];

        start_receiver(NULL);
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                snprintf(request, sizeof(request),
                         "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: "
                         "close\r\n\r\n",
                         paths[i]);
                raw_exchange(request, out, sizeof(out), 5000);
                cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%s: %s", paths[i], out);
                cr_assert(strstr(out, "path: an escape") != NULL, "%s: %s", paths[i], out);
        }
        /* An ordinary escape is fine: a blank in an id. */
        raw_exchange("GET /no%20such%41 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out,
                     sizeof(out), 5000);
        cr_assert(strncmp(out, "HTTP/1.1 404", 12) == 0, "%s", out);
        cr_assert(strstr(out, "path: an escape") == NULL, "%s", out);
        support_receiver_stop(&rcv, false);
}

/* ------------------------------------------------------------ drain and kept-alive connections */

/* Reads from fd until "\r\n\r\n" plus the body or wait_ms; the text in out. */
static void read_answer(int fd, char *out, size_t out_size, int wait_ms)
{
        long long t0 = support_now_ms();
        size_t have = 0;

        out[0] = '\0';
        while (support_now_ms() - t0 < wait_ms && have + 1 < out_size) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ssize_t n;

                if (poll(&p, 1, 100) <= 0)
                        continue;
                if ((n = recv(fd, out + have, out_size - 1 - have, 0)) <= 0)
                        break;
                have += (size_t)n;
                out[have] = '\0';
                if (strstr(out, "\r\n\r\n") && strstr(out, "}"))
                        break;
        }
}

Test(receiver_e2e, a_request_on_a_kept_alive_connection_during_the_drain_gets_503_and_close)
{
        struct sockaddr_in sin = {.sin_family = AF_INET};
        char out[4096], stream[64], *body, request[2048];
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        start_receiver(NULL);
        sin.sin_port = htons((uint16_t)rcv.port);
        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
        cr_assert(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
        support_unique_name("drain-stream", stream, sizeof(stream));
        body = signed_push(stream, KEY, 0);
        snprintf(request, sizeof(request),
                 "POST /callbacks/tencent HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        free(body);
        cr_assert(send(fd, request, strlen(request), MSG_NOSIGNAL) > 0);
        read_answer(fd, out, sizeof(out), 5000);
        cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
        cr_assert(strcasestr(out, "Connection: close") == NULL, "not kept alive: %s", out);

        /* The connection is idle and kept alive; the receiver starts draining. */
        cr_assert(eq(int, kill(rcv.pid, SIGTERM), 0));
        support_sleep_ms(300);
        support_unique_name("drain-stream", stream, sizeof(stream));
        body = signed_push(stream, KEY, 0);
        snprintf(request, sizeof(request),
                 "POST /callbacks/tencent HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        cr_assert(send(fd, request, strlen(request), MSG_NOSIGNAL) > 0);
        read_answer(fd, out, sizeof(out), 5000);
        cr_assert(strncmp(out, "HTTP/1.1 503", 12) == 0, "no answer during the drain: \"%s\"", out);
        cr_assert(strcasestr(out, "Connection: close") != NULL, "%s", out);
        close(fd);
        free(body);
        cr_assert(eq(int, support_wait_exit(rcv.pid, 15000), 0), "drain failed; log: %s",
                  rcv.log_path);
        rcv.pid = 0;
        unlink(rcv.log_path);
}

/* ------------------------------------------------------------ verdicts need a second signal */

/* A signed Tencent 317 Block verdict on stream (minimal fields of the sample). */
static char *signed_block_verdict(const char *stream)
{
        long long t = (long long)time(NULL) + 60;
        char msg[128], sign[33], *s;

        snprintf(msg, sizeof(msg), "%s%lld", KEY, t);
        crypto_md5_hex(msg, strlen(msg), sign);
        cr_assert(asprintf(&s,
                           "{\"event_type\":317,\"type\":[1],\"score\":[99],"
                           "\"screenshotTime\":%lld,\"img\":\"http://1.1.1.1/p.jpg\","
                           "\"suggestion\":\"Block\",\"label\":\"Porn\",\"streamId\":\"%s\","
                           "\"stream_param\":\"anchor_id=victim\",\"t\":%lld,\"sign\":\"%s\"}",
                           (long long)time(NULL), stream, t, sign) > 0);
        return s;
}

Test(receiver_e2e, an_unguarded_reachable_receiver_does_not_let_a_verdict_punish)
{
        const char *const env[] = {"LIVEFLOW_HTTP_ADDR=0.0.0.0", NULL};
        char stream[64], trace[64], value[64];
        struct support_reader *other = support_reader_open("live.other");
        rd_kafka_message_t *rkm;
        char *body;

        support_unique_name("verdict-stream", stream, sizeof(stream));
        support_unique_name("verdict-trace", trace, sizeof(trace));
        body = signed_block_verdict(stream);
        start_receiver(env); /* every interface, neither a path token nor an allowlist */
        cr_assert(eq(long, post_json("/callbacks/tencent", body, trace).status, 200));
        rkm = support_reader_until(other, trace, NULL, NULL, NULL, 20000);
        cr_assert(rkm != NULL, "the verdict is not on live.other");
        cr_assert(eq(int, support_header(rkm, "event_type", value, sizeof(value)), 0));
        cr_assert_str_eq(value, "other.unverified");
        rd_kafka_message_destroy(rkm);
        support_reader_close(other);
        support_receiver_stop(&rcv, false);
        free(body);
}

/* ------------------------------------------------------------ a frozen anchor store */

/* Closes every connection the frozen store holds, and the store. */
static void thaw(int fd)
{
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int conn;

        while (poll(&pfd, 1, 0) == 1 && (conn = accept(fd, NULL, NULL)) >= 0)
                close(conn);
        close(fd);
}

struct timed_hook {
        const char *body;
        struct reply r;
        long long ms;
};

static void *srs_hook_in_background(void *arg)
{
        struct timed_hook *th = arg;
        long long t0 = support_now_ms();

        th->r = post_json("/callbacks/srs?token=frozen-token", th->body, NULL);
        th->ms = support_now_ms() - t0;
        return NULL;
}

Test(receiver_e2e, a_frozen_anchor_store_holds_up_only_the_publish_that_waits_for_it)
{
        char mysql_env[128], publish[512], stream[64];
        const char *env[] = {"LIVEFLOW_HTTP_THREADS=1", /* every connection on one thread */
                             "LIVEFLOW_SRS_TOKEN=frozen-token",
                             "LIVEFLOW_SRS_PUBLISH_UNSIGNED=1",
                             "LIVEFLOW_SRS_FAIL_OPEN=0",
                             "LIVEFLOW_SRS_LOOKUP_TIMEOUT_MS=2000",
                             "LIVEFLOW_MYSQL_TIMEOUT_S=6", /* longer than the deadline */
                             mysql_env,
                             NULL};
        int port, fd = support_silent_listener(&port); /* a MariaDB that never answers */
        struct timed_hook th = {.body = publish};
        long long slowest_ms = 0;
        pthread_t thread;

        /* No Redis: the callback claims are off, so only the anchor lookup meets the store. */
        snprintf(mysql_env, sizeof(mysql_env),
                 "LIVEFLOW_MYSQL_URL=mysql://u:p@127.0.0.1:%d/liveflow", port);
        support_unique_name("frozen_stream", stream, sizeof(stream));
        snprintf(publish, sizeof(publish),
                 "{\"action\":\"on_publish\",\"client_id\":\"c1\",\"ip\":\"192.168.1.10\","
                 "\"vhost\":\"__defaultVhost__\",\"app\":\"live\",\"stream\":\"%s\","
                 "\"param\":\"?anchor_id=frozen-anchor\"}",
                 stream);
        start_receiver(env);
        cr_assert(eq(int, pthread_create(&thread, NULL, srs_hook_in_background, &th), 0));
        support_sleep_ms(300); /* the publish waits for the store by now */
        for (int i = 0; i < 4; i++) {
                char push_stream[64], *body;
                long long t0 = support_now_ms(), ms;
                struct reply r;

                support_unique_name("frozen_push", push_stream, sizeof(push_stream));
                body = signed_push(push_stream, KEY, 600);
                r = post_json("/callbacks/tencent", body, NULL);
                ms = support_now_ms() - t0;
                cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, rcv.log_path);
                slowest_ms = ms > slowest_ms ? ms : slowest_ms;
                free(body);
        }
        pthread_join(thread, NULL);
        fprintf(stderr,
                "frozen anchor store: the publish was answered in %lld ms (deadline 2000 ms); "
                "the slowest of 4 Tencent callbacks meanwhile on the same HTTP thread took "
                "%lld ms\n",
                th.ms, slowest_ms);
        /* The publish did wait for the store (fail closed: 503, counted)... */
        cr_assert(eq(long, th.r.status, 503), "%s; log %s", th.r.body, rcv.log_path);
        cr_assert(ge(i64, th.ms, 1500), "the publish took %lld ms: the store was not frozen",
                  th.ms);
        cr_assert(eq(i64, scrape_metric("liveflow_receiver_srs_lookup_timeouts_total"), 1));
        /* ...and nothing else on its thread did. */
        cr_assert(lt(i64, slowest_ms, 500), "a Tencent callback waited %lld ms behind the lookup",
                  slowest_ms);
        thaw(fd); /* the lookup thread lets go of the store and the receiver can stop */
        support_receiver_stop(&rcv, false);
}
