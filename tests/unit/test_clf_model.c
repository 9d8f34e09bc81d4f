/*
 * test_clf_model: the classifier's model (clf_model): training, the model file, loading and
 * prediction.
 *
 * A small labelled set written for this test (English and Chinese complaints in three
 * categories; no text comes from any data set) is trained into files in a temporary
 * directory, which the tests load, compare, damage and predict with. The feature and
 * training options are always set here, never taken from the defaults. The file-format
 * tests know the header's layout and checksum (copied below from clf_model.c, and checked
 * against a file it wrote), so that they can forge files that pass the checksum and reach
 * the checks behind it. Everything made here is removed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clf_model.h"
#include "clf_text.h"
#include "pl_alloc.h"
#include "pl_err.h"

#include "test_util.h"

static char dir[64];

static int make_dir(void **state)
{
    strcpy(dir, "/tmp/plaint-test-clf-model-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    char cmd[128];
    clf_model_thread_cleanup();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* dir/name in buf */
static const char *path_in(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
    return buf;
}

/* ---- the training set ---- */

typedef struct example {
    const char *text;
    const char *category, *priority, *sentiment;
} example_t;

#define NEG "negative"
static const example_t TRAIN[] = {
    {"You charged me twice, I need a refund", "refund", NULL, NEG},
    {"The screen is cracked and the battery dies quickly", "quality", NULL, NULL},
    {"My parcel is late again and the courier never came", "delivery", NULL, NEG},
    {"The delivery has not arrived after two weeks", "delivery", NULL, NULL},
    {"Tracking shows no update, where is my package", "delivery", NULL, NULL},
    {"The courier left the package at the wrong address", "delivery", NULL, NEG},
    {"Shipping is so slow, the order is still in transit", "delivery", NULL, NULL},
    {"Nobody delivered my order, the driver did not come", "delivery", NULL, NULL},
    {"快递三天了还没到", "delivery", NULL, NEG},
    {"物流太慢了，包裹一直没有送到", "delivery", NULL, NULL},
    {"快递员没有送货上门，直接放在门口", "delivery", NULL, NULL},
    {"订单显示已发货，但是物流一直没有更新", "delivery", NULL, NEG},
    {"包裹送错地址了，到现在也没收到", "delivery", NULL, NULL},
    {"配送太慢，等了一个星期还没到货", "delivery", NULL, NULL},
    {"I want my money back for this order", "refund", NULL, NULL},
    {"Please refund the payment, I cancelled it", "refund", NULL, NEG},
    {"The refund has not reached my card yet", "refund", NULL, NULL},
    {"I returned the item but got no refund", "refund", NULL, NULL},
    {"Give me my money back, the refund is overdue", "refund", NULL, NEG},
    {"我要退款，钱到现在还没退回来", "refund", NULL, NULL},
    {"申请退款一个星期了没有人处理", "refund", NULL, NULL},
    {"重复扣款了，请把钱退给我", "refund", NULL, NEG},
    {"退货以后一直没收到退款", "refund", NULL, NULL},
    {"取消订单了，为什么还不退钱", "refund", NULL, NULL},
    {"退款审核太久了，钱什么时候到账", "refund", NULL, NEG},
    {"The product broke after one day, very poor quality", "quality", NULL, NULL},
    {"The shoes fell apart and the stitching is bad", "quality", NULL, NULL},
    {"The kettle leaks water and smells of plastic", "quality", NULL, NEG},
    {"The jacket tore the first time I wore it", "quality", NULL, NULL},
    {"The phone overheats and the camera is blurry", "quality", NULL, NULL},
    {"质量太差了，用了一天就坏了", "quality", NULL, NEG},
    {"屏幕有裂痕，电池也不耐用", "quality", NULL, NULL},
    {"衣服洗一次就掉色了，做工很差", "quality", NULL, NULL},
    {"鞋子开胶了，质量有问题", "quality", NULL, NEG},
    {"水壶漏水，还有一股塑料味", "quality", NULL, NULL},
    {"手机发烫，摄像头拍照模糊", "quality", NULL, NULL},
    {"Terrible, just terrible!!!", NULL, NULL, NEG}, /* counts for the idf only */
};

static const struct {
    const char *label;
    const char *text;
    const char *want;
} UNSEEN[] = {
    {"late package", "where is my package, the courier is late", "delivery"},
    {"parcel not here (zh)", "包裹还没到，物流太慢", "delivery"},
    {"money back", "please give my money back, I want a refund", "refund"},
    {"refund not paid (zh)", "退款还没到账，请尽快退钱", "refund"},
    {"broken screen", "poor quality, the screen broke after a day", "quality"},
    {"broke in two days (zh)", "质量很差，用了两天就坏了", "quality"},
};

static const char *const CATEGORIES[] = {"delivery", "quality", "refund"}; /* sorted */

static clf_train_opts_t train_opts(unsigned bits, uint64_t seed)
{
    clf_train_opts_t o;
    memset(&o, 0, sizeof o);
    o.text = (clf_text_opts_t){(uint8_t)bits, 2, 2, 4, 2, CLF_TEXT_EMOJI | CLF_TEXT_PUNCT};
    o.epochs = 30;
    o.seed = seed;
    o.learning_rate = 0.5f;
    o.l2 = 1e-5f;
    o.balance = 0.5f;
    o.min_df = 1;
    return o;
}

static void add_example(clf_trainer_t *t, const example_t *e)
{
    const char *labels[CLF_NHEADS] = {e->category, e->priority, e->sentiment};
    pl_err_t err = {0};
    int rc = clf_trainer_add(t, e->text, strlen(e->text), labels, &err);
    if (rc != 0)
        print_error("adding \"%s\": %s\n", e->text, err.message);
    assert_int_equal(rc, 0);
}

/* Trains TRAIN with opts into path; the trainer is destroyed. */
static void train_to(const clf_train_opts_t *opts, const char *path)
{
    pl_err_t err = {0};
    clf_trainer_t *t = clf_trainer_new(opts, &err);
    assert_non_null(t);
    for (size_t i = 0; i < NELEMS(TRAIN); i++)
        add_example(t, &TRAIN[i]);
    int rc = clf_trainer_finish(t, path, &err);
    if (rc != 0)
        print_error("finish: %s\n", err.message);
    assert_int_equal(rc, 0);
    clf_trainer_destroy(&t);
    assert_null(t);
}

static clf_model_t *load_ok(const char *path)
{
    pl_err_t err = {0};
    clf_model_t *m = clf_model_load(path, &err);
    if (!m)
        print_error("loading %s: %s (%s)\n", path, err.message, err.hint);
    assert_non_null(m);
    return m;
}

/* The main model (12 hash bits, so that its file is small), trained once and kept. */
static const char *main_model(void)
{
    static char path[128];
    if (!path[0]) {
        path_in(path, sizeof path, "main.model");
        clf_train_opts_t o = train_opts(12, 7);
        train_to(&o, path);
    }
    return path;
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    unsigned char *p = pl_malloc((size_t)n + 1);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    assert_int_equal(fclose(f), 0);
    *size = (size_t)n;
    return p;
}

static void write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* ---- prediction helpers ---- */

static bool guess_eq(const clf_guess_t *a, const clf_guess_t *b)
{
    for (int k = 0; k < CLF_NHEADS; k++) {
        bool same_label = a[k].label == b[k].label ||
                          (a[k].label && b[k].label && strcmp(a[k].label, b[k].label) == 0);
        if (!same_label || a[k].prob != b[k].prob || a[k].margin != b[k].margin)
            return false;
    }
    return true;
}

