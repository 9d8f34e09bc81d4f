/*
 * test_desk_action: the checks on the body of POST /v1/cases/{id}/actions
 * (services/desk/desk_action.c) and what an accepted action turns into.
 *
 * test_rules is one table of bodies with the error paths each must produce,
 * in order (every problem at once), or none: required fields, types, sizes
 * (bytes, 1..4000 for texts), the solution_type enum, the charset and length
 * of user and department ids, due_at in the future, score 1..5, amounts, the
 * actor's default. test_content checks the columns (patch) and the events of
 * accepted actions, as JSON compared without regard to key order. Bodies are
 * written here; {{N}} in a body stands for N "x" characters.
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

#include "desk_action.h"
#include "pl_alloc.h"
#include "pl_err.h"
#include "pl_json.h"
#include "pl_time.h"

#include "test_util.h"

/* The time promises are checked against. */
#define NOW "2026-12-01T00:00:00Z"

static int64_t at(const char *rfc3339)
{
    int64_t ms = 0;
    pl_err_t err;
    if (pl_time_parse(rfc3339, &ms, "test", &err) != 0)
        fail_msg("bad time in test table: %s", rfc3339);
    return ms;
}

/* The template with each {{N}} replaced by N 'x' characters (caller frees). */
static char *expand(const char *tmpl)
{
    size_t cap = strlen(tmpl) + 1;
    for (const char *p = strstr(tmpl, "{{"); p; p = strstr(p + 2, "{{"))
        cap += (size_t)atoi(p + 2);
    char *out = pl_malloc(cap);
    size_t n = 0;
    for (const char *p = tmpl; *p;) {
        if (p[0] == '{' && p[1] == '{') {
            int k = atoi(p + 2);
            memset(out + n, 'x', (size_t)k);
            n += (size_t)k;
            p = strstr(p, "}}") + 2;
            continue;
        }
        out[n++] = *p++;
    }
    out[n] = '\0';
    return out;
}

static cJSON *parse(const char *tmpl)
{
    char *text = expand(tmpl);
    cJSON *root = cJSON_Parse(text);
    if (!root)
        fail_msg("bad JSON in test table: %s", tmpl);
    pl_free(text);
    return root;
}

/* The error paths of errs as "a,b" (empty paths shown as "<>"). */
static void joined_paths(const pl_errlist_t *errs, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < errs->count; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s", i ? "," : "",
                 errs->items[i].path[0] ? errs->items[i].path : "<>");
    }
}

