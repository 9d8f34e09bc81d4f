#!/usr/bin/env bash
#
# stats_1m.sh: how fast the desk's statistics, dashboard and case lists are
# over a million cases. Creates a fresh database on the server of
# PLAINT_DATABASE_URL (default name plaint_bench_1m; dropped first), migrates
# it with plaintctl, fills it with synthetic cases as the daemons would have
# left them over 90 days (states, clocks, classifications, ratings, repeats,
# about three events per case) in one INSERT ... SELECT generate_series, runs
# VACUUM ANALYZE, then times each query N times: the SQL functions with psql
# (\timing), and the same requests over HTTP to a plaint-desk it starts on a
# free port. Prints the median and max in ms.
#
#   tests/bench/stats_1m.sh [--bin DIR] [--cases N] [--runs N] [--db NAME]
#                           [--reuse] [--no-http] [--drop]
#
#   --bin DIR    where plaintctl and plaint-desk are (build/bin)
#   --cases N    cases to make (1000000)
#   --runs N     runs per query (5)
#   --db NAME    the database to (re)create (plaint_bench_1m)
#   --reuse      keep the database if it is there: no drop, migrate or fill
#   --no-http    time the SQL functions only; do not start plaint-desk
#   --drop       drop the database at the end
#
# Needs a role that may create databases (scripts/pg.sh makes "plaint" so),
# psql and curl. The desk it starts reads no desk.json, so its API is open; it
# listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

bin="$PLAINT_ROOT/build/bin"
cases=1000000
runs=5
db=plaint_bench_1m
reuse=0
http=1
drop=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --cases) cases="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --db) db="$2"; shift 2 ;;
        --reuse) reuse=1; shift ;;
        --no-http) http=0; shift ;;
        --drop) drop=1; shift ;;
        -h | --help) sed -n '3,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) plaint_die "unknown argument \"$1\"" "Run tests/bench/stats_1m.sh --help." ;;
    esac
done
case "$cases$runs" in *[!0-9]*) plaint_die "--cases and --runs take whole numbers" ;; esac
[[ "$db" =~ ^[a-z_][a-z0-9_]*$ ]] ||
    plaint_die "invalid --db \"$db\": not a plain lowercase name" "Use a name like plaint_bench_1m."
[ -x "$bin/plaintctl" ] || plaint_die "no plaintctl in $bin" "Build first, or pass --bin DIR."
[ "$http" = 0 ] || [ -x "$bin/plaint-desk" ] ||
    plaint_die "no plaint-desk in $bin" "Build it, pass --bin DIR, or pass --no-http."
command -v psql >/dev/null || PATH="$PLAINT_PG_BIN:$PATH"
command -v psql >/dev/null || plaint_die "psql not found" "Install postgresql-client."
[ "$http" = 0 ] || command -v curl >/dev/null || plaint_die "curl not found" "Install curl."

# The URL of database $2 on the server of URL $1 (a URI or a conninfo).
db_url() {
    local url="$1" name="$2" scheme rest query=""
    case "$url" in
        postgres://* | postgresql://*)
            scheme="${url%%://*}://"
            rest="${url#*://}"
            case "$rest" in *\?*) query="?${rest#*\?}"; rest="${rest%%\?*}" ;; esac
            printf '%s%s/%s%s\n' "$scheme" "${rest%%/*}" "$name" "$query"
            ;;
        *) printf '%s dbname=%s\n' "$url" "$name" ;; # a later keyword wins
    esac
}

server_url="${PLAINT_DATABASE_URL:-}"
url="$(db_url "$server_url" "$db")"
psql_on() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

