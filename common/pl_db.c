/*
 * pl_db: an asynchronous PostgreSQL connection on a libuv loop (see pl_db.h).
 *
 * Trusts libpq and the caller's SQL; trusts nothing about the server staying
 * up. Owns the PGconn, the poll and timer handles (freed in their close
 * callbacks, as libuv requires) and the queued statements with their copied
 * parameters.
 *
 * One statement is in flight at a time; the rest wait in a FIFO. Setup after
 * a connect (PREPARE, LISTEN) runs through the same queue before the
 * connection is declared ready.
 */
#include "pl_db.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_log.h"
#include "pl_time.h"

#define DEFAULT_QUERY_TIMEOUT_MS 10000
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_RECONNECT_MAX_MS 2000
#define RECONNECT_MIN_MS 50

typedef enum { Q_EXEC, Q_PREPARE, Q_SIMPLE } query_kind_t;

typedef struct db_query {
    struct db_query *next;
    query_kind_t kind;
    char *name; /* statement name (EXEC, PREPARE) */
    char *sql;  /* PREPARE, SIMPLE */
    int nparams;
    char **params;
    int *lengths; /* NULL: all text */
    int *formats;
    pl_db_cb cb;
    void *arg;
} db_query_t;

typedef struct db_poll {
    uv_poll_t handle;
    pl_db_t *db;
} db_poll_t;

struct pl_db {
    uv_loop_t *loop;
    pl_db_opts_t opts;
    char *conninfo;
    char *app_name;
    PGconn *conn;
    pl_db_state_t state;
    db_poll_t *poll;
    int poll_fd;
    int poll_events;
    uv_timer_t *timer;
    int64_t backoff_ms;
    db_query_t *head, *tail;
    size_t queued;
    bool in_flight;
    PGresult *result;   /* first result of the statement in flight */
    bool handshake;     /* PQconnectPoll has not finished */
    bool closing;
    int open_handles;
};

static void on_poll(uv_poll_t *handle, int status, int events);
static void connection_lost(pl_db_t *db, int code, const char *why);
static void run_next(pl_db_t *db);

/* ---- handles ---- */

static void maybe_free(pl_db_t *db)
{
    if (!db->closing || db->open_handles > 0)
        return;
    pl_free(db->conninfo);
    pl_free(db->app_name);
    pl_free(db);
}

static void on_poll_closed(uv_handle_t *handle)
{
    db_poll_t *p = handle->data;
    pl_db_t *db = p->db;
    pl_free(p);
    db->open_handles--;
    maybe_free(db);
}

static void on_timer_closed(uv_handle_t *handle)
{
    pl_db_t *db = handle->data;
    pl_free(handle);
    db->open_handles--;
    maybe_free(db);
}

static void poll_drop(pl_db_t *db)
{
    if (!db->poll)
        return;
    /* uv_close removes the fd from epoll at once, so the fd may be closed
     * (PQfinish) right after this call. */
    uv_close((uv_handle_t *)&db->poll->handle, on_poll_closed);
    db->poll = NULL;
    db->poll_fd = -1;
    db->poll_events = 0;
}

static int poll_watch(pl_db_t *db, int fd, int events)
{
    if (db->poll && db->poll_fd != fd)
        poll_drop(db);
    if (!db->poll) {
        db_poll_t *p = pl_calloc(1, sizeof *p);
        p->db = db;
        if (uv_poll_init(db->loop, &p->handle, fd) != 0) {
            pl_free(p);
            return PL_EIO;
        }
        p->handle.data = p;
        db->open_handles++;
        db->poll = p;
        db->poll_fd = fd;
        db->poll_events = 0;
    }
    if (db->poll_events != events) {
        if (uv_poll_start(&db->poll->handle, events, on_poll) != 0)
            return PL_EIO;
        db->poll_events = events;
    }
    return 0;
}

static void timer_start(pl_db_t *db, int64_t ms, uv_timer_cb cb)
{
    (void)uv_timer_start(db->timer, cb, (uint64_t)(ms > 0 ? ms : 1), 0);
}

/* ---- queue ---- */

static void query_free(db_query_t *q)
{
    for (int i = 0; i < q->nparams; i++)
        pl_free(q->params[i]);
    pl_free(q->params);
    pl_free(q->lengths);
    pl_free(q->formats);
    pl_free(q->name);
    pl_free(q->sql);
    pl_free(q);
}

static void enqueue(pl_db_t *db, db_query_t *q)
{
    if (db->tail)
        db->tail->next = q;
    else
        db->head = q;
    db->tail = q;
    db->queued++;
}

