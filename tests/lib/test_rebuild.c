/* test_rebuild.c: lib/rebuild.c against the fixture MariaDB and Redis: the epoch that tells a
 * Redis that lost its data, and room figures rebuilt from recharge. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "db.h"
#include "rebuild.h"
#include "redis_conn.h"
#include "support.h"

static struct {
        char mysql_url[512], redis_url[128], prefix[48];
        MYSQL *mysql;
        redisContext *redis;
        struct db *db;
        struct redis_conn *rc;
        struct rebuild *rb;
} fx;

static void setup(void)
{
        char err[256];

        support_unique_name("rb", fx.prefix, sizeof(fx.prefix));
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        fx.mysql = support_mysql_connect(fx.mysql_url);
        cr_assert((fx.db = db_new(fx.mysql_url, 10, err, sizeof(err))) != NULL, "%s", err);
}

static void teardown(void)
{
        rebuild_destroy(fx.rb);
        redis_conn_destroy(fx.rc);
        db_destroy(fx.db);
        if (fx.mysql)
                mysql_close(fx.mysql);
        if (fx.redis)
                redisFree(fx.redis);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(rebuild, .init = setup, .fini = teardown, .timeout = 60);

/* A Redis database of the test's own, emptied, and the library's connection to it. */
static void use_redis(int db)
{
        char err[256];

        fx.redis = support_redis_connect(db, true, fx.redis_url, sizeof(fx.redis_url));
        cr_assert((fx.rc = redis_conn_new(fx.redis_url, 2000, err, sizeof(err))) != NULL, "%s",
                  err);
        cr_assert((fx.rb = rebuild_new(fx.db, fx.rc, 3600, 3600)) != NULL);
}

static void get(const char *key, char *out, size_t out_size)
{
        redisReply *r = redisCommand(fx.redis, "GET %s", key);

        cr_assert(r);
        snprintf(out, out_size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "(nil)");
        freeReplyObject(r);
}

