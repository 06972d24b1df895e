/*
 * test_lookup_deadline.c: callback-receiver/lookup_deadline.c with a fake store that answers
 * at once, late, or never in time: the caller gets the answer, or UNAVAILABLE at its deadline
 * (counted), never the store's own delay.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "support.h"
#include "../../callback-receiver/lookup_deadline.h"

static atomic_int delay_ms;
static atomic_int calls;

static enum anchor_lookup_result slow_store(void *ctx, const char *anchor_id, const char *trace_id,
                                            struct anchor_record *anchor)
{
        (void)ctx;
        (void)trace_id;
        atomic_fetch_add(&calls, 1);
        support_sleep_ms(atomic_load(&delay_ms));
        *anchor = (struct anchor_record){.status = strcmp(anchor_id, "banned") == 0 ? ANCHOR_BANNED
                                                                                    : ANCHOR_ACTIVE,
                                         .store = "fake"};
        return ANCHOR_LOOKUP_FOUND;
}

static struct metrics *metrics;
static struct lookup_deadline *ld;

static void setup(void)
{
        const struct anchor_lookup inner = {.fn = slow_store};

        atomic_store(&delay_ms, 0);
        atomic_store(&calls, 0);
        metrics = metrics_new();
        ld = lookup_deadline_new(&inner, 200, 2, 4, metrics);
        cr_assert(ld != NULL);
}

static void teardown(void)
{
        lookup_deadline_destroy(ld);
        metrics_destroy(metrics);
}

TestSuite(lookup_deadline, .init = setup, .fini = teardown, .timeout = 30);

static long long timeouts(void)
{
        return metric_value(
                metrics_counter(metrics, "liveflow_receiver_srs_lookup_timeouts_total", "", NULL));
}

static enum anchor_lookup_result ask(const char *anchor_id, struct anchor_record *a, long long *ms)
{
        struct anchor_lookup l = lookup_deadline_lookup(ld);
        long long t0 = support_now_ms();
        enum anchor_lookup_result r = l.fn(l.ctx, anchor_id, "trace", a);

        *ms = support_now_ms() - t0;
        return r;
}

Test(lookup_deadline, a_quick_store_answers_through_the_workers)
{
        struct anchor_record a = {0};
        long long ms;

        cr_assert(eq(int, ask("banned", &a, &ms), ANCHOR_LOOKUP_FOUND));
        cr_assert(eq(int, a.status, ANCHOR_BANNED));
        cr_assert_str_eq(a.store, "fake");
        cr_assert(eq(int, ask("someone", &a, &ms), ANCHOR_LOOKUP_FOUND));
        cr_assert(eq(int, a.status, ANCHOR_ACTIVE));
        cr_assert(eq(i64, timeouts(), 0));
}

Test(lookup_deadline, a_frozen_store_costs_the_caller_the_deadline_not_its_delay)
{
        struct anchor_record a = {0};
        long long ms;

        atomic_store(&delay_ms, 2000); /* as a frozen Redis with its 2 s timeout */
        cr_assert(eq(int, ask("banned", &a, &ms), ANCHOR_LOOKUP_UNAVAILABLE));
        fprintf(stderr,
                "lookup deadline: a store frozen for 2000 ms answered UNAVAILABLE after "
                "%lld ms (deadline 200 ms)\n",
                ms);
        cr_assert(lt(i64, ms, 1500), "waited %lld ms", ms);
        cr_assert(eq(i64, timeouts(), 1));
}

Test(lookup_deadline, with_every_worker_stuck_and_the_queue_full_a_lookup_fails_at_once)
{
        struct anchor_record a = {0};
        long long ms;

        atomic_store(&delay_ms, 3000);
        /* 2 workers busy, then 4 queued: each caller gives up at its deadline. */
        for (int i = 0; i < 6; i++)
                cr_assert(eq(int, ask("x", &a, &ms), ANCHOR_LOOKUP_UNAVAILABLE));
        cr_assert(eq(int, ask("x", &a, &ms), ANCHOR_LOOKUP_UNAVAILABLE));
        cr_assert(lt(i64, ms, 150), "a full queue should refuse at once, took %lld ms", ms);
        cr_assert(eq(i64, timeouts(), 7));
}

/* ------------------------------------------------------------ started lookups */