/* Checks predict, predict_scratch and predict_probs against each other for one text. */
static void check_consistent(const char *label, const clf_model_t *m, const char *text,
                             size_t len)
{
    clf_guess_t g[CLF_NHEADS], gs[CLF_NHEADS];
    clf_model_predict(m, text, len, g);
    clf_text_scratch_t *s = clf_text_scratch_new();
    clf_model_predict_scratch(m, s, text, len, gs);
    clf_text_scratch_destroy(&s);
    CHECK(guess_eq(g, gs), "%s: predict and predict_scratch differ\n", label);
    for (int k = 0; k < CLF_NHEADS; k++) {
        const char *const *labels;
        size_t n = clf_model_labels(m, (clf_head_t)k, &labels);
        float probs[CLF_LABELS_MAX];
        size_t np = clf_model_predict_probs(m, (clf_head_t)k, text, len, probs);
        CHECK(np == n, "%s: %s has %zu labels but %zu probabilities\n", label,
              clf_head_name((clf_head_t)k), n, np);
        if (n == 0) {
            CHECK(g[k].label == NULL && g[k].prob == 0.0f && g[k].margin == 0.0f,
                  "%s: absent head %s gives a guess\n", label, clf_head_name((clf_head_t)k));
            continue;
        }
        double sum = 0.0;
        size_t best = 0;
        for (size_t i = 0; i < np; i++) {
            CHECK(probs[i] >= 0.0f && probs[i] <= 1.0f, "%s: probability %g\n", label,
                  (double)probs[i]);
            sum += probs[i];
            if (probs[i] > probs[best])
                best = i;
        }
        float second = 0.0f;
        for (size_t i = 0; i < np; i++)
            if (i != best && probs[i] > second)
                second = probs[i];
        CHECK(fabs(sum - 1.0) < 1e-5, "%s: %s probabilities sum to %.7f\n", label,
              clf_head_name((clf_head_t)k), sum);
        CHECK(g[k].label && strcmp(g[k].label, labels[best]) == 0 && g[k].prob == probs[best] &&
                  fabsf(g[k].margin - (probs[best] - second)) < 1e-6f,
              "%s: %s guess %s %g %g, probabilities say %s %g %g\n", label,
              clf_head_name((clf_head_t)k), g[k].label ? g[k].label : "NULL",
              (double)g[k].prob, (double)g[k].margin, labels[best], (double)probs[best],
              (double)(probs[best] - second));
        if (n == 1)
            CHECK(g[k].prob == 1.0f, "%s: single-label %s has prob %g\n", label,
                  clf_head_name((clf_head_t)k), (double)g[k].prob);
    }
}

/* ---- learning ---- */

static void test_learns(void **state)
{
    clf_model_t *m = load_ok(main_model());
    failures = 0;
    for (size_t i = 0; i < NELEMS(TRAIN); i++) {
        clf_guess_t g[CLF_NHEADS];
        clf_model_predict(m, TRAIN[i].text, strlen(TRAIN[i].text), g);
        check_consistent(TRAIN[i].text, m, TRAIN[i].text, strlen(TRAIN[i].text));
        if (!TRAIN[i].category)
            continue;
        CHECK(g[CLF_HEAD_CATEGORY].label &&
                  strcmp(g[CLF_HEAD_CATEGORY].label, TRAIN[i].category) == 0 &&
                  g[CLF_HEAD_CATEGORY].prob > 0.5f,
              "training text \"%s\": got %s %.3f, want %s\n", TRAIN[i].text,
              g[CLF_HEAD_CATEGORY].label ? g[CLF_HEAD_CATEGORY].label : "NULL",
              (double)g[CLF_HEAD_CATEGORY].prob, TRAIN[i].category);
    }
    for (size_t i = 0; i < NELEMS(UNSEEN); i++) {
        clf_guess_t g[CLF_NHEADS];
        clf_model_predict(m, UNSEEN[i].text, strlen(UNSEEN[i].text), g);
        check_consistent(UNSEEN[i].label, m, UNSEEN[i].text, strlen(UNSEEN[i].text));
        const char *got = g[CLF_HEAD_CATEGORY].label;
        CHECK(got && strcmp(got, UNSEEN[i].want) == 0, "unseen %s: got %s %.3f, want %s\n",
              UNSEEN[i].label, got ? got : "NULL", (double)g[CLF_HEAD_CATEGORY].prob,
              UNSEEN[i].want);
        /* priority was never labelled; sentiment has one label */
        CHECK(g[CLF_HEAD_PRIORITY].label == NULL && g[CLF_HEAD_PRIORITY].prob == 0.0f &&
                  g[CLF_HEAD_PRIORITY].margin == 0.0f,
              "unseen %s: absent priority head gives %s\n", UNSEEN[i].label,
              g[CLF_HEAD_PRIORITY].label ? g[CLF_HEAD_PRIORITY].label : "a probability");
        CHECK(g[CLF_HEAD_SENTIMENT].label && strcmp(g[CLF_HEAD_SENTIMENT].label, NEG) == 0 &&
                  g[CLF_HEAD_SENTIMENT].prob == 1.0f,
              "unseen %s: the single sentiment label comes with prob %g\n", UNSEEN[i].label,
              (double)g[CLF_HEAD_SENTIMENT].prob);
    }
    /* texts with nothing the model knows, or nothing at all */
    static const struct {
        const char *label;
        const char *text;
        size_t len;
    } odd[] = {
        {"empty", "", 0}, {"spaces", "   ", 3}, {"invalid UTF-8", "\xFF\xC0\xAF\xE4\xB8", 5},
        {"NULs", "\0\0", 2}, {"emoji only", "😡😡😡", 12}, {"unknown script", "ᚠᚢᚦ", 9},
    };
    for (size_t i = 0; i < NELEMS(odd); i++)
        check_consistent(odd[i].label, m, odd[i].text, odd[i].len);
    float probs[CLF_LABELS_MAX];
    CHECK(clf_model_predict_probs(m, CLF_HEAD_PRIORITY, "late", 4, probs) == 0,
          "absent head: predict_probs gives probabilities\n");
    clf_model_destroy(&m);
    assert_null(m);
    clf_model_destroy(&m); /* NULL-safe */
    clf_model_destroy(NULL);
    assert_int_equal(failures, 0);
}

/* Texts whose buckets were never seen in training are dropped: the same as an empty text. */
static void test_unseen_buckets(void **state)
{
    clf_model_t *m = load_ok(main_model());
    clf_model_info_t info;
    clf_model_info(m, &info);
    /* the buckets of the training set, to make sure the probe text shares none */
    uint8_t *seen = pl_calloc((size_t)1 << info.text.hash_bits, 1);
    clf_text_scratch_t *s = clf_text_scratch_new();
    const clf_feat_t *f;
    for (size_t i = 0; i < NELEMS(TRAIN); i++) {
        size_t n = clf_text_features(&info.text, TRAIN[i].text, strlen(TRAIN[i].text), s, &f);
        for (size_t k = 0; k < n; k++)
            seen[f[k].index] = 1;
    }
    const char *probe = "뷁";
    size_t n = clf_text_features(&info.text, probe, strlen(probe), s, &f);
    assert_true(n > 0);
    for (size_t k = 0; k < n; k++)
        assert_false(seen[f[k].index]); /* else pick another probe */
    float a[CLF_LABELS_MAX], b[CLF_LABELS_MAX];
    size_t na = clf_model_predict_probs(m, CLF_HEAD_CATEGORY, probe, strlen(probe), a);
    size_t nb = clf_model_predict_probs(m, CLF_HEAD_CATEGORY, "", 0, b);
    assert_int_equal(na, 3);
    assert_int_equal(nb, 3);
    assert_memory_equal(a, b, na * sizeof *a);
    clf_text_scratch_destroy(&s);
    pl_free(seen);
    clf_model_destroy(&m);
}

/* ---- the model file ---- */

