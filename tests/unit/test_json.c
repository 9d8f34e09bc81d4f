/*
 * test_json: pl_json_parse() against well-formed and hostile frames, plus
 * paths, builders and getters. Table-driven: each case has a label, an input
 * and the error paths it must produce (exactly those, in any order).
 *
 * Trusts only pl_json.h; owns every tree and string it makes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_json.h"

#define PATHS_MAX 4

typedef struct parse_case {
    const char *label;
    const char *input;
    size_t len;                 /* 0: strlen(input) */
    char *(*make)(size_t *len); /* builds the input instead, when set */
    bool want_ok;
    const char *want_paths[PATHS_MAX]; /* NULL-terminated; "" is the frame */
    const char *want_text;             /* in the first error's message */
} parse_case_t;

/* "[[[...]]]" n deep. */
static char *nest(size_t n, size_t *len)
{
    char *s = pl_malloc(2 * n + 1);
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = '\0';
    *len = 2 * n;
    return s;
}

static char *nest_32(size_t *len)
{
    return nest(32, len);
}

static char *nest_33(size_t *len)
{
    return nest(33, len);
}

static char *nest_100000(size_t *len)
{
    return nest(100000, len);
}

/* Only opening brackets: the scan must stop it even when it never closes. */
static char *open_100000(size_t *len)
{
    size_t n = 100000;
    char *s = pl_malloc(n + 1);
    memset(s, '{', n);
    s[n] = '\0';
    *len = n;
    return s;
}

/* Brackets inside a string do not nest. */
static char *brackets_in_string(size_t *len)
{
    size_t n = 1000;
    char *s = pl_malloc(n + 3);
    s[0] = '"';
    memset(s + 1, '[', n);
    s[n + 1] = '"';
    s[n + 2] = '\0';
    *len = n + 2;
    return s;
}

