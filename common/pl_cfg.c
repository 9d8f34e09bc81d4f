/*
 * pl_cfg: settings from PLAINT_* variables and JSON config files (see pl_cfg.h).
 *
 * Trusts nothing it reads: every value is checked against its kind, and every
 * bad one is reported (not just the first) with the value quoted and a hint,
 * so an operator fixes a deployment in one round. A config file is read only
 * up to JSON_FILE_MAX bytes and must be UTF-8 JSON. Owns the copies of string
 * settings until pl_cfg_free_strings(); not thread-safe: settings are read
 * once, at startup, before any thread starts.
 */
#include "pl_cfg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_log.h"
#include "pl_time.h"
#include "pl_utf8.h"

#define JSON_FILE_MAX (4 * 1024 * 1024)
/* Bytes of a bad value quoted in a message: enough to recognise it, and short
 * enough that the reason still fits in pl_err_t.message. */
#define QUOTE_MAX 120
#define HOST_MAX 256
/* sun_path is 108 bytes, and ZeroMQ needs the NUL. */
#define IPC_PATH_MAX 107

#define HINT_ANY "Use tcp://HOST:PORT, ipc://PATH or inproc://NAME."
#define HINT_TCP "Use the form tcp://HOST:PORT."
#define HINT_IPC "Use the form ipc://PATH, with PATH at most 107 bytes."
#define HINT_INPROC "Use the form inproc://NAME."
#define HINT_HTTP "Use the form HOST:PORT, e.g. 0.0.0.0:8080 or [::1]:8080."
#define HINT_V6 "Put an IPv6 address in brackets, e.g. [::1]:PORT."

/* Why a value is bad and what to do about it. */
typedef struct problem {
    char why[PL_ERR_MSG_MAX];
    char hint[PL_ERR_HINT_MAX];
    bool whole; /* why is already the whole message */
} problem_t;

static char **kept;
static size_t nkept, capkept;

