/*
 * internal.c: the platform's own endpoints (see internal.h). A request is verified the
 * Standard Webhooks way (stdwebhooks.c), answered 200 without an event when its webhook-id was
 * acknowledged within the window (replay.c), then its body and path are validated strictly
 * (the senders are ours) and mapped to one event whose id is derived from the business key,
 * so a replay that reaches another receiver instance is still deduplicated downstream.
 *
 * The operators' commands (/v1/admin/...): internal_admin.c.
 */
#include "internal.h"
#include "internal_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "crypto.h"
#include "field_limits.h"
#include "jsonfast.h"
#include "log.h"
#include "metrics.h"
#include "replay.h"
#include "settings.h"
#include "stdwebhooks.h"

#define TOPIC_REWARD       LF_TOPIC_REWARD
#define TOPIC_WITHDRAWAL   LF_TOPIC_WITHDRAWAL
#define BODY_ID_MAX        64 /* ids in a body, in bytes */
#define GIFT_COUNT_MAX     2147483647LL
#define TS_MIN_MS          946684800000LL    /* 2000-01-01: a ts sent in seconds is refused */
#define TS_MAX_MS          253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define REPLAY_MAX_DEFAULT 100000            /* LIVEFLOW_WEBHOOK_REPLAY_MAX's default */

const char *const internal_topics[] = {TOPIC_REWARD, TOPIC_WITHDRAWAL, TOPIC_STREAM, TOPIC_AUDIT,
                                       NULL};

struct internal {
        struct stdwebhooks *sw;
        struct replay *replay;
        struct metrics *metrics;
        struct metric *replay_entries; /* gauge */
        long long tolerance_s;
        long long max_amount;
};

/* What a body field must be. */
enum field_kind {
        FIELD_ID,            /* a string of 1..BODY_ID_MAX bytes without control characters */
        FIELD_AMOUNT,        /* an integer from 1 to LIVEFLOW_MAX_AMOUNT */
        FIELD_COUNT,         /* an integer from 1 to GIFT_COUNT_MAX */
        FIELD_TIME_MS,       /* an integer from TS_MIN_MS to TS_MAX_MS */
        FIELD_GENDER,        /* male, female or unknown */
        FIELD_AUDIENCE_TYPE, /* registered or guest */
};

struct field {
        const char *name; /* in the body */
        const char *to;   /* in the payload record */
        enum field_kind kind;
        bool is_required; /* else absent or null is fine */
};

/* CONTRACT §2 Reward body -> schemas/event.avsc Reward. */
static const struct field reward_fields[] = {
        {"trace_id", "tip_id", FIELD_ID, true},
        {"audience_id", "audience_id", FIELD_ID, true},
        {"anchor_id", "anchor_id", FIELD_ID, true},
        {"room_id", "room_id", FIELD_ID, true},
        {"amount", "amount", FIELD_AMOUNT, true},
        {"gift_id", "gift_id", FIELD_ID, true},
        {"gift_count", "gift_count", FIELD_COUNT, true},
        {"ts", "ts_ms", FIELD_TIME_MS, true},
        {"audience_gender", "audience_gender", FIELD_GENDER, false},
        {"anchor_gender", "anchor_gender", FIELD_GENDER, false},
        {"audience_type", "audience_type", FIELD_AUDIENCE_TYPE, false},
};

/* CONTRACT §2 Withdrawal body -> Withdrawal. */
static const struct field withdrawal_fields[] = {
        {"request_id", "request_id", FIELD_ID, true},
        {"anchor_id", "anchor_id", FIELD_ID, true},
        {"amount", "amount", FIELD_AMOUNT, true},
};

static const char *const genders[] = {"male", "female", "unknown", NULL};
static const char *const audience_types[] = {"registered", "guest", NULL};

/* ------------------------------------------------------------ lifecycle */

int internal_check_config(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct stdwebhooks *sw =
                stdwebhooks_new(s->hmac_secrets, s->webhook_tolerance_s, errstr, errstr_size);

        stdwebhooks_destroy(sw);
        return sw ? 0 : -1;
}

