/*
 * pl_http: HTTP/1.1 server on libuv with http-parser (see pl_http.h).
 *
 * Trusts nothing a client sends: every byte goes through http-parser, and
 * the request line, headers and body are bounded before they are kept. A
 * connection handles one request at a time: when a request is complete the
 * parser pauses, reading stops, and the bytes already read (pipelined
 * requests) wait in the connection's read buffer until the answer has been
 * written, so memory per connection is bounded whatever the client sends.
 *
 * Owns the listener, the connections (each with its TCP handle, its timer
 * and its read buffer; freed once both handles have closed), the requests
 * being read, and the server itself (freed once the listener and every
 * connection have closed). A request handed to a handler belongs to the
 * handler until it answers.
 */
#include "pl_http.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <limits.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "pl_alloc.h"
#include "pl_json.h"
#include "pl_log.h"

#define READ_BUF_SIZE 16384
#define HEADER_MAX_DEFAULT (16 * 1024)
#define HEADERS_COUNT_DEFAULT 100
#define BODY_MAX_DEFAULT (1024 * 1024)
#define IDLE_TIMEOUT_DEFAULT_MS 30000
#define CONNECTIONS_DEFAULT 256
/* Connections past connections_max that still get a 503; past this many
 * more they are closed without a word, so a flood cannot grow memory. */
#define OVERFLOW_MAX 16
/* After the last answer on a connection we send FIN and read (and drop)
 * what the client still sends, for this long at most: closing with unread
 * bytes would make the kernel send RST, which can destroy the answer
 * before the client reads it (a 413 or 431 in particular). */
#define LINGER_MS 2000
#define LINGER_BYTES (256 * 1024)
#define HOST_MAX 256
#define METHOD_MAX 24

typedef struct buf {
    char *data;
    size_t len, cap;
} buf_t;

typedef struct route {
    char *method;
    char *path;
    size_t path_len;
    bool prefix;
    pl_http_handler_t cb;
    void *arg;
} route_t;

typedef struct header {
    buf_t name, value;
} header_t;

typedef struct conn conn_t;

struct pl_http_req {
    conn_t *conn; /* NULL once orphaned */
    char method[METHOD_MAX];
    buf_t url;
    char *path, *query; /* split from url when complete */
    const char *path_rest;
    header_t *headers;
    size_t nheaders, hcap;
    bool in_value;     /* the last header callback was a value */
    bool headers_done; /* later header callbacks are trailers: ignored */
    buf_t body;
    bool head;
    bool keep_alive;
    buf_t out; /* answer headers, "Name: value\r\n" each */
};

struct conn {
    pl_http_server_t *srv;
    conn_t *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    http_parser parser;
    pl_http_limits_t limits;
    pl_http_req_t *building; /* being read */
    pl_http_req_t *active;   /* with its handler */
    const char *rest;        /* read but not parsed (pipelined), in rbuf */
    size_t rest_len;
    size_t header_bytes;
    size_t lingered;
    int reject;                /* status a parser callback asked for */
    char reject_msg[160];
    int handles;               /* open handles; freed at 0 */
    bool closing, lingering, writing, reading;
    char rbuf[READ_BUF_SIZE];
};

struct pl_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    pl_http_limits_t limits;
    route_t *routes;
    size_t nroutes, rcap;
    conn_t *conns;
    size_t nconns;
    int port;
    bool closing, listener_closed;
};

typedef struct write_req {
    uv_write_t req;
    conn_t *conn;
    bool interim; /* 100 Continue: no state change when written */
    bool last;    /* close the connection after it */
    size_t len;
    char data[];
} write_req_t;

static void feed(conn_t *c, const char *data, size_t len);
static void conn_close(conn_t *c);

/* ---- small helpers ---- */

