/*
 * test_internal.c: the platform's own endpoints (callback-receiver/internal.c): Standard
 * Webhooks verification, replay memory, body and path validation, mapping to events; then the
 * built liveflow-receiver against the fixture Kafka broker (suite internal_e2e).
 */
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
#include "../../callback-receiver/internal.h"

/* "liveflow-test-secret-of-32-bytes!" (33 bytes) and another key for the wrong-secret cases. */
#define SECRET_B64       "bGl2ZWZsb3ctdGVzdC1zZWNyZXQtb2YtMzItYnl0ZXMh"
#define SECRET           "whsec_" SECRET_B64
#define OTHER_SECRET_B64 "b3RoZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXMh"
#define TOLERANCE_S      300
#define MAX_AMOUNT       100000000LL
#define NOW_S            1714564800LL

/* CONTRACT §2 Reward body with every field. */
static const char reward_json[] =
        "{\"trace_id\":\"tip-0001\",\"audience_id\":\"u_1001\",\"anchor_id\":\"a_2002\","
        "\"room_id\":\"r_7\",\"amount\":29700,\"gift_id\":\"rocket\",\"gift_count\":3,"
        "\"ts\":1714564800123,\"audience_gender\":\"female\",\"anchor_gender\":\"male\","
        "\"audience_type\":\"registered\"}";

static const char withdrawal_json[] =
        "{\"request_id\":\"wd-0001\",\"anchor_id\":\"a_2002\",\"amount\":5000}";

/* ------------------------------------------------------------ ids (requests are signed by
 * support_webhook_sign(), independently of the code) */

static void sha256_of(const char *prefix, const char *key, char out[65])
{
        char text[512];
        int n = snprintf(text, sizeof(text), "%s|%s", prefix, key);

        crypto_sha256_hex(text, (size_t)n, out);
}

/* ------------------------------------------------------------ unit fixture */

/* One request as internal_map() sees it, with its headers. */
static struct {
        char id[300], ts[32], sig[64];
        const char *names[3];
        const char *values[3];
        struct webhook_request req;
} call;

static struct settings settings;
static struct metrics *metrics;
static struct internal *in;
static struct webhook_event ev;
static struct webhook_verdict verdict;

static const char *fake_lookup(void *ctx, enum webhook_lookup kind, const char *name)
{
        (void)ctx;
        for (int i = 0; kind == WEBHOOK_HEADER && i < 3; i++)
                if (call.names[i] && strcasecmp(call.names[i], name) == 0)
                        return call.values[i];
        return NULL;
}

static void make_internal(const char *secrets, long long replay_max)
{
        char errstr[256];

        internal_destroy(in);
        settings = (struct settings){.hmac_secrets = (char *)secrets,
                                     .webhook_tolerance_s = TOLERANCE_S,
                                     .webhook_replay_max = replay_max,
                                     .max_amount = MAX_AMOUNT};
        in = internal_new(&settings, metrics, errstr, sizeof(errstr));
        cr_assert(in != NULL, "internal_new: %s", errstr);
}

static void setup(void)
{
        metrics = metrics_new();
        cr_assert(metrics != NULL);
        memset(&ev, 0, sizeof(ev));
        make_internal(SECRET, 1000);
}

static void teardown(void)
{
        webhook_event_fini(&ev);
        internal_destroy(in);
        in = NULL;
        metrics_destroy(metrics);
}

TestSuite(internal, .init = setup, .fini = teardown);

/* Prepares call: body signed with key_b64 under id at ts_s, received at now_s. */
static void prepare(const char *path_arg, const char *body, const char *id, long long ts_s,
                    long long now_s, const char *key_b64)
{
        size_t len = body ? strlen(body) : 0;

        snprintf(call.id, sizeof(call.id), "%s", id);
        snprintf(call.ts, sizeof(call.ts), "%lld", ts_s);
        support_webhook_sign(key_b64, call.id, call.ts, body ? body : "", len, call.sig);
        call.names[0] = "webhook-id";
        call.values[0] = call.id;
        call.names[1] = "Webhook-Timestamp"; /* header names are case-insensitive */
        call.values[1] = call.ts;
        call.names[2] = "webhook-signature";
        call.values[2] = call.sig;
        call.req = (struct webhook_request){.body = body,
                                            .len = len,
                                            .now_ms = now_s * 1000 + 250,
                                            .path_arg = path_arg,
                                            .trace_id = "test-trace",
                                            .lookup = fake_lookup};
}

static int run(enum internal_endpoint ep)
{
        webhook_event_fini(&ev);
        memset(&verdict, 0, sizeof(verdict));
        switch (ep) {
        case INTERNAL_REWARDS:
                return internal_map_rewards(in, &call.req, &ev, &verdict);
        case INTERNAL_WITHDRAWALS:
                return internal_map_withdrawals(in, &call.req, &ev, &verdict);
        default:
                return internal_map_admin(in, &call.req, &ev, &verdict);
        }
}

/* Signs and maps body (to path_arg for admin) under id, received at the signing time. */
static int map_as(enum internal_endpoint ep, const char *path_arg, const char *body, const char *id)
{
        prepare(path_arg, body, id, NOW_S, NOW_S, SECRET_B64);
        return run(ep);
}

static int map(enum internal_endpoint ep, const char *path_arg, const char *body)
{
        return map_as(ep, path_arg, body, "msg_test_1");
}

/* The sample with field replaced by the JSON text value (NULL: removed); the caller frees it. */
static char *edit(const char *sample, const char *field, const char *value)
{
        json_t *root = json_loads(sample, 0, NULL);
        char *s;

        cr_assert(root != NULL);
        if (value) {
                json_error_t jerr;
                json_t *v = json_loads(value, JSON_DECODE_ANY, &jerr);

                cr_assert(v != NULL, "%s: %s", value, jerr.text);
                json_object_set_new(root, field, v);
        } else {
                json_object_del(root, field);
        }
        s = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return s;
}

static void assert_refused(int rc, unsigned int status, const char *auth_failure,
                           const char *in_message)
{
        cr_assert(eq(int, rc, -1));
        cr_assert(eq(u32, verdict.status, status), "status %u: %s", verdict.status,
                  verdict.message);
        if (auth_failure)
                cr_assert_str_eq(verdict.auth_failure, auth_failure);
        else
                cr_assert_null(verdict.auth_failure);
        cr_assert(strstr(verdict.message, in_message) != NULL, "message \"%s\" should name \"%s\"",
                  verdict.message, in_message);
        cr_assert_null(ev.payload);
        cr_assert_null(ev.anchor_id);
        cr_assert_null(ev.stream_id);
        cr_assert_null(ev.topic);
}

