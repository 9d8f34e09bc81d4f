/*
 * pl_alloc: memory allocation that never returns NULL.
 *
 * Running out of memory is not a condition a daemon can recover from in a
 * useful way, so every allocation aborts with a log line instead of making
 * each caller check (after Postfix's mymalloc). Callers own what they get and
 * release it with pl_free() (or free(): the same allocator).
 */
#ifndef PL_ALLOC_H
#define PL_ALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *pl_malloc(size_t size);
void *pl_calloc(size_t count, size_t size);
void *pl_realloc(void *ptr, size_t size);
/* Returns a NUL-terminated copy the caller frees; NULL in gives NULL out. */
char *pl_strdup(const char *s);
char *pl_strndup(const char *s, size_t len);
/* printf into a new string the caller frees. */
char *pl_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *pl_vsprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
void pl_free(void *ptr);

#endif
