/* test_encoder.c: one codec per thread behind one encoder (callback-receiver/encoder.c). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../../callback-receiver/encoder.h" /* the Makefile gives tests no -I<program dir> */

#define THREADS    4
#define PER_THREAD 200

static struct encoder *enc;

static void *encode_many(void *arg)
{
        const struct envelope env = {.event_id = "e",
                                     .vendor = "tencent",
                                     .event_type = "other",
                                     .event_time_ms = 1,
                                     .receive_time_ms = 2,
                                     .trace_id = "t",
                                     .raw = "{}",
                                     .raw_len = 2};
        char errstr[256];
        long failures = 0;

        (void)arg;
        for (int i = 0; i < PER_THREAD; i++) {
                void *buf = NULL;
                size_t len = 0;

                if (encoder_encode(enc, &env, NULL, NULL, NULL, &buf, &len, errstr,
                                   sizeof(errstr)) == -1 ||
                    len < 10)
                        failures++;
                free(buf);
        }
        return (void *)failures;
}

Test(encoder, threads_encode_at_once_each_on_its_own_codec)
{
        pthread_t threads[THREADS];
        char errstr[256];

        enc = encoder_new(errstr, sizeof(errstr));
        cr_assert(enc != NULL, "%s", errstr);
        for (int i = 0; i < THREADS; i++)
                cr_assert(eq(int, pthread_create(&threads[i], NULL, encode_many, NULL), 0));
        for (int i = 0; i < THREADS; i++) {
                void *failures;

                pthread_join(threads[i], &failures);
                cr_assert(eq(long, (long)failures, 0));
        }
        encoder_destroy(enc);
}

Test(encoder, a_new_encoder_does_not_reuse_a_destroyed_ones_codec)
{
        const struct envelope env = {
                .event_id = "e", .vendor = "v", .event_type = "other", .trace_id = "t"};
        char errstr[256];
        void *buf = NULL;
        size_t len;

        encoder_destroy(encoder_new(errstr, sizeof(errstr)));
        enc = encoder_new(errstr, sizeof(errstr));
        cr_assert(enc != NULL, "%s", errstr);
        cr_assert(
                eq(int,
                   encoder_encode(enc, &env, NULL, NULL, NULL, &buf, &len, errstr, sizeof(errstr)),
                   0),
                "%s", errstr);
        free(buf);
        encoder_destroy(enc);
}