/* Encodes ev as the receiver does and decodes it again: the payload fits the schema. */
static void roundtrip(struct event *out)
{
        char errstr[256];
        struct codec *codec = codec_new(errstr, sizeof(errstr));
        const struct envelope env = {.event_id = ev.event_id,
                                     .vendor = ev.vendor,
                                     .event_type = ev.event_type,
                                     .stream_id = ev.stream_id,
                                     .anchor_id = ev.anchor_id,
                                     .room_id = ev.room_id,
                                     .event_time_ms = ev.event_time_ms,
                                     .receive_time_ms = call.req.now_ms,
                                     .trace_id = "test-trace",
                                     .raw = call.req.body,
                                     .raw_len = call.req.len};
        void *value = NULL;
        size_t len = 0;

        cr_assert(codec != NULL, "%s", errstr);
        cr_assert(eq(int,
                     codec_encode(codec, &env, ev.payload_name, ev.payload, &value, &len, errstr,
                                  sizeof(errstr)),
                     0),
                  "%s", errstr);
        cr_assert(eq(int, codec_decode(codec, value, len, out, errstr, sizeof(errstr)), 0), "%s",
                  errstr);
        free(value);
        codec_destroy(codec);
}

static const char *payload_str(const struct event *e, const char *name)
{
        return json_string_value(json_object_get(e->payload, name));
}

static long long payload_int(const struct event *e, const char *name)
{
        return (long long)json_integer_value(json_object_get(e->payload, name));
}

/* A nullable payload field decoded as null (jansson's json_is_null is a macro Criterion cannot
 * take). */
static bool is_null_field(const struct event *e, const char *name)
{
        return json_is_null(json_object_get(e->payload, name));
}

static long long counter(const char *name, const char *labels)
{
        return metric_value(metrics_counter(metrics, name, "", labels));
}

/* ------------------------------------------------------------ rewards */

Test(internal, reward_becomes_a_reward_event_on_live_reward_keyed_by_anchor)
{
        struct event out = {0};
        char want_id[65];

        cr_assert(eq(int, map(INTERNAL_REWARDS, "", reward_json), 0), "%s", verdict.message);
        sha256_of("internal|reward", "tip-0001", want_id);
        cr_assert_str_eq(ev.event_id, want_id);
        cr_assert_str_eq(ev.vendor, "internal");
        cr_assert_str_eq(ev.event_type, "reward");
        cr_assert_str_eq(ev.topic, "live.reward");
        cr_assert_str_eq(ev.key, "a_2002");
        cr_assert_str_eq(ev.anchor_id, "a_2002");
        cr_assert_str_eq(ev.room_id, "r_7");
        cr_assert_null(ev.stream_id);
        cr_assert(eq(i64, ev.event_time_ms, 1714564800123LL));

        roundtrip(&out);
        cr_assert_str_eq(out.payload_name, "Reward");
        cr_assert_str_eq(payload_str(&out, "tip_id"), "tip-0001");
        cr_assert_str_eq(payload_str(&out, "audience_id"), "u_1001");
        cr_assert_str_eq(payload_str(&out, "anchor_id"), "a_2002");
        cr_assert_str_eq(payload_str(&out, "room_id"), "r_7");
        cr_assert(eq(i64, payload_int(&out, "amount"), 29700));
        cr_assert_str_eq(payload_str(&out, "gift_id"), "rocket");
        cr_assert(eq(i64, payload_int(&out, "gift_count"), 3));
        cr_assert(eq(i64, payload_int(&out, "ts_ms"), 1714564800123LL));
        cr_assert_str_eq(payload_str(&out, "audience_gender"), "female");
        cr_assert_str_eq(payload_str(&out, "anchor_gender"), "male");
        cr_assert_str_eq(payload_str(&out, "audience_type"), "registered");
        event_fini(&out);
}

Test(internal, reward_without_the_optional_fields_or_with_them_null_is_accepted)
{
        struct event out = {0};
        char *a = edit(reward_json, "audience_gender", NULL), *b = edit(a, "anchor_gender", "null"),
             *c = edit(b, "audience_type", NULL);

        cr_assert(eq(int, map(INTERNAL_REWARDS, "", c), 0), "%s", verdict.message);
        roundtrip(&out);
        cr_assert(is_null_field(&out, "audience_gender"));
        cr_assert(is_null_field(&out, "anchor_gender"));
        cr_assert(is_null_field(&out, "audience_type"));
        event_fini(&out);
        free(a);
        free(b);
        free(c);
}

