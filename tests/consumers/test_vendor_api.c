/* test_vendor_api.c: vendor drops against a local HTTP server that records every request. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <mysql.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "crypto.h"
#include "settings.h"
#include "support.h"
#include "url.h"
#include "agora_api.h"
#include "alibaba_api.h"
#include "vendor_api.h"

/* A stream role reading the shared topics from the start drops other suites' streams too. */
#define MAX_REQUESTS 4096
#define SECRET_ID    "AKIDtestliveflow"
#define SECRET_KEY   "test-secret-key-liveflow"
#define AGORA_ID     "agora-customer-id"
#define AGORA_SECRET "agora-customer-secret"
#define ALI_KEY_ID   "LTAItestliveflow"
#define ALI_SECRET   "alibaba-access-key-secret"
#define ARGS_MAX     24

/* One request as the server saw it. */
struct seen {
        char method[8], path[256], start[16], authorization[512], host[128], content_type[96],
                action[64], version[32], timestamp[32], region[32], body[1024];
        /* the query's arguments, decoded (Alibaba's RPC calls carry everything there) */
        char arg_names[ARGS_MAX][32], arg_values[ARGS_MAX][160];
        int arg_cnt;
};

/* A local HTTP server standing in for Tencent's API and SRS's; answers are scripted per test. */
struct server {
        struct MHD_Daemon *daemon;
        int port;
        pthread_mutex_t lock;
        struct seen seen[MAX_REQUESTS];
        int seen_cnt;
        /* Tencent: the status and body of every POST, after delay_ms */
        int tencent_status;
        const char *tencent_body;
        int delay_ms;
        /* SRS: srs_total clients, the publisher of srs_stream at srs_publisher (-1: none) */
        int srs_total, srs_publisher;
        const char *srs_stream;
        bool srs_v3; /* integer ids and no "name", as SRS 3 lists clients */
        int delete_status;
        const char *delete_body;
        /* Agora's kicking-rule and Alibaba's RPC endpoint: scripted answers */
        int agora_status;
        const char *agora_body;
        int alibaba_status;
        const char *alibaba_body;
};

static struct server srv;

/* Per-connection upload buffer (MHD calls the handler once per body chunk). */
struct upload {
        char body[1024];
        size_t len;
};

static void copy_header(struct MHD_Connection *conn, const char *name, char *out, size_t out_size)
{
        const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);

        snprintf(out, out_size, "%s", v ? v : "");
}

static enum MHD_Result answer(struct MHD_Connection *conn, int status, const char *body)
{
        struct MHD_Response *rsp =
                MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result ret;

        MHD_add_response_header(rsp, "Content-Type", "application/json");
        ret = MHD_queue_response(conn, (unsigned)status, rsp);
        MHD_destroy_response(rsp);
        return ret;
}

/* One page of SRS's /api/v1/clients, built the way SRS 4+ (or 3) writes it. */
static char *srs_clients_page(int start, int count)
{
        json_t *root = json_pack("{s:i,s:s,s:[]}", "code", 0, "server", "vid-test", "clients");
        json_t *clients = json_object_get(root, "clients");
        char name[64], url[96], id[32];
        char *text;

        for (int i = start; i < start + count && i < srv.srs_total; i++) {
                bool is_target = i == srv.srs_publisher || i == srv.srs_publisher - 1;
                json_t *c;

                snprintf(name, sizeof(name), "%s", is_target ? srv.srs_stream : "other");
                if (!is_target)
                        snprintf(name, sizeof(name), "other%d", i);
                snprintf(url, sizeof(url), "/live/%s", name);
                snprintf(id, sizeof(id), "c%d", i);
                /* The entry before the publisher plays the same stream: it must not be kicked. */
                c = json_pack("{s:s,s:s,s:b,s:s}", "url", url, "stream", "vid-x", "publish",
                              i != srv.srs_publisher - 1 && (is_target || i % 2 == 0), "type",
                              i == srv.srs_publisher ? "fmle-publish" : "rtmp-play");
                json_object_set_new(c, "id", srv.srs_v3 ? json_integer(i) : json_string(id));
                if (!srv.srs_v3)
                        json_object_set_new(c, "name", json_string(name));
                json_array_append_new(clients, c);
        }
        text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return text;
}

static const char *arg_of(const struct seen *s, const char *name)
{
        for (int i = 0; i < s->arg_cnt; i++)
                if (strcmp(s->arg_names[i], name) == 0)
                        return s->arg_values[i];
        return NULL;
}

static enum MHD_Result route(struct MHD_Connection *conn, const struct seen *s)
{
        if (strcmp(s->method, "POST") == 0 && strcmp(s->path, "/dev/v1/kicking-rule") == 0)
                return answer(conn, srv.agora_status, srv.agora_body);
        if (strcmp(s->method, "GET") == 0 && strncmp(s->path, "/dev/v1/channel/user/", 21) == 0)
                return answer(conn, 200,
                              strstr(s->path, "_alive")
                                      ? "{\"success\":true,\"data\":{\"channel_exist\":true,"
                                        "\"mode\":2,\"broadcasters\":[2206],\"audience\":[],"
                                        "\"audience_total\":0}}"
                                      : "{\"success\":true,\"data\":{\"channel_exist\":false}}");
        if (strcmp(s->method, "GET") == 0 && arg_of(s, "Action") &&
            strcmp(arg_of(s, "Action"), "DescribeLiveStreamsOnlineList") == 0)
                return answer(conn, 200,
                              strstr(arg_of(s, "StreamName"), "_alive")
                                      ? "{\"OnlineInfo\":{\"LiveStreamOnlineInfo\":[{"
                                        "\"StreamName\":\"x_alive\"}]},\"TotalNum\":1,"
                                        "\"RequestId\":\"r\"}"
                                      : "{\"OnlineInfo\":{\"LiveStreamOnlineInfo\":[]},"
                                        "\"TotalNum\":0,\"RequestId\":\"r\"}");
        if (strcmp(s->method, "GET") == 0 && arg_of(s, "Action"))
                return answer(conn, srv.alibaba_status, srv.alibaba_body);
        /* A stream whose name says "_alive" is live; any other is not. */
        if (strcmp(s->method, "POST") == 0 && strcmp(s->action, "DescribeLiveStreamState") == 0)
                return answer(conn, 200,
                              strstr(s->body, "_alive")
                                      ? "{\"Response\":{\"StreamState\":\"active\",\"RequestId\":\"r\"}}"
                                      : "{\"Response\":{\"StreamState\":\"inactive\",\"RequestId\":\"r\"}}");
        if (strcmp(s->method, "POST") == 0) {
                if (srv.delay_ms)
                        support_sleep_ms(srv.delay_ms);
                return answer(conn, srv.tencent_status, srv.tencent_body);
        }
        if (strcmp(s->method, "GET") == 0 && strcmp(s->path, "/api/v1/clients") == 0) {
                const char *count =
                        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "count");
                char *page = srs_clients_page(atoi(s->start), count ? atoi(count) : 10);
                enum MHD_Result ret = answer(conn, 200, page);

