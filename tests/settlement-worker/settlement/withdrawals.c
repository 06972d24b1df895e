/* withdrawals.c: test_settlement's withdrawals (success, rejection, replay), two copies racing for
 * one anchor's balance, and kill -9 mid-run with every balance exact after. */
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

/* ------------------------------------------------------------------ withdrawals */

Test(settlement, withdrawals_succeed_reject_and_replay_once)
{
        char anchor[64], stranger[64], tip[96], rid[8][96], like[80], reason[256] = "";
        const long long tip_amount = 2000, ratio_bp = 5000;
        const long long balance = anchor_share(tip_amount, ratio_bp);
        /* In order on the anchor's partition: what each one finds is known in advance. */
        const long long asks[] = {600, 500, 400, 1};
        long long available = balance, withdrawn = 0;
        bool is_ok[4];

        snprintf(anchor, sizeof(anchor), "%s_a", fx.w.prefix);
        snprintf(stranger, sizeof(stranger), "%s_nobody", fx.w.prefix);
        snprintf(like, sizeof(like), "%s_w%%", fx.w.prefix);
        for (int i = 0; i < 8; i++)
                snprintf(rid[i], sizeof(rid[i]), "%s_w%d", fx.w.prefix, i);
        set_ratio(anchor, 946684800000LL, ratio_bp);
        start_copy(0, NULL);
        snprintf(tip, sizeof(tip), "%s_tip", fx.w.prefix);
        produce_tip(anchor, tip, tip_amount, BASE_MS);
        flush();
        /* Another topic: nothing orders it before the withdrawals unless it is settled first. */
        wait_details(tip, 1);
        for (int i = 0; i < 4; i++) {
                is_ok[i] = asks[i] <= available;
                available -= is_ok[i] ? asks[i] : 0;
                withdrawn += is_ok[i] ? asks[i] : 0;
                produce_withdrawal(anchor, rid[i], asks[i]);
                if (i == 0) {
                        produce_withdrawal(anchor, rid[0], asks[0]); /* replayed record */
                        produce_withdrawal_as(anchor, anchor, rid[0], asks[0],
                                              1); /* same request, new event */
                }
        }
        produce_withdrawal(anchor, rid[4], 0); /* never valid: dead-lettered */
        produce_withdrawal(anchor, rid[5], -5);
        produce_withdrawal(stranger, rid[6], 10);
        flush();
        cr_assert(eq(i64,
                     wait_int(5, 60000,
                              "SELECT COUNT(*) FROM withdrawal WHERE request_id LIKE '%s'", like),
                     5),
                  "log %s", fx.w.log_path);
        for (int i = 0; i < 4; i++)
                cr_assert(
                        eq(i64,
                           query_int(
                                   "SELECT status = 'succeeded' FROM withdrawal WHERE request_id = '%s'",
                                   rid[i]),
                           is_ok[i] ? 1 : 0),
                        "withdrawal %d of %lld", i, asks[i]);
        expect_balance(anchor, balance, withdrawn);
        support_query1(fx.w.mysql, reason, sizeof(reason),
                       "SELECT reason FROM withdrawal WHERE request_id = '%s'", rid[1]);
        cr_assert(strstr(reason, "insufficient") != NULL, "reason: %s", reason);
        support_query1(fx.w.mysql, reason, sizeof(reason),
                       "SELECT reason FROM withdrawal WHERE request_id = '%s'", rid[6]);
        cr_assert(strstr(reason, "no settled earnings") != NULL, "reason: %s", reason);
        cr_assert(eq(int,
                     support_count_records("live.withdrawal.dlq", anchor, NULL, NULL, 0, 30000, 2),
                     2),
                  "amounts 0 and -5 are dead-lettered");
        /* live.notify: one outcome per request, the replays and the second event included. */
        for (int i = 0; i < 4; i++)
                cr_assert(eq(i64,
                             wait_int(1, 30000,
                                      "SELECT COUNT(*) FROM notify_messages WHERE kind = '%s' "
                                      "AND anchor_id = '%s' AND payload LIKE '%%\"request_id\":"
                                      "\"%s\"%%' AND sent_at IS NOT NULL",
                                      is_ok[i] ? "withdrawal.succeeded" : "withdrawal.rejected",
                                      anchor, rid[i]),
                             1),
                          "notification of withdrawal %d (log %s)", i, fx.w.log_path);
        cr_assert(
                eq(i64,
                   query_int("SELECT COUNT(*) FROM notify_messages WHERE anchor_id = '%s'", anchor),
                   4));
        stop_copy(0);
}

