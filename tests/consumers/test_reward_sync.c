/*
 * test_reward_sync.c: the reward-sync role, run as its binary against the real fixtures.
 * Every expectation is computed from the tips the test sent: recharge, the Redis room and
 * session figures and live_room_realtime equal their sums, whatever is duplicated, replayed,
 * cut away or killed; malformed tips go to live.reward.dlq.
 *
 * Each test has its own database and its own Redis database number, so the figures of one
 * test's consumer (which also reads the other tests' tips from live.reward) never meet another's.
 *
 * This file holds the fixture, the tips and the tests; its parts in reward_sync/: expect.c
 * (the figures the tips sent must give) and dead_letters.c (reading live.reward.dlq, malformed
 * tips); fixture.h is what they share.
 */
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
#include "reward_sync/fixture.h"

struct reward_fixture fx;
struct reward_ids ids;
struct reward_sent sent;

static void setup(void)
{
        support_worker_fx_open(&fx.w, "rw");
        for (int i = 0; i < MAX_ROOMS; i++) {
                snprintf(ids.rooms[i], sizeof(ids.rooms[i]), "%.40s_room%d", fx.w.prefix, i);
                snprintf(ids.anchors[i], sizeof(ids.anchors[i]), "%.40s_anchor%d", fx.w.prefix, i);
        }
        for (int i = 0; i < MAX_AUDIENCES; i++)
                snprintf(ids.audiences[i], sizeof(ids.audiences[i]), "%.40s_fan%02d", fx.w.prefix,
                         i);
        fx.rand_state = (unsigned)getpid();
        cr_log_info("%s: amounts seeded with %u", fx.w.prefix, fx.rand_state);
}

static void teardown(void)
{
        support_worker_fx_close(&fx.w);
        if (fx.redis)
                redisFree(fx.redis);
        support_proxy_stop(fx.proxy);
        memset(&fx, 0, sizeof(fx));
        memset(&ids, 0, sizeof(ids));
        memset(&sent, 0, sizeof(sent));
}

TestSuite(reward_sync, .init = setup, .fini = teardown, .timeout = 300);

/* ------------------------------------------------------------------ fixtures */

/* The test's own Redis database, emptied; the consumer goes through the relay when asked. */
static void use_redis(int db, bool through_proxy)
{
        int port = atoi(support_fixture("LIVEFLOW_TEST_REDIS_PORT"));

        fx.redis = support_redis_connect(db, true, NULL, 0);
        if (through_proxy)
                fx.proxy = support_proxy_start(port);
        snprintf(fx.redis_url, sizeof(fx.redis_url), "redis://127.0.0.1:%d/%d",
                 through_proxy ? support_proxy_port(fx.proxy) : port, db);
}

static void start_consumer(long long flush_tips, long long flush_s)
{
        char bin[512], e_boot[512], e_mysql[600], e_redis[340], e_admin[64], e_group[128];
        char e_tips[64], e_secs[64];
        char *argv[] = {bin, (char *)"reward-sync", NULL};
        char *env[] = {e_boot,
                       e_mysql,
                       e_redis,
                       e_admin,
                       e_group,
                       e_tips,
                       e_secs,
                       (char *)"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000",
                       (char *)"LIVEFLOW_RETRY_BACKOFF_MS=50",
                       (char *)"LIVEFLOW_REDIS_TIMEOUT_MS=1000",
                       (char *)"LIVEFLOW_BATCH_MAX=100",
                       NULL};

        support_bin_path("liveflow-consumer", bin, sizeof(bin));
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.w.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s", fx.redis_url);
        fx.w.admin_port = support_free_port();
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", fx.w.admin_port);
        /* Tests run in parallel: each needs every partition, so each gets its own group. */
        snprintf(e_group, sizeof(e_group), "LIVEFLOW_GROUP_ID=%s", fx.w.group);
        snprintf(e_tips, sizeof(e_tips), "LIVEFLOW_REWARD_FLUSH_TIPS=%lld", flush_tips);
        snprintf(e_secs, sizeof(e_secs), "LIVEFLOW_REWARD_FLUSH_S=%lld", flush_s);
        fx.w.pid = support_spawn(argv, env, fx.w.log_path);
        cr_assert(support_wait_ready(fx.w.admin_port, 20000) == 0, "consumer not ready; see %s",
                  fx.w.log_path);
}

