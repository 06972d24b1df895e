/*
 * test_notify_payload.c: a notification's payload written without a JSON tree
 * (lib/notify_payload.c) against jansson, which wrote it before: json_pack() of kind and at_ms,
 * json_object_set_new() of each field m has, json_dumps(JSON_COMPACT). Same bytes, same
 * fields, same refusals.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "notify.h"
#include "notify_payload.h"
#include "payload.h"
#include "text.h"

/* ------------------------------------------------------------------ the oracle: jansson */

static void oracle_str(json_t *p, const char *name, const char *v)
{
        if (v && *v)
                json_object_set_new(p, name, json_string(v)); /* NULL for bad UTF-8: left out */
}

static void oracle_num(json_t *p, const char *name, long long v)
{
        if (v >= 0)
                json_object_set_new(p, name, json_integer(v));
}

static char *oracle(const struct notify_msg *m)
{
        json_t *p = json_pack("{s:s,s:I}", "kind", m->kind, "at_ms", (json_int_t)m->at_ms);
        char *text;

        if (!p)
                return NULL;
        if (m->session_id > 0)
                json_object_set_new(p, "session_id", json_integer(m->session_id));
        oracle_str(p, "title", m->title);
        oracle_str(p, "cover_url", m->cover_url);
        oracle_str(p, "reason", m->reason);
        oracle_str(p, "request_id", m->request_id);
        oracle_str(p, "file_id", m->file_id);
        oracle_str(p, "playback_url", m->playback_url);
        oracle_num(p, "duration_s", m->duration_s);
        oracle_num(p, "close_method", m->close_method);
        oracle_num(p, "until_ms", m->until_ms);
        oracle_num(p, "amount", m->amount);
        text = json_dumps(p, JSON_COMPACT);
        json_decref(p);
        return text;
}

/* The text and the fields against the oracle: the fields, as a jansson object, equal it too
   (they are kept in the schema's order, which an object does not look at). */
static void assert_as_jansson(const struct notify_msg *m)
{
        char *want = oracle(m);
        struct payload *fields = NULL;
        size_t len = 0;
        char *got = notify_payload_json(m, &len, &fields);
        json_t *obj, *want_obj;

        cr_assert(want != NULL, "the oracle refused kind %s", m->kind);
        cr_assert(got != NULL);
        cr_assert_str_eq(got, want);
        cr_assert(eq(sz, len, strlen(want)));
        cr_assert(fields != NULL);
        obj = payload_to_json(fields);
        want_obj = json_loads(want, 0, NULL);
        cr_assert(want_obj != NULL);
        cr_assert(json_equal(obj, want_obj), "the fields for the Avro writer differ from %s", want);
        cr_assert(eq(sz, json_object_size(obj), json_object_size(want_obj)));
        json_decref(want_obj);
        json_decref(obj);
        payload_destroy(fields);
        free(got);
        free(want);
}

/* ------------------------------------------------------------------ cases */

Test(notify_payload, a_message_with_every_field_is_written_as_jansson_wrote_it)
{
        struct notify_msg m = notify_msg_init("stream.ended", "42", 1764966000123LL);

        m.session_id = 42;
        m.title = "Evening show";
        m.cover_url = "https://cdn.example/c/42.jpg";
        m.reason = "ended by the anchor";
        m.request_id = "wd-7";
        m.file_id = "5285890781763144364";
        m.playback_url = "https://vod.example/5285890781763144364.mp4";
        m.duration_s = 3600;
        m.close_method = 1;
        m.until_ms = 1765000000000LL;
        m.amount = 990;
        assert_as_jansson(&m);
}

Test(notify_payload, absent_empty_and_negative_fields_are_left_out_as_before)
{
        struct notify_msg m = notify_msg_init("anchor.warned", "k", 0);

        assert_as_jansson(&m); /* kind and at_ms only */
        m.title = "";
        m.reason = "";
        m.session_id = -3; /* only > 0 is a session */
        m.duration_s = 0;  /* 0 is a length */
        m.amount = -1;
        assert_as_jansson(&m);
        m.at_ms = -5; /* at_ms goes whatever it is */
        m.session_id = 0;
        m.until_ms = LLONG_MAX;
        m.close_method = 0;
        assert_as_jansson(&m);
        m.at_ms = LLONG_MIN;
        assert_as_jansson(&m);
}

