/*
 * test_audience.c: the audience role, run as its binary against the real fixtures: app and SRS
 * viewer events and interactions into visits, watch history, live_statistics and the Redis
 * figures, exactly once; silent visits closed by the timeout; the hot ranking.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "support_worker.h"

#define TRACE "0123456789abcdef0123456789abcdef"

static struct {
        struct support_worker_fx w;
        char redis_env[128];
        redisContext *redis;
} fx;

static void start_consumer(const char *const *extra)
{
        const char *env[16] = {"LIVEFLOW_AUDIENCE_SWEEP_INTERVAL_S=1", fx.redis_env};
        size_t n = 2;

        for (; extra && *extra && n < 15; extra++)
                env[n++] = *extra;
        env[n] = NULL;
        fx.w.pid = support_start_worker("liveflow-consumer", "audience", fx.w.mysql_url, fx.w.group,
                                        env, fx.w.log_path, &fx.w.admin_port);
}

/* The test's own Redis database (the ranking is one key for all rooms), emptied. */
static void use_redis(int db)
{
        char url[96];

        fx.redis = support_redis_connect(db, true, url, sizeof(url));
        snprintf(fx.redis_env, sizeof(fx.redis_env), "LIVEFLOW_REDIS_URL=%s", url);
}

static void setup(void)
{
        support_worker_fx_open(&fx.w, "aud");
}

static void teardown(void)
{
        support_worker_fx_close(&fx.w);
        if (fx.redis)
                redisFree(fx.redis);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(audience, .init = setup, .fini = teardown, .timeout = 180);

/* ------------------------------------------------------------------ producing */

static long long now_ms(void)
{
        return (long long)time(NULL) * 1000;
}

/* One record as the receiver makes it; the event id from event_key (same key, same event). */
static void produce(const char *topic, const char *key, const char *stream_id, const char *room_id,
                    const char *event_key, const char *vendor, const char *event_type,
                    const char *payload_name, json_t *payload, long long ts_ms)
{
        char event_id[65], err[256];
        void *buf;
        size_t len;
        struct envelope env = {
                .event_id = event_id,
                .vendor = vendor,
                .event_type = event_type,
                .stream_id = stream_id,
                .room_id = room_id,
                .event_time_ms = ts_ms,
                .receive_time_ms = ts_ms + 5,
                .trace_id = TRACE,
                .raw = "{}",
                .raw_len = 2,
        };

        crypto_sha256_hex(event_key, strlen(event_key), event_id);
        cr_assert(codec_encode(fx.w.codec, &env, payload_name, payload, &buf, &len, err,
                               sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        cr_assert(rd_kafka_producev(
                          fx.w.producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADER("trace_id", TRACE, -1),
                          RD_KAFKA_V_HEADER("event_type", event_type, -1), RD_KAFKA_V_END) == 0);
        free(buf);
}

/* An app event (POST /v1/events) of audience `who` in stream (room may be NULL). */
static void app_event(const char *type, const char *who, const char *stream, const char *room,
                      const char *event_key, long long ts_ms, int count)
{
        static const char *const viewer_types[] = {"enter", "exit", "heartbeat", NULL};
        char event_type[32];
        const char *topic = "live.interaction";
        json_t *p = json_pack("{s:s,s:s,s:s,s:I}", "source_event_id", event_key, "action", type,
                              "audience_id", who, "ts_ms", (json_int_t)ts_ms);

        for (int i = 0; viewer_types[i]; i++)
                if (strcmp(type, viewer_types[i]) == 0)
                        topic = "live.viewer";
        snprintf(event_type, sizeof(event_type), "%s.%s",
                 strcmp(topic, "live.viewer") == 0 ? "viewer" : "interaction", type);
        if (count)
                json_object_set_new(p, "count", json_integer(count));
        produce(topic, stream ? stream : room, stream, room, event_key, "internal", event_type,
                "AudienceEvent", p, ts_ms);
}

/* An SRS on_play / on_stop of client `client`. */
static void srs_event(bool is_join, const char *client, const char *stream, const char *event_key,
                      long long ts_ms)
{
        json_t *p =
                json_pack("{s:s,s:s}", "action", is_join ? "join" : "leave", "client_id", client);

        produce("live.viewer", stream, stream, NULL, event_key, "srs",
                is_join ? "viewer.join" : "viewer.leave", "Viewer", p, ts_ms);
}

static void flush(void)
{
        cr_assert(rd_kafka_flush(fx.w.producer, 10000) == 0);
}

/* A live stream of room with session `session`, started an hour ago. */
static void make_live(const char *stream, const char *room, long long session)
{
        char sql[1024];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, "
                 "status, started_at, last_event_at) VALUES ('%s', '%s', '%s', %lld, 'tencent', "
                 "'live', NOW(3) - INTERVAL 1 HOUR, NOW(3))",
                 stream, room, room, session);
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));
}

