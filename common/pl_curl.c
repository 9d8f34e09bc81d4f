/*
 * pl_curl: libcurl multi on libuv (see pl_curl.h), after libcurl's
 * docs/examples/multi-uv.c: a uv_poll per socket libcurl asks about, one
 * uv_timer for libcurl's timeout, and curl_multi_info_read after every
 * action to finish completed transfers.
 */
#include "pl_curl.h"

#include <stdbool.h>

#include "pl_alloc.h"
#include "pl_err.h"

typedef struct transfer {
    struct transfer *prev, *next;
    CURL *easy;
    pl_curl_done_cb done;
    void *arg;
} transfer_t;

typedef struct sock_ctx {
    uv_poll_t poll;
    struct sock_ctx *prev, *next;
    curl_socket_t fd;
    pl_curl_t *c;
} sock_ctx_t;

struct pl_curl {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t *timer;
    transfer_t *transfers; /* in flight */
    sock_ctx_t *socks;     /* being watched */
    int active;
};

#define UNLINK(head, x)                                                                            \
    do {                                                                                           \
        if ((x)->prev)                                                                             \
            (x)->prev->next = (x)->next;                                                           \
        else                                                                                       \
            (head) = (x)->next;                                                                    \
        if ((x)->next)                                                                             \
            (x)->next->prev = (x)->prev;                                                           \
    } while (0)

#define LINK(head, x)                                                                              \
    do {                                                                                           \
        (x)->prev = NULL;                                                                          \
        (x)->next = (head);                                                                        \
        if (head)                                                                                  \
            (head)->prev = (x);                                                                    \
        (head) = (x);                                                                              \
    } while (0)

static void finish_done(pl_curl_t *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        transfer_t *t = NULL;
        (void)curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t); /* set by pl_curl_add */
        (void)curl_multi_remove_handle(c->multi, easy);
        c->active--;
        if (t) {
            UNLINK(c->transfers, t);
            t->done(easy, result, t->arg);
        }
        curl_easy_cleanup(easy);
        pl_free(t);
    }
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    sock_ctx_t *s = poll->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    pl_curl_t *c = s->c;
    (void)curl_multi_socket_action(c->multi, s->fd, flags, &running);
    finish_done(c);
}

static void on_timer(uv_timer_t *timer)
{
    pl_curl_t *c = timer->data;
    int running;
    (void)curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    finish_done(c);
}

static void on_sock_closed(uv_handle_t *handle)
{
    pl_free(handle->data);
}

static int on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    (void)easy;
    pl_curl_t *c = userp;
    sock_ctx_t *s = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            (void)curl_multi_assign(c->multi, fd, NULL);
            UNLINK(c->socks, s);
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
        }
        return 0;
    }
    if (!s) {
        s = pl_calloc(1, sizeof *s);
        s->fd = fd;
        s->c = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            pl_free(s);
            return -1;
        }
        s->poll.data = s;
        LINK(c->socks, s);
        (void)curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

static int on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    pl_curl_t *c = userp;
    if (timeout_ms < 0)
        (void)uv_timer_stop(c->timer);
    else /* 0 means "as soon as possible": the next loop iteration, not from here */
        (void)uv_timer_start(c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

pl_curl_t *pl_curl_new(uv_loop_t *loop)
{
    static bool global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return NULL;
        global_done = true;
    }
    pl_curl_t *c = pl_calloc(1, sizeof *c);
    c->loop = loop;
    c->multi = curl_multi_init();
    if (!c->multi) {
        pl_free(c);
        return NULL;
    }
    c->timer = pl_calloc(1, sizeof *c->timer);
    (void)uv_timer_init(loop, c->timer); /* cannot fail on a live loop */
    c->timer->data = c;
    (void)curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    (void)curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    (void)curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timeout);
    (void)curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    return c;
}

static void on_timer_closed(uv_handle_t *handle)
{
    pl_free(handle);
}

void pl_curl_destroy(pl_curl_t **c_p)
{
    pl_curl_t *c = *c_p;
    if (!c)
        return;
    while (c->transfers) {
        transfer_t *t = c->transfers;
        UNLINK(c->transfers, t);
        (void)curl_multi_remove_handle(c->multi, t->easy);
        t->done(t->easy, CURLE_ABORTED_BY_CALLBACK, t->arg);
        curl_easy_cleanup(t->easy);
        pl_free(t);
    }
    /* Our list closes the sockets still watched, so libcurl need not tell. */
    (void)curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, NULL);
    (void)curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, NULL);
    (void)curl_multi_cleanup(c->multi);
    while (c->socks) {
        sock_ctx_t *s = c->socks;
        UNLINK(c->socks, s);
        uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, on_sock_closed);
    }
    uv_close((uv_handle_t *)c->timer, on_timer_closed);
    pl_free(c);
    *c_p = NULL;
}

int pl_curl_add(pl_curl_t *c, CURL *easy, pl_curl_done_cb done, void *arg)
{
    transfer_t *t = pl_calloc(1, sizeof *t);
    t->easy = easy;
    t->done = done;
    t->arg = arg;
    (void)curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
    if (curl_multi_add_handle(c->multi, easy) != CURLM_OK) {
        curl_easy_cleanup(easy);
        pl_free(t);
        return PL_EINTERNAL;
    }
    LINK(c->transfers, t);
    c->active++;
    return 0;
}

int pl_curl_active(const pl_curl_t *c)
{
    return c->active;
}
