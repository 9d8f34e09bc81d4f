/*
 * test_cfg: settings from the environment (setenv/unsetenv), endpoint and
 * address checks, --help lines and JSON config files.
 *
 * Each load case runs a one-setting table against PLAINT_TEST_X; "@DIR" and
 * "@FILE" in a case's value stand for a scratch directory and a file in it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_err.h"
#include "pl_log.h"
#include "pl_utf8.h"

#include "test_util.h"

/* A literal with its length, NULs included. */
#define BYTES(s) s, sizeof(s) - 1

#define A10 "aaaaaaaaaa"
#define VAR "PLAINT_TEST_X"
#define HINT_TCP "Use the form tcp://HOST:PORT."
#define HINT_ANY "Use tcp://HOST:PORT, ipc://PATH or inproc://NAME."
#define HINT_DURATION "Use a number and a unit: ms, s, m, h, d, w, e.g. \"90s\" or \"24h\"."

static char scratch[64];
static char scratch_file[128];

static int make_scratch(void **state)
{
    strcpy(scratch, "/tmp/plaint-test-cfg-XXXXXX");
    if (!mkdtemp(scratch))
        return -1;
    snprintf(scratch_file, sizeof scratch_file, "%s/plain.txt", scratch);
    FILE *f = fopen(scratch_file, "w");
    if (!f)
        return -1;
    return fclose(f);
}

