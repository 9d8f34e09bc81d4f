/*
 * plaint-intake: receives complaint.submit messages on a ROUTER socket,
 * validates them field by field, stores accepted ones by group commit and
 * replies only after COMMIT; also hosts the event hub (intake_hub.h).
 *
 * Trusts nothing a client sends. Owns the ROUTER socket, the batcher, the hub
 * and each request until its reply is sent.
 */
#include <stdio.h>
#include <string.h>

#include "intake_batch.h"
#include "intake_hub.h"
#include "intake_submit.h"
#include "pl_alloc.h"
#include "pl_bus.h"
#include "pl_daemon.h"
#include "pl_json.h"
#include "pl_log.h"
#include "pl_msg.h"
#include "pl_time.h"

#define ENVELOPE_FRAMES_MAX 8

static struct {
    const char *classify_endpoint;
    const char *route_endpoint;
    int64_t batch_max;
    int64_t db_connections;
    int64_t queue_max;
    int64_t timeout_ms;
} settings;

static const pl_cfg_setting_t intake_settings[] = {
    {"PLAINT_CLASSIFY_ENDPOINT", "tcp://*:7111", PL_CFG_ENDPOINT, &settings.classify_endpoint, 0,
     0, "work for the classifier: the hub binds PUSH here, classifiers connect"},
    {"PLAINT_ROUTE_ENDPOINT", "tcp://*:7112", PL_CFG_ENDPOINT, &settings.route_endpoint, 0, 0,
     "work for routing: the hub binds PUSH here, routing replicas connect"},
    {"PLAINT_INTAKE_BATCH_MAX", "256", PL_CFG_INT, &settings.batch_max, 1, 10000,
     "complaints stored per transaction at most"},
    {"PLAINT_INTAKE_DB_CONNECTIONS", "1", PL_CFG_INT, &settings.db_connections, 1, 64,
     "database connections, each with one batch in flight"},
    {"PLAINT_INTAKE_QUEUE_MAX", "20000", PL_CFG_INT, &settings.queue_max, 1, 1000000,
     "complaints waiting for a transaction before new ones get unavailable"},
    {"PLAINT_INTAKE_TIMEOUT", "4s", PL_CFG_DURATION, &settings.timeout_ms, 200, 60000,
     "a complaint not committed by then gets an unavailable reply"},
};

/* Outcomes of a complaint.submit, as the result label of
 * plaint_intake_submissions_total. */
typedef enum {
    RESULT_ACCEPTED,
    RESULT_DUPLICATE,
    RESULT_INVALID,
    RESULT_TOO_LARGE,
    RESULT_UNAVAILABLE,
    RESULT_COUNT
} result_t;

static const char *const result_names[RESULT_COUNT] = {"accepted", "duplicate", "invalid",
                                                       "too_large", "unavailable"};

/* Series in the daemon's registry (borrowed from it). */
typedef struct intake_metrics {
    pl_metric_t *submissions[RESULT_COUNT];
    pl_metric_t *ack_seconds; /* receive to the reply after COMMIT */
    pl_metric_t *queue;       /* waiting + in flight */
    pl_metric_t *db_up;
} intake_metrics_t;

typedef struct intake {
    pl_daemon_t *daemon;
    pl_sock_t *router;
    intake_batcher_t *batcher;
    intake_hub_t *hub;
    const char *source; /* our instance name, borrowed from the daemon */
    intake_metrics_t m;
    uv_timer_t *warmup; /* until the database connections are first ready */
    int64_t warmup_until_ms;
} intake_t;

/* A request waiting for its commit: the routing envelope to reply through. */
typedef struct request {
    intake_t *in;
    size_t nframes;
    pl_frame_t frames[ENVELOPE_FRAMES_MAX];
    char *msg_id;
    uint64_t received_ns; /* uv_hrtime() when the message arrived */
} request_t;

static intake_t intake;

static request_t *request_new(intake_t *in, zmq_msg_t *frames, size_t n_envelope,
                              const char *msg_id)
{
    request_t *req = pl_calloc(1, sizeof *req);
    req->in = in;
    req->nframes = n_envelope;
    for (size_t i = 0; i < n_envelope; i++) {
        size_t len = zmq_msg_size(&frames[i]);
        req->frames[i].data = pl_strndup(zmq_msg_data(&frames[i]), len);
        req->frames[i].len = len;
    }
    req->msg_id = pl_strdup(msg_id);
    req->received_ns = uv_hrtime();
    return req;
}

