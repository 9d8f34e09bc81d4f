/*
 * test_route_plan: the shipped deploy/config loads; department choice per
 * rule, cross-department cases, triage and the fallback; the least-loaded
 * assignee (ties, capacity, language fallback, off-duty agents, the queue
 * owner); due times per priority; and load errors with their paths.
 *
 * Custom configs are written to a fresh temporary folder per case, next to
 * a copy of the shipped categories.json and sla.json.
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
#include "pl_time.h"
#include "route_plan.h"

#include "test_util.h"

#define H (3600 * 1000LL)
#define D (24 * H)

static const char *config_dir(void)
{
    static char buf[1024];
    const char *marker = strstr(__FILE__, "/tests/unit/test_route_plan.c");
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

static char *slurp(const char *dir, const char *file)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
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

/* Loads routing (and sla, when not NULL; else the shipped one) from a
 * fresh temporary folder with the shipped categories.json. */
static route_plan_t *load_text(const char *routing, const char *sla, pl_errlist_t *errs)
{
    char dir[] = "/tmp/test_route_plan.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *cats = slurp(config_dir(), "categories.json");
    char *shipped_sla = slurp(config_dir(), "sla.json");
    spill(dir, "categories.json", cats);
    spill(dir, "sla.json", sla ? sla : shipped_sla);
    spill(dir, "routing.json", routing);
    route_plan_t *p = route_plan_load(dir, errs);
    const char *files[] = {"categories.json", "sla.json", "routing.json"};
    for (size_t i = 0; i < NELEMS(files); i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    free(cats);
    free(shipped_sla);
    return p;
}

static route_plan_t *must_load(const char *dir_or_null, const char *routing)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    route_plan_t *p =
        dir_or_null ? route_plan_load(dir_or_null, &errs) : load_text(routing, NULL, &errs);
    for (size_t i = 0; i < errs.count; i++)
        print_error("%s\nhint: %s\n", errs.items[i].message, errs.items[i].hint);
    assert_non_null(p);
    assert_int_equal(errs.count, 0);
    pl_errlist_reset(&errs);
    return p;
}

/* ---- a small custom plan ---- */

static const char CUSTOM[] =
    "{\"calendars\": {"
    "   \"always\": {\"zone\": \"UTC\", \"hours\": \"24x7\"},"
    "   \"day\": {\"zone\": \"UTC\", \"hours\": {\"mon-sun\": [\"08:00-20:00\"]}},"
    "   \"night\": {\"zone\": \"UTC\", \"hours\": {\"mon-sun\": [\"00:00-08:00\", "
    "\"20:00-24:00\"]}},"
    "   \"office\": {\"zone\": \"Europe/Berlin\", \"hours\": {\"mon-fri\": [\"09:00-17:00\"]},"
    "                \"holidays\": [\"2026-12-25\"]}},"
    " \"management\": {\"owner\": \"mgr.top\"},"
    " \"departments\": {"
    "   \"desk\": {\"calendar\": \"always\", \"categories\": [\"other\", \"service_attitude\"],"
    "     \"head\": \"head.desk\", \"supervisor\": \"sup.desk\", \"queue_owner\": \"queue.desk\","
    "     \"agents\": ["
    "       {\"id\": \"a.zh\", \"languages\": [\"zh\"], \"capacity\": 10, \"calendar\": \"day\"},"
    "       {\"id\": \"a.en\", \"languages\": [\"en\"], \"capacity\": 10, \"calendar\": \"day\"},"
    "       {\"id\": \"a.both\", \"languages\": [\"zh\", \"en-GB\"], \"capacity\": 20,"
    "        \"calendar\": \"day\"},"
    "       {\"id\": \"a.night\", \"languages\": [\"en\"], \"capacity\": 5, \"calendar\": "
    "\"night\"}]},"
    "   \"lab\": {\"calendar\": \"office\", \"categories\": [\"product_quality\"],"
    "     \"head\": \"head.lab\", \"supervisor\": \"sup.lab\", \"queue_owner\": \"queue.lab\","
    "     \"agents\": [{\"id\": \"l.one\", \"languages\": [\"en\"], \"capacity\": 3}]}},"
    " \"rules\": ["
    "   {\"name\": \"early-involve\", \"when\": {\"channel\": [\"social\"]}, \"also\": [\"lab\"]},"
    "   {\"name\": \"triage\", \"when\": {\"triage\": true}, \"department\": \"desk\","
    "    \"assignee\": \"triage.owner\"},"
    "   {\"name\": \"vip-p1\", \"when\": {\"customer_type\": [\"vip\"], \"priority\": [\"P1\"]},"
    "    \"department\": \"desk\", \"also\": [\"lab\"]},"
    "   {\"name\": \"to-target\", \"when\": {\"target\": {\"department\": [\"lab\"]}},"
    "    \"department\": \"$target\"},"
    "   {\"name\": \"english-quality\", \"when\": {\"category\": [\"product_quality\"],"
    "    \"lang\": [\"en\"], \"target\": {\"product\": true, \"store\": false}},"
    "    \"department\": \"lab\", \"also\": [\"desk\"]},"
    "   {\"name\": \"by-category\", \"department\": \"$category\"},"
    "   {\"name\": \"safety\", \"when\": {\"signals\": [\"safety\"]}, \"also\": [\"lab\"]}],"
    " \"fallback\": {\"department\": \"desk\", \"assignee\": \"fallback.owner\","
    "   \"categories\": [\"logistics_delivery\", \"after_sales\", \"billing_price\","
    "                    \"fraud_security_privacy\"]}}";

