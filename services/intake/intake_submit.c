/*
 * intake_submit: checks the data of a complaint.submit message field by
 * field and builds the row that plaint_submit_batch() stores (see
 * intake_submit.h, contract "Submitting a complaint", and
 * deploy/sql/0001_cases_events.sql for the row's fields).
 *
 * Trusts nothing in the message: every field is type-, length- and
 * UTF-8-checked here even though pl_msg_parse() ran first, since a caller may
 * build a pl_msg_t another way. Every problem is reported with its path.
 * Messages never quote contact data or complaint text (error replies end up
 * in logs); they quote only enumeration values, shortened.
 *
 * Owns the row template inside each submission; a row handed out is the
 * caller's.
 */
#include "intake_submit.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "pl_alloc.h"
#include "pl_json.h"
#include "pl_time.h"
#include "pl_utf8.h"
#include "pl_uuid.h"

#define CUSTOMER_ID_MAX 128
#define CUSTOMER_NAME_MAX 200
#define CUSTOMER_PHONE_MAX 64
#define CUSTOMER_EMAIL_MAX 254 /* RFC 5321's path limit less the angle brackets */
#define CUSTOMER_LANG_MIN 2
#define CUSTOMER_LANG_MAX 35 /* BCP 47 tags in practice */
#define PHONE_DIGITS_MIN 3   /* short service numbers such as 110 */
#define PHONE_DIGITS_MAX 20  /* E.164's 15 and an extension */
#define TARGET_FIELD_MAX 200
#define ATTACHMENT_NAME_MAX 255
#define ATTACHMENT_URL_MAX 2048
#define QUOTE_MAX 40 /* bytes of a bad enumeration value quoted back */

struct intake_submission {
    cJSON *fields; /* the row without idx and case_id */
};

/* One run of the checks: where problems go and the row being built. */
typedef struct check {
    pl_errlist_t *errs;
    cJSON *row;
} check_t;

/* A string field. Free text that is "" says nothing, so it is stored as
 * absent; for codes and keys "" is a mistake and is refused. */
typedef struct text_rule {
    const char *name;
    size_t max_chars;
    bool required;
    bool empty_is_error;
} text_rule_t;

static const text_rule_t external_id_rule = {"external_id", PL_EXTERNAL_ID_MAX, false, true};
static const text_rule_t customer_id_rule = {"id", CUSTOMER_ID_MAX, false, false};
static const text_rule_t name_rule = {"name", CUSTOMER_NAME_MAX, false, false};
static const text_rule_t phone_rule = {"phone", CUSTOMER_PHONE_MAX, false, false};
static const text_rule_t email_rule = {"email", CUSTOMER_EMAIL_MAX, false, false};
static const text_rule_t lang_rule = {"lang", CUSTOMER_LANG_MAX, false, true};
static const text_rule_t subject_rule = {"subject", PL_SUBJECT_MAX, false, false};
static const text_rule_t demand_rule = {"demand", PL_DEMAND_MAX, false, false};
static const text_rule_t location_rule = {"location", PL_LOCATION_MAX, false, false};
static const text_rule_t attachment_name_rule = {"name", ATTACHMENT_NAME_MAX, true, true};
static const text_rule_t attachment_url_rule = {"url", ATTACHMENT_URL_MAX, true, true};
static const char *const target_fields[] = {"product", "order_id", "store", "employee",
                                            "department", NULL};

/* Decodes one code point of valid UTF-8 and advances *s past it. */
static uint32_t next_code_point(const char **s)
{
    const unsigned char *p = (const unsigned char *)*s;
    int n = p[0] < 0x80 ? 1 : p[0] < 0xE0 ? 2 : p[0] < 0xF0 ? 3 : 4;
    uint32_t cp = n == 1 ? p[0] : p[0] & (0x7F >> n);
    for (int i = 1; i < n; i++)
        cp = (cp << 6) | (p[i] & 0x3F);
    *s += n;
    return cp;
}

/* Unicode White_Space plus U+200B and U+FEFF, which show as nothing either:
 * a body of ideographic spaces (U+3000) is as empty as one of ASCII spaces. */
