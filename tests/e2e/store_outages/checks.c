/*
 * checks.c: what test_store_outages asks of the stores afterwards: every tip once in each
 * ledger and the stats, exact balances, Redis's rooms and live streams right again, the streams'
 * states, nothing dead-lettered, and `liveflow-ctl reconcile` at peace.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outages.h"

void redis_get(const char *key, char *out, size_t size)
{
        redisReply *r = redisCommand(fx.redis, "GET %s", key);

        cr_assert(r != NULL, "redis: %s", fx.redis->errstr);
        snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
        freeReplyObject(r);
}

static long long q(const char *sql)
{
        return support_query_int(fx.mysql, "%s", sql);
}

void wait_rows(const char *what, long long want, const char *sql)
{
        long long got, deadline = support_now_ms() + WAIT_MS;

        while ((got = q(sql)) < want && support_now_ms() < deadline)
                support_sleep_ms(200);
        cr_assert(eq(i64, got, want), "%s (logs %s %s %s)", what, fx.w[0].log, fx.w[1].log,
                  fx.w[2].log);
}

/* Per anchor: the count, sum and (settlement) share sums match the test's; each tip once. */
void check_ledgers(void)
{
        char sql[512];

        wait_rows("tips in recharge", TIPS, "SELECT COUNT(*) FROM recharge");
        wait_rows("tips in settlement_detail", TIPS, "SELECT COUNT(*) FROM settlement_detail");
        wait_rows("tips in hourly_reward_stats", TIPS,
                  "SELECT COALESCE(SUM(reward_count), 0) FROM hourly_reward_stats");
        cr_assert(eq(i64, q("SELECT COUNT(DISTINCT trace_id) FROM recharge"), TIPS));
        cr_assert(eq(i64, q("SELECT COUNT(DISTINCT trace_id) FROM settlement_detail"), TIPS));
        cr_assert(eq(i64, q("SELECT COUNT(*) FROM stats_tip"), TIPS));
        for (int a = 0; a < ANCHORS; a++) {
                char anchor[64];

                anchor_id(a, anchor, sizeof(anchor));
                snprintf(sql, sizeof(sql),
                         "SELECT CONCAT(COUNT(*), '/', SUM(amount)) FROM recharge WHERE "
                         "anchor_id = '%s'",
                         anchor);
                char got[64], want[64];

                support_query1(fx.mysql, got, sizeof(got), "%s", sql);
                snprintf(want, sizeof(want), "%lld/%lld", fx.count[a], fx.gross[a]);
                cr_assert_str_eq(got, want, "recharge of %s", anchor);
                support_query1(fx.mysql, got, sizeof(got),
                               "SELECT CONCAT(COUNT(*), '/', SUM(amount), '/', SUM(anchor_amount), "
                               "'/', SUM(platform_amount)) FROM settlement_detail WHERE anchor_id "
                               "= '%s'",
                               anchor);
                snprintf(want, sizeof(want), "%lld/%lld/%lld/%lld", fx.count[a], fx.gross[a],
                         fx.share[a], fx.gross[a] - fx.share[a]);
                cr_assert_str_eq(got, want, "settlement_detail of %s", anchor);
                support_query1(fx.mysql, got, sizeof(got),
                               "SELECT CONCAT(total_amount, '/', withdrawn_amount, '/', "
                               "available_amount) FROM settlement WHERE anchor_id = '%s'",
                               anchor);
                snprintf(want, sizeof(want), "%lld/0/%lld", fx.share[a], fx.share[a]);
                cr_assert_str_eq(got, want, "balance of %s", anchor);
                support_query1(fx.mysql, got, sizeof(got),
                               "SELECT CONCAT(SUM(reward_count), '/', SUM(amount_sum)) FROM "
                               "hourly_reward_stats WHERE anchor_id = '%s'",
                               anchor);
                snprintf(want, sizeof(want), "%lld/%lld", fx.count[a], fx.gross[a]);
                cr_assert_str_eq(got, want, "hourly_reward_stats of %s", anchor);
        }
}

static long long redis_int(const char *prefix, const char *id)
{
        char key[160], v[64];

        snprintf(key, sizeof(key), "%s%s", prefix, id);
        redis_get(key, v, sizeof(v));
        return v[0] ? atoll(v) : -1;
}

/* The first difference between Redis and what the test sent, or "" when none: the rooms of
 * anchors from first_room on, and the streams when with_streams. */