static void test_rules(void **state)
{
    (void)state;
    static const struct {
        const char *label;
        const char *body;          /* NULL: no body at all */
        const char *actor_default; /* the authenticated caller, or NULL */
        const char *want_paths;    /* "" when accepted */
        int want_code;             /* the list's code when refused */
        const char *want_actor;    /* when accepted */
    } cases[] = {
        /* the body and the action's name */
        {"no body", NULL, NULL, "<>", PL_EINVAL, NULL},
        {"an array", "[{\"action\":\"acknowledge\"}]", NULL, "<>", PL_EINVAL, NULL},
        {"a string", "\"acknowledge\"", "agent.a", "<>", PL_EINVAL, NULL},
        {"empty object", "{}", NULL, "action,actor", PL_EINVAL, NULL},
        {"empty object, default actor", "{}", "agent.a", "action", PL_EINVAL, NULL},
        {"action a number", "{\"action\":5,\"actor\":\"agent.a\"}", NULL, "action", PL_EINVAL,
         NULL},
        {"action null", "{\"action\":null,\"actor\":\"agent.a\"}", NULL, "action", PL_EINVAL,
         NULL},
        {"unknown action", "{\"action\":\"escalate\",\"actor\":\"agent.a\"}", NULL, "action",
         PL_EINVAL, NULL},
        {"action names are case-sensitive", "{\"action\":\"Acknowledge\",\"actor\":\"agent.a\"}",
         NULL, "action", PL_EINVAL, NULL},
        {"unknown action and bad actor", "{\"action\":\"fly\",\"actor\":\"a b\"}", NULL,
         "action,actor", PL_EINVAL, NULL},

        /* the actor */
        {"actor", "{\"action\":\"acknowledge\",\"actor\":\"agent.cs-li_2@example.com\"}", NULL, "",
         0, "agent.cs-li_2@example.com"},
        {"actor missing", "{\"action\":\"acknowledge\"}", NULL, "actor", PL_EINVAL, NULL},
        {"actor from the default", "{\"action\":\"acknowledge\"}", "sup.cs.qian", "", 0,
         "sup.cs.qian"},
        {"actor in the body wins", "{\"action\":\"acknowledge\",\"actor\":\"agent.b\"}",
         "sup.cs.qian", "", 0, "agent.b"},
        {"actor empty", "{\"action\":\"acknowledge\",\"actor\":\"\"}", NULL, "actor", PL_EINVAL,
         NULL},
        {"actor 64 bytes", "{\"action\":\"acknowledge\",\"actor\":\"{{64}}\"}", NULL, "", 0, NULL},
        {"actor 65 bytes", "{\"action\":\"acknowledge\",\"actor\":\"{{65}}\"}", NULL, "actor",
         PL_EINVAL, NULL},
        {"actor with a space", "{\"action\":\"acknowledge\",\"actor\":\"agent li\"}", NULL, "actor",
         PL_EINVAL, NULL},
        {"actor with a slash", "{\"action\":\"acknowledge\",\"actor\":\"a/b\"}", NULL, "actor",
         PL_EINVAL, NULL},
        {"actor with a quote", "{\"action\":\"acknowledge\",\"actor\":\"a\\\"b\"}", NULL, "actor",
         PL_EINVAL, NULL},
        {"actor with a newline", "{\"action\":\"acknowledge\",\"actor\":\"a\\nb\"}", NULL, "actor",
         PL_EINVAL, NULL},
        {"actor not ASCII", "{\"action\":\"acknowledge\",\"actor\":\"李伟\"}", NULL, "actor",
         PL_EINVAL, NULL},
        {"actor a number", "{\"action\":\"acknowledge\",\"actor\":17}", NULL, "actor", PL_EINVAL,
         NULL},

        /* texts: strings of 1..4000 bytes */
        {"note", "{\"action\":\"note\",\"actor\":\"a\",\"note\":\"called the customer\"}", NULL,
         "", 0, "a"},
        {"note missing", "{\"action\":\"note\",\"actor\":\"a\"}", NULL, "note", PL_EINVAL, NULL},
        {"note recording contact with the customer",
         "{\"action\":\"note\",\"actor\":\"a\",\"note\":\"rang her\",\"customer_contact\":true}",
         NULL, "", 0, "a"},
        {"customer_contact not a boolean",
         "{\"action\":\"note\",\"actor\":\"a\",\"note\":\"n\",\"customer_contact\":\"yes\"}",
         NULL, "customer_contact", PL_EINVAL, NULL},
        {"note null is missing", "{\"action\":\"note\",\"actor\":\"a\",\"note\":null}", NULL,
         "note", PL_EINVAL, NULL},
        {"note empty", "{\"action\":\"note\",\"actor\":\"a\",\"note\":\"\"}", NULL, "note",
         PL_EINVAL, NULL},
        {"note a number", "{\"action\":\"note\",\"actor\":\"a\",\"note\":42}", NULL, "note",
         PL_EINVAL, NULL},
        {"note an object", "{\"action\":\"note\",\"actor\":\"a\",\"note\":{\"t\":\"x\"}}", NULL,
         "note", PL_EINVAL, NULL},
        {"note 4000 bytes", "{\"action\":\"note\",\"actor\":\"a\",\"note\":\"{{4000}}\"}", NULL,
         "", 0, "a"},
        {"note 4001 bytes", "{\"action\":\"note\",\"actor\":\"a\",\"note\":\"{{4001}}\"}", NULL,
         "note", PL_ETOOLARGE, NULL},
        {"note of 3998 bytes and a 3-byte character: 4001 bytes",
         "{\"action\":\"note\",\"actor\":\"a\",\"note\":\"{{3998}}客\"}", NULL, "note",
         PL_ETOOLARGE, NULL},
        {"acknowledge comment too long",
         "{\"action\":\"acknowledge\",\"actor\":\"a\",\"comment\":\"{{4001}}\"}", NULL, "comment",
         PL_ETOOLARGE, NULL},
        {"acknowledge comment a bool",
         "{\"action\":\"acknowledge\",\"actor\":\"a\",\"comment\":true}", NULL, "comment",
         PL_EINVAL, NULL},
        {"reject", "{\"action\":\"reject\",\"actor\":\"a\",\"reason\":\"not our product\"}", NULL,
         "", 0, "a"},
        {"reject without reason", "{\"action\":\"reject\",\"actor\":\"a\"}", NULL, "reason",
         PL_EINVAL, NULL},
        {"reopen without reason", "{\"action\":\"reopen\",\"actor\":\"a\"}", NULL, "", 0, "a"},
        {"reopen reason empty", "{\"action\":\"reopen\",\"actor\":\"a\",\"reason\":\"\"}", NULL,
         "reason", PL_EINVAL, NULL},
        {"resolve", "{\"action\":\"resolve\",\"actor\":\"a\"}", NULL, "", 0, "a"},
        {"review", "{\"action\":\"review\",\"actor\":\"sup.x\",\"comment\":\"ok\"}", NULL, "", 0,
         "sup.x"},
        {"close", "{\"action\":\"close\",\"actor\":\"sup.x\"}", NULL, "", 0, "sup.x"},
        {"close reason a list", "{\"action\":\"close\",\"actor\":\"sup.x\",\"reason\":[\"x\"]}",
         NULL, "reason", PL_EINVAL, NULL},

        /* assign: user and department ids */
        {"assign", "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"agent.fn.he\"}", NULL,
         "", 0, "a"},
        {"assign with department",
         "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"agent.fn.he\","
         "\"department\":\"finance\"}",
         NULL, "", 0, "a"},
        {"assign without assignee", "{\"action\":\"assign\",\"actor\":\"a\",\"department\":\"x\"}",
         NULL, "assignee", PL_EINVAL, NULL},
        {"assignee empty", "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"\"}", NULL,
         "assignee", PL_EINVAL, NULL},
        {"assignee with a space", "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"x y\"}",
         NULL, "assignee", PL_EINVAL, NULL},
        {"assignee 65 bytes", "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"{{65}}\"}",
         NULL, "assignee", PL_EINVAL, NULL},
        {"assignee a number", "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":7}", NULL,
         "assignee", PL_EINVAL, NULL},
        {"department 64 bytes",
         "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"b\",\"department\":\"{{64}}\"}",
         NULL, "", 0, "a"},
        {"department 65 bytes",
         "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"b\",\"department\":\"{{65}}\"}",
         NULL, "department", PL_EINVAL, NULL},
        {"department with a dot",
         "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"b\",\"department\":\"fin.ance\"}",
         NULL, "department", PL_EINVAL, NULL},
        {"department with a dash",
         "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"b\",\"department\":\"store-ops\"}",
         NULL, "department", PL_EINVAL, NULL},
        {"department with an @",
         "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"b\",\"department\":\"a@b\"}",
         NULL, "department", PL_EINVAL, NULL},
        {"department empty",
         "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"b\",\"department\":\"\"}", NULL,
         "department", PL_EINVAL, NULL},
        {"department null is no department",
         "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"b\",\"department\":null}", NULL,
         "", 0, "a"},
        {"assign: both ids bad",
         "{\"action\":\"assign\",\"actor\":\"a\",\"assignee\":\"b c\",\"department\":\"d-e\","
         "\"comment\":\"\"}",
         NULL, "assignee,department,comment", PL_EINVAL, NULL},

        /* propose: solution_type enum, amount */
        {"propose",
         "{\"action\":\"propose\",\"actor\":\"a\",\"solution\":\"a new kettle\","
         "\"solution_type\":\"replacement\"}",
         NULL, "", 0, "a"},
        {"propose without anything", "{\"action\":\"propose\",\"actor\":\"a\"}", NULL,
         "solution,solution_type", PL_EINVAL, NULL},
        {"solution_type unknown",
         "{\"action\":\"propose\",\"actor\":\"a\",\"solution\":\"s\",\"solution_type\":\"cash\"}",
         NULL, "solution_type", PL_EINVAL, NULL},
        {"solution_type upper case",
         "{\"action\":\"propose\",\"actor\":\"a\",\"solution\":\"s\",\"solution_type\":\"Refund\"}",
         NULL, "solution_type", PL_EINVAL, NULL},
        {"solution_type a number",
         "{\"action\":\"propose\",\"actor\":\"a\",\"solution\":\"s\",\"solution_type\":1}", NULL,
         "solution_type", PL_EINVAL, NULL},
        {"amount 0",
         "{\"action\":\"propose\",\"actor\":\"a\",\"solution\":\"s\",\"solution_type\":\"refund\","
         "\"amount\":0,\"currency\":\"CNY\"}",
         NULL, "", 0, "a"},
        {"amount 1e12",
         "{\"action\":\"propose\",\"actor\":\"a\",\"solution\":\"s\",\"solution_type\":\"refund\","
         "\"amount\":1e12}",
         NULL, "", 0, "a"},
        {"amount over 1e12",
         "{\"action\":\"propose\",\"actor\":\"a\",\"solution\":\"s\",\"solution_type\":\"refund\","
         "\"amount\":1000000000001}",
         NULL, "amount", PL_EINVAL, NULL},
        {"amount negative",
         "{\"action\":\"propose\",\"actor\":\"a\",\"solution\":\"s\",\"solution_type\":\"refund\","
         "\"amount\":-0.01}",
         NULL, "amount", PL_EINVAL, NULL},
        {"amount a string",
         "{\"action\":\"propose\",\"actor\":\"a\",\"solution\":\"s\",\"solution_type\":\"refund\","
         "\"amount\":\"12.50\"}",
         NULL, "amount", PL_EINVAL, NULL},
        {"currency a number",
         "{\"action\":\"propose\",\"actor\":\"a\",\"solution\":\"s\",\"solution_type\":\"refund\","
         "\"currency\":156}",
         NULL, "currency", PL_EINVAL, NULL},
        {"every problem of a propose, in order",
         "{\"action\":\"propose\",\"actor\":\"not ok\",\"solution\":7,\"solution_type\":\"cash\","
         "\"amount\":-5,\"currency\":\"\"}",
         NULL, "actor,solution,solution_type,amount,currency", PL_EINVAL, NULL},
        {"too large wins the code",
         "{\"action\":\"propose\",\"actor\":\"a\",\"solution\":\"{{4001}}\","
         "\"solution_type\":\"cash\"}",
         NULL, "solution,solution_type", PL_ETOOLARGE, NULL},

        /* promise: due_at, RFC 3339, in the future */
        {"promise", "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":\"2026-12-01T10:00:00Z\"}",
         NULL, "", 0, "a"},
        {"promise 1 ms ahead",
         "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":\"2026-12-01T00:00:00.001Z\"}", NULL,
         "", 0, "a"},
        {"promise with an offset, 1 s ahead",
         "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":\"2026-12-01T08:00:01+08:00\"}", NULL,
         "", 0, "a"},
        {"promise with an offset, 1 s ago",
         "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":\"2026-12-01T07:59:59+08:00\"}", NULL,
         "due_at", PL_EINVAL, NULL},
        {"promise now is not the future",
         "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":\"" NOW "\"}", NULL, "due_at",
         PL_EINVAL, NULL},
        {"promise in the past",
         "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":\"2025-01-01T00:00:00Z\"}", NULL,
         "due_at", PL_EINVAL, NULL},
        {"promise without due_at", "{\"action\":\"promise\",\"actor\":\"a\",\"promise\":\"soon\"}",
         NULL, "due_at", PL_EINVAL, NULL},
        {"due_at not a time", "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":\"tomorrow\"}",
         NULL, "due_at", PL_EINVAL, NULL},
        {"due_at without a zone",
         "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":\"2026-12-02T10:00:00\"}", NULL,
         "due_at", PL_EINVAL, NULL},
        {"due_at a date only", "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":\"2026-12-02\"}",
         NULL, "due_at", PL_EINVAL, NULL},
        {"due_at month 13",
         "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":\"2026-13-02T10:00:00Z\"}", NULL,
         "due_at", PL_EINVAL, NULL},
        {"due_at a number", "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":1796000000000}",
         NULL, "due_at", PL_EINVAL, NULL},
        {"promise text empty",
         "{\"action\":\"promise\",\"actor\":\"a\",\"due_at\":\"2026-12-02T10:00:00Z\","
         "\"promise\":\"\"}",
         NULL, "promise", PL_EINVAL, NULL},

        /* feedback: satisfied is a boolean */
        {"feedback satisfied", "{\"action\":\"feedback\",\"actor\":\"a\",\"satisfied\":true}",
         NULL, "", 0, "a"},
        {"feedback unsatisfied", "{\"action\":\"feedback\",\"actor\":\"a\",\"satisfied\":false}",
         NULL, "", 0, "a"},
        {"feedback without satisfied", "{\"action\":\"feedback\",\"actor\":\"a\"}", NULL,
         "satisfied", PL_EINVAL, NULL},
        {"satisfied a string", "{\"action\":\"feedback\",\"actor\":\"a\",\"satisfied\":\"true\"}",
         NULL, "satisfied", PL_EINVAL, NULL},
        {"satisfied a number", "{\"action\":\"feedback\",\"actor\":\"a\",\"satisfied\":1}", NULL,
         "satisfied", PL_EINVAL, NULL},

        /* rate: a whole score 1..5 */
        {"rate 1", "{\"action\":\"rate\",\"actor\":\"a\",\"score\":1}", NULL, "", 0, "a"},
        {"rate 5", "{\"action\":\"rate\",\"actor\":\"a\",\"score\":5}", NULL, "", 0, "a"},
        {"rate 5.0", "{\"action\":\"rate\",\"actor\":\"a\",\"score\":5.0}", NULL, "", 0, "a"},
        {"rate 0", "{\"action\":\"rate\",\"actor\":\"a\",\"score\":0}", NULL, "score", PL_EINVAL,
         NULL},
        {"rate 6", "{\"action\":\"rate\",\"actor\":\"a\",\"score\":6}", NULL, "score", PL_EINVAL,
         NULL},
        {"rate -1", "{\"action\":\"rate\",\"actor\":\"a\",\"score\":-1}", NULL, "score", PL_EINVAL,
         NULL},
        {"rate 4.5", "{\"action\":\"rate\",\"actor\":\"a\",\"score\":4.5}", NULL, "score",
         PL_EINVAL, NULL},
        {"rate \"5\"", "{\"action\":\"rate\",\"actor\":\"a\",\"score\":\"5\"}", NULL, "score",
         PL_EINVAL, NULL},
        {"rate without score", "{\"action\":\"rate\",\"actor\":\"a\",\"comment\":\"great\"}", NULL,
         "score", PL_EINVAL, NULL},

        /* fields the action does not take are ignored, whatever they hold */
        {"other actions' fields are ignored",
         "{\"action\":\"acknowledge\",\"actor\":\"a\",\"score\":\"x\",\"assignee\":\"no way\","
         "\"due_at\":\"yesterday\",\"satisfied\":7}",
         NULL, "", 0, "a"},
        {"unknown fields are ignored",
         "{\"action\":\"acknowledge\",\"actor\":\"a\",\"crm\":{\"ticket\":[1,2]}}", NULL, "", 0,
         "a"},
    };
    int64_t now = at(NOW);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        cJSON *body = cases[i].body ? parse(cases[i].body) : NULL;
        pl_errlist_t errs = PL_ERRLIST_INIT;
        desk_action_t *a = desk_action_new(body, cases[i].actor_default, now, &errs);
        char got[512];
        joined_paths(&errs, got, sizeof got);
        bool want_ok = !*cases[i].want_paths;
        CHECK((a != NULL) == want_ok, "%s: %s, want %s (errors: %s)\n", cases[i].label,
              a ? "accepted" : "refused", want_ok ? "accepted" : "refused", got);
        CHECK(!strcmp(got, cases[i].want_paths), "%s: error paths [%s], want [%s]\n",
              cases[i].label, got, cases[i].want_paths);
        if (!want_ok && errs.count)
            CHECK(pl_errlist_code(&errs) == cases[i].want_code, "%s: code %s, want %s\n",
                  cases[i].label, pl_err_code_name(pl_errlist_code(&errs)),
                  pl_err_code_name(cases[i].want_code));
        for (size_t k = 0; k < errs.count; k++)
            CHECK(errs.items[k].message[0] != '\0', "%s: error %zu has no message\n",
                  cases[i].label, k);
        if (a && cases[i].want_actor)
            CHECK(!strcmp(desk_action_actor(a), cases[i].want_actor), "%s: actor %s, want %s\n",
                  cases[i].label, desk_action_actor(a), cases[i].want_actor);
        if (a && body) {
            const char *name = cJSON_GetObjectItemCaseSensitive(body, "action")->valuestring;
            CHECK(!strcmp(desk_action_def(a)->name, name), "%s: action %s, want %s\n",
                  cases[i].label, desk_action_def(a)->name, name);
        }
        desk_action_destroy(&a);
        CHECK(a == NULL, "%s: destroy does not null the pointer\n", cases[i].label);
        pl_errlist_reset(&errs);
        cJSON_Delete(body);
    }
    desk_action_destroy(&(desk_action_t *){NULL}); /* NULL-safe */
    assert_int_equal(failures, 0);
}

