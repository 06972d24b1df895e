/* test_record.c: the record role, run as its binary against the real fixtures. */
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

#define TOPIC "live.record"
#define TRACE SUPPORT_WORKER_TRACE
#define T0_S  1700000000LL /* a session's start in these tests */

static struct support_worker_fx fx;

static void start_consumer(void)
{
        static const char *const env[] = {"LIVEFLOW_LOG_LEVEL=debug", NULL};

        fx.pid = support_start_worker("liveflow-consumer", "record", fx.mysql_url, fx.group, env,
                                      fx.log_path, &fx.admin_port);
}

static void setup(void)
{
        support_worker_fx_open(&fx, "rec");
        start_consumer();
}

static void teardown(void)
{
        support_worker_fx_close(&fx);
}

TestSuite(record, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------------ helpers */

/* Produces one raw value to live.record with the given key, and waits for the ack. */
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

/* A record.file of stream_id starting at start_s and lasting 154 s. */
static void produce_file(const char *stream_id, const char *event_key, const char *file_id,
                         const char *video_url, long long start_s)
{
        json_t *p = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:i,s:I}", "file_id", file_id, "video_url",
                              video_url, "file_format", "hls", "session_key", "2918085116267032069",
                              "start_time_ms", (json_int_t)(start_s * 1000 + 316), "end_time_ms",
                              (json_int_t)((start_s + 154) * 1000 + 618), "duration_s", 154,
                              "file_size", (json_int_t)277941079);

        produce_event(stream_id, stream_id, event_key, "record.file", "RecordFile", p);
}

static void produce_status(const char *stream_id, const char *event_key, const char *record_event)
{
        json_t *p = json_pack("{s:s,s:s,s:s}", "record_event", record_event, "session_key",
                              "2918085116267032069", "seq", event_key);

        produce_event(stream_id, stream_id, event_key, "record.status", "RecordStatus", p);
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

        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM live_events WHERE consumer = 'record' AND stream_id = '%s'",
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

/* A live_streams row as the stream role leaves it; ended_s -1 leaves the session open. */
static void insert_stream(const char *stream_id, long long session, long long started_s,
                          long long ended_s)
{
        char sql[1024], ended[64];

        if (ended_s >= 0)
                snprintf(ended, sizeof(ended), "FROM_UNIXTIME(%lld)", ended_s);
        else
                snprintf(ended, sizeof(ended), "NULL");
        snprintf(
                sql, sizeof(sql),
                "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, vendor_session, "
                "status, started_at, ended_at, last_event_at) VALUES ('%s', 'a1', 'a1', %lld, 'tencent', 's1', "
                "'%s', FROM_UNIXTIME(%lld), %s, NOW(3))",
                stream_id, session, ended_s >= 0 ? "ended" : "live", started_s, ended);
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

Test(record, file_is_stored_and_linked_to_the_session_that_holds_it)
{
        char s[64], file[96], v[512], sql[512];
        long long session = unique_session();

        snprintf(s, sizeof(s), "%s_a", fx.prefix);
        snprintf(file, sizeof(file), "%s_file", fx.prefix);
        insert_stream(s, session, T0_S, T0_S + 3600);
        produce_file(s, file, file, "http://vod.example/a.m3u8", T0_S + 60);
        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM live_records WHERE file_id = '%s'", file);
        wait_value("1", sql);

        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT CONCAT_WS('|', stream_id, vendor, video_url, file_format, duration_s, "
                "file_size, session_key, trace_id) FROM live_records WHERE file_id = '%s'",
                file);
        snprintf(sql, sizeof(sql),
                 "%s|tencent|http://vod.example/a.m3u8|hls|154|277941079|2918085116267032069|%s", s,
                 TRACE);
        cr_assert_str_eq(v, sql);
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT CONCAT_WS('|', UNIX_TIMESTAMP(start_time), UNIX_TIMESTAMP(end_time)) "
                "FROM live_records WHERE file_id = '%s'",
                file);
        snprintf(sql, sizeof(sql), "%lld.316|%lld.618", T0_S + 60, T0_S + 60 + 154);
        cr_assert_str_eq(v, sql);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT session_id FROM live_records WHERE file_id = '%s'", file);
        snprintf(sql, sizeof(sql), "%lld", session);
        cr_assert_str_eq(v, sql, "the file starts inside the session");
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT CONCAT_WS('|', event_type, outcome, kafka_topic) FROM live_events "
                       "WHERE consumer = 'record' AND stream_id = '%s'",
                       s);
        cr_assert_str_eq(v, "record.file|applied|live.record");
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT CONCAT('partition=', kafka_partition, ' offset=', kafka_offset) "
                       "FROM live_events WHERE consumer = 'record' AND stream_id = '%s'",
                       s);
        stop_consumer_expect_clean_exit();
        /* The record's line in the log (flushed by the drain), with its trace id and place. */
        char *log = support_read_file(fx.log_path, NULL);
        char want[1536];

        cr_assert_not_null(log);
        snprintf(
                want, sizeof(want),
                "INFO trace=%s record.file stream=%s file=%s outcome=applied topic=live.record %s\n",
                TRACE, s, file, v);
        cr_assert(strstr(log, want), "no line \"%s\" in %s", want, fx.log_path);
        free(log);
}

