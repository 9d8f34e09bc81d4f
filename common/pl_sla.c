/*
 * pl_sla: SLA targets, warnings, pauses and escalation from sla.json (see
 * pl_sla.h).
 *
 * Trusts nothing in the file: unknown fields, wrong types, out-of-range
 * numbers and ladders that go down or back in time are all reported, each
 * with its JSON path, and then nothing is returned. Owns the copies of the
 * strings it keeps.
 */
#include "pl_sla.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_json.h"
#include "pl_time.h"

#define WITHIN_MAX_MS (366 * 86400 * 1000LL)
#define WORKING_DAYS_MAX 365
#define LIST_MAX 64
#define TARGET_HINT                                                                                \
    "Use {\"within\": \"24h\", \"clock\": \"24x7\" or \"business\"}, or "                          \
    "{\"working_days\": 3}."
#define LADDER_HINT                                                                                \
    "Use [{\"to\": \"supervisor\", \"after\": \"0s\"}, {\"to\": "                                  \
    "\"department_head\", \"after\": \"4h\"}, ...]: roles rising, times not "                      \
    "decreasing."

typedef struct strlist {
    char **items;
    size_t n;
} strlist_t;

struct pl_sla {
    pl_sla_prio_t default_prio;
    double warn_at[PL_SLA_NPRIO];
    pl_sla_target_t first[PL_SLA_NPRIO], simple[PL_SLA_NPRIO], complex[PL_SLA_NPRIO];
    pl_sla_step_t ladder[PL_SLA_NPRIO][PL_SLA_LADDER_MAX];
    size_t nladder[PL_SLA_NPRIO];
    pl_sla_role_t warn_to;
    strlist_t pause_states;
    bool pause_kind[PL_SLA_NKIND];
    strlist_t cx_priorities, cx_categories, cx_signals, cx_customer_types;
    bool cx_cross_department;
};

static const char *const PRIO_NAMES[PL_SLA_NPRIO] = {"P1", "P2", "P3"};
static const char *const CLOCK_NAMES[] = {"24x7", "business", "working_days"};
static const char *const KIND_NAMES[PL_SLA_NKIND] = {"first_response", "resolution", "promise"};
static const char *const ROLE_NAMES[PL_SLA_NROLE] = {"assignee", "supervisor", "department_head",
                                                     "management"};
static const char *const CUSTOMER_TYPES[] = {"individual", "enterprise", "vip", NULL};

/* ---- errors ---- */

typedef struct ctx {
    const char *file;
    pl_errlist_t *errs;
    size_t failed;
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

static void only_keys(ctx_t *cx, const cJSON *obj, const char *path, const char *const *keys)
{
    char known[256] = "";
    for (const char *const *k = keys; *k; k++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k == keys ? "" : ", ",
                 *k);
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool ok = false;
        for (const char *const *k = keys; *k && !ok; k++)
            ok = strcmp(*k, it->string) == 0;
        if (!ok) {
            char p[PL_ERR_PATH_MAX], hint[320];
            snprintf(hint, sizeof hint, "Known fields here: %s.", known);
            fail(cx, join(p, sizeof p, path, it->string), hint, "unknown field \"%s\"", it->string);
        }
    }
}

static int name_index(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; name && i < n && names[i]; i++)
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    return -1;
}

/* ---- pieces ---- */

static bool get_duration(ctx_t *cx, const cJSON *v, const char *path, int64_t *ms)
{
    if (!cJSON_IsString(v)) {
        fail(cx, path,
             "Use a duration string such as \"90s\", \"15m\", \"24h\", \"3d\", \"1h30m\".",
             "must be a duration string, got %s", type_of(v));
        return false;
    }
    pl_err_t e;
    if (pl_duration_parse(v->valuestring, ms, path, &e) != 0) {
        fail(cx, path, e.hint[0] ? e.hint : NULL, "%s", e.message);
        return false;
    }
    return true;
}

