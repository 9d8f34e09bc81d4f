/*
 * pl_http: a small HTTP/1.1 server on a libuv loop, for /metrics, /healthz
 * and the desk's API.
 *
 * Requests are parsed by http-parser (Debian's libhttp-parser-dev); this
 * module adds routing, limits, keep-alive, pipelining (one request handled
 * at a time per connection, answered in order) and orderly close. Nothing
 * here blocks the loop, except resolving a host name in
 * pl_http_server_new() (startup code; numeric addresses never resolve).
 *
 * A handler gets a request it must answer exactly once with one of the
 * pl_http_respond*() calls, at once or later (after a database query): the
 * request is the handler's until then, and the respond call frees it. While
 * a request waits for its answer its connection reads nothing more. If the
 * connection closes first (timeout, server closed), the request stays valid
 * and the answer is dropped; pl_http_req_orphaned() tells.
 *
 * What the server answers by itself, each with a JSON body
 * {"error":{"code":...,"message":...,"errors":[]}}: 400 (malformed request),
 * 404 (no route for the path), 405 (a route for the path, not for the
 * method; with Allow), 408 (a request not complete within the idle timeout),
 * 413 (body over the limit), 431 (request line and headers over the limit),
 * 503 (too many connections), 505 (not HTTP/1.x). After 400, 408, 413,
 * 431, 503 and 505 the connection closes. HEAD is answered by GET routes,
 * without the body; Expect: 100-continue gets its interim answer.
 */
#ifndef PL_HTTP_H
#define PL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include <uv.h>

#include "pl_err.h"

typedef struct pl_http_server pl_http_server_t;
typedef struct pl_http_req pl_http_req_t;

typedef struct pl_http_limits {
    size_t header_max;       /* request line + headers, bytes; 0 = 16 KiB */
    size_t headers_count_max; /* header lines; 0 = 100 */
    size_t body_max;         /* 0 = 1 MiB */
    int64_t idle_timeout_ms; /* 0 = 30 s: a connection must bring a whole request
                                within this of becoming ready for one, and a
                                response must leave within it */
    size_t connections_max;  /* 0 = 256; beyond it new connections get 503 */
} pl_http_limits_t;

/* Runs on the loop; req is the handler's until it answers (see above). */
typedef void (*pl_http_handler_t)(pl_http_req_t *req, void *arg);

/* Binds addr ("HOST:PORT", "[IPv6]:PORT"; port 0 picks a free one) and
 * listens. Returns the server, or NULL with err naming the address, why, and
 * a hint. The listener is on loop until pl_http_server_close(). */
pl_http_server_t *pl_http_server_new(uv_loop_t *loop, const char *addr, pl_err_t *err);
/* Applies to connections accepted from now on; zero fields keep defaults. */
void pl_http_server_set_limits(pl_http_server_t *s, const pl_http_limits_t *limits);
/* The port bound (useful after port 0). */
int pl_http_server_port(const pl_http_server_t *s);
/* Stops listening, closes every connection (answers not yet sent are
 * dropped; their requests stay valid until answered) and frees the server
 * in libuv's close callbacks. NULL-safe; nulls *s_p. */
void pl_http_server_close(pl_http_server_t **s_p);

/* Routes method ("GET", "POST", ...) and path to cb. With prefix, path
 * matches every request path that starts with it (the longest such prefix
 * wins; an exact route wins over any prefix). Returns 0, PL_EINVAL (path
 * does not start with "/", or method empty) or PL_ECONFLICT (already routed). */
#define PL_HTTP_EXACT false
#define PL_HTTP_PREFIX true
int pl_http_route(pl_http_server_t *s, const char *method, const char *path, bool prefix,
                  pl_http_handler_t cb, void *arg);

/* ---- the request (all strings borrowed, valid until the answer) ---- */

const char *pl_http_req_method(const pl_http_req_t *req); /* "GET" */
/* The path as sent (not percent-decoded), without the query. */
const char *pl_http_req_path(const pl_http_req_t *req);
/* The part of the path after a prefix route's prefix ("" for exact routes). */
const char *pl_http_req_path_rest(const pl_http_req_t *req);
/* The query string without "?", not decoded; "" when none. */
const char *pl_http_req_query(const pl_http_req_t *req);
/* The first header named name (any case), or NULL. */
const char *pl_http_req_header(const pl_http_req_t *req, const char *name);
/* The body (NUL-terminated after len bytes, which may hold NULs). */
const char *pl_http_req_body(const pl_http_req_t *req, size_t *len);
/* True when the connection is gone and an answer would be dropped. */
bool pl_http_req_orphaned(const pl_http_req_t *req);

/* Finds query parameter name (names compared after decoding) and decodes its
 * value ("+" is a space) into buf as a NUL-terminated string. Returns the
 * value's length, PL_ENOTFOUND (absent), PL_ETOOLARGE (does not fit size
 * bytes with its NUL) or PL_EINVAL (a bad %-escape, or one giving NUL). */
int pl_http_query_get(const pl_http_req_t *req, const char *name, char *buf, size_t size);
/* Percent-decodes in[0..len) into out (size bytes, NUL-terminated); with
 * plus_space "+" becomes " ". Returns the length or PL_ETOOLARGE/PL_EINVAL. */
int pl_http_url_decode(const char *in, size_t len, bool plus_space, char *out, size_t size);

/* ---- the answer ---- */

/* Adds a header to the answer (before responding). Returns 0 or PL_EINVAL
 * for a name that is not a token or a value with CR, LF or NUL. */
int pl_http_req_set_header(pl_http_req_t *req, const char *name, const char *value);
/* Sends status with body[0..len) (copied) and frees req. content_type NULL
 * sends none. */
void pl_http_respond(pl_http_req_t *req, int status, const char *content_type, const char *body,
                     size_t len);
/* Sends {"error":{"code":code,"message":message,"errors":[{path,message}...]}}
 * (errs may be NULL) and frees req. */
void pl_http_respond_error(pl_http_req_t *req, int status, const char *code, const char *message,
                           const pl_errlist_t *errs);
/* Sends json (application/json): takes *json_p on every path and frees req. */
void pl_http_respond_json(pl_http_req_t *req, int status, cJSON **json_p);

#endif