static bool is_space(uint32_t cp)
{
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* s is valid UTF-8. */
static bool is_blank(const char *s)
{
    while (*s)
        if (!is_space(next_code_point(&s)))
            return false;
    return true;
}

/* s is valid UTF-8. For e-mail addresses and URLs. */
static bool has_space_or_control(const char *s)
{
    while (*s) {
        uint32_t cp = next_code_point(&s);
        if (is_space(cp) || cp < 0x20 || cp == 0x7F)
            return true;
    }
    return false;
}

/* Bytes of s to quote in a message, cut on a character boundary. */
static int quote_len(const char *s)
{
    return (int)pl_utf8_truncate(s, strlen(s), QUOTE_MAX);
}

static const char *type_wanted(int type)
{
    switch (type) {
    case cJSON_String: return "a string";
    case cJSON_Object: return "an object";
    case cJSON_Array: return "an array";
    default: return "an integer";
    }
}

/* obj.name when it has the given cJSON type; NULL when absent (or null and
 * optional) or after reporting it at path. */
static const cJSON *get(check_t *c, const cJSON *obj, const char *path, const char *name,
                        int type, bool required)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item || (cJSON_IsNull(item) && !required)) {
        if (required)
            pl_errlist_add(c->errs, PL_EINVAL, path, "required field \"%s\" is missing", name);
        return NULL;
    }
    if ((item->type & 0xFF) != type) {
        pl_errlist_add(c->errs, PL_EINVAL, path, "%s must be %s, got %s", name,
                       type_wanted(type), pl_json_type_name(item));
        return NULL;
    }
    return item;
}

/* parent.rule->name as a checked string, NULL when absent, empty free text
 * or bad. Writes the field's path into path (PL_ERR_PATH_MAX bytes). */
static const char *text(check_t *c, const cJSON *obj, const char *parent,
                        const text_rule_t *rule, char *path)
{
    pl_json_path(path, PL_ERR_PATH_MAX, parent, rule->name);
    const cJSON *item = get(c, obj, path, rule->name, cJSON_String, rule->required);
    if (!item)
        return NULL;
    const char *s = item->valuestring;
    size_t len = strlen(s), bad_at = 0;
    if (!pl_utf8_valid(s, len, &bad_at)) {
        pl_errlist_add(c->errs, PL_EINVAL, path, "%s is not valid UTF-8 at byte offset %zu",
                       rule->name, bad_at);
        return NULL;
    }
    size_t chars = pl_utf8_count(s, len);
    if (chars == 0) {
        if (rule->required || rule->empty_is_error)
            pl_errlist_add(c->errs, PL_EINVAL, path, "%s must not be empty", rule->name);
        return NULL;
    }
    if (chars > rule->max_chars) {
        pl_errlist_add(c->errs, PL_ETOOLARGE, path, "%s is %zu characters, limit is %zu",
                       rule->name, chars, rule->max_chars);
        return NULL;
    }
    return s;
}

/* A text field stored as is in column. */
static void add_text(check_t *c, const cJSON *obj, const char *parent, const text_rule_t *rule,
                     const char *column)
{
    char path[PL_ERR_PATH_MAX];
    pl_json_add_str(c->row, column, text(c, obj, parent, rule, path));
}

/* parent.name as one of list; what names the list in messages. */
static const char *choice(check_t *c, const cJSON *obj, const char *parent, const char *name,
                          const char *what, const char *const *list, bool required)
{
    char path[PL_ERR_PATH_MAX];
    /* No length limit of its own: a long value is simply not in the list. */
    const text_rule_t rule = {name, SIZE_MAX, required, true};
    const char *s = text(c, obj, parent, &rule, path);
    if (!s || pl_msg_enum_index(list, s) >= 0)
        return s;
    int shown = quote_len(s);
    pl_errlist_add(c->errs, PL_EINVAL, path, "unknown %s \"%.*s%s\"; expected one of %s", what,
                   shown, s, s[shown] ? "..." : "", pl_msg_enum_text(list));
    return NULL;
}

static void check_phone(check_t *c, const char *path, const char *phone)
{
    size_t digits = 0;
    for (const char *p = phone; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            digits++;
        } else if (!strchr(" +-().", *p)) {
            pl_errlist_add(c->errs, PL_EINVAL, path,
                           "phone may hold only digits, spaces, '+', '-', '(', ')' and '.'");
            return;
        }
    }
    if (digits < PHONE_DIGITS_MIN || digits > PHONE_DIGITS_MAX)
        pl_errlist_add(c->errs, PL_EINVAL, path, "phone has %zu digits; it needs %d to %d",
                       digits, PHONE_DIGITS_MIN, PHONE_DIGITS_MAX);
}

