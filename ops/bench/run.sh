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
# BENCH_RECEIVER_ENV / BENCH_CONSUMER_ENV: extra VAR=VALUE words for that process (to
# compare settings, e.g. BENCH_RECEIVER_ENV=LIVEFLOW_KAFKA_PROP_LINGER_MS=0).
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
PRELOAD_CONNECTIONS=8
HTTP_THREADS=${BENCH_HTTP_THREADS:-$(nproc)}  # the receiver's loops (its default: one per CPU), and the no-op's threads
GROUP=bench.stream
ROLES=${BENCH_ROLES-stream record snapshot audit other}
RECEIVER_RUNS=${BENCH_RECEIVER:-1}  # 0: no receiver runs (only the consumer roles and the baseline)
EVENT_TYPE=1              # BENCH_EVENT_TYPE of tencent.lua: 1 stream-begin, except in a role's preload
SETTLE_TOPIC=live.stream  # the topic settle_receiver compares the receiver's 200s with
ROLE_RESULTS=""           # "role rows span_us startup_ms stmts_per_record" lines, for the summary

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

# fmt_rate COUNT MICROSECONDS: COUNT per second, rounded.
fmt_rate() {
        awk -v n="$1" -v us="$2" 'BEGIN { if (us > 0) printf "%.0f", n * 1e6 / us; else printf "n/a" }'
}

# fmt_ms MICROSECONDS: milliseconds with one decimal.
fmt_ms() {
        awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'
}

# fmt_ratio A B: A / B with two decimals.
fmt_ratio() {
        awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'
}

# wrk_value FILE KEY: the number after " KEY=" on a BENCH line of a wrk output.
wrk_value() {
        sed -n "s/^BENCH.* $2=\([0-9][0-9]*\).*/\1/p" "$1" | head -n 1
}

# wrk_other_statuses FILE: "503:12 401:3", or "none".
wrk_other_statuses() {
        local s
        s=$(sed -n 's/^BENCH status \([0-9]*\) \([0-9]*\)$/\1:\2/p' "$1" | tr '\n' ' ')
        echo "${s:-none}" | sed 's/ $//'
}

# kafka_count TOPIC [GROUP]: the line of liveflow-bench-count.
kafka_count() {
        "$BIN/liveflow-bench-count" "$LIVEFLOW_TEST_KAFKA_BOOTSTRAP" "$@" 2>>"$LOGS/count.log"
}

# kafka_high [TOPIC]: records ever appended to TOPIC (live.stream; sum of high watermarks).
kafka_high() {
        local line topic="${1:-live.stream}"
        line=$(kafka_count "$topic") || die "cannot read the watermarks of $topic (see $LOGS/count.log)"
        echo "$line" | sed -n 's/.* high=\([0-9]*\).*/\1/p'
}

# receiver_ok: the 200s the receiver answered to Tencent callbacks, from its /metrics.
receiver_ok() {
        curl -fsS --max-time 5 "http://127.0.0.1:$RECEIVER_ADMIN/metrics" |
                awk '/^liveflow_receiver_requests_total\{/ && /vendor="tencent"/ && /status="200"/ { n += $NF }
                     END { printf "%d\n", n }'
}

# sql STATEMENTS: runs them in the bench database as the liveflow user over TCP (the
# consumer's path), tab-separated output without column names.
sql() {
        MYSQL_PWD=$LIVEFLOW_TEST_MYSQL_PASSWORD mariadb --no-defaults -h 127.0.0.1 \
                -P "$LIVEFLOW_TEST_MYSQL_PORT" -u liveflow --batch --skip-column-names "$DB" -e "$1"
}

sql_file() {
        MYSQL_PWD=$LIVEFLOW_TEST_MYSQL_PASSWORD mariadb --no-defaults -h 127.0.0.1 \
                -P "$LIVEFLOW_TEST_MYSQL_PORT" -u liveflow --batch --skip-column-names "$DB" <"$1"
}

# two_free_ports: two distinct free ports in PORT_A and PORT_B.
two_free_ports() {
        PORT_A=$(free_port) || die "no free port"
        PORT_B=$(free_port) || die "no free port"
        while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port) || die "no free port"; done
}

# mysql_status FILE: MariaDB's statement counters (Questions, Com_*) as "name value" lines.
mysql_status() {
        sql "SHOW GLOBAL STATUS WHERE Variable_name = 'Questions' OR (Variable_name LIKE 'Com\_%' AND Value > 0)" >"$1"
}

# redis_status FILE: Redis's per-command call counts as "name value" lines.
redis_status() {
        redis-cli -h 127.0.0.1 -p "$LIVEFLOW_TEST_REDIS_PORT" INFO commandstats |
                sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\).*/\1 \2/p' >"$1"
}

# per_record BEFORE AFTER RECORDS LESS: every counter that moved between two files, per
# record, largest first ("Com_insert 0.004, ..."; a set-based role issues far less than one
# statement per record, so three decimals); LESS is "name=n ..." to subtract first (this
# script's own statements). Questions, their sum, is left out: it is the statements figure.
per_record() {
        awk -v r="$3" -v less="$4" '
        BEGIN { n = split(less, l, " "); for (i = 1; i <= n; i++) { split(l[i], kv, "="); minus[kv[1]] = kv[2] } }
        FNR == NR { before[$1] = $2; next }
        $1 != "Questions" { d = $2 - before[$1] - minus[$1]; if (r > 0 && d / r >= 0.0005) printf "%s %.3f\n", $1, d / r }' "$1" "$2" |
                sort -k2,2nr | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 } END { if (NR == 0) printf "none"; print "" }'
}

