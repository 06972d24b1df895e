/* test_strlist.c: comma-separated setting values. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "strlist.h"

/* Joins the items seen with '|', to compare the whole walk at once. */
static int collect(const char *item, size_t len, void *arg)
{
        char *out = arg;
        size_t have = strlen(out);

        snprintf(out + have, 256 - have, "%s%.*s", have ? "|" : "", (int)len, item);
        return 0;
}

static int stop_at_b(const char *item, size_t len, void *arg)
{
        (void)arg;
        return len == 1 && item[0] == 'b' ? -1 : 0;
}

Test(strlist, items_are_trimmed_and_empty_ones_skipped)
{
        char seen[256] = "";

        cr_assert_eq(strlist_each(" k1, k2 ,\tk3\t,, ,k4", collect, seen), 0);
        cr_assert_str_eq(seen, "k1|k2|k3|k4");
}

Test(strlist, null_and_blank_lists_have_no_items)
{
        char seen[256] = "";

        cr_assert_eq(strlist_each(NULL, collect, seen), 0);
        cr_assert_eq(strlist_each(" , ,", collect, seen), 0);
        cr_assert_str_eq(seen, "");
}

Test(strlist, a_failing_callback_stops_the_walk)
{
        cr_assert_eq(strlist_each("a,b,c", stop_at_b, NULL), -1);
        cr_assert_eq(strlist_each("a,c", stop_at_b, NULL), 0);
}

Test(strlist, copy_keeps_each_item_and_refuses_one_too_long_by_its_number)
{
        char **items = NULL, err[128] = "";
        size_t cnt = 0;

        cr_assert_eq(strlist_copy(" ab, cde ,,f", 3, "LIVEFLOW_X", "key", &items, &cnt, err,
                                  sizeof(err)),
                     0, "%s", err);
        cr_assert_eq(cnt, 3);
        cr_assert_str_eq(items[0], "ab");
        cr_assert_str_eq(items[1], "cde");
        cr_assert_str_eq(items[2], "f");
        cr_assert_eq(
                strlist_copy("g, hijk, l", 3, "LIVEFLOW_X", "key", &items, &cnt, err, sizeof(err)),
                -1);
        cr_assert_str_eq(err, "LIVEFLOW_X: key 5 is longer than 3 bytes");
        cr_assert_eq(cnt, 4, "what was copied before the refusal stays");
        cr_assert_str_eq(items[3], "g");
        strlist_free(items, cnt);
        strlist_free(NULL, 0);
}
