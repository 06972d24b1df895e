/*
 * evening.h: what test_money_evening.c shares with its parts (plan.c: the random plan;
 * posting.c: the sender threads; checks.c: the figures at the end): sizes, the plan's types,
 * the processes, and the state of the test and of its threads.
 */
#ifndef LIVEFLOW_TEST_MONEY_EVENING_H
#define LIVEFLOW_TEST_MONEY_EVENING_H

#include <hiredis/hiredis.h>
#include <mysql.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

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

extern const char *const genders[3];

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

struct money_fixture {
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
};

extern struct money_fixture fx;

/* The test's names, all starting with fx.prefix. */
struct money_ids {
        char anchors[ANCHORS + 1][48];
        char rooms[ANCHORS][48];
        char audiences[AUDIENCES][48];
};

extern struct money_ids ids;

/* What the threads share with the test. */
struct money_run {
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
};

extern struct money_run run;

long long env_int(const char *name, long long def, long long min, long long max);
long long ratio_at(int a, long long ts_ms);
void plan_evening(void);
void base64(const void *data, size_t len, char *out, size_t out_size);
int insert_ratio(MYSQL *mysql, const struct ratio_row *r);
void start_posting(void);
void start_asking(void);
void check_recharge(void);
void check_details(void);
void check_balances(void);
void check_hourly(void);
void check_redis_rooms(void);
void reconcile_ok(void);
void stop_cleanly(struct proc *p);
void remove_logs(void);

#endif
