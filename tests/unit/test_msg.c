/*
 * test_msg: the envelope parser (every problem reported, the id kept for
 * correlation), the builders of messages and error replies, and the
 * enumerations. Table-driven with labels.
 *
 * Trusts pl_msg.h, and pl_json/pl_time/pl_uuid to read back what it builds;
 * owns every tree and string it makes.
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
#include "pl_msg.h"
#include "pl_time.h"
#include "pl_uuid.h"

#define PATHS_MAX 6

typedef struct env_case {
    const char *label;
    const char *input; /* ' stands for " */
    int want_rc;
    const char *want_paths[PATHS_MAX]; /* NULL-terminated */
    const char *want_id;               /* msg.id afterwards; NULL for none */
    const char *want_text;             /* in the first error's message */
} env_case_t;

#define DATA ",'data':{}}"

static const env_case_t env_cases[] = {
    {"full", "{'type':'complaint.submit','v':1,'id':'m-1','at':'2026-11-25T03:52:00Z',"
             "'source':'crm'" DATA, 0, {NULL}, "m-1", NULL},
    {"no at", "{'type':'t','v':1,'id':'m-2','source':'crm'" DATA, 0, {NULL}, "m-2", NULL},
    {"null at", "{'type':'t','v':1,'id':'m','source':'s','at':null" DATA, 0, {NULL}, "m", NULL},
    {"v 1.0", "{'type':'t','v':1.0,'id':'m','source':'s'" DATA, 0, {NULL}, "m", NULL},
    {"unknown members", "{'type':'t','v':1,'id':'m','source':'s','extra':[1]" DATA, 0, {NULL},
     "m", NULL},

    {"not json", "hello", PL_EINVAL, {"", NULL}, NULL, "not valid JSON"},
    {"array", "[]", PL_EINVAL, {"", NULL}, NULL, "must be a JSON object, got array"},
    {"string", "'x'", PL_EINVAL, {"", NULL}, NULL, "got string"},
    {"empty object", "{}", PL_EINVAL, {"type", "v", "id", "source", "data", NULL}, NULL,
     "required field \"type\" is missing"},
    {"type number", "{'type':7,'v':1,'id':'m','source':'s'" DATA, PL_EINVAL, {"type", NULL}, "m",
     "type must be a string, got number"},
    {"type empty", "{'type':'','v':1,'id':'m','source':'s'" DATA, PL_EINVAL, {"type", NULL},
     "m", NULL},
    {"v string", "{'type':'t','v':'1','id':'m','source':'s'" DATA, PL_EINVAL, {"v", NULL}, "m",
     "v must be an integer, got string"},
    {"v 2", "{'type':'t','v':2,'id':'m','source':'s'" DATA, PL_EINVAL, {"v", NULL}, "m",
     "unsupported version 2"},
    {"v 1.5", "{'type':'t','v':1.5,'id':'m','source':'s'" DATA, PL_EINVAL, {"v", NULL}, "m",
     "unsupported version 1.5"},
    {"v null", "{'type':'t','v':null,'id':'m','source':'s'" DATA, PL_EINVAL, {"v", NULL}, "m",
     "got null"},
    {"id number", "{'type':'t','v':1,'id':5,'source':'s'" DATA, PL_EINVAL, {"id", NULL}, NULL,
     "id must be a string, got number"},
    {"id empty", "{'type':'t','v':1,'id':'','source':'s'" DATA, PL_EINVAL, {"id", NULL}, NULL,
     "id must not be empty"},
    {"source missing", "{'type':'t','v':1,'id':'m'" DATA, PL_EINVAL, {"source", NULL}, "m",
     NULL},
    {"at bad", "{'type':'t','v':1,'id':'m','source':'s','at':'yesterday'" DATA, PL_EINVAL,
     {"at", NULL}, "m", NULL},
    {"at number", "{'type':'t','v':1,'id':'m','source':'s','at':3" DATA, PL_EINVAL, {"at", NULL},
     "m", NULL},
    {"data missing", "{'type':'t','v':1,'id':'m','source':'s'}", PL_EINVAL, {"data", NULL}, "m",
     "required field \"data\" is missing"},
    {"data array", "{'type':'t','v':1,'id':'m','source':'s','data':[]}", PL_EINVAL,
     {"data", NULL}, "m", "data must be an object, got array"},
    {"id kept while all else fails", "{'type':1,'v':2,'id':'abc','source':'','data':'x'}",
     PL_EINVAL, {"type", "v", "source", "data", NULL}, "abc", NULL},
    {"duplicate id", "{'type':'t','v':1,'id':'a','id':'b','source':'s'" DATA, PL_EINVAL,
     {"id", NULL}, NULL, "duplicate key"},
};

