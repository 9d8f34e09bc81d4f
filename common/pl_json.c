/*
 * pl_json: strict parsing of untrusted JSON frames, paths for error
 * messages, and builders that treat running out of memory as fatal (see
 * pl_json.h).
 *
 * Trusts nothing in a frame. cJSON is lenient (it reads "01", skips control
 * characters as whitespace, truncates strings at "\u0000", keeps duplicate
 * keys, turns 1e400 into infinity and recurses up to 1000 levels), so a byte
 * scan runs before cJSON and a tree walk after it. Owns the working copy of
 * the frame for the length of one call; the tree it returns is the caller's.
 */
#include "pl_json.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_utf8.h"

/* Integers beyond 2^53 - 1 lose digits in a double (all that cJSON keeps)
 * and in most clients' parsers; refuse rather than store a silently changed
 * value. 2^53 itself is refused too: 9007199254740993 rounds to it. */
#define JSON_NUMBER_MAX 9007199254740991.0
#define JSON_RANGE_TEXT "numbers must lie between -9007199254740991 and 9007199254740991 (2^53 - 1)"

/* Escapes that cJSON would mishandle are rewritten in the working copy, in
 * place and at the same length, to Unicode noncharacters (reserved for a
 * process's internal use), which the tree walk then finds in the parsed
 * strings and reports with their path. A frame holding the same
 * noncharacter legitimately next to a bad escape gets one extra error; it is
 * refused either way. */
#define SENTINEL_NUL_HEX "FDD0"       /* a "\u0000" escape; cJSON truncates there */
#define SENTINEL_NUL_UTF8 "\xEF\xB7\x90"
#define SENTINEL_SURROGATE_HEX "FDD1" /* a lone surrogate; cJSON fails with no reason */
#define SENTINEL_SURROGATE_UTF8 "\xEF\xB7\x91"

/* What the byte scan saw. */
typedef struct scan {
    int depth_max;          /* deepest nesting of arrays and objects */
    size_t nul_escapes;     /* "\u0000" escapes rewritten */
    size_t lone_surrogates; /* lone surrogate escapes rewritten */
} scan_t;

/* What the tree walk looks for, and what it found. */
typedef struct walk {
    pl_errlist_t *errs;
    bool find_nul;       /* the scan rewrote a "\u0000" escape */
    bool find_surrogate; /* the scan rewrote a lone surrogate */
    bool check_utf8;     /* the frame holds invalid UTF-8 somewhere */
    size_t bad_utf8;     /* strings found with invalid UTF-8 */
} walk_t;

static void out_of_memory(void)
{
    static const char line[] = "{\"level\":\"error\",\"msg\":\"out of memory\",\"in\":\"cjson\"}\n";
    /* write(2): stdio may need memory, and this is the last line. */
    (void)!write(STDOUT_FILENO, line, sizeof line - 1);
    abort();
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_digits(const char *p, size_t len, size_t i)
{
    while (i < len && is_digit(p[i]))
        i++;
    return i;
}

/* Length of the RFC 8259 number at p, or 0 when it breaks the grammar. */
static size_t number_length(const char *p, size_t len)
{
    size_t i = (p[0] == '-') ? 1 : 0;
    if (i < len && p[i] == '0')
        i++;
    else if (i < len && is_digit(p[i]))
        i = skip_digits(p, len, i);
    else
        return 0;
    if (i < len && p[i] == '.') {
        size_t frac = i + 1;
        if ((i = skip_digits(p, len, frac)) == frac)
            return 0;
    }
    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        size_t exp = i + 1;
        if (exp < len && (p[exp] == '+' || p[exp] == '-'))
            exp++;
        if ((i = skip_digits(p, len, exp)) == exp)
            return 0;
    }
    /* "01", "1.2.3", "1e5e5": a number glued to more number characters. */
    if (i < len && p[i] != '\0' && strchr("0123456789.eE+-", p[i]))
        return 0;
    return i;
}

