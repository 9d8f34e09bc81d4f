/*
 * plaint-notification: keeps customers and staff informed. It reads the
 * event log, writes each notification the rules of notification.json ask
 * for into the outbox (once: a unique key of event, recipient and channel)
 * before anything is sent, then sends what is due: e-mail over SMTP, SMS
 * through an HTTP gateway, and JSON webhooks signed with HMAC-SHA256, all
 * through libcurl's multi interface on the loop, never blocking it. Failures
 * are retried with exponential backoff and jitter; after the last attempt
 * the row is dead and notification.failed is written; success writes
 * notification.sent. Replicas share the outbox (claims with SKIP LOCKED and
 * a lease).
 *
 * Owns its config, database connection, curl multi handle and the
 * transfers in flight.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify_cfg.h"
#include "notify_mailer.h"
#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_curl.h"
#include "pl_daemon.h"
#include "pl_db.h"
#include "pl_json.h"
#include "pl_pgarray.h"
#include "pl_log.h"
#include "pl_msg.h"
#include "pl_time.h"
#include "pl_uuid.h"

#define READER "notification"
#define EVENTS_PAGE "500"
#define LEASE "60 seconds"

static struct {
    int64_t tick_ms;
    int64_t in_flight_max;
    int64_t ack_wait_ms;
} settings;

static const pl_cfg_setting_t table[] = {
    {"PLAINT_NOTIFY_TICK", "200ms", PL_CFG_DURATION, &settings.tick_ms, 10, 10000,
     "how often new events are read and due notifications claimed"},
    {"PLAINT_NOTIFY_CONCURRENCY", "32", PL_CFG_INT, &settings.in_flight_max, 1, 1000,
     "notifications being sent at once"},
    {"PLAINT_NOTIFY_ACK_WAIT", "5s", PL_CFG_DURATION, &settings.ack_wait_ms, 0, 600000,
     "how long the acknowledgement waits for routing's first-response time"},
};

static const char SQL_EVENTS[] = "SELECT seq, event_id, type, case_id, data, case_no, lang,"
                                 " customer_name, customer_email, customer_phone, assignee,"
                                 " department, first_response_due, cjk"
                                 " FROM plaint_outbox_events($1, " EVENTS_PAGE ", $2::interval)";
static const char SQL_ENQUEUE[] = "SELECT plaint_outbox_enqueue($1::jsonb, $2, $3::bigint)";
static const char SQL_CLAIM[] = "SELECT outbox_id, delivery_id, kind, channel, recipient, address,"
                                " payload, attempts, event_type"
                                " FROM plaint_outbox_claim($1::int, '" LEASE "'::interval)";
static const char SQL_DONE[] =
    "SELECT plaint_outbox_done($1::bigint, $2::boolean, $3, $4::timestamptz, $5)";

static const char SQL_RELEASE[] = "SELECT plaint_outbox_release($1::text[]::bigint[])";

static const pl_db_stmt_t statements[] = {
    {"events", SQL_EVENTS}, {"enqueue", SQL_ENQUEUE}, {"claim", SQL_CLAIM},
    {"done", SQL_DONE},     {"release", SQL_RELEASE}};

#define MAIL_THREADS 4

typedef struct notifier {
    pl_daemon_t *daemon;
    notify_cfg_t *cfg;
    pl_db_t *db;
    pl_curl_t *curl;
    notify_mailer_t *mailer; /* e-mail, whose libcurl transfers may block */
    struct send *sends;      /* in flight, to hand back at stop */
    uv_timer_t *tick;
    bool reading, claiming, stopping;
    int in_flight;
    pl_metric_t *sent, *failed, *retried, *queued;
} notifier_t;

static notifier_t nt;

/* ---- reading events into the outbox ---- */

static const char *col(const PGresult *res, int row, int c)
{
    return PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
}

