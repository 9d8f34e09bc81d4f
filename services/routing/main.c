/*
 * plaint-routing: the stage that gives a classified case its owner. For each
 * case it picks the responsible department (and every department involved)
 * from routing.json's rules, counts the open cases of that department's
 * agents in PostgreSQL, gives the case to the least-loaded agent on duty who
 * speaks the customer's language (else the department's named queue owner),
 * computes the first-response and resolution due times from sla.json on the
 * department's business calendar, and completes the stage with case.routed.
 *
 * Replicas share the work through pl_stage; SIGHUP reloads the config files,
 * keeping the old plan when the new one does not load. A plan in use by a
 * step waiting for its load query stays alive until that step ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_daemon.h"
#include "pl_db.h"
#include "pl_json.h"
#include "pl_log.h"
#include "pl_msg.h"
#include "pl_pgarray.h"
#include "pl_stage.h"
#include "pl_time.h"
#include "route_plan.h"

#define SIGNALS_MAX 32

static struct {
    const char *work_endpoint;
} settings;

static pl_stage_cfg_t stage_cfg;

static const char SQL_AGENT_LOADS[] = "SELECT agent, open_cases FROM plaint_agent_loads($1::text[])";

static const pl_db_stmt_t statements[] = {{"agent_loads", SQL_AGENT_LOADS}};

/* A loaded plan and the steps still using it. */
typedef struct plan_ref {
    route_plan_t *plan;
    int users; /* the router's own reference counts as one */
} plan_ref_t;

typedef struct router {
    pl_daemon_t *daemon;
    plan_ref_t *current;
    pl_db_t *db;
    pl_stage_t *stage;
    pl_metric_t *fallbacks, *reloads, *reload_failures, *seconds;
} router_t;

/* One case between its decision and the load query's answer. */
typedef struct pending {
    router_t *router;
    pl_stage_job_t *job; /* NULL once the stage gave up on it (shutdown) */
    plan_ref_t *ref;
    route_decision_t decision;
    char priority[4];
    char lang[16];
    int64_t received_ms;
    int64_t started_ms;
} pending_t;

static router_t router;

static plan_ref_t *plan_hold(plan_ref_t *ref)
{
    ref->users++;
    return ref;
}

static void plan_release(plan_ref_t **ref_p)
{
    plan_ref_t *ref = *ref_p;
    *ref_p = NULL;
    if (!ref || --ref->users > 0)
        return;
    route_plan_destroy(&ref->plan);
    pl_free(ref);
}

static plan_ref_t *plan_load(const pl_daemon_t *d, pl_err_t *err)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    route_plan_t *plan = route_plan_load(pl_daemon_cfg(d)->config_dir, &errs);
    if (!plan) {
        for (size_t i = 1; i < errs.count; i++)
            pl_log_error("bad routing config", "path", errs.items[i].path, "error",
                         errs.items[i].message, NULL);
        if (errs.count)
            *err = errs.items[0];
        else
            pl_err_set(err, PL_ECONFIG, "routing.json", "cannot load the routing config");
        pl_errlist_reset(&errs);
        return NULL;
    }
    pl_errlist_reset(&errs);
    plan_ref_t *ref = pl_calloc(1, sizeof *ref);
    ref->plan = plan;
    ref->users = 1;
    return ref;
}

/* ---- the step ---- */

static void pending_free(pending_t **p_p)
{
    pending_t *p = *p_p;
    plan_release(&p->ref);
    pl_free(p);
    *p_p = NULL;
}

static void finish(pending_t *p, const route_load_t *loads, size_t nloads)
{
    router_t *r = p->router;
    const route_plan_t *plan = p->ref->plan;
    const route_decision_t *dec = &p->decision;
    const char *assignee = dec->assignee ? dec->assignee
                                         : route_plan_assignee(plan, dec->department, p->lang,
                                                               pl_time_now_ms(), loads, nloads);
    int64_t first_ms, resolution_ms;
    if (route_plan_due(plan, dec, p->priority, p->received_ms, &first_ms, &resolution_ms) < 0) {
        pl_stage_job_fail(&p->job, "no due time could be computed on the department's calendar");
        return;
    }
    char first[PL_RFC3339_MAX], resolution[PL_RFC3339_MAX];
    cJSON *patch = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(patch, "department", dec->department);
    cJSON *departments = pl_json_must(cJSON_CreateArray());
    for (size_t i = 0; i < dec->ndepartments; i++)
        cJSON_AddItemToArray(departments, pl_json_must(cJSON_CreateString(dec->departments[i])));
    pl_json_add(patch, "departments", departments);
    pl_json_add_str(patch, "assignee", assignee);
    pl_json_add_str(patch, "first_response_due", pl_time_format(first_ms, first));
    pl_json_add_str(patch, "resolution_due", pl_time_format(resolution_ms, resolution));
    cJSON *data = pl_json_dup(patch);
    pl_json_add_str(data, "rule", dec->rule);
    pl_json_add(data, "complex", pl_json_must(cJSON_CreateBool(dec->complex)));
    pl_metric_observe(r->seconds, (double)(pl_time_mono_ms() - p->started_ms) / 1000.0);
    pl_log_debug("case routed", "case_id", pl_stage_job_case_id(p->job), "department",
                 dec->department, "rule", dec->rule, NULL);
    /* The counts may be stale by now (other steps, other replicas): the
     * completion checks the agent's capacity again, under a lock. */
    int64_t capacity = dec->assignee ? 0 : route_plan_capacity(plan, dec->department, assignee);
    pl_stage_job_set_data(p->job, NULL);
    pl_stage_job_done_capped(&p->job, PL_STATE_ROUTED, patch, PL_EV_ROUTED, data, capacity);
}

