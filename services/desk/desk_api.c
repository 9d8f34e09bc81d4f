/*
 * desk_api: the HTTP API's handlers (see desk_api.h).
 *
 * Trusts nothing in a request: path segments, query parameters and bodies
 * are checked before they reach SQL, and reach it only as parameters. Answers
 * built by PostgreSQL (case views, pages of events) are sent as PostgreSQL
 * wrote them.
 */
#include "desk_api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "desk_action.h"
#include "desk_auth.h"
#include "pl_alloc.h"
#include "pl_json.h"
#include "pl_log.h"
#include "pl_msg.h"
#include "pl_time.h"
#include "pl_uuid.h"
#include "pl_workflow.h"

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 500
#define EVENTS_LIMIT_DEFAULT 100
#define EVENTS_LIMIT_MAX 1000
#define CASE_KEY_MAX 64
#define FILTER_MAX 256

static const char SQL_CASE_BY_ID[] =
    "SELECT plaint_case_view(c) FROM cases c WHERE c.case_id = $1::uuid";
static const char SQL_CASE_BY_NO[] = "SELECT plaint_case_view(c) FROM cases c WHERE c.case_no = $1";
static const char SQL_STATE_BY_ID[] =
    "SELECT c.case_id, c.case_no, c.state, c.assignee, c.department, c.reopen_count,"
    "       array_to_string(c.departments, ',')"
    " FROM cases c WHERE c.case_id = $1::uuid";
static const char SQL_STATE_BY_NO[] =
    "SELECT c.case_id, c.case_no, c.state, c.assignee, c.department, c.reopen_count,"
    "       array_to_string(c.departments, ',')"
    " FROM cases c WHERE c.case_no = $1";
static const char SQL_ACT[] = "SELECT done, state, case_no"
                              " FROM plaint_case_act($1::uuid, $2, $3, $4::jsonb, $5::jsonb, $6)";
/* Filters are comma-separated lists ("P1,P2"); NULL = any. */
static const char SQL_CASES[] =
    "SELECT '[' || coalesce(string_agg(x.j::text, ',' ORDER BY x.o), '') || ']',"
    "       max(x.o)::text, count(*)"
    " FROM (SELECT c.received_seq AS o, plaint_case_summary(c) AS j FROM cases c"
    "       WHERE ($1::text IS NULL OR c.state = ANY (string_to_array($1, ',')))"
    "         AND ($2::text IS NULL OR c.department = ANY (string_to_array($2, ','))"
    "              OR c.departments && string_to_array($2, ','))"
    "         AND ($3::text IS NULL OR c.priority = ANY (string_to_array($3, ',')))"
    "         AND ($4::text IS NULL OR c.category = ANY (string_to_array($4, ',')))"
    "         AND ($5::boolean IS NULL OR coalesce(plaint_case_overdue(c), false) = $5)"
    "         AND ($6::bigint IS NULL OR c.received_seq > $6::bigint)"
    "         AND ($10::uuid IS NULL OR c.received_seq >"
    "              (SELECT k.received_seq FROM cases k WHERE k.case_id = $10::uuid))"
    "         AND ($8::text IS NULL OR c.channel = ANY (string_to_array($8, ',')))"
    "         AND ($9::text IS NULL OR c.assignee = ANY (string_to_array($9, ',')))"
    "       ORDER BY c.received_seq LIMIT $7::int) x";
static const char SQL_STATS[] = "SELECT plaint_stats($1::timestamptz, $2::timestamptz, $3::text)";
static const char SQL_DASHBOARD[] = "SELECT plaint_dashboard(interval '2 hours')";
static const char SQL_ERASE[] =
    "SELECT '[' || coalesce(string_agg(to_json(e.case_no)::text, ',' ORDER BY e.case_no), '')"
    "       || ']', count(*)"
    " FROM plaint_erase_customer($1, $2, $3, $4, $5, $6) e";
static const char SQL_EVENTS[] = "SELECT body, last_seq FROM plaint_events_page($1::bigint, $2::int)";

static const pl_db_stmt_t statements[] = {
    {"case_by_id", SQL_CASE_BY_ID}, {"case_by_no", SQL_CASE_BY_NO},
    {"state_by_id", SQL_STATE_BY_ID}, {"state_by_no", SQL_STATE_BY_NO},
    {"act", SQL_ACT},               {"cases", SQL_CASES},
    {"events", SQL_EVENTS},         {"stats", SQL_STATS},
    {"dashboard", SQL_DASHBOARD},   {"erase", SQL_ERASE},
};

