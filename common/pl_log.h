/*
 * pl_log: structured JSON-lines logging to stdout.
 *
 * One object per line: {"ts":"...","level":"info","svc":"intake","msg":"...", fields...}.
 * msg is a fixed string; values go in fields, given as key/value string pairs
 * ended by NULL. Never pass names, phone numbers, e-mail addresses, complaint
 * text or demands: log ids instead.
 *
 * Safe to call from any thread: each line is written with one write(2).
 */
#ifndef PL_LOG_H
#define PL_LOG_H

typedef enum { PL_LOG_DEBUG = 0, PL_LOG_INFO = 1, PL_LOG_WARN = 2, PL_LOG_ERROR = 3 } pl_log_level_t;

/* svc is copied. Until called, svc is "plaint" and level info. */
void pl_log_init(const char *svc, pl_log_level_t level);
void pl_log_set_level(pl_log_level_t level);
/* Parses "debug", "info", "warn", "error" (any case); returns 0 or PL_EINVAL. */
int pl_log_level_parse(const char *name, pl_log_level_t *level);
int pl_log_enabled(pl_log_level_t level);

/* A NULL msg or value is written as null. Bytes that are not valid UTF-8
 * become U+FFFD; a string over 4096 bytes is cut and ends in U+2026. */
void pl_log(pl_log_level_t level, const char *msg, ...) __attribute__((sentinel));
#define pl_log_debug(...) pl_log(PL_LOG_DEBUG, __VA_ARGS__)
#define pl_log_info(...) pl_log(PL_LOG_INFO, __VA_ARGS__)
#define pl_log_warn(...) pl_log(PL_LOG_WARN, __VA_ARGS__)
#define pl_log_error(...) pl_log(PL_LOG_ERROR, __VA_ARGS__)

/* Formats an integer for a log field into buf (>= 24 bytes); returns buf. */
const char *pl_log_int(char *buf, long long value);

#endif