static void on_loads(PGresult *res, const pl_err_t *err, void *arg)
{
    pending_t *p = arg;
    if (!p->job) {
        pending_free(&p);
        return;
    }
    if (err) {
        pl_stage_job_fail(&p->job, "counting the agents' open cases failed");
        pending_free(&p);
        return;
    }
    int rows = PQntuples(res);
    route_load_t *loads = pl_calloc((size_t)rows + 1, sizeof *loads);
    for (int i = 0; i < rows; i++) {
        loads[i].agent = PQgetvalue(res, i, 0);
        loads[i].open_cases = strtoll(PQgetvalue(res, i, 1), NULL, 10);
    }
    finish(p, loads, (size_t)rows);
    pl_free(loads);
    pending_free(&p);
}

static void read_case(const cJSON *row, route_case_t *c, const char **signals, size_t *nsignals)
{
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(row, "target");
    c->category = pl_json_str(row, "category", NULL);
    c->priority = pl_json_str(row, "priority", NULL);
    c->lang = pl_json_str(row, "lang", NULL);
    c->channel = pl_json_str(row, "channel", NULL);
    c->customer_type = pl_json_str(row, "customer_type", NULL);
    c->target_product = pl_json_str(target, "product", NULL);
    c->target_store = pl_json_str(target, "store", NULL);
    c->target_department = pl_json_str(target, "department", NULL);
    c->target_employee = pl_json_str(target, "employee", NULL);
    c->target_order_id = pl_json_str(target, "order_id", NULL);
    *nsignals = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(row, "signals")) {
        if (cJSON_IsString(s) && *nsignals < SIGNALS_MAX) {
            signals[(*nsignals)++] = s->valuestring;
            if (!strcmp(s->valuestring, "low_confidence"))
                c->triage = true;
        }
    }
    c->signals = signals;
    c->nsignals = *nsignals;
}

static void step(pl_stage_job_t *job, void *arg)
{
    router_t *r = arg;
    const cJSON *row = pl_stage_job_case(job);
    pending_t *p = pl_calloc(1, sizeof *p);
    p->router = r;
    p->job = job;
    p->started_ms = pl_time_mono_ms();
    p->ref = plan_hold(r->current);

    route_case_t c = {0};
    const char *signals[SIGNALS_MAX];
    size_t nsignals;
    read_case(row, &c, signals, &nsignals);
    pl_err_t err;
    pl_err_clear(&err);
    if (pl_time_parse(pl_json_str(row, "received_at", ""), &p->received_ms, "received_at",
                      &err) < 0)
        p->received_ms = pl_time_now_ms();
    c.received_at_ms = p->received_ms;
    snprintf(p->priority, sizeof p->priority, "%s", c.priority ? c.priority : "P2");
    snprintf(p->lang, sizeof p->lang, "%s", c.lang ? c.lang : "");
    if (route_plan_decide(p->ref->plan, &c, &p->decision) < 0) {
        pl_stage_job_fail(&p->job, "no routing rule matched and no fallback is configured");
        pending_free(&p);
        return;
    }
    if (!strcmp(p->decision.rule, "fallback"))
        pl_metric_inc(r->fallbacks);
    if (p->decision.assignee) { /* a named owner (triage, fallback): no load to weigh */
        finish(p, NULL, 0);
        pending_free(&p);
        return;
    }

    const char *const *agents;
    size_t nagents = route_plan_agents(p->ref->plan, p->decision.department, &agents);
    pl_pgarray_t *array = pl_pgarray_new();
    for (size_t i = 0; i < nagents; i++)
        pl_pgarray_add_str(array, agents[i]);
    int len;
    const char *value = pl_pgarray_data(array, &len);
    const int lengths[] = {len}, formats[] = {1};
    int rc = pl_db_exec_params(r->db, "agent_loads", 1, &value, lengths, formats, on_loads, p);
    pl_pgarray_destroy(&array);
    if (rc < 0) {
        pl_stage_job_fail(&p->job, "the database is unavailable for counting open cases");
        pending_free(&p);
        return;
    }
    pl_stage_job_set_data(job, p);
}

