/*
 * desk_db: a few asynchronous database connections for the desk's requests,
 * so one slow query (a statistics page) does not hold up case views. Each
 * statement goes to the ready connection with the fewest statements queued.
 *
 * Owns its connections.
 */
#ifndef DESK_DB_H
#define DESK_DB_H

#include <stdbool.h>
#include <uv.h>

#include "pl_db.h"

typedef struct desk_db desk_db_t;

/* n connections (1..64) to conninfo, each preparing stmts (borrowed). */
desk_db_t *desk_db_new(uv_loop_t *loop, const char *conninfo, int n, const pl_db_stmt_t *stmts,
                       size_t nstmts);
/* NULL-safe; nulls *db_p. Queued statements fail with PL_ECANCELED. */
void desk_db_close(desk_db_t **db_p);

/* As pl_db_exec on the least busy ready connection; PL_EUNAVAIL when none is
 * ready (cb never runs). */
int desk_db_exec(desk_db_t *db, const char *stmt, int nparams, const char *const *params,
                 pl_db_cb cb, void *arg);
/* Whether at least one connection is ready. */
bool desk_db_ready(const desk_db_t *db);

#endif