const pl_db_stmt_t *desk_api_statements(size_t *n)
{
    *n = sizeof statements / sizeof statements[0];
    return statements;
}

typedef enum {
    R_SUBMIT,
    R_CASE,
    R_CASES,
    R_ACTION,
    R_EVENTS,
    R_STATS,
    R_DASHBOARD,
    R_ERASE,
    R_COUNT
} route_t;

static const char *const ROUTE_NAMES[R_COUNT] = {"submit", "case",   "cases",
                                                  "action", "events", "stats",
                                                  "dashboard", "erasure"};
static const char *const CLASSES[3] = {"2xx", "4xx", "5xx"};

struct desk_api {
    desk_api_opts_t opts;
    pl_metric_t *requests[R_COUNT][3];
    pl_metric_t *seconds[R_COUNT];
    pl_metric_t *actions_done, *conflicts;
};

/* One request between its handler and its answer. */
typedef struct call {
    desk_api_t *api;
    pl_http_req_t *req;
    route_t route;
    uint64_t t0;
    const desk_caller_t *who; /* borrowed from the auth table */
    desk_action_t *action;
    char case_key[CASE_KEY_MAX + 1];
    char state[32];
    char next[32];
    long limit; /* of a list */
    int races;  /* lost to a concurrent change so far */
} call_t;

static call_t *call_new(desk_api_t *api, pl_http_req_t *req, route_t route)
{
    call_t *c = pl_calloc(1, sizeof *c);
    c->api = api;
    c->req = req;
    c->route = route;
    c->t0 = uv_hrtime();
    return c;
}

static void call_count(call_t *c, int status)
{
    int cls = status >= 500 ? 2 : status >= 400 ? 1 : 0;
    pl_metric_inc(c->api->requests[c->route][cls]);
    pl_metric_observe(c->api->seconds[c->route], (double)(uv_hrtime() - c->t0) / 1e9);
}

static void call_free(call_t *c)
{
    desk_action_destroy(&c->action);
    pl_free(c);
}

static void answer_text(call_t *c, int status, const char *json)
{
    call_count(c, status);
    pl_http_respond(c->req, status, "application/json", json, strlen(json));
    call_free(c);
}

static void answer_json(call_t *c, int status, cJSON **json_p)
{
    call_count(c, status);
    pl_http_respond_json(c->req, status, json_p);
    call_free(c);
}

static void answer_error(call_t *c, int status, const char *code, const char *message,
                         const pl_errlist_t *errs)
{
    call_count(c, status);
    pl_http_respond_error(c->req, status, code, message, errs);
    call_free(c);
}

static void answer_db_error(call_t *c, const pl_err_t *err)
{
    if (err && err->code == PL_EINVAL) {
        pl_log_warn("the database refused a request", "route", ROUTE_NAMES[c->route], "error",
                    err->message, NULL);
        answer_error(c, 400, "invalid", "the database refused the request's values", NULL);
        return;
    }
    answer_error(c, 503, "unavailable",
                 "the database is unavailable; nothing was changed: try again", NULL);
}

static void answer_unavailable(call_t *c)
{
    answer_db_error(c, NULL);
}

/* When errs holds problems with the request, answers 400 listing them (the
 * message: the only one, or several when there are more and several is not
 * NULL), empties errs and returns true. */
static bool answer_if_invalid(call_t *c, pl_errlist_t *errs, const char *several)
{
    if (!errs->count)
        return false;
    answer_error(c, 400, "invalid",
                 errs->count > 1 && several ? several : errs->items[0].message, errs);
    pl_errlist_reset(errs);
    return true;
}

/* ---- who is calling ---- */

#define STAFF (PL_ROLE_AGENT | PL_ROLE_SUPERVISOR | PL_ROLE_ADMIN)
#define ANYONE (STAFF | PL_ROLE_INTEGRATOR)

/* Authenticates the request for a route open to roles; answers 401 or 403
 * and returns false when the caller may not. */
static bool admit(call_t *c, unsigned roles)
{
    c->who = desk_auth_check(c->api->opts.auth, pl_http_req_header(c->req, "Authorization"));
    if (!c->who) {
        (void)pl_http_req_set_header(c->req, "WWW-Authenticate", "Bearer realm=\"plaint\"");
        answer_error(c, 401, "unauthorized",
                     "a valid bearer token is required: send the header Authorization: Bearer "
                     "TOKEN (plaintctl token makes one; desk.json lists them)",
                     NULL);
        return false;
    }
    if (!(c->who->role & roles)) {
        char message[200];
        snprintf(message, sizeof message, "the role %s may not use %s",
                 pl_role_name(c->who->role), ROUTE_NAMES[c->route]);
        answer_error(c, 403, "forbidden", message, NULL);
        return false;
    }
    return true;
}

