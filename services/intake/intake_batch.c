/*
 * intake_batch: group commit of accepted submissions (see intake_batch.h).
 *
 * Trusts submissions (already validated); trusts nothing about the database
 * staying up. Owns the waiting submissions, the batches in flight and the
 * database connections.
 */
#include "intake_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_db.h"
#include "pl_json.h"
#include "pl_log.h"
#include "pl_pgarray.h"
#include "pl_time.h"
#include "pl_uuid.h"

#define EXPIRY_TICK_MS 100
#define RETRIES_MAX 3

static const char SQL_SUBMIT_BATCH[] =
    "SELECT idx, case_id, case_no, duplicate, seq FROM plaint_submit_batch($1, $2, $3, $4, $5,"
    " $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)";

/* The row fields in plaint_submit_batch's parameter order (case_id, first, is
 * made here); JSON-valued ones (object, array) are sent as their text. */
static const char *const columns[] = {
    "case_id", "source", "external_id", "message_id", "channel", "customer_id",
    "customer_name", "customer_phone", "customer_email", "customer_type", "lang", "subject",
    "body", "demand", "demand_type", "target", "occurred_at", "location", "attachments",
    "submission",
};
#define NCOLUMNS ((int)(sizeof columns / sizeof columns[0]))

static const pl_db_stmt_t statements[] = {
    {"submit_batch", SQL_SUBMIT_BATCH},
};

typedef struct pending {
    struct pending *next;
    intake_submission_t *sub;
    intake_stored_cb cb;
    void *ctx;
    int64_t deadline_ms; /* monotonic */
    int retries;
    bool solo; /* a batch holding it was refused: retry it alone */
} pending_t;

typedef struct slot {
    intake_batcher_t *b;
    pl_db_t *db;
    pending_t **batch;
    int count;
    int64_t sent_ms;  /* monotonic, for the batch log line */
    uint64_t sent_ns; /* uv_hrtime(), for plaint_intake_batch_seconds */
} slot_t;

struct intake_batcher {
    uv_loop_t *loop;
    intake_batcher_opts_t opts;
    slot_t *slots;
    pending_t *head, *tail;
    size_t waiting;
    size_t in_flight;
    uv_timer_t *expiry;
    void (*drained)(void *arg);
    void *drained_arg;
    pl_metric_t *batch_size;    /* complaints per transaction */
    pl_metric_t *batch_seconds; /* send to result, whatever the result */
};

static const double size_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};

static void pump(intake_batcher_t *b);

static void finish(pending_t *p, const intake_stored_t *stored, const pl_err_t *err)
{
    p->cb(p->ctx, stored, err);
    intake_submission_destroy(&p->sub);
    pl_free(p);
}

static void fail(pending_t *p, int code, const char *why)
{
    pl_err_t err;
    pl_err_set(&err, code, "", "%s", why);
    if (code == PL_EUNAVAIL)
        pl_err_hint(&err, "nothing was acknowledged: resubmit with the same external_id");
    finish(p, NULL, &err);
}

static void push_back(intake_batcher_t *b, pending_t *p)
{
    p->next = NULL;
    if (b->tail)
        b->tail->next = p;
    else
        b->head = p;
    b->tail = p;
    b->waiting++;
}

/* Requeues a refused batch at the front, in its original order. */
static void push_front_all(intake_batcher_t *b, pending_t **items, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        items[i]->next = b->head;
        b->head = items[i];
        if (!b->tail)
            b->tail = items[i];
        b->waiting++;
    }
}

static pending_t *pop_front(intake_batcher_t *b)
{
    pending_t *p = b->head;
    if (!p)
        return NULL;
    b->head = p->next;
    if (!b->head)
        b->tail = NULL;
    b->waiting--;
    p->next = NULL;
    return p;
}

static void check_drained(intake_batcher_t *b)
{
    if (b->drained && b->waiting == 0 && b->in_flight == 0) {
        void (*done)(void *) = b->drained;
        b->drained = NULL;
        done(b->drained_arg);
    }
}

static void fail_waiting(intake_batcher_t *b, const char *why)
{
    pending_t *p;
    while ((p = pop_front(b)) != NULL)
        fail(p, PL_EUNAVAIL, why);
    check_drained(b);
}

bool intake_batcher_ready(const intake_batcher_t *b)
{
    for (int i = 0; i < b->opts.connections; i++)
        if (pl_db_ready(b->slots[i].db))
            return true;
    return false;
}

/* ---- results ---- */

static void deliver_rows(slot_t *s, PGresult *res)
{
    int rows = PQntuples(res);
    bool *done = pl_calloc((size_t)s->count, sizeof *done);
    for (int r = 0; r < rows; r++) {
        int idx = atoi(PQgetvalue(res, r, 0));
        if (idx < 0 || idx >= s->count || done[idx])
            continue;
        intake_stored_t stored = {
            .case_id = PQgetvalue(res, r, 1),
            .case_no = PQgetvalue(res, r, 2),
            .duplicate = PQgetvalue(res, r, 3)[0] == 't',
            .seq = PQgetisnull(res, r, 4) ? 0 : strtoll(PQgetvalue(res, r, 4), NULL, 10),
        };
        done[idx] = true;
        finish(s->batch[idx], &stored, NULL);
    }
    for (int i = 0; i < s->count; i++)
        if (!done[i]) /* cannot happen unless the SQL function is wrong */
            fail(s->batch[i], PL_EUNAVAIL, "the database returned no case for this complaint");
    pl_free(done);
}

