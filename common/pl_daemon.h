/*
 * pl_daemon: the one way a Plaint daemon starts and stops (after Postfix's
 * single_server.c).
 *
 * pl_daemon_run() answers --help and --version, reads and checks the common
 * settings and the daemon's own table (reporting every problem, exit 78),
 * starts JSON logging, checks the database schema version when asked to,
 * runs the daemon's start function on the loop, and on SIGTERM/SIGINT asks
 * the daemon to finish or hand back its work, then closes every handle and
 * exits 0. If the daemon has not finished 9 s after the signal, the process
 * exits 1 so that an orchestrator's 10 s grace period is never exceeded.
 *
 * Every daemon has a metrics registry (pl_daemon_metrics) and, unless
 * PLAINT_METRICS_ADDR is empty, an HTTP server on that address
 * (pl_daemon_http) answering GET /metrics (the registry, Prometheus text)
 * and GET /healthz (200 {"status":"ok"}, or 503 {"status":"unavailable",
 * "reason":...} when the daemon's healthy callback says no or it is
 * stopping). The server is up before the start function runs, so a daemon
 * may add routes of its own, and closes in pl_daemon_stopped(). Failing to
 * listen there is fatal: an operator must know that nothing is scraped.
 */
#ifndef PL_DAEMON_H
#define PL_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pl_cfg.h"
#include "pl_err.h"
#include "pl_http.h"
#include "pl_metrics.h"

typedef struct pl_daemon pl_daemon_t;

/* Settings every daemon reads (contract: "every daemon"). */
typedef struct pl_common_cfg {
    const char *database_url; /* "" = libpq defaults */
    const char *config_dir;
    const char *submit_endpoint;
    const char *events_endpoint;
    const char *http_addr;
    int log_level;
    int64_t db_wait_ms;     /* PLAINT_DB_WAIT: how long startup waits for the database */
    const char *metrics_addr; /* PLAINT_METRICS_ADDR: "" = no metrics listener */
} pl_common_cfg_t;

typedef struct pl_daemon_def {
    const char *name;    /* "intake": the log svc; the binary is plaint-<name> */
    const char *summary; /* one line for --help */
    const pl_cfg_setting_t *settings; /* the daemon's own; may be NULL */
    size_t nsettings;
    bool needs_db;       /* check the schema version before start */
    /* Runs on the loop once settings are good. Returns 0, or a PL_E* code with
     * err filled: the process then exits 1 (78 for PL_ECONFIG). */
    int (*start)(pl_daemon_t *d, void *arg, pl_err_t *err);
    /* Asked once on SIGTERM/SIGINT: stop taking work, finish or hand back what
     * is held, close handles, then call pl_daemon_stopped(d). */
    void (*stop)(pl_daemon_t *d, void *arg);
    void *arg;
    /* PLAINT_METRICS_ADDR's default, shown by --help: intake "0.0.0.0:9101",
     * the next daemons 9102 and on. NULL or "" = no listener unless set. */
    const char *metrics_addr_default;
    /* For GET /healthz, on the loop: true when the daemon can do its work
     * (e.g. its database connections are up). It may call
     * pl_daemon_set_health_reason() to say why not. NULL = always healthy. */
    bool (*healthy)(pl_daemon_t *d, void *arg);
    /* On SIGHUP, on the loop: reread the model or config files. A daemon
     * keeps what it had when the new version is bad (and logs why). NULL =
     * SIGHUP is logged and ignored. */
    void (*reload)(pl_daemon_t *d, void *arg);
} pl_daemon_def_t;

/* Returns the process exit status. */
int pl_daemon_run(const pl_daemon_def_t *def, int argc, char **argv);
void pl_daemon_stopped(pl_daemon_t *d);

uv_loop_t *pl_daemon_loop(pl_daemon_t *d);
void *pl_daemon_zmq(pl_daemon_t *d); /* the process's ZeroMQ context */
const pl_common_cfg_t *pl_daemon_cfg(const pl_daemon_t *d);
const char *pl_daemon_name(const pl_daemon_t *d);
/* "plaint-intake@host:pid", unique per process; used as message source and lease owner. */
const char *pl_daemon_instance(const pl_daemon_t *d);

/* The daemon's registry (borrowed; never NULL from the start function on,
 * also when nothing serves it). Holds plaint_up, plaint_start_time_seconds
 * and plaint_build_info{version}. */
pl_metrics_t *pl_daemon_metrics(pl_daemon_t *d);
/* The server on PLAINT_METRICS_ADDR (borrowed; NULL when that is empty or
 * once stopped), for a daemon's own routes. */
pl_http_server_t *pl_daemon_http(pl_daemon_t *d);
/* Routes GET /metrics and /healthz on another server of the daemon's (the
 * desk serves them on its API port). Returns 0 or PL_ECONFLICT/PL_EINVAL. */
int pl_daemon_serve_status(pl_daemon_t *d, pl_http_server_t *server);
/* Called by a healthy callback that returns false: reason (copied) goes in
 * the 503 body. */
void pl_daemon_set_health_reason(pl_daemon_t *d, const char *reason);

#endif
