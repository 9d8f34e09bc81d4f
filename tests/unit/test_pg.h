/*
 * test_pg: helpers of the unit tests that need a real PostgreSQL
 * (PLAINT_TEST_PG_URL, an admin URL; the tests skip without it).
 */
#ifndef TEST_PG_H
#define TEST_PG_H

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "pl_alloc.h"

/* key='value' pairs of conninfo (a URL or key=value text) with dbname set
 * to dbname (NULL: kept) and a connect_timeout; the caller frees the result. */
static char *conninfo_with_db(const char *conninfo, const char *dbname)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    if (!opts) {
        fprintf(stderr, "cannot parse PLAINT_TEST_PG_URL: %s\n", errmsg ? errmsg : "");
        PQfreemem(errmsg);
        return NULL;
    }
    size_t cap = 1024, len = 0;
    char *out = pl_malloc(cap);
    out[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *val = strcmp(o->keyword, "dbname") || !dbname ? o->val : dbname;
        /* A server that accepts but never answers must not hang the test. */
        if (!val && !strcmp(o->keyword, "connect_timeout"))
            val = "10";
        if (!val)
            continue;
        size_t need = strlen(o->keyword) + 2 * strlen(val) + 8;
        if (len + need > cap) {
            cap = (cap + need) * 2;
            out = pl_realloc(out, cap);
        }
        len += (size_t)sprintf(out + len, "%s%s='", len ? " " : "", o->keyword);
        for (const char *p = val; *p; p++) {
            if (*p == '\'' || *p == '\\')
                out[len++] = '\\';
            out[len++] = *p;
        }
        out[len++] = '\'';
        out[len] = '\0';
    }
    PQconninfoFree(opts);
    return out;
}

#endif
