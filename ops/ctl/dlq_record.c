/* dlq_record.c: a dead letter's headers, filters and JSON form. */
#include "dlq_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "dlq_headers.h"
#include "kafka.h"

void dlq_filter_init(struct dlq_filter *f)
{
        memset(f, 0, sizeof(*f));
        f->since_ms = f->until_ms = -1;
        f->partition = -1;
        f->offset = -1;
}

static long long header_ll(const rd_kafka_message_t *m, const char *name)
{
        char buf[32], *end;
        long long v;

        if (kafka_header_get(m, name, buf, sizeof(buf)) == -1 || !*buf)
                return -1;
        v = strtoll(buf, &end, 10);
        return *end ? -1 : v;
}

void dlq_record_parse(struct dlq_record *r, const rd_kafka_message_t *m)
{
        memset(r, 0, sizeof(*r));
        r->m = m;
        kafka_header_get(m, DLQ_TOPIC, r->dlq_topic, sizeof(r->dlq_topic));
        r->source_partition = header_ll(m, DLQ_PARTITION);
        r->source_offset = header_ll(m, DLQ_OFFSET);
        r->dead_at_ms = header_ll(m, DLQ_TIMESTAMP);
        if (r->dead_at_ms < 0)
                r->dead_at_ms = rd_kafka_message_timestamp(m, NULL);
        kafka_header_get(m, DLQ_GROUP, r->group, sizeof(r->group));
        kafka_header_get(m, DLQ_ERROR_CLASS, r->error_class, sizeof(r->error_class));
        kafka_header_get(m, DLQ_ERROR_MESSAGE, r->error_message, sizeof(r->error_message));
        r->attempts = header_ll(m, DLQ_ATTEMPTS);
        kafka_header_get(m, "event_type", r->event_type, sizeof(r->event_type));
}

static bool key_is(const rd_kafka_message_t *m, const char *key)
{
        size_t n = strlen(key);

        return m->key && m->key_len == n && memcmp(m->key, key, n) == 0;
}

bool dlq_filter_match(const struct dlq_filter *f, const struct dlq_record *r)
{
        if (f->group && strcmp(f->group, r->group) != 0)
                return false;
        if (f->error_class && strcmp(f->error_class, r->error_class) != 0)
                return false;
        if (f->event_type && strcmp(f->event_type, r->event_type) != 0)
                return false;
        if (f->key && !key_is(r->m, f->key))
                return false;
        if (f->since_ms >= 0 && r->dead_at_ms < f->since_ms)
                return false;
        if (f->partition >= 0 && r->m->partition != f->partition)
                return false;
        return f->offset < 0 || r->m->offset == f->offset;
}

/* Text as a JSON string when it is UTF-8, else {"hex": "..."}. */
static json_t *bytes_json(const void *p, size_t n)
{
        json_t *s = p ? json_stringn(p, n) : json_null();
        char *hex;

        if (s)
                return s;
        hex = malloc(2 * n + 1);
        for (size_t i = 0; hex && i < n; i++)
                snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *)p)[i]);
        s = json_pack("{s:s}", "hex", hex ? hex : "");
        free(hex);
        return s;
}

static json_t *headers_json(const rd_kafka_message_t *m)
{
        rd_kafka_headers_t *hdrs = NULL;
        json_t *arr = json_array();
        const char *name;
        const void *val;
        size_t len;

        if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
                return arr;
        for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &val, &len); i++)
                json_array_append_new(
                        arr, json_pack("{s:s,s:o}", "name", name, "value", bytes_json(val, len)));
        return arr;
}

static json_t *opt_str(const char *s)
{
        return s ? json_string(s) : json_null();
}

static json_t *envelope_json(const struct event *ev)
{
        json_t *o = json_pack(
                "{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I}", "event_id", opt_str(ev->event_id),
                "vendor", opt_str(ev->vendor), "event_type", opt_str(ev->event_type), "stream_id",
                opt_str(ev->stream_id), "anchor_id", opt_str(ev->anchor_id), "room_id",
                opt_str(ev->room_id), "trace_id", opt_str(ev->trace_id), "event_time_ms",
                (json_int_t)ev->event_time_ms, "receive_time_ms", (json_int_t)ev->receive_time_ms);
        json_t *raw = json_loadb(ev->raw, ev->raw_len, 0, NULL);

        json_object_set_new(o, "raw", raw ? raw : bytes_json(ev->raw, ev->raw_len));
        json_object_set_new(o, "payload_name", opt_str(ev->payload_name));
        json_object_set(o, "payload", ev->payload ? ev->payload : json_null());
        return o;
}

static void add_envelope(json_t *o, const rd_kafka_message_t *m, struct codec *codec)
{
        struct event ev;
        char why[256];

        if (!codec || codec_decode(codec, m->payload, m->len, &ev, why, sizeof(why)) == -1) {
                json_object_set_new(o, "decode_error", json_string(codec ? why : "no codec"));
                json_object_set_new(o, "value", bytes_json(m->payload, m->len));
                return;
        }
        json_object_set_new(o, "envelope", envelope_json(&ev));
        event_fini(&ev);
}

json_t *dlq_record_json(const struct dlq_record *r, struct codec *codec)
{
        const rd_kafka_message_t *m = r->m;
        json_t *o = json_pack("{s:s,s:i,s:I,s:I,s:o,s:o}", "topic", rd_kafka_topic_name(m->rkt),
                              "partition", (int)m->partition, "offset", (json_int_t)m->offset,
                              "dead_at_ms", (json_int_t)r->dead_at_ms, "key",
                              bytes_json(m->key, m->key_len), "headers", headers_json(m));

        json_object_set_new(o, "error",
                            json_pack("{s:s,s:s,s:s,s:I}", "class", r->error_class, "message",
                                      r->error_message, "group", r->group, "attempts",
                                      (json_int_t)r->attempts));
        json_object_set_new(o, "source",
                            json_pack("{s:s,s:I,s:I}", "topic", r->dlq_topic, "partition",
                                      (json_int_t)r->source_partition, "offset",
                                      (json_int_t)r->source_offset));
        add_envelope(o, m, codec);
        return o;
}
