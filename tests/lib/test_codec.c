/* test_codec.c: the event codec (lib/codec*.c); codec/history.c holds the tests of records of
 * released schemas. */
#include <avro.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "avro_sof.h"
#include "codec.h"
#include "codec/fixture.h"
#include "support.h"

#define DECODER_PATH "tests/fixtures/avro_decode.py"
#define PYTHON       "/usr/bin/python3"

struct codec *codec;
char errstr[512];

/* A vendor body with NULs, bytes that are not UTF-8, and a byte that is C3 (the SOF marker). */
static const unsigned char sample_raw[] = {'{', 0x00, 0xff, 0xfe, 'a', 0x00, 0x80, 0xc3, 0x01, '}'};

const struct sample_payload payloads[PAYLOAD_CNT] = {
        {"StreamBegin",
         "{\"sequence\":\"6674468118806626493\",\"client_ip\":\"10.0.0.1\","
         "\"stream_param\":\"anchor_id=a1&room_id=r1\",\"app\":\"live\",\"node\":null}"},
        {"StreamEnd", "{\"sequence\":\"6674468118806626493\",\"push_duration_ms\":3600000,"
                      "\"errcode\":1,\"errmsg\":\"recv rtmp deleteStream\",\"close_method\":1,"
                      "\"reason\":null}"},
        {"RecordFile",
         "{\"file_id\":\"5285890781\",\"video_url\":\"http://x.vod/a.mp4\","
         "\"file_format\":\"mp4\",\"session_key\":\"s-1\",\"start_time_ms\":1700000000000,"
         "\"end_time_ms\":1700003600000,\"duration_s\":3600,\"file_size\":123456789012}"},
        {"RecordStatus", "{\"record_event\":\"record_start\",\"session_key\":null,\"seq\":\"1\"}"},
        {"Snapshot",
         "{\"pic_url\":\"/p/a.jpg\",\"pic_full_url\":\"http://x/p/a.jpg\","
         "\"create_time_ms\":1700000000123,\"width\":1280,\"height\":720,\"file_size\":null}"},
        {"AuditVerdict", "{\"source\":\"tencent.image\",\"action\":null,\"suggestion\":\"Block\","
                         "\"label\":\"Porn\",\"sub_label\":\"sexy\",\"img\":\"http://x/i.jpg\","
                         "\"reason\":\"\xe5\x91\xbd\xe4\xb8\xad \xf0\x9f\x94\x9e\",\"score\":99,"
                         "\"suspend_s\":3600}"},
        {"Reward",
         "{\"tip_id\":\"t-1\",\"audience_id\":\"u-1\",\"anchor_id\":\"a-1\",\"room_id\":\"r-1\","
         "\"amount\":500,\"gift_id\":\"rose\",\"gift_count\":5,\"ts_ms\":1700000000000,"
         "\"audience_gender\":\"female\",\"anchor_gender\":\"male\","
         "\"audience_type\":\"registered\"}"},
        {"Withdrawal",
         "{\"request_id\":\"w-1\",\"anchor_id\":\"a-1\",\"amount\":9223372036854775807}"},
        {"Viewer",
         "{\"action\":\"join\",\"client_id\":\"c-1\",\"ip\":\"1.2.3.4\",\"server_id\":null,"
         "\"service_id\":\"svc\"}"},
};

struct envelope sample_envelope(void)
{
        return (struct envelope){
                .event_id = "tencent:1:6674468118806626493",
                .vendor = "tencent",
                .event_type = "stream.begin",
                .stream_id = "s-\xe4\xb8\xad",
                .anchor_id = "a-1",
                .room_id = "r-1",
                .event_time_ms = 1700000000000,
                .receive_time_ms = -1,
                .trace_id = "9f2c1e0a9f2c1e0a9f2c1e0a9f2c1e0a",
                .raw = sample_raw,
                .raw_len = sizeof(sample_raw),
        };
}

json_t *parse(const char *text)
{
        json_error_t jerr;
        json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

        cr_assert(j != NULL, "bad test JSON: %s: %s", text, jerr.text);
        return j;
}

