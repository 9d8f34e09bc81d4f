/*
 * pl_calendar: business calendars. A calendar is a time zone, weekly opening
 * hours (several intervals a day allowed, or all day every day), holidays
 * (closed dates) and extra working days (make-up days such as China's 调休,
 * with their own hours). SLA clocks count open time on it.
 *
 * Built from one JSON object (see services/routing/README.md):
 *   {"zone": "Asia/Shanghai",
 *    "hours": {"mon-fri": ["09:00-12:00", "13:00-18:00"], "sat": ["10:00-14:00"]},
 *    "holidays": ["2026-01-01", {"from": "2026-02-15", "to": "2026-02-23", "name": "..."}],
 *    "working_days": ["2026-01-04", {"date": "2026-02-14", "hours": ["09:00-18:00"]}]}
 * or "hours": "24x7" for open all day, every day. Times of day are local;
 * an interval may end at "24:00"; dates are local dates.
 *
 * Times are int64 ms since the epoch (UTC). Opening hours are local wall
 * time, converted with pl_tz's policy: an opening inside a DST gap opens at
 * the end of the gap; an interval spanning an overlap includes the repeated
 * hour (so 00:00-24:00 lasts 23 or 25 hours on change days).
 *
 * Every search is bounded: a calendar with no open time at all is refused
 * at load, and a function that would have to look more than
 * PL_CALENDAR_SPAN_DAYS days past its start returns PL_ETOOLARGE.
 */
#ifndef PL_CALENDAR_H
#define PL_CALENDAR_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl_err.h"
#include "pl_tz.h"

#define PL_CALENDAR_SPAN_DAYS 1100      /* about three years */
#define PL_CALENDAR_DAY_INTERVALS_MAX 8 /* opening intervals on one day */
#define PL_CALENDAR_DATES_MAX 4000      /* holiday plus working-day dates */

typedef struct pl_calendar pl_calendar_t;

/* Builds the calendar `name` from obj. file and path only label messages:
 * each problem is appended to errs as "FILE: PATH.FIELD: what is wrong",
 * with err.path = "PATH.FIELD" and a hint. zoneinfo_dir is passed to
 * pl_tz_load_from (NULL: $PLAINT_ZONEINFO or /usr/share/zoneinfo). Returns a
 * calendar the caller destroys, or NULL when anything was wrong. */
pl_calendar_t *pl_calendar_new(const char *name, const cJSON *obj, const char *file,
                               const char *path, const char *zoneinfo_dir, pl_errlist_t *errs);
/* NULL-safe; sets *cal_p to NULL. */
void pl_calendar_destroy(pl_calendar_t **cal_p);

/* Borrowed; live as long as cal. */
const char *pl_calendar_name(const pl_calendar_t *cal);
const pl_tz_t *pl_calendar_zone(const pl_calendar_t *cal);

/* True when the calendar is open at the instant. */
bool pl_calendar_is_open(const pl_calendar_t *cal, int64_t at_ms);
/* True when the local date has any opening hours (a working day). */
bool pl_calendar_is_working_day(const pl_calendar_t *cal, int64_t year, int month, int day);

/* The first open instant at or after at_ms (at_ms itself when open).
 * Returns 0, or PL_ETOOLARGE when nothing opens within the span limit. */
int pl_calendar_next_open(const pl_calendar_t *cal, int64_t at_ms, int64_t *open_ms);

/* due = the instant at which duration_ms of open time has passed since
 * start_ms; when start is outside hours, counting starts at the next
 * opening. A duration that ends exactly at a closing time is due then, not
 * at the next opening. duration 0 gives the next opening. Returns 0,
 * PL_EINVAL (negative duration) or PL_ETOOLARGE. */
int pl_calendar_add(const pl_calendar_t *cal, int64_t start_ms, int64_t duration_ms,
                    int64_t *due_ms);

/* N working days after start:
 *   1. s = the next opening at or after start (start itself when open);
 *   2. D = s's local date, T = its local time of day;
 *   3. D' = the Nth working day after D (a working day is a local date with
 *      opening hours: holidays are skipped, make-up days count);
 *   4. due = local time T on D' (pl_tz policy in a DST gap or overlap),
 *      moved to the next opening if the calendar is not open then (e.g. T is
 *      after a short make-up day's closing time, or in a lunch break).
 * So from Wednesday 10:00, 3 working days is the next Monday 10:00; from
 * Friday 20:00 (closed) it is Thursday 09:00. n = 0 gives s. Returns 0,
 * PL_EINVAL (n < 0) or PL_ETOOLARGE. */
int pl_calendar_add_working_days(const pl_calendar_t *cal, int64_t start_ms, int n,
                                 int64_t *due_ms);

/* Open time in [from_ms, to_ms) in ms; 0 when to <= from. Returns 0 or
 * PL_ETOOLARGE (the span is over the limit). */
int pl_calendar_between(const pl_calendar_t *cal, int64_t from_ms, int64_t to_ms, int64_t *open_ms);

#endif
