/*
 * clf_text: UTF-8 text -> hashed n-gram features (see clf_text.h).
 *
 * One pass over the bytes: a decoder that never reads past len and turns
 * every invalid byte into a separator, a character classifier, and three
 * small state machines (the current word, the current CJK run, the current
 * run of ! or ?). N-grams are hashed from a sliding window of the last
 * characters packed into integers (one multiply-xorshift per n-gram, not a
 * pass over its characters), and the buckets are appended to an array that
 * is counted at the end (a small hash table for short texts, a radix sort
 * for long ones). The only memory touched per call is the scratch, which
 * grows to the largest text seen and is then reused.
 */
#include "clf_text.h"

#include <string.h>

#include "pl_alloc.h"
#include "pl_err.h"

#define WORD_MAX 64    /* code points of a word that count; the rest are ignored */
#define CP_BAD 0xFFFFu /* stands for an invalid byte: a separator */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

/* Seeds that keep kinds of feature apart: the word "ab" and the character
 * bigram "ab" must not share a bucket by construction. */
enum {
    SEED_WORD = 1,
    SEED_BIGRAM = 2,
    SEED_CHAR = 3,
    SEED_CJK = 4,
    SEED_EMOJI = 5,
    SEED_PUNCT = 6,
    SEED_CAPS = 7,
};

typedef enum { C_SEP, C_WORD, C_CJK, C_EMOJI, C_BANG, C_QUEST, C_SKIP } cls_t;

/* Up to SMALL_MAX emitted features are counted in a hash table of
 * 2 * SMALL_MAX slots (16 KiB: stays in L1); more are sorted. */
#define SMALL_MAX 1024

struct clf_text_scratch {
    uint32_t *keys, *tmp; /* buckets as emitted, and room for sorting them */
    size_t nkeys, key_cap;
    clf_feat_t *feats;
    size_t feat_cap;
    uint64_t slots[2 * SMALL_MAX]; /* (bucket + 1) << 32 | position; 0 = empty */
};

/* Everything one extraction needs. */
typedef struct ctx {
    const clf_text_opts_t *o;
    clf_text_scratch_t *s;
    unsigned shift; /* 64 - hash_bits */
    /* the current word: its FNV hash, its padded length so far, and its last
     * eight characters (16 bits each) for the character n-grams */
    uint64_t wh;
    size_t wlen, plen;
    uint64_t win, win2;
    unsigned upper, lower;
    uint64_t prev_word; /* hash of the previous word; 0 = none */
    /* the current CJK run: its last three characters (21 bits each) */
    uint64_t cjk;
    size_t cjk_len;
    /* the current run of ! or ? */
    cls_t punct;
    size_t punct_len;
} ctx_t;

/* The bucket of key for a kind of feature: a multiply-xorshift finaliser
 * (splitmix64's), top bits. */
static inline uint32_t bucket_of(uint64_t key, unsigned seed, unsigned shift)
{
    uint64_t x = key ^ ((uint64_t)seed * 0x9E3779B97F4A7C15ULL);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return (uint32_t)(x >> shift);
}

/* Code points as 16-bit window cells: exact below U+10000 (all of the word
 * scripts in practice), folded above; never 0, which the packing relies on to
 * keep n-grams of different lengths apart. */
static inline uint64_t cell(uint32_t cp)
{
    uint32_t v = cp < 0x10000 ? cp : ((cp & 0xFFFF) ^ (cp >> 16) ^ 0x8000);
    return v ? v : 0x8000;
}

/* The n-gram (1..8) of the last n characters of the window. */
static inline uint64_t gram_key(uint64_t win, uint64_t win2, unsigned n)
{
    if (n < 4)
        return win & ((1ULL << (16 * n)) - 1);
    if (n == 4)
        return win;
    uint64_t hi = n == 8 ? win2 : win2 & ((1ULL << (16 * (n - 4))) - 1);
    return win ^ (hi * 0xD6E8FEB86659FD93ULL);
}

static inline uint64_t fnv_seed(unsigned seed)
{
    return (FNV_OFFSET ^ seed) * FNV_PRIME;
}