# stmts_per_record BEFORE AFTER RECORDS OWN: MariaDB's statements (Questions) per record
# between two mysql_status files, less OWN of this script's own.
stmts_per_record() {
        awk -v r="$3" -v own="$4" 'FNR == NR { if ($1 == "Questions") q0 = $2; next }
        $1 == "Questions" { if (r > 0) printf "%.2f", ($2 - q0 - own) / r; else printf "n/a" }' "$1" "$2"
}

# metric_sum URL NAME: the sum of every sample of metric NAME (all label sets).
metric_sum() {
        curl -fsS --max-time 5 "$1" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { n += $NF } END { printf "%.6f\n", n }'
}

# log_counts FILE: "N ERROR, M WARN lines" of a liveflow log.
log_counts() {
        echo "$(grep -c ' ERROR trace=' "$1") ERROR, $(grep -c ' WARN trace=' "$1") WARN lines"
}

# rss_kib PID FIELD: VmRSS or VmHWM of PID in KiB.
rss_kib() {
        awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}

# cpu_ticks PID: user + system clock ticks PID used so far.
cpu_ticks() {
        sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}

# task_ticks PID: "name ticks" per thread of PID (user + system clock ticks so far), the
# receiver's threads grouped: each loop (lf-loop-N), librdkafka's broker threads (rdk:broker*),
# librdkafka's main threads (rdk:main), and the rest.
task_ticks() {
        for s in /proc/"$1"/task/*/stat; do
                sed 's/^[0-9]* (\(.*\)) /\1 /' "$s" 2>/dev/null
        done | awk '{ n = NF; t = $(n - 52 + 14) + $(n - 52 + 15); name = $1
                      g = name ~ /^lf-loop/ ? name : name ~ /^rdk:broker/ ? "librdkafka-brokers" : name ~ /^rdk:main/ ? "librdkafka-main" : "other"
                      s[g] += t } END { for (g in s) print g, s[g] }'
}

# task_split BEFORE AFTER: each group's share of the CPU between two task_ticks outputs.
task_split() {
        printf '%s\n%s\n' "$1" "$2" | awk 'NR == FNR {} { if (seen[$1]++) d[$1] = $2 - b[$1]; else b[$1] = $2 }
                END { for (g in d) t += d[g]; for (g in d) if (t > 0) printf "%s %.0f%%  ", g, 100 * d[g] / t }'
}

# rss_sampler PID FILE: writes the largest VmRSS of PID seen (KiB) to FILE every 0.5 s
# until FILE.stop exists.
rss_sampler() {
        local max=0 v
        while [ ! -e "$2.stop" ]; do
                v=$(rss_kib "$1" VmRSS)
                [ -n "$v" ] && [ "$v" -gt "$max" ] && max=$v
                echo "$max" >"$2"
                sleep 0.5
        done
}

# run_wrk TAG CONNECTIONS URL OUTFILE seconds|quota N: one wrk run with tencent.lua,
# its output in OUTFILE. "seconds N": each thread sends callbacks for N s; "quota N": N
# callbacks in all. Either way the threads stop sending, wait for their last answers and
# write a marker each (see tencent.lua); then wrk is stopped with SIGINT, which makes it
# print its summary. Sets WRK_CLEAN to 1 when every thread ended that way, 0 when wrk had
# to be stopped with requests unanswered (lost to socket errors or a stuck server).
run_wrk() {
        local tag="$1" conns="$2" url="$3" out="$4" mode="$5" n="$6" threads="$THREADS" cap deadline seconds=0 quota=0
        [ "$conns" -lt "$threads" ] && threads=$conns
        if [ "$mode" = quota ]; then
                quota=$n
                [ "$quota" -lt "$threads" ] && threads=1
                cap=$((120 + quota / 50))
        else
                seconds=$n
                cap=$((seconds + 20))
        fi
        rm -rf "$DONE_DIR" && mkdir -p "$DONE_DIR" || die "cannot write to $DONE_DIR"
        BENCH_TENCENT_T=$TENCENT_T BENCH_TENCENT_SIGN=$TENCENT_SIGN BENCH_RUN=$tag BENCH_EVENT_TYPE=$EVENT_TYPE \
                BENCH_THREADS=$threads BENCH_SECONDS=$seconds BENCH_QUOTA=$quota BENCH_DONE_DIR=$DONE_DIR \
                wrk -t "$threads" -c "$conns" -d "$((cap + 10))s" --timeout 10s -s "$LUA" "$url" >"$out" 2>&1 &
        WRK_PID=$!
        BG_PIDS="$BG_PIDS $WRK_PID"
        deadline=$(($(now_ms) + cap * 1000))
        # No thread can be done before its seconds are up: wait them out with few forks.
        while [ "$(now_ms)" -lt $((deadline - (cap - seconds) * 1000)) ] && pid_alive "$WRK_PID"; do
                sleep 1
        done
        while [ "$(ls "$DONE_DIR" | wc -l)" -lt "$threads" ] && pid_alive "$WRK_PID" &&
                [ "$(now_ms)" -lt "$deadline" ]; do
                sleep 0.05
        done
        WRK_CLEAN=0
        [ "$(ls "$DONE_DIR" | wc -l)" -ge "$threads" ] && WRK_CLEAN=1
        kill -INT "$WRK_PID" 2>/dev/null
        wait "$WRK_PID"
        BG_PIDS=$(echo "$BG_PIDS" | sed "s/ $WRK_PID//")
        grep -q '^BENCH errors' "$out" || die "wrk failed against $url (see $out): $(tail -n 3 "$out")"
        [ "$WRK_CLEAN" -eq 1 ] || note "wrk $tag: requests left unanswered after $cap s: $(grep '^BENCH sent' "$out")"
}

# settle_receiver BASE_OK BASE_KAFKA: waits until every request the receiver took has
# been answered or refused, which is when its 200 count equals the records added to
# SETTLE_TOPIC (live.stream) and neither moved for 0.3 s (15 s at most: the ack timeout is 5 s). Sets
# RCV_OK and KAFKA_NEW to the two counts since the bases.
settle_receiver() {
        local deadline prev="" now
        deadline=$(($(now_ms) + 15000))
        while :; do
                RCV_OK=$(receiver_ok)
                KAFKA_NEW=$(kafka_high "$SETTLE_TOPIC") || exit 1
                RCV_OK=$((RCV_OK - $1))
                KAFKA_NEW=$((KAFKA_NEW - $2))
                now="$RCV_OK $KAFKA_NEW"
                [ "$RCV_OK" -eq "$KAFKA_NEW" ] && [ "$now" = "$prev" ] && return 0
                [ "$(now_ms)" -lt "$deadline" ] || return 1
                prev=$now
                sleep 0.3
        done
}

# ------------------------------------------------------------------ set-up

check_int BENCH_DURATION_S "$DURATION" 1 3600
check_int BENCH_WARMUP_S "$WARMUP" 0 600
check_int BENCH_THREADS "$THREADS" 1 64
check_int BENCH_RECORDS "$RECORDS" 1 50000
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
        LIVEFLOW_HTTP_PORT="$RECEIVER_PORT" LIVEFLOW_HTTP_THREADS="$HTTP_THREADS" \
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

# ------------------------------------------------------------------ consumer

# The consumer runs first, on a live.stream holding exactly its records (the receiver
# runs add far more than the dev broker's retention keeps).
bench_stream() {
        echo
        echo "consumer stream: preloading $RECORDS stream-begin callbacks through the receiver"
        base_ok=$(receiver_ok)
        base_kafka=$(kafka_high) || exit 1
        [ "$base_kafka" -eq 0 ] || die "live.stream is not empty before the preload ($base_kafka records)"
        preload_out=$LOGS/wrk-preload.out
        t0=$(now_ms)
        run_wrk pre "$PRELOAD_CONNECTIONS" "$RECEIVER_URL" "$preload_out" quota "$RECORDS"
        preload_ms=$(($(now_ms) - t0))
        [ "$WRK_CLEAN" -eq 1 ] || die "the preload did not finish"
        settle_receiver "$base_ok" "$base_kafka" || true
        preload_ok=$(wrk_value "$preload_out" ok)
        preload_sent=$(wrk_value "$preload_out" sent)
        echo "  $preload_sent callbacks in $preload_ms ms: 200s=$preload_ok" \
                "other=$(wrk_other_statuses "$preload_out") receiver-200s=$RCV_OK kafka=$KAFKA_NEW"
        if [ "$preload_ok" -ne "$KAFKA_NEW" ] || [ "$RCV_OK" -ne "$KAFKA_NEW" ]; then
                echo "  MISMATCH: the preload's 200s are not the records in live.stream"
                FAILED=1
        fi
        TARGET=$KAFKA_NEW
        [ "$TARGET" -gt 0 ] || die "the preload put no record in live.stream"
        # The dev broker drops a partition's oldest batches beyond ~5 MiB: all must still be there.
        case "$(kafka_count live.stream)" in
        *" low=0") ;;
        *) die "the dev broker's retention dropped preloaded records ($(kafka_count live.stream)): lower BENCH_RECORDS" ;;
        esac

        two_free_ports
        CONSUMER_ADMIN=$PORT_A
        echo "consumer stream: consuming $TARGET records"
        t_start=$(now_ms)
        # shellcheck disable=SC2086 # BENCH_CONSUMER_ENV is split into words on purpose
        spawn "$PIDS/consumer-stream.pid" "$LOGS/consumer.log" env \
                LIVEFLOW_KAFKA_BOOTSTRAP="$LIVEFLOW_TEST_KAFKA_BOOTSTRAP" LIVEFLOW_MYSQL_URL="$MYSQL_URL" \
                LIVEFLOW_REDIS_URL="$LIVEFLOW_TEST_REDIS_URL" LIVEFLOW_ADMIN_PORT="$CONSUMER_ADMIN" \
                LIVEFLOW_GROUP_ID="$GROUP" LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000 \
                LIVEFLOW_LOG_LEVEL="$LOG_LEVEL" ${BENCH_CONSUMER_ENV:-} "$BIN/liveflow-consumer" stream
        CONSUMER_PID=$(cat "$PIDS/consumer-stream.pid")
        mysql_status "$TMP/bench/mysql.before" || die "cannot read MariaDB's status"
        redis_status "$TMP/bench/redis.before" || die "cannot read Redis's status"
        polls=0
        # Polled every 0.25 s only to know when it is over; the rate comes from the rows' own
        # timestamps (updated_at, set by MariaDB when each row is inserted).
        deadline=$((t_start + (120 + TARGET / 20) * 1000))
        rows=0
        last_rows=0
        last_move=$t_start
        while :; do
                rows=$(sql "SELECT COUNT(*) FROM live_streams") || die "cannot count live_streams"
                polls=$((polls + 1))
                [ "$rows" -ge "$TARGET" ] && break
                now=$(now_ms)
                if [ "$rows" -ne "$last_rows" ]; then
                        last_rows=$rows
                        last_move=$now
                fi
                if ! pid_alive "$CONSUMER_PID"; then
                        log_tail "$LOGS/consumer.log"
                        die "the consumer exited with $rows of $TARGET rows applied"
                fi
                if [ "$now" -ge "$deadline" ] || { [ "$rows" -gt 0 ] && [ $((now - last_move)) -gt 60000 ]; }; then
                        log_tail "$LOGS/consumer.log"
                        die "the consumer applied only $rows of $TARGET rows in $(((now - t_start) / 1000)) s"
                fi
                sleep 0.25
        done
        t_rows=$(now_ms)
        # Offsets are committed every second after they are stored: wait for lag 0.
        committed_line=""
        deadline=$(($(now_ms) + 30000))
        while :; do
                committed_line=$(kafka_count live.stream "$GROUP") || die "cannot read the group's offsets"
                case "$committed_line" in *" lag=0") break ;; esac
                [ "$(now_ms)" -lt "$deadline" ] || break
                sleep 0.2
        done
        t_committed=$(now_ms)
        # After the commit, so that the last batch is in the figures too: what the consumer asked
        # of MariaDB and Redis (less this script's own polls), and its batches from its /metrics.
        mysql_status "$TMP/bench/mysql.after" || die "cannot read MariaDB's status"
        redis_status "$TMP/bench/redis.after" || die "cannot read Redis's status"
        consumer_metrics=http://127.0.0.1:$CONSUMER_ADMIN/metrics
        batches=$(metric_sum "$consumer_metrics" liveflow_consumer_batch_seconds_count)
        batch_s=$(metric_sum "$consumer_metrics" liveflow_consumer_batch_seconds_sum)
        stop_pidfiles 15 "$PIDS/consumer-stream.pid" 2>>"$LOGS/stop.log"
        committed_after=$(kafka_count live.stream "$GROUP") || die "cannot read the group's offsets"

        # First to last row, from MariaDB's clock: the apply rate without the start-up.
        span_us=$(sql "SELECT TIMESTAMPDIFF(MICROSECOND, MIN(updated_at), MAX(updated_at)) FROM live_streams")
        first_row_ms=$(sql "SELECT CAST(UNIX_TIMESTAMP(MIN(updated_at)) * 1000 AS SIGNED) FROM live_streams")
        events=$(sql "SELECT COUNT(*) FROM live_events WHERE consumer = 'stream'")
        online=$(redis-cli -h 127.0.0.1 -p "$LIVEFLOW_TEST_REDIS_PORT" SCARD set:live:online)
        consumer_rate=$(fmt_rate $((rows - 1)) "$span_us")
        consumer_log=$(log_counts "$LOGS/consumer.log")
        echo "  $rows rows: first row $((first_row_ms - t_start)) ms after the start (group join)," \
                "last $(fmt_ms "$span_us") ms later, offsets committed $((t_committed - t_rows)) ms after that"
        echo "  $(awk -v b="$batches" -v s="$batch_s" -v r="$rows" 'BEGIN {
                printf "%d batches of %.0f records on average, %.0f ms each", b, (b > 0 ? r / b : 0), (b > 0 ? s * 1000 / b : 0) }')"
        STREAM_STMTS=$(stmts_per_record "$TMP/bench/mysql.before" "$TMP/bench/mysql.after" "$rows" $((polls + 1)))
        echo "  MariaDB per record: $(per_record "$TMP/bench/mysql.before" "$TMP/bench/mysql.after" "$rows" \
                "Com_select=$polls Com_show_status=1") ($STREAM_STMTS statements)"
        echo "  Redis per record: $(per_record "$TMP/bench/redis.before" "$TMP/bench/redis.after" "$rows" "info=1")"
        echo "  live_events=$events set:live:online=$online offsets: $committed_after; its log: $consumer_log"
        if [ "$rows" -ne "$TARGET" ] || [ "$events" -ne "$TARGET" ] || [ "$online" -ne "$TARGET" ]; then
                echo "  MISMATCH: $TARGET records in Kafka, $rows rows, $events events, $online online"
                FAILED=1
        fi
        case "$committed_after" in
        *" lag=0") ;;
        *)
                echo "  MISMATCH: offsets not all committed after the drain: $committed_after"
                FAILED=1
                ;;
        esac
        ROLE_RESULTS="${ROLE_RESULTS}stream $rows $span_us $((first_row_ms - t_start)) $STREAM_STMTS
"
}

# role_info ROLE: sets ROLE_TYPE (Tencent event_type), ROLE_TOPIC, ROLE_TABLE and ROLE_TS
# (its column set by MariaDB when the row is inserted; empty: time the rows by polling).
role_info() {
        case "$1" in
        record) ROLE_TYPE=100 ROLE_TOPIC=live.record ROLE_TABLE=live_records ROLE_TS=created_at ;;
        snapshot) ROLE_TYPE=200 ROLE_TOPIC=live.snapshot ROLE_TABLE=live_snapshots ROLE_TS=created_at ;;
        audit) ROLE_TYPE=317 ROLE_TOPIC=live.audit ROLE_TABLE=live_audit_logs ROLE_TS=created_at ;;
        # live_events has no insert time: timed by the consumer's batch durations.
        other) ROLE_TYPE=321 ROLE_TOPIC=live.other ROLE_TABLE="live_events WHERE consumer = 'other'" ROLE_TS="" ;;
        *) die "role_info: no Tencent topic for $1" ;;
        esac
}

# bench_role ROLE: the consumer figures of one role other than stream, on a topic holding
# exactly RECORDS callbacks of its type sent through the receiver; its result line is added
# to ROLE_RESULTS.
bench_role() {
        local role="$1" group="liveflow.$1" out="$LOGS/wrk-preload-$1.out" base_ok base_kafka t0 ms
        local ok sent target admin pid log="$LOGS/consumer-$1.log" t_start deadline rows last_rows last_move
        local now polls first_poll_ms last_poll_ms t_rows committed_line committed_after span_us first_ms
        local rate dead dlq batches batch_s t_committed
        role_info "$role"
        echo
        echo "consumer $role: preloading $RECORDS event_type $ROLE_TYPE callbacks through the receiver into $ROLE_TOPIC"
        SETTLE_TOPIC=$ROLE_TOPIC
        EVENT_TYPE=$ROLE_TYPE
        base_ok=$(receiver_ok)
        base_kafka=$(kafka_high "$ROLE_TOPIC") || exit 1
        [ "$base_kafka" -eq 0 ] || die "$ROLE_TOPIC is not empty before the preload ($base_kafka records)"
        t0=$(now_ms)
        run_wrk "pre-$role" "$PRELOAD_CONNECTIONS" "$RECEIVER_URL" "$out" quota "$RECORDS"
        ms=$(($(now_ms) - t0))
        [ "$WRK_CLEAN" -eq 1 ] || die "the $role preload did not finish"
        settle_receiver "$base_ok" "$base_kafka" || true
        EVENT_TYPE=1
        SETTLE_TOPIC=live.stream
        ok=$(wrk_value "$out" ok)
        sent=$(wrk_value "$out" sent)
        echo "  $sent callbacks in $ms ms: 200s=$ok other=$(wrk_other_statuses "$out")" \
                "receiver-200s=$RCV_OK kafka=$KAFKA_NEW"
        if [ "$ok" -ne "$KAFKA_NEW" ] || [ "$RCV_OK" -ne "$KAFKA_NEW" ]; then
                echo "  MISMATCH: the preload's 200s are not the records in $ROLE_TOPIC"
                FAILED=1
        fi
        target=$KAFKA_NEW
        [ "$target" -gt 0 ] || die "the $role preload put no record in $ROLE_TOPIC (see $LOGS/receiver.log)"
        case "$(kafka_count "$ROLE_TOPIC")" in
        *" low=0") ;;
        *) die "the dev broker's retention dropped preloaded records ($(kafka_count "$ROLE_TOPIC")): lower BENCH_RECORDS" ;;
        esac

        two_free_ports
        admin=$PORT_A
        echo "consumer $role: consuming $target records (group $group)"
        t_start=$(now_ms)
        # shellcheck disable=SC2086 # BENCH_CONSUMER_ENV is split into words on purpose
        spawn "$PIDS/consumer-$role.pid" "$log" env \
                LIVEFLOW_KAFKA_BOOTSTRAP="$LIVEFLOW_TEST_KAFKA_BOOTSTRAP" LIVEFLOW_MYSQL_URL="$MYSQL_URL" \
                LIVEFLOW_REDIS_URL="$LIVEFLOW_TEST_REDIS_URL" LIVEFLOW_ADMIN_PORT="$admin" \
                LIVEFLOW_GROUP_ID="$group" LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000 \
                LIVEFLOW_LOG_LEVEL="$LOG_LEVEL" ${BENCH_CONSUMER_ENV:-} "$BIN/liveflow-consumer" "$role"
        pid=$(cat "$PIDS/consumer-$role.pid")
        mysql_status "$TMP/bench/mysql-$role.before" || die "cannot read MariaDB's status"
        # Done when every record's row is in the table and the group's offsets are all
        # committed (a record dead-lettered leaves no row: the offsets end the wait then).
        deadline=$((t_start + (120 + target / 20) * 1000))
        rows=0 last_rows=0 last_move=$t_start polls=0 first_poll_ms=0 last_poll_ms=0
        committed_line=""
        while :; do
                rows=$(sql "SELECT COUNT(*) FROM $ROLE_TABLE") || die "cannot count $ROLE_TABLE"
                now=$(now_ms)
                polls=$((polls + 1))
                [ "$rows" -gt 0 ] && [ "$first_poll_ms" -eq 0 ] && first_poll_ms=$now
                if [ "$rows" -ne "$last_rows" ]; then
                        last_rows=$rows
                        last_move=$now
                        last_poll_ms=$now
                fi
                if [ "$rows" -ge "$target" ]; then
                        break
                fi
                committed_line=$(kafka_count "$ROLE_TOPIC" "$group") || die "cannot read the offsets of $group"
                case "$committed_line" in *" lag=0") break ;; esac
                if ! pid_alive "$pid"; then
                        log_tail "$log"
                        die "the $role consumer exited with $rows of $target rows applied"
                fi
                if [ "$now" -ge "$deadline" ] || { [ "$rows" -gt 0 ] && [ $((now - last_move)) -gt 60000 ]; }; then
                        log_tail "$log"
                        die "the $role consumer applied only $rows of $target rows in $(((now - t_start) / 1000)) s"
                fi
                sleep 0.25
        done
        t_rows=$(now_ms)
        deadline=$((t_rows + 30000))
        while :; do
                committed_line=$(kafka_count "$ROLE_TOPIC" "$group") || die "cannot read the offsets of $group"
                case "$committed_line" in *" lag=0") break ;; esac
                [ "$(now_ms)" -lt "$deadline" ] || break
                sleep 0.2
        done
        t_committed=$(now_ms)
        mysql_status "$TMP/bench/mysql-$role.after" || die "cannot read MariaDB's status"
        rows=$(sql "SELECT COUNT(*) FROM $ROLE_TABLE") || die "cannot count $ROLE_TABLE"
        batches=$(metric_sum "http://127.0.0.1:$admin/metrics" liveflow_consumer_batch_seconds_count)
        batch_s=$(metric_sum "http://127.0.0.1:$admin/metrics" liveflow_consumer_batch_seconds_sum)
        dead=$(curl -fsS --max-time 5 "http://127.0.0.1:$admin/metrics" |
                awk '/^liveflow_consumer_records_total\{/ && /outcome="dead_lettered"/ { n += $NF } END { printf "%d\n", n }')
        stop_pidfiles 15 "$PIDS/consumer-$role.pid" 2>>"$LOGS/stop.log"
        committed_after=$(kafka_count "$ROLE_TOPIC" "$group") || die "cannot read the offsets of $group"
        dlq=$(kafka_count "$ROLE_TOPIC.dlq" 2>/dev/null | sed -n 's/.* high=\([0-9]*\).*/\1/p')
        if [ -n "$ROLE_TS" ]; then
                # First to last row, from MariaDB's clock: the apply rate without the start-up.
                span_us=$(sql "SELECT TIMESTAMPDIFF(MICROSECOND, MIN($ROLE_TS), MAX($ROLE_TS)) FROM $ROLE_TABLE")
                first_ms=$(sql "SELECT CAST(UNIX_TIMESTAMP(MIN($ROLE_TS)) * 1000 AS SIGNED) FROM $ROLE_TABLE")
        else
                # No insert time: the time the consumer spent in its batches (apply, commit,
                # publish), from its own metrics; polling is too coarse for a fast role.
                span_us=$(awk -v s="$batch_s" 'BEGIN { printf "%.0f", s * 1e6 }')
                first_ms=$first_poll_ms
        fi
        case "$span_us" in '' | NULL) span_us=0 ;; esac
        case "$first_ms" in '' | NULL) first_ms=$t_start ;; esac
        rate=$(fmt_rate $((rows - 1)) "$span_us")
        echo "  $rows rows: first row $((first_ms - t_start)) ms after the start (group join)," \
                "last $(fmt_ms "$span_us") ms later (${ROLE_TS:-time in batches}), offsets committed $((t_committed - t_rows)) ms after that"
        echo "  $(awk -v b="$batches" -v s="$batch_s" -v r="$target" 'BEGIN {
                printf "%d batches of %.0f records on average, %.0f ms each", b, (b > 0 ? r / b : 0), (b > 0 ? s * 1000 / b : 0) }')"
        stmts=$(stmts_per_record "$TMP/bench/mysql-$role.before" "$TMP/bench/mysql-$role.after" "$target" $((polls + 1)))
        echo "  MariaDB per record: $(per_record "$TMP/bench/mysql-$role.before" "$TMP/bench/mysql-$role.after" "$target" \
                "Com_select=$polls Com_show_status=1") ($stmts statements)"
        echo "  dead-lettered=$dead $ROLE_TOPIC.dlq=${dlq:-0} offsets: $committed_after; its log: $(log_counts "$log")"
        if [ "$rows" -ne "$target" ] || [ "$dead" -ne 0 ] || [ "${dlq:-0}" -ne 0 ]; then
                echo "  MISMATCH: $target records in $ROLE_TOPIC, $rows rows in $ROLE_TABLE, $dead dead-lettered (${dlq:-0} in $ROLE_TOPIC.dlq)"
                FAILED=1
        fi
        case "$committed_after" in
        *" lag=0") ;;
        *)
                echo "  MISMATCH: offsets not all committed after the drain: $committed_after"
                FAILED=1
                ;;
        esac
        ROLE_RESULTS="${ROLE_RESULTS}$role $rows $span_us $((first_ms - t_start)) $stmts
