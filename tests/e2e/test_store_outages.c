/*
 * test_store_outages.c: the stores themselves fail under the money roles while signed tips
 * (every seventh posted twice) and a few stream begins and ends flow through the real receiver:
 * recharge and settlement_detail renamed away and back (a bad deploy), the fixture's mariadbd
 * stopped and started again, Redis killed and started again empty. Each role must say it paused
 * (liveflow_consumer_store_unavailable and /readyz 503: the money roles on MySQL, the stream
 * role on Redis too) and resume by itself. Afterwards nothing was dead-lettered by any of the
 * test's groups, every tip is in recharge, settlement_detail and the stats once, the balances
 * are exact, Redis's room figures and live-stream keys are right again (rebuilt from MySQL by
 * the roles themselves) and `liveflow-ctl reconcile` exits 0.
 *
 * The processes: liveflow-receiver, liveflow-consumer reward-sync and stream, liveflow-settlement
 * and liveflow-stats, on a database of their own, Redis database REDIS_DB (emptied) and groups
 * of their own committed at the end of every topic first. One test in its own binary: no other
 * suite runs while a server is down. The servers are left running as they were found (same
 * command lines, ports, socket and data directory; their pid files and the fixture env file
 * name the new processes). The logs are /tmp/<prefix>.*.log, removed when the test passes.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "support.h"
#include "url.h"

#define TIPS        300
#define ANCHORS     12 /* each with its own room */
#define AUDIENCES   40
#define STREAMS     10  /* streams of their own anchors and rooms */
#define QUIET_FROM  190 /* see tip_anchor() */
#define SENDERS     2
#define RATE        40 /* tips posted per second at most */
#define RATIO_BP    4500
#define REDIS_DB    12 /* no other suite uses it */
#define WAIT_MS     60000
#define HOUR_MS     3600000LL
#define TIP_STEP_MS 10000LL /* between two tips' ts */
#define KEY_RAW     "liveflow-outage-tip-secret-32by!"
#define TENCENT_KEY "outage-callback-key"
#define EPOCH_KEY   "liveflow:redis:epoch:reward-sync"

struct worker {
        const char *name, *binary, *role;
        char group[96], log[256];
        pid_t pid;
        int admin_port;
};

static struct {
        char prefix[32];
        char mysql_url[512];
        char secret[96];
        char receiver_log[256];
        pid_t receiver;
        int http_port;
        long long base_ms; /* the first tip's ts */
        struct worker w[4];
        MYSQL *mysql;
        redisContext *redis;
        struct support_reader *dlq[3];
        long long gross[ANCHORS], count[ANCHORS], share[ANCHORS];
} fx;

enum { W_SYNC, W_SETTLE, W_STATS, W_STREAM };

static const char *const dlq_topics[] = {"live.reward.dlq", "live.session.dlq", "live.stream.dlq"};

/* What the sender threads share with the test. */
static struct {
        atomic_int next, done, limit, failures;
        atomic_bool stop;
        char failure[256];
        pthread_t threads[SENDERS];
        int thread_cnt;
        long long t0_ms;
} run;

static void anchor_id(int a, char *out, size_t size)
{
        snprintf(out, size, "%s-anchor%02d", fx.prefix, a);
}

static void room_id(int a, char *out, size_t size)
{
        snprintf(out, size, "%s-room%02d", fx.prefix, a);
}

static void stream_id(int s, char *out, size_t size)
{
        snprintf(out, size, "%s-s%02d", fx.prefix, s);
}

/*
 * Tip i: its anchor and amount. From tip QUIET_FROM on (posted once mariadbd is back, just
 * before Redis goes) only the first half of the anchors get tips: the rooms of the other half
 * see no tip while or after Redis is away, so only the rebuild of a Redis that lost its data
 * (not the projection of new tips, not reward-sync's rebuild of the rooms it failed to
 * project) can make their figures right again.
 */
static int tip_anchor(int i)
{
        if (i >= QUIET_FROM)
                return (i * 5 + i / (ANCHORS / 2)) % (ANCHORS / 2);
        return (i * 7 + i / ANCHORS) % ANCHORS;
}

static long long tip_amount(int i)
{
        return 1 + (i * 37) % 997;
}

/* ------------------------------------------------------------------ processes */

static void stop_pid(pid_t *pid)
{
        if (*pid > 0 && support_wait_exit(*pid, 0) == -1) {
                kill(*pid, SIGKILL);
                support_wait_exit(*pid, 10000);
        }
        *pid = 0;
}

