/*
 * test_log: every line pl_log writes is one valid JSON object with the right
 * fields, whatever bytes the caller passes.
 *
 * stdout is captured by dup2()ing a pipe over it; a reader thread drains the
 * pipe so that a test may write more than the pipe holds. Lines are parsed
 * back with cJSON, and checked for valid UTF-8 and raw control characters,
 * which cJSON would let through.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_err.h"
#include "pl_log.h"
#include "pl_time.h"
#include "pl_utf8.h"

#include "test_util.h"

/* ---- capturing stdout ---- */

typedef struct capture {
    int saved_fd;
    int read_fd;
    pthread_t reader;
    char *buf;
    size_t len, cap;
} capture_t;

static void *drain(void *arg)
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
    assert_int_equal(pthread_create(&c->reader, NULL, drain, c), 0);
}

/* Restores stdout and returns everything written since capture_start; the
 * caller frees it. */
static char *capture_end(capture_t *c)
{
    fflush(stdout);
    /* Putting stdout back closes the pipe's last write end: the reader sees EOF. */
    assert_int_equal(dup2(c->saved_fd, STDOUT_FILENO), STDOUT_FILENO);
    close(c->saved_fd);
    assert_int_equal(pthread_join(c->reader, NULL), 0);
    close(c->read_fd);
    return c->buf;
}

/* Checks that text is exactly one line of valid JSON; returns the tree. */
static cJSON *parse_line(const char *label, const char *text)
{
    size_t len = strlen(text);
    CHECK(len > 0 && text[len - 1] == '\n', "%s: line does not end in a newline\n", label);
    CHECK(strchr(text, '\n') == text + len - 1, "%s: more than one line: %s\n", label, text);
    CHECK(pl_utf8_valid(text, len, NULL), "%s: line is not valid UTF-8\n", label);
    for (size_t i = 0; i + 1 < len; i++)
        CHECK((unsigned char)text[i] >= 0x20 && text[i] != 0x7F,
              "%s: raw control byte 0x%02x at %zu\n", label, (unsigned char)text[i], i);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    CHECK(root != NULL, "%s: not JSON: %s\n", label, text);
    CHECK(root == NULL || cJSON_IsObject(root), "%s: not an object\n", label);
    return root;
}

static const char *str_field(const cJSON *root, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* ---- tests ---- */

static void test_default_svc_and_level(void **state)
{
    /* Runs first: nothing has called pl_log_init yet. */
    capture_t c;
    capture_start(&c);
    pl_log_debug("hidden", NULL);
    pl_log_info("shown", NULL);
    char *out = capture_end(&c);
    failures = 0;
    cJSON *root = parse_line("default", out);
    assert_non_null(root);
    assert_string_equal(str_field(root, "svc"), "plaint");
    assert_string_equal(str_field(root, "msg"), "shown");
    cJSON_Delete(root);
    pl_free(out);
    assert_int_equal(failures, 0);
}

static void test_fields_in_order(void **state)
{
    pl_log_init("intake", PL_LOG_INFO);
    capture_t c;
    int64_t before = pl_time_now_ms();
    capture_start(&c);
    pl_log_info("case accepted", "case_id", "0190f0e4-7c3a-7000-8000-000000000001", "channel",
                "web", NULL);
    char *out = capture_end(&c);
    int64_t after = pl_time_now_ms();
    failures = 0;
    cJSON *root = parse_line("fields", out);
    assert_non_null(root);
    static const char *const want_keys[] = {"ts", "level", "svc", "msg", "case_id", "channel"};
    const cJSON *item = root->child;
    for (size_t i = 0; i < 6; i++, item = item ? item->next : NULL)
        CHECK(item && strcmp(item->string, want_keys[i]) == 0, "key %zu: got %s, want %s\n", i,
              item ? item->string : "(none)", want_keys[i]);
    CHECK(item == NULL, "extra keys after channel\n");
    assert_string_equal(str_field(root, "level"), "info");
    assert_string_equal(str_field(root, "svc"), "intake");
    assert_string_equal(str_field(root, "msg"), "case accepted");
    assert_string_equal(str_field(root, "case_id"), "0190f0e4-7c3a-7000-8000-000000000001");
    assert_string_equal(str_field(root, "channel"), "web");
    const char *ts = str_field(root, "ts");
    int64_t at = 0;
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24); /* 2026-11-25T03:52:00.123Z */
    assert_int_equal(ts[23], 'Z');
    assert_int_equal(pl_time_parse(ts, &at, "ts", NULL), 0);
    assert_true(at >= before && at <= after);
    cJSON_Delete(root);
    pl_free(out);
    assert_int_equal(failures, 0);
}

