/*
 * test_clf_rules: the classifier's domain rules.
 *
 * Most tables run against a small config written here (MINI), so that they test the matching
 * and not the keyword lists; test_shipped_* load deploy/config/classifier.json (found from
 * this file's path) and check that plain sentences written for this test, in both languages,
 * raise the signals an operator expects. No text here comes from any data set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clf_rules.h"
#include "pl_alloc.h"
#include "pl_err.h"

#include "test_util.h"

static const char MINI[] =
    "{\n"
    "  \"_note\": \"names starting with _ are notes\",\n"
    "  \"min_confidence\": 0.55,\n"
    "  \"repeat\": {\"window\": \"7d\", \"multi_channel_window\": \"48h\", \"raise\": 2},\n"
    "  \"negations\": {\"zh\": {\"within\": 0, \"terms\": [\"不\", \"没有\"]},\n"
    "                \"en\": {\"within\": 3, \"terms\": [\"no\", \"not\"]}},\n"
    "  \"exceptions\": {\"zh\": [\"多媒体\"], \"en\": [\"fire tv\"]},\n"
    "  \"signals\": [\n"
    "    {\"name\": \"safety\", \"priority\": \"P1\",\n"
    "     \"keywords\": {\"zh\": [\"着火\", \"过敏\"],\n"
    "                  \"en\": [\"fire\", \"injur*\", \"catch fire\", \"ＳＭＯＫＥ\"]},\n"
    "     \"exceptions\": {\"en\": [\"fire the\"]},\n"
    "     \"patterns\": [\n"
    "       {\"lang\": \"zh\", \"within\": 4, \"near\": [\"吃出|喝出\", \"虫|石头\"]},\n"
    "       {\"lang\": \"zh\", \"within\": 3, \"clause\": true, \"near\": [\"起了\", \"包\"]},\n"
    "       {\"lang\": \"en\", \"within\": 10, \"near\": [\"hair\", \"in my\", \"soup|food\"]}]},\n"
    "    {\"name\": \"media_threat\", \"raise\": 1,\n"
    "     \"keywords\": {\"zh\": [\"媒体\", \"曝光\"], \"en\": [\"the news\"]}},\n"
    "    {\"name\": \"legal_threat\", \"priority\": \"P2\",\n"
    "     \"keywords\": {\"en\": [\"lawyer*\"], \"zh\": [\"12315\"]}},\n"
    "    {\"name\": \"info\", \"keywords\": {\"en\": [\"refund\"]}}\n"
    "  ],\n"
    "  \"amounts\": {\"signal\": \"major_loss\", \"priority\": \"P1\",\n"
    "              \"at_least\": {\"CNY\": 10000, \"USD\": 1500}},\n"
    "  \"customer_types\": {\"vip\": {\"signal\": \"vip\", \"raise\": 1}},\n"
    "  \"channels\": {\"social\": {\"signal\": \"public_channel\", \"raise\": 0}},\n"
    "  \"sentiment\": {\"angry\": {\"min_score\": 2, \"exclamations\": 3, \"caps_words\": 3,\n"
    "    \"keywords\": {\"zh\": [\"垃圾\"], \"en\": [\"scam*\"]},\n"
    "    \"weak_keywords\": {\"zh\": [\"再也不\"], \"en\": [\"never again\"]}}}\n"
    "}\n";

static char scratch[64];

static int make_scratch(void **state)
{
    strcpy(scratch, "/tmp/plaint-test-clf-rules-XXXXXX");
    return mkdtemp(scratch) ? 0 : -1;
}

static int remove_scratch(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_config(const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", scratch, CLF_RULES_FILE);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void print_errors(const pl_errlist_t *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        print_error("  %s (hint: %s)\n", errs->items[i].message, errs->items[i].hint);
}

static clf_rules_t *load_mini(void)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    write_config(MINI);
    clf_rules_t *r = clf_rules_load(scratch, &errs);
    print_errors(&errs);
    assert_non_null(r);
    assert_int_equal(errs.count, 0);
    pl_errlist_reset(&errs);
    return r;
}

/* deploy/config, from this file's path: CMake compiles it by its absolute name. */
static clf_rules_t *load_shipped(void)
{
    char dir[512];
    const char *self = __FILE__;
    const char *tail = strstr(self, "tests/unit/test_clf_rules.c");
    assert_non_null(tail);
    snprintf(dir, sizeof dir, "%.*sdeploy/config", (int)(tail - self), self);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    clf_rules_t *r = clf_rules_load(dir, &errs);
    print_errors(&errs);
    assert_non_null(r);
    assert_int_equal(errs.count, 0);
    pl_errlist_reset(&errs);
    return r;
}

/* "a,b" from the verdict's signals. */
static void joined_signals(const clf_verdict_t *v, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < v->nsignals; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s", i ? "," : "", v->signals[i]);
    }
}

static bool has_signal(const clf_verdict_t *v, const char *name)
{
    for (size_t i = 0; i < v->nsignals; i++)
        if (strcmp(v->signals[i], name) == 0)
            return true;
    return false;
}

static void apply_text(const clf_rules_t *r, const char *text, const char *ctype,
                       const char *channel, clf_verdict_t *v)
{
    clf_rules_input_t in = {text, text ? strlen(text) : 0, ctype, channel};
    clf_rules_apply(r, &in, v);
}

