/*
 * plaint-bench-sla: the SLA watchdog's two targets, a million open clocks in
 * one process under 300 MB and every stage fired within 1 s of its due time.
 * A tool, not a daemon: it blocks, sleeps and exits on errors.
 *
 *   plaint-bench-sla --in-process N [--window S] [--lead S] [--tick MS] [--batch B] [--firing K]
 *   plaint-bench-sla --db N [--firing K] [--window S] [--lead S] [--tick MS] [--batch B]
 *                    [--use-database] [--no-spikes] [--bin DIR] [--drain S]
 *
 * --in-process puts N cases (two clocks each) into an sla_book built from
 * PLAINT_CONFIG_DIR's plan, every clock's warning and deadline inside a
 * window starting --lead seconds ahead (K of them with --firing; the rest
 * far ahead), reports RSS (/proc/self/status) and sla_book_memory, then runs
 * the daemon's tick (sla_book_take_due of at most --batch, as
 * PLAINT_SLA_BATCH, then sla_book_fired, again while anything is due) and
 * reports how late each stage was taken (now - at_ms) and how long each
 * tick's work held the loop. No database: this is the book's own ceiling.
 *
 * --db inserts N routed cases into a fresh database (created on
 * PLAINT_DATABASE_URL's server, migrated by plaintctl migrate, dropped at the
 * end; --use-database uses that database as it is and leaves the cases
 * there), K of them with the first-response clock's warning and deadline
 * inside the window, then runs plaint-sla-watchdog from --bin (default: this
 * binary's directory) as a child, reads its "clocks loaded" line and RSS,
 * waits out the window and measures each fired event's lateness from the
 * database: events.at (clock_timestamp() when plaint_sla_fire inserted the
 * row, before its commit) minus the stage's due instant, computed with
 * sla_book_stage_at from the case's received_at and data.due_at and the same
 * config, so warnings and escalations are measured like breaches. It also
 * prints the daemon's plaint_sla_lateness_seconds histogram (taken time
 * minus due time, before the database call).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_err.h"
#include "pl_msg.h"
#include "pl_sla.h"
#include "pl_time.h"
#include "route_plan.h"
#include "sla_book.h"

#define MS_PER_H (3600 * 1000LL)
#define FAR_RECEIVED_MS (18 * MS_PER_H) /* far cases: received up to 18 h ago, */
#define FAR_FR_MS (24 * MS_PER_H)       /* so the 24 h clock warns (at 0.8) in the future */
#define FAR_RES_MS (48 * MS_PER_H)
#define LOAD_TIMEOUT_MS (600 * 1000)
#define SOURCE "plaint-bench-sla"

typedef struct opts {
    long n, firing;
    bool in_process, use_database, spikes;
    double window_s, lead_s, drain_s;
    long tick_ms, batch;
    const char *bin_dir;
    const char *config_dir;
} opts_t;

/* Department and assignee pairs from the plan, as routing would write them. */
typedef struct people {
    const char **dept, **agent;
    size_t n;
} people_t;

/* ---- small helpers ---- */