static void buf_put(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (b->len + n + 1 > cap)
            cap *= 2;
        b->data = pl_realloc(b->data, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_puts(buf_t *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void buf_free(buf_t *b)
{
    pl_free(b->data);
    *b = (buf_t){0};
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static bool is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* {"error":{"code":...,"message":...,"errors":[{path,message}...]}}, a new
 * string the caller frees. */
static char *error_body(const char *code, const char *message, const pl_errlist_t *errs)
{
    cJSON *root = pl_json_must(cJSON_CreateObject());
    cJSON *error = pl_json_must(cJSON_CreateObject());
    cJSON *list = pl_json_must(cJSON_CreateArray());
    pl_json_add_str(error, "code", code);
    pl_json_add_str(error, "message", message);
    for (size_t i = 0; errs && i < errs->count; i++) {
        cJSON *item = pl_json_must(cJSON_CreateObject());
        pl_json_add_str(item, "path", errs->items[i].path);
        pl_json_add_str(item, "message", errs->items[i].message);
        cJSON_AddItemToArray(list, item);
    }
    pl_json_add(error, "errors", list);
    pl_json_add(root, "error", error);
    char *text = pl_json_print(root);
    cJSON_Delete(root);
    return text;
}

/* ---- writing ---- */

static void next_request(conn_t *c);
static void linger(conn_t *c);
static void on_timeout(uv_timer_t *t);

static void arm_timer(conn_t *c, int64_t ms)
{
    /* Cannot fail: the callback is set and the timer is not closing. */
    (void)uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0);
}

static void on_write(uv_write_t *w, int status)
{
    write_req_t *wr = (write_req_t *)w;
    conn_t *c = wr->conn;
    bool interim = wr->interim, last = wr->last;
    pl_free(wr);
    if (status < 0 || c->closing) {
        conn_close(c);
        return;
    }
    if (interim)
        return;
    c->writing = false;
    if (last)
        linger(c);
    else
        next_request(c);
}

static void write_raw(conn_t *c, buf_t *b, bool interim, bool last)
{
    write_req_t *wr = pl_malloc(sizeof *wr + b->len);
    wr->conn = c;
    wr->interim = interim;
    wr->last = last;
    wr->len = b->len;
    memcpy(wr->data, b->data, b->len);
    uv_buf_t ub = uv_buf_init(wr->data, (unsigned)wr->len);
    if (!interim) {
        c->writing = true;
        /* The answer must leave within the idle timeout too: a client that
         * never reads would otherwise hold the connection for ever. */
        arm_timer(c, c->limits.idle_timeout_ms);
    }
    int rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &ub, 1, on_write);
    if (rc < 0) {
        pl_free(wr);
        conn_close(c);
    }
}

static void put_date(buf_t *b)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) && strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
        buf_puts(b, "Date: ");
        buf_puts(b, date);
        buf_puts(b, "\r\n");
    }
}

/* Writes one answer. extra: "Name: value\r\n" lines or NULL. */
static void send_answer(conn_t *c, int status, const char *content_type, const char *extra,
                        const char *body, size_t len, bool head, bool keep_alive)
{
    if (c->closing)
        return;
    buf_t b = {0};
    char line[128];
    bool no_body = status == 204 || status == 304;
    snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    buf_puts(&b, line);
    put_date(&b);
    if (content_type && !no_body) {
        buf_puts(&b, "Content-Type: ");
        buf_puts(&b, content_type);
        buf_puts(&b, "\r\n");
    }
    if (!no_body) {
        snprintf(line, sizeof line, "Content-Length: %zu\r\n", len);
        buf_puts(&b, line);
    }
    if (!keep_alive)
        buf_puts(&b, "Connection: close\r\n");
    else if (c->parser.http_major == 1 && c->parser.http_minor == 0)
        buf_puts(&b, "Connection: keep-alive\r\n");
    if (extra)
        buf_puts(&b, extra);
    buf_puts(&b, "\r\n");
    if (!head && !no_body)
        buf_put(&b, body, len);
    write_raw(c, &b, false, !keep_alive);
    buf_free(&b);
}

/* An answer the server gives by itself, without a request object; the
 * connection closes after it. */
static void send_error(conn_t *c, int status, const char *code, const char *message)
{
    char *body = error_body(code, message, NULL);
    send_answer(c, status, "application/json", NULL, body, strlen(body), false, false);
    pl_free(body);
}

/* ---- requests ---- */

static pl_http_req_t *req_new(conn_t *c)
{
    pl_http_req_t *req = pl_calloc(1, sizeof *req);
    req->conn = c;
    buf_puts(&req->url, "");
    buf_puts(&req->body, "");
    return req;
}

static void req_free(pl_http_req_t *req)
{
    if (!req)
        return;
    for (size_t i = 0; i < req->nheaders; i++) {
        buf_free(&req->headers[i].name);
        buf_free(&req->headers[i].value);
    }
    pl_free(req->headers);
    buf_free(&req->url);
    buf_free(&req->body);
    buf_free(&req->out);
    pl_free(req->path);
    pl_free(req->query);
    pl_free(req);
}