Test(notify_payload, quotes_backslashes_and_control_bytes_are_escaped_as_jansson_escapes_them)
{
        char every_control[40];
        struct notify_msg m = notify_msg_init("anchor.banned", "k", 1);

        for (int c = 1; c < 0x20; c++)
                every_control[c - 1] = (char)c;
        memcpy(every_control + 31, "\x7f/\"\\", 5); /* DEL, a slash, then NUL */
        m.reason = every_control;
        m.title = "say \"hi\" \\o/ \b\f\n\r\t";
        m.cover_url = "\"";
        m.file_id = "\\";
        m.request_id = "\n";
        assert_as_jansson(&m);
}

/* The writer looks at eight bytes at a time: an escape at every place of a longer text. */
Test(notify_payload, an_escape_anywhere_in_a_long_text_is_written_as_jansson_writes_it)
{
        static const char specials[] = {'"', '\\', '\n', '\x01', '\x1f', '\x7f', '/'};
        struct notify_msg m = notify_msg_init("anchor.warned", "k", 3);
        char text[30];

        for (size_t k = 0; k < sizeof(specials); k++)
                for (size_t at = 0; at < sizeof(text) - 1; at++) {
                        memset(text, 'a', sizeof(text) - 1);
                        text[sizeof(text) - 1] = '\0';
                        text[at] = specials[k];
                        if (at + 9 < sizeof(text) - 1)
                                text[at + 9] = specials[(k + 1) % sizeof(specials)];
                        m.reason = text;
                        assert_as_jansson(&m);
                }
}

Test(notify_payload, utf8_goes_as_it_is_and_a_text_that_is_not_utf8_is_left_out_as_before)
{
        struct notify_msg m = notify_msg_init("stream.live", "s", 2);

        m.title =
                "直播间 \xc3\xa9t\xc3\xa9 \xf0\x9f\x8e\x89 \xe2\x80\xa8 \xef\xbf\xbf"; /* U+2028 */
        m.reason = "\xc0\xaf";           /* overlong '/' */
        m.cover_url = "ok\x80";          /* a lone continuation byte */
        m.request_id = "\xed\xa0\x80";   /* a surrogate */
        m.file_id = "\xf4\x90\x80\x80";  /* past U+10FFFF */
        m.playback_url = "cut \xe6\x97"; /* a cut sequence */
        assert_as_jansson(&m);
        m.reason = "\xf0\x9f\x98\x80 four bytes";
        m.request_id = "\xdf\xbf two bytes";
        assert_as_jansson(&m);
}

Test(notify_payload, a_kind_jansson_refused_is_refused)
{
        struct notify_msg m = notify_msg_init("bad\xff", "k", 1);
        struct payload *fields = (struct payload *)1;

        cr_assert_null(oracle(&m));
        cr_assert_null(notify_payload_json(&m, NULL, &fields));
        cr_assert_null(fields);
        m.kind = NULL;
        cr_assert_null(notify_payload_json(&m, NULL, NULL));
}

/* A byte string from pieces that test every branch of the writer and of the UTF-8 check. */
static void random_text(char *buf, size_t size, unsigned *seed)
{
        static const char *const pieces[] = {"a",
                                             "Z",
                                             " ",
                                             "\"",
                                             "\\",
                                             "/",
                                             "\n",
                                             "\x01",
                                             "\x1f",
                                             "\x7f",
                                             "\xc3\xa9",
                                             "\xe4\xb8\xad",
                                             "\xf0\x9f\x8e\x89",
                                             "\x80",
                                             "\xc0\xaf",
                                             "\xed\xa0\x80",
                                             "\xe6",
                                             "https://x.example/p?q=1&r=2",
                                             "\t",
                                             "\xf4\x8f\xbf\xbf",
                                             ""};
        size_t len = 0, n = (size_t)(rand_r(seed) % 12);

        buf[0] = '\0';
        for (size_t i = 0; i < n; i++) /* a piece that does not fit is cut: more bad UTF-8 */
                text_append(buf, size, &len,
                            pieces[rand_r(seed) % (sizeof(pieces) / sizeof(*pieces))]);
}

