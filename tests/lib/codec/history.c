/* history.c: test_codec's records of released schemas (schemas/history/): they decode as
 * the same event, and every released schema resolves to the current one. */
#include <avro.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <glob.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_sof.h"
#include "fixture.h"
#include "support.h"

#define HISTORY_DIR "schemas/history"
#define V1_PATH     HISTORY_DIR "/event-v1.avsc"
#define SESSION_END_JSON                                                                           \
        "{\"session_id\":42,\"started_at_ms\":null,\"ended_at_ms\":1700000000000,"                 \
        "\"duration_s\":3600,\"close_method\":3}"

static avro_schema_t schema_from_file(const char *path, char **text)
{
        char *t = support_read_file(path, NULL);
        avro_schema_t schema;

        cr_assert(t != NULL, "cannot read %s (run the tests from the repository root)", path);
        cr_assert(eq(int, avro_schema_from_json_length(t, strlen(t), &schema), 0), "%s: %s", path,
                  avro_strerror());
        *text = t;
        return schema;
}

/* Sets v (any type this schema uses) from JSON: null picks a union's null branch. */
static void set_value(avro_value_t *v, const json_t *j, const char *what)
{
        avro_schema_t s = avro_value_get_schema(v);
        avro_value_t inner;

        switch (avro_value_get_type(v)) {
        case AVRO_UNION:
                for (size_t i = 0; i < avro_schema_union_size(s); i++) {
                        int is_null = avro_typeof(avro_schema_union_branch(s, (int)i)) == AVRO_NULL;

                        if (is_null == (!j || json_is_null(j))) {
                                cr_assert(eq(int, avro_value_set_branch(v, (int)i, &inner), 0));
                                set_value(&inner, j, what);
                                return;
                        }
                }
                cr_fatal("%s: no branch for the value", what);
                break;
        case AVRO_RECORD:
                for (size_t i = 0; i < avro_schema_record_size(s); i++) {
                        const char *name = avro_schema_record_field_name(s, (int)i);

                        cr_assert(eq(int, avro_value_get_by_index(v, i, &inner, NULL), 0));
                        set_value(&inner, json_object_get(j, name), name);
                }
                break;
        case AVRO_NULL:
                cr_assert(eq(int, avro_value_set_null(v), 0));
                break;
        case AVRO_INT32:
                cr_assert(eq(int, avro_value_set_int(v, (int32_t)json_integer_value(j)), 0));
                break;
        case AVRO_INT64:
                cr_assert(eq(int, avro_value_set_long(v, json_integer_value(j)), 0));
                break;
        case AVRO_BOOLEAN:
                cr_assert(eq(int, avro_value_set_boolean(v, json_is_true(j)), 0));
                break;
        case AVRO_STRING:
                cr_assert(json_string_value(j) != NULL, "%s: want a string", what);
                cr_assert(eq(int, avro_value_set_string(v, json_string_value(j)), 0));
                break;
        case AVRO_BYTES:
                cr_assert(eq(int,
                             avro_value_set_bytes(v, (void *)json_string_value(j),
                                                  json_string_length(j)),
                             0));
                break;
        default:
                cr_fatal("%s: type %d not handled by the test", what, avro_value_get_type(v));
        }
}

/*
 * What an older release wrote: env and the payload encoded by avro-c's generic writer with
 * the schema text given (not by the codec), framed with that schema's fingerprint.
 */
