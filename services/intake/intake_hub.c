/*
 * intake_hub: sequencer, event publisher and stage dispatcher (see
 * intake_hub.h).
 *
 * Trusts what PostgreSQL returns (our own functions build the envelopes).
 * Owns its database connection, its three sockets and its timer.
 */
#include "intake_hub.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_bus.h"
#include "pl_db.h"
#include "pl_json.h"
#include "pl_log.h"
#include "pl_msg.h"

#define SEQUENCE_BATCH "500"
#define SEQUENCE_BATCH_N 500
#define FETCH_BATCH "1000"
#define FETCH_BATCH_N 1000

static const pl_db_stmt_t statements[] = {
    {"hub_head", "SELECT coalesce(max(seq), 0) FROM events"},
    {"hub_sequence", "SELECT seq, type, case_id FROM plaint_sequence_events($1::int)"},
    {"hub_fetch", "SELECT e.seq, e.type, plaint_event_envelope(e) FROM events e"
                  " WHERE e.seq > $1::bigint ORDER BY e.seq LIMIT $2::int"},
};

static const char *const channels[] = {"plaint_events", "plaint_seq", NULL};

struct intake_hub {
    intake_hub_opts_t opts;
    pl_db_t *db;
    pl_sock_t *pub;
    pl_sock_t *classify;
    pl_sock_t *route;
    uv_timer_t *timer;
    int64_t published; /* -1 until read from the database */
    bool want_sequence;
    bool want_fetch;
    bool busy;
    pl_metric_t *published_total;
    pl_metric_t *last_seq;
};

static void step(intake_hub_t *hub);

/* Which stage's input state an event puts its case in. */
static pl_sock_t *work_socket(intake_hub_t *hub, const char *type, const char **state)
{
    if (!strcmp(type, PL_EV_RECEIVED)) {
        *state = PL_STATE_RECEIVED;
        return hub->classify;
    }
    if (!strcmp(type, PL_EV_CLASSIFIED)) {
        *state = PL_STATE_CLASSIFIED;
        return hub->route;
    }
    return NULL;
}

static void hand_out(intake_hub_t *hub, pl_sock_t *sock, const char *state, const char *case_id,
                     int64_t seq)
{
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "case_id", case_id);
    cJSON_AddStringToObject(data, "state", state);
    cJSON_AddNumberToObject(data, "seq", (double)seq);
    cJSON *msg = pl_msg_new(PL_MSG_WORK, hub->opts.source, data);
    char *json = pl_json_print(msg);
    cJSON_Delete(msg);
    pl_frame_t frame = {json, strlen(json)};
    /* No stage connected, or all of them full: the stage's sweep will find
     * the case in its input state, so dropping here loses nothing. */
    if (pl_sock_send(sock, &frame, 1) < 0)
        pl_log_debug("work not handed out; the stage sweep will claim it", "case_id", case_id,
                     NULL);
    pl_free(json);
}

static void dispatch(intake_hub_t *hub, const char *seq, const char *type, const char *case_id)
{
    const char *state = NULL;
    pl_sock_t *sock = work_socket(hub, type, &state);
    if (sock && case_id && *case_id)
        hand_out(hub, sock, state, case_id, strtoll(seq, NULL, 10));
}

void intake_hub_case_received(intake_hub_t *hub, const char *case_id, int64_t seq)
{
    hand_out(hub, hub->classify, PL_STATE_RECEIVED, case_id, seq);
}

static void on_sequenced(PGresult *res, const pl_err_t *err, void *arg)
{
    intake_hub_t *hub = arg;
    hub->busy = false;
    if (err) {
        pl_log_warn("sequencing failed", "error", err->message, NULL);
        return; /* the next NOTIFY or tick retries */
    }
    int rows = PQntuples(res);
    for (int r = 0; r < rows; r++)
        dispatch(hub, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2));
    if (rows > 0)
        hub->want_fetch = true;
    if (rows == SEQUENCE_BATCH_N)
        hub->want_sequence = true;
    step(hub);
}

static void on_fetched(PGresult *res, const pl_err_t *err, void *arg)
{
    intake_hub_t *hub = arg;
    hub->busy = false;
    if (err) {
        pl_log_warn("reading events failed", "error", err->message, NULL);
        return;
    }
    int rows = PQntuples(res);
    for (int r = 0; r < rows; r++) {
        int64_t seq = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        if (seq <= hub->published)
            continue;
        pl_frame_t frames[2] = {
            {PQgetvalue(res, r, 1), (size_t)PQgetlength(res, r, 1)},
            {PQgetvalue(res, r, 2), (size_t)PQgetlength(res, r, 2)},
        };
        /* PUB never blocks: a slow subscriber loses messages and replays
         * them by seq over HTTP (proto/PROTOCOL.md). */
        (void)pl_sock_send(hub->pub, frames, 2);
        hub->published = seq;
        pl_metric_inc(hub->published_total);
    }
    pl_metric_set(hub->last_seq, (double)hub->published);
    if (rows == FETCH_BATCH_N)
        hub->want_fetch = true;
    step(hub);
}

