/* problem+json documents (see problem.h). */
#include "base/problem.h"

#include "base/utf8.h"

bool mh_json_put_string(struct mh_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;

    if (!mh_buf_add(b, "\"", 1))
        return false;
    while (*p) {
        unsigned char c = *p;
        size_t n = 1;

        if (c >= 0x80) {
            /* Pass a whole valid UTF-8 sequence; replace anything else. */
            n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
            for (size_t i = 1; n && i < n; i++) {
                if (!p[i])
                    n = 0;
            }
            if (n && mh_utf8_valid(p, n)) {
                if (!mh_buf_add(b, p, n))
                    return false;
                p += n;
                continue;
            }
            if (!mh_buf_add(b, "\xef\xbf\xbd", 3))
                return false;
            p++;
            continue;
        }
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};

            if (!mh_buf_add(b, esc, 2))
                return false;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

            if (!mh_buf_add(b, esc, 6))
                return false;
        } else if (!mh_buf_add(b, p, 1)) {
            return false;
        }
        p++;
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