static db_query_t *dequeue(pl_db_t *db)
{
    db_query_t *q = db->head;
    if (!q)
        return NULL;
    db->head = q->next;
    if (!db->head)
        db->tail = NULL;
    db->queued--;
    return q;
}

/* Completes the head statement: runs its callback exactly once. */
static void complete_head(pl_db_t *db, PGresult *res, const pl_err_t *err)
{
    db_query_t *q = dequeue(db);
    db->in_flight = false;
    if (q && q->cb)
        q->cb(res, err, q->arg);
    if (q)
        query_free(q);
}

static void fail_all(pl_db_t *db, int code, const char *why)
{
    pl_err_t err;
    while (db->head) {
        bool was_in_flight = db->in_flight;
        pl_err_set(&err, code, "", "%s%s", why,
                   was_in_flight ? "; the statement in flight may or may not have committed" : "");
        complete_head(db, NULL, &err);
    }
}

static void set_state(pl_db_t *db, pl_db_state_t state)
{
    if (db->state == state)
        return;
    db->state = state;
    if (db->opts.on_state && !db->closing)
        db->opts.on_state(db, state, db->opts.arg);
}

/* ---- connecting ---- */

static PGconn *connect_start(const pl_db_t *db, const char *conninfo, const char *app_name,
                             bool blocking)
{
    const char *keys[4] = {NULL}, *vals[4] = {NULL};
    int n = 0;
    if (conninfo && *conninfo) {
        keys[n] = "dbname"; /* with expand_dbname, a URI or key=value string */
        vals[n++] = conninfo;
    }
    if (app_name && *app_name) {
        keys[n] = "application_name";
        vals[n++] = app_name;
    }
    (void)db;
    return blocking ? PQconnectdbParams(keys, vals, 1) : PQconnectStartParams(keys, vals, 1);
}

static void on_reconnect_timer(uv_timer_t *timer);

static void schedule_reconnect(pl_db_t *db)
{
    int64_t max = db->opts.reconnect_max_ms > 0 ? db->opts.reconnect_max_ms
                                                : DEFAULT_RECONNECT_MAX_MS;
    db->backoff_ms = db->backoff_ms ? db->backoff_ms * 2 : RECONNECT_MIN_MS;
    if (db->backoff_ms > max)
        db->backoff_ms = max;
    timer_start(db, db->backoff_ms, on_reconnect_timer);
}

static void on_connect_timeout(uv_timer_t *timer)
{
    pl_db_t *db = timer->data;
    if (db->state == PL_DB_CONNECTING)
        connection_lost(db, PL_EUNAVAIL, "timed out connecting to the database");
}

static void setup_done(PGresult *res, const pl_err_t *err, void *arg)
{
    pl_db_t *db = arg;
    (void)res;
    if (err || db->closing)
        return; /* a failed setup step already dropped the connection */
    db->backoff_ms = 0;
    pl_log_info("database ready", "app", db->app_name ? db->app_name : "", NULL);
    set_state(db, PL_DB_READY);
}

static void setup_step_done(PGresult *res, const pl_err_t *err, void *arg)
{
    pl_db_t *db = arg;
    (void)res;
    /* conn is NULL when we are the ones tearing the connection down. */
    if (err && db->conn && !db->closing) {
        pl_log_error("database setup failed", "error", err->message, NULL);
        /* A statement that does not prepare is a bug or a schema mismatch;
         * retrying with backoff keeps the daemon alive for the operator. */
        connection_lost(db, PL_EUNAVAIL, "database setup failed");
    }
}

static void push_internal(pl_db_t *db, query_kind_t kind, const char *name, const char *sql,
                          pl_db_cb cb)
{
    db_query_t *q = pl_calloc(1, sizeof *q);
    q->kind = kind;
    q->name = pl_strdup(name);
    q->sql = pl_strdup(sql);
    q->cb = cb;
    q->arg = db;
    enqueue(db, q);
}

static void connected(pl_db_t *db)
{
    if (PQsetnonblocking(db->conn, 1) != 0) {
        connection_lost(db, PL_EUNAVAIL, "cannot make the database connection non-blocking");
        return;
    }
    (void)uv_timer_stop(db->timer);
    for (size_t i = 0; i < db->opts.nstmts; i++)
        push_internal(db, Q_PREPARE, db->opts.stmts[i].name, db->opts.stmts[i].sql,
                      setup_step_done);
    for (const char *const *ch = db->opts.listen; ch && *ch; ch++) {
        char *escaped = PQescapeIdentifier(db->conn, *ch, strlen(*ch));
        char *sql = pl_sprintf("LISTEN %s", escaped ? escaped : *ch);
        PQfreemem(escaped);
        push_internal(db, Q_SIMPLE, NULL, sql, setup_step_done);
        pl_free(sql);
    }
    push_internal(db, Q_SIMPLE, NULL, "SELECT 1", setup_done);
    run_next(db);
}

