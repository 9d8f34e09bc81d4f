/*
 * plaint-bench-http: load on a running plaint-desk's HTTP API. C threads each
 * hold one keep-alive HTTP/1.1 connection and send a mix of requests: GET
 * /v1/cases/{id}, GET /v1/cases?limit=50 with a random filter, and POST
 * /v1/cases/{id}/actions with a "note". The cases and the filter values come
 * from paging GET /v1/cases first. Prints, per concurrency level and per kind,
 * requests/s and latency percentiles, and counts every status. A tool, not a
 * daemon: it blocks.
 *
 *   plaint-bench-http [--addr HOST:PORT] [-c 1,8,32] [-n N | --seconds S]
 *                     [--mix get=60,list=30,action=10] [--token TOKEN]
 *
 * Trusts the desk to answer HTTP/1.1; its bodies are parsed only during
 * discovery. Responses are read with http-parser (linked by libplaint), so
 * Content-Length, chunked bodies, Connection: close and bodies ending at EOF
 * are all handled. Owns its sockets and threads; nothing outlives main().
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <http_parser.h>

#include "pl_alloc.h"

#define CLIENTS_MAX 256
#define IO_TIMEOUT_S 30
#define PAGE_LIMIT 500
#define DISCOVER_MAX_DEFAULT 50000
#define VALUES_MAX 32
#define REQ_MAX 4096
#define STATUS_MAX 600
#define ACTOR "bench.http"

enum { K_GET, K_LIST, K_ACTION, K_COUNT };
static const char *const KIND_NAMES[K_COUNT] = {"get", "list", "action"};

/* The filters of GET /v1/cases that the list requests pick from. */
enum { F_STATE, F_PRIORITY, F_CATEGORY, F_DEPARTMENT, F_CHANNEL, F_COUNT };
static const char *const FILTER_NAMES[F_COUNT] = {"state", "priority", "category", "department",
                                                  "channel"};

typedef struct values {
    char *v[VALUES_MAX];
    int n;
} values_t;

/* What discovery found: every case id, those a note is allowed on (routed
 * or later), and the distinct values of each filter. */
typedef struct corpus {
    char **ids;
    int n_ids, cap_ids;
    char **actionable;
    int n_actionable, cap_actionable;
    values_t filters[F_COUNT];
} corpus_t;

typedef struct options {
    char host[256], port[16], host_header[300];
    const char *levels;
    long total;       /* requests per level; 0 = until seconds */
    double seconds;   /* 0 = until total */
    int mix[K_COUNT]; /* weights */
    const char *token;
    int discover_max;
} options_t;

/* One keep-alive connection and the response being read on it. */
typedef struct conn {
    const struct addrinfo *ai;
    int fd;
    http_parser parser;
    bool done, keep_alive, keep_body;
    char *body;
    size_t body_len, body_cap;
    char err[160];
} conn_t;

typedef struct samples {
    double *ms;
    size_t n, cap;
} samples_t;

typedef struct run {
    const options_t *opt;
    const corpus_t *corpus;
    const struct addrinfo *ai;
    pthread_barrier_t start;
    atomic_long next;
    atomic_int errors_reported;
} run_t;

typedef struct client {
    run_t *run;
    int index;
    uint64_t rng;
    samples_t lat[K_COUNT];
    long status[K_COUNT][STATUS_MAX];
    long errors[K_COUNT];
} client_t;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: per thread, no locks, good enough to pick requests. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static int rng_below(uint64_t *s, int n)
{
    return (int)(rng_next(s) % (uint64_t)n);
}