static void test_level_filtering(void **state)
{
    static const struct {
        const char *label;
        pl_log_level_t min, level;
        bool want_line;
        const char *want_name;
    } cases[] = {
        {"debug at debug", PL_LOG_DEBUG, PL_LOG_DEBUG, true, "debug"},
        {"info at debug", PL_LOG_DEBUG, PL_LOG_INFO, true, "info"},
        {"debug at info", PL_LOG_INFO, PL_LOG_DEBUG, false, NULL},
        {"warn at info", PL_LOG_INFO, PL_LOG_WARN, true, "warn"},
        {"info at warn", PL_LOG_WARN, PL_LOG_INFO, false, NULL},
        {"error at warn", PL_LOG_WARN, PL_LOG_ERROR, true, "error"},
        {"warn at error", PL_LOG_ERROR, PL_LOG_WARN, false, NULL},
        {"error at error", PL_LOG_ERROR, PL_LOG_ERROR, true, "error"},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pl_log_set_level(cases[i].min);
        bool enabled = pl_log_enabled(cases[i].level);
        CHECK(enabled == cases[i].want_line, "%s: enabled got %d, want %d\n", cases[i].label,
              enabled, cases[i].want_line);
        capture_t c;
        capture_start(&c);
        pl_log(cases[i].level, "m", NULL);
        char *out = capture_end(&c);
        CHECK((*out != '\0') == cases[i].want_line, "%s: output \"%s\"\n", cases[i].label, out);
        if (*out) {
            cJSON *root = parse_line(cases[i].label, out);
            const char *got = str_field(root, "level");
            CHECK(got && strcmp(got, cases[i].want_name) == 0, "%s: level got %s, want %s\n",
                  cases[i].label, got ? got : "(null)", cases[i].want_name);
            cJSON_Delete(root);
        }
        pl_free(out);
    }
    pl_log_set_level(PL_LOG_INFO);
    assert_int_equal(failures, 0);
}

static void test_level_parse(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        int want_rc;
        pl_log_level_t want;
    } cases[] = {
        {"debug", "debug", 0, PL_LOG_DEBUG},
        {"info", "info", 0, PL_LOG_INFO},
        {"warn", "warn", 0, PL_LOG_WARN},
        {"error", "error", 0, PL_LOG_ERROR},
        {"upper case", "INFO", 0, PL_LOG_INFO},
        {"mixed case", "Error", 0, PL_LOG_ERROR},
        {"warning is not a level", "warning", PL_EINVAL, 0},
        {"empty", "", PL_EINVAL, 0},
        {"space", " info", PL_EINVAL, 0},
        {"NULL", NULL, PL_EINVAL, 0},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pl_log_level_t got = (pl_log_level_t)99;
        int rc = pl_log_level_parse(cases[i].in, &got);
        CHECK(rc == cases[i].want_rc, "%s: rc got %d, want %d\n", cases[i].label, rc,
              cases[i].want_rc);
        if (rc == 0)
            CHECK(got == cases[i].want, "%s: got %d, want %d\n", cases[i].label, got,
                  cases[i].want);
    }
    assert_int_equal(failures, 0);
}

#define FFFD "\xEF\xBF\xBD"