/* ---- matching ---- */

static void test_matching(void **state)
{
    static const struct {
        const char *label;
        const char *text;
        const char *ctype, *channel;
        int want_floor, want_raise;
        const char *want_signals;
    } cases[] = {
        {"latin word", "the charger caught fire", NULL, NULL, 1, 0, "safety"},
        {"word boundary: firefox is no fire", "firefox crashed again", NULL, NULL, 3, 0, ""},
        {"firewall neither", "the firewall blocks me", NULL, NULL, 3, 0, ""},
        {"upper case", "FIRE in the kitchen", NULL, NULL, 1, 0, "safety"},
        {"full-width letters", "ＦＩＲＥ！", NULL, NULL, 1, 0, "safety"},
        {"full-width keyword in config", "smoke everywhere", NULL, NULL, 1, 0, "safety"},
        {"punctuation is a boundary", "(fire), then more", NULL, NULL, 1, 0, "safety"},
        {"prefix injur*", "he was injured badly", NULL, NULL, 1, 0, "safety"},
        {"prefix injur* plain", "an injury", NULL, NULL, 1, 0, "safety"},
        {"prefix needs a word start", "he is uninjured", NULL, NULL, 3, 0, ""},
        {"@handles are not words", "@fire_dept thanks", NULL, NULL, 3, 0, ""},
        {"phrase across a line break", "I saw it on the\r\n   news", NULL, NULL, 3, 1,
         "media_threat"},
        {"zero-width space inside", "the ne\xE2\x80\x8Bws today", NULL, NULL, 3, 1,
         "media_threat"},
        {"negated", "there was no fire", NULL, NULL, 3, 0, ""},
        {"negation too far", "not happy at all that the stove caught fire", NULL, NULL, 1, 0,
         "safety"},
        {"negation across a clause", "not me. fire in room 12", NULL, NULL, 1, 0, "safety"},
        {"signal's own exception", "please fire the manager", NULL, NULL, 3, 0, ""},
        {"global exception", "my fire tv broke", NULL, NULL, 3, 0, ""},
        {"exception elsewhere in the text", "fire tv broke, then a fire", NULL, NULL, 1, 0,
         "safety"},
        {"CJK substring", "手机充电时着火了", NULL, NULL, 1, 0, "safety"},
        {"zh negation 不", "用了不过敏", NULL, NULL, 3, 0, ""},
        {"zh no negation", "用了以后过敏了", NULL, NULL, 1, 0, "safety"},
        {"zh negation 没有", "还好没有着火", NULL, NULL, 3, 0, ""},
        {"zh almost is no negation", "差点着火", NULL, NULL, 1, 0, "safety"},
        {"zh negation not adjacent", "不知道为什么着火了", NULL, NULL, 1, 0, "safety"},
        {"zh exception", "多媒体效果差", NULL, NULL, 3, 0, ""},
        {"zh raise", "我要找媒体曝光", NULL, NULL, 3, 1, "media_threat"},
        {"pattern in order", "粥里吃出了虫子", NULL, NULL, 1, 0, "safety"},
        {"pattern too far apart", "吃出了一个很大很大的虫", NULL, NULL, 3, 0, ""},
        {"pattern in the wrong order", "虫子吃出来", NULL, NULL, 3, 0, ""},
        {"pattern alternative", "喝出一块石头", NULL, NULL, 1, 0, "safety"},
        {"clause pattern", "身上起了好多包", NULL, NULL, 1, 0, "safety"},
        {"clause pattern broken by a comma", "粘在一起了，包装也破了", NULL, NULL, 3, 0, ""},
        {"three-part pattern", "a hair in my soup", NULL, NULL, 1, 0, "safety"},
        {"three parts out of order", "hair soup in my bowl", NULL, NULL, 3, 0, ""},
        {"digits keyword", "我打了12315投诉", NULL, NULL, 2, 0, "legal_threat"},
        {"digits keyword boundary", "电话0571231567", NULL, NULL, 3, 0, ""},
        {"informational signal", "I want a refund", NULL, NULL, 3, 0, "info"},
        {"amount over threshold", "一共损失了2万", NULL, NULL, 1, 0, "major_loss"},
        {"amount under threshold", "赔我9999元", NULL, NULL, 3, 0, ""},
        {"amount at threshold", "赔我10000元", NULL, NULL, 1, 0, "major_loss"},
        {"dollars under", "they took $1,499", NULL, NULL, 3, 0, ""},
        {"dollars at", "they took $1,500", NULL, NULL, 1, 0, "major_loss"},
        {"currency not watched", "lost €50000", NULL, NULL, 3, 0, ""},
        {"vip", "the parcel is late", "vip", NULL, 3, 1, "vip"},
        {"individual", "the parcel is late", "individual", NULL, 3, 0, ""},
        {"channel", "the parcel is late", NULL, "social", 3, 0, "public_channel"},
        {"raises add up", "我要找媒体", "vip", "social", 3, 2, "media_threat,vip,public_channel"},
        {"signals in config order", "12315 fire refund 媒体", NULL, NULL, 1, 1,
         "safety,media_threat,legal_threat,info"},
        {"empty text", "", NULL, NULL, 3, 0, ""},
        {"NULL text", NULL, NULL, NULL, 3, 0, ""},
    };
    clf_rules_t *r = load_mini();
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        clf_verdict_t v;
        char got[256];
        apply_text(r, cases[i].text, cases[i].ctype, cases[i].channel, &v);
        joined_signals(&v, got, sizeof got);
        CHECK(v.floor == cases[i].want_floor && v.raise == cases[i].want_raise &&
                  strcmp(got, cases[i].want_signals) == 0,
              "%s: got floor %d raise %d [%s], want %d %d [%s]\n", cases[i].label, v.floor,
              v.raise, got, cases[i].want_floor, cases[i].want_raise, cases[i].want_signals);
    }
    clf_rules_destroy(&r);
    assert_null(r);
    assert_int_equal(failures, 0);
}