static void parse_target(ctx_t *cx, const cJSON *obj, const char *path, pl_sla_target_t *t)
{
    static const char *const KEYS[] = {"within", "clock", "working_days", "note", NULL};
    char p[PL_ERR_PATH_MAX];
    memset(t, 0, sizeof *t);
    if (!cJSON_IsObject(obj)) {
        fail(cx, path, TARGET_HINT, "must be a target object, got %s", type_of(obj));
        return;
    }
    only_keys(cx, obj, path, KEYS);
    const cJSON *within = cJSON_GetObjectItemCaseSensitive(obj, "within");
    const cJSON *clock = cJSON_GetObjectItemCaseSensitive(obj, "clock");
    const cJSON *days = cJSON_GetObjectItemCaseSensitive(obj, "working_days");
    if (days) {
        join(p, sizeof p, path, "working_days");
        if (within || clock)
            fail(cx, path, TARGET_HINT, "give either \"working_days\" or \"within\", not both");
        else if (!cJSON_IsNumber(days) || days->valuedouble != floor(days->valuedouble) ||
                 days->valuedouble < 1 || days->valuedouble > WORKING_DAYS_MAX)
            fail(cx, p, "Use a whole number of days from 1 to 365.",
                 "must be a whole number from 1 to %d", WORKING_DAYS_MAX);
        t->clock = PL_SLA_CLOCK_WORKING_DAYS;
        t->working_days = cJSON_IsNumber(days) ? (int)days->valuedouble : 0;
        return;
    }
    join(p, sizeof p, path, "within");
    if (!within) {
        fail(cx, path, TARGET_HINT, "missing \"within\" (or \"working_days\")");
        return;
    }
    if (get_duration(cx, within, p, &t->within_ms) &&
        (t->within_ms <= 0 || t->within_ms > WITHIN_MAX_MS))
        fail(cx, p, "Use a duration above 0 and at most 366d.", "\"%s\" is out of range",
             within->valuestring);
    t->clock = PL_SLA_CLOCK_24X7;
    if (!clock)
        return;
    join(p, sizeof p, path, "clock");
    int c = cJSON_IsString(clock) ? name_index(clock->valuestring, CLOCK_NAMES, 2) : -1;
    if (c < 0)
        fail(cx, p, "Use \"24x7\" (elapsed time) or \"business\" (the department's open hours).",
             "invalid clock %s%s%s", cJSON_IsString(clock) ? "\"" : "",
             cJSON_IsString(clock) ? clock->valuestring : type_of(clock),
             cJSON_IsString(clock) ? "\"" : "");
    else
        t->clock = (pl_sla_clock_t)c;
}

static void parse_warn_at(ctx_t *cx, const cJSON *v, const char *path, double *out)
{
    if (!v)
        return;
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0 && v->valuedouble < 1))
        fail(cx, path, "Use a fraction of the target time, e.g. 0.8 to warn at 80%.",
             "must be a number above 0 and below 1");
    else
        *out = v->valuedouble;
}

static void parse_ladder(ctx_t *cx, const cJSON *arr, const char *path, pl_sla_step_t *steps,
                         size_t *n)
{
    static const char *const KEYS[] = {"to", "after", "note", NULL};
    char p[PL_ERR_PATH_MAX], q[PL_ERR_PATH_MAX];
    *n = 0;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1 ||
        cJSON_GetArraySize(arr) > PL_SLA_LADDER_MAX) {
        fail(cx, path, LADDER_HINT, "must be an array of 1 to %d steps, got %s", PL_SLA_LADDER_MAX,
             cJSON_IsArray(arr) ? "another size" : type_of(arr));
        return;
    }
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        pl_json_path_index(p, sizeof p, path, i);
        if (!cJSON_IsObject(it)) {
            fail(cx, p, LADDER_HINT, "must be a step object, got %s", type_of(it));
            continue;
        }
        only_keys(cx, it, p, KEYS);
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(it, "to");
        int role = cJSON_IsString(to) ? name_index(to->valuestring, ROLE_NAMES, PL_SLA_NROLE) : -1;
        int64_t after = 0;
        bool ok = get_duration(cx, cJSON_GetObjectItemCaseSensitive(it, "after"),
                               join(q, sizeof q, p, "after"), &after);
        if (role < 0) {
            fail(cx, join(q, sizeof q, p, "to"),
                 "Use assignee, supervisor, department_head or management.",
                 "must name a role, got %s%s%s", cJSON_IsString(to) ? "\"" : "",
                 cJSON_IsString(to) ? to->valuestring : type_of(to),
                 cJSON_IsString(to) ? "\"" : "");
            continue;
        }
        if (*n > 0 && role <= (int)steps[*n - 1].to)
            fail(cx, p, LADDER_HINT, "\"%s\" does not rise above \"%s\" before it",
                 ROLE_NAMES[role], ROLE_NAMES[steps[*n - 1].to]);
        else if (ok && *n > 0 && after < steps[*n - 1].after_ms)
            fail(cx, p, LADDER_HINT, "comes earlier than the step before it");
        steps[(*n)++] = (pl_sla_step_t){(pl_sla_role_t)role, after};
    }
}

