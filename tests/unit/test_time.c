/*
 * test_time: RFC 3339 formatting and strict parsing, durations both ways.
 *
 * Expected epoch values were computed independently (Python's datetime).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "pl_err.h"
#include "pl_time.h"
#include "pl_utf8.h"

#include "test_util.h"

#define TIME_HINT "Use RFC 3339 with a time zone, e.g. \"2026-11-25T03:52:00Z\"."
#define DURATION_HINT "Use a number and a unit: ms, s, m, h, d, w, e.g. \"90s\" or \"24h\"."

#define T_2026 1795578720000LL /* 2026-11-25T03:52:00Z */

static void test_clocks(void **state)
{
    int64_t now = pl_time_now_ms();
    assert_true(now > 1704067200000LL); /* after 2024-01-01 */
    int64_t a = pl_time_mono_ms(), b = pl_time_mono_ms();
    assert_true(b >= a);
}

static void test_format(void **state)
{
    static const struct {
        const char *label;
        int64_t ms;
        const char *want;
    } cases[] = {
        {"epoch", 0, "1970-01-01T00:00:00.000Z"},
        {"one ms before epoch", -1, "1969-12-31T23:59:59.999Z"},
        {"one s before epoch", -1000, "1969-12-31T23:59:59.000Z"},
        {"example", T_2026 + 123, "2026-11-25T03:52:00.123Z"},
        {"leap day", 1709208000000LL, "2024-02-29T12:00:00.000Z"},
        {"1900 is not leap", -2203891200000LL, "1900-03-01T00:00:00.000Z"},
        {"first instant", -62135596800000LL, "0001-01-01T00:00:00.000Z"},
        {"last instant", 253402300799999LL, "9999-12-31T23:59:59.999Z"},
        {"clamped low", INT64_MIN, "0001-01-01T00:00:00.000Z"},
        {"clamped high", INT64_MAX, "9999-12-31T23:59:59.999Z"},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[PL_RFC3339_MAX];
        const char *got = pl_time_format(cases[i].ms, buf);
        CHECK(got == buf && strcmp(got, cases[i].want) == 0, "%s: got %s, want %s\n",
              cases[i].label, got, cases[i].want);
    }
    assert_int_equal(failures, 0);
}

