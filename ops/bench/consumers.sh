# ops/bench/consumers.sh: the consumer roles part of make bench (ops/bench/run.sh sources it
# after the set-up; the variables are run.sh's): each role of BENCH_ROLES on a backlog of
# BENCH_RECORDS, then MariaDB's own 500-row INSERT as the ceiling. BENCH_SLOW_LOG=1 turns on
# MariaDB's slow log (every statement) while each role consumes and prints the statements that
# took the most time, by shape (bench_lib.sh: slow_log_top).
#
# A backlog is written through the receiver at PRELOAD_CONNECTIONS (64) connections. At 8, each
# of the receiver's Produce requests carried about one record, and the dev broker (librdkafka
# 2.0.2's mock) answers a fetch with one batch per partition, found by walking the partition's
# log from its oldest batch: ~35-50 ms of its CPU per 1 000 records consumed, 80 % of it in that
# walk (perf), on the cores the role and MariaDB share. A real cluster indexes its log and
# answers a fetch with many batches, so how a backlog was batched costs it nothing.
# BENCH_PRELOAD_CONNECTIONS=8 shows the difference.
# shellcheck shell=sh

# ------------------------------------------------------------------ consumer

# cpu_of PID: "consumer mariadbd redis devbroker" clock ticks used so far (PID is the consumer).
cpu_of() {
        echo "$(cpu_ticks "$1") $(cpu_ticks "$LIVEFLOW_TEST_MYSQLD_PID") $(cpu_ticks "$LIVEFLOW_TEST_REDIS_PID")" \
                "$(cpu_ticks "$LIVEFLOW_TEST_DEVBROKER_PID")"
}

# cpu_per_1000 BEFORE AFTER RECORDS: each process's CPU per 1 000 records between two cpu_of
# (the dev broker's includes the Kafka offset polls of this script).
cpu_per_1000() {
        printf '%s %s\n' "$1" "$2" | awk -v n="$3" -v hz="$(getconf CLK_TCK)" '{
                split("consumer MariaDB Redis dev-broker", name, " ")
                for (i = 1; i <= 4; i++)
                        printf "%s%s %.1f ms", (i > 1 ? ", " : ""), name[i], (n > 0 ? ($(i + 4) - $i) * 1000 / hz * 1000 / n : 0)
        }'
}

# stop_consumer PIDFILE: SIGTERM and wait. Under BENCH_CONSUMER_WRAP the process is the
# wrapper's (its argv[0] is not liveflow-consumer), so it is signalled by its PID alone and given
# a minute to drain and write its profile.
stop_consumer() {
        local pid
        if [ -n "${BENCH_CONSUMER_WRAP:-}" ] && pid=$(cat "$1" 2>/dev/null) && pid_alive "$pid"; then
                kill -TERM "$pid" 2>/dev/null
                wait_gone "$pid" 60 || note "the wrapped consumer (pid $pid) did not exit in 60 s"
                rm -f "$1"
        fi
        stop_pidfiles 15 "$1" 2>>"$LOGS/stop.log"
}

# stream_drain: starts the stream consumer on the backlog of TARGET records (group GROUP,
# database DB) and polls it until every record is done: CONSUMER_PID, t_start, t_rows, the
# CPU and MariaDB/Redis counters before, the HELD_* of its partitions.
# set_aside_start ROLE RECORDS TABLE TIME_COLUMN PIDFILE LOG: a start whose lanes got their
# partitions in separate rounds (join_is_late) says what it gave, is stopped and its logs set
# aside (LOG as LOG-startN.log); starts counts the next one.
set_aside_start() {
        local span_us
        span_us=$(sql "SELECT TIMESTAMPDIFF(MICROSECOND, MIN($4), MAX($4)) FROM $3")
        echo "  start $starts: $(fmt_rate $(($2 - 1)) "${span_us:-0}") rec/s, its lanes' partitions" \
                "$(held_spread_ms) ms apart (the dev broker took another rebalance round, see join_is_late):" \
                "measured again with a new group, database and Redis database"
        stop_consumer "$5"
        mv "$6" "${6%.log}-start$starts.log"
        slow_log_stop "$1" >/dev/null
        rm -f "$LOGS/slow-$1.log"
        starts=$((starts + 1))
}

