/*
 * plaint-bench-pipeline: offers complaints to a running Plaint at a steady
 * rate (open loop: the schedule does not wait for replies, as real traffic
 * does not) and watches the event stream; prints how many cases per second
 * went through classifier and routing, and the latency from each case's
 * case.received event to its case.routed event (both as seen by this
 * subscriber, one clock), as percentiles. A tool, not a daemon: it blocks.
 *
 *   plaint-bench-pipeline [--rate 1000] [--seconds 10] [--drain 30]
 * --rate 0 offers as fast as intake acknowledges (up to 512 in flight): the
 * stages' throughput ceiling. Uses PLAINT_SUBMIT_ENDPOINT and
 * PLAINT_EVENTS_ENDPOINT like the daemons.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bench_text.h"
#include "pl_alloc.h"
#include "pl_bus.h"
#include "pl_json.h"
#include "pl_msg.h"
#include "pl_uuid.h"

#define IN_FLIGHT_MAX 512
#define CASE_ID_LEN 36

typedef struct slot {
    char case_id[CASE_ID_LEN + 1];
    int64_t received_ns, routed_ns;
} slot_t;

typedef struct run {
    void *zctx;
    char submit[256], events[256];
    double rate;
    double seconds;
    int total;
    char run_id[16];
    /* written by the sender, read after it ends */
    int sent, acked, errors;
    int64_t send_start_ns, send_end_ns;
    atomic_int finished; /* set last by the sender */
} run_t;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until(int64_t at_ns)
{
    int64_t left = at_ns - mono_ns();
    if (left <= 0)
        return;
    struct timespec ts = {left / 1000000000, left % 1000000000};
    nanosleep(&ts, NULL);
}

/* ---- the cases seen on the stream: open addressing on case_id ---- */

static slot_t *table;
static size_t table_size;

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static slot_t *find(const char *id, bool create)
{
    size_t i = hash(id, CASE_ID_LEN) & (table_size - 1);
    for (;;) {
        slot_t *s = &table[i];
        if (!s->case_id[0]) {
            if (!create)
                return NULL;
            memcpy(s->case_id, id, CASE_ID_LEN);
            return s;
        }
        if (!memcmp(s->case_id, id, CASE_ID_LEN))
            return s;
        i = (i + 1) & (table_size - 1);
    }
}

/* ---- the sender ---- */

static char *complaint(const run_t *run, int i)
{
    char body[4096], ext[96], id[48];
    unsigned seed = (unsigned)i * 2654435761u;
    bench_text_body(body, sizeof body, 200 + (seed % 800), seed);
    snprintf(ext, sizeof ext, "pipe-%s-%d", run->run_id, i);
    snprintf(id, sizeof id, "pipe-%s-%u", run->run_id, seed % 100000);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "external_id", ext);
    cJSON_AddStringToObject(data, "channel", (seed & 2) ? "web" : "phone");
    cJSON *customer = cJSON_AddObjectToObject(data, "customer");
    cJSON_AddStringToObject(customer, "id", id);
    cJSON_AddStringToObject(customer, "lang", (seed & 1) ? "en" : "zh");
    cJSON_AddStringToObject(data, "body", body);
    cJSON *msg = pl_msg_new(PL_MSG_SUBMIT, "plaint-bench-pipeline", data);
    char *text = pl_json_print(msg);
    cJSON_Delete(msg);
    return text;
}

static void drain_replies(run_t *run, void *dealer, int *in_flight)
{
    char buf[2048];
    for (;;) {
        int n = zmq_recv(dealer, buf, sizeof buf - 1, ZMQ_DONTWAIT);
        if (n < 0)
            return;
        if (n == 0)
            continue; /* the delimiter */
        buf[n < (int)sizeof buf - 1 ? n : (int)sizeof buf - 1] = '\0';
        if (strstr(buf, "\"complaint.accepted\""))
            run->acked++;
        else if (++run->errors == 1)
            fprintf(stderr, "plaint-bench-pipeline: error reply: %.300s\n", buf);
        (*in_flight)--;
    }
}

