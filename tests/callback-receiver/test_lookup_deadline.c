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
        *anchor = (struct anchor_record){
                .status = strcmp(anchor_id, "banned") == 0 ? ANCHOR_BANNED : ANCHOR_ACTIVE,
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

static enum anchor_lookup_result ask(const char *anchor_id, struct anchor_record *a,
                                     long long *ms)
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
        fprintf(stderr, "lookup deadline: a store frozen for 2000 ms answered UNAVAILABLE after "
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
