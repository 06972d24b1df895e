/* checks.c: test_money_evening's figures at the end, each against what the test computed:
 * recharge, settlement_detail, withdrawals, balances, hourly stats, Redis rooms, reconcile. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evening.h"
#include "support.h"

/* ------------------------------------------------------------------ the checks */

static MYSQL_RES *rows_of(const char *sql)
{
        MYSQL_RES *res;

        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.mysql));
        res = mysql_store_result(fx.mysql);
        cr_assert(res != NULL, "%s: %s", sql, mysql_error(fx.mysql));
        return res;
}

/* The index of the tip or request named id ("<prefix>-<x>-<i>" or "<prefix>-w<i>"), or -1. */
static int tip_index(const char *id)
{
        const char *dash = strrchr(id, '-');
        int i = dash ? atoi(dash + 1) : -1;

        return i >= 0 && i < fx.tip_cnt && strcmp(fx.tips[i].id, id) == 0 ? i : -1;
}

static int ask_index(const char *id)
{
        const char *w = strrchr(id, 'w');
        int i = w ? atoi(w + 1) : -1;

        return i >= 0 && i < fx.ask_cnt && strcmp(fx.asks[i].id, id) == 0 ? i : -1;
}

static int anchor_index(const char *id)
{
        for (int a = 0; a <= ANCHORS; a++)
                if (strcmp(ids.anchors[a], id) == 0)
                        return a;
        return -1;
}

static int gender_index(const char *g)
{
        for (int i = 0; i < 3; i++)
                if (strcmp(genders[i], g) == 0)
                        return i;
        return -1;
}

/* recharge holds each distinct tip once, as sent; per anchor, its count and sum are the test's. */
void check_recharge(void)
{
        MYSQL_RES *res =
                rows_of("SELECT trace_id, anchor_id, room_id, audience_id, amount FROM recharge");
        MYSQL_ROW row;
        int n = 0;

        while ((row = mysql_fetch_row(res))) {
                int i = tip_index(row[0]);
                const struct tip *t = i >= 0 ? &fx.tips[i] : NULL;

                cr_assert(t != NULL, "recharge has a tip the test never sent: %s", row[0]);
                cr_assert_str_eq(row[1], ids.anchors[t->anchor], "anchor of %s", t->id);
                cr_assert_str_eq(row[2], ids.rooms[t->anchor], "room of %s", t->id);
                cr_assert_str_eq(row[3], ids.audiences[t->audience], "audience of %s", t->id);
                cr_assert(eq(i64, atoll(row[4]), t->amount), "amount of %s", t->id);
                n++;
        }
        mysql_free_result(res);
        cr_assert(eq(int, n, fx.tip_cnt));
        res = rows_of("SELECT anchor_id, COUNT(*), SUM(amount) FROM recharge GROUP BY anchor_id");
        n = 0;
        while ((row = mysql_fetch_row(res))) {
                int a = anchor_index(row[0]);

                cr_assert(a >= 0 && a < ANCHORS && fx.tips_of[a] > 0, "recharge has anchor %s",
                          row[0]);
                cr_assert(eq(i64, atoll(row[1]), fx.tips_of[a]), "recharge count of %s", row[0]);
                cr_assert(eq(i64, atoll(row[2]), fx.gross[a]), "recharge sum of %s", row[0]);
                n++;
        }
        mysql_free_result(res);
        for (int a = 0; a < ANCHORS; a++)
                n -= fx.tips_of[a] > 0;
        cr_assert(eq(int, n, 0), "anchors in recharge");
}

/* Each tip split at the ratio in force at its ts, the anchor's share floored, the rest the
 * platform's. */
void check_details(void)
{
        MYSQL_RES *res = rows_of(
                "SELECT trace_id, anchor_id, amount, ratio_bp, anchor_amount, platform_amount FROM "
                "settlement_detail");
        MYSQL_ROW row;
        int n = 0, changed = 0;

        while ((row = mysql_fetch_row(res))) {
                int i = tip_index(row[0]);
                const struct tip *t = i >= 0 ? &fx.tips[i] : NULL;

                cr_assert(t != NULL, "settlement_detail has a tip the test never sent: %s", row[0]);
                cr_assert_str_eq(row[1], ids.anchors[t->anchor], "anchor of %s", t->id);
                cr_assert(eq(i64, atoll(row[2]), t->amount), "amount of %s", t->id);
                cr_assert(eq(i64, atoll(row[3]), t->ratio_bp),
                          "ratio_bp of %s (ts %lld, anchor %s)", t->id, t->ts_ms,
                          ids.anchors[t->anchor]);
                cr_assert(eq(i64, atoll(row[4]), t->share), "anchor_amount of %s: %lld at %lld bp",
                          t->id, t->amount, t->ratio_bp);
                cr_assert(eq(i64, atoll(row[5]), t->amount - t->share), "platform_amount of %s",
                          t->id);
                changed +=
                        t->ts_ms >= fx.mid_ms && t->ratio_bp != ratio_at(t->anchor, fx.mid_ms - 1);
                n++;
        }
        mysql_free_result(res);
        cr_assert(eq(int, n, fx.tip_cnt));
        cr_assert_gt(changed, 0,
                     "no tip was settled at a ratio changed midway: nothing was tested");
        cr_log_info("%d tips were settled at a ratio that changed in the middle of the evening",
                    changed);
}

