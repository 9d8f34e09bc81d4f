/*
 * plaint-bench: submits N complaints from C concurrent REQ clients to a
 * running plaint-intake and prints durable acks/s and ack latency
 * percentiles; then runs pgbench at the same concurrency with one
 * transaction per case (one case row + one event row, the naive design) and
 * prints Plaint's rate as a ratio of it. A tool, not a daemon: it blocks.
 *
 *   plaint-bench [-n N] [-c 1,8,32] [--no-pgbench]
 * Uses PLAINT_SUBMIT_ENDPOINT and PLAINT_DATABASE_URL like the daemons.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_text.h"
#include "pl_alloc.h"
#include "pl_bus.h"
#include "pl_db.h"
#include "pl_json.h"
#include "pl_msg.h"
#include "pl_time.h"
#include "pl_uuid.h"

#define CLIENTS_MAX 256
#define REPLY_TIMEOUT_MS 10000

typedef struct run {
    void *zctx;
    const char *endpoint;
    int total;
    int clients;
    char run_id[16];
    double *latency_ms; /* one per submit; NaN-free, filled by clients */
    int errors;
    pthread_mutex_t lock;
} run_t;

typedef struct client {
    run_t *run;
    int index;
    int first, count; /* its slice of latency_ms */
    int errors;
} client_t;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *submit_text(const run_t *run, int client, int i)
{
    char body[4096], ext[96];
    unsigned seed = (unsigned)(client * 1000003 + i);
    bench_text_body(body, sizeof body, 1024 + (seed % 1024), seed);
    snprintf(ext, sizeof ext, "bench-%s-%d-%d", run->run_id, client, i);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "external_id", ext);
    cJSON_AddStringToObject(data, "channel", (seed & 2) ? "web" : "phone");
    cJSON *customer = cJSON_AddObjectToObject(data, "customer");
    char id[48];
    snprintf(id, sizeof id, "bench-customer-%u", seed % 5000);
    cJSON_AddStringToObject(customer, "id", id);
    cJSON_AddStringToObject(customer, "lang", (seed & 1) ? "en" : "zh");
    cJSON_AddStringToObject(data, "subject", (seed & 1) ? "Problem with my order" : "订单问题投诉");
    cJSON_AddStringToObject(data, "body", body);
    cJSON_AddStringToObject(data, "demand_type", "refund");
    cJSON *msg = pl_msg_new(PL_MSG_SUBMIT, "plaint-bench", data);
    char *text = pl_json_print(msg);
    cJSON_Delete(msg);
    return text;
}

