/*
 * clf_rules: the classifier's domain rules (see clf_rules.h and README-rules.md).
 *
 * Trusts the config file only after checking every field of it, and the case text not at
 * all: any bytes, any length. Owns everything that hangs off clf_rules_t; that is built once
 * by the loader and never written again, and clf_rules_apply() keeps its state in scratch
 * memory of its own, so concurrent calls share nothing writable.
 *
 * The text is folded once into a scratch buffer (the same folding the keywords got at load),
 * then one Aho-Corasick pass finds every keyword, negation and pattern part, and one more pass
 * reads the money amounts.
 */
#include "clf_rules.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_json.h"
#include "pl_msg.h"
#include "pl_time.h"

#define TERM_MAX 200       /* bytes of one keyword */
#define NAME_MAX_LEN 48    /* bytes of a signal name */
#define GROUPS_MAX 4       /* parts of one pattern */
#define WITHIN_MAX 100     /* characters between two parts of a pattern */
#define NEG_WITHIN_MAX 20  /* characters between a negation and its keyword */
#define LANGS_MAX 8
#define NEG_RING 4         /* recent negations remembered per language */
#define RAISE_MAX 2        /* three levels: two raises reach P1 from anywhere */
#define NO_FLOOR 3
#define DIGITS_MAX 12      /* longer runs are ids or phone numbers, not money */
#define STATES_MAX 65535   /* automaton states (about one per keyword byte) */

/* ---- the compiled rules ---- */

typedef struct effect {
    char *name; /* the signal it names */
    int floor;  /* 1..3; NO_FLOOR = none */
    int raise;  /* 0..RAISE_MAX */
} effect_t;

typedef struct keyed_effect {
    char *key; /* customer type or channel */
    effect_t eff;
} keyed_effect_t;

typedef struct pattern {
    uint32_t signal;
    uint8_t lang;
    uint8_t ngroups;
    uint16_t within;
    uint16_t nth; /* its index in its signal's "patterns", for explanations */
    bool clause;  /* parts may not cross a comma or a full stop */
} pattern_t;

enum { USE_KEYWORD, USE_PATTERN, USE_NEGATION, USE_ANGRY, USE_EXCEPT };

/* What one term does when it matches; a term may have several uses. */
typedef struct use {
    uint8_t kind;
    uint8_t lang;
    uint8_t group;   /* USE_PATTERN: which part */
    uint32_t target; /* signal (KEYWORD) or pattern (PATTERN) index */
} use_t;

typedef struct term {
    uint32_t len;
    bool left_word;  /* starts with a letter or digit: the character before must not be one */
    bool right_word; /* ends with one and is no prefix: nor the character after */
    uint32_t first_use, nuses;
    uint32_t text; /* offset in term_text, for explanations */
    bool except;   /* one of its uses is USE_EXCEPT */
    int32_t next;  /* next term ending at the same state; -1 ends the list */
} term_t;

enum { CUR_CNY, CUR_USD, CUR_EUR, CUR_GBP, CUR_HKD, CUR_JPY, NCUR };
static const char *const cur_codes[NCUR] = {"CNY", "USD", "EUR", "GBP", "HKD", "JPY"};

struct clf_rules {
    double min_confidence;
    int64_t repeat_window_ms, multi_window_ms;
    int repeat_raise;
    char *repeat_signal, *multi_signal;

    effect_t *signals;
    size_t nsignals;
    pattern_t *patterns;
    size_t npatterns;
    char *langs[LANGS_MAX];
    int neg_within[LANGS_MAX];
    size_t nlangs;

    bool amounts_on;
    effect_t amount;
    double at_least[NCUR]; /* 0 = currency not watched */
    double min_amount;     /* the smallest of them */

    keyed_effect_t *ctypes, *channels;
    size_t nctypes, nchannels;

    int excl_run, caps_words, min_score; /* angry: strong cues score 2, weak ones 1 */

    /* The automaton: delta[state * ncols + cls[byte]] is the next state (failure links
     * already folded in); emit[state] is the first state on its suffix chain that ends a
     * term (0 = none), out_link[] the next one; state_term[] heads each state's terms. */
    term_t *terms;
    size_t nterms;
    char *term_text; /* every term, NUL-terminated */
    use_t *uses;
    size_t nuses;
    uint8_t cls[256];
    size_t ncols, nstates;
    uint16_t *delta; /* 16 bits: half the cache footprint of the hottest table */
    int32_t *emit, *out_link, *state_term;
};

/* ---- UTF-8 and folding ---- */

/* Length of the valid sequence at s[0..n) with its code point, or 0 if it is not valid. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* Only code points below U+10000 are ever re-encoded (fold() maps nothing above). */
static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* What a code point becomes: 0 = dropped, ' ' = white space (line breaks too: a phrase may be
 * wrapped in an e-mail), else the folded code point. Never longer in UTF-8 than the original,
 * so the folded text fits in len bytes. */
static uint32_t fold(uint32_t cp)
{
    if (cp < 0x80) {
        if (cp >= 'A' && cp <= 'Z')
            return cp + 32;
        return cp < 0x20 || cp == 0x7F ? ' ' : cp;
    }
    if (cp >= 0xFF01 && cp <= 0xFF5E) /* full-width ASCII: Ｆｉｒｅ, １２３１５, ！ */
        return fold(cp - 0xFEE0);
    switch (cp) {
    case 0x00A0: case 0x1680: case 0x202F: case 0x205F: case 0x3000:
    case 0x0085: case 0x2028: case 0x2029:
        return ' ';
    case 0x00AD: case 0x200B: case 0x200C: case 0x200D: case 0x2060: case 0xFEFF:
        return 0; /* invisible: would split a keyword */
    case 0x2018: case 0x2019: case 0x2032:
        return '\'';
    case 0x201C: case 0x201D:
        return '"';
    case 0xFFE5:
        return 0x00A5; /* full-width yen sign to ¥ */
    case 0xFFE1:
        return 0x00A3; /* full-width pound sign to £ */
    default:
        break;
    }
    if (cp >= 0x2000 && cp <= 0x200A)
        return ' ';
    if (cp < 0xA0)
        return ' '; /* C1 controls */
    if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
        return cp + 0x20; /* Latin-1 capitals */
    return cp;
}

typedef struct fold_stats {
    int excl_max; /* longest run of "!" */
    int caps_max; /* longest run of shouted words */
    int excl, caps, upper, lower, xs;
} fold_stats_t;

/* A word of ASCII letters ended: "GIVE ME MY MONEY" counts words of two or more capitals,
 * "I" and "A" neither count nor break a run, redactions ("XXXX") are skipped, and anything in
 * lower case breaks it. */
static void end_word(fold_stats_t *st)
{
    if (st->lower > 0)
        st->caps = 0;
    else if (st->upper >= 2 && st->xs < st->upper && ++st->caps > st->caps_max)
        st->caps_max = st->caps;
    st->upper = st->lower = st->xs = 0;
}

static void track_case(fold_stats_t *st, uint32_t cp)
{
    if (cp >= 'A' && cp <= 'Z') {
        st->upper++;
        st->xs += cp == 'X';
        return;
    }
    if (cp >= 'a' && cp <= 'z') {
        st->lower++;
        return;
    }
    if (st->upper || st->lower)
        end_word(st);
    /* Spaces and ASCII punctuation may sit between shouted words; digits, CJK and the like
     * mean the capitals were acronyms in other text ("VIP", "APP"). */
    bool between = cp == ' ' || (cp > 0x20 && cp < 0x7F && !(cp >= '0' && cp <= '9'));
    if (!between)
        st->caps = 0;
}

/* Folds in[0..len) into out (len + 1 bytes), NUL-terminated; returns the folded length.
 * Invalid UTF-8 bytes read as spaces. White space runs become one space; none is left at
 * either end. */
static size_t fold_text(const char *in, size_t len, char *out, fold_stats_t *st)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0, o = 0;
    bool space = false; /* a space is due before the next character */
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x21 && c < 0x7F) { /* printable ASCII, the common case, quickly */
            if (space && o)
                out[o++] = ' ';
            space = false;
            if (st) {
                track_case(st, c);
                if ((st->excl = c == '!' ? st->excl + 1 : 0) > st->excl_max)
                    st->excl_max = st->excl;
            }
            out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = utf8_decode(s + i, len - i, &cp);
        if (k == 0)
            cp = ' ', k = 1;
        if (st)
            track_case(st, cp);
        uint32_t f = fold(cp);
        i += k;
        if (f == 0)
            continue;
        if (f == ' ') {
            space = true;
            continue;
        }
        if (space && o)
            out[o++] = ' ';
        space = false;
        if (f == cp && cp >= 0x80) {
            for (size_t q = 0; q < k; q++)
                out[o++] = (char)s[i - k + q];
        } else {
            o += utf8_encode(f, out + o);
        }
        if (st && (st->excl = f == '!' ? st->excl + 1 : 0) > st->excl_max)
            st->excl_max = st->excl;
    }
    if (st && (st->upper || st->lower))
        end_word(st);
    out[o] = '\0';
    return o;
}

/* Letters and digits; "@" too, so that no keyword matches inside "@handles". */
static bool is_word_cp(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
               cp == '@';
    return cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7; /* Latin letters */
}

