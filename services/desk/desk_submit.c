/*
 * desk_submit: HTTP submissions forwarded to intake (see desk_submit.h).
 *
 * Trusts intake's replies only as far as matching them by correlation_id to a
 * waiting request; anything else is dropped. The body is checked to be one
 * strict JSON object before it is spliced, byte for byte, into the envelope,
 * so intake sees exactly what the client sent (large numbers, key order).
 */
#include "desk_submit.h"

#include <string.h>
#include <zmq.h>

#include "pl_alloc.h"
#include "pl_bus.h"
#include "pl_json.h"
#include "pl_log.h"
#include "pl_msg.h"
#include "pl_time.h"
#include "pl_uuid.h"

#define TICK_MS 100

typedef struct waiting {
    struct waiting *next;
    pl_http_req_t *req;
    char id[40];
    int64_t deadline_ms;
} waiting_t;

struct desk_submit {
    pl_sock_t *sock;
    uv_timer_t *timer;
    waiting_t *head;
    size_t pending;
    int64_t timeout_ms;
};

static void answer_unavailable(pl_http_req_t *req, const char *why)
{
    pl_http_respond_error(req, 503, "unavailable", why, NULL);
}

static waiting_t *take(desk_submit_t *s, const char *id)
{
    for (waiting_t **p = &s->head; *p; p = &(*p)->next) {
        if (strcmp((*p)->id, id))
            continue;
        waiting_t *w = *p;
        *p = w->next;
        s->pending--;
        return w;
    }
    return NULL;
}

/* An error path on the bus names the envelope ("data.customer.email"); over
 * HTTP the body is the data object, so the path starts inside it. */
static const char *http_path(const char *path)
{
    if (!strncmp(path, "data.", 5))
        return path + 5;
    if (!strcmp(path, "data"))
        return "";
    return path;
}

static int status_of(const char *code)
{
    if (!strcmp(code, "invalid"))
        return 400;
    if (!strcmp(code, "too_large"))
        return 413;
    if (!strcmp(code, "unauthorized"))
        return 401;
    return 503;
}

static void answer_error(pl_http_req_t *req, const cJSON *data)
{
    const char *code = pl_json_str(data, "code", "unavailable");
    cJSON *errors = pl_json_must(cJSON_CreateArray());
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(data, "errors")) {
        cJSON *copy = pl_json_dup(e);
        const char *path = pl_json_str(e, "path", NULL);
        if (path)
            cJSON_ReplaceItemInObjectCaseSensitive(
                copy, "path", pl_json_must(cJSON_CreateString(http_path(path))));
        cJSON_AddItemToArray(errors, copy);
    }
    cJSON *inner = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(inner, "code", code);
    pl_json_add_str(inner, "message", pl_json_str(data, "message", "the complaint was refused"));
    pl_json_add(inner, "errors", errors);
    cJSON *body = pl_json_must(cJSON_CreateObject());
    pl_json_add(body, "error", inner);
    pl_http_respond_json(req, status_of(code), &body);
}

static void answer(pl_http_req_t *req, const pl_msg_t *reply)
{
    if (strcmp(reply->type, PL_MSG_ACCEPTED)) {
        answer_error(req, reply->data);
        return;
    }
    cJSON *body = pl_json_dup(reply->data);
    bool duplicate = pl_json_bool(reply->data, "duplicate", false);
    const char *case_id = pl_json_str(reply->data, "case_id", "");
    char location[80];
    snprintf(location, sizeof location, "/v1/cases/%.40s", case_id);
    (void)pl_http_req_set_header(req, "Location", location); /* a uuid: a valid value */
    pl_http_respond_json(req, duplicate ? 200 : 201, &body);
}

static void on_reply(pl_sock_t *sock, zmq_msg_t *frames, size_t n, void *arg)
{
    desk_submit_t *s = arg;
    (void)sock;
    if (n == 0)
        return;
    zmq_msg_t *last = &frames[n - 1];
    pl_msg_t reply = {0};
    pl_errlist_t errs = PL_ERRLIST_INIT;
    if (pl_msg_parse(zmq_msg_data(last), zmq_msg_size(last), &reply, &errs) == 0) {
        const char *cid = pl_json_str(reply.root, "correlation_id", "");
        waiting_t *w = take(s, cid);
        if (w) {
            answer(w->req, &reply);
            pl_free(w);
        }
    } else {
        pl_log_warn("unreadable reply from intake dropped", NULL);
    }
    pl_errlist_reset(&errs);
    pl_msg_release(&reply);
}

static void on_tick(uv_timer_t *timer)
{
    desk_submit_t *s = timer->data;
    int64_t now = pl_time_mono_ms();
    for (waiting_t **p = &s->head; *p;) {
        waiting_t *w = *p;
        if (w->deadline_ms > now && !pl_http_req_orphaned(w->req)) {
            p = &w->next;
            continue;
        }
        *p = w->next;
        s->pending--;
        answer_unavailable(w->req, "intake did not confirm the complaint in time; nothing is "
                                   "promised: resubmit with the same external_id");
        pl_free(w);
    }
}

