/*
 * pl_calendar: business calendars and open-time arithmetic (see pl_calendar.h).
 *
 * Trusts nothing in the JSON it is built from: every field is checked and
 * every problem reported with its path. After that it trusts its own tables:
 * each day's intervals are sorted, disjoint and inside 00:00-24:00, and the
 * special dates are sorted and unique. Owns its zone and tables.
 *
 * Everything is computed one local day at a time: a day's opening intervals
 * are turned into instants with pl_tz (monotonic, so days and intervals stay
 * in order), and a walk hands them out in time order up to the span limit.
 */
#include "pl_calendar.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_json.h"

#define DAY_MS PL_TZ_DAY_MS
#define INTERVAL_HINT                                                                              \
    "Write each interval as \"HH:MM-HH:MM\" in local time, e.g. \"09:00-18:00\"; "                 \
    "an interval may end at \"24:00\" but not cross midnight."
#define DATE_HINT "Write dates as \"YYYY-MM-DD\", e.g. \"2026-10-01\"."

typedef struct hours {
    int32_t from_s[PL_CALENDAR_DAY_INTERVALS_MAX]; /* seconds after local midnight */
    int32_t to_s[PL_CALENDAR_DAY_INTERVALS_MAX];   /* > from_s, <= 86400 */
    uint8_t n;
} hours_t;

/* A date whose hours differ from its weekday's: a holiday (closed) or an
 * extra working day (its own hours). */
typedef struct special {
    int64_t day; /* local date as days since 1970-01-01 */
    bool open;
    hours_t hours;
} special_t;

struct pl_calendar {
    char *name;
    pl_tz_t *tz;
    hours_t week[7];  /* 0 = Sunday */
    special_t *dates; /* sorted by day, unique */
    size_t ndates, cap;
};

static const char *const DAY_NAMES[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* ---- errors ---- */

typedef struct ctx {
    const char *file;
    pl_errlist_t *errs;
    size_t failed; /* problems found so far */
} ctx_t;

static void fail(ctx_t *cx, const char *path, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(ctx_t *cx, const char *path, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pl_cfg_vproblem(cx->errs, cx->file, path, hint, fmt, ap);
    va_end(ap);
    cx->failed++;
}

static char *join(char *buf, size_t size, const char *parent, const char *name)
{
    return pl_json_path(buf, size, parent, name);
}

static char *join_index(char *buf, size_t size, const char *parent, int i)
{
    return pl_json_path_index(buf, size, parent, i);
}

/* ---- parsing ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static bool two_digits(const char *s, int *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return false;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return true;
}

/* "YYYY-MM-DD", years 1900..9999, into a day number. */
static bool parse_date(const char *s, int64_t *day)
{
    int y1, y2, m, d;
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !two_digits(s, &y1) ||
        !two_digits(s + 2, &y2) || !two_digits(s + 5, &m) || !two_digits(s + 8, &d))
        return false;
    int y = y1 * 100 + y2;
    if (y < 1900 || m < 1 || m > 12 || d < 1 || d > pl_tz_days_in_month(y, m))
        return false;
    *day = pl_tz_days_from_date(y, m, d);
    return true;
}

/* "HH:MM" into seconds, 00:00 .. 24:00. */
static bool parse_clock(const char *s, int32_t *sec)
{
    int h, m;
    if (!two_digits(s, &h) || s[2] != ':' || !two_digits(s + 3, &m) || h > 24 || m > 59 ||
        (h == 24 && m != 0))
        return false;
    *sec = h * 3600 + m * 60;
    return true;
}

static bool parse_interval(const char *s, int32_t *from, int32_t *to)
{
    return s && strlen(s) == 11 && s[5] == '-' && parse_clock(s, from) && parse_clock(s + 6, to);
}

/* An array of intervals for one day: sorted, disjoint, each non-empty. */
static void parse_hours(ctx_t *cx, const cJSON *arr, const char *path, hours_t *h)
{
    char p[PL_ERR_PATH_MAX];
    memset(h, 0, sizeof *h);
    if (!cJSON_IsArray(arr)) {
        fail(cx, path, INTERVAL_HINT, "must be an array of intervals, got %s",
             pl_json_type_name(arr));
        return;
    }
    if (cJSON_GetArraySize(arr) > PL_CALENDAR_DAY_INTERVALS_MAX) {
        fail(cx, path, "Merge intervals: a day may have at most 8.",
             "has %d intervals, limit is %d", cJSON_GetArraySize(arr),
             PL_CALENDAR_DAY_INTERVALS_MAX);
        return;
    }
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        join_index(p, sizeof p, path, i);
        int32_t from, to;
        if (!cJSON_IsString(it)) {
            fail(cx, p, INTERVAL_HINT, "must be an interval string, got %s", pl_json_type_name(it));
            continue;
        }
        if (!parse_interval(it->valuestring, &from, &to)) {
            fail(cx, p, INTERVAL_HINT, "invalid interval \"%.40s\"", it->valuestring);
            continue;
        }
        if (to <= from) {
            fail(cx, p, INTERVAL_HINT, "interval \"%s\" ends before it starts", it->valuestring);
            continue;
        }
        if (h->n > 0 && from < h->to_s[h->n - 1]) {
            fail(cx, p, "List a day's intervals in order, without overlaps.",
                 "interval \"%s\" overlaps or precedes the one before it", it->valuestring);
            continue;
        }
        h->from_s[h->n] = from;
        h->to_s[h->n++] = to;
    }
}