static void die(const char *msg, const char *hint)
{
    fprintf(stderr, "plaint-bench-sla: %s\n", msg);
    if (hint)
        fprintf(stderr, "hint: %s\n", hint);
    exit(1);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double unit(uint64_t *s) /* [0, 1) */
{
    return (double)(splitmix(s) >> 11) / 9007199254740992.0;
}

/* A /proc/PID/status field in kB (pid 0: this process), or -1. */
static long status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, pid ? "/proc/%d/status" : "/proc/self/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, len) && line[len] == ':') {
            kb = strtol(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* Sorts ms and prints one line of percentiles. */
static void print_lateness(const char *label, double *ms, size_t n)
{
    qsort(ms, n, sizeof *ms, compare_double);
    printf("  %-16s %9zu %9.1f %9.1f %9.1f %9.1f %9.1f\n", label, n, n ? ms[0] : 0.0,
           pct(ms, n, 50), pct(ms, n, 99), pct(ms, n, 99.9), n ? ms[n - 1] : 0.0);
}

static void print_lateness_head(void)
{
    printf("  %-16s %9s %9s %9s %9s %9s %9s\n", "lateness (ms)", "count", "min", "p50", "p99",
           "p99.9", "max");
}

typedef struct samples {
    double *v;
    size_t n, cap;
} samples_t;

static void add_sample(samples_t *s, double v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = pl_realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = v;
}

/* ---- the plan ---- */

static route_plan_t *load_plan(const char *config_dir)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    route_plan_t *plan = route_plan_load(config_dir, &errs);
    for (size_t i = 0; !plan && i < errs.count; i++)
        fprintf(stderr, "plaint-bench-sla: %s\n", errs.items[i].message);
    pl_errlist_reset(&errs);
    if (!plan)
        die("cannot load the routing and SLA config", "Set PLAINT_CONFIG_DIR to deploy/config.");
    return plan;
}

static people_t plan_people(const route_plan_t *plan)
{
    people_t p = {0};
    const char *const *depts;
    size_t nd = route_plan_departments(plan, &depts);
    for (size_t d = 0; d < nd; d++) {
        const char *const *ids;
        size_t na = route_plan_agents(plan, depts[d], &ids);
        for (size_t a = 0; a < (na ? na : 1); a++) {
            p.dept = pl_realloc(p.dept, (p.n + 1) * sizeof *p.dept);
            p.agent = pl_realloc(p.agent, (p.n + 1) * sizeof *p.agent);
            p.dept[p.n] = depts[d];
            p.agent[p.n++] = na ? ids[a] : route_plan_fallback_assignee(plan);
        }
    }
    if (!p.n)
        die("the routing config has no departments", NULL);
    return p;
}

/* 10% P1, 60% P2, 30% P3. */
static const char *const PRIO_OF[10] = {"P1", "P2", "P2", "P2", "P2", "P2", "P2", "P3", "P3", "P3"};

/* ---- in-process: the book alone ---- */

typedef struct clocks {
    int64_t received, fr_due, res_due;
} clocks_t;

/* Both clocks' warnings and deadlines inside [t0, t0 + w): the first-response
 * warning in the first half, its deadline up to w/4 later, the start that
 * puts the warning there at fraction f, and the resolution deadline later. */
static clocks_t firing_clocks(uint64_t *s, int64_t t0, int64_t w, double f)
{
    double tw = (double)t0 + unit(s) * (double)w / 2;
    double tb = tw + unit(s) * (double)w / 4;
    clocks_t c;
    c.received = (int64_t)(tb - (tb - tw) / (1 - f));
    c.fr_due = (int64_t)tb;
    c.res_due = c.fr_due + (int64_t)(unit(s) * (double)(t0 + w - 1 - c.fr_due));
    return c;
}

static clocks_t far_clocks(uint64_t *s, int64_t now)
{
    clocks_t c;
    c.received = now - (int64_t)(unit(s) * FAR_RECEIVED_MS);
    c.fr_due = c.received + FAR_FR_MS;
    c.res_due = c.received + FAR_RES_MS;
    return c;
}

static void put_cases(sla_book_t *book, const route_plan_t *plan, const opts_t *o, int64_t t0)
{
    people_t p = plan_people(plan);
    const pl_sla_t *sla = route_plan_sla(plan);
    int64_t now = pl_time_now_ms(), w = (int64_t)(o->window_s * 1000);
    uint64_t s = 42;
    for (long i = 0; i < o->n; i++) {
        char id[40], no[40];
        uint64_t a = splitmix(&s), b = splitmix(&s);
        snprintf(id, sizeof id, "%08x-%04x-7%03x-%04x-%012llx", (unsigned)(a >> 32),
                 (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
                 0x8000 | ((unsigned)(b >> 48) & 0x3fff),
                 (unsigned long long)b & 0xffffffffffffULL);
        snprintf(no, sizeof no, "C-20260101-%07ld", i + 1);
        const char *prio = PRIO_OF[i % 10];
        double f = pl_sla_warn_at(sla, pl_sla_priority_or_default(sla, prio));
        clocks_t c = i < o->firing ? firing_clocks(&s, t0, w, f) : far_clocks(&s, now);
        size_t k = (size_t)i % p.n;
        sla_row_t row = {
            .case_id = id, .case_no = no, .priority = prio,
            .department = p.dept[k], .assignee = p.agent[k],
            .open = true, .received_ms = c.received,
            .due_ms = {c.fr_due, c.res_due, SLA_NO_TIME},
            .start_ms = {c.received, c.received, c.received},
            .stage = {-1, -1, -1},
        };
        sla_book_put(book, &row);
    }
    pl_free(p.dept);
    pl_free(p.agent);
}

/* The daemon's tick without the database: batches of at most --batch, each
 * stage marked fired at once (the daemon waits for plaint_sla_fire first),
 * and, as the daemon does when a batch is recorded, the next batch at once
 * while anything is due (escalations due at the breach among them). Runs
 * until nothing due by the window's end is left, or the drain ran out. */
static void tick_loop(sla_book_t *book, const opts_t *o, int64_t t0, samples_t *late,
                      samples_t *work, size_t *backlog, int64_t *last_ms)
{
    int64_t end = t0 + (int64_t)(o->window_s * 1000);
    int64_t stop = end + (int64_t)(o->drain_s * 1000);
    sla_firing_t *buf = pl_calloc((size_t)o->batch, sizeof *buf);
    int64_t next = mono_ms();
    for (;;) {
        next += o->tick_ms;
        sleep_ms(next - mono_ms());
        int64_t now = pl_time_now_ms();
        double t = mono_s();
        size_t total = 0;
        for (size_t n; (n = sla_book_take_due(book, now, buf, (size_t)o->batch)) > 0;) {
            for (size_t i = 0; i < n; i++) {
                add_sample(late, (double)(now - buf[i].at_ms));
                sla_book_fired(book, buf[i].case_id, buf[i].clock, buf[i].gen);
            }
            total += n;
            now = pl_time_now_ms();
        }
        if (total) {
            add_sample(work, (mono_s() - t) * 1000);
            *last_ms = now;
        }
        int64_t due = sla_book_next_ms(book);
        if (now >= end && (due == SLA_NO_TIME || due > end))
            break;
        if (now >= stop)
            break;
    }
    /* What was due by the end and never taken: the backlog at the stop. */
    *backlog = 0;
    for (size_t n; (n = sla_book_take_due(book, end, buf, (size_t)o->batch)) > 0;) {
        *backlog += n;
        for (size_t i = 0; i < n; i++)
            sla_book_fired(book, buf[i].case_id, buf[i].clock, buf[i].gen);
    }
    pl_free(buf);
}

static int run_in_process(const opts_t *o)
{
    route_plan_t *plan = load_plan(o->config_dir);
    long rss0 = status_kb(0, "VmRSS");
    sla_book_t *book = sla_book_new(plan);
    int64_t t0 = pl_time_now_ms() + (int64_t)(o->lead_s * 1000);
    double t = mono_s();
    put_cases(book, plan, o, t0);
    double put_s = mono_s() - t;
    long rss1 = status_kb(0, "VmRSS"), hwm = status_kb(0, "VmHWM");
    size_t mem = sla_book_memory(book), clocks = sla_book_clocks(book);
    printf("in-process: %zu cases, %zu clocks (%ld cases firing), put in %.2f s (%.0f cases/s)\n",
           sla_book_cases(book), clocks, o->firing, put_s, (double)o->n / put_s);
    printf("  sla_book_memory  %8.1f MB  (%.1f bytes/clock)\n", (double)mem / 1048576,
           clocks ? (double)mem / (double)clocks : 0.0);
    printf("  VmRSS before     %8.1f MB\n  VmRSS after      %8.1f MB  (+%.1f MB)\n"
           "  VmHWM (peak)     %8.1f MB\n",
           rss0 / 1024.0, rss1 / 1024.0, (rss1 - rss0) / 1024.0, hwm / 1024.0);
    printf("  window: %.0f s from %.1f s after the puts, tick %ld ms, batch %ld\n", o->window_s,
           (double)(t0 - pl_time_now_ms()) / 1000, o->tick_ms, o->batch);
    fflush(stdout);
    samples_t late = {0}, work = {0};
    size_t backlog;
    int64_t last_ms = t0;
    tick_loop(book, o, t0, &late, &work, &backlog, &last_ms);
    double span = last_ms > t0 ? (double)(last_ms - t0) / 1000 : o->window_s;
    print_lateness_head();
    print_lateness("stage taken", late.v, late.n);
    printf("  stages taken %zu (%.0f/s from the window's start to the last take), left due at "
           "the stop %zu\n",
           late.n, (double)late.n / span, backlog);
    printf("  after the loop: sla_book_memory %.1f MB, VmRSS %.1f MB, VmHWM %.1f MB (with this "
           "tool's %.1f MB of samples)\n",
           (double)sla_book_memory(book) / 1048576, status_kb(0, "VmRSS") / 1024.0,
           status_kb(0, "VmHWM") / 1024.0, (double)(late.cap + work.cap) * 8 / 1048576);
    qsort(work.v, work.n, sizeof *work.v, compare_double);
    printf("  tick work (take_due + fired, all batches): p50 %.2f ms, p99 %.2f ms, max %.2f ms "
           "over %zu ticks\n",
           pct(work.v, work.n, 50), pct(work.v, work.n, 99), work.n ? work.v[work.n - 1] : 0.0,
           work.n);
    pl_free(late.v);
    pl_free(work.v);
    sla_book_destroy(&book);
    route_plan_destroy(&plan);
    return 0;
}

/* ---- database helpers ---- */

static PGconn *connect_db(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "plaint-bench-sla: %s", PQerrorMessage(c));
        die("cannot connect to PostgreSQL",
            "Start it (scripts/pg.sh start) and set PLAINT_DATABASE_URL "
            "(eval \"$(scripts/pg.sh env)\").");
    }
    return c;
}

