/*
 * pl_workflow: the case state machine, in one table (contract "Case states",
 * proto/PROTOCOL.md section 7). Every daemon that changes a case through a
 * staff or customer action asks this module whether the action is allowed in
 * the case's state, who may perform it, which state follows and which events
 * record it; the database then applies the change only if the case is still
 * in the state the decision was made on (plaint_case_act, 0004_desk.sql), so
 * two agents acting at once cannot both win.
 *
 * Pure data and lookups: no I/O, no allocation, thread-safe.
 */
#ifndef PL_WORKFLOW_H
#define PL_WORKFLOW_H

#include <stdbool.h>
#include <stddef.h>

/* Roles of the people and systems acting on cases (bit flags). */
enum {
    PL_ROLE_AGENT = 1 << 0,      /* works cases of their own department */
    PL_ROLE_SUPERVISOR = 1 << 1, /* department leader: reviews and closes */
    PL_ROLE_ADMIN = 1 << 2,      /* everything, erasure included */
    PL_ROLE_INTEGRATOR = 1 << 3, /* other systems: submit and read events only */
};

/* Returns the role bit for "agent", "supervisor", "admin", "integrator", or 0. */
unsigned pl_role_parse(const char *name);
/* The name of one role bit (static), or "unknown". */
const char *pl_role_name(unsigned role);

typedef struct pl_wf_action {
    const char *name;  /* "acknowledge" */
    const char *event; /* the event that records it ("case.acknowledged") */
    unsigned roles;    /* who may perform it */
    /* States in which it is allowed (NULL-terminated). */
    const char *const *from;
} pl_wf_action_t;

/* The action named name (borrowed, static), or NULL for an unknown one. */
const pl_wf_action_t *pl_wf_action(const char *name);
/* Every action (static), n receives the count. */
const pl_wf_action_t *pl_wf_actions(size_t *n);

/* Whether name is a known case state. */
bool pl_wf_state_known(const char *state);
/* Whether a case in state still needs work (not resolved, reviewed, closed
 * or rejected): the SLA clocks of such a case run. */
bool pl_wf_state_open(const char *state);

/* The state after action in state, or NULL when the action is not allowed
 * there. satisfied matters only for "feedback" (true: resolved, false:
 * reopened). The result is a static string. */
const char *pl_wf_next(const pl_wf_action_t *action, const char *state, bool satisfied);

/* The extra event an action writes after its own, or NULL: feedback writes
 * case.resolved or case.reopened, as the state it leads to. */
const char *pl_wf_follow_event(const pl_wf_action_t *action, bool satisfied);

/* Writes the names of the actions allowed in state to out[0..max) and returns
 * how many there are (may exceed max; only max are written). */
size_t pl_wf_allowed(const char *state, const char **out, size_t max);

#endif
