/*
 * Allocation helpers for small, fixed core allocations: they log and abort on exhaustion, so
 * no caller carries an error path it could never use. Sizes a client controls never come here.
 */
#ifndef MH_MEM_H
#define MH_MEM_H

#include <stdarg.h>
#include <stddef.h>

void *mh_xmalloc(size_t size);
void *mh_xcalloc(size_t n, size_t size);
void *mh_xrealloc(void *p, size_t size);
char *mh_xstrdup(const char *s);
char *mh_xstrndup(const char *s, size_t n);
char *mh_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *mh_xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
