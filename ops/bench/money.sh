#!/bin/sh
# ops/bench/money.sh: the money benchmark. BENCH_TIPS signed tips (POST /v1/rewards,
# Standard Webhooks) are offered to the receiver at BENCH_TIPS_RATE per second while
# liveflow-consumer reward-sync, liveflow-settlement and liveflow-stats run against the
# same stack; it reports the tips/s each role put into MariaDB, the delay from the
# receiver's 200 to the tip's balance row, and checks the money adds up.
#
# Run by ops/bench/run.sh (make bench) at its end with MONEY_STACK_DIR set to its temp
# directory: the MariaDB, Redis and dev broker already up there are reused (with a
# database of its own, liveflow_money). Standalone (no MONEY_STACK_DIR) it starts its own
# with tests/fixtures/services.sh in a mktemp directory and stops them at the end.
#
# What is measured, per tip (all clocks are this machine's wall clock):
#   ack     when wrk got the receiver's 200 (rewards.lua; matched by the X-Request-Id echo)
#   recv    live_events.received_at of consumer 'settlement': the envelope's receive time,
#           taken by the receiver when the request arrived (so recv <= ack)
#   synced  recharge.created_at (NOW(3) of reward-sync's INSERT)
#   settled settlement_detail.created_at (NOW(3) of settlement's INSERT, in the same
#           transaction as the settlement balance credit)
# "200 -> balance" is settled - ack. created_at is the time of the INSERT statement; the
# transaction (a batch of up to LIVEFLOW_BATCH_MAX records) commits a little later, so
# this is a lower bound of the moment a reader can see the balance; the time to drain
# (last 200 to the moment a poll of the workers' /metrics finds every tip applied and
# committed) bounds it from the other side.
# The dev broker (librdkafka's mock cluster) answers a Fetch with at most one producer batch per
# partition, and the receiver produces with linger.ms 0: at a high rate a worker consumes a
# couple of records per partition per fetch round trip, and when the round trips slow the tips
# wait in the broker, not in the worker (README, "The money path"; compare with
# BENCH_TIPS_RECEIVER_ENV=LIVEFLOW_KAFKA_PROP_LINGER_MS=5).
# Beside the workers' CPU it prints the machine's busy and idle cores over the same span (and
# the receiver's, dev broker's, MariaDB's and Redis's share): with no idle core left, the delay
# is time waiting for a core, not a worker stalled on its own.
#
# Then (money_drain.sh), unless BENCH_TIPS_DRAIN=0, the drain: the same tips, already in
# live.reward, read again from the start by each worker alone in turn (a group of its own, a second database
# liveflow_money_drain and Redis database 2), so each rate is what that worker drains a
# backlog at; the sums and reconcile are checked there too. Every rate is printed beside its
# ratio to the ceiling: MariaDB's own 500-row INSERT of as many recharge rows, timed just
# before that drain. Each worker's RSS (VmHWM) and CPU are printed for both phases.
#
# Environment: BENCH_TIPS (20000), BENCH_TIPS_RATE (5000), BENCH_TIPS_CONNECTIONS (64),
# BENCH_THREADS (2), BENCH_LOG_LEVEL (info), BENCH_KEEP=1 (standalone: keep the temp
# directory), BENCH_TIPS_DRAIN (1; 0 skips the drain), BENCH_TIPS_BACKLOG=1 (the workers
# start only after the last 200, so their tips/s are what they drain at, not what is offered;
# the delays then include the wait),
# BENCH_TIPS_TIMELINE=1 (print the worst 100 ms of 200s by delay and the first second apart;
# the whole series is in timeline.tsv of the kept directory either way),
# BENCH_TIPS_WORKER_ENV (extra VAR=VALUE words for reward-sync, settlement and stats, to
# compare settings, e.g. LIVEFLOW_BATCH_WAIT_MS=5), BENCH_TIPS_RECEIVER_ENV (the same for the
# receiver, e.g. LIVEFLOW_KAFKA_PROP_LINGER_MS=5), BENCH_SLOW_LOG=1 (MariaDB logs every
# statement while each worker drains; the shapes that took the most time are printed after its
# line), BUILD (build).
#
# Exit 0 after printing the figures; 1 when the bench could not run; 3 on a correctness
# failure (a tip not 200, a row missing, sums that do not agree, reconcile not OK).
set -u
export LC_ALL=C

LF_PROG=money
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/ops/lib.sh"
# make bench's helpers, for slow_log_start/slow_log_stop (BENCH_SLOW_LOG=1); the functions
# defined below of the same names (sql, cpu_ticks, ...) are this script's own.
. "$ROOT/ops/bench/bench_lib.sh"

case "${BUILD:-build}" in
/*) BUILD=${BUILD:-build} ;;
*) BUILD=$ROOT/${BUILD:-build} ;;
esac
BIN=$BUILD/bin
LUA=$ROOT/ops/bench/rewards.lua
PY=/usr/bin/python3

TIPS=${BENCH_TIPS:-20000}
RATE=${BENCH_TIPS_RATE:-5000}
CONNS=${BENCH_TIPS_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
BACKLOG=${BENCH_TIPS_BACKLOG:-0}
DRAIN=${BENCH_TIPS_DRAIN:-1}
WORKER_ENV=${BENCH_TIPS_WORKER_ENV:-}
RECEIVER_ENV=${BENCH_TIPS_RECEIVER_ENV:-}
ANCHORS=50
AUDIENCES=2000

FAILED=0
TMP=""
OWN_STACK=0
SERVICES_UP=0
WORK=""
BG_PIDS=""

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

mismatch() {
        echo "  MISMATCH: $*"
        FAILED=1
}

for v in $(env | sed -n 's/^\(LIVEFLOW_[A-Za-z0-9_]*\)=.*/\1/p'); do
        unset "$v"
