/*
 * test_calendar: business-calendar arithmetic (open time across lunch
 * breaks, nights, weekends, holidays, make-up days, midnight and DST
 * changes), working days, between(), and the checks at load.
 *
 * Times are written as RFC 3339 with the zone's offset, so each row reads
 * as local time; weekdays were checked with Python's datetime.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "pl_calendar.h"
#include "pl_err.h"
#include "pl_time.h"

#include "test_util.h"

#define H (3600 * 1000LL)
#define M (60 * 1000LL)

/* Shanghai office: lunch break, National Day week off, two make-up days
 * (one with Monday's hours, one with its own). */
static const char OFFICE[] = "{\"zone\": \"Asia/Shanghai\","
                             " \"hours\": {\"mon-fri\": [\"09:00-12:00\", \"13:00-18:00\"]},"
                             " \"holidays\": [{\"from\": \"2026-10-01\", \"to\": \"2026-10-07\", "
                             "\"name\": \"National Day\"}],"
                             " \"working_days\": [\"2026-10-10\", {\"date\": \"2026-09-20\", "
                             "\"hours\": [\"10:00-16:00\"]}]}";

static pl_calendar_t *make(const char *json)
{
    cJSON *obj = cJSON_Parse(json);
    assert_non_null(obj);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_calendar_t *cal = pl_calendar_new("test", obj, "test.json", "calendars.test", NULL, &errs);
    for (size_t i = 0; i < errs.count; i++)
        print_error("unexpected: %s\n", errs.items[i].message);
    assert_non_null(cal);
    assert_int_equal(errs.count, 0);
    pl_errlist_reset(&errs);
    cJSON_Delete(obj);
    return cal;
}

static int64_t at(const char *rfc3339)
{
    int64_t ms = 0;
    pl_err_t err;
    if (pl_time_parse(rfc3339, &ms, "test", &err) != 0)
        fail_msg("bad time in test table: %s", rfc3339);
    return ms;
}

static const char *show(int64_t ms, char *buf)
{
    return pl_time_format(ms, buf);
}

typedef struct add_case {
    const char *label, *start;
    int64_t duration_ms;
    const char *want;
} add_case_t;

static void run_add(const char *json, const add_case_t *cases, size_t n)
{
    pl_calendar_t *cal = make(json);
    for (size_t i = 0; i < n; i++) {
        int64_t due = 0;
        char a[PL_RFC3339_MAX], b[PL_RFC3339_MAX];
        int rc = pl_calendar_add(cal, at(cases[i].start), cases[i].duration_ms, &due);
        CHECK(rc == 0 && due == at(cases[i].want), "%s: rc %d, got %s, want %s\n", cases[i].label,
              rc, show(due, a), show(at(cases[i].want), b));
    }
    pl_calendar_destroy(&cal);
    assert_null(cal);
}