static void check_email(check_t *c, const char *path, const char *email)
{
    const char *at = strchr(email, '@');
    const char *domain = at ? at + 1 : "";
    size_t domain_len = strlen(domain);
    const char *why = NULL;
    if (has_space_or_control(email))
        why = "email must not contain spaces or control characters";
    else if (!at || strchr(domain, '@'))
        why = "email must contain exactly one @";
    else if (at == email)
        why = "email has nothing before the @";
    else if (!strchr(domain, '.') || domain[0] == '.' || domain[domain_len - 1] == '.')
        why = "email domain must contain a dot between two names, as in example.com";
    if (why)
        pl_errlist_add(c->errs, PL_EINVAL, path, "%s", why);
}

static void check_lang(check_t *c, const char *path, const char *lang)
{
    for (const char *p = lang; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-';
        if (!ok) {
            pl_errlist_add(c->errs, PL_EINVAL, path,
                           "lang may hold only ASCII letters, digits and '-', as in zh-CN");
            return;
        }
    }
    if (strlen(lang) < CUSTOMER_LANG_MIN)
        pl_errlist_add(c->errs, PL_EINVAL, path, "lang must be %d to %d characters, got %zu",
                       CUSTOMER_LANG_MIN, CUSTOMER_LANG_MAX, strlen(lang));
}

static bool has_text(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(item) && item->valuestring[0];
}

static void check_customer_contact(check_t *c, const cJSON *customer)
{
    static const char parent[] = "data.customer";
    char path[PL_ERR_PATH_MAX];
    add_text(c, customer, parent, &customer_id_rule, "customer_id");
    add_text(c, customer, parent, &name_rule, "customer_name");
    const char *phone = text(c, customer, parent, &phone_rule, path);
    if (phone)
        check_phone(c, path, phone);
    pl_json_add_str(c->row, "customer_phone", phone);
    const char *email = text(c, customer, parent, &email_rule, path);
    if (email)
        check_email(c, path, email);
    pl_json_add_str(c->row, "customer_email", email);
    /* Someone must be able to answer the complaint; a name alone finds nobody. */
    if (!has_text(customer, "id") && !has_text(customer, "phone") && !has_text(customer, "email"))
        pl_errlist_add(c->errs, PL_EINVAL, parent,
                       "customer needs at least one of id, phone or email");
}

static void check_customer(check_t *c, const cJSON *data)
{
    static const char parent[] = "data.customer";
    char path[PL_ERR_PATH_MAX];
    const cJSON *customer = get(c, data, parent, "customer", cJSON_Object, true);
    if (!customer)
        return;
    check_customer_contact(c, customer);
    const char *type = choice(c, customer, parent, "type", "customer type",
                              pl_msg_customer_types, false);
    pl_json_add_str(c->row, "customer_type", type ? type : pl_msg_customer_types[0]);
    const char *lang = text(c, customer, parent, &lang_rule, path);
    if (lang)
        check_lang(c, path, lang);
    pl_json_add_str(c->row, "lang", lang);
}

/* The body is limited in bytes, not characters: it is what the row stores. */
static void check_body(check_t *c, const cJSON *data)
{
    static const char path[] = "data.body";
    const cJSON *item = get(c, data, path, "body", cJSON_String, true);
    if (!item)
        return;
    const char *s = item->valuestring;
    size_t len = strlen(s), bad_at = 0;
    if (len > PL_BODY_MAX)
        pl_errlist_add(c->errs, PL_ETOOLARGE, path, "body is %zu bytes, limit is %d", len,
                       PL_BODY_MAX);
    else if (!pl_utf8_valid(s, len, &bad_at))
        pl_errlist_add(c->errs, PL_EINVAL, path, "body is not valid UTF-8 at byte offset %zu",
                       bad_at);
    else if (len == 0)
        pl_errlist_add(c->errs, PL_EINVAL, path, "body must not be empty");
    else if (is_blank(s))
        pl_errlist_add(c->errs, PL_EINVAL, path, "body holds only whitespace");
    else
        pl_json_add_str(c->row, "body", s);
}

