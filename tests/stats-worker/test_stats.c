/*
 * test_stats.c: liveflow-stats as its binary on the real MariaDB and Redis fixtures. Each test
 * has a Kafka mock cluster of its own, so no other test's tips reach its ledger (profiles rank
 * every spender) and the group keeps its real name, and a Redis database of its own, because
 * the profiling lock's key names only the period. Expectations are computed here from what
 * each test sent, by the rules that the stats worker's headers document.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"

#define MAX_WORKERS 2
#define MAX_ENV     24
#define HOUR_MS     3600000LL
#define TRACE       "0123456789abcdef0123456789abcdef"

struct worker {
        pid_t pid;
        int admin_port;
        char log[256];
};

static struct {
        char prefix[48];
        char mysql_url[512];
        char bootstrap[256];
        int redis_db;
        rd_kafka_t *mock_rk; /* the handle the mock cluster lives on */
        rd_kafka_mock_cluster_t *mc;
        rd_kafka_t *producer;
        struct codec *codec;
        MYSQL *mysql;
        redisContext *redis;
        struct worker workers[MAX_WORKERS];
} fx;

static const char *const topics[] = {"live.reward",     "live.viewer",     "live.session",
                                     "live.reward.dlq", "live.viewer.dlq", "live.session.dlq"};