static void stop_consumer_expect_clean_exit(void)
{
        cr_assert(kill(fx.w.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.w.pid, 20000), 0,
                     "consumer did not drain cleanly; see %s", fx.w.log_path);
        fx.w.pid = 0;
}

/* Makes room `room` live with a fresh session, after an ended one it must not be confused with. */
static void make_live(int room)
{
        long long ended = (long long)getpid() * 100 + room * 2 + 1, live = ended + 1;
        char sql[1024];

        snprintf(
                sql, sizeof(sql),
                "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, status, started_at, "
                "ended_at, last_event_at) VALUES ('%s_old', '%s', '%s', %lld, 'tencent', 'ended', "
                "NOW(3) - INTERVAL 2 HOUR, NOW(3) - INTERVAL 1 HOUR, NOW(3)), ('%s_now', '%s', '%s', %lld, "
                "'tencent', 'live', NOW(3) - INTERVAL 10 MINUTE, NULL, NOW(3))",
                ids.rooms[room], ids.anchors[room], ids.rooms[room], ended, ids.rooms[room],
                ids.anchors[room], ids.rooms[room], live);
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));
        fx.sessions[room] = live;
}

/* ------------------------------------------------------------------ tips */

static long long next_amount(void)
{
        fx.rand_state = fx.rand_state * 1103515245u + 12345u;
        return 1 + (long long)((fx.rand_state >> 8) % 5000);
}

/* Adds a tip to the test's list (not yet sent); genders and types cycle, absent included. */
static struct sent_tip *new_tip(int room, int audience)
{
        static const char *const genders[] = {"male", "female", "unknown", NULL};
        static const char *const types[] = {"registered", "guest", NULL};
        struct sent_tip *t;

        cr_assert(sent.tip_cnt < MAX_TIPS);
        t = &sent.tips[sent.tip_cnt];
        snprintf(t->tip_id, sizeof(t->tip_id), "%s_tip%d", fx.w.prefix, sent.tip_cnt);
        t->room = room;
        t->audience = audience;
        t->amount = next_amount();
        t->gift_count = 1 + sent.tip_cnt % 4;
        t->ts_ms = 1700000000000LL + sent.tip_cnt * 1000LL;
        t->audience_gender = genders[sent.tip_cnt % 4];
        t->anchor_gender = genders[(sent.tip_cnt / 4) % 4];
        t->audience_type = types[sent.tip_cnt % 3];
        sent.tip_cnt++;
        return t;
}

/* The envelope and payload the receiver makes of a tip (event id from the tip id). */
static void encode_tip(const struct sent_tip *t, void **buf, size_t *len)
{
        char key[128], event_id[65], err[256];
        json_t *payload = json_pack(
                "{s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:I,s:s?,s:s?,s:s?}", "tip_id", t->tip_id,
                "audience_id", ids.audiences[t->audience], "anchor_id", ids.anchors[t->room],
                "room_id", ids.rooms[t->room], "amount", (json_int_t)t->amount, "gift_id", "rose",
                "gift_count", (json_int_t)t->gift_count, "ts_ms", (json_int_t)t->ts_ms,
                "audience_gender", t->audience_gender, "anchor_gender", t->anchor_gender,
                "audience_type", t->audience_type);

        cr_assert(payload);
        snprintf(key, sizeof(key), "internal|reward|%s", t->tip_id);
        crypto_sha256_hex(key, strlen(key), event_id);
        struct envelope env = {
                .event_id = event_id,
                .vendor = "internal",
                .event_type = "reward",
                .anchor_id = ids.anchors[t->room],
                .room_id = ids.rooms[t->room],
                .event_time_ms = t->ts_ms,
                .receive_time_ms = t->ts_ms + 5,
                .trace_id = "0123456789abcdef0123456789abcdef",
                .raw = "{}",
                .raw_len = 2,
        };
        cr_assert(codec_encode(fx.w.codec, &env, "Reward", payload, buf, len, err, sizeof(err)) ==
                          0,
                  "%s", err);
        json_decref(payload);
}

