#!/bin/sh
# tests/fuzz/run.sh BUILD SECONDS TARGET...: runs each libFuzzer target for SECONDS on its
# seeds (tests/fuzz/corpus/<target>/, read-only) and what earlier runs found
# (BUILD/corpus/<target>/). Exits non-zero on the first finding; the crashing input is
# kept in BUILD/findings/ and its path printed.
set -u
BUILD=$1
SECONDS_EACH=$2
shift 2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
status=0
# avro-c keeps per-thread error buffers for the life of the process (see the file).
export LSAN_OPTIONS="suppressions=$ROOT/tests/fixtures/lsan.supp"
for target in "$@"; do
        corpus=$BUILD/corpus/$target
        seeds=$ROOT/tests/fuzz/corpus/$target
        mkdir -p "$corpus" "$BUILD/findings"
        [ -d "$seeds" ] || seeds=
        echo "== $target for ${SECONDS_EACH}s"
        # shellcheck disable=SC2086 # $seeds is empty or one directory
        if ! "$BUILD/bin/$target" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$BUILD/findings/$target-" "$corpus" $seeds \
                2>"$BUILD/$target.log"; then
                tail -n 40 "$BUILD/$target.log"
                echo "$target: FINDING (see $BUILD/findings/)"
                status=1
                continue
        fi
        grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$BUILD/$target.log"
        grep -E 'Done [0-9]+ runs' "$BUILD/$target.log" | tail -n 1
        echo "$target: no finding"
done
exit $status
