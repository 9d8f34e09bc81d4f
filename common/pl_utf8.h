/*
 * pl_utf8: UTF-8 validation and counting (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF).
 */
#ifndef PL_UTF8_H
#define PL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True if s[0..len) is valid UTF-8. On false, *bad_offset (if not NULL) is the
 * byte offset of the first invalid sequence. NUL bytes are valid UTF-8 here;
 * callers that forbid them check separately. */
bool pl_utf8_valid(const char *s, size_t len, size_t *bad_offset);
/* Number of code points in valid UTF-8 s[0..len). */
size_t pl_utf8_count(const char *s, size_t len);
/* Largest n <= max_bytes such that s[0..n) ends on a character boundary. */
size_t pl_utf8_truncate(const char *s, size_t len, size_t max_bytes);

#endif
