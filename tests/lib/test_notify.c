/*
 * test_notify.c: the live.notify outbox and its relay (lib/notify.h) against the fixture
 * MariaDB and broker: what a transaction commits is sent once and marked sent, what it rolls
 * back never; a row an earlier life left is sent by the next life's first flush; a young row
 * (another relay's, in flight) is left to its relay until it is old. A batch's notifications
 * are one notify_batch row whose every message goes as its own record; what is sent is read
 * where operators read it, the notify_messages view.
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

static enum db_result record_batch(struct notify *n, const char *const *keys, size_t cnt,
                                   bool is_undone, bool is_committed);
static void arrive_in_order(const char *const *keys, size_t cnt);

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
                                 "SELECT COUNT(*) FROM notify_messages WHERE event_id = '%s' AND "
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
        char err[256], key[64], batch_key[64];
        const char *keys[1] = {batch_key};
        struct notify *relay = notify_new(&env, err, sizeof(err));
        struct notify *second = notify_new(&env, err, sizeof(err));

        cr_assert(relay != NULL && second != NULL, "%s", err);
        support_unique_name("second", key, sizeof(key));
        support_unique_name("second-batch", batch_key, sizeof(batch_key));
        cr_assert(notify_flush(second, false, err, sizeof(err)) == 0, "%s", err);
        record(second, key, true);
        cr_assert(notify_flush(second, false, err, sizeof(err)) == 0, "%s", err);
        cr_assert(eq(i64, sent_rows(key), 1), "sent and acknowledged within the flush");
        cr_assert(eq(int, on_topic(key, 3000), 1));
        /* A batch's bundle the same way. */
        record_batch(second, keys, 1, false, true);
        cr_assert(notify_flush(second, false, err, sizeof(err)) == 0, "%s", err);
        cr_assert(eq(i64, sent_rows(batch_key), 1), "the bundle sent and marked within the flush");
        arrive_in_order(keys, 1);
        notify_destroy(second);
        notify_destroy(relay);
}

/*
 * Records stream.live for each of keys in one multi-row statement (the batch path), in its own
 * transaction; with a savepoint rolled back after the statement when is_undone, then committed
 * or rolled back. @returns the statement's result.
 */
static enum db_result record_batch_cover(struct notify *n, const char *const *keys, size_t cnt,
                                         bool is_undone, bool is_committed, const char *last_cover)
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
                if (i == cnt - 1)
                        m.cover_url = last_cover;
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

static enum db_result record_batch(struct notify *n, const char *const *keys, size_t cnt,
                                   bool is_undone, bool is_committed)
{
        return record_batch_cover(n, keys, cnt, is_undone, is_committed, NULL);
}

