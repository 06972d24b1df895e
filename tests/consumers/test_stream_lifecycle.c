/* test_stream_lifecycle.c: the stream role, run as its binary against the real fixtures. */
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

struct fixture {
        char mysql_url[512];
        char log_path[256];
        int admin_port;
        pid_t pid;
        rd_kafka_t *producer;
        struct codec *codec;
        MYSQL *mysql;
        redisContext *redis;
        char prefix[48];
};

static struct fixture fx;

static void connect_mysql(void)
{
        struct mysql_url u;
        char err[256];

        cr_assert(url_parse_mysql(fx.mysql_url, &u, err, sizeof(err)) == 0, "%s", err);
        fx.mysql = mysql_init(NULL);
        cr_assert(mysql_real_connect(fx.mysql, u.host, u.user, u.password, u.database, u.port, NULL,
                                     0),
                  "%s", mysql_error(fx.mysql));
        mysql_query(fx.mysql, "SET time_zone = '+00:00'");
}

/* Starts the stream role with the fixed test environment plus extra "K=V" entries (NULL-terminated;
 * NULL for none). */
static void start_consumer_with(const char *const *extra)
{
        char bin[512], e_boot[512], e_mysql[600], e_redis[300], e_admin[64], e_group[96];
        char *argv[] = {bin, (char *)"stream", NULL};
        char *env[16] = {e_boot,
                         e_mysql,
                         e_redis,
                         e_admin,
                         e_group,
                         (char *)"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000",
                         (char *)"LIVEFLOW_RETRY_BACKOFF_MS=50",
                         (char *)"LIVEFLOW_LOG_LEVEL=debug",
                         NULL};
        size_t n = 8;

        for (size_t i = 0; extra && extra[i]; i++) {
                cr_assert(n + 1 < sizeof(env) / sizeof(env[0]), "too many extra variables");
                env[n++] = (char *)extra[i];
        }
        env[n] = NULL;

        support_bin_path("liveflow-consumer", bin, sizeof(bin));
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        fx.admin_port = support_free_port();
        /* Tests run in parallel: each needs every partition, so each gets its own group. */
        snprintf(e_group, sizeof(e_group), "LIVEFLOW_GROUP_ID=test.%s", fx.prefix);
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", fx.admin_port);
        snprintf(fx.log_path, sizeof(fx.log_path), "/tmp/%s.consumer.log", fx.prefix);
        fx.pid = support_spawn(argv, env, fx.log_path);
        cr_assert(support_wait_ready(fx.admin_port, 20000) == 0, "consumer not ready; see %s",
                  fx.log_path);
}

static void start_consumer(void)
{
        start_consumer_with(NULL);
}

/* Everything but the consumer, which a test then starts with the environment it needs. */
static void setup_stores(void)
{
        char err[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        const char *redis_port = support_fixture("LIVEFLOW_TEST_REDIS_PORT");

        support_unique_name("st", fx.prefix, sizeof(fx.prefix));
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        connect_mysql();
        fx.redis = redisConnect("127.0.0.1", atoi(redis_port));
        cr_assert(fx.redis && !fx.redis->err);
        cr_assert(rd_kafka_conf_set(conf, "bootstrap.servers",
                                    support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err,
                                    sizeof(err)) == RD_KAFKA_CONF_OK);
        /* the records of one key share a partition with those liveflow's producers write */
        cr_assert(rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, sizeof(err)) ==
                  RD_KAFKA_CONF_OK);
        fx.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        cr_assert(fx.producer, "%s", err);
        cr_assert((fx.codec = codec_new(err, sizeof(err))) != NULL, "%s", err);
        /* What earlier suites left on live.stream is not this test's backlog (its group is
         * test.<prefix>, see start_consumer_with()). */
        {
                char group[96];

                snprintf(group, sizeof(group), "test.%s", fx.prefix);
                support_group_at_end(group, (const char *const[]){"live.stream", NULL});
        }
}

static void setup(void)
{
        setup_stores();
        start_consumer();
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
        memset(&fx, 0, sizeof(fx));
}