static void sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sql(const char *fmt, ...)
{
        char q[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(q, sizeof(q), fmt, ap);
        va_end(ap);
        cr_assert(mysql_query(fx.mysql, q) == 0, "%s: %s", q, mysql_error(fx.mysql));
}

Test(rebuild, the_epoch_tells_a_redis_that_lost_its_data)
{
        struct rebuild_epoch seen = {0}, other = {0};
        char err[256];
        bool lost = false;

        use_redis(10);
        /* An empty Redis at start: lost (nothing liveflow wrote is there). */
        cr_assert_eq(rebuild_epoch_check(fx.rc, &seen, &lost, err, sizeof(err)), 0, "%s", err);
        cr_assert(lost);
        cr_assert_eq(strlen(seen.token), 32);
        cr_assert_eq(strlen(seen.run_id), 40);
        /* Nothing happened since: not lost; a second process starting now adopts the epoch. */
        cr_assert_eq(rebuild_epoch_check(fx.rc, &seen, &lost, err, sizeof(err)), 0);
        cr_assert(!lost);
        cr_assert_eq(rebuild_epoch_check(fx.rc, &other, &lost, err, sizeof(err)), 0);
        cr_assert(!lost);
        cr_assert_str_eq(other.token, seen.token);
        /* Flushed: the first to look sets a new epoch, and the other sees it changed. */
        support_redis_do(fx.redis, "FLUSHDB");
        cr_assert_eq(rebuild_epoch_check(fx.rc, &seen, &lost, err, sizeof(err)), 0);
        cr_assert(lost);
        cr_assert_eq(rebuild_epoch_check(fx.rc, &other, &lost, err, sizeof(err)), 0);
        cr_assert(lost);
        cr_assert_str_eq(other.token, seen.token);
        cr_assert_eq(rebuild_epoch_check(fx.rc, &other, &lost, err, sizeof(err)), 0);
        cr_assert(!lost);
}

/*
 * Two parts rebuilt on their own (the stream role's keys, reward-sync's rooms): a role starting
 * after another already found Redis empty and set its token still finds its own part lost.
 */
Test(rebuild, each_part_has_its_own_epoch)
{
        struct rebuild_epoch stream, rooms, rooms_copy;
        char err[256];
        bool lost = false;

        use_redis(13);
        rebuild_epoch_init(&stream, "stream");
        rebuild_epoch_init(&rooms, "reward-sync");
        rebuild_epoch_init(&rooms_copy, "reward-sync");
        cr_assert_eq(rebuild_epoch_check(fx.rc, &stream, &lost, err, sizeof(err)), 0, "%s", err);
        cr_assert(lost);
        cr_assert_eq(rebuild_epoch_check(fx.rc, &rooms, &lost, err, sizeof(err)), 0, "%s", err);
        cr_assert(lost, "reward-sync's rooms are lost although the stream role set its epoch");
        /* A second copy of the same role adopts its role's epoch: one rebuild per part. */
        cr_assert_eq(rebuild_epoch_check(fx.rc, &rooms_copy, &lost, err, sizeof(err)), 0);
        cr_assert(!lost);
        cr_assert_str_eq(rooms_copy.token, rooms.token);
        cr_assert_str_neq(rooms.token, stream.token);
}

/* Starts redis-server on port with its data in dir (an RDB file there is loaded). */
static pid_t start_redis(int port, const char *dir)
{
        char p[16], log[300];
        char *argv[] = {(char *)"/usr/bin/redis-server",
                        (char *)"--port",
                        p,
                        (char *)"--dir",
                        (char *)dir,
                        (char *)"--save",
                        (char *)"",
                        (char *)"--appendonly",
                        (char *)"no",
                        NULL};
        long long deadline = support_now_ms() + 10000;
        redisContext *c = NULL;
        pid_t pid;

        snprintf(p, sizeof(p), "%d", port);
        snprintf(log, sizeof(log), "%s/redis.log", dir);
        pid = support_spawn(argv, NULL, log);
        while (support_now_ms() < deadline) {
                redisReply *r;

                if ((c = redisConnect("127.0.0.1", port)) && !c->err &&
                    (r = redisCommand(c, "PING")) && r->type == REDIS_REPLY_STATUS) {
                        freeReplyObject(r);
                        redisFree(c);
                        return pid;
                }
                if (c)
                        redisFree(c);
                support_sleep_ms(50);
        }
        cr_assert_fail("redis-server on %d did not answer (log %s)", port, log);
        return pid;
}

static void stop_redis(pid_t pid, int port, bool save)
{
        redisContext *c = redisConnect("127.0.0.1", port);

        cr_assert(c && !c->err);
        if (save)
                freeReplyObject(redisCommand(c, "SAVE"));
        redisCommand(c, "SHUTDOWN NOSAVE"); /* no reply: the server is gone */
        redisFree(c);
        cr_assert_eq(support_wait_exit(pid, 10000), 0);
}

/* The first command after a restart finds the old connection closed; the next reconnects, as a
 * worker's next tick does. */
static void check_after_restart(struct redis_conn *rc, struct rebuild_epoch *seen, bool *lost)
{
        char err[256];

        if (rebuild_epoch_check(rc, seen, lost, err, sizeof(err)) == -1)
                cr_assert_eq(rebuild_epoch_check(rc, seen, lost, err, sizeof(err)), 0, "%s", err);
}

Test(rebuild, a_restart_that_reloads_old_data_counts_as_lost)
{
        struct rebuild_epoch seen = {0};
        char dir[] = "/tmp/rbredis.XXXXXX", url[64], err[256];
        int port = support_free_port();
        struct redis_conn *rc;
        bool lost = false;
        pid_t pid;

        cr_assert(mkdtemp(dir) != NULL);
        pid = start_redis(port, dir);
        snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
        cr_assert((rc = redis_conn_new(url, 2000, err, sizeof(err))) != NULL, "%s", err);
        cr_assert_eq(rebuild_epoch_check(rc, &seen, &lost, err, sizeof(err)), 0, "%s", err);
        cr_assert(lost);
        /* Restarted from its snapshot: the epoch is the one saved, the server a new one. */
        stop_redis(pid, port, true);
        pid = start_redis(port, dir);
        check_after_restart(rc, &seen, &lost);
        cr_assert(lost, "a server that reloaded a snapshot may hold older figures: rebuild");
        cr_assert_eq(rebuild_epoch_check(rc, &seen, &lost, err, sizeof(err)), 0, "%s", err);
        cr_assert(!lost);
        /* Restarted empty: lost too. */
        stop_redis(pid, port, false);
        support_sh("rm -f %s/dump.rdb", dir);
        pid = start_redis(port, dir);
        check_after_restart(rc, &seen, &lost);
        cr_assert(lost);
        redis_conn_destroy(rc);
        stop_redis(pid, port, false);
        support_sh("rm -rf %s", dir);
}

/* Room r0: three tips numbered 1..3 (two audiences, one session); a fourth not numbered yet
 * (room_seq 0: its transaction has not committed its number) must not count. */
static void seed_room(const char *room, long long session)
{
        sql("INSERT INTO live_room_sync (room_id, tip_seq) VALUES ('%s', 3)", room);
        sql("INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, session_id, room_seq, "
            "amount, gift_count, tipped_at) VALUES "
            "('%s_t1', 'fan1', 'a', '%s', %lld, 1, 100, 1, NOW(3)), "
            "('%s_t2', 'fan2', 'a', '%s', %lld, 2, 250, 2, NOW(3)), "
            "('%s_t3', 'fan1', 'a', '%s', %lld, 3, 50, 1, NOW(3)), "
            "('%s_t4', 'fan3', 'a', '%s', %lld, 0, 999, 1, NOW(3))",
            fx.prefix, room, session, fx.prefix, room, session, fx.prefix, room, session, fx.prefix,
            room, session);
}

Test(rebuild, marked_rooms_get_the_sums_of_their_numbered_tips)
{
        char room[64], key[128], v[64], err[256];
        long long session = 4242, through = -1;
        unsigned long long marked = 0;
        size_t sessions = 99;
        bool found = false;

        use_redis(11);
        snprintf(room, sizeof(room), "%s_r0", fx.prefix);
        seed_room(room, session);
        /* Wrong figures, and a top with an audience that never tipped here. */
        snprintf(key, sizeof(key), "live:room:earnings:%s", room);
        support_redis_do(fx.redis, "SET %s 7", key);
        support_redis_do(fx.redis, "ZADD live:room:top:%s 5 ghost", room);

        cr_assert_eq(rebuild_mark_all_rooms(fx.rb, &marked, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(marked, 2); /* the room, and the session of its recent tips */
        v[0] = '\0';
        cr_assert_eq(rebuild_next_marked(fx.rb, v, &found, err, sizeof(err)), 0);
        cr_assert(found);
        cr_assert_str_eq(v, room);
        cr_assert_eq(rebuild_room(fx.rb, room, &through, &sessions, err, sizeof(err)), 0, "%s",
                     err);
        cr_assert_eq(through, 3);
        cr_assert_eq(sessions, 1);

        get(key, v, sizeof(v));
        cr_assert_str_eq(v, "400");
        snprintf(key, sizeof(key), "live:room:recharge_count:%s", room);
        get(key, v, sizeof(v));
        cr_assert_str_eq(v, "3");
        snprintf(key, sizeof(key), "live:room:rebuilt:%s", room);
        get(key, v, sizeof(v));
        cr_assert_str_eq(v, "3");
        redisReply *r = redisCommand(fx.redis, "ZRANGE live:room:top:%s 0 -1 WITHSCORES", room);

        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 4, "top: %zu entries",
                  r ? r->elements : 0);
        cr_assert_str_eq(r->element[0]->str, "fan1");
        cr_assert_str_eq(r->element[1]->str, "150");
        cr_assert_str_eq(r->element[2]->str, "fan2");
        cr_assert_str_eq(r->element[3]->str, "250");
        freeReplyObject(r);
        r = redisCommand(fx.redis,
                         "HMGET live:stats:%lld gift_amount gift_count tip_count paying_users",
                         session);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 4);
        cr_assert_str_eq(r->element[0]->str, "400");
        cr_assert_str_eq(r->element[1]->str, "4");
        cr_assert_str_eq(r->element[2]->str, "3");
        cr_assert_str_eq(r->element[3]->str, "2");
        freeReplyObject(r);
        /* The marks are cleared: nothing is left to rebuild. */
        v[0] = '\0';
        cr_assert_eq(rebuild_next_marked(fx.rb, v, &found, err, sizeof(err)), 0);
        cr_assert(!found);
}

Test(rebuild, streams_follow_live_streams_and_stale_keys_end)
{
        char v[64], err[256];
        long long projected = 0;
        redisReply *r;

        use_redis(12);
        sql("INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, status, "
            "started_at, last_event_at) VALUES ('%s_s1', '%s_a1', '%s_a1', 11, 'srs', 'live', "
            "'2026-01-01 00:00:00', NOW(3)), ('%s_s2', '%s_a2', '%s_a2', 12, 'srs', 'ended', "
            "'2026-01-01 00:00:00', NOW(3))",
            fx.prefix, fx.prefix, fx.prefix, fx.prefix, fx.prefix, fx.prefix);
        support_redis_do(fx.redis, "SADD set:live:online %s_s2 %s_nowhere", fx.prefix, fx.prefix);
        support_redis_do(
                fx.redis,
                "HSET hash:anchor:status:%s_a2 status live stream_id %s_s2 anchor_status banned",
                fx.prefix, fx.prefix);
        support_redis_do(fx.redis, "HSET hash:anchor:status:%s_a9 status live stream_id %s_unknown",
                         fx.prefix, fx.prefix);

        cr_assert_eq(rebuild_streams(fx.rb, &projected, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(projected, 4); /* s1; s2 and nowhere from the set; unknown */
        r = redisCommand(fx.redis, "SMEMBERS set:live:online");
        cr_assert(r && r->elements == 1);
        snprintf(v, sizeof(v), "%s_s1", fx.prefix);
        cr_assert_str_eq(r->element[0]->str, v);
        freeReplyObject(r);
        r = redisCommand(fx.redis, "HMGET hash:anchor:status:%s_a1 status session_id started_at",
                         fx.prefix);
        cr_assert_str_eq(r->element[0]->str, "live");
        cr_assert_str_eq(r->element[1]->str, "11");
        cr_assert_str_eq(r->element[2]->str, "1767225600");
        freeReplyObject(r);
        /* Ended hashes say offline; fields of other roles stay. */
        r = redisCommand(fx.redis, "HMGET hash:anchor:status:%s_a2 status stream_id anchor_status",
                         fx.prefix);
        cr_assert_str_eq(r->element[0]->str, "offline");
        cr_assert_eq(r->element[1]->type, REDIS_REPLY_NIL);
        cr_assert_str_eq(r->element[2]->str, "banned");
        freeReplyObject(r);
        r = redisCommand(fx.redis, "HGET hash:anchor:status:%s_a9 status", fx.prefix);
        cr_assert_str_eq(r->str, "offline");
        freeReplyObject(r);
        /* A second run finds nothing stale. */
        cr_assert_eq(rebuild_streams(fx.rb, &projected, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(projected, 1);
}
