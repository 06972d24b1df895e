/* test_other.c: the "other" role, run as its binary: kept callbacks are logged once each. */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "support_worker.h"

static struct support_worker_fx fx;

static void setup(void)
{
        support_worker_fx_open(&fx, "ot");
        /* What earlier suites left on live.other is not this test's backlog. */
        support_group_at_end(fx.group, (const char *const[]){"live.other", NULL});
        fx.pid = support_start_worker("liveflow-consumer", "other", fx.mysql_url, fx.group, NULL,
                                      fx.log_path, &fx.admin_port);
}

static void teardown(void)
{
        support_worker_fx_close(&fx);
}

TestSuite(other, .init = setup, .fini = teardown, .timeout = 90);

/* A kept callback as the receiver makes it: null payload, the vendor's body as raw. */
static void produce_kept(const char *vendor, const char *stream_id, const char *raw,
                         char event_id[65])
{
        char key[300], err[256];
        void *buf;
        size_t len;

        snprintf(key, sizeof(key), "%s|other|%s", vendor, stream_id);
        crypto_sha256_hex(key, strlen(key), event_id);
        const struct envelope env = {
                .event_id = event_id,
                .vendor = vendor,
                .event_type = "other",
                .stream_id = stream_id,
                .event_time_ms = 1703731478000LL,
                .receive_time_ms = 1703731478123LL,
                .trace_id = "0123456789abcdef0123456789abcdef",
                .raw = raw,
                .raw_len = strlen(raw),
        };
        cr_assert(codec_encode(fx.codec, &env, NULL, NULL, &buf, &len, err, sizeof(err)) == 0, "%s",
                  err);
        support_produce(fx.producer, "live.other", stream_id, buf, len, "other");
        free(buf);
}

static long long wait_rows(const char *event_id, long long want)
{
        long long n = 0, deadline = support_now_ms() + 20000;

        while (support_now_ms() < deadline) {
                n = support_query_int(
                        fx.mysql,
                        "SELECT COUNT(*) FROM live_events WHERE consumer = 'other' AND event_id = '%s'",
                        event_id);
                if (n >= want)
                        break;
                support_sleep_ms(100);
        }
        return n;
}

Test(other, kept_callbacks_are_logged_once_with_the_vendors_type)
{
        char tencent_stream[96], srs_stream[96], tencent_id[65], srs_id[65], marker_id[65],
                outcome[64];

        snprintf(tencent_stream, sizeof(tencent_stream), "%s_t", fx.prefix);
        snprintf(srs_stream, sizeof(srs_stream), "%s_s", fx.prefix);
        produce_kept("tencent", tencent_stream,
                     "{\"event_type\":321,\"stream_id\":\"x\",\"errcode\":3}", tencent_id);
        produce_kept("tencent", tencent_stream,
                     "{\"event_type\":321,\"stream_id\":\"x\",\"errcode\":3}", tencent_id);
        produce_kept("srs", srs_stream, "{\"action\":\"on_hls\",\"stream\":\"x\"}", srs_id);
        /* Keyed like the tencent callbacks, so on their partition after the duplicate: once
         * it is logged, the duplicate has been handled. */
        produce_kept("srs", tencent_stream, "{\"action\":\"on_dvr\",\"stream\":\"x\"}", marker_id);

        cr_assert_eq(wait_rows(srs_id, 1), 1, "see %s", fx.log_path);
        cr_assert_eq(wait_rows(tencent_id, 1), 1, "see %s", fx.log_path);
        cr_assert_eq(wait_rows(marker_id, 1), 1, "see %s", fx.log_path);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM live_events WHERE consumer = 'other' "
                                       "AND event_id = '%s'",
                                       tencent_id),
                     1, "a duplicate is logged once");
        support_query1(
                fx.mysql, outcome, sizeof(outcome),
                "SELECT outcome FROM live_events WHERE consumer = 'other' AND event_id = '%s'",
                tencent_id);
        cr_assert_str_eq(outcome, "tencent 321");
        support_query1(fx.mysql, outcome, sizeof(outcome),
                       "SELECT CONCAT(outcome, '|', stream_id, '|', kafka_topic) FROM live_events "
                       "WHERE consumer = 'other' AND event_id = '%s'",
                       srs_id);
        char want[160];
        snprintf(want, sizeof(want), "srs on_hls|%s|live.other", srs_stream);
        cr_assert_str_eq(outcome, want);

        cr_assert_eq(kill(fx.pid, SIGTERM), 0);
        cr_assert_eq(support_wait_exit(fx.pid, 20000), 0, "no clean drain; see %s", fx.log_path);
        fx.pid = 0;
}

Test(other, an_undecodable_record_goes_to_the_dlq_and_the_next_is_kept)
{
        char bad[96], good[96], good_id[65], cls[32] = "";

        snprintf(bad, sizeof(bad), "%s_bad", fx.prefix);
        snprintf(good, sizeof(good), "%s_bad", fx.prefix); /* same key: same partition, behind it */
        support_produce(fx.producer, "live.other", bad, "\xc3\x01garbage", 9, "other");
        produce_kept("tencent", good, "{\"event_type\":9999}", good_id);
        cr_assert_eq(wait_rows(good_id, 1), 1, "the partition must move on; see %s", fx.log_path);
        cr_assert_geq(support_count_records("live.other.dlq", bad, "dlq.error.class", cls,
                                            sizeof(cls), 20000, 1),
                      1);
        cr_assert_str_eq(cls, "permanent");
}