static void count(intake_t *in, result_t result)
{
    pl_metric_inc(in->m.submissions[result]);
}

/* The result an error reply reports. */
static result_t error_result(int code)
{
    return code == PL_ETOOLARGE ? RESULT_TOO_LARGE
         : code == PL_EUNAVAIL  ? RESULT_UNAVAILABLE
                                : RESULT_INVALID;
}

static void request_free(request_t *req)
{
    for (size_t i = 0; i < req->nframes; i++)
        pl_free((void *)req->frames[i].data);
    pl_free(req->msg_id);
    pl_free(req);
}

static void reply(request_t *req, cJSON *msg)
{
    if (req->msg_id && !cJSON_HasObjectItem(msg, "correlation_id"))
        cJSON_AddStringToObject(msg, "correlation_id", req->msg_id);
    char *json = pl_json_print(msg);
    cJSON_Delete(msg);
    pl_frame_t frames[ENVELOPE_FRAMES_MAX + 1];
    memcpy(frames, req->frames, req->nframes * sizeof *frames);
    frames[req->nframes] = (pl_frame_t){json, strlen(json)};
    if (req->in->router && pl_sock_send(req->in->router, frames, req->nframes + 1) < 0)
        pl_log_warn("reply not sent; the client is gone or not reading", "msg_id",
                    req->msg_id ? req->msg_id : "", NULL);
    pl_free(json);
}

static void reply_error(request_t *req, int code, const char *message, const pl_errlist_t *errs)
{
    reply(req, pl_msg_error_new(req->in->source, req->msg_id, code, message, errs));
}

static void on_stored(void *ctx, const intake_stored_t *stored, const pl_err_t *err)
{
    request_t *req = ctx;
    if (stored) {
        cJSON *data = cJSON_CreateObject();
        cJSON_AddStringToObject(data, "case_id", stored->case_id);
        cJSON_AddStringToObject(data, "case_no", stored->case_no);
        cJSON_AddBoolToObject(data, "duplicate", stored->duplicate);
        reply(req, pl_msg_new(PL_MSG_ACCEPTED, req->in->source, data));
        count(req->in, stored->duplicate ? RESULT_DUPLICATE : RESULT_ACCEPTED);
        pl_metric_observe(req->in->m.ack_seconds, (double)(uv_hrtime() - req->received_ns) / 1e9);
        if (!stored->duplicate && req->in->hub)
            intake_hub_case_received(req->in->hub, stored->case_id, stored->seq);
        pl_log_info(stored->duplicate ? "duplicate submission" : "case accepted", "case_id",
                    stored->case_id, "case_no", stored->case_no, NULL);
    } else {
        pl_errlist_t errs = PL_ERRLIST_INIT;
        if (err->code != PL_EUNAVAIL)
            pl_errlist_push(&errs, err);
        char message[PL_ERR_MSG_MAX + PL_ERR_HINT_MAX + 2];
        snprintf(message, sizeof message, "%s%s%s", err->message, err->hint[0] ? "; " : "",
                 err->hint);
        reply_error(req, err->code, message, &errs);
        count(req->in, error_result(err->code));
        pl_errlist_reset(&errs);
    }
    request_free(req);
}

/* Index of the first payload frame: after the routing envelope, which ends
 * with an empty delimiter for REQ clients and DEALERs that mimic them. */
static size_t envelope_length(zmq_msg_t *frames, size_t n)
{
    for (size_t i = 1; i < n && i < ENVELOPE_FRAMES_MAX; i++)
        if (zmq_msg_size(&frames[i]) == 0)
            return i + 1;
    return 1;
}

static void summarize(const pl_errlist_t *errs, char *buf, size_t size)
{
    if (errs->count == 1)
        snprintf(buf, size, "%s", errs->items[0].message);
    else
        snprintf(buf, size, "the message has %zu problems; see errors", errs->count + errs->dropped);
}

