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
 *
 * This file starts the processes, posts, reads the workers' metrics and plays the test;
 * store_outages/servers.c makes the outages, store_outages/checks.c checks the stores after.
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
#include "store_outages/outages.h"
#include "support.h"

struct outage_fixture fx;

const char *const dlq_topics[3] = {"live.reward.dlq", "live.session.dlq", "live.stream.dlq"};

/* What the sender threads share with the test. */
static struct {
        atomic_int next, done, limit, failures;
        atomic_bool stop;
        char failure[256];
        pthread_t threads[SENDERS];
        int thread_cnt;
        long long t0_ms;
} run;

void anchor_id(int a, char *out, size_t size)
{
        snprintf(out, size, "%s-anchor%02d", fx.prefix, a);
}

void room_id(int a, char *out, size_t size)
{
        snprintf(out, size, "%s-room%02d", fx.prefix, a);
}

void stream_id(int s, char *out, size_t size)
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

void redis_url(char *out, size_t size)
{
        snprintf(out, size, "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%s/%d",
                 support_fixture("LIVEFLOW_TEST_REDIS_PORT"), REDIS_DB);
}

/* The test's own connection to its Redis database; again after a restart. */
void redis_connect(void)
{
        if (fx.redis)
                redisFree(fx.redis);
        fx.redis = support_redis_connect(REDIS_DB, false, NULL, 0);
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
long long unavailable(const struct worker *w, const char *store)
{
        char series[160];

        snprintf(series, sizeof(series),
                 "liveflow_consumer_store_unavailable{role=\"%s\",store=\"%s\"}", w->name, store);
        return scrape(w, series);
}

/* Waits until the worker says the store is (un)available; what, for the message. */
void wait_unavailable(const struct worker *w, const char *store, long long want, const char *what)
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
void post_until(int limit, bool wait)
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
void post_stream(int s, bool is_begin)
{
        char body[2048], sign[33], sid[64], anchor[64], room[64];
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        CURL *curl = curl_easy_init();
        long long t = (long long)time(NULL) + 600;
        long status = -1;

        cr_assert_not_null(curl);
        stream_id(s, sid, sizeof(sid));
        anchor_id(ANCHORS + s, anchor, sizeof(anchor));
        room_id(ANCHORS + s, room, sizeof(room));
        support_tencent_sign(TENCENT_KEY, t, sign);
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
        outage_tables_away();
        outage_mariadb_restart();
        outage_redis_restart_empty();
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
        check_reconcile();
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