Test(internal, reward_inside_a_standard_webhooks_data_object_is_the_same_event)
{
        char body[1024], flat_id[65];

        cr_assert(eq(int, map(INTERNAL_REWARDS, "", reward_json), 0), "%s", verdict.message);
        memcpy(flat_id, ev.event_id, sizeof(flat_id));
        snprintf(
                body, sizeof(body),
                "{\"type\":\"reward.tip.created\",\"timestamp\":\"2024-05-01T12:00:00Z\",\"data\":%s}",
                reward_json);
        cr_assert(eq(int, map(INTERNAL_REWARDS, "", body), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_id, flat_id);
        cr_assert_str_eq(ev.key, "a_2002");
        cr_assert(eq(i64, json_integer_value(json_object_get(ev.payload, "amount")), 29700));
}

Test(internal, the_proposed_tip_created_field_names_are_not_the_contract)
{
        /* shared/payloads/internal-tipping/tip.created.json: a proposal, not CONTRACT §2. */
        static const char proposal[] =
                "{\"type\":\"reward.tip.created\",\"timestamp\":\"2024-05-01T12:00:00.000000Z\","
                "\"data\":{\"tip_id\":\"tip_01HX3V7N\",\"room_id\":\"test_stream\","
                "\"from_user_id\":\"u_1001\",\"to_user_id\":\"u_2002\",\"gift_id\":\"rocket\","
                "\"quantity\":3,\"amount_minor\":29700,\"currency\":\"CNY\"}}";

        assert_refused(map(INTERNAL_REWARDS, "", proposal), 400, NULL, "trace_id is missing");
}

Test(internal, same_tip_under_a_new_webhook_id_keeps_its_event_id)
{
        char first[65];

        cr_assert(eq(int, map_as(INTERNAL_REWARDS, "", reward_json, "msg_a"), 0), "%s",
                  verdict.message);
        memcpy(first, ev.event_id, sizeof(first));
        cr_assert(eq(int, map_as(INTERNAL_REWARDS, "", reward_json, "msg_b"), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(ev.event_id, first);
}

/* One field edited; the refusal must be a 400 naming it. */
struct bad_field {
        const char *field;
        const char *value; /* JSON text, or NULL to remove the field */
        const char *in_message;
};

static void assert_each_refused(enum internal_endpoint ep, const char *sample,
                                const struct bad_field *cases, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                char *body = edit(sample, cases[i].field, cases[i].value);

                cr_log_info("%s = %s", cases[i].field,
                            cases[i].value ? cases[i].value : "(removed)");
                assert_refused(map(ep, "", body), 400, NULL, cases[i].in_message);
                free(body);
        }
}

Test(internal, each_missing_reward_field_is_a_400_naming_it)
{
        static const struct bad_field cases[] = {
                {"trace_id", NULL, "trace_id is missing"},
                {"audience_id", NULL, "audience_id is missing"},
                {"anchor_id", NULL, "anchor_id is missing"},
                {"room_id", NULL, "room_id is missing"},
                {"amount", NULL, "amount is missing"},
                {"gift_id", NULL, "gift_id is missing"},
                {"gift_count", NULL, "gift_count is missing"},
                {"ts", NULL, "ts is missing"},
                {"trace_id", "null", "trace_id is missing"},
                {"amount", "null", "amount is missing"},
        };

        assert_each_refused(INTERNAL_REWARDS, reward_json, cases, sizeof(cases) / sizeof(cases[0]));
}

Test(internal, each_malformed_reward_field_is_a_400_naming_it)
{
        static const struct bad_field cases[] = {
                {"trace_id", "\"\"", "trace_id: expected a string of 1 to 64 characters"},
                {"trace_id", "12.5", "trace_id: expected a string"},
                {"audience_id", "\"u\\u0001\"", "audience_id: expected a string"},
                {"anchor_id",
                 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
                 "anchor_id: expected a string of 1 to 64 characters"},
                {"room_id", "[\"r_7\"]", "room_id: expected a string"},
                {"gift_id", "{}", "gift_id: expected a string"},
                {"amount", "\"29700\"", "amount: expected an integer from 1 to 100000000"},
                {"amount", "29700.0", "amount: expected an integer"},
                {"amount", "2.97e4", "amount: expected an integer"},
                {"amount", "29700E0", "amount: expected an integer"},
                {"gift_count", "3.0", "gift_count: expected an integer"},
                {"amount", "0", "amount: expected an integer"},
                {"amount", "-5", "amount: expected an integer"},
                {"amount", "100000001", "amount: expected an integer"},
                {"amount", "true", "amount: expected an integer"},
                {"gift_count", "0", "gift_count: expected an integer from 1 to 2147483647"},
                {"gift_count", "2147483648", "gift_count: expected an integer"},
                {"gift_count", "\"3\"", "gift_count: expected an integer"},
                {"ts", "1714564800", "ts: expected Unix milliseconds"}, /* seconds, not ms */
                {"ts", "\"1714564800123\"", "ts: expected Unix milliseconds"},
                {"ts", "1714564800123.5", "ts: expected Unix milliseconds"},
                {"audience_gender", "\"other\"",
                 "audience_gender: expected male, female or unknown"},
                {"anchor_gender", "\"MALE\"", "anchor_gender: expected male, female or unknown"},
                {"audience_type", "\"vip\"", "audience_type: expected registered or guest"},
                {"audience_type", "1", "audience_type: expected registered or guest"},
        };

        assert_each_refused(INTERNAL_REWARDS, reward_json, cases, sizeof(cases) / sizeof(cases[0]));
}

Test(internal, ids_of_64_bytes_and_the_max_amount_are_accepted)
{
        char *a = edit(reward_json, "trace_id",
                       "\"tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\""),
             *b = edit(a, "amount", "100000000"), *c = edit(b, "gift_count", "2147483647");

        cr_assert(eq(int, map(INTERNAL_REWARDS, "", c), 0), "%s", verdict.message);
        cr_assert(eq(i64, json_integer_value(json_object_get(ev.payload, "amount")), MAX_AMOUNT));
        free(a);
        free(b);
        free(c);
}

Test(internal, ids_sent_as_json_integers_are_their_decimal_text)
{
        char *a = edit(reward_json, "anchor_id", "9001"), *b = edit(a, "audience_id", "-42"),
             *c = edit(b, "trace_id", "9223372036854775807"), *d = edit(c, "room_id", "0");
        char *w = edit(withdrawal_json, "request_id", "77");

        cr_assert(eq(int, map(INTERNAL_REWARDS, "", d), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "9001");
        cr_assert_str_eq(ev.key, "9001");
        cr_assert_str_eq(json_string_value(json_object_get(ev.payload, "audience_id")), "-42");
        cr_assert_str_eq(json_string_value(json_object_get(ev.payload, "tip_id")),
                         "9223372036854775807");
        cr_assert_str_eq(ev.room_id, "0");
        cr_assert(eq(int, map(INTERNAL_WITHDRAWALS, "", w), 0), "%s", verdict.message);
        cr_assert_str_eq(json_string_value(json_object_get(ev.payload, "request_id")), "77");
        free(a);
        free(b);
        free(c);
        free(d);
        free(w);
}

Test(internal, ids_are_measured_in_characters_as_their_columns_are)
{
        /* 64 CJK characters (192 bytes) fit VARCHAR(64) in utf8mb4; 65 do not. */
        char id[300] = "\"", *a, *b;

        for (int i = 0; i < 64; i++)
                strcat(id, "\xe4\xb8\xbb");
        strcat(id, "\"");
        a = edit(reward_json, "anchor_id", id);
        cr_assert(eq(int, map(INTERNAL_REWARDS, "", a), 0), "%s", verdict.message);
        id[strlen(id) - 1] = '\0';
        strcat(id, "x\"");
        b = edit(reward_json, "anchor_id", id);
        assert_refused(map(INTERNAL_REWARDS, "", b), 400, NULL, "anchor_id: expected a string");
        free(a);
        free(b);
}

Test(internal, a_body_that_is_not_a_json_object_is_a_400_naming_the_body)
{
        static const char *const bodies[] = {
                "",
                "{\"trace_id\":",
                "not json",
                "[1,2]",
                "\"text\"",
                "null",
                "{\"trace_id\":\"a\",\"trace_id\":\"b\"}", /* one field must not be read two ways */
                "{\"trace_id\":\"\\u0000\"}",
                "{\"amount\":99999999999999999999999}",
        };

        for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
                cr_log_info("body %s", bodies[i]);
                assert_refused(map(INTERNAL_REWARDS, "", bodies[i]), 400, NULL, "body");
        }
        assert_refused(map(INTERNAL_WITHDRAWALS, "", "{"), 400, NULL, "body: malformed JSON");
}

Test(internal, refusals_are_counted_by_endpoint_and_field)
{
        char *body = edit(reward_json, "amount", "\"1\"");

        assert_refused(map(INTERNAL_REWARDS, "", body), 400, NULL, "amount");
        assert_refused(map(INTERNAL_REWARDS, "", body), 400, NULL, "amount");
        assert_refused(map(INTERNAL_REWARDS, "", "[]"), 400, NULL, "body");
        cr_assert(eq(i64,
                     counter("liveflow_receiver_invalid_requests_total",
                             "endpoint=\"rewards\",field=\"amount\""),
                     2));
        cr_assert(eq(i64,
                     counter("liveflow_receiver_invalid_requests_total",
                             "endpoint=\"rewards\",field=\"body\""),
                     1));
        cr_assert(eq(i64,
                     counter("liveflow_receiver_invalid_requests_total",
                             "endpoint=\"withdrawals\",field=\"amount\""),
                     0));
        free(body);
}

/* ------------------------------------------------------------ withdrawals */

Test(internal, withdrawal_becomes_a_withdrawal_event_keyed_by_anchor)
{
        struct event out = {0};
        char want_id[65];

        cr_assert(eq(int, map(INTERNAL_WITHDRAWALS, "", withdrawal_json), 0), "%s",
                  verdict.message);
        sha256_of("internal|withdrawal", "wd-0001", want_id);
        cr_assert_str_eq(ev.event_id, want_id);
        cr_assert_str_eq(ev.vendor, "internal");
        cr_assert_str_eq(ev.event_type, "withdrawal");
        cr_assert_str_eq(ev.topic, "live.withdrawal");
        cr_assert_str_eq(ev.key, "a_2002");
        cr_assert(eq(i64, ev.event_time_ms, NOW_S * 1000 + 250), "the receive time");
        roundtrip(&out);
        cr_assert_str_eq(out.payload_name, "Withdrawal");
        cr_assert_str_eq(payload_str(&out, "request_id"), "wd-0001");
        cr_assert_str_eq(payload_str(&out, "anchor_id"), "a_2002");
        cr_assert(eq(i64, payload_int(&out, "amount"), 5000));
        event_fini(&out);
}

Test(internal, each_bad_withdrawal_field_is_a_400_naming_it)
{
        static const struct bad_field cases[] = {
                {"request_id", NULL, "request_id is missing"},
                {"anchor_id", NULL, "anchor_id is missing"},
                {"amount", NULL, "amount is missing"},
                {"request_id", "\"\"", "request_id: expected a string"},
                {"anchor_id", "true", "anchor_id: expected a string"},
                {"amount", "0", "amount: expected an integer from 1 to 100000000"},
                {"amount", "50.5", "amount: expected an integer"},
                {"amount", "\"5000\"", "amount: expected an integer"},
                {"amount", "100000001", "amount: expected an integer"},
        };

        assert_each_refused(INTERNAL_WITHDRAWALS, withdrawal_json, cases,
                            sizeof(cases) / sizeof(cases[0]));
}

/* ------------------------------------------------------------ admin */

Test(internal, close_becomes_a_forced_stream_end_on_live_stream)
{
        struct event out = {0};
        char want_id[65];

        cr_assert(eq(int,
                     map_as(INTERNAL_ADMIN, "streams/s 42/close",
                            "{\"action\":\"close\",\"stream_id\":\"s 42\",\"reason\":\"tos\"}",
                            "msg_close_1"),
                     0),
                  "%s", verdict.message);
        sha256_of("admin", "streams/s 42/close|msg_close_1", want_id);
        cr_assert_str_eq(ev.event_id, want_id);
        cr_assert_str_eq(ev.vendor, "admin");
        cr_assert_str_eq(ev.event_type, "stream.close");
        cr_assert_str_eq(ev.topic, "live.stream");
        cr_assert_str_eq(ev.key, "s 42");
        cr_assert_str_eq(ev.stream_id, "s 42");
        cr_assert_null(ev.anchor_id);
        roundtrip(&out);
        cr_assert_str_eq(out.payload_name, "StreamEnd");
        cr_assert(eq(i64, payload_int(&out, "close_method"), 2));
        cr_assert_str_eq(payload_str(&out, "reason"), "tos");
        event_fini(&out);
}

Test(internal, ban_and_unban_become_admin_verdicts_keyed_by_anchor)
{
        struct event out = {0};

        cr_assert(eq(int,
                     map_as(INTERNAL_ADMIN, "anchors/a_2002/ban",
                            "{\"action\":\"ban\",\"anchor_id\":\"a_2002\",\"reason\":\"spam\","
                            "\"stream_id\":\"s_9\"}",
                            "msg_ban_1"),
                     0),
                  "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "audit.admin");
        cr_assert_str_eq(ev.topic, "live.audit");
        cr_assert_str_eq(ev.key, "a_2002", "a ban and its unban stay on one partition");
        cr_assert_str_eq(ev.anchor_id, "a_2002");
        cr_assert_str_eq(ev.stream_id, "s_9");
        roundtrip(&out);
        cr_assert_str_eq(out.payload_name, "AuditVerdict");
        cr_assert_str_eq(payload_str(&out, "source"), "admin");
        cr_assert_str_eq(payload_str(&out, "action"), "ban");
        cr_assert_str_eq(payload_str(&out, "reason"), "spam");
        cr_assert(is_null_field(&out, "suspend_s"), "no until: a ban for good");
        event_fini(&out);

        cr_assert(eq(int,
                     map_as(INTERNAL_ADMIN, "anchors/a_2002/unban",
                            "{\"action\":\"unban\",\"anchor_id\":\"a_2002\"}", "msg_unban_1"),
                     0),
                  "%s", verdict.message);
        cr_assert_str_eq(ev.key, "a_2002");
        cr_assert_null(ev.stream_id);
        roundtrip(&out);
        cr_assert_str_eq(payload_str(&out, "action"), "unban");
        cr_assert(is_null_field(&out, "reason"));
        event_fini(&out);
}

Test(internal, a_ban_until_a_time_is_a_suspension_of_that_length)
{
        char body[160];

        snprintf(body, sizeof(body), "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"until\":%lld}",
                 NOW_S + 3600);
        cr_assert(eq(int, map(INTERNAL_ADMIN, "anchors/a_1/ban", body), 0), "%s", verdict.message);
        /* Received 250 ms after NOW_S: whole seconds from then. */
        cr_assert(eq(i64, json_integer_value(json_object_get(ev.payload, "suspend_s")), 3600));
        snprintf(body, sizeof(body), "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"until\":%lld}",
                 NOW_S - 1);
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/ban", body), 400, NULL, "until");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/ban",
                           "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"until\":\"tomorrow\"}"),
                       400, NULL, "until");
}

Test(internal, admin_bodies_may_omit_the_reason)
{
        cr_assert(eq(int,
                     map(INTERNAL_ADMIN, "streams/s_1/close",
                         "{\"action\":\"close\",\"stream_id\":\"s_1\"}"),
                     0),
                  "%s", verdict.message);
        cr_assert_null(json_object_get(ev.payload, "reason"));
        cr_assert(eq(int,
                     map(INTERNAL_ADMIN, "anchors/a_1/ban",
                         "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"reason\":null,\"x\":1}"),
                     0),
                  "%s", verdict.message);
}

Test(internal, an_admin_body_must_name_the_paths_command_and_target)
{
        static const struct {
                const char *path, *body, *message;
        } cases[] = {
                {"anchors/a_1/ban", "", "body: expected a JSON object"},
                {"anchors/a_1/ban", "{}", "action is missing"},
                {"anchors/a_1/ban", "{\"anchor_id\":\"a_1\"}", "action is missing"},
                {"anchors/a_1/ban", "{\"action\":\"ban\"}", "anchor_id is missing"},
                {"anchors/a_1/ban", "{\"action\":\"unban\",\"anchor_id\":\"a_1\"}",
                 "action: expected \"ban\""},
                {"anchors/a_1/ban", "{\"action\":\"BAN\",\"anchor_id\":\"a_1\"}",
                 "action: expected \"ban\""},
                {"anchors/a_1/ban", "{\"action\":\"ban\",\"anchor_id\":\"a_2\"}",
                 "anchor_id: differs from the path"},
                {"anchors/a_1/ban", "{\"action\":\"ban\",\"anchor_id\":\"a_1 \"}",
                 "anchor_id: differs from the path"},
                {"anchors/a_1/ban", "{\"action\":\"ban\",\"anchor_id\":true}",
                 "anchor_id: expected"},
                /* one signed ban replayed as a close, or onto another anchor */
                {"streams/s_1/close", "{\"action\":\"ban\",\"anchor_id\":\"a_1\"}",
                 "action: expected \"close\""},
                {"streams/a_1/close", "{\"action\":\"close\",\"anchor_id\":\"a_1\"}",
                 "stream_id is missing"},
                {"anchors/a_1/unban", "{\"action\":\"ban\",\"anchor_id\":\"a_1\"}",
                 "action: expected \"unban\""},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cr_log_info("%s %s", cases[i].path, cases[i].body);
                assert_refused(map(INTERNAL_ADMIN, cases[i].path, cases[i].body), 400, NULL,
                               cases[i].message);
        }
        /* An integer target means its decimal text. */
        cr_assert(eq(int,
                     map(INTERNAL_ADMIN, "anchors/9001/ban",
                         "{\"action\":\"ban\",\"anchor_id\":9001}"),
                     0),
                  "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "9001");
}

Test(internal, bad_admin_bodies_are_a_400_naming_the_field)
{
        char reason[300], body[400];

        assert_refused(map(INTERNAL_ADMIN, "streams/s_1/close",
                           "{\"action\":\"close\",\"stream_id\":\"s_1\",\"reason\":5}"),
                       400, NULL, "reason: expected a string");
        memset(reason, 'r', 256);
        reason[256] = '\0';
        snprintf(body, sizeof(body),
                 "{\"action\":\"close\",\"stream_id\":\"s_1\",\"reason\":\"%s\"}", reason);
        assert_refused(map(INTERNAL_ADMIN, "streams/s_1/close", body), 400, NULL,
                       "reason: expected a string of at most 255 characters");
        reason[255] = '\0';
        snprintf(body, sizeof(body),
                 "{\"action\":\"close\",\"stream_id\":\"s_1\",\"reason\":\"%s\"}", reason);
        cr_assert(eq(int, map(INTERNAL_ADMIN, "streams/s_1/close", body), 0),
                  "255 fits live_audit_logs.reason: %s", verdict.message);
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/ban",
                           "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"stream_id\":[7]}"),
                       400, NULL, "stream_id: expected a string");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/ban",
                           "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"stream_id\":\"\"}"),
                       400, NULL, "stream_id: expected 1 to 255");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/ban",
                           "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"stream_id\":\"a/b\"}"),
                       400, NULL, "stream_id: must not contain '/'");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/unban", "reason=spam"), 400, NULL,
                       "body: malformed JSON");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/unban", "[\"spam\"]"), 400, NULL,
                       "body: expected a JSON object");
}

