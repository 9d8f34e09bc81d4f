# shellcheck shell=bash
#
# lib.sh: shell functions shared by Plaint's operator scripts (up.sh, down.sh,
# pg.sh, test.sh). Source it from bash; it works under `set -euo pipefail`.
#
# What it owns: the var/ folder of the checkout (git-ignored): var/pg (the
# private development PostgreSQL), var/pg-test (the test one), var/log and
# var/run (daemon logs and pid files). It never touches a system-wide
# PostgreSQL cluster: the private servers listen on 127.0.0.1 only, on their
# own ports, with their own data directories.
#
# What it trusts: Debian 12 (apt, dpkg-query, runuser, flock from util-linux),
# and PostgreSQL 15's binaries in /usr/lib/postgresql/15/bin (PLAINT_PG_BIN
# overrides).

# The checkout this file lives in (scripts/..), whatever the caller's cwd is.
PLAINT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export PLAINT_ROOT

# The daemons, in start order (down.sh stops them in reverse).
# shellcheck disable=SC2034  # used by the scripts that source this file
PLAINT_DAEMONS=(plaint-intake plaint-classifier plaint-routing plaint-sla-watchdog
                plaint-notification plaint-desk)

# Debian packages needed to build, run and test everything.
PLAINT_PACKAGES=(build-essential cmake pkg-config git libzmq3-dev libcjson-dev libuv1-dev
                 libpq-dev libsodium-dev libcmocka-dev libhttp-parser-dev libcurl4-openssl-dev uuid-dev
                 postgresql postgresql-contrib python3 python3-jsonschema python3-pytest
                 python3-zmq python3-psycopg2 python3-sklearn clang libclang-rt-14-dev docker-compose procps
                 chromium fonts-wqy-microhei python3-aiosmtpd
                 python3-pytest-xdist
                 iproute2)

