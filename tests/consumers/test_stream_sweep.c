/*
 * test_stream_sweep.c: the stream role's ghost sweep, in a binary of its own. A sweeping
 * consumer closes every stream it sees silent, the streams of tests running beside it
 * included: binaries run one after another, and this one runs its tests one at a time. The
 * tests and their helpers live in test_stream_lifecycle.c and its parts (stream_sweep/ holds
 * their copies).
 */
#define STREAM_SWEEP_ONLY
#include "test_stream_lifecycle.c"

int main(int argc, char *argv[])
{
        struct criterion_test_set *tests = criterion_initialize();
        int result = 0;

        criterion_options.jobs = 1; /* a sweep test must not see another test's streams */
        if (criterion_handle_args(argc, argv, true))
                result = !criterion_run_all_tests(tests);
        criterion_finalize(tests);
        return result;
}