static void check_target(check_t *c, const cJSON *data)
{
    static const char parent[] = "data.target";
    const cJSON *target = get(c, data, parent, "target", cJSON_Object, false);
    for (int i = 0; target && target_fields[i]; i++) {
        char path[PL_ERR_PATH_MAX];
        const text_rule_t rule = {target_fields[i], TARGET_FIELD_MAX, false, false};
        (void)text(c, target, parent, &rule, path); /* checked only; stored whole below */
    }
    /* Unknown members are kept, as in submission: nothing sent is lost. */
    pl_json_add(c->row, "target", target ? pl_json_dup(target) : NULL);
}

/* Stored in UTC with milliseconds, whatever offset the client wrote. */
/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z, in ms since 1970. */
#define OCCURRED_MIN_MS (-62135596800000LL)
#define OCCURRED_MAX_MS (253402300799999LL)

static void check_occurred_at(check_t *c, const cJSON *data)
{
    static const char path[] = "data.occurred_at";
    const cJSON *item = get(c, data, path, "occurred_at", cJSON_String, false);
    char utc[PL_RFC3339_MAX];
    int64_t at_ms = 0;
    pl_err_t e;
    if (!item) {
        pl_json_add(c->row, "occurred_at", NULL);
    } else if (pl_time_parse(item->valuestring, &at_ms, path, &e) < 0) {
        pl_errlist_push(c->errs, &e);
    } else if (at_ms < OCCURRED_MIN_MS || at_ms > OCCURRED_MAX_MS) {
        /* An offset can carry a valid local time past year 1 or 9999 in UTC,
         * which the stored UTC form cannot hold: refuse rather than change it. */
        pl_errlist_add(c->errs, PL_EINVAL, path,
                       "occurred_at is outside the years 0001 to 9999 once converted to UTC");
    } else {
        pl_json_add_str(c->row, "occurred_at", pl_time_format(at_ms, utc));
    }
}

static void check_url(check_t *c, const char *path, const char *url)
{
    size_t scheme = !strncasecmp(url, "https://", 8) ? 8 : !strncasecmp(url, "http://", 7) ? 7 : 0;
    if (!scheme)
        pl_errlist_add(c->errs, PL_EINVAL, path, "url must start with http:// or https://");
    else if (url[scheme] == '\0' || url[scheme] == '/')
        pl_errlist_add(c->errs, PL_EINVAL, path, "url has no host after \"%.*s\"", (int)scheme,
                       url);
    else if (has_space_or_control(url))
        pl_errlist_add(c->errs, PL_EINVAL, path,
                       "url must not contain spaces or control characters; percent-encode them");
}

static void check_size(check_t *c, const cJSON *attachment, const char *parent)
{
    char path[PL_ERR_PATH_MAX];
    pl_json_path(path, sizeof path, parent, "size");
    const cJSON *size = get(c, attachment, path, "size", cJSON_Number, false);
    if (!size)
        return;
    double v = size->valuedouble;
    if (!isfinite(v) || v != floor(v))
        pl_errlist_add(c->errs, PL_EINVAL, path, "size must be an integer, got %g", v);
    else if (v < 0)
        pl_errlist_add(c->errs, PL_EINVAL, path, "size must not be negative, got %.0f", v);
}

static void check_attachment(check_t *c, const cJSON *attachment, int index)
{
    char parent[PL_ERR_PATH_MAX], path[PL_ERR_PATH_MAX];
    pl_json_path_index(parent, sizeof parent, "data.attachments", index);
    if (!cJSON_IsObject(attachment)) {
        pl_errlist_add(c->errs, PL_EINVAL, parent, "attachment must be an object, got %s",
                       pl_json_type_name(attachment));
        return;
    }
    (void)text(c, attachment, parent, &attachment_name_rule, path); /* stored whole below */
    const char *url = text(c, attachment, parent, &attachment_url_rule, path);
    if (url)
        check_url(c, path, url);
    check_size(c, attachment, parent);
}

static void check_attachments(check_t *c, const cJSON *data)
{
    static const char path[] = "data.attachments";
    const cJSON *list = get(c, data, path, "attachments", cJSON_Array, false);
    int count = list ? cJSON_GetArraySize(list) : 0;
    if (count > PL_ATTACHMENTS_MAX) {
        /* One error, not one per item of a list that is refused anyway. */
        pl_errlist_add(c->errs, PL_ETOOLARGE, path, "attachments has %d items, limit is %d",
                       count, PL_ATTACHMENTS_MAX);
        return;
    }
    int index = 0;
    for (const cJSON *item = list ? list->child : NULL; item; item = item->next)
        check_attachment(c, item, index++);
    pl_json_add(c->row, "attachments", list ? pl_json_dup(list) : NULL);
}

