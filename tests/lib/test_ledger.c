/*
 * test_ledger.c: the ledger's multi-row inserts on the fixture MariaDB. The unread insert
 * (ledger_text_begin_unread(), the role gate's first write) fails whole on an event the ledger
 * holds, an id MySQL's collation takes for a held one included, and leaves the transaction open
 * with none of its rows written; the read-first insert (ledger_text_begin()) skips the held row
 * and says so with DB_DUPLICATE.
 */
#include <criterion/criterion.h>
#include <mysql.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "db.h"
#include "ledger.h"
#include "support.h"

static struct {
        char url[512];
        struct db *db;
        struct ledger *ledger;
        MYSQL *mysql; /* the test's own connection: sees what is committed */
        char err[512];
} fx;

static void setup(void)
{
        support_create_database(fx.url, sizeof(fx.url));
        fx.mysql = support_mysql_connect(fx.url);
        cr_assert((fx.db = db_new(fx.url, 5, fx.err, sizeof(fx.err))) != NULL, "%s", fx.err);
        cr_assert((fx.ledger = ledger_new(fx.db, "record")) != NULL);
        cr_assert(mysql_query(fx.mysql,
                              "INSERT INTO live_events (consumer, event_id, vendor, event_type, "
                              "stream_id, trace_id, event_time, received_at, kafka_topic, "
                              "kafka_partition, kafka_offset, outcome) VALUES ('record', 'E-held', "
                              "'tencent', 'record.file', 's1', 't', NOW(), NOW(), 'live.record', "
                              "0, 1, 'applied')") == 0,
                  "%s", mysql_error(fx.mysql));
}

static void teardown(void)
{
        ledger_destroy(fx.ledger);
        db_destroy(fx.db);
        mysql_close(fx.mysql);
}

TestSuite(ledger, .init = setup, .fini = teardown, .timeout = 60);

/* A record of the event; its strings are borrowed (event_id) or the fixed ones below. */
static struct consumer_record record_of(char *event_id, long long offset)
{
        static char vendor[] = "tencent", type[] = "record.file", stream[] = "s1",
                    trace[] = "0123456789abcdef0123456789abcdef";
        struct consumer_record rec = {.topic = "live.record", .partition = 0, .offset = offset};

        rec.ev.event_id = event_id;
        rec.ev.vendor = vendor;
        rec.ev.event_type = type;
        rec.ev.stream_id = stream;
        rec.ev.trace_id = trace;
        rec.ev.event_time_ms = 1700000000000LL;
        rec.ev.receive_time_ms = 1700000000005LL;
        rec.trace_id = rec.ev.trace_id;
        return rec;
}

/* The rows (n event ids) in one insert, unread or not, inside a transaction left open. */
static enum db_result insert_rows(const char *const *ids, size_t n, bool is_unread,
                                  struct db_text *t)
{
        if (is_unread)
                ledger_text_begin_unread(t);
        else
                ledger_text_begin(t);
        for (size_t i = 0; i < n; i++) {
                char id[64];
                struct consumer_record rec;

                snprintf(id, sizeof(id), "%s", ids[i]);
                rec = record_of(id, 10 + (long long)i);

                ledger_text_row(fx.ledger, t, &rec, "applied", i == 0);
        }
        return ledger_text_exec(fx.ledger, t, n, fx.err, sizeof(fx.err));
}

/* insert_rows() in a transaction of its own, committed whatever the insert said. */
static enum db_result insert_committed(const char *const *ids, size_t n, bool is_unread,
                                       struct db_text *t)
{
        enum db_result r;

        cr_assert(db_begin(fx.db, fx.err, sizeof(fx.err)) == DB_OK, "%s", fx.err);
        r = insert_rows(ids, n, is_unread, t);
        cr_assert(db_commit(fx.db, fx.err, sizeof(fx.err)) == DB_OK, "%s", fx.err);
        return r;
}

static long long rows_of_batch(void)
{
        return support_query_int(fx.mysql, "SELECT COUNT(*) FROM live_events WHERE consumer = "
                                           "'record' AND event_id LIKE 'new-%%'");
}

Test(ledger, an_unread_insert_that_meets_a_held_event_writes_none_of_its_rows)
{
        const char *ids[] = {"new-1", "E-held", "new-2"};
        struct db_text t = {0};

        cr_expect(insert_committed(ids, 3, true, &t) == DB_DUPLICATE, "%s", fx.err);
        cr_expect(rows_of_batch() == 0, "%lld rows of the batch", rows_of_batch());
        /* The transaction went on after the failure: the read-first way writes the new rows. */
        cr_assert(db_begin(fx.db, fx.err, sizeof(fx.err)) == DB_OK, "%s", fx.err);
        cr_expect(insert_rows(ids, 3, true, &t) == DB_DUPLICATE, "%s", fx.err);
        cr_expect(insert_rows((const char *[]){"new-1", "new-2"}, 2, false, &t) == DB_OK, "%s",
                  fx.err);
        cr_assert(db_commit(fx.db, fx.err, sizeof(fx.err)) == DB_OK, "%s", fx.err);
        cr_expect(rows_of_batch() == 2, "%lld rows of the batch", rows_of_batch());
        db_text_free(&t);
}

Test(ledger, an_unread_insert_of_an_id_the_collation_takes_for_a_held_one_writes_nothing)
{
        const char *ids[] = {"new-1", "e-HELD"};
        struct db_text t = {0};

        cr_expect(insert_committed(ids, 2, true, &t) == DB_DUPLICATE, "%s", fx.err);
        cr_expect(rows_of_batch() == 0, "%lld rows of the batch", rows_of_batch());
        db_text_free(&t);
}

Test(ledger, a_read_first_insert_skips_a_held_event_and_says_so)
{
        const char *ids[] = {"new-1", "E-held"};
        struct db_text t = {0};

        cr_expect(insert_committed(ids, 2, false, &t) == DB_DUPLICATE, "%s", fx.err);
        cr_expect(rows_of_batch() == 1, "INSERT IGNORE writes the rows it does not skip");
        db_text_free(&t);
}
