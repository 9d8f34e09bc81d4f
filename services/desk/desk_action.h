/*
 * desk_action: checks the body of POST /v1/cases/{id}/actions and turns it
 * into what the database applies: the case's next state (from pl_workflow),
 * the columns the action sets, and the events that record it.
 *
 * Pure: no I/O, so every rule is unit-tested. Trusts nothing in the body.
 * Every problem is reported with its field's path ("due_at"), all at once.
 */
#ifndef DESK_ACTION_H
#define DESK_ACTION_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "pl_err.h"
#include "pl_workflow.h"

#define DESK_TEXT_MAX 4000  /* note, solution, reason, comment */
#define DESK_ACTOR_MAX 64

typedef struct desk_action desk_action_t;

/* Checks body (a parsed JSON object). now_ms is the time promises are checked
 * against. actor_default (may be NULL) is used when the body has no "actor"
 * (the authenticated caller). Returns the action the caller destroys, or NULL
 * with every problem appended to errs. */
desk_action_t *desk_action_new(const cJSON *body, const char *actor_default, int64_t now_ms,
                               pl_errlist_t *errs);
/* NULL-safe; nulls *a_p. */
void desk_action_destroy(desk_action_t **a_p);

/* Whether s is a user id (1..64 of letters, digits and . _ - @, as in
 * routing.json), or with dept a department id (letters, digits and _):
 * safe in logs, URLs and events. */
bool desk_id_ok(const char *s, bool dept);

const pl_wf_action_t *desk_action_def(const desk_action_t *a);
const char *desk_action_actor(const desk_action_t *a); /* borrowed */
/* The target department of an assign (NULL when none), borrowed. */
const char *desk_action_department(const desk_action_t *a);

/* The state after the action in state, or NULL when not allowed there. */
const char *desk_action_next(const desk_action_t *a, const char *state);

/* For plaint_case_act: the columns to set (a new object the caller deletes)
 * and the events ([{type, data}], a new array the caller deletes), given the
 * case's current assignee and department (for case.assigned's previous
 * values; may be NULL) and reopen count. */
cJSON *desk_action_patch(const desk_action_t *a);
cJSON *desk_action_events(const desk_action_t *a, const char *prev_assignee,
                          const char *prev_department, int reopen_count);

#endif
