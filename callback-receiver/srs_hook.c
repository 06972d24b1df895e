/*
 * srs_hook.c: what liveflow reads of one SRS hook: its action and the rule for it, the
 * fields' types and lengths (against the consumers' columns), and the publisher's anchor and
 * room from the push URL's query (`param`).
 */
#include "srs.h"
#include "srs_int.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "fields.h"

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

/* ------------------------------------------------------------ reading fields */

/* A field that must be text when present: NULL when absent, null or empty. */
const char *srs_text_of(const json_t *root, const char *name)
{
        const char *s = json_string_value(json_object_get(root, name));

        return s && *s ? s : NULL;
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
        if (fields_utf8_chars(s) > max_chars)
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
        const char *file = srs_text_of(h->root, "file"), *url = srs_text_of(h->root, "url");

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

int srs_read_hook(const json_t *root, struct hook *h, struct webhook_verdict *v)
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
        h->stream = srs_text_of(root, "stream");
        h->client_id = fields_text(json_object_get(root, "client_id"), h->client_buf,
                                   sizeof(h->client_buf));
        if (h->client_id && !*h->client_id)
                h->client_id = NULL;
        /* SRS sends the query string with its '?'; StreamBegin keeps it without, as Tencent does.
         */
        if ((param = srs_text_of(root, "param")) && *param == '?')
                param++;
        h->param = param && *param ? param : NULL;
        if (h->stream && fields_utf8_chars(h->stream) > STREAM_MAX_CHARS)
                return webhook_refuse(v, 400, NULL, "stream: longer than %d characters",
                                      STREAM_MAX_CHARS);
        return check_required(h, v);
}

/* ------------------------------------------------------------ param, the push URL's query */

/* The raw value of key in a query string ("a=1&b=2"), the first if repeated; NULL when absent. */
const char *srs_query_find(const char *qs, const char *key, size_t *len)
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

        while (qs && (qs = srs_query_find(qs, key, &len)) != NULL) {
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
        const char *raw = srs_query_find(qs, key, &len);
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
int srs_read_anchor_room(const struct hook *h, struct webhook_event *ev, struct webhook_verdict *v)
{
        size_t len = 0;

        if (!h->rule || !h->rule->is_publisher || !h->param)
                return 0;
        /* One value, read one way: a repeated or empty id could be read two ways downstream. */
        if (query_count(h->param, "anchor_id") > 1 || query_count(h->param, "room_id") > 1)
                return webhook_refuse(v, 400, NULL, "param: %s is repeated",
                                      query_count(h->param, "anchor_id") > 1 ? "anchor_id"
                                                                             : "room_id");
        if ((srs_query_find(h->param, "anchor_id", &len) && len == 0) ||
            (srs_query_find(h->param, "room_id", &len) && len == 0))
                return webhook_refuse(v, 400, NULL, "param: %s is empty",
                                      srs_query_find(h->param, "anchor_id", &len) && len == 0
                                              ? "anchor_id"
                                              : "room_id");
        if (query_value(h->param, "anchor_id", &ev->anchor_id) == -1 ||
            query_value(h->param, "room_id", &ev->room_id) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        if ((ev->anchor_id && fields_utf8_chars(ev->anchor_id) > ANCHOR_MAX_CHARS) ||
            (ev->room_id && fields_utf8_chars(ev->room_id) > ANCHOR_MAX_CHARS))
                return webhook_refuse(v, 400, NULL, "param: %s longer than %d characters",
                                      ev->room_id && fields_utf8_chars(ev->room_id) >
                                                              ANCHOR_MAX_CHARS
                                              ? "room_id"
                                              : "anchor_id",
                                      ANCHOR_MAX_CHARS);
        if (!ev->room_id && ev->anchor_id && !(ev->room_id = strdup(ev->anchor_id)))
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}