static const char *webhook_kind(const char *type)
{
    if (!strcmp(type, PL_EV_ROUTED) || !strcmp(type, PL_EV_ASSIGNED))
        return "assignment";
    if (!strcmp(type, PL_EV_SLA_WARNING))
        return "warning";
    if (!strcmp(type, PL_EV_SLA_BREACHED))
        return "breach";
    if (!strcmp(type, PL_EV_ESCALATED))
        return "escalation";
    if (!strcmp(type, PL_EV_ALERT_SPIKE))
        return "alert";
    return "event";
}

/* key_recipient names the row in its unique key (event/recipient/channel);
 * recipient is who it is for, as events show it (a role or user id). */
static cJSON *row_base(const char *event_id, const char *seq, const char *type,
                       const char *case_id, const char *kind, const char *channel,
                       const char *key_recipient, const char *recipient, const char *address)
{
    char key[300], uuid[40];
    snprintf(key, sizeof key, "%s/%s/%s", event_id, key_recipient, channel);
    cJSON *r = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(r, "key", key);
    pl_json_add_str(r, "delivery_id", pl_uuid_v4(uuid));
    pl_json_add_str(r, "event_seq", seq);
    pl_json_add_str(r, "event_type", type);
    pl_json_add_str(r, "case_id", case_id);
    pl_json_add_str(r, "kind", kind);
    pl_json_add_str(r, "channel", channel);
    pl_json_add_str(r, "recipient", recipient);
    pl_json_add_str(r, "address", address);
    return r;
}

/* Template variables: the case's and every string field of the event. */
#define VARS_MAX 48

static void add_var(const char **names, const char **values, size_t *n, const char *name,
                    const char *value)
{
    if (*n < VARS_MAX) {
        names[*n] = name;
        values[*n] = value;
        (*n)++;
    }
}

static void customer_rows(notifier_t *w, const PGresult *res, int i, const cJSON *data,
                          cJSON *rows)
{
    const char *const *channels;
    size_t nch;
    const char *type = PQgetvalue(res, i, 2);
    const char *kind = notify_cfg_customer(w->cfg, type, &channels, &nch);
    if (!kind || !col(res, i, 3))
        return;
    const char *lang = notify_lang(col(res, i, 6), col(res, i, 13) && col(res, i, 13)[0] == 't');
    const char *names[VARS_MAX], *values[VARS_MAX];
    size_t n = 0;
    const char *name = col(res, i, 7);
    add_var(names, values, &n, "case_no", col(res, i, 5));
    add_var(names, values, &n, "name", name ? name : !strcmp(lang, "zh") ? "客户" : "customer");
    add_var(names, values, &n, "first_response_due", col(res, i, 12));
    const cJSON *f;
    cJSON_ArrayForEach(f, data) {
        if (cJSON_IsString(f))
            add_var(names, values, &n, f->string, f->valuestring);
    }
    notify_vars_t vars = {names, values, n};
    for (size_t c = 0; c < nch; c++) {
        bool email = !strcmp(channels[c], "email");
        const char *address = col(res, i, email ? 8 : 9);
        const char *url = email ? notify_cfg_smtp(w->cfg)->url : notify_cfg_sms(w->cfg)->url;
        if (!address || !*url)
            continue; /* no such contact, or the channel is off */
        cJSON *r = row_base(PQgetvalue(res, i, 1), PQgetvalue(res, i, 0), type,
                            PQgetvalue(res, i, 3), kind, channels[c], "customer", "customer",
                            address);
        cJSON *payload = pl_json_must(cJSON_CreateObject());
        pl_json_add_str(payload, "lang", lang);
        char *subject = notify_render(w->cfg, kind, lang, "subject", &vars);
        char *text = notify_render(w->cfg, kind, lang, email ? "text" : "sms", &vars);
        if (!text)
            text = notify_render(w->cfg, kind, lang, "text", &vars);
        pl_json_add_str(payload, "subject", subject ? subject : "");
        pl_json_add_str(payload, "text", text ? text : "");
        pl_free(subject);
        pl_free(text);
        pl_json_add(r, "payload", payload);
        cJSON_AddItemToArray(rows, r);
    }
}

