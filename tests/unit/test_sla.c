/*
 * test_sla: sla.json - the shipped defaults, targets and due times, what
 * makes a case complex, pauses, escalation ladders, and every load error
 * with its JSON path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "pl_calendar.h"
#include "pl_err.h"
#include "pl_sla.h"
#include "pl_time.h"

#include "test_util.h"

#define H (3600 * 1000LL)
#define D (24 * H)

/* deploy/config, found from this file's path (CMake compiles by absolute path). */
static const char *config_dir(void)
{
    static char buf[1024];
    const char *marker = strstr(__FILE__, "/tests/unit/test_sla.c");
    if (!marker || __FILE__[0] != '/')
        fail_msg("cannot find the source tree from %s", __FILE__);
    snprintf(buf, sizeof buf, "%.*s/deploy/config", (int)(marker - __FILE__), __FILE__);
    return buf;
}

static int64_t at(const char *rfc3339)
{
    int64_t ms = 0;
    pl_err_t err;
    if (pl_time_parse(rfc3339, &ms, "test", &err) != 0)
        fail_msg("bad time in test table: %s", rfc3339);
    return ms;
}

static pl_sla_t *shipped(void)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_sla_t *sla = pl_sla_load(config_dir(), &errs);
    for (size_t i = 0; i < errs.count; i++)
        print_error("%s\n", errs.items[i].message);
    assert_non_null(sla);
    assert_int_equal(errs.count, 0);
    pl_errlist_reset(&errs);
    return sla;
}

static void test_shipped_defaults(void **state)
{
    pl_sla_t *sla = shipped();
    static const struct {
        pl_sla_prio_t prio;
        pl_sla_clock_t first_clock;
        int64_t first_ms;
        int first_days;
    } rows[] = {
        {PL_SLA_P1, PL_SLA_CLOCK_24X7, 1 * H, 0},
        {PL_SLA_P2, PL_SLA_CLOCK_24X7, 24 * H, 0},
        {PL_SLA_P3, PL_SLA_CLOCK_WORKING_DAYS, 0, 3},
    };
    for (size_t i = 0; i < NELEMS(rows); i++) {
        const pl_sla_target_t *t = pl_sla_first_response(sla, rows[i].prio);
        assert_int_equal(t->clock, rows[i].first_clock);
        assert_int_equal(t->within_ms, rows[i].first_ms);
        assert_int_equal(t->working_days, rows[i].first_days);
        assert_int_equal(pl_sla_resolution(sla, rows[i].prio, false)->within_ms, 48 * H);
        assert_int_equal(pl_sla_resolution(sla, rows[i].prio, true)->within_ms, 7 * D);
        assert_true(pl_sla_warn_at(sla, rows[i].prio) > 0.79 &&
                    pl_sla_warn_at(sla, rows[i].prio) < 0.81);
    }
    assert_int_equal(pl_sla_warn_to(sla), PL_SLA_ASSIGNEE);
    assert_int_equal(pl_sla_priority_or_default(sla, NULL), PL_SLA_P2);
    assert_int_equal(pl_sla_priority_or_default(sla, "P7"), PL_SLA_P2);
    assert_int_equal(pl_sla_priority_or_default(sla, "P1"), PL_SLA_P1);
    assert_int_equal(pl_sla_priority_parse("p1"), PL_EINVAL);

    assert_true(pl_sla_pauses(sla, PL_SLA_RESOLUTION, "waiting_customer"));
    assert_false(pl_sla_pauses(sla, PL_SLA_FIRST_RESPONSE, "waiting_customer"));
    assert_false(pl_sla_pauses(sla, PL_SLA_PROMISE, "waiting_customer"));
    assert_false(pl_sla_pauses(sla, PL_SLA_RESOLUTION, "in_progress"));
    assert_false(pl_sla_pauses(sla, PL_SLA_RESOLUTION, NULL));

    /* The default ladder, and P1's: a breached P1 reaches the head at once. */
    const pl_sla_step_t *steps;
    assert_int_equal(pl_sla_ladder(sla, PL_SLA_P2, &steps), 3);
    assert_int_equal(steps[0].to, PL_SLA_SUPERVISOR);
    assert_int_equal(steps[0].after_ms, 0);
    assert_int_equal(steps[1].to, PL_SLA_DEPARTMENT_HEAD);
    assert_int_equal(steps[1].after_ms, 4 * H);
    assert_int_equal(steps[2].to, PL_SLA_MANAGEMENT);
    assert_int_equal(steps[2].after_ms, 24 * H);
    assert_int_equal(pl_sla_ladder(sla, PL_SLA_P1, &steps), 3);
    assert_int_equal(steps[1].to, PL_SLA_DEPARTMENT_HEAD);
    assert_int_equal(steps[1].after_ms, 0);
    assert_int_equal(pl_sla_ladder(sla, PL_SLA_P3, &steps), 3);

    assert_string_equal(pl_sla_role_name(PL_SLA_DEPARTMENT_HEAD), "department_head");
    assert_string_equal(pl_sla_kind_name(PL_SLA_FIRST_RESPONSE), "first_response");
    assert_string_equal(pl_sla_clock_name(PL_SLA_CLOCK_WORKING_DAYS), "working_days");
    assert_string_equal(pl_sla_priority_name(PL_SLA_P3), "P3");
    pl_sla_destroy(&sla);
    assert_null(sla);
    pl_sla_destroy(NULL);
}