workdir="$(mktemp -d /tmp/plaint-stats-1m.XXXXXX)"
desk_pid=""
cleanup() {
    if [ -n "$desk_pid" ]; then plaint_stop_pids 10 "$desk_pid" || true; fi
    rm -rf "$workdir"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# A fresh, filled database

fill_sql() {
    cat <<'EOF'
SET synchronous_commit = off;  -- a bulk load: nothing here needs to survive a crash
SET work_mem = '256MB';
SET maintenance_work_mem = '512MB';
SELECT now() AS t0 \gset
-- Small SQL functions, inlined into the INSERT (so their bodies must be no
-- more volatile than they are declared: timestamptz arithmetic is STABLE).
-- Uniform in [0, 1) from a row number and a salt: the same data on every run.
CREATE FUNCTION pg_temp.u(i bigint, salt int) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$
    SELECT (hashint8(i * 64 + salt) & 2147483647) / 2147483648.0
$$;
-- Case i of n was received at: evenly over the 90 days before t0, in order.
CREATE FUNCTION pg_temp.at(i bigint, n bigint, t0 timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT t0 - interval '90 days'
           + (i - 1 + 0.999 * pg_temp.u(i, 0)) * (interval '90 days' / n)
$$;
-- A UUID v7 for time t, the rest of it from key (as plaint_uuid_v7 does with
-- random bits): so case_id order is time order, as in production.
CREATE FUNCTION pg_temp.v7(t timestamptz, key text) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT encode(set_bit(set_bit(set_bit(set_bit(set_bit(set_bit(
               overlay(decode(md5(key), 'hex')
                       PLACING substring(int8send(floor(extract(epoch FROM t) * 1000)::bigint)
                                         FROM 3)
                       FROM 1 FOR 6),
               52, 1), 53, 1), 54, 1), 55, 0), 70, 0), 71, 1), 'hex')::uuid
$$;
CREATE FUNCTION pg_temp.case_id(i bigint, n bigint, t0 timestamptz) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT pg_temp.v7(pg_temp.at(i, n, t0), 'stats1m-case-' || i)
$$;

\echo filling :n cases
INSERT INTO cases (
    case_id, case_no, source, external_id, channel, customer_id, customer_name,
    customer_phone, customer_email, customer_type, lang, subject, body, demand, demand_type,
    target, submission, state, received_at, updated_at, category, priority, confidence,
    sentiment, repeat_of, signals, department, departments, assignee, first_response_due,
    resolution_due, stage_since, acknowledged_at, resolved_at, first_resolved_at, reviewed_at,
    closed_at, rejected_at, reopen_count, satisfied, csat, promise_due, promise_at,
    promise_kept_at, escalation_level, received_seq)
WITH g AS (
    SELECT i, pg_temp.at(i, :n, :'t0') AS at,
           extract(epoch FROM :'t0'::timestamptz - pg_temp.at(i, :n, :'t0')) / 3600 AS age_h,
           pg_temp.u(i, 1) AS u_chan, pg_temp.u(i, 2) AS u_cat, pg_temp.u(i, 3) AS u_prio,
           pg_temp.u(i, 4) AS u_dept, pg_temp.u(i, 5) AS u_cplx, pg_temp.u(i, 6) AS u_rep,
           pg_temp.u(i, 9) AS u_ctype, pg_temp.u(i, 10) AS u_lang, pg_temp.u(i, 11) AS u_tgt,
           pg_temp.u(i, 14) AS u_rej, pg_temp.u(i, 15) AS u_done, pg_temp.u(i, 16) AS u_st,
           pg_temp.u(i, 17) AS u_frt, pg_temp.u(i, 18) AS u_rt, pg_temp.u(i, 19) AS u_rated,
           pg_temp.u(i, 20) AS u_csat, pg_temp.u(i, 21) AS u_prom, pg_temp.u(i, 22) AS u_esc,
           pg_temp.u(i, 23) AS u_agent, pg_temp.u(i, 24) AS u_reo, pg_temp.u(i, 25) AS u_sent,
           -- a repeat names an earlier case, up to ~5000 cases (about 11 h) back
           CASE WHEN pg_temp.u(i, 6) < 0.08 AND i > 5000
                THEN i - 1 - floor(pg_temp.u(i, 7) * 4999)::bigint END AS rep_i
    FROM generate_series(1, :n) AS i
    OFFSET 0  -- a fence: each step is computed once per row, not copied into the next
), c1 AS (
    SELECT g.*,
           CASE WHEN u_chan < 0.30 THEN 'web' WHEN u_chan < 0.50 THEN 'app'
                WHEN u_chan < 0.70 THEN 'phone' WHEN u_chan < 0.80 THEN 'email'
                WHEN u_chan < 0.90 THEN 'chat' WHEN u_chan < 0.94 THEN 'social'
                WHEN u_chan < 0.97 THEN 'store' WHEN u_chan < 0.98 THEN 'letter'
                WHEN u_chan < 0.99 THEN 'api' ELSE 'other' END AS channel,
           CASE WHEN u_cat < 0.28 THEN 'product_quality' WHEN u_cat < 0.46 THEN 'logistics_delivery'
                WHEN u_cat < 0.62 THEN 'after_sales' WHEN u_cat < 0.76 THEN 'service_attitude'
                WHEN u_cat < 0.88 THEN 'billing_price'
                WHEN u_cat < 0.92 THEN 'fraud_security_privacy' ELSE 'other' END AS category,
           CASE WHEN u_ctype < 0.90 THEN 'individual' WHEN u_ctype < 0.97 THEN 'vip'
                ELSE 'enterprise' END AS customer_type,
           floor(pg_temp.u(coalesce(rep_i, i), 8) * 300000)::int AS cust,
           -- the last few cases are still in the pipeline
           CASE WHEN i > :n - 10 THEN 'received' WHEN i > :n - 20 THEN 'classified' END AS early
    FROM g OFFSET 0
), c2 AS (
    SELECT c1.*,
           CASE WHEN category = 'fraud_security_privacy' AND u_prio < 0.6 THEN 'P1'
                WHEN u_prio < 0.06 THEN 'P1' WHEN u_prio < 0.76 THEN 'P2' ELSE 'P3' END AS priority,
           CASE WHEN (channel = 'store' OR u_dept < 0.05)
                     AND category IN ('product_quality', 'service_attitude') THEN 'store_ops'
                ELSE CASE category WHEN 'product_quality' THEN 'quality'
                                   WHEN 'logistics_delivery' THEN 'logistics'
                                   WHEN 'after_sales' THEN 'after_sales'
                                   WHEN 'billing_price' THEN 'finance'
                                   WHEN 'fraud_security_privacy' THEN 'legal'
                                   ELSE 'customer_service' END END AS department,
           -- state: older cases are mostly done; about 4% are rejected
           CASE WHEN early IS NOT NULL THEN early
                WHEN u_rej < 0.04 AND age_h > 2 THEN 'rejected'
                WHEN u_done < CASE WHEN age_h < 24 THEN 0.05 WHEN age_h < 72 THEN 0.35
                                   WHEN age_h < 168 THEN 0.70 WHEN age_h < 336 THEN 0.88
                                   ELSE 0.97 END
                    THEN CASE WHEN age_h > 336 THEN CASE WHEN u_st < 0.65 THEN 'closed'
                                                         WHEN u_st < 0.80 THEN 'reviewed'
                                                         ELSE 'resolved' END
                              WHEN age_h > 72 THEN CASE WHEN u_st < 0.15 THEN 'closed'
                                                        WHEN u_st < 0.40 THEN 'reviewed'
                                                        ELSE 'resolved' END
                              ELSE 'resolved' END
                WHEN age_h < 1 THEN CASE WHEN u_st < 0.5 THEN 'routed'
                                         WHEN u_st < 0.8 THEN 'acknowledged'
                                         ELSE 'in_progress' END
                ELSE CASE WHEN u_st < 0.05 THEN 'routed' WHEN u_st < 0.20 THEN 'acknowledged'
                          WHEN u_st < 0.70 THEN 'in_progress'
                          WHEN u_st < 0.90 THEN 'solution_proposed' ELSE 'reopened' END
           END AS state
    FROM c1 OFFSET 0
), c3 AS (
    SELECT c2.*,
           array_remove(ARRAY[department, CASE WHEN u_dept > 0.97 AND department <> 'legal'
                                               THEN 'legal' END], NULL) AS departments,
           category = 'fraud_security_privacy' OR customer_type = 'enterprise' OR u_dept > 0.97
               OR u_cplx < 0.08 AS complex,
           CASE priority WHEN 'P1' THEN interval '1 hour' WHEN 'P2' THEN interval '24 hours'
                         ELSE interval '72 hours' END AS fr_target,
           -- hours to first response: mostly in time, a tail past the target
           CASE priority WHEN 'P1' THEN 0.1 + 1.5 * u_frt ^ 2 WHEN 'P2' THEN 0.5 + 30 * u_frt ^ 2
                         ELSE 1 + 100 * u_frt ^ 2 END AS frt_h,
           2 + 200 * u_rt ^ 2 AS rt_h,
           state IN ('resolved', 'reviewed', 'closed') AS done,
           CASE WHEN state = 'reopened' THEN 1 + (u_reo < 0.15)::int
                WHEN state IN ('resolved', 'reviewed', 'closed')
                    THEN CASE WHEN u_reo < 0.06 THEN 1 WHEN u_reo < 0.07 THEN 2 ELSE 0 END
                ELSE 0 END AS reopen_count
    FROM c2 OFFSET 0
), c4 AS (
    SELECT c3.*,
           CASE WHEN early IS NULL THEN at + fr_target END AS fr_due,
           CASE WHEN early IS NULL
                THEN at + CASE WHEN complex THEN interval '7 days' ELSE interval '48 hours' END
                END AS res_due,
           -- every time stays before t0: a clock cannot stop in the future
           CASE WHEN state NOT IN ('received', 'classified', 'routed')
                     AND (state <> 'rejected' OR u_st < 0.5)
                THEN at + least(frt_h, age_h * 0.5) * interval '1 hour' END AS ack_at,
           CASE WHEN done OR state = 'reopened'
                THEN at + least(frt_h + rt_h, age_h * 0.8) * interval '1 hour' END AS res1_at
    FROM c3 OFFSET 0
), c5 AS (
    SELECT c4.*,
           CASE WHEN done THEN least(res1_at + reopen_count * interval '1 day',
                                     at + age_h * 0.85 * interval '1 hour') END AS res_at,
           CASE WHEN state = 'rejected'
                THEN at + least(2 + 40 * u_rt, age_h * 0.9) * interval '1 hour' END AS rej_at,
           -- a first response that came late, or has not come and is overdue
           (ack_at > fr_due OR (ack_at IS NULL AND fr_due < :'t0'::timestamptz
                                AND state NOT IN ('rejected', 'received', 'classified')))
               AND u_esc < 0.6 AS escalate,
           done AND u_rated < 0.4 AS rated,
           CASE WHEN u_csat < 0.08 THEN 1 WHEN u_csat < 0.15 THEN 2 WHEN u_csat < 0.30 THEN 3
                WHEN u_csat < 0.60 THEN 4 ELSE 5 END AS score,
           ack_at IS NOT NULL AND u_prom < 0.05 AS promised
    FROM c4 OFFSET 0
), c6 AS (
    SELECT c5.*,
           CASE WHEN state IN ('reviewed', 'closed')
                THEN least(res_at + interval '1 day', at + age_h * 0.9 * interval '1 hour')
                END AS rev_at
    FROM c5 OFFSET 0
)
SELECT pg_temp.case_id(i, :n, :'t0'),
       'C-' || to_char(at AT TIME ZONE 'UTC', 'YYYYMMDD') || '-' || lpad(i::text, 6, '0'),
       'stats1m', 'stats1m-' || i, channel,
       'cust-' || lpad(cust::text, 6, '0'), 'Customer ' || cust,
       '+86 138' || lpad(cust::text, 8, '0'), 'c' || cust || '@example.invalid',
       customer_type, CASE WHEN u_lang < 0.7 THEN 'zh' ELSE 'en' END,
       CASE WHEN u_lang < 0.7 THEN '订单问题投诉' ELSE 'Problem with my order' END,
       -- bodies of 0.2 to 1.4 KB, as intake stores them (once, not in submission)
       CASE WHEN u_lang < 0.7 THEN repeat('我购买的商品出现质量问题，要求退款。', 4 + (i % 23)::int)
            ELSE repeat('The product I bought is faulty and I want a refund. ', 4 + (i % 23)::int)
       END,
       'Refund the order', (ARRAY['refund', 'replacement', 'repair', 'compensation', 'apology',
                                  'explanation', 'other'])[1 + (i % 7)::int],
       CASE WHEN u_tgt < 0.65
            THEN jsonb_build_object('product', 'SKU-' || lpad(floor(200 * u_tgt ^ 2)::text, 4, '0'),
                                    'store', 'S' || lpad(floor(50 * pg_temp.u(i, 12) ^ 1.5)::text, 3, '0'),
                                    'order_id', 'O' || i) END,
       jsonb_build_object('external_id', 'stats1m-' || i, 'channel', channel,
                          'customer', jsonb_build_object('id', 'cust-' || lpad(cust::text, 6, '0'),
                                                         'type', customer_type),
                          'subject', 'Problem with my order', 'demand_type', 'refund'),
       state, at,
       greatest(at, ack_at, res_at, res1_at, rej_at, rev_at),
       CASE WHEN early IS DISTINCT FROM 'received' THEN category END,
       CASE WHEN early IS DISTINCT FROM 'received' THEN priority END,
       CASE WHEN early IS DISTINCT FROM 'received' THEN round((0.3 + 0.7 * u_cplx)::numeric, 4) END,
       CASE WHEN early = 'received' THEN NULL WHEN u_sent < 0.25 THEN 'angry'
            WHEN u_sent < 0.70 THEN 'dissatisfied' ELSE 'neutral' END,
       CASE WHEN early IS DISTINCT FROM 'received' AND rep_i IS NOT NULL
            THEN pg_temp.case_id(rep_i, :n, :'t0') END,
       CASE WHEN early = 'received' THEN NULL
            WHEN rep_i IS NOT NULL THEN '["repeat"]'::jsonb
            WHEN category = 'fraud_security_privacy' THEN '["privacy"]'::jsonb
            ELSE '[]'::jsonb END,
       CASE WHEN early IS NULL THEN department END,
       CASE WHEN early IS NULL THEN departments END,
       CASE WHEN early IS NULL THEN 'agent.' || department || '.' || floor(u_agent * 8)::int END,
       fr_due, res_due, at + interval '3 seconds',
       ack_at, res_at, res1_at, rev_at,
       CASE WHEN state = 'closed' THEN least(rev_at + interval '1 day', :'t0'::timestamptz) END,
       rej_at, reopen_count,
       CASE WHEN done THEN CASE WHEN rated THEN score >= 4 ELSE u_csat < 0.8 END END,
       CASE WHEN rated THEN score END,
       CASE WHEN promised THEN ack_at + interval '48 hours' END,
       CASE WHEN promised THEN ack_at END,
       CASE WHEN promised AND (done OR state IN ('solution_proposed', 'rejected'))
            THEN least(ack_at + interval '24 hours', :'t0'::timestamptz) END,
       CASE WHEN escalate THEN 1 + (u_esc < 0.2)::int ELSE 0 END,
       i  -- received_seq: commit order, which is time order here
-- No ORDER BY: generate_series and the fenced steps keep i order, so rows go
-- in as the daemons write them, in time order, without a sort of it all.
FROM c6;

SELECT setval('case_no_seq', :n) AS no_seq, setval('case_order_seq', :n) AS order_seq \gset

\echo writing the events
-- What intake, classifier and routing wrote for each case (fewer for the
-- last ones), sla.breached and case.escalated for escalated cases, and a
-- dozen alert.spike events spread over the 90 days; numbered in time order.
INSERT INTO events (event_id, seq, type, case_id, source, at, data)
SELECT pg_temp.v7(s.at, s.case_id::text || s.k), row_number() OVER (), s.type,
       CASE WHEN s.type <> 'alert.spike' THEN s.case_id END, s.source, s.at, s.data
FROM (
    SELECT c.case_id, e.k, e.type, e.source, e.at,
           CASE WHEN e.type = 'alert.spike'
                THEN jsonb_build_object('case_id', NULL, 'case_no', NULL,
                                        'what', jsonb_build_object('category', c.category),
                                        'window', '1h', 'count', 40, 'baseline', 6.5)
                ELSE e.data || jsonb_build_object('case_id', c.case_id, 'case_no', c.case_no,
                                                  'state', e.state) END AS data
    FROM cases c
    CROSS JOIN LATERAL (VALUES
        (1, 'case.received', 'plaint-intake', c.received_at, 'received',
         jsonb_build_object('channel', c.channel, 'source', c.source,
                            'external_id', c.external_id, 'customer_type', c.customer_type,
                            'lang', c.lang)),
        (2, CASE WHEN c.state <> 'received' THEN 'case.classified' END, 'classifier',
         c.received_at + interval '1.5 seconds', 'classified',
         jsonb_build_object('category', c.category, 'priority', c.priority,
                            'sentiment', c.sentiment, 'confidence', c.confidence,
                            'repeat_of', c.repeat_of, 'signals', c.signals)),
        (3, CASE WHEN c.state NOT IN ('received', 'classified') THEN 'case.routed' END,
         'routing', c.received_at + interval '3 seconds', 'routed',
         jsonb_build_object('department', c.department, 'departments', c.departments,
                            'assignee', c.assignee, 'first_response_due', c.first_response_due,
                            'resolution_due', c.resolution_due)),
        (4, CASE WHEN c.escalation_level > 0 THEN 'sla.breached' END, 'plaint-sla-watchdog',
         c.first_response_due, c.state,
         jsonb_build_object('clock', 'first_response', 'due_at', c.first_response_due)),
        (5, CASE WHEN c.escalation_level > 0 THEN 'case.escalated' END, 'plaint-sla-watchdog',
         c.first_response_due + interval '1 minute', c.state,
         jsonb_build_object('clock', 'first_response', 'level', 1)),
        (6, CASE WHEN substring(c.external_id FROM 9)::bigint % greatest(:n / 12, 1) = 0
                 THEN 'alert.spike' END, 'plaint-sla-watchdog',
         c.received_at + interval '4 seconds', NULL, NULL::jsonb)
    ) AS e(k, type, source, at, state, data)
    WHERE e.type IS NOT NULL
    ORDER BY c.case_id, e.k
) s;

\echo vacuum analyze
VACUUM ANALYZE cases;
VACUUM ANALYZE events;
EOF
}

create_db() {
    plaint_say "creating database $db (dropped first)"
    psql_on "$server_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    PLAINT_DATABASE_URL="$url" "$bin/plaintctl" migrate
    local t0 t1
    t0="$(plaint_now)"
    fill_sql | psql_on "$url" -v n="$cases"
    t1="$(plaint_now)"
    plaint_say "filled in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }') s"
}

have_db="$(psql_on "$server_url" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")"
if [ "$reuse" = 1 ] && [ "$have_db" = 1 ]; then
    plaint_say "reusing database $db"
else
    create_db
fi
psql_on "$url" -tAc "SELECT 'cases ' || (SELECT count(*) FROM cases) || ', events '
                            || (SELECT count(*) FROM events) || ', cases table + indexes '
                            || pg_size_pretty(pg_total_relation_size('cases'))
                            || ', open ' || (SELECT count(*) FROM cases
                                             WHERE plaint_state_is_open(state))" >&2

# ---------------------------------------------------------------------------
# Timing

# Reads "LABEL<TAB>ms" lines and prints one row per label (in first-seen
# order): runs, median and max.
summarise() {
    awk -F'\t' '
        !($1 in n) { order[++labels] = $1 }
        { n[$1]++; v[$1, n[$1]] = $2 + 0; if ($3 != "") bad[$1] = bad[$1] " " $3 }
        END {
            for (l = 1; l <= labels; l++) {
                k = order[l]; m = n[k]
                for (i = 1; i <= m; i++) s[i] = v[k, i]
                for (i = 2; i <= m; i++) { x = s[i]; j = i - 1
                    while (j > 0 && s[j] > x) { s[j + 1] = s[j]; j-- } s[j + 1] = x }
                med = m % 2 ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
                printf "%-58s %5d %10.1f %10.1f%s\n", k, m, med, s[m],
                       bad[k] != "" ? "   status:" bad[k] : ""
            }
        }'
}

header() { printf '\n%-58s %5s %10s %10s\n' "$1" runs "median ms" "max ms"; }

# psql: each query RUNS times in one session; \timing gives the server time
# plus the round trip, without connection set-up.
time_sql() {
    local script="$workdir/timing.sql" label query i
    {
        printf '%s\n' '\timing on' '\o /dev/null'
        while IFS='|' read -r label query; do
            for ((i = 0; i < runs; i++)); do
                printf '\\echo @@ %s\n%s;\n' "$label" "$query"
            done
        done
    } >"$script"
    psql_on "$url" -f "$script" | awk '
        /^@@ / { label = substr($0, 4); next }
        /^Time: / { printf "%s\t%s\n", label, $2 }' | summarise
}

sql_queries() {
    local d g arg
    for d in 30 90; do
        for g in none category priority department channel day; do
            if [ "$g" = none ]; then arg=NULL; else arg="'$g'"; fi
            printf 'plaint_stats %s days, group_by %s|SELECT length(plaint_stats(now() - interval '\''%s days'\'', now(), %s))\n' \
                "$d" "$g" "$d" "$arg"
        done
    done
    echo "plaint_dashboard|SELECT length(plaint_dashboard(interval '2 hours'))"
}

