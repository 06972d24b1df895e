/*
 * test_conn_guard.c: slow clients (callback-receiver/conn_guard.c) against the built
 * liveflow-receiver and the fixture broker. A bounded slowloris: some hundreds to 1 100 sockets
 * from other loopback addresses that dribble header bytes, sit idle or dribble a body, while
 * legitimate signed callbacks from 127.0.0.1 must still be answered 200; their latencies are
 * printed. Also: the header and body deadlines close what the inactivity timeout would keep.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "support.h"

#define KEY          "slow-client-key"
#define LEGIT_COUNT  8
#define SOURCE_ADDRS 22 /* attackers come from 127.0.0.2 .. 127.0.0.23 */

/*
 * A Tencent 321 (push abnormal), signed: it goes to live.other, which nothing acts on, so the
 * hundreds of callbacks these tests send leave no live streams behind for the stream role's
 * suites that read the shared topics later.
 */
static const char push_sample[] =
        "{\"appid\":12345678,\"data_time\":1670588074971,\"domain\":\"test.domain.com\","
        "\"event_type\":321,\"interface\":\"general_callback\",\"path\":\"live\","
        "\"sequence\":\"2210464508206756938\",\"stream_id\":\"test_stream\"}";

static struct support_receiver rcv;

static void start_receiver(const char *const extra_env[])
{
        const char *env[16] = {"LIVEFLOW_TENCENT_KEY=" KEY, "LIVEFLOW_DRAIN_TIMEOUT_MS=5000"};
        int n = 2;

        for (int i = 0; extra_env && extra_env[i] && n < 15; i++)
                env[n++] = extra_env[i];
        support_receiver_start(&rcv, "slow", NULL, env);
}

static void setup(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        memset(&rcv, 0, sizeof(rcv));
}

static void teardown(void)
{
        support_receiver_kill(&rcv);
        curl_global_cleanup();
}

TestSuite(conn_guard, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------ the attackers */

enum attack { ATTACK_SLOW_HEADERS, ATTACK_IDLE, ATTACK_SLOW_BODY };

struct attacker {
        enum attack kind;
        int count;
        int fds[2100];
        atomic_bool stop;
        atomic_int reconnects;
        pthread_t thread;
};

/* A non-blocking socket from 127.0.0.<2 + i % SOURCE_ADDRS> to the receiver; -1 on failure. */
static int open_from(int i)
{
        struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        char addr[32];

        if (fd == -1)
                return -1;
        snprintf(addr, sizeof(addr), "127.0.0.%d", 2 + i % SOURCE_ADDRS);
        inet_pton(AF_INET, addr, &src.sin_addr);
        inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
        dst.sin_port = htons((uint16_t)rcv.port);
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == -1 ||
            (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == -1 && errno != EINPROGRESS)) {
                close(fd);
                return -1;
        }
        return fd;
}

/* What an attacker sends on a fresh socket, then one byte per tick. */
static const char *opening(enum attack kind)
{
        switch (kind) {
        case ATTACK_SLOW_HEADERS:
                return "POST /callbacks/tencent HTTP/1.1\r\nHost: x\r\n";
        case ATTACK_SLOW_BODY:
                return "POST /callbacks/tencent HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{";
        case ATTACK_IDLE:
                break;
        }
        return "";
}

