/*
 * notify_mailer: runs libcurl transfers that may block on worker threads.
 *
 * libcurl's SMTP waits for the server's answers to the end of DATA and to
 * QUIT in a blocking poll, even through the multi interface (curl issues
 * #4015, #8555), so a slow mail server would stall the daemon's loop: no
 * other delivery, no /metrics, no prompt SIGTERM. Mail goes through this
 * instead: each transfer runs with curl_easy_perform on one of a few
 * detached threads, and its completion comes back to the loop through a
 * uv_async. At exit nothing waits for a thread stuck on a server: the row it
 * holds is handed back and sent again later, at most once more.
 *
 * Owns its threads' queue; a transfer's easy handle and argument are the
 * mailer's from notify_mailer_add until its callback runs on the loop.
 */
#ifndef NOTIFY_MAILER_H
#define NOTIFY_MAILER_H

#include <curl/curl.h>
#include <uv.h>

typedef struct notify_mailer notify_mailer_t;

/* Runs on the loop; easy is cleaned up after it returns. */
typedef void (*notify_mailer_cb)(CURL *easy, CURLcode result, void *arg);

/* threads: 1..64. NULL when the threads cannot start. */
notify_mailer_t *notify_mailer_new(uv_loop_t *loop, int threads);
/* Stops delivering completions (transfers still running finish on their
 * threads and are dropped) and frees what no thread holds. NULL-safe. */
void notify_mailer_destroy(notify_mailer_t **m_p);

/* Queues a transfer; takes easy. */
void notify_mailer_add(notify_mailer_t *m, CURL *easy, notify_mailer_cb cb, void *arg);

#endif
