/*
 * notify_cfg: notification.json, checked, and templates (see notify_cfg.h).
 *
 * The parsed document is kept: its strings back every pointer handed out.
 */
#include "notify_cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_json.h"
#include "pl_time.h"

#define HOOKS_MAX 32

typedef struct customer_rule {
    const char *event, *kind;
    const char *channels[NOTIFY_CHANNELS_MAX];
    size_t nchannels;
} customer_rule_t;

struct notify_cfg {
    cJSON *doc;
    notify_smtp_t smtp;
    notify_sms_t sms;
    notify_retry_t retry;
    notify_webhook_t hooks[HOOKS_MAX];
    const char **hook_events[HOOKS_MAX];
    size_t nhooks;
    customer_rule_t *rules;
    size_t nrules;
    const cJSON *templates;
};

static const char *str(const cJSON *obj, const char *name, const char *fallback,
                       const char *path, pl_errlist_t *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v)
        return fallback;
    if (!cJSON_IsString(v)) {
        pl_errlist_add(errs, PL_ECONFIG, path, "notification.json: %s.%s must be a string",
                       path, name);
        return fallback;
    }
    return v->valuestring;
}

static int64_t duration(const cJSON *obj, const char *name, const char *fallback,
                        const char *path, pl_errlist_t *errs)
{
    const char *text = str(obj, name, fallback, path, errs);
    int64_t ms = 0;
    pl_err_t err;
    pl_err_clear(&err);
    if (pl_duration_parse(text, &ms, name, &err) < 0 || ms <= 0)
        pl_errlist_add(errs, PL_ECONFIG, path,
                       "notification.json: %s.%s must be a duration such as \"10s\"", path, name);
    return ms;
}

/* obj's member name when it has the type is() checks (an object, an array);
 * NULL when absent, and NULL with an error naming path when of another type:
 * a section of the wrong type is never read as if it were empty. */
static const cJSON *member(const cJSON *obj, const char *name, cJSON_bool (*is)(const cJSON *),
                           const char *what, const char *path, pl_errlist_t *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (v && !is(v)) {
        pl_errlist_add(errs, PL_ECONFIG, path, "notification.json: %s must be %s", path, what);
        return NULL;
    }
    return v;
}

/* The value of the environment variable the file names (secrets stay out of
 * config files); "" when unset. */
static const char *secret(const cJSON *obj, const char *name, const char *path,
                          pl_errlist_t *errs)
{
    const char *var = str(obj, name, "", path, errs);
    const char *v = *var ? getenv(var) : NULL;
    return v ? v : "";
}

static void read_smtp(notify_cfg_t *c, const cJSON *o, pl_errlist_t *errs)
{
    c->smtp.url = str(o, "url", "", "email", errs);
    c->smtp.from = str(o, "from", "Plaint <complaints@localhost>", "email", errs);
    const cJSON *tls = cJSON_GetObjectItemCaseSensitive(o, "starttls");
    if (tls && !cJSON_IsBool(tls))
        pl_errlist_add(errs, PL_ECONFIG, "email.starttls",
                       "notification.json: email.starttls must be true or false");
    c->smtp.starttls = cJSON_IsTrue(tls);
    c->smtp.username = str(o, "username", "", "email", errs);
    c->smtp.password = secret(o, "password_env", "email", errs);
    c->smtp.timeout_ms = duration(o, "timeout", "15s", "email", errs);
    if (*c->smtp.url && strncmp(c->smtp.url, "smtp://", 7) && strncmp(c->smtp.url, "smtps://", 8))
        pl_errlist_add(errs, PL_ECONFIG, "email.url",
                       "notification.json: email.url must start with smtp:// or smtps://");
}