static bool fail(problem_t *pr, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(problem_t *pr, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pr->why, sizeof pr->why, fmt, ap);
    va_end(ap);
    snprintf(pr->hint, sizeof pr->hint, "%s", hint);
    pr->whole = false;
    return false;
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

static const char *keep(const char *s)
{
    if (nkept == capkept) {
        capkept = capkept ? capkept * 2 : 16;
        kept = pl_realloc(kept, capkept * sizeof *kept);
    }
    kept[nkept] = pl_strdup(s);
    return kept[nkept++];
}

void pl_cfg_free_strings(void)
{
    for (size_t i = 0; i < nkept; i++)
        pl_free(kept[i]);
    pl_free(kept);
    kept = NULL;
    nkept = capkept = 0;
}

/* ---- hosts, ports and endpoints ---- */

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* A host is "*" (when allowed), a name, a dotted IPv4 address, or (v6) the
 * inside of an [IPv6] literal. */
static bool check_host(const char *host, bool v6, bool star, problem_t *pr, const char *hint)
{
    char q[QUOTE_MAX + 4];
    unsigned char addr[16];
    if (v6)
        return inet_pton(AF_INET6, host, addr) == 1 ||
               fail(pr, hint, "\"%s\" is not a valid IPv6 address", quote(host, q));
    if (strcmp(host, "*") == 0)
        return star || fail(pr, hint, "host \"*\" is not allowed here; use 0.0.0.0 or ::");
    if (strspn(host, "0123456789.") == strlen(host))
        return inet_pton(AF_INET, host, addr) == 1 ||
               fail(pr, hint, "\"%s\" is not a valid IPv4 address", quote(host, q));
    for (const char *c = host; *c; c++)
        if (!is_name_char(*c))
            return fail(pr, hint, "host \"%s\" is not a valid name or address", quote(host, q));
    if (strlen(host) > 253)
        return fail(pr, hint, "host name is %zu bytes, limit is 253", strlen(host));
    return true;
}

static bool parse_port(const char *text, bool star, int *port, problem_t *pr, const char *hint)
{
    char q[QUOTE_MAX + 4];
    if (star && strcmp(text, "*") == 0) {
        *port = 0; /* let the system pick one, when binding */
        return true;
    }
    if (!*text)
        return fail(pr, hint, "missing port after \":\"");
    size_t n = strspn(text, "0123456789");
    if (n != strlen(text))
        return fail(pr, hint, "port \"%s\" is not a number", quote(text, q));
    long value = n > 5 ? 65536 : strtol(text, NULL, 10);
    if (value < 1 || value > 65535)
        return fail(pr, hint, "port %s is out of range (1 to 65535)", quote(text, q));
    *port = (int)value;
    return true;
}

/* Splits HOST:PORT (HOST may be [IPv6]) and checks both halves; the host,
 * without brackets, goes into host (host_size bytes). */
static bool parse_hostport(const char *text, bool star, char *host, size_t host_size, int *port,
                           problem_t *pr, const char *hint)
{
    const char *h = text, *hend, *colon;
    bool v6 = *text == '[';
    if (v6) {
        h = text + 1;
        hend = strchr(h, ']');
        if (!hend)
            return fail(pr, hint, "missing \"]\" after the IPv6 address");
        colon = hend + 1;
        if (*colon != ':')
            return fail(pr, hint, "missing \":PORT\" after the IPv6 address");
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return fail(pr, hint, "missing \":PORT\" after the host");
        hend = colon;
        if (memchr(text, ':', (size_t)(colon - text)))
            return fail(pr, HINT_V6, "an IPv6 address must be in brackets");
    }
    size_t len = (size_t)(hend - h);
    if (len == 0)
        return fail(pr, hint, "missing host before \":PORT\"");
    if (len >= host_size)
        return fail(pr, hint, "host is %zu bytes, limit is %zu", len, host_size - 1);
    memcpy(host, h, len);
    host[len] = '\0';
    return check_host(host, v6, star, pr, hint) && parse_port(colon + 1, star, port, pr, hint);
}

static bool check_tcp(const char *addr, problem_t *pr)
{
    char host[HOST_MAX];
    int port;
    return parse_hostport(addr, true, host, sizeof host, &port, pr, HINT_TCP);
}

static bool check_ipc(const char *path, problem_t *pr)
{
    if (!*path)
        return fail(pr, HINT_IPC, "missing path after \"ipc://\"");
    if (strlen(path) > IPC_PATH_MAX)
        return fail(pr, HINT_IPC, "path is %zu bytes, limit is %d", strlen(path), IPC_PATH_MAX);
    return true;
}

static bool check_inproc(const char *name, problem_t *pr)
{
    return *name || fail(pr, HINT_INPROC, "missing name after \"inproc://\"");
}

static const struct transport {
    const char *name;
    bool (*check)(const char *rest, problem_t *pr);
    const char *hint;
} TRANSPORTS[] = {
    {"tcp", check_tcp, HINT_TCP},
    {"ipc", check_ipc, HINT_IPC},
    {"inproc", check_inproc, HINT_INPROC},
};

/* Checks one endpoint, NUL-terminated. */
static bool check_one_endpoint(const char *e, problem_t *pr)
{
    char q[QUOTE_MAX + 4];
    if (!*e)
        return fail(pr, HINT_ANY, "the endpoint is empty");
    if (strchr(e, ','))
        return fail(pr, HINT_ANY, "only one endpoint is allowed here, not a list");
    const char *colon = strchr(e, ':');
    size_t tlen = colon ? (size_t)(colon - e) : 0;
    for (size_t i = 0; colon && i < sizeof TRANSPORTS / sizeof TRANSPORTS[0]; i++) {
        const struct transport *t = &TRANSPORTS[i];
        if (strlen(t->name) != tlen || strncmp(e, t->name, tlen) != 0)
            continue;
        if (strncmp(colon, "://", 3) != 0)
            return fail(pr, t->hint, "missing \"//\" after \"%s:\"", t->name);
        return t->check(colon + 3, pr);
    }
    if (!colon || strncmp(colon, "://", 3) != 0)
        return fail(pr, HINT_ANY, "missing the transport, such as \"tcp://\"");
    char *name = pl_strndup(e, tlen);
    /* fail() is always false; the copy must be freed before returning. */
    (void)fail(pr, HINT_ANY, "unknown transport \"%s\"", quote(name, q));
    pl_free(name);
    return false;
}

/* Cuts a sequence that snprintf split at the end of s, so that a message
 * built from valid UTF-8 parts stays valid UTF-8. */
static void trim_utf8(char *s)
{
    size_t len = strlen(s), bad = 0;
    if (!pl_utf8_valid(s, len, &bad) && len - bad < 4)
        s[bad] = '\0';
}

/* Names the endpoint of a list that pr is about. */
static void prefix_why(problem_t *pr, const char *endpoint)
{
    char q[QUOTE_MAX + 4], why[sizeof pr->why];
    memcpy(why, pr->why, sizeof why);
    /* The result is checked only to say that truncation is expected here. */
    if (snprintf(pr->why, sizeof pr->why, "endpoint \"%s\": %s", quote(endpoint, q), why) >=
        (int)sizeof pr->why)
        trim_utf8(pr->why);
}

/* Checks a comma-separated list of endpoints; names the bad one when there
 * is more than one. */
static bool check_endpoint_list(const char *text, problem_t *pr)
{
    bool many = strchr(text, ',') != NULL;
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        char *one = pl_strndup(p, len);
        bool ok = check_one_endpoint(one, pr);
        if (!ok && many)
            prefix_why(pr, one);
        pl_free(one);
        if (!ok)
            return false;
        if (p[len] == '\0')
            return true;
        p += len + 1;
    }
}