static void setup(void)
{
        unsigned char b64[64];

        support_unique_name("so", fx.prefix, sizeof(fx.prefix));
        EVP_EncodeBlock(b64, (const unsigned char *)KEY_RAW, (int)strlen(KEY_RAW));
        snprintf(fx.secret, sizeof(fx.secret), "whsec_%s", b64);
        cr_assert(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
}

static void stop_senders(void)
{
        atomic_store(&run.stop, true);
        for (int i = 0; i < run.thread_cnt; i++)
                pthread_join(run.threads[i], NULL);
        run.thread_cnt = 0;
}

static void teardown(void)
{
        stop_senders();
        stop_pid(&fx.receiver);
        for (int i = 0; i < 4; i++)
                stop_pid(&fx.w[i].pid);
        for (int i = 0; i < 3; i++)
                support_reader_close(fx.dlq[i]);
        if (fx.mysql)
                mysql_close(fx.mysql);
        if (fx.redis)
                redisFree(fx.redis);
        curl_global_cleanup();
        memset(&fx, 0, sizeof(fx));
}

TestSuite(store_outages, .init = setup, .fini = teardown, .timeout = 400);

static void redis_url(char *out, size_t size)
{
        snprintf(out, size, "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%s/%d",
                 support_fixture("LIVEFLOW_TEST_REDIS_PORT"), REDIS_DB);
}

/* The test's own connection to its Redis database; again after a restart. */
static void redis_connect(void)
{
        int port = atoi(support_fixture("LIVEFLOW_TEST_REDIS_PORT"));
        redisReply *r;

        if (fx.redis)
                redisFree(fx.redis);
        fx.redis = redisConnect("127.0.0.1", port);
        cr_assert(fx.redis && !fx.redis->err, "redis 127.0.0.1:%d", port);
        r = redisCommand(fx.redis, "SELECT %d", REDIS_DB);
        cr_assert(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
}

static void start_receiver(void)
{
        char bin[512], e_boot[512], e_http[64], e_admin[64], e_secret[160], e_redis[160];
        char *argv[] = {bin, NULL};
        char *env[] = {e_boot,
                       e_http,
                       e_admin,
                       e_secret,
                       e_redis,
                       (char *)"LIVEFLOW_HTTP_ADDR=127.0.0.1",
                       (char *)"LIVEFLOW_TENCENT_KEY=" TENCENT_KEY,
                       (char *)"LIVEFLOW_REDIS_TIMEOUT_MS=1000",
                       NULL};
        int admin = support_free_port();

        fx.http_port = support_free_port();
        support_bin_path("liveflow-receiver", bin, sizeof(bin));
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(e_http, sizeof(e_http), "LIVEFLOW_HTTP_PORT=%d", fx.http_port);
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", admin);
        snprintf(e_secret, sizeof(e_secret), "LIVEFLOW_HMAC_SECRET=%s", fx.secret);
        redis_url(e_redis, sizeof(e_redis));
        snprintf(fx.receiver_log, sizeof(fx.receiver_log), "/tmp/%s.receiver.log", fx.prefix);
        fx.receiver = support_spawn(argv, env, fx.receiver_log);
        cr_assert(support_wait_ready(admin, 30000) == 0, "receiver not ready; see %s",
                  fx.receiver_log);
}

/* The topics the roles read: each new group starts at their current ends. */
static const char *const all_topics[] = {"live.reward", "live.withdrawal", "live.session",
                                         "live.viewer", "live.stream",     NULL};

static void start_workers(void)
{
        static const struct {
                const char *name, *binary, *role;
        } roles[] = {
                {"reward-sync", "liveflow-consumer", "reward-sync"},
                {"settlement", "liveflow-settlement", NULL},
                {"stats", "liveflow-stats", NULL},
                {"stream", "liveflow-consumer", "stream"},
        };
        char e_redis[160], prefix[sizeof(fx.prefix)], group[sizeof(fx.w[0].group)],
                log[sizeof(fx.w[0].log)];
        const char *const env[] = {e_redis,
                                   "LIVEFLOW_MYSQL_TIMEOUT_S=2",
                                   "LIVEFLOW_REDIS_TIMEOUT_MS=1000",
                                   "LIVEFLOW_STORE_BACKOFF_MAX_MS=500",
                                   "LIVEFLOW_SETTLEMENT_DEFAULT_RATIO_BP=4500",
                                   NULL};

        redis_url(e_redis, sizeof(e_redis));
        memcpy(prefix, fx.prefix, sizeof(prefix));
        for (int i = 0; i < 4; i++) {
                struct worker *w = &fx.w[i];

                w->name = roles[i].name;
                w->binary = roles[i].binary;
                w->role = roles[i].role;
                /* Through locals: fx.prefix and w are parts of one object. */
                snprintf(group, sizeof(group), "outage.%s.%s", prefix, roles[i].name);
                snprintf(log, sizeof(log), "/tmp/%s.%s.log", prefix, roles[i].name);
                memcpy(w->group, group, sizeof(w->group));
                memcpy(w->log, log, sizeof(w->log));
                support_group_at_end(w->group, all_topics);
                w->pid = support_start_worker(w->binary, w->role, fx.mysql_url, w->group, env,
                                              w->log, &w->admin_port);
        }
}

/* ------------------------------------------------------------------ metrics */

static long long scrape(const struct worker *w, const char *series)
{
        char cmd[400], out[64] = "";
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "curl -sf --max-time 5 http://127.0.0.1:%d/metrics | grep -v '^#' | grep -F "
                 "'%s' | awk '{print $2}'",
                 w->admin_port, series);
        if (!(p = popen(cmd, "r")))
                return -1;
        if (!fgets(out, sizeof(out), p))
                out[0] = '\0';
        pclose(p);
        return out[0] ? atoll(out) : -1;
}

/* liveflow_consumer_store_unavailable of the worker's role for store. */
static long long unavailable(const struct worker *w, const char *store)
{
        char series[160];

        snprintf(series, sizeof(series),
                 "liveflow_consumer_store_unavailable{role=\"%s\",store=\"%s\"}", w->name, store);
        return scrape(w, series);
}

/* Waits until the worker says the store is (un)available; what, for the message. */
static void wait_unavailable(const struct worker *w, const char *store, long long want,
                             const char *what)
{
        long long deadline = support_now_ms() + WAIT_MS, got;

        while ((got = unavailable(w, store)) != want && support_now_ms() < deadline)
                support_sleep_ms(100);
        cr_assert(eq(i64, got, want), "%s: %s store_unavailable{store=%s} (log %s)", what, w->name,
                  store, w->log); /* Paused: not ready; resumed: ready again. */
        if (want)
                cr_assert(support_wait_ready(w->admin_port, 0) != 0, "%s: %s /readyz 200 (log %s)",
                          what, w->name, w->log);
        else
                cr_assert(eq(int, support_wait_ready(w->admin_port, WAIT_MS), 0),
                          "%s: %s /readyz not 200 (log %s)", what, w->name, w->log);
}

/* ------------------------------------------------------------------ posting */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
        (void)p;
        (void)arg;
        return size * n;
}