/* Whether an agent's department is among a case's departments (a list
 * joined by commas); everyone else sees every case. */
static bool in_scope(const desk_caller_t *who, const char *departments)
{
    if (who->role != PL_ROLE_AGENT)
        return true;
    size_t n = strlen(who->department);
    for (const char *p = departments; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && !strncmp(p, who->department, n))
            return true;
        p = comma ? comma + 1 : p + len;
    }
    return false;
}

/* "+86 138 0013 8000" -> "*******8000"; "li.wei@example.com" -> "l***@example.com". */
static void mask_value(cJSON *customer, const char *name)
{
    const char *v = pl_json_str(customer, name, NULL);
    if (!v)
        return;
    char masked[256];
    size_t len = strlen(v);
    const char *at = strchr(v, '@');
    if (at && at > v)
        snprintf(masked, sizeof masked, "%c***%.200s", v[0], at);
    else if (len > 4)
        snprintf(masked, sizeof masked, "****%.4s", v + len - 4);
    else
        snprintf(masked, sizeof masked, "****");
    cJSON_ReplaceItemInObjectCaseSensitive(customer, name,
                                           pl_json_must(cJSON_CreateString(masked)));
}

static void mask_case(cJSON *kase)
{
    cJSON *customer = cJSON_GetObjectItemCaseSensitive(kase, "customer");
    mask_value(customer, "phone");
    mask_value(customer, "email");
}

/* Departments of a case view as "a,b". */
static void departments_of(const cJSON *kase, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(kase, "departments")) {
        if (cJSON_IsString(d) && used < size)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? "," : "",
                                     d->valuestring);
    }
}

/* ---- the case key: a UUID or a case number ---- */

static bool case_no_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CASE_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

/* Copies the first path segment of rest into key; false when it is not a
 * plausible id (the answer is then 404: no such case). */
static bool read_key(const char *rest, char *key, size_t size, const char **after)
{
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n >= size)
        return false;
    memcpy(key, rest, n);
    key[n] = '\0';
    *after = slash ? slash : "";
    return pl_uuid_valid(key) || case_no_ok(key);
}

static const char *by(const char *key, const char *by_id, const char *by_no)
{
    return pl_uuid_valid(key) ? by_id : by_no;
}

/* ---- GET /v1/cases/{id} ---- */

static void on_case(PGresult *res, const pl_err_t *err, void *arg)
{
    call_t *c = arg;
    if (err) {
        answer_db_error(c, err);
        return;
    }
    if (PQntuples(res) == 0) {
        answer_error(c, 404, "not_found", "no case has this case_id or case_no", NULL);
        return;
    }
    if (c->who->pii && c->who->role != PL_ROLE_AGENT) {
        answer_text(c, 200, PQgetvalue(res, 0, 0));
        return;
    }
    cJSON *kase = cJSON_Parse(PQgetvalue(res, 0, 0)); /* our own SQL's JSON */
    char depts[1024];
    departments_of(kase, depts, sizeof depts);
    if (!kase || !in_scope(c->who, depts)) {
        cJSON_Delete(kase);
        answer_error(c, 403, "forbidden", "this case is not one of your department's cases", NULL);
        return;
    }
    if (!c->who->pii)
        mask_case(kase);
    answer_json(c, 200, &kase);
}

static void get_case(call_t *c, const char *key)
{
    const char *params[] = {key};
    if (desk_db_exec(c->api->opts.db, by(key, "case_by_id", "case_by_no"), 1, params, on_case, c) <
        0)
        answer_unavailable(c);
}

/* ---- POST /v1/cases/{id}/actions ---- */

static void answer_conflict(call_t *c, const char *state)
{
    const pl_wf_action_t *def = desk_action_def(c->action);
    const char *allowed[16];
    size_t n = pl_wf_allowed(state, allowed, 16);
    cJSON *list = pl_json_must(cJSON_CreateArray());
    char names[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        cJSON_AddItemToArray(list, pl_json_must(cJSON_CreateString(allowed[i])));
        used += (size_t)snprintf(names + used, used < sizeof names ? sizeof names - used : 0,
                                 "%s%s", i ? ", " : "", allowed[i]);
    }
    char message[512];
    snprintf(message, sizeof message,
             "action \"%s\" is not allowed in state \"%s\"; allowed there: %s", def->name, state,
             n ? names : "none");
    cJSON *inner = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(inner, "code", "conflict");
    pl_json_add_str(inner, "message", message);
    pl_json_add_str(inner, "state", state);
    pl_json_add_str(inner, "action", def->name);
    pl_json_add(inner, "allowed", list);
    pl_json_add(inner, "errors", pl_json_must(cJSON_CreateArray()));
    cJSON *body = pl_json_must(cJSON_CreateObject());
    pl_json_add(body, "error", inner);
    pl_metric_inc(c->api->conflicts);
    answer_json(c, 409, &body);
}

