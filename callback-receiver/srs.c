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
 *
 * This file makes the endpoint and maps a hook to its event (ids, payloads). Reading a hook's
 * fields and its push URL's query: srs_hook.c. The on_publish decision: srs_publish.c.
 */
#include "srs.h"
#include "srs_int.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anchor_store.h"
#include "contract.h"
#include "crypto.h"
#include "field_limits.h"
#include "fields.h"
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

#define LOOKUP_WORKERS                                                                             \
        1 /* the thread that asks the stores (it keeps one skip-after-failure state) */
#define LOOKUP_QUEUE_MAX          256 /* lookups waiting for them; more are unavailable at once */
#define LOOKUP_TIMEOUT_DEFAULT_MS 250

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

static bool is_set(const char *s)
{
        return s && *s;
}

/* ------------------------------------------------------------ configuration */

/* "k1, k2": comma-separated, blanks around each key ignored, empty entries skipped. */
static int parse_keys(struct srs *srs, const char *list, char *errstr, size_t errstr_size)
{
        return strlist_copy(list, SRS_KEY_MAX, "LIVEFLOW_SRS_PUBLISH_KEY", "key", &srs->keys,
                            &srs->key_cnt, errstr, errstr_size);
}

int srs_check_config(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct srs probe = {0}; /* only its key list is used */
        int rc = parse_keys(&probe, s->srs_publish_keys, errstr, errstr_size);

        strlist_free(probe.keys, probe.key_cnt);
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

                if (!(srs->deadline = lookup_deadline_new(&inner, timeout_ms, LOOKUP_WORKERS,
                                                          LOOKUP_QUEUE_MAX, metrics))) {
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
        strlist_free(srs->keys, srs->key_cnt);
        free(srs);
}

void srs_set_lookup(struct srs *srs, const struct anchor_lookup *lookup)
{
        srs->lookup = lookup ? *lookup : (struct anchor_lookup){0};
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
                const char *text = fields_text(json_object_get(root, fields[i]), buf, sizeof(buf));

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
        return put(p, name, srs_text_of(root, field));
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
        const char *file = srs_text_of(h->root, "file"), *url = srs_text_of(h->root, "url");
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

        if (srs_read_hook(root, &h, v) == -1 || srs_read_anchor_room(&h, ev, v) == -1)
                return -1;
        if (h.stream && !(ev->stream_id = strdup(h.stream)))
                return webhook_refuse(v, 500, NULL, "out of memory");
        ev->vendor = "srs";
        ev->key = ev->stream_id;
        ev->event_time_ms = req->now_ms; /* SRS sends no time */
        if (make_event_id(&h, ev) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        if (h.rule && h.rule->kind == ACTION_PUBLISH &&
            srs_authorize_publish(srs, req, &h, ev, v) == -1)
                return -1;
        if (fill_payload(&h, ev) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/* The query arguments SRS's hls_on_notify URL template may carry ([app], [stream], ...). */
static const char *const notify_args[] = {"action", "vhost", "app", "stream",
                                          "ts_url", "param", NULL};
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
        json_t *root;
        int rc;

        if (req->method && strcmp(req->method, "GET") == 0)
                return map_hls_notify(req, ev, v);
        if (!req->body || req->len == 0)
                return webhook_refuse(v, 400, NULL, "body: empty, expected a JSON object");
        if (webhook_json_body(req, &root, v) == -1) /* one "action" field, one reading */
                return -1;
        rc = map_hook(srs, req, root, ev, v);
        json_decref(root);
        if (rc == -1)
                webhook_event_fini(ev);
        return rc;
}
