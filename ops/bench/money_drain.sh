# ops/bench/money_drain.sh: the money benchmark's ceiling and drain (ops/bench/money.sh sources
# it after the live phase; the variables and helpers are money.sh's): MariaDB's own INSERT of as
# many recharge rows, then the same tips read again by each worker alone, each against the
# ceiling measured just before it.
# shellcheck shell=sh

# ------------------------------------------------------------------ the ceiling

# ceiling: MariaDB's own multi-row INSERTs of as many recharge rows, 500 a statement, into a
# scratch copy of the table (its keys too), timed by the server between the first and last
# statement; sets CEILING (rows/s). Measured again beside each drain: on a shared machine the
# ceiling moves with the load, and each ratio is against the ceiling of its own moment.
CEIL_ROWS=500
awk -v n="$EXPECT" -v batch="$CEIL_ROWS" -v run="$RUN" -v anchors="$ANCHORS" -v audiences="$AUDIENCES" 'BEGIN {
        srand(run % 100000)
        print "SET @t0 = NOW(6);"
        for (start = 0; start < n; start += batch) {
                printf "INSERT INTO bench_recharge (trace_id, audience_id, anchor_id, room_id, session_id, room_seq,"
                printf " amount, gift_id, gift_count, audience_gender, anchor_gender, audience_type, tipped_at) VALUES "
                for (i = start; i < start + batch && i < n; i++) {
                        a = int(rand() * anchors)
                        printf "%s(\"tip-%s-%07d\",\"aud-%s-%d\",\"anchor-%s-%d\",\"room-%s-%d\",NULL,%d,%d,\"gift-%d\",%d,\"female\",\"male\",\"registered\",NOW(3))",
                                (i > start ? "," : ""), run, i, run, int(rand() * audiences), run, a, run, a, i + 1,
                                1 + int(rand() * 9999), int(rand() * 20), 1 + int(rand() * 5)
                }
                print ";"
        }
        print "SELECT TIMESTAMPDIFF(MICROSECOND, @t0, NOW(6));"
}' >"$WORK/ceiling.sql"
ceiling() {
        local us
        sql "DROP TABLE IF EXISTS bench_recharge; CREATE TABLE bench_recharge LIKE recharge" ||
                die "cannot create the ceiling's table"
        us=$(MYSQL_PWD=$LIVEFLOW_TEST_MYSQL_PASSWORD mariadb --no-defaults -h 127.0.0.1 -P "$LIVEFLOW_TEST_MYSQL_PORT" \
                -u liveflow --batch --skip-column-names "$DB" <"$WORK/ceiling.sql") || die "the ceiling's INSERTs failed"
        sql "DROP TABLE bench_recharge" || true
        CEILING=$(awk -v n="$EXPECT" -v us="$us" 'BEGIN { if (us > 0) printf "%.0f", n * 1e6 / us; else print "n/a" }')
}
ceiling
echo
echo "money ceiling: MariaDB's $CEIL_ROWS-row INSERT of $EXPECT recharge rows: $CEILING rows/s" \
        "(load average $(cut -d' ' -f1-3 /proc/loadavg))"

# ------------------------------------------------------------------ the drain

# drain_one NAME TABLE COUNT_SQL COMMAND...: the worker alone, in a group of its own, from
# the start of live.reward into the drain database until COUNT_SQL reaches EXPECT; its rate
# from TABLE's first to last created_at, against the ceiling measured just before.
DRAIN_SUMMARY=""

# mariadb_quiet: waits (up to 5 s) until MariaDB used under 5 % of a core over 200 ms: the
# ceiling's INSERTs and DROP leave purge and flushing behind, which would otherwise be counted
# as the next worker's MariaDB CPU per tip.
mariadb_quiet() {
        local deadline t0 t1
        deadline=$(($(now_ms) + 5000))
        while [ "$(now_ms)" -lt "$deadline" ]; do
                t0=$(cpu_ticks "$LIVEFLOW_TEST_MYSQLD_PID")
                sleep 0.2
                t1=$(cpu_ticks "$LIVEFLOW_TEST_MYSQLD_PID")
                [ $(((${t1:-0} - ${t0:-0}) * 1000 / CLK_TCK)) -lt 10 ] && return 0
        done
}