static void setup(void)
{
        codec = codec_new(errstr, sizeof(errstr));
        cr_assert(codec != NULL, "codec_new: %s", errstr);
}

static void teardown(void)
{
        codec_destroy(codec);
}

void encode_ok(const struct envelope *env, const char *name, const json_t *payload, void **out,
               size_t *len)
{
        int rc = codec_encode(codec, env, name, payload, out, len, errstr, sizeof(errstr));

        cr_assert(eq(int, rc, 0), "codec_encode(%s): %s", name ? name : "null", errstr);
}

/* Encodes expecting failure and returns errstr. */
static const char *encode_fails(const struct envelope *env, const char *name, const char *json)
{
        json_t *payload = json ? parse(json) : NULL;
        void *out = NULL;
        size_t len = 0;
        int rc = codec_encode(codec, env, name, payload, &out, &len, errstr, sizeof(errstr));

        json_decref(payload);
        cr_assert(eq(int, rc, -1), "codec_encode(%s, %s) succeeded", name, json);
        cr_assert(eq(ptr, out, NULL));
        return errstr;
}

void assert_str_or_null(const char *got, const char *want, const char *what)
{
        if (!want)
                cr_assert(eq(ptr, (void *)got, NULL), "%s: got \"%s\", want null", what, got);
        else
                cr_assert(got && strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"", what,
                          got ? got : "(null)", want);
}

void assert_envelope(const struct event *ev, const struct envelope *env)
{
        assert_str_or_null(ev->event_id, env->event_id, "event_id");
        assert_str_or_null(ev->vendor, env->vendor, "vendor");
        assert_str_or_null(ev->event_type, env->event_type, "event_type");
        assert_str_or_null(ev->stream_id, env->stream_id, "stream_id");
        assert_str_or_null(ev->anchor_id, env->anchor_id, "anchor_id");
        assert_str_or_null(ev->room_id, env->room_id, "room_id");
        assert_str_or_null(ev->trace_id, env->trace_id, "trace_id");
        cr_assert(eq(i64, ev->event_time_ms, env->event_time_ms));
        cr_assert(eq(i64, ev->receive_time_ms, env->receive_time_ms));
        cr_assert(eq(sz, ev->raw_len, env->raw_len));
        cr_assert(eq(int, memcmp(ev->raw, env->raw ? env->raw : "", env->raw_len), 0));
        cr_assert(eq(chr, ((const char *)ev->raw)[ev->raw_len], '\0'));
}

/* A valid encoding of the sample envelope with a StreamEnd payload; the caller frees it. */
static void *valid_encoding(size_t *len)
{
        struct envelope env = sample_envelope();
        json_t *payload = parse(payloads[1].json);
        void *out;

        encode_ok(&env, payloads[1].name, payload, &out, len);
        json_decref(payload);
        return out;
}

int decode(const void *data, size_t len, struct event *ev)
{
        return codec_decode(codec, data, len, ev, errstr, sizeof(errstr));
}

TestSuite(codec, .init = setup, .fini = teardown);

/* ------------------------------------------------------------ round trips */

Test(codec, round_trips_every_payload_type)
{
        struct envelope env = sample_envelope();

        for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
                json_t *payload = parse(payloads[i].json);
                struct event ev;
                void *out;
                size_t len;

                encode_ok(&env, payloads[i].name, payload, &out, &len);
                cr_assert(eq(int, decode(out, len, &ev), 0), "%s: %s", payloads[i].name, errstr);
                assert_envelope(&ev, &env);
                cr_assert_str_eq(ev.payload_name, payloads[i].name);
                cr_assert(json_equal(ev.payload, payload), "%s: decoded payload differs",
                          payloads[i].name);
                event_fini(&ev);
                free(out);
                json_decref(payload);
        }
}

Test(codec, round_trips_null_payload_with_all_envelope_fields)
{
        struct envelope env = sample_envelope();
        struct event ev;
        void *out;
        size_t len;

        encode_ok(&env, NULL, NULL, &out, &len);
        cr_assert(eq(int, decode(out, len, &ev), 0), "%s", errstr);
        assert_envelope(&ev, &env);
        cr_assert(eq(ptr, ev.payload_name, NULL));
        cr_assert(eq(ptr, ev.payload, NULL));
        event_fini(&ev);
        free(out);
}

