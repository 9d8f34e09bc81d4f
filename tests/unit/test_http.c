/*
 * test_http: pl_http over real sockets on 127.0.0.1 with a real libuv loop.
 *
 * The server runs on the test's thread; each scenario runs as a blocking
 * client on a thread of its own, records what it saw, and wakes the loop
 * through a uv_async when it is done. Responses are read with http-parser
 * in response mode, so the checks see what any HTTP client would. Nothing
 * is mocked.
 *
 * Every wait is bounded: the loop runs under a guard timer and client
 * sockets have receive timeouts (both scaled by
 * PLAINT_TEST_TIMEOUT_MULTIPLIER), so a bug shows up as a failed check,
 * not as a hung test. Callbacks and the client thread never assert (cmocka
 * would longjmp out of the loop); they record, and the test checks after
 * the loop returns. At the end the server is closed and the loop must have
 * nothing left open; ASan checks that nothing leaked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_http.h"

#include "test_util.h"

#define RESP_MAX 1024

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the client (runs on its own thread; blocking sockets) ---- */

typedef struct resp {
    int status;
    char headers[1024]; /* "name: value\n", names in lower case */
    char body[1024];
    size_t body_len;
} resp_t;

typedef struct client {
    int fd;
    http_parser parser;
    resp_t *resps; /* RESP_MAX */
    int nresp;
    resp_t cur;
    bool in_value;
    bool head;          /* answers are to HEAD: no body */
    bool saw_continue;  /* a 100 Continue came */
    bool parse_error;
    bool eof;           /* the server closed (FIN or RST) */
} client_t;

static void append(char *dst, size_t size, const char *at, size_t len)
{
    size_t have = strlen(dst);
    if (have + len + 1 > size)
        len = size - have - 1;
    memcpy(dst + have, at, len);
    dst[have + len] = '\0';
}

static int c_on_header_field(http_parser *p, const char *at, size_t len)
{
    client_t *c = p->data;
    if (c->in_value)
        append(c->cur.headers, sizeof c->cur.headers, "\n", 1);
    c->in_value = false;
    char lower[256];
    size_t n = len < sizeof lower ? len : sizeof lower - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)((at[i] >= 'A' && at[i] <= 'Z') ? at[i] + 32 : at[i]);
    append(c->cur.headers, sizeof c->cur.headers, lower, n);
    return 0;
}

static int c_on_header_value(http_parser *p, const char *at, size_t len)
{
    client_t *c = p->data;
    if (!c->in_value)
        append(c->cur.headers, sizeof c->cur.headers, ": ", 2);
    c->in_value = true;
    append(c->cur.headers, sizeof c->cur.headers, at, len);
    return 0;
}

static int c_on_headers_complete(http_parser *p)
{
    client_t *c = p->data;
    if (c->in_value)
        append(c->cur.headers, sizeof c->cur.headers, "\n", 1);
    c->in_value = false;
    c->cur.status = (int)p->status_code;
    return c->head && p->status_code != 100 ? 1 : 0;
}

static int c_on_body(http_parser *p, const char *at, size_t len)
{
    client_t *c = p->data;
    size_t n = len;
    if (c->cur.body_len + n >= sizeof c->cur.body)
        n = sizeof c->cur.body - 1 - c->cur.body_len;
    memcpy(c->cur.body + c->cur.body_len, at, n);
    c->cur.body_len += n;
    c->cur.body[c->cur.body_len] = '\0';
    return 0;
}

static int c_on_message_complete(http_parser *p)
{
    client_t *c = p->data;
    if (c->cur.status == 100)
        c->saw_continue = true;
    else if (c->nresp < RESP_MAX)
        c->resps[c->nresp++] = c->cur;
    memset(&c->cur, 0, sizeof c->cur);
    return 0;
}

static const http_parser_settings client_settings = {
    .on_header_field = c_on_header_field,
    .on_header_value = c_on_header_value,
    .on_headers_complete = c_on_headers_complete,
    .on_body = c_on_body,
    .on_message_complete = c_on_message_complete,
};

static bool client_open(client_t *c, int port)
{
    memset(c, 0, sizeof *c);
    c->resps = pl_calloc(RESP_MAX, sizeof *c->resps);
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return false;
    int one = 1;
    int64_t ms = scaled_ms(3000);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0;
}

static void client_close(client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    pl_free(c->resps);
    c->resps = NULL;
}

