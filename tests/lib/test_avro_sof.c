/* test_avro_sof.c: schema canonical forms and fingerprints (lib/avro_sof.c). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_sof.h"

static char errstr[512];

/*
 * From apache/avro share/test/data/schema-tests.txt (the specification's shared test data,
 * whose fingerprints the Java implementation cross-checks); the number is the case there.
 * fingerprint 0 means the case lists none.
 */
static const struct {
        int id;
        const char *input;
        const char *canonical;
        int64_t fingerprint;
} spec_cases[] = {
        {0, "\"null\"", "\"null\"", INT64_C(7195948357588979594)},
        {1, "{\"type\":\"null\"}", "\"null\"", 0},
        {2, "\"boolean\"", "\"boolean\"", INT64_C(-6970731678124411036)},
        {4, "\"int\"", "\"int\"", INT64_C(8247732601305521295)},
        {5, "{\"type\":\"int\"}", "\"int\"", 0},
        {6, "\"long\"", "\"long\"", INT64_C(-3434872931120570953)},
        {10, "\"double\"", "\"double\"", INT64_C(-8181574048448539266)},
        {12, "\"bytes\"", "\"bytes\"", INT64_C(5746618253357095269)},
        {14, "\"string\"", "\"string\"", INT64_C(-8142146995180207161)},
        {16, "[  ]", "[]", INT64_C(-1241056759729112623)},
        {17, "[ \"int\"  ]", "[\"int\"]", INT64_C(-5232228896498058493)},
        {18, "[ \"int\" , {\"type\":\"boolean\"} ]", "[\"int\",\"boolean\"]",
         INT64_C(5392556393470105090)},
        {19, "{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}",
         "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4824392279771201922)},
        {20, "{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
         "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(5916914534497305771)},
        {21, "{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
         "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4616218487480524110)},
        {24,
         "{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"foo\", "
         "\"aliases\":[\"foo\",\"bar\"]}",
         "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4824392279771201922)},
        {25,
         "{\"fields\":[{\"type\":{\"type\":\"boolean\"}, \"name\":\"f1\"}], \"type\":\"record\", "
         "\"name\":\"foo\"}",
         "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"}]"
         "}",
         INT64_C(7843277075252814651)},
        {26,
         "{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", "
         "\"default\":\"true\"},\n"
         "            "
         "{\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}],\n"
         "  \"type\":\"record\", \"name\":\"foo\"\n}",
         "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},"
         "{\"name\":\"f2\",\"type\":\"int\"}]}",
         INT64_C(-4860222112080293046)},
        {27, "{\"type\":\"enum\", \"name\":\"foo\", \"symbols\":[\"A1\"]}",
         "{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}",
         INT64_C(-6342190197741309591)},
        {28,
         "{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", "
         "\"symbols\":[\"A1\", \"A2\"]}",
         "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}",
         INT64_C(-4448647247586288245)},
        {29, "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
         "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}", INT64_C(1756455273707447556)},
        {30,
         "{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", "
         "\"size\":32}",
         "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}", INT64_C(-3064184465700546786)},
        {31, "{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}",
         "{\"type\":\"array\",\"items\":\"null\"}", INT64_C(-589620603366471059)},
        {32, "{ \"values\":\"string\", \"type\":\"map\"}",
         "{\"type\":\"map\",\"values\":\"string\"}", INT64_C(-8732877298790414990)},
        {33,
         "  {\"name\":\"PigValue\",\"type\":\"record\",\n"
         "   \"fields\":[{\"name\":\"value\", \"type\":[\"null\", \"int\", \"long\", "
         "\"PigValue\"]}]}",
         "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":["
         "\"null\",\"int\","
         "\"long\",\"PigValue\"]}]}",
         INT64_C(-1759257747318642341)},
};

Test(avro_sof, canonical_form_and_fingerprint_match_the_spec_test_data)
{
        for (size_t i = 0; i < sizeof(spec_cases) / sizeof(spec_cases[0]); i++) {
                char *canon;

                cr_assert(eq(int,
                             avro_sof_canonical_form(spec_cases[i].input, &canon, errstr,
                                                     sizeof(errstr)),
                             0),
                          "case %03d: %s", spec_cases[i].id, errstr);
                cr_assert(strcmp(canon, spec_cases[i].canonical) == 0, "case %03d: got %s, want %s",
                          spec_cases[i].id, canon, spec_cases[i].canonical);
                if (spec_cases[i].fingerprint)
                        cr_assert(eq(i64, (int64_t)avro_sof_crc64(canon, strlen(canon)),
                                     spec_cases[i].fingerprint),
                                  "case %03d", spec_cases[i].id);
                free(canon);
        }
        cr_assert(eq(u64, avro_sof_crc64("\"int\"", 5), UINT64_C(0x7275d51a3f395c8f)));
        cr_assert(eq(u64, avro_sof_crc64(NULL, 0), UINT64_C(0xc15d213aa4d7a795)));
}

Test(avro_sof, nested_names_take_the_enclosing_namespace)
{
        /* Spec "Names": a nested definition without a namespace takes the enclosing one; a
         * dotted name is already full; references are written as full names. The expected
         * text is what python-avro 1.11.1 and Java's SchemaNormalization both produce. */
        static const char input[] =
                "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"a\",\"fields\":["
                "{\"name\":\"f\",\"type\":{\"type\":\"record\",\"name\":\"S\",\"fields\":[]}},"
                "{\"name\":\"g\",\"type\":\"S\"},"
                "{\"name\":\"h\",\"type\":{\"type\":\"enum\",\"name\":\"b.E\",\"symbols\":[\"X\"]}}"
                ","
                "{\"name\":\"i\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":\"4\"}}]}";
        static const char want[] =
                "{\"name\":\"a.R\",\"type\":\"record\",\"fields\":["
                "{\"name\":\"f\",\"type\":{\"name\":\"a.S\",\"type\":\"record\",\"fields\":[]}},"
                "{\"name\":\"g\",\"type\":\"a.S\"},"
                "{\"name\":\"h\",\"type\":{\"name\":\"b.E\",\"type\":\"enum\",\"symbols\":[\"X\"]}}"
                ","
                "{\"name\":\"i\",\"type\":{\"name\":\"a.F\",\"type\":\"fixed\",\"size\":4}}]}";
        char *canon;

        cr_assert(eq(int, avro_sof_canonical_form(input, &canon, errstr, sizeof(errstr)), 0), "%s",
                  errstr);
        cr_assert_str_eq(canon, want);
        free(canon);
}

Test(avro_sof, logical_types_reduce_to_their_primitive)
{
        /* [PRIMITIVES] as Java's SchemaNormalization applies it; \u escapes become UTF-8
         * ([STRINGS]). */
        char *canon;

        cr_assert(eq(
                int,
                avro_sof_canonical_form("{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}",
                                        &canon, errstr, sizeof(errstr)),
                0));
        cr_assert_str_eq(canon, "\"long\"");
        free(canon);
        cr_assert(eq(int,
                     avro_sof_canonical_form(
                             "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"\\u00e9\"]}", &canon,
                             errstr, sizeof(errstr)),
                     0));
        cr_assert_str_eq(canon, "{\"name\":\"E\",\"type\":\"enum\",\"symbols\":[\"\xc3\xa9\"]}");
        free(canon);
}

Test(avro_sof, rejects_what_is_not_a_schema)
{
        char *canon = (char *)"untouched";

        cr_assert(
                eq(int, avro_sof_canonical_form("{\"type\":", &canon, errstr, sizeof(errstr)), -1));
        cr_assert(eq(ptr, canon, NULL));
        cr_assert(eq(int, avro_sof_canonical_form("42", &canon, errstr, sizeof(errstr)), -1));
        cr_assert(eq(int,
                     avro_sof_canonical_form("{\"type\":\"record\",\"fields\":[]}", &canon, errstr,
                                             sizeof(errstr)),
                     -1));
        cr_assert_str_eq(errstr, "named schema without a \"name\" string");
        cr_assert(eq(int,
                     avro_sof_canonical_form("{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}",
                                             &canon, errstr, sizeof(errstr)),
                     -1));
}