/* One started lookup: done() counts its calls and says when the answer came. */
struct started {
        struct anchor_answer ans;
        atomic_int done_calls;
        atomic_llong done_at_ms;
};

static void on_done(void *arg)
{
        struct started *s = arg;

        atomic_store(&s->done_at_ms, support_now_ms());
        atomic_fetch_add(&s->done_calls, 1);
}

/* Waits up to wait_ms for s's done; how long after t0 it came, or -1. */
static long long wait_done(struct started *s, long long t0, int wait_ms)
{
        while (atomic_load(&s->done_calls) == 0 && support_now_ms() - t0 < wait_ms)
                support_sleep_ms(5);
        return atomic_load(&s->done_calls) ? atomic_load(&s->done_at_ms) - t0 : -1;
}

Test(lookup_deadline, a_started_lookup_calls_done_once_with_the_answer)
{
        static struct started s;
        long long t0 = support_now_ms();

        memset(&s, 0, sizeof(s));
        atomic_store(&delay_ms, 100);
        lookup_deadline_start(ld, "banned", "trace", &s.ans, on_done, &s);
        cr_assert(ge(i64, wait_done(&s, t0, 5000), 0), "done never called");
        cr_assert(eq(int, s.ans.result, ANCHOR_LOOKUP_FOUND));
        cr_assert(eq(int, s.ans.record.status, ANCHOR_BANNED));
        support_sleep_ms(300); /* past the deadline: done is not called again */
        cr_assert(eq(int, atomic_load(&s.done_calls), 1));
        cr_assert(eq(i64, timeouts(), 0));
}

Test(lookup_deadline,
     a_started_lookup_of_a_frozen_store_returns_and_is_answered_at_the_deadline_once)
{
        static struct started s;
        long long t0 = support_now_ms(), ms;

        memset(&s, 0, sizeof(s));
        atomic_store(&delay_ms, 1000);
        lookup_deadline_start(ld, "banned", "trace", &s.ans, on_done, &s);
        ms = wait_done(&s, t0, 5000);
        cr_assert(ge(i64, ms, 150), "answered after %lld ms, before its 200 ms deadline", ms);
        cr_assert(lt(i64, ms, 900), "answered after %lld ms: the store's delay, not the deadline",
                  ms);
        cr_assert(eq(int, s.ans.result, ANCHOR_LOOKUP_UNAVAILABLE));
        cr_assert(eq(i64, timeouts(), 1));
        support_sleep_ms(1200); /* the store answers late: done is not called again */
        cr_assert(eq(int, atomic_load(&s.done_calls), 1));
}

Test(lookup_deadline, started_lookups_beyond_the_queue_are_answered_unavailable_at_once)
{
        static struct started s[7];
        long long t0;

        memset(s, 0, sizeof(s));
        atomic_store(&delay_ms, 1000);
        /* 2 workers busy, then 4 queued; the 7th finds the queue full. */
        for (int i = 0; i < 2; i++)
                lookup_deadline_start(ld, "x", "trace", &s[i].ans, on_done, &s[i]);
        t0 = support_now_ms();
        while (atomic_load(&calls) < 2 && support_now_ms() - t0 < 5000)
                support_sleep_ms(2);
        cr_assert(eq(int, atomic_load(&calls), 2), "the workers never took the lookups");
        for (int i = 2; i < 6; i++)
                lookup_deadline_start(ld, "x", "trace", &s[i].ans, on_done, &s[i]);
        t0 = support_now_ms();
        lookup_deadline_start(ld, "x", "trace", &s[6].ans, on_done, &s[6]);
        cr_assert(eq(int, atomic_load(&s[6].done_calls), 1), "done before start returned");
        cr_assert(eq(int, s[6].ans.result, ANCHOR_LOOKUP_UNAVAILABLE));
        for (int i = 0; i < 6; i++) {
                cr_assert(ge(i64, wait_done(&s[i], t0, 5000), 0), "lookup %d never answered", i);
                cr_assert(eq(int, s[i].ans.result, ANCHOR_LOOKUP_UNAVAILABLE));
        }
        cr_assert(eq(i64, timeouts(), 7));
        support_sleep_ms(1200); /* the workers finish late: nobody is called twice */
        for (int i = 0; i < 7; i++)
                cr_assert(eq(int, atomic_load(&s[i].done_calls), 1));
}
