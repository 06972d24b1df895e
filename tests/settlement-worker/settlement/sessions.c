/* sessions.c: test_settlement's session summaries (recharge rows summed at session end and, when
 * late, by the sweep) and a tip another money role would refuse, dead-lettered. */
#include <ctype.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include "codec.h"
#include "crypto.h"
#include "settlement.h"
#include "support.h"

#include "fixture.h"

/* ------------------------------------------------------------------ sessions */

/* A session id no other test uses: this process's pid, then a counter. */
static long long unique_session(int n)
{
        return (long long)getpid() * 1000 + n;
}

/* A row of recharge as reward-sync writes it. */
static void insert_recharge(const char *tip_id, const char *audience, const char *anchor,
                            long long session_id, long long amount, long long ts_ms)
{
        exec_sql(
                "INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, session_id, amount, tipped_at) "
                "VALUES ('%s', '%s', '%s', 'room_%s', %lld, %lld, FROM_UNIXTIME(%lld / 1000))",
                tip_id, audience, anchor, anchor, session_id, amount, ts_ms);
}

Test(settlement, session_end_sums_the_sessions_recharge_rows)
{
        static const struct {
                int audience;
                long long amount;
        } tips[] = {{1, 100}, {2, 2501}, {1, 333}, {3, 9999}, {2, 1}};
        const size_t n = sizeof(tips) / sizeof(tips[0]);
        const long long session = unique_session(1), other = unique_session(2), ratio_bp = 5500;
        char anchor[64], room[80], like[80], other_tip[96];
        long long gross = 0, share = 0;

        snprintf(anchor, sizeof(anchor), "%s_a", fx.w.prefix);
        snprintf(room, sizeof(room), "room_%s", anchor);
        snprintf(like, sizeof(like), "%s_t%%", fx.w.prefix);
        set_ratio(anchor, 946684800000LL, ratio_bp);
        start_copy(0, NULL);
        for (size_t i = 0; i < n; i++) {
                char tip[96], audience[96];

                snprintf(tip, sizeof(tip), "%s_t%zu", fx.w.prefix, i);
                snprintf(audience, sizeof(audience), "%s_u%d", fx.w.prefix, tips[i].audience);
                insert_recharge(tip, audience, anchor, session, tips[i].amount,
                                BASE_MS + (long long)i);
                produce_tip_as(anchor, tip, tips[i].amount, BASE_MS + (long long)i, audience, 0);
                gross += tips[i].amount;
                share += anchor_share(tips[i].amount, ratio_bp);
        }
        snprintf(other_tip, sizeof(other_tip), "%s_t_other", fx.w.prefix);
        insert_recharge(other_tip, "someone", anchor, other, 5000,
                        BASE_MS + 100); /* another session's tip */
        produce_tip(anchor, other_tip, 5000, BASE_MS + 100);
        flush();
        wait_details(like, (long long)n + 1);
        produce_session_end(session, anchor, room, BASE_MS - 60000, BASE_MS + 3600000);
        flush();
        cr_assert(eq(i64,
                     wait_int(1, 30000,
                              "SELECT COUNT(*) FROM settlement_session WHERE session_id = %lld",
                              session),
                     1),
                  "log %s", fx.w.log_path);
        cr_assert(eq(
                i64,
                query_int("SELECT gross FROM settlement_session WHERE session_id = %lld", session),
                gross));
        cr_assert(
                eq(i64,
                   query_int("SELECT anchor_share FROM settlement_session WHERE session_id = %lld",
                             session),
                   share));
        cr_assert(eq(
                i64,
                query_int("SELECT platform_share FROM settlement_session WHERE session_id = %lld",
                          session),
                gross - share));
        cr_assert(eq(
                i64,
                query_int("SELECT tips FROM settlement_session WHERE session_id = %lld", session),
                (long long)n));
        cr_assert(
                eq(i64,
                   query_int("SELECT settled_tips FROM settlement_session WHERE session_id = %lld",
                             session),
                   (long long)n));
        cr_assert(eq(
                i64,
                query_int("SELECT paying_audience FROM settlement_session WHERE session_id = %lld",
                          session),
                3));
        cr_assert(eq(
                i64,
                query_int(
                        "SELECT anchor_id = '%s' AND room_id = '%s' FROM settlement_session WHERE "
                        "session_id = %lld",
                        anchor, room, session),
                1));
        stop_copy(0);
}