/* ---- the response reader ---- */

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (!c->keep_body)
        return 0;
    if (c->body_len + len + 1 > c->body_cap) {
        c->body_cap = (c->body_len + len + 1) * 2;
        c->body = pl_realloc(c->body, c->body_cap);
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    c->body[c->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn_t *c = p->data;
    c->done = true;
    /* Valid here; the flags it reads reset when the next message starts. */
    c->keep_alive = http_should_keep_alive(p) != 0;
    return 0;
}

static const http_parser_settings PARSER_SETTINGS = {
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int conn_open(conn_t *c)
{
    c->fd = socket(c->ai->ai_family, c->ai->ai_socktype | SOCK_CLOEXEC, c->ai->ai_protocol);
    if (c->fd < 0) {
        snprintf(c->err, sizeof c->err, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    /* Small requests must leave at once, not wait for an ACK (Nagle). */
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(c->fd, c->ai->ai_addr, c->ai->ai_addrlen) < 0) {
        snprintf(c->err, sizeof c->err, "connect: %s", strerror(errno));
        conn_close(c);
        return -1;
    }
    return 0;
}

static int send_all(conn_t *c, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(c->err, sizeof c->err, "send: %s", strerror(errno));
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads one response. Returns its status, or -1 with c->err set; *got_any
 * tells whether any byte arrived (a keep-alive connection the server closed
 * in between delivers none). */
static int read_response(conn_t *c, bool *got_any)
{
    char buf[16384];
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->done = false;
    c->body_len = 0;
    *got_any = false;
    while (!c->done) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(c->err, sizeof c->err, "recv: %s", strerror(errno));
            return -1;
        }
        *got_any |= n > 0;
        /* n == 0 tells the parser about EOF: it ends a body without length. */
        http_parser_execute(&c->parser, &PARSER_SETTINGS, buf, (size_t)n);
        if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
            snprintf(c->err, sizeof c->err, "bad response: %s",
                     http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
            return -1;
        }
        if (n == 0 && !c->done) {
            snprintf(c->err, sizeof c->err, "connection closed before the response ended");
            return -1;
        }
    }
    return (int)c->parser.status_code;
}

/* Sends req and returns the response's status, or -1 with c->err set. A
 * reused connection that turns out closed is reopened once. */
static int conn_request(conn_t *c, const char *req, size_t len)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = c->fd >= 0, got_any = false;
        if (!reused && conn_open(c) < 0)
            return -1;
        int status = -1;
        if (send_all(c, req, len) == 0)
            status = read_response(c, &got_any);
        if (status >= 0) {
            if (!c->keep_alive)
                conn_close(c);
            return status;
        }
        conn_close(c);
        if (!reused || got_any)
            return -1;
    }
    return -1;
}

/* ---- requests ---- */

static size_t format_get(char *out, const options_t *o, const char *path)
{
    int n = snprintf(out, REQ_MAX, "GET %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n", path,
                     o->host_header, o->token ? "Authorization: Bearer " : "",
                     o->token ? o->token : "", o->token ? "\r\n" : "");
    return n > 0 && n < REQ_MAX ? (size_t)n : 0;
}

static size_t format_note(char *out, const options_t *o, const char *id, int client, long i)
{
    char body[256];
    /* With a token the desk takes the actor from it (another one is a 403). */
    int blen = snprintf(body, sizeof body,
                        "{\"action\":\"note\",%s\"note\":\"plaint-bench-http load note %d-%ld\"}",
                        o->token ? "" : "\"actor\":\"" ACTOR "\",", client, i);
    int n = snprintf(out, REQ_MAX,
                     "POST /v1/cases/%s/actions HTTP/1.1\r\nHost: %s\r\n%s%s%s"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     id, o->host_header, o->token ? "Authorization: Bearer " : "",
                     o->token ? o->token : "", o->token ? "\r\n" : "", blen, body);
    return n > 0 && n < REQ_MAX ? (size_t)n : 0;
}

/* Percent-encodes s into out (size bytes), for a query value. */
static void url_encode(char *out, size_t size, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

/* A list path with one random filter: a known value of a field, overdue, or
 * none. */
static void list_path(char *out, size_t size, const corpus_t *k, uint64_t *rng)
{
    int pick = rng_below(rng, F_COUNT + 2);
    if (pick < F_COUNT && k->filters[pick].n > 0) {
        const values_t *v = &k->filters[pick];
        char enc[256];
        url_encode(enc, sizeof enc, v->v[rng_below(rng, v->n)]);
        snprintf(out, size, "/v1/cases?limit=50&%s=%s", FILTER_NAMES[pick], enc);
    } else if (pick == F_COUNT) {
        snprintf(out, size, "/v1/cases?limit=50&overdue=%s", rng_below(rng, 2) ? "true" : "false");
    } else {
        snprintf(out, size, "/v1/cases?limit=50");
    }
}

static int pick_kind(const int *mix, uint64_t *rng)
{
    int sum = mix[K_GET] + mix[K_LIST] + mix[K_ACTION];
    int r = rng_below(rng, sum);
    for (int k = 0; k < K_COUNT; k++) {
        if (r < mix[k])
            return k;
        r -= mix[k];
    }
    return K_GET;
}

/* ---- discovery ---- */

static void push_str(char ***list, int *n, int *cap, const char *s)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *list = pl_realloc(*list, (size_t)*cap * sizeof **list);
    }
    (*list)[(*n)++] = pl_strdup(s);
}