Test(record, file_outside_the_stream_session_is_not_linked_to_it)
{
        char s[64], inside[96], outside[96], v[64];
        long long session = unique_session();

        snprintf(s, sizeof(s), "%s_out", fx.prefix);
        snprintf(inside, sizeof(inside), "%s_in", fx.prefix);
        snprintf(outside, sizeof(outside), "%s_later", fx.prefix);
        insert_stream(s, session, T0_S, T0_S + 600);
        /* A file of a later session, whose begin this database has not seen. */
        produce_file(s, outside, outside, "http://vod.example/later.m3u8", T0_S + 86400);
        produce_file(s, inside, inside, "http://vod.example/in.m3u8", T0_S + 300);
        wait_events(s, 2);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT session_id IS NULL FROM live_records WHERE file_id = '%s'", outside);
        cr_assert_str_eq(v, "1");
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT outcome FROM live_events WHERE consumer = 'record' AND stream_id = '%s' "
                "ORDER BY id LIMIT 1",
                s);
        cr_assert_str_eq(v, "no_session");
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT session_id = %lld FROM live_records WHERE file_id = '%s'", session,
                       inside);
        cr_assert_str_eq(v, "1");
        stop_consumer_expect_clean_exit();
}

Test(record, file_before_its_session_is_linked_once_the_session_exists)
{
        char s[64], file[96], sql[512], want[32];
        long long session = unique_session();

        snprintf(s, sizeof(s), "%s_early", fx.prefix);
        snprintf(file, sizeof(file), "%s_early_file", fx.prefix);
        produce_file(s, file, file, "http://vod.example/early.m3u8", T0_S + 60);
        snprintf(
                sql, sizeof(sql),
                "SELECT CONCAT(COUNT(*), ':', COALESCE(MAX(session_id), 'null')) FROM live_records "
                "WHERE file_id = '%s'",
                file);
        wait_value("1:null", sql);

        /* The stream role catches up: the row of the session that holds the file appears. */
        insert_stream(s, session, T0_S, -1);
        snprintf(sql, sizeof(sql), "SELECT session_id FROM live_records WHERE file_id = '%s'",
                 file);
        snprintf(want, sizeof(want), "%lld", session);
        wait_value(want, sql);
        stop_consumer_expect_clean_exit();
}

/* Files of stream_id as the role stores them, without a session, received `age` ago. */
static void insert_unlinked_files(const char *stream_id, int n, const char *age)
{
        char sql[1024];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO live_records (file_id, stream_id, vendor, video_url, start_time, "
                 "trace_id, created_at) SELECT CONCAT('%s_', seq), '%s', 'tencent', "
                 "'http://vod.example/f.m3u8', FROM_UNIXTIME(%lld), '%s', NOW(3) - INTERVAL %s "
                 "FROM seq_1_to_%d",
                 stream_id, stream_id, T0_S + 60, TRACE, age, n);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
}

/* The files each "linked N recording(s)" line of the consumer's log names: their sum and the most.
 */