stream_drain() {
        two_free_ports
        CONSUMER_ADMIN=$PORT_A
        echo "consumer stream: consuming $TARGET records ($CONSUMER_LANES lane(s))"
        # before the spawn: a session keeps the long_query_time it connected with
        slow_log_start stream
        t_start=$(now_ms)
        # shellcheck disable=SC2086 # BENCH_CONSUMER_ENV and _WRAP are split into words on purpose
        spawn "$PIDS/consumer-stream.pid" "$LOGS/consumer.log" env \
                LIVEFLOW_KAFKA_BOOTSTRAP="$LIVEFLOW_TEST_KAFKA_BOOTSTRAP" LIVEFLOW_MYSQL_URL="$MYSQL_URL" \
                LIVEFLOW_REDIS_URL="${CONSUMER_REDIS_URL:-$LIVEFLOW_TEST_REDIS_URL}" LIVEFLOW_ADMIN_PORT="$CONSUMER_ADMIN" \
                LIVEFLOW_GROUP_ID="$GROUP" LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000 \
                LIVEFLOW_CONSUMER_LANES="$CONSUMER_LANES" LIVEFLOW_LOG_LEVEL="$LOG_LEVEL" \
                ${BENCH_CONSUMER_ENV:-} ${BENCH_CONSUMER_WRAP:-} "$BIN/liveflow-consumer" stream
        CONSUMER_PID=$(cat "$PIDS/consumer-stream.pid")
        cpu_before="" cpu_rows=0
        mysql_status "$TMP/bench/mysql.before" || die "cannot read MariaDB's status"
        redis_status "$TMP/bench/redis.before" || die "cannot read Redis's status"
        polls=0
        # Polled every 0.25 s only to know when it is over and when the lanes got their
        # partitions; the rate comes from the rows' own timestamps (updated_at, set by MariaDB
        # when each row is inserted).
        deadline=$((t_start + (120 + TARGET / 20) * 1000))
        rows=0
        last_rows=0
        last_move=$t_start
        held_reset
        while :; do
                progress=$(consumer_progress "$CONSUMER_ADMIN")
                rows=${progress% *}
                held_watch "$(now_ms)" "${progress#* }"
                # CPU from the first rows on: start-up and the group join are not the drain
                [ -z "$cpu_before" ] && [ "$rows" -gt 0 ] && cpu_before=$(cpu_of "$CONSUMER_PID") cpu_rows=$rows
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
}

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

        starts=1
        stream_drain
        while join_is_late "$CONSUMER_LANES" && [ "$starts" -lt "$JOIN_TRIES" ] && [ "$FRESH_CNT" -lt 5 ]; do
                set_aside_start stream "$TARGET" live_streams updated_at "$PIDS/consumer-stream.pid" \
                        "$LOGS/consumer.log"
                GROUP=bench.stream.$starts
                fresh_stores "stream$starts"
                stream_drain
        done
        rows=$(sql "SELECT COUNT(*) FROM live_streams") || die "cannot count live_streams"
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
        cpu_after=$(cpu_of "$CONSUMER_PID")
        # After the commit, so that the last batch is in the figures too: what the consumer asked
        # of MariaDB and Redis (less this script's own polls), and its batches from its /metrics.
        mysql_status "$TMP/bench/mysql.after" || die "cannot read MariaDB's status"
        redis_status "$TMP/bench/redis.after" || die "cannot read Redis's status"
        consumer_metrics=http://127.0.0.1:$CONSUMER_ADMIN/metrics
        batches=$(metric_sum "$consumer_metrics" liveflow_consumer_batch_seconds_count)
        batch_s=$(metric_sum "$consumer_metrics" liveflow_consumer_batch_seconds_sum)
        stop_consumer "$PIDS/consumer-stream.pid"
        committed_after=$(kafka_count live.stream "$GROUP") || die "cannot read the group's offsets"

        # First to last row, from MariaDB's clock: the apply rate without the start-up.
        span_us=$(sql "SELECT TIMESTAMPDIFF(MICROSECOND, MIN(updated_at), MAX(updated_at)) FROM live_streams")
        first_row_ms=$(sql "SELECT CAST(UNIX_TIMESTAMP(MIN(updated_at)) * 1000 AS SIGNED) FROM live_streams")
        events=$(sql "SELECT COUNT(*) FROM live_events WHERE consumer = 'stream'")
        online=$(redis-cli -h 127.0.0.1 -p "$LIVEFLOW_TEST_REDIS_PORT" -n "$CONSUMER_REDIS_DB" SCARD set:live:online)
        consumer_rate=$(fmt_rate $((rows - 1)) "$span_us")
        consumer_log=$(log_counts "$LOGS/consumer.log")
        echo "  $rows rows: first row $((first_row_ms - t_start)) ms after the start (group join)," \
                "last $(fmt_ms "$span_us") ms later, offsets committed $((t_committed - t_rows)) ms after that"
        echo "  partitions: held $((HELD_FIRST_MS - t_start)) ms after the start, all $(held_spread_ms) ms later;" \
                "start $starts of at most $JOIN_TRIES"
        echo "  $(awk -v b="$batches" -v s="$batch_s" -v r="$rows" 'BEGIN {
                printf "%d batches of %.0f records on average, %.0f ms each", b, (b > 0 ? r / b : 0), (b > 0 ? s * 1000 / b : 0) }')"
        # this script's own statements in the window: the count of rows and the status read
        STREAM_STMTS=$(stmts_per_record "$TMP/bench/mysql.before" "$TMP/bench/mysql.after" "$rows" 2)
        echo "  MariaDB per record: $(per_record "$TMP/bench/mysql.before" "$TMP/bench/mysql.after" "$rows" \
                "Com_select=1 Com_show_status=1") ($STREAM_STMTS statements)"
        echo "  Redis per record: $(per_record "$TMP/bench/redis.before" "$TMP/bench/redis.after" "$rows" "info=1")"
        echo "  CPU per 1 000 records after the first $cpu_rows: $(cpu_per_1000 "$cpu_before" "$cpu_after" $((rows - cpu_rows)))"
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
        slow_log_stop stream
        ROLE_RESULTS="${ROLE_RESULTS}stream $rows $span_us $((first_row_ms - t_start)) $STREAM_STMTS $CONSUMER_LANES
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

