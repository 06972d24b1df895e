/*
 * test_notify.c: the live.notify outbox and its relay (lib/notify.h) against the fixture
 * MariaDB and broker: what a transaction commits is sent once and marked sent, what it rolls
 * back never; a row an earlier life left is sent by the next life's first flush; a young row
 * (another relay's, in flight) is left to its relay until it is old.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "contract.h"
#include "crypto.h"
#include "db.h"
#include "kafka.h"
#include "notify.h"
#include "produce.h"
#include "settings.h"
#include "support.h"

static struct settings settings;
static char url[512];
static MYSQL *mysql;
static struct db *db;
static rd_kafka_t *producer;
static struct produce_ack ack;
static struct role_env env;
static struct support_reader *reader;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
        (void)rk;
        produce_ack_report(opaque, rkm);
}

static void setup(void)
{
        char err[512];

        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), 1);
        setenv("LIVEFLOW_MYSQL_URL", support_fixture("LIVEFLOW_TEST_MYSQL_URL"), 1);
        setenv("LIVEFLOW_REDIS_URL", support_fixture("LIVEFLOW_TEST_REDIS_URL"), 1);
        cr_assert(settings_load(&settings, SETTINGS_CONSUMER, err, sizeof(err)) == 0, "%s", err);
        support_create_database(url, sizeof(url));
        mysql = support_mysql_connect(url);
        db = db_new(url, 5, err, sizeof(err));
        cr_assert(db != NULL, "%s", err);
        memset(&ack, 0, sizeof(ack));
        producer =
                kafka_producer_new(&settings, "test-notify", on_delivery, &ack, err, sizeof(err));
        cr_assert(producer != NULL, "%s", err);
        env = (struct role_env){
                .settings = &settings, .db = db, .producer = producer, .ack = &ack, .role = "test"};
        reader = support_reader_open(LF_TOPIC_NOTIFY);
}

static void teardown(void)
{
        support_reader_close(reader);
        rd_kafka_flush(producer, 5000);
        rd_kafka_destroy(producer);
        db_destroy(db);
        mysql_close(mysql);
        settings_fini(&settings);
}

TestSuite(notify, .init = setup, .fini = teardown, .timeout = 60);

/* Records one stream.live keyed key in its own transaction, committed or rolled back. */
static void record(struct notify *n, const char *key, bool is_committed)
{
        char err[256];
        struct notify_msg m = notify_msg_init("stream.live", key, 1700000000000LL);

        m.anchor_id = "anchor-notify";
        m.stream_id = key;
        cr_assert(db_begin(db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert(notify_record(n, &m, err, sizeof(err)) == DB_OK, "%s", err);
        if (is_committed)
                cr_assert(db_commit(db, err, sizeof(err)) == DB_OK, "%s", err);
        else
                db_rollback(db);
}

static void event_id_of(const char *key, char out[65])
{
        char text[256];
        int len = snprintf(text, sizeof(text), "notify|stream.live|%s", key);

        crypto_sha256_hex(text, (size_t)len, out);
}

static long long sent_rows(const char *key)
{
        char id[65];

        event_id_of(key, id);
        return support_query_int(mysql,
                                 "SELECT COUNT(*) FROM notify_outbox WHERE event_id = '%s' AND "
                                 "sent_at IS NOT NULL",
                                 id);
}

/* The records of live.notify with key's event id seen within timeout_ms. */
static int on_topic(const char *key, int timeout_ms)
{
        char id[65];

        event_id_of(key, id);
        return support_reader_count(reader, "event_id", id, NULL, 0, timeout_ms);
}

/* Serves the producer's reports and flushes until nothing is in flight (or 10 s). */
static void settle(struct notify *n)
{
        char err[256];
        long long deadline = support_now_ms() + 10000;

        do {
                rd_kafka_poll(producer, 50);
                cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        } while (notify_in_flight(n) && support_now_ms() < deadline);
        cr_assert(eq(sz, notify_in_flight(n), 0), "acknowledgements did not come");
}

Test(notify, relays_what_commits_without_waiting_and_never_what_rolls_back)
{
        char err[256], kept[64], dropped[64];
        struct notify *n = notify_new(&env, err, sizeof(err));

        cr_assert(n != NULL, "%s", err);
        support_unique_name("kept", kept, sizeof(kept));
        support_unique_name("dropped", dropped, sizeof(dropped));
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err); /* the first sweep */
        record(n, kept, true);
        record(n, dropped, false);
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        /* Produced, not waited for: marked sent by a later flush, once acknowledged. */
        cr_assert(eq(sz, notify_in_flight(n), 1));
        cr_assert(eq(i64, sent_rows(kept), 0));
        settle(n);
        cr_assert(eq(i64, sent_rows(kept), 1));
        cr_assert(eq(int, on_topic(kept, 3000), 1));
        cr_assert(eq(int, on_topic(dropped, 500), 0));
        /* A replay of the same change records nothing new and sends nothing again. */
        record(n, kept, true);
        settle(n);
        cr_assert(eq(int, on_topic(kept, 1000), 0));
        notify_destroy(n);
}

Test(notify, a_row_an_earlier_life_left_unsent_goes_at_the_next_first_flush)
{
        char err[256], key[64];
        struct notify *n = notify_new(&env, err, sizeof(err));

        cr_assert(n != NULL, "%s", err);
        support_unique_name("crash", key, sizeof(key));
        record(n, key, true);
        notify_destroy(n); /* a crash between the commit and the relay: nothing was produced */
        cr_assert(eq(i64, sent_rows(key), 0));
        cr_assert(eq(int, on_topic(key, 500), 0));

        n = notify_new(&env, err, sizeof(err));
        cr_assert(n != NULL, "%s", err);
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        cr_assert(eq(i64, sent_rows(key), 1), "the first flush of a life sweeps every unsent row");
        cr_assert(eq(int, on_topic(key, 3000), 1));
        notify_destroy(n);
}

Test(notify, a_young_unsent_row_is_left_to_the_relay_that_has_it_until_it_is_old)
{
        char err[256], key[64], id[65], sql[512];
        struct notify *n = notify_new(&env, err, sizeof(err));

        cr_assert(n != NULL, "%s", err);
        support_unique_name("young", key, sizeof(key));
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err); /* the first sweep */
        /* Another instance's row, committed and in its relay's flight. */
        event_id_of(key, id);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO notify_outbox (event_id, kind, anchor_id, stream_id, payload) "
                 "VALUES ('%s', 'stream.live', 'anchor-notify', '%s', "
                 "'{\"kind\":\"stream.live\",\"at_ms\":1700000000000}')",
                 id, key);
        cr_assert(mysql_query(mysql, sql) == 0, "%s", mysql_error(mysql));
        cr_assert(notify_flush(n, true, err, sizeof(err)) == 0, "%s", err);
        cr_assert(eq(i64, sent_rows(key), 0), "a young row is another relay's");
        cr_assert(eq(int, on_topic(key, 500), 0));
        /* Its relay died: once older than any send in flight, the sweep sends it. */
        cr_assert(mysql_query(mysql, "UPDATE notify_outbox SET created_at = NOW(3) - INTERVAL 61 "
                                     "SECOND WHERE sent_at IS NULL") == 0);
        cr_assert(notify_flush(n, true, err, sizeof(err)) == 0, "%s", err);
        cr_assert(eq(i64, sent_rows(key), 1));
        cr_assert(eq(int, on_topic(key, 3000), 1));
        notify_destroy(n);
}

Test(notify, a_second_outbox_on_one_producer_waits_for_its_acknowledgements)
{
        char err[256], key[64];
        struct notify *relay = notify_new(&env, err, sizeof(err));
        struct notify *second = notify_new(&env, err, sizeof(err));

        cr_assert(relay != NULL && second != NULL, "%s", err);
        support_unique_name("second", key, sizeof(key));
        cr_assert(notify_flush(second, false, err, sizeof(err)) == 0, "%s", err);
        record(second, key, true);
        cr_assert(notify_flush(second, false, err, sizeof(err)) == 0, "%s", err);
        cr_assert(eq(i64, sent_rows(key), 1), "sent and acknowledged within the flush");
        cr_assert(eq(int, on_topic(key, 3000), 1));
        notify_destroy(second);
        notify_destroy(relay);
}