/* Produces one raw value to live.stream keyed by the stream, and waits for the ack. */
static void produce_raw(const char *stream_id, const void *value, size_t len)
{
        cr_assert(rd_kafka_producev(
                          fx.producer, RD_KAFKA_V_TOPIC("live.stream"),
                          RD_KAFKA_V_KEY(stream_id, strlen(stream_id)),
                          RD_KAFKA_V_VALUE((void *)value, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADER("trace_id", "0123456789abcdef0123456789abcdef", -1),
                          RD_KAFKA_V_HEADER("event_type", "test", -1), RD_KAFKA_V_END) == 0);
        cr_assert(rd_kafka_flush(fx.producer, 10000) == 0);
}

/* The event id produce_event() gives a stream event: it follows vendor, type, stream, sequence. */
static void stream_event_id(const char *stream_id, bool begin, const char *sequence, char out[65])
{
        char key[256];

        snprintf(key, sizeof(key), "tencent|%d|%s|%s", begin ? 1 : 0, stream_id, sequence);
        crypto_sha256_hex(key, strlen(key), out);
}

/* A stream event of `anchor` as the receiver would make it. */
static void produce_event_of(const char *anchor, const char *stream_id, bool begin,
                             const char *sequence, long long event_time_s, int close_method,
                             long long push_duration_ms)
{
        char event_id[65], err[256];
        json_t *payload;
        void *buf;
        size_t len;

        stream_event_id(stream_id, begin, sequence, event_id);
        if (begin)
                payload = json_pack("{s:s}", "sequence", sequence);
        else
                payload =
                        json_pack("{s:s,s:i}", "sequence", sequence, "close_method", close_method);
        if (!begin && push_duration_ms >= 0)
                json_object_set_new(payload, "push_duration_ms", json_integer(push_duration_ms));
        struct envelope env = {
                .event_id = event_id,
                .vendor = "tencent",
                .event_type = begin ? "stream.begin" : "stream.end",
                .stream_id = stream_id,
                .anchor_id = anchor,
                .room_id = anchor,
                .event_time_ms = event_time_s * 1000,
                .receive_time_ms = event_time_s * 1000 + 5,
                .trace_id = "0123456789abcdef0123456789abcdef",
                .raw = "{}",
                .raw_len = 2,
        };
        cr_assert(codec_encode(fx.codec, &env, begin ? "StreamBegin" : "StreamEnd", payload, &buf,
                               &len, err, sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        produce_raw(stream_id, buf, len);
        free(buf);
}

/* A stream event of this test's anchor, anchor_<prefix>. */
static void produce_event(const char *stream_id, bool begin, const char *sequence,
                          long long event_time_s, int close_method, long long push_duration_ms)
{
        char anchor[64];

        snprintf(anchor, sizeof(anchor), "anchor_%s", fx.prefix);
        produce_event_of(anchor, stream_id, begin, sequence, event_time_s, close_method,
                         push_duration_ms);
}

/* First column of the first row as text, or "" when there is no row or it is NULL. */
static void query1(char *out, size_t out_size, const char *fmt, ...)
{
        char sql[1024];
        va_list ap;
        MYSQL_RES *res;
        MYSQL_ROW row;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        out[0] = '\0';
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.mysql));
        res = mysql_store_result(fx.mysql);
        if (res && (row = mysql_fetch_row(res)) && row[0])
                snprintf(out, out_size, "%s", row[0]);
        if (res)
                mysql_free_result(res);
}

/* Waits until the stream's status column reads `want`. */
static void wait_status(const char *stream_id, const char *want)
{
        char got[32] = "";
        long long deadline = support_now_ms() + 20000;

        while (support_now_ms() < deadline) {
                query1(got, sizeof(got), "SELECT status FROM live_streams WHERE stream_id = '%s'",
                       stream_id);
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(50);
        }
        cr_assert_fail("stream %s status is \"%s\", want \"%s\" (consumer log: %s)", stream_id, got,
                       want, fx.log_path);
}

/* Waits until the role has recorded n events for the stream (applied, stale or duplicate). */
static void wait_events(const char *stream_id, int n)
{
        char got[32] = "";
        long long deadline = support_now_ms() + 20000;

        while (support_now_ms() < deadline) {
                query1(got, sizeof(got), "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'",
                       stream_id);
                if (atoi(got) >= n)
                        return;
                support_sleep_ms(50);
        }
        cr_assert_fail("stream %s has %s events, want %d (log: %s)", stream_id, got, n,
                       fx.log_path);
}

static bool is_online(const char *stream_id)
{
        redisReply *r = redisCommand(fx.redis, "SISMEMBER set:live:online %s", stream_id);
        bool yes = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;

        freeReplyObject(r);
        return yes;
}

/* Redis follows MySQL right after the commit: wait for it rather than race it. */
static bool wait_online(const char *stream_id, bool want)
{
        long long deadline = support_now_ms() + 10000;

        while (is_online(stream_id) != want && support_now_ms() < deadline)
                support_sleep_ms(20);
        return is_online(stream_id) == want;
}

static void stop_consumer_expect_clean_exit(void)
{
        cr_assert(kill(fx.pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.pid, 20000), 0, "consumer did not drain cleanly; see %s",
                     fx.log_path);
        fx.pid = 0;
}

/*
 * The ghost sweep's consumer closes every stream it sees silent, the streams of tests running
 * beside it included: its suite runs in test_stream_sweep.c, a binary of its own (binaries
 * run one after another), which compiles this file with STREAM_SWEEP_ONLY.
 */
#ifdef STREAM_SWEEP_ONLY
#define IS_SWEEP_BINARY true
#else
#define IS_SWEEP_BINARY false
#endif

TestSuite(stream_lifecycle, .init = setup, .fini = teardown, .timeout = 120,
          .disabled = IS_SWEEP_BINARY);

Test(stream_lifecycle, begin_then_end_sets_live_then_ended_and_redis)
{
        char s[64], v[64];

        snprintf(s, sizeof(s), "%s_a", fx.prefix);
        produce_event(s, true, "9001", 1703731478, 0, -1);
        wait_status(s, "live");
        cr_assert(wait_online(s, true), "%s not in set:live:online", s);
        redisReply *r =
                redisCommand(fx.redis, "HGET hash:anchor:status:anchor_%s stream_id", fx.prefix);
        cr_assert(r && r->type == REDIS_REPLY_STRING);
        cr_assert_str_eq(r->str, s);
        freeReplyObject(r);
        query1(v, sizeof(v),
               "SELECT session_id IS NOT NULL FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "1");

        produce_event(s, false, "9001", 1703735203, 1, 3725118);
        wait_status(s, "ended");
        query1(v, sizeof(v), "SELECT duration_s FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "3725");
        query1(v, sizeof(v), "SELECT close_method FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "1");
        cr_assert(wait_online(s, false), "%s still in set:live:online", s);
        stop_consumer_expect_clean_exit();
}

Test(stream_lifecycle, duplicates_and_reordering_leave_one_correct_session)
{
        char a[64], b[64], c[64], v[64], session[32];

        snprintf(a, sizeof(a), "%s_dup", fx.prefix);
        snprintf(b, sizeof(b), "%s_late", fx.prefix);
        snprintf(c, sizeof(c), "%s_stale", fx.prefix);

        /* a: begin, begin again (vendor retry), end, end again. */
        produce_event(a, true, "1", 1000, 0, -1);
        produce_event(a, true, "1", 1000, 0, -1);
        produce_event(a, false, "1", 1060, 1, 60000);
        produce_event(a, false, "1", 1060, 1, 60000);
        /* b: the end overtakes the begin. */
        produce_event(b, false, "2", 2100, 1, -1);
        produce_event(b, true, "2", 2000, 0, -1);
        /* c: a newer session, then a stale begin of an older one. */
        produce_event(c, true, "31", 3000, 0, -1);
        produce_event(c, true, "30", 2500, 0, -1);

        wait_events(a, 2);
        wait_events(b, 2);
        wait_events(c, 2);
        wait_status(a, "ended");
        query1(v, sizeof(v), "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", a);
        cr_assert_str_eq(v, "2", "duplicates must be recorded once");
        query1(v, sizeof(v), "SELECT duration_s FROM live_streams WHERE stream_id = '%s'", a);
        cr_assert_str_eq(v, "60");

        wait_status(b, "ended");
        query1(v, sizeof(v), "SELECT duration_s FROM live_streams WHERE stream_id = '%s'", b);
        cr_assert_str_eq(v, "100", "the late begin must supply the start");
        cr_assert(wait_online(b, false));

        query1(v, sizeof(v), "SELECT vendor_session FROM live_streams WHERE stream_id = '%s'", c);
        cr_assert_str_eq(v, "31", "a stale begin must not replace the newer session");
        query1(session, sizeof(session),
               "SELECT session_id FROM live_streams WHERE stream_id = '%s'", c);
        cr_assert(wait_online(c, true));
        stop_consumer_expect_clean_exit();
}

static bool consume_dlq(const char *key, char *class_out, size_t class_size)
{
        char err[256], group[64];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        bool found = false;
        long long deadline = support_now_ms() + 20000;

        support_unique_name("dlqcheck", group, sizeof(group));
        rd_kafka_conf_set(conf, "bootstrap.servers",
                          support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err, sizeof(err));
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
        rd_kafka_conf_set(conf, "session.timeout.ms", "3000", err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        cr_assert(rk);
        rd_kafka_poll_set_consumer(rk);
        rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(t, "live.stream.dlq", RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, t);
        rd_kafka_topic_partition_list_destroy(t);
        while (!found && support_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                rd_kafka_headers_t *h = NULL;
                const void *val;
                size_t len;

                if (!m)
                        continue;
                if (!m->err && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0 &&
                    rd_kafka_message_headers(m, &h) == 0 &&
                    rd_kafka_header_get_last(h, "dlq.error.class", &val, &len) == 0) {
                        snprintf(class_out, class_size, "%.*s", (int)len, (const char *)val);
                        found = rd_kafka_header_get_last(h, "dlq.topic", &val, &len) == 0 &&
                                rd_kafka_header_get_last(h, "dlq.group", &val, &len) == 0 &&
                                rd_kafka_header_get_last(h, "dlq.offset", &val, &len) == 0 &&
                                rd_kafka_header_get_last(h, "trace_id", &val, &len) == 0;
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return found;
}

Test(stream_lifecycle, undecodable_record_goes_to_dlq_and_the_partition_moves_on)
{
        char bad[64], cls[32] = "";

        /* Same key, so same partition: the good record must not be held behind the bad one. */
        snprintf(bad, sizeof(bad), "%s_bad", fx.prefix);
        produce_raw(bad, "\xc3\x01garbage", 9);
        produce_event(bad, true, "77", 5000, 0, -1);
        wait_status(bad, "live");
        cr_assert(consume_dlq(bad, cls, sizeof(cls)), "no DLQ record for %s with dlq.* headers",
                  bad);
        cr_assert_str_eq(cls, "permanent");
        stop_consumer_expect_clean_exit();
}

/* One session.end record of live.session as the test reads it back. */
struct session_end {
        char event_id_header[80];
        char event_type_header[32];
        char event_id[80];
        long long session_id, started_at_ms, ended_at_ms, duration_s, close_method;
};

static void read_session_end(struct codec *codec, const rd_kafka_message_t *m,
                             struct session_end *se)
{
        rd_kafka_headers_t *h = NULL;
        struct event ev = {0};
        const void *val;
        size_t len;
        char err[256];

        memset(se, 0, sizeof(*se));
        cr_assert(rd_kafka_message_headers(m, &h) == 0, "a session.end record without headers");
        if (rd_kafka_header_get_last(h, "event_id", &val, &len) == 0)
                snprintf(se->event_id_header, sizeof(se->event_id_header), "%.*s", (int)len,
                         (const char *)val);
        if (rd_kafka_header_get_last(h, "event_type", &val, &len) == 0)
                snprintf(se->event_type_header, sizeof(se->event_type_header), "%.*s", (int)len,
                         (const char *)val);
        cr_assert(codec_decode(codec, m->payload, m->len, &ev, err, sizeof(err)) == 0, "%s", err);
        cr_assert_str_eq(ev.payload_name, "SessionEnd");
        snprintf(se->event_id, sizeof(se->event_id), "%s", ev.event_id);
        se->session_id = json_integer_value(json_object_get(ev.payload, "session_id"));
        se->started_at_ms = json_integer_value(json_object_get(ev.payload, "started_at_ms"));
        se->ended_at_ms = json_integer_value(json_object_get(ev.payload, "ended_at_ms"));
        se->duration_s = json_integer_value(json_object_get(ev.payload, "duration_s"));
        se->close_method = json_integer_value(json_object_get(ev.payload, "close_method"));
        event_fini(&ev);
}

/*
 * Reads every partition of live.session from the start for timeout_ms, or until `want`
 * session.end records of `session` keyed `key` were seen (want < 0: the whole time). Every
 * test's consumer reads every test's streams into its own database and hands off its own
 * sessions, so only this test's session id tells its records apart. Partitions are
 * assigned, not subscribed, so no group rebalance delays the read. @returns how many.
 */
static int read_session_ends(const char *key, long long session, struct session_end *out, int max,
                             int want, int timeout_ms)
{
        char err[256], group[64];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
        long long deadline = support_now_ms() + timeout_ms;
        rd_kafka_topic_t *rkt;
        rd_kafka_t *rk;
        int n = 0;

        support_unique_name("sessread", group, sizeof(group));
        cr_assert(rd_kafka_conf_set(conf, "bootstrap.servers",
                                    support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err,
                                    sizeof(err)) == RD_KAFKA_CONF_OK);
        /* assign() wants a group id; it never joins the group, so nothing waits for a rebalance. */
        cr_assert(rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) == RD_KAFKA_CONF_OK);
        cr_assert(rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) ==
                  RD_KAFKA_CONF_OK);
        cr_assert((rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) != NULL, "%s",
                  err);
        rd_kafka_poll_set_consumer(rk);
        rkt = rd_kafka_topic_new(rk, "live.session", NULL);
        cr_assert(rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0 && md->topic_cnt == 1 &&
                          md->topics[0].partition_cnt > 0,
                  "no metadata for live.session");
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
                rd_kafka_topic_partition_list_add(parts, "live.session",
                                                  md->topics[0].partitions[i].id)
                        ->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        cr_assert(rd_kafka_assign(rk, parts) == 0);
        rd_kafka_topic_partition_list_destroy(parts);
        while (support_now_ms() < deadline && (want < 0 || n < want)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

                if (!m)
                        continue;
                if (!m->err && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0) {
                        struct session_end se;

                        read_session_end(fx.codec, m, &se);
                        if (se.session_id == session && n < max)
                                out[n] = se;
                        n += se.session_id == session;
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return n;
}

Test(stream_lifecycle, an_ended_session_is_handed_off_once_and_a_replay_repeats_its_event_id)
{
        const long long begin_s = 1703731478, end_s = 1703735203;
        struct session_end got[4];
        char s[64], key[64], want_id[65];
        long long session;
        int n;

        snprintf(s, sizeof(s), "%s_handoff", fx.prefix);
        produce_event(s, true, "4242", begin_s, 0, -1);
        produce_event(s, false, "4242", end_s, 1, -1);
        wait_status(s, "ended");
        session = support_query_int(
                fx.mysql, "SELECT session_id FROM live_streams WHERE stream_id = '%s'", s);
        snprintf(key, sizeof(key), "session.end|%lld", session);
        crypto_sha256_hex(key, strlen(key), want_id);

        cr_assert_eq(read_session_ends(s, session, got, 4, 1, 20000), 1,
                     "no session.end for %s (log %s)", s, fx.log_path);
        /* Read again for a while: the begin and the end must have made exactly one record. */
        n = read_session_ends(s, session, got, 4, -1, 3000);
        cr_assert_eq(n, 1, "begin + end must make exactly one session.end, not %d", n);
        cr_assert_eq(got[0].session_id, session);
        cr_assert_eq(got[0].started_at_ms, begin_s * 1000);
        cr_assert_eq(got[0].ended_at_ms, end_s * 1000);
        cr_assert_eq(got[0].duration_s, end_s - begin_s);
        cr_assert_eq(got[0].close_method, 1);
        cr_assert_str_eq(got[0].event_type_header, "session.end");
        cr_assert_str_eq(got[0].event_id_header, want_id);
        cr_assert_str_eq(got[0].event_id, want_id);

        /* The same end again (a vendor retry or a replay): the same session.end once more. */
        produce_event(s, false, "4242", end_s, 1, -1);
        cr_assert_eq(read_session_ends(s, session, got, 4, 2, 20000), 2,
                     "the replayed end sent nothing");
        cr_assert_eq(read_session_ends(s, session, got, 4, -1, 3000), 2,
                     "one replay must make one more");
        cr_assert_str_eq(got[1].event_id_header, want_id);
        cr_assert_str_eq(got[1].event_id, want_id);
        cr_assert_eq(got[1].session_id, session);
        cr_assert_eq(got[1].duration_s, end_s - begin_s);
        stop_consumer_expect_clean_exit();
}

/*
 * How many live.notify records keyed `key` carry the event id of each of the cnt kinds for
 * session (into counts), reading every partition from the start for timeout_ms, in one pass for
 * every kind (or until one of them is more than `want`). Every test's consumer sends its own
 * sessions' notifications: the session id tells this test's apart.
 */
static void count_notify(const char *key, const char *const kinds[], int *counts, int cnt,
                         long long session, int want, int timeout_ms)
{
        char err[256], group[64], text[96], want_id[4][65];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
        long long deadline = support_now_ms() + timeout_ms;
        rd_kafka_topic_t *rkt;
        rd_kafka_t *rk;
        bool is_over = false;

        cr_assert(cnt > 0 && cnt <= 4);
        for (int k = 0; k < cnt; k++) {
                snprintf(text, sizeof(text), "notify|%s|%lld", kinds[k], session);
                crypto_sha256_hex(text, strlen(text), want_id[k]);
                counts[k] = 0;
        }
        support_unique_name("notifyread", group, sizeof(group));
        cr_assert(rd_kafka_conf_set(conf, "bootstrap.servers",
                                    support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err,
                                    sizeof(err)) == RD_KAFKA_CONF_OK);
        cr_assert(rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) == RD_KAFKA_CONF_OK);
        cr_assert(rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) ==
                  RD_KAFKA_CONF_OK);
        cr_assert((rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) != NULL, "%s",
                  err);
        rd_kafka_poll_set_consumer(rk);
        rkt = rd_kafka_topic_new(rk, "live.notify", NULL);
        cr_assert(rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0 && md->topic_cnt == 1 &&
                          md->topics[0].partition_cnt > 0,
                  "no metadata for live.notify");
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
                rd_kafka_topic_partition_list_add(parts, "live.notify",
                                                  md->topics[0].partitions[i].id)
                        ->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        cr_assert(rd_kafka_assign(rk, parts) == 0);
        rd_kafka_topic_partition_list_destroy(parts);
        while (support_now_ms() < deadline && !is_over) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                rd_kafka_headers_t *h = NULL;
                const void *val;
                size_t len;

                if (!m)
                        continue;
                if (!m->err && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0 &&
                    rd_kafka_message_headers(m, &h) == 0 &&
                    rd_kafka_header_get_last(h, "event_id", &val, &len) == 0 && len == 64) {
                        for (int k = 0; k < cnt; k++)
                                if (memcmp(val, want_id[k], 64) == 0 && ++counts[k] > want)
                                        is_over = true;
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
}

Test(stream_lifecycle, going_live_and_ending_are_one_notify_record_each)
{
        const long long begin_s = 1703731478, end_s = 1703735203;
        static const char *const kinds[] = {"stream.live", "stream.ended"};
        char s[64], anchor[64];
        int counts[2];
        long long session;

        snprintf(s, sizeof(s), "%s_notify", fx.prefix);
        snprintf(anchor, sizeof(anchor), "anchor_%s", fx.prefix);
        produce_event(s, true, "5151", begin_s, 0, -1);
        produce_event(s, true, "5151", begin_s, 0, -1); /* a vendor retry */
        produce_event(s, false, "5151", end_s, 1, 3725000);
        produce_event(s, false, "5151", end_s, 1, 3725000); /* a replay */
        wait_status(s, "ended");
        session = support_query_int(
                fx.mysql, "SELECT session_id FROM live_streams WHERE stream_id = '%s'", s);
        /* Read for a while: a retried begin and a replayed end must add nothing. */
        count_notify(anchor, kinds, counts, 2, session, 1, 8000);
        cr_assert_eq(counts[0], 1, "stream.live records of session %lld (log %s)", session,
                     fx.log_path);
        cr_assert_eq(counts[1], 1, "stream.ended records of session %lld (log %s)", session,
                     fx.log_path);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM notify_outbox WHERE stream_id = '%s' "
                                       "AND sent_at IS NOT NULL",
                                       s),
                     2);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM notify_outbox WHERE stream_id = '%s' "
                                       "AND kind = 'stream.ended' AND payload LIKE "
                                       "'%%\"duration_s\":3725%%'",
                                       s),
                     1);
        stop_consumer_expect_clean_exit();
}

Test(stream_lifecycle, an_end_without_its_begin_is_handed_off_and_adopts_the_room_tips)
{
        const long long end_s = 1703735203, push_ms = 3725118;
        const long long start_ms = end_s * 1000 - push_ms;
        struct session_end got[2];
        char s[64], anchor[64], sql[1024];
        long long session;

        snprintf(s, sizeof(s), "%s_onlyend", fx.prefix);
        snprintf(anchor, sizeof(anchor), "anchor_%s", fx.prefix);
        /* Tips reward-sync could give no session: one in the window, one before, one elsewhere. */
        snprintf(sql, sizeof(sql),
                 "INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, amount, "
                 "tipped_at) VALUES ('%s_in', 'u1', '%s', '%s', 300, FROM_UNIXTIME(%lld)), "
                 "('%s_before', 'u2', '%s', '%s', 50, FROM_UNIXTIME(%lld)), "
                 "('%s_other', 'u3', '%s', 'other_%s', 70, FROM_UNIXTIME(%lld))",
                 s, anchor, anchor, end_s - 100, s, anchor, anchor, start_ms / 1000 - 100, s,
                 anchor, fx.prefix, end_s - 100);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
        produce_event(s, false, "777", end_s, 1, push_ms);
        wait_status(s, "ended");
        session = support_query_int(
                fx.mysql, "SELECT session_id FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert(session > 0);
        cr_assert_eq(read_session_ends(s, session, got, 2, 1, 20000), 1,
                     "no session.end for an end without its begin (log %s)", fx.log_path);
        cr_assert_eq(got[0].started_at_ms, start_ms);
        cr_assert_eq(got[0].ended_at_ms, end_s * 1000);
        cr_assert_eq(got[0].duration_s, push_ms / 1000);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM recharge WHERE session_id = %lld "
                                       "AND trace_id = '%s_in'",
                                       session, s),
                     1);
        cr_assert_eq(support_query_int(fx.mysql,
                                       "SELECT COUNT(*) FROM recharge WHERE session_id IS NULL AND "
                                       "trace_id IN ('%s_before', '%s_other')",
                                       s, s),
                     2);
        stop_consumer_expect_clean_exit();
}

/* Whether the consumer's log has a line containing every one of the NULL-terminated needles. */
static bool log_has_line(const char *const *needles)
{
        size_t len;
        char *text = support_read_file(fx.log_path, &len);
        bool found = false;

        for (char *line = text, *next; line && *line && !found; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                found = true;
                for (size_t i = 0; needles[i] && found; i++)
                        found = strstr(line, needles[i]) != NULL;
        }
        free(text);
        return found;
}

/* The close_method and event_type of the stream's recorded event `event_id` ("" when absent). */
static void recorded_close(const char *event_id, char *type, size_t type_size)
{
        query1(type, type_size,
               "SELECT CONCAT(event_type, '/', vendor) FROM live_events WHERE consumer = 'stream' "
               "AND event_id = '%s'",
               event_id);
}

Test(stream_lifecycle, a_banned_anchor_who_pushes_is_cut_off_with_close_method_3)
{
        char s[64], anchor[64], sql[256], begin_id[65], key[128], want_id[65], v[64];

        snprintf(s, sizeof(s), "%s_banned", fx.prefix);
        snprintf(anchor, sizeof(anchor), "anchor_%s_b", fx.prefix);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO anchors (anchor_id, status) VALUES ('%s', 'banned')", anchor);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
        produce_event_of(anchor, s, true, "6001", 1703731478, 0, -1);
        wait_status(s, "ended");
        query1(v, sizeof(v), "SELECT close_method FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "3");
        cr_assert(wait_online(s, false), "%s still in set:live:online", s);

        stream_event_id(s, true, "6001", begin_id);
        query1(v, sizeof(v),
               "SELECT outcome FROM live_events WHERE consumer = 'stream' AND event_id = '%s'",
               begin_id);
        cr_assert_str_eq(v, "cutoff_banned");
        snprintf(key, sizeof(key), "cutoff|%s", begin_id);
        crypto_sha256_hex(key, strlen(key), want_id);
        recorded_close(want_id, v, sizeof(v));
        cr_assert_str_eq(v, "stream.close/liveflow",
                         "the cut-off close must be the one the role ended it with");
        /* The begin's own event time: a session of zero seconds. */
        query1(v, sizeof(v), "SELECT duration_s FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "0");
        cr_assert(log_has_line((const char *const[]){"anchor cut off", s, "anchor banned", NULL}),
                  "no cut-off log line for %s in %s", s, fx.log_path);
        stop_consumer_expect_clean_exit();
}

Test(stream_lifecycle, a_suspension_counts_only_until_it_runs_out)
{
        const long long begin_s = 1703731478;
        char past[64], future[64], a_past[64], a_future[64], sql[512], v[64], begin_id[65],
                key[128], cut_id[65];

        snprintf(past, sizeof(past), "%s_susp_past", fx.prefix);
        snprintf(future, sizeof(future), "%s_susp_now", fx.prefix);
        snprintf(a_past, sizeof(a_past), "anchor_%s_p", fx.prefix);
        snprintf(a_future, sizeof(a_future), "anchor_%s_f", fx.prefix);
        /* Judged at the begin's event time: an hour before it has run out, an hour after has not.
         */
        snprintf(
                sql, sizeof(sql),
                "INSERT INTO anchors (anchor_id, status, suspended_until) VALUES "
                "('%s', 'suspended', FROM_UNIXTIME(%lld)), ('%s', 'suspended', FROM_UNIXTIME(%lld))",
                a_past, begin_s - 3600, a_future, begin_s + 3600);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));

        produce_event_of(a_past, past, true, "7001", begin_s, 0, -1);
        produce_event_of(a_future, future, true, "7002", begin_s, 0, -1);
        wait_status(future, "ended");
        query1(v, sizeof(v), "SELECT close_method FROM live_streams WHERE stream_id = '%s'",
               future);
        cr_assert_str_eq(v, "3");
        cr_assert(wait_online(future, false));
        cr_assert(log_has_line(
                (const char *const[]){"anchor cut off", future, "anchor suspended", NULL}));

        /* Both begins went to the role before the close of the second; the first stays live. */
        wait_status(past, "live");
        cr_assert(wait_online(past, true));
        stream_event_id(past, true, "7001", begin_id);
        query1(v, sizeof(v),
               "SELECT outcome FROM live_events WHERE consumer = 'stream' AND event_id = '%s'",
               begin_id);
        cr_assert_str_eq(v, "applied");
        snprintf(key, sizeof(key), "cutoff|%s", begin_id);
        crypto_sha256_hex(key, strlen(key), cut_id);
        support_sleep_ms(2000); /* a close would have followed its begin's publish by now */
        recorded_close(cut_id, v, sizeof(v));
        cr_assert_str_eq(v, "", "an expired suspension must not cut the stream off");
        query1(v, sizeof(v), "SELECT status FROM live_streams WHERE stream_id = '%s'", past);
        cr_assert_str_eq(v, "live");
        stop_consumer_expect_clean_exit();
}

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
                  fx.log_path);
}