drain_one() {
        local name=$1 table=$2 count_sql=$3 port n prev="" last_move seen="" rate span role
        shift 3
        role=${name#consumer-}
        ceiling
        mariadb_quiet
        port=$(free_port) || die "no free port"
        slow_log_start "drain-$role"
        # shellcheck disable=SC2086 # BENCH_TIPS_WORKER_ENV is split into words on purpose
        spawn_role "$name" "$port" LIVEFLOW_GROUP_ID="liveflow.bench-drain-$RUN.$role" $WORKER_ENV "$@"
        last_move=$(now_ms)
        while :; do
                # the worker's own count while it drains (see applied), the rows once it is done
                n=$(applied "$port")
                [ "$n" -ge "$EXPECT" ] || [ "$n" -lt 0 ] && { n=$(sql "$count_sql") || die "cannot count the rows"; }
                [ -z "$seen" ] && [ "$n" -gt 0 ] && { usage_mark "$name"; store_mark; seen=1; }
                [ "$n" -ge "$EXPECT" ] && break
                [ "$n" != "$prev" ] && last_move=$(now_ms)
                prev=$n
                [ $(($(now_ms) - last_move)) -lt 60000 ] || break
                pid_alive "$(cat "$WORK/pid/$name.pid")" || break
                sleep 0.1
        done
        [ -n "$seen" ] || { usage_mark "$name"; store_mark; }
        USAGE="$(usage_of "$name"); $(store_cpu "$name" "$n")"
        stop_pidfiles 15 "$WORK/pid/$name.pid" 2>>"$WORK/log/stop.log"
        [ "$n" -eq "$EXPECT" ] || mismatch "$role drained $n of $EXPECT tips"
        set -- $(rate_of "$table")
        rate=$1 span=$2
        echo "  $role: $rate tips/s over $span ms, $(ratio "$rate" "$CEILING") of the ceiling measured just before ($CEILING rows/s);" \
                "$USAGE;" \
                "load average $(cut -d' ' -f1-3 /proc/loadavg); log: $(grep -c ' ERROR trace=' "$WORK/log/$name.log") ERROR," \
                "$(grep -c ' WARN trace=' "$WORK/log/$name.log") WARN lines"
        slow_log_stop "drain-$role"
        DRAIN_SUMMARY="$DRAIN_SUMMARY${DRAIN_SUMMARY:+, }$role $rate tips/s ($(ratio "$rate" "$CEILING"))"
}

if [ "$DRAIN" = 1 ]; then
        echo
        echo "money drain: the same $EXPECT tips read again from the start of live.reward by each worker alone" \
                "(a group of its own, database liveflow_money_drain, Redis database 2)"
        DB=liveflow_money_drain
        MYSQL_URL=mysql://liveflow:$LIVEFLOW_TEST_MYSQL_PASSWORD@127.0.0.1:$LIVEFLOW_TEST_MYSQL_PORT/$DB
        REDIS_URL=${LIVEFLOW_TEST_REDIS_URL%/*}/2
        redis-cli -h 127.0.0.1 -p "$LIVEFLOW_TEST_REDIS_PORT" -n 2 FLUSHDB >/dev/null || die "cannot empty Redis database 2"
        LIVEFLOW_MYSQL_URL=$MYSQL_URL "$BIN/liveflow-migrate" --create-database --dir "$ROOT/sql" \
                >>"$WORK/log/migrate.log" 2>&1 || die "migrations of $DB failed"
        [ "$(sql "SELECT COUNT(*) FROM recharge")" = 0 ] || die "$DB.recharge is not empty"
        seed_shares
        drain_one consumer-reward-sync recharge "SELECT COUNT(*) FROM recharge" "$BIN/liveflow-consumer" reward-sync
        drain_one settlement settlement_detail "SELECT COUNT(*) FROM settlement_detail" "$BIN/liveflow-settlement"
        drain_one stats stats_tip "SELECT LEAST((SELECT COUNT(*) FROM stats_tip), (SELECT COALESCE(SUM(reward_count), 0) FROM hourly_reward_stats))" \
                "$BIN/liveflow-stats"
        SUMS_OFFERED=$SUMS RECON_OFFERED=$RECON
        check_money
        [ "$SUMS_OFFERED" = OK ] || SUMS=$SUMS_OFFERED
        [ "$RECON_OFFERED" = OK ] || RECON=$RECON_OFFERED
fi
