/*
 * alibaba.c: turns an Alibaba Cloud ApsaraVideo Live callback into a liveflow event. Facts
 * from vendor-callbacks §4: ingest (publish, publish_done) is a GET whose fields are query
 * parameters, everything else a POST with a JSON body; the signature covers the domain and the
 * timestamp, not the body or the query; there is no event id; the auth key changes only for
 * new pushes, so two keys are valid during a rotation.
 */
#include "alibaba.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "contract.h"
#include "crypto.h"
#include "field_limits.h"
#include "fields.h"
#include "settings.h"
#include "strlist.h"

#define MD5_HEX_LEN      32
#define STREAM_MAX_CHARS FIELD_MAX_STREAM_ID
#define ANCHOR_MAX_CHARS FIELD_MAX_ANCHOR_ID

struct alibaba {
        char **keys;
        size_t key_cnt;
        char **domains;
        size_t domain_cnt;
        int64_t max_skew_ms;
};

/* ------------------------------------------------------------ the endpoint */

void alibaba_destroy(struct alibaba *al)
{
        if (!al)
                return;
        strlist_free(al->keys, al->key_cnt);
        strlist_free(al->domains, al->domain_cnt);
        free(al);
}

struct alibaba *alibaba_new(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct alibaba *al = calloc(1, sizeof(*al));

        if (!al) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        al->max_skew_ms = (s->alibaba_max_skew_s > 0 ? s->alibaba_max_skew_s : 300) * 1000;
        if (strlist_copy(s->alibaba_keys, ALIBABA_KEY_MAX, "LIVEFLOW_ALIBABA_KEY", "entry",
                         &al->keys, &al->key_cnt, errstr, errstr_size) == -1 ||
            strlist_copy(s->alibaba_domains, ALIBABA_DOMAIN_MAX, "LIVEFLOW_ALIBABA_DOMAIN", "entry",
                         &al->domains, &al->domain_cnt, errstr, errstr_size) == -1) {
                alibaba_destroy(al);
                return NULL;
        }
        return al;
}

int alibaba_check_config(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct alibaba *al = alibaba_new(s, errstr, errstr_size);

        alibaba_destroy(al);
        return al ? 0 : -1;
}

size_t alibaba_key_count(const struct alibaba *al)
{
        return al ? al->key_cnt : 0;
}

/* ------------------------------------------------------------ signature */

/* One (domain, key) pair against the signature; both are tried for every pair (timing). */
static bool pair_matches(const char *domain, size_t domain_len, const char *ts, const char *key,
                         const char *got)
{
        char *msg = NULL, md5[MD5_HEX_LEN + 1];
        int len = asprintf(&msg, "%.*s|%s|%s", (int)domain_len, domain, ts, key);
        bool is_match;

        if (len < 0)
                return false;
        crypto_md5_hex(msg, (size_t)len, md5);
        explicit_bzero(msg, (size_t)len);
        free(msg);
        is_match = crypto_hex_equal_nocase(md5, got, MD5_HEX_LEN);
        return is_match;
}

static bool domain_matches(const struct alibaba *al, const char *domain, size_t len, const char *ts,
                           const char *got)
{
        bool is_match = false;

        for (size_t k = 0; k < al->key_cnt; k++)
                is_match |= pair_matches(domain, len, ts, al->keys[k], got);
        return is_match;
}

/* The host of a Host header: without a port, brackets of an IPv6 address kept. */
static size_t host_len(const char *host)
{
        const char *colon = strrchr(host, ':');

        if (colon && !strchr(colon, ']') && (host[0] != '[' || colon[-1] == ']'))
                return (size_t)(colon - host);
        return strlen(host);
}

/* An ingest callback: a GET (a request of unknown method without a body, in tests). */
static bool is_ingest(const struct webhook_request *req)
{
        return req->method ? strcmp(req->method, "POST") != 0 : !req->body;
}

static bool signature_matches(const struct alibaba *al, const struct webhook_request *req,
                              const char *ts, const char *got)
{
        bool is_get = is_ingest(req), is_match = false;
        const char *host = webhook_header(req, "Host"), *app = webhook_query(req, "app");

        for (size_t d = 0; d < al->domain_cnt; d++)
                is_match |= domain_matches(al, al->domains[d], strlen(al->domains[d]), ts, got);
        if (is_get && !al->domain_cnt && app && *app)
                is_match |= domain_matches(al, app, strlen(app), ts, got);
        if (!is_get && host && *host)
                is_match |= domain_matches(al, host, host_len(host), ts, got);
        return is_match;
}