Test(internal, unknown_admin_paths_are_404)
{
        static const char *const paths[] = {
                "",
                "streams",
                "streams/s_1",
                "streams/s_1/open",
                "anchors/a_1/close",
                "streams/s_1/ban",
                "users/u_1/ban",
                "streams/s_1/close/",
                "/streams/s_1/close",
                "STREAMS/s_1/close",
                "anchors/a_1/ban/now",
                "streamsx/s_1/close",
        };

        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                cr_log_info("path %s", paths[i]);
                assert_refused(map(INTERNAL_ADMIN, paths[i], ""), 404, NULL,
                               "no such admin command");
        }
}

/* Maps a close of the stream id given (its body names it) under msg_test_1. */
static int map_close_of(const char *id)
{
        char path[400], body[400];

        snprintf(path, sizeof(path), "streams/%s/close", id);
        snprintf(body, sizeof(body), "{\"action\":\"close\",\"stream_id\":\"%s\"}", id);
        return map(INTERNAL_ADMIN, path, body);
}

Test(internal, admin_path_ids_are_validated_against_their_columns)
{
        char path[400], id[300];

        assert_refused(map(INTERNAL_ADMIN, "streams//close", ""), 400, NULL,
                       "stream_id: expected 1 to 255");
        assert_refused(map(INTERNAL_ADMIN, "anchors//ban", ""), 400, NULL,
                       "anchor_id: expected 1 to 64");
        assert_refused(map(INTERNAL_ADMIN, "streams/a/b/close", ""), 400, NULL,
                       "stream_id: must not contain '/'");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a\x01/ban", ""), 400, NULL, "anchor_id");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a\xff\xfe/ban", ""), 400, NULL,
                       "anchor_id: expected 1 to 64 characters of UTF-8");
        memset(id, 'x', 256);
        id[256] = '\0';
        assert_refused(map_close_of(id), 400, NULL, "stream_id: expected 1 to 255");
        id[255] = '\0';
        cr_assert(eq(int, map_close_of(id), 0), "255 fits live_streams.stream_id: %s",
                  verdict.message);
        /* anchors.anchor_id is VARCHAR(64): 65 characters would be a 200 and then a DLQ. */
        memset(id, 'a', 65);
        id[65] = '\0';
        snprintf(path, sizeof(path), "anchors/%s/ban", id);
        assert_refused(map(INTERNAL_ADMIN, path, ""), 400, NULL, "anchor_id: expected 1 to 64");
        cr_assert(eq(int,
                     map(INTERNAL_ADMIN, "anchors/\xe4\xb8\xbb\xe6\x92\xad/ban",
                         "{\"action\":\"ban\",\"anchor_id\":\"\xe4\xb8\xbb\xe6\x92\xad\"}"),
                     0),
                  "UTF-8 is fine: %s", verdict.message);
        cr_assert_str_eq(ev.key, "\xe4\xb8\xbb\xe6\x92\xad");
}

