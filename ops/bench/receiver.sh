# ops/bench/receiver.sh: the receiver part of make bench (ops/bench/run.sh sources it after the
# consumer part; the variables are run.sh's): the no-op server and the receiver at each of
# BENCH_CONNECTIONS, their lines in SUMMARY.
# shellcheck shell=sh

# ------------------------------------------------------------------ receiver

CLK_TCK=$(getconf CLK_TCK)
SUMMARY=""

# us_per_request TICKS REQUESTS: CPU microseconds per request from clock ticks.
us_per_request() {
        awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }'
}

# bench_noop CONNECTIONS: sets NOOP_RATE, NOOP_US (CPU µs per 200) and NOOP_MACHINE_US (the
# whole machine's busy CPU µs per 200: the no-op, wrk and the kernel).
bench_noop() {
        local out="$LOGS/wrk-noop-c$1.out" ok dur cpu0 cpu1 m0 m1
        [ "$WARMUP" -gt 0 ] && run_wrk "warm-noop-c$1" "$1" "$NOOP_URL" "$out.warmup" seconds "$WARMUP"
        cpu0=$(cpu_ticks "$NOOP_PID")
        m0=$(machine_ticks)
        run_wrk "noop-c$1" "$1" "$NOOP_URL" "$out" seconds "$DURATION"
        m1=$(machine_ticks)
        cpu1=$(cpu_ticks "$NOOP_PID")
        ok=$(wrk_value "$out" ok)
        dur=$(wrk_value "$out" window_us)
        NOOP_RATE=$(fmt_rate "$ok" "$dur")
        NOOP_US=$(us_per_request "$((cpu1 - cpu0))" "$ok")
        NOOP_MACHINE_US=$(us_per_request "$((m1 - m0))" "$ok")
        echo "  no-op   c=$1: $NOOP_RATE req/s  p50 $(fmt_ms "$(wrk_value "$out" p50)") ms" \
                " p99 $(fmt_ms "$(wrk_value "$out" p99)") ms  cpu $NOOP_US us/request" \
                "(whole machine $NOOP_MACHINE_US)  200s=$ok other=$(wrk_other_statuses "$out")"
}

# stack_line RCV_TICKS BROKER_TICKS REDIS_TICKS MACHINE_TICKS REQUESTS: where the machine's CPU
# went per acknowledged request, and the most requests/s this machine's cores could
# answer at that cost, against the no-op's requests/s. Sets MACHINE_US.
stack_line() {
        local rest cores bound
        MACHINE_US=$(us_per_request "$4" "$5")
        rest=$(us_per_request "$(($4 - $1 - $2 - $3))" "$5")
        cores=$(nproc)
        bound=$(awk -v us="$MACHINE_US" -v n="$cores" 'BEGIN { if (us > 0) printf "%.0f", n * 1e6 / us; else print 0 }')
        echo "    whole machine: $MACHINE_US us of CPU per 200 (receiver $(us_per_request "$1" "$5")," \
                "broker $(us_per_request "$2" "$5"), Redis $(us_per_request "$3" "$5"), the rest $rest:" \
                "wrk, the kernel, others); the no-op's run $NOOP_MACHINE_US. At $MACHINE_US us, $cores cores" \
                "answer at most $bound req/s, $(fmt_ratio "$bound" "$NOOP_RATE") of the no-op's $NOOP_RATE"
}

# bench_receiver CONNECTIONS: one timed run against the receiver, its line in SUMMARY.
bench_receiver() {
        local c="$1" out="$LOGS/wrk-receiver-c$1.out" rss_file="$TMP/bench/rss-c$1" base_ok base_kafka
        local ok sent answered dur rate p50 p99 rss hwm cpu0 cpu1 cores verdict us idle per_conn tasks0 tasks1
        local stack0 stack1
        idle=$(rss_kib "$RECEIVER_PID" VmRSS)
        [ "$WARMUP" -gt 0 ] && run_wrk "warm-c$c" "$c" "$RECEIVER_URL" "$out.warmup" seconds "$WARMUP"
        settle_receiver 0 0 || true
        base_ok=$(receiver_ok)
        base_kafka=$(kafka_high) || exit 1
        rm -f "$rss_file" "$rss_file.stop"
        rss_sampler "$RECEIVER_PID" "$rss_file" &
        SAMPLER_PID=$!
        BG_PIDS=$SAMPLER_PID
        stage_sums "$RECEIVER_ADMIN" >"$TMP/bench/stages0-c$c"
        cpu0=$(cpu_ticks "$RECEIVER_PID")
        tasks0=$(task_ticks "$RECEIVER_PID")
        stack0="$(cpu_ticks "$LIVEFLOW_TEST_DEVBROKER_PID") $(cpu_ticks "$LIVEFLOW_TEST_REDIS_PID") $(machine_ticks)"
        run_wrk "c$c" "$c" "$RECEIVER_URL" "$out" seconds "$DURATION"
        stack1="$(cpu_ticks "$LIVEFLOW_TEST_DEVBROKER_PID") $(cpu_ticks "$LIVEFLOW_TEST_REDIS_PID") $(machine_ticks)"
        cpu1=$(cpu_ticks "$RECEIVER_PID")
        tasks1=$(task_ticks "$RECEIVER_PID")
        stage_sums "$RECEIVER_ADMIN" >"$TMP/bench/stages1-c$c"
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
        echo "    mean time per stage, µs (the receiver's histograms; request = head to answer):" \
                "$(stage_means "$TMP/bench/stages0-c$c" "$TMP/bench/stages1-c$c")"
        # shellcheck disable=SC2086 # three numbers each
        set -- $stack0 $stack1
        stack_line "$((cpu1 - cpu0))" "$(($4 - $1))" "$(($5 - $2))" "$(($6 - $3))" "$ok"
        echo "    callbacks sent=$sent answered=$answered 200s=$ok other=$(wrk_other_statuses "$out")" \
                "in $(fmt_ms "$dur") ms; socket errors: $(sed -n 's/^BENCH errors //p' "$out");" \
                "receiver 200s=$RCV_OK kafka=$KAFKA_NEW $verdict"
        SUMMARY="${SUMMARY}$(printf 'receiver  c=%-2s: %s req/s  p50 %s ms  p99 %s ms  rss %s MiB  cpu %s us/request  200s=%s non-200=%s kafka=%s %s  ratio %s of no-op %s req/s (%s us/request)  machine %s us/request (no-op %s)' \
                "$c" "$rate" "$p50" "$p99" "$rss" "$us" "$ok" "$((answered - ok))" "$KAFKA_NEW" "$verdict" \
                "$(fmt_ratio "$rate" "$NOOP_RATE")" "$NOOP_RATE" "$NOOP_US" "$MACHINE_US" "$NOOP_MACHINE_US")
"
}

if [ "$RECEIVER_RUNS" != 0 ]; then
        echo
        loops=$(sed -n 's/.* ready .* loops=\([0-9]*\) .*/\1/p' "$LOGS/receiver.log" | head -n 1)
        echo "receiver: wrk -t$THREADS, ${DURATION} s per run, Tencent stream-begin callbacks of ~600 bytes;" \
                "the receiver runs ${loops:-?} event loop(s) (LIVEFLOW_HTTP_THREADS=${BENCH_HTTP_THREADS:-0}), the no-op $HTTP_THREADS thread(s)"
        for c in $CONNECTIONS; do
                bench_noop "$c"
                bench_receiver "$c"
        done
        echo "  the receiver's log: $(log_counts "$LOGS/receiver.log")"
fi
