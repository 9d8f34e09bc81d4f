/*
 * desk_auth: bearer tokens and roles (see desk_auth.h).
 *
 * SHA-256 and the constant-time comparison come from libsodium (Debian's
 * libsodium-dev, which libzmq already depends on).
 */
#include "desk_auth.h"
#include "desk_action.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pl_alloc.h"
#include "pl_cfg.h"
#include "pl_json.h"
#include "pl_workflow.h"

#define TOKENS_MAX 10000

typedef struct entry {
    desk_caller_t caller;
    unsigned char digest[crypto_hash_sha256_BYTES];
} entry_t;

struct desk_auth {
    bool open;
    entry_t *entries;
    int n;
};

static const desk_caller_t OPEN_ADMIN = {"anonymous", PL_ROLE_ADMIN, NULL, true};

static bool read_digest(const char *hex, unsigned char out[crypto_hash_sha256_BYTES])
{
    size_t bin_len = 0;
    return strlen(hex) == 2 * crypto_hash_sha256_BYTES &&
           sodium_hex2bin(out, crypto_hash_sha256_BYTES, hex, strlen(hex), NULL, &bin_len,
                          NULL) == 0 &&
           bin_len == crypto_hash_sha256_BYTES;
}

static void read_entry(desk_auth_t *a, const cJSON *t, int i, pl_errlist_t *errs)
{
    char path[64];
    snprintf(path, sizeof path, "tokens[%d]", i);
    const char *name = pl_json_str(t, "name", NULL);
    const char *role = pl_json_str(t, "role", NULL);
    const char *dept = pl_json_str(t, "department", NULL);
    const char *sha = pl_json_str(t, "sha256", NULL);
    entry_t *e = &a->entries[a->n];
    if (!name || !desk_id_ok(name, false))
        pl_errlist_add(errs, PL_ECONFIG, path,
                       "%s.name must be a user or system id: 1 to 64 letters, digits or . _ - @",
                       path);
    e->caller.role = pl_role_parse(role);
    if (!e->caller.role)
        pl_errlist_add(errs, PL_ECONFIG, path,
                       "%s.role must be agent, supervisor, admin or integrator", path);
    if (e->caller.role == PL_ROLE_AGENT && (!dept || !desk_id_ok(dept, true)))
        pl_errlist_add(errs, PL_ECONFIG, path,
                       "%s.department is required for an agent: the department id whose cases "
                       "the agent works",
                       path);
    if (!sha || !read_digest(sha, e->digest))
        pl_errlist_add(errs, PL_ECONFIG, path,
                       "%s.sha256 must be the 64 hex digits of the token's SHA-256 (plaintctl "
                       "token prints both)",
                       path);
    const cJSON *pii = cJSON_GetObjectItemCaseSensitive(t, "pii");
    if (pii && !cJSON_IsBool(pii))
        pl_errlist_add(errs, PL_ECONFIG, path, "%s.pii must be true or false", path);
    e->caller.name = name ? pl_strdup(name) : NULL;
    e->caller.department = dept ? pl_strdup(dept) : NULL;
    e->caller.pii = pii ? cJSON_IsTrue(pii) : e->caller.role == PL_ROLE_ADMIN;
    a->n++;
}

desk_auth_t *desk_auth_load(const char *config_dir, pl_errlist_t *errs)
{
    if (sodium_init() < 0) {
        pl_errlist_add(errs, PL_EINTERNAL, "", "libsodium cannot start");
        return NULL;
    }
    desk_auth_t *a = pl_calloc(1, sizeof *a);
    char file[4096];
    snprintf(file, sizeof file, "%s/%s", config_dir, DESK_AUTH_FILE);
    if (access(file, F_OK) != 0) {
        a->open = true;
        return a;
    }
    pl_err_t err;
    pl_err_clear(&err);
    cJSON *doc = pl_cfg_read_json(config_dir, DESK_AUTH_FILE, &err);
    if (!doc) {
        pl_errlist_push(errs, &err);
        desk_auth_destroy(&a);
        return NULL;
    }
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(doc, "tokens");
    int n = cJSON_GetArraySize(tokens);
    if (!cJSON_IsArray(tokens) || n > TOKENS_MAX) {
        pl_errlist_add(errs, PL_ECONFIG, "tokens",
                       "desk.json: tokens must be an array of at most %d tokens", TOKENS_MAX);
        n = 0;
    }
    size_t before = errs->count;
    a->entries = pl_calloc((size_t)n + 1, sizeof *a->entries);
    for (int i = 0; i < n; i++)
        read_entry(a, cJSON_GetArrayItem(tokens, i), i, errs);
    cJSON_Delete(doc);
    if (errs->count > before || (!cJSON_IsArray(tokens))) {
        desk_auth_destroy(&a);
        return NULL;
    }
    return a;
}

void desk_auth_destroy(desk_auth_t **a_p)
{
    desk_auth_t *a = *a_p;
    if (!a)
        return;
    for (int i = 0; i < a->n; i++) {
        pl_free((void *)a->entries[i].caller.name);
        pl_free((void *)a->entries[i].caller.department);
    }
    pl_free(a->entries);
    pl_free(a);
    *a_p = NULL;
}

bool desk_auth_is_open(const desk_auth_t *a)
{
    return a->open;
}

int desk_auth_tokens(const desk_auth_t *a)
{
    return a->n;
}

const desk_caller_t *desk_auth_check(const desk_auth_t *a, const char *authorization)
{
    if (a->open)
        return &OPEN_ADMIN;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    if (!*token)
        return NULL;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
    const desk_caller_t *found = NULL;
    for (int i = 0; i < a->n; i++) /* every entry, so the time says nothing */
        if (sodium_memcmp(digest, a->entries[i].digest, sizeof digest) == 0)
            found = &a->entries[i].caller;
    return found;
}

void desk_auth_digest_hex(const char *token, char hex[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(hex, 65, digest, sizeof digest);
}
