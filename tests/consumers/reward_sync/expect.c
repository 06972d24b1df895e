/* expect.c: test_reward_sync's expectations: the figures in Redis, recharge and
 * live_room_realtime computed from the tips sent, and the consumer's /metrics. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"

#include "fixture.h"

/* ------------------------------------------------------------------ expectations */

/* Sums the distinct tips sent to each room: sent.tips holds each tip once. */
void want_rooms(struct room_want want[MAX_ROOMS])
{
        memset(want, 0, MAX_ROOMS * sizeof(*want));
        for (int i = 0; i < sent.tip_cnt; i++) {
                struct room_want *w = &want[sent.tips[i].room];

                w->earnings += sent.tips[i].amount;
                w->count++;
                w->gifts += sent.tips[i].gift_count;
                if (w->by_audience[sent.tips[i].audience] == 0)
                        w->payers++;
                w->by_audience[sent.tips[i].audience] += sent.tips[i].amount;
        }
}

long long redis_int(const char *fmt, const char *arg)
{
        redisReply *r = redisCommand(fx.redis, fmt, arg);
        long long v;

        cr_assert(r, "redis: %s", fx.redis->errstr);
        v = r->type == REDIS_REPLY_STRING    ? atoll(r->str)
            : r->type == REDIS_REPLY_INTEGER ? r->integer
                                             : 0;
        freeReplyObject(r);
        return v;
}

static int cmp_desc(const void *a, const void *b)
{
        long long x = *(const long long *)a, y = *(const long long *)b;

        return x < y ? 1 : x > y ? -1 : 0;
}

/* TOP10 (ZREVRANGE 0 9): the ten highest sums, each on its own audience. */
static bool top10_matches(int room, const struct room_want *w, char *why, size_t why_size)
{
        long long sums[MAX_AUDIENCES];
        int n = 0;
        redisReply *r = redisCommand(fx.redis, "ZREVRANGE live:room:top:%s 0 9 WITHSCORES",
                                     ids.rooms[room]);
        bool ok;

        for (int a = 0; a < MAX_AUDIENCES; a++)
                if (w->by_audience[a])
                        sums[n++] = w->by_audience[a];
        qsort(sums, (size_t)n, sizeof(sums[0]), cmp_desc);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY);
        ok = (int)r->elements == 2 * (n < 10 ? n : 10);
        for (size_t i = 0; ok && i < r->elements; i += 2) {
                int a = -1;

                for (int k = 0; k < MAX_AUDIENCES; k++)
                        if (strcmp(ids.audiences[k], r->element[i]->str) == 0)
                                a = k;
                ok = a >= 0 && atoll(r->element[i + 1]->str) == w->by_audience[a] &&
                     atoll(r->element[i + 1]->str) == sums[i / 2];
        }
        if (!ok)
                snprintf(why, why_size, "room %d top10 has %zu entries, want the %d highest of %d",
                         room, r->elements / 2, n < 10 ? n : 10, n);
        freeReplyObject(r);
        return ok;
}

static long long zscore(int room, int audience)
{
        redisReply *r = redisCommand(fx.redis, "ZSCORE live:room:top:%s %s", ids.rooms[room],
                                     ids.audiences[audience]);
        long long v;

        cr_assert(r, "redis: %s", fx.redis->errstr);
        v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
        freeReplyObject(r);
        return v;
}

/* The room's Redis figures as the sums say: earnings, count, every audience's score, TOP10. */
static bool room_matches(int room, const struct room_want *w, char *why, size_t why_size)
{
        long long earnings = redis_int("GET live:room:earnings:%s", ids.rooms[room]);
        long long count = redis_int("GET live:room:recharge_count:%s", ids.rooms[room]);
        long long members = redis_int("ZCARD live:room:top:%s", ids.rooms[room]);
        int want_members = 0;

        if (earnings != w->earnings || count != w->count) {
                snprintf(why, why_size, "room %d: earnings %lld count %lld, want %lld and %lld",
                         room, earnings, count, w->earnings, w->count);
                return false;
        }
        for (int a = 0; a < MAX_AUDIENCES; a++) {
                long long score;

                if (!w->by_audience[a])
                        continue;
                want_members++;
                if ((score = zscore(room, a)) != w->by_audience[a]) {
                        snprintf(why, why_size, "room %d: audience %d scores %lld, want %lld", room,
                                 a, score, w->by_audience[a]);
                        return false;
                }
        }
        if (members != want_members) {
                snprintf(why, why_size, "room %d: %lld audiences in top, want %d", room, members,
                         want_members);
                return false;
        }
        return top10_matches(room, w, why, why_size);
}

static bool session_matches(int room, const struct room_want *w, char *why, size_t why_size)
{
        char key[64];
        long long amount, gifts, tips, payers;

        snprintf(key, sizeof(key), "live:stats:%lld", fx.sessions[room]);
        amount = redis_int("HGET %s gift_amount", key);
        gifts = redis_int("HGET %s gift_count", key);
        tips = redis_int("HGET %s tip_count", key);
        payers = redis_int("HGET %s paying_users", key);
        if (amount == w->earnings && gifts == w->gifts && tips == w->count && payers == w->payers)
                return true;
        snprintf(
                why, why_size,
                "%s: gift_amount %lld gift_count %lld tip_count %lld paying_users %lld, want %lld %lld "
                "%lld %d",
                key, amount, gifts, tips, payers, w->earnings, w->gifts, w->count, w->payers);
        return false;
}