struct internal *internal_new(const struct settings *s, struct metrics *metrics, char *errstr,
                              size_t errstr_size)
{
        struct internal *in = calloc(1, sizeof(*in));
        /* settings_load() never gives 0; a struct settings made by hand (a test) may. */
        long long replay_max = s->webhook_replay_max ? s->webhook_replay_max : REPLAY_MAX_DEFAULT;

        if (!in) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        in->metrics = metrics;
        in->tolerance_s = s->webhook_tolerance_s;
        in->max_amount = s->max_amount;
        if (!(in->sw = stdwebhooks_new(s->hmac_secrets, s->webhook_tolerance_s, errstr,
                                       errstr_size)))
                goto fail;
        if (replay_max < 1 || !(in->replay = replay_new((size_t)replay_max))) {
                snprintf(errstr, errstr_size, "LIVEFLOW_WEBHOOK_REPLAY_MAX: cannot hold %lld ids",
                         replay_max);
                goto fail;
        }
        in->replay_entries = metrics_gauge(metrics, "liveflow_receiver_webhook_replay_entries",
                                           "webhook-ids held by the replay memory", NULL);
        if (!stdwebhooks_secret_count(in->sw))
                log_warn(NULL, "LIVEFLOW_HMAC_SECRET is not set: /v1/rewards, /v1/withdrawals and "
                               "/v1/admin answer 503");
        return in;

fail:
        internal_destroy(in);
        return NULL;
}

void internal_destroy(struct internal *in)
{
        if (!in)
                return;
        replay_destroy(in->replay);
        stdwebhooks_destroy(in->sw);
        free(in);
}

/* ------------------------------------------------------------ refusals and metrics */

static const char *endpoint_name(enum internal_endpoint ep)
{
        switch (ep) {
        case INTERNAL_REWARDS:
                return "rewards";
        case INTERNAL_WITHDRAWALS:
                return "withdrawals";
        case INTERNAL_ADMIN:
                return "admin";
        }
        return "unknown";
}

static void count(struct internal *in, const char *name, const char *help, const char *labels)
{
        metric_add(metrics_counter(in->metrics, name, help, labels), 1);
}

/* A 400 naming field, counted by endpoint and field (both from our own static tables). */
int internal_refuse_field(struct internal *in, const char *endpoint, const char *field,
                          struct webhook_verdict *v, const char *fmt, ...)
{
        char labels[128], message[sizeof(v->message)];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        snprintf(labels, sizeof(labels), "endpoint=\"%s\",field=\"%s\"", endpoint, field);
        count(in, "liveflow_receiver_invalid_requests_total",
              "Internal requests refused with 400, by endpoint and field", labels);
        return webhook_refuse(v, 400, NULL, "%s", message);
}

/* ------------------------------------------------------------ authentication and replays */

static int authenticate(const struct internal *in, const struct webhook_request *req,
                        struct webhook_verdict *v)
{
        char why[sizeof(v->message)];
        enum stdwebhooks_result r = stdwebhooks_verify(
                in->sw, webhook_header(req, "webhook-id"), webhook_header(req, "webhook-timestamp"),
                webhook_header(req, "webhook-signature"), req->body, req->len, req->now_ms / 1000,
                why, sizeof(why));

        if (r == STDWEBHOOKS_OK)
                return 0;
        return webhook_refuse(v, 401, stdwebhooks_result_name(r), "%s", why);
}

/* True (v set to 200) when the request's webhook-id was acknowledged within the window. */
static bool is_replay(struct internal *in, const char *endpoint, const struct webhook_request *req,
                      struct webhook_verdict *v)
{
        char labels[64];

        if (!replay_contains(in->replay, webhook_header(req, "webhook-id"), req->now_ms))
                return false;
        snprintf(labels, sizeof(labels), "endpoint=\"%s\"", endpoint);
        count(in, "liveflow_receiver_webhook_replays_total",
              "Requests answered 200 without an event: their webhook-id was acknowledged already",
              labels);
        webhook_refuse(v, 200, NULL, "webhook-id: acknowledged already");
        return true;
}

void internal_acked(struct internal *in, const struct webhook_request *req,
                    const struct webhook_event *ev)
{
        const char *id = webhook_header(req, "webhook-id");
        const char *ts_text = webhook_header(req, "webhook-timestamp");
        int64_t ts_s, from_s, now_s = req->now_ms / 1000;

        (void)ev;
        if (!id || !ts_text || stdwebhooks_parse_timestamp(ts_text, &ts_s) == -1)
                return; /* cannot happen after a successful internal_map() */
        /* A captured request verifies until ts + tolerance (ts was at most now + tolerance);
         * a sender's retry carries a new ts, so the window also runs from the receive time. */
        from_s = ts_s > now_s ? ts_s : now_s;
        if (from_s > now_s + in->tolerance_s)
                from_s = now_s + in->tolerance_s;
        switch (replay_remember(in->replay, id, (from_s + in->tolerance_s) * 1000, req->now_ms)) {
        case 1:
                count(in, "liveflow_receiver_webhook_replay_evictions_total",
                      "webhook-ids forgotten before their window ended (LIVEFLOW_WEBHOOK_REPLAY_MAX)",
                      NULL);
                break;
        case -1:
                log_warn(req->trace_id, "out of memory: webhook-id not remembered against replays");
                break;
        default:
                break;
        }
        metric_set(in->replay_entries, (long long)replay_count(in->replay));
}

