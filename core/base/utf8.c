/* UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
#include "base/utf8.h"

#include <stdint.h>
#include <string.h>

/* Lead byte @p c of a multi-byte sequence: how many continuation bytes follow and the range
 * of the first one (which rules out overlong forms, surrogates and code points past
 * U+10FFFF). @return false if @p c cannot start a sequence. */
static bool lead_byte(struct mh_utf8 *u, unsigned char c)
{
    u->lo = 0x80;
    u->hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        u->need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        u->need = 2;
        if (c == 0xe0)
            u->lo = 0xa0;
        else if (c == 0xed)
            u->hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        u->need = 3;
        if (c == 0xf0)
            u->lo = 0x90;
        else if (c == 0xf4)
            u->hi = 0x8f;
    } else {
        return false;
    }
    return true;
}

/* Whether the eight bytes at @p p are all ASCII. */
static bool ascii8(const unsigned char *p)
{
    uint64_t w;

    memcpy(&w, p, 8);
    return !(w & 0x8080808080808080ULL);
}

bool mh_utf8_feed(struct mh_utf8 *u, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];

        if (!u->need && n - i >= 8 && ascii8(p + i)) {
            i += 7; /* ASCII runs (most text) eight bytes at a time */
            continue;
        }
        if (u->need) {
            if (c < u->lo || c > u->hi)
                return false;
            u->lo = 0x80;
            u->hi = 0xbf;
            u->need--;
            continue;
        }
        if (c >= 0x80 && !lead_byte(u, c))
            return false;
    }
    return true;
}

bool mh_utf8_valid(const void *p, size_t n)
{
    struct mh_utf8 u = MH_UTF8_INIT;

    return mh_utf8_feed(&u, p, n) && u.need == 0;
}
