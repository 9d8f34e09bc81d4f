/*
 * clf_model: TF-IDF + softmax regression heads, the model file, training
 * (see clf_model.h for the format and the method).
 *
 * Trusts nothing in a model file: every size, offset, label and number is
 * checked before the model is handed out, and the checksum covers the rest.
 * Owns the mapping of a loaded model; a trainer owns copies of everything it
 * was given (features, not texts: the text is not kept).
 */
#include "clf_model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_utf8.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the model file is little-endian and read in place: port clf_model to big-endian first"
#endif

#define NO_ROW UINT32_MAX
#define ALIGN 64
#define HEADER_BYTES 128
#define CHECKSUM_BYTES 8

/* The file header, stored as is (little-endian, no padding). */
typedef struct file_header {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint64_t file_bytes;
    uint8_t text[8]; /* hash_bits, word_ngram_max, char_min, char_max, cjk_ngram_max, flags */
    uint32_t nrows;
    uint32_t ncols;
    uint32_t nlabels[CLF_NHEADS];
    uint32_t ntexts;
    uint64_t labels_off, labels_bytes;
    uint64_t rowmap_off, idf_off, bias_off, weights_off;
    uint64_t reserved[3];
} file_header_t;
_Static_assert(sizeof(file_header_t) == HEADER_BYTES, "file_header_t must have no padding");

struct clf_model {
    void *map;
    size_t map_bytes;
    clf_text_opts_t text;
    uint32_t nrows, ncols, ntexts;
    const uint32_t *rowmap;
    const float *idf, *bias, *weights;
    size_t nlabels[CLF_NHEADS];
    size_t col_off[CLF_NHEADS];
    const char **labels[CLF_NHEADS]; /* pointers into map */
};

static const char *const head_names[CLF_NHEADS] = {"category", "priority", "sentiment"};

const char *clf_head_name(clf_head_t head)
{
    return (unsigned)head < CLF_NHEADS ? head_names[head] : "unknown";
}

/* A 64-bit checksum over p[0..n): four independent multiply-rotate lanes so
 * that checking a model of tens of MiB costs milliseconds. */
static uint64_t checksum(const unsigned char *p, size_t n)
{
    const uint64_t k1 = 0x9E3779B185EBCA87ULL, k2 = 0xC2B2AE3D27D4EB4FULL;
    uint64_t h[4] = {k1, k2, ~k1, ~k2};
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * l, 8);
            uint64_t x = h[l] ^ (w * k2);
            h[l] = ((x << 31) | (x >> 33)) * k1;
        }
    }
    uint64_t t = 0xcbf29ce484222325ULL;
    for (; i < n; i++)
        t = (t ^ p[i]) * 0x100000001b3ULL;
    uint64_t r = h[0] ^ (h[1] * 3) ^ (h[2] * 5) ^ (h[3] * 7) ^ t ^ (uint64_t)n;
    r ^= r >> 33;
    r *= 0xff51afd7ed558ccdULL;
    r ^= r >> 33;
    return r;
}

/* ---------------------------------------------------------------------- */
/* Loading */

static void *load_fail(pl_err_t *err, int code, const char *path, const char *why,
                       const char *hint)
{
    pl_err_set(err, code, NULL, "model file \"%s\" %s", path, why);
    if (hint)
        pl_err_hint(err, "%s", hint);
    return NULL;
}

static const char HINT_RETRAIN[] =
    "Train the model again with plaintctl train, or point at a model file it wrote.";

/* Checks that [off, off + bytes) is aligned, after the header and before end. */
static bool section_ok(uint64_t off, uint64_t bytes, uint64_t start, uint64_t end)
{
    return off % 4 == 0 && off >= start && off <= end && bytes <= end - off;
}

static bool sections_ok(const file_header_t *h, uint64_t *rowmap_bytes)
{
    uint64_t end = h->file_bytes - CHECKSUM_BYTES;
    *rowmap_bytes = (uint64_t)4 << h->text[0];
    uint64_t rows = h->nrows, cols = h->ncols;
    return section_ok(h->labels_off, h->labels_bytes, HEADER_BYTES, end) &&
           section_ok(h->rowmap_off, *rowmap_bytes, h->labels_off + h->labels_bytes, end) &&
           section_ok(h->idf_off, 4 * rows, h->rowmap_off + *rowmap_bytes, end) &&
           section_ok(h->bias_off, 4 * cols, h->idf_off + 4 * rows, end) &&
           section_ok(h->weights_off, 4 * rows * cols, h->bias_off + 4 * cols, end);
}