static int day_index(const char *s, size_t len)
{
    for (int i = 0; i < 7; i++)
        if (len == 3 && strncmp(s, DAY_NAMES[i], 3) == 0)
            return i;
    return -1;
}

/* "mon", or a range "mon-fri" (may wrap: "fri-mon"); fills days[7]. */
static bool parse_day_key(const char *key, bool days[7])
{
    const char *dash = strchr(key, '-');
    int a = day_index(key, dash ? (size_t)(dash - key) : strlen(key));
    int b = dash ? day_index(dash + 1, strlen(dash + 1)) : a;
    if (a < 0 || b < 0)
        return false;
    memset(days, 0, 7 * sizeof days[0]);
    for (int d = a;; d = (d + 1) % 7) {
        days[d] = true;
        if (d == b)
            break;
    }
    return true;
}

static void parse_week(ctx_t *cx, pl_calendar_t *cal, const cJSON *hours, const char *path)
{
    char p[PL_ERR_PATH_MAX];
    join(p, sizeof p, path, "hours");
    if (cJSON_IsString(hours) && strcmp(hours->valuestring, "24x7") == 0) {
        for (int d = 0; d < 7; d++)
            cal->week[d] = (hours_t){.from_s = {0}, .to_s = {86400}, .n = 1};
        return;
    }
    if (!cJSON_IsObject(hours)) {
        fail(cx, p, "Use \"24x7\", or an object such as {\"mon-fri\": [\"09:00-18:00\"]}.",
             "must be \"24x7\" or an object of day names, got %s",
             hours ? pl_json_type_name(hours) : "nothing (missing)");
        return;
    }
    bool seen[7] = {false};
    for (const cJSON *it = hours->child; it; it = it->next) {
        char q[PL_ERR_PATH_MAX];
        join(q, sizeof q, p, it->string);
        bool days[7];
        if (!parse_day_key(it->string, days)) {
            fail(cx, q, "Use mon, tue, wed, thu, fri, sat, sun, or a range such as \"mon-fri\".",
                 "unknown day \"%s\"", it->string);
            continue;
        }
        hours_t h;
        parse_hours(cx, it, q, &h);
        for (int d = 0; d < 7; d++) {
            if (!days[d])
                continue;
            if (seen[d])
                fail(cx, q, "Give each day its hours once.", "%s already has hours", DAY_NAMES[d]);
            seen[d] = true;
            cal->week[d] = h;
        }
    }
}