# HTTP: each path RUNS times with curl (a new connection each time, ~0.1 ms).
time_http() {
    local base="$1" label path i out code secs
    while IFS='|' read -r label path; do
        for ((i = 0; i < runs; i++)); do
            out="$(curl -sS -o "$workdir/body" -w '%{http_code} %{time_total}' "$base$path")" ||
                out="000 0"
            code="${out%% *}"
            secs="${out#* }"
            printf '%s\t%s\t%s\n' "$label" "$(awk -v s="$secs" 'BEGIN { print s * 1000 }')" \
                "$([ "$code" = 200 ] || echo "$code")"
        done
    done | summarise
}

http_paths() {
    local from90 g mid mid_id assignee
    from90="$(date -u -d '90 days ago' +%Y-%m-%dT%H:%M:%SZ)"
    for g in none category priority department channel day; do
        local q30="" q90="from=$from90" # 30 days is the default
        if [ "$g" != none ]; then q30="?group_by=$g"; q90="$q90&group_by=$g"; fi
        echo "GET /v1/stats 30 days, group_by $g|/v1/stats$q30"
        echo "GET /v1/stats 90 days, group_by $g|/v1/stats?$q90"
    done
    echo "GET /v1/dashboard|/v1/dashboard"
    # The middle case: its received_seq is the "next" cursor a client paging
    # from the start would hold there; its case_id is the other form of after.
    mid="$(psql_on "$url" -tAc "SELECT received_seq || ' ' || case_id FROM cases
                                ORDER BY received_seq
                                OFFSET (SELECT count(*) / 2 FROM cases) LIMIT 1")"
    mid_id="${mid#* }"
    mid="${mid%% *}"
    assignee="$(psql_on "$url" -tAc "SELECT assignee FROM cases WHERE assignee IS NOT NULL
                                     ORDER BY case_id DESC LIMIT 1")"
    echo "GET /v1/cases?limit=50|/v1/cases?limit=50"
    echo "GET /v1/cases?limit=50&state=in_progress|/v1/cases?limit=50&state=in_progress"
    echo "GET /v1/cases?limit=50&state=received (10 newest)|/v1/cases?limit=50&state=received"
    echo "GET /v1/cases?limit=50&department=legal|/v1/cases?limit=50&department=legal"
    echo "GET /v1/cases?limit=50&priority=P1|/v1/cases?limit=50&priority=P1"
    echo "GET /v1/cases?limit=50&category=fraud_security_privacy|/v1/cases?limit=50&category=fraud_security_privacy"
    echo "GET /v1/cases?limit=50&channel=letter|/v1/cases?limit=50&channel=letter"
    echo "GET /v1/cases?limit=50&assignee=$assignee|/v1/cases?limit=50&assignee=$assignee"
    echo "GET /v1/cases?limit=50&overdue=true|/v1/cases?limit=50&overdue=true"
    echo "GET /v1/cases?limit=50&after=MIDDLE|/v1/cases?limit=50&after=$mid"
    echo "GET /v1/cases?limit=50&after=MIDDLE_CASE_ID|/v1/cases?limit=50&after=$mid_id"
    echo "GET /v1/cases?limit=50&after=MIDDLE&state=closed|/v1/cases?limit=50&after=$mid&state=closed"
    echo "GET /v1/cases?limit=50&after=MIDDLE&overdue=true|/v1/cases?limit=50&after=$mid&overdue=true"
}

