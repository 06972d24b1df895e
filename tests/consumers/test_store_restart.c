/*
 * test_store_restart.c: the fixture's MariaDB itself is stopped and started again under a
 * running worker: the role holds its partitions, sends nothing to the DLQ, and applies every
 * record once the server is back. One test in its own binary: the other suites run before or
 * after it, never while the server is down.
 */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "support_stack.h"
#include "url.h"

static struct {
        char mysql_url[512];
        char prefix[48];
        char group[96];
        char log_path[256];
        pid_t worker;
        int admin_port;
        rd_kafka_t *producer;
        struct codec *codec;
} fx;

static void setup(void)
{
        char err[256];

        support_unique_name("sr", fx.prefix, sizeof(fx.prefix));
        snprintf(fx.group, sizeof(fx.group), "test.%s", fx.prefix);
        snprintf(fx.log_path, sizeof(fx.log_path), "/tmp/%s.consumer.log", fx.prefix);
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        fx.producer = support_producer();
        cr_assert((fx.codec = codec_new(err, sizeof(err))) != NULL, "%s", err);
}

static void teardown(void)
{
        if (fx.worker > 0 && support_wait_exit(fx.worker, 0) == -1) {
                kill(fx.worker, SIGKILL);
                support_wait_exit(fx.worker, 5000);
        }
        if (fx.producer)
                rd_kafka_destroy(fx.producer);
        codec_destroy(fx.codec);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(store_restart, .init = setup, .fini = teardown, .timeout = 240);

static void produce_begin(const char *stream_id, long long sequence)
{
        char key[256], seq[32], event_id[65], err[256];
        json_t *payload;
        void *buf;
        size_t len;

        snprintf(seq, sizeof(seq), "%lld", sequence);
        snprintf(key, sizeof(key), "tencent|1|%s|%s", stream_id, seq);
        crypto_sha256_hex(key, strlen(key), event_id);
        payload = json_pack("{s:s}", "sequence", seq);
        struct envelope env = {
                .event_id = event_id,
                .vendor = "tencent",
                .event_type = "stream.begin",
                .stream_id = stream_id,
                .anchor_id = stream_id,
                .room_id = stream_id,
                .event_time_ms = 1000000 + sequence,
                .receive_time_ms = 1000000 + sequence,
                .trace_id = "0123456789abcdef0123456789abcdef",
                .raw = "{}",
                .raw_len = 2,
        };
        cr_assert(codec_encode(fx.codec, &env, "StreamBegin", payload, &buf, &len, err,
                               sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        support_produce(fx.producer, "live.stream", stream_id, buf, len, "stream.begin");
        free(buf);
}

/* Rows of this test's streams that are live, through a fresh connection; -1 while the server
 * does not answer. */
static long long live_count_safe(void)
{
        char err[256], sql[256];
        struct mysql_url u;
        MYSQL *mysql = mysql_init(NULL);
        MYSQL_RES *res;
        MYSQL_ROW row;
        long long n = -1;

        cr_assert(url_parse_mysql(fx.mysql_url, &u, err, sizeof(err)) == 0, "%s", err);
        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM live_streams WHERE stream_id LIKE '%s%%' AND status = "
                 "'live'",
                 fx.prefix);
        if (mysql_real_connect(mysql, u.host, u.user, u.password, u.database, u.port, NULL, 0) &&
            mysql_query(mysql, sql) == 0 && (res = mysql_store_result(mysql))) {
                if ((row = mysql_fetch_row(res)) && row[0])
                        n = atoll(row[0]);
                mysql_free_result(res);
        }
        mysql_close(mysql);
        return n;
}

static long long scrape(const char *series)
{
        char cmd[320], out[64] = "";
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "curl -sf http://127.0.0.1:%d/metrics | grep -v '^#' | grep -F '%s' | awk "
                 "'{print $2}'",
                 fx.admin_port, series);
        if (!(p = popen(cmd, "r")))
                return -1;
        if (!fgets(out, sizeof(out), p))
                out[0] = '\0';
        pclose(p);
        return out[0] ? atoll(out) : -1;
}

static void wait_metric(const char *series, long long want, int timeout_ms)
{
        long long deadline = support_now_ms() + timeout_ms, got = -1;

        while ((got = scrape(series)) != want && support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert_eq(got, want, "%s (log %s)", series, fx.log_path);
}

Test(store_restart, mariadb_stopped_and_started_again_dead_letters_nothing)
{
        const char *dir = support_fixture("LIVEFLOW_TEST_DIR");
        const char *const env[] = {"LIVEFLOW_MYSQL_TIMEOUT_S=2",
                                   "LIVEFLOW_STORE_BACKOFF_MAX_MS=500", NULL};
        static const char *const topics[] = {"live.stream", NULL};
        char pidfile[512], cmd[4096], stream[128], *pidtext;
        pid_t server;
        const int held = 20;

        snprintf(pidfile, sizeof(pidfile), "%s/pid/mariadb.pid", dir);
        cr_assert((pidtext = support_read_file(pidfile, NULL)) != NULL);
        server = (pid_t)atoi(pidtext);
        free(pidtext);
        cr_assert(server > 0 && kill(server, 0) == 0, "no fixture mariadbd at pid %d", server);
        support_command_line(server, cmd, sizeof(cmd));

        support_group_at_end(fx.group, topics);
        fx.worker = support_start_worker("liveflow-consumer", "stream", fx.mysql_url, fx.group, env,
                                         fx.log_path, &fx.admin_port);
        snprintf(stream, sizeof(stream), "%s_first", fx.prefix);
        produce_begin(stream, 1);
        long long deadline = support_now_ms() + 20000;

        while (live_count_safe() < 1 && support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert_eq(live_count_safe(), 1, "(log %s)", fx.log_path);

        /* Stop the server cleanly (a crash could lose its last second: the fixture does not
         * flush the log at each commit), and produce while it is away. */
        cr_assert(kill(server, SIGTERM) == 0);
        deadline = support_now_ms() + 60000;
        while (kill(server, 0) == 0 && support_now_ms() < deadline)
                support_sleep_ms(50);
        cr_assert(kill(server, 0) != 0, "mariadbd did not stop");
        for (int i = 0; i < held; i++) {
                snprintf(stream, sizeof(stream), "%s_held%d", fx.prefix, i);
                produce_begin(stream, 10 + i);
        }
        wait_metric("liveflow_consumer_store_unavailable{role=\"stream\",store=\"mysql\"}", 1,
                    30000);
        support_sleep_ms(3000);

        /* Start it again with the same command line; services.sh stops it by the pid file. */
        cr_assert_eq(support_sh("cd / && setsid %s >>%s/log/mariadb.log 2>&1 </dev/null & echo $! "
                                ">%s",
                                cmd, dir, pidfile),
                     0);
        deadline = support_now_ms() + 60000;
        while (live_count_safe() < held + 1 && support_now_ms() < deadline)
                support_sleep_ms(200);
        cr_assert_eq(live_count_safe(), held + 1,
                     "every record applied once the server is back (log %s)", fx.log_path);
        wait_metric("liveflow_consumer_store_unavailable{role=\"stream\",store=\"mysql\"}", 0,
                    30000);
        /* Every held record is applied: a dead letter of one would be on the DLQ by now. */
        for (int i = 0; i < held; i++) {
                snprintf(stream, sizeof(stream), "%s_held%d", fx.prefix, i);
                cr_assert_eq(support_count_records_now("live.stream.dlq", stream, NULL, NULL, 0), 0,
                             "%s went to the DLQ (log %s)", stream, fx.log_path);
        }
        cr_assert(kill(fx.worker, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(fx.worker, 20000), 0, "(log %s)", fx.log_path);
        fx.worker = 0;
}
