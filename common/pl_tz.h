/*
 * pl_tz: time zones by IANA name, read from TZif files (RFC 8536, versions 1
 * to 4), without the C library's global TZ state (no setenv, no tzset).
 *
 * A zone is read once, at load (startup), from $PLAINT_ZONEINFO or else
 * /usr/share/zoneinfo (Debian package tzdata); after that every function is
 * pure arithmetic on memory, safe from any thread. Instants after the last
 * transition of the file's table follow the POSIX TZ rule in its footer
 * (e.g. "CET-1CEST,M3.5.0,M10.5.0/3"), so 2040 and 2100 work as well as 2026.
 *
 * Local times ("wall clock") are given as local milliseconds: the local date
 * and time read as if they were UTC, counted from 1970-01-01T00:00. So local
 * day n starts at n * PL_TZ_DAY_MS and pl_tz_days_from_date() builds them.
 *
 * Policy for local times that do not map to exactly one instant (DST):
 *   - gap (clocks go forward, e.g. 02:30 on a spring-forward night in New
 *     York): the instant the gap ends, i.e. the first instant after it
 *     (03:00 EDT, which is 07:00Z);
 *   - overlap (clocks go back, e.g. 01:30 on a fall-back night in New York):
 *     the first of the two instants (01:30 EDT, the earlier).
 * With this policy, local -> UTC never decreases as the local time grows, so
 * an interval of local time always maps to an interval of instants (an empty
 * one when it lies inside a gap; one that includes the repeated hour when it
 * spans an overlap).
 */
#ifndef PL_TZ_H
#define PL_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl_err.h"

#define PL_TZ_NAME_MAX 255
#define PL_TZ_DAY_MS (86400 * 1000LL)
#define PL_TZ_DEFAULT_DIR "/usr/share/zoneinfo"

typedef struct pl_tz pl_tz_t;

typedef enum pl_tz_fit {
    PL_TZ_UNIQUE = 0,  /* the local time occurs once */
    PL_TZ_GAP = 1,     /* it was skipped; mapped to the end of the gap */
    PL_TZ_OVERLAP = 2, /* it occurs twice; mapped to the first occurrence */
} pl_tz_fit_t;

/* Loads the zone `name` ("Asia/Shanghai") from $PLAINT_ZONEINFO, or from
 * PL_TZ_DEFAULT_DIR when that is unset or empty. "UTC" and "Etc/UTC" work
 * even when no zoneinfo is installed. Returns a zone the caller destroys,
 * or NULL with err filled (PL_EINVAL for a bad name, PL_ENOTFOUND for an
 * unknown zone, PL_ECONFIG for an unreadable or invalid file); err->path
 * is left empty for the caller to fill. */
pl_tz_t *pl_tz_load(const char *name, pl_err_t *err);
/* Same, from the zoneinfo folder dir (NULL: as pl_tz_load). */
pl_tz_t *pl_tz_load_from(const char *dir, const char *name, pl_err_t *err);
/* Parses TZif bytes data[0..len) as the zone `name` (only copied, not
 * checked). For tests and for zones kept outside the zoneinfo folder. */
pl_tz_t *pl_tz_parse(const char *name, const void *data, size_t len, pl_err_t *err);
/* NULL-safe; sets *tz_p to NULL. */
void pl_tz_destroy(pl_tz_t **tz_p);

/* The name it was loaded as; borrowed, lives as long as tz. */
const char *pl_tz_name(const pl_tz_t *tz);
/* True if name is acceptable as a zone name: 1..PL_TZ_NAME_MAX bytes of
 * A-Z a-z 0-9 / _ - + ., not absolute, no empty, "." or ".." component.
 * Otherwise false, with err saying why (PL_EINVAL). */
bool pl_tz_name_valid(const char *name, pl_err_t *err);

/* UTC offset in seconds at the instant (local = UTC + offset): 28800 for
 * Asia/Shanghai. Instants outside years 0001..9999 are clamped into them. */
int32_t pl_tz_offset_s(const pl_tz_t *tz, int64_t at_ms);
/* True when the instant is in daylight-saving time. */
bool pl_tz_is_dst(const pl_tz_t *tz, int64_t at_ms);
/* The abbreviation in use at the instant ("CST", "CEST"); borrowed, lives
 * as long as tz. */
const char *pl_tz_abbrev(const pl_tz_t *tz, int64_t at_ms);

/* Instant -> local milliseconds. */
int64_t pl_tz_to_local_ms(const pl_tz_t *tz, int64_t at_ms);
/* Local milliseconds -> instant, with the gap/overlap policy above; returns
 * how the local time fitted. */
pl_tz_fit_t pl_tz_from_local_ms(const pl_tz_t *tz, int64_t local_ms, int64_t *at_ms);

/* Proleptic Gregorian calendar arithmetic on day numbers (days since
 * 1970-01-01), valid far beyond years 0001..9999. month 1..12, day 1..31. */
int64_t pl_tz_days_from_date(int64_t year, int month, int day);
void pl_tz_date_from_days(int64_t days, int64_t *year, int *month, int *day);
/* 0 = Sunday .. 6 = Saturday. */
int pl_tz_weekday(int64_t days);
int pl_tz_days_in_month(int64_t year, int month);

#endif
