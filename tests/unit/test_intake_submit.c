/*
 * test_intake_submit: complaint.submit frames through pl_msg_parse() and
 * intake_submission_new(), as intake runs them. Bad frames must be refused
 * with exactly the expected error paths; good ones must give the row that
 * plaint_submit_batch() reads (deploy/sql/0001_cases_events.sql).
 *
 * Inputs are templates: ' stands for " (no input needs a real apostrophe)
 * and ~ for `unit` repeated `repeat` times, for the oversize cases.
 *
 * Trusts the modules under test and cJSON to compare trees; owns every
 * buffer and tree it makes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "intake/intake_submit.h"
#include "pl_alloc.h"
#include "pl_json.h"
#include "pl_msg.h"
#include "pl_uuid.h"

#define PATHS_MAX 12
#define WANTS_MAX 22

#define ENV_HEAD "{'type':'complaint.submit','v':1,'id':'m-1','source':'crm','data':"
#define ENV(data) ENV_HEAD data "}"
#define CUST "'customer':{'phone':'13800138000'}"
/* A valid data object with more members appended. */
#define DATA(more) "{'channel':'web'," CUST ",'body':'broken'" more "}"
/* A valid data object with this customer. */
#define CDATA(customer) "{'channel':'web','customer':" customer ",'body':'broken'}"
#define ATT "{'name':'a.jpg','url':'https://img.example.cn/a.jpg'}"

typedef struct bad_case {
    const char *label;
    const char *input;          /* template */
    const char *unit;           /* what ~ repeats */
    int repeat;
    char *(*make)(size_t *len); /* builds the input instead, when set */
    int want_rc;
    const char *want_paths[PATHS_MAX]; /* exactly these, any order */
    const char *want_text;             /* in the first error's message */
} bad_case_t;

typedef struct column {
    const char *name;
    const char *json; /* template of the value */
} column_t;

typedef struct good_case {
    const char *label;
    const char *input;
    const char *unit;
    int repeat;
    column_t want[WANTS_MAX]; /* columns not listed are not checked */
} good_case_t;

/* Expands a template: ' to ", ~ to unit x repeat. */
static char *expand(const char *input, const char *unit, int repeat)
{
    size_t unit_len = unit ? strlen(unit) : 0;
    char *out = pl_malloc(strlen(input) + unit_len * (size_t)repeat + 1);
    size_t n = 0;
    for (const char *p = input; *p; p++) {
        if (*p == '~' && unit) {
            for (int r = 0; r < repeat; r++)
                for (const char *u = unit; *u; u++)
                    out[n++] = *u == '\'' ? '"' : *u;
        } else {
            out[n++] = *p == '\'' ? '"' : *p;
        }
    }
    out[n] = '\0';
    return out;
}

/* A NUL byte inside the body. */
static char *make_raw_nul(size_t *len)
{
    char *s = expand(ENV("{'channel':'web'," CUST ",'body':'brokenXglass'}"), NULL, 0);
    *len = strlen(s);
    *strchr(s, 'X') = '\0';
    return s;
}

/* A valid message with an extra member nested n deep inside data. */
static char *make_deep(int n, size_t *len)
{
    char *head = expand(ENV_HEAD DATA(",'deep':"), NULL, 0);
    size_t head_len = strlen(head) - 1; /* without DATA's closing brace */
    char *s = pl_malloc(head_len + 2 * (size_t)n + 3);
    memcpy(s, head, head_len);
    memset(s + head_len, '[', (size_t)n);
    memset(s + head_len + n, ']', (size_t)n);
    memcpy(s + head_len + 2 * (size_t)n, "}}", 3);
    *len = strlen(s);
    pl_free(head);
    return s;
}

static char *make_deep_100(size_t *len)
{
    return make_deep(100, len);
}

static char *make_deep_100000(size_t *len)
{
    return make_deep(100000, len);
}

