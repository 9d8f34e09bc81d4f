/*
 * plaint-sla-watchdog: holds every open case to its deadlines. It keeps each
 * case's clocks (first response, resolution, every promise) in memory
 * (sla_book), rebuilt from PostgreSQL at start and kept current by reading
 * the event log, and when a stage comes due it writes sla.warning,
 * sla.breached or case.escalated (up the ladder of sla.json, to the people of
 * routing.json) through plaint_sla_fire(), which records each stage once.
 * Replicas all hold every clock; the record decides who fires, so two
 * replicas never fire one stage twice and either carries on alone.
 *
 * It also looks for bursts of similar complaints (plaint_detect_spikes) and
 * writes one alert.spike per burst.
 *
 * Owns the book, the routing plan, its database connection and timers.
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
#include "pl_time.h"
#include "pl_workflow.h"
#include "route_plan.h"
#include "sla_book.h"

#define PAGE_ROWS 5000
#define CHANGES_MAX "5000"
#define RETRY_MS 1000

static struct {
    int64_t tick_ms;
    int64_t batch;
    int64_t spike_every_ms;
    int64_t spike_window_ms;
    int64_t spike_baseline_ms;
    int64_t spike_factor;
    int64_t spike_min;
} settings;

static const pl_cfg_setting_t table[] = {
    {"PLAINT_SLA_TICK", "100ms", PL_CFG_DURATION, &settings.tick_ms, 10, 5000,
     "how often the watchdog fires what came due and reads new events"},
    {"PLAINT_SLA_BATCH", "2000", PL_CFG_INT, &settings.batch, 1, 100000,
     "stages recorded per database call at most"},
    {"PLAINT_SPIKE_EVERY", "30s", PL_CFG_DURATION, &settings.spike_every_ms, 0, 86400000,
     "how often to look for bursts of similar complaints (0s: never)"},
    {"PLAINT_SPIKE_WINDOW", "1h", PL_CFG_DURATION, &settings.spike_window_ms, 1000, 604800000,
     "the window complaints are counted in"},
    {"PLAINT_SPIKE_BASELINE", "7d", PL_CFG_DURATION, &settings.spike_baseline_ms, 1000,
     31622400000, "the period before the window whose average per window is the baseline"},
    {"PLAINT_SPIKE_FACTOR", "3", PL_CFG_INT, &settings.spike_factor, 1, 1000,
     "a count this many times the baseline is a spike"},
    {"PLAINT_SPIKE_MIN", "10", PL_CFG_INT, &settings.spike_min, 1, 1000000,
     "and at least this many complaints in the window"},
};

static const char SQL_HEAD[] = "SELECT coalesce(max(seq), 0) FROM events";
static const char SQL_PAGE[] = "SELECT * FROM plaint_sla_clocks(NULL, $1::uuid, $2::int)";
static const char SQL_REFRESH[] = "SELECT * FROM plaint_sla_clocks($1::text[]::uuid[], NULL, 1000000)";
static const char SQL_CHANGES[] = "SELECT seq, case_id, type FROM events"
                                  " WHERE seq > $1::bigint ORDER BY seq LIMIT " CHANGES_MAX;
static const char SQL_FIRE[] = "SELECT case_id, clock, stage FROM plaint_sla_fire($1::jsonb, $2)";
static const char SQL_SPIKES[] =
    "SELECT what::text, count, baseline"
    " FROM plaint_detect_spikes($1::interval, $2, $3::interval, $4::numeric, $5::int, $6)";

static const pl_db_stmt_t statements[] = {
    {"head", SQL_HEAD},   {"page", SQL_PAGE},     {"refresh", SQL_REFRESH},
    {"changes", SQL_CHANGES}, {"fire", SQL_FIRE},
};
/* Spike detection has a connection of its own: pl_db runs one statement at a
 * time, and plaint_detect_spikes reads every case of the baseline (1.7 s for
 * 500,000), so on the firing connection it held every due stage back that
 * long (plaint-bench-sla --db: lateness p99 1.5 s with it, 0.46 s without). */
static const pl_db_stmt_t spike_statements[] = {{"spikes", SQL_SPIKES}};

typedef struct watchdog {
    pl_daemon_t *daemon;
    route_plan_t *plan;
    sla_book_t *book;
    pl_db_t *db, *spike_db;
    uv_timer_t *tick, *spike_timer;
    bool loaded, loading, polling, firing, spiking, stopping;
    int64_t last_seq;
    char page_after[40];
    sla_firing_t *batch;
    size_t nbatch;
    pl_metric_t *clocks, *cases, *memory, *lateness, *spikes_total;
    pl_metric_t *fired[3];
} watchdog_t;