static void test_angry(void **state)
{
    static const struct {
        const char *label;
        const char *text;
        bool want;
        int want_score;
    } cases[] = {
        {"strong keyword", "什么垃圾东西", true, 2},
        {"one weak cue", "再也不来了", false, 1},
        {"two weak cues", "再也不来了，再也不买了", true, 2},
        {"english strong prefix", "This is a SCAM", true, 2},
        {"english weak", "never again", false, 1},
        {"exclamations", "terrible!!!", true, 2},
        {"full-width exclamations", "太慢了！！！", true, 2},
        {"two exclamations", "slow!!", false, 0},
        {"shouting", "I AM VERY ANGRY about this", true, 2},
        {"two shouted words", "VERY ANGRY but fine", false, 0},
        {"I does not break a run", "GIVE ME MY MONEY I SAID", true, 2},
        {"redactions are not shouting", "XXXX XXXX XXXX XXXX account", false, 0},
        {"acronyms in Chinese text", "买的VIP会员APP不好用USB也坏了", false, 0},
        {"calm", "the parcel is one day late", false, 0},
        {"everything", "垃圾!!! SCAM SCAM SCAM", true, 2 + 2 + 2 + 2 * 3},
    };
    clf_rules_t *r = load_mini();
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        clf_verdict_t v;
        apply_text(r, cases[i].text, NULL, NULL, &v);
        CHECK(v.angry == cases[i].want && v.angry_score == cases[i].want_score,
              "%s: got angry %d score %d, want %d %d\n", cases[i].label, v.angry, v.angry_score,
              cases[i].want, cases[i].want_score);
    }
    clf_rules_destroy(&r);
    assert_int_equal(failures, 0);
}

/* ---- amounts ---- */