static void decide(call_t *c, const char *state);

static void on_acted(PGresult *res, const pl_err_t *err, void *arg)
{
    call_t *c = arg;
    if (err) {
        answer_db_error(c, err);
        return;
    }
    if (PQntuples(res) == 0) {
        answer_error(c, 404, "not_found", "no case has this case_id or case_no", NULL);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t")) { /* someone else changed the state first */
        decide(c, PQgetvalue(res, 0, 1));
        return;
    }
    pl_metric_inc(c->api->actions_done);
    cJSON *body = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(body, "case_id", c->case_key);
    pl_json_add_str(body, "case_no", PQgetvalue(res, 0, 2));
    pl_json_add_str(body, "action", desk_action_def(c->action)->name);
    pl_json_add_str(body, "previous_state", c->state);
    pl_json_add_str(body, "state", c->next);
    pl_json_add_str(body, "actor", desk_action_actor(c->action));
    pl_log_info("case action", "case_id", c->case_key, "action", desk_action_def(c->action)->name,
                "state", c->next, "actor", desk_action_actor(c->action), NULL);
    answer_json(c, 200, &body);
}

/* Decides the action on the case's state and applies it: 409 when the state
 * does not allow it. After a lost race it runs again on the state the winner
 * left, a few times at most, so a note that raced an acknowledge still lands. */
#define RACES_MAX 5

static void decide(call_t *c, const char *state)
{
    if (state != c->state) /* copying a buffer onto itself is undefined */
        snprintf(c->state, sizeof c->state, "%s", state);
    const char *next = desk_action_next(c->action, c->state);
    if (!next || c->races++ >= RACES_MAX) {
        answer_conflict(c, c->state);
        return;
    }
    snprintf(c->next, sizeof c->next, "%s", next);
    cJSON *patch = desk_action_patch(c->action);
    /* The previous assignee, department and reopen count in the events come
     * from the row plaint_case_act locks, not from here. */
    cJSON *events = desk_action_events(c->action, NULL, NULL, 0);
    char *patch_text = pl_json_print(patch);
    char *events_text = pl_json_print(events);
    cJSON_Delete(patch);
    cJSON_Delete(events);
    const char *params[] = {c->case_key, c->state, c->next, patch_text, events_text,
                            c->api->opts.source};
    int rc = desk_db_exec(c->api->opts.db, "act", 6, params, on_acted, c);
    pl_free(patch_text);
    pl_free(events_text);
    if (rc < 0)
        answer_unavailable(c);
}

static void on_state(PGresult *res, const pl_err_t *err, void *arg)
{
    call_t *c = arg;
    if (err) {
        answer_db_error(c, err);
        return;
    }
    if (PQntuples(res) == 0) {
        answer_error(c, 404, "not_found", "no case has this case_id or case_no", NULL);
        return;
    }
    snprintf(c->case_key, sizeof c->case_key, "%s", PQgetvalue(res, 0, 0));
    snprintf(c->state, sizeof c->state, "%s", PQgetvalue(res, 0, 2));
    const pl_wf_action_t *def = desk_action_def(c->action);
    if (!(def->roles & c->who->role)) {
        char message[200];
        snprintf(message, sizeof message, "the role %s may not %s a case",
                 pl_role_name(c->who->role), def->name);
        answer_error(c, 403, "forbidden", message, NULL);
        return;
    }
    if (!in_scope(c->who, PQgetvalue(res, 0, 6))) {
        answer_error(c, 403, "forbidden", "this case is not one of your department's cases", NULL);
        return;
    }
    decide(c, c->state);
}