static bool is_ascii_letter(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* The code point at b[pos] (pos < n) of folded, hence valid, text. */
static uint32_t cp_at(const char *b, size_t n, size_t pos)
{
    uint32_t cp = ' ';
    (void)utf8_decode((const unsigned char *)b + pos, n - pos, &cp); /* valid: folded */
    return cp;
}

/* The code point ending at b[pos] (pos > 0). */
static uint32_t cp_before(const char *b, size_t n, size_t pos)
{
    size_t p = pos - 1;
    while (p > 0 && ((unsigned char)b[p] & 0xC0) == 0x80)
        p--;
    return cp_at(b, n, p);
}

static size_t cp_count(const char *b, size_t from, size_t to)
{
    size_t count = 0;
    for (size_t i = from; i < to; i++)
        count += ((unsigned char)b[i] & 0xC0) != 0x80;
    return count;
}

/* Does b[from..to) end a clause (so that a negation before it no longer applies)? */
static bool has_break(const char *b, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)b[i];
        if (c == ',' || c == '.' || c == '!' || c == '?' || c == ';' || c == ':')
            return true;
        if (c == 0xE3 && i + 2 < to && (unsigned char)b[i + 1] == 0x80 &&
            ((unsigned char)b[i + 2] == 0x81 || (unsigned char)b[i + 2] == 0x82))
            return true; /* 、 。 */
    }
    return false;
}

/* ---- money amounts ---- */

typedef struct cur_word {
    const char *text; /* folded */
    int cur;
} cur_word_t;

/* Units after the number; ASCII words must end at a non-letter. */
static const cur_word_t cur_after[] = {
    {"块钱", CUR_CNY},   {"元", CUR_CNY},     {"圆", CUR_CNY},     {"块", CUR_CNY},
    {"人民币", CUR_CNY}, {"rmb", CUR_CNY},    {"yuan", CUR_CNY},   {"cny", CUR_CNY},
    {"kuai", CUR_CNY},   {"美元", CUR_USD},   {"美金", CUR_USD},   {"刀", CUR_USD},
    {"dollars", CUR_USD}, {"dollar", CUR_USD}, {"bucks", CUR_USD}, {"usd", CUR_USD},
    {"港币", CUR_HKD},   {"港元", CUR_HKD},   {"hkd", CUR_HKD},    {"欧元", CUR_EUR},
    {"euros", CUR_EUR},  {"euro", CUR_EUR},   {"eur", CUR_EUR},    {"英镑", CUR_GBP},
    {"pounds", CUR_GBP}, {"pound", CUR_GBP},  {"gbp", CUR_GBP},    {"quid", CUR_GBP},
    {"日元", CUR_JPY},   {"日币", CUR_JPY},   {"yen", CUR_JPY},    {"jpy", CUR_JPY},
};

/* Signs and codes before the number (a space may follow them). */
static const cur_word_t cur_before[] = {
    {"us$", CUR_USD}, {"hk$", CUR_HKD}, {"$", CUR_USD},       {"\xC2\xA5", CUR_CNY},
    {"rmb", CUR_CNY}, {"cny", CUR_CNY}, {"人民币", CUR_CNY},  {"usd", CUR_USD},
    {"美元", CUR_USD}, {"hkd", CUR_HKD}, {"港币", CUR_HKD},   {"€", CUR_EUR},
    {"eur", CUR_EUR}, {"£", CUR_GBP},   {"gbp", CUR_GBP},     {"jpy", CUR_JPY},
};

static int cjk_digit(uint32_t cp)
{
    switch (cp) {
    case 0x96F6: case 0x3007: return 0;                           /* 零 〇 */
    case 0x4E00: case 0x58F9: return 1;                           /* 一 壹 */
    case 0x4E8C: case 0x4E24: case 0x5169: case 0x8D30: return 2; /* 二 两 兩 贰 */
    case 0x4E09: case 0x53C1: return 3;                           /* 三 叁 */
    case 0x56DB: case 0x8086: return 4;                           /* 四 肆 */
    case 0x4E94: case 0x4F0D: return 5;                           /* 五 伍 */
    case 0x516D: case 0x9646: return 6;                           /* 六 陆 */
    case 0x4E03: case 0x67D2: return 7;                           /* 七 柒 */
    case 0x516B: case 0x634C: return 8;                           /* 八 捌 */
    case 0x4E5D: case 0x7396: return 9;                           /* 九 玖 */
    default: return -1;
    }
}

static double cjk_magnitude(uint32_t cp)
{
    switch (cp) {
    case 0x5341: case 0x62FE: return 10;  /* 十 拾 */
    case 0x767E: case 0x4F70: return 100; /* 百 佰 */
    case 0x5343: case 0x4EDF: return 1e3; /* 千 仟 */
    case 0x4E07: case 0x842C: return 1e4; /* 万 萬 */
    case 0x4EBF: case 0x5104: return 1e8; /* 亿 億 */
    default: return 0;
    }
}

/* 几万, 数千, 上万: "some ten thousands" counts as one of the magnitude. */
static bool is_vague_digit(uint32_t cp)
{
    return cp == 0x51E0 || cp == 0x6570 || cp == 0x4E0A; /* 几 数 上 */
}

/* After "2万" with no unit: particles that may follow a sum of money. */
static bool is_particle(uint32_t cp)
{
    static const uint32_t list[] = {0x4E86, 0x554A, 0x5440, 0x5427, 0x5462,
                                    0x5566, 0x54E6, 0x4E48, 0x54EA}; /* 了啊呀吧呢啦哦么哪 */
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (cp == list[i])
            return true;
    return false;
}

/* Words that make a bare "2万" a sum of money when one comes shortly before it:
 * "损失了2万", "被骗3万", "花了1.5万"; "像素只有30万" is no money. */
static bool money_before(const char *b, size_t i)
{
    static const char *const words[] = {"钱", "损失", "花了", "花费", "付了", "付款", "支付", "赔",
                                        "骗", "盗", "偷", "丢", "交了", "转账", "转了", "充值",
                                        "价", "费", "欠", "贷", "退", "罚", "扣", "亏", "损",
                                        "金额", "总共", "一共", "共计"};
    size_t from = i, cps = 0;
    while (from > 0 && cps < 12)
        cps += ((unsigned char)b[--from] & 0xC0) != 0x80;
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        if (memmem(b + from, i - from, words[k], strlen(words[k])))
            return true;
    return false;
}

static bool is_ideograph(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF);
}

/* "1,234.5" at b[i]: returns the end, or i when there is no number. */
static size_t parse_arabic(const char *b, size_t n, size_t i, double *v)
{
    size_t j = i, digits = 0;
    double x = 0;
    while (j < n && is_digit((unsigned char)b[j]))
        x = x * 10 + (b[j++] - '0'), digits++;
    /* Thousands groups: a comma and exactly three digits. */
    while (j + 3 < n && b[j] == ',' && is_digit((unsigned char)b[j + 1]) &&
           is_digit((unsigned char)b[j + 2]) && is_digit((unsigned char)b[j + 3]) &&
           (j + 4 >= n || !is_digit((unsigned char)b[j + 4]))) {
        x = x * 1000 + (b[j + 1] - '0') * 100 + (b[j + 2] - '0') * 10 + (b[j + 3] - '0');
        j += 4, digits += 3;
    }
    if (j + 1 < n && b[j] == '.' && is_digit((unsigned char)b[j + 1])) {
        double scale = 0.1;
        for (j++; j < n && is_digit((unsigned char)b[j]); j++, scale /= 10)
            x += (b[j] - '0') * scale;
    }
    if (digits > DIGITS_MAX)
        return i;
    *v = x;
    return j;
}

typedef struct number {
    double value;
    size_t end;
    bool cjk_mag;   /* 万, 千, ... were used */
    bool need_unit; /* "2w", "5m": only with a currency */
} number_t;

/* Chinese numerals with or without Arabic digits: 3千, 1.2万, 两万, 一千五百, 十万, 2 万. */
static bool parse_number(const char *b, size_t n, size_t i, number_t *num)
{
    double total = 0, section = 0, cur = -1;
    bool any = false;
    size_t j = i, good = i;
    memset(num, 0, sizeof *num);
    while (j < n) {
        unsigned char c = (unsigned char)b[j];
        uint32_t cp = 0;
        size_t k = c < 0x80 ? 1 : utf8_decode((const unsigned char *)b + j, n - j, &cp);
        if (is_digit(c)) {
            double v;
            size_t e = parse_arabic(b, n, j, &v);
            if (cur >= 0 || e == j)
                break;
            cur = v, any = true, j = good = e;
            continue;
        }
        if (c == ' ' && any && cur >= 0 && j + 1 < n &&
            cjk_magnitude(cp_at(b, n, j + 1)) >= 100) { /* "2 万" */
            j++;
            continue;
        }
        if (c < 0x80 || k == 0)
            break;
        int d = cjk_digit(cp);
        double m = cjk_magnitude(cp);
        if (d < 0 && is_vague_digit(cp) && cur < 0 && j + k < n &&
            cjk_magnitude(cp_at(b, n, j + k)) >= 10)
            d = 1;
        if (d >= 0) {
            if (cur >= 0)
                break;
            cur = d, any = true, j = good = j + k;
            continue;
        }
        if (m == 0 || (!any && m != 10)) /* 十 alone is ten; 千万别, 百货 are not numbers */
            break;
        double unit = cur < 0 ? (m < 1e4 ? 1 : 0) : cur;
        if (m < 1e4) {
            section += unit * m;
        } else if (m == 1e4) {
            if (section == 0 && unit == 0)
                break;
            total += (section + unit) * m, section = 0;
        } else {
            total = (total + section + unit) * m, section = 0;
        }
        cur = -1, any = true, num->cjk_mag = true, j = good = j + k;
    }
    if (!any)
        return false;
    num->value = total + section + (cur > 0 ? cur : 0);
    num->end = good;
    return true;
}