static const bad_case_t bad_cases[] = {
    /* The frame as a whole. */
    {"not json", "complaint please", NULL, 0, NULL, PL_EINVAL, {"", NULL}, "not valid JSON"},
    {"empty input", "", NULL, 0, NULL, PL_EINVAL, {"", NULL}, "empty message"},
    {"array frame", "[1]", NULL, 0, NULL, PL_EINVAL, {"", NULL}, "must be a JSON object"},
    {"trailing garbage", ENV(DATA("")) " x", NULL, 0, NULL, PL_EINVAL, {"", NULL},
     "data after the JSON value"},
    {"nul byte raw", NULL, NULL, 0, make_raw_nul, PL_EINVAL, {"", NULL}, "NUL byte"},
    {"nesting depth 100", NULL, NULL, 0, make_deep_100, PL_EINVAL, {"", NULL},
     "nesting depth 102 exceeds the limit of 32"},
    {"nesting depth 100000", NULL, NULL, 0, make_deep_100000, PL_EINVAL, {"", NULL},
     "nesting depth 100002 exceeds the limit of 32"},
    {"frame over 1 MiB", ENV("{'channel':'web'," CUST ",'body':'~'}"), "a", PL_MSG_FRAME_MAX,
     NULL, PL_ETOOLARGE, {"", NULL}, "limit is 1048576"},
    {"invalid utf-8 outside strings", "{\xff}", NULL, 0, NULL, PL_EINVAL, {"", "", NULL}, NULL},
    {"leading zero number", ENV(DATA(",'n':012")), NULL, 0, NULL, PL_EINVAL, {"", NULL},
     "invalid number"},

    /* The envelope. */
    {"wrong type", "{'type':'complaint.update','v':1,'id':'m','source':'s','data':" DATA("") "}",
     NULL, 0, NULL, PL_EINVAL, {"type", NULL},
     "unexpected message type \"complaint.update\"; expected \"complaint.submit\""},
    {"version 2", "{'type':'complaint.submit','v':2,'id':'m','source':'s','data':" DATA("") "}",
     NULL, 0, NULL, PL_EINVAL, {"v", NULL}, "unsupported version 2"},
    {"data not object", ENV("'hi'"), NULL, 0, NULL, PL_EINVAL, {"data", NULL},
     "data must be an object, got string"},
    {"data null", ENV("null"), NULL, 0, NULL, PL_EINVAL, {"data", NULL}, "got null"},
    {"data missing", "{'type':'complaint.submit','v':1,'id':'m','source':'s'}", NULL, 0, NULL,
     PL_EINVAL, {"data", NULL}, NULL},

    /* JSON-level problems inside fields: named by path. */
    {"nul escape in body", ENV("{'channel':'web'," CUST ",'body':'a\\u0000b'}"), NULL, 0, NULL,
     PL_EINVAL, {"data.body", NULL}, "\\u0000"},
    {"nul escape in name", ENV(CDATA("{'phone':'123','name':'\\u0000'}")), NULL, 0,
     NULL, PL_EINVAL, {"data.customer.name", NULL}, "string contains a \\u0000 escape"},
    {"invalid utf-8 in body", ENV("{'channel':'web'," CUST ",'body':'bad \xff byte'}"), NULL, 0,
     NULL, PL_EINVAL, {"data.body", NULL}, "not valid UTF-8: byte 0xFF at offset 4"},
    {"invalid utf-8 in subject", ENV(DATA(",'subject':'\xe6\x8a'")), NULL, 0, NULL, PL_EINVAL,
     {"data.subject", NULL}, "not valid UTF-8"},
    {"invalid utf-8 in email", ENV(CDATA("{'email':'a\xc0@x.cn'}")), NULL, 0, NULL, PL_EINVAL,
     {"data.customer.email", NULL}, NULL},
    {"invalid utf-8 in url", ENV(DATA(",'attachments':[{'name':'a','url':'https://x.cn/\xf5'}]")),
     NULL, 0, NULL, PL_EINVAL, {"data.attachments[0].url", NULL}, NULL},
    {"lone surrogate", ENV(DATA(",'subject':'\\ud83d!'")), NULL, 0, NULL, PL_EINVAL,
     {"data.subject", NULL}, "lone surrogate"},
    {"size 1e400", ENV(DATA(",'attachments':[{'name':'a','url':'http://x.cn','size':1e400}]")),
     NULL, 0, NULL, PL_EINVAL, {"data.attachments[0].size", NULL}, "too large"},
    {"size 123456789012345678901234567890",
     ENV(DATA(",'attachments':[" ATT ",{'name':'a','url':'http://x.cn',"
              "'size':123456789012345678901234567890}]")),
     NULL, 0, NULL, PL_EINVAL, {"data.attachments[1].size", NULL}, "out of range"},
    {"duplicate channel", ENV(DATA(",'channel':'app'")), NULL, 0, NULL, PL_EINVAL,
     {"data.channel", NULL}, "duplicate key \"channel\""},
    {"duplicate in customer",
     ENV("{'channel':'web','customer':{'phone':'123','phone':'456'},'body':'b'}"), NULL, 0, NULL,
     PL_EINVAL, {"data.customer.phone", NULL}, NULL},

    /* channel */
    {"channel missing", ENV("{" CUST ",'body':'b'}"), NULL, 0, NULL, PL_EINVAL,
     {"data.channel", NULL}, "required field \"channel\" is missing"},
    {"channel fax", ENV("{'channel':'fax'," CUST ",'body':'b'}"), NULL, 0, NULL, PL_EINVAL,
     {"data.channel", NULL},
     "unknown channel \"fax\"; expected one of phone, email, web, app, chat, social, store, "
     "letter, api, other"},
    {"channel long", ENV("{'channel':'~'," CUST ",'body':'b'}"), "x", 500, NULL, PL_EINVAL,
     {"data.channel", NULL}, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\""},
    {"channel number", ENV("{'channel':3," CUST ",'body':'b'}"), NULL, 0, NULL, PL_EINVAL,
     {"data.channel", NULL}, "channel must be a string, got number"},
    {"channel null", ENV("{'channel':null," CUST ",'body':'b'}"), NULL, 0, NULL, PL_EINVAL,
     {"data.channel", NULL}, "channel must be a string, got null"},

    /* customer */
    {"customer missing", ENV("{'channel':'web','body':'b'}"), NULL, 0, NULL, PL_EINVAL,
     {"data.customer", NULL}, "required field \"customer\" is missing"},
    {"customer string", ENV("{'channel':'web','customer':'li','body':'b'}"), NULL, 0, NULL,
     PL_EINVAL, {"data.customer", NULL}, "customer must be an object, got string"},
    {"customer empty", ENV("{'channel':'web','customer':{},'body':'b'}"), NULL, 0, NULL,
     PL_EINVAL, {"data.customer", NULL}, "customer needs at least one of id, phone or email"},
    {"customer name only", ENV("{'channel':'web','customer':{'name':'Li'},'body':'b'}"), NULL, 0,
     NULL, PL_EINVAL, {"data.customer", NULL}, NULL},
    {"customer empty contacts",
     ENV("{'channel':'web','customer':{'id':'','phone':'','email':''},'body':'b'}"), NULL, 0,
     NULL, PL_EINVAL, {"data.customer", NULL}, NULL},
    {"customer type king", ENV(CDATA("{'id':'c','type':'king'}")), NULL, 0, NULL,
     PL_EINVAL, {"data.customer.type", NULL},
     "unknown customer type \"king\"; expected one of individual, enterprise, vip"},
    {"customer id number", ENV("{'channel':'web','customer':{'id':7,'email':'a@b.cn'},'body':'b'}"),
     NULL, 0, NULL, PL_EINVAL, {"data.customer.id", NULL}, "id must be a string, got number"},
    {"customer name too long", ENV(CDATA("{'id':'c','name':'~'}")), "王", 201, NULL,
     PL_ETOOLARGE, {"data.customer.name", NULL}, "name is 201 characters, limit is 200"},
    {"phone letters", ENV(CDATA("{'phone':'call me'}")), NULL, 0, NULL, PL_EINVAL,
     {"data.customer.phone", NULL}, "phone may hold only digits"},
    {"phone 2 digits", ENV(CDATA("{'phone':'+1 2'}")), NULL, 0, NULL, PL_EINVAL,
     {"data.customer.phone", NULL}, "phone has 2 digits; it needs 3 to 20"},
    {"phone 21 digits", ENV(CDATA("{'phone':'~'}")), "1", 21, NULL, PL_EINVAL,
     {"data.customer.phone", NULL}, "phone has 21 digits"},
    {"phone 65 characters", ENV(CDATA("{'phone':'123~'}")), " ", 62, NULL,
     PL_ETOOLARGE, {"data.customer.phone", NULL}, "phone is 65 characters, limit is 64"},
    {"email without @", ENV(CDATA("{'email':'li.example.com'}")), NULL, 0, NULL,
     PL_EINVAL, {"data.customer.email", NULL}, "exactly one @"},
    {"email two @", ENV(CDATA("{'email':'a@b@example.com'}")), NULL, 0, NULL,
     PL_EINVAL, {"data.customer.email", NULL}, "exactly one @"},
    {"email no local part", ENV(CDATA("{'email':'@example.com'}")), NULL, 0, NULL,
     PL_EINVAL, {"data.customer.email", NULL}, "nothing before the @"},
    {"email no dot", ENV(CDATA("{'email':'li@localhost'}")), NULL, 0, NULL,
     PL_EINVAL, {"data.customer.email", NULL}, "dot"},
    {"email trailing dot", ENV(CDATA("{'email':'li@example.'}")), NULL, 0, NULL,
     PL_EINVAL, {"data.customer.email", NULL}, "dot"},
    {"email space", ENV(CDATA("{'email':'li wei@example.com'}")), NULL, 0, NULL,
     PL_EINVAL, {"data.customer.email", NULL}, "spaces"},
    {"email ideographic space", ENV(CDATA("{'email':'li\\u3000@example.com'}")), NULL,
     0, NULL, PL_EINVAL, {"data.customer.email", NULL}, "spaces"},
    {"email 255", ENV(CDATA("{'email':'~@example.com'}")), "a", 243, NULL,
     PL_ETOOLARGE, {"data.customer.email", NULL}, "email is 255 characters, limit is 254"},
    {"lang 1 character", ENV(CDATA("{'id':'c','lang':'e'}")), NULL, 0, NULL,
     PL_EINVAL, {"data.customer.lang", NULL}, "lang must be 2 to 35 characters, got 1"},
    {"lang underscore", ENV(CDATA("{'id':'c','lang':'zh_CN'}")), NULL, 0, NULL,
     PL_EINVAL, {"data.customer.lang", NULL}, "only ASCII letters, digits and '-'"},
    {"lang empty", ENV(CDATA("{'id':'c','lang':''}")), NULL, 0, NULL, PL_EINVAL,
     {"data.customer.lang", NULL}, "lang must not be empty"},
    {"lang 36", ENV(CDATA("{'id':'c','lang':'~'}")), "z", 36, NULL, PL_ETOOLARGE,
     {"data.customer.lang", NULL}, NULL},

    /* body */
    {"body missing", ENV("{'channel':'web'," CUST "}"), NULL, 0, NULL, PL_EINVAL,
     {"data.body", NULL}, "required field \"body\" is missing"},
    {"body empty", ENV("{'channel':'web'," CUST ",'body':''}"), NULL, 0, NULL, PL_EINVAL,
     {"data.body", NULL}, "body must not be empty"},
    {"body whitespace", ENV("{'channel':'web'," CUST ",'body':' \\t\\n\\u3000\\u00a0'}"), NULL, 0,
     NULL, PL_EINVAL, {"data.body", NULL}, "body holds only whitespace"},
    {"body 65537 bytes", ENV("{'channel':'web'," CUST ",'body':'~'}"), "a", 65537, NULL,
     PL_ETOOLARGE, {"data.body", NULL}, "body is 65537 bytes, limit is 65536"},
    {"body 21846 chinese characters", ENV("{'channel':'web'," CUST ",'body':'~'}"), "诉", 21846,
     NULL, PL_ETOOLARGE, {"data.body", NULL}, "body is 65538 bytes, limit is 65536"},
    {"body array", ENV("{'channel':'web'," CUST ",'body':['b']}"), NULL, 0, NULL, PL_EINVAL,
     {"data.body", NULL}, "body must be a string, got array"},
    {"body null", ENV("{'channel':'web'," CUST ",'body':null}"), NULL, 0, NULL, PL_EINVAL,
     {"data.body", NULL}, "got null"},

    /* the other text fields */
    {"subject 201 chinese characters", ENV(DATA(",'subject':'~'")), "诉", 201, NULL, PL_ETOOLARGE,
     {"data.subject", NULL}, "subject is 201 characters, limit is 200"},
    {"demand 2001", ENV(DATA(",'demand':'~'")), "d", 2001, NULL, PL_ETOOLARGE,
     {"data.demand", NULL}, "demand is 2001 characters, limit is 2000"},
    {"location 201", ENV(DATA(",'location':'~'")), "l", 201, NULL, PL_ETOOLARGE,
     {"data.location", NULL}, NULL},
    {"external_id 129", ENV(DATA(",'external_id':'~'")), "e", 129, NULL, PL_ETOOLARGE,
     {"data.external_id", NULL}, "external_id is 129 characters, limit is 128"},
    {"external_id empty", ENV(DATA(",'external_id':''")), NULL, 0, NULL, PL_EINVAL,
     {"data.external_id", NULL}, "external_id must not be empty"},
    {"external_id number", ENV(DATA(",'external_id':42")), NULL, 0, NULL, PL_EINVAL,
     {"data.external_id", NULL}, "external_id must be a string, got number"},
    {"demand_type cash", ENV(DATA(",'demand_type':'cash'")), NULL, 0, NULL, PL_EINVAL,
     {"data.demand_type", NULL},
     "unknown demand type \"cash\"; expected one of refund, replacement, repair, compensation, "
     "apology, explanation, other"},

    /* target and occurred_at */
    {"target string", ENV(DATA(",'target':'shop'")), NULL, 0, NULL, PL_EINVAL,
     {"data.target", NULL}, "target must be an object, got string"},
    {"target product 201", ENV(DATA(",'target':{'product':'~'}")), "p", 201, NULL, PL_ETOOLARGE,
     {"data.target.product", NULL}, NULL},
    {"target fields wrong", ENV(DATA(",'target':{'store':5,'employee':[],'department':{}}")), NULL,
     0, NULL, PL_EINVAL, {"data.target.store", "data.target.employee", "data.target.department",
                          NULL}, "store must be a string, got number"},
    {"occurred_at words", ENV(DATA(",'occurred_at':'yesterday'")), NULL, 0, NULL, PL_EINVAL,
     {"data.occurred_at", NULL}, NULL},
    {"occurred_at 30 february", ENV(DATA(",'occurred_at':'2026-02-30T10:00:00Z'")), NULL, 0,
     NULL, PL_EINVAL, {"data.occurred_at", NULL}, NULL},
    {"occurred_at number", ENV(DATA(",'occurred_at':1700000000")), NULL, 0, NULL, PL_EINVAL,
     {"data.occurred_at", NULL}, "got number"},

    /* attachments */
    {"21 attachments", ENV(DATA(",'attachments':[" ATT "~]")), "," ATT, 20, NULL, PL_ETOOLARGE,
     {"data.attachments", NULL}, "attachments has 21 items, limit is 20"},
    {"attachments object", ENV(DATA(",'attachments':{}")), NULL, 0, NULL, PL_EINVAL,
     {"data.attachments", NULL}, "attachments must be an array, got object"},
    {"attachment string", ENV(DATA(",'attachments':['a.jpg']")), NULL, 0, NULL, PL_EINVAL,
     {"data.attachments[0]", NULL}, "attachment must be an object, got string"},
    {"attachment no name ftp url", ENV(DATA(",'attachments':[" ATT ",{'url':'ftp://x.cn/a'}]")),
     NULL, 0, NULL, PL_EINVAL, {"data.attachments[1].name", "data.attachments[1].url", NULL},
     "required field \"name\" is missing"},
    {"attachment sizes", ENV(DATA(",'attachments':[{'name':'a','url':'http://x.cn','size':-1},"
                                  "{'name':'b','url':'http://x.cn','size':1.5},"
                                  "{'name':'c','url':'http://x.cn','size':'10'}]")),
     NULL, 0, NULL, PL_EINVAL,
     {"data.attachments[0].size", "data.attachments[1].size", "data.attachments[2].size", NULL},
     "size must not be negative, got -1"},
    {"attachment url no host", ENV(DATA(",'attachments':[{'name':'a','url':'https://'}]")), NULL,
     0, NULL, PL_EINVAL, {"data.attachments[0].url", NULL}, "url has no host after \"https://\""},
    {"attachment url space", ENV(DATA(",'attachments':[{'name':'a','url':'http://x.cn/a b'}]")),
     NULL, 0, NULL, PL_EINVAL, {"data.attachments[0].url", NULL}, "spaces"},
    {"attachment url 2049", ENV(DATA(",'attachments':[{'name':'a','url':'https://x.cn/~'}]")), "u",
     2036, NULL, PL_ETOOLARGE, {"data.attachments[0].url", NULL},
     "url is 2049 characters, limit is 2048"},
    {"attachment name 256", ENV(DATA(",'attachments':[{'name':'~','url':'https://x.cn'}]")), "n",
     256, NULL, PL_ETOOLARGE, {"data.attachments[0].name", NULL}, NULL},
    {"attachment name empty", ENV(DATA(",'attachments':[{'name':'','url':'https://x.cn'}]")),
     NULL, 0, NULL, PL_EINVAL, {"data.attachments[0].name", NULL}, NULL},

    /* everything at once */
    {"several problems", ENV("{'channel':'fax','customer':{},'body':''}"), NULL, 0, NULL,
     PL_EINVAL, {"data.channel", "data.customer", "data.body", NULL}, NULL},
    {"too large wins", ENV("{'channel':'fax'," CUST ",'body':'~'}"), "b", 70000, NULL,
     PL_ETOOLARGE, {"data.channel", "data.body", NULL}, NULL},
    {"wrong types everywhere",
     ENV("{'external_id':1,'channel':2,'customer':3,'subject':4,'body':5,'demand':6,"
         "'demand_type':7,'target':8,'occurred_at':9,'location':10,'attachments':11}"),
     NULL, 0, NULL, PL_EINVAL,
     {"data.external_id", "data.channel", "data.customer", "data.subject", "data.body",
      "data.demand", "data.demand_type", "data.target", "data.occurred_at", "data.location",
      "data.attachments", NULL},
     "external_id must be a string, got number"},
};

