/*
 * test_clf_text: the classifier's text features (clf_text).
 *
 * Most tables compare the features of a text, as a bag of (bucket, count), with a bag built
 * from the tokens the header promises, each hashed through clf_text_bucket: "w:x" is one
 * word unigram, "c:x" one char n-gram, "h:x" one CJK n-gram; "W:word" expands to the word's
 * unigram and every char n-gram of " word " (scikit-learn's char_wb rule), "H:run" to every
 * CJK n-gram of the run. Features the header gives no bucket for (word bigrams, emoji, runs
 * of ! and ?, the CAPS flag) are tested by turning their option on and off and counting what
 * it adds. Every text is first copied to a heap block of exactly its length, so that under
 * ASan a read past len fails the test. The options are always set here, never taken from
 * clf_text_opts_default. The texts are written for this test; none comes from a data set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clf_text.h"
#include "pl_alloc.h"
#include "pl_err.h"

#include "test_util.h"

/* A string literal and its length, NULs inside included. */
#define B(s) s, sizeof(s) - 1

static clf_text_scratch_t *scratch;

static int make_scratch(void **state)
{
    scratch = clf_text_scratch_new();
    return scratch ? 0 : -1;
}

static int free_scratch(void **state)
{
    clf_text_scratch_destroy(&scratch);
    return scratch == NULL ? 0 : -1;
}

static clf_text_opts_t opts_of(unsigned bits, unsigned word, unsigned cmin, unsigned cmax,
                               unsigned cjk, unsigned flags)
{
    return (clf_text_opts_t){(uint8_t)bits, (uint8_t)word, (uint8_t)cmin,
                             (uint8_t)cmax, (uint8_t)cjk,  (uint8_t)flags};
}

/* ---- bags of (bucket, count) ---- */

typedef struct bag {
    clf_feat_t *f;
    size_t n, cap;
} bag_t;

static void bag_add(bag_t *b, uint32_t index, float value)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->f = pl_realloc(b->f, b->cap * sizeof *b->f);
    }
    b->f[b->n++] = (clf_feat_t){index, value};
}

static void bag_free(bag_t *b)
{
    pl_free(b->f);
    *b = (bag_t){0};
}

static int cmp_feat(const void *pa, const void *pb)
{
    const clf_feat_t *a = pa, *b = pb;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Sorts by bucket and adds up the counts of equal buckets. */
static void bag_norm(bag_t *b)
{
    if (!b->n)
        return;
    qsort(b->f, b->n, sizeof *b->f, cmp_feat);
    size_t out = 0;
    for (size_t i = 1; i < b->n; i++) {
        if (b->f[i].index == b->f[out].index)
            b->f[out].value += b->f[i].value;
        else
            b->f[++out] = b->f[i];
    }
    b->n = out + 1;
}

static bool bag_eq(const bag_t *a, const bag_t *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->f[i].index != b->f[i].index || a->f[i].value != b->f[i].value)
            return false;
    return true;
}

/* The count of bucket index in a normalised bag, 0 when absent. */
static float bag_count(const bag_t *b, uint32_t index)
{
    if (!b->n)
        return 0.0f; /* b->f may be NULL, which bsearch must not get */
    clf_feat_t key = {index, 0.0f};
    const clf_feat_t *f = bsearch(&key, b->f, b->n, sizeof *b->f, cmp_feat);
    return f ? f->value : 0.0f;
}

/* What big adds to small: buckets only big has, and the added counts. false when small has
 * something big does not. */
static bool bag_extra(const bag_t *big, const bag_t *small, size_t *buckets, float *total)
{
    *buckets = 0;
    *total = 0.0f;
    for (size_t i = 0; i < small->n; i++)
        if (bag_count(big, small->f[i].index) < small->f[i].value)
            return false;
    for (size_t i = 0; i < big->n; i++) {
        float had = bag_count(small, big->f[i].index);
        *buckets += had == 0.0f;
        *total += big->f[i].value - had;
    }
    return true;
}

/* Checks what clf_text_features promises of any result: buckets below 2^hash_bits, each
 * once, counts that are whole and positive. */
static void check_vector(const char *label, const clf_text_opts_t *o, const clf_feat_t *f,
                         size_t n)
{
    bag_t seen = {0};
    for (size_t i = 0; i < n; i++) {
        CHECK(f[i].index < (1u << o->hash_bits), "%s: bucket %u is out of range\n", label,
              f[i].index);
        CHECK(f[i].value >= 1.0f && f[i].value == (float)(uint32_t)f[i].value,
              "%s: count %g is not a positive whole number\n", label, (double)f[i].value);
        bag_add(&seen, f[i].index, 1.0f);
    }
    bag_norm(&seen);
    CHECK(seen.n == n, "%s: %zu features but %zu distinct buckets\n", label, n, seen.n);
    bag_free(&seen);
}

/* Features of text[0..len) into *out (normalised), from a heap copy of exactly len bytes. */
static void bag_text(bag_t *out, const char *label, const clf_text_opts_t *o, const char *text,
                     size_t len)
{
    char *copy = pl_malloc(len ? len : 1);
    memcpy(copy, text, len);
    const clf_feat_t *f;
    size_t n = clf_text_features(o, copy, len, scratch, &f);
    check_vector(label, o, f, n);
    *out = (bag_t){0};
    for (size_t i = 0; i < n; i++)
        bag_add(out, f[i].index, f[i].value);
    bag_norm(out);
    pl_free(copy);
}

/* Byte offsets of the code points of valid UTF-8 s[0..len), and of its end; returns the
 * number of code points. */
static size_t cp_offsets(const char *s, size_t len, size_t *offs)
{
    size_t n = 0, i = 0;
    while (i < len) {
        unsigned char b = (unsigned char)s[i];
        offs[n++] = i;
        i += b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    }
    offs[n] = len;
    return n;
}