static void setup(void)
{
        char err[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();

        support_unique_name("sw", fx.prefix, sizeof(fx.prefix));
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        fx.mysql = support_mysql_connect(fx.mysql_url);
        fx.redis = redisConnect("127.0.0.1", atoi(support_fixture("LIVEFLOW_TEST_REDIS_PORT")));
        cr_assert(fx.redis && !fx.redis->err);
        cr_assert((fx.mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) != NULL,
                  "%s", err);
        cr_assert((fx.mc = rd_kafka_mock_cluster_new(fx.mock_rk, 1)) != NULL);
        snprintf(fx.bootstrap, sizeof(fx.bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(fx.mc));
        for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
                cr_assert(rd_kafka_mock_topic_create(fx.mc, topics[i], 3, 1) == 0);
        conf = rd_kafka_conf_new();
        cr_assert(rd_kafka_conf_set(conf, "bootstrap.servers", fx.bootstrap, err, sizeof(err)) ==
                  RD_KAFKA_CONF_OK);
        cr_assert(rd_kafka_conf_set(conf, "acks", "all", err, sizeof(err)) == RD_KAFKA_CONF_OK);
        cr_assert((fx.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) != NULL,
                  "%s", err);
        cr_assert((fx.codec = codec_new(err, sizeof(err))) != NULL, "%s", err);
}

static void teardown(void)
{
        for (int i = 0; i < MAX_WORKERS; i++) {
                if (fx.workers[i].pid > 0 && support_wait_exit(fx.workers[i].pid, 0) == -1) {
                        kill(fx.workers[i].pid, SIGKILL);
                        support_wait_exit(fx.workers[i].pid, 5000);
                }
        }
        if (fx.producer)
                rd_kafka_destroy(fx.producer);
        if (fx.mc)
                rd_kafka_mock_cluster_destroy(fx.mc);
        if (fx.mock_rk)
                rd_kafka_destroy(fx.mock_rk);
        codec_destroy(fx.codec);
        if (fx.mysql)
                mysql_close(fx.mysql);
        if (fx.redis)
                redisFree(fx.redis);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(stats, .init = setup, .fini = teardown, .timeout = 240);

/* ------------------------------------------------------------------ helpers */

static long long wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The test's own id for a suffix: "<prefix>_<suffix>". */
static void id_of(char *out, size_t out_size, const char *suffix)
{
        snprintf(out, out_size, "%s_%s", fx.prefix, suffix);
}

/* Selects the test's own Redis database, empty, for its workers and itself. */
static void use_redis_db(int db)
{
        redisReply *r;

        fx.redis_db = db;
        r = redisCommand(fx.redis, "SELECT %d", db);
        cr_assert(r && r->type == REDIS_REPLY_STATUS, "SELECT %d", db);
        freeReplyObject(r);
        r = redisCommand(fx.redis, "FLUSHDB");
        cr_assert(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
}

/* Starts worker i with the fixtures' settings plus the NULL-terminated "K=V" list extra. */
/* Starts worker i without waiting for it: its first profile run may start before it is ready. */
static void spawn_worker(int i, const char *const extra[])
{
        struct worker *w = &fx.workers[i];
        char bin[512], e_boot[320], e_mysql[600], e_redis[300], e_admin[64], e_inst[96],
                log[sizeof(w->log)];
        char *argv[] = {bin, NULL};
        static int starts; /* a restarted worker gets a log of its own */
        char *env[MAX_ENV] = {e_boot,
                              e_mysql,
                              e_redis,
                              e_admin,
                              e_inst,
                              (char *)"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000",
                              (char *)"LIVEFLOW_RETRY_BACKOFF_MS=50"};
        size_t n = 7;

        for (size_t k = 0; extra && extra[k]; k++) {
                cr_assert(n < MAX_ENV - 1);
                env[n++] = (char *)extra[k];
        }
        env[n] = NULL;
        support_bin_path("liveflow-stats", bin, sizeof(bin));
        w->admin_port = support_free_port();
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s", fx.bootstrap);
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%s/%d",
                 support_fixture("LIVEFLOW_TEST_REDIS_PORT"), fx.redis_db);
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", w->admin_port);
        snprintf(e_inst, sizeof(e_inst), "LIVEFLOW_INSTANCE_ID=%s-%d", fx.prefix, i);
        snprintf(log, sizeof(log), "/tmp/%s.stats%d.%d.log", fx.prefix, i, ++starts);
        memcpy(w->log, log,
               sizeof(w->log)); /* copied: -Wrestrict sees fx on both sides of one snprintf */
        w->pid = support_spawn(argv, env, w->log);
}

static void start_worker(int i, const char *const extra[])
{
        spawn_worker(i, extra);
        cr_assert(support_wait_ready(fx.workers[i].admin_port, 30000) == 0,
                  "stats worker %d not ready; see %s", i, fx.workers[i].log);
}

/* Waits until `needle` is in the log file. */
static bool wait_log(const char *path, const char *needle, int timeout_ms)
{
        long long deadline = support_now_ms() + timeout_ms;

        while (support_now_ms() < deadline) {
                char *text = support_read_file(path, NULL);
                bool found = text && strstr(text, needle);

                free(text);
                if (found)
                        return true;
                support_sleep_ms(5);
        }
        return false;
}

static void stop_worker_expect_clean_exit(int i)
{
        struct worker *w = &fx.workers[i];

        /* librdkafka 2.0.2 aborts when a cooperative-sticky consumer is destroyed before its
         * first assignment (librdkafka #4312, fixed in 2.3.0): stop only an assigned worker. */
        cr_assert(wait_log(w->log, "assigned ", 30000),
                  "stats worker %d never got partitions; see %s", i, w->log);
        cr_assert(kill(w->pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(w->pid, 20000), 0,
                     "stats worker %d did not drain cleanly; see %s", i, w->log);
        w->pid = 0;
}

/* The value of a worker's /metrics series (name{labels} as rendered), or -1 when absent. */
static long long scrape(int i, const char *series)
{
        char cmd[512], out[64] = "";
        FILE *p;

        snprintf(
                cmd, sizeof(cmd),
                "curl -sf http://127.0.0.1:%d/metrics | grep -v '^#' | grep -F '%s' | awk '{print $2}'",
                fx.workers[i].admin_port, series);
        if (!(p = popen(cmd, "r")))
                return -1;
        if (!fgets(out, sizeof(out), p))
                out[0] = '\0';
        pclose(p);
        return out[0] ? atoll(out) : -1;
}

/* Runs a statement that returns no rows; fails the test on a SQL error. */
static void exec_sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void exec_sql(const char *fmt, ...)
{
        char sql[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.mysql));
}

/* Waits until the query's integer is at least want. */
static void wait_at_least(long long want, int timeout_ms, const char *what, const char *sql)
{
        long long deadline = support_now_ms() + timeout_ms, got = 0;

        while (support_now_ms() < deadline) {
                if ((got = support_query_int(fx.mysql, "%s", sql)) >= want)
                        return;
                support_sleep_ms(50);
        }
        cr_assert_fail("%s: %lld, want %lld (log %s)", what, got, want, fx.workers[0].log);
}

/* ------------------------------------------------------------------ producing */

static void produce(const char *topic, const char *key, const struct envelope *env,
                    const char *payload_name, json_t *payload)
{
        char err[256];
        void *buf;
        size_t len;

        cr_assert(codec_encode(fx.codec, env, payload_name, payload, &buf, &len, err,
                               sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        cr_assert(rd_kafka_producev(fx.producer, RD_KAFKA_V_TOPIC(topic),
                                    RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                    RD_KAFKA_V_HEADER("trace_id", TRACE, -1),
                                    RD_KAFKA_V_HEADER("event_type", env->event_type, -1),
                                    RD_KAFKA_V_END) == 0);
}

static void flush(void)
{
        cr_assert(rd_kafka_flush(fx.producer, 20000) == 0);
}

/* One tip as the test describes it; ids are suffixes of the test's prefix. */
struct tip_spec {
        const char *tip, *audience, *anchor;
        long long amount, ts_ms;
        const char *anchor_gender, *audience_gender; /* NULL: absent from the tip */
};

static void produce_tip(const struct tip_spec *t, const char *room_suffix)
{
        char tip[96], audience[96], anchor[96], room[96], key[128], event_id[65];
        json_t *p;

        id_of(tip, sizeof(tip), t->tip);
        id_of(audience, sizeof(audience), t->audience);
        id_of(anchor, sizeof(anchor), t->anchor);
        id_of(room, sizeof(room), room_suffix ? room_suffix : t->anchor);
        snprintf(key, sizeof(key), "reward|%s", tip);
        crypto_sha256_hex(key, strlen(key), event_id);
        p = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "tip_id", tip, "audience_id", audience,
                      "anchor_id", anchor, "room_id", room, "amount", (json_int_t)t->amount,
                      "gift_count", (json_int_t)1, "ts_ms", (json_int_t)t->ts_ms);
        cr_assert(p);
        if (t->anchor_gender)
                json_object_set_new(p, "anchor_gender", json_string(t->anchor_gender));
        if (t->audience_gender)
                json_object_set_new(p, "audience_gender", json_string(t->audience_gender));
        struct envelope env = {
                .event_id = event_id,
                .vendor = "internal",
                .event_type = "reward",
                .anchor_id = anchor,
                .room_id = room,
                .event_time_ms = t->ts_ms,
                .receive_time_ms = t->ts_ms + 5,
                .trace_id = TRACE,
                .raw = "{}",
                .raw_len = 2,
        };
        produce("live.reward", anchor, &env, "Reward", p);
}

/* One viewer event; `n` makes the event id (a second join of a client is another event). */
struct viewer_spec {
        const char *client;
        bool is_join;
        long long at_ms;
        int n;
};

static void produce_viewer(const char *stream, const struct viewer_spec *v)
{
        char client[96], key[256], event_id[65];
        const char *type = v->is_join ? "viewer.join" : "viewer.leave";

        id_of(client, sizeof(client), v->client);
        snprintf(key, sizeof(key), "srs|%s|%s|%s|%d", type, stream, client, v->n);
        crypto_sha256_hex(key, strlen(key), event_id);
        struct envelope env = {
                .event_id = event_id,
                .vendor = "srs",
                .event_type = type,
                .stream_id = stream,
                .event_time_ms = v->at_ms,
                .receive_time_ms = v->at_ms + 5,
                .trace_id = TRACE,
                .raw = "{}",
                .raw_len = 2,
        };
        produce("live.viewer", stream, &env, "Viewer",
                json_pack("{s:s,s:s}", "action", v->is_join ? "join" : "leave", "client_id",
                          client));
}

static void produce_session_end(const char *stream, const char *anchor, long long session,
                                long long started_ms, long long ended_ms)
{
        char key[64], event_id[65];

        snprintf(key, sizeof(key), "session.end|%lld", session);
        crypto_sha256_hex(key, strlen(key), event_id);
        struct envelope env = {
                .event_id = event_id,
                .vendor = "liveflow",
                .event_type = "session.end",
                .stream_id = stream,
                .anchor_id = anchor,
                .room_id = anchor,
                .event_time_ms = ended_ms,
                .receive_time_ms = ended_ms,
                .trace_id = TRACE,
                .raw = "{}",
                .raw_len = 2,
        };
        produce("live.session", stream, &env, "SessionEnd",
                json_pack("{s:I,s:I,s:I,s:I,s:i}", "session_id", (json_int_t)session,
                          "started_at_ms", (json_int_t)started_ms, "ended_at_ms",
                          (json_int_t)ended_ms, "duration_s",
                          (json_int_t)((ended_ms - started_ms) / 1000), "close_method", 1));
}

/* ------------------------------------------------------------------ hourly_reward_stats */

/* A gender on file: what the tables said at the start, then what tips stated. */
struct on_file {
        const char *id;
        const char *gender;
};

static const char *file_gender(const struct on_file *f, size_t n, const char *id)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(f[i].id, id) == 0)
                        return f[i].gender;
        return "unknown";
}

static bool is_stated(const char *g)
{
        return g && (strcmp(g, "male") == 0 || strcmp(g, "female") == 0);
}

struct hour_row {
        long long hour_s;
        const char *anchor, *anchor_gender, *audience_gender;
        long long amount_sum, reward_count;
};

/*
 * The rule of tips.h, in the order the tips were sent (a tip's audience gender goes on file
 * for that audience's later tips; the test sends those to one anchor, so one partition keeps
 * their order): hour of ts_ms, the tip's gender when male/female, else the file's, else unknown.
 */
static size_t expect_hours(const struct tip_spec *tips, size_t n, const struct on_file *anchors,
                           size_t anchor_cnt, struct on_file *audiences, size_t audience_cnt,
                           size_t audience_cap, struct hour_row *rows)
{
        size_t row_cnt = 0;

        for (size_t i = 0; i < n; i++) {
                const struct tip_spec *t = &tips[i];
                const char *ag = is_stated(t->anchor_gender)
                                         ? t->anchor_gender
                                         : file_gender(anchors, anchor_cnt, t->anchor);
                const char *ug = is_stated(t->audience_gender)
                                         ? t->audience_gender
                                         : file_gender(audiences, audience_cnt, t->audience);
                long long hour_s = t->ts_ms / HOUR_MS * 3600;
                size_t r = 0;

                if (is_stated(t->audience_gender)) {
                        cr_assert(audience_cnt < audience_cap);
                        /* Prepended so the newest statement wins the lookup. */
                        memmove(&audiences[1], &audiences[0], audience_cnt * sizeof(*audiences));
                        audiences[0] = (struct on_file){t->audience, t->audience_gender};
                        audience_cnt++;
                }
                while (r < row_cnt &&
                       !(rows[r].hour_s == hour_s && strcmp(rows[r].anchor, t->anchor) == 0 &&
                         strcmp(rows[r].anchor_gender, ag) == 0 &&
                         strcmp(rows[r].audience_gender, ug) == 0))
                        r++;
                if (r == row_cnt)
                        rows[row_cnt++] = (struct hour_row){hour_s, t->anchor, ag, ug, 0, 0};
                rows[r].amount_sum += t->amount;
                rows[r].reward_count++;
        }
        return row_cnt;
}

static void assert_hours(const struct hour_row *rows, size_t n)
{
        char anchor[96], got[64], want[64];

        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM hourly_reward_stats"),
                     (long long)n,
                     "hourly_reward_stats has another number of rows than the %zu expected", n);
        for (size_t i = 0; i < n; i++) {
                id_of(anchor, sizeof(anchor), rows[i].anchor);
                support_query1(
                        fx.mysql, got, sizeof(got),
                        "SELECT CONCAT(amount_sum, '/', reward_count) FROM hourly_reward_stats WHERE "
                        "hour = FROM_UNIXTIME(%lld) AND anchor_id = '%s' AND anchor_gender = '%s' AND "
                        "audience_gender = '%s'",
                        rows[i].hour_s, anchor, rows[i].anchor_gender, rows[i].audience_gender);
                snprintf(want, sizeof(want), "%lld/%lld", rows[i].amount_sum, rows[i].reward_count);
                cr_assert_str_eq(got, want, "hour %lld anchor %s %s/%s", rows[i].hour_s,
                                 rows[i].anchor, rows[i].anchor_gender, rows[i].audience_gender);
        }
}

Test(stats, hourly_sums_are_exact_across_hours_and_genders_and_a_replay_changes_nothing)
{
        const long long h = 1767225600000LL; /* 2026-01-01T00:00:00Z */
        const struct tip_spec tips[] = {
                {"t1", "um", "af", 100, h + 10 * 60000, NULL, NULL}, /* genders from file / file */
                {"t2", "ux", "af", 250, h + HOUR_MS - 1, NULL, "female"}, /* last ms of the hour */
                {"t3", "ux", "af", 7, h + HOUR_MS, NULL, NULL}, /* first ms of the next; learned */
                {"t4", "uy", "an", 1000, h + HOUR_MS + 1800000, "male", "unknown"},
                {"t5", "um", "an", 40, h + 2 * HOUR_MS - 1, NULL, NULL}, /* anchor not on file */
                {"t6", "um", "an", 60, h + HOUR_MS + 300000, NULL, NULL},
                {"t7", "uz", "af", 5, h + 10 * 60000, "male", NULL}, /* the tip beats the file */
                {"t8", "uw", "an", 3, h + 3 * HOUR_MS, "female", "female"},
                /* After the replay below, so that their arrival says the replay was applied. */
                {"s1", "um", "af", 11, h + 3 * HOUR_MS, NULL, NULL},
                {"s2", "um", "an", 13, h + 3 * HOUR_MS, NULL, NULL},
        };
        const size_t first = 8, all = sizeof(tips) / sizeof(tips[0]);
        const struct on_file anchors[] = {{"af", "female"}};
        struct on_file audiences[16] = {{"um", "male"}};
        struct hour_row rows[16];
        char af[96], um[96];
        size_t n;

        use_redis_db(1);
        id_of(af, sizeof(af), "af");
        id_of(um, sizeof(um), "um");
        exec_sql("INSERT INTO anchors (anchor_id, gender) VALUES ('%s', 'female')", af);
        exec_sql("INSERT INTO audiences (audience_id, gender) VALUES ('%s', 'male')", um);
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_INTERVAL_S=3600", NULL});

        for (size_t i = 0; i < first; i++)
                produce_tip(&tips[i], NULL);
        flush();
        wait_at_least((long long)first, 30000, "tips in the ledger",
                      "SELECT COUNT(*) FROM stats_tip");
        n = expect_hours(tips, first, anchors, 1, audiences, 1, 16, rows);
        assert_hours(rows, n);

        /* Every tip again, then two new ones on the same anchors (so the same partitions). */
        for (size_t i = 0; i < first; i++)
                produce_tip(&tips[i], NULL);
        for (size_t i = first; i < all; i++)
                produce_tip(&tips[i], NULL);
        flush();
        wait_at_least((long long)all, 30000, "tips in the ledger",
                      "SELECT COUNT(*) FROM stats_tip");
        audiences[0] = (struct on_file){"um", "male"};
        n = expect_hours(tips, all, anchors, 1, audiences, 1, 16, rows);
        assert_hours(rows, n);
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM stats_tip"), (long long)all);
        stop_worker_expect_clean_exit(0);
}

/* ------------------------------------------------------------------ audience_profile */

struct spender {
        char audience[96];
        long long total;
};

static const char *expected_level(long long at_most, long long spenders, long long high_pct,
                                  long long mid_pct)
{
        if (100 * at_most > high_pct * spenders)
                return "high";
        return 100 * at_most > mid_pct * spenders ? "mid" : "low";
}

/* Checks every spender's row by the rule of profile.h. */
static void assert_profile(const struct spender *s, size_t n, long long high_pct, long long mid_pct)
{
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM audience_profile"),
                     (long long)n);
        for (size_t i = 0; i < n; i++) {
                long long at_most = 0;
                char level[16], pct[32];

                for (size_t j = 0; j < n; j++)
                        at_most += s[j].total <= s[i].total;
                cr_assert_eq(
                        support_query_int(
                                fx.mysql,
                                "SELECT total_amount FROM audience_profile WHERE audience_id = '%s'",
                                s[i].audience),
                        s[i].total, "%s", s[i].audience);
                support_query1(fx.mysql, level, sizeof(level),
                               "SELECT level FROM audience_profile WHERE audience_id = '%s'",
                               s[i].audience);
                cr_assert_str_eq(level, expected_level(at_most, (long long)n, high_pct, mid_pct),
                                 "%s total %lld", s[i].audience, s[i].total);
                support_query1(fx.mysql, pct, sizeof(pct),
                               "SELECT percentile FROM audience_profile WHERE audience_id = '%s'",
                               s[i].audience);
                cr_assert(fabs(atof(pct) - 100.0 * (double)at_most / (double)n) < 0.0006,
                          "%s percentile %s", s[i].audience, pct);
        }
}

