/*
 * plaintctl eval: measures a classifier model on labelled JSON Lines (the
 * format of plaintctl train): per head, accuracy, macro-F1, per-class
 * precision / recall / F1 / support and the confusion matrix, and how many
 * documents a second one thread predicts.
 *
 * A label the model does not know counts as an error for its head (the
 * model can never get it right) and gets its own row in the matrix. Macro-F1
 * averages over the classes that occur as truth or as prediction, as
 * scikit-learn's f1_score(average="macro") does, so the figures compare.
 * With --rules, the domain rules (clf_rules) run over every text too, and the
 * priority the daemon would decide (clf_rules_priority: the model's priority
 * lifted by the rules' raises and floors) is measured as one more table, with
 * what the rules alone flag P1, and so is the decided sentiment (angry when
 * the rules' anger cues fire).
 * Trusts nothing in the files (bad lines are reported as train does); owns
 * the texts it read and the model it loaded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clf_model.h"
#include "clf_rules.h"
#include "ctl.h"
#include "pl_alloc.h"
#include "pl_json.h"

#define BAD_SHOWN_MAX 20
#define TIMING_MIN_S 1.0 /* default: predict the set again until this much time has passed */

const char CTL_EVAL_DETAILS[] =
    "Reads JSON Lines in the format of plaintctl train (text, category, priority,\n"
    "sentiment; see plaintctl train --help), predicts every text with the model and\n"
    "prints, for each head that has labels in the files: n, accuracy, macro-F1,\n"
    "precision / recall / F1 / support per class and the confusion matrix (rows =\n"
    "true, columns = predicted); then documents per second of prediction on one\n"
    "thread (all heads at once, the texts already in memory). A label the model does\n"
    "not know counts as wrong and is listed.\n"
    "\n"
    "Options:\n"
    "  --model MODEL   the model file (required)\n"
    "  --json          print one JSON object instead of tables\n"
    "  --skip-bad      skip bad lines (counted) instead of stopping\n"
    "  --time S        time prediction over at least S seconds, repeating the set\n"
    "                  (default 1; 0 = the one pass that makes the figures)\n"
    "  --rules DIR     also run the domain rules of DIR/classifier.json (e.g.\n"
    "                  deploy/config) and measure the final priority, the model's\n"
    "                  combined with the rules' floors and raises as plaint-classifier\n"
    "                  decides it (no repeat lookup; customer type individual), and\n"
    "                  P1 by the rules alone, the sentiment decided (angry when\n"
    "                  the rules' anger cues fire), and the rules' documents per\n"
    "                  second\n"
    "\n"
    "Exit status: 0 done; 64 bad usage; 65 bad lines; 78 bad rules config; 1 the\n"
    "model or a file could not be read.\n";

typedef struct item {
    char *text;
    size_t len;
    int truth[CLF_NHEADS]; /* -1 unlabelled; < nlabels a model label; else unknown */
    int pred[CLF_NHEADS];  /* model label index, -1 when the head is absent */
    int final_pri;         /* with --rules: 1..3, the decided P1..P3 */
    int rules_floor;       /* with --rules: 1..3, the rules' floor alone */
    int final_sent;        /* with --rules: the decided sentiment (model label index) */
} item_t;

typedef struct unknown_set {
    char **names;
    size_t n;
} unknown_set_t;

typedef struct eval {
    const clf_model_t *m;
    item_t *items;
    size_t n, cap;
    size_t bad;
    unknown_set_t unknown[CLF_NHEADS];
    double time_min_s;
    double docs_per_s;
    const clf_rules_t *rules; /* NULL without --rules */
    double rules_docs_per_s;
} eval_t;

/* ---- reading ---- */

static int label_index(eval_t *e, int head, const char *label)
{
    const char *const *labels;
    size_t k = clf_model_labels(e->m, (clf_head_t)head, &labels);
    for (size_t i = 0; i < k; i++)
        if (!strcmp(labels[i], label))
            return (int)i;
    unknown_set_t *u = &e->unknown[head];
    for (size_t i = 0; i < u->n; i++)
        if (!strcmp(u->names[i], label))
            return (int)(k + i);
    u->names = pl_realloc(u->names, (u->n + 1) * sizeof *u->names);
    u->names[u->n] = pl_strdup(label);
    return (int)(k + u->n++);
}