/* The notify_batch row (bundle) that holds the message of event id id. */
static long long bundle_of(const char *id)
{
        return support_query_int(mysql,
                                 "SELECT row_id FROM notify_messages WHERE source = 'batch' AND "
                                 "event_id = '%s'",
                                 id);
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
        /* Changed after the commit: a relay that read the bundle back would send this anchor. */
        event_id_of(a, id);
        snprintf(sql, sizeof(sql),
                 "UPDATE notify_batch SET body = REPLACE(body, 'anchor-notify', 'read-back') "
                 "WHERE id = (SELECT row_id FROM notify_messages WHERE event_id = '%s')",
                 id);
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

Test(notify, a_change_told_twice_in_one_batch_is_one_message)
{
        char err[256], twice[64], once[64], id[65];
        struct notify *n = notify_new(&env, err, sizeof(err));
        const char *keys[3] = {twice, once, twice};

        cr_assert(n != NULL, "%s", err);
        support_unique_name("twice", twice, sizeof(twice));
        support_unique_name("once", once, sizeof(once));
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        record_batch(n, keys, 3, false, true);
        settle(n);
        event_id_of(twice, id);
        cr_assert(eq(i64,
                     support_query_int(mysql,
                                       "SELECT COUNT(*) FROM notify_messages WHERE event_id = '%s'",
                                       id),
                     1));
        cr_assert(eq(i64, sent_rows(once), 1));
        cr_assert(eq(int, on_topic(twice, 3000), 1));
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
        snprintf(sql, sizeof(sql), "SELECT id FROM notify_batch WHERE id = %lld FOR UPDATE",
                 bundle_of(id));
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
        snprintf(sql, sizeof(sql), "SELECT id FROM notify_batch WHERE id = %lld FOR UPDATE",
                 bundle_of(id));
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
                        "DB = DATABASE() AND INFO LIKE 'UPDATE notify_batch SET sent_at%%'");
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

/* How many notify_batch rows hold the messages of keys[0..cnt), and whether each is sent. */
static long long bundles_of(const char *const *keys, size_t cnt, bool is_sent)
{
        char in[1024] = "", id[65];
        size_t len = 0;

        for (size_t i = 0; i < cnt; i++) {
                event_id_of(keys[i], id);
                len += (size_t)snprintf(in + len, sizeof(in) - len, "%s'%s'", i ? ", " : "", id);
        }
        return support_query_int(mysql,
                                 "SELECT COUNT(DISTINCT row_id) FROM notify_messages WHERE "
                                 "source = 'batch' AND event_id IN (%s) AND sent_at IS %s NULL",
                                 in, is_sent ? "NOT" : "");
}

/* Each of keys[0..cnt) comes on live.notify with its event id, once, in this order. */
static void arrive_in_order(const char *const *keys, size_t cnt)
{
        for (size_t i = 0; i < cnt; i++) {
                char id[65], trace_id[33];
                const char *got;
                int before = 0;
                size_t got_len;
                rd_kafka_message_t *rkm;
                rd_kafka_headers_t *hdrs = NULL;

                event_id_of(keys[i], id);
                snprintf(trace_id, sizeof(trace_id), "%.32s", id);
                rkm = support_reader_until(reader, trace_id, "event_id", id, &before, 5000);
                cr_assert(rkm != NULL, "%s did not come", keys[i]);
                cr_assert(rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR);
                cr_assert(rd_kafka_header_get_last(hdrs, "event_id", (const void **)&got,
                                                   &got_len) == RD_KAFKA_RESP_ERR_NO_ERROR);
                cr_assert(got_len == 64 && memcmp(got, id, 64) == 0, "%s: another event id",
                          keys[i]);
                rd_kafka_message_destroy(rkm);
                cr_assert(eq(int, before, 1), "%s came twice", keys[i]); /* itself counts */
        }
}

Test(notify, a_batch_is_one_row_whose_every_message_goes_with_its_event_id)
{
        char err[256], a[64], b[64], c[64], id[65], hex[129];
        struct notify *n = notify_new(&env, err, sizeof(err));
        const char *keys[3] = {a, b, c};

        cr_assert(n != NULL, "%s", err);
        support_unique_name("one-a", a, sizeof(a));
        support_unique_name("one-\"b\\\t", b, sizeof(b)); /* JSON's escapes in the body */
        support_unique_name("one-c", c, sizeof(c));
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        record_batch(n, keys, 3, false, true);
        cr_assert(eq(i64, bundles_of(keys, 3, false), 1), "one unsent row for the batch");
        event_id_of(b, id);
        for (size_t i = 0; b[i]; i++)
                snprintf(hex + 2 * i, 3, "%02X", (unsigned char)b[i]);
        cr_assert(eq(i64,
                     support_query_int(mysql,
                                       "SELECT COUNT(*) FROM notify_messages WHERE event_id = "
                                       "'%s' AND HEX(stream_id) = '%s' AND JSON_VALUE(payload, "
                                       "'$.kind') = 'stream.live'",
                                       id, hex),
                     1),
                  "the view reads the message back as it was recorded");
        settle(n);
        cr_assert(eq(i64, bundles_of(keys, 3, true), 1), "the row is marked sent");
        cr_assert(eq(i64, bundles_of(keys, 3, false), 0));
        arrive_in_order(keys, 3); /* each its own record, in batch order */
        cr_assert(eq(int, on_topic(a, 500) + on_topic(b, 1) + on_topic(c, 1), 0));
        notify_destroy(n);
}

Test(notify, a_crash_after_the_commit_before_the_send_sends_every_message_at_the_next_life)
{
        char err[256], a[64], b[64], c[64];
        struct notify *n = notify_new(&env, err, sizeof(err));
        const char *keys[3] = {a, b, c};

        cr_assert(n != NULL, "%s", err);
        support_unique_name("lost-a", a, sizeof(a));
        support_unique_name("lost-b", b, sizeof(b));
        support_unique_name("lost-c", c, sizeof(c));
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        record_batch(n, keys, 3, false, true);
        notify_destroy(n); /* committed, never relayed */
        cr_assert(eq(int, on_topic(a, 500), 0));
        cr_assert(eq(i64, bundles_of(keys, 3, false), 1));

        n = notify_new(&env, err, sizeof(err));
        cr_assert(n != NULL, "%s", err);
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        cr_assert(eq(i64, bundles_of(keys, 3, true), 1), "the first flush of a life sweeps it");
        arrive_in_order(keys, 3);
        notify_destroy(n);
}

Test(notify, a_bundle_whose_send_partly_failed_stays_unsent_and_is_sent_again)
{
        char err[256], small[64], big[64], cover[1600];
        struct settings tight;
        struct produce_ack tight_ack;
        struct role_env tight_env;
        rd_kafka_t *tight_producer;
        struct notify *n;
        const char *keys[2] = {small, big};

        /* A producer that cannot take the second message (a record over 1 000 bytes). */
        setenv("LIVEFLOW_KAFKA_PROP_MESSAGE_MAX_BYTES", "1000", 1);
        cr_assert(settings_load(&tight, SETTINGS_CONSUMER, err, sizeof(err)) == 0, "%s", err);
        unsetenv("LIVEFLOW_KAFKA_PROP_MESSAGE_MAX_BYTES");
        memset(&tight_ack, 0, sizeof(tight_ack));
        tight_producer = kafka_producer_new(&tight, "test-notify-tight", on_delivery, &tight_ack,
                                            err, sizeof(err));
        cr_assert(tight_producer != NULL, "%s", err);
        tight_env = env;
        tight_env.settings = &tight;
        tight_env.producer = tight_producer;
        tight_env.ack = &tight_ack;
        memset(cover, 'c', sizeof(cover) - 1);
        cover[sizeof(cover) - 1] = '\0';
        support_unique_name("part-small", small, sizeof(small));
        support_unique_name("part-big", big, sizeof(big));

        n = notify_new(&tight_env, err, sizeof(err));
        cr_assert(n != NULL, "%s", err);
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        record_batch_cover(n, keys, 2, false, true, cover);
        for (int i = 0; i < 5; i++) { /* the big one fails each time it is tried */
                rd_kafka_poll(tight_producer, 50);
                cr_assert(notify_flush(n, false, err, sizeof(err)) == -1);
        }
        cr_assert(eq(int, on_topic(small, 3000), 1), "the message that could go went");
        cr_assert(eq(i64, bundles_of(keys, 2, false), 1), "not every message went: unsent");
        notify_destroy(n);
        rd_kafka_flush(tight_producer, 5000);
        rd_kafka_destroy(tight_producer);
        settings_fini(&tight);

        /* The next life (a producer that can send it) sends the bundle whole, same event ids. */
        n = notify_new(&env, err, sizeof(err));
        cr_assert(n != NULL, "%s", err);
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        cr_assert(eq(i64, bundles_of(keys, 2, true), 1));
        arrive_in_order(keys, 2); /* the small one again, with its event id, then the big one */
        notify_destroy(n);
}

Test(notify, a_young_unsent_bundle_is_left_to_its_relay_until_it_is_old)
{
        char err[256], key[64], id[65], sql[1024];
        const char *keys[1] = {key};
        struct notify *n = notify_new(&env, err, sizeof(err));

        cr_assert(n != NULL, "%s", err);
        support_unique_name("young-bundle", key, sizeof(key));
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err); /* the first sweep */
        /* Another instance's bundle, committed and in its relay's flight. */
        event_id_of(key, id);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO notify_batch (messages, body) VALUES (1, '[{\"event_id\":\"%s\","
                 "\"kind\":\"stream.live\",\"anchor_id\":\"anchor-notify\",\"stream_id\":\"%s\","
                 "\"payload\":{\"kind\":\"stream.live\",\"at_ms\":1700000000000}}]')",
                 id, key);
        cr_assert(mysql_query(mysql, sql) == 0, "%s", mysql_error(mysql));
        cr_assert(notify_flush(n, true, err, sizeof(err)) == 0, "%s", err);
        cr_assert(eq(i64, bundles_of(keys, 1, false), 1), "a young bundle is another relay's");
        cr_assert(eq(int, on_topic(key, 500), 0));
        /* Its relay died: once older than any send in flight, the sweep sends it. */
        cr_assert(mysql_query(mysql, "UPDATE notify_batch SET created_at = NOW(3) - INTERVAL 61 "
                                     "SECOND WHERE sent_at IS NULL") == 0);
        cr_assert(notify_flush(n, true, err, sizeof(err)) == 0, "%s", err);
        cr_assert(eq(i64, bundles_of(keys, 1, true), 1));
        arrive_in_order(keys, 1);
        notify_destroy(n);
}