/* Produces a value keyed like the receiver (anchor_id), without waiting for the ack. */
void produce_raw(const char *key, const void *value, size_t len, const char *event_type)
{
        cr_assert(rd_kafka_producev(
                          fx.w.producer, RD_KAFKA_V_TOPIC("live.reward"),
                          RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)value, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADER("trace_id", "0123456789abcdef0123456789abcdef", -1),
                          RD_KAFKA_V_HEADER("event_type", event_type, -1), RD_KAFKA_V_END) == 0);
}

static void send_tip(const struct sent_tip *t)
{
        void *buf;
        size_t len;

        encode_tip(t, &buf, &len);
        produce_raw(ids.anchors[t->room], buf, len, "reward");
        free(buf);
}

void flush(void)
{
        cr_assert(rd_kafka_flush(fx.w.producer, 20000) == 0);
}

/* n new tips over rooms [0, rooms) and audiences [0, audiences), sent; @returns the first. */
static int send_new_tips(int n, int rooms, int audiences)
{
        int first = sent.tip_cnt;

        for (int i = 0; i < n; i++)
                send_tip(
                        new_tip(i % rooms, (int)((unsigned)(i * 7 + i / 3) % (unsigned)audiences)));
        flush();
        return first;
}

/* ------------------------------------------------------------------ tests */

Test(reward_sync, figures_equal_the_sums_of_the_tips_sent)
{
        use_redis(1, false);
        make_live(0);
        start_consumer(100, 300);
        send_new_tips(40, 2, 8);
        expect_recharge(2);
        expect_redis(2);

        /* Every column as sent; the session only where the room is live, and its live one. */
        for (int i = 0; i < sent.tip_cnt; i++) {
                const struct sent_tip *t = &sent.tips[i];
                char got[320], want[320], session[24] = "-";

                if (fx.sessions[t->room])
                        snprintf(session, sizeof(session), "%lld", fx.sessions[t->room]);
                support_query1(
                        fx.w.mysql, got, sizeof(got),
                        "SELECT CONCAT_WS('|', audience_id, anchor_id, room_id, IFNULL(session_id, '-'), amount, "
                        "gift_id, gift_count, audience_gender, anchor_gender, IFNULL(audience_type, '-'), "
                        "CAST(UNIX_TIMESTAMP(tipped_at) * 1000 AS SIGNED)) FROM recharge WHERE trace_id = '%s'",
                        t->tip_id);
                snprintf(want, sizeof(want), "%s|%s|%s|%s|%lld|rose|%lld|%s|%s|%s|%lld",
                         ids.audiences[t->audience], ids.anchors[t->room], ids.rooms[t->room],
                         session, t->amount, t->gift_count,
                         t->audience_gender ? t->audience_gender : "unknown",
                         t->anchor_gender ? t->anchor_gender : "unknown",
                         t->audience_type ? t->audience_type : "-", t->ts_ms);
                cr_assert_str_eq(got, want, "tip %d", i);
        }
        stop_consumer_expect_clean_exit();
}

Test(reward_sync, a_tip_posted_twice_or_replayed_counts_once)
{
        struct sent_tip *first, *pair, again;
        void *buf;
        size_t len;

        use_redis(2, false);
        start_consumer(100, 300);
        first = new_tip(0, 0);
        encode_tip(first, &buf, &len);
        produce_raw(ids.anchors[0], buf, len, "reward");
        flush();
        expect_redis(1);

        /* The tip service posts it again with other values, and Kafka replays the record. */
        again = *first;
        again.amount = first->amount + 1000;
        again.audience = 1;
        send_tip(&again);
        produce_raw(ids.anchors[0], buf, len, "reward");
        free(buf);
        /* Twice in a row, most likely in one batch. */
        pair = new_tip(0, 2);
        send_tip(pair);
        send_tip(pair);
        /* Same key, so same partition: once this one counts, those before it were handled. */
        send_tip(new_tip(0, 3));
        flush();
        expect_redis(1);
        expect_recharge(1);
        cr_assert_eq(support_query_int(fx.w.mysql,
                                       "SELECT amount FROM recharge WHERE trace_id = '%s'",
                                       first->tip_id),
                     first->amount, "the first post's amount stays");
        stop_consumer_expect_clean_exit();
}