static watchdog_t wd;

/* ---- rows ---- */

static int64_t ms_or_none(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? SLA_NO_TIME : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static int stage_or_none(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? -1 : atoi(PQgetvalue(res, row, col));
}

static const char *text_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static void put_rows(watchdog_t *w, const PGresult *res)
{
    for (int i = 0; i < PQntuples(res); i++) {
        const char *state = PQgetvalue(res, i, 2);
        int64_t received = ms_or_none(res, i, 6);
        sla_row_t row = {
            .case_id = PQgetvalue(res, i, 0),
            .case_no = PQgetvalue(res, i, 1),
            .priority = text_or_null(res, i, 3),
            .department = text_or_null(res, i, 4),
            .assignee = text_or_null(res, i, 5),
            .open = pl_wf_state_open(state) && strcmp(state, PL_STATE_RECEIVED) &&
                    strcmp(state, PL_STATE_CLASSIFIED),
            .received_ms = received,
            .due_ms = {ms_or_none(res, i, 7), ms_or_none(res, i, 9), ms_or_none(res, i, 12)},
            .start_ms = {received, received, ms_or_none(res, i, 11)},
            .stage = {stage_or_none(res, i, 8), stage_or_none(res, i, 10),
                      stage_or_none(res, i, 13)},
        };
        if (row.start_ms[PL_SLA_PROMISE] == SLA_NO_TIME)
            row.start_ms[PL_SLA_PROMISE] = received;
        sla_book_put(w->book, &row);
    }
}

/* ---- loading every open case at start ---- */

static void load_page(watchdog_t *w);

static void on_page(PGresult *res, const pl_err_t *err, void *arg)
{
    watchdog_t *w = arg;
    if (err || w->stopping) {
        w->loading = false; /* the next tick starts over from this page */
        return;
    }
    put_rows(w, res);
    int n = PQntuples(res);
    if (n == PAGE_ROWS) {
        snprintf(w->page_after, sizeof w->page_after, "%s", PQgetvalue(res, n - 1, 0));
        load_page(w);
        return;
    }
    w->loading = false;
    w->loaded = true;
    char c[24], k[24], m[24];
    pl_log_info("clocks loaded", "cases", pl_log_int(c, (long long)sla_book_cases(w->book)),
                "clocks", pl_log_int(k, (long long)sla_book_clocks(w->book)), "memory_bytes",
                pl_log_int(m, (long long)sla_book_memory(w->book)), NULL);
}

static void load_page(watchdog_t *w)
{
    char limit[16];
    snprintf(limit, sizeof limit, "%d", PAGE_ROWS);
    const char *params[] = {w->page_after[0] ? w->page_after : NULL, limit};
    if (pl_db_exec(w->db, "page", 2, params, on_page, w) < 0)
        w->loading = false;
}

static void on_head(PGresult *res, const pl_err_t *err, void *arg)
{
    watchdog_t *w = arg;
    if (err || w->stopping) {
        w->loading = false;
        return;
    }
    /* Events after this seq are read from the log, so nothing that happens
     * while the pages load is missed. */
    w->last_seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    w->page_after[0] = '\0';
    load_page(w);
}

/* ---- following the event log ---- */

static bool changes_clocks(const char *type)
{
    static const char *const TYPES[] = {
        PL_EV_ROUTED,   PL_EV_ACKNOWLEDGED, PL_EV_ASSIGNED, PL_EV_REJECTED, PL_EV_SOLUTION_PROPOSED,
        PL_EV_PROMISED, PL_EV_FEEDBACK,     PL_EV_REOPENED, PL_EV_RESOLVED, PL_EV_REVIEWED,
        PL_EV_CLOSED,   PL_EV_NOTED,        PL_EV_ERASED,   NULL};
    return pl_msg_enum_index(TYPES, type) >= 0;
}

typedef struct refresh {
    watchdog_t *w;
    int64_t up_to;
} refresh_t;

static void on_refreshed(PGresult *res, const pl_err_t *err, void *arg)
{
    refresh_t *r = arg;
    watchdog_t *w = r->w;
    w->polling = false;
    if (!err && !w->stopping) {
        put_rows(w, res);
        w->last_seq = r->up_to;
    }
    pl_free(r);
}

static void on_changes(PGresult *res, const pl_err_t *err, void *arg)
{
    watchdog_t *w = arg;
    int n = err || w->stopping ? 0 : PQntuples(res);
    if (n == 0) {
        w->polling = false;
        return;
    }
    int64_t up_to = strtoll(PQgetvalue(res, n - 1, 0), NULL, 10);
    pl_pgarray_t *ids = pl_pgarray_new();
    size_t count = 0;
    for (int i = 0; i < n; i++)
        if (!PQgetisnull(res, i, 1) && changes_clocks(PQgetvalue(res, i, 2))) {
            pl_pgarray_add_str(ids, PQgetvalue(res, i, 1));
            count++;
        }
    if (count == 0) {
        pl_pgarray_destroy(&ids);
        w->last_seq = up_to;
        w->polling = false;
        return;
    }
    refresh_t *r = pl_calloc(1, sizeof *r);
    r->w = w;
    r->up_to = up_to;
    int len;
    const char *value = pl_pgarray_data(ids, &len);
    const int lengths[] = {len}, formats[] = {1};
    if (pl_db_exec_params(w->db, "refresh", 1, &value, lengths, formats, on_refreshed, r) < 0) {
        pl_free(r);
        w->polling = false;
    }
    pl_pgarray_destroy(&ids);
}

static void poll_changes(watchdog_t *w)
{
    char after[24];
    snprintf(after, sizeof after, "%lld", (long long)w->last_seq);
    const char *params[] = {after};
    w->polling = true;
    if (pl_db_exec(w->db, "changes", 1, params, on_changes, w) < 0)
        w->polling = false;
}

/* ---- firing ---- */

static const char *const FIRED_TYPES[3] = {PL_EV_SLA_WARNING, PL_EV_SLA_BREACHED, PL_EV_ESCALATED};

static cJSON *firing_json(const sla_firing_t *f)
{
    char due[PL_RFC3339_MAX];
    cJSON *o = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(o, "case_id", f->case_id);
    pl_json_add_str(o, "clock", pl_sla_kind_name(f->clock));
    pl_json_add_str(o, "due_at", pl_time_format(f->due_ms, due));
    pl_json_add_num(o, "stage", f->stage);
    pl_json_add_str(o, "type", f->type);
    cJSON *data = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(data, "due_at", due);
    if (f->priority)
        pl_json_add_str(data, "priority", f->priority);
    if (f->department)
        pl_json_add_str(data, "department", f->department);
    if (f->assignee)
        pl_json_add_str(data, "assignee", f->assignee);
    if (f->level) {
        pl_json_add_num(data, "level", f->level);
        pl_json_add_str(data, "to", f->to);
        pl_json_add_str(data, "role", pl_sla_role_name(f->role));
        char reason[160];
        snprintf(reason, sizeof reason, "the %s deadline %s passed", pl_sla_kind_name(f->clock),
                 due);
        pl_json_add_str(data, "reason", reason);
    } else {
        pl_json_add_str(data, "to", f->to);
    }
    pl_json_add(o, "data", data);
    return o;
}

static void fire_due(watchdog_t *w);

static void on_fired(PGresult *res, const pl_err_t *err, void *arg)
{
    watchdog_t *w = arg;
    int64_t now = pl_time_now_ms();
    if (w->stopping) /* the book is gone; whoever runs next fires these again */
        return;
    for (size_t i = 0; i < w->nbatch; i++) {
        sla_firing_t *f = &w->batch[i];
        if (err)
            sla_book_retry(w->book, f->case_id, f->clock, f->gen, now + RETRY_MS);
        else
            sla_book_fired(w->book, f->case_id, f->clock, f->gen);
    }
    for (int i = 0; !err && i < PQntuples(res); i++) {
        int stage = atoi(PQgetvalue(res, i, 2));
        pl_metric_inc(w->fired[stage == 0 ? 0 : stage == 1 ? 1 : 2]);
    }
    if (err)
        pl_log_warn("recording due SLA stages failed; retrying", "error", err->message, NULL);
    w->nbatch = 0;
    w->firing = false;
    /* What came due meanwhile (a backlog, the escalation due at the breach)
     * goes now, not a tick later: waiting for the tick capped firing at one
     * batch per tick and added a tick to every chained stage. */
    if (!err)
        fire_due(w);
}

static void fire_due(watchdog_t *w)
{
    int64_t now = pl_time_now_ms();
    size_t n = sla_book_take_due(w->book, now, w->batch, (size_t)settings.batch);
    if (n == 0)
        return;
    cJSON *list = pl_json_must(cJSON_CreateArray());
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(list, firing_json(&w->batch[i]));
        pl_metric_observe(w->lateness, (double)(now - w->batch[i].at_ms) / 1000.0);
    }
    char *text = pl_json_print(list);
    cJSON_Delete(list);
    w->nbatch = n;
    w->firing = true;
    const char *params[] = {text, pl_daemon_instance(w->daemon)};
    if (pl_db_exec(w->db, "fire", 2, params, on_fired, w) < 0)
        on_fired(NULL, &(pl_err_t){.code = PL_EUNAVAIL, .message = "no database connection"}, w);
    pl_free(text);
}

