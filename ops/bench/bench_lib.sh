# ops/bench/bench_lib.sh: the helpers of make bench (ops/bench/run.sh sources it): number
# formats, wrk's figures, Kafka watermarks, MariaDB and Redis counters, /proc readings.
# shellcheck shell=sh

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

# records_done ADMIN_PORT: the records a consumer has finished (applied or dead-lettered), from
# its /metrics; 0 while it does not answer yet. The bench polls this, not MariaDB, to know when
# a drain is over: a poll costs the drain nothing (a COUNT(*) scanned the role's table and a
# mysql client started each time) and needs no Kafka client of its own.
records_done() {
        metric_sum "http://127.0.0.1:$1/metrics" liveflow_consumer_records_total 2>/dev/null |
                awk '{ printf "%d\n", $1 }'
}

# consumer_progress ADMIN_PORT: "DONE HELD": the records a consumer has finished (as
# records_done) and the partitions its lanes hold (liveflow_consumer_assigned_partitions), from
# one read of its /metrics; "0 -1" while it does not answer (not yet, or a read timed out).
consumer_progress() {
        curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk '
                $1 == "liveflow_consumer_records_total" || index($1, "liveflow_consumer_records_total{") == 1 { d += $NF }
                $1 == "liveflow_consumer_assigned_partitions" || index($1, "liveflow_consumer_assigned_partitions{") == 1 { a += $NF }
                END { printf "%d %d\n", d, (NR > 0 ? a : -1) }'
}

# held_reset, then held_watch NOW HELD at each poll: HELD_FIRST_MS is the poll at which the
# starting consumer first held a partition, HELD_LAST_MS the last one at which that count moved.
# A start whose lanes got their partitions in one rebalance round has them one poll apart at
# most (held_spread_ms); see join_is_late.
held_reset() {
        HELD_FIRST_MS=0 HELD_LAST_MS=0 HELD_PREV=0
}

held_watch() {
        [ "$2" -ge 0 ] || return 0 # no answer: nothing known
        [ "$2" -gt 0 ] && [ "$HELD_FIRST_MS" -eq 0 ] && HELD_FIRST_MS=$1 HELD_LAST_MS=$1
        if [ "$2" -ne "$HELD_PREV" ]; then
                HELD_PREV=$2
                [ "$HELD_FIRST_MS" -eq 0 ] || HELD_LAST_MS=$1
        fi
        return 0
}

held_spread_ms() {
        echo $((HELD_LAST_MS - HELD_FIRST_MS))
}

# join_is_late LANES: true when a consumer of LANES lanes got its partitions in more than one
# rebalance round. The dev broker (librdkafka 2.0.2's mock) completes a round as soon as the
# leader's SyncGroup has set every member's assignment and answers a member whose own SyncGroup
# comes after that with INVALID_REQUEST: that member joins again and the mock waits
# session.timeout.ms - 1 s (2 s here) for the next round, while the others drain their share of
# the backlog alone. Kafka answers such a SyncGroup with the member's assignment.
join_is_late() {
        [ "$1" -gt 1 ] && [ "$(held_spread_ms)" -gt 1000 ]
}