static int submit_one(void *req, const char *text, char *reply, size_t size)
{
    if (zmq_send(req, text, strlen(text), 0) < 0)
        return -1;
    int n = zmq_recv(req, reply, size - 1, 0);
    if (n < 0)
        return -1;
    reply[n < (int)size - 1 ? n : (int)size - 1] = '\0';
    return strstr(reply, "\"complaint.accepted\"") ? 0 : -1;
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    run_t *run = c->run;
    void *req = zmq_socket(run->zctx, ZMQ_REQ);
    int timeout = REPLY_TIMEOUT_MS, linger = 0;
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(req, run->endpoint);
    char reply[4096];
    for (int i = 0; i < c->count; i++) {
        char *text = submit_text(run, c->index, i);
        int64_t t0 = mono_ns();
        int rc = submit_one(req, text, reply, sizeof reply);
        run->latency_ms[c->first + i] = (double)(mono_ns() - t0) / 1e6;
        pl_free(text);
        if (rc < 0) {
            c->errors++;
            if (c->errors == 1)
                fprintf(stderr, "plaint-bench: error reply: %.300s\n", reply);
            /* A REQ socket without a reply is stuck: start a new one. */
            zmq_close(req);
            req = zmq_socket(run->zctx, ZMQ_REQ);
            zmq_setsockopt(req, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
            zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
            zmq_connect(req, run->endpoint);
        }
    }
    zmq_close(req);
    return NULL;
}

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

typedef struct result {
    double acks_per_s, p50, p90, p99, max;
    int errors;
} result_t;

static result_t run_plaint(void *zctx, const char *endpoint, int total, int clients)
{
    run_t run = {.zctx = zctx, .endpoint = endpoint, .total = total, .clients = clients};
    char uuid[PL_UUID_STR];
    snprintf(run.run_id, sizeof run.run_id, "%.8s", pl_uuid_v4(uuid));
    run.latency_ms = pl_calloc((size_t)total, sizeof *run.latency_ms);
    client_t *cs = pl_calloc((size_t)clients, sizeof *cs);
    pthread_t *threads = pl_calloc((size_t)clients, sizeof *threads);
    int first = 0;
    int64_t t0 = mono_ns();
    for (int i = 0; i < clients; i++) {
        cs[i] = (client_t){&run, i, first, total / clients + (i < total % clients), 0};
        first += cs[i].count;
        pthread_create(&threads[i], NULL, client_main, &cs[i]);
    }
    result_t r = {0};
    for (int i = 0; i < clients; i++) {
        pthread_join(threads[i], NULL);
        r.errors += cs[i].errors;
    }
    double seconds = (double)(mono_ns() - t0) / 1e9;
    qsort(run.latency_ms, (size_t)total, sizeof *run.latency_ms, compare_double);
    r.acks_per_s = (total - r.errors) / seconds;
    r.p50 = percentile(run.latency_ms, total, 50);
    r.p90 = percentile(run.latency_ms, total, 90);
    r.p99 = percentile(run.latency_ms, total, 99);
    r.max = total ? run.latency_ms[total - 1] : 0;
    pl_free(run.latency_ms);
    pl_free(cs);
    pl_free(threads);
    return r;
}

/* The naive design at the same concurrency: one transaction per case, one
 * case row and one event row, into copies of the real tables (same indexes). */
static const char PGBENCH_SETUP[] =
    "SET client_min_messages = warning;"
    "DROP TABLE IF EXISTS plaint_bench_cases, plaint_bench_events;"
    "DROP SEQUENCE IF EXISTS plaint_bench_seq;"
    "CREATE SEQUENCE plaint_bench_seq;"
    "CREATE TABLE plaint_bench_cases (LIKE cases INCLUDING ALL);"
    "CREATE TABLE plaint_bench_events (LIKE events INCLUDING ALL);"
    "ALTER TABLE plaint_bench_events ALTER pending_id SET DEFAULT nextval('plaint_bench_seq');";
static const char PGBENCH_TEARDOWN[] =
    "SET client_min_messages = warning;"
    "DROP TABLE IF EXISTS plaint_bench_cases, plaint_bench_events;"
    "DROP SEQUENCE IF EXISTS plaint_bench_seq;";
static const char PGBENCH_SCRIPT[] =
    "\\set n random(1, 2000000000)\n"
    "BEGIN;\n"
    "INSERT INTO plaint_bench_cases (case_id, case_no, source, external_id, channel, customer_id,"
    " customer_email, lang, subject, body, demand_type, submission) VALUES (gen_random_uuid(),"
    " 'B-' || txid_current(), 'pgbench', :client_id || '-' || :n || '-' || txid_current(), 'web',"
    " 'bench-customer-' || :n, 'bench@example.invalid', 'zh', '订单问题投诉',"
    " repeat('我购买的商品出现质量问题，要求退款。', 28), 'refund', '{}');\n"
    "INSERT INTO plaint_bench_events (type, case_id, source, data) VALUES ('case.received',"
    " gen_random_uuid(), 'pgbench', '{\"state\": \"received\", \"channel\": \"web\"}');\n"
    "COMMIT;\n";

static int exec_sql(const char *url, const char *sql)
{
    pl_err_t err;
    PGconn *conn = pl_db_connect_blocking(url, "plaint-bench", 5000, &err);
    if (!conn) {
        fprintf(stderr, "plaint-bench: %s\n", err.message);
        return -1;
    }
    PGresult *res = PQexec(conn, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0)
        fprintf(stderr, "plaint-bench: %s", PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* Runs pgbench and returns its tps, or -1. */
static double run_pgbench(const char *pgbench, const char *url, int total, int clients)
{
    char path[] = "/tmp/plaint-bench-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, PGBENCH_SCRIPT, strlen(PGBENCH_SCRIPT)) < 0) {
        perror("plaint-bench: pgbench script");
        return -1;
    }
    close(fd);
    if (exec_sql(url, PGBENCH_SETUP) < 0)
        return -1;
    int threads = clients < 2 ? clients : 2;
    int per_client = total / clients > 0 ? total / clients : 1;
    char *cmd = pl_sprintf("%s -n -M prepared -c %d -j %d -t %d -f %s \"%s\" 2>&1", pgbench,
                           clients, threads, per_client, path, url);
    FILE *out = popen(cmd, "r");
    pl_free(cmd);
    double tps = -1;
    char line[512];
    while (out && fgets(line, sizeof line, out)) {
        const char *p = strstr(line, "tps = ");
        if (p && strstr(line, "without initial"))
            tps = strtod(p + 6, NULL);
        else if (strstr(line, "error") || strstr(line, "FATAL"))
            fprintf(stderr, "pgbench: %s", line);
    }
    if (out)
        pclose(out);
    unlink(path);
    (void)exec_sql(url, PGBENCH_TEARDOWN);
    return tps;
}

static const char *submit_endpoint(void)
{
    const char *ep = getenv("PLAINT_SUBMIT_ENDPOINT");
    static char buf[256];
    return pl_bus_connect_address(ep && *ep ? ep : "tcp://*:7101", buf, sizeof buf);
}

static void usage(void)
{
    printf("Usage: plaint-bench [-n N] [-c 1,8,32] [--no-pgbench] [--pgbench PATH]\n\n"
           "Submits N complaints (1-2 KB bodies, Chinese and English) per concurrency level to\n"
           "a running plaint-intake (PLAINT_SUBMIT_ENDPOINT) and prints acks/s and ack latency\n"
           "percentiles; then runs pgbench with one transaction per case (case row + event row)\n"
           "at the same concurrency against PLAINT_DATABASE_URL and prints the ratio.\n");
}

int main(int argc, char **argv)
{
    int total = 10000;
    const char *levels = "1,8,32";
    const char *pgbench = "/usr/lib/postgresql/15/bin/pgbench";
    int with_pgbench = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc)
            total = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-c") && i + 1 < argc)
            levels = argv[++i];
        else if (!strcmp(argv[i], "--no-pgbench"))
            with_pgbench = 0;
        else if (!strcmp(argv[i], "--pgbench") && i + 1 < argc)
            pgbench = argv[++i];
        else {
            usage();
            return strcmp(argv[i], "--help") ? 64 : 0;
        }
    }
    const char *url = getenv("PLAINT_DATABASE_URL");
    if (with_pgbench && (!url || !*url)) {
        fprintf(stderr, "plaint-bench: PLAINT_DATABASE_URL is not set\n"
                        "hint: pgbench needs it; or pass --no-pgbench.\n");
        return 78;
    }
    void *zctx = zmq_ctx_new();
    printf("%8s %10s %8s %8s %8s %8s %7s %12s %7s\n", "clients", "acks/s", "p50 ms", "p90 ms",
           "p99 ms", "max ms", "errors", "pgbench tps", "ratio");
    char *list = pl_strdup(levels), *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int clients = atoi(tok);
        if (clients < 1 || clients > CLIENTS_MAX)
            continue;
        result_t r = run_plaint(zctx, submit_endpoint(), total, clients);
        double tps = with_pgbench ? run_pgbench(pgbench, url, total, clients) : -1;
        printf("%8d %10.0f %8.2f %8.2f %8.2f %8.2f %7d %12.0f %7.2f\n", clients, r.acks_per_s,
               r.p50, r.p90, r.p99, r.max, r.errors, tps, tps > 0 ? r.acks_per_s / tps : 0.0);
        fflush(stdout);
    }
    pl_free(list);
    zmq_ctx_term(zctx);
    return 0;
}