static int remove_scratch(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const char *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", scratch, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* ---- endpoints and addresses ---- */

static void test_check_endpoint(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        int want_rc;
        const char *want_msg; /* exact, when set */
        const char *want_hint;
    } cases[] = {
        {"tcp bind any", "tcp://*:7101", 0, NULL, NULL},
        {"tcp name", "tcp://localhost:7101", 0, NULL, NULL},
        {"tcp dotted name", "tcp://intake.plaint.svc.cluster.local:7101", 0, NULL, NULL},
        {"tcp interface", "tcp://eth0:7101", 0, NULL, NULL},
        {"tcp IPv4", "tcp://127.0.0.1:7101", 0, NULL, NULL},
        {"tcp IPv6", "tcp://[::1]:7101", 0, NULL, NULL},
        {"tcp IPv6 any port", "tcp://[::]:*", 0, NULL, NULL},
        {"tcp any port", "tcp://*:*", 0, NULL, NULL},
        {"tcp port 1", "tcp://h:1", 0, NULL, NULL},
        {"tcp port 65535", "tcp://h:65535", 0, NULL, NULL},
        {"ipc", "ipc:///tmp/plaint.sock", 0, NULL, NULL},
        {"ipc abstract", "ipc://@plaint", 0, NULL, NULL},
        {"inproc", "inproc://events", 0, NULL, NULL},
        {"one slash", "tcp:/*:7101", PL_EINVAL,
         "invalid endpoint \"tcp:/*:7101\": missing \"//\" after \"tcp:\"", HINT_TCP},
        {"no slashes", "ipc:/tmp/x", PL_EINVAL,
         "invalid endpoint \"ipc:/tmp/x\": missing \"//\" after \"ipc:\"", NULL},
        {"no port", "tcp://*", PL_EINVAL,
         "invalid endpoint \"tcp://*\": missing \":PORT\" after the host", HINT_TCP},
        {"empty port", "tcp://*:", PL_EINVAL, NULL, HINT_TCP},
        {"port 0", "tcp://*:0", PL_EINVAL,
         "invalid endpoint \"tcp://*:0\": port 0 is out of range (1 to 65535)", HINT_TCP},
        {"port 65536", "tcp://*:65536", PL_EINVAL, NULL, HINT_TCP},
        {"huge port", "tcp://*:99999999999999999999", PL_EINVAL, NULL, HINT_TCP},
        {"port not a number", "tcp://*:http", PL_EINVAL,
         "invalid endpoint \"tcp://*:http\": port \"http\" is not a number", HINT_TCP},
        {"negative port", "tcp://*:-1", PL_EINVAL, NULL, HINT_TCP},
        {"no host", "tcp://:7101", PL_EINVAL, NULL, HINT_TCP},
        {"IPv6 without brackets", "tcp://::1:7101", PL_EINVAL,
         "invalid endpoint \"tcp://::1:7101\": an IPv6 address must be in brackets", NULL},
        {"IPv6 unclosed", "tcp://[::1:7101", PL_EINVAL, NULL, HINT_TCP},
        {"IPv6 no port", "tcp://[::1]", PL_EINVAL, NULL, HINT_TCP},
        {"IPv6 bad", "tcp://[zz::1]:7101", PL_EINVAL, NULL, HINT_TCP},
        {"IPv4 bad", "tcp://999.1.1.1:7101", PL_EINVAL,
         "invalid endpoint \"tcp://999.1.1.1:7101\": \"999.1.1.1\" is not a valid IPv4 address",
         HINT_TCP},
        {"space in host", "tcp://bad host:1", PL_EINVAL, NULL, HINT_TCP},
        {"trailing space", "tcp://h:1 ", PL_EINVAL, NULL, HINT_TCP},
        {"unknown transport", "udp://h:1", PL_EINVAL,
         "invalid endpoint \"udp://h:1\": unknown transport \"udp\"", HINT_ANY},
        {"upper-case transport", "TCP://h:1", PL_EINVAL, NULL, HINT_ANY},
        {"control bytes in transport", "\x1b[2J://h:1", PL_EINVAL,
         "invalid endpoint \"?[2J://h:1\": unknown transport \"?[2J\"", HINT_ANY},
        {"no transport", "localhost:7101", PL_EINVAL,
         "invalid endpoint \"localhost:7101\": missing the transport, such as \"tcp://\"",
         HINT_ANY},
        {"empty", "", PL_EINVAL, "invalid endpoint \"\": the endpoint is empty", HINT_ANY},
        {"NULL", NULL, PL_EINVAL, NULL, HINT_ANY},
        {"ipc empty path", "ipc://", PL_EINVAL, NULL, NULL},
        {"inproc empty name", "inproc://", PL_EINVAL, NULL, NULL},
        {"ipc path of 107 bytes", "ipc:///tmp/" A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 "aa", 0,
         NULL, NULL},
        {"ipc path of 108 bytes", "ipc:///tmp/" A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 "aaa",
         PL_EINVAL,
         "invalid endpoint \"ipc:///tmp/" A10 A10 A10 A10 A10 A10 A10 A10 A10 A10
         "aaa\": path is 108 bytes, limit is 107",
         NULL},
        {"list is not one endpoint", "tcp://a:1,tcp://b:2", PL_EINVAL, NULL, HINT_ANY},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pl_err_t err;
        pl_err_clear(&err);
        int rc = pl_cfg_check_endpoint(cases[i].in, &err);
        CHECK(rc == cases[i].want_rc, "%s: rc got %d, want %d (%s)\n", cases[i].label, rc,
              cases[i].want_rc, err.message);
        if (cases[i].want_msg)
            CHECK(strcmp(err.message, cases[i].want_msg) == 0,
                  "%s: message got\n  %s\nwant\n  %s\n", cases[i].label, err.message,
                  cases[i].want_msg);
        if (cases[i].want_hint)
            CHECK(strcmp(err.hint, cases[i].want_hint) == 0, "%s: hint got %s, want %s\n",
                  cases[i].label, err.hint, cases[i].want_hint);
        if (rc != 0)
            CHECK(*err.hint != '\0', "%s: no hint\n", cases[i].label);
    }
    assert_int_equal(pl_cfg_check_endpoint("tcp://h:1", NULL), 0);
    assert_int_equal(pl_cfg_check_endpoint("nope", NULL), PL_EINVAL);
    assert_int_equal(failures, 0);
}