"
}

# has_role ROLE: true when BENCH_ROLES names it.
has_role() {
        case " $ROLES " in *" $1 "*) return 0 ;; esac
        return 1
}

# The baseline's row count: the stream role's records, or BENCH_RECORDS without it.
TARGET=$RECORDS
has_role stream && bench_stream
for r in $ROLES; do
        [ "$r" = stream ] || bench_role "$r"
done

# ------------------------------------------------------------------ MariaDB baseline

# TARGET rows shaped like the consumer's (same id patterns, a random 64-hex event id),
# BATCH_ROWS per INSERT, timed by the server between its first and last statement.
# "streams": live_streams rows alone; "both": the live_events row as well, both INSERTs
# of a batch in one transaction, as the consumer writes them.
echo
echo "MariaDB baseline: $TARGET rows, $BATCH_ROWS per INSERT"
sql "DROP TABLE IF EXISTS bench_streams, bench_events;
     CREATE TABLE bench_streams LIKE live_streams; CREATE TABLE bench_events LIKE live_events" ||
        die "cannot create the baseline tables"
# gen_baseline MODE FILE
gen_baseline() {
        awk -v n="$TARGET" -v batch="$BATCH_ROWS" -v mode="$1" -v seed="$(od -An -N4 -tu4 /dev/urandom)" '
        function hex(len,   s) { s = ""; while (length(s) < len) s = s sprintf("%04x", int(rand() * 65536)); return s }
        BEGIN {
                srand(seed)
                print "SET @t0 = NOW(6);"
                for (start = 1; start <= n; start += batch) {
                        end = start + batch - 1
                        if (end > n) end = n
                        if (mode == "both") {
                                print "BEGIN;"
                                printf "INSERT INTO bench_events (consumer, event_id, vendor, event_type, stream_id, trace_id,"
                                printf " event_time, received_at, kafka_topic, kafka_partition, kafka_offset) VALUES "
                                for (i = start; i <= end; i++)
                                        printf "%s(\"stream\",\"%s\",\"tencent\",\"stream.begin\",\"bench-base-%d-%d\",\"%s\",NOW(3),NOW(3),\"live.stream\",%d,%d)",
                                                (i > start ? "," : ""), hex(64), i % 2 + 1, i, hex(32), i % 6, i
                                print ";"
                        }
                        printf "INSERT INTO bench_streams (stream_id, anchor_id, room_id, session_id, vendor, vendor_session,"
                        printf " status, started_at, last_event_at) VALUES "
                        for (i = start; i <= end; i++)
                                printf "%s(\"bench-base-%d-%d\",\"anchor-base-%d-%d\",\"room-base-%d-%d\",%d,\"tencent\",\"%d%012d\",\"live\",NOW(3),NOW(3))",
                                        (i > start ? "," : ""), i % 2 + 1, i, i % 2 + 1, i, i % 2 + 1, i, 100000000 + i, i % 2 + 1, i
                        print ";"
                        if (mode == "both") print "COMMIT;"
                }
                print "SELECT TIMESTAMPDIFF(MICROSECOND, @t0, NOW(6));"
        }' >"$2"
}