static void *sender_main(void *arg)
{
    run_t *run = arg;
    void *dealer = zmq_socket(run->zctx, ZMQ_DEALER);
    int linger = 0, hwm = 100000;
    zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(dealer, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_connect(dealer, run->submit);
    int in_flight = 0;
    run->send_start_ns = mono_ns();
    for (int i = 0; i < run->total; i++) {
        if (run->rate > 0)
            sleep_until(run->send_start_ns + (int64_t)(i * 1e9 / run->rate));
        else
            while (in_flight >= IN_FLIGHT_MAX) {
                zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
                zmq_poll(&item, 1, 100);
                drain_replies(run, dealer, &in_flight);
            }
        char *text = complaint(run, i);
        zmq_send(dealer, "", 0, ZMQ_SNDMORE);
        if (zmq_send(dealer, text, strlen(text), 0) >= 0) {
            run->sent++;
            in_flight++;
        }
        pl_free(text);
        drain_replies(run, dealer, &in_flight);
    }
    run->send_end_ns = mono_ns();
    int64_t deadline = mono_ns() + 30 * 1000000000LL;
    while (in_flight > 0 && mono_ns() < deadline) {
        zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
        zmq_poll(&item, 1, 100);
        drain_replies(run, dealer, &in_flight);
    }
    zmq_close(dealer);
    atomic_store(&run->finished, 1);
    return NULL;
}

/* ---- results ---- */

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, int n, double p)
{
    if (n == 0)
        return 0;
    int i = (int)(p / 100.0 * (n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static void report(const run_t *run)
{
    double *lat = pl_calloc((size_t)run->total + 1, sizeof *lat);
    int n = 0;
    int64_t first_routed = 0, last_routed = 0;
    for (size_t i = 0; i < table_size; i++) {
        const slot_t *s = &table[i];
        if (!s->received_ns || !s->routed_ns)
            continue;
        lat[n++] = (double)(s->routed_ns - s->received_ns) / 1e6;
        if (!first_routed || s->routed_ns < first_routed)
            first_routed = s->routed_ns;
        if (s->routed_ns > last_routed)
            last_routed = s->routed_ns;
    }
    qsort(lat, (size_t)n, sizeof *lat, compare_double);
    double send_s = (double)(run->send_end_ns - run->send_start_ns) / 1e9;
    double routed_s = n > 1 ? (double)(last_routed - first_routed) / 1e9 : 0;
    printf("%10s %9s %9s %9s %8s %8s %8s %8s %8s %8s %7s\n", "offered/s", "acked", "acked/s",
           "routed", "routed/s", "lost", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors");
    printf("%10.0f %9d %9.0f %9d %8.0f %8d %8.2f %8.2f %8.2f %8.2f %7d\n",
           run->rate > 0 ? run->rate : 0.0, run->acked, send_s > 0 ? run->acked / send_s : 0,
           n, routed_s > 0 ? (n - 1) / routed_s : 0, run->acked - n, percentile(lat, n, 50),
           percentile(lat, n, 90), percentile(lat, n, 99), n ? lat[n - 1] : 0.0, run->errors);
    pl_free(lat);
}

/* ---- the subscriber (this thread) ---- */

static int routed_count;

static void on_event(const char *topic, size_t tlen, const char *json, size_t len)
{
    bool received = tlen == 13 && !memcmp(topic, "case.received", 13);
    bool routed = tlen == 11 && !memcmp(topic, "case.routed", 11);
    if (!received && !routed)
        return;
    /* PostgreSQL writes jsonb as "case_id": "..." (a space after the colon). */
    const char *p = memmem(json, len, "\"case_id\":", 10);
    if (!p)
        return;
    p += 10;
    while ((size_t)(p - json) < len && *p == ' ')
        p++;
    if (*p != '"' || (size_t)(p - json) + 1 + CASE_ID_LEN > len)
        return;
    p++;
    int64_t now = mono_ns();
    slot_t *s = find(p, received);
    if (!s)
        return; /* routed, but received before we listened */
    if (received && !s->received_ns)
        s->received_ns = now;
    if (routed && !s->routed_ns) {
        s->routed_ns = now;
        routed_count++;
    }
}

static const char *endpoint(const char *var, const char *fallback, char *buf, size_t size)
{
    const char *ep = getenv(var);
    return pl_bus_connect_address(ep && *ep ? ep : fallback, buf, size);
}

static void usage(void)
{
    printf("Usage: plaint-bench-pipeline [--rate R] [--seconds S] [--drain D]\n\n"
           "Offers R complaints/s (default 1000; 0 = as fast as acknowledged) for S seconds\n"
           "(default 10) to PLAINT_SUBMIT_ENDPOINT, follows PLAINT_EVENTS_ENDPOINT for up to D\n"
           "more seconds (default 30), and prints cases/s through classifier and routing and\n"
           "the case.received -> case.routed latency percentiles.\n");
}

int main(int argc, char **argv)
{
    run_t run = {.rate = 1000, .seconds = 10};
    double drain = 30;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rate") && i + 1 < argc)
            run.rate = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            run.seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--drain") && i + 1 < argc)
            drain = atof(argv[++i]);
        else {
            usage();
            return strcmp(argv[i], "--help") ? 64 : 0;
        }
    }
    run.total = (int)((run.rate > 0 ? run.rate : 2000) * run.seconds);
    if (run.total < 1 || run.seconds <= 0) {
        usage();
        return 64;
    }
    endpoint("PLAINT_SUBMIT_ENDPOINT", "tcp://*:7101", run.submit, sizeof run.submit);
    endpoint("PLAINT_EVENTS_ENDPOINT", "tcp://*:7102", run.events, sizeof run.events);
    char uuid[PL_UUID_STR];
    snprintf(run.run_id, sizeof run.run_id, "%.8s", pl_uuid_v4(uuid));
    for (table_size = 1024; table_size < (size_t)run.total * 4; table_size *= 2)
        ;
    table = pl_calloc(table_size, sizeof *table);

    run.zctx = zmq_ctx_new();
    void *sub = zmq_socket(run.zctx, ZMQ_SUB);
    int linger = 0, hwm = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "case.received", 13);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "case.routed", 11);
    zmq_connect(sub, run.events);
    sleep_until(mono_ns() + 300000000); /* the subscription reaches the publisher */

    pthread_t sender;
    pthread_create(&sender, NULL, sender_main, &run);
    int64_t stop_at = mono_ns() + (int64_t)((run.seconds + drain + 30) * 1e9);
    bool sender_done = false;
    int64_t drain_until = 0;
    char topic[64], json[8192];
    while (mono_ns() < stop_at) {
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        zmq_poll(&item, 1, 100);
        for (;;) {
            int t = zmq_recv(sub, topic, sizeof topic, ZMQ_DONTWAIT);
            if (t < 0)
                break;
            int n = zmq_recv(sub, json, sizeof json, 0);
            if (n > 0)
                on_event(topic, (size_t)(t < (int)sizeof topic ? t : (int)sizeof topic), json,
                         (size_t)(n < (int)sizeof json ? n : (int)sizeof json));
        }
        if (!sender_done && atomic_load(&run.finished)) {
            pthread_join(sender, NULL);
            sender_done = true;
            drain_until = mono_ns() + (int64_t)(drain * 1e9);
        }
        if (sender_done && (routed_count >= run.acked || mono_ns() > drain_until))
            break;
    }
    if (!sender_done)
        pthread_join(sender, NULL);
    report(&run);
    zmq_close(sub);
    zmq_ctx_term(run.zctx);
    pl_free(table);
    return 0;
}
