/* test_vendor_api.c: vendor drops against a local HTTP server that records every request: the
 * server, Tencent and SRS here; vendor_api/stream_role.c: the stream role calls them;
 * vendor_api/cloud.c: Agora and Alibaba. */
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
#include "vendor_api/fixture.h"

struct server srv;

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

const char *arg_of(const struct seen *s, const char *name)
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
                return answer(
                        conn, 200,
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

int seen_count(void)
{
        int n;

        pthread_mutex_lock(&srv.lock);
        n = srv.seen_cnt;
        pthread_mutex_unlock(&srv.lock);
        return n;
}

/* A snapshot of request i (the server thread may still be appending others). */
struct seen seen_at(int i)
{
        struct seen s;

        pthread_mutex_lock(&srv.lock);
        s = srv.seen[i];
        pthread_mutex_unlock(&srv.lock);
        return s;
}

/* Settings as a consumer loads them, the vendor keys pointing at the local server. */
void load_settings(struct settings *s, bool tencent, bool srs)
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
void load_cloud_settings(struct settings *s, bool agora, bool alibaba)
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

enum vendor_drop drop(const struct settings *s, const char *vendor, const char *stream_id,
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