# baseline MODE: TRUNCATEs the scratch tables, inserts TARGET rows, prints the microseconds.
baseline() {
        local us rows
        gen_baseline "$1" "$TMP/baseline-$1.sql"
        sql "TRUNCATE bench_streams; TRUNCATE bench_events" || die "cannot empty the baseline tables"
        us=$(sql_file "$TMP/baseline-$1.sql") || die "the $1 baseline failed"
        rows=$(sql "SELECT COUNT(*) FROM bench_streams")
        [ "$rows" -eq "$TARGET" ] || die "the $1 baseline inserted $rows rows, not $TARGET"
        echo "$us"
}
base_streams_us=$(baseline streams) || exit 1
base_both_us=$(baseline both) || exit 1
sql "DROP TABLE bench_streams, bench_events" || true
base_streams_rate=$(fmt_rate "$TARGET" "$base_streams_us")
base_both_rate=$(fmt_rate "$TARGET" "$base_both_us")
echo "  live_streams rows: $(fmt_ms "$base_streams_us") ms = $base_streams_rate rows/s;" \
        "with their live_events rows: $(fmt_ms "$base_both_us") ms = $base_both_rate records/s"

# ------------------------------------------------------------------ receiver

CLK_TCK=$(getconf CLK_TCK)
SUMMARY=""