/* Sends each spender's total as two tips to one of three anchors; returns the tip count. */
static size_t produce_spenders(struct spender *s, const long long *totals, size_t n,
                               const char *tag)
{
        size_t tips = 0;

        for (size_t i = 0; i < n; i++) {
                char tip_a[32], tip_b[32], audience[32], anchor[32];

                snprintf(audience, sizeof(audience), "%s%02zu", tag, i);
                snprintf(anchor, sizeof(anchor), "%sa%zu", tag, i % 3);
                snprintf(tip_a, sizeof(tip_a), "%s%02zu_a", tag, i);
                snprintf(tip_b, sizeof(tip_b), "%s%02zu_b", tag, i);
                id_of(s[i].audience, sizeof(s[i].audience), audience);
                s[i].total = totals[i];
                produce_tip(&(struct tip_spec){tip_a, audience, anchor, totals[i] / 2,
                                               1767225600000LL + (long long)i, NULL, NULL},
                            NULL);
                produce_tip(&(struct tip_spec){tip_b, audience, anchor, totals[i] - totals[i] / 2,
                                               1767229200000LL + (long long)i, NULL, NULL},
                            NULL);
                tips += 2;
        }
        flush();
        return tips;
}

/* Waits for a run that started after `after_ms` (wall clock), i.e. saw the ledger as it is. */
static void wait_run_after(long long after_ms, int timeout_ms)
{
        char sql[256];

        snprintf(
                sql, sizeof(sql),
                "SELECT COUNT(*) FROM stats_profile_run WHERE started_at >= FROM_UNIXTIME(%lld / 1000)",
                after_ms);
        wait_at_least(1, timeout_ms, "profile runs after the ledger was complete", sql);
}