Test(notify, a_batch_message_keeps_a_multibyte_id_whole)
{
        char err[256], key[64], anchor[64 * 3 + 1] = "", got[256], id[65];
        struct notify *n = notify_new(&env, err, sizeof(err));
        struct notify_msg m;
        struct db_text t = {0};

        cr_assert(n != NULL, "%s", err);
        support_unique_name("wide", key, sizeof(key));
        for (int i = 0; i < 64; i++) /* 64 characters, 192 bytes: as wide as anchor_id takes */
                strcat(anchor, "\xe4\xb8\xbb");
        cr_assert(notify_flush(n, false, err, sizeof(err)) == 0, "%s", err);
        m = notify_msg_init("stream.live", key, 1700000000000LL);
        m.anchor_id = anchor;
        m.stream_id = key;
        cr_assert(db_begin(db, err, sizeof(err)) == DB_OK, "%s", err);
        notify_text_begin(&t);
        notify_text_row(n, &t, &m, true);
        cr_assert(notify_text_exec(n, &t, 1, err, sizeof(err)) == DB_OK, "%s", err);
        db_text_free(&t);
        cr_assert(db_commit(db, err, sizeof(err)) == DB_OK, "%s", err);
        settle(n);
        key_on_topic(key, got, sizeof(got));
        cr_assert_str_eq(got, anchor, "the record's key is the whole anchor");
        event_id_of(key, id);
        cr_assert(eq(i64,
                     support_query_int(mysql,
                                       "SELECT CHAR_LENGTH(anchor_id) FROM notify_messages WHERE "
                                       "event_id = '%s' AND sent_at IS NOT NULL",
                                       id),
                     64));
        notify_destroy(n);
}
