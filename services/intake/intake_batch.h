/*
 * intake_batch: group commit of accepted submissions.
 *
 * Submissions wait in one FIFO; each of a few database connections takes
 * whatever is waiting (up to a maximum) as one batch and stores it with one
 * call to plaint_submit_batch(), i.e. one transaction and one WAL flush for
 * the whole batch. Under load a batch fills while the previous commit is in
 * flight, so throughput grows with concurrency instead of being capped by
 * fsyncs per second. Every callback runs only after its batch committed, or
 * with an error when nothing can be promised.
 */
#ifndef INTAKE_BATCH_H
#define INTAKE_BATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "intake_submit.h"
#include "pl_err.h"
#include "pl_metrics.h"

typedef struct intake_batcher intake_batcher_t;

typedef struct intake_batcher_opts {
    const char *conninfo;
    const char *app_name;
    const char *event_source; /* "source" of the case.received events */
    int connections;          /* database connections, each with one batch in flight */
    int batch_max;            /* submissions per transaction */
    int queue_max;            /* waiting submissions before new ones are refused */
    int64_t timeout_ms;       /* a submission not committed by then gets PL_EUNAVAIL */
    pl_metrics_t *metrics;    /* borrowed, must outlive the batcher; NULL = none. Gets
                                 plaint_intake_batch_size and plaint_intake_batch_seconds */
} intake_batcher_opts_t;

typedef struct intake_stored {
    const char *case_id; /* borrowed for the duration of the callback */
    const char *case_no;
    bool duplicate;
    int64_t seq; /* of the case.received event; 0 for a duplicate */
} intake_stored_t;

/* Exactly one of stored and err is non-NULL. err->code: PL_EUNAVAIL (the
 * outcome is unknown or nothing was stored: the client may resubmit with the
 * same external_id) or PL_EINVAL (the database refused this submission). */
typedef void (*intake_stored_cb)(void *ctx, const intake_stored_t *stored, const pl_err_t *err);

intake_batcher_t *intake_batcher_new(uv_loop_t *loop, const intake_batcher_opts_t *opts);
/* Takes *sub_p on every path. Returns 0 (cb will run once) or PL_EUNAVAIL at
 * once when no database connection is ready or the queue is full (cb never runs). */
int intake_batcher_submit(intake_batcher_t *b, intake_submission_t **sub_p, intake_stored_cb cb,
                          void *ctx);
/* Submissions waiting or in flight. */
size_t intake_batcher_busy(const intake_batcher_t *b);
bool intake_batcher_ready(const intake_batcher_t *b);
/* Runs done(arg) once nothing is waiting or in flight (at once if idle). */
void intake_batcher_drain(intake_batcher_t *b, void (*done)(void *arg), void *arg);
/* Fails what is left with PL_EUNAVAIL and frees. NULL-safe; nulls *b_p. */
void intake_batcher_destroy(intake_batcher_t **b_p);

#endif
