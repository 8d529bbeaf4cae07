/*
 * Replies: the SDK calls that record a handler's answer, and sending a recorded answer on the
 * connection: its head (head.c) written straight into the connection's output, the body
 * appended, or handed over without a copy when it is large.
 */

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
#include "http/head.h"
#include "http/req.h"
#include "http/request.h"
#include "mod/gen.h"
#include "mod/loader.h"

#define COPY_LIMIT 16384 /* larger bodies are handed to the connection, not copied */

/* --- Misuse of the SDK: a server error, blamed on the module --- */

/*
 * Records a module's misuse of a reply call: logged at once with module, handler, call and
 * argument; the request is then answered 500 (mh_req_settle), whatever it had recorded, since
 * a client must never get a 4xx for a server's bug, nor a reply the module did not mean.
 */
static void misuse(struct mh_req *req, const char *fmt, ...) MH_PRINTF(2, 3);
static void misuse(struct mh_req *req, const char *fmt, ...)
{
    const struct mh_route_target *t = req->target;
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mh_log_write(MH_LOG_ERROR, t ? t->module->name : "core", "SDK misuse in %s '%s': %s req=%s",
                 t && !t->handler ? "WebSocket endpoint" : "handler",
                 t ? (t->handler ? t->handler->name : t->ws->path) : "-", msg, req->rid);
    if (!req->misuse)
        req->misuse = mh_arena_strndup(&req->arena, msg, strlen(msg));
}

static const char *forbidden_field(const char *name)
{
    static const char *const names[] = {"Content-Length", "Transfer-Encoding", "Connection",
                                        "Date"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i]) == 0)
            return names[i];
    }
    return NULL;
}

/* --- SDK: the reply --- */

enum mh_status mh_resp_header_impl(struct mh_req *req, const char *name, const char *value)
{
    struct mh_resp_field *h;

    if (req->replied) {
        misuse(req, "mh_resp_header(\"%s\") after the reply", name ? name : "(null)");
        return MH_E_STATE;
    }
    if (!name || !value) {
        misuse(req, "mh_resp_header(%s, %s): NULL", name ? "name" : "NULL",
               value ? "value" : "NULL");
        return MH_E_INVAL;
    }
    if (!mh_is_token(name) || !mh_is_field_value(value)) {
        misuse(req, "mh_resp_header(\"%.64s\"): %s", name,
               !mh_is_token(name) ? "the name is not a token"
                                  : "the value holds a line break or another control character");
        return MH_E_INVAL;
    }
    if (forbidden_field(name)) {
        misuse(req, "mh_resp_header(\"%s\"): the core writes %s itself", name,
               forbidden_field(name));
        return MH_E_INVAL;
    }
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
        return MH_E_CANCELLED; /* documented: a late reply after a cancel is dropped */
    if (req->replied) {
        misuse(req, "a second reply (status %d; the first was %d)", status, req->status);
        return MH_E_STATE;
    }
    if (status < 200 || status > 599) {
        misuse(req, "reply with status %d (outside 200..599)", status);
        return MH_E_INVAL;
    }
    if (content_type && !mh_is_field_value(content_type)) {
        misuse(req, "reply with a content type holding a control character");
        return MH_E_INVAL;
    }
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

    if (rc == MH_OK) {
        size_t len;
        const char *s = json_object_to_json_string_length(
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
    char buf[1024];
    const char *detail = NULL;

    if (rc != MH_OK)
        return rc;
    if (fmt) {
        (void)vsnprintf(buf, sizeof(buf), fmt, ap); /* a longer detail is cut */
        detail = buf;
    }
    if (!mh_problem_build(&req->out, status, mh_http_reason(status), type, detail))
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

void mh_req_mark_responded(struct mh_req *req)
{
    mh_req_stop_watchers(req);
    if (!req->responded && !req->is_private)
        mh_stat_add(&req->loop->stats.answered, 1);
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
           mh_conn_requests(req->conn) + 1 >=
               (unsigned)req->loop->limits->max_requests_per_connection;
}

static void access_line(const struct mh_req *req, int status, size_t bytes)
{
    if (!req->loop->access_log || req->is_private)
        return;
    char peer[64];

    mh_access_request(req->loop, req, mh_conn_peer(req->conn, peer, sizeof(peer)), status, bytes);
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
    mh_conn_write_head(c, h);
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
    mh_req_account(req, h->status);
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
        .request_id = req->rid,
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
        .request_id = req->rid,
    };
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(detail, sizeof(detail), fmt, ap);
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