static long post(CURL *curl, const char *path, const char *body, struct curl_slist *h)
{
        char url[128];
        long status = -1;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx.http_port, path);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        if (curl_easy_perform(curl) == CURLE_OK)
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        return status;
}

/* One tip, Standard Webhooks-signed; a 503 or no answer is retried (same webhook-id, fresh
 * timestamp), as the tip service would. copy 1 is the tip posted again under a new webhook-id.
 * @returns the last status. */
static long post_tip(CURL *curl, int i, int copy)
{
        char body[768], anchor[64], room[64], text[1024], h_id[96], h_ts[64], h_sig[128];
        unsigned char mac[EVP_MAX_MD_SIZE], sig[96];
        unsigned int mac_len = 0;
        long status = -1;

        anchor_id(tip_anchor(i), anchor, sizeof(anchor));
        room_id(tip_anchor(i), room, sizeof(room));
        snprintf(body, sizeof(body),
                 "{\"trace_id\":\"%s-t%03d\",\"audience_id\":\"%s-fan%02d\",\"anchor_id\":\"%s\","
                 "\"room_id\":\"%s\",\"amount\":%lld,\"gift_id\":\"g%d\",\"gift_count\":1,"
                 "\"ts\":%lld,\"anchor_gender\":\"female\",\"audience_gender\":\"male\"}",
                 fx.prefix, i, fx.prefix, i % AUDIENCES, anchor, room, tip_amount(i), i % 5,
                 fx.base_ms + i * TIP_STEP_MS);
        for (int attempt = 0; attempt < 40 && !atomic_load(&run.stop); attempt++) {
                long long ts_s = (long long)time(NULL);
                struct curl_slist *h;
                int n;

                if (attempt)
                        support_sleep_ms(250 * (attempt < 8 ? attempt : 8));
                n = snprintf(text, sizeof(text), "msg_%s_t%03d_%d.%lld.%s", fx.prefix, i, copy,
                             ts_s, body);
                HMAC(EVP_sha256(), KEY_RAW, (int)strlen(KEY_RAW), (const unsigned char *)text,
                     (size_t)n, mac, &mac_len);
                EVP_EncodeBlock(sig, mac, (int)mac_len);
                snprintf(h_id, sizeof(h_id), "webhook-id: msg_%s_t%03d_%d", fx.prefix, i, copy);
                snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %lld", ts_s);
                snprintf(h_sig, sizeof(h_sig), "webhook-signature: v1,%s", sig);
                h = curl_slist_append(NULL, "Content-Type: application/json");
                h = curl_slist_append(h, h_id);
                h = curl_slist_append(h, h_ts);
                h = curl_slist_append(h, h_sig);
                status = post(curl, "/v1/rewards", body, h);
                curl_slist_free_all(h);
                if (status != 503 && status != -1)
                        break;
        }
        return status;
}

