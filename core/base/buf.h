/*
 * A growable byte buffer: the request body a handler replies with, the head of a response
 * being built, a problem+json document. The owner keeps it; mh_buf_reset keeps the memory
 * for the next use, mh_buf_cleanup releases it.
 */
#ifndef MH_BUF_H
#define MH_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct mh_buf {
    char *data; /* NULL until the first byte; not NUL-terminated */
    size_t len, cap;
};

/** Makes room for @p extra more bytes. @return false (nothing changed) if memory ran out. */
bool mh_buf_reserve(struct mh_buf *b, size_t extra);
/** Appends @p n bytes. @return false (nothing changed) if memory ran out. */
bool mh_buf_add(struct mh_buf *b, const void *p, size_t n);
bool mh_buf_printf(struct mh_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool mh_buf_vprintf(struct mh_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/** Takes the bytes out: the caller owns them (free()); the buffer is empty afterwards. */
char *mh_buf_take(struct mh_buf *b, size_t *len);
void mh_buf_cleanup(struct mh_buf *b);

static inline void mh_buf_reset(struct mh_buf *b)
{
    b->len = 0;
}

/** Appends a string the caller knows fits (after mh_buf_reserve). */
static inline void mh_buf_put(struct mh_buf *b, const void *p, size_t n)
{
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/** Appends @p v in decimal (after mh_buf_reserve of 20 bytes). */
static inline void mh_buf_put_u64(struct mh_buf *b, unsigned long long v)
{
    char tmp[24], *p = tmp + sizeof(tmp);

    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    mh_buf_put(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

#endif
