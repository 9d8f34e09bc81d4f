/*
 * plaintctl train: trains the classifier's model (clf_model) from labelled
 * JSON Lines and writes it atomically.
 *
 * Trusts nothing in the files: every line is parsed strictly (pl_json) and
 * every bad one is reported with FILE:LINE and the field; by default one bad
 * line aborts the run before anything is written (exit 65), since a model
 * trained on half a file looks fine and is not. Category labels must be ids
 * of the categories config, so the classifier never emits a category the
 * rest of the system does not know. Owns the trainer and the parsed lines.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clf_model.h"
#include "ctl.h"
#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_json.h"
#include "pl_utf8.h"

#define BAD_SHOWN_MAX 20 /* bad lines printed; the rest are counted */

const char CTL_TRAIN_DETAILS[] =
    "Trains the model plaint-classifier uses: TF-IDF over hashed word, character\n"
    "and CJK n-grams, and one softmax regression per head (category, priority,\n"
    "sentiment). A head no line is labelled for is left out of the model.\n"
    "\n"
    "Input: JSON Lines, one object a line:\n"
    "  {\"text\": \"...\", \"lang\": \"zh\", \"category\": \"logistics_delivery\",\n"
    "   \"priority\": \"P2\", \"sentiment\": \"angry\"}\n"
    "  text       required, a non-empty UTF-8 string (subject and body, as the\n"
    "             classifier sees them)\n"
    "  category   an id from the categories file, or null\n"
    "  priority   a label such as P1, P2, P3, or null\n"
    "  sentiment  any label (e.g. calm, dissatisfied, angry, positive), or null\n"
    "  lang, id and other fields are ignored. A line with no label at all is\n"
    "  skipped; blank lines are ignored.\n"
    "\n"
    "Options:\n"
    "  --out MODEL           the model file to write (atomically: temp file + rename)\n"
    "  --categories FILE     allowed category ids (default\n"
    "                        $PLAINT_CONFIG_DIR/categories.json)\n"
    "  --bits N              hash buckets 2^N, 12..24 (default 20)\n"
    "  --epochs N            passes over the data (default 20)\n"
    "  --seed N              shuffling seed (default 1): same data, same model\n"
    "  --skip-bad            skip bad lines (counted) instead of stopping\n"
    "  --lr X, --l2 X, --balance X, --min-df N, --char-ngrams MIN-MAX,\n"
    "  --word-ngrams N, --cjk-ngrams N, --caps, --no-cjk-punct\n"
    "                        advanced: SGD's first step (default 1), L2 penalty\n"
    "                        (1e-5), class weights (0 none .. 1 balanced; 0.75),\n"
    "                        rarest bucket kept, n-gram sizes (char 2-4, word 2,\n"
    "                        CJK 2), shouted words, punctuation after CJK kept in\n"
    "                        the CJK n-grams (default on)\n"
    "\n"
    "Exit status: 0 written; 64 bad usage; 65 bad lines (nothing written);\n"
    "78 bad categories file; 1 the model could not be written.\n";

typedef struct train_args {
    clf_train_opts_t opts;
    const char *out;
    const char *categories;
    int skip_bad;
    char **files;
    int nfiles;
} train_args_t;

typedef struct tally {
    size_t lines, used, unlabelled, bad;
} tally_t;

/* ---- one line ---- */

static int label_field(const cJSON *root, const char *name, const char **out, char *why,
                       size_t why_size, const char *where)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v)) {
        snprintf(why, why_size, "%s: %s: must be a string or null, got %s", where, name,
                 pl_json_type_name(v));
        return -1;
    }
    if (!*v->valuestring || strlen(v->valuestring) > CLF_LABEL_MAX_BYTES) {
        snprintf(why, why_size, "%s: %s: must be 1 to %d bytes long", where, name,
                 CLF_LABEL_MAX_BYTES);
        return -1;
    }
    *out = v->valuestring;
    return 0;
}

static int blank(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            return 0;
    return 1;
}