static long long lost_count(void)
{
        char cmd[256], out[64] = "";
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "curl -sf http://127.0.0.1:%d/metrics | grep '^liveflow_redis_data_lost_total ' "
                 "| awk '{print $2}'",
                 fx.admin_port);
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
                snprintf(anchors[i], sizeof(anchors[i]), "%s_an%d", fx.prefix, i);
        for (int i = 0; i < 2; i++)
                snprintf(live[i], sizeof(live[i]), "%s_live%d", fx.prefix, i);
        snprintf(gone, sizeof(gone), "%s_gone", fx.prefix);
        snprintf(stale, sizeof(stale), "%s_stale", fx.prefix);
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
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));

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
        cr_assert_eq(lost_count(), 2, "liveflow_redis_data_lost_total (log %s)", fx.log_path);

        /* Events keep flowing on the rebuilt keys. */
        snprintf(v, sizeof(v), "%s_new", fx.prefix);
        produce_event(v, true, "9002", 1703731478, 0, -1);
        cr_assert(wait_online(v, true), "%s not in set:live:online (log %s)", v, fx.log_path);
        stop_consumer_expect_clean_exit();
}

/*
 * The ghost sweep runs in a consumer of its own with a short silence. It reads from the end
 * of live.stream, not the beginning, so that it does not sweep every stream the other tests
 * left live; streams of tests running at the same time may still be closed by it, which is
 * what the sweep is for, and their tests look at them well within the silence.
 */