static void test_parse(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        int want_rc;
        int64_t want_ms;
    } cases[] = {
        {"epoch", "1970-01-01T00:00:00Z", 0, 0},
        {"example", "2026-11-25T03:52:00Z", 0, T_2026},
        {"lower t and z", "2026-11-25t03:52:00z", 0, T_2026},
        {"fraction .5", "2026-11-25T03:52:00.5Z", 0, T_2026 + 500},
        {"fraction .123", "2026-11-25T03:52:00.123Z", 0, T_2026 + 123},
        {"fraction 9 digits truncates", "2026-11-25T03:52:00.999999999Z", 0, T_2026 + 999},
        {"fraction 20 digits", "2026-11-25T03:52:00.00100000000000000000Z", 0, T_2026 + 1},
        {"offset +08:00", "2026-11-25T11:52:00+08:00", 0, T_2026},
        {"offset -05:30", "2026-11-24T22:22:00-05:30", 0, T_2026},
        {"offset +00:00", "2026-11-25T03:52:00+00:00", 0, T_2026},
        {"offset -00:00", "2026-11-25T03:52:00-00:00", 0, T_2026},
        {"offset +23:59", "2026-11-26T03:51:00+23:59", 0, T_2026},
        {"offset and fraction", "2026-11-25T11:52:00.250+08:00", 0, T_2026 + 250},
        {"offset crosses a year", "2026-12-31T23:00:00-02:00", 0, 1798765200000LL},
        {"leap day 2024", "2024-02-29T12:00:00Z", 0, 1709208000000LL},
        {"leap day 2000", "2000-02-29T00:00:00Z", 0, 951782400000LL},
        {"before epoch", "1969-12-31T23:59:59Z", 0, -1000},
        {"year 1", "0001-01-01T00:00:00Z", 0, -62135596800000LL},
        {"year 9999", "9999-12-31T23:59:59.999Z", 0, 253402300799999LL},
        {"leap second", "2016-12-31T23:59:60Z", 0, 1483228799000LL},
        {"leap second with offset", "2017-01-01T07:59:60+08:00", 0, 1483228799000LL},
        {"leap second with fraction", "2016-12-31T23:59:60.5Z", 0, 1483228799500LL},
        {"second 60 mid-day", "2026-11-25T12:00:60Z", PL_EINVAL, 0},
        {"second 60 at local 23:59", "2016-12-31T23:59:60+01:00", PL_EINVAL, 0},
        {"second 61", "2016-12-31T23:59:61Z", PL_EINVAL, 0},
        {"29 Feb 2023", "2023-02-29T00:00:00Z", PL_EINVAL, 0},
        {"29 Feb 1900", "1900-02-29T00:00:00Z", PL_EINVAL, 0},
        {"30 Feb", "2024-02-30T00:00:00Z", PL_EINVAL, 0},
        {"31 Apr", "2026-04-31T00:00:00Z", PL_EINVAL, 0},
        {"31 Dec", "2026-12-31T00:00:00Z", 0, 1798675200000LL},
        {"month 13", "2026-13-01T00:00:00Z", PL_EINVAL, 0},
        {"month 00", "2026-00-01T00:00:00Z", PL_EINVAL, 0},
        {"day 00", "2026-01-00T00:00:00Z", PL_EINVAL, 0},
        {"day 32", "2026-01-32T00:00:00Z", PL_EINVAL, 0},
        {"hour 24", "2026-11-25T24:00:00Z", PL_EINVAL, 0},
        {"minute 60", "2026-11-25T03:60:00Z", PL_EINVAL, 0},
        {"year 0", "0000-01-01T00:00:00Z", PL_EINVAL, 0},
        {"year 10000", "10000-01-01T00:00:00Z", PL_EINVAL, 0},
        {"negative year", "-0001-01-01T00:00:00Z", PL_EINVAL, 0},
        {"offset hour 24", "2026-11-25T03:52:00+24:00", PL_EINVAL, 0},
        {"offset minute 60", "2026-11-25T03:52:00+05:60", PL_EINVAL, 0},
        {"offset without colon", "2026-11-25T03:52:00+0800", PL_EINVAL, 0},
        {"offset hours only", "2026-11-25T03:52:00+08", PL_EINVAL, 0},
        {"no time zone", "2026-11-25T03:52:00", PL_EINVAL, 0},
        {"no time zone with fraction", "2026-11-25T03:52:00.5", PL_EINVAL, 0},
        {"date only", "2026-11-25", PL_EINVAL, 0},
        {"space separator", "2026-11-25 03:52:00Z", PL_EINVAL, 0},
        {"no seconds", "2026-11-25T03:52Z", PL_EINVAL, 0},
        {"one-digit month", "2026-1-25T03:52:00Z", PL_EINVAL, 0},
        {"dot without digits", "2026-11-25T03:52:00.Z", PL_EINVAL, 0},
        {"comma fraction", "2026-11-25T03:52:00,5Z", PL_EINVAL, 0},
        {"trailing space", "2026-11-25T03:52:00Z ", PL_EINVAL, 0},
        {"trailing text", "2026-11-25T03:52:00Zjunk", PL_EINVAL, 0},
        {"trailing after offset", "2026-11-25T03:52:00+08:00:00", PL_EINVAL, 0},
        {"leading space", " 2026-11-25T03:52:00Z", PL_EINVAL, 0},
        {"unicode digits", "\xEF\xBC\x92\x30\x32\x36-11-25T03:52:00Z", PL_EINVAL, 0},
        {"empty", "", PL_EINVAL, 0},
        {"NULL", NULL, PL_EINVAL, 0},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t got = -777;
        pl_err_t err;
        pl_err_clear(&err);
        int rc = pl_time_parse(cases[i].in, &got, "data.occurred_at", &err);
        CHECK(rc == cases[i].want_rc, "%s: rc got %d, want %d (%s)\n", cases[i].label, rc,
              cases[i].want_rc, err.message);
        if (rc == 0 && cases[i].want_rc == 0)
            CHECK(got == cases[i].want_ms, "%s: got %lld, want %lld\n", cases[i].label,
                  (long long)got, (long long)cases[i].want_ms);
        if (rc != 0) {
            CHECK(got == -777, "%s: output written on failure\n", cases[i].label);
            CHECK(err.code == PL_EINVAL && strcmp(err.path, "data.occurred_at") == 0,
                  "%s: code %d path %s\n", cases[i].label, err.code, err.path);
            CHECK(strncmp(err.message, "invalid date-time \"", 19) == 0, "%s: message %s\n",
                  cases[i].label, err.message);
            CHECK(strcmp(err.hint, TIME_HINT) == 0, "%s: hint %s\n", cases[i].label, err.hint);
        }
    }
    assert_int_equal(failures, 0);
}