Test(internal, one_webhook_id_at_two_paths_is_two_event_ids)
{
        char first[65];

        /* The path is part of the command: the id covers it. */
        cr_assert(eq(int,
                     map_as(INTERNAL_ADMIN, "anchors/a_1/ban",
                            "{\"action\":\"ban\",\"anchor_id\":\"a_1\"}", "msg_cmd"),
                     0),
                  "%s", verdict.message);
        memcpy(first, ev.event_id, sizeof(first));
        cr_assert(eq(int,
                     map_as(INTERNAL_ADMIN, "anchors/a_2/ban",
                            "{\"action\":\"ban\",\"anchor_id\":\"a_2\"}", "msg_cmd"),
                     0),
                  "%s", verdict.message);
        cr_assert(strcmp(ev.event_id, first) != 0);
}

/* ------------------------------------------------------------ authentication */

Test(internal, without_a_secret_every_request_is_503)
{
        make_internal(NULL, 10);
        assert_refused(map(INTERNAL_REWARDS, "", reward_json), 503, NULL, "LIVEFLOW_HMAC_SECRET");
        assert_refused(map(INTERNAL_ADMIN, "streams/s/close", ""), 503, NULL,
                       "LIVEFLOW_HMAC_SECRET");
}

Test(internal, signature_failures_are_401_with_the_reason_and_the_header)
{
        prepare("", reward_json, "msg_1", NOW_S, NOW_S, OTHER_SECRET_B64);
        assert_refused(run(INTERNAL_REWARDS), 401, "mismatch", "webhook-signature");

        prepare("", reward_json, "msg_1", NOW_S - TOLERANCE_S - 1, NOW_S, SECRET_B64);
        assert_refused(run(INTERNAL_WITHDRAWALS), 401, "expired", "webhook-timestamp");
        prepare("", reward_json, "msg_1", NOW_S + TOLERANCE_S + 1, NOW_S, SECRET_B64);
        assert_refused(run(INTERNAL_REWARDS), 401, "expired", "webhook-timestamp");

        prepare("", reward_json, "msg_1", NOW_S, NOW_S, SECRET_B64);
        call.names[2] = NULL;
        assert_refused(run(INTERNAL_REWARDS), 401, "missing", "webhook-signature is missing");
        call.names[0] = NULL;
        assert_refused(run(INTERNAL_ADMIN), 401, "missing", "webhook-id is missing");

        /* A body changed after signing. */
        prepare("", reward_json, "msg_1", NOW_S, NOW_S, SECRET_B64);
        call.req.len--;
        assert_refused(run(INTERNAL_REWARDS), 401, "mismatch", "webhook-signature");
}