/* ---- spikes ---- */

static void on_spikes(PGresult *res, const pl_err_t *err, void *arg)
{
    watchdog_t *w = arg;
    w->spiking = false;
    for (int i = 0; !err && !w->stopping && i < PQntuples(res); i++) {
        pl_metric_inc(w->spikes_total);
        pl_log_warn("complaint spike", "what", PQgetvalue(res, i, 0), "count",
                    PQgetvalue(res, i, 1), "baseline", PQgetvalue(res, i, 2), NULL);
    }
}

static void on_spike_timer(uv_timer_t *timer)
{
    watchdog_t *w = timer->data;
    if (w->spiking || !pl_db_ready(w->spike_db))
        return;
    char window[48], label[32], baseline[48], factor[24], min[24];
    snprintf(window, sizeof window, "%lld milliseconds", (long long)settings.spike_window_ms);
    pl_duration_format(settings.spike_window_ms, label);
    snprintf(baseline, sizeof baseline, "%lld milliseconds",
             (long long)settings.spike_baseline_ms);
    snprintf(factor, sizeof factor, "%lld", (long long)settings.spike_factor);
    snprintf(min, sizeof min, "%lld", (long long)settings.spike_min);
    const char *params[] = {window, label, baseline, factor, min, pl_daemon_instance(w->daemon)};
    w->spiking = true;
    if (pl_db_exec(w->spike_db, "spikes", 6, params, on_spikes, w) < 0)
        w->spiking = false;
}

