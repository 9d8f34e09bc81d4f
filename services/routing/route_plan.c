/*
 * route_plan: routing decisions from routing.json, sla.json and
 * categories.json (see route_plan.h and README.md).
 *
 * Trusts nothing in the files: every field is checked, every reference
 * (calendar, department, category, person) resolved at load, and every
 * problem reported with its JSON path, so that the decisions later cannot
 * fail: a case always gets a department and an owner. Owns the calendars,
 * the SLA and copies of every string; decisions borrow from it.
 */
#include "route_plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_json.h"

#define RULES_MAX 256
#define DEPTS_MAX 64
#define AGENTS_MAX 1000
#define LIST_MAX 64
#define CAPACITY_MAX 10000
#define PERSON_HINT "Use a person id of letters, digits and . _ - @, e.g. \"agent.li.na\"."
#define REF_HINT                                                                                   \
    "Use a department id from \"departments\", \"$category\" (the category's "                     \
    "owner) or \"$target\" (the department named in the complaint's target)."

static const char *const CHANNELS[] = {"phone", "email",  "web", "app",   "chat", "social",
                                       "store", "letter", "api", "other", NULL};
static const char *const CUSTOMER_TYPES[] = {"individual", "enterprise", "vip", NULL};
static const char *const PRIORITIES[] = {"P1", "P2", "P3", NULL};
enum { T_PRODUCT, T_ORDER_ID, T_STORE, T_EMPLOYEE, T_DEPARTMENT, T_COUNT };
static const char *const TARGETS[] = {"product",  "order_id",   "store",
                                      "employee", "department", NULL};

typedef struct strlist {
    char **items;
    size_t n;
} strlist_t;

typedef struct named_cal {
    char *name;
    pl_calendar_t *cal;
} named_cal_t;

typedef struct agent {
    char *id;
    strlist_t langs;
    int64_t capacity;
    const pl_calendar_t *shift; /* NULL: the department's calendar */
} agent_t;

typedef struct dept {
    char *id;
    const pl_calendar_t *cal;
    char *head, *supervisor, *queue_owner;
    agent_t *agents;
    const char **agent_ids;
    size_t nagents;
    strlist_t categories;
} dept_t;

typedef enum { REF_DEPT, REF_CATEGORY, REF_TARGET } ref_kind_t;

typedef struct ref {
    ref_kind_t kind;
    size_t dept; /* REF_DEPT */
} ref_t;

typedef enum { T_ANY, T_PRESENT, T_ABSENT, T_ONE_OF } tmode_t;

typedef struct tcond {
    tmode_t mode;
    strlist_t values;
} tcond_t;

typedef struct rule {
    char *name;
    strlist_t categories, channels, customer_types, priorities, langs, signals;
    int triage; /* -1: either */
    tcond_t targets[T_COUNT];
    bool decides; /* has "department"; else only involves ("also") */
    ref_t department;
    ref_t also[ROUTE_MAX_DEPARTMENTS];
    size_t nalso;
    char *assignee;
} rule_t;

struct route_plan {
    pl_sla_t *sla;
    named_cal_t *cals;
    size_t ncals;
    dept_t *depts;
    const char **dept_ids;
    size_t ndepts;
    rule_t *rules;
    size_t nrules;
    size_t fallback_dept;
    char *fallback_assignee;
    strlist_t fallback_categories;
    char *management;
};

/* ---- errors and small helpers ---- */

typedef struct ctx {
    const char *file;
    pl_errlist_t *errs;
    size_t failed;
    strlist_t known_categories; /* from categories.json */
    bool have_categories;       /* categories.json was read */
} ctx_t;

static void fail(ctx_t *cx, const char *path, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(ctx_t *cx, const char *path, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pl_cfg_vproblem(cx->errs, cx->file, path, hint, fmt, ap);
    va_end(ap);
    cx->failed++;
}

static const char *type_of(const cJSON *v)
{
    return v ? pl_json_type_name(v) : "nothing (missing)";
}

static char *join(char *buf, size_t size, const char *parent, const char *name)
{
    return pl_json_path(buf, size, parent, name);
}

static char *join_index(char *buf, size_t size, const char *parent, int i)
{
    return pl_json_path_index(buf, size, parent, i);
}

static const cJSON *field(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

static int name_index(const char *name, const char *const *names)
{
    for (size_t i = 0; name && names[i]; i++)
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    return -1;
}

static void only_keys(ctx_t *cx, const cJSON *obj, const char *path, const char *const *keys)
{
    char known[300] = "";
    for (const char *const *k = keys; *k; k++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k == keys ? "" : ", ",
                 *k);
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (name_index(it->string, keys) >= 0)
            continue;
        char p[PL_ERR_PATH_MAX], hint[340];
        snprintf(hint, sizeof hint, "Known fields here: %s.", known);
        fail(cx, join(p, sizeof p, path, it->string), hint, "unknown field \"%s\"", it->string);
    }
}

/* Object members must be unique; cJSON keeps duplicates silently. */
static void unique_keys(ctx_t *cx, const cJSON *obj, const char *path)
{
    for (const cJSON *a = obj->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (strcmp(a->string, b->string) == 0) {
                char p[PL_ERR_PATH_MAX];
                fail(cx, join(p, sizeof p, path, b->string), "Remove or rename one of them.",
                     "\"%s\" is defined twice", b->string);
            }
}

static bool strlist_has(const strlist_t *l, const char *s)
{
    for (size_t i = 0; s && i < l->n; i++)
        if (strcmp(l->items[i], s) == 0)
            return true;
    return false;
}

static void strlist_add(strlist_t *l, const char *s)
{
    l->items = pl_realloc(l->items, (l->n + 1) * sizeof *l->items);
    l->items[l->n++] = pl_strdup(s);
}

static void strlist_free(strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        pl_free(l->items[i]);
    pl_free(l->items);
    l->items = NULL;
    l->n = 0;
}

static bool id_ok(const char *s, bool person)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return false;
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (person && (c == '.' || c == '-' || c == '@'));
        if (!ok)
            return false;
    }
    return true;
}