static void post_action(call_t *c, const char *key)
{
    size_t len;
    const char *body = pl_http_req_body(c->req, &len);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    cJSON *root = pl_json_parse(body, len, PL_JSON_DEPTH_MAX, &errs);
    bool open = desk_auth_is_open(c->api->opts.auth);
    const cJSON *actor = root ? cJSON_GetObjectItemCaseSensitive(root, "actor") : NULL;
    if (root && !open && cJSON_IsString(actor) && strcmp(actor->valuestring, c->who->name)) {
        cJSON_Delete(root);
        answer_error(c, 403, "forbidden",
                     "actor must be the authenticated user (or left out: it is taken from the "
                     "token)",
                     NULL);
        return;
    }
    if (root)
        c->action = desk_action_new(root, open ? NULL : c->who->name, pl_time_now_ms(), &errs);
    cJSON_Delete(root);
    if (!c->action) {
        answer_error(c, pl_errlist_code(&errs) == PL_ETOOLARGE ? 413 : 400,
                     pl_errlist_code(&errs) == PL_ETOOLARGE ? "too_large" : "invalid",
                     errs.count == 1 ? errs.items[0].message
                                     : "the action has several problems; see errors",
                     &errs);
        pl_errlist_reset(&errs);
        return;
    }
    pl_errlist_reset(&errs);
    const char *params[] = {key};
    if (desk_db_exec(c->api->opts.db, by(key, "state_by_id", "state_by_no"), 1, params, on_state,
                     c) < 0)
        answer_unavailable(c);
}

/* ---- routing of /v1/cases/... ---- */

static void on_cases_prefix(pl_http_req_t *req, void *arg)
{
    desk_api_t *api = arg;
    bool post = !strcmp(pl_http_req_method(req), "POST");
    call_t *c = call_new(api, req, post ? R_ACTION : R_CASE);
    if (!admit(c, STAFF))
        return;
    char key[CASE_KEY_MAX + 1];
    const char *after;
    if (!read_key(pl_http_req_path_rest(req), key, sizeof key, &after)) {
        answer_error(c, 404, "not_found", "no case has this case_id or case_no", NULL);
        return;
    }
    if (!post && (!*after || !strcmp(after, "/"))) {
        get_case(c, key);
        return;
    }
    if (post && !strcmp(after, "/actions")) {
        post_action(c, key);
        return;
    }
    answer_error(c, 404, "not_found",
                 post ? "unknown path; actions are posted to /v1/cases/{id}/actions"
                      : "unknown path; a case is at /v1/cases/{case_id or case_no}",
                 NULL);
}

/* ---- GET /v1/cases ---- */

/* Reads query parameter name into buf; NULL when absent. A bad value is an
 * error in errs. */
static const char *query(pl_http_req_t *req, const char *name, char *buf, size_t size,
                         pl_errlist_t *errs)
{
    int n = pl_http_query_get(req, name, buf, size);
    if (n == PL_ENOTFOUND || n == 0)
        return NULL;
    if (n < 0) {
        pl_errlist_add(errs, PL_EINVAL, name, "%s is %s", name,
                       n == PL_ETOOLARGE ? "too long" : "not a valid %-encoded value");
        return NULL;
    }
    return buf;
}

static int64_t query_int(pl_http_req_t *req, const char *name, int64_t fallback, int64_t min,
                         int64_t max, pl_errlist_t *errs)
{
    char buf[32];
    const char *v = query(req, name, buf, sizeof buf, errs);
    if (!v)
        return fallback;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || end == v || n < min || n > max) {
        pl_errlist_add(errs, PL_EINVAL, name, "%s must be a whole number from %lld to %lld", name,
                       (long long)min, (long long)max);
        return fallback;
    }
    return n;
}

/* A list cursor: the received_seq of the last case of a page (digits). */
static bool cursor_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 18)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static void on_cases(PGresult *res, const pl_err_t *err, void *arg)
{
    call_t *c = arg;
    if (err) {
        answer_db_error(c, err);
        return;
    }
    long count = atol(PQgetvalue(res, 0, 2));
    long limit = c->limit;
    const char *last = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
    const char *list = PQgetvalue(res, 0, 0);
    char *masked = NULL;
    if (!c->who->pii) {
        cJSON *cases = cJSON_Parse(list); /* our own SQL's JSON */
        cJSON *k;
        cJSON_ArrayForEach(k, cases)
            mask_case(k);
        masked = cases ? pl_json_print(cases) : NULL;
        cJSON_Delete(cases);
    }
    char *body = pl_sprintf("{\"cases\":%s,\"count\":%ld,\"next\":%s%s%s}",
                            masked ? masked : list, count, last && count == limit ? "\"" : "",
                            last && count == limit ? last : "null",
                            last && count == limit ? "\"" : "");
    pl_free(masked);
    answer_text(c, 200, body);
    pl_free(body);
}