/* Runs a frame as intake does. Returns 0 with *sub set, or the error code. */
static int submit(const char *buf, size_t len, pl_msg_t *msg, intake_submission_t **sub,
                  pl_errlist_t *errs)
{
    *sub = NULL;
    int rc = pl_msg_parse(buf, len, msg, errs);
    if (rc < 0)
        return rc;
    *sub = intake_submission_new(msg, errs);
    return *sub ? 0 : pl_errlist_code(errs);
}

static void check_paths(const char *label, const pl_errlist_t *errs, const char *const *want)
{
    size_t n = 0;
    bool used[PL_ERRLIST_MAX] = {false};
    for (; n < PATHS_MAX && want[n]; n++) {
        size_t i = 0;
        while (i < errs->count && (used[i] || strcmp(errs->items[i].path, want[n]) != 0))
            i++;
        if (i == errs->count)
            fail_msg("%s: no error at path \"%s\" (first: \"%s\": %s)", label, want[n],
                     errs->count ? errs->items[0].path : "-",
                     errs->count ? errs->items[0].message : "-");
        used[i] = true;
    }
    if (errs->count != n)
        fail_msg("%s: %zu errors, want %zu (first: \"%s\": %s)", label, errs->count, n,
                 errs->count ? errs->items[0].path : "-",
                 errs->count ? errs->items[0].message : "-");
}

