/*
 * pl_tz: time zones from TZif files (see pl_tz.h).
 *
 * Trusts nothing in the file: every count, index, offset and the footer's
 * POSIX TZ string is checked against RFC 8536 before use, so a truncated or
 * corrupt file is refused at load instead of misleading every due time after.
 * Owns the zone's tables; reads files only in the load functions.
 */
#include "pl_tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_alloc.h"

/* The instants pl_time can print: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
 * Clamping to them keeps every product below in int64 range. */
#define TZ_MIN_S (-62135596800LL)
#define TZ_MAX_S (253402300799LL)
/* RFC 8536 section 3.2: utoff in -89999 .. 93599 (-25:59:59 .. +25:59:59). */
#define OFFSET_MIN (-89999)
#define OFFSET_MAX 93599
/* Real files are under 4 KiB with under 2,000 transitions. */
#define TZIF_FILE_MAX (1 << 20)
#define TZIF_TIMES_MAX 100000
#define TZIF_TYPES_MAX 256
#define TZIF_CHARS_MAX 4096
#define ABBR_MAX 16
/* Periods looked at for one local -> UTC conversion: a 52-hour window rarely
 * holds more than three. */
#define WALK_MAX 64

#define NAME_HINT "Use an IANA zone name such as \"Asia/Shanghai\" or \"Europe/Berlin\"."
#define FILE_HINT                                                                                  \
    "Reinstall the tzdata package, or point PLAINT_ZONEINFO at a valid zoneinfo folder."

typedef struct ttype {
    int32_t off; /* local - UTC, seconds */
    bool dst;
    uint32_t abbr; /* index into chars */
} ttype_t;

typedef struct rule_date {
    char kind; /* 'J': Jn, 1..365 without Feb 29; 'N': n, 0..365; 'M': Mm.w.d */
    int n, m, w, d;
    int32_t time_s; /* local time of day of the change, -167h .. 167h */
} rule_date_t;

/* The footer's POSIX TZ string, offsets already turned into local - UTC. */
typedef struct rule {
    int32_t std_off, dst_off;
    char std_abbr[ABBR_MAX], dst_abbr[ABBR_MAX];
    bool has_dst;
    rule_date_t start, end; /* into DST (std local time), out of it (DST local time) */
} rule_t;

struct pl_tz {
    char *name;
    int64_t *times; /* transition instants, seconds, strictly increasing */
    uint8_t *idx;   /* type after each transition */
    size_t ntimes;
    ttype_t *types;
    size_t ntypes;
    char *chars; /* NUL-terminated abbreviations */
    size_t nchars;
    bool has_rule;
    rule_t rule;
};

/* A stretch of time with one offset: [start, end), INT64_MIN/MAX when open. */
typedef struct period {
    int64_t start, end;
    int32_t off;
    bool dst;
    const char *abbr;
} period_t;

/* ---- calendar arithmetic (Howard Hinnant's days_from_civil) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int pl_tz_days_in_month(int64_t year, int month)
{
    static const int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    return month == 2 && is_leap(year) ? 29 : DAYS[month - 1];
}

int64_t pl_tz_days_from_date(int64_t year, int month, int day)
{
    int64_t y = year - (month <= 2);
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t mp = (month + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void pl_tz_date_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (m <= 2);
    *month = m;
    *day = d;
}

int pl_tz_weekday(int64_t days)
{
    /* 1970-01-01 was a Thursday. */
    return (int)(((days % 7) + 11) % 7);
}

/* ---- the POSIX TZ rule of the footer ---- */

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* std or dst: three or more letters, or <...> quoting letters, digits, + and -. */
static bool scan_abbr(const char **p, char *out)
{
    const char *s = *p;
    size_t n = 0;
    bool quoted = *s == '<';
    if (quoted)
        s++;
    for (; quoted ? (*s && *s != '>') : is_alpha(*s); s++) {
        if (!(is_alpha(*s) || (quoted && (is_digit(*s) || *s == '+' || *s == '-'))))
            return false;
        if (n + 1 >= ABBR_MAX)
            return false;
        out[n++] = *s;
    }
    if (quoted && *s++ != '>')
        return false;
    out[n] = '\0';
    *p = s;
    return n >= 3;
}