static bool both_copies_assigned(int timeout_ms)
{
        long long deadline = support_now_ms() + timeout_ms;

        while (support_now_ms() < deadline) {
                if (scrape(fx.copies[0].admin_port, "liveflow_consumer_assigned_partitions") > 0 &&
                    scrape(fx.copies[1].admin_port, "liveflow_consumer_assigned_partitions") > 0)
                        return true;
                support_sleep_ms(200);
        }
        return false;
}

Test(settlement, two_copies_and_concurrent_withdrawals_never_overdraw_one_anchor)
{
        enum { TIPS = 10, WITHDRAWALS = 60 };
        const long long ratio_bp = 6000;
        char anchor[64], like_t[80], like_w[80];
        long long balance = 0, ask, want_ok;

        snprintf(anchor, sizeof(anchor), "%s_a", fx.w.prefix);
        snprintf(like_t, sizeof(like_t), "%s_t%%", fx.w.prefix);
        snprintf(like_w, sizeof(like_w), "%s_w%%", fx.w.prefix);
        set_ratio(anchor, 946684800000LL, ratio_bp);
        start_copy(0, NULL);
        start_copy(1, NULL);
        cr_assert(both_copies_assigned(60000), "both copies hold partitions (log %s)",
                  fx.w.log_path);
        for (int i = 0; i < TIPS; i++) {
                char tip[96];

                snprintf(tip, sizeof(tip), "%s_t%d", fx.w.prefix, i);
                produce_tip(anchor, tip, 1000 + i, BASE_MS + i);
                balance += anchor_share(1000 + i, ratio_bp);
        }
        flush();
        wait_details(like_t, TIPS);
        /* Keyed by request, not anchor: the requests spread over partitions and both copies race.
         */
        ask = balance / 7 + 1;
        want_ok = balance / ask < WITHDRAWALS ? balance / ask : WITHDRAWALS;
        for (int i = 0; i < WITHDRAWALS; i++) {
                char rid[96];

                snprintf(rid, sizeof(rid), "%s_w%d", fx.w.prefix, i);
                produce_withdrawal_as(rid, anchor, rid, ask, 0);
        }
        flush();
        cr_assert(eq(i64,
                     wait_int(WITHDRAWALS, 60000,
                              "SELECT COUNT(*) FROM withdrawal WHERE request_id LIKE '%s'", like_w),
                     WITHDRAWALS),
                  "log %s", fx.w.log_path);
        cr_assert(
                eq(i64,
                   query_int(
                           "SELECT COUNT(DISTINCT kafka_partition) > 1 FROM live_events WHERE consumer = "
                           "'settlement' AND event_type = 'withdrawal' AND kafka_topic = 'live.withdrawal' AND "
                           "event_id IN (SELECT SHA2(CONCAT('internal|withdrawal|', request_id), 256) FROM "
                           "withdrawal WHERE request_id LIKE '%s')",
                           like_w),
                   1),
                "the requests were spread over partitions");
        cr_assert(eq(
                i64,
                query_int(
                        "SELECT COUNT(*) FROM withdrawal WHERE request_id LIKE '%s' AND status = 'succeeded'",
                        like_w),
                want_ok));
        expect_balance(anchor, balance, want_ok * ask);
        cr_assert(
                eq(i64,
                   query_int("SELECT available_amount >= 0 FROM settlement WHERE anchor_id = '%s'",
                             anchor),
                   1));
        stop_copy(0);
        stop_copy(1);
}

/* ------------------------------------------------------------------ crash */

/* What one anchor should end with, computed from what the test sends. */
struct ledger {
        long long ratio_bp, total, withdrawn, succeeded;
};