/* Checks one payload frame; returns a submission or NULL with errs filled. */
static intake_submission_t *check_payload(zmq_msg_t *payload, size_t npayload, pl_msg_t *msg,
                                          pl_errlist_t *errs)
{
    if (npayload != 1) {
        if (npayload == 0)
            pl_errlist_add(errs, PL_EINVAL, "", "message has no payload frame; send the JSON "
                                                "as one frame after the empty delimiter");
        else
            pl_errlist_add(errs, PL_EINVAL, "",
                           "message has %zu frames; send the JSON as exactly one frame", npayload);
        return NULL;
    }
    if (pl_msg_parse(zmq_msg_data(payload), zmq_msg_size(payload), msg, errs) < 0)
        return NULL;
    return intake_submission_new(msg, errs);
}

static void on_router(pl_sock_t *sock, zmq_msg_t *frames, size_t n, void *arg)
{
    intake_t *in = arg;
    (void)sock;
    size_t nenv = envelope_length(frames, n);
    pl_msg_t msg = {0};
    pl_errlist_t errs = PL_ERRLIST_INIT;
    intake_submission_t *sub = check_payload(frames + nenv, n > nenv ? n - nenv : 0, &msg, &errs);
    request_t *req = request_new(in, frames, nenv < n ? nenv : n, msg.id);
    if (!sub) {
        char summary[PL_ERR_MSG_MAX];
        summarize(&errs, summary, sizeof summary);
        reply_error(req, pl_errlist_code(&errs), summary, &errs);
        count(in, error_result(pl_errlist_code(&errs)));
        request_free(req);
    } else if (intake_batcher_submit(in->batcher, &sub, on_stored, req) < 0) {
        reply_error(req, PL_EUNAVAIL,
                    "the database is unavailable and nothing was stored; resubmit with the same "
                    "external_id", NULL);
        count(in, RESULT_UNAVAILABLE);
        request_free(req);
    }
    pl_errlist_reset(&errs);
    pl_msg_release(&msg);
}

/* Intake can take complaints and publish their events. */
static bool intake_healthy(pl_daemon_t *d, void *arg)
{
    intake_t *in = arg;
    if (!in->batcher || !intake_batcher_ready(in->batcher)) {
        pl_daemon_set_health_reason(d, "no database connection for storing complaints is ready");
        return false;
    }
    if (!intake_hub_ready(in->hub)) {
        pl_daemon_set_health_reason(d, "the event hub's database connection is not ready");
        return false;
    }
    return true;
}

/* Gauges read when scraped. The batcher and hub are gone after the drain. */
static void collect(void *arg)
{
    intake_t *in = arg;
    pl_metric_set(in->m.queue, in->batcher ? (double)intake_batcher_busy(in->batcher) : 0);
    bool up = in->batcher && intake_batcher_ready(in->batcher) && intake_hub_ready(in->hub);
    pl_metric_set(in->m.db_up, up ? 1 : 0);
}

static void add_metrics(intake_t *in, pl_metrics_t *reg)
{
    for (int r = 0; r < RESULT_COUNT; r++)
        in->m.submissions[r] = pl_metrics_counter(
            reg, "plaint_intake_submissions_total",
            "complaint.submit messages answered, by result", "result", result_names[r], NULL);
    in->m.ack_seconds = pl_metrics_histogram(
        reg, "plaint_intake_ack_seconds",
        "time from receiving a complaint to replying after its COMMIT, in seconds",
        pl_metrics_latency_buckets, PL_METRICS_LATENCY_BUCKETS_N, NULL);
    in->m.queue = pl_metrics_gauge(reg, "plaint_intake_queue",
                                   "complaints waiting for a transaction or in one", NULL);
    in->m.db_up = pl_metrics_gauge(
        reg, "plaint_db_up",
        "1 when the database connections the daemon needs are ready (intake: one for storing "
        "complaints and the event hub's), else 0", NULL);
    pl_metrics_on_collect(reg, collect, in);
}

static void on_warmup_closed(uv_handle_t *handle)
{
    pl_free(handle);
}

static void end_warmup(intake_t *in)
{
    if (!in->warmup)
        return;
    uv_close((uv_handle_t *)in->warmup, on_warmup_closed);
    in->warmup = NULL;
}

/* Complaints that waited for us while we started must not be refused just
 * because the first connections are still being made: hold them in ZeroMQ
 * until a connection is ready (or the reply deadline says to answer). */