/* Up to max_digits digits as an int in 0..max. */
static bool scan_num(const char **p, int max_digits, int max, int *out)
{
    const char *s = *p;
    int v = 0, n = 0;
    for (; is_digit(*s) && n < max_digits; s++, n++)
        v = v * 10 + (*s - '0');
    if (n == 0 || v > max)
        return false;
    *p = s;
    *out = v;
    return true;
}

/* [+-]h[h[h]][:mm[:ss]], hours up to max_h; the value in seconds. */
static bool scan_hms(const char **p, int max_h, int32_t *out)
{
    const char *s = *p;
    int sign = 1, h = 0, m = 0, sec = 0;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if (!scan_num(&s, 3, max_h, &h))
        return false;
    if (*s == ':' && !(s++, scan_num(&s, 2, 59, &m)))
        return false;
    if (*s == ':' && !(s++, scan_num(&s, 2, 59, &sec)))
        return false;
    *p = s;
    *out = sign * (h * 3600 + m * 60 + sec);
    return true;
}

static bool scan_date(const char **p, rule_date_t *rd)
{
    const char *s = *p;
    memset(rd, 0, sizeof *rd);
    if (*s == 'J') {
        s++;
        rd->kind = 'J';
        if (!scan_num(&s, 3, 365, &rd->n) || rd->n < 1)
            return false;
    } else if (*s == 'M') {
        s++;
        rd->kind = 'M';
        if (!scan_num(&s, 2, 12, &rd->m) || rd->m < 1 || *s++ != '.' ||
            !scan_num(&s, 1, 5, &rd->w) || rd->w < 1 || *s++ != '.' || !scan_num(&s, 1, 6, &rd->d))
            return false;
    } else {
        rd->kind = 'N';
        if (!scan_num(&s, 3, 365, &rd->n))
            return false;
    }
    rd->time_s = 7200; /* POSIX: 02:00 when not given */
    /* RFC 8536 section 3.3.1 widens the hours to -167..167. */
    if (*s == '/' && !(s++, scan_hms(&s, 167, &rd->time_s)))
        return false;
    *p = s;
    return true;
}

/* Parses a footer such as "CET-1CEST,M3.5.0,M10.5.0/3" (offsets west of
 * Greenwich are positive in POSIX, hence the sign flips). */
static bool scan_rule(const char *s, rule_t *r)
{
    int32_t v;
    memset(r, 0, sizeof *r);
    if (!scan_abbr(&s, r->std_abbr) || !scan_hms(&s, 24, &v))
        return false;
    r->std_off = -v;
    if (*s == '\0')
        return r->std_off >= OFFSET_MIN && r->std_off <= OFFSET_MAX;
    if (!scan_abbr(&s, r->dst_abbr))
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*s && *s != ',') {
        if (!scan_hms(&s, 24, &v))
            return false;
        r->dst_off = -v;
    }
    if (*s == '\0') {
        /* No dates: POSIX leaves them to the implementation; glibc and tzcode
         * use the US rules, so do we. */
        const char *us = ",M3.2.0,M11.1.0";
        s = us;
    }
    if (*s++ != ',' || !scan_date(&s, &r->start) || *s++ != ',' || !scan_date(&s, &r->end))
        return false;
    return *s == '\0' && r->std_off >= OFFSET_MIN && r->std_off <= OFFSET_MAX &&
           r->dst_off >= OFFSET_MIN && r->dst_off <= OFFSET_MAX;
}

/* Local seconds (local time read as UTC) at which rd falls in year. */
static int64_t rule_local_s(int64_t year, const rule_date_t *rd)
{
    int64_t day;
    if (rd->kind == 'J') {
        day = pl_tz_days_from_date(year, 1, 1) + rd->n - 1 + (is_leap(year) && rd->n >= 60);
    } else if (rd->kind == 'N') {
        day = pl_tz_days_from_date(year, 1, 1) + rd->n;
    } else {
        int64_t first = pl_tz_days_from_date(year, rd->m, 1);
        int d = (rd->d - pl_tz_weekday(first) + 7) % 7 + 7 * (rd->w - 1);
        while (d >= pl_tz_days_in_month(year, rd->m)) /* "5" means the last */
            d -= 7;
        day = first + d;
    }
    return day * 86400 + rd->time_s;
}

