/*
 * test_schema: the compiled migration table, the version check and
 * pl_schema_migrate against a real PostgreSQL.
 *
 * The table tests need nothing but the build. The database tests need
 * PLAINT_TEST_PG_URL, a superuser URL (scripts/test.sh exports it); without
 * it they are skipped. Each database test gets a fresh database with a
 * random name (cmocka setup), dropped when the test ends however it ends
 * (teardown), so every test starts from an empty schema.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_err.h"
#include "pl_schema.h"
#include "pl_time.h"

#include "test_util.h"

/* ---- the compiled table ---- */

static void test_table_is_ordered(void **state)
{
    int n = pl_migrations_count;
    assert_true(n >= 1);
    assert_int_equal(pl_schema_version_needed(), n);
    failures = 0;
    for (int i = 0; i < n; i++) {
        const pl_migration_t *m = &pl_migrations[i];
        char prefix[16];
        snprintf(prefix, sizeof prefix, "%04d_", i + 1);
        CHECK(m->version == i + 1, "entry %d: version %d, want %d\n", i, m->version, i + 1);
        CHECK(m->name && strncmp(m->name, prefix, 5) == 0, "entry %d: name %s, want %s...\n", i,
              m->name ? m->name : "(null)", prefix);
        CHECK(m->name && strlen(m->name) > 9 && !strcmp(m->name + strlen(m->name) - 4, ".sql"),
              "entry %d: name %s does not end in .sql\n", i, m->name ? m->name : "(null)");
        CHECK(m->sql && strlen(m->sql) > 0, "entry %d: no SQL\n", i);
    }
    /* The generator ends the table with a zero entry. */
    CHECK(pl_migrations[n].version == 0 && pl_migrations[n].name == NULL &&
              pl_migrations[n].sql == NULL,
          "no terminating entry after %d migrations\n", n);
    assert_int_equal(failures, 0);
}

/* deploy/sql, found from this file's path (CMake compiles by absolute path). */
static bool deploy_sql_dir(char *buf, size_t size)
{
    const char *marker = strstr(__FILE__, "/tests/unit/test_schema.c");
    if (!marker || __FILE__[0] != '/')
        return false;
    snprintf(buf, size, "%.*s/deploy/sql", (int)(marker - __FILE__), __FILE__);
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *read_whole(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = pl_malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            buf = pl_realloc(buf, cap);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static bool is_migration_name(const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < 4; i++)
        if (name[i] < '0' || name[i] > '9')
            return false;
    return len > 9 && name[4] == '_' && !strcmp(name + len - 4, ".sql");
}

static void test_table_matches_deploy_sql(void **state)
{
    char dir[1024];
    if (!deploy_sql_dir(dir, sizeof dir))
        skip(); /* built from elsewhere: the table test above still holds */
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    failures = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (!is_migration_name(de->d_name))
            continue;
        files++;
        const pl_migration_t *m = NULL;
        for (int i = 0; i < pl_migrations_count; i++)
            if (!strcmp(pl_migrations[i].name, de->d_name))
                m = &pl_migrations[i];
        CHECK(m != NULL, "%s is not compiled in: rebuild (cmake re-globs deploy/sql)\n",
              de->d_name);
        if (!m)
            continue;
        char *path = pl_sprintf("%s/%s", dir, de->d_name);
        char *text = read_whole(path);
        pl_free(path);
        CHECK(text && strcmp(text, m->sql) == 0, "%s: compiled SQL differs from the file\n",
              de->d_name);
        pl_free(text);
    }
    closedir(d);
    CHECK(files == pl_migrations_count, "%d files in %s, %d compiled in\n", files, dir,
          pl_migrations_count);
    assert_int_equal(failures, 0);
}

/* ---- fresh databases ---- */

static const char *admin_url;

typedef struct fresh {
    char name[64];
    char *conninfo; /* admin URL with dbname = name */
} fresh_t;

#include "test_pg.h"

static PGconn *connect_quiet(const char *conninfo)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

static bool admin_exec(const char *sql)
{
    char *conninfo = conninfo_with_db(admin_url, NULL); /* with a connect_timeout */
    PGconn *admin = conninfo ? connect_quiet(conninfo) : NULL;
    pl_free(conninfo);
    if (!admin)
        return false;
    PGresult *res = PQexec(admin, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(admin));
    PQclear(res);
    PQfinish(admin);
    return ok;
}

/* Per-test setup: an empty database in *state, or NULL without
 * PLAINT_TEST_PG_URL (the test then skips). The teardown drops it even when
 * the test failed half-way. */