static void test_add_office(void **state)
{
    static const add_case_t cases[] = {
        {"inside", "2026-09-28T10:00:00+08:00", 1 * H, "2026-09-28T11:00:00+08:00"},
        {"across lunch", "2026-09-28T11:30:00+08:00", 1 * H, "2026-09-28T13:30:00+08:00"},
        {"across the night", "2026-09-28T17:00:00+08:00", 2 * H, "2026-09-29T10:00:00+08:00"},
        {"before opening", "2026-09-28T07:00:00+08:00", 1 * H, "2026-09-28T10:00:00+08:00"},
        {"during lunch", "2026-09-28T12:30:00+08:00", 30 * M, "2026-09-28T13:30:00+08:00"},
        {"ends at closing", "2026-09-28T17:00:00+08:00", 1 * H, "2026-09-28T18:00:00+08:00"},
        {"full day", "2026-09-28T09:00:00+08:00", 8 * H, "2026-09-28T18:00:00+08:00"},
        {"full day and one hour", "2026-09-28T09:00:00+08:00", 9 * H, "2026-09-29T10:00:00+08:00"},
        {"across the weekend", "2026-09-25T17:00:00+08:00", 2 * H, "2026-09-28T10:00:00+08:00"},
        {"across the holiday week", "2026-09-30T17:00:00+08:00", 2 * H,
         "2026-10-08T10:00:00+08:00"},
        {"starting on a holiday", "2026-10-03T10:00:00+08:00", 1 * H, "2026-10-08T10:00:00+08:00"},
        {"make-up day with its own hours", "2026-09-19T12:00:00+08:00", 1 * H,
         "2026-09-20T11:00:00+08:00"},
        {"make-up day's own closing", "2026-09-20T15:00:00+08:00", 2 * H,
         "2026-09-21T10:00:00+08:00"},
        {"make-up day with Monday's hours", "2026-10-09T17:00:00+08:00", 2 * H,
         "2026-10-10T10:00:00+08:00"},
        {"zero when closed: next opening", "2026-09-26T10:00:00+08:00", 0,
         "2026-09-28T09:00:00+08:00"},
        {"zero when open: now", "2026-09-28T10:00:00.250+08:00", 0,
         "2026-09-28T10:00:00.250+08:00"},
        {"a week of open time", "2026-09-21T09:00:00+08:00", 5 * 8 * H,
         "2026-09-25T18:00:00+08:00"},
        {"milliseconds", "2026-09-28T11:59:59.999+08:00", 2, "2026-09-28T13:00:00.001+08:00"},
    };
    failures = 0;
    run_add(OFFICE, cases, NELEMS(cases));
    assert_int_equal(failures, 0);
}

static void test_add_midnight_and_dst(void **state)
{
    /* Open all day: business time is elapsed time, also on the 23- and
     * 25-hour days. */
    static const add_case_t always[] = {
        {"across midnight", "2026-03-27T23:30:00+01:00", 90 * M, "2026-03-28T01:00:00+01:00"},
        {"spring day", "2026-03-28T22:00:00+01:00", 24 * H, "2026-03-29T23:00:00+02:00"},
        {"fall day", "2026-10-24T22:00:00+02:00", 24 * H, "2026-10-25T21:00:00+01:00"},
    };
    /* 01:00-04:00 every day: 2 real hours on the spring day (the gap is
     * not open time), 4 on the fall day (the repeated hour is). */
    static const add_case_t night[] = {
        {"spring: the gap is skipped", "2026-03-29T01:00:00+01:00", 2 * H,
         "2026-03-29T04:00:00+02:00"},
        {"spring: on to the next night", "2026-03-29T01:00:00+01:00", 150 * M,
         "2026-03-30T01:30:00+02:00"},
        {"fall: the repeated hour counts", "2026-10-25T01:00:00+02:00", 4 * H,
         "2026-10-25T04:00:00+01:00"},
        {"fall: from the second 02:30", "2026-10-25T02:30:00+01:00", 2 * H,
         "2026-10-26T01:30:00+01:00"},
    };
    /* Office hours across midnight in two intervals (a night shift). */
    static const add_case_t shift[] = {
        {"night shift across midnight", "2026-09-28T23:00:00+08:00", 2 * H,
         "2026-09-29T01:00:00+08:00"},
        {"night shift to the next night", "2026-09-29T07:00:00+08:00", 2 * H,
         "2026-09-29T21:00:00+08:00"},
    };
    failures = 0;
    run_add("{\"zone\": \"Europe/Berlin\", \"hours\": \"24x7\"}", always, NELEMS(always));
    run_add("{\"zone\": \"Europe/Berlin\", \"hours\": {\"mon-sun\": [\"01:00-04:00\"]}}", night,
            NELEMS(night));
    run_add("{\"zone\": \"Asia/Shanghai\", \"hours\": {\"sun-sat\": [\"00:00-08:00\", "
            "\"20:00-24:00\"]}}",
            shift, NELEMS(shift));
    assert_int_equal(failures, 0);
}