typedef struct decide_case {
    const char *label;
    route_case_t c;
    const char *want_rule;
    const char *want_depts;    /* space-separated, responsible first */
    const char *want_assignee; /* NULL: chosen by load */
    bool want_complex;
} decide_case_t;

static void run_decide(const route_plan_t *p, const decide_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        route_decision_t d;
        assert_int_equal(route_plan_decide(p, &cases[i].c, &d), 0);
        char got[256] = "";
        for (size_t k = 0; k < d.ndepartments; k++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", k ? " " : "",
                     d.departments[k]);
        bool assignee_ok = cases[i].want_assignee
                               ? d.assignee && strcmp(d.assignee, cases[i].want_assignee) == 0
                               : d.assignee == NULL;
        CHECK(strcmp(d.rule, cases[i].want_rule) == 0 && strcmp(got, cases[i].want_depts) == 0 &&
                  d.department == d.departments[0] && assignee_ok &&
                  d.complex == cases[i].want_complex,
              "%s: got rule %s [%s] assignee %s complex %d; want %s [%s] %s %d\n", cases[i].label,
              d.rule, got, d.assignee ? d.assignee : "-", d.complex, cases[i].want_rule,
              cases[i].want_depts, cases[i].want_assignee ? cases[i].want_assignee : "-",
              cases[i].want_complex);
    }
}

static const char *const SAFETY[] = {"safety:smoke"};
static const char *const LEGAL[] = {"legal_threat:lawyer", "repeat"};
static const char *const REGULATOR[] = {"regulator"};

