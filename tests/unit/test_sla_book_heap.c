/*
 * test_sla_book_heap: the SLA watchdog's clocks in memory (services/sla/sla_book).
 *
 * Stage times (the warning fraction, the breach, ladder afters, per-priority
 * ladders, SLA_NO_TIME past the last rung); take_due's order and max; a
 * stage in flight is not taken again; fired moves a clock on, retry re-arms
 * it; put replacing a clock (a new deadline starts over, the same deadline
 * with the database behind keeps its progress, the database ahead wins);
 * removing a case (not open, no clock running); 100,000 cases put, removed
 * and put again (reused slots never resurrect stale heap entries); the
 * memory figure; and a new plan or priority with a shorter ladder.
 *
 * The plans are built with route_plan_load() from a temporary folder holding
 * the shipped categories.json and routing.json next to an sla.json of this
 * file's own (SLA_A, SLA_B).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_err.h"
#include "pl_sla.h"
#include "route_plan.h"
#include "sla_book.h"

#include "test_util.h"

#define S 1000LL
#define MIN (60 * S)
#define H (3600 * S)
#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */

/* Default ladder of three rungs, P1 the shipped "at once, twice", P3 a single
 * rung; warn_at 0.8, P1 0.5. */
static const char SLA_A[] =
    "{\"default_priority\": \"P2\", \"warn_at\": 0.8,"
    " \"priorities\": {"
    "  \"P1\": {\"first_response\": {\"within\": \"1h\"},"
    "          \"resolution\": {\"simple\": {\"within\": \"48h\"},"
    "                          \"complex\": {\"within\": \"7d\"}},"
    "          \"warn_at\": 0.5,"
    "          \"escalation\": [{\"to\": \"supervisor\", \"after\": \"0s\"},"
    "                          {\"to\": \"department_head\", \"after\": \"0s\"},"
    "                          {\"to\": \"management\", \"after\": \"2h\"}]},"
    "  \"P2\": {\"first_response\": {\"within\": \"24h\"},"
    "          \"resolution\": {\"simple\": {\"within\": \"48h\"},"
    "                          \"complex\": {\"within\": \"7d\"}}},"
    "  \"P3\": {\"first_response\": {\"within\": \"72h\"},"
    "          \"resolution\": {\"simple\": {\"within\": \"48h\"},"
    "                          \"complex\": {\"within\": \"7d\"}},"
    "          \"escalation\": [{\"to\": \"management\", \"after\": \"30m\"}]}},"
    " \"escalation\": {\"warn_to\": \"assignee\","
    "  \"ladder\": [{\"to\": \"supervisor\", \"after\": \"0s\"},"
    "             {\"to\": \"department_head\", \"after\": \"4h\"},"
    "             {\"to\": \"management\", \"after\": \"24h\"}]}}";

/* The same with a default ladder of one rung (a reload that shortens it). */
static const char SLA_B[] =
    "{\"default_priority\": \"P2\", \"warn_at\": 0.8,"
    " \"priorities\": {"
    "  \"P1\": {\"first_response\": {\"within\": \"1h\"},"
    "          \"resolution\": {\"simple\": {\"within\": \"48h\"},"
    "                          \"complex\": {\"within\": \"7d\"}}},"
    "  \"P2\": {\"first_response\": {\"within\": \"24h\"},"
    "          \"resolution\": {\"simple\": {\"within\": \"48h\"},"
    "                          \"complex\": {\"within\": \"7d\"}}},"
    "  \"P3\": {\"first_response\": {\"within\": \"72h\"},"
    "          \"resolution\": {\"simple\": {\"within\": \"48h\"},"
    "                          \"complex\": {\"within\": \"7d\"}}}},"
    " \"escalation\": {\"ladder\": [{\"to\": \"supervisor\", \"after\": \"10m\"}]}}";

/* From the shipped routing.json. */
#define DEPT "logistics"
#define SUPERVISOR "sup.lg.wei"
#define HEAD "head.lg.chu"
#define OWNER "mgr.ops.director"
#define AGENT "agent.lg.jiang"

static route_plan_t *plan_a, *plan_b;

static const char *config_dir(void)
{
    static char buf[1024];
    const char *marker = strstr(__FILE__, "/tests/unit/test_sla_book_heap.c");
    if (!marker || __FILE__[0] != '/')
        fail_msg("cannot find the source tree from %s", __FILE__);
    snprintf(buf, sizeof buf, "%.*s/deploy/config", (int)(marker - __FILE__), __FILE__);
    return buf;
}

static char *slurp(const char *dir, const char *file)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s", path);
    static char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static void spill(const char *dir, const char *file, const char *text)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

