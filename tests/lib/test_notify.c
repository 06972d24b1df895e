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

/*
 * Records stream.live for each of keys in one multi-row statement (the batch path), in its own
 * transaction; with a savepoint rolled back after the statement when is_undone, then committed
 * or rolled back. @returns the statement's result.
 */
static enum db_result record_batch(struct notify *n, const char *const *keys, size_t cnt,
                                   bool is_undone, bool is_committed)
{
        char err[256];
        struct db_text t = {0};
        enum db_result r;

        cr_assert(db_begin(db, err, sizeof(err)) == DB_OK, "%s", err);
        if (is_undone)
                cr_assert(db_sql(db, "SAVEPOINT notify_test", NULL, err, sizeof(err)) == DB_OK);
        notify_text_begin(&t);
        for (size_t i = 0; i < cnt; i++) {
                struct notify_msg m = notify_msg_init("stream.live", keys[i], 1700000000000LL);

                m.anchor_id = "anchor-notify";
                m.stream_id = keys[i];
                notify_text_row(n, &t, &m, i == 0);
        }
        r = notify_text_exec(n, &t, cnt, err, sizeof(err));
        db_text_free(&t);
        cr_assert(r == DB_OK, "%s", err);
        if (is_undone)
                cr_assert(db_sql(db, "ROLLBACK TO SAVEPOINT notify_test", NULL, err, sizeof(err)) ==
                          DB_OK);
        if (is_committed)
                cr_assert(db_commit(db, err, sizeof(err)) == DB_OK, "%s", err);
        else
                db_rollback(db);
        return r;
}

/* The message key (the anchor) of the record of key's event id on live.notify, or "". */
static void key_on_topic(const char *key, char *out, size_t out_size)
{
        char id[65], trace_id[33];
        rd_kafka_message_t *rkm;

        event_id_of(key, id);
        snprintf(trace_id, sizeof(trace_id), "%.32s", id);
        rkm = support_reader_until(reader, trace_id, NULL, NULL, NULL, 3000);
        snprintf(out, out_size, "%.*s", rkm ? (int)rkm->key_len : 0,
                 rkm ? (const char *)rkm->key : "");
        if (rkm)
                rd_kafka_message_destroy(rkm);
}

/*
 * Reads live.notify up to key's record (which must come) and returns how many records of
 * other's event id came before it: the relay sends in order, on one partition (one anchor).
 */
static int seen_before(const char *key, const char *other)
{
        char id[65], other_id[65], trace_id[33];
        int count = 0;
        rd_kafka_message_t *rkm;

        event_id_of(key, id);
        event_id_of(other, other_id);
        snprintf(trace_id, sizeof(trace_id), "%.32s", id);
        rkm = support_reader_until(reader, trace_id, "event_id", other_id, &count, 5000);
        cr_assert(rkm != NULL, "%s was not sent", key);
        rd_kafka_message_destroy(rkm);
        return count;
}

Test(notify, a_committed_batch_is_sent_as_it_was_written_without_reading_it_back)
{
        char err[256], a[64], b[64], anchor[128], sql[512], id[65];
        struct notify *n = notify_new(&env, err, sizeof(err));
        const char *keys[2] = {a, b};

        cr_assert(n != NULL, "%s", err);
        support_unique_name("batch-a", a, sizeof(a));
        support_unique_name("batch-b", b, sizeof(b));
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err); /* the first sweep */
        record_batch(n, keys, 2, false, true);
        /* Changed after the commit: a relay that read the rows back would send this anchor. */
        event_id_of(a, id);
        snprintf(sql, sizeof(sql),
                 "UPDATE notify_outbox SET anchor_id = 'read-back' WHERE event_id = '%s'", id);
        cr_assert(mysql_query(mysql, sql) == 0, "%s", mysql_error(mysql));
        settle(n);
        key_on_topic(a, anchor, sizeof(anchor));
        cr_assert(strcmp(anchor, "anchor-notify") == 0, "sent as read back: key %s", anchor);
        cr_assert(eq(i64, sent_rows(a), 1));
        cr_assert(eq(i64, sent_rows(b), 1));
        cr_assert(eq(int, on_topic(b, 3000), 1));
        notify_destroy(n);
}

Test(notify, a_batch_rolled_back_whole_or_to_a_savepoint_is_never_sent)
{
        char err[256], whole[64], undone[64], kept[64], kept2[64];
        struct notify *n = notify_new(&env, err, sizeof(err));
        const char *keys_whole[1] = {whole}, *keys_undone[1] = {undone}, *keys_kept[1] = {kept},
                   *keys_kept2[1] = {kept2};

        cr_assert(n != NULL, "%s", err);
        support_unique_name("rolled", whole, sizeof(whole));
        support_unique_name("undone", undone, sizeof(undone));
        support_unique_name("kept", kept, sizeof(kept));
        support_unique_name("kept2", kept2, sizeof(kept2));
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        record_batch(n, keys_whole, 1, false, false);
        record_batch(n, keys_kept, 1, false, true);
        settle(n);
        cr_assert(eq(i64, sent_rows(kept), 1));
        cr_assert(eq(int, seen_before(kept, whole), 0), "a rolled-back batch was sent");
        record_batch(n, keys_undone, 1, true, true);
        record_batch(n, keys_kept2, 1, false, true);
        settle(n);
        cr_assert(eq(i64, sent_rows(kept2), 1));
        cr_assert(eq(int, seen_before(kept2, undone), 0),
                  "a row rolled back to a savepoint was sent");
        cr_assert(eq(int, on_topic(whole, 500) + on_topic(undone, 1), 0));
        notify_destroy(n);
}