static void strlist_free(strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        pl_free(l->items[i]);
    pl_free(l->items);
    l->items = NULL;
    l->n = 0;
}

static bool strlist_has(const strlist_t *l, const char *s)
{
    for (size_t i = 0; s && i < l->n; i++)
        if (strcmp(l->items[i], s) == 0)
            return true;
    return false;
}

/* An array of distinct identifier strings ([a-z0-9_]...), each in allowed
 * when given. A missing key leaves the list empty. */
static void parse_names(ctx_t *cx, const cJSON *obj, const char *key, const char *path,
                        const char *const *allowed, strlist_t *out)
{
    char p[PL_ERR_PATH_MAX], q[PL_ERR_PATH_MAX];
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!arr)
        return;
    join(p, sizeof p, path, key);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > LIST_MAX) {
        fail(cx, p, "Use an array of names, e.g. [\"a\", \"b\"].",
             "must be an array of at most %d names, got %s", LIST_MAX, type_of(arr));
        return;
    }
    out->items = pl_calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *out->items);
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        pl_json_path_index(q, sizeof q, p, i);
        bool ok = cJSON_IsString(it) && it->valuestring[0] && strlen(it->valuestring) <= 64;
        for (const char *c = ok ? it->valuestring : ""; *c && ok; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' ||
                 (*c >= 'A' && *c <= 'Z');
        if (!ok) {
            fail(cx, q, "Use letters, digits and \"_\", e.g. \"waiting_customer\".",
                 "must be a name of 1 to 64 letters, digits or \"_\"");
            continue;
        }
        if (allowed && name_index(it->valuestring, allowed, SIZE_MAX) < 0) {
            char hint[200] = "Use one of:";
            for (const char *const *a = allowed; *a; a++)
                snprintf(hint + strlen(hint), sizeof hint - strlen(hint), " %s", *a);
            fail(cx, q, hint, "unknown value \"%s\"", it->valuestring);
            continue;
        }
        if (strlist_has(out, it->valuestring)) {
            fail(cx, q, "List each value once.", "\"%s\" is listed twice", it->valuestring);
            continue;
        }
        out->items[out->n++] = pl_strdup(it->valuestring);
    }
}

/* ---- the file ---- */

static void parse_priority(ctx_t *cx, pl_sla_t *sla, const cJSON *obj, int prio, const char *path)
{
    static const char *const KEYS[] = {"first_response", "resolution", "warn_at",
                                       "escalation",     "note",       NULL};
    static const char *const RES_KEYS[] = {"simple", "complex", "note", NULL};
    char p[PL_ERR_PATH_MAX], q[PL_ERR_PATH_MAX];
    if (!cJSON_IsObject(obj)) {
        fail(cx, path,
             "Give P1, P2 and P3 each {\"first_response\": ..., \"resolution\": "
             "{\"simple\": ..., \"complex\": ...}}.",
             "must be an object, got %s", type_of(obj));
        return;
    }
    only_keys(cx, obj, path, KEYS);
    parse_target(cx, cJSON_GetObjectItemCaseSensitive(obj, "first_response"),
                 join(p, sizeof p, path, "first_response"), &sla->first[prio]);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(obj, "resolution");
    join(p, sizeof p, path, "resolution");
    if (!cJSON_IsObject(res)) {
        fail(cx, p, "Use {\"simple\": {\"within\": \"48h\"}, \"complex\": {\"within\": \"7d\"}}.",
             "must be an object with \"simple\" and \"complex\", got %s", type_of(res));
    } else {
        only_keys(cx, res, p, RES_KEYS);
        parse_target(cx, cJSON_GetObjectItemCaseSensitive(res, "simple"),
                     join(q, sizeof q, p, "simple"), &sla->simple[prio]);
        parse_target(cx, cJSON_GetObjectItemCaseSensitive(res, "complex"),
                     join(q, sizeof q, p, "complex"), &sla->complex[prio]);
    }
    parse_warn_at(cx, cJSON_GetObjectItemCaseSensitive(obj, "warn_at"),
                  join(p, sizeof p, path, "warn_at"), &sla->warn_at[prio]);
    const cJSON *ladder = cJSON_GetObjectItemCaseSensitive(obj, "escalation");
    if (ladder)
        parse_ladder(cx, ladder, join(p, sizeof p, path, "escalation"), sla->ladder[prio],
                     &sla->nladder[prio]);
}