static void webhook_rows(notifier_t *w, const PGresult *res, int i, const cJSON *data,
                         cJSON *rows)
{
    const notify_webhook_t *hooks;
    size_t n = notify_cfg_webhooks(w->cfg, &hooks);
    const char *type = PQgetvalue(res, i, 2);
    for (size_t h = 0; h < n; h++) {
        if (!*hooks[h].url || !notify_webhook_wants(&hooks[h], type))
            continue;
        /* The person the alert is for, when the event names one. */
        const char *to = pl_json_str(data, "to", pl_json_str(data, "assignee", hooks[h].name));
        char recipient[160];
        snprintf(recipient, sizeof recipient, "webhook:%s", hooks[h].name);
        cJSON *r = row_base(PQgetvalue(res, i, 1), PQgetvalue(res, i, 0), type,
                            col(res, i, 3), webhook_kind(type), "webhook", recipient, to,
                            hooks[h].url);
        cJSON *body = pl_json_must(cJSON_CreateObject());
        pl_json_add_str(body, "delivery_id", pl_json_str(r, "delivery_id", ""));
        pl_json_add_str(body, "webhook", hooks[h].name);
        pl_json_add_str(body, "kind", webhook_kind(type));
        pl_json_add_str(body, "to", to);
        cJSON *event = pl_json_must(cJSON_CreateObject());
        pl_json_add_str(event, "type", type);
        pl_json_add_num(event, "seq", (double)strtoll(PQgetvalue(res, i, 0), NULL, 10));
        pl_json_add(event, "data", pl_json_dup(data));
        pl_json_add(body, "event", event);
        cJSON *payload = pl_json_must(cJSON_CreateObject());
        pl_json_add_str(payload, "webhook", hooks[h].name);
        pl_json_add(payload, "body", body);
        pl_json_add(r, "payload", payload);
        cJSON_AddItemToArray(rows, r);
    }
}

static void on_enqueued(PGresult *res, const pl_err_t *err, void *arg)
{
    notifier_t *w = arg;
    w->reading = false;
    if (!err && !w->stopping)
        pl_metric_add(w->queued, (double)strtoll(PQgetvalue(res, 0, 0), NULL, 10));
}

/* Whether an event is a notification.* event about the delivery of another
 * notification.* event. Nothing is sent for it: a webhook that wants
 * "notification." would otherwise be sent the events of its own deliveries,
 * one after the other, forever. */
static bool about_a_notification(const char *type, const cJSON *data)
{
    static const char NOTE[] = "notification.";
    return !strncmp(type, NOTE, sizeof NOTE - 1) &&
           !strncmp(pl_json_str(data, "event", ""), NOTE, sizeof NOTE - 1);
}

static void on_events(PGresult *res, const pl_err_t *err, void *arg)
{
    notifier_t *w = arg;
    int n = err || w->stopping ? 0 : PQntuples(res);
    if (n == 0) {
        w->reading = false;
        return;
    }
    cJSON *rows = pl_json_must(cJSON_CreateArray());
    for (int i = 0; i < n; i++) {
        cJSON *data = cJSON_Parse(PQgetvalue(res, i, 4)); /* jsonb text from PostgreSQL */
        if (!about_a_notification(PQgetvalue(res, i, 2), data)) {
            customer_rows(w, res, i, data, rows);
            webhook_rows(w, res, i, data, rows);
        }
        cJSON_Delete(data);
    }
    char *text = pl_json_print(rows);
    cJSON_Delete(rows);
    const char *params[] = {text, READER, PQgetvalue(res, n - 1, 0)};
    if (pl_db_exec(w->db, "enqueue", 3, params, on_enqueued, w) < 0)
        w->reading = false;
    pl_free(text);
}

/* ---- sending ---- */

typedef struct send {
    struct send *prev, *next;
    notifier_t *w;
    char id[24];
    char channel[16];
    int attempts;
    char delivery_id[40];
    char *message; /* e-mail: the whole message; webhook, SMS: the body */
    size_t len, sent;
    struct curl_slist *rcpt, *headers;
} send_t;