/*
 * A batch projects the recharge rows it wrote as it wrote them: publish reads back only what
 * apply did not write (duplicates, replays). Other tests' records reach this consumer too (its
 * group reads live.reward from the start), so read-backs are bounded by the records fetched
 * besides this test's new tips, plus a batch in flight at either end.
 */
Test(reward_sync, a_batch_projects_what_it_wrote_without_reading_it_back)
{
        const char *read_back = "liveflow_reward_rows_read_back_total";
        const char *fetched =
                "liveflow_consumer_fetched_total{role=\"reward-sync\",topic=\"live.reward\"}";
        const int n = 300, batch_max = 100;
        long long r0, f0, r1, f1, dup;
        struct sent_tip *pair;

        use_redis(9, false);
        make_live(1);
        start_consumer(100, 300);
        cr_assert_geq(r0 = scrape(read_back), 0, "no %s in /metrics", read_back);
        f0 = scrape(fetched);
        cr_assert_geq(f0, 0);
        send_new_tips(n, 3, 12);
        expect_redis(3);
        expect_recharge(3);
        r1 = scrape(read_back);
        f1 = scrape(fetched);
        cr_assert_leq(r1 - r0, f1 - f0 - n + 2 * batch_max,
                      "%lld rows read back while %lld records besides the %d new tips were fetched",
                      r1 - r0, f1 - f0 - n, n);

        /* A duplicate is read back (its row is the first copy's), and counts once. */
        pair = new_tip(1, 0);
        send_tip(pair);
        flush();
        expect_redis(3);
        dup = scrape(read_back);
        send_tip(pair);
        send_tip(new_tip(1, 1)); /* same key: once it counts, the duplicate was handled */
        flush();
        expect_redis(3);
        cr_assert_geq(scrape(read_back), dup + 1, "the duplicate was not read back");
        expect_recharge(3);
        stop_consumer_expect_clean_exit();
}

/*
 * New tips are written without looking recharge up first; their replay is looked up (at once,
 * or after the unread INSERT met them and the batch rolled back, the rooms' numbers with it)
 * and counts once in recharge, Redis and the room numbers.
 */
Test(reward_sync, new_tips_are_written_unread_and_their_replay_is_looked_up)
{
        const char *unread = "liveflow_reward_batches_total{way=\"unread\"}";
        const char *read_first = "liveflow_reward_batches_total{way=\"read_first\"}";
        const char *conflict = "liveflow_reward_batches_total{way=\"conflict\"}";
        long long looked_up;

        use_redis(8, false);
        make_live(0);
        start_consumer(100, 300);
        /* Other tests' records reach this group too, replays among them: a batch that meets
         * one makes the next look up first, until one finds nothing. Rounds of new tips until
         * one batch went unread. */
        for (int round = 0; round < 10 && scrape(unread) < 1; round++) {
                send_new_tips(30, 2, 6);
                expect_redis(2);
        }
        cr_assert_geq(scrape(unread), 1, "no batch was written unread (log %s)", fx.w.log_path);
        looked_up = scrape(read_first) + scrape(conflict);
        cr_assert_geq(looked_up, 0, "no read_first or conflict counter");

        for (int i = 0; i < sent.tip_cnt; i++) /* the same records again: a replay */
                send_tip(&sent.tips[i]);
        send_tip(new_tip(0, 1)); /* once it counts, the replay before it was handled */
        send_tip(new_tip(1, 1));
        flush();
        expect_redis(2);
        expect_recharge(2);
        /* Each room's tips are numbered 1..n once: a rolled-back batch left no number behind. */
        for (int room = 0; room < 2; room++)
                cr_assert_eq(support_query_int(fx.w.mysql,
                                               "SELECT COUNT(DISTINCT room_seq) - MAX(room_seq) "
                                               "FROM recharge WHERE room_id = '%s'",
                                               ids.rooms[room]),
                             0, "room %d's numbers", room);
        cr_assert_gt(scrape(read_first) + scrape(conflict), looked_up,
                     "the replay was neither looked up first nor met by the INSERT");
        stop_consumer_expect_clean_exit();
}