Test(internal, a_signature_from_a_rotated_secret_is_accepted)
{
        make_internal("whsec_" OTHER_SECRET_B64 "," SECRET, 10);
        prepare("", reward_json, "msg_1", NOW_S, NOW_S, OTHER_SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "%s", verdict.message);
        prepare("", reward_json, "msg_2", NOW_S, NOW_S, SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "%s", verdict.message);
}

Test(internal, authentication_comes_before_paths_and_bodies)
{
        prepare("nowhere", "not json", "msg_1", NOW_S, NOW_S, OTHER_SECRET_B64);
        assert_refused(run(INTERNAL_ADMIN), 401, "mismatch", "webhook-signature");
        assert_refused(run(INTERNAL_REWARDS), 401, "mismatch", "webhook-signature");
}

Test(internal, check_config_names_a_malformed_secret)
{
        char errstr[256];
        struct settings s = {.hmac_secrets = (char *)SECRET ",whsec_***",
                             .webhook_tolerance_s = 300};

        cr_assert(eq(int, internal_check_config(&s, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "LIVEFLOW_HMAC_SECRET: secret 2") != NULL, "%s", errstr);
        s.hmac_secrets = (char *)SECRET;
        cr_assert(eq(int, internal_check_config(&s, errstr, sizeof(errstr)), 0), "%s", errstr);
        s.hmac_secrets = NULL;
        cr_assert(eq(int, internal_check_config(&s, errstr, sizeof(errstr)), 0), "%s", errstr);
}

/* ------------------------------------------------------------ replays */

/* Maps call as it stands and acknowledges it, as the receiver does after the broker's ack. */
static void map_and_ack(enum internal_endpoint ep)
{
        cr_assert(eq(int, run(ep), 0), "%s", verdict.message);
        internal_acked(in, &call.req, &ev);
}

Test(internal, an_acknowledged_webhook_id_is_answered_200_without_an_event)
{
        prepare("", reward_json, "msg_replay", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        cr_assert(eq(int, run(INTERNAL_REWARDS), -1));
        cr_assert(eq(u32, verdict.status, 200), "%u %s", verdict.status, verdict.message);
        cr_assert_null(verdict.auth_failure);
        cr_assert_null(ev.payload);
        cr_assert_null(ev.topic);
        cr_assert(eq(i64,
                     counter("liveflow_receiver_webhook_replays_total", "endpoint=\"rewards\""),
                     1));
        cr_assert(eq(i64,
                     metric_value(metrics_gauge(metrics, "liveflow_receiver_webhook_replay_entries",
                                                "", NULL)),
                     1));

        /* The sender's own retry: same id, new timestamp and signature, a minute later. */
        prepare("", reward_json, "msg_replay", NOW_S + 60, NOW_S + 60, SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), -1));
        cr_assert(eq(u32, verdict.status, 200), "%s", verdict.message);
}

Test(internal, a_webhook_id_is_remembered_only_once_acknowledged)
{
        prepare("", reward_json, "msg_unacked", NOW_S, NOW_S, SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "%s", verdict.message);
        /* No ack (the broker failed, 503): the retry must produce. */
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "%s", verdict.message);
}

Test(internal, a_replay_needs_a_valid_signature_first)
{
        prepare("", reward_json, "msg_replay", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        prepare("", reward_json, "msg_replay", NOW_S, NOW_S, OTHER_SECRET_B64);
        assert_refused(run(INTERNAL_REWARDS), 401, "mismatch", "webhook-signature");
}

Test(internal, an_acknowledged_admin_command_replayed_to_another_path_is_a_400)
{
        const char *ban = "{\"action\":\"ban\",\"anchor_id\":\"a_1\"}";

        prepare("anchors/a_1/ban", ban, "msg_cmd", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_ADMIN);
        call.req.path_arg = "anchors/a_2/ban"; /* same signed headers and body, other target */
        assert_refused(run(INTERNAL_ADMIN), 400, NULL, "anchor_id: differs from the path");
        call.req.path_arg = "streams/a_1/close";
        assert_refused(run(INTERNAL_ADMIN), 400, NULL, "action: expected \"close\"");
        call.req.path_arg = "anchors/a_1/ban"; /* the very same request: acknowledged already */
        cr_assert(eq(int, run(INTERNAL_ADMIN), -1));
        cr_assert(eq(u32, verdict.status, 200), "%s", verdict.message);
        cr_assert(eq(i64, counter("liveflow_receiver_webhook_replays_total", "endpoint=\"admin\""),
                     1));
}

Test(internal, the_memory_forgets_after_the_window)
{
        prepare("", reward_json, "msg_old", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        prepare("", reward_json, "msg_old", NOW_S + TOLERANCE_S - 1, NOW_S + TOLERANCE_S - 1,
                SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), -1), "still within the window");
        /* A retry after the window is produced again; its event id dedups it downstream. */
        prepare("", reward_json, "msg_old", NOW_S + TOLERANCE_S + 1, NOW_S + TOLERANCE_S + 1,
                SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "%s", verdict.message);
}

