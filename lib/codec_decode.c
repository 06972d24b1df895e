/* codec_decode.c: a single-object encoded record back into an event (codec_decode()): a body of
 * the current schema by codec_read.c's one pass, any other (a released schema's, or one that pass
 * refuses) by avro-c after walking it against the writer's schema (see codec.c for why); and
 * event_fini(). */
#include <avro.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_sof.h"
#include "codec_int.h"

/* The event schema nests three levels (Event, payload union, payload record, nullable field). */
#define CHECK_MAX_DEPTH 16

/* Where a body walk stands: the next unread byte and the end of the body. */
struct cursor {
        const unsigned char *p;
        const unsigned char *start;
        const unsigned char *end;
};

/* ------------------------------------------------------------ decode: body check */

/* Names the field and the body offset where its value starts; "truncated" when input ran out. */
static int body_error(const struct cursor *cur, const unsigned char *at, const char *field,
                      const char *what, char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "%s body at byte %zu (field %s): %s",
                 cur->p >= cur->end ? "truncated" : "corrupt", (size_t)(at - cur->start), field,
                 what);
        return -1;
}

/* A zig-zag varint of at most 10 bytes whose 10th byte carries only bit 63. */
static int read_varint(struct cursor *cur, int64_t *out)
{
        uint64_t u = 0;

        for (int shift = 0; shift < 70; shift += 7) {
                unsigned char b;

                if (cur->p >= cur->end)
                        return -1;
                b = *cur->p++;
                if (shift == 63 && b > 1)
                        return -1;
                u |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
                        return 0;
                }
        }
        return -1;
}

/* A length prefix that the rest of the body can actually hold; then skips that many bytes. */
static int check_length_prefixed(struct cursor *cur, int is_string, const char *field, char *errstr,
                                 size_t errstr_size)
{
        const unsigned char *at = cur->p;
        int64_t len;

        if (read_varint(cur, &len) == -1)
                return body_error(cur, at, field, "bad length", errstr, errstr_size);
        if (len < 0)
                return body_error(cur, at, field, "negative length", errstr, errstr_size);
        if ((uint64_t)len > (uint64_t)(cur->end - cur->p)) {
                cur->p = cur->end;
                return body_error(cur, at, field, "length past the end", errstr, errstr_size);
        }
        if (is_string && !codec_is_clean_utf8(cur->p, (size_t)len))
                return body_error(cur, at, field, "string is not UTF-8 or contains NUL", errstr,
                                  errstr_size);
        cur->p += len;
        return 0;
}

static int check_value(avro_schema_t s, struct cursor *cur, const char *field, int depth,
                       char *errstr, size_t errstr_size);

static int check_record(avro_schema_t s, struct cursor *cur, int depth, char *errstr,
                        size_t errstr_size)
{
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
                if (check_value(avro_schema_record_field_get_by_index(s, (int)i), cur,
                                avro_schema_record_field_name(s, (int)i), depth + 1, errstr,
                                errstr_size) == -1)
                        return -1;
        return 0;
}

static int check_union(avro_schema_t s, struct cursor *cur, const char *field, int depth,
                       char *errstr, size_t errstr_size)
{
        const unsigned char *at = cur->p;
        int64_t index;

        if (read_varint(cur, &index) == -1)
                return body_error(cur, at, field, "bad union index", errstr, errstr_size);
        if (index < 0 || (uint64_t)index >= avro_schema_union_size(s))
                return body_error(cur, at, field, "union index out of range", errstr, errstr_size);
        return check_value(avro_schema_union_branch(s, (int)index), cur, field, depth + 1, errstr,
                           errstr_size);
}

static int check_fixed_size(struct cursor *cur, size_t size, const char *field, char *errstr,
                            size_t errstr_size)
{
        const unsigned char *at = cur->p;

        if ((size_t)(cur->end - cur->p) < size) {
                cur->p = cur->end;
                return body_error(cur, at, field, "value past the end", errstr, errstr_size);
        }
        cur->p += size;
        return 0;
}