static void add_value(values_t *v, const cJSON *item)
{
    if (!cJSON_IsString(item) || v->n == VALUES_MAX)
        return;
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->v[i], item->valuestring))
            return;
    v->v[v->n++] = pl_strdup(item->valuestring);
}

static void add_case(corpus_t *k, const cJSON *kase)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(kase, "case_id");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(kase, "state");
    if (!cJSON_IsString(id) || !cJSON_IsString(state))
        return;
    push_str(&k->ids, &k->n_ids, &k->cap_ids, id->valuestring);
    /* A note is allowed in every state after routed (common/pl_workflow.c). */
    if (strcmp(state->valuestring, "received") && strcmp(state->valuestring, "classified"))
        push_str(&k->actionable, &k->n_actionable, &k->cap_actionable, id->valuestring);
    for (int f = 0; f < F_COUNT; f++)
        add_value(&k->filters[f], cJSON_GetObjectItemCaseSensitive(kase, FILTER_NAMES[f]));
}

/* Pages GET /v1/cases into k. Returns 0, or -1 after saying why. */
static int discover(const options_t *o, const struct addrinfo *ai, corpus_t *k)
{
    conn_t c = {.ai = ai, .fd = -1, .keep_body = true};
    char req[REQ_MAX], path[256], after[64] = "";
    int rc = -1;
    while (k->n_ids < o->discover_max) {
        snprintf(path, sizeof path, "/v1/cases?limit=%d%s%s", PAGE_LIMIT, *after ? "&after=" : "",
                 after);
        int status = conn_request(&c, req, format_get(req, o, path));
        if (status != 200) {
            if (status < 0)
                fprintf(stderr, "plaint-bench-http: GET %s on %s: %s\n", path, o->host_header,
                        c.err);
            else
                fprintf(stderr, "plaint-bench-http: GET %s on %s: status %d: %.300s\n", path,
                        o->host_header, status, c.body ? c.body : "");
            if (status == 401 || status == 403)
                fprintf(stderr, "hint: pass --token with a supervisor's or admin's token.\n");
            else if (status < 0)
                fprintf(stderr, "hint: start plaint-desk, or pass --addr HOST:PORT.\n");
            goto out;
        }
        cJSON *page = cJSON_Parse(c.body);
        const cJSON *cases = cJSON_GetObjectItemCaseSensitive(page, "cases");
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(page, "next");
        const cJSON *kase;
        cJSON_ArrayForEach(kase, cases)
            add_case(k, kase);
        bool more = cJSON_IsString(next) && strlen(next->valuestring) < sizeof after;
        if (more)
            snprintf(after, sizeof after, "%s", next->valuestring);
        cJSON_Delete(page);
        if (!more)
            break;
    }
    rc = 0;
out:
    conn_close(&c);
    pl_free(c.body);
    return rc;
}

static void corpus_free(corpus_t *k)
{
    for (int i = 0; i < k->n_ids; i++)
        pl_free(k->ids[i]);
    for (int i = 0; i < k->n_actionable; i++)
        pl_free(k->actionable[i]);
    for (int f = 0; f < F_COUNT; f++)
        for (int i = 0; i < k->filters[f].n; i++)
            pl_free(k->filters[f].v[i]);
    pl_free(k->ids);
    pl_free(k->actionable);
}

/* ---- the load ---- */

static void sample_add(samples_t *s, double ms)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->ms = pl_realloc(s->ms, s->cap * sizeof *s->ms);
    }
    s->ms[s->n++] = ms;
}

/* Builds the next request of kind k into req; returns its length. */
static size_t next_request(client_t *cl, int kind, long i, char *req)
{
    const options_t *o = cl->run->opt;
    const corpus_t *k = cl->run->corpus;
    char path[512];
    if (kind == K_ACTION)
        return format_note(req, o, k->actionable[rng_below(&cl->rng, k->n_actionable)], cl->index,
                           i);
    if (kind == K_LIST)
        list_path(path, sizeof path, k, &cl->rng);
    else
        snprintf(path, sizeof path, "/v1/cases/%s", k->ids[rng_below(&cl->rng, k->n_ids)]);
    return format_get(req, o, path);
}

