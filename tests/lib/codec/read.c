/*
 * read.c: test_codec's one-pass reader (codec_read_event(), lib/codec_read.c) against the avro-c
 * path it stands in for (codec_decode_avro_c()): for every body, both read it or both refuse it,
 * and what both read is the same event, field for field.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_sof.h"
#include "codec_int.h"
#include "fixture.h"

static void expect_same_text(const char *a, const char *b, const char *what)
{
        if (!a || !b)
                cr_assert(a == b, "%s: %s against %s", what, a ? a : "NULL", b ? b : "NULL");
        else
                cr_assert_str_eq(a, b, "%s", what);
}

/* The two events are one, field for field. */
static void expect_same_event(const struct event *a, const struct event *b)
{
        expect_same_text(a->event_id, b->event_id, "event_id");
        expect_same_text(a->vendor, b->vendor, "vendor");
        expect_same_text(a->event_type, b->event_type, "event_type");
        expect_same_text(a->stream_id, b->stream_id, "stream_id");
        expect_same_text(a->anchor_id, b->anchor_id, "anchor_id");
        expect_same_text(a->room_id, b->room_id, "room_id");
        expect_same_text(a->trace_id, b->trace_id, "trace_id");
        expect_same_text(a->payload_name, b->payload_name, "payload_name");
        cr_assert(eq(i64, a->event_time_ms, b->event_time_ms));
        cr_assert(eq(i64, a->receive_time_ms, b->receive_time_ms));
        cr_assert(a->raw_len == b->raw_len, "raw_len %zu against %zu", a->raw_len, b->raw_len);
        cr_assert(memcmp(a->raw, b->raw, a->raw_len + 1) == 0, "raw and its NUL");
        cr_assert(eq(int, a->payload == NULL, b->payload == NULL), "payload present in one only");
        if (a->payload) {
                char *x = json_dumps(a->payload, JSON_SORT_KEYS),
                     *y = json_dumps(b->payload, JSON_SORT_KEYS);

                cr_assert(json_equal(a->payload, b->payload), "payload %s against %s", x, y);
                free(x);
                free(y);
        }
}

/* Both paths on one record: the same answer, and the same event when they read it. */
static void expect_same_read(const void *data, size_t len, const char *what)
{
        struct event fast, slow;
        int rf = -1, rs;

        if (len >= AVRO_SOF_HEADER_SIZE)
                rf = codec_read_event(codec->plan,
                                      (const unsigned char *)data + AVRO_SOF_HEADER_SIZE,
                                      len - AVRO_SOF_HEADER_SIZE, &fast);
        else
                memset(&fast, 0, sizeof(fast));
        rs = codec_decode_avro_c(codec, data, len, &slow, errstr, sizeof(errstr));
        cr_assert(eq(int, rf, rs), "%s: the reader says %d, avro-c %d (%s)", what, rf, rs,
                  rs ? errstr : "read");
        if (rf == 0)
                expect_same_event(&fast, &slow);
        event_fini(&fast);
        event_fini(&slow);
}

Test(codec, direct_reader_reads_every_payload_type_as_avro_c)
{
        const struct envelope env = sample_envelope();
        struct envelope nulls = env;
        void *buf;
        size_t len;

        cr_assert(codec->plan != NULL, "the current schema has a plan");
        for (size_t i = 0; i < PAYLOAD_CNT; i++) {
                json_t *p = parse(payloads[i].json);

                encode_ok(&env, payloads[i].name, p, &buf, &len);
                expect_same_read(buf, len, payloads[i].name);
                free(buf);
                json_decref(p);
        }
        nulls.stream_id = nulls.anchor_id = nulls.room_id = NULL;
        nulls.raw_len = 0;
        encode_ok(&nulls, NULL, NULL, &buf, &len);
        expect_same_read(buf, len, "null payload and null ids");
        free(buf);
}

Test(codec, direct_reader_reads_edge_values_as_avro_c)
{
        const struct envelope env = sample_envelope();
        static const char *const cases[][2] = {
                {"StreamEnd", "{\"close_method\":2147483647,\"errcode\":-9223372036854775807}"},
                {"StreamEnd", "{\"close_method\":-2147483648,\"push_duration_ms\":0}"},
                {"StreamEnd", "{\"close_method\":0,\"sequence\":\"\"}"},
                {"Withdrawal", "{\"request_id\":\"\xf0\x9f\x92\xb0\",\"anchor_id\":\"a\","
                               "\"amount\":-9223372036854775807}"},
                {"RecordStatus", "{\"record_event\":\"x\"}"},
                {"Snapshot", "{\"pic_url\":\"p\",\"create_time_ms\":-65,\"height\":8192}"},
        };
        void *buf;
        size_t len;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *p = parse(cases[i][1]);

                encode_ok(&env, cases[i][0], p, &buf, &len);
                expect_same_read(buf, len, cases[i][1]);
                free(buf);
                json_decref(p);
        }
}

/* Every truncation and every bit flip of every payload type: both read it, or neither. */
Test(codec, direct_reader_refuses_what_avro_c_refuses)
{
        const struct envelope env = sample_envelope();

        for (size_t i = 0; i < PAYLOAD_CNT; i++) {
                json_t *p = parse(payloads[i].json);
                unsigned char *buf;
                size_t len;
                char what[96];

                encode_ok(&env, payloads[i].name, p, (void **)&buf, &len);
                for (size_t n = AVRO_SOF_HEADER_SIZE; n < len; n++) {
                        snprintf(what, sizeof(what), "%s cut to %zu bytes", payloads[i].name, n);
                        expect_same_read(buf, n, what);
                }
                for (size_t byte = AVRO_SOF_HEADER_SIZE; byte < len; byte++)
                        for (int bit = 0; bit < 8; bit++) {
                                buf[byte] ^= (unsigned char)(1u << bit);
                                snprintf(what, sizeof(what), "%s, bit %d of byte %zu flipped",
                                         payloads[i].name, bit, byte);
                                expect_same_read(buf, len, what);
                                buf[byte] ^= (unsigned char)(1u << bit);
                        }
                free(buf);
                json_decref(p);
        }
}

/* codec_decode() takes the reader: it gives what avro-c gives, and a bad body still names why. */
Test(codec, decode_gives_the_readers_event_and_avro_cs_errors)
{
        const struct envelope env = sample_envelope();
        json_t *p = parse(payloads[1].json);
        unsigned char *buf;
        size_t len;
        struct event a, b;

        encode_ok(&env, payloads[1].name, p, (void **)&buf, &len);
        cr_assert(eq(int, codec_decode(codec, buf, len, &a, errstr, sizeof(errstr)), 0), "%s",
                  errstr);
        cr_assert(eq(int, codec_decode_avro_c(codec, buf, len, &b, errstr, sizeof(errstr)), 0));
        expect_same_event(&a, &b);
        event_fini(&a);
        event_fini(&b);
        cr_assert(eq(int, codec_decode(codec, buf, len - 1, &a, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "truncated body") != NULL, "%s", errstr);
        free(buf);
        json_decref(p);
}
