/* test_snapshot.c: the snapshot role, run as its binary against the real fixtures. */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "support_worker.h"
#include "url.h"

#define TOPIC "live.snapshot"
#define TRACE SUPPORT_WORKER_TRACE
#define T0_S  1700000000LL /* a stream's start in these tests */

static struct support_worker_fx fx;

static void start_consumer(void)
{
        static const char *const env[] = {"LIVEFLOW_LOG_LEVEL=debug", NULL};

        fx.pid = support_start_worker("liveflow-consumer", "snapshot", fx.mysql_url, fx.group, env,
                                      fx.log_path, &fx.admin_port);
}

static void setup(void)
{
        support_worker_fx_open(&fx, "snap");
        start_consumer();
}

static void teardown(void)
{
        support_worker_fx_close(&fx);
}

TestSuite(snapshot, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------------ helpers */

/* Produces one raw value to live.snapshot with the given key, and waits for the ack. */
static void produce_raw(const char *key, const void *value, size_t len)
{
        support_worker_produce_raw(&fx, TOPIC, key, value, len, "test");
}

/* An event of stream_id keyed by `key` an hour after T0_S (support_worker_produce_event()). */
static void produce_event(const char *key, const char *stream_id, const char *event_key,
                          const char *event_type, const char *payload_name, json_t *payload)
{
        support_worker_produce_event(&fx, TOPIC, key, stream_id, event_key, event_type,
                                     (T0_S + 3600) * 1000, payload_name, payload);
}

/* A screenshot of stream_id taken at taken_s; full_url NULL leaves pic_full_url out. */
static void produce_snapshot(const char *stream_id, const char *event_key, const char *pic_url,
                             const char *full_url, long long taken_s)
{
        json_t *p = json_pack("{s:s,s:I,s:i,s:i,s:i}", "pic_url", pic_url, "create_time_ms",
                              (json_int_t)(taken_s * 1000), "width", 1280, "height", 720,
                              "file_size", 30670);

        if (full_url)
                json_object_set_new(p, "pic_full_url", json_string(full_url));
        produce_event(stream_id, stream_id, event_key, "snapshot", "Snapshot", p);
}

/* First column of the first row as text, or "" when there is no row or it is NULL. */
/* Waits until the query's first value reads `want`. */
static void wait_value(const char *want, const char *sql)
{
        char got[256] = "";
        long long deadline = support_now_ms() + 25000;

        while (support_now_ms() < deadline) {
                support_query1(fx.mysql, got, sizeof(got), "%s", sql);
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(50);
        }
        cr_assert_fail("%s gives \"%s\", want \"%s\" (consumer log: %s)", sql, got, want,
                       fx.log_path);
}

/* Waits until the role recorded n events of the stream in live_events. */
static void wait_events(const char *stream_id, int n)
{
        char sql[512], want[16];

        snprintf(
                sql, sizeof(sql),
                "SELECT COUNT(*) FROM live_events WHERE consumer = 'snapshot' AND stream_id = '%s'",
                stream_id);
        snprintf(want, sizeof(want), "%d", n);
        wait_value(want, sql);
}

/* A session id no other test process uses (live_streams.session_id is unique). */
static long long unique_session(void)
{
        static int counter;

        return (long long)getpid() * 1000 + ++counter;
}

/* A live stream's row as the stream role leaves it, without a cover. */
static void insert_stream(const char *stream_id)
{
        char sql[1024];

        snprintf(
                sql, sizeof(sql),
                "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, vendor_session, "
                "status, started_at, last_event_at) VALUES ('%s', 'a1', 'a1', %lld, 'tencent', 's1', 'live', "
                "FROM_UNIXTIME(%lld), NOW(3))",
                stream_id, unique_session(), T0_S);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
}

static void stop_consumer_expect_clean_exit(void)
{
        cr_assert(kill(fx.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.pid, 20000), 0, "consumer did not drain cleanly; see %s",
                     fx.log_path);
        fx.pid = 0;
}

/* ------------------------------------------------------------------ tests */

/* The stream's cover as "url|unix time", or "" while it has none. */
static void cover_of(const char *stream_id, char *out, size_t out_size)
{
        support_query1(
                fx.mysql, out, out_size,
                "SELECT CONCAT_WS('|', cover_url, UNIX_TIMESTAMP(cover_time)) FROM live_streams "
                "WHERE stream_id = '%s' AND cover_url IS NOT NULL",
                stream_id);
}

static void expect_cover(const char *stream_id, const char *url, long long taken_s)
{
        char got[512], want[512];

        cover_of(stream_id, got, sizeof(got));
        snprintf(want, sizeof(want), "%s|%lld.000", url, taken_s);
        cr_assert_str_eq(got, want, "cover of %s", stream_id);
}

Test(snapshot, screenshot_is_kept_and_becomes_the_cover)
{
        char s[64], key[96], v[512], want[512];

        snprintf(s, sizeof(s), "%s_a", fx.prefix);
        snprintf(key, sizeof(key), "%s_a_1", fx.prefix);
        insert_stream(s);
        produce_snapshot(s, key, "/a/1.jpg", "http://cos.example/a/1.jpg", T0_S + 10);
        wait_events(s, 1);

        expect_cover(s, "http://cos.example/a/1.jpg", T0_S + 10);
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT CONCAT_WS('|', pic_url, pic_full_url, width, height, file_size, "
                "UNIX_TIMESTAMP(taken_at), COALESCE(cover_pending, 'settled')) FROM live_snapshots WHERE stream_id = '%s'",
                s);
        snprintf(want, sizeof(want),
                 "/a/1.jpg|http://cos.example/a/1.jpg|1280|720|30670|%lld.000|settled", T0_S + 10);
        cr_assert_str_eq(v, want);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT CONCAT_WS('|', event_type, outcome, kafka_topic) FROM live_events "
                       "WHERE consumer = 'snapshot' AND stream_id = '%s'",
                       s);
        cr_assert_str_eq(v, "snapshot|applied|live.snapshot");
        stop_consumer_expect_clean_exit();
}