Test(internal, a_future_timestamp_extends_the_window_to_cover_it)
{
        /* Signed 200 s ahead: the captured request verifies until ts + 300, i.e. now + 500. */
        prepare("", reward_json, "msg_ahead", NOW_S + 200, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        call.req.now_ms = (NOW_S + 450) * 1000;
        cr_assert(eq(int, run(INTERNAL_REWARDS), -1));
        cr_assert(eq(u32, verdict.status, 200), "%s", verdict.message);
}

Test(internal, the_memory_is_bounded_and_counts_what_it_forgot_early)
{
        make_internal(SECRET, 2);
        prepare("", reward_json, "msg_1", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        prepare("", reward_json, "msg_2", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        prepare("", reward_json, "msg_3", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        cr_assert(eq(i64, counter("liveflow_receiver_webhook_replay_evictions_total", NULL), 1));
        prepare("", reward_json, "msg_1", NOW_S, NOW_S, SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "msg_1 was forgotten: %s", verdict.message);
        prepare("", reward_json, "msg_3", NOW_S, NOW_S, SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), -1));
        cr_assert(eq(u32, verdict.status, 200));
}

/* ================================================================ the receiver over HTTP */

#define PARTITIONS 6 /* the fixture broker's topics */

static struct {
        pid_t pid;
        int port, admin_port;
        char log_path[512];
} rcv;

struct reply {
        long status;
        char body[65536];
};

/* A second receiver of a test (two sharing Redis); the teardown kills it too. */
static struct {
        pid_t pid;
} other;

static void start_receiver_with(const char *secret_env, const char *extra_env)
{
        char bin[256], name[64], port_env[64], admin_env[64], boot_env[512];
        char *argv[] = {bin, NULL};
        char *env[] = {port_env,
                       admin_env,
                       boot_env,
                       (char *)"LIVEFLOW_HTTP_ADDR=127.0.0.1",
                       (char *)"LIVEFLOW_DRAIN_TIMEOUT_MS=5000",
                       (char *)secret_env,
                       (char *)extra_env,
                       NULL};

        support_bin_path("liveflow-receiver", bin, sizeof(bin));
        support_unique_name("internal", name, sizeof(name));
        snprintf(rcv.log_path, sizeof(rcv.log_path), "/tmp/liveflow_e2e_%s.log", name);
        rcv.port = support_free_port();
        snprintf(port_env, sizeof(port_env), "LIVEFLOW_HTTP_PORT=%d", rcv.port);
        rcv.admin_port = support_free_port();
        snprintf(admin_env, sizeof(admin_env), "LIVEFLOW_ADMIN_PORT=%d", rcv.admin_port);
        snprintf(boot_env, sizeof(boot_env), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        rcv.pid = support_spawn(argv, env, rcv.log_path);
        cr_assert(rcv.pid > 0);
        cr_assert(eq(int, support_wait_ready(rcv.admin_port, 10000), 0),
                  "receiver not ready; log: %s", rcv.log_path);
}

static void start_receiver(const char *secret_env)
{
        start_receiver_with(secret_env, NULL);
}

static void stop_receiver_expect_clean_exit(void)
{
        cr_assert(eq(int, kill(rcv.pid, SIGTERM), 0));
        cr_assert(eq(int, support_wait_exit(rcv.pid, 15000), 0), "drain failed; log: %s",
                  rcv.log_path);
        rcv.pid = 0;
        unlink(rcv.log_path); /* kept only when something failed */
}

/* As stop_receiver_expect_clean_exit(), but the log stays for the test to read. */
static void stop_receiver_expect_clean_exit_keeping_log(void)
{
        cr_assert(eq(int, kill(rcv.pid, SIGTERM), 0));
        cr_assert(eq(int, support_wait_exit(rcv.pid, 15000), 0), "drain failed; log: %s",
                  rcv.log_path);
        rcv.pid = 0;
}

static void e2e_setup(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        memset(&rcv, 0, sizeof(rcv));
}

static void e2e_teardown(void)
{
        if (rcv.pid > 0) {
                kill(rcv.pid, SIGKILL);
                support_wait_exit(rcv.pid, 5000);
        }
        if (other.pid > 0) {
                kill(other.pid, SIGKILL);
                support_wait_exit(other.pid, 5000);
                other.pid = 0;
        }
        curl_global_cleanup();
}

TestSuite(internal_e2e, .init = e2e_setup, .fini = e2e_teardown, .timeout = 60);

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
        struct reply *r = arg;
        size_t have = strlen(r->body), len = size * n;

        if (len > sizeof(r->body) - 1 - have)
                len = sizeof(r->body) - 1 - have;
        memcpy(r->body + have, p, len);
        r->body[have + len] = '\0';
        return size * n;
}

/* The Standard Webhooks headers of one request. */
struct signed_headers {
        char id[128], ts[32], sig[64];
};

static struct signed_headers sign_now(const char *id, const char *body, long long offset_s,
                                      const char *key_b64)
{
        struct signed_headers h;

        snprintf(h.id, sizeof(h.id), "%s", id);
        snprintf(h.ts, sizeof(h.ts), "%lld", (long long)time(NULL) + offset_s);
        support_webhook_sign(key_b64, h.id, h.ts, body, strlen(body), h.sig);
        return h;
}

/* One more request header for the next posts ("Name: value"), NULL for none. */
static const char *extra_header;

/* POSTs body as JSON to port with the headers h (NULL: unsigned), X-Request-Id trace_id. */
static struct reply post_at(int port, const char *path, const char *body,
                            const struct signed_headers *h, const char *trace_id)
{
        struct reply r = {0};
        struct curl_slist *headers = NULL;
        char url[1024], line[256];
        CURL *curl = curl_easy_init();
        CURLcode rc;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
        headers = curl_slist_append(headers, "Content-Type: application/json");
        headers = curl_slist_append(headers, "Expect:");
        if (h) {
                snprintf(line, sizeof(line), "webhook-id: %s", h->id);
                headers = curl_slist_append(headers, line);
                snprintf(line, sizeof(line), "webhook-timestamp: %s", h->ts);
                headers = curl_slist_append(headers, line);
                snprintf(line, sizeof(line), "webhook-signature: %s", h->sig);
                headers = curl_slist_append(headers, line);
        }
        if (trace_id) {
                snprintf(line, sizeof(line), "X-Request-Id: %s", trace_id);
                headers = curl_slist_append(headers, line);
        }
        if (extra_header)
                headers = curl_slist_append(headers, extra_header);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        rc = curl_easy_perform(curl);
        cr_assert(eq(int, rc, CURLE_OK), "POST %s: %s; log: %s", path, curl_easy_strerror(rc),
                  rcv.log_path);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        return r;
}

static struct reply post(const char *path, const char *body, const struct signed_headers *h,
                         const char *trace_id)
{
        return post_at(rcv.port, path, body, h, trace_id);
}

/* Signs body now with the test secret under id and POSTs it. */
static struct reply post_signed(const char *path, const char *body, const char *id,
                                const char *trace_id)
{
        struct signed_headers h = sign_now(id, body, 0, SECRET_B64);

        return post(path, body, &h, trace_id);
}

static struct reply get_metrics(void)
{
        struct reply r = {0};
        char url[256];
        CURL *curl = curl_easy_init();

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", rcv.admin_port);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
        cr_assert(eq(int, curl_easy_perform(curl), CURLE_OK));
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
        curl_easy_cleanup(curl);
        return r;
}

/* A reward body for this test: its own tip and anchor, so partitions and ids are its own. */
static char *reward_for(const char *tip, const char *anchor)
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

static void assert_key(const rd_kafka_message_t *rkm, const char *key)
{
        cr_assert(eq(sz, rkm->key_len, strlen(key)), "key %.*s, want %s", (int)rkm->key_len,
                  (const char *)rkm->key, key);
        cr_assert(eq(int, memcmp(rkm->key, key, rkm->key_len), 0));
}

static void assert_header(const rd_kafka_message_t *rkm, const char *name, const char *want)
{
        char value[256];

        cr_assert(eq(int, support_header(rkm, name, value, sizeof(value)), 0), "no %s header",
                  name);
        cr_assert_str_eq(value, want);
}

static void decode(const rd_kafka_message_t *rkm, struct event *out)
{
        char errstr[256];
        struct codec *codec = codec_new(errstr, sizeof(errstr));

        cr_assert(codec != NULL, "%s", errstr);
        cr_assert(eq(int, codec_decode(codec, rkm->payload, rkm->len, out, errstr, sizeof(errstr)),
                     0),
                  "%s", errstr);
        codec_destroy(codec);
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
        stop_receiver_expect_clean_exit();
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
        decode(rkm, &out);
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
        stop_receiver_expect_clean_exit();
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
        stop_receiver_expect_clean_exit();
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
        decode(rkm, &out);
        cr_assert_str_eq(out.payload_name, "Withdrawal");
        cr_assert(eq(i64, payload_int(&out, "amount"), 5000));
        event_fini(&out);
        rd_kafka_message_destroy(rkm);
        support_reader_close(tr);
        stop_receiver_expect_clean_exit();
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
        decode(rkm, &out);
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
        decode(rkm, &out);
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
        decode(rkm, &out);
        cr_assert_str_eq(payload_str(&out, "action"), "unban");
        event_fini(&out);
        rd_kafka_message_destroy(rkm);

        support_reader_close(streams);
        support_reader_close(audits);
        stop_receiver_expect_clean_exit();
}

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
        stop_receiver_expect_clean_exit();
}

/* Starts a receiver sharing the fixture Redis; its pid, port and log in *out. */
static void start_sharing_redis(char *redis_env, size_t size)
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
        stop_receiver_expect_clean_exit();
        rcv.pid = first_pid;
        rcv.port = first_port;
        rcv.admin_port = first_admin_port;
        snprintf(rcv.log_path, sizeof(rcv.log_path), "%s", first_log);
        other.pid = 0;
        stop_receiver_expect_clean_exit();
}

