/* test_fields.c: form values as vendors send them (callback-receiver/fields.c). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../callback-receiver/fields.h" /* the Makefile gives tests no -I<program dir> */

static char *decode(const char *s)
{
        return fields_form_decode(s, strlen(s));
}

Test(form_decode, escapes_and_plus_are_decoded)
{
        char *s = decode("a%2F1+b%2b%7e");

        cr_assert_str_eq(s, "a/1 b+~");
        free(s);
        s = decode("%E6%88%BF%e9%97%b4"); /* either case of hex digit */
        cr_assert_str_eq(s, "\xe6\x88\xbf\xe9\x97\xb4");
        free(s);
}

Test(form_decode, a_percent_without_two_hex_digits_stays)
{
        const char *const kept[] = {"%", "a%", "a%4", "%4g", "%%41", "100%"};
        const char *const want[] = {"%", "a%", "a%4", "%4g", "%A", "100%"};

        for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
                char *s = decode(kept[i]);

                cr_assert_str_eq(s, want[i], "%s", kept[i]);
                free(s);
        }
}

Test(form_decode, only_the_given_length_is_read)
{
        char *s = fields_form_decode("ab%41&c=d", 5);

        cr_assert_str_eq(s, "abA");
        free(s);
        s = fields_form_decode("ab%4", 3); /* "%4" cut off: the '%' is kept, no read past it */
        cr_assert_str_eq(s, "ab%");
        free(s);
}

Test(form_decode, nul_and_bad_utf8_are_refused)
{
        const char *const bad[] = {
                "a%00b",        /* NUL */
                "%FF",          /* never in UTF-8 */
                "%C3",          /* truncated two-byte sequence */
                "%C0%AF",       /* overlong '/' */
                "%E0%80%AF",    /* overlong three-byte */
                "%ED%A0%80",    /* a surrogate */
                "%F4%90%80%80", /* past U+10FFFF */
                "%80",          /* a lone continuation byte */
                "ok%E6%88",     /* cut inside a character */
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                cr_assert_null(decode(bad[i]), "%s", bad[i]);
}

/* Every one- and two-byte value, and every three-byte value led by E0..EF with a second byte
 * in 80..BF: accepted exactly when jansson (the check used before) takes it as a string. */
Test(form_decode, utf8_verdict_is_janssons)
{
        char in[16];
        unsigned char raw[3];

        for (unsigned a = 1; a < 256; a++)
                for (unsigned b = 0; b < 256; b++) {
                        raw[0] = (unsigned char)a;
                        raw[1] = (unsigned char)b;
                        for (unsigned c = 0x7f;
                             c < (a >= 0xe0 && b >= 0x80 && b < 0xc0 ? 0xc1u : 0x80u); c++) {
                                size_t n = c == 0x7f ? 2 : 3;
                                json_t *j;
                                char *s;

                                raw[2] = (unsigned char)c;
                                if (n == 2)
                                        snprintf(in, sizeof(in), "%%%02X%%%02X", a, b);
                                else
                                        snprintf(in, sizeof(in), "%%%02X%%%02X%%%02X", a, b, c);
                                j = b ? json_stringn((const char *)raw, n) : NULL;
                                s = decode(in);
                                cr_assert(eq(int, s != NULL, j != NULL), "%s", in);
                                if (s)
                                        cr_assert(eq(int, memcmp(s, raw, n), 0), "%s", in);
                                free(s);
                                json_decref(j);
                        }
                }
}
