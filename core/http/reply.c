/*
 * Replies: the SDK calls that record a handler's answer, and the writer that turns a recorded
 * answer into the bytes of a response on the connection — the status line and headers built
 * once into the connection's output (the Date line ready per second), the body appended, or
 * handed over without a copy when it is large.
 */
#include "http/reply.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "base/chars.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/problem.h"
#include "conf/config.h"
#include "http/access.h"
#include "http/conn.h"
#include "http/req.h"
#include "http/request.h"

#define COPY_LIMIT 16384 /* larger bodies are handed to the connection, not copied */

/* --- Status texts --- */

const char *mh_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

int mh_status_http(enum mh_status rc)
{
    switch (rc) {
    case MH_E_INVAL: return 400;
    case MH_E_NOTFOUND: return 404;
    case MH_E_CONFLICT: return 409;
    case MH_E_LIMIT: return 413;
    case MH_E_UNAVAILABLE: return 503;
    case MH_E_TIMEOUT: return 504;
    default: return 500;
    }
}

/* --- SDK: the reply --- */

enum mh_status mh_resp_header_impl(struct mh_req *req, const char *name, const char *value)
{
    struct mh_resp_field *h;

    if (req->replied)
        return MH_E_STATE;
    if (!name || !value || !mh_is_token(name) || !mh_is_field_value(value) ||
        strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
        strcasecmp(name, "Connection") == 0 || strcasecmp(name, "Date") == 0)
        return MH_E_INVAL;
    h = mh_arena_alloc(&req->arena, sizeof(*h));
    h->name = mh_arena_strndup(&req->arena, name, strlen(name));
    h->value = mh_arena_strndup(&req->arena, value, strlen(value));
    h->next = req->resp_fields;
    req->resp_fields = h;
    return MH_OK;
}

static enum mh_status reply_begin(struct mh_req *req, int status, const char *content_type)
{
    if (atomic_load(&req->cancel))
        return MH_E_CANCELLED;
    if (req->replied)
        return MH_E_STATE;
    if (status < 200 || status > 599)
        return MH_E_INVAL;
    if (content_type && !mh_is_field_value(content_type))
        return MH_E_INVAL;
    req->replied = true;
    req->status = status;
    req->content_type =
        content_type ? mh_arena_strndup(&req->arena, content_type, strlen(content_type)) : NULL;
    return MH_OK;
}

enum mh_status mh_reply_impl(struct mh_req *req, int status, const char *content_type,
                             const void *body, size_t len)
{
    enum mh_status rc = reply_begin(req, status, content_type);

    if (rc != MH_OK)
        return rc;
    if (len && !mh_buf_add(&req->out, body, len))
        return MH_E_NOMEM;
    return MH_OK;
}

enum mh_status mh_reply_json_impl(struct mh_req *req, int status, struct json_object *body)
{
    enum mh_status rc = reply_begin(req, status, "application/json");
    const char *s;
    size_t len;

    if (rc == MH_OK) {
        s = json_object_to_json_string_length(
            body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!s || !mh_buf_add(&req->out, s, len))
            rc = MH_E_NOMEM;
    }
    json_object_put(body);
    return rc;
}

static enum mh_status reply_vproblem(struct mh_req *req, int status, const char *type,
                                     const char *fmt, va_list ap) MH_PRINTF(4, 0);
static enum mh_status reply_vproblem(struct mh_req *req, int status, const char *type,
                                     const char *fmt, va_list ap)
{
    enum mh_status rc = reply_begin(req, status, "application/problem+json");
    char detail[1024];

    if (rc != MH_OK)
        return rc;
    if (fmt)
        vsnprintf(detail, sizeof(detail), fmt, ap);
    if (!mh_problem_build(&req->out, status, mh_http_reason(status), type, fmt ? detail : NULL))
        return MH_E_NOMEM;
    return MH_OK;
}

enum mh_status mh_reply_problem_impl(struct mh_req *req, int status, const char *type,
                                     const char *fmt, ...)
{
    enum mh_status rc;
    va_list ap;

    va_start(ap, fmt);
    rc = reply_vproblem(req, status, type, fmt, ap);
    va_end(ap);
    return rc;
}

/* --- Writing a response --- */

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