/* Checks the header's numbers; *why gets a phrase for the message. */
static bool header_ok(const file_header_t *h, clf_text_opts_t *opts, const char **why)
{
    *opts = (clf_text_opts_t){h->text[0], h->text[1], h->text[2], h->text[3], h->text[4],
                              h->text[5]};
    uint64_t cols = 0, rowmap_bytes;
    for (int k = 0; k < CLF_NHEADS; k++) {
        if (h->nlabels[k] > CLF_LABELS_MAX) {
            *why = "has a head with too many labels";
            return false;
        }
        cols += h->nlabels[k];
    }
    if (clf_text_opts_check(opts) != 0)
        *why = "has feature options this build does not know";
    else if (h->header_bytes != HEADER_BYTES)
        *why = "has a header of the wrong size";
    else if (cols == 0 || cols != h->ncols)
        *why = "has no heads, or a column count that does not match its labels";
    else if (h->nrows > (1u << opts->hash_bits))
        *why = "has more rows than hash buckets";
    else if (!sections_ok(h, &rowmap_bytes))
        *why = "has a section outside the file";
    else
        return true;
    return false;
}

/* Points m->labels[] at the label strings; false if they are malformed. */
static bool labels_ok(clf_model_t *m, const char *base, size_t bytes)
{
    size_t pos = 0;
    for (int k = 0; k < CLF_NHEADS; k++) {
        m->labels[k] = m->nlabels[k] ? pl_calloc(m->nlabels[k], sizeof(char *)) : NULL;
        for (size_t i = 0; i < m->nlabels[k]; i++) {
            const char *s = base + pos;
            const char *nul = memchr(s, '\0', bytes - pos);
            if (!nul || nul == s || (size_t)(nul - s) > CLF_LABEL_MAX_BYTES ||
                !pl_utf8_valid(s, (size_t)(nul - s), NULL))
                return false;
            if (i > 0 && strcmp(m->labels[k][i - 1], s) >= 0)
                return false; /* sorted and unique */
            m->labels[k][i] = s;
            pos += (size_t)(nul - s) + 1;
        }
    }
    return pos == bytes;
}

static bool all_finite(const float *v, size_t n)
{
    /* One flag over the whole array keeps the loop vectorisable. */
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= !isfinite(v[i]);
    return !bad;
}

static bool numbers_ok(const clf_model_t *m)
{
    size_t buckets = (size_t)1 << m->text.hash_bits;
    uint32_t bad = 0;
    for (size_t b = 0; b < buckets; b++)
        bad |= m->rowmap[b] != NO_ROW && m->rowmap[b] >= m->nrows;
    if (bad)
        return false;
    for (size_t r = 0; r < m->nrows; r++)
        if (!(m->idf[r] > 0.0f) || !isfinite(m->idf[r]))
            return false;
    return all_finite(m->bias, m->ncols) && all_finite(m->weights, (size_t)m->nrows * m->ncols);
}

/* Fills m from the mapped file; returns a phrase saying what is wrong, or NULL. */
static const char *parse(clf_model_t *m, const unsigned char *p, size_t size)
{
    file_header_t h;
    memcpy(&h, p, sizeof h);
    const char *why = NULL;
    if (h.version != CLF_MODEL_VERSION)
        return "has a format version this build cannot read";
    if (h.file_bytes != size)
        return h.file_bytes > size ? "is truncated" : "has trailing bytes after its end";
    uint64_t sum;
    memcpy(&sum, p + size - CHECKSUM_BYTES, sizeof sum);
    if (sum != checksum(p, size - CHECKSUM_BYTES))
        return "is corrupt (checksum mismatch)";
    if (!header_ok(&h, &m->text, &why))
        return why;
    m->nrows = h.nrows;
    m->ncols = h.ncols;
    m->ntexts = h.ntexts;
    for (int k = 0, off = 0; k < CLF_NHEADS; off += (int)h.nlabels[k], k++) {
        m->nlabels[k] = h.nlabels[k];
        m->col_off[k] = (size_t)off;
    }
    m->rowmap = (const uint32_t *)(p + h.rowmap_off);
    m->idf = (const float *)(p + h.idf_off);
    m->bias = (const float *)(p + h.bias_off);
    m->weights = (const float *)(p + h.weights_off);
    if (!labels_ok(m, (const char *)p + h.labels_off, h.labels_bytes))
        return "has malformed labels";
    if (!numbers_ok(m))
        return "has rows or numbers out of range";
    return NULL;
}

/* Maps path read-only into m->map; returns 0 or fills err. */
static int map_file(clf_model_t *m, const char *path, pl_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        pl_err_set(err, errno == ENOENT ? PL_ENOTFOUND : PL_EIO, NULL,
                   "cannot open model file \"%s\": %s", path, strerror(errno));
        return pl_err_hint(err, "%s", HINT_RETRAIN);
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = pl_err_set(err, PL_EIO, NULL, "model file \"%s\" is not a regular file", path);
    } else if ((size_t)st.st_size < HEADER_BYTES + CHECKSUM_BYTES) {
        char head[8] = {0};
        ssize_t n = read(fd, head, sizeof head);
        rc = pl_err_set(err, PL_EINVAL, NULL, "model file \"%s\" %s (%lld bytes)", path,
                        n == 8 && !memcmp(head, CLF_MODEL_MAGIC, 8) ? "is truncated"
                                                                    : "is not a Plaint model",
                        (long long)st.st_size);
    } else {
        m->map_bytes = (size_t)st.st_size;
        m->map = mmap(NULL, m->map_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m->map == MAP_FAILED) {
            m->map = NULL;
            rc = pl_err_set(err, PL_EIO, NULL, "cannot map model file \"%s\": %s", path,
                            strerror(errno));
        }
    }
    close(fd);
    if (rc != 0) /* the header promises a hint for every failure */
        (void)pl_err_hint(err, "%s", HINT_RETRAIN);
    return rc;
}

