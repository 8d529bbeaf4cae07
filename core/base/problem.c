/* problem+json documents (see problem.h). */
#include "base/problem.h"

#include "base/utf8.h"

/* Appends the UTF-8 sequence at *@p pp if it is whole and valid, else U+FFFD for its first
 * byte; moves *@p pp past what it took. */
static bool put_non_ascii(struct mh_buf *b, const unsigned char **pp)
{
    const unsigned char *p = *pp;
    size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;

    for (size_t i = 1; n && i < n; i++) {
        if (!p[i])
            n = 0; /* the string ends inside the sequence */
    }
    if (n && mh_utf8_valid(p, n)) {
        *pp += n;
        return mh_buf_add(b, p, n);
    }
    *pp += 1;
    return mh_buf_add(b, "\xef\xbf\xbd", 3);
}

/* Appends ASCII character @p c, escaped as a JSON string needs it. */
static bool put_ascii(struct mh_buf *b, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";

    if (c == '"' || c == '\\') {
        char esc[2] = {'\\', (char)c};

        return mh_buf_add(b, esc, 2);
    }
    if (c < 0x20) {
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

        return mh_buf_add(b, esc, 6);
    }
    return mh_buf_add(b, &c, 1);
}

bool mh_json_put_string(struct mh_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    if (!mh_buf_add(b, "\"", 1))
        return false;
    while (*p) {
        bool ok;

        if (*p >= 0x80) {
            ok = put_non_ascii(b, &p); /* a whole valid UTF-8 sequence, or a replacement */
        } else {
            ok = put_ascii(b, *p);
            p++;
        }
        if (!ok)
            return false;
    }
    return mh_buf_add(b, "\"", 1);
}

bool mh_problem_build(struct mh_buf *b, int status, const char *title, const char *type,
                      const char *detail)
{
    if (!mh_buf_add(b, "{\"type\":", 8) || !mh_json_put_string(b, type ? type : "about:blank") ||
        !mh_buf_add(b, ",\"title\":", 9) || !mh_json_put_string(b, title) ||
        !mh_buf_printf(b, ",\"status\":%d", status))
        return false;
    if (detail && (!mh_buf_add(b, ",\"detail\":", 10) || !mh_json_put_string(b, detail)))
        return false;
    return mh_buf_add(b, "}", 1);
}
