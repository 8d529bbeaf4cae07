/* UTF-8 validation that can resume across pieces (WebSocket fragments, JSON strings). */
#ifndef MH_UTF8_H
#define MH_UTF8_H

#include <stdbool.h>
#include <stddef.h>

struct mh_utf8 {
    unsigned char need, lo, hi; /* continuation bytes still expected, and the next one's range */
};

#define MH_UTF8_INIT  \
    {                 \
        0, 0x80, 0xbf \
    }

/** @return false at the first invalid byte. Complete text leaves need == 0. */
bool mh_utf8_feed(struct mh_utf8 *u, const unsigned char *p, size_t n);
/** Whether [p, p+n) is complete, valid UTF-8. */
bool mh_utf8_valid(const void *p, size_t n);

#endif