clf_model_t *clf_model_load(const char *path, pl_err_t *err)
{
    clf_model_t *m = pl_calloc(1, sizeof *m);
    if (map_file(m, path, err) != 0) {
        clf_model_destroy(&m);
        return NULL;
    }
    const char *why;
    if (memcmp(m->map, CLF_MODEL_MAGIC, 8) != 0)
        why = "is not a Plaint model (no PLAINTM1 magic)";
    else
        why = parse(m, m->map, m->map_bytes);
    if (why) {
        clf_model_destroy(&m);
        return load_fail(err, PL_EINVAL, path, why, HINT_RETRAIN);
    }
    return m;
}

void clf_model_destroy(clf_model_t **model_p)
{
    if (!model_p || !*model_p)
        return;
    clf_model_t *m = *model_p;
    if (m->map)
        (void)munmap(m->map, m->map_bytes); /* fails only for a bad address */
    for (int k = 0; k < CLF_NHEADS; k++)
        pl_free(m->labels[k]);
    pl_free(m);
    *model_p = NULL;
}

size_t clf_model_labels(const clf_model_t *m, clf_head_t head, const char *const **labels)
{
    if ((unsigned)head >= CLF_NHEADS || !m->nlabels[head]) {
        *labels = NULL;
        return 0;
    }
    *labels = (const char *const *)m->labels[head];
    return m->nlabels[head];
}

void clf_model_info(const clf_model_t *m, clf_model_info_t *info)
{
    *info = (clf_model_info_t){m->text, m->nrows, m->ntexts, m->map_bytes};
}

/* ---------------------------------------------------------------------- */
/* Prediction */

static _Thread_local clf_text_scratch_t *thread_scratch;

void clf_model_thread_cleanup(void)
{
    clf_text_scratch_destroy(&thread_scratch);
}

static clf_text_scratch_t *my_scratch(void)
{
    if (!thread_scratch)
        thread_scratch = clf_text_scratch_new();
    return thread_scratch;
}

/* The TF-IDF weight of a feature counted n times in a text. */
static inline float tf_idf(float n, float idf)
{
    return n > 1.0f ? (1.0f + logf(n)) * idf : idf;
}

/* out[c] = bias[c] + w[.][c] . x / |x| for every column. The features come
 * sorted by bucket, so rows are visited in address order; each chunk first
 * looks up its rows (independent loads the CPU overlaps, with the weight rows
 * prefetched), then accumulates. */
static void scores(const clf_model_t *m, const clf_feat_t *f, size_t n, float *restrict out)
{
    enum { CHUNK = 64 };
    const size_t cols = m->ncols;
    float acc[CLF_NHEADS * CLF_LABELS_MAX];
    for (size_t c = 0; c < cols; c++)
        acc[c] = 0.0f;
    float norm2 = 0.0f;
    for (size_t base = 0; base < n; base += CHUNK) {
        uint32_t rows[CHUNK];
        float vals[CHUNK];
        size_t len = n - base < CHUNK ? n - base : CHUNK, k = 0;
        for (size_t i = 0; i < len; i++) {
            uint32_t r = m->rowmap[f[base + i].index];
            if (r == NO_ROW)
                continue;
            __builtin_prefetch(m->weights + (size_t)r * cols);
            rows[k] = r;
            vals[k++] = tf_idf(f[base + i].value, m->idf[r]);
        }
        for (size_t j = 0; j < k; j++) {
            const float v = vals[j];
            const float *restrict w = m->weights + (size_t)rows[j] * cols;
            norm2 += v * v;
            for (size_t c = 0; c < cols; c++)
                acc[c] += v * w[c];
        }
    }
    float scale = norm2 > 0.0f ? 1.0f / sqrtf(norm2) : 0.0f;
    for (size_t c = 0; c < cols; c++)
        out[c] = m->bias[c] + acc[c] * scale;
}

/* Softmax of s[0..k) in place. */
static void softmax(float *s, size_t k)
{
    float max = s[0], sum = 0.0f;
    for (size_t c = 1; c < k; c++)
        max = s[c] > max ? s[c] : max;
    for (size_t c = 0; c < k; c++) {
        s[c] = expf(s[c] - max);
        sum += s[c];
    }
    for (size_t c = 0; c < k; c++)
        s[c] /= sum;
}

static clf_guess_t best_of(const clf_model_t *m, int head, float *s)
{
    size_t k = m->nlabels[head];
    if (!k)
        return (clf_guess_t){NULL, 0.0f, 0.0f};
    softmax(s, k);
    size_t best = 0;
    float second = 0.0f;
    for (size_t c = 1; c < k; c++) {
        if (s[c] > s[best]) {
            second = s[best];
            best = c;
        } else if (s[c] > second) {
            second = s[c];
        }
    }
    return (clf_guess_t){m->labels[head][best], s[best], s[best] - second};
}