static void on_cases_list(pl_http_req_t *req, void *arg)
{
    desk_api_t *api = arg;
    call_t *c = call_new(api, req, R_CASES);
    if (!admit(c, STAFF))
        return;
    pl_errlist_t errs = PL_ERRLIST_INIT;
    char state[FILTER_MAX], dept[FILTER_MAX], prio[FILTER_MAX], cat[FILTER_MAX], after[64],
        overdue[8], channel[FILTER_MAX], assignee[FILTER_MAX];
    const char *p_state = query(req, "state", state, sizeof state, &errs);
    const char *p_dept = query(req, "department", dept, sizeof dept, &errs);
    const char *p_prio = query(req, "priority", prio, sizeof prio, &errs);
    const char *p_cat = query(req, "category", cat, sizeof cat, &errs);
    const char *p_after = query(req, "after", after, sizeof after, &errs);
    const char *p_overdue = query(req, "overdue", overdue, sizeof overdue, &errs);
    const char *p_channel = query(req, "channel", channel, sizeof channel, &errs);
    const char *p_assignee = query(req, "assignee", assignee, sizeof assignee, &errs);
    int64_t limit = query_int(req, "limit", LIST_LIMIT_DEFAULT, 1, LIST_LIMIT_MAX, &errs);
    if (c->who->role == PL_ROLE_AGENT) { /* an agent lists their department's cases */
        if (p_dept && strcmp(p_dept, c->who->department))
            pl_errlist_add(&errs, PL_EINVAL, "department",
                           "an agent lists only the cases of their own department");
        p_dept = c->who->department;
    }
    /* The cursor "next" gave, or the case_id of the last case seen. */
    const char *p_after_id = p_after && pl_uuid_valid(p_after) ? p_after : NULL;
    if (p_after_id)
        p_after = NULL;
    else if (p_after && !cursor_ok(p_after))
        pl_errlist_add(&errs, PL_EINVAL, "after",
                       "after must be the \"next\" cursor of the previous page, or a case_id");
    if (p_overdue && strcmp(p_overdue, "true") && strcmp(p_overdue, "false"))
        pl_errlist_add(&errs, PL_EINVAL, "overdue", "overdue must be true or false");
    if (answer_if_invalid(c, &errs, "the query has several problems"))
        return;
    c->limit = (long)limit;
    char l[24];
    snprintf(l, sizeof l, "%lld", (long long)limit);
    const char *params[] = {p_state, p_dept, p_prio, p_cat, p_overdue, p_after, l,
                            p_channel, p_assignee, p_after_id};
    if (desk_db_exec(api->opts.db, "cases", 10, params, on_cases, c) < 0)
        answer_unavailable(c);
}

/* ---- GET /v1/events ---- */

static void on_events(PGresult *res, const pl_err_t *err, void *arg)
{
    call_t *c = arg;
    if (err) {
        answer_db_error(c, err);
        return;
    }
    char *body = pl_sprintf("{\"events\":%s,\"next\":%s}", PQgetvalue(res, 0, 0),
                            PQgetvalue(res, 0, 1));
    answer_text(c, 200, body);
    pl_free(body);
}

static void on_events_page(pl_http_req_t *req, void *arg)
{
    desk_api_t *api = arg;
    call_t *c = call_new(api, req, R_EVENTS);
    if (!admit(c, ANYONE))
        return;
    pl_errlist_t errs = PL_ERRLIST_INIT;
    int64_t after = query_int(req, "after", 0, 0, INT64_MAX, &errs);
    int64_t limit = query_int(req, "limit", EVENTS_LIMIT_DEFAULT, 1, EVENTS_LIMIT_MAX, &errs);
    if (answer_if_invalid(c, &errs, NULL))
        return;
    char a[24], l[24];
    snprintf(a, sizeof a, "%lld", (long long)after);
    snprintf(l, sizeof l, "%lld", (long long)limit);
    const char *params[] = {a, l};
    if (desk_db_exec(api->opts.db, "events", 2, params, on_events, c) < 0)
        answer_unavailable(c);
}

/* ---- GET /v1/stats ---- */

static const char *const GROUPS[] = {"category", "priority", "department", "channel", "state",
                                     "day",      "hour",     NULL};

static void on_stats(PGresult *res, const pl_err_t *err, void *arg)
{
    call_t *c = arg;
    if (err) {
        answer_db_error(c, err);
        return;
    }
    answer_text(c, 200, PQgetvalue(res, 0, 0));
}

