/*
 * pl_stage: claim, step, complete; sweep; park (see pl_stage.h).
 *
 * Trusts the SQL functions of 0002_stage_handoff.sql and the stage's step;
 * trusts nothing in work messages beyond "a case id to try". Owns its
 * database connection, PULL socket, timers and the jobs in progress.
 */
#include "pl_stage.h"

#include <stdio.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_bus.h"
#include "pl_db.h"
#include "pl_json.h"
#include "pl_log.h"
#include "pl_msg.h"
#include "pl_uuid.h"

static const pl_db_stmt_t statements[] = {
    {"stage_claim", "SELECT plaint_stage_claim($1::uuid, $2, $3::uuid, $4::interval, $5)"},
    {"stage_sweep", "SELECT plaint_stage_sweep($1, $2::uuid, $3::interval, $4::interval,"
                    " $5::int, $6::int, $7, $8, $9::boolean)"},
    {"stage_renew", "SELECT plaint_stage_renew($1::uuid[], $2::uuid[], $3::interval)"},
    {"stage_complete", "SELECT plaint_stage_complete($1::uuid, $2::uuid, $3, $4, $5::jsonb, $6,"
                       " $7::jsonb, $8)"},
    {"stage_complete_capped",
     "SELECT plaint_stage_complete_capped($1::uuid, $2::uuid, $3, $4, $5::jsonb, $6, $7::jsonb,"
     " $8, $9::int)"},
    {"stage_fail", "SELECT plaint_stage_fail($1::uuid, $2::uuid, $3, $4, $5::interval, $6::int,"
                   " $7)"},
    {"stage_release", "SELECT plaint_stage_release($1::uuid, $2::uuid)"},
};

static pl_cfg_setting_t settings[7];

#define DB_CONNECTIONS_MAX 16

struct pl_stage_job {
    pl_stage_t *stage;
    pl_stage_job_t *prev, *next;
    char case_id[PL_UUID_STR];
    char token[PL_UUID_STR];
    cJSON *row;
    int attempt;
    bool ending;   /* done, fail or release sent */
    bool isolated; /* a suspect, running alone in this process */
    int full;      /* completions refused because the agent was at capacity */
    void *data;    /* the step's */
};

struct pl_stage {
    uv_loop_t *loop;
    pl_stage_opts_t opts;
    /* Claims and completions run one statement at a time on a connection, so
     * a stage's throughput is a few statements' latency; several connections
     * carry them side by side (PLAINT_STAGE_DB_CONNECTIONS). */
    pl_db_t *dbs[DB_CONNECTIONS_MAX];
    int ndbs;
    pl_sock_t *pull;
    uv_timer_t *sweep_timer;
    uv_timer_t *grace_timer;
    uv_timer_t *renew_timer;
    pl_stage_job_t *jobs;
    int64_t active; /* claims in flight plus jobs in progress */
    bool sweeping;
    bool renewing;
    bool paused;
    bool isolating; /* a suspect runs: take no other work */
    bool stopping;
    bool abandoned; /* grace ran out: stop without waiting for steps */
    bool in_grace;  /* walking the jobs at grace expiry: finish stopping after */
    int releasing;
    pl_stage_stats_t stats;
    void (*stopped)(void *arg);
    void *stopped_arg;
    char lease[40], patience[40], backoff[40], max_attempts[24];
};

const pl_cfg_setting_t *pl_stage_settings(pl_stage_cfg_t *cfg, size_t *n)
{
    pl_cfg_setting_t table[7] = {
        {"PLAINT_STAGE_LEASE", "30s", PL_CFG_DURATION, &cfg->lease_ms, 100, 86400000,
         "how long a claimed case stays with one replica before others may take it"},
        {"PLAINT_STAGE_SWEEP", "2s", PL_CFG_DURATION, &cfg->sweep_ms, 10, 3600000,
         "how often a stage looks for cases stuck in its input state"},
        {"PLAINT_STAGE_PATIENCE", "5s", PL_CFG_DURATION, &cfg->patience_ms, 0, 86400000,
         "age in its input state at which the sweep takes a case"},
        {"PLAINT_STAGE_BACKOFF", "1s", PL_CFG_DURATION, &cfg->backoff_ms, 0, 3600000,
         "wait after a failed attempt, times the attempts so far"},
        {"PLAINT_STAGE_MAX_ATTEMPTS", "5", PL_CFG_INT, &cfg->max_attempts, 1, 1000,
         "attempts before a case is parked for an operator"},
        {"PLAINT_STAGE_CONCURRENCY", "32", PL_CFG_INT, &cfg->concurrency, 1, 10000,
         "cases in progress at once in one process"},
        {"PLAINT_STAGE_DB_CONNECTIONS", "3", PL_CFG_INT, &cfg->db_connections, 1,
         DB_CONNECTIONS_MAX, "database connections a stage process claims and completes on"},
    };
    memcpy(settings, table, sizeof table);
    *n = 7;
    return settings;
}

