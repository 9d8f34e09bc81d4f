/*
 * plaintctl token NAME ROLE [DEPARTMENT]: makes a bearer token for the
 * desk's API and prints it once, with the desk.json entry that admits it
 * (only the token's SHA-256 is stored there).
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "desk_auth.h"
#include "pl_workflow.h"

#define TOKEN_BYTES 32

int ctl_token(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        ctl_fail("token needs a NAME and a ROLE",
                 "Run plaintctl token agent.cs.li agent customer_service, or plaintctl token crm "
                 "integrator.");
        return CTL_EXIT_USAGE;
    }
    const char *name = argv[1], *role = argv[2], *dept = argc == 4 ? argv[3] : NULL;
    unsigned bit = pl_role_parse(role);
    if (!bit) {
        ctl_fail("unknown role", "Use agent, supervisor, admin or integrator.");
        return CTL_EXIT_USAGE;
    }
    if (bit == PL_ROLE_AGENT && !dept) {
        ctl_fail("an agent token needs the agent's DEPARTMENT",
                 "Run plaintctl token NAME agent DEPARTMENT.");
        return CTL_EXIT_USAGE;
    }
    if (sodium_init() < 0) {
        ctl_fail("libsodium cannot start", NULL);
        return CTL_EXIT_FAIL;
    }
    unsigned char raw[TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    char token[2 * TOKEN_BYTES + 8] = "plt_";
    sodium_bin2hex(token + 4, sizeof token - 4, raw, sizeof raw);
    char hex[65];
    desk_auth_digest_hex(token, hex);
    printf("token: %s\n", token);
    printf("(shown once; give it to %s. Add this entry to desk.json's \"tokens\":)\n", name);
    printf("{\"name\": \"%s\", \"role\": \"%s\"%s%s%s, \"pii\": %s, \"sha256\": \"%s\"}\n", name,
           role, dept ? ", \"department\": \"" : "", dept ? dept : "", dept ? "\"" : "",
           bit == PL_ROLE_INTEGRATOR ? "false" : "true", hex);
    sodium_memzero(raw, sizeof raw);
    return CTL_EXIT_OK;
}