/* Reads an RFC 3339 time parameter into out (formatted again), or fallback_ms. */
static void query_time(pl_http_req_t *req, const char *name, int64_t fallback_ms, char *out,
                       pl_errlist_t *errs)
{
    char buf[64];
    int64_t at = fallback_ms;
    const char *v = query(req, name, buf, sizeof buf, errs);
    pl_err_t err;
    pl_err_clear(&err);
    if (v && pl_time_parse(v, &at, name, &err) < 0) {
        pl_errlist_add(errs, PL_EINVAL, name,
                       "%s must be an RFC 3339 time such as 2026-12-01T00:00:00Z", name);
        at = fallback_ms;
    }
    pl_time_format(at, out);
}

static void on_stats_page(pl_http_req_t *req, void *arg)
{
    desk_api_t *api = arg;
    call_t *c = call_new(api, req, R_STATS);
    if (!admit(c, STAFF))
        return;
    pl_errlist_t errs = PL_ERRLIST_INIT;
    int64_t now = pl_time_now_ms();
    char from[40], to[40], group[32];
    query_time(req, "to", now + 1, to, &errs);
    int64_t to_ms = now + 1;
    pl_err_t ignored;
    if (pl_time_parse(to, &to_ms, "to", &ignored) < 0)
        to_ms = now + 1;
    query_time(req, "from", to_ms - 30LL * 86400 * 1000, from, &errs);
    const char *g = query(req, "group_by", group, sizeof group, &errs);
    if (g && pl_msg_enum_index(GROUPS, g) < 0)
        pl_errlist_add(&errs, PL_EINVAL, "group_by",
                       "group_by must be one of category, priority, department, channel, state, "
                       "day, hour");
    if (answer_if_invalid(c, &errs, "the query has several problems"))
        return;
    const char *params[] = {from, to, g};
    if (desk_db_exec(api->opts.db, "stats", 3, params, on_stats, c) < 0)
        answer_unavailable(c);
}

/* ---- the dashboard: GET / and GET /v1/dashboard ---- */

extern const char desk_dashboard_html[];
extern const size_t desk_dashboard_html_len;

static void on_page(pl_http_req_t *req, void *arg)
{
    call_t *c = call_new(arg, req, R_DASHBOARD);
    call_count(c, 200);
    (void)pl_http_req_set_header(req, "Cache-Control", "no-cache"); /* constant, valid */
    pl_http_respond(req, 200, "text/html; charset=utf-8", desk_dashboard_html,
                    desk_dashboard_html_len);
    call_free(c);
}

static void on_dashboard_data(pl_http_req_t *req, void *arg)
{
    call_t *c = call_new(arg, req, R_DASHBOARD);
    if (!admit(c, STAFF))
        return;
    if (desk_db_exec(c->api->opts.db, "dashboard", 0, NULL, on_stats, c) < 0)
        answer_unavailable(c);
}

/* ---- POST /v1/erasure ---- */

static void on_erased(PGresult *res, const pl_err_t *err, void *arg)
{
    call_t *c = arg;
    if (err) {
        answer_db_error(c, err);
        return;
    }
    pl_log_info("customer data erased", "pseudonym", c->case_key, "cases", PQgetvalue(res, 0, 1),
                "actor", c->who->name, NULL);
    char *body = pl_sprintf("{\"erased_cases\":%s,\"case_nos\":%s,\"pseudonym\":\"%s\"}",
                            PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0), c->case_key);
    answer_text(c, 200, body);
    pl_free(body);
}

/* The body's field name as a string of at most max bytes, or NULL; a wrong
 * type or size is an error. */
static const char *body_string(const cJSON *body, const char *name, size_t max,
                               pl_errlist_t *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!v || cJSON_IsNull(v))
        return NULL;
    if (!cJSON_IsString(v) || !*v->valuestring || strlen(v->valuestring) > max) {
        pl_errlist_add(errs, PL_EINVAL, name, "%s must be a non-empty string of at most %zu bytes",
                       name, max);
        return NULL;
    }
    return v->valuestring;
}