Test(codec, null_envelope_fields_and_json_null_payload_decode_as_null)
{
        struct envelope env = sample_envelope();
        json_t *null = json_null();
        struct event ev;
        void *out;
        size_t len;

        env.stream_id = env.anchor_id = env.room_id = NULL;
        env.raw = NULL;
        env.raw_len = 0;
        encode_ok(&env, NULL, null, &out, &len);
        cr_assert(eq(int, decode(out, len, &ev), 0), "%s", errstr);
        assert_envelope(&ev, &env);
        cr_assert(eq(ptr, ev.payload, NULL));
        event_fini(&ev);
        event_fini(&ev); /* a finished event can be finished again */
        free(out);
        json_decref(null);
}

Test(codec, raw_bytes_with_nul_and_non_utf8_survive)
{
        unsigned char raw[256];
        struct envelope env = sample_envelope();
        struct event ev;
        void *out;
        size_t len;

        for (size_t i = 0; i < sizeof(raw); i++)
                raw[i] = (unsigned char)(255 - i);
        env.raw = raw;
        env.raw_len = sizeof(raw);
        encode_ok(&env, NULL, NULL, &out, &len);
        cr_assert(eq(int, decode(out, len, &ev), 0), "%s", errstr);
        cr_assert(eq(sz, ev.raw_len, sizeof(raw)));
        cr_assert(eq(int, memcmp(ev.raw, raw, sizeof(raw)), 0));
        event_fini(&ev);
        free(out);
}

Test(codec, absent_nullable_payload_fields_decode_as_null)
{
        struct envelope env = sample_envelope();
        json_t *payload = parse("{\"close_method\":2}");
        json_t *want = parse("{\"sequence\":null,\"push_duration_ms\":null,\"errcode\":null,"
                             "\"errmsg\":null,\"close_method\":2,\"reason\":null}");
        struct event ev;
        void *out;
        size_t len;

        encode_ok(&env, "StreamEnd", payload, &out, &len);
        cr_assert(eq(int, decode(out, len, &ev), 0), "%s", errstr);
        cr_assert(json_equal(ev.payload, want));
        event_fini(&ev);
        free(out);
        json_decref(payload);
        json_decref(want);
}

Test(codec, same_input_gives_same_bytes)
{
        struct envelope env = sample_envelope();
        json_t *reward = parse(payloads[6].json);
        json_t *viewer = parse(payloads[8].json);
        void *a, *b, *other;
        size_t alen, blen, otherlen;

        encode_ok(&env, "Reward", reward, &a, &alen);
        encode_ok(&env, "Viewer", viewer, &other,
                  &otherlen); /* the reused value must not leak state */
        encode_ok(&env, "Reward", reward, &b, &blen);
        cr_assert(eq(sz, alen, blen));
        cr_assert(eq(int, memcmp(a, b, alen), 0));
        free(a);
        free(b);
        free(other);
        json_decref(reward);
        json_decref(viewer);
}

Test(codec, header_is_marker_and_little_endian_fingerprint)
{
        uint64_t fp = codec_fingerprint(codec), got = 0;
        size_t len;
        unsigned char *out = valid_encoding(&len);

        cr_assert(eq(u8, out[0], 0xc3));
        cr_assert(eq(u8, out[1], 0x01));
        for (int i = 0; i < 8; i++)
                got |= (uint64_t)out[2 + i] << (8 * i);
        cr_assert(eq(u64, got, fp));
        free(out);
}

