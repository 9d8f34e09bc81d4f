#!/usr/bin/env bash
#
# up.sh: runs the whole of Plaint on this machine, for development.
#
# Installs what is missing (Debian packages), builds into build/, starts the
# private PostgreSQL (scripts/pg.sh, data in var/pg), brings the schema up to
# date (plaintctl migrate) and starts every daemon that has been built, in the
# background: logs in var/log/NAME.log, pids in var/run/NAME.pid. A daemon
# that is already running is restarted. Safe to run again at any time.
# scripts/down.sh stops everything.
#
# Environment: PLAINT_PG_PORT (default 55432); PLAINT_LOG_LEVEL and the other
# PLAINT_* settings are passed on to the daemons as they are.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
    -h | --help)
        sed -n '3,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    '') ;;
    *) plaint_die "unknown argument \"$1\"" "Run scripts/up.sh --help." ;;
esac

cd "$PLAINT_ROOT"
bin="$PLAINT_ROOT/build/bin"

plaint_deps
plaint_say "building build/"
plaint_build build

plaint_pg_start "$PLAINT_ROOT/var/pg"
eval "$(plaint_pg_env "$PLAINT_ROOT/var/pg")"
export PLAINT_CONFIG_DIR="${PLAINT_CONFIG_DIR:-$PLAINT_ROOT/deploy/config}"

if [ -x "$bin/plaintctl" ]; then
    plaint_say "plaintctl migrate"
    "$bin/plaintctl" migrate
else
    plaint_warn "build/bin/plaintctl not built yet: schema not migrated"
fi

mkdir -p var/log var/run

# Stops NAME if its pid file names a live NAME process.
stop_daemon() {
    local name="$1" pid
    pid="$(plaint_read_pid "var/run/$name.pid")"
    if plaint_pid_is "$pid" "$name"; then
        plaint_say "restarting $name (pid $pid)"
        plaint_stop_pids 10 "$pid" || true
    fi
    rm -f "var/run/$name.pid"
}

started=()
for name in "${PLAINT_DAEMONS[@]}"; do
    [ -x "$bin/$name" ] || continue
    stop_daemon "$name"
    plaint_say "starting $name (log var/log/$name.log)"
    printf '{"ts":"%s","level":"info","svc":"up.sh","msg":"starting","binary":"%s"}\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$name" >>"var/log/$name.log"
    # setsid: its own session, so a Ctrl-C in this terminal later does not
    # reach it; scripts/down.sh stops it.
    setsid "$bin/$name" </dev/null >>"var/log/$name.log" 2>&1 &
    echo "$!" >"var/run/$name.pid"
    started+=("$name")
done

if [ "${#started[@]}" -eq 0 ]; then
    plaint_warn "no daemon has been built yet (looked for ${PLAINT_DAEMONS[*]} in build/bin)"
fi

# A daemon with bad settings or an unusable database exits at once.
sleep 1
failed=0
for name in "${started[@]}"; do
    pid="$(plaint_read_pid "var/run/$name.pid")"
    if ! plaint_pid_is "$pid" "$name"; then
        failed=1
        printf '\nerror: %s exited at startup; the end of var/log/%s.log:\n' "$name" "$name" >&2
        tail -n 20 "var/log/$name.log" >&2 || true
        rm -f "var/run/$name.pid"
    fi
done

running=()
for name in "${started[@]}"; do
    if [ -f "var/run/$name.pid" ]; then running+=("$name"); fi
done

cat <<EOF

Plaint is up$([ "$failed" = 0 ] || echo ", with errors (see above)").
  database     $PLAINT_DATABASE_URL   (scripts/pg.sh psql; log var/pg/log/postgresql.log)
  daemons      ${running[*]:-none}
  logs         var/log/<daemon>.log (one JSON object per line)
EOF
for name in "${running[@]}"; do
    printf '               var/log/%s.log (pid %s)\n' "$name" "$(cat "var/run/$name.pid")"
done
cat <<EOF
  submit       tcp://127.0.0.1:7101 (ZeroMQ REQ/DEALER; see proto/PROTOCOL.md)
  events       tcp://127.0.0.1:7102 (ZeroMQ SUB; topic = event type)
EOF
if [ -x "$bin/plaint-desk" ]; then
    echo "  dashboard    http://127.0.0.1:8080/"
fi
# Each daemon's own GET /metrics and /healthz (PLAINT_METRICS_ADDR defaults).
for name in "${running[@]}"; do
    case "$name" in
        plaint-intake) port=9101 ;;
        plaint-classifier) port=9102 ;;
        plaint-routing) port=9103 ;;
        plaint-sla-watchdog) port=9104 ;;
        plaint-notification) port=9105 ;;
        plaint-desk) port=8080 ;;
        *) continue ;;
    esac
    printf '  metrics      http://127.0.0.1:%s/metrics  /healthz   (%s)\n' "$port" "$name"
done
cat <<EOF

  submit a complaint:  build/bin/plaintctl submit FILE.json   (e.g. proto/examples/complaint.submit.valid.1.json)
  watch the events:    build/bin/plaintctl events
  database settings:   eval "\$(scripts/pg.sh env)"   (for plaintctl case, events --after, psql)
  stop everything:     scripts/down.sh
EOF
exit "$failed"