/* The ready connection with the fewest statements queued, or NULL. */
static pl_db_t *db_pick(const pl_stage_t *s)
{
    pl_db_t *best = NULL;
    for (int i = 0; i < s->ndbs; i++)
        if (pl_db_ready(s->dbs[i]) && (!best || pl_db_pending(s->dbs[i]) < pl_db_pending(best)))
            best = s->dbs[i];
    return best;
}

static bool db_ready(const pl_stage_t *s)
{
    return db_pick(s) != NULL;
}

static int db_exec(pl_stage_t *s, const char *stmt, int n, const char *const *params, pl_db_cb cb,
                   void *arg)
{
    pl_db_t *db = db_pick(s);
    return db ? pl_db_exec(db, stmt, n, params, cb, arg) : PL_EUNAVAIL;
}

static void interval_text(char *buf, size_t size, int64_t ms)
{
    snprintf(buf, size, "%lld milliseconds", (long long)ms);
}

static void resume_if_room(pl_stage_t *s)
{
    if (s->paused && !s->stopping && !s->isolating && s->active < s->opts.cfg.concurrency) {
        s->paused = false;
        pl_sock_resume(s->pull);
    }
}

static void check_stopped(pl_stage_t *s)
{
    if (s->in_grace)
        return;
    if (s->stopping && (s->active == 0 || s->abandoned) && s->releasing == 0 && s->stopped) {
        void (*done)(void *) = s->stopped;
        s->stopped = NULL;
        if (s->grace_timer)
            (void)uv_timer_stop(s->grace_timer);
        done(s->stopped_arg);
    }
}

/* ---- jobs ---- */

static pl_stage_job_t *job_new(pl_stage_t *s, const char *row_json, const char *token)
{
    cJSON *row = cJSON_Parse(row_json);
    const char *case_id = pl_json_str(row, "case_id", NULL);
    if (!row || !case_id) {
        cJSON_Delete(row);
        return NULL;
    }
    pl_stage_job_t *job = pl_calloc(1, sizeof *job);
    job->stage = s;
    job->row = row;
    snprintf(job->case_id, sizeof job->case_id, "%s", case_id);
    snprintf(job->token, sizeof job->token, "%s", token);
    job->attempt = (int)pl_json_int(row, "stage_attempts", 1);
    /* A case with an earlier attempt comes only from the isolated sweep. */
    job->isolated = job->attempt > 1;
    job->next = s->jobs;
    if (s->jobs)
        s->jobs->prev = job;
    s->jobs = job;
    s->stats.claimed++;
    return job;
}

static void job_free(pl_stage_job_t *job)
{
    pl_stage_t *s = job->stage;
    if (job->prev)
        job->prev->next = job->next;
    else
        s->jobs = job->next;
    if (job->next)
        job->next->prev = job->prev;
    if (job->isolated)
        s->isolating = false;
    cJSON_Delete(job->row);
    pl_free(job);
    s->active--;
    resume_if_room(s);
    check_stopped(s);
}

static void start_job(pl_stage_t *s, const char *row_json, const char *token)
{
    pl_stage_job_t *job = job_new(s, row_json, token);
    if (!job) {
        s->active--;
        pl_log_error("claimed case is unreadable", "stage", s->opts.name, NULL);
        return;
    }
    if (job->isolated) {
        /* Until it ends, nothing else runs here: if this case kills the
         * process, it is the only one charged an attempt. */
        s->isolating = true;
        if (!s->paused) {
            s->paused = true;
            pl_sock_pause(s->pull);
        }
        char n[24];
        pl_log_info("retrying a case alone", "stage", s->opts.name, "case_id", job->case_id,
                    "attempt", pl_log_int(n, job->attempt), NULL);
    }
    s->opts.step(job, s->opts.arg);
}

