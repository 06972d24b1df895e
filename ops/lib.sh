# ops/lib.sh: shell helpers shared by ops/stack.sh and tests/fixtures/services.sh: start
# MariaDB, Redis and the dev broker as background processes with PID files, wait for
# them, and stop them by PID. Sourced, never run; POSIX sh (dash).
#
# Every process is started with setsid, so it has its own session: a Ctrl-C or a closed
# terminal does not reach it, and only stop_pidfiles ends it. In a non-interactive shell
# the background child is no process-group leader, so setsid execs in place and $! is
# the server's own PID.

# note MESSAGE...: one line on stderr, prefixed with the calling script's name.
note() {
        printf '%s: %s\n' "${LF_PROG:-liveflow}" "$*" >&2
}

now_ms() {
        date +%s%3N
}

# port_is_busy PORT: true when something listens on TCP PORT, on any address.
port_is_busy() {
        ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# free_port: prints a port nobody listens on, from 20000-32767: below the kernel's
# ephemeral range, where outgoing connections and the dev broker's listeners live.
free_port() {
        local i=0 p
        while [ "$i" -lt 200 ]; do
                p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 12768))
                if ! port_is_busy "$p"; then
                        echo "$p"
                        return 0
                fi
                i=$((i + 1))
        done
        return 1
}

# pid_alive PID: true when PID runs (a zombie counts as dead).
pid_alive() {
        local state
        case "${1:-}" in '' | *[!0-9]*) return 1 ;; esac
        state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
        [ -n "$state" ] && [ "$state" != Z ]
}

# pid_matches PID COMMAND: true when PID's argv[0] is COMMAND (any directory), so that a
# PID file never makes us signal whatever process later reused the number. Redis rewrites
# its argv into "redis-server host:port", hence the prefix match.
pid_matches() {
        local argv0
        argv0=$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | head -n 1)
        argv0=${argv0##*/}
        case "$argv0" in "$2" | "$2 "*) return 0 ;; esac
        return 1
}

# pid_command NAME: the command a PID file called NAME.pid belongs to; NAME@N is the N-th
# copy of NAME.
pid_command() {
        case "${1%@*}" in
        mariadb) echo mariadbd ;;
        redis) echo redis-server ;;
        prometheus) echo prometheus ;;
        textfile) echo python3 ;;
        cron) echo sh ;;
        consumer-*) echo liveflow-consumer ;;
        *) echo "liveflow-${1%@*}" ;;
        esac
}

# pidfile_running FILE: prints the PID in FILE and succeeds when it is running as the
# command the file's name says.
pidfile_running() {
        local pid name
        [ -f "$1" ] || return 1
        pid=$(cat "$1" 2>/dev/null)
        name=$(basename "$1" .pid)
        pid_alive "$pid" && pid_matches "$pid" "$(pid_command "$name")" || return 1
        echo "$pid"
}

# wait_for TIMEOUT_S PID COMMAND...: runs COMMAND every 0.05 s until it succeeds (0), PID
# dies (1; PID may be empty to skip that check) or TIMEOUT_S passes (2).
wait_for() {
        local deadline pid=$2
        deadline=$(($(now_ms) + $1 * 1000))
        shift 2
        while :; do
                "$@" >/dev/null 2>&1 && return 0
                if [ -n "$pid" ] && ! pid_alive "$pid"; then
                        "$@" >/dev/null 2>&1 && return 0
                        return 1
                fi
                [ "$(now_ms)" -lt "$deadline" ] || return 2
                sleep 0.05
        done
}

# startup_failure WAIT_FOR_STATUS NAME WHAT: says why a wait_for on NAME failed.
startup_failure() {
        if [ "$1" -eq 1 ]; then
                note "$2 exited during startup"
        else
                note "$2 did not $3"
        fi
}

# log_tail FILE: the last 20 lines of a log, indented, on stderr.
log_tail() {
        [ -f "$1" ] || return 0
        printf '%s: last lines of %s:\n' "${LF_PROG:-liveflow}" "$1" >&2
        tail -n 20 "$1" | sed 's/^/    /' >&2
}