static char *unquote(const char *s)
{
    char *out = pl_strdup(s);
    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

static void check_errors(const char *label, const pl_errlist_t *errs, const char *const *want)
{
    size_t n = 0;
    bool used[PL_ERRLIST_MAX] = {false};
    for (; n < PATHS_MAX && want[n]; n++) {
        size_t i = 0;
        while (i < errs->count && (used[i] || strcmp(errs->items[i].path, want[n]) != 0))
            i++;
        if (i == errs->count)
            fail_msg("%s: no error at path \"%s\"", label, want[n]);
        used[i] = true;
    }
    if (errs->count != n)
        fail_msg("%s: %zu errors, want %zu (first: \"%s\": %s)", label, errs->count, n,
                 errs->count ? errs->items[0].path : "-",
                 errs->count ? errs->items[0].message : "-");
    for (size_t i = 0; i < errs->count; i++) {
        const char *m = errs->items[i].message;
        if (!*m || isupper((unsigned char)m[0]) || m[strlen(m) - 1] == '.')
            fail_msg("%s: message \"%s\" breaks the style guide", label, m);
    }
}

static void run_env_case(const env_case_t *tc)
{
    char *input = unquote(tc->input);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_msg_t msg;
    int rc = pl_msg_parse(input, strlen(input), &msg, &errs);
    if (rc != tc->want_rc)
        fail_msg("%s: rc %d, want %d (first: %s)", tc->label, rc, tc->want_rc,
                 errs.count ? errs.items[0].message : "-");
    check_errors(tc->label, &errs, tc->want_paths);
    if (tc->want_text && !strstr(errs.items[0].message, tc->want_text))
        fail_msg("%s: message \"%s\" lacks \"%s\"", tc->label, errs.items[0].message,
                 tc->want_text);
    if ((tc->want_id == NULL) != (msg.id == NULL) ||
        (tc->want_id && strcmp(tc->want_id, msg.id) != 0))
        fail_msg("%s: id \"%s\", want \"%s\"", tc->label, msg.id ? msg.id : "(none)",
                 tc->want_id ? tc->want_id : "(none)");
    if (rc == 0 && (!msg.type || !msg.source || !cJSON_IsObject(msg.data)))
        fail_msg("%s: parsed envelope lacks type, source or data", tc->label);
    pl_msg_release(&msg);
    pl_errlist_reset(&errs);
    pl_free(input);
}

static void test_envelope_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof env_cases / sizeof env_cases[0]; i++)
        run_env_case(&env_cases[i]);
}

/* Limits count characters, not bytes: 128 Chinese characters are 384 bytes. */
static void test_envelope_long(void **state)
{
    (void)state;
    static const struct {
        const char *label;
        const char *unit;
        int repeat;
        int want_rc;
    } cases[] = {
        {"source of 128 chinese characters", "源", 128, 0},
        {"source of 129 characters", "s", 129, PL_ETOOLARGE},
        {"source of 129 chinese characters", "源", 129, PL_ETOOLARGE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[1024] = "{\"type\":\"t\",\"v\":1,\"id\":\"m\",\"data\":{},\"source\":\"";
        for (int r = 0; r < cases[i].repeat; r++)
            strcat(buf, cases[i].unit);
        strcat(buf, "\"}");
        pl_errlist_t errs = PL_ERRLIST_INIT;
        pl_msg_t msg;
        int rc = pl_msg_parse(buf, strlen(buf), &msg, &errs);
        if (rc != cases[i].want_rc)
            fail_msg("%s: rc %d, want %d", cases[i].label, rc, cases[i].want_rc);
        if (rc && (errs.count != 1 || strcmp(errs.items[0].path, "source") != 0))
            fail_msg("%s: want one error at source", cases[i].label);
        pl_msg_release(&msg);
        pl_errlist_reset(&errs);
    }
}

static void test_envelope_too_large(void **state)
{
    (void)state;
    size_t len = PL_MSG_FRAME_MAX + 1;
    char *buf = pl_malloc(len);
    memset(buf, ' ', len);
    buf[0] = '{';
    buf[len - 1] = '}';
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_msg_t msg;
    assert_int_equal(pl_msg_parse(buf, len, &msg, &errs), PL_ETOOLARGE);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.items[0].path, "");
    assert_string_equal(errs.items[0].message, "message is 1048577 bytes, limit is 1048576");
    assert_null(msg.root);
    pl_msg_release(&msg);
    pl_errlist_reset(&errs);
    pl_free(buf);
}