static void read_sms(notify_cfg_t *c, const cJSON *o, pl_errlist_t *errs)
{
    c->sms.url = str(o, "url", "", "sms", errs);
    c->sms.content_type = str(o, "content_type", "application/json", "sms", errs);
    c->sms.body = str(o, "body", "{\"to\": {{to}}, \"text\": {{text}}}", "sms", errs);
    c->sms.timeout_ms = duration(o, "timeout", "10s", "sms", errs);
    if (*c->sms.url && strncmp(c->sms.url, "http://", 7) && strncmp(c->sms.url, "https://", 8))
        pl_errlist_add(errs, PL_ECONFIG, "sms.url",
                       "notification.json: sms.url must be an http:// or https:// URL");
}

static void read_retry(notify_cfg_t *c, const cJSON *o, pl_errlist_t *errs)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "attempts");
    c->retry.attempts = 5;
    if (a && (!cJSON_IsNumber(a) || a->valuedouble < 1 || a->valuedouble > 100 ||
              a->valuedouble != (double)(int)a->valuedouble))
        pl_errlist_add(errs, PL_ECONFIG, "retry.attempts",
                       "notification.json: retry.attempts must be a whole number from 1 to 100");
    else if (a)
        c->retry.attempts = (int)a->valuedouble;
    c->retry.backoff_ms = duration(o, "backoff", "2s", "retry", errs);
    c->retry.max_backoff_ms = duration(o, "max_backoff", "10m", "retry", errs);
}

static void read_hooks(notify_cfg_t *c, const cJSON *list, pl_errlist_t *errs)
{
    const cJSON *h;
    cJSON_ArrayForEach(h, list) {
        if (c->nhooks == HOOKS_MAX) {
            pl_errlist_add(errs, PL_ECONFIG, "webhooks", "notification.json: at most %d webhooks",
                           HOOKS_MAX);
            return;
        }
        char path[32], events_path[48];
        snprintf(path, sizeof path, "webhooks[%zu]", c->nhooks);
        snprintf(events_path, sizeof events_path, "%s.events", path);
        notify_webhook_t *w = &c->hooks[c->nhooks];
        if (!cJSON_IsObject(h)) {
            pl_errlist_add(errs, PL_ECONFIG, path, "notification.json: %s must be an object",
                           path);
            w->name = w->url = w->secret = "";
            c->nhooks++;
            continue;
        }
        /* The default name is kept in the document: path is gone after this loop. */
        if (!cJSON_GetObjectItemCaseSensitive(h, "name"))
            pl_json_add_str((cJSON *)h, "name", path);
        w->name = str(h, "name", "", path, errs);
        for (size_t i = 0; i < c->nhooks; i++)
            if (!strcmp(c->hooks[i].name, w->name)) /* the name keys its outbox rows */
                pl_errlist_add(errs, PL_ECONFIG, path,
                               "notification.json: %s.name \"%s\" is used by webhooks[%zu] too",
                               path, w->name, i);
        w->url = str(h, "url", "", path, errs);
        w->secret = secret(h, "secret_env", path, errs);
        w->timeout_ms = duration(h, "timeout", "10s", path, errs);
        const cJSON *events = member(h, "events", cJSON_IsArray, "an array", events_path, errs);
        size_t n = (size_t)cJSON_GetArraySize(events);
        c->hook_events[c->nhooks] = pl_calloc(n + 1, sizeof(char *));
        const cJSON *e;
        cJSON_ArrayForEach(e, events) {
            if (cJSON_IsString(e))
                c->hook_events[c->nhooks][w->nevents++] = e->valuestring;
            else
                pl_errlist_add(errs, PL_ECONFIG, path,
                               "notification.json: %s.events must be strings", path);
        }
        w->events = c->hook_events[c->nhooks];
        if (*w->url && strncmp(w->url, "http://", 7) && strncmp(w->url, "https://", 8))
            pl_errlist_add(errs, PL_ECONFIG, path,
                           "notification.json: %s.url must be an http:// or https:// URL", path);
        c->nhooks++;
    }
}