/* Runs sql with text params; dies on error. The caller clears the result. */
static PGresult *query(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "plaint-bench-sla: %s", PQresultErrorMessage(r));
        die("a statement failed", NULL);
    }
    return r;
}

static void exec_sql(PGconn *c, const char *sql)
{
    PQclear(query(c, sql, 0, NULL));
}

/* conninfo with dbname replaced, as key='value' pairs. */
static char *with_dbname(const char *url, const char *dbname)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &errmsg);
    if (!opts)
        die(errmsg ? errmsg : "PLAINT_DATABASE_URL does not parse", NULL);
    size_t cap = 4096, len = 0;
    char *out = pl_calloc(1, cap);
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = strcmp(o->keyword, "dbname") ? o->val : dbname;
        if (!v)
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s='", o->keyword);
        for (const char *p = v; *p && len + 4 < cap; p++) {
            if (*p == '\'' || *p == '\\')
                out[len++] = '\\';
            out[len++] = *p;
        }
        len += (size_t)snprintf(out + len, cap - len, "' ");
        if (len + 64 > cap)
            die("PLAINT_DATABASE_URL is too long", NULL);
    }
    PQconninfoFree(opts);
    return out;
}

/* ---- child processes ---- */

typedef struct env_pair {
    const char *name, *value;
} env_pair_t;

