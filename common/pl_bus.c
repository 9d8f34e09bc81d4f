/*
 * pl_bus: ZeroMQ sockets on a libuv loop (see pl_bus.h).
 *
 * Trusts libzmq; trusts nothing about peers (frame sizes are capped by
 * ZMQ_MAXMSGSIZE, frame counts here). Owns the ZeroMQ socket and the poll and
 * idle handles, which are freed in their close callbacks.
 */
#include "pl_bus.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_msg.h"

#define DRAIN_BUDGET 256 /* messages per wakeup before yielding to the loop */
#define FRAMES_MAX 64    /* frames kept of one message: the first 63 and the last */
#define LINGER_MS 1000

struct pl_sock {
    uv_loop_t *loop;
    void *zsock;
    uv_poll_t *poll;
    uv_idle_t *idle;
    pl_sock_recv_cb cb;
    void *arg;
    bool paused;
    bool closing;
    bool in_drain;
    int open_handles;
};

static void drain(pl_sock_t *sock);

static void on_handle_closed(uv_handle_t *handle)
{
    pl_sock_t *sock = handle->data;
    pl_free(handle);
    if (--sock->open_handles == 0)
        pl_free(sock);
}

static void on_idle(uv_idle_t *idle)
{
    pl_sock_t *sock = idle->data;
    (void)uv_idle_stop(idle);
    drain(sock);
}

/* Re-check ZMQ_EVENTS on the next loop turn: a send or a partial drain may
 * have consumed the edge that would have woken us. */
static void recheck_soon(pl_sock_t *sock)
{
    if (!sock->closing && sock->cb)
        (void)uv_idle_start(sock->idle, on_idle);
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    (void)status;
    (void)events;
    drain(poll->data);
}

pl_sock_t *pl_sock_new(uv_loop_t *loop, void *zctx, int type, pl_err_t *err)
{
    void *zsock = zmq_socket(zctx, type);
    if (!zsock) {
        pl_err_set(err, PL_EIO, "", "cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
        return NULL;
    }
    int linger = LINGER_MS;
    int64_t maxsize = PL_MSG_SOCKET_MAX;
    (void)zmq_setsockopt(zsock, ZMQ_LINGER, &linger, sizeof linger);
    (void)zmq_setsockopt(zsock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
    pl_sock_t *sock = pl_calloc(1, sizeof *sock);
    sock->loop = loop;
    sock->zsock = zsock;
    sock->idle = pl_calloc(1, sizeof *sock->idle);
    (void)uv_idle_init(loop, sock->idle);
    sock->idle->data = sock;
    sock->open_handles = 1;
    return sock;
}

void pl_sock_close(pl_sock_t **sock_p)
{
    pl_sock_t *sock = sock_p ? *sock_p : NULL;
    if (!sock)
        return;
    *sock_p = NULL;
    sock->closing = true;
    /* Stop watching ZMQ_FD before zmq_close closes it. */
    if (sock->poll)
        uv_close((uv_handle_t *)sock->poll, on_handle_closed);
    sock->poll = NULL;
    zmq_close(sock->zsock);
    sock->zsock = NULL;
    uv_close((uv_handle_t *)sock->idle, on_handle_closed);
}

typedef int (*attach_fn)(void *zsock, const char *endpoint);

static int each_endpoint(pl_sock_t *sock, const char *endpoints, attach_fn fn, bool connecting,
                         pl_err_t *err)
{
    char *list = pl_strdup(endpoints), *save = NULL;
    int rc = 0;
    for (char *ep = strtok_r(list, ", ", &save); ep; ep = strtok_r(NULL, ", ", &save)) {
        char local[512];
        const char *target = connecting ? pl_bus_connect_address(ep, local, sizeof local) : ep;
        if (fn(sock->zsock, target) != 0) {
            rc = pl_err_set(err, PL_EIO, "", "cannot %s %s: %s", connecting ? "connect to" : "bind",
                            target, zmq_strerror(errno));
            pl_err_hint(err, connecting ? "Check the endpoint's host and port."
                                        : "Is another process using this address? Change the "
                                          "setting or stop that process.");
        }
        if (rc < 0)
            break;
    }
    pl_free(list);
    return rc;
}

int pl_sock_bind(pl_sock_t *sock, const char *endpoints, pl_err_t *err)
{
    return each_endpoint(sock, endpoints, zmq_bind, false, err);
}

int pl_sock_connect(pl_sock_t *sock, const char *endpoints, pl_err_t *err)
{
    return each_endpoint(sock, endpoints, zmq_connect, true, err);
}

int pl_sock_set_int(pl_sock_t *sock, int option, int value, pl_err_t *err)
{
    if (zmq_setsockopt(sock->zsock, option, &value, sizeof value) != 0)
        return pl_err_set(err, PL_EIO, "", "cannot set ZeroMQ option %d: %s", option,
                          zmq_strerror(errno));
    return 0;
}

int pl_sock_subscribe(pl_sock_t *sock, const char *prefix, pl_err_t *err)
{
    if (zmq_setsockopt(sock->zsock, ZMQ_SUBSCRIBE, prefix, strlen(prefix)) != 0)
        return pl_err_set(err, PL_EIO, "", "cannot subscribe: %s", zmq_strerror(errno));
    return 0;
}

int pl_sock_start(pl_sock_t *sock, pl_sock_recv_cb cb, void *arg, pl_err_t *err)
{
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(sock->zsock, ZMQ_FD, &fd, &len) != 0)
        return pl_err_set(err, PL_EIO, "", "cannot get ZMQ_FD: %s", zmq_strerror(errno));
    sock->cb = cb;
    sock->arg = arg;
    sock->poll = pl_calloc(1, sizeof *sock->poll);
    if (uv_poll_init(sock->loop, sock->poll, fd) != 0) {
        pl_free(sock->poll);
        sock->poll = NULL;
        return pl_err_set(err, PL_EIO, "", "cannot watch a ZeroMQ socket");
    }
    sock->poll->data = sock;
    sock->open_handles++;
    (void)uv_poll_start(sock->poll, UV_READABLE, on_poll);
    recheck_soon(sock); /* messages may already be waiting */
    return 0;
}

void pl_sock_pause(pl_sock_t *sock)
{
    sock->paused = true;
    /* ZMQ_FD stays readable while messages wait unread: keep watching it and
     * the loop would spin. */
    if (sock->poll)
        (void)uv_poll_stop(sock->poll);
}

void pl_sock_resume(pl_sock_t *sock)
{
    sock->paused = false;
    if (sock->poll && !sock->closing)
        (void)uv_poll_start(sock->poll, UV_READABLE, on_poll);
    recheck_soon(sock);
}

static bool readable(pl_sock_t *sock)
{
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(sock->zsock, ZMQ_EVENTS, &events, &len) != 0)
        return false;
    return (events & ZMQ_POLLIN) != 0;
}