static void add_gram(bag_t *b, const clf_text_opts_t *o, char kind, const char *s, size_t from,
                     size_t to)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%.*s", (int)(to - from), s + from);
    bag_add(b, clf_text_bucket(o, kind, buf), 1.0f);
}

/* A word's unigram and the char n-grams of " word ", counted as char_wb does: a padded
 * word no longer than n is one n-gram, and longer n are not counted for it. */
static void add_word(bag_t *b, const clf_text_opts_t *o, const char *word, size_t len)
{
    char padded[256];
    size_t offs[256];
    if (o->word_ngram_max >= 1) {
        snprintf(padded, sizeof padded, "%.*s", (int)len, word);
        bag_add(b, clf_text_bucket(o, 'w', padded), 1.0f);
    }
    if (!o->char_max)
        return;
    int plen = snprintf(padded, sizeof padded, " %.*s ", (int)len, word);
    size_t ncp = cp_offsets(padded, (size_t)plen, offs);
    for (size_t n = o->char_min; n <= o->char_max; n++) {
        if (ncp <= n) {
            add_gram(b, o, 'c', padded, 0, (size_t)plen);
            break;
        }
        for (size_t i = 0; i + n <= ncp; i++)
            add_gram(b, o, 'c', padded, offs[i], offs[i + n]);
    }
}

static void add_cjk_run(bag_t *b, const clf_text_opts_t *o, const char *run, size_t len)
{
    size_t offs[256];
    size_t ncp = cp_offsets(run, len, offs);
    for (size_t n = 1; n <= o->cjk_ngram_max; n++)
        for (size_t i = 0; i + n <= ncp; i++)
            add_gram(b, o, 'h', run, offs[i], offs[i + n]);
}

/* The bag a spec such as "W:refund|h:投诉" promises (see the top of the file). */
static void bag_want(bag_t *out, const clf_text_opts_t *o, const char *spec)
{
    *out = (bag_t){0};
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, '|');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        assert_true(len >= 2 && p[1] == ':');
        const char *tok = p + 2;
        size_t tlen = len - 2;
        if (p[0] == 'W')
            add_word(out, o, tok, tlen);
        else if (p[0] == 'H')
            add_cjk_run(out, o, tok, tlen);
        else
            add_gram(out, o, p[0], tok, 0, tlen);
        p += len + (end != NULL);
    }
    bag_norm(out);
}

static void print_bags(const bag_t *got, const bag_t *want)
{
    print_error("    got %zu buckets, want %zu:", got->n, want->n);
    for (size_t i = 0, j = 0; i < got->n || j < want->n;) {
        if (j >= want->n || (i < got->n && got->f[i].index < want->f[j].index)) {
            print_error(" +%u(%g)", got->f[i].index, (double)got->f[i].value);
            i++;
        } else if (i >= got->n || want->f[j].index < got->f[i].index) {
            print_error(" -%u(%g)", want->f[j].index, (double)want->f[j].value);
            j++;
        } else {
            if (got->f[i].value != want->f[j].value)
                print_error(" %u(%g, want %g)", got->f[i].index, (double)got->f[i].value,
                            (double)want->f[j].value);
            i++, j++;
        }
    }
    print_error("\n");
}

/* One row of a bag table: the features of text are exactly the tokens of want. */
static void check_bag(const char *label, const clf_text_opts_t *o, const char *text, size_t len,
                      const char *want_spec)
{
    bag_t got, want;
    bag_text(&got, label, o, text, len);
    bag_want(&want, o, want_spec);
    bool ok = bag_eq(&got, &want);
    CHECK(ok, "%s: features differ from [%s]\n", label, want_spec);
    if (!ok)
        print_bags(&got, &want);
    bag_free(&got);
    bag_free(&want);
}

/* ---- tokens ---- */

static void test_tokens(void **state)
{
    static const struct {
        const char *label;
        const char *text;
        size_t len;
        const char *want;
    } cases[] = {
        {"one word", B("refund"), "W:refund"},
        {"lower-cased", B("ReFuND"), "W:refund"},
        {"words split on spaces and punctuation", B("late,again...  really?\tyes"),
         "W:late|W:again|W:really|W:yes"},
        {"repeated word counts", B("no no no"), "W:no|W:no|W:no"},
        {"digits fold to 0", B("order 12345 late"), "W:order|W:00000|W:late"},
        {"letters and digits are one word", B("A4 x86"), "W:a0|W:x00"},
        {"apostrophe splits", B("don't"), "W:don|W:t"},
        {"hyphen and underscore split", B("e-mail user_id"), "W:e|W:mail|W:user|W:id"},
        {"latin-1 upper case", B("ÄRGER über"), "W:ärger|W:über"},
        {"latin extended-A upper case", B("ŁÓDŹ"), "W:łódź"},
        {"greek upper case", B("ΚΑΛΗΜΕΡΑ"), "W:καλημερα"},
        {"cyrillic upper case", B("ПЛОХО Ёж"), "W:плохо|W:ёж"},
        {"multiplication sign splits", B("2×3"), "W:0|W:0"},
        {"combining mark stays inside", B("cafe\xCC\x81s"), "W:cafes"},
        {"no-break space splits", B("a\xC2\xA0" "b"), "W:a|W:b"},
        {"full-width letters and digits", B("ＲＥＦＵＮＤ　ｎｏｗ１２"), "W:refund|W:now00"},
        {"full-width mixed with ascii", B("Ｒefund"), "W:refund"},
        {"CJK run", B("我要投诉"), "H:我要投诉"},
        {"CJK punctuation splits runs", B("太慢了，退款。退货、换货"),
         "H:太慢了|H:退款|H:退货|H:换货"},
        {"ideographic space splits", B("退款　退货"), "H:退款|H:退货"},
        {"kana and kanji are one run", B("返品したい"), "H:返品したい"},
        {"katakana middle dot splits", B("カスタマー・サービス"), "H:カスタマー|H:サービス"},
        {"hangul", B("환불 요청"), "H:환불|H:요청"},
        {"ideographic iteration mark", B("人々"), "H:人々"},
        {"CJK then Latin then CJK", B("我要refund太慢"), "H:我要|W:refund|H:太慢"},
        {"digits between CJK", B("订单123456还没到"), "H:订单|W:000000|H:还没到"},
        {"full-width word inside CJK", B("我要ＲＥＦＵＮＤ了"), "H:我要|W:refund|H:了"},
        {"mixed sentence",
         B("快递 delayed 3天, still 没到!"),
         "H:快递|W:delayed|W:0|H:天|W:still|H:没到"},
        {"emoji separates (feature off)", B("bad😡service"), "W:bad|W:service"},
        {"emoji breaks a CJK run (feature off)", B("太慢😡了"), "H:太慢|H:了"},
        {"! and ? separate (feature off)", B("why?!now"), "W:why|W:now"},
        {"empty", "", 0, ""},
        {"separators only", B(" ,.;:()\r\n"), ""},
    };
    const clf_text_opts_t o = opts_of(24, 1, 2, 3, 3, 0);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++)
        check_bag(cases[i].label, &o, cases[i].text, cases[i].len, cases[i].want);
    assert_int_equal(failures, 0);
}

