#!/bin/sh
# tests/run.sh: runs Criterion test binaries against the fixture services and ends with
# one line "N passed, N failed"; exits non-zero when any test or binary failed, or when
# no test ran at all.
#
#   BUILD=build sh tests/run.sh build/test/lib/test_x build/test/...   (make test)
#
# LIVEFLOW_TEST_JOBS=N (default 2) runs N binaries at a time, each lane with fixtures of its
# own (MariaDB, Redis, dev broker on free ports); a lane takes the next binary in the given
# order when its last one ends, and a binary's output is shown whole when it ends. Most
# suites spend their time waiting (group rebalances, timers, polls), so two lanes on two
# cores finish well before one. N=1 shows each binary's output as it comes. The summary names
# the slowest binaries and tests (Criterion's TAP report times each test).
#
# CI=true sets FIXTURES_REQUIRED=1: a test whose service is missing then fails instead of
# skipping (see tests/support.h), and fixtures that do not start fail the run at once.
set -u

LF_PROG=tests
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/ops/lib.sh"

# synthesis_field FILE NAME: the number after "NAME:" on Criterion's last Synthesis line.
synthesis_field() {
        sed 's/\x1b\[[0-9;]*m//g' "$1" | grep 'Synthesis:' | tail -n 1 |
                sed -n "s/.*$2: *\([0-9][0-9]*\).*/\1/p"
}