Test(notify, a_batch_replaying_a_sent_change_sends_only_the_new_one)
{
        char err[256], old[64], fresh[64];
        struct notify *n = notify_new(&env, err, sizeof(err));
        const char *keys_old[1] = {old}, *keys_both[2] = {old, fresh};

        cr_assert(n != NULL, "%s", err);
        support_unique_name("old", old, sizeof(old));
        support_unique_name("fresh", fresh, sizeof(fresh));
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        record_batch(n, keys_old, 1, false, true);
        settle(n);
        cr_assert(eq(int, on_topic(old, 3000), 1));
        /* The statement inserts one row of two: what is there is read back, the sent row left out.
         */
        record_batch(n, keys_both, 2, false, true);
        settle(n);
        cr_assert(eq(i64, sent_rows(fresh), 1));
        cr_assert(eq(int, seen_before(fresh, old), 0), "a replayed change was sent again");
        notify_destroy(n);
}

Test(notify, a_locked_row_does_not_stall_the_flush_it_is_marked_once_released)
{
        char err[256], key[64], id[65], sql[512];
        struct notify *n = notify_new(&env, err, sizeof(err));
        const char *keys[1] = {key};
        MYSQL *holder = support_mysql_connect(url);
        long long deadline;

        cr_assert(n != NULL, "%s", err);
        support_unique_name("locked", key, sizeof(key));
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err); /* the first sweep */
        /* A batch's connection gives up on a row lock within a second. */
        cr_assert(db_sql(db, "SET SESSION innodb_lock_wait_timeout = 1", NULL, err, sizeof(err)) ==
                          DB_OK,
                  "%s", err);
        record_batch(n, keys, 1, false, true);
        /* Another transaction holds the row (another instance's sweep claiming it). */
        event_id_of(key, id);
        snprintf(sql, sizeof(sql), "SELECT id FROM notify_outbox WHERE event_id = '%s' FOR UPDATE",
                 id);
        cr_assert(mysql_query(holder, "START TRANSACTION") == 0, "%s", mysql_error(holder));
        cr_assert(mysql_query(holder, sql) == 0, "%s", mysql_error(holder));
        mysql_free_result(mysql_store_result(holder));
        /* Sent, acknowledged and due for its mark: the flushes go on, none waits for the lock. */
        deadline = support_now_ms() + 2500;
        do {
                rd_kafka_poll(producer, 50);
                cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        } while (support_now_ms() < deadline);
        cr_assert(eq(int, on_topic(key, 3000), 1));
        cr_assert(eq(sz, notify_in_flight(n), 1), "acknowledged, its mark waits for the lock");
        cr_assert(mysql_query(holder, "COMMIT") == 0, "%s", mysql_error(holder));
        settle(n);
        cr_assert(eq(i64, sent_rows(key), 1));
        mysql_close(holder);
        notify_destroy(n);
}

Test(notify, a_mark_that_fails_is_tried_again)
{
        char err[256], key[64], id[65], sql[512];
        struct notify *n = notify_new(&env, err, sizeof(err));
        const char *keys[1] = {key};
        MYSQL *holder = support_mysql_connect(url);
        long long deadline, marker = 0;

        cr_assert(n != NULL, "%s", err);
        support_unique_name("remark", key, sizeof(key));
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err); /* the first sweep */
        record_batch(n, keys, 1, false, true);
        event_id_of(key, id);
        snprintf(sql, sizeof(sql), "SELECT id FROM notify_outbox WHERE event_id = '%s' FOR UPDATE",
                 id);
        cr_assert(mysql_query(holder, "START TRANSACTION") == 0, "%s", mysql_error(holder));
        cr_assert(mysql_query(holder, sql) == 0, "%s", mysql_error(holder));
        mysql_free_result(mysql_store_result(holder));
        /* Its mark waits for the lock; then its connection is lost. */
        deadline = support_now_ms() + 10000;
        while (!marker && support_now_ms() < deadline) {
                rd_kafka_poll(producer, 50);
                cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
                marker = support_query_int(
                        mysql,
                        "SELECT COALESCE(MAX(ID), 0) FROM information_schema.PROCESSLIST WHERE "
                        "DB = DATABASE() AND INFO LIKE 'UPDATE notify_outbox SET sent_at%%'");
        }
        cr_assert(marker > 0, "the mark did not run");
        snprintf(sql, sizeof(sql), "KILL CONNECTION %lld", marker);
        cr_assert(mysql_query(mysql, sql) == 0, "%s", mysql_error(mysql));
        cr_assert(mysql_query(holder, "COMMIT") == 0, "%s", mysql_error(holder));
        settle(n);
        cr_assert(eq(i64, sent_rows(key), 1), "the failed mark was not tried again");
        mysql_close(holder);
        notify_destroy(n);
}