/* GET key on the fixture Redis; the string in out ("" when absent). */
static void redis_get(const char *key, char *out, size_t out_size)
{
        const char *url = support_fixture("LIVEFLOW_TEST_REDIS_URL");
        char host[64] = "127.0.0.1";
        int port = 0, db = 0;
        redisContext *c;
        redisReply *r;

        cr_assert(eq(int, sscanf(url, "redis://%63[^:]:%d/%d", host, &port, &db) >= 2, 1), "%s",
                  url);
        c = redisConnect(host, port);
        cr_assert(c != NULL && !c->err, "redis %s", url);
        if (db)
                freeReplyObject(redisCommand(c, "SELECT %d", db));
        r = redisCommand(c, "GET %s", key);
        cr_assert(r != NULL);
        snprintf(out, out_size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
        freeReplyObject(r);
        redisFree(c);
}

/*
 * An event loop marks the claims of a poll's delivery reports done in one pipelined round trip,
 * before it lets the 200s out: whoever saw the 200 finds lock:callback:* saying "done".
 */
Test(internal_e2e, the_claim_says_done_before_the_200_is_written)
{
        char anchor[64], body[256], path[256], msg[64], key[128], value[64], redis_env[256];
        struct reply r;

        start_sharing_redis(redis_env, sizeof(redis_env));
        for (int i = 0; i < 10; i++) {
                support_unique_name("anchor", anchor, sizeof(anchor));
                support_unique_name("msg", msg, sizeof(msg));
                snprintf(body, sizeof(body), "{\"action\":\"unban\",\"anchor_id\":\"%s\"}", anchor);
                snprintf(path, sizeof(path), "/v1/admin/anchors/%s/unban", anchor);
                r = post_signed(path, body, msg, NULL);
                cr_assert(eq(long, r.status, 200), "%s", r.body);
                snprintf(key, sizeof(key), "lock:callback:admin:%s", msg);
                redis_get(key, value, sizeof(value));
                cr_assert(strcmp(value, "done") == 0, "%s is \"%s\" after the 200 of request %d",
                          key, value, i);
        }
        stop_receiver_expect_clean_exit();
}

Test(internal_e2e, with_redis_down_the_guard_fails_open_and_counts)
{
        char body[256], msg[64], anchor[64];
        struct reply r;

        support_unique_name("anchor", anchor, sizeof(anchor));
        support_unique_name("msg", msg, sizeof(msg));
        /* Nothing listens on port 1. */
        start_receiver_with("LIVEFLOW_HMAC_SECRET=" SECRET,
                            "LIVEFLOW_REDIS_URL=redis://127.0.0.1:1/0");
        snprintf(body, sizeof(body), "{\"action\":\"unban\",\"anchor_id\":\"%s\"}", anchor);
        {
                char path[256];

                snprintf(path, sizeof(path), "/v1/admin/anchors/%s/unban", anchor);
                r = post_signed(path, body, msg, NULL);
        }
        cr_assert(eq(long, r.status, 200), "%s", r.body);
        r = get_metrics();
        cr_assert(strstr(r.body, "liveflow_receiver_callback_lock_total{result=\"unguarded\"} 1") !=
                          NULL,
                  "%s", r.body);
        cr_assert(strstr(r.body, "liveflow_receiver_callback_lock_errors_total 1") != NULL, "%s",
                  r.body);
        stop_receiver_expect_clean_exit();
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
        stop_receiver_expect_clean_exit();
}

Test(internal_e2e, without_a_secret_the_endpoints_answer_503)
{
        struct reply r;

        start_receiver("LIVEFLOW_LOG_LEVEL=info");
        r = post_signed("/v1/rewards", reward_json, "msg_1", NULL);
        cr_assert(eq(long, r.status, 503), "%s", r.body);
        cr_assert(strstr(r.body, "LIVEFLOW_HMAC_SECRET") != NULL, "%s", r.body);
        stop_receiver_expect_clean_exit();
}

Test(internal_e2e, check_config_exits_2_on_a_malformed_secret)
{
        char bin[256], name[64], log_path[512];
        char *argv[] = {bin, (char *)"--check-config", NULL};
        char *env[] = {(char *)"LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1",
                       (char *)"LIVEFLOW_HMAC_SECRET=whsec_short", NULL};
        char *log;

        support_bin_path("liveflow-receiver", bin, sizeof(bin));
        support_unique_name("check", name, sizeof(name));
        snprintf(log_path, sizeof(log_path), "/tmp/liveflow_e2e_%s.log", name);
        cr_assert(eq(int, support_wait_exit(support_spawn(argv, env, log_path), 10000), 2));
        log = support_read_file(log_path, NULL);
        cr_assert(log != NULL);
        cr_assert(strstr(log, "LIVEFLOW_HMAC_SECRET: secret 1") != NULL, "%s", log);
        cr_assert(strstr(log, "short") == NULL, "the secret leaked: %s", log);
        free(log);
        unlink(log_path);
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
        stop_receiver_expect_clean_exit_keeping_log();
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