const cJSON *pl_stage_job_case(const pl_stage_job_t *job)
{
    return job->row;
}

const char *pl_stage_job_case_id(const pl_stage_job_t *job)
{
    return job->case_id;
}

int pl_stage_job_attempt(const pl_stage_job_t *job)
{
    return job->attempt;
}

void pl_stage_job_set_data(pl_stage_job_t *job, void *data)
{
    job->data = data;
}

void *pl_stage_job_data(const pl_stage_job_t *job)
{
    return job->data;
}

/* ---- claiming ---- */

typedef struct claim {
    pl_stage_t *stage;
    char token[PL_UUID_STR];
    int reserved; /* slots counted in active for this call */
} claim_t;

static void on_claimed(PGresult *res, const pl_err_t *err, void *arg)
{
    claim_t *c = arg;
    pl_stage_t *s = c->stage;
    int rows = err ? 0 : PQntuples(res);
    if (err)
        pl_log_warn("claim failed", "stage", s->opts.name, "error", err->message, NULL);
    s->active -= c->reserved - rows;
    for (int r = 0; r < rows; r++)
        start_job(s, PQgetvalue(res, r, 0), c->token);
    pl_free(c);
    resume_if_room(s);
    check_stopped(s);
}

static void claim_one(pl_stage_t *s, const char *case_id)
{
    claim_t *c = pl_calloc(1, sizeof *c);
    c->stage = s;
    c->reserved = 1;
    pl_uuid_v4(c->token);
    const char *params[5] = {case_id, s->opts.input_state, c->token, s->lease, s->opts.owner};
    s->active++;
    if (db_exec(s, "stage_claim", 5, params, on_claimed, c) < 0) {
        s->active--; /* the sweep will find it once the database is back */
        pl_free(c);
    }
}

static void on_swept(PGresult *res, const pl_err_t *err, void *arg)
{
    claim_t *c = arg;
    c->stage->sweeping = false;
    if (!err && PQntuples(res) > 0) {
        char n[24];
        c->stage->stats.swept += (uint64_t)PQntuples(res);
        pl_log_info("swept stuck cases", "stage", c->stage->opts.name, "count",
                    pl_log_int(n, PQntuples(res)), NULL);
    }
    on_claimed(res, err, arg);
}

static void on_sweep_timer(uv_timer_t *timer)
{
    pl_stage_t *s = timer->data;
    int64_t room = s->opts.cfg.concurrency - s->active;
    if (s->sweeping || s->stopping || s->isolating || room <= 0 || !db_ready(s))
        return;
    claim_t *c = pl_calloc(1, sizeof *c);
    c->stage = s;
    c->reserved = (int)room;
    pl_uuid_v4(c->token);
    char limit[24];
    snprintf(limit, sizeof limit, "%lld", (long long)room);
    /* Only a replica with nothing in progress may take a suspect. */
    const char *isolated = s->active == 0 ? "true" : "false";
    const char *params[9] = {s->opts.input_state, c->token, s->lease, s->patience,
                             s->max_attempts, limit, s->opts.name, s->opts.owner, isolated};
    s->active += room;
    s->sweeping = true;
    if (db_exec(s, "stage_sweep", 9, params, on_swept, c) < 0) {
        s->active -= room;
        s->sweeping = false;
        pl_free(c);
    }
}

static void on_work(pl_sock_t *sock, zmq_msg_t *frames, size_t n, void *arg)
{
    pl_stage_t *s = arg;
    (void)sock;
    if (n != 1 || s->stopping)
        return;
    pl_msg_t msg = {0};
    pl_errlist_t errs = PL_ERRLIST_INIT;
    if (s->isolating) /* the sweep finds the case again once the suspect is done */
        return;
    if (pl_msg_parse(zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]), &msg, &errs) == 0) {
        const char *case_id = pl_json_str(msg.data, "case_id", NULL);
        if (case_id && pl_uuid_valid(case_id))
            claim_one(s, case_id);
    }
    pl_errlist_reset(&errs);
    pl_msg_release(&msg);
    if (s->active >= s->opts.cfg.concurrency && !s->paused) {
        /* Leave further work in ZeroMQ's queue, where PUSH steers new
         * messages to replicas with room. */
        s->paused = true;
        pl_sock_pause(s->pull);
    }
}