static bool ascii_word_at(const char *b, size_t n, size_t j, const char *word)
{
    size_t len = strlen(word);
    return j + len <= n && memcmp(b + j, word, len) == 0 &&
           (j + len == n || !is_ascii_letter((unsigned char)b[j + len]));
}

/* "5k", "1.2 million", "2w" after an Arabic number. */
static size_t english_magnitude(const char *b, size_t n, size_t j, number_t *num)
{
    static const struct {
        const char *word;
        double m;
        bool spaced, need_unit;
    } mags[] = {
        {"k", 1e3, false, false},          {"w", 1e4, false, true},
        {"m", 1e6, false, true},           {"thousand", 1e3, true, false},
        {"million", 1e6, true, false},     {"billion", 1e9, true, false},
    };
    for (size_t i = 0; i < sizeof mags / sizeof mags[0]; i++) {
        size_t at = j + (mags[i].spaced && j < n && b[j] == ' ');
        if (ascii_word_at(b, n, at, mags[i].word)) {
            num->value *= mags[i].m;
            num->need_unit = mags[i].need_unit;
            return at + strlen(mags[i].word);
        }
    }
    return j;
}

static int currency_after(const char *b, size_t n, size_t *j)
{
    size_t at = *j + (*j < n && b[*j] == ' ');
    uint32_t cp = at < n ? cp_at(b, n, at) : 0;
    if (cp == 0x591A || cp == 0x4F59 || cp == 0x6765) /* 多 余 来: "1万多元" */
        at += 3;
    at += at < n && b[at] == ' ';
    for (size_t i = 0; i < sizeof cur_after / sizeof cur_after[0]; i++) {
        const char *w = cur_after[i].text;
        size_t len = strlen(w);
        bool ascii = (unsigned char)w[0] < 0x80;
        if (ascii ? ascii_word_at(b, n, at, w) : (at + len <= n && !memcmp(b + at, w, len))) {
            *j = at + len;
            return cur_after[i].cur;
        }
    }
    return -1;
}

/* A sign or code ending at b[i] (maybe with one space between); *adjacent says no space. */
static int currency_before(const char *b, size_t i, bool *adjacent)
{
    for (int spaced = 0; spaced <= 1; spaced++) {
        size_t end = i - (size_t)spaced;
        if (spaced && (i == 0 || b[i - 1] != ' '))
            break;
        for (size_t k = 0; k < sizeof cur_before / sizeof cur_before[0]; k++) {
            const char *w = cur_before[k].text;
            size_t len = strlen(w);
            if (len > end || memcmp(b + end - len, w, len) != 0)
                continue;
            if (is_ascii_letter((unsigned char)w[0]) && end > len &&
                is_ascii_letter((unsigned char)b[end - len - 1]))
                continue; /* "xrmb" is no code */
            *adjacent = !spaced;
            return cur_before[k].cur;
        }
    }
    return -1;
}

/* The amount starting at b[i], if there is one of at least min_value (smaller ones are not
 * worth finding the currency of); *end is where scanning goes on. */
static bool parse_amount(const char *b, size_t n, size_t i, double min_value, clf_amount_t *amt,
                         size_t *end)
{
    number_t num;
    *end = i + 1;
    if (!parse_number(b, n, i, &num))
        return false;
    *end = num.end;
    size_t j = num.end;
    if (!num.cjk_mag && is_digit((unsigned char)b[i]))
        j = english_magnitude(b, n, j, &num);
    if (num.value < min_value)
        return false;
    bool adjacent = false;
    int cur = currency_before(b, i, &adjacent);
    if (i > 0 && is_ascii_letter((unsigned char)b[i - 1]) && !(cur >= 0 && adjacent))
        return false; /* "mp3", "p9": part of a word */
    size_t after = j;
    int unit = currency_after(b, n, &after);
    if (cur < 0 && unit >= 0)
        cur = unit, j = after;
    if (cur < 0) {
        /* "损失2万" counts as yuan; "2万公里", "1万次", "像素30万" do not. */
        size_t at = j;
        uint32_t cp = at < n ? cp_at(b, n, at) : 0;
        if (cp == 0x591A || cp == 0x4F59 || cp == 0x6765)
            at += 3, cp = at < n ? cp_at(b, n, at) : 0;
        if (!num.cjk_mag || num.need_unit || (is_ideograph(cp) && !is_particle(cp)) ||
            !money_before(b, i))
            return false;
        cur = CUR_CNY;
    }
    amt->value = num.value;
    amt->currency = cur_codes[cur];
    *end = j;
    return true;
}

static bool numeral_at(const char *b, size_t n, size_t i)
{
    uint32_t cp = cp_at(b, n, i);
    return cjk_digit(cp) >= 0 || cjk_magnitude(cp) > 0 || is_vague_digit(cp);
}

typedef void (*amount_fn)(void *ctx, const clf_amount_t *amt);

static void scan_amounts(const char *b, size_t n, double min_value, amount_fn fn, void *ctx)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)b[i];
        if (c >= 0xE3 && c <= 0xE9 && !numeral_at(b, n, i)) {
            i += 3; /* most Chinese characters: no number starts here */
            continue;
        }
        if (is_digit(c) || (c >= 0xE3 && c <= 0xE9)) {
            clf_amount_t amt;
            size_t end;
            if (parse_amount(b, n, i, min_value, &amt, &end))
                fn(ctx, &amt);
            if (end > i + 1 || is_digit(c)) {
                i = end > i ? end : i + 1;
                while (i < n && is_digit((unsigned char)b[i]))
                    i++; /* the rest of a number refused as a whole */
                continue;
            }
        }
        i += c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    }
}

typedef struct amount_list {
    clf_amount_t *out;
    size_t max, count;
} amount_list_t;

static void collect_amount(void *ctx, const clf_amount_t *amt)
{
    amount_list_t *list = ctx;
    if (list->count < list->max)
        list->out[list->count] = *amt;
    list->count++;
}

size_t clf_rules_amounts(const char *text, size_t len, clf_amount_t *out, size_t max)
{
    char *buf = pl_malloc(len + 1);
    size_t n = fold_text(text ? text : "", text ? len : 0, buf, NULL);
    amount_list_t list = {out, max, 0};
    scan_amounts(buf, n, 0, collect_amount, &list);
    pl_free(buf);
    return list.count;
}

/* ---- loading: problems ---- */

typedef struct raw_term {
    char *text; /* folded, without the "*" */
    uint32_t len;
    bool prefix;
    use_t use;
} raw_term_t;

typedef struct loader {
    pl_errlist_t *errs;
    size_t nerr; /* problems this load found */
    clf_rules_t *r;
    raw_term_t *raw;
    size_t nraw, capraw;
    size_t cap_signals, cap_patterns;
} loader_t;

static void problem(loader_t *ld, const char *path, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(loader_t *ld, const char *path, const char *hint, const char *fmt, ...)
{
    char msg[PL_ERR_MSG_MAX - 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pl_err_t e;
    pl_err_set(&e, PL_ECONFIG, path, "%s: %s", CLF_RULES_FILE, msg);
    if (hint)
        pl_err_hint(&e, "%s", hint);
    pl_errlist_push(ld->errs, &e);
    ld->nerr++;
}

static const char *type_of(const cJSON *item)
{
    return pl_json_type_name(item);
}

/* Checks that obj has only known fields (names starting with "_" are notes) and none twice. */
static void check_fields(loader_t *ld, const cJSON *obj, const char *path,
                         const char *const known[], const char *hint)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        char p[PL_ERR_PATH_MAX];
        pl_json_path(p, sizeof p, path, c->string);
        bool dup = false;
        for (const cJSON *d = obj->child; d != c && !dup; d = d->next)
            dup = strcmp(d->string, c->string) == 0;
        if (dup) {
            problem(ld, p, "Keep one of them.", "%s appears twice", p);
            continue;
        }
        if (!known || c->string[0] == '_')
            continue;
        size_t k = 0;
        while (known[k] && strcmp(known[k], c->string) != 0)
            k++;
        if (!known[k])
            problem(ld, p, hint, "%s is not a known field", p);
    }
}

static bool want(loader_t *ld, const cJSON *item, const char *path, bool ok, const char *what)
{
    if (!ok) {
        char hint[PL_ERR_HINT_MAX];
        snprintf(hint, sizeof hint, "Write %s here; README-rules.md describes every field.",
                 what);
        problem(ld, path, hint, "%s must be %s, not %s", path, what, type_of(item));
    }
    return ok;
}