# us_per_request TICKS REQUESTS: CPU microseconds per request from clock ticks.
us_per_request() {
        awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }'
}

# bench_noop CONNECTIONS: sets NOOP_RATE and NOOP_US (CPU µs per 200).
bench_noop() {
        local out="$LOGS/wrk-noop-c$1.out" ok dur cpu0 cpu1
        [ "$WARMUP" -gt 0 ] && run_wrk "warm-noop-c$1" "$1" "$NOOP_URL" "$out.warmup" seconds "$WARMUP"
        cpu0=$(cpu_ticks "$NOOP_PID")
        run_wrk "noop-c$1" "$1" "$NOOP_URL" "$out" seconds "$DURATION"
        cpu1=$(cpu_ticks "$NOOP_PID")
        ok=$(wrk_value "$out" ok)
        dur=$(wrk_value "$out" window_us)
        NOOP_RATE=$(fmt_rate "$ok" "$dur")
        NOOP_US=$(us_per_request "$((cpu1 - cpu0))" "$ok")
        echo "  no-op   c=$1: $NOOP_RATE req/s  p50 $(fmt_ms "$(wrk_value "$out" p50)") ms" \
                " p99 $(fmt_ms "$(wrk_value "$out" p99)") ms  cpu $NOOP_US us/request  200s=$ok other=$(wrk_other_statuses "$out")"
}

