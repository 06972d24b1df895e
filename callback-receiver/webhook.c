/* webhook.c: the vendor-neutral result of reading one callback (see webhook.h). */
#include "webhook.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "field_limits.h"
#include "fields.h"

struct envelope webhook_envelope(const struct webhook_event *ev, long long receive_ms,
                                 const char *trace_id, const void *raw, size_t raw_len)
{
        return (struct envelope){
                .event_id = ev->event_id,
                .vendor = ev->vendor,
                .event_type = ev->event_type,
                .stream_id = ev->stream_id,
                .anchor_id = ev->anchor_id,
                .room_id = ev->room_id,
                .event_time_ms = ev->event_time_ms,
                .receive_time_ms = receive_ms,
                .trace_id = trace_id,
                .raw = raw,
                .raw_len = raw_len,
        };
}

void webhook_event_fini(struct webhook_event *ev)
{
        if (!ev)
                return;
        json_decref(ev->payload);
        payload_destroy(ev->fields);
        free(ev->stream_id);
        free(ev->anchor_id);
        free(ev->room_id);
        free(ev->value);
        free(ev->raw);
        memset(ev, 0, sizeof(*ev));
}

void webhook_batch_fini(struct webhook_batch *b)
{
        for (size_t i = 0; b->items && i < b->n; i++) {
                webhook_event_fini(&b->items[i].ev);
                free(b->items[i].raw);
        }
        free(b->items);
        b->items = NULL;
        b->n = 0;
}

int webhook_refuse(struct webhook_verdict *v, unsigned int status, const char *auth_failure,
                   const char *fmt, ...)
{
        va_list ap;

        v->status = status;
        v->auth_failure = auth_failure;
        va_start(ap, fmt);
        vsnprintf(v->message, sizeof(v->message), fmt, ap);
        va_end(ap);
        return -1;
}

const char *webhook_header(const struct webhook_request *req, const char *name)
{
        return req->lookup ? req->lookup(req->ctx, WEBHOOK_HEADER, name) : NULL;
}

const char *webhook_query(const struct webhook_request *req, const char *name)
{
        return req->lookup ? req->lookup(req->ctx, WEBHOOK_QUERY, name) : NULL;
}

/* -1 with a 400 when s (len bytes) is longer than field's limit; 0 when it fits or has none. */
static int check_one(const char *field, const char *s, size_t len, const char *prefix,
                     struct webhook_verdict *v)
{
        const struct field_limit *f = field_limit_of(field);

        if (!s || !f || field_fits(s, len, f->max_chars))
                return 0;
        return webhook_refuse(v, 400, NULL,
                              "%s%s: longer than %zu characters (the column it is stored in)",
                              prefix, field, f->max_chars);
}

/* "tags" travels as the JSON text of a list of strings: each one is a tag. */
static int check_tags(const char *text, const char *prefix, struct webhook_verdict *v)
{
        json_t *tags = json_loads(text, 0, NULL), *tag;
        size_t i;
        int rc = 0;

        json_array_foreach(tags, i, tag)
        {
                if (rc == 0 && json_is_string(tag))
                        rc = check_one("tag", json_string_value(tag), json_string_length(tag),
                                       prefix, v);
        }
        json_decref(tags);
        return rc;
}

/* name is "tags"; asked of every text field, so most names are ruled out on their first byte. */
static bool is_tags(const char *name)
{
        return name[0] == 't' && strcmp(name, "tags") == 0;
}

const char *webhook_payload_text(const struct webhook_event *ev, const char *name)
{
        if (ev->fields)
                return payload_get_text(ev->fields, name);
        return json_string_value(json_object_get(ev->payload, name));
}

/* The text of an envelope id or a payload field of ev; NULL when absent or not text. */
static const char *event_text(const struct webhook_event *ev, const char *name)
{
        if (strcmp(name, "stream_id") == 0)
                return ev->stream_id;
        if (strcmp(name, "room_id") == 0)
                return ev->room_id;
        return webhook_payload_text(ev, name);
}