static void test_complex(void **state)
{
    static const char *const legal[] = {"keyword:refund", "legal_threat:律师"};
    static const char *const near[] = {"legal", "legal_threats", "xlegal_threat"};
    static const char *const repeat[] = {"repeat"};
    static const struct {
        const char *label;
        pl_sla_case_t c;
        bool want;
    } cases[] = {
        {"plain", {"P2", "product_quality", "individual", NULL, 0, 1}, false},
        {"no fields", {NULL, NULL, NULL, NULL, 0, 0}, false},
        {"fraud category", {"P2", "fraud_security_privacy", NULL, NULL, 0, 1}, true},
        {"legal signal with detail", {"P3", "billing_price", NULL, legal, 2, 1}, true},
        {"near-miss signals", {"P3", "billing_price", NULL, near, 3, 1}, false},
        {"repeat complaint", {"P3", "logistics_delivery", NULL, repeat, 1, 1}, true},
        {"enterprise customer", {"P3", "after_sales", "enterprise", NULL, 0, 1}, true},
        {"vip is not", {"P3", "after_sales", "vip", NULL, 0, 1}, false},
        {"cross-department", {"P3", "after_sales", NULL, NULL, 0, 2}, true},
    };
    pl_sla_t *sla = shipped();
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++)
        CHECK(pl_sla_is_complex(sla, &cases[i].c) == cases[i].want, "%s: want %d\n", cases[i].label,
              cases[i].want);
    assert_true(pl_sla_signal_match("safety", "safety:冒烟"));
    assert_false(pl_sla_signal_match("safety", "safe"));
    assert_false(pl_sla_signal_match(NULL, "safety"));
    pl_sla_destroy(&sla);
    assert_int_equal(failures, 0);
}

