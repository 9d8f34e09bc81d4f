/*
 * desk_db: a small pool of pl_db connections (see desk_db.h).
 */
#include "desk_db.h"

#include "pl_alloc.h"

#define POOL_MAX 64

struct desk_db {
    pl_db_t *conns[POOL_MAX];
    int n;
};

desk_db_t *desk_db_new(uv_loop_t *loop, const char *conninfo, int n, const pl_db_stmt_t *stmts,
                       size_t nstmts)
{
    desk_db_t *db = pl_calloc(1, sizeof *db);
    db->n = n < 1 ? 1 : n > POOL_MAX ? POOL_MAX : n;
    pl_db_opts_t opts = {
        .conninfo = conninfo,
        .app_name = "plaint-desk",
        .stmts = stmts,
        .nstmts = nstmts,
        .query_timeout_ms = 30000, /* statistics over a long period may take a while */
    };
    for (int i = 0; i < db->n; i++)
        db->conns[i] = pl_db_new(loop, &opts);
    return db;
}

void desk_db_close(desk_db_t **db_p)
{
    desk_db_t *db = *db_p;
    if (!db)
        return;
    for (int i = 0; i < db->n; i++)
        pl_db_close(&db->conns[i]);
    pl_free(db);
    *db_p = NULL;
}

static pl_db_t *least_busy(const desk_db_t *db)
{
    pl_db_t *best = NULL;
    for (int i = 0; i < db->n; i++) {
        pl_db_t *c = db->conns[i];
        if (pl_db_ready(c) && (!best || pl_db_pending(c) < pl_db_pending(best)))
            best = c;
    }
    return best;
}

int desk_db_exec(desk_db_t *db, const char *stmt, int nparams, const char *const *params,
                 pl_db_cb cb, void *arg)
{
    pl_db_t *c = least_busy(db);
    if (!c)
        return PL_EUNAVAIL;
    return pl_db_exec(c, stmt, nparams, params, cb, arg);
}

bool desk_db_ready(const desk_db_t *db)
{
    return least_busy(db) != NULL;
}