static void on_erase(pl_http_req_t *req, void *arg)
{
    call_t *c = call_new(arg, req, R_ERASE);
    if (!admit(c, PL_ROLE_ADMIN))
        return;
    size_t len;
    const char *text = pl_http_req_body(req, &len);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    cJSON *body = pl_json_parse(text, len, PL_JSON_DEPTH_MAX, &errs);
    const char *id = body_string(body, "customer_id", 128, &errs);
    const char *phone = body_string(body, "phone", 64, &errs);
    const char *email = body_string(body, "email", 254, &errs);
    const char *actor = body_string(body, "actor", 64, &errs);
    if (body && !id && !phone && !email && errs.count == 0)
        pl_errlist_add(&errs, PL_EINVAL, "customer_id",
                       "name the customer: at least one of customer_id, phone or email");
    if (answer_if_invalid(c, &errs, NULL)) {
        cJSON_Delete(body);
        return;
    }
    char uuid[40];
    snprintf(c->case_key, sizeof c->case_key, "anon-%s", pl_uuid_v4(uuid));
    const char *who = desk_auth_is_open(c->api->opts.auth) && actor ? actor : c->who->name;
    const char *params[] = {id, phone, email, c->case_key, who, c->api->opts.source};
    int rc = desk_db_exec(c->api->opts.db, "erase", 6, params, on_erased, c);
    cJSON_Delete(body);
    if (rc < 0)
        answer_unavailable(c);
}

/* ---- POST /v1/complaints ---- */

static void on_submit(pl_http_req_t *req, void *arg)
{
    desk_api_t *api = arg;
    const desk_caller_t *who = desk_auth_check(api->opts.auth, pl_http_req_header(req, "Authorization"));
    if (!who) {
        call_t *c = call_new(api, req, R_SUBMIT);
        (void)admit(c, ANYONE); /* answers 401 */
        return;
    }
    /* The idempotency namespace: the caller's name, or in the open set-up the
     * system the caller names. */
    const char *source = pl_http_req_header(req, "X-Plaint-Source");
    if (!desk_auth_is_open(api->opts.auth) || !source || !*source)
        source = desk_auth_is_open(api->opts.auth) ? "http" : who->name;
    pl_metric_inc(api->requests[R_SUBMIT][0]);
    desk_submit_handle(api->opts.submit, req, source);
}

/* ---- set-up ---- */

static void add_metrics(desk_api_t *api, pl_metrics_t *m)
{
    for (int r = 0; r < R_COUNT; r++) {
        for (int k = 0; k < 3; k++)
            api->requests[r][k] =
                pl_metrics_counter(m, "plaint_desk_requests_total", "API requests answered, by "
                                   "route and status class (submit: received)",
                                   "route", ROUTE_NAMES[r], "status", CLASSES[k], NULL);
        api->seconds[r] =
            pl_metrics_histogram(m, "plaint_desk_request_seconds",
                                 "time from a request to its answer, by route",
                                 pl_metrics_latency_buckets, PL_METRICS_LATENCY_BUCKETS_N,
                                 "route", ROUTE_NAMES[r], NULL);
    }
    api->actions_done = pl_metrics_counter(m, "plaint_desk_actions_total",
                                           "staff actions applied to cases", NULL);
    api->conflicts = pl_metrics_counter(m, "plaint_desk_conflicts_total",
                                        "actions refused with 409 (wrong state or lost race)",
                                        NULL);
}

desk_api_t *desk_api_new(pl_http_server_t *server, const desk_api_opts_t *opts, pl_err_t *err)
{
    desk_api_t *api = pl_calloc(1, sizeof *api);
    api->opts = *opts;
    add_metrics(api, opts->metrics);
    if (pl_http_route(server, "POST", "/v1/complaints", PL_HTTP_EXACT, on_submit, api) < 0 ||
        pl_http_route(server, "GET", "/v1/cases", PL_HTTP_EXACT, on_cases_list, api) < 0 ||
        pl_http_route(server, "GET", "/v1/cases/", PL_HTTP_PREFIX, on_cases_prefix, api) < 0 ||
        pl_http_route(server, "POST", "/v1/cases/", PL_HTTP_PREFIX, on_cases_prefix, api) < 0 ||
        pl_http_route(server, "GET", "/v1/events", PL_HTTP_EXACT, on_events_page, api) < 0 ||
        pl_http_route(server, "GET", "/v1/stats", PL_HTTP_EXACT, on_stats_page, api) < 0 ||
        pl_http_route(server, "GET", "/v1/dashboard", PL_HTTP_EXACT, on_dashboard_data, api) < 0 ||
        pl_http_route(server, "POST", "/v1/erasure", PL_HTTP_EXACT, on_erase, api) < 0 ||
        pl_http_route(server, "GET", "/", PL_HTTP_EXACT, on_page, api) < 0) {
        pl_free(api);
        pl_err_set(err, PL_EINTERNAL, "", "cannot route the desk's API");
        return NULL;
    }
    return api;
}

void desk_api_destroy(desk_api_t **api_p)
{
    pl_free(*api_p);
    *api_p = NULL;
}
