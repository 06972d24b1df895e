/* test_payload.c: a payload record's fields without jansson (lib/payload.c). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"

Test(payload, keeps_fields_in_the_order_first_set)
{
        struct payload *p = payload_new();

        cr_assert(p != NULL);
        cr_assert(eq(int, payload_set_text(p, "b", "two", 3), 0));
        cr_assert(eq(int, payload_set_int(p, "a", -7), 0));
        cr_assert(eq(int, payload_set_bool(p, "c", true), 0));
        cr_assert(eq(sz, p->n, 3));
        cr_assert_str_eq(p->f[0].name, "b");
        cr_assert_str_eq(p->f[1].name, "a");
        cr_assert_str_eq(payload_get_text(p, "b"), "two");
        cr_assert(eq(i64, payload_get(p, "a")->n, -7));
        cr_assert(eq(int, payload_get(p, "c")->kind, PAYLOAD_BOOL));
        cr_assert_null(payload_get(p, "d"));
        cr_assert_null(payload_get_text(p, "a"), "an integer has no text");
        payload_destroy(p);
}

Test(payload, a_name_set_again_keeps_its_place_and_takes_the_new_value)
{
        struct payload *p = payload_new();

        cr_assert(eq(int, payload_set_text(p, "a", "old", 3), 0));
        cr_assert(eq(int, payload_set_text(p, "b", "x", 1), 0));
        cr_assert(eq(int, payload_set_int(p, "a", 5), 0));
        cr_assert(eq(sz, p->n, 2));
        cr_assert_str_eq(p->f[0].name, "a");
        cr_assert(eq(int, p->f[0].kind, PAYLOAD_INT));
        cr_assert(eq(int, payload_set_text(p, "a", "new", 3), 0));
        cr_assert_str_eq(payload_get_text(p, "a"), "new");
        payload_destroy(p);
}

Test(payload, text_is_copied_with_its_length_and_may_outgrow_the_inline_buffer)
{
        struct payload *p = payload_new();
        size_t big = 3 * PAYLOAD_INLINE_TEXT;
        char *s = malloc(big);

        memset(s, 'x', big);
        cr_assert(eq(int, payload_set_text(p, "short", "ab\0c", 4), 0));
        cr_assert(eq(int, payload_set_text(p, "long", s, big), 0));
        s[0] = 'y'; /* the payload holds its own copy */
        cr_assert(eq(sz, payload_get(p, "short")->len, 4));
        cr_assert(eq(int, memcmp(payload_get_text(p, "short"), "ab\0c", 5), 0));
        cr_assert(eq(sz, payload_get(p, "long")->len, big));
        cr_assert(eq(chr, payload_get_text(p, "long")[0], 'x'));
        cr_assert(eq(chr, payload_get_text(p, "long")[big], '\0'));
        cr_assert_not(p->has_failed);
        free(s);
        payload_destroy(p);
}

Test(payload, refuses_a_name_beyond_the_limit_and_says_so)
{
        static const char *const names[] = {"f0",  "f1",  "f2",  "f3",  "f4",  "f5",
                                            "f6",  "f7",  "f8",  "f9",  "f10", "f11",
                                            "f12", "f13", "f14", "f15", "f16"};
        struct payload *p = payload_new();

        for (size_t i = 0; i < PAYLOAD_MAX_FIELDS; i++)
                cr_assert(eq(int, payload_set_int(p, names[i], (int64_t)i), 0));
        cr_assert_not(p->has_failed);
        cr_assert(eq(int, payload_set_int(p, names[PAYLOAD_MAX_FIELDS], 1), -1));
        cr_assert(p->has_failed);
        cr_assert(eq(int, payload_set_int(p, "f3", 33), 0), "a known name can still be set");
        cr_assert(eq(i64, payload_get(p, "f3")->n, 33));
        payload_destroy(p);
}

Test(payload, converts_to_the_same_json_object)
{
        struct payload *p = payload_new();
        json_t *got, *want = json_pack("{s:s, s:I, s:b}", "s", "\xe4\xb8\xad", "n",
                                       (json_int_t)9007199254740993LL, "b", 0);

        cr_assert(eq(int, payload_set_text(p, "s", "\xe4\xb8\xad", 3), 0));
        cr_assert(eq(int, payload_set_int(p, "n", 9007199254740993LL), 0));
        cr_assert(eq(int, payload_set_bool(p, "b", false), 0));
        got = payload_to_json(p);
        cr_assert(json_equal(got, want));
        json_decref(got);
        json_decref(want);
        got = payload_to_json(NULL);
        cr_assert(got != NULL);
        cr_assert(eq(sz, json_object_size(got), 0));
        json_decref(got);
        payload_destroy(p);
        payload_destroy(NULL);
}