Test(stats, profile_levels_follow_the_percentile_bands)
{
        /* Ties at 50 and at the top; HIGH 80 and MID 40 rather than the defaults. */
        static const long long totals[] = {10,  20,  30,  40,  50,  50,  70,  80,  90,  100,
                                           110, 120, 130, 140, 150, 160, 170, 180, 500, 500};
        const size_t n = sizeof(totals) / sizeof(totals[0]);
        struct spender s[sizeof(totals) / sizeof(totals[0])];
        size_t tips;

        use_redis_db(2);
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_INTERVAL_S=2",
                                              "LIVEFLOW_STATS_PROFILE_HIGH_PCT=80",
                                              "LIVEFLOW_STATS_PROFILE_MID_PCT=40", NULL});
        tips = produce_spenders(s, totals, n, "p");
        wait_at_least((long long)tips, 30000, "tips in the ledger",
                      "SELECT COUNT(*) FROM stats_tip");
        wait_run_after(wall_ms(), 20000);
        assert_profile(s, n, 80, 40);
        stop_worker_expect_clean_exit(0);
}

/* How many lines of a worker's log contain needle. */
static long long count_log_lines(int i, const char *needle)
{
        char *text = support_read_file(fx.workers[i].log, NULL);
        long long n = 0;

        cr_assert(text, "no log %s", fx.workers[i].log);
        for (const char *p = text; (p = strstr(p, needle)); p++)
                n++;
        free(text);
        return n;
}