/* A required (or optional) person id at obj.key; NULL when absent or bad. */
static char *get_person(ctx_t *cx, const cJSON *obj, const char *key, const char *path,
                        bool required)
{
    char p[PL_ERR_PATH_MAX];
    const cJSON *v = field(obj, key);
    join(p, sizeof p, path, key);
    if (!v && !required)
        return NULL;
    if (!cJSON_IsString(v) || !id_ok(v->valuestring, true)) {
        fail(cx, p, PERSON_HINT, "must be a person id, got %s",
             cJSON_IsString(v) ? "a malformed string" : type_of(v));
        return NULL;
    }
    return pl_strdup(v->valuestring);
}

/* An array of distinct names at obj.key, each in allowed (when given) and,
 * for categories, in categories.json. */
static void get_names(ctx_t *cx, const cJSON *obj, const char *key, const char *path,
                      const char *const *allowed, bool categories, strlist_t *out)
{
    char p[PL_ERR_PATH_MAX], q[PL_ERR_PATH_MAX];
    const cJSON *arr = field(obj, key);
    if (!arr)
        return;
    join(p, sizeof p, path, key);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > LIST_MAX) {
        fail(cx, p, "Use an array of names, e.g. [\"a\", \"b\"].",
             "must be an array of at most %d names, got %s", LIST_MAX, type_of(arr));
        return;
    }
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        join_index(q, sizeof q, p, i);
        if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) > 64) {
            fail(cx, q, "Use a non-empty string of at most 64 bytes.", "must be a name, got %s",
                 type_of(it));
        } else if (allowed && name_index(it->valuestring, allowed) < 0) {
            char hint[200] = "Use one of:";
            for (const char *const *a = allowed; *a; a++)
                snprintf(hint + strlen(hint), sizeof hint - strlen(hint), " %s", *a);
            fail(cx, q, hint, "unknown value \"%.64s\"", it->valuestring);
        } else if (categories && cx->have_categories &&
                   !strlist_has(&cx->known_categories, it->valuestring)) {
            fail(cx, q, "Use a category id from categories.json.", "unknown category \"%.64s\"",
                 it->valuestring);
        } else if (strlist_has(out, it->valuestring)) {
            fail(cx, q, "List each value once.", "\"%.64s\" is listed twice", it->valuestring);
        } else {
            strlist_add(out, it->valuestring);
        }
    }
}

static int find_dept(const route_plan_t *p, const char *id)
{
    for (size_t i = 0; id && i < p->ndepts; i++)
        if (strcmp(p->depts[i].id, id) == 0)
            return (int)i;
    return -1;
}

/* The calendar named name; *known tells whether the name was defined at all
 * (a calendar that failed to load has been reported already). */
static const pl_calendar_t *find_cal(const route_plan_t *p, const char *name, bool *known)
{
    *known = false;
    for (size_t i = 0; name && i < p->ncals; i++)
        if (strcmp(p->cals[i].name, name) == 0) {
            *known = true;
            return p->cals[i].cal;
        }
    return NULL;
}

/* A calendar reference at obj.key; NULL when absent (and not required) or bad. */
static const pl_calendar_t *get_cal(ctx_t *cx, const route_plan_t *p, const cJSON *obj,
                                    const char *path, bool required)
{
    char q[PL_ERR_PATH_MAX];
    const cJSON *v = field(obj, "calendar");
    join(q, sizeof q, path, "calendar");
    if (!v && !required)
        return NULL;
    bool known = false;
    const pl_calendar_t *cal = cJSON_IsString(v) ? find_cal(p, v->valuestring, &known) : NULL;
    if (!cJSON_IsString(v))
        fail(cx, q, "Name a calendar defined under \"calendars\".", "must name a calendar, got %s",
             type_of(v));
    else if (!known)
        fail(cx, q, "Name a calendar defined under \"calendars\".", "unknown calendar \"%.64s\"",
             v->valuestring);
    return cal;
}

/* ---- calendars, people, departments ---- */

