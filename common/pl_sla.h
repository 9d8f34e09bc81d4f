/*
 * pl_sla: the service-level targets of <config_dir>/sla.json, for the
 * routing daemon (due times) and the SLA watchdog (warnings, breaches,
 * pauses, escalation). Format: services/routing/README.md.
 *
 * Per priority P1/P2/P3: a first-response target and resolution targets for
 * simple and complex cases. A target is {"within": "1h", "clock": "24x7"}
 * (elapsed time), {"within": "8h", "clock": "business"} (open time on the
 * department's calendar) or {"working_days": 3} (pl_calendar's definition).
 * Also: what makes a case complex, the warning fraction (warn_at), the case
 * states that pause which clocks, and the escalation ladder (default and
 * per priority: whom, and how long after the breach).
 *
 * Loading checks everything and reports every problem with its JSON path
 * and a hint; a loaded pl_sla_t is immutable and safe to share.
 */
#ifndef PL_SLA_H
#define PL_SLA_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl_calendar.h"
#include "pl_err.h"

#define PL_SLA_FILE "sla.json"
#define PL_SLA_LADDER_MAX 8

typedef enum pl_sla_prio {
    PL_SLA_P1 = 0,
    PL_SLA_P2 = 1,
    PL_SLA_P3 = 2,
    PL_SLA_NPRIO = 3
} pl_sla_prio_t;

typedef enum pl_sla_clock {
    PL_SLA_CLOCK_24X7 = 0,         /* within_ms of elapsed time */
    PL_SLA_CLOCK_BUSINESS = 1,     /* within_ms of open time on the calendar */
    PL_SLA_CLOCK_WORKING_DAYS = 2, /* working_days on the calendar */
} pl_sla_clock_t;

typedef struct pl_sla_target {
    pl_sla_clock_t clock;
    int64_t within_ms; /* 24X7 and BUSINESS */
    int working_days;  /* WORKING_DAYS */
} pl_sla_target_t;

/* The clocks a case runs (names as in sla.warning/sla.breached "clock"). */
typedef enum pl_sla_kind {
    PL_SLA_FIRST_RESPONSE = 0,
    PL_SLA_RESOLUTION = 1,
    PL_SLA_PROMISE = 2,
    PL_SLA_NKIND = 3,
} pl_sla_kind_t;

/* Rungs of the ladder, lowest first. */
typedef enum pl_sla_role {
    PL_SLA_ASSIGNEE = 0,
    PL_SLA_SUPERVISOR = 1,
    PL_SLA_DEPARTMENT_HEAD = 2,
    PL_SLA_MANAGEMENT = 3,
    PL_SLA_NROLE = 4,
} pl_sla_role_t;

typedef struct pl_sla_step {
    pl_sla_role_t to;
    int64_t after_ms; /* after the breach; 0 = at once */
} pl_sla_step_t;

/* What pl_sla_is_complex looks at; any field may be NULL/0. */
typedef struct pl_sla_case {
    const char *priority, *category, *customer_type;
    const char *const *signals;
    size_t nsignals;
    size_t ndepartments; /* > 1: cross-department */
} pl_sla_case_t;

typedef struct pl_sla pl_sla_t;

/* Reads and checks config_dir/sla.json. Returns the SLA (caller destroys)
 * or NULL with every problem appended to errs (PL_ECONFIG entries, message
 * "sla.json: PATH: what", err.path = PATH, with a hint). */
pl_sla_t *pl_sla_load(const char *config_dir, pl_errlist_t *errs);
/* Same from a parsed tree; file labels the messages. */
pl_sla_t *pl_sla_from_json(const cJSON *root, const char *file, pl_errlist_t *errs);
/* NULL-safe; sets *sla_p to NULL. */
void pl_sla_destroy(pl_sla_t **sla_p);

/* "P1".."P3" -> PL_SLA_P1.., or PL_EINVAL. */
int pl_sla_priority_parse(const char *name);
/* Like pl_sla_priority_parse, but NULL or unknown gives default_priority. */
pl_sla_prio_t pl_sla_priority_or_default(const pl_sla_t *sla, const char *name);
/* Static names: "P1"; "24x7", "business", "working_days"; "first_response";
 * "assignee", "supervisor", "department_head", "management". */
const char *pl_sla_priority_name(pl_sla_prio_t prio);
const char *pl_sla_clock_name(pl_sla_clock_t clock);
const char *pl_sla_kind_name(pl_sla_kind_t kind);
const char *pl_sla_role_name(pl_sla_role_t role);

/* Borrowed from sla; prio must be valid. */
const pl_sla_target_t *pl_sla_first_response(const pl_sla_t *sla, pl_sla_prio_t prio);
const pl_sla_target_t *pl_sla_resolution(const pl_sla_t *sla, pl_sla_prio_t prio, bool complex);
/* Fraction of a clock's time after which the warning goes out (0 < x < 1). */
double pl_sla_warn_at(const pl_sla_t *sla, pl_sla_prio_t prio);
/* Who gets the warning. */
pl_sla_role_t pl_sla_warn_to(const pl_sla_t *sla);
/* True when a case in `state` has its `kind` clock stopped. */
bool pl_sla_pauses(const pl_sla_t *sla, pl_sla_kind_t kind, const char *state);
/* The ladder for prio: *steps borrowed, in order (roles rising, after_ms not
 * decreasing); returns the count (>= 1). */
size_t pl_sla_ladder(const pl_sla_t *sla, pl_sla_prio_t prio, const pl_sla_step_t **steps);
/* The categories named by complex_when (for cross-checks); borrowed. */
size_t pl_sla_complex_categories(const pl_sla_t *sla, const char *const **categories);

/* True when the case meets any criterion of complex_when. */
bool pl_sla_is_complex(const pl_sla_t *sla, const pl_sla_case_t *c);

/* Whether a case signal matches a configured one: equal, or the case's is
 * "NAME:detail" ("legal_threat:lawyer" matches "legal_threat"). */
bool pl_sla_signal_match(const char *configured, const char *signal);

/* due for target starting at start_ms: 24X7 adds the time; BUSINESS and
 * WORKING_DAYS count on cal (required for them). Returns 0, PL_EINVAL (no
 * calendar for a calendar clock) or what pl_calendar returns. */
int pl_sla_due(const pl_sla_target_t *target, const pl_calendar_t *cal, int64_t start_ms,
               int64_t *due_ms);

#endif
