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

#include "support.h"

#if defined(__SANITIZE_ADDRESS__)
#define IS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IS_SANITIZED 1
#endif
#endif
#ifndef IS_SANITIZED
#define IS_SANITIZED 0
#endif

/* Anchor ANCHORS has no tip at all; every other one has its own room. */
#define ANCHORS          40
#define AUDIENCES        300
#define SENDERS          4    /* threads posting tips */
#define REDIS_DB         8    /* no other suite uses it */
#define DEFAULT_RATIO_BP 4500 /* LIVEFLOW_SETTLEMENT_DEFAULT_RATIO_BP given to the worker */
#define HOUR_MS          3600000LL
#define EVENING_MS       (6 * HOUR_MS) /* 18:00 to midnight UTC, the day before the run */
#define HOURS            6
#define PHASE_A_PCT      20 /* the first tips: once all are settled, the withdrawals start */
#define ROUNDS           6  /* withdrawals per anchor */
#define MAX_RATIOS       (5 * ANCHORS)
#define READY_MS         30000
#define STALL_MS         90000  /* a worker that makes no progress this long has failed */
#define RUN_MS           420000 /* the whole evening, posting included */
#define TS_2020_MS       1577836800000LL
/* The webhook secret's 32 bytes. */
#define KEY_RAW "liveflow-evening-tip-secret-32b!"

static const char *const genders[] = {"male", "female", "unknown"};

/* ------------------------------------------------------------------ the plan */

/* One distinct tip, and what the test expects of it. */
struct tip {
        char id[40];
        int anchor, audience;
        long long amount, gift_count, ts_ms;
        long long ratio_bp,
                share;         /* the ratio in force at ts_ms and the anchor's share, by the test */
        bool is_gender_absent; /* an "unknown" audience leaves the field out */
        const char *audience_type; /* NULL: absent */
};

enum post_kind {
        POST_ONCE,
        POST_THEN_REPLAY, /* then the identical request again: same webhook-id, timestamp, signature
                           */
        POST_THEN_RETRY,  /* then the same webhook-id with a fresh timestamp, as a sender's retry */
        POST_AGAIN,       /* the tip service posts the tip a second time under a new webhook-id */
};

struct post {
        long long order;
        int tip;
        enum post_kind kind;
};

enum ask_kind {
        ASK_SAFE,   /* covered by the tips settled before any withdrawal was sent: must succeed */
        ASK_RACE,   /* depends on how far the tips are settled: either outcome, checked for
                       consistency */
        ASK_BIG,    /* more than the anchor will ever earn: must be refused */
        ASK_NOBODY, /* an anchor without earnings: must be refused */
};

enum ask_dup {
        DUP_NONE,
        DUP_AGAIN,  /* posted again at once under a new webhook-id */
        DUP_REPLAY, /* the identical request again at once */
        DUP_LATE,   /* posted again after every other withdrawal */
};

struct ask {
        char id[40];
        int anchor;
        long long amount;
        enum ask_kind kind;
        enum ask_dup dup;
};

struct ratio_row {
        int anchor;
        long long effective_ms, ratio_bp;
        bool is_midway; /* inserted by the sender that reaches the middle of the evening */
};

struct proc {
        const char *name, *binary, *role; /* role: the first argument, or NULL */
        char env[12][600];
        int env_cnt;
        pid_t pid;
        int admin_port;
        char log[256];
};

static struct {
        char prefix[24];
        char mysql_url[512];
        char secret[96]; /* whsec_ + base64 of KEY_RAW */
        int http_port, tip_cnt, rate, phase_a, post_cnt, gate, ask_cnt, ratio_cnt;
        int last_posts, last_asks; /* where the closing tips and withdrawals start */
        unsigned long long seed, rng;
        long long start_ms, mid_ms;
        struct tip *tips;
        struct post *posts;
        struct ask *asks;
        struct ratio_row ratios[MAX_RATIOS];
        long long guaranteed[ANCHORS]; /* shares of the phase A tips */
        long long total[ANCHORS];      /* shares of every tip */
        long long gross[ANCHORS], tips_of[ANCHORS];
        struct proc receiver, sync, settle, stats;
        MYSQL *mysql;
        redisContext *redis;
        struct support_proxy *proxy;
} fx;

/* The test's names, all starting with fx.prefix. */
static struct {
        char anchors[ANCHORS + 1][48];
        char rooms[ANCHORS][48];
        char audiences[AUDIENCES][48];
} ids;

/* What the threads share with the test. */
static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool is_gate_open, is_asking, is_stopping;
        atomic_int next_post, posts_done, asks_done, failures, retries;
        atomic_int post_limit; /* no post from this index on until the chaos caught up */
        atomic_bool is_asker_done;
        char failure[512];
        long long t0_ms, ask_spacing_ms;
        MYSQL *gate_mysql;
        pthread_t senders[SENDERS], asker;
        int sender_cnt;
        bool has_asker;
} run = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static unsigned rnd(unsigned n)
{
        fx.rng = fx.rng * 6364136223846793005ULL + 1442695040888963407ULL;
        return (unsigned)((fx.rng >> 33) % n);
}