Test(snapshot, an_older_screenshot_arriving_late_keeps_the_newer_cover)
{
        char s[64], newer[96], older[96], newest[96], v[256];

        snprintf(s, sizeof(s), "%s_order", fx.prefix);
        snprintf(newer, sizeof(newer), "%s_order_2", fx.prefix);
        snprintf(older, sizeof(older), "%s_order_1", fx.prefix);
        snprintf(newest, sizeof(newest), "%s_order_3", fx.prefix);
        insert_stream(s);
        produce_snapshot(s, newer, "/o/2.jpg", "http://cos.example/o/2.jpg", T0_S + 20);
        produce_snapshot(s, older, "/o/1.jpg", "http://cos.example/o/1.jpg", T0_S + 10);
        wait_events(s, 2);
        expect_cover(s, "http://cos.example/o/2.jpg", T0_S + 20);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT COUNT(*) FROM live_snapshots WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "2", "every screenshot is kept, whatever the cover");
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT GROUP_CONCAT(outcome ORDER BY id) FROM live_events WHERE consumer = 'snapshot' "
                "AND stream_id = '%s'",
                s);
        cr_assert_str_eq(v, "applied,older_than_cover");

        /* A newer one still moves the cover; without pic_full_url the cover is pic_url. */
        produce_snapshot(s, newest, "/o/3.jpg", NULL, T0_S + 30);
        wait_events(s, 3);
        expect_cover(s, "/o/3.jpg", T0_S + 30);
        stop_consumer_expect_clean_exit();
}

