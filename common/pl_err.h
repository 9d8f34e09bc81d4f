/*
 * pl_err: error codes and caller-owned error details.
 *
 * Functions return 0 or a negative PL_E* code (after libuv). When a caller
 * wants to know why, it passes a pl_err_t that the callee fills: the code, the
 * path of the offending field (for input errors, e.g. "data.customer.email"),
 * a message written to PostgreSQL's style guide and an optional hint.
 *
 * pl_errlist_t collects every problem of one input so that a client hears
 * about all of them at once, not one per round trip.
 */
#ifndef PL_ERR_H
#define PL_ERR_H

#include <stdarg.h>
#include <stddef.h>

enum {
    PL_OK = 0,
    PL_EINVAL = -1,     /* input is malformed or breaks a rule */
    PL_ETOOLARGE = -2,  /* input is over a size limit */
    PL_EUNAVAIL = -3,   /* a dependency (database, peer) is down; try again */
    PL_ENOTFOUND = -4,  /* the named object does not exist */
    PL_ECONFLICT = -5,  /* not allowed in the object's current state */
    PL_EAGAIN = -6,     /* would block; try again later */
    PL_EIO = -7,        /* an operating-system or library call failed */
    PL_ECONFIG = -8,    /* a setting or config file is wrong */
    PL_ESCHEMA = -9,    /* the database schema is not the version we need */
    PL_ETIMEOUT = -10,  /* a deadline passed */
    PL_ECANCELED = -11, /* the operation was abandoned (shutdown, reconnect) */
    PL_EINTERNAL = -12, /* a bug: an invariant did not hold */
    PL_EUNAUTH = -13,   /* the peer is not allowed to do this */
};

#define PL_ERR_PATH_MAX 128
#define PL_ERR_MSG_MAX 512
#define PL_ERR_HINT_MAX 256

typedef struct pl_err {
    int code;
    char path[PL_ERR_PATH_MAX];
    char message[PL_ERR_MSG_MAX];
    char hint[PL_ERR_HINT_MAX];
} pl_err_t;

/* Fills err (if not NULL) and returns code, so callers can `return pl_err_set(...)`.
 * path may be NULL or "" when the error is not about one field. */
int pl_err_set(pl_err_t *err, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int pl_err_vset(pl_err_t *err, int code, const char *path, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* Adds a hint to an already set error; returns err->code. */
int pl_err_hint(pl_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pl_err_clear(pl_err_t *err);
/* Static name of a code: "invalid", "too_large", "unavailable", ... as used on the wire. */
const char *pl_err_code_name(int code);

/* A growable list of errors; initialise with PL_ERRLIST_INIT, release with
 * pl_errlist_reset(). Adding never fails (pl_alloc aborts on OOM); past
 * PL_ERRLIST_MAX entries further errors are counted but not kept. */
#define PL_ERRLIST_MAX 64
typedef struct pl_errlist {
    pl_err_t *items;
    size_t count;   /* entries kept in items */
    size_t dropped; /* entries past PL_ERRLIST_MAX */
    size_t cap;
} pl_errlist_t;
#define PL_ERRLIST_INIT {NULL, 0, 0, 0}

int pl_errlist_add(pl_errlist_t *list, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void pl_errlist_push(pl_errlist_t *list, const pl_err_t *err);
void pl_errlist_reset(pl_errlist_t *list);
/* The wire code for the whole list: too_large when any entry is, else invalid. */
int pl_errlist_code(const pl_errlist_t *list);

#endif
