/*
 * internal_admin.c: the operators' commands, POST /v1/admin/<resource>/<id>/<action> (close a
 * stream, ban or unban an anchor). The signature covers the body but not the path, so the
 * body must name the command and its target, and both must be the path's; the event id joins
 * the path and the webhook-id.
 */
#include "internal.h"
#include "internal_int.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "field_limits.h"
#include "jsonfast.h"
#include "stdwebhooks.h"

/* An operator's command: POST /v1/admin/<resource>/<id>/<action>. */
struct admin_command {
        bool is_stream; /* the path's id is a stream (else an anchor) */
        const char *resource;
        const char *action;
        const char *id_name; /* how the body and messages name the path's id */
        size_t id_max;       /* its column's width (field_limits.h) */
        const char *event_type;
        const char *topic;
        const char *payload_name;
};

static const struct admin_command admin_commands[] = {
        {true, "streams", "close", "stream_id", FIELD_MAX_STREAM_ID, "stream.close", TOPIC_STREAM,
         "StreamEnd"},
        {false, "anchors", "ban", "anchor_id", FIELD_MAX_ANCHOR_ID, "audit.admin", TOPIC_AUDIT,
         "AuditVerdict"},
        {false, "anchors", "unban", "anchor_id", FIELD_MAX_ANCHOR_ID, "audit.admin", TOPIC_AUDIT,
         "AuditVerdict"},
};

/* ------------------------------------------------------------ admin commands */

/* The command of "<resource>/<id>/<action>"; *id and *id_len locate the id in path. */
static const struct admin_command *find_command(const char *path, const char **id, size_t *id_len)
{
        const char *first = strchr(path, '/'), *last = strrchr(path, '/');

        if (!first || first == last)
                return NULL;
        for (size_t i = 0; i < sizeof(admin_commands) / sizeof(admin_commands[0]); i++) {
                const struct admin_command *c = &admin_commands[i];

                if (strlen(c->resource) == (size_t)(first - path) &&
                    strncmp(path, c->resource, (size_t)(first - path)) == 0 &&
                    strcmp(last + 1, c->action) == 0) {
                        *id = first + 1;
                        *id_len = (size_t)(last - first - 1);
                        return c;
                }
        }
        return NULL;
}

/*
 * An id from a path (libmicrohttpd has already percent-decoded it) or from an admin body:
 * 1..max characters of UTF-8 (jansson's check), no '/', no control characters.
 */
