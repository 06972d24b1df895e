/*
 * test_money_evening.c: a simulated evening on the money path, end to end through the real
 * processes on the fixture MariaDB, Redis and dev broker: liveflow-receiver, liveflow-consumer
 * reward-sync, liveflow-settlement and liveflow-stats.
 *
 * About 20 000 signed tips (POST /v1/rewards) over 40 anchors, each in its own room, from 300
 * audience ids; some are posted twice under a new webhook-id, replayed byte for byte or retried
 * with a fresh timestamp. Halfway through the evening the revenue share of some anchors
 * changes (the ratio in force at each tip's own time counts). Withdrawals (POST
 * /v1/withdrawals) race the tips: some can only succeed, some can only be refused, some are
 * duplicated. Meanwhile each worker is killed with SIGKILL mid-run, having handled some tips
 * but not all, and started again (reward-sync at a fifth of the posts, settlement at two
 * fifths, stats at half), and Redis is cut away from the workers for a while (a TCP relay),
 * then given back. The posting waits a little past each of these shares until its step was
 * taken, so a slow build (restarts under the sanitizers) still has them all land mid-evening.
 *
 * At the end every figure must equal what the test computes from what it sent, with its own
 * copy of the rule (anchor gets floor(amount * ratio_bp / 10000) with the ratio in force at the
 * tip's ts, the platform the rest), never with the code under test: recharge, settlement_detail,
 * the balances, every withdrawal's single outcome, hourly_reward_stats, the Redis room figures;
 * and `liveflow-settlement reconcile` over the evening must agree (exit 0).
 *
 * Isolation on the shared broker: a database of its own, Redis database REDIS_DB (emptied),
 * consumer groups of its own whose offsets are committed at the current end of every topic
 * before the workers start, so what earlier suites left on the topics is never read.
 *
 * Knobs: LIVEFLOW_TEST_EVENING_TIPS (distinct tips; 20000, or 10000 in a sanitizer build, where
 * every process is several times slower), LIVEFLOW_TEST_EVENING_RATE (tips offered per second,
 * 1000), LIVEFLOW_TEST_EVENING_SEED (the random plan; the pid by default, logged). The logs of
 * the processes are in /tmp/<prefix>.*.log, removed when the test passes.
 *
 * This file holds the fixture, the evening (chaos included) and the test; money_evening/plan.c
 * the plan, money_evening/posting.c the sender threads, money_evening/checks.c the checks.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "money_evening/evening.h"
#include "support.h"

const char *const genders[3] = {"male", "female", "unknown"};

struct money_fixture fx;
struct money_ids ids;
struct money_run run = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* ------------------------------------------------------------------ the fixture */

static void proc_init(struct proc *p, const char *name, const char *binary, const char *role)
{
        p->name = name;
        p->binary = binary;
        p->role = role;
        snprintf(p->log, sizeof(p->log), "/tmp/%s.%s.log", fx.prefix, name);
}