/* A field over its limit makes the whole reply too_large. */
static void test_envelope_code(void **state)
{
    (void)state;
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"type\":\"t\",\"v\":1,\"id\":\"%0200d\",\"source\":\"\",\"data\":{}}", 0);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_msg_t msg;
    assert_int_equal(pl_msg_parse(buf, strlen(buf), &msg, &errs), PL_ETOOLARGE);
    assert_int_equal(errs.count, 2);
    assert_null(msg.id);
    pl_msg_release(&msg);
    pl_errlist_reset(&errs);
}

static void check_envelope_fields(const cJSON *root, const char *type, const char *source)
{
    assert_string_equal(pl_json_str(root, "type", ""), type);
    assert_int_equal(pl_json_int(root, "v", 0), 1);
    assert_true(pl_uuid_valid(pl_json_str(root, "id", "")));
    assert_int_equal(pl_json_str(root, "id", "")[14], '7');
    int64_t at_ms = 0;
    assert_int_equal(pl_time_parse(pl_json_str(root, "at", ""), &at_ms, "at", NULL), 0);
    assert_true(at_ms > 0);
    assert_string_equal(pl_json_str(root, "source", ""), source);
}

/* What pl_msg_new builds, pl_msg_parse accepts. */
static void test_msg_new(void **state)
{
    (void)state;
    cJSON *data = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(data, "case_id", "x");
    cJSON *root = pl_msg_new(PL_MSG_ACCEPTED, "intake", data);
    check_envelope_fields(root, PL_MSG_ACCEPTED, "intake");
    assert_ptr_equal(cJSON_GetObjectItem(root, "data"), data);
    assert_null(cJSON_GetObjectItem(root, "correlation_id"));
    char *text = pl_json_print(root);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_msg_t msg;
    assert_int_equal(pl_msg_parse(text, strlen(text), &msg, &errs), 0);
    assert_string_equal(pl_json_str(msg.data, "case_id", ""), "x");
    pl_msg_release(&msg);
    pl_free(text);
    cJSON_Delete(root);
    root = pl_msg_new("t", "s", NULL);
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(root, "data")));
    assert_null(cJSON_GetObjectItem(root, "data")->child);
    cJSON_Delete(root);
}

static void test_error_new(void **state)
{
    (void)state;
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_errlist_add(&errs, PL_EINVAL, "data.channel", "unknown channel \"fax\"");
    pl_err_t e;
    pl_err_set(&e, PL_ETOOLARGE, "data.body", "body is 70000 bytes, limit is 65536");
    pl_err_hint(&e, "Shorten it.");
    pl_errlist_push(&errs, &e);
    cJSON *root = pl_msg_error_new("intake", "m-1", pl_errlist_code(&errs), "bad", &errs);
    check_envelope_fields(root, PL_MSG_ERROR, "intake");
    assert_string_equal(pl_json_str(root, "correlation_id", ""), "m-1");
    char *data = pl_json_print(cJSON_GetObjectItem(root, "data"));
    assert_string_equal(data,
                        "{\"code\":\"too_large\",\"message\":\"bad\",\"errors\":["
                        "{\"path\":\"data.channel\",\"message\":\"unknown channel \\\"fax\\\"\"},"
                        "{\"path\":\"data.body\",\"message\":\"body is 70000 bytes, limit is "
                        "65536\",\"hint\":\"Shorten it.\"}]}");
    pl_free(data);
    cJSON_Delete(root);
    pl_errlist_reset(&errs);
}