# await_start TIMEOUT_S PIDFILE LOGFILE NAME WHAT COMMAND...: wait_for COMMAND while the
# process of PIDFILE runs; when it does not succeed, says why ("NAME did not WHAT", or that it
# exited) with the tail of LOGFILE, and is false.
await_start() {
        local timeout_s=$1 pidfile=$2 logfile=$3 name=$4 what=$5 rc
        shift 5
        wait_for "$timeout_s" "$(cat "$pidfile")" "$@"
        rc=$?
        [ "$rc" -eq 0 ] && return 0
        startup_failure "$rc" "$name" "$what"
        log_tail "$logfile"
        return 1
}

# wait_gone PID TIMEOUT_S: waits until PID no longer runs; false if it still does.
wait_gone() {
        local deadline
        deadline=$(($(now_ms) + $2 * 1000))
        while pid_alive "$1"; do
                [ "$(now_ms)" -lt "$deadline" ] || return 1
                sleep 0.05
        done
}

# stop_pidfiles TIMEOUT_S FILE...: SIGTERM to each running PID file's process at once,
# then waits up to TIMEOUT_S for all, SIGKILLs stragglers and removes the files. A file
# whose process is gone, or whose PID now belongs to another command, is only removed;
# names that match no file (an unmatched glob) are skipped.
stop_pidfiles() {
        local timeout_s=$1 f pid name started deadline
        shift
        started=$(now_ms)
        deadline=$((started + timeout_s * 1000))
        for f in "$@"; do
                [ -f "$f" ] || continue
                if pid=$(pidfile_running "$f"); then
                        kill -TERM "$pid" 2>/dev/null
                else
                        note "$(basename "$f" .pid) was not running (removed its stale PID file)"
                        rm -f "$f"
                fi
        done
        # The files left are those of the processes just signalled.
        for f in "$@"; do
                [ -f "$f" ] || continue
                pid=$(cat "$f")
                name=$(basename "$f" .pid)
                if ! wait_gone "$pid" $(((deadline - $(now_ms) + 999) / 1000)); then
                        kill -KILL "$pid" 2>/dev/null
                        wait_gone "$pid" 5
                        note "killed $name (pid $pid): no exit ${timeout_s} s after SIGTERM"
                else
                        note "stopped $name (pid $pid) in $(($(now_ms) - started)) ms"
                fi
                if pid_alive "$pid"; then
                        note "$name (pid $pid) survived SIGKILL; PID file kept"
                        continue
                fi
                rm -f "$f"
        done
}

# spawn PIDFILE LOGFILE COMMAND...: starts COMMAND in its own session, stdout and stderr
# appended to LOGFILE, and writes its PID to PIDFILE.
spawn() {
        local pidfile=$1 logfile=$2
        shift 2
        setsid "$@" </dev/null >>"$logfile" 2>&1 &
        echo "$!" >"$pidfile"
}

# ------------------------------------------------------------------- MariaDB

# root_arg: mariadbd refuses to run as root unless told to.
root_arg() {
        [ "$(id -u)" -eq 0 ] && echo --user=root
}

# mariadb_install DATADIR LOGFILE: a fresh data directory, once. It is built beside the
# target and renamed, so that an interrupted install never looks finished.
mariadb_install() {
        local datadir=$1 logfile=$2
        [ -d "$datadir/mysql" ] && return 0
        rm -rf "$datadir.tmp"
        mkdir -p "$datadir.tmp" || return 1
        # --no-defaults must come first; "normal" lets root log in without a password
        # (socket only, see mariadb_secure), where "socket" would need a matching Unix user.
        # shellcheck disable=SC2046 # root_arg is one word or none
        if ! mariadb-install-db --no-defaults $(root_arg) --auth-root-authentication-method=normal \
                --skip-test-db --skip-name-resolve --datadir="$datadir.tmp" >"$logfile" 2>&1; then
                note "mariadb-install-db failed"
                log_tail "$logfile"
                return 1
        fi
        rm -rf "$datadir"
        mv "$datadir.tmp" "$datadir"
}