static void test_shipped_decisions(void **state)
{
    static const decide_case_t cases[] = {
        {"quality by category",
         {.category = "product_quality", .priority = "P2"},
         "by-category",
         "quality",
         NULL,
         false},
        {"billing", {.category = "billing_price"}, "by-category", "finance", NULL, false},
        {"logistics", {.category = "logistics_delivery"}, "by-category", "logistics", NULL, false},
        {"after-sales", {.category = "after_sales"}, "by-category", "after_sales", NULL, false},
        {"fraud: legal and finance",
         {.category = "fraud_security_privacy"},
         "fraud-security-privacy",
         "legal finance",
         NULL,
         true},
        {"rude store staff",
         {.category = "service_attitude", .target_store = "store-0042"},
         "store-service-attitude",
         "store_ops customer_service",
         NULL,
         true},
        {"rude staff, complained in store",
         {.category = "service_attitude", .channel = "store"},
         "in-store-service-attitude",
         "store_ops",
         NULL,
         false},
        {"rude staff on the phone",
         {.category = "service_attitude", .channel = "phone"},
         "by-category",
         "customer_service",
         NULL,
         false},
        {"legal threat involves legal",
         {.category = "logistics_delivery", .signals = LEGAL, .nsignals = 2},
         "by-category",
         "logistics legal",
         NULL,
         true},
        {"regulator signal",
         {.category = "billing_price", .signals = REGULATOR, .nsignals = 1},
         "by-category",
         "finance legal",
         NULL,
         true},
        {"safety on quality: no duplicate",
         {.category = "product_quality", .signals = SAFETY, .nsignals = 1},
         "by-category",
         "quality",
         NULL,
         false},
        {"safety elsewhere involves quality",
         {.category = "after_sales", .signals = SAFETY, .nsignals = 1},
         "by-category",
         "after_sales quality",
         NULL,
         true},
        {"named department",
         {.category = "after_sales", .target_department = "finance"},
         "by-category",
         "after_sales finance",
         NULL,
         true},
        {"unknown named department",
         {.category = "after_sales", .target_department = "marketing"},
         "by-category",
         "after_sales",
         NULL,
         false},
        {"store target on a quality case",
         {.category = "product_quality", .target_store = "store-7"},
         "by-category",
         "quality store_ops",
         NULL,
         true},
        {"triage",
         {.category = "product_quality", .triage = true},
         "triage",
         "customer_service",
         "lead.cs.sun",
         false},
        {"triage with a legal threat",
         {.triage = true, .signals = LEGAL, .nsignals = 2},
         "triage",
         "customer_service legal",
         "lead.cs.sun",
         true},
        {"no category: fallback",
         {.priority = "P2"},
         "fallback",
         "customer_service",
         "sup.cs.qian",
         false},
        {"unknown category: fallback",
         {.category = "weather"},
         "fallback",
         "customer_service",
         "sup.cs.qian",
         false},
        {"other", {.category = "other"}, "by-category", "customer_service", NULL, false},
        {"enterprise is complex",
         {.category = "other", .customer_type = "enterprise"},
         "by-category",
         "customer_service",
         NULL,
         true},
    };
    route_plan_t *p = must_load(config_dir(), NULL);
    failures = 0;
    run_decide(p, cases, NELEMS(cases));
    assert_string_equal(route_plan_fallback_department(p), "customer_service");
    assert_string_equal(route_plan_fallback_assignee(p), "sup.cs.qian");
    const char *const *ids;
    assert_int_equal(route_plan_departments(p, &ids), 7);
    assert_string_equal(ids[0], "customer_service");
    assert_string_equal(route_plan_escalation_to(p, "quality", PL_SLA_SUPERVISOR), "sup.qa.wu");
    assert_string_equal(route_plan_escalation_to(p, "quality", PL_SLA_DEPARTMENT_HEAD),
                        "head.qa.zhou");
    assert_string_equal(route_plan_escalation_to(p, "quality", PL_SLA_MANAGEMENT),
                        "mgr.ops.director");
    assert_null(route_plan_escalation_to(p, "quality", PL_SLA_ASSIGNEE));
    assert_null(route_plan_escalation_to(p, "nowhere", PL_SLA_SUPERVISOR));
    assert_non_null(route_plan_sla(p));
    assert_int_equal(route_plan_decide(p, NULL, NULL), PL_EINVAL);
    route_plan_destroy(&p);
    assert_null(p);
    route_plan_destroy(NULL);
    assert_int_equal(failures, 0);
}

static void test_custom_decisions(void **state)
{
    static const decide_case_t cases[] = {
        {"vip P1",
         {.category = "other", .customer_type = "vip", .priority = "P1"},
         "vip-p1",
         "desk lab",
         NULL,
         true},
        {"vip P2",
         {.category = "other", .customer_type = "vip", .priority = "P2"},
         "by-category",
         "desk",
         NULL,
         false},
        {"target department",
         {.category = "other", .target_department = "lab"},
         "to-target",
         "lab",
         NULL,
         false},
        {"english quality with a product",
         {.category = "product_quality", .lang = "en-US", .target_product = "X1"},
         "english-quality",
         "lab desk",
         NULL,
         true},
        {"... but not with a store",
         {.category = "product_quality",
          .lang = "en",
          .target_product = "X1",
          .target_store = "S1"},
         "by-category",
         "lab",
         NULL,
         false},
        {"... nor in chinese",
         {.category = "product_quality", .lang = "zh", .target_product = "X"},
         "by-category",
         "lab",
         NULL,
         false},
        {"involve rule after the decider",
         {.category = "other", .signals = SAFETY, .nsignals = 1},
         "by-category",
         "desk lab",
         NULL,
         true},
        {"involve rule before the decider",
         {.category = "other", .channel = "social"},
         "by-category",
         "desk lab",
         NULL,
         true},
        {"triage owner",
         {.category = "other", .triage = true},
         "triage",
         "desk",
         "triage.owner",
         false},
        {"fallback category",
         {.category = "logistics_delivery"},
         "fallback",
         "desk",
         "fallback.owner",
         false},
        {"fallback still involves",
         {.category = "billing_price", .channel = "social"},
         "fallback",
         "desk lab",
         "fallback.owner",
         true},
    };
    route_plan_t *p = must_load(NULL, CUSTOM);
    failures = 0;
    run_decide(p, cases, NELEMS(cases));
    route_plan_destroy(&p);
    assert_int_equal(failures, 0);
}