static void parse_priorities(ctx_t *cx, pl_sla_t *sla, const cJSON *obj)
{
    char p[PL_ERR_PATH_MAX];
    if (!cJSON_IsObject(obj)) {
        fail(cx, "priorities", "Give an object with P1, P2 and P3.", "must be an object, got %s",
             type_of(obj));
        return;
    }
    only_keys(cx, obj, "priorities", (const char *const[]){"P1", "P2", "P3", "note", NULL});
    for (int i = 0; i < PL_SLA_NPRIO; i++)
        parse_priority(cx, sla, cJSON_GetObjectItemCaseSensitive(obj, PRIO_NAMES[i]), i,
                       join(p, sizeof p, "priorities", PRIO_NAMES[i]));
}

static void parse_complex(ctx_t *cx, pl_sla_t *sla, const cJSON *obj)
{
    static const char *const KEYS[] = {
        "priorities", "categories", "signals", "customer_types", "cross_department", "note", NULL};
    const char *path = "complex_when";
    if (!obj)
        return;
    if (!cJSON_IsObject(obj)) {
        fail(cx, path,
             "Use {\"categories\": [...], \"signals\": [...], \"cross_department\": true}.",
             "must be an object, got %s", type_of(obj));
        return;
    }
    only_keys(cx, obj, path, KEYS);
    static const char *const PRIOS[] = {"P1", "P2", "P3", NULL};
    parse_names(cx, obj, "priorities", path, PRIOS, &sla->cx_priorities);
    parse_names(cx, obj, "categories", path, NULL, &sla->cx_categories);
    parse_names(cx, obj, "signals", path, NULL, &sla->cx_signals);
    parse_names(cx, obj, "customer_types", path, CUSTOMER_TYPES, &sla->cx_customer_types);
    const cJSON *cross = cJSON_GetObjectItemCaseSensitive(obj, "cross_department");
    if (cross && !cJSON_IsBool(cross))
        fail(cx, "complex_when.cross_department", "Use true or false.", "must be a boolean, got %s",
             type_of(cross));
    sla->cx_cross_department = cJSON_IsTrue(cross);
}

static void parse_pause(ctx_t *cx, pl_sla_t *sla, const cJSON *obj)
{
    static const char *const KEYS[] = {"states", "clocks", "note", NULL};
    static const char *const KINDS[] = {"first_response", "resolution", "promise", NULL};
    sla->pause_kind[PL_SLA_RESOLUTION] = true; /* the default clocks */
    if (!obj)
        return;
    if (!cJSON_IsObject(obj)) {
        fail(cx, "pause", "Use {\"states\": [\"waiting_customer\"], \"clocks\": [\"resolution\"]}.",
             "must be an object, got %s", type_of(obj));
        return;
    }
    only_keys(cx, obj, "pause", KEYS);
    parse_names(cx, obj, "states", "pause", NULL, &sla->pause_states);
    if (!cJSON_GetObjectItemCaseSensitive(obj, "clocks"))
        return;
    strlist_t clocks = {NULL, 0};
    parse_names(cx, obj, "clocks", "pause", KINDS, &clocks);
    for (int k = 0; k < PL_SLA_NKIND; k++)
        sla->pause_kind[k] = strlist_has(&clocks, KIND_NAMES[k]);
    strlist_free(&clocks);
}