plaint_say() { printf '==> %s\n' "$*" >&2; }
plaint_warn() { printf 'warning: %s\n' "$*" >&2; }
plaint_die() {
    printf 'error: %s\n' "$1" >&2
    if [ $# -gt 1 ]; then printf 'hint: %s\n' "$2" >&2; fi
    exit 1
}

# Prints the current time in whole microseconds (EPOCHREALTIME: bash 5).
plaint_now_us() {
    local t="${EPOCHREALTIME:-}"
    if [ -n "$t" ]; then printf '%s\n' "${t//[.,]/}"; else date +%s%6N; fi
}
# The same in seconds, with a "." before the microseconds whatever the locale.
plaint_now() {
    local t
    t="$(plaint_now_us)"
    printf '%s.%s\n' "${t:0:${#t}-6}" "${t:${#t}-6}"
}

# ---------------------------------------------------------------------------
# Packages

# Prints the packages of "$@" that are not installed, one per line.
plaint_missing_packages() {
    local p status
    for p in "$@"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
        if [ "$status" != "installed" ]; then printf '%s\n' "$p"; fi
    done
}

# Installs whatever is missing of PLAINT_PACKAGES (plus any extra names given).
# Does not run apt at all when everything is present, so repeated runs are
# fast. PLAINT_SKIP_DEPS=1 skips the check (for machines managed otherwise).
# shellcheck disable=SC2120  # the extra package names are optional
plaint_deps() {
    if [ "${PLAINT_SKIP_DEPS:-0}" = 1 ]; then return 0; fi
    if ! command -v dpkg-query >/dev/null 2>&1; then
        plaint_warn "dpkg-query not found: not a Debian system, not checking packages"
        return 0
    fi
    local missing
    mapfile -t missing < <(plaint_missing_packages "${PLAINT_PACKAGES[@]}" "$@")
    if [ "${#missing[@]}" -eq 0 ]; then return 0; fi
    plaint_say "installing ${#missing[@]} missing package(s): ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            plaint_die "packages missing: ${missing[*]}" "install them as root with apt-get"
        sudo=(sudo)
    fi
    # Wait for a concurrent apt/dpkg instead of failing on its lock.
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
               -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
    "${apt[@]}" update
    "${apt[@]}" install --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------------------
# Building

# plaint_build DIR [cmake args...]: configures and builds the checkout in DIR
# (relative to the checkout unless absolute). Every binary lands in DIR/bin.
plaint_build() {
    local dir="$1"
    shift
    case "$dir" in /*) ;; *) dir="$PLAINT_ROOT/$dir" ;; esac
    cmake -S "$PLAINT_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" &&
        cmake --build "$dir" -j"$(nproc)"
}

# ---------------------------------------------------------------------------
# Processes

# True when PID is a live process; a zombie (exited, not yet reaped by its
# parent, which may be a slow init) is not.
plaint_pid_alive() {
    local pid="$1" state
    kill -0 "$pid" 2>/dev/null || return 1
    state="$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$pid/stat" 2>/dev/null)" || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# True when PID is a live process whose argv[0] ends in NAME (so a pid file
# that outlived its process, with the pid reused, is not mistaken for it).
plaint_pid_is() {
    local pid="$1" name="$2" argv0
    [ -n "$pid" ] && [ "$pid" -gt 0 ] 2>/dev/null || return 1
    plaint_pid_alive "$pid" || return 1
    argv0="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)" || return 1
    [ "${argv0##*/}" = "$name" ]
}

# Reads the pid in FILE (empty when there is none).
plaint_read_pid() {
    local file="$1"
    if [ -r "$file" ]; then head -n 1 "$file" | tr -dc '0-9'; fi
}

# plaint_stop_pids TIMEOUT_S PID...: SIGTERM to each, waits up to TIMEOUT_S for
# all of them to exit, then SIGKILLs the rest. Returns 1 if any needed SIGKILL.
plaint_stop_pids() {
    local timeout_s="$1" pid left deadline rc=0
    shift
    [ $# -gt 0 ] || return 0
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    deadline=$(($(plaint_now_us) + timeout_s * 1000000))
    while :; do
        left=()
        for pid in "$@"; do
            if plaint_pid_alive "$pid"; then left+=("$pid"); fi
        done
        [ "${#left[@]}" -gt 0 ] || break
        if [ "$(plaint_now_us)" -ge "$deadline" ]; then
            plaint_warn "pid(s) ${left[*]} still running ${timeout_s}s after SIGTERM: sending SIGKILL"
            kill -KILL "${left[@]}" 2>/dev/null || true
            rc=1
            break
        fi
        sleep 0.1
    done
    return "$rc"
}

# ---------------------------------------------------------------------------
# The private PostgreSQL
#
# Layout of a server folder DIR (default var/pg):
#   DIR/data      the cluster (PGDATA), owned by the server's OS user
#   DIR/sock      its Unix socket
#   DIR/log/postgresql.log
#   DIR/port      the port it was last started on
# As root the server runs as the "postgres" user (PostgreSQL refuses root),
# which Debian's postgresql package creates; otherwise as the current user.
# Authentication is "trust": it listens on 127.0.0.1 and a private socket only.
# The superuser is "postgres"; the application role and database are "plaint".

PLAINT_PG_BIN="${PLAINT_PG_BIN:-/usr/lib/postgresql/15/bin}"

# Resolves a server folder (argument, default var/pg) to an absolute path.
plaint_pg_dir() {
    local dir="${1:-$PLAINT_ROOT/var/pg}"
    case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
    printf '%s\n' "${dir%/}"
}

# The port for DIR: PLAINT_PG_PORT, else the one DIR was last started on,
# else 55432.
plaint_pg_port() {
    local dir="$1" port=""
    if [ -n "${PLAINT_PG_PORT:-}" ]; then
        port="$PLAINT_PG_PORT"
    elif [ -r "$dir/port" ]; then
        port="$(tr -dc '0-9' <"$dir/port")"
    fi
    port="${port:-55432}"
    case "$port" in
        '' | *[!0-9]*) plaint_die "invalid PLAINT_PG_PORT \"$port\": not a number" \
            "Use a free TCP port, such as 55432." ;;
    esac
    printf '%s\n' "$port"
}

# The socket folder: DIR/sock, unless that path is too long for a Unix socket
# (107 bytes with the socket's own name): then a short folder under /tmp.
plaint_pg_sockdir() {
    local dir="$1" sock="$1/sock"
    if [ "${#sock}" -gt 80 ]; then
        sock="/tmp/plaint-pg-$(printf '%s' "$dir" | md5sum | cut -c1-12)"
    fi
    printf '%s\n' "$sock"
}

# Runs a command as the server's OS user.
plaint_pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# The pid of the postmaster serving DIR/data, or nothing. Only a live process
# whose working folder is that data folder counts: a postmaster.pid left by a
# crash (its pid dead, or reused by another process) is stale.
plaint_pg_pid() {
    local data="$1/data" pid cwd
    pid="$(plaint_read_pid "$data/postmaster.pid")"
    [ -n "$pid" ] || return 0
    plaint_pid_alive "$pid" || return 0
    if cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null)"; then
        [ "$cwd" = "$(readlink -f "$data")" ] || return 0
    else
        # Cannot see its cwd (another user's process, not root): trust the name.
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ] || return 0
    fi
    printf '%s\n' "$pid"
}