static void linked_in_log(long long *sum, long long *most, int *lines)
{
        FILE *f = fopen(fx.log_path, "r");
        char line[4096];

        *sum = *most = 0;
        *lines = 0;
        cr_assert(f != NULL, "%s", fx.log_path);
        while (fgets(line, sizeof(line), f)) {
                const char *p = strstr(line, "linked ");
                long long n;

                if (p && strstr(p, "recording(s) to their session") &&
                    sscanf(p, "linked %lld", &n) == 1) {
                        *sum += n;
                        *most = n > *most ? n : *most;
                        (*lines)++;
                }
        }
        fclose(f);
}

/*
 * A backlog of unlinked files larger than one page of the sweep (500 files), most of them of a
 * stream that has no row at all: every file whose session turns up is linked after enough
 * ticks, and no tick links more than a page.
 */
Test(record, sweep_links_a_backlog_larger_than_a_page_a_page_per_tick)
{
        char s[64], gone[64], sql[512], want[32];
        long long session = unique_session(), sum, most;
        int lines;

        snprintf(s, sizeof(s), "%s_late", fx.prefix);
        snprintf(gone, sizeof(gone), "%s_gone", fx.prefix);
        insert_unlinked_files(gone, 1200, "1 HOUR");
        /* All received at the same instant: the page boundary falls between equal times. */
        insert_unlinked_files(s, 1300, "0 SECOND");
        insert_stream(s, session, T0_S, -1);

        snprintf(sql, sizeof(sql),
                 "SELECT CONCAT(COUNT(*), ':', SUM(session_id <=> %lld)) FROM live_records "
                 "WHERE stream_id = '%s'",
                 session, s);
        snprintf(want, sizeof(want), "1300:1300");
        wait_value(want, sql);
        snprintf(sql, sizeof(sql),
                 "SELECT CONCAT(COUNT(*), ':', COUNT(session_id)) FROM live_records "
                 "WHERE stream_id = '%s'",
                 gone);
        wait_value("1200:0", sql);
        stop_consumer_expect_clean_exit();

        linked_in_log(&sum, &most, &lines);
        cr_assert_eq(sum, 1300, "the log names %lld linked files, want 1300 (%s)", sum,
                     fx.log_path);
        cr_assert(most <= 500, "one sweep linked %lld files, more than a page (%s)", most,
                  fx.log_path);
        cr_assert(lines >= 3, "%d sweep lines for 1300 files", lines);
}

Test(record, duplicates_and_replays_leave_one_row_as_first_stored)
{
        char s[64], file[96], again[96], barrier[96], v[256];

        snprintf(s, sizeof(s), "%s_dup", fx.prefix);
        snprintf(file, sizeof(file), "%s_dup_file", fx.prefix);
        snprintf(again, sizeof(again), "%s_dup_again", fx.prefix);
        snprintf(barrier, sizeof(barrier), "%s_dup_barrier", fx.prefix);
        /* The vendor's retry: the same event twice. */
        produce_file(s, file, file, "http://vod.example/first.m3u8", T0_S);
        produce_file(s, file, file, "http://vod.example/first.m3u8", T0_S);
        wait_events(s, 1);
        /* A replay of the same event after it was applied, and another event naming the same file.
         */
        produce_file(s, file, file, "http://vod.example/first.m3u8", T0_S);
        produce_file(s, again, file, "http://vod.example/second.m3u8", T0_S + 5);
        /* Same key, same partition: once the barrier is in, everything before it was applied. */
        produce_status(s, barrier, "record_ended");
        wait_events(s, 3);

        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT COUNT(*) FROM live_records WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "1");
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT CONCAT_WS('|', video_url, UNIX_TIMESTAMP(start_time)) FROM live_records "
                "WHERE file_id = '%s'",
                file);
        snprintf(barrier, sizeof(barrier), "http://vod.example/first.m3u8|%lld.316", T0_S);
        cr_assert_str_eq(v, barrier, "a later event must not change a stored file");
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT GROUP_CONCAT(outcome ORDER BY id) FROM live_events WHERE consumer = 'record' "
                "AND stream_id = '%s'",
                s);
        cr_assert_str_eq(v, "no_session,duplicate_file,applied");
        /* live.notify: one record.ready for the file, with the vendor's URL to play it. */
        {
                char sql[512];

                snprintf(sql, sizeof(sql),
                         "SELECT CONCAT_WS('|', COUNT(*), MIN(sent_at IS NOT NULL), MIN(payload "
                         "LIKE '%%\"playback_url\":\"http://vod.example/first.m3u8\"%%')) FROM "
                         "notify_messages WHERE kind = 'record.ready' AND stream_id = '%s'",
                         s);
                wait_value("1|1|1", sql);
        }
        stop_consumer_expect_clean_exit();
}

