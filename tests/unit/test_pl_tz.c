/*
 * test_pl_tz: UTC offsets from TZif files (tables and POSIX footers), local
 * time <-> UTC across DST gaps and overlaps, zone names, and hand-made TZif
 * data (versions 1 to 3, corrupt files).
 *
 * Real zones come from the system's zoneinfo (tzdata 2025b here; the
 * expected values hold for every release since 2007 for these zones) or
 * $PLAINT_ZONEINFO. Expected values were computed independently with
 * Python's zoneinfo module.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "pl_err.h"
#include "pl_time.h"
#include "pl_tz.h"

#include "test_util.h"

static int64_t at(const char *rfc3339)
{
    int64_t ms = 0;
    pl_err_t err;
    if (pl_time_parse(rfc3339, &ms, "test", &err) != 0)
        fail_msg("bad time in test table: %s", rfc3339);
    return ms;
}

static pl_tz_t *zone(const char *name)
{
    pl_err_t err;
    pl_tz_t *tz = pl_tz_load(name, &err);
    if (!tz)
        fail_msg("cannot load %s: %s (%s)", name, err.message, err.hint);
    return tz;
}

static void test_offsets(void **state)
{
    static const struct {
        const char *label, *zone, *at;
        int32_t want_off;
        const char *want_abbr;
        bool want_dst;
    } cases[] = {
        {"shanghai summer", "Asia/Shanghai", "2026-07-01T00:00:00Z", 28800, "CST", false},
        {"shanghai 1988 dst (table)", "Asia/Shanghai", "1988-06-01T00:00:00Z", 32400, "CDT", true},
        {"shanghai 2040 (footer)", "Asia/Shanghai", "2040-01-01T00:00:00Z", 28800, "CST", false},
        {"berlin winter", "Europe/Berlin", "2026-01-15T12:00:00Z", 3600, "CET", false},
        {"berlin before spring", "Europe/Berlin", "2026-03-29T00:59:59Z", 3600, "CET", false},
        {"berlin at spring", "Europe/Berlin", "2026-03-29T01:00:00Z", 7200, "CEST", true},
        {"berlin before fall", "Europe/Berlin", "2026-10-25T00:59:59Z", 7200, "CEST", true},
        {"berlin at fall", "Europe/Berlin", "2026-10-25T01:00:00Z", 3600, "CET", false},
        {"new york before spring", "America/New_York", "2026-03-08T06:59:59Z", -18000, "EST",
         false},
        {"new york at spring", "America/New_York", "2026-03-08T07:00:00Z", -14400, "EDT", true},
        {"new york before fall", "America/New_York", "2026-11-01T05:59:59Z", -14400, "EDT", true},
        {"new york at fall", "America/New_York", "2026-11-01T06:00:00Z", -18000, "EST", false},
        {"new york 2040 before spring", "America/New_York", "2040-03-11T06:59:59Z", -18000, "EST",
         false},
        {"new york 2040 at spring", "America/New_York", "2040-03-11T07:00:00Z", -14400, "EDT",
         true},
        {"new york 2040 before fall", "America/New_York", "2040-11-04T05:59:59Z", -14400, "EDT",
         true},
        {"new york 2040 at fall", "America/New_York", "2040-11-04T06:00:00Z", -18000, "EST", false},
        {"new york 1900 (before the table)", "America/New_York", "1900-01-01T00:00:00Z", -18000,
         "EST", false},
        {"berlin 2040 at spring", "Europe/Berlin", "2040-03-25T01:00:00Z", 7200, "CEST", true},
        {"berlin 2100 before fall", "Europe/Berlin", "2100-10-31T00:59:59Z", 7200, "CEST", true},
        {"berlin 2100 at fall", "Europe/Berlin", "2100-10-31T01:00:00Z", 3600, "CET", false},
        {"sydney 2040 before april", "Australia/Sydney", "2040-03-31T15:59:59Z", 39600, "AEDT",
         true},
        {"sydney 2040 at april", "Australia/Sydney", "2040-03-31T16:00:00Z", 36000, "AEST", false},
        {"sydney 2040 before october", "Australia/Sydney", "2040-10-06T15:59:59Z", 36000, "AEST",
         false},
        {"sydney 2040 at october", "Australia/Sydney", "2040-10-06T16:00:00Z", 39600, "AEDT", true},
        {"kolkata half hour", "Asia/Kolkata", "2040-01-01T00:00:00Z", 19800, "IST", false},
        {"st johns 2040 summer", "America/St_Johns", "2040-07-01T00:00:00Z", -9000, "NDT", true},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        pl_tz_t *tz = zone(cases[i].zone);
        int64_t t = at(cases[i].at);
        int32_t off = pl_tz_offset_s(tz, t);
        const char *abbr = pl_tz_abbrev(tz, t);
        bool dst = pl_tz_is_dst(tz, t);
        CHECK(off == cases[i].want_off && strcmp(abbr, cases[i].want_abbr) == 0 &&
                  dst == cases[i].want_dst,
              "%s: got %d %s %d, want %d %s %d\n", cases[i].label, off, abbr, dst,
              cases[i].want_off, cases[i].want_abbr, cases[i].want_dst);
        CHECK(pl_tz_to_local_ms(tz, t) == t + cases[i].want_off * 1000LL, "%s: to_local\n",
              cases[i].label);
        pl_tz_destroy(&tz);
        assert_null(tz);
    }
    assert_int_equal(failures, 0);
}

/* Local wall time as local ms, from "YYYY-MM-DDTHH:MM:SS". */
static int64_t wall(const char *text)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%sZ", text);
    return at(buf);
}

