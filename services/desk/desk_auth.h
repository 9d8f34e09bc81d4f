/*
 * desk_auth: who is calling the desk's API, from a bearer token.
 *
 * Tokens are configured in PLAINT_CONFIG_DIR/desk.json, each with a name (the
 * actor recorded with every action), a role (agent, supervisor, admin,
 * integrator), an agent's department, whether it may see customers' contact
 * data ("pii"), and the SHA-256 of the token, never the token itself
 * (plaintctl token makes a pair). Without desk.json the API is open: every
 * caller is an administrator, which suits a local test set-up only; the desk
 * logs a warning at start.
 *
 * Owns the loaded table. Lookups compare digests in constant time.
 */
#ifndef DESK_AUTH_H
#define DESK_AUTH_H

#include <stdbool.h>

#include "pl_err.h"

#define DESK_AUTH_FILE "desk.json"

typedef struct desk_auth desk_auth_t;

typedef struct desk_caller {
    const char *name;       /* the actor: a user or system id */
    unsigned role;          /* one PL_ROLE_* bit */
    const char *department; /* an agent's department, or NULL */
    bool pii;               /* may see customers' phone numbers and e-mail addresses */
} desk_caller_t;

/* Reads config_dir/desk.json when it exists. Returns the table (open when
 * the file does not exist), or NULL with every problem in errs, each naming
 * its field ("tokens[2].role"). */
desk_auth_t *desk_auth_load(const char *config_dir, pl_errlist_t *errs);
/* NULL-safe; nulls *a_p. */
void desk_auth_destroy(desk_auth_t **a_p);

/* Whether the API is open (no desk.json). */
bool desk_auth_is_open(const desk_auth_t *a);
/* Number of tokens configured. */
int desk_auth_tokens(const desk_auth_t *a);

/* The caller for an Authorization header value (may be NULL): borrowed from
 * a, or NULL when the header is missing, not "Bearer TOKEN", or the token is
 * unknown. In open mode every call gets the open administrator. */
const desk_caller_t *desk_auth_check(const desk_auth_t *a, const char *authorization);

/* Writes the lowercase hex SHA-256 of token into hex[65]. */
void desk_auth_digest_hex(const char *token, char hex[65]);

#endif
