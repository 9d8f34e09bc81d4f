/*
 * test_bus: pl_sock against the real libzmq on a real libuv loop.
 *
 * Nothing is mocked: sockets talk over tcp on 127.0.0.1 (ports chosen by
 * binding "tcp://127.0.0.1:*" and reading ZMQ_LAST_ENDPOINT, so there is no
 * race for a free port) and over inproc. Raw peers are plain libzmq sockets,
 * either on the test's thread (non-blocking) or, for the burst, on a thread
 * of their own that wakes the loop through a uv_async.
 *
 * Every wait runs the loop under a guard timer (scaled by
 * PLAINT_TEST_TIMEOUT_MULTIPLIER), so a bug shows up as a failed check, not
 * as a hung test. Callbacks never assert (cmocka would longjmp out of the
 * loop); they record, and the test checks after the loop returns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_bus.h"
#include "pl_err.h"
#include "pl_msg.h"

#include "test_util.h"

/* pl_bus.c keeps at most this many frames of one message (FRAMES_MAX). */
#define FRAMES_CAP 64

/* ---- the loop and its guard ---- */

typedef bool (*pred_fn)(void *arg);

typedef struct env {
    uv_loop_t loop;
    uv_timer_t guard;
    uv_prepare_t prepare; /* sees changes made by timers, before the loop blocks */
    uv_check_t check;     /* sees changes made by I/O callbacks */
    uv_async_t wake;      /* lets threads end a wait */
    void *zctx;
    bool timed_out;
    pred_fn done;
    void *done_arg;
    uint64_t iterations; /* loop turns seen by check, for the spin test */
} env_t;

static void on_guard(uv_timer_t *t)
{
    env_t *e = t->data;
    e->timed_out = true;
    uv_stop(&e->loop);
}

static void test_done(env_t *e)
{
    if (e->done && e->done(e->done_arg))
        uv_stop(&e->loop);
}

static void on_prepare(uv_prepare_t *p)
{
    test_done(p->data);
}

static void on_check(uv_check_t *c)
{
    env_t *e = c->data;
    e->iterations++;
    test_done(e);
}

static void on_wake(uv_async_t *a)
{
    (void)a; /* the check handle that runs next looks at the predicate */
}