static int read_path_id(struct internal *in, const char *name, const char *s, size_t len,
                        size_t max, char **out, struct webhook_verdict *v)
{
        json_t *check;

        if (memchr(s, '/', len))
                return internal_refuse_field(in, "admin", name, v, "%s: must not contain '/'",
                                             name);
        if (!internal_is_clean_id(s, len, max) || !(check = json_stringn(s, len)))
                return internal_refuse_field(
                        in, "admin", name, v,
                        "%s: expected 1 to %zu characters of UTF-8 without control characters",
                        name, max);
        json_decref(check);
        if (!(*out = strndup(s, len)))
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/* The optional "reason" of an admin body, copied into payload. */
static int read_reason(struct internal *in, const cJSON *body, json_t *payload,
                       struct webhook_verdict *v)
{
        const cJSON *reason = internal_member(body, "reason");

        if (!reason || cJSON_IsNull(reason))
                return 0;
        if (!cJSON_IsString(reason) ||
            !field_fits(reason->valuestring, strlen(reason->valuestring), REASON_MAX))
                return internal_refuse_field(in, "admin", "reason", v,
                                             "reason: expected a string of at most %d characters",
                                             REASON_MAX);
        if (json_object_set_new(payload, "reason",
                                json_stringn(reason->valuestring, strlen(reason->valuestring))) ==
            -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/* A ban may name the stream it was issued from; the event is still keyed by the anchor. */
static int read_body_stream_id(struct internal *in, const cJSON *body, struct webhook_event *ev,
                               struct webhook_verdict *v)
{
        const cJSON *stream = internal_member(body, "stream_id");
        json_t *text = NULL;
        int64_t n;
        int rc;

        if (!stream || cJSON_IsNull(stream))
                return 0;
        if (jsonfast_integer(stream, &n)) {
                if (!internal_id_text(stream, FIELD_MAX_STREAM_ID, &text) || !text)
                        return webhook_refuse(v, 500, NULL, "out of memory");
                rc = read_path_id(in, "stream_id", json_string_value(text),
                                  json_string_length(text), FIELD_MAX_STREAM_ID, &ev->stream_id, v);
                json_decref(text);
                return rc;
        }
        if (!cJSON_IsString(stream))
                return internal_refuse_field(in, "admin", "stream_id", v,
                                             "stream_id: expected a string or an integer");
        return read_path_id(in, "stream_id", stream->valuestring, strlen(stream->valuestring),
                            FIELD_MAX_STREAM_ID, &ev->stream_id, v);
}

/* A ban's optional "until" (Unix s): a suspension of until - now seconds instead of a ban. */
static int read_until(struct internal *in, const cJSON *body, int64_t now_ms, json_t *payload,
                      struct webhook_verdict *v)
{
        const cJSON *until = internal_member(body, "until");
        long long now_s = now_ms / 1000;
        int64_t n = 0;

        if (!until || cJSON_IsNull(until))
                return 0;
        if (!internal_is_integer_between(until, now_s + 1, now_s + SUSPEND_MAX_S))
                return internal_refuse_field(
                        in, "admin", "until", v,
                        "until: expected Unix seconds in the future, at most %lld s "
                        "ahead",
                        SUSPEND_MAX_S);
        jsonfast_integer(until, &n);
        if (json_object_set_new(payload, "suspend_s", json_integer(n - now_s)) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/*
 * The signature covers the body but not the path, so the body must name the command and its
 * target (CONTRACT §2), and both must be the path's: a signed "ban X" can then not be replayed
 * as a close, or as a ban of someone else. id is the path's id, already checked.
 */
static int check_binding(struct internal *in, const struct admin_command *c, const cJSON *body,
                         const char *id, struct webhook_verdict *v)
{
        const cJSON *action = internal_member(body, "action");
        const cJSON *target = internal_member(body, c->id_name);
        json_t *text = NULL;
        bool is_same;

        if (!action || cJSON_IsNull(action))
                return internal_refuse_field(
                        in, "admin", "action", v,
                        "action is missing: the body must name the command (\"%s\")", c->action);
        if (!cJSON_IsString(action) || strcmp(action->valuestring, c->action) != 0)
                return internal_refuse_field(in, "admin", "action", v,
                                             "action: expected \"%s\", the path's command",
                                             c->action);
        if (!target || cJSON_IsNull(target))
                return internal_refuse_field(in, "admin", c->id_name, v,
                                             "%s is missing: the body must name the path's target",
                                             c->id_name);
        if (!internal_id_text(target, c->id_max, &text))
                return internal_refuse_field(
                        in, "admin", c->id_name, v,
                        "%s: expected a string of 1 to %zu characters, or an integer", c->id_name,
                        c->id_max);
        if (!text)
                return webhook_refuse(v, 500, NULL, "out of memory");
        is_same = json_string_length(text) == strlen(id) &&
                  memcmp(json_string_value(text), id, strlen(id)) == 0;
        json_decref(text);
        if (!is_same)
                return internal_refuse_field(in, "admin", c->id_name, v,
                                             "%s: differs from the path's %s", c->id_name,
                                             c->id_name);
        return 0;
}

/* The payload of c: StreamEnd for a close, AuditVerdict for a ban or unban. */
static int admin_payload(struct internal *in, const struct admin_command *c, const cJSON *body,
                         int64_t now_ms, struct webhook_event *ev, struct webhook_verdict *v)
{
        json_t *p = json_object();
        int rc;

        if (!p)
                return webhook_refuse(v, 500, NULL, "out of memory");
        ev->payload = p;
        /* json_object_set_new() takes the value even when it fails, and fails on NULL. */
        if (c->is_stream)
                rc = json_object_set_new(p, "close_method", json_integer(CLOSE_BY_OPERATOR));
        else if ((rc = json_object_set_new(p, "source", json_string("admin"))) == 0)
                rc = json_object_set_new(p, "action", json_string(c->action));
        if (rc == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        if (!c->is_stream && read_body_stream_id(in, body, ev, v) == -1)
                return -1;
        if (!strcmp(c->action, "ban") && read_until(in, body, now_ms, p, v) == -1)
                return -1;
        return read_reason(in, body, p, v);
}

/*
 * event_id = hex SHA-256 of "admin|<path>|<webhook-id>": a webhook-id is one command, and the
 * path is part of it, so one id sent to two paths is never one event with two meanings.
 */
static void admin_event_id(char out[WEBHOOK_EVENT_ID_LEN + 1], const char *path,
                           const char *webhook_id)
{
        char text[16 + 320 + STDWEBHOOKS_ID_MAX];
        int n = snprintf(text, sizeof(text), "admin|%s|%s", path, webhook_id);

        /* The path is shorter than 320 bytes (the receiver's buffer), so nothing is cut. */
        crypto_sha256_hex(text, n < (int)sizeof(text) ? (size_t)n : sizeof(text) - 1, out);
}

int internal_admin_map(struct internal *in, const struct webhook_request *req,
                       struct webhook_event *ev, struct webhook_verdict *v)
{
        const char *path = req->path_arg ? req->path_arg : "";
        const struct admin_command *c;
        const char *id;
        size_t id_len;
        char **target;
        cJSON *body;
        int rc;

        if (!(c = find_command(path, &id, &id_len)))
                return webhook_refuse(v, 404, NULL, "no such admin command");
        target = c->is_stream ? &ev->stream_id : &ev->anchor_id;
        if (read_path_id(in, c->id_name, id, id_len, c->id_max, target, v) == -1 ||
            internal_parse_body(in, "admin", req, false, &body, v) == -1)
                return -1;
        rc = check_binding(in, c, body, *target, v);
        if (rc == 0)
                rc = admin_payload(in, c, body, req->now_ms, ev, v);
        cJSON_Delete(body);
        if (rc == -1)
                return -1;
        admin_event_id(ev->event_id, path, webhook_header(req, "webhook-id"));
        ev->vendor = "admin";
        ev->event_type = c->event_type;
        ev->topic = c->topic;
        ev->payload_name = c->payload_name;
        ev->key = *target; /* a ban and its unban share the anchor's partition, so stay in order */
        ev->event_time_ms = req->now_ms;
        return 0;
}