/* ------------------------------------------------------------ field checks */

/*
 * 1..max characters (field_limits.h: the width of its column), no control characters (UTF-8
 * validity is jansson's or the caller's check).
 */
bool internal_is_clean_id(const char *s, size_t len, size_t max)
{
        if (len == 0 || !field_fits(s, len, max))
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c < 0x20 || c == 0x7f)
                        return false;
        }
        return true;
}

static bool is_in_set(const char *s, const char *const set[])
{
        for (size_t i = 0; set[i]; i++)
                if (strcmp(s, set[i]) == 0)
                        return true;
        return false;
}

/* obj[name], NULL when absent. */
const cJSON *internal_member(const cJSON *obj, const char *name)
{
        return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
}

bool internal_is_integer_between(const cJSON *value, long long min, long long max)
{
        int64_t n;

        /* Only a JSON integer: 100.0 or "100" is refused, money is never rounded or parsed. */
        return jsonfast_integer(value, &n) && n >= min && n <= max;
}

/* Sets p[to] to the text s; true. */
static bool set_text(struct payload *p, const char *to, const char *s)
{
        payload_set_text(p, to, s, strlen(s));
        return true;
}

/* Sets p[to] to an integer internal_is_integer_between() accepted; true. */
static bool set_integer(struct payload *p, const char *to, const cJSON *value)
{
        int64_t n = 0;

        jsonfast_integer(value, &n);
        payload_set_int(p, to, n);
        return true;
}

/*
 * An id field: a JSON string of 1..max characters without control characters, or a JSON
 * integer, which means its decimal text (platforms with BIGINT ids send them as numbers).
 * @returns the text (the string's own, or the digits in buf), or NULL when value is neither.
 */
static const char *id_text(const cJSON *value, size_t max, char digits[24])
{
        int64_t n;

        if (jsonfast_integer(value, &n)) {
                snprintf(digits, 24, "%" PRId64, n);
                return digits;
        }
        if (!cJSON_IsString(value) ||
            !internal_is_clean_id(value->valuestring, strlen(value->valuestring), max))
                return NULL;
        return value->valuestring;
}

bool internal_id_text(const cJSON *value, size_t max, json_t **out)
{
        char digits[24];
        const char *s = id_text(value, max, digits);

        if (!s)
                return false;
        *out = json_string(s);
        return true;
}

/*
 * Checks one present field: false with the reason (what was expected) in why, else true with
 * its value set in p (a set that fails marks p, which the caller reports).
 */
static bool convert(const struct internal *in, const struct field *f, const cJSON *value,
                    struct payload *p, char *why, size_t why_size)
{
        const char *s = cJSON_GetStringValue(value), *id;
        char digits[24];

        switch (f->kind) {
        case FIELD_ID:
                if ((id = id_text(value, BODY_ID_MAX, digits)))
                        return set_text(p, f->to, id);
                snprintf(why, why_size,
                         "expected a string of 1 to %d characters without control characters, "
                         "or an integer",
                         BODY_ID_MAX);
                return false;
        case FIELD_AMOUNT:
                if (internal_is_integer_between(value, 1, in->max_amount))
                        return set_integer(p, f->to, value);
                snprintf(why, why_size, "expected an integer from 1 to %lld (minor units)",
                         in->max_amount);
                return false;
        case FIELD_COUNT:
                if (internal_is_integer_between(value, 1, GIFT_COUNT_MAX))
                        return set_integer(p, f->to, value);
                snprintf(why, why_size, "expected an integer from 1 to %lld", GIFT_COUNT_MAX);
                return false;
        case FIELD_TIME_MS:
                if (internal_is_integer_between(value, TS_MIN_MS, TS_MAX_MS))
                        return set_integer(p, f->to, value);
                snprintf(why, why_size, "expected Unix milliseconds, an integer from %lld to %lld",
                         TS_MIN_MS, TS_MAX_MS);
                return false;
        case FIELD_GENDER:
                if (s && is_in_set(s, genders))
                        return set_text(p, f->to, s);
                snprintf(why, why_size, "expected male, female or unknown");
                return false;
        case FIELD_AUDIENCE_TYPE:
                if (s && is_in_set(s, audience_types))
                        return set_text(p, f->to, s);
                snprintf(why, why_size, "expected registered or guest");
                return false;
        }
        snprintf(why, why_size, "unknown field kind");
        return false;
}

