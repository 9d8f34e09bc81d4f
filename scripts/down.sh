#!/usr/bin/env bash
#
# down.sh: stops what scripts/up.sh started: every daemon named in
# var/run/*.pid (SIGTERM, then up to 10 s to finish; SIGKILL after that, with
# a warning), then the private PostgreSQL in var/pg.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
    -h | --help)
        sed -n '3,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    '') ;;
    *) plaint_die "unknown argument \"$1\"" "Run scripts/down.sh --help." ;;
esac

cd "$PLAINT_ROOT"
pids=()
names=()
# Reverse start order: the desk and notification go first, intake last.
for ((i = ${#PLAINT_DAEMONS[@]} - 1; i >= 0; i--)); do
    name="${PLAINT_DAEMONS[i]}"
    pid="$(plaint_read_pid "var/run/$name.pid")"
    if plaint_pid_is "$pid" "$name"; then
        plaint_say "stopping $name (pid $pid)"
        pids+=("$pid")
        names+=("$name")
    fi
done

rc=0
if [ "${#pids[@]}" -gt 0 ]; then
    plaint_stop_pids 10 "${pids[@]}" || rc=1
else
    plaint_say "no daemon is running"
fi
for name in "${PLAINT_DAEMONS[@]}"; do rm -f "var/run/$name.pid"; done

plaint_pg_stop "$PLAINT_ROOT/var/pg" || rc=1
exit "$rc"
