/*
 * The head of a response: the status line, the Date line (made once a second per loop), the
 * content type, a handler's fields, Content-Length and Connection, written in one pass into
 * memory the caller provides. Also the status texts.
 */
#include "http/head.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/loop.h"
#include "http/req.h"
#include "http/request.h"

/* --- Status texts --- */

const char *mh_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int mh_status_http(enum mh_status rc)
{
    switch (rc) {
    case MH_E_INVAL:
        return 400;
    case MH_E_NOTFOUND:
        return 404;
    case MH_E_CONFLICT:
        return 409;
    case MH_E_LIMIT:
        return 413;
    case MH_E_UNAVAILABLE:
        return 503;
    case MH_E_TIMEOUT:
        return 504;
    default:
        return 500;
    }
}

static void refresh_date(struct mh_loop *loop)
{
    time_t now = time(NULL);

    if (now != loop->date_sec) {
        struct tm tm;

        gmtime_r(&now, &tm);
        loop->date_len = strftime(loop->date_line, sizeof(loop->date_line),
                                  "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        loop->date_sec = now;
    }
}

static void put_str(char **p, const char *s, size_t n)
{
    memcpy(*p, s, n);
    *p += n;
}

static void put_u64(char **p, unsigned long long v)
{
    char tmp[24], *t = tmp + sizeof(tmp);

    do {
        *--t = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put_str(p, t, (size_t)(tmp + sizeof(tmp) - t));
}

size_t mh_head_max(struct mh_loop *loop, const struct mh_reply_head *h)
{
    size_t need;

    refresh_date(loop);
    need = 160 + strlen(mh_http_reason(h->status)) + loop->date_len;
    if (h->content_type)
        need += strlen(h->content_type) + 16;
    for (const struct mh_resp_field *f = h->fields; f; f = f->next)
        need += strlen(f->name) + strlen(f->value) + 4;
    if (h->extra_name)
        need += strlen(h->extra_name) + strlen(h->extra_value) + 4;
    if (h->request_id)
        need += strlen(h->request_id) + 16;
    return need;
}

char *mh_head_put(char *p, const struct mh_loop *loop, const struct mh_reply_head *h)
{
    const char *reason = mh_http_reason(h->status);
    size_t rlen = strlen(reason);

    put_str(&p, "HTTP/1.1 ", 9);
    put_u64(&p, (unsigned)h->status);
    *p++ = ' ';
    put_str(&p, reason, rlen);
    put_str(&p, "\r\n", 2);
    put_str(&p, loop->date_line, loop->date_len);
    if (h->content_type) {
        put_str(&p, "Content-Type: ", 14);
        put_str(&p, h->content_type, strlen(h->content_type));
        put_str(&p, "\r\n", 2);
    }
    if (h->fields) {
        /* Recorded in reverse: write them in the module's order. */
        const struct mh_resp_field *stack[64], *f;
        size_t n = 0;

        for (f = h->fields; f && n < 64; f = f->next)
            stack[n++] = f;
        while (n--) {
            f = stack[n];
            if (h->content_type && strcasecmp(f->name, "Content-Type") == 0)
                continue;
            put_str(&p, f->name, strlen(f->name));
            put_str(&p, ": ", 2);
            put_str(&p, f->value, strlen(f->value));
            put_str(&p, "\r\n", 2);
        }
    }
    if (h->extra_name) {
        put_str(&p, h->extra_name, strlen(h->extra_name));
        put_str(&p, ": ", 2);
        put_str(&p, h->extra_value, strlen(h->extra_value));
        put_str(&p, "\r\n", 2);
    }
    if (h->request_id) {
        put_str(&p, "X-Request-Id: ", 14);
        put_str(&p, h->request_id, strlen(h->request_id));
        put_str(&p, "\r\n", 2);
    }
    if (h->chunked) {
        put_str(&p, "Transfer-Encoding: chunked\r\n", 28);
    } else if (h->until_close) {
        /* the body ends when the connection does */
    } else if (h->status >= 200 && h->status != 204 && h->status != 304) {
        put_str(&p, "Content-Length: ", 16);
        put_u64(&p, h->content_length);
        put_str(&p, "\r\n", 2);
    }
    if (h->close)
        put_str(&p, "Connection: close\r\n\r\n", 21);
    else if (h->keep_alive_10)
        put_str(&p, "Connection: keep-alive\r\n\r\n", 26);
    else
        put_str(&p, "\r\n", 2);
    return p;
}
