#!/bin/sh
# ops/deps.sh: installs every Debian package liveflow needs to build, test and run
# (make deps). Idempotent: when all are installed it only asks dpkg and exits.
# Package postinst scripts are kept from starting system services (a temporary
# policy-rc.d): liveflow runs its own private MariaDB and Redis.
set -u

PACKAGES="build-essential pkg-config clang
librdkafka-dev libmicrohttpd-dev libhiredis-dev libavro-dev libjansson-dev libcjson-dev libssl-dev
libmariadb-dev libmariadb-dev-compat libcurl4-openssl-dev libcriterion-dev
mariadb-server mariadb-client redis-server
xxd curl kcat wrk python3-avro
prometheus chromium chromium-driver"

POLICY=/usr/sbin/policy-rc.d

note() {
        printf 'deps: %s\n' "$*" >&2
}

# missing_packages: the packages of PACKAGES that dpkg does not list as installed (one
# dpkg-query for all of them keeps `make deps` fast when nothing is missing).
missing_packages() {
        local installed p missing=""
        # shellcheck disable=SC2086
        installed=$(dpkg-query -W -f='${Package} ${Status}\n' $PACKAGES 2>/dev/null |
                sed -n 's/ install ok installed$//p')
        for p in $PACKAGES; do
                printf '%s\n' "$installed" | grep -qx "$p" || missing="$missing $p"
        done
        echo "$missing"
}

# set_sudo: SUDO is the prefix that runs a command as root (empty when we are root).
set_sudo() {
        SUDO=""
        [ "$(id -u)" -eq 0 ] && return 0
        if command -v sudo >/dev/null 2>&1; then
                SUDO=sudo
                return 0
        fi
        note "must run as root (or with sudo installed) to install:$MISSING"
        exit 1
}

# Exit code 101 tells invoke-rc.d "action forbidden", so no service starts during the
# install. Only our own file is ever removed: an existing policy is left as it is.
block_services() {
        if [ -e "$POLICY" ]; then
                return 0
        fi
        printf '#!/bin/sh\n# written by liveflow ops/deps.sh during apt-get install\nexit 101\n' |
                $SUDO tee "$POLICY" >/dev/null && $SUDO chmod 755 "$POLICY" && OWN_POLICY=1
}

unblock_services() {
        [ "${OWN_POLICY:-0}" -eq 1 ] && $SUDO rm -f "$POLICY"
        return 0
}

MISSING=$(missing_packages)
if [ -z "$MISSING" ]; then
        exit 0
fi
set_sudo
note "installing:$MISSING"
OWN_POLICY=0
trap unblock_services EXIT
trap 'exit 130' INT TERM HUP
block_services || note "warning: could not write $POLICY; services may start"
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $MISSING ||
        { note "apt-get failed"; exit 1; }
MISSING=$(missing_packages)
if [ -n "$MISSING" ]; then
        note "still missing after apt-get:$MISSING"
        exit 1
fi
note "done"