/* An integer in [min, max]; absent keeps *out. */
static void get_int(loader_t *ld, const cJSON *obj, const char *name, const char *parent,
                    int min, int max, int *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item)
        return;
    char p[PL_ERR_PATH_MAX];
    pl_json_path(p, sizeof p, parent, name);
    if (!want(ld, item, p, cJSON_IsNumber(item), "a number"))
        return;
    double v = item->valuedouble;
    if (v != floor(v) || v < min || v > max) {
        char hint[96];
        snprintf(hint, sizeof hint, "Use a whole number from %d to %d.", min, max);
        problem(ld, p, hint, "%s is %g, not a whole number from %d to %d", p, v, min, max);
        return;
    }
    *out = (int)v;
}

static void get_duration(loader_t *ld, const cJSON *obj, const char *name, const char *parent,
                         int64_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item)
        return;
    char p[PL_ERR_PATH_MAX];
    pl_json_path(p, sizeof p, parent, name);
    if (!want(ld, item, p, cJSON_IsString(item), "a duration string such as \"30d\""))
        return;
    pl_err_t e;
    int64_t ms = 0;
    if (pl_duration_parse(item->valuestring, &ms, p, &e) != 0 || ms <= 0) {
        problem(ld, p, "Use a number and a unit: ms, s, m, h, d, w, e.g. \"30d\" or \"72h\".",
                "%s \"%.64s\" is not a positive duration", p, item->valuestring);
        return;
    }
    *out = ms;
}

static bool valid_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > NAME_MAX_LEN || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || is_digit((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* A signal name at obj.field; returns a copy or NULL (problem reported when present). */
static char *get_name(loader_t *ld, const cJSON *obj, const char *field, const char *parent,
                      const char *fallback)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, field);
    char p[PL_ERR_PATH_MAX];
    pl_json_path(p, sizeof p, parent, field);
    if (!item) {
        if (!fallback)
            problem(ld, p, "Every signal needs a name; it goes into case.classified's signals.",
                    "%s is missing", p);
        return fallback ? pl_strdup(fallback) : NULL;
    }
    if (!want(ld, item, p, cJSON_IsString(item), "a string"))
        return NULL;
    if (!valid_name(item->valuestring)) {
        problem(ld, p, "Use 1 to 48 lowercase letters, digits and \"_\", starting with a letter, "
                       "e.g. \"media_threat\".",
                "%s \"%.64s\" is not a valid signal name", p, item->valuestring);
        return NULL;
    }
    return pl_strdup(item->valuestring);
}

/* "priority" (a floor) and "raise" of a signal-like object. */
static void get_effect(loader_t *ld, const cJSON *obj, const char *parent, effect_t *eff)
{
    eff->floor = NO_FLOOR;
    eff->raise = 0;
    const cJSON *pri = cJSON_GetObjectItemCaseSensitive(obj, "priority");
    char p[PL_ERR_PATH_MAX];
    pl_json_path(p, sizeof p, parent, "priority");
    if (pri && want(ld, pri, p, cJSON_IsString(pri), "a string")) {
        const char *s = pri->valuestring;
        if (s[0] == 'P' && s[1] >= '1' && s[1] <= '3' && s[2] == '\0')
            eff->floor = s[1] - '0';
        else
            problem(ld, p, "Use \"P1\", \"P2\" or \"P3\": the least urgency of a case this "
                           "fires on. To lift by levels, use \"raise\".",
                    "%s \"%.32s\" is not a priority", p, s);
    }
    get_int(ld, obj, "raise", parent, 0, RAISE_MAX, &eff->raise);
}

/* ---- loading: terms ---- */

static int lang_index(loader_t *ld, const char *lang, const char *path)
{
    clf_rules_t *r = ld->r;
    for (size_t i = 0; i < r->nlangs; i++)
        if (strcmp(r->langs[i], lang) == 0)
            return (int)i;
    size_t len = strlen(lang);
    bool ok = len >= 2 && len <= 8;
    for (size_t i = 0; i < len && ok; i++)
        ok = lang[i] >= 'a' && lang[i] <= 'z';
    if (!ok) {
        problem(ld, path, "Name the language with a lowercase code such as \"zh\" or \"en\".",
                "%s: \"%.32s\" is not a language code", path, lang);
        return -1;
    }
    if (r->nlangs == LANGS_MAX) {
        problem(ld, path, "Merge the lists of one language.", "%s: more than %d languages", path,
                LANGS_MAX);
        return -1;
    }
    r->langs[r->nlangs] = pl_strdup(lang);
    r->neg_within[r->nlangs] = -1; /* no negations */
    return (int)r->nlangs++;
}

/* Folds and checks one keyword and records it with its use. allow_bar: "|" is an error
 * outside patterns, where it would silently never match. */
static void add_term(loader_t *ld, const char *s, size_t len, const char *path, use_t use)
{
    if (len > TERM_MAX) {
        problem(ld, path, "Shorten it; keywords are words or short phrases.",
                "%s is %zu bytes, limit is %d", path, len, TERM_MAX);
        return;
    }
    char buf[TERM_MAX + 1];
    size_t n = fold_text(s, len, buf, NULL);
    bool prefix = n > 0 && buf[n - 1] == '*';
    if (prefix)
        buf[--n] = '\0';
    if (n == 0) {
        problem(ld, path, "Remove it, or write the word to match.", "%s is empty", path);
        return;
    }
    if (memchr(buf, '*', n) || (prefix && !is_word_cp(cp_before(buf, n, n)))) {
        problem(ld, path, "\"*\" may only end a Latin word, to match any ending: \"injur*\".",
                "%s \"%.64s\" has a misplaced \"*\"", path, s);
        return;
    }
    if (memchr(buf, '|', n)) {
        problem(ld, path, "List keywords one by one; \"|\" separates alternatives in patterns.",
                "%s \"%.64s\" contains \"|\"", path, s);
        return;
    }
    if (ld->nraw == ld->capraw) {
        ld->capraw = ld->capraw ? ld->capraw * 2 : 256;
        ld->raw = pl_realloc(ld->raw, ld->capraw * sizeof *ld->raw);
    }
    ld->raw[ld->nraw++] = (raw_term_t){pl_strndup(buf, n), (uint32_t)n, prefix, use};
}

/* {"zh": [...], "en": [...]} of keywords, each with use (whose lang this fills in). */
static void add_keyword_lists(loader_t *ld, const cJSON *obj, const char *path, use_t use)
{
    if (!want(ld, obj, path, cJSON_IsObject(obj), "an object of lists by language"))
        return;
    check_fields(ld, obj, path, NULL, NULL);
    for (const cJSON *list = obj->child; list; list = list->next) {
        char lp[PL_ERR_PATH_MAX];
        pl_json_path(lp, sizeof lp, path, list->string);
        if (list->string[0] == '_')
            continue;
        int lang = lang_index(ld, list->string, lp);
        if (lang < 0 || !want(ld, list, lp, cJSON_IsArray(list), "an array of strings"))
            continue;
        use.lang = (uint8_t)lang;
        int i = 0;
        for (const cJSON *kw = list->child; kw; kw = kw->next, i++) {
            char kp[PL_ERR_PATH_MAX];
            pl_json_path_index(kp, sizeof kp, lp, i);
            if (want(ld, kw, kp, cJSON_IsString(kw), "a string"))
                add_term(ld, kw->valuestring, strlen(kw->valuestring), kp, use);
        }
    }
}

/* ---- loading: sections ---- */

static void parse_pattern(loader_t *ld, const cJSON *pat, const char *path, uint32_t signal,
                          int nth)
{
    static const char *const known[] = {"near", "within", "lang", "clause", NULL};
    if (!want(ld, pat, path, cJSON_IsObject(pat), "an object"))
        return;
    check_fields(ld, pat, path, known,
                 "A pattern has \"near\", \"within\", \"clause\" and \"lang\".");
    clf_rules_t *r = ld->r;
    int within = 10;
    get_int(ld, pat, "within", path, 0, WITHIN_MAX, &within);
    const cJSON *clause = cJSON_GetObjectItemCaseSensitive(pat, "clause");
    char cp[PL_ERR_PATH_MAX];
    pl_json_path(cp, sizeof cp, path, "clause");
    if (clause)
        (void)want(ld, clause, cp, cJSON_IsBool(clause), "true or false"); /* reported */
    const cJSON *lang = cJSON_GetObjectItemCaseSensitive(pat, "lang");
    char p[PL_ERR_PATH_MAX];
    int li = 0;
    pl_json_path(p, sizeof p, path, "lang");
    if (lang && want(ld, lang, p, cJSON_IsString(lang), "a string"))
        li = lang_index(ld, lang->valuestring, p);
    else if (!lang)
        li = lang_index(ld, "any", p);
    const cJSON *near = cJSON_GetObjectItemCaseSensitive(pat, "near");
    pl_json_path(p, sizeof p, path, "near");
    int groups = cJSON_GetArraySize(near);
    if (!near || !cJSON_IsArray(near) || groups < 2 || groups > GROUPS_MAX) {
        problem(ld, p, "Give 2 to 4 strings, each a list of alternatives separated by \"|\", "
                       "that must appear in this order: [\"吃出|吃到\", \"头发|铁丝\"].",
                "%s must be an array of 2 to %d strings", p, GROUPS_MAX);
        return;
    }
    if (li < 0)
        return;
    if (r->npatterns == ld->cap_patterns) {
        ld->cap_patterns = ld->cap_patterns ? ld->cap_patterns * 2 : 32;
        r->patterns = pl_realloc(r->patterns, ld->cap_patterns * sizeof *r->patterns);
    }
    uint32_t index = (uint32_t)r->npatterns++;
    r->patterns[index] = (pattern_t){signal,           (uint8_t)li,  (uint8_t)groups,
                                     (uint16_t)within, (uint16_t)nth, cJSON_IsTrue(clause)};
    int g = 0;
    for (const cJSON *part = near->child; part; part = part->next, g++) {
        char gp[PL_ERR_PATH_MAX];
        pl_json_path_index(gp, sizeof gp, p, g);
        if (!want(ld, part, gp, cJSON_IsString(part), "a string"))
            continue;
        use_t use = {USE_PATTERN, (uint8_t)li, (uint8_t)g, index};
        for (const char *s = part->valuestring;; s++) {
            const char *bar = strchr(s, '|');
            size_t len = bar ? (size_t)(bar - s) : strlen(s);
            add_term(ld, s, len, gp, use);
            if (!bar)
                break;
            s = bar;
        }
    }
}