static void send_free(send_t *s)
{
    curl_slist_free_all(s->rcpt);
    curl_slist_free_all(s->headers);
    pl_free(s->message);
    pl_free(s);
}

static void on_recorded(PGresult *res, const pl_err_t *err, void *arg)
{
    (void)res;
    (void)arg;
    if (err) /* the lease runs out and the row is sent again, once */
        pl_log_warn("recording a notification's outcome failed", "error", err->message, NULL);
}

static int64_t backoff_ms(const notify_retry_t *r, int attempts)
{
    double ms = (double)r->backoff_ms;
    for (int i = 1; i < attempts && ms < (double)r->max_backoff_ms; i++)
        ms *= 2;
    if (ms > (double)r->max_backoff_ms)
        ms = (double)r->max_backoff_ms;
    /* +-20% jitter, so retries of a burst do not all return at once. */
    double jitter = 0.8 + 0.4 * ((double)randombytes_uniform(10001) / 10000.0);
    return (int64_t)(ms * jitter);
}

static void record(send_t *s, bool ok, const char *error)
{
    notifier_t *w = s->w;
    const notify_retry_t *r = notify_cfg_retry(w->cfg);
    char retry_at[PL_RFC3339_MAX] = "";
    bool final = !ok && s->attempts >= r->attempts;
    if (!ok && !final)
        pl_time_format(pl_time_now_ms() + backoff_ms(r, s->attempts), retry_at);
    pl_metric_inc(ok ? w->sent : final ? w->failed : w->retried);
    if (!ok)
        pl_log_warn(final ? "notification failed for good" : "notification failed; will retry",
                    "outbox_id", s->id, "channel", s->channel, "error", error, NULL);
    const char *params[] = {s->id, ok ? "true" : "false", ok ? NULL : error,
                            retry_at[0] ? retry_at : NULL, pl_daemon_instance(w->daemon)};
    (void)pl_db_exec(w->db, "done", 5, params, on_recorded, NULL); /* failing: the lease expires */
}

static void on_sent(CURL *easy, CURLcode result, void *arg)
{
    send_t *s = arg;
    notifier_t *w = s->w;
    w->in_flight--;
    if (s->prev)
        s->prev->next = s->next;
    else
        w->sends = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (w->stopping || result == CURLE_ABORTED_BY_CALLBACK) {
        send_free(s); /* not recorded: the lease expires and the row is sent again */
        return;
    }
    long code = 0;
    (void)curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    char error[256];
    bool ok = result == CURLE_OK;
    if (!ok)
        snprintf(error, sizeof error, "%s", curl_easy_strerror(result));
    else if (strcmp(s->channel, "email") && (code < 200 || code > 299)) {
        ok = false;
        snprintf(error, sizeof error, "the server answered HTTP %ld", code);
    }
    record(s, ok, ok ? NULL : error);
    send_free(s);
}

static size_t read_message(char *buf, size_t size, size_t nitems, void *arg)
{
    send_t *s = arg;
    size_t n = size * nitems, left = s->len - s->sent;
    if (n > left)
        n = left;
    memcpy(buf, s->message + s->sent, n);
    s->sent += n;
    return n;
}

static size_t discard(char *buf, size_t size, size_t nitems, void *arg)
{
    (void)buf;
    (void)arg;
    return size * nitems;
}

/* "Name <addr>" -> "<addr>"; a bare address gets the brackets. */
static void envelope_address(const char *from, char *out, size_t size)
{
    const char *lt = strchr(from, '<');
    if (lt)
        snprintf(out, size, "%s", lt);
    else
        snprintf(out, size, "<%s>", from);
}

static char *b64(const char *s, size_t len)
{
    size_t out = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *p = pl_malloc(out);
    sodium_bin2base64(p, out, (const unsigned char *)s, len, sodium_base64_VARIANT_ORIGINAL);
    return p;
}

