/* test_db_text.c: statements built piece by piece (db_text_add), checked against snprintf. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "support.h"

Test(db_text, literals_and_formatted_pieces_join_in_order)
{
        struct db_text t = {0};

        db_text_add(&t, "SELECT ");
        db_text_add(&t, "%d, %s", 42, "x");
        db_text_add(&t, " WHERE a = 100%%");
        db_text_add(&t, " -- %lld", -9000000000000000000LL);
        cr_assert(!t.is_oom);
        cr_assert_str_eq(t.s, "SELECT 42, x WHERE a = 100% -- -9000000000000000000");
        cr_assert_eq(t.len, strlen(t.s));
        db_text_free(&t);
}

/* Thousands of pieces of every size, some larger than the room left (and than the first
 * buffer): the text equals the same pieces joined by snprintf. */
Test(db_text, pieces_larger_than_the_room_left_grow_the_buffer)
{
        struct db_text t = {0};
        size_t cap = 8 << 20, len = 0;
        char *want = calloc(1, cap), *big = malloc(5000);

        cr_assert(want && big);
        memset(big, 'b', 4999);
        big[4999] = '\0';
        for (int i = 0; i < 3000; i++) {
                int w = (i * 37) % 5000;

                if (i % 3 == 0) {
                        db_text_add(&t, ", ");
                        len += (size_t)snprintf(want + len, cap - len, ", ");
                } else if (i % 3 == 1) {
                        db_text_add(&t, "(%d, '%.*s')", i, w, big);
                        len += (size_t)snprintf(want + len, cap - len, "(%d, '%.*s')", i, w, big);
                } else {
                        db_text_add(&t, "%.*s", w, big);
                        len += (size_t)snprintf(want + len, cap - len, "%.*s", w, big);
                }
                cr_assert_lt(len, cap);
        }
        cr_assert(!t.is_oom);
        cr_assert_eq(t.len, len);
        cr_assert_eq(memcmp(t.s, want, len + 1), 0, "the text differs from snprintf's");
        db_text_reset(&t);
        db_text_add(&t, "%s", "again");
        cr_assert_str_eq(t.s, "again");
        db_text_free(&t);
        free(want);
        free(big);
}

/* db_text_str() copies what needs no escape and escapes the rest: for every kind of string,
 * the same text as the connection's own escape between quotes. */
Test(db_text, strings_quote_exactly_as_the_connections_escape)
{
        static const char *const strings[] = {
                "",
                "anchor-1796478258-44",
                "aud_00 ~!@#$%^&*()[]{}<>?/|`=+-.,;:",
                "it's",
                "say \"hi\"",
                "back\\slash",
                "line\nbreak\r\x1a",
                "tab\there",
                "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x8e\x81",
                "\xc3\xa9'\\",
                "\x7f",
        };
        char url[512], err[512], want[256];
        struct db *db;

        support_create_database(url, sizeof(url));
        cr_assert((db = db_new(url, 5, err, sizeof(err))) != NULL, "%s", err);
        for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
                struct db_text t = {0};
                size_t len = strlen(strings[i]);

                want[0] = '\'';
                db_escape(db, want + 1, strings[i], len);
                snprintf(want + strlen(want), sizeof(want) - strlen(want), "'");
                db_text_add(&t, "x = ");
                db_text_str(db, &t, strings[i]);
                cr_assert(!t.is_oom);
                cr_assert_str_eq(t.s + 4, want, "string %zu", i);
                cr_assert_eq(t.len, 4 + strlen(want));
                db_text_free(&t);
        }
        db_destroy(db);
}

/* Integers and times printed without vsnprintf read as snprintf prints them, at every length and
 * across a growth of the buffer. */
Test(db_text, integers_and_times_print_as_snprintf)
{
        static const long long values[] = {0,
                                           -1,
                                           7,
                                           10,
                                           -10,
                                           999999,
                                           1000000,
                                           1700000000123LL,
                                           -9223372036854775807LL - 1,
                                           9223372036854775807LL};
        struct db_text t = {0};
        size_t cap = 1 << 20, len = 0;
        char *want = calloc(1, cap);

        cr_assert(want != NULL);
        for (int round = 0; round < 400; round++)
                for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
                        long long v = values[i] + (values[i] > 0 ? -round : round);

                        db_text_i64(&t, v);
                        db_text_add(&t, ",");
                        db_text_from_ms(&t, v);
                        db_text_add(&t, ";");
                        len += (size_t)snprintf(want + len, cap - len,
                                                "%lld,FROM_UNIXTIME(%lld / 1000);", v, v);
                }
        cr_assert(!t.is_oom);
        cr_assert_eq(t.len, len);
        cr_assert_str_eq(t.s, want);
        db_text_free(&t);
        free(want);
}