static void *encode_with_schema(const char *schema_text, avro_schema_t schema,
                                const struct envelope *env, const char *payload_name,
                                const char *payload_json, size_t *len)
{
        avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
        json_t *fields =
                json_pack("{ss ss ss ss? ss? ss? sI sI ss}", "event_id", env->event_id, "vendor",
                          env->vendor, "event_type", env->event_type, "stream_id", env->stream_id,
                          "anchor_id", env->anchor_id, "room_id", env->room_id, "event_time",
                          (json_int_t)env->event_time_ms, "receive_time",
                          (json_int_t)env->receive_time_ms, "trace_id", env->trace_id);
        avro_value_t value, field, branch;
        avro_writer_t writer;
        unsigned char *buf;
        size_t size;
        uint64_t fp;
        int index = -1;

        cr_assert(iface != NULL && fields != NULL);
        cr_assert(eq(int, avro_generic_value_new(iface, &value), 0));
        /* Every field but raw (bytes, not text) and the payload, which are set on their own. */
        for (size_t i = 0; i < avro_schema_record_size(schema); i++) {
                const char *name = avro_schema_record_field_name(schema, (int)i);

                if (strcmp(name, "payload") == 0 || strcmp(name, "raw") == 0)
                        continue;
                cr_assert(eq(int, avro_value_get_by_index(&value, i, &field, NULL), 0));
                set_value(&field, json_object_get(fields, name), name);
        }
        cr_assert(eq(int, avro_value_get_by_name(&value, "raw", &field, NULL), 0));
        cr_assert(eq(int,
                     avro_value_set_bytes(&field, (void *)(env->raw ? env->raw : ""), env->raw_len),
                     0));
        cr_assert(eq(int, avro_value_get_by_name(&value, "payload", &field, NULL), 0));
        for (size_t i = 0; i < avro_schema_union_size(avro_value_get_schema(&field)); i++) {
                avro_schema_t b = avro_schema_union_branch(avro_value_get_schema(&field), (int)i);

                if (payload_name
                            ? is_avro_record(b) && strcmp(avro_schema_name(b), payload_name) == 0
                            : is_avro_null(b))
                        index = (int)i;
        }
        cr_assert(index >= 0, "no payload branch %s", payload_name ? payload_name : "null");
        cr_assert(eq(int, avro_value_set_branch(&field, index, &branch), 0));
        if (payload_name) {
                json_t *payload = parse(payload_json);

                set_value(&branch, payload, payload_name);
                json_decref(payload);
        }
        cr_assert(eq(int, avro_value_sizeof(&value, &size), 0));
        buf = malloc(AVRO_SOF_HEADER_SIZE + size);
        cr_assert(buf != NULL);
        cr_assert(eq(int, avro_sof_fingerprint(schema_text, &fp, errstr, sizeof(errstr)), 0));
        avro_sof_write_header(buf, fp);
        writer = avro_writer_memory((const char *)buf + AVRO_SOF_HEADER_SIZE, (int64_t)size);
        cr_assert(eq(int, avro_value_write(writer, &value), 0), "%s", avro_strerror());
        avro_writer_free(writer);
        avro_value_decref(&value);
        avro_value_iface_decref(iface);
        json_decref(fields);
        *len = AVRO_SOF_HEADER_SIZE + size;
        return buf;
}

/* Decodes old (a historic encoding) and asserts it reads as the current encoding of the same. */
static void assert_decodes_as_current(const void *old, size_t old_len, const struct envelope *env,
                                      const char *payload_name, const char *payload_json)
{
        json_t *payload = payload_json ? parse(payload_json) : NULL;
        struct event got, want;
        void *cur;
        size_t cur_len;

        encode_ok(env, payload_name, payload, &cur, &cur_len);
        cr_assert(eq(int, decode(cur, cur_len, &want), 0), "%s", errstr);
        cr_assert(eq(int, decode(old, old_len, &got), 0), "%s: %s",
                  payload_name ? payload_name : "null payload", errstr);
        assert_envelope(&got, env);
        assert_str_or_null(got.payload_name, want.payload_name, "payload_name");
        assert_str_or_null(got.payload_name, payload_name, "payload_name");
        cr_assert(got.payload ? want.payload && json_equal(got.payload, want.payload)
                              : !want.payload,
                  "%s: the payload differs", payload_name ? payload_name : "null");
        event_fini(&got);
        event_fini(&want);
        json_decref(payload);
        free(cur);
}

static uint64_t header_fingerprint(const void *data)
{
        uint64_t fp = 0;

        cr_assert(eq(int,
                     avro_sof_read_header(data, AVRO_SOF_HEADER_SIZE, &fp, errstr, sizeof(errstr)),
                     0));
        return fp;
}

Test(codec, records_of_the_first_release_decode_as_the_same_event)
{
        char *text;
        avro_schema_t v1 = schema_from_file(V1_PATH, &text);
        struct envelope env = sample_envelope();
        size_t len;
        void *old;

        /* The null payload and every payload record, with all of the envelope set. */
        old = encode_with_schema(text, v1, &env, NULL, NULL, &len);
        cr_assert(header_fingerprint(old) != codec_fingerprint(codec), "v1 is the current schema");
        assert_decodes_as_current(old, len, &env, NULL, NULL);
        free(old);
        for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
                old = encode_with_schema(text, v1, &env, payloads[i].name, payloads[i].json, &len);
                assert_decodes_as_current(old, len, &env, payloads[i].name, payloads[i].json);
                free(old);
        }
        /* The nullable envelope fields as null, and an empty raw body. */
        env.stream_id = env.anchor_id = env.room_id = NULL;
        env.raw = NULL;
        env.raw_len = 0;
        old = encode_with_schema(text, v1, &env, "SessionEnd", SESSION_END_JSON, &len);
        assert_decodes_as_current(old, len, &env, "SessionEnd", SESSION_END_JSON);
        free(old);
        avro_schema_decref(v1);
        free(text);
}