static long long env_int(const char *name, long long def, long long min, long long max)
{
        const char *v = getenv(name);
        long long n;

        if (!v || !*v)
                return def;
        n = atoll(v);
        cr_assert(n >= min && n <= max, "%s=%s is not within %lld..%lld", name, v, min, max);
        return n;
}

/* The ratio in force for anchor a at ts_ms: the newest row not after it, else the default. */
static long long ratio_at(int a, long long ts_ms)
{
        long long best_ms = -1, bp = DEFAULT_RATIO_BP;

        for (int i = 0; i < fx.ratio_cnt; i++) {
                const struct ratio_row *r = &fx.ratios[i];

                if (r->anchor == a && r->effective_ms <= ts_ms && r->effective_ms > best_ms) {
                        best_ms = r->effective_ms;
                        bp = r->ratio_bp;
                }
        }
        return bp;
}

/* The rule, independently of the code under test: the anchor's share, floored, in 128 bits. */
static long long anchor_share(long long amount, long long ratio_bp)
{
        return (long long)((__int128)amount * ratio_bp / 10000);
}

static void add_ratio(int a, long long effective_ms, long long ratio_bp, bool is_midway)
{
        cr_assert(fx.ratio_cnt < MAX_RATIOS);
        fx.ratios[fx.ratio_cnt++] = (struct ratio_row){a, effective_ms, ratio_bp, is_midway};
}

/*
 * Per anchor: a base ratio since 2020 (a quarter have none: the default applies), some a newer
 * one from just before the evening, some one from after it (never in force tonight), and every
 * third a new ratio from the middle of the evening, written while the evening runs.
 */
static void plan_ratios(void)
{
        static const long long base_bp[] = {5000, 3333, 6667, 7000, 4999, 8001, 2500, 6000};

        for (int a = 0; a < ANCHORS; a++) {
                if (a % 4 != 3)
                        add_ratio(a, TS_2020_MS, base_bp[a % 8], false);
                if (a % 5 == 2)
                        add_ratio(a, fx.start_ms - HOUR_MS, 9000 - a * 7, false);
                if (a % 5 == 1)
                        add_ratio(a, fx.start_ms + EVENING_MS + HOUR_MS, 10000, false);
                if (a % 3 == 0)
                        add_ratio(a, fx.mid_ms, 2000 + (a * 379) % 7000, true);
        }
        add_ratio(7, fx.mid_ms + 1, 9500,
                  true); /* a millisecond later: a tip at mid_ms keeps the old one */
}

static void plan_tips(void)
{
        static const long long prices[] = {1,  1,   3,    10,   10,    52,   99,
                                           99, 520, 1314, 9999, 10001, 33333};
        static const char *const types[] = {"registered", "guest", NULL};

        fx.tips = calloc((size_t)fx.tip_cnt, sizeof(*fx.tips));
        cr_assert_not_null(fx.tips);
        fx.phase_a = fx.tip_cnt * PHASE_A_PCT / 100;
        for (int i = 0; i < fx.tip_cnt; i++) {
                struct tip *t = &fx.tips[i];

                /* Half the tips go to the eight most popular anchors. */
                t->anchor = rnd(2) ? (int)rnd(ANCHORS) : (int)rnd(8);
                t->audience = (int)rnd(AUDIENCES);
                t->gift_count = rnd(4) ? 1 : 1 + rnd(5);
                t->amount = prices[rnd(sizeof(prices) / sizeof(prices[0]))] * t->gift_count +
                            (rnd(7) ? 0 : rnd(100));
                t->ts_ms = fx.start_ms + i * EVENING_MS / fx.tip_cnt;
                t->is_gender_absent = rnd(2);
                t->audience_type = types[rnd(3)];
                snprintf(t->id, sizeof(t->id), "%s-%c-%d", fx.prefix, i < fx.phase_a ? 'a' : 'b',
                         i);
        }
        if (fx.tip_cnt % 2 == 0)
                fx.tips[fx.tip_cnt / 2].anchor =
                        0; /* ts == mid_ms exactly: effective_at itself counts */
        for (int a = 0; a < ANCHORS; a++)
                fx.tips[fx.tip_cnt - ANCHORS + a].anchor = a; /* the closing tips: one per anchor */
        for (int i = 0; i < fx.tip_cnt; i++) {
                struct tip *t = &fx.tips[i];

                t->ratio_bp = ratio_at(t->anchor, t->ts_ms);
                t->share = anchor_share(t->amount, t->ratio_bp);
                fx.total[t->anchor] += t->share;
                fx.gross[t->anchor] += t->amount;
                fx.tips_of[t->anchor]++;
                if (i < fx.phase_a)
                        fx.guaranteed[t->anchor] += t->share;
        }
}

static int by_order(const void *x, const void *y)
{
        const struct post *a = x, *b = y;

        return a->order < b->order ? -1 : a->order > b->order ? 1 : a->tip - b->tip;
}

/*
 * Every tip in time order; 3 % replayed at once, 2 % retried with a fresh timestamp, 6 %
 * posted again up to 300 tips later. The gate is the first post of a tip from the second half:
 * the new ratios are written before it goes out, and every post before it is of an earlier tip.
 * The closing tips (one per anchor) go out last, once every other post was answered: when a
 * worker has them, it has handled everything before them on every partition.
 */