/* The n-grams spelled out, so that the padding rule is pinned down without add_word. */
static void test_ngrams(void **state)
{
    static const struct {
        const char *label;
        clf_text_opts_t o;
        const char *text;
        const char *want;
    } cases[] = {
        {"char 2..3 of a short word", {24, 1, 2, 3, 0, 0}, "Ab",
         "w:ab|c: a|c:ab|c:b |c: ab|c:ab "},
        {"char 1..2 counts both pads", {24, 0, 1, 2, 0, 0}, "ab",
         "c: |c:a|c:b|c: |c: a|c:ab|c:b "},
        {"char 1..1 of two words", {24, 0, 1, 1, 0, 0}, "a b", "c: |c:a|c: |c: |c:b|c: "},
        {"char 3..3", {24, 0, 3, 3, 0, 0}, "abcd", "c: ab|c:abc|c:bcd|c:cd "},
        {"padded word as long as n: once", {24, 0, 4, 6, 0, 0}, "ab", "c: ab "},
        {"padded word shorter than every n: once", {24, 0, 5, 6, 0, 0}, "a", "c: a "},
        {"char 6..6", {24, 0, 6, 6, 0, 0}, "abcdef", "c: abcde|c:abcdef|c:bcdef "},
        {"char n-grams of a non-ASCII word", {24, 0, 2, 2, 0, 0}, "Äb", "c: ä|c:äb|c:b "},
        {"char n-grams of digits", {24, 0, 2, 2, 0, 0}, "42", "c: 0|c:00|c:0 "},
        {"no char n-grams when char_max is 0", {24, 1, 0, 0, 0, 0}, "refund now",
         "w:refund|w:now"},
        {"no word unigrams when word_ngram_max is 0", {24, 0, 2, 2, 0, 0}, "ok",
         "c: o|c:ok|c:k "},
        {"no char n-grams of CJK", {24, 1, 2, 3, 1, 0}, "投诉 ok",
         "h:投|h:诉|w:ok|c: o|c:ok|c:k |c: ok|c:ok "},
        {"CJK unigrams", {24, 0, 0, 0, 1, 0}, "投诉了", "h:投|h:诉|h:了"},
        {"CJK bigrams", {24, 0, 0, 0, 2, 0}, "投诉了", "h:投|h:诉|h:了|h:投诉|h:诉了"},
        {"CJK trigrams", {24, 0, 0, 0, 3, 0}, "我要投诉",
         "h:我|h:要|h:投|h:诉|h:我要|h:要投|h:投诉|h:我要投|h:要投诉"},
        {"no trigram in a run of two", {24, 0, 0, 0, 3, 0}, "投诉", "h:投|h:诉|h:投诉"},
        {"no n-gram across runs", {24, 0, 0, 0, 3, 0}, "投诉 退款", "h:投|h:诉|h:投诉|h:退|h:款|h:退款"},
        {"no CJK features when cjk_ngram_max is 0", {24, 1, 0, 0, 0, 0}, "投诉ok", "w:ok"},
        {"supplementary-plane Han", {24, 0, 0, 0, 2, 0}, "𠀀𠀁", "h:𠀀|h:𠀁|h:𠀀𠀁"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++)
        check_bag(cases[i].label, &cases[i].o, cases[i].text, strlen(cases[i].text),
                  cases[i].want);
    assert_int_equal(failures, 0);
}

/* ---- bytes that are not UTF-8 ---- */

static void test_invalid_utf8(void **state)
{
    static const struct {
        const char *label;
        const char *text;
        size_t len;
        const char *want;
    } cases[] = {
        {"lone continuation byte", B("ab\x80" "cd"), "W:ab|W:cd"},
        {"run of continuation bytes", B("\x80\xBF\x80" "ok\xBF"), "W:ok"},
        {"0xFF and 0xFE", B("\xFF" "late" "\xFE"), "W:late"},
        {"0xC0 0xC1 and 0xF5..0xFF lead bytes", B("a\xC0" "b\xC1" "c\xF5" "d\xF8" "e\xFF"),
         "W:a|W:b|W:c|W:d|W:e"},
        {"overlong slash", B("x\xC0\xAF" "y"), "W:x|W:y"},
        {"overlong letter is no letter", B("b\xC1\x81" "c"), "W:b|W:c"},
        {"overlong 3-byte form", B("a\xE0\x80\xAF" "b"), "W:a|W:b"},
        {"overlong 3-byte CJK", B("\xE0\x9F\xBF" "投"), "H:投"},
        {"overlong 4-byte form", B("a\xF0\x82\x82\xAC" "b"), "W:a|W:b"},
        {"surrogate", B("a\xED\xA0\x80" "b"), "W:a|W:b"},
        {"above U+10FFFF", B("a\xF4\x90\x80\x80" "b"), "W:a|W:b"},
        {"5-byte form", B("a\xF8\x88\x80\x80\x80" "b"), "W:a|W:b"},
        {"truncated sequence before a letter", B("\xE4\xB8" "a"), "W:a"},
        {"truncated sequence inside a word", B("ab\xC3" "cd"), "W:ab|W:cd"},
        {"truncated sequence inside a CJK run", B("投\xE8" "诉"), "H:投|H:诉"},
        {"lead byte then a lead byte", B("\xE8\xE8\xAF\x89"), "H:诉"},
        {"truncated 4-byte before CJK", B("\xF0\x9F\x98" "退款"), "H:退款"},
        {"bad byte in third place", B("\xE4\xB8" "A" "\xAD"), "W:a"},
        {"text ends in a truncated sequence", B("refund" "\xE9\x80"), "W:refund"},
        {"text ends in a lone lead byte", B("太慢" "\xE4"), "H:太慢"},
        {"text ends in a truncated emoji", B("ok" "\xF0\x9F\x98"), "W:ok"},
        {"only a lead byte", B("\xF0"), ""},
        {"NUL separates", B("ok\0go"), "W:ok|W:go"},
        {"NUL inside a CJK run", B("投\0诉"), "H:投|H:诉"},
        {"only NULs", B("\0\0\0"), ""},
    };
    const clf_text_opts_t o = opts_of(24, 1, 2, 3, 3, 0);
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++)
        check_bag(cases[i].label, &o, cases[i].text, cases[i].len, cases[i].want);
    assert_int_equal(failures, 0);
}

