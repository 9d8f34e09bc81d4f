/*
 * sla_book: every open case's SLA clocks in memory, and what is due when.
 *
 * A case has up to three clocks (first response, resolution, promise), each
 * with a start, a deadline and the next stage to fire: 0 the warning (at
 * warn_at of the time), 1 the breach (at the deadline), then 1 + N the
 * escalation to ladder rung N (its "after" past the deadline). Each clock
 * keeps one entry in a min-heap for its next stage; an updated clock gets a
 * new generation, so its stale heap entries are skipped when they surface.
 *
 * No I/O: the daemon feeds it rows from PostgreSQL and turns what comes due
 * into events. About 150 bytes a case plus 16 a clock in the heap, so a
 * million clocks fit in well under 300 MB.
 */
#ifndef SLA_BOOK_H
#define SLA_BOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl_sla.h"
#include "route_plan.h"

#define SLA_NO_TIME INT64_MIN

typedef struct sla_book sla_book_t;

/* One case as plaint_sla_clocks() returns it. due_ms SLA_NO_TIME: that clock
 * does not run (stopped, met, none). stage: the highest stage already
 * recorded for that deadline, or -1. Strings are copied. */
typedef struct sla_row {
    const char *case_id; /* uuid text */
    const char *case_no;
    const char *priority; /* may be NULL */
    const char *department, *assignee; /* may be NULL */
    bool open;
    int64_t received_ms;
    int64_t due_ms[PL_SLA_NKIND];
    int64_t start_ms[PL_SLA_NKIND]; /* promise: when it was made; others: received_ms */
    int stage[PL_SLA_NKIND];
} sla_row_t;

/* A stage that came due. Strings are borrowed from the book and valid until
 * the next call that changes it. */
typedef struct sla_firing {
    const char *case_id, *case_no, *priority, *department, *assignee;
    pl_sla_kind_t clock;
    int64_t due_ms; /* the deadline the stage is about */
    int64_t at_ms;  /* when the stage was due */
    int stage;
    uint32_t gen; /* to match sla_book_fired with this clock's version */
    const char *type; /* sla.warning, sla.breached, case.escalated */
    int level;        /* escalations: 1.. */
    pl_sla_role_t role; /* warning: warn_to; escalation: the rung's role */
    const char *to;     /* the person it goes to (never NULL: a role name at worst) */
} sla_firing_t;

/* plan is borrowed and must outlive the book (or be replaced with
 * sla_book_set_plan). */
sla_book_t *sla_book_new(const route_plan_t *plan);
void sla_book_destroy(sla_book_t **book_p);
/* A new plan (SIGHUP): later stages use its ladders and people. */
void sla_book_set_plan(sla_book_t *book, const route_plan_t *plan);

/* Adds or replaces a case's clocks; a row that is not open, or has no clock
 * running, removes the case. */
void sla_book_put(sla_book_t *book, const sla_row_t *row);
size_t sla_book_cases(const sla_book_t *book);
size_t sla_book_clocks(const sla_book_t *book);
/* Bytes held, for the memory figures. */
size_t sla_book_memory(const sla_book_t *book);

/* When the next stage is due (ms), or SLA_NO_TIME when nothing is. */
int64_t sla_book_next_ms(sla_book_t *book);
/* Takes up to max stages due at now_ms into out (in due order) and marks
 * their clocks in flight: they are not due again until sla_book_fired or
 * sla_book_retry. Returns how many. */
size_t sla_book_take_due(sla_book_t *book, int64_t now_ms, sla_firing_t *out, size_t max);
/* The stage is recorded (now or before) or moot: the clock moves on to its
 * next stage. No-op when the clock changed meanwhile. */
void sla_book_fired(sla_book_t *book, const char *case_id, pl_sla_kind_t clock, uint32_t gen);
/* The stage could not be recorded (database down): due again at at_ms. */
void sla_book_retry(sla_book_t *book, const char *case_id, pl_sla_kind_t clock, uint32_t gen,
                    int64_t at_ms);

/* When stage of a clock is due, given start, deadline and the plan (for
 * tests): SLA_NO_TIME past the last rung. */
int64_t sla_book_stage_at(const sla_book_t *book, const char *priority, int64_t start_ms,
                          int64_t due_ms, int stage);

#endif