static int fresh_create(void **state)
{
    *state = NULL;
    admin_url = getenv("PLAINT_TEST_PG_URL");
    if (!admin_url || !*admin_url)
        return 0;
    fresh_t *f = pl_calloc(1, sizeof *f);
    unsigned rnd = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, &rnd, sizeof rnd) != sizeof rnd)
        rnd = (unsigned)pl_time_now_ms();
    if (fd >= 0)
        close(fd);
    snprintf(f->name, sizeof f->name, "plaint_test_schema_%d_%08x", (int)getpid(), rnd);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", f->name);
    f->conninfo = admin_exec(sql) ? conninfo_with_db(admin_url, f->name) : NULL;
    if (!f->conninfo) {
        pl_free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int fresh_drop(void **state)
{
    fresh_t *f = *state;
    if (!f)
        return 0;
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->name);
    bool ok = admin_exec(sql);
    pl_free(f->conninfo);
    pl_free(f);
    *state = NULL;
    return ok ? 0 : -1;
}

static fresh_t *need_fresh(void **state)
{
    if (!*state)
        skip();
    return *state;
}

static bool exec_ok(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return ok;
}

static int count_rows(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    int n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return n;
}

/* ---- the check and migrate ---- */

static void test_check_fresh_database(void **state)
{
    fresh_t *f = need_fresh(state);
    PGconn *conn = connect_quiet(f->conninfo);
    assert_non_null(conn);
    int n = pl_schema_version_needed(), version = -1;
    pl_err_t err = {0};
    failures = 0;
    /* pl_schema.h: "0 for an empty database" -- no plaint_schema table yet. */
    int rc = pl_schema_version(conn, &version, &err);
    CHECK(rc == 0 && version == 0, "pl_schema_version: rc %d, version %d, want 0 and 0 (%s)\n",
          rc, version, rc ? err.message : "");
    pl_err_clear(&err);
    rc = pl_schema_check(conn, &err);
    char want0[32], wantn[32];
    snprintf(want0, sizeof want0, "version 0");
    snprintf(wantn, sizeof wantn, "version %d", n);
    CHECK(rc == PL_ESCHEMA && err.code == PL_ESCHEMA, "pl_schema_check: rc %d, code %d (%s)\n",
          rc, err.code, err.message);
    CHECK(strstr(err.message, want0) && strstr(err.message, wantn),
          "message \"%s\" does not name %s and %s\n", err.message, want0, wantn);
    CHECK(strstr(err.hint, "plaintctl migrate") != NULL, "hint \"%s\"\n", err.hint);
    /* The check only reads: the database is still empty. */
    CHECK(count_rows(conn, "SELECT count(*) FROM pg_class WHERE relname = 'plaint_schema'") == 0,
          "pl_schema_check created plaint_schema\n");
    PQfinish(conn);
    assert_int_equal(failures, 0);
}

static void test_migrate_twice(void **state)
{
    fresh_t *f = need_fresh(state);
    PGconn *conn = connect_quiet(f->conninfo);
    assert_non_null(conn);
    int n = pl_schema_version_needed();
    static const struct {
        const char *label;
        int want_applied;
    } runs[] = {
        {"first run applies all", -1 /* n */},
        {"second run applies none", 0},
        {"third run applies none", 0},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(runs); i++) {
        pl_err_t err = {0};
        int applied = -1;
        int want = runs[i].want_applied < 0 ? n : runs[i].want_applied;
        int rc = pl_schema_migrate(conn, &applied, &err);
        CHECK(rc == 0, "%s: rc %d: %s\n", runs[i].label, rc, err.message);
        CHECK(applied == want, "%s: applied %d, want %d\n", runs[i].label, applied, want);
        int version = -1;
        CHECK(pl_schema_version(conn, &version, &err) == 0 && version == n,
              "%s: version %d, want %d\n", runs[i].label, version, n);
        CHECK(pl_schema_check(conn, &err) == 0, "%s: check: %s\n", runs[i].label, err.message);
    }
    /* One row per migration, with its file name. */
    for (int i = 0; i < n; i++) {
        char version[16];
        snprintf(version, sizeof version, "%d", pl_migrations[i].version);
        const char *params[2] = {version, pl_migrations[i].name};
        PGresult *res = PQexecParams(conn,
                                     "SELECT count(*) FROM plaint_schema"
                                     " WHERE version = $1::int AND name = $2",
                                     2, NULL, params, NULL, NULL, 0);
        CHECK(PQresultStatus(res) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(res, 0, 0), "1"),
              "plaint_schema has no row for %s\n", pl_migrations[i].name);
        PQclear(res);
    }
    /* The advisory lock is released when a run ends. */
    CHECK(count_rows(conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                           " AND pid = pg_backend_pid()") == 0,
          "the migrate lock is still held\n");
    PQfinish(conn);
    assert_int_equal(failures, 0);
}

