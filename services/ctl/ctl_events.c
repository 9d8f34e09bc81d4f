/*
 * plaintctl events: prints the event stream, one JSON event per line.
 *   (no --after)        live, from the PUB socket
 *   --after SEQ         replay from PostgreSQL, then exit
 *   --after SEQ --follow  subscribe, replay, then go on live without a gap or
 *                       a repeat (events are deduplicated and gaps refilled by seq)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "pl_alloc.h"
#include "pl_bus.h"

static const char SQL_REPLAY[] =
    "SELECT e.seq, plaint_event_envelope(e) FROM events e"
    " WHERE e.seq > $1::bigint AND starts_with(e.type, $2) ORDER BY e.seq LIMIT 1000";

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Prints events after *last from the database; returns 0 or -1. */
static int replay(PGconn *conn, long long *last, const char *prefix)
{
    for (;;) {
        char after[32];
        snprintf(after, sizeof after, "%lld", *last);
        const char *params[2] = {after, prefix};
        PGresult *res = PQexecParams(conn, SQL_REPLAY, 2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            ctl_fail(PQresultErrorMessage(res), "Is the schema migrated?");
            PQclear(res);
            return -1;
        }
        int rows = PQntuples(res);
        for (int r = 0; r < rows; r++) {
            printf("%s\n", PQgetvalue(res, r, 1));
            *last = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        }
        PQclear(res);
        fflush(stdout);
        if (rows < 1000)
            return 0;
    }
}

static long long seq_of(const char *json)
{
    const char *p = strstr(json, "\"seq\":");
    return p ? strtoll(p + 6, NULL, 10) : 0;
}

static void *subscribe(void *ctx, const char *prefix)
{
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int timeout = 500;
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
    char endpoint[512];
    pl_bus_connect_address(ctl_cfg.events_endpoint, endpoint, sizeof endpoint);
    if (zmq_connect(sub, endpoint) != 0) {
        ctl_fail("cannot connect to the event stream", "Check PLAINT_EVENTS_ENDPOINT.");
        zmq_close(sub);
        return NULL;
    }
    return sub;
}

static int follow(void *sub, PGconn *conn, long long last, const char *prefix)
{
    char *buf = pl_malloc(1024 * 1024);
    while (!interrupted) {
        char topic[256];
        if (zmq_recv(sub, topic, sizeof topic, 0) < 0) {
            /* Quiet for a moment: an event may have been published while our
             * SUB was reconnecting, or numbered by a hub that started after
             * it; the database has it, so look there. */
            if (conn && replay(conn, &last, prefix) < 0)
                break;
            continue;
        }
        int n = zmq_recv(sub, buf, 1024 * 1024 - 1, 0);
        if (n < 0)
            continue;
        buf[n < 1024 * 1024 - 1 ? n : 1024 * 1024 - 1] = '\0';
        long long seq = seq_of(buf);
        if (conn && seq <= last)
            continue;
        if (conn && seq > last + 1 && replay(conn, &last, prefix) < 0)
            break;
        if (conn && seq <= last)
            continue;
        printf("%s\n", buf);
        fflush(stdout);
        last = seq;
    }
    pl_free(buf);
    return CTL_EXIT_OK;
}

int ctl_events(int argc, char **argv)
{
    long long after = -1;
    int follow_live = 0;
    const char *prefix = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--after") && i + 1 < argc)
            after = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--follow"))
            follow_live = 1;
        else if (!strcmp(argv[i], "--prefix") && i + 1 < argc)
            prefix = argv[++i];
        else {
            ctl_fail("unknown argument to events", "Use --after SEQ, --follow, --prefix P.");
            return CTL_EXIT_USAGE;
        }
    }
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    void *ctx = zmq_ctx_new();
    void *sub = (after < 0 || follow_live) ? subscribe(ctx, prefix) : NULL;
    PGconn *conn = after >= 0 ? ctl_connect() : NULL;
    int rc = CTL_EXIT_OK;
    if ((after >= 0 && !conn) || ((after < 0 || follow_live) && !sub))
        rc = CTL_EXIT_UNAVAILABLE;
    else if (after >= 0 && replay(conn, &after, prefix) < 0)
        rc = CTL_EXIT_FAIL;
    else if (sub)
        rc = follow(sub, conn, after, prefix);
    if (sub)
        zmq_close(sub);
    PQfinish(conn);
    zmq_ctx_term(ctx);
    return rc;
}
