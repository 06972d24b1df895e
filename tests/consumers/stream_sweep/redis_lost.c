/* redis_lost.c: test_stream_sweep's copy of stream_lifecycle/redis_lost.c (live keys rebuilt after
 * Redis lost its data), compiled with STREAM_SWEEP_ONLY as test_stream_sweep.c compiles
 * test_stream_lifecycle.c. */
#define STREAM_SWEEP_ONLY
#include "../stream_lifecycle/redis_lost.c"