/* ---- ending jobs ---- */

static void on_completed(PGresult *res, const pl_err_t *err, void *arg)
{
    pl_stage_job_t *job = arg;
    pl_stage_t *s = job->stage;
    if (err)
        /* Outcome unknown: if it did not commit, the lease expires and a
         * sweep does the step again; the state check makes that safe. */
        pl_log_warn("completing a case failed", "stage", s->opts.name, "case_id", job->case_id,
                    "error", err->message, NULL);
    else if (PQgetvalue(res, 0, 0)[0] == 't')
        s->stats.completed++;
    else {
        s->stats.lost_races++;
        pl_log_info("case already moved on; nothing changed", "stage", s->opts.name, "case_id",
                    job->case_id, NULL);
    }
    job_free(job);
}

/* The step decided on counts that other completions have since changed:
 * it runs again, now, on fresh ones. */
#define FULL_RETRIES_MAX 50

static void on_completed_capped(PGresult *res, const pl_err_t *err, void *arg)
{
    pl_stage_job_t *job = arg;
    pl_stage_t *s = job->stage;
    if (err || strcmp(PQgetvalue(res, 0, 0), "full")) {
        if (!err && !strcmp(PQgetvalue(res, 0, 0), "lost")) {
            s->stats.lost_races++;
            job_free(job);
        } else if (!err) {
            s->stats.completed++;
            job_free(job);
        } else {
            on_completed(NULL, err, job);
        }
        return;
    }
    job->ending = false;
    if (++job->full >= FULL_RETRIES_MAX) {
        pl_stage_job_fail(&job, "the chosen assignee was at capacity every time");
        return;
    }
    s->opts.step(job, s->opts.arg);
}

void pl_stage_job_done_capped(pl_stage_job_t **job_p, const char *out_state, cJSON *patch,
                              const char *event_type, cJSON *event_data, int64_t capacity)
{
    if (capacity <= 0) {
        pl_stage_job_done(job_p, out_state, patch, event_type, event_data);
        return;
    }
    pl_stage_job_t *job = *job_p;
    *job_p = NULL;
    pl_stage_t *s = job->stage;
    job->ending = true;
    char *patch_json = pl_json_print(patch ? patch : cJSON_CreateObject());
    char *data_json = pl_json_print(event_data ? event_data : cJSON_CreateObject());
    cJSON_Delete(patch);
    cJSON_Delete(event_data);
    char cap[24];
    snprintf(cap, sizeof cap, "%lld", (long long)capacity);
    const char *params[9] = {job->case_id, job->token, s->opts.input_state, out_state,
                             patch_json, event_type, data_json, s->opts.name, cap};
    int rc = db_exec(s, "stage_complete_capped", 9, params, on_completed_capped, job);
    pl_free(patch_json);
    pl_free(data_json);
    if (rc < 0) {
        pl_log_warn("cannot complete a case now; its lease will expire", "stage", s->opts.name,
                    "case_id", job->case_id, NULL);
        job_free(job);
    }
}

void pl_stage_job_done(pl_stage_job_t **job_p, const char *out_state, cJSON *patch,
                       const char *event_type, cJSON *event_data)
{
    pl_stage_job_t *job = *job_p;
    *job_p = NULL;
    pl_stage_t *s = job->stage;
    job->ending = true;
    char *patch_json = pl_json_print(patch ? patch : cJSON_CreateObject());
    char *data_json = pl_json_print(event_data ? event_data : cJSON_CreateObject());
    cJSON_Delete(patch);
    cJSON_Delete(event_data);
    const char *params[8] = {job->case_id, job->token, s->opts.input_state, out_state,
                             patch_json, event_type, data_json, s->opts.name};
    int rc = db_exec(s, "stage_complete", 8, params, on_completed, job);
    pl_free(patch_json);
    pl_free(data_json);
    if (rc < 0) {
        pl_log_warn("cannot complete a case now; its lease will expire", "stage", s->opts.name,
                    "case_id", job->case_id, NULL);
        job_free(job);
    }
}

static void on_failed(PGresult *res, const pl_err_t *err, void *arg)
{
    pl_stage_job_t *job = arg;
    pl_stage_t *s = job->stage;
    if (!err && PQgetvalue(res, 0, 0)[0] == 't') {
        s->stats.parked++;
        pl_log_warn("case parked", "stage", s->opts.name, "case_id", job->case_id, NULL);
    }
    job_free(job);
}

