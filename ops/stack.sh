#!/bin/sh
# ops/stack.sh: the local stack (private MariaDB, private Redis, the dev broker and every
# liveflow process) started, stopped and shown by PID, with all state under .run/.
#
#   sh ops/stack.sh start [BUILD_DIR]   (make run)
#   sh ops/stack.sh stop                (make stop)
#   sh ops/stack.sh status              (every process: up/down, PID, admin port)
#   sh ops/stack.sh scale ROLE N        (N copies of a worker role on the running stack)
#
# Ports: LIVEFLOW_STACK_MYSQL_PORT (3307), LIVEFLOW_STACK_REDIS_PORT (6380),
# LIVEFLOW_STACK_HTTP_PORT (8080), LIVEFLOW_STACK_ADMIN_PORT (9100: the receiver's admin
# port, then one more for each further process), LIVEFLOW_STACK_PROMETHEUS_PORT (9190;
# "off" starts no Prometheus; when left unset and 9190 is taken, the stack starts without it),
# LIVEFLOW_STACK_TEXTFILE_PORT (the Prometheus port + 1: serves .run/prometheus/textfile/,
# where ops/reconcile-metrics.sh and ops/dlq-metrics.sh record the reconciliation and the
# dead-letter topics, at start and every LIVEFLOW_STACK_CRON_INTERVAL_S, 300, as cron would).
# LIVEFLOW_STACK_COPIES_<ROLE>=N starts N copies of a worker role (ROLE upper case, '-' as
# '_': LIVEFLOW_STACK_COPIES_REWARD_SYNC, LIVEFLOW_STACK_COPIES_SETTLEMENT, ...; 0 starts
# none), each with its own admin port, LIVEFLOW_INSTANCE_ID and PID file (the first copy
# consumer-record.pid, the next consumer-record@2.pid, ...).
# LIVEFLOW_STACK_DIR moves the whole state (default .run/ in the repository);
# LIVEFLOW_STACK_SCRAPE_INTERVAL sets Prometheus's scrape and rule interval (5s).
set -u

LF_PROG=stack
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/ops/lib.sh"

