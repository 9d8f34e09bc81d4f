/*
 * plaint-classifier: the stage that turns a received case into a classified
 * one. For each case it runs the model (category, priority, sentiment) and
 * the domain rules (safety, legal, media, amounts, VIP ...), looks up the
 * same customer's earlier case in PostgreSQL (repeat_of), and completes the
 * stage with case.classified. A guess below the configured confidence is not
 * passed off as a category: the case goes to triage (signal low_confidence).
 *
 * Replicas share the work through pl_stage; SIGHUP reloads the model and
 * classifier.json, keeping the old ones when the new ones do not load.
 * Owns the model, the rules, its database connection and each job's state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clf_case.h"
#include "clf_model.h"
#include "clf_rules.h"
#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_daemon.h"
#include "pl_db.h"
#include "pl_json.h"
#include "pl_log.h"
#include "pl_msg.h"
#include "pl_stage.h"
#include "pl_time.h"

#ifndef PLAINT_DEFAULT_MODEL
#define PLAINT_DEFAULT_MODEL "share/plaint/default.model"
#endif

static struct {
    const char *work_endpoint;
    const char *model_path;
} settings;

static pl_stage_cfg_t stage_cfg;

static const char SQL_FIND_REPEAT[] =
    "SELECT case_id, channel, age_ms FROM plaint_find_repeat($1::uuid, $2::interval)";

static const pl_db_stmt_t statements[] = {{"find_repeat", SQL_FIND_REPEAT}};

typedef struct classifier {
    pl_daemon_t *daemon;
    clf_model_t *model;
    clf_rules_t *rules;
    pl_db_t *db;
    pl_stage_t *stage;
    pl_metric_t *triaged, *repeats, *reloads, *reload_failures, *seconds;
} classifier_t;

/* One case between its step and the repeat lookup's answer. */
typedef struct pending {
    classifier_t *clf;
    pl_stage_job_t *job; /* NULL once the stage gave up on it (shutdown) */
    clf_case_t *outcome;
    int64_t started_ms;
} pending_t;

static classifier_t classifier;

/* ---- loading ---- */

/* The categories an operator configured; the model may know fewer (a
 * category without training examples is never chosen) but never more. */
static int check_categories(const clf_model_t *model, const char *config_dir, pl_err_t *err)
{
    cJSON *doc = pl_cfg_read_json(config_dir, "categories.json", err);
    if (!doc)
        return err->code;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "categories");
    const char *const *labels;
    size_t n = clf_model_labels(model, CLF_HEAD_CATEGORY, &labels);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool known = false;
        const cJSON *c;
        cJSON_ArrayForEach(c, list) {
            if (!strcmp(pl_json_str(c, "id", ""), labels[i]))
                known = true;
        }
        if (!known) {
            rc = pl_err_set(err, PL_ECONFIG, "categories.json",
                            "the model's category \"%s\" is not in %s/categories.json",
                            labels[i], config_dir);
            pl_err_hint(err, "Add it to categories.json, or retrain the model with "
                             "plaintctl train on examples of the configured categories.");
        }
    }
    cJSON_Delete(doc);
    return rc;
}

static int load(const pl_daemon_t *d, clf_model_t **model_p, clf_rules_t **rules_p, pl_err_t *err)
{
    const char *dir = pl_daemon_cfg(d)->config_dir;
    clf_model_t *model = clf_model_load(settings.model_path, err);
    if (!model) {
        /* Whatever clf_model_load says (not found, I/O, not a model), the cause
         * is the setting PLAINT_CLASSIFIER_MODEL: exit 78 (EX_CONFIG), not 1. */
        if (!err->path[0])
            snprintf(err->path, sizeof err->path, "PLAINT_CLASSIFIER_MODEL");
        if (!err->hint[0])
            pl_err_hint(err, "Train the model again with plaintctl train, or point "
                             "PLAINT_CLASSIFIER_MODEL at a model file it wrote.");
        err->code = PL_ECONFIG;
        return PL_ECONFIG;
    }
    int rc = check_categories(model, dir, err);
    if (rc < 0) {
        clf_model_destroy(&model);
        return rc;
    }
    pl_errlist_t errs = PL_ERRLIST_INIT;
    clf_rules_t *rules = clf_rules_load(dir, &errs);
    if (!rules) {
        for (size_t i = 1; i < errs.count; i++)
            pl_log_error("bad classifier.json", "path", errs.items[i].path, "error",
                         errs.items[i].message, NULL);
        if (errs.count)
            *err = errs.items[0];
        else
            pl_err_set(err, PL_ECONFIG, "classifier.json", "cannot load %s/classifier.json", dir);
        pl_errlist_reset(&errs);
        clf_model_destroy(&model);
        return PL_ECONFIG;
    }
    pl_errlist_reset(&errs);
    *model_p = model;
    *rules_p = rules;
    return 0;
}