void pl_stage_job_fail(pl_stage_job_t **job_p, const char *reason)
{
    pl_stage_job_t *job = *job_p;
    *job_p = NULL;
    pl_stage_t *s = job->stage;
    job->ending = true;
    s->stats.failed++;
    char attempt[24];
    pl_log_warn("step failed", "stage", s->opts.name, "case_id", job->case_id, "attempt",
                pl_log_int(attempt, job->attempt), "reason", reason, NULL);
    const char *params[7] = {job->case_id, job->token, s->opts.input_state, reason,
                             s->backoff, s->max_attempts, s->opts.name};
    if (db_exec(s, "stage_fail", 7, params, on_failed, job) < 0)
        job_free(job);
}

/* ---- stopping ---- */

static void on_released(PGresult *res, const pl_err_t *err, void *arg)
{
    pl_stage_t *s = arg;
    (void)res;
    (void)err;
    s->releasing--;
    check_stopped(s);
}

static void on_grace_expired(uv_timer_t *timer)
{
    pl_stage_t *s = timer->data;
    pl_stage_job_t *next;
    s->in_grace = true;
    for (pl_stage_job_t *job = s->jobs; job; job = next) {
        next = job->next;
        if (job->ending)
            continue;
        job->ending = true;
        const char *params[2] = {job->case_id, job->token};
        if (db_exec(s, "stage_release", 2, params, on_released, s) == 0)
            s->releasing++;
        if (s->opts.cancel) {
            s->opts.cancel(job, s->opts.arg);
            job_free(job);
        }
    }
    /* Jobs whose step never ends no longer hold the stop: their claims are
     * handed back (or expire). */
    s->in_grace = false;
    s->abandoned = true;
    check_stopped(s);
}

/* ---- leases ---- */

static void on_renewed(PGresult *res, const pl_err_t *err, void *arg)
{
    pl_stage_t *s = arg;
    (void)res;
    s->renewing = false;
    if (err)
        pl_log_warn("renewing leases failed", "stage", s->opts.name, "error", err->message, NULL);
}

/* Appends "id," to a text array literal being built in buf. */
static void append_id(char **buf, size_t *len, const char *id)
{
    size_t n = strlen(id);
    *buf = pl_realloc(*buf, *len + n + 3);
    memcpy(*buf + *len, id, n);
    *len += n;
    (*buf)[(*len)++] = ',';
    (*buf)[*len] = '\0';
}

static void on_renew_timer(uv_timer_t *timer)
{
    pl_stage_t *s = timer->data;
    if (s->renewing || !s->jobs || !db_ready(s))
        return;
    char *ids = pl_strdup("{"), *tokens = pl_strdup("{");
    size_t ids_len = 1, tokens_len = 1;
    for (pl_stage_job_t *job = s->jobs; job; job = job->next) {
        if (job->ending)
            continue;
        append_id(&ids, &ids_len, job->case_id);
        append_id(&tokens, &tokens_len, job->token);
    }
    if (ids_len > 1) {
        ids[ids_len - 1] = '}';
        tokens[tokens_len - 1] = '}';
        const char *params[3] = {ids, tokens, s->lease};
        s->renewing = db_exec(s, "stage_renew", 3, params, on_renewed, s) == 0;
    }
    pl_free(ids);
    pl_free(tokens);
}

void pl_stage_stop(pl_stage_t *s, int64_t grace_ms, void (*done)(void *arg), void *arg)
{
    s->stopping = true;
    s->stopped = done;
    s->stopped_arg = arg;
    pl_sock_pause(s->pull);
    (void)uv_timer_stop(s->sweep_timer);
    (void)uv_timer_start(s->grace_timer, on_grace_expired, (uint64_t)(grace_ms > 0 ? grace_ms : 1),
                         0);
    check_stopped(s);
}

/* ---- life ---- */

static void on_db_state(pl_db_t *db, pl_db_state_t state, void *arg)
{
    pl_stage_t *s = arg;
    (void)db;
    /* At start and after an outage, cases may be waiting: look now. */
    if (state == PL_DB_READY && !s->stopping)
        on_sweep_timer(s->sweep_timer);
}

