#!/bin/sh
# ops/bench/audience.sh: the audience role's benchmark. BENCH_AUDIENCE_EVENTS app events
# (liveflow-bench-audience: per viewer enter, heartbeat, chat, like, heartbeat, exit over
# BENCH_AUDIENCE_ROOMS live rooms) are put on live.viewer and live.interaction first, then
# liveflow-consumer audience is started and timed until every event is in its ledger: the
# figure is the events/s it drains a backlog at (visits, watch history, session figures and the
# Redis projection included). It then checks the figures add up: every room back to 0 online,
# one history row and one view per viewer, the chats and likes sent.
#
# Run by ops/bench/run.sh (make bench) with AUDIENCE_STACK_DIR set to its temp directory (its
# MariaDB, Redis and dev broker are reused, with a database of its own, liveflow_audience; the
# consumer reads live.viewer and live.interaction from the start, so they must hold no other
# app events: nothing else in make bench produces to them).
# Standalone it starts its own with tests/fixtures/services.sh and stops them at the end.
#
# Environment: BENCH_AUDIENCE_EVENTS (60000), BENCH_AUDIENCE_ROOMS (200), BENCH_LOG_LEVEL (info),
# BENCH_AUDIENCE_ENV (extra VAR=VALUE words for the consumer, e.g. LIVEFLOW_BATCH_MAX=1000),
# BENCH_KEEP=1 (standalone: keep the temp directory), BUILD (build).
#
# Exit 0 after printing the figures; 1 when the bench could not run; 3 when the figures do not
# add up.
set -u
export LC_ALL=C

LF_PROG=audience
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/ops/lib.sh"

case "${BUILD:-build}" in
/*) BUILD=${BUILD:-build} ;;
*) BUILD=$ROOT/${BUILD:-build} ;;
esac
BIN=$BUILD/bin
EVENTS=${BENCH_AUDIENCE_EVENTS:-60000}
ROOMS=${BENCH_AUDIENCE_ROOMS:-200}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
CONSUMER_ENV=${BENCH_AUDIENCE_ENV:-}
FAILED=0
TMP=""
OWN_STACK=0
SERVICES_UP=0
WORK=""

die() {
        note "$*"
        exit 1
}

mismatch() {
        echo "  MISMATCH: $*"
        FAILED=1
}

for v in $(env | sed -n 's/^\(LIVEFLOW_[A-Za-z0-9_]*\)=.*/\1/p'); do
        unset "$v"
done

cleanup() {
        local rc=$?
        trap - EXIT INT TERM HUP
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
        exit "$rc"
}
trap cleanup EXIT
trap 'note "interrupted; stopping what was started"; exit 130' INT TERM HUP

sql() {
        MYSQL_PWD=$LIVEFLOW_TEST_MYSQL_PASSWORD mariadb --no-defaults -h 127.0.0.1 \
                -P "$LIVEFLOW_TEST_MYSQL_PORT" -u liveflow --batch --skip-column-names "$DB" \
                -e "SET time_zone = '+00:00'; $1"
}

case "$EVENTS" in '' | *[!0-9]*) die "BENCH_AUDIENCE_EVENTS: \"$EVENTS\" is not a number" ;; esac
case "$ROOMS" in '' | *[!0-9]*) die "BENCH_AUDIENCE_ROOMS: \"$ROOMS\" is not a number" ;; esac
[ "$EVENTS" -ge 6 ] && [ "$ROOMS" -ge 1 ] || die "BENCH_AUDIENCE_EVENTS >= 6, BENCH_AUDIENCE_ROOMS >= 1"
for b in liveflow-consumer liveflow-devbroker liveflow-migrate liveflow-bench-audience; do
        [ -x "$BIN/$b" ] || die "$BIN/$b is missing; run make BUILD=... all bench-tools"
done

if [ -n "${AUDIENCE_STACK_DIR:-}" ]; then
        TMP=$AUDIENCE_STACK_DIR
        [ -f "$TMP/env" ] || die "$TMP/env is missing (AUDIENCE_STACK_DIR must be a services.sh directory)"
        WORK=$TMP/audience
        mkdir -p "$WORK/pid" "$WORK/log" || die "cannot write to $WORK"
else
        OWN_STACK=1
        TMP=$(mktemp -d /tmp/lfa.XXXXXX) || die "mktemp failed"
        WORK=$TMP/audience
        mkdir -p "$WORK/pid" "$WORK/log" || die "cannot write to $TMP"
        BUILD=$BUILD sh "$ROOT/tests/fixtures/services.sh" start "$TMP" 2>>"$WORK/log/services.log" || {
                log_tail "$WORK/log/services.log"
                die "the services did not start"
        }
        SERVICES_UP=1