# start_mariadb DATADIR SOCKET PORT PIDFILE LOGFILE [MARIADBD OPTIONS...]: installs on
# first use, starts mariadbd on 127.0.0.1:PORT and SOCKET, and waits until it answers.
start_mariadb() {
        local datadir=$1 socket=$2 port=$3 pidfile=$4 logfile=$5
        shift 5
        mariadb_install "$datadir" "$logfile.install" || return 1
        mkdir -p "$(dirname "$socket")"
        # Its own temp dir: a shared /tmp may be cleaned under a running server's feet.
        mkdir -p "$datadir-tmp" && chmod 0700 "$datadir-tmp" && chown --reference="$datadir" "$datadir-tmp"
        # shellcheck disable=SC2046 # root_arg is one word or none
        spawn "$pidfile" "$logfile" mariadbd --no-defaults $(root_arg) --datadir="$datadir" \
                --socket="$socket" --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
                --pid-file="$datadir/mariadbd.pid" --log-error="$logfile" --tmpdir="$datadir-tmp" \
                --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci "$@"
        await_start 60 "$pidfile" "$logfile" mariadbd "answer in 60 s" \
                mariadb-admin --no-defaults --socket="$socket" -uroot ping
}

# mariadb_root SOCKET SQL: runs SQL as root over the socket.
mariadb_root() {
        mariadb --no-defaults --socket="$1" -uroot --batch -e "$2"
}

# mariadb_secure SOCKET: root without a password only over the socket (0700 directory);
# mariadb-install-db also made passwordless root accounts that TCP logins would match.
mariadb_secure() {
        mariadb_root "$1" "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1';
                SET @q = CONCAT('DROP USER IF EXISTS ''root''@''', @@hostname, '''');
                PREPARE s FROM @q; EXECUTE s; DEALLOCATE PREPARE s;"
}

# mariadb_user SOCKET USER PASSWORD [GRANT SUFFIX]: creates USER at 127.0.0.1 and
# localhost with ALL PRIVILEGES ON *.*, or sets its password when it exists.
mariadb_user() {
        local socket=$1 user=$2 pw=$3 suffix=${4:-} sql="" host
        for host in 127.0.0.1 localhost; do
                sql="$sql CREATE USER IF NOT EXISTS '$user'@'$host' IDENTIFIED BY '$pw';
                        ALTER USER '$user'@'$host' IDENTIFIED BY '$pw';
                        GRANT ALL PRIVILEGES ON *.* TO '$user'@'$host' $suffix;"
        done
        mariadb_root "$socket" "$sql"
}

# short_socket_dir PREFERRED_DIR: PREFERRED_DIR when a socket in it fits in sun_path
# (108 bytes with the NUL), else a private /tmp directory named after it.
short_socket_dir() {
        local dir=$1
        if [ "${#dir}" -gt 90 ]; then
                dir=/tmp/liveflow-$(id -u)-$(printf '%s' "$1" | cksum | cut -d' ' -f1)
        fi
        mkdir -p "$dir" && chmod 700 "$dir" && echo "$dir"
}

# ------------------------------------------------------------------- Redis

# start_redis PORT DIR PIDFILE LOGFILE: redis-server on 127.0.0.1:PORT in the foreground
# (no daemonizing, so the PID is ours), without persistence, working directory DIR.
start_redis() {
        local port=$1 dir=$2 pidfile=$3 logfile=$4
        mkdir -p "$dir"
        spawn "$pidfile" "$logfile" redis-server --bind 127.0.0.1 --port "$port" --save '' \
                --appendonly no --daemonize no --dir "$dir"
        await_start 30 "$pidfile" "$logfile" redis-server "answer in 30 s" \
                sh -c "redis-cli -h 127.0.0.1 -p $port ping | grep -q PONG"
}

# ------------------------------------------------------------------- dev broker

# start_devbroker BINARY BOOTSTRAP_FILE PIDFILE LOGFILE [VAR=VALUE...]: the dev broker,
# with VAR=VALUE (e.g. LIVEFLOW_DEVBROKER_PARTITIONS=6) added to its environment; waits
# for its bootstrap file.
start_devbroker() {
        local bin=$1 bootstrap=$2 pidfile=$3 logfile=$4
        shift 4
        rm -f "$bootstrap"
        spawn "$pidfile" "$logfile" env LIVEFLOW_DEVBROKER_BOOTSTRAP_FILE="$bootstrap" "$@" "$bin"
        await_start 30 "$pidfile" "$logfile" liveflow-devbroker "write its bootstrap file in 30 s" \
                test -s "$bootstrap"
}
