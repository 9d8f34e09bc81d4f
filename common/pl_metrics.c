/*
 * pl_metrics: counters, gauges and histograms in Prometheus text format
 * 0.0.4 (see pl_metrics.h).
 *
 * Trusts its callers only so far: names are constants in our code, so a bad
 * one is a bug, logged and asserted; label values and help may be any text
 * and are escaped when rendered.
 * Owns the families, their series and every string copied into them. Used
 * from one thread only.
 */
#include "pl_metrics.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_log.h"

const double pl_metrics_latency_buckets[PL_METRICS_LATENCY_BUCKETS_N] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

typedef struct family {
    char *name;
    char *help;
    kind_t kind;
    size_t nlabels;
    char *label_names[PL_METRICS_LABELS_MAX];
    double *bounds; /* histograms */
    size_t nbounds;
    pl_metric_t **series;
    size_t nseries, cap;
} family_t;

struct pl_metric {
    family_t *fam;
    char *label_values[PL_METRICS_LABELS_MAX];
    double value;      /* counter, gauge */
    uint64_t *buckets; /* histogram: observations per bound, not cumulative */
    uint64_t count;
    double sum;
};

typedef struct hook {
    void (*fn)(void *arg);
    void *arg;
} hook_t;

struct pl_metrics {
    family_t **fams;
    size_t nfams, cap;
    hook_t *hooks;
    size_t nhooks, hcap;
};

/* ---- a growable text buffer ---- */

typedef struct buf {
    char *data;
    size_t len, cap;
} buf_t;

static void buf_put(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 4096;
        b->data = pl_realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_puts(buf_t *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* ---- names and values ---- */

static bool valid_name(const char *s, bool colon)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (colon && c == ':');
        if (!ok)
            return false;
    }
    return true;
}

/* Prometheus reads Go's float syntax: integers print without a fraction,
 * others with the fewest digits that read back as the same double. */
static void format_value(double v, char buf[32])
{
    if (isnan(v)) {
        strcpy(buf, "NaN");
    } else if (isinf(v)) {
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, 32, "%.0f", v == 0 ? 0.0 : v); /* no "-0" */
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, 32, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
}

/* HELP text escapes backslash and newline; label values also the quote. */
static void put_escaped(buf_t *b, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n"
                        : (quote && *s == '"') ? "\\\"" : NULL;
        if (!rep)
            continue;
        buf_put(b, run, (size_t)(s - run));
        buf_puts(b, rep);
        run = s + 1;
    }
    buf_puts(b, run);
}

/* ---- registration ---- */

typedef struct labels {
    size_t n;
    const char *names[PL_METRICS_LABELS_MAX];
    const char *values[PL_METRICS_LABELS_MAX];
} labels_t;

/* A bad registration is a bug in our code: logged, asserted, and in a
 * release build the series is left out (NULL, which every update ignores). */
static pl_metric_t *bug(const char *what, const char *name)
{
    pl_log_error("metric not registered: this is a bug", "what", what, "metric", name, NULL);
    assert(!"metric not registered");
    return NULL;
}

/* Returns NULL, or what is wrong with the labels. */
static const char *read_labels(va_list ap, labels_t *l, kind_t kind)
{
    l->n = 0;
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        if (l->n == PL_METRICS_LABELS_MAX)
            return "too many labels";
        if (!valid_name(name, false) || strncmp(name, "__", 2) == 0)
            return "bad label name";
        if (kind == KIND_HISTOGRAM && strcmp(name, "le") == 0)
            return "label le is reserved for histogram buckets";
        if (!value)
            return "label value is NULL";
        l->names[l->n] = name;
        l->values[l->n++] = value;
    }
    return NULL;
}

static family_t *family_find(pl_metrics_t *m, const char *name)
{
    for (size_t i = 0; i < m->nfams; i++)
        if (strcmp(m->fams[i]->name, name) == 0)
            return m->fams[i];
    return NULL;
}

static family_t *family_new(pl_metrics_t *m, const char *name, const char *help, kind_t kind,
                            const labels_t *l)
{
    family_t *f = pl_calloc(1, sizeof *f);
    f->name = pl_strdup(name);
    f->help = pl_strdup(help ? help : "");
    f->kind = kind;
    f->nlabels = l->n;
    for (size_t i = 0; i < l->n; i++)
        f->label_names[i] = pl_strdup(l->names[i]);
    if (m->nfams == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->fams = pl_realloc(m->fams, m->cap * sizeof *m->fams);
    }
    m->fams[m->nfams++] = f;
    return f;
}