static void test_amounts(void **state)
{
    static const struct {
        const char *label;
        const char *text;
        double want; /* first amount; < 0: none */
        const char *want_currency;
    } cases[] = {
        {"yen sign", "¥5000", 5000, "CNY"},
        {"full-width yen sign", "￥5000", 5000, "CNY"},
        {"yuan", "5000元", 5000, "CNY"},
        {"thousands and yuan", "5,000 yuan", 5000, "CNY"},
        {"RMB before", "RMB 3000", 3000, "CNY"},
        {"rmb attached", "rmb3000", 3000, "CNY"},
        {"wan with decimals", "1.2万元", 12000, "CNY"},
        {"qian kuai", "3千块", 3000, "CNY"},
        {"chinese numerals", "两万块钱", 20000, "CNY"},
        {"chinese numerals compound", "一千五百元", 1500, "CNY"},
        {"shi wan", "十万元", 100000, "CNY"},
        {"bare wan after a loss", "损失了五万", 50000, "CNY"},
        {"bare wan with a space", "被骗了2 万", 20000, "CNY"},
        {"bare wan, particle after", "被骗2万了", 20000, "CNY"},
        {"bare wan with no money word", "五万", -1, NULL},
        {"wan duo yuan", "1万多元", 10000, "CNY"},
        {"qian duo renminbi", "2千多人民币", 2000, "CNY"},
        {"vague ji wan", "花了几万块", 10000, "CNY"},
        {"vague shang wan", "上万元的手机", 10000, "CNY"},
        {"hong kong dollars", "1万港币", 10000, "HKD"},
        {"dollar sign", "$1,200", 1200, "USD"},
        {"USD before", "USD 2000", 2000, "USD"},
        {"CFPB redaction", "paid {$100.00} twice", 100, "USD"},
        {"k", "$5k", 5000, "USD"},
        {"million", "$1.2 million", 1200000, "USD"},
        {"dollars after", "300 dollars", 300, "USD"},
        {"bucks", "200 bucks", 200, "USD"},
        {"euro sign", "€250", 250, "EUR"},
        {"pound sign", "£99.50", 99.5, "GBP"},
        {"HK$", "HK$800", 800, "HKD"},
        {"US$", "US$800", 800, "USD"},
        {"dao", "100刀", 100, "USD"},
        {"full-width digits", "５０００元", 5000, "CNY"},
        {"w with a unit", "2w块", 20000, "CNY"},
        {"w without a unit", "等了2w年", -1, NULL},
        {"decimal yuan", "3.5元", 3.5, "CNY"},
        {"distance, not money", "跑了2万公里", -1, NULL},
        {"pixels, not money", "像素只有30万", -1, NULL},
        {"model names", "mp3 player, P9", -1, NULL},
        {"year", "2019年买的", -1, NULL},
        {"bare number", "order 5000", -1, NULL},
        {"long ids are no money", "订单1234567890123元", -1, NULL},
        {"千万 is an adverb here", "千万别买", -1, NULL},
        {"several, first wins", "先付了¥200，又付了$300", 200, "CNY"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        clf_amount_t got[4];
        size_t n = clf_rules_amounts(cases[i].text, strlen(cases[i].text), got, 4);
        if (cases[i].want < 0) {
            CHECK(n == 0, "%s: got %zu amounts (%g %s), want none\n", cases[i].label, n,
                  n ? got[0].value : 0.0, n ? got[0].currency : "");
            continue;
        }
        CHECK(n >= 1 && fabs(got[0].value - cases[i].want) < 1e-6 &&
                  strcmp(got[0].currency, cases[i].want_currency) == 0,
              "%s: got %zu amounts, first %g %s, want %g %s\n", cases[i].label, n,
              n ? got[0].value : 0.0, n ? got[0].currency : "", cases[i].want,
              cases[i].want_currency);
    }
    clf_amount_t two[1];
    assert_int_equal(clf_rules_amounts("¥1 ¥2 ¥3", strlen("¥1 ¥2 ¥3"), two, 1), 3); /* past max */
    assert_int_equal(clf_rules_amounts(NULL, 0, two, 1), 0);
    assert_int_equal(failures, 0);
}

static void test_amount_in_verdict(void **state)
{
    clf_rules_t *r = load_mini();
    clf_verdict_t v;
    apply_text(r, "paid $800, then $2,000, then 5000元", NULL, NULL, &v);
    /* The largest against its threshold: $2,000 is 1.33 of $1,500; 5000元 is 0.5. */
    assert_int_equal(v.floor, 1);
    assert_true(v.amount == 2000);
    assert_string_equal(v.amount_currency, "USD");
    apply_text(r, "paid $800", NULL, NULL, &v);
    assert_int_equal(v.floor, 3);
    assert_null(v.amount_currency); /* only an amount that fired is reported */
    assert_true(v.amount == 0);
    clf_rules_destroy(&r);
}

/* ---- priority and settings ---- */

static void test_priority(void **state)
{
    static const struct {
        const char *label;
        const char *model;
        int floor, raise, extra;
        bool no_verdict;
        const char *want;
    } cases[] = {
        {"nothing known: general", NULL, 3, 0, 0, true, "P2"},
        {"model alone", "P3", 3, 0, 0, false, "P3"},
        {"floor wins", "P3", 1, 0, 0, false, "P1"},
        {"floor below the model", "P1", 2, 0, 0, false, "P1"},
        {"floor P2", "P3", 2, 0, 0, false, "P2"},
        {"raise one", "P2", 3, 1, 0, false, "P1"},
        {"raise from P3", "P3", 3, 1, 0, false, "P2"},
        {"raise two", "P3", 3, 2, 0, false, "P1"},
        {"raise past P1", "P1", 3, 2, 0, false, "P1"},
        {"repeat raise", "P2", 3, 0, 1, false, "P1"},
        {"raise and repeat", "P3", 3, 1, 1, false, "P1"},
        {"negative extra lowers", "P1", 3, 0, -1, false, "P2"},
        {"not below P3", "P3", 3, 0, -1, false, "P3"},
        {"floor beats a lowering", "P2", 2, 0, -1, false, "P2"},
        {"bad model value", "P7", 3, 0, 0, false, "P2"},
        {"lowercase model value", "p1", 3, 0, 0, false, "P2"},
        {"model with no verdict", "P3", 3, 0, 1, true, "P2"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        clf_verdict_t v = {.floor = cases[i].floor, .raise = cases[i].raise};
        const char *got =
            clf_rules_priority(cases[i].model, cases[i].no_verdict ? NULL : &v, cases[i].extra);
        CHECK(strcmp(got, cases[i].want) == 0, "%s: got %s, want %s\n", cases[i].label, got,
              cases[i].want);
    }
    clf_verdict_t zero = {0}; /* floor 0 counts as none */
    assert_string_equal(clf_rules_priority("P3", &zero, 0), "P3");
    assert_int_equal(failures, 0);
}

static void test_settings(void **state)
{
    clf_rules_t *r = load_mini();
    assert_true(fabs(clf_rules_min_confidence(r) - 0.55) < 1e-9);
    assert_int_equal(clf_rules_repeat_window_ms(r), 7LL * 24 * 3600 * 1000);
    assert_int_equal(clf_rules_multi_channel_window_ms(r), 48LL * 3600 * 1000);
    assert_int_equal(clf_rules_repeat_raise(r), 2);
    assert_string_equal(clf_rules_repeat_signal(r), "repeat");
    assert_string_equal(clf_rules_multi_channel_signal(r), "multi_channel");
    assert_true(clf_rules_memory(r) > 0);
    clf_rules_destroy(&r);
    clf_rules_destroy(&r); /* NULL-safe */
    clf_rules_destroy(NULL);

    /* Defaults, from an empty document. */
    pl_errlist_t errs = PL_ERRLIST_INIT;
    cJSON *doc = cJSON_Parse("{}");
    r = clf_rules_from_json(doc, &errs);
    cJSON_Delete(doc);
    assert_non_null(r);
    assert_true(fabs(clf_rules_min_confidence(r) - 0.40) < 1e-9);
    assert_int_equal(clf_rules_repeat_window_ms(r), 30LL * 24 * 3600 * 1000);
    assert_int_equal(clf_rules_multi_channel_window_ms(r), 72LL * 3600 * 1000);
    assert_int_equal(clf_rules_repeat_raise(r), 1);
    clf_verdict_t v;
    apply_text(r, "fire!!! SCAM", "vip", "social", &v);
    assert_int_equal(v.floor, 3);
    assert_int_equal(v.nsignals, 0);
    clf_rules_destroy(&r);
    pl_errlist_reset(&errs);
}

static void test_verdict_signals(void **state)
{
    clf_verdict_t v = {.floor = 3};
    static const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h",
                                        "i", "j", "k", "l", "m", "n", "o", "p"};
    assert_true(clf_verdict_add_signal(&v, "repeat"));
    assert_true(clf_verdict_add_signal(&v, "repeat"));
    assert_int_equal(v.nsignals, 1);
    for (size_t i = 0; i < NELEMS(names); i++)
        (void)clf_verdict_add_signal(&v, names[i]); /* the last ones do not fit */
    assert_int_equal(v.nsignals, CLF_RULES_MAX_SIGNALS);
    assert_false(clf_verdict_add_signal(&v, "extra"));
    assert_true(clf_verdict_add_signal(&v, "repeat"));
}

static void test_explain(void **state)
{
    clf_rules_t *r = load_mini();
    clf_rules_input_t in = {"粥里吃出了虫子!!! 损失了2万", 0, "vip", NULL};
    in.len = strlen(in.text);
    clf_verdict_t v;
    char *why = clf_rules_explain(r, &in, &v);
    assert_non_null(strstr(why, "safety: patterns[0] ending in \"虫\""));
    assert_non_null(strstr(why, "major_loss: amount 20000.00 CNY"));
    assert_non_null(strstr(why, "vip: \"vip\""));
    assert_non_null(strstr(why, "angry: 3 exclamation marks in a row"));
    assert_int_equal(v.floor, 1);
    pl_free(why);
    in = (clf_rules_input_t){"nothing", 7, NULL, NULL};
    why = clf_rules_explain(r, &in, &v);
    assert_string_equal(why, "");
    pl_free(why);
    clf_rules_destroy(&r);
}

/* ---- config errors ---- */

static void test_config_errors(void **state)
{
    static const struct {
        const char *label;
        const char *doc;
        const char *want_path;
        const char *want_msg; /* a substring */
    } cases[] = {
        {"bad priority", "{\"signals\": [{\"name\": \"x\", \"priority\": \"P4\"}]}",
         "signals[0].priority", "signals[0].priority \"P4\" is not a priority"},
        {"unknown field", "{\"signals\": [{\"name\": \"x\", \"keywrds\": {}}]}",
         "signals[0].keywrds", "signals[0].keywrds is not a known field"},
        {"empty keyword", "{\"signals\": [{\"name\": \"x\", \"keywords\": {\"zh\": [\"着火\", \"\"]}}]}",
         "signals[0].keywords.zh[1]", "signals[0].keywords.zh[1] is empty"},
        {"blank keyword", "{\"signals\": [{\"name\": \"x\", \"keywords\": {\"zh\": [\"  \"]}}]}",
         "signals[0].keywords.zh[0]", "is empty"},
        {"bad duration", "{\"repeat\": {\"window\": \"30 days\"}}", "repeat.window",
         "repeat.window \"30 days\" is not a positive duration"},
        {"zero duration", "{\"repeat\": {\"window\": \"0s\"}}", "repeat.window",
         "is not a positive duration"},
        {"duration of the wrong type", "{\"repeat\": {\"multi_channel_window\": 30}}",
         "repeat.multi_channel_window", "must be a duration string"},
        {"signals not an array", "{\"signals\": {\"name\": \"x\"}}", "signals",
         "signals must be an array, not object"},
        {"bad signal name", "{\"signals\": [{\"name\": \"Bad Name\"}]}", "signals[0].name",
         "\"Bad Name\" is not a valid signal name"},
        {"missing name", "{\"signals\": [{\"priority\": \"P1\"}]}", "signals[0].name",
         "signals[0].name is missing"},
        {"duplicate name", "{\"signals\": [{\"name\": \"a\"}, {\"name\": \"a\"}]}",
         "signals[1].name", "names an earlier signal"},
        {"raise too big", "{\"signals\": [{\"name\": \"a\", \"raise\": 3}]}", "signals[0].raise",
         "is 3, not a whole number from 0 to 2"},
        {"raise not whole", "{\"signals\": [{\"name\": \"a\", \"raise\": 0.5}]}",
         "signals[0].raise", "not a whole number"},
        {"star inside", "{\"signals\": [{\"name\": \"a\", \"keywords\": {\"en\": [\"fi*re\"]}}]}",
         "signals[0].keywords.en[0]", "has a misplaced \"*\""},
        {"star after CJK", "{\"signals\": [{\"name\": \"a\", \"keywords\": {\"zh\": [\"着火*\"]}}]}",
         "signals[0].keywords.zh[0]", "has a misplaced \"*\""},
        {"star alone", "{\"signals\": [{\"name\": \"a\", \"keywords\": {\"en\": [\"*\"]}}]}",
         "signals[0].keywords.en[0]", "is empty"},
        {"bar in a keyword", "{\"signals\": [{\"name\": \"a\", \"keywords\": {\"en\": [\"a|b\"]}}]}",
         "signals[0].keywords.en[0]", "contains \"|\""},
        {"language code", "{\"signals\": [{\"name\": \"a\", \"keywords\": {\"EN\": [\"x\"]}}]}",
         "signals[0].keywords.EN", "\"EN\" is not a language code"},
        {"list not an array", "{\"signals\": [{\"name\": \"a\", \"keywords\": {\"en\": \"fire\"}}]}",
         "signals[0].keywords.en", "must be an array of strings, not string"},
        {"keyword not a string",
         "{\"signals\": [{\"name\": \"a\", \"keywords\": {\"en\": [\"fire\", 3]}}]}",
         "signals[0].keywords.en[1]", "must be a string, not number"},
        {"keyword too long",
         "{\"signals\": [{\"name\": \"a\", \"keywords\": {\"en\": [\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "\"]}}]}",
         "signals[0].keywords.en[0]", "bytes, limit is 200"},
        {"pattern with one part",
         "{\"signals\": [{\"name\": \"a\", \"patterns\": [{\"near\": [\"x\"]}]}]}",
         "signals[0].patterns[0].near", "must be an array of 2 to 4 strings"},
        {"empty alternative",
         "{\"signals\": [{\"name\": \"a\", \"patterns\": [{\"near\": [\"x||y\", \"z\"]}]}]}",
         "signals[0].patterns[0].near[0]", "signals[0].patterns[0].near[0] is empty"},
        {"within too large",
         "{\"signals\": [{\"name\": \"a\", \"patterns\": [{\"near\": [\"x\", \"y\"], "
         "\"within\": 500}]}]}",
         "signals[0].patterns[0].within", "not a whole number from 0 to 100"},
        {"clause not a boolean",
         "{\"signals\": [{\"name\": \"a\", \"patterns\": [{\"near\": [\"x\", \"y\"], "
         "\"clause\": 1}]}]}",
         "signals[0].patterns[0].clause", "must be true or false, not number"},
        {"unknown currency", "{\"amounts\": {\"at_least\": {\"XYZ\": 5}}}",
         "amounts.at_least.XYZ", "currency \"XYZ\" is not one the text parser knows"},
        {"negative threshold", "{\"amounts\": {\"at_least\": {\"CNY\": -5}}}",
         "amounts.at_least.CNY", "must be a positive number"},
        {"amounts without thresholds", "{\"amounts\": {\"signal\": \"major_loss\"}}",
         "amounts.at_least", "amounts.at_least is missing"},
        {"unknown customer type", "{\"customer_types\": {\"gold\": {\"signal\": \"gold\"}}}",
         "customer_types.gold", "\"gold\" is not a known value"},
        {"channel without signal", "{\"channels\": {\"social\": {\"raise\": 1}}}",
         "channels.social.signal", "channels.social.signal is missing"},
        {"min_confidence out of range", "{\"min_confidence\": 1.5}", "min_confidence",
         "must be a number from 0 to 1"},
        {"unknown top-level field", "{\"nonsense\": 1}", "nonsense",
         "nonsense is not a known field"},
        {"not an object", "[\"x\"]", "", "the document must be an object, not array"},
        {"min_score zero", "{\"sentiment\": {\"angry\": {\"min_score\": 0}}}",
         "sentiment.angry.min_score", "not a whole number from 1 to 100"},
        {"negation window", "{\"negations\": {\"en\": {\"within\": 50, \"terms\": [\"no\"]}}}",
         "negations.en.within", "not a whole number from 0 to 20"},
        {"duplicate key", "{\"min_confidence\": 0.4, \"min_confidence\": 0.5}", "min_confidence",
         "min_confidence appears twice"},
        {"exception list type", "{\"exceptions\": [\"x\"]}", "exceptions",
         "must be an object of lists by language"},
    };
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        pl_errlist_t errs = PL_ERRLIST_INIT;
        cJSON *doc = cJSON_Parse(cases[i].doc);
        assert_non_null(doc);
        clf_rules_t *r = clf_rules_from_json(doc, &errs);
        cJSON_Delete(doc);
        bool ok = r == NULL && errs.count >= 1;
        const pl_err_t *e = errs.count ? &errs.items[0] : NULL;
        CHECK(ok && e && e->code == PL_ECONFIG && strcmp(e->path, cases[i].want_path) == 0 &&
                  strstr(e->message, cases[i].want_msg) &&
                  strncmp(e->message, "classifier.json: ", 17) == 0 && e->hint[0],
              "%s: got %s, %zu errors, first [%s] \"%s\" hint \"%s\"; want [%s] \"%s\"\n",
              cases[i].label, r ? "rules" : "NULL", errs.count, e ? e->path : "",
              e ? e->message : "", e ? e->hint : "", cases[i].want_path, cases[i].want_msg);
        clf_rules_destroy(&r);
        pl_errlist_reset(&errs);
    }
    assert_int_equal(failures, 0);
}