static void parse_escalation(ctx_t *cx, pl_sla_t *sla, const cJSON *obj)
{
    static const char *const KEYS[] = {"warn_to", "ladder", "note", NULL};
    if (!cJSON_IsObject(obj)) {
        fail(cx, "escalation", LADDER_HINT,
             "must be an object with \"ladder\" (and \"warn_to\"), got %s", type_of(obj));
        return;
    }
    only_keys(cx, obj, "escalation", KEYS);
    const cJSON *warn_to = cJSON_GetObjectItemCaseSensitive(obj, "warn_to");
    if (warn_to) {
        int r = cJSON_IsString(warn_to) ? name_index(warn_to->valuestring, ROLE_NAMES, PL_SLA_NROLE)
                                        : -1;
        if (r < 0)
            fail(cx, "escalation.warn_to",
                 "Use assignee, supervisor, department_head or management.", "must name a role");
        else
            sla->warn_to = (pl_sla_role_t)r;
    }
    pl_sla_step_t steps[PL_SLA_LADDER_MAX];
    size_t n = 0;
    parse_ladder(cx, cJSON_GetObjectItemCaseSensitive(obj, "ladder"), "escalation.ladder", steps,
                 &n);
    for (int i = 0; i < PL_SLA_NPRIO; i++) /* a priority's own ladder was read before */
        if (sla->nladder[i] == 0) {
            memcpy(sla->ladder[i], steps, n * sizeof steps[0]);
            sla->nladder[i] = n;
        }
}

void pl_sla_destroy(pl_sla_t **sla_p)
{
    if (!sla_p || !*sla_p)
        return;
    pl_sla_t *sla = *sla_p;
    strlist_free(&sla->pause_states);
    strlist_free(&sla->cx_priorities);
    strlist_free(&sla->cx_categories);
    strlist_free(&sla->cx_signals);
    strlist_free(&sla->cx_customer_types);
    pl_free(sla);
    *sla_p = NULL;
}

pl_sla_t *pl_sla_from_json(const cJSON *root, const char *file, pl_errlist_t *errs)
{
    static const char *const KEYS[] = {
        "default_priority", "warn_at", "priorities", "complex_when", "pause",
        "escalation",       "note",    NULL};
    ctx_t cx = {file ? file : PL_SLA_FILE, errs, 0};
    if (!cJSON_IsObject(root)) {
        fail(&cx, "", "The file holds one JSON object; see services/routing/README.md.",
             "must be an object, got %s", type_of(root));
        return NULL;
    }
    pl_sla_t *sla = pl_calloc(1, sizeof *sla);
    sla->default_prio = PL_SLA_P2;
    only_keys(&cx, root, "", KEYS);
    const cJSON *dp = cJSON_GetObjectItemCaseSensitive(root, "default_priority");
    if (dp) {
        int prio = cJSON_IsString(dp) ? pl_sla_priority_parse(dp->valuestring) : PL_EINVAL;
        if (prio < 0)
            fail(&cx, "default_priority", "Use \"P1\", \"P2\" or \"P3\".",
                 "must be a priority name");
        else
            sla->default_prio = (pl_sla_prio_t)prio;
    }
    double warn_at = 0.8;
    parse_warn_at(&cx, cJSON_GetObjectItemCaseSensitive(root, "warn_at"), "warn_at", &warn_at);
    for (int i = 0; i < PL_SLA_NPRIO; i++)
        sla->warn_at[i] = warn_at; /* a priority's own warn_at overrides below */
    parse_priorities(&cx, sla, cJSON_GetObjectItemCaseSensitive(root, "priorities"));
    parse_complex(&cx, sla, cJSON_GetObjectItemCaseSensitive(root, "complex_when"));
    parse_pause(&cx, sla, cJSON_GetObjectItemCaseSensitive(root, "pause"));
    parse_escalation(&cx, sla, cJSON_GetObjectItemCaseSensitive(root, "escalation"));
    if (cx.failed)
        pl_sla_destroy(&sla);
    return sla;
}

pl_sla_t *pl_sla_load(const char *config_dir, pl_errlist_t *errs)
{
    pl_err_t e;
    cJSON *root = pl_cfg_read_json(config_dir, PL_SLA_FILE, &e);
    if (!root) {
        pl_errlist_push(errs, &e);
        return NULL;
    }
    pl_sla_t *sla = pl_sla_from_json(root, PL_SLA_FILE, errs);
    cJSON_Delete(root);
    return sla;
}