fi
. "$TMP/env"
DB=liveflow_audience
MYSQL_URL=mysql://liveflow:$LIVEFLOW_TEST_MYSQL_PASSWORD@127.0.0.1:$LIVEFLOW_TEST_MYSQL_PORT/$DB
KAFKA=$LIVEFLOW_TEST_KAFKA_BOOTSTRAP
LIVEFLOW_MYSQL_URL=$MYSQL_URL "$BIN/liveflow-migrate" --create-database --dir "$ROOT/sql" \
        >"$WORK/log/migrate.log" 2>&1 || {
        log_tail "$WORK/log/migrate.log"
        die "migrations failed"
}
RUN=a$(date +%s)$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
VIEWERS=$((EVENTS / 6))
EVENTS=$((VIEWERS * 6))

# The rooms are live, one session each.
sql "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, status, started_at,
        last_event_at) VALUES $(awk -v run="$RUN" -v n="$ROOMS" 'BEGIN { for (r = 0; r < n; r++)
        printf "%s(\"%ss%d\", \"%sa%d\", \"%sr%d\", %d, \"tencent\", \"live\", NOW(3) - INTERVAL 2 HOUR, NOW(3))",
        (r ? "," : ""), run, r, run, r, run, r, 900000000 + r }')" || die "cannot write live_streams"

echo
echo "audience: $EVENTS app events ($VIEWERS viewers x enter, heartbeat, chat, like, heartbeat, exit)" \
        "over $ROOMS rooms, drained from a backlog by one liveflow-consumer audience; log level $LOG_LEVEL"
[ -z "$CONSUMER_ENV" ] || echo "  consumer started with: $CONSUMER_ENV"
"$BIN/liveflow-bench-audience" "$KAFKA" "$EVENTS" "$ROOMS" "$RUN" >"$WORK/load.out" 2>"$WORK/log/load.log" || {
        log_tail "$WORK/log/load.log"
        die "the events could not be produced"
}
echo "  produced: $(cat "$WORK/load.out")"

ADMIN=$(free_port) || die "no free port"
t0=$(now_ms)
# Word splitting of CONSUMER_ENV is intended: VAR=VALUE words.
# shellcheck disable=SC2086
spawn "$WORK/pid/consumer-audience.pid" "$WORK/log/consumer-audience.log" env \
        LIVEFLOW_KAFKA_BOOTSTRAP="$KAFKA" LIVEFLOW_MYSQL_URL="$MYSQL_URL" \
        LIVEFLOW_REDIS_URL="$LIVEFLOW_TEST_REDIS_URL" LIVEFLOW_ADMIN_PORT="$ADMIN" \
        LIVEFLOW_GROUP_ID="bench.audience.$RUN" LIVEFLOW_KAFKA_PROP_AUTO_OFFSET_RESET=earliest \
        LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000 LIVEFLOW_LOG_LEVEL="$LOG_LEVEL" $CONSUMER_ENV \
        "$BIN/liveflow-consumer" audience
first=""
seen=0
deadline=$((t0 + 600000))
while [ "$(now_ms)" -lt "$deadline" ]; do
        seen=$(sql "SELECT COUNT(*) FROM audience_event_seen") || seen=0
        [ -z "$first" ] && [ "$seen" -gt 0 ] && first=$(now_ms)
        [ "$seen" -ge "$EVENTS" ] && break
        sleep 0.2
done
t1=$(now_ms)
[ "$seen" -ge "$EVENTS" ] || {
        log_tail "$WORK/log/consumer-audience.log"
        die "only $seen of $EVENTS events applied within 10 minutes"
}
span=$((t1 - first))
[ "$span" -gt 0 ] || span=1
echo "  drained: $EVENTS events in $span ms from the first applied = $((EVENTS * 1000 / span)) events/s" \
        "(startup and group join: $((first - t0)) ms)"

# ------------------------------------------------------------------ does it add up?
got=$(sql "SELECT CONCAT_WS('/', SUM(views), SUM(unique_viewers), SUM(chats), SUM(likes),
        SUM(watch_visits)) FROM live_statistics WHERE session_id >= 900000000")
want="$VIEWERS/$VIEWERS/$VIEWERS/$((VIEWERS * 3))/$VIEWERS"
[ "$got" = "$want" ] || mismatch "views/uv/chats/likes/closed visits $got, want $want"
got=$(sql "SELECT COUNT(*) FROM live_watch_history")
[ "$got" = "$VIEWERS" ] || mismatch "watch history rows $got, want $VIEWERS"
got=$(sql "SELECT COALESCE(SUM(online), 0) FROM audience_room")
[ "$got" = 0 ] || mismatch "rooms online at the end: $got, want 0"
got=$(sql "SELECT COUNT(*) FROM live_watch_history WHERE seconds <> 300")
[ "$got" = 0 ] || mismatch "$got visits not 300 s long (enter to exit is 5 minutes)"
[ "$FAILED" -eq 0 ] && echo "  checked: every room back to 0 online, one view, history row and 300 s visit per" \
        "viewer, the chats and likes sent"
[ "$FAILED" -eq 0 ] || exit 3
exit 0