static void test_error_new_variants(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name;
    } codes[] = {{PL_EINVAL, "invalid"}, {PL_ETOOLARGE, "too_large"},
                 {PL_EUNAVAIL, "unavailable"}, {PL_EUNAUTH, "unauthorized"}};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        cJSON *root = pl_msg_error_new("intake", NULL, codes[i].code, NULL, NULL);
        const cJSON *data = cJSON_GetObjectItem(root, "data");
        assert_null(cJSON_GetObjectItem(root, "correlation_id"));
        assert_string_equal(pl_json_str(data, "code", ""), codes[i].name);
        assert_string_equal(pl_json_str(data, "message", ""), codes[i].name);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(data, "errors")), 0);
        cJSON_Delete(root);
    }
    pl_errlist_t errs = PL_ERRLIST_INIT;
    for (int i = 0; i < PL_ERRLIST_MAX + 3; i++)
        pl_errlist_add(&errs, PL_EINVAL, "x", "problem %d", i);
    cJSON *root = pl_msg_error_new("intake", "c", PL_EINVAL, "many", &errs);
    const cJSON *list = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "data"), "errors");
    assert_int_equal(cJSON_GetArraySize(list), PL_ERRLIST_MAX + 1);
    assert_string_equal(pl_json_str(cJSON_GetArrayItem(list, PL_ERRLIST_MAX), "message", ""),
                        "3 more errors not listed");
    cJSON_Delete(root);
    pl_errlist_reset(&errs);
}

/* A refused frame's key can be invalid UTF-8, and truncation can split a
 * character: the reply still parses as strict JSON, with U+FFFD instead. */
static void test_error_new_repairs_utf8(void **state)
{
    (void)state;
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_errlist_add(&errs, PL_EINVAL, "data.k\xfe\xfe", "cut \xe6\x8a");
    cJSON *root = pl_msg_error_new("intake", NULL, PL_EINVAL, "bad \xc3", &errs);
    char *text = pl_json_print(root);
    pl_errlist_t parse_errs = PL_ERRLIST_INIT;
    cJSON *back = pl_json_parse(text, strlen(text), PL_JSON_DEPTH_MAX, &parse_errs);
    assert_non_null(back);
    const cJSON *data = cJSON_GetObjectItem(back, "data");
    const cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItem(data, "errors"), 0);
    assert_string_equal(pl_json_str(item, "path", ""), "data.k\uFFFD\uFFFD");
    assert_string_equal(pl_json_str(item, "message", ""), "cut \uFFFD\uFFFD");
    assert_string_equal(pl_json_str(data, "message", ""), "bad \uFFFD");
    cJSON_Delete(back);
    pl_free(text);
    cJSON_Delete(root);
    pl_errlist_reset(&errs);
}

typedef struct enum_case {
    const char *label;
    const char *const *list;
    const char *text;
    int count;
} enum_case_t;

static void test_enums(void **state)
{
    (void)state;
    static const enum_case_t cases[] = {
        {"channels", pl_msg_channels,
         "phone, email, web, app, chat, social, store, letter, api, other", 10},
        {"customer types", pl_msg_customer_types, "individual, enterprise, vip", 3},
        {"demand types", pl_msg_demand_types,
         "refund, replacement, repair, compensation, apology, explanation, other", 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const enum_case_t *tc = &cases[i];
        if (strcmp(pl_msg_enum_text(tc->list), tc->text) != 0)
            fail_msg("%s: text \"%s\"", tc->label, pl_msg_enum_text(tc->list));
        int n = 0;
        while (tc->list[n]) {
            if (pl_msg_enum_index(tc->list, tc->list[n]) != n)
                fail_msg("%s: index of %s", tc->label, tc->list[n]);
            n++;
        }
        if (n != tc->count)
            fail_msg("%s: %d values, want %d", tc->label, n, tc->count);
    }
    assert_int_equal(pl_msg_enum_index(pl_msg_channels, "fax"), -1);
    assert_int_equal(pl_msg_enum_index(pl_msg_channels, "Email"), -1);
    assert_int_equal(pl_msg_enum_index(pl_msg_channels, NULL), -1);
    assert_int_equal(pl_msg_enum_index(pl_msg_customer_types, "individual"), 0);
}

static void test_release_twice(void **state)
{
    (void)state;
    pl_msg_t msg;
    pl_errlist_t errs = PL_ERRLIST_INIT;
    assert_int_equal(pl_msg_parse("[]", 2, &msg, &errs), PL_EINVAL);
    pl_msg_release(&msg);
    pl_msg_release(&msg);
    pl_msg_release(NULL);
    pl_errlist_reset(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_table),  cmocka_unit_test(test_envelope_long),
        cmocka_unit_test(test_envelope_too_large), cmocka_unit_test(test_envelope_code),
        cmocka_unit_test(test_msg_new),         cmocka_unit_test(test_error_new),
        cmocka_unit_test(test_error_new_variants), cmocka_unit_test(test_error_new_repairs_utf8),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_release_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
