/*
 * The one builder of problem+json documents (RFC 9457) in the core: handlers' errors,
 * refusals of the HTTP engine, deadlines. Strings are JSON-escaped here and nowhere else.
 */
#ifndef MH_PROBLEM_H
#define MH_PROBLEM_H

#include <stdbool.h>

#include "base/buf.h"

/** Appends @p s as a JSON string (quotes included); invalid UTF-8 becomes U+FFFD. */
bool mh_json_put_string(struct mh_buf *b, const char *s);
/**
 * Appends {"type":…,"title":…,"status":…,"detail":…} to @p b. @p type NULL means
 * "about:blank"; @p detail NULL leaves the member out. @return false if memory ran out.
 */
bool mh_problem_build(struct mh_buf *b, int status, const char *title, const char *type,
                      const char *detail);

#endif
