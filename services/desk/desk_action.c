/*
 * desk_action: the body of a staff action, checked (see desk_action.h).
 *
 * Each action has its fields in one table: name, kind, required or not. A
 * field not in the action's table is ignored, so clients may send more than
 * an action needs; a known field of the wrong type or size is an error.
 */
#include "desk_action.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_json.h"
#include "pl_time.h"
#include "pl_utf8.h"

typedef enum { F_TEXT, F_PERSON, F_DEPT, F_TIME, F_BOOL, F_SCORE, F_AMOUNT, F_ENUM } kind_t;

typedef struct field_def {
    const char *name;
    kind_t kind;
    bool required;
} field_def_t;

typedef struct action_fields {
    const char *action;
    field_def_t fields[6];
} action_fields_t;

static const action_fields_t FIELDS[] = {
    {"acknowledge", {{"comment", F_TEXT, false}}},
    {"note", {{"note", F_TEXT, true}, {"customer_contact", F_BOOL, false}}},
    {"assign", {{"assignee", F_PERSON, true}, {"department", F_DEPT, false},
                {"comment", F_TEXT, false}}},
    {"reject", {{"reason", F_TEXT, true}}},
    {"propose", {{"solution", F_TEXT, true}, {"solution_type", F_ENUM, true},
                 {"amount", F_AMOUNT, false}, {"currency", F_TEXT, false}}},
    {"promise", {{"due_at", F_TIME, true}, {"promise", F_TEXT, false}}},
    {"feedback", {{"satisfied", F_BOOL, true}, {"comment", F_TEXT, false}}},
    {"resolve", {{"resolution", F_TEXT, false}}},
    {"reopen", {{"reason", F_TEXT, false}}},
    {"review", {{"comment", F_TEXT, false}}},
    {"close", {{"reason", F_TEXT, false}}},
    {"rate", {{"score", F_SCORE, true}, {"comment", F_TEXT, false}}},
};

static const char *const SOLUTION_TYPES[] = {"refund",  "replacement", "repair",      "compensation",
                                             "apology", "explanation", "other",       NULL};

struct desk_action {
    const pl_wf_action_t *def;
    char actor[DESK_ACTOR_MAX + 1];
    cJSON *values; /* the checked fields, by name */
    bool satisfied;
};

static const action_fields_t *fields_of(const char *action)
{
    for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++)
        if (!strcmp(FIELDS[i].action, action))
            return &FIELDS[i];
    return NULL;
}

bool desk_id_ok(const char *s, bool dept)
{
    size_t n = strlen(s);
    if (n == 0 || n > DESK_ACTOR_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (!dept && (c == '.' || c == '-' || c == '@'));
        if (!ok)
            return false;
    }
    return true;
}

static void allowed_actions(char *buf, size_t size)
{
    size_t n, used = 0;
    const pl_wf_action_t *all = pl_wf_actions(&n);
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", all[i].name);
}

static bool check_text(const cJSON *v, const char *name, pl_errlist_t *errs)
{
    if (!cJSON_IsString(v)) {
        pl_errlist_add(errs, PL_EINVAL, name, "%s must be a string, got %s", name,
                       pl_json_type_name(v));
        return false;
    }
    size_t len = strlen(v->valuestring);
    if (len == 0 || len > DESK_TEXT_MAX) {
        pl_errlist_add(errs, len ? PL_ETOOLARGE : PL_EINVAL, name,
                       "%s is %zu bytes; it must be 1 to %d bytes", name, len, DESK_TEXT_MAX);
        return false;
    }
    return true;
}

static bool check_enum(const cJSON *v, const char *name, pl_errlist_t *errs)
{
    if (!check_text(v, name, errs))
        return false;
    for (size_t i = 0; SOLUTION_TYPES[i]; i++)
        if (!strcmp(SOLUTION_TYPES[i], v->valuestring))
            return true;
    pl_errlist_add(errs, PL_EINVAL, name,
                   "%s must be one of refund, replacement, repair, compensation, apology, "
                   "explanation, other",
                   name);
    return false;
}