/* fork + exec with env set in the child; stdout to out_path when given. */
static pid_t spawn(const char *path, char *const argv[], const env_pair_t *env, size_t nenv,
                   const char *out_path)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork failed", NULL);
    if (pid == 0) {
        for (size_t i = 0; i < nenv; i++)
            if (env[i].value)
                setenv(env[i].name, env[i].value, 1);
        if (out_path && !freopen(out_path, "w", stdout))
            _exit(127);
        execv(path, argv);
        fprintf(stderr, "plaint-bench-sla: cannot run %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    return pid;
}

static void migrate(const opts_t *o, const char *conninfo)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/plaintctl", o->bin_dir);
    char *argv[] = {path, "migrate", NULL};
    env_pair_t env[] = {{"PLAINT_DATABASE_URL", conninfo}};
    int st;
    pid_t pid = spawn(path, argv, env, 1, NULL);
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
        die("plaintctl migrate failed", "Build it: cmake --build BUILD --target plaintctl.");
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        die("cannot find a free port for the watchdog's metrics", NULL);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- the cases ---- */

/* Routed cases as routing leaves them (plaint_stage_complete's columns),
 * without their earlier events: the watchdog reads only cases at start;
 * received_seq as plaint_submit_batch numbers it.
 * $1..$2 the numbers, $3/$4 department and assignee pairs, $5 the body.
 * Far cases: received up to 18 h ago, first response due 24 h and
 * resolution 48 h after that, so no stage of theirs comes due for hours. */
static const char SQL_FAR[] =
    "WITH s AS (SELECT g, now() - random() * interval '18 hours' AS at,"
    "  (ARRAY['P1','P2','P2','P2','P2','P2','P2','P3','P3','P3'])[1 + g % 10] AS prio,"
    "  1 + g % cardinality($3::text[]) AS k FROM generate_series($1::int, $2::int) g)"
    " INSERT INTO cases (case_id, case_no, source, external_id, channel, customer_id,"
    "  customer_type, lang, body, submission, state, received_at, updated_at, category,"
    "  priority, confidence, department, departments, assignee, first_response_due,"
    "  resolution_due, stage_since, received_seq)"
    " SELECT plaint_uuid_v7(), 'C-BENCH-' || lpad(g::text, 7, '0'), '" SOURCE "', 'sla-' || g,"
    "  'web', 'cust-' || (g % 50000), 'individual', CASE WHEN g % 2 = 0 THEN 'zh' ELSE 'en' END,"
    "  $5, jsonb_build_object('external_id', 'sla-' || g, 'channel', 'web'), 'routed', at, at,"
    "  (ARRAY['product_quality','logistics_delivery','after_sales','billing_price'])[1 + g % 4],"
    "  prio, 0.9, ($3::text[])[k], ARRAY[($3::text[])[k]], ($4::text[])[k],"
    "  at + interval '24 hours', at + interval '48 hours', at, nextval('case_order_seq')"
    " FROM s";

/* Firing cases: the first-response warning at tw in the window's first half
 * ($6 start ms, $7 length ms), the deadline tb up to a quarter later, and
 * received_at chosen so the warning falls at tw for the priority's warn_at
 * ($8, P1..P3): received = tb - (tb - tw) / (1 - f). The deadline is whole
 * ms, as every writer stores it (pl_time_format): plaint_sla_fire matches it
 * exactly against the ms the watchdog holds, and treats anything else as a
 * clock that moved on. */
static const char SQL_FIRING[] =
    "WITH r AS (SELECT g, 1 + g % 10 AS p, 1 + g % cardinality($3::text[]) AS k,"
    "  $6::float8 + random() * $7::float8 / 2 AS tw FROM generate_series($1::int, $2::int) g),"
    " t AS (SELECT r.*, round(tw + random() * $7::float8 / 4) AS tb,"
    "  (ARRAY['P1','P2','P2','P2','P2','P2','P2','P3','P3','P3'])[p] AS prio,"
    "  ($8::float8[])[(ARRAY[1,2,2,2,2,2,2,3,3,3])[p]] AS f FROM r),"
    " s AS (SELECT t.*, to_timestamp((tb - (tb - tw) / (1 - f)) / 1000) AS at FROM t)"
    " INSERT INTO cases (case_id, case_no, source, external_id, channel, customer_id,"
    "  customer_type, lang, body, submission, state, received_at, updated_at, category,"
    "  priority, confidence, department, departments, assignee, first_response_due,"
    "  resolution_due, stage_since, received_seq)"
    " SELECT plaint_uuid_v7(), 'C-BENCH-F' || lpad(g::text, 7, '0'), '" SOURCE "',"
    "  'sla-fire-' || g, 'web', 'cust-' || (g % 50000), 'individual', 'zh', $5,"
    "  jsonb_build_object('external_id', 'sla-fire-' || g, 'channel', 'web'), 'routed', at, at,"
    "  'product_quality', prio, 0.9, ($3::text[])[k], ARRAY[($3::text[])[k]], ($4::text[])[k],"
    "  'epoch'::timestamptz + tb * interval '1 millisecond', at + interval '48 hours', at,"
    "  nextval('case_order_seq')"
    " FROM s";

static const char BODY[] =
    "Ordered a kettle on the 3rd, it arrived with a cracked lid and the seller has not "
    "answered two messages. 三号订的电水壶，收到时壶盖裂了，联系卖家两次都没有回复。 I want a "
    "replacement or a refund, and the delivery fee back. Order number in the attachment.";

/* "{a,b}" for a text[] parameter; names in routing.json are plain ids. */
static char *text_array(const char *const *v, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 3;
    char *out = pl_calloc(1, len), *p = out;
    *p++ = '{';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s\"%s\"", i ? "," : "", v[i]);
    *p = '}';
    return out;
}