# fresh_stores TAG: the bench database and the consumers' Redis database become new, empty ones
# (DB=liveflow_bench_TAG, migrated; Redis database 10 + the count of fresh starts), for a role
# measured again. The backlog stays in its topic: a new group reads it from the start.
FRESH_CNT=0
CONSUMER_REDIS_DB=0
CONSUMER_REDIS_URL=""
fresh_stores() {
        FRESH_CNT=$((FRESH_CNT + 1))
        DB=liveflow_bench_$1
        MYSQL_URL=mysql://liveflow:$LIVEFLOW_TEST_MYSQL_PASSWORD@127.0.0.1:$LIVEFLOW_TEST_MYSQL_PORT/$DB
        LIVEFLOW_MYSQL_URL=$MYSQL_URL "$BIN/liveflow-migrate" --create-database --dir "$ROOT/sql" \
                >>"$LOGS/migrate.log" 2>&1 || {
                log_tail "$LOGS/migrate.log"
                die "migrations of $DB failed"
        }
        CONSUMER_REDIS_DB=$((10 + FRESH_CNT))
        CONSUMER_REDIS_URL=${LIVEFLOW_TEST_REDIS_URL%/*}/$CONSUMER_REDIS_DB
        redis-cli -h 127.0.0.1 -p "$LIVEFLOW_TEST_REDIS_PORT" -n "$CONSUMER_REDIS_DB" FLUSHDB >/dev/null ||
                die "cannot empty Redis database $CONSUMER_REDIS_DB"
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

# machine_ticks: clock ticks every CPU of the machine spent busy so far (/proc/stat's cpu line:
# user, nice, system, irq, softirq and steal; not idle or iowait).
machine_ticks() {
        awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# stage_sums ADMIN_PORT: the receiver's own time sums and counts (its /metrics), one
# "stage sum count" line per stage: a request from its head to its answer, the broker's ack, the
# guard's claim and "done" mark.
stage_sums() {
        curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" | awk '
                function stage(line) {
                        if (line ~ /^liveflow_receiver_request_duration_seconds_/) return "request"
                        if (line ~ /^liveflow_receiver_ack_seconds_/) return "ack"
                        if (line ~ /^liveflow_receiver_callback_lock_seconds_.*call="claim"/) return "claim"
                        if (line ~ /^liveflow_receiver_callback_lock_seconds_.*call="done"/) return "mark"
                        return ""
                }
                /_sum[{ ]/ { st = stage($0); if (st != "") sum[st] += $NF }
                /_count[{ ]/ { st = stage($0); if (st != "") cnt[st] += $NF }
                END { for (st in cnt) print st, sum[st] + 0, cnt[st] }' | sort
}

# stage_means BEFORE AFTER: each stage's mean in µs between two stage_sums files, with its count.
stage_means() {
        join "$1" "$2" | awk '{ n = $5 - $3; if (n > 0) printf "%s %.0f (%d)  ", $1, ($4 - $2) * 1e6 / n, n }'
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

# slow_log_start NAME: with BENCH_SLOW_LOG=1, MariaDB logs every statement from now on into
# $LOGS/slow-NAME.log (long_query_time 0); otherwise nothing.
slow_log_start() {
        [ "${BENCH_SLOW_LOG:-0}" = 1 ] || return 0
        sql "SET GLOBAL slow_query_log = 0; SET GLOBAL slow_query_log_file = '$LOGS/slow-$1.log';
             SET GLOBAL long_query_time = 0; SET GLOBAL slow_query_log = 1" ||
                note "cannot turn MariaDB's slow log on"
}

# slow_log_stop NAME: turns the slow log off and prints the statements that took the most time,
# grouped by shape (literals and numbers as ?), with their count and the rows MariaDB examined.
slow_log_stop() {
        [ "${BENCH_SLOW_LOG:-0}" = 1 ] || return 0
        sql "SET GLOBAL slow_query_log = 0" || note "cannot turn MariaDB's slow log off"
        [ -f "$LOGS/slow-$1.log" ] || return 0
        echo "  MariaDB statements by total time (BENCH_SLOW_LOG; the whole log: $LOGS/slow-$1.log):"
        slow_log_top "$LOGS/slow-$1.log" 12 | sed 's/^/    /'
}

# slow_log_top FILE N: the N statement shapes of a MariaDB slow log with the most total time.
slow_log_top() {
        awk -v top="$2" '
        function flush() {
                if (q == "") return
                gsub(/'"'"'[^'"'"']*'"'"'|"[^"]*"/, "?", q)
                gsub(/[0-9]+/, "?", q)
                gsub(/(\?, *)+\?/, "?...", q)
                key = substr(q, 1, 100)
                total[key] += qt; count[key]++; examined[key] += ex
                q = ""
        }
        /^# Query_time:/ { flush(); qt = $3; ex = $NF; have = 1; next }
        /^#/ { if (q != "") { flush(); have = 0 } next }
        /^SET timestamp=/ || /^use / { next }
        have { q = (q == "" ? $0 : q " " $0) }
        END {
                flush()
                for (k in total) printf "%9.1f ms %6d x %9d rows examined  %s\n", total[k] * 1000, count[k], examined[k], k
        }' "$1" | sort -rn | head -n "$2"
}