static bool check_id(const cJSON *v, const char *name, bool dept, pl_errlist_t *errs)
{
    if (!cJSON_IsString(v)) {
        pl_errlist_add(errs, PL_EINVAL, name, "%s must be a string, got %s", name,
                       pl_json_type_name(v));
        return false;
    }
    if (!desk_id_ok(v->valuestring, dept)) {
        pl_errlist_add(errs, PL_EINVAL, name,
                       dept ? "%s must be a department id: 1 to 64 letters, digits or _"
                            : "%s must be a user id: 1 to 64 letters, digits or . _ - @",
                       name);
        return false;
    }
    return true;
}

static bool check_time(const cJSON *v, const char *name, int64_t now_ms, pl_errlist_t *errs)
{
    if (!cJSON_IsString(v)) {
        pl_errlist_add(errs, PL_EINVAL, name, "%s must be an RFC 3339 time string, got %s", name,
                       pl_json_type_name(v));
        return false;
    }
    int64_t at;
    pl_err_t err;
    pl_err_clear(&err);
    if (pl_time_parse(v->valuestring, &at, name, &err) < 0) {
        pl_errlist_push(errs, &err);
        return false;
    }
    if (at <= now_ms) {
        pl_errlist_add(errs, PL_EINVAL, name, "%s is not in the future; a promise must be", name);
        return false;
    }
    return true;
}

static bool check_number(const cJSON *v, const char *name, kind_t kind, pl_errlist_t *errs)
{
    if (kind == F_BOOL) {
        if (cJSON_IsBool(v))
            return true;
        pl_errlist_add(errs, PL_EINVAL, name, "%s must be true or false, got %s", name,
                       pl_json_type_name(v));
        return false;
    }
    if (!cJSON_IsNumber(v)) {
        pl_errlist_add(errs, PL_EINVAL, name, "%s must be a number, got %s", name,
                       pl_json_type_name(v));
        return false;
    }
    double d = v->valuedouble;
    if (kind == F_SCORE && (d != floor(d) || d < 1 || d > 5)) {
        pl_errlist_add(errs, PL_EINVAL, name, "%s must be a whole number from 1 to 5", name);
        return false;
    }
    if (kind == F_AMOUNT && (d < 0 || d > 1e12)) {
        pl_errlist_add(errs, PL_EINVAL, name, "%s must be from 0 to 1e12", name);
        return false;
    }
    return true;
}

static bool check_field(const field_def_t *f, const cJSON *v, int64_t now_ms, pl_errlist_t *errs)
{
    switch (f->kind) {
    case F_TEXT:
        return check_text(v, f->name, errs);
    case F_ENUM:
        return check_enum(v, f->name, errs);
    case F_PERSON:
    case F_DEPT:
        return check_id(v, f->name, f->kind == F_DEPT, errs);
    case F_TIME:
        return check_time(v, f->name, now_ms, errs);
    default:
        return check_number(v, f->name, f->kind, errs);
    }
}

static const pl_wf_action_t *check_name(const cJSON *body, pl_errlist_t *errs)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "action");
    char list[256];
    allowed_actions(list, sizeof list);
    if (!cJSON_IsString(name)) {
        pl_errlist_add(errs, PL_EINVAL, "action",
                       name ? "action must be a string, got %s; one of %s"
                            : "action is required%.0s; one of %s",
                       pl_json_type_name(name), list);
        return NULL;
    }
    const pl_wf_action_t *def = pl_wf_action(name->valuestring);
    if (!def)
        pl_errlist_add(errs, PL_EINVAL, "action", "unknown action; use one of %s", list);
    return def;
}

static void check_actor(desk_action_t *a, const cJSON *body, const char *actor_default,
                        pl_errlist_t *errs)
{
    const cJSON *actor = cJSON_GetObjectItemCaseSensitive(body, "actor");
    if (cJSON_IsNull(actor)) /* null is absent, as for every other field */
        actor = NULL;
    if (!actor && actor_default) {
        snprintf(a->actor, sizeof a->actor, "%s", actor_default);
        return;
    }
    if (!actor) {
        pl_errlist_add(errs, PL_EINVAL, "actor", "actor is required: the user id acting");
        return;
    }
    if (check_id(actor, "actor", false, errs))
        snprintf(a->actor, sizeof a->actor, "%s", actor->valuestring);
}