int pl_cfg_check_endpoint(const char *text, pl_err_t *err)
{
    char q[QUOTE_MAX + 4];
    problem_t pr;
    if (!text)
        text = "";
    if (check_one_endpoint(text, &pr))
        return 0;
    pl_err_set(err, PL_EINVAL, NULL, "invalid endpoint \"%s\": %s", quote(text, q), pr.why);
    (void)pl_err_hint(err, "%s", pr.hint); /* returns err->code, which is known */
    return PL_EINVAL;
}

int pl_cfg_split_hostport(const char *text, char *host_buf, size_t host_len, int *port,
                          pl_err_t *err)
{
    char q[QUOTE_MAX + 4];
    problem_t pr;
    int got = 0;
    if (!text)
        text = "";
    if (parse_hostport(text, false, host_buf, host_len, &got, &pr, HINT_HTTP)) {
        if (port)
            *port = got;
        return 0;
    }
    pl_err_set(err, PL_EINVAL, NULL, "invalid address \"%s\": %s", quote(text, q), pr.why);
    (void)pl_err_hint(err, "%s", pr.hint);
    return PL_EINVAL;
}

/* ---- one checker per kind: check value, store it in s->target ---- */

static bool set_string(const pl_cfg_setting_t *s, const char *value, problem_t *pr)
{
    if (s->target)
        *(const char **)s->target = keep(value);
    return true;
}

static bool set_endpoint(const pl_cfg_setting_t *s, const char *value, problem_t *pr)
{
    bool ok = s->min == 1 ? check_endpoint_list(value, pr) : check_one_endpoint(value, pr);
    return ok && set_string(s, value, pr);
}

static bool set_httpaddr(const pl_cfg_setting_t *s, const char *value, problem_t *pr)
{
    char host[HOST_MAX];
    int port;
    return parse_hostport(value, false, host, sizeof host, &port, pr, HINT_HTTP) &&
           set_string(s, value, pr);
}