                free(page);
                return ret;
        }
        if (strcmp(s->method, "DELETE") == 0)
                return answer(conn, srv.delete_status, srv.delete_body);
        return answer(conn, 404, "{\"code\":404}");
}

static enum MHD_Result keep_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
        struct seen *s = cls;

        (void)kind;
        if (s->arg_cnt < ARGS_MAX) {
                snprintf(s->arg_names[s->arg_cnt], sizeof(s->arg_names[0]), "%s", key);
                snprintf(s->arg_values[s->arg_cnt], sizeof(s->arg_values[0]), "%s",
                         value ? value : "");
                s->arg_cnt++;
        }
        return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls)
{
        struct upload *up = *con_cls;
        struct seen s;
        const char *start;

        (void)cls;
        (void)version;
        if (!up) {
                *con_cls = calloc(1, sizeof(struct upload));
                return *con_cls ? MHD_YES : MHD_NO;
        }
        if (*data_size) {
                size_t n = *data_size < sizeof(up->body) - 1 - up->len
                                   ? *data_size
                                   : sizeof(up->body) - 1 - up->len;

                memcpy(up->body + up->len, data, n);
                up->len += n;
                *data_size = 0;
                return MHD_YES;
        }
        memset(&s, 0, sizeof(s));
        snprintf(s.method, sizeof(s.method), "%s", method);
        snprintf(s.path, sizeof(s.path), "%s", url);
        start = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "start");
        snprintf(s.start, sizeof(s.start), "%s", start ? start : "");
        copy_header(conn, "Authorization", s.authorization, sizeof(s.authorization));
        copy_header(conn, "Host", s.host, sizeof(s.host));
        copy_header(conn, "Content-Type", s.content_type, sizeof(s.content_type));
        copy_header(conn, "X-TC-Action", s.action, sizeof(s.action));
        copy_header(conn, "X-TC-Version", s.version, sizeof(s.version));
        copy_header(conn, "X-TC-Timestamp", s.timestamp, sizeof(s.timestamp));
        copy_header(conn, "X-TC-Region", s.region, sizeof(s.region));
        memcpy(s.body, up->body, up->len + 1);
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, keep_arg, &s);
        pthread_mutex_lock(&srv.lock);
        if (srv.seen_cnt < MAX_REQUESTS)
                srv.seen[srv.seen_cnt++] = s;
        pthread_mutex_unlock(&srv.lock);
        return route(conn, &s);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
        (void)cls;
        (void)conn;
        (void)code;
        free(*con_cls);
        *con_cls = NULL;
}