static void handle_refusal(slot_t *s, const pl_err_t *err)
{
    intake_batcher_t *b = s->b;
    if (err->code == PL_EINVAL && s->count == 1) {
        pl_err_t mine = *err;
        pl_err_set(&mine, PL_EINVAL, "data", "the database refused this complaint: %s",
                   err->message);
        finish(s->batch[0], NULL, &mine);
        return;
    }
    if (err->code == PL_EINVAL) {
        /* One bad row must not sink the others: retry each alone. */
        for (int i = 0; i < s->count; i++)
            s->batch[i]->solo = true;
        push_front_all(b, s->batch, s->count);
        return;
    }
    if (err->code == PL_EAGAIN && s->batch[0]->retries < RETRIES_MAX) {
        for (int i = 0; i < s->count; i++)
            s->batch[i]->retries++;
        push_front_all(b, s->batch, s->count);
        return;
    }
    for (int i = 0; i < s->count; i++)
        fail(s->batch[i], PL_EUNAVAIL, err->message);
}

static void on_batch_done(PGresult *res, const pl_err_t *err, void *arg)
{
    slot_t *s = arg;
    intake_batcher_t *b = s->b;
    b->in_flight -= (size_t)s->count;
    pl_metric_observe(b->batch_seconds, (double)(uv_hrtime() - s->sent_ns) / 1e9);
    if (pl_log_enabled(PL_LOG_DEBUG)) {
        char n[24], ms[24];
        pl_log_debug("batch done", "count", pl_log_int(n, s->count), "ms",
                     pl_log_int(ms, pl_time_mono_ms() - s->sent_ms), NULL);
    }
    if (err) {
        pl_log_warn("batch not stored", "error", err->message, NULL);
        handle_refusal(s, err);
    } else
        deliver_rows(s, res);
    pl_free(s->batch);
    s->batch = NULL;
    s->count = 0;
    pump(b);
    check_drained(b);
}

/* ---- sending ---- */

static int take_batch(intake_batcher_t *b, slot_t *s)
{
    int max = b->opts.batch_max;
    s->batch = pl_malloc((size_t)max * sizeof *s->batch);
    s->count = 0;
    while (b->head && s->count < max) {
        if (b->head->solo && s->count > 0)
            break;
        s->batch[s->count++] = pop_front(b);
        if (s->batch[s->count - 1]->solo)
            break;
    }
    return s->count;
}

static void add_field(pl_pgarray_t *a, const cJSON *value)
{
    if (cJSON_IsString(value))
        pl_pgarray_add_str(a, value->valuestring);
    else if (cJSON_IsObject(value) || cJSON_IsArray(value)) {
        char *text = pl_json_print(value);
        pl_pgarray_add_str(a, text);
        pl_free(text);
    } else
        pl_pgarray_add(a, NULL, 0);
}

static void send_batch(intake_batcher_t *b, slot_t *s)
{
    take_batch(b, s);
    pl_pgarray_t *arrays[NCOLUMNS];
    for (int c = 0; c < NCOLUMNS; c++)
        arrays[c] = pl_pgarray_new();
    char case_id[PL_UUID_STR];
    for (int i = 0; i < s->count; i++) {
        const intake_submission_t *sub = s->batch[i]->sub;
        pl_pgarray_add_str(arrays[0], pl_uuid_v7(case_id));
        for (int c = 1; c < NCOLUMNS; c++)
            add_field(arrays[c], intake_submission_field(sub, columns[c]));
    }
    const char *params[NCOLUMNS + 1];
    int lengths[NCOLUMNS + 1], formats[NCOLUMNS + 1];
    for (int c = 0; c < NCOLUMNS; c++) {
        params[c] = pl_pgarray_data(arrays[c], &lengths[c]);
        formats[c] = 1;
    }
    params[NCOLUMNS] = b->opts.event_source;
    lengths[NCOLUMNS] = (int)strlen(b->opts.event_source);
    formats[NCOLUMNS] = 0;
    b->in_flight += (size_t)s->count;
    s->sent_ms = pl_time_mono_ms();
    s->sent_ns = uv_hrtime();
    int rc = pl_db_exec_params(s->db, "submit_batch", NCOLUMNS + 1, params, lengths, formats,
                               on_batch_done, s);
    for (int c = 0; c < NCOLUMNS; c++)
        pl_pgarray_destroy(&arrays[c]);
    if (rc == 0)
        pl_metric_observe(b->batch_size, s->count);
    if (rc < 0) {
        b->in_flight -= (size_t)s->count;
        push_front_all(b, s->batch, s->count);
        pl_free(s->batch);
        s->batch = NULL;
        s->count = 0;
    }
}

