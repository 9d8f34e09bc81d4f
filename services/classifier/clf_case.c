#include "clf_case.h"

#include <stdio.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_json.h"

#define SIGNALS_MAX (CLF_RULES_MAX_SIGNALS + 4)

struct clf_case {
    char category[65];
    char model_priority[8]; /* "" when the model has no priority head */
    char priority[4];
    char sentiment[16];
    double confidence;
    bool triage;
    clf_verdict_t verdict; /* floor and raise only: its signals are copied below */
    int repeat_raise;        /* applied: 0 until a repeat is found */
    int repeat_raise_config; /* the rules' lift for a repeat */
    int64_t repeat_window_ms, multi_window_ms;
    char repeat_signal[64], multi_signal[64];
    char channel[32];
    char repeat_of[40];
    char *signals[SIGNALS_MAX];
    size_t nsignals;
};

char *clf_case_text(const cJSON *row, size_t *len)
{
    static const char *const fields[] = {"subject", "body", "demand"};
    size_t total = 0;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        total += strlen(pl_json_str(row, fields[i], "")) + 1;
    char *text = pl_malloc(total + 1);
    size_t at = 0;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const char *s = pl_json_str(row, fields[i], "");
        size_t n = strlen(s);
        if (!n)
            continue;
        if (at)
            text[at++] = '\n';
        memcpy(text + at, s, n);
        at += n;
    }
    text[at] = '\0';
    *len = at;
    return text;
}

const char *clf_case_sentiment_of(const char *label)
{
    if (!label)
        return "dissatisfied";
    if (!strcmp(label, "calm") || !strcmp(label, "positive") || !strcmp(label, "neutral"))
        return "calm";
    if (!strcmp(label, "angry"))
        return "angry";
    return "dissatisfied";
}

static void add_signal(clf_case_t *c, const char *name)
{
    for (size_t i = 0; i < c->nsignals; i++)
        if (!strcmp(c->signals[i], name))
            return;
    if (c->nsignals < SIGNALS_MAX)
        c->signals[c->nsignals++] = pl_strdup(name);
}

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static void settle_priority(clf_case_t *c)
{
    const char *p = clf_rules_priority(c->model_priority[0] ? c->model_priority : NULL,
                                       &c->verdict, c->repeat_raise);
    copy(c->priority, sizeof c->priority, p);
}

clf_case_t *clf_case_new(const clf_model_t *model, const clf_rules_t *rules, const cJSON *row)
{
    clf_case_t *c = pl_calloc(1, sizeof *c);
    size_t len;
    char *text = clf_case_text(row, &len);
    clf_guess_t guess[CLF_NHEADS];
    clf_model_predict(model, text, len, guess);
    clf_rules_input_t in = {
        .text = text,
        .len = len,
        .customer_type = pl_json_str(row, "customer_type", "individual"),
        .channel = pl_json_str(row, "channel", "other"),
    };
    clf_rules_apply(rules, &in, &c->verdict);
    for (size_t i = 0; i < c->verdict.nsignals; i++)
        add_signal(c, c->verdict.signals[i]);
    c->verdict.nsignals = 0; /* the originals belong to rules, which may be replaced */

    const clf_guess_t *cat = &guess[CLF_HEAD_CATEGORY];
    c->confidence = cat->label ? cat->prob : 0.0;
    copy(c->category, sizeof c->category, cat->label ? cat->label : "other");
    if (!cat->label || c->confidence < clf_rules_min_confidence(rules)) {
        c->triage = true;
        add_signal(c, "low_confidence");
    }
    copy(c->model_priority, sizeof c->model_priority, guess[CLF_HEAD_PRIORITY].label);
    const char *sentiment = clf_case_sentiment_of(guess[CLF_HEAD_SENTIMENT].label);
    if (c->verdict.angry)
        sentiment = "angry";
    copy(c->sentiment, sizeof c->sentiment, sentiment);
    c->repeat_raise = 0;
    c->repeat_raise_config = clf_rules_repeat_raise(rules);
    c->repeat_window_ms = clf_rules_repeat_window_ms(rules);
    c->multi_window_ms = clf_rules_multi_channel_window_ms(rules);
    copy(c->repeat_signal, sizeof c->repeat_signal, clf_rules_repeat_signal(rules));
    copy(c->multi_signal, sizeof c->multi_signal, clf_rules_multi_channel_signal(rules));
    copy(c->channel, sizeof c->channel, in.channel);
    pl_free(text);
    settle_priority(c);
    return c;
}

void clf_case_destroy(clf_case_t **c_p)
{
    clf_case_t *c = *c_p;
    if (!c)
        return;
    for (size_t i = 0; i < c->nsignals; i++)
        pl_free(c->signals[i]);
    pl_free(c);
    *c_p = NULL;
}

bool clf_case_set_earlier(clf_case_t *c, const char *earlier_case_id, int64_t age_ms,
                          const char *channel)
{
    if (!earlier_case_id || !*earlier_case_id || age_ms < 0)
        return false;
    bool repeat = age_ms <= c->repeat_window_ms;
    bool multi = age_ms <= c->multi_window_ms && channel && strcmp(channel, c->channel) != 0;
    if (!repeat && !multi)
        return false;
    copy(c->repeat_of, sizeof c->repeat_of, earlier_case_id);
    if (repeat)
        add_signal(c, c->repeat_signal);
    if (multi)
        add_signal(c, c->multi_signal);
    c->repeat_raise = c->repeat_raise_config;
    settle_priority(c);
    return true;
}

bool clf_case_triage(const clf_case_t *c)
{
    return c->triage;
}

const char *clf_case_category(const clf_case_t *c)
{
    return c->category;
}

const char *clf_case_priority(const clf_case_t *c)
{
    return c->priority;
}

const char *clf_case_sentiment(const clf_case_t *c)
{
    return c->sentiment;
}

cJSON *clf_case_json(const clf_case_t *c)
{
    cJSON *o = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(o, "category", c->category);
    pl_json_add_str(o, "priority", c->priority);
    /* Rounded so the event reads 0.8731, not 0.87310004234. */
    pl_json_add_num(o, "confidence", (double)(long)(c->confidence * 10000 + 0.5) / 10000);
    pl_json_add_str(o, "sentiment", c->sentiment);
    if (c->repeat_of[0])
        pl_json_add_str(o, "repeat_of", c->repeat_of);
    else
        pl_json_add(o, "repeat_of", pl_json_must(cJSON_CreateNull()));
    cJSON *signals = pl_json_must(cJSON_CreateArray());
    for (size_t i = 0; i < c->nsignals; i++)
        cJSON_AddItemToArray(signals, pl_json_must(cJSON_CreateString(c->signals[i])));
    pl_json_add(o, "signals", signals);
    pl_json_add(o, "triage", pl_json_must(cJSON_CreateBool(c->triage)));
    return o;
}