# bench_receiver CONNECTIONS: one timed run against the receiver, its line in SUMMARY.
bench_receiver() {
        local c="$1" out="$LOGS/wrk-receiver-c$1.out" rss_file="$TMP/bench/rss-c$1" base_ok base_kafka
        local ok sent answered dur rate p50 p99 rss hwm cpu0 cpu1 cores verdict us idle per_conn tasks0 tasks1
        idle=$(rss_kib "$RECEIVER_PID" VmRSS)
        [ "$WARMUP" -gt 0 ] && run_wrk "warm-c$c" "$c" "$RECEIVER_URL" "$out.warmup" seconds "$WARMUP"
        settle_receiver 0 0 || true
        base_ok=$(receiver_ok)
        base_kafka=$(kafka_high) || exit 1
        rm -f "$rss_file" "$rss_file.stop"
        rss_sampler "$RECEIVER_PID" "$rss_file" &
        SAMPLER_PID=$!
        BG_PIDS=$SAMPLER_PID
        cpu0=$(cpu_ticks "$RECEIVER_PID")
        tasks0=$(task_ticks "$RECEIVER_PID")
        run_wrk "c$c" "$c" "$RECEIVER_URL" "$out" seconds "$DURATION"
        cpu1=$(cpu_ticks "$RECEIVER_PID")
        tasks1=$(task_ticks "$RECEIVER_PID")
        touch "$rss_file.stop"
        wait "$SAMPLER_PID"
        BG_PIDS=""
        pid_alive "$RECEIVER_PID" || {
                log_tail "$LOGS/receiver.log"
                die "the receiver died during the c=$c run"
        }
        settle_receiver "$base_ok" "$base_kafka" || true
        ok=$(wrk_value "$out" ok)
        sent=$(wrk_value "$out" sent)
        answered=$(wrk_value "$out" answered)
        dur=$(wrk_value "$out" window_us)
        rate=$(fmt_rate "$ok" "$dur")
        p50=$(fmt_ms "$(wrk_value "$out" p50)")
        p99=$(fmt_ms "$(wrk_value "$out" p99)")
        rss=$(awk -v k="$(cat "$rss_file")" 'BEGIN { printf "%.0f", k / 1024 }')
        hwm=$(awk -v k="$(rss_kib "$RECEIVER_PID" VmHWM)" 'BEGIN { printf "%.0f", k / 1024 }')
        cores=$(awk -v t="$((cpu1 - cpu0))" -v hz="$CLK_TCK" -v us="$dur" 'BEGIN { printf "%.2f", t / hz / (us / 1e6) }')
        us=$(us_per_request "$((cpu1 - cpu0))" "$ok")
        # What the run's connections added to the resident set, per connection (the RSS before
        # this run's warm-up against the largest seen during the run).
        per_conn=$(awk -v k="$(cat "$rss_file")" -v i="$idle" -v c="$c" 'BEGIN { d = (k - i) / c; printf "%.0f", (d > 0 ? d : 0) }')
        # The run ended with every callback answered (tencent.lua): the 200s wrk saw, the
        # 200s the receiver counted and the records added to live.stream must be one number.
        # When wrk had to be stopped with callbacks unanswered, each of those may or may not
        # have reached Kafka: only the bounds can be checked then.
        verdict=OK
        if [ "$WRK_CLEAN" -eq 1 ]; then
                [ "$ok" -eq "$KAFKA_NEW" ] && [ "$RCV_OK" -eq "$KAFKA_NEW" ] || verdict=MISMATCH
        else
                [ "$KAFKA_NEW" -ge "$ok" ] && [ "$KAFKA_NEW" -le $((ok + sent - answered)) ] || verdict=MISMATCH
        fi
        [ "$verdict" = OK ] || FAILED=1
        echo "  receiver c=$c: $rate req/s  p50 $p50 ms  p99 $p99 ms  rss $rss MiB (VmHWM $hwm MiB," \
                "$(awk -v k="$idle" 'BEGIN { printf "%.0f", k / 1024 }') MiB before the run, +$per_conn KiB per connection)" \
                " cpu $cores cores, $us us/request (no-op $NOOP_US)"
        echo "    receiver CPU by thread: $(task_split "$tasks0" "$tasks1")"
        echo "    callbacks sent=$sent answered=$answered 200s=$ok other=$(wrk_other_statuses "$out")" \
                "in $(fmt_ms "$dur") ms; socket errors: $(sed -n 's/^BENCH errors //p' "$out");" \
                "receiver 200s=$RCV_OK kafka=$KAFKA_NEW $verdict"
        SUMMARY="${SUMMARY}$(printf 'receiver  c=%-2s: %s req/s  p50 %s ms  p99 %s ms  rss %s MiB  cpu %s us/request  200s=%s non-200=%s kafka=%s %s  ratio %s of no-op %s req/s (%s us/request)' \
                "$c" "$rate" "$p50" "$p99" "$rss" "$us" "$ok" "$((answered - ok))" "$KAFKA_NEW" "$verdict" \
                "$(fmt_ratio "$rate" "$NOOP_RATE")" "$NOOP_RATE" "$NOOP_US")
"
}