/* ------------------------------------------------------------------ waiting */

static void wait_value(const char *want, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void wait_value(const char *want, const char *fmt, ...)
{
        char sql[1024], got[256] = "";
        long long deadline = support_now_ms() + 30000;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        while (support_now_ms() < deadline) {
                support_query1(fx.w.mysql, got, sizeof(got), "%s", sql);
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(100);
        }
        cr_assert_fail("%s gives \"%s\", want \"%s\" (log %s)", sql, got, want, fx.w.log_path);
}

static void redis_str(char *out, size_t size, const char *fmt, const char *arg)
{
        redisReply *r = redisCommand(fx.redis, fmt, arg);

        out[0] = '\0';
        cr_assert(r != NULL);
        if (r->type == REDIS_REPLY_STRING)
                snprintf(out, size, "%s", r->str);
        freeReplyObject(r);
}

static void wait_redis(const char *want, const char *fmt, const char *arg)
{
        char got[128] = "";
        long long deadline = support_now_ms() + 30000;

        while (support_now_ms() < deadline) {
                redis_str(got, sizeof(got), fmt, arg);
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(100);
        }
        cr_assert_fail("redis %s %s gives \"%s\", want \"%s\" (log %s)", fmt, arg, got, want,
                       fx.w.log_path);
}

/* ------------------------------------------------------------------ tests */

/* A distinct event key per call site: stream + name. */
static const char *k(const char *stream, const char *name)
{
        static char keys[64][128];
        static int next;
        char *key = keys[next++ % 64];

        snprintf(key, sizeof(keys[0]), "%s-%s", stream, name);
        return key;
}

Test(audience, app_and_srs_viewers_and_interactions_give_exact_figures_once)
{
        char stream[64], room[64], stats_key[64], got[64];
        long long session = (long long)getpid() * 1000 + 1, t = now_ms() - 200000;
        const char *const long_visits[] = {"LIVEFLOW_AUDIENCE_VISIT_TIMEOUT_S=3600", NULL};

        use_redis(12);
        support_unique_name("st", stream, sizeof(stream));
        support_unique_name("rm", room, sizeof(room));
        make_live(stream, room, session);
        start_consumer(long_visits);

        /* Viewers, all keyed by the stream (one partition, in this order). Online after each: */
        app_event("enter", "u1", stream, NULL, k(stream, "e1"), t, 0);        /* 1 */
        app_event("enter", "u2", stream, NULL, k(stream, "e2"), t + 1000, 0); /* 2 */
        app_event("enter", "u1", stream, NULL, k(stream, "e3"), t + 2000, 0); /* 2: online once */
        app_event("heartbeat", "u3", stream, NULL, k(stream, "e4"), t + 3000, 0); /* 3: no enter */
        srs_event(true, "c1", stream, k(stream, "s1"), t + 4000);                 /* 4: the peak */
        app_event("exit", "u9", stream, NULL, k(stream, "e5"), t + 5000, 0);      /* 4: no visit */
        srs_event(false, "c1", stream, k(stream, "s2"), t + 10000);               /* 3: 6 s */
        app_event("exit", "u2", stream, NULL, k(stream, "e6"), t + 361000, 0);    /* 2: 360 s */
        app_event("exit", "u2", stream, NULL, k(stream, "e6"), t + 361000, 0);    /* a replay */
        srs_event(true, "c1", stream, k(stream, "s1"), t + 4000);                 /* a replay */
        /* Interactions. */
        app_event("chat", "u1", stream, NULL, k(stream, "i1"), t + 20000, 0);
        app_event("chat", "u1", stream, NULL, k(stream, "i2"), t + 21000, 0);
        app_event("chat", "u3", stream, NULL, k(stream, "i3"), t + 22000, 0);
        app_event("chat", "u3", stream, NULL, k(stream, "i3"), t + 22000, 0); /* a replay */
        app_event("like", "u1", stream, NULL, k(stream, "i4"), t + 23000, 5);
        app_event("like", "u2", stream, NULL, k(stream, "i5"), t + 24000, 0);
        app_event("follow", "u1", stream, NULL, k(stream, "i6"), t + 25000, 0);
        app_event("unfollow", "u1", stream, NULL, k(stream, "i7"), t + 26000, 0);
        app_event("share", "u2", stream, NULL, k(stream, "i8"), t + 27000, 0);
        app_event("share", "u3", NULL, room, k(stream, "i9"), t + 28000, 0); /* by room only */
        flush();

        wait_value("2/4/4/4/366/2/183/1/0/1/0/0/3/6/1/1/2",
                   "SELECT CONCAT_WS('/', (SELECT online FROM audience_room WHERE room_id = '%s'), "
                   "views, unique_viewers, peak_online, total_watch_s, watch_visits, avg_watch_s, "
                   "watch_lt_1m, watch_1_5m, watch_5_15m, watch_15_60m, watch_gt_60m, chats, "
                   "likes, follows, unfollows, shares) FROM live_statistics WHERE session_id = "
                   "%lld",
                   room, session);
        /* One history row per closed visit, with its own times and source. */
        wait_value("2", "SELECT COUNT(*) FROM live_watch_history WHERE session_id = %lld", session);
        wait_value("srs/c1/6/exit",
                   "SELECT CONCAT_WS('/', source, audience_id, seconds, close_reason) FROM "
                   "live_watch_history WHERE session_id = %lld AND source = 'srs'",
                   session);
        wait_value("app/u2/360",
                   "SELECT CONCAT_WS('/', source, audience_id, seconds) FROM live_watch_history "
                   "WHERE session_id = %lld AND source = 'app'",
                   session);
        /* The Redis figures. */
        wait_redis("2", "GET live:room:online:%s", room);
        snprintf(stats_key, sizeof(stats_key), "live:stats:%lld", session);
        wait_redis("4", "HGET %s peak_online", stats_key);
        redis_str(got, sizeof(got), "HGET %s uv", stats_key);
        cr_assert_str_eq(got, "4");
        redis_str(got, sizeof(got), "HGET %s views", stats_key);
        cr_assert_str_eq(got, "4");
        redis_str(got, sizeof(got), "HGET %s chats", stats_key);
        cr_assert_str_eq(got, "3");
        redis_str(got, sizeof(got), "HGET %s likes", stats_key);
        cr_assert_str_eq(got, "6");
        redis_str(got, sizeof(got), "HGET %s shares", stats_key);
        cr_assert_str_eq(got, "2");

        /* Everything again, restarted: nothing changes. */
        cr_assert(kill(fx.w.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.w.pid, 20000), 0, "no clean drain; log %s",
                     fx.w.log_path);
        app_event("enter", "u1", stream, NULL, k(stream, "e1"), t, 0);
        app_event("like", "u1", stream, NULL, k(stream, "i4"), t + 23000, 5);
        app_event("enter", "u4", stream, NULL, k(stream, "e7"), t + 400000, 0); /* a sentinel */
        flush();
        start_consumer(long_visits);
        wait_value("5/6",
                   "SELECT CONCAT_WS('/', views, likes) FROM live_statistics WHERE session_id = "
                   "%lld",
                   session);
        wait_redis("3", "GET live:room:online:%s", room);
}

Test(audience, silent_visits_time_out_and_late_or_orphan_events_change_nothing)
{
        char stream[64], room[64], lone_room[64];
        long long session = (long long)getpid() * 1000 + 2, t = now_ms();

        use_redis(13);
        support_unique_name("st", stream, sizeof(stream));
        support_unique_name("rm", room, sizeof(room));
        support_unique_name("lone", lone_room, sizeof(lone_room));
        make_live(stream, room, session);
        /* What an earlier life left: an old event id, an old closed visit, an old minute. */
        cr_assert(mysql_query(fx.w.mysql,
                              "INSERT INTO audience_event_seen (event_id, seen_at) VALUES "
                              "(REPEAT('a', 64), NOW(3) - INTERVAL 9 DAY), (REPEAT('b', 64), "
                              "NOW(3) - INTERVAL 7 DAY)") == 0,
                  "%s", mysql_error(fx.w.mysql));
        cr_assert(mysql_query(fx.w.mysql,
                              "INSERT INTO audience_visit (room_id, audience_key, is_open, "
                              "last_seen_at, left_at) VALUES ('old', 'app:u0', 0, NOW(3) - "
                              "INTERVAL 10 DAY, NOW(3) - INTERVAL 10 DAY)") == 0,
                  "%s", mysql_error(fx.w.mysql));
        cr_assert(mysql_query(fx.w.mysql, "INSERT INTO audience_room_minute (room_id, minute) "
                                          "VALUES ('old', NOW() - INTERVAL 2 DAY)") == 0,
                  "%s", mysql_error(fx.w.mysql));
        start_consumer((const char *const[]){"LIVEFLOW_AUDIENCE_VISIT_TIMEOUT_S=5", NULL});
        /* Purged at start: older than LIVEFLOW_AUDIENCE_KEEP_DAYS (8) or a day for minutes. */
        wait_value("0",
                   "SELECT COUNT(*) FROM audience_event_seen WHERE event_id = REPEAT('a', 64)");
        wait_value("1",
                   "SELECT COUNT(*) FROM audience_event_seen WHERE event_id = REPEAT('b', 64)");
        wait_value("0", "SELECT COUNT(*) FROM audience_visit WHERE room_id = 'old'");
        wait_value("0", "SELECT COUNT(*) FROM audience_room_minute WHERE room_id = 'old'");

        /* u7 enters (a minute ahead) and is never silent long enough in this test. */
        app_event("enter", "u7", stream, NULL, k(stream, "t5"), t + 60000, 0);
        /* u5 entered 60 s ago, last heartbeat 52 s ago: closed by the sweep at its last sign. */
        app_event("enter", "u5", stream, NULL, k(stream, "t1"), t - 60000, 0);
        app_event("heartbeat", "u5", stream, NULL, k(stream, "t2"), t - 52000, 0);
        /* u6's exit comes before an older enter: the enter is a late copy and opens nothing. */
        app_event("exit", "u6", stream, NULL, k(stream, "t3"), t - 1000, 0);
        app_event("enter", "u6", stream, NULL, k(stream, "t4"), t - 3000, 0);
        /* A room that is not live: counted online, no session figures. */
        app_event("enter", "u8", NULL, lone_room, k(stream, "t6"), t + 60000, 0);
        flush();

        wait_value("8/timeout",
                   "SELECT CONCAT_WS('/', seconds, close_reason) FROM live_watch_history WHERE "
                   "session_id = %lld AND audience_id = 'u5'",
                   session);
        wait_value("1", "SELECT online FROM audience_room WHERE room_id = '%s'", room);
        wait_value("1", "SELECT online FROM audience_room WHERE room_id = '%s'", lone_room);
        wait_redis("1", "GET live:room:online:%s", room);
        wait_value("2/2/2/8/1/1",
                   "SELECT CONCAT_WS('/', views, unique_viewers, peak_online, total_watch_s, "
                   "watch_visits, watch_lt_1m) FROM live_statistics WHERE session_id = %lld",
                   session);
        cr_assert_eq(support_query_int(fx.w.mysql, "SELECT COUNT(*) FROM live_watch_history WHERE "
                                                   "audience_id IN ('u6', 'u7', 'u8')"),
                     0);
}

Test(audience, a_session_with_interactions_only_keeps_its_viewer_figures_null)
{
        char stream[64], room[64];
        long long session = (long long)getpid() * 1000 + 3, t = now_ms();

        use_redis(14);
        support_unique_name("st", stream, sizeof(stream));
        support_unique_name("rm", room, sizeof(room));
        make_live(stream, room, session);
        start_consumer(NULL);
        app_event("chat", "u1", stream, NULL, k(stream, "c1"), t, 0);
        flush();
        wait_value("1/-/-/-",
                   "SELECT CONCAT_WS('/', chats, COALESCE(unique_viewers, '-'), "
                   "COALESCE(peak_online, '-'), COALESCE(total_watch_s, '-')) FROM "
                   "live_statistics WHERE session_id = %lld",
                   session);
}

Test(audience, the_hot_ranking_scores_live_rooms_by_viewers_interactions_and_tips)
{
        char a[64], b[64], sa[80], sb[80], gone[64], sql[512];
        long long base = (long long)getpid() * 1000 + 10, t = now_ms();
        redisReply *r;

        use_redis(15);
        support_unique_name("ra", a, sizeof(a));
        support_unique_name("rb", b, sizeof(b));
        support_unique_name("gone", gone, sizeof(gone));
        snprintf(sa, sizeof(sa), "%s-s", a);
        snprintf(sb, sizeof(sb), "%s-s", b);
        make_live(sa, a, base);
        make_live(sb, b, base + 1);
        start_consumer(NULL);
        /* Room a: one viewer and 1000 minor units of tips in the interval: 1 + 10 = 11. */
        snprintf(sql, sizeof(sql),
                 "INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, amount, "
                 "tipped_at) VALUES ('%s-tip', 'u1', '%s', '%s', 1000, NOW(3))",
                 a, a, a);
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));
        app_event("enter", "u1", sa, NULL, k(sa, "r1"), t, 0);
        /* Room b: three viewers, five chats, one share: 3 + 1 + 1 = 5. */
        app_event("enter", "u1", sb, NULL, k(sb, "r1"), t, 0);
        app_event("enter", "u2", sb, NULL, k(sb, "r2"), t, 0);
        app_event("enter", "u3", sb, NULL, k(sb, "r3"), t, 0);
        for (int i = 0; i < 5; i++) {
                char name[16];

                snprintf(name, sizeof(name), "c%d", i);
                app_event("chat", "u2", sb, NULL, k(sb, name), t, 0);
        }
        app_event("share", "u3", sb, NULL, k(sb, "sh"), t, 0);
        /* A room whose stream ended is not ranked however busy. */
        app_event("enter", "u1", NULL, gone, k(gone, "g1"), t, 0);
        flush();
        wait_value("3", "SELECT online FROM audience_room WHERE room_id = '%s'", b);
        wait_value("1", "SELECT online FROM audience_room WHERE room_id = '%s'", a);
        wait_value("6",
                   "SELECT SUM(chats) + SUM(shares) FROM audience_room_minute WHERE room_id "
                   "= '%s'",
                   b);
        /* A consumer whose first tick ranks what is there now, over the last two minutes. */
        cr_assert(kill(fx.w.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.w.pid, 20000), 0, "no clean drain; log %s",
                     fx.w.log_path);
        start_consumer((const char *const[]){"LIVEFLOW_AUDIENCE_RANK_INTERVAL_S=120", NULL});
        wait_redis("11", "ZSCORE live:rank:hot %s", a);
        wait_redis("5", "ZSCORE live:rank:hot %s", b);
        r = redisCommand(fx.redis, "ZREVRANGE live:rank:hot 0 -1");
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "ranked %zu rooms",
                  r ? r->elements : 0);
        cr_assert_str_eq(r->element[0]->str, a);
        cr_assert_str_eq(r->element[1]->str, b);
        freeReplyObject(r);
}

