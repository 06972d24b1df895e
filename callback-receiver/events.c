/*
 * events.c: POST /v1/events (see events.h). Every element is checked before any is mapped
 * for good: the batch is one answer, so one bad element refuses all of it, naming its index
 * and field, and a 200 is never given for an element that could not be stored.
 */
#include "events.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "field_limits.h"
#include "internal.h"
#include "metrics.h"

#define ENDPOINT   "events"
#define TS_MIN_MS  946684800000LL     /* 2000-01-01: a ts sent in seconds is refused */
#define TS_MAX_MS  253402300799999LL  /* 9999-12-31T23:59:59.999Z */
#define BAND_MAX   FIELD_MAX_AGE_BAND /* in characters, as the columns count */
#define REGION_MAX FIELD_MAX_REGION

/* What an element's type is and where it goes. */
struct event_kind {
        const char *type;       /* in the body */
        const char *event_type; /* in the envelope and the event_type header */
        const char *topic;
        bool is_viewer;       /* enter, exit, heartbeat */
        bool may_name_anchor; /* follow, unfollow: an anchor alone is a target */
};

static const struct event_kind kinds[] = {
        {"enter", "viewer.enter", EVENTS_TOPIC_VIEWER, true, false},
        {"exit", "viewer.exit", EVENTS_TOPIC_VIEWER, true, false},
        {"heartbeat", "viewer.heartbeat", EVENTS_TOPIC_VIEWER, true, false},
        {"chat", "interaction.chat", EVENTS_TOPIC_INTERACTION, false, false},
        {"like", "interaction.like", EVENTS_TOPIC_INTERACTION, false, false},
        {"follow", "interaction.follow", EVENTS_TOPIC_INTERACTION, false, true},
        {"unfollow", "interaction.unfollow", EVENTS_TOPIC_INTERACTION, false, true},
        {"share", "interaction.share", EVENTS_TOPIC_INTERACTION, false, false},
        {"profile", "profile.update", EVENTS_TOPIC_INTERACTION, false, false},
};

static const char *const genders[] = {"male", "female", "unknown", NULL};
static const char *const audience_types[] = {"registered", "guest", NULL};
static const char *const subjects[] = {"anchor", "audience", NULL};

/* ------------------------------------------------------------ refusals */

/* What the element being read is, for messages. */
struct cursor {
        struct metrics *metrics;
        size_t index;
        struct webhook_verdict *v;
};

static int refuse(struct cursor *c, unsigned int status, const char *field, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int refuse(struct cursor *c, unsigned int status, const char *field, const char *fmt, ...)
{
        char labels[128], why[160];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        snprintf(labels, sizeof(labels), "endpoint=\"" ENDPOINT "\",field=\"%s\"", field);
        if (c->metrics)
                metric_add(metrics_counter(c->metrics, "liveflow_receiver_invalid_requests_total",
                                           "Internal requests refused with 400, by endpoint and "
                                           "field",
                                           labels),
                           1);
        if (strcmp(field, "body") == 0 || strcmp(field, "events") == 0)
                return webhook_refuse(c->v, status, NULL, "%s: %s", field, why);
        return webhook_refuse(c->v, status, NULL, "events[%zu].%s: %s", c->index, field, why);
}

/* ------------------------------------------------------------ field checks */

static bool is_in_set(const char *s, const char *const set[])
{
        for (size_t i = 0; s && set[i]; i++)
                if (strcmp(s, set[i]) == 0)
                        return true;
        return false;
}

/*
 * 1..max bytes without control characters (jansson checked the UTF-8). Ids are measured in
 * bytes: the audience role keeps them in byte buffers; texts use is_clean_chars().
 */
static bool is_clean_text(const char *s, size_t len, size_t max)
{
        if (len == 0 || len > max)
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)s[i];

                if (ch < 0x20 || ch == 0x7f)
                        return false;
        }
        return true;
}

/*
 * An id field: a JSON string, or a JSON integer read as its decimal text. *out gets a
 * malloc'd copy, or NULL when absent or null (then 0 unless required).
 */
