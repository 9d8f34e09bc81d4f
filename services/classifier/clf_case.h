/*
 * clf_case: one case's classification, from the model, the rules and (once
 * the daemon has looked it up) the customer's earlier case. No I/O here, so
 * the whole decision is unit-tested without a database.
 *
 * The outcome copies everything it keeps (labels, signal names), so the
 * model and rules it was computed with may be replaced (SIGHUP) while the
 * daemon waits for the repeat lookup.
 */
#ifndef CLF_CASE_H
#define CLF_CASE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clf_model.h"
#include "clf_rules.h"

typedef struct clf_case clf_case_t;

/* The text the model and rules read: subject, body and demand of a case row
 * (the stage's JSON), one per line. The caller frees it; *len gets its
 * length. */
char *clf_case_text(const cJSON *row, size_t *len);

/* Classifies the case row (JSON with subject, body, demand, channel,
 * customer_type). Never fails: a model without a category head, or a guess
 * below the rules' min_confidence, sends the case to triage. */
clf_case_t *clf_case_new(const clf_model_t *model, const clf_rules_t *rules, const cJSON *row);
/* NULL-safe; nulls *c_p. */
void clf_case_destroy(clf_case_t **c_p);

/* The same customer's most recent earlier case (uuid text), age_ms before
 * this one, through channel. Within the rules' repeat window it is a repeat
 * complaint; through another channel within the multi-channel window it is
 * a multi-window complaint. Either links it (repeat_of), adds the signal and
 * lifts the priority by the rules' repeat raise; otherwise nothing changes.
 * Returns true when linked. */
bool clf_case_set_earlier(clf_case_t *c, const char *earlier_case_id, int64_t age_ms,
                          const char *channel);

bool clf_case_triage(const clf_case_t *c);
const char *clf_case_category(const clf_case_t *c);
const char *clf_case_priority(const clf_case_t *c); /* "P1".."P3" */
const char *clf_case_sentiment(const clf_case_t *c);

/* The classification as a new object (the caller owns it): category,
 * priority, confidence, sentiment, repeat_of (null when none), signals and
 * triage: the event's data and, without triage, the case's columns. */
cJSON *clf_case_json(const clf_case_t *c);

/* The product's sentiment for a model label: calm, dissatisfied or angry are
 * kept; negative -> dissatisfied; positive and neutral -> calm; anything else
 * (or NULL) -> dissatisfied, the safe reading of a complaint. Static string. */
const char *clf_case_sentiment_of(const char *label);

#endif