/* Kills copy 0 once the query reaches `after`, then starts it again. */
static void kill_9_when(long long after, const char *what, const char *like)
{
        long long deadline = support_now_ms() + 60000, seen;
        const char *sql =
                strcmp(what, "tips") == 0
                        ? "SELECT COUNT(*) FROM settlement_detail WHERE trace_id LIKE '%s'"
                        : "SELECT COUNT(*) FROM withdrawal WHERE request_id LIKE '%s'";

        while ((seen = query_int(sql, like)) < after && support_now_ms() < deadline)
                support_sleep_ms(5);
        cr_assert(kill(fx.copies[0].pid, SIGKILL) == 0);
        support_wait_exit(fx.copies[0].pid, 5000);
        cr_log_info("killed after %lld %s", seen, what);
        start_copy(0, NULL);
}

/*
 * Tips and withdrawals are two topics, and Kafka orders nothing across topics: a withdrawal
 * is decided against what is settled when it is applied. So the tips go first and are all
 * settled, then the withdrawals, which are in order per anchor; a kill -9 in each phase.
 */
Test(settlement, kill_9_mid_run_then_every_balance_is_exact)
{
        enum { ANCHORS = 30, TIPS = 100, ASKS = 10 };
        static struct ledger want[ANCHORS];
        char like_t[80], like_w[80];
        long long rejected = 0;

        snprintf(like_t, sizeof(like_t), "%s_t%%", fx.w.prefix);
        snprintf(like_w, sizeof(like_w), "%s_w%%", fx.w.prefix);
        for (int a = 0; a < ANCHORS; a++) {
                char anchor[64];

                snprintf(anchor, sizeof(anchor), "%s_a%d", fx.w.prefix, a);
                want[a].ratio_bp = 1000 + a * 300;
                set_ratio(anchor, 946684800000LL, want[a].ratio_bp);
        }
        start_copy(0, NULL);
        for (int k = 0; k < TIPS; k++) {
                for (int a = 0; a < ANCHORS; a++) {
                        char anchor[64], id[96];
                        long long amount = 1 + (k * 7919 + a * 104729) % 50000;

                        snprintf(anchor, sizeof(anchor), "%s_a%d", fx.w.prefix, a);
                        snprintf(id, sizeof(id), "%s_t%d_%d", fx.w.prefix, a, k);
                        produce_tip(anchor, id, amount, BASE_MS + k);
                        want[a].total += anchor_share(amount, want[a].ratio_bp);
                }
        }
        flush();
        kill_9_when(ANCHORS * TIPS / 10, "tips", like_t);
        wait_details(like_t, ANCHORS * TIPS);
        for (int k = 0; k < ASKS; k++) {
                for (int a = 0; a < ANCHORS; a++) {
                        char anchor[64], id[96];
                        /* About a fifth of the balance each: the first few pass, the rest are
                         * refused. */
                        long long ask = want[a].total / 5 + (k * 31 + a * 17) % 1000;

                        snprintf(anchor, sizeof(anchor), "%s_a%d", fx.w.prefix, a);
                        snprintf(id, sizeof(id), "%s_w%d_%d", fx.w.prefix, a, k);
                        produce_withdrawal(anchor, id, ask);
                        if (want[a].total - want[a].withdrawn >= ask) {
                                want[a].withdrawn += ask;
                                want[a].succeeded++;
                        } else {
                                rejected++;
                        }
                }
        }
        flush();
        cr_assert(gt(i64, rejected, 0), "the test asks for more than some balances hold");
        kill_9_when(ANCHORS * ASKS / 10, "withdrawals", like_w);
        cr_assert(eq(i64,
                     wait_int(ANCHORS * ASKS, 60000,
                              "SELECT COUNT(*) FROM withdrawal WHERE request_id LIKE '%s'", like_w),
                     ANCHORS * ASKS),
                  "log %s", fx.w.log_path);
        for (int a = 0; a < ANCHORS; a++) {
                char anchor[64];

                snprintf(anchor, sizeof(anchor), "%s_a%d", fx.w.prefix, a);
                expect_balance(anchor, want[a].total, want[a].withdrawn);
                cr_assert(
                        eq(i64,
                           query_int(
                                   "SELECT COUNT(*) FROM withdrawal WHERE anchor_id = '%s' AND status = 'succeeded'",
                                   anchor),
                           want[a].succeeded),
                        "succeeded withdrawals of %s", anchor);
                cr_assert(
                        eq(i64,
                           query_int(
                                   "SELECT SUM(anchor_amount) FROM settlement_detail WHERE anchor_id = '%s'",
                                   anchor),
                           want[a].total),
                        "details of %s", anchor);
        }
        stop_copy(0);
}