/* ------------------------------------------------------------------ Redis that lost its data */

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

/* The audience fields of live:stats:{session} as "views/uv/peak/chats/likes/follows/shares". */
static void stats_fields(long long session, char *out, size_t size)
{
        redisReply *r = redisCommand(fx.redis,
                                     "HMGET live:stats:%lld views uv peak_online chats likes "
                                     "follows shares",
                                     session);
        size_t used = 0;

        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 7);
        out[0] = '\0';
        for (size_t i = 0; i < r->elements && used < size; i++)
                used += (size_t)snprintf(
                        out + used, size - used, "%s%s", i ? "/" : "",
                        r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : "-");
        freeReplyObject(r);
}

static void wait_stats_fields(long long session, const char *want)
{
        char got[256] = "";
        long long deadline = support_now_ms() + 30000;

        while (support_now_ms() < deadline) {
                stats_fields(session, got, sizeof(got));
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(100);
        }
        cr_assert_fail("live:stats:%lld gives \"%s\", want \"%s\" (log %s)", session, got, want,
                       fx.w.log_path);
}

Test(audience, redis_that_lost_its_data_gets_the_audience_figures_back)
{
        char stream[64], room[64], other[64], other_room[64], got[64];
        long long session = (long long)getpid() * 1000 + 20, t = now_ms() - 60000;
        const char *const env[] = {"LIVEFLOW_AUDIENCE_VISIT_TIMEOUT_S=3600", NULL};
        redisReply *r;

        use_redis(11);
        support_unique_name("st", stream, sizeof(stream));
        support_unique_name("rm", room, sizeof(room));
        support_unique_name("so", other, sizeof(other));
        support_unique_name("ro", other_room, sizeof(other_room));
        make_live(stream, room, session);
        make_live(other, other_room, session + 1);
        start_consumer(env);

        /* Three viewers at once at the peak, one leaves: 2 online; interactions. */
        app_event("enter", "u1", stream, NULL, k(stream, "e1"), t, 0);
        app_event("enter", "u2", stream, NULL, k(stream, "e2"), t + 1000, 0);
        srs_event(true, "c1", stream, k(stream, "s1"), t + 2000);
        app_event("exit", "u2", stream, NULL, k(stream, "e3"), t + 5000, 0);
        app_event("chat", "u1", stream, NULL, k(stream, "i1"), t + 6000, 0);
        app_event("chat", "u1", stream, NULL, k(stream, "i2"), t + 7000, 0);
        app_event("like", "u1", stream, NULL, k(stream, "i3"), t + 8000, 3);
        app_event("follow", "u1", stream, NULL, k(stream, "i4"), t + 9000, 0);
        app_event("share", "u1", stream, NULL, k(stream, "i5"), t + 9500, 0);
        app_event("enter", "v1", other, NULL, k(other, "e1"), t, 0);
        flush();
        wait_redis("2", "GET live:room:online:%s", room);
        wait_stats_fields(session, "3/3/3/2/3/1/1");
        wait_redis("1", "GET live:room:online:%s", other_room);
        cr_assert_eq(lost_count(), 1, "the first start found no epoch (log %s)", fx.w.log_path);

        /* Redis loses everything under the running role; one room gets an event meanwhile. */
        r = redisCommand(fx.redis, "FLUSHDB");
        freeReplyObject(r);
        app_event("enter", "v2", other, NULL, k(other, "e2"), t + 3000, 0);
        flush();

        /* The room without new events has its exact figures back, from MySQL alone. */
        wait_redis("2", "GET live:room:online:%s", room);
        wait_stats_fields(session, "3/3/3/2/3/1/1");
        /* The room whose event landed during the rebuild: counted once. */
        wait_redis("2", "GET live:room:online:%s", other_room);
        wait_stats_fields(session + 1, "2/2/2/0/0/0/0");
        /* The ranking comes back at once (not at the next interval, 10 minutes away): the
         * room with the interactions (2 + 0.4 + 0.15 + 2 + 1) above the other (2). */
        r = redisCommand(fx.redis, "ZREVRANGE live:rank:hot 0 -1");
        for (long long deadline = support_now_ms() + 30000;
             r && r->type == REDIS_REPLY_ARRAY && r->elements < 2 && support_now_ms() < deadline;
             r = redisCommand(fx.redis, "ZREVRANGE live:rank:hot 0 -1")) {
                freeReplyObject(r);
                support_sleep_ms(100);
        }
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "ranked %zu rooms",
                  r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0);
        cr_assert_str_eq(r->element[0]->str, room);
        cr_assert_str_eq(r->element[1]->str, other_room);
        freeReplyObject(r);
        redis_str(got, sizeof(got), "GET liveflow:redis:epoch:%s", "audience");
        cr_assert(strlen(got) == 32, "epoch \"%s\"", got);
        cr_assert_eq(lost_count(), 2, "liveflow_redis_data_lost_total (log %s)", fx.w.log_path);
}