static void test_from_local(void **state)
{
    static const struct {
        const char *label, *zone, *local, *want;
        pl_tz_fit_t want_fit;
    } cases[] = {
        {"shanghai", "Asia/Shanghai", "2026-06-01T09:00:00", "2026-06-01T01:00:00Z", PL_TZ_UNIQUE},
        {"new york before gap", "America/New_York", "2026-03-08T01:59:59", "2026-03-08T06:59:59Z",
         PL_TZ_UNIQUE},
        {"new york in gap", "America/New_York", "2026-03-08T02:30:00", "2026-03-08T07:00:00Z",
         PL_TZ_GAP},
        {"new york gap start", "America/New_York", "2026-03-08T02:00:00", "2026-03-08T07:00:00Z",
         PL_TZ_GAP},
        {"new york after gap", "America/New_York", "2026-03-08T03:00:00", "2026-03-08T07:00:00Z",
         PL_TZ_UNIQUE},
        {"new york overlap: first", "America/New_York", "2026-11-01T01:30:00",
         "2026-11-01T05:30:00Z", PL_TZ_OVERLAP},
        {"new york overlap start", "America/New_York", "2026-11-01T01:00:00",
         "2026-11-01T05:00:00Z", PL_TZ_OVERLAP},
        {"new york after overlap", "America/New_York", "2026-11-01T02:00:00",
         "2026-11-01T07:00:00Z", PL_TZ_UNIQUE},
        {"berlin in gap", "Europe/Berlin", "2026-03-29T02:30:00", "2026-03-29T01:00:00Z",
         PL_TZ_GAP},
        {"berlin overlap", "Europe/Berlin", "2026-10-25T02:30:00", "2026-10-25T00:30:00Z",
         PL_TZ_OVERLAP},
        {"new york 2040 gap (footer)", "America/New_York", "2040-03-11T02:30:00",
         "2040-03-11T07:00:00Z", PL_TZ_GAP},
        {"berlin 2040 overlap (footer)", "Europe/Berlin", "2040-10-28T02:30:00",
         "2040-10-28T00:30:00Z", PL_TZ_OVERLAP},
        {"sydney 2040 overlap (footer)", "Australia/Sydney", "2040-04-01T02:30:00",
         "2040-03-31T15:30:00Z", PL_TZ_OVERLAP},
        {"sydney 2040 gap (footer)", "Australia/Sydney", "2040-10-07T02:30:00",
         "2040-10-06T16:00:00Z", PL_TZ_GAP},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        pl_tz_t *tz = zone(cases[i].zone);
        int64_t got = 0;
        pl_tz_fit_t fit = pl_tz_from_local_ms(tz, wall(cases[i].local), &got);
        char buf[PL_RFC3339_MAX];
        CHECK(got == at(cases[i].want) && fit == cases[i].want_fit,
              "%s: got %s fit %d, want %s %d\n", cases[i].label, pl_time_format(got, buf), fit,
              cases[i].want, cases[i].want_fit);
        pl_tz_destroy(&tz);
    }
    assert_int_equal(failures, 0);
}

