/* codec_encode.c: an envelope and its JSON payload into the codec's Avro value, then framed
 * as single-object encoding (codec_encode()). */
#include <avro.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_sof.h"
#include "codec_int.h"
#include "text.h"

static int is_required_field(enum envelope_field f)
{
        return f != FIELD_STREAM_ID && f != FIELD_ANCHOR_ID && f != FIELD_ROOM_ID;
}

/* The index of the first branch of a union with the given type, or -1. */
static int union_branch_of_type(avro_schema_t u, avro_type_t type)
{
        for (size_t i = 0; i < avro_schema_union_size(u); i++)
                if (avro_typeof(avro_schema_union_branch(u, (int)i)) == type)
                        return (int)i;
        return -1;
}

/* The index of the payload record called name (short name), or -1. */
static int union_branch_named(avro_schema_t u, const char *name)
{
        for (size_t i = 0; i < avro_schema_union_size(u); i++) {
                avro_schema_t b = avro_schema_union_branch(u, (int)i);

                if (is_avro_record(b) && strcmp(avro_schema_name(b), name) == 0)
                        return (int)i;
        }
        return -1;
}

/* ------------------------------------------------------------ encode: envelope */

static int avro_failed(const char *path, char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "%s: avro: %s", path, avro_strerror());
        return -1;
}

/* 0 when an avro-c call returned 0; otherwise -1 with avro-c's reason. */
static int avro_checked(int rval, const char *path, char *errstr, size_t errstr_size)
{
        return rval ? avro_failed(path, errstr, errstr_size) : 0;
}

/* Sets a string, or a union holding a string or null, from a C string that may be NULL. */
static int set_c_string(avro_value_t *v, const char *path, const char *s, char *errstr,
                        size_t errstr_size)
{
        avro_value_t branch;
        int index;

        if (avro_value_get_type(v) == AVRO_UNION) {
                index = union_branch_of_type(avro_value_get_schema(v), s ? AVRO_STRING : AVRO_NULL);
                if (index < 0 || avro_value_set_branch(v, index, &branch))
                        return avro_failed(path, errstr, errstr_size);
                return set_c_string(&branch, path, s, errstr, errstr_size);
        }
        if (avro_value_get_type(v) == AVRO_NULL)
                return avro_checked(avro_value_set_null(v), path, errstr, errstr_size);
        if (!s) {
                snprintf(errstr, errstr_size, "%s: required", path);
                return -1;
        }
        if (!codec_is_clean_utf8((const unsigned char *)s, strlen(s))) {
                snprintf(errstr, errstr_size, "%s: not valid UTF-8", path);
                return -1;
        }
        return avro_checked(avro_value_set_string(v, s), path, errstr, errstr_size);
}

static int set_envelope_string(struct codec *c, enum envelope_field f, const char *s, char *errstr,
                               size_t errstr_size)
{
        avro_value_t v;

        if (codec_field(c, f, &v))
                return avro_failed(codec_field_names[f], errstr, errstr_size);
        return set_c_string(&v, codec_field_names[f], s, errstr, errstr_size);
}

static int set_envelope_long(struct codec *c, enum envelope_field f, int64_t n, char *errstr,
                             size_t errstr_size)
{
        avro_value_t v;

        if (codec_field(c, f, &v) || avro_value_set_long(&v, n))
                return avro_failed(codec_field_names[f], errstr, errstr_size);
        return 0;
}

/*
 * The raw body can be large (up to the receiver's body limit), so it is lent to the value
 * without a copy: avro_wrapped_buffer_new() wraps memory it never frees, and the reset at
 * the end of codec_encode() drops the loan before the caller's buffer can go away.
 */
static int set_envelope_raw(struct codec *c, const void *raw, size_t raw_len, char *errstr,
                            size_t errstr_size)
{
        avro_wrapped_buffer_t loan;
        avro_value_t v;

        if (!raw && raw_len) {
                snprintf(errstr, errstr_size, "raw: NULL with raw_len %zu", raw_len);
                return -1;
        }
        if (codec_field(c, FIELD_RAW, &v) ||
            avro_wrapped_buffer_new(&loan, raw ? raw : "", raw_len) ||
            avro_value_give_bytes(&v, &loan))
                return avro_failed("raw", errstr, errstr_size);
        return 0;
}