int ctl_labelled_parse(const char *file, size_t lineno, const char *line, size_t len,
                       cJSON **root, ctl_labelled_t *out, char *why, size_t why_size)
{
    char where[512];
    snprintf(where, sizeof where, "%s:%zu", file, lineno);
    *root = NULL;
    if (blank(line, len))
        return 1;
    pl_errlist_t errs = PL_ERRLIST_INIT;
    cJSON *r = pl_json_parse(line, len, PL_JSON_DEPTH_MAX, &errs);
    if (!r) {
        snprintf(why, why_size, "%s: not a valid JSON object: %s%s%s", where,
                 errs.count ? errs.items[0].path : "", errs.count && *errs.items[0].path ? ": " : "",
                 errs.count ? errs.items[0].message : "unreadable");
        pl_errlist_reset(&errs);
        return -1;
    }
    pl_errlist_reset(&errs);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(r, "text");
    int rc = 0;
    if (!cJSON_IsObject(r)) {
        snprintf(why, why_size, "%s: the line must be a JSON object, got %s", where,
                 pl_json_type_name(r));
        rc = -1;
    } else if (!text) {
        snprintf(why, why_size, "%s: text: missing", where);
        rc = -1;
    } else if (!cJSON_IsString(text)) {
        snprintf(why, why_size, "%s: text: must be a string, got %s", where,
                 pl_json_type_name(text));
        rc = -1;
    } else if (!*text->valuestring) {
        snprintf(why, why_size, "%s: text: is empty", where);
        rc = -1;
    }
    static const char *const names[3] = {"category", "priority", "sentiment"};
    for (int k = 0; k < 3 && rc == 0; k++)
        rc = label_field(r, names[k], &out->labels[k], why, why_size, where);
    if (rc != 0) {
        cJSON_Delete(r);
        return -1;
    }
    out->text = text->valuestring;
    out->len = strlen(text->valuestring);
    *root = r;
    return 0;
}

/* ---- categories ---- */

/* Reads the category ids of a categories file ({"categories": [{"id": ...}]})
 * into a NULL-terminated array the caller frees (with the strings). */
static char **read_categories(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? pl_strndup(path, slash == path ? 1 : (size_t)(slash - path))
                      : pl_strdup(".");
    const char *file = slash ? slash + 1 : path;
    pl_err_t err;
    cJSON *root = pl_cfg_read_json(dir, file, &err);
    pl_free(dir);
    if (!root) {
        ctl_fail(err.message, err.hint);
        return NULL;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "categories");
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
    char **ids = pl_calloc((size_t)n + 1, sizeof *ids);
    for (int i = 0; i < n; i++) {
        const char *id = pl_json_str(cJSON_GetArrayItem(list, i), "id", NULL);
        if (!id || !*id) {
            char msg[600];
            snprintf(msg, sizeof msg, "categories file \"%s\": categories[%d].id is missing",
                     path, i);
            ctl_fail(msg, "Each category needs a string id, as in deploy/config/categories.json.");
            n = -1;
            break;
        }
        ids[i] = pl_strdup(id);
    }
    if (n == 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "categories file \"%s\" lists no categories", path);
        ctl_fail(msg, "It needs {\"categories\": [{\"id\": ...}, ...]}.");
        n = -1;
    }
    cJSON_Delete(root);
    if (n < 0) {
        for (char **p = ids; *p; p++)
            pl_free(*p);
        pl_free(ids);
        return NULL;
    }
    return ids;
}

static int known(char *const *ids, const char *id)
{
    for (; *ids; ids++)
        if (!strcmp(*ids, id))
            return 1;
    return 0;
}

/* ---- arguments ---- */