static void test_split_hostport(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        size_t host_len;
        int want_rc;
        const char *want_host;
        int want_port;
    } cases[] = {
        {"any IPv4", "0.0.0.0:8080", 64, 0, "0.0.0.0", 8080},
        {"loopback", "127.0.0.1:1", 64, 0, "127.0.0.1", 1},
        {"name", "localhost:65535", 64, 0, "localhost", 65535},
        {"IPv6 loses brackets", "[::1]:8080", 64, 0, "::1", 8080},
        {"IPv6 any", "[::]:80", 64, 0, "::", 80},
        {"host just fits", "abc:1", 4, 0, "abc", 1},
        {"host too long", "abcd:1", 4, PL_EINVAL, NULL, 0},
        {"port only", "8080", 64, PL_EINVAL, NULL, 0},
        {"empty host", ":8080", 64, PL_EINVAL, NULL, 0},
        {"star host", "*:8080", 64, PL_EINVAL, NULL, 0},
        {"star port", "h:*", 64, PL_EINVAL, NULL, 0},
        {"port 0", "h:0", 64, PL_EINVAL, NULL, 0},
        {"port 65536", "h:65536", 64, PL_EINVAL, NULL, 0},
        {"port with sign", "h:+80", 64, PL_EINVAL, NULL, 0},
        {"IPv6 without brackets", "::1:8080", 64, PL_EINVAL, NULL, 0},
        {"scheme", "http://h:80", 64, PL_EINVAL, NULL, 0},
        {"empty", "", 64, PL_EINVAL, NULL, 0},
        {"NULL", NULL, 64, PL_EINVAL, NULL, 0},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char host[64] = "untouched";
        int port = -1;
        pl_err_t err;
        pl_err_clear(&err);
        int rc = pl_cfg_split_hostport(cases[i].in, host, cases[i].host_len, &port, &err);
        CHECK(rc == cases[i].want_rc, "%s: rc got %d, want %d (%s)\n", cases[i].label, rc,
              cases[i].want_rc, err.message);
        if (rc == 0 && cases[i].want_rc == 0) {
            CHECK(strcmp(host, cases[i].want_host) == 0, "%s: host got %s, want %s\n",
                  cases[i].label, host, cases[i].want_host);
            CHECK(port == cases[i].want_port, "%s: port got %d, want %d\n", cases[i].label, port,
                  cases[i].want_port);
        }
        if (rc != 0) {
            CHECK(port == -1, "%s: port written on failure\n", cases[i].label);
            CHECK(strncmp(err.message, "invalid address \"", 17) == 0 && *err.hint,
                  "%s: message %s hint %s\n", cases[i].label, err.message, err.hint);
        }
    }
    assert_int_equal(failures, 0);
}

/* ---- loading one setting ---- */

typedef struct load_case {
    const char *label;
    pl_cfg_kind_t kind;
    const char *defval;
    int64_t min, max;
    const char *env; /* NULL: unset */
    int want_rc;
    const char *want_str; /* text kinds, on success */
    int64_t want_num;     /* other kinds, on success */
    const char *want_msg; /* exact, when set; "@" stands for the quoted value */
    const char *want_hint;
} load_case_t;

