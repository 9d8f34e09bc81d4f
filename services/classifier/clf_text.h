/*
 * clf_text: complaint text -> hashed n-gram features for the classifier's
 * model (clf_model).
 *
 * The text is read as UTF-8 and cut into runs by script:
 * - Latin, Greek, Cyrillic and other alphabetic words (letters and digits):
 *   lower-cased, every digit folded to '0'; features are word unigrams, word
 *   bigrams and character n-grams of the word padded with a space on each
 *   side (like scikit-learn's char_wb analyzer);
 * - CJK runs (Han, kana, hangul): character unigrams, bigrams and optionally
 *   trigrams inside the run; optionally (CLF_TEXT_CJK_PUNCT) punctuation that
 *   follows a CJK character stays in the run, so that the n-grams see it
 *   ("了！", "，但", "。。"): in Chinese reviews it carries much of the tone;
 * - each emoji, and runs of "!" / "！" and "?" / "？" by length (1, 2, 3+);
 * - optionally a feature for a shouted (all upper-case) word.
 * Everything else, and every byte that is not valid UTF-8, separates. Full-
 * width ASCII letters and digits count as their ASCII forms.
 *
 * Each feature is hashed (FNV-1a over code points, with a per-kind seed, then
 * a murmur3 finaliser) into one of 2^hash_bits buckets. The result is a
 * sparse vector of (bucket, count), each bucket once; weighting (sublinear tf, idf, L2 norm) is clf_model's job because the idf
 * lives in the model.
 *
 * Trusts nothing about the bytes (invalid UTF-8 never overreads); reads at most
 * CLF_TEXT_MAX_BYTES of a text. Owns nothing beyond its scratch.
 */
#ifndef CLF_TEXT_H
#define CLF_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of a text that are looked at: a 64 KiB body, a subject and some slack.
 * The rest is ignored (cut back to a character boundary). */
#define CLF_TEXT_MAX_BYTES (80 * 1024)

#define CLF_HASH_BITS_MIN 12
#define CLF_HASH_BITS_MAX 24

/* flags of clf_text_opts_t */
enum {
    CLF_TEXT_EMOJI = 1 << 0, /* each emoji is a feature */
    CLF_TEXT_PUNCT = 1 << 1, /* runs of ! and ? by length */
    CLF_TEXT_CAPS = 1 << 2,  /* a word of 3+ letters all in upper case */
    CLF_TEXT_CJK_PUNCT = 1 << 3, /* punctuation right after a CJK character joins the run:
                                  * , . ! ? ; : ~ ( ) " ' - (full-width folded to these),
                                  * 、 。 … — · ‘ ’ “ ” 《 》 「 」 【 】 */
    CLF_TEXT_ALL_FLAGS = CLF_TEXT_EMOJI | CLF_TEXT_PUNCT | CLF_TEXT_CAPS | CLF_TEXT_CJK_PUNCT,
};

/* How features are made; stored in the model so that prediction uses the
 * options the model was trained with. */
typedef struct clf_text_opts {
    uint8_t hash_bits;      /* CLF_HASH_BITS_MIN..MAX */
    uint8_t word_ngram_max; /* 0 (no word features), 1 or 2 */
    uint8_t char_min;       /* char n-grams of padded words: char_min..char_max, */
    uint8_t char_max;       /* 1..6; char_max 0 = none */
    uint8_t cjk_ngram_max;  /* 0 (no CJK features), 1, 2 or 3 */
    uint8_t flags;          /* CLF_TEXT_* */
} clf_text_opts_t;

/* One feature: bucket and (here) how many times it occurs. */
typedef struct clf_feat {
    uint32_t index;
    float value;
} clf_feat_t;

typedef struct clf_text_scratch clf_text_scratch_t;

/* The defaults plaintctl train uses (hash_bits 20). */
void clf_text_opts_default(clf_text_opts_t *opts);
/* 0 if opts are within the ranges above, else PL_EINVAL (no details: the
 * callers name the source, a file or a command-line flag). */
int clf_text_opts_check(const clf_text_opts_t *opts);

/* Scratch space for one thread's extraction; grows to the largest text seen
 * (12 bytes per emitted feature: about 6 MiB for CLF_TEXT_MAX_BYTES of
 * Latin text) and is reused. Caller destroys. */
clf_text_scratch_t *clf_text_scratch_new(void);
/* NULL-safe; sets *scratch_p to NULL. */
void clf_text_scratch_destroy(clf_text_scratch_t **scratch_p);

/* Extracts the features of text[0..len). Returns the number of distinct
 * buckets and points *feats at them (value = count): in first-occurrence
 * order for short texts, sorted by bucket for long ones (so that the model
 * reads its tables in address order); *feats is borrowed from scratch and
 * valid until its next use.
 * Deterministic: the same options and bytes give the same vector. */
size_t clf_text_features(const clf_text_opts_t *opts, const char *text, size_t len,
                         clf_text_scratch_t *scratch, const clf_feat_t **feats);

/* The bucket one token would hash to, for tests and debugging: kind is
 * 'w' (word unigram; text is the normalised word), 'c' (char n-gram of a
 * padded word, e.g. " ab"), 'h' (CJK n-gram, e.g. "投诉"). Returns UINT32_MAX
 * for an unknown kind. */
uint32_t clf_text_bucket(const clf_text_opts_t *opts, char kind, const char *token);

#endif