desk_action_t *desk_action_new(const cJSON *body, const char *actor_default, int64_t now_ms,
                               pl_errlist_t *errs)
{
    size_t before = errs->count + errs->dropped;
    if (!cJSON_IsObject(body)) {
        pl_errlist_add(errs, PL_EINVAL, "", "the body must be a JSON object, got %s",
                       pl_json_type_name(body));
        return NULL;
    }
    desk_action_t *a = pl_calloc(1, sizeof *a);
    a->values = pl_json_must(cJSON_CreateObject());
    a->def = check_name(body, errs);
    check_actor(a, body, actor_default, errs);
    const action_fields_t *fields = a->def ? fields_of(a->def->name) : NULL;
    for (size_t i = 0; fields && i < sizeof fields->fields / sizeof fields->fields[0]; i++) {
        const field_def_t *f = &fields->fields[i];
        if (!f->name)
            break;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, f->name);
        if (!v || cJSON_IsNull(v)) {
            if (f->required)
                pl_errlist_add(errs, PL_EINVAL, f->name, "%s is required for %s", f->name,
                               a->def->name);
            continue;
        }
        if (!check_field(f, v, now_ms, errs))
            continue;
        if (f->kind == F_TIME) { /* one form, UTC, whatever offset the client wrote */
            int64_t at;
            pl_err_t ignored;
            char utc[PL_RFC3339_MAX];
            (void)pl_time_parse(v->valuestring, &at, f->name, &ignored); /* checked above */
            pl_json_add_str(a->values, f->name, pl_time_format(at, utc));
        } else {
            pl_json_add(a->values, f->name, pl_json_dup(v));
        }
    }
    if (errs->count + errs->dropped > before) {
        desk_action_destroy(&a);
        return NULL;
    }
    a->satisfied = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a->values, "satisfied"));
    return a;
}

void desk_action_destroy(desk_action_t **a_p)
{
    desk_action_t *a = *a_p;
    if (!a)
        return;
    cJSON_Delete(a->values);
    pl_free(a);
    *a_p = NULL;
}

const pl_wf_action_t *desk_action_def(const desk_action_t *a)
{
    return a->def;
}

const char *desk_action_actor(const desk_action_t *a)
{
    return a->actor;
}

const char *desk_action_department(const desk_action_t *a)
{
    return pl_json_str(a->values, "department", NULL);
}

const char *desk_action_next(const desk_action_t *a, const char *state)
{
    return pl_wf_next(a->def, state, a->satisfied);
}

cJSON *desk_action_patch(const desk_action_t *a)
{
    cJSON *patch = pl_json_must(cJSON_CreateObject());
    static const char *const KEYS[] = {"assignee", "department", "satisfied", "score", "due_at",
                                       NULL};
    for (size_t i = 0; KEYS[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(a->values, KEYS[i]);
        if (v)
            pl_json_add(patch, KEYS[i], pl_json_dup(v));
    }
    return patch;
}

static cJSON *event(const char *type, cJSON *data)
{
    cJSON *e = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(e, "type", type);
    pl_json_add(e, "data", data);
    return e;
}

cJSON *desk_action_events(const desk_action_t *a, const char *prev_assignee,
                          const char *prev_department, int reopen_count)
{
    cJSON *data = pl_json_dup(a->values);
    pl_json_add_str(data, "actor", a->actor);
    if (!strcmp(a->def->name, "assign")) {
        pl_json_add_str(data, "previous_assignee", prev_assignee);
        if (!cJSON_HasObjectItem(data, "department"))
            pl_json_add_str(data, "department", prev_department);
    }
    if (!strcmp(a->def->name, "reopen")) {
        pl_json_add_num(data, "reopen_count", reopen_count + 1);
        pl_json_add_str(data, "department", prev_department);
    }
    cJSON *events = pl_json_must(cJSON_CreateArray());
    cJSON_AddItemToArray(events, event(a->def->event, data));
    const char *follow = pl_wf_follow_event(a->def, a->satisfied);
    if (follow) {
        cJSON *more = pl_json_must(cJSON_CreateObject());
        pl_json_add_str(more, "actor", a->actor);
        if (!a->satisfied) {
            pl_json_add_num(more, "reopen_count", reopen_count + 1);
            pl_json_add_str(more, "department", prev_department);
            pl_json_add_str(more, "reason", "the customer is not satisfied with the solution");
        }
        cJSON_AddItemToArray(events, event(follow, more));
    }
    return events;
}