typedef struct racer {
    const char *conninfo;
    pthread_barrier_t *start;
    int rc;
    int applied;
    pl_err_t err;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    PGconn *conn = PQconnectdb(r->conninfo);
    (void)pthread_barrier_wait(r->start);
    if (PQstatus(conn) != CONNECTION_OK) {
        r->rc = pl_err_set(&r->err, PL_EUNAVAIL, "", "%s", PQerrorMessage(conn));
    } else
        r->rc = pl_schema_migrate(conn, &r->applied, &r->err);
    PQfinish(conn);
    return NULL;
}

static void test_concurrent_migrate(void **state)
{
    fresh_t *f = need_fresh(state);
    enum { RACERS = 2 };
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    racer_t r[RACERS];
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].conninfo = f->conninfo;
        r[i].start = &start;
        r[i].applied = -1;
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    int total = 0;
    failures = 0;
    for (int i = 0; i < RACERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        CHECK(r[i].rc == 0, "racer %d: rc %d: %s\n", i, r[i].rc, r[i].err.message);
        CHECK(r[i].applied == 0 || r[i].applied == pl_schema_version_needed(),
              "racer %d applied %d: a run must do all or nothing\n", i, r[i].applied);
        total += r[i].applied;
    }
    pthread_barrier_destroy(&start);
    CHECK(total == pl_schema_version_needed(), "applied %d in total, want %d\n", total,
          pl_schema_version_needed());
    PGconn *conn = connect_quiet(f->conninfo);
    assert_non_null(conn);
    pl_err_t err = {0};
    CHECK(pl_schema_check(conn, &err) == 0, "check after the race: %s\n", err.message);
    CHECK(count_rows(conn, "SELECT count(*) FROM plaint_schema") == pl_schema_version_needed(),
          "plaint_schema rows differ from the migrations\n");
    PQfinish(conn);
    assert_int_equal(failures, 0);
}

static void test_newer_database(void **state)
{
    fresh_t *f = need_fresh(state);
    PGconn *conn = connect_quiet(f->conninfo);
    assert_non_null(conn);
    int n = pl_schema_version_needed(), applied = -1;
    pl_err_t err = {0};
    assert_int_equal(pl_schema_migrate(conn, &applied, &err), 0);
    char sql[160];
    snprintf(sql, sizeof sql,
             "INSERT INTO plaint_schema (version, name) VALUES (%d, '%04d_from_the_future.sql')",
             n + 1, n + 1);
    assert_true(exec_ok(conn, sql));
    char want_have[32], want_need[32];
    snprintf(want_have, sizeof want_have, "version %d", n + 1);
    snprintf(want_need, sizeof want_need, "version %d", n);
    failures = 0;

    int rc = pl_schema_check(conn, &err);
    CHECK(rc == PL_ESCHEMA && err.code == PL_ESCHEMA, "check: rc %d\n", rc);
    CHECK(strstr(err.message, want_have) && strstr(err.message, want_need),
          "check: message \"%s\" does not name %s and %s\n", err.message, want_have, want_need);
    CHECK(err.hint[0] != '\0', "check: no hint\n");

    /* migrate refuses too, and changes nothing. */
    pl_err_clear(&err);
    applied = -1;
    rc = pl_schema_migrate(conn, &applied, &err);
    CHECK(rc == PL_ESCHEMA && applied == 0, "migrate: rc %d, applied %d\n", rc, applied);
    CHECK(strstr(err.message, want_have) && strstr(err.message, want_need),
          "migrate: message \"%s\"\n", err.message);
    int version = -1;
    CHECK(pl_schema_version(conn, &version, &err) == 0 && version == n + 1, "version %d\n",
          version);
    PQfinish(conn);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_ordered),
        cmocka_unit_test(test_table_matches_deploy_sql),
        cmocka_unit_test_setup_teardown(test_check_fresh_database, fresh_create, fresh_drop),
        cmocka_unit_test_setup_teardown(test_migrate_twice, fresh_create, fresh_drop),
        cmocka_unit_test_setup_teardown(test_concurrent_migrate, fresh_create, fresh_drop),
        cmocka_unit_test_setup_teardown(test_newer_database, fresh_create, fresh_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