Test(codec, fingerprint_is_crc64_of_the_schema_canonical_form)
{
        char *text = support_read_file(SCHEMA_PATH, NULL), *canon;

        cr_assert(text != NULL, "cannot read %s (run the tests from the repository root)",
                  SCHEMA_PATH);
        cr_assert(eq(int, avro_sof_canonical_form(text, &canon, errstr, sizeof(errstr)), 0), "%s",
                  errstr);
        cr_assert(eq(u64, codec_fingerprint(codec), avro_sof_crc64(canon, strlen(canon))));
        /* [PRIMITIVES]: the timestamp-millis longs are plain "long" (as Java's
         * SchemaNormalization). */
        cr_assert(strstr(canon, "{\"name\":\"event_time\",\"type\":\"long\"}") != NULL, "%s",
                  canon);
        cr_assert(eq(ptr, strstr(canon, "doc"), NULL));
        free(canon);
        free(text);
}

/* ------------------------------------------------------------ encode errors */

Test(codec, rejects_unknown_payload_key)
{
        cr_assert_str_eq(encode_fails(&(struct envelope){0}, NULL, NULL), "event_id: required");

        struct envelope env = sample_envelope();

        cr_assert_str_eq(encode_fails(&env, "Withdrawal",
                                      "{\"request_id\":\"w\",\"anchor_id\":\"a\",\"amount\":1,"
                                      "\"currency\":\"EUR\"}"),
                         "payload.Withdrawal.currency: unknown field");
}

Test(codec, rejects_wrong_types)
{
        struct envelope env = sample_envelope();

        cr_assert_str_eq(encode_fails(&env, "StreamEnd", "{\"close_method\":\"1\"}"),
                         "payload.StreamEnd.close_method: expected integer");
        cr_assert_str_eq(encode_fails(&env, "StreamEnd", "{\"close_method\":1.5}"),
                         "payload.StreamEnd.close_method: expected integer");
        cr_assert_str_eq(encode_fails(&env, "StreamEnd", "{\"close_method\":4294967296}"),
                         "payload.StreamEnd.close_method: 4294967296 is out of range for int");
        cr_assert_str_eq(encode_fails(&env, "StreamEnd", "{\"close_method\":1,\"errcode\":\"x\"}"),
                         "payload.StreamEnd.errcode: expected null or integer");
        cr_assert_str_eq(encode_fails(&env, "StreamEnd", "{\"close_method\":1,\"errmsg\":[]}"),
                         "payload.StreamEnd.errmsg: expected null or string");
        cr_assert_str_eq(encode_fails(&env, "Viewer", "{\"action\":true,\"client_id\":\"c\"}"),
                         "payload.Viewer.action: expected string");
        cr_assert_str_eq(encode_fails(&env, "Viewer", "[\"join\"]"),
                         "payload.Viewer: expected object");
        cr_assert_str_eq(encode_fails(&env, "Viewer", "\"join\""),
                         "payload.Viewer: expected object");
}

Test(codec, rejects_missing_required_fields)
{
        struct envelope env = sample_envelope();

        cr_assert_str_eq(
                encode_fails(&env, "Withdrawal", "{\"request_id\":\"w\",\"anchor_id\":\"a\"}"),
                "payload.Withdrawal.amount: missing required field");
        cr_assert_str_eq(encode_fails(&env, "Withdrawal",
                                      "{\"request_id\":null,\"anchor_id\":\"a\",\"amount\":1}"),
                         "payload.Withdrawal.request_id: missing required field");
        cr_assert_str_eq(encode_fails(&env, "StreamEnd", NULL),
                         "payload.StreamEnd.close_method: missing required field");
        env.trace_id = "";
        cr_assert_str_eq(encode_fails(&env, NULL, NULL), "trace_id: required");
        env = sample_envelope();
        env.vendor = NULL;
        cr_assert_str_eq(encode_fails(&env, NULL, NULL), "vendor: required");
}

Test(codec, rejects_unknown_payload_name_and_nameless_payload)
{
        struct envelope env = sample_envelope();

        cr_assert_str_eq(encode_fails(&env, "Tip", "{}"), "payload: unknown payload type \"Tip\"");
        cr_assert_str_eq(encode_fails(&env, "null", "{}"),
                         "payload: unknown payload type \"null\"");
        cr_assert_str_eq(encode_fails(&env, NULL, "{\"close_method\":1}"),
                         "payload: given without a payload name");
}

