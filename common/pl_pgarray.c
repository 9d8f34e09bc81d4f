/*
 * pl_pgarray: binary text[] encoding (see pl_pgarray.h), after
 * PostgreSQL's array_send: int32 ndim, int32 has-nulls flag, int32 element
 * type OID, then per dimension int32 length and int32 lower bound, then per
 * element int32 byte length (-1 = NULL) and the bytes. All big-endian.
 */
#include "pl_pgarray.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "pl_alloc.h"

#define HEADER_BYTES 20
#define TEXT_OID 25

struct pl_pgarray {
    char *buf;
    size_t len, cap;
    size_t count;
    bool has_nulls;
};

static void put_int32(char *at, int32_t v)
{
    uint32_t be = htonl((uint32_t)v);
    memcpy(at, &be, 4);
}

static void reserve(pl_pgarray_t *a, size_t more)
{
    if (a->len + more <= a->cap)
        return;
    while (a->cap < a->len + more)
        a->cap *= 2;
    a->buf = pl_realloc(a->buf, a->cap);
}

pl_pgarray_t *pl_pgarray_new(void)
{
    pl_pgarray_t *a = pl_calloc(1, sizeof *a);
    a->cap = 256;
    a->buf = pl_malloc(a->cap);
    a->len = HEADER_BYTES; /* written by pl_pgarray_data */
    return a;
}

void pl_pgarray_add(pl_pgarray_t *a, const char *s, size_t len)
{
    reserve(a, 4 + (s ? len : 0));
    put_int32(a->buf + a->len, s ? (int32_t)len : -1);
    a->len += 4;
    if (s) {
        memcpy(a->buf + a->len, s, len);
        a->len += len;
    } else
        a->has_nulls = true;
    a->count++;
}

void pl_pgarray_add_str(pl_pgarray_t *a, const char *s)
{
    pl_pgarray_add(a, s, s ? strlen(s) : 0);
}

size_t pl_pgarray_count(const pl_pgarray_t *a)
{
    return a->count;
}

const char *pl_pgarray_data(pl_pgarray_t *a, int *len)
{
    put_int32(a->buf, 1);
    put_int32(a->buf + 4, a->has_nulls ? 1 : 0);
    put_int32(a->buf + 8, TEXT_OID);
    put_int32(a->buf + 12, (int32_t)a->count);
    put_int32(a->buf + 16, 1);
    *len = (int)a->len;
    return a->buf;
}

void pl_pgarray_destroy(pl_pgarray_t **a_p)
{
    pl_pgarray_t *a = a_p ? *a_p : NULL;
    if (!a)
        return;
    *a_p = NULL;
    pl_free(a->buf);
    pl_free(a);
}