/* ---- the step ---- */

static void pending_free(pending_t **p_p)
{
    pending_t *p = *p_p;
    clf_case_destroy(&p->outcome);
    pl_free(p);
    *p_p = NULL;
}

static void finish(pending_t *p)
{
    classifier_t *clf = p->clf;
    cJSON *data = clf_case_json(p->outcome);
    cJSON *patch = pl_json_dup(data);
    if (clf_case_triage(p->outcome))
        pl_metric_inc(clf->triaged);
    pl_metric_observe(clf->seconds, (double)(pl_time_mono_ms() - p->started_ms) / 1000.0);
    pl_log_debug("case classified", "case_id", pl_stage_job_case_id(p->job), "category",
                 clf_case_category(p->outcome), "priority", clf_case_priority(p->outcome), NULL);
    pl_stage_job_done(&p->job, PL_STATE_CLASSIFIED, patch, PL_EV_CLASSIFIED, data);
}

static void on_repeat(PGresult *res, const pl_err_t *err, void *arg)
{
    pending_t *p = arg;
    if (!p->job) { /* the stage gave up on it while we waited */
        pending_free(&p);
        return;
    }
    if (err) {
        pl_stage_job_fail(&p->job, "looking up the customer's earlier cases failed");
        pending_free(&p);
        return;
    }
    if (PQntuples(res) > 0 &&
        clf_case_set_earlier(p->outcome, PQgetvalue(res, 0, 0),
                             strtoll(PQgetvalue(res, 0, 2), NULL, 10), PQgetvalue(res, 0, 1)))
        pl_metric_inc(p->clf->repeats);
    finish(p);
    pending_free(&p);
}

static void step(pl_stage_job_t *job, void *arg)
{
    classifier_t *clf = arg;
    const cJSON *row = pl_stage_job_case(job);
    pending_t *p = pl_calloc(1, sizeof *p);
    p->clf = clf;
    p->job = job;
    p->started_ms = pl_time_mono_ms();
    p->outcome = clf_case_new(clf->model, clf->rules, row);

    int64_t repeat_ms = clf_rules_repeat_window_ms(clf->rules);
    int64_t multi_ms = clf_rules_multi_channel_window_ms(clf->rules);
    char window[40];
    snprintf(window, sizeof window, "%lld milliseconds",
             (long long)(repeat_ms > multi_ms ? repeat_ms : multi_ms));
    const char *params[] = {pl_stage_job_case_id(job), window};
    if (pl_db_exec(clf->db, "find_repeat", 2, params, on_repeat, p) < 0) {
        pl_stage_job_fail(&p->job, "the database is unavailable for the repeat lookup");
        pending_free(&p);
        return;
    }
    pl_stage_job_set_data(job, p);
}

/* Shutdown gave up on a job waiting for its lookup: the lookup's callback
 * still runs (pl_db calls it exactly once) and frees the rest. */
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
    classifier_t *clf = arg;
    if (clf->db && pl_db_ready(clf->db))
        return true;
    pl_daemon_set_health_reason(d, "no database connection");
    return false;
}

static void reload(pl_daemon_t *d, void *arg)
{
    classifier_t *clf = arg;
    clf_model_t *model = NULL;
    clf_rules_t *rules = NULL;
    pl_err_t err;
    pl_err_clear(&err);
    if (load(d, &model, &rules, &err) < 0) {
        pl_metric_inc(clf->reload_failures);
        pl_log_error("reload failed; keeping the model and rules in use", "path", err.path,
                     "error", err.message, NULL);
        return;
    }
    /* Steps copy what they keep from these, so swapping now is safe. */
    clf_model_destroy(&clf->model);
    clf_rules_destroy(&clf->rules);
    clf->model = model;
    clf->rules = rules;
    pl_metric_inc(clf->reloads);
    pl_log_info("model and rules reloaded", "model", settings.model_path, NULL);
}