/* False when the server closed before everything was sent. */
static bool client_send(client_t *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static bool client_sends(client_t *c, const char *text)
{
    return client_send(c, text, strlen(text));
}

/* Reads until n answers are complete, the server closes, or the receive
 * timeout passes. Returns the answers complete so far. */
static int client_read_until(client_t *c, int n, bool until_continue)
{
    char buf[8192];
    while (c->nresp < n && !(until_continue && c->saw_continue) && !c->eof && !c->parse_error) {
        ssize_t got = recv(c->fd, buf, sizeof buf, 0);
        if (got == 0 || (got < 0 && (errno == ECONNRESET || errno == EPIPE))) {
            c->eof = true;
            break;
        }
        if (got < 0)
            break; /* timeout */
        size_t done = http_parser_execute(&c->parser, &client_settings, buf, (size_t)got);
        if (done != (size_t)got && HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
            c->parse_error = true;
    }
    return c->nresp;
}

static int client_read(client_t *c, int n)
{
    return client_read_until(c, n, false);
}

/* Whether the server closes the connection within the receive timeout
 * (bytes that still arrive are parsed as answers). */
static bool client_sees_close(client_t *c)
{
    client_read(c, RESP_MAX);
    return c->eof;
}

static const char *header_of(const resp_t *r, const char *name)
{
    static __thread char value[512];
    char key[128];
    snprintf(key, sizeof key, "%s: ", name);
    const char *p = r->headers;
    while ((p = strstr(p, key)) != NULL) {
        if (p == r->headers || p[-1] == '\n') {
            p += strlen(key);
            size_t n = strcspn(p, "\n");
            snprintf(value, sizeof value, "%.*s", (int)n, p);
            return value;
        }
        p++;
    }
    return NULL;
}

/* ---- the server side ---- */

typedef struct env env_t;
typedef void (*scenario_fn)(env_t *e);

struct env {
    uv_loop_t loop;
    uv_timer_t guard;
    uv_async_t done;        /* the client finished */
    uv_async_t close_async; /* the client asks to close the server */
    uv_timer_t slow;        /* answers /slow later */
    pl_http_server_t *srv;
    int port;
    bool timed_out;
    /* written by the loop thread, read by the client thread */
    atomic_int held;  /* /hang holds a request */
    atomic_int slow_pending;
    pl_http_req_t *slow_req;
    pl_http_req_t *hang_req;
    /* the scenario's findings, read after the join */
    scenario_fn scenario;
    char note[64][160];
    int nnotes;
    pthread_t thread;
};

/* Client-side failure notes (the thread cannot assert). */
static void note(env_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(env_t *e, const char *fmt, ...)
{
    if (e->nnotes >= (int)NELEMS(e->note))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->note[e->nnotes++], sizeof e->note[0], fmt, ap);
    va_end(ap);
}

#define EXPECT(e, cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            note(e, __VA_ARGS__);                                                                  \
    } while (0)

static void respond_text(pl_http_req_t *req, const char *text)
{
    pl_http_respond(req, 200, "text/plain", text, strlen(text));
}

static void on_fixed(pl_http_req_t *req, void *arg)
{
    respond_text(req, arg);
}

static void on_prefix(pl_http_req_t *req, void *arg)
{
    char text[512];
    snprintf(text, sizeof text, "%s:%s", (const char *)arg, pl_http_req_path_rest(req));
    respond_text(req, text);
}

/* Tells what the server saw: method, path, query parameters, a header, the body. */
static void on_echo(pl_http_req_t *req, void *arg)
{
    (void)arg;
    char after[64], q[64], text[4096];
    int ra = pl_http_query_get(req, "after", after, sizeof after);
    int rq = pl_http_query_get(req, "q", q, sizeof q);
    size_t blen;
    const char *body = pl_http_req_body(req, &blen);
    const char *h = pl_http_req_header(req, "x-test");
    snprintf(text, sizeof text, "%s %s ?%s after=%s(%d) q=%s(%d) x-test=%s body=%.*s",
             pl_http_req_method(req), pl_http_req_path(req), pl_http_req_query(req),
             ra >= 0 ? after : "-", ra, rq >= 0 ? q : "-", rq, h ? h : "-", (int)blen, body);
    (void)pl_http_req_set_header(req, "X-Echo", "yes");
    respond_text(req, text);
}

static void on_slow_timer(uv_timer_t *t)
{
    env_t *e = t->data;
    pl_http_req_t *req = e->slow_req;
    e->slow_req = NULL;
    atomic_store(&e->slow_pending, 0);
    if (req)
        respond_text(req, "slow answer");
}

static void on_slow(pl_http_req_t *req, void *arg)
{
    env_t *e = arg;
    e->slow_req = req;
    atomic_store(&e->slow_pending, 1);
    (void)uv_timer_start(&e->slow, on_slow_timer, 50, 0);
}

static void on_hang(pl_http_req_t *req, void *arg)
{
    env_t *e = arg;
    e->hang_req = req;
    atomic_store(&e->held, 1);
}

static void on_guard(uv_timer_t *t)
{
    env_t *e = t->data;
    e->timed_out = true;
    uv_stop(&e->loop);
}

static void on_done(uv_async_t *a)
{
    uv_stop(a->loop);
}

static void on_close_request(uv_async_t *a)
{
    env_t *e = a->data;
    pl_http_server_close(&e->srv);
}

static void add_routes(env_t *e)
{
    static const struct {
        const char *method, *path;
        bool prefix;
        pl_http_handler_t cb;
        const char *arg;
    } routes[] = {
        {"GET", "/a", PL_HTTP_EXACT, on_fixed, "a"},
        {"GET", "/v1/", PL_HTTP_PREFIX, on_prefix, "v1"},
        {"GET", "/v1/cases/", PL_HTTP_PREFIX, on_prefix, "cases"},
        {"GET", "/v1/cases/special", PL_HTTP_EXACT, on_fixed, "special"},
        {"POST", "/v1/cases/", PL_HTTP_PREFIX, on_prefix, "post-cases"},
        {"GET", "/echo", PL_HTTP_EXACT, on_echo, NULL},
        {"POST", "/echo", PL_HTTP_EXACT, on_echo, NULL},
        {"DELETE", "/only-delete", PL_HTTP_EXACT, on_fixed, "deleted"},
    };
    for (size_t i = 0; i < NELEMS(routes); i++)
        assert_int_equal(pl_http_route(e->srv, routes[i].method, routes[i].path, routes[i].prefix,
                                       routes[i].cb, (void *)routes[i].arg),
                         0);
    assert_int_equal(pl_http_route(e->srv, "GET", "/slow", PL_HTTP_EXACT, on_slow, e), 0);
    assert_int_equal(pl_http_route(e->srv, "GET", "/hang", PL_HTTP_EXACT, on_hang, e), 0);
    /* Registration mistakes are refused. */
    assert_int_equal(pl_http_route(e->srv, "GET", "/a", PL_HTTP_EXACT, on_fixed, "x"),
                     PL_ECONFLICT);
    assert_int_equal(pl_http_route(e->srv, "GET", "no-slash", PL_HTTP_EXACT, on_fixed, "x"),
                     PL_EINVAL);
    assert_int_equal(pl_http_route(e->srv, "", "/b", PL_HTTP_EXACT, on_fixed, "x"), PL_EINVAL);
    assert_int_equal(pl_http_route(e->srv, "G T", "/b", PL_HTTP_EXACT, on_fixed, "x"), PL_EINVAL);
}

static void env_init(env_t *e, const pl_http_limits_t *limits)
{
    memset(e, 0, sizeof *e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(uv_timer_init(&e->loop, &e->guard), 0);
    assert_int_equal(uv_timer_init(&e->loop, &e->slow), 0);
    assert_int_equal(uv_async_init(&e->loop, &e->done, on_done), 0);
    assert_int_equal(uv_async_init(&e->loop, &e->close_async, on_close_request), 0);
    e->guard.data = e->slow.data = e->done.data = e->close_async.data = e;
    pl_err_t err = {0};
    e->srv = pl_http_server_new(&e->loop, "127.0.0.1:0", &err);
    if (!e->srv)
        fail_msg("pl_http_server_new: %s", err.message);
    if (limits)
        pl_http_server_set_limits(e->srv, limits);
    e->port = pl_http_server_port(e->srv);
    assert_true(e->port > 0);
    add_routes(e);
}

static void *client_main(void *arg)
{
    env_t *e = arg;
    e->scenario(e);
    uv_async_send(&e->done);
    return NULL;
}

/* Runs scenario on a client thread while the loop serves; then checks the
 * notes it left. */
static void run(env_t *e, scenario_fn scenario)
{
    e->scenario = scenario;
    (void)uv_timer_start(&e->guard, on_guard, (uint64_t)scaled_ms(20000), 0);
    assert_int_equal(pthread_create(&e->thread, NULL, client_main, e), 0);
    (void)uv_run(&e->loop, UV_RUN_DEFAULT);
    (void)uv_timer_stop(&e->guard);
    assert_int_equal(pthread_join(e->thread, NULL), 0);
    for (int i = 0; i < e->nnotes; i++)
        CHECK(false, "%s\n", e->note[i]);
    CHECK(!e->timed_out, "the scenario did not finish in time\n");
}

/* Closes the server and everything else; the loop must end empty. */
static void env_close(env_t *e)
{
    pl_http_server_close(&e->srv);
    assert_null(e->srv);
    if (e->slow_req) {
        pl_http_respond(e->slow_req, 200, NULL, NULL, 0);
        e->slow_req = NULL;
    }
    if (e->hang_req) {
        /* The connection is gone: the answer is dropped and the request freed. */
        CHECK(pl_http_req_orphaned(e->hang_req), "/hang's request is not orphaned\n");
        pl_http_respond(e->hang_req, 200, "text/plain", "late", 4);
        e->hang_req = NULL;
    }
    uv_close((uv_handle_t *)&e->guard, NULL);
    uv_close((uv_handle_t *)&e->slow, NULL);
    uv_close((uv_handle_t *)&e->done, NULL);
    uv_close((uv_handle_t *)&e->close_async, NULL);
    for (int i = 0; i < 100 && uv_run(&e->loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    assert_int_equal(uv_loop_close(&e->loop), 0);
}

static void run_scenario(scenario_fn scenario, const pl_http_limits_t *limits)
{
    failures = 0;
    env_t *e = pl_calloc(1, sizeof *e);
    env_init(e, limits);
    run(e, scenario);
    env_close(e);
    pl_free(e);
    assert_int_equal(failures, 0);
}

/* One request on a new connection; fills *r. Returns whether an answer came. */
static bool exchange(env_t *e, const char *request, resp_t *r, bool *closed)
{
    client_t c;
    bool ok = client_open(&c, e->port) && client_sends(&c, request) && client_read(&c, 1) == 1;
    if (ok)
        *r = c.resps[0];
    if (closed)
        *closed = ok && client_sees_close(&c);
    client_close(&c);
    return ok;
}

/* ---- scenarios ---- */

static void scenario_routes(env_t *e)
{
    static const struct {
        const char *label;
        const char *request;
        int status;
        const char *body; /* prefix of the body */
    } cases[] = {
        {"exact", "GET /a HTTP/1.1\r\nHost: t\r\n\r\n", 200, "a"},
        {"exact is not a prefix", "GET /a/b HTTP/1.1\r\nHost: t\r\n\r\n", 404, "{\"error\":"},
        {"prefix", "GET /v1/events HTTP/1.1\r\nHost: t\r\n\r\n", 200, "v1:events"},
        {"longest prefix wins", "GET /v1/cases/42 HTTP/1.1\r\nHost: t\r\n\r\n", 200,
         "cases:42"},
        {"exact beats prefix", "GET /v1/cases/special HTTP/1.1\r\nHost: t\r\n\r\n", 200,
         "special"},
        {"prefix itself", "GET /v1/cases/ HTTP/1.1\r\nHost: t\r\n\r\n", 200, "cases:"},
        {"method picks route", "POST /v1/cases/7 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
         200, "post-cases:7"},
        {"query is not path", "GET /a?x=1 HTTP/1.1\r\nHost: t\r\n\r\n", 200, "a"},
        {"absolute form", "GET http://t/a?x=1 HTTP/1.1\r\nHost: t\r\n\r\n", 200, "a"},
        {"404 body",
         "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n", 404,
         "{\"error\":{\"code\":\"not_found\",\"message\":\"no resource at /nothing\","
         "\"errors\":[]}}"},
        {"405 body",
         "PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 405,
         "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method PUT is not allowed "
         "here; allowed: GET, HEAD\",\"errors\":[]}}"},
        {"405 other method", "GET /only-delete HTTP/1.1\r\nHost: t\r\n\r\n", 405, "{\"error\""},
        {"echo",
         "GET /echo?after=12&q=a%20b+c&after=99 HTTP/1.1\r\nHost: t\r\nX-Test:  v  \r\n\r\n",
         200, "GET /echo ?after=12&q=a%20b+c&after=99 after=12(2) q=a b c(5) x-test=v body="},
        {"echo missing param", "GET /echo?x=1 HTTP/1.1\r\nHost: t\r\n\r\n", 200,
         "GET /echo ?x=1 after=-(-4) q=-(-4) x-test=- body="},
        {"echo bad escape", "GET /echo?after=%zz HTTP/1.1\r\nHost: t\r\n\r\n", 200,
         "GET /echo ?after=%zz after=-(-1)"},
        {"echo too long", "GET /echo?after=" "0123456789012345678901234567890123456789"
         "0123456789012345678901234567890123456789 HTTP/1.1\r\nHost: t\r\n\r\n", 200,
         "GET /echo ?after=0123456789012345678901234567890123456789012345678901234567890123456789"
         "0123456789 after=-(-2)"},
        {"post body", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", 200,
         "POST /echo ? after=-(-4) q=-(-4) x-test=- body=hello"},
        {"chunked body",
         "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
         200, "POST /echo ? after=-(-4) q=-(-4) x-test=- body=abcde"},
        {"http/1.0", "GET /a HTTP/1.0\r\n\r\n", 200, "a"},
    };
    for (size_t i = 0; i < NELEMS(cases); i++) {
        resp_t r;
        if (!exchange(e, cases[i].request, &r, NULL)) {
            note(e, "%s: no answer", cases[i].label);
            continue;
        }
        EXPECT(e, r.status == cases[i].status, "%s: status %d, want %d", cases[i].label, r.status,
               cases[i].status);
        EXPECT(e, strncmp(r.body, cases[i].body, strlen(cases[i].body)) == 0,
               "%s: body \"%.80s\", want \"%.80s\"", cases[i].label, r.body, cases[i].body);
        if (r.status == 405) {
            const char *allow = header_of(&r, "allow");
            EXPECT(e, allow != NULL, "%s: no Allow header", cases[i].label);
        }
        if (r.status >= 400) {
            const char *ct = header_of(&r, "content-type");
            EXPECT(e, ct && strcmp(ct, "application/json") == 0, "%s: content-type %s",
                   cases[i].label, ct ? ct : "(none)");
        }
    }
    resp_t r;
    if (exchange(e, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r, NULL)) {
        const char *x = header_of(&r, "x-echo");
        EXPECT(e, x && strcmp(x, "yes") == 0, "extra header: X-Echo %s", x ? x : "(none)");
        EXPECT(e, header_of(&r, "date") != NULL, "no Date header");
    } else
        note(e, "echo: no answer");
}

static void test_routes(void **state)
{
    run_scenario(scenario_routes, NULL);
}

static void scenario_head(env_t *e)
{
    client_t c;
    if (!client_open(&c, e->port)) {
        note(e, "connect failed");
        return;
    }
    c.head = true;
    if (!client_sends(&c, "HEAD /a HTTP/1.1\r\nHost: t\r\n\r\n") || client_read(&c, 1) != 1)
        note(e, "HEAD: no answer");
    else {
        const char *cl = header_of(&c.resps[0], "content-length");
        EXPECT(e, c.resps[0].status == 200, "HEAD: status %d", c.resps[0].status);
        EXPECT(e, cl && strcmp(cl, "1") == 0, "HEAD: content-length %s", cl ? cl : "(none)");
    }
    /* No body followed: the next answer on the connection parses cleanly. */
    c.head = false;
    if (!client_sends(&c, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n") || client_read(&c, 2) != 2)
        note(e, "GET after HEAD: no answer");
    else
        EXPECT(e, strcmp(c.resps[1].body, "a") == 0, "GET after HEAD: body %s", c.resps[1].body);
    client_close(&c);
}

static void test_head(void **state)
{
    run_scenario(scenario_head, NULL);
}

static void scenario_keep_alive(env_t *e)
{
    client_t c;
    if (!client_open(&c, e->port)) {
        note(e, "connect failed");
        return;
    }
    bool ok = client_sends(&c, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n") && client_read(&c, 1) == 1 &&
              client_sends(&c, "GET /v1/x HTTP/1.1\r\nHost: t\r\n\r\n") && client_read(&c, 2) == 2;
    EXPECT(e, ok, "two requests on one connection: %d answers", c.nresp);
    if (ok) {
        EXPECT(e, strcmp(c.resps[0].body, "a") == 0, "first body %s", c.resps[0].body);
        EXPECT(e, strcmp(c.resps[1].body, "v1:x") == 0, "second body %s", c.resps[1].body);
        EXPECT(e, header_of(&c.resps[1], "connection") == NULL, "keep-alive sent Connection: %s",
               header_of(&c.resps[1], "connection"));
    }
    /* Connection: close is honoured: answered, then closed. */
    ok = client_sends(&c, "GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") &&
         client_read(&c, 3) == 3;
    EXPECT(e, ok, "Connection: close: no answer");
    if (ok) {
        const char *conn = header_of(&c.resps[2], "connection");
        EXPECT(e, conn && strcmp(conn, "close") == 0, "Connection header %s", conn ? conn : "-");
    }
    EXPECT(e, client_sees_close(&c), "the server kept the connection after Connection: close");
    client_close(&c);

    /* HTTP/1.0 closes unless asked to keep alive. */
    resp_t r;
    bool closed = false;
    EXPECT(e, exchange(e, "GET /a HTTP/1.0\r\n\r\n", &r, &closed) && closed,
           "HTTP/1.0 without keep-alive was not closed");
    if (!client_open(&c, e->port))
        return;
    const char *keep = "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    ok = client_sends(&c, keep) && client_read(&c, 1) == 1 && client_sends(&c, keep) &&
         client_read(&c, 2) == 2;
    EXPECT(e, ok, "HTTP/1.0 keep-alive: %d answers", c.nresp);
    if (ok) {
        const char *conn = header_of(&c.resps[0], "connection");
        EXPECT(e, conn && strcasecmp(conn, "keep-alive") == 0, "HTTP/1.0 Connection %s",
               conn ? conn : "-");
    }
    client_close(&c);
}

static void test_keep_alive(void **state)
{
    run_scenario(scenario_keep_alive, NULL);
}

static void scenario_pipelined(env_t *e)
{
    /* Far more than one read buffer (16 KiB) of requests in one go, so
     * pausing and resuming the parser is exercised across reads. */
    enum { N = 600 };
    size_t cap = N * 64, len = 0;
    char *all = pl_malloc(cap);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(all + len, cap - len, "GET /v1/p%03d HTTP/1.1\r\nHost: t\r\n\r\n",
                                i);
    client_t c;
    if (!client_open(&c, e->port)) {
        note(e, "connect failed");
        pl_free(all);
        return;
    }
    bool sent = client_send(&c, all, len);
    int got = client_read(&c, N);
    EXPECT(e, sent && got == N, "pipelined: sent %d, %d answers", sent, got);
    for (int i = 0; i < got; i++) {
        char want[32];
        snprintf(want, sizeof want, "v1:p%03d", i);
        if (strcmp(c.resps[i].body, want) != 0) {
            note(e, "pipelined answer %d: %s, want %s", i, c.resps[i].body, want);
            break;
        }
    }
    client_close(&c);
    pl_free(all);

    /* Three requests in one segment, the last with Connection: close: all
     * three answered, in order, then the connection closes. */
    if (!client_open(&c, e->port))
        return;
    sent = client_sends(&c, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
                            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz"
                            "GET /v1/last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                            "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    got = client_read(&c, 4);
    EXPECT(e, sent && got == 3, "pipelined with close: %d answers, want 3", got);
    if (got >= 3) {
        EXPECT(e, strcmp(c.resps[0].body, "a") == 0, "first %s", c.resps[0].body);
        EXPECT(e, strstr(c.resps[1].body, "body=xyz") != NULL, "second %s", c.resps[1].body);
        EXPECT(e, strcmp(c.resps[2].body, "v1:last") == 0, "third %s", c.resps[2].body);
    }
    EXPECT(e, c.eof, "not closed after Connection: close");
    client_close(&c);
}

static void test_pipelined(void **state)
{
    run_scenario(scenario_pipelined, NULL);
}

static void scenario_split(env_t *e)
{
    const char *req = "POST /echo?q=split HTTP/1.1\r\nHost: t\r\nX-Test: in pieces\r\n"
                      "Content-Length: 11\r\n\r\nhello world";
    client_t c;
    if (!client_open(&c, e->port)) {
        note(e, "connect failed");
        return;
    }
    bool sent = true;
    for (size_t i = 0; req[i] && sent; i++) {
        sent = client_send(&c, req + i, 1);
        if (i % 8 == 0)
            sleep_ms(1); /* separate segments, separate reads */
    }
    EXPECT(e, sent && client_read(&c, 1) == 1, "split request: no answer");
    if (c.nresp == 1)
        EXPECT(e, strcmp(c.resps[0].body, "POST /echo ?q=split after=-(-4) q=split(5) "
                                          "x-test=in pieces body=hello world") == 0,
               "split request: body %s", c.resps[0].body);
    client_close(&c);
}

static void test_split_request(void **state)
{
    run_scenario(scenario_split, NULL);
}

/* A request with one header of n bytes. */
static char *big_header_request(size_t n)
{
    char *req = pl_malloc(n + 128);
    int len = snprintf(req, 128, "GET /a HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + len, 'b', n);
    strcpy(req + len + n, "\r\n\r\n");
    return req;
}

static void scenario_oversize_headers(env_t *e)
{
    static const struct {
        const char *label;
        size_t bytes;
    } cases[] = {
        {"over our limit", 20 * 1024},
        {"over http-parser's own limit", 200 * 1024},
    };
    for (size_t i = 0; i < NELEMS(cases); i++) {
        char *req = big_header_request(cases[i].bytes);
        client_t c;
        if (client_open(&c, e->port)) {
            (void)client_sends(&c, req); /* the server may close before all is sent */
            int got = client_read(&c, 1);
            EXPECT(e, got == 1 && (c.resps[0].status == 431 || c.resps[0].status == 400),
                   "%s: %d answers, status %d", cases[i].label, got, got ? c.resps[0].status : 0);
            EXPECT(e, client_sees_close(&c), "%s: not closed", cases[i].label);
        }
        client_close(&c);
        pl_free(req);
    }
    /* Too many header lines. */
    char req[8192];
    size_t len = (size_t)snprintf(req, sizeof req, "GET /a HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 150; i++)
        len += (size_t)snprintf(req + len, sizeof req - len, "X-H%d: v\r\n", i);
    snprintf(req + len, sizeof req - len, "\r\n");
    resp_t r;
    bool closed = false;
    EXPECT(e, exchange(e, req, &r, &closed) && r.status == 431 && closed,
           "150 header lines: status %d, closed %d", r.status, closed);
}

static void test_oversize_headers(void **state)
{
    run_scenario(scenario_oversize_headers, NULL);
}

static void scenario_body_limit(env_t *e)
{
    resp_t r;
    bool closed = false;
    /* Content-Length over the limit: refused before the body is read. */
    bool ok = exchange(e, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n", &r,
                       &closed);
    EXPECT(e, ok && r.status == 413 && closed, "Content-Length 2000: status %d, closed %d",
           r.status, closed);
    EXPECT(e, strstr(r.body, "\"code\":\"too_large\"") != NULL, "413 body %s", r.body);
    /* Chunked, over the limit as it arrives. */
    char req[4096];
    size_t len = (size_t)snprintf(
        req, sizeof req, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        len += (size_t)snprintf(req + len, sizeof req - len, "200\r\n");
        memset(req + len, 'c', 512);
        len += 512;
        len += (size_t)snprintf(req + len, sizeof req - len, "\r\n");
    }
    snprintf(req + len, sizeof req - len, "0\r\n\r\n");
    ok = exchange(e, req, &r, &closed);
    EXPECT(e, ok && r.status == 413 && closed, "chunked 1536: status %d, closed %d", r.status,
           closed);
    /* At the limit: fine. */
    len = (size_t)snprintf(req, sizeof req,
                           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n");
    memset(req + len, 'x', 1024);
    req[len + 1024] = '\0';
    ok = exchange(e, req, &r, NULL);
    EXPECT(e, ok && r.status == 200, "1024 bytes: status %d", r.status);

    /* Expect: 100-continue gets its interim answer before the body is sent. */
    client_t c;
    if (!client_open(&c, e->port))
        return;
    ok = client_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                          "Expect: 100-continue\r\n\r\n");
    (void)client_read_until(&c, 1, true);
    EXPECT(e, c.saw_continue, "no 100 Continue");
    ok = ok && client_sends(&c, "body") && client_read(&c, 1) == 1;
    EXPECT(e, ok && strstr(c.resps[0].body, "body=body") != NULL, "after 100: %s",
           c.nresp ? c.resps[0].body : "(none)");
    client_close(&c);
}

static void test_body_limit(void **state)
{
    pl_http_limits_t limits = {.body_max = 1024};
    run_scenario(scenario_body_limit, &limits);
}

static void scenario_bad_requests(env_t *e)
{
#define BIN(s) s, sizeof(s) - 1
    static const struct {
        const char *label;
        const char *request;
        size_t len;
        int status;
    } cases[] = {
        {"garbage line", BIN("GARBAGE\r\n\r\n"), 400},
        {"HTTP/0.9", BIN("GET /a\r\n\r\n"), 505},
        {"HTTP/2.0", BIN("GET /a HTTP/2.0\r\n\r\n"), 505},
        {"bad version", BIN("GET /a HTTP/9.x\r\n\r\n"), 400},
        {"header without colon", BIN("GET /a HTTP/1.1\r\nNoColon\r\n\r\n"), 400},
        {"bad content-length", BIN("POST /a HTTP/1.1\r\nContent-Length: abc\r\n\r\n"), 400},
        {"two content-lengths",
         BIN("POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"), 400},
        {"bad chunk size", BIN("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
         400},
        {"NUL in path", BIN("GET /a\0b HTTP/1.1\r\n\r\n"), 400},
        {"NUL in header", BIN("GET /a HTTP/1.1\r\nX: a\0b\r\n\r\n"), 400},
        {"asterisk target", BIN("GET * HTTP/1.1\r\nHost: t\r\n\r\n"), 400},
        {"binary", BIN("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), 400},
    };
#undef BIN
    for (size_t i = 0; i < NELEMS(cases); i++) {
        client_t c;
        bool ok = client_open(&c, e->port) && client_send(&c, cases[i].request, cases[i].len) &&
                  client_read(&c, 1) == 1;
        bool closed = ok && client_sees_close(&c);
        EXPECT(e, ok && c.resps[0].status == cases[i].status && closed,
               "%s: answered %d, status %d, closed %d", cases[i].label, ok,
               ok ? c.resps[0].status : 0, closed);
        if (ok)
            EXPECT(e, strstr(c.resps[0].body, "\"code\":\"invalid\"") != NULL, "%s: body %s",
                   cases[i].label, c.resps[0].body);
        client_close(&c);
    }
    /* A good request pipelined behind a bad one is not served. */
    client_t c;
    if (client_open(&c, e->port)) {
        (void)client_sends(&c, "BAD\r\n\r\nGET /a HTTP/1.1\r\nHost: t\r\n\r\n");
        EXPECT(e, client_sees_close(&c) && c.nresp == 1 && c.resps[0].status == 400,
               "bad then good: %d answers", c.nresp);
    }
    client_close(&c);
}

static void test_bad_requests(void **state)
{
    run_scenario(scenario_bad_requests, NULL);
}

static void scenario_async(env_t *e)
{
    client_t c;
    if (!client_open(&c, e->port)) {
        note(e, "connect failed");
        return;
    }
    /* /slow answers 50 ms later; the pipelined /a must wait its turn. */
    bool ok = client_sends(&c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
                               "GET /a HTTP/1.1\r\nHost: t\r\n\r\n") &&
              client_read(&c, 2) == 2;
    EXPECT(e, ok, "async: %d answers", c.nresp);
    if (ok) {
        EXPECT(e, strcmp(c.resps[0].body, "slow answer") == 0, "first %s", c.resps[0].body);
        EXPECT(e, strcmp(c.resps[1].body, "a") == 0, "second %s", c.resps[1].body);
    }
    client_close(&c);
}

static void test_async_response(void **state)
{
    run_scenario(scenario_async, NULL);
}

static void scenario_idle_timeout(env_t *e)
{
    client_t c;
    /* Nothing sent: closed quietly. */
    if (client_open(&c, e->port)) {
        EXPECT(e, client_sees_close(&c) && c.nresp == 0, "idle: closed %d, %d answers", c.eof,
               c.nresp);
    }
    client_close(&c);
    /* Half a request: 408, then closed. */
    if (client_open(&c, e->port)) {
        (void)client_sends(&c, "GET /a HTTP/1.1\r\nHo");
        EXPECT(e, client_sees_close(&c) && c.nresp == 1 && c.resps[0].status == 408,
               "half a request: closed %d, %d answers, status %d", c.eof, c.nresp,
               c.nresp ? c.resps[0].status : 0);
    }
    client_close(&c);
    /* Slowloris: a byte now and then does not keep a request alive. */
    if (client_open(&c, e->port)) {
        const char *req = "GET /a HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        for (size_t i = 0; req[i] && client_send(&c, req + i, 1); i++)
            sleep_ms(30);
        int got = client_read(&c, 1);
        EXPECT(e, got == 0 || c.resps[0].status == 408, "slowloris was served: status %d",
               c.resps[0].status);
    }
    client_close(&c);
    /* A keep-alive connection idles out after its answer. */
    if (client_open(&c, e->port)) {
        bool ok = client_sends(&c, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n") && client_read(&c, 1) == 1;
        EXPECT(e, ok && client_sees_close(&c) && c.nresp == 1, "keep-alive idle: closed %d",
               c.eof);
    }
    client_close(&c);
}

static void test_idle_timeout(void **state)
{
    pl_http_limits_t limits = {.idle_timeout_ms = 300};
    run_scenario(scenario_idle_timeout, &limits);
}

static void scenario_max_connections(env_t *e)
{
    client_t c[3] = {{.fd = -1}, {.fd = -1}, {.fd = -1}};
    bool open[3] = {false, false, false};
    for (int i = 0; i < 2; i++) {
        /* An answer proves the server accepted this one before the next. */
        open[i] = client_open(&c[i], e->port) &&
                  client_sends(&c[i], "GET /a HTTP/1.1\r\nHost: t\r\n\r\n") &&
                  client_read(&c[i], 1) == 1;
        EXPECT(e, open[i], "connection %d not served", i);
    }
    open[2] = client_open(&c[2], e->port);
    EXPECT(e, open[2] && client_read(&c[2], 1) == 1 && c[2].resps[0].status == 503 &&
                  client_sees_close(&c[2]),
           "third connection: %d answers, status %d", c[2].nresp,
           c[2].nresp ? c[2].resps[0].status : 0);
    client_close(&c[0]);
    client_close(&c[2]);
    /* A slot is free again once the server has seen the closes. */
    bool served = false;
    for (int tries = 0; tries < 50 && !served; tries++) {
        resp_t r;
        served = exchange(e, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n", &r, NULL) && r.status == 200;
        if (!served)
            sleep_ms(20);
    }
    EXPECT(e, served, "no connection served after one closed");
    client_close(&c[1]);
}

static void test_max_connections(void **state)
{
    pl_http_limits_t limits = {.connections_max = 2};
    run_scenario(scenario_max_connections, &limits);
}

static void scenario_server_close(env_t *e)
{
    client_t idle = {.fd = -1}, busy = {.fd = -1}, partial = {.fd = -1};
    bool ok = client_open(&idle, e->port) && client_open(&busy, e->port) &&
              client_open(&partial, e->port) &&
              client_sends(&busy, "GET /hang HTTP/1.1\r\nHost: t\r\n\r\n") &&
              client_sends(&partial,
                           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab");
    EXPECT(e, ok, "setup failed");
    for (int i = 0; i < 500 && !atomic_load(&e->held); i++)
        sleep_ms(5);
    EXPECT(e, atomic_load(&e->held), "/hang was not dispatched");
    sleep_ms(50); /* let the server read the partial request too */
    uv_async_send(&e->close_async);
    EXPECT(e, client_sees_close(&idle), "idle connection not closed");
    EXPECT(e, client_sees_close(&busy) && busy.nresp == 0, "busy connection: closed %d, %d answers",
           busy.eof, busy.nresp);
    EXPECT(e, client_sees_close(&partial), "partial connection not closed");
    /* Nobody listens any more. */
    client_t late;
    bool connected = client_open(&late, e->port);
    struct sockaddr_in local;
    socklen_t llen = sizeof local;
    (void)getsockname(late.fd, (struct sockaddr *)&local, &llen);
    EXPECT(e, !connected, "connected after the server closed (from port %d to %d)",
           ntohs(local.sin_port), e->port);
    client_close(&late);
    client_close(&idle);
    client_close(&busy);
    client_close(&partial);
}

static void test_server_close_with_open_connections(void **state)
{
    run_scenario(scenario_server_close, NULL);
}

/* ---- without a client ---- */

static void test_url_decode(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        bool plus_space;
        size_t size;
        int rc;
        const char *want;
    } cases[] = {
        {"plain", "abc", true, 16, 3, "abc"},
        {"empty", "", true, 16, 0, ""},
        {"percent", "a%20b%2Fc", true, 16, 5, "a b/c"},
        {"lower hex", "%e6%8a%95", true, 16, 3, "\xe6\x8a\x95"},
        {"plus as space", "a+b", true, 16, 3, "a b"},
        {"plus kept", "a+b", false, 16, 3, "a+b"},
        {"bad hex", "%zz", true, 16, PL_EINVAL, NULL},
        {"cut escape", "ab%2", true, 16, PL_EINVAL, NULL},
        {"lone percent", "%", true, 16, PL_EINVAL, NULL},
        {"NUL escape", "a%00b", true, 16, PL_EINVAL, NULL},
        {"fits exactly", "abc", true, 4, 3, "abc"},
        {"one too long", "abcd", true, 4, PL_ETOOLARGE, NULL},
        {"no room", "", true, 0, PL_ETOOLARGE, NULL},
    };
    for (size_t i = 0; i < NELEMS(cases); i++) {
        char out[16] = "untouched";
        int rc = pl_http_url_decode(cases[i].in, strlen(cases[i].in), cases[i].plus_space, out,
                                    cases[i].size);
        CHECK(rc == cases[i].rc, "%s: rc %d, want %d\n", cases[i].label, rc, cases[i].rc);
        if (rc >= 0 && cases[i].want)
            CHECK(strcmp(out, cases[i].want) == 0, "%s: got \"%s\"\n", cases[i].label, out);
    }
    assert_int_equal(failures, 0);
}

static void test_bind_errors(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    pl_err_t err = {0};
    pl_http_server_t *a = pl_http_server_new(&loop, "127.0.0.1:0", &err);
    assert_non_null(a);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", pl_http_server_port(a));
    pl_http_server_t *b = pl_http_server_new(&loop, addr, &err);
    assert_null(b);
    assert_int_equal(err.code, PL_EIO);
    CHECK(strstr(err.message, addr) && strstr(err.message, "address already in use"),
          "message: %s\n", err.message);
    CHECK(strstr(err.hint, "free port") != NULL, "hint: %s\n", err.hint);
    static const char *const bad[] = {"nonsense", "127.0.0.1", ":80", "127.0.0.1:99999",
                                      "127.0.0.1:x", "[::1", "[::1]"};
    for (size_t i = 0; i < NELEMS(bad); i++) {
        pl_err_clear(&err);
        CHECK(pl_http_server_new(&loop, bad[i], &err) == NULL && err.code == PL_EINVAL &&
                  err.hint[0],
              "%s: code %d\n", bad[i], err.code);
    }
    pl_http_server_t *v6 = pl_http_server_new(&loop, "[::1]:0", &err);
    if (v6) /* hosts without IPv6 are fine too */
        pl_http_server_close(&v6);
    pl_http_server_close(&a);
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_bind_errors),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_split_request),
        cmocka_unit_test(test_oversize_headers),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_async_response),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_server_close_with_open_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
