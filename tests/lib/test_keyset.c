/*
 * test_keyset.c: keyset_find_known() on the fixture MariaDB with a batch past MariaDB's
 * in_predicate_conversion_threshold (1 000 values), which turns one long IN list into a join
 * with a table of the values (driven, here, from the table's side: all its rows read): every
 * id's answer is right, and the statement reads the rows of the batch's ids, not the table.
 */
#include <criterion/criterion.h>
#include <mysql.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "keyset.h"
#include "support.h"

/*
 * Rows of the table, all of one consumer. With a few times the batch's ids MariaDB 10.11 drives
 * the join of one long IN list from the table (every row read); at 20 000 from the values.
 */
#define TABLE_ROWS 8000
#define IDS        1200 /* distinct ids of the batch: above the 1 000 threshold */
#define COPIES     40   /* ids of the batch that come twice */

static struct {
        char url[512];
        struct db *db;
        MYSQL *mysql; /* the test's own connection */
        char err[512];
} fx;

static void run_sql(const char *sql)
{
        MYSQL_RES *res;

        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.mysql));
        if ((res = mysql_store_result(fx.mysql)))
                mysql_free_result(res);
}

/*
 * The table, shaped as the ledger's live_events (unique on consumer, id): consumer c's ids
 * k-1 .. k-TABLE_ROWS, and K-UPPER (one batch id in other case).
 */
static void setup(void)
{
        char sql[256];

        support_create_database(fx.url, sizeof(fx.url));
        fx.mysql = support_mysql_connect(fx.url);
        run_sql("CREATE TABLE held (seq BIGINT AUTO_INCREMENT PRIMARY KEY, consumer VARCHAR(64) "
                "NOT NULL, id VARCHAR(255) NOT NULL, UNIQUE KEY held_once (consumer, id)) "
                "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4");
        snprintf(sql, sizeof(sql),
                 "INSERT INTO held (consumer, id) SELECT 'c', CONCAT('k-', seq) FROM seq_1_to_%d",
                 TABLE_ROWS);
        run_sql(sql);
        run_sql("INSERT INTO held (consumer, id) VALUES ('c', 'K-UPPER')");
        run_sql("ANALYZE TABLE held");
        run_sql("SET GLOBAL userstat = 1"); /* information_schema.TABLE_STATISTICS */
        cr_assert((fx.db = db_new(fx.url, 10, fx.err, sizeof(fx.err))) != NULL, "%s", fx.err);
}

static void teardown(void)
{
        db_destroy(fx.db);
        if (fx.mysql)
                mysql_close(fx.mysql);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(keyset, .init = setup, .fini = teardown, .timeout = 120);

/* Rows MariaDB has read from the table so far (every connection). */
static long long rows_read(void)
{
        return support_query_int(fx.mysql,
                                 "SELECT COALESCE(SUM(ROWS_READ), 0) FROM "
                                 "information_schema.TABLE_STATISTICS WHERE TABLE_SCHEMA = "
                                 "DATABASE() AND TABLE_NAME = 'held'");
}

/*
 * IDS distinct ids, spread over the table's key range: the even ones the table holds
 * (k-<6 i + 2>), the odd ones not (k-<6 i + 1>x); COPIES of the held ones twice; and k-upper, which
 * the table holds only as K-UPPER. Each id's answer is right, every copy of a held id is
 * marked, k-upper is not (the table's K-UPPER sets is_mismatch), and the table's rows read are
 * about the batch's, not the table's.
 */
Test(keyset, a_batch_past_the_in_list_threshold_reads_only_its_rows)
{
        size_t n = IDS + COPIES + 1, held = 0;
        char(*ids)[32] = calloc(n, sizeof(*ids));
        struct db_text t = {0};
        struct keyset ks;
        long long before, read;

        cr_assert(ids != NULL);
        cr_assert_eq(keyset_init(&ks, n), 0);
        for (size_t i = 0; i < IDS; i++)
                snprintf(ids[i], sizeof(ids[i]), i % 2 ? "k-%zux" : "k-%zu", 6 * i + 2 - i % 2);
        for (size_t i = 0; i < COPIES; i++) /* even: held ids */
                snprintf(ids[IDS + i], sizeof(ids[IDS + i]), "%s", ids[58 * i % IDS]);
        snprintf(ids[n - 1], sizeof(ids[n - 1]), "k-upper");
        for (size_t i = 0; i < n; i++)
                keyset_add(&ks, ids[i], n - 1 - i);
        keyset_sort(&ks);
        before = rows_read();
        cr_assert_eq(keyset_find_known(&ks, fx.db, &t,
                                       "SELECT id FROM held WHERE consumer = 'c' AND id IN ",
                                       fx.err, sizeof(fx.err)),
                     DB_OK, "%s", fx.err);
        read = rows_read() - before;
        cr_assert_eq(ks.n, n);
        for (size_t i = 0; i < ks.n; i++) {
                const char *id = ks.items[i].id;
                size_t num = strtoul(id + 2, NULL, 10);
                bool want = strcmp(id, "k-upper") != 0 && num % 6 == 2 && !strchr(id, 'x');

                cr_expect_eq(ks.items[i].is_known, want, "%s: is_known %d", id,
                             ks.items[i].is_known);
                held += ks.items[i].is_known;
        }
        cr_expect_eq(held, IDS / 2 + COPIES, "copies of held ids: each marked");
        cr_expect(ks.is_mismatch, "K-UPPER, returned for k-upper, matches none byte for byte");
        cr_expect_leq(read, IDS, "read %lld rows of %d for %d ids", read, TABLE_ROWS + 1, IDS);
        cr_expect_geq(read, IDS / 2, "read %lld rows: the held ids' rows at least", read);
        keyset_free(&ks);
        db_text_free(&t);
        free(ids);
}

/* An empty set asks nothing and knows nothing. */
Test(keyset, an_empty_set_asks_nothing)
{
        struct db_text t = {0};
        struct keyset ks;

        cr_assert_eq(keyset_init(&ks, 0), 0);
        cr_assert_eq(keyset_find_known(&ks, fx.db, &t, "SELECT id FROM nowhere WHERE id IN ",
                                       fx.err, sizeof(fx.err)),
                     DB_OK, "%s", fx.err);
        cr_assert(!ks.is_mismatch);
        keyset_free(&ks);
        db_text_free(&t);
}