/* The style guide: lowercase start, no trailing period, and never the
 * customer's data (the test inputs' contact values must not show up). */
static void check_messages(const char *label, const pl_errlist_t *errs)
{
    static const char *const secrets[] = {"13800138000", "li.example.com", "li wei", "call me",
                                          "broken"};
    for (size_t i = 0; i < errs->count; i++) {
        const char *m = errs->items[i].message;
        if (!*m || isupper((unsigned char)m[0]) || m[strlen(m) - 1] == '.')
            fail_msg("%s: message \"%s\" breaks the style guide", label, m);
        for (size_t s = 0; s < sizeof secrets / sizeof secrets[0]; s++)
            if (strstr(m, secrets[s]))
                fail_msg("%s: message \"%s\" quotes submitted data", label, m);
    }
}

static void run_bad_case(const bad_case_t *tc)
{
    size_t len = 0;
    char *input = tc->make ? tc->make(&len) : expand(tc->input, tc->unit, tc->repeat);
    if (!tc->make)
        len = strlen(input);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_msg_t msg;
    intake_submission_t *sub = NULL;
    int rc = submit(input, len, &msg, &sub, &errs);
    if (rc != tc->want_rc)
        fail_msg("%s: rc %d, want %d (first: %s)", tc->label, rc, tc->want_rc,
                 errs.count ? errs.items[0].message : "-");
    check_paths(tc->label, &errs, tc->want_paths);
    check_messages(tc->label, &errs);
    if (tc->want_text && !strstr(errs.items[0].message, tc->want_text))
        fail_msg("%s: message \"%s\" lacks \"%s\"", tc->label, errs.items[0].message,
                 tc->want_text);
    intake_submission_destroy(&sub);
    pl_msg_release(&msg);
    pl_errlist_reset(&errs);
    pl_free(input);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    size_t n = sizeof bad_cases / sizeof bad_cases[0];
    assert_true(n >= 30);
    for (size_t i = 0; i < n; i++)
        run_bad_case(&bad_cases[i]);
}

