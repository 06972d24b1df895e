/* test_replay.c: the bounded memory of acknowledged webhook-ids (callback-receiver/replay.c). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../callback-receiver/replay.h"

static struct replay *r;

static void teardown(void)
{
        replay_destroy(r);
        r = NULL;
}

TestSuite(replay, .fini = teardown);

Test(replay, remembers_an_id_until_its_expiry)
{
        r = replay_new(10);
        cr_assert(r != NULL);
        cr_assert(not(replay_contains(r, "msg_1", 1000)));
        cr_assert(eq(int, replay_remember(r, "msg_1", 5000, 1000), 0));
        cr_assert(replay_contains(r, "msg_1", 1000));
        cr_assert(replay_contains(r, "msg_1", 4999));
        cr_assert(not(replay_contains(r, "msg_2", 1000)));
        cr_assert(not(replay_contains(r, "msg_", 1000)));
        cr_assert(not(replay_contains(r, "msg_1", 5000)), "expired at its expiry time");
        cr_assert(eq(sz, replay_count(r), 0), "the expired entry is dropped");
}

Test(replay, remembering_again_keeps_the_later_expiry)
{
        r = replay_new(10);
        cr_assert(eq(int, replay_remember(r, "msg_1", 5000, 1000), 0));
        cr_assert(eq(int, replay_remember(r, "msg_1", 9000, 2000), 0));
        cr_assert(eq(int, replay_remember(r, "msg_1", 3000, 2500), 0));
        cr_assert(eq(sz, replay_count(r), 1));
        cr_assert(replay_contains(r, "msg_1", 8999));
        cr_assert(not(replay_contains(r, "msg_1", 9000)));
}

Test(replay, a_full_memory_drops_the_oldest_and_says_when_it_had_not_expired)
{
        r = replay_new(3);
        cr_assert(eq(int, replay_remember(r, "a", 10000, 0), 0));
        cr_assert(eq(int, replay_remember(r, "b", 10000, 0), 0));
        cr_assert(eq(int, replay_remember(r, "c", 10000, 0), 0));
        cr_assert(eq(int, replay_remember(r, "d", 10000, 0), 1), "a was dropped before its time");
        cr_assert(eq(sz, replay_count(r), 3));
        cr_assert(not(replay_contains(r, "a", 0)));
        cr_assert(replay_contains(r, "b", 0) && replay_contains(r, "c", 0) &&
                  replay_contains(r, "d", 0));
        /* Once b has expired, making room costs nothing. */
        cr_assert(eq(int, replay_remember(r, "b", 10000, 0), 0));
        cr_assert(eq(int, replay_remember(r, "e", 20000, 10000), 0));
        cr_assert(eq(sz, replay_count(r), 1));
        cr_assert(replay_contains(r, "e", 10000));
}

Test(replay, zero_capacity_is_refused)
{
        cr_assert_null(replay_new(0));
}

Test(replay, ids_of_any_length_and_bytes_are_told_apart)
{
        char long_id[256];

        memset(long_id, 'x', 255);
        long_id[255] = '\0';
        r = replay_new(4);
        cr_assert(eq(int, replay_remember(r, long_id, 100, 0), 0));
        cr_assert(eq(int, replay_remember(r, "", 100, 0), 0));
        cr_assert(replay_contains(r, long_id, 0));
        long_id[254] = 'y';
        cr_assert(not(replay_contains(r, long_id, 0)));
        cr_assert(replay_contains(r, "", 0));
}

/* ------------------------------------------------------------ against a model */

/* The same rules, written the obvious way: a list in insertion order, searched linearly. */
struct model_entry {
        char id[16];
        long long expires_ms;
};

struct model {
        struct model_entry e[64];
        size_t count, cap;
};

static void model_drop_front(struct model *m)
{
        memmove(&m->e[0], &m->e[1], (m->count - 1) * sizeof(m->e[0]));
        m->count--;
}

static void model_drop_expired(struct model *m, long long now)
{
        while (m->count && m->e[0].expires_ms <= now)
                model_drop_front(m);
}

static struct model_entry *model_find(struct model *m, const char *id)
{
        for (size_t i = 0; i < m->count; i++)
                if (!strcmp(m->e[i].id, id))
                        return &m->e[i];
        return NULL;
}

static int model_remember(struct model *m, const char *id, long long expires, long long now)
{
        struct model_entry *found;
        int rc = 0;

        model_drop_expired(m, now);
        if ((found = model_find(m, id))) {
                if (expires > found->expires_ms)
                        found->expires_ms = expires;
                return 0;
        }
        if (m->count == m->cap) {
                rc = m->e[0].expires_ms > now;
                model_drop_front(m);
        }
        snprintf(m->e[m->count].id, sizeof(m->e[0].id), "%s", id);
        m->e[m->count++].expires_ms = expires;
        return rc;
}

static bool model_contains(struct model *m, const char *id, long long now)
{
        struct model_entry *found;

        model_drop_expired(m, now);
        found = model_find(m, id);
        return found && found->expires_ms > now;
}

Test(replay, matches_a_simple_model_over_many_random_operations)
{
        struct model m = {.cap = 37};
        unsigned long long seed = 0x9e3779b97f4a7c15ULL;
        long long now = 0;

        /* 37 entries in 128 slots, ids from a pool of 150: clusters, wrap-around and deletions
         * in the middle of clusters all happen thousands of times. */
        r = replay_new(m.cap);
        cr_assert(r != NULL);
        for (int step = 0; step < 200000; step++) {
                char id[16];
                unsigned int op;

                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                op = (unsigned int)(seed >> 33);
                snprintf(id, sizeof(id), "id%u", op % 150);
                now += (op >> 8) % 3;
                if ((op >> 12) % 2) {
                        long long expires = now + 20 + (long long)((op >> 16) % 60);

                        cr_assert(eq(int, replay_remember(r, id, expires, now),
                                     model_remember(&m, id, expires, now)),
                                  "step %d", step);
                } else {
                        cr_assert(eq(int, replay_contains(r, id, now), model_contains(&m, id, now)),
                                  "step %d id %s", step, id);
                }
                cr_assert(eq(sz, replay_count(r), m.count), "step %d", step);
        }
        for (int i = 0; i < 150; i++) { /* every id, present or not, agrees at the end */
                char id[16];

                snprintf(id, sizeof(id), "id%d", i);
                cr_assert(eq(int, replay_contains(r, id, now), model_contains(&m, id, now)), "%s",
                          id);
        }
}

/* ------------------------------------------------------------ threads */

#define THREADS    4
#define PER_THREAD 5000

static void *hammer(void *arg)
{
        int t = (int)(long)arg;

        for (int i = 0; i < PER_THREAD; i++) {
                char id[32];

                snprintf(id, sizeof(id), "t%d-%d", t, i);
                if (replay_remember(r, id, 1000000, 0) == -1 || !replay_contains(r, id, 0))
                        return (void *)1;
        }
        return NULL;
}

Test(replay, threads_share_one_memory)
{
        pthread_t threads[THREADS];
        void *failed;

        r = replay_new(THREADS * PER_THREAD);
        for (long t = 0; t < THREADS; t++)
                cr_assert(eq(int, pthread_create(&threads[t], NULL, hammer, (void *)t), 0));
        for (int t = 0; t < THREADS; t++) {
                pthread_join(threads[t], &failed);
                cr_assert_null(failed, "thread %d lost an id", t);
        }
        cr_assert(eq(sz, replay_count(r), THREADS * PER_THREAD));
}
