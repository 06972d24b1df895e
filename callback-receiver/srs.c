/*
 * srs.c: turns an SRS http_hooks body into a liveflow event and decides on_publish. Field
 * facts come from vendor-callbacks §2: SRS signs nothing and never retries, client_id is a
 * number in SRS 3 and a string later, server_id and service_id appear in SRS 4 and 5,
 * `param` keeps its leading '?', and no hook carries a time.
 *
 * The stream id is SRS's `stream`, without vhost and app: liveflow pushes to one app, the
 * admin API names a stream in a URL path (no '/' allowed), and Tencent's stream ids are bare
 * names too, so one anchor's stream keeps its id across vendors. SRS's own `stream_id`
 * (vid-xxxxxxx) is a statistics id that is absent without stats: not used.
 *
 * Anchor lookups run on worker threads (lookup_deadline.c): the receiver asks srs_lookup_wanted()
 * and srs_lookup_start() with the connection suspended, then srs_map() uses the answer.
 */
#include "srs.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "anchor_store.h"
#include "contract.h"
#include "crypto.h"
#include "field_limits.h"
#include "log.h"
#include "lookup_deadline.h"
#include "metrics.h"
#include "settings.h"
#include "strlist.h"

#define TOPIC_STREAM LF_TOPIC_STREAM
#define TOPIC_RECORD LF_TOPIC_RECORD
#define TOPIC_VIEWER LF_TOPIC_VIEWER
#define TOPIC_OTHER  LF_TOPIC_OTHER

const char *const srs_topics[] = {TOPIC_STREAM, TOPIC_RECORD, TOPIC_VIEWER, TOPIC_OTHER, NULL};

#define TEXT_INT_MAX 24 /* decimal text of any int64, with sign and NUL */
#define SECRET_LEN   32 /* hex MD5 */
#define TX_TIME_MAX  16 /* hex digits of a 64-bit time */
#define UTF8_MAX     4  /* bytes per character */

/* Longest ids, in characters: what the consumers' columns hold (sql/001_core.sql). */
#define STREAM_MAX_CHARS 255  /* live_streams.stream_id */
#define CLIENT_MAX_CHARS 128  /* live_streams.vendor_session */
#define ANCHOR_MAX_CHARS 64   /* anchors.anchor_id, live_streams.room_id */
#define URL_MAX_CHARS    2048 /* live_records.video_url */

/* ------------------------------------------------------------ actions */

enum action_kind {
        ACTION_PUBLISH,
        ACTION_UNPUBLISH,
        ACTION_PLAY,
        ACTION_STOP,
        ACTION_DVR,
        ACTION_OTHER
};

#define KEY_PARTS_MAX 8

#define LOOKUP_WORKERS   1   /* the thread that asks the stores (it keeps one skip-after-failure state) */
#define LOOKUP_QUEUE_MAX 256 /* lookups waiting for them; more are unavailable at once */
#define LOOKUP_TIMEOUT_DEFAULT_MS 250

struct action_rule {
        const char *name;
        enum action_kind kind;
        bool is_publisher;                  /* param is the publisher's: anchor_id, room_id */
        const char *key[KEY_PARTS_MAX + 1]; /* the event id's natural key, NULL-terminated */
};

/* One connection's session on one stream; SRS 3 has no server_id or service_id (""). */
#define SESSION_KEY "server_id", "service_id", "client_id", "vhost", "app", "stream"

static const struct action_rule action_rules[] = {
        {"on_publish", ACTION_PUBLISH, true, {SESSION_KEY, NULL}},
        {"on_unpublish", ACTION_UNPUBLISH, true, {SESSION_KEY, NULL}},
        {"on_play", ACTION_PLAY, false, {SESSION_KEY, NULL}},
        {"on_stop", ACTION_STOP, false, {SESSION_KEY, NULL}},
        {"on_dvr", ACTION_DVR, true, {SESSION_KEY, "file", NULL}},
        {"on_hls", ACTION_OTHER, true, {SESSION_KEY, "file", "seq_no", NULL}},
        {"on_forward", ACTION_OTHER, true, {SESSION_KEY, NULL}},
        {"on_connect", ACTION_OTHER, false, {SESSION_KEY, NULL}},
        {"on_close",
         ACTION_OTHER,
         false,
         {"server_id", "service_id", "client_id", "vhost", "app", NULL}},
};

/* The fields liveflow reads must be strings, or absent; these two may also be integers. */
static const char *const text_fields[] = {"ip",        "vhost",      "app",  "stream", "param",
                                          "server_id", "service_id", "file", "url",    "cwd"};
static const char *const int_or_text_fields[] = {"client_id", "seq_no"};

/* What liveflow reads of one hook; the strings are borrowed from the JSON body. */
struct hook {
        const json_t *root;
        const struct action_rule *rule; /* NULL: an action liveflow does not know */
        const char *action;
        const char *stream;    /* NULL when absent or empty */
        const char *client_id; /* NULL when absent or empty */
        const char *param;     /* without its leading '?'; NULL when absent or empty */
        char client_buf[TEXT_INT_MAX];
};

/* ------------------------------------------------------------ decisions */