typedef struct change {
    int64_t at;
    bool dst; /* state after the change */
} change_t;

/* The period of the footer rule that holds t. */
static void rule_period(const rule_t *r, int64_t t, period_t *p)
{
    if (!r->has_dst) {
        *p = (period_t){INT64_MIN, INT64_MAX, r->std_off, false, r->std_abbr};
        return;
    }
    int64_t year;
    int month, day;
    pl_tz_date_from_days(floor_div(t + r->std_off, 86400), &year, &month, &day);
    /* The changes of the years around t, in time order. Stable order keeps a
     * year's end before the next year's start when they coincide (DST all
     * year, RFC 8536 section 3.3.1), so the later state wins at that instant. */
    change_t ch[6];
    size_t n = 0;
    for (int64_t y = year - 1; y <= year + 1; y++) {
        ch[n++] = (change_t){rule_local_s(y, &r->start) - r->std_off, true};
        ch[n++] = (change_t){rule_local_s(y, &r->end) - r->dst_off, false};
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && ch[j - 1].at > ch[j].at; j--) {
            change_t tmp = ch[j];
            ch[j] = ch[j - 1];
            ch[j - 1] = tmp;
        }
    size_t i = n;
    while (i > 0 && ch[i - 1].at > t)
        i--;
    /* i changes are at or before t; ch[0] is a year before t, so i >= 1. */
    bool dst = i > 0 ? ch[i - 1].dst : !ch[0].dst;
    p->start = i > 0 ? ch[i - 1].at : INT64_MIN;
    p->end = i < n ? ch[i].at : INT64_MAX;
    p->dst = dst;
    p->off = dst ? r->dst_off : r->std_off;
    p->abbr = dst ? r->dst_abbr : r->std_abbr;
}

/* ---- lookups ---- */

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void type_period(const pl_tz_t *tz, size_t type, int64_t start, int64_t end, period_t *p)
{
    const ttype_t *tt = &tz->types[type];
    *p = (period_t){start, end, tt->off, tt->dst, tz->chars + tt->abbr};
}