static void add_line(eval_t *e, const char *file, size_t lineno, const char *line, size_t len)
{
    char why[1024];
    cJSON *root = NULL;
    ctl_labelled_t l = {0};
    int rc = ctl_labelled_parse(file, lineno, line, len, &root, &l, why, sizeof why);
    if (rc == 1)
        return;
    if (rc < 0) {
        if (e->bad++ < BAD_SHOWN_MAX)
            fprintf(stderr, "plaintctl: %s\n", why);
        return;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 1024;
        e->items = pl_realloc(e->items, e->cap * sizeof *e->items);
    }
    item_t *it = &e->items[e->n++];
    it->text = pl_strndup(l.text, l.len);
    it->len = l.len;
    for (int k = 0; k < CLF_NHEADS; k++)
        it->truth[k] = l.labels[k] ? label_index(e, k, l.labels[k]) : -1;
    cJSON_Delete(root);
}

static int read_lines(eval_t *e, const char *file)
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
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n')
            len--;
        add_line(e, file, ++lineno, line, len);
    }
    int rc = ferror(f) ? -1 : 0;
    if (rc)
        fprintf(stderr, "plaintctl: error reading \"%s\"\n", file);
    free(line); /* getline's buffer comes from malloc */
    if (f != stdin)
        fclose(f);
    return rc;
}

/* ---- predicting ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int guess_index(const clf_model_t *m, int head, const char *label)
{
    const char *const *labels;
    size_t k = clf_model_labels(m, (clf_head_t)head, &labels);
    for (size_t i = 0; i < k; i++)
        if (labels[i] == label)
            return (int)i;
    return -1;
}

/* The index of label in a head of the model, or -1. */
static int guess_index_named(const clf_model_t *m, int head, const char *label)
{
    const char *const *labels;
    size_t k = clf_model_labels(m, (clf_head_t)head, &labels);
    for (size_t i = 0; i < k; i++)
        if (!strcmp(labels[i], label))
            return (int)i;
    return -1;
}

/* 1..3 for "P1".."P3", else 0. */
static int priority_level(const char *label)
{
    return label && label[0] == 'P' && label[1] >= '1' && label[1] <= '3' && !label[2]
               ? label[1] - '0'
               : 0;
}

/* Runs the rules over every item and decides its priority from the model's
 * guess (as clf_case does), then times the rules alone like the model. */
static void decide_all(eval_t *e)
{
    const char *const *labels;
    size_t k = clf_model_labels(e->m, CLF_HEAD_PRIORITY, &labels);
    int angry = guess_index_named(e->m, CLF_HEAD_SENTIMENT, "angry");
    clf_verdict_t v;
    for (size_t i = 0; i < e->n; i++) {
        item_t *it = &e->items[i];
        clf_rules_input_t in = {it->text, it->len, NULL, NULL};
        clf_rules_apply(e->rules, &in, &v);
        int p = it->pred[CLF_HEAD_PRIORITY];
        const char *model = k && p >= 0 ? labels[p] : NULL;
        it->final_pri = priority_level(clf_rules_priority(model, &v, 0));
        it->rules_floor = v.floor;
        it->final_sent = v.angry && angry >= 0 ? angry : it->pred[CLF_HEAD_SENTIMENT];
    }
    double t0 = now_s(), t = t0;
    size_t done = 0;
    do {
        for (size_t i = 0; i < e->n; i++) {
            clf_rules_input_t in = {e->items[i].text, e->items[i].len, NULL, NULL};
            clf_rules_apply(e->rules, &in, &v);
        }
        done += e->n;
        t = now_s();
    } while (e->n && t - t0 < e->time_min_s);
    e->rules_docs_per_s = t > t0 ? (double)done / (t - t0) : 0.0;
}

/* Predicts every item, then again until time_min_s has passed, for the rate. */
static void predict_all(eval_t *e)
{
    clf_guess_t g[CLF_NHEADS];
    double t0 = now_s(), t = t0;
    size_t done = 0;
    for (size_t i = 0; i < e->n; i++) {
        clf_model_predict(e->m, e->items[i].text, e->items[i].len, g);
        for (int k = 0; k < CLF_NHEADS; k++)
            e->items[i].pred[k] = guess_index(e->m, k, g[k].label);
    }
    done += e->n;
    t = now_s();
    while (e->n && t - t0 < e->time_min_s) {
        for (size_t i = 0; i < e->n; i++)
            clf_model_predict(e->m, e->items[i].text, e->items[i].len, g);
        done += e->n;
        t = now_s();
    }
    e->docs_per_s = t > t0 ? (double)done / (t - t0) : 0.0;
    if (e->rules)
        decide_all(e);
}