static void cancel(pl_stage_job_t *job, void *arg)
{
    (void)arg;
    pending_t *p = pl_stage_job_data(job);
    if (p)
        p->job = NULL;
    pl_stage_job_set_data(job, NULL);
}

/* ---- daemon hooks ---- */

static bool healthy(pl_daemon_t *d, void *arg)
{
    router_t *r = arg;
    if (r->db && pl_db_ready(r->db))
        return true;
    pl_daemon_set_health_reason(d, "no database connection");
    return false;
}

static void reload(pl_daemon_t *d, void *arg)
{
    router_t *r = arg;
    pl_err_t err;
    pl_err_clear(&err);
    plan_ref_t *ref = plan_load(d, &err);
    if (!ref) {
        pl_metric_inc(r->reload_failures);
        pl_log_error("reload failed; keeping the routing config in use", "path", err.path,
                     "error", err.message, NULL);
        return;
    }
    plan_release(&r->current);
    r->current = ref;
    pl_metric_inc(r->reloads);
    pl_log_info("routing config reloaded", NULL);
}

static void register_metrics(router_t *r)
{
    pl_metrics_t *m = pl_daemon_metrics(r->daemon);
    static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
    r->fallbacks = pl_metrics_counter(m, "plaint_routing_fallback_total",
                                      "cases no rule but the fallback matched", NULL);
    r->reloads = pl_metrics_counter(m, "plaint_routing_reloads_total",
                                    "successful reloads of the routing config (SIGHUP)", NULL);
    r->reload_failures = pl_metrics_counter(m, "plaint_routing_reload_failures_total",
                                            "reloads that failed (the old config stays)", NULL);
    r->seconds = pl_metrics_histogram(m, "plaint_routing_step_seconds",
                                      "time from claim to completion of one case", bounds,
                                      sizeof bounds / sizeof *bounds, NULL);
}

static int start(pl_daemon_t *d, void *arg, pl_err_t *err)
{
    router_t *r = arg;
    r->daemon = d;
    r->current = plan_load(d, err);
    if (!r->current)
        return err->code ? err->code : PL_ECONFIG;
    register_metrics(r);
    pl_db_opts_t db_opts = {
        .conninfo = pl_daemon_cfg(d)->database_url,
        .app_name = "plaint-routing",
        .stmts = statements,
        .nstmts = sizeof statements / sizeof *statements,
    };
    r->db = pl_db_new(pl_daemon_loop(d), &db_opts);
    pl_stage_opts_t opts = {
        .name = "routing",
        .input_state = PL_STATE_CLASSIFIED,
        .work_endpoint = settings.work_endpoint,
        .conninfo = pl_daemon_cfg(d)->database_url,
        .cfg = stage_cfg,
        .owner = pl_daemon_instance(d),
        .step = step,
        .cancel = cancel,
        .arg = r,
    };
    r->stage = pl_stage_new(pl_daemon_loop(d), pl_daemon_zmq(d), &opts, err);
    return r->stage ? 0 : err->code;
}

static void on_stage_stopped(void *arg)
{
    router_t *r = arg;
    pl_stage_destroy(&r->stage);
    pl_db_close(&r->db);
    plan_release(&r->current);
    pl_daemon_stopped(r->daemon);
}

static void stop(pl_daemon_t *d, void *arg)
{
    router_t *r = arg;
    if (!r->stage) {
        pl_db_close(&r->db);
        plan_release(&r->current);
        pl_daemon_stopped(d);
        return;
    }
    pl_stage_stop(r->stage, 5000, on_stage_stopped, r);
}

int main(int argc, char **argv)
{
    static pl_cfg_setting_t table[24];
    size_t n = 0;
    const pl_cfg_setting_t *common = pl_stage_settings(&stage_cfg, &n);
    memcpy(table, common, n * sizeof *table);
    /* min 1: a list, to take work from every hub. */
    table[n++] = (pl_cfg_setting_t){"PLAINT_ROUTE_ENDPOINT", "tcp://*:7112", PL_CFG_ENDPOINT,
                                    &settings.work_endpoint, 1, 0,
                                    "where the hub hands out work for classified cases"};
    static pl_daemon_def_t def = {
        .name = "routing",
        .summary = "Routes classified complaints: department, assignee and SLA due times.",
        .needs_db = true,
        .start = start,
        .stop = stop,
        .arg = &router,
        .metrics_addr_default = "0.0.0.0:9103",
        .healthy = healthy,
        .reload = reload,
    };
    def.settings = table;
    def.nsettings = n;
    return pl_daemon_run(&def, argc, argv);
}