/* Errors are appended to what the list held: the count of problems is this
 * body's, not the list's. */
static void test_errors_append(void **state)
{
    (void)state;
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_errlist_add(&errs, PL_EINVAL, "earlier", "an earlier problem");
    cJSON *ok = parse("{\"action\":\"acknowledge\",\"actor\":\"a\"}");
    desk_action_t *a = desk_action_new(ok, NULL, at(NOW), &errs);
    assert_non_null(a); /* earlier problems are not this body's */
    desk_action_destroy(&a);
    cJSON *bad = parse("{\"action\":\"rate\",\"actor\":\"a\",\"score\":9}");
    assert_null(desk_action_new(bad, NULL, at(NOW), &errs));
    assert_int_equal(errs.count, 2);
    assert_string_equal(errs.items[0].path, "earlier");
    assert_string_equal(errs.items[1].path, "score");
    pl_errlist_reset(&errs);
    cJSON_Delete(ok);
    cJSON_Delete(bad);
}

static void test_next(void **state)
{
    (void)state;
    static const struct {
        const char *label, *body, *state, *want;
    } cases[] = {
        {"acknowledge a routed case", "{\"action\":\"acknowledge\"}", "routed", "acknowledged"},
        {"acknowledge twice", "{\"action\":\"acknowledge\"}", "acknowledged", NULL},
        {"note starts the work", "{\"action\":\"note\",\"note\":\"n\"}", "acknowledged",
         "in_progress"},
        {"satisfied", "{\"action\":\"feedback\",\"satisfied\":true}", "solution_proposed",
         "resolved"},
        {"not satisfied", "{\"action\":\"feedback\",\"satisfied\":false}", "solution_proposed",
         "reopened"},
        {"feedback before a solution", "{\"action\":\"feedback\",\"satisfied\":true}", "routed",
         NULL},
        {"rate keeps the state", "{\"action\":\"rate\",\"score\":3}", "closed", "closed"},
        {"close a routed case", "{\"action\":\"close\"}", "routed", NULL},
        {"unknown state", "{\"action\":\"note\",\"note\":\"n\"}", "archived", NULL},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        cJSON *body = parse(cases[i].body);
        pl_errlist_t errs = PL_ERRLIST_INIT;
        desk_action_t *a = desk_action_new(body, "agent.a", at(NOW), &errs);
        assert_non_null(a);
        const char *got = desk_action_next(a, cases[i].state);
        bool ok = got == cases[i].want || (got && cases[i].want && !strcmp(got, cases[i].want));
        CHECK(ok, "%s: %s, want %s\n", cases[i].label, got ? got : "(null)",
              cases[i].want ? cases[i].want : "(null)");
        desk_action_destroy(&a);
        pl_errlist_reset(&errs);
        cJSON_Delete(body);
    }
    assert_int_equal(failures, 0);
}

