/*
 * clf_rules: the classifier's domain rules, read from PLAINT_CONFIG_DIR/classifier.json.
 *
 * The statistical model guesses category, priority and sentiment; these rules say what must not
 * be left to a guess: safety and health reports, threats of lawyers, regulators, police or the
 * media, major money losses (amounts are parsed from the text), VIP customers. Each rule that
 * fires names a signal (for case.classified's "signals") and sets a priority floor ("the case is
 * at least P1") or raises the model's priority by levels. Sentiment cues (insults, "never again",
 * "!!!", shouting in capitals) say the customer is angry.
 *
 * Matching: all keywords, negations and pattern parts are compiled into one Aho-Corasick
 * automaton at load, so a case costs one pass over its text whatever the size of the lists.
 * Text and keywords are folded the same way first: ASCII and Latin-1 letters to lower case,
 * full-width forms to ASCII (Ｆｉｒｅ, １２３１５, ！), runs of white space to one space.
 * See README-rules.md for the file format and the matching rules.
 *
 * A loaded clf_rules_t is immutable: clf_rules_apply() may run on many threads at once.
 */
#ifndef CLF_RULES_H
#define CLF_RULES_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl_err.h"

#define CLF_RULES_FILE "classifier.json"
#define CLF_RULES_MAX_SIGNALS 16

typedef struct clf_rules clf_rules_t;

/* Reads and checks <config_dir>/classifier.json. Returns the rules (release with
 * clf_rules_destroy), or NULL with every problem appended to errs, each naming the field
 * ("signals[2].keywords.zh[4]") in its path and message, with a hint. */
clf_rules_t *clf_rules_load(const char *config_dir, pl_errlist_t *errs);
/* The same from a parsed document (borrowed; not kept). */
clf_rules_t *clf_rules_from_json(const cJSON *doc, pl_errlist_t *errs);
/* NULL-safe; sets *rules_p to NULL. */
void clf_rules_destroy(clf_rules_t **rules_p);

typedef struct clf_rules_input {
    const char *text;          /* subject + "\n" + body + "\n" + demand; UTF-8, invalid bytes
                                * are read as spaces; need not be NUL-terminated */
    size_t len;                /* bytes of text */
    const char *customer_type; /* individual | enterprise | vip; NULL = individual */
    const char *channel;       /* phone, email, social, ...; NULL = none */
} clf_rules_input_t;

typedef struct clf_verdict {
    int floor;   /* 1..3: the case is at least P<floor>; 3 = no floor */
    int raise;   /* 0..2: levels to lift the model's priority by */
    bool angry;      /* sentiment cues say angry */
    int angry_score; /* 2 per strong cue (insult, "!!!", shouting), 1 per weak one */
    /* The amount that fired the amounts rule (the largest against its currency's threshold),
     * in amount_currency ("CNY", "USD", ...; static); 0 and NULL when none did. */
    double amount;
    const char *amount_currency;
    /* Names of the signals that fired, in config order, each once; borrowed from the rules
     * (valid until clf_rules_destroy). Past CLF_RULES_MAX_SIGNALS names are dropped, but
     * floor and raise still count every signal. */
    const char *signals[CLF_RULES_MAX_SIGNALS];
    size_t nsignals;
} clf_verdict_t;

/* Runs every rule over in and fills out. Never fails; cost is linear in in->len. */
void clf_rules_apply(const clf_rules_t *r, const clf_rules_input_t *in, clf_verdict_t *out);

/* The same, and says why: one line per match, "safety: \"冒烟\"", "health: patterns[2] ending
 * in \"苍蝇\"", "major_loss: amount 20000.00 CNY", "angry: 4 exclamation marks in a row".
 * For tools and for operators tuning the config (the text names keywords, never case text
 * beyond them). Returns a string the caller frees (never NULL). */
char *clf_rules_explain(const clf_rules_t *r, const clf_rules_input_t *in, clf_verdict_t *out);

/* Appends name (borrowed; must outlive v) unless already there or v is full; returns whether
 * name is in v afterwards. For signals the daemon finds itself, e.g. "repeat". */
bool clf_verdict_add_signal(clf_verdict_t *v, const char *name);

/* Combines the model's priority ("P1".."P3"; NULL or anything else counts as P2, general)
 * with v (NULL = none) and extra_raise (e.g. clf_rules_repeat_raise() for a repeat
 * complaint): the model's level, lifted by v->raise + extra_raise, then at least as urgent
 * as v->floor. Returns "P1", "P2" or "P3" (static). */
const char *clf_rules_priority(const char *model_priority, const clf_verdict_t *v,
                               int extra_raise);

/* Settings the daemon applies itself. */
double clf_rules_min_confidence(const clf_rules_t *r); /* below it: send to triage */
int64_t clf_rules_repeat_window_ms(const clf_rules_t *r);        /* same customer, same issue */
int64_t clf_rules_multi_channel_window_ms(const clf_rules_t *r); /* same issue, other channel */
int clf_rules_repeat_raise(const clf_rules_t *r);
const char *clf_rules_repeat_signal(const clf_rules_t *r);        /* borrowed: "repeat" */
const char *clf_rules_multi_channel_signal(const clf_rules_t *r); /* borrowed: "multi_channel" */

/* Money amounts in text, for tests and tools: writes up to max of them to out (in text
 * order) and returns how many there are. currency is a static ISO 4217 code. */
typedef struct clf_amount {
    double value;
    const char *currency;
} clf_amount_t;
size_t clf_rules_amounts(const char *text, size_t len, clf_amount_t *out, size_t max);

/* Bytes held by the compiled rules (automaton and tables), for the startup log. */
size_t clf_rules_memory(const clf_rules_t *r);

#endif