#define FULL_ZH                                                                             \
    "{'external_id':'工单-2026-0001','channel':'phone','customer':{'id':'C1001',"           \
    "'name':'王小明','phone':'+86 138-0013-8000','email':'wang@例子.中国','type':'vip',"   \
    "'lang':'zh-CN'},'subject':'快递破损','body':'收到的包裹外箱破损，里面的杯子碎了。',"  \
    "'demand':'全额退款并道歉','demand_type':'refund','target':{'product':'保温杯',"      \
    "'order_id':'DD20261120001','store':'上海旗舰店','employee':'张三',"                  \
    "'department':'物流部','floor':'3F'},'occurred_at':'2026-11-20T18:30:00+08:00',"      \
    "'location':'上海市浦东新区','attachments':[{'name':'照片1.jpg',"                     \
    "'url':'https://img.example.cn/a/1.jpg','size':204800},{'name':'收据.pdf',"          \
    "'url':'HTTP://files.example.cn/r.pdf'}],'x_crm_ref':{'ticket':42}}"

static const good_case_t good_cases[] = {
    {"minimal english",
     ENV("{'channel':'web','customer':{'email':'li.wei@example.com'},"
         "'body':'The parcel arrived broken.'}"),
     NULL, 0,
     {{"source", "'crm'"}, {"external_id", "null"}, {"message_id", "'m-1'"},
      {"channel", "'web'"}, {"customer_id", "null"}, {"customer_name", "null"},
      {"customer_phone", "null"}, {"customer_email", "'li.wei@example.com'"},
      {"customer_type", "'individual'"}, {"lang", "null"}, {"subject", "null"},
      {"body", "'The parcel arrived broken.'"}, {"demand", "null"}, {"demand_type", "null"},
      {"target", "null"}, {"occurred_at", "null"}, {"location", "null"},
      {"attachments", "null"}}},
    {"full chinese", ENV(FULL_ZH), NULL, 0,
     {{"external_id", "'工单-2026-0001'"}, {"channel", "'phone'"}, {"customer_id", "'C1001'"},
      {"customer_name", "'王小明'"}, {"customer_phone", "'+86 138-0013-8000'"},
      {"customer_email", "'wang@例子.中国'"}, {"customer_type", "'vip'"}, {"lang", "'zh-CN'"},
      {"subject", "'快递破损'"}, {"body", "'收到的包裹外箱破损，里面的杯子碎了。'"},
      {"demand", "'全额退款并道歉'"}, {"demand_type", "'refund'"},
      {"target", "{'product':'保温杯','order_id':'DD20261120001','store':'上海旗舰店',"
                 "'employee':'张三','department':'物流部','floor':'3F'}"},
      {"occurred_at", "'2026-11-20T10:30:00.000Z'"}, {"location", "'上海市浦东新区'"},
      {"attachments", "[{'name':'照片1.jpg','url':'https://img.example.cn/a/1.jpg',"
                      "'size':204800},"
                      "{'name':'收据.pdf','url':'HTTP://files.example.cn/r.pdf'}]"}}},
    {"mixed languages",
     ENV("{'channel':'app','customer':{'id':'u-77','type':'enterprise','lang':'en'},"
         "'subject':'Late delivery 延迟','body':'Order 订单 DD123 was 3 days late 迟到了 😠',"
         "'demand_type':'compensation','occurred_at':'2026-11-24t23:59:59.5z'}"),
     NULL, 0,
     {{"customer_id", "'u-77'"}, {"customer_type", "'enterprise'"}, {"lang", "'en'"},
      {"subject", "'Late delivery 延迟'"}, {"body", "'Order 订单 DD123 was 3 days late 迟到了 😠'"},
      {"demand_type", "'compensation'"}, {"occurred_at", "'2026-11-24T23:59:59.500Z'"}}},
    {"nulls are absent",
     ENV("{'external_id':null,'channel':'letter','customer':{'phone':'010-12345678',"
         "'type':null,'name':null,'lang':null,'email':null},'subject':null,'body':'信已收到',"
         "'demand':null,'demand_type':null,'target':null,'occurred_at':null,'location':null,"
         "'attachments':null}"),
     NULL, 0,
     {{"external_id", "null"}, {"customer_phone", "'010-12345678'"},
      {"customer_type", "'individual'"}, {"customer_name", "null"}, {"lang", "null"},
      {"subject", "null"}, {"target", "null"}, {"attachments", "null"}}},
    {"empty free text is absent",
     ENV("{'channel':'chat','customer':{'id':'c9','name':'','email':'','phone':''},"
         "'subject':'','body':'x','demand':'','location':'','target':{'product':''}}"),
     NULL, 0,
     {{"customer_id", "'c9'"}, {"customer_name", "null"}, {"customer_email", "null"},
      {"customer_phone", "null"}, {"subject", "null"}, {"demand", "null"},
      {"location", "null"}, {"target", "{'product':''}"}}},
    {"escaped unicode", ENV("{'channel':'api'," CUST ",'body':'\\u6295\\u8bc9 \\ud83d\\ude00'}"),
     NULL, 0, {{"body", "'投诉 😀'"}, {"customer_phone", "'13800138000'"}}},
    {"phone punctuation", ENV("{'channel':'store','customer':{'phone':'(010) 1234.5678'},"
                              "'body':'ok'}"),
     NULL, 0, {{"customer_phone", "'(010) 1234.5678'"}}},
    {"body of 65536 bytes", ENV("{'channel':'other'," CUST ",'body':'~'}"), "a", 65536,
     {{"channel", "'other'"}}},
    {"body of 21845 chinese characters", ENV("{'channel':'other'," CUST ",'body':'~'}"), "诉",
     21845, {{"channel", "'other'"}}},
    {"subject of 200 chinese characters", ENV(DATA(",'subject':'~'")), "诉", 200,
     {{"channel", "'web'"}}},
    {"20 attachments", ENV(DATA(",'attachments':[" ATT "~]")), "," ATT, 19,
     {{"channel", "'web'"}}},
    {"unknown fields kept", ENV(DATA(",'priority_hint':'high','extra':[1,{'a':null}]")), NULL, 0,
     {{"body", "'broken'"}}},
    {"body with text around spaces", ENV("{'channel':'web'," CUST ",'body':'\\u3000 a \\n'}"),
     NULL, 0, {{"body", "'\\u3000 a \\n'"}}},
};