/*
 * Each request has one row, as sent, with one of the two outcomes (a refusal says why);
 * is_ok[k] receives that of fx.asks[k].
 */
static void read_outcomes(bool *is_ok)
{
        MYSQL_RES *res = rows_of(
                "SELECT request_id, anchor_id, amount, status, COALESCE(reason, '') FROM withdrawal");
        MYSQL_ROW row;
        int n = 0;

        while ((row = mysql_fetch_row(res))) {
                int k = ask_index(row[0]);
                const struct ask *w = k >= 0 ? &fx.asks[k] : NULL;

                cr_assert(w != NULL, "withdrawal has a request the test never sent: %s", row[0]);
                cr_assert_str_eq(row[1], ids.anchors[w->anchor], "anchor of %s", w->id);
                cr_assert(eq(i64, atoll(row[2]), w->amount), "amount of %s", w->id);
                cr_assert(strcmp(row[3], "succeeded") == 0 || strcmp(row[3], "rejected") == 0,
                          "%s: %s", w->id, row[3]);
                if (w->kind == ASK_BIG)
                        cr_assert(strstr(row[4], "insufficient balance") != NULL, "%s: %s %s",
                                  w->id, row[3], row[4]);
                else if (w->kind == ASK_NOBODY)
                        cr_assert(strstr(row[4], "no settled earnings") != NULL, "%s: %s %s", w->id,
                                  row[3], row[4]);
                is_ok[k] = strcmp(row[3], "succeeded") == 0;
                n++;
        }
        mysql_free_result(res);
        cr_assert(eq(int, n, fx.ask_cnt), "one row per request");
}

/*
 * The outcomes replayed in the order sent, which is each anchor's order on its partition of
 * live.withdrawal (CONTRACT: keyed by anchor_id; settlement decides an anchor's requests in
 * order): what must succeed did and what must be refused was; a success never took more than
 * the evening ever brings; a refusal only when the tips settled before any withdrawal went out
 * did not cover it. withdrawn[] receives the sum of each anchor's successes.
 */
static void check_withdrawals(long long withdrawn[ANCHORS + 1])
{
        bool *is_ok = calloc((size_t)fx.ask_cnt, sizeof(*is_ok));
        int succeeded = 0;

        cr_assert_not_null(is_ok);
        read_outcomes(is_ok);
        memset(withdrawn, 0, (ANCHORS + 1) * sizeof(*withdrawn));
        for (int k = 0; k < fx.ask_cnt; k++) {
                const struct ask *w = &fx.asks[k];
                long long available =
                        w->anchor < ANCHORS ? fx.guaranteed[w->anchor] - withdrawn[w->anchor] : 0;

                if (w->kind == ASK_SAFE)
                        cr_assert(
                                is_ok[k],
                                "%s (%lld of anchor %d) was refused though phase A alone covers it",
                                w->id, w->amount, w->anchor);
                if (w->kind == ASK_BIG || w->kind == ASK_NOBODY)
                        cr_assert(is_ok[k] == false, "%s (%lld of anchor %d) succeeded", w->id,
                                  w->amount, w->anchor);
                if (!is_ok[k]) {
                        cr_assert_gt(w->amount, available,
                                     "%s (%lld) refused, though anchor %d had %lld available "
                                     "when it was sent",
                                     w->id, w->amount, w->anchor, available);
                        continue;
                }
                cr_assert_leq(w->amount, fx.total[w->anchor] - withdrawn[w->anchor],
                              "%s overdraws anchor %d", w->id, w->anchor);
                withdrawn[w->anchor] += w->amount;
                succeeded++;
        }
        free(is_ok);
        cr_log_info("withdrawals: %d succeeded, %d refused", succeeded, fx.ask_cnt - succeeded);
}

/* total = the anchor's shares, withdrawn = its successes, available = the difference, never
 * negative. */
void check_balances(void)
{
        long long withdrawn[ANCHORS + 1];
        MYSQL_RES *res;
        MYSQL_ROW row;
        int n = 0;

        check_withdrawals(withdrawn);
        res = rows_of(
                "SELECT anchor_id, total_amount, withdrawn_amount, available_amount FROM settlement");
        while ((row = mysql_fetch_row(res))) {
                int a = anchor_index(row[0]);

                cr_assert(a >= 0, "settlement has anchor %s", row[0]);
                if (a == ANCHORS) { /* no tip: nothing to hold */
                        cr_assert(atoll(row[1]) == 0 && atoll(row[2]) == 0 && atoll(row[3]) == 0,
                                  "%s", row[0]);
                        continue;
                }
                cr_assert(eq(i64, atoll(row[1]), fx.total[a]), "total_amount of %s", row[0]);
                cr_assert(eq(i64, atoll(row[2]), withdrawn[a]), "withdrawn_amount of %s", row[0]);
                cr_assert(eq(i64, atoll(row[3]), fx.total[a] - withdrawn[a]),
                          "available_amount of %s", row[0]);
                cr_assert_geq(atoll(row[3]), 0, "%s", row[0]);
                n++;
        }
        mysql_free_result(res);
        for (int a = 0; a < ANCHORS; a++)
                n -= fx.tips_of[a] > 0;
        cr_assert(eq(int, n, 0), "anchors in settlement");
}

