/*
 * test_workflow: the case state machine (common/pl_workflow.c) against the
 * contract's "Case states" and the actions table of proto/PROTOCOL.md 12.4,
 * written out again here: every action in every state (allowed or not, the
 * state that follows, with and without "satisfied"), the follow event of
 * feedback, the lists of allowed actions per state, lookups by name, who may
 * act, and the role names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "pl_workflow.h"

#include "test_util.h"

static const char *const STATES[] = {
    "received", "classified", "routed",   "acknowledged", "in_progress", "solution_proposed",
    "reopened", "resolved",   "reviewed", "closed",       "rejected",
};

/* What the contract says: the states an action is allowed in ("a,b"), and
 * the state it leads to ("=" keeps the state; "*" is a handling step:
 * in_progress from acknowledged or reopened, else unchanged; "?" is
 * feedback: resolved when satisfied, else reopened). */
static const struct {
    const char *action, *event, *from, *to;
    bool leaders_only;
} TABLE[] = {
    {"acknowledge", "case.acknowledged", "routed", "acknowledged", false},
    {"note", "case.noted",
     "routed,acknowledged,in_progress,solution_proposed,reopened,resolved,reviewed,closed,rejected",
     "*", false},
    {"assign", "case.assigned", "routed,acknowledged,in_progress,solution_proposed,reopened", "*",
     false},
    {"reject", "case.rejected", "routed,acknowledged,in_progress", "rejected", false},
    {"propose", "case.solution_proposed", "acknowledged,in_progress,reopened", "solution_proposed",
     false},
    {"promise", "case.promised", "routed,acknowledged,in_progress,solution_proposed,reopened", "*",
     false},
    {"feedback", "case.feedback", "solution_proposed", "?", false},
    {"resolve", "case.resolved", "solution_proposed", "resolved", false},
    {"reopen", "case.reopened", "solution_proposed,resolved", "reopened", false},
    {"review", "case.reviewed", "resolved", "reviewed", true},
    {"close", "case.closed", "reviewed,rejected", "closed", true},
    {"rate", "case.rated", "resolved,reviewed,closed", "=", false},
};

/* Whether name is an element of the comma-separated list. */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && !strncmp(p, name, n))
            return true;
        p = comma ? comma + 1 : p + len;
    }
    return false;
}

static const char *want_next(size_t row, const char *state, bool satisfied)
{
    if (!listed(TABLE[row].from, state))
        return NULL;
    const char *to = TABLE[row].to;
    if (!strcmp(to, "="))
        return state;
    if (!strcmp(to, "?"))
        return satisfied ? "resolved" : "reopened";
    if (!strcmp(to, "*"))
        return !strcmp(state, "acknowledged") || !strcmp(state, "reopened") ? "in_progress"
                                                                             : state;
    return to;
}

static const char *or_null(const char *s)
{
    return s ? s : "(null)";
}

static void test_every_action_in_every_state(void **state)
{
    (void)state;
    failures = 0;
    for (size_t a = 0; a < NELEMS(TABLE); a++) {
        const pl_wf_action_t *def = pl_wf_action(TABLE[a].action);
        CHECK(def != NULL, "%s: pl_wf_action gives NULL\n", TABLE[a].action);
        if (!def)
            continue;
        for (size_t s = 0; s < NELEMS(STATES); s++) {
            for (int sat = 0; sat < 2; sat++) {
                const char *got = pl_wf_next(def, STATES[s], sat);
                const char *want = want_next(a, STATES[s], sat);
                bool ok = got == want || (got && want && !strcmp(got, want));
                CHECK(ok, "%s in %s (satisfied=%d): got %s, want %s\n", TABLE[a].action,
                      STATES[s], sat, or_null(got), or_null(want));
            }
        }
        /* Unknown states allow nothing. */
        static const char *const BOGUS[] = {"", "Routed", "routed ", "open", "closed\n", NULL};
        for (size_t b = 0; b < NELEMS(BOGUS); b++) {
            const char *got = pl_wf_next(def, BOGUS[b], true);
            CHECK(got == NULL, "%s in unknown state \"%s\": got %s, want (null)\n",
                  TABLE[a].action, or_null(BOGUS[b]), or_null(got));
        }
    }
    CHECK(pl_wf_next(NULL, "routed", false) == NULL, "a NULL action leads somewhere\n");
    assert_int_equal(failures, 0);
}

