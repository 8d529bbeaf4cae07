/*
 * The character classes of HTTP (RFC 9110 5.6.2, 5.5; RFC 3986), one table for the whole
 * core: the request scanner, the target check, the response header check.
 */
#ifndef MH_CHARS_H
#define MH_CHARS_H

#include <stdbool.h>
#include <stddef.h>

enum {
    MH_CH_TCHAR = 0x01,  /* token characters: method and field names */
    MH_CH_FIELD = 0x02,  /* field value characters: VCHAR, SP, HTAB, obs-text */
    MH_CH_HEX = 0x04,    /* hexadecimal digits */
    MH_CH_TARGET = 0x08, /* visible ASCII: what a request target may hold (0x21..0x7e) */
    MH_CH_HOST = 0x10,   /* reg-name characters of a host: unreserved, sub-delims, '%' */
    MH_CH_SCHEME = 0x20  /* characters after the first of a URI scheme */
};

extern const unsigned char mh_char_class[256];

static inline bool mh_ch_is(unsigned char c, unsigned cls)
{
    return (mh_char_class[c] & cls) != 0;
}

/** Whether @p s is a non-empty token (a valid field name). */
bool mh_is_token(const char *s);
/** Whether @p s may be sent as a field value (no control characters but HTAB). */
bool mh_is_field_value(const char *s);
/** The value of hexadecimal digit @p c, or -1. */
int mh_hex_value(unsigned char c);

#endif
