/* e2e_commands.c: test_internal's receiver over HTTP, continued: admin commands bound to their
 * target, two receivers sharing Redis, refusals, secrets and trace ids. */
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

/* ------------------------------------------------------------ commands bound to their target */

/* One POST run on its own thread, so that two land at once. */
struct shot {
        int port;
        const char *path, *body, *trace_id;
        struct signed_headers h;
        struct reply r;
};

static void *shoot(void *arg)
{
        struct shot *s = arg;
        s->r = post_at(s->port, s->path, s->body, &s->h, s->trace_id);
        return NULL;
}

/* Fires a and b at the same moment and waits for both answers. */
static void shoot_both(struct shot *a, struct shot *b)
{
        pthread_t ta, tb;

        cr_assert(eq(int, pthread_create(&ta, NULL, shoot, a), 0));
        cr_assert(eq(int, pthread_create(&tb, NULL, shoot, b), 0));
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
}

/*
 * Posts a sentinel unban of anchor (same key, so same partition, after everything written
 * before it) and counts, up to it, the live.audit records of reader whose event id is the one
 * of the command "anchors/<anchor>/ban" under webhook-id msg: how often it was written.
 */
static int bans_written(struct support_reader *reader, int port, const char *anchor,
                        const char *msg_id)
{
        char event_id[65], key[256];
        char path[256], body[256], sentinel[64], msg[64];
        rd_kafka_message_t *rkm;
        struct reply r;
        int seen = 0;

        support_unique_name("trace-sentinel", sentinel, sizeof(sentinel));
        support_unique_name("msg-sentinel", msg, sizeof(msg));
        snprintf(path, sizeof(path), "/v1/admin/anchors/%s/unban", anchor);
        snprintf(body, sizeof(body), "{\"action\":\"unban\",\"anchor_id\":\"%s\"}", anchor);
        {
                struct signed_headers h = sign_now(msg, body, 0, SECRET_B64);

                r = post_at(port, path, body, &h, sentinel);
        }
        cr_assert(eq(long, r.status, 200), "%s", r.body);
        snprintf(key, sizeof(key), "anchors/%s/ban|%s", anchor, msg_id);
        sha256_of("admin", key, event_id);
        rkm = support_reader_until(reader, sentinel, "event_id", event_id, &seen, 20000);
        cr_assert(rkm != NULL, "the sentinel never arrived");
        rd_kafka_message_destroy(rkm);
        return seen;
}

Test(internal_e2e, one_signed_ban_sent_to_ban_and_close_at_once_only_bans)
{
        char anchor[64], body[256], ban_path[256], close_path[256], msg[64];
        struct support_reader *audits;
        struct shot ban = {0}, close_ = {0};

        support_unique_name("anchor", anchor, sizeof(anchor));
        support_unique_name("msg", msg, sizeof(msg));
        audits = support_reader_open("live.audit");
        start_receiver("LIVEFLOW_HMAC_SECRET=" SECRET);
        snprintf(body, sizeof(body), "{\"action\":\"ban\",\"anchor_id\":\"%s\"}", anchor);
        snprintf(ban_path, sizeof(ban_path), "/v1/admin/anchors/%s/ban", anchor);
        snprintf(close_path, sizeof(close_path), "/v1/admin/streams/%s/close", anchor);
        ban = (struct shot){.port = rcv.port,
                            .path = ban_path,
                            .body = body,
                            .h = sign_now(msg, body, 0, SECRET_B64)};
        close_ = ban;
        close_.path = close_path;
        shoot_both(&ban, &close_);
        cr_assert(eq(long, ban.r.status, 200), "%s", ban.r.body);
        cr_assert(eq(long, close_.r.status, 400), "%s", close_.r.body);
        cr_assert(strstr(close_.r.body, "action: expected \\\"close\\\"") != NULL, "%s",
                  close_.r.body);
        /* Raced onto another anchor: refused, whatever the timing. */
        close_.path = "/v1/admin/anchors/someone-else/ban";
        cr_assert(eq(long, post_at(rcv.port, close_.path, body, &close_.h, NULL).status, 400));
        cr_assert(eq(int, bans_written(audits, rcv.port, anchor, msg), 1));
        support_reader_close(audits);
        support_receiver_stop(&rcv, false);
}

