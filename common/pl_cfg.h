/*
 * pl_cfg: the only reader of PLAINT_* variables and of the JSON files in
 * PLAINT_CONFIG_DIR.
 *
 * A daemon describes its settings in one table of {name, default, kind,
 * target}; pl_cfg_load() reads and checks all of them and reports every
 * problem, each with a hint, before the daemon starts its loop. Targets are
 * owned by the caller; string targets point into storage that lives until
 * pl_cfg_free_strings() (or process exit).
 */
#ifndef PL_CFG_H
#define PL_CFG_H

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "pl_err.h"

typedef enum {
    PL_CFG_STRING,   /* const char **target; any text (may be empty if default is "") */
    PL_CFG_ENDPOINT, /* const char **target; ZeroMQ endpoint(s): tcp://HOST:PORT, ipc://PATH, inproc://NAME; comma-separated list allowed when min == 1 */
    PL_CFG_HTTPADDR, /* const char **target; HOST:PORT */
    PL_CFG_HTTPADDR_OR_OFF, /* like HTTPADDR; set to "" it stores "" (off) whatever the default */
    PL_CFG_DURATION, /* int64_t *target, in ms; min/max bound it */
    PL_CFG_INT,      /* int64_t *target; min/max bound it */
    PL_CFG_LOGLEVEL, /* int *target (pl_log_level_t) */
    PL_CFG_DIR,      /* const char **target; must be an existing directory */
    PL_CFG_BOOL,     /* int *target; true/false/1/0/yes/no/on/off */
} pl_cfg_kind_t;

typedef struct pl_cfg_setting {
    const char *name;   /* "PLAINT_SUBMIT_ENDPOINT" */
    const char *defval; /* used when the variable is unset; NULL = required, "" = empty */
    pl_cfg_kind_t kind;
    void *target;
    int64_t min, max;   /* for INT and DURATION (ms); both 0 = unbounded */
    const char *help;   /* one line for --help */
} pl_cfg_setting_t;

/* Reads every setting of table[0..n) from the environment, checks each and
 * stores it in its target (a NULL target only checks). An empty value is
 * accepted only by the text kinds (STRING, ENDPOINT, HTTPADDR, DIR) whose
 * default is ""; anywhere else it is reported. A bad setting leaves its
 * target untouched. Returns 0, or PL_ECONFIG with one entry in errs
 * per bad setting (message like `invalid PLAINT_X "v": why`, with a hint). */
int pl_cfg_load(const pl_cfg_setting_t *table, size_t n, pl_errlist_t *errs);
/* Writes "NAME (default: X)  help" lines for --help to stdout. */
void pl_cfg_print_help(const pl_cfg_setting_t *table, size_t n);
void pl_cfg_free_strings(void);

/* Checks one ZeroMQ endpoint; returns 0 or PL_EINVAL with a hint. */
int pl_cfg_check_endpoint(const char *text, pl_err_t *err);
/* Splits "HOST:PORT"; host is copied into host_buf (size host_len). */
int pl_cfg_split_hostport(const char *text, char *host_buf, size_t host_len, int *port,
                          pl_err_t *err);

/* Reads and parses PLAINT_CONFIG_DIR/file (dir given). Returns a tree the
 * caller deletes with cJSON_Delete, or NULL with err naming the file, the
 * line and what is wrong. */
cJSON *pl_cfg_read_json(const char *dir, const char *file, pl_err_t *err);

/* How every loader of a config file reports one problem: appends to errs a
 * PL_ECONFIG entry "FILE: PATH: message" (an empty path reads "(top)") whose
 * path is PATH, with hint when not NULL. */
void pl_cfg_vproblem(pl_errlist_t *errs, const char *file, const char *path, const char *hint,
                     const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

#endif