Test(reward_sync, tips_across_rooms_give_exact_top10_and_live_room_realtime_folds)
{
        const long long fold_at = 7;
        struct room_want want[MAX_ROOMS];

        use_redis(3, false);
        start_consumer(fold_at, 3600);
        send_new_tips(180, 3, 14);  /* 60 tips per room from 14 audiences: TOP10 leaves 4 out */
        for (int i = 0; i < 5; i++) /* a fourth room stays below the fold threshold */
                send_tip(new_tip(3, i));
        flush();
        expect_recharge(4);
        expect_redis(4);

        /* Folded by count only (FLUSH_S is an hour): at most fold_at - 1 tips wait per room, and
         * what was folded is exactly the room's first tips. */
        want_rooms(want);
        for (int i = 0; i < 3; i++) {
                long long earnings, count;

                wait_folded(i, want[i].count - (fold_at - 1), &earnings, &count);
                cr_assert_geq(count, want[i].count - (fold_at - 1),
                              "room %d folded %lld of %lld tips (log %s)", i, count, want[i].count,
                              fx.w.log_path);
                cr_assert_eq(earnings, first_tips_sum(i, count), "room %d: the first %lld tips", i,
                             count);
        }
        support_sleep_ms(2500); /* two more ticks: the small room must still wait */
        /* The sync backlog counts the small room's 5 tips (and whatever else the group read). */
        cr_assert_geq(scrape("liveflow_reward_realtime_pending"), 5, "(log %s)", fx.w.log_path);
        cr_assert_eq(
                support_query_int(fx.w.mysql,
                                  "SELECT COUNT(*) FROM live_room_realtime WHERE room_id = '%s'",
                                  ids.rooms[3]),
                0, "a room with %d tips was folded before FLUSH_TIPS or FLUSH_S", 5);

        /* With FLUSH_S=1 everything pending is folded: live_room_realtime equals recharge. */
        stop_consumer_expect_clean_exit();
        start_consumer(fold_at, 1);
        expect_realtime(4);
        stop_consumer_expect_clean_exit();
}

Test(reward_sync, redis_outage_keeps_tips_out_of_the_dlq_and_ends_in_a_rebuild)
{
        struct room_want before[MAX_ROOMS];
        struct dead_letter dl[2];
        int batch_b;

        use_redis(4, true);
        make_live(0);
        start_consumer(100, 300);
        send_new_tips(20, 2, 6);
        expect_redis(2);
        want_rooms(before);

        support_proxy_cut(fx.proxy);
        batch_b = send_new_tips(30, 2, 9);
        /* A malformed tip after them in each room's partition: once it is dead-lettered, every
         * tip before it was handled. */
        for (int i = 0; i < 2; i++) {
                send_bad_tip(ids.anchors[i], "amount", json_integer(0), "Reward");
                dl[i] = (struct dead_letter){.key = ids.anchors[i], .until = "amount"};
        }
        flush();
        wait_recharge_rows(sent.tip_cnt);
        read_dead_letters(dl, 2, WAIT_MS);
        for (int i = 0; i < 2; i++) {
                cr_assert(dl[i].is_found, "%s: the malformed tip is not in the DLQ (log %s)",
                          ids.anchors[i], fx.w.log_path);
                cr_assert_eq(dl[i].count, 1,
                             "%s: %d dead letters, want only the malformed one; the last says "
                             "\"%s\" (log %s)",
                             ids.anchors[i], dl[i].count, dl[i].message, fx.w.log_path);
        }
        /* Redis saw none of them. */
        cr_assert_eq(redis_int("GET live:room:earnings:%s", ids.rooms[0]), before[0].earnings);
        cr_assert_eq(redis_int("GET live:room:recharge_count:%s", ids.rooms[1]), before[1].count);
        cr_assert_geq(scrape("liveflow_reward_redis_degraded_total"), 30);

        /* Redis is back: the rooms and the live session are rebuilt from recharge. */
        support_proxy_restore(fx.proxy);
        expect_redis(2);
        cr_assert_geq(scrape("liveflow_reward_rooms_rebuilt_total"), 2);

        /* Replays of tips from before and during the outage add nothing; new tips count once. */
        for (int i = 0; i < 10; i++)
                send_tip(&sent.tips[i % 2 ? batch_b + i : i]);
        send_new_tips(10, 2, 9);
        expect_redis(2);
        expect_recharge(2);
        stop_consumer_expect_clean_exit();
}

