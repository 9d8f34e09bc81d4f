/*
 * pl_stage: the hand-off every pipeline stage (classifier, routing, ...)
 * runs on. PostgreSQL is the truth, ZeroMQ carries the work.
 *
 * A stage owns one input state. Work arrives as stage.work messages on a
 * PULL socket (replicas of a stage share them) and, as a safety net, from a
 * periodic sweep that claims cases sitting in the input state too long (lost
 * messages, crashes, restarts). Each case is claimed with a lease and a token
 * (deploy/sql/0002_stage_handoff.sql); the stage's step function computes
 * and then completes the job, which changes the state and writes the event in
 * one conditional statement, so a redelivered message changes nothing twice.
 * A step that keeps failing parks the case after max_attempts with its reason.
 * A case that already had an attempt is retried in isolation (nothing else in
 * progress in this process), so a case that crashes its process cannot use up
 * other cases' attempts. Leases of steps in progress are renewed, so a slow
 * step is never taken from a live replica.
 */
#ifndef PL_STAGE_H
#define PL_STAGE_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <uv.h>

#include "pl_cfg.h"
#include "pl_err.h"

typedef struct pl_stage pl_stage_t;
typedef struct pl_stage_job pl_stage_job_t;

/* Settings every stage daemon reads (add them to its settings table with
 * pl_stage_settings()). */
typedef struct pl_stage_cfg {
    int64_t lease_ms;     /* PLAINT_STAGE_LEASE: a claim's lifetime */
    int64_t sweep_ms;     /* PLAINT_STAGE_SWEEP: how often to look for stuck cases */
    int64_t patience_ms;  /* PLAINT_STAGE_PATIENCE: age at which the sweep takes a case */
    int64_t backoff_ms;   /* PLAINT_STAGE_BACKOFF: wait after a failed attempt (x attempts) */
    int64_t max_attempts; /* PLAINT_STAGE_MAX_ATTEMPTS: then the case is parked */
    int64_t concurrency;  /* PLAINT_STAGE_CONCURRENCY: jobs in progress at once */
    int64_t db_connections; /* PLAINT_STAGE_DB_CONNECTIONS: statements side by side */
} pl_stage_cfg_t;

/* The settings table entries for cfg (static storage; n receives the count). */
const pl_cfg_setting_t *pl_stage_settings(pl_stage_cfg_t *cfg, size_t *n);

typedef struct pl_stage_opts {
    const char *name;          /* "classifier": the events' source and the logs' stage */
    const char *input_state;   /* "received" */
    const char *work_endpoint; /* PULL connects here ("*" host = 127.0.0.1) */
    const char *conninfo;
    pl_stage_cfg_t cfg;
    const char *owner;         /* this process (pl_daemon_instance), recorded with each claim */
    /* Runs with a claimed case; must end the job with pl_stage_job_done or
     * pl_stage_job_fail, now or later (from the loop). */
    void (*step)(pl_stage_job_t *job, void *arg);
    /* Called when stopping gives up on a job whose step has not ended within
     * the grace period: the step must forget the job (stop its timers); the
     * job is freed right after and its claim handed back. Required when a
     * step can outlast the grace; may be NULL for steps that end at once. */
    void (*cancel)(pl_stage_job_t *job, void *arg);
    void *arg;
} pl_stage_opts_t;

pl_stage_t *pl_stage_new(uv_loop_t *loop, void *zctx, const pl_stage_opts_t *opts, pl_err_t *err);
/* Stops taking work; jobs in progress complete (or are handed back if their
 * step does not end within grace_ms), then done(arg) runs. */
void pl_stage_stop(pl_stage_t *stage, int64_t grace_ms, void (*done)(void *arg), void *arg);
/* NULL-safe; nulls *stage_p. Call after pl_stage_stop's done. */
void pl_stage_destroy(pl_stage_t **stage_p);

/* Counters for metrics and tests. */
typedef struct pl_stage_stats {
    uint64_t claimed, completed, lost_races, failed, parked, swept;
} pl_stage_stats_t;
pl_stage_stats_t pl_stage_stats(const pl_stage_t *stage);

/* The claimed case as JSON (the cases row); borrowed, valid until the job ends. */
const cJSON *pl_stage_job_case(const pl_stage_job_t *job);
const char *pl_stage_job_case_id(const pl_stage_job_t *job);
int pl_stage_job_attempt(const pl_stage_job_t *job);
/* A pointer the step may attach to its job (borrowed; the step owns it). */
void pl_stage_job_set_data(pl_stage_job_t *job, void *data);
void *pl_stage_job_data(const pl_stage_job_t *job);

/* Ends the job: moves the case to out_state, sets the columns in patch
 * (category, priority, ... see plaint_stage_complete) and writes one event of
 * event_type with event_data (case_id, case_no and state are added). Takes
 * patch and event_data (either may be NULL) and the job; nulls *job_p. */
void pl_stage_job_done(pl_stage_job_t **job_p, const char *out_state, cJSON *patch,
                       const char *event_type, cJSON *event_data);
/* Like pl_stage_job_done, for a step that gives the case to an agent
 * (patch "assignee") who may hold at most capacity open cases: the
 * completion counts the agent's open cases under a lock, and when the agent
 * is full it changes nothing and runs the step again at once, to decide on
 * fresh counts (after 50 such refusals the job fails). capacity <= 0: no
 * check. Takes patch, event_data and the job; nulls *job_p. */
void pl_stage_job_done_capped(pl_stage_job_t **job_p, const char *out_state, cJSON *patch,
                              const char *event_type, cJSON *event_data, int64_t capacity);
/* Ends the job as failed with reason (no customer data in it): retried after
 * the backoff, parked after max_attempts. Takes the job; nulls *job_p. */
void pl_stage_job_fail(pl_stage_job_t **job_p, const char *reason);

#endif