/* ---- metrics ---- */

typedef struct head_stats {
    size_t n, correct, unknown;
    size_t rows, cols;  /* rows = predictable labels + unknown labels; cols = predictable */
    size_t *conf;       /* rows x cols */
    size_t *support;    /* per row: lines with that true label */
    const char **names; /* per row: its label (borrowed) */
    double accuracy, macro_f1;
} head_stats_t;

static const char *row_label(const eval_t *e, int k, size_t c)
{
    const char *const *labels;
    size_t cols = clf_model_labels(e->m, (clf_head_t)k, &labels);
    return c < cols ? labels[c] : e->unknown[k].names[c - cols];
}

static void stats_alloc(head_stats_t *h, size_t rows, size_t cols)
{
    h->rows = rows;
    h->cols = cols;
    h->conf = pl_calloc(rows * (cols ? cols : 1), sizeof *h->conf);
    h->support = pl_calloc(rows ? rows : 1, sizeof *h->support);
    h->names = pl_calloc(rows ? rows : 1, sizeof *h->names);
}

static void stats_free(head_stats_t *h)
{
    pl_free(h->conf);
    pl_free(h->support);
    pl_free(h->names);
}

/* Counts one line whose true row is truth (< rows) and predicted column pred
 * (-1 = none). */
static void stats_add(head_stats_t *h, size_t truth, int pred)
{
    h->n++;
    h->support[truth]++;
    if (truth >= h->cols)
        h->unknown++;
    if (pred >= 0)
        h->conf[truth * h->cols + (size_t)pred]++;
    if (pred >= 0 && (size_t)pred == truth)
        h->correct++;
}

static void head_compute(const eval_t *e, int k, head_stats_t *h)
{
    const char *const *labels;
    size_t cols = clf_model_labels(e->m, (clf_head_t)k, &labels);
    stats_alloc(h, cols + e->unknown[k].n, cols);
    for (size_t c = 0; c < h->rows; c++)
        h->names[c] = row_label(e, k, c);
    for (size_t i = 0; i < e->n; i++) {
        const item_t *it = &e->items[i];
        if (it->truth[k] >= 0)
            stats_add(h, (size_t)it->truth[k], it->pred[k]);
    }
    h->accuracy = h->n ? (double)h->correct / (double)h->n : 0.0;
}

static const char *const PRIORITY_NAMES[3] = {"P1", "P2", "P3"};

/* The decided priority (--rules) against the priority labels: columns P1..P3,
 * then a row for every other label in the files (counted wrong). */
static void decision_compute(const eval_t *e, head_stats_t *h)
{
    const int k = CLF_HEAD_PRIORITY;
    const char *const *labels;
    size_t model_labels = clf_model_labels(e->m, (clf_head_t)k, &labels);
    size_t all = model_labels + e->unknown[k].n, other = 0;
    for (size_t c = 0; c < all; c++)
        other += !priority_level(row_label(e, k, c));
    stats_alloc(h, 3 + other, 3);
    for (size_t c = 0; c < 3; c++)
        h->names[c] = PRIORITY_NAMES[c];
    size_t *row_of = pl_calloc(all ? all : 1, sizeof *row_of);
    for (size_t c = 0, next = 3; c < all; c++) {
        int level = priority_level(row_label(e, k, c));
        row_of[c] = level ? (size_t)level - 1 : next;
        if (!level)
            h->names[next++] = row_label(e, k, c);
    }
    for (size_t i = 0; i < e->n; i++) {
        const item_t *it = &e->items[i];
        if (it->truth[k] >= 0)
            stats_add(h, row_of[it->truth[k]], it->final_pri ? it->final_pri - 1 : -1);
    }
    pl_free(row_of);
    h->accuracy = h->n ? (double)h->correct / (double)h->n : 0.0;
}

/* The decided sentiment (--rules): the model's, or angry when the rules'
 * anger cues fire, as plaint-classifier decides it (there positive and
 * neutral then read as calm); rows and columns as the sentiment head's. */
static void decision_sentiment_compute(const eval_t *e, head_stats_t *h)
{
    const int k = CLF_HEAD_SENTIMENT;
    head_compute(e, k, h);
    memset(h->conf, 0, h->rows * (h->cols ? h->cols : 1) * sizeof *h->conf);
    memset(h->support, 0, h->rows * sizeof *h->support);
    h->n = h->correct = h->unknown = 0;
    for (size_t i = 0; i < e->n; i++) {
        const item_t *it = &e->items[i];
        if (it->truth[k] >= 0)
            stats_add(h, (size_t)it->truth[k], it->final_sent);
    }
    h->accuracy = h->n ? (double)h->correct / (double)h->n : 0.0;
}