static long long random_num(unsigned *seed)
{
        switch (rand_r(seed) % 4) {
        case 0:
                return -1;
        case 1:
                return 0;
        case 2:
                return rand_r(seed);
        default:
                return (long long)rand_r(seed) * 1000003LL;
        }
}

Test(notify_payload, many_random_messages_are_written_as_jansson_wrote_them)
{
        static const char *const kinds[] = {"stream.live",         "stream.ended",
                                            "anchor.warned",       "anchor.suspended",
                                            "withdrawal.rejected", "record.ready"};
        unsigned seed = 15;

        for (int round = 0; round < 2000; round++) {
                char t[6][128];
                struct notify_msg m = notify_msg_init(kinds[round % 6], "k", random_num(&seed) - 1);

                for (int i = 0; i < 6; i++)
                        random_text(t[i], sizeof(t[i]), &seed);
                m.session_id = random_num(&seed);
                m.title = rand_r(&seed) % 5 ? t[0] : NULL;
                m.cover_url = t[1];
                m.reason = t[2];
                m.request_id = rand_r(&seed) % 3 ? t[3] : NULL;
                m.file_id = t[4];
                m.playback_url = t[5];
                m.duration_s = random_num(&seed);
                m.close_method = random_num(&seed);
                m.until_ms = random_num(&seed);
                m.amount = random_num(&seed);
                assert_as_jansson(&m);
        }
}

/* The relay encodes a batch's message from its fields, one read back from its text: one answer,
   and avro-c's (codec_encode()) too. */
static void assert_one_encoding(struct codec *c, const struct notify_msg *m)
{
        struct payload *fields = NULL;
        char *text = notify_payload_json(m, NULL, &fields), errstr[256] = "";
        json_t *json = json_loads(text, 0, NULL);
        struct envelope env = {.event_id = "e1",
                               .vendor = "liveflow",
                               .event_type = m->kind,
                               .anchor_id = "a1",
                               .event_time_ms = m->at_ms,
                               .receive_time_ms = 1764966000999LL,
                               .trace_id = "t1",
                               .raw = text,
                               .raw_len = strlen(text)};
        void *from_fields = NULL, *from_json = NULL, *from_avro = NULL;
        size_t fields_len = 0, json_len = 0, avro_len = 0;

        cr_assert(json != NULL && fields != NULL);
        cr_assert(eq(int,
                     codec_encode_direct(c, &env, "Notify", fields, NULL, &from_fields, &fields_len,
                                         errstr, sizeof(errstr)),
                     0),
                  "%s", errstr);
        cr_assert(eq(int,
                     codec_encode_direct(c, &env, "Notify", NULL, json, &from_json, &json_len,
                                         errstr, sizeof(errstr)),
                     0),
                  "%s", errstr);
        cr_assert(eq(int,
                     codec_encode(c, &env, "Notify", json, &from_avro, &avro_len, errstr,
                                  sizeof(errstr)),
                     0),
                  "%s", errstr);
        cr_assert(eq(sz, fields_len, json_len));
        cr_assert(eq(sz, fields_len, avro_len));
        cr_assert(eq(int, memcmp(from_fields, from_json, fields_len), 0));
        cr_assert(eq(int, memcmp(from_fields, from_avro, fields_len), 0));
        free(from_fields);
        free(from_json);
        free(from_avro);
        json_decref(json);
        payload_destroy(fields);
        free(text);
}

Test(notify_payload, the_fields_encode_as_the_text_read_back_encodes)
{
        char errstr[256];
        struct codec *c = codec_new(errstr, sizeof(errstr));
        struct notify_msg m = notify_msg_init("record.ready", "f1", 1764966000123LL);

        cr_assert(c != NULL, "%s", errstr);
        assert_one_encoding(c, &m);
        m.session_id = 7;
        m.file_id = "f1 \"x\"";
        m.playback_url = "https://vod.example/\xe5\xbd\x95.mp4";
        m.duration_s = 61;
        assert_one_encoding(c, &m);
        m = notify_msg_init("stream.ended", "7", 5);
        m.title = "t\n";
        m.cover_url = "c";
        m.reason = "\xc0\xaf"; /* left out of both */
        m.close_method = 2;
        m.until_ms = 9;
        m.request_id = "r";
        m.amount = 0;
        assert_one_encoding(c, &m);
        codec_destroy(c);
}