static void test_assignee(void **state)
{
    static const struct {
        const char *label, *dept, *lang, *now;
        route_load_t loads[4];
        const char *want;
    } cases[] = {
        {"all idle: first zh speaker", "desk", "zh", "2026-09-28T10:00:00Z", {{0}}, "a.zh"},
        {"all idle: first en speaker", "desk", "en", "2026-09-28T10:00:00Z", {{0}}, "a.en"},
        {"lower ratio wins",
         "desk",
         "zh",
         "2026-09-28T10:00:00Z",
         {{"a.zh", 5}, {"a.both", 6}},
         "a.both"},
        {"equal ratios: config order",
         "desk",
         "zh",
         "2026-09-28T10:00:00Z",
         {{"a.zh", 5}, {"a.both", 10}},
         "a.zh"},
        {"zh speakers full: any language",
         "desk",
         "zh",
         "2026-09-28T10:00:00Z",
         {{"a.zh", 10}, {"a.both", 20}, {"a.en", 9}},
         "a.en"},
        {"over capacity counts as full",
         "desk",
         "zh",
         "2026-09-28T10:00:00Z",
         {{"a.zh", 12}, {"a.both", 3}},
         "a.both"},
        {"region subtag", "desk", "zh-CN", "2026-09-28T10:00:00Z", {{0}}, "a.zh"},
        {"case and underscore", "desk", "EN_us", "2026-09-28T10:00:00Z", {{"a.en", 1}}, "a.both"},
        {"nobody speaks it: least loaded",
         "desk",
         "fr",
         "2026-09-28T10:00:00Z",
         {{"a.zh", 1}, {"a.en", 2}, {"a.both", 1}},
         "a.both"},
        {"no language", "desk", NULL, "2026-09-28T10:00:00Z", {{"a.zh", 3}}, "a.en"},
        {"empty language", "desk", "", "2026-09-28T10:00:00Z", {{0}}, "a.zh"},
        {"night: only the night shift", "desk", "zh", "2026-09-28T22:00:00Z", {{0}}, "a.night"},
        {"shift edge: day starts at 08:00", "desk", "zh", "2026-09-28T08:00:00Z", {{0}}, "a.zh"},
        {"night shift full: queue owner",
         "desk",
         "en",
         "2026-09-28T22:00:00Z",
         {{"a.night", 5}},
         "queue.desk"},
        {"negative load is zero",
         "desk",
         "zh",
         "2026-09-28T10:00:00Z",
         {{"a.zh", 1}, {"a.both", -7}},
         "a.both"},
        {"lab on a weekday", "lab", "zh", "2026-09-28T10:00:00Z", {{0}}, "l.one"},
        {"lab on christmas: queue owner", "lab", "en", "2026-12-25T10:00:00Z", {{0}}, "queue.lab"},
        {"lab at the weekend: queue owner",
         "lab",
         "en",
         "2026-09-27T10:00:00Z",
         {{0}},
         "queue.lab"},
        {"unknown department: fallback owner",
         "nowhere",
         "en",
         "2026-09-28T10:00:00Z",
         {{0}},
         "fallback.owner"},
    };
    route_plan_t *p = must_load(NULL, CUSTOM);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        size_t n = 0;
        while (n < 4 && cases[i].loads[n].agent)
            n++;
        const char *got = route_plan_assignee(p, cases[i].dept, cases[i].lang, at(cases[i].now),
                                              cases[i].loads, n);
        CHECK(got && strcmp(got, cases[i].want) == 0, "%s: got %s, want %s\n", cases[i].label,
              got ? got : "NULL", cases[i].want);
    }
    const char *const *ids;
    assert_int_equal(route_plan_agents(p, "desk", &ids), 4);
    assert_string_equal(ids[0], "a.zh");
    assert_string_equal(ids[3], "a.night");
    assert_int_equal(route_plan_agents(p, "nowhere", &ids), 0);
    assert_null(ids);
    route_plan_destroy(&p);
    assert_int_equal(failures, 0);
}