static void record(client_t *cl, conn_t *c, int kind, int status, double ms)
{
    if (status < 0) {
        cl->errors[kind]++;
        if (atomic_fetch_add(&cl->run->errors_reported, 1) < 5)
            fprintf(stderr, "plaint-bench-http: %s request: %s\n", KIND_NAMES[kind], c->err);
        return;
    }
    cl->status[kind][status < STATUS_MAX ? status : 0]++;
    sample_add(&cl->lat[kind], ms);
}

static void *client_main(void *arg)
{
    client_t *cl = arg;
    run_t *run = cl->run;
    const options_t *o = run->opt;
    conn_t c = {.ai = run->ai, .fd = -1};
    char req[REQ_MAX];
    /* Connect and warm up before the clock starts: the level measures
     * requests on open keep-alive connections, not TCP handshakes. */
    if (conn_request(&c, req, format_get(req, o, "/healthz")) < 0)
        fprintf(stderr, "plaint-bench-http: client %d: %s\n", cl->index, c.err);
    pthread_barrier_wait(&run->start);
    int64_t deadline = o->seconds > 0 ? mono_ns() + (int64_t)(o->seconds * 1e9) : INT64_MAX;
    for (;;) {
        long i = atomic_fetch_add(&run->next, 1);
        if ((o->total > 0 && i >= o->total) || mono_ns() >= deadline)
            break;
        int kind = pick_kind(o->mix, &cl->rng);
        size_t len = next_request(cl, kind, i, req);
        int64_t t0 = mono_ns();
        int status = conn_request(&c, req, len);
        record(cl, &c, kind, status, (double)(mono_ns() - t0) / 1e6);
    }
    conn_close(&c);
    return NULL;
}

/* ---- figures ---- */

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

typedef struct tally {
    samples_t lat;
    long status[STATUS_MAX];
    long errors;
} tally_t;

static void tally_add(tally_t *t, const samples_t *s, const long *status, long errors)
{
    for (size_t i = 0; i < s->n; i++)
        sample_add(&t->lat, s->ms[i]);
    for (int i = 0; i < STATUS_MAX; i++)
        t->status[i] += status[i];
    t->errors += errors;
}

static void print_row(int clients, const char *kind, tally_t *t, double seconds)
{
    long non2xx = 0;
    for (int i = 0; i < STATUS_MAX; i++)
        if (i < 200 || i > 299)
            non2xx += t->status[i];
    size_t n = t->lat.n;
    if (n)
        qsort(t->lat.ms, n, sizeof *t->lat.ms, compare_double);
    printf("%8d %-7s %9zu %9.1f %8.2f %8.2f %8.2f %8.2f %8ld %7ld\n", clients, kind, n,
           (double)n / seconds, percentile(t->lat.ms, n, 50), percentile(t->lat.ms, n, 90),
           percentile(t->lat.ms, n, 99), n ? t->lat.ms[n - 1] : 0.0, non2xx, t->errors);
}

/* One line: "get 200 x 5990; list 200 x 3000; action 200 x 1000, 409 x 2". */
static void print_statuses(const tally_t *kinds)
{
    printf("%8s statuses:", "");
    for (int k = 0; k < K_COUNT; k++) {
        bool first = true;
        for (int i = 0; i < STATUS_MAX; i++) {
            if (!kinds[k].status[i])
                continue;
            printf("%s%s%s%d x %ld", first ? (k ? "; " : " ") : ", ", first ? KIND_NAMES[k] : "",
                   first ? " " : "", i, kinds[k].status[i]);
            first = false;
        }
    }
    printf("\n");
}

static void report(int clients, client_t *cs, double seconds)
{
    tally_t kinds[K_COUNT] = {0}, all = {0};
    for (int k = 0; k < K_COUNT; k++) {
        for (int i = 0; i < clients; i++) {
            tally_add(&kinds[k], &cs[i].lat[k], cs[i].status[k], cs[i].errors[k]);
            tally_add(&all, &cs[i].lat[k], cs[i].status[k], cs[i].errors[k]);
        }
        print_row(clients, KIND_NAMES[k], &kinds[k], seconds);
    }
    print_row(clients, "all", &all, seconds);
    print_statuses(kinds);
    for (int k = 0; k < K_COUNT; k++)
        pl_free(kinds[k].lat.ms);
    pl_free(all.lat.ms);
}