TestSuite(stream_sweep, .init = setup_stores, .fini = teardown, .timeout = 120,
          .disabled = !IS_SWEEP_BINARY);

Test(stream_sweep, a_begin_without_end_is_closed_after_the_silence)
{
        /* No vendor API is configured: the stream is closed after the unverified silence. */
        static const char *const ghost_env[] = {
                "LIVEFLOW_STREAM_GHOST_SILENCE_S=2", "LIVEFLOW_STREAM_SWEEP_INTERVAL_S=1",
                "LIVEFLOW_STREAM_GHOST_UNVERIFIED_SILENCE_S=2",
                "LIVEFLOW_KAFKA_PROP_AUTO_OFFSET_RESET=latest", NULL};
        struct session_end got[2];
        char s[64], v[64], key[320], want_id[65];
        long long session, t0;

        start_consumer_with(ghost_env);
        snprintf(s, sizeof(s), "%s_ghost", fx.prefix);
        /* "latest" is resolved after the assignment: resend (the same event id) until it is seen.
         */
        for (int i = 0; i < 10; i++) {
                produce_event(s, true, "8001", 1703731478, 0, -1);
                t0 = support_now_ms();
                while (support_now_ms() - t0 < 2000 &&
                       support_query_int(fx.mysql,
                                         "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'",
                                         s) == 0)
                        support_sleep_ms(50);
                if (support_query_int(fx.mysql,
                                      "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'",
                                      s) > 0)
                        break;
        }
        session = support_query_int(
                fx.mysql, "SELECT session_id FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert(session > 0, "the begin of %s was never applied (log %s)", s, fx.log_path);
        t0 = support_now_ms();
        wait_status(s, "ended");
        cr_assert(support_now_ms() - t0 < 12000,
                  "closed after %lld ms, want about silence + interval", support_now_ms() - t0);
        query1(v, sizeof(v), "SELECT close_method FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "1");
        query1(v, sizeof(v),
               "SELECT close_reason LIKE 'ghost: %% without a sign of life, vendor not asked%%' "
               "FROM live_streams WHERE stream_id = '%s'",
               s);
        cr_assert_str_eq(v, "1", "close_reason does not say an unverified ghost close");
        cr_assert(wait_online(s, false), "%s still in set:live:online", s);

        snprintf(key, sizeof(key), "ghost|%s|%lld", s, session);
        crypto_sha256_hex(key, strlen(key), want_id);
        recorded_close(want_id, v, sizeof(v));
        cr_assert_str_eq(v, "stream.close/liveflow",
                         "the ghost close must be the one the role ended it with");
        query1(v, sizeof(v), "SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "2", "a begin and one ghost close, however many sweeps ran");
        cr_assert(log_has_line((const char *const[]){"ghost stream closed", s, NULL}),
                  "no ghost log line in %s", fx.log_path);
        /* It ended through the normal path: its session is handed off, ended by the stream. */
        cr_assert_eq(read_session_ends(s, session, got, 2, 1, 20000), 1, "no session.end for %s",
                     s);
        cr_assert_eq(got[0].close_method, 1);
        stop_consumer_expect_clean_exit();
}

Test(stream_sweep, screenshots_and_viewers_are_signs_of_life)
{
        static const char *const ghost_env[] = {
                "LIVEFLOW_STREAM_GHOST_SILENCE_S=2", "LIVEFLOW_STREAM_SWEEP_INTERVAL_S=1",
                "LIVEFLOW_STREAM_GHOST_UNVERIFIED_SILENCE_S=2", NULL};
        char shots[64], watched[64], silent[64], v[64], sql[1024];

        start_consumer_with(ghost_env);
        snprintf(shots, sizeof(shots), "%s_shots", fx.prefix);
        snprintf(watched, sizeof(watched), "%s_watched", fx.prefix);
        snprintf(silent, sizeof(silent), "%s_silent", fx.prefix);
        produce_event(shots, true, "8201", 1703731478, 0, -1);
        produce_event(watched, true, "8202", 1703731478, 0, -1);
        produce_event(silent, true, "8203", 1703731478, 0, -1);
        wait_status(shots, "live");
        wait_status(watched, "live");
        wait_status(silent, "live");
        /* Hours without a stream event; a screenshot a minute, or a viewer still beating. */
        snprintf(sql, sizeof(sql),
                 "INSERT INTO live_snapshots (stream_id, pic_url, taken_at, event_id) VALUES "
                 "('%s', 'p.jpg', NOW(3) + INTERVAL 1 HOUR, SHA2('%s', 256))",
                 shots, shots);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
        snprintf(sql, sizeof(sql),
                 "INSERT INTO audience_visit (room_id, audience_key, is_open, stream_id, "
                 "entered_at, last_seen_at) VALUES ('r', 'app:u1', 1, '%s', NOW(3) - INTERVAL 7 "
                 "HOUR, NOW(3) + INTERVAL 1 HOUR)",
                 watched);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
        cr_assert(mysql_query(fx.mysql, "UPDATE live_streams SET last_event_at = NOW(3) - "
                                        "INTERVAL 7 HOUR") == 0,
                  "%s", mysql_error(fx.mysql));
        wait_status(silent, "ended"); /* the sweep runs */
        support_sleep_ms(2500);       /* and runs again */
        query1(v, sizeof(v), "SELECT status FROM live_streams WHERE stream_id = '%s'", shots);
        cr_assert_str_eq(v, "live", "a stream with fresh screenshots is not a ghost");
        query1(v, sizeof(v), "SELECT status FROM live_streams WHERE stream_id = '%s'", watched);
        cr_assert_str_eq(v, "live", "a stream with a viewer still watching is not a ghost");
        stop_consumer_expect_clean_exit();
}

Test(stream_sweep, a_zero_silence_sweeps_nothing)
{
        static const char *const off_env[] = {"LIVEFLOW_STREAM_GHOST_SILENCE_S=0",
                                              "LIVEFLOW_STREAM_SWEEP_INTERVAL_S=1", NULL};
        char s[64], v[64];

        start_consumer_with(off_env);
        snprintf(s, sizeof(s), "%s_noghost", fx.prefix);
        produce_event(s, true, "8101", 1703731478, 0, -1);
        wait_status(s, "live");
        cr_assert(mysql_query(fx.mysql,
                              "UPDATE live_streams SET last_event_at = NOW(3) - INTERVAL 1 DAY") ==
                          0,
                  "%s", mysql_error(fx.mysql));
        support_sleep_ms(3000);
        query1(v, sizeof(v), "SELECT status FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "live", "the sweep is off");
        stop_consumer_expect_clean_exit();
}