static void on_head(PGresult *res, const pl_err_t *err, void *arg)
{
    intake_hub_t *hub = arg;
    hub->busy = false;
    if (err)
        return;
    hub->published = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    pl_metric_set(hub->last_seq, (double)hub->published);
    char buf[24];
    pl_log_info("event stream starts", "after_seq", pl_log_int(buf, hub->published), NULL);
    step(hub);
}

static void step(intake_hub_t *hub)
{
    if (hub->busy || !pl_db_ready(hub->db))
        return;
    int rc = 0;
    if (hub->published < 0) {
        rc = pl_db_exec(hub->db, "hub_head", 0, NULL, on_head, hub);
    } else if (hub->want_sequence) {
        hub->want_sequence = false;
        const char *params[1] = {SEQUENCE_BATCH};
        rc = pl_db_exec(hub->db, "hub_sequence", 1, params, on_sequenced, hub);
    } else if (hub->want_fetch) {
        hub->want_fetch = false;
        char after[24];
        snprintf(after, sizeof after, "%lld", (long long)hub->published);
        const char *params[2] = {after, FETCH_BATCH};
        rc = pl_db_exec(hub->db, "hub_fetch", 2, params, on_fetched, hub);
    } else
        return;
    hub->busy = rc == 0;
}

static void on_notify(pl_db_t *db, const char *channel, const char *payload, void *arg)
{
    intake_hub_t *hub = arg;
    (void)db;
    (void)payload;
    if (!strcmp(channel, "plaint_events"))
        hub->want_sequence = true;
    else
        hub->want_fetch = true;
    step(hub);
}

static void on_db_state(pl_db_t *db, pl_db_state_t state, void *arg)
{
    intake_hub_t *hub = arg;
    (void)db;
    if (state == PL_DB_DOWN)
        hub->busy = false; /* the statement in flight was failed */
    if (state != PL_DB_READY)
        return;
    /* Anything may have been committed while we were away. */
    hub->want_sequence = hub->want_fetch = true;
    step(hub);
}

static void on_tick(uv_timer_t *timer)
{
    intake_hub_t *hub = timer->data;
    hub->want_sequence = hub->want_fetch = true;
    step(hub);
}

static pl_sock_t *bound_socket(uv_loop_t *loop, void *zctx, int type, const char *endpoint,
                               pl_err_t *err)
{
    pl_sock_t *sock = pl_sock_new(loop, zctx, type, err);
    if (sock && pl_sock_bind(sock, endpoint, err) < 0)
        pl_sock_close(&sock);
    return sock;
}

intake_hub_t *intake_hub_new(uv_loop_t *loop, void *zctx, const intake_hub_opts_t *opts,
                             pl_err_t *err)
{
    intake_hub_t *hub = pl_calloc(1, sizeof *hub);
    hub->opts = *opts;
    hub->opts.source = pl_strdup(opts->source);
    hub->opts.metrics = NULL; /* not kept: the series below are */
    hub->published = -1;
    hub->published_total = pl_metrics_counter(
        opts->metrics, "plaint_events_published_total",
        "events sent on the event stream (PUB) by this process", NULL);
    hub->last_seq = pl_metrics_gauge(opts->metrics, "plaint_events_last_seq",
                                     "seq of the last event sent on the event stream", NULL);
    hub->pub = bound_socket(loop, zctx, ZMQ_PUB, opts->events_endpoint, err);
    if (hub->pub)
        hub->classify = bound_socket(loop, zctx, ZMQ_PUSH, opts->classify_endpoint, err);
    if (hub->classify)
        hub->route = bound_socket(loop, zctx, ZMQ_PUSH, opts->route_endpoint, err);
    if (!hub->route) {
        intake_hub_destroy(&hub);
        return NULL;
    }
    pl_db_opts_t dbo = {
        .conninfo = opts->conninfo,
        .app_name = opts->app_name,
        .stmts = statements,
        .nstmts = sizeof statements / sizeof statements[0],
        .listen = channels,
        .on_state = on_db_state,
        .on_notify = on_notify,
        .arg = hub,
    };
    hub->db = pl_db_new(loop, &dbo);
    hub->timer = pl_calloc(1, sizeof *hub->timer);
    (void)uv_timer_init(loop, hub->timer);
    hub->timer->data = hub;
    uint64_t period = (uint64_t)(opts->poll_ms > 0 ? opts->poll_ms : 1000);
    (void)uv_timer_start(hub->timer, on_tick, period, period);
    return hub;
}

int64_t intake_hub_published(const intake_hub_t *hub)
{
    return hub->published;
}

bool intake_hub_ready(const intake_hub_t *hub)
{
    return hub && pl_db_ready(hub->db);
}

static void on_timer_closed(uv_handle_t *handle)
{
    pl_free(handle);
}

void intake_hub_destroy(intake_hub_t **hub_p)
{
    intake_hub_t *hub = hub_p ? *hub_p : NULL;
    if (!hub)
        return;
    *hub_p = NULL;
    pl_db_close(&hub->db);
    pl_sock_close(&hub->pub);
    pl_sock_close(&hub->classify);
    pl_sock_close(&hub->route);
    if (hub->timer)
        uv_close((uv_handle_t *)hub->timer, on_timer_closed);
    pl_free((char *)hub->opts.source);
    pl_free(hub);
}