static int parse_uint(const char *flag, const char *v, unsigned long min, unsigned long max,
                      unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max || *v == '-') {
        fprintf(stderr, "plaintctl: invalid %s \"%s\": must be an integer from %lu to %lu\n",
                flag, v, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

static int parse_float(const char *flag, const char *v, float *out)
{
    char *end;
    errno = 0;
    float f = strtof(v, &end);
    if (errno || end == v || *end) {
        fprintf(stderr, "plaintctl: invalid %s \"%s\": must be a number\n", flag, v);
        return -1;
    }
    *out = f;
    return 0;
}

static int parse_range(const char *v, clf_text_opts_t *t)
{
    unsigned lo, hi;
    char tail;
    if (sscanf(v, "%u-%u%c", &lo, &hi, &tail) != 2 || lo < 1 || lo > hi || hi > 6) {
        if (!strcmp(v, "0")) {
            t->char_min = t->char_max = 0;
            return 0;
        }
        fprintf(stderr, "plaintctl: invalid --char-ngrams \"%s\": use MIN-MAX within 1-6, "
                        "or 0 for none\n", v);
        return -1;
    }
    t->char_min = (uint8_t)lo;
    t->char_max = (uint8_t)hi;
    return 0;
}

/* Handles one option with a value; returns 0, or -1 (printed). */
static int option(train_args_t *a, const char *flag, const char *v)
{
    unsigned long n = 0;
    clf_train_opts_t *o = &a->opts;
    int rc = 0;
    if (!strcmp(flag, "--out")) {
        a->out = v;
    } else if (!strcmp(flag, "--categories")) {
        a->categories = v;
    } else if (!strcmp(flag, "--bits")) {
        if ((rc = parse_uint(flag, v, CLF_HASH_BITS_MIN, CLF_HASH_BITS_MAX, &n)) == 0)
            o->text.hash_bits = (uint8_t)n;
    } else if (!strcmp(flag, "--epochs")) {
        if ((rc = parse_uint(flag, v, 1, 1000, &n)) == 0)
            o->epochs = (unsigned)n;
    } else if (!strcmp(flag, "--seed")) {
        if ((rc = parse_uint(flag, v, 0, ULONG_MAX, &n)) == 0)
            o->seed = n;
    } else if (!strcmp(flag, "--min-df")) {
        if ((rc = parse_uint(flag, v, 1, 1000000, &n)) == 0)
            o->min_df = (unsigned)n;
    } else if (!strcmp(flag, "--word-ngrams")) {
        if ((rc = parse_uint(flag, v, 0, 2, &n)) == 0)
            o->text.word_ngram_max = (uint8_t)n;
    } else if (!strcmp(flag, "--cjk-ngrams")) {
        if ((rc = parse_uint(flag, v, 0, 3, &n)) == 0)
            o->text.cjk_ngram_max = (uint8_t)n;
    } else if (!strcmp(flag, "--char-ngrams")) {
        rc = parse_range(v, &o->text);
    } else if (!strcmp(flag, "--lr")) {
        rc = parse_float(flag, v, &o->learning_rate);
    } else if (!strcmp(flag, "--l2")) {
        rc = parse_float(flag, v, &o->l2);
    } else if (!strcmp(flag, "--balance")) {
        rc = parse_float(flag, v, &o->balance);
    } else {
        fprintf(stderr, "plaintctl: train: unknown option \"%s\"\n", flag);
        rc = -1;
    }
    return rc;
}

static int parse_args(int argc, char **argv, train_args_t *a)
{
    clf_train_opts_default(&a->opts);
    a->files = pl_calloc((size_t)argc, sizeof *a->files);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--skip-bad")) {
            a->skip_bad = 1;
        } else if (!strcmp(arg, "--caps")) {
            a->opts.text.flags |= CLF_TEXT_CAPS;
        } else if (!strcmp(arg, "--cjk-punct")) {
            a->opts.text.flags |= CLF_TEXT_CJK_PUNCT;
        } else if (!strcmp(arg, "--no-cjk-punct")) {
            a->opts.text.flags &= (uint8_t)~CLF_TEXT_CJK_PUNCT;
        } else if (!strncmp(arg, "--", 2) && strlen(arg) > 2) {
            const char *eq = strchr(arg, '=');
            char flag[64];
            snprintf(flag, sizeof flag, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
            const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) {
                fprintf(stderr, "plaintctl: train: %s needs a value\n", flag);
                return -1;
            }
            if (option(a, flag, v) != 0)
                return -1;
        } else {
            a->files[a->nfiles++] = argv[i];
        }
    }
    if (!a->out || !a->nfiles) {
        ctl_fail(!a->out ? "train: --out MODEL is required" : "train: no input file",
                 "Run plaintctl train --help.");
        return -1;
    }
    return 0;
}

/* ---- the run ---- */

static void report_bad(tally_t *t, const char *why)
{
    if (t->bad < BAD_SHOWN_MAX)
        fprintf(stderr, "plaintctl: %s\n", why);
    t->bad++;
}

/* Feeds one line to the trainer. */
static void train_line(clf_trainer_t *tr, char *const *categories, const char *cat_path,
                       const char *file, size_t lineno, const char *line, size_t len,
                       tally_t *t)
{
    char why[1024];
    cJSON *root = NULL;
    ctl_labelled_t l = {0};
    int rc = ctl_labelled_parse(file, lineno, line, len, &root, &l, why, sizeof why);
    if (rc == 1)
        return;
    t->lines++;
    if (rc < 0) {
        report_bad(t, why);
        return;
    }
    if (!l.labels[0] && !l.labels[1] && !l.labels[2]) {
        t->unlabelled++;
    } else if (l.labels[0] && !known(categories, l.labels[0])) {
        snprintf(why, sizeof why, "%s:%zu: category: \"%s\" is not a category of \"%s\"", file,
                 lineno, l.labels[0], cat_path);
        report_bad(t, why);
    } else {
        pl_err_t err;
        if (clf_trainer_add(tr, l.text, l.len, l.labels, &err) == 0) {
            t->used++;
        } else {
            snprintf(why, sizeof why, "%s:%zu: %s: %s", file, lineno, err.path, err.message);
            report_bad(t, why);
        }
    }
    cJSON_Delete(root);
}