static void insert_far(PGconn *c, const char *depts, const char *agents, const opts_t *o)
{
    char lo[24] = "1", hi[24];
    snprintf(hi, sizeof hi, "%ld", o->n - o->firing);
    const char *params[] = {lo, hi, depts, agents, BODY};
    if (o->n > o->firing)
        PQclear(query(c, SQL_FAR, 5, params));
}

static void insert_firing(PGconn *c, const char *depts, const char *agents, const opts_t *o,
                          const pl_sla_t *sla, int64_t t0)
{
    char lo[24] = "1", hi[24], start[32], len[32], warn[96];
    snprintf(hi, sizeof hi, "%ld", o->firing);
    snprintf(start, sizeof start, "%lld", (long long)t0);
    snprintf(len, sizeof len, "%lld", (long long)(o->window_s * 1000));
    snprintf(warn, sizeof warn, "{%.17g,%.17g,%.17g}", pl_sla_warn_at(sla, PL_SLA_P1),
             pl_sla_warn_at(sla, PL_SLA_P2), pl_sla_warn_at(sla, PL_SLA_P3));
    const char *params[] = {lo, hi, depts, agents, BODY, start, len, warn};
    if (o->firing > 0)
        PQclear(query(c, SQL_FIRING, 8, params));
}

/* Far cases first (the long part), then the firing ones with the window
 * fixed from now: --lead covers the vacuum and the watchdog's load. Returns
 * the window's start. */
static int64_t insert_cases(PGconn *c, const route_plan_t *plan, const opts_t *o)
{
    people_t p = plan_people(plan);
    char *depts = text_array(p.dept, p.n), *agents = text_array(p.agent, p.n);
    insert_far(c, depts, agents, o);
    int64_t t0 = pl_time_now_ms() + (int64_t)(o->lead_s * 1000);
    insert_firing(c, depts, agents, o, route_plan_sla(plan), t0);
    pl_free(depts);
    pl_free(agents);
    pl_free(p.dept);
    pl_free(p.agent);
    return t0;
}

/* ---- the watchdog ---- */

typedef struct loaded {
    long long cases, clocks, memory_bytes;
} loaded_t;

static long long field_ll(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? atoll(v->valuestring) : cJSON_IsNumber(v) ? (long long)v->valuedouble
                                                                        : -1;
}

/* Waits for the "clocks loaded" line in the watchdog's log. */
static bool wait_loaded(pid_t pid, const char *log_path, loaded_t *out)
{
    char line[8192];
    int64_t deadline = mono_ms() + LOAD_TIMEOUT_MS;
    FILE *f = NULL;
    while (mono_ms() < deadline) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return false;
        if (!f)
            f = fopen(log_path, "r");
        while (f && fgets(line, sizeof line, f)) {
            cJSON *o = cJSON_Parse(line);
            const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "msg");
            bool hit = cJSON_IsString(msg) && !strcmp(msg->valuestring, "clocks loaded");
            if (hit) {
                out->cases = field_ll(o, "cases");
                out->clocks = field_ll(o, "clocks");
                out->memory_bytes = field_ll(o, "memory_bytes");
            }
            cJSON_Delete(o);
            if (hit) {
                fclose(f);
                return true;
            }
        }
        if (f)
            clearerr(f);
        sleep_ms(20);
    }
    if (f)
        fclose(f);
    return false;
}