/* The next state is a static string: it outlives the caller's state buffer. */
static void test_next_is_static(void **state)
{
    (void)state;
    char buf[32];
    snprintf(buf, sizeof buf, "resolved");
    const char *got = pl_wf_next(pl_wf_action("rate"), buf, false);
    assert_non_null(got);
    assert_ptr_not_equal(got, buf);
    memset(buf, 'x', sizeof buf - 1);
    assert_string_equal(got, "resolved");
    snprintf(buf, sizeof buf, "in_progress");
    got = pl_wf_next(pl_wf_action("note"), buf, false);
    assert_ptr_not_equal(got, buf);
    assert_string_equal(got, "in_progress");
}

static void test_follow_event(void **state)
{
    (void)state;
    failures = 0;
    for (size_t a = 0; a < NELEMS(TABLE); a++) {
        const pl_wf_action_t *def = pl_wf_action(TABLE[a].action);
        assert_non_null(def);
        for (int sat = 0; sat < 2; sat++) {
            const char *want = NULL;
            if (!strcmp(TABLE[a].action, "feedback"))
                want = sat ? "case.resolved" : "case.reopened";
            const char *got = pl_wf_follow_event(def, sat);
            bool ok = got == want || (got && want && !strcmp(got, want));
            CHECK(ok, "%s (satisfied=%d): follow event %s, want %s\n", TABLE[a].action, sat,
                  or_null(got), or_null(want));
        }
    }
    CHECK(pl_wf_follow_event(NULL, true) == NULL, "a NULL action has a follow event\n");
    assert_int_equal(failures, 0);
}

static void test_actions_table(void **state)
{
    (void)state;
    size_t n = 0;
    const pl_wf_action_t *all = pl_wf_actions(&n);
    assert_non_null(all);
    assert_int_equal(n, NELEMS(TABLE));
    unsigned staff = PL_ROLE_AGENT | PL_ROLE_SUPERVISOR | PL_ROLE_ADMIN;
    unsigned leaders = PL_ROLE_SUPERVISOR | PL_ROLE_ADMIN;
    failures = 0;
    for (size_t i = 0; i < n; i++) {
        /* In the contract's order, each found by its name as the same entry. */
        CHECK(!strcmp(all[i].name, TABLE[i].action), "action %zu: got %s, want %s\n", i,
              all[i].name, TABLE[i].action);
        CHECK(pl_wf_action(all[i].name) == &all[i], "%s: lookup gives another entry\n",
              all[i].name);
        CHECK(all[i].event && !strcmp(all[i].event, TABLE[i].event), "%s: event %s, want %s\n",
              all[i].name, or_null(all[i].event), TABLE[i].event);
        unsigned want = TABLE[i].leaders_only ? leaders : staff;
        CHECK(all[i].roles == want, "%s: roles %#x, want %#x\n", all[i].name, all[i].roles, want);
        CHECK(!(all[i].roles & PL_ROLE_INTEGRATOR), "%s: integrators may act on cases\n",
              all[i].name);
        CHECK(all[i].roles & PL_ROLE_ADMIN, "%s: admins may not\n", all[i].name);
        /* from[] is the same set as the contract's. */
        size_t k = 0;
        for (; all[i].from[k]; k++)
            CHECK(listed(TABLE[i].from, all[i].from[k]), "%s: allowed in %s, which it is not\n",
                  all[i].name, all[i].from[k]);
        size_t want_n = 1;
        for (const char *p = TABLE[i].from; *p; p++)
            want_n += *p == ',';
        CHECK(k == want_n, "%s: allowed in %zu states, want %zu\n", all[i].name, k, want_n);
    }
    static const char *const UNKNOWN[] = {"", "Acknowledge", "ack", "acknowledge ", "erase",
                                          "received", "close\n", NULL};
    for (size_t i = 0; i < NELEMS(UNKNOWN); i++)
        CHECK(pl_wf_action(UNKNOWN[i]) == NULL, "pl_wf_action(\"%s\") is not NULL\n",
              or_null(UNKNOWN[i]));
    assert_int_equal(failures, 0);
}

