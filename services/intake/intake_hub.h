/*
 * intake_hub: numbers committed events, publishes the event stream, and
 * hands work to the stages.
 *
 * Wakes on NOTIFY plaint_events (a transaction wrote events without
 * numbers: the stages) and every second as a safety net; runs
 * plaint_sequence_events(), which numbers the waiting events when this hub
 * holds the sequencer lock; sends a stage.work message for each newly
 * numbered event that puts a case into a stage's input state (PUSH, so
 * replicas of a stage share the work). On NOTIFY plaint_seq (numbers were
 * committed: intake numbers its own events at commit) and after sequencing,
 * it publishes every numbered event after the last one it published, in seq
 * order, each once, on the PUB socket with the event type as topic. Several
 * hubs may run: one numbers at a time, every one publishes everything.
 */
#ifndef INTAKE_HUB_H
#define INTAKE_HUB_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "pl_err.h"
#include "pl_metrics.h"

typedef struct intake_hub intake_hub_t;

typedef struct intake_hub_opts {
    const char *conninfo;
    const char *app_name;
    const char *source;            /* "source" of the stage.work messages */
    const char *events_endpoint;   /* PUB, bound */
    const char *classify_endpoint; /* PUSH, bound: cases that became "received" */
    const char *route_endpoint;    /* PUSH, bound: cases that became "classified" */
    int64_t poll_ms;               /* safety-net wakeup period */
    pl_metrics_t *metrics;         /* borrowed, must outlive the hub; NULL = none. Gets
                                      plaint_events_published_total and
                                      plaint_events_last_seq */
} intake_hub_opts_t;

/* Binds its sockets; returns NULL with err when an endpoint cannot be bound. */
intake_hub_t *intake_hub_new(uv_loop_t *loop, void *zctx, const intake_hub_opts_t *opts,
                             pl_err_t *err);
/* Hands the classifier a case intake has just committed (its case.received
 * event is numbered at commit, so no sequencer pass will see it). */
void intake_hub_case_received(intake_hub_t *hub, const char *case_id, int64_t seq);
/* Last seq published (0 before the first). */
int64_t intake_hub_published(const intake_hub_t *hub);
/* True when the hub's database connection is ready. */
bool intake_hub_ready(const intake_hub_t *hub);
/* NULL-safe; nulls *hub_p. */
void intake_hub_destroy(intake_hub_t **hub_p);

#endif