static void on_warmup_tick(uv_timer_t *timer)
{
    intake_t *in = timer->data;
    if (!intake_batcher_ready(in->batcher) && pl_time_mono_ms() < in->warmup_until_ms)
        return;
    end_warmup(in);
    pl_sock_resume(in->router);
}

static void start_warmup(intake_t *in, uv_loop_t *loop)
{
    pl_sock_pause(in->router);
    in->warmup = pl_calloc(1, sizeof *in->warmup);
    (void)uv_timer_init(loop, in->warmup);
    in->warmup->data = in;
    in->warmup_until_ms = pl_time_mono_ms() + settings.timeout_ms / 2;
    (void)uv_timer_start(in->warmup, on_warmup_tick, 5, 5);
}

static int intake_start(pl_daemon_t *d, void *arg, pl_err_t *err)
{
    intake_t *in = arg;
    const pl_common_cfg_t *cfg = pl_daemon_cfg(d);
    uv_loop_t *loop = pl_daemon_loop(d);
    pl_metrics_t *reg = pl_daemon_metrics(d);
    in->daemon = d;
    in->source = pl_daemon_instance(d);
    add_metrics(in, reg);
    intake_hub_opts_t ho = {
        .conninfo = cfg->database_url,
        .app_name = "plaint-intake-hub",
        .source = in->source,
        .events_endpoint = cfg->events_endpoint,
        .classify_endpoint = settings.classify_endpoint,
        .route_endpoint = settings.route_endpoint,
        .metrics = reg,
    };
    in->hub = intake_hub_new(loop, pl_daemon_zmq(d), &ho, err);
    if (!in->hub)
        return err->code;
    in->router = pl_sock_new(loop, pl_daemon_zmq(d), ZMQ_ROUTER, err);
    if (!in->router || pl_sock_set_int(in->router, ZMQ_SNDHWM, 100000, err) < 0 ||
        pl_sock_set_int(in->router, ZMQ_RCVHWM, 100000, err) < 0 ||
        pl_sock_bind(in->router, cfg->submit_endpoint, err) < 0)
        return err->code ? err->code : PL_EIO;
    intake_batcher_opts_t bo = {
        .conninfo = cfg->database_url,
        .app_name = "plaint-intake",
        .event_source = "plaint-intake",
        .connections = (int)settings.db_connections,
        .batch_max = (int)settings.batch_max,
        .queue_max = (int)settings.queue_max,
        .timeout_ms = settings.timeout_ms,
        .metrics = reg,
    };
    in->batcher = intake_batcher_new(loop, &bo);
    pl_log_info("listening", "submit", cfg->submit_endpoint, "events", cfg->events_endpoint,
                "classify", settings.classify_endpoint, "route", settings.route_endpoint, NULL);
    int rc = pl_sock_start(in->router, on_router, in, err);
    if (rc == 0)
        start_warmup(in, loop);
    return rc;
}

static void on_drained(void *arg)
{
    intake_t *in = arg;
    /* Every accepted complaint has been committed and answered; the replies
     * sit in ZeroMQ's queue and ZMQ_LINGER gives them time to leave. */
    pl_sock_close(&in->router);
    intake_batcher_destroy(&in->batcher);
    intake_hub_destroy(&in->hub);
    pl_daemon_stopped(in->daemon);
}

static void intake_stop(pl_daemon_t *d, void *arg)
{
    intake_t *in = arg;
    (void)d;
    end_warmup(in);
    if (in->router)
        pl_sock_pause(in->router);
    char busy[24];
    pl_log_info("finishing accepted complaints", "count",
                pl_log_int(busy, (long long)intake_batcher_busy(in->batcher)), NULL);
    intake_batcher_drain(in->batcher, on_drained, in);
}

int main(int argc, char **argv)
{
    static const pl_daemon_def_t def = {
        .name = "intake",
        .summary = "Receives complaints on the submit endpoint, stores them durably and "
                   "publishes the case-event stream.",
        .settings = intake_settings,
        .nsettings = sizeof intake_settings / sizeof intake_settings[0],
        .needs_db = true,
        .start = intake_start,
        .stop = intake_stop,
        .arg = &intake,
        .metrics_addr_default = "0.0.0.0:9101",
        .healthy = intake_healthy,
    };
    return pl_daemon_run(&def, argc, argv);
}
