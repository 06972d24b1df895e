#!/bin/sh
# ops/bench/run.sh: make bench. Starts a private MariaDB, Redis and dev broker
# (tests/fixtures/services.sh) in a mktemp directory, the receiver and a no-op
# libmicrohttpd server beside it, and prints figures measured in this run only:
#
#  1. the consumer (liveflow-consumer stream): BENCH_RECORDS signed stream-begin
#     callbacks are sent through the receiver into live.stream, then the consumer is
#     started and timed until every row is in live_streams and its offsets are
#     committed; the baseline is MariaDB's own 500-row multi-row INSERT rate on the same
#     server for rows of the same shape;
#     then the same for each other role of BENCH_ROLES that consumes Tencent callbacks
#     (record: 100 record-file callbacks into live.record, rows in live_records;
#     snapshot: 200 into live.snapshot, live_snapshots; audit: 317 image moderation into
#     live.audit, live_audit_logs), each role alone in its own group liveflow.<role>,
#     each reported against the same MariaDB baseline;
#  2. the receiver at each of BENCH_CONNECTIONS: wrk with ops/bench/tencent.lua for
#     BENCH_DURATION_S, then the same script against the no-op server (the ceiling of
#     this HTTP stack on this machine); every 200 must be a record in live.stream;
#  3. the money path (ops/bench/money.sh, its BENCH_TIPS* knobs apply; BENCH_MONEY=0 skips
#     it): tips offered at 5 000/s with the three money workers running, then the same tips
#     drained by each worker alone (a database and a Redis database of its own, so nothing the
#     parts above left behind is in its figures). `sh ops/bench/money.sh` alone runs only this
#     part on a stack of its own;
#  4. the audience role (ops/bench/audience.sh, its BENCH_AUDIENCE_* knobs apply;
#     BENCH_AUDIENCE=0 skips it): app events drained from a backlog, and their figures checked.
#
# Environment: BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_CONNECTIONS ("64 8"),
# BENCH_THREADS (wrk threads, 2), BENCH_RECORDS (20000 per role: each role's topic must stay
# well within the dev broker's ~5 MiB per partition), BENCH_ROLES ("stream record snapshot
# audit other": the consumer roles measured, any subset), BENCH_RECEIVER (1; 0 skips the
# receiver runs), BENCH_LOG_LEVEL (info: the
# processes log as in production), BENCH_KEEP=1 keeps the temp directory and its logs,
# BENCH_HTTP_THREADS (the receiver's LIVEFLOW_HTTP_THREADS, else its default; the no-op's threads,
# else the CPUs), BENCH_CONSUMER_LANES (the CPUs: LIVEFLOW_CONSUMER_LANES of each consumer role, as the README
# advises for a host with cores to spare; 1 measures one member), BENCH_PRELOAD_CONNECTIONS (64:
# the receiver's connections while a role's backlog is written; see consumers.sh),
# BENCH_RECEIVER_ENV / BENCH_CONSUMER_ENV: extra VAR=VALUE words for that process (to
# compare settings, e.g. BENCH_RECEIVER_ENV=LIVEFLOW_KAFKA_PROP_LINGER_MS=0),
# BENCH_CONSUMER_WRAP: words put before the consumer's binary (e.g. "valgrind --tool=callgrind
# --callgrind-out-file=/tmp/cg.%p" counts the instructions a role spends on its backlog),
# BENCH_JOIN_TRIES (3): the starts a consumer role of several lanes is given to get its
# partitions in one rebalance round (bench_lib.sh: join_is_late; a start that took another round
# of the dev broker is measured again on a new group, database and Redis database),
# BENCH_SLOW_LOG=1: MariaDB logs every statement while each role consumes, and the bench
# prints the statement shapes that took the most time (where a batch waits).
#
# The parts live beside it: bench_lib.sh (helpers), consumers.sh (the roles and their
# ceiling), receiver.sh (the receiver and the no-op), money.sh with money_drain.sh, audience.sh.
#
# Exit 0 after printing the figures, whatever they are; 1 when the bench could not run;
# 3 on a correctness failure (a 200 without its Kafka record or the reverse, a row,
# event or offset missing after the consumer ran).
set -u

LF_PROG=bench
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/ops/lib.sh"