static void *sender_main(void *arg)
{
        CURL *curl = curl_easy_init();

        (void)arg;
        for (;;) {
                int i = atomic_fetch_add(&run.next, 1);
                long long due = run.t0_ms + (long long)i * 1000 / RATE;
                long status;

                if (i >= TIPS)
                        break;
                while ((i >= atomic_load(&run.limit) || support_now_ms() < due) &&
                       !atomic_load(&run.stop))
                        support_sleep_ms(5);
                if (atomic_load(&run.stop) || !curl)
                        break;
                /* Every seventh tip is posted twice (the tip service's own retry). */
                for (int copy = 0; copy <= (i % 7 == 0); copy++)
                        if ((status = post_tip(curl, i, copy)) != 200 &&
                            atomic_fetch_add(&run.failures, 1) == 0)
                                snprintf(run.failure, sizeof(run.failure),
                                         "tip %d copy %d: status %ld", i, copy, status);
                atomic_fetch_add(&run.done, 1);
        }
        if (curl)
                curl_easy_cleanup(curl);
        else
                atomic_fetch_add(&run.failures, 1);
        return NULL;
}

/* Lets the senders post tips up to (not including) limit, and waits until they did. */
static void post_until(int limit, bool wait)
{
        long long deadline = support_now_ms() + WAIT_MS;

        atomic_store(&run.limit, limit);
        while (wait && atomic_load(&run.done) < limit && support_now_ms() < deadline)
                support_sleep_ms(20);
        cr_assert(eq(int, atomic_load(&run.failures), 0), "%s (receiver log %s)", run.failure,
                  fx.receiver_log);
        cr_assert(wait == false || atomic_load(&run.done) >= limit, "tips posted: %d of %d",
                  atomic_load(&run.done), limit);
}

/* A signed Tencent push (begin) or interrupt (end) for stream s; retried until a 200. */
static void post_stream(int s, bool is_begin)
{
        char body[2048], sign[33], text[128], sid[64], anchor[64], room[64];
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        CURL *curl = curl_easy_init();
        long long t = (long long)time(NULL) + 600;
        long status = -1;

        cr_assert_not_null(curl);
        stream_id(s, sid, sizeof(sid));
        anchor_id(ANCHORS + s, anchor, sizeof(anchor));
        room_id(ANCHORS + s, room, sizeof(room));
        snprintf(text, sizeof(text), "%s%lld", TENCENT_KEY, t);
        crypto_md5_hex(text, strlen(text), sign);
        snprintf(body, sizeof(body),
                 "{\"app\":\"test.domain.com\",\"appid\":12345678,\"appname\":\"live\","
                 "\"channel_id\":\"%s\",\"errcode\":%d,\"errmsg\":\"%s\",\"event_time\":%lld,"
                 "\"event_type\":%d,\"node\":\"42.81.194.37\",\"sequence\":\"%d\",\"sign\":\"%s\","
                 "\"stream_id\":\"%s\",\"stream_param\":\"anchor_id=%s&room_id=%s\",\"t\":%lld,"
                 "\"user_ip\":\"1.1.1.1\"%s}",
                 sid, is_begin ? 0 : 1, is_begin ? "ok" : "recv rtmp deleteStream",
                 (long long)time(NULL) - (is_begin ? 120 : 0), is_begin ? 1 : 0, 1000 + s, sign,
                 sid, anchor, room, t, is_begin ? "" : ",\"push_duration\":\"60000\"");
        for (int attempt = 0; attempt < 40 && status != 200; attempt++) {
                if (attempt)
                        support_sleep_ms(250);
                status = post(curl, "/callbacks/tencent", body, h);
        }
        curl_easy_cleanup(curl);
        curl_slist_free_all(h);
        cr_assert(eq(long, status, 200), "stream %s %s (receiver log %s)", sid,
                  is_begin ? "begin" : "end", fx.receiver_log);
}

/* ------------------------------------------------------------------ the outages */

static void sql_or_fail(const char *sql)
{
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.mysql));
}

/* A fresh connection answers (the server may be down): @returns true when it did. */
static bool mysql_answers(void)
{
        char err[256];
        struct mysql_url u;
        MYSQL *m = mysql_init(NULL);
        bool ok;

        cr_assert(url_parse_mysql(fx.mysql_url, &u, err, sizeof(err)) == 0, "%s", err);
        ok = mysql_real_connect(m, u.host, u.user, u.password, u.database, u.port, NULL, 0) &&
             mysql_query(m, "SELECT 1 FROM recharge LIMIT 1") == 0;
        if (ok)
                mysql_free_result(mysql_store_result(m));
        mysql_close(m);
        return ok;
}