/* Value of the 4 hex digits at p, or -1. */
static long hex4(const char *p, size_t avail)
{
    if (avail < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = is_digit(c) ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* p[i] is a backslash inside a string. Rewrites "\u0000" and lone surrogate
 * escapes to sentinels; returns the index of the escape's last byte. Other
 * malformed escapes are left for cJSON to refuse. */
static size_t scan_escape(char *p, size_t len, size_t i, scan_t *s)
{
    if (i + 1 >= len || p[i + 1] != 'u')
        return i + 1 < len ? i + 1 : i;
    long code = hex4(p + i + 2, len - (i + 2));
    if (code < 0)
        return i + 1;
    if (code == 0) {
        memcpy(p + i + 2, SENTINEL_NUL_HEX, 4);
        s->nul_escapes++;
        return i + 5;
    }
    if (code >= 0xD800 && code <= 0xDBFF && i + 7 < len && p[i + 6] == '\\' && p[i + 7] == 'u') {
        long low = hex4(p + i + 8, len - (i + 8));
        if (low >= 0xDC00 && low <= 0xDFFF)
            return i + 11; /* a proper pair */
    }
    if (code >= 0xD800 && code <= 0xDFFF) {
        memcpy(p + i + 2, SENTINEL_SURROGATE_HEX, 4);
        s->lone_surrogates++;
    }
    return i + 5;
}

/* Handles p[*i], a byte outside any string. */
static int scan_outside(char *p, size_t len, size_t *i, int *depth, scan_t *s,
                        pl_errlist_t *errs)
{
    unsigned char c = (unsigned char)p[*i];
    if (c == '[' || c == '{') {
        if (++*depth > s->depth_max)
            s->depth_max = *depth;
    } else if (c == ']' || c == '}') {
        if (*depth > 0)
            --*depth;
    } else if (c == '-' || is_digit((char)c)) {
        size_t n = number_length(p + *i, len - *i);
        if (n == 0)
            return pl_errlist_add(errs, PL_EINVAL, "", "invalid number at byte offset %zu", *i);
        *i += n - 1;
    } else if (c < 0x20 && !is_json_space((char)c)) {
        return pl_errlist_add(errs, PL_EINVAL, "",
                              "unexpected control character 0x%02X at byte offset %zu", c, *i);
    }
    return 0;
}

/* One pass over the working copy: nesting depth, bad escapes, control
 * characters and numbers. Stops at the first lexical error. */
static int scan(char *p, size_t len, scan_t *s, pl_errlist_t *errs)
{
    bool in_string = false;
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!in_string) {
            if (c == '"')
                in_string = true;
            else if (scan_outside(p, len, &i, &depth, s, errs) < 0)
                return PL_EINVAL;
        } else if (c == '"') {
            in_string = false;
        } else if (c == '\\') {
            i = scan_escape(p, len, i, s);
        } else if (c < 0x20) {
            return pl_errlist_add(errs, PL_EINVAL, "",
                                  "unescaped control character 0x%02X in a string at byte "
                                  "offset %zu; escape it as \\n, \\t or \\u00XX",
                                  c, i);
        }
    }
    return 0;
}

