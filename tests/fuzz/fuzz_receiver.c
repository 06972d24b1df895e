/*
 * fuzz_receiver.c: libFuzzer target for what the receiver does with a request's bytes:
 * verification and mapping of every endpoint (Tencent, SRS, rewards, withdrawals, admin,
 * Agora NCS, Alibaba as POST and as GET).
 *
 * Input: one selector byte, then "path_arg \n webhook-id \n webhook-timestamp \n body"
 * (for an Alibaba GET, path_arg is the query string: "action=publish&id=s1&...").
 * Each input runs twice: as given (the refusals: signature, expiry, malformed headers) and
 * correctly signed by the harness (so the fuzzer spends its time in the body parsers). An
 * accepted request must encode into an envelope that the schema takes: a request that maps
 * but cannot be encoded would be a 500 in the receiver, which is a bug. The receiver's encoder
 * (liveflow's own Avro writer) and avro-c's (codec_encode()) must write the same bytes.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agora.h"
#include "alibaba.h"
#include "crypto.h"
#include "encoder.h"
#include "internal.h"
#include "settings.h"
#include "srs.h"
#include "tencent.h"
#include "webhook.h"

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TENCENT_KEY "fuzz-tencent-key"
#define AGORA_KEY   "fuzz-agora-secret"
#define ALI_KEY     "fuzz-alibaba-key"
#define ALI_DOMAIN  "push.fuzz.example"
#define SELECTORS   8 /* tencent, srs, rewards, withdrawals, admin, agora, alibaba POST, GET */

static struct settings settings;
static struct tencent *tencent;
static struct srs *srs;
static struct internal *internal;
static struct encoder *encoder;
static struct codec *codec; /* avro-c's encoder, the reference */
static struct agora *agora;
static struct alibaba *alibaba;

/* The request's headers and query as the harness made them. */
struct fake {
        const char *id, *timestamp, *signature, *token;
        const char *query; /* "a=1&b=2": the Alibaba GET's arguments, not decoded */
        const char *agora_v2, *ali_ts, *ali_sig;
};

/* The value of name in f->query, copied into a per-call buffer; NULL when absent. */
static const char *query_arg(const struct fake *f, const char *name)
{
        static char buf[8][256];
        static unsigned next;
        size_t name_len = strlen(name);
        const char *q = f->query;

        while (q && *q) {
                size_t len = strcspn(q, "&");

                if (len > name_len && q[name_len] == '=' && strncmp(q, name, name_len) == 0) {
                        char *out = buf[next++ % 8];

                        snprintf(out, sizeof(buf[0]), "%.*s", (int)(len - name_len - 1),
                                 q + name_len + 1);
                        return out;
                }
                q += len;
                q += *q == '&';
        }
        return NULL;
}

static const char *fake_lookup(void *ctx, enum webhook_lookup kind, const char *name)
{
        const struct fake *f = ctx;

        if (kind == WEBHOOK_QUERY)
                return strcmp(name, "token") == 0 ? f->token : query_arg(f, name);
        if (strcasecmp(name, "Agora-Signature-V2") == 0)
                return f->agora_v2;
        if (strcasecmp(name, "ALI-LIVE-TIMESTAMP") == 0)
                return f->ali_ts;
        if (strcasecmp(name, "ALI-LIVE-SIGNATURE") == 0)
                return f->ali_sig;
        return fuzz_webhook_header(name, f->id, f->timestamp, f->signature);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        char errstr[256];

        (void)argc;
        (void)argv;
        settings.srs_token = strdup("fuzz-srs-token");
        settings.hmac_secrets = strdup(HMAC_SECRET);
        settings.webhook_tolerance_s = 300;
        settings.webhook_replay_max = 1000;
        settings.max_amount = 100000000;
        settings.agora_secrets = strdup(AGORA_KEY);
        settings.agora_max_age_s = 600;
        settings.alibaba_keys = strdup(ALI_KEY);
        settings.alibaba_domains = strdup(ALI_DOMAIN);
        settings.alibaba_max_skew_s = 300;
        settings.redis_timeout_ms = 10;
        if (!(tencent = tencent_new(TENCENT_KEY, 900, errstr, sizeof(errstr))) ||
            !(srs = srs_new(&settings, NULL, errstr, sizeof(errstr))) ||
            !(internal = internal_new(&settings, NULL, errstr, sizeof(errstr))) ||
            !(agora = agora_new(&settings, errstr, sizeof(errstr))) ||
            !(alibaba = alibaba_new(&settings, errstr, sizeof(errstr))) ||
            !(encoder = encoder_new(errstr, sizeof(errstr))) ||
            !(codec = codec_new(errstr, sizeof(errstr)))) {
                fprintf(stderr, "fuzz_receiver: %s\n", errstr);
                abort();
        }
        return 0;
}