static special_t *add_date(pl_calendar_t *cal, int64_t day)
{
    if (cal->ndates == cal->cap) {
        cal->cap = cal->cap ? cal->cap * 2 : 32;
        cal->dates = pl_realloc(cal->dates, cal->cap * sizeof *cal->dates);
    }
    special_t *s = &cal->dates[cal->ndates++];
    memset(s, 0, sizeof *s);
    s->day = day;
    return s;
}

/* Reads "date" (or the item itself when a string) into *day. */
static bool item_date(ctx_t *cx, const cJSON *it, const char *key, const char *path, int64_t *day)
{
    char p[PL_ERR_PATH_MAX];
    const cJSON *v = cJSON_IsString(it) ? it : cJSON_GetObjectItemCaseSensitive(it, key);
    if (v != it)
        join(p, sizeof p, path, key);
    else
        snprintf(p, sizeof p, "%s", path);
    if (!cJSON_IsString(v)) {
        fail(cx, p, DATE_HINT, "must be a date string, got %s",
             v ? pl_json_type_name(v) : "nothing (missing)");
        return false;
    }
    if (!parse_date(v->valuestring, day)) {
        fail(cx, p, DATE_HINT, "invalid date \"%.32s\"", v->valuestring);
        return false;
    }
    return true;
}

static bool only_keys(ctx_t *cx, const cJSON *obj, const char *path, const char *const *keys,
                      const char *hint)
{
    bool ok = true;
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool known = false;
        for (const char *const *k = keys; *k && !known; k++)
            known = strcmp(*k, it->string) == 0;
        if (!known) {
            char p[PL_ERR_PATH_MAX];
            fail(cx, join(p, sizeof p, path, it->string), hint, "unknown field \"%s\"", it->string);
            ok = false;
        }
    }
    return ok;
}

static void parse_holiday(ctx_t *cx, pl_calendar_t *cal, const cJSON *it, const char *p)
{
    static const char *const KEYS[] = {"date", "from", "to", "name", "note", NULL};
    int64_t from, to;
    if (cJSON_IsObject(it) && !cJSON_GetObjectItemCaseSensitive(it, "date")) {
        if (!only_keys(cx, it, p, KEYS,
                       "A holiday is \"YYYY-MM-DD\", {\"date\"} or "
                       "{\"from\", \"to\"}, with an optional \"name\".") ||
            !item_date(cx, it, "from", p, &from) || !item_date(cx, it, "to", p, &to))
            return;
        if (to < from || to - from > 366) {
            fail(cx, p, "Give \"from\" before \"to\", at most a year apart.",
                 "holiday range runs backwards or over a year");
            return;
        }
    } else {
        if ((cJSON_IsObject(it) && !only_keys(cx, it, p, KEYS, "Use {\"date\", \"name\"}.")) ||
            !item_date(cx, it, "date", p, &from))
            return;
        to = from;
    }
    for (int64_t d = from; d <= to && cal->ndates < PL_CALENDAR_DATES_MAX; d++)
        add_date(cal, d)->open = false;
}

static void parse_working_day(ctx_t *cx, pl_calendar_t *cal, const cJSON *it, const char *p)
{
    static const char *const KEYS[] = {"date", "hours", "name", "note", NULL};
    int64_t day;
    if ((cJSON_IsObject(it) &&
         !only_keys(cx, it, p, KEYS,
                    "A working day is \"YYYY-MM-DD\" or {\"date\", \"hours\"}.")) ||
        !item_date(cx, it, "date", p, &day))
        return;
    const cJSON *hours = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "hours") : NULL;
    special_t s = {.day = day, .open = true, .hours = cal->week[1]};
    if (hours) {
        char q[PL_ERR_PATH_MAX];
        parse_hours(cx, hours, join(q, sizeof q, p, "hours"), &s.hours);
    } else if (s.hours.n == 0) {
        fail(cx, p,
             "Give the day its \"hours\", e.g. {\"date\": \"2026-02-14\", \"hours\": "
             "[\"09:00-18:00\"]}.",
             "working day has no \"hours\" and Monday, whose hours it would take, is closed");
        return;
    }
    if (s.hours.n == 0) {
        fail(cx, p, "Remove it, or give it opening hours.", "working day has no opening hours");
        return;
    }
    if (cal->ndates < PL_CALENDAR_DATES_MAX)
        *add_date(cal, day) = s;
}

