/*
 * desk_submit: POST /v1/complaints. The desk does not store complaints
 * itself: it wraps the body in a complaint.submit envelope and hands it to
 * intake over the bus (a DEALER on PLAINT_SUBMIT_ENDPOINT), so HTTP and the
 * bus share one code path: the same validation, the same idempotency on
 * (source, external_id), the same group commit, and the same stage hand-off
 * that gets the case classified at once. The answer is sent after intake's
 * reply, i.e. after COMMIT.
 *
 * Owns its socket, its timer and the requests waiting for intake.
 */
#ifndef DESK_SUBMIT_H
#define DESK_SUBMIT_H

#include <stdint.h>
#include <uv.h>

#include "pl_err.h"
#include "pl_http.h"

typedef struct desk_submit desk_submit_t;

/* Connects to endpoint (a "*" host means 127.0.0.1). timeout_ms: an answer
 * not received by then gives 503. */
desk_submit_t *desk_submit_new(uv_loop_t *loop, void *zctx, const char *endpoint,
                               int64_t timeout_ms, pl_err_t *err);
/* Answers what is waiting with 503 and frees. NULL-safe; nulls *s_p. */
void desk_submit_destroy(desk_submit_t **s_p);

/* Handles one POST /v1/complaints; source is the idempotency namespace (the
 * caller's name). Answers req exactly once: 201 {case_id, case_no,
 * duplicate}, 200 for a duplicate, 400/413 with field errors, 503. */
void desk_submit_handle(desk_submit_t *s, pl_http_req_t *req, const char *source);

/* Requests waiting for intake. */
size_t desk_submit_pending(const desk_submit_t *s);

#endif