/* ---- queries ---- */

int pl_sla_priority_parse(const char *name)
{
    int i = name_index(name, PRIO_NAMES, PL_SLA_NPRIO);
    return i < 0 ? PL_EINVAL : i;
}

pl_sla_prio_t pl_sla_priority_or_default(const pl_sla_t *sla, const char *name)
{
    int i = pl_sla_priority_parse(name);
    return i < 0 ? sla->default_prio : (pl_sla_prio_t)i;
}

const char *pl_sla_priority_name(pl_sla_prio_t prio)
{
    return (unsigned)prio < PL_SLA_NPRIO ? PRIO_NAMES[prio] : "?";
}

const char *pl_sla_clock_name(pl_sla_clock_t clock)
{
    return (unsigned)clock < 3 ? CLOCK_NAMES[clock] : "?";
}

const char *pl_sla_kind_name(pl_sla_kind_t kind)
{
    return (unsigned)kind < PL_SLA_NKIND ? KIND_NAMES[kind] : "?";
}

const char *pl_sla_role_name(pl_sla_role_t role)
{
    return (unsigned)role < PL_SLA_NROLE ? ROLE_NAMES[role] : "?";
}

const pl_sla_target_t *pl_sla_first_response(const pl_sla_t *sla, pl_sla_prio_t prio)
{
    return &sla->first[prio];
}

const pl_sla_target_t *pl_sla_resolution(const pl_sla_t *sla, pl_sla_prio_t prio, bool complex)
{
    return complex ? &sla->complex[prio] : &sla->simple[prio];
}

double pl_sla_warn_at(const pl_sla_t *sla, pl_sla_prio_t prio)
{
    return sla->warn_at[prio];
}

pl_sla_role_t pl_sla_warn_to(const pl_sla_t *sla)
{
    return sla->warn_to;
}

bool pl_sla_pauses(const pl_sla_t *sla, pl_sla_kind_t kind, const char *state)
{
    return (unsigned)kind < PL_SLA_NKIND && sla->pause_kind[kind] &&
           strlist_has(&sla->pause_states, state);
}

size_t pl_sla_ladder(const pl_sla_t *sla, pl_sla_prio_t prio, const pl_sla_step_t **steps)
{
    *steps = sla->ladder[prio];
    return sla->nladder[prio];
}

size_t pl_sla_complex_categories(const pl_sla_t *sla, const char *const **categories)
{
    *categories = (const char *const *)sla->cx_categories.items;
    return sla->cx_categories.n;
}

bool pl_sla_signal_match(const char *configured, const char *signal)
{
    if (!configured || !signal)
        return false;
    size_t n = strlen(configured);
    return strncmp(configured, signal, n) == 0 && (signal[n] == '\0' || signal[n] == ':');
}

bool pl_sla_is_complex(const pl_sla_t *sla, const pl_sla_case_t *c)
{
    if (sla->cx_cross_department && c->ndepartments > 1)
        return true;
    if (strlist_has(&sla->cx_priorities, c->priority) ||
        strlist_has(&sla->cx_categories, c->category) ||
        strlist_has(&sla->cx_customer_types, c->customer_type ? c->customer_type : "individual"))
        return true;
    for (size_t i = 0; i < sla->cx_signals.n; i++)
        for (size_t j = 0; j < c->nsignals; j++)
            if (pl_sla_signal_match(sla->cx_signals.items[i], c->signals[j]))
                return true;
    return false;
}

int pl_sla_due(const pl_sla_target_t *target, const pl_calendar_t *cal, int64_t start_ms,
               int64_t *due_ms)
{
    switch (target->clock) {
    case PL_SLA_CLOCK_24X7:
        if (__builtin_add_overflow(start_ms, target->within_ms, due_ms))
            return PL_ETOOLARGE;
        return 0;
    case PL_SLA_CLOCK_BUSINESS:
        return cal ? pl_calendar_add(cal, start_ms, target->within_ms, due_ms) : PL_EINVAL;
    case PL_SLA_CLOCK_WORKING_DAYS:
        return cal ? pl_calendar_add_working_days(cal, start_ms, target->working_days, due_ms)
                   : PL_EINVAL;
    }
    return PL_EINVAL;
}