static void test_due(void **state)
{
    static const struct {
        const char *label;
        route_case_t c;
        const char *priority, *received, *want_first, *want_resolution;
    } cases[] = {
        {"P1 simple on a saturday",
         {.category = "product_quality"},
         "P1",
         "2026-09-26T10:00:00+08:00",
         "2026-09-26T11:00:00+08:00",
         "2026-09-28T10:00:00+08:00"},
        {"P1 complex",
         {.category = "fraud_security_privacy"},
         "P1",
         "2026-09-26T10:00:00+08:00",
         "2026-09-26T11:00:00+08:00",
         "2026-10-03T10:00:00+08:00"},
        {"P2 simple",
         {.category = "logistics_delivery"},
         "P2",
         "2026-09-25T20:00:00+08:00",
         "2026-09-26T20:00:00+08:00",
         "2026-09-27T20:00:00+08:00"},
        {"P2 complex (cross-department)",
         {.category = "logistics_delivery", .signals = LEGAL, .nsignals = 2},
         "P2",
         "2026-09-25T20:00:00+08:00",
         "2026-09-26T20:00:00+08:00",
         "2026-10-02T20:00:00+08:00"},
        {"P3: 3 working days over national day",
         {.category = "product_quality"},
         "P3",
         "2026-09-25T20:00:00+08:00",
         "2026-10-08T09:00:00+08:00",
         "2026-09-27T20:00:00+08:00"},
        {"P3 over the spring festival and a make-up day",
         {.category = "billing_price"},
         "P3",
         "2026-02-13T17:00:00+08:00",
         "2026-02-25T17:00:00+08:00",
         "2026-02-15T17:00:00+08:00"},
        {"P3 on the 24x7 calendar",
         {.category = "other"},
         "P3",
         "2026-09-25T20:00:00+08:00",
         "2026-09-28T20:00:00+08:00",
         "2026-09-27T20:00:00+08:00"},
        {"no priority: P2",
         {.category = "other"},
         NULL,
         "2026-09-25T20:00:00+08:00",
         "2026-09-26T20:00:00+08:00",
         "2026-09-27T20:00:00+08:00"},
        {"unknown priority: P2",
         {.category = "other"},
         "urgent",
         "2026-09-25T20:00:00+08:00",
         "2026-09-26T20:00:00+08:00",
         "2026-09-27T20:00:00+08:00"},
    };
    route_plan_t *p = must_load(config_dir(), NULL);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        route_decision_t d;
        assert_int_equal(route_plan_decide(p, &cases[i].c, &d), 0);
        int64_t first = 0, resolution = 0;
        int rc =
            route_plan_due(p, &d, cases[i].priority, at(cases[i].received), &first, &resolution);
        char a[PL_RFC3339_MAX], b[PL_RFC3339_MAX];
        CHECK(rc == 0 && first == at(cases[i].want_first) &&
                  resolution == at(cases[i].want_resolution),
              "%s: rc %d, got %s / %s\n", cases[i].label, rc, pl_time_format(first, a),
              pl_time_format(resolution, b));
    }
    route_decision_t bad = {.department = "nowhere"};
    int64_t x, y;
    assert_int_equal(route_plan_due(p, &bad, "P1", 0, &x, &y), PL_EINVAL);
    assert_int_equal(route_plan_due(p, NULL, "P1", 0, &x, &y), PL_EINVAL);
    assert_non_null(route_plan_calendar(p, "quality"));
    assert_null(route_plan_calendar(p, "nowhere"));
    route_plan_destroy(&p);
    assert_int_equal(failures, 0);
}

/* ---- load errors ---- */

/* Replaces (value NULL: removes) the member at a dotted path of objects. */
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

