/*
 * write.c: test_codec's own Avro writer (codec_encode_direct(), lib/codec_write.c) against
 * avro-c's (codec_encode()): for every input both accept, the same bytes; for every input one
 * refuses, the other refuses too. Payloads go in as JSON and as a struct payload.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "payload.h"

/* The same fields as a struct payload: strings, integers and booleans; null means absent. */
static struct payload *payload_of(const json_t *obj)
{
        struct payload *p = payload_new();
        const char *key;
        json_t *value;

        cr_assert(p != NULL);
        json_object_foreach((json_t *)obj, key, value)
        {
                if (json_is_string(value))
                        cr_assert(eq(int,
                                     payload_set_text(p, key, json_string_value(value),
                                                      json_string_length(value)),
                                     0));
                else if (json_is_integer(value))
                        cr_assert(eq(int, payload_set_int(p, key, json_integer_value(value)), 0));
                else if (json_is_boolean(value))
                        cr_assert(eq(int, payload_set_bool(p, key, json_is_true(value)), 0));
        }
        return p;
}

/* Whether json has a value a struct payload cannot carry (null is carried as absence). */
static bool has_only_scalars(const json_t *obj)
{
        const char *key;
        json_t *value;

        if (!json_is_object(obj))
                return false;
        json_object_foreach((json_t *)obj, key, value)
        {
                if (!json_is_string(value) && !json_is_integer(value) && !json_is_boolean(value) &&
                    !json_is_null(value))
                        return false;
        }
        return true;
}

/*
 * Encodes with both writers (and with the payload as fields, when it can be put so) and
 * asserts one answer. @returns 0 when all accepted (the bytes compared), -1 when all refused.
 */
static int encode_both(const struct envelope *env, const char *name, const json_t *payload)
{
        char direct_err[512];
        void *ref = NULL, *out = NULL;
        size_t ref_len = 0, out_len = 0;
        int ref_rc =
                codec_encode(codec, env, name, payload, &ref, &ref_len, errstr, sizeof(errstr));
        int rc = codec_encode_direct(codec, env, name, NULL, payload, &out, &out_len, direct_err,
                                     sizeof(direct_err));

        cr_assert(eq(int, rc, ref_rc), "avro-c: %d (%s), direct: %d (%s)", ref_rc,
                  ref_rc ? errstr : "", rc, rc ? direct_err : "");
        if (rc == 0) {
                cr_assert(eq(sz, out_len, ref_len));
                cr_assert(eq(int, memcmp(out, ref, ref_len), 0), "different bytes for %s",
                          name ? name : "null");
        }
        free(out);
        out = NULL;
        if (payload && has_only_scalars(payload)) {
                struct payload *p = payload_of(payload);
                int fields_rc = codec_encode_direct(codec, env, name, p, NULL, &out, &out_len,
                                                    direct_err, sizeof(direct_err));

                cr_assert(eq(int, fields_rc, ref_rc), "avro-c: %d (%s), fields: %d (%s)", ref_rc,
                          ref_rc ? errstr : "", fields_rc, fields_rc ? direct_err : "");
                if (fields_rc == 0) {
                        cr_assert(eq(sz, out_len, ref_len));
                        cr_assert(eq(int, memcmp(out, ref, ref_len), 0),
                                  "different bytes from fields for %s", name);
                }
                free(out);
                payload_destroy(p);
        }
        free(ref);
        return rc;
}

static int encode_both_text(const struct envelope *env, const char *name, const char *json)
{
        json_t *payload = json ? parse(json) : NULL;
        int rc = encode_both(env, name, payload);

        json_decref(payload);
        return rc;
}

Test(codec, direct_writer_writes_avro_cs_bytes_for_every_payload_type)
{
        const struct envelope env = sample_envelope();

        for (size_t i = 0; i < PAYLOAD_CNT; i++)
                cr_assert(eq(int, encode_both_text(&env, payloads[i].name, payloads[i].json), 0),
                          "%s", payloads[i].name);
        cr_assert(eq(int, encode_both(&env, NULL, NULL), 0));
}

/* The Notify payloads liveflow's relay writes to live.notify (lib/notify_relay.c encodes them
 * with the direct writer), one per kind and with every optional field set or left out. */
