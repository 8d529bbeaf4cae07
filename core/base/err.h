/*
 * Errors for people: a message with the file and line it is about. Configuration checks collect
 * every error in a list instead of stopping at the first, so an operator fixes all in one pass.
 */
#ifndef MH_ERR_H
#define MH_ERR_H

#include <stddef.h>
#include <stdio.h>

#include "modhost/sdk.h"

struct mh_err {
    enum mh_status code;
    char file[512]; /* "" if not about a file */
    int line;       /* 0 if unknown */
    char msg[1024];
};

struct mh_errlist {
    struct mh_err *items;
    size_t count;
    size_t cap;
};

/** Fills @p err (if not NULL) and returns @p code, so callers can `return mh_err_set(...)`. */
enum mh_status mh_err_set(struct mh_err *err, enum mh_status code, const char *file, int line,
                          const char *fmt, ...) MH_PRINTF(5, 6);
/** Appends an error; returns @p code. */
enum mh_status mh_errlist_add(struct mh_errlist *list, enum mh_status code, const char *file,
                              int line, const char *fmt, ...) MH_PRINTF(5, 6);
void mh_errlist_push(struct mh_errlist *list, const struct mh_err *err);
/** Formats "file:line: message" (or the parts that are known) into @p buf. */
void mh_err_format(const struct mh_err *err, char *buf, size_t size);
/** Prints one line per error to @p out. */
void mh_errlist_print(const struct mh_errlist *list, FILE *out);
void mh_errlist_cleanup(struct mh_errlist *list);
const char *mh_status_str(enum mh_status status);

#endif