static void redis_off(char *why, size_t size, int first_room, bool with_streams)
{
        why[0] = '\0';
        for (int a = first_room; a < ANCHORS && !why[0]; a++) {
                char room[64];
                long long earnings, count;

                room_id(a, room, sizeof(room));
                earnings = redis_int("live:room:earnings:", room);
                count = redis_int("live:room:recharge_count:", room);
                if (earnings != fx.gross[a] || count != fx.count[a])
                        snprintf(why, size, "room %s: earnings %lld count %lld, want %lld %lld",
                                 room, earnings, count, fx.gross[a], fx.count[a]);
        }
        /* Streams 0..3 ended, 4..9 live (6..9 begun during the outages). */
        for (int s = 0; with_streams && s < STREAMS && !why[0]; s++) {
                char sid[64], anchor[64], key[128];
                bool want = s >= 4;
                redisReply *r, *h;

                stream_id(s, sid, sizeof(sid));
                anchor_id(ANCHORS + s, anchor, sizeof(anchor));
                snprintf(key, sizeof(key), "hash:anchor:status:%s", anchor);
                r = redisCommand(fx.redis, "SISMEMBER set:live:online %s", sid);
                h = redisCommand(fx.redis, "HGET %s stream_id", key);
                cr_assert(r && h, "redis: %s", fx.redis->errstr);
                if ((r->integer == 1) != want ||
                    (want && (h->type != REDIS_REPLY_STRING || strcmp(h->str, sid) != 0)))
                        snprintf(why, size, "stream %s: online %lld, %s names %s; want live=%d",
                                 sid, r->integer, key,
                                 h->type == REDIS_REPLY_STRING ? h->str : "nothing", want);
                freeReplyObject(r);
                freeReplyObject(h);
        }
}

void wait_redis(int first_room, bool with_streams)
{
        long long deadline = support_now_ms() + WAIT_MS;
        char why[256];

        while (redis_off(why, sizeof(why), first_room, with_streams),
               why[0] && support_now_ms() < deadline)
                support_sleep_ms(200);
        cr_assert(why[0] == '\0', "%s (logs %s %s)", why, fx.w[W_SYNC].log, fx.w[W_STREAM].log);
}

void check_redis(void)
{
        wait_redis(0, true);
}

void check_streams(void)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM live_streams WHERE stream_id LIKE '%s-s%%' AND status = "
                 "'live'",
                 fx.prefix);
        wait_rows("live streams", STREAMS - 4, sql);
        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM live_streams WHERE stream_id LIKE '%s-s%%' AND status = "
                 "'ended'",
                 fx.prefix);
        wait_rows("ended streams", 4, sql);
}

/* Nothing any of the test's groups dead-lettered, since the test started. */
void check_dlqs(void)
{
        char group[96], first[256];

        snprintf(group, sizeof(group), "outage.%s.", fx.prefix);
        for (int i = 0; i < 3; i++) {
                int n = support_reader_count(fx.dlq[i], "dlq.group", group, first, sizeof(first),
                                             1500);

                cr_assert(eq(int, n, 0), "%d record(s) in %s, the first %s", n, dlq_topics[i],
                          first);
        }
}

/* liveflow-ctl reconcile over the test's range of tips: exit 0, "all agree". */
void check_reconcile(void)
{
        char bin[512], from[32], to[32], e_mysql[600], e_redis[160], e_boot[512], log[256];
        char *argv[] = {bin, (char *)"reconcile", (char *)"--from", from, (char *)"--to", to, NULL};
        char *env[] = {e_mysql, e_redis, e_boot, NULL};
        char *out;
        int status;

        support_bin_path("liveflow-ctl", bin, sizeof(bin));
        snprintf(from, sizeof(from), "%lld", fx.base_ms / 1000 - 3600);
        snprintf(to, sizeof(to), "%lld", (fx.base_ms + TIPS * TIP_STEP_MS) / 1000 + 3600);
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.mysql_url);
        redis_url(e_redis, sizeof(e_redis));
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(log, sizeof(log), "/tmp/%s.reconcile.log", fx.prefix);
        status = support_wait_exit(support_spawn(argv, env, log), 120000);
        out = support_read_file(log, NULL);
        cr_assert(eq(int, status, 0), "reconcile exited %d:\n%s", status, out ? out : log);
        cr_assert(out && strstr(out, "all agree"), "%s", out ? out : log);
        free(out);
}
