/* test_url.c: the database URL parsers. */
#include <criterion/criterion.h>
#include <string.h>

#include "url.h"

Test(url, mysql_tcp_form)
{
        struct mysql_url u;
        char err[256];

        cr_assert_eq(url_parse_mysql("mysql://live%40flow:p%3Ass@db.example:3307/liveflow", &u, err,
                                     sizeof(err)),
                     0, "%s", err);
        cr_assert_str_eq(u.user, "live@flow");
        cr_assert_str_eq(u.password, "p:ss");
        cr_assert_str_eq(u.host, "db.example");
        cr_assert_eq(u.port, 3307);
        cr_assert_str_eq(u.database, "liveflow");
        cr_assert_str_eq(u.socket, "");
}

Test(url, mysql_socket_form)
{
        struct mysql_url u;
        char err[256];

        cr_assert_eq(url_parse_mysql("mysql://root:pw@/liveflow?socket=/tmp/my.sock", &u, err,
                                     sizeof(err)),
                     0, "%s", err);
        cr_assert_str_eq(u.socket, "/tmp/my.sock");
        cr_assert_eq(u.port, 0);
}

Test(url, mysql_errors_are_explained)
{
        struct mysql_url u;
        char err[256];

        cr_assert_eq(url_parse_mysql("postgres://x@y/z", &u, err, sizeof(err)), -1);
        cr_assert(strstr(err, "not a mysql:// URL"), "%s", err);
        cr_assert_eq(url_parse_mysql("mysql://u:p@host:99999/db", &u, err, sizeof(err)), -1);
        cr_assert_eq(url_parse_mysql("mysql://u:p@host:3306", &u, err, sizeof(err)), -1);
        cr_assert(strstr(err, "names no database"), "%s", err);
        cr_assert_eq(url_parse_mysql("mysql://u:p@host/db?charset=x", &u, err, sizeof(err)), -1);
        cr_assert_eq(url_parse_mysql("mysql://u:p@host/db%zz", &u, err, sizeof(err)), -1);
}

Test(url, redis_forms)
{
        struct redis_url u;
        char err[256];

        cr_assert_eq(url_parse_redis("redis://127.0.0.1:6380/3", &u, err, sizeof(err)), 0, "%s",
                     err);
        cr_assert_str_eq(u.host, "127.0.0.1");
        cr_assert_eq(u.port, 6380);
        cr_assert_eq(u.db, 3);
        cr_assert_eq(url_parse_redis("redis://:s3cret@cache", &u, err, sizeof(err)), 0, "%s", err);
        cr_assert_str_eq(u.password, "s3cret");
        cr_assert_eq(u.port, 6379);
        cr_assert_eq(url_parse_redis("redis://cache/16", &u, err, sizeof(err)), -1);
        cr_assert_eq(url_parse_redis("http://cache", &u, err, sizeof(err)), -1);
}

Test(url, errors_never_show_the_password)
{
        struct mysql_url u;
        char err[256];

        cr_assert_eq(url_parse_mysql("mysql://u:hunter2@host:99999/db", &u, err, sizeof(err)), -1);
        cr_assert_null(strstr(err, "hunter2"), "%s", err);
        cr_assert_not_null(strstr(err, "mysql://u:***@host:99999/db"), "%s", err);
}