static void plan_posts(void)
{
        const int closing = fx.tip_cnt - ANCHORS;

        fx.posts = calloc((size_t)fx.tip_cnt * 2, sizeof(*fx.posts));
        cr_assert_not_null(fx.posts);
        for (int i = 0; i < fx.tip_cnt; i++) {
                unsigned r = rnd(100), later = (unsigned)i + 1 + rnd(300);
                enum post_kind kind = r < 3 ? POST_THEN_REPLAY : POST_ONCE;

                if (i >= closing) {
                        fx.posts[fx.post_cnt++] = (struct post){2LL * i, i, POST_ONCE};
                        continue;
                }
                if (r >= 3 && r < 5)
                        kind = POST_THEN_RETRY;
                fx.posts[fx.post_cnt++] = (struct post){2LL * i, i, kind};
                if (later >= (unsigned)closing)
                        later = (unsigned)closing - 1;
                if (rnd(100) < 6)
                        fx.posts[fx.post_cnt++] = (struct post){2LL * later + 1, i, POST_AGAIN};
        }
        qsort(fx.posts, (size_t)fx.post_cnt, sizeof(*fx.posts), by_order);
        fx.last_posts = fx.post_cnt - ANCHORS;
        for (fx.gate = 0; fx.gate < fx.post_cnt && fx.tips[fx.posts[fx.gate].tip].ts_ms < fx.mid_ms;
             fx.gate++)
                ;
        cr_assert_lt(fx.gate, fx.post_cnt);
}

static struct ask *new_ask(int anchor, enum ask_kind kind, long long amount)
{
        struct ask *w = &fx.asks[fx.ask_cnt];
        static const enum ask_dup dups[] = {DUP_NONE, DUP_NONE,   DUP_NONE, DUP_AGAIN, DUP_NONE,
                                            DUP_NONE, DUP_REPLAY, DUP_NONE, DUP_LATE,  DUP_NONE};

        *w = (struct ask){
                .anchor = anchor, .amount = amount, .kind = kind, .dup = dups[fx.ask_cnt % 10]};
        snprintf(w->id, sizeof(w->id), "%s-w%d", fx.prefix, fx.ask_cnt);
        fx.ask_cnt++;
        return w;
}

/*
 * ROUNDS rounds, each over every anchor in a new order: two safe withdrawals of a tenth of
 * what phase A alone brings (so both are covered whatever was asked before), then racing ones
 * of 5 to 35 % of the evening's total and one above it. An anchor without tips asks thrice.
 * Then one more for every anchor, refused, that closes each partition of live.withdrawal.
 */
static void plan_asks(void)
{
        static const enum ask_kind rounds[ROUNDS] = {ASK_SAFE, ASK_SAFE, ASK_RACE,
                                                     ASK_BIG,  ASK_RACE, ASK_RACE};
        long long asked[ANCHORS] = {0};
        int order[ANCHORS];

        fx.asks = calloc(ANCHORS * ROUNDS + ROUNDS + ANCHORS + 1, sizeof(*fx.asks));
        cr_assert_not_null(fx.asks);
        for (int r = 0; r < ROUNDS; r++) {
                for (int a = 0; a < ANCHORS; a++)
                        order[a] = a;
                for (int a = ANCHORS - 1; a > 0; a--) {
                        int k = (int)rnd((unsigned)a + 1), tmp = order[a];

                        order[a] = order[k];
                        order[k] = tmp;
                }
                for (int i = 0; i < ANCHORS; i++) {
                        int a = order[i];
                        enum ask_kind kind = rounds[r];
                        long long amount = fx.guaranteed[a] / 10;

                        if (kind == ASK_SAFE &&
                            (amount < 1 || amount > fx.guaranteed[a] - asked[a]))
                                kind = ASK_RACE;
                        if (kind == ASK_RACE)
                                amount = 1 + fx.total[a] * (5 + rnd(30)) / 100;
                        else if (kind == ASK_BIG)
                                amount = fx.total[a] + 1 + rnd(1000);
                        new_ask(a, kind, amount);
                        if (kind != ASK_BIG)
                                asked[a] += amount;
                        if (i == ANCHORS / 2 && r % 2 == 1)
                                new_ask(ANCHORS, ASK_NOBODY, 1 + rnd(5000));
                }
        }
        /* The closing ones, after every other post (the late copies included): all refused. */
        fx.last_asks = fx.ask_cnt;
        for (int a = 0; a <= ANCHORS; a++)
                new_ask(a, a < ANCHORS ? ASK_BIG : ASK_NOBODY, a < ANCHORS ? fx.total[a] + 1 : 1)
                        ->dup = DUP_NONE;
}

static void plan_evening(void)
{
        long long day_ms = (long long)time(NULL) / 86400 * 86400000LL;

        fx.start_ms = day_ms - 86400000LL + 18 * HOUR_MS;
        fx.mid_ms = fx.start_ms + EVENING_MS / 2;
        fx.rng = fx.seed;
        plan_ratios();
        plan_tips();
        plan_posts();
        plan_asks();
        cr_log_info(
                "%s: seed %llu; %d distinct tips in %d posts (at most %d/s) over %d anchors and %d audiences, "
                "%d withdrawals; %d revenue_share rows, the midway ones written before post %d",
                fx.prefix, fx.seed, fx.tip_cnt, fx.post_cnt, fx.rate, ANCHORS, AUDIENCES,
                fx.ask_cnt, fx.ratio_cnt, fx.gate);
}

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