static void parse_calendars(ctx_t *cx, route_plan_t *p, const cJSON *obj)
{
    char q[PL_ERR_PATH_MAX];
    if (!cJSON_IsObject(obj) || !obj->child) {
        fail(cx, "calendars",
             "Define at least one, e.g. {\"24x7\": {\"zone\": \"Asia/Shanghai\", "
             "\"hours\": \"24x7\"}}.",
             "must be a non-empty object of calendars, got %s", type_of(obj));
        return;
    }
    unique_keys(cx, obj, "calendars");
    p->ncals = (size_t)cJSON_GetArraySize(obj);
    p->cals = pl_calloc(p->ncals, sizeof *p->cals);
    size_t i = 0;
    for (const cJSON *it = obj->child; it; it = it->next, i++) {
        join(q, sizeof q, "calendars", it->string);
        p->cals[i].name = pl_strdup(it->string);
        if (!id_ok(it->string, false))
            fail(cx, q, "Use letters, digits and \"_\", e.g. \"cn_office\".",
                 "invalid calendar name \"%.64s\"", it->string);
        size_t before = cx->errs->count + cx->errs->dropped;
        p->cals[i].cal = pl_calendar_new(it->string, it, cx->file, q, NULL, cx->errs);
        cx->failed += cx->errs->count + cx->errs->dropped - before;
    }
}

static void parse_agent(ctx_t *cx, route_plan_t *p, dept_t *d, const cJSON *obj, const char *path)
{
    static const char *const KEYS[] = {"id",       "name", "languages", "capacity",
                                       "calendar", "note", NULL};
    char q[PL_ERR_PATH_MAX];
    agent_t *a = &d->agents[d->nagents];
    if (!cJSON_IsObject(obj)) {
        fail(cx, path, "An agent is {\"id\", \"languages\", \"capacity\"}.",
             "must be an object, got %s", type_of(obj));
        return;
    }
    only_keys(cx, obj, path, KEYS);
    a->id = get_person(cx, obj, "id", path, true);
    for (size_t k = 0; a->id && k < d->nagents; k++)
        if (strcmp(d->agents[k].id, a->id) == 0)
            fail(cx, join(q, sizeof q, path, "id"), "Give each agent of a department once.",
                 "agent \"%s\" is listed twice", a->id);
    const cJSON *name = field(obj, "name");
    if (name && !cJSON_IsString(name))
        fail(cx, join(q, sizeof q, path, "name"), "Use a display name string.",
             "must be a string, got %s", type_of(name));
    get_names(cx, obj, "languages", path, NULL, false, &a->langs);
    if (a->langs.n == 0)
        fail(cx, join(q, sizeof q, path, "languages"), "List the languages, e.g. [\"zh\", \"en\"].",
             "an agent needs at least one language");
    const cJSON *cap = field(obj, "capacity");
    join(q, sizeof q, path, "capacity");
    if (!cJSON_IsNumber(cap) || cap->valuedouble != floor(cap->valuedouble) ||
        cap->valuedouble < 1 || cap->valuedouble > CAPACITY_MAX)
        fail(cx, q, "Give the most open cases the agent may hold, e.g. 20.",
             "must be a whole number from 1 to %d", CAPACITY_MAX);
    else
        a->capacity = (int64_t)cap->valuedouble;
    a->shift = get_cal(cx, p, obj, path, false);
    if (a->id)
        d->agent_ids[d->nagents++] = a->id;
    else
        strlist_free(&a->langs);
}

static void parse_agents(ctx_t *cx, route_plan_t *p, dept_t *d, const cJSON *arr, const char *path)
{
    char q[PL_ERR_PATH_MAX];
    if (!arr)
        return;
    join(q, sizeof q, path, "agents");
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > AGENTS_MAX) {
        fail(cx, q, "Use an array of agents.", "must be an array of at most %d agents, got %s",
             AGENTS_MAX, type_of(arr));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    d->agents = pl_calloc(n ? n : 1, sizeof *d->agents);
    d->agent_ids = pl_calloc(n ? n : 1, sizeof *d->agent_ids);
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        char r[PL_ERR_PATH_MAX];
        parse_agent(cx, p, d, it, join_index(r, sizeof r, q, i));
    }
}

static void parse_dept(ctx_t *cx, route_plan_t *p, dept_t *d, const cJSON *obj, const char *path)
{
    static const char *const KEYS[] = {"name",   "calendar",   "categories",
                                       "head",   "supervisor", "queue_owner",
                                       "agents", "note",       NULL};
    char q[PL_ERR_PATH_MAX];
    if (!id_ok(d->id, false))
        fail(cx, path, "Use letters, digits and \"_\", e.g. \"after_sales\".",
             "invalid department id \"%.64s\"", d->id);
    if (!cJSON_IsObject(obj)) {
        fail(cx, path, "A department is an object; see services/routing/README.md.",
             "must be an object, got %s", type_of(obj));
        return;
    }
    only_keys(cx, obj, path, KEYS);
    const cJSON *name = field(obj, "name");
    if (name && !cJSON_IsString(name) && !cJSON_IsObject(name))
        fail(cx, join(q, sizeof q, path, "name"), "Use a string or {\"en\": ..., \"zh\": ...}.",
             "must be a string or an object, got %s", type_of(name));
    d->cal = get_cal(cx, p, obj, path, true);
    get_names(cx, obj, "categories", path, NULL, true, &d->categories);
    d->head = get_person(cx, obj, "head", path, true);
    d->supervisor = get_person(cx, obj, "supervisor", path, true);
    d->queue_owner = get_person(cx, obj, "queue_owner", path, true);
    parse_agents(cx, p, d, field(obj, "agents"), path);
}

