/* test_pipeline.c: a signed Tencent callback through receiver, Kafka and the stream role into MySQL
 * and Redis. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "support.h"
#include "support_stack.h"

#define TENCENT_KEY "e2e-callback-key"

static struct support_stream_stack fx;

/* The receiver and the stream role (its group at the end of live.stream), started together. */
static void setup(void)
{
        static const char *const env[] = {"LIVEFLOW_HTTP_ADDR=127.0.0.1",
                                          "LIVEFLOW_TENCENT_KEY=" TENCENT_KEY,
                                          "LIVEFLOW_LOG_LEVEL=info", NULL};

        support_stream_stack_start(&fx, "e2e", "e2e.", "", env);
}

static void teardown(void)
{
        support_stream_stack_stop(&fx);
}

/* POSTs a Tencent push (event_type 1) or interrupt (0) signed with key (or with a forged
 * one) and returns the status. */
static long post_tencent(const char *stream_id, int event_type, long long t, const char *key)
{
        return support_stream_stack_tencent(&fx, stream_id, event_type, t, key);
}

/* Waits (up to 5 s) for the row's status and the set membership to say the same. */
static void wait_state(const char *stream_id, const char *status, bool in_set)
{
        const struct support_proc *const procs[] = {&fx.receiver, &fx.consumer};

        support_wait_stream_state(fx.mysql, fx.redis, stream_id, status, in_set, procs, 2);
}

TestSuite(pipeline, .init = setup, .fini = teardown, .timeout = 120);

Test(pipeline, signed_push_then_interrupt_reach_mysql_and_redis)
{
        char s[64], v[64];
        long long t = (long long)time(NULL) + 600;

        snprintf(s, sizeof(s), "%s_live", fx.prefix);
        cr_assert_eq(post_tencent(s, 1, t, TENCENT_KEY), 200);
        wait_state(s, "live", true);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT anchor_id FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert(strncmp(v, "a_", 2) == 0, "anchor_id from stream_param, got \"%s\"", v);

        /* A vendor retry of the push with a fresh t: accepted, and changes nothing. */
        cr_assert_eq(post_tencent(s, 1, t + 60, TENCENT_KEY), 200);
        cr_assert_eq(post_tencent(s, 0, t + 120, TENCENT_KEY), 200);
        wait_state(s, "ended", false);
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT CONCAT(duration_s, '/', close_method) FROM live_streams WHERE stream_id = '%s'",
                s);
        cr_assert_str_eq(v, "3725/1");
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "2", "the retried push must be absorbed");

        cr_assert(kill(fx.receiver.pid, SIGTERM) == 0 && kill(fx.consumer.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.receiver.pid, 20000), 0, "receiver drain; see %s",
                     fx.receiver.log);
        cr_assert_eq(support_wait_exit(fx.consumer.pid, 20000), 0, "consumer drain; see %s",
                     fx.consumer.log);
        fx.receiver.pid = fx.consumer.pid = 0;
}

Test(pipeline, forged_or_expired_sign_gets_401_and_no_row)
{
        char s[64], v[64];
        long long t = (long long)time(NULL) + 600;

        snprintf(s, sizeof(s), "%s_forged", fx.prefix);
        cr_assert_eq(post_tencent(s, 1, t, "not-the-key"), 401);
        cr_assert_eq(post_tencent(s, 1, (long long)time(NULL) - 86400, TENCENT_KEY), 401);
        /* A valid event for another stream proves the pipeline was running meanwhile. */
        snprintf(v, sizeof(v), "%s_ok", fx.prefix);
        cr_assert_eq(post_tencent(v, 1, t, TENCENT_KEY), 200);
        wait_state(v, "live", true);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT COUNT(*) FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "0");
}