Test(snapshot, equal_times_end_on_the_same_cover_in_either_order)
{
        char a[64], b[64], key[96];

        snprintf(a, sizeof(a), "%s_tie_a", fx.prefix);
        snprintf(b, sizeof(b), "%s_tie_b", fx.prefix);
        insert_stream(a);
        insert_stream(b);
        snprintf(key, sizeof(key), "%s_x", a);
        produce_snapshot(a, key, "/t/x.jpg", NULL, T0_S);
        snprintf(key, sizeof(key), "%s_y", a);
        produce_snapshot(a, key, "/t/y.jpg", NULL, T0_S);
        snprintf(key, sizeof(key), "%s_y", b);
        produce_snapshot(b, key, "/t/y.jpg", NULL, T0_S);
        snprintf(key, sizeof(key), "%s_x", b);
        produce_snapshot(b, key, "/t/x.jpg", NULL, T0_S);
        wait_events(a, 2);
        wait_events(b, 2);
        expect_cover(a, "/t/y.jpg", T0_S);
        expect_cover(b, "/t/y.jpg", T0_S);
        stop_consumer_expect_clean_exit();
}

Test(snapshot, duplicates_and_replays_keep_one_row)
{
        char s[64], key[96], barrier[96], v[64];

        snprintf(s, sizeof(s), "%s_dup", fx.prefix);
        snprintf(key, sizeof(key), "%s_dup_1", fx.prefix);
        snprintf(barrier, sizeof(barrier), "%s_dup_barrier", fx.prefix);
        insert_stream(s);
        produce_snapshot(s, key, "/d/1.jpg", "http://cos.example/d/1.jpg", T0_S + 10);
        produce_snapshot(s, key, "/d/1.jpg", "http://cos.example/d/1.jpg", T0_S + 10);
        wait_events(s, 1);
        produce_snapshot(s, key, "/d/1.jpg", "http://cos.example/d/1.jpg", T0_S + 10);
        /* Same key, same partition: once the barrier is in, the replay before it was applied. */
        produce_snapshot(s, barrier, "/d/0.jpg", NULL, T0_S);
        wait_events(s, 2);
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT COUNT(*) FROM live_snapshots WHERE stream_id = '%s' AND pic_url = '/d/1.jpg'",
                s);
        cr_assert_str_eq(v, "1");
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT COUNT(*) FROM live_snapshots WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "2");
        expect_cover(s, "http://cos.example/d/1.jpg", T0_S + 10);
        stop_consumer_expect_clean_exit();
}

Test(snapshot, screenshots_before_the_stream_row_give_it_the_newest_cover_once_it_exists)
{
        char s[64], newer[96], older[96], sql[512], want[512];

        snprintf(s, sizeof(s), "%s_early", fx.prefix);
        snprintf(newer, sizeof(newer), "%s_early_2", fx.prefix);
        snprintf(older, sizeof(older), "%s_early_1", fx.prefix);
        produce_snapshot(s, newer, "/e/2.jpg", "http://cos.example/e/2.jpg", T0_S + 20);
        produce_snapshot(s, older, "/e/1.jpg", "http://cos.example/e/1.jpg", T0_S + 10);
        wait_events(s, 2);
        snprintf(sql, sizeof(sql),
                 "SELECT CONCAT(COUNT(*), ':', SUM(cover_pending)) FROM live_snapshots "
                 "WHERE stream_id = '%s'",
                 s);
        wait_value("2:2", sql);
        snprintf(sql, sizeof(sql),
                 "SELECT GROUP_CONCAT(outcome) FROM live_events WHERE consumer = 'snapshot' "
                 "AND stream_id = '%s'",
                 s);
        wait_value("no_stream,no_stream", sql);

        /* The stream role catches up: the row appears without a cover. */
        insert_stream(s);
        snprintf(sql, sizeof(sql),
                 "SELECT CONCAT_WS('|', cover_url, UNIX_TIMESTAMP(cover_time)) FROM live_streams "
                 "WHERE stream_id = '%s' AND cover_url IS NOT NULL",
                 s);
        snprintf(want, sizeof(want), "http://cos.example/e/2.jpg|%lld.000", T0_S + 20);
        wait_value(want, sql);
        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(cover_pending) FROM live_snapshots WHERE stream_id = '%s'", s);
        wait_value("0", sql);
        stop_consumer_expect_clean_exit();
}