# Makes every folder above DIR searchable by the postgres user (search only,
# o+x: nobody gains the right to list them), so the server can reach its data
# under a checkout in, say, /root. Says what it changed.
plaint_pg_open_path() {
    local dir="$1" p
    [ "$(id -u)" -eq 0 ] || return 0
    runuser -u postgres -- test -x "$dir" 2>/dev/null && return 0
    p="$dir"
    local parents=()
    while [ "$p" != / ] && [ -n "$p" ]; do
        parents=("$p" "${parents[@]}")
        p="$(dirname "$p")"
    done
    for p in "${parents[@]}"; do
        if ! runuser -u postgres -- test -x "$p" 2>/dev/null; then
            plaint_say "letting the postgres user traverse $p (chmod o+x)"
            chmod o+x "$p"
        fi
    done
    runuser -u postgres -- test -x "$dir" ||
        plaint_die "the postgres user cannot reach $dir" \
            "Move the checkout to a folder every user can traverse."
}

# Creates DIR with its data, socket and log folders and the cluster, once.
plaint_pg_init() {
    local dir="$1" sock="$2"
    [ -x "$PLAINT_PG_BIN/initdb" ] ||
        plaint_die "PostgreSQL 15 not found in $PLAINT_PG_BIN" \
            "Install it with scripts/lib.sh's plaint_deps (apt-get install postgresql), or set PLAINT_PG_BIN."
    if [ "$(id -u)" -eq 0 ] && ! getent passwd postgres >/dev/null; then
        plaint_die "no \"postgres\" user: PostgreSQL refuses to run as root" \
            "Install Debian's postgresql package, which creates the user."
    fi
    mkdir -p "$dir/log" "$sock" || return 1
    # DIR may have been made under umask 077: the logs are for everyone to read.
    chmod 755 "$dir" "$dir/log" "$sock" || return 1
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$dir" "$dir/log" "$sock" || return 1
        if [ -d "$dir/data" ]; then chown -R postgres:postgres "$dir/data" || return 1; fi
        # var/ itself, or the checkout's parents, may be closed to postgres.
        plaint_pg_open_path "$dir"
        plaint_pg_open_path "$sock"
    fi
    [ -f "$dir/data/PG_VERSION" ] && return 0
    plaint_say "creating the PostgreSQL cluster in $dir/data"
    rm -rf "$dir/data"
    plaint_pg_as_owner "$PLAINT_PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/log/initdb.log" 2>&1 || {
        cat "$dir/log/initdb.log" >&2
        plaint_die "initdb failed for $dir/data" "See the output above."
    }
    printf "include_if_exists = 'plaint.conf'\n" |
        plaint_pg_as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
}

