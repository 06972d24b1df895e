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

/* ------------------------------------------------------------------ keys_may_collide */

/* The collation's view, spelled out: case folded, trailing spaces dropped. */
static void fold_ref(const char *s, char *out)
{
        size_t n = strlen(s);

        while (n && s[n - 1] == ' ')
                n--;
        for (size_t i = 0; i < n; i++)
                out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
        out[n] = '\0';
}

/*
 * Random distinct ids over an alphabet of cases, spaces and a shared prefix: the answer is yes
 * exactly when two of them fold to one id (the sort's shortcut on the first differing
 * character must not hide a pair).
 */
Test(keys, may_collide_exactly_when_two_ids_fold_to_one)
{
        static const char alphabet[] = "aAbB -";
        unsigned seed = 7;

        for (int trial = 0; trial < 2000; trial++) {
                char ids[12][16], folded[12][16];
                const char *ptrs[12];
                size_t n = 0;
                bool want = false;

                while (n < 2 + (size_t)trial % 10) {
                        size_t len = (size_t)rand_r(&seed) % 5, k = 0;
                        bool is_dup = false;

                        if (rand_r(&seed) % 2)
                                k = (size_t)snprintf(ids[n], sizeof(ids[n]), "pre-");
                        for (size_t i = 0; i < len; i++)
                                ids[n][k++] = alphabet[rand_r(&seed) % 6];
                        ids[n][k] = '\0';
                        for (size_t j = 0; j < n; j++)
                                is_dup |= strcmp(ids[j], ids[n]) == 0;
                        if (!is_dup)
                                n++;
                }
                for (size_t i = 0; i < n; i++) {
                        fold_ref(ids[i], folded[i]);
                        ptrs[i] = ids[i];
                        for (size_t j = 0; j < i; j++)
                                want |= strcmp(folded[i], folded[j]) == 0;
                }
                cr_assert_eq(keys_may_collide(ptrs, n), want, "trial %d", trial);
        }
}

Test(keys, a_single_id_or_none_never_collides)
{
        const char *one[] = {"A "};

        cr_assert(!keys_may_collide(one, 1));
        cr_assert(!keys_may_collide(one, 0));
}