static inline uint64_t fnv_step(uint64_t h, uint32_t cp)
{
    return (h ^ cp) * FNV_PRIME;
}

void clf_text_opts_default(clf_text_opts_t *opts)
{
    *opts = (clf_text_opts_t){
        .hash_bits = 20,
        .word_ngram_max = 2,
        .char_min = 2,
        .char_max = 4,
        .cjk_ngram_max = 2,
        .flags = CLF_TEXT_EMOJI | CLF_TEXT_PUNCT | CLF_TEXT_CJK_PUNCT,
    };
}

int clf_text_opts_check(const clf_text_opts_t *o)
{
    if (o->hash_bits < CLF_HASH_BITS_MIN || o->hash_bits > CLF_HASH_BITS_MAX)
        return PL_EINVAL;
    if (o->word_ngram_max > 2 || o->cjk_ngram_max > 3 || (o->flags & ~CLF_TEXT_ALL_FLAGS))
        return PL_EINVAL;
    if (o->char_max != 0 && (o->char_min < 1 || o->char_min > o->char_max || o->char_max > 6))
        return PL_EINVAL;
    return 0;
}

clf_text_scratch_t *clf_text_scratch_new(void)
{
    return pl_calloc(1, sizeof(clf_text_scratch_t));
}

void clf_text_scratch_destroy(clf_text_scratch_t **scratch_p)
{
    if (!scratch_p || !*scratch_p)
        return;
    clf_text_scratch_t *s = *scratch_p;
    pl_free(s->keys);
    pl_free(s->tmp);
    pl_free(s->feats);
    pl_free(s);
    *scratch_p = NULL;
}

/* ---- counting ---- */

/* Features are counted by sorting the emitted buckets and counting runs: the
 * writes while extracting are sequential, and the sorted result lets the
 * model read its tables in address order. */

static void grow_keys(clf_text_scratch_t *s)
{
    s->key_cap = s->key_cap ? s->key_cap * 2 : 4096;
    s->keys = pl_realloc(s->keys, s->key_cap * sizeof *s->keys);
}

static inline void emit(ctx_t *c, uint64_t key, unsigned seed)
{
    clf_text_scratch_t *s = c->s;
    if (s->nkeys == s->key_cap)
        grow_keys(s);
    s->keys[s->nkeys++] = bucket_of(key, seed, c->shift);
}

/* LSD radix sort of keys[0..n) below 2^bits in two passes (digits of at
 * most 12 bits: both histograms fit in L1 and are counted in one read);
 * returns the array holding the result (keys or tmp). */
static uint32_t *radix_sort(clf_text_scratch_t *s, size_t n, unsigned bits)
{
    enum { DIGIT_MAX = 12 };
    const unsigned lo_bits = (bits + 1) / 2, hi_bits = bits - lo_bits;
    const uint32_t lo_mask = (1u << lo_bits) - 1;
    uint32_t lo[(1 << DIGIT_MAX) + 1], hi[(1 << DIGIT_MAX) + 1];
    memset(lo, 0, ((size_t)lo_mask + 2) * sizeof *lo);
    memset(hi, 0, (((size_t)1 << hi_bits) + 1) * sizeof *hi);
    uint32_t *a = s->keys, *b = s->tmp;
    for (size_t i = 0; i < n; i++) {
        lo[(a[i] & lo_mask) + 1]++;
        hi[(a[i] >> lo_bits) + 1]++;
    }
    for (size_t d = 1; d <= lo_mask + 1; d++)
        lo[d] += lo[d - 1];
    for (size_t d = 1; d <= ((size_t)1 << hi_bits); d++)
        hi[d] += hi[d - 1];
    for (size_t i = 0; i < n; i++)
        b[lo[a[i] & lo_mask]++] = a[i];
    for (size_t i = 0; i < n; i++)
        a[hi[b[i] >> lo_bits]++] = b[i];
    return a;
}

/* Counts few keys with the hash table, in first-occurrence order, and
 * leaves the table empty again. */
