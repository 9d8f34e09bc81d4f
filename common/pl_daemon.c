/*
 * pl_daemon: start-up, settings, signals and orderly shutdown of every
 * daemon (see pl_daemon.h).
 *
 * Trusts the daemon's definition; trusts nothing in the environment. Owns the
 * loop, the ZeroMQ context, its signal and timer handles, the metrics
 * registry and HTTP server, and the daemon struct for the life of the
 * process.
 */
#include "pl_daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "pl_alloc.h"
#include "pl_db.h"
#include "pl_json.h"
#include "pl_log.h"
#include "pl_schema.h"
#include "pl_time.h"

#define EXIT_USAGE 64
#define EXIT_CONFIG 78
#define STOP_GRACE_MS 9000 /* under the 10 s an orchestrator waits before SIGKILL */

struct pl_daemon {
    const pl_daemon_def_t *def;
    pl_common_cfg_t cfg;
    uv_loop_t loop;
    void *zctx;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t grace;
    bool stopping;
    bool stopped;
    char instance[256];
    char binary[64];
    pl_metrics_t *metrics;
    pl_http_server_t *http;
    char health_reason[256];
};

/* A daemon whose start failed: its loop still holds the handles it opened,
 * and closing them would run callbacks of a half-started daemon, so the
 * process exits without freeing them; kept here, they stay reachable and
 * LeakSanitizer reports nothing. */
static pl_daemon_t *unfinished;

static pl_common_cfg_t common_cfg;

static const pl_cfg_setting_t common_settings[] = {
    {"PLAINT_DATABASE_URL", "", PL_CFG_STRING, &common_cfg.database_url, 0, 0,
     "PostgreSQL conninfo or URI (empty: libpq defaults and PG* variables)"},
    {"PLAINT_CONFIG_DIR", "deploy/config", PL_CFG_STRING, &common_cfg.config_dir, 0, 0,
     "folder of the JSON config files"},
    {"PLAINT_SUBMIT_ENDPOINT", "tcp://*:7101", PL_CFG_ENDPOINT, &common_cfg.submit_endpoint, 0, 0,
     "intake binds it; clients connect to tcp://HOST:7101"},
    {"PLAINT_EVENTS_ENDPOINT", "tcp://*:7102", PL_CFG_ENDPOINT, &common_cfg.events_endpoint, 0, 0,
     "the case-event stream (PUB); subscribers connect to tcp://HOST:7102"},
    {"PLAINT_HTTP_ADDR", "0.0.0.0:8080", PL_CFG_HTTPADDR, &common_cfg.http_addr, 0, 0,
     "the desk's HTTP API and dashboard"},
    {"PLAINT_LOG_LEVEL", "info", PL_CFG_LOGLEVEL, &common_cfg.log_level, 0, 0,
     "debug, info, warn or error"},
    {"PLAINT_DB_WAIT", "60s", PL_CFG_DURATION, &common_cfg.db_wait_ms, 0, 86400000,
     "how long a daemon waits for the database at start"},
};
#define COMMON_COUNT (sizeof common_settings / sizeof common_settings[0])

#define METRICS_HELP "HOST:PORT for this daemon's GET /metrics and /healthz (empty: none)"

/* PLAINT_METRICS_ADDR, whose default differs per daemon. */
static pl_cfg_setting_t metrics_setting(const pl_daemon_def_t *def)
{
    const char *defval = def->metrics_addr_default ? def->metrics_addr_default : "";
    return (pl_cfg_setting_t){"PLAINT_METRICS_ADDR", defval, PL_CFG_HTTPADDR_OR_OFF,
                              &common_cfg.metrics_addr, 0, 0, METRICS_HELP};
}

static void print_help(const pl_daemon_def_t *def, const char *binary)
{
    printf("Usage: %s [--help] [--version]\n\n%s\n\n", binary, def->summary);
    printf("Settings (environment variables):\n");
    pl_cfg_print_help(common_settings, COMMON_COUNT);
    pl_cfg_setting_t metrics = metrics_setting(def);
    pl_cfg_print_help(&metrics, 1);
    if (def->nsettings)
        pl_cfg_print_help(def->settings, def->nsettings);
    printf("\nSIGTERM or SIGINT stops the daemon cleanly within 10 s.\n");
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(const pl_daemon_def_t *def, const char *binary, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_help(def, binary);
            return 0;
        }
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
            printf("%s %s\n", binary, PLAINT_VERSION);
            return 0;
        }
        fprintf(stderr, "%s: unknown argument \"%s\"\nhint: Settings come from PLAINT_* "
                        "environment variables; see %s --help.\n", binary, argv[i], binary);
        return EXIT_USAGE;
    }
    return -1;
}

static void report_errors(const char *binary, const pl_errlist_t *errs)
{
    for (size_t i = 0; i < errs->count; i++) {
        fprintf(stderr, "%s: %s\n", binary, errs->items[i].message);
        if (errs->items[i].hint[0])
            fprintf(stderr, "hint: %s\n", errs->items[i].hint);
    }
}

