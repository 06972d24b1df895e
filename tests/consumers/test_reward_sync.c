/*
 * test_reward_sync.c: the reward-sync role, run as its binary against the real fixtures.
 * Every expectation is computed from the tips the test sent: recharge, the Redis room and
 * session figures and live_room_realtime equal their sums, whatever is duplicated, replayed,
 * cut away or killed; malformed tips go to live.reward.dlq.
 *
 * Each test has its own database and its own Redis database number, so the figures of one
 * test's consumer (which also reads the other tests' tips from live.reward) never meet another's.
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

#define MAX_ROOMS     4
#define MAX_AUDIENCES 20
#define MAX_TIPS      700
#define WAIT_MS       60000

/* One tip as the test sends it; room and audience index fx's names. */
struct sent_tip {
        char tip_id[64];
        int room, audience;
        long long amount, gift_count, ts_ms;
        const char *audience_gender, *anchor_gender, *audience_type; /* NULL: absent */
};

/* What one room's figures must be, from the distinct tips sent to it. */
struct room_want {
        long long earnings, count, gifts;
        long long by_audience[MAX_AUDIENCES];
        int payers;
};

static struct {
        char prefix[24];
        char group[96];
        char log_path[256];
        char mysql_url[512];
        char redis_url[300];           /* what the consumer connects to (maybe through the relay) */
        long long sessions[MAX_ROOMS]; /* the room's live session; 0: not live */
        unsigned rand_state;
        pid_t pid;
        int admin_port;
        rd_kafka_t *producer;
        struct codec *codec;
        MYSQL *mysql;
        redisContext *redis;
        struct support_proxy *proxy;
} fx;

/* The test's names, all starting with fx.prefix. */
static struct {
        char rooms[MAX_ROOMS][64], anchors[MAX_ROOMS][64], audiences[MAX_AUDIENCES][64];
} ids;

/* Every distinct tip the test sent, in order. */
static struct {
        struct sent_tip tips[MAX_TIPS];
        int tip_cnt;
} sent;

static void setup(void)
{
        char err[256];

        support_unique_name("rw", fx.prefix, sizeof(fx.prefix));
        snprintf(fx.group, sizeof(fx.group), "test.%s", fx.prefix);
        snprintf(fx.log_path, sizeof(fx.log_path), "/tmp/%s.consumer.log", fx.prefix);
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        fx.mysql = support_mysql_connect(fx.mysql_url);
        fx.producer = support_producer();
        cr_assert((fx.codec = codec_new(err, sizeof(err))) != NULL, "%s", err);
        for (int i = 0; i < MAX_ROOMS; i++) {
                snprintf(ids.rooms[i], sizeof(ids.rooms[i]), "%s_room%d", fx.prefix, i);
                snprintf(ids.anchors[i], sizeof(ids.anchors[i]), "%s_anchor%d", fx.prefix, i);
        }
        for (int i = 0; i < MAX_AUDIENCES; i++)
                snprintf(ids.audiences[i], sizeof(ids.audiences[i]), "%s_fan%02d", fx.prefix, i);
        fx.rand_state = (unsigned)getpid();
        cr_log_info("%s: amounts seeded with %u", fx.prefix, fx.rand_state);
}