/* Parses the scanned copy; refuses anything but whitespace after the value. */
static cJSON *parse_tree(const char *copy, size_t len, pl_errlist_t *errs)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(copy, len, &end, false);
    if (!root) {
        size_t at = end ? (size_t)(end - copy) : 0;
        pl_errlist_add(errs, PL_EINVAL, "",
                       "message is not valid JSON: syntax error at byte offset %zu", at);
        return NULL;
    }
    while (end < copy + len && is_json_space(*end))
        end++;
    if (end != copy + len) {
        pl_errlist_add(errs, PL_EINVAL, "",
                       "message has data after the JSON value at byte offset %zu",
                       (size_t)(end - copy));
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static void check_number(walk_t *w, const cJSON *item, const char *path)
{
    double v = item->valuedouble;
    if (!isfinite(v))
        pl_errlist_add(w->errs, PL_EINVAL, path, "number is too large to represent; %s",
                       JSON_RANGE_TEXT);
    else if (fabs(v) > JSON_NUMBER_MAX)
        pl_errlist_add(w->errs, PL_EINVAL, path, "number %.17g is out of range; %s", v,
                       JSON_RANGE_TEXT);
}

/* what: "string" or "member name". Only looks for what the scan flagged. */
static void check_string(walk_t *w, const char *s, const char *path, const char *what)
{
    size_t len = strlen(s), bad_at = 0;
    if (w->check_utf8 && !pl_utf8_valid(s, len, &bad_at)) {
        w->bad_utf8++;
        pl_errlist_add(w->errs, PL_EINVAL, path,
                       "%s is not valid UTF-8: byte 0x%02X at offset %zu of the value", what,
                       (unsigned char)s[bad_at], bad_at);
    }
    if (w->find_nul && memmem(s, len, SENTINEL_NUL_UTF8, 3))
        pl_errlist_add(w->errs, PL_EINVAL, path,
                       "%s contains a \\u0000 escape; NUL characters are not allowed", what);
    if (w->find_surrogate && memmem(s, len, SENTINEL_SURROGATE_UTF8, 3))
        pl_errlist_add(w->errs, PL_EINVAL, path,
                       "%s contains a lone surrogate escape; a \\uD800-\\uDBFF escape must be "
                       "followed by a \\uDC00-\\uDFFF one",
                       what);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorting keeps this O(n log n): a 1 MiB frame can hold 100000 keys. */
static void check_duplicates(walk_t *w, const cJSON *obj, const char *path)
{
    size_t n = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        n++;
    if (n < 2)
        return;
    const char **names = pl_malloc(n * sizeof *names);
    size_t i = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        names[i++] = c->string;
    qsort(names, n, sizeof *names, compare_names);
    char child[PL_ERR_PATH_MAX];
    for (i = 1; i < n; i++) {
        if (strcmp(names[i], names[i - 1]) != 0 || (i >= 2 && !strcmp(names[i], names[i - 2])))
            continue;
        int shown = (int)pl_utf8_truncate(names[i], strlen(names[i]), 64);
        pl_errlist_add(w->errs, PL_EINVAL, pl_json_path(child, sizeof child, path, names[i]),
                       "duplicate key \"%.*s\"; a name may appear only once in an object",
                       shown, names[i]);
    }
    pl_free(names);
}

static void walk(walk_t *w, const cJSON *item, const char *path);

static void walk_children(walk_t *w, const cJSON *parent, const char *path)
{
    char child[PL_ERR_PATH_MAX];
    int index = 0;
    for (const cJSON *c = parent->child; c; c = c->next, index++) {
        if (cJSON_IsObject(parent)) {
            pl_json_path(child, sizeof child, path, c->string);
            check_string(w, c->string, child, "member name");
        } else {
            pl_json_path_index(child, sizeof child, path, index);
        }
        walk(w, c, child);
    }
}

/* Recursion is bounded: the scan refused nesting beyond max_depth. */
static void walk(walk_t *w, const cJSON *item, const char *path)
{
    if (cJSON_IsNumber(item))
        check_number(w, item, path);
    else if (cJSON_IsString(item))
        check_string(w, item->valuestring, path, "string");
    else if (cJSON_IsArray(item) || cJSON_IsObject(item))
        walk_children(w, item, path);
    if (cJSON_IsObject(item))
        check_duplicates(w, item, path);
}

/* Checks that need the whole frame; 0 when it may go on to cJSON. */
static int check_frame(const char *buf, size_t len, pl_errlist_t *errs)
{
    if (len == 0) {
        pl_err_t e;
        pl_err_set(&e, PL_EINVAL, "", "empty message");
        pl_err_hint(&e, "Send one JSON object per frame.");
        pl_errlist_push(errs, &e);
        return PL_EINVAL;
    }
    const char *nul = memchr(buf, '\0', len);
    if (nul)
        return pl_errlist_add(errs, PL_EINVAL, "",
                              "message contains a NUL byte at byte offset %zu; JSON text "
                              "cannot hold one",
                              (size_t)(nul - buf));
    return 0;
}

cJSON *pl_json_parse(const char *buf, size_t len, int max_depth, pl_errlist_t *errs)
{
    assert(max_depth > 0);
    size_t before = errs->count + errs->dropped, bad_at = 0;
    if (check_frame(buf, len, errs) < 0)
        return NULL;
    bool utf8_ok = pl_utf8_valid(buf, len, &bad_at);
    char *copy = pl_strndup(buf, len);
    scan_t s = {0, 0, 0};
    cJSON *root = NULL;
    if (scan(copy, len, &s, errs) == 0) {
        /* Checked before cJSON sees the text, so it never recurses deeply. */
        if (s.depth_max > max_depth)
            pl_errlist_add(errs, PL_EINVAL, "", "nesting depth %d exceeds the limit of %d",
                           s.depth_max, max_depth);
        else
            root = parse_tree(copy, len, errs);
    }
    walk_t w = {errs, s.nul_escapes > 0, s.lone_surrogates > 0, !utf8_ok, 0};
    if (root)
        walk(&w, root, "");
    /* Name the field when the bad bytes are inside a string, else the offset. */
    if (!utf8_ok && w.bad_utf8 == 0)
        pl_errlist_add(errs, PL_EINVAL, "",
                       "message is not valid UTF-8: byte 0x%02X at byte offset %zu",
                       (unsigned char)buf[bad_at], bad_at);
    pl_free(copy);
    if (errs->count + errs->dropped != before) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

const char *pl_json_type_name(const cJSON *item)
{
    if (!item)
        return "nothing";
    if (cJSON_IsString(item))
        return "string";
    if (cJSON_IsNumber(item))
        return "number";
    if (cJSON_IsObject(item))
        return "object";
    if (cJSON_IsArray(item))
        return "array";
    if (cJSON_IsBool(item))
        return "boolean";
    if (cJSON_IsNull(item))
        return "null";
    return "raw JSON";
}

char *pl_json_path(char *buf, size_t size, const char *parent, const char *name)
{
    if (!parent || !*parent)
        snprintf(buf, size, "%s", name ? name : "");
    else
        snprintf(buf, size, "%s.%s", parent, name ? name : "");
    return buf;
}

char *pl_json_path_index(char *buf, size_t size, const char *parent, int index)
{
    snprintf(buf, size, "%s[%d]", parent ? parent : "", index);
    return buf;
}

char *pl_json_print(const cJSON *item)
{
    if (!item)
        return pl_strdup("null");
    /* cJSON allocates with malloc, so pl_free() releases it. */
    return (char *)pl_json_must((cJSON *)cJSON_PrintUnformatted(item));
}

cJSON *pl_json_must(cJSON *item)
{
    if (!item)
        out_of_memory();
    return item;
}

void pl_json_add(cJSON *obj, const char *name, cJSON *item)
{
    if (!item)
        item = pl_json_must(cJSON_CreateNull());
    /* Fails only when out of memory, or on a non-object (a bug either way). */
    if (!cJSON_AddItemToObject(obj, name, item))
        out_of_memory();
}

void pl_json_add_str(cJSON *obj, const char *name, const char *value)
{
    pl_json_add(obj, name, value ? pl_json_must(cJSON_CreateString(value)) : NULL);
}

void pl_json_add_num(cJSON *obj, const char *name, double value)
{
    pl_json_add(obj, name, pl_json_must(cJSON_CreateNumber(value)));
}

cJSON *pl_json_dup(const cJSON *item)
{
    if (!item)
        return pl_json_must(cJSON_CreateNull());
    return pl_json_must(cJSON_Duplicate(item, true));
}

const char *pl_json_str(const cJSON *obj, const char *name, const char *fallback)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(item) ? item->valuestring : fallback;
}

int64_t pl_json_int(const cJSON *obj, const char *name, int64_t fallback)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(item))
        return fallback;
    double v = item->valuedouble;
    /* 2^63 itself does not fit; the cast would be undefined. */
    if (!isfinite(v) || v != floor(v) || v < -9223372036854775808.0 || v >= 9223372036854775808.0)
        return fallback;
    return (int64_t)v;
}

bool pl_json_bool(const cJSON *obj, const char *name, bool fallback)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsBool(item) ? cJSON_IsTrue(item) : fallback;
}
