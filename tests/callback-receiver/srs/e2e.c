/* e2e.c: test_srs's receiver binary against the fixture broker, Redis and MariaDB. */
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
#include "fixture.h"
#include "srs.h"
#include "support.h"
#include "url.h"

#define HOOK_TOKEN "srs-hook-token"
#define PARTITIONS 6 /* the fixture broker's topics */

static struct {
        struct support_receiver rcv;
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
        support_receiver_kill(&e2e.rcv); /* a failed test: do not leave the process behind */
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
        char redis_env[512], mysql_env[600];
        const char *const env[] = {redis_env,
                                   mysql_env,
                                   "LIVEFLOW_HTTP_ADDR=127.0.0.1",
                                   "LIVEFLOW_SRS_TOKEN=" HOOK_TOKEN,
                                   "LIVEFLOW_SRS_FAIL_OPEN=0",
                                   "LIVEFLOW_SRS_PUBLISH_UNSIGNED=1",
                                   "LIVEFLOW_DRAIN_TIMEOUT_MS=5000",
                                   NULL};

        snprintf(redis_env, sizeof(redis_env), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        snprintf(mysql_env, sizeof(mysql_env), "LIVEFLOW_MYSQL_URL=%s", e2e.mysql_url);
        support_receiver_start(&e2e.rcv, "srs", NULL, env);
}

/* POSTs body as SRS does (application/json) to path; trace_id goes in X-Request-Id. */
static struct reply post(const char *path, const char *body, const char *trace_id)
{
        char line[160];
        const char *headers[] = {line, NULL};
        struct reply r = {0};

        snprintf(line, sizeof(line), "X-Request-Id: %s", trace_id);
        r.status = support_request(&(struct support_request){.port = e2e.rcv.port,
                                                             .method = "POST",
                                                             .path = path,
                                                             .body = body,
                                                             .headers = headers,
                                                             .timeout_ms = 20000,
                                                             .log_path = e2e.rcv.log_path},
                                   SUPPORT_BODY(r.body));
        return r;
}

static struct reply get(const char *path)
{
        struct reply r = {0};

        /* The probes are on the admin port. */
        r.status = support_request(&(struct support_request){.port = strcmp(path, "/metrics") == 0
                                                                             ? e2e.rcv.admin_port
                                                                             : e2e.rcv.port,
                                                             .method = "GET",
                                                             .path = path,
                                                             .timeout_ms = 20000,
                                                             .log_path = e2e.rcv.log_path},
                                   SUPPORT_BODY(r.body));
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
        a = support_json_edit(publish_json, "stream", json_string(stream));
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
        support_receiver_stop(&e2e.rcv, false);
}

Test(srs_e2e, banned_anchor_in_redis_is_refused_and_never_published)
{
        struct support_reader *tr;
        char stream[64], banned[64], active[64], key[128], refused_trace[64], allowed_trace[64];
        char *refused_body, *allowed_body;
        struct event ev_read = {0};
        int saw_refused = 0;
        rd_kafka_message_t *rkm;
        struct reply r;
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
        cr_assert(eq(long, r.status, 403), "%s; log %s", r.body, e2e.rcv.log_path);
        cr_assert(strstr(r.body, "\"code\":403") != NULL, "SRS refuses any code but 0: %s", r.body);
        cr_assert(strstr(r.body, "banned") != NULL, "%s", r.body);

        /* Same stream, same partition: had the refused one been written, it would come first. */
        allowed_body = publish_of(stream, active);
        r = hook(allowed_body, allowed_trace);
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, e2e.rcv.log_path);
        cr_assert_str_eq(r.body, "{\"code\":0}");
        rkm = support_reader_until(tr, allowed_trace, "trace_id", refused_trace, &saw_refused,
                                   20000);
        cr_assert(rkm != NULL, "the allowed publish never reached live.stream");
        cr_assert(eq(int, saw_refused, 0), "the refused publish reached Kafka");
        support_decode(rkm, &ev_read);
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
        rd_kafka_message_destroy(rkm);
        support_reader_close(tr);
        free(refused_body);
        free(allowed_body);
        support_receiver_stop(&e2e.rcv, false);
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
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, e2e.rcv.log_path);
        cr_assert_str_eq(r.body, "{\"code\":0}");

        /* The same anchor suspended for another minute is refused. */
        snprintf(until, sizeof(until), "%lld", (long long)time(NULL) * 1000 + 60000);
        redis_ok("HSET %s anchor_status %s suspended_until %s", key, "suspended", until);
        r = hook(body, "srs-e2e-suspended");
        cr_assert(eq(long, r.status, 403), "%s", r.body);
        free(body);
        support_receiver_stop(&e2e.rcv, false);
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
        cr_assert(eq(long, r.status, 403), "%s; log %s", r.body, e2e.rcv.log_path);
        cr_assert(strstr(r.body, "banned") != NULL, "%s", r.body);

        /* Lifted in MySQL: the next publish is allowed (nothing is cached). */
        snprintf(sql, sizeof(sql), "UPDATE anchors SET status = 'active' WHERE anchor_id = '%s'",
                 anchor);
        cr_assert(eq(int, mysql_query(e2e.mysql, sql), 0), "%s", mysql_error(e2e.mysql));
        r = hook(body, "srs-e2e-mysql-lifted");
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, e2e.rcv.log_path);
        free(body);
        support_receiver_stop(&e2e.rcv, false);
}

Test(srs_e2e, play_reaches_live_viewer_keyed_by_stream)
{
        struct support_reader *tr;
        char stream[64], trace[64], value[128];
        struct event ev_read = {0};
        rd_kafka_message_t *rkm;
        struct reply r;
        char *body;
        connect_stores();
        support_unique_name("srs_stream", stream, sizeof(stream));
        support_unique_name("srs-e2e-play", trace, sizeof(trace));
        tr = support_reader_open("live.viewer");
        start_receiver();
        body = support_json_edit(play_json, "stream", json_string(stream));
        r = hook(body, trace);
        cr_assert(eq(long, r.status, 200), "%s; log %s", r.body, e2e.rcv.log_path);
        cr_assert_str_eq(r.body, "{\"code\":0}");

        rkm = support_reader_until(tr, trace, NULL, NULL, NULL, 20000);
        cr_assert(rkm != NULL, "no record with trace_id %s in live.viewer", trace);
        cr_assert(eq(sz, rkm->key_len, strlen(stream)));
        cr_assert(eq(int, memcmp(rkm->key, stream, rkm->key_len), 0));
        cr_assert(eq(int, support_header(rkm, "trace_id", value, sizeof(value)), 0));
        cr_assert_str_eq(value, trace);
        cr_assert(eq(int, support_header(rkm, "event_type", value, sizeof(value)), 0));
        cr_assert_str_eq(value, "viewer.join");
        support_decode(rkm, &ev_read);
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
        free(body);
        support_receiver_stop(&e2e.rcv, false);
}

/* --check-config: exit 2 naming the key on a bad SRS setting; no broker or store needed. */
static int check_config(const char *bad_setting)
{
        return support_receiver_check_config(
                (char *[]){(char *)"LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1", (char *)bad_setting,
                           NULL},
                NULL);
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