static void teardown(void)
{
        if (fx.pid > 0 && support_wait_exit(fx.pid, 0) == -1) {
                kill(fx.pid, SIGKILL);
                support_wait_exit(fx.pid, 5000);
        }
        if (fx.producer)
                rd_kafka_destroy(fx.producer);
        codec_destroy(fx.codec);
        if (fx.mysql)
                mysql_close(fx.mysql);
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
        redisReply *r;

        fx.redis = redisConnect("127.0.0.1", port);
        cr_assert(fx.redis && !fx.redis->err);
        r = redisCommand(fx.redis, "SELECT %d", db);
        cr_assert(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        r = redisCommand(fx.redis, "FLUSHDB");
        cr_assert(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
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
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s", fx.redis_url);
        fx.admin_port = support_free_port();
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", fx.admin_port);
        /* Tests run in parallel: each needs every partition, so each gets its own group. */
        snprintf(e_group, sizeof(e_group), "LIVEFLOW_GROUP_ID=%s", fx.group);
        snprintf(e_tips, sizeof(e_tips), "LIVEFLOW_REWARD_FLUSH_TIPS=%lld", flush_tips);
        snprintf(e_secs, sizeof(e_secs), "LIVEFLOW_REWARD_FLUSH_S=%lld", flush_s);
        fx.pid = support_spawn(argv, env, fx.log_path);
        cr_assert(support_wait_ready(fx.admin_port, 20000) == 0, "consumer not ready; see %s",
                  fx.log_path);
}

static void stop_consumer_expect_clean_exit(void)
{
        cr_assert(kill(fx.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.pid, 20000), 0, "consumer did not drain cleanly; see %s",
                     fx.log_path);
        fx.pid = 0;
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
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
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
        snprintf(t->tip_id, sizeof(t->tip_id), "%s_tip%d", fx.prefix, sent.tip_cnt);
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
        cr_assert(codec_encode(fx.codec, &env, "Reward", payload, buf, len, err, sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
}

/* Produces a value keyed like the receiver (anchor_id), without waiting for the ack. */
static void produce_raw(const char *key, const void *value, size_t len, const char *event_type)
{
        cr_assert(rd_kafka_producev(
                          fx.producer, RD_KAFKA_V_TOPIC("live.reward"),
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

static void flush(void)
{
        cr_assert(rd_kafka_flush(fx.producer, 20000) == 0);
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

/* ------------------------------------------------------------------ expectations */

/* Sums the distinct tips sent to each room: sent.tips holds each tip once. */
static void want_rooms(struct room_want want[MAX_ROOMS])
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

static long long redis_int(const char *fmt, const char *arg)
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
static void expect_redis(int rooms)
{
        struct room_want want[MAX_ROOMS];
        char why[256] = "";
        long long deadline = support_now_ms() + WAIT_MS;

        want_rooms(want);
        while (!rooms_match(rooms, want, why, sizeof(why)) && support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert(rooms_match(rooms, want, why, sizeof(why)), "%s (log %s)", why, fx.log_path);
}

static long long recharge_rows(void)
{
        return support_query_int(
                fx.mysql, "SELECT COUNT(*) FROM recharge WHERE room_id LIKE '%s\\_%%'", fx.prefix);
}

static void wait_recharge_rows(long long want)
{
        long long deadline = support_now_ms() + WAIT_MS;

        while (recharge_rows() < want && support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert_eq(recharge_rows(), want, "recharge rows (log %s)", fx.log_path);
}

/* recharge holds each distinct tip once, with the amounts sent. */
static void expect_recharge(int rooms)
{
        struct room_want want[MAX_ROOMS];

        want_rooms(want);
        wait_recharge_rows(sent.tip_cnt);
        for (int i = 0; i < rooms; i++) {
                const char *room = ids.rooms[i];

                cr_assert_eq(support_query_int(
                                     fx.mysql,
                                     "SELECT SUM(amount) FROM recharge WHERE room_id = '%s'", room),
                             want[i].earnings, "room %d recharge sum", i);
                cr_assert_eq(support_query_int(fx.mysql,
                                               "SELECT COUNT(*) FROM recharge WHERE room_id = '%s'",
                                               room),
                             want[i].count, "room %d recharge rows", i);
        }
}

/* live_room_realtime's row for a room; 0 and 0 without one. */
static void realtime_row(int room, long long *earnings, long long *count)
{
        *earnings = support_query_int(
                fx.mysql, "SELECT earnings FROM live_room_realtime WHERE room_id = '%s'",
                ids.rooms[room]);
        *count = support_query_int(
                fx.mysql, "SELECT recharge_count FROM live_room_realtime WHERE room_id = '%s'",
                ids.rooms[room]);
}

/* Waits until live_room_realtime counts at least `count` tips of the room. */
static void wait_folded(int room, long long at_least, long long *earnings, long long *count)
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
static long long first_tips_sum(int room, long long n)
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

static void expect_realtime(int rooms)
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
                     fx.log_path);
}

/* The counter of the consumer's /metrics line that starts with `series`, or -1. */
static long long scrape(const char *series)
{
        char cmd[256], out[64] = "";
        FILE *p;

        snprintf(
                cmd, sizeof(cmd),
                "curl -sf http://127.0.0.1:%d/metrics | grep -v '^#' | grep -F '%s ' | awk '{print $2}'",
                fx.admin_port, series);
        if (!(p = popen(cmd, "r")))
                return -1;
        if (!fgets(out, sizeof(out), p))
                out[0] = '\0';
        pclose(p);
        return out[0] ? atoll(out) : -1;
}

/* ------------------------------------------------------------------ dead letters */

/*
 * What live.reward.dlq holds for one key from this test's consumer, up to and including the
 * first record whose dlq.error.message contains `until`: how many, and that record's error.
 */
struct dead_letter {
        const char *key;
        const char *until;
        int count;
        bool is_found;
        char error_class[32];
        char message[512];
};

static void header(rd_kafka_message_t *m, const char *name, char *out, size_t out_size)
{
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t len;

        if (rd_kafka_message_headers(m, &h) == 0 &&
            rd_kafka_header_get_last(h, name, &v, &len) == 0)
                snprintf(out, out_size, "%.*s", (int)len, (const char *)v);
}

/*
 * Reads live.reward.dlq until every key's `until` record was seen or timeout_ms passed, counting
 * only this test's group (the other tests' consumers dead-letter the same records). A key's
 * records are in one partition, in the order they were dead-lettered.
 */
static void read_dead_letters(struct dead_letter *dl, int n, int timeout_ms)
{
        char err[256], group[64];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
        long long deadline = support_now_ms() + timeout_ms;
        rd_kafka_t *rk;
        int missing = n;

        support_unique_name("dlq", group, sizeof(group));
        rd_kafka_conf_set(conf, "bootstrap.servers",
                          support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err, sizeof(err));
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
        rd_kafka_conf_set(conf, "session.timeout.ms", "3000", err, sizeof(err));
        rd_kafka_conf_set(conf, "heartbeat.interval.ms", "500", err, sizeof(err));
        cr_assert((rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) != NULL, "%s",
                  err);
        rd_kafka_poll_set_consumer(rk);
        rd_kafka_topic_partition_list_add(t, "live.reward.dlq", RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, t);
        rd_kafka_topic_partition_list_destroy(t);
        while (missing > 0 && support_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                char from[96] = "";

                if (!m)
                        continue;
                if (!m->err)
                        header(m, "dlq.group", from, sizeof(from));
                for (int i = 0; i < n && strcmp(from, fx.group) == 0; i++) {
                        if (dl[i].is_found || m->key_len != strlen(dl[i].key) ||
                            memcmp(m->key, dl[i].key, m->key_len) != 0)
                                continue;
                        dl[i].count++;
                        header(m, "dlq.error.class", dl[i].error_class, sizeof(dl[i].error_class));
                        header(m, "dlq.error.message", dl[i].message, sizeof(dl[i].message));
                        if (strstr(dl[i].message, dl[i].until)) {
                                dl[i].is_found = true;
                                missing--;
                        }
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
}

/* A malformed record keyed `key`: a valid tip with `field` replaced, or another payload type. */
static void send_bad_tip(const char *key, const char *field, json_t *value,
                         const char *payload_name)
{
        char tip_id[96], err[256], event_id[65];
        json_t *payload;
        void *buf;
        size_t len;

        snprintf(tip_id, sizeof(tip_id), "%s_tip", key);
        if (strcmp(payload_name, "Reward") == 0)
                payload =
                        json_pack("{s:s,s:s,s:s,s:s,s:I,s:n,s:I,s:I}", "tip_id", tip_id,
                                  "audience_id", ids.audiences[0], "anchor_id", key, "room_id",
                                  ids.rooms[0], "amount", (json_int_t)100, "gift_id", "gift_count",
                                  (json_int_t)1, "ts_ms", (json_int_t)1700000000000LL);
        else
                payload = json_object(); /* e.g. a StreamBegin: every field optional */
        cr_assert(payload);
        if (field)
                json_object_set_new(payload, field, value);
        crypto_sha256_hex(tip_id, strlen(tip_id), event_id);
        struct envelope env = {
                .event_id = event_id,
                .vendor = "internal",
                .event_type = "reward",
                .anchor_id = key,
                .room_id = ids.rooms[0],
                .event_time_ms = 1700000000000LL,
                .receive_time_ms = 1700000000005LL,
                .trace_id = "0123456789abcdef0123456789abcdef",
                .raw = "{}",
                .raw_len = 2,
        };
        cr_assert(codec_encode(fx.codec, &env, payload_name, payload, &buf, &len, err,
                               sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        produce_raw(key, buf, len, "reward");
        free(buf);
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
                        fx.mysql, got, sizeof(got),
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
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT amount FROM recharge WHERE trace_id = '%s'",
                                       first->tip_id),
                     first->amount, "the first post's amount stays");
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
                              fx.log_path);
                cr_assert_eq(earnings, first_tips_sum(i, count), "room %d: the first %lld tips", i,
                             count);
        }
        support_sleep_ms(2500); /* two more ticks: the small room must still wait */
        /* The sync backlog counts the small room's 5 tips (and whatever else the group read). */
        cr_assert_geq(scrape("liveflow_reward_realtime_pending"), 5, "(log %s)", fx.log_path);
        cr_assert_eq(
                support_query_int(fx.mysql,
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
                          ids.anchors[i], fx.log_path);
                cr_assert_eq(dl[i].count, 1,
                             "%s: %d dead letters, want only the malformed one; the last says "
                             "\"%s\" (log %s)",
                             ids.anchors[i], dl[i].count, dl[i].message, fx.log_path);
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
        cr_assert_eq(scrape("liveflow_redis_data_lost_total"), 2, "(log %s)", fx.log_path);

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
        cr_assert(kill(fx.pid, SIGKILL) == 0);
        support_wait_exit(fx.pid, 5000);
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
                snprintf(keys[i], sizeof(keys[i]), "%s_bad%d", fx.prefix, i);
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
                          keys[i], why[i], dl[i].count, dl[i].message, fx.log_path);
                cr_assert_str_eq(dl[i].error_class, "permanent", "%s", keys[i]);
        }
        cr_assert_eq(
                support_query_int(fx.mysql,
                                  "SELECT COUNT(*) FROM recharge WHERE anchor_id LIKE '%s\\_bad%%'",
                                  fx.prefix),
                0);
        stop_consumer_expect_clean_exit();
}