static void parse_dates(ctx_t *cx, pl_calendar_t *cal, const cJSON *obj, const char *path,
                        const char *key)
{
    char p[PL_ERR_PATH_MAX], q[PL_ERR_PATH_MAX];
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!arr)
        return;
    join(p, sizeof p, path, key);
    if (!cJSON_IsArray(arr)) {
        fail(cx, p, DATE_HINT, "must be an array, got %s", pl_json_type_name(arr));
        return;
    }
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        join_index(q, sizeof q, p, i);
        if (!cJSON_IsString(it) && !cJSON_IsObject(it))
            fail(cx, q, DATE_HINT, "must be a date or an object, got %s", pl_json_type_name(it));
        else if (key[0] == 'h')
            parse_holiday(cx, cal, it, q);
        else
            parse_working_day(cx, cal, it, q);
        if (cal->ndates >= PL_CALENDAR_DATES_MAX) {
            fail(cx, p, "Keep only the dates of the coming years.", "more than %d dates",
                 PL_CALENDAR_DATES_MAX);
            return;
        }
    }
}

static int by_day(const void *a, const void *b)
{
    const special_t *x = a, *y = b;
    if (x->day != y->day)
        return x->day < y->day ? -1 : 1;
    /* Holidays (closed) first, so that a conflict is found next to them. */
    return (int)x->open - (int)y->open;
}

/* Sorts the dates; merges repeated holidays, refuses a date that is both a
 * holiday and a working day, or a working day twice. */
static void settle_dates(ctx_t *cx, pl_calendar_t *cal, const char *path)
{
    if (cal->ndates == 0)
        return;
    qsort(cal->dates, cal->ndates, sizeof *cal->dates, by_day);
    size_t out = 0;
    for (size_t i = 0; i < cal->ndates; i++) {
        special_t *prev = out ? &cal->dates[out - 1] : NULL;
        if (prev && prev->day == cal->dates[i].day) {
            if (prev->open || cal->dates[i].open) {
                int64_t y;
                int m, d;
                pl_tz_date_from_days(prev->day, &y, &m, &d);
                fail(cx, path, "A date is either a holiday or a working day, listed once.",
                     "%04d-%02d-%02d is listed %s", (int)y, m, d,
                     prev->open ? "as a working day twice" : "as a holiday and a working day");
            }
            continue;
        }
        cal->dates[out++] = cal->dates[i];
    }
    cal->ndates = out;
}

static bool has_open_time(const pl_calendar_t *cal)
{
    for (int d = 0; d < 7; d++)
        if (cal->week[d].n)
            return true;
    for (size_t i = 0; i < cal->ndates; i++)
        if (cal->dates[i].open)
            return true;
    return false;
}

void pl_calendar_destroy(pl_calendar_t **cal_p)
{
    if (!cal_p || !*cal_p)
        return;
    pl_calendar_t *cal = *cal_p;
    pl_tz_destroy(&cal->tz);
    pl_free(cal->dates);
    pl_free(cal->name);
    pl_free(cal);
    *cal_p = NULL;
}

static void load_zone(ctx_t *cx, pl_calendar_t *cal, const cJSON *obj, const char *path,
                      const char *zoneinfo_dir)
{
    char p[PL_ERR_PATH_MAX];
    join(p, sizeof p, path, "zone");
    const cJSON *zone = cJSON_GetObjectItemCaseSensitive(obj, "zone");
    if (!cJSON_IsString(zone)) {
        fail(cx, p, "Give an IANA zone name such as \"Asia/Shanghai\".",
             "must be a time zone name, got %s",
             zone ? pl_json_type_name(zone) : "nothing (missing)");
        return;
    }
    pl_err_t e;
    cal->tz = pl_tz_load_from(zoneinfo_dir, zone->valuestring, &e);
    if (!cal->tz)
        fail(cx, p, e.hint[0] ? e.hint : NULL, "%s", e.message);
}

