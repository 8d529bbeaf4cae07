/* Error records and lists (see err.h). */
#include "base/err.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

static void err_vfill(struct mh_err *err, enum mh_status code, const char *file, int line,
                      const char *fmt, va_list ap) MH_PRINTF(5, 0);
static void err_vfill(struct mh_err *err, enum mh_status code, const char *file, int line,
                      const char *fmt, va_list ap)
{
    err->code = code;
    (void)snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
    err->line = line;
    (void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

enum mh_status mh_err_set(struct mh_err *err, enum mh_status code, const char *file, int line,
                          const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return code;
    va_start(ap, fmt);
    err_vfill(err, code, file, line, fmt, ap);
    va_end(ap);
    return code;
}

void mh_errlist_push(struct mh_errlist *list, const struct mh_err *err)
{
    if (list->count == list->cap) {
        list->cap = list->cap ? list->cap * 2 : 8;
        list->items = mh_xrealloc(list->items, list->cap * sizeof(*list->items));
    }
    list->items[list->count++] = *err;
}

enum mh_status mh_errlist_add(struct mh_errlist *list, enum mh_status code, const char *file,
                              int line, const char *fmt, ...)
{
    struct mh_err err;
    va_list ap;

    va_start(ap, fmt);
    err_vfill(&err, code, file, line, fmt, ap);
    va_end(ap);
    mh_errlist_push(list, &err);
    return code;
}

void mh_err_format(const struct mh_err *err, char *buf, size_t size)
{
    if (err->file[0] && err->line > 0)
        (void)snprintf(buf, size, "%s:%d: %s", err->file, err->line, err->msg);
    else if (err->file[0])
        (void)snprintf(buf, size, "%s: %s", err->file, err->msg);
    else
        (void)snprintf(buf, size, "%s", err->msg);
}

void mh_errlist_print(const struct mh_errlist *list, FILE *out)
{
    char line[2048];

    for (size_t i = 0; i < list->count; i++) {
        mh_err_format(&list->items[i], line, sizeof(line));
        (void)fprintf(out, "%s\n", line);
    }
}

void mh_errlist_cleanup(struct mh_errlist *list)
{
    free(list->items);
    memset(list, 0, sizeof(*list));
}

const char *mh_status_str(enum mh_status status)
{
    switch (status) {
    case MH_PENDING:
        return "pending";
    case MH_OK:
        return "ok";
    case MH_E_INVAL:
        return "invalid argument";
    case MH_E_NOMEM:
        return "out of memory";
    case MH_E_LIMIT:
        return "limit exceeded";
    case MH_E_NOTFOUND:
        return "not found";
    case MH_E_CONFLICT:
        return "conflict";
    case MH_E_IO:
        return "I/O error";
    case MH_E_CANCELLED:
        return "cancelled";
    case MH_E_UNAVAILABLE:
        return "unavailable";
    case MH_E_TIMEOUT:
        return "timed out";
    case MH_E_STATE:
        return "not allowed in this state";
    }
    return "unknown status";
}