static void parse_depts(ctx_t *cx, route_plan_t *p, const cJSON *obj)
{
    char q[PL_ERR_PATH_MAX];
    if (!cJSON_IsObject(obj) || !obj->child || cJSON_GetArraySize(obj) > DEPTS_MAX) {
        fail(cx, "departments", "Define the departments as {\"id\": {...}, ...}.",
             "must be an object of 1 to %d departments, got %s", DEPTS_MAX, type_of(obj));
        return;
    }
    unique_keys(cx, obj, "departments");
    p->ndepts = (size_t)cJSON_GetArraySize(obj);
    p->depts = pl_calloc(p->ndepts, sizeof *p->depts);
    p->dept_ids = pl_calloc(p->ndepts, sizeof *p->dept_ids);
    size_t i = 0;
    for (const cJSON *it = obj->child; it; it = it->next, i++) {
        p->depts[i].id = pl_strdup(it->string);
        p->dept_ids[i] = p->depts[i].id;
        parse_dept(cx, p, &p->depts[i], it, join(q, sizeof q, "departments", it->string));
    }
}

/* ---- rules ---- */

static bool parse_ref(ctx_t *cx, const route_plan_t *p, const cJSON *v, const char *path,
                      ref_t *out)
{
    if (!cJSON_IsString(v)) {
        fail(cx, path, REF_HINT, "must be a department reference, got %s", type_of(v));
        return false;
    }
    if (strcmp(v->valuestring, "$category") == 0) {
        *out = (ref_t){REF_CATEGORY, 0};
        return true;
    }
    if (strcmp(v->valuestring, "$target") == 0) {
        *out = (ref_t){REF_TARGET, 0};
        return true;
    }
    int d = find_dept(p, v->valuestring);
    if (d < 0) {
        fail(cx, path, REF_HINT, "unknown department \"%.64s\"", v->valuestring);
        return false;
    }
    *out = (ref_t){REF_DEPT, (size_t)d};
    return true;
}

static void parse_target_cond(ctx_t *cx, rule_t *r, const cJSON *obj, const char *path)
{
    char q[PL_ERR_PATH_MAX];
    if (!cJSON_IsObject(obj)) {
        fail(cx, path,
             "Use e.g. {\"store\": true} (present), {\"store\": false} (absent) or "
             "{\"department\": [\"legal\"]} (one of).",
             "must be an object, got %s", type_of(obj));
        return;
    }
    only_keys(cx, obj, path, TARGETS);
    for (int t = 0; t < T_COUNT; t++) {
        const cJSON *v = field(obj, TARGETS[t]);
        if (!v)
            continue;
        join(q, sizeof q, path, TARGETS[t]);
        if (cJSON_IsBool(v)) {
            r->targets[t].mode = cJSON_IsTrue(v) ? T_PRESENT : T_ABSENT;
        } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) {
            r->targets[t].mode = T_ONE_OF;
            get_names(cx, obj, TARGETS[t], path, NULL, false, &r->targets[t].values);
        } else {
            fail(cx, q, "Use true, false or a non-empty array of values.",
                 "must be a boolean or a non-empty array, got %s", type_of(v));
        }
    }
}

static void parse_when(ctx_t *cx, rule_t *r, const cJSON *when, const char *path)
{
    static const char *const KEYS[] = {"category", "channel", "customer_type", "priority", "lang",
                                       "signals",  "triage",  "target",        NULL};
    char q[PL_ERR_PATH_MAX];
    r->triage = -1;
    if (!when)
        return; /* matches every case */
    if (!cJSON_IsObject(when)) {
        fail(cx, path, "Use an object of conditions, e.g. {\"category\": [\"product_quality\"]}.",
             "must be an object, got %s", type_of(when));
        return;
    }
    only_keys(cx, when, path, KEYS);
    get_names(cx, when, "category", path, NULL, true, &r->categories);
    get_names(cx, when, "channel", path, CHANNELS, false, &r->channels);
    get_names(cx, when, "customer_type", path, CUSTOMER_TYPES, false, &r->customer_types);
    get_names(cx, when, "priority", path, PRIORITIES, false, &r->priorities);
    get_names(cx, when, "lang", path, NULL, false, &r->langs);
    get_names(cx, when, "signals", path, NULL, false, &r->signals);
    const cJSON *triage = field(when, "triage");
    if (triage && !cJSON_IsBool(triage))
        fail(cx, join(q, sizeof q, path, "triage"), "Use true or false.",
             "must be a boolean, got %s", type_of(triage));
    else if (triage)
        r->triage = cJSON_IsTrue(triage);
    const cJSON *target = field(when, "target");
    if (target)
        parse_target_cond(cx, r, target, join(q, sizeof q, path, "target"));
}