/* Milliseconds into the day of a log line's timestamp ("2026-01-01T12:34:56.789Z ..."). */
static long long log_line_ms(const char *line)
{
        int h, m, sec, ms;

        if (sscanf(line, "%*d-%*d-%*dT%d:%d:%d.%dZ", &h, &m, &sec, &ms) != 4)
                return -1;
        return ((h * 60LL + m) * 60 + sec) * 1000 + ms;
}

/* The longest profile run in a worker's log, from its "started" line to its "done" or "failed". */
static long long longest_run_ms(int i)
{
        char *text = support_read_file(fx.workers[i].log, NULL);
        long long started = -1, longest = 0;

        cr_assert(text, "no log %s", fx.workers[i].log);
        for (char *line = text, *next; line && *line; line = next) {
                long long t = log_line_ms(line);

                if ((next = strchr(line, '\n')))
                        *next++ = '\0';
                if (strstr(line, "profile run started")) {
                        started = t;
                } else if (started >= 0 && t >= started &&
                           (strstr(line, "profile run done") ||
                            strstr(line, "profile run failed"))) {
                        if (t - started > longest)
                                longest = t - started;
                        started = -1;
                }
        }
        free(text);
        return longest;
}

/* Puts `rows` tips of `audiences` spenders straight into the ledger; @returns their sum. */
static long long fill_ledger(long long rows, long long audiences)
{
        long long sum = 0;

        exec_sql(
                "INSERT INTO stats_tip (trace_id, event_id, audience_id, anchor_id, room_id, amount, gift_count, "
                "anchor_gender, audience_gender, tipped_at, hour) SELECT CONCAT('k', seq), 'x', CONCAT('%s_u', seq %% %lld), "
                "'x', 'x', 1 + (seq * 7919) %% 10000, 1, 'unknown', 'unknown', NOW(3), NOW() FROM seq_1_to_%lld",
                fx.prefix, audiences, rows);
        for (long long seq = 1; seq <= rows; seq++)
                sum += 1 + (seq * 7919) % 10000;
        return sum;
}

Test(stats, two_instances_run_each_period_once)
{
        const char *const env[] = {"LIVEFLOW_STATS_PROFILE_INTERVAL_S=4",
                                   "LIVEFLOW_STATS_PROFILE_LOCK_TTL_S=30", NULL};
        long long runs, span, started = 0, failed = 0, done = 0, busy = 0, newer = 0, longest;
        long long deadline;

        use_redis_db(3);
        /* A ledger that takes a run about a second or more, so the other instance's ticks
         * (one a second) fall inside runs and find the lock taken. */
        fill_ledger(300000, 80000);
        spawn_worker(0, env); /* both join at once: one rebalance, not three */
        spawn_worker(1, env);
        for (int i = 0; i < 2; i++)
                cr_assert(support_wait_ready(fx.workers[i].admin_port, 30000) == 0,
                          "stats worker %d not ready; see %s", i, fx.workers[i].log);
        /* Until three periods have run and the instances have met at the lock (a loaded
         * machine stretches the runs, so no fixed time). */
        deadline = support_now_ms() + 120000;
        do {
                support_sleep_ms(200);
                busy = 0;
                for (int i = 0; i < 2; i++)
                        busy += scrape(i, "liveflow_stats_profile_lock_busy_total");
                runs = support_query_int(fx.mysql, "SELECT COUNT(*) FROM stats_profile_run");
        } while ((runs < 3 || busy <= 0) && support_now_ms() < deadline);
        for (int i = 0; i < 2; i++)
                stop_worker_expect_clean_exit(i);
        /* Counted from the logs once both have stopped, so no run falls between two counts. */
        for (int i = 0; i < 2; i++) {
                started += count_log_lines(i, "profile run started");
                failed += count_log_lines(i, "profile run failed");
                done += count_log_lines(i, "profile run done");
                newer += count_log_lines(i, "its profile is newer");
        }
        runs = support_query_int(fx.mysql, "SELECT COUNT(*) FROM stats_profile_run");
        span = support_query_int(fx.mysql,
                                 "SELECT MAX(period) - MIN(period) FROM stats_profile_run");
        cr_assert(runs >= 3, "%lld runs of 4 s periods in 2 minutes (logs %s, %s)", runs,
                  fx.workers[0].log, fx.workers[1].log);
        cr_assert(busy > 0, "the instances never met at the lock");
        /*
         * Every period between the first and the last ran, and apart from runs that failed
         * (and let the period go to whoever tried next), no instance even started a period
         * the other one ran: such a run would end superseded, neither done nor failed. A
         * period passes unrun by design when both instances are in runs longer than a period
         * meanwhile, which only a loaded machine makes of this ledger: then the skipped
         * periods prove nothing and are not counted. A run that ends after the next period's
         * run is dropped (its profile would be older): such a period has no run either.
         */
        longest = longest_run_ms(0) > longest_run_ms(1) ? longest_run_ms(0) : longest_run_ms(1);
        if (longest < 4000)
                cr_assert_eq(span, (runs - 1 + newer) * 4,
                             "periods skipped: %lld runs (%lld dropped) over %lld s", runs, newer,
                             span);
        else
                cr_log_warn("a run took %lld ms, longer than a 4 s period: skipped periods not "
                            "checked (%lld runs over %lld s)",
                            longest, runs, span);
        cr_assert_eq(started - failed - newer, runs,
                     "%lld runs started, %lld failed and %lld ended after a newer period's for "
                     "%lld periods (logs %s, %s)",
                     started, failed, newer, runs, fx.workers[0].log, fx.workers[1].log);
        cr_assert_eq(done, runs);
}

