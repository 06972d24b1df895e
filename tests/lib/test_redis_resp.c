/*
 * test_redis_resp.c: redis_resp_format() writes a command's RESP exactly as hiredis's
 * redisFormatCommandArgv() does (the receiver's guard and redis_conn hand its bytes to hiredis
 * as an already formatted command), and says 0 when the command does not fit.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "redis_conn.h"

/* The bytes of argv through both writers must be one. */
static void assert_same_as_hiredis(int argc, const char **argv)
{
        char buf[4096];
        char *want = NULL;
        int want_len = redisFormatCommandArgv(&want, argc, argv, NULL);
        size_t n = redis_resp_format(buf, sizeof(buf), argc, argv);

        cr_assert(gt(int, want_len, 0));
        cr_assert(eq(sz, n, (size_t)want_len), "%.*s against %s", (int)n, buf, want);
        cr_assert(memcmp(buf, want, n) == 0, "%.*s against %s", (int)n, buf, want);
        redisFreeCommand(want);
}

Test(redis_resp, the_guards_commands_are_hiredis_bytes)
{
        assert_same_as_hiredis(6, (const char *[]){"SET", "lock:callback:tencent:stream.begin:x",
                                                   "0123456789abcdef0123456789abcdef", "NX", "PX",
                                                   "35000"});
        assert_same_as_hiredis(2, (const char *[]){"GET", "lock:callback:tencent:stream.begin:x"});
        assert_same_as_hiredis(1, (const char *[]){"PING"});
        assert_same_as_hiredis(2, (const char *[]){"SET", ""}); /* an empty word */
}

Test(redis_resp, random_commands_match_hiredis)
{
        char words[12][300];
        const char *argv[12];

        srand(7);
        for (int round = 0; round < 2000; round++) {
                int argc = 1 + rand() % 12;

                for (int i = 0; i < argc; i++) {
                        size_t len = (size_t)(rand() % 299);

                        for (size_t j = 0; j < len; j++)
                                words[i][j] = (char)(1 + rand() % 255); /* any byte but NUL */
                        words[i][len] = '\0';
                        argv[i] = words[i];
                }
                assert_same_as_hiredis(argc, argv);
        }
}

Test(redis_resp, a_command_larger_than_the_buffer_is_refused_with_0)
{
        char big[200], buf[128];

        memset(big, 'k', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        cr_assert(eq(sz, redis_resp_format(buf, sizeof(buf), 2, (const char *[]){"GET", big}), 0));
        cr_assert(eq(sz, redis_resp_format(buf, 8, 1, (const char *[]){"PING"}), 0));
        cr_assert(gt(sz, redis_resp_format(buf, sizeof(buf), 1, (const char *[]){"PING"}), 0));
}
