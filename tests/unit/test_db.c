/*
 * test_db: pl_db against a real PostgreSQL on a real libuv loop.
 *
 * Needs PLAINT_TEST_PG_URL, a superuser URL such as
 * postgresql://postgres@127.0.0.1:55433/postgres (scripts/test.sh exports
 * it); without it every test is skipped. The group setup creates a scratch
 * database with a random name and the teardown drops it, so runs never see
 * each other's rows. Blocking libpq connections (the "other session" that
 * terminates backends, sends NOTIFY, or builds failed results) are used only
 * while the loop is not running.
 *
 * Every wait runs the loop under a guard timer (scaled by
 * PLAINT_TEST_TIMEOUT_MULTIPLIER), so a bug fails a check instead of hanging.
 * Callbacks record; the checks come after the loop returns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_db.h"
#include "pl_err.h"
#include "pl_log.h"
#include "pl_time.h"

#include "test_util.h"

static const char *admin_url;  /* PLAINT_TEST_PG_URL, NULL: skip */
static char scratch_name[64];  /* the database this run creates and drops */
static char *scratch_conninfo; /* the admin URL with dbname = scratch_name */
static char *admin_conninfo;   /* the admin URL with a connect_timeout */

#define NEED_PG()                                                                                  \
    do {                                                                                           \
        if (!admin_url)                                                                            \
            skip();                                                                                \
    } while (0)

/* ---- the scratch database ---- */

#include "test_pg.h"

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

static PGconn *connect_to(const char *conninfo)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to the test server: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PGresult *res = PQexec(conn, "SET client_min_messages = warning");
    PQclear(res);
    return conn;
}

static const char SCRATCH_SETUP[] =
    "CREATE TABLE t_unique (k text PRIMARY KEY);"
    "CREATE FUNCTION raise_state(state text) RETURNS void LANGUAGE plpgsql AS $$"
    " BEGIN RAISE EXCEPTION USING ERRCODE = state, MESSAGE = 'raised ' || state,"
    " HINT = 'hint for ' || state; END $$";

static int group_setup(void **state)
{
    admin_url = getenv("PLAINT_TEST_PG_URL");
    if (admin_url && !*admin_url)
        admin_url = NULL;
    if (!admin_url)
        return 0;
    unsigned rnd = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, &rnd, sizeof rnd) != sizeof rnd)
        rnd = (unsigned)pl_time_now_ms();
    if (fd >= 0)
        close(fd);
    snprintf(scratch_name, sizeof scratch_name, "plaint_test_db_%d_%08x", (int)getpid(), rnd);
    admin_conninfo = conninfo_with_db(admin_url, NULL);
    PGconn *admin = admin_conninfo ? connect_to(admin_conninfo) : NULL;
    if (!admin)
        return -1;
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", scratch_name);
    bool ok = exec_ok(admin, sql);
    PQfinish(admin);
    scratch_conninfo = ok ? conninfo_with_db(admin_url, scratch_name) : NULL;
    if (!scratch_conninfo)
        return -1;
    PGconn *conn = connect_to(scratch_conninfo);
    ok = conn && exec_ok(conn, SCRATCH_SETUP);
    PQfinish(conn);
    return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
    if (!admin_url)
        return 0;
    PGconn *admin = connect_to(admin_conninfo);
    bool ok = admin != NULL;
    if (admin) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", scratch_name);
        ok = exec_ok(admin, sql);
    }
    PQfinish(admin);
    pl_free(scratch_conninfo);
    pl_free(admin_conninfo);
    scratch_conninfo = admin_conninfo = NULL;
    return ok ? 0 : -1;
}

/* ---- the loop, the guard and one pl_db ---- */

typedef bool (*pred_fn)(void *arg);

#define MAX_STATES 64

typedef struct env {
    uv_loop_t loop;
    uv_timer_t guard;
    uv_prepare_t prepare;
    uv_check_t check;
    bool timed_out;
    pred_fn done;
    void *done_arg;
    pl_db_t *db;
    pl_db_state_t states[MAX_STATES]; /* every on_state, in order */
    size_t nstates;
    int exec_while_down_rc; /* pl_db_exec tried from on_state(DOWN) */
    int exec_while_down_calls;
    bool close_on_down; /* pl_db_close from on_state(DOWN) */
    struct {
        char channel[64], payload[64];
    } notes[16];
    size_t nnotes;
} env_t;

static void on_guard(uv_timer_t *t)
{
    env_t *e = t->data;
    e->timed_out = true;
    uv_stop(&e->loop);
}

static void test_done(env_t *e)
{
    if (e->done && e->done(e->done_arg))
        uv_stop(&e->loop);
}

static void on_prepare(uv_prepare_t *p)
{
    test_done(p->data);
}

static void on_check(uv_check_t *c)
{
    test_done(c->data);
}

static bool run_until(env_t *e, pred_fn done, void *arg, int64_t ms)
{
    e->done = done;
    e->done_arg = arg;
    e->timed_out = false;
    if (done && done(arg))
        return true;
    (void)uv_timer_start(&e->guard, on_guard, (uint64_t)scaled_ms(ms), 0);
    (void)uv_prepare_start(&e->prepare, on_prepare);
    (void)uv_check_start(&e->check, on_check);
    (void)uv_run(&e->loop, UV_RUN_DEFAULT);
    (void)uv_timer_stop(&e->guard);
    (void)uv_prepare_stop(&e->prepare);
    (void)uv_check_stop(&e->check);
    e->done = NULL;
    return done ? done(arg) : true;
}