/* Buckets of the training set in at least min_df texts: the rows a model should have. */
static uint32_t expected_rows(const clf_text_opts_t *o, unsigned min_df)
{
    uint32_t *df = pl_calloc((size_t)1 << o->hash_bits, sizeof *df);
    clf_text_scratch_t *s = clf_text_scratch_new();
    for (size_t i = 0; i < NELEMS(TRAIN); i++) {
        const clf_feat_t *f;
        size_t n = clf_text_features(o, TRAIN[i].text, strlen(TRAIN[i].text), s, &f);
        for (size_t k = 0; k < n; k++)
            df[f[k].index]++;
    }
    uint32_t rows = 0;
    for (size_t b = 0; b < ((size_t)1 << o->hash_bits); b++)
        rows += df[b] >= min_df;
    clf_text_scratch_destroy(&s);
    pl_free(df);
    return rows;
}

static void check_same_predictions(const char *label, const clf_model_t *a, const clf_model_t *b)
{
    for (size_t i = 0; i < NELEMS(TRAIN) + NELEMS(UNSEEN); i++) {
        const char *text = i < NELEMS(TRAIN) ? TRAIN[i].text : UNSEEN[i - NELEMS(TRAIN)].text;
        clf_guess_t ga[CLF_NHEADS], gb[CLF_NHEADS];
        clf_model_predict(a, text, strlen(text), ga);
        clf_model_predict(b, text, strlen(text), gb);
        float pa[CLF_LABELS_MAX], pb[CLF_LABELS_MAX];
        size_t na = clf_model_predict_probs(a, CLF_HEAD_CATEGORY, text, strlen(text), pa);
        size_t nb = clf_model_predict_probs(b, CLF_HEAD_CATEGORY, text, strlen(text), pb);
        CHECK(guess_eq(ga, gb) && na == nb && memcmp(pa, pb, na * sizeof *pa) == 0,
              "%s: \"%s\" is predicted differently\n", label, text);
    }
}

static void test_round_trip(void **state)
{
    char pa[128], pb[128], pc[128];
    const clf_train_opts_t o = train_opts(12, 7);
    path_in(pa, sizeof pa, "a.model");
    path_in(pb, sizeof pb, "b.model");
    path_in(pc, sizeof pc, "c.model");
    train_to(&o, pa);
    train_to(&o, pb);
    size_t sa, sb;
    unsigned char *ba = read_all(pa, &sa), *bb = read_all(pb, &sb);
    /* deterministic: the same data, options and seed give the same bytes */
    assert_int_equal(sa, sb);
    assert_memory_equal(ba, bb, sa);
    assert_memory_equal(ba, CLF_MODEL_MAGIC, 8);
    write_all(pc, ba, sa); /* a copy elsewhere loads the same */
    clf_model_t *ma = load_ok(pa), *mb = load_ok(pb), *mc = load_ok(pc), *ma2 = load_ok(pa);
    failures = 0;
    check_same_predictions("two trainings", ma, mb);
    check_same_predictions("a copy", ma, mc);
    check_same_predictions("loaded twice", ma, ma2);

    clf_model_info_t info;
    clf_model_info(ma, &info);
    CHECK(memcmp(&info.text, &o.text, sizeof o.text) == 0, "info: other feature options\n");
    CHECK(info.texts == NELEMS(TRAIN), "info: %u texts, want %zu\n", info.texts, NELEMS(TRAIN));
    CHECK(info.file_bytes == sa, "info: %zu bytes, want %zu\n", info.file_bytes, sa);
    uint32_t want_rows = expected_rows(&o.text, 1);
    CHECK(info.rows == want_rows, "info: %u rows, want %u\n", info.rows, want_rows);

    const char *const *labels;
    size_t n = clf_model_labels(ma, CLF_HEAD_CATEGORY, &labels);
    CHECK(n == 3, "%zu category labels\n", n);
    for (size_t i = 0; i < n && i < 3; i++)
        CHECK(strcmp(labels[i], CATEGORIES[i]) == 0, "category label %zu is %s, want %s\n", i,
              labels[i], CATEGORIES[i]);
    n = clf_model_labels(ma, CLF_HEAD_PRIORITY, &labels);
    CHECK(n == 0 && labels == NULL, "absent priority head has %zu labels\n", n);
    n = clf_model_labels(ma, CLF_HEAD_SENTIMENT, &labels);
    CHECK(n == 1 && strcmp(labels[0], NEG) == 0, "sentiment has %zu labels\n", n);

    /* min_df 2: only buckets of two or more texts get a row */
    clf_train_opts_t o2 = o;
    o2.min_df = 2;
    train_to(&o2, pc); /* over the copy, which mc still maps */
    clf_model_t *md = load_ok(pc);
    clf_model_info(md, &info);
    want_rows = expected_rows(&o.text, 2);
    CHECK(info.rows == want_rows && want_rows < expected_rows(&o.text, 1),
          "min_df 2: %u rows, want %u\n", info.rows, want_rows);
    /* a model mapped before its file was replaced keeps working (the file is renamed over,
     * not rewritten) */
    check_same_predictions("replaced file", ma, mc);

    clf_model_destroy(&ma);
    clf_model_destroy(&mb);
    clf_model_destroy(&mc);
    clf_model_destroy(&ma2);
    clf_model_destroy(&md);
    pl_free(ba);
    pl_free(bb);
    /* nothing but the models is left in the directory (no temporary files) */
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        CHECK(e->d_name[0] == '.' || strstr(e->d_name, ".tmp") == NULL,
              "left behind: %s\n", e->d_name);
    closedir(d);
    assert_int_equal(unlink(pb), 0);
    assert_int_equal(unlink(pc), 0);
    assert_int_equal(unlink(pa), 0);
    assert_int_equal(failures, 0);
}

/* Labels: first-seen order with counts in the trainer, sorted bytewise in the model. */
static void test_labels(void **state)
{
    static const example_t set[] = {
        {"refund please", "退款", "P3", NULL},   {"zebra crossing", "Zebra", "P1", NULL},
        {"green apple", "apple", "P3", NULL},    {"Äpfel und Birnen", "Äpfel", "P2", NULL},
        {"more refund", "退款", NULL, "calm"},   {"another apple", "apple", "P3", NULL},
    };
    static const char *const first_seen[] = {"退款", "Zebra", "apple", "Äpfel"};
    static const size_t counts_want[] = {2, 1, 2, 1};
    static const char *const sorted[] = {"Zebra", "apple", "Äpfel", "退款"};
    static const char *const prio_sorted[] = {"P1", "P2", "P3"};
    pl_err_t err = {0};
    clf_train_opts_t o = train_opts(12, 3);
    clf_trainer_t *t = clf_trainer_new(&o, &err);
    assert_non_null(t);
    for (size_t i = 0; i < NELEMS(set); i++)
        add_example(t, &set[i]);
    /* labels are copied: the caller's buffer may change afterwards */
    char mine[16] = "calm";
    const char *mine_labels[CLF_NHEADS] = {NULL, NULL, mine};
    assert_int_equal(clf_trainer_add(t, "calm words", 10, mine_labels, &err), 0);
    strcpy(mine, "XXXX");
    assert_int_equal(clf_trainer_texts(t), NELEMS(set) + 1);
    char path[128];
    path_in(path, sizeof path, "labels.model");
    assert_int_equal(clf_trainer_finish(t, path, &err), 0);
    failures = 0;
    /* still readable after finish */
    const char *const *names;
    const size_t *counts;
    size_t n = clf_trainer_labels(t, CLF_HEAD_CATEGORY, &names, &counts);
    CHECK(n == NELEMS(first_seen), "trainer: %zu category labels\n", n);
    for (size_t i = 0; i < n && i < NELEMS(first_seen); i++)
        CHECK(strcmp(names[i], first_seen[i]) == 0 && counts[i] == counts_want[i],
              "trainer label %zu: got %s x%zu, want %s x%zu\n", i, names[i], counts[i],
              first_seen[i], counts_want[i]);
    n = clf_trainer_labels(t, CLF_HEAD_SENTIMENT, &names, &counts);
    CHECK(n == 1 && strcmp(names[0], "calm") == 0 && counts[0] == 2, "trainer sentiment\n");
    clf_trainer_destroy(&t);

    clf_model_t *m = load_ok(path);
    n = clf_model_labels(m, CLF_HEAD_CATEGORY, &names);
    CHECK(n == NELEMS(sorted), "model: %zu category labels\n", n);
    for (size_t i = 0; i < n && i < NELEMS(sorted); i++)
        CHECK(strcmp(names[i], sorted[i]) == 0, "model label %zu: got %s, want %s\n", i,
              names[i], sorted[i]);
    n = clf_model_labels(m, CLF_HEAD_PRIORITY, &names);
    CHECK(n == 3, "model: %zu priority labels\n", n);
    for (size_t i = 0; i < n && i < 3; i++)
        CHECK(strcmp(names[i], prio_sorted[i]) == 0, "priority label %zu: got %s, want %s\n",
              i, names[i], prio_sorted[i]);
    for (size_t i = 0; i < NELEMS(set); i++)
        check_consistent(set[i].text, m, set[i].text, strlen(set[i].text));
    clf_model_destroy(&m);
    CHECK(strcmp(clf_head_name(CLF_HEAD_CATEGORY), "category") == 0 &&
              strcmp(clf_head_name(CLF_HEAD_PRIORITY), "priority") == 0 &&
              strcmp(clf_head_name(CLF_HEAD_SENTIMENT), "sentiment") == 0,
          "head names\n");
    assert_int_equal(failures, 0);
}

