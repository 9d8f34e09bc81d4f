/*
 * plaintctl parked / unpark: the cases a stage gave up on, and putting one
 * back in its stage's queue once the cause is fixed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pl_uuid.h"

static const char SQL_PARKED[] =
    "SELECT case_id, case_no, state, stage_attempts,"
    " to_char(parked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), parked_reason"
    " FROM cases WHERE parked_at IS NOT NULL ORDER BY parked_at";
static const char SQL_UNPARK_ID[] = "SELECT plaint_stage_unpark($1::uuid, $2)";
static const char SQL_UNPARK_NO[] =
    "SELECT plaint_stage_unpark(case_id, $2) FROM cases WHERE case_no = $1";

int ctl_parked(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        ctl_fail("parked takes no arguments", "Run plaintctl parked.");
        return CTL_EXIT_USAGE;
    }
    PGconn *conn = ctl_connect();
    if (!conn)
        return CTL_EXIT_UNAVAILABLE;
    PGresult *res = PQexec(conn, SQL_PARKED);
    int rc = CTL_EXIT_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_fail(PQresultErrorMessage(res), "Is the schema migrated (plaintctl migrate)?");
        rc = CTL_EXIT_FAIL;
    } else {
        printf("%-36s  %-18s  %-10s  %8s  %-20s  %s\n", "case_id", "case_no", "state",
               "attempts", "parked_at", "reason");
        for (int r = 0; r < PQntuples(res); r++)
            printf("%-36s  %-18s  %-10s  %8s  %-20s  %s\n", PQgetvalue(res, r, 0),
                   PQgetvalue(res, r, 1), PQgetvalue(res, r, 2), PQgetvalue(res, r, 3),
                   PQgetvalue(res, r, 4), PQgetvalue(res, r, 5));
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

int ctl_unpark(int argc, char **argv)
{
    if (argc != 2) {
        ctl_fail("unpark needs one case_id or case_no", "Run plaintctl parked to list them.");
        return CTL_EXIT_USAGE;
    }
    PGconn *conn = ctl_connect();
    if (!conn)
        return CTL_EXIT_UNAVAILABLE;
    /* The operator's login names who put it back, in the case.unparked event. */
    const char *user = getenv("USER");
    char actor[160];
    snprintf(actor, sizeof actor, "plaintctl:%s", user && *user ? user : "operator");
    const char *params[2] = {argv[1], actor};
    const char *sql = pl_uuid_valid(argv[1]) ? SQL_UNPARK_ID : SQL_UNPARK_NO;
    PGresult *res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    int rc = CTL_EXIT_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_fail(PQresultErrorMessage(res), NULL);
        rc = CTL_EXIT_FAIL;
    } else if (PQntuples(res) == 0) {
        fprintf(stderr, "plaintctl: no case \"%s\"\n", argv[1]);
        rc = CTL_EXIT_FAIL;
    } else if (PQgetvalue(res, 0, 0)[0] != 't') {
        fprintf(stderr, "plaintctl: case \"%s\" is not parked\n", argv[1]);
        rc = CTL_EXIT_FAIL;
    } else
        printf("case %s is back in its stage's queue\n", argv[1]);
    PQclear(res);
    PQfinish(conn);
    return rc;
}