static void test_config_every_error(void **state)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    cJSON *doc = cJSON_Parse("{\"min_confidence\": -1, \"repeat\": {\"window\": \"soon\"},"
                             " \"signals\": [{\"name\": \"a\", \"priority\": \"high\","
                             " \"keywords\": {\"zh\": [\"\"]}}], \"extra\": true}");
    clf_rules_t *r = clf_rules_from_json(doc, &errs);
    cJSON_Delete(doc);
    assert_null(r);
    assert_int_equal(errs.count, 5);
    pl_errlist_reset(&errs);
}

static void test_config_files(void **state)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nowhere", scratch);
    assert_null(clf_rules_load(missing, &errs));
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.items[0].message, CLF_RULES_FILE));
    pl_errlist_reset(&errs);

    write_config("{\"signals\": [,]}");
    assert_null(clf_rules_load(scratch, &errs));
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.items[0].message, "line 1"));
    pl_errlist_reset(&errs);

    write_config("{\"signals\": [{\"name\": \"a\", \"priority\": \"P0\"}]}");
    assert_null(clf_rules_load(scratch, &errs));
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.items[0].path, "signals[0].priority");
    pl_errlist_reset(&errs);
}

/* ---- hostile input ---- */

static void test_invalid_utf8(void **state)
{
    static const struct {
        const char *label;
        const char *bytes;
        size_t len;
        int want_floor;
    } cases[] = {
        {"0xFF around a keyword", "\xFF" "fire\xFE", 6, 1},
        {"truncated CJK in a keyword", "着\xE7火", 7, 3},
        {"truncated at the end", "fire \xE7\x9D", 7, 1},
        {"overlong slash", "\xC0\xAF" "fire", 6, 1},
        {"surrogate", "\xED\xA0\x80", 3, 3},
        {"above U+10FFFF", "\xF4\x90\x80\x80", 4, 3},
        {"NUL inside", "ok\0fire", 7, 1},
        {"lone continuation bytes", "\x80\x80\x80\xBF", 4, 3},
        {"only a lead byte", "\xE4", 1, 3},
        {"digits and garbage", "\xFF" "1\xFF" "2万\xFF元", 10, 3},
    };
    clf_rules_t *r = load_mini();
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        clf_verdict_t v;
        clf_rules_input_t in = {cases[i].bytes, cases[i].len, NULL, NULL};
        clf_rules_apply(r, &in, &v);
        CHECK(v.floor == cases[i].want_floor, "%s: got floor %d, want %d\n", cases[i].label,
              v.floor, cases[i].want_floor);
    }
    clf_rules_destroy(&r);
    assert_int_equal(failures, 0);
}

