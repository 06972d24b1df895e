#!/bin/sh
# ops/stack.sh: the local stack (private MariaDB, private Redis, the dev broker and every
# liveflow process) started, stopped and shown by PID, with all state under .run/.
#
#   sh ops/stack.sh start [BUILD_DIR]   (make run)
#   sh ops/stack.sh stop                (make stop)
#   sh ops/stack.sh status
#
# Ports: LIVEFLOW_STACK_MYSQL_PORT (3307), LIVEFLOW_STACK_REDIS_PORT (6380),
# LIVEFLOW_STACK_HTTP_PORT (8080), LIVEFLOW_STACK_ADMIN_PORT (9100: the receiver's admin
# port, then one more for each further process).
set -u

LF_PROG=stack
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/ops/lib.sh"

RUN=$ROOT/.run
PIDS=$RUN/pid
LOGS=$RUN/log
STARTED_MS=$(now_ms)

MYSQL_PORT=${LIVEFLOW_STACK_MYSQL_PORT:-3307}
REDIS_PORT=${LIVEFLOW_STACK_REDIS_PORT:-6380}
HTTP_PORT=${LIVEFLOW_STACK_HTTP_PORT:-8080}
ADMIN_PORT=${LIVEFLOW_STACK_ADMIN_PORT:-9100}

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
        stop_pidfiles 15 "$PIDS/receiver.pid"
        stop_pidfiles 15 "$PIDS"/consumer-*.pid "$PIDS/settlement.pid" "$PIDS/stats.pid"
        stop_pidfiles 15 "$PIDS/devbroker.pid"
        stop_pidfiles 15 "$PIDS/redis.pid"
        stop_pidfiles 15 "$PIDS/mariadb.pid"
        stop_pidfiles 15 "$PIDS"/*.pid
}

# fail_start MESSAGE: undoes a start that went wrong.
fail_start() {
        note "$*"
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

show_status() {
        local f name pid
        for name in mariadb redis devbroker; do
                [ -f "$PIDS/$name.pid" ] || printf '  %-28s down\n' "$name"
        done
        for f in "$PIDS"/*.pid; do
                [ -e "$f" ] || continue
                name=$(basename "$f" .pid)
                if pid=$(pidfile_running "$f"); then
                        printf '  %-28s up    pid %s\n' "$name" "$pid"
                else
                        printf '  %-28s down  (stale PID file)\n' "$name"
                fi
        done
        if [ -f "$RUN/env" ] && [ "$(running_state)" != down ]; then
                sed -n 's/^export LIVEFLOW_RECEIVER_URL=/  receiver URL: /p' "$RUN/env"
                echo "  environment:  source .run/env"
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
        note "mariadb up on 127.0.0.1:$MYSQL_PORT and $MYSQL_SOCKET ($(elapsed) ms)"

        start_redis "$REDIS_PORT" "$RUN/redis" "$PIDS/redis.pid" "$LOGS/redis.log" ||
                fail_start "Redis did not start"
        note "redis up on 127.0.0.1:$REDIS_PORT ($(elapsed) ms)"

        start_devbroker "$BUILD/bin/liveflow-devbroker" "$RUN/kafka.bootstrap" \
                "$PIDS/devbroker.pid" "$LOGS/devbroker.log" || fail_start "the dev broker did not start"
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

# start_app NAME BINARY [ARGS...]: one liveflow process with the next admin port.
start_app() {
        local name=$1 port=$NEXT_ADMIN_PORT
        shift
        require_free_port "$port" LIVEFLOW_STACK_ADMIN_PORT
        spawn "$PIDS/$name.pid" "$LOGS/$name.log" env LIVEFLOW_ADMIN_PORT="$port" "$@"
        APPS="$APPS $name:$port"
        NEXT_ADMIN_PORT=$((port + 1))
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
                        start_app "consumer-$role" "$BUILD/bin/liveflow-consumer" "$role"
                done
        fi
        [ -x "$BUILD/bin/liveflow-settlement" ] && start_app settlement "$BUILD/bin/liveflow-settlement"
        [ -x "$BUILD/bin/liveflow-stats" ] && start_app stats "$BUILD/bin/liveflow-stats"
        return 0
}

# wait_apps_ready: every process must answer 200 on /readyz within 30 s.
wait_apps_ready() {
        local entry name port rc
        for entry in $APPS; do
                name=${entry%%:*}
                port=${entry#*:}
                wait_for 30 "$(cat "$PIDS/$name.pid")" \
                        curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz"
                rc=$?
                if [ "$rc" -ne 0 ]; then
                        startup_failure "$rc" "$name" "answer 200 on :$port/readyz in 30 s"
                        log_tail "$LOGS/$name.log"
                        fail_start "$name is not ready"
                fi
                note "$name ready (admin :$port) ($(elapsed) ms)"
        done
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
        load_secrets
        start_services
        migrate
        write_env
        start_apps
        wait_apps_ready
        trap - INT TERM HUP

        echo
        echo "liveflow is up in $(elapsed) ms"
        echo "  receiver URL: http://127.0.0.1:$HTTP_PORT"
        echo "  environment:  source .run/env"
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
status)
        echo "stack: $(running_state)"
        show_status
        ;;
*)
        echo "usage: sh ops/stack.sh start [BUILD_DIR] | stop | status" >&2
        exit 2
        ;;
esac
