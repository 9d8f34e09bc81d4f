/*
 * fuzz_submit: libFuzzer entry for intake's untrusted path. A frame goes
 * through pl_msg_parse(), intake_submission_new() and intake_submission_row()
 * as intake runs it, and the error reply is built as intake would send it.
 *
 * Besides what ASan and UBSan catch, it aborts when a promise to clients
 * breaks: a refusal always says why, with a lowercase message; a refusal
 * code is invalid or too_large; an accepted row and every error reply print
 * as JSON that pl_json_parse() accepts back (valid UTF-8, no NUL escapes).
 *
 * Trusts nothing in the input; owns and frees everything it builds.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "intake_submit.h"
#include "pl_alloc.h"
#include "pl_json.h"
#include "pl_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Our own output must pass our own strict parser. */
static void check_reparses(const cJSON *tree)
{
    char *text = pl_json_print(tree);
    pl_errlist_t errs = PL_ERRLIST_INIT;
    cJSON *back = pl_json_parse(text, strlen(text), PL_JSON_DEPTH_MAX + 1, &errs);
    if (!back)
        abort();
    cJSON_Delete(back);
    pl_errlist_reset(&errs);
    pl_free(text);
}

static void check_refusal(int rc, const pl_errlist_t *errs)
{
    if (rc != PL_EINVAL && rc != PL_ETOOLARGE)
        abort();
    if (errs->count == 0)
        abort();
    for (size_t i = 0; i < errs->count; i++) {
        const char *m = errs->items[i].message;
        if (!m[0] || isupper((unsigned char)m[0]))
            abort();
    }
}

static void check_accepted(const intake_submission_t *sub, const pl_errlist_t *errs)
{
    if (errs->count || errs->dropped)
        abort();
    cJSON *row = intake_submission_row(sub, 0);
    if (!cJSON_IsString(cJSON_GetObjectItem(row, "body")) ||
        !cJSON_IsString(cJSON_GetObjectItem(row, "channel")))
        abort();
    check_reparses(row);
    cJSON_Delete(row);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_errlist_t errs = PL_ERRLIST_INIT;
    pl_msg_t msg;
    int rc = pl_msg_parse((const char *)data, size, &msg, &errs);
    intake_submission_t *sub = NULL;
    if (rc == 0) {
        sub = intake_submission_new(&msg, &errs);
        rc = sub ? 0 : pl_errlist_code(&errs);
    }
    if (sub) {
        check_accepted(sub, &errs);
    } else {
        check_refusal(rc, &errs);
        cJSON *reply = pl_msg_error_new("fuzz", msg.id, rc, "complaint refused", &errs);
        check_reparses(reply);
        cJSON_Delete(reply);
    }
    intake_submission_destroy(&sub);
    pl_msg_release(&msg);
    pl_errlist_reset(&errs);
    return 0;
}