Test(reward_sync, redis_flushed_under_the_worker_is_rebuilt_from_recharge)
{
        redisReply *r;
        long long deadline;

        use_redis(7, false);
        make_live(0);
        start_consumer(100, 300);
        send_new_tips(20, 2, 6);
        expect_redis(2);

        /* Redis loses everything (a restart without persistence looks the same to liveflow). */
        r = redisCommand(fx.redis, "FLUSHDB");
        cr_assert(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        cr_assert_eq(redis_int("GET live:room:earnings:%s", ids.rooms[0]), 0);
        expect_redis(2);
        deadline = support_now_ms() + WAIT_MS;
        while (scrape("liveflow_redis_data_lost_total") < 2 && support_now_ms() < deadline)
                support_sleep_ms(100);
        /* Once at start (a Redis database liveflow had not written yet), once for the flush. */
        cr_assert_eq(scrape("liveflow_redis_data_lost_total"), 2, "(log %s)", fx.w.log_path);

        /* Replays of counted tips add nothing; new tips count once, on top of the rebuild. */
        for (int i = 0; i < 5; i++)
                send_tip(&sent.tips[i]);
        send_new_tips(10, 2, 9);
        expect_redis(2);
        expect_recharge(2);
        stop_consumer_expect_clean_exit();
}

Test(reward_sync, kill_9_mid_run_then_restart_counts_every_tip_once)
{
        long long seen, deadline;

        use_redis(5, false);
        make_live(1);
        start_consumer(50, 1);
        for (int i = 0; i < 600; i++) {
                struct sent_tip *t = new_tip(i % 3, (i * 11 + i / 5) % 20);

                send_tip(t);
                if (i % 7 == 0)
                        send_tip(t); /* the tip service retries */
        }
        flush();
        deadline = support_now_ms() + WAIT_MS;
        while ((seen = recharge_rows()) < 100 && support_now_ms() < deadline)
                support_sleep_ms(5);
        cr_assert(kill(fx.w.pid, SIGKILL) == 0);
        support_wait_exit(fx.w.pid, 5000);
        cr_log_info("killed after %lld of %d tips", seen, sent.tip_cnt);
        cr_assert_lt(seen, sent.tip_cnt, "the kill came after the last tip: nothing was tested");

        start_consumer(50, 1);
        expect_recharge(3);
        expect_redis(3);
        expect_realtime(3);
        stop_consumer_expect_clean_exit();
}

Test(reward_sync, malformed_tips_go_to_the_dlq_and_valid_ones_still_land)
{
        char keys[6][96];
        struct dead_letter dl[6];
        const char *const why[] = {"fingerprint", "amount",    "amount",
                                   "audience_id", "not a tip", "audience_gender"};

        use_redis(6, false);
        start_consumer(100, 300);
        for (int i = 0; i < 6; i++) {
                snprintf(keys[i], sizeof(keys[i]), "%s_bad%d", fx.w.prefix, i);
                dl[i] = (struct dead_letter){.key = keys[i], .until = why[i]};
        }
        produce_raw(keys[0], "\xc3\x01not avro at all", 17, "reward");
        send_bad_tip(keys[1], "amount", json_integer(0), "Reward");
        send_bad_tip(keys[2], "amount", json_integer(-250), "Reward");
        send_bad_tip(keys[3], "audience_id", json_string(""), "Reward");
        send_bad_tip(keys[4], NULL, NULL, "StreamBegin");
        send_bad_tip(keys[5], "audience_gender", json_string("robot"), "Reward");
        send_new_tips(3, 1, 3);
        expect_recharge(1);
        expect_redis(1);

        read_dead_letters(dl, 6, WAIT_MS);
        for (int i = 0; i < 6; i++) {
                cr_assert(dl[i].is_found,
                          "%s: no dead letter naming \"%s\"; the last of %d says \"%s\" (log %s)",
                          keys[i], why[i], dl[i].count, dl[i].message, fx.w.log_path);
                cr_assert_str_eq(dl[i].error_class, "permanent", "%s", keys[i]);
        }
        cr_assert_eq(
                support_query_int(fx.w.mysql,
                                  "SELECT COUNT(*) FROM recharge WHERE anchor_id LIKE '%s\\_bad%%'",
                                  fx.w.prefix),
                0);
        stop_consumer_expect_clean_exit();
}