/* The length of the longest prefix of s[0..len) that ends on a character boundary. */
static size_t cut_back(const char *s, size_t len, size_t full)
{
    while (len > 0 && len < full && ((unsigned char)s[len] & 0xC0) == 0x80)
        len--;
    return len;
}

/* Every prefix of a mixed text, cut anywhere (inside sequences too) and copied to a block of
 * exactly that length: the same features as the prefix cut back to a character boundary. */
static void test_every_prefix(void **state)
{
    static const char text[] = "我要refund! 退款😡太慢了?? ＯＫ é\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD" "Ёж";
    const size_t full = sizeof text - 1;
    const clf_text_opts_t o = opts_of(24, 2, 1, 4, 3, CLF_TEXT_ALL_FLAGS);
    failures = 0;
    for (size_t len = 0; len <= full; len++) {
        char label[64];
        snprintf(label, sizeof label, "prefix of %zu bytes", len);
        bag_t got, want;
        bag_text(&got, label, &o, text, len);
        bag_text(&want, label, &o, text, cut_back(text, len, full));
        CHECK(bag_eq(&got, &want), "%s: differs from the prefix of %zu\n", label,
              cut_back(text, len, full));
        bag_free(&got);
        bag_free(&want);
    }
    assert_int_equal(failures, 0);
}

/* Random bytes, biased to UTF-8 lead and continuation bytes: under ASan this proves the
 * decoder never reads outside the text, whatever the options. */
static void test_random_bytes(void **state)
{
    static const char alphabet[] = "\xE4\xB8\xAD\xF0\x9F\x98\x80\xC3\xA9\xEF\xBC\x81"
                                   "aZ0 !?\xFF\x80\xBF\xC0\xED\xF4\x90";
    static const clf_text_opts_t opts[] = {
        {12, 2, 1, 6, 3, CLF_TEXT_ALL_FLAGS},
        {24, 1, 2, 4, 2, CLF_TEXT_EMOJI},
        {13, 0, 0, 0, 1, 0},
    };
    uint64_t x = 0x2545F4914F6CDD1DULL;
    char buf[600];
    failures = 0;
    for (int round = 0; round < 3000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = (size_t)(x % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (x & 3) ? alphabet[(x >> 8) % (sizeof alphabet - 1)] : (char)(x >> 8);
        }
        bag_t got;
        bag_text(&got, "random bytes", &opts[round % NELEMS(opts)], buf, len);
        bag_free(&got);
    }
    assert_int_equal(failures, 0);
}

/* ---- texts that must give the same features, or not ---- */