static bool same_labels(const family_t *f, const labels_t *l)
{
    if (f->nlabels != l->n)
        return false;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(f->label_names[i], l->names[i]) != 0)
            return false;
    return true;
}

static pl_metric_t *series_find(const family_t *f, const labels_t *l)
{
    for (size_t i = 0; i < f->nseries; i++) {
        size_t j = 0;
        while (j < l->n && strcmp(f->series[i]->label_values[j], l->values[j]) == 0)
            j++;
        if (j == l->n)
            return f->series[i];
    }
    return NULL;
}

static pl_metric_t *series_new(family_t *f, const labels_t *l)
{
    pl_metric_t *s = pl_calloc(1, sizeof *s);
    s->fam = f;
    for (size_t i = 0; i < l->n; i++)
        s->label_values[i] = pl_strdup(l->values[i]);
    if (f->kind == KIND_HISTOGRAM)
        s->buckets = pl_calloc(f->nbounds ? f->nbounds : 1, sizeof *s->buckets);
    if (f->nseries == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 4;
        f->series = pl_realloc(f->series, f->cap * sizeof *f->series);
    }
    f->series[f->nseries++] = s;
    return s;
}

static bool ascending(const double *bounds, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (!(bounds[i - 1] < bounds[i]))
            return false;
    return true;
}

static pl_metric_t *add(pl_metrics_t *m, const char *name, const char *help, kind_t kind,
                        const double *bounds, size_t nbounds, const labels_t *l)
{
    if (!valid_name(name, true))
        return bug("bad metric name", name ? name : "");
    family_t *f = family_find(m, name);
    if (!f && kind == KIND_HISTOGRAM && (!bounds || !ascending(bounds, nbounds)))
        return bug("histogram bounds must ascend", name);
    if (!f) {
        f = family_new(m, name, help, kind, l);
        if (kind == KIND_HISTOGRAM) {
            f->bounds = pl_malloc((nbounds ? nbounds : 1) * sizeof *f->bounds);
            if (nbounds)
                memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
            f->nbounds = nbounds;
        }
    }
    if (f->kind != kind)
        return bug("registered again with another type", name);
    if (!same_labels(f, l))
        return bug("label names differ from the family's", name);
    pl_metric_t *s = series_find(f, l);
    return s ? s : series_new(f, l);
}

static pl_metric_t *add_labelled(pl_metrics_t *m, const char *name, const char *help, kind_t kind,
                                 const double *bounds, size_t nbounds, va_list ap)
{
    labels_t l;
    const char *why = read_labels(ap, &l, kind);
    return why ? bug(why, name ? name : "") : add(m, name, help, kind, bounds, nbounds, &l);
}

pl_metric_t *pl_metrics_counter(pl_metrics_t *m, const char *name, const char *help, ...)
{
    if (!m)
        return NULL;
    va_list ap;
    va_start(ap, help);
    pl_metric_t *s = add_labelled(m, name, help, KIND_COUNTER, NULL, 0, ap);
    va_end(ap);
    return s;
}

pl_metric_t *pl_metrics_gauge(pl_metrics_t *m, const char *name, const char *help, ...)
{
    if (!m)
        return NULL;
    va_list ap;
    va_start(ap, help);
    pl_metric_t *s = add_labelled(m, name, help, KIND_GAUGE, NULL, 0, ap);
    va_end(ap);
    return s;
}

pl_metric_t *pl_metrics_histogram(pl_metrics_t *m, const char *name, const char *help,
                                  const double *bounds, size_t nbounds, ...)
{
    if (!m)
        return NULL;
    va_list ap;
    va_start(ap, nbounds);
    pl_metric_t *s = add_labelled(m, name, help, KIND_HISTOGRAM, bounds, nbounds, ap);
    va_end(ap);
    return s;
}

void pl_metrics_on_collect(pl_metrics_t *m, void (*fn)(void *arg), void *arg)
{
    if (!m)
        return;
    if (m->nhooks == m->hcap) {
        m->hcap = m->hcap ? m->hcap * 2 : 4;
        m->hooks = pl_realloc(m->hooks, m->hcap * sizeof *m->hooks);
    }
    m->hooks[m->nhooks++] = (hook_t){fn, arg};
}

/* ---- updates ---- */

void pl_metric_inc(pl_metric_t *s)
{
    pl_metric_add(s, 1);
}

void pl_metric_add(pl_metric_t *s, double v)
{
    if (!s || s->fam->kind == KIND_HISTOGRAM || (s->fam->kind == KIND_COUNTER && !(v >= 0)))
        return;
    s->value += v;
}

void pl_metric_set(pl_metric_t *s, double v)
{
    if (s && s->fam->kind == KIND_GAUGE)
        s->value = v;
}

