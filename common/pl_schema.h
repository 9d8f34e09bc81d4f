/*
 * pl_schema: the database schema version and the migrations, compiled into
 * the binaries from deploy/sql/NNNN_*.sql so that plaintctl migrate needs no
 * files at run time.
 */
#ifndef PL_SCHEMA_H
#define PL_SCHEMA_H

#include <libpq-fe.h>

#include "pl_err.h"

typedef struct pl_migration {
    int version;      /* NNNN from the file name */
    const char *name; /* file name */
    const char *sql;
} pl_migration_t;

/* The migrations in version order (generated at build time). */
extern const pl_migration_t pl_migrations[];
extern const int pl_migrations_count;
/* The schema version this build needs: the highest migration. */
int pl_schema_version_needed(void);

/* Reads the version of the database. Returns 0 and sets *version (0 for an
 * empty database), or a PL_E* code. Blocking: startup and tools only. */
int pl_schema_version(PGconn *conn, int *version, pl_err_t *err);
/* Returns 0 when the database is at pl_schema_version_needed(), else
 * PL_ESCHEMA with a message naming both versions and what to do. */
int pl_schema_check(PGconn *conn, pl_err_t *err);
/* Applies missing migrations, each in its own transaction, under an advisory
 * lock so concurrent runs are safe. *applied = number applied now. */
int pl_schema_migrate(PGconn *conn, int *applied, pl_err_t *err);

#endif