static const load_case_t LOAD_CASES[] = {
    /* strings */
    {"string set", PL_CFG_STRING, "d", 0, 0, "abc", 0, "abc", 0, NULL, NULL},
    {"string default", PL_CFG_STRING, "d", 0, 0, NULL, 0, "d", 0, NULL, NULL},
    {"string empty default", PL_CFG_STRING, "", 0, 0, NULL, 0, "", 0, NULL, NULL},
    {"string set empty, default empty", PL_CFG_STRING, "", 0, 0, "", 0, "", 0, NULL, NULL},
    {"string set empty, default not", PL_CFG_STRING, "d", 0, 0, "", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"\": must not be empty",
     "Unset PLAINT_TEST_X to use the default, \"d\"."},
    {"required unset", PL_CFG_STRING, NULL, 0, 0, NULL, PL_ECONFIG, NULL, 0,
     "PLAINT_TEST_X is not set and has no default", "Set PLAINT_TEST_X: test setting."},
    {"required empty", PL_CFG_STRING, NULL, 0, 0, "", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"\": must not be empty", "Set PLAINT_TEST_X: test setting."},
    {"int empty, default empty", PL_CFG_INT, "", 0, 0, "", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"\": must not be empty", NULL},
    /* endpoints */
    {"endpoint", PL_CFG_ENDPOINT, "tcp://*:7101", 0, 0, "tcp://h:1", 0, "tcp://h:1", 0, NULL, NULL},
    {"endpoint default", PL_CFG_ENDPOINT, "tcp://*:7101", 0, 0, NULL, 0, "tcp://*:7101", 0, NULL,
     NULL},
    {"endpoint style guide example", PL_CFG_ENDPOINT, "tcp://*:7101", 0, 0, "tcp:/*:7101",
     PL_ECONFIG, NULL, 0, "invalid PLAINT_TEST_X \"tcp:/*:7101\": missing \"//\" after \"tcp:\"",
     HINT_TCP},
    {"endpoint list refused", PL_CFG_ENDPOINT, "tcp://*:7101", 0, 0, "tcp://a:1,tcp://b:2",
     PL_ECONFIG, NULL, 0, NULL, HINT_ANY},
    {"endpoint list allowed", PL_CFG_ENDPOINT, "tcp://*:7101", 1, 0,
     "tcp://a:1,ipc:///tmp/s,inproc://x", 0, "tcp://a:1,ipc:///tmp/s,inproc://x", 0, NULL, NULL},
    {"endpoint list names the bad one", PL_CFG_ENDPOINT, "tcp://*:7101", 1, 0, "tcp://a:1,tcp:/b:2",
     PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"tcp://a:1,tcp:/b:2\": endpoint \"tcp:/b:2\": missing \"//\" after "
     "\"tcp:\"",
     HINT_TCP},
    {"endpoint list trailing comma", PL_CFG_ENDPOINT, "tcp://*:7101", 1, 0, "tcp://a:1,",
     PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"tcp://a:1,\": endpoint \"\": the endpoint is empty", HINT_ANY},
    {"endpoint empty, default empty", PL_CFG_ENDPOINT, "", 0, 0, "", 0, "", 0, NULL, NULL},
    /* HTTP addresses */
    {"httpaddr", PL_CFG_HTTPADDR, "0.0.0.0:8080", 0, 0, "127.0.0.1:9090", 0, "127.0.0.1:9090", 0,
     NULL, NULL},
    {"httpaddr bad", PL_CFG_HTTPADDR, "0.0.0.0:8080", 0, 0, "8080", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"8080\": missing \":PORT\" after the host",
     "Use the form HOST:PORT, e.g. 0.0.0.0:8080 or [::1]:8080."},
    {"httpaddr off", PL_CFG_HTTPADDR, "", 0, 0, NULL, 0, "", 0, NULL, NULL},
    /* directories */
    {"dir", PL_CFG_DIR, "/", 0, 0, "@DIR", 0, "@DIR", 0, NULL, NULL},
    {"dir missing", PL_CFG_DIR, "/", 0, 0, "/nonexistent/plaint", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"/nonexistent/plaint\": directory does not exist",
     "Point it at an existing directory that this user can read."},
    {"dir is a file", PL_CFG_DIR, "/", 0, 0, "@FILE", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"@\": not a directory", NULL},
    /* integers */
    {"int", PL_CFG_INT, "1", 0, 0, "42", 0, NULL, 42, NULL, NULL},
    {"int default", PL_CFG_INT, "7", 0, 0, NULL, 0, NULL, 7, NULL, NULL},
    {"int negative unbounded", PL_CFG_INT, "1", 0, 0, "-3", 0, NULL, -3, NULL, NULL},
    {"int max", PL_CFG_INT, "1", 0, 0, "9223372036854775807", 0, NULL, INT64_MAX, NULL, NULL},
    {"int too large", PL_CFG_INT, "1", 0, 0, "9223372036854775808", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"9223372036854775808\": the number is too large", NULL},
    {"int junk", PL_CFG_INT, "1", 0, 0, "4x", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"4x\": not a whole number", "Use a whole number, e.g. 10."},
    {"int leading space", PL_CFG_INT, "1", 0, 0, " 4", PL_ECONFIG, NULL, 0, NULL, NULL},
    {"int plus", PL_CFG_INT, "1", 0, 0, "+4", PL_ECONFIG, NULL, 0, NULL, NULL},
    {"int minus only", PL_CFG_INT, "1", 0, 0, "-", PL_ECONFIG, NULL, 0, NULL, NULL},
    {"int fraction", PL_CFG_INT, "1", 0, 0, "1.5", PL_ECONFIG, NULL, 0, NULL, NULL},
    {"int hex", PL_CFG_INT, "1", 0, 0, "0x10", PL_ECONFIG, NULL, 0, NULL, NULL},
    {"int at min", PL_CFG_INT, "1", 1, 10, "1", 0, NULL, 1, NULL, NULL},
    {"int at max", PL_CFG_INT, "1", 1, 10, "10", 0, NULL, 10, NULL, NULL},
    {"int above max", PL_CFG_INT, "1", 1, 10, "11", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"11\": 11 is out of range (1 to 10)",
     "Use a whole number from 1 to 10."},
    {"int below min", PL_CFG_INT, "1", 1, 10, "0", PL_ECONFIG, NULL, 0, NULL, NULL},
    {"int bad default is reported", PL_CFG_INT, "100", 1, 10, NULL, PL_ECONFIG, NULL, 0, NULL,
     NULL},
    /* durations */
    {"duration", PL_CFG_DURATION, "1s", 0, 0, "90s", 0, NULL, 90000, NULL, NULL},
    {"duration default", PL_CFG_DURATION, "1h30m", 0, 0, NULL, 0, NULL, 5400000, NULL, NULL},
    {"duration unknown unit", PL_CFG_DURATION, "1s", 0, 0, "9x", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"9x\": unknown unit \"x\"", HINT_DURATION},
    {"duration missing unit", PL_CFG_DURATION, "1s", 0, 0, "30", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"30\": missing unit after \"30\"", HINT_DURATION},
    {"duration value that looks like a message", PL_CFG_DURATION, "1s", 0, 0, "1x\": 2", PL_ECONFIG,
     NULL, 0, "invalid PLAINT_TEST_X \"1x\": 2\": unknown unit \"x\"", HINT_DURATION},
    {"duration below min", PL_CFG_DURATION, "1s", 1000, 3600000, "500ms", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"500ms\": below the minimum of 1s", "Use a duration from 1s to 1h."},
    {"duration above max", PL_CFG_DURATION, "1s", 1000, 3600000, "2h", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"2h\": above the maximum of 1h", "Use a duration from 1s to 1h."},
    {"duration at max", PL_CFG_DURATION, "1s", 1000, 3600000, "60m", 0, NULL, 3600000, NULL, NULL},
    /* log levels */
    {"loglevel", PL_CFG_LOGLEVEL, "info", 0, 0, "debug", 0, NULL, PL_LOG_DEBUG, NULL, NULL},
    {"loglevel upper case", PL_CFG_LOGLEVEL, "info", 0, 0, "WARN", 0, NULL, PL_LOG_WARN, NULL,
     NULL},
    {"loglevel default", PL_CFG_LOGLEVEL, "info", 0, 0, NULL, 0, NULL, PL_LOG_INFO, NULL, NULL},
    {"loglevel unknown", PL_CFG_LOGLEVEL, "info", 0, 0, "verbose", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"verbose\": unknown log level",
     "Use one of debug, info, warn, error."},
    /* booleans */
    {"bool true", PL_CFG_BOOL, "false", 0, 0, "true", 0, NULL, 1, NULL, NULL},
    {"bool 0", PL_CFG_BOOL, "true", 0, 0, "0", 0, NULL, 0, NULL, NULL},
    {"bool YES", PL_CFG_BOOL, "false", 0, 0, "YES", 0, NULL, 1, NULL, NULL},
    {"bool off", PL_CFG_BOOL, "true", 0, 0, "off", 0, NULL, 0, NULL, NULL},
    {"bool maybe", PL_CFG_BOOL, "true", 0, 0, "maybe", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"maybe\": not a boolean", NULL},
    /* hostile values are quoted safely */
    {"control bytes masked", PL_CFG_INT, "1", 0, 0, "1\n2\x1b", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"1?2?\": not a whole number", NULL},
    {"bad UTF-8 masked", PL_CFG_INT, "1", 0, 0, "\xFF\xC3\xA9", PL_ECONFIG, NULL, 0,
     "invalid PLAINT_TEST_X \"?\xC3\xA9\": not a whole number", NULL},
};