/* Walks one value of schema s, so that avro-c never sees a length it would trust blindly. */
static int check_value(avro_schema_t s, struct cursor *cur, const char *field, int depth,
                       char *errstr, size_t errstr_size)
{
        const unsigned char *at = cur->p;
        int64_t n;

        if (depth > CHECK_MAX_DEPTH)
                return body_error(cur, at, field, "nested too deep", errstr, errstr_size);
        switch (avro_typeof(s)) {
        case AVRO_NULL:
                return 0;
        case AVRO_BOOLEAN:
                if (cur->p < cur->end && cur->p[0] > 1)
                        return body_error(cur, at, field, "boolean is neither 0 nor 1", errstr,
                                          errstr_size);
                return check_fixed_size(cur, 1, field, errstr, errstr_size);
        case AVRO_INT32:
        case AVRO_INT64:
                if (read_varint(cur, &n) == -1)
                        return body_error(cur, at, field, "bad varint", errstr, errstr_size);
                if (avro_typeof(s) == AVRO_INT32 && (n < INT32_MIN || n > INT32_MAX))
                        return body_error(cur, at, field, "int out of range", errstr, errstr_size);
                return 0;
        case AVRO_FLOAT:
                return check_fixed_size(cur, 4, field, errstr, errstr_size);
        case AVRO_DOUBLE:
                return check_fixed_size(cur, 8, field, errstr, errstr_size);
        case AVRO_STRING:
        case AVRO_BYTES:
                return check_length_prefixed(cur, avro_typeof(s) == AVRO_STRING, field, errstr,
                                             errstr_size);
        case AVRO_RECORD:
                return check_record(s, cur, depth, errstr, errstr_size);
        case AVRO_UNION:
                return check_union(s, cur, field, depth, errstr, errstr_size);
        case AVRO_LINK:
                return check_value(avro_schema_link_target(s), cur, field, depth + 1, errstr,
                                   errstr_size);
        default:
                return body_error(cur, at, field, "type not supported by the codec", errstr,
                                  errstr_size);
        }
}

/* Walks a body against the schema it was written with. */
static int check_body(avro_schema_t writer, const unsigned char *body, size_t len, char *errstr,
                      size_t errstr_size)
{
        struct cursor cur = {body, body, body + len};

        if (check_record(writer, &cur, 0, errstr, errstr_size) == -1)
                return -1;
        if (cur.p != cur.end) {
                snprintf(errstr, errstr_size, "corrupt body: %zu bytes after the end of the event",
                         (size_t)(cur.end - cur.p));
                return -1;
        }
        return 0;
}

/* ------------------------------------------------------------ decode: value to event */

static json_t *value_to_json(avro_value_t *v);

static json_t *record_to_json(avro_value_t *v)
{
        avro_schema_t record = avro_value_get_schema(v);
        json_t *obj = json_object();

        for (size_t i = 0; obj && i < avro_schema_record_size(record); i++) {
                avro_value_t field;
                const char *name;

                if (avro_value_get_by_index(v, i, &field, &name) ||
                    json_object_set_new(obj, name, value_to_json(&field))) {
                        json_decref(obj);
                        obj = NULL;
                }
        }
        return obj;
}

/* The checked body guarantees UTF-8 strings; NULL here means out of memory. */
static json_t *value_to_json(avro_value_t *v)
{
        avro_value_t branch;
        const void *buf;
        const char *s;
        size_t size;
        int32_t i;
        int64_t l;
        int b;
        double d;
        float f;

        switch (avro_value_get_type(v)) {
        case AVRO_NULL:
                return json_null();
        case AVRO_BOOLEAN:
                return avro_value_get_boolean(v, &b) ? NULL : json_boolean(b);
        case AVRO_INT32:
                return avro_value_get_int(v, &i) ? NULL : json_integer(i);
        case AVRO_INT64:
                return avro_value_get_long(v, &l) ? NULL : json_integer(l);
        case AVRO_FLOAT:
                return avro_value_get_float(v, &f) ? NULL : json_real(f);
        case AVRO_DOUBLE:
                return avro_value_get_double(v, &d) ? NULL : json_real(d);
        case AVRO_STRING:
                return avro_value_get_string(v, &s, &size) ? NULL : json_string(s);
        case AVRO_BYTES:
                return avro_value_get_bytes(v, &buf, &size) ? NULL : json_stringn(buf, size);
        case AVRO_UNION:
                return avro_value_get_current_branch(v, &branch) ? NULL : value_to_json(&branch);
        case AVRO_RECORD:
                return record_to_json(v);
        default:
                return NULL;
        }
}

static int get_string(struct codec *c, enum envelope_field f, char **out)
{
        avro_value_t v, branch;
        const char *s;
        size_t size;

        if (codec_field(c, f, &v))
                return -1;
        if (avro_value_get_type(&v) == AVRO_UNION) {
                if (avro_value_get_current_branch(&v, &branch))
                        return -1;
                v = branch;
        }
        if (avro_value_get_type(&v) == AVRO_NULL)
                return 0; /* *out stays NULL */
        if (avro_value_get_string(&v, &s, &size) || !(*out = strdup(s)))
                return -1;
        return 0;
}

static int get_long(struct codec *c, enum envelope_field f, int64_t *out)
{
        avro_value_t v;

        return codec_field(c, f, &v) || avro_value_get_long(&v, out) ? -1 : 0;
}

static int get_raw(struct codec *c, struct event *ev)
{
        avro_value_t v;
        const void *buf;
        size_t size;

        if (codec_field(c, FIELD_RAW, &v) || avro_value_get_bytes(&v, &buf, &size) ||
            !(ev->raw = malloc(size + 1)))
                return -1;
        if (size)
                memcpy(ev->raw, buf, size);
        ((char *)ev->raw)[size] = '\0';
        ev->raw_len = size;
        return 0;
}