static void parse_also(ctx_t *cx, const route_plan_t *p, rule_t *r, const cJSON *arr,
                       const char *path)
{
    char q[PL_ERR_PATH_MAX];
    if (!arr)
        return;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > ROUTE_MAX_DEPARTMENTS - 1) {
        fail(cx, path, REF_HINT, "must be an array of at most %d departments, got %s",
             ROUTE_MAX_DEPARTMENTS - 1, type_of(arr));
        return;
    }
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++)
        if (parse_ref(cx, p, it, join_index(q, sizeof q, path, i), &r->also[r->nalso]))
            r->nalso++;
}

static void parse_rule(ctx_t *cx, route_plan_t *p, rule_t *r, const cJSON *obj, const char *path)
{
    static const char *const KEYS[] = {"name",     "when", "department", "also",
                                       "assignee", "note", NULL};
    char q[PL_ERR_PATH_MAX];
    if (!cJSON_IsObject(obj)) {
        fail(cx, path, "A rule is {\"name\", \"when\", \"department\" and/or \"also\"}.",
             "must be an object, got %s", type_of(obj));
        return;
    }
    only_keys(cx, obj, path, KEYS);
    const cJSON *name = field(obj, "name");
    join(q, sizeof q, path, "name");
    if (!cJSON_IsString(name) || !id_ok(name->valuestring, true))
        fail(cx, q,
             "Name the rule with letters, digits and . _ - (it is logged and sent in "
             "case.routed).",
             "must be a rule name, got %s", type_of(name));
    else
        r->name = pl_strdup(name->valuestring);
    for (size_t k = 0; r->name && &p->rules[k] != r; k++)
        if (p->rules[k].name && strcmp(p->rules[k].name, r->name) == 0)
            fail(cx, q, "Give each rule its own name.", "rule \"%s\" is defined twice", r->name);
    parse_when(cx, r, field(obj, "when"), join(q, sizeof q, path, "when"));
    const cJSON *dept = field(obj, "department");
    r->decides = dept != NULL;
    if (dept)
        (void)parse_ref(cx, p, dept, join(q, sizeof q, path, "department"), &r->department);
    parse_also(cx, p, r, field(obj, "also"), join(q, sizeof q, path, "also"));
    if (!dept && !field(obj, "also"))
        fail(cx, path, "Give \"department\" (the rule decides) or \"also\" (it only involves).",
             "rule has neither \"department\" nor \"also\"");
    if (field(obj, "assignee")) {
        if (!dept)
            fail(cx, join(q, sizeof q, path, "assignee"),
                 "Only a rule with \"department\" may name the assignee.",
                 "\"assignee\" without \"department\"");
        r->assignee = get_person(cx, obj, "assignee", path, false);
    }
}

static void parse_rules(ctx_t *cx, route_plan_t *p, const cJSON *arr)
{
    char q[PL_ERR_PATH_MAX];
    if (!arr)
        return;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > RULES_MAX) {
        fail(cx, "rules", "Use an ordered array of rules.",
             "must be an array of at most %d rules, got %s", RULES_MAX, type_of(arr));
        return;
    }
    p->nrules = (size_t)cJSON_GetArraySize(arr);
    p->rules = pl_calloc(p->nrules ? p->nrules : 1, sizeof *p->rules);
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++)
        parse_rule(cx, p, &p->rules[i], it, join_index(q, sizeof q, "rules", i));
}

/* ---- fallback, management, categories ---- */

static void parse_fallback(ctx_t *cx, route_plan_t *p, const cJSON *obj)
{
    static const char *const KEYS[] = {"department", "assignee", "categories", "note", NULL};
    if (!cJSON_IsObject(obj)) {
        fail(cx, "fallback",
             "Give {\"department\": \"customer_service\", \"assignee\": "
             "\"a.person\"}: no case may be left without an owner.",
             "must be an object, got %s", type_of(obj));
        return;
    }
    only_keys(cx, obj, "fallback", KEYS);
    const cJSON *d = field(obj, "department");
    int i = cJSON_IsString(d) ? find_dept(p, d->valuestring) : -1;
    if (i < 0)
        fail(cx, "fallback.department", "Name a department defined under \"departments\".",
             "must name a department, got %s%s%s", cJSON_IsString(d) ? "\"" : "",
             cJSON_IsString(d) ? d->valuestring : type_of(d), cJSON_IsString(d) ? "\"" : "");
    else
        p->fallback_dept = (size_t)i;
    p->fallback_assignee = get_person(cx, obj, "assignee", "fallback", true);
    get_names(cx, obj, "categories", "fallback", NULL, true, &p->fallback_categories);
}

static void parse_management(ctx_t *cx, route_plan_t *p, const cJSON *obj)
{
    static const char *const KEYS[] = {"owner", "name", "note", NULL};
    if (!cJSON_IsObject(obj)) {
        fail(cx, "management", "Give {\"owner\": \"a.person\"}: the top of the escalation ladder.",
             "must be an object, got %s", type_of(obj));
        return;
    }
    only_keys(cx, obj, "management", KEYS);
    p->management = get_person(cx, obj, "owner", "management", true);
}