static bool rooms_match(int rooms, const struct room_want *want, char *why, size_t why_size)
{
        for (int i = 0; i < rooms; i++) {
                if (!room_matches(i, &want[i], why, why_size))
                        return false;
                if (fx.sessions[i] && !session_matches(i, &want[i], why, why_size))
                        return false;
        }
        return true;
}

/* Redis catches up with the commits: wait for every room of [0, rooms) to match the sums. */
void expect_redis(int rooms)
{
        struct room_want want[MAX_ROOMS];
        char why[256] = "";
        long long deadline = support_now_ms() + WAIT_MS;

        want_rooms(want);
        while (!rooms_match(rooms, want, why, sizeof(why)) && support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert(rooms_match(rooms, want, why, sizeof(why)), "%s (log %s)", why, fx.w.log_path);
}

long long recharge_rows(void)
{
        return support_query_int(fx.w.mysql,
                                 "SELECT COUNT(*) FROM recharge WHERE room_id LIKE '%s\\_%%'",
                                 fx.w.prefix);
}

void wait_recharge_rows(long long want)
{
        long long deadline = support_now_ms() + WAIT_MS;

        while (recharge_rows() < want && support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert_eq(recharge_rows(), want, "recharge rows (log %s)", fx.w.log_path);
}

/* recharge holds each distinct tip once, with the amounts sent. */
void expect_recharge(int rooms)
{
        struct room_want want[MAX_ROOMS];

        want_rooms(want);
        wait_recharge_rows(sent.tip_cnt);
        for (int i = 0; i < rooms; i++) {
                const char *room = ids.rooms[i];

                cr_assert_eq(support_query_int(
                                     fx.w.mysql,
                                     "SELECT SUM(amount) FROM recharge WHERE room_id = '%s'", room),
                             want[i].earnings, "room %d recharge sum", i);
                cr_assert_eq(support_query_int(fx.w.mysql,
                                               "SELECT COUNT(*) FROM recharge WHERE room_id = '%s'",
                                               room),
                             want[i].count, "room %d recharge rows", i);
        }
}

/* live_room_realtime's row for a room; 0 and 0 without one. */
static void realtime_row(int room, long long *earnings, long long *count)
{
        *earnings = support_query_int(
                fx.w.mysql, "SELECT earnings FROM live_room_realtime WHERE room_id = '%s'",
                ids.rooms[room]);
        *count = support_query_int(
                fx.w.mysql, "SELECT recharge_count FROM live_room_realtime WHERE room_id = '%s'",
                ids.rooms[room]);
}

/* Waits until live_room_realtime counts at least `count` tips of the room. */
void wait_folded(int room, long long at_least, long long *earnings, long long *count)
{
        long long deadline = support_now_ms() + WAIT_MS;

        realtime_row(room, earnings, count);
        while (*count < at_least && support_now_ms() < deadline) {
                support_sleep_ms(200);
                realtime_row(room, earnings, count);
        }
}

/* The amounts of the first n tips sent to a room: one key per room, so they were numbered in this
 * order. */
long long first_tips_sum(int room, long long n)
{
        long long sum = 0;

        for (int i = 0; i < sent.tip_cnt && n > 0; i++) {
                if (sent.tips[i].room != room)
                        continue;
                sum += sent.tips[i].amount;
                n--;
        }
        return sum;
}

static bool realtime_matches(int room, const struct room_want *w)
{
        long long earnings, count;

        realtime_row(room, &earnings, &count);
        return earnings == w->earnings && count == w->count;
}

void expect_realtime(int rooms)
{
        struct room_want want[MAX_ROOMS];
        long long deadline = support_now_ms() + WAIT_MS;
        int i = 0;

        want_rooms(want);
        while (i < rooms && support_now_ms() < deadline) {
                if (realtime_matches(i, &want[i]))
                        i++;
                else
                        support_sleep_ms(200);
        }
        cr_assert_eq(i, rooms, "live_room_realtime of room %d is not its recharge sums (log %s)", i,
                     fx.w.log_path);
}

/* The counter of the consumer's /metrics line that starts with `series`, or -1. */
long long scrape(const char *series)
{
        char cmd[256], out[64] = "";
        FILE *p;

        snprintf(
                cmd, sizeof(cmd),
                "curl -sf http://127.0.0.1:%d/metrics | grep -v '^#' | grep -F '%s ' | awk '{print $2}'",
                fx.w.admin_port, series);
        if (!(p = popen(cmd, "r")))
                return -1;
        if (!fgets(out, sizeof(out), p))
                out[0] = '\0';
        pclose(p);
        return out[0] ? atoll(out) : -1;
}