# role_drain: bench_role's start of the consumer of ROLE on its backlog and its polls until
# every record is done (it sets bench_role's variables).
role_drain() {
        two_free_ports
        admin=$PORT_A
        echo "consumer $role: consuming $target records (group $group, $lanes lane(s))"
        slow_log_start "$role" # before the spawn, as for the stream role
        t_start=$(now_ms)
        # shellcheck disable=SC2086 # BENCH_CONSUMER_ENV and _WRAP are split into words on purpose
        spawn "$PIDS/consumer-$role.pid" "$log" env \
                LIVEFLOW_KAFKA_BOOTSTRAP="$LIVEFLOW_TEST_KAFKA_BOOTSTRAP" LIVEFLOW_MYSQL_URL="$MYSQL_URL" \
                LIVEFLOW_REDIS_URL="${CONSUMER_REDIS_URL:-$LIVEFLOW_TEST_REDIS_URL}" LIVEFLOW_ADMIN_PORT="$admin" \
                LIVEFLOW_GROUP_ID="$group" LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000 \
                LIVEFLOW_CONSUMER_LANES="$lanes" LIVEFLOW_LOG_LEVEL="$LOG_LEVEL" \
                ${BENCH_CONSUMER_ENV:-} ${BENCH_CONSUMER_WRAP:-} "$BIN/liveflow-consumer" "$role"
        pid=$(cat "$PIDS/consumer-$role.pid")
        cpu_before="" cpu_rows=0
        mysql_status "$TMP/bench/mysql-$role.before" || die "cannot read MariaDB's status"
        # Done when every record's row is in the table and the group's offsets are all
        # committed (a record dead-lettered leaves no row: the offsets end the wait then).
        deadline=$((t_start + (120 + target / 20) * 1000))
        rows=0 last_rows=0 last_move=$t_start polls=0 first_poll_ms=0 last_poll_ms=0
        committed_line=""
        held_reset
        while :; do
                progress=$(consumer_progress "$admin")
                rows=${progress% *}
                held_watch "$(now_ms)" "${progress#* }"
                [ -z "$cpu_before" ] && [ "$rows" -gt 0 ] && cpu_before=$(cpu_of "$pid") cpu_rows=$rows
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
}