/* Reads the category ids of categories.json into cx->known_categories. */
static void read_categories(ctx_t *cx, const char *config_dir)
{
    pl_err_t e;
    cJSON *root = pl_cfg_read_json(config_dir, ROUTE_CATEGORIES_FILE, &e);
    if (!root) {
        pl_errlist_push(cx->errs, &e);
        cx->failed++;
        return;
    }
    const cJSON *arr = field(root, "categories");
    ctx_t cc = *cx;
    cc.file = ROUTE_CATEGORIES_FILE;
    int i = 0;
    for (const cJSON *it = cJSON_IsArray(arr) ? arr->child : NULL; it; it = it->next, i++) {
        const cJSON *id = field(it, "id");
        if (cJSON_IsString(id) && id->valuestring[0])
            strlist_add(&cx->known_categories, id->valuestring);
        else {
            char q[PL_ERR_PATH_MAX];
            fail(&cc, join_index(q, sizeof q, "categories", i), "Give each category an \"id\".",
                 "category without an \"id\"");
        }
    }
    if (!cJSON_IsArray(arr))
        fail(&cc, "categories", "The file holds {\"categories\": [{\"id\": ...}, ...]}.",
             "must be an array, got %s", type_of(arr));
    cx->failed = cc.failed;
    cx->have_categories = cJSON_IsArray(arr);
    cJSON_Delete(root);
}

static int category_owner(const route_plan_t *p, const char *category)
{
    for (size_t i = 0; category && i < p->ndepts; i++)
        if (strlist_has(&p->depts[i].categories, category))
            return (int)i;
    return -1;
}

/* Every category: at most one owner; without one only when the fallback
 * takes it on purpose. */
static void check_categories(ctx_t *cx, const route_plan_t *p)
{
    char q[PL_ERR_PATH_MAX];
    for (size_t i = 0; i < p->ndepts; i++)
        for (size_t k = 0; k < p->depts[i].categories.n; k++) {
            const char *c = p->depts[i].categories.items[k];
            int owner = category_owner(p, c);
            if (owner >= 0 && (size_t)owner != i)
                fail(cx, join(q, sizeof q, "departments", p->depts[i].id),
                     "Give each category one owning department; involve others with rules.",
                     "category \"%s\" is already owned by \"%s\"", c, p->depts[owner].id);
            if (strlist_has(&p->fallback_categories, c))
                fail(cx, "fallback.categories",
                     "List a category either under a department or "
                     "under fallback.categories.",
                     "category \"%s\" is owned by \"%s\"", c, p->depts[i].id);
        }
    for (size_t k = 0; cx->have_categories && k < cx->known_categories.n; k++) {
        const char *c = cx->known_categories.items[k];
        if (category_owner(p, c) < 0 && !strlist_has(&p->fallback_categories, c))
            fail(cx, "departments",
                 "Add it to a department's \"categories\", or to fallback.categories to send "
                 "it to the fallback on purpose.",
                 "category \"%s\" of categories.json has no department", c);
    }
    const char *const *sla_cats;
    size_t n = p->sla ? pl_sla_complex_categories(p->sla, &sla_cats) : 0;
    ctx_t sc = *cx;
    sc.file = PL_SLA_FILE;
    for (size_t k = 0; cx->have_categories && k < n; k++)
        if (!strlist_has(&cx->known_categories, sla_cats[k]))
            fail(&sc, "complex_when.categories", "Use a category id from categories.json.",
                 "unknown category \"%s\"", sla_cats[k]);
    cx->failed = sc.failed;
}

/* ---- load and destroy ---- */

static void rule_free(rule_t *r)
{
    pl_free(r->name);
    strlist_free(&r->categories);
    strlist_free(&r->channels);
    strlist_free(&r->customer_types);
    strlist_free(&r->priorities);
    strlist_free(&r->langs);
    strlist_free(&r->signals);
    for (int t = 0; t < T_COUNT; t++)
        strlist_free(&r->targets[t].values);
    pl_free(r->assignee);
}

static void dept_free(dept_t *d)
{
    pl_free(d->id);
    pl_free(d->head);
    pl_free(d->supervisor);
    pl_free(d->queue_owner);
    for (size_t i = 0; i < d->nagents; i++) {
        pl_free(d->agents[i].id);
        strlist_free(&d->agents[i].langs);
    }
    pl_free(d->agents);
    pl_free(d->agent_ids);
    strlist_free(&d->categories);
}

void route_plan_destroy(route_plan_t **plan_p)
{
    if (!plan_p || !*plan_p)
        return;
    route_plan_t *p = *plan_p;
    pl_sla_destroy(&p->sla);
    for (size_t i = 0; i < p->ncals; i++) {
        pl_free(p->cals[i].name);
        pl_calendar_destroy(&p->cals[i].cal);
    }
    pl_free(p->cals);
    for (size_t i = 0; i < p->ndepts; i++)
        dept_free(&p->depts[i]);
    pl_free(p->depts);
    pl_free(p->dept_ids);
    for (size_t i = 0; i < p->nrules; i++)
        rule_free(&p->rules[i]);
    pl_free(p->rules);
    pl_free(p->fallback_assignee);
    strlist_free(&p->fallback_categories);
    pl_free(p->management);
    pl_free(p);
    *plan_p = NULL;
}

