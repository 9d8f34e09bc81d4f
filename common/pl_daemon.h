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
 */
#ifndef PL_DAEMON_H
#define PL_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pl_cfg.h"
#include "pl_err.h"

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

#endif
