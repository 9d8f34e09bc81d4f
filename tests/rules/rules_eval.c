/*
 * plaint-rules-eval: runs the classifier's domain rules alone over labelled JSON Lines and
 * prints how well they find P1 cases and angry customers, and what a case costs.
 *
 *   plaint-rules-eval [-c CONFIG_DIR] [--show WHAT] [--bench] FILE.jsonl ...
 *
 * Each line is an object with "text" and optionally "id", "priority" ("P1".."P3" or null) and
 * "sentiment" ("angry", ...), as in zh-labelled.jsonl. P1 by the rules means a floor of P1
 * (the model plays no part here). --show fn|fp|angry-fn|angry-fp lists the ids (and signals)
 * of the misses with the keywords that fired, to tune the keyword lists; --show signals counts each signal. --bench times
 * synthetic 2 KB and 64 KiB texts. CONFIG_DIR defaults to PLAINT_CONFIG_DIR, then
 * deploy/config.
 *
 * Trusts its input files (a tool for developers); owns everything it allocates.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clf_rules.h"
#include "pl_alloc.h"

#define LINE_MAX_BYTES (1 << 20)

typedef struct stats {
    size_t n, gold_p1, rules_p1, hit_p1;
    size_t gold_complaint_non_p1, flagged_complaint_non_p1;
    size_t gold_angry, rules_angry, hit_angry, with_sentiment;
    size_t bytes;
    double apply_s;
    size_t signal_counts[64];
    const char *signal_names[64];
    size_t nsignal_names;
} stats_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void count_signal(stats_t *st, const char *name)
{
    for (size_t i = 0; i < st->nsignal_names; i++) {
        if (strcmp(st->signal_names[i], name) == 0) {
            st->signal_counts[i]++;
            return;
        }
    }
    if (st->nsignal_names < 64) {
        st->signal_names[st->nsignal_names] = name;
        st->signal_counts[st->nsignal_names++] = 1;
    }
}

/* One line per listed case: its id and why the rules said what they said. */
static void show(const char *what, const char *kind, const char *id, const char *why)
{
    if (!what || strcmp(what, kind) != 0)
        return;
    printf("%-9s %-24s", kind, id);
    for (const char *p = why; *p; p++)
        putchar(*p == '\n' ? ';' : *p);
    printf("\n");
}

static void score_line(const clf_rules_t *rules, const cJSON *obj, stats_t *st, const char *what)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, "text");
    if (!cJSON_IsString(text))
        return;
    const char *id = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(obj, "id"))
                         ? cJSON_GetObjectItemCaseSensitive(obj, "id")->valuestring
                         : "?";
    const cJSON *pri = cJSON_GetObjectItemCaseSensitive(obj, "priority");
    const cJSON *sen = cJSON_GetObjectItemCaseSensitive(obj, "sentiment");
    clf_rules_input_t in = {text->valuestring, strlen(text->valuestring), NULL, NULL};
    clf_verdict_t v;
    char *why = NULL;
    double t0 = now_s();
    if (what)
        why = clf_rules_explain(rules, &in, &v);
    else
        clf_rules_apply(rules, &in, &v);
    st->apply_s += now_s() - t0;
    st->n++;
    st->bytes += in.len;
    for (size_t i = 0; i < v.nsignals; i++)
        count_signal(st, v.signals[i]);
    bool gold = cJSON_IsString(pri) && strcmp(pri->valuestring, "P1") == 0;
    bool got = v.floor == 1;
    st->gold_p1 += gold;
    st->rules_p1 += got;
    st->hit_p1 += gold && got;
    if (cJSON_IsString(pri) && !gold) {
        st->gold_complaint_non_p1++;
        st->flagged_complaint_non_p1 += got;
    }
    if (gold && !got)
        show(what, "fn", id, why);
    if (!gold && got)
        show(what, "fp", id, why);
    if (cJSON_IsString(sen)) {
        bool angry = strcmp(sen->valuestring, "angry") == 0;
        st->with_sentiment++;
        st->gold_angry += angry;
        st->rules_angry += v.angry;
        st->hit_angry += angry && v.angry;
        if (angry && !v.angry)
            show(what, "angry-fn", id, why);
        if (!angry && v.angry)
            show(what, "angry-fp", id, why);
    }
    pl_free(why);
}

static int score_file(const clf_rules_t *rules, const char *path, stats_t *st, const char *what)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "plaint-rules-eval: cannot open \"%s\"\n", path);
        return -1;
    }
    char *line = pl_malloc(LINE_MAX_BYTES);
    while (fgets(line, LINE_MAX_BYTES, f)) {
        cJSON *obj = cJSON_Parse(line);
        if (obj)
            score_line(rules, obj, st, what);
        cJSON_Delete(obj);
    }
    pl_free(line);
    fclose(f);
    return 0;
}

