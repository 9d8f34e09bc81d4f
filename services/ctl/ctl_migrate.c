/*
 * plaintctl migrate: applies the compiled-in migrations (pl_schema.h).
 * Safe to run twice or from two hosts at once (advisory lock).
 */
#include <stdio.h>

#include "ctl.h"
#include "pl_schema.h"

int ctl_migrate(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        ctl_fail("migrate takes no arguments", "Run plaintctl migrate.");
        return CTL_EXIT_USAGE;
    }
    PGconn *conn = ctl_connect();
    if (!conn)
        return CTL_EXIT_UNAVAILABLE;
    int applied = 0, version = 0;
    pl_err_t err;
    int rc = pl_schema_migrate(conn, &applied, &err);
    if (rc == 0)
        rc = pl_schema_version(conn, &version, &err);
    PQfinish(conn);
    if (rc < 0) {
        ctl_fail(err.message, err.hint);
        return CTL_EXIT_FAIL;
    }
    printf("schema is at version %d (%d migration%s applied now)\n", version, applied,
           applied == 1 ? "" : "s");
    return CTL_EXIT_OK;
}