void clf_model_predict_scratch(const clf_model_t *m, clf_text_scratch_t *scratch,
                               const char *text, size_t len, clf_guess_t out[CLF_NHEADS])
{
    float s[CLF_NHEADS * CLF_LABELS_MAX];
    const clf_feat_t *f;
    size_t n = clf_text_features(&m->text, text, len, scratch, &f);
    scores(m, f, n, s);
    for (int k = 0; k < CLF_NHEADS; k++)
        out[k] = best_of(m, k, s + m->col_off[k]);
}

void clf_model_predict(const clf_model_t *m, const char *text, size_t len,
                       clf_guess_t out[CLF_NHEADS])
{
    clf_model_predict_scratch(m, my_scratch(), text, len, out);
}

size_t clf_model_predict_probs(const clf_model_t *m, clf_head_t head, const char *text,
                               size_t len, float *probs)
{
    if ((unsigned)head >= CLF_NHEADS || !m->nlabels[head])
        return 0;
    float s[CLF_NHEADS * CLF_LABELS_MAX];
    const clf_feat_t *f;
    size_t n = clf_text_features(&m->text, text, len, my_scratch(), &f);
    scores(m, f, n, s);
    size_t k = m->nlabels[head];
    softmax(s + m->col_off[head], k);
    memcpy(probs, s + m->col_off[head], k * sizeof *probs);
    return k;
}

/* ---------------------------------------------------------------------- */
/* Training */

typedef struct label_set {
    char **names; /* first-seen order */
    size_t *counts;
    size_t n;
} label_set_t;

struct clf_trainer {
    clf_train_opts_t o;
    clf_text_scratch_t *scratch;
    uint32_t *df; /* texts per bucket */
    clf_feat_t *feats; /* every text's features, back to back */
    size_t nfeats, feat_cap;
    size_t *start; /* text i: feats[start[i] .. start[i + 1]) */
    int16_t (*labels)[CLF_NHEADS]; /* label index per head, -1 = none */
    size_t ntexts, text_cap;
    label_set_t heads[CLF_NHEADS];
    bool finished; /* finish rewrote the features in place */
};

void clf_train_opts_default(clf_train_opts_t *o)
{
    clf_text_opts_default(&o->text);
    o->epochs = 20;
    o->seed = 1;
    o->learning_rate = 1.0f;
    o->l2 = 1e-5f;
    o->balance = 0.75f;
    o->min_df = 1;
}

static int check_train_opts(const clf_train_opts_t *o, pl_err_t *err)
{
    int rc = 0;
    if (o->text.hash_bits < CLF_HASH_BITS_MIN || o->text.hash_bits > CLF_HASH_BITS_MAX) {
        rc = pl_err_set(err, PL_EINVAL, "bits", "hash bits %u are out of range",
                        (unsigned)o->text.hash_bits);
        pl_err_hint(err, "Use %d to %d (2^N buckets); 18 to 20 suit most data.",
                    CLF_HASH_BITS_MIN, CLF_HASH_BITS_MAX);
    } else if (clf_text_opts_check(&o->text) != 0) {
        rc = pl_err_set(err, PL_EINVAL, "features", "feature options are out of range");
        pl_err_hint(err, "Character n-grams are 1 to 6 long, word n-grams up to 2, CJK up to 3.");
    } else if (o->epochs < 1 || o->epochs > 1000) {
        rc = pl_err_set(err, PL_EINVAL, "epochs", "epochs %u are out of range", o->epochs);
        pl_err_hint(err, "Use 1 to 1000.");
    } else if (!(o->learning_rate > 0.0f) || !isfinite(o->learning_rate)) {
        rc = pl_err_set(err, PL_EINVAL, "lr", "learning rate %g is out of range",
                        (double)o->learning_rate);
        pl_err_hint(err, "Use a positive number such as 0.5.");
    } else if (!(o->l2 >= 0.0f) || !isfinite(o->l2)) {
        rc = pl_err_set(err, PL_EINVAL, "l2", "l2 %g is out of range", (double)o->l2);
        pl_err_hint(err, "Use 0 or a small positive number such as 1e-5.");
    } else if (!(o->balance >= 0.0f && o->balance <= 1.0f)) {
        rc = pl_err_set(err, PL_EINVAL, "balance", "balance %g is out of range",
                        (double)o->balance);
        pl_err_hint(err, "Use 0 (no class weights) to 1 (fully balanced).");
    } else if (o->min_df < 1) {
        rc = pl_err_set(err, PL_EINVAL, "min_df", "min_df must be at least 1");
    }
    return rc;
}

clf_trainer_t *clf_trainer_new(const clf_train_opts_t *opts, pl_err_t *err)
{
    if (check_train_opts(opts, err) != 0)
        return NULL;
    clf_trainer_t *t = pl_calloc(1, sizeof *t);
    t->o = *opts;
    t->scratch = clf_text_scratch_new();
    t->df = pl_calloc((size_t)1 << opts->text.hash_bits, sizeof *t->df);
    t->start = pl_calloc(1, sizeof *t->start);
    return t;
}