static void test_hostile_strings(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        const char *want; /* what a JSON parser reads back */
    } cases[] = {
        {"plain", "abc", "abc"},
        {"empty", "", ""},
        {"double quote", "say \"hi\"", "say \"hi\""},
        {"backslash", "C:\\path\\", "C:\\path\\"},
        {"json injection", "\",\"level\":\"error", "\",\"level\":\"error"},
        {"newline and return", "a\nb\r\nc", "a\nb\r\nc"},
        {"tab, backspace, form feed", "\t\b\f", "\t\b\f"},
        {"low controls", "\x01\x02\x1b[31m\x1f", "\x01\x02\x1b[31m\x1f"},
        {"DEL", "x\x7fy", "x\x7fy"},
        {"slash", "a/b</script>", "a/b</script>"},
        {"2-byte", "caf\xC3\xA9", "caf\xC3\xA9"},
        {"chinese", "\xE6\x8A\x95\xE8\xAF\x89", "\xE6\x8A\x95\xE8\xAF\x89"},
        {"4-byte emoji", "\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},
        {"U+2028 and U+2029", "a\xE2\x80\xA8\x62\xE2\x80\xA9", "a\xE2\x80\xA8\x62\xE2\x80\xA9"},
        {"lone FF", "a\xFF\x62", "a" FFFD "b"},
        {"lone continuation", "\x80", FFFD},
        {"overlong NUL", "\xC0\x80", FFFD FFFD},
        {"surrogate", "\xED\xA0\x80", FFFD FFFD FFFD},
        {"above U+10FFFF", "\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD},
        {"truncated at end", "ok\xE2\x82", "ok" FFFD FFFD},
        {"truncated before quote", "\xE2\x82\"", FFFD FFFD "\""},
        {"truncated before ascii", "\xF0\x9F\x98\x61", FFFD FFFD FFFD "a"},
        {"bad then good", "\xFF\xC3\xA9", FFFD "\xC3\xA9"},
    };
    pl_log_init("test", PL_LOG_DEBUG);
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        capture_t c;
        capture_start(&c);
        /* The same string as msg, as a key and as a value. */
        pl_log_warn(cases[i].in, "k", cases[i].in, cases[i].in, "as key", NULL);
        char *out = capture_end(&c);
        cJSON *root = parse_line(cases[i].label, out);
        if (root) {
            const char *msg = str_field(root, "msg");
            const char *value = str_field(root, "k");
            const char *key = root->child->next->next->next->next->next->string;
            CHECK(msg && strcmp(msg, cases[i].want) == 0, "%s: msg read back differs: %s\n",
                  cases[i].label, out);
            CHECK(value && strcmp(value, cases[i].want) == 0, "%s: value read back differs: %s\n",
                  cases[i].label, out);
            CHECK(key && strcmp(key, cases[i].want) == 0, "%s: key read back differs: %s\n",
                  cases[i].label, out);
        }
        cJSON_Delete(root);
        pl_free(out);
    }
    pl_log_set_level(PL_LOG_INFO);
    assert_int_equal(failures, 0);
}

static void test_escapes_are_json(void **state)
{
    capture_t c;
    capture_start(&c);
    pl_log_info("m", "k", "\"\\\n\x01\xE2\x80\xA8", NULL);
    char *out = capture_end(&c);
    assert_non_null(strstr(out, "\"k\":\"\\\"\\\\\\n\\u0001\\u2028\"}"));
    pl_free(out);
}

static void test_null_values(void **state)
{
    capture_t c;
    capture_start(&c);
    pl_log_info(NULL, "a", NULL, "b", "2", NULL);
    char *out = capture_end(&c);
    failures = 0;
    cJSON *root = parse_line("nulls", out);
    assert_non_null(root);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "msg")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "a")));
    assert_string_equal(str_field(root, "b"), "2");
    cJSON_Delete(root);
    pl_free(out);
    assert_int_equal(failures, 0);
}

