/*
 * plaint-test-stage: a stand-in classifier built on pl_stage, for tests.
 *
 * Moves cases from "received" to "classified" with a fixed classification.
 * Knobs (environment) make it misbehave on purpose:
 *   PLAINT_TEST_STAGE_DELAY    time each step takes ("0s"); kill it meanwhile
 *   PLAINT_TEST_STAGE_POISON   a body containing this fails its step every time
 *   PLAINT_TEST_STAGE_CRASH    a body containing this aborts the process mid-step
 * Trusts its environment (it is a test tool); owns its timers.
 */
#include <stdlib.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_daemon.h"
#include "pl_json.h"
#include "pl_log.h"
#include "pl_msg.h"
#include "pl_stage.h"

static struct {
    const char *work_endpoint;
    int64_t delay_ms;
    const char *poison;
    const char *crash;
} knobs;

static pl_stage_cfg_t stage_cfg;
static pl_cfg_setting_t settings[16];

typedef struct delayed {
    uv_timer_t timer;
    pl_stage_job_t *job;
} delayed_t;

static pl_daemon_t *daemon_;
static pl_stage_t *stage;

static void finish(pl_stage_job_t *job)
{
    const char *body = pl_json_str(pl_stage_job_case(job), "body", "");
    if (*knobs.poison && strstr(body, knobs.poison)) {
        pl_stage_job_fail(&job, "test stage: poison marker in body");
        return;
    }
    if (*knobs.crash && strstr(body, knobs.crash))
        abort(); /* a bug that kills the process mid-step */
    cJSON *patch = cJSON_CreateObject();
    cJSON_AddStringToObject(patch, "category", "other");
    cJSON_AddStringToObject(patch, "priority", "P3");
    cJSON_AddNumberToObject(patch, "confidence", 0.5);
    cJSON_AddStringToObject(patch, "sentiment", "calm");
    cJSON_AddItemToObject(patch, "signals", cJSON_CreateStringArray((const char *[]){"test"}, 1));
    cJSON *data = cJSON_Duplicate(patch, 1);
    cJSON_AddNullToObject(data, "repeat_of");
    pl_stage_job_done(&job, PL_STATE_CLASSIFIED, patch, PL_EV_CLASSIFIED, data);
}

static void on_timer_closed(uv_handle_t *handle)
{
    pl_free(handle->data);
}

static void on_delay(uv_timer_t *timer)
{
    delayed_t *d = timer->data;
    pl_stage_job_t *job = d->job;
    pl_stage_job_set_data(job, NULL);
    uv_close((uv_handle_t *)timer, on_timer_closed);
    finish(job);
}

/* The stage gave up on a job at shutdown: forget it. */
static void cancel(pl_stage_job_t *job, void *arg)
{
    (void)arg;
    delayed_t *d = pl_stage_job_data(job);
    if (!d)
        return;
    pl_stage_job_set_data(job, NULL);
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

static void step(pl_stage_job_t *job, void *arg)
{
    (void)arg;
    if (knobs.delay_ms <= 0) {
        finish(job);
        return;
    }
    delayed_t *d = pl_calloc(1, sizeof *d);
    d->job = job;
    pl_stage_job_set_data(job, d);
    uv_timer_init(pl_daemon_loop(daemon_), &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_delay, (uint64_t)knobs.delay_ms, 0);
}

static int start(pl_daemon_t *d, void *arg, pl_err_t *err)
{
    (void)arg;
    daemon_ = d;
    pl_stage_opts_t opts = {
        .name = "test-stage",
        .input_state = PL_STATE_RECEIVED,
        .work_endpoint = knobs.work_endpoint,
        .conninfo = pl_daemon_cfg(d)->database_url,
        .cfg = stage_cfg,
        .owner = pl_daemon_instance(d),
        .step = step,
        .cancel = cancel,
    };
    stage = pl_stage_new(pl_daemon_loop(d), pl_daemon_zmq(d), &opts, err);
    return stage ? 0 : err->code;
}

static void on_stage_stopped(void *arg)
{
    pl_stage_stats_t st = pl_stage_stats(stage);
    char c[24], l[24];
    pl_log_info("test stage totals", "completed", pl_log_int(c, (long long)st.completed),
                "lost_races", pl_log_int(l, (long long)st.lost_races), NULL);
    pl_stage_destroy(&stage);
    pl_daemon_stopped(arg);
}

static void stop(pl_daemon_t *d, void *arg)
{
    (void)arg;
    pl_stage_stop(stage, 2000, on_stage_stopped, d);
}

int main(int argc, char **argv)
{
    size_t n = 0;
    const pl_cfg_setting_t *common = pl_stage_settings(&stage_cfg, &n);
    memcpy(settings, common, n * sizeof *settings);
    /* min 1: a list, to take work from every hub. */
    settings[n++] = (pl_cfg_setting_t){"PLAINT_CLASSIFY_ENDPOINT", "tcp://*:7111",
                                       PL_CFG_ENDPOINT, &knobs.work_endpoint, 1, 0,
                                       "where the hub hands out work for received cases"};
    settings[n++] = (pl_cfg_setting_t){"PLAINT_TEST_STAGE_DELAY", "0s", PL_CFG_DURATION,
                                       &knobs.delay_ms, 0, 600000, "time each step takes"};
    settings[n++] = (pl_cfg_setting_t){"PLAINT_TEST_STAGE_POISON", "", PL_CFG_STRING,
                                       &knobs.poison, 0, 0, "body marker: the step fails"};
    settings[n++] = (pl_cfg_setting_t){"PLAINT_TEST_STAGE_CRASH", "", PL_CFG_STRING,
                                       &knobs.crash, 0, 0, "body marker: the process aborts"};
    static pl_daemon_def_t def = {
        .name = "test-stage",
        .summary = "A stand-in classifier for tests of the stage hand-off.",
        .needs_db = true,
        .start = start,
        .stop = stop,
    };
    def.settings = settings;
    def.nsettings = n;
    return pl_daemon_run(&def, argc, argv);
}