static void test_allowed_per_state(void **state)
{
    (void)state;
    failures = 0;
    for (size_t s = 0; s < NELEMS(STATES); s++) {
        const char *want[NELEMS(TABLE)];
        size_t want_n = 0;
        for (size_t a = 0; a < NELEMS(TABLE); a++)
            if (listed(TABLE[a].from, STATES[s]))
                want[want_n++] = TABLE[a].action;
        const char *got[NELEMS(TABLE) + 1];
        got[NELEMS(TABLE)] = "sentinel";
        size_t n = pl_wf_allowed(STATES[s], got, NELEMS(TABLE));
        CHECK(n == want_n, "%s: %zu actions allowed, want %zu\n", STATES[s], n, want_n);
        for (size_t i = 0; i < n && i < want_n; i++)
            CHECK(!strcmp(got[i], want[i]), "%s: allowed[%zu] = %s, want %s\n", STATES[s], i,
                  got[i], want[i]);
        CHECK(!strcmp(got[NELEMS(TABLE)], "sentinel"), "%s: wrote past max\n", STATES[s]);

        /* A short buffer: the count is the whole count, only max are written. */
        const char *few[3] = {"untouched", "untouched", "untouched"};
        size_t m = pl_wf_allowed(STATES[s], few, 2);
        CHECK(m == want_n, "%s with max 2: returned %zu, want %zu\n", STATES[s], m, want_n);
        for (size_t i = 0; i < 2; i++) {
            const char *w = i < want_n ? want[i] : "untouched";
            CHECK(!strcmp(few[i], w), "%s with max 2: [%zu] = %s, want %s\n", STATES[s], i,
                  few[i], w);
        }
        CHECK(!strcmp(few[2], "untouched"), "%s with max 2: wrote a third entry\n", STATES[s]);
        size_t z = pl_wf_allowed(STATES[s], NULL, 0);
        CHECK(z == want_n, "%s with max 0: returned %zu, want %zu\n", STATES[s], z, want_n);
    }
    /* States before routing and unknown states allow nothing. */
    static const char *const NONE[] = {"received", "classified", "", "Closed", "parked", NULL};
    for (size_t i = 0; i < NELEMS(NONE); i++) {
        const char *out[4];
        size_t n = pl_wf_allowed(NONE[i], out, 4);
        CHECK(n == 0, "\"%s\": %zu actions allowed, want 0\n", or_null(NONE[i]), n);
    }
    assert_int_equal(failures, 0);
}

static void test_states(void **state)
{
    (void)state;
    static const struct {
        const char *label, *state;
        bool known, open;
    } cases[] = {
        {"received", "received", true, true},
        {"classified", "classified", true, true},
        {"routed", "routed", true, true},
        {"acknowledged", "acknowledged", true, true},
        {"in_progress", "in_progress", true, true},
        {"solution_proposed", "solution_proposed", true, true},
        {"reopened", "reopened", true, true},
        {"resolved: the clocks stop", "resolved", true, false},
        {"reviewed", "reviewed", true, false},
        {"closed", "closed", true, false},
        {"rejected", "rejected", true, false},
        {"empty", "", false, false},
        {"upper case", "Routed", false, false},
        {"trailing space", "closed ", false, false},
        {"prefix", "resolve", false, false},
        {"NULL", NULL, false, false},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        bool known = pl_wf_state_known(cases[i].state);
        bool open = pl_wf_state_open(cases[i].state);
        CHECK(known == cases[i].known, "%s: known %d, want %d\n", cases[i].label, known,
              cases[i].known);
        CHECK(open == cases[i].open, "%s: open %d, want %d\n", cases[i].label, open,
              cases[i].open);
    }
    assert_int_equal(failures, 0);
}