static long long wall_ms(void)
{
        struct timeval tv;

        gettimeofday(&tv, NULL);
        return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

Test(settlement, recharge_rows_that_come_late_are_summed_by_the_sweep)
{
        const long long recent = unique_session(1), old = unique_session(2), now = wall_ms();
        char anchor[64], room[80], tip[96], old_tip[96];
        const long long amount = 4321;

        snprintf(anchor, sizeof(anchor), "%s_a", fx.w.prefix);
        snprintf(room, sizeof(room), "room_%s", anchor);
        snprintf(tip, sizeof(tip), "%s_t1", fx.w.prefix);
        snprintf(old_tip, sizeof(old_tip), "%s_t2", fx.w.prefix);
        start_copy(0, "LIVEFLOW_SETTLEMENT_SWEEP_MS=300");
        /* Ended now and two hours ago; the default window (LIVEFLOW_SETTLEMENT_RECOMPUTE_S) is 15
         * minutes. */
        produce_session_end(recent, anchor, room, now - 60000, now);
        produce_session_end(old, anchor, room, now - 7260000, now - 7200000);
        flush();
        cr_assert(
                eq(i64,
                   wait_int(
                           2, 30000,
                           "SELECT COUNT(*) FROM settlement_session WHERE session_id IN (%lld, %lld) "
                           "AND tips = 0",
                           recent, old),
                   2),
                "log %s", fx.w.log_path);
        /* reward-sync catches up only now. */
        insert_recharge(tip, "late", anchor, recent, amount, now - 1000);
        insert_recharge(old_tip, "late", anchor, old, amount, now - 7201000);
        produce_tip(anchor, tip, amount, now - 1000);
        produce_tip(anchor, old_tip, amount, now - 7201000);
        flush();
        cr_assert(eq(i64,
                     wait_int(anchor_share(amount, 4500), 30000,
                              "SELECT anchor_share FROM settlement_session "
                              "WHERE session_id = %lld",
                              recent),
                     anchor_share(amount, 4500)),
                  "log %s", fx.w.log_path);
        cr_assert(eq(
                i64,
                query_int("SELECT gross FROM settlement_session WHERE session_id = %lld", recent),
                amount));
        support_sleep_ms(1500); /* several sweeps */
        cr_assert(eq(i64,
                     query_int("SELECT tips FROM settlement_session WHERE session_id = %lld", old),
                     0),
                  "a session outside the window is left as it was");
        stop_copy(0);
}

Test(settlement, a_tip_another_money_role_would_refuse_is_dead_lettered_not_credited)
{
        char anchor[64], tip[96], room[96], id_key[160], dlq_class[32] = "";

        snprintf(anchor, sizeof(anchor), "%s_neg", fx.w.prefix);
        snprintf(tip, sizeof(tip), "%s_neg_gifts", fx.w.prefix);
        snprintf(room, sizeof(room), "room_%s", anchor);
        snprintf(id_key, sizeof(id_key), "internal|reward|%s", tip);
        start_copy(0, NULL);
        /* gift_count -1: reward-sync and stats dead-letter it, so settlement must too. */
        produce("live.reward", anchor, "reward", id_key, anchor, room, BASE_MS, "Reward",
                json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "tip_id", tip, "audience_id", "aud",
                          "anchor_id", anchor, "room_id", room, "amount", (json_int_t)500,
                          "gift_count", (json_int_t)-1, "ts_ms", (json_int_t)BASE_MS));
        flush();
        cr_assert(eq(int,
                     support_count_records("live.reward.dlq", anchor, "dlq.error.class", dlq_class,
                                           sizeof(dlq_class), 30000, 1),
                     1),
                  "the tip is dead-lettered");
        cr_assert_str_eq(dlq_class, "permanent");
        cr_assert(eq(i64,
                     query_int("SELECT COUNT(*) FROM settlement_detail WHERE trace_id = '%s'", tip),
                     0),
                  "and not credited");
        stop_copy(0);
}
