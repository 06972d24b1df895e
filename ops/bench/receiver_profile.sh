#!/bin/sh
# ops/bench/receiver_profile.sh: where one receiver loop spends a request, on a private stack
# (tests/fixtures/services.sh), with the bench's signed Tencent stream begins (tencent.lua):
#
#   sh ops/bench/receiver_profile.sh MODE [CONNECTIONS [WARMUP_S [RUN_S]]]
#
# MODE callgrind: the receiver with one loop (LIVEFLOW_HTTP_THREADS=1) under valgrind's
#      callgrind, counters zeroed after the warm-up (callgrind_control -z) and dumped after
#      the run (-d); prints instructions per acknowledged request of each thread (the loop,
#      librdkafka's broker thread, ...) and keeps the dumps for callgrind_annotate;
# MODE strace: the same receiver natively, `strace -f -c` attached for the run: system calls;
# MODE cpu: natively, user and system CPU per request of each thread from /proc.
# Every mode also prints the bytes the dev broker received per request (ss's bytes_received
# on its sockets: what the producer sent, compressed or not), and the mean time of each stage of
# a request from the receiver's own histograms: the whole request, the broker's ack, the
# guard's claim and "done" mark.
#
# Environment: BUILD (build), PROFILE_RECEIVER_ENV (extra VAR=VALUE words for the receiver,
# e.g. LIVEFLOW_KAFKA_PROP_COMPRESSION_TYPE=none), PROFILE_KEEP=1 keeps the temp directory
# (always kept for callgrind). Defaults: 8 connections, 5 s of warm-up, 20 s measured.
# Exit 0 with the figures, 1 when the stack or the receiver did not start, 2 on usage.
set -u

LF_PROG=profile
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/ops/lib.sh"
. "$ROOT/ops/bench/bench_lib.sh"

MODE=${1:-}
CONNS=${2:-8}
WARMUP=${3:-5}
RUN=${4:-20}
case "$MODE" in
callgrind | strace | cpu) ;;
*)
        echo "usage: $0 callgrind|strace|cpu [CONNECTIONS [WARMUP_S [RUN_S]]]" >&2
        exit 2
        ;;