void clf_trainer_destroy(clf_trainer_t **trainer_p)
{
    if (!trainer_p || !*trainer_p)
        return;
    clf_trainer_t *t = *trainer_p;
    clf_text_scratch_destroy(&t->scratch);
    pl_free(t->df);
    pl_free(t->feats);
    pl_free(t->start);
    pl_free(t->labels);
    for (int k = 0; k < CLF_NHEADS; k++) {
        for (size_t i = 0; i < t->heads[k].n; i++)
            pl_free(t->heads[k].names[i]);
        pl_free(t->heads[k].names);
        pl_free(t->heads[k].counts);
    }
    pl_free(t);
    *trainer_p = NULL;
}

/* Index of label in set, or -1 when new. */
static int find_label(const label_set_t *set, const char *label)
{
    for (size_t i = 0; i < set->n; i++)
        if (!strcmp(set->names[i], label))
            return (int)i;
    return -1;
}

static int check_labels(const clf_trainer_t *t, const char *const labels[CLF_NHEADS],
                        pl_err_t *err)
{
    int any = 0;
    for (int k = 0; k < CLF_NHEADS; k++) {
        const char *l = labels[k];
        if (!l)
            continue;
        any = 1;
        size_t len = strlen(l);
        if (len == 0 || len > CLF_LABEL_MAX_BYTES || !pl_utf8_valid(l, len, NULL))
            return pl_err_set(err, PL_EINVAL, head_names[k],
                              "%s label must be 1 to %d bytes of UTF-8", head_names[k],
                              CLF_LABEL_MAX_BYTES);
        if (find_label(&t->heads[k], l) < 0 && t->heads[k].n >= CLF_LABELS_MAX)
            return pl_err_set(err, PL_EINVAL, head_names[k],
                              "%s \"%s\" would be label %d; a head has at most %d",
                              head_names[k], l, CLF_LABELS_MAX + 1, CLF_LABELS_MAX);
    }
    if (!any)
        return pl_err_set(err, PL_EINVAL, "", "text has no label for any head");
    return 0;
}

static int16_t intern_label(label_set_t *set, const char *label)
{
    int i = find_label(set, label);
    if (i < 0) {
        set->names = pl_realloc(set->names, (set->n + 1) * sizeof *set->names);
        set->counts = pl_realloc(set->counts, (set->n + 1) * sizeof *set->counts);
        set->names[set->n] = pl_strdup(label);
        set->counts[set->n] = 0;
        i = (int)set->n++;
    }
    set->counts[i]++;
    return (int16_t)i;
}

int clf_trainer_add(clf_trainer_t *t, const char *text, size_t len,
                    const char *const labels[CLF_NHEADS], pl_err_t *err)
{
    if (t->finished)
        return pl_err_set(err, PL_ECONFLICT, NULL, "the trainer has already written its model");
    int rc = check_labels(t, labels, err);
    if (rc != 0)
        return rc;
    const clf_feat_t *f;
    size_t n = clf_text_features(&t->o.text, text, len, t->scratch, &f);
    if (t->nfeats + n > t->feat_cap) {
        t->feat_cap = (t->nfeats + n) * 2;
        t->feats = pl_realloc(t->feats, t->feat_cap * sizeof *t->feats);
    }
    if (n) /* an empty first text leaves both pointers NULL: memcpy must not get them */
        memcpy(t->feats + t->nfeats, f, n * sizeof *f);
    t->nfeats += n;
    for (size_t i = 0; i < n; i++)
        t->df[f[i].index]++;
    if (t->ntexts == t->text_cap) {
        t->text_cap = t->text_cap ? t->text_cap * 2 : 256;
        t->labels = pl_realloc(t->labels, t->text_cap * sizeof *t->labels);
        t->start = pl_realloc(t->start, (t->text_cap + 1) * sizeof *t->start);
    }
    for (int k = 0; k < CLF_NHEADS; k++)
        t->labels[t->ntexts][k] = labels[k] ? intern_label(&t->heads[k], labels[k]) : -1;
    t->start[++t->ntexts] = t->nfeats;
    return 0;
}

size_t clf_trainer_labels(const clf_trainer_t *t, clf_head_t head, const char *const **labels,
                          const size_t **counts)
{
    const label_set_t *set = &t->heads[(unsigned)head < CLF_NHEADS ? head : 0];
    *labels = (const char *const *)set->names;
    *counts = set->counts;
    return (unsigned)head < CLF_NHEADS ? set->n : 0;
}

size_t clf_trainer_texts(const clf_trainer_t *t)
{
    return t->ntexts;
}

/* What training makes, in the file's layout. */
typedef struct built {
    uint32_t *rowmap;
    float *idf, *bias, *weights;
    uint32_t nrows, ncols;
    size_t nlabels[CLF_NHEADS], col_off[CLF_NHEADS];
    const char **labels[CLF_NHEADS]; /* sorted; borrowed from the trainer */
} built_t;