Test(snapshot, invalid_snapshots_go_to_the_dlq_and_the_partition_moves_on)
{
        static const char *const why[] = {
                "", /* undecodable: the codec's own words */
                "event_type snapshot with payload RecordFile is not a snapshot",
                "event_type record.file with payload Snapshot is not a snapshot",
                "Snapshot.pic_url is missing or empty",
                "Snapshot.create_time_ms 0 is not a time",
                "Snapshot.create_time_ms 4102444800000 is not a time",
                "event snapshot has no stream_id",
        };
        struct support_dead_letter dead[7];
        char s[64], key[96], v[64];

        snprintf(s, sizeof(s), "%s_bad", fx.prefix);
        insert_stream(s);
        produce_raw(s, "\xc3\x01garbage", 9);
        snprintf(key, sizeof(key), "%s_bad_1", fx.prefix);
        produce_event(s, s, key, "snapshot", "RecordFile",
                      json_pack("{s:s,s:s}", "file_id", "f", "video_url", "http://vod.example/x"));
        snprintf(key, sizeof(key), "%s_bad_2", fx.prefix);
        produce_event(s, s, key, "record.file", "Snapshot",
                      json_pack("{s:s,s:I}", "pic_url", "/b.jpg", "create_time_ms",
                                (json_int_t)T0_S * 1000));
        snprintf(key, sizeof(key), "%s_bad_3", fx.prefix);
        produce_event(
                s, s, key, "snapshot", "Snapshot",
                json_pack("{s:s,s:I}", "pic_url", "", "create_time_ms", (json_int_t)T0_S * 1000));
        snprintf(key, sizeof(key), "%s_bad_4", fx.prefix);
        produce_event(s, s, key, "snapshot", "Snapshot",
                      json_pack("{s:s,s:I}", "pic_url", "/b.jpg", "create_time_ms", (json_int_t)0));
        snprintf(key, sizeof(key), "%s_bad_5", fx.prefix);
        produce_event(s, s, key, "snapshot", "Snapshot",
                      json_pack("{s:s,s:I}", "pic_url", "/b.jpg", "create_time_ms",
                                (json_int_t)4102444800000LL)); /* 2100 */
        snprintf(key, sizeof(key), "%s_bad_6", fx.prefix);
        produce_event(s, NULL, key, "snapshot", "Snapshot",
                      json_pack("{s:s,s:I}", "pic_url", "/b.jpg", "create_time_ms",
                                (json_int_t)T0_S * 1000));
        /* Same key, so same partition: the good record must not be held behind the bad ones. */
        snprintf(key, sizeof(key), "%s_good", fx.prefix);
        produce_snapshot(s, key, "/g.jpg", NULL, T0_S);
        wait_events(s, 1);
        expect_cover(s, "/g.jpg", T0_S);

        cr_assert_eq(support_dead_letters(TOPIC, s, fx.group, dead, 7, 25000), 7,
                     "want 7 dead letters keyed %s", s);
        for (size_t i = 0; i < 7; i++) {
                cr_assert_str_eq(dead[i].error_class, "permanent", "dead letter %zu", i);
                cr_assert(dead[i].has_headers, "dead letter %zu lacks dlq.* or trace_id headers",
                          i);
                cr_assert(strstr(dead[i].message, why[i]) != NULL,
                          "dead letter %zu says \"%s\", want \"%s\"", i, dead[i].message, why[i]);
        }
        cr_assert(strlen(dead[0].message) > 0);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT COUNT(*) FROM live_snapshots WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "1", "no invalid record may leave a row");
        stop_consumer_expect_clean_exit();
}