Test(codec, decode_reads_a_body_by_the_schema_its_fingerprint_names)
{
        char *text;
        avro_schema_t v1 = schema_from_file(V1_PATH, &text);
        struct envelope env = sample_envelope();
        json_t *payload = parse("{\"source_event_id\":\"e-1\",\"action\":\"like\","
                                "\"audience_id\":\"u-1\",\"ts_ms\":1,\"count\":3}");
        uint64_t v1_fp;
        struct event ev;
        void *data;
        size_t len;

        /* AudienceEvent came after v1: v1's payload union has no branch of that index. */
        encode_ok(&env, "AudienceEvent", payload, &data, &len);
        cr_assert(eq(int, avro_sof_fingerprint(text, &v1_fp, errstr, sizeof(errstr)), 0));
        avro_sof_write_header(data, v1_fp);
        cr_assert(eq(int, decode(data, len, &ev), -1));
        cr_assert(strstr(errstr, "(field payload): union index out of range") != NULL, "%s",
                  errstr);
        json_decref(payload);
        free(data);
        avro_schema_decref(v1);
        free(text);
}

/* The resolved path is as safe on damaged input as the direct one: a released schema's record. */
Test(codec, decode_of_an_old_record_rejects_every_truncation_and_survives_bit_flips)
{
        char *text;
        avro_schema_t v1 = schema_from_file(V1_PATH, &text);
        struct envelope env = sample_envelope();
        size_t len, decoded = 0;
        unsigned char *data =
                encode_with_schema(text, v1, &env, payloads[1].name, payloads[1].json, &len);
        struct event ev;

        for (size_t n = AVRO_SOF_HEADER_SIZE; n < len; n++) {
                unsigned char *prefix = malloc(n); /* exactly n bytes, for ASan */

                memcpy(prefix, data, n);
                cr_assert(eq(int, decode(prefix, n, &ev), -1), "prefix of %zu/%zu bytes decoded", n,
                          len);
                cr_assert(strstr(errstr, "truncated body") != NULL, "%zu: %s", n, errstr);
                free(prefix);
        }
        for (size_t bit = AVRO_SOF_HEADER_SIZE * 8; bit < len * 8; bit++) {
                data[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                if (decode(data, len, &ev) == 0) {
                        decoded++;
                        event_fini(&ev);
                }
                data[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
        cr_assert(decoded < len * 8 - AVRO_SOF_HEADER_SIZE * 8);
        /* Undamaged, it still decodes: the codec kept no state from the failures. */
        assert_decodes_as_current(data, len, &env, payloads[1].name, payloads[1].json);
        free(data);
        avro_schema_decref(v1);
        free(text);
}

/* A value for every field of s: the first non-null branch of a union, so none stays unset. */
static json_t *sample_json(avro_schema_t s)
{
        json_t *obj;

        switch (avro_typeof(s)) {
        case AVRO_UNION:
                for (size_t i = 0; i < avro_schema_union_size(s); i++)
                        if (!is_avro_null(avro_schema_union_branch(s, (int)i)))
                                return sample_json(avro_schema_union_branch(s, (int)i));
                return json_null();
        case AVRO_RECORD:
                obj = json_object();
                for (size_t i = 0; i < avro_schema_record_size(s); i++)
                        json_object_set_new(
                                obj, avro_schema_record_field_name(s, (int)i),
                                sample_json(avro_schema_record_field_get_by_index(s, (int)i)));
                return obj;
        case AVRO_LINK:
                return sample_json(avro_schema_link_target(s));
        case AVRO_INT32:
        case AVRO_INT64:
                return json_integer(7);
        case AVRO_BOOLEAN:
                return json_true();
        case AVRO_STRING:
        case AVRO_BYTES:
                return json_string("x");
        default:
                return json_null();
        }
}

/*
 * Every released schema kept under schemas/history/ must stay readable: avro-c resolves it to
 * the current schema, the codec knows its fingerprint (it was embedded), and a record of each
 * of its payloads decodes as the current encoding of the same. A schema change that breaks an
 * old release's records fails here.
 */
Test(codec, every_released_schema_is_an_ancestor_of_the_current_one)
{
        char *current_text;
        avro_schema_t current = schema_from_file(SCHEMA_PATH, &current_text);
        struct envelope env = sample_envelope();
        glob_t g;

        cr_assert(eq(int, glob(HISTORY_DIR "/*.avsc", 0, NULL, &g), 0),
                  "no " HISTORY_DIR "/*.avsc (run the tests from the repository root)");
        for (size_t f = 0; f < g.gl_pathc; f++) {
                char *text;
                avro_schema_t old = schema_from_file(g.gl_pathv[f], &text);
                avro_value_iface_t *resolver = avro_resolved_writer_new(old, current);
                avro_schema_t u;
                void *data;
                size_t len;

                cr_assert(resolver != NULL, "%s cannot be read as %s: %s", g.gl_pathv[f],
                          SCHEMA_PATH, avro_strerror());
                avro_value_iface_decref(resolver);
                data = encode_with_schema(text, old, &env, NULL, NULL, &len);
                assert_decodes_as_current(data, len, &env, NULL, NULL);
                free(data);
                u = avro_schema_record_field_get(old, "payload");
                for (size_t i = 0; i < avro_schema_union_size(u); i++) {
                        avro_schema_t b = avro_schema_union_branch(u, (int)i);
                        json_t *sample;
                        char *json;

                        if (!is_avro_record(b))
                                continue;
                        sample = sample_json(b);
                        json = json_dumps(sample, JSON_COMPACT);
                        data = encode_with_schema(text, old, &env, avro_schema_name(b), json, &len);
                        assert_decodes_as_current(data, len, &env, avro_schema_name(b), json);
                        free(data);
                        free(json);
                        json_decref(sample);
                }
                avro_schema_decref(old);
                free(text);
        }
        globfree(&g);
        avro_schema_decref(current);
        free(current_text);
}

/*
 * Whether records of the current schema could still be read after one change: branch appended
 * to the payload union (in_payload) or a field appended to the envelope.
 */
static int resolvable_after(const char *addition, int in_payload)
{
        char *text;
        avro_schema_t current = schema_from_file(SCHEMA_PATH, &text);
        json_t *next = parse(text), *fields = json_object_get(next, "fields"), *field;
        avro_value_iface_t *resolver;
        avro_schema_t changed;
        char *next_text;
        size_t i;

        if (!in_payload) {
                json_array_append_new(fields, parse(addition));
        } else {
                json_array_foreach(fields, i, field)
                {
                        if (strcmp(json_string_value(json_object_get(field, "name")), "payload") ==
                            0)
                                json_array_append_new(json_object_get(field, "type"),
                                                      parse(addition));
                }
        }
        next_text = json_dumps(next, JSON_COMPACT);
        cr_assert(eq(int, avro_schema_from_json_length(next_text, strlen(next_text), &changed), 0),
                  "%s", avro_strerror());
        resolver = avro_resolved_writer_new(current, changed);
        if (resolver)
                avro_value_iface_decref(resolver);
        avro_schema_decref(changed);
        avro_schema_decref(current);
        json_decref(next);
        free(next_text);
        free(text);
        return resolver != NULL;
}

/*
 * What the ancestor test tells apart, with avro-c 1.11.1 as the README describes it: a record
 * appended to the payload union resolves; a new envelope field does not, even with a default
 * (avro-c's resolver has no default values), so such a change would fail the ancestor test.
 */
Test(codec, only_appended_payload_records_resolve)
{
        cr_assert(eq(int,
                     resolvable_after("{\"type\":\"record\",\"name\":\"Later\",\"fields\":"
                                      "[{\"name\":\"a\",\"type\":\"long\"}]}",
                                      1),
                     1));
        cr_assert(eq(int, resolvable_after("{\"name\":\"region\",\"type\":\"string\"}", 0), 0));
        cr_assert(eq(int,
                     resolvable_after("{\"name\":\"region\",\"type\":[\"null\",\"string\"],"
                                      "\"default\":null}",
                                      0),
                     0));
}