/* Precision, recall and F1 of class (row) c; returns whether it counts for
 * the macro average (it occurs as truth or as prediction). */
static int class_stats(const head_stats_t *h, size_t c, double *p, double *r, double *f1)
{
    size_t tp = c < h->cols ? h->conf[c * h->cols + c] : 0, predicted = 0;
    if (c < h->cols)
        for (size_t i = 0; i < h->rows; i++)
            predicted += h->conf[i * h->cols + c];
    *p = predicted ? (double)tp / (double)predicted : 0.0;
    *r = h->support[c] ? (double)tp / (double)h->support[c] : 0.0;
    *f1 = *p + *r > 0.0 ? 2.0 * *p * *r / (*p + *r) : 0.0;
    return h->support[c] > 0 || predicted > 0;
}

static void head_macro(head_stats_t *h)
{
    double sum = 0.0;
    size_t counted = 0;
    for (size_t c = 0; c < h->rows; c++) {
        double p, r, f1;
        if (class_stats(h, c, &p, &r, &f1)) {
            sum += f1;
            counted++;
        }
    }
    h->macro_f1 = counted ? sum / (double)counted : 0.0;
}

/* What the rules alone flag P1 (a floor of P1), against the P1 labels. */
typedef struct rules_p1 {
    size_t labelled, flagged, both, labelled_non_p1, flagged_non_p1;
} rules_p1_t;

static void rules_p1_compute(const eval_t *e, rules_p1_t *r)
{
    const int k = CLF_HEAD_PRIORITY;
    *r = (rules_p1_t){0};
    for (size_t i = 0; i < e->n; i++) {
        const item_t *it = &e->items[i];
        if (it->truth[k] < 0)
            continue;
        int gold = priority_level(row_label(e, k, (size_t)it->truth[k])) == 1;
        int got = it->rules_floor == 1;
        r->labelled += gold;
        r->flagged += got;
        r->both += gold && got;
        r->labelled_non_p1 += !gold;
        r->flagged_non_p1 += !gold && got;
    }
}

