/*
 * test_store_errors.c: every class of MySQL and Redis failure the consumers meet, on the real
 * fixtures, and what lib/db.c and lib/redis_conn.c make of it: a record's fault (retry it,
 * or refuse it) or the store's (db_store_unavailable / redis_conn_unavailable: hold the
 * partitions, dead-letter nothing).
 */
#include <criterion/criterion.h>
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "redis_conn.h"
#include "support.h"
#include "url.h"

static struct {
        char url[512];
        struct db *db;
        MYSQL *mysql; /* the test's own connection, for locks and grants */
        struct support_proxy *proxy;
        char err[512];
} fx;

static void setup(void)
{
        support_create_database(fx.url, sizeof(fx.url));
        fx.mysql = support_mysql_connect(fx.url);
        cr_assert(mysql_query(fx.mysql, "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(4)) "
                                        "ENGINE=InnoDB") == 0,
                  "%s", mysql_error(fx.mysql));
        cr_assert(mysql_query(fx.mysql, "INSERT INTO t VALUES (1, 'a')") == 0);
        cr_assert((fx.db = db_new(fx.url, 2, fx.err, sizeof(fx.err))) != NULL, "%s", fx.err);
}

static void teardown(void)
{
        db_destroy(fx.db);
        if (fx.mysql)
                mysql_close(fx.mysql);
        support_proxy_stop(fx.proxy);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(store_errors, .init = setup, .fini = teardown, .timeout = 60);

/* Runs sql on the db under test after forgetting earlier outages. */
static enum db_result run(const char *sql)
{
        db_clear_unavailable(fx.db);
        fx.err[0] = '\0';
        return db_sql(fx.db, sql, NULL, fx.err, sizeof(fx.err));
}

static void expect_record_fault(enum db_result got, enum db_result want)
{
        cr_assert_eq(got, want, "%s: %s", db_result_name(got), fx.err);
        cr_assert(!db_store_unavailable(fx.db, NULL, 0), "counted as an outage: %s", fx.err);
}

static void expect_outage(enum db_result got)
{
        char why[512] = "";

        cr_assert_neq(got, DB_OK);
        cr_assert(db_store_unavailable(fx.db, why, sizeof(why)), "not an outage: %s", fx.err);
        cr_assert(why[0] != '\0');
}

/* ------------------------------------------------------------ a record's fault */

Test(store_errors, duplicate_key_is_done_not_an_outage)
{
        expect_record_fault(run("INSERT INTO t VALUES (1, 'b')"), DB_DUPLICATE);
}

Test(store_errors, data_too_long_is_the_record_not_the_store)
{
        expect_record_fault(run("INSERT INTO t VALUES (2, 'too long for four')"), DB_FATAL);
}

Test(store_errors, lock_wait_timeout_is_retried_not_an_outage)
{
        cr_assert(mysql_query(fx.mysql, "START TRANSACTION") == 0);
        cr_assert(mysql_query(fx.mysql, "UPDATE t SET s = 'x' WHERE id = 1") == 0);
        cr_assert_eq(run("SET SESSION innodb_lock_wait_timeout = 1"), DB_OK, "%s", fx.err);
        expect_record_fault(run("UPDATE t SET s = 'y' WHERE id = 1"), DB_RETRY);
        cr_assert(mysql_query(fx.mysql, "ROLLBACK") == 0);
}

Test(store_errors, a_syntax_error_is_not_an_outage)
{
        expect_record_fault(run("INSERT INTO t VALUE"), DB_FATAL);
}

/* ------------------------------------------------------------ the store's fault */

Test(store_errors, a_missing_table_is_an_outage)
{
        cr_assert(mysql_query(fx.mysql, "RENAME TABLE t TO t_away") == 0);
        expect_outage(run("INSERT INTO t VALUES (3, 'c')"));
        cr_assert(strstr(fx.err, "doesn't exist"), "%s", fx.err);
}

Test(store_errors, a_missing_column_is_an_outage)
{
        expect_outage(run("UPDATE t SET nope = 1"));
}

Test(store_errors, a_prepared_statement_on_a_missing_table_is_an_outage)
{
        struct db_stmt *st = db_stmt(fx.db, "INSERT INTO t_missing VALUES (?)");
        struct db_param p[] = {DB_I64(1)};

        db_clear_unavailable(fx.db);
        expect_outage(db_exec(fx.db, st, p, 1, NULL, NULL, fx.err, sizeof(fx.err)));
}

Test(store_errors, a_read_only_transaction_is_an_outage)
{
        cr_assert_eq(run("START TRANSACTION READ ONLY"), DB_OK, "%s", fx.err);
        expect_outage(run("INSERT INTO t VALUES (4, 'd')"));
        db_rollback(fx.db);
}

Test(store_errors, a_grant_taken_away_is_an_outage)
{
        char user[64], url[640], db[96] = "", sql[512];
        struct mysql_url u;
        struct db *weak;

        cr_assert(url_parse_mysql(fx.url, &u, fx.err, sizeof(fx.err)) == 0, "%s", fx.err);
        support_unique_name("ro", user, sizeof(user));
        support_query1(fx.mysql, db, sizeof(db), "SELECT DATABASE()");
        snprintf(sql, sizeof(sql), "CREATE USER '%s'@'%%' IDENTIFIED BY 'pw'", user);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
        snprintf(sql, sizeof(sql), "GRANT SELECT ON %s.* TO '%s'@'%%'", db, user);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
        snprintf(url, sizeof(url), "mysql://%s:pw@%s:%d/%s", user, u.host, u.port, u.database);
        cr_assert((weak = db_new(url, 2, fx.err, sizeof(fx.err))) != NULL, "%s", fx.err);
        cr_assert_neq(db_sql(weak, "INSERT INTO t VALUES (5, 'e')", NULL, fx.err, sizeof(fx.err)),
                      DB_OK);
        cr_assert(db_store_unavailable(weak, NULL, 0), "%s", fx.err);
        db_destroy(weak);
        snprintf(sql, sizeof(sql), "DROP USER '%s'@'%%'", user);
        mysql_query(fx.mysql, sql);
}

Test(store_errors, a_lost_connection_is_an_outage_and_the_next_call_reconnects)
{
        char url[640];
        struct mysql_url u;
        struct db *db;

        cr_assert(url_parse_mysql(fx.url, &u, fx.err, sizeof(fx.err)) == 0, "%s", fx.err);
        fx.proxy = support_proxy_start(u.port);
        snprintf(url, sizeof(url), "mysql://%s:%s@127.0.0.1:%d/%s", u.user, u.password,
                 support_proxy_port(fx.proxy), u.database);
        cr_assert((db = db_new(url, 2, fx.err, sizeof(fx.err))) != NULL, "%s", fx.err);
        cr_assert_eq(db_sql(db, "SELECT 1", NULL, fx.err, sizeof(fx.err)), DB_OK, "%s", fx.err);

        support_proxy_cut(fx.proxy); /* lost, then refused */
        cr_assert_eq(db_sql(db, "DO 1", NULL, fx.err, sizeof(fx.err)), DB_RETRY, "%s", fx.err);
        cr_assert(db_store_unavailable(db, NULL, 0), "lost connection: %s", fx.err);
        db_clear_unavailable(db);
        cr_assert_eq(db_sql(db, "DO 1", NULL, fx.err, sizeof(fx.err)), DB_RETRY, "%s", fx.err);
        cr_assert(db_store_unavailable(db, NULL, 0), "refused: %s", fx.err);

        support_proxy_restore(fx.proxy);
        db_clear_unavailable(db);
        cr_assert_eq(db_ping(db, fx.err, sizeof(fx.err)), DB_OK, "%s", fx.err);
        cr_assert_eq(db_sql(db, "DO 1", NULL, fx.err, sizeof(fx.err)), DB_OK, "%s", fx.err);
        cr_assert(!db_store_unavailable(db, NULL, 0));
        db_destroy(db);
}

/* Each code of the outage list, and the record-level codes that must stay off it. */
Test(store_errors, the_outage_list_holds_the_store_codes_and_nothing_else)
{
        static const unsigned int outage[] = {
                CR_SERVER_GONE_ERROR,
                CR_SERVER_LOST,
                CR_CONNECTION_ERROR,
                CR_CONN_HOST_ERROR,
                ER_SERVER_SHUTDOWN,
                ER_CON_COUNT_ERROR,
                ER_OPTION_PREVENTS_STATEMENT,
                ER_READ_ONLY_MODE,
                ER_NO_SUCH_TABLE,
                ER_BAD_DB_ERROR,
                ER_TABLEACCESS_DENIED_ERROR,
                ER_DISK_FULL,
        };
        static const unsigned int record[] = {
                0,
                ER_DUP_ENTRY,
                ER_LOCK_DEADLOCK,
                ER_LOCK_WAIT_TIMEOUT,
                ER_DATA_TOO_LONG,
                ER_PARSE_ERROR,
                ER_WARN_DATA_OUT_OF_RANGE,
                ER_NO_REFERENCED_ROW_2,
        };

        for (size_t i = 0; i < sizeof(outage) / sizeof(outage[0]); i++)
                cr_expect(db_is_outage_errno(outage[i]), "%u should be an outage", outage[i]);
        for (size_t i = 0; i < sizeof(record) / sizeof(record[0]); i++)
                cr_expect(!db_is_outage_errno(record[i]), "%u is a record's fault", record[i]);
}

/* ------------------------------------------------------------ Redis */

Test(store_errors, redis_a_wrong_type_is_the_command_a_lost_server_is_an_outage)
{
        const char *port = support_fixture("LIVEFLOW_TEST_REDIS_PORT");
        char url[128], key[64];
        struct redis_conn *rc;
        redisReply *r;

        support_unique_name("se", key, sizeof(key));
        fx.proxy = support_proxy_start(atoi(port));
        snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", support_proxy_port(fx.proxy));
        cr_assert((rc = redis_conn_new(url, 1000, fx.err, sizeof(fx.err))) != NULL, "%s", fx.err);
        const char *set[] = {"SET", key, "1"}, *push[] = {"LPUSH", key, "x"}, *del[] = {"DEL", key};

        cr_assert((r = redis_conn_cmd(rc, 3, set, NULL, fx.err, sizeof(fx.err))) != NULL);
        freeReplyObject(r);
        cr_assert_null(redis_conn_cmd(rc, 3, push, NULL, fx.err, sizeof(fx.err)));
        cr_assert(strstr(fx.err, "WRONGTYPE"), "%s", fx.err);
        cr_assert(!redis_conn_unavailable(rc, NULL, 0), "WRONGTYPE counted as an outage");

        support_proxy_cut(fx.proxy);
        cr_assert_eq(redis_conn_ping(rc, fx.err, sizeof(fx.err)), -1);
        cr_assert(redis_conn_unavailable(rc, NULL, 0), "lost: %s", fx.err);
        redis_conn_clear_unavailable(rc);
        cr_assert_eq(redis_conn_ping(rc, fx.err, sizeof(fx.err)), -1);
        cr_assert(redis_conn_unavailable(rc, NULL, 0), "refused: %s", fx.err);

        support_proxy_restore(fx.proxy);
        redis_conn_clear_unavailable(rc);
        cr_assert_eq(redis_conn_ping(rc, fx.err, sizeof(fx.err)), 0, "%s", fx.err);
        cr_assert(!redis_conn_unavailable(rc, NULL, 0));
        r = redis_conn_cmd(rc, 2, del, NULL, fx.err, sizeof(fx.err));
        if (r)
                freeReplyObject(r);
        redis_conn_destroy(rc);
}

Test(store_errors, redis_replies_that_are_the_servers_state)
{
        static const char *const outage[] = {
                "LOADING Redis is loading the dataset in memory",
                "READONLY You can't write against a read only replica.",
                "MASTERDOWN Link with MASTER is down",
                "OOM command not allowed when used memory > 'maxmemory'.",
                "MISCONF Redis is configured to save RDB snapshots, but it's currently unable",
                "BUSY Redis is busy running a script.",
                "NOAUTH Authentication required.",
                "ERR max number of clients reached",
        };
        static const char *const command[] = {
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                "ERR wrong number of arguments for 'set' command",
                "NOSCRIPT No matching script.",
                "ERR value is not an integer or out of range",
        };

        for (size_t i = 0; i < sizeof(outage) / sizeof(outage[0]); i++)
                cr_expect(redis_conn_is_outage_reply(outage[i]), "%s", outage[i]);
        for (size_t i = 0; i < sizeof(command) / sizeof(command[0]); i++)
                cr_expect(!redis_conn_is_outage_reply(command[i]), "%s", command[i]);
}

/* The reply of HGET key field as a string ("(nil)" when none). */
static void expect_hget(struct redis_conn *rc, const char *key, const char *want)
{
        const char *argv[] = {"HGET", key, "f"};
        redisReply *r = redis_conn_cmd(rc, 3, argv, NULL, fx.err, sizeof(fx.err));

        cr_assert(r != NULL, "%s", fx.err);
        cr_assert_str_eq(r->type == REDIS_REPLY_STRING ? r->str : "(nil)", want);
        freeReplyObject(r);
}

/*
 * redis_conn_multi_exec(): a command refused when queued runs nothing of the transaction; one
 * that fails inside EXEC is told while the others ran (Redis does not roll back); neither is an
 * outage, and a lost server is.
 */
Test(store_errors, redis_a_transaction_tells_its_failed_command_and_a_lost_server)
{
        const char *port = support_fixture("LIVEFLOW_TEST_REDIS_PORT");
        char url[128], ks[64], kh[64];
        struct redis_conn *rc;

        support_unique_name("tx-s", ks, sizeof(ks));
        support_unique_name("tx-h", kh, sizeof(kh));
        fx.proxy = support_proxy_start(atoi(port));
        snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", support_proxy_port(fx.proxy));
        cr_assert((rc = redis_conn_new(url, 1000, fx.err, sizeof(fx.err))) != NULL, "%s", fx.err);
        const char *set[] = {"SET", ks, "1"}, *hset_v[] = {"HSET", kh, "f", "v"},
                   *push[] = {"LPUSH", ks, "x"}, *hset_w[] = {"HSET", kh, "f", "w"},
                   *bad_set[] = {"SET", ks}, *hset_z[] = {"HSET", kh, "f", "z"},
                   *del[] = {"DEL", ks, kh};
        const char **ok[] = {set, hset_v}, **wrong[] = {push, hset_w},
                   **refused[] = {bad_set, hset_z};
        const int ok_argc[] = {3, 4}, wrong_argc[] = {3, 4}, refused_argc[] = {2, 4};
        redisReply *r;

        cr_assert_eq(redis_conn_multi_exec(rc, 2, ok_argc, (const char **const *)ok, fx.err,
                                           sizeof(fx.err)),
                     0, "%s", fx.err);
        expect_hget(rc, kh, "v");

        cr_assert_eq(redis_conn_multi_exec(rc, 2, wrong_argc, (const char **const *)wrong, fx.err,
                                           sizeof(fx.err)),
                     -1);
        cr_assert(strstr(fx.err, "WRONGTYPE"), "%s", fx.err);
        expect_hget(rc, kh, "w"); /* the command after the failed one ran */

        cr_assert_eq(redis_conn_multi_exec(rc, 2, refused_argc, (const char **const *)refused,
                                           fx.err, sizeof(fx.err)),
                     -1);
        cr_assert(strstr(fx.err, "wrong number of arguments"), "%s", fx.err);
        expect_hget(rc, kh, "w"); /* nothing of a refused transaction ran */
        cr_assert(!redis_conn_unavailable(rc, NULL, 0), "a command's error counted as an outage");

        support_proxy_cut(fx.proxy);
        cr_assert_eq(redis_conn_multi_exec(rc, 2, ok_argc, (const char **const *)ok, fx.err,
                                           sizeof(fx.err)),
                     -1);
        cr_assert(redis_conn_unavailable(rc, NULL, 0), "lost: %s", fx.err);
        support_proxy_restore(fx.proxy);
        redis_conn_clear_unavailable(rc);
        r = redis_conn_cmd(rc, 3, del, NULL, fx.err, sizeof(fx.err));
        if (r)
                freeReplyObject(r);
        redis_conn_destroy(rc);
}