/*
 * Checks every field of the table in obj and copies it, converted, into payload: a struct
 * payload, written as Avro straight from it (codec_encode_direct()).
 */
static int read_fields(struct internal *in, const char *endpoint, const cJSON *obj,
                       const struct field *fields, size_t n, struct payload *payload,
                       struct webhook_verdict *v)
{
        for (size_t i = 0; i < n; i++) {
                const struct field *f = &fields[i];
                const cJSON *value = internal_member(obj, f->name);
                char why[128];

                if (!value || cJSON_IsNull(value)) {
                        if (f->is_required)
                                return internal_refuse_field(in, endpoint, f->name, v,
                                                             "%s is missing", f->name);
                        continue;
                }
                if (!convert(in, f, value, payload, why, sizeof(why)))
                        return internal_refuse_field(in, endpoint, f->name, v, "%s: %s", f->name,
                                                     why);
                if (payload->has_failed)
                        return webhook_refuse(v, 500, NULL, "out of memory");
        }
        return 0;
}

/* ------------------------------------------------------------ bodies */

/*
 * The body as a JSON object in *root (the caller frees it). An empty body gives *root NULL
 * when may_be_empty. Duplicate keys are refused: one field must not be read two ways.
 */
int internal_parse_body(struct internal *in, const char *endpoint,
                        const struct webhook_request *req, bool may_be_empty, cJSON **root,
                        struct webhook_verdict *v)
{
        json_error_t jerr;
        int rc;

        *root = NULL;
        if (req->len == 0) {
                if (may_be_empty)
                        return 0;
                return internal_refuse_field(in, endpoint, "body", v,
                                             "body: expected a JSON object");
        }
        if ((rc = jsonfast_parse(req->body, req->len, root, &jerr)) == -2)
                return webhook_refuse(v, 500, NULL, "out of memory");
        if (rc == -1)
                return internal_refuse_field(in, endpoint, "body", v,
                                             "body: malformed JSON at line %d column %d: %s",
                                             jerr.line, jerr.column, jerr.text);
        if (!cJSON_IsObject(*root)) {
                cJSON_Delete(*root);
                *root = NULL;
                return internal_refuse_field(in, endpoint, "body", v,
                                             "body: expected a JSON object");
        }
        return 0;
}

/* The object holding the fields: the body, or its "data" object (Standard Webhooks payload). */
static const cJSON *fields_of(const cJSON *root)
{
        const cJSON *data = internal_member(root, "data");

        return cJSON_IsObject(data) ? data : root;
}

/* event_id = lowercase hex SHA-256 of "<prefix>|<key>". */
static void event_id_of(char out[WEBHOOK_EVENT_ID_LEN + 1], const char *prefix, const char *key)
{
        char text[64 + STDWEBHOOKS_ID_MAX + 1];
        int n = snprintf(text, sizeof(text), "%s|%s", prefix, key);

        /* Keys are at most STDWEBHOOKS_ID_MAX bytes (checked), so nothing is cut. */
        crypto_sha256_hex(text, n < (int)sizeof(text) ? (size_t)n : sizeof(text) - 1, out);
}