esac
case "${BUILD:-build}" in
/*) BUILD=${BUILD:-build} ;;
*) BUILD=$ROOT/${BUILD:-build} ;;
esac
for tool in wrk ss curl openssl; do
        command -v "$tool" >/dev/null 2>&1 || {
                note "$tool is missing"
                exit 1
        }
done

DIR=$(mktemp -d /tmp/lfp.XXXXXX) || exit 1
RCV_PID=""
cleanup() {
        [ -z "$RCV_PID" ] || kill -INT "$RCV_PID" 2>/dev/null
        [ -z "$RCV_PID" ] || wait "$RCV_PID" 2>/dev/null
        BUILD=$BUILD sh "$ROOT/tests/fixtures/services.sh" stop "$DIR" 2>/dev/null
        if [ "$MODE" = callgrind ] || [ "${PROFILE_KEEP:-0}" = 1 ]; then
                echo "kept: $DIR"
        else
                rm -rf "$DIR"
        fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

BUILD=$BUILD sh "$ROOT/tests/fixtures/services.sh" start "$DIR" 2>"$DIR/services.log" || {
        cat "$DIR/services.log" >&2
        exit 1
}
. "$DIR/env"
MYSQL_URL=mysql://liveflow:$LIVEFLOW_TEST_MYSQL_PASSWORD@127.0.0.1:$LIVEFLOW_TEST_MYSQL_PORT/liveflow_profile
LIVEFLOW_MYSQL_URL=$MYSQL_URL "$BUILD/bin/liveflow-migrate" --create-database --dir "$ROOT/sql" \
        >"$DIR/migrate.log" 2>&1 || {
        note "migrations failed (see $DIR/migrate.log)"
        exit 1
}
KEY=$(openssl rand -hex 16)
T=$(($(date +%s) + 86400))
SIGN=$(printf '%s%s' "$KEY" "$T" | md5sum | cut -c1-32)
PORT=$(free_port) && ADMIN=$(free_port) || exit 1

WRAP=""
[ "$MODE" = callgrind ] &&
        WRAP="valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=$DIR/callgrind.%p"
# shellcheck disable=SC2086 # WRAP and PROFILE_RECEIVER_ENV are split into words on purpose
env LIVEFLOW_HTTP_ADDR=127.0.0.1 LIVEFLOW_HTTP_PORT="$PORT" LIVEFLOW_HTTP_THREADS=1 \
        LIVEFLOW_ADMIN_PORT="$ADMIN" LIVEFLOW_KAFKA_BOOTSTRAP="$LIVEFLOW_TEST_KAFKA_BOOTSTRAP" \
        LIVEFLOW_TENCENT_KEY="$KEY" LIVEFLOW_HMAC_SECRET="whsec_$(openssl rand -base64 32)" \
        LIVEFLOW_SRS_TOKEN="$(openssl rand -hex 16)" LIVEFLOW_MYSQL_URL="$MYSQL_URL" \
        LIVEFLOW_REDIS_URL="$LIVEFLOW_TEST_REDIS_URL" LIVEFLOW_LOG_LEVEL=info \
        ${PROFILE_RECEIVER_ENV:-} $WRAP "$BUILD/bin/liveflow-receiver" >"$DIR/receiver.log" 2>&1 &
RCV_PID=$!
wait_for 120 "$RCV_PID" curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$ADMIN/readyz" || {
        tail -5 "$DIR/receiver.log" >&2
        note "the receiver did not become ready"
        exit 1
}

# wrk_run TAG SECONDS: callbacks for SECONDS, then every one of them answered (tencent.lua).
wrk_run() {
        mkdir -p "$DIR/done-$1"
        BENCH_TENCENT_T=$T BENCH_TENCENT_SIGN=$SIGN BENCH_RUN=$1 BENCH_EVENT_TYPE=1 BENCH_THREADS=1 \
                BENCH_SECONDS="$2" BENCH_QUOTA=0 BENCH_DONE_DIR="$DIR/done-$1" \
                timeout -s INT $(($2 + 10)) wrk -t1 -c "$CONNS" -d "$(($2 + 20))s" --timeout 10s \
                -s "$ROOT/ops/bench/tencent.lua" "http://127.0.0.1:$PORT/callbacks/tencent" \
                >"$DIR/wrk-$1.out" 2>&1
}

# broker_bytes: what the dev broker's sockets received so far.
broker_bytes() {
        local ports="" p
        for p in $(echo "$LIVEFLOW_TEST_KAFKA_BOOTSTRAP" | tr ',' ' '); do
                ports="$ports ${p##*:}"
        done
        for p in $ports; do
                ss -tinH "sport = :$p"
        done | grep -o 'bytes_received:[0-9]*' | cut -d: -f2 | awk '{ s += $1 } END { print s + 0 }'
}

# thread_ticks: "name utime stime" per thread name of the receiver, summed.
thread_ticks() {
        for t in /proc/"$RCV_PID"/task/*; do
                printf '%s %s\n' "$(tr ' ' '_' <"$t/comm")" "$(cut -d' ' -f14,15 "$t/stat")"
        done | awk '{ u[$1] += $2; s[$1] += $3 } END { for (k in u) print k, u[k], s[k] }' | sort
}

wrk_run warmup "$WARMUP"
stage_sums "$ADMIN" >"$DIR/stages0"
case "$MODE" in
callgrind) callgrind_control -z "$RCV_PID" >/dev/null ;;
strace)
        strace -f -c -o "$DIR/strace.txt" -p "$RCV_PID" 2>/dev/null &
        STRACE_PID=$!
        sleep 1
        ;;
cpu) thread_ticks >"$DIR/ticks0" ;;
esac
bytes0=$(broker_bytes)
wrk_run run "$RUN"
bytes1=$(broker_bytes)
stage_sums "$ADMIN" >"$DIR/stages1"
case "$MODE" in
callgrind) callgrind_control -d "$RCV_PID" >/dev/null ;;
strace)
        kill -INT "$STRACE_PID"
        wait "$STRACE_PID"
        ;;
cpu) thread_ticks >"$DIR/ticks1" ;;
esac

OK=$(sed -n 's/^BENCH sent=.* ok=\([0-9]*\).*/\1/p' "$DIR/wrk-run.out")
[ -n "$OK" ] && [ "$OK" -gt 0 ] || {
        cat "$DIR/wrk-run.out" >&2
        note "no request was acknowledged"
        exit 1
}
echo "$MODE, one loop, $CONNS connections, ${RUN} s: $OK callbacks acknowledged;" \
        "$(grep '^BENCH latency_us' "$DIR/wrk-run.out" | cut -d' ' -f3-5);" \
        "the dev broker received $(((bytes1 - bytes0) / OK)) bytes per callback"
# The mean of each stage over the run, from the receiver's histograms: where the time between a
# request's head and its answer goes (the stages overlap nothing but the request).
echo "  mean time per stage (µs, the receiver's histograms over the run):" \
        "$(stage_means "$DIR/stages0" "$DIR/stages1")"
case "$MODE" in
callgrind)
        kill -INT "$RCV_PID"
        wait "$RCV_PID"
        RCV_PID=""
        for f in "$DIR"/callgrind.*.1-*; do
                [ -f "$f" ] || continue
                total=$(sed -n 's/^summary: //p' "$f")
                [ "${total:-0}" -gt $((OK * 100)) ] || continue # threads that did next to nothing
                name=other
                grep -q 'loop_turn' "$f" && name=loop
                grep -q 'rdkafka' "$f" && [ "$name" = other ] && name=librdkafka
                echo "  $name: $((total / OK)) instructions per callback ($f)"
        done
        ;;
strace)
        echo "  system calls per callback:"
        awk -v n="$OK" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
                printf "    %-16s %6.2f\n", $NF, $4 / n }' "$DIR/strace.txt" | sort -k2 -rn | head -12
        ;;
cpu)
        echo "  CPU per callback by thread (user + system, microseconds):"
        hz=$(getconf CLK_TCK)
        join "$DIR/ticks0" "$DIR/ticks1" | awk -v n="$OK" -v hz="$hz" '{
                u = ($4 - $2) / hz * 1e6 / n; s = ($5 - $3) / hz * 1e6 / n
                if (u + s >= 0.05) printf "    %-16s %5.1f + %5.1f\n", $1, u, s }'
        ;;
esac