static void run_level(const options_t *o, const corpus_t *k, const struct addrinfo *ai, int clients)
{
    run_t run = {.opt = o, .corpus = k, .ai = ai};
    atomic_init(&run.next, 0);
    atomic_init(&run.errors_reported, 0);
    pthread_barrier_init(&run.start, NULL, (unsigned)clients + 1);
    client_t *cs = pl_calloc((size_t)clients, sizeof *cs);
    pthread_t *threads = pl_calloc((size_t)clients, sizeof *threads);
    uint64_t seed = (uint64_t)mono_ns();
    for (int i = 0; i < clients; i++) {
        cs[i].run = &run;
        cs[i].index = i;
        cs[i].rng = seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1));
        if (pthread_create(&threads[i], NULL, client_main, &cs[i]) != 0) {
            perror("plaint-bench-http: pthread_create"); /* startup: give up */
            exit(1);
        }
    }
    pthread_barrier_wait(&run.start);
    int64_t t0 = mono_ns();
    for (int i = 0; i < clients; i++)
        pthread_join(threads[i], NULL);
    report(clients, cs, (double)(mono_ns() - t0) / 1e9);
    fflush(stdout);
    for (int i = 0; i < clients; i++)
        for (int j = 0; j < K_COUNT; j++)
            pl_free(cs[i].lat[j].ms);
    pthread_barrier_destroy(&run.start);
    pl_free(cs);
    pl_free(threads);
}

/* ---- options ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: plaint-bench-http [--addr HOST:PORT] [-c 1,8,32] [-n N | --seconds S]\n"
            "                         [--mix get=60,list=30,action=10] [--token TOKEN]\n"
            "                         [--discover N]\n\n"
            "Pages GET /v1/cases of a running plaint-desk to find up to --discover cases\n"
            "(%d), then, per concurrency level, drives its API from C keep-alive HTTP/1.1\n"
            "connections with N requests (10000) or for S seconds: GET /v1/cases/{id},\n"
            "GET /v1/cases?limit=50 with a random filter, and POST /v1/cases/{id}/actions\n"
            "with a note (on cases routed or later). Prints requests/s, latency p50, p90,\n"
            "p99 and max per kind, and every status. --addr defaults to PLAINT_HTTP_ADDR\n"
            "(0.0.0.0:8080; 0.0.0.0 and * mean 127.0.0.1).\n",
            DISCOVER_MAX_DEFAULT);
}

/* Reads "get=60,list=30,action=10" into mix; returns 0 or -1. */
static int parse_mix(const char *text, int *mix)
{
    int got[K_COUNT] = {0};
    char *copy = pl_strdup(text), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *end = NULL;
        long w = eq ? strtol(eq + 1, &end, 10) : -1;
        rc = -1;
        for (int k = 0; k < K_COUNT && eq; k++)
            if ((size_t)(eq - tok) == strlen(KIND_NAMES[k]) &&
                !strncmp(tok, KIND_NAMES[k], (size_t)(eq - tok)) && end != eq + 1 && !*end &&
                w >= 0 && w <= 1000000) {
                got[k] = (int)w;
                rc = 0;
            }
    }
    pl_free(copy);
    if (rc < 0 || got[K_GET] + got[K_LIST] + got[K_ACTION] <= 0)
        return -1;
    memcpy(mix, got, sizeof got);
    return 0;
}

/* Splits HOST:PORT ([IPv6]:PORT) into o; returns 0 or -1. */
static int parse_addr(const char *addr, options_t *o)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= sizeof o->port)
        return -1;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
        addr++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof o->host)
        return -1;
    snprintf(o->host, sizeof o->host, "%.*s", (int)hlen, addr);
    snprintf(o->port, sizeof o->port, "%s", colon + 1);
    /* The desk's listen address may be a wildcard; connect to loopback. */
    if (!strcmp(o->host, "0.0.0.0") || !strcmp(o->host, "*"))
        snprintf(o->host, sizeof o->host, "127.0.0.1");
    else if (!strcmp(o->host, "::"))
        snprintf(o->host, sizeof o->host, "::1");
    snprintf(o->host_header, sizeof o->host_header, strchr(o->host, ':') ? "[%s]:%s" : "%s:%s",
             o->host, o->port);
    return 0;
}