static int load_settings(const pl_daemon_def_t *def, const char *binary)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    int rc = pl_cfg_load(common_settings, COMMON_COUNT, &errs);
    pl_cfg_setting_t metrics = metrics_setting(def);
    if (pl_cfg_load(&metrics, 1, &errs) < 0)
        rc = PL_ECONFIG;
    if (def->nsettings && pl_cfg_load(def->settings, def->nsettings, &errs) < 0)
        rc = PL_ECONFIG;
    if (rc < 0 || errs.count)
        report_errors(binary, &errs);
    pl_errlist_reset(&errs);
    return rc < 0 ? EXIT_CONFIG : -1;
}

static int check_schema(pl_daemon_t *d)
{
    pl_err_t err;
    PGconn *conn = pl_db_connect_blocking(d->cfg.database_url, d->binary, d->cfg.db_wait_ms, &err);
    int rc = conn ? pl_schema_check(conn, &err) : err.code;
    PQfinish(conn);
    if (rc == 0)
        return 0;
    fprintf(stderr, "%s: %s\n", d->binary, err.message);
    if (err.hint[0])
        fprintf(stderr, "hint: %s\n", err.hint);
    pl_log_error("cannot start", "error", err.message, NULL);
    return rc == PL_ESCHEMA ? EXIT_CONFIG : 1;
}