# Prints the pids of processes working in DIR/data (a postmaster's backends
# chdir there too).
plaint_pg_procs_in() {
    local data cwd p
    data="$(readlink -f "$1/data")"
    for p in /proc/[0-9]*; do
        cwd="$(readlink "$p/cwd" 2>/dev/null)" || continue
        if [ "$cwd" = "$data" ] && plaint_pid_alive "${p#/proc/}"; then
            printf '%s\n' "${p#/proc/}"
        fi
    done
}

# Before a stale postmaster.pid is removed: backends orphaned by a killed
# postmaster may still use the cluster, and a second server on it would
# corrupt it. They exit on their own once they notice; wait up to 10 s.
plaint_pg_check_orphans() {
    local dir="$1" i pids
    for ((i = 0; i < 100; i++)); do
        pids="$(plaint_pg_procs_in "$dir")"
        [ -n "$pids" ] || return 0
        sleep 0.1
    done
    plaint_die "processes ${pids//$'\n'/ } still use $dir/data, but no postmaster serves it" \
        "Wait for them to exit, or stop them, then start again."
}

# Writes DIR/data/plaint.conf, the settings the scripts own, on every start.
plaint_pg_write_conf() {
    local dir="$1" port="$2" sock="$3"
    plaint_pg_as_owner tee "$dir/data/plaint.conf" >/dev/null <<EOF
# Written by scripts/lib.sh on every start; edit postgresql.auto.conf
# (ALTER SYSTEM) for your own changes instead.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '${sock//\'/\'\'}'
max_connections = 200
shared_buffers = 256MB
# Durability is what the tests and benchmarks measure: keep it real.
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
log_min_error_statement = error
log_lock_waits = on
EOF
}

# Reports whether something already listens on 127.0.0.1:PORT.
plaint_port_in_use() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# Starts the server in DIR on PORT, unless it is already running there, waits
# until it accepts connections and creates the role and database "plaint".
plaint_pg_start() {
    local dir port sock
    dir="$(plaint_pg_dir "${1:-}")"
    port="$(plaint_pg_port "$dir")"
    sock="$(plaint_pg_sockdir "$dir")"
    mkdir -p "$dir"
    # One start at a time per folder; fd 9 must not leak into the server.
    (
        flock -w 120 9 || plaint_die "another start of $dir is still running"
        plaint_pg_start_locked "$dir" "$port" "$sock" 9>&-
    ) 9>"$dir/.lock"
}

plaint_pg_start_locked() {
    local dir="$1" port="$2" sock="$3" pid running_port
    pid="$(plaint_pg_pid "$dir")"
    if [ -n "$pid" ]; then
        running_port="$(sed -n 4p "$dir/data/postmaster.pid")"
        if [ "$running_port" = "$port" ]; then
            plaint_say "PostgreSQL ($dir) already running, pid $pid, port $port"
            plaint_pg_wait "$dir" "$port" && plaint_pg_bootstrap "$port"
            return
        fi
        plaint_say "PostgreSQL ($dir) runs on port $running_port, wanted $port: restarting"
        plaint_pg_stop "$dir"
    fi
    plaint_pg_init "$dir" "$sock" || return 1
    if [ -e "$dir/data/postmaster.pid" ]; then
        plaint_pg_check_orphans "$dir" || return 1
        plaint_say "removing stale $dir/data/postmaster.pid (pid $(plaint_read_pid "$dir/data/postmaster.pid") is not a server of this cluster)"
        rm -f "$dir/data/postmaster.pid"
    fi
    rm -f "$sock/.s.PGSQL.$port" "$sock/.s.PGSQL.$port.lock"
    if plaint_port_in_use "$port"; then
        plaint_die "port $port is already in use by another program" \
            "Stop it, or pick another port with PLAINT_PG_PORT (PLAINT_TEST_PG_PORT for tests)."
    fi
    plaint_pg_write_conf "$dir" "$port" "$sock"
    printf '%s\n' "$port" >"$dir/port"
    plaint_say "starting PostgreSQL ($dir) on 127.0.0.1:$port"
    if ! plaint_pg_as_owner "$PLAINT_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log/postgresql.log" \
        -w -t 60 -s start; then
        tail -n 30 "$dir/log/postgresql.log" >&2 || true
        plaint_die "PostgreSQL ($dir) did not start" "See $dir/log/postgresql.log."
    fi
    plaint_pg_wait "$dir" "$port" && plaint_pg_bootstrap "$port"
}