/* text as RFC 2047 "B" encoded-words of at most 75 characters each (45 bytes
 * of text, cut between UTF-8 characters), folded onto continuation lines:
 * header lines stay ASCII (RFC 5322; no SMTPUTF8 needed) and short. The
 * caller frees. */
#define WORD_BYTES 45

static char *encoded_words(const char *text)
{
    size_t len = strlen(text), o = 0;
    char *out = pl_malloc((len / (WORD_BYTES - 3) + 2) * 80);
    out[0] = '\0';
    for (size_t i = 0; i < len;) {
        size_t n = len - i < WORD_BYTES ? len - i : WORD_BYTES;
        while (i + n < len && n > 1 && ((unsigned char)text[i + n] & 0xC0) == 0x80)
            n--; /* not inside a character */
        char *word = b64(text + i, n);
        o += (size_t)sprintf(out + o, "%s=?UTF-8?B?%s?=", i ? "\r\n " : "", word);
        pl_free(word);
        i += n;
    }
    return out;
}

static bool ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] > 127)
            return false;
    return true;
}

/* The From header's value: "Name <addr>" with a non-ASCII name encoded. */
static char *from_header(const char *from)
{
    const char *lt = strrchr(from, '<');
    size_t n = lt ? (size_t)(lt - from) : 0;
    while (n > 0 && from[n - 1] == ' ')
        n--;
    if (!lt || ascii(from, n))
        return pl_sprintf("%s", from);
    char *name = pl_sprintf("%.*s", (int)n, from);
    char *words = encoded_words(name);
    char *v = pl_sprintf("%s %s", words, lt);
    pl_free(name);
    pl_free(words);
    return v;
}

static char *email_message(const notify_smtp_t *smtp, const char *to, const char *delivery_id,
                           const cJSON *payload)
{
    const char *subject = pl_json_str(payload, "subject", "");
    const char *text = pl_json_str(payload, "text", "");
    char *subj = encoded_words(subject);
    char *from = from_header(smtp->from);
    char *body = b64(text, strlen(text));
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    /* Base64 lines of 76, as MIME asks. */
    size_t blen = strlen(body);
    char *wrapped = pl_malloc(blen + blen / 76 * 2 + 4);
    size_t o = 0;
    for (size_t i = 0; i < blen; i += 76) {
        size_t n = blen - i < 76 ? blen - i : 76;
        memcpy(wrapped + o, body + i, n);
        o += n;
        wrapped[o++] = '\r';
        wrapped[o++] = '\n';
    }
    wrapped[o] = '\0';
    char *msg = pl_sprintf("Date: %s\r\nFrom: %s\r\nTo: <%s>\r\nSubject: %s\r\n"
                           "Message-ID: <%s@plaint>\r\nX-Plaint-Delivery: %s\r\n"
                           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                           "Content-Transfer-Encoding: base64\r\n\r\n%s",
                           date, from, to, subj, delivery_id, delivery_id, wrapped);
    pl_free(subj);
    pl_free(from);
    pl_free(body);
    pl_free(wrapped);
    return msg;
}

static CURL *email_transfer(notifier_t *w, send_t *s, const char *to, const char *delivery_id,
                            const cJSON *payload)
{
    const notify_smtp_t *smtp = notify_cfg_smtp(w->cfg);
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    char from[320], rcpt[320];
    envelope_address(smtp->from, from, sizeof from);
    snprintf(rcpt, sizeof rcpt, "<%s>", to);
    s->message = email_message(smtp, to, delivery_id, payload);
    s->len = strlen(s->message);
    s->rcpt = curl_slist_append(NULL, rcpt);
    curl_easy_setopt(e, CURLOPT_URL, smtp->url);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, s->rcpt);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_message);
    curl_easy_setopt(e, CURLOPT_READDATA, s);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)smtp->timeout_ms);
    if (smtp->starttls)
        curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (*smtp->username) {
        curl_easy_setopt(e, CURLOPT_USERNAME, smtp->username);
        curl_easy_setopt(e, CURLOPT_PASSWORD, smtp->password);
    }
    return e;
}