static void test_dst_openings(void **state)
{
    /* New York, 2026-03-08: 02:30 does not exist, so the 02:30 opening
     * happens at 03:00 EDT; 2026-11-01: 01:00-02:00 spans both 1 o'clocks. */
    pl_calendar_t *cal = make("{\"zone\": \"America/New_York\", \"hours\": {\"sun\": "
                              "[\"01:00-02:00\", \"02:30-05:00\"]}}");
    int64_t open = 0, ms = 0;
    assert_int_equal(pl_calendar_next_open(cal, at("2026-03-08T01:30:00-05:00"), &open), 0);
    assert_int_equal(open, at("2026-03-08T01:30:00-05:00"));
    assert_int_equal(pl_calendar_next_open(cal, at("2026-03-08T01:59:59-05:00"), &open), 0);
    assert_int_equal(open, at("2026-03-08T01:59:59-05:00"));
    assert_int_equal(pl_calendar_next_open(cal, at("2026-03-08T02:00:00-05:00"), &open), 0);
    assert_int_equal(open, at("2026-03-08T03:00:00-04:00"));
    assert_int_equal(pl_calendar_between(cal, at("2026-03-08T00:00:00-05:00"),
                                         at("2026-03-09T00:00:00-04:00"), &ms),
                     0);
    assert_int_equal(ms, 3 * H); /* 01:00-02:00 EST, then 03:00-05:00 EDT */
    assert_int_equal(pl_calendar_between(cal, at("2026-11-01T00:00:00-04:00"),
                                         at("2026-11-02T00:00:00-05:00"), &ms),
                     0);
    assert_int_equal(ms, 2 * H + 150 * M); /* 01:00 EDT-02:00 EST, 02:30-05:00 EST */
    assert_true(pl_calendar_is_open(cal, at("2026-11-01T01:30:00-05:00"))); /* second pass */
    pl_calendar_destroy(&cal);

    /* Working days across a DST change: the same local time of day. */
    cal = make("{\"zone\": \"Europe/Berlin\", \"hours\": {\"mon-fri\": [\"09:00-18:00\"]}}");
    assert_int_equal(pl_calendar_add_working_days(cal, at("2026-03-27T10:00:00+01:00"), 1, &ms), 0);
    assert_int_equal(ms, at("2026-03-30T10:00:00+02:00"));
    assert_int_equal(pl_calendar_add(cal, at("2026-03-27T17:00:00+01:00"), 2 * H, &ms), 0);
    assert_int_equal(ms, at("2026-03-30T10:00:00+02:00"));
    pl_calendar_destroy(&cal);
}

static void test_working_days(void **state)
{
    static const struct {
        const char *label, *start;
        int n;
        const char *want;
    } cases[] = {
        {"wednesday + 3", "2026-09-23T10:00:00+08:00", 3, "2026-09-28T10:00:00+08:00"},
        {"closed friday evening + 3", "2026-09-25T20:00:00+08:00", 3, "2026-10-08T09:00:00+08:00"},
        {"saturday + 1 counts from the make-up sunday", "2026-09-19T12:00:00+08:00", 1,
         "2026-09-21T10:00:00+08:00"},
        {"over the make-up day", "2026-09-18T17:00:00+08:00", 2, "2026-09-21T17:00:00+08:00"},
        {"after the make-up day's closing: next opening", "2026-09-18T17:00:00+08:00", 1,
         "2026-09-21T09:00:00+08:00"},
        {"lunch break start", "2026-09-28T12:30:00+08:00", 1, "2026-09-29T13:00:00+08:00"},
        {"make-up saturday counts", "2026-10-09T11:00:00+08:00", 1, "2026-10-10T11:00:00+08:00"},
        {"zero: the next opening", "2026-09-26T10:00:00+08:00", 0, "2026-09-28T09:00:00+08:00"},
        {"zero when open", "2026-09-28T10:00:00+08:00", 0, "2026-09-28T10:00:00+08:00"},
    };
    pl_calendar_t *cal = make(OFFICE);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        int64_t due = 0;
        char a[PL_RFC3339_MAX], b[PL_RFC3339_MAX];
        int rc = pl_calendar_add_working_days(cal, at(cases[i].start), cases[i].n, &due);
        CHECK(rc == 0 && due == at(cases[i].want), "%s: rc %d, got %s, want %s\n", cases[i].label,
              rc, show(due, a), show(at(cases[i].want), b));
    }
    int64_t due = 0;
    assert_int_equal(pl_calendar_add_working_days(cal, 0, -1, &due), PL_EINVAL);
    assert_true(pl_calendar_is_working_day(cal, 2026, 9, 20));
    assert_true(pl_calendar_is_working_day(cal, 2026, 10, 10));
    assert_false(pl_calendar_is_working_day(cal, 2026, 10, 1));
    assert_false(pl_calendar_is_working_day(cal, 2026, 9, 27));
    assert_false(pl_calendar_is_working_day(cal, 2026, 2, 30));
    pl_calendar_destroy(&cal);
    assert_int_equal(failures, 0);
}