static void test_equivalent(void **state)
{
    /* the three flags the cases are written for, whatever else CLF_TEXT_ALL_FLAGS grows */
    enum { ALL = CLF_TEXT_EMOJI | CLF_TEXT_PUNCT | CLF_TEXT_CAPS };
    static const struct {
        const char *label;
        const char *a;
        size_t alen;
        const char *b;
        size_t blen;
        uint8_t flags;
        bool want_same;
    } cases[] = {
        {"case, caps off", B("HELLO World"), B("hello world"), 0, true},
        {"case, caps on", B("HELLO World"), B("hello world"), ALL, false},
        {"mixed case is no shouting", B("Hello WoRLD"), B("hello world"), ALL, true},
        {"full-width letters", B("ＲＥＦＵＮＤ ｎｏｗ"), B("REFUND now"), ALL, true},
        {"full-width digits", B("ｏｒｄｅｒ１２３"), B("order123"), ALL, true},
        {"full-width ! and ?", B("ｗｈｙ？！！"), B("why?!!"), ALL, true},
        {"full-width ！ run", B("！！！"), B("!!!"), ALL, true},
        {"full-width ？ run mixed", B("?？"), B("??"), ALL, true},
        {"digits fold", B("call 555 1234"), B("call 999 0000"), ALL, true},
        {"digit count matters", B("12"), B("123"), ALL, false},
        {"whitespace kinds", B("a \t\r\n b"), B("a b"), ALL, true},
        {"an invalid byte is a space", B("late\xFF" "again"), B("late again"), ALL, true},
        {"a NUL is a space", B("late\0again"), B("late again"), ALL, true},
        {"an emoji is a space between words", B("bad😡service"), B("bad 😡 service"), ALL, true},
        {"emoji off", B("great😀"), B("great"), 0, true},
        {"emoji on", B("great😀"), B("great"), CLF_TEXT_EMOJI, false},
        {"skin tone is the same emoji", B("👍🏽"), B("👍"), ALL, true},
        {"zero-width joiner is skipped", B("👨‍👩‍👧"), B("👨👩👧"), ALL, true},
        {"variation selector is skipped", B("❤️"), B("❤"), ALL, true},
        {"different emoji", B("😀"), B("😡"), ALL, false},
        {"emoji count matters", B("😀😀"), B("😀"), ALL, false},
        {"! runs of 3 and more are one", B("wow!!!!!!!!"), B("wow!!!"), ALL, true},
        {"! run of 2 is not 3", B("wow!!"), B("wow!!!"), ALL, false},
        {"! run of 1 is not 2", B("wow!"), B("wow!!"), ALL, false},
        {"? is not !", B("why?"), B("why!"), ALL, false},
        {"?? runs of 4 and 3", B("????"), B("???"), ALL, true},
        {"runs in either order", B("!?"), B("?!"), ALL, true},
        {"punct off", B("wow!!!"), B("wow"), CLF_TEXT_EMOJI | CLF_TEXT_CAPS, true},
        {"bigram order matters", B("refund late"), B("late refund"), ALL, false},
        {"bigram across punctuation", B("refund, late"), B("refund late"), ALL, true},
        {"CJK in between is a space for words", B("hello中world"), B("hello 中 world"), ALL,
         true},
        {"CJK breaks a word bigram", B("hello 中 world"), B("hello world 中"), ALL, false},
        {"CJK run broken by Latin", B("投诉ok投诉"), B("投诉 ok 投诉"), ALL, true},
        {"CJK run broken by an emoji", B("太慢😡了"), B("太慢 😡 了"), ALL, true},
        {"combining mark is skipped", B("cafe\xCC\x81"), B("cafe"), ALL, true},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        const clf_text_opts_t o = opts_of(24, 2, 2, 4, 3, cases[i].flags);
        bag_t a, b;
        bag_text(&a, cases[i].label, &o, cases[i].a, cases[i].alen);
        bag_text(&b, cases[i].label, &o, cases[i].b, cases[i].blen);
        bool same = bag_eq(&a, &b);
        CHECK(same == cases[i].want_same, "%s: got %s, want %s (%zu and %zu buckets)\n",
              cases[i].label, same ? "same" : "different",
              cases[i].want_same ? "same" : "different", a.n, b.n);
        bag_free(&a);
        bag_free(&b);
    }
    assert_int_equal(failures, 0);
}

/* ---- the optional features, by what turning them on adds ---- */

typedef enum { T_BIGRAM, T_EMOJI, T_PUNCT, T_CAPS } toggle_t;

static void test_optional_features(void **state)
{
    static const struct {
        const char *label;
        const char *text;
        toggle_t toggle;
        size_t want_buckets;
        float want_total;
    } cases[] = {
        {"bigram of two words", "refund late", T_BIGRAM, 1, 1},
        {"bigrams of three words", "refund very late", T_BIGRAM, 2, 2},
        {"no bigram of one word", "refund", T_BIGRAM, 0, 0},
        {"repeated bigram counts", "no no no", T_BIGRAM, 1, 2},
        {"bigram across a comma", "late, again", T_BIGRAM, 1, 1},
        {"no bigram across CJK", "late 太慢 again", T_BIGRAM, 0, 0},
        {"bigrams around CJK", "very late 太慢 again today", T_BIGRAM, 2, 2},
        {"bigram after CJK", "我要 refund now", T_BIGRAM, 1, 1},
        {"no bigram of CJK", "我要投诉", T_BIGRAM, 0, 0},
        {"one emoji", "great 😀", T_EMOJI, 1, 1},
        {"the same emoji twice", "😀 ok 😀", T_EMOJI, 1, 2},
        {"two emoji", "😀😡", T_EMOJI, 2, 2},
        {"emoji with a skin tone", "👍🏽", T_EMOJI, 1, 1},
        {"family sequence", "👨‍👩‍👧", T_EMOJI, 3, 3},
        {"dingbat and star", "☕⭐", T_EMOJI, 2, 2},
        {"emoji with a variation selector", "❤️", T_EMOJI, 1, 1},
        {"no emoji in letters", "abc 投诉", T_EMOJI, 0, 0},
        {"one !", "ok!", T_PUNCT, 1, 1},
        {"a run of !!!", "ok!!!", T_PUNCT, 1, 1},
        {"two runs of one", "ok! fine!", T_PUNCT, 1, 2},
        {"runs of 1, 2, 3 and 5", "a! b!! c!!! d!!!!!", T_PUNCT, 3, 4},
        {"! then ?", "why!?", T_PUNCT, 2, 2},
        {"full-width runs", "为什么？？！", T_PUNCT, 2, 2},
        {"a run broken by a letter", "!a!", T_PUNCT, 1, 2},
        {"no punct in words", "ok. fine, sure", T_PUNCT, 0, 0},
        {"a shouted word", "this is BAD", T_CAPS, 1, 1},
        {"two shouted words", "BAD SERVICE", T_CAPS, 1, 2},
        {"two letters are not shouting", "OK then", T_CAPS, 0, 0},
        {"mixed case is not shouting", "BAd", T_CAPS, 0, 0},
        {"digits are no letters", "AB1", T_CAPS, 0, 0},
        {"letters with digits", "ABC123", T_CAPS, 1, 1},
        {"latin-1 capitals", "ÀÉÎ", T_CAPS, 1, 1},
        {"cyrillic capitals", "ПЛОХО", T_CAPS, 1, 1},
        {"full-width capitals", "ＢＡＤ", T_CAPS, 1, 1},
        {"lower case", "bad", T_CAPS, 0, 0},
        {"CJK is not shouting", "投诉投诉", T_CAPS, 0, 0},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        clf_text_opts_t off = opts_of(24, 1, 2, 4, 2, 0), on = off;
        switch (cases[i].toggle) {
        case T_BIGRAM:
            on.word_ngram_max = 2;
            break;
        case T_EMOJI:
            on.flags = CLF_TEXT_EMOJI;
            break;
        case T_PUNCT:
            on.flags = CLF_TEXT_PUNCT;
            break;
        case T_CAPS:
            on.flags = CLF_TEXT_CAPS;
            break;
        }
        bag_t with, without;
        size_t len = strlen(cases[i].text), buckets = 0;
        float total = 0.0f;
        bag_text(&with, cases[i].label, &on, cases[i].text, len);
        bag_text(&without, cases[i].label, &off, cases[i].text, len);
        bool ok = bag_extra(&with, &without, &buckets, &total);
        CHECK(ok && buckets == cases[i].want_buckets && total == cases[i].want_total,
              "%s: the option %s %zu buckets counted %g times, want %zu and %g\n",
              cases[i].label, ok ? "adds" : "removes features and adds", buckets,
              (double)total, cases[i].want_buckets, (double)cases[i].want_total);
        bag_free(&with);
        bag_free(&without);
    }
    assert_int_equal(failures, 0);
}

