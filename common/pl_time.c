/*
 * pl_time: clocks, RFC 3339 date-times and durations (see pl_time.h).
 *
 * Trusts nothing about the text it parses: date-times come from clients and
 * durations from config files, so both parsers are strict, refuse trailing
 * garbage and overflow, and say what is wrong in err. Owns nothing.
 */
#include "pl_time.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pl_utf8.h"

#define TIME_HINT "Use RFC 3339 with a time zone, e.g. \"2026-11-25T03:52:00Z\"."
#define DURATION_HINT "Use a number and a unit: ms, s, m, h, d, w, e.g. \"90s\" or \"24h\"."
/* Bytes of bad input quoted in a message: enough to recognise it, and short
 * enough that the reason still fits in pl_err_t.message. */
#define QUOTE_MAX 64

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the range of a 4-digit year. */
#define RFC3339_MIN_MS (-62135596800000LL)
#define RFC3339_MAX_MS (253402300799999LL)

int64_t pl_time_now_ms(void)
{
    struct timespec ts;
    /* CLOCK_REALTIME cannot fail with a valid pointer. */
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pl_time_mono_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes value as exactly width digits (value is known to fit); returns
 * the end. Hand-made because it runs for every log line. */
static char *put_digits(char *p, int value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + value % 10);
        value /= 10;
    }
    return p + width;
}

static char *put_char(char *p, char c)
{
    *p = c;
    return p + 1;
}

char *pl_time_format(int64_t at_ms, char *buf)
{
    /* Out-of-range values are clamped so the output always parses back. */
    if (at_ms < RFC3339_MIN_MS)
        at_ms = RFC3339_MIN_MS;
    if (at_ms > RFC3339_MAX_MS)
        at_ms = RFC3339_MAX_MS;
    int64_t sec = at_ms / 1000, ms = at_ms % 1000;
    if (ms < 0) { /* floor, not truncation, for times before 1970 */
        ms += 1000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) /* cannot fail in the clamped range */
        memset(&tm, 0, sizeof tm);
    char *p = put_digits(buf, tm.tm_year + 1900, 4);
    p = put_digits(put_char(p, '-'), tm.tm_mon + 1, 2);
    p = put_digits(put_char(p, '-'), tm.tm_mday, 2);
    p = put_digits(put_char(p, 'T'), tm.tm_hour, 2);
    p = put_digits(put_char(p, ':'), tm.tm_min, 2);
    p = put_digits(put_char(p, ':'), tm.tm_sec, 2);
    p = put_digits(put_char(p, '.'), (int)ms, 3);
    p = put_char(p, 'Z');
    *p = '\0';
    return buf;
}

/* Length of the UTF-8 sequence that lead byte c starts, 1 for anything else. */
static size_t lead_length(unsigned char c)
{
    return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

/* Copies at most QUOTE_MAX bytes of text for a message, cut on a character
 * boundary, with control characters and bad bytes as '?', so that a message
 * stays valid UTF-8 and one line. buf holds QUOTE_MAX + 4 bytes. */
static const char *quote(const char *text, char *buf)
{
    size_t len = strlen(text);
    size_t n = pl_utf8_truncate(text, len, QUOTE_MAX);
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)text[i];
        size_t k = lead_length(c);
        if (c >= 0x80 && k <= n - i && pl_utf8_valid(text + i, k, NULL)) {
            memcpy(buf + j, text + i, k);
            j += k;
            i += k;
            continue;
        }
        buf[j++] = (c < 0x20 || c >= 0x7F) ? '?' : (char)c;
        i++;
    }
    if (n < len) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = '\0';
    return buf;
}

/* ---- RFC 3339 ---- */

typedef struct stamp {
    int year, month, day, hour, minute, second, ms;
    int offset_min; /* local time minus UTC */
} stamp_t;