/* ---- the tick ---- */

static void on_tick(uv_timer_t *timer)
{
    watchdog_t *w = timer->data;
    if (w->stopping || !pl_db_ready(w->db))
        return;
    if (!w->loaded) {
        if (!w->loading) {
            w->loading = true;
            if (pl_db_exec(w->db, "head", 0, NULL, on_head, w) < 0)
                w->loading = false;
        }
        return;
    }
    if (!w->polling)
        poll_changes(w);
    if (!w->firing)
        fire_due(w);
}

/* ---- daemon hooks ---- */

static void collect(void *arg)
{
    watchdog_t *w = arg;
    if (!w->book)
        return;
    pl_metric_set(w->clocks, (double)sla_book_clocks(w->book));
    pl_metric_set(w->cases, (double)sla_book_cases(w->book));
    pl_metric_set(w->memory, (double)sla_book_memory(w->book));
}

static void register_metrics(watchdog_t *w)
{
    pl_metrics_t *m = pl_daemon_metrics(w->daemon);
    static const double bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 300};
    w->clocks = pl_metrics_gauge(m, "plaint_sla_clocks", "SLA clocks running", NULL);
    w->cases = pl_metrics_gauge(m, "plaint_sla_cases", "cases with a clock running", NULL);
    w->memory = pl_metrics_gauge(m, "plaint_sla_book_bytes", "memory the clocks take", NULL);
    w->lateness = pl_metrics_histogram(m, "plaint_sla_lateness_seconds",
                                       "how late a stage was taken, after its due time", bounds,
                                       sizeof bounds / sizeof *bounds, NULL);
    for (int i = 0; i < 3; i++)
        w->fired[i] = pl_metrics_counter(m, "plaint_sla_fired_total",
                                         "warnings, breaches and escalations recorded, by type",
                                         "type", FIRED_TYPES[i], NULL);
    w->spikes_total = pl_metrics_counter(m, "plaint_sla_spikes_total",
                                         "alert.spike events written", NULL);
    pl_metrics_on_collect(m, collect, w);
}