static void parse_signal(loader_t *ld, const cJSON *sig, const char *path)
{
    static const char *const known[] = {"name",     "priority", "raise", "keywords",
                                        "patterns", "exceptions", NULL};
    if (!want(ld, sig, path, cJSON_IsObject(sig), "an object"))
        return;
    check_fields(ld, sig, path, known,
                 "A signal has \"name\", \"priority\", \"raise\", \"keywords\", \"patterns\" "
                 "and \"exceptions\".");
    clf_rules_t *r = ld->r;
    char *name = get_name(ld, sig, "name", path, NULL);
    for (size_t i = 0; name && i < r->nsignals; i++) {
        if (strcmp(r->signals[i].name, name) == 0) {
            char p[PL_ERR_PATH_MAX];
            pl_json_path(p, sizeof p, path, "name");
            problem(ld, p, "Merge the two entries, or rename one.",
                    "%s \"%s\" names an earlier signal too", p, name);
        }
    }
    if (r->nsignals == ld->cap_signals) {
        ld->cap_signals = ld->cap_signals ? ld->cap_signals * 2 : 16;
        r->signals = pl_realloc(r->signals, ld->cap_signals * sizeof *r->signals);
    }
    uint32_t index = (uint32_t)r->nsignals++;
    effect_t *eff = &r->signals[index];
    get_effect(ld, sig, path, eff);
    eff->name = name ? name : pl_strdup("?");
    char p[PL_ERR_PATH_MAX];
    const cJSON *kws = cJSON_GetObjectItemCaseSensitive(sig, "keywords");
    pl_json_path(p, sizeof p, path, "keywords");
    if (kws)
        add_keyword_lists(ld, kws, p, (use_t){USE_KEYWORD, 0, 0, index});
    const cJSON *exc = cJSON_GetObjectItemCaseSensitive(sig, "exceptions");
    pl_json_path(p, sizeof p, path, "exceptions");
    if (exc)
        add_keyword_lists(ld, exc, p, (use_t){USE_EXCEPT, 0, 0, index + 1});
    const cJSON *pats = cJSON_GetObjectItemCaseSensitive(sig, "patterns");
    pl_json_path(p, sizeof p, path, "patterns");
    if (pats && want(ld, pats, p, cJSON_IsArray(pats), "an array")) {
        int i = 0;
        for (const cJSON *pat = pats->child; pat; pat = pat->next, i++) {
            char pp[PL_ERR_PATH_MAX];
            pl_json_path_index(pp, sizeof pp, p, i);
            parse_pattern(ld, pat, pp, index, i);
        }
    }
}

static void parse_negations(loader_t *ld, const cJSON *obj)
{
    static const char *const known[] = {"terms", "within", NULL};
    if (!want(ld, obj, "negations", cJSON_IsObject(obj), "an object of languages"))
        return;
    check_fields(ld, obj, "negations", NULL, NULL);
    for (const cJSON *lang = obj->child; lang; lang = lang->next) {
        char p[PL_ERR_PATH_MAX], tp[PL_ERR_PATH_MAX];
        pl_json_path(p, sizeof p, "negations", lang->string);
        if (lang->string[0] == '_' || !want(ld, lang, p, cJSON_IsObject(lang), "an object"))
            continue;
        check_fields(ld, lang, p, known, "A language's negations have \"terms\" and \"within\".");
        int li = lang_index(ld, lang->string, p);
        if (li < 0)
            continue;
        int within = 0;
        get_int(ld, lang, "within", p, 0, NEG_WITHIN_MAX, &within);
        ld->r->neg_within[li] = within;
        const cJSON *terms = cJSON_GetObjectItemCaseSensitive(lang, "terms");
        pl_json_path(tp, sizeof tp, p, "terms");
        if (!terms || !want(ld, terms, tp, cJSON_IsArray(terms), "an array of strings"))
            continue;
        int i = 0;
        for (const cJSON *t = terms->child; t; t = t->next, i++) {
            char ip[PL_ERR_PATH_MAX];
            pl_json_path_index(ip, sizeof ip, tp, i);
            if (want(ld, t, ip, cJSON_IsString(t), "a string"))
                add_term(ld, t->valuestring, strlen(t->valuestring), ip,
                         (use_t){USE_NEGATION, (uint8_t)li, 0, 0});
        }
    }
}

/* {"zh": [...], ...}: phrases that contain a keyword but mean something else (多媒体). */
static void parse_exceptions(loader_t *ld, const cJSON *obj)
{
    add_keyword_lists(ld, obj, "exceptions", (use_t){USE_EXCEPT, 0, 0, 0});
}

static const struct {
    const char *code;
    int cur;
} cur_names[] = {{"CNY", CUR_CNY}, {"USD", CUR_USD}, {"EUR", CUR_EUR},
                 {"GBP", CUR_GBP}, {"HKD", CUR_HKD}, {"JPY", CUR_JPY}};

static void parse_amounts(loader_t *ld, const cJSON *obj)
{
    static const char *const known[] = {"signal", "priority", "raise", "at_least", NULL};
    clf_rules_t *r = ld->r;
    if (!want(ld, obj, "amounts", cJSON_IsObject(obj), "an object"))
        return;
    check_fields(ld, obj, "amounts", known,
                 "\"amounts\" has \"signal\", \"priority\", \"raise\" and \"at_least\".");
    r->amounts_on = true;
    r->amount.name = get_name(ld, obj, "signal", "amounts", "major_loss");
    get_effect(ld, obj, "amounts", &r->amount);
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(obj, "at_least");
    if (!al || !want(ld, al, "amounts.at_least", cJSON_IsObject(al), "an object")) {
        if (!al)
            problem(ld, "amounts.at_least", "Give a threshold per currency: {\"CNY\": 10000}.",
                    "amounts.at_least is missing");
        return;
    }
    check_fields(ld, al, "amounts.at_least", NULL, NULL);
    for (const cJSON *c = al->child; c; c = c->next) {
        char p[PL_ERR_PATH_MAX];
        pl_json_path(p, sizeof p, "amounts.at_least", c->string);
        if (c->string[0] == '_')
            continue;
        size_t k = 0;
        while (k < NCUR && strcmp(cur_names[k].code, c->string) != 0)
            k++;
        if (k == NCUR) {
            problem(ld, p, "Use CNY, USD, EUR, GBP, HKD or JPY.",
                    "%s: currency \"%.16s\" is not one the text parser knows", p, c->string);
        } else if (!cJSON_IsNumber(c) || !(c->valuedouble > 0)) {
            problem(ld, p, "Give the smallest amount that counts as a major loss.",
                    "%s must be a positive number", p);
        } else {
            r->at_least[cur_names[k].cur] = c->valuedouble;
            if (r->min_amount == 0 || c->valuedouble < r->min_amount)
                r->min_amount = c->valuedouble;
        }
    }
}

/* "customer_types" and "channels": {key: {"signal", "priority", "raise"}}. */
static keyed_effect_t *parse_keyed(loader_t *ld, const cJSON *obj, const char *path,
                                   const char *const *allowed, size_t *count)
{
    static const char *const known[] = {"signal", "priority", "raise", NULL};
    *count = 0;
    if (!want(ld, obj, path, cJSON_IsObject(obj), "an object"))
        return NULL;
    check_fields(ld, obj, path, NULL, NULL);
    keyed_effect_t *list = pl_calloc((size_t)cJSON_GetArraySize(obj) + 1, sizeof *list);
    for (const cJSON *c = obj->child; c; c = c->next) {
        char p[PL_ERR_PATH_MAX];
        pl_json_path(p, sizeof p, path, c->string);
        if (c->string[0] == '_')
            continue;
        if (pl_msg_enum_index(allowed, c->string) < 0) {
            char hint[PL_ERR_HINT_MAX];
            snprintf(hint, sizeof hint, "Use one of: %s.", pl_msg_enum_text(allowed));
            problem(ld, p, hint, "%s: \"%.32s\" is not a known value", p, c->string);
            continue;
        }
        if (!want(ld, c, p, cJSON_IsObject(c), "an object"))
            continue;
        check_fields(ld, c, p, known, "Here the fields are \"signal\", \"priority\", \"raise\".");
        keyed_effect_t *k = &list[(*count)++];
        k->key = pl_strdup(c->string);
        get_effect(ld, c, p, &k->eff);
        k->eff.name = get_name(ld, c, "signal", p, NULL);
    }
    return list;
}

