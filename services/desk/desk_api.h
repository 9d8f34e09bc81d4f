/*
 * desk_api: the desk's HTTP API (contract "HTTP API"): cases by id or
 * case_no with their timeline, case lists with filters and cursor paging,
 * staff actions through the workflow, the event log, statistics. Submissions
 * go to desk_submit.
 *
 * Every database call is asynchronous (desk_db); a handler answers its
 * request from the query's callback. Owns nothing but the requests in flight.
 */
#ifndef DESK_API_H
#define DESK_API_H

#include "desk_auth.h"
#include "desk_db.h"
#include "desk_submit.h"
#include "pl_http.h"
#include "pl_metrics.h"

typedef struct desk_api desk_api_t;

typedef struct desk_api_opts {
    desk_db_t *db;         /* borrowed */
    desk_submit_t *submit; /* borrowed */
    desk_auth_t *auth;     /* borrowed: who may do what */
    const char *source;    /* the events' source: this process */
    pl_metrics_t *metrics; /* borrowed; request counts and latencies go here */
} desk_api_opts_t;

/* The statements desk_api runs (for desk_db_new). */
const pl_db_stmt_t *desk_api_statements(size_t *n);

/* Routes every API path on server. */
desk_api_t *desk_api_new(pl_http_server_t *server, const desk_api_opts_t *opts, pl_err_t *err);
/* NULL-safe; nulls *api_p. Call after the server is closed. */
void desk_api_destroy(desk_api_t **api_p);

#endif