static const parse_case_t parse_cases[] = {
    {"empty object", "{}", 0, NULL, true, {NULL}, NULL},
    {"empty array", "[]", 0, NULL, true, {NULL}, NULL},
    {"whitespace around", " \t\r\n{\"a\":1}\n ", 0, NULL, true, {NULL}, NULL},
    {"scalar top", "\"x\"", 0, NULL, true, {NULL}, NULL},
    {"literals", "[true,false,null]", 0, NULL, true, {NULL}, NULL},
    {"numbers", "[-0,0.5,1e3,-1.25E-2,9007199254740991,-9007199254740991,1e-400]", 0, NULL,
     true, {NULL}, NULL},
    {"chinese raw", "{\"body\":\"快递破损，要求退款\"}", 0, NULL, true, {NULL}, NULL},
    {"chinese escaped", "{\"body\":\"\\u6295\\u8bc9\"}", 0, NULL, true, {NULL}, NULL},
    {"surrogate pair", "\"\\ud83d\\ude00\"", 0, NULL, true, {NULL}, NULL},
    {"noncharacter alone", "\"\\ufdd0\"", 0, NULL, true, {NULL}, NULL},
    {"escapes", "\"a\\tb\\n\\\"\\\\\\/\"", 0, NULL, true, {NULL}, NULL},
    {"depth 32", NULL, 0, nest_32, true, {NULL}, NULL},
    {"brackets in a string", NULL, 0, brackets_in_string, true, {NULL}, NULL},
    {"same key in two objects", "[{\"a\":1},{\"a\":2}]", 0, NULL, true, {NULL}, NULL},

    {"empty", "", 0, NULL, false, {"", NULL}, "empty message"},
    {"nul byte", "{\"a\":\"x\0y\"}", 11, NULL, false, {"", NULL}, "NUL byte at byte offset 7"},
    {"invalid utf-8 top string", "\"\xff\"", 0, NULL, false, {"", NULL}, "not valid UTF-8"},
    {"invalid utf-8 member", "{\"a\":\"ok\",\"b\":\"x\xc3\"}", 0, NULL, false, {"b", NULL},
     "string is not valid UTF-8: byte 0xC3 at offset 1"},
    {"overlong utf-8", "{\"a\":\"\xc0\xaf\"}", 0, NULL, false, {"a", NULL}, "not valid UTF-8"},
    {"surrogate as utf-8", "{\"a\":\"\xed\xa0\x80\"}", 0, NULL, false, {"a", NULL},
     "not valid UTF-8"},
    {"invalid utf-8 in a key", "{\"k\xfe\":1}", 0, NULL, false, {"k\xfe", NULL},
     "member name is not valid UTF-8"},
    {"invalid utf-8 outside strings", "{\"a\":1\xff}", 0, NULL, false, {"", "", NULL},
     "syntax error at byte offset 6"},
    {"nul escape", "{\"a\":\"x\\u0000y\"}", 0, NULL, false, {"a", NULL}, "\\u0000 escape"},
    {"nul escape in a key", "{\"k\\u0000\":1}", 0, NULL, false, {"k\xEF\xB7\x90", NULL},
     "member name contains a \\u0000"},
    {"nul escape deep", "{\"d\":[0,{\"s\":\"\\u0000\"}]}", 0, NULL, false, {"d[1].s", NULL},
     NULL},
    {"lone high surrogate", "\"\\ud800\"", 0, NULL, false, {"", NULL}, "lone surrogate"},
    {"lone low surrogate", "{\"s\":\"\\udc00x\"}", 0, NULL, false, {"s", NULL},
     "lone surrogate"},
    {"high then non-low", "{\"s\":\"\\uD800\\u0041\"}", 0, NULL, false, {"s", NULL}, NULL},
    {"high then nul", "{\"s\":\"\\ud800\\u0000\"}", 0, NULL, false, {"s", "s", NULL}, NULL},
    {"depth 33", NULL, 0, nest_33, false, {"", NULL},
     "nesting depth 33 exceeds the limit of 32"},
    {"depth 100000", NULL, 0, nest_100000, false, {"", NULL},
     "nesting depth 100000 exceeds the limit of 32"},
    {"unclosed depth 100000", NULL, 0, open_100000, false, {"", NULL}, "nesting depth 100000"},
    {"1e400", "1e400", 0, NULL, false, {"", NULL}, "too large to represent"},
    {"-1e400 in array", "[1,-1e400]", 0, NULL, false, {"[1]", NULL}, NULL},
    {"huge integer", "{\"n\":123456789012345678901234567890}", 0, NULL, false, {"n", NULL},
     "out of range"},
    {"2^53 rounds", "[9007199254740993]", 0, NULL, false, {"[0]", NULL}, "out of range"},
    {"1e300", "{\"n\":1e300}", 0, NULL, false, {"n", NULL}, "out of range"},
    {"duplicate key", "{\"a\":1,\"a\":2}", 0, NULL, false, {"a", NULL}, "duplicate key \"a\""},
    {"duplicate key thrice", "{\"a\":1,\"b\":0,\"a\":2,\"a\":3}", 0, NULL, false, {"a", NULL},
     NULL},
    {"duplicate key deep", "{\"d\":{\"c\":{\"e\":1,\"x\":0,\"e\":2}}}", 0, NULL, false,
     {"d.c.e", NULL}, NULL},
    {"every problem", "{\"a\":1e400,\"b\":\"\\u0000\",\"a\":2}", 0, NULL, false,
     {"a", "b", "a", NULL}, NULL},
    {"trailing garbage", "{} x", 0, NULL, false, {"", NULL},
     "data after the JSON value at byte offset 3"},
    {"two values", "{}{}", 0, NULL, false, {"", NULL}, "after the JSON value"},
    {"not json", "complaint", 0, NULL, false, {"", NULL}, "not valid JSON"},
    {"unterminated string", "{\"a\":\"abc", 0, NULL, false, {"", NULL}, "not valid JSON"},
    {"trailing comma", "[1,]", 0, NULL, false, {"", NULL}, "not valid JSON"},
    {"leading zero", "{\"a\":01}", 0, NULL, false, {"", NULL},
     "invalid number at byte offset 5"},
    {"bare fraction", "-.5", 0, NULL, false, {"", NULL}, "invalid number"},
    {"dot without digits", "[1.]", 0, NULL, false, {"", NULL}, "invalid number"},
    {"dot before exponent", "1.e5", 0, NULL, false, {"", NULL}, "invalid number"},
    {"empty exponent", "1e", 0, NULL, false, {"", NULL}, "invalid number"},
    {"plus sign", "+1", 0, NULL, false, {"", NULL}, "not valid JSON"},
    {"hex", "0x10", 0, NULL, false, {"", NULL}, NULL},
    {"control before value", "\x01{}", 0, NULL, false, {"", NULL},
     "unexpected control character 0x01 at byte offset 0"},
    {"raw tab in string", "\"a\tb\"", 0, NULL, false, {"", NULL},
     "unescaped control character 0x09"},
    {"bad escape", "\"\\x41\"", 0, NULL, false, {"", NULL}, "not valid JSON"},
    {"short unicode escape", "\"\\u12\"", 0, NULL, false, {"", NULL}, "not valid JSON"},
};