static void parse_routing(ctx_t *cx, route_plan_t *p, const cJSON *root)
{
    static const char *const KEYS[] = {"calendars", "departments", "management", "rules",
                                       "fallback",  "note",        NULL};
    if (!cJSON_IsObject(root)) {
        fail(cx, "", "The file holds one JSON object; see services/routing/README.md.",
             "must be an object, got %s", type_of(root));
        return;
    }
    only_keys(cx, root, "", KEYS);
    parse_calendars(cx, p, field(root, "calendars"));
    parse_depts(cx, p, field(root, "departments"));
    if (p->ndepts == 0)
        return; /* nothing below can be checked without departments */
    parse_management(cx, p, field(root, "management"));
    parse_fallback(cx, p, field(root, "fallback"));
    parse_rules(cx, p, field(root, "rules"));
    check_categories(cx, p);
}

route_plan_t *route_plan_load(const char *config_dir, pl_errlist_t *errs)
{
    ctx_t cx = {ROUTE_FILE, errs, 0, {NULL, 0}, false};
    route_plan_t *p = pl_calloc(1, sizeof *p);
    read_categories(&cx, config_dir);
    size_t before = errs->count + errs->dropped;
    p->sla = pl_sla_load(config_dir, errs);
    cx.failed += errs->count + errs->dropped - before;
    pl_err_t e;
    cJSON *root = pl_cfg_read_json(config_dir, ROUTE_FILE, &e);
    if (!root) {
        pl_errlist_push(errs, &e);
        cx.failed++;
    } else {
        parse_routing(&cx, p, root);
        cJSON_Delete(root);
    }
    strlist_free(&cx.known_categories);
    if (cx.failed)
        route_plan_destroy(&p);
    return p;
}

/* ---- decisions ---- */

static bool target_present(const char *v)
{
    return v && v[0];
}

static bool when_target(const rule_t *r, const route_case_t *c)
{
    const char *values[T_COUNT] = {c->target_product, c->target_order_id, c->target_store,
                                   c->target_employee, c->target_department};
    for (int t = 0; t < T_COUNT; t++) {
        const tcond_t *tc = &r->targets[t];
        bool present = target_present(values[t]);
        if ((tc->mode == T_PRESENT && !present) || (tc->mode == T_ABSENT && present) ||
            (tc->mode == T_ONE_OF && !(present && strlist_has(&tc->values, values[t]))))
            return false;
    }
    return true;
}

static bool lang_match(const char *a, const char *b)
{
    size_t na = strcspn(a, "-_"), nb = strcspn(b, "-_");
    return na == nb && strncasecmp(a, b, na) == 0;
}

static bool when_list(const strlist_t *l, const char *v)
{
    return l->n == 0 || strlist_has(l, v);
}

static bool when_signals(const rule_t *r, const route_case_t *c)
{
    if (r->signals.n == 0)
        return true;
    for (size_t i = 0; i < r->signals.n; i++)
        for (size_t j = 0; j < c->nsignals; j++)
            if (pl_sla_signal_match(r->signals.items[i], c->signals[j]))
                return true;
    return false;
}

static bool when_lang(const rule_t *r, const route_case_t *c)
{
    for (size_t i = 0; i < r->langs.n; i++)
        if (c->lang && lang_match(r->langs.items[i], c->lang))
            return true;
    return r->langs.n == 0;
}

static bool rule_matches(const rule_t *r, const route_case_t *c)
{
    return when_list(&r->categories, c->category) && when_list(&r->channels, c->channel) &&
           when_list(&r->customer_types, c->customer_type ? c->customer_type : "individual") &&
           when_list(&r->priorities, c->priority) && when_lang(r, c) && when_signals(r, c) &&
           (r->triage < 0 || r->triage == (int)c->triage) && when_target(r, c);
}

/* The department a reference names for this case, or -1. */
static int resolve(const route_plan_t *p, const ref_t *ref, const route_case_t *c)
{
    switch (ref->kind) {
    case REF_DEPT: return (int)ref->dept;
    case REF_CATEGORY: return category_owner(p, c->category);
    case REF_TARGET: return find_dept(p, c->target_department);
    }
    return -1;
}

static void involve(const route_plan_t *p, route_decision_t *out, int d)
{
    if (d < 0 || out->ndepartments >= ROUTE_MAX_DEPARTMENTS)
        return;
    for (size_t i = 0; i < out->ndepartments; i++)
        if (out->departments[i] == p->depts[d].id)
            return;
    out->departments[out->ndepartments++] = p->depts[d].id;
}

static void involve_all(const route_plan_t *p, const rule_t *r, const route_case_t *c,
                        route_decision_t *out)
{
    for (size_t k = 0; k < r->nalso; k++)
        involve(p, out, resolve(p, &r->also[k], c));
}