/* Reads exactly n digits at *p; false if any is not a digit. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char a, char b)
{
    if (**p != a && **p != b)
        return false;
    (*p)++;
    return true;
}

static bool is_leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month)
{
    static const int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && is_leap(year) ? 29 : DAYS[month - 1];
}

/* Parses the shape; returns NULL or the reason the text is not RFC 3339. */
static const char *scan_stamp(const char *p, stamp_t *st)
{
    if (!digits(&p, 4, &st->year) || !expect(&p, '-', '-') || !digits(&p, 2, &st->month) ||
        !expect(&p, '-', '-') || !digits(&p, 2, &st->day))
        return "expected a date as YYYY-MM-DD";
    if (*p == '\0')
        return "missing the time: expected YYYY-MM-DDTHH:MM:SS and a time zone";
    if (!expect(&p, 'T', 't') || !digits(&p, 2, &st->hour) || !expect(&p, ':', ':') ||
        !digits(&p, 2, &st->minute) || !expect(&p, ':', ':') || !digits(&p, 2, &st->second))
        return "expected the time as THH:MM:SS after the date";
    st->ms = 0;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return "expected digits after the decimal point";
        /* Milliseconds keep the first three digits; the rest are truncated
         * because rounding up could carry into the next second. */
        for (int i = 0; *p >= '0' && *p <= '9'; i++, p++)
            if (i < 3)
                st->ms += (*p - '0') * (i == 0 ? 100 : i == 1 ? 10 : 1);
    }
    if (*p == '\0')
        return "missing the time zone: add Z for UTC or an offset such as +08:00";
    if (expect(&p, 'Z', 'z')) {
        st->offset_min = 0;
    } else {
        char sign = *p;
        int oh, om;
        if (!expect(&p, '+', '-') || !digits(&p, 2, &oh) || !expect(&p, ':', ':') ||
            !digits(&p, 2, &om))
            return "expected the time zone as Z, +HH:MM or -HH:MM";
        if (oh > 23 || om > 59)
            return "time zone offset is out of range";
        st->offset_min = (sign == '-' ? -1 : 1) * (oh * 60 + om);
    }
    if (*p != '\0')
        return "unexpected text after the time zone";
    return NULL;
}

/* Checks each field's range; writes the reason into why on failure. */
static bool check_stamp(const stamp_t *st, char *why, size_t size)
{
    if (st->year < 1)
        snprintf(why, size, "year %04d is out of range (0001 to 9999)", st->year);
    else if (st->month < 1 || st->month > 12)
        snprintf(why, size, "month %02d is out of range", st->month);
    else if (st->day < 1 || st->day > days_in_month(st->year, st->month))
        snprintf(why, size, "day %02d does not exist in %04d-%02d", st->day, st->year, st->month);
    else if (st->hour > 23)
        snprintf(why, size, "hour %02d is out of range", st->hour);
    else if (st->minute > 59)
        snprintf(why, size, "minute %02d is out of range", st->minute);
    else if (st->second > 60)
        snprintf(why, size, "second %02d is out of range", st->second);
    else
        return true;
    return false;
}

static int time_error(pl_err_t *err, const char *path, const char *text, const char *why)
{
    char q[QUOTE_MAX + 4];
    pl_err_set(err, PL_EINVAL, path, "invalid date-time \"%s\": %s", quote(text, q), why);
    (void)pl_err_hint(err, TIME_HINT); /* returns err->code, which is known */
    return PL_EINVAL;
}

int pl_time_parse(const char *text, int64_t *at_ms, const char *path, pl_err_t *err)
{
    if (!text || !*text)
        return time_error(err, path, text ? text : "", "empty");
    stamp_t st;
    char why[128];
    const char *shape = scan_stamp(text, &st);
    if (shape)
        return time_error(err, path, text, shape);
    if (!check_stamp(&st, why, sizeof why))
        return time_error(err, path, text, why);
    struct tm tm = {
        .tm_year = st.year - 1900,
        .tm_mon = st.month - 1,
        .tm_mday = st.day,
        .tm_hour = st.hour,
        .tm_min = st.minute,
        .tm_sec = st.second == 60 ? 59 : st.second, /* time_t has no leap seconds */
    };
    int64_t sec = (int64_t)timegm(&tm) - (int64_t)st.offset_min * 60;
    /* A leap second ends a UTC day; anywhere else :60 is a typo. */
    if (st.second == 60 && ((sec % 86400) + 86400) % 86400 != 86399)
        return time_error(err, path, text, "second 60 is only valid at 23:59:60 UTC");
    if (at_ms)
        *at_ms = sec * 1000 + st.ms;
    return 0;
}

/* ---- durations ---- */

typedef struct unit {
    const char *name;
    int64_t ms;
} unit_t;

/* Largest first: pl_duration_format relies on the order. */
static const unit_t UNITS[] = {
    {"w", 7 * 24 * 3600 * 1000LL},
    {"d", 24 * 3600 * 1000LL},
    {"h", 3600 * 1000LL},
    {"m", 60 * 1000LL},
    {"s", 1000LL},
    {"ms", 1LL},
};
#define NUNITS (sizeof UNITS / sizeof UNITS[0])

