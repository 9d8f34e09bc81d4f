/*
 * pl_msg: the message envelope shared by every sender and receiver, and the
 * names of message types, event types, fields and enumerations, defined once
 * (after Postfix's anvil_clnt.h).
 *
 * Envelope: {"type": T, "v": 1, "id": UUID, "at": RFC3339, "source": S, "data": {...}}.
 * See proto/PROTOCOL.md.
 */
#ifndef PL_MSG_H
#define PL_MSG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "pl_err.h"

#define PL_MSG_VERSION 1
/* A frame above this is refused with too_large before it is parsed. */
#define PL_MSG_FRAME_MAX (1024 * 1024)
/* ZMQ_MAXMSGSIZE: above this ZeroMQ drops the peer without a reply. */
#define PL_MSG_SOCKET_MAX (8 * 1024 * 1024)

/* Message types. */
#define PL_MSG_SUBMIT "complaint.submit"
#define PL_MSG_ACCEPTED "complaint.accepted"
#define PL_MSG_ERROR "error"
#define PL_MSG_WORK "stage.work"

/* Event types (the topic frame on the event stream). */
#define PL_EV_RECEIVED "case.received"
#define PL_EV_CLASSIFIED "case.classified"
#define PL_EV_ROUTED "case.routed"
#define PL_EV_ACKNOWLEDGED "case.acknowledged"
#define PL_EV_NOTED "case.noted"
#define PL_EV_ASSIGNED "case.assigned"
#define PL_EV_REJECTED "case.rejected"
#define PL_EV_SOLUTION_PROPOSED "case.solution_proposed"
#define PL_EV_PROMISED "case.promised"
#define PL_EV_FEEDBACK "case.feedback"
#define PL_EV_REOPENED "case.reopened"
#define PL_EV_RESOLVED "case.resolved"
#define PL_EV_REVIEWED "case.reviewed"
#define PL_EV_CLOSED "case.closed"
#define PL_EV_RATED "case.rated"
#define PL_EV_PARKED "case.parked"
#define PL_EV_UNPARKED "case.unparked"
#define PL_EV_SLA_WARNING "sla.warning"
#define PL_EV_SLA_BREACHED "sla.breached"
#define PL_EV_ESCALATED "case.escalated"
#define PL_EV_NOTIFICATION_SENT "notification.sent"
#define PL_EV_NOTIFICATION_FAILED "notification.failed"
#define PL_EV_ALERT_SPIKE "alert.spike"
#define PL_EV_ERASED "case.erased"

/* Case states. */
#define PL_STATE_RECEIVED "received"
#define PL_STATE_CLASSIFIED "classified"
#define PL_STATE_ROUTED "routed"

/* Limits of complaint.submit (bytes for body, characters for the others). */
#define PL_EXTERNAL_ID_MAX 128
#define PL_SOURCE_MAX 128
#define PL_MSG_ID_MAX 128
#define PL_SUBJECT_MAX 200
#define PL_BODY_MAX 65536
#define PL_DEMAND_MAX 2000
#define PL_LOCATION_MAX 200
#define PL_ATTACHMENTS_MAX 20

/* Enumerations: NULL-terminated lists. */
extern const char *const pl_msg_channels[];
extern const char *const pl_msg_customer_types[];
extern const char *const pl_msg_demand_types[];
/* Index of value in list, or -1. */
int pl_msg_enum_index(const char *const *list, const char *value);
/* "phone, email, web, ..." for messages; static storage per list. */
const char *pl_msg_enum_text(const char *const *list);

/* A parsed envelope. Borrowed pointers into root, which the struct owns. */
typedef struct pl_msg {
    cJSON *root;
    const char *type;
    const char *id;     /* may be NULL when the sender gave none */
    const char *source; /* may be NULL */
    const char *at;     /* may be NULL */
    cJSON *data;        /* object; never NULL after a successful parse */
} pl_msg_t;

/* Parses and checks an envelope from an untrusted frame. On success fills
 * msg (release with pl_msg_release) and returns 0. On failure returns
 * PL_EINVAL or PL_ETOOLARGE with every problem in errs; msg->id is still set
 * when the frame had a valid id (a non-empty string of at most
 * PL_MSG_ID_MAX characters), so the error reply can carry it as
 * correlation_id, and msg->root must still be released. */
int pl_msg_parse(const char *buf, size_t len, pl_msg_t *msg, pl_errlist_t *errs);
void pl_msg_release(pl_msg_t *msg);

/* Builds a new envelope with a fresh v7 id and the current time. Takes data
 * (may be NULL for {}). Returns a tree the caller deletes. */
cJSON *pl_msg_new(const char *type, const char *source, cJSON *data);
/* Builds an "error" reply: data {code, message, errors: [{path, message}]},
 * each error also with "hint" when it has one, and a last entry counting
 * errors past PL_ERRLIST_MAX. Invalid UTF-8 in the texts (a key as sent, a
 * cut character) becomes U+FFFD. correlation_id may be NULL (then omitted). */
cJSON *pl_msg_error_new(const char *source, const char *correlation_id, int code,
                        const char *message, const pl_errlist_t *errs);

#endif