static void register_metrics(classifier_t *clf)
{
    pl_metrics_t *m = pl_daemon_metrics(clf->daemon);
    static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
    clf->triaged = pl_metrics_counter(m, "plaint_classifier_triage_total",
                                      "cases sent to triage for low confidence", NULL);
    clf->repeats = pl_metrics_counter(m, "plaint_classifier_repeats_total",
                                      "cases linked to the same customer's earlier case", NULL);
    clf->reloads = pl_metrics_counter(m, "plaint_classifier_reloads_total",
                                      "successful reloads of model and rules (SIGHUP)", NULL);
    clf->reload_failures = pl_metrics_counter(m, "plaint_classifier_reload_failures_total",
                                              "reloads that failed (the old ones stay)", NULL);
    clf->seconds = pl_metrics_histogram(m, "plaint_classifier_step_seconds",
                                        "time from claim to completion of one case", bounds,
                                        sizeof bounds / sizeof *bounds, NULL);
}

static int start(pl_daemon_t *d, void *arg, pl_err_t *err)
{
    classifier_t *clf = arg;
    clf->daemon = d;
    int rc = load(d, &clf->model, &clf->rules, err);
    if (rc < 0)
        return rc;
    const char *const *labels;
    size_t ncat = clf_model_labels(clf->model, CLF_HEAD_CATEGORY, &labels);
    char n[24];
    pl_log_info("model loaded", "model", settings.model_path, "categories",
                pl_log_int(n, (long long)ncat), NULL);
    register_metrics(clf);
    pl_db_opts_t db_opts = {
        .conninfo = pl_daemon_cfg(d)->database_url,
        .app_name = "plaint-classifier",
        .stmts = statements,
        .nstmts = sizeof statements / sizeof *statements,
    };
    clf->db = pl_db_new(pl_daemon_loop(d), &db_opts);
    pl_stage_opts_t opts = {
        .name = "classifier",
        .input_state = PL_STATE_RECEIVED,
        .work_endpoint = settings.work_endpoint,
        .conninfo = pl_daemon_cfg(d)->database_url,
        .cfg = stage_cfg,
        .owner = pl_daemon_instance(d),
        .step = step,
        .cancel = cancel,
        .arg = clf,
    };
    clf->stage = pl_stage_new(pl_daemon_loop(d), pl_daemon_zmq(d), &opts, err);
    return clf->stage ? 0 : err->code;
}

static void on_stage_stopped(void *arg)
{
    classifier_t *clf = arg;
    pl_stage_destroy(&clf->stage);
    pl_db_close(&clf->db);
    clf_model_destroy(&clf->model);
    clf_rules_destroy(&clf->rules);
    pl_daemon_stopped(clf->daemon);
}

static void stop(pl_daemon_t *d, void *arg)
{
    classifier_t *clf = arg;
    if (!clf->stage) {
        pl_db_close(&clf->db);
        pl_daemon_stopped(d);
        return;
    }
    pl_stage_stop(clf->stage, 5000, on_stage_stopped, clf);
}

int main(int argc, char **argv)
{
    static pl_cfg_setting_t table[24];
    size_t n = 0;
    const pl_cfg_setting_t *common = pl_stage_settings(&stage_cfg, &n);
    memcpy(table, common, n * sizeof *table);
    /* min 1: a list, to take work from every hub. */
    table[n++] = (pl_cfg_setting_t){"PLAINT_CLASSIFY_ENDPOINT", "tcp://*:7111", PL_CFG_ENDPOINT,
                                    &settings.work_endpoint, 1, 0,
                                    "where the hub hands out work for received cases"};
    table[n++] = (pl_cfg_setting_t){"PLAINT_CLASSIFIER_MODEL", PLAINT_DEFAULT_MODEL,
                                    PL_CFG_STRING, &settings.model_path, 0, 0,
                                    "the model file (plaintctl train); default: the shipped one"};
    static pl_daemon_def_t def = {
        .name = "classifier",
        .summary = "Classifies received complaints: category, priority, sentiment, repeats.",
        .needs_db = true,
        .start = start,
        .stop = stop,
        .arg = &classifier,
        .metrics_addr_default = "0.0.0.0:9102",
        .healthy = healthy,
        .reload = reload,
    };
    def.settings = table;
    def.nsettings = n;
    return pl_daemon_run(&def, argc, argv);
}
