/* test_ids.c: session ids are unique and ordered, and workers do not collide. */
#include <criterion/criterion.h>

#include "ids.h"

Test(ids, strictly_increasing_within_a_generator)
{
        struct ids *g = ids_new(5);
        uint64_t prev = 0;

        for (int i = 0; i < 20000; i++) {
                uint64_t id = ids_next(g);

                cr_assert_gt(id, prev);
                cr_assert_eq((id >> 12) & 0x3ff, 5);
                prev = id;
        }
        ids_destroy(g);
}

Test(ids, two_workers_never_share_an_id)
{
        struct ids *a = ids_new(1), *b = ids_new(2);

        for (int i = 0; i < 5000; i++)
                cr_assert_neq(ids_next(a), ids_next(b));
        ids_destroy(a);
        ids_destroy(b);
}

Test(ids, worker_from_a_name_is_stable)
{
        cr_assert_eq(ids_worker_from("consumer-1"), ids_worker_from("consumer-1"));
        cr_assert_lt(ids_worker_from("consumer-1"), 1024);
}