static void env_init(env_t *e)
{
    memset(e, 0, sizeof *e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(uv_timer_init(&e->loop, &e->guard), 0);
    assert_int_equal(uv_prepare_init(&e->loop, &e->prepare), 0);
    assert_int_equal(uv_check_init(&e->loop, &e->check), 0);
    assert_int_equal(uv_async_init(&e->loop, &e->wake, on_wake), 0);
    e->guard.data = e->prepare.data = e->check.data = e->wake.data = e;
    e->zctx = zmq_ctx_new();
    assert_non_null(e->zctx);
}

/* Runs the loop until done(arg) holds or ms (scaled) pass. Returns whether
 * done holds; with done NULL, just runs the loop for ms and returns true. */
static bool run_until(env_t *e, pred_fn done, void *arg, int64_t ms)
{
    e->done = done;
    e->done_arg = arg;
    e->timed_out = false;
    if (done && done(arg))
        return true;
    (void)uv_timer_start(&e->guard, on_guard, (uint64_t)scaled_ms(ms), 0);
    (void)uv_prepare_start(&e->prepare, on_prepare);
    (void)uv_check_start(&e->check, on_check);
    (void)uv_run(&e->loop, UV_RUN_DEFAULT);
    (void)uv_timer_stop(&e->guard);
    (void)uv_prepare_stop(&e->prepare);
    (void)uv_check_stop(&e->check);
    e->done = NULL;
    return done ? done(arg) : true;
}

/* Lets closed pl_socks free themselves, then checks that nothing is left
 * on the loop and that every ZeroMQ socket was closed. */
static void env_close(env_t *e)
{
    uv_close((uv_handle_t *)&e->guard, NULL);
    uv_close((uv_handle_t *)&e->prepare, NULL);
    uv_close((uv_handle_t *)&e->check, NULL);
    uv_close((uv_handle_t *)&e->wake, NULL);
    for (int i = 0; i < 100 && uv_run(&e->loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    assert_int_equal(uv_loop_close(&e->loop), 0);
    assert_int_equal(zmq_ctx_term(e->zctx), 0);
}

/* ---- helpers ---- */

static pl_sock_t *sock_new(env_t *e, int type)
{
    pl_err_t err = {0};
    pl_sock_t *s = pl_sock_new(&e->loop, e->zctx, type, &err);
    if (!s)
        fail_msg("pl_sock_new: %s", err.message);
    return s;
}

/* Binds s to "tcp://127.0.0.1:*" (a free port) or to inproc://NAME and
 * writes the endpoint peers should use into ep. */
static void bind_any(pl_sock_t *s, bool tcp, const char *name, char *ep, size_t size)
{
    pl_err_t err = {0};
    char inproc[128];
    snprintf(inproc, sizeof inproc, "inproc://%s", name);
    if (pl_sock_bind(s, tcp ? "tcp://127.0.0.1:*" : inproc, &err) != 0)
        fail_msg("bind: %s", err.message);
    size_t len = size;
    assert_int_equal(zmq_getsockopt(pl_sock_raw(s), ZMQ_LAST_ENDPOINT, ep, &len), 0);
}

static int port_of(const char *ep)
{
    const char *colon = strrchr(ep, ':');
    return colon ? atoi(colon + 1) : -1;
}

static void connect_ok(pl_sock_t *s, const char *ep)
{
    pl_err_t err = {0};
    if (pl_sock_connect(s, ep, &err) != 0)
        fail_msg("connect %s: %s", ep, err.message);
}

static void start_ok(pl_sock_t *s, pl_sock_recv_cb cb, void *arg)
{
    pl_err_t err = {0};
    if (pl_sock_start(s, cb, arg, &err) != 0)
        fail_msg("pl_sock_start: %s", err.message);
}

static void set_int_ok(pl_sock_t *s, int option, int value)
{
    pl_err_t err = {0};
    if (pl_sock_set_int(s, option, value, &err) != 0)
        fail_msg("pl_sock_set_int(%d): %s", option, err.message);
}

/* A plain libzmq socket that never blocks the process at zmq_ctx_term. */
static void *raw_new(env_t *e, int type, const char *connect_to)
{
    void *z = zmq_socket(e->zctx, type);
    assert_non_null(z);
    int zero = 0;
    assert_int_equal(zmq_setsockopt(z, ZMQ_LINGER, &zero, sizeof zero), 0);
    if (connect_to)
        assert_int_equal(zmq_connect(z, connect_to), 0);
    return z;
}

static bool frame_is(const zmq_msg_t *frame, const char *text)
{
    size_t len = strlen(text);
    return zmq_msg_size((zmq_msg_t *)frame) == len &&
           memcmp(zmq_msg_data((zmq_msg_t *)frame), text, len) == 0;
}

/* ---- echo: a ROUTER on pl_sock sends every message back as it came ---- */

typedef struct echo {
    pl_sock_t *sock;
    int received;
    int send_failures;
    size_t last_frames; /* frames of the last message, identity included */
    int close_after;    /* > 0: close the socket from the callback after this many */
} echo_t;

static void on_echo(pl_sock_t *sock, zmq_msg_t *frames, size_t n, void *arg)
{
    echo_t *e = arg;
    pl_frame_t out[FRAMES_CAP];
    e->received++;
    e->last_frames = n;
    for (size_t i = 0; i < n && i < FRAMES_CAP; i++) {
        out[i].data = zmq_msg_data(&frames[i]);
        out[i].len = zmq_msg_size(&frames[i]);
    }
    if (pl_sock_send(sock, out, n) != 0)
        e->send_failures++;
    if (e->close_after > 0 && e->received == e->close_after)
        pl_sock_close(&e->sock);
}

/* A client on pl_sock: keeps the text of the last frame of each reply. */
#define ROUNDS 3
typedef struct client {
    pl_sock_t *sock;
    int type;
    bool delimiter;
    int replies;
    int sent;
    int bad_replies;
    int send_failures;
    char label[64];
} client_t;

static void client_send(client_t *c)
{
    char body[96];
    snprintf(body, sizeof body, "%s #%d", c->label, c->sent);
    pl_frame_t frames[2] = {{"", 0}, {body, strlen(body)}};
    bool two = c->type == ZMQ_DEALER && c->delimiter;
    if (pl_sock_send(c->sock, two ? frames : frames + 1, two ? 2 : 1) != 0)
        c->send_failures++;
    c->sent++;
}

static void on_reply(pl_sock_t *sock, zmq_msg_t *frames, size_t n, void *arg)
{
    client_t *c = arg;
    char want[96];
    snprintf(want, sizeof want, "%s #%d", c->label, c->replies);
    /* REQ strips the delimiter; a DEALER sees exactly what it sent. */
    size_t want_n = c->type == ZMQ_DEALER && c->delimiter ? 2 : 1;
    bool ok = n == want_n && frame_is(&frames[n - 1], want) &&
              (want_n == 1 || zmq_msg_size(&frames[0]) == 0);
    if (!ok)
        c->bad_replies++;
    c->replies++;
    /* REQ allows one request at a time: the next goes out from here, which
     * also sends from inside a receive callback. */
    if (c->type == ZMQ_REQ && c->sent < ROUNDS)
        client_send(c);
}

static bool client_done(void *arg)
{
    client_t *c = arg;
    return c->replies >= ROUNDS;
}

static bool first_reply(void *arg)
{
    client_t *c = arg;
    return c->replies >= 1;
}

static void test_echo_clients(void **state)
{
    static const struct {
        const char *label;
        bool tcp;
        int type;
        bool delimiter;
        size_t want_server_frames; /* identity, [delimiter], body */
    } cases[] = {
        {"tcp REQ", true, ZMQ_REQ, true, 3},
        {"tcp DEALER with delimiter", true, ZMQ_DEALER, true, 3},
        {"tcp DEALER without delimiter", true, ZMQ_DEALER, false, 2},
        {"inproc REQ", false, ZMQ_REQ, true, 3},
        {"inproc DEALER with delimiter", false, ZMQ_DEALER, true, 3},
        {"inproc DEALER without delimiter", false, ZMQ_DEALER, false, 2},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        env_t e;
        env_init(&e);
        echo_t server = {0};
        char ep[256], name[32];
        snprintf(name, sizeof name, "echo-%zu", i);
        server.sock = sock_new(&e, ZMQ_ROUTER);
        bind_any(server.sock, cases[i].tcp, name, ep, sizeof ep);
        start_ok(server.sock, on_echo, &server);

        client_t c = {.type = cases[i].type, .delimiter = cases[i].delimiter};
        snprintf(c.label, sizeof c.label, "%s", cases[i].label);
        c.sock = sock_new(&e, cases[i].type);
        connect_ok(c.sock, ep);
        start_ok(c.sock, on_reply, &c);
        client_send(&c);
        if (cases[i].type == ZMQ_DEALER)
            while (c.sent < ROUNDS)
                client_send(&c);

        bool ok = run_until(&e, client_done, &c, 5000);
        CHECK(ok, "%s: got %d of %d replies before the guard\n", cases[i].label, c.replies,
              ROUNDS);
        CHECK(server.received == ROUNDS, "%s: server got %d messages, want %d\n",
              cases[i].label, server.received, ROUNDS);
        CHECK(server.last_frames == cases[i].want_server_frames,
              "%s: server saw %zu frames, want %zu\n", cases[i].label, server.last_frames,
              cases[i].want_server_frames);
        CHECK(c.bad_replies == 0, "%s: %d replies differ from the request\n", cases[i].label,
              c.bad_replies);
        CHECK(c.send_failures == 0 && server.send_failures == 0, "%s: sends failed\n",
              cases[i].label);
        pl_sock_close(&c.sock);
        pl_sock_close(&server.sock);
        assert_null(c.sock);
        env_close(&e);
    }
    assert_int_equal(failures, 0);
}

/* ---- a burst from a plain DEALER on its own thread ---- */

#define BURST 5000

typedef struct burst {
    env_t *env;
    char endpoint[256];
    int replies;
    int out_of_order;
    int send_errors;
    bool finished;
    pthread_mutex_t lock;
} burst_t;

static void *burst_peer(void *arg)
{
    burst_t *b = arg;
    void *z = zmq_socket(b->env->zctx, ZMQ_DEALER);
    int zero = 0, timeout = (int)scaled_ms(10000);
    (void)zmq_setsockopt(z, ZMQ_LINGER, &zero, sizeof zero);
    (void)zmq_setsockopt(z, ZMQ_SNDHWM, &zero, sizeof zero);
    (void)zmq_setsockopt(z, ZMQ_RCVHWM, &zero, sizeof zero);
    (void)zmq_setsockopt(z, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    (void)zmq_connect(z, b->endpoint);
    int send_errors = 0, replies = 0, out_of_order = 0;
    /* All of them at once, before reading a single reply. */
    for (int i = 0; i < BURST; i++) {
        char body[16];
        int len = snprintf(body, sizeof body, "%d", i);
        if (zmq_send(z, body, (size_t)len, 0) != len)
            send_errors++;
    }
    for (int i = 0; i < BURST; i++) {
        char buf[32];
        int len = zmq_recv(z, buf, sizeof buf - 1, 0);
        if (len < 0)
            break; /* RCVTIMEO: replies stopped coming */
        buf[len < (int)sizeof buf - 1 ? len : (int)sizeof buf - 1] = '\0';
        if (atoi(buf) != i)
            out_of_order++;
        replies++;
    }
    zmq_close(z);
    pthread_mutex_lock(&b->lock);
    b->replies = replies;
    b->out_of_order = out_of_order;
    b->send_errors = send_errors;
    b->finished = true;
    pthread_mutex_unlock(&b->lock);
    uv_async_send(&b->env->wake);
    return NULL;
}

typedef struct burst_wait {
    burst_t *b;
    echo_t *server;
} burst_wait_t;

static bool burst_done(void *arg)
{
    burst_wait_t *w = arg;
    pthread_mutex_lock(&w->b->lock);
    bool finished = w->b->finished;
    pthread_mutex_unlock(&w->b->lock);
    return finished && w->server->received >= BURST;
}

static void test_burst_all_delivered(void **state)
{
    /* ZMQ_FD is edge-triggered: a reader that does not drain until EAGAIN,
     * or that lets its own sends eat the edge, leaves messages stuck in the
     * queue with no wakeup to come. 5,000 at once is far past the drain
     * budget per wakeup, so the budget's hand-back to the loop is covered. */
    static const struct {
        const char *label;
        bool tcp;
    } cases[] = {
        {"tcp", true},
        {"inproc", false},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        env_t e;
        env_init(&e);
        echo_t server = {0};
        burst_t b = {.env = &e};
        pthread_mutex_init(&b.lock, NULL);
        server.sock = sock_new(&e, ZMQ_ROUTER);
        /* A ROUTER drops replies to a peer whose queue is full; the peer
         * reads only after sending everything, so no limit on queues. */
        set_int_ok(server.sock, ZMQ_SNDHWM, 0);
        set_int_ok(server.sock, ZMQ_RCVHWM, 0);
        bind_any(server.sock, cases[i].tcp, "burst", b.endpoint, sizeof b.endpoint);
        start_ok(server.sock, on_echo, &server);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, burst_peer, &b), 0);
        burst_wait_t w = {&b, &server};
        bool ok = run_until(&e, burst_done, &w, 20000);
        /* On failure the peer gives up by itself (RCVTIMEO). */
        assert_int_equal(pthread_join(th, NULL), 0);
        CHECK(ok, "%s: guard fired\n", cases[i].label);
        CHECK(server.received == BURST, "%s: callback got %d of %d messages\n", cases[i].label,
              server.received, BURST);
        CHECK(b.replies == BURST, "%s: peer got %d of %d replies\n", cases[i].label, b.replies,
              BURST);
        CHECK(b.out_of_order == 0, "%s: %d replies out of order\n", cases[i].label,
              b.out_of_order);
        CHECK(b.send_errors == 0 && server.send_failures == 0, "%s: sends failed (%d, %d)\n",
              cases[i].label, b.send_errors, server.send_failures);
        pl_sock_close(&server.sock);
        pthread_mutex_destroy(&b.lock);
        env_close(&e);
    }
    assert_int_equal(failures, 0);
}

/* ---- the frame cap ---- */

#define FRAME_LEN 100 /* long enough that ZeroMQ allocates each frame */

typedef struct recorded {
    size_t n;
    char **frames; /* copies, NUL-terminated */
} recorded_t;

typedef struct recorder {
    pl_sock_t *sock;
    recorded_t msgs[64];
    size_t count;
    size_t want;
} recorder_t;

static void on_record(pl_sock_t *sock, zmq_msg_t *frames, size_t n, void *arg)
{
    recorder_t *r = arg;
    (void)sock;
    if (r->count >= NELEMS(r->msgs))
        return;
    recorded_t *m = &r->msgs[r->count++];
    m->n = n;
    m->frames = pl_calloc(n ? n : 1, sizeof *m->frames);
    for (size_t i = 0; i < n; i++) {
        size_t len = zmq_msg_size(&frames[i]);
        m->frames[i] = pl_malloc(len + 1);
        memcpy(m->frames[i], zmq_msg_data(&frames[i]), len);
        m->frames[i][len] = '\0';
    }
}

static bool recorder_done(void *arg)
{
    recorder_t *r = arg;
    return r->count >= r->want;
}

static void recorder_reset(recorder_t *r)
{
    for (size_t i = 0; i < r->count; i++) {
        for (size_t j = 0; j < r->msgs[i].n; j++)
            pl_free(r->msgs[i].frames[j]);
        pl_free(r->msgs[i].frames);
    }
    r->count = 0;
}

static void frame_text(char *buf, size_t i)
{
    memset(buf, 'x', FRAME_LEN);
    int len = snprintf(buf, FRAME_LEN, "frame %04zu", i);
    buf[len] = 'x';
    buf[FRAME_LEN] = '\0';
}

static void test_frame_cap(void **state)
{
    static const struct {
        const char *label;
        size_t frames;
    } cases[] = {
        {"one frame", 1},
        {"one under the cap", FRAMES_CAP - 1},
        {"at the cap", FRAMES_CAP},
        {"one over the cap", FRAMES_CAP + 1},
        {"100 frames", 100},
        {"1000 frames", 1000},
    };
    env_t e;
    env_init(&e);
    recorder_t r = {0};
    char ep[256];
    r.sock = sock_new(&e, ZMQ_PULL);
    bind_any(r.sock, true, "cap", ep, sizeof ep);
    start_ok(r.sock, on_record, &r);
    void *push = raw_new(&e, ZMQ_PUSH, ep);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        char buf[FRAME_LEN + 1];
        for (size_t f = 0; f < cases[i].frames; f++) {
            frame_text(buf, f);
            bool more = f + 1 < cases[i].frames;
            assert_int_equal(zmq_send(push, buf, FRAME_LEN, more ? ZMQ_SNDMORE : 0), FRAME_LEN);
        }
        /* The next message must start clean: no frame of the long one in it. */
        assert_int_equal(zmq_send(push, "next", 4, 0), 4);
        r.want = 2;
        bool ok = run_until(&e, recorder_done, &r, 5000);
        CHECK(ok, "%s: got %zu of 2 messages\n", cases[i].label, r.count);
        if (r.count >= 1) {
            size_t want_n = cases[i].frames < FRAMES_CAP ? cases[i].frames : FRAMES_CAP;
            /* Frames past the cap are dropped; which frame fills the last
             * slot is not part of the contract, the ones before it are. */
            size_t exact = cases[i].frames <= FRAMES_CAP ? want_n : FRAMES_CAP - 1;
            CHECK(r.msgs[0].n == want_n, "%s: delivered %zu frames, want %zu\n", cases[i].label,
                  r.msgs[0].n, want_n);
            for (size_t f = 0; f < exact && f < r.msgs[0].n; f++) {
                frame_text(buf, f);
                CHECK(strcmp(r.msgs[0].frames[f], buf) == 0, "%s: frame %zu is \"%.12s\"\n",
                      cases[i].label, f, r.msgs[0].frames[f]);
            }
        }
        if (r.count >= 2)
            CHECK(r.msgs[1].n == 1 && strcmp(r.msgs[1].frames[0], "next") == 0,
                  "%s: the following message has %zu frames, first \"%.12s\"\n", cases[i].label,
                  r.msgs[1].n, r.msgs[1].frames[0]);
        recorder_reset(&r);
    }
    zmq_close(push);
    pl_sock_close(&r.sock);
    env_close(&e);
    assert_int_equal(failures, 0);
}

/* ---- pause and resume ---- */

typedef struct counter {
    pl_sock_t *sock;
    int received;
    int pause_at; /* > 0: pause from the callback at this count */
    int close_at; /* > 0: close from the callback at this count */
    int want;
} counter_t;

static void on_count(pl_sock_t *sock, zmq_msg_t *frames, size_t n, void *arg)
{
    counter_t *c = arg;
    (void)frames;
    (void)n;
    c->received++;
    if (c->pause_at > 0 && c->received == c->pause_at)
        pl_sock_pause(sock);
    if (c->close_at > 0 && c->received == c->close_at)
        pl_sock_close(&c->sock);
}

static bool counter_done(void *arg)
{
    counter_t *c = arg;
    return c->received >= c->want;
}

static void send_n(void *z, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(zmq_send(z, "m", 1, ZMQ_DONTWAIT), 1);
}

static void test_pause_resume(void **state)
{
    /* inproc: a message is in the socket's queue as soon as zmq_send
     * returns, so "nothing delivered while paused" needs no guessing about
     * when it arrived. */
    static const struct {
        const char *label;
        bool pause_first; /* pause before anything arrives */
        int pause_at;     /* or pause from the callback at this count */
        int sent;
        int want_paused;  /* delivered before resume */
    } cases[] = {
        {"paused before the messages arrive", true, 0, 10, 0},
        {"paused from the callback at 3", false, 3, 10, 3},
        {"paused from the callback at the last", false, 10, 10, 10},
        {"paused past the drain budget", true, 0, 600, 0},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        env_t e;
        env_init(&e);
        counter_t c = {.pause_at = cases[i].pause_at};
        char ep[256];
        c.sock = sock_new(&e, ZMQ_PULL);
        bind_any(c.sock, false, "pause", ep, sizeof ep);
        start_ok(c.sock, on_count, &c);
        if (cases[i].pause_first)
            pl_sock_pause(c.sock);
        void *push = raw_new(&e, ZMQ_PUSH, ep);
        send_n(push, cases[i].sent);
        c.want = cases[i].want_paused;
        bool ok = run_until(&e, counter_done, &c, 5000);
        CHECK(ok, "%s: %d delivered before pausing, want %d\n", cases[i].label, c.received,
              cases[i].want_paused);
        /* Give a wrong delivery the chance to happen. */
        (void)run_until(&e, NULL, NULL, 100);
        CHECK(c.received == cases[i].want_paused, "%s: %d delivered while paused, want %d\n",
              cases[i].label, c.received, cases[i].want_paused);
        /* Nothing new arrives from here on: resume alone must deliver. */
        pl_sock_resume(c.sock);
        c.want = cases[i].sent;
        ok = run_until(&e, counter_done, &c, 5000);
        CHECK(ok && c.received == cases[i].sent, "%s: %d delivered after resume, want %d\n",
              cases[i].label, c.received, cases[i].sent);
        zmq_close(push);
        pl_sock_close(&c.sock);
        env_close(&e);
    }
    assert_int_equal(failures, 0);
}

static void test_pause_does_not_spin(void **state)
{
    /* pl_stage pauses its PULL socket whenever it is at its concurrency
     * limit. While paused, a waiting message must not make the loop spin:
     * ZMQ_FD stays readable until someone reads ZMQ_EVENTS, and uv_poll is
     * level-triggered, so a paused socket that ignores its wakeups turns
     * every loop iteration into another wakeup. */
    env_t e;
    env_init(&e);
    counter_t c = {0};
    char ep[256];
    c.sock = sock_new(&e, ZMQ_PULL);
    bind_any(c.sock, false, "spin", ep, sizeof ep);
    start_ok(c.sock, on_count, &c);
    pl_sock_pause(c.sock);
    void *push = raw_new(&e, ZMQ_PUSH, ep);
    send_n(push, 1);
    e.iterations = 0;
    (void)run_until(&e, NULL, NULL, 200);
    uint64_t turns = e.iterations;
    pl_sock_resume(c.sock);
    c.want = 1;
    bool ok = run_until(&e, counter_done, &c, 5000);
    zmq_close(push);
    pl_sock_close(&c.sock);
    env_close(&e);
    assert_true(ok);
    /* An idle loop turns a handful of times in 200 ms (the guard timer);
     * a spinning one, tens of thousands. */
    if (turns > 1000)
        fail_msg("the loop turned %llu times in 200 ms while the socket was paused: "
                 "a paused pl_sock keeps waking the loop",
                 (unsigned long long)turns);
}

static void test_send_does_not_strand(void **state)
{
    /* A send (from a timer, say, not from a receive callback) makes libzmq
     * process the socket's pending commands, which resets ZMQ_FD: a message
     * that arrived just before has then lost its wakeup. pl_sock_send must
     * look at ZMQ_EVENTS again, or the message waits for the next one. */
    env_t e;
    env_init(&e);
    counter_t c = {0};
    void *peer = raw_new(&e, ZMQ_PAIR, NULL);
    assert_int_equal(zmq_bind(peer, "inproc://strand"), 0);
    c.sock = sock_new(&e, ZMQ_PAIR);
    connect_ok(c.sock, "inproc://strand");
    start_ok(c.sock, on_count, &c);
    send_n(peer, 1);
    c.want = 1;
    assert_true(run_until(&e, counter_done, &c, 5000));
    /* The socket has read its queue empty and sleeps on ZMQ_FD. libzmq
     * processes commands on a send at most every millisecond or so. */
    (void)run_until(&e, NULL, NULL, 10);
    send_n(peer, 1); /* signals ZMQ_FD... */
    pl_frame_t f = {"x", 1};
    assert_int_equal(pl_sock_send(c.sock, &f, 1), 0); /* ...and this clears it */
    c.want = 2;
    bool ok = run_until(&e, counter_done, &c, 2000);
    zmq_close(peer);
    pl_sock_close(&c.sock);
    env_close(&e);
    if (!ok)
        fail_msg("the message that arrived before a send was not delivered (%d of 2)",
                 c.received);
}

/* ---- closing from inside the callback ---- */

static void test_close_in_callback(void **state)
{
    static const struct {
        const char *label;
        bool before_start; /* messages wait before pl_sock_start (idle path) */
        int close_at;
    } cases[] = {
        {"waiting at start, closed on the first", true, 1},
        {"arriving later, closed on the first", false, 1},
        {"arriving later, closed on the fifth", false, 5},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        env_t e;
        env_init(&e);
        counter_t c = {.close_at = cases[i].close_at};
        char ep[256];
        c.sock = sock_new(&e, ZMQ_PULL);
        bind_any(c.sock, false, "close", ep, sizeof ep);
        void *push = raw_new(&e, ZMQ_PUSH, ep);
        if (cases[i].before_start)
            send_n(push, 20);
        start_ok(c.sock, on_count, &c);
        if (!cases[i].before_start)
            send_n(push, 20);
        c.want = cases[i].close_at;
        bool ok = run_until(&e, counter_done, &c, 5000);
        (void)run_until(&e, NULL, NULL, 50); /* nothing more may come */
        CHECK(ok && c.received == cases[i].close_at, "%s: %d delivered, want %d\n",
              cases[i].label, c.received, cases[i].close_at);
        CHECK(c.sock == NULL, "%s: pl_sock_close did not null the pointer\n", cases[i].label);
        zmq_close(push);
        env_close(&e);
    }

    /* A ROUTER that replies and then closes in the same callback. */
    env_t e;
    env_init(&e);
    echo_t server = {.close_after = 1};
    char ep[256];
    server.sock = sock_new(&e, ZMQ_ROUTER);
    bind_any(server.sock, true, "unused", ep, sizeof ep);
    start_ok(server.sock, on_echo, &server);
    client_t c = {.type = ZMQ_REQ, .delimiter = true};
    snprintf(c.label, sizeof c.label, "closing router");
    c.sock = sock_new(&e, ZMQ_REQ);
    /* Its second request can never be answered: do not linger on it. */
    set_int_ok(c.sock, ZMQ_LINGER, 0);
    connect_ok(c.sock, ep);
    start_ok(c.sock, on_reply, &c);
    client_send(&c);
    bool ok = run_until(&e, first_reply, &c, 5000);
    (void)run_until(&e, NULL, NULL, 50); /* the socket is gone: nothing more */
    CHECK(ok && server.received == 1 && server.sock == NULL,
          "replying router: received %d, pointer %s\n", server.received,
          server.sock ? "kept" : "nulled");
    CHECK(c.replies == 1 && c.bad_replies == 0, "replying router: client got %d replies\n",
          c.replies);
    pl_sock_close(&c.sock);
    env_close(&e);
    assert_int_equal(failures, 0);
}

/* ---- PUB/SUB ---- */

typedef struct sub {
    pl_sock_t *sock;
    bool synced;
    bool ended;
    char seen[16][32];
    size_t nseen;
    int bad_frames;
} sub_t;

static void on_sub(pl_sock_t *sock, zmq_msg_t *frames, size_t n, void *arg)
{
    sub_t *s = arg;
    (void)sock;
    if (n != 2 || !frame_is(&frames[1], "body"))
        s->bad_frames++;
    size_t len = zmq_msg_size(&frames[0]);
    char topic[32];
    snprintf(topic, sizeof topic, "%.*s", (int)(len < 31 ? len : 31),
             (const char *)zmq_msg_data(&frames[0]));
    if (!strcmp(topic, "sync"))
        s->synced = true;
    else if (!strcmp(topic, "sync.end"))
        s->ended = true;
    else if (s->nseen < NELEMS(s->seen))
        snprintf(s->seen[s->nseen++], sizeof s->seen[0], "%s", topic);
}

static void publish(pl_sock_t *pub, const char *topic)
{
    pl_frame_t frames[2] = {{topic, strlen(topic)}, {"body", 4}};
    (void)pl_sock_send(pub, frames, 2); /* a PUB never blocks; it drops */
}

typedef struct syncer {
    uv_timer_t timer;
    pl_sock_t *pub;
    sub_t *sub;
} syncer_t;

/* A SUB misses what is published before its subscription reaches the PUB
 * (the slow joiner): publish "sync" until it is seen. */
static void on_sync_timer(uv_timer_t *t)
{
    syncer_t *s = t->data;
    if (!s->sub->synced)
        publish(s->pub, "sync");
}

static bool synced(void *arg)
{
    return ((sub_t *)arg)->synced;
}

static bool ended(void *arg)
{
    return ((sub_t *)arg)->ended;
}

static void test_pub_sub_prefix(void **state)
{
    static const struct {
        const char *label;
        const char *topic;
        bool want;
    } cases[] = {
        {"matches the prefix", "case.accepted", true},
        {"is the prefix", "case.", true},
        {"shorter than the prefix", "case", false},
        {"differs after the prefix's stem", "cases.x", false},
        {"differs in case", "Case.accepted", false},
        {"another topic", "event.x", false},
        {"second subscription", "hub.tick", true},
        {"empty topic", "", false},
    };
    static const bool transports[] = {true, false};
    failures = 0;
    for (size_t t = 0; t < NELEMS(transports); t++) {
        env_t e;
        env_init(&e);
        pl_err_t err = {0};
        char ep[256];
        pl_sock_t *pub = sock_new(&e, ZMQ_PUB);
        bind_any(pub, transports[t], "pub", ep, sizeof ep);
        sub_t s = {0};
        s.sock = sock_new(&e, ZMQ_SUB);
        assert_int_equal(pl_sock_subscribe(s.sock, "case.", &err), 0);
        assert_int_equal(pl_sock_subscribe(s.sock, "hub.", &err), 0);
        assert_int_equal(pl_sock_subscribe(s.sock, "sync", &err), 0);
        connect_ok(s.sock, ep);
        start_ok(s.sock, on_sub, &s);
        syncer_t sy = {.pub = pub, .sub = &s};
        assert_int_equal(uv_timer_init(&e.loop, &sy.timer), 0);
        sy.timer.data = &sy;
        assert_int_equal(uv_timer_start(&sy.timer, on_sync_timer, 0, 20), 0);
        bool ok = run_until(&e, synced, &s, 5000);
        (void)uv_timer_stop(&sy.timer);
        CHECK(ok, "%s: the subscriber never saw \"sync\"\n", transports[t] ? "tcp" : "inproc");
        for (size_t i = 0; i < NELEMS(cases); i++)
            publish(pub, cases[i].topic);
        publish(pub, "sync.end"); /* one pipe, in order: after all the rest */
        ok = run_until(&e, ended, &s, 5000);
        CHECK(ok, "%s: the subscriber never saw \"sync.end\"\n", transports[t] ? "tcp" : "inproc");
        for (size_t i = 0; i < NELEMS(cases); i++) {
            bool got = false;
            for (size_t j = 0; j < s.nseen; j++)
                got = got || !strcmp(s.seen[j], cases[i].topic);
            CHECK(got == cases[i].want, "%s (%s): delivered %d, want %d\n", cases[i].label,
                  transports[t] ? "tcp" : "inproc", got, cases[i].want);
        }
        CHECK(s.bad_frames == 0, "%d messages lost their body frame\n", s.bad_frames);
        uv_close((uv_handle_t *)&sy.timer, NULL);
        pl_sock_close(&s.sock);
        pl_sock_close(&pub);
        env_close(&e);
    }
    assert_int_equal(failures, 0);
}

/* ---- endpoints: "*" on connect, addresses in use ---- */

static void on_any(pl_sock_t *sock, zmq_msg_t *frames, size_t n, void *arg)
{
    counter_t *c = arg;
    (void)sock;
    (void)frames;
    (void)n;
    c->received++;
}

static void test_connect_star_host(void **state)
{
    static const struct {
        const char *label;
        bool both;
    } cases[] = {
        {"one endpoint", false},
        {"a list of two", true},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        env_t e;
        env_init(&e);
        echo_t a = {0}, b = {0};
        char ep_a[256], ep_b[256], list[300], got[256], want[64];
        a.sock = sock_new(&e, ZMQ_ROUTER);
        b.sock = sock_new(&e, ZMQ_ROUTER);
        bind_any(a.sock, true, "", ep_a, sizeof ep_a);
        bind_any(b.sock, true, "", ep_b, sizeof ep_b);
        start_ok(a.sock, on_echo, &a);
        start_ok(b.sock, on_echo, &b);
        if (cases[i].both)
            snprintf(list, sizeof list, "tcp://*:%d, tcp://*:%d", port_of(ep_a), port_of(ep_b));
        else
            snprintf(list, sizeof list, "tcp://*:%d", port_of(ep_a));
        counter_t c = {.want = 4};
        c.sock = sock_new(&e, ZMQ_DEALER);
        connect_ok(c.sock, list);
        size_t len = sizeof got;
        assert_int_equal(zmq_getsockopt(pl_sock_raw(c.sock), ZMQ_LAST_ENDPOINT, got, &len), 0);
        snprintf(want, sizeof want, "tcp://127.0.0.1:%d",
                 cases[i].both ? port_of(ep_b) : port_of(ep_a));
        CHECK(strcmp(got, want) == 0, "%s: connected to %s, want %s\n", cases[i].label, got,
              want);
        start_ok(c.sock, on_any, &c);
        /* A connecting DEALER deals round-robin over its pipes, which exist
         * from zmq_connect on: with two endpoints each server gets some. */
        for (int m = 0; m < c.want; m++) {
            pl_frame_t f = {"hi", 2};
            CHECK(pl_sock_send(c.sock, &f, 1) == 0, "%s: send failed\n", cases[i].label);
        }
        bool ok = run_until(&e, counter_done, &c, 5000);
        CHECK(ok, "%s: %d of %d replies\n", cases[i].label, c.received, c.want);
        CHECK(a.received > 0, "%s: the first server got nothing\n", cases[i].label);
        CHECK((b.received > 0) == cases[i].both, "%s: the second server got %d\n",
              cases[i].label, b.received);
        pl_sock_close(&c.sock);
        pl_sock_close(&a.sock);
        pl_sock_close(&b.sock);
        env_close(&e);
    }
    assert_int_equal(failures, 0);
}

static void test_endpoint_errors(void **state)
{
    env_t e;
    env_init(&e);
    char taken_tcp[256];
    pl_sock_t *holder = sock_new(&e, ZMQ_ROUTER);
    bind_any(holder, true, "", taken_tcp, sizeof taken_tcp);
    pl_err_t err = {0};
    assert_int_equal(pl_sock_bind(holder, "inproc://taken", &err), 0);
    static const struct {
        const char *label;
        bool connect;
        const char *endpoints; /* "@" stands for the tcp endpoint in use */
        const char *want_in_message;
    } cases[] = {
        {"tcp address in use", false, "@", "@"},
        {"second of a list in use", false, "inproc://free-one, @", "@"},
        {"inproc name in use", false, "inproc://taken", "inproc://taken"},
        {"unknown transport", false, "bogus://x", "bogus://x"},
        {"connect to a malformed endpoint", true, "tcp://", "tcp://"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        char endpoints[300], want[300];
        const char *at = strchr(cases[i].endpoints, '@');
        if (at)
            snprintf(endpoints, sizeof endpoints, "%.*s%s", (int)(at - cases[i].endpoints),
                     cases[i].endpoints, taken_tcp);
        else
            snprintf(endpoints, sizeof endpoints, "%s", cases[i].endpoints);
        snprintf(want, sizeof want, "%s",
                 strcmp(cases[i].want_in_message, "@") ? cases[i].want_in_message : taken_tcp);
        pl_sock_t *s = sock_new(&e, ZMQ_ROUTER);
        pl_err_clear(&err);
        int rc = cases[i].connect ? pl_sock_connect(s, endpoints, &err)
                                  : pl_sock_bind(s, endpoints, &err);
        CHECK(rc == PL_EIO, "%s: rc %d, want PL_EIO\n", cases[i].label, rc);
        CHECK(err.code == PL_EIO, "%s: err.code %d\n", cases[i].label, err.code);
        CHECK(strstr(err.message, want) != NULL, "%s: message \"%s\" does not name %s\n",
              cases[i].label, err.message, want);
        CHECK(err.hint[0] != '\0', "%s: no hint\n", cases[i].label);
        pl_sock_close(&s);
    }
    pl_sock_close(&holder);
    env_close(&e);
    assert_int_equal(failures, 0);
}

/* ---- ZMQ_MAXMSGSIZE and ZMQ_LINGER ---- */

typedef struct sizes {
    pl_sock_t *sock;
    size_t big_seen;   /* frames of the big size delivered */
    size_t want_big;
    bool ping_seen;
} sizes_t;

static void on_sized(pl_sock_t *sock, zmq_msg_t *frames, size_t n, void *arg)
{
    sizes_t *s = arg;
    (void)sock;
    if (n == 1 && frame_is(&frames[0], "ping"))
        s->ping_seen = true;
    else if (n == 1 && zmq_msg_size(&frames[0]) == s->want_big)
        s->big_seen++;
}

typedef struct pinger {
    uv_timer_t timer;
    void *z;
} pinger_t;

/* The oversized frame makes the receiver drop the connection, and whatever
 * was queued behind it may go with it: ping until one gets through (after
 * the reconnect). A ping arriving proves the big frame had its chance. */
static void on_ping_timer(uv_timer_t *t)
{
    pinger_t *p = t->data;
    (void)zmq_send(p->z, "ping", 4, ZMQ_DONTWAIT);
}

static bool ping_seen(void *arg)
{
    return ((sizes_t *)arg)->ping_seen;
}

static void test_maxmsgsize(void **state)
{
    env_t e;
    env_init(&e);
    sizes_t s = {0};
    char ep[256];
    s.sock = sock_new(&e, ZMQ_PULL);
    int64_t maxsize = 0;
    int linger = -1;
    size_t len = sizeof maxsize;
    assert_int_equal(zmq_getsockopt(pl_sock_raw(s.sock), ZMQ_MAXMSGSIZE, &maxsize, &len), 0);
    assert_int_equal(maxsize, PL_MSG_SOCKET_MAX);
    len = sizeof linger;
    assert_int_equal(zmq_getsockopt(pl_sock_raw(s.sock), ZMQ_LINGER, &linger, &len), 0);
    assert_true(linger >= 0 && linger <= 10000); /* bounded, never the infinite default */

    bind_any(s.sock, true, "", ep, sizeof ep);
    start_ok(s.sock, on_sized, &s);
    static const struct {
        const char *label;
        size_t size;
        bool want;
    } cases[] = {
        {"small", 10, true},
        {"at the limit", PL_MSG_SOCKET_MAX, true},
        {"one byte over", PL_MSG_SOCKET_MAX + 1, false},
        {"twice the limit", 2 * PL_MSG_SOCKET_MAX, false},
    };
    char *big = pl_malloc(2 * PL_MSG_SOCKET_MAX);
    memset(big, 'b', 2 * PL_MSG_SOCKET_MAX);
    pinger_t p = {0};
    assert_int_equal(uv_timer_init(&e.loop, &p.timer), 0);
    p.timer.data = &p;
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        s.big_seen = 0;
        s.ping_seen = false;
        s.want_big = cases[i].size;
        /* A fresh peer per case: an oversized frame costs its connection. */
        p.z = raw_new(&e, ZMQ_PUSH, ep);
        assert_int_equal(zmq_send(p.z, big, cases[i].size, 0), (int)cases[i].size);
        assert_int_equal(uv_timer_start(&p.timer, on_ping_timer, 0, 100), 0);
        bool ok = run_until(&e, ping_seen, &s, 10000);
        (void)uv_timer_stop(&p.timer);
        CHECK(ok, "%s: no ping got through\n", cases[i].label);
        CHECK((s.big_seen > 0) == cases[i].want, "%s: delivered %zu times, want %s\n",
              cases[i].label, s.big_seen, cases[i].want ? "once" : "never");
        CHECK(s.big_seen <= 1, "%s: delivered %zu times\n", cases[i].label, s.big_seen);
        zmq_close(p.z);
    }
    uv_close((uv_handle_t *)&p.timer, NULL);
    pl_free(big);
    pl_sock_close(&s.sock);
    env_close(&e);
    assert_int_equal(failures, 0);
}

static void test_close_null_safe(void **state)
{
    pl_sock_t *none = NULL;
    pl_sock_close(&none);
    pl_sock_close(NULL);
    /* A socket closed without ever starting frees itself too (ASan). */
    env_t e;
    env_init(&e);
    pl_sock_t *s = sock_new(&e, ZMQ_DEALER);
    pl_sock_close(&s);
    assert_null(s);
    env_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_clients),
        cmocka_unit_test(test_burst_all_delivered),
        cmocka_unit_test(test_frame_cap),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_pause_does_not_spin),
        cmocka_unit_test(test_send_does_not_strand),
        cmocka_unit_test(test_close_in_callback),
        cmocka_unit_test(test_pub_sub_prefix),
        cmocka_unit_test(test_connect_star_host),
        cmocka_unit_test(test_endpoint_errors),
        cmocka_unit_test(test_maxmsgsize),
        cmocka_unit_test(test_close_null_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