/* What the receiver's encoder wrote, against avro-c's bytes for the same event. */
static void check_same_as_avro_c(const struct webhook_event *ev, const struct envelope *env,
                                 const void *out, size_t out_len)
{
        json_t *fields_json = ev->fields ? payload_to_json(ev->fields) : NULL;
        char errstr[256];
        void *ref = NULL;
        size_t ref_len = 0;

        if (codec_encode(codec, env, ev->payload_name, ev->fields ? fields_json : ev->payload, &ref,
                         &ref_len, errstr, sizeof(errstr)) == -1) {
                fprintf(stderr, "%s: the receiver's encoder took it, avro-c did not: %s\n",
                        ev->event_type, errstr);
                abort();
        }
        if (ref_len != out_len || memcmp(ref, out, out_len) != 0) {
                fprintf(stderr, "%s: the receiver's encoder and avro-c wrote different bytes\n",
                        ev->event_type);
                abort();
        }
        free(ref);
        json_decref(fields_json);
}

/* An accepted request must make an envelope the schema takes. */
static void check_encodes(const struct webhook_event *ev, const char *body, size_t len)
{
        const struct envelope env =
                fuzz_envelope(ev, ev->raw ? ev->raw : body, ev->raw ? ev->raw_len : len);
        char errstr[256];
        void *out = NULL;
        size_t out_len;

        if (!ev->topic || !ev->vendor || !ev->event_type ||
            strlen(ev->event_id) != WEBHOOK_EVENT_ID_LEN) {
                fprintf(stderr, "accepted event without topic, vendor, type or id\n");
                abort();
        }
        if (encoder_encode(encoder, &env, ev->payload_name, ev->fields, ev->payload, &out, &out_len,
                           errstr, sizeof(errstr)) == -1) {
                fprintf(stderr, "accepted %s cannot be encoded: %s\n", ev->event_type, errstr);
                abort();
        }
        check_same_as_avro_c(ev, &env, out, out_len);
        free(out);
}

static void run(unsigned selector, const struct webhook_request *req)
{
        struct webhook_event ev = {0};
        struct webhook_verdict v = {0};
        int rc;

        switch (selector % SELECTORS) {
        case 0:
                rc = tencent_map(tencent, req, &ev, &v);
                break;
        case 1:
                rc = srs_map(srs, req, &ev, &v);
                break;
        case 2:
                rc = internal_map_rewards(internal, req, &ev, &v);
                break;
        case 3:
                rc = internal_map_withdrawals(internal, req, &ev, &v);
                break;
        case 4:
                rc = internal_map_admin(internal, req, &ev, &v);
                break;
        case 5:
                rc = agora_map(agora, req, &ev, &v);
                break;
        default: /* 6: a POST, 7: a GET (req->method says which) */
                rc = alibaba_map(alibaba, req, &ev, &v);
                break;
        }
        /* As the receiver: an event a column could not hold is refused 400, not encoded. */
        if (rc == 0 && webhook_check_limits(&ev, "", &v) == -1) {
                if (v.status != 400)
                        abort();
        } else if (rc == 0) {
                check_encodes(&ev, req->body ? req->body : "", req->len);
        } else if (v.status < 200 || v.status > 599)
                abort(); /* every refusal carries an HTTP status */
        webhook_event_fini(&ev);
}