Test(record, status_is_recorded_in_live_events_only)
{
        char s[64], key[96], v[128];

        snprintf(s, sizeof(s), "%s_status", fx.prefix);
        snprintf(key, sizeof(key), "%s_status_1", fx.prefix);
        produce_status(s, key, "record_start_succeeded");
        wait_events(s, 1);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT CONCAT_WS('|', event_type, outcome, vendor) FROM live_events "
                       "WHERE consumer = 'record' AND stream_id = '%s'",
                       s);
        cr_assert_str_eq(v, "record.status|applied|tencent");
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT COUNT(*) FROM live_records WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "0");
        stop_consumer_expect_clean_exit();
}

Test(record, invalid_records_go_to_the_dlq_and_the_partition_moves_on)
{
        static const char *const why[] = {
                "", /* undecodable: the codec's own words */
                "event_type record.file with payload Snapshot is not a recording event",
                "event_type record.status with payload RecordFile is not a recording event",
                "RecordFile.file_id is missing or empty",
                "RecordFile.video_url is missing or empty",
                "event record.file has no stream_id",
        };
        struct support_dead_letter dead[6];
        char s[64], key[96], v[64];

        snprintf(s, sizeof(s), "%s_bad", fx.prefix);
        produce_raw(s, "\xc3\x01garbage", 9);
        snprintf(key, sizeof(key), "%s_bad_1", fx.prefix);
        produce_event(s, s, key, "record.file", "Snapshot",
                      json_pack("{s:s,s:I}", "pic_url", "/a.jpg", "create_time_ms",
                                (json_int_t)T0_S * 1000));
        snprintf(key, sizeof(key), "%s_bad_2", fx.prefix);
        produce_event(s, s, key, "record.status", "RecordFile",
                      json_pack("{s:s,s:s}", "file_id", "f", "video_url", "http://vod.example/x"));
        snprintf(key, sizeof(key), "%s_bad_3", fx.prefix);
        produce_event(s, s, key, "record.file", "RecordFile",
                      json_pack("{s:s,s:s}", "file_id", "", "video_url", "http://vod.example/x"));
        snprintf(key, sizeof(key), "%s_bad_4", fx.prefix);
        produce_event(s, s, key, "record.file", "RecordFile",
                      json_pack("{s:s,s:s}", "file_id", "f", "video_url", ""));
        snprintf(key, sizeof(key), "%s_bad_5", fx.prefix);
        produce_event(s, NULL, key, "record.file", "RecordFile",
                      json_pack("{s:s,s:s}", "file_id", "f", "video_url", "http://vod.example/x"));
        /* Same key, so same partition: the good record must not be held behind the bad ones. */
        snprintf(key, sizeof(key), "%s_good", fx.prefix);
        produce_file(s, key, key, "http://vod.example/good.m3u8", T0_S);
        wait_events(s, 1);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT COUNT(*) FROM live_records WHERE file_id = '%s'", key);
        cr_assert_str_eq(v, "1");

        cr_assert_eq(support_dead_letters(TOPIC, s, fx.group, dead, 6, 25000), 6,
                     "want 6 dead letters keyed %s", s);
        for (size_t i = 0; i < 6; i++) {
                cr_assert_str_eq(dead[i].error_class, "permanent", "dead letter %zu", i);
                cr_assert(dead[i].has_headers, "dead letter %zu lacks dlq.* or trace_id headers",
                          i);
                cr_assert(strstr(dead[i].message, why[i]) != NULL,
                          "dead letter %zu says \"%s\", want \"%s\"", i, dead[i].message, why[i]);
        }
        cr_assert(strlen(dead[0].message) > 0);
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT COUNT(*) FROM live_records WHERE stream_id = '%s' AND file_id <> '%s'", s,
                key);
        cr_assert_str_eq(v, "0", "no invalid record may leave a row");
        stop_consumer_expect_clean_exit();
}