/* Receives one whole message; returns the number of frames kept, 0 if none. */
static size_t recv_message(pl_sock_t *sock, zmq_msg_t *frames)
{
    size_t n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t *slot = &frames[n < FRAMES_MAX ? n : FRAMES_MAX - 1];
        if (n >= FRAMES_MAX)
            zmq_msg_close(slot); /* keep memory bounded: overwrite the last */
        zmq_msg_init(slot);
        if (zmq_msg_recv(slot, sock->zsock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(slot);
            /* Mid-message EAGAIN cannot happen: ZeroMQ delivers messages whole. */
            return n < FRAMES_MAX ? n : FRAMES_MAX - 1;
        }
        more = zmq_msg_more(slot);
        if (n < FRAMES_MAX)
            n++;
    }
    return n;
}

static void drain(pl_sock_t *sock)
{
    if (sock->in_drain || sock->closing)
        return;
    sock->in_drain = true;
    zmq_msg_t frames[FRAMES_MAX];
    int budget = DRAIN_BUDGET;
    while (budget-- > 0 && !sock->closing && !sock->paused && readable(sock)) {
        size_t n = recv_message(sock, frames);
        if (n > 0 && sock->cb)
            sock->cb(sock, frames, n, sock->arg);
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
    }
    sock->in_drain = false;
    if (budget < 0 && !sock->closing && !sock->paused)
        recheck_soon(sock);
}

int pl_sock_send(pl_sock_t *sock, const pl_frame_t *frames, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0);
        if (zmq_send(sock->zsock, frames[i].data, frames[i].len, flags) < 0) {
            int e = errno;
            /* Only the first frame can fail with EAGAIN: once a message is
             * started ZeroMQ accepts the rest of it. */
            recheck_soon(sock);
            return e == EAGAIN ? PL_EAGAIN : PL_EIO;
        }
    }
    if (!sock->in_drain)
        recheck_soon(sock);
    return 0;
}

char *pl_bus_connect_address(const char *endpoint, char *buf, size_t size)
{
    if (!strncmp(endpoint, "tcp://*:", 8))
        snprintf(buf, size, "tcp://127.0.0.1:%s", endpoint + 8);
    else
        snprintf(buf, size, "%s", endpoint);
    return buf;
}

void *pl_sock_raw(pl_sock_t *sock)
{
    return sock->zsock;
}