static int set_envelope(struct codec *c, const struct envelope *env, char *errstr,
                        size_t errstr_size)
{
        const char *strings[FIELD_COUNT] = {
                [FIELD_EVENT_ID] = env->event_id,     [FIELD_VENDOR] = env->vendor,
                [FIELD_EVENT_TYPE] = env->event_type, [FIELD_STREAM_ID] = env->stream_id,
                [FIELD_ANCHOR_ID] = env->anchor_id,   [FIELD_ROOM_ID] = env->room_id,
                [FIELD_TRACE_ID] = env->trace_id,
        };

        for (size_t i = 0; i < CODEC_STRING_FIELDS; i++) {
                enum envelope_field f = codec_string_fields[i];

                /* The ids and names an event is routed and deduplicated by cannot be empty. */
                if (is_required_field(f) && (!strings[f] || !*strings[f])) {
                        snprintf(errstr, errstr_size, "%s: required", codec_field_names[f]);
                        return -1;
                }
                if (set_envelope_string(c, f, strings[f], errstr, errstr_size) == -1)
                        return -1;
        }
        if (set_envelope_long(c, FIELD_EVENT_TIME, env->event_time_ms, errstr, errstr_size) == -1)
                return -1;
        if (set_envelope_long(c, FIELD_RECEIVE_TIME, env->receive_time_ms, errstr, errstr_size) ==
            -1)
                return -1;
        return set_envelope_raw(c, env->raw, env->raw_len, errstr, errstr_size);
}

/* ------------------------------------------------------------ encode: payload from JSON */

static int set_from_json(avro_value_t *v, const json_t *j, const char *path, char *errstr,
                         size_t errstr_size);

const char *codec_json_spelling(avro_type_t type)
{
        switch (type) {
        case AVRO_NULL:
                return "null";
        case AVRO_BOOLEAN:
                return "true or false";
        case AVRO_INT32:
        case AVRO_INT64:
                return "integer";
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                return "number";
        case AVRO_STRING:
        case AVRO_BYTES:
                return "string";
        case AVRO_RECORD:
                return "object";
        default:
                return "a supported type";
        }
}

static int json_fits(const json_t *j, avro_type_t type)
{
        switch (type) {
        case AVRO_BOOLEAN:
                return json_is_boolean(j);
        case AVRO_INT32:
        case AVRO_INT64:
                return json_is_integer(j);
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                return json_is_number(j);
        case AVRO_STRING:
        case AVRO_BYTES:
                return json_is_string(j);
        case AVRO_RECORD:
                return json_is_object(j);
        default:
                return 0;
        }
}

static int expected(const char *path, const char *what, char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "%s: expected %s", path, what);
        return -1;
}

/* Null or absent picks the null branch; anything else the first branch its JSON type fits. */
static int set_union_from_json(avro_value_t *v, const json_t *j, const char *path, char *errstr,
                               size_t errstr_size)
{
        avro_schema_t u = avro_value_get_schema(v);
        char want[64] = "";
        avro_value_t branch;
        int index = -1;

        if (!j || json_is_null(j)) {
                index = union_branch_of_type(u, AVRO_NULL);
        } else {
                for (size_t i = 0; i < avro_schema_union_size(u) && index < 0; i++)
                        if (json_fits(j, avro_typeof(avro_schema_union_branch(u, (int)i))))
                                index = (int)i;
        }
        if (index < 0 && !j) {
                snprintf(errstr, errstr_size, "%s: missing required field", path);
                return -1;
        }
        if (index < 0) {
                for (size_t i = 0; i < avro_schema_union_size(u); i++)
                        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s",
                                 i ? " or " : "",
                                 codec_json_spelling(
                                         avro_typeof(avro_schema_union_branch(u, (int)i))));
                return expected(path, want, errstr, errstr_size);
        }
        if (avro_value_set_branch(v, index, &branch))
                return avro_failed(path, errstr, errstr_size);
        return set_from_json(&branch, j, path, errstr, errstr_size);
}