RUN=${LIVEFLOW_STACK_DIR:-$ROOT/.run}
case "$RUN" in /*) ;; *) RUN=$(pwd)/$RUN ;; esac
PIDS=$RUN/pid
LOGS=$RUN/log
STARTED_MS=$(now_ms)

MYSQL_PORT=${LIVEFLOW_STACK_MYSQL_PORT:-3307}
REDIS_PORT=${LIVEFLOW_STACK_REDIS_PORT:-6380}
HTTP_PORT=${LIVEFLOW_STACK_HTTP_PORT:-8080}
ADMIN_PORT=${LIVEFLOW_STACK_ADMIN_PORT:-9100}
PROM_PORT=${LIVEFLOW_STACK_PROMETHEUS_PORT:-9190}
SCRAPE_INTERVAL=${LIVEFLOW_STACK_SCRAPE_INTERVAL:-5s}
PROM_DIR=$RUN/prometheus
TEXTFILE_DIR=$PROM_DIR/textfile

die() {
        note "$*"
        exit 1
}

# elapsed: milliseconds since the script started.
elapsed() {
        echo $(($(now_ms) - STARTED_MS))
}

check_port_var() {
        case "$2" in
        '' | *[!0-9]*) die "$1: \"$2\" is not a port" ;;
        esac
        [ "$2" -ge 1 ] && [ "$2" -le 65535 ] || die "$1: \"$2\" is not a port"
}

# require_free_port PORT VARIABLE: the port must be ours to take.
require_free_port() {
        port_is_busy "$1" || return 0
        fail_start "port $1 is in use by another process; set $2 to a free port"
}

# ------------------------------------------------------------------- stopping

# stop_all: the receiver first (no new events), then what consumes, then the services,
# MariaDB last because everything above may still write to it while draining; then any
# PID file a newer version of this script may have added.
stop_all() {
        stop_pidfiles 15 "$PIDS/cron.pid" "$PIDS/prometheus.pid" "$PIDS/textfile.pid"
        stop_pidfiles 15 "$PIDS/receiver.pid"
        stop_pidfiles 15 "$PIDS"/consumer-*.pid "$PIDS"/settlement*.pid "$PIDS"/stats*.pid
        stop_pidfiles 15 "$PIDS/devbroker.pid"
        stop_pidfiles 15 "$PIDS/redis.pid"
        stop_pidfiles 15 "$PIDS/mariadb.pid"
        stop_pidfiles 15 "$PIDS"/*.pid
        rm -f "$PIDS"/*.port
        write_targets
}

# fail_start MESSAGE: undoes a start that went wrong.
fail_start() {
        note "$*"
        # A failed scale-up leaves the rest of the stack as it was.
        [ "${SCALING:-0}" -eq 0 ] || exit 1
        note "stopping what was started"
        stop_all
        exit 1
}

# ------------------------------------------------------------------- status

# running_state: "up" when every component runs, "partial" when only some do, "down"
# when none do.
running_state() {
        local f name up=0 down=0
        for name in mariadb redis devbroker; do
                [ -e "$PIDS/$name.pid" ] || down=$((down + 1))
        done
        for f in "$PIDS"/*.pid; do
                [ -e "$f" ] || continue
                if pidfile_running "$f" >/dev/null; then up=$((up + 1)); else down=$((down + 1)); fi
        done
        if [ "$up" -eq 0 ]; then echo down; elif [ "$down" -eq 0 ]; then echo up; else echo partial; fi
}

# port_of NAME: the port a process was given (its admin port; MariaDB's, Redis's and
# Prometheus's own), or "-".
port_of() {
        cat "$PIDS/$1.port" 2>/dev/null || echo -
}

show_status() {
        local f name pid
        for name in mariadb redis devbroker; do
                [ -f "$PIDS/$name.pid" ] || printf '  %-28s down\n' "$name"
        done
        for f in "$PIDS"/*.pid; do
                [ -e "$f" ] || continue
                name=$(basename "$f" .pid)
                if pid=$(pidfile_running "$f"); then
                        printf '  %-28s up    pid %-8s port %s\n' "$name" "$pid" "$(port_of "$name")"
                else
                        printf '  %-28s down  (stale PID file; port %s)\n' "$name" "$(port_of "$name")"
                fi
        done
        if [ -f "$RUN/env" ] && [ "$(running_state)" != down ]; then
                sed -n 's/^export LIVEFLOW_RECEIVER_URL=/  receiver URL: /p' "$RUN/env"
                [ -f "$PIDS/prometheus.pid" ] &&
                        echo "  Prometheus:   http://127.0.0.1:$(port_of prometheus)  (console: /consoles/liveflow.html)"
                echo "  environment:  source $RUN/env"
        fi
}

# ------------------------------------------------------------------- secrets and env

# load_secrets: generated once into .run/secrets (mode 600), reused by every later start
# so that the MariaDB password and the webhook keys stay what clients were given.
load_secrets() {
        if [ ! -s "$RUN/secrets" ]; then
                (
                        umask 077
                        {
                                echo "STACK_MYSQL_PASSWORD=$(openssl rand -hex 16)"
                                echo "STACK_TENCENT_KEY=$(openssl rand -hex 16)"
                                echo "STACK_HMAC_SECRET=whsec_$(openssl rand -base64 32)"
                                echo "STACK_SRS_TOKEN=$(openssl rand -hex 16)"
                                echo "STACK_SRS_PUBLISH_KEY=$(openssl rand -hex 16)"
                        } >"$RUN/secrets.tmp" && mv "$RUN/secrets.tmp" "$RUN/secrets"
                ) || die "cannot write $RUN/secrets"
        fi
        . "$RUN/secrets"
        if [ -z "${STACK_SRS_PUBLISH_KEY:-}" ]; then # a secrets file from before the key
                STACK_SRS_PUBLISH_KEY=$(openssl rand -hex 16)
                echo "STACK_SRS_PUBLISH_KEY=$STACK_SRS_PUBLISH_KEY" >>"$RUN/secrets" ||
                        die "cannot write $RUN/secrets"
        fi
        if [ -z "${STACK_AGORA_SECRET:-}" ]; then # Agora NCS and Alibaba came later
                STACK_AGORA_SECRET=$(openssl rand -hex 16)
                STACK_ALIBABA_KEY=$(openssl rand -hex 16)
                printf 'STACK_AGORA_SECRET=%s\nSTACK_ALIBABA_KEY=%s\n' "$STACK_AGORA_SECRET" \
                        "$STACK_ALIBABA_KEY" >>"$RUN/secrets" || die "cannot write $RUN/secrets"
        fi
}

write_env() {
        mkdir -p "$RUN/spool" || fail_start "cannot make $RUN/spool"
        (
                umask 077
                cat >"$RUN/env.tmp" <<EOF
# Written by ops/stack.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ); source it: . .run/env
export LIVEFLOW_RECEIVER_URL=http://127.0.0.1:$HTTP_PORT
export LIVEFLOW_HTTP_PORT=$HTTP_PORT
export LIVEFLOW_KAFKA_BOOTSTRAP=$(cat "$RUN/kafka.bootstrap")
export LIVEFLOW_MYSQL_URL=mysql://liveflow:$STACK_MYSQL_PASSWORD@127.0.0.1:$MYSQL_PORT/liveflow
export LIVEFLOW_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export LIVEFLOW_TENCENT_KEY=$STACK_TENCENT_KEY
export LIVEFLOW_HMAC_SECRET=$STACK_HMAC_SECRET
export LIVEFLOW_SRS_TOKEN=$STACK_SRS_TOKEN
export LIVEFLOW_SRS_PUBLISH_KEY=$STACK_SRS_PUBLISH_KEY
export LIVEFLOW_AGORA_SECRET=$STACK_AGORA_SECRET
export LIVEFLOW_ALIBABA_KEY=$STACK_ALIBABA_KEY
export LIVEFLOW_ALIBABA_DOMAIN=${LIVEFLOW_STACK_ALIBABA_DOMAIN:-push.example.com}
export LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=6000
export LIVEFLOW_SPOOL_DIR=$RUN/spool
export LIVEFLOW_LOG_LEVEL=info
EOF
        ) && mv "$RUN/env.tmp" "$RUN/env" || fail_start "cannot write $RUN/env"
}

# ------------------------------------------------------------------- services

start_services() {
        local sockdir
        sockdir=$(short_socket_dir "$RUN/mysql") || fail_start "cannot make a socket directory"
        MYSQL_SOCKET=$sockdir/mysqld.sock
        require_free_port "$MYSQL_PORT" LIVEFLOW_STACK_MYSQL_PORT
        require_free_port "$REDIS_PORT" LIVEFLOW_STACK_REDIS_PORT

        start_mariadb "$RUN/mysql/data" "$MYSQL_SOCKET" "$MYSQL_PORT" "$PIDS/mariadb.pid" \
                "$LOGS/mariadb.log" || fail_start "MariaDB did not start"
        mariadb_secure "$MYSQL_SOCKET" &&
                mariadb_user "$MYSQL_SOCKET" liveflow "$STACK_MYSQL_PASSWORD" &&
                mariadb_root "$MYSQL_SOCKET" "CREATE DATABASE IF NOT EXISTS liveflow" ||
                fail_start "cannot create the liveflow user and database"
        echo "$MYSQL_PORT" >"$PIDS/mariadb.port"
        note "mariadb up on 127.0.0.1:$MYSQL_PORT and $MYSQL_SOCKET ($(elapsed) ms)"

        start_redis "$REDIS_PORT" "$RUN/redis" "$PIDS/redis.pid" "$LOGS/redis.log" ||
                fail_start "Redis did not start"
        echo "$REDIS_PORT" >"$PIDS/redis.port"
        note "redis up on 127.0.0.1:$REDIS_PORT ($(elapsed) ms)"

        start_devbroker "$BUILD/bin/liveflow-devbroker" "$RUN/kafka.bootstrap" \
                "$PIDS/devbroker.pid" "$LOGS/devbroker.log" || fail_start "the dev broker did not start"
        sed 's/.*://' "$RUN/kafka.bootstrap" >"$PIDS/devbroker.port"
        note "devbroker up on $(cat "$RUN/kafka.bootstrap") ($(elapsed) ms)"
}

migrate() {
        LIVEFLOW_MYSQL_URL=mysql://liveflow:$STACK_MYSQL_PASSWORD@127.0.0.1:$MYSQL_PORT/liveflow \
                "$BUILD/bin/liveflow-migrate" --create-database --dir "$ROOT/sql" \
                >"$LOGS/migrate.log" 2>&1 || {
                log_tail "$LOGS/migrate.log"
                fail_start "migrations failed"
        }
        note "migrations: $(tail -n 1 "$LOGS/migrate.log" | sed 's/.* INFO trace=- //') ($(elapsed) ms)"
}

# ------------------------------------------------------------------- liveflow processes

NEXT_ADMIN_PORT=$ADMIN_PORT
APPS=""

# start_app NAME BINARY [ARGS...]: one liveflow process with the next admin port, its
# LIVEFLOW_INSTANCE_ID made from NAME (consumer-record@2 is consumer-record-2: Kafka allows
# only [A-Za-z0-9._-] there). The target list is rewritten with it.
start_app() {
        local name=$1 port=$NEXT_ADMIN_PORT instance
        shift
        require_free_port "$port" LIVEFLOW_STACK_ADMIN_PORT
        instance=$(printf '%s' "$name" | tr '@' '-')
        spawn "$PIDS/$name.pid" "$LOGS/$name.log" env LIVEFLOW_ADMIN_PORT="$port" \
                LIVEFLOW_INSTANCE_ID="$instance" "$@"
        echo "$port" >"$PIDS/$name.port"
        APPS="$APPS $name:$port"
        NEXT_ADMIN_PORT=$((port + 1))
        write_targets
}

# copies_of ROLE: how many copies of ROLE to start (LIVEFLOW_STACK_COPIES_<ROLE>, 1).
copies_of() {
        local var n
        var=LIVEFLOW_STACK_COPIES_$(printf '%s' "$1" | tr 'a-z.-' 'A-Z__')
        n=$(eval "printf '%s' \"\${$var:-1}\"")
        case "$n" in '' | *[!0-9]*) fail_start "$var: \"$n\" is not a number of copies" ;; esac
        [ "$n" -le 16 ] || fail_start "$var: $n copies is more than 16"
        echo "$n"
}

# start_copies NAME BINARY [ARGS...]: the copies of one role: NAME, NAME@2, NAME@3, ...
start_copies() {
        local name=$1 n i=1
        shift
        n=$(copies_of "${name#consumer-}") || exit 1
        while [ "$i" -le "$n" ]; do
                if [ "$i" -eq 1 ]; then start_app "$name" "$@"; else start_app "$name@$i" "$@"; fi
                i=$((i + 1))
        done
}

# have_binary NAME: warns and fails when $BUILD/bin/NAME was not built.
have_binary() {
        [ -x "$BUILD/bin/$1" ] && return 0
        note "warning: $BUILD/bin/$1 is missing; not started"
        return 1
}

start_apps() {
        local role roles
        # The processes read their settings from the environment we just wrote.
        . "$RUN/env"
        if have_binary liveflow-receiver; then
                require_free_port "$HTTP_PORT" LIVEFLOW_STACK_HTTP_PORT
                start_app receiver "$BUILD/bin/liveflow-receiver"
        fi
        if have_binary liveflow-consumer; then
                roles=$("$BUILD/bin/liveflow-consumer" --list-roles) ||
                        fail_start "liveflow-consumer --list-roles failed"
                for role in $roles; do
                        case "$role" in *[!a-z0-9_.-]*) fail_start "bad consumer role \"$role\"" ;; esac
                        start_copies "consumer-$role" "$BUILD/bin/liveflow-consumer" "$role"
                done
        fi
        [ -x "$BUILD/bin/liveflow-settlement" ] && start_copies settlement "$BUILD/bin/liveflow-settlement"
        [ -x "$BUILD/bin/liveflow-stats" ] && start_copies stats "$BUILD/bin/liveflow-stats"
        return 0
}

# ------------------------------------------------------------------- Prometheus

# write_targets: Prometheus's file-based target list: every liveflow process with a PID
# file and an admin port, labelled with its process name (consumer-record@2) and binary.
# Prometheus rereads the file when it changes, so a copy started or stopped here is
# scraped or dropped without a restart.
write_targets() {
        local f name first=1
        [ -d "$PROM_DIR" ] || return 0
        {
                echo "["
                for f in "$PIDS"/*.port; do
                        [ -e "$f" ] || continue
                        name=$(basename "$f" .port)
                        case "$name" in mariadb | redis | devbroker | prometheus | textfile | cron) continue ;; esac
                        [ -f "$PIDS/$name.pid" ] || continue
                        [ "$first" -eq 1 ] || echo ","
                        first=0
                        printf '  {"targets": ["127.0.0.1:%s"], "labels": {"process": "%s", "service": "%s"}}' \
                                "$(cat "$f")" "$name" "$(pid_command "$name")"
                done
                echo
                echo "]"
        } >"$PROM_DIR/targets.json.tmp" && mv "$PROM_DIR/targets.json.tmp" "$PROM_DIR/targets.json"
}

# prometheus_wanted: true when a Prometheus is to be started (and its port is free).
prometheus_wanted() {
        [ "$PROM_PORT" != off ] || return 1
        command -v prometheus >/dev/null 2>&1 || {
                note "warning: prometheus is not installed (make deps); starting without it"
                return 1
        }
        check_port_var LIVEFLOW_STACK_PROMETHEUS_PORT "$PROM_PORT"
        if port_is_busy "$PROM_PORT"; then
                [ -z "${LIVEFLOW_STACK_PROMETHEUS_PORT:-}" ] ||
                        fail_start "port $PROM_PORT is in use by another process; set LIVEFLOW_STACK_PROMETHEUS_PORT to a free port"
                note "warning: port $PROM_PORT is in use; starting without Prometheus (set LIVEFLOW_STACK_PROMETHEUS_PORT)"
                return 1
        fi
        TEXTFILE_PORT=${LIVEFLOW_STACK_TEXTFILE_PORT:-$((PROM_PORT + 1))}
        check_port_var LIVEFLOW_STACK_TEXTFILE_PORT "$TEXTFILE_PORT"
        if port_is_busy "$TEXTFILE_PORT"; then
                [ -z "${LIVEFLOW_STACK_PROMETHEUS_PORT:-}${LIVEFLOW_STACK_TEXTFILE_PORT:-}" ] ||
                        fail_start "port $TEXTFILE_PORT is in use by another process; set LIVEFLOW_STACK_TEXTFILE_PORT to a free port"
                note "warning: port $TEXTFILE_PORT is in use; starting without Prometheus (set LIVEFLOW_STACK_PROMETHEUS_PORT)"
                return 1
        fi
}

# start_prometheus: a private Prometheus on 127.0.0.1:PROM_PORT with liveflow's rules and
# consoles, scraping the target list, its data under $PROM_DIR/data; and what stands in for
# node_exporter's textfile collector: $TEXTFILE_DIR served on TEXTFILE_PORT. Waited for later.
start_prometheus() {
        mkdir -p "$PROM_DIR/data" "$TEXTFILE_DIR" || fail_start "cannot make $PROM_DIR"
        write_targets
        spawn "$PIDS/textfile.pid" "$LOGS/textfile.log" python3 -m http.server --bind 127.0.0.1 \
                --directory "$TEXTFILE_DIR" "$TEXTFILE_PORT"
        echo "$TEXTFILE_PORT" >"$PIDS/textfile.port"
        cat >"$PROM_DIR/prometheus.yml" <<EOF || fail_start "cannot write $PROM_DIR/prometheus.yml"
# Written by ops/stack.sh; the processes are listed in targets.json, kept current by it.
global:
  scrape_interval: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL
rule_files:
  - $ROOT/ops/prometheus/rules/*.yml
scrape_configs:
  - job_name: liveflow
    file_sd_configs:
      - files: ['$PROM_DIR/targets.json']
        refresh_interval: 5s
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:$PROM_PORT']
  # Cron jobs' results (ops/reconcile-metrics.sh, ops/dlq-metrics.sh), as node_exporter's
  # textfile collector would serve them.
  - job_name: liveflow-reconcile
    metrics_path: /liveflow_reconcile.prom
    static_configs:
      - targets: ['127.0.0.1:$TEXTFILE_PORT']
  - job_name: liveflow-dlq
    metrics_path: /liveflow_dlq.prom
    static_configs:
      - targets: ['127.0.0.1:$TEXTFILE_PORT']
EOF
        spawn "$PIDS/prometheus.pid" "$LOGS/prometheus.log" prometheus \
                --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
                --storage.tsdb.retention.time=7d --web.listen-address="127.0.0.1:$PROM_PORT" \
                --web.console.templates="$ROOT/ops/prometheus/consoles" \
                --web.console.libraries="$ROOT/ops/prometheus/console_libraries"
        echo "$PROM_PORT" >"$PIDS/prometheus.port"
}

wait_prometheus_ready() {
        await_start 30 "$PIDS/prometheus.pid" "$LOGS/prometheus.log" prometheus \
                "answer on :$PROM_PORT/-/ready in 30 s" \
                curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PROM_PORT/-/ready" ||
                fail_start "Prometheus is not ready"
        await_start 10 "$PIDS/textfile.pid" "$LOGS/textfile.log" "the textfile server" \
                "answer on :$TEXTFILE_PORT in 10 s" \
                curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$TEXTFILE_PORT/" ||
                fail_start "the textfile server is not ready"
        note "prometheus ready on 127.0.0.1:$PROM_PORT ($(elapsed) ms)"
}

# cron_jobs: what an operator's crontab runs, recorded for Prometheus: the reconciliation
# (ops/reconcile-metrics.sh) and the dead-letter topics (ops/dlq-metrics.sh). The
# environment must be .run/env's.
cron_jobs() {
        local rc=0
        if [ -x "$BUILD/bin/liveflow-settlement" ]; then
                sh "$ROOT/ops/reconcile-metrics.sh" "$TEXTFILE_DIR" \
                        "$BUILD/bin/liveflow-settlement" reconcile >"$LOGS/reconcile.log" 2>&1 || rc=1
        fi
        if [ -x "$BUILD/bin/liveflow-ctl" ]; then
                sh "$ROOT/ops/dlq-metrics.sh" "$TEXTFILE_DIR" "$BUILD/bin/liveflow-ctl" dlq list \
                        --json >"$LOGS/dlq-list.log" 2>&1 || rc=1
        fi
        return "$rc"
}

# start_cron: runs the jobs once (make run waits for that), then every
# LIVEFLOW_STACK_CRON_INTERVAL_S in a background loop that make stop ends.
start_cron() {
        if cron_jobs; then
                note "cron jobs: the ledgers agree, the DLQ listed ($(elapsed) ms)"
        else
                note "warning: reconcile found differences or a job failed (see $LOGS/reconcile.log, $LOGS/dlq-list.log)"
        fi
        spawn "$PIDS/cron.pid" "$LOGS/cron.log" sh "$ROOT/ops/stack.sh" cron-loop "$BUILD"
}

# wait_apps_ready: every process must answer 200 on /readyz within 30 s.
wait_apps_ready() {
        local entry name port
        for entry in $APPS; do
                name=${entry%%:*}
                port=${entry#*:}
                await_start 30 "$PIDS/$name.pid" "$LOGS/$name.log" "$name" \
                        "answer 200 on :$port/readyz in 30 s" \
                        curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz" ||
                        fail_start "$name is not ready"
                note "$name ready (admin :$port) ($(elapsed) ms)"
        done
}

# cron_loop BUILD_DIR: the background loop of start_cron (internal: `stack.sh cron-loop`).
cron_loop() {
        local interval=${LIVEFLOW_STACK_CRON_INTERVAL_S:-300} sleeper=""
        BUILD=$1
        case "$interval" in '' | *[!0-9]* | 0) interval=300 ;; esac
        . "$RUN/env"
        trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM INT HUP
        while :; do
                sleep "$interval" &
                sleeper=$!
                wait "$sleeper"
                sleeper=""
                cron_jobs || note "a job found differences or failed"
        done
}

# ------------------------------------------------------------------- scaling

# copy_names BASE: the PID-file names of BASE's copies that have a PID file (BASE, BASE@2, ...).
copy_names() {
        local f
        for f in "$PIDS/$1.pid" "$PIDS/$1"@*.pid; do
                [ -e "$f" ] && basename "$f" .pid
        done
}

# copy_index NAME: 1 for BASE, N for BASE@N.
copy_index() {
        case "$1" in *@*) echo "${1##*@}" ;; *) echo 1 ;; esac
}

# max_app_port: the highest admin port of a liveflow process (LIVEFLOW_STACK_ADMIN_PORT - 1
# when none has one).
max_app_port() {
        local f name max=$((ADMIN_PORT - 1)) p
        for f in "$PIDS"/*.port; do
                [ -e "$f" ] || continue
                name=$(basename "$f" .port)
                case "$name" in mariadb | redis | devbroker | prometheus | textfile | cron) continue ;; esac
                p=$(cat "$f")
                [ "$p" -gt "$max" ] && max=$p
        done
        echo "$max"
}

# stack_scale ROLE N: starts or stops copies of a worker role on the running stack until N
# run (the highest-numbered ones stop first); the target list follows.
stack_scale() {
        local role=$1 want=$2 base have name i port entry
        case "$want" in '' | *[!0-9]*) die "scale: \"$want\" is not a number of copies" ;; esac
        [ "$want" -le 16 ] || die "scale: $want copies is more than 16"
        [ -f "$RUN/build" ] && [ "$(running_state)" != down ] || die "scale: the stack is not running"
        BUILD=$(cat "$RUN/build")
        case "$role" in
        settlement | stats)
                base=$role
                set -- "$BUILD/bin/liveflow-$role"
                ;;
        *)
                "$BUILD/bin/liveflow-consumer" --list-roles | grep -qx "$role" ||
                        die "scale: no role \"$role\" (liveflow-consumer --list-roles, settlement, stats)"
                base=consumer-$role
                set -- "$BUILD/bin/liveflow-consumer" "$role"
                ;;
        esac
        SCALING=1
        have=$(copy_names "$base" | wc -l)
        # Down: the highest-numbered copies first.
        while [ "$have" -gt "$want" ]; do
                name=$(copy_names "$base" | while read -r n; do echo "$(copy_index "$n") $n"; done |
                        sort -n | tail -n 1 | cut -d' ' -f2)
                stop_pidfiles 15 "$PIDS/$name.pid"
                rm -f "$PIDS/$name.port"
                have=$((have - 1))
        done
        # Up: the lowest free copy numbers, each on the next free port above the others'.
        . "$RUN/env"
        APPS=""
        i=1
        while [ "$have" -lt "$want" ]; do
                if [ "$i" -eq 1 ]; then name=$base; else name=$base@$i; fi
                i=$((i + 1))
                [ -e "$PIDS/$name.pid" ] && continue
                port=$(($(max_app_port) + 1))
                while port_is_busy "$port"; do port=$((port + 1)); done
                NEXT_ADMIN_PORT=$port
                start_app "$name" "$@"
                have=$((have + 1))
        done
        write_targets
        for entry in $APPS; do
                name=${entry%%:*}
                port=${entry#*:}
                if ! wait_for 30 "$(cat "$PIDS/$name.pid")" \
                        curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz"; then
                        log_tail "$LOGS/$name.log"
                        stop_pidfiles 15 "$PIDS/$name.pid"
                        rm -f "$PIDS/$name.port"
                        write_targets
                        die "scale: $name is not ready"
                fi
                note "$name ready (admin :$port)"
        done
        echo "stack: $base: $have cop$([ "$have" -eq 1 ] && echo y || echo ies)"
}

# ------------------------------------------------------------------- commands

stack_start() {
        BUILD=$(cd "${1:-build}" 2>/dev/null && pwd) || die "no build directory ${1:-build}; run make first"
        [ -x "$BUILD/bin/liveflow-devbroker" ] && [ -x "$BUILD/bin/liveflow-migrate" ] ||
                die "$BUILD/bin has no liveflow-devbroker or liveflow-migrate; run make first"
        check_port_var LIVEFLOW_STACK_MYSQL_PORT "$MYSQL_PORT"
        check_port_var LIVEFLOW_STACK_REDIS_PORT "$REDIS_PORT"
        check_port_var LIVEFLOW_STACK_HTTP_PORT "$HTTP_PORT"
        check_port_var LIVEFLOW_STACK_ADMIN_PORT "$ADMIN_PORT"
        case "$SCRAPE_INTERVAL" in
        [1-9]*s | [1-9]*m) ;;
        *) die "LIVEFLOW_STACK_SCRAPE_INTERVAL: \"$SCRAPE_INTERVAL\" is not like 5s or 1m" ;;
        esac
        mkdir -p "$PIDS" "$LOGS" || die "cannot create $RUN"

        case $(running_state) in
        up)
                echo "stack already running:"
                show_status
                exit 0
                ;;
        partial)
                note "stack partly running; restarting it"
                stop_all
                ;;
        esac

        # One generation of old logs is kept, so a failure's log tail shows this run only.
        rm -rf "$LOGS.previous"
        mv "$LOGS" "$LOGS.previous" && mkdir -p "$LOGS" || die "cannot rotate $LOGS"

        trap 'note "interrupted"; stop_all; exit 130' INT TERM HUP
        echo "$BUILD" >"$RUN/build"
        load_secrets
        start_services
        migrate
        write_env
        PROM=0
        if prometheus_wanted; then
                start_prometheus
                PROM=1
        fi
        start_apps
        wait_apps_ready
        if [ "$PROM" -ne 0 ]; then
                wait_prometheus_ready
                start_cron
        fi
        trap - INT TERM HUP

        echo
        echo "liveflow is up in $(elapsed) ms"
        echo "  receiver URL: http://127.0.0.1:$HTTP_PORT"
        [ "$PROM" -eq 0 ] ||
                echo "  Prometheus:   http://127.0.0.1:$PROM_PORT  (console: /consoles/liveflow.html)"
        echo "  environment:  source $RUN/env"
        echo "  logs:         $LOGS/"
        echo "  stop:         make stop"
}

stack_stop() {
        if [ ! -d "$PIDS" ] || [ -z "$(ls "$PIDS"/*.pid 2>/dev/null)" ]; then
                echo "stack: nothing running"
                return 0
        fi
        stop_all
        echo "stack: stopped"
}

case "${1:-}" in
start)
        shift
        stack_start "$@"
        ;;
stop) stack_stop ;;
scale)
        [ $# -eq 3 ] || die "usage: sh ops/stack.sh scale ROLE N"
        stack_scale "$2" "$3"
        ;;
status)
        echo "stack: $(running_state)"
        show_status
        ;;
cron-loop)
        cron_loop "${2:-build}"
        ;;
*)
        echo "usage: sh ops/stack.sh start [BUILD_DIR] | stop | status | scale ROLE N" >&2
        exit 2
        ;;
esac