/* Random bytes, biased to UTF-8 lead bytes, digits and currency signs: under ASan this
 * proves the scanners never read outside the text. */
static void test_random_bytes(void **state)
{
    static const char alphabet[] = "\xE4\xB8\x87\xE5\x85\x83\xC2\xA5$0123456789.,k \xFF\x80\xEF";
    clf_rules_t *mini = load_mini();
    clf_rules_t *shipped = load_shipped();
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    char buf[512];
    for (int round = 0; round < 3000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = (size_t)(x % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (x & 1) ? (char)(x >> 8) : alphabet[(x >> 8) % (sizeof alphabet - 1)];
        }
        /* Exactly len bytes on the heap, so ASan sees a read past the end. */
        char *text = pl_malloc(len ? len : 1);
        memcpy(text, buf, len);
        clf_rules_input_t in = {text, len, NULL, NULL};
        clf_verdict_t v;
        clf_rules_apply(mini, &in, &v);
        assert_true(v.floor >= 1 && v.floor <= 3);
        clf_rules_apply(shipped, &in, &v);
        assert_true(v.floor >= 1 && v.floor <= 3);
        clf_amount_t amts[4];
        (void)clf_rules_amounts(text, len, amts, 4); /* any count is fine */
        pl_free(text);
    }
    clf_rules_destroy(&mini);
    clf_rules_destroy(&shipped);
}