# run_binary PATH LANE: runs one Criterion binary with the lane's fixtures, output shown as
# it comes, and adds its counts to the lane's. Criterion's "Failing" already includes
# "Crashing" (Tested = Passing + Failing).
run_binary() {
        local bin=$1 lane=$2 out=$2/out.txt tap=$2/tap.txt rc passing failing skipped unrun t0 name
        name=${bin#"$BUILD"/test/}
        name=${name#build/test/}
        t0=$(now_ms)
        rm -f "$out" "$tap" "$lane/rc"
        echo "== $bin"
        # In the background only so that its pid is known: the runner leads a process group
        # of its own, which an interrupted run stops.
        { "$bin" --tap="$tap" 2>&1 &
          echo "$!" >"$lane/runner.pid"
          wait "$!"
          echo "$?" >"$lane/rc"; } | tee "$out"
        rm -f "$lane/runner.pid"
        rc=$(cat "$lane/rc" 2>/dev/null || echo 127)
        passing=$(synthesis_field "$out" Passing)
        failing=$(synthesis_field "$out" Failing)
        # Criterion reports a test its binary disables (or a --filter leaves out) as "# SKIP test
        # was skipped"; a test that skips itself (a fixture missing: support.c) gives its reason.
        unrun=$(grep -c '# SKIP test was skipped$' "$tap" 2>/dev/null)
        skipped=$(($(grep -c '# SKIP' "$tap" 2>/dev/null) - ${unrun:-0}))
        if [ -z "$passing" ] || [ -z "$failing" ]; then
                # No summary: the runner itself died; count the binary as one failure.
                note "$bin exited $rc without a Criterion summary"
                passing=0
                failing=1
        elif [ "$rc" -ne 0 ] && [ "$failing" -eq 0 ]; then
                # E.g. LeakSanitizer with abort_on_error fails the runner, not a test.
                note "$bin exited $rc although no test failed"
                failing=1
        fi
        PASSED=$((PASSED + passing))
        FAILED=$((FAILED + failing))
        SKIPPED=$((SKIPPED + ${skipped:-0}))
        UNRUN=$((UNRUN + ${unrun:-0}))
        [ "$failing" -eq 0 ] || BROKEN="$BROKEN $name"
        t0=$(($(now_ms) - t0))
        echo "$t0 $name" >>"$lane/times"
        sed -n 's/^\(not \)\{0,1\}ok - \([^ ]*\) .*(\([0-9.]*\)s)$/\3 \2/p' "$tap" \
                2>/dev/null >>"$lane/tests"
        echo "-- $passing passed, $failing failed, ${skipped:-0} skipped$([ "${unrun:-0}" -eq 0 ] || echo ", $unrun disabled in this binary") in $t0 ms"
}

# run_lane LANE BINARIES...: takes the binaries no other lane has taken yet, in order (a
# mkdir claims one), and leaves the lane's counts in LANE/counts.
run_lane() {
        local lane=$1 i=0 bin
        shift
        PASSED=0
        FAILED=0
        SKIPPED=0
        UNRUN=0
        BROKEN=""
        [ -f "$lane/down" ] || . "$lane/env"
        for bin in "$@"; do
                i=$((i + 1))
                mkdir "$DIR/claim.$i" 2>/dev/null || continue
                if [ ! -x "$bin" ]; then
                        note "$bin is missing or not executable"
                        FAILED=$((FAILED + 1))
                        BROKEN="$BROKEN ${bin#build/test/}"
                elif [ "$JOBS" -eq 1 ]; then
                        run_binary "$bin" "$lane"
                else
                        run_binary "$bin" "$lane" >"$lane/report" 2>&1
                        { flock 9 && cat "$lane/report"; } 9>"$DIR/print.lock"
                fi
        done
        echo "$PASSED $FAILED $SKIPPED $UNRUN$BROKEN" >"$lane/counts"
}


# A lane (what the run below starts, in a session of its own so that an interrupted run can stop
# it whole): sh tests/run.sh --lane LANE BINARIES..., with LIVEFLOW_TEST_RUN_DIR and
# LIVEFLOW_TEST_JOBS set.
if [ "${1:-}" = --lane ]; then
        shift
        DIR=$LIVEFLOW_TEST_RUN_DIR
        JOBS=$LIVEFLOW_TEST_JOBS
        BUILD=$LIVEFLOW_TEST_BUILD
        run_lane "$@"
        exit 0
fi

STARTED_MS=$(now_ms)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
export LIVEFLOW_TEST_BUILD=$BUILD
[ "${CI:-}" = true ] && export FIXTURES_REQUIRED=1
JOBS=${LIVEFLOW_TEST_JOBS:-2}
case "$JOBS" in '' | *[!0-9]* | 0) note "LIVEFLOW_TEST_JOBS must be a number from 1 up"; exit 2 ;; esac
[ $# -gt 0 ] || { note "no test binaries given"; echo "0 passed, 0 failed"; exit 1; }
[ "$JOBS" -le $# ] || JOBS=$#
BINARIES=$#

DIR=$(mktemp -d /tmp/lft.XXXXXX) || { note "mktemp failed"; exit 1; }
cleanup() {
        for lane in "$DIR"/lane*; do
                [ -d "$lane" ] && sh "$ROOT/tests/fixtures/services.sh" stop "$lane" 2>/dev/null
        done
        rm -rf "$DIR"
}
trap cleanup EXIT
LANES=""
stop_lanes() {
        local pid
        for pid in $LANES; do
                kill -TERM -- "-$pid" 2>/dev/null
        done
        for pid in "$DIR"/lane*/runner.pid; do
                [ -f "$pid" ] || continue
                pid=$(cat "$pid")
                kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
        done
}
trap 'stop_lanes; exit 130' INT TERM HUP

# Every lane's fixtures start at once; a lane whose fixtures fail runs its tests without them
# (they skip), unless FIXTURES_REQUIRED.
k=1
while [ "$k" -le "$JOBS" ]; do
        mkdir -p "$DIR/lane$k"
        (BUILD=$BUILD sh "$ROOT/tests/fixtures/services.sh" start "$DIR/lane$k" ||
                : >"$DIR/lane$k/down") &
        k=$((k + 1))
done
wait
for lane in "$DIR"/lane*; do
        [ -f "$lane/down" ] || continue
        if [ -n "${FIXTURES_REQUIRED:-}" ]; then
                note "the fixture services did not start (FIXTURES_REQUIRED=1)"
                echo "0 passed, 0 failed"
                exit 1
        fi
        note "warning: the fixture services did not start; tests that need them will skip"
done

k=1
while [ "$k" -le "$JOBS" ]; do
        LIVEFLOW_TEST_RUN_DIR=$DIR LIVEFLOW_TEST_JOBS=$JOBS \
                setsid sh "$ROOT/tests/run.sh" --lane "$DIR/lane$k" "$@" &
        LANES="$LANES $!"
        k=$((k + 1))
done
wait

PASSED=0
FAILED=0
SKIPPED=0
UNRUN=0
BROKEN=""
for lane in "$DIR"/lane*; do
        # shellcheck disable=SC2046 # the counts file holds words: four numbers, then names
        set -- $(cat "$lane/counts" 2>/dev/null || echo "0 1 0 0 ${lane##*/}")
        PASSED=$((PASSED + $1))
        FAILED=$((FAILED + $2))
        SKIPPED=$((SKIPPED + $3))
        UNRUN=$((UNRUN + $4))
        shift 4
        BROKEN="$BROKEN${*:+ $*}"
done

ELAPSED_MS=$(($(now_ms) - STARTED_MS))
echo
echo "$BINARIES test binaries in $((ELAPSED_MS / 1000)).$((ELAPSED_MS % 1000 / 100)) s on $JOBS lane(s), $SKIPPED skipped${FIXTURES_REQUIRED:+ (FIXTURES_REQUIRED=1)}$([ "$UNRUN" -eq 0 ] || echo ", $UNRUN disabled in the binary they are built into (a source shared by two binaries)")"
cat "$DIR"/lane*/times 2>/dev/null | sort -rn | head -n 5 |
        awk '{ printf "%s%s %.1f s", NR == 1 ? "slowest: " : ", ", $2, $1 / 1000 } END { if (NR) print "" }'
cat "$DIR"/lane*/tests 2>/dev/null | sort -rn | head -n 5 |
        awk '{ printf "%s%s %.1f s", NR == 1 ? "slowest tests: " : ", ", $2, $1 } END { if (NR) print "" }'
[ -z "$BROKEN" ] || echo "failed in:$BROKEN"
[ $((PASSED + FAILED)) -gt 0 ] || note "no test ran: that is a failure"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ $((PASSED + FAILED)) -gt 0 ]