static int verify(const struct alibaba *al, const struct webhook_request *req, int64_t *ts_s,
                  struct webhook_verdict *v)
{
        const char *ts = webhook_header(req, "ALI-LIVE-TIMESTAMP");
        const char *sig = webhook_header(req, "ALI-LIVE-SIGNATURE");
        json_t *ts_text;
        int rc;

        if (!ts || !sig)
                return webhook_refuse(v, 401, "missing", "%s is missing",
                                      ts ? "ALI-LIVE-SIGNATURE" : "ALI-LIVE-TIMESTAMP");
        ts_text = json_string(ts);
        rc = fields_int64(ts_text, ts_s);
        json_decref(ts_text);
        if (rc == -1 || *ts_s <= 0)
                return webhook_refuse(v, 401, "missing",
                                      "ALI-LIVE-TIMESTAMP: expected a Unix time in seconds");
        if (strlen(sig) != MD5_HEX_LEN || !signature_matches(al, req, ts, sig))
                return webhook_refuse(v, 401, "mismatch", "ALI-LIVE-SIGNATURE does not match");
        /* Comparisons against now, so that no huge timestamp can overflow. */
        if (*ts_s < (req->now_ms - al->max_skew_ms) / 1000 ||
            *ts_s > (req->now_ms + al->max_skew_ms) / 1000)
                return webhook_refuse(v, 401, "expired",
                                      "ALI-LIVE-TIMESTAMP is further than %" PRId64 " s from now",
                                      al->max_skew_ms / 1000);
        return 0;
}

/* ------------------------------------------------------------ ids */

static void event_id_of(struct webhook_event *ev, const char *type, const char *key)
{
        char *s = NULL;
        int n = asprintf(&s, "alibaba|%s|%s", type, key);

        if (n < 0) { /* out of memory: an id from the type alone is still deterministic */
                n = 0;
                s = NULL;
        }
        crypto_sha256_hex(s ? s : "", (size_t)n, ev->event_id);
        free(s);
}

/* A compact JSON array of the texts of root's fields (absent ones as ""): a natural key. */
static char *key_of(const json_t *root, const char *const names[])
{
        json_t *parts = json_array();
        char *s;

        for (size_t i = 0; parts && names[i]; i++) {
                char buf[FIELDS_TEXT_INT_MAX];
                const char *t = fields_text(json_object_get(root, names[i]), buf, sizeof(buf));

                json_array_append_new(parts, json_string(t ? t : ""));
        }
        s = parts ? json_dumps(parts, JSON_COMPACT) : NULL;
        json_decref(parts);
        return s;
}

/* The decoded value of key in a query string ("a=1&b=2"); NULL when absent or empty. */
static char *query_value(const char *qs, const char *key)
{
        size_t key_len = strlen(key);

        while (qs && *qs) {
                size_t len = strcspn(qs, "&");

                if (len > key_len + 1 && qs[key_len] == '=' && memcmp(qs, key, key_len) == 0)
                        return fields_form_decode(qs + key_len + 1, len - key_len - 1);
                qs += len;
                if (*qs == '&')
                        qs++;
        }
        return NULL;
}

/* anchor_id and room_id as the ids of the stream's pusher; the room defaults to the anchor. */
static int put_anchor_room(struct webhook_event *ev, char *anchor, char *room,
                           struct webhook_verdict *v)
{
        int rc = webhook_set_id(&ev->anchor_id, anchor, ANCHOR_MAX_CHARS, "anchor_id", v);

        if (rc == 0)
                rc = webhook_set_id(&ev->room_id, room ? room : anchor, ANCHOR_MAX_CHARS, "room_id",
                                    v);
        free(anchor);
        free(room);
        return rc;
}

/* ------------------------------------------------------------ ingest: GET */

/* Every documented ingest parameter, in the order the raw JSON lists them. */
static const char *const ingest_params[] = {"action",  "ip",   "id",     "app",   "appname", "time",
                                            "usrargs", "node", "height", "width", NULL};

/* The query as a JSON object of the documented parameters: the envelope's raw text. */
static int ingest_raw(const struct webhook_request *req, struct webhook_event *ev,
                      struct webhook_verdict *v)
{
        json_t *o = json_object();