done

cleanup() {
        local rc=$? pid
        trap - EXIT INT TERM HUP
        for pid in $BG_PIDS; do
                kill -TERM "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
        done
        if [ -n "$WORK" ] && [ -d "$WORK/pid" ]; then
                stop_pidfiles 15 "$WORK"/pid/*.pid 2>>"$WORK/log/stop.log"
        fi
        if [ "$OWN_STACK" -eq 1 ] && [ -n "$TMP" ]; then
                [ "$SERVICES_UP" -eq 1 ] &&
                        BUILD=$BUILD sh "$ROOT/tests/fixtures/services.sh" stop "$TMP" 2>>"$WORK/log/stop.log"
                if [ "${BENCH_KEEP:-0}" = 1 ]; then
                        note "logs and data kept in $TMP (remove it when done)"
                else
                        rm -rf "$TMP"
                fi
        fi
        [ -n "$WORK" ] && [ -f "$WORK/log/stop.log" ] &&
                grep -v ' in [0-9]* ms$' "$WORK/log/stop.log" | sed 's/^/money: /' >&2
        exit "$rc"
}
trap cleanup EXIT
trap 'note "interrupted; stopping what was started"; exit 130' INT TERM HUP

sql() {
        MYSQL_PWD=$LIVEFLOW_TEST_MYSQL_PASSWORD mariadb --no-defaults -h 127.0.0.1 \
                -P "$LIVEFLOW_TEST_MYSQL_PORT" -u liveflow --batch --skip-column-names "$DB" \
                -e "SET time_zone = '+00:00'; $1"
}

two_free_ports() {
        PORT_A=$(free_port) || die "no free port"
        PORT_B=$(free_port) || die "no free port"
        while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port) || die "no free port"; done
}

# pct FILE P: the P-th percentile (nearest rank) of the numbers in FILE, one a line.
pct() {
        sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit }
                i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; printf "%.1f\n", v[i] }'
}

CLK_TCK=$(getconf CLK_TCK)

# cpu_ticks PID: user + system clock ticks PID used so far.
cpu_ticks() {
        sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}

# hwm_mib PID: the largest resident set PID had so far (VmHWM), in MiB.
hwm_mib() {
        awk '$1 == "VmHWM:" { printf "%.0f\n", $2 / 1024 }' "/proc/$1/status" 2>/dev/null
}

# usage_mark NAME: notes the worker's CPU ticks and the time, for usage_of.
usage_mark() {
        echo "$(cpu_ticks "$(cat "$WORK/pid/$1.pid")") $(now_ms)" >"$WORK/usage-$1"
}

# usage_of NAME: "VmHWM N MiB, cpu C cores" since usage_mark NAME.
usage_of() {
        local pid c1 t1
        pid=$(cat "$WORK/pid/$1.pid")
        c1=$(cpu_ticks "$pid")
        t1=$(now_ms)
        awk -v c1="${c1:-0}" -v t1="$t1" -v hz="$CLK_TCK" -v hwm="$(hwm_mib "$pid")" '{
                ms = t1 - $2; printf "VmHWM %s MiB, cpu %s cores", (hwm == "" ? "n/a" : hwm),
                        (ms > 0 ? sprintf("%.2f", (c1 - $1) / hz / (ms / 1000)) : "n/a") }' "$WORK/usage-$1"
}

# store_mark: notes the CPU ticks of MariaDB and Redis, for store_cpu.
store_mark() {
        echo "$(cpu_ticks "$LIVEFLOW_TEST_MYSQLD_PID") $(cpu_ticks "$LIVEFLOW_TEST_REDIS_PID")" >"$WORK/usage-stores"
}

# store_cpu NAME TIPS: the CPU (ms) the worker, MariaDB and Redis spent per 1000 tips since
# the marks: the work a tip costs, which a shared machine's load disturbs less than a rate.
store_cpu() {
        local pid
        pid=$(cat "$WORK/pid/$1.pid")
        awk -v w1="$(cpu_ticks "$pid")" -v m1="$(cpu_ticks "$LIVEFLOW_TEST_MYSQLD_PID")" \
                -v r1="$(cpu_ticks "$LIVEFLOW_TEST_REDIS_PID")" -v hz="$CLK_TCK" -v n="$2" -v wf="$WORK/usage-$1" '
                BEGIN { getline wl <wf; split(wl, w, " ") }
                { if (n > 0) printf "cpu ms per 1000 tips: worker %.0f, MariaDB %.0f, Redis %.0f",
                        (w1 - w[1]) * 1000 / hz * 1000 / n, (m1 - $1) * 1000 / hz * 1000 / n, (r1 - $2) * 1000 / hz * 1000 / n }' \
                "$WORK/usage-stores"
}

# machine_mark / machine_of: the whole machine's busy and idle cores (/proc/stat, every CPU)
# and the CPU of the stack's other processes over the same span as usage_mark/usage_of. A
# worker's low CPU beside a machine with no idle core is time spent waiting for a core (the
# stack itself fills a small machine at a high rate), not a worker waiting on its own.
machine_ticks() {
        local p t
        awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit }' /proc/stat
        for p in "$(cat "$WORK/pid/receiver.pid")" "$LIVEFLOW_TEST_DEVBROKER_PID" \
                "$LIVEFLOW_TEST_MYSQLD_PID" "$LIVEFLOW_TEST_REDIS_PID"; do
                t=$(cpu_ticks "$p")
                echo "${t:--}" # a process gone keeps its column
        done
}
machine_mark() {
        { now_ms; machine_ticks; } | paste -sd' ' >"$WORK/usage-machine"
}
machine_of() {
        { now_ms; machine_ticks; } | paste -sd' ' |
                awk -v hz="$CLK_TCK" -v cores="$(nproc)" -v wf="$WORK/usage-machine" '
                BEGIN { getline wl <wf; split(wl, w, " ") }
                { s = ($1 - w[1]) / 1000; if (s <= 0) { print "n/a"; exit }
                  for (i = 2; i <= 7; i++)
                          d[i] = ($i == "-" || w[i] == "-" ? "n/a" : sprintf("%.2f", ($i - w[i]) / hz / s))
                  printf "%s of %d cores busy (idle %s); receiver %s, dev broker %s, MariaDB %s, Redis %s cores",
                        d[2], cores, d[3], d[4], d[5], d[6], d[7] }'
}

# ratio A B: A / B with two decimals, n/a when either is not a number.
ratio() {
        awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f\n", a / b; else print "n/a" }'
}

# wait_ready NAME PID ADMIN_PORT
wait_ready() {
        wait_for 60 "$2" curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$3/readyz" || {
                log_tail "$WORK/log/$1.log"
                die "$1 did not become ready"
        }
}

# ------------------------------------------------------------------ set-up

check_int BENCH_TIPS "$TIPS" 1 200000
check_int BENCH_TIPS_RATE "$RATE" 1 100000
check_int BENCH_TIPS_CONNECTIONS "$CONNS" 1 1000
check_int BENCH_THREADS "$THREADS" 1 64
check_int BENCH_TIPS_BACKLOG "$BACKLOG" 0 1
check_int BENCH_TIPS_DRAIN "$DRAIN" 0 1
[ "$CONNS" -ge "$THREADS" ] || THREADS=$CONNS
command -v wrk >/dev/null 2>&1 || die "wrk is missing (make deps installs it)"
[ -x "$PY" ] || die "$PY is missing"
for b in liveflow-receiver liveflow-consumer liveflow-settlement liveflow-stats liveflow-devbroker \
        liveflow-migrate; do
        [ -x "$BIN/$b" ] || die "$BIN/$b is missing; run make BUILD=... bench"
done

if [ -n "${MONEY_STACK_DIR:-}" ]; then
        TMP=$MONEY_STACK_DIR
        [ -f "$TMP/env" ] || die "$TMP/env is missing (MONEY_STACK_DIR must be a services.sh directory)"
        WORK=$TMP/money
        mkdir -p "$WORK/pid" "$WORK/log" "$WORK/done" || die "cannot write to $WORK"
else
        OWN_STACK=1
        TMP=$(mktemp -d /tmp/lfm.XXXXXX) || die "mktemp failed"
        WORK=$TMP/money
        mkdir -p "$WORK/pid" "$WORK/log" "$WORK/done" || die "cannot write to $TMP"
        BUILD=$BUILD sh "$ROOT/tests/fixtures/services.sh" start "$TMP" 2>>"$WORK/log/services.log" || {
                log_tail "$WORK/log/services.log"
                die "the services did not start"
        }
        SERVICES_UP=1
fi
. "$TMP/env"
LOGS=$WORK/log # where slow_log_start writes
DB=liveflow_money
MYSQL_URL=mysql://liveflow:$LIVEFLOW_TEST_MYSQL_PASSWORD@127.0.0.1:$LIVEFLOW_TEST_MYSQL_PORT/$DB
KAFKA=$LIVEFLOW_TEST_KAFKA_BOOTSTRAP
# A Redis database of its own too (make bench's earlier parts leave their live streams in
# database 0, and reconcile compares Redis with this part's MariaDB database), emptied first.
REDIS_DB=1
REDIS_URL=${LIVEFLOW_TEST_REDIS_URL%/*}/$REDIS_DB
redis-cli -h 127.0.0.1 -p "$LIVEFLOW_TEST_REDIS_PORT" -n "$REDIS_DB" FLUSHDB >/dev/null ||
        die "cannot empty Redis database $REDIS_DB"
LIVEFLOW_MYSQL_URL=$MYSQL_URL "$BIN/liveflow-migrate" --create-database --dir "$ROOT/sql" \
        >"$WORK/log/migrate.log" 2>&1 || {
        log_tail "$WORK/log/migrate.log"
        die "migrations failed"
}
[ "$(sql "SELECT COUNT(*) FROM recharge")" = 0 ] || die "$DB.recharge is not empty"

RUN=$(date +%s)$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
SECRET_RAW=$(openssl rand -base64 32) || die "openssl rand failed"
SECRET=whsec_$SECRET_RAW

echo
echo "money: $TIPS tips at $RATE/s offered (wrk -t$THREADS -c$CONNS) through receiver → live.reward →" \
        "reward-sync, settlement, stats; $ANCHORS anchors/rooms, $AUDIENCES audiences; log level $LOG_LEVEL"
[ -z "$WORKER_ENV" ] || echo "  reward-sync, settlement and stats started with: $WORKER_ENV"
[ -z "$RECEIVER_ENV" ] || echo "  the receiver started with: $RECEIVER_ENV"

# Some anchors get their own revenue share (odd ratios, so floor() matters); the others
# the default 5000 bp.
seed_shares() {
        sql "INSERT INTO revenue_share (anchor_id, effective_at, ratio_bp) VALUES $(
                awk -v run="$RUN" -v n="$ANCHORS" 'BEGIN { for (a = 0; a < n; a += 2)
                        printf "%s(\"anchor-%s-%d\", NOW(3) - INTERVAL 1 DAY, %d)", (a ? "," : ""), run, a, 3001 + (a * 137) % 5000 }')" ||
                die "cannot write revenue_share"
}
seed_shares

# ------------------------------------------------------------------ the workers

# spawn_role NAME ADMIN_PORT COMMAND...: NAME.pid / NAME.log under $WORK.
spawn_role() {
        local name=$1 port=$2
        shift 2
        spawn "$WORK/pid/$name.pid" "$WORK/log/$name.log" env LIVEFLOW_KAFKA_BOOTSTRAP="$KAFKA" \
                LIVEFLOW_MYSQL_URL="$MYSQL_URL" LIVEFLOW_REDIS_URL="$REDIS_URL" LIVEFLOW_ADMIN_PORT="$port" \
                LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000 LIVEFLOW_LOG_LEVEL="$LOG_LEVEL" "$@"
}

two_free_ports
RECEIVER_PORT=$PORT_A
RECEIVER_ADMIN=$PORT_B
# shellcheck disable=SC2086 # BENCH_TIPS_RECEIVER_ENV is split into words on purpose
spawn_role receiver "$RECEIVER_ADMIN" $RECEIVER_ENV LIVEFLOW_HTTP_ADDR=127.0.0.1 LIVEFLOW_HTTP_PORT="$RECEIVER_PORT" \
        LIVEFLOW_HMAC_SECRET="$SECRET" LIVEFLOW_TENCENT_KEY="$(openssl rand -hex 16)" \
        LIVEFLOW_SRS_TOKEN="$(openssl rand -hex 16)" "$BIN/liveflow-receiver"
# /readyz comes before the group join (a rebalance round of the dev broker takes
# session.timeout.ms - 1 s): the tips must not wait for it, so wait until each role holds
# partitions and the count has not moved for 1 s.
assigned() {
        curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null |
                awk '$1 == "liveflow_consumer_assigned_partitions" || index($1, "liveflow_consumer_assigned_partitions{") == 1 { n += $NF }
                     END { printf "%d\n", n }'
}
wait_assigned() {
        local name=$1 port=$2 deadline prev=-1 since n
        deadline=$(($(now_ms) + 60000))
        since=$(now_ms)
        while :; do
                n=$(assigned "$port")
                [ "$n" != "$prev" ] && since=$(now_ms)
                prev=$n
                [ "$n" -gt 0 ] && [ $(($(now_ms) - since)) -ge 1000 ] && break
                [ "$(now_ms)" -lt "$deadline" ] || die "$name holds no partition after 60 s (see $WORK/log/$name.log)"
                sleep 0.1
        done
        ASSIGNED="$ASSIGNED $name=$n"
}

# applied PORT: the records the worker on admin port PORT has applied and committed so far
# (liveflow_consumer_records_total, outcome "applied", every role of the process), or -1. The
# polls below watch this rather than counting rows: a COUNT(*) of a growing table every 100 ms
# is MariaDB work of the bench's own, in the very span whose latency and CPU it measures. The
# rows are counted once the workers say they are done.
applied() {
        curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null |
                awk 'index($1, "liveflow_consumer_records_total{") == 1 && index($1, "outcome=\"applied\"") { n += $NF; seen = 1 }
                     END { printf "%d\n", seen ? n : -1 }'
}

# start_workers: reward-sync, settlement and stats, back once each holds its partitions.
start_workers() {
        local t0
        two_free_ports
        SYNC_ADMIN=$PORT_A
        SETTLE_ADMIN=$PORT_B
        # shellcheck disable=SC2086 # BENCH_TIPS_WORKER_ENV is split into words on purpose
        spawn_role consumer-reward-sync "$SYNC_ADMIN" $WORKER_ENV "$BIN/liveflow-consumer" reward-sync
        # shellcheck disable=SC2086
        spawn_role settlement "$SETTLE_ADMIN" $WORKER_ENV "$BIN/liveflow-settlement"
        STATS_ADMIN=$(free_port) || die "no free port"
        while [ "$STATS_ADMIN" = "$SYNC_ADMIN" ] || [ "$STATS_ADMIN" = "$SETTLE_ADMIN" ] ||
                [ "$STATS_ADMIN" = "$RECEIVER_PORT" ] || [ "$STATS_ADMIN" = "$RECEIVER_ADMIN" ]; do
                STATS_ADMIN=$(free_port) || die "no free port"
        done
        # shellcheck disable=SC2086
        spawn_role stats "$STATS_ADMIN" $WORKER_ENV "$BIN/liveflow-stats"
        t0=$(now_ms)
        wait_ready consumer-reward-sync "$(cat "$WORK/pid/consumer-reward-sync.pid")" "$SYNC_ADMIN"
        wait_ready settlement "$(cat "$WORK/pid/settlement.pid")" "$SETTLE_ADMIN"
        wait_ready stats "$(cat "$WORK/pid/stats.pid")" "$STATS_ADMIN"
        ASSIGNED=""
        wait_assigned consumer-reward-sync "$SYNC_ADMIN"
        wait_assigned settlement "$SETTLE_ADMIN"
        wait_assigned stats "$STATS_ADMIN"
        echo "  reward-sync, settlement, stats ready and assigned ($ASSIGNED partitions) in $(($(now_ms) - t0)) ms"
}

wait_ready receiver "$(cat "$WORK/pid/receiver.pid")" "$RECEIVER_ADMIN"
if [ "$BACKLOG" = 1 ]; then
        echo "  backlog: the workers start once every tip is in live.reward; their rates are drain rates"
else
        start_workers
fi

# ------------------------------------------------------------------ the tips

# Generated and signed just before the run (5-minute tolerance). Prints "count sum".
REQS=$WORK/rewards.tsv
gen=$(MONEY_SECRET=$SECRET_RAW "$PY" - "$REQS" "$TIPS" "$RUN" "$ANCHORS" "$AUDIENCES" <<'EOF'
import base64, hashlib, hmac, json, os, random, sys, time
out, n, run, anchors, audiences = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
key = base64.b64decode(os.environ["MONEY_SECRET"])
rnd = random.Random(int(run))
now_s = int(time.time())
total = 0
genders = ["male", "female", "unknown"]
with open(out, "w") as f:
    for i in range(n):
        a = rnd.randrange(anchors)
        amount = rnd.choice([1, 7, 10, 99, 100, 520, 1314, 9999]) * rnd.randint(1, 9) + rnd.randrange(3)
        total += amount
        trace = "tip-%s-%07d" % (run, i)
        body = json.dumps({
            "trace_id": trace,
            "audience_id": "aud-%s-%d" % (run, rnd.randrange(audiences)),
            "anchor_id": "anchor-%s-%d" % (run, a),
            "room_id": "room-%s-%d" % (run, a),
            "amount": amount,
            "gift_id": "gift-%d" % rnd.randrange(20),
            "gift_count": rnd.randint(1, 5),
            "ts": now_s * 1000 + i % 1000,
            "audience_gender": genders[rnd.randrange(3)],
            "anchor_gender": genders[a % 3],
            "audience_type": "registered" if rnd.randrange(4) else "guest",
        }, separators=(",", ":"))
        wid = "msg_%s_%07d" % (run, i)
        ts = str(now_s)
        sig = base64.b64encode(hmac.new(key, ("%s.%s.%s" % (wid, ts, body)).encode(), hashlib.sha256).digest()).decode()
        f.write("%s\t%s\t%s\tv1,%s\t%s\n" % (trace, wid, ts, sig, body))
print(n, total)
EOF
) || die "the generator failed"
SENT_SUM=${gen#* }
echo "  generated and signed $TIPS tips in $REQS, sum of amounts $SENT_SUM"

URL=http://127.0.0.1:$RECEIVER_PORT/v1/rewards
OUT=$WORK/log/wrk.out
DONE_DIR=$WORK/done
cap=$((60 + TIPS * 3 / RATE))
t_load0=$(now_ms)
WORKERS="consumer-reward-sync settlement stats"
mark_workers() {
        local n
        for n in $WORKERS; do usage_mark "$n"; done
        machine_mark
}
# MariaDB's own counters of waits (row locks, free pages, the redo log) over the live phase,
# printed with the timeline: a stall of MariaDB's shows there, not in the workers' CPU.
innodb_waits() {
        sql "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_row_lock_waits', 'Innodb_row_lock_time',
                'Innodb_row_lock_time_max', 'Innodb_buffer_pool_wait_free', 'Innodb_log_waits',
                'Innodb_buffer_pool_pages_flushed', 'Innodb_checkpoint_age')" >"$WORK/innodb-$1.tsv" 2>/dev/null
}
innodb_waits before
[ "$BACKLOG" = 1 ] || mark_workers
BENCH_REWARDS_FILE=$REQS BENCH_THREADS=$THREADS BENCH_RATE=$RATE BENCH_DONE_DIR=$DONE_DIR \
        wrk -t "$THREADS" -c "$CONNS" -d "$((cap + 10))s" --timeout 10s -s "$LUA" "$URL" >"$OUT" 2>&1 &
WRK_PID=$!
BG_PIDS=$WRK_PID
deadline=$((t_load0 + cap * 1000))
sleep $((TIPS / RATE))
while [ "$(ls "$DONE_DIR" | grep -c '^thread-')" -lt "$THREADS" ] && pid_alive "$WRK_PID" &&
        [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.05
done
WRK_CLEAN=0
[ "$(ls "$DONE_DIR" | grep -c '^thread-')" -ge "$THREADS" ] && WRK_CLEAN=1
kill -INT "$WRK_PID" 2>/dev/null
wait "$WRK_PID"
BG_PIDS=""
t_load1=$(now_ms)
grep -q '^BENCH errors' "$OUT" || die "wrk failed (see $OUT): $(tail -n 3 "$OUT")"
[ "$WRK_CLEAN" -eq 1 ] || mismatch "wrk did not get every answer within $cap s: $(grep '^BENCH sent' "$OUT")"
wv() { sed -n "s/^BENCH.* $1=\([0-9][0-9]*\).*/\1/p" "$OUT" | head -n 1; }
W_SENT=$(wv sent)
W_OK=$(wv ok)
W_WIN=$(wv window_us)
OTHER=$(sed -n 's/^BENCH status \([0-9]*\) \([0-9]*\)$/\1:\2/p' "$OUT" | tr '\n' ' ' | sed 's/ $//')
ACHIEVED=$(awk -v n="$W_SENT" -v us="$W_WIN" 'BEGIN { if (us > 0) printf "%.0f", n * 1e6 / us; else print "n/a" }')
echo "  wrk: sent=$W_SENT 200s=$W_OK other=${OTHER:-none} in $((W_WIN / 1000)) ms (achieved $ACHIEVED/s);" \
        "ack latency p50 $(awk -v v="$(wv p50)" 'BEGIN { printf "%.1f", v / 1000 }') ms" \
        "p99 $(awk -v v="$(wv p99)" 'BEGIN { printf "%.1f", v / 1000 }') ms;" \
        "socket errors: $(sed -n 's/^BENCH errors //p' "$OUT")"
[ "$W_SENT" -eq "$TIPS" ] || mismatch "wrk sent $W_SENT of $TIPS tips"
[ "$W_OK" -eq "$TIPS" ] || mismatch "$W_OK of $TIPS tips answered 200"
[ "$BACKLOG" = 1 ] && start_workers && mark_workers
ACKS=$WORK/acks.tsv
cat "$DONE_DIR"/acks-*.tsv 2>/dev/null | awk -F'\t' '$2 == 200' | sort >"$ACKS"
[ "$(wc -l <"$ACKS")" -eq "$W_OK" ] || mismatch "$(wc -l <"$ACKS") 200s matched to a tip by X-Request-Id, wrk counted $W_OK"

# ------------------------------------------------------------------ drain

# Polls the workers' /metrics until each has applied every tip answered 200 (or nothing moved
# for 60 s), then counts the rows: recharge and settlement_detail hold every tip, and stats has
# counted them. Should a worker's count run ahead of its rows (records of other topics), the
# rows are counted again every 100 ms until they are there or stop moving.
EXPECT=$W_OK
last_move=$(now_ms)
prev=""
t_sync_all=""
t_settle_all=""
while :; do
        counts="$(applied "$SYNC_ADMIN") $(applied "$SETTLE_ADMIN") $(applied "$STATS_ADMIN")"
        set -- $counts
        now=$(now_ms)
        [ -z "$t_sync_all" ] && [ "$1" -ge "$EXPECT" ] && t_sync_all=$now
        [ -z "$t_settle_all" ] && [ "$2" -ge "$EXPECT" ] && t_settle_all=$now
        [ "$1" -ge "$EXPECT" ] && [ "$2" -ge "$EXPECT" ] && [ "$3" -ge "$EXPECT" ] && break
        [ "$1" -lt 0 ] || [ "$2" -lt 0 ] || [ "$3" -lt 0 ] && break # no metrics: count rows
        [ "$counts" != "$prev" ] && last_move=$now
        prev=$counts
        [ $((now - last_move)) -lt 60000 ] || break
        sleep 0.1
done
last_move=$(now_ms)
prev=""
while :; do
        counts=$(sql "SELECT (SELECT COUNT(*) FROM recharge), (SELECT COUNT(*) FROM settlement_detail),
                (SELECT COALESCE(SUM(reward_count), 0) FROM hourly_reward_stats)") || die "cannot count the rows"
        set -- $counts
        now=$(now_ms)
        [ -z "$t_sync_all" ] && [ "$1" -ge "$EXPECT" ] && t_sync_all=$now
        [ -z "$t_settle_all" ] && [ "$2" -ge "$EXPECT" ] && t_settle_all=$now
        [ "$1" -ge "$EXPECT" ] && [ "$2" -ge "$EXPECT" ] && [ "$3" -ge "$EXPECT" ] && break
        [ "$counts" != "$prev" ] && last_move=$now
        prev=$counts
        [ $((now - last_move)) -lt 60000 ] || break
        sleep 0.1
done
N_SYNC=$1
N_SETTLE=$2
innodb_waits after
N_STATS=$3
ms_after() { [ -n "$1" ] && echo "$(($1 - t_load1)) ms after the last answer" || echo "never"; }
echo "  rows: recharge $N_SYNC ($(ms_after "$t_sync_all")), settlement_detail $N_SETTLE" \
        "($(ms_after "$t_settle_all")), hourly_reward_stats count $N_STATS"
[ "$N_SYNC" -eq "$EXPECT" ] || mismatch "recharge holds $N_SYNC tips, $EXPECT were answered 200"
[ "$N_SETTLE" -eq "$EXPECT" ] || mismatch "settlement_detail holds $N_SETTLE tips, $EXPECT were answered 200"
[ "$N_STATS" -eq "$EXPECT" ] || mismatch "hourly_reward_stats counts $N_STATS tips, $EXPECT were answered 200"
USAGE=""
for n in $WORKERS; do
        USAGE="$USAGE${USAGE:+; }${n#consumer-} $(usage_of "$n")"
done
echo "  workers from the first tip to the last row: $USAGE"
echo "  the machine over the same span: $(machine_of)"

# ------------------------------------------------------------------ throughput

# rate TABLE: rows/s from the first row's created_at to the last one's.
rate_of() {
        sql "SELECT CASE WHEN COUNT(*) > 1 AND MAX(created_at) > MIN(created_at)
                THEN ROUND((COUNT(*) - 1) / TIMESTAMPDIFF(MICROSECOND, MIN(created_at), MAX(created_at)) * 1e6)
                ELSE 'n/a' END, TIMESTAMPDIFF(MICROSECOND, MIN(created_at), MAX(created_at)) DIV 1000 FROM $1"
}
if [ "$BACKLOG" = 1 ]; then
        BOUND="draining a backlog of $W_OK tips"
else
        BOUND="bounded by the $ACHIEVED/s offered"
fi
set -- $(rate_of recharge)
SYNC_RATE=$1
SYNC_SPAN=$2
set -- $(rate_of settlement_detail)
SETTLE_RATE=$1
SETTLE_SPAN=$2
echo "  throughput (first to last row's created_at): reward-sync $SYNC_RATE tips/s over $SYNC_SPAN ms," \
        "settlement $SETTLE_RATE tips/s over $SETTLE_SPAN ms ($BOUND)"

# ------------------------------------------------------------------ delays

# Per tip, in ms: ack and send from wrk; received_at, recharge and settlement_detail
# created_at from MariaDB (UTC session, Unix microseconds).
ROWS=$WORK/rows.tsv
# live_events has no key on trace_id: its receive times are read apart and joined here.
sql "SELECT trace_id, ROUND(UNIX_TIMESTAMP(received_at) * 1000000) FROM live_events
        WHERE consumer = 'settlement'" | sort -u -k1,1 >"$WORK/received.tsv" || die "cannot read the receive times"
sql "SELECT d.trace_id, ROUND(UNIX_TIMESTAMP(d.created_at) * 1000000), ROUND(UNIX_TIMESTAMP(r.created_at) * 1000000)
        FROM settlement_detail d JOIN recharge r ON r.trace_id = d.trace_id" | sort |
        join -t "$(printf '\t')" -a 1 -e 0 -o 1.1,1.2,1.3,2.2 - "$WORK/received.tsv" >"$ROWS" ||
        die "cannot read the rows"
# joined: trace ack_us send_us settled_us synced_us recv_us
join -t "$(printf '\t')" -o 1.1,1.3,1.4,2.2,2.3,2.4 "$ACKS" "$ROWS" >"$WORK/joined.tsv"
NJ=$(wc -l <"$WORK/joined.tsv")
[ "$NJ" -eq "$EXPECT" ] || mismatch "$NJ tips have a 200, a recharge and a settlement_detail row; $EXPECT expected"
awk -F'\t' '{ printf "%.3f\n", ($4 - $2) / 1000 }' "$WORK/joined.tsv" >"$WORK/d-balance"
awk -F'\t' '{ printf "%.3f\n", ($5 - $2) / 1000 }' "$WORK/joined.tsv" >"$WORK/d-recharge"
awk -F'\t' '$6 > 0 { printf "%.3f\n", ($4 - $6) / 1000 }' "$WORK/joined.tsv" >"$WORK/d-recv"
awk -F'\t' '$6 > 0 { printf "%.3f\n", ($2 - $6) / 1000 }' "$WORK/joined.tsv" >"$WORK/d-ack"
NRECV=$(wc -l <"$WORK/d-recv")
[ "$NRECV" -eq "$NJ" ] || note "$((NJ - NRECV)) tips have no live_events row of settlement (receive time unknown)"
fmt_p() { printf 'p50 %s ms p99 %s ms max %s ms' "$(pct "$1" 50)" "$(pct "$1" 99)" "$(pct "$1" 100)"; }
B50=$(pct "$WORK/d-balance" 50)
B99=$(pct "$WORK/d-balance" 99)
echo "  200 → settlement_detail/balance insert (settlement_detail.created_at − wrk's 200): $(fmt_p "$WORK/d-balance")"
echo "  200 → recharge insert (recharge.created_at − wrk's 200):                 $(fmt_p "$WORK/d-recharge")"
echo "  receive → settlement insert (created_at − live_events.received_at):      $(fmt_p "$WORK/d-recv")"
echo "  receive → 200 at wrk (the ack, for reference):                           $(fmt_p "$WORK/d-ack")"
# The delays over time, per 100 ms of acks from the first one: a stall (every tip acked in it
# waits for the same slow batch) and queueing (delays that grow while the offered rate is above
# what the workers keep up with) look alike in a percentile and apart here. Always written to
# timeline.tsv (ms since the first 200, UTC time, tips, max 200 → balance, max 200 → recharge,
# max receive → 200); BENCH_TIPS_TIMELINE=1 prints the worst buckets and the first second apart.
TIMELINE=$WORK/timeline.tsv
awk -F'\t' 'NR == 1 || $2 < t0 { t0 = $2 } { a[NR] = $2; s[NR] = $4; y[NR] = $5; r[NR] = $6 }
        END { for (i = 1; i <= NR; i++) { b = int((a[i] - t0) / 100000); n[b]++; if (b > last) last = b
                        d = (s[i] - a[i]) / 1000; if (!(b in ms) || d > ms[b]) ms[b] = d
                        d = (y[i] - a[i]) / 1000; if (!(b in my) || d > my[b]) my[b] = d
                        d = r[i] > 0 ? (a[i] - r[i]) / 1000 : 0; if (!(b in mr) || d > mr[b]) mr[b] = d }
              for (b = 0; b <= last; b++) if (b in n) printf "%d\t%.3f\t%d\t%.1f\t%.1f\t%.1f\n",
                        b * 100, (t0 + b * 100000) / 1e6, n[b], ms[b], my[b], mr[b] }' "$WORK/joined.tsv" >"$TIMELINE"
if [ "${BENCH_TIPS_TIMELINE:-0}" = 1 ]; then
        echo "  timeline (per 100 ms of 200s, from the first; all of it in $TIMELINE): the 8 worst by 200 → balance"
        sort -t "$(printf '\t')" -k4,4nr "$TIMELINE" | head -n 8 | sort -n |
                awk -F'\t' '{ printf "    +%5d ms (%s UTC) %4d tips: 200 → balance max %7.1f ms, → recharge max %7.1f ms, receive → 200 max %5.1f ms\n",
                        $1, sprintf("%02d:%02d:%06.3f", int($2 % 86400 / 3600), int($2 % 3600 / 60), $2 % 60), $3, $4, $5, $6 }'
        awk -F'\t' '{ k = $1 < 1000 ? "first second" : "after it"; if ($4 > m[k]) m[k] = $4; n[k] += $3 }
                END { printf "    first second of 200s: %d tips, 200 → balance max %.1f ms; after it: %d tips, max %.1f ms\n",
                        n["first second"], m["first second"], n["after it"], m["after it"] }' "$TIMELINE"
        awk -F'\t' 'NR == FNR { b[$1] = $2; next } { d = $1 ~ /_max$|_age$/ ? $2 : $2 - b[$1]
                sub(/^Innodb_/, "", $1); printf "%s%s %s", (n++ ? ", " : "    MariaDB over the live phase: "), $1, d }
                END { if (n) print "" }' "$WORK/innodb-before.tsv" "$WORK/innodb-after.tsv"