Test(codec, rejects_strings_a_reader_could_not_take)
{
        struct envelope env = sample_envelope();

        env.stream_id = "s-\xff";
        cr_assert_str_eq(encode_fails(&env, NULL, NULL), "stream_id: not valid UTF-8");
        env = sample_envelope();
        env.event_id = "e-\xc0\xaf"; /* overlong "/" */
        cr_assert_str_eq(encode_fails(&env, NULL, NULL), "event_id: not valid UTF-8");
        env = sample_envelope();
        env.raw = NULL;
        cr_assert_str_eq(encode_fails(&env, NULL, NULL), "raw: NULL with raw_len 10");
        env = sample_envelope();
        cr_assert_str_eq(
                encode_fails(&env, "Viewer", "{\"action\":\"jo\\u0000in\",\"client_id\":\"c\"}"),
                "payload.Viewer.action: string contains a NUL character");
}

/* ------------------------------------------------------------ decode errors */

Test(codec, decode_rejects_empty_and_short_input)
{
        static const unsigned char short_input[] = {0xc3, 0x01, 0, 0, 0};
        struct event ev;

        cr_assert(eq(int, decode("", 0, &ev), -1));
        cr_assert(strstr(errstr, "too short: 0 bytes") != NULL, "%s", errstr);
        cr_assert(eq(int, decode(short_input, sizeof(short_input), &ev), -1));
        cr_assert(strstr(errstr, "too short: 5 bytes") != NULL, "%s", errstr);
        cr_assert(eq(ptr, ev.event_id, NULL));
}

Test(codec, decode_rejects_wrong_magic)
{
        size_t len;
        unsigned char *data = valid_encoding(&len);
        struct event ev;

        data[1] = 0x02;
        cr_assert(eq(int, decode(data, len, &ev), -1));
        cr_assert_str_eq(errstr, "bad magic C3 02: not an Avro single-object encoding (C3 01)");
        data[0] = '{';
        cr_assert(eq(int, decode(data, len, &ev), -1));
        free(data);
}

Test(codec, decode_rejects_unknown_fingerprint_and_names_it_in_hex)
{
        size_t len;
        unsigned char *data = valid_encoding(&len);
        struct event ev;
        char want[64];

        avro_sof_write_header(data, UINT64_C(0x0123456789abcdef));
        cr_assert(eq(int, decode(data, len, &ev), -1));
        snprintf(want, sizeof(want), "unknown schema fingerprint 0x0123456789abcdef");
        cr_assert(strstr(errstr, want) != NULL, "%s", errstr);
        /* It says what the codec does read: the current schema and the released ones. */
        cr_assert(strstr(errstr, "schemas/history/") != NULL, "%s", errstr);
        free(data);
}

Test(codec, decode_rejects_every_truncation)
{
        size_t len;
        unsigned char *data = valid_encoding(&len);

        for (size_t n = 0; n < len; n++) {
                /* A copy of exactly n bytes, so ASan sees any read past the end. */
                unsigned char *prefix = malloc(n ? n : 1);
                struct event ev;

                memcpy(prefix, data, n);
                cr_assert(eq(int, decode(prefix, n, &ev), -1), "prefix of %zu/%zu bytes decoded", n,
                          len);
                cr_assert(eq(ptr, ev.event_id, NULL));
                if (n > AVRO_SOF_HEADER_SIZE)
                        cr_assert(strstr(errstr, "truncated body") != NULL, "%zu: %s", n, errstr);
                free(prefix);
        }
        free(data);
}

