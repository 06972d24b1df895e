/* columns.c: test_tencent's limits of what the columns hold, and the unsigned 321 and 314. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "field_limits.h"
#include "fixture.h"

/* ------------------------------------------------------------ what the columns hold */

/* A string of n copies of unit (a UTF-8 character), for the length tests. */
static json_t *repeated(const char *unit, int n)
{
        char buf[2048] = "";

        for (int i = 0; i < n; i++)
                strcat(buf, unit);
        return json_string(buf);
}

static char *param_with(const char *name, const char *unit, int n)
{
        char buf[2048];

        snprintf(buf, sizeof(buf), "%s=", name);
        for (int i = 0; i < n; i++)
                strcat(buf, unit);
        return strdup(buf);
}

Test(tencent, every_id_that_fits_its_column_is_accepted_and_one_more_is_a_400)
{
        char *p;

        /* live_streams.stream_id VARCHAR(255), in characters (utf8mb4) */
        cr_assert(eq(int, map_edited(push_json, PUSH_T, "stream_id", repeated("\xe6\xb5\x81", 255)),
                     0),
                  "%s", verdict.message);
        webhook_event_fini(&ev); /* map_at() does not finish the last event */
        assert_refused_edit(push_json, PUSH_T, "stream_id", repeated("s", 256),
                            "stream_id: longer than 255");
        /* anchors.anchor_id and room ids VARCHAR(64), from stream_param */
        p = param_with("anchor_id", "a", 64);
        cr_assert(eq(int, map_edited(push_json, PUSH_T, "stream_param", json_string(p)), 0), "%s",
                  verdict.message);
        webhook_event_fini(&ev);
        free(p);
        p = param_with("anchor_id", "a", 65);
        assert_refused_edit(push_json, PUSH_T, "stream_param", json_string(p),
                            "stream_param: anchor_id longer than 64");
        free(p);
        p = param_with("room_id", "r", 65);
        assert_refused_edit(push_json, PUSH_T, "stream_param", json_string(p),
                            "stream_param: room_id longer than 64");
        free(p);
        /* live_streams.vendor_session VARCHAR(128) */
        cr_assert(eq(int, map_edited(push_json, PUSH_T, "sequence", repeated("9", 128)), 0), "%s",
                  verdict.message);
        webhook_event_fini(&ev);
        assert_refused_edit(push_json, PUSH_T, "sequence", repeated("9", 129),
                            "sequence: longer than 128");
}

/* ------------------------------------------------------------ unsigned 321 and 314 */

static int map_vouched(const char *body)
{
        const struct webhook_request req = {
                .body = body, .len = strlen(body), .now_ms = 1700000000LL * 1000};

        webhook_event_fini(&ev);
        memset(&verdict, 0, sizeof(verdict));
        return tencent_map_vouched(tc, &req, &ev, &verdict);
}

Test(tencent, unsigned_push_abnormal_and_relay_are_kept_unverified_when_the_source_is_vouched)
{
        cr_assert(eq(int, map_vouched(push_abnormal_json), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_str_eq(ev.event_type, "other.unverified");
        cr_assert_str_eq(ev.stream_id, "test_stream");
        cr_assert(eq(int, map_vouched(relay_json), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "other.unverified");
        cr_assert_str_eq(ev.stream_id, "testvod");
}

Test(tencent, without_a_voucher_or_for_other_types_unsigned_stays_401)
{
        char *unsigned_push = support_json_edit(push_json, "sign", json_null()), *no_t;

        webhook_event_fini(&ev);
        assert_refused(map_at(relay_json, 1700000000), 401, "missing", "sign");
        /* A stream begin acts on the stream: never unsigned, vouched or not. */
        no_t = support_json_edit(unsigned_push, "t", json_null());
        assert_refused(map_vouched(no_t), 401, "missing", "sign");
        /* A 321 with a wrong signature is a forgery, not an unsigned sample. */
        {
                char *forged = support_json_edit(push_abnormal_json, "sign",
                                                 json_string("00000000000000000000000000000000"));
                char *with_t = support_json_edit(forged, "t", json_integer(1700000600));

                assert_refused(map_vouched(with_t), 401, "mismatch", "sign");
                free(forged);
                free(with_t);
        }
        free(unsigned_push);
        free(no_t);
}