/* Per hour, anchor and both genders: the sum and count of the distinct tips sent. */
void check_hourly(void)
{
        static long long want_sum[HOURS][ANCHORS][3], want_cnt[HOURS][ANCHORS][3];
        const long long first_hour = fx.start_ms / HOUR_MS;
        MYSQL_RES *res;
        MYSQL_ROW row;
        int cells = 0, n = 0;

        memset(want_sum, 0, sizeof(want_sum));
        memset(want_cnt, 0, sizeof(want_cnt));
        for (int i = 0; i < fx.tip_cnt; i++) {
                const struct tip *t = &fx.tips[i];
                int h = (int)(t->ts_ms / HOUR_MS - first_hour);

                cr_assert(h >= 0 && h < HOURS);
                cells += want_cnt[h][t->anchor][t->audience % 3]++ == 0;
                want_sum[h][t->anchor][t->audience % 3] += t->amount;
        }
        res = rows_of(
                "SELECT UNIX_TIMESTAMP(hour), anchor_id, anchor_gender, audience_gender, amount_sum, reward_count "
                "FROM hourly_reward_stats");
        while ((row = mysql_fetch_row(res))) {
                int h = (int)(atoll(row[0]) * 1000 / HOUR_MS - first_hour),
                    a = anchor_index(row[1]);
                int ag = gender_index(row[2]), g = gender_index(row[3]);

                cr_assert(h >= 0 && h < HOURS && a >= 0 && a < ANCHORS && g >= 0,
                          "hourly_reward_stats row %s %s %s %s", row[0], row[1], row[2], row[3]);
                cr_assert(eq(int, ag, a % 3), "anchor_gender of %s", row[1]);
                cr_assert(eq(i64, atoll(row[4]), want_sum[h][a][g]),
                          "amount_sum of hour %d anchor %s audience %s", h, row[1], row[3]);
                cr_assert(eq(i64, atoll(row[5]), want_cnt[h][a][g]),
                          "reward_count of hour %d anchor %s audience %s", h, row[1], row[3]);
                n++;
        }
        mysql_free_result(res);
        cr_assert(eq(int, n, cells), "hourly_reward_stats rows");
}

/* Only this evening's rooms in Redis (reconcile also names any other). */
void check_redis_rooms(void)
{
        redisReply *r = redisCommand(fx.redis, "KEYS live:room:earnings:*");
        int rooms = 0;

        for (int a = 0; a < ANCHORS; a++)
                rooms += fx.tips_of[a] > 0;
        cr_assert(r && r->type == REDIS_REPLY_ARRAY);
        cr_assert(eq(int, (int)r->elements, rooms), "rooms with earnings in Redis");
        freeReplyObject(r);
}

void reconcile_ok(void)
{
        char bin[512], from[32], to[32], e_mysql[600], e_redis[160], log[256];
        char *argv[] = {bin, (char *)"reconcile", (char *)"--from", from, (char *)"--to", to, NULL};
        char *env[] = {e_mysql, e_redis, NULL};
        char *out;
        int status;

        support_bin_path("liveflow-settlement", bin, sizeof(bin));
        snprintf(from, sizeof(from), "%lld", fx.start_ms / 1000 - 3600);
        snprintf(to, sizeof(to), "%lld", (fx.start_ms + EVENING_MS) / 1000 + 3600);
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%s/%d",
                 support_fixture("LIVEFLOW_TEST_REDIS_PORT"), REDIS_DB);
        snprintf(log, sizeof(log), "/tmp/%s.reconcile.log", fx.prefix);
        status = support_wait_exit(support_spawn(argv, env, log), 120000);
        out = support_read_file(log, NULL);
        cr_log_info("reconcile --from %s --to %s exited %d:\n%s", from, to, status,
                    out ? out : "(no output)");
        cr_assert(eq(int, status, 0), "reconcile: %s", out ? out : log);
        cr_assert(out && strstr(out, "all agree"), "%s", out ? out : log);
        free(out);
}

void stop_cleanly(struct proc *p)
{
        cr_assert(kill(p->pid, SIGTERM) == 0);
        cr_assert(eq(int, support_wait_exit(p->pid, 30000), 0), "%s did not drain cleanly; see %s",
                  p->name, p->log);
        p->pid = 0;
}

/* Only once the test passed: a failure leaves them to read. */
void remove_logs(void)
{
        static const char *const names[] = {"receiver", "reward-sync", "settlement", "stats",
                                            "reconcile"};
        char path[256];

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                snprintf(path, sizeof(path), "/tmp/%s.%s.log", fx.prefix, names[i]);
                unlink(path);
        }
}
