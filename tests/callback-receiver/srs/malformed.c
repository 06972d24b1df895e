/* malformed.c: test_srs's malformed bodies: each refused with a 400 that names what is wrong. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "crypto.h"
#include "metrics.h"
#include "settings.h"
#include "fixture.h"
#include "srs.h"
#include "support.h"
#include "url.h"

/* ------------------------------------------------------------ malformed bodies */

Test(srs, malformed_json_is_400)
{
        assert_refused(map("{\"action\":\"on_play\","), 400, NULL, "JSON");
        assert_refused(map("not json"), 400, NULL, "JSON");
}

Test(srs, empty_body_is_400)
{
        assert_refused(map_len(NULL, 0), 400, NULL, "body");
        assert_refused(map(""), 400, NULL, "body");
}

Test(srs, body_that_is_not_an_object_is_400)
{
        assert_refused(map("[{\"action\":\"on_play\"}]"), 400, NULL, "object");
        assert_refused(map("42"), 400, NULL, "body");
        assert_refused(map("\"on_play\""), 400, NULL, "body");
        assert_refused(map("null"), 400, NULL, "body");
}

Test(srs, duplicate_keys_are_400)
{
        assert_refused(map("{\"action\":\"on_stop\",\"action\":\"on_publish\",\"stream\":\"s\","
                           "\"client_id\":\"c\"}"),
                       400, NULL, "JSON");
}

Test(srs, invalid_utf8_and_nul_bytes_are_400)
{
        static const char nul_inside[] =
                "{\"action\":\"on_play\",\"stream\":\"a\0b\",\"client_id\":\"c\"}";

        assert_refused(map("{\"action\":\"on_play\",\"stream\":\"\xff\xfe\",\"client_id\":\"c\"}"),
                       400, NULL, "JSON");
        assert_refused(map_len(nul_inside, sizeof(nul_inside) - 1), 400, NULL, "JSON");
        assert_refused(map("{\"action\":\"on_play\",\"stream\":\"a\\u0000b\",\"client_id\":\"c\"}"),
                       400, NULL, "JSON");
}

Test(srs, missing_action_is_named)
{
        char *body = support_json_edit(play_json, "action", json_null());

        assert_refused(map(body), 400, NULL, "action");
        free(body);
}

Test(srs, action_that_is_not_a_string_is_named)
{
        char *a = support_json_edit(play_json, "action", json_integer(3));
        char *b = support_json_edit(play_json, "action", json_string(""));

        assert_refused(map(a), 400, NULL, "action");
        assert_refused(map(b), 400, NULL, "action");
        free(a);
        free(b);
}

Test(srs, stream_actions_need_a_stream)
{
        const char *const samples[] = {publish_json, unpublish_json, play_json, stop_json,
                                       dvr_json};

        for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
                char *missing = support_json_edit(samples[i], "stream", json_null());
                char *empty = support_json_edit(samples[i], "stream", json_string(""));

                assert_refused(map(missing), 400, NULL, "stream is missing");
                assert_refused(map(empty), 400, NULL, "stream is missing");
                free(missing);
                free(empty);
        }
        cr_assert(eq(int, fake.calls, 0));
}

Test(srs, stream_actions_need_a_client_id)
{
        char *a = support_json_edit(play_json, "client_id", json_null());
        char *b = support_json_edit(publish_json, "client_id", json_string(""));

        assert_refused(map(a), 400, NULL, "client_id");
        assert_refused(map(b), 400, NULL, "client_id");
        free(a);
        free(b);
}

Test(srs, other_actions_need_no_stream)
{
        char *body = support_json_edit(hls_json, "stream", json_null());

        assert_mapped(map(body));
        cr_assert_null(ev.key);
        free(body);
}

Test(srs, dvr_needs_a_file)
{
        char *body = support_json_edit(dvr_json, "file", json_null());

        assert_refused(map(body), 400, NULL, "file");
        free(body);
}

Test(srs, fields_of_the_wrong_type_are_named)
{
        char *a = support_json_edit(play_json, "ip", json_integer(5));
        char *b = support_json_edit(play_json, "client_id", json_real(1.5));
        char *c = support_json_edit(play_json, "stream", json_integer(7));
        char *d = support_json_edit(publish_json, "param", json_pack("{s:s}", "anchor_id", "a1"));

        assert_refused(map(a), 400, NULL, "ip");
        assert_refused(map(b), 400, NULL, "client_id");
        assert_refused(map(c), 400, NULL, "stream");
        assert_refused(map(d), 400, NULL, "param");
        free(a);
        free(b);
        free(c);
        free(d);
}

/* The sample with field set to JSON null (support_json_edit() removes a field given json_null()).
 */
static char *with_null(const char *sample, const char *field)
{
        json_t *root = json_loads(sample, 0, NULL);
        char *s;

        cr_assert(root != NULL);
        json_object_set_new(root, field, json_null());
        s = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return s;
}

Test(srs, null_is_the_same_as_absent)
{
        char *ip = with_null(play_json, "ip"), *stream = with_null(play_json, "stream");

        assert_mapped(map(ip));
        cr_assert_null(json_object_get(ev.payload, "ip"));
        assert_refused(map(stream), 400, NULL, "stream is missing");
        free(ip);
        free(stream);
}