static void test_large_text(void **state)
{
    clf_rules_t *r = load_shipped();
    size_t size = 65536;
    char *text = pl_malloc(size);
    const char *filler = "物流太慢了，等了三天。The parcel was late again. ";
    size_t flen = strlen(filler), len = 0;
    while (len + flen + 32 < size) {
        memcpy(text + len, filler, flen);
        len += flen;
    }
    const char *tail = "充电器冒烟了";
    memcpy(text + len, tail, strlen(tail));
    len += strlen(tail);
    clf_rules_input_t in = {text, len, NULL, NULL};
    clf_verdict_t v;
    clf_rules_apply(r, &in, &v);
    assert_int_equal(v.floor, 1);
    assert_true(has_signal(&v, "safety"));
    in.len = len - strlen(tail);
    clf_rules_apply(r, &in, &v);
    assert_int_equal(v.floor, 3);
    pl_free(text);
    clf_rules_destroy(&r);
}

typedef struct worker {
    const clf_rules_t *r;
    int bad;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < 300; i++) {
        clf_verdict_t v;
        clf_rules_input_t in = {"汤里吃出一只苍蝇，律师函见", 0, "vip", NULL};
        in.len = strlen(in.text);
        clf_rules_apply(w->r, &in, &v);
        w->bad += v.floor != 1 || !has_signal(&v, "health") || !has_signal(&v, "legal_threat");
    }
    return NULL;
}

static void test_threads(void **state)
{
    clf_rules_t *r = load_shipped();
    pthread_t th[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){r, 0};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].bad, 0);
    }
    clf_rules_destroy(&r);
}

