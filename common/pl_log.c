/*
 * pl_log: JSON-lines logging to stdout (see pl_log.h).
 *
 * Trusts nothing about msg, keys or values: every string is escaped and every
 * byte that is not part of valid UTF-8 becomes U+FFFD, so each line parses as
 * JSON whatever a caller passes. Owns the service name and the level. A line
 * is built in a stack buffer (a heap one once it outgrows that) and leaves in
 * one write(2), so lines from different threads never interleave.
 *
 * pl_log_init() is startup code: call it before starting threads, since it
 * rewrites the service name that every line reads.
 */
#include "pl_log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_err.h"
#include "pl_time.h"
#include "pl_utf8.h"

#define SVC_MAX 64
/* Longer strings are cut at a character boundary and end in U+2026: a log
 * field is for ids and short reasons, and a runaway value must not make a
 * line so long that log collectors split it. */
#define FIELD_MAX 4096
#define LINE_STACK 2048
/* How long a line waits for a non-blocking stdout that is full. */
#define STALL_MS 1000

static char svc_name[SVC_MAX] = "plaint";
static atomic_int min_level = PL_LOG_INFO;
/* write(2) may be partial (signals, pipes, a full non-blocking stdout); the
 * lock keeps the rest of a line ahead of other threads' lines. */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct line {
    char *buf; /* stack, or a heap copy once the line outgrows it */
    size_t len, cap;
    char stack[LINE_STACK];
} line_t;

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

static void line_init(line_t *l)
{
    l->buf = l->stack;
    l->len = 0;
    l->cap = sizeof l->stack;
}

static void line_free(line_t *l)
{
    if (l->buf != l->stack)
        pl_free(l->buf);
}

static void put(line_t *l, const char *s, size_t n)
{
    if (l->len + n > l->cap) {
        size_t cap = l->cap * 2;
        while (cap < l->len + n)
            cap *= 2;
        char *bigger = pl_malloc(cap);
        memcpy(bigger, l->buf, l->len);
        line_free(l);
        l->buf = bigger;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(line_t *l, const char *s)
{
    put(l, s, strlen(s));
}

/* The escape for byte c, or NULL when c may appear as is. U+2028 and U+2029
 * are handled by the caller: they are valid JSON but end lines in JavaScript. */
static const char *escape_for(unsigned char c, char tmp[8])
{
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    case '\b': return "\\b";
    case '\f': return "\\f";
    default: break;
    }
    if (c >= 0x20 && c != 0x7F)
        return NULL;
    snprintf(tmp, 8, "\\u%04x", c);
    return tmp;
}

/* Writes s[0..len), known to be valid UTF-8, with JSON escapes. */
static void put_valid_run(line_t *l, const char *s, size_t len)
{
    size_t start = 0;
    char tmp[8];
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = escape_for(c, tmp);
        size_t skip = 1;
        if (c == 0xE2 && i + 2 < len && (unsigned char)s[i + 1] == 0x80 &&
            ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9)) {
            esc = (unsigned char)s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
            skip = 3;
        }
        if (!esc)
            continue;
        put(l, s + start, i - start);
        put_str(l, esc);
        i += skip - 1;
        start = i + 1;
    }
    put(l, s + start, len - start);
}

/* Writes s as a JSON string, or null for NULL. */
static void put_json_string(line_t *l, const char *s)
{
    if (!s) {
        put_str(l, "null");
        return;
    }
    size_t len = strlen(s);
    bool cut = len > FIELD_MAX;
    if (cut)
        len = pl_utf8_truncate(s, len, FIELD_MAX);
    put_str(l, "\"");
    size_t i = 0;
    while (i < len) {
        size_t bad = 0;
        bool ok = pl_utf8_valid(s + i, len - i, &bad);
        size_t run = ok ? len - i : bad;
        put_valid_run(l, s + i, run);
        i += run;
        if (!ok) {
            put_str(l, "\xEF\xBF\xBD"); /* U+FFFD for the one bad byte; resync after it */
            i++;
        }
    }
    if (cut)
        put_str(l, "\xE2\x80\xA6"); /* U+2026 */
    put_str(l, "\"");
}

static void write_line(const char *p, size_t len)
{
    /* pthread_mutex_lock on a default mutex fails only on a programming error. */
    (void)pthread_mutex_lock(&write_lock);
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && poll(&pfd, 1, STALL_MS) > 0)
            continue;
        break; /* stdout is gone or stuck: logging must not stop the daemon */
    }
    (void)pthread_mutex_unlock(&write_lock);
}

static const char *level_name(pl_log_level_t level)
{
    if (level <= PL_LOG_DEBUG)
        return LEVEL_NAMES[PL_LOG_DEBUG];
    if (level >= PL_LOG_ERROR)
        return LEVEL_NAMES[PL_LOG_ERROR];
    return LEVEL_NAMES[level];
}

static void put_head(line_t *l, pl_log_level_t level, const char *msg)
{
    char ts[PL_RFC3339_MAX];
    put_str(l, "{\"ts\":\"");
    put_str(l, pl_time_format(pl_time_now_ms(), ts));
    put_str(l, "\",\"level\":\"");
    put_str(l, level_name(level));
    put_str(l, "\",\"svc\":");
    put_json_string(l, svc_name);
    put_str(l, ",\"msg\":");
    put_json_string(l, msg);
}

void pl_log_init(const char *svc, pl_log_level_t level)
{
    const char *name = svc && *svc ? svc : "plaint";
    size_t n = pl_utf8_truncate(name, strlen(name), SVC_MAX - 1);
    memcpy(svc_name, name, n);
    svc_name[n] = '\0';
    pl_log_set_level(level);
}

void pl_log_set_level(pl_log_level_t level)
{
    atomic_store(&min_level, (int)level);
}

int pl_log_level_parse(const char *name, pl_log_level_t *level)
{
    if (!name)
        return PL_EINVAL;
    for (int i = PL_LOG_DEBUG; i <= PL_LOG_ERROR; i++) {
        /* Case-insensitive: "INFO" in an environment file means info. */
        if (strcasecmp(name, LEVEL_NAMES[i]) == 0) {
            if (level)
                *level = (pl_log_level_t)i;
            return 0;
        }
    }
    return PL_EINVAL;
}

int pl_log_enabled(pl_log_level_t level)
{
    return (int)level >= atomic_load(&min_level);
}

void pl_log(pl_log_level_t level, const char *msg, ...)
{
    if (!pl_log_enabled(level))
        return;
    line_t l;
    line_init(&l);
    put_head(&l, level, msg);
    va_list ap;
    va_start(ap, msg);
    /* Pairs until a NULL key; a NULL value is written as null. A call with an
     * odd number of arguments before the sentinel is a programming error. */
    for (const char *key = va_arg(ap, const char *); key; key = va_arg(ap, const char *)) {
        const char *value = va_arg(ap, const char *);
        put_str(&l, ",");
        put_json_string(&l, key);
        put_str(&l, ":");
        put_json_string(&l, value);
    }
    va_end(ap);
    put_str(&l, "}\n");
    write_line(l.buf, l.len);
    line_free(&l);
}

const char *pl_log_int(char *buf, long long value)
{
    snprintf(buf, 24, "%lld", value);
    return buf;
}
