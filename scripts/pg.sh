#!/usr/bin/env bash
#
# pg.sh: the private PostgreSQL 15 server of this checkout, for development
# and tests. Its data lives in var/pg (git-ignored) unless DIR says otherwise;
# it listens on 127.0.0.1:$PLAINT_PG_PORT (default 55432, or the port DIR was
# last started on) and on a socket in DIR/sock, with trust authentication.
# It never touches a system-wide cluster.
#
#   scripts/pg.sh start  [DIR]   start (idempotent), wait until ready, create role/db "plaint"
#   scripts/pg.sh stop   [DIR]   stop (fast shutdown) if running
#   scripts/pg.sh status [DIR]   say whether it runs; exit 3 when it does not
#   scripts/pg.sh env    [DIR]   print export lines: eval "$(scripts/pg.sh env)"
#   scripts/pg.sh psql   [DIR] [psql args...]   psql as "plaint" to database "plaint"
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    sed -n '3,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
dir=""
# DIR is the first argument after the command, unless it looks like an option.
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    dir="$1"
    shift
fi

case "$cmd" in
    start) plaint_pg_start "$dir" ;;
    stop) plaint_pg_stop "$dir" ;;
    status) plaint_pg_status "$dir" ;;
    env) plaint_pg_env "$dir" ;;
    psql)
        d="$(plaint_pg_dir "$dir")"
        port="$(plaint_pg_port "$d")"
        exec "$PLAINT_PG_BIN/psql" "postgresql://plaint@127.0.0.1:$port/plaint" "$@"
        ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
esac