/* The webhook signature: hex HMAC-SHA256 of the exact body with the secret. */
static void sign(const char *secret, const char *body, size_t len, char hex[65])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, 65, mac, sizeof mac);
}

static CURL *post_transfer(send_t *s, const char *url, const char *content_type,
                           int64_t timeout_ms)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    char h[160];
    snprintf(h, sizeof h, "Content-Type: %s", content_type);
    s->headers = curl_slist_append(s->headers, h);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->message);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)s->len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    return e;
}

static CURL *webhook_transfer(notifier_t *w, send_t *s, const char *url, const char *delivery_id,
                              const char *event_type, const cJSON *payload)
{
    const notify_webhook_t *hooks;
    size_t n = notify_cfg_webhooks(w->cfg, &hooks);
    const notify_webhook_t *hook = NULL;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(hooks[i].name, pl_json_str(payload, "webhook", "")))
            hook = &hooks[i];
    s->message = pl_json_print(cJSON_GetObjectItemCaseSensitive(payload, "body"));
    s->len = strlen(s->message);
    char hex[65], h[200];
    sign(hook ? hook->secret : "", s->message, s->len, hex);
    snprintf(h, sizeof h, "X-Plaint-Signature: sha256=%s", hex);
    s->headers = curl_slist_append(s->headers, h);
    snprintf(h, sizeof h, "X-Plaint-Delivery: %s", delivery_id);
    s->headers = curl_slist_append(s->headers, h);
    snprintf(h, sizeof h, "X-Plaint-Event: %s", event_type);
    s->headers = curl_slist_append(s->headers, h);
    snprintf(h, sizeof h, "X-Plaint-Attempt: %d", s->attempts);
    s->headers = curl_slist_append(s->headers, h);
    return post_transfer(s, url, "application/json", hook ? hook->timeout_ms : 10000);
}

static CURL *sms_transfer(notifier_t *w, send_t *s, const char *to, const cJSON *payload)
{
    const notify_sms_t *sms = notify_cfg_sms(w->cfg);
    const char *names[] = {"to", "text", "delivery_id"};
    const char *values[] = {to, pl_json_str(payload, "text", ""), s->delivery_id};
    notify_vars_t vars = {names, values, 3};
    char h[80];
    snprintf(h, sizeof h, "X-Plaint-Delivery: %s", s->delivery_id);
    s->headers = curl_slist_append(s->headers, h);
    bool json = strstr(sms->content_type, "json") != NULL;
    s->message = notify_expand(sms->body, &vars, json);
    s->len = strlen(s->message);
    return post_transfer(s, sms->url, sms->content_type, sms->timeout_ms);
}