static bool set_dir(const pl_cfg_setting_t *s, const char *value, problem_t *pr)
{
    const char *hint = "Point it at an existing directory that this user can read.";
    struct stat st;
    if (stat(value, &st) != 0) {
        if (errno == ENOENT)
            return fail(pr, hint, "directory does not exist");
        return fail(pr, hint, "cannot access it: %s", strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return fail(pr, hint, "not a directory");
    if (access(value, R_OK | X_OK) != 0)
        return fail(pr, hint, "cannot read the directory: %s", strerror(errno));
    return set_string(s, value, pr);
}

static bool bounded(const pl_cfg_setting_t *s)
{
    return s->min != 0 || s->max != 0;
}

static bool set_int(const pl_cfg_setting_t *s, const char *value, problem_t *pr)
{
    char hint[PL_ERR_HINT_MAX] = "Use a whole number, e.g. 10.";
    if (bounded(s))
        snprintf(hint, sizeof hint, "Use a whole number from %lld to %lld.", (long long)s->min,
                 (long long)s->max);
    char *end = NULL;
    errno = 0;
    long long v =
        (*value == '-' || (*value >= '0' && *value <= '9')) ? strtoll(value, &end, 10) : 0;
    if (!end || *end != '\0' || end == value)
        return fail(pr, hint, "not a whole number");
    if (errno == ERANGE)
        return fail(pr, hint, "the number is too large");
    if (bounded(s) && (v < s->min || v > s->max))
        return fail(pr, hint, "%lld is out of range (%lld to %lld)", v, (long long)s->min,
                    (long long)s->max);
    if (s->target)
        *(int64_t *)s->target = v;
    return true;
}

static bool set_duration(const pl_cfg_setting_t *s, const char *value, problem_t *pr)
{
    char lo[32], hi[32];
    pl_err_t err;
    int64_t ms;
    if (pl_duration_parse(value, &ms, s->name, &err) != 0) {
        /* pl_time already quoted the value and said why: name the setting
         * instead of "duration" and keep the rest. */
        static const char PREFIX[] = "invalid duration ";
        bool known = strncmp(err.message, PREFIX, sizeof PREFIX - 1) == 0;
        /* fail() is always false; whole is set after it, since fail() clears it. */
        (void)fail(pr, err.hint, "%s", known ? err.message + sizeof PREFIX - 1 : err.message);
        pr->whole = known;
        return false;
    }
    if (bounded(s) && (ms < s->min || ms > s->max)) {
        pl_duration_format(s->min, lo);
        pl_duration_format(s->max, hi);
        char hint[PL_ERR_HINT_MAX];
        snprintf(hint, sizeof hint, "Use a duration from %s to %s.", lo, hi);
        return fail(pr, hint, "%s the %s of %s", ms < s->min ? "below" : "above",
                    ms < s->min ? "minimum" : "maximum", ms < s->min ? lo : hi);
    }
    if (s->target)
        *(int64_t *)s->target = ms;
    return true;
}

static bool set_loglevel(const pl_cfg_setting_t *s, const char *value, problem_t *pr)
{
    pl_log_level_t level;
    if (pl_log_level_parse(value, &level) != 0)
        return fail(pr, "Use one of debug, info, warn, error.", "unknown log level");
    if (s->target)
        *(int *)s->target = (int)level;
    return true;
}

static bool set_bool(const pl_cfg_setting_t *s, const char *value, problem_t *pr)
{
    static const char *const YES[] = {"true", "1", "yes", "on"};
    static const char *const NO[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        int v = strcasecmp(value, YES[i]) == 0 ? 1 : strcasecmp(value, NO[i]) == 0 ? 0 : -1;
        if (v < 0)
            continue;
        if (s->target)
            *(int *)s->target = v;
        return true;
    }
    return fail(pr, "Use true or false (or 1/0, yes/no, on/off).", "not a boolean");
}

typedef bool (*setter_t)(const pl_cfg_setting_t *s, const char *value, problem_t *pr);

static setter_t setter_for(pl_cfg_kind_t kind)
{
    switch (kind) {
    case PL_CFG_STRING: return set_string;
    case PL_CFG_ENDPOINT: return set_endpoint;
    case PL_CFG_HTTPADDR: return set_httpaddr;
    case PL_CFG_HTTPADDR_OR_OFF: return set_httpaddr;
    case PL_CFG_DURATION: return set_duration;
    case PL_CFG_INT: return set_int;
    case PL_CFG_LOGLEVEL: return set_loglevel;
    case PL_CFG_DIR: return set_dir;
    case PL_CFG_BOOL: return set_bool;
    }
    return NULL;
}

/* ---- loading ---- */

static void report(pl_errlist_t *errs, const pl_cfg_setting_t *s, const char *value,
                   const problem_t *pr)
{
    char q[QUOTE_MAX + 4];
    pl_err_t err;
    if (pr->whole)
        pl_err_set(&err, PL_ECONFIG, s->name, "invalid %s %s", s->name, pr->why);
    else
        pl_err_set(&err, PL_ECONFIG, s->name, "invalid %s \"%s\": %s", s->name, quote(value, q),
                   pr->why);
    trim_utf8(err.message);
    (void)pl_err_hint(&err, "%s", pr->hint); /* returns err.code, which is known */
    pl_errlist_push(errs, &err);
}

static void report_unset(pl_errlist_t *errs, const pl_cfg_setting_t *s)
{
    pl_err_t err;
    pl_err_set(&err, PL_ECONFIG, s->name, "%s is not set and has no default", s->name);
    if (s->help && *s->help)
        (void)pl_err_hint(&err, "Set %s: %s.", s->name, s->help);
    else
        (void)pl_err_hint(&err, "Set %s in the environment.", s->name);
    pl_errlist_push(errs, &err);
}

static bool is_text_kind(pl_cfg_kind_t kind)
{
    return kind == PL_CFG_STRING || kind == PL_CFG_ENDPOINT || kind == PL_CFG_HTTPADDR ||
           kind == PL_CFG_HTTPADDR_OR_OFF ||
           kind == PL_CFG_DIR;
}

/* An empty value is allowed only where the default is "" or the kind says
 * "" means off (PLAINT_METRICS_ADDR); anywhere else it is more likely a
 * mistake than a choice. */
static bool set_empty(const pl_cfg_setting_t *s, problem_t *pr)
{
    bool off_allowed = s->kind == PL_CFG_HTTPADDR_OR_OFF;
    if (is_text_kind(s->kind) && (off_allowed || (s->defval && !*s->defval)))
        return set_string(s, "", pr);
    if (s->defval && *s->defval)
        snprintf(pr->hint, sizeof pr->hint, "Unset %s to use the default, \"%s\".", s->name,
                 s->defval);
    else if (s->help && *s->help)
        snprintf(pr->hint, sizeof pr->hint, "Set %s: %s.", s->name, s->help);
    else
        snprintf(pr->hint, sizeof pr->hint, "Set %s to a value.", s->name);
    char hint[PL_ERR_HINT_MAX];
    memcpy(hint, pr->hint, sizeof hint);
    return fail(pr, hint, "must not be empty");
}

/* Checks and stores one setting; false when it was reported as bad. */
static bool load_one(const pl_cfg_setting_t *s, pl_errlist_t *errs)
{
    const char *value = getenv(s->name);
    if (!value)
        value = s->defval;
    if (!value) {
        report_unset(errs, s);
        return false;
    }
    problem_t pr;
    setter_t set = setter_for(s->kind);
    bool ok;
    if (!*value)
        ok = set_empty(s, &pr);
    else if (!set)
        ok = fail(&pr, "This is a bug in the daemon's settings table.", "unknown kind %d",
                  (int)s->kind);
    else
        ok = set(s, value, &pr);
    if (!ok)
        report(errs, s, value, &pr);
    return ok;
}

int pl_cfg_load(const pl_cfg_setting_t *table, size_t n, pl_errlist_t *errs)
{
    pl_errlist_t local = PL_ERRLIST_INIT;
    pl_errlist_t *list = errs ? errs : &local;
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        ok = load_one(&table[i], list) && ok;
    pl_errlist_reset(&local);
    return ok ? 0 : PL_ECONFIG;
}

void pl_cfg_print_help(const pl_cfg_setting_t *table, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const pl_cfg_setting_t *s = &table[i];
        const char *help = s->help ? s->help : "";
        /* --help output is best effort: a closed stdout has no one to tell. */
        if (!s->defval)
            (void)printf("%s (required)  %s\n", s->name, help);
        else if (!*s->defval)
            (void)printf("%s (default: \"\")  %s\n", s->name, help);
        else
            (void)printf("%s (default: %s)  %s\n", s->name, s->defval, help);
    }
    (void)fflush(stdout);
}

/* ---- JSON config files ---- */

static int file_error(pl_err_t *err, const char *file, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int file_error(pl_err_t *err, const char *file, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pl_err_vset(err, PL_ECONFIG, file, fmt, ap);
    va_end(ap);
    (void)pl_err_hint(err, "%s", hint); /* returns err->code, which is known */
    return PL_ECONFIG;
}

/* Reads fd to its end into a NUL-terminated buffer the caller frees. size,
 * from fstat, is only a first guess: the file may change while it is read.
 * Returns 0, -1 with errno set, or 1 when the file is over JSON_FILE_MAX. */
static int read_all(int fd, size_t size, char **out, size_t *out_len)
{
    /* One byte more than expected tells the end of the file from a full buffer. */
    size_t len = 0, cap = size + 1;
    char *buf = pl_malloc(cap + 1);
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -1 : 0;
            break;
        }
        len += (size_t)n;
        if (len > JSON_FILE_MAX) {
            rc = 1;
            break;
        }
        if (len == cap) {
            cap = cap * 2 > JSON_FILE_MAX + 1 ? JSON_FILE_MAX + 1 : cap * 2;
            buf = pl_realloc(buf, cap + 1);
        }
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return rc;
}

/* Opens and reads dir/file; on failure *out is NULL and err says why. */
static int read_file(const char *path, const char *file, const char *dir, char **out,
                     size_t *out_len, pl_err_t *err)
{
    char hint[PL_ERR_HINT_MAX];
    snprintf(hint, sizeof hint, "Check PLAINT_CONFIG_DIR (now \"%s\") and the file.", dir);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return file_error(err, file, hint, "cannot open config file \"%s\": %s", path,
                          strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = file_error(err, file, hint, "config file \"%s\" is not a regular file", path);
    } else {
        int got = st.st_size > JSON_FILE_MAX ? 1 : read_all(fd, (size_t)st.st_size, out, out_len);
        if (got < 0)
            rc = file_error(err, file, hint, "cannot read config file \"%s\": %s", path,
                            strerror(errno));
        else if (got > 0)
            rc =
                file_error(err, file, "Split the file or remove unused entries.",
                           "config file \"%s\" is over the limit of %d bytes", path, JSON_FILE_MAX);
    }
    (void)close(fd); /* read-only: nothing is lost if close fails */
    if (rc != 0) {
        pl_free(*out);
        *out = NULL;
    }
    return rc;
}

/* 1-based line and column (in characters) of text[off], counted from base. */
static void line_col(const char *base, size_t off, int *line, int *col)
{
    const char *start = base;
    *line = 1;
    for (size_t i = 0; i < off; i++) {
        if (base[i] == '\n') {
            (*line)++;
            start = base + i + 1;
        }
    }
    *col = (int)pl_utf8_count(start, (size_t)(base + off - start)) + 1;
}

/* cJSON's error position is near the fault, not always on it (a trailing
 * comma is reported after the closing brace), hence "near". */
static int syntax_error(pl_err_t *err, const char *file, const char *path, const char *base,
                        size_t len, size_t off)
{
    int line, col;
    char what[32];
    line_col(base, off, &line, &col);
    unsigned char c = off < len ? (unsigned char)base[off] : 0;
    if (off >= len)
        snprintf(what, sizeof what, "unexpected end of file");
    else if (c >= 0x21 && c < 0x7F)
        snprintf(what, sizeof what, "unexpected \"%c\"", c);
    else
        snprintf(what, sizeof what, "syntax error");
    return file_error(err, file,
                      "Fix the JSON there: a missing or extra comma, quote or bracket is the "
                      "usual cause.",
                      "invalid JSON in config file \"%s\" near line %d, column %d: %s", path, line,
                      col, what);
}

/* cJSON takes NUL as the end and does not check UTF-8, so both are checked
 * here, where the position can still be reported. */
static int check_bytes(pl_err_t *err, const char *file, const char *path, const char *base,
                       size_t len)
{
    int line, col;
    size_t bad = 0;
    const char *nul = memchr(base, '\0', len);
    if (nul) {
        line_col(base, (size_t)(nul - base), &line, &col);
        return file_error(err, file, "Save the file as UTF-8 text.",
                          "config file \"%s\" has a NUL byte at line %d, column %d", path, line,
                          col);
    }
    if (!pl_utf8_valid(base, len, &bad)) {
        line_col(base, bad, &line, &col);
        return file_error(err, file, "Save the file as UTF-8 text.",
                          "config file \"%s\" is not valid UTF-8 at line %d, column %d", path, line,
                          col);
    }
    return 0;
}

cJSON *pl_cfg_read_json(const char *dir, const char *file, pl_err_t *err)
{
    char *path = pl_sprintf("%s/%s", dir ? dir : ".", file ? file : "");
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    if (read_file(path, file, dir ? dir : ".", &text, &len, err) != 0)
        goto cleanup;
    /* Editors on some systems start UTF-8 files with a byte order mark. */
    const char *base = text;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        base += 3;
        len -= 3;
    }
    if (check_bytes(err, file, path, base, len) != 0)
        goto cleanup;
    const char *end = NULL;
    /* The length counts the NUL: cJSON wants to see it to refuse trailing
     * garbage. end is what cJSON_GetErrorPtr() would give, without its global. */
    root = cJSON_ParseWithLengthOpts(base, len + 1, &end, 1);
    if (!root)
        (void)syntax_error(err, file, path, base, len, end ? (size_t)(end - base) : 0);
cleanup:
    pl_free(text);
    pl_free(path);
    return root;
}

void pl_cfg_vproblem(pl_errlist_t *errs, const char *file, const char *path, const char *hint,
                     const char *fmt, va_list ap)
{
    char msg[PL_ERR_MSG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    pl_err_t e;
    pl_err_set(&e, PL_ECONFIG, path, "%s: %s: %s", file, path[0] ? path : "(top)", msg);
    if (hint)
        (void)pl_err_hint(&e, "%s", hint); /* returns e.code, which is known */
    pl_errlist_push(errs, &e);
}