/* GET /metrics, printing the plaint_sla_ lines. */
static void scrape(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        printf("  (cannot reach the metrics listener on port %d)\n", port);
        if (fd >= 0)
            close(fd);
        return;
    }
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req, sizeof req - 1) < 0) {
        close(fd);
        return;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = pl_malloc(cap);
    for (ssize_t r; (r = read(fd, buf + len, cap - len - 1)) > 0;) {
        len += (size_t)r;
        if (len + 1 == cap)
            buf = pl_realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    close(fd);
    char *save = NULL;
    for (char *l = strtok_r(buf, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save))
        if (!strncmp(l, "plaint_sla_", 11) && strncmp(l, "plaint_sla_spikes", 17))
            printf("  %s\n", l);
    pl_free(buf);
}

/* ---- measuring ---- */

static const char SQL_EVENTS[] =
    "SELECT e.type, coalesce((e.data->>'level')::int, 0), e.data->>'clock',"
    "  extract(epoch FROM e.at) * 1000,"
    "  (extract(epoch FROM (e.data->>'due_at')::timestamptz) * 1000)::bigint,"
    "  c.priority, (extract(epoch FROM c.received_at) * 1000)::bigint"
    " FROM events e JOIN cases c ON c.case_id = e.case_id"
    " WHERE e.type IN ('sla.warning', 'sla.breached', 'case.escalated')";

static const char SQL_FIRING_CASES[] =
    "SELECT c.priority, (extract(epoch FROM c.received_at) * 1000)::bigint,"
    "  (extract(epoch FROM c.first_response_due) * 1000)::bigint"
    " FROM cases c WHERE c.source = '" SOURCE "' AND c.external_id LIKE 'sla-fire-%'";

static const char SQL_COUNT[] =
    "SELECT count(*) FROM events WHERE type IN ('sla.warning', 'sla.breached', 'case.escalated')";

static long long count_fired(PGconn *c)
{
    PGresult *r = query(c, SQL_COUNT, 0, NULL);
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* Stages of the firing cases due by end: what should have fired. */
static long expected_stages(PGconn *c, const sla_book_t *book, int64_t end)
{
    PGresult *r = query(c, SQL_FIRING_CASES, 0, NULL);
    long n = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t start = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        int64_t due = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        for (int st = 0;; st++) {
            int64_t at = sla_book_stage_at(book, PQgetvalue(r, i, 0), start, due, st);
            if (at == SLA_NO_TIME || at > end)
                break;
            n++;
        }
    }
    PQclear(r);
    return n;
}

static void measure(PGconn *c, const sla_book_t *book, int64_t end, int64_t loaded_ms)
{
    PGresult *r = query(c, SQL_EVENTS, 0, NULL);
    samples_t by[4] = {{0}}; /* warning, breach, escalation, all */
    double first = 0, last = 0;
    long before_load = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *type = PQgetvalue(r, i, 0);
        int stage = !strcmp(type, PL_EV_SLA_WARNING) ? 0 : !strcmp(type, PL_EV_SLA_BREACHED)
                                                               ? 1
                                                               : 1 + atoi(PQgetvalue(r, i, 1));
        double at = strtod(PQgetvalue(r, i, 3), NULL);
        int64_t due = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        int64_t start = strtoll(PQgetvalue(r, i, 6), NULL, 10);
        int64_t instant = sla_book_stage_at(book, PQgetvalue(r, i, 5), start, due, stage);
        add_sample(&by[stage < 2 ? stage : 2], at - (double)instant);
        add_sample(&by[3], at - (double)instant);
        before_load += instant < loaded_ms;
        first = i == 0 || at < first ? at : first;
        last = at > last ? at : last;
    }
    PQclear(r);
    long want = expected_stages(c, book, end);
    printf("  events fired %zu of %ld due by the window's end (%ld due before the clocks were "
           "loaded), %.0f events/s from the first to the last\n",
           by[3].n, want, before_load, last > first ? (double)(by[3].n - 1) * 1000 / (last - first)
                                                    : 0.0);
    printf("  (lateness = events.at - the stage's due instant, from the database)\n");
    print_lateness_head();
    static const char *const LABELS[4] = {"sla.warning", "sla.breached", "case.escalated", "all"};
    for (int k = 0; k < 4; k++) {
        print_lateness(LABELS[k], by[k].v, by[k].n);
        pl_free(by[k].v);
    }
}

