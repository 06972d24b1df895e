/*
 * test_check_limits.c: webhook_check_limits(), the last check before a 200: every row of
 * lib/field_limits.c, in an event's envelope or payload, fits at its limit in characters
 * (multi-byte included) and is refused one character over with 400 naming the field; tags
 * one by one; the audience role's byte limits on viewer and app events only.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "field_limits.h"
#include "../../callback-receiver/webhook.h"

#define CJK "\xe4\xb8\xbb" /* one character, three bytes */

static struct webhook_event ev;
static struct webhook_verdict v;

static void fresh(const char *topic)
{
        webhook_event_fini(&ev);
        memset(&v, 0, sizeof(v));
        ev.topic = topic;
        ev.payload = json_object();
}

static void fini(void)
{
        webhook_event_fini(&ev);
}

TestSuite(check_limits, .fini = fini);

/* n characters of CJK (n * 3 bytes), malloc'd. */
static char *chars(size_t n)
{
        char *s = malloc(n * 3 + 1);

        cr_assert(s != NULL);
        for (size_t i = 0; i < n; i++)
                memcpy(s + 3 * i, CJK, 3);
        s[n * 3] = '\0';
        return s;
}

static void put(const char *field, char *value)
{
        if (strcmp(field, "stream_id") == 0)
                ev.stream_id = value;
        else if (strcmp(field, "anchor_id") == 0)
                ev.anchor_id = value;
        else if (strcmp(field, "room_id") == 0)
                ev.room_id = value;
        else if (strcmp(field, "tag") == 0) {
                json_t *list = json_pack("[s,s]", "ok", value);
                char *text = json_dumps(list, JSON_COMPACT);

                json_object_set_new(ev.payload, "tags", json_string(text));
                free(text);
                json_decref(list);
                free(value);
        } else {
                json_object_set_new(ev.payload, field, json_string(value));
                free(value);
        }
}

Test(check_limits, every_field_of_the_table_fits_at_its_limit_and_is_400_one_over)
{
        for (const struct field_limit *f = field_limits; f->field; f++) {
                char want[64];

                fresh("live.stream");
                put(f->field, chars(f->max_chars));
                cr_assert(eq(int, webhook_check_limits(&ev, "", &v), 0), "%s at %zu: %s", f->field,
                          f->max_chars, v.message);
                fresh("live.stream");
                put(f->field, chars(f->max_chars + 1));
                cr_assert(eq(int, webhook_check_limits(&ev, "events[3].", &v), -1), "%s", f->field);
                cr_assert(eq(u32, v.status, 400));
                snprintf(want, sizeof(want), "events[3].%s:", f->field);
                cr_assert(strstr(v.message, want) != NULL, "\"%s\" lacks \"%s\"", v.message, want);
        }
}

Test(check_limits, fields_without_a_column_and_non_texts_are_left_alone)
{
        char *long_text = chars(5000);

        fresh("live.stream");
        json_object_set_new(ev.payload, "client_ip", json_string(long_text));
        json_object_set_new(ev.payload, "close_method", json_integer(1));
        cr_assert(eq(int, webhook_check_limits(&ev, "", &v), 0), "%s", v.message);
        free(long_text);
}

Test(check_limits, viewer_and_app_events_also_fit_the_audience_roles_bytes)
{
        /* 22 characters, 66 bytes: a column holds it, the audience role's 64 bytes do not. */
        fresh("live.stream");
        ev.room_id = chars(22);
        cr_assert(eq(int, webhook_check_limits(&ev, "", &v), 0), "%s", v.message);
        fresh("live.viewer");
        ev.room_id = chars(22);
        cr_assert(eq(int, webhook_check_limits(&ev, "", &v), -1));
        cr_assert(strstr(v.message, "room_id") != NULL, "%s", v.message);
        fresh("live.interaction");
        json_object_set_new(ev.payload, "audience_id", json_string("u1"));
        ev.room_id = strdup("r1");
        cr_assert(eq(int, webhook_check_limits(&ev, "", &v), 0), "%s", v.message);
        fresh("live.viewer");
        {
                char *id = chars(43); /* 43 characters, 129 bytes */

                json_object_set_new(ev.payload, "client_id", json_string(id));
                free(id);
        }
        cr_assert(eq(int, webhook_check_limits(&ev, "", &v), -1));
        cr_assert(strstr(v.message, "client_id") != NULL, "%s", v.message);
}