static void test_roles(void **state)
{
    (void)state;
    static const struct {
        const char *label, *name;
        unsigned want;
    } parse[] = {
        {"agent", "agent", PL_ROLE_AGENT},
        {"supervisor", "supervisor", PL_ROLE_SUPERVISOR},
        {"admin", "admin", PL_ROLE_ADMIN},
        {"integrator", "integrator", PL_ROLE_INTEGRATOR},
        {"upper case", "Admin", 0},
        {"plural", "agents", 0},
        {"prefix", "sup", 0},
        {"space", " agent", 0},
        {"empty", "", 0},
        {"NULL", NULL, 0},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(parse); i++) {
        unsigned got = pl_role_parse(parse[i].name);
        CHECK(got == parse[i].want, "parse %s: got %#x, want %#x\n", parse[i].label, got,
              parse[i].want);
        if (parse[i].want)
            CHECK(!strcmp(pl_role_name(got), parse[i].name), "name of %#x: %s, want %s\n", got,
                  pl_role_name(got), parse[i].name);
    }
    static const struct {
        const char *label;
        unsigned role;
    } unknown[] = {
        {"no bit", 0},
        {"two bits", PL_ROLE_AGENT | PL_ROLE_ADMIN},
        {"an unused bit", 1u << 9},
    };
    for (size_t i = 0; i < NELEMS(unknown); i++)
        CHECK(!strcmp(pl_role_name(unknown[i].role), "unknown"), "name of %s: %s, want unknown\n",
              unknown[i].label, pl_role_name(unknown[i].role));
    /* Distinct single bits. */
    unsigned bits[] = {PL_ROLE_AGENT, PL_ROLE_SUPERVISOR, PL_ROLE_ADMIN, PL_ROLE_INTEGRATOR};
    for (size_t i = 0; i < NELEMS(bits); i++) {
        CHECK(bits[i] && !(bits[i] & (bits[i] - 1)), "role %zu is not one bit\n", i);
        for (size_t j = i + 1; j < NELEMS(bits); j++)
            CHECK(!(bits[i] & bits[j]), "roles %zu and %zu share a bit\n", i, j);
    }
    assert_int_equal(failures, 0);
}

/* The whole procedure of the domain, then the reject path, step by step. */
static void test_procedure(void **state)
{
    (void)state;
    static const struct {
        const char *action;
        bool satisfied;
        const char *want;
    } steps[] = {
        {"acknowledge", false, "acknowledged"}, {"note", false, "in_progress"},
        {"assign", false, "in_progress"},       {"promise", false, "in_progress"},
        {"propose", false, "solution_proposed"}, {"feedback", false, "reopened"},
        {"note", false, "in_progress"},         {"propose", false, "solution_proposed"},
        {"feedback", false, "reopened"},        {"propose", false, "solution_proposed"},
        {"feedback", true, "resolved"},         {"rate", false, "resolved"},
        {"reopen", false, "reopened"},          {"propose", false, "solution_proposed"},
        {"resolve", false, "resolved"},         {"review", false, "reviewed"},
        {"close", false, "closed"},             {"rate", false, "closed"},
        {"note", false, "closed"},
    };
    const char *s = "routed";
    failures = 0;
    for (size_t i = 0; i < NELEMS(steps); i++) {
        const char *next = pl_wf_next(pl_wf_action(steps[i].action), s, steps[i].satisfied);
        CHECK(next && !strcmp(next, steps[i].want), "step %zu: %s in %s gives %s, want %s\n", i,
              steps[i].action, s, or_null(next), steps[i].want);
        if (!next)
            break;
        s = next;
    }
    const char *r = pl_wf_next(pl_wf_action("reject"), "acknowledged", false);
    CHECK(r && !strcmp(r, "rejected"), "reject gives %s\n", or_null(r));
    const char *c = r ? pl_wf_next(pl_wf_action("close"), r, false) : NULL;
    CHECK(c && !strcmp(c, "closed"), "close after reject gives %s\n", or_null(c));
    CHECK(!pl_wf_next(pl_wf_action("review"), "rejected", false), "review of a rejected case\n");
    CHECK(!pl_wf_next(pl_wf_action("reject"), "reopened", false), "reject of a reopened case\n");
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_action_in_every_state),
        cmocka_unit_test(test_next_is_static),
        cmocka_unit_test(test_follow_event),
        cmocka_unit_test(test_actions_table),
        cmocka_unit_test(test_allowed_per_state),
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_procedure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