        for (size_t i = 0; o && ingest_params[i]; i++) {
                const char *val = webhook_query(req, ingest_params[i]);
                json_t *s = val ? json_string(val) : NULL;

                if (val && !s) {
                        json_decref(o);
                        return webhook_refuse(v, 400, NULL, "%s: not UTF-8", ingest_params[i]);
                }
                if (s)
                        json_object_set_new(o, ingest_params[i], s);
        }
        ev->raw = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!ev->raw)
                return webhook_refuse(v, 500, NULL, "out of memory");
        ev->raw_len = strlen(ev->raw);
        return 0;
}

static int ingest_payload(const struct webhook_request *req, bool is_begin, json_t *p)
{
        if (!is_begin)
                return fields_put_int(p, "close_method", 1);
        return fields_put(p, "client_ip", webhook_query(req, "ip")) ||
               fields_put(p, "app", webhook_query(req, "app")) ||
               fields_put(p, "node", webhook_query(req, "node")) ||
               fields_put(p, "stream_param", webhook_query(req, "usrargs"));
}

static int map_ingest(const struct webhook_request *req, int64_t ts_s, struct webhook_event *ev,
                      struct webhook_verdict *v)
{
        const char *action = webhook_query(req, "action"), *id = webhook_query(req, "id");
        const char *usrargs = webhook_query(req, "usrargs"),
                   *time_text = webhook_query(req, "time");
        bool is_begin = action && strcmp(action, "publish") == 0;
        bool is_end = action && strcmp(action, "publish_done") == 0;
        static const char *const key_names[] = {"app", "appname", "id", "time", NULL};
        json_t *raw;
        int64_t t;
        char *key;

        if (!action || !*action)
                return webhook_refuse(v, 400, NULL, "action is missing");
        if ((is_begin || is_end) && (!id || !*id))
                return webhook_refuse(v, 400, NULL, "id is missing");
        if (ingest_raw(req, ev, v) == -1 ||
            webhook_set_id(&ev->stream_id, id, STREAM_MAX_CHARS, "id", v) ||
            put_anchor_room(ev, query_value(usrargs, "anchor_id"), query_value(usrargs, "room_id"),
                            v))
                return -1;
        raw = json_loadb(ev->raw, ev->raw_len, 0, NULL);
        key = key_of(raw, key_names);
        json_decref(raw);
        event_id_of(ev, action, key ? key : ev->raw);
        free(key);
        raw = json_string(time_text ? time_text : "");
        ev->event_time_ms = fields_int64(raw, &t) == 0 && t > 0 && t < INT64_MAX / 1000
                                    ? t * 1000
                                    : ts_s * 1000;
        json_decref(raw);
        ev->event_type = is_begin ? "stream.begin" : is_end ? "stream.end" : "other";
        ev->topic = is_begin || is_end ? LF_TOPIC_STREAM : LF_TOPIC_OTHER;
        if (!is_begin && !is_end)
                return 0;
        ev->payload_name = is_begin ? "StreamBegin" : "StreamEnd";
        if (!(ev->payload = json_object()) || ingest_payload(req, is_begin, ev->payload) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/* ------------------------------------------------------------ POST bodies */

/* What a POST body is, told by its fields (the bodies carry no type). */
enum post_kind { POST_RECORD_FILE, POST_RECORD_STATUS, POST_AUDIT, POST_SNAPSHOT, POST_OTHER };

static const char *const snapshot_fields[] = {"OssObject", "oss_object", "pic_url", "url", NULL};

static const char *snapshot_url(const json_t *root)
{
        for (size_t i = 0; snapshot_fields[i]; i++) {
                const char *s = json_string_value(json_object_get(root, snapshot_fields[i]));

                if (s && *s)
                        return s;
        }
        return NULL;
}

static enum post_kind kind_of(const json_t *root)
{
        if (json_object_get(root, "uri"))
                return POST_RECORD_FILE;
        if (json_is_array(json_object_get(root, "result")))
                return POST_AUDIT;
        if (json_is_string(json_object_get(root, "event")) &&
            strncmp(json_string_value(json_object_get(root, "event")), "record_", 7) == 0)
                return POST_RECORD_STATUS;
        if (snapshot_url(root))
                return POST_SNAPSHOT;
        return POST_OTHER;
}

static int64_t seconds_ms(const json_t *v)
{
        int64_t s;

        if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 9e15)
                return (int64_t)(json_real_value(v) * 1000);
        return fields_int64(v, &s) == 0 && s > 0 && s < INT64_MAX / 1000 ? s * 1000 : -1;
}

static int fill_record_file(const json_t *root, json_t *p, struct webhook_event *ev,
                            struct webhook_verdict *v)
{
        const char *uri = json_string_value(json_object_get(root, "uri"));
        const json_t *dur = json_object_get(root, "duration");
        int64_t start_ms = seconds_ms(json_object_get(root, "start_time"));
        int64_t stop_ms = seconds_ms(json_object_get(root, "stop_time"));
        char fmt[16];