static const unit_t *find_unit(const char *name, size_t len)
{
    for (size_t i = 0; i < NUNITS; i++)
        if (strlen(UNITS[i].name) == len && memcmp(UNITS[i].name, name, len) == 0)
            return &UNITS[i];
    return NULL;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int duration_error(pl_err_t *err, const char *path, const char *text, const char *why)
{
    char q[QUOTE_MAX + 4];
    pl_err_set(err, PL_EINVAL, path, "invalid duration \"%s\": %s", quote(text, q), why);
    (void)pl_err_hint(err, DURATION_HINT); /* returns err->code, which is known */
    return PL_EINVAL;
}

/* Reads one "<digits><unit>" term at *p into *ms. On failure, writes the
 * reason into why and returns false. */
static bool scan_term(const char **p, int64_t *ms, char *why, size_t size)
{
    char q[QUOTE_MAX + 4];
    const char *s = *p;
    int64_t n = 0;
    if (!is_digit(*s)) {
        snprintf(why, size, "expected a number, found \"%s\"", quote(s, q));
        return false;
    }
    for (; is_digit(*s); s++) {
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, *s - '0', &n)) {
            snprintf(why, size, "the number is too large");
            return false;
        }
    }
    const char *u = s;
    while (is_alpha(*s))
        s++;
    const unit_t *unit = find_unit(u, (size_t)(s - u));
    if (s == u && (*s == '.' || *s == ','))
        snprintf(why, size, "fractions are not supported: combine units, e.g. \"1h30m\"");
    else if (s == u)
        snprintf(why, size, "missing unit after \"%.*s\"", (int)(u - *p), *p);
    else if (!unit)
        snprintf(why, size, "unknown unit \"%.*s\"", (int)(s - u < QUOTE_MAX ? s - u : QUOTE_MAX),
                 u);
    else if (__builtin_mul_overflow(n, unit->ms, ms))
        snprintf(why, size, "the duration is too large");
    else {
        *p = s;
        return true;
    }
    return false;
}

int pl_duration_parse(const char *text, int64_t *ms, const char *path, pl_err_t *err)
{
    if (!text || !*text)
        return duration_error(err, path, text ? text : "", "empty");
    if (*text == '-')
        return duration_error(err, path, text, "must not be negative");
    int64_t total = 0;
    char why[160];
    for (const char *p = text; *p;) {
        int64_t term = 0;
        if (!scan_term(&p, &term, why, sizeof why))
            return duration_error(err, path, text, why);
        if (__builtin_add_overflow(total, term, &total))
            return duration_error(err, path, text, "the duration is too large");
    }
    if (ms)
        *ms = total;
    return 0;
}

/* Writes the terms chosen by take (bit i: use as many UNITS[i] as fit) for
 * ms into buf; ms itself always absorbs the rest. Returns the length. */
static size_t format_terms(uint64_t ms, unsigned take, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NUNITS && ms > 0; i++) {
        uint64_t unit = (uint64_t)UNITS[i].ms;
        bool last = i == NUNITS - 1;
        if (!last && !(take & (1u << i)))
            continue;
        uint64_t n = ms / unit;
        if (n == 0)
            continue;
        int w = snprintf(buf + len, size - len, "%llu%s", (unsigned long long)n, UNITS[i].name);
        len += w > 0 ? (size_t)w : 0;
        ms -= n * unit;
    }
    return len;
}

char *pl_duration_format(int64_t ms, char *buf)
{
    if (ms == 0) {
        strcpy(buf, "0s");
        return buf;
    }
    /* Magnitude in unsigned arithmetic: -INT64_MIN does not fit in int64_t. */
    uint64_t mag = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    char *out = buf + (ms < 0);
    if (ms < 0)
        buf[0] = '-';
    /* Try every choice of which units take their share: 32 candidates. Ties
     * go to the first found, which uses the larger units ("1w", not "7d"). */
    char best[32], cand[32];
    size_t best_len = SIZE_MAX;
    for (unsigned take = (1u << (NUNITS - 1)); take-- > 0;) {
        size_t len = format_terms(mag, take, cand, sizeof cand);
        if (len < best_len) {
            best_len = len;
            memcpy(best, cand, len + 1);
        }
    }
    memcpy(out, best, best_len + 1);
    return buf;
}