/* Replaces @DIR and @FILE by the scratch paths. */
static const char *expand(const char *s)
{
    if (s && strcmp(s, "@DIR") == 0)
        return scratch;
    if (s && strcmp(s, "@FILE") == 0)
        return scratch_file;
    return s;
}

/* The wanted message with "@" replaced by the expanded value. */
static void want_message(const load_case_t *c, char *buf, size_t size)
{
    const char *at = strchr(c->want_msg, '@');
    if (!at)
        snprintf(buf, size, "%s", c->want_msg);
    else
        snprintf(buf, size, "%.*s%s%s", (int)(at - c->want_msg), c->want_msg, expand(c->env),
                 at + 1);
}

static void check_loaded(const load_case_t *c, const pl_cfg_setting_t *s)
{
    bool text = c->kind == PL_CFG_STRING || c->kind == PL_CFG_ENDPOINT ||
                c->kind == PL_CFG_HTTPADDR || c->kind == PL_CFG_DIR;
    if (text) {
        const char *got = *(const char **)s->target;
        const char *want = expand(c->want_str);
        CHECK(got && strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"\n", c->label,
              got ? got : "(null)", want);
    } else if (c->kind == PL_CFG_INT || c->kind == PL_CFG_DURATION) {
        int64_t got = *(int64_t *)s->target;
        CHECK(got == c->want_num, "%s: got %lld, want %lld\n", c->label, (long long)got,
              (long long)c->want_num);
    } else {
        int got = *(int *)s->target;
        CHECK(got == c->want_num, "%s: got %d, want %lld\n", c->label, got, (long long)c->want_num);
    }
}