        if (!uri || !*uri)
                return webhook_refuse(v, 400, NULL, "uri: expected a non-empty string");
        if (fields_put(p, "file_id", uri) || fields_put(p, "video_url", uri) ||
            fields_put(p, "file_format", fields_file_format(uri, fmt, sizeof(fmt))) ||
            (json_is_number(dur) && json_number_value(dur) >= 0 &&
             json_number_value(dur) < 9e15 && /* else no int64: not a duration */
             fields_put_int(p, "duration_s", (int64_t)(json_number_value(dur) + 0.5))) ||
            (start_ms > 0 && fields_put_int(p, "start_time_ms", start_ms)) ||
            (stop_ms > 0 && fields_put_int(p, "end_time_ms", stop_ms)))
                return webhook_refuse(v, 500, NULL, "out of memory");
        if (stop_ms > 0)
                ev->event_time_ms = stop_ms;
        return 0;
}

static int fill_record_status(const json_t *root, json_t *p, struct webhook_event *ev,
                              struct webhook_verdict *v)
{
        (void)ev;
        if (fields_put(p, "record_event", json_string_value(json_object_get(root, "event"))))
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/* block > review > pass: the gravest suggestion of the result items decides. */
static int grade(const char *s)
{
        return !s                         ? -1
               : !strcasecmp(s, "block")  ? 2
               : !strcasecmp(s, "review") ? 1
               : !strcasecmp(s, "pass")   ? 0
                                          : -1;
}

static int fill_audit(const json_t *root, json_t *p, struct webhook_event *ev,
                      struct webhook_verdict *v)
{
        static const char *const names[] = {"Pass", "Review", "Block"};
        const json_t *items = json_object_get(root, "result"), *item, *worst = NULL;
        bool has_text = false;
        const json_t *rate;
        int64_t t;
        size_t i;

        json_array_foreach(items, i, item)
        {
                if (!worst ||
                    grade(json_string_value(json_object_get(item, "suggestion"))) >
                            grade(json_string_value(json_object_get(worst, "suggestion"))))
                        worst = item;
                has_text |= json_array_size(json_object_get(item, "details")) > 0;
        }
        if (!worst || grade(json_string_value(json_object_get(worst, "suggestion"))) < 0)
                return webhook_refuse(
                        v, 400, NULL,
                        "result: expected items with suggestion pass, review or block");
        rate = json_object_get(worst, "rate");
        ev->event_type = has_text ? "audit.audio" : "audit.image";
        if (fields_put(p, "source", has_text ? "alibaba.audio" : "alibaba.image") ||
            fields_put(p, "suggestion",
                       names[grade(json_string_value(json_object_get(worst, "suggestion")))]) ||
            fields_put(p, "label", json_string_value(json_object_get(worst, "label"))) ||
            fields_put(p, "sub_label", json_string_value(json_object_get(worst, "scene"))) ||
            (json_is_number(rate) && json_number_value(rate) >= 0 &&
             json_number_value(rate) <= 100 &&
             fields_put_int(p, "score", (int64_t)(json_number_value(rate) + 0.5))))
                return webhook_refuse(v, 500, NULL, "out of memory");
        if (fields_int64(json_object_get(root, "timestamp"), &t) == 0 && t > 0 &&
            t < INT64_MAX / 1000)
                ev->event_time_ms = t * 1000;
        return 0;
}

static int fill_snapshot(const json_t *root, json_t *p, struct webhook_event *ev,
                         struct webhook_verdict *v)
{
        static const char *const time_fields[] = {"CreateTime", "create_time", "timestamp", NULL};
        int64_t created_ms = -1;

