/*
 * intake_submit: checks the data of a complaint.submit message field by field
 * (proto/schemas/complaint.submit.json, contract "Submitting a complaint") and
 * turns an accepted one into the row that plaint_submit_batch() stores.
 *
 * Trusts nothing in the message. Every problem is reported, each with the
 * path of its field ("data.customer.email"), so a client fixes all of them
 * in one round trip.
 */
#ifndef INTAKE_SUBMIT_H
#define INTAKE_SUBMIT_H

#include <cjson/cJSON.h>

#include "pl_err.h"
#include "pl_msg.h"

typedef struct intake_submission intake_submission_t;

/* Checks msg (type complaint.submit, already envelope-checked by
 * pl_msg_parse). Returns a submission the caller destroys, or NULL with every
 * problem appended to errs (codes PL_EINVAL or PL_ETOOLARGE). The submission
 * copies what it needs; msg may be released afterwards. */
intake_submission_t *intake_submission_new(const pl_msg_t *msg, pl_errlist_t *errs);
/* NULL-safe; nulls *sub_p. */
void intake_submission_destroy(intake_submission_t **sub_p);

/* The row for plaint_submit_batch(): a new object the caller deletes, with
 * "idx" set to idx and a fresh v7 "case_id". See deploy/sql/0001_cases_events.sql for
 * its fields. */
cJSON *intake_submission_row(const intake_submission_t *sub, int idx);
/* One field of the row without copying it (borrowed from sub; NULL when the
 * row has no such field): the batcher's way in, as it sends fields, not rows. */
const cJSON *intake_submission_field(const intake_submission_t *sub, const char *name);

/* Borrowed; NULL when absent. */
const char *intake_submission_external_id(const intake_submission_t *sub);
const char *intake_submission_source(const intake_submission_t *sub);
const char *intake_submission_channel(const intake_submission_t *sub);

#endif