static void connect_poll(pl_db_t *db)
{
    PostgresPollingStatusType st = PQconnectPoll(db->conn);
    if (st == PGRES_POLLING_FAILED) {
        char why[PL_ERR_MSG_MAX];
        snprintf(why, sizeof why, "cannot connect to the database: %s", PQerrorMessage(db->conn));
        why[strcspn(why, "\n")] = '\0';
        connection_lost(db, PL_EUNAVAIL, why);
        return;
    }
    if (st == PGRES_POLLING_OK) {
        db->handshake = false;
        connected(db);
        return;
    }
    int events = st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE;
    /* The socket can change between calls (another host, SSL retry). */
    if (poll_watch(db, PQsocket(db->conn), events) != 0)
        connection_lost(db, PL_EUNAVAIL, "cannot watch the database socket");
}

static void connect_begin(pl_db_t *db)
{
    db->conn = connect_start(db, db->conninfo, db->app_name, false);
    if (!db->conn || PQstatus(db->conn) == CONNECTION_BAD) {
        connection_lost(db, PL_EUNAVAIL, "cannot start a database connection");
        return;
    }
    db->handshake = true;
    set_state(db, PL_DB_CONNECTING);
    int64_t timeout = db->opts.connect_timeout_ms > 0 ? db->opts.connect_timeout_ms
                                                      : DEFAULT_CONNECT_TIMEOUT_MS;
    timer_start(db, timeout, on_connect_timeout);
    /* libpq: before the first PQconnectPoll, act as if it returned WRITING. */
    if (poll_watch(db, PQsocket(db->conn), UV_WRITABLE) != 0)
        connection_lost(db, PL_EUNAVAIL, "cannot watch the database socket");
}

static void on_reconnect_timer(uv_timer_t *timer)
{
    pl_db_t *db = timer->data;
    if (db->state == PL_DB_DOWN && !db->closing)
        connect_begin(db);
}

static void connection_lost(pl_db_t *db, int code, const char *why)
{
    bool was_ready = db->state == PL_DB_READY;
    poll_drop(db);
    db->handshake = false;
    if (db->result) {
        PQclear(db->result);
        db->result = NULL;
    }
    if (db->conn) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    if (was_ready || db->backoff_ms == 0)
        pl_log_warn("database connection lost", "reason", why, NULL);
    set_state(db, PL_DB_DOWN);
    fail_all(db, code, why);
    if (!db->closing)
        schedule_reconnect(db);
}

/* ---- statements ---- */

static void on_query_timeout(uv_timer_t *timer)
{
    pl_db_t *db = timer->data;
    if (db->in_flight)
        connection_lost(db, PL_EUNAVAIL, "the database did not answer in time");
}

static int send_head(pl_db_t *db)
{
    db_query_t *q = db->head;
    int ok = 0;
    switch (q->kind) {
    case Q_EXEC:
        ok = PQsendQueryPrepared(db->conn, q->name, q->nparams, (const char *const *)q->params,
                                 q->lengths, q->formats, 0);
        break;
    case Q_PREPARE:
        ok = PQsendPrepare(db->conn, q->name, q->sql, 0, NULL);
        break;
    case Q_SIMPLE:
        ok = PQsendQuery(db->conn, q->sql);
        break;
    }
    return ok ? 0 : PL_EUNAVAIL;
}

/* Flushes what libpq buffered; watches for writability while data remains. */
static int flush_and_watch(pl_db_t *db)
{
    int pending = PQflush(db->conn);
    if (pending < 0)
        return PL_EUNAVAIL;
    int events = UV_READABLE | (pending ? UV_WRITABLE : 0);
    return poll_watch(db, PQsocket(db->conn), events);
}

static void run_next(pl_db_t *db)
{
    if (db->in_flight || !db->head || !db->conn || db->closing)
        return;
    if (send_head(db) < 0) {
        char why[PL_ERR_MSG_MAX];
        snprintf(why, sizeof why, "cannot send to the database: %s", PQerrorMessage(db->conn));
        why[strcspn(why, "\n")] = '\0';
        connection_lost(db, PL_EUNAVAIL, why);
        return;
    }
    db->in_flight = true;
    int64_t timeout = db->opts.query_timeout_ms > 0 ? db->opts.query_timeout_ms
                                                    : DEFAULT_QUERY_TIMEOUT_MS;
    timer_start(db, timeout, on_query_timeout);
    if (flush_and_watch(db) < 0)
        connection_lost(db, PL_EUNAVAIL, "cannot send to the database");
}