/* ---- the vector ---- */

static void test_first_occurrence_order(void **state)
{
    const clf_text_opts_t o = opts_of(24, 1, 0, 0, 1, 0);
    const clf_feat_t *f;
    size_t n = clf_text_features(&o, "zeta alpha 中 zeta", strlen("zeta alpha 中 zeta"),
                                 scratch, &f);
    assert_int_equal(n, 3);
    assert_int_equal(f[0].index, clf_text_bucket(&o, 'w', "zeta"));
    assert_true(f[0].value == 2.0f);
    assert_int_equal(f[1].index, clf_text_bucket(&o, 'w', "alpha"));
    assert_true(f[1].value == 1.0f);
    assert_int_equal(f[2].index, clf_text_bucket(&o, 'h', "中"));
    assert_true(f[2].value == 1.0f);
}

/* A long text of n_words three-letter words (each used `repeat` times) and its spec. */
static char *long_text(size_t n_words, size_t repeat, char **spec)
{
    char *text = pl_malloc(n_words * repeat * 4 + 1), *sp = pl_malloc(n_words * repeat * 6 + 1);
    size_t tl = 0, sl = 0;
    for (size_t r = 0; r < repeat; r++)
        for (size_t w = 0; w < n_words; w++) {
            char word[4] = {(char)('a' + w / 676 % 26), (char)('a' + w / 26 % 26),
                            (char)('a' + w % 26), '\0'};
            tl += (size_t)sprintf(text + tl, "%s ", word);
            sl += (size_t)sprintf(sp + sl, "%sW:%s", sl ? "|" : "", word);
        }
    *spec = sp;
    return text;
}

/* Long texts take the sorting path: sorted by bucket, each once, and the same bag. */
static void test_long_text(void **state)
{
    static const unsigned bits[] = {12, 13, 17, 23, 24};
    char *spec;
    char *text = long_text(1500, 2, &spec);
    failures = 0;
    for (size_t i = 0; i < NELEMS(bits); i++) {
        const clf_text_opts_t o = opts_of(bits[i], 1, 2, 3, 0, 0);
        char label[64];
        snprintf(label, sizeof label, "long text, %u bits", bits[i]);
        const clf_feat_t *f;
        size_t n = clf_text_features(&o, text, strlen(text), scratch, &f);
        bool sorted = true;
        for (size_t k = 1; k < n; k++)
            sorted = sorted && f[k - 1].index < f[k].index;
        CHECK(n > 1000 || bits[i] == 12, "%s: only %zu buckets\n", label, n);
        CHECK(sorted, "%s: the features are not sorted by bucket\n", label);
        check_bag(label, &o, text, strlen(text), spec);
    }
    pl_free(text);
    pl_free(spec);
    assert_int_equal(failures, 0);
}

static bool same_vector(const clf_feat_t *a, size_t na, const clf_feat_t *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (a[i].index != b[i].index || a[i].value != b[i].value)
            return false;
    return true;
}

/* The same options and bytes give the same vector, order included, whatever the scratch
 * did before: fresh, reused after a long text, reused after a short one. */