case "${BUILD:-build}" in
/*) BUILD=${BUILD:-build} ;;
*) BUILD=$ROOT/${BUILD:-build} ;;
esac
BIN=$BUILD/bin
LUA=$ROOT/ops/bench/tencent.lua

DURATION=${BENCH_DURATION_S:-10}
WARMUP=${BENCH_WARMUP_S:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64 8}
THREADS=${BENCH_THREADS:-2}
RECORDS=${BENCH_RECORDS:-20000}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
BATCH_ROWS=500            # rows per INSERT of the MariaDB baseline: the consumer's LIVEFLOW_BATCH_MAX
PRELOAD_CONNECTIONS=${BENCH_PRELOAD_CONNECTIONS:-64}
CONSUMER_LANES=${BENCH_CONSUMER_LANES:-$(nproc)}
JOIN_TRIES=${BENCH_JOIN_TRIES:-3}
HTTP_THREADS=${BENCH_HTTP_THREADS:-$(nproc)}  # the no-op's threads, and the receiver's loops when set (else its default)
GROUP=bench.stream
ROLES=${BENCH_ROLES-stream record snapshot audit other}
RECEIVER_RUNS=${BENCH_RECEIVER:-1}  # 0: no receiver runs (only the consumer roles and the baseline)
EVENT_TYPE=1              # BENCH_EVENT_TYPE of tencent.lua: 1 stream-begin, except in a role's preload
SETTLE_TOPIC=live.stream  # the topic settle_receiver compares the receiver's 200s with
ROLE_RESULTS=""           # "role rows span_us startup_ms stmts_per_record lanes" lines, for the summary

FAILED=0                  # set to 1 by a correctness failure: exit 3 after the summary
TMP=""
PIDS=""
LOGS=""
SERVICES_UP=0
BG_PIDS=""                # wrk and the RSS sampler while they run

die() {
        note "$*"
        exit 1
}

check_int() {
        case "$2" in
        '' | *[!0-9]*) die "$1: \"$2\" is not a whole number" ;;
        esac
        [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] || die "$1: $2 is not within $3..$4"
}

# The processes get only the settings given here: drop any LIVEFLOW_* of the caller's
# shell (a sourced .run/env, a config file, Kafka properties).
for v in $(env | sed -n 's/^\(LIVEFLOW_[A-Za-z0-9_]*\)=.*/\1/p'); do
        unset "$v"
done

# ------------------------------------------------------------------ clean-up