static void built_free(built_t *b)
{
    pl_free(b->rowmap);
    pl_free(b->idf);
    pl_free(b->bias);
    pl_free(b->weights);
    for (int k = 0; k < CLF_NHEADS; k++)
        pl_free(b->labels[k]);
}

/* Rows for the buckets seen in at least min_df texts, with their idf
 * (smoothed, as scikit-learn's: ln((1 + n) / (1 + df)) + 1). */
static void make_rows(const clf_trainer_t *t, built_t *b)
{
    size_t buckets = (size_t)1 << t->o.text.hash_bits;
    b->rowmap = pl_malloc(buckets * sizeof *b->rowmap);
    uint32_t rows = 0;
    for (size_t i = 0; i < buckets; i++)
        b->rowmap[i] = t->df[i] >= t->o.min_df ? rows++ : NO_ROW;
    b->nrows = rows;
    b->idf = pl_malloc((rows ? rows : 1) * sizeof *b->idf);
    double n = (double)t->ntexts;
    for (size_t i = 0; i < buckets; i++)
        if (b->rowmap[i] != NO_ROW)
            b->idf[b->rowmap[i]] = (float)(log((1.0 + n) / (1.0 + t->df[i])) + 1.0);
}

/* Rewrites every text's features in place as (row, normalised TF-IDF), dropping
 * buckets without a row: the vectors prediction computes. */
static void vectorise(clf_trainer_t *t, const built_t *b)
{
    size_t out = 0;
    for (size_t d = 0; d < t->ntexts; d++) {
        size_t from = t->start[d], to = t->start[d + 1], first = out;
        double norm2 = 0.0;
        for (size_t i = from; i < to; i++) {
            uint32_t r = b->rowmap[t->feats[i].index];
            if (r == NO_ROW)
                continue;
            float v = tf_idf(t->feats[i].value, b->idf[r]);
            norm2 += (double)v * v;
            t->feats[out++] = (clf_feat_t){r, v};
        }
        float scale = norm2 > 0.0 ? (float)(1.0 / sqrt(norm2)) : 0.0f;
        for (size_t i = first; i < out; i++)
            t->feats[i].value *= scale;
        t->start[d] = first;
    }
    t->start[t->ntexts] = out;
    t->nfeats = out;
}