/* ---- --db ---- */

typedef struct db_run {
    char dbname[64];
    char *conninfo;
    char log_path[128];
    pid_t child;
    int port;
} db_run_t;

/* For the exit handler: die() anywhere after the database was made must
 * neither leave it behind nor the watchdog running. */
static db_run_t *the_run;

static void stop_child(pid_t pid);
static void drop_db(db_run_t *d);

static void clean_up_at_exit(void)
{
    if (!the_run)
        return;
    stop_child(the_run->child);
    drop_db(the_run);
}

static pid_t start_watchdog(const opts_t *o, db_run_t *d)
{
    char path[4096], addr[32], tick[32], batch[32];
    snprintf(path, sizeof path, "%s/plaint-sla-watchdog", o->bin_dir);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", d->port);
    snprintf(tick, sizeof tick, "%ldms", o->tick_ms);
    snprintf(batch, sizeof batch, "%ld", o->batch);
    char *argv[] = {path, NULL};
    env_pair_t env[] = {
        {"PLAINT_DATABASE_URL", d->conninfo},
        {"PLAINT_METRICS_ADDR", addr},
        {"PLAINT_CONFIG_DIR", o->config_dir},
        {"PLAINT_SLA_TICK", o->tick_ms > 0 ? tick : NULL},
        {"PLAINT_SLA_BATCH", o->batch > 0 ? batch : NULL},
        {"PLAINT_SPIKE_EVERY", o->spikes ? NULL : "0s"},
    };
    return spawn(path, argv, env, sizeof env / sizeof *env, d->log_path);
}

static void prepare_db(const opts_t *o, db_run_t *d)
{
    const char *url = getenv("PLAINT_DATABASE_URL");
    url = url ? url : "";
    if (o->use_database) {
        d->conninfo = pl_strdup(url);
    } else {
        snprintf(d->dbname, sizeof d->dbname, "plaint_bench_sla_%d", (int)getpid());
        PGconn *admin = connect_db(url);
        char sql[128];
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", d->dbname); /* our own plain name */
        exec_sql(admin, sql);
        PQfinish(admin);
        d->conninfo = with_dbname(url, d->dbname);
    }
    migrate(o, d->conninfo);
}

static void drop_db(db_run_t *d)
{
    if (!d->dbname[0])
        return;
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", d->dbname);
    d->dbname[0] = '\0'; /* once, also when die() below runs the exit handler */
    const char *url = getenv("PLAINT_DATABASE_URL");
    PGconn *admin = connect_db(url ? url : "");
    exec_sql(admin, sql);
    PQfinish(admin);
}

static void stop_child(pid_t pid)
{
    if (pid <= 0)
        return;
    if (the_run)
        the_run->child = -1;
    (void)kill(pid, SIGTERM); /* it may have exited already; waitpid tells */
    int st;
    if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st))
        printf("  watchdog exited with status %d\n", WEXITSTATUS(st));
}

/* Waits for the window to pass, then until the count of fired events stops
 * growing (a backlog still being worked off) or the drain runs out. */
static void wait_window(PGconn *c, int64_t end, double drain_s)
{
    sleep_ms(end - pl_time_now_ms() + 1000);
    int64_t stop = mono_ms() + (int64_t)(drain_s * 1000);
    long long before = -1;
    for (;;) {
        long long n = count_fired(c);
        if (n == before || mono_ms() >= stop)
            break;
        before = n;
        sleep_ms(2000);
    }
}

static void report_child_rss(const char *when, pid_t pid)
{
    printf("  watchdog VmRSS %s: %.1f MB (VmHWM %.1f MB)\n", when, status_kb(pid, "VmRSS") / 1024.0,
           status_kb(pid, "VmHWM") / 1024.0);
}