static void check_reported(const load_case_t *c, const pl_errlist_t *errs)
{
    CHECK(errs->count == 1, "%s: %zu errors, want 1\n", c->label, errs->count);
    if (errs->count != 1)
        return;
    const pl_err_t *e = &errs->items[0];
    char want[PL_ERR_MSG_MAX];
    CHECK(e->code == PL_ECONFIG && strcmp(e->path, VAR) == 0, "%s: code %d path %s\n", c->label,
          e->code, e->path);
    CHECK(*e->hint, "%s: no hint\n", c->label);
    CHECK(pl_utf8_valid(e->message, strlen(e->message), NULL), "%s: bad UTF-8\n", c->label);
    if (c->want_msg) {
        want_message(c, want, sizeof want);
        CHECK(strcmp(e->message, want) == 0, "%s: message got\n  %s\nwant\n  %s\n", c->label,
              e->message, want);
    }
    if (c->want_hint)
        CHECK(strcmp(e->hint, c->want_hint) == 0, "%s: hint got\n  %s\nwant\n  %s\n", c->label,
              e->hint, c->want_hint);
}

static void run_load_case(const load_case_t *c)
{
    union {
        const char *str;
        int64_t num;
        int i;
    } target;
    memset(&target, 0, sizeof target);
    pl_cfg_setting_t s = {VAR, c->defval, c->kind, &target, c->min, c->max, "test setting"};
    if (c->env)
        assert_int_equal(setenv(VAR, expand(c->env), 1), 0);
    else
        assert_int_equal(unsetenv(VAR), 0);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    int rc = pl_cfg_load(&s, 1, &errs);
    CHECK(rc == c->want_rc, "%s: rc got %d, want %d (%s)\n", c->label, rc, c->want_rc,
          errs.count ? errs.items[0].message : "");
    if (rc == 0 && c->want_rc == 0)
        check_loaded(c, &s);
    if (c->want_rc != 0)
        check_reported(c, &errs);
    pl_errlist_reset(&errs);
    assert_int_equal(unsetenv(VAR), 0);
}

static void test_load_each_kind(void **state)
{
    failures = 0;
    for (size_t i = 0; i < sizeof LOAD_CASES / sizeof LOAD_CASES[0]; i++)
        run_load_case(&LOAD_CASES[i]);
    pl_cfg_free_strings();
    assert_int_equal(failures, 0);
}

/* ---- whole tables ---- */