static void test_parse_messages(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        const char *want;
    } cases[] = {
        {"month", "2026-13-01T00:00:00Z",
         "invalid date-time \"2026-13-01T00:00:00Z\": month 13 is out of range"},
        {"day", "2023-02-29T00:00:00Z",
         "invalid date-time \"2023-02-29T00:00:00Z\": day 29 does not exist in 2023-02"},
        {"hour", "2026-11-25T24:00:00Z",
         "invalid date-time \"2026-11-25T24:00:00Z\": hour 24 is out of range"},
        {"zone", "2026-11-25T03:52:00",
         "invalid date-time \"2026-11-25T03:52:00\": missing the time zone: add Z for UTC or an "
         "offset such as +08:00"},
        {"trailing", "2026-11-25T03:52:00Zx",
         "invalid date-time \"2026-11-25T03:52:00Zx\": unexpected text after the time zone"},
        {"empty", "", "invalid date-time \"\": empty"},
        {"control bytes are masked", "\x1b[2J\xFF",
         "invalid date-time \"?[2J?\": expected a date as YYYY-MM-DD"},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pl_err_t err;
        int rc = pl_time_parse(cases[i].in, NULL, "p", &err);
        CHECK(rc == PL_EINVAL && strcmp(err.message, cases[i].want) == 0,
              "%s: got \"%s\", want \"%s\"\n", cases[i].label, err.message, cases[i].want);
    }
    /* A NULL err is allowed, and a long input is quoted in part, on a character boundary. */
    assert_int_equal(pl_time_parse("nope", NULL, NULL, NULL), PL_EINVAL);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    memcpy(big + 62, "\xE2\x82\xAC", 3);
    big[sizeof big - 1] = '\0';
    pl_err_t err;
    assert_int_equal(pl_time_parse(big, NULL, "p", &err), PL_EINVAL);
    assert_true(pl_utf8_valid(err.message, strlen(err.message), NULL));
    assert_non_null(strstr(err.message, "...\": "));
    assert_int_equal(failures, 0);
}

static void test_round_trip(void **state)
{
    static const int64_t values[] = {
        0,
        1,
        -1,
        999,
        1000,
        T_2026,
        T_2026 + 7,
        951782400000LL,
        -62135596800000LL,
        253402300799999LL,
        4102444799999LL,
    };
    failures = 0;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char buf[PL_RFC3339_MAX];
        int64_t back = 0;
        int rc = pl_time_parse(pl_time_format(values[i], buf), &back, "", NULL);
        CHECK(rc == 0 && back == values[i], "%lld: %s gave %lld\n", (long long)values[i], buf,
              (long long)back);
    }
    assert_int_equal(failures, 0);
}

static void test_duration_parse(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        int want_rc;
        int64_t want_ms;
    } cases[] = {
        {"ms", "250ms", 0, 250},
        {"s", "90s", 0, 90000},
        {"m", "15m", 0, 900000},
        {"h", "24h", 0, 86400000},
        {"d", "3d", 0, 259200000},
        {"w", "2w", 0, 1209600000},
        {"h and m", "1h30m", 0, 5400000},
        {"every unit", "1w1d1h1m1s1ms", 0, 694861001},
        {"units in any order", "30m1h", 0, 5400000},
        {"zero", "0s", 0, 0},
        {"zero ms", "0ms", 0, 0},
        {"leading zeros", "007s", 0, 7000},
        {"large ms", "86400000ms", 0, 86400000},
        {"max", "9223372036854775807ms", 0, INT64_MAX},
        {"max weeks", "15250284452w", 0, 9223372036569600000LL},
        {"empty", "", PL_EINVAL, 0},
        {"NULL", NULL, PL_EINVAL, 0},
        {"negative", "-5s", PL_EINVAL, 0},
        {"plus sign", "+5s", PL_EINVAL, 0},
        {"missing unit", "90", PL_EINVAL, 0},
        {"bare zero", "0", PL_EINVAL, 0},
        {"missing unit at the end", "1h30", PL_EINVAL, 0},
        {"unit only", "ms", PL_EINVAL, 0},
        {"unknown unit", "9x", PL_EINVAL, 0},
        {"unknown long unit", "5sec", PL_EINVAL, 0},
        {"upper-case unit", "5S", PL_EINVAL, 0},
        {"micro sign", "5\xC2\xB5s", PL_EINVAL, 0},
        {"us is not a unit", "5us", PL_EINVAL, 0},
        {"fraction", "1.5h", PL_EINVAL, 0},
        {"leading space", " 5s", PL_EINVAL, 0},
        {"trailing space", "5s ", PL_EINVAL, 0},
        {"inner space", "5 s", PL_EINVAL, 0},
        {"space between terms", "1h 30m", PL_EINVAL, 0},
        {"negative term", "1h-5m", PL_EINVAL, 0},
        {"number too large", "9223372036854775808ms", PL_EINVAL, 0},
        {"many digits", "99999999999999999999999999s", PL_EINVAL, 0},
        {"too large after unit", "9223372036854775807s", PL_EINVAL, 0},
        {"too many weeks", "15250284453w", PL_EINVAL, 0},
        {"sum too large", "9223372036854775807ms1ms", PL_EINVAL, 0},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t got = -777;
        pl_err_t err;
        pl_err_clear(&err);
        int rc = pl_duration_parse(cases[i].in, &got, "sla.first_response", &err);
        CHECK(rc == cases[i].want_rc, "%s: rc got %d, want %d (%s)\n", cases[i].label, rc,
              cases[i].want_rc, err.message);
        if (rc == 0 && cases[i].want_rc == 0)
            CHECK(got == cases[i].want_ms, "%s: got %lld, want %lld\n", cases[i].label,
                  (long long)got, (long long)cases[i].want_ms);
        if (rc != 0) {
            CHECK(got == -777, "%s: output written on failure\n", cases[i].label);
            CHECK(strcmp(err.path, "sla.first_response") == 0, "%s: path %s\n", cases[i].label,
                  err.path);
            CHECK(strcmp(err.hint, DURATION_HINT) == 0, "%s: hint %s\n", cases[i].label, err.hint);
            CHECK(pl_utf8_valid(err.message, strlen(err.message), NULL), "%s: bad UTF-8\n",
                  cases[i].label);
        }
    }
    assert_int_equal(failures, 0);
}

