/*
 * plaintctl case: one case as JSON, with its timeline of events, straight
 * from PostgreSQL. Shows contact data: it is an operator's tool.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "pl_uuid.h"

/* %s: by id or by number, so either lookup uses its index. */
static const char SQL_CASE[] =
    "SELECT jsonb_pretty(to_jsonb(c) - 'submission' || jsonb_build_object('timeline',"
    "  coalesce((SELECT jsonb_agg(plaint_event_envelope(e)::jsonb ORDER BY e.pending_id)"
    "            FROM events e WHERE e.case_id = c.case_id), '[]'::jsonb)))"
    " FROM cases c WHERE %s";

int ctl_case(int argc, char **argv)
{
    if (argc != 2) {
        ctl_fail("case needs one case_id or case_no", "Run plaintctl case C-20261125-000001.");
        return CTL_EXIT_USAGE;
    }
    char id[64];
    snprintf(id, sizeof id, "%s", argv[1]);
    if (pl_uuid_valid(id))
        for (char *p = id; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'F' ? *p + 32 : *p);
    PGconn *conn = ctl_connect();
    if (!conn)
        return CTL_EXIT_UNAVAILABLE;
    const char *params[1] = {id};
    char sql[sizeof SQL_CASE + 32];
    snprintf(sql, sizeof sql, SQL_CASE, pl_uuid_valid(id) ? "c.case_id = $1::uuid" : "c.case_no = $1");
    PGresult *res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
    int rc = CTL_EXIT_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_fail(PQresultErrorMessage(res), "Is the schema migrated (plaintctl migrate)?");
        rc = CTL_EXIT_FAIL;
    } else if (PQntuples(res) == 0) {
        fprintf(stderr, "plaintctl: no case \"%s\"\n", argv[1]);
        rc = CTL_EXIT_FAIL;
    } else
        printf("%s\n", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(conn);
    return rc;
}
