#!/bin/sh
# tests/run.sh: runs Criterion test binaries against the fixture services and ends with
# one line "N passed, N failed"; exits non-zero when any test or binary failed, or when
# no test ran at all.
#
#   BUILD=build sh tests/run.sh build/test/lib/test_x build/test/...   (make test)
#
# CI=true sets FIXTURES_REQUIRED=1: a test whose service is missing then fails instead of
# skipping (see tests/support.h), and fixtures that do not start fail the run at once.
set -u

LF_PROG=tests
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/ops/lib.sh"

STARTED_MS=$(now_ms)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
export LIVEFLOW_TEST_BUILD=$BUILD
[ "${CI:-}" = true ] && export FIXTURES_REQUIRED=1

[ $# -gt 0 ] || { note "no test binaries given"; echo "0 passed, 0 failed"; exit 1; }

DIR=$(mktemp -d /tmp/lft.XXXXXX) || { note "mktemp failed"; exit 1; }
cleanup() {
        sh "$ROOT/tests/fixtures/services.sh" stop "$DIR" 2>/dev/null
        rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if BUILD=$BUILD sh "$ROOT/tests/fixtures/services.sh" start "$DIR"; then
        . "$DIR/env"
elif [ -n "${FIXTURES_REQUIRED:-}" ]; then
        note "the fixture services did not start (FIXTURES_REQUIRED=1)"
        echo "0 passed, 0 failed"
        exit 1
else
        note "warning: the fixture services did not start; tests that need them will skip"
fi

PASSED=0
FAILED=0
SKIPPED=0
BROKEN=""

# synthesis_field FILE NAME: the number after "NAME:" on Criterion's last Synthesis line.
synthesis_field() {
        sed 's/\x1b\[[0-9;]*m//g' "$1" | grep 'Synthesis:' | tail -n 1 |
                sed -n "s/.*$2: *\([0-9][0-9]*\).*/\1/p"
}

# run_binary PATH: runs one Criterion binary, output shown as it comes, and adds its
# counts. Criterion's "Failing" already includes "Crashing" (Tested = Passing + Failing).
run_binary() {
        local bin=$1 out=$DIR/out.txt tap=$DIR/tap.txt rc passing failing skipped t0
        t0=$(now_ms)
        rm -f "$out" "$tap" "$DIR/rc"
        echo "== $bin"
        { "$bin" --tap="$tap" 2>&1; echo "$?" >"$DIR/rc"; } | tee "$out"
        rc=$(cat "$DIR/rc" 2>/dev/null || echo 127)
        passing=$(synthesis_field "$out" Passing)
        failing=$(synthesis_field "$out" Failing)
        skipped=$(grep -c '# SKIP' "$tap" 2>/dev/null)
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
        [ "$failing" -eq 0 ] || BROKEN="$BROKEN ${bin#"$BUILD"/test/}"
        echo "-- $passing passed, $failing failed, ${skipped:-0} skipped in $(($(now_ms) - t0)) ms"
}

for bin in "$@"; do
        if [ -x "$bin" ]; then
                run_binary "$bin"
        else
                note "$bin is missing or not executable"
                FAILED=$((FAILED + 1))
                BROKEN="$BROKEN $bin"
        fi
done

ELAPSED_MS=$(($(now_ms) - STARTED_MS))
echo
echo "$# test binaries in $((ELAPSED_MS / 1000)).$((ELAPSED_MS % 1000 / 100)) s, $SKIPPED skipped${FIXTURES_REQUIRED:+ (FIXTURES_REQUIRED=1)}"
[ -z "$BROKEN" ] || echo "failed in:$BROKEN"
[ $((PASSED + FAILED)) -gt 0 ] || note "no test ran: that is a failure"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ $((PASSED + FAILED)) -gt 0 ]