static void read_customer(notify_cfg_t *c, const cJSON *o, pl_errlist_t *errs)
{
    c->rules = pl_calloc((size_t)cJSON_GetArraySize(o) + 1, sizeof *c->rules);
    const cJSON *r;
    cJSON_ArrayForEach(r, o) {
        customer_rule_t *rule = &c->rules[c->nrules++];
        char path[96];
        snprintf(path, sizeof path, "customer.%.80s", r->string);
        rule->event = r->string;
        if (!cJSON_IsObject(r))
            pl_errlist_add(errs, PL_ECONFIG, path, "notification.json: %s must be an object",
                           path);
        rule->kind = str(r, "kind", "", path, errs);
        if (!*rule->kind)
            pl_errlist_add(errs, PL_ECONFIG, path, "notification.json: %s.kind is required",
                           path);
        else if (!cJSON_GetObjectItemCaseSensitive(c->templates, rule->kind))
            pl_errlist_add(errs, PL_ECONFIG, path,
                           "notification.json: %s.kind \"%s\" has no template in templates",
                           path, rule->kind);
        char channels_path[112];
        snprintf(channels_path, sizeof channels_path, "%s.channels", path);
        const cJSON *ch;
        cJSON_ArrayForEach(ch, member(r, "channels", cJSON_IsArray, "an array", channels_path,
                                      errs)) {
            bool ok = cJSON_IsString(ch) &&
                      (!strcmp(ch->valuestring, "email") || !strcmp(ch->valuestring, "sms"));
            if (!ok || rule->nchannels == NOTIFY_CHANNELS_MAX)
                pl_errlist_add(errs, PL_ECONFIG, path,
                               "notification.json: %s.channels are \"email\" and \"sms\"", path);
            else
                rule->channels[rule->nchannels++] = ch->valuestring;
        }
    }
}

/* Every template is {"kind": {"lang": {"subject": "...", "text": "...", ...}}}. */
static void check_templates(const cJSON *templates, pl_errlist_t *errs)
{
    const cJSON *kind, *lang, *part;
    cJSON_ArrayForEach(kind, templates) {
        char path[200];
        snprintf(path, sizeof path, "templates.%.80s", kind->string);
        if (!cJSON_IsObject(kind)) {
            pl_errlist_add(errs, PL_ECONFIG, path, "notification.json: %s must be an object",
                           path);
            continue;
        }
        cJSON_ArrayForEach(lang, kind) {
            snprintf(path, sizeof path, "templates.%.80s.%.16s", kind->string, lang->string);
            if (!cJSON_IsObject(lang)) {
                pl_errlist_add(errs, PL_ECONFIG, path,
                               "notification.json: %s must be an object", path);
                continue;
            }
            cJSON_ArrayForEach(part, lang) {
                if (!cJSON_IsString(part))
                    pl_errlist_add(errs, PL_ECONFIG, path,
                                   "notification.json: %s.%.16s must be a string", path,
                                   part->string);
            }
        }
    }
}

notify_cfg_t *notify_cfg_load(const char *config_dir, pl_errlist_t *errs)
{
    notify_cfg_t *c = pl_calloc(1, sizeof *c);
    char file[4096];
    snprintf(file, sizeof file, "%s/%s", config_dir, NOTIFY_CFG_FILE);
    if (access(file, F_OK) != 0) {
        c->doc = pl_json_must(cJSON_CreateObject());
    } else {
        pl_err_t err;
        pl_err_clear(&err);
        c->doc = pl_cfg_read_json(config_dir, NOTIFY_CFG_FILE, &err);
        if (!c->doc) {
            pl_errlist_push(errs, &err);
            pl_free(c);
            return NULL;
        }
    }
    size_t before = errs->count;
    const cJSON *d = c->doc;
    if (!cJSON_IsObject(d))
        pl_errlist_add(errs, PL_ECONFIG, "", "notification.json must hold a JSON object");
    c->templates = member(d, "templates", cJSON_IsObject, "an object", "templates", errs);
    check_templates(c->templates, errs);
    read_smtp(c, member(d, "email", cJSON_IsObject, "an object", "email", errs), errs);
    read_sms(c, member(d, "sms", cJSON_IsObject, "an object", "sms", errs), errs);
    read_retry(c, member(d, "retry", cJSON_IsObject, "an object", "retry", errs), errs);
    read_hooks(c, member(d, "webhooks", cJSON_IsArray, "an array", "webhooks", errs), errs);
    read_customer(c, member(d, "customer", cJSON_IsObject, "an object", "customer", errs), errs);
    if (errs->count > before) {
        notify_cfg_destroy(&c);
        return NULL;
    }
    return c;
}