static void never_cb(PGresult *res, const pl_err_t *err, void *arg)
{
    (*(int *)arg)++;
}

static void on_state(pl_db_t *db, pl_db_state_t state, void *arg)
{
    env_t *e = arg;
    if (e->nstates < MAX_STATES)
        e->states[e->nstates++] = state;
    if (state == PL_DB_DOWN) {
        static const char *const params[1] = {"1"};
        e->exec_while_down_rc = pl_db_exec(db, "seq", 1, params, never_cb,
                                           &e->exec_while_down_calls);
        if (e->close_on_down)
            pl_db_close(&e->db);
    }
}

static void on_notify(pl_db_t *db, const char *channel, const char *payload, void *arg)
{
    env_t *e = arg;
    if (e->nnotes >= NELEMS(e->notes))
        return;
    snprintf(e->notes[e->nnotes].channel, sizeof e->notes[0].channel, "%s", channel);
    snprintf(e->notes[e->nnotes].payload, sizeof e->notes[0].payload, "%s",
             payload ? payload : "(null)");
    e->nnotes++;
}

static const pl_db_stmt_t statements[] = {
    {"echo", "SELECT $1::text AS a, $2::text AS b"},
    {"seq", "SELECT $1::int"},
    {"ins", "INSERT INTO t_unique (k) VALUES ($1)"},
    {"sleep", "SELECT pg_sleep($1::float8)"},
    {"pid", "SELECT pg_backend_pid()"},
    {"raise", "SELECT raise_state($1)"},
    {"blen", "SELECT length($1::bytea), encode($1::bytea, 'hex')"},
};

static const char *const channels[] = {"plaint_events", "Mixed.Case chan", NULL};

/* Options for the scratch database; tests change what they need. */
static pl_db_opts_t opts_for(env_t *e)
{
    pl_db_opts_t o = {
        .conninfo = scratch_conninfo,
        .app_name = "plaint-test-db",
        .stmts = statements,
        .nstmts = NELEMS(statements),
        .listen = channels,
        .reconnect_max_ms = 200,
        .on_state = on_state,
        .on_notify = on_notify,
        .arg = e,
    };
    return o;
}

