/*
 * pl_bus: ZeroMQ sockets driven from a libuv loop.
 *
 * ZMQ_FD is edge-triggered and also signals for sends, so after every wakeup
 * and after every send we re-read ZMQ_EVENTS and drain until EAGAIN (libzmq
 * zmq_getsockopt(3)). A wakeup processes a bounded number of messages and
 * then yields to the loop, so one busy socket cannot starve the others.
 *
 * Every socket gets ZMQ_LINGER (so shutdown is bounded) and ZMQ_MAXMSGSIZE.
 */
#ifndef PL_BUS_H
#define PL_BUS_H

#include <stddef.h>
#include <uv.h>
#include <zmq.h>

#include "pl_err.h"

typedef struct pl_sock pl_sock_t;

/* One frame to send; data is copied by ZeroMQ. */
typedef struct pl_frame {
    const void *data;
    size_t len;
} pl_frame_t;

/* frames[0..n) are borrowed for the duration of the call. The callback may
 * send on this or any socket, and may close this socket. */
typedef void (*pl_sock_recv_cb)(pl_sock_t *sock, zmq_msg_t *frames, size_t n, void *arg);

/* zctx is borrowed and must outlive the socket. type is ZMQ_ROUTER, ZMQ_PUB... */
pl_sock_t *pl_sock_new(uv_loop_t *loop, void *zctx, int type, pl_err_t *err);
/* Closes the ZeroMQ socket (linger applies) and frees sock after libuv
 * closes its handles. NULL-safe; nulls *sock_p. */
void pl_sock_close(pl_sock_t **sock_p);

/* Bind or connect to each endpoint of a comma-separated list. For connect,
 * a "*" host means 127.0.0.1, so one setting serves both ends locally. */
int pl_sock_bind(pl_sock_t *sock, const char *endpoints, pl_err_t *err);
int pl_sock_connect(pl_sock_t *sock, const char *endpoints, pl_err_t *err);
int pl_sock_set_int(pl_sock_t *sock, int option, int value, pl_err_t *err);
int pl_sock_subscribe(pl_sock_t *sock, const char *prefix, pl_err_t *err);

/* Starts delivering received messages to cb. */
int pl_sock_start(pl_sock_t *sock, pl_sock_recv_cb cb, void *arg, pl_err_t *err);
void pl_sock_pause(pl_sock_t *sock);
void pl_sock_resume(pl_sock_t *sock);

/* Sends frames[0..n) as one multipart message without blocking. Returns 0,
 * PL_EAGAIN when the high-water mark is reached (nothing was sent), or PL_EIO. */
int pl_sock_send(pl_sock_t *sock, const pl_frame_t *frames, size_t n);

void *pl_sock_raw(pl_sock_t *sock);

/* The address to connect to for one endpoint setting: a "*" host (what a
 * binding side is configured with) becomes 127.0.0.1. Writes into buf and
 * returns it. For tools that use plain ZeroMQ sockets. */
char *pl_bus_connect_address(const char *endpoint, char *buf, size_t size);

#endif