static void base64(const void *data, size_t len, char *out, size_t out_size)
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
        redisReply *r;

        fx.redis = redisConnect("127.0.0.1", port);
        cr_assert(fx.redis && !fx.redis->err, "redis 127.0.0.1:%d", port);
        r = redisCommand(fx.redis, "SELECT %d", REDIS_DB);
        cr_assert(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        r = redisCommand(fx.redis, "FLUSHDB");
        cr_assert(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        fx.proxy = support_proxy_start(port);
}

static int insert_ratio(MYSQL *mysql, const struct ratio_row *r)
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

/* ------------------------------------------------------------------ posting (threads) */

/* Records a failure seen by a thread (the test asserts on it once the threads are joined). */
static void thread_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void thread_fail(const char *fmt, ...)
{
        va_list ap;

        pthread_mutex_lock(&run.lock);
        if (atomic_fetch_add(&run.failures, 1) == 0) {
                va_start(ap, fmt);
                vsnprintf(run.failure, sizeof(run.failure), fmt, ap);
                va_end(ap);
        }
        pthread_mutex_unlock(&run.lock);
}

static bool is_stopping(void)
{
        bool stop;

        pthread_mutex_lock(&run.lock);
        stop = run.is_stopping;
        pthread_mutex_unlock(&run.lock);
        return stop;
}

static size_t keep_reply(char *p, size_t size, size_t n, void *arg)
{
        char *reply = arg;
        size_t have = strlen(reply), room = 255 - have, len = size * n < room ? size * n : room;

        memcpy(reply + have, p, len);
        reply[have + len] = '\0';
        return size * n;
}

/* The Standard Webhooks signature, with OpenSSL directly: base64 HMAC-SHA256 of id.ts.body. */
static void sign(const char *msg_id, long long ts_s, const char *body, char *out, size_t out_size)
{
        char text[2048];
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        int n = snprintf(text, sizeof(text), "%s.%lld.%s", msg_id, ts_s, body);

        HMAC(EVP_sha256(), KEY_RAW, (int)strlen(KEY_RAW), (const unsigned char *)text, (size_t)n,
             mac, &mac_len);
        base64(mac, mac_len, out, out_size);
}

/* One signed POST. @returns the HTTP status, or -1 when no answer came. */
static long post_signed(CURL *curl, const char *path, const char *msg_id, long long ts_s,
                        const char *body, char *reply)
{
        char url[96], h_id[128], h_ts[64], h_sig[128], sig[64];
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        long status = -1;

        sign(msg_id, ts_s, body, sig, sizeof(sig));
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx.http_port, path);
        snprintf(h_id, sizeof(h_id), "webhook-id: %s", msg_id);
        snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %lld", ts_s);
        snprintf(h_sig, sizeof(h_sig), "webhook-signature: v1,%s", sig);
        h = curl_slist_append(h, h_id);
        h = curl_slist_append(h, h_ts);
        h = curl_slist_append(h, h_sig);
        reply[0] = '\0';
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_reply);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        if (curl_easy_perform(curl) == CURLE_OK)
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(h);
        return status;
}

/*
 * Posts until a 200, as the platform would: a 503 (Kafka did not acknowledge in time) or no
 * answer is retried with the same webhook-id and a fresh timestamp; anything else fails.
 */
static void deliver(CURL *curl, const char *path, const char *msg_id, long long ts_s,
                    const char *body)
{
        char reply[256];
        long status = -1;

        for (int attempt = 0; attempt < 10 && !is_stopping(); attempt++) {
                if (attempt) {
                        atomic_fetch_add(&run.retries, 1);
                        support_sleep_ms(200 * attempt);
                        ts_s = (long long)time(NULL);
                }
                status = post_signed(curl, path, msg_id, ts_s, body, reply);
                if (status == 200)
                        return;
                if (status != 503 && status != -1)
                        break;
        }
        thread_fail("POST %s webhook-id %s: status %ld %s", path, msg_id, status, reply);
}

static void tip_body(const struct tip *t, char *out, size_t out_size)
{
        char gender[48] = "", type[48] = "";

        if (t->audience % 3 != 2 || !t->is_gender_absent)
                snprintf(gender, sizeof(gender), ",\"audience_gender\":\"%s\"",
                         genders[t->audience % 3]);
        if (t->audience_type)
                snprintf(type, sizeof(type), ",\"audience_type\":\"%s\"", t->audience_type);
        snprintf(
                out, out_size,
                "{\"trace_id\":\"%s\",\"audience_id\":\"%s\",\"anchor_id\":\"%s\",\"room_id\":\"%s\",\"amount\":%lld,"
                "\"gift_id\":\"gift%lld\",\"gift_count\":%lld,\"ts\":%lld,\"anchor_gender\":\"%s\"%s%s}",
                t->id, ids.audiences[t->audience], ids.anchors[t->anchor], ids.rooms[t->anchor],
                t->amount, t->amount % 13, t->gift_count, t->ts_ms, genders[t->anchor % 3], gender,
                type);
}

