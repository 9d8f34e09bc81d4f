#!/usr/bin/env bash
#
# test.sh: runs every test of Plaint; what CI runs (.ci/run).
#
#   scripts/test.sh [--quick]
#
# Steps, each with its output shown and its time in the summary at the end:
#   deps         install the Debian packages that are missing (none: no apt)
#   postgres     a private PostgreSQL for the tests, in var/pg-test on
#                127.0.0.1:$PLAINT_TEST_PG_PORT (default 55433), never the
#                development one (var/pg); started before the first ctest, as
#                the unit tests of pl_db and pl_schema need it; stopped at the end
#   build        build/ (RelWithDebInfo), then ctest
#   build-asan   build-asan/ with -DPLAINT_SANITIZE=ON (ASan + UBSan), then ctest
#   proto, e2e   pytest tests/proto (-x) and tests/e2e, when they exist, once
#                with PLAINT_BIN_DIR=build/bin and once with build-asan/bin
#   fuzz         with clang and tests/fuzz/CMakeLists.txt: build-fuzz/, then
#                each build-fuzz/bin/fuzz_* for $PLAINT_FUZZ_SECONDS (default
#                30) on a temporary copy of tests/fuzz/corpus; crashes are
#                kept in var/fuzz/
#   compose      docker-compose config -q, when docker-compose.yml exists
#
# --quick skips build-asan (and the pytest runs against it) and fuzzing.
# The tests get PLAINT_TEST_PG_URL (the test server's superuser, to create a
# fresh database per test; set even when the server fails to start, so that
# ctest's database tests fail rather than skip), PLAINT_DATABASE_URL/PG* for
# its "plaint" database, PLAINT_BIN_DIR, ASAN_OPTIONS and UBSAN_OPTIONS.
# Exits non-zero when any step fails.
# Functions below run only through step() and traps, which shellcheck cannot see.
# shellcheck disable=SC2317
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -h | --help)
            sed -n '3,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) plaint_die "unknown argument \"$arg\"" "Run scripts/test.sh --help." ;;
    esac
done

cd "$PLAINT_ROOT"
PY=/usr/bin/python3
PG_DIR="$PLAINT_ROOT/var/pg-test"
PG_PORT="${PLAINT_TEST_PG_PORT:-55433}"
FUZZ_SECONDS="${PLAINT_FUZZ_SECONDS:-30}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# ---------------------------------------------------------------------------
# Steps and the summary

step_names=()
declare -A step_reasons=()
step_pytest=0
step_results=()
step_times=()
failed=0
pg_started=0
tmp_dirs=()

record() { # NAME RESULT SECONDS
    step_names+=("$1")
    step_results+=("$2")
    step_times+=("$3")
}

# step NAME COMMAND...: runs COMMAND in a subshell with errexit on, its output
# going straight to ours; records PASS or FAIL and the time taken. Returns the
# command's status. pytest's "no tests collected" (5) counts as EMPTY, a pass.
step() {
    local name="$1" t0 t1 rc result
    shift
    printf '\n======== %s ========\n' "$name"
    t0="$(plaint_now)"
    set +e
    (
        set -e
        "$@"
    )
    rc=$?
    set -e
    t1="$(plaint_now)"
    case "$rc" in
        0) result=PASS ;;
        5) if [ "$step_pytest" = 1 ]; then result=EMPTY; rc=0; else result=FAIL; fi ;;
        *) result=FAIL ;;
    esac
    if [ "$result" = FAIL ]; then
        failed=1
        printf '======== %s: FAILED (exit %s) ========\n' "$name" "$rc"
    fi
    record "$name" "$result" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1fs", b - a }')"
    return "$rc"
}

skip() { # NAME REASON
    printf '\n======== %s: skipped (%s) ========\n' "$1" "$2"
    record "$1" "SKIP" ""
    step_reasons["$1"]="$2"
}