static void test_deterministic(void **state)
{
    char *spec;
    char *long_one = long_text(800, 3, &spec);
    const char *texts[] = {
        "the parcel is late AGAIN!!! 😡", "我要投诉，快递三天还没到？？", "", "ok",
        "mixed 中文 and English 123 ＯＫ", long_one,
    };
    const clf_text_opts_t o = opts_of(18, 2, 1, 5, 3, CLF_TEXT_ALL_FLAGS);
    const char *order[] = {"fresh", "after all texts", "after the long text"};
    failures = 0;
    for (size_t i = 0; i < NELEMS(texts); i++) {
        size_t len = strlen(texts[i]);
        clf_text_scratch_t *fresh = clf_text_scratch_new();
        const clf_feat_t *f0, *f;
        size_t n0 = clf_text_features(&o, texts[i], len, fresh, &f0);
        for (size_t pass = 1; pass < NELEMS(order); pass++) {
            if (pass == 1)
                for (size_t j = 0; j < NELEMS(texts); j++)
                    (void)clf_text_features(&o, texts[j], strlen(texts[j]), scratch, &f);
            else
                (void)clf_text_features(&o, long_one, strlen(long_one), scratch, &f);
            size_t n = clf_text_features(&o, texts[i], len, scratch, &f);
            CHECK(same_vector(f, n, f0, n0), "text %zu %s: got %zu features, want %zu\n", i,
                  order[pass], n, n0);
        }
        size_t n = clf_text_features(&o, texts[i], len, fresh, &f);
        CHECK(same_vector(f, n, f0, n0), "text %zu twice in one scratch differs\n", i);
        clf_text_scratch_destroy(&fresh);
        CHECK(fresh == NULL, "scratch_destroy did not clear the pointer\n");
    }
    clf_text_scratch_t *none = NULL;
    clf_text_scratch_destroy(&none); /* NULL-safe both ways */
    clf_text_scratch_destroy(NULL);
    pl_free(long_one);
    pl_free(spec);
    assert_int_equal(failures, 0);
}

/* ---- clf_text_bucket ---- */