static void test_load_errors(void **state)
{
    static const struct {
        const char *label, *path, *value, *want_file, *want_path, *want_text;
    } cases[] = {
        {"unknown top field", "rule", "[]", "routing.json", "rule", "unknown field \"rule\""},
        {"no fallback", "fallback", NULL, "routing.json", "fallback", "must be an object"},
        {"fallback department", "fallback.department", "\"nowhere\"", "routing.json",
         "fallback.department", "must name a department, got \"nowhere\""},
        {"fallback owner", "fallback.assignee", NULL, "routing.json", "fallback.assignee",
         "person id"},
        {"fallback category owned", "fallback.categories", "[\"other\", \"after_sales\"]",
         "routing.json", "fallback.categories", "\"other\" is owned by \"desk\""},
        {"management", "management", "{}", "routing.json", "management.owner", "person id"},
        {"no calendars", "calendars", "{}", "routing.json", "calendars", "non-empty object"},
        {"calendar error", "calendars.office.hours", "{\"mon-fri\": [\"9-17\"]}", "routing.json",
         "calendars.office.hours.mon-fri[0]", "invalid interval \"9-17\""},
        {"calendar zone", "calendars.office.zone", "\"Mars/Olympus\"", "routing.json",
         "calendars.office.zone", "unknown time zone"},
        {"no departments", "departments", "{}", "routing.json", "departments", "1 to 64"},
        {"department calendar", "departments.lab.calendar", "\"weekly\"", "routing.json",
         "departments.lab.calendar", "unknown calendar \"weekly\""},
        {"department head", "departments.lab.head", NULL, "routing.json", "departments.lab.head",
         "must be a person id, got nothing"},
        {"department person id", "departments.lab.supervisor", "\"Dr Who\"", "routing.json",
         "departments.lab.supervisor", "malformed"},
        {"department field", "departments.lab.boss", "\"x\"", "routing.json",
         "departments.lab.boss", "unknown field"},
        {"agent capacity", "departments.lab.agents",
         "[{\"id\": \"l.one\", \"languages\": [\"en\"], \"capacity\": 0}]", "routing.json",
         "departments.lab.agents[0].capacity", "whole number from 1"},
        {"agent languages", "departments.lab.agents",
         "[{\"id\": \"l.one\", \"languages\": [], \"capacity\": 3}]", "routing.json",
         "departments.lab.agents[0].languages", "at least one language"},
        {"agent twice", "departments.lab.agents",
         "[{\"id\": \"l.one\", \"languages\": [\"en\"], \"capacity\": 3},"
         " {\"id\": \"l.one\", \"languages\": [\"en\"], \"capacity\": 3}]",
         "routing.json", "departments.lab.agents[1].id", "listed twice"},
        {"agent shift", "departments.lab.agents",
         "[{\"id\": \"l.one\", \"languages\": [\"en\"], \"capacity\": 3, \"calendar\": \"x\"}]",
         "routing.json", "departments.lab.agents[0].calendar", "unknown calendar \"x\""},
        {"category owned twice", "departments.lab.categories", "[\"product_quality\", \"other\"]",
         "routing.json", "departments.lab", "\"other\" is already owned by \"desk\""},
        {"unknown category", "departments.lab.categories", "[\"product_quality\", \"weather\"]",
         "routing.json", "departments.lab.categories[1]", "unknown category \"weather\""},
        {"category without owner", "fallback.categories", "[\"after_sales\"]", "routing.json",
         "departments", "category \"logistics_delivery\" of categories.json has no department"},
        {"rule department", "rules", "[{\"name\": \"r\", \"department\": \"nowhere\"}]",
         "routing.json", "rules[0].department", "unknown department \"nowhere\""},
        {"rule without result", "rules", "[{\"name\": \"r\", \"when\": {}}]", "routing.json",
         "rules[0]", "neither"},
        {"rule name twice", "rules",
         "[{\"name\": \"r\", \"department\": \"lab\"}, {\"name\": \"r\", \"department\": "
         "\"desk\"}]",
         "routing.json", "rules[1].name", "defined twice"},
        {"rule condition typo", "rules",
         "[{\"name\": \"r\", \"when\": {\"categry\": []}, \"department\": \"lab\"}]",
         "routing.json", "rules[0].when.categry", "unknown field"},
        {"rule channel", "rules",
         "[{\"name\": \"r\", \"when\": {\"channel\": [\"fax\"]}, \"department\": \"lab\"}]",
         "routing.json", "rules[0].when.channel[0]", "unknown value \"fax\""},
        {"rule category", "rules",
         "[{\"name\": \"r\", \"when\": {\"category\": [\"weather\"]}, \"department\": \"lab\"}]",
         "routing.json", "rules[0].when.category[0]", "unknown category"},
        {"rule target", "rules",
         "[{\"name\": \"r\", \"when\": {\"target\": {\"store\": \"S1\"}}, \"department\": "
         "\"lab\"}]",
         "routing.json", "rules[0].when.target.store", "boolean or a non-empty array"},
        {"rule triage", "rules",
         "[{\"name\": \"r\", \"when\": {\"triage\": 1}, \"department\": \"lab\"}]", "routing.json",
         "rules[0].when.triage", "boolean"},
        {"rule assignee without department", "rules",
         "[{\"name\": \"r\", \"also\": [\"lab\"], \"assignee\": \"x.y\"}]", "routing.json",
         "rules[0].assignee", "without \"department\""},
        {"rule also", "rules", "[{\"name\": \"r\", \"also\": [\"$cat\"]}]", "routing.json",
         "rules[0].also[0]", "unknown department \"$cat\""},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        cJSON *root = cJSON_Parse(CUSTOM);
        assert_non_null(root);
        patch(root, cases[i].path, cases[i].value);
        char *text = cJSON_Print(root);
        pl_errlist_t errs = PL_ERRLIST_INIT;
        route_plan_t *p = load_text(text, NULL, &errs);
        bool found = false;
        for (size_t k = 0; k < errs.count; k++) {
            const pl_err_t *e = &errs.items[k];
            char prefix[200];
            snprintf(prefix, sizeof prefix, "%s: %s: ", cases[i].want_file, e->path);
            found |= strcmp(e->path, cases[i].want_path) == 0 &&
                     strncmp(e->message, prefix, strlen(prefix)) == 0 &&
                     strstr(e->message, cases[i].want_text) && e->hint[0] && e->code == PL_ECONFIG;
        }
        CHECK(!p && found, "%s: got %p, %zu errors, first \"%s\" at %s\n", cases[i].label,
              (void *)p, errs.count, errs.count ? errs.items[0].message : "",
              errs.count ? errs.items[0].path : "");
        route_plan_destroy(&p);
        pl_errlist_reset(&errs);
        free(text);
        cJSON_Delete(root);
    }
    assert_int_equal(failures, 0);
}