void start_sharing_redis(char *redis_env, size_t size)
{
        snprintf(redis_env, size, "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        start_receiver_with("LIVEFLOW_HMAC_SECRET=" SECRET, redis_env);
}

Test(internal_e2e, two_receivers_sharing_redis_write_one_command_once)
{
        char anchor[64], body[256], path[256], close_path[256], msg[64], redis_env[256];
        struct support_reader *audits;
        struct shot a, b;
        pid_t first_pid;
        int first_port, first_admin_port, ok = 0;
        char first_log[512];

        support_unique_name("anchor", anchor, sizeof(anchor));
        audits = support_reader_open("live.audit");
        start_sharing_redis(redis_env, sizeof(redis_env));
        first_pid = rcv.pid;
        first_port = rcv.port;
        first_admin_port = rcv.admin_port;
        snprintf(first_log, sizeof(first_log), "%s", rcv.log_path);
        start_sharing_redis(redis_env, sizeof(redis_env));
        other.pid = first_pid; /* the teardown stops both */

        snprintf(body, sizeof(body), "{\"action\":\"ban\",\"anchor_id\":\"%s\"}", anchor);
        snprintf(path, sizeof(path), "/v1/admin/anchors/%s/ban", anchor);
        snprintf(close_path, sizeof(close_path), "/v1/admin/streams/%s/close", anchor);

        /* Acknowledged by the first, replayed to the second: no second event. */
        support_unique_name("msg", msg, sizeof(msg));
        a = (struct shot){.port = first_port,
                          .path = path,
                          .body = body,
                          .h = sign_now(msg, body, 0, SECRET_B64)};
        cr_assert(eq(long, post_at(first_port, path, body, &a.h, NULL).status, 200));
        b = a;
        b.r = post_at(rcv.port, path, body, &b.h, NULL);
        cr_assert(eq(long, b.r.status, 200), "%s", b.r.body);
        cr_assert(eq(long, post_at(rcv.port, close_path, body, &b.h, NULL).status, 400));
        cr_assert(eq(int, bans_written(audits, rcv.port, anchor, msg), 1));

        /* A fresh command sent to both at once, four times: each is written once. */
        for (int i = 0; i < 4; i++) {
                support_unique_name("msg", msg, sizeof(msg));
                a = (struct shot){.port = first_port,
                                  .path = path,
                                  .body = body,
                                  .h = sign_now(msg, body, 0, SECRET_B64)};
                b = a;
                b.port = rcv.port;
                shoot_both(&a, &b);
                cr_assert(a.r.status == 200 || a.r.status == 503, "%ld %s", a.r.status, a.r.body);
                cr_assert(b.r.status == 200 || b.r.status == 503, "%ld %s", b.r.status, b.r.body);
                ok += (a.r.status == 200) + (b.r.status == 200);
                cr_assert(eq(int, bans_written(audits, rcv.port, anchor, msg), 1),
                          "round %d: written once", i);
        }
        cr_assert(ok >= 4, "every command was acknowledged at least once");
        support_reader_close(audits);
        support_receiver_stop(&rcv, false);
        rcv.pid = first_pid;
        rcv.port = first_port;
        rcv.admin_port = first_admin_port;
        snprintf(rcv.log_path, sizeof(rcv.log_path), "%s", first_log);
        other.pid = 0;
        support_receiver_stop(&rcv, false);
}

Test(internal_e2e, refusals_name_the_header_or_the_field)
{
        struct signed_headers h;
        struct reply r;
        char *bad;

        start_receiver("LIVEFLOW_HMAC_SECRET=" SECRET);
        r = post("/v1/rewards", reward_json, NULL, NULL);
        cr_assert(eq(long, r.status, 401), "%s", r.body);
        cr_assert_str_eq(r.body, "{\"code\":401,\"message\":\"webhook-id is missing\"}");

        h = sign_now("msg_1", reward_json, 0, OTHER_SECRET_B64);
        r = post("/v1/rewards", reward_json, &h, NULL);
        cr_assert(eq(long, r.status, 401), "%s", r.body);
        cr_assert(strstr(r.body, "webhook-signature") != NULL, "%s", r.body);

        h = sign_now("msg_1", reward_json, -TOLERANCE_S - 60, SECRET_B64);
        r = post("/v1/rewards", reward_json, &h, NULL);
        cr_assert(eq(long, r.status, 401), "%s", r.body);
        cr_assert(strstr(r.body, "webhook-timestamp") != NULL, "%s", r.body);

        bad = edit(reward_json, "amount", "\"29700\"");
        r = post_signed("/v1/rewards", bad, "msg_2", NULL);
        cr_assert(eq(long, r.status, 400), "%s", r.body);
        cr_assert(strstr(r.body, "amount: expected an integer") != NULL, "%s", r.body);

        r = post_signed("/v1/withdrawals", "not json", "msg_3", NULL);
        cr_assert(eq(long, r.status, 400), "%s", r.body);
        cr_assert(strstr(r.body, "body: malformed JSON") != NULL, "%s", r.body);

        r = post_signed("/v1/admin/streams/s_1/reopen", "", "msg_4", NULL);
        cr_assert(eq(long, r.status, 404), "%s", r.body);
        r = post_signed("/v1/admin/streams/a%2Fb/close", "", "msg_5", NULL);
        cr_assert(eq(long, r.status, 400), "%s", r.body);
        cr_assert(strstr(r.body, "path: an escape") != NULL, "%s", r.body);

        r = get_metrics();
        cr_assert(
                strstr(r.body,
                       "liveflow_receiver_signature_failures_total{vendor=\"internal\",reason=\"mismatch\"} 1") !=
                        NULL,
                "%s", r.body);
        cr_assert(
                strstr(r.body,
                       "liveflow_receiver_invalid_requests_total{endpoint=\"rewards\",field=\"amount\"} 1") !=
                        NULL,
                "%s", r.body);
        free(bad);
        support_receiver_stop(&rcv, false);
}

Test(internal_e2e, without_a_secret_the_endpoints_answer_503)
{
        struct reply r;

        start_receiver("LIVEFLOW_LOG_LEVEL=info");
        r = post_signed("/v1/rewards", reward_json, "msg_1", NULL);
        cr_assert(eq(long, r.status, 503), "%s", r.body);
        cr_assert(strstr(r.body, "LIVEFLOW_HMAC_SECRET") != NULL, "%s", r.body);
        support_receiver_stop(&rcv, false);
}

Test(internal_e2e, check_config_exits_2_on_a_malformed_secret)
{
        char *env[] = {(char *)"LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1",
                       (char *)"LIVEFLOW_HMAC_SECRET=whsec_short", NULL};
        char *log;

        cr_assert(eq(int, support_receiver_check_config(env, &log), 2));
        cr_assert(strstr(log, "LIVEFLOW_HMAC_SECRET: secret 1") != NULL, "%s", log);
        cr_assert(strstr(log, "short") == NULL, "the secret leaked: %s", log);
        free(log);
}

Test(internal_e2e, the_tip_services_x_trace_id_is_the_trace_and_the_tip_id_is_logged)
{
        char tip[64], anchor[64], trace[64], header[128], msg[64];
        struct support_reader *tr;
        rd_kafka_message_t *rkm;
        char *body, *log;
        struct reply r;

        support_unique_name("tip", tip, sizeof(tip));
        support_unique_name("anchor", anchor, sizeof(anchor));
        support_unique_name("x-trace", trace, sizeof(trace));
        support_unique_name("msg", msg, sizeof(msg));
        tr = support_reader_open("live.reward");
        start_receiver("LIVEFLOW_HMAC_SECRET=" SECRET);
        body = reward_for(tip, anchor);
        snprintf(header, sizeof(header), "X-Trace-Id: %s", trace);
        extra_header = header;
        r = post_signed("/v1/rewards", body, msg, NULL);
        extra_header = NULL;
        cr_assert(eq(long, r.status, 200), "%s", r.body);
        rkm = support_reader_until(tr, trace, NULL, NULL, NULL, 20000);
        cr_assert(rkm != NULL, "no record carries the caller's X-Trace-Id as trace_id");
        rd_kafka_message_destroy(rkm);
        support_reader_close(tr);

        r = get_metrics();
        cr_assert(
                strstr(r.body,
                       "liveflow_receiver_request_duration_seconds_count{endpoint=\"rewards\"} 1") !=
                        NULL,
                "%s", r.body);
        support_receiver_stop(&rcv, true);
        log = support_read_file(rcv.log_path, NULL);
        cr_assert(log != NULL);
        {
                char want[160];

                snprintf(want, sizeof(want), "trace=%s POST /v1/rewards status=200", trace);
                cr_assert(strstr(log, want) != NULL, "%s", log);
                snprintf(want, sizeof(want), "tip_trace_id=%s", tip);
                cr_assert(strstr(log, want) != NULL, "%s", log);
        }
        free(log);
        unlink(rcv.log_path);
        free(body);
}