/*
 * The audience role (live.viewer, live.interaction) keeps a viewer's ids in byte buffers
 * (consumers/audience_batch.h): there they must fit in bytes as well as in characters.
 */
static int check_audience_bytes(const struct webhook_event *ev, const char *prefix,
                                struct webhook_verdict *v)
{
        static const struct {
                const char *field;
                size_t max_bytes;
        } bytes[] = {{"stream_id", 255}, {"room_id", 64}, {"client_id", 128}, {"audience_id", 128}};
        const bool is_audience = ev->topic && (strcmp(ev->topic, LF_TOPIC_VIEWER) == 0 ||
                                               strcmp(ev->topic, LF_TOPIC_INTERACTION) == 0);

        for (size_t i = 0; is_audience && i < sizeof(bytes) / sizeof(bytes[0]); i++) {
                const char *s = event_text(ev, bytes[i].field);

                if (s && strlen(s) > bytes[i].max_bytes)
                        return webhook_refuse(v, 400, NULL,
                                              "%s%s: longer than %zu bytes (what the audience "
                                              "role can keep)",
                                              prefix, bytes[i].field, bytes[i].max_bytes);
        }
        return 0;
}

/* The texts of a payload without jansson, in the order they were set (as a JSON object's). */
static int check_fields(const struct payload *p, const char *prefix, struct webhook_verdict *v)
{
        for (size_t i = 0; p && i < p->n; i++) {
                const struct payload_field *f = &p->f[i];

                if (f->kind != PAYLOAD_TEXT)
                        continue;
                if (is_tags(f->name)
                            ? check_tags(payload_field_text(p, f), prefix, v) == -1
                            : check_one(f->name, payload_field_text(p, f), f->len, prefix, v) == -1)
                        return -1;
        }
        return 0;
}

int webhook_check_limits(const struct webhook_event *ev, const char *prefix,
                         struct webhook_verdict *v)
{
        const char *name;
        json_t *value;

        if ((ev->stream_id &&
             check_one("stream_id", ev->stream_id, strlen(ev->stream_id), prefix, v) == -1) ||
            (ev->anchor_id &&
             check_one("anchor_id", ev->anchor_id, strlen(ev->anchor_id), prefix, v) == -1) ||
            (ev->room_id &&
             check_one("room_id", ev->room_id, strlen(ev->room_id), prefix, v) == -1))
                return -1;
        if (check_audience_bytes(ev, prefix, v) == -1)
                return -1;
        if (check_fields(ev->fields, prefix, v) == -1)
                return -1;
        json_object_foreach(ev->payload, name, value)
        {
                if (!json_is_string(value))
                        continue;
                if (is_tags(name) ? check_tags(json_string_value(value), prefix, v) == -1
                                  : check_one(name, json_string_value(value),
                                              json_string_length(value), prefix, v) == -1)
                        return -1;
        }
        return 0;
}

int webhook_set_id(char **dst, const char *s, size_t max_chars, const char *what,
                   struct webhook_verdict *v)
{
        if (!s || !*s)
                return 0;
        if (fields_utf8_chars(s) > max_chars)
                return webhook_refuse(v, 400, NULL, "%s: longer than %zu characters", what,
                                      max_chars);
        if (!(*dst = strdup(s)))
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

int webhook_json_body(const struct webhook_request *req, json_t **root, struct webhook_verdict *v)
{
        json_error_t jerr;

        if (!(*root = json_loadb(req->body ? req->body : "", req->len, JSON_REJECT_DUPLICATES,
                                 &jerr))) {
                if (json_error_code(&jerr) == json_error_out_of_memory)
                        return webhook_refuse(v, 500, NULL, "out of memory");
                return webhook_refuse(v, 400, NULL, "body: malformed JSON at line %d column %d: %s",
                                      jerr.line, jerr.column, jerr.text);
        }
        if (!json_is_object(*root)) {
                json_decref(*root);
                *root = NULL;
                return webhook_refuse(v, 400, NULL, "body: expected a JSON object");
        }
        return 0;
}
