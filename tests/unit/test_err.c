/*
 * test_err: pl_err_t filling, code names and error lists.
 *
 * Table cases carry a label so that a failure says which case broke; every
 * case runs and every mismatch is printed before the test fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "pl_err.h"

#include "test_util.h"

static void test_set_fills_every_field(void **state)
{
    pl_err_t err;
    memset(&err, 'x', sizeof err);
    int rc = pl_err_set(&err, PL_EINVAL, "data.body", "body is %zu bytes, limit is %d",
                        (size_t)70000, 65536);
    assert_int_equal(rc, PL_EINVAL);
    assert_int_equal(err.code, PL_EINVAL);
    assert_string_equal(err.path, "data.body");
    assert_string_equal(err.message, "body is 70000 bytes, limit is 65536");
    assert_string_equal(err.hint, ""); /* a new error drops the old hint */
    assert_int_equal(pl_err_hint(&err, "Send at most %d bytes.", 65536), PL_EINVAL);
    assert_string_equal(err.hint, "Send at most 65536 bytes.");
}

static void test_set_null_and_empty_path(void **state)
{
    pl_err_t err;
    assert_int_equal(pl_err_set(NULL, PL_EIO, "x", "ignored"), PL_EIO);
    assert_int_equal(pl_err_hint(NULL, "ignored"), PL_EINTERNAL);
    pl_err_set(&err, PL_EUNAVAIL, NULL, "database is down");
    assert_string_equal(err.path, "");
    pl_err_clear(&err);
    assert_int_equal(err.code, 0);
    assert_string_equal(err.message, "");
    pl_err_clear(NULL); /* must not crash */
}

static void test_set_truncates_long_text(void **state)
{
    char big[2 * PL_ERR_MSG_MAX];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    pl_err_t err;
    pl_err_set(&err, PL_EINVAL, big, "%s", big);
    (void)pl_err_hint(&err, "%s", big);
    assert_int_equal(strlen(err.path), PL_ERR_PATH_MAX - 1);
    assert_int_equal(strlen(err.message), PL_ERR_MSG_MAX - 1);
    assert_int_equal(strlen(err.hint), PL_ERR_HINT_MAX - 1);
}

static void test_code_names(void **state)
{
    static const struct {
        const char *label;
        int code;
        const char *want;
    } cases[] = {
        {"ok", PL_OK, "ok"},
        {"invalid", PL_EINVAL, "invalid"},
        {"too large", PL_ETOOLARGE, "too_large"},
        {"unavailable", PL_EUNAVAIL, "unavailable"},
        {"not found", PL_ENOTFOUND, "not_found"},
        {"conflict", PL_ECONFLICT, "conflict"},
        {"again", PL_EAGAIN, "busy"},
        {"io", PL_EIO, "io_error"},
        {"config", PL_ECONFIG, "config"},
        {"schema", PL_ESCHEMA, "schema"},
        {"timeout", PL_ETIMEOUT, "timeout"},
        {"canceled", PL_ECANCELED, "canceled"},
        {"internal", PL_EINTERNAL, "internal"},
        {"unauthorized", PL_EUNAUTH, "unauthorized"},
        {"unknown negative", -999, "internal"},
        {"unknown positive", 42, "internal"},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = pl_err_code_name(cases[i].code);
        CHECK(strcmp(got, cases[i].want) == 0, "%s: got \"%s\", want \"%s\"\n", cases[i].label, got,
              cases[i].want);
    }
    assert_int_equal(failures, 0);
}

static void test_errlist_keeps_then_counts(void **state)
{
    pl_errlist_t list = PL_ERRLIST_INIT;
    for (int i = 0; i < PL_ERRLIST_MAX + 10; i++)
        assert_int_equal(pl_errlist_add(&list, PL_EINVAL, "data.x", "problem %d", i), PL_EINVAL);
    assert_int_equal(list.count, PL_ERRLIST_MAX);
    assert_int_equal(list.dropped, 10);
    assert_string_equal(list.items[0].message, "problem 0");
    assert_string_equal(list.items[PL_ERRLIST_MAX - 1].message, "problem 63");
    assert_string_equal(list.items[5].path, "data.x");
    pl_errlist_reset(&list);
    assert_null(list.items);
    assert_int_equal(list.count + list.dropped + list.cap, 0);
    pl_errlist_reset(&list); /* twice is fine */
}

static void test_errlist_push_copies(void **state)
{
    pl_errlist_t list = PL_ERRLIST_INIT;
    pl_err_t err;
    pl_err_set(&err, PL_ETOOLARGE, "data.body", "too big");
    (void)pl_err_hint(&err, "Send less.");
    pl_errlist_push(&list, &err);
    pl_err_clear(&err);
    assert_int_equal(list.count, 1);
    assert_string_equal(list.items[0].hint, "Send less.");
    assert_string_equal(list.items[0].path, "data.body");
    pl_errlist_reset(&list);
}

static void test_errlist_code(void **state)
{
    static const struct {
        const char *label;
        int codes[3];
        size_t n;
        int want;
    } cases[] = {
        {"empty list", {0}, 0, PL_EINVAL},
        {"one invalid", {PL_EINVAL}, 1, PL_EINVAL},
        {"too large wins", {PL_EINVAL, PL_ETOOLARGE, PL_EINVAL}, 3, PL_ETOOLARGE},
        {"only too large", {PL_ETOOLARGE}, 1, PL_ETOOLARGE},
        {"other codes are invalid", {PL_ECONFIG, PL_EIO}, 2, PL_EINVAL},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pl_errlist_t list = PL_ERRLIST_INIT;
        for (size_t j = 0; j < cases[i].n; j++)
            pl_errlist_add(&list, cases[i].codes[j], "", "e");
        int got = pl_errlist_code(&list);
        CHECK(got == cases[i].want, "%s: got %d, want %d\n", cases[i].label, got, cases[i].want);
        pl_errlist_reset(&list);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_fills_every_field),
        cmocka_unit_test(test_set_null_and_empty_path),
        cmocka_unit_test(test_set_truncates_long_text),
        cmocka_unit_test(test_code_names),
        cmocka_unit_test(test_errlist_keeps_then_counts),
        cmocka_unit_test(test_errlist_push_copies),
        cmocka_unit_test(test_errlist_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