static int dup_or_refuse(char **out, const char *s, struct webhook_verdict *v)
{
        if (!(*out = strdup(s)))
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/* A required integer field that read_fields() set. */
static int64_t required_int(const struct payload *p, const char *name)
{
        const struct payload_field *f = payload_get(p, name);

        return f ? f->n : 0;
}

static int map_reward(struct internal *in, const cJSON *obj, struct webhook_event *ev,
                      struct webhook_verdict *v)
{
        struct payload *p = payload_new();

        if (!p)
                return webhook_refuse(v, 500, NULL, "out of memory");
        ev->fields = p; /* owned by ev from here: webhook_event_fini() frees it on failure */
        if (read_fields(in, "rewards", obj, reward_fields,
                        sizeof(reward_fields) / sizeof(reward_fields[0]), p, v) == -1 ||
            dup_or_refuse(&ev->anchor_id, payload_get_text(p, "anchor_id"), v) == -1 ||
            dup_or_refuse(&ev->room_id, payload_get_text(p, "room_id"), v) == -1)
                return -1;
        event_id_of(ev->event_id, "internal|reward", payload_get_text(p, "tip_id"));
        ev->vendor = "internal";
        ev->event_type = "reward";
        ev->topic = TOPIC_REWARD;
        ev->payload_name = "Reward";
        ev->key = ev->anchor_id;
        ev->event_time_ms = required_int(p, "ts_ms");
        return 0;
}

static int map_withdrawal(struct internal *in, const cJSON *obj, int64_t now_ms,
                          struct webhook_event *ev, struct webhook_verdict *v)
{
        struct payload *p = payload_new();

        if (!p)
                return webhook_refuse(v, 500, NULL, "out of memory");
        ev->fields = p;
        if (read_fields(in, "withdrawals", obj, withdrawal_fields,
                        sizeof(withdrawal_fields) / sizeof(withdrawal_fields[0]), p, v) == -1 ||
            dup_or_refuse(&ev->anchor_id, payload_get_text(p, "anchor_id"), v) == -1)
                return -1;
        event_id_of(ev->event_id, "internal|withdrawal", payload_get_text(p, "request_id"));
        ev->vendor = "internal";
        ev->event_type = "withdrawal";
        ev->topic = TOPIC_WITHDRAWAL;
        ev->payload_name = "Withdrawal";
        ev->key = ev->anchor_id;
        ev->event_time_ms = now_ms; /* the body has no time of its own */
        return 0;
}

static int map_body(struct internal *in, enum internal_endpoint ep,
                    const struct webhook_request *req, struct webhook_event *ev,
                    struct webhook_verdict *v)
{
        const char *endpoint = endpoint_name(ep);
        cJSON *root;
        int rc;

        if (internal_parse_body(in, endpoint, req, false, &root, v) == -1)
                return -1;
        if (ep == INTERNAL_REWARDS)
                rc = map_reward(in, fields_of(root), ev, v);
        else
                rc = map_withdrawal(in, fields_of(root), req->now_ms, ev, v);
        cJSON_Delete(root);
        return rc;
}

/* ------------------------------------------------------------ the verb */

static int map_endpoint(struct internal *in, enum internal_endpoint ep,
                        const struct webhook_request *req, struct webhook_event *ev,
                        struct webhook_verdict *v)
{
        int rc;

        if (!stdwebhooks_secret_count(in->sw))
                return webhook_refuse(v, 503, NULL,
                                      "no webhook secret is configured (LIVEFLOW_HMAC_SECRET)");
        if (authenticate(in, req, v) == -1)
                return -1;
        /* The body and path first: a signed command moved to another path is a 400. */
        if (ep == INTERNAL_ADMIN)
                rc = internal_admin_map(in, req, ev, v);
        else
                rc = map_body(in, ep, req, ev, v);
        if (rc == 0 && is_replay(in, endpoint_name(ep), req, v))
                rc = -1;
        if (rc == -1)
                webhook_event_fini(ev);
        return rc;
}

int internal_verify(struct internal *in, const char *endpoint, const struct webhook_request *req,
                    struct webhook_verdict *v)
{
        if (!stdwebhooks_secret_count(in->sw))
                return webhook_refuse(v, 503, NULL,
                                      "no webhook secret is configured (LIVEFLOW_HMAC_SECRET)");
        if (authenticate(in, req, v) == -1 || is_replay(in, endpoint, req, v))
                return -1;
        return 0;
}

int internal_map_rewards(struct internal *in, const struct webhook_request *req,
                         struct webhook_event *ev, struct webhook_verdict *v)
{
        return map_endpoint(in, INTERNAL_REWARDS, req, ev, v);
}

int internal_map_withdrawals(struct internal *in, const struct webhook_request *req,
                             struct webhook_event *ev, struct webhook_verdict *v)
{
        return map_endpoint(in, INTERNAL_WITHDRAWALS, req, ev, v);
}

int internal_map_admin(struct internal *in, const struct webhook_request *req,
                       struct webhook_event *ev, struct webhook_verdict *v)
{
        return map_endpoint(in, INTERNAL_ADMIN, req, ev, v);
}