desk_submit_t *desk_submit_new(uv_loop_t *loop, void *zctx, const char *endpoint,
                               int64_t timeout_ms, pl_err_t *err)
{
    desk_submit_t *s = pl_calloc(1, sizeof *s);
    s->timeout_ms = timeout_ms;
    s->sock = pl_sock_new(loop, zctx, ZMQ_DEALER, err);
    /* ZMQ_IMMEDIATE: with intake away, a submission is refused now (503)
     * instead of waiting in a queue and being stored after its 503. */
    if (!s->sock || pl_sock_set_int(s->sock, ZMQ_SNDHWM, 10000, err) < 0 ||
        pl_sock_set_int(s->sock, ZMQ_IMMEDIATE, 1, err) < 0 ||
        pl_sock_connect(s->sock, endpoint, err) < 0 ||
        pl_sock_start(s->sock, on_reply, s, err) < 0) {
        desk_submit_destroy(&s);
        return NULL;
    }
    s->timer = pl_calloc(1, sizeof *s->timer);
    (void)uv_timer_init(loop, s->timer); /* cannot fail on a live loop */
    s->timer->data = s;
    (void)uv_timer_start(s->timer, on_tick, TICK_MS, TICK_MS);
    return s;
}

static void on_timer_closed(uv_handle_t *handle)
{
    pl_free(handle);
}

void desk_submit_destroy(desk_submit_t **s_p)
{
    desk_submit_t *s = *s_p;
    if (!s)
        return;
    while (s->head) {
        waiting_t *w = s->head;
        s->head = w->next;
        answer_unavailable(w->req, "the desk is stopping; resubmit with the same external_id");
        pl_free(w);
    }
    if (s->timer)
        uv_close((uv_handle_t *)s->timer, on_timer_closed);
    pl_sock_close(&s->sock);
    pl_free(s);
    *s_p = NULL;
}

size_t desk_submit_pending(const desk_submit_t *s)
{
    return s->pending;
}

/* The envelope around the client's bytes; the caller frees it. */
static char *envelope(const char *id, const char *source, const char *body, size_t len,
                      size_t *out_len)
{
    char at[40];
    pl_time_format(pl_time_now_ms(), at);
    cJSON *src = pl_json_must(cJSON_CreateString(source));
    char *src_json = pl_json_print(src);
    cJSON_Delete(src);
    char *head = pl_sprintf("{\"type\":\"" PL_MSG_SUBMIT "\",\"v\":1,\"id\":\"%s\",\"at\":\"%s\","
                            "\"source\":%s,\"data\":",
                            id, at, src_json);
    pl_free(src_json);
    size_t hlen = strlen(head);
    char *out = pl_malloc(hlen + len + 2);
    memcpy(out, head, hlen);
    memcpy(out + hlen, body, len);
    out[hlen + len] = '}';
    out[hlen + len + 1] = '\0';
    *out_len = hlen + len + 1;
    pl_free(head);
    return out;
}

static bool check_body(pl_http_req_t *req, const char *body, size_t len)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    cJSON *root = pl_json_parse(body, len, PL_JSON_DEPTH_MAX, &errs);
    if (root && !cJSON_IsObject(root))
        pl_errlist_add(&errs, PL_EINVAL, "",
                       "the body must be a JSON object (complaint.submit's data), got %s",
                       pl_json_type_name(root));
    cJSON_Delete(root);
    if (errs.count == 0 && errs.dropped == 0)
        return true;
    int code = pl_errlist_code(&errs);
    pl_http_respond_error(req, code == PL_ETOOLARGE ? 413 : 400,
                          code == PL_ETOOLARGE ? "too_large" : "invalid",
                          errs.count == 1 ? errs.items[0].message
                                          : "the body is not valid JSON; see errors",
                          &errs);
    pl_errlist_reset(&errs);
    return false;
}

void desk_submit_handle(desk_submit_t *s, pl_http_req_t *req, const char *source)
{
    size_t len;
    const char *body = pl_http_req_body(req, &len);
    if (!check_body(req, body, len))
        return;
    waiting_t *w = pl_calloc(1, sizeof *w);
    pl_uuid_v7(w->id);
    w->req = req;
    w->deadline_ms = pl_time_mono_ms() + s->timeout_ms;
    size_t elen;
    char *env = envelope(w->id, source, body, len, &elen);
    pl_frame_t frames[2] = {{"", 0}, {env, elen}};
    int rc = pl_sock_send(s->sock, frames, 2);
    pl_free(env);
    if (rc < 0) {
        answer_unavailable(req, "intake is not reachable; nothing was stored: resubmit with the "
                                "same external_id");
        pl_free(w);
        return;
    }
    w->next = s->head;
    s->head = w;
    s->pending++;
}