/* Fills o from argv; returns 0, 1 after --help, or -1 after saying what is wrong. */
static int parse_args(int argc, char **argv, options_t *o, const char **addr)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--addr") && v)
            *addr = argv[++i];
        else if (!strcmp(a, "-c") && v)
            o->levels = argv[++i];
        else if (!strcmp(a, "-n") && v)
            o->total = atol(argv[++i]);
        else if (!strcmp(a, "--seconds") && v)
            o->seconds = atof(argv[++i]);
        else if (!strcmp(a, "--token") && v)
            o->token = argv[++i];
        else if (!strcmp(a, "--discover") && v)
            o->discover_max = atoi(argv[++i]);
        else if (!strcmp(a, "--mix") && v) {
            if (parse_mix(argv[++i], o->mix) < 0) {
                fprintf(stderr,
                        "plaint-bench-http: invalid --mix \"%s\"\n"
                        "hint: use the form get=60,list=30,action=10 (weights, "
                        "at least one above 0).\n",
                        argv[i]);
                return -1;
            }
        } else {
            usage(strcmp(a, "--help") ? stderr : stdout);
            return strcmp(a, "--help") ? -1 : 1;
        }
    }
    if (o->total < 0 || o->seconds < 0 || o->discover_max < 1) {
        fprintf(stderr, "plaint-bench-http: -n, --seconds and --discover must be positive\n");
        return -1;
    }
    if (o->total == 0 && o->seconds == 0)
        o->total = 10000;
    return 0;
}

static struct addrinfo *resolve(const options_t *o)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(o->host, o->port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "plaint-bench-http: cannot resolve \"%s:%s\": %s\n", o->host, o->port,
                gai_strerror(rc));
        return NULL;
    }
    return ai;
}

static int check_corpus(const options_t *o, const corpus_t *k)
{
    if (k->n_ids == 0) {
        fprintf(stderr,
                "plaint-bench-http: the desk on %s lists no cases\n"
                "hint: submit some first, e.g. plaint-bench -n 10000 --no-pgbench.\n",
                o->host_header);
        return -1;
    }
    if (o->mix[K_ACTION] > 0 && k->n_actionable == 0) {
        fprintf(stderr,
                "plaint-bench-http: none of the %d cases found is routed yet, so no "
                "note is allowed\nhint: wait for routing, or pass --mix without action.\n",
                k->n_ids);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options_t o = {.levels = "1,8,32", .mix = {60, 30, 10}, .discover_max = DISCOVER_MAX_DEFAULT};
    const char *env = getenv("PLAINT_HTTP_ADDR");
    const char *addr = env && *env ? env : "0.0.0.0:8080";
    int rc = parse_args(argc, argv, &o, &addr);
    if (rc != 0)
        return rc > 0 ? 0 : 64;
    if (parse_addr(addr, &o) < 0) {
        fprintf(stderr,
                "plaint-bench-http: invalid address \"%s\": not HOST:PORT\n"
                "hint: pass --addr 127.0.0.1:8080, or set PLAINT_HTTP_ADDR.\n",
                addr);
        return 78;
    }
    struct addrinfo *ai = resolve(&o);
    if (!ai)
        return 78;
    corpus_t k = {0};
    rc = discover(&o, ai, &k) < 0 || check_corpus(&o, &k) < 0 ? 1 : 0;
    if (rc == 0) {
        printf("desk %s: %d cases (%d routed or later); mix get=%d list=%d action=%d; ",
               o.host_header, k.n_ids, k.n_actionable, o.mix[K_GET], o.mix[K_LIST],
               o.mix[K_ACTION]);
        if (o.seconds > 0)
            printf("%.1f s per level%s\n", o.seconds, o.total ? " (or -n)" : "");
        else
            printf("%ld requests per level\n", o.total);
        printf("%8s %-7s %9s %9s %8s %8s %8s %8s %8s %7s\n", "clients", "kind", "requests", "req/s",
               "p50 ms", "p90 ms", "p99 ms", "max ms", "non-2xx", "errors");
        char *list = pl_strdup(o.levels), *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            int clients = atoi(tok);
            if (clients < 1 || clients > CLIENTS_MAX)
                fprintf(stderr, "plaint-bench-http: skipping -c %s: not 1..%d\n", tok, CLIENTS_MAX);
            else
                run_level(&o, &k, ai, clients);
        }
        pl_free(list);
    }
    corpus_free(&k);
    freeaddrinfo(ai);
    return rc;
}