pl_calendar_t *pl_calendar_new(const char *name, const cJSON *obj, const char *file,
                               const char *path, const char *zoneinfo_dir, pl_errlist_t *errs)
{
    static const char *const KEYS[] = {"zone", "hours", "holidays", "working_days", "note", NULL};
    ctx_t cx = {file ? file : "calendar", errs, 0};
    path = path ? path : "";
    if (!cJSON_IsObject(obj)) {
        fail(&cx, path, "A calendar is an object with \"zone\" and \"hours\".",
             "calendar \"%s\" must be an object, got %s", name ? name : "", pl_json_type_name(obj));
        return NULL;
    }
    pl_calendar_t *cal = pl_calloc(1, sizeof *cal);
    cal->name = pl_strdup(name ? name : "");
    (void)only_keys(&cx, obj, path, KEYS,
                    "A calendar has zone, hours, holidays, working_days and note.");
    load_zone(&cx, cal, obj, path, zoneinfo_dir);
    parse_week(&cx, cal, cJSON_GetObjectItemCaseSensitive(obj, "hours"), path);
    parse_dates(&cx, cal, obj, path, "holidays");
    parse_dates(&cx, cal, obj, path, "working_days");
    settle_dates(&cx, cal, path);
    if (cx.failed == 0 && !has_open_time(cal))
        fail(&cx, path, "Give it opening hours, e.g. \"hours\": {\"mon-fri\": [\"09:00-18:00\"]}.",
             "calendar \"%s\" is never open", cal->name);
    if (cx.failed)
        pl_calendar_destroy(&cal);
    return cal;
}

const char *pl_calendar_name(const pl_calendar_t *cal)
{
    return cal->name;
}

const pl_tz_t *pl_calendar_zone(const pl_calendar_t *cal)
{
    return cal->tz;
}

/* ---- arithmetic ---- */

static const hours_t *hours_on(const pl_calendar_t *cal, int64_t day)
{
    size_t lo = 0, hi = cal->ndates;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cal->dates[mid].day < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < cal->ndates && cal->dates[lo].day == day)
        return cal->dates[lo].open ? &cal->dates[lo].hours : NULL;
    return &cal->week[pl_tz_weekday(day)];
}

static bool day_open(const pl_calendar_t *cal, int64_t day)
{
    const hours_t *h = hours_on(cal, day);
    return h && h->n > 0;
}

static int64_t local_to_utc(const pl_calendar_t *cal, int64_t local_ms)
{
    int64_t at;
    (void)pl_tz_from_local_ms(cal->tz, local_ms, &at); /* the fit only informs */
    return at;
}

static int64_t local_day(const pl_calendar_t *cal, int64_t at_ms)
{
    return floor_div(pl_tz_to_local_ms(cal->tz, at_ms), DAY_MS);
}

/* Hands out the open intervals [a, b) as instants, in time order, one
 * local day after another, from the day before a start instant's. */
typedef struct walk {
    const pl_calendar_t *cal;
    int64_t day, last_day;
    int64_t a[PL_CALENDAR_DAY_INTERVALS_MAX], b[PL_CALENDAR_DAY_INTERVALS_MAX];
    size_t n, i;
} walk_t;

static void walk_start(walk_t *w, const pl_calendar_t *cal, int64_t from_ms)
{
    w->cal = cal;
    w->day = local_day(cal, from_ms) - 2;
    w->last_day = w->day + 2 + PL_CALENDAR_SPAN_DAYS;
    w->n = w->i = 0;
}

static void walk_load(walk_t *w)
{
    const hours_t *h = hours_on(w->cal, w->day);
    w->n = w->i = 0;
    for (size_t k = 0; h && k < h->n; k++) {
        int64_t a = local_to_utc(w->cal, w->day * DAY_MS + h->from_s[k] * 1000LL);
        int64_t b = local_to_utc(w->cal, w->day * DAY_MS + h->to_s[k] * 1000LL);
        if (b > a) { /* an interval inside a DST gap is empty */
            w->a[w->n] = a;
            w->b[w->n++] = b;
        }
    }
}