static void period_at(const pl_tz_t *tz, int64_t t, period_t *p)
{
    t = clamp(t, TZ_MIN_S, TZ_MAX_S);
    if (tz->ntimes == 0) {
        if (tz->has_rule)
            rule_period(&tz->rule, t, p);
        else
            type_period(tz, 0, INT64_MIN, INT64_MAX, p);
        return;
    }
    if (t < tz->times[0]) { /* RFC 8536: type 0 before the first transition */
        type_period(tz, 0, INT64_MIN, tz->times[0], p);
        return;
    }
    size_t lo = 0, hi = tz->ntimes; /* times[lo] <= t < times[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->times[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    if (lo + 1 == tz->ntimes && tz->has_rule) {
        rule_period(&tz->rule, t, p);
        if (p->start < tz->times[lo])
            p->start = tz->times[lo];
        return;
    }
    type_period(tz, tz->idx[lo], tz->times[lo], lo + 1 < tz->ntimes ? tz->times[lo + 1] : INT64_MAX,
                p);
}

static void period_at_ms(const pl_tz_t *tz, int64_t at_ms, period_t *p)
{
    period_at(tz, floor_div(at_ms, 1000), p);
}

int32_t pl_tz_offset_s(const pl_tz_t *tz, int64_t at_ms)
{
    period_t p;
    period_at_ms(tz, at_ms, &p);
    return p.off;
}

bool pl_tz_is_dst(const pl_tz_t *tz, int64_t at_ms)
{
    period_t p;
    period_at_ms(tz, at_ms, &p);
    return p.dst;
}

const char *pl_tz_abbrev(const pl_tz_t *tz, int64_t at_ms)
{
    period_t p;
    period_at_ms(tz, at_ms, &p);
    return p.abbr;
}

int64_t pl_tz_to_local_ms(const pl_tz_t *tz, int64_t at_ms)
{
    at_ms = clamp(at_ms, TZ_MIN_S * 1000, TZ_MAX_S * 1000 + 999);
    return at_ms + (int64_t)pl_tz_offset_s(tz, at_ms) * 1000;
}

/* Every instant u with u + offset(u) == local lies within the offsets'
 * range of local, so the periods meeting that window hold every candidate. */
static pl_tz_fit_t from_local_s(const pl_tz_t *tz, int64_t local, int64_t *at)
{
    period_t p;
    period_at(tz, local - OFFSET_MAX - 1, &p);
    int found = 0;
    bool gap = false;
    int64_t first = 0, gap_end = 0;
    for (int k = 0; k < WALK_MAX; k++) {
        int64_t u = local - p.off;
        if (u >= p.start && u < p.end) {
            if (found++ == 0)
                first = u;
        } else if (u < p.start && !gap) {
            /* The period starts later, in local time too, than local: local
             * was skipped just before it. */
            gap = true;
            gap_end = p.start;
        }
        if (p.end == INT64_MAX || p.end > local - OFFSET_MIN)
            break;
        period_at(tz, p.end, &p);
    }
    if (found) {
        *at = first;
        return found > 1 ? PL_TZ_OVERLAP : PL_TZ_UNIQUE;
    }
    *at = gap ? gap_end : local - p.off; /* no gap either: only at the clamped ends */
    return gap ? PL_TZ_GAP : PL_TZ_UNIQUE;
}

pl_tz_fit_t pl_tz_from_local_ms(const pl_tz_t *tz, int64_t local_ms, int64_t *at_ms)
{
    local_ms = clamp(local_ms, (TZ_MIN_S - 2 * 86400) * 1000, (TZ_MAX_S + 2 * 86400) * 1000);
    int64_t local_s = floor_div(local_ms, 1000);
    int64_t frac = local_ms - local_s * 1000;
    int64_t at_s = 0;
    pl_tz_fit_t fit = from_local_s(tz, local_s, &at_s);
    /* In a gap the answer is the transition itself, a whole second. */
    *at_ms = at_s * 1000 + (fit == PL_TZ_GAP ? 0 : frac);
    return fit;
}

const char *pl_tz_name(const pl_tz_t *tz)
{
    return tz->name;
}

/* ---- TZif ---- */

typedef struct header {
    int version;
    uint32_t isut, isstd, leap, times, types, chars;
} header_t;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int tzif_error(pl_err_t *err, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int tzif_error(pl_err_t *err, const char *name, const char *fmt, ...)
{
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    pl_err_set(err, PL_ECONFIG, NULL, "time zone file of \"%s\" is not valid TZif: %s", name, why);
    return pl_err_hint(err, FILE_HINT);
}

static const char *read_header(const unsigned char *d, size_t len, size_t at, header_t *h)
{
    if (len < at || len - at < 44)
        return "the header is truncated";
    if (memcmp(d + at, "TZif", 4) != 0)
        return "the \"TZif\" magic is missing";
    unsigned char v = d[at + 4];
    if (v != 0 && (v < '2' || v > '4'))
        return "the version is unknown (1 to 4 are)";
    h->version = v ? v - '0' : 1;
    const unsigned char *c = d + at + 20;
    *h = (header_t){h->version,   be32(c),      be32(c + 4), be32(c + 8),
                    be32(c + 12), be32(c + 16), be32(c + 20)};
    if (h->types == 0 || h->types > TZIF_TYPES_MAX)
        return "the number of local time types is 0 or over 256";
    if (h->chars == 0 || h->chars > TZIF_CHARS_MAX)
        return "the abbreviation block is empty or too large";
    if (h->times > TZIF_TIMES_MAX || h->leap > TZIF_TIMES_MAX)
        return "too many transitions";
    if ((h->isut && h->isut != h->types) || (h->isstd && h->isstd != h->types))
        return "the UT/standard indicator counts do not match the types";
    return NULL;
}

static size_t block_size(const header_t *h, size_t tsize)
{
    return h->times * tsize + h->times + h->types * 6 + h->chars + h->leap * (tsize + 4) +
           h->isstd + h->isut;
}

/* Copies and checks the data block at d (tsize 4 or 8 bytes per time). */
static const char *read_block(pl_tz_t *tz, const unsigned char *d, const header_t *h, size_t tsize)
{
    if (h->leap)
        return "it has leap-second records (a \"right/\" zone): use the zone of the same name "
               "outside right/";
    tz->ntimes = h->times;
    tz->ntypes = h->types;
    tz->nchars = h->chars;
    tz->times = pl_calloc(h->times ? h->times : 1, sizeof *tz->times);
    tz->idx = pl_calloc(h->times ? h->times : 1, 1);
    tz->types = pl_calloc(h->types, sizeof *tz->types);
    tz->chars = pl_malloc(h->chars);
    for (size_t i = 0; i < h->times; i++) {
        const unsigned char *t = d + i * tsize;
        tz->times[i] = tsize == 8 ? be64(t) : (int64_t)(int32_t)be32(t);
        if (i > 0 && tz->times[i] <= tz->times[i - 1])
            return "the transition times are not in increasing order";
    }
    d += h->times * tsize;
    for (size_t i = 0; i < h->times; i++)
        if ((tz->idx[i] = d[i]) >= h->types)
            return "a transition names a local time type that does not exist";
    d += h->times;
    for (size_t i = 0; i < h->types; i++, d += 6) {
        int32_t off = (int32_t)be32(d);
        if (off < OFFSET_MIN || off > OFFSET_MAX)
            return "a UTC offset is out of range";
        if (d[4] > 1 || d[5] >= h->chars)
            return "a local time type has a bad DST flag or abbreviation index";
        tz->types[i] = (ttype_t){off, d[4] == 1, d[5]};
    }
    memcpy(tz->chars, d, h->chars);
    if (tz->chars[h->chars - 1] != '\0')
        return "the abbreviations are not NUL-terminated";
    return NULL;
}

static void tz_free(pl_tz_t *tz)
{
    if (!tz)
        return;
    pl_free(tz->name);
    pl_free(tz->times);
    pl_free(tz->idx);
    pl_free(tz->types);
    pl_free(tz->chars);
    pl_free(tz);
}

void pl_tz_destroy(pl_tz_t **tz_p)
{
    if (!tz_p)
        return;
    tz_free(*tz_p);
    *tz_p = NULL;
}

/* The footer: "\n" POSIX-TZ "\n", right after the version 2+ data block. */
static const char *read_footer(pl_tz_t *tz, const unsigned char *d, size_t len)
{
    if (len < 2 || d[0] != '\n')
        return "the footer is missing";
    const unsigned char *nl = memchr(d + 1, '\n', len - 1);
    if (!nl)
        return "the footer does not end with a newline";
    size_t n = (size_t)(nl - d - 1);
    if (n == 0)
        return NULL; /* no rule: the last type holds for ever */
    char buf[128];
    if (n >= sizeof buf)
        return "the footer's TZ string is too long";
    memcpy(buf, d + 1, n);
    buf[n] = '\0';
    if (!scan_rule(buf, &tz->rule))
        return "the footer's TZ string is not a valid POSIX TZ rule";
    tz->has_rule = true;
    return NULL;
}

pl_tz_t *pl_tz_parse(const char *name, const void *data, size_t len, pl_err_t *err)
{
    const unsigned char *d = data;
    pl_tz_t *tz = pl_calloc(1, sizeof *tz);
    tz->name = pl_strdup(name ? name : "");
    header_t h = {0};
    const char *why = read_header(d, len, 0, &h);
    size_t at = 44;
    if (!why && h.version >= 2) { /* skip the 32-bit block for the 64-bit one */
        at += block_size(&h, 4);
        why = read_header(d, len, at, &h);
        at += 44;
    }
    size_t tsize = h.version >= 2 ? 8 : 4;
    if (!why && len - at < block_size(&h, tsize))
        why = "the data block is truncated";
    if (!why)
        why = read_block(tz, d + at, &h, tsize);
    if (!why && h.version >= 2)
        why = read_footer(tz, d + at + block_size(&h, tsize), len - at - block_size(&h, tsize));
    if (why) {
        tzif_error(err, tz->name, "%s", why);
        tz_free(tz);
        return NULL;
    }
    return tz;
}

/* ---- names and files ---- */

bool pl_tz_name_valid(const char *name, pl_err_t *err)
{
    const char *why = NULL;
    size_t len = name ? strlen(name) : 0;
    if (len == 0)
        why = "the name is empty";
    else if (len > PL_TZ_NAME_MAX)
        why = "the name is over 255 bytes";
    else if (name[0] == '/')
        why = "absolute paths are not allowed";
    for (size_t i = 0; !why && i < len; i++) {
        char c = name[i];
        if (!(is_alpha(c) || is_digit(c) || c == '/' || c == '_' || c == '-' || c == '+' ||
              c == '.'))
            why = "only letters, digits and / _ - + . are allowed";
    }
    /* Each component between slashes must be a plain name. */
    for (const char *s = name; !why && s && *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (e && e[1] == '\0'))
            why = "empty path components are not allowed";
        else if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            why = "\".\" and \"..\" components are not allowed";
        s = e ? e + 1 : NULL;
    }
    if (!why)
        return true;
    char shown[72];
    snprintf(shown, sizeof shown, "%.64s%s", name ? name : "", len > 64 ? "..." : "");
    for (char *c = shown; *c; c++) /* keep the message one printable line */
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7F)
            *c = '?';
    pl_err_set(err, PL_EINVAL, NULL, "invalid time zone name \"%s\": %s", shown, why);
    (void)pl_err_hint(err, NAME_HINT); /* returns err->code, which is known */
    return false;
}