static void parse_sentiment(loader_t *ld, const cJSON *obj)
{
    static const char *const known[] = {"angry", NULL};
    static const char *const angry_known[] = {"keywords",   "weak_keywords", "exclamations",
                                              "caps_words", "min_score",     NULL};
    if (!want(ld, obj, "sentiment", cJSON_IsObject(obj), "an object"))
        return;
    check_fields(ld, obj, "sentiment", known, "\"sentiment\" has \"angry\".");
    const cJSON *angry = cJSON_GetObjectItemCaseSensitive(obj, "angry");
    if (!angry || !want(ld, angry, "sentiment.angry", cJSON_IsObject(angry), "an object"))
        return;
    check_fields(ld, angry, "sentiment.angry", angry_known,
                 "\"angry\" has \"keywords\", \"weak_keywords\", \"exclamations\", "
                 "\"caps_words\", \"min_score\".");
    get_int(ld, angry, "exclamations", "sentiment.angry", 0, 100, &ld->r->excl_run);
    get_int(ld, angry, "caps_words", "sentiment.angry", 0, 100, &ld->r->caps_words);
    get_int(ld, angry, "min_score", "sentiment.angry", 1, 100, &ld->r->min_score);
    const cJSON *kws = cJSON_GetObjectItemCaseSensitive(angry, "keywords");
    if (kws)
        add_keyword_lists(ld, kws, "sentiment.angry.keywords", (use_t){USE_ANGRY, 0, 0, 2});
    kws = cJSON_GetObjectItemCaseSensitive(angry, "weak_keywords");
    if (kws)
        add_keyword_lists(ld, kws, "sentiment.angry.weak_keywords",
                          (use_t){USE_ANGRY, 0, 0, 1});
}

static void parse_repeat(loader_t *ld, const cJSON *obj)
{
    static const char *const known[] = {"window", "multi_channel_window", "raise", "signal",
                                        "multi_channel_signal", NULL};
    clf_rules_t *r = ld->r;
    if (!want(ld, obj, "repeat", cJSON_IsObject(obj), "an object"))
        return;
    check_fields(ld, obj, "repeat", known,
                 "\"repeat\" has \"window\", \"multi_channel_window\", \"raise\", \"signal\", "
                 "\"multi_channel_signal\".");
    get_duration(ld, obj, "window", "repeat", &r->repeat_window_ms);
    get_duration(ld, obj, "multi_channel_window", "repeat", &r->multi_window_ms);
    get_int(ld, obj, "raise", "repeat", 0, RAISE_MAX, &r->repeat_raise);
    char *s = get_name(ld, obj, "signal", "repeat", "repeat");
    char *m = get_name(ld, obj, "multi_channel_signal", "repeat", "multi_channel");
    if (s) {
        pl_free(r->repeat_signal);
        r->repeat_signal = s;
    }
    if (m) {
        pl_free(r->multi_signal);
        r->multi_signal = m;
    }
}

static void parse_min_confidence(loader_t *ld, const cJSON *item)
{
    if (!item)
        return;
    if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > 1) {
        problem(ld, "min_confidence", "Use a number from 0 to 1, e.g. 0.4.",
                "min_confidence must be a number from 0 to 1");
        return;
    }
    ld->r->min_confidence = item->valuedouble;
}

static void parse_document(loader_t *ld, const cJSON *doc)
{
    static const char *const known[] = {"min_confidence", "repeat",     "signals",
                                        "negations",      "exceptions", "amounts",
                                        "customer_types", "channels",   "sentiment",
                                        NULL};
    if (!cJSON_IsObject(doc)) {
        problem(ld, "", "The file holds one JSON object; see README-rules.md.",
                "the document must be an object, not %s", type_of(doc));
        return;
    }
    check_fields(ld, doc, "", known,
                 "Known fields: min_confidence, repeat, signals, negations, exceptions, "
                 "amounts, customer_types, channels, sentiment.");
    parse_min_confidence(ld, cJSON_GetObjectItemCaseSensitive(doc, "min_confidence"));
    const cJSON *item;
    if ((item = cJSON_GetObjectItemCaseSensitive(doc, "repeat")))
        parse_repeat(ld, item);
    if ((item = cJSON_GetObjectItemCaseSensitive(doc, "negations")))
        parse_negations(ld, item);
    if ((item = cJSON_GetObjectItemCaseSensitive(doc, "exceptions")))
        parse_exceptions(ld, item);
    if ((item = cJSON_GetObjectItemCaseSensitive(doc, "signals")) &&
        want(ld, item, "signals", cJSON_IsArray(item), "an array")) {
        int i = 0;
        for (const cJSON *sig = item->child; sig; sig = sig->next, i++) {
            char p[PL_ERR_PATH_MAX];
            pl_json_path_index(p, sizeof p, "signals", i);
            parse_signal(ld, sig, p);
        }
    }
    if ((item = cJSON_GetObjectItemCaseSensitive(doc, "amounts")))
        parse_amounts(ld, item);
    if ((item = cJSON_GetObjectItemCaseSensitive(doc, "customer_types")))
        ld->r->ctypes =
            parse_keyed(ld, item, "customer_types", pl_msg_customer_types, &ld->r->nctypes);
    if ((item = cJSON_GetObjectItemCaseSensitive(doc, "channels")))
        ld->r->channels = parse_keyed(ld, item, "channels", pl_msg_channels, &ld->r->nchannels);
    if ((item = cJSON_GetObjectItemCaseSensitive(doc, "sentiment")))
        parse_sentiment(ld, item);
}

/* ---- the automaton ---- */

static int raw_cmp(const void *a, const void *b)
{
    const raw_term_t *x = a, *y = b;
    int c = strcmp(x->text, y->text);
    return c ? c : (int)x->prefix - (int)y->prefix;
}

static bool insert_term(clf_rules_t *r, const char *text, uint32_t len, int32_t t)
{
    size_t s = 0;
    for (uint32_t i = 0; i < len; i++) {
        uint16_t *next = &r->delta[s * r->ncols + r->cls[(unsigned char)text[i]]];
        if (*next == 0) {
            if (r->nstates == STATES_MAX)
                return false;
            *next = (uint16_t)r->nstates++;
        }
        s = *next;
    }
    r->terms[t].next = r->state_term[s];
    r->state_term[s] = t;
    return true;
}

/* Breadth-first: each state's failure target is done before its children need it. */
static void link_states(clf_rules_t *r)
{
    size_t cols = r->ncols;
    int32_t *fail = pl_calloc(r->nstates, sizeof *fail);
    int32_t *queue = pl_malloc(r->nstates * sizeof *queue);
    size_t head = 0, tail = 0;
    for (size_t c = 0; c < cols; c++)
        if (r->delta[c])
            queue[tail++] = (int32_t)r->delta[c];
    while (head < tail) {
        int32_t s = queue[head++];
        int32_t f = fail[s];
        r->emit[s] = r->state_term[s] >= 0 ? s : r->out_link[s];
        for (size_t c = 0; c < cols; c++) {
            uint16_t *next = &r->delta[(size_t)s * cols + c];
            uint16_t via = r->delta[(size_t)f * cols + c];
            if (*next == 0) {
                *next = via;
                continue;
            }
            fail[*next] = via;
            r->out_link[*next] = r->state_term[via] >= 0 ? via : r->out_link[via];
            queue[tail++] = *next;
        }
    }
    pl_free(queue);
    pl_free(fail);
}