/* ---- loading bad files ---- */

/* The header as clf_model.c lays it out (little-endian, no padding). */
typedef struct header {
    char magic[8];
    uint32_t version, header_bytes;
    uint64_t file_bytes;
    uint8_t text[8];
    uint32_t nrows, ncols, nlabels[CLF_NHEADS], ntexts;
    uint64_t labels_off, labels_bytes, rowmap_off, idf_off, bias_off, weights_off;
    uint64_t reserved[3];
} header_t;
_Static_assert(sizeof(header_t) == 128, "the model header is 128 bytes");

/* A load that must fail: NULL, and err names the path, says why and gives a hint; with
 * also_without_err, a load without err (which is optional) fails too. */
static void check_load_fails_err(const char *label, const char *path, bool also_without_err)
{
    pl_err_t err = {0};
    clf_model_t *m = clf_model_load(path, &err);
    CHECK(m == NULL && err.code < 0 && strstr(err.message, path) && err.hint[0],
          "%s: got %s, code %d, \"%s\", hint \"%s\"\n", label, m ? "a model" : "NULL", err.code,
          err.message, err.hint);
    clf_model_destroy(&m);
    if (!also_without_err)
        return;
    m = clf_model_load(path, NULL);
    CHECK(m == NULL, "%s: loads without err\n", label);
    clf_model_destroy(&m);
}

static void check_load_fails(const char *label, const char *path)
{
    check_load_fails_err(label, path, true);
}

/* Whether a file cut to len bytes is in the sample of prefixes tried: every length in the
 * first KiB (header, labels, the start of the rowmap), every length next to a section's
 * start and in the last 256 bytes (the end of the weights and the checksum), and every
 * 17th length in between. */
static bool prefix_sampled(const unsigned char *good, size_t size, size_t len)
{
    header_t h;
    memcpy(&h, good, sizeof h);
    const uint64_t starts[] = {h.labels_off, h.rowmap_off, h.idf_off, h.bias_off,
                               h.weights_off, size - 8};
    if (len < 1024 || len + 256 >= size || len % 17 == 0)
        return true;
    for (size_t i = 0; i < NELEMS(starts); i++)
        if (len + 2 >= starts[i] && len <= starts[i] + 2)
            return true;
    return false;
}

static void test_load_bad_files(void **state)
{
    size_t size;
    unsigned char *good = read_all(main_model(), &size);
    char path[128], text_bytes[600];
    path_in(path, sizeof path, "bad.model");
    failures = 0;

    char missing[128];
    check_load_fails("missing file", path_in(missing, sizeof missing, "nowhere.model"));
    check_load_fails("missing directory", path_in(missing, sizeof missing, "no/such.model"));
    check_load_fails("a directory", dir);

    static const struct {
        const char *label;
        const char *bytes;
        size_t len;
    } foreign[] = {
        {"empty file", "", 0},
        {"the magic alone", CLF_MODEL_MAGIC, 8},
        {"a short text file", "category,text\nrefund,give me my money\n", 38},
        {"a JSON file", "{\"model\": \"PLAINTM1\"}\n", 22},
    };
    for (size_t i = 0; i < NELEMS(foreign); i++) {
        write_all(path, foreign[i].bytes, foreign[i].len);
        check_load_fails(foreign[i].label, path);
    }
    for (size_t i = 0; i < sizeof text_bytes; i++)
        text_bytes[i] = "a long text file, one line after another\n"[i % 41];
    write_all(path, text_bytes, sizeof text_bytes);
    check_load_fails("a long text file", path);

    unsigned char *p = pl_malloc(size + 64);
    /* wrong magic, wrong version, trailing bytes */
    memcpy(p, good, size);
    p[7] = '2';
    write_all(path, p, size);
    check_load_fails("magic PLAINTM2", path);
    memcpy(p, good, size);
    memcpy(p, "PK\x03\x04", 4);
    write_all(path, p, size);
    check_load_fails("a zip file's magic", path);
    static const uint32_t versions[] = {0, 2, CLF_MODEL_VERSION + 1, UINT32_MAX};
    for (size_t i = 0; i < NELEMS(versions); i++) {
        memcpy(p, good, size);
        memcpy(p + 8, &versions[i], 4);
        write_all(path, p, size);
        char label[64];
        snprintf(label, sizeof label, "version %u", versions[i]);
        check_load_fails(label, path);
    }
    memcpy(p, good, size);
    memset(p + size, 0, 64);
    write_all(path, p, size + 1);
    check_load_fails("one trailing byte", path);
    write_all(path, p, size + 64);
    check_load_fails("64 trailing bytes", path);

    /* flipped bytes: every byte of the header and the labels, then a sample, and the
     * checksum; one flipped bit too */
    for (size_t i = 0; i < size; i += i < 256 ? 1 : i + 64 < size ? 61 : 1) {
        memcpy(p, good, size);
        p[i] ^= 0xFF;
        write_all(path, p, size);
        char label[64];
        snprintf(label, sizeof label, "byte %zu flipped", i);
        check_load_fails(label, path);
        p[i] ^= 0xFE;
        write_all(path, p, size);
        snprintf(label, sizeof label, "bit 0 of byte %zu flipped", i);
        check_load_fails(label, path);
    }
    pl_free(p);

    /* prefixes: the file is cut shorter and shorter in place */
    write_all(path, good, size);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    size_t tried = 0;
    for (size_t len = size; len-- > 0;) {
        if (!prefix_sampled(good, size, len))
            continue;
        assert_int_equal(ftruncate(fd, (off_t)len), 0);
        char label[64];
        snprintf(label, sizeof label, "truncated to %zu of %zu bytes", len, size);
        check_load_fails_err(label, path, len % 8 == 0);
        tried++;
    }
    assert_int_equal(close(fd), 0);
    assert_true(tried > 3000);
    assert_int_equal(unlink(path), 0);
    pl_free(good);
    assert_int_equal(failures, 0);
}

/* ---- forged files: past the checksum, into the checks behind it ---- */


/* clf_model.c's checksum, so that a forged file passes it; test_forged_files first checks
 * that it reproduces the checksum of a file clf_model wrote. */
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

static void reseal(unsigned char *p, size_t size)
{
    uint64_t sum = checksum(p, size - 8);
    memcpy(p + size - 8, &sum, 8);
}