        for (size_t i = 0; time_fields[i] && created_ms <= 0; i++)
                created_ms = seconds_ms(json_object_get(root, time_fields[i]));
        if (created_ms > 0)
                ev->event_time_ms = created_ms;
        if (fields_put(p, "pic_url", snapshot_url(root)) ||
            fields_put_int(p, "create_time_ms", ev->event_time_ms))
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

struct post_mapping {
        const char *event_type;
        const char *topic;
        const char *payload_name;
        const char *const key[6]; /* the natural key's fields; NULL-terminated */
        bool has_anchor;          /* a verdict never carries an anchor of its own */
        int (*fill)(const json_t *root, json_t *p, struct webhook_event *ev,
                    struct webhook_verdict *v);
};

static const struct post_mapping post_mappings[] = {
        [POST_RECORD_FILE] = {"record.file",
                              LF_TOPIC_RECORD,
                              "RecordFile",
                              {"uri", NULL},
                              true,
                              fill_record_file},
        [POST_RECORD_STATUS] = {"record.status",
                                LF_TOPIC_RECORD,
                                "RecordStatus",
                                {"domain", "app", "stream", "event", NULL},
                                true,
                                fill_record_status},
        [POST_AUDIT] = {"audit.audio",
                        LF_TOPIC_AUDIT,
                        "AuditVerdict",
                        {"domain", "app", "stream", "timestamp", NULL},
                        false,
                        fill_audit},
        [POST_SNAPSHOT] = {"snapshot", LF_TOPIC_SNAPSHOT, "Snapshot", {NULL}, true, fill_snapshot},
        [POST_OTHER] = {"other", LF_TOPIC_OTHER, NULL, {NULL}, true, NULL},
};

static char *push_arg(const json_t *root, const char *name, const char *callback_name)
{
        const json_t *args = json_object_get(root, "push_args");
        const char *s = json_string_value(json_object_get(args, name));

        if (!s || !*s)
                s = json_string_value(json_object_get(args, callback_name));
        return s && *s ? strdup(s) : NULL;
}

static int map_post_fields(const json_t *root, int64_t ts_s, struct webhook_event *ev,
                           struct webhook_verdict *v)
{
        enum post_kind kind = kind_of(root);
        const struct post_mapping *m = &post_mappings[kind];
        char buf[FIELDS_TEXT_INT_MAX], *key = NULL, *signed_key = NULL;
        const char *stream = fields_text(json_object_get(root, "stream"), buf, sizeof(buf));

        if (kind != POST_OTHER && (!stream || !*stream))
                return webhook_refuse(v, 400, NULL, "stream is missing");
        if (webhook_set_id(&ev->stream_id, stream, STREAM_MAX_CHARS, "stream", v) == -1 ||
            (m->has_anchor &&
             put_anchor_room(ev, push_arg(root, "anchor_id", "callback_anchor_id"),
                             push_arg(root, "room_id", "callback_room_id"), v) == -1))
                return -1;
        ev->event_time_ms = ts_s * 1000;
        ev->event_type = m->event_type;
        ev->topic = m->topic;
        ev->payload_name = m->payload_name;
        if (m->fill && (!(ev->payload = json_object()) || m->fill(root, ev->payload, ev, v) == -1))
                return ev->payload ? -1 : webhook_refuse(v, 500, NULL, "out of memory");
        /* A status has no time of its own: the signed timestamp tells two sessions apart. */
        key = m->key[0] ? key_of(root, m->key) : json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
        if (key && kind == POST_RECORD_STATUS &&
            asprintf(&signed_key, "%s|%" PRId64, key, ts_s) < 0)
                signed_key = NULL;
        event_id_of(ev, ev->event_type, signed_key ? signed_key : key ? key : "");
        free(signed_key);
        free(key);
        return 0;
}

static int map_post(const struct webhook_request *req, int64_t ts_s, struct webhook_event *ev,
                    struct webhook_verdict *v)
{
        json_t *root;
        int rc;

        if (webhook_json_body(req, &root, v) == -1)
                return -1;
        rc = map_post_fields(root, ts_s, ev, v);
        json_decref(root);
        return rc;
}

/* ------------------------------------------------------------ the verb */

int alibaba_map(const struct alibaba *al, const struct webhook_request *req,
                struct webhook_event *ev, struct webhook_verdict *v)
{
        int64_t ts_s = 0;
        int rc;

        if (!al->key_cnt)
                return webhook_refuse(v, 503, NULL,
                                      "no Alibaba auth key is configured (LIVEFLOW_ALIBABA_KEY)");
        if (verify(al, req, &ts_s, v) == -1)
                return -1;
        ev->vendor = "alibaba";
        rc = is_ingest(req) ? map_ingest(req, ts_s, ev, v) : map_post(req, ts_s, ev, v);
        if (rc == -1) {
                webhook_event_fini(ev);
                return -1;
        }
        ev->key = ev->stream_id;
        return 0;
}