Test(codec, decode_survives_every_bit_flip)
{
        size_t len, decoded = 0;
        unsigned char *data = valid_encoding(&len);

        for (size_t bit = 0; bit < len * 8; bit++) {
                struct event ev;

                data[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                if (decode(data, len, &ev) == 0) {
                        decoded++; /* e.g. a flipped letter in a string is still a valid event */
                        event_fini(&ev);
                } else {
                        cr_assert(strlen(errstr) > 0);
                }
                data[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
        cr_assert(decoded < len * 8);
        free(data);
}

Test(codec, decode_survives_random_bodies)
{
        unsigned char buf[200];
        unsigned int seed = 42;

        avro_sof_write_header(buf, codec_fingerprint(codec));
        for (int round = 0; round < 20000; round++) {
                size_t len = AVRO_SOF_HEADER_SIZE +
                             (size_t)rand_r(&seed) % (sizeof(buf) - AVRO_SOF_HEADER_SIZE);
                struct event ev;

                for (size_t i = AVRO_SOF_HEADER_SIZE; i < len; i++)
                        buf[i] = (unsigned char)rand_r(&seed);
                if (decode(buf, len, &ev) == 0)
                        event_fini(&ev);
        }
}

/* Header, then a body that starts with a length prefix for event_id. */
static size_t craft(unsigned char *buf, const unsigned char *body, size_t body_len)
{
        avro_sof_write_header(buf, codec_fingerprint(codec));
        memcpy(buf + AVRO_SOF_HEADER_SIZE, body, body_len);
        return AVRO_SOF_HEADER_SIZE + body_len;
}

Test(codec, decode_rejects_lengths_avro_c_would_trust)
{
        /* 2^62 as a zig-zag varint: avro-c 1.11.1 would malloc that before looking at the input. */
        static const unsigned char huge[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                             0x80, 0x80, 0x80, 0x01, 'x'};
        /* -1: avro-c 1.11.1 has no sign check (it fails only because its malloc(0) is NULL). */
        static const unsigned char negative[] = {0x01, 'x'};
        /* 11 continuation bytes: not a varint. */
        static const unsigned char endless[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
        unsigned char buf[64];
        struct event ev;

        cr_assert(eq(int, decode(buf, craft(buf, huge, sizeof(huge)), &ev), -1));
        cr_assert_str_eq(errstr, "truncated body at byte 0 (field event_id): length past the end");
        cr_assert(eq(int, decode(buf, craft(buf, negative, sizeof(negative)), &ev), -1));
        cr_assert_str_eq(errstr, "corrupt body at byte 0 (field event_id): negative length");
        cr_assert(eq(int, decode(buf, craft(buf, endless, sizeof(endless)), &ev), -1));
        cr_assert(strstr(errstr, "(field event_id): bad length") != NULL, "%s", errstr);
}

Test(codec, decode_rejects_bad_union_index_bad_utf8_and_trailing_bytes)
{
        struct envelope env = sample_envelope();
        size_t len;
        unsigned char *data, *longer;
        struct event ev;

        env.raw_len = 0;
        encode_ok(&env, NULL, NULL, (void **)&data, &len);
        /* With an empty raw and a null payload, the last body byte is the payload union index. */
        cr_assert(eq(u8, data[len - 1], 0x00));
        data[len - 1] = 0x7e; /* index 63: far past the last branch of the payload union */
        cr_assert(eq(int, decode(data, len, &ev), -1));
        cr_assert(strstr(errstr, "(field payload): union index out of range") != NULL, "%s",
                  errstr);
        data[len - 1] = 0x01; /* index -1 */
        cr_assert(eq(int, decode(data, len, &ev), -1));
        data[len - 1] = 0x00;

        longer = malloc(len + 1);
        memcpy(longer, data, len);
        longer[len] = 0;
        cr_assert(eq(int, decode(longer, len + 1, &ev), -1));
        cr_assert_str_eq(errstr, "corrupt body: 1 bytes after the end of the event");

        data[AVRO_SOF_HEADER_SIZE + 1] = 0xff; /* first byte of event_id */
        cr_assert(eq(int, decode(data, len, &ev), -1));
        cr_assert(strstr(errstr, "(field event_id): string is not UTF-8 or contains NUL") != NULL,
                  "%s", errstr);
        data[AVRO_SOF_HEADER_SIZE + 1] = 0x00;
        cr_assert(eq(int, decode(data, len, &ev), -1));
        free(longer);
        free(data);
}

/* ------------------------------------------------------------ independent reader */

/* Runs cmd and returns its stdout (malloc'd) and exit status. */
static char *run_capture(const char *cmd, int *status)
{
        FILE *p = popen(cmd, "r");
        size_t len = 0, cap = 4096;
        char *out = malloc(cap);
        size_t n;

        cr_assert(p != NULL && out != NULL, "popen %s", cmd);
        while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
                len += n;
                if (cap - len < 2)
                        out = realloc(out, cap *= 2);
        }
        out[len] = '\0';
        *status = pclose(p);
        return out;
}

static void require_python_avro(void)
{
        if (system(PYTHON " -c 'import avro.io, avro.schema' 2>/dev/null") == 0)
                return;
        if (getenv("FIXTURES_REQUIRED"))
                cr_fatal(PYTHON " cannot import avro: apt-get install python3-avro");
        cr_skip(PYTHON " cannot import avro (python3-avro not installed)");
}

static void assert_json_str(const json_t *obj, const char *key, const char *want)
{
        const char *got = json_string_value(json_object_get(obj, key));

        if (!want)
                cr_assert(eq(int, json_is_null(json_object_get(obj, key)), 1), "%s: want null",
                          key);
        else
                cr_assert(got && strcmp(got, want) == 0, "%s: python read \"%s\", want \"%s\"", key,
                          got ? got : "(not a string)", want);
}

static void assert_python_reads(const json_t *out, const struct envelope *env, const char *name,
                                const json_t *payload)
{
        const json_t *ev = json_object_get(out, "event");
        char hex[2 * sizeof(sample_raw) + 1];

        assert_json_str(ev, "event_id", env->event_id);
        assert_json_str(ev, "vendor", env->vendor);
        assert_json_str(ev, "event_type", env->event_type);
        assert_json_str(ev, "stream_id", env->stream_id);
        assert_json_str(ev, "anchor_id", env->anchor_id);
        assert_json_str(ev, "room_id", env->room_id);
        assert_json_str(ev, "trace_id", env->trace_id);
        cr_assert(
                eq(i64, json_integer_value(json_object_get(ev, "event_time")), env->event_time_ms));
        cr_assert(eq(i64, json_integer_value(json_object_get(ev, "receive_time")),
                     env->receive_time_ms));
        for (size_t i = 0; i < env->raw_len; i++)
                snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *)env->raw)[i]);
        assert_json_str(ev, "raw", hex);
        assert_json_str(ev, "payload_name", name);
        cr_assert(json_equal(json_object_get(ev, "payload"), (json_t *)payload),
                  "payload as python read it differs");
}