# bench_role ROLE: the consumer figures of one role other than stream, on a topic holding
# exactly RECORDS callbacks of its type sent through the receiver; its result line is added
# to ROLE_RESULTS.
bench_role() {
        local role="$1" group="liveflow.$1" out="$LOGS/wrk-preload-$1.out" base_ok base_kafka t0 ms
        local ok sent target admin pid log="$LOGS/consumer-$1.log" t_start deadline rows last_rows last_move
        local now polls first_poll_ms last_poll_ms t_rows committed_line committed_after span_us first_ms
        local rate dead dlq batches batch_s t_committed cpu_before cpu_after cpu_rows lanes starts progress
        role_info "$role"
        # A role timed by its batches' durations runs one member: with two, they overlap.
        lanes=$CONSUMER_LANES
        [ -n "$ROLE_TS" ] || lanes=1
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

        starts=1
        role_drain
        while join_is_late "$lanes" && [ "$starts" -lt "$JOIN_TRIES" ] && [ "$FRESH_CNT" -lt 5 ]; do
                set_aside_start "$role" "$target" "$ROLE_TABLE" "$ROLE_TS" "$PIDS/consumer-$role.pid" "$log"
                group=liveflow.$role.$starts
                fresh_stores "$role$starts"
                role_drain
        done
        deadline=$((t_rows + 30000))
        while :; do
                committed_line=$(kafka_count "$ROLE_TOPIC" "$group") || die "cannot read the offsets of $group"
                case "$committed_line" in *" lag=0") break ;; esac
                [ "$(now_ms)" -lt "$deadline" ] || break
                sleep 0.2
        done
        t_committed=$(now_ms)
        cpu_after=$(cpu_of "$pid")
        mysql_status "$TMP/bench/mysql-$role.after" || die "cannot read MariaDB's status"
        rows=$(sql "SELECT COUNT(*) FROM $ROLE_TABLE") || die "cannot count $ROLE_TABLE"
        batches=$(metric_sum "http://127.0.0.1:$admin/metrics" liveflow_consumer_batch_seconds_count)
        batch_s=$(metric_sum "http://127.0.0.1:$admin/metrics" liveflow_consumer_batch_seconds_sum)
        dead=$(curl -fsS --max-time 5 "http://127.0.0.1:$admin/metrics" |
                awk '/^liveflow_consumer_records_total\{/ && /outcome="dead_lettered"/ { n += $NF } END { printf "%d\n", n }')
        stop_consumer "$PIDS/consumer-$role.pid"
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
        echo "  partitions: held $((HELD_FIRST_MS - t_start)) ms after the start, all $(held_spread_ms) ms later;" \
                "start $starts of at most $JOIN_TRIES"
        echo "  $(awk -v b="$batches" -v s="$batch_s" -v r="$target" 'BEGIN {
                printf "%d batches of %.0f records on average, %.0f ms each", b, (b > 0 ? r / b : 0), (b > 0 ? s * 1000 / b : 0) }')"
        # this script's own statement in the window: the status read
        stmts=$(stmts_per_record "$TMP/bench/mysql-$role.before" "$TMP/bench/mysql-$role.after" "$target" 1)
        echo "  MariaDB per record: $(per_record "$TMP/bench/mysql-$role.before" "$TMP/bench/mysql-$role.after" "$target" \
                "Com_show_status=1") ($stmts statements)"
        echo "  dead-lettered=$dead $ROLE_TOPIC.dlq=${dlq:-0} offsets: $committed_after; its log: $(log_counts "$log")"
        echo "  CPU per 1 000 records after the first $cpu_rows: $(cpu_per_1000 "$cpu_before" "$cpu_after" $((rows - cpu_rows)))"
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
        slow_log_stop "$role"
        ROLE_RESULTS="${ROLE_RESULTS}$role $rows $span_us $((first_ms - t_start)) $stmts $lanes
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