static const char *const row_columns[] = {
    "idx", "case_id", "source", "external_id", "message_id", "channel", "customer_id",
    "customer_name", "customer_phone", "customer_email", "customer_type", "lang", "subject",
    "body", "demand", "demand_type", "target", "occurred_at", "location", "attachments",
    "submission", NULL};

/* Exactly the columns plaint_submit_batch() reads, in its order. */
static void check_row_shape(const char *label, const cJSON *row, int idx)
{
    const cJSON *field = row->child;
    for (int i = 0; row_columns[i]; i++, field = field->next)
        if (!field || strcmp(field->string, row_columns[i]) != 0)
            fail_msg("%s: row column %d is \"%s\", want \"%s\"", label, i,
                     field ? field->string : "(end)", row_columns[i]);
    if (field)
        fail_msg("%s: row has extra column \"%s\"", label, field->string);
    if (pl_json_int(row, "idx", -1) != idx)
        fail_msg("%s: idx", label);
    const char *case_id = pl_json_str(row, "case_id", "");
    if (!pl_uuid_valid(case_id) || case_id[14] != '7')
        fail_msg("%s: case_id \"%s\" is not a v7 uuid", label, case_id);
}

static void check_column(const char *label, const cJSON *row, const column_t *col)
{
    char *want_text = expand(col->json, NULL, 0);
    cJSON *want = cJSON_Parse(want_text);
    if (!want)
        fail_msg("%s: bad want for %s", label, col->name);
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(row, col->name);
    if (!cJSON_Compare(got, want, true)) {
        char *got_text = pl_json_print(got);
        fail_msg("%s: %s is %s, want %s", label, col->name, got_text, want_text);
    }
    cJSON_Delete(want);
    pl_free(want_text);
}