int route_plan_decide(const route_plan_t *p, const route_case_t *c, route_decision_t *out)
{
    if (!p || !c || !out)
        return PL_EINVAL;
    memset(out, 0, sizeof *out);
    const rule_t *decider = NULL;
    int resp = -1;
    for (size_t i = 0; i < p->nrules && !decider; i++) {
        const rule_t *r = &p->rules[i];
        if (r->decides && rule_matches(r, c) && (resp = resolve(p, &r->department, c)) >= 0)
            decider = r;
    }
    if (!decider)
        resp = (int)p->fallback_dept;
    involve(p, out, resp);
    out->department = p->depts[resp].id;
    out->rule = decider ? decider->name : "fallback";
    out->assignee = decider ? decider->assignee : p->fallback_assignee;
    if (decider)
        involve_all(p, decider, c, out);
    for (size_t i = 0; i < p->nrules; i++) /* involve-only rules add, whatever the order */
        if (!p->rules[i].decides && rule_matches(&p->rules[i], c))
            involve_all(p, &p->rules[i], c, out);
    pl_sla_case_t sc = {c->priority, c->category, c->customer_type,
                        c->signals,  c->nsignals, out->ndepartments};
    out->complex = pl_sla_is_complex(p->sla, &sc);
    return 0;
}

size_t route_plan_agents(const route_plan_t *p, const char *department, const char *const **ids)
{
    int d = find_dept(p, department);
    *ids = d < 0 ? NULL : p->depts[d].agent_ids;
    return d < 0 ? 0 : p->depts[d].nagents;
}

int64_t route_plan_capacity(const route_plan_t *p, const char *department, const char *agent)
{
    int d = find_dept(p, department);
    for (size_t i = 0; d >= 0 && agent && i < p->depts[d].nagents; i++)
        if (!strcmp(p->depts[d].agents[i].id, agent))
            return p->depts[d].agents[i].capacity;
    return 0;
}

static int64_t load_of(const char *agent, const route_load_t *loads, size_t nloads)
{
    for (size_t i = 0; i < nloads; i++)
        if (loads[i].agent && strcmp(loads[i].agent, agent) == 0)
            return loads[i].open_cases;
    return 0;
}

static bool speaks(const agent_t *a, const char *lang)
{
    for (size_t i = 0; i < a->langs.n; i++)
        if (lang_match(a->langs.items[i], lang))
            return true;
    return false;
}

const char *route_plan_assignee(const route_plan_t *p, const char *department, const char *lang,
                                int64_t now_ms, const route_load_t *loads, size_t nloads)
{
    int di = find_dept(p, department);
    if (di < 0)
        return p->fallback_assignee;
    const dept_t *d = &p->depts[di];
    const agent_t *best[2] = {NULL, NULL}; /* [0] speaks lang, [1] anyone */
    int64_t best_load[2] = {0, 0};
    bool want_lang = lang && lang[0];
    for (size_t i = 0; i < d->nagents; i++) {
        const agent_t *a = &d->agents[i];
        int64_t load = load_of(a->id, loads, nloads);
        if (load < 0)
            load = 0; /* a bad count must not make an agent look emptier than empty */
        if (load >= a->capacity || !pl_calendar_is_open(a->shift ? a->shift : d->cal, now_ms))
            continue;
        for (int k = want_lang && speaks(a, lang) ? 0 : 1; k < 2; k++) {
            /* load/capacity below the best's, compared without division
             * (both loads are under capacities of at most CAPACITY_MAX);
             * equal ratios keep the earlier agent. */
            if (!best[k] || load * best[k]->capacity < best_load[k] * a->capacity) {
                best[k] = a;
                best_load[k] = load;
            }
        }
    }
    if (want_lang && best[0])
        return best[0]->id;
    return best[1] ? best[1]->id : d->queue_owner;
}

int route_plan_due(const route_plan_t *p, const route_decision_t *d, const char *priority,
                   int64_t received_at_ms, int64_t *first_response_due_ms,
                   int64_t *resolution_due_ms)
{
    const pl_calendar_t *cal = d ? route_plan_calendar(p, d->department) : NULL;
    if (!cal)
        return PL_EINVAL;
    pl_sla_prio_t prio = pl_sla_priority_or_default(p->sla, priority);
    int rc =
        pl_sla_due(pl_sla_first_response(p->sla, prio), cal, received_at_ms, first_response_due_ms);
    if (rc == 0)
        rc = pl_sla_due(pl_sla_resolution(p->sla, prio, d->complex), cal, received_at_ms,
                        resolution_due_ms);
    return rc;
}

const pl_sla_t *route_plan_sla(const route_plan_t *p)
{
    return p->sla;
}

const pl_calendar_t *route_plan_calendar(const route_plan_t *p, const char *department)
{
    int d = find_dept(p, department);
    return d < 0 ? NULL : p->depts[d].cal;
}

const char *route_plan_escalation_to(const route_plan_t *p, const char *department,
                                     pl_sla_role_t role)
{
    int d = find_dept(p, department);
    if (d < 0)
        return NULL;
    switch (role) {
    case PL_SLA_SUPERVISOR: return p->depts[d].supervisor;
    case PL_SLA_DEPARTMENT_HEAD: return p->depts[d].head;
    case PL_SLA_MANAGEMENT: return p->management;
    default: return NULL;
    }
}

size_t route_plan_departments(const route_plan_t *p, const char *const **ids)
{
    *ids = p->dept_ids;
    return p->ndepts;
}

const char *route_plan_fallback_department(const route_plan_t *p)
{
    return p->depts[p->fallback_dept].id;
}

const char *route_plan_fallback_assignee(const route_plan_t *p)
{
    return p->fallback_assignee;
}