static void test_duration_messages(void **state)
{
    static const struct {
        const char *label;
        const char *in;
        const char *want;
    } cases[] = {
        {"unknown unit", "9x", "invalid duration \"9x\": unknown unit \"x\""},
        {"unknown long unit", "5sec", "invalid duration \"5sec\": unknown unit \"sec\""},
        {"missing unit", "90", "invalid duration \"90\": missing unit after \"90\""},
        {"missing last unit", "1h30", "invalid duration \"1h30\": missing unit after \"30\""},
        {"empty", "", "invalid duration \"\": empty"},
        {"negative", "-5s", "invalid duration \"-5s\": must not be negative"},
        {"fraction", "1.5h",
         "invalid duration \"1.5h\": fractions are not supported: combine units, e.g. "
         "\"1h30m\""},
        {"space", "1h 30m", "invalid duration \"1h 30m\": expected a number, found \" 30m\""},
        {"overflow", "9223372036854775807s",
         "invalid duration \"9223372036854775807s\": the duration is too large"},
        {"number overflow", "99999999999999999999s",
         "invalid duration \"99999999999999999999s\": the number is too large"},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pl_err_t err;
        int rc = pl_duration_parse(cases[i].in, NULL, "p", &err);
        CHECK(rc == PL_EINVAL && strcmp(err.message, cases[i].want) == 0,
              "%s: got \"%s\", want \"%s\"\n", cases[i].label, err.message, cases[i].want);
    }
    assert_int_equal(pl_duration_parse("x", NULL, NULL, NULL), PL_EINVAL);
    assert_int_equal(failures, 0);
}

static void test_duration_format(void **state)
{
    static const struct {
        const char *label;
        int64_t ms;
        const char *want;
    } cases[] = {
        {"zero", 0, "0s"},
        {"ms", 250, "250ms"},
        {"1s", 1000, "1s"},
        {"1500ms beats 1s500ms", 1500, "1500ms"},
        {"90s beats 1m30s", 90000, "90s"},
        {"1m", 60000, "1m"},
        {"90m beats 1h30m", 5400000, "90m"},
        {"1h", 3600000, "1h"},
        {"1h1s beats 3601s", 3601000, "1h1s"},
        {"1d", 86400000, "1d"},
        {"36h", 129600000, "36h"},
        {"1w wins the tie with 7d", 604800000, "1w"},
        {"8d", 691200000, "8d"},
        {"2w", 1209600000, "2w"},
        {"1w1ms", 604800001, "1w1ms"},
        {"shortest, not greedy", 694861001, "8d61m1s1ms"},
        {"negative", -90000, "-90s"},
        {"negative ms", -1, "-1ms"},
        {"max", INT64_MAX, "9223372036854775807ms"},
        {"min", INT64_MIN, "-9223372036854775808ms"},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        const char *got = pl_duration_format(cases[i].ms, buf);
        CHECK(got == buf && strcmp(got, cases[i].want) == 0, "%s: got %s, want %s\n",
              cases[i].label, got, cases[i].want);
    }
    assert_int_equal(failures, 0);
}

static void test_duration_round_trip(void **state)
{
    failures = 0;
    /* A spread of values, each with several units in play. */
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 5000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ms = (int64_t)(x >> (1 + i % 40));
        char buf[32];
        int64_t back = -1;
        int rc = pl_duration_parse(pl_duration_format(ms, buf), &back, "", NULL);
        CHECK(rc == 0 && back == ms, "%lld: %s gave %lld\n", (long long)ms, buf, (long long)back);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_messages),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_duration_messages),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_duration_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
