/* plan.c: test_money_evening's random plan: the ratios, the tips and their posts, the
 * withdrawals, and what the test expects of each, by its own copy of the rule. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
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

#include "evening.h"
#include "support.h"

/* ------------------------------------------------------------------ the plan */

static unsigned rnd(unsigned n)
{
        fx.rng = fx.rng * 6364136223846793005ULL + 1442695040888963407ULL;
        return (unsigned)((fx.rng >> 33) % n);
}

long long env_int(const char *name, long long def, long long min, long long max)
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
long long ratio_at(int a, long long ts_ms)
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

void plan_evening(void)
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