static void server_start(void)
{
        const union MHD_DaemonInfo *info;

        pthread_mutex_init(&srv.lock, NULL);
        srv.tencent_status = 200;
        srv.tencent_body = "{\"Response\":{\"RequestId\":\"req-1\"}}";
        srv.srs_publisher = -1;
        srv.delete_status = 200;
        srv.delete_body = "{\"code\":0}";
        srv.agora_status = 200;
        srv.agora_body = "{\"status\":\"success\",\"id\":1953}";
        srv.alibaba_status = 200;
        srv.alibaba_body = "{\"RequestId\":\"16BFE188-B193-4C3C-ADC5-79A7E31486EA\"}";
        srv.daemon = MHD_start_daemon(
                MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                on_request, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
        cr_assert(srv.daemon, "cannot start the test HTTP server");
        info = MHD_get_daemon_info(srv.daemon, MHD_DAEMON_INFO_BIND_PORT);
        srv.port = info->port;
}

static void server_stop(void)
{
        if (srv.daemon)
                MHD_stop_daemon(srv.daemon);
        memset(&srv, 0, sizeof(srv));
}

static int seen_count(void)
{
        int n;

        pthread_mutex_lock(&srv.lock);
        n = srv.seen_cnt;
        pthread_mutex_unlock(&srv.lock);
        return n;
}

/* A snapshot of request i (the server thread may still be appending others). */
static struct seen seen_at(int i)
{
        struct seen s;

        pthread_mutex_lock(&srv.lock);
        s = srv.seen[i];
        pthread_mutex_unlock(&srv.lock);
        return s;
}

/* Settings as a consumer loads them, the vendor keys pointing at the local server. */
static void load_settings(struct settings *s, bool tencent, bool srs)
{
        char err[256], url[64];

        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9", 1);
        setenv("LIVEFLOW_MYSQL_URL", "mysql://u:p@127.0.0.1:9/db", 1);
        setenv("LIVEFLOW_REDIS_URL", "redis://127.0.0.1:9/0", 1);
        setenv("LIVEFLOW_VENDOR_API_TIMEOUT_MS", "1500", 0);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
        if (tencent) {
                setenv("LIVEFLOW_TENCENT_API_ENDPOINT", url, 1);
                setenv("LIVEFLOW_TENCENT_SECRET_ID", SECRET_ID, 1);
                setenv("LIVEFLOW_TENCENT_SECRET_KEY", SECRET_KEY, 1);
                setenv("LIVEFLOW_TENCENT_PUSH_DOMAIN", "push.example.com", 1);
                setenv("LIVEFLOW_TENCENT_REGION", "ap-guangzhou", 1);
        }
        if (srs)
                setenv("LIVEFLOW_SRS_API_ENDPOINT", url, 1);
        cr_assert_eq(settings_load(s, SETTINGS_CONSUMER, err, sizeof(err)), 0, "%s", err);
}

/* Settings with the Agora and/or Alibaba API keys pointing at the local server. */
static void load_cloud_settings(struct settings *s, bool agora, bool alibaba)
{
        char url[64];

        snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
        if (agora) {
                setenv("LIVEFLOW_AGORA_API_ENDPOINT", url, 1);
                setenv("LIVEFLOW_AGORA_CUSTOMER_ID", AGORA_ID, 1);
                setenv("LIVEFLOW_AGORA_CUSTOMER_SECRET", AGORA_SECRET, 1);
                setenv("LIVEFLOW_AGORA_APP_ID", "4855xxxxxxxxxxxxxxxxxxxxxxxxeae2", 1);
        }
        if (alibaba) {
                setenv("LIVEFLOW_ALIBABA_API_ENDPOINT", url, 1);
                setenv("LIVEFLOW_ALIBABA_ACCESS_KEY_ID", ALI_KEY_ID, 1);
                setenv("LIVEFLOW_ALIBABA_ACCESS_KEY_SECRET", ALI_SECRET, 1);
                setenv("LIVEFLOW_ALIBABA_PUSH_DOMAIN", "push.example.com", 1);
        }
        load_settings(s, false, false);
}

static enum vendor_drop drop(const struct settings *s, const char *vendor, const char *stream_id,
                             char *err, size_t err_size)
{
        char e[256];
        struct vendor_api *va = vendor_api_new(s, e, sizeof(e));
        enum vendor_drop r;

        cr_assert(va, "%s", e);
        r = vendor_api_drop_stream(va, vendor, stream_id, "trace-test", err, err_size);
        vendor_api_destroy(va);
        return r;
}

/*
 * The Authorization a Tencent server expects, computed here step by step from Tencent's
 * description (canonical request, string to sign, derived keys) with the shared OpenSSL
 * wrappers, independently of the code under test.
 */
static void expected_authorization(const struct seen *s, char *out, size_t out_size)
{
        char body_hash[65], canonical[1024], canonical_hash[65], to_sign[512], date[16], first[128];
        unsigned char k_date[32], k_service[32], k_signing[32], sig[32];
        time_t ts = (time_t)atoll(s->timestamp);
        struct tm tm;
        char hex[65];

        gmtime_r(&ts, &tm);
        strftime(date, sizeof(date), "%Y-%m-%d", &tm);
        crypto_sha256_hex(s->body, strlen(s->body), body_hash);
        snprintf(canonical, sizeof(canonical),
                 "POST\n/\n\ncontent-type:%s\nhost:%s\n\ncontent-type;host\n%s", s->content_type,
                 s->host, body_hash);
        crypto_sha256_hex(canonical, strlen(canonical), canonical_hash);
        snprintf(to_sign, sizeof(to_sign), "TC3-HMAC-SHA256\n%s\n%s/live/tc3_request\n%s",
                 s->timestamp, date, canonical_hash);
        snprintf(first, sizeof(first), "TC3%s", SECRET_KEY);
        {
                const void *p1[] = {date}, *p2[] = {"live"}, *p3[] = {"tc3_request"},
                           *p4[] = {to_sign};
                const size_t l1[] = {strlen(date)}, l2[] = {4}, l3[] = {11},
                             l4[] = {strlen(to_sign)};

                cr_assert(crypto_hmac_sha256(first, strlen(first), p1, l1, 1, k_date) == 0);
                cr_assert(crypto_hmac_sha256(k_date, 32, p2, l2, 1, k_service) == 0);
                cr_assert(crypto_hmac_sha256(k_service, 32, p3, l3, 1, k_signing) == 0);
                cr_assert(crypto_hmac_sha256(k_signing, 32, p4, l4, 1, sig) == 0);
        }
        for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", sig[i]);
        snprintf(
                out, out_size,
                "TC3-HMAC-SHA256 Credential=%s/%s/live/tc3_request, SignedHeaders=content-type;host, "
                "Signature=%s",
                SECRET_ID, date, hex);
}

TestSuite(vendor_api, .init = server_start, .fini = server_stop, .timeout = 60);

/*
 * Tencent's own worked example of TC3-HMAC-SHA256 ("Signature v3", API 3.0 documentation,
 * e.g. tencentcloud.com/document/api/267/37447): CVM DescribeInstances at 1551113065 with the
 * example SecretId/SecretKey, whose documented signature is 72e494ea…5168. Its payload holds
 * the six characters \u672a\u547d\u540d literally, as the example's curl line sends them.
 */
Test(vendor_api, tc3_signature_matches_tencents_documented_example)
{
        static const char payload[] =
                "{\"Limit\": 1, \"Filters\": [{\"Values\": [\"\\u672a\\u547d\\u540d\"], \"Name\": \"instance-name\"}]}";
        struct tc3_request rq = {
                .secret_id = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
                .secret_key = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
                .service = "cvm",
                .host = "cvm.tencentcloudapi.com",
                .content_type = "application/json; charset=utf-8",
                .payload = payload,
                .payload_len = sizeof(payload) - 1,
                .timestamp = 1551113065,
        };
        char auth[512];

        cr_assert_eq(vendor_api_tc3_authorization(&rq, auth, sizeof(auth)), 0);
        /* 1551113065 is 2019-02-26 00:44 in UTC+8: the scope must carry the UTC date. */
        cr_assert_str_eq(
                auth,
                "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, "
                "SignedHeaders=content-type;host, "
                "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168");
        cr_assert_eq(vendor_api_tc3_authorization(&rq, auth, 40), -1,
                     "a short buffer must fail, not truncate");
}

Test(vendor_api, tencent_drop_is_a_signed_droplivestream_call)
{
        struct settings s;
        char err[256], want[512];
        struct seen got;
        json_t *body;
        long long now = (long long)time(NULL);

        load_settings(&s, true, false);
        cr_assert_eq(drop(&s, "tencent", "room_42", err, sizeof(err)), VENDOR_DROP_DONE, "%s", err);
        cr_assert_eq(seen_count(), 1);
        got = seen_at(0);
        cr_assert_str_eq(got.method, "POST");
        cr_assert_str_eq(got.path, "/");
        cr_assert_str_eq(got.action, "DropLiveStream");
        cr_assert_str_eq(got.version, "2018-08-01");
        cr_assert_str_eq(got.region, "ap-guangzhou");
        cr_assert_str_eq(got.content_type, "application/json; charset=utf-8");
        cr_assert(llabs(atoll(got.timestamp) - now) <= 5, "X-TC-Timestamp %s is not now",
                  got.timestamp);
        body = json_loads(got.body, 0, NULL);
        cr_assert(body, "body is not JSON: %s", got.body);
        cr_assert_str_eq(json_string_value(json_object_get(body, "StreamName")), "room_42");
        cr_assert_str_eq(json_string_value(json_object_get(body, "DomainName")),
                         "push.example.com");
        cr_assert_str_eq(json_string_value(json_object_get(body, "AppName")), "live");
        json_decref(body);
        expected_authorization(&got, want, sizeof(want));
        cr_assert_str_eq(got.authorization, want);
        settings_fini(&s);
}

Test(vendor_api, tencent_stream_not_alive_counts_as_done)
{
        struct settings s;
        char err[256];

        srv.tencent_body = "{\"Response\":{\"Error\":{\"Code\":\"ResourceNotFound.StreamNotAlive\","
                           "\"Message\":\"stream not alive\"},\"RequestId\":\"req-2\"}}";
        load_settings(&s, true, false);
        cr_assert_eq(drop(&s, "tencent", "room_gone", err, sizeof(err)), VENDOR_DROP_NOT_LIVE, "%s",
                     err);
        settings_fini(&s);
}

Test(vendor_api, tencent_transient_errors_are_retried_and_refusals_fail)
{
        struct settings s;
        char err[256];

        load_settings(&s, true, false);
        srv.tencent_body =
                "{\"Response\":{\"Error\":{\"Code\":\"InternalError.SystemError\",\"Message\":\"x\"},"
                "\"RequestId\":\"req-3\"}}";
        cr_assert_eq(drop(&s, "tencent", "room_1", err, sizeof(err)), VENDOR_DROP_RETRY);
        cr_assert(strstr(err, "InternalError.SystemError") && strstr(err, "req-3"), "%s", err);
        srv.tencent_body =
                "{\"Response\":{\"Error\":{\"Code\":\"RequestLimitExceeded\",\"Message\":\"x\"}}}";
        cr_assert_eq(drop(&s, "tencent", "room_1", err, sizeof(err)), VENDOR_DROP_RETRY);
        srv.tencent_status = 502;
        srv.tencent_body = "<html>bad gateway</html>";
        cr_assert_eq(drop(&s, "tencent", "room_1", err, sizeof(err)), VENDOR_DROP_RETRY);
        srv.tencent_status = 200;
        srv.tencent_body = "{\"Resp";
        cr_assert_eq(drop(&s, "tencent", "room_1", err, sizeof(err)), VENDOR_DROP_RETRY,
                     "a garbled reply");
        srv.tencent_body =
                "{\"Response\":{\"Error\":{\"Code\":\"AuthFailure.SignatureFailure\",\"Message\":\"x\"}}}";
        cr_assert_eq(drop(&s, "tencent", "room_1", err, sizeof(err)), VENDOR_DROP_FAILED);
        cr_assert(strstr(err, "AuthFailure.SignatureFailure"), "%s", err);
        settings_fini(&s);
}

Test(vendor_api, a_slow_or_absent_vendor_is_retried_within_the_timeout)
{
        struct settings s;
        char err[256], url[64];
        long long t0;
        int port = support_free_port();

        setenv("LIVEFLOW_VENDOR_API_TIMEOUT_MS", "300", 1);
        load_settings(&s, true, false);
        srv.delay_ms = 2000;
        t0 = support_now_ms();
        cr_assert_eq(drop(&s, "tencent", "room_slow", err, sizeof(err)), VENDOR_DROP_RETRY);
        cr_assert(support_now_ms() - t0 < 1500, "the call took %lld ms", support_now_ms() - t0);
        settings_fini(&s);

        snprintf(url, sizeof(url), "http://127.0.0.1:%d", port); /* nobody listens there */
        setenv("LIVEFLOW_TENCENT_API_ENDPOINT", url, 1);
        cr_assert_eq(settings_load(&s, SETTINGS_CONSUMER, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(drop(&s, "tencent", "room_slow", err, sizeof(err)), VENDOR_DROP_RETRY);
        settings_fini(&s);
}

Test(vendor_api, an_unconfigured_or_unknown_vendor_is_skipped_without_a_request)
{
        struct settings s;
        char err[256];

        unsetenv("LIVEFLOW_TENCENT_SECRET_ID");
        unsetenv("LIVEFLOW_SRS_API_ENDPOINT");
        load_settings(&s, false, false);
        cr_assert_eq(drop(&s, "tencent", "room_1", err, sizeof(err)), VENDOR_DROP_SKIPPED);
        cr_assert_eq(drop(&s, "srs", "room_1", err, sizeof(err)), VENDOR_DROP_SKIPPED);
        cr_assert_eq(drop(&s, "agora", "room_1", err, sizeof(err)), VENDOR_DROP_SKIPPED);
        cr_assert_eq(seen_count(), 0);
        settings_fini(&s);
}

Test(vendor_api, srs_kicks_the_publisher_found_on_a_later_page)
{
        struct settings s;
        char err[256];

        srv.srs_total = 150;
        srv.srs_publisher = 130;
        srv.srs_stream = "room_srs";
        load_settings(&s, false, true);
        cr_assert_eq(drop(&s, "srs", "room_srs", err, sizeof(err)), VENDOR_DROP_DONE, "%s", err);
        cr_assert_eq(seen_count(), 3);
        cr_assert_str_eq(seen_at(0).start, "0");
        cr_assert_str_eq(seen_at(1).start, "100");
        cr_assert_str_eq(seen_at(2).method, "DELETE");
        cr_assert_str_eq(seen_at(2).path, "/api/v1/clients/c130",
                         "the player c129 must not be kicked");
        settings_fini(&s);
}

Test(vendor_api, srs_3_integer_ids_are_matched_by_url)
{
        struct settings s;
        char err[256];

        srv.srs_total = 5;
        srv.srs_publisher = 3;
        srv.srs_stream = "room_v3";
        srv.srs_v3 = true;
        load_settings(&s, false, true);
        cr_assert_eq(drop(&s, "srs", "room_v3", err, sizeof(err)), VENDOR_DROP_DONE, "%s", err);
        cr_assert_str_eq(seen_at(seen_count() - 1).path, "/api/v1/clients/3");
        settings_fini(&s);
}

Test(vendor_api, srs_without_a_publisher_or_with_one_gone_is_not_live)
{
        struct settings s;
        char err[256];

        srv.srs_total = 4;
        srv.srs_stream = "room_none";
        load_settings(&s, false, true);
        cr_assert_eq(drop(&s, "srs", "room_none", err, sizeof(err)), VENDOR_DROP_NOT_LIVE, "%s",
                     err);
        cr_assert_eq(seen_count(), 1, "nothing to kick");

        srv.srs_publisher = 2;
        srv.delete_status = 404;
        srv.delete_body = "{\"code\":2049}";
        cr_assert_eq(drop(&s, "srs", "room_none", err, sizeof(err)), VENDOR_DROP_NOT_LIVE, "%s",
                     err);
        srv.delete_status = 500;
        srv.delete_body = "{\"code\":1}";
        cr_assert_eq(drop(&s, "srs", "room_none", err, sizeof(err)), VENDOR_DROP_RETRY);
        settings_fini(&s);
}

/* ------------------------------------------------------------------ the stream role calls it */

struct role_fixture {
        char mysql_url[512], log_path[256], prefix[48];
        pid_t pid;
        rd_kafka_t *producer;
        struct codec *codec;
        MYSQL *mysql;
};

static struct role_fixture rf;

static void start_stream_role_with(const char *const *extra);

static const char *const stream_topics[] = {"live.stream", NULL};

static void start_stream_role(void)
{
        start_stream_role_with(NULL);
}

static void start_stream_role_with(const char *const *extra)
{
        char bin[512], e_boot[512], e_mysql[600], e_redis[300], e_admin[64], e_group[96], e_ep[96];
        char *argv[] = {bin, (char *)"stream", NULL};
        char *env[20] = {e_boot,
                         e_mysql,
                         e_redis,
                         e_admin,
                         e_group,
                         e_ep,
                         (char *)"LIVEFLOW_TENCENT_SECRET_ID=" SECRET_ID,
                         (char *)"LIVEFLOW_TENCENT_SECRET_KEY=" SECRET_KEY,
                         (char *)"LIVEFLOW_TENCENT_PUSH_DOMAIN=push.example.com",
                         (char *)"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000",
                         (char *)"LIVEFLOW_RETRY_BACKOFF_MS=50",
                         (char *)"LIVEFLOW_LOG_LEVEL=debug",
                         NULL};
        size_t n = 12;
        int admin_port = support_free_port();
        rd_kafka_conf_t *conf;
        struct mysql_url u;
        char err[256];

        support_unique_name("va", rf.prefix, sizeof(rf.prefix));
        support_create_database(rf.mysql_url, sizeof(rf.mysql_url));
        cr_assert(url_parse_mysql(rf.mysql_url, &u, err, sizeof(err)) == 0, "%s", err);
        rf.mysql = mysql_init(NULL);
        cr_assert(mysql_real_connect(rf.mysql, u.host, u.user, u.password, u.database, u.port, NULL,
                                     0),
                  "%s", mysql_error(rf.mysql));
        support_bin_path("liveflow-consumer", bin, sizeof(bin));
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", rf.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", admin_port);
        snprintf(e_group, sizeof(e_group), "LIVEFLOW_GROUP_ID=test.%s", rf.prefix);
        snprintf(e_ep, sizeof(e_ep), "LIVEFLOW_TENCENT_API_ENDPOINT=http://127.0.0.1:%d", srv.port);
        snprintf(rf.log_path, sizeof(rf.log_path), "/tmp/%s.consumer.log", rf.prefix);
        for (; extra && *extra && n < 19; extra++)
                env[n++] = (char *)*extra;
        env[n] = NULL;
        /* The group starts at live.stream's end: what earlier suites left there is never this
         * worker's backlog (it would hold the test's own records back past its waits). */
        support_group_at_end(e_group + strlen("LIVEFLOW_GROUP_ID="), stream_topics);
        rf.pid = support_spawn(argv, env, rf.log_path);
        cr_assert(support_wait_ready(admin_port, 20000) == 0, "consumer not ready; see %s",
                  rf.log_path);
        conf = rd_kafka_conf_new();
        cr_assert(rd_kafka_conf_set(conf, "bootstrap.servers",
                                    support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err,
                                    sizeof(err)) == RD_KAFKA_CONF_OK,
                  "%s", err);
        /* the records of one key share a partition with those liveflow's producers write */
        cr_assert(rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, sizeof(err)) ==
                  RD_KAFKA_CONF_OK);
        rf.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        cr_assert(rf.producer, "%s", err);
        cr_assert((rf.codec = codec_new(err, sizeof(err))) != NULL, "%s", err);
}

static void stop_stream_role(void)
{
        if (rf.pid > 0 && support_wait_exit(rf.pid, 0) == -1) {
                kill(rf.pid, SIGKILL);
                support_wait_exit(rf.pid, 5000);
        }
        if (rf.producer)
                rd_kafka_destroy(rf.producer);
        codec_destroy(rf.codec);
        if (rf.mysql)
                mysql_close(rf.mysql);
        memset(&rf, 0, sizeof(rf));
}

/* A stream event on live.stream; an end carries close_method (2 and 3 are forced closes). */
static void produce_stream_event(const char *stream_id, bool begin, long long time_s,
                                 int close_method)
{
        char key[256], event_id[65], err[256];
        json_t *payload = begin ? json_pack("{s:s}", "sequence", "1")
                                : json_pack("{s:i}", "close_method", close_method);
        struct envelope env = {
                .event_id = event_id,
                .vendor = begin ? "tencent" : "internal",
                .event_type = begin               ? "stream.begin"
                              : close_method == 1 ? "stream.end"
                                                  : "stream.close",
                .stream_id = stream_id,
                .anchor_id = "anchor_va",
                .room_id = "anchor_va",
                .event_time_ms = time_s * 1000,
                .receive_time_ms = time_s * 1000,
                .trace_id = "0123456789abcdef0123456789abcdef",
                .raw = "{}",
                .raw_len = 2,
        };
        void *buf;
        size_t len;

        snprintf(key, sizeof(key), "%s|%d|%d", stream_id, begin, close_method);
        crypto_sha256_hex(key, strlen(key), event_id);
        cr_assert(codec_encode(rf.codec, &env, begin ? "StreamBegin" : "StreamEnd", payload, &buf,
                               &len, err, sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        cr_assert(rd_kafka_producev(
                          rf.producer, RD_KAFKA_V_TOPIC("live.stream"),
                          RD_KAFKA_V_KEY(stream_id, strlen(stream_id)), RD_KAFKA_V_VALUE(buf, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                          RD_KAFKA_V_HEADER("trace_id", "0123456789abcdef0123456789abcdef", -1),
                          RD_KAFKA_V_HEADER("event_type", env.event_type, -1),
                          RD_KAFKA_V_END) == 0);
        cr_assert(rd_kafka_flush(rf.producer, 10000) == 0);
}

static long long count_rows(const char *fmt, ...)
{
        char sql[512];
        va_list ap;
        MYSQL_RES *res;
        MYSQL_ROW row;
        long long n = 0;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        cr_assert(mysql_query(rf.mysql, sql) == 0, "%s: %s", sql, mysql_error(rf.mysql));
        res = mysql_store_result(rf.mysql);
        if (res && (row = mysql_fetch_row(res)) && row[0])
                n = atoll(row[0]);
        if (res)
                mysql_free_result(res);
        return n;
}

/* How many DropLiveStream calls named stream_id. */
static int drops_of(const char *stream_id)
{
        char want[128];
        int n = 0;

        snprintf(want, sizeof(want), "\"StreamName\":\"%s\"", stream_id);
        for (int i = 0; i < seen_count(); i++) {
                struct seen s = seen_at(i);

                n += strcmp(s.action, "DropLiveStream") == 0 && strstr(s.body, want) != NULL;
        }
        return n;
}

static void wait_for(bool (*cond)(const char *), const char *arg, const char *what)
{
        long long deadline = support_now_ms() + 20000;

        while (!cond(arg) && support_now_ms() < deadline)
                support_sleep_ms(50);
        cr_assert(cond(arg), "%s %s (consumer log: %s)", what, arg, rf.log_path);
}

static bool has_drop(const char *stream_id)
{
        return drops_of(stream_id) > 0;
}

static bool has_two_events(const char *stream_id)
{
        return count_rows("SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", stream_id) >=
               2;
}

Test(vendor_api, stream_role_drops_a_forced_close_of_a_live_stream_only, .fini = stop_stream_role)
{
        char forced[64], ended[64], never[64];

        start_stream_role();
        snprintf(forced, sizeof(forced), "%s_forced", rf.prefix);
        snprintf(ended, sizeof(ended), "%s_ended", rf.prefix);
        snprintf(never, sizeof(never), "%s_never", rf.prefix);
        /* An anchor ending their own stream, and a close of a stream that already ended. */
        produce_stream_event(ended, true, 1000, 0);
        produce_stream_event(ended, false, 1060, 1);
        produce_stream_event(never, true, 1000, 0);
        produce_stream_event(never, false, 1060, 1);
        produce_stream_event(never, false, 1070, 3);
        /* An operator closing a live stream. */
        produce_stream_event(forced, true, 1000, 0);
        produce_stream_event(forced, false, 1090, 2);
        wait_for(has_drop, forced, "no DropLiveStream for");
        wait_for(has_two_events, ended, "events not recorded for");
        wait_for(has_two_events, never, "events not recorded for");
        support_sleep_ms(500);
        cr_assert_eq(drops_of(ended), 0, "a stream the anchor ended must not be dropped");
        cr_assert_eq(drops_of(never), 0, "a stream that was no longer live must not be dropped");
        cr_assert_eq(
                count_rows("SELECT close_method FROM live_streams WHERE stream_id = '%s'", forced),
                2);

        /* A replay of the close (redelivery after a crash) repeats the drop: the vendor is
         * idempotent. */
        produce_stream_event(forced, false, 1090, 2);
        {
                long long deadline = support_now_ms() + 20000;

                while (drops_of(forced) < 2 && support_now_ms() < deadline)
                        support_sleep_ms(50);
        }
        cr_assert_eq(drops_of(forced), 2, "the replayed close was not dropped again (log %s)",
                     rf.log_path);
        cr_assert_eq(count_rows("SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", forced),
                     2);
        cr_assert(kill(rf.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(rf.pid, 20000), 0, "consumer did not drain cleanly; see %s",
                     rf.log_path);
        rf.pid = 0;
}

/* How many DescribeLiveStreamState calls named stream_id. */
static int state_asks_of(const char *stream_id)
{
        char want[128];
        int n = 0;

        snprintf(want, sizeof(want), "\"StreamName\":\"%s\"", stream_id);
        for (int i = 0; i < seen_count(); i++) {
                struct seen s = seen_at(i);

                n += strcmp(s.action, "DescribeLiveStreamState") == 0 &&
                     strstr(s.body, want) != NULL;
        }
        return n;
}

static bool has_state_ask(const char *stream_id)
{
        return state_asks_of(stream_id) > 0;
}

static bool is_ended(const char *stream_id)
{
        return count_rows("SELECT COUNT(*) FROM live_streams WHERE stream_id = '%s' AND status = "
                          "'ended'",
                          stream_id) == 1;
}

Test(vendor_api, the_ghost_sweep_closes_only_what_the_vendor_says_is_not_live,
     .fini = stop_stream_role)
{
        static const char *const ghost_env[] = {"LIVEFLOW_STREAM_GHOST_SILENCE_S=2",
                                                "LIVEFLOW_STREAM_SWEEP_INTERVAL_S=1",
                                                "LIVEFLOW_STREAM_GHOST_UNVERIFIED_SILENCE_S=3600",
                                                NULL};
        char alive[64], dead[64];

        start_stream_role_with(ghost_env);
        snprintf(alive, sizeof(alive), "%s_alive", rf.prefix);
        snprintf(dead, sizeof(dead), "%s_dead", rf.prefix);
        produce_stream_event(alive, true, 1000, 0);
        produce_stream_event(dead, true, 1000, 0);
        /* Silent for the sweep; the vendor is asked about each. */
        wait_for(is_ended, dead, "the stream the vendor calls inactive was not closed:");
        wait_for(has_drop, dead, "the ghost close was not dropped at the vendor:");
        wait_for(has_state_ask, alive, "the vendor was not asked about");
        cr_assert_eq(count_rows("SELECT COUNT(*) FROM live_streams WHERE stream_id = '%s' AND "
                                "close_reason LIKE 'ghost: tencent says not live after %%'",
                                dead),
                     1);
        /* The live one stays live however many sweeps run; the dead one is closed once. */
        {
                long long deadline = support_now_ms() + 20000;

                while (state_asks_of(alive) < 2 && support_now_ms() < deadline)
                        support_sleep_ms(50);
        }
        cr_assert(state_asks_of(alive) >= 2, "the live stream was asked about once only");
        cr_assert_eq(count_rows("SELECT COUNT(*) FROM live_streams WHERE stream_id = '%s' AND "
                                "status = 'live'",
                                alive),
                     1, "the stream the vendor calls active was closed (log %s)", rf.log_path);
        cr_assert_eq(drops_of(alive), 0, "the live stream was dropped");
        cr_assert_eq(count_rows("SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", dead),
                     2, "a begin and one ghost close");
        cr_assert(kill(rf.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(rf.pid, 20000), 0, "consumer did not drain cleanly; see %s",
                     rf.log_path);
        rf.pid = 0;
}

/* ------------------------------------------------------------------ Agora and Alibaba */

/*
 * Alibaba's worked example of an RPC signature (signature version 1.0, HMAC-SHA1): ECS
 * DescribeRegions with AccessKeyId testid and secret testsecret, whose documented signature is
 * OLeaidS1JvxuMvnyHOwuJ+uX5qY=.
 */
Test(vendor_api, alibaba_signature_matches_alibabas_documented_example)
{
        const struct alibaba_param params[] = {
                {"Timestamp", "2016-02-23T12:46:24Z"},
                {"Format", "XML"},
                {"AccessKeyId", "testid"},
                {"Action", "DescribeRegions"},
                {"SignatureMethod", "HMAC-SHA1"},
                {"SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"},
                {"Version", "2014-05-26"},
                {"SignatureVersion", "1.0"},
        };
        char query[1024];

        cr_assert_eq(alibaba_api_signed_query("GET", params, 8, "testsecret", query, sizeof(query)),
                     0);
        cr_assert_str_eq(query,
                         "AccessKeyId=testid&Action=DescribeRegions&Format=XML&"
                         "SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-"
                         "4e0ad82fd6cf&SignatureVersion=1.0&Timestamp=2016-02-23T12%3A46%3A24Z&"
                         "Version=2014-05-26&Signature=OLeaidS1JvxuMvnyHOwuJ%2BuX5qY%3D");
        cr_assert_eq(alibaba_api_signed_query("GET", params, 8, "testsecret", query, 100), -1,
                     "a short buffer must fail, not truncate");
}

Test(vendor_api, agora_drop_is_a_kicking_rule_with_basic_auth)
{
        struct settings s;
        char err[256], b64[128], want[160];
        struct seen got;
        json_t *body, *privileges;

        load_cloud_settings(&s, true, false);
        cr_assert_eq(drop(&s, "agora", "room_7", err, sizeof(err)), VENDOR_DROP_DONE, "%s", err);
        cr_assert_eq(seen_count(), 1);
        got = seen_at(0);
        cr_assert_str_eq(got.method, "POST");
        cr_assert_str_eq(got.path, "/dev/v1/kicking-rule");
        cr_assert_str_eq(got.content_type, "application/json");
        crypto_base64_encode(AGORA_ID ":" AGORA_SECRET, strlen(AGORA_ID ":" AGORA_SECRET), b64,
                             sizeof(b64));
        snprintf(want, sizeof(want), "Basic %s", b64);
        cr_assert_str_eq(got.authorization, want);
        body = json_loads(got.body, 0, NULL);
        cr_assert(body, "body is not JSON: %s", got.body);
        cr_assert_str_eq(json_string_value(json_object_get(body, "appid")),
                         "4855xxxxxxxxxxxxxxxxxxxxxxxxeae2");
        cr_assert_str_eq(json_string_value(json_object_get(body, "cname")), "room_7");
        cr_assert_eq(json_integer_value(json_object_get(body, "time_in_seconds")), 0);
        privileges = json_object_get(body, "privileges");
        cr_assert_eq(json_array_size(privileges), 1);
        cr_assert_str_eq(json_string_value(json_array_get(privileges, 0)), "join_channel");
        json_decref(body);
        settings_fini(&s);
}

Test(vendor_api, agora_refusals_fail_and_trouble_is_retried)
{
        struct settings s;
        char err[256];

        load_cloud_settings(&s, true, false);
        srv.agora_status = 401;
        srv.agora_body = "{\"message\":\"Invalid authentication credentials\"}";
        cr_assert_eq(drop(&s, "agora", "room_7", err, sizeof(err)), VENDOR_DROP_FAILED);
        cr_assert(strstr(err, "401") != NULL, "%s", err);
        srv.agora_status = 503;
        srv.agora_body = "{}";
        cr_assert_eq(drop(&s, "agora", "room_7", err, sizeof(err)), VENDOR_DROP_RETRY);
        srv.agora_status = 200;
        srv.agora_body = "not json";
        cr_assert_eq(drop(&s, "agora", "room_7", err, sizeof(err)), VENDOR_DROP_RETRY);
        settings_fini(&s);
}

/* Alibaba's signature of the request as the server received it, computed here independently. */
static void alibaba_expected_signature(const struct seen *s, char *out, size_t out_size)
{
        char names[ARGS_MAX][32], query[4096] = "", to_sign[8192], key[64];
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        int n = 0;

        for (int i = 0; i < s->arg_cnt; i++)
                if (strcmp(s->arg_names[i], "Signature") != 0)
                        snprintf(names[n++], sizeof(names[0]), "%s", s->arg_names[i]);
        qsort(names, (size_t)n, sizeof(names[0]), (int (*)(const void *, const void *))strcmp);
        for (int i = 0; i < n; i++) {
                char *k = curl_easy_escape(NULL, names[i], 0);
                char *v = curl_easy_escape(NULL, arg_of(s, names[i]), 0);

                snprintf(query + strlen(query), sizeof(query) - strlen(query), "%s%s=%s",
                         i ? "&" : "", k, v);
                curl_free(k);
                curl_free(v);
        }
        {
                char *q = curl_easy_escape(NULL, query, 0);

                snprintf(to_sign, sizeof(to_sign), "GET&%%2F&%s", q);
                curl_free(q);
        }
        snprintf(key, sizeof(key), "%s&", ALI_SECRET);
        HMAC(EVP_sha1(), key, (int)strlen(key), (const unsigned char *)to_sign, strlen(to_sign),
             mac, &mac_len);
        crypto_base64_encode(mac, mac_len, out, out_size);
}

Test(vendor_api, alibaba_drop_is_a_signed_forbidlivestream_call)
{
        struct settings s;
        char err[256], want[64];
        struct seen got;
        time_t now = time(NULL);
        struct tm tm;

        load_cloud_settings(&s, false, true);
        cr_assert_eq(drop(&s, "alibaba", "liveStream001", err, sizeof(err)), VENDOR_DROP_DONE, "%s",
                     err);
        cr_assert_eq(seen_count(), 1);
        got = seen_at(0);
        cr_assert_str_eq(got.method, "GET");
        cr_assert_str_eq(got.path, "/");
        cr_assert_str_eq(arg_of(&got, "Action"), "ForbidLiveStream");
        cr_assert_str_eq(arg_of(&got, "DomainName"), "push.example.com");
        cr_assert_str_eq(arg_of(&got, "AppName"), "live");
        cr_assert_str_eq(arg_of(&got, "StreamName"), "liveStream001");
        cr_assert_str_eq(arg_of(&got, "LiveStreamType"), "publisher");
        cr_assert_str_eq(arg_of(&got, "Oneshot"), "yes");
        cr_assert_str_eq(arg_of(&got, "Version"), "2016-11-01");
        cr_assert_str_eq(arg_of(&got, "AccessKeyId"), ALI_KEY_ID);
        cr_assert_str_eq(arg_of(&got, "SignatureMethod"), "HMAC-SHA1");
        cr_assert_str_eq(arg_of(&got, "SignatureVersion"), "1.0");
        cr_assert_eq(strlen(arg_of(&got, "SignatureNonce")), 32);
        memset(&tm, 0, sizeof(tm));
        cr_assert(strptime(arg_of(&got, "Timestamp"), "%Y-%m-%dT%H:%M:%SZ", &tm) != NULL,
                  "Timestamp %s is not yyyy-MM-ddTHH:mm:ssZ", arg_of(&got, "Timestamp"));
        cr_assert(labs((long)(timegm(&tm) - now)) <= 5, "Timestamp %s is not now (UTC)",
                  arg_of(&got, "Timestamp"));
        alibaba_expected_signature(&got, want, sizeof(want));
        cr_assert_str_eq(arg_of(&got, "Signature"), want);
        settings_fini(&s);
}

Test(vendor_api, alibaba_not_live_throttled_and_refused)
{
        struct settings s;
        char err[256];

        load_cloud_settings(&s, false, true);
        srv.alibaba_status = 404;
        srv.alibaba_body = "{\"Code\":\"InvalidStream.NotFound\",\"Message\":\"not found\"}";
        cr_assert_eq(drop(&s, "alibaba", "s1", err, sizeof(err)), VENDOR_DROP_NOT_LIVE, "%s", err);
        srv.alibaba_status = 400;
        srv.alibaba_body = "{\"Code\":\"Throttling.User\",\"Message\":\"slow down\"}";
        cr_assert_eq(drop(&s, "alibaba", "s1", err, sizeof(err)), VENDOR_DROP_RETRY, "%s", err);
        srv.alibaba_status = 403;
        srv.alibaba_body = "{\"Code\":\"Forbidden.RAM\",\"Message\":\"no permission\"}";
        cr_assert_eq(drop(&s, "alibaba", "s1", err, sizeof(err)), VENDOR_DROP_FAILED);
        cr_assert(strstr(err, "Forbidden.RAM") != NULL, "%s", err);
        settings_fini(&s);
}

Test(vendor_api, unconfigured_agora_and_alibaba_are_skipped_without_a_request)
{
        struct settings s;
        char err[256];

        load_settings(&s, false, false);
        cr_assert_eq(drop(&s, "agora", "room_7", err, sizeof(err)), VENDOR_DROP_SKIPPED);
        cr_assert_eq(drop(&s, "alibaba", "s1", err, sizeof(err)), VENDOR_DROP_SKIPPED);
        cr_assert_eq(seen_count(), 0);
        settings_fini(&s);
}

static enum vendor_state state(const struct settings *s, const char *vendor, const char *stream_id)
{
        char e[256], err[256];
        struct vendor_api *va = vendor_api_new(s, e, sizeof(e));
        enum vendor_state st;

        cr_assert(va, "%s", e);
        st = vendor_api_stream_state(va, vendor, stream_id, "trace-test", err, sizeof(err));
        vendor_api_destroy(va);
        return st;
}

Test(vendor_api, agora_and_alibaba_say_whether_a_stream_is_live)
{
        struct settings s;
        char want[64];
        struct seen got;

        load_cloud_settings(&s, true, true);
        cr_assert_eq(state(&s, "agora", "room_alive"), VENDOR_STATE_LIVE);
        cr_assert_eq(state(&s, "agora", "room_gone"), VENDOR_STATE_NOT_LIVE);
        got = seen_at(0);
        cr_assert_str_eq(got.path, "/dev/v1/channel/user/4855xxxxxxxxxxxxxxxxxxxxxxxxeae2/room_alive");
        cr_assert(strncmp(got.authorization, "Basic ", 6) == 0, "%s", got.authorization);
        cr_assert_eq(state(&s, "alibaba", "s_alive"), VENDOR_STATE_LIVE);
        cr_assert_eq(state(&s, "alibaba", "s_gone"), VENDOR_STATE_NOT_LIVE);
        got = seen_at(2);
        cr_assert_str_eq(arg_of(&got, "Action"), "DescribeLiveStreamsOnlineList");
        cr_assert_str_eq(arg_of(&got, "StreamName"), "s_alive");
        alibaba_expected_signature(&got, want, sizeof(want));
        cr_assert_str_eq(arg_of(&got, "Signature"), want);
        settings_fini(&s);
}