const char *pl_http_req_method(const pl_http_req_t *req)
{
    return req->method;
}

const char *pl_http_req_path(const pl_http_req_t *req)
{
    return req->path ? req->path : "/";
}

const char *pl_http_req_path_rest(const pl_http_req_t *req)
{
    return req->path_rest ? req->path_rest : "";
}

const char *pl_http_req_query(const pl_http_req_t *req)
{
    return req->query ? req->query : "";
}

const char *pl_http_req_header(const pl_http_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (req->headers[i].name.data && strcasecmp(req->headers[i].name.data, name) == 0)
            return req->headers[i].value.data ? req->headers[i].value.data : "";
    return NULL;
}

const char *pl_http_req_body(const pl_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.data;
}

bool pl_http_req_orphaned(const pl_http_req_t *req)
{
    return req->conn == NULL;
}

/* ---- URL decoding ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int pl_http_url_decode(const char *in, size_t len, bool plus_space, char *out, size_t size)
{
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (len - i < 3)
                return PL_EINVAL;
            int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0)
                return PL_EINVAL;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return PL_EINVAL; /* the caller gets a C string */
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        } else if (c == '\0') {
            return PL_EINVAL;
        }
        if (j + 1 >= size || j >= (size_t)INT32_MAX)
            return PL_ETOOLARGE;
        out[j++] = c;
    }
    if (size == 0)
        return PL_ETOOLARGE;
    out[j] = '\0';
    return (int)j;
}

int pl_http_query_get(const pl_http_req_t *req, const char *name, char *buf, size_t size)
{
    const char *q = pl_http_req_query(req);
    char key[256];
    while (*q) {
        size_t n = strcspn(q, "&;");
        const char *eq = memchr(q, '=', n);
        size_t klen = eq ? (size_t)(eq - q) : n;
        /* A key that does not decode, or is too long to be ours, is skipped:
         * another parameter's problem is not this one's. */
        if (pl_http_url_decode(q, klen, true, key, sizeof key) >= 0 && strcmp(key, name) == 0)
            return pl_http_url_decode(eq ? eq + 1 : q + n, eq ? n - klen - 1 : 0, true, buf, size);
        q += n;
        if (*q)
            q++;
    }
    return PL_ENOTFOUND;
}

/* ---- parsing (http-parser callbacks; nonzero stops the parser) ---- */

static int reject(conn_t *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reject(conn_t *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reject_msg, sizeof c->reject_msg, fmt, ap);
    va_end(ap);
    c->reject = status;
    return -1;
}

/* Counts request-line and header bytes against the limit. */
static int count_header_bytes(conn_t *c, size_t len)
{
    c->header_bytes += len;
    if (c->header_bytes > c->limits.header_max)
        return reject(c, 431, "request line and headers are over the limit of %zu bytes",
                      c->limits.header_max);
    return 0;
}

static int on_message_begin(http_parser *p)
{
    conn_t *c = p->data;
    req_free(c->building);
    c->building = req_new(c);
    c->header_bytes = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (count_header_bytes(c, len) < 0)
        return -1;
    buf_put(&c->building->url, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    pl_http_req_t *req = c->building;
    if (count_header_bytes(c, len + 4) < 0) /* ": " and CRLF */
        return -1;
    if (req->headers_done)
        return 0;
    if (req->nheaders == 0 || req->in_value) {
        if (req->nheaders == c->limits.headers_count_max)
            return reject(c, 431, "the request has over %zu header lines",
                          c->limits.headers_count_max);
        if (req->nheaders == req->hcap) {
            req->hcap = req->hcap ? req->hcap * 2 : 8;
            req->headers = pl_realloc(req->headers, req->hcap * sizeof *req->headers);
        }
        req->headers[req->nheaders++] = (header_t){{0}, {0}};
        req->in_value = false;
    }
    buf_put(&req->headers[req->nheaders - 1].name, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    pl_http_req_t *req = c->building;
    if (count_header_bytes(c, len) < 0)
        return -1;
    if (req->headers_done || req->nheaders == 0)
        return 0;
    req->in_value = true;
    buf_put(&req->headers[req->nheaders - 1].value, at, len);
    return 0;
}

static void trim_values(pl_http_req_t *req)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        buf_t *v = &req->headers[i].value;
        buf_put(v, "", 0);
        while (v->len && (v->data[v->len - 1] == ' ' || v->data[v->len - 1] == '\t'))
            v->data[--v->len] = '\0';
        buf_put(&req->headers[i].name, "", 0);
    }
}