Test(stats, a_period_whose_lock_is_held_elsewhere_waits_for_it)
{
        const long long interval_s = 6;
        long long now, period;
        redisReply *r;

        use_redis_db(4);
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_INTERVAL_S=6", NULL});
        wait_at_least(1, 20000, "a first profile run", "SELECT COUNT(*) FROM stats_profile_run");
        /* The next period, at least 1.5 s away, held by "another instance" (this test). */
        now = wall_ms();
        period = (now / 1000 / interval_s + 1) * interval_s;
        if (period * 1000 - now < 1500)
                period += interval_s;
        r = redisCommand(fx.redis, "SET lock:stats:profile:%lld other-instance NX EX 60", period);
        cr_assert(r && r->type == REDIS_REPLY_STATUS, "the lock was taken already");
        freeReplyObject(r);
        support_sleep_ms((int)(period * 1000 + 3000 - wall_ms()));
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM stats_profile_run WHERE period = %lld",
                                       period),
                     0, "period %lld ran although its lock was held", period);
        cr_assert(scrape(0, "liveflow_stats_profile_lock_busy_total") > 0);

        r = redisCommand(fx.redis, "DEL lock:stats:profile:%lld", period);
        freeReplyObject(r);
        char sql[128];

        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM stats_profile_run WHERE period = %lld",
                 period);
        wait_at_least(1, 2500, "the period's run once the lock was free", sql);
        stop_worker_expect_clean_exit(0);
}

/* The profile as one comparable string (computed_at aside, which every run renews). */
static void profile_text(char *out, size_t out_size)
{
        support_query1(
                fx.mysql, out, out_size,
                "SELECT CONCAT(COUNT(*), ':', COALESCE(GROUP_CONCAT(audience_id, '=', total_amount, '/', level, "
                "'/', percentile ORDER BY audience_id SEPARATOR ','), '')) FROM audience_profile");
}

Test(stats, a_failed_run_leaves_the_previous_profile_and_a_later_one_replaces_it)
{
        static const long long totals[] = {100, 200, 300, 400, 500};
        struct spender s[5];
        char before[4096], after[4096], bad[96], sql[256];
        long long injected_ms;
        size_t tips;

        use_redis_db(5);
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_INTERVAL_S=2", NULL});
        tips = produce_spenders(s, totals, 5, "f");
        wait_at_least((long long)tips, 30000, "tips in the ledger",
                      "SELECT COUNT(*) FROM stats_tip");
        wait_run_after(wall_ms(), 20000);
        assert_profile(s, 5, 90, 50);
        profile_text(before, sizeof(before));

        /* Two tips whose sum no BIGINT holds: the staging insert fails (strict mode). */
        id_of(bad, sizeof(bad), "bad");
        exec_sql(
                "INSERT INTO stats_tip (trace_id, event_id, audience_id, anchor_id, room_id, amount, gift_count, "
                "anchor_gender, audience_gender, tipped_at, hour) SELECT CONCAT('%s', seq), 'x', '%s', 'x', 'x', "
                "5000000000000000000, 1, 'unknown', 'unknown', NOW(3), NOW() FROM seq_1_to_2",
                bad, bad);
        injected_ms = wall_ms();
        {
                long long deadline = support_now_ms() + 20000;

                while (scrape(0, "liveflow_stats_profile_runs_total{outcome=\"failed\"}") < 2 &&
                       support_now_ms() < deadline)
                        support_sleep_ms(100);
        }
        cr_assert(scrape(0, "liveflow_stats_profile_runs_total{outcome=\"failed\"}") >= 2,
                  "the poisoned ledger did not fail two runs (log %s)", fx.workers[0].log);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM stats_profile_run WHERE started_at >= "
                                       "FROM_UNIXTIME(%lld / 1000)",
                                       injected_ms),
                     0);
        profile_text(after, sizeof(after));
        cr_assert_str_eq(after, before, "a failed run changed the profile");

        /* Repaired, the next period's run goes through: the failures left no lock behind. */
        exec_sql("DELETE FROM stats_tip WHERE audience_id = '%s'", bad);
        snprintf(
                sql, sizeof(sql),
                "SELECT COUNT(*) FROM stats_profile_run WHERE started_at >= FROM_UNIXTIME(%lld / 1000)",
                wall_ms());
        wait_at_least(1, 20000, "a run after the repair", sql);
        assert_profile(s, 5, 90, 50);
        stop_worker_expect_clean_exit(0);
}

/* A run of a period older than one with a recorded run (another instance's, or a rebuild) ends
 * superseded: the newer period's profile stays. */
Test(stats, a_run_older_than_a_recorded_newer_period_is_dropped)
{
        /* Two periods ahead, so that the hour may turn meanwhile. */
        const long long newer = wall_ms() / 1000 / 3600 * 3600 + 7200;
        long long deadline, superseded = 0;
        char id[96];

        use_redis_db(8);
        id_of(id, sizeof(id), "n");
        exec_sql(
                "INSERT INTO stats_tip (trace_id, event_id, audience_id, anchor_id, room_id, amount, "
                "gift_count, anchor_gender, audience_gender, tipped_at, hour) VALUES ('%s', 'x', "
                "'%s', 'x', 'x', 700, 1, 'unknown', 'unknown', NOW(3), NOW())",
                id, id);
        exec_sql(
                "INSERT INTO stats_profile_run (interval_s, period, period_start, instance, audiences, "
                "started_at) VALUES (3600, %lld, FROM_UNIXTIME(%lld), 'elsewhere', 1, NOW(3))",
                newer, newer);
        exec_sql("INSERT INTO audience_profile (audience_id, total_amount, percentile, level, "
                 "period_start) VALUES ('%s', 5, 100, 'high', FROM_UNIXTIME(%lld))",
                 id, newer);
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_INTERVAL_S=3600", NULL});
        deadline = support_now_ms() + 30000;
        while ((superseded = scrape(
                        0, "liveflow_stats_profile_runs_total{outcome=\"superseded\"}")) < 1 &&
               scrape(0, "liveflow_stats_profile_runs_total{outcome=\"done\"}") < 1 &&
               support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert_eq(superseded, 1, "the run was not dropped (log %s)", fx.workers[0].log);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM audience_profile WHERE audience_id = "
                                       "'%s' AND total_amount = 5 AND UNIX_TIMESTAMP(period_start) "
                                       "= %lld",
                                       id, newer),
                     1, "the newer period's profile was replaced");
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM audience_profile"), 1);
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM stats_profile_run"), 1);
        cr_assert_eq(count_log_lines(0, "its profile is newer"), 1);
        stop_worker_expect_clean_exit(0);
}