static void start_send(notifier_t *w, const PGresult *res, int i)
{
    send_t *s = pl_calloc(1, sizeof *s);
    s->w = w;
    snprintf(s->id, sizeof s->id, "%s", PQgetvalue(res, i, 0));
    snprintf(s->channel, sizeof s->channel, "%s", PQgetvalue(res, i, 3));
    s->attempts = atoi(PQgetvalue(res, i, 7));
    const char *delivery_id = PQgetvalue(res, i, 1);
    snprintf(s->delivery_id, sizeof s->delivery_id, "%s", delivery_id);
    const char *address = col(res, i, 5);
    cJSON *payload = cJSON_Parse(PQgetvalue(res, i, 6)); /* jsonb text from PostgreSQL */
    CURL *e = NULL;
    if (!address)
        e = NULL; /* erased meanwhile */
    else if (!strcmp(s->channel, "email"))
        e = email_transfer(w, s, address, delivery_id, payload);
    else if (!strcmp(s->channel, "webhook"))
        e = webhook_transfer(w, s, address, delivery_id, PQgetvalue(res, i, 8), payload);
    else if (!strcmp(s->channel, "sms"))
        e = sms_transfer(w, s, address, payload);
    cJSON_Delete(payload);
    if (!e) {
        record(s, false, address ? "the transfer could not be set up" : "no address any more");
        send_free(s);
        return;
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (!strcmp(s->channel, "email")) {
        notify_mailer_add(w->mailer, e, on_sent, s);
    } else if (pl_curl_add(w->curl, e, on_sent, s) < 0) {
        record(s, false, "libcurl refused the transfer");
        send_free(s);
        return;
    }
    s->next = w->sends;
    if (w->sends)
        w->sends->prev = s;
    w->sends = s;
    w->in_flight++;
}

static void on_claimed(PGresult *res, const pl_err_t *err, void *arg)
{
    notifier_t *w = arg;
    w->claiming = false;
    for (int i = 0; !err && !w->stopping && i < PQntuples(res); i++)
        start_send(w, res, i);
}

/* ---- the tick ---- */

static void on_tick(uv_timer_t *timer)
{
    notifier_t *w = timer->data;
    if (w->stopping || !pl_db_ready(w->db))
        return;
    if (!w->reading) {
        char wait[40];
        snprintf(wait, sizeof wait, "%lld milliseconds", (long long)settings.ack_wait_ms);
        const char *params[] = {READER, wait};
        w->reading = true;
        if (pl_db_exec(w->db, "events", 2, params, on_events, w) < 0)
            w->reading = false;
    }
    int room = (int)settings.in_flight_max - w->in_flight;
    if (!w->claiming && room > 0) {
        char n[16];
        snprintf(n, sizeof n, "%d", room);
        const char *params[] = {n};
        w->claiming = true;
        if (pl_db_exec(w->db, "claim", 1, params, on_claimed, w) < 0)
            w->claiming = false;
    }
}

/* ---- daemon hooks ---- */

static notify_cfg_t *load_cfg(const pl_daemon_t *d, pl_err_t *err)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    notify_cfg_t *cfg = notify_cfg_load(pl_daemon_cfg(d)->config_dir, &errs);
    if (!cfg) {
        for (size_t i = 1; i < errs.count; i++)
            fprintf(stderr, "plaint-notification: %s\n", errs.items[i].message);
        *err = errs.items[0];
        err->code = PL_ECONFIG;
        pl_err_hint(err, "Fix notification.json (format: services/notification/README.md).");
    }
    pl_errlist_reset(&errs);
    return cfg;
}

static bool healthy(pl_daemon_t *d, void *arg)
{
    notifier_t *w = arg;
    if (w->db && pl_db_ready(w->db))
        return true;
    pl_daemon_set_health_reason(d, "no database connection");
    return false;
}

static void reload(pl_daemon_t *d, void *arg)
{
    notifier_t *w = arg;
    pl_err_t err;
    pl_err_clear(&err);
    notify_cfg_t *cfg = load_cfg(d, &err);
    if (!cfg) {
        pl_log_error("reload failed; keeping notification.json in use", "error", err.message,
                     NULL);
        return;
    }
    /* Transfers in flight copied what they need; nothing keeps the old one. */
    notify_cfg_destroy(&w->cfg);
    w->cfg = cfg;
    pl_log_info("notification.json reloaded", NULL);
}

static void register_metrics(notifier_t *w)
{
    pl_metrics_t *m = pl_daemon_metrics(w->daemon);
    w->sent = pl_metrics_counter(m, "plaint_notifications_total", "notifications by outcome",
                                 "outcome", "sent", NULL);
    w->failed = pl_metrics_counter(m, "plaint_notifications_total", "notifications by outcome",
                                   "outcome", "failed", NULL);
    w->retried = pl_metrics_counter(m, "plaint_notifications_total", "notifications by outcome",
                                    "outcome", "retried", NULL);
    w->queued = pl_metrics_counter(m, "plaint_notifications_queued_total",
                                   "notifications written to the outbox", NULL);
}

