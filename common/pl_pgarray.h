/*
 * pl_pgarray: one-dimensional PostgreSQL arrays in the binary wire format,
 * for sending a batch as a few array parameters instead of one JSON text
 * the server would have to parse (array_recv reads length-prefixed elements;
 * json_lex reads every byte).
 *
 * Elements are text (OID 25). Owns its buffer; pl_pgarray_data() lends it.
 */
#ifndef PL_PGARRAY_H
#define PL_PGARRAY_H

#include <stddef.h>

typedef struct pl_pgarray pl_pgarray_t;

pl_pgarray_t *pl_pgarray_new(void);
/* Appends a text element; s == NULL appends SQL NULL. s need not be
 * NUL-terminated; it must be valid in the server encoding (UTF-8). */
void pl_pgarray_add(pl_pgarray_t *a, const char *s, size_t len);
void pl_pgarray_add_str(pl_pgarray_t *a, const char *s);
size_t pl_pgarray_count(const pl_pgarray_t *a);
/* The encoded array (borrowed until the next add or destroy) and its length. */
const char *pl_pgarray_data(pl_pgarray_t *a, int *len);
/* NULL-safe; nulls *a_p. */
void pl_pgarray_destroy(pl_pgarray_t **a_p);

#endif
