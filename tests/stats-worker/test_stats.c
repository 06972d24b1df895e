/*
 * test_stats.c: liveflow-stats as its binary on the real MariaDB and Redis fixtures. Each test
 * has a Kafka mock cluster of its own, so no other test's tips reach its ledger (profiles rank
 * every spender) and the group keeps its real name, and a Redis database of its own, because
 * the profiling lock's key names only the period. Expectations are computed here from what
 * each test sent, by the rules that the stats worker's headers document.
 *
 * This file holds the fixture, the helpers, hourly_reward_stats and the configuration; its parts
 * in stats/: profile.c (audience_profile: the bands, two instances, the lock, failed, late and
 * killed runs) and live_statistics.c (session statistics); stats/fixture.h is what they share.
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
#include "stats/fixture.h"

struct stats_fixture fx;

static const char *const topics[] = {"live.reward",     "live.viewer",     "live.session",
                                     "live.reward.dlq", "live.viewer.dlq", "live.session.dlq"};

static void setup(void)
{
        char err[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();

        support_unique_name("sw", fx.prefix, sizeof(fx.prefix));
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        fx.mysql = support_mysql_connect(fx.mysql_url);
        fx.redis = support_redis_connect(0, false, NULL, 0);
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

long long wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The test's own id for a suffix: "<prefix>_<suffix>". */
void id_of(char *out, size_t out_size, const char *suffix)
{
        snprintf(out, out_size, "%s_%s", fx.prefix, suffix);
}

/* Selects the test's own Redis database, empty, for its workers and itself. */
void use_redis_db(int db)
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
void spawn_worker(int i, const char *const extra[])
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

void start_worker(int i, const char *const extra[])
{
        spawn_worker(i, extra);
        cr_assert(support_wait_ready(fx.workers[i].admin_port, 30000) == 0,
                  "stats worker %d not ready; see %s", i, fx.workers[i].log);
}

/* Waits until `needle` is in the log file. */
bool wait_log(const char *path, const char *needle, int timeout_ms)
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

void stop_worker_expect_clean_exit(int i)
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
long long scrape(int i, const char *series)
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
void exec_sql(const char *fmt, ...)
{
        char sql[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.mysql));
}

/* Waits until the query's integer is at least want. */
void wait_at_least(long long want, int timeout_ms, const char *what, const char *sql)
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

void flush(void)
{
        cr_assert(rd_kafka_flush(fx.producer, 20000) == 0);
}

void produce_tip(const struct tip_spec *t, const char *room_suffix)
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

void produce_viewer(const char *stream, const struct viewer_spec *v)
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

