/*
 * pl_json: parsing untrusted JSON frames and reading fields with errors that
 * name the field.
 *
 * cJSON accepts things we must refuse (a "\u0000" escape silently truncates a
 * string; strings are not checked for UTF-8; nesting is bounded only at 1000),
 * so pl_json_parse() checks the raw bytes first and the tree after.
 */
#ifndef PL_JSON_H
#define PL_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl_err.h"

#define PL_JSON_DEPTH_MAX 32

/* Parses buf[0..len) (need not be NUL-terminated). Refuses: NUL bytes,
 * invalid UTF-8 anywhere, "\u0000" escapes, nesting deeper than max_depth,
 * non-finite or out-of-range numbers, duplicate keys in an object, trailing
 * garbage, unescaped control characters and numbers outside the JSON grammar
 * (cJSON takes "01" and "-.5"). Returns the tree (caller deletes) or NULL
 * with every problem appended to errs (path "" for the frame as a whole, else
 * "data.body" style, relative to the top value). */
cJSON *pl_json_parse(const char *buf, size_t len, int max_depth, pl_errlist_t *errs);

/* "string", "number", "object", "array", "boolean", "null"; "nothing" for
 * NULL. Static storage. For "must be a string, got number" messages. */
const char *pl_json_type_name(const cJSON *item);

/* Appends ".name" or "[i]" to a path buffer; returns the new path (buf). */
char *pl_json_path(char *buf, size_t size, const char *parent, const char *name);
char *pl_json_path_index(char *buf, size_t size, const char *parent, int index);

/* Prints compactly into a new string the caller frees (never NULL). */
char *pl_json_print(const cJSON *item);

/* Builders for our own trees. cJSON allocates with malloc and returns NULL
 * only when out of memory; these abort then, as pl_alloc does, so callers need
 * no checks. pl_json_must() returns item, aborting when it is NULL.
 * pl_json_add() takes item (NULL adds JSON null); a NULL value adds null. */
cJSON *pl_json_must(cJSON *item);
void pl_json_add(cJSON *obj, const char *name, cJSON *item);
void pl_json_add_str(cJSON *obj, const char *name, const char *value);
void pl_json_add_num(cJSON *obj, const char *name, double value);
/* A deep copy the caller deletes; NULL gives JSON null. */
cJSON *pl_json_dup(const cJSON *item);

/* Convenience getters for trusted trees (config, our own messages):
 * missing or mistyped fields give the fallback. */
const char *pl_json_str(const cJSON *obj, const char *name, const char *fallback);
int64_t pl_json_int(const cJSON *obj, const char *name, int64_t fallback);
bool pl_json_bool(const cJSON *obj, const char *name, bool fallback);

#endif