/* Messages follow the style guide: lowercase start, no trailing period. */
static void check_style(const char *label, const pl_errlist_t *errs)
{
    for (size_t i = 0; i < errs->count; i++) {
        const char *m = errs->items[i].message;
        size_t n = strlen(m);
        if (n == 0 || isupper((unsigned char)m[0]) || m[n - 1] == '.')
            fail_msg("%s: message \"%s\" breaks the style guide", label, m);
    }
}

/* The kept paths equal want, as multisets. */
static void check_paths(const char *label, const pl_errlist_t *errs,
                        const char *const *want)
{
    size_t n = 0;
    bool used[PL_ERRLIST_MAX] = {false};
    for (; n < PATHS_MAX && want[n]; n++) {
        size_t i = 0;
        while (i < errs->count && (used[i] || strcmp(errs->items[i].path, want[n]) != 0))
            i++;
        if (i == errs->count)
            fail_msg("%s: no error at path \"%s\" (first: \"%s\": %s)", label, want[n],
                     errs->count ? errs->items[0].path : "-",
                     errs->count ? errs->items[0].message : "-");
        used[i] = true;
    }
    if (errs->count != n)
        fail_msg("%s: %zu errors, want %zu (first: \"%s\": %s)", label, errs->count, n,
                 errs->count ? errs->items[0].path : "-",
                 errs->count ? errs->items[0].message : "-");
}

static void run_parse_case(const parse_case_t *tc)
{
    size_t len = tc->len ? tc->len : (tc->input ? strlen(tc->input) : 0);
    char *made = tc->make ? tc->make(&len) : NULL;
    pl_errlist_t errs = PL_ERRLIST_INIT;
    cJSON *root = pl_json_parse(made ? made : tc->input, len, PL_JSON_DEPTH_MAX, &errs);
    if (tc->want_ok && !root)
        fail_msg("%s: refused: \"%s\": %s", tc->label, errs.items[0].path,
                 errs.items[0].message);
    if (!tc->want_ok && root)
        fail_msg("%s: accepted, want refused", tc->label);
    check_paths(tc->label, &errs, tc->want_paths);
    check_style(tc->label, &errs);
    if (tc->want_text && !strstr(errs.items[0].message, tc->want_text))
        fail_msg("%s: message \"%s\" lacks \"%s\"", tc->label, errs.items[0].message,
                 tc->want_text);
    cJSON_Delete(root);
    pl_errlist_reset(&errs);
    pl_free(made);
}

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++)
        run_parse_case(&parse_cases[i]);
}

/* The frame need not be NUL-terminated: parse a prefix of a longer buffer. */
static void test_parse_prefix(void **state)
{
    (void)state;
    static const char buf[] = "{\"a\":\"b\"}GARBAGE";
    pl_errlist_t errs = PL_ERRLIST_INIT;
    cJSON *root = pl_json_parse(buf, 9, PL_JSON_DEPTH_MAX, &errs);
    assert_non_null(root);
    assert_string_equal(pl_json_str(root, "a", NULL), "b");
    cJSON_Delete(root);
    pl_errlist_reset(&errs);
}

/* A nul escape must not truncate: the value after it is still parsed. */
static void test_parse_values(void **state)
{
    (void)state;
    static const char text[] = "{\"s\":\"\\u6295\\u8bc9 ok\",\"n\":-12,\"b\":true,\"e\":\"\"}";
    pl_errlist_t errs = PL_ERRLIST_INIT;
    cJSON *root = pl_json_parse(text, strlen(text), PL_JSON_DEPTH_MAX, &errs);
    assert_non_null(root);
    assert_string_equal(pl_json_str(root, "s", NULL), "投诉 ok");
    assert_int_equal(pl_json_int(root, "n", 0), -12);
    assert_true(pl_json_bool(root, "b", false));
    assert_string_equal(pl_json_str(root, "e", "x"), "");
    cJSON_Delete(root);
    pl_errlist_reset(&errs);
}

/* Errors are appended: earlier entries of the caller's list stay. */
static void test_parse_appends(void **state)
{
    (void)state;
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_errlist_add(&errs, PL_EINVAL, "x", "earlier");
    assert_null(pl_json_parse("[1,]", 4, PL_JSON_DEPTH_MAX, &errs));
    assert_int_equal(errs.count, 2);
    assert_string_equal(errs.items[0].message, "earlier");
    pl_errlist_reset(&errs);
}

