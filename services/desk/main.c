/*
 * plaint-desk: the HTTP API staff and other systems work cases through
 * (contract "HTTP API"), on PLAINT_HTTP_ADDR, with GET /metrics and
 * /healthz on the same port.
 *
 * Submissions are handed to intake over the bus (desk_submit), so they take
 * the same path as bus submissions; everything else is one or two
 * asynchronous statements on a small pool of database connections
 * (desk_db). Staff actions go through the workflow table (pl_workflow) and
 * commit with their events in one statement.
 *
 * Owns the HTTP server, the pool and the submit socket.
 */
#include <stdio.h>
#include <string.h>

#include "desk_api.h"
#include "desk_db.h"
#include "desk_submit.h"
#include "pl_cfg.h"
#include "pl_daemon.h"
#include "pl_http.h"
#include "pl_log.h"

static struct {
    int64_t db_connections;
    int64_t submit_timeout_ms;
    int64_t idle_timeout_ms;
} settings;

static const pl_cfg_setting_t table[] = {
    {"PLAINT_DESK_DB_CONNECTIONS", "4", PL_CFG_INT, &settings.db_connections, 1, 64,
     "database connections for API requests"},
    {"PLAINT_DESK_SUBMIT_TIMEOUT", "5s", PL_CFG_DURATION, &settings.submit_timeout_ms, 100,
     60000, "how long POST /v1/complaints waits for intake's confirmation before 503"},
    {"PLAINT_DESK_IDLE_TIMEOUT", "30s", PL_CFG_DURATION, &settings.idle_timeout_ms, 1000,
     3600000, "how long a keep-alive connection may sit idle (or take to send a request)"},
};

typedef struct desk {
    pl_daemon_t *daemon;
    pl_http_server_t *http;
    desk_db_t *db;
    desk_submit_t *submit;
    desk_api_t *api;
    desk_auth_t *auth;
} desk_t;

static desk_t desk;

static bool healthy(pl_daemon_t *d, void *arg)
{
    desk_t *k = arg;
    if (k->db && desk_db_ready(k->db))
        return true;
    pl_daemon_set_health_reason(d, "no database connection is ready");
    return false;
}

static int start(pl_daemon_t *d, void *arg, pl_err_t *err)
{
    desk_t *k = arg;
    const pl_common_cfg_t *cfg = pl_daemon_cfg(d);
    k->daemon = d;
    pl_errlist_t errs = PL_ERRLIST_INIT;
    k->auth = desk_auth_load(cfg->config_dir, &errs);
    if (!k->auth) {
        for (size_t i = 1; i < errs.count; i++)
            fprintf(stderr, "plaint-desk: %s/desk.json: %s\n", cfg->config_dir,
                    errs.items[i].message);
        *err = errs.items[0];
        pl_errlist_reset(&errs);
        return pl_err_hint(err, "Fix %s/desk.json (its format is in services/desk/README.md), "
                                "or remove it to run the API open (tests only).",
                           cfg->config_dir);
    }
    pl_errlist_reset(&errs);
    if (desk_auth_is_open(k->auth))
        pl_log_warn("the API is open: no desk.json, so every caller acts as an administrator; "
                    "configure tokens before real use",
                    NULL);
    else {
        char n[24];
        pl_log_info("API tokens loaded", "tokens", pl_log_int(n, desk_auth_tokens(k->auth)), NULL);
    }
    k->http = pl_http_server_new(pl_daemon_loop(d), cfg->http_addr, err);
    if (!k->http) {
        pl_err_t why = *err;
        pl_err_set(err, why.code, "PLAINT_HTTP_ADDR", "cannot serve the API on PLAINT_HTTP_ADDR: "
                   "%.400s", why.message);
        return pl_err_hint(err, "%.200s Set PLAINT_HTTP_ADDR to a free HOST:PORT.", why.hint);
    }
    pl_http_limits_t limits = {
        .body_max = 1024 * 1024, /* a 64 KiB body and every other field, with room */
        .idle_timeout_ms = settings.idle_timeout_ms,
        .connections_max = 1024,
    };
    pl_http_server_set_limits(k->http, &limits);
    size_t nstmts;
    const pl_db_stmt_t *stmts = desk_api_statements(&nstmts);
    k->db = desk_db_new(pl_daemon_loop(d), cfg->database_url, (int)settings.db_connections, stmts,
                        nstmts);
    k->submit = desk_submit_new(pl_daemon_loop(d), pl_daemon_zmq(d), cfg->submit_endpoint,
                                settings.submit_timeout_ms, err);
    if (!k->submit)
        return err->code;
    desk_api_opts_t opts = {
        .db = k->db,
        .submit = k->submit,
        .auth = k->auth,
        .source = pl_daemon_instance(d),
        .metrics = pl_daemon_metrics(d),
    };
    k->api = desk_api_new(k->http, &opts, err);
    if (!k->api)
        return err->code;
    if (pl_daemon_serve_status(d, k->http) < 0)
        return pl_err_set(err, PL_EINTERNAL, "", "cannot route /metrics and /healthz");
    pl_log_info("serving the API", "addr", cfg->http_addr, "submit_to", cfg->submit_endpoint,
                NULL);
    return 0;
}

static void stop(pl_daemon_t *d, void *arg)
{
    desk_t *k = arg;
    /* Requests in flight stay valid after the server closes; their answers
     * are dropped as their callbacks run (submit: now; database: on close). */
    pl_http_server_close(&k->http);
    desk_submit_destroy(&k->submit);
    desk_db_close(&k->db);
    desk_api_destroy(&k->api);
    desk_auth_destroy(&k->auth);
    pl_daemon_stopped(d);
}

int main(int argc, char **argv)
{
    static pl_daemon_def_t def = {
        .name = "desk",
        .summary = "Serves the HTTP API: submissions, cases and their actions, events, metrics.",
        .settings = table,
        .nsettings = sizeof table / sizeof table[0],
        .needs_db = true,
        .start = start,
        .stop = stop,
        .arg = &desk,
        .metrics_addr_default = "", /* /metrics is on PLAINT_HTTP_ADDR */
        .healthy = healthy,
    };
    return pl_daemon_run(&def, argc, argv);
}
