/*
 * A strict RFC 8259 syntax check, run before json-c parses a request body: json-c accepts
 * single quotes, NaN, trailing commas and raw control characters, which a JSON API must not.
 */
#ifndef MH_JSON_H
#define MH_JSON_H

#include <stdbool.h>
#include <stddef.h>

enum mh_json_verdict { MH_JSON_VALID, MH_JSON_INVALID, MH_JSON_TOO_DEEP };

/**
 * Checks that [s, s+len) is exactly one JSON value with white space around it, nested at most
 * @p max_depth deep, in valid UTF-8. On failure *offset and *why tell where and what.
 */
enum mh_json_verdict mh_json_check(const char *s, size_t len, int max_depth, size_t *offset,
                                   const char **why);

#endif