/* 100000 duplicate-free keys must not take quadratic time (or fail). */
static void test_parse_many_keys(void **state)
{
    (void)state;
    size_t n = 100000, len = 0;
    char *s = pl_malloc(n * 16 + 2);
    s[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, "%s\"k%zu\":1", i ? "," : "", i);
    s[len++] = '}';
    pl_errlist_t errs = PL_ERRLIST_INIT;
    cJSON *root = pl_json_parse(s, len, PL_JSON_DEPTH_MAX, &errs);
    assert_non_null(root);
    cJSON_Delete(root);
    pl_errlist_reset(&errs);
    pl_free(s);
}

typedef struct path_case {
    const char *label;
    const char *parent;
    const char *name; /* NULL: index */
    int index;
    const char *want;
} path_case_t;

static void test_paths(void **state)
{
    (void)state;
    static const path_case_t cases[] = {
        {"top member", "", "data", 0, "data"},
        {"null parent", NULL, "data", 0, "data"},
        {"nested member", "data.customer", "email", 0, "data.customer.email"},
        {"index", "data.attachments", NULL, 3, "data.attachments[3]"},
        {"member of index", "data.attachments[3]", "url", 0, "data.attachments[3].url"},
        {"top index", "", NULL, 0, "[0]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[PL_ERR_PATH_MAX];
        const path_case_t *tc = &cases[i];
        const char *got = tc->name ? pl_json_path(buf, sizeof buf, tc->parent, tc->name)
                                   : pl_json_path_index(buf, sizeof buf, tc->parent, tc->index);
        if (strcmp(got, tc->want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", tc->label, got, tc->want);
    }
}

static void test_type_names(void **state)
{
    (void)state;
    cJSON *arr = cJSON_Parse("[\"s\",1,{},[],true,null]");
    static const char *const want[] = {"string", "number", "object", "array", "boolean", "null"};
    int i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++)
        assert_string_equal(pl_json_type_name(c), want[i]);
    assert_string_equal(pl_json_type_name(NULL), "nothing");
    cJSON_Delete(arr);
}

static void test_builders(void **state)
{
    (void)state;
    cJSON *obj = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(obj, "s", "投诉");
    pl_json_add_str(obj, "absent", NULL);
    pl_json_add_num(obj, "n", 42);
    pl_json_add(obj, "null", NULL);
    pl_json_add(obj, "copy", pl_json_dup(cJSON_GetObjectItem(obj, "s")));
    pl_json_add(obj, "dup_null", pl_json_dup(NULL));
    char *text = pl_json_print(obj);
    assert_string_equal(text, "{\"s\":\"投诉\",\"absent\":null,\"n\":42,\"null\":null,"
                              "\"copy\":\"投诉\",\"dup_null\":null}");
    pl_free(text);
    text = pl_json_print(NULL);
    assert_string_equal(text, "null");
    pl_free(text);
    cJSON_Delete(obj);
}

typedef struct int_case {
    const char *label;
    const char *json;
    int64_t want;
} int_case_t;

static void test_getters(void **state)
{
    (void)state;
    static const int_case_t cases[] = {
        {"integer", "{\"n\":7}", 7},
        {"negative", "{\"n\":-7}", -7},
        {"fraction", "{\"n\":1.5}", -1},
        {"string", "{\"n\":\"7\"}", -1},
        {"missing", "{}", -1},
        {"2^63", "{\"n\":9223372036854775808}", -1},
        {"-2^63", "{\"n\":-9223372036854775808}", INT64_MIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *obj = cJSON_Parse(cases[i].json);
        int64_t got = pl_json_int(obj, "n", -1);
        if (got != cases[i].want)
            fail_msg("%s: got %lld, want %lld", cases[i].label, (long long)got,
                     (long long)cases[i].want);
        cJSON_Delete(obj);
    }
    cJSON *obj = cJSON_Parse("{\"s\":1,\"b\":\"true\"}");
    assert_string_equal(pl_json_str(obj, "s", "fb"), "fb");
    assert_true(pl_json_bool(obj, "b", true));
    assert_false(pl_json_bool(NULL, "b", false));
    cJSON_Delete(obj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),  cmocka_unit_test(test_parse_prefix),
        cmocka_unit_test(test_parse_values), cmocka_unit_test(test_parse_appends),
        cmocka_unit_test(test_parse_many_keys), cmocka_unit_test(test_paths),
        cmocka_unit_test(test_type_names),   cmocka_unit_test(test_builders),
        cmocka_unit_test(test_getters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