static void test_bucket(void **state)
{
    static const struct {
        const char *label;
        clf_text_opts_t o;
        const char *text;
        char kind;
        const char *token;
    } cases[] = {
        {"word", {20, 1, 0, 0, 0, 0}, "Refund", 'w', "refund"},
        {"word with digits", {20, 1, 0, 0, 0, 0}, "A380", 'w', "a000"},
        {"full-width word", {16, 1, 0, 0, 0, 0}, "ＯＫ", 'w', "ok"},
        {"cyrillic word", {12, 1, 0, 0, 0, 0}, "Плохо", 'w', "плохо"},
        {"char bigram", {24, 0, 2, 2, 0, 0}, "x", 'c', " x"},
        {"char trigram", {14, 0, 3, 3, 0, 0}, "x", 'c', " x "},
        {"char 5-gram", {22, 0, 5, 5, 0, 0}, "abcd", 'c', " abcd"},
        {"CJK unigram", {20, 0, 0, 0, 1, 0}, "诉", 'h', "诉"},
        {"CJK bigram", {20, 0, 0, 0, 2, 0}, "投诉", 'h', "投诉"},
        {"CJK trigram", {24, 0, 0, 0, 3, 0}, "我投诉", 'h', "我投诉"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        const clf_text_opts_t *o = &cases[i].o;
        uint32_t want = clf_text_bucket(o, cases[i].kind, cases[i].token);
        bag_t got;
        bag_text(&got, cases[i].label, o, cases[i].text, strlen(cases[i].text));
        CHECK(want < (1u << o->hash_bits) && bag_count(&got, want) == 1.0f,
              "%s: bucket %u of %c \"%s\" is not among the text's features\n", cases[i].label,
              want, cases[i].kind, cases[i].token);
        bag_free(&got);
    }
    const clf_text_opts_t o = opts_of(24, 1, 2, 2, 2, 0);
    CHECK(clf_text_bucket(&o, 'x', "ab") == UINT32_MAX, "unknown kind x\n");
    CHECK(clf_text_bucket(&o, 'W', "ab") == UINT32_MAX, "unknown kind W\n");
    CHECK(clf_text_bucket(&o, '\0', "ab") == UINT32_MAX, "unknown kind NUL\n");
    /* kinds are hashed apart (at 24 bits a chance collision would be a 1 in 2^24 fluke,
     * and these inputs are fixed) */
    CHECK(clf_text_bucket(&o, 'w', "ab") != clf_text_bucket(&o, 'c', "ab"), "w and c collide\n");
    CHECK(clf_text_bucket(&o, 'w', "中") != clf_text_bucket(&o, 'h', "中"), "w and h collide\n");
    CHECK(clf_text_bucket(&o, 'c', "中") != clf_text_bucket(&o, 'h', "中"), "c and h collide\n");
    for (unsigned bits = CLF_HASH_BITS_MIN; bits <= CLF_HASH_BITS_MAX; bits++) {
        const clf_text_opts_t ob = opts_of(bits, 1, 2, 2, 2, 0);
        uint32_t a = clf_text_bucket(&ob, 'w', "refund"), b = clf_text_bucket(&ob, 'w', "refund");
        CHECK(a == b && a < (1u << bits), "%u bits: bucket %u, then %u\n", bits, a, b);
    }
    assert_int_equal(failures, 0);
}

/* ---- CLF_TEXT_MAX_BYTES ---- */

/* buf[0..size) filled with prefix, then filler over and over. */
static char *filled(size_t size, const char *prefix, const char *filler)
{
    char *buf = pl_malloc(size);
    size_t pl = strlen(prefix), fl = strlen(filler);
    memcpy(buf, prefix, pl < size ? pl : size);
    for (size_t i = pl; i < size; i++)
        buf[i] = filler[(i - pl) % fl];
    return buf;
}

static void test_max_bytes(void **state)
{
    static const char *const fillers[] = {"中", "éa", "😀", "退款 refund ", "Ёж!", "ＯＫ "};
    static const char *const prefixes[] = {"", "x", "xy", "xyz"};
    const size_t size = CLF_TEXT_MAX_BYTES + 200;
    const clf_text_opts_t o = opts_of(20, 2, 1, 4, 3, CLF_TEXT_ALL_FLAGS);
    failures = 0;
    /* every way a sequence can straddle the limit: the rest of it is not read, and the
     * text counts as if cut back to the character boundary */
    for (size_t f = 0; f < NELEMS(fillers); f++) {
        for (size_t p = 0; p < NELEMS(prefixes); p++) {
            char label[96];
            snprintf(label, sizeof label, "filler \"%s\" after %zu bytes", fillers[f], p);
            char *buf = filled(size, prefixes[p], fillers[f]);
            size_t boundary = cut_back(buf, CLF_TEXT_MAX_BYTES, size);
            bag_t got, want;
            bag_text(&got, label, &o, buf, size);
            bag_text(&want, label, &o, buf, boundary);
            CHECK(CLF_TEXT_MAX_BYTES - boundary < 4 && bag_eq(&got, &want),
                  "%s: features differ from the %zu bytes up to the boundary\n", label,
                  boundary);
            bag_free(&got);
            bag_free(&want);
            pl_free(buf);
        }
    }
    /* a word across the limit counts only with the letters before it */
    char *buf = filled(size, "", "ab ");
    memcpy(buf + CLF_TEXT_MAX_BYTES - 3, " qqqqqq ", 8);
    const clf_text_opts_t ow = opts_of(24, 1, 0, 0, 0, 0);
    bag_t got;
    bag_text(&got, "word across the limit", &ow, buf, size);
    CHECK(bag_count(&got, clf_text_bucket(&ow, 'w', "qq")) == 1.0f &&
              bag_count(&got, clf_text_bucket(&ow, 'w', "qqqqqq")) == 0.0f,
          "word across the limit: want \"qq\" once and no \"qqqqqq\"\n");
    bag_free(&got);
    pl_free(buf);
    /* only CLF_TEXT_MAX_BYTES are read even when len says more: under ASan a read past
     * this block of exactly CLF_TEXT_MAX_BYTES fails */
    buf = filled(CLF_TEXT_MAX_BYTES, "", "投诉 complaint ");
    const clf_feat_t *f1, *f2;
    size_t n1 = clf_text_features(&o, buf, CLF_TEXT_MAX_BYTES, scratch, &f1);
    bag_t a = {0}, b = {0};
    for (size_t i = 0; i < n1; i++)
        bag_add(&a, f1[i].index, f1[i].value);
    size_t n2 = clf_text_features(&o, buf, (size_t)CLF_TEXT_MAX_BYTES * 4, scratch, &f2);
    for (size_t i = 0; i < n2; i++)
        bag_add(&b, f2[i].index, f2[i].value);
    bag_norm(&a);
    bag_norm(&b);
    CHECK(n1 > 0 && bag_eq(&a, &b), "a len past the limit reads differently\n");
    bag_free(&a);
    bag_free(&b);
    pl_free(buf);
    assert_int_equal(failures, 0);
}

/* ---- options ---- */

static void test_opts_check(void **state)
{
    static const struct {
        const char *label;
        clf_text_opts_t o;
        int want;
    } cases[] = {
        {"typical", {20, 2, 2, 4, 2, CLF_TEXT_EMOJI | CLF_TEXT_PUNCT}, 0},
        {"smallest hash", {CLF_HASH_BITS_MIN, 1, 1, 1, 1, 0}, 0},
        {"largest hash", {CLF_HASH_BITS_MAX, 1, 1, 1, 1, 0}, 0},
        {"hash below range", {CLF_HASH_BITS_MIN - 1, 1, 1, 1, 1, 0}, PL_EINVAL},
        {"hash above range", {CLF_HASH_BITS_MAX + 1, 1, 1, 1, 1, 0}, PL_EINVAL},
        {"hash 0", {0, 1, 1, 1, 1, 0}, PL_EINVAL},
        {"hash 64", {64, 1, 1, 1, 1, 0}, PL_EINVAL},
        {"no word features", {16, 0, 2, 4, 2, 0}, 0},
        {"word bigrams", {16, 2, 2, 4, 2, 0}, 0},
        {"word trigrams", {16, 3, 2, 4, 2, 0}, PL_EINVAL},
        {"no char n-grams", {16, 1, 0, 0, 2, 0}, 0},
        {"char_max 0 ignores char_min", {16, 1, 9, 0, 2, 0}, 0},
        {"char 1..6", {16, 1, 1, 6, 2, 0}, 0},
        {"char 6..6", {16, 1, 6, 6, 2, 0}, 0},
        {"char_max 7", {16, 1, 1, 7, 2, 0}, PL_EINVAL},
        {"char_min 0", {16, 1, 0, 3, 2, 0}, PL_EINVAL},
        {"char_min above char_max", {16, 1, 4, 3, 2, 0}, PL_EINVAL},
        {"no CJK features", {16, 1, 2, 4, 0, 0}, 0},
        {"CJK trigrams", {16, 1, 2, 4, 3, 0}, 0},
        {"CJK 4-grams", {16, 1, 2, 4, 4, 0}, PL_EINVAL},
        {"every flag", {16, 1, 2, 4, 2, CLF_TEXT_ALL_FLAGS}, 0},
        {"unknown flag", {16, 1, 2, 4, 2, CLF_TEXT_ALL_FLAGS + 1}, PL_EINVAL},
        {"top flag", {16, 1, 2, 4, 2, 0x80}, PL_EINVAL},
        {"nothing at all", {16, 0, 0, 0, 0, 0}, 0},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        int got = clf_text_opts_check(&cases[i].o);
        CHECK(got == cases[i].want, "%s: got %d, want %d\n", cases[i].label, got, cases[i].want);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_ngrams),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_equivalent),
        cmocka_unit_test(test_optional_features),
        cmocka_unit_test(test_first_occurrence_order),
        cmocka_unit_test(test_long_text),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_max_bytes),
        cmocka_unit_test(test_opts_check),
    };
    return cmocka_run_group_tests(tests, make_scratch, free_scratch);
}