static void post_tip(CURL *curl, const struct post *p)
{
        const struct tip *t = &fx.tips[p->tip];
        char body[1024], msg_id[80];
        long long ts_s = (long long)time(NULL);

        tip_body(t, body, sizeof(body));
        snprintf(msg_id, sizeof(msg_id), "msg_%s_%d", t->id, p->kind == POST_AGAIN);
        deliver(curl, "/v1/rewards", msg_id, ts_s, body);
        if (p->kind == POST_THEN_REPLAY)
                deliver(curl, "/v1/rewards", msg_id, ts_s, body);
        else if (p->kind == POST_THEN_RETRY)
                deliver(curl, "/v1/rewards", msg_id, ts_s + 1, body);
}

/* The sender that reaches the gate writes the midway ratios; the later posts wait for them. */
static void pass_gate(int p)
{
        pthread_mutex_lock(&run.lock);
        if (p == fx.gate) {
                for (int i = 0; i < fx.ratio_cnt; i++) {
                        if (fx.ratios[i].is_midway &&
                            insert_ratio(run.gate_mysql, &fx.ratios[i]) != 0) {
                                pthread_mutex_unlock(&run.lock);
                                thread_fail("midway ratio of %s: %s",
                                            ids.anchors[fx.ratios[i].anchor],
                                            mysql_error(run.gate_mysql));
                                pthread_mutex_lock(&run.lock);
                        }
                }
                run.is_gate_open = true;
                pthread_cond_broadcast(&run.cond);
        }
        while (!run.is_gate_open && !run.is_stopping)
                pthread_cond_wait(&run.cond, &run.lock);
        pthread_mutex_unlock(&run.lock);
}

static void *sender_main(void *arg)
{
        CURL *curl = curl_easy_init();

        (void)arg;
        if (!curl) {
                thread_fail("curl_easy_init failed");
                return NULL;
        }
        for (;;) {
                int p = atomic_fetch_add(&run.next_post, 1);
                long long due = run.t0_ms + (long long)p * 1000 / fx.rate, now = support_now_ms();

                if (p >= fx.post_cnt || is_stopping())
                        break;
                if (due > now)
                        support_sleep_ms((int)(due - now));
                if (p >= fx.gate)
                        pass_gate(p);
                while (p >= fx.last_posts && atomic_load(&run.posts_done) < fx.last_posts &&
                       !is_stopping())
                        support_sleep_ms(5);
                while (p >= atomic_load(&run.post_limit) && !is_stopping())
                        support_sleep_ms(5);
                post_tip(curl, &fx.posts[p]);
                atomic_fetch_add(&run.posts_done, 1);
        }
        curl_easy_cleanup(curl);
        return NULL;
}

static void post_ask(CURL *curl, const struct ask *w, int copy, long long ts_s)
{
        char body[256], msg_id[80];

        snprintf(body, sizeof(body), "{\"request_id\":\"%s\",\"anchor_id\":\"%s\",\"amount\":%lld}",
                 w->id, ids.anchors[w->anchor], w->amount);
        snprintf(msg_id, sizeof(msg_id), "msg_%s_%d", w->id, copy);
        deliver(curl, "/v1/withdrawals", msg_id, ts_s, body);
}

/* Posts asks [from, to), each with its immediate copy when it has one. */
static void post_asks(CURL *curl, int from, int to, long long spacing_ms)
{
        for (int k = from; k < to && !is_stopping(); k++) {
                const struct ask *w = &fx.asks[k];
                long long ts_s = (long long)time(NULL);

                support_sleep_ms((int)spacing_ms);
                post_ask(curl, w, 0, ts_s);
                if (w->dup == DUP_AGAIN)
                        post_ask(curl, w, 1, ts_s);
                else if (w->dup == DUP_REPLAY)
                        post_ask(curl, w, 0, ts_s);
                atomic_fetch_add(&run.asks_done, 1);
        }
}

/*
 * One thread, so each anchor's withdrawals reach its partition in the order of fx.asks (the
 * receiver keys them by anchor_id and answers after the ack); the late copies, then the
 * closing withdrawals, after all the others.
 */
static void *asker_main(void *arg)
{
        CURL *curl = curl_easy_init();

        (void)arg;
        if (!curl) {
                thread_fail("curl_easy_init failed");
                return NULL;
        }
        pthread_mutex_lock(&run.lock);
        while (!run.is_asking && !run.is_stopping)
                pthread_cond_wait(&run.cond, &run.lock);
        pthread_mutex_unlock(&run.lock);
        post_asks(curl, 0, fx.last_asks, run.ask_spacing_ms);
        for (int k = 0; k < fx.last_asks && !is_stopping(); k++)
                if (fx.asks[k].dup == DUP_LATE)
                        post_ask(curl, &fx.asks[k], 1, (long long)time(NULL));
        post_asks(curl, fx.last_asks, fx.ask_cnt, 0);
        curl_easy_cleanup(curl);
        atomic_store(&run.is_asker_done, true);
        return NULL;
}

static void start_posting(void)
{
        run.gate_mysql = support_mysql_connect(fx.mysql_url);
        run.t0_ms = support_now_ms();
        for (int i = 0; i < SENDERS; i++) {
                cr_assert(pthread_create(&run.senders[i], NULL, sender_main, NULL) == 0);
                run.sender_cnt++;
        }
        cr_assert(pthread_create(&run.asker, NULL, asker_main, NULL) == 0);
        run.has_asker = true;
}