static int read_id(struct cursor *c, const json_t *obj, const char *name, size_t max,
                   bool is_required, char **out)
{
        const json_t *value = json_object_get(obj, name);
        char text[24];

        *out = NULL;
        if (!value || json_is_null(value)) {
                if (is_required)
                        return refuse(c, 400, name, "missing");
                return 0;
        }
        if (json_is_integer(value)) {
                snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(value));
                if (!(*out = strdup(text)))
                        return webhook_refuse(c->v, 500, NULL, "out of memory");
                return 0;
        }
        if (!json_is_string(value) ||
            !is_clean_text(json_string_value(value), json_string_length(value), max))
                return refuse(c, 400, name,
                              "expected a string of 1 to %zu bytes without control characters, "
                              "or an integer",
                              max);
        if (!(*out = strndup(json_string_value(value), json_string_length(value))))
                return webhook_refuse(c->v, 500, NULL, "out of memory");
        return 0;
}

/* 1..max characters (as the utf8mb4 columns count) without control characters. */
static bool is_clean_chars(const char *s, size_t len, size_t max)
{
        return len > 0 && field_fits(s, len, max) && is_clean_text(s, len, len);
}

/* An optional enumerated string into payload[to]. */
static int read_choice(struct cursor *c, const json_t *obj, const char *name,
                       const char *const set[], const char *expect, json_t *payload)
{
        const json_t *value = json_object_get(obj, name);

        if (!value || json_is_null(value))
                return 0;
        if (!is_in_set(json_string_value(value), set))
                return refuse(c, 400, name, "expected %s", expect);
        if (json_object_set_new(payload, name, json_string(json_string_value(value))) == -1)
                return webhook_refuse(c->v, 500, NULL, "out of memory");
        return 0;
}

/* An optional free text of 1..max bytes into payload[name]. */
static int read_text(struct cursor *c, const json_t *obj, const char *name, size_t max,
                     json_t *payload)
{
        const json_t *value = json_object_get(obj, name);

        if (!value || json_is_null(value))
                return 0;
        if (!json_is_string(value) ||
            !is_clean_chars(json_string_value(value), json_string_length(value), max))
                return refuse(c, 400, name,
                              "expected a string of 1 to %zu characters without control "
                              "characters",
                              max);
        if (json_object_set_new(
                    payload, name,
                    json_stringn(json_string_value(value), json_string_length(value))) == -1)
                return webhook_refuse(c->v, 500, NULL, "out of memory");
        return 0;
}

/* tags: a list of 0..EVENTS_TAGS_MAX strings, carried as its compact JSON text. */
static int read_tags(struct cursor *c, const json_t *obj, json_t *payload)
{
        const json_t *tags = json_object_get(obj, "tags");
        const json_t *tag;
        size_t i;
        char *text;

        if (!tags || json_is_null(tags))
                return 0;
        if (!json_is_array(tags) || json_array_size(tags) > EVENTS_TAGS_MAX)
                return refuse(c, 400, "tags", "expected a list of at most %d strings",
                              EVENTS_TAGS_MAX);
        json_array_foreach(tags, i, tag)
        {
                if (!json_is_string(tag) ||
                    !is_clean_chars(json_string_value(tag), json_string_length(tag),
                                    EVENTS_TAG_MAX))
                        return refuse(c, 400, "tags",
                                      "element %zu: expected a string of 1 to %d characters", i,
                                      EVENTS_TAG_MAX);
        }
        if (!(text = json_dumps(tags, JSON_COMPACT)) ||
            json_object_set_new(payload, "tags", json_string(text)) == -1) {
                free(text);
                return webhook_refuse(c->v, 500, NULL, "out of memory");
        }
        free(text);
        return 0;
}

/* ------------------------------------------------------------ one element */

static const struct event_kind *kind_of(const char *type)
{
        for (size_t i = 0; type && i < sizeof(kinds) / sizeof(kinds[0]); i++)
                if (strcmp(type, kinds[i].type) == 0)
                        return &kinds[i];
        return NULL;
}

static int set_string(struct cursor *c, json_t *payload, const char *name, const char *s)
{
        if (json_object_set_new(payload, name, json_string(s)) == -1)
                return webhook_refuse(c->v, 500, NULL, "out of memory");
        return 0;
}