/* The next interval that ends after `after` and starts before `until`.
 * Returns 0, 1 when none starts before until, or PL_ETOOLARGE. */
static int walk_next(walk_t *w, int64_t after, int64_t until, int64_t *a, int64_t *b)
{
    for (;;) {
        for (; w->i < w->n; w->i++) {
            if (w->b[w->i] <= after)
                continue;
            if (w->a[w->i] >= until)
                return 1;
            *a = w->a[w->i];
            *b = w->b[w->i++];
            return 0;
        }
        if (w->day >= w->last_day)
            return PL_ETOOLARGE;
        w->day++;
        if (local_to_utc(w->cal, w->day * DAY_MS) >= until)
            return 1;
        walk_load(w);
    }
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

bool pl_calendar_is_open(const pl_calendar_t *cal, int64_t at_ms)
{
    walk_t w;
    int64_t a, b;
    walk_start(&w, cal, at_ms);
    return at_ms < INT64_MAX && walk_next(&w, at_ms, at_ms + 1, &a, &b) == 0 && a <= at_ms;
}

bool pl_calendar_is_working_day(const pl_calendar_t *cal, int64_t year, int month, int day)
{
    if (month < 1 || month > 12 || day < 1 || day > pl_tz_days_in_month(year, month))
        return false;
    return day_open(cal, pl_tz_days_from_date(year, month, day));
}

int pl_calendar_next_open(const pl_calendar_t *cal, int64_t at_ms, int64_t *open_ms)
{
    walk_t w;
    int64_t a, b;
    walk_start(&w, cal, at_ms);
    if (walk_next(&w, at_ms, INT64_MAX, &a, &b) != 0)
        return PL_ETOOLARGE;
    *open_ms = max64(a, at_ms);
    return 0;
}

int pl_calendar_add(const pl_calendar_t *cal, int64_t start_ms, int64_t duration_ms,
                    int64_t *due_ms)
{
    if (duration_ms < 0)
        return PL_EINVAL;
    walk_t w;
    walk_start(&w, cal, start_ms);
    int64_t t = start_ms, left = duration_ms, a, b;
    for (;;) {
        if (walk_next(&w, t, INT64_MAX, &a, &b) != 0)
            return PL_ETOOLARGE;
        int64_t s = max64(a, t);
        if (b - s >= left) {
            *due_ms = s + left;
            return 0;
        }
        left -= b - s;
        t = b;
    }
}

int pl_calendar_add_working_days(const pl_calendar_t *cal, int64_t start_ms, int n, int64_t *due_ms)
{
    if (n < 0)
        return PL_EINVAL;
    int64_t s;
    if (pl_calendar_next_open(cal, start_ms, &s) != 0)
        return PL_ETOOLARGE;
    int64_t local = pl_tz_to_local_ms(cal->tz, s);
    int64_t day = floor_div(local, DAY_MS), tod = local - day * DAY_MS;
    int64_t d = day;
    for (int count = 0; count < n;) {
        if (++d - day > PL_CALENDAR_SPAN_DAYS)
            return PL_ETOOLARGE;
        if (day_open(cal, d))
            count++;
    }
    return pl_calendar_next_open(cal, local_to_utc(cal, d * DAY_MS + tod), due_ms);
}

int pl_calendar_between(const pl_calendar_t *cal, int64_t from_ms, int64_t to_ms, int64_t *open_ms)
{
    *open_ms = 0;
    if (to_ms <= from_ms)
        return 0;
    walk_t w;
    walk_start(&w, cal, from_ms);
    int64_t total = 0, a, b;
    for (;;) {
        int rc = walk_next(&w, from_ms, to_ms, &a, &b);
        if (rc < 0)
            return rc;
        if (rc > 0)
            break;
        total += min64(b, to_ms) - max64(a, from_ms);
        if (b >= to_ms)
            break;
    }
    *open_ms = total;
    return 0;
}