static int read_file_lines(clf_trainer_t *tr, char *const *categories, const char *cat_path,
                           const char *file, tally_t *t)
{
    FILE *f = strcmp(file, "-") ? fopen(file, "rb") : stdin;
    if (!f) {
        char msg[600];
        snprintf(msg, sizeof msg, "cannot open \"%s\": %s", file, strerror(errno));
        ctl_fail(msg, "Check the path.");
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n')
            len--;
        train_line(tr, categories, cat_path, file, lineno, line, len, t);
    }
    int rc = ferror(f) ? -1 : 0;
    if (rc)
        fprintf(stderr, "plaintctl: error reading \"%s\"\n", file);
    free(line); /* getline's buffer comes from malloc */
    if (f != stdin)
        fclose(f);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void print_summary(const clf_trainer_t *tr, const train_args_t *a, const tally_t *t,
                          double secs)
{
    printf("trained %s from %zu labelled lines in %.2f s (%zu lines read, %zu without labels, "
           "%zu bad%s)\n",
           a->out, t->used, secs, t->lines, t->unlabelled, t->bad, t->bad ? ", skipped" : "");
    pl_err_t err;
    clf_model_t *m = clf_model_load(a->out, &err);
    if (m) {
        clf_model_info_t info;
        clf_model_info(m, &info);
        printf("features: 2^%u buckets, %u with weights; file %.1f MiB\n",
               (unsigned)info.text.hash_bits, info.rows, info.file_bytes / 1048576.0);
        clf_model_destroy(&m);
    }
    for (int k = 0; k < CLF_NHEADS; k++) {
        const char *const *labels;
        const size_t *counts;
        size_t n = clf_trainer_labels(tr, (clf_head_t)k, &labels, &counts), total = 0;
        for (size_t i = 0; i < n; i++)
            total += counts[i];
        printf("%-10s %6zu lines", clf_head_name((clf_head_t)k), total);
        if (!n)
            printf("  (no labels: head left out)");
        for (size_t i = 0; i < n; i++)
            printf("%s %s %zu", i ? "," : ":", labels[i], counts[i]);
        printf("\n");
    }
}

static int run(train_args_t *a, char *const *categories, const char *cat_path)
{
    pl_err_t err;
    clf_trainer_t *tr = clf_trainer_new(&a->opts, &err);
    if (!tr) {
        ctl_fail(err.message, err.hint);
        return CTL_EXIT_USAGE;
    }
    double t0 = now_s();
    tally_t t = {0};
    int status = CTL_EXIT_OK;
    for (int i = 0; i < a->nfiles && status == CTL_EXIT_OK; i++)
        if (read_file_lines(tr, categories, cat_path, a->files[i], &t) != 0)
            status = CTL_EXIT_FAIL;
    if (status == CTL_EXIT_OK && t.bad && !a->skip_bad) {
        fprintf(stderr, "plaintctl: %zu bad line%s%s; no model written\n", t.bad,
                t.bad == 1 ? "" : "s", t.bad > BAD_SHOWN_MAX ? " (the first 20 shown)" : "");
        fprintf(stderr, "hint: Fix them, or pass --skip-bad to train without them.\n");
        status = CTL_EXIT_DATAERR;
    }
    if (status == CTL_EXIT_OK && clf_trainer_finish(tr, a->out, &err) != 0) {
        ctl_fail(err.message, err.hint);
        status = err.code == PL_EINVAL ? CTL_EXIT_DATAERR : CTL_EXIT_FAIL;
    }
    if (status == CTL_EXIT_OK)
        print_summary(tr, a, &t, now_s() - t0);
    clf_trainer_destroy(&tr);
    return status;
}

int ctl_train(int argc, char **argv)
{
    train_args_t a = {0};
    if (parse_args(argc, argv, &a) != 0) {
        pl_free(a.files);
        return CTL_EXIT_USAGE;
    }
    char *default_path = pl_sprintf("%s/categories.json", ctl_cfg.config_dir);
    const char *cat_path = a.categories ? a.categories : default_path;
    char **categories = read_categories(cat_path);
    int status = categories ? run(&a, categories, cat_path) : CTL_EXIT_CONFIG;
    for (char **p = categories; p && *p; p++)
        pl_free(*p);
    pl_free(categories);
    pl_free(default_path);
    pl_free(a.files);
    return status;
}