/* `liveflow-ctl rebuild redis --execute` on the role's stores, its output in log; its exit. */
static int ctl_rebuild_execute(const char *log)
{
        char bin[512];
        int status = 0;
        pid_t pid;

        support_bin_path("liveflow-ctl", bin, sizeof(bin));
        cr_assert((pid = fork()) != -1);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                setenv("LIVEFLOW_MYSQL_URL", fx.w.mysql_url, 1);
                setenv("LIVEFLOW_REDIS_URL", strchr(fx.redis_env, '=') + 1, 1);
                setenv("LIVEFLOW_ENV_FILE", "/dev/null", 1);
                setenv("LIVEFLOW_KAFKA_BOOTSTRAP", support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"),
                       1);
                execl(bin, bin, "rebuild", "redis", "--execute", (char *)NULL);
                _exit(127);
        }
        cr_assert(waitpid(pid, &status, 0) == pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(audience, a_rebuild_while_the_role_applies_events_loses_and_doubles_nothing)
{
        char stream[64], room[64], who[96], name[32], log[128];
        long long session = (long long)getpid() * 1000 + 30, t = now_ms() - 60000;
        const char *const env[] = {"LIVEFLOW_AUDIENCE_VISIT_TIMEOUT_S=3600", NULL};
        int runs = 0, status;

        use_redis(10);
        support_unique_name("st", stream, sizeof(stream));
        support_unique_name("rm", room, sizeof(room));
        make_live(stream, room, session);
        start_consumer(env);
        /* 300 viewers come and 100 likes in six waves; the tool rebuilds Redis after each wave
         * is sent, while the role applies it, and until the role has applied them all. */
        snprintf(log, sizeof(log), "/tmp/%s.ctl.log", fx.w.prefix);
        for (int i = 0; i < 300; i++) {
                /* Every test's role reads these topics: names of this test's own. */
                snprintf(who, sizeof(who), "%s-u%d", room, i);
                snprintf(name, sizeof(name), "e%d", i);
                app_event("enter", who, stream, NULL, k(stream, name), t + i, 0);
                if (i % 3 == 0) {
                        snprintf(name, sizeof(name), "l%d", i);
                        app_event("like", who, stream, NULL, k(stream, name), t + i, 0);
                }
                if (i % 50 < 49)
                        continue;
                flush();
                status = ctl_rebuild_execute(log);
                cr_assert(status == 0 || status == 1, "liveflow-ctl exited %d (log %s)", status,
                          log);
                runs++;
        }
        while (runs < 100 && support_query_int(fx.w.mysql,
                                               "SELECT COALESCE(SUM(likes), 0) FROM "
                                               "live_statistics WHERE session_id = %lld",
                                               session) < 100) {
                status = ctl_rebuild_execute(log);
                cr_assert(status == 0 || status == 1, "liveflow-ctl exited %d (log %s)", status,
                          log);
                runs++;
        }
        wait_value("300/300/300/300/100",
                   "SELECT CONCAT_WS('/', (SELECT online FROM audience_room WHERE room_id = '%s'), "
                   "views, unique_viewers, peak_online, likes) FROM live_statistics WHERE "
                   "session_id = %lld",
                   room, session);
        /* The last write to Redis, whoever made it, holds the final figures. */
        wait_redis("300", "GET live:room:online:%s", room);
        wait_stats_fields(session, "300/300/300/0/100/0/0");
        cr_log_info("%d rebuild(s) ran while the events were applied", runs);
}