static void deliver_notifications(pl_db_t *db)
{
    PGnotify *n;
    while (!db->closing && db->conn && (n = PQnotifies(db->conn)) != NULL) {
        if (db->opts.on_notify)
            db->opts.on_notify(db, n->relname, n->extra, db->opts.arg);
        PQfreemem(n);
    }
}

static bool result_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* Collects results of the statement in flight; completes it when libpq says
 * there are no more. Returns false when the connection went away. */
static bool collect_results(pl_db_t *db)
{
    while (db->in_flight && db->conn && !PQisBusy(db->conn)) {
        PGresult *res = PQgetResult(db->conn);
        if (res) {
            /* Keep the first failure, else the last result: for a
             * multi-statement string that is the answer that matters. */
            if (!db->result || (result_ok(db->result) && !result_ok(res))) {
                PQclear(db->result);
                db->result = res;
            } else
                PQclear(res);
            continue;
        }
        (void)uv_timer_stop(db->timer);
        PGresult *done = db->result;
        db->result = NULL;
        if (done && result_ok(done))
            complete_head(db, done, NULL);
        else {
            pl_err_t err;
            pl_db_result_error(db->conn, done, &err);
            complete_head(db, NULL, &err);
        }
        PQclear(done);
        /* The callback may have closed us, or dropped the connection (a
         * failed setup step does): then there is nothing left to read. */
        if (db->closing || !db->conn)
            return false;
        if (PQstatus(db->conn) == CONNECTION_BAD) {
            connection_lost(db, PL_EUNAVAIL, "the database closed the connection");
            return false;
        }
        run_next(db);
    }
    return db->conn != NULL && !db->closing;
}

static void on_readable(pl_db_t *db)
{
    if (!PQconsumeInput(db->conn)) {
        connection_lost(db, PL_EUNAVAIL, "the database closed the connection");
        return;
    }
    if (!collect_results(db))
        return;
    deliver_notifications(db);
    if (db->closing || !db->conn)
        return;
    /* An idle connection that the server closed (restart, admin shutdown)
     * shows up here; notice it now rather than on the next statement. */
    if (PQstatus(db->conn) == CONNECTION_BAD)
        connection_lost(db, PL_EUNAVAIL, "the database closed the connection");
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    db_poll_t *p = handle->data;
    pl_db_t *db = p->db;
    if (db->poll != p || db->closing)
        return;
    if (db->handshake) {
        /* Even on a socket error: PQconnectPoll reports libpq's reason. */
        connect_poll(db);
        return;
    }
    if (status < 0) {
        connection_lost(db, PL_EUNAVAIL, "error on the database socket");
        return;
    }
    if (events & UV_WRITABLE) {
        if (flush_and_watch(db) < 0) {
            connection_lost(db, PL_EUNAVAIL, "cannot send to the database");
            return;
        }
    }
    if (events & UV_READABLE)
        on_readable(db);
}

/* ---- public ---- */

pl_db_t *pl_db_new(uv_loop_t *loop, const pl_db_opts_t *opts)
{
    pl_db_t *db = pl_calloc(1, sizeof *db);
    db->loop = loop;
    db->opts = *opts;
    db->conninfo = pl_strdup(opts->conninfo ? opts->conninfo : "");
    db->app_name = pl_strdup(opts->app_name ? opts->app_name : "plaint");
    db->opts.conninfo = db->conninfo;
    db->opts.app_name = db->app_name;
    db->poll_fd = -1;
    db->timer = pl_calloc(1, sizeof *db->timer);
    (void)uv_timer_init(loop, db->timer);
    db->timer->data = db;
    db->open_handles = 1;
    connect_begin(db);
    return db;
}

void pl_db_close(pl_db_t **db_p)
{
    pl_db_t *db = db_p ? *db_p : NULL;
    if (!db)
        return;
    *db_p = NULL;
    if (db->closing)
        return;
    db->closing = true;
    fail_all(db, PL_ECANCELED, "the database connection is closing");
    poll_drop(db);
    if (db->result)
        PQclear(db->result);
    db->result = NULL;
    if (db->conn)
        PQfinish(db->conn);
    db->conn = NULL;
    uv_close((uv_handle_t *)db->timer, on_timer_closed);
}