static void run_good_case(const good_case_t *tc, int idx)
{
    char *input = expand(tc->input, tc->unit, tc->repeat);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_msg_t msg;
    intake_submission_t *sub = NULL;
    if (submit(input, strlen(input), &msg, &sub, &errs) != 0)
        fail_msg("%s: refused: \"%s\": %s", tc->label, errs.items[0].path,
                 errs.items[0].message);
    cJSON *row = intake_submission_row(sub, idx);
    check_row_shape(tc->label, row, idx);
    for (int i = 0; i < WANTS_MAX && tc->want[i].name; i++)
        check_column(tc->label, row, &tc->want[i]);
    /* submission is data without body (stored once, in its column). */
    cJSON *want_submission = cJSON_Duplicate(msg.data, true);
    cJSON_DeleteItemFromObjectCaseSensitive(want_submission, "body");
    bool same = cJSON_Compare(cJSON_GetObjectItem(row, "submission"), want_submission, true);
    cJSON_Delete(want_submission);
    if (!same)
        fail_msg("%s: submission differs from data without body", tc->label);
    cJSON_Delete(row);
    intake_submission_destroy(&sub);
    pl_msg_release(&msg);
    pl_errlist_reset(&errs);
    pl_free(input);
}

static void test_good_inputs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good_cases / sizeof good_cases[0]; i++)
        run_good_case(&good_cases[i], (int)i);
}

