/*
 * test_internal.c: the platform's own endpoints (callback-receiver/internal.c): Standard
 * Webhooks verification, body and path validation and mapping to events for the rewards and
 * withdrawals endpoints. Its parts in internal/: admin.c (admin paths, authentication, replay
 * memory), e2e.c and e2e_commands.c (the built liveflow-receiver against the fixture Kafka broker,
 * suite internal_e2e); fixture.h is what they share.
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
#include "internal/fixture.h"
#include "refusal.h"

/* CONTRACT §2 Reward body with every field. */
const char reward_json[] =
        "{\"trace_id\":\"tip-0001\",\"audience_id\":\"u_1001\",\"anchor_id\":\"a_2002\","
        "\"room_id\":\"r_7\",\"amount\":29700,\"gift_id\":\"rocket\",\"gift_count\":3,"
        "\"ts\":1714564800123,\"audience_gender\":\"female\",\"anchor_gender\":\"male\","
        "\"audience_type\":\"registered\"}";

const char withdrawal_json[] =
        "{\"request_id\":\"wd-0001\",\"anchor_id\":\"a_2002\",\"amount\":5000}";

/* ------------------------------------------------------------ ids (requests are signed by
 * support_webhook_sign(), independently of the code) */

void sha256_of(const char *prefix, const char *key, char out[65])
{
        char text[512];
        int n = snprintf(text, sizeof(text), "%s|%s", prefix, key);

        crypto_sha256_hex(text, (size_t)n, out);
}

/* ------------------------------------------------------------ unit fixture */

/* One request as internal_map() sees it, with its headers. */
struct internal_call call;

struct settings settings;
struct metrics *metrics;
struct internal *in;
struct webhook_event ev;
struct webhook_verdict verdict;

static const char *fake_lookup(void *ctx, enum webhook_lookup kind, const char *name)
{
        (void)ctx;
        for (int i = 0; kind == WEBHOOK_HEADER && i < 3; i++)
                if (call.names[i] && strcasecmp(call.names[i], name) == 0)
                        return call.values[i];
        return NULL;
}

void make_internal(const char *secrets, long long replay_max)
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
void prepare(const char *path_arg, const char *body, const char *id, long long ts_s,
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

int run(enum internal_endpoint ep)
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
int map_as(enum internal_endpoint ep, const char *path_arg, const char *body, const char *id)
{
        prepare(path_arg, body, id, NOW_S, NOW_S, SECRET_B64);
        return run(ep);
}

int map(enum internal_endpoint ep, const char *path_arg, const char *body)
{
        return map_as(ep, path_arg, body, "msg_test_1");
}

/* The sample with field replaced by the JSON text value (NULL: removed); the caller frees it. */
char *edit(const char *sample, const char *field, const char *value)
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

void assert_refused(int rc, unsigned int status, const char *auth_failure, const char *in_message)
{
        assert_verdict_refused(&verdict, rc, status, auth_failure, in_message);
        cr_assert_null(ev.payload);
        cr_assert_null(ev.fields);
        cr_assert_null(ev.anchor_id);
        cr_assert_null(ev.stream_id);
        cr_assert_null(ev.topic);
}

/* Encodes ev as the receiver does and decodes it again: the payload fits the schema. */
void roundtrip(struct event *out)
{
        char errstr[256];
        struct codec *codec = codec_new(errstr, sizeof(errstr));
        const struct envelope env =
                webhook_envelope(&ev, call.req.now_ms, "test-trace", call.req.body, call.req.len);
        json_t *fields_json = ev.fields ? payload_to_json(ev.fields) : NULL;
        void *value = NULL, *ref = NULL;
        size_t len = 0, ref_len = 0;

        cr_assert(codec != NULL, "%s", errstr);
        /* As the receiver writes it, and as avro-c does from the same fields: the same bytes. */
        cr_assert(eq(int,
                     codec_encode_direct(codec, &env, ev.payload_name, ev.fields, ev.payload,
                                         &value, &len, errstr, sizeof(errstr)),
                     0),
                  "%s", errstr);
        cr_assert(
                eq(int,
                   codec_encode(codec, &env, ev.payload_name, ev.fields ? fields_json : ev.payload,
                                &ref, &ref_len, errstr, sizeof(errstr)),
                   0),
                "%s", errstr);
        cr_assert(eq(sz, len, ref_len));
        cr_assert(eq(int, memcmp(value, ref, len), 0), "the two encoders wrote different bytes");
        cr_assert(eq(int, codec_decode(codec, value, len, out, errstr, sizeof(errstr)), 0), "%s",
                  errstr);
        json_decref(fields_json);
        free(ref);
        free(value);
        codec_destroy(codec);
}

const char *payload_str(const struct event *e, const char *name)
{
        return json_string_value(json_object_get(e->payload, name));
}

long long payload_int(const struct event *e, const char *name)
{
        return (long long)json_integer_value(json_object_get(e->payload, name));
}

/* A nullable payload field decoded as null (jansson's json_is_null is a macro Criterion cannot
 * take). */
bool is_null_field(const struct event *e, const char *name)
{
        return json_is_null(json_object_get(e->payload, name));
}

long long counter(const char *name, const char *labels)
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
        cr_assert(eq(i64, payload_get(ev.fields, "amount")->n, 29700));
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
        cr_assert(eq(i64, payload_get(ev.fields, "amount")->n, MAX_AMOUNT));
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
        cr_assert_str_eq(payload_get_text(ev.fields, "audience_id"), "-42");
        cr_assert_str_eq(payload_get_text(ev.fields, "tip_id"), "9223372036854775807");
        cr_assert_str_eq(ev.room_id, "0");
        cr_assert(eq(int, map(INTERNAL_WITHDRAWALS, "", w), 0), "%s", verdict.message);
        cr_assert_str_eq(payload_get_text(ev.fields, "request_id"), "77");
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
