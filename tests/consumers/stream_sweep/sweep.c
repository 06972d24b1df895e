/* sweep.c: test_stream_sweep's copy of stream_lifecycle/sweep.c (the ghost sweep), compiled with
 * STREAM_SWEEP_ONLY as test_stream_sweep.c compiles test_stream_lifecycle.c. */
#define STREAM_SWEEP_ONLY
#include "../stream_lifecycle/sweep.c"