static bool same_json(const cJSON *got, const char *want_text, char *shown, size_t size)
{
    cJSON *want = cJSON_Parse(want_text);
    if (!want)
        fail_msg("bad JSON in test table: %s", want_text);
    char *text = pl_json_print(got);
    snprintf(shown, size, "%s", text);
    pl_free(text);
    bool same = cJSON_Compare(got, want, true);
    cJSON_Delete(want);
    return same;
}

static void test_content(void **state)
{
    (void)state;
    static const struct {
        const char *label, *body;
        const char *prev_assignee, *prev_department;
        int reopen_count;
        const char *want_department; /* desk_action_department */
        const char *want_patch, *want_events;
    } cases[] = {
        {"acknowledge", "{\"action\":\"acknowledge\",\"actor\":\"agent.a\",\"comment\":\"rang\"}",
         "agent.a", "logistics", 0, NULL, "{}",
         "[{\"type\":\"case.acknowledged\","
         "\"data\":{\"comment\":\"rang\",\"actor\":\"agent.a\"}}]"},
        {"note", "{\"action\":\"note\",\"actor\":\"agent.a\",\"note\":\"asked for photos\"}",
         "agent.a", "logistics", 0, NULL, "{}",
         "[{\"type\":\"case.noted\",\"data\":{\"note\":\"asked for photos\","
         "\"actor\":\"agent.a\"}}]"},
        {"note of a call to the customer",
         "{\"action\":\"note\",\"actor\":\"agent.a\",\"note\":\"rang back\","
         "\"customer_contact\":true}",
         "agent.a", "logistics", 0, NULL, "{}",
         "[{\"type\":\"case.noted\",\"data\":{\"note\":\"rang back\",\"customer_contact\":true,"
         "\"actor\":\"agent.a\"}}]"},
        {"assign to another department",
         "{\"action\":\"assign\",\"actor\":\"sup.lg\",\"assignee\":\"agent.fn.he\","
         "\"department\":\"finance\",\"comment\":\"refund needed\"}",
         "agent.lg.ma", "logistics", 0, "finance",
         "{\"assignee\":\"agent.fn.he\",\"department\":\"finance\"}",
         "[{\"type\":\"case.assigned\",\"data\":{\"assignee\":\"agent.fn.he\","
         "\"department\":\"finance\",\"comment\":\"refund needed\",\"actor\":\"sup.lg\","
         "\"previous_assignee\":\"agent.lg.ma\"}}]"},
        {"assign within the department",
         "{\"action\":\"assign\",\"actor\":\"sup.lg\",\"assignee\":\"agent.lg.ye\"}", NULL,
         "logistics", 0, NULL, "{\"assignee\":\"agent.lg.ye\"}",
         "[{\"type\":\"case.assigned\",\"data\":{\"assignee\":\"agent.lg.ye\","
         "\"department\":\"logistics\",\"actor\":\"sup.lg\",\"previous_assignee\":null}}]"},
        {"reject", "{\"action\":\"reject\",\"actor\":\"agent.a\",\"reason\":\"not sold by us\"}",
         "agent.a", "quality", 0, NULL, "{}",
         "[{\"type\":\"case.rejected\",\"data\":{\"reason\":\"not sold by us\","
         "\"actor\":\"agent.a\"}}]"},
        {"propose with an amount",
         "{\"action\":\"propose\",\"actor\":\"agent.a\",\"solution\":\"refund the fee\","
         "\"solution_type\":\"refund\",\"amount\":12.5,\"currency\":\"CNY\",\"extra\":1}",
         "agent.a", "finance", 0, NULL, "{}",
         "[{\"type\":\"case.solution_proposed\",\"data\":{\"solution\":\"refund the fee\","
         "\"solution_type\":\"refund\",\"amount\":12.5,\"currency\":\"CNY\","
         "\"actor\":\"agent.a\"}}]"},
        {"promise",
         "{\"action\":\"promise\",\"actor\":\"agent.a\",\"due_at\":\"2026-12-02T18:00:00+08:00\","
         "\"promise\":\"call back tomorrow\"}",
         "agent.a", "logistics", 0, NULL, "{\"due_at\":\"2026-12-02T10:00:00.000Z\"}",
         "[{\"type\":\"case.promised\",\"data\":{\"due_at\":\"2026-12-02T10:00:00.000Z\","
         "\"promise\":\"call back tomorrow\",\"actor\":\"agent.a\"}}]"},
        {"feedback satisfied",
         "{\"action\":\"feedback\",\"actor\":\"agent.a\",\"satisfied\":true,\"comment\":\"ok\"}",
         "agent.a", "logistics", 2, NULL, "{\"satisfied\":true}",
         "[{\"type\":\"case.feedback\",\"data\":{\"satisfied\":true,\"comment\":\"ok\","
         "\"actor\":\"agent.a\"}},{\"type\":\"case.resolved\",\"data\":{\"actor\":\"agent.a\"}}]"},
        {"feedback unsatisfied, first time",
         "{\"action\":\"feedback\",\"actor\":\"agent.a\",\"satisfied\":false}", "agent.a",
         "finance", 0, NULL, "{\"satisfied\":false}",
         "[{\"type\":\"case.feedback\",\"data\":{\"satisfied\":false,\"actor\":\"agent.a\"}},"
         "{\"type\":\"case.reopened\",\"data\":{\"actor\":\"agent.a\",\"reopen_count\":1,"
         "\"department\":\"finance\","
         "\"reason\":\"the customer is not satisfied with the solution\"}}]"},
        {"feedback unsatisfied, third time",
         "{\"action\":\"feedback\",\"actor\":\"agent.a\",\"satisfied\":false}", "agent.a",
         "finance", 2, NULL, "{\"satisfied\":false}",
         "[{\"type\":\"case.feedback\",\"data\":{\"satisfied\":false,\"actor\":\"agent.a\"}},"
         "{\"type\":\"case.reopened\",\"data\":{\"actor\":\"agent.a\",\"reopen_count\":3,"
         "\"department\":\"finance\","
         "\"reason\":\"the customer is not satisfied with the solution\"}}]"},
        {"resolve", "{\"action\":\"resolve\",\"actor\":\"agent.a\",\"resolution\":\"replaced\"}",
         "agent.a", "quality", 0, NULL, "{}",
         "[{\"type\":\"case.resolved\",\"data\":{\"resolution\":\"replaced\","
         "\"actor\":\"agent.a\"}}]"},
        {"reopen", "{\"action\":\"reopen\",\"actor\":\"sup.q\",\"reason\":\"it broke again\"}",
         "agent.a", "quality", 1, NULL, "{}",
         "[{\"type\":\"case.reopened\",\"data\":{\"reason\":\"it broke again\",\"actor\":\"sup.q\","
         "\"reopen_count\":2,\"department\":\"quality\"}}]"},
        {"review", "{\"action\":\"review\",\"actor\":\"sup.q\"}", "agent.a", "quality", 0, NULL,
         "{}", "[{\"type\":\"case.reviewed\",\"data\":{\"actor\":\"sup.q\"}}]"},
        {"close", "{\"action\":\"close\",\"actor\":\"sup.q\",\"reason\":\"archived\"}", "agent.a",
         "quality", 0, NULL, "{}",
         "[{\"type\":\"case.closed\",\"data\":{\"reason\":\"archived\",\"actor\":\"sup.q\"}}]"},
        {"rate", "{\"action\":\"rate\",\"actor\":\"agent.a\",\"score\":5,\"comment\":\"thanks\"}",
         "agent.a", "quality", 0, NULL, "{\"score\":5}",
         "[{\"type\":\"case.rated\",\"data\":{\"score\":5,\"comment\":\"thanks\","
         "\"actor\":\"agent.a\"}}]"},
        {"fields of other actions stay out",
         "{\"action\":\"acknowledge\",\"actor\":\"agent.a\",\"assignee\":\"x\",\"score\":4,"
         "\"department\":\"legal\",\"due_at\":\"2030-01-01T00:00:00Z\",\"satisfied\":true}",
         "agent.a", "quality", 0, NULL, "{}",
         "[{\"type\":\"case.acknowledged\",\"data\":{\"actor\":\"agent.a\"}}]"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        cJSON *body = parse(cases[i].body);
        pl_errlist_t errs = PL_ERRLIST_INIT;
        desk_action_t *a = desk_action_new(body, NULL, at(NOW), &errs);
        cJSON_Delete(body); /* the action keeps its own copies */
        if (!a) {
            CHECK(false, "%s: refused: %s\n", cases[i].label,
                  errs.count ? errs.items[0].message : "?");
            pl_errlist_reset(&errs);
            continue;
        }
        const char *dept = desk_action_department(a);
        const char *want_dept = cases[i].want_department;
        bool dept_ok = dept == want_dept || (dept && want_dept && !strcmp(dept, want_dept));
        CHECK(dept_ok, "%s: department %s, want %s\n", cases[i].label, dept ? dept : "(null)",
              cases[i].want_department ? cases[i].want_department : "(null)");
        char shown[2048];
        cJSON *patch = desk_action_patch(a);
        CHECK(same_json(patch, cases[i].want_patch, shown, sizeof shown),
              "%s: patch %s, want %s\n", cases[i].label, shown, cases[i].want_patch);
        cJSON *events = desk_action_events(a, cases[i].prev_assignee, cases[i].prev_department,
                                           cases[i].reopen_count);
        CHECK(same_json(events, cases[i].want_events, shown, sizeof shown),
              "%s: events %s, want %s\n", cases[i].label, shown, cases[i].want_events);
        /* The patch and the events are new trees each time. */
        cJSON *again = desk_action_events(a, cases[i].prev_assignee, cases[i].prev_department,
                                          cases[i].reopen_count);
        CHECK(again != events && cJSON_Compare(again, events, true),
              "%s: a second call gives other events\n", cases[i].label);
        cJSON_Delete(again);
        cJSON_Delete(events);
        cJSON_Delete(patch);
        desk_action_destroy(&a);
        pl_errlist_reset(&errs);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_errors_append),
        cmocka_unit_test(test_next),
        cmocka_unit_test(test_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