Test(codec, direct_writer_writes_avro_cs_bytes_for_every_notify_kind)
{
        static const char *const notify[] = {
                "{\"kind\":\"stream.live\",\"at_ms\":1700000000123,\"session_id\":"
                "7206349018372145152,\"cover_url\":\"https://c.example/\u5c01.jpg\"}",
                "{\"kind\":\"stream.ended\",\"at_ms\":1700000360000,\"session_id\":1,"
                "\"duration_s\":360,\"close_method\":3,\"reason\":\"audit: Porn\","
                "\"cover_url\":null,\"title\":null}",
                "{\"kind\":\"anchor.suspended\",\"at_ms\":0,\"reason\":\"\",\"until_ms\":"
                "9223372036854775807}",
                "{\"kind\":\"anchor.warned\",\"at_ms\":-1}",
                "{\"kind\":\"withdrawal.rejected\",\"at_ms\":1700000000000,\"request_id\":"
                "\"w-1\",\"amount\":-9223372036854775807,\"reason\":\"balance\"}",
                "{\"kind\":\"record.ready\",\"at_ms\":1700000000000,\"session_id\":42,"
                "\"duration_s\":154,\"file_id\":\"f\",\"playback_url\":\"http://v/a.m3u8\"}",
        };
        struct envelope env = sample_envelope();

        env.vendor = "liveflow";
        for (size_t i = 0; i < sizeof(notify) / sizeof(notify[0]); i++)
                cr_assert(eq(int, encode_both_text(&env, "Notify", notify[i]), 0), "%s", notify[i]);
        /* what the schema refuses, both refuse: a kind missing, a close method past int */
        cr_assert(eq(int, encode_both_text(&env, "Notify", "{\"at_ms\":1}"), -1));
        cr_assert(eq(int,
                     encode_both_text(&env, "Notify",
                                      "{\"kind\":\"stream.ended\",\"at_ms\":1,"
                                      "\"close_method\":4294967296}"),
                     -1));
}

Test(codec, direct_writer_writes_the_envelope_as_avro_c)
{
        static const unsigned char big_raw[70000] = {0xc3, 0x01, 0x00, 0xff};
        static const unsigned char huge_raw[400000] = {0x7f, [399999] = 0x80};
        struct envelope env = sample_envelope();

        env.stream_id = env.anchor_id = env.room_id = NULL;
        cr_assert(eq(int, encode_both(&env, NULL, NULL), 0));
        env = sample_envelope();
        env.stream_id = "";
        env.raw = NULL;
        env.raw_len = 0;
        env.event_time_ms = INT64_MIN;
        env.receive_time_ms = INT64_MAX;
        cr_assert(eq(int, encode_both(&env, NULL, NULL), 0));
        env.raw = big_raw; /* lengths of several varint bytes, and a buffer that must grow */
        env.raw_len = sizeof(big_raw);
        cr_assert(eq(int, encode_both_text(&env, "Withdrawal", payloads[7].json), 0));
        env.raw = huge_raw; /* past what a loop keeps: the buffer is freed after, and regrown */
        env.raw_len = 400000;
        cr_assert(eq(int, encode_both_text(&env, "Withdrawal", payloads[7].json), 0));
        cr_assert(eq(int, encode_both(&env, NULL, NULL), 0));
        env.raw_len = 10;
        cr_assert(eq(int, encode_both(&env, NULL, NULL), 0));
}