/* A Tencent body with a fresh t and its sign, when the input is a JSON object. */
static char *tencent_signed(const char *body, size_t len)
{
        json_t *root = json_loadb(body, len, JSON_DECODE_ANY, NULL);
        char t[32], sign[33], keyed[64];
        char *out = NULL;

        if (json_is_object(root)) {
                snprintf(t, sizeof(t), "%lld", NOW_MS / 1000 + 600);
                snprintf(keyed, sizeof(keyed), "%s%s", TENCENT_KEY, t);
                crypto_md5_hex(keyed, strlen(keyed), sign);
                json_object_set_new(root, "t", json_string(t));
                json_object_set_new(root, "sign", json_string(sign));
                out = json_dumps(root, JSON_COMPACT);
        }
        json_decref(root);
        return out;
}

/* An NCS body with a fresh notifyMs and its Agora-Signature-V2, when it is a JSON object. */
static char *agora_signed(const char *body, size_t len, struct fake *f)
{
        static char v2[65];
        json_t *root = json_loadb(body, len, JSON_DECODE_ANY, NULL);
        unsigned char mac[32];
        const void *parts[1];
        size_t lens[1];
        char *out = NULL;

        if (json_is_object(root)) {
                json_object_set_new(root, "notifyMs", json_integer(NOW_MS));
                out = json_dumps(root, JSON_COMPACT);
        }
        json_decref(root);
        if (!out)
                return NULL;
        parts[0] = out;
        lens[0] = strlen(out);
        if (crypto_hmac_sha256(AGORA_KEY, strlen(AGORA_KEY), parts, lens, 1, mac) == 0) {
                for (int i = 0; i < 32; i++)
                        snprintf(v2 + 2 * i, 3, "%02x", mac[i]);
                f->agora_v2 = v2;
        }
        return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char path_arg[320], id[128], timestamp[32], signature[128], ts_now[32];
        const char *p = (const char *)data + (size ? 1 : 0), *end = (const char *)data + size;
        unsigned selector = size ? data[0] : 0;
        struct fake f = {.id = id,
                         .timestamp = timestamp,
                         .signature = signature,
                         .token = "fuzz-srs-token"};
        struct webhook_request req = {.now_ms = NOW_MS,
                                      .path_arg = path_arg,
                                      .trace_id = "fuzz",
                                      .lookup = fake_lookup,
                                      .ctx = &f};

        fuzz_take_line(&p, end, path_arg, sizeof(path_arg));
        fuzz_take_line(&p, end, id, sizeof(id));
        fuzz_take_line(&p, end, timestamp, sizeof(timestamp));
        req.body = p;
        req.len = (size_t)(end - p);
        signature[0] = '\0';

        if (selector % SELECTORS == 7) { /* an Alibaba GET: the query is path_arg, no body */
                f.query = path_arg;
                req.method = "GET";
                req.body = NULL;
                req.len = 0;
        } else if (selector % SELECTORS == 6) {
                req.method = "POST";
        }
        run(selector, &req); /* as given: unsigned, or signed wrong */

        if (selector % SELECTORS == 5) {
                char *body = agora_signed(req.body, req.len, &f);

                if (body) {
                        req.body = body;
                        req.len = strlen(body);
                        run(selector, &req);
                        free(body);
                }
        } else if (selector % SELECTORS >= 6) {
                char text[128], sig[33];

                snprintf(ts_now, sizeof(ts_now), "%lld", NOW_MS / 1000);
                snprintf(text, sizeof(text), ALI_DOMAIN "|%s|" ALI_KEY, ts_now);
                crypto_md5_hex(text, strlen(text), sig);
                f.ali_ts = ts_now;
                f.ali_sig = sig;
                run(selector, &req);
        } else if (selector % SELECTORS == 0) {
                char *body = tencent_signed(req.body, req.len);

                if (body) {
                        req.body = body;
                        req.len = strlen(body);
                        run(selector, &req);
                        free(body);
                }
        } else if (selector % SELECTORS >= 2) {
                /* Standard Webhooks: sign id.timestamp.body with the configured secret. */
                snprintf(ts_now, sizeof(ts_now), "%lld", NOW_MS / 1000);
                f.timestamp = ts_now;
                if (fuzz_webhook_sign(id, ts_now, req.body, req.len, signature,
                                      sizeof(signature)) == 0)
                        run(selector, &req);
        }
        return 0;
}