static int get_payload(struct codec *c, struct event *ev)
{
        avro_value_t v, branch;

        if (codec_field(c, FIELD_PAYLOAD, &v) || avro_value_get_current_branch(&v, &branch))
                return -1;
        if (avro_value_get_type(&branch) != AVRO_RECORD)
                return 0; /* the null payload */
        if (!(ev->payload_name = strdup(avro_schema_name(avro_value_get_schema(&branch)))) ||
            !(ev->payload = record_to_json(&branch)))
                return -1;
        return 0;
}

static int event_from_value(struct codec *c, struct event *ev)
{
        char **strings[FIELD_COUNT] = {
                [FIELD_EVENT_ID] = &ev->event_id,     [FIELD_VENDOR] = &ev->vendor,
                [FIELD_EVENT_TYPE] = &ev->event_type, [FIELD_STREAM_ID] = &ev->stream_id,
                [FIELD_ANCHOR_ID] = &ev->anchor_id,   [FIELD_ROOM_ID] = &ev->room_id,
                [FIELD_TRACE_ID] = &ev->trace_id,
        };

        for (size_t i = 0; i < CODEC_STRING_FIELDS; i++)
                if (get_string(c, codec_string_fields[i], strings[codec_string_fields[i]]) == -1)
                        return -1;
        if (get_long(c, FIELD_EVENT_TIME, &ev->event_time_ms) == -1 ||
            get_long(c, FIELD_RECEIVE_TIME, &ev->receive_time_ms) == -1 || get_raw(c, ev) == -1)
                return -1;
        return get_payload(c, ev);
}

/* ------------------------------------------------------------ decode */

int codec_decode(struct codec *c, const void *data, size_t len, struct event *ev, char *errstr,
                 size_t errstr_size)
{
        uint64_t fp;

        /*
         * A body of the current schema is read by the plan in one pass; anything it does not
         * read whole and clean goes the checked avro-c way, which says what is wrong with it.
         */
        if (c->plan && avro_sof_read_header(data, len, &fp, errstr, errstr_size) == 0 &&
            fp == c->fingerprint &&
            codec_read_event(c->plan, (const unsigned char *)data + AVRO_SOF_HEADER_SIZE,
                             len - AVRO_SOF_HEADER_SIZE, ev) == 0)
                return 0;
        return codec_decode_avro_c(c, data, len, ev, errstr, errstr_size);
}

int codec_decode_avro_c(struct codec *c, const void *data, size_t len, struct event *ev,
                        char *errstr, size_t errstr_size)
{
        struct writer_schema *w;
        const unsigned char *body;
        uint64_t fp;
        int rc = -1;

        memset(ev, 0, sizeof(*ev));
        if (avro_sof_read_header(data, len, &fp, errstr, errstr_size) == -1)
                return -1;
        if (!(w = codec_writer_schema(c, fp))) {
                snprintf(errstr, errstr_size,
                         "unknown schema fingerprint 0x%016" PRIx64
                         " (this codec reads schemas/event.avsc, 0x%016" PRIx64
                         ", and %zu released schema%s of schemas/history/)",
                         fp, c->fingerprint, c->n_writers - 1, c->n_writers == 2 ? "" : "s");
                return -1;
        }
        body = (const unsigned char *)data + AVRO_SOF_HEADER_SIZE;
        if (check_body(w->schema, body, len - AVRO_SOF_HEADER_SIZE, errstr, errstr_size) == -1)
                return -1;
        avro_reader_memory_set_source(c->reader, (const char *)body,
                                      (int64_t)(len - AVRO_SOF_HEADER_SIZE));
        /* A historic body goes through its resolver, which fills c->value all the same. */
        if (avro_value_read(c->reader, w->resolver ? &w->resolved : &c->value))
                snprintf(errstr, errstr_size, "corrupt body: avro: %s", avro_strerror());
        else if (event_from_value(c, ev) == -1)
                snprintf(errstr, errstr_size, "decoding the event: out of memory");
        else
                rc = 0;
        /* Releases the copies avro-c made of this message's strings and bytes. */
        (void)avro_value_reset(&c->value);
        if (rc == -1)
                event_fini(ev);
        return rc;
}

void event_fini(struct event *ev)
{
        if (!ev)
                return;
        free(ev->event_id);
        free(ev->vendor);
        free(ev->event_type);
        free(ev->stream_id);
        free(ev->anchor_id);
        free(ev->room_id);
        free(ev->trace_id);
        free(ev->raw);
        free(ev->payload_name);
        json_decref(ev->payload);
        memset(ev, 0, sizeof(*ev));
}