static size_t count_small(clf_text_scratch_t *s, size_t n)
{
    size_t mask = 63, out = 0;
    while (mask + 1 < 2 * n)
        mask = mask * 2 + 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t key = s->keys[i];
        size_t h = key & mask;
        for (;;) {
            uint64_t v = s->slots[h];
            if (!v) {
                s->slots[h] = ((uint64_t)key + 1) << 32 | out;
                s->feats[out++] = (clf_feat_t){key, 1.0f};
                break;
            }
            if (v >> 32 == (uint64_t)key + 1) {
                s->feats[(uint32_t)v].value += 1.0f;
                break;
            }
            h = (h + 1) & mask;
        }
    }
    for (size_t i = 0; i < out; i++) { /* clear exactly the slots used */
        size_t h = s->feats[i].index & mask;
        while (s->slots[h] >> 32 != (uint64_t)s->feats[i].index + 1)
            h = (h + 1) & mask;
        s->slots[h] = 0;
    }
    return out;
}

/* Counts runs of equal keys in sorted k[0..n) (n >= 1) without branching on
 * the data, whose duplicates come at random. */
static size_t count_runs(clf_feat_t *feats, const uint32_t *k, size_t n)
{
    size_t out = 0;
    uint32_t c = 1;
    feats[0] = (clf_feat_t){k[0], 1.0f};
    for (size_t i = 1; i < n; i++) {
        uint32_t same = k[i] == k[i - 1];
        out += 1 - same;
        c = same ? c + 1 : 1;
        feats[out] = (clf_feat_t){k[i], (float)c};
    }
    return out + 1;
}

/* Counts the emitted buckets into feats. */
static size_t count_keys(clf_text_scratch_t *s, unsigned bits)
{
    size_t n = s->nkeys;
    if (!n)
        return 0;
    if (s->feat_cap < s->key_cap) {
        s->feat_cap = s->key_cap;
        s->feats = pl_realloc(s->feats, s->feat_cap * sizeof *s->feats);
    }
    if (n <= SMALL_MAX)
        return count_small(s, n);
    s->tmp = pl_realloc(s->tmp, s->key_cap * sizeof *s->tmp);
    return count_runs(s->feats, radix_sort(s, n, bits), n);
}

/* ---- UTF-8 and characters ---- */

/* Decodes the sequence at p[0..n) (n >= 1) into *cp; returns its length, or
 * 1 with *cp = CP_BAD when it is not valid UTF-8 (RFC 3629). */
static size_t decode(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char b = p[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 2;
        v = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 3;
        v = b & 0x0F;
        lo = b == 0xE0 ? 0xA0 : 0x80;
        hi = b == 0xED ? 0x9F : 0xBF;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 4;
        v = b & 0x07;
        lo = b == 0xF0 ? 0x90 : 0x80;
        hi = b == 0xF4 ? 0x8F : 0xBF;
    } else {
        *cp = CP_BAD;
        return 1;
    }
    if (n < need || p[1] < lo || p[1] > hi) {
        *cp = CP_BAD;
        return 1;
    }
    v = v << 6 | (p[1] & 0x3F);
    for (size_t i = 2; i < need; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            *cp = CP_BAD;
            return 1;
        }
        v = v << 6 | (p[i] & 0x3F);
    }
    *cp = v;
    return need;
}

/* Latin, Greek and Cyrillic upper case -> lower case (the common blocks). */
static uint32_t fold_case(uint32_t cp, unsigned *upper)
{
    if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) || (cp >= 0x391 && cp <= 0x3AB) ||
        (cp >= 0x410 && cp <= 0x42F)) {
        (*upper)++;
        return cp + 0x20;
    }
    if (cp >= 0x400 && cp <= 0x40F) {
        (*upper)++;
        return cp + 0x50;
    }
    /* Latin Extended-A: pairs of upper (even) and lower (odd) case, with two
     * stretches the other way round. */
    if ((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177)) {
        if (!(cp & 1)) {
            (*upper)++;
            return cp + 1;
        }
    } else if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) {
        if (cp & 1) {
            (*upper)++;
            return cp + 1;
        }
    }
    return cp;
}