static void pump(intake_batcher_t *b)
{
    for (int i = 0; i < b->opts.connections && b->head; i++) {
        slot_t *s = &b->slots[i];
        if (!s->batch && pl_db_ready(s->db))
            send_batch(b, s);
    }
}

static void on_db_state(pl_db_t *db, pl_db_state_t state, void *arg)
{
    slot_t *s = arg;
    (void)db;
    if (state == PL_DB_READY)
        pump(s->b);
    else if (!intake_batcher_ready(s->b))
        fail_waiting(s->b, "the database is unavailable");
}

static void on_expiry_tick(uv_timer_t *timer)
{
    intake_batcher_t *b = timer->data;
    int64_t now = pl_time_mono_ms();
    while (b->head && b->head->deadline_ms <= now) {
        char why[128];
        snprintf(why, sizeof why, "the complaint was not stored within %lld ms",
                 (long long)b->opts.timeout_ms);
        fail(pop_front(b), PL_EUNAVAIL, why);
    }
    check_drained(b);
}

/* ---- public ---- */

intake_batcher_t *intake_batcher_new(uv_loop_t *loop, const intake_batcher_opts_t *opts)
{
    intake_batcher_t *b = pl_calloc(1, sizeof *b);
    b->loop = loop;
    b->opts = *opts;
    b->opts.conninfo = pl_strdup(opts->conninfo);
    b->opts.app_name = pl_strdup(opts->app_name);
    b->opts.event_source = pl_strdup(opts->event_source);
    b->batch_size = pl_metrics_histogram(opts->metrics, "plaint_intake_batch_size",
                                         "complaints stored per transaction (group commit)",
                                         size_buckets, sizeof size_buckets / sizeof *size_buckets,
                                         NULL);
    b->batch_seconds = pl_metrics_histogram(
        opts->metrics, "plaint_intake_batch_seconds",
        "time from sending a batch to the database to its result, in seconds",
        pl_metrics_latency_buckets, PL_METRICS_LATENCY_BUCKETS_N, NULL);
    if (b->opts.connections < 1)
        b->opts.connections = 1;
    if (b->opts.batch_max < 1)
        b->opts.batch_max = 1;
    b->slots = pl_calloc((size_t)b->opts.connections, sizeof *b->slots);
    /* Half the budget waiting, half in flight: the client hears back within
     * timeout_ms whatever the database does. */
    pl_db_opts_t dbo = {
        .conninfo = b->opts.conninfo,
        .app_name = b->opts.app_name,
        .stmts = statements,
        .nstmts = sizeof statements / sizeof statements[0],
        .query_timeout_ms = b->opts.timeout_ms / 2,
        .connect_timeout_ms = b->opts.timeout_ms / 2,
        .on_state = on_db_state,
    };
    for (int i = 0; i < b->opts.connections; i++) {
        b->slots[i].b = b;
        dbo.arg = &b->slots[i];
        b->slots[i].db = pl_db_new(loop, &dbo);
    }
    b->expiry = pl_calloc(1, sizeof *b->expiry);
    (void)uv_timer_init(loop, b->expiry);
    b->expiry->data = b;
    (void)uv_timer_start(b->expiry, on_expiry_tick, EXPIRY_TICK_MS, EXPIRY_TICK_MS);
    return b;
}

int intake_batcher_submit(intake_batcher_t *b, intake_submission_t **sub_p, intake_stored_cb cb,
                          void *ctx)
{
    if (!intake_batcher_ready(b) || b->waiting >= (size_t)b->opts.queue_max) {
        intake_submission_destroy(sub_p);
        return PL_EUNAVAIL;
    }
    pending_t *p = pl_calloc(1, sizeof *p);
    p->sub = *sub_p;
    *sub_p = NULL;
    p->cb = cb;
    p->ctx = ctx;
    p->deadline_ms = pl_time_mono_ms() + b->opts.timeout_ms / 2;
    push_back(b, p);
    pump(b);
    return 0;
}

size_t intake_batcher_busy(const intake_batcher_t *b)
{
    return b->waiting + b->in_flight;
}

void intake_batcher_drain(intake_batcher_t *b, void (*done)(void *arg), void *arg)
{
    b->drained = done;
    b->drained_arg = arg;
    check_drained(b);
}

static void on_expiry_closed(uv_handle_t *handle)
{
    pl_free(handle);
}

void intake_batcher_destroy(intake_batcher_t **b_p)
{
    intake_batcher_t *b = b_p ? *b_p : NULL;
    if (!b)
        return;
    *b_p = NULL;
    b->drained = NULL;
    fail_waiting(b, "intake is shutting down");
    for (int i = 0; i < b->opts.connections; i++)
        pl_db_close(&b->slots[i].db); /* fails batches in flight */
    uv_close((uv_handle_t *)b->expiry, on_expiry_closed);
    pl_free(b->slots);
    pl_free((char *)b->opts.conninfo);
    pl_free((char *)b->opts.app_name);
    pl_free((char *)b->opts.event_source);
    pl_free(b);
}
