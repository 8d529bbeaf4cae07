/* Request targets (see uri.h). */
#include "http/uri.h"

#include <string.h>

#include "base/arena.h"
#include "base/chars.h"

/* Where the host of authority @p a starts: after the last '@' (the userinfo is not looked
 * at), or at 0. */
static size_t host_start(const unsigned char *a, size_t n)
{
    for (size_t k = n; k > 0; k--) {
        if (a[k - 1] == '@')
            return k;
    }
    return 0;
}

/* The length of the IP literal "[...]" (IPv6 or IPvFuture) that @p a starts with, or 0. */
static size_t ip_literal_len(const unsigned char *a, size_t n)
{
    size_t i;

    for (i = 1; i < n && a[i] != ']'; i++) {
        if (!mh_ch_is(a[i], MH_CH_HEX) && a[i] != ':' && a[i] != '.' && a[i] != 'v' && a[i] != 'V')
            return 0;
    }
    return i >= n || i == 1 ? 0 : i + 1;
}

/* Whether @p a (@p n bytes) is nothing, or ':' and a port of at most 65535 (or none). */
static bool valid_port_part(const unsigned char *a, size_t n)
{
    unsigned long port = 0;

    if (n == 0)
        return true;
    if (a[0] != ':')
        return false;
    for (size_t i = 1; i < n; i++) {
        if (a[i] < '0' || a[i] > '9')
            return false;
        port = port * 10 + (unsigned long)(a[i] - '0');
        if (port > 65535)
            return false;
    }
    return true;
}

/* authority = [ userinfo "@" ] host [ ":" port ] */
static bool valid_authority(const unsigned char *a, size_t n)
{
    size_t i = host_start(a, n);

    if (i < n && a[i] == '[') {
        size_t len = ip_literal_len(a + i, n - i);

        if (!len)
            return false;
        i += len;
    } else {
        while (i < n && mh_ch_is(a[i], MH_CH_HOST))
            i++;
    }
    return valid_port_part(a + i, n - i);
}

bool mh_target_valid(const unsigned char *t, size_t n)
{
    size_t i = 0;

    if (n == 0)
        return false;
    if (t[0] == '/' || (n == 1 && t[0] == '*'))
        return true;
    if ((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z') {
        for (i = 1; i < n && mh_ch_is(t[i], MH_CH_SCHEME); i++)
            ;
    }
    if (i == 0 || i >= n || t[i] != ':')
        return true; /* a relative reference: readable, refused later as not absolute */
    if (n - i >= 3 && t[i + 1] == '/' && t[i + 2] == '/') {
        size_t start = i + 3, end = start;

        while (end < n && t[end] != '/' && t[end] != '?' && t[end] != '#')
            end++;
        return valid_authority(t + start, end - start);
    }
    return true;
}

bool mh_target_split(char *t, const char **path, size_t *path_len, const char **query)
{
    char *p = t, *q;

    if (*p != '/') {
        char *colon = strchr(p, ':');

        if (!colon || colon == p || colon[1] != '/' || colon[2] != '/')
            return false;
        p = colon + 3;
        p += strcspn(p, "/?#");
    }
    q = p + strcspn(p, "?#");
    *query = NULL;
    if (*q == '?') {
        char *hash = strchr(q + 1, '#');

        if (hash)
            *hash = '\0';
        *query = q + 1;
    }
    if (p == q) {
        /* an absolute form without a path: the path is "/" */
        *q = '\0';
        *path = "/";
        *path_len = 1;
        return true;
    }
    *q = '\0';
    *path = p;
    *path_len = (size_t)(q - p);
    return true;
}

char *mh_pct_decode(struct mh_arena *a, const char *s, size_t n, bool plus_is_space, bool strict)
{
    char *out = mh_arena_alloc(a, n + 1), *o = out;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '%') {
            int hi = i + 2 < n ? mh_hex_value((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? mh_hex_value((unsigned char)s[i + 2]) : -1;

            /* An encoded NUL is never decoded: it would cut the value short. */
            if (hi >= 0 && lo >= 0 && (hi || lo)) {
                *o++ = (char)(hi * 16 + lo);
                i += 2;
                continue;
            }
            if (strict)
                return NULL;
        }
        *o++ = (char)(plus_is_space && c == '+' ? ' ' : c);
    }
    *o = '\0';
    return out;
}