/* The fixture file DIR/pid/<name>.pid and the pid in it. */
static pid_t fixture_pid(const char *name, char *pidfile, size_t size)
{
        char *text;
        pid_t pid;

        snprintf(pidfile, size, "%s/pid/%s.pid", support_fixture("LIVEFLOW_TEST_DIR"), name);
        text = support_read_file(pidfile, NULL);
        cr_assert(text != NULL, "%s", pidfile);
        pid = (pid_t)atoi(text);
        free(text);
        cr_assert(pid > 0 && kill(pid, 0) == 0, "no fixture %s at pid %d", name, (int)pid);
        return pid;
}

static void wait_gone(pid_t pid, const char *what)
{
        long long deadline = support_now_ms() + WAIT_MS;

        while (kill(pid, 0) == 0 && support_now_ms() < deadline)
                support_sleep_ms(50);
        cr_assert(kill(pid, 0) != 0, "%s did not stop", what);
}

/* Starts cmd again as the fixture did (its own session, output to its log), its pid into
 * pidfile and into the fixture env file's variable env_name. */
static void restart_server(const char *cmd, const char *name, const char *pidfile,
                           const char *env_name)
{
        const char *dir = support_fixture("LIVEFLOW_TEST_DIR");

        cr_assert(eq(int,
                     support_sh("cd / && setsid %s >>%s/log/%s.log 2>&1 </dev/null & echo $! >%s",
                                cmd, dir, name, pidfile),
                     0));
        cr_assert(eq(int,
                     support_sh("sed -i \"s/^export %s=.*/export %s=$(cat %s)/\" %s/env", env_name,
                                env_name, pidfile, dir),
                     0));
}

/* a) recharge and settlement_detail renamed away (a bad deploy) for a few seconds, and back. */
static void rename_tables_away(void)
{
        long long t0 = support_now_ms();

        sql_or_fail("RENAME TABLE recharge TO recharge_away, settlement_detail TO "
                    "settlement_detail_away");
        post_until(120, false);
        wait_unavailable(&fx.w[W_SYNC], "mysql", 1, "recharge renamed away");
        wait_unavailable(&fx.w[W_SETTLE], "mysql", 1, "settlement_detail renamed away");
        post_stream(0, false);
        post_stream(6, true);
        while (support_now_ms() - t0 < 4000)
                support_sleep_ms(100);
        sql_or_fail("RENAME TABLE recharge_away TO recharge, settlement_detail_away TO "
                    "settlement_detail");
        cr_log_info("tables away for %lld ms", support_now_ms() - t0);
        post_until(120, true);
        wait_unavailable(&fx.w[W_SYNC], "mysql", 0, "recharge back");
        wait_unavailable(&fx.w[W_SETTLE], "mysql", 0, "settlement_detail back");
}

/* b) the fixture's mariadbd stopped (cleanly: the fixture does not flush at each commit) and
 * started again with its own command line. */
static void restart_mariadb(void)
{
        char pidfile[512], cmd[4096];
        pid_t pid = fixture_pid("mariadb", pidfile, sizeof(pidfile));
        long long t0 = support_now_ms(), deadline;

        support_command_line(pid, cmd, sizeof(cmd));
        mysql_close(fx.mysql);
        fx.mysql = NULL;
        cr_assert(kill(pid, SIGTERM) == 0);
        wait_gone(pid, "mariadbd");
        post_until(QUIET_FROM, false);
        post_stream(1, false);
        post_stream(7, true);
        for (int i = 0; i < 4; i++)
                wait_unavailable(&fx.w[i], "mysql", 1, "mariadbd stopped");
        support_sleep_ms(1000);
        restart_server(cmd, "mariadb", pidfile, "LIVEFLOW_TEST_MYSQLD_PID");
        deadline = support_now_ms() + WAIT_MS;
        while (!mysql_answers() && support_now_ms() < deadline)
                support_sleep_ms(200);
        cr_assert(mysql_answers(), "mariadbd did not come back (%s)", cmd);
        fx.mysql = support_mysql_connect(fx.mysql_url);
        cr_log_info("mariadbd away for %lld ms", support_now_ms() - t0);
        post_until(QUIET_FROM, true);
        for (int i = 0; i < 4; i++)
                wait_unavailable(&fx.w[i], "mysql", 0, "mariadbd back");
}

static void redis_get(const char *key, char *out, size_t size)
{
        redisReply *r = redisCommand(fx.redis, "GET %s", key);

        cr_assert(r != NULL, "redis: %s", fx.redis->errstr);
        snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
        freeReplyObject(r);
}

static void wait_redis(int first_room, bool with_streams);