static int set_integer_from_json(avro_value_t *v, const json_t *j, const char *path, char *errstr,
                                 size_t errstr_size)
{
        json_int_t n;

        if (!json_is_integer(j))
                return expected(path, "integer", errstr, errstr_size);
        n = json_integer_value(j);
        if (avro_value_get_type(v) == AVRO_INT64)
                return avro_checked(avro_value_set_long(v, n), path, errstr, errstr_size);
        if (n < INT32_MIN || n > INT32_MAX) {
                snprintf(errstr, errstr_size,
                         "%s: %" JSON_INTEGER_FORMAT " is out of range for int", path, n);
                return -1;
        }
        return avro_checked(avro_value_set_int(v, (int32_t)n), path, errstr, errstr_size);
}

static int set_string_from_json(avro_value_t *v, const json_t *j, const char *path, char *errstr,
                                size_t errstr_size)
{
        const char *s = json_string_value(j);

        if (!s)
                return expected(path, "string", errstr, errstr_size);
        /* jansson strings are UTF-8 but may hold \u0000, which a C string cannot carry. */
        if (strlen(s) != json_string_length(j)) {
                snprintf(errstr, errstr_size, "%s: string contains a NUL character", path);
                return -1;
        }
        if (avro_value_get_type(v) == AVRO_BYTES)
                return avro_checked(avro_value_set_bytes(v, (void *)s, json_string_length(j)), path,
                                    errstr, errstr_size);
        return avro_checked(avro_value_set_string(v, s), path, errstr, errstr_size);
}

/*
 * jansson's object iterator takes a non-const json_t *, though it does not modify the
 * object; the cast is confined here.
 */
static int check_known_keys(avro_schema_t record, const json_t *obj, const char *path, char *errstr,
                            size_t errstr_size)
{
        for (void *it = json_object_iter((json_t *)obj); it;
             it = json_object_iter_next((json_t *)obj, it)) {
                const char *key = json_object_iter_key(it);

                if (avro_schema_record_field_get_index(record, key) < 0) {
                        snprintf(errstr, errstr_size, "%s.%s: unknown field", path, key);
                        return -1;
                }
        }
        return 0;
}

/* A record from a JSON object: absent keys are null (or missing, when not nullable). */
static int set_record_from_json(avro_value_t *v, const json_t *obj, const char *path, char *errstr,
                                size_t errstr_size)
{
        avro_schema_t record = avro_value_get_schema(v);

        if (obj && !json_is_object(obj))
                return expected(path, "object", errstr, errstr_size);
        if (obj && check_known_keys(record, obj, path, errstr, errstr_size) == -1)
                return -1;
        for (size_t i = 0; i < avro_schema_record_size(record); i++) {
                const char *name = avro_schema_record_field_name(record, (int)i);
                char field_path[PATH_MAX_LEN] = "";
                size_t len = 0;
                avro_value_t field;

                /* "%s.%s" without snprintf: every field of every record written takes one */
                if (text_append(field_path, sizeof(field_path), &len, path) == 0 &&
                    text_append(field_path, sizeof(field_path), &len, ".") == 0)
                        text_append(field_path, sizeof(field_path), &len, name);
                if (avro_value_get_by_index(v, i, &field, NULL))
                        return avro_failed(field_path, errstr, errstr_size);
                if (set_from_json(&field, obj ? json_object_get(obj, name) : NULL, field_path,
                                  errstr, errstr_size) == -1)
                        return -1;
        }
        return 0;
}

