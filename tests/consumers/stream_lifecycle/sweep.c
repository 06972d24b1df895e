/* sweep.c: test_stream_lifecycle's ghost sweep (suite stream_sweep), enabled only in
 * test_stream_sweep (STREAM_SWEEP_ONLY): silent streams closed, signs of life, a zero silence. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "url.h"

#include "fixture.h"

/*
 * The ghost sweep runs in a consumer of its own with a short silence. It reads from the end
 * of live.stream, not the beginning, so that it does not sweep every stream the other tests
 * left live; streams of tests running at the same time may still be closed by it, which is
 * what the sweep is for, and their tests look at them well within the silence.
 */
TestSuite(stream_sweep, .init = setup_stores, .fini = teardown, .timeout = 120,
          .disabled = !IS_SWEEP_BINARY);

Test(stream_sweep, a_begin_without_end_is_closed_after_the_silence)
{
        /* No vendor API is configured: the stream is closed after the unverified silence. */
        static const char *const ghost_env[] = {
                "LIVEFLOW_STREAM_GHOST_SILENCE_S=2", "LIVEFLOW_STREAM_SWEEP_INTERVAL_S=1",
                "LIVEFLOW_STREAM_GHOST_UNVERIFIED_SILENCE_S=2",
                "LIVEFLOW_KAFKA_PROP_AUTO_OFFSET_RESET=latest", NULL};
        struct session_end got[2];
        char s[64], v[64], key[320], want_id[65];
        long long session, t0;

        start_consumer_with(ghost_env);
        snprintf(s, sizeof(s), "%s_ghost", fx.w.prefix);
        /* "latest" is resolved after the assignment: resend (the same event id) until it is seen.
         */
        for (int i = 0; i < 10; i++) {
                produce_event(s, true, "8001", 1703731478, 0, -1);
                t0 = support_now_ms();
                while (support_now_ms() - t0 < 2000 &&
                       support_query_int(fx.w.mysql,
                                         "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'",
                                         s) == 0)
                        support_sleep_ms(50);
                if (support_query_int(fx.w.mysql,
                                      "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'",
                                      s) > 0)
                        break;
        }
        session = support_query_int(
                fx.w.mysql, "SELECT session_id FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert(session > 0, "the begin of %s was never applied (log %s)", s, fx.w.log_path);
        t0 = support_now_ms();
        wait_status(s, "ended");
        cr_assert(support_now_ms() - t0 < 12000,
                  "closed after %lld ms, want about silence + interval", support_now_ms() - t0);
        query1(v, sizeof(v), "SELECT close_method FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "1");
        query1(v, sizeof(v),
               "SELECT close_reason LIKE 'ghost: %% without a sign of life, vendor not asked%%' "
               "FROM live_streams WHERE stream_id = '%s'",
               s);
        cr_assert_str_eq(v, "1", "close_reason does not say an unverified ghost close");
        cr_assert(wait_online(s, false), "%s still in set:live:online", s);

        snprintf(key, sizeof(key), "ghost|%s|%lld", s, session);
        crypto_sha256_hex(key, strlen(key), want_id);
        recorded_close(want_id, v, sizeof(v));
        cr_assert_str_eq(v, "stream.close/liveflow",
                         "the ghost close must be the one the role ended it with");
        query1(v, sizeof(v), "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "2", "a begin and one ghost close, however many sweeps ran");
        cr_assert(log_has_line((const char *const[]){"ghost stream closed", s, NULL}),
                  "no ghost log line in %s", fx.w.log_path);
        /* It ended through the normal path: its session is handed off, ended by the stream. */
        cr_assert_eq(read_session_ends(s, session, got, 2, 1, 20000), 1, "no session.end for %s",
                     s);
        cr_assert_eq(got[0].close_method, 1);
        stop_consumer_expect_clean_exit();
}

Test(stream_sweep, screenshots_and_viewers_are_signs_of_life)
{
        static const char *const ghost_env[] = {
                "LIVEFLOW_STREAM_GHOST_SILENCE_S=2", "LIVEFLOW_STREAM_SWEEP_INTERVAL_S=1",
                "LIVEFLOW_STREAM_GHOST_UNVERIFIED_SILENCE_S=2", NULL};
        char shots[64], watched[64], silent[64], v[64], sql[1024];

        start_consumer_with(ghost_env);
        snprintf(shots, sizeof(shots), "%s_shots", fx.w.prefix);
        snprintf(watched, sizeof(watched), "%s_watched", fx.w.prefix);
        snprintf(silent, sizeof(silent), "%s_silent", fx.w.prefix);
        produce_event(shots, true, "8201", 1703731478, 0, -1);
        produce_event(watched, true, "8202", 1703731478, 0, -1);
        produce_event(silent, true, "8203", 1703731478, 0, -1);
        wait_status(shots, "live");
        wait_status(watched, "live");
        wait_status(silent, "live");
        /* Hours without a stream event; a screenshot a minute, or a viewer still beating. */
        snprintf(sql, sizeof(sql),
                 "INSERT INTO live_snapshots (stream_id, pic_url, taken_at, event_id) VALUES "
                 "('%s', 'p.jpg', NOW(3) + INTERVAL 1 HOUR, SHA2('%s', 256))",
                 shots, shots);
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));
        snprintf(sql, sizeof(sql),
                 "INSERT INTO audience_visit (room_id, audience_key, is_open, stream_id, "
                 "entered_at, last_seen_at) VALUES ('r', 'app:u1', 1, '%s', NOW(3) - INTERVAL 7 "
                 "HOUR, NOW(3) + INTERVAL 1 HOUR)",
                 watched);
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));
        cr_assert(mysql_query(fx.w.mysql, "UPDATE live_streams SET last_event_at = NOW(3) - "
                                          "INTERVAL 7 HOUR") == 0,
                  "%s", mysql_error(fx.w.mysql));
        wait_status(silent, "ended"); /* the sweep runs */
        support_sleep_ms(2500);       /* and runs again */
        query1(v, sizeof(v), "SELECT status FROM live_streams WHERE stream_id = '%s'", shots);
        cr_assert_str_eq(v, "live", "a stream with fresh screenshots is not a ghost");
        query1(v, sizeof(v), "SELECT status FROM live_streams WHERE stream_id = '%s'", watched);
        cr_assert_str_eq(v, "live", "a stream with a viewer still watching is not a ghost");
        stop_consumer_expect_clean_exit();
}

Test(stream_sweep, a_zero_silence_sweeps_nothing)
{
        static const char *const off_env[] = {"LIVEFLOW_STREAM_GHOST_SILENCE_S=0",
                                              "LIVEFLOW_STREAM_SWEEP_INTERVAL_S=1", NULL};
        char s[64], v[64];

        start_consumer_with(off_env);
        snprintf(s, sizeof(s), "%s_noghost", fx.w.prefix);
        produce_event(s, true, "8101", 1703731478, 0, -1);
        wait_status(s, "live");
        cr_assert(mysql_query(fx.w.mysql,
                              "UPDATE live_streams SET last_event_at = NOW(3) - INTERVAL 1 DAY") ==
                          0,
                  "%s", mysql_error(fx.w.mysql));
        support_sleep_ms(3000);
        query1(v, sizeof(v), "SELECT status FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "live", "the sweep is off");
        stop_consumer_expect_clean_exit();
}