/* Every value of every enumeration is accepted. */
static void test_enum_values(void **state)
{
    (void)state;
    static const struct {
        const char *const *list;
        const char *input; /* ~ is the value */
    } lists[] = {
        {pl_msg_channels, ENV("{'channel':'~'," CUST ",'body':'b'}")},
        {pl_msg_customer_types, ENV(CDATA("{'id':'c','type':'~'}"))},
        {pl_msg_demand_types, ENV(DATA(",'demand_type':'~'"))},
    };
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
        for (int i = 0; lists[l].list[i]; i++) {
            char *input = expand(lists[l].input, lists[l].list[i], 1);
            pl_errlist_t errs = PL_ERRLIST_INIT;
            pl_msg_t msg;
            intake_submission_t *sub = NULL;
            if (submit(input, strlen(input), &msg, &sub, &errs) != 0)
                fail_msg("value %s refused: %s", lists[l].list[i], errs.items[0].message);
            intake_submission_destroy(&sub);
            pl_msg_release(&msg);
            pl_errlist_reset(&errs);
            pl_free(input);
        }
    }
}

static void test_accessors_and_rows(void **state)
{
    (void)state;
    char *input = expand(ENV(DATA(",'external_id':'ext-1'")), NULL, 0);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_msg_t msg;
    intake_submission_t *sub = NULL;
    assert_int_equal(submit(input, strlen(input), &msg, &sub, &errs), 0);
    pl_msg_release(&msg); /* the submission keeps its own copy */
    assert_string_equal(intake_submission_external_id(sub), "ext-1");
    assert_string_equal(intake_submission_source(sub), "crm");
    assert_string_equal(intake_submission_channel(sub), "web");
    cJSON *a = intake_submission_row(sub, 3), *b = intake_submission_row(sub, 4);
    assert_string_not_equal(pl_json_str(a, "case_id", ""), pl_json_str(b, "case_id", ""));
    assert_int_equal(pl_json_int(b, "idx", 0), 4);
    cJSON_Delete(a);
    cJSON_Delete(b);
    intake_submission_destroy(&sub);
    assert_null(sub);
    intake_submission_destroy(&sub);
    intake_submission_destroy(NULL);
    pl_errlist_reset(&errs);
    pl_free(input);
}

/* A pl_msg_t built without pl_msg_parse: the checks must still hold. */
static void test_unparsed_message(void **state)
{
    (void)state;
    cJSON *data = cJSON_Parse("{\"channel\":\"web\",\"customer\":{\"id\":\"c\"},"
                              "\"body\":\"bad \xff\",\"subject\":\"\xe4\xb8\"}");
    pl_msg_t msg = {NULL, "complaint.submit", "m", NULL, NULL, data};
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_errlist_add(&errs, PL_EINVAL, "earlier", "kept");
    assert_null(intake_submission_new(&msg, &errs));
    static const char *const want[] = {"earlier", "source", "data.subject", "data.body", NULL};
    check_paths("unparsed message", &errs, want);
    assert_string_equal(errs.items[0].path, "earlier");
    pl_errlist_reset(&errs);
    cJSON_Delete(data);
    msg.data = NULL;
    msg.source = "s";
    assert_null(intake_submission_new(&msg, &errs));
    check_paths("no data", &errs, (const char *const[]){"data", NULL});
    pl_errlist_reset(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_inputs),  cmocka_unit_test(test_good_inputs),
        cmocka_unit_test(test_enum_values), cmocka_unit_test(test_accessors_and_rows),
        cmocka_unit_test(test_unparsed_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