static cls_t classify_ascii(uint32_t cp, uint32_t *norm, unsigned *upper, unsigned *lower)
{
    if (cp >= 'a' && cp <= 'z') {
        (*lower)++;
        *norm = cp;
        return C_WORD;
    }
    if (cp >= 'A' && cp <= 'Z') {
        (*upper)++;
        *norm = cp + 32;
        return C_WORD;
    }
    if (cp >= '0' && cp <= '9') {
        *norm = '0'; /* a number's length says more than its digits */
        return C_WORD;
    }
    return cp == '!' ? C_BANG : cp == '?' ? C_QUEST : C_SEP;
}

static cls_t classify_wide(uint32_t cp, uint32_t *norm, unsigned *upper, unsigned *lower)
{
    /* Full-width forms (U+FF01..U+FF5E) are ASCII in CJK typing. */
    if (cp >= 0xFF01 && cp <= 0xFF5E)
        return classify_ascii(cp - 0xFEE0, norm, upper, lower);
    if (cp >= 0xFF66 && cp <= 0xFF9F)
        return C_CJK; /* half-width katakana */
    return C_SEP;
}

/* The class of code point cp; *norm is the form to hash for words. */
static cls_t classify(uint32_t cp, uint32_t *norm, unsigned *upper, unsigned *lower)
{
    *norm = cp;
    if (cp < 0x80)
        return classify_ascii(cp, norm, upper, lower);
    if (cp < 0xC0)
        return cp == 0xAA || cp == 0xB5 || cp == 0xBA ? C_WORD : C_SEP;
    if (cp < 0x300) {
        if (cp == 0xD7 || cp == 0xF7)
            return C_SEP;
        unsigned before = *upper;
        *norm = fold_case(cp, upper);
        if (*upper == before)
            (*lower)++;
        return C_WORD;
    }
    if (cp < 0x370)
        return C_SKIP; /* combining marks stay inside the word */
    if (cp < 0x2000) {
        unsigned before = *upper;
        *norm = fold_case(cp, upper);
        if (*upper == before)
            (*lower)++;
        return C_WORD;
    }
    if (cp < 0x2E80) {
        if (cp == 0x200C || cp == 0x200D)
            return C_SKIP; /* joiners inside emoji sequences and scripts */
        if (cp == 0x203C || cp == 0x2049)
            return C_BANG;
        if (cp == 0x2047 || cp == 0x2048)
            return C_QUEST;
        if ((cp >= 0x2600 && cp <= 0x27BF) || cp == 0x2B50 || cp == 0x2B55 ||
            (cp >= 0x231A && cp <= 0x231B) || (cp >= 0x23E9 && cp <= 0x23FA))
            return C_EMOJI;
        return C_SEP;
    }
    if (cp < 0x3000)
        return C_CJK; /* radicals */
    if (cp < 0x3040)
        return cp == 0x3005 || cp == 0x3007 ? C_CJK : C_SEP; /* CJK punctuation */
    if (cp < 0x3200)
        return cp == 0x30FB ? C_SEP : C_CJK; /* kana, bopomofo */
    if (cp < 0x3400)
        return C_SEP; /* enclosed letters, compatibility */
    if (cp < 0xA000)
        return cp >= 0x4DC0 && cp <= 0x4DFF ? C_SEP : C_CJK;
    if (cp < 0xAC00)
        return C_WORD;
    if (cp < 0xD7B0)
        return C_CJK; /* hangul */
    if (cp < 0xF900)
        return C_SEP; /* private use */
    if (cp < 0xFB00)
        return C_CJK;
    if (cp < 0xFE00)
        return C_WORD;
    if (cp < 0xFE10)
        return C_SKIP; /* variation selectors */
    if (cp < 0xFF00)
        return C_SEP;
    if (cp < 0x10000)
        return classify_wide(cp, norm, upper, lower);
    if (cp >= 0x1F3FB && cp <= 0x1F3FF)
        return C_SKIP; /* skin tones */
    if (cp >= 0x1F000 && cp <= 0x1FAFF)
        return C_EMOJI;
    if (cp >= 0x20000 && cp <= 0x3FFFF)
        return C_CJK;
    if (cp >= 0xE0000)
        return C_SKIP; /* tags, variation selectors, private use */
    return C_WORD;
}

/* ---- features ---- */