Test(codec, direct_writer_writes_edge_values_as_avro_c)
{
        const struct envelope env = sample_envelope();
        static const char *const cases[][2] = {
                {"StreamEnd", "{\"close_method\":2147483647,\"errcode\":-9223372036854775807}"},
                {"StreamEnd", "{\"close_method\":-2147483648,\"push_duration_ms\":0}"},
                {"StreamEnd", "{\"close_method\":0,\"sequence\":\"\"}"},
                {"Withdrawal", "{\"request_id\":\"\xf0\x9f\x92\xb0\",\"anchor_id\":\"a\","
                               "\"amount\":-1}"},
                {"RecordStatus", "{\"record_event\":\"x\"}"},
                {"Snapshot", "{\"pic_url\":\"p\",\"create_time_ms\":63}"},
                {"Snapshot", "{\"pic_url\":\"p\",\"create_time_ms\":64,\"width\":-64}"},
                {"Snapshot", "{\"pic_url\":\"p\",\"create_time_ms\":-65,\"height\":8192}"},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                cr_assert(eq(int, encode_both_text(&env, cases[i][0], cases[i][1]), 0), "%s %s",
                          cases[i][0], cases[i][1]);
}

Test(codec, direct_writer_refuses_what_avro_c_refuses)
{
        const struct envelope env = sample_envelope();
        static const char *const cases[][2] = {
                {"StreamEnd", "{\"close_method\":1,\"bogus\":1}"},     /* unknown field */
                {"StreamEnd", "{\"sequence\":\"1\"}"},                 /* missing required */
                {"StreamEnd", "{\"close_method\":null}"},              /* required is null */
                {"StreamEnd", "{\"close_method\":\"1\"}"},             /* text for int */
                {"StreamEnd", "{\"close_method\":2147483648}"},        /* out of int range */
                {"StreamEnd", "{\"close_method\":1,\"errcode\":1.5}"}, /* real for long */
                {"StreamEnd", "{\"close_method\":1,\"errmsg\":7}"},    /* int for string */
                {"StreamEnd", "{\"close_method\":1,\"errmsg\":true}"}, /* bool for string */
                {"StreamEnd", "{\"close_method\":1,\"errmsg\":[]}"},   /* array */
                {"StreamEnd", "{\"close_method\":1,\"errmsg\":{}}"},   /* object */
                {"StreamEnd", "{\"close_method\":1,\"errmsg\":\"a\\u0000b\"}"}, /* NUL */
                {"StreamEnd", "[]"},                                            /* not an object */
                {"StreamEnd", "null"},  /* null, with a name */
                {"NoSuchRecord", "{}"}, /* unknown record */
                {NULL, "{}"},           /* payload, no name */
                {"StreamEnd", NULL},    /* absent: required */
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                cr_assert(eq(int, encode_both_text(&env, cases[i][0], cases[i][1]), -1), "%s %s",
                          cases[i][0] ? cases[i][0] : "null", cases[i][1] ? cases[i][1] : "null");
}

Test(codec, direct_writer_refuses_a_bad_envelope_as_avro_c)
{
        struct envelope env = sample_envelope();

        env.event_id = "";
        cr_assert(eq(int, encode_both(&env, NULL, NULL), -1));
        env = sample_envelope();
        env.trace_id = NULL;
        cr_assert(eq(int, encode_both(&env, NULL, NULL), -1));
        env = sample_envelope();
        env.vendor = "\xc3\x28"; /* not UTF-8 */
        cr_assert(eq(int, encode_both(&env, NULL, NULL), -1));
        env = sample_envelope();
        env.room_id = "r\xed\xa0\x80"; /* a surrogate */
        cr_assert(eq(int, encode_both(&env, NULL, NULL), -1));
        env = sample_envelope();
        env.raw = NULL;
        env.raw_len = 3;
        cr_assert(eq(int, encode_both(&env, NULL, NULL), -1));
}

Test(codec, direct_writer_refuses_payload_text_that_is_not_utf8)
{
        const struct envelope env = sample_envelope();
        struct payload *p = payload_new();
        void *out = NULL;
        size_t len = 0;

        cr_assert(eq(int, payload_set_int(p, "close_method", 1), 0));
        cr_assert(eq(int, payload_set_text(p, "errmsg", "a\xff", 2), 0));
        cr_assert(eq(int,
                     codec_encode_direct(codec, &env, "StreamEnd", p, NULL, &out, &len, errstr,
                                         sizeof(errstr)),
                     -1));
        cr_assert(strstr(errstr, "payload.StreamEnd.errmsg") != NULL, "%s", errstr);
        cr_assert(eq(int, payload_set_text(p, "errmsg", "a\0b", 3), 0));
        cr_assert(eq(int,
                     codec_encode_direct(codec, &env, "StreamEnd", p, NULL, &out, &len, errstr,
                                         sizeof(errstr)),
                     -1));
        cr_assert(eq(ptr, out, NULL));
        payload_destroy(p);
}

Test(codec, direct_writer_names_the_field_it_refuses)
{
        const struct envelope env = sample_envelope();
        json_t *payload = parse("{\"close_method\":\"x\"}");
        void *out = NULL;
        size_t len = 0;

        cr_assert(eq(int,
                     codec_encode_direct(codec, &env, "StreamEnd", NULL, payload, &out, &len,
                                         errstr, sizeof(errstr)),
                     -1));
        cr_assert_str_eq(errstr, "payload.StreamEnd.close_method: expected integer");
        json_decref(payload);
}

Test(codec, direct_writer_output_decodes_to_the_fields_given)
{
        const struct envelope env = sample_envelope();
        json_t *given = parse(payloads[4].json); /* Snapshot, with a null field */
        struct payload *p = payload_of(given);
        struct event ev;
        void *out = NULL;
        size_t len = 0;

        cr_assert(eq(int,
                     codec_encode_direct(codec, &env, "Snapshot", p, NULL, &out, &len, errstr,
                                         sizeof(errstr)),
                     0),
                  "%s", errstr);
        cr_assert(eq(int, decode(out, len, &ev), 0), "%s", errstr);
        assert_envelope(&ev, &env);
        cr_assert_str_eq(ev.payload_name, "Snapshot");
        cr_assert(json_equal(ev.payload, given), "payload does not read back");
        event_fini(&ev);
        free(out);
        payload_destroy(p);
        json_decref(given);
}
