/*
 * pl_db: one asynchronous PostgreSQL connection driven from a libuv loop.
 *
 * It connects with PQconnectStart/PQconnectPoll, prepares the caller's
 * statements and LISTENs on the caller's channels after every (re)connect,
 * runs queued statements one at a time with PQsendQueryPrepared, and
 * reconnects by itself with backoff when the server goes away, so a daemon
 * survives a database restart without restarting. Nothing here blocks the
 * loop.
 *
 * Every statement is a single SQL statement, hence its own transaction unless
 * the SQL says otherwise; multi-step logic lives in SQL functions created by
 * the migrations, so "state change + event" is always one atomic commit.
 */
#ifndef PL_DB_H
#define PL_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pl_err.h"

typedef struct pl_db pl_db_t;

typedef struct pl_db_stmt {
    const char *name; /* prepared-statement name */
    const char *sql;  /* $1..$n parameters, all sent as text */
} pl_db_stmt_t;

typedef enum { PL_DB_DOWN = 0, PL_DB_CONNECTING = 1, PL_DB_READY = 2 } pl_db_state_t;

typedef struct pl_db_opts {
    const char *conninfo;          /* NULL or "": libpq defaults and PG* variables */
    const char *app_name;          /* application_name, e.g. "plaint-intake" */
    const pl_db_stmt_t *stmts;     /* prepared on every connect; borrowed for the db's life */
    size_t nstmts;
    const char *const *listen;     /* NULL-terminated channel names, or NULL */
    int64_t query_timeout_ms;      /* 0 = 10 s; a longer query drops the connection */
    int64_t connect_timeout_ms;    /* 0 = 5 s */
    int64_t reconnect_max_ms;      /* backoff cap; 0 = 2 s */
    void (*on_state)(pl_db_t *db, pl_db_state_t state, void *arg);
    void (*on_notify)(pl_db_t *db, const char *channel, const char *payload, void *arg);
    void *arg;
} pl_db_opts_t;

/* res: borrowed, valid during the call, status TUPLES_OK or COMMAND_OK; NULL
 * when err is set. err->code: PL_EUNAVAIL (connection lost or timed out: if
 * the statement was in flight its outcome is unknown), PL_ETIMEOUT (the server
 * cancelled it: statement_timeout), PL_EAGAIN (serialization
 * failure or deadlock: safe to retry), PL_ECANCELED (pl_db_close), PL_EINVAL
 * (the server rejected the data: constraint, bad value) or PL_EINTERNAL. */
typedef void (*pl_db_cb)(PGresult *res, const pl_err_t *err, void *arg);

/* Starts connecting at once. Copies opts except the borrowed stmts/listen. */
pl_db_t *pl_db_new(uv_loop_t *loop, const pl_db_opts_t *opts);
/* Fails every queued statement with PL_ECANCELED, closes the connection and
 * frees db once libuv has closed its handles. NULL-safe; nulls *db_p. */
void pl_db_close(pl_db_t **db_p);

/* Queues the prepared statement stmt_name with text params (NULL = SQL NULL).
 * Params are copied. Returns 0 (cb will run exactly once) or PL_EUNAVAIL at
 * once when the connection is not ready (cb never runs). */
int pl_db_exec(pl_db_t *db, const char *stmt_name, int nparams, const char *const *params,
               pl_db_cb cb, void *arg);

/* Like pl_db_exec, with per-parameter byte lengths and formats (0 text,
 * 1 binary), for binary values such as pl_pgarray arrays. lengths and
 * formats may be NULL (all text); values are copied. */
int pl_db_exec_params(pl_db_t *db, const char *stmt_name, int nparams, const char *const *params,
                      const int *lengths, const int *formats, pl_db_cb cb, void *arg);

bool pl_db_ready(const pl_db_t *db);
pl_db_state_t pl_db_state(const pl_db_t *db);
/* Statements queued or in flight. */
size_t pl_db_pending(const pl_db_t *db);

/* Blocking helpers for startup code and tools only (never on a running loop). */
/* Connects, retrying until wait_ms has passed; returns NULL with err. */
PGconn *pl_db_connect_blocking(const char *conninfo, const char *app_name, int64_t wait_ms,
                               pl_err_t *err);
/* Maps a failed PGresult (or a broken conn when res is NULL) to a PL_E* code
 * and fills err; returns the code. */
int pl_db_result_error(PGconn *conn, const PGresult *res, pl_err_t *err);

#endif