static void on_grace_expired(uv_timer_t *timer)
{
    pl_daemon_t *d = timer->data;
    pl_log_error("shutdown took too long; exiting with work unfinished", "svc", d->def->name,
                 NULL);
    /* Whatever was not finished is still in PostgreSQL and will be picked up
     * again (leases expire, clients resubmit), so exiting is safe. */
    _exit(1);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    pl_daemon_t *d = sig->data;
    if (d->stopping)
        return;
    d->stopping = true;
    pl_log_info("stopping", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    (void)uv_timer_start(&d->grace, on_grace_expired, STOP_GRACE_MS, 0);
    /* The grace timer must not keep the loop alive once all else has closed. */
    uv_unref((uv_handle_t *)&d->grace);
    if (d->def->stop)
        d->def->stop(d, d->def->arg);
    else
        pl_daemon_stopped(d);
}

/* SIGHUP: the daemon rereads what it can (its model, its config files);
 * without a reload hook the signal is logged and ignored rather than killing
 * the process with the default action. */
static void on_sighup(uv_signal_t *sig, int signum)
{
    (void)signum;
    pl_daemon_t *d = sig->data;
    if (d->stopping)
        return;
    if (!d->def->reload) {
        pl_log_info("SIGHUP ignored: this daemon has nothing to reload", NULL);
        return;
    }
    pl_log_info("reloading", "signal", "SIGHUP", NULL);
    d->def->reload(d, d->def->arg);
}

void pl_daemon_stopped(pl_daemon_t *d)
{
    if (d->stopped)
        return;
    d->stopped = true;
    pl_http_server_close(&d->http);
    /* Keep catching signals until the process ends: a second SIGTERM while
     * the last handles close must not kill us with the default action. */
    uv_unref((uv_handle_t *)&d->sigterm);
    uv_unref((uv_handle_t *)&d->sigint);
    uv_unref((uv_handle_t *)&d->sighup);
}

/* ---- /metrics and /healthz ---- */

static void on_metrics(pl_http_req_t *req, void *arg)
{
    pl_daemon_t *d = arg;
    size_t len;
    char *text = pl_metrics_render(d->metrics, &len);
    (void)pl_http_req_set_header(req, "Cache-Control", "no-store"); /* a constant, valid header */
    pl_http_respond(req, 200, PL_METRICS_CONTENT_TYPE, text, len);
    pl_free(text);
}

static void on_healthz(pl_http_req_t *req, void *arg)
{
    pl_daemon_t *d = arg;
    d->health_reason[0] = '\0';
    bool ok = !d->stopping && (!d->def->healthy || d->def->healthy(d, d->def->arg));
    cJSON *body = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(body, "status", ok ? "ok" : "unavailable");
    if (!ok)
        pl_json_add_str(body, "reason", d->stopping ? "the daemon is stopping"
                                        : d->health_reason[0] ? d->health_reason
                                                              : "the daemon is not ready");
    (void)pl_http_req_set_header(req, "Cache-Control", "no-store"); /* a constant, valid header */
    pl_http_respond_json(req, ok ? 200 : 503, &body);
}

int pl_daemon_serve_status(pl_daemon_t *d, pl_http_server_t *server)
{
    int rc = pl_http_route(server, "GET", "/metrics", PL_HTTP_EXACT, on_metrics, d);
    return rc < 0 ? rc : pl_http_route(server, "GET", "/healthz", PL_HTTP_EXACT, on_healthz, d);
}

static void add_process_metrics(pl_daemon_t *d)
{
    pl_metric_set(pl_metrics_gauge(d->metrics, "plaint_up", "1 while the daemon runs", NULL), 1);
    pl_metric_set(pl_metrics_gauge(d->metrics, "plaint_start_time_seconds",
                                   "when the daemon started, in seconds since the Unix epoch",
                                   NULL),
                  (double)pl_time_now_ms() / 1000.0);
    pl_metric_set(pl_metrics_gauge(d->metrics, "plaint_build_info",
                                   "the daemon's version, as a label; the value is always 1",
                                   "version", PLAINT_VERSION, NULL),
                  1);
}

/* Listens on PLAINT_METRICS_ADDR (when set) before the daemon starts, so
 * that its start function may add routes. */
static int start_http(pl_daemon_t *d, pl_err_t *err)
{
    d->metrics = pl_metrics_new();
    add_process_metrics(d);
    if (!*d->cfg.metrics_addr)
        return 0;
    d->http = pl_http_server_new(&d->loop, d->cfg.metrics_addr, err);
    if (!d->http) {
        pl_err_t why = *err;
        pl_err_set(err, why.code, "PLAINT_METRICS_ADDR",
                   "cannot serve metrics on PLAINT_METRICS_ADDR: %.400s", why.message);
        return pl_err_hint(err, "%.120s Set PLAINT_METRICS_ADDR to a free HOST:PORT, or to \"\" "
                                "for no metrics listener.", why.hint);
    }
    if (pl_http_route(d->http, "GET", "/metrics", PL_HTTP_EXACT, on_metrics, d) < 0 ||
        pl_http_route(d->http, "GET", "/healthz", PL_HTTP_EXACT, on_healthz, d) < 0)
        return pl_err_set(err, PL_EINTERNAL, "", "cannot route /metrics and /healthz");
    pl_log_info("serving metrics", "addr", d->cfg.metrics_addr, NULL);
    return 0;
}

static int report_start_failure(pl_daemon_t *d, int rc, const pl_err_t *err)
{
    fprintf(stderr, "%s: %s\n", d->binary, err->message);
    if (err->hint[0])
        fprintf(stderr, "hint: %s\n", err->hint);
    pl_log_error("cannot start", "error", err->message, NULL);
    unfinished = d;
    return rc == PL_ECONFIG ? EXIT_CONFIG : 1;
}

static int start_loop(pl_daemon_t *d)
{
    if (uv_loop_init(&d->loop) != 0)
        return 1;
    d->zctx = zmq_ctx_new();
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    uv_signal_init(&d->loop, &d->sighup);
    uv_timer_init(&d->loop, &d->grace);
    d->sigterm.data = d->sigint.data = d->sighup.data = d->grace.data = d;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_signal_start(&d->sighup, on_sighup, SIGHUP);
    pl_err_t err;
    pl_err_clear(&err);
    int rc = start_http(d, &err);
    if (rc == 0)
        rc = d->def->start(d, d->def->arg, &err);
    if (rc < 0)
        return report_start_failure(d, rc, &err);
    pl_log_info("started", "version", PLAINT_VERSION, "instance", d->instance, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&d->grace, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    pl_metrics_destroy(&d->metrics);
    zmq_ctx_term(d->zctx);
    if (uv_loop_close(&d->loop) != 0)
        pl_log_warn("handles left open at exit", NULL);
    pl_log_info("stopped", NULL);
    return 0;
}

int pl_daemon_run(const pl_daemon_def_t *def, int argc, char **argv)
{
    pl_daemon_t *d = pl_calloc(1, sizeof *d);
    d->def = def;
    snprintf(d->binary, sizeof d->binary, "plaint-%s", def->name);
    int rc = parse_args(def, d->binary, argc, argv);
    if (rc < 0)
        rc = load_settings(def, d->binary);
    if (rc < 0) {
        d->cfg = common_cfg;
        pl_log_init(def->name, (pl_log_level_t)d->cfg.log_level);
        char host[128] = "localhost";
        (void)gethostname(host, sizeof host - 1);
        snprintf(d->instance, sizeof d->instance, "%s@%s:%d", d->binary, host, (int)getpid());
        int schema_rc = def->needs_db ? check_schema(d) : 0;
        if (schema_rc != 0)
            rc = schema_rc;
    }
    if (rc < 0)
        rc = start_loop(d);
    pl_cfg_free_strings();
    if (d != unfinished)
        pl_free(d);
    return rc;
}

uv_loop_t *pl_daemon_loop(pl_daemon_t *d)
{
    return &d->loop;
}

void *pl_daemon_zmq(pl_daemon_t *d)
{
    return d->zctx;
}

const pl_common_cfg_t *pl_daemon_cfg(const pl_daemon_t *d)
{
    return &d->cfg;
}

const char *pl_daemon_name(const pl_daemon_t *d)
{
    return d->def->name;
}

const char *pl_daemon_instance(const pl_daemon_t *d)
{
    return d->instance;
}

pl_metrics_t *pl_daemon_metrics(pl_daemon_t *d)
{
    return d->metrics;
}

pl_http_server_t *pl_daemon_http(pl_daemon_t *d)
{
    return d->http;
}

void pl_daemon_set_health_reason(pl_daemon_t *d, const char *reason)
{
    snprintf(d->health_reason, sizeof d->health_reason, "%s", reason ? reason : "");
}