static int cmp_label(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts each head's labels and renumbers the texts' label indexes to match. */
static void sort_labels(clf_trainer_t *t, built_t *b)
{
    size_t col = 0;
    for (int k = 0; k < CLF_NHEADS; k++) {
        label_set_t *set = &t->heads[k];
        b->nlabels[k] = set->n;
        b->col_off[k] = col;
        col += set->n;
        if (!set->n)
            continue;
        b->labels[k] = pl_malloc(set->n * sizeof(char *));
        memcpy(b->labels[k], set->names, set->n * sizeof(char *));
        qsort(b->labels[k], set->n, sizeof(char *), cmp_label);
        int16_t map[CLF_LABELS_MAX];
        for (size_t i = 0; i < set->n; i++)
            for (size_t j = 0; j < set->n; j++)
                if (b->labels[k][j] == set->names[i])
                    map[i] = (int16_t)j;
        for (size_t d = 0; d < t->ntexts; d++)
            if (t->labels[d][k] >= 0)
                t->labels[d][k] = map[t->labels[d][k]];
    }
    b->ncols = (uint32_t)col;
}

/* A small, seedable generator (splitmix64) for the shuffles. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The per-class loss weights of each column. */
static float *class_weights(const clf_trainer_t *t, const built_t *b)
{
    float *cw = pl_malloc(b->ncols * sizeof *cw);
    for (int k = 0; k < CLF_NHEADS; k++) {
        const label_set_t *set = &t->heads[k];
        size_t total = 0;
        for (size_t i = 0; i < set->n; i++)
            total += set->counts[i];
        for (size_t j = 0; j < set->n; j++) {
            size_t i = 0; /* the sorted label j is set->names[i] */
            while (set->names[i] != b->labels[k][j])
                i++;
            double w = (double)total / ((double)set->n * (double)set->counts[i]);
            cw[b->col_off[k] + j] = (float)pow(w, t->o.balance);
        }
    }
    return cw;
}

/* Averaged SGD on the regularised objective: the class-weighted log loss of
 * every head a text is labelled for, plus l2 / 2 * |W|^2 per update on every
 * weight (not only the weights of the text's features: those of rare n-grams
 * would otherwise grow unchecked and the model would learn its training texts
 * by heart). The decay of all weights is one scale factor (W = scale * V), so
 * a step costs the text's features only. The step size falls as
 * lr / (1 + lr * l2 * t)^0.75, and the model is the average of the weights at
 * the end of each epoch after the first, which is steadier than the last. */
typedef struct sgd {
    const clf_trainer_t *t;
    built_t *b;
    float *v;        /* the weights divided by scale, [rows][cols] */
    double scale;
    float *cw;       /* class weights per column */
    float *s;        /* scores, then gradients, per column */
    uint8_t *active; /* columns of the heads this text is labelled for */
    uint64_t steps;
} sgd_t;

#define SCALE_MIN 1e-6 /* below it the scale is folded into the weights */

static void fold_scale(sgd_t *g, size_t cells)
{
    float f = (float)g->scale;
    for (size_t i = 0; i < cells; i++)
        g->v[i] *= f;
    g->scale = 1.0;
}

/* One step on text d for every head it is labelled for. */
static void sgd_step(sgd_t *g, size_t d)
{
    const clf_trainer_t *t = g->t;
    built_t *b = g->b;
    const size_t cols = b->ncols;
    const clf_feat_t *f = t->feats + t->start[d];
    size_t n = t->start[d + 1] - t->start[d];
    const float lr = t->o.learning_rate, l2 = t->o.l2;
    const double eta = lr / pow(1.0 + (double)lr * l2 * (double)g->steps++, 0.75);
    for (size_t c = 0; c < cols; c++)
        g->s[c] = 0.0f;
    for (size_t i = 0; i < n; i++) {
        const float *w = g->v + (size_t)f[i].index * cols;
        for (size_t c = 0; c < cols; c++)
            g->s[c] += f[i].value * w[c];
    }
    for (size_t c = 0; c < cols; c++)
        g->s[c] = b->bias[c] + (float)g->scale * g->s[c];
    memset(g->active, 0, cols);
    for (int k = 0; k < CLF_NHEADS; k++) {
        int y = t->labels[d][k];
        size_t off = b->col_off[k], nk = b->nlabels[k];
        if (y < 0)
            continue;
        softmax(g->s + off, nk);
        float cw = g->cw[off + (size_t)y];
        for (size_t c = 0; c < nk; c++) {
            g->s[off + c] = cw * (g->s[off + c] - (c == (size_t)y ? 1.0f : 0.0f));
            g->active[off + c] = 1;
        }
    }
    /* W <- (1 - eta * l2) W - eta * gradient */
    if (l2 > 0.0f) {
        g->scale *= 1.0 - eta * l2 < 0.5 ? 0.5 : 1.0 - eta * l2;
        if (g->scale < SCALE_MIN)
            fold_scale(g, (size_t)b->nrows * cols);
    }
    for (size_t c = 0; c < cols; c++)
        if (g->active[c])
            b->bias[c] -= (float)eta * g->s[c];
    const float step = (float)(eta / g->scale);
    for (size_t c = 0; c < cols; c++)
        g->s[c] = g->active[c] ? step * g->s[c] : 0.0f;
    for (size_t i = 0; i < n; i++) {
        float *w = g->v + (size_t)f[i].index * cols;
        const float x = f[i].value;
        for (size_t c = 0; c < cols; c++)
            w[c] -= g->s[c] * x;
    }
}

static void train(const clf_trainer_t *t, built_t *b)
{
    size_t cells = (size_t)b->nrows * b->ncols;
    b->weights = pl_calloc(cells ? cells : 1, sizeof *b->weights);
    b->bias = pl_calloc(b->ncols, sizeof *b->bias);
    sgd_t g = {t, b, pl_calloc(cells ? cells : 1, sizeof(float)), 1.0, class_weights(t, b),
               pl_malloc(b->ncols * sizeof(float)), pl_malloc(b->ncols), 0};
    /* the running sums of the averaged weights (b->weights) and biases */
    double *bias_sum = pl_calloc(b->ncols, sizeof *bias_sum);
    unsigned averaged = 0;
    size_t *order = pl_malloc((t->ntexts ? t->ntexts : 1) * sizeof *order);
    for (size_t i = 0; i < t->ntexts; i++)
        order[i] = i;
    uint64_t rng = t->o.seed;
    for (unsigned e = 0; e < t->o.epochs; e++) {
        for (size_t i = t->ntexts; i > 1; i--) { /* Fisher-Yates */
            size_t j = (size_t)(next_random(&rng) % i);
            size_t tmp = order[i - 1];
            order[i - 1] = order[j];
            order[j] = tmp;
        }
        for (size_t i = 0; i < t->ntexts; i++)
            sgd_step(&g, order[i]);
        if (e == 0 && t->o.epochs > 1)
            continue; /* the first epoch's weights are still far off: not averaged */
        const float scale = (float)g.scale;
        for (size_t i = 0; i < cells; i++)
            b->weights[i] += scale * g.v[i];
        for (size_t c = 0; c < b->ncols; c++)
            bias_sum[c] += b->bias[c];
        averaged++;
    }
    const float inv = averaged ? 1.0f / (float)averaged : 0.0f;
    for (size_t i = 0; i < cells; i++)
        b->weights[i] *= inv;
    for (size_t c = 0; c < b->ncols; c++)
        b->bias[c] = averaged ? (float)(bias_sum[c] / averaged) : 0.0f;
    pl_free(bias_sum);
    pl_free(order);
    pl_free(g.v);
    pl_free(g.cw);
    pl_free(g.s);
    pl_free(g.active);
}

/* ---------------------------------------------------------------------- */
/* Writing */

static uint64_t align_up(uint64_t n)
{
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

/* Lays the model out as the file's bytes; returns the buffer (caller frees). */
static unsigned char *serialise(const clf_trainer_t *t, const built_t *b, size_t *size)
{
    file_header_t h = {.version = CLF_MODEL_VERSION, .header_bytes = HEADER_BYTES};
    memcpy(h.magic, CLF_MODEL_MAGIC, 8);
    const clf_text_opts_t *o = &t->o.text;
    uint8_t text[8] = {o->hash_bits, o->word_ngram_max, o->char_min, o->char_max,
                       o->cjk_ngram_max, o->flags, 0, 0};
    memcpy(h.text, text, sizeof text);
    h.nrows = b->nrows;
    h.ncols = b->ncols;
    h.ntexts = (uint32_t)t->ntexts;
    for (int k = 0; k < CLF_NHEADS; k++) {
        h.nlabels[k] = (uint32_t)b->nlabels[k];
        for (size_t i = 0; i < b->nlabels[k]; i++)
            h.labels_bytes += strlen(b->labels[k][i]) + 1;
    }
    h.labels_off = HEADER_BYTES;
    h.rowmap_off = align_up(h.labels_off + h.labels_bytes);
    h.idf_off = align_up(h.rowmap_off + ((uint64_t)4 << o->hash_bits));
    h.bias_off = align_up(h.idf_off + 4 * (uint64_t)b->nrows);
    h.weights_off = align_up(h.bias_off + 4 * (uint64_t)b->ncols);
    h.file_bytes = align_up(h.weights_off + 4 * (uint64_t)b->nrows * b->ncols) + CHECKSUM_BYTES;
    unsigned char *p = pl_calloc(h.file_bytes, 1);
    memcpy(p, &h, sizeof h);
    size_t pos = h.labels_off;
    for (int k = 0; k < CLF_NHEADS; k++)
        for (size_t i = 0; i < b->nlabels[k]; i++) {
            size_t l = strlen(b->labels[k][i]) + 1;
            memcpy(p + pos, b->labels[k][i], l);
            pos += l;
        }
    memcpy(p + h.rowmap_off, b->rowmap, (size_t)4 << o->hash_bits);
    memcpy(p + h.idf_off, b->idf, 4 * (size_t)b->nrows);
    memcpy(p + h.bias_off, b->bias, 4 * (size_t)b->ncols);
    memcpy(p + h.weights_off, b->weights, 4 * (size_t)b->nrows * b->ncols);
    uint64_t sum = checksum(p, h.file_bytes - CHECKSUM_BYTES);
    memcpy(p + h.file_bytes - CHECKSUM_BYTES, &sum, sizeof sum);
    *size = h.file_bytes;
    return p;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes p[0..n) to path through a temporary file in the same directory and a
 * rename, so that a daemon loading the model never sees half of it. */
static int write_atomic(const char *path, const unsigned char *p, size_t n, pl_err_t *err)
{
    char *tmp = pl_sprintf("%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    int rc = 0;
    if (fd < 0) {
        rc = pl_err_set(err, PL_EIO, NULL, "cannot create a temporary file next to \"%s\": %s",
                        path, strerror(errno));
        pl_err_hint(err, "Check that the directory exists and is writable.");
        goto cleanup;
    }
    if (fchmod(fd, 0644) != 0 || write_all(fd, p, n) != 0 || fsync(fd) != 0) {
        rc = pl_err_set(err, PL_EIO, NULL, "cannot write \"%s\": %s", tmp, strerror(errno));
        pl_err_hint(err, "Check free space and permissions.");
    }
    if (close(fd) != 0 && rc == 0)
        rc = pl_err_set(err, PL_EIO, NULL, "cannot write \"%s\": %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = pl_err_set(err, PL_EIO, NULL, "cannot rename \"%s\" to \"%s\": %s", tmp, path,
                        strerror(errno));
    if (rc != 0)
        (void)unlink(tmp); /* best effort: the error above is the one to report */
cleanup:
    pl_free(tmp);
    return rc;
}

int clf_trainer_finish(clf_trainer_t *t, const char *path, pl_err_t *err)
{
    if (t->finished)
        return pl_err_set(err, PL_ECONFLICT, NULL, "the trainer has already written its model");
    if (t->ntexts == 0) {
        pl_err_set(err, PL_EINVAL, NULL, "no labelled texts to train \"%s\" on", path);
        /* not pl_err_hint's result: without err it is PL_EINTERNAL */
        (void)pl_err_hint(err, "Give training lines with a category, priority or sentiment.");
        return PL_EINVAL;
    }
    built_t b = {0};
    make_rows(t, &b);
    vectorise(t, &b);
    sort_labels(t, &b);
    train(t, &b);
    size_t size = 0;
    unsigned char *p = serialise(t, &b, &size);
    int rc = write_atomic(path, p, size, err);
    pl_free(p);
    built_free(&b);
    t->finished = true; /* the features were rewritten in place */
    return rc;
}