int pl_db_exec_params(pl_db_t *db, const char *stmt_name, int nparams, const char *const *params,
                      const int *lengths, const int *formats, pl_db_cb cb, void *arg)
{
    if (db->state != PL_DB_READY || db->closing)
        return PL_EUNAVAIL;
    db_query_t *q = pl_calloc(1, sizeof *q);
    q->kind = Q_EXEC;
    q->name = pl_strdup(stmt_name);
    q->nparams = nparams;
    size_t n = (size_t)(nparams > 0 ? nparams : 1);
    q->params = pl_calloc(n, sizeof *q->params);
    if (lengths) {
        q->lengths = pl_calloc(n, sizeof *q->lengths);
        q->formats = pl_calloc(n, sizeof *q->formats);
    }
    for (int i = 0; i < nparams; i++) {
        if (!lengths)
            q->params[i] = pl_strdup(params[i]);
        else if (params[i]) {
            /* Binary values may hold NUL bytes: copy by length. */
            q->params[i] = pl_malloc((size_t)lengths[i] + 1);
            memcpy(q->params[i], params[i], (size_t)lengths[i]);
            q->params[i][lengths[i]] = '\0';
            q->lengths[i] = lengths[i];
            q->formats[i] = formats ? formats[i] : 0;
        }
    }
    q->cb = cb;
    q->arg = arg;
    enqueue(db, q);
    run_next(db);
    return 0;
}

int pl_db_exec(pl_db_t *db, const char *stmt_name, int nparams, const char *const *params,
               pl_db_cb cb, void *arg)
{
    return pl_db_exec_params(db, stmt_name, nparams, params, NULL, NULL, cb, arg);
}

bool pl_db_ready(const pl_db_t *db)
{
    return db && db->state == PL_DB_READY && !db->closing;
}

pl_db_state_t pl_db_state(const pl_db_t *db)
{
    return db->state;
}

size_t pl_db_pending(const pl_db_t *db)
{
    return db->queued;
}

/* ---- blocking helpers ---- */

PGconn *pl_db_connect_blocking(const char *conninfo, const char *app_name, int64_t wait_ms,
                               pl_err_t *err)
{
    int64_t deadline = pl_time_mono_ms() + wait_ms;
    int64_t pause_ms = 100;
    for (int attempt = 1;; attempt++) {
        PGconn *conn = connect_start(NULL, conninfo, app_name, true);
        if (conn && PQstatus(conn) == CONNECTION_OK)
            return conn;
        char why[PL_ERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", conn ? PQerrorMessage(conn) : "out of memory");
        why[strcspn(why, "\n")] = '\0';
        PQfinish(conn);
        if (pl_time_mono_ms() + pause_ms > deadline) {
            pl_err_set(err, PL_EUNAVAIL, "", "cannot connect to the database: %s", why);
            pl_err_hint(err, "Check PLAINT_DATABASE_URL (or the PG* variables) and that the "
                             "server is running; waited %lld ms (PLAINT_DB_WAIT).",
                        (long long)wait_ms);
            return NULL;
        }
        if (attempt == 1 || attempt % 10 == 0)
            pl_log_warn("waiting for the database", "reason", why, NULL);
        usleep((useconds_t)pause_ms * 1000); /* startup only: nothing else to do yet */
        if (pause_ms < 1000)
            pause_ms *= 2;
    }
}

static int code_for_sqlstate(const char *state)
{
    if (!state || !*state)
        return PL_EUNAVAIL;
    if (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3) || !strncmp(state, "53", 2))
        return PL_EUNAVAIL;
    if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03"))
        return PL_EAGAIN;
    if (!strcmp(state, "57014"))
        return PL_ETIMEOUT;
    if (!strncmp(state, "22", 2) || !strncmp(state, "23", 2))
        return PL_EINVAL;
    return PL_EINTERNAL;
}

int pl_db_result_error(PGconn *conn, const PGresult *res, pl_err_t *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
    int code = code_for_sqlstate(state);
    if (conn && PQstatus(conn) == CONNECTION_BAD)
        code = PL_EUNAVAIL;
    char why[PL_ERR_MSG_MAX];
    snprintf(why, sizeof why, "%s",
             primary ? primary : (conn ? PQerrorMessage(conn) : "no connection"));
    why[strcspn(why, "\n")] = '\0';
    pl_err_set(err, code, "", "database error%s%s: %s", state ? " " : "", state ? state : "",
               why);
    if (hint)
        pl_err_hint(err, "%s", hint);
    return code;
}