summary() {
    local i total
    total="$(awk -v a="$t_start" -v b="$(plaint_now)" 'BEGIN { printf "%.1f", b - a }')"
    printf '\n======== summary ========\n'
    for i in "${!step_names[@]}"; do
        printf '  %-5s %8s  %s%s\n' "${step_results[i]}" "${step_times[i]}" "${step_names[i]}" \
            "${step_reasons[${step_names[i]}]:+  (${step_reasons[${step_names[i]}]})}"
    done
    if [ "$failed" = 0 ]; then
        printf 'all steps passed in %ss\n' "$total"
    else
        local list=""
        for i in "${!step_names[@]}"; do
            if [ "${step_results[i]}" = FAIL ]; then list+="${list:+, }${step_names[i]}"; fi
        done
        printf 'FAILED (total %ss): %s\n' "$total" "$list"
    fi
}

cleanup() {
    local rc=$?
    if [ "$pg_started" = 1 ]; then
        plaint_pg_stop "$PG_DIR" || rc=1
    fi
    if [ "${#tmp_dirs[@]}" -gt 0 ]; then rm -rf "${tmp_dirs[@]}"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# What the steps do

run_ctest() { # BUILD_DIR
    ctest --test-dir "$1" --output-on-failure --timeout 600 -j"$(nproc)"
}

start_pg() {
    PLAINT_PG_PORT="$PG_PORT" plaint_pg_start "$PG_DIR"
}

run_pytest() { # BIN_DIR TIMEOUT_MULTIPLIER ARGS...
    export PLAINT_BIN_DIR="$1" PLAINT_TEST_TIMEOUT_MULTIPLIER="$2"
    shift 2
    echo "PLAINT_BIN_DIR=$PLAINT_BIN_DIR PLAINT_TEST_TIMEOUT_MULTIPLIER=$PLAINT_TEST_TIMEOUT_MULTIPLIER"
    "$PY" -m pytest "$@"
}

build_fuzz() {
    export CC=clang
    plaint_build build-fuzz -DPLAINT_FUZZ=ON -DPLAINT_TESTS=OFF
}

# The corpus for one fuzz target: tests/fuzz/corpus/NAME (or without the
# fuzz_ prefix) when the corpus is split by target, else the whole folder.
fuzz_corpus_src() {
    local name="$1" base="$PLAINT_ROOT/tests/fuzz/corpus"
    if [ -d "$base/$name" ]; then
        echo "$base/$name"
    elif [ -d "$base/${name#fuzz_}" ]; then
        echo "$base/${name#fuzz_}"
    elif [ -d "$base" ]; then
        echo "$base"
    fi
}

run_fuzzer() { # BINARY CORPUS_COPY
    local bin="$1" corpus="$2" name src args=()
    name="$(basename "$bin")"
    src="$(fuzz_corpus_src "$name")"
    if [ -n "$src" ]; then cp -R "$src/." "$corpus/"; fi
    mkdir -p "$PLAINT_ROOT/var/fuzz"
    for f in "$PLAINT_ROOT/tests/fuzz/$name.dict" "$PLAINT_ROOT/tests/fuzz/${name#fuzz_}.dict"; do
        if [ -f "$f" ]; then args+=("-dict=$f"); break; fi
    done
    echo "corpus: ${src:-none} (copied to $corpus); crashes go to var/fuzz/$name-*"
    "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=60 -print_final_stats=1 \
        -artifact_prefix="$PLAINT_ROOT/var/fuzz/$name-" "${args[@]}" "$corpus"
}

# ---------------------------------------------------------------------------
# The run

t_start="$(plaint_now)"
echo "Plaint tests in $PLAINT_ROOT ($([ "$quick" = 1 ] && echo quick || echo full))"
for name in "${PLAINT_DAEMONS[@]}"; do
    if plaint_pid_is "$(plaint_read_pid "var/run/$name.pid")" "$name"; then
        plaint_warn "$name from scripts/up.sh is running and holds its ports; tests that" \
            "need the same ports will fail (scripts/down.sh stops it)"
    fi
done

if ! step "deps" plaint_deps; then
    summary
    exit 1
fi

ok_build=0 ok_asan=0 ok_pg=0
# Before the first ctest: test_db and test_schema create their databases on
# this server. The URL is exported whatever happens, so that without a server
# they fail loudly instead of skipping.
pg_started=1
if step "postgres (var/pg-test, port $PG_PORT)" start_pg; then
    ok_pg=1
    eval "$(PLAINT_PG_PORT="$PG_PORT" plaint_pg_env "$PG_DIR")"
    echo "PLAINT_DATABASE_URL=$PLAINT_DATABASE_URL"
fi
export PLAINT_TEST_PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
echo "PLAINT_TEST_PG_URL=$PLAINT_TEST_PG_URL"

if step "build (build/)" plaint_build build; then ok_build=1; fi
if [ "$ok_build" = 1 ]; then
    step "ctest (build/)" run_ctest build || true
else
    skip "ctest (build/)" "build failed"
fi

if [ "$quick" = 1 ]; then
    skip "build (build-asan/)" "--quick"
else
    if step "build (build-asan/)" plaint_build build-asan -DPLAINT_SANITIZE=ON; then ok_asan=1; fi
    if [ "$ok_asan" = 1 ]; then
        step "ctest (build-asan/)" run_ctest build-asan || true
    else
        skip "ctest (build-asan/)" "build failed"
    fi
fi

if [ -d tests/proto ] || [ -d tests/e2e ]; then
    flavours=(build)
    [ "$quick" = 1 ] || flavours+=(build-asan)
    for flavour in "${flavours[@]}"; do
        built="$ok_build"
        # Sanitizers slow the daemons down: give the tests' timeouts room.
        mult="${PLAINT_TEST_TIMEOUT_MULTIPLIER:-1}"
        if [ "$flavour" = build-asan ]; then
            built="$ok_asan"
            mult="${PLAINT_TEST_TIMEOUT_MULTIPLIER:-3}"
        fi
        for suite in proto e2e; do
            [ -d "tests/$suite" ] || continue
            name="pytest tests/$suite ($flavour/bin)"
            if [ "$built" != 1 ]; then
                skip "$name" "$flavour/ failed to build"
            elif [ "$ok_pg" != 1 ]; then
                skip "$name" "postgres did not start"
            else
                args=(-q)
                [ "$suite" = proto ] && args+=(-x)
                # The e2e tests mostly wait on daemons and clocks: two at a time
                # (python3-pytest-xdist) halves the suite's time. Each test has
                # its own database, ports and processes.
                if [ "$suite" = e2e ] && "$PY" -c 'import xdist' 2>/dev/null; then
                    args+=(-n "${PLAINT_TEST_JOBS:-2}")
                fi
                step_pytest=1
                step "$name" run_pytest "$PLAINT_ROOT/$flavour/bin" "$mult" "${args[@]}" \
                    "tests/$suite" || true
                step_pytest=0
            fi
        done
    done
else
    skip "pytest" "no tests/proto or tests/e2e yet"
fi

if [ "$quick" = 1 ]; then
    skip "fuzz" "--quick"
elif ! command -v clang >/dev/null 2>&1; then
    skip "fuzz" "clang not installed"
elif [ ! -f tests/fuzz/CMakeLists.txt ]; then
    skip "fuzz" "no tests/fuzz/CMakeLists.txt yet"
elif step "build (build-fuzz/)" build_fuzz; then
    shopt -s nullglob
    fuzzers=(build-fuzz/bin/fuzz_*)
    shopt -u nullglob
    [ "${#fuzzers[@]}" -gt 0 ] || skip "fuzz" "no build-fuzz/bin/fuzz_* built"
    for f in "${fuzzers[@]}"; do
        [ -x "$f" ] || continue
        corpus="$(mktemp -d "${TMPDIR:-/tmp}/plaint-corpus.XXXXXX")"
        tmp_dirs+=("$corpus")
        step "fuzz $(basename "$f") (${FUZZ_SECONDS}s)" run_fuzzer "$PLAINT_ROOT/$f" "$corpus" || true
    done
fi

if [ -f docker-compose.yml ]; then
    step "docker-compose config" docker-compose -f docker-compose.yml config -q || true
else
    skip "docker-compose config" "no docker-compose.yml yet"
fi

# Stop the test server before the summary, so that the summary ends the output.
if [ "$pg_started" = 1 ]; then
    plaint_pg_stop "$PG_DIR" || failed=1
    pg_started=0
fi
summary
exit "$failed"