size_t mh_reply_write_head(struct mh_conn *c, struct mh_loop *loop, const struct mh_reply_head *h)
{
    const char *reason = mh_http_reason(h->status);
    size_t rlen = strlen(reason), need;
    char *start, *p;

    refresh_date(loop);
    need = 160 + rlen + loop->date_len;
    if (h->content_type)
        need += strlen(h->content_type) + 16;
    for (const struct mh_resp_field *f = h->fields; f; f = f->next)
        need += strlen(f->name) + strlen(f->value) + 4;
    if (h->extra_name)
        need += strlen(h->extra_name) + strlen(h->extra_value) + 4;
    start = p = mh_conn_space(c, need);
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
    if (h->status >= 200 && h->status != 204 && h->status != 304) {
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
    mh_conn_commit(c, (size_t)(p - start));
    return (size_t)(p - start);
}

void mh_req_mark_responded(struct mh_req *req)
{
    mh_req_stop_watchers(req);
    req->responded = true;
    if (req->async) {
        req->async = false;
        req->loop->inflight--;
    }
}

/* Whether the connection closes after this answer. */
static bool closes_after(const struct mh_req *req)
{
    return req->close_after || !req->keep_alive || req->loop->draining ||
           mh_conn_requests(req->conn) + 1 >= (unsigned)req->loop->limits->max_requests_per_connection;
}

static void access_line(const struct mh_req *req, int status, size_t bytes)
{
    if (!req->loop->access_log)
        return;
    mh_access_request(req->loop, req->method_name, req->path, req->query_raw, status, bytes,
                      &req->start, req->id);
    /* A request of a retired generation: its line goes out now, before the generation can
     * be finalised, so that the log keeps the order of events across a reload. */
    if (req->gen != req->loop->gen)
        mh_access_flush(req->loop);
}

/* Writes status, headers and @p body (the request's own buffer) and finishes the exchange. */
static void write_response(struct mh_req *req, const struct mh_reply_head *h, struct mh_buf *body)
{
    struct mh_conn *c = req->conn;
    bool bodyless = h->status < 200 || h->status == 204 || h->status == 304;
    size_t blen = bodyless ? 0 : body->len;

    if (!c || req->loop->stopped) {
        mh_req_mark_responded(req); /* the connection is gone: nobody to answer */
        return;
    }
    mh_reply_write_head(c, req->loop, h);
    if (blen && !req->is_head) {
        if (blen > COPY_LIMIT) {
            size_t len;
            char *block = mh_buf_take(body, &len);

            mh_conn_send_owned(c, block, len);
        } else {
            mh_conn_send(c, body->data, blen);
        }
    }
    req->body_sent = blen;
    access_line(req, h->status, blen);
    mh_req_mark_responded(req);
    req->conn = NULL;
    mh_conn_request_done(c, h->close);
}

void mh_req_respond(struct mh_req *req)
{
    struct mh_reply_head h = {
        .status = req->status,
        .content_type = req->content_type,
        .fields = req->resp_fields,
        .content_length = req->out.len,
    };

    if (req->is_connect) {
        /* CONNECT is refused by the scanner; should one arrive, frame an empty body. */
        h.content_type = NULL;
        h.content_length = 0;
        req->out.len = 0;
    }
    if (req->status == 204 || req->status == 304)
        h.content_type = NULL;
    if (req->conn) {
        h.close = closes_after(req);
        h.keep_alive_10 = !req->http11 && !h.close;
    }
    write_response(req, &h, &req->out);
}

void mh_req_respond_problem(struct mh_req *req, int status, const char *extra_name,
                            const char *extra_value, const char *fmt, ...)
{
    struct mh_buf body = {0};
    char detail[512];
    struct mh_reply_head h = {
        .status = status,
        .content_type = "application/problem+json",
        .extra_name = extra_name,
        .extra_value = extra_value,
    };
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (!mh_problem_build(&body, status, mh_http_reason(status), NULL, detail))
        abort();
    h.content_length = body.len;
    if (req->conn) {
        h.close = closes_after(req);
        h.keep_alive_10 = !req->http11 && !h.close;
    }
    write_response(req, &h, &body);
    mh_buf_cleanup(&body);
}