/* True when the receiver closed fd (read end of stream or an error). */
static bool is_closed(int fd)
{
        char probe;
        ssize_t n = recv(fd, &probe, 1, MSG_DONTWAIT);

        return n == 0 || (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* One tick: a byte on every socket, a new socket for every one the receiver closed. */
static void tick(struct attacker *a, bool is_first)
{
        static bool is_new[2100];
        const char *open_text = opening(a->kind);
        char c = a->kind == ATTACK_SLOW_BODY ? ' ' : 'X';

        for (int i = 0; i < a->count; i++) {
                is_new[i] = false;
                if (!is_first && a->fds[i] != -1 &&
                    (is_closed(a->fds[i]) ||
                     (a->kind != ATTACK_IDLE && send(a->fds[i], &c, 1, MSG_NOSIGNAL) == -1 &&
                      errno != EAGAIN))) {
                        close(a->fds[i]); /* as an attacker would, open another */
                        a->fds[i] = -1;
                        atomic_fetch_add(&a->reconnects, 1);
                }
                if (a->fds[i] == -1)
                        is_new[i] = (a->fds[i] = open_from(i)) != -1;
        }
        support_sleep_ms(50); /* let the connects complete */
        for (int i = 0; i < a->count && *open_text; i++)
                if (is_new[i])
                        (void)send(a->fds[i], open_text, strlen(open_text), MSG_NOSIGNAL);
}

static void *attack_run(void *arg)
{
        struct attacker *a = arg;

        for (int i = 0; i < a->count; i++)
                a->fds[i] = -1;
        tick(a, true);
        while (!atomic_load(&a->stop)) {
                for (int i = 0; i < 20 && !atomic_load(&a->stop); i++)
                        support_sleep_ms(50);
                tick(a, false);
        }
        for (int i = 0; i < a->count; i++)
                if (a->fds[i] != -1)
                        close(a->fds[i]);
        return NULL;
}

/* ------------------------------------------------------------ the legitimate traffic */

static char *signed_push(int i)
{
        json_t *root = json_loads(push_sample, 0, NULL);
        long long t = (long long)time(NULL) + 60;
        char sign[33], stream[64], *s;

        cr_assert(root != NULL);
        support_tencent_sign(KEY, t, sign);
        support_unique_name("slow-stream", stream, sizeof(stream));
        snprintf(stream + strlen(stream), sizeof(stream) - strlen(stream), "-%d", i);
        json_object_set_new(root, "stream_id", json_string(stream));
        json_object_set_new(root, "t", json_integer(t));
        json_object_set_new(root, "sign", json_string(sign));
        s = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return s;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
        (void)p;
        (void)arg;
        return size * n;
}

/* POSTs one signed callback on a new connection; its status, *ms its latency. */
static long post_push(int i, double *ms)
{
        char url[128], *body = signed_push(i);
        struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
        CURL *curl = curl_easy_init();
        long status = 0;
        long long start = support_now_ms();

        headers = curl_slist_append(headers, "Expect:");
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/callbacks/tencent", rcv.port);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);
        if (curl_easy_perform(curl) == CURLE_OK)
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        *ms = (double)(support_now_ms() - start);
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        free(body);
        return status;
}

/*
 * Runs an attack of count sockets for a few seconds with LEGIT_COUNT callbacks sent during it,
 * one every 500 ms after the first second; every one must be answered 200. Prints latencies.
 */
static void legit_traffic_is_served_under(enum attack kind, int count, const char *name)
{
        static struct attacker a; /* large: not on the stack */
        double ms[LEGIT_COUNT], worst = 0, sum = 0;
        long status[LEGIT_COUNT];

        memset(&a, 0, sizeof(a));
        a.kind = kind;
        a.count = count;
        cr_assert(eq(int, pthread_create(&a.thread, NULL, attack_run, &a), 0));
        support_sleep_ms(1500); /* the sockets are open and the limit is reached */
        for (int i = 0; i < LEGIT_COUNT; i++) {
                status[i] = post_push(i, &ms[i]);
                worst = ms[i] > worst ? ms[i] : worst;
                sum += ms[i];
                support_sleep_ms(500);
        }
        atomic_store(&a.stop, true);
        pthread_join(a.thread, NULL);
        fprintf(stderr,
                "slow clients: %s x %d (%d reopened by the attacker): %d legitimate callbacks, "
                "latency mean %.0f ms, worst %.0f ms:",
                name, count, atomic_load(&a.reconnects), LEGIT_COUNT, sum / LEGIT_COUNT, worst);
        for (int i = 0; i < LEGIT_COUNT; i++)
                fprintf(stderr, " %.0f", ms[i]);
        fprintf(stderr, "\n");
        for (int i = 0; i < LEGIT_COUNT; i++)
                cr_assert(eq(long, status[i], 200), "callback %d: status %ld after %.0f ms; log %s",
                          i, status[i], ms[i], rcv.log_path);
}

/* ------------------------------------------------------------ tests */

Test(conn_guard, legit_callbacks_are_served_under_1100_slow_header_sockets)
{
        start_receiver(NULL);
        legit_traffic_is_served_under(ATTACK_SLOW_HEADERS, 1100, "slow headers (a byte a second)");
        support_receiver_stop(&rcv, false);
}

Test(conn_guard, legit_callbacks_are_served_under_2000_idle_sockets)
{
        start_receiver(NULL);
        legit_traffic_is_served_under(ATTACK_IDLE, 2000, "idle connections");
        support_receiver_stop(&rcv, false);
}

Test(conn_guard, legit_callbacks_are_served_under_300_slow_bodies)
{
        start_receiver((const char *const[]){"LIVEFLOW_HTTP_REQUEST_TIMEOUT_MS=2000", NULL});
        legit_traffic_is_served_under(ATTACK_SLOW_BODY, 300, "slow bodies (a byte a second)");
        support_receiver_stop(&rcv, false);
}

/* Reads the receiver's /metrics and returns the value of series, or -1. */
static long long scrape(const char *series)
{
        char cmd[512], out[64] = "";
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "curl -s http://127.0.0.1:%d/metrics | grep -F '%s ' | awk '{print $2}'",
                 rcv.admin_port, series);
        p = popen(cmd, "r");
        cr_assert(p != NULL);
        if (!fgets(out, sizeof(out), p))
                out[0] = '\0';
        pclose(p);
        return out[0] ? atoll(out) : -1;
}

Test(conn_guard, a_connection_that_dribbles_its_headers_is_closed_at_the_header_deadline)
{
        int fd;
        char c = 'X', buf[256];
        long long start;
        ssize_t n = 1;

        start_receiver((const char *const[]){"LIVEFLOW_HTTP_HEADER_TIMEOUT_MS=1500", NULL});
        fd = open_from(0);
        cr_assert(fd != -1);
        support_sleep_ms(50);
        cr_assert(send(fd, "POST /callbacks/tencent HTTP/1.1\r\n", 34, MSG_NOSIGNAL) == 34);
        start = support_now_ms();
        /* A byte every 300 ms keeps the 30 s inactivity timeout from ever firing. */
        while (support_now_ms() - start < 10000) {
                support_sleep_ms(300);
                if (send(fd, &c, 1, MSG_NOSIGNAL) == -1)
                        break;
                if ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) == 0 ||
                    (n == -1 && errno != EAGAIN))
                        break;
        }
        fprintf(stderr,
                "slow clients: a dribbling header was closed after %lld ms (deadline "
                "1500 ms)\n",
                support_now_ms() - start);
        cr_assert(support_now_ms() - start < 10000, "still open after 10 s of dribbling");
        close(fd);
        cr_assert(
                eq(i64,
                   scrape("liveflow_receiver_connections_closed_total{reason=\"header_timeout\"}"),
                   1));
        support_receiver_stop(&rcv, false);
}

