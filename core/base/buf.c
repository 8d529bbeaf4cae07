/* Growable byte buffers (see buf.h). */
#include "base/buf.h"

#include <stdio.h>
#include <stdlib.h>

bool mh_buf_reserve(struct mh_buf *b, size_t extra)
{
    size_t need = b->len + extra, cap = b->cap ? b->cap : 256;
    char *p;

    if (need < b->len)
        return false;
    if (need <= b->cap)
        return true;
    while (cap < need) {
        if (cap > (size_t)-1 / 2)
            return false;
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (!p)
        return false;
    b->data = p;
    b->cap = cap;
    return true;
}

bool mh_buf_add(struct mh_buf *b, const void *p, size_t n)
{
    if (!n)
        return true;
    if (!mh_buf_reserve(b, n))
        return false;
    mh_buf_put(b, p, n);
    return true;
}

bool mh_buf_vprintf(struct mh_buf *b, const char *fmt, va_list ap)
{
    va_list copy;
    int n;

    va_copy(copy, ap);
    n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0 || !mh_buf_reserve(b, (size_t)n + 1))
        return false;
    (void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return true;
}

bool mh_buf_printf(struct mh_buf *b, const char *fmt, ...)
{
    va_list ap;
    bool ok;

    va_start(ap, fmt);
    ok = mh_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return ok;
}

char *mh_buf_take(struct mh_buf *b, size_t *len)
{
    char *p = b->data;

    *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void mh_buf_cleanup(struct mh_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