static void proc_env(struct proc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void proc_env(struct proc *p, const char *fmt, ...)
{
        va_list ap;

        cr_assert(p->env_cnt < (int)(sizeof(p->env) / sizeof(p->env[0])));
        va_start(ap, fmt);
        vsnprintf(p->env[p->env_cnt++], sizeof(p->env[0]), fmt, ap);
        va_end(ap);
}

/* The variables every worker gets; Redis through the relay, so it can be cut away. */
static void worker_env(struct proc *p, const char *group)
{
        proc_env(p, "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        proc_env(p, "LIVEFLOW_MYSQL_URL=%s", fx.mysql_url);
        proc_env(p, "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%d/%d", support_proxy_port(fx.proxy),
                 REDIS_DB);
        proc_env(p, "LIVEFLOW_GROUP_ID=%s", group);
        proc_env(p, "LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000");
        proc_env(p, "LIVEFLOW_RETRY_BACKOFF_MS=50");
        proc_env(p, "LIVEFLOW_REDIS_TIMEOUT_MS=1000");
}

static void proc_spawn(struct proc *p)
{
        char bin[512], admin[64];
        char *argv[] = {bin, (char *)p->role, NULL};
        char *env[16];
        int n = 0;

        support_bin_path(p->binary, bin, sizeof(bin));
        p->admin_port = support_free_port();
        snprintf(admin, sizeof(admin), "LIVEFLOW_ADMIN_PORT=%d", p->admin_port);
        env[n++] = admin;
        for (int i = 0; i < p->env_cnt; i++)
                env[n++] = p->env[i];
        env[n] = NULL;
        p->pid = support_spawn(argv, env, p->log);
        cr_assert_gt(p->pid, 0);
}

static void proc_wait_ready(struct proc *p)
{
        cr_assert(support_wait_ready(p->admin_port, READY_MS) == 0, "%s is not ready; see %s",
                  p->name, p->log);
}

static void proc_kill(struct proc *p)
{
        if (p->pid > 0 && support_wait_exit(p->pid, 0) == -1) {
                kill(p->pid, SIGKILL);
                support_wait_exit(p->pid, 10000);
        }
        p->pid = 0;
}

void base64(const void *data, size_t len, char *out, size_t out_size)
{
        cr_assert(out_size > 4 * ((len + 2) / 3));
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}

static void setup(void)
{
        char b64[64];

        snprintf(fx.prefix, sizeof(fx.prefix), "ev%d", (int)getpid());
        fx.tip_cnt = (int)env_int("LIVEFLOW_TEST_EVENING_TIPS", IS_SANITIZED ? 10000 : 20000, 100,
                                  100000);
        fx.rate = (int)env_int("LIVEFLOW_TEST_EVENING_RATE", 1000, 1, 100000);
        fx.seed = (unsigned long long)env_int("LIVEFLOW_TEST_EVENING_SEED", getpid(), 0, 1LL << 62);
        base64(KEY_RAW, strlen(KEY_RAW), b64, sizeof(b64));
        snprintf(fx.secret, sizeof(fx.secret), "whsec_%s", b64);
        for (int a = 0; a <= ANCHORS; a++)
                snprintf(ids.anchors[a], sizeof(ids.anchors[a]), "%s-anchor%02d", fx.prefix, a);
        for (int a = 0; a < ANCHORS; a++)
                snprintf(ids.rooms[a], sizeof(ids.rooms[a]), "%s-room%02d", fx.prefix, a);
        for (int u = 0; u < AUDIENCES; u++)
                snprintf(ids.audiences[u], sizeof(ids.audiences[u]), "%s-fan%03d", fx.prefix, u);
        cr_assert(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
}

static void stop_threads(void)
{
        pthread_mutex_lock(&run.lock);
        run.is_stopping = true;
        pthread_cond_broadcast(&run.cond);
        pthread_mutex_unlock(&run.lock);
        for (int i = 0; i < run.sender_cnt; i++)
                pthread_join(run.senders[i], NULL);
        if (run.has_asker)
                pthread_join(run.asker, NULL);
        run.sender_cnt = 0;
        run.has_asker = false;
}

static void teardown(void)
{
        stop_threads();
        proc_kill(&fx.receiver);
        proc_kill(&fx.sync);
        proc_kill(&fx.settle);
        proc_kill(&fx.stats);
        support_proxy_stop(fx.proxy);
        if (run.gate_mysql)
                mysql_close(run.gate_mysql);
        if (fx.mysql)
                mysql_close(fx.mysql);
        if (fx.redis)
                redisFree(fx.redis);
        free(fx.tips);
        free(fx.posts);
        free(fx.asks);
        curl_global_cleanup();
        memset(&fx, 0, sizeof(fx));
        memset(&ids, 0, sizeof(ids));
}

TestSuite(money_evening, .init = setup, .fini = teardown, .timeout = 600);

/* This test's Redis database, emptied; the test reads it directly, the workers through the relay.
 */
static void use_redis(void)
{
        int port = atoi(support_fixture("LIVEFLOW_TEST_REDIS_PORT"));

        fx.redis = support_redis_connect(REDIS_DB, true, NULL, 0);
        fx.proxy = support_proxy_start(port);
}

int insert_ratio(MYSQL *mysql, const struct ratio_row *r)
{
        char sql[512];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO revenue_share (anchor_id, effective_at, ratio_bp) "
                 "VALUES ('%s', FROM_UNIXTIME(%lld / 1000), %lld)",
                 ids.anchors[r->anchor], r->effective_ms, r->ratio_bp);
        return mysql_query(mysql, sql);
}

/* The topics the money workers read: their new groups start at the current end of each. */
static const char *const worker_topics[] = {"live.reward", "live.withdrawal", "live.session",
                                            "live.viewer", NULL};

/* The receiver, reward-sync, settlement and stats, each ready (stats and the consumers: joined). */
static void start_pipeline(void)
{
        char groups[3][96];
        struct proc *workers[] = {&fx.sync, &fx.settle, &fx.stats};

        snprintf(groups[0], sizeof(groups[0]), "evening.%s.reward-sync", fx.prefix);
        snprintf(groups[1], sizeof(groups[1]), "evening.%s.settlement", fx.prefix);
        snprintf(groups[2], sizeof(groups[2]), "evening.%s.stats", fx.prefix);
        for (int i = 0; i < 3; i++)
                support_group_at_end(groups[i], worker_topics);

        proc_init(&fx.receiver, "receiver", "liveflow-receiver", NULL);
        fx.http_port = support_free_port();
        proc_env(&fx.receiver, "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        proc_env(&fx.receiver, "LIVEFLOW_HTTP_ADDR=127.0.0.1");
        proc_env(&fx.receiver, "LIVEFLOW_HTTP_PORT=%d", fx.http_port);
        proc_env(&fx.receiver, "LIVEFLOW_HMAC_SECRET=%s", fx.secret);
        proc_env(&fx.receiver, "LIVEFLOW_REDIS_URL=%s", support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        proc_init(&fx.sync, "reward-sync", "liveflow-consumer", "reward-sync");
        proc_init(&fx.settle, "settlement", "liveflow-settlement", NULL);
        proc_init(&fx.stats, "stats", "liveflow-stats", NULL);
        for (int i = 0; i < 3; i++)
                worker_env(workers[i], groups[i]);
        proc_env(&fx.settle, "LIVEFLOW_SETTLEMENT_DEFAULT_RATIO_BP=%d", DEFAULT_RATIO_BP);
        proc_spawn(&fx.receiver);
        for (int i = 0; i < 3; i++)
                proc_spawn(workers[i]);
        proc_wait_ready(&fx.receiver);
        for (int i = 0; i < 3; i++)
                proc_wait_ready(workers[i]);
}

/* ------------------------------------------------------------------ the evening */

static long long count_rows(const char *sql)
{
        return support_query_int(fx.mysql, "%s", sql);
}

static size_t keep_body(char *p, size_t size, size_t n, void *arg)
{
        char **buf = arg;
        size_t have = *buf ? strlen(*buf) : 0;
        char *nb = realloc(*buf, have + size * n + 1);

        if (!nb)
                return 0;
        memcpy(nb + have, p, size * n);
        nb[have + size * n] = '\0';
        *buf = nb;
        return size * n;
}

/* The value of a /metrics series without labels, or -1. */
static long long scrape(const struct proc *p, const char *series)
{
        char url[64], *body = NULL;
        CURL *curl = curl_easy_init();
        long long value = -1;

        cr_assert_not_null(curl);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", p->admin_port);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
        if (curl_easy_perform(curl) == CURLE_OK && body) {
                for (char *line = body, *next; line; line = next) {
                        if ((next = strchr(line, '\n')))
                                *next++ = '\0';
                        if (strncmp(line, series, strlen(series)) == 0 &&
                            line[strlen(series)] == ' ')
                                value = atoll(line + strlen(series) + 1);
                }
        }
        free(body);
        curl_easy_cleanup(curl);
        return value;
}

/*
 * SIGKILL mid-run, once the worker has handled some tips and before it has them all, then the
 * same worker again (not waited for: the evening goes on meanwhile).
 */
static void kill_9(struct proc *p, long long done, const char *what)
{
        cr_assert_gt(done, 0, "%s had handled no tip before its kill: nothing was tested; see %s",
                     p->name, p->log);
        cr_assert_lt(done, fx.tip_cnt,
                     "%s had handled every tip before its kill: nothing was tested", p->name);
        cr_assert(kill(p->pid, SIGKILL) == 0);
        cr_assert(eq(int, support_wait_exit(p->pid, 10000), 128 + SIGKILL), "%s", p->name);
        proc_spawn(p);
        cr_log_info("%s killed with SIGKILL after %lld of %d tips %s, %lld ms after the first post",
                    p->name, done, fx.tip_cnt, what, support_now_ms() - run.t0_ms);
}

static bool is_back(struct proc *p, long long since_ms)
{
        if (support_wait_ready(p->admin_port, 0) != 0) {
                cr_assert_lt(support_now_ms() - since_ms, READY_MS, "%s is not ready again; see %s",
                             p->name, p->log);
                return false;
        }
        cr_log_info("%s ready again %lld ms after its kill", p->name, support_now_ms() - since_ms);
        return true;
}

/* What happens to the workers during the evening, in this order, at shares of the posts. */
enum chaos_step {
        KILL_SYNC,
        SYNC_BACK,
        KILL_SETTLE,
        SETTLE_BACK,
        KILL_STATS,
        STATS_BACK,
        CUT_REDIS,
        RESTORE_REDIS,
        CHAOS_DONE
};

/*
 * The share of the posts at which a step is taken (for a worker coming back: the next step's).
 * A slow build (sanitizers) restarts the workers slowly: the posting waits a little past the
 * pending step's share, so that every kill and the outage still land mid-evening, with work left.
 */
static int post_limit_of(enum chaos_step step)
{
        static const int share_pct[] = {
                [KILL_SYNC] = 20,   [SYNC_BACK] = 40,      [KILL_SETTLE] = 40,
                [SETTLE_BACK] = 50, [KILL_STATS] = 50,     [STATS_BACK] = 60,
                [CUT_REDIS] = 60,   [RESTORE_REDIS] = 100, [CHAOS_DONE] = 100,
        };
        int pct = share_pct[step];

        return pct >= 100 ? fx.post_cnt : fx.post_cnt * pct / 100 + fx.post_cnt / 20;
}

struct chaos {
        enum chaos_step step;
        long long since_ms; /* when the last step was taken */
        long long synced;   /* recharge rows when Redis was cut */
};

/*
 * Takes the next step when it is due; the posting still runs, so every worker has work left.
 * synced, settled and counted: the tips in recharge, settlement_detail and hourly_reward_stats.
 */
static void chaos_step(struct chaos *c, long long posted, long long synced, long long settled,
                       long long counted)
{
        long long now = support_now_ms();

        switch (c->step) {
        case KILL_SYNC:
                if (posted < fx.post_cnt / 5)
                        return;
                kill_9(&fx.sync, synced, "in recharge");
                break;
        case SYNC_BACK:
                if (!is_back(&fx.sync, c->since_ms))
                        return;
                break;
        case KILL_SETTLE:
                if (posted < fx.post_cnt * 2 / 5)
                        return;
                kill_9(&fx.settle, settled, "settled");
                break;
        case SETTLE_BACK:
                if (!is_back(&fx.settle, c->since_ms))
                        return;
                break;
        case KILL_STATS:
                if (posted < fx.post_cnt / 2)
                        return;
                kill_9(&fx.stats, counted, "in hourly_reward_stats");
                break;
        case STATS_BACK:
                if (!is_back(&fx.stats, c->since_ms))
                        return;
                break;
        case CUT_REDIS:
                if (posted < fx.post_cnt * 3 / 5)
                        return;
                cr_assert_lt(synced, fx.tip_cnt, "reward-sync was done before the outage");
                support_proxy_cut(fx.proxy);
                c->synced = synced;
                break;
        case RESTORE_REDIS:
                /* Until a twentieth of the tips went by reward-sync without Redis (20 s at most).
                 */
                if ((synced - c->synced < fx.tip_cnt / 20 || now - c->since_ms < 3000) &&
                    now - c->since_ms < 20000)
                        return;
                support_proxy_restore(fx.proxy);
                cr_log_info(
                        "Redis cut away from the workers for %lld ms, from %lld ms after the first post, while "
                        "%lld tips went into recharge",
                        now - c->since_ms, c->since_ms - run.t0_ms, synced - c->synced);
                break;
        case CHAOS_DONE:
                return;
        }
        c->step++;
        c->since_ms = now;
        atomic_store(&run.post_limit, post_limit_of(c->step));
}

static bool phase_a_settled(const char *like_a)
{
        long long n = support_query_int(
                fx.mysql, "SELECT COUNT(*) FROM settlement_detail WHERE trace_id LIKE '%s'",
                like_a);

        return n == fx.phase_a;
}

/* Runs the evening to its last post; the withdrawals start once phase A is settled. */
static void run_evening(void)
{
        struct chaos chaos = {KILL_SYNC, 0, 0};
        long long deadline = support_now_ms() + RUN_MS;
        char like_a[64];

        snprintf(like_a, sizeof(like_a), "%s-a-%%", fx.prefix);
        atomic_store(&run.post_limit, post_limit_of(chaos.step));
        start_posting();
        while (chaos.step != CHAOS_DONE || atomic_load(&run.posts_done) < fx.post_cnt ||
               !atomic_load(&run.is_asker_done)) {
                long long posted = atomic_load(&run.posts_done);
                long long synced = count_rows("SELECT COUNT(*) FROM recharge");
                long long settled = count_rows("SELECT COUNT(*) FROM settlement_detail");
                long long counted = count_rows(
                        "SELECT COALESCE(SUM(reward_count), 0) FROM hourly_reward_stats");

                cr_assert(eq(int, atomic_load(&run.failures), 0), "%s", run.failure);
                if (!run.is_asking && phase_a_settled(like_a))
                        start_asking();
                chaos_step(&chaos, posted, synced, settled, counted);
                cr_assert_lt(support_now_ms(), deadline,
                             "the evening is not over after %d s: step %d, %lld of %d posts, "
                             "%d of %d withdrawals, %lld in recharge, %lld settled, %lld counted",
                             RUN_MS / 1000, (int)chaos.step, posted, fx.post_cnt,
                             atomic_load(&run.asks_done), fx.ask_cnt, synced, settled, counted);
                support_sleep_ms(100);
        }
        stop_threads();
        cr_assert(eq(int, atomic_load(&run.failures), 0), "%s", run.failure);
        cr_assert_gt(scrape(&fx.sync, "liveflow_reward_redis_degraded_total"), 0,
                     "reward-sync never noticed the outage (log %s)", fx.sync.log);
}

/* Polls until the query gives at least want; fails when it stops moving for STALL_MS. */
static void wait_for(const char *what, long long want, const char *sql)
{
        long long got, last = -1, moved_ms = support_now_ms();

        while ((got = count_rows(sql)) < want) {
                if (got != last) {
                        last = got;
                        moved_ms = support_now_ms();
                }
                cr_assert_lt(support_now_ms() - moved_ms, STALL_MS,
                             "%s: %lld of %lld, stuck for %d s (logs %s %s %s)", what, got, want,
                             STALL_MS / 1000, fx.sync.log, fx.settle.log, fx.stats.log);
                support_sleep_ms(200);
        }
        cr_assert(eq(i64, got, want), "%s", what);
}

static long long redis_int(const char *prefix, const char *room)
{
        redisReply *r = redisCommand(fx.redis, "GET %s%s", prefix, room);
        long long v;

        cr_assert(r != NULL, "redis: %s", fx.redis->errstr);
        v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
        freeReplyObject(r);
        return v;
}

/* The first room whose figures differ from the sums of its distinct tips, or -1. */
static int room_off(char *why, size_t why_size)
{
        for (int a = 0; a < ANCHORS; a++) {
                long long earnings = redis_int("live:room:earnings:", ids.rooms[a]);
                long long count = redis_int("live:room:recharge_count:", ids.rooms[a]);
                long long want_earnings = fx.tips_of[a] ? fx.gross[a] : -1; /* -1: no key */
                long long want_count = fx.tips_of[a] ? fx.tips_of[a] : -1;

                if (earnings != want_earnings || count != want_count) {
                        snprintf(why, why_size,
                                 "room %s: earnings %lld count %lld, want %lld and %lld",
                                 ids.rooms[a], earnings, count, want_earnings, want_count);
                        return a;
                }
        }
        return -1;
}

/* Every worker has caught up: every distinct tip and request is in, once. */
static void wait_caught_up(void)
{
        long long t0 = support_now_ms(), redis_t0;
        char why[256] = "";

        /* The closing tips and withdrawals are last on every partition: these counts are final. */
        wait_for("recharge rows", fx.tip_cnt, "SELECT COUNT(*) FROM recharge");
        wait_for("settlement_detail rows", fx.tip_cnt, "SELECT COUNT(*) FROM settlement_detail");
        wait_for("tips in hourly_reward_stats", fx.tip_cnt,
                 "SELECT COALESCE(SUM(reward_count), 0) FROM hourly_reward_stats");
        wait_for("withdrawal rows", fx.ask_cnt, "SELECT COUNT(*) FROM withdrawal");
        /* Redis is rebuilt from recharge after the outage, by reward-sync's tick. */
        redis_t0 = support_now_ms();
        while (room_off(why, sizeof(why)) != -1 && support_now_ms() - redis_t0 < STALL_MS)
                support_sleep_ms(200);
        cr_assert(room_off(why, sizeof(why)) == -1, "%s (log %s)", why, fx.sync.log);
        cr_log_info("every worker caught up %lld ms after the last post", support_now_ms() - t0);
}

/* ------------------------------------------------------------------ the test */

Test(money_evening, tips_duplicates_a_ratio_change_withdrawals_kills_and_an_outage_end_reconciled)
{
        long long t0 = support_now_ms(), posted_ms;

        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        fx.mysql = support_mysql_connect(fx.mysql_url);
        use_redis();
        plan_evening();
        for (int i = 0; i < fx.ratio_cnt; i++)
                if (!fx.ratios[i].is_midway)
                        cr_assert(insert_ratio(fx.mysql, &fx.ratios[i]) == 0, "%s",
                                  mysql_error(fx.mysql));
        start_pipeline();
        cr_log_info("pipeline ready in %lld ms", support_now_ms() - t0);

        run_evening();
        posted_ms = support_now_ms() - run.t0_ms;
        cr_log_info(
                "%d posts and %d withdrawals answered 200 in %lld ms (%d retried after a 503 or no answer)",
                fx.post_cnt, fx.ask_cnt, posted_ms, atomic_load(&run.retries));
        wait_caught_up();

        check_recharge();
        check_details();
        check_balances();
        check_hourly();
        check_redis_rooms();
        reconcile_ok();

        cr_log_info(
                "the receiver counted %lld replayed webhook-ids (answered 200 without a second event)",
                scrape(&fx.receiver,
                       "liveflow_receiver_webhook_replays_total{endpoint=\"rewards\"}"));
        stop_cleanly(&fx.receiver);
        stop_cleanly(&fx.sync);
        stop_cleanly(&fx.settle);
        stop_cleanly(&fx.stats);
        remove_logs();
        cr_log_info("evening done in %lld ms", support_now_ms() - t0);
}