static void test_load_reports_every_problem(void **state)
{
    const char *submit = "keep", *http = "keep";
    int64_t wait_ms = -1, workers = -1;
    int level = -1;
    const pl_cfg_setting_t table[] = {
        {"PLAINT_TEST_SUBMIT", "tcp://*:7101", PL_CFG_ENDPOINT, &submit, 0, 0, "submit"},
        {"PLAINT_TEST_WAIT", "30s", PL_CFG_DURATION, &wait_ms, 0, 0, "wait"},
        {"PLAINT_TEST_HTTP", "0.0.0.0:8080", PL_CFG_HTTPADDR, &http, 0, 0, "http"},
        {"PLAINT_TEST_LEVEL", "info", PL_CFG_LOGLEVEL, &level, 0, 0, "level"},
        {"PLAINT_TEST_WORKERS", "4", PL_CFG_INT, &workers, 1, 64, "workers"},
    };
    setenv("PLAINT_TEST_SUBMIT", "tcp:/*:7101", 1);
    setenv("PLAINT_TEST_WAIT", "9x", 1);
    unsetenv("PLAINT_TEST_HTTP");
    setenv("PLAINT_TEST_LEVEL", "loud", 1);
    setenv("PLAINT_TEST_WORKERS", "8", 1);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    assert_int_equal(pl_cfg_load(table, 5, &errs), PL_ECONFIG);
    assert_int_equal(errs.count, 3);
    assert_string_equal(
        errs.items[0].message,
        "invalid PLAINT_TEST_SUBMIT \"tcp:/*:7101\": missing \"//\" after \"tcp:\"");
    assert_string_equal(errs.items[0].hint, HINT_TCP);
    assert_string_equal(errs.items[1].message,
                        "invalid PLAINT_TEST_WAIT \"9x\": unknown unit \"x\"");
    assert_string_equal(errs.items[1].hint, HINT_DURATION);
    assert_string_equal(errs.items[2].path, "PLAINT_TEST_LEVEL");
    /* Bad settings leave their targets alone; good ones are stored. */
    assert_string_equal(submit, "keep");
    assert_int_equal(wait_ms, -1);
    assert_int_equal(level, -1);
    assert_string_equal(http, "0.0.0.0:8080");
    assert_int_equal(workers, 8);
    pl_errlist_reset(&errs);
    /* Without a list, the result still says it failed. */
    assert_int_equal(pl_cfg_load(table, 5, NULL), PL_ECONFIG);
    unsetenv("PLAINT_TEST_SUBMIT");
    unsetenv("PLAINT_TEST_WAIT");
    unsetenv("PLAINT_TEST_LEVEL");
    unsetenv("PLAINT_TEST_WORKERS");
    assert_int_equal(pl_cfg_load(table, 5, &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_string_equal(submit, "tcp://*:7101");
    assert_int_equal(wait_ms, 30000);
    assert_int_equal(level, PL_LOG_INFO);
    assert_int_equal(workers, 4);
    pl_cfg_free_strings();
    pl_cfg_free_strings(); /* twice is fine */
}

static void test_strings_are_copied(void **state)
{
    const char *value = NULL;
    const pl_cfg_setting_t s = {VAR, "d", PL_CFG_STRING, &value, 0, 0, "x"};
    setenv(VAR, "first", 1);
    assert_int_equal(pl_cfg_load(&s, 1, NULL), 0);
    setenv(VAR, "second", 1); /* may free or move the environment's copy */
    assert_string_equal(value, "first");
    unsetenv(VAR);
    pl_cfg_free_strings();
}

static void test_no_target_only_checks(void **state)
{
    const pl_cfg_setting_t s = {VAR, "tcp://*:1", PL_CFG_ENDPOINT, NULL, 0, 0, "x"};
    unsetenv(VAR);
    assert_int_equal(pl_cfg_load(&s, 1, NULL), 0);
    pl_cfg_free_strings();
}

/* ---- --help ---- */

static char *capture_help(const pl_cfg_setting_t *table, size_t n)
{
    int fds[2];
    assert_int_equal(fflush(stdout), 0);
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDOUT_FILENO);
    assert_int_equal(dup2(fds[1], STDOUT_FILENO), STDOUT_FILENO);
    close(fds[1]);
    pl_cfg_print_help(table, n); /* a few lines: far below the pipe's capacity */
    fflush(stdout);
    assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
    close(saved);
    char *buf = pl_calloc(1, 4096);
    size_t len = 0;
    for (ssize_t r; (r = read(fds[0], buf + len, 4095 - len)) > 0;)
        len += (size_t)r;
    close(fds[0]);
    return buf;
}

static void test_print_help(void **state)
{
    const pl_cfg_setting_t table[] = {
        {"PLAINT_LOG_LEVEL", "info", PL_CFG_LOGLEVEL, NULL, 0, 0, "debug, info, warn, error"},
        {"PLAINT_DATABASE_URL", "", PL_CFG_STRING, NULL, 0, 0, "PostgreSQL conninfo or URI"},
        {"PLAINT_SECRET", NULL, PL_CFG_STRING, NULL, 0, 0, NULL},
    };
    char *out = capture_help(table, 3);
    assert_string_equal(out, "PLAINT_LOG_LEVEL (default: info)  debug, info, warn, error\n"
                             "PLAINT_DATABASE_URL (default: \"\")  PostgreSQL conninfo or URI\n"
                             "PLAINT_SECRET (required)  \n");
    pl_free(out);
}

/* ---- JSON config files ---- */

static void test_read_json(void **state)
{
    static const struct {
        const char *label;
        const char *data;
        size_t len;
        bool want_ok;
        const char *want_msg; /* after the file's path */
    } cases[] = {
        {"object", BYTES("{\"a\": 1}"), true, NULL},
        {"byte order mark", BYTES("\xEF\xBB\xBF{\"a\": 1}"), true, NULL},
        {"multi-line", BYTES("{\n  \"a\": [1, 2],\n  \"b\": \"\xE6\x8A\x95\"\n}\n"), true, NULL},
        {"empty", BYTES(""), false, " near line 1, column 1: unexpected end of file"},
        {"truncated", BYTES("{\n  \"a\": 1\n"), false,
         " near line 3, column 1: unexpected end of file"},
        {"trailing garbage", BYTES("{} x"), false, " near line 1, column 4: unexpected \"x\""},
        {"missing comma", BYTES("{\n  \"a\": 1\n  \"b\": 2\n}\n"), false,
         " near line 3, column 3: unexpected \"\"\""},
        {"column counts characters", BYTES("{\"\xE6\x8A\x95\": 1 x}"), false,
         " near line 1, column 9: unexpected \"x\""},
        {"NUL byte", BYTES("{\"a\":\n 1\0}"), false, " has a NUL byte at line 2, column 3"},
        {"bad UTF-8", BYTES("{\"a\": \"\xFF\"}"), false, " is not valid UTF-8 at line 1, column 8"},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file("c.json", cases[i].data, cases[i].len);
        pl_err_t err;
        pl_err_clear(&err);
        cJSON *root = pl_cfg_read_json(scratch, "c.json", &err);
        CHECK((root != NULL) == cases[i].want_ok, "%s: got %s (%s)\n", cases[i].label,
              root ? "a tree" : "NULL", err.message);
        if (!root && cases[i].want_msg) {
            char want[PL_ERR_MSG_MAX];
            snprintf(want, sizeof want, "%s \"%s/c.json\"%s",
                     strncmp(cases[i].want_msg, " near", 5) == 0 ? "invalid JSON in config file"
                                                                 : "config file",
                     scratch, cases[i].want_msg);
            CHECK(strcmp(err.message, want) == 0, "%s: message got\n  %s\nwant\n  %s\n",
                  cases[i].label, err.message, want);
            CHECK(err.code == PL_ECONFIG && strcmp(err.path, "c.json") == 0 && *err.hint,
                  "%s: code %d path %s hint %s\n", cases[i].label, err.code, err.path, err.hint);
        }
        cJSON_Delete(root);
    }
    assert_int_equal(failures, 0);
}

static void test_read_json_file_problems(void **state)
{
    pl_err_t err;
    char want[PL_ERR_MSG_MAX];
    assert_null(pl_cfg_read_json(scratch, "missing.json", &err));
    snprintf(want, sizeof want,
             "cannot open config file \"%s/missing.json\": No such file or "
             "directory",
             scratch);
    assert_string_equal(err.message, want);
    assert_int_equal(err.code, PL_ECONFIG);
    assert_non_null(strstr(err.hint, scratch));

    assert_int_equal(mkdir(strcat(strcpy(want, scratch), "/sub.json"), 0755), 0);
    assert_null(pl_cfg_read_json(scratch, "sub.json", &err));
    assert_non_null(strstr(err.message, "is not a regular file"));

    /* Over the limit, and just under it. */
    size_t limit = 4 * 1024 * 1024;
    char *big = pl_malloc(limit + 1);
    memset(big, ' ', limit + 1);
    big[0] = '[';
    big[limit - 1] = ']';
    write_file("big.json", big, limit);
    cJSON *root = pl_cfg_read_json(scratch, "big.json", &err);
    assert_non_null(root);
    cJSON_Delete(root);
    write_file("big.json", big, limit + 1);
    assert_null(pl_cfg_read_json(scratch, "big.json", &err));
    assert_non_null(strstr(err.message, "is over the limit of 4194304 bytes"));
    pl_free(big);

    /* A NULL err is allowed. */
    assert_null(pl_cfg_read_json(scratch, "missing.json", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_endpoint),
        cmocka_unit_test(test_split_hostport),
        cmocka_unit_test(test_load_each_kind),
        cmocka_unit_test(test_load_reports_every_problem),
        cmocka_unit_test(test_strings_are_copied),
        cmocka_unit_test(test_no_target_only_checks),
        cmocka_unit_test(test_print_help),
        cmocka_unit_test(test_read_json),
        cmocka_unit_test(test_read_json_file_problems),
    };
    return cmocka_run_group_tests(tests, make_scratch, remove_scratch);
}