if [ "$RECEIVER_RUNS" != 0 ]; then
        echo
        echo "receiver: wrk -t$THREADS, ${DURATION} s per run, Tencent stream-begin callbacks of ~600 bytes"
        for c in $CONNECTIONS; do
                bench_noop "$c"
                bench_receiver "$c"
        done
        echo "  the receiver's log: $(log_counts "$LOGS/receiver.log")"
fi

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
        "$base_streams_rate rows/s (ratio); with their live_events rows, $base_both_rate records/s (ratio+ev)"
printf '%-10s %8s %10s %8s %9s %9s %10s\n' role records "rec/s" ratio "ratio+ev" "stmts/rec" "start-up s"
printf '%s' "$ROLE_RESULTS" | while read -r r_role r_rows r_span r_startup r_stmts; do
        r_rate=$(fmt_rate $((r_rows - 1)) "$r_span")
        printf '%-10s %8s %10s %8s %9s %9s %10s\n' "$r_role" "$r_rows" "$r_rate" \
                "$(fmt_ratio "$r_rate" "$base_streams_rate")" "$(fmt_ratio "$r_rate" "$base_both_rate")" \
                "$r_stmts" "$(awk -v ms="$r_startup" 'BEGIN { printf "%.1f", ms / 1000 }')"
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