static double ratio(size_t a, size_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

static void report(const stats_t *st, bool show_signals)
{
    size_t non_p1 = st->n - st->gold_p1;
    printf("items %zu, mean %.0f bytes\n", st->n, ratio(st->bytes, st->n));
    printf("P1: labelled %zu, rules P1 %zu, both %zu: recall %.3f, precision %.3f\n",
           st->gold_p1, st->rules_p1, st->hit_p1, ratio(st->hit_p1, st->gold_p1),
           ratio(st->hit_p1, st->rules_p1));
    printf("non-P1 items flagged P1: %zu of %zu (%.1f%%); of P2/P3 complaints: %zu of %zu "
           "(%.1f%%)\n",
           st->rules_p1 - st->hit_p1, non_p1, 100 * ratio(st->rules_p1 - st->hit_p1, non_p1),
           st->flagged_complaint_non_p1, st->gold_complaint_non_p1,
           100 * ratio(st->flagged_complaint_non_p1, st->gold_complaint_non_p1));
    printf("angry: labelled %zu of %zu, rules angry %zu, both %zu: recall %.3f, precision "
           "%.3f\n",
           st->gold_angry, st->with_sentiment, st->rules_angry, st->hit_angry,
           ratio(st->hit_angry, st->gold_angry), ratio(st->hit_angry, st->rules_angry));
    printf("cost: %.2f us/case\n", st->n ? st->apply_s * 1e6 / (double)st->n : 0.0);
    for (size_t i = 0; show_signals && i < st->nsignal_names; i++)
        printf("signal %-16s %zu\n", st->signal_names[i], st->signal_counts[i]);
}

/* A text of about size bytes in both languages, written for this benchmark; one real P1 cue
 * sits at the very end so every byte has to be read. */
static char *bench_text(size_t size)
{
    static const char *const parts[] = {
        "The parcel arrived two days late and the box was dented on one side. ",
        "客服说会尽快处理，但是到现在还没有人联系我，希望能给一个明确的答复。",
        "I asked for a refund on the order and was told to wait for the warehouse. ",
        "这次购买的商品颜色和图片不一样，尺寸也偏小，包装比较简单。",
    };
    char *buf = pl_malloc(size + 64);
    size_t len = 0;
    for (size_t i = 0; len + 200 < size; i++) {
        const char *p = parts[i % 4];
        memcpy(buf + len, p, strlen(p));
        len += strlen(p);
    }
    const char *tail = "充电器冒烟了。";
    memcpy(buf + len, tail, strlen(tail) + 1);
    return buf;
}

static void bench(const clf_rules_t *rules)
{
    static const size_t sizes[] = {2048, 65536};
    for (size_t k = 0; k < 2; k++) {
        char *text = bench_text(sizes[k]);
        clf_rules_input_t in = {text, strlen(text), "vip", "social"};
        clf_verdict_t v;
        int rounds = sizes[k] > 10000 ? 200 : 5000;
        double t0 = now_s();
        for (int i = 0; i < rounds; i++)
            clf_rules_apply(rules, &in, &v);
        double us = (now_s() - t0) * 1e6 / rounds;
        printf("bench: %zu bytes: %.1f us/case (%.0f MB/s), floor P%d, %zu signals\n", in.len,
               us, (double)in.len / us, v.floor, v.nsignals);
        pl_free(text);
    }
}

int main(int argc, char **argv)
{
    const char *dir = getenv("PLAINT_CONFIG_DIR");
    const char *what = NULL;
    bool do_bench = false;
    int first = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--show") && i + 1 < argc) {
            what = argv[++i];
        } else if (!strcmp(argv[i], "--bench")) {
            do_bench = true;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: plaint-rules-eval [-c CONFIG_DIR] [--show fn|fp|angry-fn|"
                            "angry-fp|signals] [--bench] FILE.jsonl ...\n");
            return 2;
        } else {
            first = i;
            break;
        }
    }
    pl_errlist_t errs = PL_ERRLIST_INIT;
    clf_rules_t *rules = clf_rules_load(dir ? dir : "deploy/config", &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "plaint-rules-eval: %s\nhint: %s\n", errs.items[i].message,
                errs.items[i].hint);
    pl_errlist_reset(&errs);
    if (!rules)
        return 78;
    printf("rules: %zu bytes compiled\n", clf_rules_memory(rules));
    stats_t st = {0};
    int rc = 0;
    for (int i = first; i < argc; i++)
        if (score_file(rules, argv[i], &st, what) != 0)
            rc = 1;
    if (st.n)
        report(&st, what && !strcmp(what, "signals"));
    if (do_bench)
        bench(rules);
    clf_rules_destroy(&rules);
    return rc;
}
