/*
 * pl_workflow: the case state machine (see pl_workflow.h).
 *
 * The table below is the whole procedure of the domain: receive, assess,
 * route, handle, propose, ask the customer, reopen until satisfied, review,
 * archive, survey. A "handling step" (note, assign, promise) on a case that
 * was only acknowledged, or that came back reopened, moves it to in_progress:
 * the department is working on it again.
 */
#include "pl_workflow.h"

#include <string.h>

#include "pl_msg.h"

#define STAFF (PL_ROLE_AGENT | PL_ROLE_SUPERVISOR | PL_ROLE_ADMIN)
#define LEADERS (PL_ROLE_SUPERVISOR | PL_ROLE_ADMIN)

static const char *const STATES[] = {
    "received", "classified", "routed",   "acknowledged", "in_progress", "solution_proposed",
    "reopened", "resolved",   "reviewed", "closed",       "rejected",    NULL,
};

static const char *const FROM_ACKNOWLEDGE[] = {"routed", NULL};
static const char *const FROM_HANDLING[] = {"routed",   "acknowledged", "in_progress",
                                            "solution_proposed", "reopened", NULL};
static const char *const FROM_NOTE[] = {"routed",   "acknowledged", "in_progress",
                                        "solution_proposed", "reopened", "resolved",
                                        "reviewed", "rejected", "closed", NULL};
static const char *const FROM_REJECT[] = {"routed", "acknowledged", "in_progress", NULL};
static const char *const FROM_PROPOSE[] = {"acknowledged", "in_progress", "reopened", NULL};
static const char *const FROM_FEEDBACK[] = {"solution_proposed", NULL};
static const char *const FROM_RESOLVE[] = {"solution_proposed", NULL};
static const char *const FROM_REOPEN[] = {"solution_proposed", "resolved", NULL};
static const char *const FROM_REVIEW[] = {"resolved", NULL};
static const char *const FROM_CLOSE[] = {"reviewed", "rejected", NULL};
static const char *const FROM_RATE[] = {"resolved", "reviewed", "closed", NULL};

static const pl_wf_action_t ACTIONS[] = {
    {"acknowledge", PL_EV_ACKNOWLEDGED, STAFF, FROM_ACKNOWLEDGE},
    {"note", PL_EV_NOTED, STAFF, FROM_NOTE},
    {"assign", PL_EV_ASSIGNED, STAFF, FROM_HANDLING},
    {"reject", PL_EV_REJECTED, STAFF, FROM_REJECT},
    {"propose", PL_EV_SOLUTION_PROPOSED, STAFF, FROM_PROPOSE},
    {"promise", PL_EV_PROMISED, STAFF, FROM_HANDLING},
    {"feedback", PL_EV_FEEDBACK, STAFF, FROM_FEEDBACK},
    {"resolve", PL_EV_RESOLVED, STAFF, FROM_RESOLVE},
    {"reopen", PL_EV_REOPENED, STAFF, FROM_REOPEN},
    {"review", PL_EV_REVIEWED, LEADERS, FROM_REVIEW},
    {"close", PL_EV_CLOSED, LEADERS, FROM_CLOSE},
    {"rate", PL_EV_RATED, STAFF, FROM_RATE},
};
#define NACTIONS (sizeof ACTIONS / sizeof ACTIONS[0])

static const struct {
    const char *name;
    unsigned bit;
} ROLES[] = {
    {"agent", PL_ROLE_AGENT},
    {"supervisor", PL_ROLE_SUPERVISOR},
    {"admin", PL_ROLE_ADMIN},
    {"integrator", PL_ROLE_INTEGRATOR},
};

unsigned pl_role_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof ROLES / sizeof ROLES[0]; i++)
        if (!strcmp(ROLES[i].name, name))
            return ROLES[i].bit;
    return 0;
}

const char *pl_role_name(unsigned role)
{
    for (size_t i = 0; i < sizeof ROLES / sizeof ROLES[0]; i++)
        if (ROLES[i].bit == role)
            return ROLES[i].name;
    return "unknown";
}

const pl_wf_action_t *pl_wf_action(const char *name)
{
    for (size_t i = 0; name && i < NACTIONS; i++)
        if (!strcmp(ACTIONS[i].name, name))
            return &ACTIONS[i];
    return NULL;
}

const pl_wf_action_t *pl_wf_actions(size_t *n)
{
    *n = NACTIONS;
    return ACTIONS;
}

/* The static copy of state from STATES, or NULL. */
static const char *known(const char *state)
{
    for (size_t i = 0; state && STATES[i]; i++)
        if (!strcmp(STATES[i], state))
            return STATES[i];
    return NULL;
}

bool pl_wf_state_known(const char *state)
{
    return known(state) != NULL;
}

bool pl_wf_state_open(const char *state)
{
    return known(state) && strcmp(state, "resolved") && strcmp(state, "reviewed") &&
           strcmp(state, "closed") && strcmp(state, "rejected");
}

static bool allowed_in(const pl_wf_action_t *action, const char *state)
{
    for (size_t i = 0; state && action->from[i]; i++)
        if (!strcmp(action->from[i], state))
            return true;
    return false;
}

const char *pl_wf_next(const pl_wf_action_t *action, const char *state, bool satisfied)
{
    if (!action || !allowed_in(action, state))
        return NULL;
    const char *name = action->name;
    if (!strcmp(name, "acknowledge"))
        return "acknowledged";
    if (!strcmp(name, "reject"))
        return "rejected";
    if (!strcmp(name, "propose"))
        return "solution_proposed";
    if (!strcmp(name, "feedback"))
        return satisfied ? "resolved" : "reopened";
    if (!strcmp(name, "resolve"))
        return "resolved";
    if (!strcmp(name, "reopen"))
        return "reopened";
    if (!strcmp(name, "review"))
        return "reviewed";
    if (!strcmp(name, "close"))
        return "closed";
    bool handling = !strcmp(name, "note") || !strcmp(name, "assign") || !strcmp(name, "promise");
    if (handling && (!strcmp(state, "acknowledged") || !strcmp(state, "reopened")))
        return "in_progress";
    return known(state); /* rate, and handling steps that keep the state */
}

const char *pl_wf_follow_event(const pl_wf_action_t *action, bool satisfied)
{
    if (action && !strcmp(action->name, "feedback"))
        return satisfied ? PL_EV_RESOLVED : PL_EV_REOPENED;
    return NULL;
}

size_t pl_wf_allowed(const char *state, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < NACTIONS; i++) {
        if (!allowed_in(&ACTIONS[i], state))
            continue;
        if (n < max)
            out[n] = ACTIONS[i].name;
        n++;
    }
    return n;
}