static void send_continue(conn_t *c)
{
    buf_t b = {0};
    buf_puts(&b, "HTTP/1.1 100 Continue\r\n\r\n");
    write_raw(c, &b, true, false);
    buf_free(&b);
}

static int on_headers_complete(http_parser *p)
{
    conn_t *c = p->data;
    pl_http_req_t *req = c->building;
    req->headers_done = true;
    trim_values(req);
    if (p->http_major != 1)
        return reject(c, 505, "HTTP version %u.%u is not supported; use HTTP/1.1",
                      (unsigned)p->http_major, (unsigned)p->http_minor);
    snprintf(req->method, sizeof req->method, "%s", http_method_str((enum http_method)p->method));
    req->head = p->method == HTTP_HEAD;
    bool sized = p->content_length != ULLONG_MAX && !(p->flags & F_CHUNKED);
    if (sized && p->content_length > c->limits.body_max)
        return reject(c, 413, "the request body is %llu bytes, limit is %zu",
                      (unsigned long long)p->content_length, c->limits.body_max);
    const char *expect = pl_http_req_header(req, "Expect");
    bool has_body = (p->flags & F_CHUNKED) || (sized && p->content_length > 0);
    /* curl and others wait for this before sending a large body. */
    if (expect && strcasecmp(expect, "100-continue") == 0 && has_body && p->http_major == 1 &&
        p->http_minor >= 1)
        send_continue(c);
    return c->closing ? -1 : 0; /* a failed write closed the connection */
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    pl_http_req_t *req = c->building;
    if (len > c->limits.body_max - req->body.len)
        return reject(c, 413, "the request body is over the limit of %zu bytes",
                      c->limits.body_max);
    buf_put(&req->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn_t *c = p->data;
    pl_http_req_t *req = c->building;
    c->building = NULL;
    /* We speak no other protocol: an upgrade request gets its answer, and
     * the connection closes. */
    req->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    c->active = req;
    /* One request at a time: the rest of the input waits (see feed). */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- routing ---- */

/* Splits the URL into path and query. Origin form ("/a?b") is what clients
 * send; absolute form ("http://h/a?b") is allowed by RFC 9112 and parsed by
 * http-parser. Returns false when there is no usable path. */
static bool split_url(pl_http_req_t *req)
{
    const char *url = req->url.data;
    size_t len = req->url.len;
    if (len && url[0] == '/') {
        size_t plen = strcspn(url, "?#");
        req->path = pl_strndup(url, plen);
        if (url[plen] == '?')
            req->query = pl_strndup(url + plen + 1, strcspn(url + plen + 1, "#"));
        return true;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (len == 0 || http_parser_parse_url(url, len, 0, &u) != 0)
        return false;
    if (u.field_set & (1 << UF_PATH))
        req->path = pl_strndup(url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    else
        req->path = pl_strdup("/");
    if (u.field_set & (1 << UF_QUERY))
        req->query = pl_strndup(url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    return req->path[0] == '/';
}

static bool method_matches(const route_t *r, const pl_http_req_t *req)
{
    return strcmp(r->method, req->method) == 0 || (req->head && strcmp(r->method, "GET") == 0);
}

static bool path_matches(const route_t *r, const char *path)
{
    return r->prefix ? strncmp(path, r->path, r->path_len) == 0 : strcmp(path, r->path) == 0;
}

/* The route for req, or NULL; *path_known tells whether some route has the
 * path (405 rather than 404), and allow lists their methods. */
static const route_t *find_route(const pl_http_server_t *s, const pl_http_req_t *req,
                                 bool *path_known, buf_t *allow)
{
    const route_t *best = NULL;
    *path_known = false;
    for (size_t i = 0; i < s->nroutes; i++) {
        const route_t *r = &s->routes[i];
        if (!path_matches(r, req->path))
            continue;
        *path_known = true;
        if (!strstr(allow->data ? allow->data : "", r->method)) {
            buf_puts(allow, allow->len ? ", " : "");
            buf_puts(allow, r->method);
            if (strcmp(r->method, "GET") == 0)
                buf_puts(allow, ", HEAD");
        }
        if (!method_matches(r, req))
            continue;
        if (!best || (best->prefix && !r->prefix) ||
            (best->prefix && r->prefix && r->path_len > best->path_len))
            best = r;
    }
    return best;
}

/* A client's text for a message: printable ASCII only (the rest becomes
 * "?"), cut with "..." to fit size bytes. */
static void printable(const char *text, char *out, size_t size)
{
    size_t n = strlen(text);
    bool cut = n + 1 > size;
    size_t keep = cut ? size - 4 : n, j = 0;
    for (size_t i = 0; i < keep; i++)
        out[j++] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
    if (cut) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
}

static void dispatch(conn_t *c)
{
    pl_http_req_t *req = c->active;
    /* The handler takes as long as it takes (a database query has its own
     * timeout); the timer runs again when the answer is written. */
    (void)uv_timer_stop(&c->timer);
    if (!split_url(req)) {
        req->keep_alive = false;
        pl_http_respond_error(req, 400, "invalid", "the request target is not a path", NULL);
        return;
    }
    bool path_known;
    buf_t allow = {0};
    const route_t *r = find_route(c->srv, req, &path_known, &allow);
    if (r) {
        buf_free(&allow);
        req->path_rest = r->prefix ? req->path + r->path_len : "";
        r->cb(req, r->arg);
        return;
    }
    char message[160];
    if (path_known) {
        (void)pl_http_req_set_header(req, "Allow", allow.data);
        snprintf(message, sizeof message, "method %s is not allowed here; allowed: %s",
                 req->method, allow.data);
        pl_http_respond_error(req, 405, "method_not_allowed", message, NULL);
    } else {
        char shown[104];
        printable(req->path, shown, sizeof shown);
        snprintf(message, sizeof message, "no resource at %s", shown);
        pl_http_respond_error(req, 404, "not_found", message, NULL);
    }
    buf_free(&allow);
}

/* ---- connections ---- */

static void maybe_free_server(pl_http_server_t *s)
{
    if (!s->closing || !s->listener_closed || s->nconns > 0)
        return;
    for (size_t i = 0; i < s->nroutes; i++) {
        pl_free(s->routes[i].method);
        pl_free(s->routes[i].path);
    }
    pl_free(s->routes);
    pl_free(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    pl_http_server_t *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    pl_free(c);
    maybe_free_server(s);
}

static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->reading = false;
    if (c->active) {
        c->active->conn = NULL; /* the handler still answers, into the void */
        c->active = NULL;
    }
    req_free(c->building);
    c->building = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    conn_t *c = h->data;
    (void)suggested;
    *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void stop_reading(conn_t *c)
{
    if (c->reading)
        (void)uv_read_stop((uv_stream_t *)&c->tcp); /* cannot fail on a TCP handle */
    c->reading = false;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b);

static void start_reading(conn_t *c)
{
    if (c->reading || c->closing)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    conn_t *c = stream->data;
    (void)b;
    if (nread == 0)
        return; /* EAGAIN */
    if (nread < 0) {
        /* EOF or reset: a half-sent request has no one to answer. */
        conn_close(c);
        return;
    }
    if (c->lingering) {
        c->lingered += (size_t)nread;
        if (c->lingered > LINGER_BYTES)
            conn_close(c);
        return;
    }
    feed(c, c->rbuf, (size_t)nread);
}

static void feed(conn_t *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->closing)
        return;
    if (e == HPE_PAUSED) {
        /* A request is complete; what follows waits in rbuf, which nothing
         * overwrites since reading stops until it is parsed. */
        c->rest = data + n;
        c->rest_len = c->active->keep_alive ? len - n : 0;
        stop_reading(c);
        dispatch(c);
        return;
    }
    if (e == HPE_OK)
        return;
    stop_reading(c);
    char message[256];
    int status = c->reject;
    if (!status && e == HPE_HEADER_OVERFLOW)
        status = 431;
    if (status)
        snprintf(message, sizeof message, "%s",
                 c->reject ? c->reject_msg : "the request headers are too large");
    else
        snprintf(message, sizeof message, "malformed HTTP request: %s",
                 http_errno_description(e));
    req_free(c->building);
    c->building = NULL;
    if (!status)
        status = 400;
    send_error(c, status, status == 413 || status == 431 ? "too_large" : "invalid", message);
}

static void next_request(conn_t *c)
{
    http_parser_pause(&c->parser, 0);
    arm_timer(c, c->limits.idle_timeout_ms);
    if (c->rest_len) {
        const char *data = c->rest;
        size_t len = c->rest_len;
        c->rest_len = 0;
        feed(c, data, len);
    }
    if (!c->active && !c->writing && !c->closing)
        start_reading(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    if (status < 0)
        conn_close(c);
}

static void linger(conn_t *c)
{
    c->lingering = true;
    c->shutdown.data = c;
    arm_timer(c, LINGER_MS);
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    start_reading(c);
}

static void on_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->lingering || c->writing || !c->building) {
        conn_close(c);
        return;
    }
    stop_reading(c);
    req_free(c->building);
    c->building = NULL;
    send_error(c, 408, "timeout", "the request was not complete within the idle timeout");
}

static void on_connection(uv_stream_t *listener, int status)
{
    pl_http_server_t *s = listener->data;
    if (status < 0) {
        pl_log_warn("cannot accept an HTTP connection", "error", uv_strerror(status), NULL);
        return;
    }
    conn_t *c = pl_calloc(1, sizeof *c);
    c->srv = s;
    c->limits = s->limits;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    (void)uv_tcp_init(s->loop, &c->tcp); /* cannot fail on Unix without flags */
    (void)uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 ||
        s->nconns > s->limits.connections_max + OVERFLOW_MAX) {
        conn_close(c);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1); /* answers are small; do not wait to coalesce */
    if (s->nconns > s->limits.connections_max) {
        send_error(c, 503, "unavailable", "too many connections; try again later");
        return;
    }
    arm_timer(c, c->limits.idle_timeout_ms);
    start_reading(c);
}

/* ---- the server ---- */

static int parse_addr(const char *addr, struct sockaddr_storage *ss, pl_err_t *err)
{
    char host[HOST_MAX];
    const char *colon, *h = addr;
    size_t hlen;
    if (*addr == '[') {
        const char *end = strchr(addr, ']');
        colon = end ? end + 1 : NULL;
        h = addr + 1;
        hlen = end ? (size_t)(end - h) : 0;
    } else {
        colon = strrchr(addr, ':');
        hlen = colon ? (size_t)(colon - addr) : 0;
    }
    char *end = NULL;
    long port = colon && *colon == ':' && colon[1] ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || *colon != ':' || hlen == 0 || hlen >= sizeof host || !end || *end ||
        port < 0 || port > 65535)
    {
        pl_err_set(err, PL_EINVAL, "", "invalid HTTP address \"%.200s\"", addr);
        return pl_err_hint(err, "Use the form HOST:PORT, e.g. 0.0.0.0:9101 or [::1]:9101.");
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (uv_ip4_addr(host, (int)port, v4) == 0 || uv_ip6_addr(host, (int)port, v6) == 0)
        return 0;
    /* A name: resolved once, blocking. Only startup code passes names;
     * the loop is not running yet then. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        pl_err_set(err, PL_EINVAL, "", "cannot resolve host \"%s\" of HTTP address \"%.200s\": %s",
                   host, addr, gai_strerror(rc));
        return pl_err_hint(err, "Use a numeric address, e.g. 0.0.0.0 or 127.0.0.1.");
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (ss->ss_family == AF_INET)
        v4->sin_port = htons((uint16_t)port);
    else
        v6->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    pl_http_server_t *s = h->data;
    s->listener_closed = true;
    maybe_free_server(s);
}

static int bound_port(pl_http_server_t *s)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

pl_http_server_t *pl_http_server_new(uv_loop_t *loop, const char *addr, pl_err_t *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (parse_addr(addr, &ss, err) < 0)
        return NULL;
    pl_http_server_t *s = pl_calloc(1, sizeof *s);
    s->loop = loop;
    pl_http_server_set_limits(s, NULL);
    (void)uv_tcp_init(loop, &s->listener); /* cannot fail on Unix without flags */
    s->listener.data = s;
    /* EADDRINUSE shows at bind or, deferred by libuv, at listen. */
    int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_connection);
    if (rc < 0) {
        const char *hint = rc == UV_EADDRINUSE
                               ? "Another process holds this port: stop it or choose a free port."
                           : rc == UV_EADDRNOTAVAIL
                               ? "The address is not one of this host's: use 0.0.0.0 or a local "
                                 "address."
                           : rc == UV_EACCES
                               ? "Ports below 1024 need privileges: choose a port above 1023."
                               : "Check the address and that this host may listen on it.";
        pl_err_set(err, PL_EIO, "", "cannot listen for HTTP on %.200s: %s", addr, uv_strerror(rc));
        (void)pl_err_hint(err, "%s", hint); /* returns the code set just above */
        pl_http_server_close(&s);
        return NULL;
    }
    s->port = bound_port(s);
    return s;
}

void pl_http_server_set_limits(pl_http_server_t *s, const pl_http_limits_t *limits)
{
    pl_http_limits_t l = limits ? *limits : (pl_http_limits_t){0};
    s->limits.header_max = l.header_max ? l.header_max : HEADER_MAX_DEFAULT;
    s->limits.headers_count_max = l.headers_count_max ? l.headers_count_max : HEADERS_COUNT_DEFAULT;
    s->limits.body_max = l.body_max ? l.body_max : BODY_MAX_DEFAULT;
    s->limits.idle_timeout_ms = l.idle_timeout_ms > 0 ? l.idle_timeout_ms : IDLE_TIMEOUT_DEFAULT_MS;
    s->limits.connections_max = l.connections_max ? l.connections_max : CONNECTIONS_DEFAULT;
}

int pl_http_server_port(const pl_http_server_t *s)
{
    return s->port;
}

void pl_http_server_close(pl_http_server_t **s_p)
{
    pl_http_server_t *s = s_p ? *s_p : NULL;
    if (!s)
        return;
    *s_p = NULL;
    s->closing = true;
    /* First stop accepting, so that a client seeing its connection close
     * cannot connect again in between. */
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (conn_t *c = s->conns; c; c = c->next)
        conn_close(c);
}

int pl_http_route(pl_http_server_t *s, const char *method, const char *path, bool prefix,
                  pl_http_handler_t cb, void *arg)
{
    if (!method || !*method || strlen(method) >= METHOD_MAX || !path || path[0] != '/' || !cb)
        return PL_EINVAL;
    for (const char *m = method; *m; m++)
        if (!is_token_char(*m))
            return PL_EINVAL;
    for (size_t i = 0; i < s->nroutes; i++)
        if (s->routes[i].prefix == prefix && strcmp(s->routes[i].method, method) == 0 &&
            strcmp(s->routes[i].path, path) == 0)
            return PL_ECONFLICT;
    if (s->nroutes == s->rcap) {
        s->rcap = s->rcap ? s->rcap * 2 : 8;
        s->routes = pl_realloc(s->routes, s->rcap * sizeof *s->routes);
    }
    s->routes[s->nroutes++] = (route_t){pl_strdup(method), pl_strdup(path), strlen(path), prefix,
                                        cb, arg};
    return 0;
}

/* ---- answers ---- */

int pl_http_req_set_header(pl_http_req_t *req, const char *name, const char *value)
{
    if (!name || !*name || !value)
        return PL_EINVAL;
    for (const char *p = name; *p; p++)
        if (!is_token_char(*p))
            return PL_EINVAL;
    if (strpbrk(value, "\r\n"))
        return PL_EINVAL; /* would let a value add headers of its own */
    buf_puts(&req->out, name);
    buf_puts(&req->out, ": ");
    buf_puts(&req->out, value);
    buf_puts(&req->out, "\r\n");
    return 0;
}

void pl_http_respond(pl_http_req_t *req, int status, const char *content_type, const char *body,
                     size_t len)
{
    conn_t *c = req->conn;
    if (c) {
        c->active = NULL;
        if (status < 200 || status > 599)
            status = 500;
        send_answer(c, status, content_type, req->out.data, body ? body : "", body ? len : 0,
                    req->head, req->keep_alive);
    }
    req_free(req);
}

void pl_http_respond_error(pl_http_req_t *req, int status, const char *code, const char *message,
                           const pl_errlist_t *errs)
{
    char *body = error_body(code, message, errs);
    pl_http_respond(req, status, "application/json", body, strlen(body));
    pl_free(body);
}

void pl_http_respond_json(pl_http_req_t *req, int status, cJSON **json_p)
{
    cJSON *json = json_p ? *json_p : NULL;
    if (json_p)
        *json_p = NULL;
    char *body = json ? pl_json_print(json) : pl_strdup("null");
    cJSON_Delete(json);
    pl_http_respond(req, status, "application/json", body, strlen(body));
    pl_free(body);
}