/* The AudienceEvent fields of a room event. */
static int read_audience_event(struct cursor *c, const struct event_kind *k, const json_t *obj,
                               struct webhook_event *ev, json_t *p)
{
        const json_t *count = json_object_get(obj, "count");
        char *audience = NULL;
        int rc;

        if (read_id(c, obj, "audience_id", EVENTS_ID_MAX, true, &audience) == -1)
                return -1;
        rc = set_string(c, p, "audience_id", audience);
        free(audience);
        if (rc == -1 || set_string(c, p, "action", k->type) == -1 ||
            read_id(c, obj, "stream_id", EVENTS_STREAM_ID_MAX, false, &ev->stream_id) == -1 ||
            read_id(c, obj, "room_id", EVENTS_ID_MAX, false, &ev->room_id) == -1 ||
            read_id(c, obj, "anchor_id", EVENTS_ID_MAX, false, &ev->anchor_id) == -1)
                return -1;
        if (!ev->stream_id && !ev->room_id && !(k->may_name_anchor && ev->anchor_id))
                return refuse(c, 400, "room_id",
                              k->may_name_anchor ? "missing (a room_id, stream_id or anchor_id)"
                                                 : "missing (a room_id or stream_id)");
        if (count && !json_is_null(count)) {
                if (strcmp(k->type, "like") != 0)
                        return refuse(c, 400, "count", "only a like carries a count");
                if (!json_is_integer(count) || json_integer_value(count) < 1 ||
                    json_integer_value(count) > EVENTS_LIKE_MAX)
                        return refuse(c, 400, "count", "expected an integer from 1 to %d",
                                      EVENTS_LIKE_MAX);
                if (json_object_set_new(p, "count", json_integer(json_integer_value(count))) == -1)
                        return webhook_refuse(c->v, 500, NULL, "out of memory");
        }
        if (read_choice(c, obj, "audience_type", audience_types, "registered or guest", p) == -1)
                return -1;
        ev->key = ev->stream_id ? ev->stream_id : ev->room_id ? ev->room_id : ev->anchor_id;
        ev->payload_name = "AudienceEvent";
        return 0;
}

/* The Profile fields: the subject, its id, what is known of it. */
static int read_profile(struct cursor *c, const json_t *obj, struct webhook_event *ev, json_t *p)
{
        const char *subject = json_string_value(json_object_get(obj, "subject"));
        bool is_anchor;
        char *id = NULL;
        int rc;

        if (!is_in_set(subject, subjects))
                return refuse(c, 400, "subject", "expected anchor or audience");
        is_anchor = strcmp(subject, "anchor") == 0;
        if (set_string(c, p, "subject", subject) == -1 ||
            read_id(c, obj, is_anchor ? "anchor_id" : "audience_id", EVENTS_ID_MAX, true, &id) ==
                    -1)
                return -1;
        rc = set_string(c, p, "subject_id", id);
        if (is_anchor)
                ev->anchor_id = id; /* an anchor's profile also names it in the envelope */
        else
                free(id);
        if (rc == -1 ||
            read_choice(c, obj, "gender", genders, "male, female or unknown", p) == -1 ||
            read_choice(c, obj, "audience_type", audience_types, "registered or guest", p) == -1 ||
            read_text(c, obj, "age_band", BAND_MAX, p) == -1 ||
            read_text(c, obj, "region", REGION_MAX, p) == -1 || read_tags(c, obj, p) == -1)
                return -1;
        /* Keyed by the subject's id, which the payload holds as long as ev lives. */
        ev->key = json_string_value(json_object_get(p, "subject_id"));
        ev->payload_name = "Profile";
        return 0;
}