static int start(pl_daemon_t *d, void *arg, pl_err_t *err)
{
    notifier_t *w = arg;
    w->daemon = d;
    if (sodium_init() < 0)
        return pl_err_set(err, PL_EINTERNAL, "", "libsodium cannot start");
    w->cfg = load_cfg(d, err);
    if (!w->cfg)
        return PL_ECONFIG;
    w->curl = pl_curl_new(pl_daemon_loop(d));
    if (!w->curl)
        return pl_err_set(err, PL_EINTERNAL, "", "libcurl cannot start");
    w->mailer = notify_mailer_new(pl_daemon_loop(d), MAIL_THREADS);
    if (!w->mailer)
        return pl_err_set(err, PL_EINTERNAL, "", "the mail threads cannot start");
    register_metrics(w);
    pl_db_opts_t db_opts = {
        .conninfo = pl_daemon_cfg(d)->database_url,
        .app_name = "plaint-notification",
        .stmts = statements,
        .nstmts = sizeof statements / sizeof *statements,
    };
    w->db = pl_db_new(pl_daemon_loop(d), &db_opts);
    w->tick = pl_calloc(1, sizeof *w->tick);
    (void)uv_timer_init(pl_daemon_loop(d), w->tick); /* cannot fail on a live loop */
    w->tick->data = w;
    (void)uv_timer_start(w->tick, on_tick, (uint64_t)settings.tick_ms, (uint64_t)settings.tick_ms);
    const notify_webhook_t *hooks;
    size_t nh = notify_cfg_webhooks(w->cfg, &hooks);
    char n[24];
    pl_log_info("notifying", "email", *notify_cfg_smtp(w->cfg)->url ? "on" : "off", "sms",
                *notify_cfg_sms(w->cfg)->url ? "on" : "off", "webhooks",
                pl_log_int(n, (long long)nh), NULL);
    return 0;
}

static void on_timer_closed(uv_handle_t *handle)
{
    pl_free(handle);
}

static void finish_stop(notifier_t *w)
{
    pl_db_close(&w->db);
    notify_cfg_destroy(&w->cfg);
    pl_daemon_stopped(w->daemon);
}

static void on_released(PGresult *res, const pl_err_t *err, void *arg)
{
    (void)res;
    if (err) /* their leases expire instead */
        pl_log_warn("handing back notifications in flight failed", "error", err->message, NULL);
    finish_stop(arg);
}

/* SIGTERM: transfers in flight are abandoned and their rows handed back at
 * once, so another sender (or the next start) sends them, with the same
 * delivery id; one that did reach its receiver is a repeat it can drop. */
static void stop(pl_daemon_t *d, void *arg)
{
    notifier_t *w = arg;
    w->stopping = true;
    if (w->tick)
        uv_close((uv_handle_t *)w->tick, on_timer_closed);
    pl_pgarray_t *ids = pl_pgarray_new();
    for (send_t *s = w->sends; s; s = s->next)
        pl_pgarray_add_str(ids, s->id);
    pl_curl_destroy(&w->curl);
    notify_mailer_destroy(&w->mailer);
    int len;
    const char *value = pl_pgarray_data(ids, &len);
    const int lengths[] = {len}, formats[] = {1};
    bool any = pl_pgarray_count(ids) > 0;
    int rc = any && w->db && pl_db_ready(w->db)
                 ? pl_db_exec_params(w->db, "release", 1, &value, lengths, formats, on_released, w)
                 : -1;
    pl_pgarray_destroy(&ids);
    if (rc < 0)
        finish_stop(w);
    (void)d;
}

int main(int argc, char **argv)
{
    static pl_daemon_def_t def = {
        .name = "notification",
        .summary = "Tells customers and staff what happens to cases: e-mail, SMS, webhooks.",
        .settings = table,
        .nsettings = sizeof table / sizeof table[0],
        .needs_db = true,
        .start = start,
        .stop = stop,
        .arg = &nt,
        .metrics_addr_default = "0.0.0.0:9105",
        .healthy = healthy,
        .reload = reload,
    };
    return pl_daemon_run(&def, argc, argv);
}