/* Allows first, then refusals: is_refusal() compares with DENY_BANNED. */
enum decision {
        ALLOW_ACTIVE,
        ALLOW_SUSPENSION_OVER,
        ALLOW_NO_ANCHOR,
        ALLOW_CHECKS_OFF,
        ALLOW_STORES_DOWN,
        DENY_BANNED,
        DENY_SUSPENDED,
        DENY_NO_ANCHOR,
        DENY_STORES_DOWN,
        DENY_SIGNATURE_MISSING,
        DENY_SIGNATURE_MISMATCH,
        DENY_SIGNATURE_EXPIRED,
        DENY_UNSIGNED, /* no LIVEFLOW_SRS_PUBLISH_KEY and unsigned publishing not allowed */
        DECISION_CNT
};

static const char *const decision_labels[DECISION_CNT] = {
        [ALLOW_ACTIVE] = "decision=\"allow\",reason=\"active\"",
        [ALLOW_SUSPENSION_OVER] = "decision=\"allow\",reason=\"suspension_over\"",
        [ALLOW_NO_ANCHOR] = "decision=\"allow\",reason=\"no_anchor\"",
        [ALLOW_CHECKS_OFF] = "decision=\"allow\",reason=\"checks_off\"",
        [ALLOW_STORES_DOWN] = "decision=\"allow\",reason=\"stores_down\"",
        [DENY_BANNED] = "decision=\"deny\",reason=\"banned\"",
        [DENY_SUSPENDED] = "decision=\"deny\",reason=\"suspended\"",
        [DENY_NO_ANCHOR] = "decision=\"deny\",reason=\"no_anchor\"",
        [DENY_STORES_DOWN] = "decision=\"deny\",reason=\"stores_down\"",
        [DENY_SIGNATURE_MISSING] = "decision=\"deny\",reason=\"signature_missing\"",
        [DENY_SIGNATURE_MISMATCH] = "decision=\"deny\",reason=\"signature_mismatch\"",
        [DENY_SIGNATURE_EXPIRED] = "decision=\"deny\",reason=\"signature_expired\"",
        [DENY_UNSIGNED] = "decision=\"deny\",reason=\"no_publish_key\"",
};

static bool is_refusal(enum decision d)
{
        return d >= DENY_BANNED;
}

/* ------------------------------------------------------------ the endpoint */

/* The SRS endpoint. */
struct srs {
        char **keys;
        size_t key_cnt;
        bool is_fail_open;
        bool is_anchor_required;
        bool is_unsigned_allowed; /* LIVEFLOW_SRS_PUBLISH_UNSIGNED: no key is no check */
        struct anchor_store *store;  /* NULL: neither LIVEFLOW_REDIS_URL nor _MYSQL_URL set */
        struct lookup_deadline *deadline; /* the store's lookup, off the HTTP threads */
        struct anchor_lookup lookup; /* fn NULL: anchor checks are off */
        struct metric *decisions[DECISION_CNT];
};

static bool is_set(const char *s)
{
        return s && *s;
}

/* ------------------------------------------------------------ configuration */

static void free_keys(char **keys, size_t cnt)
{
        for (size_t i = 0; i < cnt; i++) {
                explicit_bzero(keys[i], strlen(keys[i]));
                free(keys[i]);
        }
        free(keys);
}