static int run_db(const opts_t *o)
{
    static db_run_t d = {.child = -1};
    d.port = free_port();
    the_run = &d;
    atexit(clean_up_at_exit);
    route_plan_t *plan = load_plan(o->config_dir);
    sla_book_t *book = sla_book_new(plan); /* only for sla_book_stage_at */
    prepare_db(o, &d);
    PGconn *c = connect_db(d.conninfo);
    printf("database: %s\n", d.dbname[0] ? d.dbname : "(PLAINT_DATABASE_URL, kept)");
    double t = mono_s();
    int64_t t0 = insert_cases(c, plan, o);
    printf("  inserted %ld routed cases (%ld firing) in %.1f s\n", o->n, o->firing, mono_s() - t);
    t = mono_s();
    exec_sql(c, "VACUUM ANALYZE cases"); /* as autovacuum would, before the clock starts */
    printf("  vacuum analyze %.1f s\n", mono_s() - t);
    int64_t end = t0 + (int64_t)(o->window_s * 1000);
    snprintf(d.log_path, sizeof d.log_path, "/tmp/plaint-bench-sla-%d.log", (int)getpid());
    t = mono_s();
    d.child = start_watchdog(o, &d);
    loaded_t l;
    int rc = 1;
    if (!wait_loaded(d.child, d.log_path, &l)) {
        fprintf(stderr, "plaint-bench-sla: the watchdog did not log \"clocks loaded\"; see %s\n",
                d.log_path);
        goto cleanup;
    }
    int64_t loaded_ms = pl_time_now_ms();
    printf("watchdog (pid %d, log %s, metrics 127.0.0.1:%d)\n", (int)d.child, d.log_path, d.port);
    printf("  clocks loaded in %.2f s: %lld cases, %lld clocks, memory_bytes %lld (%.1f MB)\n",
           mono_s() - t, l.cases, l.clocks, l.memory_bytes, (double)l.memory_bytes / 1048576);
    printf("  window starts %.1f s after that, lasts %.0f s\n",
           (double)(t0 - loaded_ms) / 1000, o->window_s);
    report_child_rss("after loading", d.child);
    fflush(stdout);
    wait_window(c, end, o->drain_s);
    report_child_rss("after the window", d.child);
    measure(c, book, end, loaded_ms);
    printf("  /metrics:\n");
    scrape(d.port);
    rc = 0;
cleanup:
    stop_child(d.child);
    PQfinish(c);
    drop_db(&d);
    pl_free(d.conninfo);
    sla_book_destroy(&book);
    route_plan_destroy(&plan);
    return rc;
}

/* ---- main ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: plaint-bench-sla --in-process N [--window S] [--tick MS] [--batch B]\n"
            "                        [--firing K] [--lead S]\n"
            "       plaint-bench-sla --db N [--firing K] [--window S] [--lead S] [--tick MS]\n"
            "                        [--batch B] [--use-database] [--no-spikes] [--bin DIR]\n"
            "                        [--drain S]\n\n"
            "N cases with two SLA clocks each; K of them (--in-process: all; --db: 20000) come\n"
            "due (warning, breach, escalations) within a window of S seconds (20) starting\n"
            "--lead seconds ahead (in-process 3, db 15). Prints memory (RSS, sla_book_memory)\n"
            "and how late the stages were fired (p50, p99, max). --db needs a running\n"
            "PostgreSQL at PLAINT_DATABASE_URL and plaintctl and plaint-sla-watchdog in --bin.\n");
}

static bool parse_flag(const char *a, opts_t *o)
{
    if (!strcmp(a, "--use-database"))
        o->use_database = true;
    else if (!strcmp(a, "--no-spikes"))
        o->spikes = false;
    else
        return false;
    return true;
}

static bool parse_args(int argc, char **argv, opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (parse_flag(a, o))
            continue;
        if (!v)
            return false;
        if (!strcmp(a, "--in-process") || !strcmp(a, "--db")) {
            o->in_process = !strcmp(a, "--in-process");
            o->n = atol(v);
        } else if (!strcmp(a, "--firing"))
            o->firing = atol(v);
        else if (!strcmp(a, "--window"))
            o->window_s = atof(v);
        else if (!strcmp(a, "--lead"))
            o->lead_s = atof(v);
        else if (!strcmp(a, "--drain"))
            o->drain_s = atof(v);
        else if (!strcmp(a, "--tick"))
            o->tick_ms = atol(v);
        else if (!strcmp(a, "--batch"))
            o->batch = atol(v);
        else if (!strcmp(a, "--bin"))
            o->bin_dir = v;
        else
            return false;
        i++;
    }
    return o->n > 0 && o->window_s > 0;
}

static const char *own_dir(void)
{
    static char dir[4096];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0)
        return ".";
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    return dir;
}

int main(int argc, char **argv)
{
    opts_t o = {.firing = -1, .window_s = 20, .lead_s = -1, .drain_s = 60, .spikes = true};
    if (argc > 1 && !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (!parse_args(argc, argv, &o)) {
        usage(stderr);
        return 64;
    }
    const char *cfg = getenv("PLAINT_CONFIG_DIR");
    o.config_dir = cfg && *cfg ? cfg : "deploy/config";
    o.bin_dir = o.bin_dir ? o.bin_dir : own_dir();
    if (o.firing < 0)
        o.firing = o.in_process ? o.n : (o.n < 20000 ? o.n : 20000);
    o.firing = o.firing > o.n ? o.n : o.firing;
    if (o.lead_s < 0)
        o.lead_s = o.in_process ? 3 : 15;
    if (o.in_process) {
        o.tick_ms = o.tick_ms > 0 ? o.tick_ms : 100;
        o.batch = o.batch > 0 ? o.batch : 2000;
        return run_in_process(&o);
    }
    return run_db(&o);
}
