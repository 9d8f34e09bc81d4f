/*
 * plaintctl: the operator's tool (migrate, submit, events, case, parked,
 * unpark, and train / eval for the classifier's model).
 *
 * A tool, not a daemon: it may block. Trusts its operator's arguments only as
 * far as checking them; owns nothing beyond one command's run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_db.h"
#include "pl_log.h"

ctl_cfg_t ctl_cfg;

static const pl_cfg_setting_t settings[] = {
    {"PLAINT_DATABASE_URL", "", PL_CFG_STRING, &ctl_cfg.database_url, 0, 0,
     "PostgreSQL conninfo or URI"},
    {"PLAINT_SUBMIT_ENDPOINT", "tcp://*:7101", PL_CFG_ENDPOINT, &ctl_cfg.submit_endpoint, 0, 0,
     "where intake listens (\"*\" means 127.0.0.1)"},
    {"PLAINT_EVENTS_ENDPOINT", "tcp://*:7102", PL_CFG_ENDPOINT, &ctl_cfg.events_endpoint, 0, 0,
     "the case-event stream"},
    {"PLAINT_DB_WAIT", "10s", PL_CFG_DURATION, &ctl_cfg.db_wait_ms, 0, 86400000,
     "how long to wait for the database"},
    {"PLAINT_LOG_LEVEL", "warn", PL_CFG_LOGLEVEL, &ctl_cfg.log_level, 0, 0, "log level"},
    /* A string, not a DIR: only train reads it, and only without --categories. */
    {"PLAINT_CONFIG_DIR", "deploy/config", PL_CFG_STRING, &ctl_cfg.config_dir, 0, 0,
     "folder of the JSON config files (train reads categories.json there)"},
};

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
    const char *details; /* more for COMMAND --help, or NULL */
} command_t;

static const command_t commands[] = {
    {"migrate", ctl_migrate, "migrate                 bring the database schema up to date", NULL},
    {"submit", ctl_submit,
     "submit [FILE|-]         submit a complaint (envelope or bare data object) and print the reply", NULL},
    {"events", ctl_events,
     "events [--after SEQ] [--follow] [--prefix P]\n"
     "                        print the event stream live, or replay it after SEQ", NULL},
    {"case", ctl_case, "case ID|CASE_NO         show one case and its timeline", NULL},
    {"parked", ctl_parked, "parked                  list cases a stage parked, with the reason", NULL},
    {"unpark", ctl_unpark, "unpark ID|CASE_NO       put a parked case back in its stage's queue", NULL},
    {"train", ctl_train,
     "train [--categories FILE] [--bits N] [--epochs N] [--seed N] [--skip-bad]\n"
     "      --out MODEL FILE.jsonl...\n"
     "                        train the classifier's model from labelled JSON Lines",
     CTL_TRAIN_DETAILS},
    {"eval", ctl_eval,
     "eval --model MODEL [--json] [--time S] [--rules DIR] FILE.jsonl...\n"
     "                        measure a model on labelled JSON Lines",
     CTL_EVAL_DETAILS},
    {"token", ctl_token,
     "token NAME ROLE [DEPARTMENT]\n"
     "                        make a bearer token for the desk's API and print its desk.json entry",
     NULL},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "Usage: plaintctl COMMAND [ARGS]   (plaintctl COMMAND --help for details)\n\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %s\n", commands[i].usage);
    fprintf(out, "\nSettings (environment variables):\n");
    if (out == stdout)
        pl_cfg_print_help(settings, sizeof settings / sizeof settings[0]);
}

void ctl_fail(const char *message, const char *hint)
{
    fprintf(stderr, "plaintctl: %s\n", message);
    if (hint && *hint)
        fprintf(stderr, "hint: %s\n", hint);
}

PGconn *ctl_connect(void)
{
    pl_err_t err;
    PGconn *conn = pl_db_connect_blocking(ctl_cfg.database_url, "plaintctl", ctl_cfg.db_wait_ms,
                                          &err);
    if (!conn)
        ctl_fail(err.message, err.hint);
    return conn;
}

char *ctl_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        char msg[512];
        snprintf(msg, sizeof msg, "cannot open \"%s\": %s", path, strerror(errno));
        ctl_fail(msg, "Check the path, or pass - to read standard input.");
        return NULL;
    }
    char *buf = pl_malloc(max + 1);
    size_t n = fread(buf, 1, max + 1, f);
    if (f != stdin)
        fclose(f);
    if (n > max) {
        pl_free(buf);
        ctl_fail("the input is too large", "The limit is 8 MiB.");
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int load_settings(void)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    int rc = pl_cfg_load(settings, sizeof settings / sizeof settings[0], &errs);
    for (size_t i = 0; i < errs.count; i++)
        ctl_fail(errs.items[i].message, errs.items[i].hint);
    pl_errlist_reset(&errs);
    if (rc == 0)
        pl_log_init("plaintctl", (pl_log_level_t)ctl_cfg.log_level);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("plaintctl %s\n", PLAINT_VERSION);
        return CTL_EXIT_OK;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
            printf("Usage: plaintctl %s\n", commands[i].usage);
            if (commands[i].details)
                printf("\n%s", commands[i].details);
            return CTL_EXIT_OK;
        }
        if (load_settings() < 0)
            return CTL_EXIT_CONFIG;
        int rc = commands[i].run(argc - 1, argv + 1);
        pl_cfg_free_strings();
        return rc;
    }
    fprintf(stderr, "plaintctl: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return CTL_EXIT_USAGE;
}