static route_plan_t *load_plan(const char *sla_text)
{
    char dir[] = "/tmp/test_sla_book.XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *files[] = {"categories.json", "routing.json", "sla.json"};
    for (size_t i = 0; i < 2; i++) {
        char *text = slurp(config_dir(), files[i]);
        spill(dir, files[i], text);
        free(text);
    }
    spill(dir, "sla.json", sla_text);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    route_plan_t *p = route_plan_load(dir, &errs);
    for (size_t i = 0; i < errs.count; i++)
        print_error("%s\n", errs.items[i].message);
    pl_errlist_reset(&errs);
    for (size_t i = 0; i < NELEMS(files); i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    assert_non_null(p);
    return p;
}

static int setup(void **state)
{
    (void)state;
    plan_a = load_plan(SLA_A);
    plan_b = load_plan(SLA_B);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    route_plan_destroy(&plan_a);
    route_plan_destroy(&plan_b);
    return 0;
}

/* ---- rows ---- */

static char *case_id(unsigned n)
{
    static char ids[8][40];
    static int next;
    char *id = ids[next++ % 8];
    snprintf(id, 40, "%08x-0000-7000-8000-%012x", n, n);
    return id;
}

/* A routed case received at start_ms: first response and resolution due as
 * given (SLA_NO_TIME: not running), no promise, nothing recorded. */
static sla_row_t row_of(const char *id, const char *prio, int64_t start_ms, int64_t fr_due,
                        int64_t res_due)
{
    sla_row_t r = {
        .case_id = id,
        .case_no = "C-20260101-000001",
        .priority = prio,
        .department = DEPT,
        .assignee = AGENT,
        .open = true,
        .received_ms = start_ms,
        .due_ms = {fr_due, res_due, SLA_NO_TIME},
        .start_ms = {start_ms, start_ms, start_ms},
        .stage = {-1, -1, -1},
    };
    return r;
}

static sla_firing_t take_one(sla_book_t *b, int64_t now_ms)
{
    sla_firing_t f[2];
    size_t n = sla_book_take_due(b, now_ms, f, 2);
    if (n != 1)
        fail_msg("took %zu stages at %lld, want 1", n, (long long)(now_ms - T0));
    return f[0];
}

static size_t take_all(sla_book_t *b, int64_t now_ms)
{
    sla_firing_t f[16];
    size_t total = 0, n;
    while ((n = sla_book_take_due(b, now_ms, f, NELEMS(f))) > 0)
        total += n;
    return total;
}

/* ---- stage times ---- */

static void test_stage_times(void **state)
{
    (void)state;
    failures = 0;
    sla_book_t *b = sla_book_new(plan_a);
    const int64_t due = T0 + 10 * H;
    const struct {
        const char *label, *prio;
        int64_t start, due;
        int stage;
        int64_t want;
    } cases[] = {
        {"P2 warning at 80%", "P2", T0, due, 0, T0 + 8 * H},
        {"P1 warning at its own 50%", "P1", T0, due, 0, T0 + 5 * H},
        {"no priority: the default P2", NULL, T0, due, 0, T0 + 8 * H},
        {"unknown priority: the default P2", "P9", T0, due, 0, T0 + 8 * H},
        {"P3 warning at the global 80%", "P3", T0, due, 0, T0 + 8 * H},
        {"a later start (a promise)", "P2", T0 + 5 * H, due, 0, T0 + 9 * H},
        {"deadline at the start: warned at it", "P2", due, due, 0, due},
        {"deadline before the start: warned at it", "P2", due + H, due, 0, due},
        {"breach at the deadline", "P2", T0, due, 1, due},
        {"P1 breach", "P1", T0, due, 1, due},
        {"P2 rung 1 (supervisor, 0s)", "P2", T0, due, 2, due},
        {"P2 rung 2 (head, 4h)", "P2", T0, due, 3, due + 4 * H},
        {"P2 rung 3 (management, 24h)", "P2", T0, due, 4, due + 24 * H},
        {"P2 past the last rung", "P2", T0, due, 5, SLA_NO_TIME},
        {"P2 far past the last rung", "P2", T0, due, 40, SLA_NO_TIME},
        {"P1 rung 1 at once", "P1", T0, due, 2, due},
        {"P1 rung 2 at once too", "P1", T0, due, 3, due},
        {"P1 rung 3 (management, 2h)", "P1", T0, due, 4, due + 2 * H},
        {"P1 past the last rung", "P1", T0, due, 5, SLA_NO_TIME},
        {"P3 single rung (30m)", "P3", T0, due, 2, due + 30 * MIN},
        {"P3 past its single rung", "P3", T0, due, 3, SLA_NO_TIME},
        {"odd fractions round down to the ms", "P2", T0, T0 + 7, 0, T0 + 5},
    };
    for (size_t i = 0; i < NELEMS(cases); i++) {
        int64_t got = sla_book_stage_at(b, cases[i].prio, cases[i].start, cases[i].due,
                                        cases[i].stage);
        CHECK(got == cases[i].want, "%s: got %lld, want %lld\n", cases[i].label,
              (long long)(got == SLA_NO_TIME ? -1 : got - T0),
              (long long)(cases[i].want == SLA_NO_TIME ? -1 : cases[i].want - T0));
    }
    /* A new plan: its ladder. */
    sla_book_set_plan(b, plan_b);
    CHECK(sla_book_stage_at(b, "P1", T0, due, 2) == due + 10 * MIN, "plan B: P1 rung 1\n");
    CHECK(sla_book_stage_at(b, "P1", T0, due, 3) == SLA_NO_TIME, "plan B: P1 past its rung\n");
    sla_book_destroy(&b);
    assert_null(b);
    sla_book_destroy(&b); /* NULL-safe */
    assert_int_equal(failures, 0);
}

/* ---- what comes due ---- */

static void test_take_due_order_and_max(void **state)
{
    (void)state;
    failures = 0;
    sla_book_t *b = sla_book_new(plan_a);
    assert_int_equal(sla_book_next_ms(b), SLA_NO_TIME);
    assert_int_equal(sla_book_take_due(b, T0 + 1000 * H, NULL, 0), 0);
    /* Warnings (P2, 80%) at 8h, 4h, 16h, 12h and 0.8h, put in that order;
     * resolution clocks far later. */
    const int hours[] = {10, 5, 20, 15, 1};
    for (unsigned i = 0; i < NELEMS(hours); i++) {
        sla_row_t r = row_of(case_id(i + 1), "P2", T0, T0 + hours[i] * H, T0 + 100 * H);
        r.case_no = (const char *[]){"C-1", "C-2", "C-3", "C-4", "C-5"}[i];
        sla_book_put(b, &r);
    }
    assert_int_equal(sla_book_cases(b), 5);
    assert_int_equal(sla_book_clocks(b), 10);
    assert_int_equal(sla_book_next_ms(b), T0 + 48 * MIN);
    /* Nothing before its time; exactly at its time it is due. */
    sla_firing_t f[8];
    assert_int_equal(sla_book_take_due(b, T0 + 48 * MIN - 1, f, 8), 0);
    assert_int_equal(sla_book_take_due(b, T0 + 48 * MIN, f, 8), 1);
    assert_string_equal(f[0].case_no, "C-5");
    /* Up to max, in due order. */
    assert_int_equal(sla_book_take_due(b, T0 + 50 * H, f, 2), 2);
    assert_string_equal(f[0].case_no, "C-2");
    assert_string_equal(f[1].case_no, "C-1");
    assert_int_equal(f[0].at_ms, T0 + 4 * H);
    assert_int_equal(f[1].at_ms, T0 + 8 * H);
    assert_int_equal(sla_book_take_due(b, T0 + 50 * H, f, 8), 2);
    assert_string_equal(f[0].case_no, "C-4");
    assert_string_equal(f[1].case_no, "C-3");
    assert_int_equal(sla_book_take_due(b, T0 + 50 * H, f, 8), 0);
    /* What a firing says. */
    sla_firing_t *w = &f[1];
    assert_string_equal(w->case_id, case_id(3));
    assert_string_equal(w->type, "sla.warning");
    assert_int_equal(w->clock, PL_SLA_FIRST_RESPONSE);
    assert_int_equal(w->stage, 0);
    assert_int_equal(w->level, 0);
    assert_int_equal(w->due_ms, T0 + 20 * H);
    assert_int_equal(w->at_ms, T0 + 16 * H);
    assert_string_equal(w->priority, "P2");
    assert_string_equal(w->department, DEPT);
    assert_string_equal(w->assignee, AGENT);
    assert_int_equal(w->role, PL_SLA_ASSIGNEE);
    assert_string_equal(w->to, AGENT);
    /* The resolution warnings (80h) all at once. */
    assert_int_equal(sla_book_next_ms(b), T0 + 80 * H);
    assert_int_equal(sla_book_take_due(b, T0 + 80 * H, f, 8), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(f[i].clock, PL_SLA_RESOLUTION);
    assert_int_equal(sla_book_next_ms(b), SLA_NO_TIME);
    sla_book_destroy(&b);
}

/* A many-case shuffle: whatever the order of puts, stages come out in time
 * order, and max is honoured on every call. */
static void test_take_due_order_many(void **state)
{
    (void)state;
    failures = 0;
    sla_book_t *b = sla_book_new(plan_a);
    enum { N = 5000 };
    uint64_t x = 88172645463325252ULL;
    for (unsigned i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t due = T0 + (int64_t)(x % (1000 * H)) + 1;
        sla_row_t r = row_of(case_id(i + 1), "P2", T0, due, SLA_NO_TIME);
        sla_book_put(b, &r);
    }
    /* Round by round (warnings, breaches, rungs): in time order across
     * calls while nothing is fired, max honoured on every call. */
    static sla_firing_t taken[N];
    size_t total = 0;
    for (int round = 0; round < 6; round++) {
        sla_firing_t f[7];
        int64_t last = INT64_MIN;
        size_t k = 0, n;
        while ((n = sla_book_take_due(b, T0 + 10000 * H, f, NELEMS(f))) > 0) {
            assert_true(n <= NELEMS(f) && k + n <= N);
            for (size_t i = 0; i < n; i++) {
                CHECK(f[i].at_ms >= last && f[i].stage == round,
                      "round %d: stage %d at %lld after %lld\n", round, f[i].stage,
                      (long long)f[i].at_ms, (long long)last);
                last = f[i].at_ms;
                taken[k++] = f[i];
            }
            if (failures > 10)
                fail();
        }
        CHECK(k == (round < 5 ? N : 0), "round %d took %zu stages\n", round, k);
        for (size_t i = 0; i < k; i++)
            sla_book_fired(b, taken[i].case_id, taken[i].clock, taken[i].gen);
        total += k;
    }
    /* Every clock went warning, breach and three rungs: each stage once. */
    assert_int_equal(total, (size_t)N * 5);
    assert_int_equal(failures, 0);
    sla_book_destroy(&b);
}

static void test_in_flight_fired_and_retry(void **state)
{
    (void)state;
    failures = 0;
    sla_book_t *b = sla_book_new(plan_a);
    const int64_t due = T0 + 10 * H;
    sla_row_t r = row_of(case_id(7), "P2", T0, due, SLA_NO_TIME);
    sla_book_put(b, &r);
    sla_firing_t w = take_one(b, T0 + 8 * H);
    assert_string_equal(w.type, "sla.warning");

    /* In flight: not taken again, however late, and not what is next. */
    assert_int_equal(take_all(b, T0 + 1000 * H), 0);
    assert_int_equal(sla_book_next_ms(b), SLA_NO_TIME);
    /* A stale generation changes nothing. */
    sla_book_fired(b, w.case_id, w.clock, w.gen + 1);
    sla_book_fired(b, w.case_id, PL_SLA_RESOLUTION, w.gen);
    sla_book_fired(b, case_id(8), w.clock, w.gen);
    sla_book_fired(b, "not-a-uuid", w.clock, w.gen);
    assert_int_equal(take_all(b, T0 + 1000 * H), 0);

    /* Fired: the breach is next, at the deadline. */
    sla_book_fired(b, w.case_id, w.clock, w.gen);
    assert_int_equal(sla_book_next_ms(b), due);
    assert_int_equal(sla_book_take_due(b, due - 1, (sla_firing_t[1]){0}, 1), 0);
    sla_firing_t br = take_one(b, due);
    assert_string_equal(br.type, "sla.breached");
    assert_int_equal(br.stage, 1);
    assert_int_equal(br.role, PL_SLA_ASSIGNEE);
    assert_string_equal(br.to, AGENT);
    assert_true(br.gen != w.gen);
    /* Fired twice (a late duplicate reply): the second is a no-op. */
    sla_book_fired(b, br.case_id, br.clock, br.gen);
    sla_book_fired(b, br.case_id, br.clock, br.gen);

    /* Rung 1 at once: the database is down, so it is retried later. */
    sla_firing_t e1 = take_one(b, due);
    assert_string_equal(e1.type, "case.escalated");
    assert_int_equal(e1.level, 1);
    sla_book_retry(b, e1.case_id, e1.clock, e1.gen, due + 5 * S);
    assert_int_equal(sla_book_next_ms(b), due + 5 * S);
    assert_int_equal(take_all(b, due + 5 * S - 1), 0);
    sla_firing_t again = take_one(b, due + 5 * S);
    assert_int_equal(again.stage, e1.stage);
    assert_int_equal(again.level, 1);
    assert_int_equal(again.at_ms, due + 5 * S);
    assert_true(again.gen != e1.gen);
    sla_book_fired(b, e1.case_id, e1.clock, e1.gen); /* the old attempt: no-op */
    assert_int_equal(take_all(b, T0 + 1000 * H), 0);
    sla_book_retry(b, e1.case_id, e1.clock, e1.gen, due); /* stale retry: no-op */
    assert_int_equal(take_all(b, T0 + 1000 * H), 0);
    sla_book_fired(b, again.case_id, again.clock, again.gen);

    /* Rungs 2 and 3, each to its person, then nothing. */
    sla_firing_t e2 = take_one(b, due + 4 * H);
    assert_int_equal(e2.level, 2);
    assert_int_equal(e2.role, PL_SLA_DEPARTMENT_HEAD);
    assert_string_equal(e2.to, HEAD);
    assert_int_equal(e2.at_ms, due + 4 * H);
    sla_book_fired(b, e2.case_id, e2.clock, e2.gen);
    sla_firing_t e3 = take_one(b, T0 + 1000 * H);
    assert_int_equal(e3.level, 3);
    assert_int_equal(e3.role, PL_SLA_MANAGEMENT);
    assert_string_equal(e3.to, OWNER);
    assert_int_equal(e3.at_ms, due + 24 * H);
    sla_book_fired(b, e3.case_id, e3.clock, e3.gen);
    assert_int_equal(sla_book_next_ms(b), SLA_NO_TIME);
    assert_int_equal(take_all(b, INT64_MAX), 0);
    /* The clock still runs (the deadline is still missed): counted. */
    assert_int_equal(sla_book_clocks(b), 1);
    assert_int_equal(sla_book_cases(b), 1);
    sla_book_destroy(&b);
}

static void test_escalation_people(void **state)
{
    (void)state;
    failures = 0;
    sla_book_t *b = sla_book_new(plan_a);
    const int64_t due = T0 + H;
    /* P1: supervisor and head at the breach instant. */
    sla_row_t r = row_of(case_id(1), "P1", T0, due, SLA_NO_TIME);
    sla_book_put(b, &r);
    const char *want_to[] = {AGENT, AGENT, SUPERVISOR, HEAD, OWNER};
    const int64_t want_at[] = {T0 + 30 * MIN, due, due, due, due + 2 * H};
    for (int stage = 0; stage < 5; stage++) {
        sla_firing_t f = take_one(b, T0 + 100 * H);
        CHECK(f.stage == stage && f.at_ms == want_at[stage] && !strcmp(f.to, want_to[stage]),
              "P1 stage %d: stage %d at %lld to %s\n", stage, f.stage,
              (long long)(f.at_ms - T0), f.to);
        sla_book_fired(b, f.case_id, f.clock, f.gen);
    }
    assert_int_equal(take_all(b, INT64_MAX), 0);

    /* No assignee: the warning and the breach go to the supervisor; the P3
     * ladder: management 30m after the breach. */
    r = row_of(case_id(2), "P3", T0, due, SLA_NO_TIME);
    r.assignee = NULL;
    sla_book_put(b, &r);
    const char *p3_to[] = {SUPERVISOR, SUPERVISOR, OWNER};
    const int64_t p3_at[] = {T0 + 48 * MIN, due, due + 30 * MIN};
    for (int stage = 0; stage < 3; stage++) {
        sla_firing_t f = take_one(b, T0 + 100 * H);
        CHECK(f.stage == stage && f.at_ms == p3_at[stage] && !strcmp(f.to, p3_to[stage]) &&
                  f.assignee == NULL,
              "P3 stage %d: stage %d at %lld to %s\n", stage, f.stage,
              (long long)(f.at_ms - T0), f.to);
        if (stage == 2)
            CHECK(f.level == 1 && f.role == PL_SLA_MANAGEMENT, "P3 rung 1: level %d role %d\n",
                  f.level, (int)f.role);
        sla_book_fired(b, f.case_id, f.clock, f.gen);
    }
    assert_int_equal(take_all(b, INT64_MAX), 0);
    /* No department either: a role name at worst, never NULL. */
    r = row_of(case_id(3), "P2", T0, due, SLA_NO_TIME);
    r.assignee = NULL;
    r.department = NULL;
    sla_book_put(b, &r);
    sla_firing_t f = take_one(b, T0 + 100 * H);
    assert_null(f.department);
    assert_non_null(f.to);
    assert_true(f.to[0] != '\0');
    assert_int_equal(failures, 0);
    sla_book_destroy(&b);
}

/* ---- replacing and removing ---- */

static void test_put_replaces(void **state)
{
    (void)state;
    failures = 0;
    sla_book_t *b = sla_book_new(plan_a);
    const int64_t due = T0 + 10 * H;
    sla_row_t r = row_of(case_id(1), "P2", T0, due, SLA_NO_TIME);
    sla_book_put(b, &r);
    sla_firing_t w = take_one(b, due);
    sla_book_fired(b, w.case_id, w.clock, w.gen);
    sla_firing_t br = take_one(b, due);
    sla_book_fired(b, br.case_id, br.clock, br.gen);
    /* Next: rung 1, at the deadline. */

    /* The same deadline, the database behind (nothing recorded seen yet):
     * the progress is kept. */
    sla_book_put(b, &r);
    sla_firing_t e1 = take_one(b, due);
    CHECK(e1.stage == 2, "same due, database behind: stage %d, want 2\n", e1.stage);
    /* ... also while that stage is in flight: still in flight, and its
     * reply still lands. */
    r.stage[PL_SLA_FIRST_RESPONSE] = 0;
    sla_book_put(b, &r);
    CHECK(take_all(b, T0 + 1000 * H) == 0, "an in-flight stage was taken again\n");
    sla_book_fired(b, e1.case_id, e1.clock, e1.gen);
    assert_int_equal(sla_book_next_ms(b), due + 4 * H);

    /* The database ahead (another replica fired rung 2): rung 3 is next. */
    r.stage[PL_SLA_FIRST_RESPONSE] = 3;
    sla_book_put(b, &r);
    assert_int_equal(sla_book_next_ms(b), due + 24 * H);
    sla_firing_t e3 = take_one(b, T0 + 1000 * H);
    assert_int_equal(e3.level, 3);

    /* A new deadline (routed again): the clock starts over at its warning,
     * and the reply about the old one changes nothing. */
    const int64_t due2 = T0 + 20 * H;
    r.due_ms[PL_SLA_FIRST_RESPONSE] = due2;
    r.stage[PL_SLA_FIRST_RESPONSE] = -1;
    sla_book_put(b, &r);
    sla_book_fired(b, e3.case_id, e3.clock, e3.gen);
    assert_int_equal(sla_book_next_ms(b), T0 + 16 * H);
    sla_firing_t w2 = take_one(b, T0 + 16 * H);
    assert_int_equal(w2.stage, 0);
    assert_int_equal(w2.due_ms, due2);
    /* A new deadline whose warning the database already recorded. */
    r.due_ms[PL_SLA_FIRST_RESPONSE] = T0 + 30 * H;
    r.stage[PL_SLA_FIRST_RESPONSE] = 0;
    sla_book_put(b, &r);
    sla_book_fired(b, w2.case_id, w2.clock, w2.gen); /* stale */
    sla_firing_t b3 = take_one(b, T0 + 1000 * H);
    assert_int_equal(b3.stage, 1);
    assert_int_equal(b3.due_ms, T0 + 30 * H);
    /* A new start with the same deadline (a promise made again) is a new
     * clock as well. */
    sla_row_t p = row_of(case_id(2), "P2", T0, SLA_NO_TIME, SLA_NO_TIME);
    p.due_ms[PL_SLA_PROMISE] = T0 + 10 * H;
    sla_book_put(b, &p);
    sla_firing_t pw = take_one(b, T0 + 1000 * H);
    assert_int_equal(pw.clock, PL_SLA_PROMISE);
    assert_int_equal(pw.at_ms, T0 + 8 * H);
    sla_book_fired(b, pw.case_id, pw.clock, pw.gen);
    p.start_ms[PL_SLA_PROMISE] = T0 + 5 * H;
    sla_book_put(b, &p);
    pw = take_one(b, T0 + 1000 * H);
    assert_int_equal(pw.stage, 0);
    assert_int_equal(pw.at_ms, T0 + 9 * H);
    /* Names follow the row (the clock keeps its progress). */
    sla_book_fired(b, pw.case_id, pw.clock, pw.gen);
    p.assignee = "agent.lg.shen";
    sla_book_put(b, &p);
    sla_firing_t again = take_one(b, T0 + 1000 * H);
    assert_int_equal(again.stage, 1);
    assert_string_equal(again.assignee, "agent.lg.shen");
    assert_string_equal(again.to, "agent.lg.shen");
    assert_int_equal(failures, 0);
    sla_book_destroy(&b);
}

static void test_remove(void **state)
{
    (void)state;
    failures = 0;
    sla_book_t *b = sla_book_new(plan_a);
    sla_row_t r = row_of(case_id(1), "P2", T0, T0 + 10 * H, T0 + 48 * H);
    sla_row_t other = row_of(case_id(2), "P2", T0, T0 + 20 * H, SLA_NO_TIME);
    sla_book_put(b, &r);
    sla_book_put(b, &other);
    assert_int_equal(sla_book_cases(b), 2);
    assert_int_equal(sla_book_clocks(b), 3);
    /* Acknowledged: one clock stops. */
    r.due_ms[PL_SLA_FIRST_RESPONSE] = SLA_NO_TIME;
    sla_book_put(b, &r);
    assert_int_equal(sla_book_clocks(b), 2);
    assert_int_equal(sla_book_next_ms(b), T0 + 16 * H); /* other's warning */
    /* A stage in flight, then the case closes: removed, and the reply is a
     * no-op. */
    sla_firing_t f = take_one(b, T0 + 16 * H);
    assert_string_equal(f.case_id, case_id(2));
    other.open = false;
    sla_book_put(b, &other);
    sla_book_fired(b, f.case_id, f.clock, f.gen);
    sla_book_retry(b, f.case_id, f.clock, f.gen, T0);
    assert_int_equal(sla_book_cases(b), 1);
    assert_int_equal(sla_book_clocks(b), 1);
    /* Open but no clock running: removed too. */
    r.due_ms[PL_SLA_RESOLUTION] = SLA_NO_TIME;
    sla_book_put(b, &r);
    assert_int_equal(sla_book_cases(b), 0);
    assert_int_equal(sla_book_clocks(b), 0);
    assert_int_equal(sla_book_next_ms(b), SLA_NO_TIME);
    assert_int_equal(take_all(b, INT64_MAX), 0);
    /* Removing what is not there, and a malformed id: nothing happens. */
    sla_book_put(b, &other);
    r.case_id = "zz";
    r.due_ms[PL_SLA_RESOLUTION] = T0;
    sla_book_put(b, &r);
    assert_int_equal(sla_book_cases(b), 0);
    sla_book_destroy(&b);
}

/* A stage taken just before its case was removed must not advance the case
 * when it comes back (re-opened), whichever slot it lands in. */
static void test_removed_then_back_ignores_old_reply(void **state)
{
    (void)state;
    failures = 0;
    sla_book_t *b = sla_book_new(plan_a);
    sla_row_t x = row_of(case_id(1), "P2", T0, T0 + 10 * H, SLA_NO_TIME);
    sla_row_t y = row_of(case_id(2), "P2", T0, T0 + 500 * H, SLA_NO_TIME);
    sla_book_put(b, &x);
    sla_firing_t old = take_one(b, T0 + 8 * H); /* x's warning, in flight */
    x.open = false;
    sla_book_put(b, &x); /* x leaves; its slot is free */
    sla_book_put(b, &y); /* y takes that slot */
    x.open = true;
    sla_book_put(b, &x); /* x is back, in a fresh slot, nothing recorded */
    /* The reply names x (old.case_id is borrowed and now y's text). */
    sla_book_fired(b, x.case_id, old.clock, old.gen);
    sla_firing_t f[2];
    size_t n = sla_book_take_due(b, T0 + 8 * H, f, 2);
    CHECK(n == 1 && f[0].stage == 0,
          "x came back (nothing recorded for it) and the reply to a stage taken before it left "
          "moved it on: took %zu stages at its warning time, stage %d (old gen %u)\n",
          n, n ? f[0].stage : -1, old.gen);
    assert_int_equal(failures, 0);
    sla_book_destroy(&b);
}

/* ---- a plan or a priority with a shorter ladder ---- */

static void test_shorter_ladder_after_reload(void **state)
{
    (void)state;
    failures = 0;
    sla_book_t *b = sla_book_new(plan_a);
    const int64_t due = T0 + 10 * H;
    sla_row_t r = row_of(case_id(1), "P2", T0, due, SLA_NO_TIME);
    sla_book_put(b, &r);
    for (int stage = 0; stage < 3; stage++) { /* warning, breach, rung 1 */
        sla_firing_t f = take_one(b, due);
        sla_book_fired(b, f.case_id, f.clock, f.gen);
    }
    /* Rung 2 is scheduled; the reload leaves one rung. */
    sla_book_set_plan(b, plan_b);
    assert_int_equal(sla_book_stage_at(b, "P2", T0, due, 3), SLA_NO_TIME);
    sla_firing_t f[4];
    size_t n = sla_book_take_due(b, T0 + 1000 * H, f, NELEMS(f));
    for (size_t i = 0; i < n; i++)
        print_error("took stage %d (%s level %d, role %s, to %s) past plan B's one rung\n",
                    f[i].stage, f[i].type, f[i].level, pl_sla_role_name(f[i].role), f[i].to);
    CHECK(n == 0, "plan B has one rung: nothing more may fire, took %zu\n", n);

    /* The same with a priority whose ladder is shorter (P2 -> P3, same
     * deadline, database behind). */
    sla_book_set_plan(b, plan_a);
    sla_row_t q = row_of(case_id(2), "P2", T0, due, SLA_NO_TIME);
    sla_book_put(b, &q);
    for (int stage = 0; stage < 3; stage++) {
        sla_firing_t g = take_one(b, due);
        sla_book_fired(b, g.case_id, g.clock, g.gen);
    }
    q.priority = "P3";
    sla_book_put(b, &q);
    n = sla_book_take_due(b, T0 + 1000 * H, f, NELEMS(f));
    for (size_t i = 0; i < n; i++)
        print_error("took stage %d (%s level %d, role %s, to %s) past P3's one rung\n",
                    f[i].stage, f[i].type, f[i].level, pl_sla_role_name(f[i].role), f[i].to);
    CHECK(n == 0, "P3 has one rung: nothing more may fire, took %zu\n", n);
    assert_int_equal(failures, 0);
    sla_book_destroy(&b);
}

/* ---- 100,000 cases ---- */

static void test_many_cases_and_slot_reuse(void **state)
{
    (void)state;
    failures = 0;
    enum { N = 100000 };
    sla_book_t *b = sla_book_new(plan_a);
    size_t empty = sla_book_memory(b);
    CHECK(empty > 0 && empty < 256 * 1024, "an empty book holds %zu bytes\n", empty);
    /* First set: warnings due by T0 + 1h. */
    for (unsigned i = 0; i < N; i++) {
        sla_row_t r = row_of(case_id(i + 1), i % 3 ? "P2" : "P1", T0, T0 + H, T0 + 2 * H);
        sla_book_put(b, &r);
    }
    assert_int_equal(sla_book_cases(b), N);
    assert_int_equal(sla_book_clocks(b), 2 * N);
    size_t full = sla_book_memory(b);
    print_message("100,000 cases, 200,000 clocks: %zu bytes held (%zu a case)\n", full, full / N);
    CHECK(full >= (size_t)N * 100 && full <= (size_t)N * 1000,
          "100,000 cases with 200,000 clocks: %zu bytes (%zu a case)\n", full, full / N);
    /* Put again unchanged: nothing grows but the heap, nothing counts twice. */
    for (unsigned i = 0; i < N; i++) {
        sla_row_t r = row_of(case_id(i + 1), i % 3 ? "P2" : "P1", T0, T0 + H, T0 + 2 * H);
        sla_book_put(b, &r);
    }
    assert_int_equal(sla_book_cases(b), N);
    assert_int_equal(sla_book_clocks(b), 2 * N);
    /* A few in flight when everything goes. */
    sla_firing_t inflight[64];
    assert_int_equal(sla_book_take_due(b, T0 + H, inflight, NELEMS(inflight)), NELEMS(inflight));
    for (unsigned i = 0; i < N; i++) {
        sla_row_t r = row_of(case_id(i + 1), "P2", T0, T0 + H, T0 + 2 * H);
        r.open = false;
        sla_book_put(b, &r);
    }
    assert_int_equal(sla_book_cases(b), 0);
    assert_int_equal(sla_book_clocks(b), 0);
    for (size_t i = 0; i < NELEMS(inflight); i++)
        sla_book_fired(b, inflight[i].case_id, inflight[i].clock, inflight[i].gen);

    /* Second set, other ids, in the freed slots: due only from T0 + 500h.
     * The first set's entries (due at T0 + 0.8h ..) must never come back. */
    for (unsigned i = 0; i < N; i++) {
        sla_row_t r = row_of(case_id(N + i + 1), "P2", T0, T0 + 1000 * H, SLA_NO_TIME);
        sla_book_put(b, &r);
    }
    assert_int_equal(sla_book_cases(b), N);
    assert_int_equal(sla_book_clocks(b), N);
    CHECK(sla_book_memory(b) <= full * 2, "slot reuse: %zu bytes, was %zu\n",
          sla_book_memory(b), full);
    assert_int_equal(take_all(b, T0 + 799 * H), 0);
    assert_int_equal(sla_book_next_ms(b), T0 + 800 * H);
    /* Every new clock's warning exactly once, each from the second set. */
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    sla_firing_t f[512];
    size_t n, total = 0;
    while ((n = sla_book_take_due(b, T0 + 800 * H, f, NELEMS(f))) > 0) {
        for (size_t i = 0; i < n; i++) {
            unsigned id = (unsigned)strtoul(f[i].case_id, NULL, 16);
            CHECK(id > N && id <= 2 * N && f[i].stage == 0 && f[i].clock == PL_SLA_FIRST_RESPONSE,
                  "took %s stage %d clock %d\n", f[i].case_id, f[i].stage, (int)f[i].clock);
            if (id > N && id <= 2 * N) {
                CHECK(!seen[id - N - 1], "%s taken twice\n", f[i].case_id);
                seen[id - N - 1] = 1;
            }
        }
        total += n;
        if (failures > 20)
            break;
    }
    CHECK(total == N, "took %zu warnings, want %d\n", total, N);
    /* Each found again by id. */
    sla_row_t r = row_of(case_id(N + 77), "P2", T0, T0 + 1000 * H, SLA_NO_TIME);
    r.open = false;
    sla_book_put(b, &r);
    assert_int_equal(sla_book_cases(b), N - 1);
    for (unsigned i = 0; i < N; i++) {
        sla_row_t q = row_of(case_id(N + i + 1), "P2", T0, SLA_NO_TIME, SLA_NO_TIME);
        sla_book_put(b, &q);
    }
    assert_int_equal(sla_book_cases(b), 0);
    assert_int_equal(sla_book_clocks(b), 0);
    assert_int_equal(sla_book_next_ms(b), SLA_NO_TIME);
    assert_int_equal(failures, 0);
    sla_book_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stage_times),
        cmocka_unit_test(test_take_due_order_and_max),
        cmocka_unit_test(test_take_due_order_many),
        cmocka_unit_test(test_in_flight_fired_and_retry),
        cmocka_unit_test(test_escalation_people),
        cmocka_unit_test(test_put_replaces),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_removed_then_back_ignores_old_reply),
        cmocka_unit_test(test_shorter_ladder_after_reload),
        cmocka_unit_test(test_many_cases_and_slot_reuse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