static int read_element(struct cursor *c, const json_t *obj, struct webhook_batch_item *item)
{
        struct webhook_event *ev = &item->ev;
        const json_t *ts = json_object_get(obj, "ts");
        const struct event_kind *k;
        char *source_id = NULL, key[8 + EVENTS_ID_MAX + 1];
        json_t *p;
        int n;

        if (!json_is_object(obj))
                return refuse(c, 400, "event", "expected a JSON object");
        if (read_id(c, obj, "event_id", EVENTS_ID_MAX, true, &source_id) == -1)
                return -1;
        n = snprintf(key, sizeof(key), "internal|event|%s", source_id);
        crypto_sha256_hex(key, (size_t)n < sizeof(key) ? (size_t)n : sizeof(key) - 1, ev->event_id);
        if (!(p = json_object()) ||
            json_object_set_new(p, "source_event_id", json_string(source_id)) == -1) {
                json_decref(p);
                free(source_id);
                return webhook_refuse(c->v, 500, NULL, "out of memory");
        }
        free(source_id);
        ev->payload = p; /* owned by ev from here */
        if (!(k = kind_of(json_string_value(json_object_get(obj, "type")))))
                return refuse(c, 400, "type",
                              "expected enter, exit, heartbeat, chat, like, follow, unfollow, "
                              "share or profile");
        if (!json_is_integer(ts) || json_integer_value(ts) < TS_MIN_MS ||
            json_integer_value(ts) > TS_MAX_MS)
                return refuse(c, 400, "ts",
                              "expected Unix milliseconds, an integer from %lld to "
                              "%lld",
                              TS_MIN_MS, TS_MAX_MS);
        ev->event_time_ms = json_integer_value(ts);
        if (json_object_set_new(p, "ts_ms", json_integer(ev->event_time_ms)) == -1)
                return webhook_refuse(c->v, 500, NULL, "out of memory");
        ev->vendor = "internal";
        ev->event_type = k->event_type;
        ev->topic = k->topic;
        if (strcmp(k->type, "profile") == 0 ? read_profile(c, obj, ev, p) == -1
                                            : read_audience_event(c, k, obj, ev, p) == -1)
                return -1;
        if (!(item->raw = json_dumps(obj, JSON_COMPACT)))
                return webhook_refuse(c->v, 500, NULL, "out of memory");
        item->raw_len = strlen(item->raw);
        return 0;
}

/* ------------------------------------------------------------ the batch */

static int parse(struct cursor *c, const struct webhook_request *req, json_t **root)
{
        json_error_t jerr;

        if (!(*root = json_loadb(req->body ? req->body : "", req->len, JSON_REJECT_DUPLICATES,
                                 &jerr)))
                return refuse(c, 400, "body", "malformed JSON at line %d column %d: %s", jerr.line,
                              jerr.column, jerr.text);
        if (!json_is_object(*root))
                return refuse(c, 400, "body", "expected a JSON object");
        return 0;
}

int events_map(struct internal *in, struct metrics *metrics, long long max_batch,
               const struct webhook_request *req, struct webhook_batch *batch,
               struct webhook_verdict *v)
{
        struct cursor c = {.metrics = metrics, .v = v};
        const json_t *list, *data;
        json_t *root = NULL;
        size_t n;
        int rc = -1;

        memset(batch, 0, sizeof(*batch));
        if (internal_verify(in, ENDPOINT, req, v) == -1)
                return -1;
        if (parse(&c, req, &root) == -1)
                goto out;
        data = json_object_get(root, "data");
        list = json_object_get(json_is_object(data) ? data : root, "events");
        if (!json_is_array(list) || !(n = json_array_size(list))) {
                refuse(&c, 400, "events", "expected a list of 1 to %lld events", max_batch);
                goto out;
        }
        if ((long long)n > max_batch) {
                refuse(&c, 413, "events",
                       "%zu events, more than %lld in one batch "
                       "(LIVEFLOW_EVENTS_MAX_BATCH)",
                       n, max_batch);
                goto out;
        }
        if (!(batch->items = calloc(n, sizeof(*batch->items)))) {
                webhook_refuse(v, 500, NULL, "out of memory");
                goto out;
        }
        batch->n = n;
        for (c.index = 0; c.index < n; c.index++)
                if (read_element(&c, json_array_get(list, c.index), &batch->items[c.index]) == -1)
                        goto out;
        rc = 0;
out:
        json_decref(root);
        if (rc == -1)
                webhook_batch_fini(batch);
        return rc;
}