/* Pushes one character (a window cell) onto the current word's window and
 * emits the character n-grams that end with it. */
static inline void push_char(ctx_t *c, uint64_t v)
{
    c->win2 = c->win2 << 16 | c->win >> 48;
    c->win = c->win << 16 | v;
    c->plen++;
    unsigned lo = c->o->char_min, hi = c->o->char_max;
    if (hi > c->plen)
        hi = (unsigned)c->plen;
    for (unsigned n = lo; n <= hi; n++)
        emit(c, gram_key(c->win, c->win2, n), SEED_CHAR);
}

static void start_word(ctx_t *c)
{
    c->wh = fnv_seed(SEED_WORD);
    c->win = ' ';
    c->win2 = 0;
    c->plen = 1;
    /* push_char only emits n-grams that end in a pushed character, so the leading pad's
     * 1-gram needs its own: char_wb counts " " twice for " ab " */
    if (c->o->char_max && c->o->char_min == 1)
        emit(c, gram_key(c->win, c->win2, 1), SEED_CHAR);
}

static inline void word_char(ctx_t *c, uint32_t norm)
{
    if (!c->wlen)
        start_word(c);
    if (c->wlen >= WORD_MAX)
        return;
    c->wlen++;
    c->wh = fnv_step(c->wh, norm);
    if (c->o->char_max)
        push_char(c, cell(norm));
}

static void end_word(ctx_t *c)
{
    if (!c->wlen)
        return;
    const clf_text_opts_t *o = c->o;
    if (o->word_ngram_max >= 1)
        emit(c, c->wh, SEED_WORD);
    if (o->word_ngram_max >= 2 && c->prev_word)
        emit(c, c->prev_word * 0x9FB21C651E98DF25ULL ^ c->wh, SEED_BIGRAM);
    if (o->char_max) {
        push_char(c, ' ');
        if (c->plen < o->char_min) /* shorter than every n: the padded word once */
            emit(c, gram_key(c->win, c->win2, (unsigned)c->plen), SEED_CHAR);
    }
    if ((o->flags & CLF_TEXT_CAPS) && c->upper >= 3 && !c->lower)
        emit(c, 0, SEED_CAPS);
    c->prev_word = c->wh ? c->wh : 1;
    c->wlen = 0;
    c->upper = c->lower = 0;
}

static void end_punct(ctx_t *c)
{
    if (!c->punct_len)
        return;
    if (c->o->flags & CLF_TEXT_PUNCT) {
        uint64_t n = c->punct_len > 3 ? 3 : c->punct_len;
        emit(c, (c->punct == C_BANG ? '!' : '?') << 8 | n, SEED_PUNCT);
    }
    c->punct_len = 0;
}

static void cjk_char(ctx_t *c, uint32_t cp)
{
    unsigned max = c->o->cjk_ngram_max;
    c->prev_word = 0; /* a CJK run separates Latin words */
    if (!max)
        return;
    c->cjk = c->cjk_len ? c->cjk << 21 | cp : cp;
    c->cjk_len++;
    emit(c, cp, SEED_CJK);
    if (max >= 2 && c->cjk_len >= 2)
        emit(c, c->cjk & ((1ULL << 42) - 1), SEED_CJK);
    if (max >= 3 && c->cjk_len >= 3)
        emit(c, c->cjk & ((1ULL << 63) - 1), SEED_CJK);
}

/* The punctuation CLF_TEXT_CJK_PUNCT keeps in a CJK run, full-width forms
 * folded to ASCII; 0 for anything else. */
static uint32_t cjk_punct(uint32_t cp)
{
    if (cp >= 0xFF01 && cp <= 0xFF5E)
        cp -= 0xFEE0;
    switch (cp) {
    case ',': case '.': case '!': case '?': case ';': case ':': case '~': case '(': case ')':
    case '"': case '\'': case '-':
    case 0x00B7: case 0x2014: case 0x2018: case 0x2019: case 0x201C: case 0x201D:
    case 0x2026: case 0x3001: case 0x3002: case 0x300A: case 0x300B: case 0x300C:
    case 0x300D: case 0x3010: case 0x3011:
        return cp;
    default:
        return 0;
    }
}