Test(stats, a_run_killed_halfway_leaves_the_previous_profile_whole)
{
        const long long rows = 400000, audiences = 100000;
        char before[4096], after[4096], prev_a[96], prev_b[96];
        long long want_sum;

        use_redis_db(6);
        /* The previous profile, and a ledger big enough that computing a new one takes a while. */
        id_of(prev_a, sizeof(prev_a), "prev_a");
        id_of(prev_b, sizeof(prev_b), "prev_b");
        exec_sql(
                "INSERT INTO audience_profile (audience_id, total_amount, percentile, level, period_start) VALUES "
                "('%s', 10, 50, 'low', NOW(3)), ('%s', 20, 100, 'high', NOW(3))",
                prev_a, prev_b);
        profile_text(before, sizeof(before));
        want_sum = fill_ledger(rows, audiences);

        /*
         * A short lock TTL, so that the next instance need not wait long for the dead one's lock.
         * Not waiting for /readyz (the group join): the run starts meanwhile and is killed in it.
         */
        spawn_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_LOCK_TTL_S=3", NULL});
        cr_assert(wait_log(fx.workers[0].log, "profile run started", 20000),
                  "no run started (log %s)", fx.workers[0].log);
        cr_assert(kill(fx.workers[0].pid, SIGKILL) == 0);
        cr_assert_eq(support_wait_exit(fx.workers[0].pid, 10000), 128 + SIGKILL);
        fx.workers[0].pid = 0;
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM stats_profile_run"), 0,
                     "the run finished before the kill: make the ledger bigger");
        profile_text(after, sizeof(after));
        cr_assert_str_eq(after, before, "the killed run changed the profile");

        /*
         * The next instance runs the period once the dead one's lock has expired. Its own lock
         * TTL is long: the TTL also bounds its run's queries, which a loaded machine can stretch
         * past 3 s (the run would fail and wait 30 s to try again).
         */
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_LOCK_TTL_S=120", NULL});
        wait_at_least(1, 60000, "the period's run by the next instance",
                      "SELECT COUNT(*) FROM stats_profile_run");
        cr_assert_eq(support_query_int(fx.mysql, "SELECT COUNT(*) FROM audience_profile"),
                     audiences);
        cr_assert_eq(support_query_int(fx.mysql, "SELECT SUM(total_amount) FROM audience_profile"),
                     want_sum);
        cr_assert_eq(
                support_query_int(
                        fx.mysql,
                        "SELECT COUNT(*) FROM audience_profile WHERE audience_id IN ('%s', '%s')",
                        prev_a, prev_b),
                0);
        stop_worker_expect_clean_exit(0);
}

/* ------------------------------------------------------------------ live_statistics */

struct session_figures {
        long long gift_amount, gift_count, paying_users;
};

/* The gift figures: the room's tips in the window. */
static void expect_gifts(const struct tip_spec *tips, const char *const *rooms, size_t n,
                         const char *room, long long from_ms, long long to_ms,
                         struct session_figures *f)
{
        const char *payers[32];
        size_t payer_cnt = 0;

        f->gift_amount = f->gift_count = 0;
        for (size_t i = 0; i < n; i++) {
                size_t j = 0;

                if (strcmp(rooms[i], room) != 0 || tips[i].ts_ms < from_ms || tips[i].ts_ms > to_ms)
                        continue;
                f->gift_amount += tips[i].amount;
                f->gift_count++;
                while (j < payer_cnt && strcmp(payers[j], tips[i].audience) != 0)
                        j++;
                if (j == payer_cnt)
                        payers[payer_cnt++] = tips[i].audience;
        }
        f->paying_users = (long long)payer_cnt;
}

/* Waits until the session's live_statistics row reads f. */
static void wait_figures(long long session, const struct session_figures *f)
{
        char want[160], got[160] = "";
        long long deadline = support_now_ms() + 30000;

        /* The viewer columns are the audience role's: this worker leaves them NULL. */
        snprintf(want, sizeof(want), "%lld/%lld/%lld/-/-", f->gift_amount, f->gift_count,
                 f->paying_users);
        while (support_now_ms() < deadline) {
                support_query1(fx.mysql, got, sizeof(got),
                               "SELECT CONCAT_WS('/', gift_amount, gift_count, paying_users, "
                               "COALESCE(unique_viewers, '-'), COALESCE(peak_online, '-')) "
                               "FROM live_statistics WHERE session_id = %lld",
                               session);
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(100);
        }
        cr_assert_fail(
                "live_statistics of %lld: %s, want %s (amount/count/payers/viewers/peak; log %s)",
                session, got, want, fx.workers[0].log);
}

/* The session's figures with the first n tips (viewer figures are the audience role's). */
static void expect_figures(const struct tip_spec *tips, const char *const *rooms, size_t tip_cnt,
                           long long t0, long long t1, struct session_figures *f)
{
        expect_gifts(tips, rooms, tip_cnt, "sa", t0, t1, f);
}

