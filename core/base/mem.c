/* Aborting allocation helpers (see mem.h). */
#include "base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(size_t size)
{
    char line[96];
    int n = snprintf(line, sizeof(line), "modhost: out of memory allocating %zu bytes\n", size);

    if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
        abort();
    abort();
}

void *mh_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (!p)
        oom(size);
    return p;
}

void *mh_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p)
        oom(n * size);
    return p;
}

void *mh_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);

    if (!q)
        oom(size);
    return q;
}

char *mh_xstrdup(const char *s)
{
    return mh_xstrndup(s, strlen(s));
}

char *mh_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = mh_xmalloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *mh_xvasprintf(const char *fmt, va_list ap)
{
    char *p = NULL;

    if (vasprintf(&p, fmt, ap) < 0)
        oom(0);
    return p;
}

char *mh_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;

    va_start(ap, fmt);
    p = mh_xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}
