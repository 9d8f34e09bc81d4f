/*
 * notify_cfg: PLAINT_CONFIG_DIR/notification.json: which events tell the
 * customer what (and through which channels), which webhooks receive which
 * events (staff alerts: assignment, warnings, breaches, escalations, spikes),
 * the SMTP and SMS gateway settings, the retry policy, and the templates in
 * each language. Format: services/notification/README.md.
 *
 * Loading checks everything and reports every problem with its path; a
 * loaded config is immutable. Rendering is pure.
 */
#ifndef NOTIFY_CFG_H
#define NOTIFY_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl_err.h"

#define NOTIFY_CFG_FILE "notification.json"
#define NOTIFY_CHANNELS_MAX 4

typedef struct notify_cfg notify_cfg_t;

typedef struct notify_smtp {
    const char *url;      /* smtp://host:port or smtps://; "" = e-mail off */
    const char *from;     /* "Name <address>" */
    bool starttls;        /* require STARTTLS on smtp:// */
    const char *username; /* "" = no AUTH */
    const char *password; /* from the environment variable named in the file */
    int64_t timeout_ms;
} notify_smtp_t;

typedef struct notify_sms {
    const char *url;          /* "" = SMS off */
    const char *content_type;
    const char *body;         /* template: {{to}} and {{text}}, JSON-escaped strings */
    int64_t timeout_ms;
} notify_sms_t;

typedef struct notify_webhook {
    const char *name;
    const char *url;
    const char *secret; /* HMAC-SHA256 key, from the environment */
    const char *const *events; /* type prefixes ("sla." matches sla.warning) */
    size_t nevents;
    int64_t timeout_ms;
} notify_webhook_t;

typedef struct notify_retry {
    int attempts;
    int64_t backoff_ms, max_backoff_ms;
} notify_retry_t;

/* Reads and checks config_dir/notification.json; NULL with every problem in
 * errs. A missing file gives a config that sends nothing (and says so). */
notify_cfg_t *notify_cfg_load(const char *config_dir, pl_errlist_t *errs);
void notify_cfg_destroy(notify_cfg_t **cfg_p);

const notify_smtp_t *notify_cfg_smtp(const notify_cfg_t *cfg);
const notify_sms_t *notify_cfg_sms(const notify_cfg_t *cfg);
const notify_retry_t *notify_cfg_retry(const notify_cfg_t *cfg);
size_t notify_cfg_webhooks(const notify_cfg_t *cfg, const notify_webhook_t **hooks);

/* The customer notification an event type asks for: its kind ("acknowledgement")
 * and channels ("email", "sms"), or NULL when the event tells the customer
 * nothing. *channels borrowed. */
const char *notify_cfg_customer(const notify_cfg_t *cfg, const char *event_type,
                                const char *const **channels, size_t *nchannels);
/* Whether a webhook wants an event type. */
bool notify_webhook_wants(const notify_webhook_t *hook, const char *event_type);

/* The values a template may use ({{case_no}} ...): name/value pairs. */
typedef struct notify_vars {
    const char *const *names;
    const char *const *values; /* NULL renders as "" */
    size_t n;
} notify_vars_t;

/* "zh" when lang starts with zh (or lang is NULL and cjk), else "en". */
const char *notify_lang(const char *lang, bool cjk);
/* Renders kind's subject or text ("subject", "text") in lang (falling back
 * to en) with vars; the caller frees. NULL when the kind has no template. */
char *notify_render(const notify_cfg_t *cfg, const char *kind, const char *lang,
                    const char *part, const notify_vars_t *vars);
/* Substitutes {{name}} in tmpl; with json_escape the values are written as
 * JSON strings (quotes included). The caller frees. */
char *notify_expand(const char *tmpl, const notify_vars_t *vars, bool json_escape);

#endif
