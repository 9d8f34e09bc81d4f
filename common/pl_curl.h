/*
 * pl_curl: libcurl's multi interface driven from a libuv loop, so a daemon
 * talks SMTP and HTTP to slow servers without ever blocking its loop
 * (libcurl's multi_socket API: libcurl says which sockets to watch and when
 * to wake it; libuv watches them).
 *
 * Owns the multi handle and its poll and timer handles; each transfer's easy
 * handle is the caller's until pl_curl_add takes it.
 */
#ifndef PL_CURL_H
#define PL_CURL_H

#include <curl/curl.h>
#include <uv.h>

typedef struct pl_curl pl_curl_t;

/* Runs once per transfer with its result; the easy handle is cleaned up
 * right after (read what you need from it here). */
typedef void (*pl_curl_done_cb)(CURL *easy, CURLcode result, void *arg);

/* NULL when libcurl cannot start. */
pl_curl_t *pl_curl_new(uv_loop_t *loop);
/* Aborts the transfers in flight (their callbacks run with
 * CURLE_ABORTED_BY_CALLBACK) and frees in libuv's close callbacks.
 * NULL-safe; nulls *c_p. */
void pl_curl_destroy(pl_curl_t **c_p);

/* Starts a transfer; takes easy on every path. Returns 0 (done runs once) or
 * a negative PL_E* code (done never runs). */
int pl_curl_add(pl_curl_t *c, CURL *easy, pl_curl_done_cb done, void *arg);
/* Transfers in flight. */
int pl_curl_active(const pl_curl_t *c);

#endif