static void test_long_values_are_cut(void **state)
{
    static const struct {
        const char *label;
        const char *unit;
        size_t repeat;
        size_t want_len; /* bytes read back, the U+2026 mark included */
    } cases[] = {
        {"short stays whole", "a", 100, 100},
        {"at the limit stays whole", "a", 4096, 4096},
        {"ascii over the limit", "a", 10000, 4096 + 3},
        {"3-byte chars cut on a boundary", "\xE2\x82\xAC", 2000, 4095 + 3},
        {"controls escape to 6 bytes each", "\x01", 5000, 4096 + 3},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t ulen = strlen(cases[i].unit);
        char *in = pl_malloc(ulen * cases[i].repeat + 1);
        for (size_t j = 0; j < cases[i].repeat; j++)
            memcpy(in + j * ulen, cases[i].unit, ulen);
        in[ulen * cases[i].repeat] = '\0';
        capture_t c;
        capture_start(&c);
        pl_log_info("long", "v", in, NULL);
        char *out = capture_end(&c);
        cJSON *root = parse_line(cases[i].label, out);
        const char *v = str_field(root, "v");
        size_t got = v ? strlen(v) : 0;
        CHECK(got == cases[i].want_len, "%s: got %zu bytes, want %zu\n", cases[i].label, got,
              cases[i].want_len);
        CHECK(v && pl_utf8_valid(v, got, NULL), "%s: not valid UTF-8\n", cases[i].label);
        cJSON_Delete(root);
        pl_free(out);
        pl_free(in);
    }
    assert_int_equal(failures, 0);
}

static void test_log_int(void **state)
{
    static const struct {
        const char *label;
        long long in;
        const char *want;
    } cases[] = {
        {"zero", 0, "0"},
        {"negative", -42, "-42"},
        {"max", LLONG_MAX, "9223372036854775807"},
        {"min", LLONG_MIN, "-9223372036854775808"},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[24];
        const char *got = pl_log_int(buf, cases[i].in);
        CHECK(got == buf && strcmp(got, cases[i].want) == 0, "%s: got %s, want %s\n",
              cases[i].label, got, cases[i].want);
    }
    assert_int_equal(failures, 0);
}

#define THREADS 4
#define LINES_PER_THREAD 300

static void *log_many(void *arg)
{
    char n[24];
    /* Long enough that interleaved writes would show as broken lines. */
    static const char pad[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    for (int i = 0; i < LINES_PER_THREAD; i++)
        pl_log_info("tick", "thread", (const char *)arg, "i", pl_log_int(n, i), "pad", pad, NULL);
    return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
    static const char *const names[THREADS] = {"t0", "t1", "t2", "t3"};
    pthread_t th[THREADS];
    capture_t c;
    capture_start(&c);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, log_many, (void *)names[i]), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    char *out = capture_end(&c);
    failures = 0;
    int lines = 0;
    for (char *line = out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        char saved = nl[1];
        nl[1] = '\0';
        cJSON *root = parse_line("thread line", line);
        CHECK(root && str_field(root, "thread") && str_field(root, "pad"), "bad line: %s\n", line);
        cJSON_Delete(root);
        nl[1] = saved;
        lines++;
    }
    assert_int_equal(lines, THREADS * LINES_PER_THREAD);
    pl_free(out);
    assert_int_equal(failures, 0);
}

static void test_init_long_svc(void **state)
{
    char svc[200];
    memset(svc, 's', sizeof svc - 1);
    svc[sizeof svc - 1] = '\0';
    pl_log_init(svc, PL_LOG_INFO);
    capture_t c;
    capture_start(&c);
    pl_log_info("m", NULL);
    char *out = capture_end(&c);
    failures = 0;
    cJSON *root = parse_line("long svc", out);
    assert_non_null(root);
    assert_true(strlen(str_field(root, "svc")) < sizeof svc - 1);
    cJSON_Delete(root);
    pl_free(out);
    pl_log_init(NULL, PL_LOG_INFO);
    capture_start(&c);
    pl_log_info("m", NULL);
    out = capture_end(&c);
    root = parse_line("NULL svc", out);
    assert_non_null(root);
    assert_string_equal(str_field(root, "svc"), "plaint");
    cJSON_Delete(root);
    pl_free(out);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_svc_and_level),
        cmocka_unit_test(test_fields_in_order),
        cmocka_unit_test(test_level_filtering),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_hostile_strings),
        cmocka_unit_test(test_escapes_are_json),
        cmocka_unit_test(test_null_values),
        cmocka_unit_test(test_long_values_are_cut),
        cmocka_unit_test(test_log_int),
        cmocka_unit_test(test_threads_do_not_interleave),
        cmocka_unit_test(test_init_long_svc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
