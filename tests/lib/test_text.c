/* test_text.c: copying text into fixed buffers (lib/text.c), against snprintf's answers. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "text.h"

Test(text, copy_fits_cuts_and_reports_like_snprintf)
{
        const char *const srcs[] = {"", "a", "abcd", "abcdefgh", "abcdefghijkl"};

        for (size_t i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++)
                for (size_t size = 0; size <= 10; size++) {
                        char got[12] = "xxxxxxxxxxx", want[12] = "xxxxxxxxxxx";
                        int n = snprintf(want, size, "%s", srcs[i]);

                        cr_assert(eq(sz, text_copy(got, size, srcs[i]), (size_t)n));
                        cr_assert(eq(int, memcmp(got, want, sizeof(got)), 0), "\"%s\" into %zu",
                                  srcs[i], size);
                }
}

Test(text, appends_build_what_one_snprintf_would)
{
        for (size_t size = 1; size <= 16; size++) {
                char got[16], want[16];
                size_t len = 0;
                int cut = 0;

                got[0] = '\0';
                cut |= text_append(got, size, &len, "tencent");
                cut |= text_append(got, size, &len, ":");
                cut |= text_append(got, size, &len, "");
                cut |= text_append(got, size, &len, "42");
                snprintf(want, size, "%s:%s%s", "tencent", "", "42");
                cr_assert_str_eq(got, want, "size %zu", size);
                cr_assert(eq(sz, len, strlen(want)));
                cr_assert(eq(int, cut, size <= strlen("tencent:42") ? -1 : 0), "size %zu", size);
        }
}

Test(text, int_is_printfs_decimal)
{
        const long long ns[] = {0, 7, -7, 10, 99, 100, -100, 123456789, LLONG_MAX, LLONG_MIN};

        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
                char got[TEXT_LL_MAX], want[32];
                int n = snprintf(want, sizeof(want), "%lld", ns[i]);

                cr_assert(eq(sz, text_int(got, sizeof(got), ns[i]), (size_t)n));
                cr_assert_str_eq(got, want);
        }
}

Test(text, int_cut_to_a_short_buffer)
{
        char got[4];

        cr_assert(eq(sz, text_int(got, sizeof(got), -12345), 6));
        cr_assert_str_eq(got, "-12");
}
