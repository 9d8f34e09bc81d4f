/*
 * pl_alloc: allocation that aborts on exhaustion (see pl_alloc.h).
 * Trusts nothing; owns nothing.
 */
#include "pl_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void out_of_memory(size_t size)
{
    char line[160];
    int n = snprintf(line, sizeof line,
                     "{\"level\":\"error\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", size);
    /* write(2) rather than stdio: it needs no memory, and this is the last line. */
    if (n > 0)
        (void)!write(STDOUT_FILENO, line, (size_t)n);
    abort();
}

void *pl_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

void *pl_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        out_of_memory(count * size);
    return p;
}

void *pl_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

char *pl_strdup(const char *s)
{
    return s ? pl_strndup(s, strlen(s)) : NULL;
}

char *pl_strndup(const char *s, size_t len)
{
    if (!s)
        return NULL;
    char *copy = pl_malloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *pl_vsprintf(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0)
        n = 0;
    char *out = pl_malloc((size_t)n + 1);
    (void)vsnprintf(out, (size_t)n + 1, fmt, again);
    va_end(again);
    return out;
}

char *pl_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = pl_vsprintf(fmt, ap);
    va_end(ap);
    return out;
}

void pl_free(void *ptr)
{
    free(ptr);
}