static int set_from_json(avro_value_t *v, const json_t *j, const char *path, char *errstr,
                         size_t errstr_size)
{
        avro_type_t type = avro_value_get_type(v);

        if (type == AVRO_UNION)
                return set_union_from_json(v, j, path, errstr, errstr_size);
        if (type == AVRO_RECORD)
                return set_record_from_json(v, j, path, errstr, errstr_size);
        if (type == AVRO_NULL && j && !json_is_null(j))
                return expected(path, "null", errstr, errstr_size);
        if (type == AVRO_NULL)
                return avro_checked(avro_value_set_null(v), path, errstr, errstr_size);
        if (!j || json_is_null(j)) {
                snprintf(errstr, errstr_size, "%s: missing required field", path);
                return -1;
        }
        switch (type) {
        case AVRO_INT32:
        case AVRO_INT64:
                return set_integer_from_json(v, j, path, errstr, errstr_size);
        case AVRO_STRING:
        case AVRO_BYTES:
                return set_string_from_json(v, j, path, errstr, errstr_size);
        case AVRO_BOOLEAN:
                if (!json_is_boolean(j))
                        return expected(path, "true or false", errstr, errstr_size);
                return avro_checked(avro_value_set_boolean(v, json_is_true(j)), path, errstr,
                                    errstr_size);
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                if (!json_is_number(j))
                        return expected(path, "number", errstr, errstr_size);
                if (type == AVRO_FLOAT)
                        return avro_checked(avro_value_set_float(v, (float)json_number_value(j)),
                                            path, errstr, errstr_size);
                return avro_checked(avro_value_set_double(v, json_number_value(j)), path, errstr,
                                    errstr_size);
        default:
                return expected(path, codec_json_spelling(type), errstr, errstr_size);
        }
}

static int set_payload(struct codec *c, const char *payload_name, const json_t *payload,
                       char *errstr, size_t errstr_size)
{
        char path[PATH_MAX_LEN];
        avro_value_t v, branch;
        int index;

        if (codec_field(c, FIELD_PAYLOAD, &v))
                return avro_failed("payload", errstr, errstr_size);
        if (!payload_name) {
                if (payload && !json_is_null(payload)) {
                        snprintf(errstr, errstr_size, "payload: given without a payload name");
                        return -1;
                }
                index = union_branch_of_type(avro_value_get_schema(&v), AVRO_NULL);
                return avro_checked(index < 0 || avro_value_set_branch(&v, index, &branch) ||
                                            avro_value_set_null(&branch),
                                    "payload", errstr, errstr_size);
        }
        if ((index = union_branch_named(avro_value_get_schema(&v), payload_name)) < 0) {
                snprintf(errstr, errstr_size, "payload: unknown payload type \"%s\"", payload_name);
                return -1;
        }
        snprintf(path, sizeof(path), "payload.%s", payload_name);
        if (avro_value_set_branch(&v, index, &branch))
                return avro_failed(path, errstr, errstr_size);
        return set_record_from_json(&branch, payload, path, errstr, errstr_size);
}

/* ------------------------------------------------------------ encode */

/*
 * The output is sized exactly with avro_value_sizeof() and written in place after the
 * header: one malloc per event, which the caller owns (librdkafka can take it with
 * RD_KAFKA_MSG_F_FREE), and no intermediate buffer to copy from.
 */
static int write_single_object(struct codec *c, void **out, size_t *out_len, char *errstr,
                               size_t errstr_size)
{
        unsigned char *buf;
        size_t size;

        if (avro_value_sizeof(&c->value, &size))
                return avro_failed("event", errstr, errstr_size);
        if (!(buf = malloc(AVRO_SOF_HEADER_SIZE + size))) {
                snprintf(errstr, errstr_size, "out of memory (%zu bytes)",
                         AVRO_SOF_HEADER_SIZE + size);
                return -1;
        }
        avro_sof_write_header(buf, c->fingerprint);
        avro_writer_memory_set_dest(c->writer, (const char *)buf + AVRO_SOF_HEADER_SIZE,
                                    (int64_t)size);
        if (avro_value_write(c->writer, &c->value) ||
            avro_writer_tell(c->writer) != (int64_t)size) {
                free(buf);
                return avro_failed("event", errstr, errstr_size);
        }
        *out = buf;
        *out_len = AVRO_SOF_HEADER_SIZE + size;
        return 0;
}

int codec_encode(struct codec *c, const struct envelope *env, const char *payload_name,
                 const json_t *payload, void **out, size_t *out_len, char *errstr,
                 size_t errstr_size)
{
        int rc = -1;

        if (avro_value_reset(&c->value))
                return avro_failed("event", errstr, errstr_size);
        if (set_envelope(c, env, errstr, errstr_size) == 0 &&
            set_payload(c, payload_name, payload, errstr, errstr_size) == 0)
                rc = write_single_object(c, out, out_len, errstr, errstr_size);
        /* Drops the loan of env->raw (and keeps no event data between calls). */
        (void)avro_value_reset(&c->value);
        return rc;
}