/* Returns false when the terms need more than STATES_MAX states. */
static bool build_automaton(clf_rules_t *r, raw_term_t *raw, size_t nraw)
{
    if (nraw > 1) /* qsort's base must not be NULL, even for 0 elements */
        qsort(raw, nraw, sizeof *raw, raw_cmp);
    r->terms = pl_calloc(nraw ? nraw : 1, sizeof *r->terms);
    r->uses = pl_malloc((nraw ? nraw : 1) * sizeof *r->uses);
    const raw_term_t **first = pl_malloc((nraw ? nraw : 1) * sizeof *first);
    bool used[256] = {false};
    size_t total = 0;
    for (size_t i = 0; i < nraw; i++)
        total += raw[i].len + 2;
    r->term_text = pl_malloc(total + 1);
    total = 0;
    size_t text_len = 0;
    for (size_t i = 0; i < nraw; i++) {
        if (i == 0 || raw_cmp(&raw[i - 1], &raw[i]) != 0) {
            const raw_term_t *rt = &raw[i];
            term_t *t = &r->terms[r->nterms];
            first[r->nterms++] = rt;
            t->len = rt->len;
            t->left_word = is_word_cp(cp_at(rt->text, rt->len, 0));
            t->right_word = !rt->prefix && is_word_cp(cp_before(rt->text, rt->len, rt->len));
            t->first_use = (uint32_t)r->nuses;
            t->text = (uint32_t)text_len;
            memcpy(r->term_text + text_len, rt->text, rt->len);
            text_len += rt->len;
            if (rt->prefix)
                r->term_text[text_len++] = '*';
            r->term_text[text_len++] = '\0';
            total += rt->len;
            for (uint32_t k = 0; k < rt->len; k++)
                used[(unsigned char)rt->text[k]] = true;
        }
        term_t *t = &r->terms[r->nterms - 1];
        t->except |= raw[i].use.kind == USE_EXCEPT;
        r->uses[r->nuses++] = raw[i].use;
        t->nuses++;
    }
    r->ncols = 1; /* column 0: bytes in no term */
    for (int b = 0; b < 256; b++)
        r->cls[b] = used[b] ? (uint8_t)r->ncols++ : 0;
    size_t max_states = total + 1 < STATES_MAX ? total + 1 : STATES_MAX;
    r->delta = pl_calloc(max_states * r->ncols, sizeof *r->delta);
    r->state_term = pl_malloc(max_states * sizeof *r->state_term);
    for (size_t s = 0; s < max_states; s++)
        r->state_term[s] = -1;
    r->nstates = 1;
    bool ok = true;
    for (size_t t = 0; t < r->nterms && ok; t++)
        ok = insert_term(r, first[t]->text, first[t]->len, (int32_t)t);
    pl_free(first);
    if (!ok)
        return false;
    r->delta = pl_realloc(r->delta, r->nstates * r->ncols * sizeof *r->delta);
    r->emit = pl_calloc(r->nstates, sizeof *r->emit);
    r->out_link = pl_calloc(r->nstates, sizeof *r->out_link);
    link_states(r);
    return true;
}

/* ---- public: load and destroy ---- */

clf_rules_t *clf_rules_from_json(const cJSON *doc, pl_errlist_t *errs)
{
    clf_rules_t *r = pl_calloc(1, sizeof *r);
    r->min_confidence = 0.40;
    r->repeat_window_ms = 30LL * 24 * 3600 * 1000;
    r->multi_window_ms = 72LL * 3600 * 1000;
    r->repeat_raise = 1;
    r->repeat_signal = pl_strdup("repeat");
    r->multi_signal = pl_strdup("multi_channel");
    r->min_score = 2;
    loader_t ld = {.errs = errs, .r = r};
    parse_document(&ld, doc);
    if (ld.nerr == 0 && !build_automaton(r, ld.raw, ld.nraw))
        problem(&ld, "", "Remove keywords: the lists hold more than one keyword per pattern of "
                         "complaint, or merge near-duplicates with a \"*\" prefix.",
                "the keyword lists are too large: they need more than %d automaton states",
                STATES_MAX);
    for (size_t i = 0; i < ld.nraw; i++)
        pl_free(ld.raw[i].text);
    pl_free(ld.raw);
    if (ld.nerr)
        clf_rules_destroy(&r);
    return r;
}

clf_rules_t *clf_rules_load(const char *config_dir, pl_errlist_t *errs)
{
    pl_err_t err;
    cJSON *doc = pl_cfg_read_json(config_dir, CLF_RULES_FILE, &err);
    if (!doc) {
        pl_errlist_push(errs, &err);
        return NULL;
    }
    clf_rules_t *r = clf_rules_from_json(doc, errs);
    cJSON_Delete(doc);
    return r;
}

static void free_keyed(keyed_effect_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pl_free(list[i].key);
        pl_free(list[i].eff.name);
    }
    pl_free(list);
}

void clf_rules_destroy(clf_rules_t **rules_p)
{
    if (!rules_p || !*rules_p)
        return;
    clf_rules_t *r = *rules_p;
    *rules_p = NULL;
    pl_free(r->repeat_signal);
    pl_free(r->multi_signal);
    for (size_t i = 0; i < r->nsignals; i++)
        pl_free(r->signals[i].name);
    pl_free(r->signals);
    pl_free(r->patterns);
    for (size_t i = 0; i < r->nlangs; i++)
        pl_free(r->langs[i]);
    pl_free(r->amount.name);
    free_keyed(r->ctypes, r->nctypes);
    free_keyed(r->channels, r->nchannels);
    pl_free(r->terms);
    pl_free(r->term_text);
    pl_free(r->uses);
    pl_free(r->delta);
    pl_free(r->emit);
    pl_free(r->out_link);
    pl_free(r->state_term);
    pl_free(r);
}

/* ---- applying ---- */

typedef struct match {
    uint32_t term;
    size_t start, end;
} match_t;

typedef struct span {
    size_t start, end;
    uint32_t target; /* 0: every signal; k + 1: signal k only */
} span_t;

#define COVER_MAX 8

/* Which exceptions hold a match: all of them, or up to COVER_MAX signals. */
typedef struct cover {
    bool all;
    size_t n;
    uint32_t targets[COVER_MAX];
} cover_t;

typedef struct scan {
    const clf_rules_t *r;
    const char *b;
    size_t n;
    match_t *matches; /* every term found, in order of their ends */
    size_t nmatches, capmatches;
    span_t *spans; /* exceptions found, in the same order */
    size_t nspans, capspans;
    bool *fired;   /* per signal */
    int64_t *last; /* per pattern and part: end of the latest in-order chain through it */
    int64_t neg[LANGS_MAX][NEG_RING];
    unsigned negpos[LANGS_MAX];
    int cues; /* angry score from keywords */
    double best; /* largest amount over its threshold, as a multiple of it */
    clf_amount_t amount;
    bool explaining;
    char *ex; /* the explanation, when asked for */
    size_t exlen, excap;
} scan_t;

#define EXPLAIN_MAX 16384