static void env_init(env_t *e)
{
    memset(e, 0, sizeof *e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(uv_timer_init(&e->loop, &e->guard), 0);
    assert_int_equal(uv_prepare_init(&e->loop, &e->prepare), 0);
    assert_int_equal(uv_check_init(&e->loop, &e->check), 0);
    e->guard.data = e->prepare.data = e->check.data = e;
    e->exec_while_down_rc = 1; /* not tried */
}

static void env_close(env_t *e)
{
    pl_db_close(&e->db);
    uv_close((uv_handle_t *)&e->guard, NULL);
    uv_close((uv_handle_t *)&e->prepare, NULL);
    uv_close((uv_handle_t *)&e->check, NULL);
    for (int i = 0; i < 100 && uv_run(&e->loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    assert_int_equal(uv_loop_close(&e->loop), 0);
}

static bool is_ready(void *arg)
{
    env_t *e = arg;
    return e->db && pl_db_state(e->db) == PL_DB_READY;
}

/* Opens the pl_db with o and waits until it is READY. */
static void open_ready(env_t *e, const pl_db_opts_t *o)
{
    e->db = pl_db_new(&e->loop, o);
    assert_non_null(e->db);
    if (!run_until(e, is_ready, e, 10000))
        fail_msg("pl_db did not become READY (state %d)", (int)pl_db_state(e->db));
}

/* ---- statements and their results ---- */

#define MAX_CALLS 128

typedef struct call {
    int calls;
    int code; /* 0, or err->code */
    char message[PL_ERR_MSG_MAX];
    char hint[PL_ERR_HINT_MAX];
    int ntuples;
    char v0[64], v1[64];
    bool null0, null1;
    int order; /* position among all completions */
} call_t;

typedef struct calls {
    call_t c[MAX_CALLS];
    int completed;
    int want;
    pl_db_t **close_db; /* pl_db_close from the first callback */
} calls_t;

typedef struct slot {
    calls_t *all;
    int index;
} slot_t;

static slot_t slots[MAX_CALLS];

static void on_result(PGresult *res, const pl_err_t *err, void *arg)
{
    slot_t *s = arg;
    call_t *c = &s->all->c[s->index];
    c->calls++;
    c->order = s->all->completed++;
    c->code = err ? err->code : 0;
    if (err) {
        snprintf(c->message, sizeof c->message, "%s", err->message);
        snprintf(c->hint, sizeof c->hint, "%s", err->hint);
    }
    c->ntuples = res ? PQntuples(res) : -1;
    if (res && PQntuples(res) > 0) {
        c->null0 = PQgetisnull(res, 0, 0);
        snprintf(c->v0, sizeof c->v0, "%s", PQgetvalue(res, 0, 0));
        if (PQnfields(res) > 1) {
            c->null1 = PQgetisnull(res, 0, 1);
            snprintf(c->v1, sizeof c->v1, "%s", PQgetvalue(res, 0, 1));
        }
    }
    if ((res == NULL) != (err != NULL))
        c->code = 999; /* exactly one of res and err must be set */
    if (s->all->close_db && *s->all->close_db) {
        pl_db_close(s->all->close_db);
    }
}

static bool calls_done(void *arg)
{
    calls_t *all = arg;
    return all->completed >= all->want;
}

static int exec_at(env_t *e, calls_t *all, int i, const char *stmt, int n,
                   const char *const *params)
{
    slots[i].all = all;
    slots[i].index = i;
    return pl_db_exec(e->db, stmt, n, params, on_result, &slots[i]);
}

static void test_ready_and_params(void **state)
{
    NEED_PG();
    static const struct {
        const char *label;
        const char *a, *b; /* NULL: SQL NULL */
    } cases[] = {
        {"two values", "x", "y"},
        {"first NULL", NULL, "y"},
        {"both NULL", NULL, NULL},
        {"empty string is not NULL", "", "y"},
        {"quotes and backslashes", "it's", "a\\b\"c"},
        {"SQL in a parameter stays data", "'); DROP TABLE t_unique; --", "z"},
        {"UTF-8", "caf\xC3\xA9", "\xE6\x8A\x95"},
    };
    env_t e;
    env_init(&e);
    pl_db_opts_t o = opts_for(&e);
    e.db = pl_db_new(&e.loop, &o);
    CHECK(pl_db_state(e.db) == PL_DB_CONNECTING, "state at start %d, want CONNECTING\n",
          (int)pl_db_state(e.db));
    CHECK(!pl_db_ready(e.db), "ready before connecting\n");
    bool ok = run_until(&e, is_ready, &e, 10000);
    assert_true(ok);
    CHECK(pl_db_ready(e.db), "pl_db_ready is false when READY\n");
    /* The first CONNECTING is reported from pl_db_new, before any callback
     * could know the db; READY must be the last state seen. */
    CHECK(e.nstates >= 1 && e.states[e.nstates - 1] == PL_DB_READY, "last state %d\n",
          e.nstates ? (int)e.states[e.nstates - 1] : -1);
    for (size_t i = 0; i < e.nstates; i++)
        CHECK(e.states[i] != PL_DB_DOWN, "went DOWN while connecting\n");

    static calls_t all;
    memset(&all, 0, sizeof all);
    all.want = (int)NELEMS(cases);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        const char *params[2] = {cases[i].a, cases[i].b};
        CHECK(exec_at(&e, &all, (int)i, "echo", 2, params) == 0, "%s: exec failed\n",
              cases[i].label);
    }
    ok = run_until(&e, calls_done, &all, 5000);
    (void)run_until(&e, NULL, NULL, 50); /* a second call would show now */
    CHECK(ok, "only %d of %d statements completed\n", all.completed, all.want);
    for (size_t i = 0; i < NELEMS(cases); i++) {
        const call_t *c = &all.c[i];
        CHECK(c->calls == 1, "%s: callback ran %d times\n", cases[i].label, c->calls);
        CHECK(c->code == 0, "%s: error %d %s\n", cases[i].label, c->code, c->message);
        CHECK(c->ntuples == 1, "%s: %d rows\n", cases[i].label, c->ntuples);
        CHECK(c->null0 == (cases[i].a == NULL), "%s: first NULL is %d\n", cases[i].label,
              c->null0);
        CHECK(c->null1 == (cases[i].b == NULL), "%s: second NULL is %d\n", cases[i].label,
              c->null1);
        CHECK(!cases[i].a || strcmp(c->v0, cases[i].a) == 0, "%s: got \"%s\"\n", cases[i].label,
              c->v0);
        CHECK(!cases[i].b || strcmp(c->v1, cases[i].b) == 0, "%s: got \"%s\"\n", cases[i].label,
              c->v1);
    }
    CHECK(pl_db_pending(e.db) == 0, "%zu still pending\n", pl_db_pending(e.db));
    env_close(&e);
    assert_int_equal(failures, 0);
}

static void test_fifo_order(void **state)
{
    NEED_PG();
    env_t e;
    env_init(&e);
    pl_db_opts_t o = opts_for(&e);
    open_ready(&e, &o);
    static calls_t all;
    memset(&all, 0, sizeof all);
    all.want = 100;
    char text[100][8];
    for (int i = 0; i < 100; i++) {
        snprintf(text[i], sizeof text[i], "%d", i);
        const char *params[1] = {text[i]};
        assert_int_equal(exec_at(&e, &all, i, "seq", 1, params), 0);
    }
    /* Params are copied: scribbling over ours must not change what runs. */
    memset(text, 'z', sizeof text);
    assert_int_equal(pl_db_pending(e.db), 100);
    bool ok = run_until(&e, calls_done, &all, 10000);
    failures = 0;
    CHECK(ok, "only %d of 100 completed\n", all.completed);
    for (int i = 0; i < 100; i++) {
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        CHECK(all.c[i].calls == 1 && all.c[i].order == i && all.c[i].code == 0 &&
                  strcmp(all.c[i].v0, want) == 0,
              "statement %d: calls %d, completed as #%d, value \"%s\", code %d\n", i,
              all.c[i].calls, all.c[i].order, all.c[i].v0, all.c[i].code);
    }
    CHECK(pl_db_pending(e.db) == 0, "%zu still pending\n", pl_db_pending(e.db));
    env_close(&e);
    assert_int_equal(failures, 0);
}

static void test_statement_errors(void **state)
{
    NEED_PG();
    static const struct {
        const char *label;
        const char *stmt;
        const char *param;
        int want;
        const char *want_state;
        const char *want_hint;
    } cases[] = {
        {"first insert", "ins", "dup", 0, NULL, NULL},
        {"unique violation", "ins", "dup", PL_EINVAL, "23505", NULL},
        {"bad integer", "seq", "x", PL_EINVAL, "22P02", NULL},
        {"serialization failure", "raise", "40001", PL_EAGAIN, "40001", "hint for 40001"},
        {"deadlock", "raise", "40P01", PL_EAGAIN, "40P01", "hint for 40P01"},
        {"internal error", "raise", "XX000", PL_EINTERNAL, "XX000", "hint for XX000"},
        {"still fine after the errors", "seq", "7", 0, NULL, NULL},
    };
    env_t e;
    env_init(&e);
    pl_db_opts_t o = opts_for(&e);
    open_ready(&e, &o);
    size_t states_before = e.nstates;
    static calls_t all;
    memset(&all, 0, sizeof all);
    all.want = (int)NELEMS(cases);
    for (size_t i = 0; i < NELEMS(cases); i++) {
        const char *params[1] = {cases[i].param};
        assert_int_equal(exec_at(&e, &all, (int)i, cases[i].stmt, 1, params), 0);
    }
    bool ok = run_until(&e, calls_done, &all, 5000);
    failures = 0;
    CHECK(ok, "only %d of %d completed\n", all.completed, all.want);
    for (size_t i = 0; i < NELEMS(cases); i++) {
        const call_t *c = &all.c[i];
        CHECK(c->calls == 1, "%s: callback ran %d times\n", cases[i].label, c->calls);
        CHECK(c->code == cases[i].want, "%s: code %d (%s), want %d\n", cases[i].label, c->code,
              c->message, cases[i].want);
        CHECK(!cases[i].want_state || strstr(c->message, cases[i].want_state),
              "%s: message \"%s\" lacks %s\n", cases[i].label, c->message, cases[i].want_state);
        CHECK(!cases[i].want_hint || strcmp(c->hint, cases[i].want_hint) == 0,
              "%s: hint \"%s\", want \"%s\"\n", cases[i].label, c->hint, cases[i].want_hint);
    }
    /* A rejected statement is the caller's problem, not the connection's. */
    CHECK(e.nstates == states_before && pl_db_ready(e.db), "the connection changed state\n");
    env_close(&e);
    assert_int_equal(failures, 0);
}

static void test_exec_params_lengths(void **state)
{
    NEED_PG();
    /* pl_db_exec_params copies values by length: binary ones may hold NULs. */
    static const struct {
        const char *label;
        const char *value;
        int length;
        int format; /* 0 text, 1 binary */
        const char *want_len, *want_hex;
    } cases[] = {
        {"binary with NUL bytes", "\0\1\0\xff", 4, 1, "4", "000100ff"},
        {"binary empty", "", 0, 1, "0", ""},
        {"text by length", "abcdef", 3, 0, "3", "616263"},
        {"NULL", NULL, 0, 1, NULL, NULL},
    };
    env_t e;
    env_init(&e);
    pl_db_opts_t o = opts_for(&e);
    open_ready(&e, &o);
    static calls_t all;
    memset(&all, 0, sizeof all);
    all.want = (int)NELEMS(cases);
    for (size_t i = 0; i < NELEMS(cases); i++) {
        char copy[16];
        memcpy(copy, cases[i].value ? cases[i].value : "", (size_t)cases[i].length);
        const char *params[1] = {cases[i].value ? copy : NULL};
        int lengths[1] = {cases[i].length}, formats[1] = {cases[i].format};
        slots[i].all = &all;
        slots[i].index = (int)i;
        assert_int_equal(pl_db_exec_params(e.db, "blen", 1, params, lengths, formats, on_result,
                                           &slots[i]),
                         0);
        memset(copy, 'z', sizeof copy); /* copied at the call */
    }
    bool ok = run_until(&e, calls_done, &all, 5000);
    failures = 0;
    CHECK(ok, "only %d of %d completed\n", all.completed, all.want);
    for (size_t i = 0; i < NELEMS(cases); i++) {
        const call_t *c = &all.c[i];
        CHECK(c->calls == 1 && c->code == 0, "%s: %d calls, code %d %s\n", cases[i].label,
              c->calls, c->code, c->message);
        if (!cases[i].want_len)
            CHECK(c->null0, "%s: not NULL\n", cases[i].label);
        else
            CHECK(!c->null0 && !strcmp(c->v0, cases[i].want_len) &&
                      !strcmp(c->v1, cases[i].want_hex),
                  "%s: length %s, hex %s; want %s, %s\n", cases[i].label, c->v0, c->v1,
                  cases[i].want_len, cases[i].want_hex);
    }
    env_close(&e);
    assert_int_equal(failures, 0);
}

/* ---- a statement that does not prepare ---- */

typedef struct capture {
    int saved_fd;
    int read_fd;
    pthread_t reader;
    char *buf;
    size_t len, cap;
} capture_t;

static void *drain_pipe(void *arg)
{
    capture_t *c = arg;
    for (;;) {
        if (c->cap - c->len < 4096) {
            c->cap = c->cap * 2 + 8192;
            c->buf = pl_realloc(c->buf, c->cap);
        }
        ssize_t n = read(c->read_fd, c->buf + c->len, c->cap - c->len - 1);
        if (n <= 0)
            break;
        c->len += (size_t)n;
    }
    c->buf[c->len] = '\0';
    return NULL;
}

static void capture_start(capture_t *c)
{
    int fds[2];
    memset(c, 0, sizeof *c);
    assert_int_equal(fflush(stdout), 0);
    assert_int_equal(pipe(fds), 0);
    c->saved_fd = dup(STDOUT_FILENO);
    assert_true(c->saved_fd >= 0);
    assert_int_equal(dup2(fds[1], STDOUT_FILENO), STDOUT_FILENO);
    assert_int_equal(close(fds[1]), 0);
    c->read_fd = fds[0];
    c->cap = 8192;
    c->buf = pl_malloc(c->cap);
    assert_int_equal(pthread_create(&c->reader, NULL, drain_pipe, c), 0);
}

/* Restores stdout; returns what was written (the caller frees it). */
static char *capture_end(capture_t *c)
{
    fflush(stdout);
    assert_int_equal(dup2(c->saved_fd, STDOUT_FILENO), STDOUT_FILENO);
    close(c->saved_fd);
    assert_int_equal(pthread_join(c->reader, NULL), 0);
    close(c->read_fd);
    return c->buf;
}

static size_t count_state(const env_t *e, pl_db_state_t s)
{
    size_t n = 0;
    for (size_t i = 0; i < e->nstates; i++)
        n += e->states[i] == s;
    return n;
}

static bool third_attempt(void *arg)
{
    return count_state(arg, PL_DB_CONNECTING) >= 3;
}

static void test_bad_prepare_retries(void **state)
{
    NEED_PG();
    static const pl_db_stmt_t bad[] = {
        {"good", "SELECT 1"},
        {"bad", "SELEC 1"},
    };
    env_t e;
    env_init(&e);
    pl_db_opts_t o = opts_for(&e);
    o.stmts = bad;
    o.nstmts = NELEMS(bad);
    o.reconnect_max_ms = 100;
    capture_t cap;
    capture_start(&cap);
    e.db = pl_db_new(&e.loop, &o);
    bool ok = run_until(&e, third_attempt, &e, 5000);
    pl_db_state_t st = pl_db_state(e.db);
    char *out = capture_end(&cap);
    env_close(&e);
    failures = 0;
    CHECK(ok, "%zu connection attempts, want at least 3\n", count_state(&e, PL_DB_CONNECTING));
    CHECK(count_state(&e, PL_DB_READY) == 0 && st != PL_DB_READY, "became READY\n");
    CHECK(count_state(&e, PL_DB_DOWN) >= 2, "went DOWN %zu times\n",
          count_state(&e, PL_DB_DOWN));
    /* One JSON line: level error, the fixed message, the SQLSTATE in a field. */
    const char *at = strstr(out, "\"msg\":\"database setup failed\"");
    CHECK(at != NULL, "no \"database setup failed\" line in:\n%s\n", out);
    if (at) {
        const char *start = at, *end = strchr(at, '\n');
        while (start > out && start[-1] != '\n')
            start--;
        char line[2048];
        snprintf(line, sizeof line, "%.*s", end ? (int)(end - start) : (int)strlen(start), start);
        CHECK(line[0] == '{' && strstr(line, "\"level\":\"error\"") && strstr(line, "42601"),
              "unexpected line: %s\n", line);
    }
    pl_free(out);
    assert_int_equal(failures, 0);
}

/* ---- query timeout ---- */

static bool down_then_ready(void *arg)
{
    env_t *e = arg;
    bool down = false;
    for (size_t i = 0; i < e->nstates; i++) {
        if (e->states[i] == PL_DB_DOWN)
            down = true;
        else if (down && e->states[i] == PL_DB_READY)
            return true;
    }
    return false;
}

static void test_query_timeout(void **state)
{
    NEED_PG();
    env_t e;
    env_init(&e);
    pl_db_opts_t o = opts_for(&e);
    o.query_timeout_ms = 300;
    open_ready(&e, &o);
    e.nstates = 0;
    static calls_t all;
    memset(&all, 0, sizeof all);
    all.want = 2;
    static const char *const slow[1] = {"2"};
    static const char *const quick[1] = {"1"};
    int64_t t0 = pl_time_mono_ms();
    assert_int_equal(exec_at(&e, &all, 0, "sleep", 1, slow), 0);
    assert_int_equal(exec_at(&e, &all, 1, "seq", 1, quick), 0);
    bool ok = run_until(&e, calls_done, &all, 5000);
    int64_t took = pl_time_mono_ms() - t0;
    failures = 0;
    CHECK(ok, "the statements never completed\n");
    CHECK(all.c[0].code == PL_EUNAVAIL, "in flight: code %d, want PL_EUNAVAIL\n",
          all.c[0].code);
    CHECK(strstr(all.c[0].message, "may or may not have committed") != NULL,
          "in flight: the message does not say the outcome is unknown: %s\n",
          all.c[0].message);
    CHECK(all.c[1].code == PL_EUNAVAIL, "queued: code %d, want PL_EUNAVAIL\n", all.c[1].code);
    CHECK(took >= 250 && took <= scaled_ms(800), "failed after %lld ms, want about 300\n",
          (long long)took);
    /* Back by itself, without any call from us. */
    ok = run_until(&e, down_then_ready, &e, 5000);
    CHECK(ok, "did not come back READY (states seen: %zu)\n", e.nstates);
    memset(&all, 0, sizeof all);
    all.want = 1;
    assert_int_equal(exec_at(&e, &all, 0, "seq", 1, quick), 0);
    ok = run_until(&e, calls_done, &all, 5000);
    CHECK(ok && all.c[0].code == 0 && strcmp(all.c[0].v0, "1") == 0,
          "a statement after the timeout: code %d\n", all.c[0].code);
    env_close(&e);
    assert_int_equal(failures, 0);
}

/* ---- LISTEN/NOTIFY ---- */

static bool three_notes(void *arg)
{
    return ((env_t *)arg)->nnotes >= 3;
}

static void test_notify(void **state)
{
    NEED_PG();
    static const struct {
        const char *label;
        const char *channel;
        const char *payload;
    } want[] = {
        {"plain channel", "plaint_events", "p1"},
        {"channel that needs quoting", "Mixed.Case chan", "p2"},
        {"empty payload", "plaint_events", ""},
    };
    env_t e;
    env_init(&e);
    pl_db_opts_t o = opts_for(&e);
    open_ready(&e, &o);
    PGconn *other = connect_to(scratch_conninfo);
    assert_non_null(other);
    /* Sent first: were it delivered, it would come before the others. */
    assert_true(exec_ok(other, "SELECT pg_notify('not_listened', 'x')"));
    assert_true(exec_ok(other, "SELECT pg_notify('mixed.case chan', 'wrong case')"));
    for (size_t i = 0; i < NELEMS(want); i++) {
        const char *params[2] = {want[i].channel, want[i].payload};
        PGresult *res = PQexecParams(other, "SELECT pg_notify($1, $2)", 2, NULL, params, NULL,
                                     NULL, 0);
        assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
        PQclear(res);
    }
    PQfinish(other);
    bool ok = run_until(&e, three_notes, &e, 5000);
    (void)run_until(&e, NULL, NULL, 50);
    failures = 0;
    CHECK(ok && e.nnotes == NELEMS(want), "%zu notifications, want %zu\n", e.nnotes,
          NELEMS(want));
    for (size_t i = 0; i < NELEMS(want) && i < e.nnotes; i++)
        CHECK(strcmp(e.notes[i].channel, want[i].channel) == 0 &&
                  strcmp(e.notes[i].payload, want[i].payload) == 0,
              "%s: got %s/%s\n", want[i].label, e.notes[i].channel, e.notes[i].payload);
    env_close(&e);
    assert_int_equal(failures, 0);
}

/* ---- reconnecting after the server drops us ---- */

static bool terminate_backend(const char *pid)
{
    PGconn *admin = connect_to(admin_conninfo);
    if (!admin)
        return false;
    const char *params[1] = {pid};
    PGresult *res = PQexecParams(admin, "SELECT pg_terminate_backend($1::int)", 1, NULL, params,
                                 NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    PQfinish(admin);
    return ok;
}

static void backend_pid(env_t *e, char *pid, size_t size)
{
    static calls_t all;
    memset(&all, 0, sizeof all);
    all.want = 1;
    assert_int_equal(exec_at(e, &all, 0, "pid", 0, NULL), 0);
    assert_true(run_until(e, calls_done, &all, 5000));
    assert_int_equal(all.c[0].code, 0);
    snprintf(pid, size, "%s", all.c[0].v0);
}

static void test_reconnect_after_terminate(void **state)
{
    NEED_PG();
    static const struct {
        const char *label;
        bool busy; /* a statement is in flight when the backend goes */
    } cases[] = {
        {"idle connection", false},
        {"statement in flight", true},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        env_t e;
        env_init(&e);
        pl_db_opts_t o = opts_for(&e);
        open_ready(&e, &o);
        char pid[64], pid_after[64];
        backend_pid(&e, pid, sizeof pid);
        static calls_t all;
        memset(&all, 0, sizeof all);
        all.want = 1;
        if (cases[i].busy) {
            static const char *const secs[1] = {"5"};
            assert_int_equal(exec_at(&e, &all, 0, "sleep", 1, secs), 0);
            (void)run_until(&e, NULL, NULL, 100); /* on the server by now */
        }
        e.nstates = 0;
        CHECK(terminate_backend(pid), "%s: pg_terminate_backend(%s) failed\n", cases[i].label,
              pid);
        bool ok = run_until(&e, down_then_ready, &e, 10000);
        CHECK(ok, "%s: not DOWN then READY by itself (%zu states)\n", cases[i].label, e.nstates);
        CHECK(e.exec_while_down_rc == PL_EUNAVAIL, "%s: pl_db_exec while DOWN returned %d\n",
              cases[i].label, e.exec_while_down_rc);
        if (cases[i].busy)
            CHECK(all.c[0].calls == 1 && all.c[0].code == PL_EUNAVAIL,
                  "%s: the statement in flight: %d calls, code %d\n", cases[i].label,
                  all.c[0].calls, all.c[0].code);
        backend_pid(&e, pid_after, sizeof pid_after);
        CHECK(strcmp(pid, pid_after) != 0, "%s: same backend %s after the reconnect\n",
              cases[i].label, pid);
        (void)run_until(&e, NULL, NULL, 20);
        CHECK(e.exec_while_down_calls == 0, "%s: a refused statement's callback ran\n",
              cases[i].label);
        env_close(&e);
    }
    assert_int_equal(failures, 0);
}

static bool seen_down(void *arg)
{
    return count_state(arg, PL_DB_DOWN) > 0;
}

static void test_exec_when_not_ready(void **state)
{
    NEED_PG();
    static const struct {
        const char *label;
        bool unreachable; /* nothing listens: wait for DOWN */
    } cases[] = {
        {"still connecting", false},
        {"down, nothing listens", true},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        env_t e;
        env_init(&e);
        pl_db_opts_t o = opts_for(&e);
        if (cases[i].unreachable)
            o.conninfo = "host=127.0.0.1 port=1 dbname=none user=none";
        e.db = pl_db_new(&e.loop, &o);
        if (cases[i].unreachable)
            CHECK(run_until(&e, seen_down, &e, 5000), "%s: never DOWN\n", cases[i].label);
        int calls = 0;
        static const char *const params[1] = {"1"};
        int rc = pl_db_exec(e.db, "seq", 1, params, never_cb, &calls);
        CHECK(rc == PL_EUNAVAIL, "%s: rc %d, want PL_EUNAVAIL\n", cases[i].label, rc);
        CHECK(pl_db_pending(e.db) == 0, "%s: %zu pending\n", cases[i].label,
              pl_db_pending(e.db));
        (void)run_until(&e, NULL, NULL, 100);
        env_close(&e);
        CHECK(calls == 0, "%s: the callback ran %d times\n", cases[i].label, calls);
    }
    assert_int_equal(failures, 0);
}

/* ---- closing ---- */

static void test_close_cancels_queued(void **state)
{
    NEED_PG();
    static const struct {
        const char *label;
        bool from_callback; /* the first statement's callback closes */
    } cases[] = {
        {"closed by the caller", false},
        {"closed from a statement's callback", true},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        env_t e;
        env_init(&e);
        pl_db_opts_t o = opts_for(&e);
        open_ready(&e, &o);
        static calls_t all;
        memset(&all, 0, sizeof all);
        all.want = 11;
        static const char *const first[1] = {"0.2"};
        static const char *const one[1] = {"1"};
        if (cases[i].from_callback) {
            all.close_db = &e.db;
            assert_int_equal(exec_at(&e, &all, 0, "seq", 1, one), 0);
        } else
            assert_int_equal(exec_at(&e, &all, 0, "sleep", 1, first), 0);
        for (int q = 1; q < 11; q++)
            assert_int_equal(exec_at(&e, &all, q, "seq", 1, one), 0);
        if (!cases[i].from_callback) {
            pl_db_close(&e.db);
            CHECK(e.db == NULL, "%s: pointer not nulled\n", cases[i].label);
            /* Synchronous: every callback has run by the time close returns. */
            CHECK(all.completed == 11, "%s: %d callbacks ran in pl_db_close\n", cases[i].label,
                  all.completed);
        } else
            CHECK(run_until(&e, calls_done, &all, 5000), "%s: only %d completed\n",
                  cases[i].label, all.completed);
        (void)run_until(&e, NULL, NULL, 50);
        for (int q = 0; q < 11; q++) {
            int want = cases[i].from_callback && q == 0 ? 0 : PL_ECANCELED;
            CHECK(all.c[q].calls == 1 && all.c[q].code == want,
                  "%s: statement %d: %d calls, code %d, want %d\n", cases[i].label, q,
                  all.c[q].calls, all.c[q].code, want);
        }
        CHECK(e.db == NULL, "%s: pointer not nulled\n", cases[i].label);
        env_close(&e); /* uv_loop_close fails if a handle was left behind */
    }

    /* Closing in the other states frees everything too (ASan). */
    env_t e;
    env_init(&e);
    pl_db_opts_t o = opts_for(&e);
    e.db = pl_db_new(&e.loop, &o);
    pl_db_close(&e.db); /* connecting */
    pl_db_close(&e.db); /* NULL-safe */
    pl_db_close(NULL);
    env_close(&e);

    env_init(&e);
    o = opts_for(&e);
    o.conninfo = "host=127.0.0.1 port=1 dbname=none user=none";
    e.db = pl_db_new(&e.loop, &o);
    CHECK(run_until(&e, seen_down, &e, 5000), "never DOWN\n");
    pl_db_close(&e.db); /* down, a reconnect timer pending */
    env_close(&e);

    /* Closing from on_state(DOWN), when the server dropped us. */
    env_init(&e);
    o = opts_for(&e);
    open_ready(&e, &o);
    char pid[64];
    backend_pid(&e, pid, sizeof pid);
    e.close_on_down = true;
    CHECK(terminate_backend(pid), "pg_terminate_backend failed\n");
    CHECK(run_until(&e, seen_down, &e, 5000), "never DOWN\n");
    CHECK(e.db == NULL, "not closed from on_state\n");
    env_close(&e);
    assert_int_equal(failures, 0);
}

/* ---- pl_db_result_error ---- */

static void test_result_error_map(void **state)
{
    NEED_PG();
    static const struct {
        const char *label;
        const char *sql;
        const char *want_state;
        int want;
        const char *want_hint;
    } cases[] = {
        {"unique violation", "INSERT INTO t_unique (k) VALUES ('m'), ('m')", "23505", PL_EINVAL,
         NULL},
        {"bad integer", "SELECT 'x'::int", "22P02", PL_EINVAL, NULL},
        {"division by zero", "SELECT 1/0", "22012", PL_EINVAL, NULL},
        {"serialization failure", "SELECT raise_state('40001')", "40001", PL_EAGAIN,
         "hint for 40001"},
        {"deadlock", "SELECT raise_state('40P01')", "40P01", PL_EAGAIN, NULL},
        {"lock not available", "SELECT raise_state('55P03')", "55P03", PL_EAGAIN, NULL},
        {"statement timeout", "SET statement_timeout = 50; SELECT pg_sleep(2)", "57014",
         PL_ETIMEOUT, NULL},
        {"query canceled (raised)", "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '57014'; END $$",
         "57014", PL_ETIMEOUT, NULL},
        {"connection failure", "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '08006'; END $$",
         "08006", PL_EUNAVAIL, NULL},
        {"admin shutdown", "SELECT raise_state('57P01')", "57P01", PL_EUNAVAIL, NULL},
        {"too many connections", "SELECT raise_state('53300')", "53300", PL_EUNAVAIL, NULL},
        {"syntax error", "SELEC 1", "42601", PL_EINTERNAL, NULL},
        {"undefined table", "SELECT * FROM no_such_table", "42P01", PL_EINTERNAL, NULL},
        {"internal error", "SELECT raise_state('XX000')", "XX000", PL_EINTERNAL, NULL},
    };
    PGconn *conn = connect_to(scratch_conninfo);
    assert_non_null(conn);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        PGresult *res = PQexec(conn, cases[i].sql);
        const char *state_got = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        CHECK(PQresultStatus(res) == PGRES_FATAL_ERROR && state_got &&
                  strcmp(state_got, cases[i].want_state) == 0,
              "%s: the statement gave %s, want %s\n", cases[i].label,
              state_got ? state_got : "no error", cases[i].want_state);
        pl_err_t err = {0};
        int rc = pl_db_result_error(conn, res, &err);
        CHECK(rc == cases[i].want && err.code == cases[i].want,
              "%s: rc %d, err.code %d, want %d\n", cases[i].label, rc, err.code, cases[i].want);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "database error %s: ", cases[i].want_state);
        CHECK(strncmp(err.message, prefix, strlen(prefix)) == 0 && !strchr(err.message, '\n'),
              "%s: message \"%s\"\n", cases[i].label, err.message);
        CHECK(!cases[i].want_hint || strcmp(err.hint, cases[i].want_hint) == 0,
              "%s: hint \"%s\"\n", cases[i].label, err.hint);
        PQclear(res);
        PQclear(PQexec(conn, "RESET statement_timeout"));
    }

    /* No result: a broken connection is unavailable, whatever else. */
    pl_err_t err = {0};
    int rc = pl_db_result_error(NULL, NULL, &err);
    CHECK(rc == PL_EUNAVAIL && strstr(err.message, "no connection"), "NULL, NULL: %d %s\n", rc,
          err.message);
    PGresult *pid = PQexec(conn, "SELECT pg_backend_pid()");
    assert_int_equal(PQresultStatus(pid), PGRES_TUPLES_OK);
    CHECK(terminate_backend(PQgetvalue(pid, 0, 0)), "pg_terminate_backend failed\n");
    PQclear(pid);
    PGresult *res = PQexec(conn, "SELECT 1");
    pl_err_clear(&err);
    rc = pl_db_result_error(conn, res, &err);
    CHECK(PQstatus(conn) == CONNECTION_BAD && rc == PL_EUNAVAIL,
          "terminated connection: status %d, rc %d (%s)\n", (int)PQstatus(conn), rc,
          err.message);
    PQclear(res);
    pl_err_clear(&err);
    rc = pl_db_result_error(conn, NULL, &err);
    CHECK(rc == PL_EUNAVAIL, "terminated connection, no result: rc %d\n", rc);
    PQfinish(conn);
    assert_int_equal(failures, 0);
}

static void test_connect_blocking(void **state)
{
    NEED_PG();
    pl_err_t err = {0};
    PGconn *conn = pl_db_connect_blocking(scratch_conninfo, "plaint-test-db", 2000, &err);
    assert_non_null(conn);
    PGresult *res = PQexec(conn, "SELECT current_setting('application_name')");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "plaint-test-db");
    PQclear(res);
    PQfinish(conn);

    capture_t cap;
    capture_start(&cap); /* its "waiting for the database" lines */
    int64_t t0 = pl_time_mono_ms();
    conn = pl_db_connect_blocking("host=127.0.0.1 port=1 dbname=none user=none connect_timeout=1",
                                  NULL, 300, &err);
    int64_t took = pl_time_mono_ms() - t0;
    pl_free(capture_end(&cap));
    assert_null(conn);
    assert_int_equal(err.code, PL_EUNAVAIL);
    assert_non_null(strstr(err.message, "cannot connect to the database"));
    assert_non_null(strstr(err.hint, "PLAINT_DATABASE_URL"));
    assert_true(took < scaled_ms(3000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_and_params),
        cmocka_unit_test(test_fifo_order),
        cmocka_unit_test(test_statement_errors),
        cmocka_unit_test(test_exec_params_lengths),
        cmocka_unit_test(test_bad_prepare_retries),
        cmocka_unit_test(test_query_timeout),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_reconnect_after_terminate),
        cmocka_unit_test(test_exec_when_not_ready),
        cmocka_unit_test(test_close_cancels_queued),
        cmocka_unit_test(test_result_error_map),
        cmocka_unit_test(test_connect_blocking),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
