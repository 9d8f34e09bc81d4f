/*
 * pl_uuid: UUID generation and checking, text form only.
 *
 * v7 (time-ordered) ids keep the primary-key index of cases and events
 * append-mostly; v4 is for ids that must not reveal time.
 */
#ifndef PL_UUID_H
#define PL_UUID_H

#include <stdbool.h>

#define PL_UUID_STR 37 /* 36 characters and the NUL */

/* Writes a lower-case canonical UUID into out (>= PL_UUID_STR); returns out. */
char *pl_uuid_v7(char *out);
char *pl_uuid_v4(char *out);
/* True for the canonical 8-4-4-4-12 hex form, either case. */
bool pl_uuid_valid(const char *text);

#endif
