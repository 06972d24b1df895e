/*
 * test_stream_sweep.c: the stream role's ghost sweep, in a binary of its own. Its consumer
 * closes every stream it sees silent for 2 s, including the streams of tests running beside
 * it; binaries run one after another, so here it has no neighbours to disturb. The tests and
 * their helpers live in test_stream_lifecycle.c.
 */
#define STREAM_SWEEP_ONLY
#include "test_stream_lifecycle.c"