void produce_session_end(const char *stream, const char *anchor, long long session,
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

/*
 * New tips are written without looking stats_tip up first; their replay is looked up (at once,
 * or after the unread INSERT met them), and counts nothing twice.
 */
Test(stats, new_tips_are_written_unread_and_their_replay_is_looked_up)
{
        const char *unread = "liveflow_stats_tip_batches_total{way=\"unread\"}";
        const char *read_first = "liveflow_stats_tip_batches_total{way=\"read_first\"}";
        const char *conflict = "liveflow_stats_tip_batches_total{way=\"conflict\"}";
        const long long h = 1767225600000LL; /* 2026-01-01T00:00:00Z */
        char names[400][16], anchor[96], sql[512];
        long long sum = 0, looked_up;
        int sent = 0;

        use_redis_db(9);
        id_of(anchor, sizeof(anchor), "ua");
        snprintf(
                sql, sizeof(sql),
                "SELECT COALESCE(SUM(amount_sum), 0) FROM hourly_reward_stats WHERE anchor_id = '%s'",
                anchor);
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_INTERVAL_S=3600", NULL});
        /* Other tests' records reach this worker too, replays among them: a batch that meets
         * one makes the next look up first, until one finds nothing. Rounds of new tips until
         * one batch went unread. */
        for (int round = 0; round < 10 && scrape(0, unread) < 1; round++) {
                for (int i = 0; i < 40; i++, sent++) {
                        snprintf(names[sent], sizeof(names[sent]), "u%d", sent);
                        produce_tip(&(struct tip_spec){names[sent], "uu", "ua", 10 + sent, h + sent,
                                                       "male", "female"},
                                    NULL);
                        sum += 10 + sent;
                }
                flush();
                wait_at_least(sum, 30000, "the anchor's hourly sum", sql);
        }
        cr_assert_geq(scrape(0, unread), 1, "no batch was written unread");
        looked_up = scrape(0, read_first) + scrape(0, conflict);
        cr_assert_geq(looked_up, 0, "no read_first or conflict counter");

        for (int i = 0; i < sent; i++) /* the same records again: a replay */
                produce_tip(
                        &(struct tip_spec){names[i], "uu", "ua", 10 + i, h + i, "male", "female"},
                        NULL);
        produce_tip(&(struct tip_spec){"ulast", "uu", "ua", 5, h + 99999, "male", "female"},
                    NULL); /* same anchor, same partition: after them */
        flush();
        wait_at_least(sum + 5, 30000, "the anchor's hourly sum", sql);
        cr_assert_eq(support_query_int(fx.mysql, "%s", sql), sum + 5, "counted once");
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COALESCE(SUM(reward_count), 0) FROM "
                                       "hourly_reward_stats WHERE anchor_id = '%s'",
                                       anchor),
                     (long long)sent + 1);
        cr_assert_gt(scrape(0, read_first) + scrape(0, conflict), looked_up,
                     "the replay was neither looked up first nor met by the INSERT");
        stop_worker_expect_clean_exit(0);
}

/*
 * A tip that states the gender its audience has on file leaves the audience's row alone: it is
 * counted while another transaction holds that row locked. One that states another gender
 * puts it on file.
 */
Test(stats, a_tip_restating_the_gender_on_file_does_not_lock_the_audience)
{
        const long long h = 1767225600000LL; /* 2026-01-01T00:00:00Z */
        char fan[96], tip[96], sql[256];
        MYSQL *locker = support_mysql_connect(fx.mysql_url);

        use_redis_db(10);
        id_of(fan, sizeof(fan), "lf");
        exec_sql("INSERT INTO audiences (audience_id, gender) VALUES ('%s', 'male')", fan);
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_PROFILE_INTERVAL_S=3600", NULL});
        cr_assert(mysql_query(locker, "START TRANSACTION") == 0, "%s", mysql_error(locker));
        snprintf(sql, sizeof(sql),
                 "SELECT gender FROM audiences WHERE audience_id = '%s' FOR UPDATE", fan);
        cr_assert(mysql_query(locker, sql) == 0, "%s", mysql_error(locker));
        mysql_free_result(mysql_store_result(locker));

        produce_tip(&(struct tip_spec){"l1", "lf", "la", 30, h, NULL, "male"}, NULL);
        flush();
        id_of(tip, sizeof(tip), "l1");
        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM stats_tip WHERE trace_id = '%s'", tip);
        wait_at_least(1, 30000, "the tip counted while its audience's row is locked", sql);
        cr_assert(mysql_query(locker, "ROLLBACK") == 0, "%s", mysql_error(locker));
        mysql_close(locker);

        produce_tip(&(struct tip_spec){"l2", "lf", "la", 40, h + 1, NULL, "female"}, NULL);
        flush();
        id_of(tip, sizeof(tip), "l2");
        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM stats_tip WHERE trace_id = '%s'", tip);
        wait_at_least(1, 30000, "the second tip", sql);
        cr_assert_eq(support_query_int(
                             fx.mysql,
                             "SELECT gender = 'female' FROM audiences WHERE audience_id = '%s'",
                             fan),
                     1, "the gender stated anew is on file");
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
