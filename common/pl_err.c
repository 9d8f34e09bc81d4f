/*
 * pl_err: error codes and details (see pl_err.h). Owns the item arrays of
 * the error lists it grows.
 */
#include "pl_err.h"

#include <stdio.h>
#include <string.h>

#include "pl_alloc.h"

int pl_err_vset(pl_err_t *err, int code, const char *path, const char *fmt, va_list ap)
{
    if (!err)
        return code;
    err->code = code;
    snprintf(err->path, sizeof err->path, "%s", path ? path : "");
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    err->hint[0] = '\0';
    return code;
}

int pl_err_set(pl_err_t *err, int code, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pl_err_vset(err, code, path, fmt, ap);
    va_end(ap);
    return rc;
}

int pl_err_hint(pl_err_t *err, const char *fmt, ...)
{
    if (!err)
        return PL_EINTERNAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->hint, sizeof err->hint, fmt, ap);
    va_end(ap);
    return err->code;
}

void pl_err_clear(pl_err_t *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}

const char *pl_err_code_name(int code)
{
    switch (code) {
    case PL_OK: return "ok";
    case PL_EINVAL: return "invalid";
    case PL_ETOOLARGE: return "too_large";
    case PL_EUNAVAIL: return "unavailable";
    case PL_ENOTFOUND: return "not_found";
    case PL_ECONFLICT: return "conflict";
    case PL_EAGAIN: return "busy";
    case PL_EIO: return "io_error";
    case PL_ECONFIG: return "config";
    case PL_ESCHEMA: return "schema";
    case PL_ETIMEOUT: return "timeout";
    case PL_ECANCELED: return "canceled";
    case PL_EUNAUTH: return "unauthorized";
    default: return "internal";
    }
}

static pl_err_t *errlist_slot(pl_errlist_t *list)
{
    if (list->count >= PL_ERRLIST_MAX) {
        list->dropped++;
        return NULL;
    }
    if (list->count == list->cap) {
        list->cap = list->cap ? list->cap * 2 : 8;
        list->items = pl_realloc(list->items, list->cap * sizeof *list->items);
    }
    return &list->items[list->count++];
}

int pl_errlist_add(pl_errlist_t *list, int code, const char *path, const char *fmt, ...)
{
    pl_err_t *slot = errlist_slot(list);
    if (!slot)
        return code;
    va_list ap;
    va_start(ap, fmt);
    pl_err_vset(slot, code, path, fmt, ap);
    va_end(ap);
    return code;
}

void pl_errlist_push(pl_errlist_t *list, const pl_err_t *err)
{
    pl_err_t *slot = errlist_slot(list);
    if (slot)
        *slot = *err;
}

void pl_errlist_reset(pl_errlist_t *list)
{
    pl_free(list->items);
    list->items = NULL;
    list->count = list->dropped = list->cap = 0;
}

int pl_errlist_code(const pl_errlist_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        if (list->items[i].code == PL_ETOOLARGE)
            return PL_ETOOLARGE;
    return PL_EINVAL;
}