Test(stats, session_statistics_count_the_window_and_catch_up_with_late_records)
{
        const long long t0 = 1767229200000LL, t1 = t0 + 600000; /* a 10-minute session */
        const long long session = (long long)getpid() * 1000 + 7, late_s = 10;
        const struct viewer_spec viewers[] = {
                {"c1", true, t0 + 10000, 1},  {"c2", true, t0 + 20000, 1},
                {"c2", true, t0 + 25000, 2},  {"c3", true, t0 + 30000, 1},
                {"c1", false, t0 + 40000, 1}, {"c4", false, t0 + 50000, 1},
                {"c4", true, t0 + 60000, 1},  {"c5", true, t0 + 60000, 1},
                {"c1", true, t0 + 70000, 2},  {"c3", false, t0 + 80000, 1},
                {"c6", true, t0 - 100000, 1}, {"c7", true, t1 + 100000, 1},
                {"c8", true, t0 + 65000, 1}, /* late: after the session.end */
        };
        const struct tip_spec tips[] = {
                {"g1", "u1", "sa", 100, t0 + 5000, NULL, NULL},
                {"g2", "u2", "sa", 50, t0 + 100000, NULL, NULL},
                {"g3", "u1", "sa", 25, t1, NULL, NULL},
                {"g4", "u3", "sa", 10, t0 - 1, NULL, NULL},
                {"g5", "u4", "sa", 999, t1 + 1, NULL, NULL},
                {"g6", "u5", "ob", 70, t0 + 100000, NULL, NULL},
                {"g7", "u6", "sa", 70, t0 + 300000, NULL, NULL}, /* late */
                {"g8", "u7", "sa", 40, t0 + 400000, NULL, NULL}, /* later than LIVEFLOW_STATS_LATE_S
                                                                  */
        };
        const char *const rooms[] = {"sa", "sa", "sa", "sa", "sa", "ob", "sa", "sa"};
        const size_t viewer_first = 12, tip_first = 6;
        struct session_figures f;
        char stream[96], anchor[96], computed[32], again[32] = "", sql[160];
        long long closed_ms;

        use_redis_db(7);
        id_of(stream, sizeof(stream), "stream");
        id_of(anchor, sizeof(anchor), "sa");
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_LATE_S=10", NULL});
        for (size_t i = 0; i < viewer_first; i++)
                produce_viewer(stream, &viewers[i]);
        produce_viewer(stream, &viewers[3]); /* a replay: counted once */
        for (size_t i = 0; i < tip_first; i++)
                produce_tip(&tips[i], rooms[i]);
        flush();
        wait_at_least((long long)tip_first, 30000, "tips in the ledger",
                      "SELECT COUNT(*) FROM stats_tip");
        wait_at_least((long long)viewer_first, 30000, "viewer events in the ledger",
                      "SELECT COUNT(*) FROM stats_viewer_event");
        produce_session_end(stream, anchor, session, t0, t1);
        flush();
        expect_figures(tips, rooms, tip_first, t0, t1, &f);
        wait_figures(session, &f);
        cr_assert_eq(
                support_query_int(fx.mysql,
                                  "SELECT duration_s FROM live_statistics WHERE session_id = %lld",
                                  session),
                (t1 - t0) / 1000);

        /* A tip of the window that arrives after the end, within late_s of it: it alone marks
         * the session for computing again. Then a late viewer. */
        produce_tip(&tips[tip_first], rooms[tip_first]);
        flush();
        expect_figures(tips, rooms, tip_first + 1, t0, t1, &f);
        wait_figures(session, &f);
        produce_viewer(stream, &viewers[viewer_first]);
        flush();
        wait_at_least((long long)viewer_first + 1, 30000, "viewer events in the ledger",
                      "SELECT COUNT(*) FROM stats_viewer_event");
        wait_figures(session, &f);

        /* The session.end again: computed again, to the same figures. */
        support_query1(fx.mysql, computed, sizeof(computed),
                       "SELECT computed_at FROM live_statistics WHERE session_id = %lld", session);
        produce_session_end(stream, anchor, session, t0, t1);
        flush();
        for (long long deadline = support_now_ms() + 20000; support_now_ms() < deadline;
             support_sleep_ms(100)) {
                support_query1(fx.mysql, again, sizeof(again),
                               "SELECT computed_at FROM live_statistics WHERE session_id = %lld",
                               session);
                if (strcmp(again, computed) != 0)
                        break;
        }
        cr_assert_str_neq(again, computed, "the replayed session.end was not computed again");
        wait_figures(session, &f);

        /* Past late_s after the worker saw the end, a tip of the window no longer counts. */
        closed_ms =
                support_query_int(fx.mysql,
                                  "SELECT CAST(UNIX_TIMESTAMP(closed_at) * 1000 AS SIGNED) FROM "
                                  "stats_session WHERE session_id = %lld",
                                  session);
        if (closed_ms + late_s * 1000 + 1000 > wall_ms())
                support_sleep_ms((int)(closed_ms + late_s * 1000 + 1000 - wall_ms()));
        produce_tip(&tips[tip_first + 1], rooms[tip_first + 1]);
        flush();
        wait_at_least((long long)tip_first + 2, 30000, "tips in the ledger",
                      "SELECT COUNT(*) FROM stats_tip");
        support_sleep_ms(2500); /* two ticks: time enough to compute, had it been marked */
        snprintf(sql, sizeof(sql), "SELECT dirty FROM stats_session WHERE session_id = %lld",
                 session);
        cr_assert_eq(support_query_int(fx.mysql, "%s", sql), 0);
        wait_figures(session, &f);
        stop_worker_expect_clean_exit(0);
}

/* ------------------------------------------------------------------ configuration */

Test(stats_config, refuses_a_mid_band_not_below_the_high_one)
{
        char bin[512];
        const char *base =
                "LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1 LIVEFLOW_MYSQL_URL=mysql://u:p@127.0.0.1:1/d "
                "LIVEFLOW_REDIS_URL=redis://127.0.0.1:1/0";

        support_bin_path("liveflow-stats", bin, sizeof(bin));
        cr_assert_eq(support_sh("%s '%s' --check-config >/dev/null 2>&1", base, bin), 0);
        cr_assert_eq(
                support_sh(
                        "%s LIVEFLOW_STATS_PROFILE_MID_PCT=90 LIVEFLOW_STATS_PROFILE_HIGH_PCT=90 '%s' "
                        "--check-config >/dev/null 2>&1",
                        base, bin),
                2);
        cr_assert_eq(
                support_sh(
                        "%s LIVEFLOW_STATS_PROFILE_INTERVAL_S=0 '%s' --check-config >/dev/null 2>&1",
                        base, bin),
                2);
}
