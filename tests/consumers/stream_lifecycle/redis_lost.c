/* redis_lost.c: test_stream_lifecycle's Redis that lost its data: the live keys come back from
 * live_streams after a flush. */
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

/* ------------------------------------------------------------------ Redis that lost its data */

TestSuite(stream_redis_lost, .init = setup_stores, .fini = teardown, .timeout = 120,
          .disabled = IS_SWEEP_BINARY);

static void redis_do(const char *fmt, ...)
{
        va_list ap;
        redisReply *r;

        va_start(ap, fmt);
        r = redisvCommand(fx.redis, fmt, ap);
        va_end(ap);
        cr_assert(r && r->type != REDIS_REPLY_ERROR, "redis: %s", r ? r->str : fx.redis->errstr);
        freeReplyObject(r);
}

static void hash_field(const char *anchor, const char *field, char *out, size_t out_size)
{
        redisReply *r = redisCommand(fx.redis, "HGET hash:anchor:status:%s %s", anchor, field);

        cr_assert(r);
        snprintf(out, out_size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
        freeReplyObject(r);
}

/* set:live:online is exactly {live[0], live[1]} and their anchors' hashes say so. */
static bool online_member(const char *stream_id)
{
        redisReply *r = redisCommand(fx.redis, "SISMEMBER set:live:online %s", stream_id);
        bool member = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;

        freeReplyObject(r);
        return member;
}

/*
 * The live streams of this test are online and the stale member and the ended stream are not.
 * Other members may be there: the worker reads live.stream from its start, and the suite's
 * other tests write to it at the same time.
 */
static bool live_keys_right(char live[2][64], char anchors[3][64], const char *session0,
                            const char *gone, const char *stale)
{
        char v[64];
        bool ok = online_member(live[0]) && online_member(live[1]) && !online_member(gone) &&
                  !online_member(stale);

        hash_field(anchors[0], "stream_id", v, sizeof(v));
        ok = ok && strcmp(v, live[0]) == 0;
        hash_field(anchors[0], "session_id", v, sizeof(v));
        ok = ok && strcmp(v, session0) == 0;
        hash_field(anchors[1], "status", v, sizeof(v));
        return ok && strcmp(v, "live") == 0;
}

static void wait_live_keys(char live[2][64], char anchors[3][64], const char *session0,
                           const char *gone, const char *stale)
{
        long long deadline = support_now_ms() + 15000;

        while (!live_keys_right(live, anchors, session0, gone, stale) &&
               support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert(live_keys_right(live, anchors, session0, gone, stale),
                  "set:live:online / hash:anchor:status do not follow live_streams (log %s)",
                  fx.w.log_path);
}

static long long lost_count(void)
{
        char cmd[256], out[64] = "";
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "curl -sf http://127.0.0.1:%d/metrics | grep '^liveflow_redis_data_lost_total ' "
                 "| awk '{print $2}'",
                 fx.w.admin_port);
        cr_assert((p = popen(cmd, "r")) != NULL);
        if (!fgets(out, sizeof(out), p))
                out[0] = '\0';
        pclose(p);
        return atoll(out);
}

Test(stream_redis_lost, live_keys_come_back_from_live_streams_after_a_flush)
{
        char live[2][64], anchors[3][64], gone[64], stale[64], e_redis[128], session0[24], v[64];
        const char *extra[] = {e_redis, NULL};
        long long deadline, session = (long long)getpid() * 1000 + 7;
        int db = 9;

        for (int i = 0; i < 3; i++)
                snprintf(anchors[i], sizeof(anchors[i]), "%s_an%d", fx.w.prefix, i);
        for (int i = 0; i < 2; i++)
                snprintf(live[i], sizeof(live[i]), "%s_live%d", fx.w.prefix, i);
        snprintf(gone, sizeof(gone), "%s_gone", fx.w.prefix);
        snprintf(stale, sizeof(stale), "%s_stale", fx.w.prefix);
        snprintf(session0, sizeof(session0), "%lld", session);
        char sql[1024];

        snprintf(
                sql, sizeof(sql),
                "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, status, "
                "started_at, ended_at, last_event_at) VALUES "
                "('%s', '%s', '%s', %lld, 'tencent', 'live', NOW(3) - INTERVAL 5 MINUTE, NULL, NOW(3)), "
                "('%s', '%s', '%s', %lld, 'srs', 'live', NOW(3) - INTERVAL 4 MINUTE, NULL, NOW(3)), "
                "('%s', '%s', '%s', %lld, 'tencent', 'ended', NOW(3) - INTERVAL 9 MINUTE, NOW(3), NOW(3))",
                live[0], anchors[0], anchors[0], session, live[1], anchors[1], anchors[1],
                session + 1, gone, anchors[2], anchors[2], session + 2);
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));

        /* A database of our own, holding what an earlier life left: a stale member and a hash
         * that still calls an ended stream live. */
        redis_do("SELECT %d", db);
        redis_do("FLUSHDB");
        redis_do("SADD set:live:online %s", stale);
        redis_do("HSET hash:anchor:status:%s status live stream_id %s", anchors[2], gone);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%s/%d",
                 support_fixture("LIVEFLOW_TEST_REDIS_PORT"), db);
        start_consumer_with(extra);

        /* At start the database holds no epoch: the live streams are projected, the rest ended. */
        wait_live_keys(live, anchors, session0, gone, stale);
        hash_field(anchors[2], "status", v, sizeof(v));
        cr_assert_str_eq(v, "offline");

        /* Redis loses everything under the running worker: the keys come back by themselves. */
        redis_do("FLUSHDB");
        wait_live_keys(live, anchors, session0, gone, stale);
        deadline = support_now_ms() + 10000;
        while (lost_count() < 2 && support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert_eq(lost_count(), 2, "liveflow_redis_data_lost_total (log %s)", fx.w.log_path);

        /* Events keep flowing on the rebuilt keys. */
        snprintf(v, sizeof(v), "%s_new", fx.w.prefix);
        produce_event(v, true, "9002", 1703731478, 0, -1);
        cr_assert(wait_online(v, true), "%s not in set:live:online (log %s)", v, fx.w.log_path);
        stop_consumer_expect_clean_exit();
}