/* Every instant maps back to itself through local time, except the second
 * pass of an overlap, which maps to the first; and local -> UTC never goes
 * backwards. */
static void test_round_trip(void **state)
{
    const char *zones[] = {"Europe/Berlin", "America/New_York", "Australia/Sydney"};
    for (size_t z = 0; z < NELEMS(zones); z++) {
        pl_tz_t *tz = zone(zones[z]);
        int64_t prev = INT64_MIN;
        for (int64_t t = at("2026-01-01T00:00:00Z"); t < at("2027-01-01T00:00:00Z");
             t += 15 * 60 * 1000) {
            int64_t back = 0;
            pl_tz_fit_t fit = pl_tz_from_local_ms(tz, pl_tz_to_local_ms(tz, t), &back);
            assert_true(fit != PL_TZ_GAP);
            if (fit == PL_TZ_UNIQUE)
                assert_int_equal(back, t);
            else
                assert_true(back == t || back == t - 3600 * 1000);
        }
        for (int64_t l = wall("2026-01-01T00:00:00"); l < wall("2027-01-01T00:00:00");
             l += 10 * 60 * 1000) {
            int64_t u = 0;
            (void)pl_tz_from_local_ms(tz, l, &u);
            assert_true(u >= prev);
            prev = u;
        }
        pl_tz_destroy(&tz);
    }
}

