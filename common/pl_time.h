/*
 * pl_time: wall-clock and monotonic time, RFC 3339 and durations.
 *
 * Times are int64 milliseconds: since the Unix epoch (UTC) for wall-clock
 * values (names end in _at or _ms_utc), arbitrary origin for monotonic ones.
 */
#ifndef PL_TIME_H
#define PL_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "pl_err.h"

#define PL_RFC3339_MAX 32

int64_t pl_time_now_ms(void);  /* wall clock, ms since epoch */
int64_t pl_time_mono_ms(void); /* monotonic */

/* Writes "2026-11-25T03:52:00.123Z" into buf (>= PL_RFC3339_MAX); returns buf. */
char *pl_time_format(int64_t at_ms, char *buf);
/* Parses an RFC 3339 date-time ("2026-11-25T03:52:00Z", "...T11:52:00.5+08:00",
 * lower-case t/z accepted). Returns 0, or PL_EINVAL with err naming path. */
int pl_time_parse(const char *text, int64_t *at_ms, const char *path, pl_err_t *err);

/* Parses a duration: an integer and a unit, repeated: "250ms", "90s", "15m",
 * "24h", "3d", "1h30m". Returns 0 or PL_EINVAL (err names path). */
int pl_duration_parse(const char *text, int64_t *ms, const char *path, pl_err_t *err);
/* Formats ms as the shortest exact duration string ("90s", "90m", "1h1s"; "0s" for
 * zero, a leading "-" when negative); returns buf (>= 32). */
char *pl_duration_format(int64_t ms, char *buf);

#endif