/* ---- the shipped config ---- */

static void test_shipped_config(void **state)
{
    static const struct {
        const char *label;
        const char *text;
        int want_floor;
        const char *want_signal; /* NULL: none at all */
    } cases[] = {
        {"zh power bank smoke", "充电宝充着充着就冒烟了，差点着火", 1, "safety"},
        {"zh swollen battery", "用了半年电池鼓包了，很危险", 1, "safety"},
        {"zh electric shock", "热水器漏电，洗澡时被电了一下", 1, "safety"},
        {"zh child cut", "玩具的尖角把孩子的手划伤了", 1, "safety"},
        {"zh trapped in a lift", "电梯突然停了，我们被困在里面一个小时", 1, "safety"},
        {"zh gas", "装完以后燃气灶一直漏气", 1, "safety"},
        {"zh food poisoning", "吃完你们的外卖全家上吐下泻", 1, "health"},
        {"zh fly in soup", "汤里吃出一只苍蝇", 1, "health"},
        {"zh stone in rice", "米饭里有块石头，牙都硌疼了", 1, "health"},
        {"zh face swollen", "用了这个面霜以后脸上红肿", 1, "health"},
        {"zh undercooked chicken", "鸡肉里面还是生的", 1, "health"},
        {"zh lawyer", "我已经咨询了律师，准备起诉你们", 1, "legal_threat"},
        {"zh 12315", "再不处理我就打12315投诉", 1, "regulator"},
        {"zh consumer association", "我会向消费者协会反映", 1, "regulator"},
        {"zh media", "我会把这件事发到微博上", 1, "media_threat"},
        {"zh expose", "不解决就曝光你们", 1, "media_threat"},
        {"zh theft and police", "放在房间的现金被盗了，已经报警", 1, "theft"},
        {"zh police", "你们再不退钱我就报警", 1, "police"},
        {"zh big loss", "被骗了三万块钱", 1, "major_loss"},
        {"zh big loss words", "这次真是损失惨重", 1, "major_loss"},
        {"zh leak", "我的个人信息被泄露了", 3, "privacy"},
        {"en lawyer", "I will contact my lawyer and sue you", 1, "legal_threat"},
        {"en battery fire", "My phone battery swelled and caught fire overnight", 1, "safety"},
        {"en glass", "Found a piece of glass in my salad", 1, "health"},
        {"en food poisoning", "I got food poisoning after eating the chicken", 1, "health"},
        {"en hair in food", "there was a hair in my soup", 3, "hygiene"},
        {"en regulator", "I am reporting you to the FTC and the BBB", 1, "regulator"},
        {"en media", "I will post this on social media and call the local news", 1,
         "media_threat"},
        {"en theft and amount", "Someone stole $2,000 from my account", 1, "major_loss"},
        {"en redacted amount", "They charged me {$2500.00} twice", 1, "major_loss"},
        {"en elevator", "we were stuck in the elevator for an hour", 1, "safety"},
        {"en brakes", "the brakes failed on the highway", 1, "safety"},
        {"en fired, P1 recall wins", "the unit fired sparks at me", 1, "safety"},
        {"en fired as dismissed", "you should fire the manager", 3, NULL},
        {"zh late parcel", "快递比预计晚到了一天，包装有点破", 3, NULL},
        {"zh not allergic", "用了一个月，不过敏，但是味道不好闻", 3, NULL},
        {"zh multimedia", "这款手机多媒体功能太差", 3, NULL},
        {"zh hygiene only", "房间里有蟑螂，很脏", 3, "hygiene"},
        {"en late parcel", "The delivery was a day late and the box was dented.", 3, NULL},
        {"en firefox", "Firefox keeps crashing on your website", 3, NULL},
        {"en no fire", "there was no fire, just a smell", 3, NULL},
    };
    clf_rules_t *r = load_shipped();
    failures = 0;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        clf_verdict_t v;
        char got[256];
        apply_text(r, cases[i].text, NULL, NULL, &v);
        joined_signals(&v, got, sizeof got);
        bool ok = v.floor == cases[i].want_floor &&
                  (cases[i].want_signal ? has_signal(&v, cases[i].want_signal) : v.nsignals == 0);
        CHECK(ok, "%s: got floor %d [%s], want %d with %s\n", cases[i].label, v.floor, got,
              cases[i].want_floor, cases[i].want_signal ? cases[i].want_signal : "none");
    }
    clf_verdict_t v;
    apply_text(r, "the parcel is late", "vip", "social", &v);
    assert_true(has_signal(&v, "vip") && has_signal(&v, "public_channel"));
    assert_int_equal(v.raise, 1);
    assert_string_equal(clf_rules_priority("P2", &v, 0), "P1");
    apply_text(r, "什么垃圾服务，骗子！！！", NULL, NULL, &v);
    assert_true(v.angry);
    apply_text(r, "东西还行，就是物流慢了点", NULL, NULL, &v);
    assert_false(v.angry);
    clf_rules_destroy(&r);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_angry),
        cmocka_unit_test(test_amounts),
        cmocka_unit_test(test_amount_in_verdict),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_verdict_signals),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_every_error),
        cmocka_unit_test(test_config_files),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_large_text),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_shipped_config),
    };
    return cmocka_run_group_tests(tests, make_scratch, remove_scratch);
}