static void test_names(void **state)
{
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    static const struct {
        const char *label, *name;
        int want_code;
        const char *want_in_message;
    } cases[] = {
        {"empty", "", PL_EINVAL, "empty"},
        {"absolute", "/etc/passwd", PL_EINVAL, "absolute"},
        {"dot dot", "../etc/passwd", PL_EINVAL, "\"..\""},
        {"dot dot inside", "Asia/../../etc/passwd", PL_EINVAL, "\"..\""},
        {"dot", "Asia/./Shanghai", PL_EINVAL, "\".\""},
        {"double slash", "Asia//Shanghai", PL_EINVAL, "empty path"},
        {"trailing slash", "Asia/Shanghai/", PL_EINVAL, "empty path"},
        {"space", "Asia/Shang hai", PL_EINVAL, "only letters"},
        {"control", "Asia/\nShanghai", PL_EINVAL, "only letters"},
        {"misspelt", "Asia/Shangai", PL_ENOTFOUND, "unknown time zone \"Asia/Shangai\""},
        {"a folder", "Asia", PL_ENOTFOUND, "unknown time zone \"Asia\""},
        {"not a TZif file", "zone1970.tab", PL_ECONFIG, "not valid TZif"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        pl_err_t err;
        pl_err_clear(&err);
        pl_tz_t *tz = pl_tz_load(cases[i].name, &err);
        CHECK(!tz && err.code == cases[i].want_code &&
                  strstr(err.message, cases[i].want_in_message) && err.hint[0],
              "%s: got %p code %d \"%s\"\n", cases[i].label, (void *)tz, err.code, err.message);
        pl_tz_destroy(&tz);
    }
    pl_err_t err;
    assert_null(pl_tz_load(longname, &err));
    assert_int_equal(err.code, PL_EINVAL);
    assert_non_null(strstr(err.message, "over 255"));
    assert_false(pl_tz_name_valid(NULL, &err));
    assert_true(pl_tz_name_valid("America/Argentina/Buenos_Aires", &err));
    assert_true(pl_tz_name_valid("Etc/GMT+8", &err));
    assert_int_equal(failures, 0);
}

/* A zoneinfo folder without the zone: only UTC works, built in. */
static void test_builtin_utc(void **state)
{
    pl_err_t err;
    pl_tz_t *tz = pl_tz_load_from("/nonexistent-zoneinfo", "UTC", &err);
    assert_non_null(tz);
    assert_string_equal(pl_tz_name(tz), "UTC");
    assert_int_equal(pl_tz_offset_s(tz, at("2026-07-01T00:00:00Z")), 0);
    assert_string_equal(pl_tz_abbrev(tz, 0), "UTC");
    pl_tz_destroy(&tz);
    assert_null(pl_tz_load_from("/nonexistent-zoneinfo", "Asia/Shanghai", &err));
    assert_int_equal(err.code, PL_ENOTFOUND);
    assert_non_null(strstr(err.hint, "PLAINT_ZONEINFO"));
    pl_tz_destroy(NULL);
}

/* ---- hand-made TZif data ---- */

typedef struct ttinfo {
    int32_t off;
    uint8_t dst, abbr;
} ttinfo_t;

typedef struct tzif {
    char version; /* 0, '2', '3' */
    const int64_t *times;
    const uint8_t *idx;
    uint32_t ntimes;
    const ttinfo_t *types;
    uint32_t ntypes;
    const char *chars; /* NUL-separated, total nchars bytes */
    uint32_t nchars;
    uint32_t nleap;
    const char *footer; /* without the newlines */
} tzif_t;

static size_t put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

static size_t put_block(unsigned char *p, const tzif_t *z, int tsize)
{
    size_t n = 0;
    memcpy(p, "TZif", 4);
    p[4] = (unsigned char)z->version;
    memset(p + 5, 0, 15);
    n = 20;
    uint32_t counts[6] = {0, 0, z->nleap, z->ntimes, z->ntypes, z->nchars};
    for (int i = 0; i < 6; i++)
        n += put32(p + n, counts[i]);
    for (uint32_t i = 0; i < z->ntimes; i++) {
        if (tsize == 8)
            n += put32(p + n, (uint32_t)((uint64_t)z->times[i] >> 32));
        n += put32(p + n, (uint32_t)z->times[i]);
    }
    for (uint32_t i = 0; i < z->ntimes; i++)
        p[n++] = z->idx[i];
    for (uint32_t i = 0; i < z->ntypes; i++) {
        n += put32(p + n, (uint32_t)z->types[i].off);
        p[n++] = z->types[i].dst;
        p[n++] = z->types[i].abbr;
    }
    memcpy(p + n, z->chars, z->nchars);
    n += z->nchars;
    for (uint32_t i = 0; i < z->nleap; i++) {
        if (tsize == 8)
            n += put32(p + n, 0);
        n += put32(p + n, 78796800u + i);
        n += put32(p + n, i + 1);
    }
    return n;
}

static size_t build(unsigned char *buf, const tzif_t *z)
{
    size_t n = put_block(buf, z, 4);
    if (z->version == 0)
        return n;
    n += put_block(buf + n, z, 8);
    n += (size_t)sprintf((char *)buf + n, "\n%s\n", z->footer ? z->footer : "");
    return n;
}

static pl_tz_t *parse(const tzif_t *z, size_t cut, pl_err_t *err)
{
    static unsigned char buf[4096];
    size_t n = build(buf, z);
    return pl_tz_parse("Test/Zone", buf, cut ? cut : n, err);
}

static const int64_t TIMES[] = {1000, 2000};
static const uint8_t IDX[] = {1, 0};
static const ttinfo_t TYPES[] = {{0, 0, 0}, {3600, 1, 4}};
static const char CHARS[] = "AAA\0BBB"; /* 8 bytes with the final NUL */

static void test_tzif_versions(void **state)
{
    pl_err_t err;
    /* Version 1: 32-bit times, no footer; the last type holds for ever. */
    tzif_t v1 = {0, TIMES, IDX, 1, TYPES, 2, CHARS, 8, 0, NULL};
    pl_tz_t *tz = parse(&v1, 0, &err);
    assert_non_null(tz);
    assert_int_equal(pl_tz_offset_s(tz, 999999), 0);
    assert_int_equal(pl_tz_offset_s(tz, 1000000), 3600);
    assert_int_equal(pl_tz_offset_s(tz, at("2040-07-01T00:00:00Z")), 3600);
    assert_string_equal(pl_tz_abbrev(tz, 1000000), "BBB");
    pl_tz_destroy(&tz);

    /* Version 2, table then footer: DST all year (RFC 8536 section 3.3.1). */
    tzif_t v2 = {'2', TIMES, IDX, 2, TYPES, 2, CHARS, 8, 0, "EST5EDT,0/0,J365/25"};
    tz = parse(&v2, 0, &err);
    assert_non_null(tz);
    assert_int_equal(pl_tz_offset_s(tz, 1500000), 3600);
    assert_int_equal(pl_tz_offset_s(tz, at("2040-01-01T12:00:00Z")), -14400);
    assert_int_equal(pl_tz_offset_s(tz, at("2040-07-01T00:00:00Z")), -14400);
    assert_int_equal(pl_tz_offset_s(tz, at("2040-12-31T23:59:59Z")), -14400);
    assert_string_equal(pl_tz_abbrev(tz, at("2040-12-31T23:59:59Z")), "EDT");
    pl_tz_destroy(&tz);

    /* Version 3: rule times outside 0..24h (RFC 8536's America/Godthab). */
    tzif_t v3 = {'3', NULL, NULL, 0, TYPES, 1, CHARS, 8, 0, "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1"};
    tz = parse(&v3, 0, &err);
    assert_non_null(tz);
    assert_int_equal(pl_tz_offset_s(tz, at("2040-03-25T00:59:59Z")), -10800);
    assert_int_equal(pl_tz_offset_s(tz, at("2040-03-25T01:00:00Z")), -7200);
    assert_int_equal(pl_tz_offset_s(tz, at("2040-10-28T00:59:59Z")), -7200);
    assert_int_equal(pl_tz_offset_s(tz, at("2040-10-28T01:00:00Z")), -10800);
    assert_string_equal(pl_tz_abbrev(tz, at("2040-07-01T00:00:00Z")), "-02");
    pl_tz_destroy(&tz);

    /* Julian days: J60 is March 1 even in leap years. */
    tzif_t jn = {'2', NULL, NULL, 0, TYPES, 1, CHARS, 8, 0, "AAA0BBB,J60/0,J305/0"};
    tz = parse(&jn, 0, &err);
    assert_non_null(tz);
    assert_int_equal(pl_tz_offset_s(tz, at("2040-02-29T23:59:59Z")), 0);
    assert_int_equal(pl_tz_offset_s(tz, at("2040-03-01T00:00:00Z")), 3600);
    pl_tz_destroy(&tz);

    /* An empty footer: the last table entry holds. */
    tzif_t nofooter = {'2', TIMES, IDX, 1, TYPES, 2, CHARS, 8, 0, ""};
    tz = parse(&nofooter, 0, &err);
    assert_non_null(tz);
    assert_int_equal(pl_tz_offset_s(tz, at("2040-01-01T00:00:00Z")), 3600);
    pl_tz_destroy(&tz);
}

static void test_tzif_corrupt(void **state)
{
    static const int64_t unsorted[] = {2000, 1000};
    static const uint8_t bad_idx[] = {5};
    static const ttinfo_t bad_off[] = {{100000, 0, 0}};
    static const ttinfo_t bad_abbr[] = {{0, 0, 9}};
    static const struct {
        const char *label;
        tzif_t z;
        size_t cut;
        const char *want;
    } cases[] = {
        {"truncated header", {'2', TIMES, IDX, 1, TYPES, 2, CHARS, 8, 0, ""}, 30, "header"},
        {"truncated data", {0, TIMES, IDX, 2, TYPES, 2, CHARS, 8, 0, NULL}, 50, "truncated"},
        {"truncated footer", {'2', TIMES, IDX, 1, TYPES, 2, CHARS, 8, 0, "CET-1"}, 0, "footer"},
        {"bad version", {'9', TIMES, IDX, 1, TYPES, 2, CHARS, 8, 0, ""}, 0, "version"},
        {"unsorted", {'2', unsorted, IDX, 2, TYPES, 2, CHARS, 8, 0, ""}, 0, "increasing"},
        {"type index", {'2', TIMES, bad_idx, 1, TYPES, 2, CHARS, 8, 0, ""}, 0, "type"},
        {"offset range", {'2', NULL, NULL, 0, bad_off, 1, CHARS, 8, 0, ""}, 0, "offset"},
        {"abbreviation index",
         {'2', NULL, NULL, 0, bad_abbr, 1, CHARS, 8, 0, ""},
         0,
         "abbreviation"},
        {"no types", {'2', NULL, NULL, 0, TYPES, 0, CHARS, 8, 0, ""}, 0, "types"},
        {"leap seconds", {'2', NULL, NULL, 0, TYPES, 1, CHARS, 8, 2, ""}, 0, "leap"},
        {"bad footer",
         {'2', NULL, NULL, 0, TYPES, 1, CHARS, 8, 0, "CET-1CEST,M13.5.0,M10.5.0"},
         0,
         "POSIX"},
        {"footer offset", {'2', NULL, NULL, 0, TYPES, 1, CHARS, 8, 0, "AAA99"}, 0, "POSIX"},
        {"short abbreviation", {'2', NULL, NULL, 0, TYPES, 1, CHARS, 8, 0, "AB-1"}, 0, "POSIX"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        pl_err_t err;
        pl_err_clear(&err);
        size_t cut = cases[i].cut;
        if (strcmp(cases[i].label, "truncated footer") == 0) {
            unsigned char buf[4096];
            cut = build(buf, &cases[i].z) - 1; /* drop the final newline */
        }
        pl_tz_t *tz = parse(&cases[i].z, cut, &err);
        CHECK(!tz && err.code == PL_ECONFIG && strstr(err.message, cases[i].want) &&
                  strstr(err.message, "Test/Zone") && err.hint[0],
              "%s: got %p \"%s\"\n", cases[i].label, (void *)tz, err.message);
        pl_tz_destroy(&tz);
    }
    pl_err_t err;
    assert_null(pl_tz_parse("Empty", "", 0, &err));
    assert_non_null(strstr(err.message, "header"));
    assert_int_equal(failures, 0);
}

static void test_date_math(void **state)
{
    static const struct {
        int64_t y;
        int m, d, wday;
        int64_t days;
    } cases[] = {
        {1970, 1, 1, 4, 0},     {2000, 2, 29, 2, 11016}, {2026, 2, 17, 2, 20501},
        {1969, 12, 31, 3, -1},  {1, 1, 1, 1, -719162},   {9999, 12, 31, 5, 2932896},
        {2100, 3, 1, 1, 47541},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        int64_t days = pl_tz_days_from_date(cases[i].y, cases[i].m, cases[i].d), y;
        int m, d;
        pl_tz_date_from_days(days, &y, &m, &d);
        CHECK(days == cases[i].days && y == cases[i].y && m == cases[i].m && d == cases[i].d &&
                  pl_tz_weekday(days) == cases[i].wday,
              "%04lld-%02d-%02d: got %lld days, weekday %d\n", (long long)cases[i].y, cases[i].m,
              cases[i].d, (long long)days, pl_tz_weekday(days));
    }
    assert_int_equal(pl_tz_days_in_month(2100, 2), 28);
    assert_int_equal(pl_tz_days_in_month(2000, 2), 29);
    assert_int_equal(pl_tz_days_in_month(2026, 13), 0);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets),      cmocka_unit_test(test_from_local),
        cmocka_unit_test(test_round_trip),   cmocka_unit_test(test_names),
        cmocka_unit_test(test_builtin_utc),  cmocka_unit_test(test_tzif_versions),
        cmocka_unit_test(test_tzif_corrupt), cmocka_unit_test(test_date_math),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