# Waits (up to 60 s) until the server on PORT accepts connections.
plaint_pg_wait() {
    local dir="$1" port="$2" i
    for ((i = 0; i < 600; i++)); do
        if "$PLAINT_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 1
        then
            return 0
        fi
        if [ -z "$(plaint_pg_pid "$dir")" ]; then
            tail -n 30 "$dir/log/postgresql.log" >&2 || true
            plaint_die "PostgreSQL ($dir) exited while starting" "See $dir/log/postgresql.log."
        fi
        sleep 0.1
    done
    tail -n 30 "$dir/log/postgresql.log" >&2 || true
    plaint_die "PostgreSQL on 127.0.0.1:$port is not ready after 60 s" \
        "See $dir/log/postgresql.log."
}

# Runs psql as the superuser against database "postgres" on PORT.
plaint_pg_admin_psql() {
    local port="$1"
    shift
    "$PLAINT_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres \
        -d postgres "$@"
}

# Creates the role and the database "plaint" when missing (idempotent).
plaint_pg_bootstrap() {
    local port="$1" have
    have="$(plaint_pg_admin_psql "$port" -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'plaint'")" ||
        return 1
    if [ -z "$have" ]; then
        plaint_pg_admin_psql "$port" -c "CREATE ROLE plaint LOGIN CREATEDB" || return 1
    fi
    have="$(plaint_pg_admin_psql "$port" -tAc "SELECT 1 FROM pg_database WHERE datname = 'plaint'")" ||
        return 1
    if [ -z "$have" ]; then
        plaint_pg_admin_psql "$port" -c "CREATE DATABASE plaint OWNER plaint" || return 1
    fi
}

# Stops the server in DIR if it runs (fast shutdown: it completes a clean
# checkpoint, nothing committed is lost).
plaint_pg_stop() {
    local dir pid
    dir="$(plaint_pg_dir "${1:-}")"
    pid="$(plaint_pg_pid "$dir")"
    if [ -z "$pid" ]; then
        plaint_say "PostgreSQL ($dir) is not running"
        return 0
    fi
    plaint_say "stopping PostgreSQL ($dir), pid $pid"
    plaint_pg_as_owner "$PLAINT_PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 -s stop
}

# Prints whether the server in DIR runs; returns 0 when it does, 3 when not
# (as pg_ctl status does).
plaint_pg_status() {
    local dir pid port
    dir="$(plaint_pg_dir "${1:-}")"
    pid="$(plaint_pg_pid "$dir")"
    if [ -z "$pid" ]; then
        printf 'PostgreSQL (%s): not running\n' "$dir"
        return 3
    fi
    port="$(sed -n 4p "$dir/data/postmaster.pid")"
    printf 'PostgreSQL (%s): running, pid %s, 127.0.0.1:%s, log %s\n' \
        "$dir" "$pid" "$port" "$dir/log/postgresql.log"
}

# Prints export lines for the server in DIR (eval "$(scripts/pg.sh env)").
plaint_pg_env() {
    local dir port
    dir="$(plaint_pg_dir "${1:-}")"
    port="$(plaint_pg_port "$dir")"
    cat <<EOF
export PLAINT_DATABASE_URL=postgresql://plaint@127.0.0.1:$port/plaint
export PGHOST=127.0.0.1
export PGPORT=$port
export PGUSER=plaint
export PGDATABASE=plaint
EOF
}