Test(codec, python_avro_reads_our_encoding)
{
        struct envelope env = sample_envelope();
        json_t *payload = parse(payloads[5].json), *out;
        char path[] = "/tmp/liveflow_codec_XXXXXX", cmd[512], fp[32];
        char *text, *schema, *canon;
        void *data;
        size_t len;
        int fd, status;

        require_python_avro();
        env.receive_time_ms = 1700000000456;
        encode_ok(&env, payloads[5].name, payload, &data, &len);
        fd = mkstemp(path);
        cr_assert(fd != -1, "mkstemp %s", path);
        cr_assert(eq(i64, write(fd, data, len), (int64_t)len));
        close(fd);
        snprintf(cmd, sizeof(cmd), PYTHON " %s %s %s", DECODER_PATH, SCHEMA_PATH, path);
        text = run_capture(cmd, &status);
        unlink(path);
        cr_assert(eq(int, status, 0), "%s failed (status %d): %s", cmd, status, text);
        out = parse(text);

        /* Python's fingerprint (its canonical form, its CRC) equals ours and the header's. */
        snprintf(fp, sizeof(fp), "%016" PRIx64, codec_fingerprint(codec));
        assert_json_str(out, "fingerprint", fp);
        schema = support_read_file(SCHEMA_PATH, NULL);
        cr_assert(eq(int, avro_sof_canonical_form(schema, &canon, errstr, sizeof(errstr)), 0));
        assert_json_str(out, "canonical_form", canon);
        assert_python_reads(out, &env, payloads[5].name, payload);

        free(canon);
        free(schema);
        json_decref(out);
        free(text);
        free(data);
        json_decref(payload);
}