/* Everything but letters and digits (which word_char takes directly). */
static void step_other(ctx_t *c, cls_t k, uint32_t cp)
{
    if (k == C_SKIP)
        return;
    end_word(c);
    /* punctuation after a CJK character stays in the run (CLF_TEXT_CJK_PUNCT) */
    uint32_t joins = c->cjk_len && (c->o->flags & CLF_TEXT_CJK_PUNCT) &&
                             (k == C_SEP || k == C_BANG || k == C_QUEST)
                         ? cjk_punct(cp)
                         : 0;
    if (k != C_CJK && !joins)
        c->cjk_len = 0;
    if (k != c->punct)
        end_punct(c);
    switch (k) {
    case C_CJK:
        cjk_char(c, cp);
        break;
    case C_EMOJI:
        if (c->o->flags & CLF_TEXT_EMOJI)
            emit(c, cp, SEED_EMOJI);
        break;
    case C_BANG:
    case C_QUEST:
        c->punct = k;
        c->punct_len++;
        break;
    default:
        break;
    }
    if (joins)
        cjk_char(c, joins);
}

static inline void step_word(ctx_t *c, uint32_t norm, unsigned up, unsigned low)
{
    c->cjk_len = 0;
    if (c->punct_len)
        end_punct(c);
    c->punct = C_SEP;
    c->upper += up;
    c->lower += low;
    word_char(c, norm);
}

static void step(ctx_t *c, uint32_t cp)
{
    uint32_t norm;
    unsigned up = 0, low = 0;
    cls_t k = cp == CP_BAD ? C_SEP : classify(cp, &norm, &up, &low);
    if (k == C_WORD)
        step_word(c, norm, up, low);
    else
        step_other(c, k, cp);
}

/* ASCII, the common case, by table: the normalised letter or digit, or 0. */
static const uint8_t ascii_norm[128] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 0, 0, 0, 0, 0, 0,
    0, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 0, 0, 0, 0, 0,
    0, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 0, 0, 0, 0, 0,
};

size_t clf_text_features(const clf_text_opts_t *opts, const char *text, size_t len,
                         clf_text_scratch_t *scratch, const clf_feat_t **feats)
{
    if (len > CLF_TEXT_MAX_BYTES)
        len = CLF_TEXT_MAX_BYTES; /* a sequence cut here decodes as separators */
    scratch->nkeys = 0;
    ctx_t c = {.o = opts, .s = scratch, .shift = 64u - opts->hash_bits, .punct = C_SEP};
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char b = p[i];
        if (b < 0x80 && ascii_norm[b]) {
            i++;
            unsigned up = b >= 'A' && b <= 'Z';
            step_word(&c, ascii_norm[b], up, !up && b > '9');
            continue;
        }
        uint32_t cp;
        i += decode(p + i, len - i, &cp);
        step(&c, cp);
    }
    step(&c, ' ');
    end_punct(&c);
    size_t n = count_keys(scratch, opts->hash_bits);
    *feats = scratch->feats;
    return n;
}

uint32_t clf_text_bucket(const clf_text_opts_t *opts, char kind, const char *token)
{
    const unsigned char *p = (const unsigned char *)token;
    size_t len = strlen(token), i = 0;
    unsigned shift = 64u - opts->hash_bits, n = 0;
    uint64_t h = fnv_seed(SEED_WORD), win = 0, win2 = 0, cjk = 0;
    while (i < len) {
        uint32_t cp;
        i += decode(p + i, len - i, &cp);
        h = fnv_step(h, cp);
        win2 = win2 << 16 | win >> 48;
        win = win << 16 | cell(cp);
        cjk = cjk << 21 | cp;
        n++;
    }
    if (kind == 'w')
        return bucket_of(h, SEED_WORD, shift);
    if (kind == 'c' && n >= 1 && n <= 8)
        return bucket_of(gram_key(win, win2, n), SEED_CHAR, shift);
    if (kind == 'h' && n >= 1 && n <= 3)
        return bucket_of(cjk & ((1ULL << (21 * n)) - 1), SEED_CJK, shift);
    return UINT32_MAX;
}