enum { F_SET, F_ADD, F_IDF, F_BIAS, F_WEIGHT, F_ROWMAP, F_LABELS };
#define FIELD(f) .off = offsetof(header_t, f), .width = sizeof(((header_t *)0)->f)
#define SET(f, v) {.kind = F_SET, FIELD(f), .value = (v)}
#define ADD(f, v) {.kind = F_ADD, FIELD(f), .value = (v)}
#define OPT(i, v) {.kind = F_SET, .off = offsetof(header_t, text) + (i), .width = 1, .value = (v)}
#define NUM(k, i, x) {.kind = (k), .off = (i), .f = (x)}
#define ROWMAP(v) {.kind = F_ROWMAP, .value = (v)}
#define LABELS(i, str) {.kind = F_LABELS, .off = (i), .width = sizeof(str) - 1, .s = (str)}

typedef struct forgery {
    int kind;
    size_t off;    /* F_SET, F_ADD: a header field; else an index into the section */
    size_t width;  /* F_SET, F_ADD: the field's; F_LABELS: bytes of s */
    int64_t value; /* F_SET, F_ADD: the value or what to add; F_ROWMAP: see apply_forgery */
    float f;       /* F_IDF, F_BIAS, F_WEIGHT */
    const char *s; /* F_LABELS: bytes written over the labels at off */
} forgery_t;

static void apply_forgery(unsigned char *p, const forgery_t *g)
{
    header_t h;
    memcpy(&h, p, sizeof h);
    uint64_t v = 0;
    switch (g->kind) {
    case F_SET:
    case F_ADD:
        memcpy(&v, p + g->off, g->width);
        v = g->kind == F_SET ? (uint64_t)g->value : v + (uint64_t)g->value;
        memcpy(p + g->off, &v, g->width); /* little-endian: the low bytes */
        break;
    case F_IDF:
        memcpy(p + h.idf_off + 4 * g->off, &g->f, 4);
        break;
    case F_BIAS:
        memcpy(p + h.bias_off + 4 * g->off, &g->f, 4);
        break;
    case F_WEIGHT: /* off counts from the end */
        memcpy(p + h.weights_off + 4 * ((uint64_t)h.nrows * h.ncols - 1 - g->off), &g->f, 4);
        break;
    case F_ROWMAP: { /* the first bucket with a row gets nrows + value, or -value - 1 */
        size_t b = 0;
        uint32_t r;
        for (;; b++) {
            memcpy(&r, p + h.rowmap_off + 4 * b, 4);
            if (r != UINT32_MAX)
                break;
        }
        r = g->value >= 0 ? (uint32_t)(h.nrows + g->value) : (uint32_t)(-g->value - 1);
        memcpy(p + h.rowmap_off + 4 * b, &r, 4);
        break;
    }
    case F_LABELS:
        memcpy(p + h.labels_off + g->off, g->s, g->width);
        break;
    }
}

static void test_forged_files(void **state)
{
    /* a model with category labels late, lost, rude and sentiment angry, calm */
    static const example_t set[] = {
        {"parcel late", "late", NULL, "angry"}, {"parcel lost", "lost", NULL, "calm"},
        {"rude driver", "rude", NULL, "angry"}, {"very late", "late", NULL, NULL},
    };
    static const struct {
        const char *label;
        forgery_t g[2];
    } cases[] = {
        {"wrong magic", {SET(magic[0], 'Q')}},
        {"version 2", {SET(version, 2)}},
        {"version 0", {SET(version, 0)}},
        {"header size 64", {SET(header_bytes, 64)}},
        {"header size 0", {SET(header_bytes, 0)}},
        {"file size 8 more", {ADD(file_bytes, 8)}},
        {"file size 8 less", {ADD(file_bytes, -8)}},
        {"file size huge", {SET(file_bytes, INT64_MAX)}},
        {"hash bits 11", {OPT(0, 11)}},
        {"hash bits 25", {OPT(0, 25)}},
        {"hash bits 0", {OPT(0, 0)}},
        {"hash bits 255", {OPT(0, 255)}},
        {"hash bits 13 (rowmap larger than written)", {OPT(0, 13)}},
        {"word n-grams 3", {OPT(1, 3)}},
        {"char_max 7", {OPT(3, 7)}},
        {"char_min above char_max", {OPT(2, 5)}},
        {"CJK 4-grams", {OPT(4, 4)}},
        {"unknown flag", {OPT(5, 0x80)}},
        {"no columns", {SET(ncols, 0)}},
        {"one column more", {ADD(ncols, 1)}},
        {"one column less", {ADD(ncols, -1)}},
        {"a head with 257 labels", {SET(nlabels[0], CLF_LABELS_MAX + 1)}},
        {"a head with 2^32-1 labels", {SET(nlabels[1], UINT32_MAX)}},
        {"257 labels, columns to match",
         {SET(nlabels[0], CLF_LABELS_MAX + 1), ADD(ncols, CLF_LABELS_MAX + 1 - 3)}},
        {"a label more, columns to match",
         {ADD(nlabels[1], 1), ADD(ncols, 1)}},
        {"a label less, columns to match",
         {ADD(nlabels[0], -1), ADD(ncols, -1)}},
        {"no heads at all",
         {SET(nlabels[0], 0), SET(nlabels[2], 0)}},
        {"more rows than buckets", {SET(nrows, (1 << 12) + 1)}},
        {"rows 2^32-1", {SET(nrows, UINT32_MAX)}},
        {"one row more", {ADD(nrows, 1)}},
        {"one row less", {ADD(nrows, -1)}},
        {"no rows", {SET(nrows, 0)}},
        {"labels inside the header", {SET(labels_off, 0)}},
        {"labels unaligned", {ADD(labels_off, 1)}},
        {"labels past the end", {SET(labels_off, INT64_MAX - 3)}},
        {"labels size huge", {SET(labels_bytes, -1)}},
        {"labels one byte short", {ADD(labels_bytes, -1)}},
        {"labels one byte long", {ADD(labels_bytes, 1)}},
        {"labels size 0", {SET(labels_bytes, 0)}},
        {"rowmap over the labels", {SET(rowmap_off, 128)}},
        {"rowmap at the end", {ADD(rowmap_off, 1 << 20)}},
        {"rowmap offset wraps", {SET(rowmap_off, -4)}},
        {"rowmap unaligned", {ADD(rowmap_off, 2)}},
        {"idf over the rowmap", {ADD(idf_off, -64)}},
        {"idf offset wraps", {SET(idf_off, -64)}},
        {"bias past the end", {ADD(bias_off, 1 << 20)}},
        {"bias over the idf", {SET(bias_off, 128)}},
        {"weights unaligned", {ADD(weights_off, 2)}},
        {"weights past the end", {ADD(weights_off, 64)}},
        {"weights offset wraps", {SET(weights_off, -8)}},
        {"idf 0", {NUM(F_IDF, 0, 0.0f)}},
        {"idf negative", {NUM(F_IDF, 0, -1.0f)}},
        {"idf NaN", {NUM(F_IDF, 1, NAN)}},
        {"idf infinite", {NUM(F_IDF, 2, INFINITY)}},
        {"bias NaN", {NUM(F_BIAS, 0, NAN)}},
        {"bias -infinity", {NUM(F_BIAS, 4, -INFINITY)}},
        {"weight NaN", {NUM(F_WEIGHT, 0, NAN)}},
        {"weight infinite", {NUM(F_WEIGHT, 7, INFINITY)}},
        {"rowmap row = nrows", {ROWMAP(0)}},
        {"rowmap row far out", {ROWMAP(1000000)}},
        {"rowmap row 0xFFFFFFFE", {ROWMAP(-0xFFFFFFFFLL)}},
        {"empty first label", {LABELS(0, "\0")}},
        {"unsorted labels", {LABELS(0, "zzzz")}},
        {"duplicate labels", {LABELS(5, "late")}},
        {"labels run together", {LABELS(4, "x")}},
        {"label not UTF-8", {LABELS(1, "\xFF")}},
        {"label with a truncated sequence", {LABELS(3, "\xE4")}},
        {"label with an overlong form", {LABELS(1, "\xC0\xA1")}},
        {"last label unterminated", {LABELS(25, "!")}},
    };
    char path[128], bad[128];
    path_in(path, sizeof path, "forge.model");
    path_in(bad, sizeof bad, "forged.model");
    pl_err_t err = {0};
    clf_train_opts_t o = train_opts(12, 5);
    clf_trainer_t *t = clf_trainer_new(&o, &err);
    assert_non_null(t);
    for (size_t i = 0; i < NELEMS(set); i++)
        add_example(t, &set[i]);
    assert_int_equal(clf_trainer_finish(t, path, &err), 0);
    clf_trainer_destroy(&t);
    size_t size;
    unsigned char *good = read_all(path, &size), *p = pl_malloc(size);
    /* the labels section is "late\0lost\0rude\0angry\0calm\0" (26 bytes) */
    header_t h;
    memcpy(&h, good, sizeof h);
    assert_int_equal(h.labels_bytes, 26);
    assert_memory_equal(good + h.labels_off, "late\0lost\0rude\0angry\0calm\0", 26);
    /* the copied checksum is clf_model's: resealing changes nothing, and the file loads */
    memcpy(p, good, size);
    reseal(p, size);
    assert_memory_equal(p, good, size);
    write_all(bad, p, size);
    clf_model_t *m = load_ok(bad);
    clf_model_destroy(&m);

    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        memcpy(p, good, size);
        for (size_t k = 0; k < NELEMS(cases[i].g); k++)
            if (cases[i].g[k].width || cases[i].g[k].kind != F_SET)
                apply_forgery(p, &cases[i].g[k]);
        assert_memory_not_equal(p, good, size);
        reseal(p, size);
        write_all(bad, p, size);
        check_load_fails(cases[i].label, bad);
    }
    assert_int_equal(unlink(bad), 0);
    assert_int_equal(unlink(path), 0);
    pl_free(p);
    pl_free(good);
    assert_int_equal(failures, 0);
}

