/*
 * pl_msg: the enumerations of the protocol, and parsing and building of the
 * message envelope (see pl_msg.h and proto/PROTOCOL.md).
 *
 * Trusts nothing in a frame it parses: pl_json_parse() refuses malformed JSON
 * and this file checks the envelope, collecting every problem. Owns nothing
 * after a call returns: a parsed tree belongs to the pl_msg_t, a built one to
 * the caller.
 */
#include "pl_msg.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "pl_alloc.h"
#include "pl_json.h"
#include "pl_time.h"
#include "pl_utf8.h"
#include "pl_uuid.h"

/* Each list is written once; the array and the "a, b, c" text for messages
 * both come from it, so they cannot drift apart. */
#define CHANNELS(X)                                                                   \
    X(phone) X(email) X(web) X(app) X(chat) X(social) X(store) X(letter) X(api) X(other)
#define CUSTOMER_TYPES(X) X(individual) X(enterprise) X(vip)
#define DEMAND_TYPES(X)                                                               \
    X(refund) X(replacement) X(repair) X(compensation) X(apology) X(explanation) X(other)
#define AS_STRING(name) #name,
#define AS_TEXT(name) ", " #name

const char *const pl_msg_channels[] = {CHANNELS(AS_STRING) NULL};
const char *const pl_msg_customer_types[] = {CUSTOMER_TYPES(AS_STRING) NULL};
const char *const pl_msg_demand_types[] = {DEMAND_TYPES(AS_STRING) NULL};

/* Each text starts with ", "; pl_msg_enum_text() skips it. */
static const struct {
    const char *const *list;
    const char *text;
} enum_texts[] = {
    {pl_msg_channels, CHANNELS(AS_TEXT)},
    {pl_msg_customer_types, CUSTOMER_TYPES(AS_TEXT)},
    {pl_msg_demand_types, DEMAND_TYPES(AS_TEXT)},
};

int pl_msg_enum_index(const char *const *list, const char *value)
{
    if (!value)
        return -1;
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], value) == 0)
            return i;
    return -1;
}

const char *pl_msg_enum_text(const char *const *list)
{
    for (size_t i = 0; i < sizeof enum_texts / sizeof enum_texts[0]; i++)
        if (enum_texts[i].list == list)
            return enum_texts[i].text + 2;
    assert(!"pl_msg_enum_text: not one of the lists in pl_msg.h");
    return "";
}

/* The member name, or NULL after reporting it missing or mistyped. */
static const cJSON *member(const cJSON *root, const char *name, int type, bool required,
                           pl_errlist_t *errs)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!item || (!required && cJSON_IsNull(item))) {
        if (required)
            pl_errlist_add(errs, PL_EINVAL, name, "required field \"%s\" is missing", name);
        return NULL;
    }
    if ((item->type & 0xFF) != type) {
        const char *want = type == cJSON_String ? "a string"
                         : type == cJSON_Number ? "an integer"
                                                : "an object";
        pl_errlist_add(errs, PL_EINVAL, name, "%s must be %s, got %s", name, want,
                       pl_json_type_name(item));
        return NULL;
    }
    return item;
}

/* id and source: a required non-empty string of at most max characters. */
static const char *label(const cJSON *root, const char *name, size_t max, pl_errlist_t *errs)
{
    const cJSON *item = member(root, name, cJSON_String, true, errs);
    if (!item)
        return NULL;
    const char *s = item->valuestring;
    size_t chars = pl_utf8_count(s, strlen(s));
    if (chars == 0) {
        pl_errlist_add(errs, PL_EINVAL, name, "%s must not be empty", name);
        return NULL;
    }
    if (chars > max) {
        pl_errlist_add(errs, PL_ETOOLARGE, name, "%s is %zu characters, limit is %zu", name,
                       chars, max);
        return NULL;
    }
    return s;
}

static void check_version(const cJSON *root, pl_errlist_t *errs)
{
    const cJSON *v = member(root, "v", cJSON_Number, true, errs);
    if (v && v->valuedouble != PL_MSG_VERSION) {
        pl_err_t e;
        pl_err_set(&e, PL_EINVAL, "v", "unsupported version %g; this server speaks version %d",
                   v->valuedouble, PL_MSG_VERSION);
        pl_err_hint(&e, "Send \"v\": %d.", PL_MSG_VERSION);
        pl_errlist_push(errs, &e);
    }
}

static void check_envelope(cJSON *root, pl_msg_t *msg, pl_errlist_t *errs)
{
    const cJSON *type = member(root, "type", cJSON_String, true, errs);
    if (type && !*type->valuestring)
        pl_errlist_add(errs, PL_EINVAL, "type", "type must not be empty");
    else if (type)
        msg->type = type->valuestring;
    check_version(root, errs);
    /* Kept even when other fields fail: the error reply carries it. */
    msg->id = label(root, "id", PL_MSG_ID_MAX, errs);
    msg->source = label(root, "source", PL_SOURCE_MAX, errs);
    const cJSON *at = member(root, "at", cJSON_String, false, errs);
    if (at) {
        pl_err_t e;
        int64_t at_ms = 0;
        if (pl_time_parse(at->valuestring, &at_ms, "at", &e) < 0)
            pl_errlist_push(errs, &e);
        else
            msg->at = at->valuestring;
    }
    msg->data = (cJSON *)member(root, "data", cJSON_Object, true, errs);
}