fi
NEG=$(awk '$1 < 0' "$WORK/d-balance" | wc -l)
[ "$NEG" -eq 0 ] || note "$NEG tips have settlement_detail.created_at before wrk saw their 200" \
        "(the insert can precede the client reading the 200: the answer is sent after the ack, and the" \
        "worker may consume the record first)"

# ------------------------------------------------------------------ money

# The receiver may have refused some tips: the sum expected is that of the tips answered 200.
ACK_SUM=$(awk -F'\t' 'NR == FNR { ok[$1] = 1; next } ($1 in ok) { if (match($5, /"amount":[0-9]+/)) s += substr($5, RSTART + 9, RLENGTH - 9) } END { printf "%d\n", s }' \
        "$ACKS" "$REQS")
# Reconcile over the run: from 10 minutes before the tips' ts to 10 minutes after now (it
# widens to whole hours itself; its default range would leave the current hour out).
FROM_S=$(($(head -n 1 "$REQS" | cut -f3) - 600))

# check_money: the sums in $DB, then reconcile against $DB and $REDIS_URL; sets SUMS, RECON.
check_money() {
        local to_s rc
        set -- $(sql "SELECT (SELECT COALESCE(SUM(amount), 0) FROM recharge),
                (SELECT COALESCE(SUM(amount), 0) FROM settlement_detail),
                (SELECT COALESCE(SUM(anchor_amount), 0) FROM settlement_detail),
                (SELECT COUNT(*) FROM settlement_detail WHERE anchor_amount + platform_amount <> amount),
                (SELECT COUNT(*) FROM settlement_detail d LEFT JOIN revenue_share s ON s.anchor_id = d.anchor_id
                        WHERE d.anchor_amount <> FLOOR(d.amount * COALESCE(s.ratio_bp, 5000) / 10000)),
                (SELECT COALESCE(SUM(total_amount), 0) FROM settlement),
                (SELECT COALESCE(SUM(available_amount), 0) FROM settlement),
                (SELECT COALESCE(SUM(amount_sum), 0) FROM hourly_reward_stats),
                (SELECT COUNT(*) FROM recharge r LEFT JOIN settlement_detail d ON d.trace_id = r.trace_id
                        WHERE d.trace_id IS NULL OR d.amount <> r.amount OR d.anchor_id <> r.anchor_id),
                (SELECT COALESCE(SUM(amount), 0) FROM stats_tip)")
        S_RECH=$1 S_DET=$2 S_ANCH=$3 BAD_SPLIT=$4 BAD_RATIO=$5 S_TOTAL=$6 S_AVAIL=$7 S_HOURLY=$8 BAD_PAIR=$9
        shift 9
        S_STIP=$1
        echo "  sums: sent $SENT_SUM (answered 200: $ACK_SUM), recharge $S_RECH, settlement_detail $S_DET," \
                "hourly_reward_stats $S_HOURLY, stats_tip $S_STIP; anchors' share $S_ANCH = settlement total $S_TOTAL" \
                "(available $S_AVAIL)"
        SUMS=OK
        [ "$S_RECH" = "$ACK_SUM" ] && [ "$S_DET" = "$ACK_SUM" ] && [ "$S_HOURLY" = "$ACK_SUM" ] &&
                [ "$S_STIP" = "$ACK_SUM" ] || SUMS=MISMATCH
        [ "$ACK_SUM" = "$SENT_SUM" ] || SUMS=MISMATCH
        [ "$S_ANCH" = "$S_TOTAL" ] && [ "$S_ANCH" = "$S_AVAIL" ] || SUMS=MISMATCH
        [ "$BAD_SPLIT" = 0 ] || { SUMS=MISMATCH; echo "  $BAD_SPLIT rows with anchor_amount + platform_amount <> amount"; }
        [ "$BAD_RATIO" = 0 ] || { SUMS=MISMATCH; echo "  $BAD_RATIO rows whose anchor_amount is not floor(amount × ratio_bp / 10000)"; }
        [ "$BAD_PAIR" = 0 ] || { SUMS=MISMATCH; echo "  $BAD_PAIR recharge rows without an equal settlement_detail row"; }
        [ "$SUMS" = OK ] || mismatch "the money does not add up in $DB (see above)"

        to_s=$(($(date +%s) + 600))
        LIVEFLOW_MYSQL_URL=$MYSQL_URL LIVEFLOW_REDIS_URL=$REDIS_URL "$BIN/liveflow-settlement" reconcile \
                --from "$FROM_S" --to "$to_s" >"$WORK/log/reconcile-$DB.out" 2>&1
        rc=$?
        if [ "$rc" -eq 0 ]; then
                RECON=OK
        else
                RECON="FAILED (exit $rc)"
                mismatch "liveflow-settlement reconcile --from $FROM_S --to $to_s on $DB exited $rc:"
                sed 's/^/    /' "$WORK/log/reconcile-$DB.out" | head -n 40
        fi
        echo "  reconcile --from $FROM_S --to $to_s ($DB, Redis database ${REDIS_URL##*/}): exit $rc"
}
check_money
for n in receiver consumer-reward-sync settlement stats; do
        echo "  $n log: $(grep -c ' ERROR trace=' "$WORK/log/$n.log") ERROR, $(grep -c ' WARN trace=' "$WORK/log/$n.log") WARN lines"
done
stop_pidfiles 15 "$WORK/pid/consumer-reward-sync.pid" "$WORK/pid/settlement.pid" "$WORK/pid/stats.pid" \
        2>>"$WORK/log/stop.log"

# ------------------------------------------------------------------ the ceiling and the drain

. "$ROOT/ops/bench/money_drain.sh"

[ "$BACKLOG" = 1 ] && MODE=", backlog drained" || MODE=""
echo "money: $TIPS tips at $RATE/s offered (achieved $ACHIEVED/s$MODE): 200s=$W_OK${OTHER:+ other=$OTHER};" \
        "reward-sync $SYNC_RATE tips/s, settlement $SETTLE_RATE tips/s; 200 → balance p50 $B50 ms p99 $B99 ms;" \
        "${DRAIN_SUMMARY:+drain alone: $DRAIN_SUMMARY of the ceiling; }sums $SUMS; reconcile $RECON"
if [ "$FAILED" -ne 0 ]; then
        note "correctness failure: see MISMATCH above"
        exit 3
fi
exit 0
