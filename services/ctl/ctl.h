/*
 * plaintctl's shared pieces: settings, database and output helpers used by
 * the ctl_*.c commands. A command returns the process exit status.
 */
#ifndef CTL_H
#define CTL_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

typedef struct ctl_cfg {
    const char *database_url;
    const char *submit_endpoint;
    const char *events_endpoint;
    int64_t db_wait_ms;
    int log_level;
    const char *config_dir;
} ctl_cfg_t;

extern ctl_cfg_t ctl_cfg;

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 64
#define CTL_EXIT_DATAERR 65
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
int ctl_train(int argc, char **argv);
int ctl_eval(int argc, char **argv);
int ctl_token(int argc, char **argv);

/* The --help texts of train and eval (in ctl_train.c, ctl_eval.c). */
extern const char CTL_TRAIN_DETAILS[];
extern const char CTL_EVAL_DETAILS[];

/* One labelled line of a training or evaluation file (ctl_train.c). */
typedef struct ctl_labelled {
    const char *text; /* borrowed from the parsed line */
    size_t len;
    const char *labels[3]; /* category, priority, sentiment; NULL when absent or null */
} ctl_labelled_t;

/* Reads one JSON Lines line (no newline) into *out, whose strings point into
 * *root, the parsed tree the caller deletes (NULL unless 0 is returned).
 * Returns 0; 1 for a blank line; or -1 with "FILE:LINE: field: why" in
 * why[why_size]. Labels are only checked to be non-empty strings or null. */
int ctl_labelled_parse(const char *file, size_t lineno, const char *line, size_t len,
                       struct cJSON **root, ctl_labelled_t *out, char *why, size_t why_size);

#endif