/* ---- the documented arithmetic ---- */

/* Recomputes the probabilities from the file's sections as the header describes them:
 * x = (1 + ln tf) * idf over the buckets with a row, L2-normalised; a softmax per head of
 * bias + W x; the heads' columns side by side, in head order. */
static void test_prediction_formula(void **state)
{
    size_t size;
    unsigned char *p = read_all(main_model(), &size);
    header_t h;
    memcpy(&h, p, sizeof h);
    const clf_text_opts_t o = {h.text[0], h.text[1], h.text[2], h.text[3], h.text[4], h.text[5]};
    clf_model_t *m = load_ok(main_model());
    clf_text_scratch_t *s = clf_text_scratch_new();
    static const char *const texts[] = {
        "refund refund refund, my money back!!", "快递快递 三天没到 😡", "late", "",
        "The kettle leaks water and smells of plastic",
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(texts); i++) {
        const clf_feat_t *f;
        size_t n = clf_text_features(&o, texts[i], strlen(texts[i]), s, &f);
        double x2 = 0.0, score[CLF_NHEADS * CLF_LABELS_MAX] = {0};
        for (size_t k = 0; k < n; k++) {
            uint32_t row;
            memcpy(&row, p + h.rowmap_off + 4 * (size_t)f[k].index, 4);
            if (row == UINT32_MAX)
                continue;
            float idf;
            memcpy(&idf, p + h.idf_off + 4 * (size_t)row, 4);
            double v = (1.0 + log(f[k].value)) * idf;
            x2 += v * v;
            for (size_t c = 0; c < h.ncols; c++) {
                float w;
                memcpy(&w, p + h.weights_off + 4 * ((size_t)row * h.ncols + c), 4);
                score[c] += v * w;
            }
        }
        for (size_t c = 0; c < h.ncols; c++) {
            float b;
            memcpy(&b, p + h.bias_off + 4 * c, 4);
            score[c] = b + (x2 > 0.0 ? score[c] / sqrt(x2) : 0.0);
        }
        for (size_t k = 0, col = 0; k < CLF_NHEADS; col += h.nlabels[k], k++) {
            float probs[CLF_LABELS_MAX];
            size_t np = clf_model_predict_probs(m, (clf_head_t)k, texts[i], strlen(texts[i]),
                                                probs);
            CHECK(np == h.nlabels[k], "text %zu: %zu probabilities for head %zu\n", i, np, k);
            double max = -INFINITY, sum = 0.0;
            for (size_t c = 0; c < np; c++)
                max = score[col + c] > max ? score[col + c] : max;
            for (size_t c = 0; c < np; c++)
                sum += exp(score[col + c] - max);
            for (size_t c = 0; c < np; c++) {
                double want = exp(score[col + c] - max) / sum;
                CHECK(fabs(probs[c] - want) < 1e-5, "text %zu head %zu class %zu: got %.6f, "
                      "want %.6f\n", i, k, c, (double)probs[c], want);
            }
        }
    }
    clf_text_scratch_destroy(&s);
    clf_model_destroy(&m);
    pl_free(p);
    assert_int_equal(failures, 0);
}

/* ---- training errors ---- */

static void test_trainer_errors(void **state)
{
    static const char L64[] = "0123456789012345678901234567890123456789012345678901234567890123";
    static const char L65[] = "01234567890123456789012345678901234567890123456789012345678901234";
    static const struct {
        const char *label;
        const char *labels[CLF_NHEADS];
        int want;
        const char *want_path; /* NULL: not checked */
    } cases[] = {
        {"no label", {NULL, NULL, NULL}, PL_EINVAL, NULL},
        {"empty category", {"", NULL, NULL}, PL_EINVAL, "category"},
        {"empty priority", {"refund", "", NULL}, PL_EINVAL, "priority"},
        {"empty sentiment", {NULL, NULL, ""}, PL_EINVAL, "sentiment"},
        {"label of 65 bytes", {NULL, L65, NULL}, PL_EINVAL, "priority"},
        {"label of 64 bytes", {NULL, L64, NULL}, 0, NULL},
        {"CJK label of 66 bytes", {"投诉投诉投诉投诉投诉投诉投诉投诉投诉投诉投诉", NULL, NULL},
         PL_EINVAL, "category"},
        {"CJK label", {"物流", NULL, NULL}, 0, NULL},
        {"label 0xFF", {"\xFF", NULL, NULL}, PL_EINVAL, "category"},
        {"label with a truncated sequence", {"退\xE6", NULL, NULL}, PL_EINVAL, "category"},
        {"label with a lone continuation byte", {NULL, NULL, "ok\x80"}, PL_EINVAL, "sentiment"},
        {"overlong label", {"\xC0\xAF", NULL, NULL}, PL_EINVAL, "category"},
        {"surrogate label", {NULL, "\xED\xA0\x80", NULL}, PL_EINVAL, "priority"},
        {"good category, bad sentiment", {"brand-new", NULL, "\xFE"}, PL_EINVAL, "sentiment"},
        {"all three heads", {"refund", "P1", "angry"}, 0, NULL},
        {"one head", {NULL, "P2", NULL}, 0, NULL},
    };
    pl_err_t err;
    clf_train_opts_t o = train_opts(12, 1);
    clf_trainer_t *t = clf_trainer_new(&o, &err);
    assert_non_null(t);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        size_t texts = clf_trainer_texts(t), before[CLF_NHEADS];
        const char *const *names;
        const size_t *counts;
        for (int k = 0; k < CLF_NHEADS; k++)
            before[k] = clf_trainer_labels(t, (clf_head_t)k, &names, &counts);
        memset(&err, 0, sizeof err);
        const char *text = "the parcel is late";
        int rc = clf_trainer_add(t, text, strlen(text), cases[i].labels, &err);
        bool ok = rc == cases[i].want;
        if (rc != 0)
            ok = ok && err.code == rc && err.message[0] &&
                 (!cases[i].want_path || strcmp(err.path, cases[i].want_path) == 0);
        /* the trainer is unchanged on error */
        size_t want_texts = texts + (rc == 0);
        ok = ok && clf_trainer_texts(t) == want_texts;
        for (int k = 0; k < CLF_NHEADS && rc != 0; k++)
            ok = ok && clf_trainer_labels(t, (clf_head_t)k, &names, &counts) == before[k];
        CHECK(ok, "%s: got %d [%s] \"%s\", %zu texts; want %d [%s]\n", cases[i].label, rc,
              err.path, err.message, clf_trainer_texts(t), cases[i].want,
              cases[i].want_path ? cases[i].want_path : "");
    }
    /* brand-new was not kept by the failed add */
    const char *const *names;
    const size_t *counts;
    size_t n = clf_trainer_labels(t, CLF_HEAD_CATEGORY, &names, &counts);
    for (size_t i = 0; i < n; i++)
        CHECK(strcmp(names[i], "brand-new") != 0, "a failed add kept its category label\n");
    clf_trainer_destroy(&t);
    assert_null(t);
    clf_trainer_destroy(&t); /* NULL-safe */
    clf_trainer_destroy(NULL);
    assert_int_equal(failures, 0);
}