static double ratio(size_t a, size_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

/* ---- output ---- */

static void print_head(const char *title, const head_stats_t *h)
{
    printf("\n%s: n %zu, accuracy %.4f, macro-F1 %.4f", title, h->n, h->accuracy, h->macro_f1);
    if (h->unknown)
        printf(", %zu with a label the model does not know (counted wrong)", h->unknown);
    if (!h->cols)
        printf(" (the model has no %s head)", title);
    printf("\n  %-3s %-24s %9s %9s %9s %8s\n", "", "class", "precision", "recall", "f1",
           "support");
    for (size_t c = 0; c < h->rows; c++) {
        double p, r, f1;
        (void)class_stats(h, c, &p, &r, &f1); /* listed whether or not it counts */
        printf("  %-3zu %-24s %9.4f %9.4f %9.4f %8zu%s\n", c, h->names[c], p, r, f1,
               h->support[c], c >= h->cols ? "  (unknown to the model)" : "");
    }
    if (!h->cols)
        return;
    printf("  confusion (rows = true, columns = predicted, numbered as above):\n  %-28s", "");
    for (size_t j = 0; j < h->cols; j++)
        printf(" %6zu", j);
    printf("\n");
    for (size_t c = 0; c < h->rows; c++) {
        printf("  %-3zu %-24.24s", c, h->names[c]);
        for (size_t j = 0; j < h->cols; j++)
            printf(" %6zu", h->conf[c * h->cols + j]);
        printf("\n");
    }
}

static cJSON *head_json(const head_stats_t *h)
{
    cJSON *o = pl_json_must(cJSON_CreateObject());
    pl_json_add_num(o, "n", (double)h->n);
    pl_json_add_num(o, "accuracy", h->accuracy);
    pl_json_add_num(o, "macro_f1", h->macro_f1);
    pl_json_add_num(o, "unknown_labels", (double)h->unknown);
    pl_json_add(o, "absent", pl_json_must(cJSON_CreateBool(h->cols == 0)));
    cJSON *classes = pl_json_must(cJSON_CreateArray());
    cJSON *labels = pl_json_must(cJSON_CreateArray());
    cJSON *conf = pl_json_must(cJSON_CreateArray());
    for (size_t c = 0; c < h->rows; c++) {
        double p, r, f1;
        (void)class_stats(h, c, &p, &r, &f1); /* listed whether or not it counts */
        cJSON *cl = pl_json_must(cJSON_CreateObject());
        pl_json_add_str(cl, "label", h->names[c]);
        pl_json_add_num(cl, "precision", p);
        pl_json_add_num(cl, "recall", r);
        pl_json_add_num(cl, "f1", f1);
        pl_json_add_num(cl, "support", (double)h->support[c]);
        pl_json_add(cl, "known", pl_json_must(cJSON_CreateBool(c < h->cols)));
        cJSON_AddItemToArray(classes, cl);
        if (c < h->cols)
            cJSON_AddItemToArray(labels, pl_json_must(cJSON_CreateString(h->names[c])));
        cJSON *row = pl_json_must(cJSON_CreateArray());
        for (size_t j = 0; j < h->cols; j++)
            cJSON_AddItemToArray(
                row, pl_json_must(cJSON_CreateNumber((double)h->conf[c * h->cols + j])));
        cJSON_AddItemToArray(conf, row);
    }
    pl_json_add(o, "classes", classes);
    pl_json_add(o, "predicted_labels", labels);
    pl_json_add(o, "confusion", conf);
    return o;
}

/* The --rules part: the decided priority's table and the rules' P1 alone. */
static void report_decision(const eval_t *e, cJSON *root)
{
    head_stats_t h = {0}, hs = {0};
    decision_compute(e, &h);
    head_macro(&h);
    int angry = guess_index_named(e->m, CLF_HEAD_SENTIMENT, "angry");
    if (angry >= 0) {
        decision_sentiment_compute(e, &hs);
        head_macro(&hs);
    }
    rules_p1_t r;
    rules_p1_compute(e, &r);
    if (root) {
        cJSON *d = pl_json_must(cJSON_CreateObject());
        pl_json_add_num(d, "rules_docs_per_s", e->rules_docs_per_s);
        if (h.n)
            pl_json_add(d, "priority", head_json(&h));
        if (hs.n)
            pl_json_add(d, "sentiment", head_json(&hs));
        cJSON *rj = pl_json_must(cJSON_CreateObject());
        pl_json_add_num(rj, "p1_labelled", (double)r.labelled);
        pl_json_add_num(rj, "p1_flagged", (double)r.flagged);
        pl_json_add_num(rj, "p1_both", (double)r.both);
        pl_json_add_num(rj, "p1_recall", ratio(r.both, r.labelled));
        pl_json_add_num(rj, "p1_precision", ratio(r.both, r.flagged));
        pl_json_add_num(rj, "non_p1_labelled", (double)r.labelled_non_p1);
        pl_json_add_num(rj, "non_p1_flagged", (double)r.flagged_non_p1);
        pl_json_add(d, "rules_alone", rj);
        pl_json_add(root, "decision", d);
    } else {
        printf("\nrules: %.0f documents/s (one thread)", e->rules_docs_per_s);
        if (h.n)
            printf("; P1 by the rules alone: %zu labelled, %zu flagged, %zu both: recall %.4f, "
                   "precision %.4f; %zu of %zu other lines flagged",
                   r.labelled, r.flagged, r.both, ratio(r.both, r.labelled),
                   ratio(r.both, r.flagged), r.flagged_non_p1, r.labelled_non_p1);
        printf("\n");
        if (h.n)
            print_head("priority decided (model + rules)", &h);
        if (hs.n)
            print_head("sentiment decided (model + the rules' anger cues)", &hs);
    }
    stats_free(&h);
    stats_free(&hs);
}

static void report(const eval_t *e, const char *model_path, int json)
{
    cJSON *root = json ? pl_json_must(cJSON_CreateObject()) : NULL;
    cJSON *heads = json ? pl_json_must(cJSON_CreateObject()) : NULL;
    if (json) {
        pl_json_add_str(root, "model", model_path);
        pl_json_add_num(root, "docs", (double)e->n);
        pl_json_add_num(root, "bad_lines", (double)e->bad);
        pl_json_add_num(root, "docs_per_s", e->docs_per_s);
    } else {
        printf("model %s: %zu texts%s; %.0f documents/s predicted (one thread, all heads)\n",
               model_path, e->n, e->bad ? " (bad lines skipped)" : "", e->docs_per_s);
    }
    for (int k = 0; k < CLF_NHEADS; k++) {
        head_stats_t h = {0};
        head_compute(e, k, &h);
        if (h.n) {
            head_macro(&h);
            if (json)
                pl_json_add(heads, clf_head_name((clf_head_t)k), head_json(&h));
            else
                print_head(clf_head_name((clf_head_t)k), &h);
        }
        stats_free(&h);
    }
    if (json)
        pl_json_add(root, "heads", heads);
    if (e->rules)
        report_decision(e, root);
    if (json) {
        char *text = pl_json_print(root);
        printf("%s\n", text);
        pl_free(text);
        cJSON_Delete(root);
    }
}

static void eval_free(eval_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        pl_free(e->items[i].text);
    pl_free(e->items);
    for (int k = 0; k < CLF_NHEADS; k++) {
        for (size_t i = 0; i < e->unknown[k].n; i++)
            pl_free(e->unknown[k].names[i]);
        pl_free(e->unknown[k].names);
    }
}

static int parse_seconds(const char *v, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= 0.0 && d <= 600.0)) {
        fprintf(stderr, "plaintctl: invalid --time \"%s\": must be seconds from 0 to 600\n", v);
        return CTL_EXIT_USAGE;
    }
    *out = d;
    return CTL_EXIT_OK;
}

