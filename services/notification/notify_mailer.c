/*
 * notify_mailer: blocking libcurl transfers on detached worker threads (see
 * notify_mailer.h).
 *
 * The queue is shared by the loop and the threads and freed by whichever
 * lets go of it last: a thread may still be waiting on a mail server when
 * the daemon stops.
 */
#include "notify_mailer.h"

#include <pthread.h>
#include <stdbool.h>

#include "pl_alloc.h"

typedef struct job {
    struct job *next;
    CURL *easy;
    notify_mailer_cb cb;
    void *arg;
    CURLcode result;
} job_t;

typedef struct shared {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    job_t *todo, *todo_tail;
    job_t *done;
    bool closing;
    int refs;
    uv_async_t *async; /* the loop's; valid while !closing */
} shared_t;

struct notify_mailer {
    shared_t *sh;
};

static void push(job_t **head, job_t **tail, job_t *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void release(shared_t *sh)
{
    pthread_mutex_lock(&sh->lock);
    bool last = --sh->refs == 0;
    pthread_mutex_unlock(&sh->lock);
    if (!last)
        return;
    pthread_mutex_destroy(&sh->lock);
    pthread_cond_destroy(&sh->ready);
    pl_free(sh);
}

static void *worker(void *arg)
{
    shared_t *sh = arg;
    for (;;) {
        pthread_mutex_lock(&sh->lock);
        while (!sh->todo && !sh->closing)
            pthread_cond_wait(&sh->ready, &sh->lock);
        if (sh->closing) {
            pthread_mutex_unlock(&sh->lock);
            break;
        }
        job_t *j = sh->todo;
        sh->todo = j->next;
        if (!sh->todo)
            sh->todo_tail = NULL;
        pthread_mutex_unlock(&sh->lock);

        j->result = curl_easy_perform(j->easy);

        pthread_mutex_lock(&sh->lock);
        bool closing = sh->closing;
        if (!closing) {
            j->next = sh->done;
            sh->done = j;
            uv_async_send(sh->async);
        }
        pthread_mutex_unlock(&sh->lock);
        if (closing) { /* the daemon is going; the row is handed back or its lease expires */
            curl_easy_cleanup(j->easy);
            pl_free(j);
        }
    }
    release(sh);
    return NULL;
}

static void on_async(uv_async_t *async)
{
    shared_t *sh = async->data;
    pthread_mutex_lock(&sh->lock);
    job_t *done = sh->done;
    sh->done = NULL;
    pthread_mutex_unlock(&sh->lock);
    while (done) {
        job_t *j = done;
        done = j->next;
        j->cb(j->easy, j->result, j->arg);
        curl_easy_cleanup(j->easy);
        pl_free(j);
    }
}

notify_mailer_t *notify_mailer_new(uv_loop_t *loop, int threads)
{
    shared_t *sh = pl_calloc(1, sizeof *sh);
    pthread_mutex_init(&sh->lock, NULL);
    pthread_cond_init(&sh->ready, NULL);
    sh->async = pl_calloc(1, sizeof *sh->async);
    if (uv_async_init(loop, sh->async, on_async) != 0) {
        pl_free(sh->async);
        pl_free(sh);
        return NULL;
    }
    sh->async->data = sh;
    sh->refs = 1; /* the loop's */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        pthread_mutex_lock(&sh->lock);
        sh->refs++;
        pthread_mutex_unlock(&sh->lock);
        if (pthread_create(&t, &attr, worker, sh) != 0) {
            pthread_mutex_lock(&sh->lock);
            sh->refs--;
            pthread_mutex_unlock(&sh->lock);
        }
    }
    pthread_attr_destroy(&attr);
    notify_mailer_t *m = pl_calloc(1, sizeof *m);
    m->sh = sh;
    return m;
}

static void on_async_closed(uv_handle_t *handle)
{
    pl_free(handle);
}

void notify_mailer_destroy(notify_mailer_t **m_p)
{
    notify_mailer_t *m = *m_p;
    if (!m)
        return;
    shared_t *sh = m->sh;
    pthread_mutex_lock(&sh->lock);
    sh->closing = true;
    job_t *todo = sh->todo, *done = sh->done;
    sh->todo = sh->todo_tail = sh->done = NULL;
    pthread_cond_broadcast(&sh->ready);
    pthread_mutex_unlock(&sh->lock);
    /* Not started, or finished but not yet delivered: the caller hears of
     * them as aborted, so it hands their rows back. */
    job_t *lists[2] = {todo, done};
    for (int k = 0; k < 2; k++)
        while (lists[k]) {
            job_t *j = lists[k];
            lists[k] = j->next;
            j->cb(j->easy, CURLE_ABORTED_BY_CALLBACK, j->arg);
            curl_easy_cleanup(j->easy);
            pl_free(j);
        }
    uv_close((uv_handle_t *)sh->async, on_async_closed);
    release(sh);
    pl_free(m);
    *m_p = NULL;
}

void notify_mailer_add(notify_mailer_t *m, CURL *easy, notify_mailer_cb cb, void *arg)
{
    job_t *j = pl_calloc(1, sizeof *j);
    j->easy = easy;
    j->cb = cb;
    j->arg = arg;
    shared_t *sh = m->sh;
    pthread_mutex_lock(&sh->lock);
    push(&sh->todo, &sh->todo_tail, j);
    pthread_cond_signal(&sh->ready);
    pthread_mutex_unlock(&sh->lock);
}