/* The wire code of the errors added since errs held `before` entries. */
static int code_since(const pl_errlist_t *errs, size_t before)
{
    for (size_t i = before; i < errs->count; i++)
        if (errs->items[i].code == PL_ETOOLARGE)
            return PL_ETOOLARGE;
    return PL_EINVAL;
}

int pl_msg_parse(const char *buf, size_t len, pl_msg_t *msg, pl_errlist_t *errs)
{
    memset(msg, 0, sizeof *msg);
    size_t before = errs->count, before_all = errs->count + errs->dropped;
    if (len > PL_MSG_FRAME_MAX)
        return pl_errlist_add(errs, PL_ETOOLARGE, "", "message is %zu bytes, limit is %d", len,
                              PL_MSG_FRAME_MAX);
    msg->root = pl_json_parse(buf, len, PL_JSON_DEPTH_MAX, errs);
    if (!msg->root)
        return code_since(errs, before);
    if (!cJSON_IsObject(msg->root)) {
        pl_errlist_add(errs, PL_EINVAL, "", "message must be a JSON object, got %s",
                       pl_json_type_name(msg->root));
        return PL_EINVAL;
    }
    check_envelope(msg->root, msg, errs);
    if (errs->count + errs->dropped != before_all)
        return code_since(errs, before);
    return 0;
}

void pl_msg_release(pl_msg_t *msg)
{
    if (!msg)
        return;
    cJSON_Delete(msg->root);
    memset(msg, 0, sizeof *msg);
}

/* Every envelope field but data, in the order the protocol shows them. */
static cJSON *envelope_new(const char *type, const char *source, const char *correlation_id)
{
    char id[PL_UUID_STR], at[PL_RFC3339_MAX];
    cJSON *root = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(root, "type", type);
    pl_json_add_num(root, "v", PL_MSG_VERSION);
    pl_json_add_str(root, "id", pl_uuid_v7(id));
    pl_json_add_str(root, "at", pl_time_format(pl_time_now_ms(), at));
    pl_json_add_str(root, "source", source);
    if (correlation_id)
        pl_json_add_str(root, "correlation_id", correlation_id);
    return root;
}

cJSON *pl_msg_new(const char *type, const char *source, cJSON *data)
{
    cJSON *root = envelope_new(type, source, NULL);
    pl_json_add(root, "data", data ? data : pl_json_must(cJSON_CreateObject()));
    return root;
}

static void add_item(cJSON *array, cJSON *item)
{
    /* Linking needs no memory; it fails only for NULL arguments, a bug. */
    bool added = cJSON_AddItemToArray(array, item);
    assert(added);
    (void)added;
}

/* Adds text with each invalid UTF-8 sequence replaced by U+FFFD. A path
 * names a key exactly as sent, which in a refused frame may be invalid
 * UTF-8, and pl_err_t truncates at a byte count, which can split a
 * character; the reply must still be valid JSON. */
static void add_valid_text(cJSON *obj, const char *name, const char *text)
{
    size_t len = strlen(text), bad_at = 0;
    if (pl_utf8_valid(text, len, &bad_at)) {
        pl_json_add_str(obj, name, text);
        return;
    }
    char *out = pl_malloc(3 * len + 1); /* each bad byte may become 3 */
    size_t n = 0;
    while (len > 0) {
        bool ok = pl_utf8_valid(text, len, &bad_at);
        size_t good = ok ? len : bad_at;
        memcpy(out + n, text, good);
        n += good;
        if (ok)
            break;
        memcpy(out + n, "\xEF\xBF\xBD", 3);
        n += 3;
        text += good + 1;
        len -= good + 1;
    }
    out[n] = '\0';
    pl_json_add_str(obj, name, out);
    pl_free(out);
}

static cJSON *error_items(const pl_errlist_t *errs)
{
    cJSON *items = pl_json_must(cJSON_CreateArray());
    for (size_t i = 0; errs && i < errs->count; i++) {
        cJSON *item = pl_json_must(cJSON_CreateObject());
        add_valid_text(item, "path", errs->items[i].path);
        add_valid_text(item, "message", errs->items[i].message);
        if (errs->items[i].hint[0])
            add_valid_text(item, "hint", errs->items[i].hint);
        add_item(items, item);
    }
    if (errs && errs->dropped) {
        /* The list keeps PL_ERRLIST_MAX entries; say that there were more. */
        char text[96];
        snprintf(text, sizeof text, "%zu more errors not listed", errs->dropped);
        cJSON *item = pl_json_must(cJSON_CreateObject());
        pl_json_add_str(item, "path", "");
        pl_json_add_str(item, "message", text);
        add_item(items, item);
    }
    return items;
}

cJSON *pl_msg_error_new(const char *source, const char *correlation_id, int code,
                        const char *message, const pl_errlist_t *errs)
{
    cJSON *root = envelope_new(PL_MSG_ERROR, source, correlation_id);
    cJSON *data = pl_json_must(cJSON_CreateObject());
    pl_json_add_str(data, "code", pl_err_code_name(code));
    add_valid_text(data, "message", message ? message : pl_err_code_name(code));
    pl_json_add(data, "errors", error_items(errs));
    pl_json_add(root, "data", data);
    return root;
}