static void explain(scan_t *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void explain(scan_t *sc, const char *fmt, ...)
{
    if (!sc->explaining || sc->exlen >= EXPLAIN_MAX)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    size_t add = (size_t)len < sizeof line ? (size_t)len : sizeof line - 1;
    if (sc->exlen + add + 1 > sc->excap) {
        sc->excap = (sc->exlen + add + 1) * 2;
        sc->ex = pl_realloc(sc->ex, sc->excap);
    }
    memcpy(sc->ex + sc->exlen, line, add);
    sc->exlen += add;
    sc->ex[sc->exlen] = '\0';
}

static const char *term_text(const clf_rules_t *r, uint32_t t)
{
    return r->term_text + r->terms[t].text;
}

static bool negated(const scan_t *sc, int lang, size_t start)
{
    int within = sc->r->neg_within[lang];
    if (within < 0)
        return false;
    for (int k = 0; k < NEG_RING; k++) {
        int64_t end = sc->neg[lang][k];
        if (end < 0 || (size_t)end > start || start - (size_t)end > (size_t)within * 4)
            continue; /* a character is at most 4 bytes: too far, without counting */
        if ((int)cp_count(sc->b, (size_t)end, start) <= within &&
            !has_break(sc->b, (size_t)end, start))
            return true;
    }
    return false;
}

static void pattern_part(scan_t *sc, const use_t *u, const match_t *m)
{
    const pattern_t *p = &sc->r->patterns[u->target];
    int64_t *last = &sc->last[(size_t)u->target * GROUPS_MAX];
    if (u->group == 0) {
        if (!negated(sc, u->lang, m->start))
            last[0] = (int64_t)m->end;
        return;
    }
    int64_t prev = last[u->group - 1];
    if (prev < 0 || (size_t)prev > m->start || m->start - (size_t)prev > (size_t)p->within * 4 ||
        cp_count(sc->b, (size_t)prev, m->start) > p->within ||
        (p->clause && has_break(sc->b, (size_t)prev, m->start)))
        return;
    last[u->group] = (int64_t)m->end;
    if (u->group + 1 == p->ngroups) {
        sc->fired[p->signal] = true;
        explain(sc, "%s: patterns[%u] ending in \"%s\"\n", sc->r->signals[p->signal].name,
                (unsigned)p->nth, term_text(sc->r, m->term));
    }
}

static bool covers(const cover_t *cov, uint32_t signal)
{
    for (size_t i = 0; i < cov->n; i++)
        if (cov->targets[i] == signal)
            return true;
    return false;
}

static void use_match(scan_t *sc, const match_t *m, const cover_t *cov)
{
    const term_t *t = &sc->r->terms[m->term];
    for (uint32_t i = 0; i < t->nuses; i++) {
        const use_t *u = &sc->r->uses[t->first_use + i];
        switch (u->kind) {
        case USE_KEYWORD:
            if (covers(cov, u->target) || negated(sc, u->lang, m->start))
                break;
            sc->fired[u->target] = true;
            explain(sc, "%s: \"%s\"\n", sc->r->signals[u->target].name,
                    term_text(sc->r, m->term));
            break;
        case USE_PATTERN:
            if (!covers(cov, sc->r->patterns[u->target].signal))
                pattern_part(sc, u, m);
            break;
        case USE_NEGATION:
            sc->neg[u->lang][sc->negpos[u->lang]++ % NEG_RING] = (int64_t)m->end;
            break;
        case USE_ANGRY:
            sc->cues += (int)u->target;
            explain(sc, "angry: \"%s\" (%s)\n", term_text(sc->r, m->term),
                    u->target > 1 ? "strong" : "weak");
            break;
        default:
            break;
        }
    }
}

static void push_match(scan_t *sc, uint32_t t, size_t end)
{
    const term_t *term = &sc->r->terms[t];
    size_t start = end - term->len;
    if (term->left_word && start > 0 && is_word_cp(cp_before(sc->b, sc->n, start)))
        return;
    if (term->right_word && end < sc->n && is_word_cp(cp_at(sc->b, sc->n, end)))
        return;
    for (uint32_t i = 0; term->except && i < term->nuses; i++) {
        const use_t *u = &sc->r->uses[term->first_use + i];
        if (u->kind != USE_EXCEPT)
            continue;
        if (sc->nspans == sc->capspans) {
            sc->capspans = sc->capspans ? sc->capspans * 2 : 16;
            sc->spans = pl_realloc(sc->spans, sc->capspans * sizeof *sc->spans);
        }
        sc->spans[sc->nspans++] = (span_t){start, end, u->target};
    }
    if (sc->nmatches == sc->capmatches) {
        sc->capmatches = sc->capmatches ? sc->capmatches * 2 : 64;
        sc->matches = pl_realloc(sc->matches, sc->capmatches * sizeof *sc->matches);
    }
    sc->matches[sc->nmatches++] = (match_t){t, start, end};
}

/* Two passes: an exception ("多媒体") ends after the keyword it holds ("媒体"), so keywords
 * are judged only once every match is known. Both lists are in order of their ends, and
 * an exception holding a match ends at most TERM_MAX bytes after the match starts. */
static void run_automaton(scan_t *sc)
{
    const clf_rules_t *r = sc->r;
    const unsigned char *b = (const unsigned char *)sc->b;
    int32_t s = 0;
    for (size_t i = 0; i < sc->n; i++) {
        s = r->delta[(size_t)s * r->ncols + r->cls[b[i]]];
        for (int32_t u = r->emit[s]; u > 0; u = r->out_link[u])
            for (int32_t t = r->state_term[u]; t >= 0; t = r->terms[t].next)
                push_match(sc, (uint32_t)t, i + 1);
    }
    size_t first = 0;
    for (size_t i = 0; i < sc->nmatches; i++) {
        const match_t *m = &sc->matches[i];
        while (first < sc->nspans && sc->spans[first].end < m->end)
            first++;
        cover_t cov = {0};
        for (size_t k = first; k < sc->nspans && sc->spans[k].end <= m->start + TERM_MAX; k++) {
            const span_t *sp = &sc->spans[k];
            if (sp->start > m->start)
                continue;
            if (sp->target == 0)
                cov.all = true;
            else if (cov.n < COVER_MAX)
                cov.targets[cov.n++] = sp->target - 1;
        }
        if (!cov.all)
            use_match(sc, m, &cov);
    }
}

static void check_amount(void *ctx, const clf_amount_t *amt)
{
    scan_t *sc = ctx;
    for (int c = 0; c < NCUR; c++) {
        if (amt->currency != cur_codes[c] || sc->r->at_least[c] <= 0)
            continue;
        double ratio = amt->value / sc->r->at_least[c];
        if (ratio > sc->best)
            sc->best = ratio, sc->amount = *amt;
    }
}

static void apply_effect(clf_verdict_t *v, const effect_t *e, int *raise)
{
    if (e->floor < v->floor)
        v->floor = e->floor;
    *raise += e->raise;
    if (e->name)
        (void)clf_verdict_add_signal(v, e->name); /* full: floor and raise still count */
}

static void apply_keyed(scan_t *sc, clf_verdict_t *v, const keyed_effect_t *list, size_t n,
                        const char *key, int *raise)
{
    for (size_t i = 0; key && i < n; i++) {
        if (strcmp(list[i].key, key) == 0) {
            apply_effect(v, &list[i].eff, raise);
            explain(sc, "%s: \"%s\"\n", list[i].eff.name, key);
        }
    }
}

/* The sentiment cues outside the keywords, "!!!" and shouting, are strong ones. */
static void count_cues(scan_t *sc, const fold_stats_t *st, clf_verdict_t *out)
{
    const clf_rules_t *r = sc->r;
    out->angry_score = sc->cues;
    if (r->excl_run > 0 && st->excl_max >= r->excl_run) {
        out->angry_score += 2;
        explain(sc, "angry: %d exclamation marks in a row\n", st->excl_max);
    }
    if (r->caps_words > 0 && st->caps_max >= r->caps_words) {
        out->angry_score += 2;
        explain(sc, "angry: %d words in capitals in a row\n", st->caps_max);
    }
    out->angry = out->angry_score >= r->min_score;
}

static void verdict(scan_t *sc, const clf_rules_input_t *in, clf_verdict_t *out)
{
    const clf_rules_t *r = sc->r;
    int raise = 0;
    for (size_t i = 0; i < r->nsignals; i++)
        if (sc->fired[i])
            apply_effect(out, &r->signals[i], &raise);
    if (sc->best >= 1.0) {
        apply_effect(out, &r->amount, &raise);
        explain(sc, "%s: amount %.2f %s\n", r->amount.name, sc->amount.value,
                sc->amount.currency);
    }
    apply_keyed(sc, out, r->ctypes, r->nctypes,
                in->customer_type ? in->customer_type : "individual", &raise);
    apply_keyed(sc, out, r->channels, r->nchannels, in->channel, &raise);
    out->raise = raise > RAISE_MAX ? RAISE_MAX : raise;
    if (sc->best >= 1.0) {
        out->amount = sc->amount.value;
        out->amount_currency = sc->amount.currency;
    }
}

static void run(const clf_rules_t *r, const clf_rules_input_t *in, clf_verdict_t *out,
                scan_t *sc)
{
    assert(r && in && out);
    memset(out, 0, sizeof *out);
    out->floor = NO_FLOOR;
    size_t len = in->text ? in->len : 0;
    char *buf = pl_malloc(len + 1);
    fold_stats_t st = {0};
    sc->r = r;
    sc->b = buf;
    sc->n = fold_text(in->text ? in->text : "", len, buf, &st);
    sc->fired = pl_calloc(r->nsignals + 1, sizeof *sc->fired);
    sc->last = pl_malloc((r->npatterns * GROUPS_MAX + 1) * sizeof *sc->last);
    for (size_t i = 0; i < r->npatterns * GROUPS_MAX; i++)
        sc->last[i] = -1;
    for (size_t l = 0; l < LANGS_MAX; l++)
        for (size_t k = 0; k < NEG_RING; k++)
            sc->neg[l][k] = -1;
    run_automaton(sc);
    if (r->amounts_on)
        scan_amounts(buf, sc->n, r->min_amount, check_amount, sc);
    verdict(sc, in, out);
    count_cues(sc, &st, out);
    pl_free(sc->matches);
    pl_free(sc->spans);
    pl_free(sc->last);
    pl_free(sc->fired);
    pl_free(buf);
}

void clf_rules_apply(const clf_rules_t *r, const clf_rules_input_t *in, clf_verdict_t *out)
{
    scan_t sc = {0};
    run(r, in, out, &sc);
}

char *clf_rules_explain(const clf_rules_t *r, const clf_rules_input_t *in, clf_verdict_t *out)
{
    scan_t sc = {.explaining = true};
    run(r, in, out, &sc);
    return sc.ex ? sc.ex : pl_strdup("");
}

bool clf_verdict_add_signal(clf_verdict_t *v, const char *name)
{
    for (size_t i = 0; i < v->nsignals; i++)
        if (strcmp(v->signals[i], name) == 0)
            return true;
    if (v->nsignals == CLF_RULES_MAX_SIGNALS)
        return false;
    v->signals[v->nsignals++] = name;
    return true;
}

const char *clf_rules_priority(const char *model_priority, const clf_verdict_t *v,
                               int extra_raise)
{
    static const char *const names[] = {"P1", "P2", "P3"};
    int level = 2;
    const char *m = model_priority;
    if (m && m[0] == 'P' && m[1] >= '1' && m[1] <= '3' && m[2] == '\0')
        level = m[1] - '0';
    level -= (v ? v->raise : 0) + extra_raise;
    if (level < 1)
        level = 1;
    if (level > 3)
        level = 3;
    if (v && v->floor >= 1 && v->floor < level)
        level = v->floor;
    return names[level - 1];
}

double clf_rules_min_confidence(const clf_rules_t *r)
{
    return r->min_confidence;
}

int64_t clf_rules_repeat_window_ms(const clf_rules_t *r)
{
    return r->repeat_window_ms;
}

int64_t clf_rules_multi_channel_window_ms(const clf_rules_t *r)
{
    return r->multi_window_ms;
}

int clf_rules_repeat_raise(const clf_rules_t *r)
{
    return r->repeat_raise;
}

const char *clf_rules_repeat_signal(const clf_rules_t *r)
{
    return r->repeat_signal;
}

const char *clf_rules_multi_channel_signal(const clf_rules_t *r)
{
    return r->multi_signal;
}

size_t clf_rules_memory(const clf_rules_t *r)
{
    return sizeof *r + r->nstates * r->ncols * sizeof *r->delta +
           r->nstates * 3 * sizeof(int32_t) +
           r->nterms * sizeof(term_t) + r->nuses * sizeof(use_t) +
           r->nsignals * sizeof(effect_t) + r->npatterns * sizeof(pattern_t);
}