start_desk() {
    local port=58480 i
    while plaint_port_in_use "$port" || plaint_port_in_use "$((port + 1))"; do
        port=$((port + 2))
    done
    mkdir -p "$workdir/config" # no desk.json: the API is open (local, 127.0.0.1 only)
    PLAINT_DATABASE_URL="$url" PLAINT_HTTP_ADDR="127.0.0.1:$port" PLAINT_METRICS_ADDR='' \
        PLAINT_SUBMIT_ENDPOINT="tcp://127.0.0.1:$((port + 1))" PLAINT_CONFIG_DIR="$workdir/config" \
        PLAINT_LOG_LEVEL=warn "$bin/plaint-desk" </dev/null >"$workdir/desk.log" 2>&1 &
    desk_pid=$!
    for ((i = 0; i < 100; i++)); do
        if curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; then
            desk_port="$port"
            return 0
        fi
        plaint_pid_alive "$desk_pid" || break
        sleep 0.1
    done
    cat "$workdir/desk.log" >&2
    plaint_die "plaint-desk did not come up on 127.0.0.1:$port" "See its log above."
}

header "psql, SQL functions over $cases cases"
sql_queries | time_sql
if [ "$http" = 1 ]; then
    start_desk
    header "HTTP, plaint-desk on 127.0.0.1:$desk_port"
    http_paths | time_http "http://127.0.0.1:$desk_port"
fi

if [ "$drop" = 1 ]; then
    plaint_stop_pids 10 "$desk_pid" || true
    desk_pid=""
    psql_on "$server_url" -c "DROP DATABASE $db WITH (FORCE)"
fi