/* Phase A is settled: the withdrawals start, spread over most of what remains of the posting. */
static void start_asking(void)
{
        long long left_ms =
                (long long)(fx.post_cnt - atomic_load(&run.posts_done)) * 1000 / fx.rate;

        pthread_mutex_lock(&run.lock);
        run.ask_spacing_ms = left_ms * 6 / 10 / (fx.ask_cnt + fx.ask_cnt / 5);
        run.is_asking = true;
        pthread_cond_broadcast(&run.cond);
        pthread_mutex_unlock(&run.lock);
        cr_log_info("phase A (%d tips) settled after %lld ms: withdrawals start, one every %lld ms",
                    fx.phase_a, support_now_ms() - run.t0_ms, run.ask_spacing_ms);
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

/* ------------------------------------------------------------------ the checks */

static MYSQL_RES *rows_of(const char *sql)
{
        MYSQL_RES *res;

        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.mysql));
        res = mysql_store_result(fx.mysql);
        cr_assert(res != NULL, "%s: %s", sql, mysql_error(fx.mysql));
        return res;
}

/* The index of the tip or request named id ("<prefix>-<x>-<i>" or "<prefix>-w<i>"), or -1. */
static int tip_index(const char *id)
{
        const char *dash = strrchr(id, '-');
        int i = dash ? atoi(dash + 1) : -1;

        return i >= 0 && i < fx.tip_cnt && strcmp(fx.tips[i].id, id) == 0 ? i : -1;
}

static int ask_index(const char *id)
{
        const char *w = strrchr(id, 'w');
        int i = w ? atoi(w + 1) : -1;

        return i >= 0 && i < fx.ask_cnt && strcmp(fx.asks[i].id, id) == 0 ? i : -1;
}

static int anchor_index(const char *id)
{
        for (int a = 0; a <= ANCHORS; a++)
                if (strcmp(ids.anchors[a], id) == 0)
                        return a;
        return -1;
}

static int gender_index(const char *g)
{
        for (int i = 0; i < 3; i++)
                if (strcmp(genders[i], g) == 0)
                        return i;
        return -1;
}

/* recharge holds each distinct tip once, as sent; per anchor, its count and sum are the test's. */
static void check_recharge(void)
{
        MYSQL_RES *res =
                rows_of("SELECT trace_id, anchor_id, room_id, audience_id, amount FROM recharge");
        MYSQL_ROW row;
        int n = 0;

        while ((row = mysql_fetch_row(res))) {
                int i = tip_index(row[0]);
                const struct tip *t = i >= 0 ? &fx.tips[i] : NULL;

                cr_assert(t != NULL, "recharge has a tip the test never sent: %s", row[0]);
                cr_assert_str_eq(row[1], ids.anchors[t->anchor], "anchor of %s", t->id);
                cr_assert_str_eq(row[2], ids.rooms[t->anchor], "room of %s", t->id);
                cr_assert_str_eq(row[3], ids.audiences[t->audience], "audience of %s", t->id);
                cr_assert(eq(i64, atoll(row[4]), t->amount), "amount of %s", t->id);
                n++;
        }
        mysql_free_result(res);
        cr_assert(eq(int, n, fx.tip_cnt));
        res = rows_of("SELECT anchor_id, COUNT(*), SUM(amount) FROM recharge GROUP BY anchor_id");
        n = 0;
        while ((row = mysql_fetch_row(res))) {
                int a = anchor_index(row[0]);

                cr_assert(a >= 0 && a < ANCHORS && fx.tips_of[a] > 0, "recharge has anchor %s",
                          row[0]);
                cr_assert(eq(i64, atoll(row[1]), fx.tips_of[a]), "recharge count of %s", row[0]);
                cr_assert(eq(i64, atoll(row[2]), fx.gross[a]), "recharge sum of %s", row[0]);
                n++;
        }
        mysql_free_result(res);
        for (int a = 0; a < ANCHORS; a++)
                n -= fx.tips_of[a] > 0;
        cr_assert(eq(int, n, 0), "anchors in recharge");
}

/* Each tip split at the ratio in force at its ts, the anchor's share floored, the rest the
 * platform's. */
static void check_details(void)
{
        MYSQL_RES *res = rows_of(
                "SELECT trace_id, anchor_id, amount, ratio_bp, anchor_amount, platform_amount FROM "
                "settlement_detail");
        MYSQL_ROW row;
        int n = 0, changed = 0;

        while ((row = mysql_fetch_row(res))) {
                int i = tip_index(row[0]);
                const struct tip *t = i >= 0 ? &fx.tips[i] : NULL;

                cr_assert(t != NULL, "settlement_detail has a tip the test never sent: %s", row[0]);
                cr_assert_str_eq(row[1], ids.anchors[t->anchor], "anchor of %s", t->id);
                cr_assert(eq(i64, atoll(row[2]), t->amount), "amount of %s", t->id);
                cr_assert(eq(i64, atoll(row[3]), t->ratio_bp),
                          "ratio_bp of %s (ts %lld, anchor %s)", t->id, t->ts_ms,
                          ids.anchors[t->anchor]);
                cr_assert(eq(i64, atoll(row[4]), t->share), "anchor_amount of %s: %lld at %lld bp",
                          t->id, t->amount, t->ratio_bp);
                cr_assert(eq(i64, atoll(row[5]), t->amount - t->share), "platform_amount of %s",
                          t->id);
                changed +=
                        t->ts_ms >= fx.mid_ms && t->ratio_bp != ratio_at(t->anchor, fx.mid_ms - 1);
                n++;
        }
        mysql_free_result(res);
        cr_assert(eq(int, n, fx.tip_cnt));
        cr_assert_gt(changed, 0,
                     "no tip was settled at a ratio changed midway: nothing was tested");
        cr_log_info("%d tips were settled at a ratio that changed in the middle of the evening",
                    changed);
}