cleanup() {
        local rc=$? pid
        trap - EXIT INT TERM HUP
        for pid in $BG_PIDS; do
                kill -TERM "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
        done
        if [ -n "$TMP" ] && [ -d "$LOGS" ]; then
                stop_pidfiles 15 "$PIDS"/*.pid 2>>"$LOGS/stop.log"
                if [ "$SERVICES_UP" -eq 1 ]; then
                        BUILD=$BUILD sh "$ROOT/tests/fixtures/services.sh" stop "$TMP" 2>>"$LOGS/stop.log"
                fi
                grep -v ' in [0-9]* ms$' "$LOGS/stop.log" 2>/dev/null | sed 's/^/bench: /' >&2
        fi
        if [ -n "$TMP" ]; then
                if [ "${BENCH_KEEP:-0}" = 1 ]; then
                        note "logs and data kept in $TMP (remove it when done)"
                else
                        rm -rf "$TMP"
                fi
        fi
        exit "$rc"
}

trap cleanup EXIT
trap 'note "interrupted; stopping what was started"; exit 130' INT TERM HUP

# ------------------------------------------------------------------ helpers

. "$ROOT/ops/bench/bench_lib.sh"

# ------------------------------------------------------------------ set-up

check_int BENCH_DURATION_S "$DURATION" 1 3600
check_int BENCH_WARMUP_S "$WARMUP" 0 600
check_int BENCH_THREADS "$THREADS" 1 64
check_int BENCH_RECORDS "$RECORDS" 1 50000
check_int BENCH_JOIN_TRIES "$JOIN_TRIES" 1 5
for r in $ROLES; do
        case "$r" in
        stream | record | snapshot | audit | other) ;;
        *) die "BENCH_ROLES: \"$r\" is not one of stream record snapshot audit other (the roles fed by Tencent callbacks)" ;;
        esac
done
for c in $CONNECTIONS; do check_int BENCH_CONNECTIONS "$c" 1 1000; done
[ -n "$CONNECTIONS" ] || die "BENCH_CONNECTIONS is empty"
command -v wrk >/dev/null 2>&1 || die "wrk is missing (make deps installs it)"
for b in liveflow-receiver liveflow-consumer liveflow-devbroker liveflow-migrate liveflow-bench-noop \
        liveflow-bench-count; do
        [ -x "$BIN/$b" ] || die "$BIN/$b is missing; run make BUILD=... bench"
done

# Short: the MariaDB socket lives in it (108-byte limit).
TMP=$(mktemp -d /tmp/lfb.XXXXXX) || die "mktemp failed"
PIDS=$TMP/bench/pid
LOGS=$TMP/bench/log
DONE_DIR=$TMP/bench/done
mkdir -p "$PIDS" "$LOGS" "$DONE_DIR" || die "cannot write to $TMP"

echo "liveflow bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  wrk -t$THREADS, ${DURATION} s per run after ${WARMUP} s of warm-up, connections: $CONNECTIONS;" \
        "consumer: $RECORDS records per role ($ROLES); log level $LOG_LEVEL"
[ -z "${BENCH_RECEIVER_ENV:-}" ] || echo "  receiver started with: $BENCH_RECEIVER_ENV"
[ -z "${BENCH_CONSUMER_ENV:-}" ] || echo "  consumer started with: $BENCH_CONSUMER_ENV"
[ -z "${BENCH_CONSUMER_WRAP:-}" ] || echo "  consumer run under: $BENCH_CONSUMER_WRAP"

started=$(now_ms)
BUILD=$BUILD sh "$ROOT/tests/fixtures/services.sh" start "$TMP" 2>>"$LOGS/services.log" || {
        log_tail "$LOGS/services.log"
        die "the services did not start"
}
SERVICES_UP=1
. "$TMP/env"
DB=liveflow_bench
MYSQL_URL=mysql://liveflow:$LIVEFLOW_TEST_MYSQL_PASSWORD@127.0.0.1:$LIVEFLOW_TEST_MYSQL_PORT/$DB
LIVEFLOW_MYSQL_URL=$MYSQL_URL "$BIN/liveflow-migrate" --create-database --dir "$ROOT/sql" \
        >"$LOGS/migrate.log" 2>&1 || {
        log_tail "$LOGS/migrate.log"
        die "migrations failed"
}

# One signature for the whole run: t a day ahead, sign = MD5(key + t) (CONTRACT.md §2).
TENCENT_KEY=$(openssl rand -hex 16) || die "openssl rand failed"
TENCENT_T=$(($(date +%s) + 86400))
TENCENT_SIGN=$(printf '%s%s' "$TENCENT_KEY" "$TENCENT_T" | md5sum | cut -c1-32)

two_free_ports
RECEIVER_PORT=$PORT_A
RECEIVER_ADMIN=$PORT_B
# shellcheck disable=SC2086 # BENCH_RECEIVER_ENV is split into words on purpose
spawn "$PIDS/receiver.pid" "$LOGS/receiver.log" env LIVEFLOW_HTTP_ADDR=127.0.0.1 \
        LIVEFLOW_HTTP_PORT="$RECEIVER_PORT" LIVEFLOW_HTTP_THREADS="${BENCH_HTTP_THREADS:-0}" \
        LIVEFLOW_ADMIN_PORT="$RECEIVER_ADMIN" \
        LIVEFLOW_KAFKA_BOOTSTRAP="$LIVEFLOW_TEST_KAFKA_BOOTSTRAP" LIVEFLOW_TENCENT_KEY="$TENCENT_KEY" \
        LIVEFLOW_HMAC_SECRET="whsec_$(openssl rand -base64 32)" LIVEFLOW_SRS_TOKEN="$(openssl rand -hex 16)" \
        LIVEFLOW_MYSQL_URL="$MYSQL_URL" LIVEFLOW_REDIS_URL="$LIVEFLOW_TEST_REDIS_URL" \
        LIVEFLOW_LOG_LEVEL="$LOG_LEVEL" ${BENCH_RECEIVER_ENV:-} "$BIN/liveflow-receiver"
RECEIVER_PID=$(cat "$PIDS/receiver.pid")
wait_for 30 "$RECEIVER_PID" curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$RECEIVER_ADMIN/readyz" || {
        log_tail "$LOGS/receiver.log"
        die "the receiver did not become ready"
}
RECEIVER_URL=http://127.0.0.1:$RECEIVER_PORT/callbacks/tencent

NOOP_PORT=$(free_port) || die "no free port"
while [ "$NOOP_PORT" = "$RECEIVER_PORT" ] || [ "$NOOP_PORT" = "$RECEIVER_ADMIN" ]; do
        NOOP_PORT=$(free_port) || die "no free port"
done
spawn "$PIDS/bench-noop.pid" "$LOGS/noop.log" "$BIN/liveflow-bench-noop" "$NOOP_PORT" "$HTTP_THREADS"
NOOP_PID=$(cat "$PIDS/bench-noop.pid")
wait_for 10 "$NOOP_PID" port_is_busy "$NOOP_PORT" || {
        log_tail "$LOGS/noop.log"
        die "the no-op server did not start"
}
NOOP_URL=http://127.0.0.1:$NOOP_PORT/callbacks/tencent
echo "  stack up in $(($(now_ms) - started)) ms: mariadb :$LIVEFLOW_TEST_MYSQL_PORT, redis :$LIVEFLOW_TEST_REDIS_PORT," \
        "broker $LIVEFLOW_TEST_KAFKA_BOOTSTRAP, receiver :$RECEIVER_PORT, no-op :$NOOP_PORT; data in $TMP"

# ------------------------------------------------------------------ consumer roles and their ceiling

. "$ROOT/ops/bench/consumers.sh"

# ------------------------------------------------------------------ receiver

. "$ROOT/ops/bench/receiver.sh"

# ------------------------------------------------------------------ summary

echo
echo "== summary ($(nproc) cores shared by the load generator and the servers; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s' "$SUMMARY"
# One table: every consumer role against the ceilings measured in this run (MariaDB's own
# 500-row multi-row INSERT), with MariaDB statements per record. "ratio" is of the INSERT of
# live_streams rows alone (the target's ceiling); "ratio+ev" of the same rows with their
# live_events rows in one transaction, which is what a role writes at the least.
echo
echo "consumer roles against the ceiling: MariaDB's $BATCH_ROWS-row INSERT of live_streams rows," \
        "$base_streams_rate rows/s (ratio); with their live_events rows, $base_both_rate records/s (ratio+ev);" \
        "lanes: the role's LIVEFLOW_CONSUMER_LANES"
printf '%-10s %8s %10s %8s %9s %9s %5s %10s\n' role records "rec/s" ratio "ratio+ev" "stmts/rec" lanes "start-up s"
printf '%s' "$ROLE_RESULTS" | while read -r r_role r_rows r_span r_startup r_stmts r_lanes; do
        r_rate=$(fmt_rate $((r_rows - 1)) "$r_span")
        printf '%-10s %8s %10s %8s %9s %9s %5s %10s\n' "$r_role" "$r_rows" "$r_rate" \
                "$(fmt_ratio "$r_rate" "$base_streams_rate")" "$(fmt_ratio "$r_rate" "$base_both_rate")" \
                "$r_stmts" "$r_lanes" "$(awk -v ms="$r_startup" 'BEGIN { printf "%.1f", ms / 1000 }')"
done

# ------------------------------------------------------------------ money (ops/bench/money.sh)

# Tips through reward-sync and settlement at a fixed rate, in this same stack (its own
# database, receiver and workers); BENCH_MONEY=0 skips it. Its figures follow the summary.
MONEY_RC=0
if [ "${BENCH_MONEY:-1}" != 0 ]; then
        MONEY_STACK_DIR=$TMP BUILD=$BUILD BENCH_THREADS=$THREADS BENCH_LOG_LEVEL=$LOG_LEVEL \
                sh "$ROOT/ops/bench/money.sh"
        MONEY_RC=$?
        [ "$MONEY_RC" -eq 3 ] && FAILED=1
fi

# ------------------------------------------------------------------ audience (ops/bench/audience.sh)

# App audience events drained by the audience role from a backlog, in this same stack (its
# own database); BENCH_AUDIENCE=0 skips it.
AUDIENCE_RC=0
if [ "${BENCH_AUDIENCE:-1}" != 0 ]; then
        AUDIENCE_STACK_DIR=$TMP BUILD=$BUILD BENCH_LOG_LEVEL=$LOG_LEVEL \
                sh "$ROOT/ops/bench/audience.sh"
        AUDIENCE_RC=$?
        [ "$AUDIENCE_RC" -eq 3 ] && FAILED=1
fi
if [ "$FAILED" -ne 0 ]; then
        note "correctness failure: see MISMATCH above"
        exit 3
fi
[ "$MONEY_RC" -eq 0 ] || die "the money benchmark could not run (exit $MONEY_RC)"
[ "$AUDIENCE_RC" -eq 0 ] || die "the audience benchmark could not run (exit $AUDIENCE_RC)"
exit 0