static int add_key(struct srs *srs, const char *key, size_t len, char *errstr, size_t errstr_size)
{
        char **keys;

        if (len > SRS_KEY_MAX) {
                snprintf(errstr, errstr_size,
                         "LIVEFLOW_SRS_PUBLISH_KEY: key %zu is longer than %d bytes",
                         srs->key_cnt + 1, SRS_KEY_MAX);
                return -1;
        }
        if (!(keys = realloc(srs->keys, (srs->key_cnt + 1) * sizeof(*keys)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        srs->keys = keys;
        if (!(keys[srs->key_cnt] = strndup(key, len))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        srs->key_cnt++;
        return 0;
}

/* strlist_each()'s view of add_key(). */
struct key_adder {
        struct srs *srs;
        char *errstr;
        size_t errstr_size;
};

static int add_listed_key(const char *key, size_t len, void *arg)
{
        struct key_adder *a = arg;

        return add_key(a->srs, key, len, a->errstr, a->errstr_size);
}

/* "k1, k2": comma-separated, blanks around each key ignored, empty entries skipped. */
static int parse_keys(struct srs *srs, const char *list, char *errstr, size_t errstr_size)
{
        struct key_adder adder = {srs, errstr, errstr_size};

        return strlist_each(list, add_listed_key, &adder);
}

int srs_check_config(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct srs probe = {0}; /* only its key list is used */
        int rc = parse_keys(&probe, s->srs_publish_keys, errstr, errstr_size);

        free_keys(probe.keys, probe.key_cnt);
        return rc == -1 ? -1 : anchor_store_check_config(s, errstr, errstr_size);
}

static void register_metrics(struct srs *srs, struct metrics *metrics)
{
        for (int d = 0; d < DECISION_CNT; d++)
                srs->decisions[d] = metrics_counter(
                        metrics, "liveflow_receiver_srs_publish_decisions_total",
                        "SRS on_publish authorizations by decision and reason", decision_labels[d]);
}

/* Says at startup which on_publish checks are off, when the SRS endpoint is enabled. */
static void log_checks(const struct srs *srs, const struct settings *s)
{
        if (!is_set(s->srs_token))
                return;
        if (!srs->key_cnt && srs->is_unsigned_allowed)
                log_warn(NULL, "srs: LIVEFLOW_SRS_PUBLISH_KEY is not set and "
                               "LIVEFLOW_SRS_PUBLISH_UNSIGNED=1: on_publish trusts the anchor_id "
                               "any publisher writes into its push URL");
        else if (!srs->key_cnt)
                log_warn(NULL, "srs: LIVEFLOW_SRS_PUBLISH_KEY is not set: every on_publish is "
                               "refused (set it, or LIVEFLOW_SRS_PUBLISH_UNSIGNED=1)");
        if (!srs->lookup.fn)
                log_warn(NULL, "srs: neither LIVEFLOW_REDIS_URL nor LIVEFLOW_MYSQL_URL is set: "
                               "on_publish does not check the anchor's status");
}

struct srs *srs_new(const struct settings *s, struct metrics *metrics, char *errstr,
                    size_t errstr_size)
{
        struct srs *srs = calloc(1, sizeof(*srs));

        if (!srs) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        srs->is_fail_open = s->srs_fail_open != 0;
        srs->is_anchor_required = s->srs_require_anchor != 0;
        srs->is_unsigned_allowed = s->srs_publish_unsigned != 0;
        if (parse_keys(srs, s->srs_publish_keys, errstr, errstr_size) == -1 ||
            !(srs->store = anchor_store_new(s, metrics, errstr, errstr_size)))
                goto fail;
        if (anchor_store_is_configured(srs->store)) {
                struct anchor_lookup inner = anchor_store_lookup(srs->store);

                /* settings_load() never gives 0; a struct settings made by hand (a test) may. */
                int timeout_ms = s->srs_lookup_timeout_ms > 0 ? (int)s->srs_lookup_timeout_ms
                                                              : LOOKUP_TIMEOUT_DEFAULT_MS;

                if (!(srs->deadline = lookup_deadline_new(&inner, timeout_ms,
                                                          LOOKUP_WORKERS, LOOKUP_QUEUE_MAX,
                                                          metrics))) {
                        snprintf(errstr, errstr_size, "cannot start the anchor lookup threads");
                        goto fail;
                }
                srs->lookup = lookup_deadline_lookup(srs->deadline);
        }
        register_metrics(srs, metrics);
        log_checks(srs, s);
        return srs;

fail:
        srs_destroy(srs);
        return NULL;
}

void srs_destroy(struct srs *srs)
{
        if (!srs)
                return;
        lookup_deadline_destroy(srs->deadline); /* its workers use the store */
        anchor_store_destroy(srs->store);
        free_keys(srs->keys, srs->key_cnt);
        free(srs);
}

void srs_set_lookup(struct srs *srs, const struct anchor_lookup *lookup)
{
        srs->lookup = lookup ? *lookup : (struct anchor_lookup){0};
}

/* ------------------------------------------------------------ reading fields */

/* A string as it is, an integer as its decimal text (in buf); NULL for anything else. */
static const char *read_text(const json_t *v, char *buf, size_t size)
{
        if (json_is_string(v))
                return json_string_value(v);
        if (json_is_integer(v)) {
                snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                return buf;
        }
        return NULL;
}

/* A field that must be text when present: NULL when absent, null or empty. */
static const char *text_of(const json_t *root, const char *name)
{
        const char *s = json_string_value(json_object_get(root, name));

        return s && *s ? s : NULL;
}

/* Characters of a UTF-8 string (jansson has validated it). */
static size_t utf8_chars(const char *s)
{
        size_t n = 0;

        for (; *s; s++)
                n += ((unsigned char)*s & 0xC0) != 0x80;
        return n;
}

/* A field of another type than liveflow reads is named, null being the same as absent. */
static int check_types(const json_t *root, struct webhook_verdict *v)
{
        for (size_t i = 0; i < sizeof(text_fields) / sizeof(text_fields[0]); i++) {
                const json_t *f = json_object_get(root, text_fields[i]);

                if (f && !json_is_null(f) && !json_is_string(f))
                        return webhook_refuse(v, 400, NULL, "%s: expected a string",
                                              text_fields[i]);
        }
        for (size_t i = 0; i < sizeof(int_or_text_fields) / sizeof(int_or_text_fields[0]); i++) {
                const json_t *f = json_object_get(root, int_or_text_fields[i]);

                if (f && !json_is_null(f) && !json_is_string(f) && !json_is_integer(f))
                        return webhook_refuse(v, 400, NULL, "%s: expected a string or an integer",
                                              int_or_text_fields[i]);
        }
        return 0;
}

/* The field, which must be present, non-empty and at most max_chars long. */
static int require_text(const char *name, const char *s, size_t max_chars,
                        struct webhook_verdict *v)
{
        if (!s)
                return webhook_refuse(v, 400, NULL, "%s is missing", name);
        if (utf8_chars(s) > max_chars)
                return webhook_refuse(v, 400, NULL, "%s: longer than %zu characters", name,
                                      max_chars);
        return 0;
}

static const struct action_rule *rule_of(const char *action)
{
        for (size_t i = 0; i < sizeof(action_rules) / sizeof(action_rules[0]); i++)
                if (strcmp(action_rules[i].name, action) == 0)
                        return &action_rules[i];
        return NULL;
}

/* The stream hooks name a stream and the connection; a recording names its file. */
static int check_required(const struct hook *h, struct webhook_verdict *v)
{
        const char *file = text_of(h->root, "file"), *url = text_of(h->root, "url");

        if (!h->rule || h->rule->kind == ACTION_OTHER)
                return 0;
        if (require_text("stream", h->stream, STREAM_MAX_CHARS, v) == -1 ||
            require_text("client_id", h->client_id, CLIENT_MAX_CHARS, v) == -1)
                return -1;
        if (h->rule->kind != ACTION_DVR)
                return 0;
        if (require_text("file", file, URL_MAX_CHARS, v) == -1 ||
            (url && require_text("url", url, URL_MAX_CHARS, v) == -1))
                return -1;
        return 0;
}

static int read_hook(const json_t *root, struct hook *h, struct webhook_verdict *v)
{
        const json_t *action = json_object_get(root, "action");
        const char *param;

        h->root = root;
        if (!action || json_is_null(action))
                return webhook_refuse(v, 400, NULL, "action is missing");
        if (!json_is_string(action) || !*json_string_value(action))
                return webhook_refuse(v, 400, NULL, "action: expected a non-empty string");
        if (check_types(root, v) == -1)
                return -1;
        h->action = json_string_value(action);
        h->rule = rule_of(h->action);
        h->stream = text_of(root, "stream");
        h->client_id =
                read_text(json_object_get(root, "client_id"), h->client_buf, sizeof(h->client_buf));
        if (h->client_id && !*h->client_id)
                h->client_id = NULL;
        /* SRS sends the query string with its '?'; StreamBegin keeps it without, as Tencent does.
         */
        if ((param = text_of(root, "param")) && *param == '?')
                param++;
        h->param = param && *param ? param : NULL;
        if (h->stream && utf8_chars(h->stream) > STREAM_MAX_CHARS)
                return webhook_refuse(v, 400, NULL, "stream: longer than %d characters",
                                      STREAM_MAX_CHARS);
        return check_required(h, v);
}

/* ------------------------------------------------------------ param, the push URL's query */

/* The raw value of key in a query string ("a=1&b=2"), the first if repeated; NULL when absent. */
static const char *query_find(const char *qs, const char *key, size_t *len)
{
        size_t key_len = strlen(key);

        while (qs && *qs) {
                size_t n = strcspn(qs, "&");

                if (n > key_len && qs[key_len] == '=' && memcmp(qs, key, key_len) == 0) {
                        *len = n - key_len - 1;
                        return qs + key_len + 1;
                }
                qs += n;
                qs += *qs == '&';
        }
        return NULL;
}

/* How many times key appears in a query string. */
static int query_count(const char *qs, const char *key)
{
        size_t len;
        int n = 0;

        while (qs && (qs = query_find(qs, key, &len)) != NULL) {
                n++;
                qs += len;
        }
        return n;
}

/*
 * The form-decoded value of key ('+' is a space, %HH a byte); NULL when absent or empty.
 * A value that would decode to a NUL or to invalid UTF-8 is kept as sent. -1: out of memory.
 */
static int query_value(const char *qs, const char *key, char **out)
{
        size_t len = 0, n;
        const char *raw = query_find(qs, key, &len);
        json_t *check;
        char *s;

        *out = NULL;
        if (!raw || len == 0)
                return 0;
        if (!(s = strndup(raw, len)))
                return -1;
        for (char *p = s; *p; p++)
                if (*p == '+')
                        *p = ' ';
        n = MHD_http_unescape(s); /* in place; leaves a malformed %-sequence as it is */
        if (n == 0 || strlen(s) != n || !(check = json_stringn(s, n))) {
                memcpy(s, raw, len);
                s[len] = '\0';
        } else {
                json_decref(check);
        }
        *out = s;
        return 0;
}

/* anchor_id and room_id of the publisher's push URL; the room defaults to the anchor. */
static int read_anchor_room(const struct hook *h, struct webhook_event *ev,
                            struct webhook_verdict *v)
{
        size_t len = 0;

        if (!h->rule || !h->rule->is_publisher || !h->param)
                return 0;
        /* One value, read one way: a repeated or empty id could be read two ways downstream. */
        if (query_count(h->param, "anchor_id") > 1 || query_count(h->param, "room_id") > 1)
                return webhook_refuse(v, 400, NULL, "param: %s is repeated",
                                      query_count(h->param, "anchor_id") > 1 ? "anchor_id"
                                                                             : "room_id");
        if ((query_find(h->param, "anchor_id", &len) && len == 0) ||
            (query_find(h->param, "room_id", &len) && len == 0))
                return webhook_refuse(v, 400, NULL, "param: %s is empty",
                                      query_find(h->param, "anchor_id", &len) && len == 0
                                              ? "anchor_id"
                                              : "room_id");
        if (query_value(h->param, "anchor_id", &ev->anchor_id) == -1 ||
            query_value(h->param, "room_id", &ev->room_id) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        if ((ev->anchor_id && utf8_chars(ev->anchor_id) > ANCHOR_MAX_CHARS) ||
            (ev->room_id && utf8_chars(ev->room_id) > ANCHOR_MAX_CHARS))
                return webhook_refuse(v, 400, NULL, "param: %s longer than %d characters",
                                      ev->room_id && utf8_chars(ev->room_id) > ANCHOR_MAX_CHARS
                                              ? "room_id"
                                              : "anchor_id",
                                      ANCHOR_MAX_CHARS);
        if (!ev->room_id && ev->anchor_id && !(ev->room_id = strdup(ev->anchor_id)))
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/* ------------------------------------------------------------ anti-leech signature */

/* txTime: 1 to 16 hex digits, the Unix time the push URL expires. */
static int parse_tx_time(const char *s, size_t len, uint64_t *out)
{
        uint64_t t = 0;

        if (len == 0 || len > TX_TIME_MAX)
                return -1;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                int digit = c >= '0' && c <= '9'   ? c - '0'
                            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                   : -1;

                if (digit < 0)
                        return -1;
                t = t << 4 | (uint64_t)digit;
        }
        *out = t;
        return 0;
}

/* Checks every key without stopping at a match, so timing says nothing about which matched. */
static bool secret_matches(const struct srs *srs, const char *stream, const char *anchor_id,
                           const char *tx_time, size_t tx_time_len, const char *secret)
{
        char msg[SRS_KEY_MAX + (STREAM_MAX_CHARS + ANCHOR_MAX_CHARS) * UTF8_MAX + TX_TIME_MAX];
        char md5[SECRET_LEN + 1];
        size_t stream_len = strlen(stream); /* bounded by read_hook() */
        size_t anchor_len = anchor_id ? strlen(anchor_id) : 0; /* by read_anchor_room() */
        bool is_match = false;

        for (size_t i = 0; i < srs->key_cnt; i++) {
                size_t key_len = strlen(srs->keys[i]), n = 0;

                memcpy(msg + n, srs->keys[i], key_len);
                n += key_len;
                memcpy(msg + n, stream, stream_len);
                n += stream_len;
                if (anchor_len)
                        memcpy(msg + n, anchor_id, anchor_len);
                n += anchor_len;
                memcpy(msg + n, tx_time, tx_time_len);
                n += tx_time_len;
                crypto_md5_hex(msg, n, md5);
                is_match |= crypto_hex_equal_nocase(md5, secret, SECRET_LEN);
        }
        explicit_bzero(msg, sizeof(msg));
        return is_match;
}

/*
 * txSecret = MD5(key + stream + anchor_id + txTime), anchor_id decoded ("" when the URL names
 * none) and txTime exactly as sent, and txTime not past. The anchor id is signed so that a
 * publisher cannot choose whose stream it is: without it a banned anchor could name another.
 */
static int check_signature(const struct srs *srs, const struct hook *h, const char *anchor_id,
                           int64_t now_ms, enum decision *d, struct webhook_verdict *v)
{
        size_t secret_len = 0, time_len = 0;
        const char *secret = query_find(h->param, "txSecret", &secret_len);
        const char *tx_time = query_find(h->param, "txTime", &time_len);
        int64_t now_s = now_ms / 1000;
        uint64_t expiry;

        if (!secret || !tx_time) {
                *d = DENY_SIGNATURE_MISSING;
                return webhook_refuse(v, 403, "missing", "param: %s is missing",
                                      secret ? "txTime" : "txSecret");
        }
        if (parse_tx_time(tx_time, time_len, &expiry) == -1) {
                *d = DENY_SIGNATURE_MISSING;
                return webhook_refuse(v, 403, "missing", "param: txTime: expected a hex Unix time");
        }
        if (secret_len != SECRET_LEN ||
            !secret_matches(srs, h->stream, anchor_id, tx_time, time_len, secret)) {
                *d = DENY_SIGNATURE_MISMATCH;
                return webhook_refuse(v, 403, "mismatch", "param: txSecret does not match");
        }
        if (now_s > 0 && expiry < (uint64_t)now_s) {
                *d = DENY_SIGNATURE_EXPIRED;
                return webhook_refuse(v, 403, "expired", "param: txTime expired %" PRIu64 " s ago",
                                      (uint64_t)now_s - expiry);
        }
        return 0;
}

/* ------------------------------------------------------------ the on_publish decision */

static enum decision judge(const struct anchor_record *a, int64_t now_ms)
{
        switch (a->status) {
        case ANCHOR_BANNED:
                return DENY_BANNED;
        case ANCHOR_SUSPENDED:
                /* A suspension with no recorded end lasts until it is lifted. */
                return a->suspended_until_ms == 0 || a->suspended_until_ms > now_ms
                               ? DENY_SUSPENDED
                               : ALLOW_SUSPENSION_OVER;
        case ANCHOR_ACTIVE:
                break;
        }
        return ALLOW_ACTIVE;
}

static enum decision decide_anchor(const struct srs *srs, const struct webhook_request *req,
                                   const char *anchor_id, struct anchor_record *a)
{
        if (!anchor_id)
                return srs->is_anchor_required ? DENY_NO_ANCHOR : ALLOW_NO_ANCHOR;
        if (!srs->lookup.fn)
                return ALLOW_CHECKS_OFF;
        if (req->anchor_answer && strcmp(req->anchor_answer->anchor_id, anchor_id) == 0) {
                if (req->anchor_answer->result != ANCHOR_LOOKUP_FOUND)
                        return srs->is_fail_open ? ALLOW_STORES_DOWN : DENY_STORES_DOWN;
                *a = req->anchor_answer->record;
                return judge(a, req->now_ms);
        }
        if (srs->lookup.fn(srs->lookup.ctx, anchor_id, req->trace_id, a) == ANCHOR_LOOKUP_FOUND)
                return judge(a, req->now_ms);
        return srs->is_fail_open ? ALLOW_STORES_DOWN : DENY_STORES_DOWN;
}

/* The refusal of an anchor decision (a signature refusal is written by check_signature()). */
static int refuse_anchor(enum decision d, const char *anchor_id, const struct anchor_record *a,
                         struct webhook_verdict *v)
{
        switch (d) {
        case DENY_BANNED:
                return webhook_refuse(v, 403, NULL, "anchor %s is banned", anchor_id);
        case DENY_SUSPENDED:
                if (a->suspended_until_ms)
                        return webhook_refuse(v, 403, NULL,
                                              "anchor %s is suspended until %" PRId64 " (Unix ms)",
                                              anchor_id, a->suspended_until_ms);
                return webhook_refuse(v, 403, NULL, "anchor %s is suspended", anchor_id);
        case DENY_NO_ANCHOR:
                return webhook_refuse(v, 400, NULL, "param: anchor_id is missing");
        default: /* DENY_STORES_DOWN: our fault, not the publisher's */
                return webhook_refuse(v, 503, NULL, "anchor status unavailable; retry");
        }
}

static void note_decision(struct srs *srs, const struct webhook_request *req, const struct hook *h,
                          const char *anchor_id, enum decision d, const struct webhook_verdict *v)
{
        metric_add(srs->decisions[d], 1);
        if (d == ALLOW_STORES_DOWN)
                log_warn(req->trace_id,
                         "srs on_publish stream=%s anchor=%s allowed unchecked: no "
                         "anchor status store answered (LIVEFLOW_SRS_FAIL_OPEN=1)",
                         h->stream, anchor_id);
        else if (is_refusal(d))
                log_info(req->trace_id, "srs on_publish stream=%s anchor=%s refused: %s", h->stream,
                         anchor_id ? anchor_id : "-", v->message);
}

/* Anti-leech signature first (it needs no store), then the anchor's status. */
static int authorize_publish(struct srs *srs, const struct webhook_request *req,
                             const struct hook *h, const struct webhook_event *ev,
                             struct webhook_verdict *v)
{
        struct anchor_record a = {.status = ANCHOR_ACTIVE};
        enum decision d;
        int rc = 0;

        if (!srs->key_cnt && !srs->is_unsigned_allowed) {
                d = DENY_UNSIGNED;
                rc = webhook_refuse(v, 403, NULL,
                                    "on_publish: no LIVEFLOW_SRS_PUBLISH_KEY is configured, so the "
                                    "publisher cannot be identified");
        } else if (srs->key_cnt && check_signature(srs, h, ev->anchor_id, req->now_ms, &d, v) == -1)
                rc = -1;
        else if (is_refusal(d = decide_anchor(srs, req, ev->anchor_id, &a)))
                rc = refuse_anchor(d, ev->anchor_id, &a, v);
        note_decision(srs, req, h, ev->anchor_id, d, v);
        return rc;
}

/* The anchor authorize_publish() would look up, or NULL (v is scratch). */
static const char *anchor_to_look_up(const struct srs *srs, const struct webhook_request *req,
                                     const struct hook *h, const struct webhook_event *ev,
                                     struct webhook_verdict *v)
{
        enum decision d;

        if (!h->rule || h->rule->kind != ACTION_PUBLISH || !ev->anchor_id || !srs->lookup.fn ||
            (!srs->key_cnt && !srs->is_unsigned_allowed))
                return NULL;
        if (srs->key_cnt && check_signature(srs, h, ev->anchor_id, req->now_ms, &d, v) == -1)
                return NULL;
        return ev->anchor_id;
}

int srs_lookup_wanted(struct srs *srs, const struct webhook_request *req, char *anchor_id,
                      size_t size)
{
        struct webhook_event ev = {0};
        struct webhook_verdict v = {0};
        struct hook h = {0};
        const char *wanted;
        json_t *root;
        int rc = 0;

        /* Only the deadline's own lookup has workers; a lookup set by hand runs in srs_map(). */
        if (!srs->deadline || srs->lookup.ctx != srs->deadline || !req->body || !req->len ||
            (req->method && strcmp(req->method, "GET") == 0) ||
            !(root = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, NULL)))
                return 0;
        if (json_is_object(root) && read_hook(root, &h, &v) == 0 &&
            read_anchor_room(&h, &ev, &v) == 0 &&
            (wanted = anchor_to_look_up(srs, req, &h, &ev, &v)) && strlen(wanted) < size) {
                memcpy(anchor_id, wanted, strlen(wanted) + 1);
                rc = 1;
        }
        webhook_event_fini(&ev);
        json_decref(root);
        return rc;
}

void srs_lookup_start(struct srs *srs, const char *anchor_id, const char *trace_id,
                      struct anchor_answer *ans, void (*done)(void *arg), void *arg)
{
        lookup_deadline_start(srs->deadline, anchor_id, trace_id, ans, done, arg);
}

/* ------------------------------------------------------------ ids */

/* A compact JSON array of the texts of fields (absent ones as ""); NULL when out of memory. */
static char *key_of(const json_t *root, const char *const fields[], const char *prefix)
{
        json_t *parts = json_array();
        char *s = NULL;
        bool is_ok = parts != NULL;

        for (size_t i = 0; is_ok && fields[i]; i++) {
                char buf[TEXT_INT_MAX];
                const char *text = read_text(json_object_get(root, fields[i]), buf, sizeof(buf));

                is_ok = json_array_append_new(parts, json_string(text ? text : "")) == 0;
        }
        if (is_ok) {
                char *array = json_dumps(parts, JSON_COMPACT);

                if (array && asprintf(&s, "%s%s", prefix, array) < 0)
                        s = NULL;
                free(array);
        }
        json_decref(parts);
        return s;
}

/* event_id = SHA-256 of "srs|<action>|<natural key>"; an unknown action's key is its body. */
static int make_event_id(const struct hook *h, struct webhook_event *ev)
{
        char *prefix = NULL, *text;

        if (asprintf(&prefix, "srs|%s|", h->action) < 0)
                return -1;
        if (h->rule) {
                text = key_of(h->root, h->rule->key, prefix);
        } else {
                char *body = json_dumps(h->root, JSON_SORT_KEYS | JSON_COMPACT);

                if (!body || asprintf(&text, "%s%s", prefix, body) < 0)
                        text = NULL;
                free(body);
        }
        free(prefix);
        if (!text)
                return -1;
        crypto_sha256_hex(text, strlen(text), ev->event_id);
        free(text);
        return 0;
}

/* ------------------------------------------------------------ payloads */

/* Sets p[name] to text unless text is NULL. @returns -1 when out of memory. */
static int put(json_t *p, const char *name, const char *text)
{
        return text ? json_object_set_new(p, name, json_string(text)) : 0;
}

static int put_field(json_t *p, const char *name, const json_t *root, const char *field)
{
        return put(p, name, text_of(root, field));
}

/* Each filler returns non-zero when out of memory. */
static int stream_begin(const struct hook *h, json_t *p)
{
        return put(p, "sequence", h->client_id) || put_field(p, "client_ip", h->root, "ip") ||
               put(p, "stream_param", h->param) || put_field(p, "app", h->root, "app") ||
               put_field(p, "node", h->root, "server_id");
}

static int stream_end(const struct hook *h, json_t *p)
{
        return put(p, "sequence", h->client_id) ||
               json_object_set_new(p, "close_method", json_integer(1)); /* ended by the stream */
}

static int viewer(const struct hook *h, json_t *p, const char *action)
{
        return put(p, "action", action) || put(p, "client_id", h->client_id) ||
               put_field(p, "ip", h->root, "ip") ||
               put_field(p, "server_id", h->root, "server_id") ||
               put_field(p, "service_id", h->root, "service_id");
}

/* The container from the file's extension: flv, mp4, ts; m3u8 is "hls". NULL when none. */
static const char *file_format(const char *file, char *buf, size_t size)
{
        const char *base = strrchr(file, '/'), *dot;
        size_t len;

        base = base ? base + 1 : file;
        if (!(dot = strrchr(base, '.')) || dot == base || (len = strlen(dot + 1)) == 0 ||
            len >= size)
                return NULL;
        for (size_t i = 0; i <= len; i++) {
                char c = dot[1 + i];

                if (c &&
                    !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
                        return NULL;
                buf[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        return strcmp(buf, "m3u8") == 0 ? "hls" : buf;
}

/* file_id: SHA-256 of the file's place, [server_id, cwd, file]; video_url: url, else file. */
static int record_file(const struct hook *h, json_t *p)
{
        static const char *const place[] = {"server_id", "cwd", "file", NULL};
        const char *file = text_of(h->root, "file"), *url = text_of(h->root, "url");
        char *key = key_of(h->root, place, "srs|file|"), file_id[65], format[9];

        if (!key)
                return -1;
        crypto_sha256_hex(key, strlen(key), file_id);
        free(key);
        return put(p, "file_id", file_id) || put(p, "video_url", url ? url : file) ||
               put(p, "file_format", file_format(file, format, sizeof(format))) ||
               put(p, "session_key", h->client_id); /* the publishing session's connection */
}

static int fill_payload(const struct hook *h, struct webhook_event *ev)
{
        static const struct {
                const char *event_type, *topic, *payload_name;
        } kinds[] = {
                [ACTION_PUBLISH] = {"stream.begin", TOPIC_STREAM, "StreamBegin"},
                [ACTION_UNPUBLISH] = {"stream.end", TOPIC_STREAM, "StreamEnd"},
                [ACTION_PLAY] = {"viewer.join", TOPIC_VIEWER, "Viewer"},
                [ACTION_STOP] = {"viewer.leave", TOPIC_VIEWER, "Viewer"},
                [ACTION_DVR] = {"record.file", TOPIC_RECORD, "RecordFile"},
                [ACTION_OTHER] = {"other", TOPIC_OTHER, NULL},
        };
        enum action_kind kind = h->rule ? h->rule->kind : ACTION_OTHER;
        json_t *p;
        int rc = 0;

        ev->event_type = kinds[kind].event_type;
        ev->topic = kinds[kind].topic;
        ev->payload_name = kinds[kind].payload_name;
        if (kind == ACTION_OTHER) /* kept, not acted on yet: consumers read the raw body */
                return 0;
        if (!(p = ev->payload = json_object()))
                return -1;
        switch (kind) {
        case ACTION_PUBLISH:
                rc = stream_begin(h, p);
                break;
        case ACTION_UNPUBLISH:
                rc = stream_end(h, p);
                break;
        case ACTION_PLAY:
                rc = viewer(h, p, "join");
                break;
        case ACTION_STOP:
                rc = viewer(h, p, "leave");
                break;
        case ACTION_DVR:
                rc = record_file(h, p);
                break;
        case ACTION_OTHER:
                break;
        }
        return rc ? -1 : 0;
}

/* ------------------------------------------------------------ the verb */

static int map_hook(struct srs *srs, const struct webhook_request *req, const json_t *root,
                    struct webhook_event *ev, struct webhook_verdict *v)
{
        struct hook h = {0};

        if (read_hook(root, &h, v) == -1 || read_anchor_room(&h, ev, v) == -1)
                return -1;
        if (h.stream && !(ev->stream_id = strdup(h.stream)))
                return webhook_refuse(v, 500, NULL, "out of memory");
        ev->vendor = "srs";
        ev->key = ev->stream_id;
        ev->event_time_ms = req->now_ms; /* SRS sends no time */
        if (make_event_id(&h, ev) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        if (h.rule && h.rule->kind == ACTION_PUBLISH &&
            authorize_publish(srs, req, &h, ev, v) == -1)
                return -1;
        if (fill_payload(&h, ev) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/* The query arguments SRS's hls_on_notify URL template may carry ([app], [stream], ...). */
static const char *const notify_args[] = {"action", "vhost", "app", "stream", "ts_url", "param",
                                          NULL};
static const char *const notify_key[] = {"vhost", "app", "stream", "ts_url", NULL};

/*
 * on_hls_notify is a GET (SRS fills the URL template, no body): kept on live.other, with the
 * query's arguments as the envelope's raw JSON. The id joins vhost, app, stream and ts_url,
 * so a retried notify of one segment is one event.
 */
static int map_hls_notify(const struct webhook_request *req, struct webhook_event *ev,
                          struct webhook_verdict *v)
{
        json_t *args = json_object();
        const char *stream = webhook_query(req, "stream");
        char *key = NULL;
        int rc = 0;

        if (!args)
                return webhook_refuse(v, 500, NULL, "out of memory");
        for (size_t i = 0; notify_args[i]; i++) {
                const char *value = webhook_query(req, notify_args[i]);

                if (value)
                        json_object_set_new(args, notify_args[i], json_string(value));
        }
        if (!stream || !*stream || !field_fits(stream, strlen(stream), STREAM_MAX_CHARS))
                rc = webhook_refuse(v, 400, NULL,
                                    "stream: expected 1 to %d characters in the query",
                                    STREAM_MAX_CHARS);
        else if (!(key = key_of(args, notify_key, "srs|on_hls_notify|")) ||
                 !(ev->raw = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS)) ||
                 !(ev->stream_id = strdup(stream)))
                rc = webhook_refuse(v, 500, NULL, "out of memory");
        if (rc == 0) {
                crypto_sha256_hex(key, strlen(key), ev->event_id);
                ev->raw_len = strlen(ev->raw);
                ev->vendor = "srs";
                ev->event_type = "other";
                ev->topic = TOPIC_OTHER;
                ev->key = ev->stream_id;
                ev->event_time_ms = req->now_ms;
        }
        free(key);
        json_decref(args);
        if (rc == -1)
                webhook_event_fini(ev);
        return rc;
}

int srs_map(struct srs *srs, const struct webhook_request *req, struct webhook_event *ev,
            struct webhook_verdict *v)
{
        json_error_t jerr;
        json_t *root;
        int rc;

        if (req->method && strcmp(req->method, "GET") == 0)
                return map_hls_notify(req, ev, v);
        if (!req->body || req->len == 0)
                return webhook_refuse(v, 400, NULL, "body: empty, expected a JSON object");
        /* Duplicate keys are refused: two "action" fields must not be read two ways. */
        if (!(root = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &jerr))) {
                if (json_error_code(&jerr) == json_error_out_of_memory)
                        return webhook_refuse(v, 500, NULL, "out of memory");
                return webhook_refuse(v, 400, NULL, "body: malformed JSON at line %d column %d: %s",
                                      jerr.line, jerr.column, jerr.text);
        }
        if (!json_is_object(root))
                rc = webhook_refuse(v, 400, NULL, "body: expected a JSON object");
        else
                rc = map_hook(srs, req, root, ev, v);
        json_decref(root);
        if (rc == -1)
                webhook_event_fini(ev);
        return rc;
}