static pl_tz_t *builtin_utc(const char *name)
{
    pl_tz_t *tz = pl_calloc(1, sizeof *tz);
    tz->name = pl_strdup(name);
    tz->types = pl_calloc(1, sizeof *tz->types);
    tz->ntypes = 1;
    tz->chars = pl_strdup("UTC");
    tz->nchars = 4;
    return tz;
}

/* Reads the whole regular file; returns 0, or -1 with errno (EFBIG when too
 * large, EISDIR for a folder). */
static int read_file(const char *path, unsigned char **out, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    int rc = -1;
    unsigned char *buf = NULL;
    size_t len = 0;
    if (fstat(fd, &st) != 0)
        goto cleanup;
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        goto cleanup;
    }
    if (st.st_size > TZIF_FILE_MAX) {
        errno = EFBIG;
        goto cleanup;
    }
    buf = pl_malloc((size_t)st.st_size + 1);
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto cleanup;
        len += (size_t)n;
    }
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = 0;
cleanup:
    pl_free(buf);
    (void)close(fd); /* read-only: nothing is lost if close fails */
    return rc;
}

pl_tz_t *pl_tz_load_from(const char *dir, const char *name, pl_err_t *err)
{
    if (!pl_tz_name_valid(name, err))
        return NULL;
    if (!dir || !*dir)
        /* The one reader of PLAINT_ZONEINFO, at load time only (like glibc's
         * TZDIR): pl_cfg's tables are per daemon, and every daemon that
         * loads a zone needs the same folder. */
        dir = getenv("PLAINT_ZONEINFO");
    if (!dir || !*dir)
        dir = PL_TZ_DEFAULT_DIR;
    char *path = pl_sprintf("%s/%s", dir, name);
    unsigned char *data = NULL;
    size_t len = 0;
    pl_tz_t *tz = NULL;
    if (read_file(path, &data, &len) == 0) {
        tz = pl_tz_parse(name, data, len, err);
    } else if ((errno == ENOENT || errno == ENOTDIR) &&
               (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)) {
        tz = builtin_utc(name);
    } else if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR) {
        pl_err_set(err, PL_ENOTFOUND, NULL, "unknown time zone \"%s\": no zone file \"%s\"", name,
                   path);
        (void)pl_err_hint(err, "Check the spelling (e.g. \"Asia/Shanghai\"), install the tzdata "
                               "package, or set PLAINT_ZONEINFO to the zoneinfo folder.");
    } else {
        pl_err_set(err, PL_ECONFIG, NULL, "cannot read time zone file \"%s\": %s", path,
                   errno == EFBIG ? "over 1 MiB, not a zone file" : strerror(errno));
        (void)pl_err_hint(err, FILE_HINT);
    }
    pl_free(data);
    pl_free(path);
    return tz;
}

pl_tz_t *pl_tz_load(const char *name, pl_err_t *err)
{
    return pl_tz_load_from(NULL, name, err);
}