static route_plan_t *load_plan(const pl_daemon_t *d, pl_err_t *err)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    route_plan_t *plan = route_plan_load(pl_daemon_cfg(d)->config_dir, &errs);
    if (!plan) {
        for (size_t i = 1; i < errs.count; i++)
            fprintf(stderr, "plaint-sla-watchdog: %s\n", errs.items[i].message);
        if (errs.count)
            *err = errs.items[0];
        else
            pl_err_set(err, PL_ECONFIG, "", "cannot load routing.json and sla.json");
        err->code = PL_ECONFIG;
    }
    pl_errlist_reset(&errs);
    return plan;
}

static bool healthy(pl_daemon_t *d, void *arg)
{
    watchdog_t *w = arg;
    if (!w->db || !pl_db_ready(w->db)) {
        pl_daemon_set_health_reason(d, "no database connection");
        return false;
    }
    if (!w->loaded) {
        pl_daemon_set_health_reason(d, "the clocks are still loading");
        return false;
    }
    return true;
}

static void reload(pl_daemon_t *d, void *arg)
{
    watchdog_t *w = arg;
    pl_err_t err;
    pl_err_clear(&err);
    route_plan_t *plan = load_plan(d, &err);
    if (!plan) {
        pl_log_error("reload failed; keeping the SLA and routing config in use", "path",
                     err.path, "error", err.message, NULL);
        return;
    }
    sla_book_set_plan(w->book, plan);
    route_plan_destroy(&w->plan);
    w->plan = plan;
    pl_log_info("SLA and routing config reloaded", NULL);
}

static uv_timer_t *start_timer(watchdog_t *w, uv_timer_cb cb, int64_t every_ms)
{
    uv_timer_t *t = pl_calloc(1, sizeof *t);
    (void)uv_timer_init(pl_daemon_loop(w->daemon), t); /* cannot fail on a live loop */
    t->data = w;
    (void)uv_timer_start(t, cb, (uint64_t)every_ms, (uint64_t)every_ms);
    return t;
}

static int start(pl_daemon_t *d, void *arg, pl_err_t *err)
{
    watchdog_t *w = arg;
    w->daemon = d;
    w->plan = load_plan(d, err);
    if (!w->plan)
        return PL_ECONFIG;
    w->book = sla_book_new(w->plan);
    w->batch = pl_calloc((size_t)settings.batch, sizeof *w->batch);
    register_metrics(w);
    pl_db_opts_t db_opts = {
        .conninfo = pl_daemon_cfg(d)->database_url,
        .app_name = "plaint-sla-watchdog",
        .stmts = statements,
        .nstmts = sizeof statements / sizeof *statements,
        .query_timeout_ms = 60000,
    };
    w->db = pl_db_new(pl_daemon_loop(d), &db_opts);
    w->tick = start_timer(w, on_tick, settings.tick_ms);
    if (settings.spike_every_ms > 0) {
        db_opts.app_name = "plaint-sla-watchdog-spikes";
        db_opts.stmts = spike_statements;
        db_opts.nstmts = sizeof spike_statements / sizeof *spike_statements;
        w->spike_db = pl_db_new(pl_daemon_loop(d), &db_opts);
        w->spike_timer = start_timer(w, on_spike_timer, settings.spike_every_ms);
    }
    pl_log_info("watching SLA clocks", "tick_ms", pl_log_int((char[24]){0}, settings.tick_ms),
                NULL);
    return 0;
}

static void on_timer_closed(uv_handle_t *handle)
{
    pl_free(handle);
}

static void stop(pl_daemon_t *d, void *arg)
{
    watchdog_t *w = arg;
    w->stopping = true;
    if (w->tick)
        uv_close((uv_handle_t *)w->tick, on_timer_closed);
    if (w->spike_timer)
        uv_close((uv_handle_t *)w->spike_timer, on_timer_closed);
    /* A batch in flight either committed (recorded) or not (fired again by
     * whoever runs next): nothing is lost or doubled either way. */
    pl_db_close(&w->db);
    pl_db_close(&w->spike_db);
    sla_book_destroy(&w->book);
    route_plan_destroy(&w->plan);
    pl_free(w->batch);
    pl_daemon_stopped(d);
}

int main(int argc, char **argv)
{
    static pl_daemon_def_t def = {
        .name = "sla-watchdog",
        .summary = "Warns before SLA deadlines, records breaches, escalates up the ladder, and "
                   "raises spike alerts.",
        .settings = table,
        .nsettings = sizeof table / sizeof table[0],
        .needs_db = true,
        .start = start,
        .stop = stop,
        .arg = &wd,
        .metrics_addr_default = "0.0.0.0:9104",
        .healthy = healthy,
        .reload = reload,
    };
    return pl_daemon_run(&def, argc, argv);
}
