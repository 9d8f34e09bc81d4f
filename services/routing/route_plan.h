/*
 * route_plan: the routing daemon's decisions, as pure functions of its
 * config: which department is responsible for a classified case (and which
 * others are involved), who in it gets the case, and when the first
 * response and the resolution are due.
 *
 * The plan is loaded once from <config_dir>/routing.json (departments,
 * people, calendars, ordered rules, fallback), sla.json (pl_sla) and
 * categories.json (every category must have an owner); formats in
 * services/routing/README.md. A loaded plan is immutable: share it between
 * threads freely, swap it whole on reload. Nothing here does I/O after
 * route_plan_load().
 */
#ifndef ROUTE_PLAN_H
#define ROUTE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl_calendar.h"
#include "pl_err.h"
#include "pl_sla.h"

#define ROUTE_FILE "routing.json"
#define ROUTE_CATEGORIES_FILE "categories.json"
#define ROUTE_MAX_DEPARTMENTS 8

typedef struct route_plan route_plan_t;

/* Reads and checks the three files of config_dir. Returns the plan (caller
 * destroys) or NULL with every problem appended to errs (PL_ECONFIG; the
 * message starts with the file and the JSON path; each has a hint). */
route_plan_t *route_plan_load(const char *config_dir, pl_errlist_t *errs);
/* NULL-safe; sets *plan_p to NULL. */
void route_plan_destroy(route_plan_t **plan_p);

/* A classified case. Every pointer may be NULL (customer_type NULL counts as
 * "individual"); nothing is kept after the call. */
typedef struct route_case {
    const char *category, *priority, *lang, *channel, *customer_type;
    const char *target_product, *target_store, *target_department, *target_employee;
    const char *target_order_id;
    bool triage; /* the classifier was not confident */
    const char *const *signals;
    size_t nsignals;
    int64_t received_at_ms;
} route_case_t;

typedef struct route_decision {
    const char *department; /* responsible; borrowed from the plan, never NULL */
    const char *departments[ROUTE_MAX_DEPARTMENTS]; /* all involved, responsible first */
    size_t ndepartments;
    const char *rule; /* the deciding rule's name, or "fallback"; borrowed */
    /* A named owner set by the rule (triage, fallback): give the case to this
     * person instead of calling route_plan_assignee. NULL otherwise. */
    const char *assignee;
    bool complex; /* per sla.json complex_when */
} route_decision_t;

/* Decides for c. Deciding rules are tried in order and the first that
 * matches (and whose department resolves) names the responsible department
 * and its "also" departments; every matching involve-only rule adds its
 * departments; no match gives the fallback. Returns 0, or PL_EINVAL for
 * NULL arguments. */
int route_plan_decide(const route_plan_t *p, const route_case_t *c, route_decision_t *out);

/* The department's agents, in config order; *ids borrowed (NULL and 0 for
 * an unknown department). */
size_t route_plan_agents(const route_plan_t *p, const char *department, const char *const **ids);

/* The capacity of agent in department, or 0 when agent is not one of its
 * agents (a queue owner, a named owner: no limit). */
int64_t route_plan_capacity(const route_plan_t *p, const char *department, const char *agent);
typedef struct route_load {
    const char *agent;
    int64_t open_cases;
} route_load_t;

/* Among the department's agents on duty at now_ms (their shift calendar, or
 * the department's) and under capacity (open cases < capacity; an agent
 * missing from loads has 0), the one with the lowest open/capacity ratio
 * who speaks lang (primary subtag: "zh-CN" matches "zh"), ties going to the
 * earlier in config order. If none speaks lang (or lang is NULL), the same
 * choice among all of them; if nobody qualifies, the department's
 * queue_owner; for an unknown department, the fallback's assignee. Never
 * NULL; borrowed. */
const char *route_plan_assignee(const route_plan_t *p, const char *department, const char *lang,
                                int64_t now_ms, const route_load_t *loads, size_t nloads);

/* First-response and resolution due times for a case received at
 * received_at_ms, by priority (NULL or unknown: sla.json default_priority)
 * and d->complex, on d->department's calendar. Returns 0, PL_EINVAL, or
 * PL_ETOOLARGE when the calendar does not open within its span limit. */
int route_plan_due(const route_plan_t *p, const route_decision_t *d, const char *priority,
                   int64_t received_at_ms, int64_t *first_response_due_ms,
                   int64_t *resolution_due_ms);

/* For the daemon and the SLA watchdog; all borrowed from the plan. */
const pl_sla_t *route_plan_sla(const route_plan_t *p);
/* NULL for an unknown department. */
const pl_calendar_t *route_plan_calendar(const route_plan_t *p, const char *department);
/* The person a rung of the ladder reaches in department: its supervisor or
 * head, or the management owner; NULL for PL_SLA_ASSIGNEE (the case's
 * assignee) and for an unknown department. */
const char *route_plan_escalation_to(const route_plan_t *p, const char *department,
                                     pl_sla_role_t role);
/* The fallback's department and named owner (routing.json "fallback"). A
 * decision came from the fallback when its rule is "fallback"; comparing
 * departments is not enough, the fallback department also owns categories. */
const char *route_plan_fallback_department(const route_plan_t *p);
const char *route_plan_fallback_assignee(const route_plan_t *p);
/* Every department id, in config order. */
size_t route_plan_departments(const route_plan_t *p, const char *const **ids);

#endif