/*
 * Each request has one row, as sent, with one of the two outcomes (a refusal says why);
 * is_ok[k] receives that of fx.asks[k].
 */
static void read_outcomes(bool *is_ok)
{
        MYSQL_RES *res = rows_of(
                "SELECT request_id, anchor_id, amount, status, COALESCE(reason, '') FROM withdrawal");
        MYSQL_ROW row;
        int n = 0;

        while ((row = mysql_fetch_row(res))) {
                int k = ask_index(row[0]);
                const struct ask *w = k >= 0 ? &fx.asks[k] : NULL;

                cr_assert(w != NULL, "withdrawal has a request the test never sent: %s", row[0]);
                cr_assert_str_eq(row[1], ids.anchors[w->anchor], "anchor of %s", w->id);
                cr_assert(eq(i64, atoll(row[2]), w->amount), "amount of %s", w->id);
                cr_assert(strcmp(row[3], "succeeded") == 0 || strcmp(row[3], "rejected") == 0,
                          "%s: %s", w->id, row[3]);
                if (w->kind == ASK_BIG)
                        cr_assert(strstr(row[4], "insufficient balance") != NULL, "%s: %s %s",
                                  w->id, row[3], row[4]);
                else if (w->kind == ASK_NOBODY)
                        cr_assert(strstr(row[4], "no settled earnings") != NULL, "%s: %s %s", w->id,
                                  row[3], row[4]);
                is_ok[k] = strcmp(row[3], "succeeded") == 0;
                n++;
        }
        mysql_free_result(res);
        cr_assert(eq(int, n, fx.ask_cnt), "one row per request");
}

/*
 * The outcomes replayed in the order sent, which is each anchor's order on its partition of
 * live.withdrawal (CONTRACT: keyed by anchor_id; settlement decides an anchor's requests in
 * order): what must succeed did and what must be refused was; a success never took more than
 * the evening ever brings; a refusal only when the tips settled before any withdrawal went out
 * did not cover it. withdrawn[] receives the sum of each anchor's successes.
 */
static void check_withdrawals(long long withdrawn[ANCHORS + 1])
{
        bool *is_ok = calloc((size_t)fx.ask_cnt, sizeof(*is_ok));
        int succeeded = 0;

        cr_assert_not_null(is_ok);
        read_outcomes(is_ok);
        memset(withdrawn, 0, (ANCHORS + 1) * sizeof(*withdrawn));
        for (int k = 0; k < fx.ask_cnt; k++) {
                const struct ask *w = &fx.asks[k];
                long long available =
                        w->anchor < ANCHORS ? fx.guaranteed[w->anchor] - withdrawn[w->anchor] : 0;

                if (w->kind == ASK_SAFE)
                        cr_assert(
                                is_ok[k],
                                "%s (%lld of anchor %d) was refused though phase A alone covers it",
                                w->id, w->amount, w->anchor);
                if (w->kind == ASK_BIG || w->kind == ASK_NOBODY)
                        cr_assert(is_ok[k] == false, "%s (%lld of anchor %d) succeeded", w->id,
                                  w->amount, w->anchor);
                if (!is_ok[k]) {
                        cr_assert_gt(w->amount, available,
                                     "%s (%lld) refused, though anchor %d had %lld available "
                                     "when it was sent",
                                     w->id, w->amount, w->anchor, available);
                        continue;
                }
                cr_assert_leq(w->amount, fx.total[w->anchor] - withdrawn[w->anchor],
                              "%s overdraws anchor %d", w->id, w->anchor);
                withdrawn[w->anchor] += w->amount;
                succeeded++;
        }
        free(is_ok);
        cr_log_info("withdrawals: %d succeeded, %d refused", succeeded, fx.ask_cnt - succeeded);
}

/* total = the anchor's shares, withdrawn = its successes, available = the difference, never
 * negative. */
static void check_balances(void)
{
        long long withdrawn[ANCHORS + 1];
        MYSQL_RES *res;
        MYSQL_ROW row;
        int n = 0;

        check_withdrawals(withdrawn);
        res = rows_of(
                "SELECT anchor_id, total_amount, withdrawn_amount, available_amount FROM settlement");
        while ((row = mysql_fetch_row(res))) {
                int a = anchor_index(row[0]);

                cr_assert(a >= 0, "settlement has anchor %s", row[0]);
                if (a == ANCHORS) { /* no tip: nothing to hold */
                        cr_assert(atoll(row[1]) == 0 && atoll(row[2]) == 0 && atoll(row[3]) == 0,
                                  "%s", row[0]);
                        continue;
                }
                cr_assert(eq(i64, atoll(row[1]), fx.total[a]), "total_amount of %s", row[0]);
                cr_assert(eq(i64, atoll(row[2]), withdrawn[a]), "withdrawn_amount of %s", row[0]);
                cr_assert(eq(i64, atoll(row[3]), fx.total[a] - withdrawn[a]),
                          "available_amount of %s", row[0]);
                cr_assert_geq(atoll(row[3]), 0, "%s", row[0]);
                n++;
        }
        mysql_free_result(res);
        for (int a = 0; a < ANCHORS; a++)
                n -= fx.tips_of[a] > 0;
        cr_assert(eq(int, n, 0), "anchors in settlement");
}