static void redis_config_is(const char *name, const char *want)
{
        redisReply *r = redisCommand(fx.redis, "CONFIG GET %s", name);

        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "CONFIG GET %s", name);
        cr_assert_str_eq(r->element[1]->str, want, "the fixture Redis keeps no data: %s", name);
        freeReplyObject(r);
}

/* c) redis-server killed and started again, empty, the way the fixture starts it (ops/lib.sh's
 * start_redis: same port and directory, no persistence; redis-server rewrites its own command
 * line, so it cannot be read back like mariadbd's). */
static void restart_redis_empty(void)
{
        const char *dir = support_fixture("LIVEFLOW_TEST_DIR");
        char pidfile[512], epoch[64], now[64];
        pid_t pid = fixture_pid("redis", pidfile, sizeof(pidfile));
        long long t0 = support_now_ms(), deadline = t0 + WAIT_MS;

        /* The quiet rooms' tips are all projected: what Redis loses now, only its rebuild from
         * MySQL brings back. */
        wait_redis(ANCHORS / 2, false);
        redis_config_is("save", "");
        redis_config_is("appendonly", "no");
        redis_get(EPOCH_KEY, epoch, sizeof(epoch));
        cr_assert(epoch[0] != '\0', "the roles keep an epoch token in Redis");
        cr_assert(kill(pid, SIGKILL) == 0);
        wait_gone(pid, "redis-server");
        post_until(260, false);
        post_stream(2, false);
        post_stream(8, true);
        wait_unavailable(&fx.w[W_STREAM], "redis", 1, "redis-server killed");
        cr_assert(eq(int,
                     support_sh("LF_PROG=tests . ./ops/lib.sh && start_redis %s %s/redis %s "
                                "%s/log/redis.log",
                                support_fixture("LIVEFLOW_TEST_REDIS_PORT"), dir, pidfile, dir),
                     0),
                  "redis-server did not start again (log %s/log/redis.log)", dir);
        cr_assert(eq(int,
                     support_sh("sed -i \"s/^export LIVEFLOW_TEST_REDIS_PID=.*/export "
                                "LIVEFLOW_TEST_REDIS_PID=$(cat %s)/\" %s/env",
                                pidfile, dir),
                     0));
        redis_connect();
        /* A new token: the roles noticed that Redis lost its data. */
        do {
                redis_get(EPOCH_KEY, now, sizeof(now));
                if (now[0] && strcmp(now, epoch) != 0)
                        break;
                support_sleep_ms(100);
        } while (support_now_ms() < deadline);
        cr_assert(now[0] != '\0' && strcmp(now, epoch) != 0,
                  "epoch token %s, before the restart %s", now, epoch);
        cr_log_info("redis away for %lld ms", support_now_ms() - t0);
        post_stream(3, false);
        post_stream(9, true);
        post_until(260, true);
        wait_unavailable(&fx.w[W_STREAM], "redis", 0, "redis-server back");
}

/* ------------------------------------------------------------------ the checks */

static long long q(const char *sql)
{
        return support_query_int(fx.mysql, "%s", sql);
}

static void wait_rows(const char *what, long long want, const char *sql)
{
        long long got, deadline = support_now_ms() + WAIT_MS;

        while ((got = q(sql)) < want && support_now_ms() < deadline)
                support_sleep_ms(200);
        cr_assert(eq(i64, got, want), "%s (logs %s %s %s)", what, fx.w[0].log, fx.w[1].log,
                  fx.w[2].log);
}