static void test_load_errors_other_files(void **state)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    /* sla.json problems come through, named by their file. */
    route_plan_t *p = load_text(CUSTOM, "{\"priorities\": {}, \"escalation\": {}}", &errs);
    assert_null(p);
    assert_true(errs.count >= 4);
    for (size_t k = 0; k < errs.count; k++)
        assert_non_null(strstr(errs.items[k].message, "sla.json: "));
    pl_errlist_reset(&errs);

    /* complex_when names a category that categories.json lacks. */
    char *sla = slurp(config_dir(), "sla.json");
    cJSON *root = cJSON_Parse(sla);
    patch(root, "complex_when.categories", "[\"weather\"]");
    char *text = cJSON_Print(root);
    assert_null(load_text(CUSTOM, text, &errs));
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.items[0].path, "complex_when.categories");
    assert_non_null(strstr(errs.items[0].message, "sla.json: complex_when.categories: unknown "
                                                  "category \"weather\""));
    pl_errlist_reset(&errs);
    free(text);
    cJSON_Delete(root);
    free(sla);

    /* Duplicate keys, which cJSON would keep silently. */
    char *dup = strdup(CUSTOM);
    char *desk = strstr(dup, "\"lab\": {\"calendar\"");
    assert_non_null(desk);
    memcpy(desk, "\"desk\":", 7); /* '"lab": ' becomes '"desk":' */
    assert_null(load_text(dup, NULL, &errs));
    bool found = false;
    for (size_t k = 0; k < errs.count; k++)
        found |= strcmp(errs.items[k].path, "departments.desk") == 0 &&
                 strstr(errs.items[k].message, "defined twice") != NULL;
    assert_true(found);
    pl_errlist_reset(&errs);
    free(dup);

    /* Not JSON, and missing files. */
    assert_null(load_text("{\"calendars\": ", NULL, &errs));
    assert_true(errs.count >= 1);
    assert_non_null(strstr(errs.items[errs.count - 1].message, "routing.json"));
    pl_errlist_reset(&errs);
    assert_null(route_plan_load("/nonexistent-config-dir", &errs));
    assert_int_equal(errs.count, 3); /* categories.json, sla.json, routing.json */
    pl_errlist_reset(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_decisions), cmocka_unit_test(test_custom_decisions),
        cmocka_unit_test(test_assignee),          cmocka_unit_test(test_due),
        cmocka_unit_test(test_load_errors),       cmocka_unit_test(test_load_errors_other_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