/* Per hour, anchor and both genders: the sum and count of the distinct tips sent. */
static void check_hourly(void)
{
        static long long want_sum[HOURS][ANCHORS][3], want_cnt[HOURS][ANCHORS][3];
        const long long first_hour = fx.start_ms / HOUR_MS;
        MYSQL_RES *res;
        MYSQL_ROW row;
        int cells = 0, n = 0;

        memset(want_sum, 0, sizeof(want_sum));
        memset(want_cnt, 0, sizeof(want_cnt));
        for (int i = 0; i < fx.tip_cnt; i++) {
                const struct tip *t = &fx.tips[i];
                int h = (int)(t->ts_ms / HOUR_MS - first_hour);

                cr_assert(h >= 0 && h < HOURS);
                cells += want_cnt[h][t->anchor][t->audience % 3]++ == 0;
                want_sum[h][t->anchor][t->audience % 3] += t->amount;
        }
        res = rows_of(
                "SELECT UNIX_TIMESTAMP(hour), anchor_id, anchor_gender, audience_gender, amount_sum, reward_count "
                "FROM hourly_reward_stats");
        while ((row = mysql_fetch_row(res))) {
                int h = (int)(atoll(row[0]) * 1000 / HOUR_MS - first_hour),
                    a = anchor_index(row[1]);
                int ag = gender_index(row[2]), g = gender_index(row[3]);

                cr_assert(h >= 0 && h < HOURS && a >= 0 && a < ANCHORS && g >= 0,
                          "hourly_reward_stats row %s %s %s %s", row[0], row[1], row[2], row[3]);
                cr_assert(eq(int, ag, a % 3), "anchor_gender of %s", row[1]);
                cr_assert(eq(i64, atoll(row[4]), want_sum[h][a][g]),
                          "amount_sum of hour %d anchor %s audience %s", h, row[1], row[3]);
                cr_assert(eq(i64, atoll(row[5]), want_cnt[h][a][g]),
                          "reward_count of hour %d anchor %s audience %s", h, row[1], row[3]);
                n++;
        }
        mysql_free_result(res);
        cr_assert(eq(int, n, cells), "hourly_reward_stats rows");
}

/* Only this evening's rooms in Redis (reconcile also names any other). */
static void check_redis_rooms(void)
{
        redisReply *r = redisCommand(fx.redis, "KEYS live:room:earnings:*");
        int rooms = 0;

        for (int a = 0; a < ANCHORS; a++)
                rooms += fx.tips_of[a] > 0;
        cr_assert(r && r->type == REDIS_REPLY_ARRAY);
        cr_assert(eq(int, (int)r->elements, rooms), "rooms with earnings in Redis");
        freeReplyObject(r);
}

static void reconcile_ok(void)
{
        char bin[512], from[32], to[32], e_mysql[600], e_redis[160], log[256];
        char *argv[] = {bin, (char *)"reconcile", (char *)"--from", from, (char *)"--to", to, NULL};
        char *env[] = {e_mysql, e_redis, NULL};
        char *out;
        int status;

        support_bin_path("liveflow-settlement", bin, sizeof(bin));
        snprintf(from, sizeof(from), "%lld", fx.start_ms / 1000 - 3600);
        snprintf(to, sizeof(to), "%lld", (fx.start_ms + EVENING_MS) / 1000 + 3600);
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=redis://127.0.0.1:%s/%d",
                 support_fixture("LIVEFLOW_TEST_REDIS_PORT"), REDIS_DB);
        snprintf(log, sizeof(log), "/tmp/%s.reconcile.log", fx.prefix);
        status = support_wait_exit(support_spawn(argv, env, log), 120000);
        out = support_read_file(log, NULL);
        cr_log_info("reconcile --from %s --to %s exited %d:\n%s", from, to, status,
                    out ? out : "(no output)");
        cr_assert(eq(int, status, 0), "reconcile: %s", out ? out : log);
        cr_assert(out && strstr(out, "all agree"), "%s", out ? out : log);
        free(out);
}

static void stop_cleanly(struct proc *p)
{
        cr_assert(kill(p->pid, SIGTERM) == 0);
        cr_assert(eq(int, support_wait_exit(p->pid, 30000), 0), "%s did not drain cleanly; see %s",
                  p->name, p->log);
        p->pid = 0;
}

/* Only once the test passed: a failure leaves them to read. */
static void remove_logs(void)
{
        static const char *const names[] = {"receiver", "reward-sync", "settlement", "stats",
                                            "reconcile"};
        char path[256];

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                snprintf(path, sizeof(path), "/tmp/%s.%s.log", fx.prefix, names[i]);
                unlink(path);
        }
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
