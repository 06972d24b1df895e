/*
 * test_field_limits.c: lib/field_limits.c against the migrated schema. Every field's limit is
 * the width of the narrowest column it is stored in, read from information_schema after
 * sql/ is applied: a migration that narrows a column, or a limit raised past one, fails here
 * (a value the receiver answers 200 must never end in "Data too long").
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <mysql.h>
#include <stdio.h>
#include <string.h>

#include "field_limits.h"
#include "support.h"

TestSuite(field_limits, .timeout = 60);

Test(field_limits, every_limit_is_the_width_of_its_narrowest_column)
{
        char url[512], db[128];
        MYSQL *mysql;

        support_create_database(url, sizeof(url));
        snprintf(db, sizeof(db), "%s", strrchr(url, '/') + 1);
        mysql = support_mysql_connect(url);
        for (const struct field_limit *f = field_limits; f->field; f++) {
                char columns[512], *save = NULL;
                long long narrowest = -1;

                snprintf(columns, sizeof(columns), "%s", f->columns);
                for (char *c = strtok_r(columns, " ", &save); c; c = strtok_r(NULL, " ", &save)) {
                        char *dot = strchr(c, '.');
                        long long width;

                        cr_assert(dot != NULL, "%s: \"%s\" is not table.column", f->field, c);
                        *dot = '\0';
                        width = support_query_int(
                                mysql,
                                "SELECT COALESCE(MAX(CHARACTER_MAXIMUM_LENGTH), -1) FROM "
                                "information_schema.COLUMNS WHERE TABLE_SCHEMA = '%s' AND "
                                "TABLE_NAME = '%s' AND COLUMN_NAME = '%s'",
                                db, c, dot + 1);
                        cr_assert(width > 0, "%s: no column %s.%s in the schema", f->field, c,
                                  dot + 1);
                        cr_assert(width >= (long long)f->max_chars,
                                  "%s: %s.%s holds %lld characters, the receiver accepts %zu",
                                  f->field, c, dot + 1, width, f->max_chars);
                        if (narrowest == -1 || width < narrowest)
                                narrowest = width;
                }
                cr_assert(eq(i64, narrowest, (long long)f->max_chars),
                          "%s: the narrowest column holds %lld, the limit says %zu", f->field,
                          narrowest, f->max_chars);
        }
        mysql_close(mysql);
}

Test(field_limits, fits_counts_characters_not_bytes)
{
        cr_assert(field_fits("abc", 3, 3));
        cr_assert(not(field_fits("abcd", 4, 3)));
        cr_assert(field_fits("\xe4\xb8\xbb\xe6\x92\xad", 6, 2));
        cr_assert(not(field_fits("\xe4\xb8\xbb\xe6\x92\xadx", 7, 2)));
}

Test(field_limits, every_row_is_found_by_its_payload_name)
{
        for (const struct field_limit *f = field_limits; f->field; f++)
                cr_assert(eq(ptr, (void *)field_limit_of(f->field), (void *)f), "%s", f->field);
        cr_assert(eq(ptr, (void *)field_limit_of("client_ip"), NULL));
        cr_assert(eq(ptr, (void *)field_limit_of(NULL), NULL));
}

/* The row a walk over the whole table finds for name: what field_limit_of() answered before
 * it looked rows up by hash. */
static const struct field_limit *walk(const char *name)
{
        for (const struct field_limit *f = field_limits; f->field; f++)
                if (strcmp(f->field, name) == 0)
                        return f;
        return NULL;
}

Test(field_limits, every_name_gets_the_answer_a_walk_over_the_table_gives)
{
        static const char *const others[] = {
                "",
                "t",
                "ta",
                "tags",
                "tag ",
                "Tag",
                "stream_i",
                "stream_id_",
                "stream_idx",
                "anchor_id\t",
                "_room_id",
                "pic_full",
                "pic_url_full",
                "client_ip",
                "sign",
                "app",
                "appid",
                "appname",
                "channel_id",
                "errcode",
                "errmsg",
                "event_time",
                "event_type",
                "height",
                "idc_id",
                "node",
                "set_id",
                "stream_param",
                "user_ip",
                "width",
                "audience_idaudience_id",
                "\xe4\xb8\xbb\xe6\x92\xad",
        };
        char shorter[64];

        for (const struct field_limit *f = field_limits; f->field; f++) {
                const struct field_limit *got = field_limit_of(f->field);

                cr_assert(eq(ptr, (void *)got, (void *)walk(f->field)), "%s", f->field);
                cr_assert(eq(sz, got->max_chars, f->max_chars), "%s", f->field);
                /* and so does every prefix of a row's name */
                for (size_t n = 0; n < strlen(f->field); n++) {
                        memcpy(shorter, f->field, n);
                        shorter[n] = '\0';
                        cr_assert(eq(ptr, (void *)field_limit_of(shorter), (void *)walk(shorter)),
                                  "%s", shorter);
                }
        }
        for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
                cr_assert(eq(ptr, (void *)field_limit_of(others[i]), (void *)walk(others[i])), "%s",
                          others[i]);
        cr_assert(eq(sz, field_limit_of("stream_id")->max_chars, FIELD_MAX_STREAM_ID));
        cr_assert(eq(sz, field_limit_of("sequence")->max_chars, FIELD_MAX_SESSION));
        cr_assert(eq(sz, field_limit_of("pic_full_url")->max_chars, FIELD_MAX_URL));
        cr_assert(eq(sz, field_limit_of("tag")->max_chars, FIELD_MAX_TAG));
        cr_assert(eq(ptr, (void *)field_limit_of("tags"), NULL));
}