/*
 * Killed with SIGKILL in the middle of a backlog and started again: every file is stored once,
 * and every record.ready it recorded is sent and marked sent (the relay does not hold the
 * offsets back, so the outbox and its sweep are what carry the crash).
 */
Test(record, killed_mid_backlog_every_file_is_stored_once_and_announced)
{
        enum { FILES = 1500 };
        char s[64], sql[1024], want[64], got[64];
        long long deadline;

        snprintf(s, sizeof(s), "%s_kill", fx.prefix);
        for (int i = 0; i < FILES; i++) {
                char event_key[128], file_id[96], event_id[65], err[256];
                json_t *p;
                void *buf;
                size_t len;

                snprintf(event_key, sizeof(event_key), "%s_ev_%d", s, i);
                snprintf(file_id, sizeof(file_id), "%s_file_%d", s, i);
                crypto_sha256_hex(event_key, strlen(event_key), event_id);
                p = json_pack("{s:s,s:s,s:s,s:I}", "file_id", file_id, "video_url",
                              "http://vod.example/k.m3u8", "file_format", "hls", "start_time_ms",
                              (json_int_t)(T0_S * 1000 + i));
                struct envelope env = {.event_id = event_id,
                                       .vendor = "tencent",
                                       .event_type = "record.file",
                                       .stream_id = s,
                                       .event_time_ms = (T0_S + 3600) * 1000,
                                       .receive_time_ms = (T0_S + 3600) * 1000 + 5,
                                       .trace_id = TRACE,
                                       .raw = "{}",
                                       .raw_len = 2};
                cr_assert(codec_encode(fx.codec, &env, "RecordFile", p, &buf, &len, err,
                                       sizeof(err)) == 0,
                          "%s", err);
                json_decref(p);
                cr_assert(rd_kafka_producev(
                                  fx.producer, RD_KAFKA_V_TOPIC(TOPIC),
                                  RD_KAFKA_V_KEY(s, strlen(s)), RD_KAFKA_V_VALUE(buf, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                  RD_KAFKA_V_HEADER("trace_id", TRACE, -1), RD_KAFKA_V_END) == 0);
        }
        cr_assert(rd_kafka_flush(fx.producer, 10000) == 0);
        /* Killed once some files are in: mid-backlog when the timing allows, else after it. */
        deadline = support_now_ms() + 25000;
        do {
                support_query1(fx.mysql, got, sizeof(got),
                               "SELECT COUNT(*) FROM live_records WHERE stream_id = '%s'", s);
                support_sleep_ms(5);
        } while (strcmp(got, "0") == 0 && support_now_ms() < deadline);
        cr_assert(kill(fx.pid, SIGKILL) == 0);
        support_wait_exit(fx.pid, 5000);
        start_consumer();
        snprintf(
                sql, sizeof(sql),
                "SELECT CONCAT_WS('|', (SELECT COUNT(*) FROM live_records WHERE stream_id = '%s'), "
                "(SELECT COUNT(*) FROM live_events WHERE consumer = 'record' AND stream_id = "
                "'%s'), (SELECT COUNT(*) FROM notify_messages WHERE stream_id = '%s'), (SELECT "
                "COUNT(*) FROM notify_messages WHERE stream_id = '%s' AND sent_at IS NOT NULL))",
                s, s, s, s);
        snprintf(want, sizeof(want), "%d|%d|%d|%d", FILES, FILES, FILES, FILES);
        wait_value(want, sql);
        /* Each marked row was acknowledged by the broker: at least FILES records are there. */
        cr_assert(support_count_records("live.notify", s, NULL, NULL, 0, 10000, FILES) >= FILES);
        stop_consumer_expect_clean_exit();
}