static void test_between(void **state)
{
    static const struct {
        const char *label, *from, *to;
        int64_t want;
    } cases[] = {
        {"a day", "2026-09-28T08:00:00+08:00", "2026-09-28T19:00:00+08:00", 8 * H},
        {"inside", "2026-09-28T10:15:00+08:00", "2026-09-28T11:45:00+08:00", 90 * M},
        {"over the weekend", "2026-09-25T17:00:00+08:00", "2026-09-28T10:00:00+08:00", 2 * H},
        {"the holiday week", "2026-10-01T00:00:00+08:00", "2026-10-08T00:00:00+08:00", 0},
        {"a month", "2026-09-01T00:00:00+08:00", "2026-10-01T00:00:00+08:00", 22 * 8 * H + 6 * H},
        {"empty", "2026-09-28T10:00:00+08:00", "2026-09-28T10:00:00+08:00", 0},
        {"backwards", "2026-09-28T11:00:00+08:00", "2026-09-28T10:00:00+08:00", 0},
    };
    pl_calendar_t *cal = make(OFFICE);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        int64_t ms = -1;
        int rc = pl_calendar_between(cal, at(cases[i].from), at(cases[i].to), &ms);
        CHECK(rc == 0 && ms == cases[i].want, "%s: rc %d, got %lld, want %lld\n", cases[i].label,
              rc, (long long)ms, (long long)cases[i].want);
        /* between() and add() agree: adding the open time back lands on the
         * end, or on a closing before it with no open time in between. */
        int64_t due = 0, rest = -1;
        if (ms > 0) {
            rc = pl_calendar_add(cal, at(cases[i].from), ms, &due);
            if (rc == 0)
                rc = pl_calendar_between(cal, due, at(cases[i].to), &rest);
            CHECK(rc == 0 && due <= at(cases[i].to) && rest == 0,
                  "%s: add(between) is not the end\n", cases[i].label);
        }
    }
    int64_t ms;
    assert_int_equal(
        pl_calendar_between(cal, at("2026-01-01T00:00:00Z"), at("2030-01-01T00:00:00Z"), &ms),
        PL_ETOOLARGE);
    pl_calendar_destroy(&cal);
    assert_int_equal(failures, 0);
}

static void test_is_open(void **state)
{
    static const struct {
        const char *label, *when;
        bool want;
    } cases[] = {
        {"opening instant", "2026-09-28T09:00:00+08:00", true},
        {"just before opening", "2026-09-28T08:59:59.999+08:00", false},
        {"last ms of the morning", "2026-09-28T11:59:59.999+08:00", true},
        {"lunch starts", "2026-09-28T12:00:00+08:00", false},
        {"closing instant", "2026-09-28T18:00:00+08:00", false},
        {"saturday", "2026-09-26T10:00:00+08:00", false},
        {"holiday", "2026-10-02T10:00:00+08:00", false},
        {"make-up saturday", "2026-10-10T10:00:00+08:00", true},
        {"make-up sunday, own hours", "2026-09-20T15:59:00+08:00", true},
        {"make-up sunday after its closing", "2026-09-20T16:00:00+08:00", false},
    };
    pl_calendar_t *cal = make(OFFICE);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++)
        CHECK(pl_calendar_is_open(cal, at(cases[i].when)) == cases[i].want, "%s: want %d\n",
              cases[i].label, cases[i].want);
    pl_calendar_destroy(&cal);

    cal = make("{\"zone\": \"Asia/Shanghai\", \"hours\": \"24x7\"}");
    assert_true(pl_calendar_is_open(cal, at("2026-09-28T00:00:00+08:00")));
    assert_true(pl_calendar_is_open(cal, at("2026-09-27T23:59:59.999+08:00")));
    assert_string_equal(pl_calendar_name(cal), "test");
    assert_string_equal(pl_tz_name(pl_calendar_zone(cal)), "Asia/Shanghai");
    pl_calendar_destroy(&cal);
    pl_calendar_destroy(NULL);
    assert_int_equal(failures, 0);
}