static void test_trainer_options(void **state)
{
    static const struct {
        const char *label;
        int field;
        double value;
        const char *want_path; /* NULL: any non-empty path */
    } cases[] = {
        {"hash bits 11", 0, 11, "bits"},   {"hash bits 25", 0, 25, "bits"},
        {"char_max 7", 1, 7, NULL},        {"epochs 0", 2, 0, NULL},
        {"epochs 1001", 2, 1001, NULL},    {"learning rate 0", 3, 0, NULL},
        {"learning rate -1", 3, -1, NULL}, {"learning rate NaN", 3, NAN, NULL},
        {"learning rate inf", 3, INFINITY, NULL}, {"l2 negative", 4, -1e-5, NULL},
        {"l2 NaN", 4, NAN, NULL},          {"balance 1.5", 5, 1.5, NULL},
        {"balance -0.1", 5, -0.1, NULL},   {"balance NaN", 5, NAN, NULL},
        {"min_df 0", 6, 0, NULL},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        clf_train_opts_t o = train_opts(12, 1);
        double v = cases[i].value;
        switch (cases[i].field) {
        case 0: o.text.hash_bits = (uint8_t)v; break;
        case 1: o.text.char_max = (uint8_t)v; break;
        case 2: o.epochs = (unsigned)v; break;
        case 3: o.learning_rate = (float)v; break;
        case 4: o.l2 = (float)v; break;
        case 5: o.balance = (float)v; break;
        case 6: o.min_df = (unsigned)v; break;
        }
        pl_err_t err = {0};
        clf_trainer_t *t = clf_trainer_new(&o, &err);
        CHECK(t == NULL && err.code == PL_EINVAL && err.path[0] && err.message[0] &&
                  (!cases[i].want_path || strcmp(err.path, cases[i].want_path) == 0),
              "%s: got %s [%s] \"%s\"\n", cases[i].label, t ? "a trainer" : "NULL", err.path,
              err.message);
        clf_trainer_destroy(&t);
    }
    /* the edges are fine */
    clf_train_opts_t o = train_opts(CLF_HASH_BITS_MIN, 1);
    o.epochs = 1000;
    o.l2 = 0.0f;
    o.balance = 1.0f;
    clf_trainer_t *t = clf_trainer_new(&o, NULL);
    CHECK(t != NULL, "edge options refused\n");
    clf_trainer_destroy(&t);
    assert_int_equal(failures, 0);
}

static void test_finish(void **state)
{
    char path[128], nowhere[128];
    path_in(path, sizeof path, "finish.model");
    path_in(nowhere, sizeof nowhere, "no/such/dir/x.model");
    pl_err_t err = {0};
    clf_train_opts_t o = train_opts(12, 1);
    clf_trainer_t *t = clf_trainer_new(&o, &err);
    assert_non_null(t);
    /* no texts */
    assert_int_equal(clf_trainer_finish(t, path, &err), PL_EINVAL);
    assert_non_null(strstr(err.message, path));
    assert_int_equal(clf_trainer_finish(t, path, NULL), PL_EINVAL);
    assert_int_equal(access(path, F_OK), -1);
    clf_trainer_destroy(&t);

    /* a directory that does not exist */
    t = clf_trainer_new(&o, &err);
    add_example(t, &TRAIN[0]);
    add_example(t, &TRAIN[1]);
    memset(&err, 0, sizeof err);
    assert_int_equal(clf_trainer_finish(t, nowhere, &err), PL_EIO);
    assert_non_null(strstr(err.message, nowhere));
    assert_true(err.hint[0]);
    clf_trainer_destroy(&t);

    /* only once */
    t = clf_trainer_new(&o, &err);
    add_example(t, &TRAIN[0]);
    add_example(t, &TRAIN[1]);
    add_example(t, &TRAIN[2]);
    assert_int_equal(clf_trainer_finish(t, path, &err), 0);
    const char *labels[CLF_NHEADS] = {"refund", NULL, NULL};
    memset(&err, 0, sizeof err);
    assert_int_equal(clf_trainer_add(t, "more", 4, labels, &err), PL_ECONFLICT);
    assert_int_equal(err.code, PL_ECONFLICT);
    assert_int_equal(clf_trainer_add(t, "more", 4, labels, NULL), PL_ECONFLICT);
    assert_int_equal(clf_trainer_finish(t, path, &err), PL_ECONFLICT);
    assert_int_equal(clf_trainer_finish(t, path, NULL), PL_ECONFLICT);
    assert_int_equal(clf_trainer_texts(t), 3);
    const char *const *names;
    const size_t *counts;
    assert_int_equal(clf_trainer_labels(t, CLF_HEAD_CATEGORY, &names, &counts), 3);
    assert_string_equal(names[0], "refund");
    assert_int_equal(counts[0], 1);
    assert_string_equal(names[2], "delivery");
    clf_trainer_destroy(&t);
    clf_model_t *m = load_ok(path);
    clf_model_info_t info;
    clf_model_info(m, &info);
    assert_int_equal(info.texts, 3);
    clf_model_destroy(&m);
    assert_int_equal(unlink(path), 0);
}

/* CLF_LABELS_MAX labels per head, and not one more. */
static void test_label_limit(void **state)
{
    char path[128];
    path_in(path, sizeof path, "many.model");
    pl_err_t err = {0};
    clf_train_opts_t o = train_opts(12, 1);
    o.epochs = 2;
    clf_trainer_t *t = clf_trainer_new(&o, &err);
    assert_non_null(t);
    for (int i = CLF_LABELS_MAX - 1; i >= 0; i--) { /* in reverse, so that sorting matters */
        char text[64], label[16];
        snprintf(label, sizeof label, "c%03d", i);
        snprintf(text, sizeof text, "complaint about item%c%c", 'a' + i / 26, 'a' + i % 26);
        const char *labels[CLF_NHEADS] = {label, NULL, i % 2 ? "odd" : "even"};
        assert_int_equal(clf_trainer_add(t, text, strlen(text), labels, &err), 0);
    }
    const char *over[CLF_NHEADS] = {"c256", NULL, NULL};
    assert_int_equal(clf_trainer_add(t, "one more", 8, over, &err), PL_EINVAL);
    assert_string_equal(err.path, "category");
    const char *again[CLF_NHEADS] = {"c100", NULL, NULL}; /* a known label is still fine */
    assert_int_equal(clf_trainer_add(t, "again", 5, again, &err), 0);
    const char *other[CLF_NHEADS] = {NULL, "P1", NULL}; /* and so is another head */
    assert_int_equal(clf_trainer_add(t, "urgent", 6, other, &err), 0);
    const char *const *names;
    const size_t *counts;
    assert_int_equal(clf_trainer_labels(t, CLF_HEAD_CATEGORY, &names, &counts), CLF_LABELS_MAX);
    assert_int_equal(clf_trainer_texts(t), CLF_LABELS_MAX + 2);
    assert_int_equal(clf_trainer_finish(t, path, &err), 0);
    clf_trainer_destroy(&t);

    clf_model_t *m = load_ok(path);
    assert_int_equal(clf_model_labels(m, CLF_HEAD_CATEGORY, &names), CLF_LABELS_MAX);
    for (int i = 0; i < CLF_LABELS_MAX; i++) {
        char want[16];
        snprintf(want, sizeof want, "c%03d", i);
        assert_string_equal(names[i], want);
    }
    failures = 0;
    check_consistent("256 labels", m, "complaint about itemab", 22);
    check_consistent("256 labels, empty text", m, "", 0);
    clf_model_destroy(&m);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(failures, 0);
}