/* Per anchor: the count, sum and (settlement) share sums match the test's; each tip once. */
static void check_ledgers(void)
{
        char sql[512];

        wait_rows("tips in recharge", TIPS, "SELECT COUNT(*) FROM recharge");
        wait_rows("tips in settlement_detail", TIPS, "SELECT COUNT(*) FROM settlement_detail");
        wait_rows("tips in hourly_reward_stats", TIPS,
                  "SELECT COALESCE(SUM(reward_count), 0) FROM hourly_reward_stats");
        cr_assert(eq(i64, q("SELECT COUNT(DISTINCT trace_id) FROM recharge"), TIPS));
        cr_assert(eq(i64, q("SELECT COUNT(DISTINCT trace_id) FROM settlement_detail"), TIPS));
        cr_assert(eq(i64, q("SELECT COUNT(*) FROM stats_tip"), TIPS));
        for (int a = 0; a < ANCHORS; a++) {
                char anchor[64];

                anchor_id(a, anchor, sizeof(anchor));
                snprintf(sql, sizeof(sql),
                         "SELECT CONCAT(COUNT(*), '/', SUM(amount)) FROM recharge WHERE "
                         "anchor_id = '%s'",
                         anchor);
                char got[64], want[64];

                support_query1(fx.mysql, got, sizeof(got), "%s", sql);
                snprintf(want, sizeof(want), "%lld/%lld", fx.count[a], fx.gross[a]);
                cr_assert_str_eq(got, want, "recharge of %s", anchor);
                support_query1(fx.mysql, got, sizeof(got),
                               "SELECT CONCAT(COUNT(*), '/', SUM(amount), '/', SUM(anchor_amount), "
                               "'/', SUM(platform_amount)) FROM settlement_detail WHERE anchor_id "
                               "= '%s'",
                               anchor);
                snprintf(want, sizeof(want), "%lld/%lld/%lld/%lld", fx.count[a], fx.gross[a],
                         fx.share[a], fx.gross[a] - fx.share[a]);
                cr_assert_str_eq(got, want, "settlement_detail of %s", anchor);
                support_query1(fx.mysql, got, sizeof(got),
                               "SELECT CONCAT(total_amount, '/', withdrawn_amount, '/', "
                               "available_amount) FROM settlement WHERE anchor_id = '%s'",
                               anchor);
                snprintf(want, sizeof(want), "%lld/0/%lld", fx.share[a], fx.share[a]);
                cr_assert_str_eq(got, want, "balance of %s", anchor);
                support_query1(fx.mysql, got, sizeof(got),
                               "SELECT CONCAT(SUM(reward_count), '/', SUM(amount_sum)) FROM "
                               "hourly_reward_stats WHERE anchor_id = '%s'",
                               anchor);
                snprintf(want, sizeof(want), "%lld/%lld", fx.count[a], fx.gross[a]);
                cr_assert_str_eq(got, want, "hourly_reward_stats of %s", anchor);
        }
}

static long long redis_int(const char *prefix, const char *id)
{
        char key[160], v[64];

        snprintf(key, sizeof(key), "%s%s", prefix, id);
        redis_get(key, v, sizeof(v));
        return v[0] ? atoll(v) : -1;
}

/* The first difference between Redis and what the test sent, or "" when none: the rooms of
 * anchors from first_room on, and the streams when with_streams. */
static void redis_off(char *why, size_t size, int first_room, bool with_streams)
{
        why[0] = '\0';
        for (int a = first_room; a < ANCHORS && !why[0]; a++) {
                char room[64];
                long long earnings, count;

                room_id(a, room, sizeof(room));
                earnings = redis_int("live:room:earnings:", room);
                count = redis_int("live:room:recharge_count:", room);
                if (earnings != fx.gross[a] || count != fx.count[a])
                        snprintf(why, size, "room %s: earnings %lld count %lld, want %lld %lld",
                                 room, earnings, count, fx.gross[a], fx.count[a]);
        }
        /* Streams 0..3 ended, 4..9 live (6..9 begun during the outages). */
        for (int s = 0; with_streams && s < STREAMS && !why[0]; s++) {
                char sid[64], anchor[64], key[128];
                bool want = s >= 4;
                redisReply *r, *h;

                stream_id(s, sid, sizeof(sid));
                anchor_id(ANCHORS + s, anchor, sizeof(anchor));
                snprintf(key, sizeof(key), "hash:anchor:status:%s", anchor);
                r = redisCommand(fx.redis, "SISMEMBER set:live:online %s", sid);
                h = redisCommand(fx.redis, "HGET %s stream_id", key);
                cr_assert(r && h, "redis: %s", fx.redis->errstr);
                if ((r->integer == 1) != want ||
                    (want && (h->type != REDIS_REPLY_STRING || strcmp(h->str, sid) != 0)))
                        snprintf(why, size, "stream %s: online %lld, %s names %s; want live=%d",
                                 sid, r->integer, key,
                                 h->type == REDIS_REPLY_STRING ? h->str : "nothing", want);
                freeReplyObject(r);
                freeReplyObject(h);
        }
}

static void wait_redis(int first_room, bool with_streams)
{
        long long deadline = support_now_ms() + WAIT_MS;
        char why[256];

        while (redis_off(why, sizeof(why), first_room, with_streams),
               why[0] && support_now_ms() < deadline)
                support_sleep_ms(200);
        cr_assert(why[0] == '\0', "%s (logs %s %s)", why, fx.w[W_SYNC].log, fx.w[W_STREAM].log);
}

static void check_redis(void)
{
        wait_redis(0, true);
}

static void check_streams(void)
{
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM live_streams WHERE stream_id LIKE '%s-s%%' AND status = "
                 "'live'",
                 fx.prefix);
        wait_rows("live streams", STREAMS - 4, sql);
        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM live_streams WHERE stream_id LIKE '%s-s%%' AND status = "
                 "'ended'",
                 fx.prefix);
        wait_rows("ended streams", 4, sql);
}