/* Searches stop at about three years instead of looping. */
static void test_limits(void **state)
{
    pl_calendar_t *cal = make("{\"zone\": \"UTC\", \"hours\": {},"
                              " \"working_days\": [{\"date\": \"2026-05-05\","
                              " \"hours\": [\"09:00-10:00\"]}]}");
    int64_t ms;
    assert_int_equal(pl_calendar_add(cal, at("2026-01-01T00:00:00Z"), 30 * M, &ms), 0);
    assert_int_equal(ms, at("2026-05-05T09:30:00Z"));
    assert_int_equal(pl_calendar_add(cal, at("2026-01-01T00:00:00Z"), 2 * H, &ms), PL_ETOOLARGE);
    assert_int_equal(pl_calendar_next_open(cal, at("2026-06-01T00:00:00Z"), &ms), PL_ETOOLARGE);
    assert_false(pl_calendar_is_open(cal, at("2026-06-01T00:00:00Z")));
    assert_int_equal(pl_calendar_add_working_days(cal, at("2026-01-01T00:00:00Z"), 2, &ms),
                     PL_ETOOLARGE);
    assert_int_equal(
        pl_calendar_between(cal, at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z"), &ms), 0);
    assert_int_equal(ms, 1 * H);
    assert_int_equal(pl_calendar_add(cal, 0, -1, &ms), PL_EINVAL);
    pl_calendar_destroy(&cal);

    cal = make(OFFICE);
    assert_int_equal(pl_calendar_add(cal, at("2026-01-01T00:00:00Z"), 10LL * 365 * 8 * H, &ms),
                     PL_ETOOLARGE);
    assert_int_equal(pl_calendar_add_working_days(cal, at("2026-01-01T00:00:00Z"), 2000, &ms),
                     PL_ETOOLARGE);
    assert_int_equal(pl_calendar_add_working_days(cal, at("2026-01-01T00:00:00Z"), 500, &ms), 0);
    pl_calendar_destroy(&cal);
}

static void test_load_errors(void **state)
{
    static const struct {
        const char *label, *json, *want_path, *want_text;
    } cases[] = {
        {"not an object", "[]", "calendars.test", "must be an object"},
        {"missing zone", "{\"hours\": \"24x7\"}", "calendars.test.zone", "missing"},
        {"zone name with ..", "{\"zone\": \"../etc/passwd\", \"hours\": \"24x7\"}",
         "calendars.test.zone", "invalid time zone name"},
        {"unknown zone", "{\"zone\": \"Asia/Beijing\", \"hours\": \"24x7\"}", "calendars.test.zone",
         "unknown time zone \"Asia/Beijing\""},
        {"missing hours", "{\"zone\": \"UTC\"}", "calendars.test.hours", "missing"},
        {"wrong 24x7", "{\"zone\": \"UTC\", \"hours\": \"24/7\"}", "calendars.test.hours",
         "must be \"24x7\""},
        {"unknown day", "{\"zone\": \"UTC\", \"hours\": {\"mon-fry\": []}}",
         "calendars.test.hours.mon-fry", "unknown day \"mon-fry\""},
        {"short time", "{\"zone\": \"UTC\", \"hours\": {\"mon\": [\"9:00-18:00\"]}}",
         "calendars.test.hours.mon[0]", "invalid interval \"9:00-18:00\""},
        {"hour 25", "{\"zone\": \"UTC\", \"hours\": {\"mon\": [\"09:00-25:00\"]}}",
         "calendars.test.hours.mon[0]", "invalid interval"},
        {"backwards", "{\"zone\": \"UTC\", \"hours\": {\"mon\": [\"18:00-09:00\"]}}",
         "calendars.test.hours.mon[0]", "ends before it starts"},
        {"overlap", "{\"zone\": \"UTC\", \"hours\": {\"mon\": [\"09:00-13:00\", \"12:00-18:00\"]}}",
         "calendars.test.hours.mon[1]", "overlaps"},
        {"day twice", "{\"zone\": \"UTC\", \"hours\": {\"mon-fri\": [], \"fri\": []}}",
         "calendars.test.hours.fri", "fri already has hours"},
        {"too many intervals",
         "{\"zone\": \"UTC\", \"hours\": {\"mon\": [\"01:00-02:00\", \"02:00-03:00\", "
         "\"03:00-04:00\", \"04:00-05:00\", \"05:00-06:00\", \"06:00-07:00\", \"07:00-08:00\", "
         "\"08:00-09:00\", \"09:00-10:00\"]}}",
         "calendars.test.hours.mon", "limit is 8"},
        {"holidays not an array", "{\"zone\": \"UTC\", \"hours\": \"24x7\", \"holidays\": {}}",
         "calendars.test.holidays", "must be an array"},
        {"bad date", "{\"zone\": \"UTC\", \"hours\": \"24x7\", \"holidays\": [\"2026-02-30\"]}",
         "calendars.test.holidays[0]", "invalid date \"2026-02-30\""},
        {"range backwards",
         "{\"zone\": \"UTC\", \"hours\": \"24x7\", \"holidays\": [{\"from\": \"2026-02-03\", "
         "\"to\": \"2026-02-01\"}]}",
         "calendars.test.holidays[0]", "runs backwards"},
        {"holiday and working day",
         "{\"zone\": \"UTC\", \"hours\": \"24x7\", \"holidays\": [\"2026-02-01\"], "
         "\"working_days\": [\"2026-02-01\"]}",
         "calendars.test", "2026-02-01 is listed as a holiday and a working day"},
        {"working day without hours to copy",
         "{\"zone\": \"UTC\", \"hours\": {\"tue\": [\"09:00-10:00\"]}, \"working_days\": "
         "[\"2026-02-01\"]}",
         "calendars.test.working_days[0]", "Monday"},
        {"unknown field", "{\"zone\": \"UTC\", \"hours\": \"24x7\", \"holiday\": []}",
         "calendars.test.holiday", "unknown field \"holiday\""},
        {"never open",
         "{\"zone\": \"UTC\", \"hours\": {\"mon-sun\": []}, \"holidays\": "
         "[\"2026-01-01\"]}",
         "calendars.test", "never open"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        cJSON *obj = cJSON_Parse(cases[i].json);
        assert_non_null(obj);
        pl_errlist_t errs = PL_ERRLIST_INIT;
        pl_calendar_t *cal =
            pl_calendar_new("test", obj, "test.json", "calendars.test", NULL, &errs);
        bool found = false;
        for (size_t k = 0; k < errs.count; k++) {
            const pl_err_t *e = &errs.items[k];
            char prefix[160];
            snprintf(prefix, sizeof prefix, "test.json: %s: ", e->path);
            found |= strcmp(e->path, cases[i].want_path) == 0 &&
                     strncmp(e->message, prefix, strlen(prefix)) == 0 &&
                     strstr(e->message, cases[i].want_text) && e->hint[0] && e->code == PL_ECONFIG;
        }
        CHECK(!cal && found, "%s: got %p, %zu errors, first \"%s\" at %s\n", cases[i].label,
              (void *)cal, errs.count, errs.count ? errs.items[0].message : "",
              errs.count ? errs.items[0].path : "");
        pl_calendar_destroy(&cal);
        pl_errlist_reset(&errs);
        cJSON_Delete(obj);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_office),   cmocka_unit_test(test_add_midnight_and_dst),
        cmocka_unit_test(test_dst_openings), cmocka_unit_test(test_working_days),
        cmocka_unit_test(test_between),      cmocka_unit_test(test_is_open),
        cmocka_unit_test(test_limits),       cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