static void test_due(void **state)
{
    cJSON *obj = cJSON_Parse("{\"zone\": \"Asia/Shanghai\", \"hours\": {\"mon-fri\": "
                             "[\"09:00-18:00\"]}, \"holidays\": [\"2026-10-01\"]}");
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_calendar_t *cal = pl_calendar_new("office", obj, "t", "c", NULL, &errs);
    assert_non_null(cal);
    cJSON_Delete(obj);
    static const struct {
        const char *label;
        pl_sla_target_t t;
        const char *start, *want;
    } cases[] = {
        {"24x7 over the weekend",
         {PL_SLA_CLOCK_24X7, 24 * H, 0},
         "2026-09-25T17:00:00+08:00",
         "2026-09-26T17:00:00+08:00"},
        {"business over the weekend",
         {PL_SLA_CLOCK_BUSINESS, 2 * H, 0},
         "2026-09-25T17:00:00+08:00",
         "2026-09-28T10:00:00+08:00"},
        {"working days over the holiday",
         {PL_SLA_CLOCK_WORKING_DAYS, 0, 2},
         "2026-09-29T11:00:00+08:00",
         "2026-10-02T11:00:00+08:00"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        int64_t due = 0;
        char a[PL_RFC3339_MAX];
        int rc = pl_sla_due(&cases[i].t, cal, at(cases[i].start), &due);
        CHECK(rc == 0 && due == at(cases[i].want), "%s: rc %d got %s\n", cases[i].label, rc,
              pl_time_format(due, a));
    }
    int64_t due;
    pl_sla_target_t business = {PL_SLA_CLOCK_BUSINESS, H, 0};
    assert_int_equal(pl_sla_due(&business, NULL, 0, &due), PL_EINVAL);
    pl_sla_target_t huge = {PL_SLA_CLOCK_24X7, INT64_MAX, 0};
    assert_int_equal(pl_sla_due(&huge, NULL, 1, &due), PL_ETOOLARGE);
    pl_calendar_destroy(&cal);
    pl_errlist_reset(&errs);
    assert_int_equal(failures, 0);
}

/* ---- load errors ---- */

static const char BASE[] =
    "{\"warn_at\": 0.8,"
    " \"priorities\": {"
    "  \"P1\": {\"first_response\": {\"within\": \"1h\"},"
    "          \"resolution\": {\"simple\": {\"within\": \"48h\"}, \"complex\": {\"within\": "
    "\"7d\"}}},"
    "  \"P2\": {\"first_response\": {\"within\": \"24h\", \"clock\": \"business\"},"
    "          \"resolution\": {\"simple\": {\"within\": \"48h\"}, \"complex\": {\"within\": "
    "\"7d\"}}},"
    "  \"P3\": {\"first_response\": {\"working_days\": 3},"
    "          \"resolution\": {\"simple\": {\"within\": \"48h\"}, \"complex\": {\"within\": "
    "\"7d\"}}}},"
    " \"escalation\": {\"ladder\": [{\"to\": \"supervisor\", \"after\": \"0s\"}]}}";

/* Replaces (or with value NULL removes) the member at a dotted path. */
static void patch(cJSON *root, const char *path, const char *value)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    cJSON *obj = root;
    char *key = buf, *dot;
    while ((dot = strchr(key, '.'))) {
        *dot = '\0';
        obj = cJSON_GetObjectItemCaseSensitive(obj, key);
        assert_non_null(obj);
        key = dot + 1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    if (value) {
        cJSON *v = cJSON_Parse(value);
        assert_non_null(v);
        cJSON_AddItemToObject(obj, key, v);
    }
}

static void test_base_loads(void **state)
{
    cJSON *root = cJSON_Parse(BASE);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_sla_t *sla = pl_sla_from_json(root, "sla.json", &errs);
    assert_non_null(sla);
    assert_int_equal(errs.count, 0);
    /* Defaults: clock 24x7, default priority P2, pauses none, warn_to assignee. */
    assert_int_equal(pl_sla_first_response(sla, PL_SLA_P1)->clock, PL_SLA_CLOCK_24X7);
    assert_int_equal(pl_sla_first_response(sla, PL_SLA_P2)->clock, PL_SLA_CLOCK_BUSINESS);
    assert_int_equal(pl_sla_priority_or_default(sla, NULL), PL_SLA_P2);
    assert_false(pl_sla_pauses(sla, PL_SLA_RESOLUTION, "waiting_customer"));
    const pl_sla_step_t *steps;
    assert_int_equal(pl_sla_ladder(sla, PL_SLA_P3, &steps), 1);
    pl_sla_destroy(&sla);
    cJSON_Delete(root);
}

static void test_load_errors(void **state)
{
    static const struct {
        const char *label, *path, *value, *want_path, *want_text;
    } cases[] = {
        {"unknown top field", "warn", "0.5", "warn", "unknown field \"warn\""},
        {"missing priorities", "priorities", NULL, "priorities", "must be an object"},
        {"missing P2", "priorities.P2", NULL, "priorities.P2", "got nothing"},
        {"bad duration", "priorities.P1.first_response.within", "\"1x\"",
         "priorities.P1.first_response.within", "invalid duration \"1x\""},
        {"zero duration", "priorities.P1.first_response.within", "\"0s\"",
         "priorities.P1.first_response.within", "out of range"},
        {"number duration", "priorities.P1.first_response.within", "3600",
         "priorities.P1.first_response.within", "must be a duration string"},
        {"bad clock", "priorities.P1.first_response.clock", "\"weekly\"",
         "priorities.P1.first_response.clock", "invalid clock \"weekly\""},
        {"zero working days", "priorities.P3.first_response.working_days", "0",
         "priorities.P3.first_response.working_days", "whole number"},
        {"fractional working days", "priorities.P3.first_response.working_days", "2.5",
         "priorities.P3.first_response.working_days", "whole number"},
        {"both within and working days", "priorities.P3.first_response.within", "\"1h\"",
         "priorities.P3.first_response", "not both"},
        {"missing complex", "priorities.P1.resolution.complex", NULL,
         "priorities.P1.resolution.complex", "must be a target object"},
        {"unknown target field", "priorities.P1.resolution.simple.clok", "\"24x7\"",
         "priorities.P1.resolution.simple.clok", "unknown field"},
        {"warn_at too high", "warn_at", "1.5", "warn_at", "below 1"},
        {"priority warn_at", "priorities.P1.warn_at", "0", "priorities.P1.warn_at", "above 0"},
        {"default priority", "default_priority", "\"P9\"", "default_priority", "priority"},
        {"missing escalation", "escalation", NULL, "escalation", "must be an object"},
        {"empty ladder", "escalation.ladder", "[]", "escalation.ladder", "1 to 8 steps"},
        {"ladder goes down", "escalation.ladder",
         "[{\"to\": \"department_head\", \"after\": \"0s\"}, {\"to\": \"supervisor\", \"after\": "
         "\"1h\"}]",
         "escalation.ladder[1]", "does not rise"},
        {"ladder goes back in time", "escalation.ladder",
         "[{\"to\": \"supervisor\", \"after\": \"2h\"}, {\"to\": \"management\", \"after\": "
         "\"1h\"}]",
         "escalation.ladder[1]", "earlier"},
        {"unknown role", "escalation.ladder", "[{\"to\": \"boss\", \"after\": \"0s\"}]",
         "escalation.ladder[0].to", "must name a role, got \"boss\""},
        {"ladder step without after", "escalation.ladder", "[{\"to\": \"supervisor\"}]",
         "escalation.ladder[0].after", "duration"},
        {"priority ladder", "priorities.P1.escalation", "{}", "priorities.P1.escalation", "array"},
        {"warn_to", "escalation.warn_to", "\"nobody\"", "escalation.warn_to", "role"},
        {"complex priority", "complex_when", "{\"priorities\": [\"P4\"]}",
         "complex_when.priorities[0]", "unknown value \"P4\""},
        {"complex customer type", "complex_when", "{\"customer_types\": [\"gold\"]}",
         "complex_when.customer_types[0]", "unknown value \"gold\""},
        {"complex cross", "complex_when", "{\"cross_department\": \"yes\"}",
         "complex_when.cross_department", "boolean"},
        {"complex duplicate", "complex_when", "{\"signals\": [\"repeat\", \"repeat\"]}",
         "complex_when.signals[1]", "listed twice"},
        {"pause clock", "pause", "{\"states\": [\"waiting_customer\"], \"clocks\": [\"lunch\"]}",
         "pause.clocks[0]", "unknown value \"lunch\""},
        {"pause state", "pause", "{\"states\": [\"waiting customer\"]}", "pause.states[0]",
         "must be a name"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        cJSON *root = cJSON_Parse(BASE);
        patch(root, cases[i].path, cases[i].value);
        pl_errlist_t errs = PL_ERRLIST_INIT;
        pl_sla_t *sla = pl_sla_from_json(root, "sla.json", &errs);
        bool found = false;
        for (size_t k = 0; k < errs.count; k++) {
            const pl_err_t *e = &errs.items[k];
            char prefix[160];
            snprintf(prefix, sizeof prefix, "sla.json: %s: ", e->path);
            found |= strcmp(e->path, cases[i].want_path) == 0 &&
                     strncmp(e->message, prefix, strlen(prefix)) == 0 &&
                     strstr(e->message, cases[i].want_text) && e->hint[0] && e->code == PL_ECONFIG;
        }
        CHECK(!sla && found, "%s: got %p, %zu errors, first \"%s\" at %s\n", cases[i].label,
              (void *)sla, errs.count, errs.count ? errs.items[0].message : "",
              errs.count ? errs.items[0].path : "");
        pl_sla_destroy(&sla);
        pl_errlist_reset(&errs);
        cJSON_Delete(root);
    }
    assert_int_equal(failures, 0);
}

/* Every problem of a file is reported in one go. */
static void test_all_errors_at_once(void **state)
{
    cJSON *root = cJSON_Parse(BASE);
    patch(root, "warn_at", "2");
    patch(root, "priorities.P1.first_response.within", "\"soon\"");
    patch(root, "priorities.P3.first_response.working_days", "-1");
    patch(root, "escalation.ladder", "[{\"to\": \"boss\", \"after\": \"0s\"}]");
    pl_errlist_t errs = PL_ERRLIST_INIT;
    assert_null(pl_sla_from_json(root, "sla.json", &errs));
    assert_int_equal(errs.count, 4);
    pl_errlist_reset(&errs);
    cJSON_Delete(root);

    assert_null(pl_sla_from_json(NULL, NULL, &errs));
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.items[0].message, "sla.json: (top): must be an object"));
    pl_errlist_reset(&errs);

    assert_null(pl_sla_load("/nonexistent-config-dir", &errs));
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.items[0].message, "sla.json"));
    pl_errlist_reset(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_defaults),
        cmocka_unit_test(test_complex),
        cmocka_unit_test(test_due),
        cmocka_unit_test(test_base_loads),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_all_errors_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