int ctl_eval(int argc, char **argv)
{
    const char *model_path = NULL, *rules_dir = NULL;
    int json = 0, skip_bad = 0, nfiles = 0;
    double time_min_s = TIMING_MIN_S;
    char **files = pl_calloc((size_t)argc, sizeof *files);
    int status = CTL_EXIT_OK;
    for (int i = 1; i < argc && status == CTL_EXIT_OK; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--skip-bad"))
            skip_bad = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model_path = argv[++i];
        else if (!strncmp(argv[i], "--model=", 8))
            model_path = argv[i] + 8;
        else if (!strcmp(argv[i], "--time") && i + 1 < argc)
            status = parse_seconds(argv[++i], &time_min_s);
        else if (!strcmp(argv[i], "--rules") && i + 1 < argc)
            rules_dir = argv[++i];
        else if (!strncmp(argv[i], "--rules=", 8))
            rules_dir = argv[i] + 8;
        else if (!strncmp(argv[i], "--", 2)) {
            fprintf(stderr, "plaintctl: eval: unknown option \"%s\"\n", argv[i]);
            status = CTL_EXIT_USAGE;
        } else
            files[nfiles++] = argv[i];
    }
    if (status == CTL_EXIT_OK && (!model_path || !nfiles)) {
        ctl_fail(!model_path ? "eval: --model MODEL is required" : "eval: no input file",
                 "Run plaintctl eval --help.");
        status = CTL_EXIT_USAGE;
    }
    pl_err_t err;
    eval_t e = {0};
    clf_model_t *m = NULL;
    if (status == CTL_EXIT_OK && !(m = clf_model_load(model_path, &err))) {
        ctl_fail(err.message, err.hint);
        status = CTL_EXIT_FAIL;
    }
    clf_rules_t *rules = NULL;
    if (status == CTL_EXIT_OK && rules_dir) {
        pl_errlist_t errs = PL_ERRLIST_INIT;
        rules = clf_rules_load(rules_dir, &errs);
        for (size_t i = 0; !rules && i < errs.count; i++)
            ctl_fail(errs.items[i].message, errs.items[i].hint);
        pl_errlist_reset(&errs);
        if (!rules)
            status = CTL_EXIT_CONFIG;
    }
    e.m = m;
    e.rules = rules;
    e.time_min_s = time_min_s;
    for (int i = 0; i < nfiles && status == CTL_EXIT_OK; i++)
        if (read_lines(&e, files[i]) != 0)
            status = CTL_EXIT_FAIL;
    if (status == CTL_EXIT_OK && e.bad && !skip_bad) {
        fprintf(stderr, "plaintctl: %zu bad line%s\nhint: Fix them, or pass --skip-bad.\n",
                e.bad, e.bad == 1 ? "" : "s");
        status = CTL_EXIT_DATAERR;
    }
    if (status == CTL_EXIT_OK) {
        predict_all(&e);
        report(&e, model_path, json);
    }
    eval_free(&e);
    clf_rules_destroy(&rules);
    clf_model_destroy(&m);
    pl_free(files);
    return status;
}