/* In the row's column order, so that errors come in the same order too. */
static void check_data(check_t *c, const pl_msg_t *msg)
{
    const cJSON *data = msg->data;
    pl_json_add_str(c->row, "source", msg->source);
    add_text(c, data, "data", &external_id_rule, "external_id");
    pl_json_add_str(c->row, "message_id", msg->id);
    pl_json_add_str(c->row, "channel",
                    choice(c, data, "data", "channel", "channel", pl_msg_channels, true));
    check_customer(c, data);
    add_text(c, data, "data", &subject_rule, "subject");
    check_body(c, data);
    add_text(c, data, "data", &demand_rule, "demand");
    pl_json_add_str(c->row, "demand_type", choice(c, data, "data", "demand_type", "demand type",
                                                  pl_msg_demand_types, false));
    check_target(c, data);
    check_occurred_at(c, data);
    add_text(c, data, "data", &location_rule, "location");
    check_attachments(c, data);
    /* The body is stored once, in its own column: writing it twice would
     * double the bytes each commit flushes. */
    cJSON *submission = pl_json_dup(data);
    cJSON_DeleteItemFromObjectCaseSensitive(submission, "body");
    pl_json_add(c->row, "submission", submission);
}

static void check_envelope(check_t *c, const pl_msg_t *msg)
{
    if (!msg->type) {
        pl_errlist_add(c->errs, PL_EINVAL, "type", "required field \"type\" is missing");
    } else if (strcmp(msg->type, PL_MSG_SUBMIT) != 0) {
        int shown = quote_len(msg->type);
        pl_errlist_add(c->errs, PL_EINVAL, "type",
                       "unexpected message type \"%.*s%s\"; expected \"%s\"", shown, msg->type,
                       msg->type[shown] ? "..." : "", PL_MSG_SUBMIT);
    }
    /* The idempotency key and the row need it; pl_msg_parse() guarantees it. */
    if (!msg->source)
        pl_errlist_add(c->errs, PL_EINVAL, "source", "required field \"source\" is missing");
}

intake_submission_t *intake_submission_new(const pl_msg_t *msg, pl_errlist_t *errs)
{
    size_t before = errs->count + errs->dropped;
    check_t c = {errs, pl_json_must(cJSON_CreateObject())};
    check_envelope(&c, msg);
    if (cJSON_IsObject(msg->data))
        check_data(&c, msg);
    else
        pl_errlist_add(errs, PL_EINVAL, "data", "data must be an object, got %s",
                       pl_json_type_name(msg->data));
    if (errs->count + errs->dropped != before) {
        cJSON_Delete(c.row);
        return NULL;
    }
    intake_submission_t *sub = pl_malloc(sizeof *sub);
    sub->fields = c.row;
    return sub;
}

void intake_submission_destroy(intake_submission_t **sub_p)
{
    if (!sub_p || !*sub_p)
        return;
    cJSON_Delete((*sub_p)->fields);
    pl_free(*sub_p);
    *sub_p = NULL;
}

cJSON *intake_submission_row(const intake_submission_t *sub, int idx)
{
    char case_id[PL_UUID_STR];
    cJSON *row = pl_json_must(cJSON_CreateObject());
    pl_json_add_num(row, "idx", idx);
    pl_json_add_str(row, "case_id", pl_uuid_v7(case_id));
    for (const cJSON *field = sub->fields->child; field; field = field->next)
        pl_json_add(row, field->string, pl_json_dup(field));
    return row;
}

const cJSON *intake_submission_field(const intake_submission_t *sub, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(sub->fields, name);
}

const char *intake_submission_external_id(const intake_submission_t *sub)
{
    return pl_json_str(sub->fields, "external_id", NULL);
}

const char *intake_submission_source(const intake_submission_t *sub)
{
    return pl_json_str(sub->fields, "source", NULL);
}

const char *intake_submission_channel(const intake_submission_t *sub)
{
    return pl_json_str(sub->fields, "channel", NULL);
}
