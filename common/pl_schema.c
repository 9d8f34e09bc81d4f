/*
 * pl_schema: schema version check and migrations (see pl_schema.h).
 *
 * Trusts the migrations compiled in; trusts nothing about the database's
 * state. Blocking libpq calls: used only by startup code and plaintctl.
 */
#include "pl_schema.h"

#include <stdio.h>
#include <stdlib.h>

#include "pl_db.h"
#include "pl_log.h"

/* Session-level lock held for a whole migrate run: a second plaintctl migrate
 * (another host, same database) waits, then finds nothing left to do. */
static const char SQL_LOCK[] = "SELECT pg_advisory_lock(7102, 0)";
static const char SQL_UNLOCK[] = "SELECT pg_advisory_unlock(7102, 0)";
static const char SQL_VERSION_TABLE[] =
    "CREATE TABLE IF NOT EXISTS plaint_schema ("
    " version int PRIMARY KEY, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";
/* Two statements: PostgreSQL resolves every table a statement names, even in
 * a CASE branch not taken, so one statement fails on an empty database. */
static const char SQL_HAS_TABLE[] = "SELECT to_regclass('plaint_schema') IS NOT NULL";
static const char SQL_VERSION[] = "SELECT coalesce(max(version), 0) FROM plaint_schema";
static const char SQL_RECORD[] = "INSERT INTO plaint_schema (version, name) VALUES ($1, $2)";

int pl_schema_version_needed(void)
{
    return pl_migrations_count;
}

static int exec_simple(PGconn *conn, const char *sql, pl_err_t *err)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = pl_db_result_error(conn, res, err);
    PQclear(res);
    return rc;
}

/* Runs a one-value query; returns 0 with the value's text in buf, or a PL_E* code. */
static int query_value(PGconn *conn, const char *sql, char *buf, size_t size, pl_err_t *err)
{
    PGresult *res = PQexec(conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        rc = pl_db_result_error(conn, res, err);
    else
        snprintf(buf, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

int pl_schema_version(PGconn *conn, int *version, pl_err_t *err)
{
    char value[32];
    *version = 0;
    int rc = query_value(conn, SQL_HAS_TABLE, value, sizeof value, err);
    if (rc < 0 || value[0] != 't')
        return rc;
    rc = query_value(conn, SQL_VERSION, value, sizeof value, err);
    if (rc == 0)
        *version = atoi(value);
    return rc;
}

int pl_schema_check(PGconn *conn, pl_err_t *err)
{
    int have = 0, need = pl_schema_version_needed();
    int rc = pl_schema_version(conn, &have, err);
    if (rc < 0)
        return rc;
    if (have < need) {
        pl_err_set(err, PL_ESCHEMA, "", "database schema is version %d, this build needs version %d",
                   have, need);
        return pl_err_hint(err, "Run `plaintctl migrate` against the same database, then start "
                                "the daemon again.");
    }
    if (have > need) {
        pl_err_set(err, PL_ESCHEMA, "",
                   "database schema is version %d, newer than version %d that this build needs",
                   have, need);
        return pl_err_hint(err, "Run a Plaint release that knows schema version %d; never "
                                "downgrade the schema.", have);
    }
    return 0;
}

static int apply_one(PGconn *conn, const pl_migration_t *m, pl_err_t *err)
{
    int rc = exec_simple(conn, "BEGIN", err);
    if (rc < 0)
        return rc;
    rc = exec_simple(conn, m->sql, err);
    if (rc == 0) {
        char version[16];
        snprintf(version, sizeof version, "%d", m->version);
        const char *params[2] = {version, m->name};
        PGresult *res = PQexecParams(conn, SQL_RECORD, 2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = pl_db_result_error(conn, res, err);
        PQclear(res);
    }
    if (rc < 0) {
        pl_err_t ignored;
        /* The migration's own error is what the operator needs; a failed
         * ROLLBACK on a broken connection adds nothing. */
        (void)exec_simple(conn, "ROLLBACK", &ignored);
        char msg[PL_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->message);
        pl_err_set(err, PL_ESCHEMA, "", "migration %s failed: %s", m->name, msg);
        return pl_err_hint(err, "Nothing of this migration was applied. Fix the cause and run "
                                "`plaintctl migrate` again.");
    }
    return exec_simple(conn, "COMMIT", err);
}

static int migrate_locked(PGconn *conn, int *applied, pl_err_t *err)
{
    int rc = exec_simple(conn, SQL_VERSION_TABLE, err);
    int have = 0;
    if (rc == 0)
        rc = pl_schema_version(conn, &have, err);
    if (rc < 0)
        return rc;
    if (have > pl_schema_version_needed())
        return pl_schema_check(conn, err);
    for (int i = 0; i < pl_migrations_count; i++) {
        const pl_migration_t *m = &pl_migrations[i];
        if (m->version <= have)
            continue;
        rc = apply_one(conn, m, err);
        if (rc < 0)
            return rc;
        (*applied)++;
        char v[16];
        snprintf(v, sizeof v, "%d", m->version);
        pl_log_info("migration applied", "version", v, "name", m->name, NULL);
    }
    return 0;
}

int pl_schema_migrate(PGconn *conn, int *applied, pl_err_t *err)
{
    *applied = 0;
    /* "already exists, skipping" notices are noise for an operator. */
    int rc = exec_simple(conn, "SET client_min_messages = warning", err);
    if (rc == 0)
        rc = exec_simple(conn, SQL_LOCK, err);
    if (rc < 0)
        return rc;
    rc = migrate_locked(conn, applied, err);
    pl_err_t ignored;
    /* Closing the session releases the lock too; unlocking early only lets a
     * waiting run proceed sooner. */
    (void)exec_simple(conn, SQL_UNLOCK, &ignored);
    return rc;
}
