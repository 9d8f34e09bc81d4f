/*
 * test_utf8: UTF-8 validation, counting and truncation after RFC 3629.
 *
 * Each case is a byte string with its length (so NUL bytes and truncated
 * sequences can be written), a label, and the wanted result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pl_utf8.h"

#include "test_util.h"

/* A literal with its length, NULs included. */
#define BYTES(s) s, sizeof(s) - 1

static void test_valid(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        size_t len;
        bool want;
        size_t want_bad; /* checked when want is false */
    } cases[] = {
        {"empty", BYTES(""), true, 0},
        {"ascii", BYTES("hello, world"), true, 0},
        {"NUL inside", BYTES("a\0b"), true, 0},
        {"U+0080 first 2-byte", BYTES("\xC2\x80"), true, 0},
        {"U+00E9 e acute", BYTES("caf\xC3\xA9"), true, 0},
        {"U+07FF last 2-byte", BYTES("\xDF\xBF"), true, 0},
        {"U+0800 first 3-byte", BYTES("\xE0\xA0\x80"), true, 0},
        {"U+20AC euro", BYTES("\xE2\x82\xAC"), true, 0},
        {"U+D7FF before surrogates", BYTES("\xED\x9F\xBF"), true, 0},
        {"U+E000 after surrogates", BYTES("\xEE\x80\x80"), true, 0},
        {"U+FFFF last 3-byte", BYTES("\xEF\xBF\xBF"), true, 0},
        {"U+10000 first 4-byte", BYTES("\xF0\x90\x80\x80"), true, 0},
        {"U+1F600 emoji", BYTES("ok \xF0\x9F\x98\x80!"), true, 0},
        {"U+10FFFF last", BYTES("\xF4\x8F\xBF\xBF"), true, 0},
        {"chinese", BYTES("\xE6\x8A\x95\xE8\xAF\x89"), true, 0},
        {"U+110000 above max", BYTES("\xF4\x90\x80\x80"), false, 0},
        {"F5 lead", BYTES("\xF5\x80\x80\x80"), false, 0},
        {"F8 lead (5-byte form)", BYTES("\xF8\x88\x80\x80\x80"), false, 0},
        {"FE byte", BYTES("a\xFE"), false, 1},
        {"FF byte", BYTES("ab\xFF"), false, 2},
        {"overlong NUL C0 80", BYTES("\xC0\x80"), false, 0},
        {"overlong C1 BF", BYTES("\xC1\xBF"), false, 0},
        {"overlong 3-byte E0 80 80", BYTES("\xE0\x80\x80"), false, 0},
        {"overlong 3-byte E0 9F BF", BYTES("\xE0\x9F\xBF"), false, 0},
        {"overlong 4-byte F0 80 80 80", BYTES("\xF0\x80\x80\x80"), false, 0},
        {"overlong 4-byte F0 8F BF BF", BYTES("\xF0\x8F\xBF\xBF"), false, 0},
        {"surrogate U+D800", BYTES("\xED\xA0\x80"), false, 0},
        {"surrogate U+DFFF", BYTES("x\xED\xBF\xBF"), false, 1},
        {"surrogate pair CESU-8", BYTES("\xED\xA0\xBD\xED\xB8\x80"), false, 0},
        {"lone continuation", BYTES("\x80"), false, 0},
        {"continuation after ascii", BYTES("abc\xBF"), false, 3},
        {"truncated 2-byte at end", BYTES("ab\xC3"), false, 2},
        {"truncated 3-byte at end", BYTES("\xE2\x82"), false, 0},
        {"truncated 4-byte at end", BYTES("\xF0\x9F\x98"), false, 0},
        {"truncated 3-byte then ascii", BYTES("\xE2\x82\x41"), false, 0},
        {"truncated 4-byte then ascii", BYTES("\xF0\x9F\x41\x41"), false, 0},
        {"bad second byte", BYTES("\xC3\x28"), false, 0},
        {"bad third byte", BYTES("\xE2\x82\x28"), false, 0},
        {"bad fourth byte", BYTES("\xF0\x9F\x98\x28"), false, 0},
        {"valid then invalid", BYTES("\xC3\xA9\xE2\x82\xAC\xFF"), false, 5},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t bad = 12345;
        bool got = pl_utf8_valid(cases[i].in, cases[i].len, &bad);
        CHECK(got == cases[i].want, "%s: got %d, want %d\n", cases[i].label, got, cases[i].want);
        if (!cases[i].want)
            CHECK(bad == cases[i].want_bad, "%s: bad offset got %zu, want %zu\n", cases[i].label,
                  bad, cases[i].want_bad);
        /* The offset is optional. */
        CHECK(pl_utf8_valid(cases[i].in, cases[i].len, NULL) == cases[i].want,
              "%s: differs without an offset\n", cases[i].label);
    }
    assert_int_equal(failures, 0);
}

static void test_valid_respects_len(void **state)
{
    /* A valid prefix of an invalid buffer is valid; a cut sequence is not. */
    assert_true(pl_utf8_valid("ab\xFF", 2, NULL));
    assert_false(pl_utf8_valid("\xE2\x82\xAC", 2, NULL));
    assert_true(pl_utf8_valid("\xE2\x82\xAC", 0, NULL));
}

static void test_count(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        size_t len;
        size_t want;
    } cases[] = {
        {"empty", BYTES(""), 0},
        {"ascii", BYTES("abc"), 3},
        {"NUL counts", BYTES("a\0b"), 3},
        {"2-byte", BYTES("\xC3\xA9"), 1},
        {"mixed widths", BYTES("a\xE2\x82\xAC\xF0\x9F\x98\x80"), 3},
        {"chinese", BYTES("\xE6\x8A\x95\xE8\xAF\x89"), 2},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t got = pl_utf8_count(cases[i].in, cases[i].len);
        CHECK(got == cases[i].want, "%s: got %zu, want %zu\n", cases[i].label, got, cases[i].want);
    }
    assert_int_equal(failures, 0);
}

static void test_truncate(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        size_t len;
        size_t max;
        size_t want;
    } cases[] = {
        {"fits", BYTES("abc"), 10, 3},
        {"exact fit", BYTES("abc"), 3, 3},
        {"ascii cut", BYTES("abcdef"), 4, 4},
        {"zero", BYTES("abc"), 0, 0},
        {"before a 3-byte char", BYTES("a\xE2\x82\xAC"), 1, 1},
        {"inside a 3-byte char (1)", BYTES("a\xE2\x82\xAC"), 2, 1},
        {"inside a 3-byte char (2)", BYTES("a\xE2\x82\xAC"), 3, 1},
        {"after a 3-byte char", BYTES("a\xE2\x82\xAC\x62"), 4, 4},
        {"inside a 4-byte char", BYTES("\xF0\x9F\x98\x80"), 3, 0},
        {"inside the second char", BYTES("\xC3\xA9\xC3\xA9"), 3, 2},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t got = pl_utf8_truncate(cases[i].in, cases[i].len, cases[i].max);
        CHECK(got == cases[i].want, "%s: got %zu, want %zu\n", cases[i].label, got, cases[i].want);
        CHECK(pl_utf8_valid(cases[i].in, got, NULL), "%s: result is not valid\n", cases[i].label);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_valid_respects_len),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_truncate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