/* Odd training sets: texts without features, an empty first text, one text. */
static void test_small_models(void **state)
{
    static const struct {
        const char *label;
        clf_text_opts_t text;
        const char *texts[3];
        const char *cats[3];
        uint32_t want_rows; /* UINT32_MAX: not checked */
    } cases[] = {
        {"no features at all", {12, 0, 0, 0, 0, 0}, {"late", "lost", "rude"},
         {"a", "b", "a"}, 0},
        {"empty first text", {12, 1, 0, 0, 0, 0}, {"", "late", "lost"}, {"a", "b", "a"}, 2},
        {"only empty texts", {12, 1, 2, 4, 2, 0}, {"", "", ""}, {"x", "y", "z"}, 0},
        {"one text", {12, 1, 0, 0, 0, 0}, {"late", NULL, NULL}, {"only", NULL, NULL}, 1},
        {"flags alone", {12, 0, 0, 0, 0, CLF_TEXT_ALL_FLAGS}, {"!!!", "😀", "BAD"},
         {"p", "e", "c"}, 3},
    };
    char path[128];
    path_in(path, sizeof path, "small.model");
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        pl_err_t err = {0};
        clf_train_opts_t o = train_opts(12, 1);
        o.text = cases[i].text;
        clf_trainer_t *t = clf_trainer_new(&o, &err);
        assert_non_null(t);
        for (size_t k = 0; k < 3 && cases[i].texts[k]; k++) {
            const char *labels[CLF_NHEADS] = {cases[i].cats[k], NULL, NULL};
            int rc = clf_trainer_add(t, cases[i].texts[k], strlen(cases[i].texts[k]), labels,
                                     &err);
            CHECK(rc == 0, "%s: add %zu: %s\n", cases[i].label, k, err.message);
        }
        int rc = clf_trainer_finish(t, path, &err);
        CHECK(rc == 0, "%s: finish: %s\n", cases[i].label, err.message);
        clf_trainer_destroy(&t);
        clf_model_t *m = clf_model_load(path, &err);
        CHECK(m != NULL, "%s: load: %s\n", cases[i].label, err.message);
        if (!m)
            continue;
        clf_model_info_t info;
        clf_model_info(m, &info);
        CHECK(info.rows == cases[i].want_rows, "%s: %u rows, want %u\n", cases[i].label,
              info.rows, cases[i].want_rows);
        for (size_t k = 0; k < 3 && cases[i].texts[k]; k++)
            check_consistent(cases[i].label, m, cases[i].texts[k], strlen(cases[i].texts[k]));
        check_consistent(cases[i].label, m, "something else", 14);
        clf_model_destroy(&m);
    }
    (void)unlink(path); /* absent when every case failed to finish */
    assert_int_equal(failures, 0);
}

/* ---- long texts ---- */

static void test_long_text(void **state)
{
    clf_model_t *m = load_ok(main_model());
    const size_t size = CLF_TEXT_MAX_BYTES + 4096;
    char *buf = pl_malloc(size);
    const char *filler = "快递太慢了 the parcel is late ";
    size_t fl = strlen(filler);
    for (size_t i = 0; i < size; i++)
        buf[i] = filler[i % fl];
    /* what lies past CLF_TEXT_MAX_BYTES does not count */
    memcpy(buf + CLF_TEXT_MAX_BYTES, " refund refund money back ", 26);
    clf_guess_t a[CLF_NHEADS], b[CLF_NHEADS];
    clf_model_predict(m, buf, size, a);
    clf_model_predict(m, buf, CLF_TEXT_MAX_BYTES, b);
    failures = 0;
    CHECK(guess_eq(a, b), "a long text is predicted from more than its first bytes\n");
    CHECK(a[CLF_HEAD_CATEGORY].label && strcmp(a[CLF_HEAD_CATEGORY].label, "delivery") == 0,
          "a long delivery text: got %s\n",
          a[CLF_HEAD_CATEGORY].label ? a[CLF_HEAD_CATEGORY].label : "NULL");
    check_consistent("long text", m, buf, size);
    /* and nothing past it is read: under ASan, a read past this block fails */
    char *exact = pl_malloc(CLF_TEXT_MAX_BYTES);
    memcpy(exact, buf, CLF_TEXT_MAX_BYTES);
    clf_model_predict(m, exact, (size_t)CLF_TEXT_MAX_BYTES * 3, b);
    CHECK(guess_eq(a, b), "a len past the block is predicted differently\n");
    float pa[CLF_LABELS_MAX], pb[CLF_LABELS_MAX];
    size_t na = clf_model_predict_probs(m, CLF_HEAD_CATEGORY, exact, SIZE_MAX, pa);
    size_t nb = clf_model_predict_probs(m, CLF_HEAD_CATEGORY, buf, CLF_TEXT_MAX_BYTES, pb);
    CHECK(na == 3 && nb == 3 && memcmp(pa, pb, sizeof(float) * 3) == 0,
          "predict_probs of a long text\n");
    pl_free(exact);
    pl_free(buf);
    clf_model_destroy(&m);
    assert_int_equal(failures, 0);
}

/* ---- threads ---- */

typedef struct worker {
    const clf_model_t *m;
    const clf_guess_t (*want)[CLF_NHEADS];
    int bad;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < NELEMS(TRAIN); i++) {
            clf_guess_t g[CLF_NHEADS];
            clf_model_predict(w->m, TRAIN[i].text, strlen(TRAIN[i].text), g);
            w->bad += !guess_eq(g, w->want[i]);
        }
    clf_model_thread_cleanup();
    return NULL;
}

/* One loaded model shared by threads, each with its own scratch. */
static void test_threads(void **state)
{
    clf_model_t *m = load_ok(main_model());
    clf_guess_t want[NELEMS(TRAIN)][CLF_NHEADS];
    for (size_t i = 0; i < NELEMS(TRAIN); i++)
        clf_model_predict(m, TRAIN[i].text, strlen(TRAIN[i].text), want[i]);
    worker_t w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){m, (const clf_guess_t(*)[CLF_NHEADS])want, 0};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].bad, 0);
    }
    clf_model_thread_cleanup();
    clf_model_thread_cleanup(); /* twice is fine, and prediction makes a new scratch */
    clf_guess_t g[CLF_NHEADS];
    clf_model_predict(m, TRAIN[0].text, strlen(TRAIN[0].text), g);
    assert_true(guess_eq(g, want[0]));
    clf_model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns),
        cmocka_unit_test(test_unseen_buckets),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_load_bad_files),
        cmocka_unit_test(test_forged_files),
        cmocka_unit_test(test_prediction_formula),
        cmocka_unit_test(test_trainer_errors),
        cmocka_unit_test(test_trainer_options),
        cmocka_unit_test(test_finish),
        cmocka_unit_test(test_label_limit),
        cmocka_unit_test(test_small_models),
        cmocka_unit_test(test_long_text),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