void pl_metric_observe(pl_metric_t *s, double v)
{
    /* A NaN would make the sum NaN for good. */
    if (!s || s->fam->kind != KIND_HISTOGRAM || isnan(v))
        return;
    for (size_t i = 0; i < s->fam->nbounds; i++)
        if (v <= s->fam->bounds[i]) {
            s->buckets[i]++;
            break;
        }
    s->count++;
    s->sum += v;
}

double pl_metric_value(const pl_metric_t *s)
{
    if (!s)
        return 0;
    return s->fam->kind == KIND_HISTOGRAM ? (double)s->count : s->value;
}

/* ---- rendering ---- */

/* {a="x",b="y"} with le="..." appended when le is not NULL; nothing when
 * there are no labels at all. */
static void put_labels(buf_t *b, const pl_metric_t *s, const char *le)
{
    const family_t *f = s->fam;
    if (f->nlabels == 0 && !le)
        return;
    buf_puts(b, "{");
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i)
            buf_puts(b, ",");
        buf_puts(b, f->label_names[i]);
        buf_puts(b, "=\"");
        put_escaped(b, s->label_values[i], true);
        buf_puts(b, "\"");
    }
    if (le) {
        buf_puts(b, f->nlabels ? ",le=\"" : "le=\"");
        buf_puts(b, le);
        buf_puts(b, "\"");
    }
    buf_puts(b, "}");
}

static void put_sample(buf_t *b, const char *name, const char *suffix, const pl_metric_t *s,
                       const char *le, double v)
{
    char num[32];
    format_value(v, num);
    buf_puts(b, name);
    buf_puts(b, suffix);
    put_labels(b, s, le);
    buf_puts(b, " ");
    buf_puts(b, num);
    buf_puts(b, "\n");
}

static void put_histogram(buf_t *b, const family_t *f, const pl_metric_t *s)
{
    uint64_t cumulative = 0;
    char le[32];
    for (size_t i = 0; i < f->nbounds; i++) {
        cumulative += s->buckets[i];
        format_value(f->bounds[i], le);
        put_sample(b, f->name, "_bucket", s, le, (double)cumulative);
    }
    put_sample(b, f->name, "_bucket", s, "+Inf", (double)s->count);
    put_sample(b, f->name, "_sum", s, NULL, s->sum);
    put_sample(b, f->name, "_count", s, NULL, (double)s->count);
}

static void put_family(buf_t *b, const family_t *f)
{
    buf_puts(b, "# HELP ");
    buf_puts(b, f->name);
    buf_puts(b, " ");
    put_escaped(b, f->help, false);
    buf_puts(b, "\n# TYPE ");
    buf_puts(b, f->name);
    buf_puts(b, " ");
    buf_puts(b, kind_names[f->kind]);
    buf_puts(b, "\n");
    for (size_t i = 0; i < f->nseries; i++) {
        if (f->kind == KIND_HISTOGRAM)
            put_histogram(b, f, f->series[i]);
        else
            put_sample(b, f->name, "", f->series[i], NULL, f->series[i]->value);
    }
}

char *pl_metrics_render(pl_metrics_t *m, size_t *len)
{
    buf_t b = {0};
    buf_puts(&b, "");
    for (size_t i = 0; m && i < m->nhooks; i++)
        m->hooks[i].fn(m->hooks[i].arg);
    for (size_t i = 0; m && i < m->nfams; i++)
        put_family(&b, m->fams[i]);
    if (len)
        *len = b.len;
    return b.data;
}

/* ---- lifetime ---- */

pl_metrics_t *pl_metrics_new(void)
{
    return pl_calloc(1, sizeof(pl_metrics_t));
}

static void family_free(family_t *f)
{
    for (size_t i = 0; i < f->nseries; i++) {
        pl_metric_t *s = f->series[i];
        for (size_t j = 0; j < f->nlabels; j++)
            pl_free(s->label_values[j]);
        pl_free(s->buckets);
        pl_free(s);
    }
    for (size_t j = 0; j < f->nlabels; j++)
        pl_free(f->label_names[j]);
    pl_free(f->series);
    pl_free(f->bounds);
    pl_free(f->name);
    pl_free(f->help);
    pl_free(f);
}

void pl_metrics_destroy(pl_metrics_t **m_p)
{
    pl_metrics_t *m = m_p ? *m_p : NULL;
    if (!m)
        return;
    *m_p = NULL;
    for (size_t i = 0; i < m->nfams; i++)
        family_free(m->fams[i]);
    pl_free(m->fams);
    pl_free(m->hooks);
    pl_free(m);
}