/* Nothing any of the test's groups dead-lettered, since the test started. */
static void check_dlqs(void)
{
        char group[96], first[256];

        snprintf(group, sizeof(group), "outage.%s.", fx.prefix);
        for (int i = 0; i < 3; i++) {
                int n = support_reader_count(fx.dlq[i], "dlq.group", group, first, sizeof(first),
                                             1500);

                cr_assert(eq(int, n, 0), "%d record(s) in %s, the first %s", n, dlq_topics[i],
                          first);
        }
}

static void reconcile_ok(void)
{
        char bin[512], from[32], to[32], e_mysql[600], e_redis[160], e_boot[512], log[256];
        char *argv[] = {bin, (char *)"reconcile", (char *)"--from", from, (char *)"--to", to, NULL};
        char *env[] = {e_mysql, e_redis, e_boot, NULL};
        char *out;
        int status;

        support_bin_path("liveflow-ctl", bin, sizeof(bin));
        snprintf(from, sizeof(from), "%lld", fx.base_ms / 1000 - 3600);
        snprintf(to, sizeof(to), "%lld", (fx.base_ms + TIPS * TIP_STEP_MS) / 1000 + 3600);
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.mysql_url);
        redis_url(e_redis, sizeof(e_redis));
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(log, sizeof(log), "/tmp/%s.reconcile.log", fx.prefix);
        status = support_wait_exit(support_spawn(argv, env, log), 120000);
        out = support_read_file(log, NULL);
        cr_assert(eq(int, status, 0), "reconcile exited %d:\n%s", status, out ? out : log);
        cr_assert(out && strstr(out, "all agree"), "%s", out ? out : log);
        free(out);
}

static void remove_logs(void)
{
        char path[256];

        unlink(fx.receiver_log);
        for (int i = 0; i < 4; i++)
                unlink(fx.w[i].log);
        snprintf(path, sizeof(path), "/tmp/%s.reconcile.log", fx.prefix);
        unlink(path);
}

/* ------------------------------------------------------------------ the test */

Test(store_outages, tables_away_mariadb_restarted_redis_restarted_empty_end_exact)
{
        long long t0 = support_now_ms(), day_ms = (long long)time(NULL) / 86400 * 86400000LL;

        /* Two days ago, 03:00 UTC: no other suite's tips are in reconcile's range. */
        fx.base_ms = day_ms - 2 * 86400000LL + 3 * HOUR_MS;
        for (int i = 0; i < TIPS; i++) {
                int a = tip_anchor(i);

                fx.count[a]++;
                fx.gross[a] += tip_amount(i);
                fx.share[a] += tip_amount(i) * RATIO_BP / 10000;
        }
        for (int a = 0; a < ANCHORS; a++)
                cr_assert_gt(fx.count[a], 0);
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        fx.mysql = support_mysql_connect(fx.mysql_url);
        redis_connect();
        freeReplyObject(redisCommand(fx.redis, "FLUSHDB"));
        for (int i = 0; i < 3; i++)
                fx.dlq[i] = support_reader_open(dlq_topics[i]);
        start_receiver();
        start_workers();
        for (int s = 0; s < 6; s++)
                post_stream(s, true);

        run.t0_ms = support_now_ms();
        for (int i = 0; i < SENDERS; i++) {
                cr_assert(pthread_create(&run.threads[i], NULL, sender_main, NULL) == 0);
                run.thread_cnt++;
        }
        post_until(50, true);
        wait_rows("the first tips settled", 50, "SELECT COUNT(*) FROM settlement_detail");
        rename_tables_away();
        restart_mariadb();
        restart_redis_empty();
        post_until(TIPS, true);
        stop_senders();
        cr_log_info("%d tips posted in %lld ms", TIPS, support_now_ms() - run.t0_ms);

        check_ledgers();
        check_streams();
        check_redis();
        for (int i = 0; i < 4; i++) {
                cr_assert(eq(i64, unavailable(&fx.w[i], "mysql"), 0), "%s", fx.w[i].name);
                cr_assert(eq(i64, unavailable(&fx.w[i], "redis"), 0), "%s", fx.w[i].name);
        }
        check_dlqs();
        reconcile_ok();
        for (int i = 0; i < 4; i++) {
                cr_assert(kill(fx.w[i].pid, SIGTERM) == 0);
                cr_assert(eq(int, support_wait_exit(fx.w[i].pid, 30000), 0), "%s drains; see %s",
                          fx.w[i].name, fx.w[i].log);
                fx.w[i].pid = 0;
        }
        cr_assert(kill(fx.receiver, SIGTERM) == 0);
        cr_assert(eq(int, support_wait_exit(fx.receiver, 30000), 0), "receiver drains");
        fx.receiver = 0;
        remove_logs();
        cr_log_info("done in %lld ms", support_now_ms() - t0);
}
