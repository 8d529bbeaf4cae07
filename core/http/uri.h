/*
 * Request targets (RFC 9112 3.2): the syntax check the scanner applies, splitting a target
 * into path and query, and percent-decoding. Pure code.
 */
#ifndef MH_URI_H
#define MH_URI_H

#include <stdbool.h>
#include <stddef.h>

struct mh_arena;

/**
 * Whether [@p t, @p t + @p n) is a target we can read: origin form (`/p?q`), absolute form
 * (`http://host:port/p?q`, with a well-formed authority and a port up to 65535), `*`, or a
 * relative reference (answered later with 400, as it names no absolute path).
 */
bool mh_target_valid(const unsigned char *t, size_t n);

/**
 * The path and query of target @p t (NUL-terminated; it is modified: the '?' and '#' become
 * NUL). An absolute-form target yields its path ("/" when empty); *query is NULL without '?'.
 * @return false if the path does not start with '/'.
 */
bool mh_target_split(char *t, const char **path, size_t *path_len, const char **query);

/**
 * Percent-decodes [@p s, @p s + @p n) into @p a. @p plus_is_space for query strings. Strict
 * mode (path parameters) refuses a bad escape and an encoded NUL (NULL); lenient mode keeps
 * them literally.
 */
char *mh_pct_decode(struct mh_arena *a, const char *s, size_t n, bool plus_is_space, bool strict);

#endif