/* Whether the receiver closes fd within ms. */
static bool closed_within(int fd, int ms)
{
        for (long long start = support_now_ms(); support_now_ms() - start < ms;
             support_sleep_ms(20))
                if (is_closed(fd))
                        return true;
        return false;
}

/*
 * Every loop has a daemon of its own, so the per-address limit must be counted over all of
 * them: with 4 loops and a limit of 6, the 7th connection from one address is closed wherever
 * it lands, another address still gets in, and a closed connection frees its place.
 */
Test(conn_guard, the_per_address_limit_holds_over_every_loop)
{
        int fds[6], extra, other, again;
        bool is_open;

        start_receiver((const char *const[]){"LIVEFLOW_HTTP_THREADS=4",
                                             "LIVEFLOW_HTTP_MAX_CONNECTIONS_PER_IP=6", NULL});
        for (int i = 0; i < 6; i++) {
                fds[i] = open_from(0); /* all from 127.0.0.2 */
                cr_assert(fds[i] != -1);
                support_sleep_ms(20);
        }
        for (int i = 0; i < 6; i++) {
                is_open = !closed_within(fds[i], i == 0 ? 300 : 10);
                cr_assert(is_open, "connection %d closed", i);
        }
        extra = open_from(0);
        cr_assert(extra != -1);
        cr_assert(closed_within(extra, 3000), "a 7th connection from one address stays open");
        other = open_from(1); /* 127.0.0.3 */
        cr_assert(other != -1);
        is_open = !closed_within(other, 300);
        cr_assert(is_open, "another address was refused");
        close(fds[0]);
        support_sleep_ms(300); /* the receiver sees the close */
        again = open_from(0);
        cr_assert(again != -1);
        is_open = !closed_within(again, 300);
        cr_assert(is_open, "a freed place was not given again");
        cr_assert(eq(i64,
                     scrape("liveflow_receiver_connections_closed_total{reason=\"per_ip_limit\"}"),
                     1));
        for (int i = 1; i < 6; i++)
                close(fds[i]);
        close(extra);
        close(other);
        close(again);
        support_receiver_stop(&rcv, false);
}

/* Runs --check-config with env; its output in out. @returns the exit code. */
static int check_config(char *const env[], char *out, size_t out_size)
{
        char *text;
        int rc = support_receiver_check_config(env, &text);

        snprintf(out, out_size, "%s", text);
        free(text);
        return rc;
}

Test(conn_guard, check_config_warns_of_a_reachable_address_without_a_guard)
{
        char out[2048];

        cr_assert(eq(int,
                     check_config((char *[]){(char *)"LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1",
                                             (char *)"LIVEFLOW_HTTP_ADDR=0.0.0.0", NULL},
                                  out, sizeof(out)),
                     0));
        cr_assert(strstr(out, "warning: LIVEFLOW_HTTP_ADDR=0.0.0.0 is not loopback") != NULL, "%s",
                  out);
        cr_assert(eq(int,
                     check_config((char *[]){(char *)"LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1",
                                             (char *)"LIVEFLOW_HTTP_ADDR=0.0.0.0",
                                             (char *)"LIVEFLOW_TENCENT_ALLOW_IPS=10.0.0.0/8", NULL},
                                  out, sizeof(out)),
                     0));
        cr_assert(strstr(out, "warning") == NULL, "%s", out);
        cr_assert(eq(int,
                     check_config((char *[]){(char *)"LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1", NULL},
                                  out, sizeof(out)),
                     0));
        cr_assert(strstr(out, "warning") == NULL, "loopback is the default: %s", out);
}