static uv_timer_t *timer_new(uv_loop_t *loop, pl_stage_t *s)
{
    uv_timer_t *t = pl_calloc(1, sizeof *t);
    (void)uv_timer_init(loop, t);
    t->data = s;
    return t;
}

pl_stage_t *pl_stage_new(uv_loop_t *loop, void *zctx, const pl_stage_opts_t *opts, pl_err_t *err)
{
    pl_stage_t *s = pl_calloc(1, sizeof *s);
    s->loop = loop;
    s->opts = *opts;
    s->opts.name = pl_strdup(opts->name);
    s->opts.input_state = pl_strdup(opts->input_state);
    s->opts.owner = pl_strdup(opts->owner ? opts->owner : opts->name);
    interval_text(s->lease, sizeof s->lease, opts->cfg.lease_ms);
    interval_text(s->patience, sizeof s->patience, opts->cfg.patience_ms);
    interval_text(s->backoff, sizeof s->backoff, opts->cfg.backoff_ms);
    snprintf(s->max_attempts, sizeof s->max_attempts, "%lld", (long long)opts->cfg.max_attempts);
    s->sweep_timer = timer_new(loop, s);
    s->grace_timer = timer_new(loop, s);
    s->renew_timer = timer_new(loop, s);
    s->pull = pl_sock_new(loop, zctx, ZMQ_PULL, err);
    /* Room for a burst beyond the steps in progress: a work message the hub
     * cannot queue is dropped and the case waits for a sweep (patience). */
    int hwm = (int)(opts->cfg.concurrency > 0 ? opts->cfg.concurrency : 1) * 16;
    if (!s->pull || pl_sock_set_int(s->pull, ZMQ_RCVHWM, hwm, err) < 0 ||
        pl_sock_connect(s->pull, opts->work_endpoint, err) < 0 ||
        pl_sock_start(s->pull, on_work, s, err) < 0) {
        pl_stage_destroy(&s);
        return NULL;
    }
    pl_db_opts_t dbo = {
        .conninfo = opts->conninfo,
        .app_name = s->opts.name,
        .stmts = statements,
        .nstmts = sizeof statements / sizeof statements[0],
        .on_state = on_db_state,
        .arg = s,
    };
    s->ndbs = (int)(opts->cfg.db_connections >= 1 ? opts->cfg.db_connections : 1);
    if (s->ndbs > DB_CONNECTIONS_MAX)
        s->ndbs = DB_CONNECTIONS_MAX;
    for (int i = 0; i < s->ndbs; i++)
        s->dbs[i] = pl_db_new(loop, &dbo);
    uint64_t period = (uint64_t)opts->cfg.sweep_ms;
    (void)uv_timer_start(s->sweep_timer, on_sweep_timer, period, period);
    /* Three renewals per lease: one lost to a slow database still leaves time. */
    uint64_t renew = (uint64_t)(opts->cfg.lease_ms / 3 > 0 ? opts->cfg.lease_ms / 3 : 1);
    (void)uv_timer_start(s->renew_timer, on_renew_timer, renew, renew);
    return s;
}

pl_stage_stats_t pl_stage_stats(const pl_stage_t *s)
{
    return s->stats;
}

static void on_timer_closed(uv_handle_t *handle)
{
    pl_free(handle);
}

void pl_stage_destroy(pl_stage_t **stage_p)
{
    pl_stage_t *s = stage_p ? *stage_p : NULL;
    if (!s)
        return;
    *stage_p = NULL;
    s->stopping = true;
    s->stopped = NULL;
    for (int i = 0; i < s->ndbs; i++)
        pl_db_close(&s->dbs[i]); /* fails statements in flight; their jobs are freed */
    while (s->jobs) {
        pl_stage_job_t *job = s->jobs;
        s->jobs = job->next;
        cJSON_Delete(job->row);
        pl_free(job);
    }
    pl_sock_close(&s->pull);
    uv_close((uv_handle_t *)s->sweep_timer, on_timer_closed);
    uv_close((uv_handle_t *)s->grace_timer, on_timer_closed);
    uv_close((uv_handle_t *)s->renew_timer, on_timer_closed);
    pl_free((char *)s->opts.name);
    pl_free((char *)s->opts.input_state);
    pl_free((char *)s->opts.owner);
    pl_free(s);
}