void notify_cfg_destroy(notify_cfg_t **cfg_p)
{
    notify_cfg_t *c = *cfg_p;
    if (!c)
        return;
    for (size_t i = 0; i < c->nhooks; i++)
        pl_free(c->hook_events[i]);
    pl_free(c->rules);
    cJSON_Delete(c->doc);
    pl_free(c);
    *cfg_p = NULL;
}

const notify_smtp_t *notify_cfg_smtp(const notify_cfg_t *cfg)
{
    return &cfg->smtp;
}

const notify_sms_t *notify_cfg_sms(const notify_cfg_t *cfg)
{
    return &cfg->sms;
}

const notify_retry_t *notify_cfg_retry(const notify_cfg_t *cfg)
{
    return &cfg->retry;
}

size_t notify_cfg_webhooks(const notify_cfg_t *cfg, const notify_webhook_t **hooks)
{
    *hooks = cfg->hooks;
    return cfg->nhooks;
}

const char *notify_cfg_customer(const notify_cfg_t *cfg, const char *event_type,
                                const char *const **channels, size_t *nchannels)
{
    for (size_t i = 0; i < cfg->nrules; i++)
        if (!strcmp(cfg->rules[i].event, event_type)) {
            *channels = cfg->rules[i].channels;
            *nchannels = cfg->rules[i].nchannels;
            return cfg->rules[i].kind;
        }
    *nchannels = 0;
    return NULL;
}

bool notify_webhook_wants(const notify_webhook_t *hook, const char *event_type)
{
    for (size_t i = 0; i < hook->nevents; i++)
        if (!strncmp(event_type, hook->events[i], strlen(hook->events[i])))
            return true;
    return false;
}

const char *notify_lang(const char *lang, bool cjk)
{
    if (lang && *lang)
        return !strncmp(lang, "zh", 2) ? "zh" : "en";
    return cjk ? "zh" : "en";
}

/* ---- templates ---- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = pl_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static const char *lookup(const notify_vars_t *vars, const char *name, size_t n, bool *found)
{
    for (size_t i = 0; i < vars->n; i++)
        if (strlen(vars->names[i]) == n && !strncmp(vars->names[i], name, n)) {
            *found = true;
            return vars->values[i] ? vars->values[i] : "";
        }
    *found = false;
    return "";
}

char *notify_expand(const char *tmpl, const notify_vars_t *vars, bool json_escape)
{
    buf_t b = {0};
    put(&b, "", 0);
    for (const char *p = tmpl; *p;) {
        const char *open = strstr(p, "{{");
        const char *close = open ? strstr(open + 2, "}}") : NULL;
        if (!open || !close) {
            put(&b, p, strlen(p));
            break;
        }
        put(&b, p, (size_t)(open - p));
        bool found;
        const char *v = lookup(vars, open + 2, (size_t)(close - open - 2), &found);
        if (json_escape) {
            cJSON *s = pl_json_must(cJSON_CreateString(v));
            char *quoted = pl_json_print(s);
            cJSON_Delete(s);
            put(&b, quoted, strlen(quoted));
            pl_free(quoted);
        } else {
            put(&b, v, strlen(v));
        }
        p = close + 2;
    }
    return b.p;
}

char *notify_render(const notify_cfg_t *cfg, const char *kind, const char *lang,
                    const char *part, const notify_vars_t *vars)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg->templates, kind);
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(t, lang);
    if (!l)
        l = cJSON_GetObjectItemCaseSensitive(t, "en");
    const char *tmpl = pl_json_str(l, part, NULL);
    return tmpl ? notify_expand(tmpl, vars, false) : NULL;
}
