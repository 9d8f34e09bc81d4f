/*
 * plaintctl's shared pieces: settings, database and output helpers used by
 * the ctl_*.c commands. A command returns the process exit status.
 */
#ifndef CTL_H
#define CTL_H

#include <libpq-fe.h>
#include <stdint.h>

typedef struct ctl_cfg {
    const char *database_url;
    const char *submit_endpoint;
    const char *events_endpoint;
    int64_t db_wait_ms;
    int log_level;
} ctl_cfg_t;

extern ctl_cfg_t ctl_cfg;

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 64
#define CTL_EXIT_UNAVAILABLE 69
#define CTL_EXIT_CONFIG 78

/* Connects or prints why; NULL on failure. The caller PQfinish()es. */
PGconn *ctl_connect(void);
/* Prints "plaintctl: MESSAGE" and an optional hint to stderr. */
void ctl_fail(const char *message, const char *hint);
/* Reads a whole file ("-" = stdin), at most max bytes; caller frees. NULL on error (printed). */
char *ctl_read_file(const char *path, size_t max, size_t *len);

int ctl_migrate(int argc, char **argv);
int ctl_submit(int argc, char **argv);
int ctl_events(int argc, char **argv);
int ctl_case(int argc, char **argv);
int ctl_parked(int argc, char **argv);
int ctl_unpark(int argc, char **argv);

#endif
