/*
 * The testing host's fake requests: building them, the mh_req_* calls, the replies with the
 * server's rules (one reply, valid status and headers, problem+json), and calling handlers.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "base/chars.h"
#include "base/err.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "testing_int.h"

/* --- Requests --- */

/* Percent-decodes [s, s+n) into a new string; '+' is a space if @p plus. */
static char *decode(const char *s, size_t n, bool plus)
{
    char *out = mh_xcalloc(1, n + 1), *o = out;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && mh_hex_value((unsigned char)s[i + 1]) >= 0 &&
            mh_hex_value((unsigned char)s[i + 2]) >= 0) {
            *o++ = (char)(mh_hex_value((unsigned char)s[i + 1]) * 16 +
                          mh_hex_value((unsigned char)s[i + 2]));
            i += 2;
        } else {
            *o++ = (char)(plus && s[i] == '+' ? ' ' : s[i]);
        }
    }
    return out;
}

struct mh_req *mh_testing_req(struct mh_testing *t, const char *method, const char *target)
{
    struct mh_req *req = mh_xcalloc(1, sizeof(*req));
    const char *q = strchr(target, '?');

    req->t = t;
    req->id = t->next_id++;
    req->method = mh_xstrdup(method);
    req->path = q ? mh_xstrndup(target, (size_t)(q - target)) : mh_xstrdup(target);
    req->query = mh_xstrdup(q ? q + 1 : "");
    req->resp_body = mh_xcalloc(1, 1);
    req->next = t->reqs;
    t->reqs = req;
    return req;
}

void mh_testing_req_param(struct mh_req *req, const char *name, const char *value)
{
    mh_th_pairs_set(&req->params, name, value);
}

enum mh_status mh_testing_req_route(struct mh_req *req, const char *path_template)
{
    const char *p = req->path, *s = path_template;
    struct pairs found = {0};

    while (*p && *s) {
        const char *pe = strchr(p + 1, '/'), *se = strchr(s + 1, '/');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p), slen = se ? (size_t)(se - s) : strlen(s);

        if (s[0] == '/' && s[1] == '{' && s[slen - 1] == '}' && p[0] == '/' && plen > 1) {
            char *name = mh_xstrndup(s + 2, slen - 3), *value = decode(p + 1, plen - 1, false);

            mh_th_pairs_add(&found, name, value);
            free(name);
            free(value);
        } else if (plen != slen || strncmp(p, s, plen) != 0) {
            break;
        }
        p += plen;
        s += slen;
    }
    if (*p || *s) {
        mh_th_pairs_free(&found);
        return MH_E_NOTFOUND;
    }
    for (size_t i = 0; i < found.n; i++)
        mh_th_pairs_set(&req->params, found.items[i].name, found.items[i].value);
    mh_th_pairs_free(&found);
    return MH_OK;
}

void mh_testing_req_header(struct mh_req *req, const char *name, const char *value)
{
    mh_th_pairs_add(&req->headers, name, value);
}

void mh_testing_req_body(struct mh_req *req, const void *data, size_t len)
{
    free(req->body);
    req->body = mh_xcalloc(1, len + 1);
    if (len)
        memcpy(req->body, data, len);
    req->body_len = len;
}

void mh_testing_req_json(struct mh_req *req, const char *json)
{
    mh_testing_req_body(req, json, strlen(json));
    mh_testing_req_header(req, "Content-Type", "application/json");
}

void mh_testing_req_cancel(struct mh_req *req)
{
    atomic_store(&req->cancelled, true);
}

static void run_defers(struct mh_req *req)
{
    while (req->defers) {
        struct defer *d = req->defers;

        req->defers = d->next;
        d->fn(d->arg);
        free(d);
    }
}

void mh_th_req_destroy(struct mh_req *req)
{
    run_defers(req);
    while (req->chunks) {
        struct chunk *c = req->chunks;

        req->chunks = c->next;
        free(c);
    }
    json_object_put(req->json);
    json_object_put(req->resp_json);
    mh_th_pairs_free(&req->params);
    mh_th_pairs_free(&req->headers);
    mh_th_pairs_free(&req->resp_headers);
    free(req->method);
    free(req->path);
    free(req->query);
    free(req->body);
    free(req->resp_body);
    free(req);
}

void mh_testing_req_free(struct mh_req *req)
{
    if (!req)
        return;
    for (struct mh_req **p = &req->t->reqs; *p; p = &(*p)->next) {
        if (*p == req) {
            *p = req->next;
            break;
        }
    }
    mh_th_req_destroy(req);
}

static const char *api_req_method(const struct mh_req *req)
{
    return req->method;
}

static const char *api_req_path(const struct mh_req *req)
{
    return req->path;
}

static const char *api_req_param(const struct mh_req *req, const char *name)
{
    return mh_th_pairs_get(&req->params, name, strcmp);
}

static void *api_req_alloc(struct mh_req *req, size_t size)
{
    struct chunk *c = mh_xcalloc(1, sizeof(*c) + size);

    c->next = req->chunks;
    req->chunks = c;
    return c->data;
}

static const char *api_req_query(struct mh_req *req, const char *name)
{
    const char *p = req->query;

    while (*p) {
        const char *end = strchr(p, '&'), *eq;
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char *key;

        eq = memchr(p, '=', n);
        key = decode(p, eq ? (size_t)(eq - p) : n, true);
        if (strcmp(key, name) == 0) {
            char *v = eq ? decode(eq + 1, n - (size_t)(eq - p) - 1, true) : mh_xstrdup("");
            char *copy = api_req_alloc(req, strlen(v) + 1);

            memcpy(copy, v, strlen(v) + 1);
            free(v);
            free(key);
            return copy;
        }
        free(key);
        p += n;
        if (*p == '&')
            p++;
    }
    return NULL;
}

static const char *api_req_header(const struct mh_req *req, const char *name)
{
    return mh_th_pairs_get(&req->headers, name, strcasecmp);
}

static enum mh_status api_req_headers(const struct mh_req *req, mh_header_fn fn, void *arg)
{
    for (size_t i = 0; i < req->headers.n; i++) {
        if (fn(req->headers.items[i].name, req->headers.items[i].value, arg))
            break;
    }
    return MH_OK;
}

static const void *api_req_body(struct mh_req *req, size_t *len)
{
    *len = req->body_len;
    return req->body_len ? req->body : NULL;
}

static enum mh_status api_req_json(struct mh_req *req, struct json_object **out,
                                   const char **detail)
{
    struct mh_testing *t = req->t;
    struct json_tokener *tok;
    size_t at = 0;
    const char *why = NULL;
    enum mh_json_verdict v;
    char *msg;

    if (req->json_parsed) {
        *out = req->json;
        return MH_OK;
    }
    if (req->body_len > t->max_json_bytes) {
        if (detail) {
            msg = api_req_alloc(req, 128);
            (void)snprintf(msg, 128, "JSON body of %zu bytes exceeds the limit of %zu",
                           req->body_len, t->max_json_bytes);
            *detail = msg;
        }
        return MH_E_LIMIT;
    }
    if (req->body_len == 0) {
        if (detail)
            *detail = "request body is empty; a JSON document was expected";
        return MH_E_INVAL;
    }
    v = mh_json_check((const char *)req->body, req->body_len, t->max_json_depth, &at, &why);
    if (v != MH_JSON_VALID) {
        if (detail) {
            msg = api_req_alloc(req, 256);
            (void)snprintf(msg, 256, "invalid JSON: %s at offset %zu", why, at);
            *detail = msg;
        }
        return v == MH_JSON_TOO_DEEP ? MH_E_LIMIT : MH_E_INVAL;
    }
    tok = json_tokener_new_ex(t->max_json_depth + 1);
    if (!tok)
        return MH_E_NOMEM;
    req->json = json_tokener_parse_ex(tok, (const char *)req->body, (int)req->body_len);
    if (json_tokener_get_error(tok) == json_tokener_continue)
        req->json = json_tokener_parse_ex(tok, " ", 1);
    json_tokener_free(tok);
    req->json_parsed = true;
    *out = req->json;
    return MH_OK;
}

static enum mh_status api_req_defer(struct mh_req *req, void (*fn)(void *), void *arg)
{
    struct defer *d = mh_xcalloc(1, sizeof(*d));

    d->fn = fn;
    d->arg = arg;
    d->next = req->defers;
    req->defers = d;
    return MH_OK;
}

static uint64_t api_req_id(const struct mh_req *req)
{
    return req->id;
}

/* As the server: the X-Request-Id the test set (when sane), else a made-up one. */
static const char *api_req_request_id(const struct mh_req *req)
{
    struct mh_req *r = (struct mh_req *)(uintptr_t)req;
    const char *v = mh_th_pairs_get(&req->headers, "X-Request-Id", strcasecmp);
    size_t n = v ? strlen(v) : 0;

    if (v && n >= 1 && n <= 64 &&
        strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789-_.:+/=@") == n)
        (void)snprintf(r->rid, sizeof(r->rid), "%s", v);
    else
        (void)snprintf(r->rid, sizeof(r->rid), "test-%020llu", (unsigned long long)req->id);
    return r->rid;
}

/* --- Replies --- */

static const char *reason(int status)
{
    static const struct {
        int status;
        const char *text;
    } table[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {409, "Conflict"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {422, "Unprocessable Content"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].status == status)
            return table[i].text;
    }
    return "Unknown";
}

/* The checks every reply call makes; logs misuse. @return MH_OK to go on. */
static enum mh_status reply_check(struct mh_req *req, const char *call, int status,
                                  const char *content_type)
{
    if (atomic_load(&req->cancelled)) {
        mh_th_misuse(req->t, "%s after the request was cancelled (check mh_req_is_cancelled)",
                     call);
        return MH_E_CANCELLED;
    }
    if (req->replied) {
        mh_th_misuse(req->t, "%s(status %d): a second reply (the first was %d)", call, status,
                     req->status);
        return MH_E_STATE;
    }
    if (status < 200 || status > 599) {
        mh_th_misuse(req->t, "%s: status %d is outside 200..599", call, status);
        return MH_E_INVAL;
    }
    if (content_type && !mh_is_field_value(content_type)) {
        mh_th_misuse(req->t, "%s: the content type holds a control character", call);
        return MH_E_INVAL;
    }
    return MH_OK;
}

/* Records the reply (no checks). */
static void reply_set(struct mh_req *req, int status, const char *content_type, const void *body,
                      size_t len)
{
    req->replied = true;
    req->status = status;
    if (content_type)
        mh_th_pairs_add(&req->resp_headers, "Content-Type", content_type);
    free(req->resp_body);
    req->resp_body = mh_xcalloc(1, len + 1);
    if (len)
        memcpy(req->resp_body, body, len);
    req->resp_len = len;
}

static enum mh_status api_resp_header(struct mh_req *req, const char *name, const char *value)
{
    if (req->replied) {
        mh_th_misuse(req->t, "mh_resp_header(%s) after the reply", name ? name : "NULL");
        return MH_E_STATE;
    }
    if (!name || !value || !mh_is_token(name) || !mh_is_field_value(value) ||
        strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
        strcasecmp(name, "Connection") == 0) {
        mh_th_misuse(req->t, "mh_resp_header(%s): %s", name ? name : "NULL",
                     !name || !value      ? "NULL argument"
                     : !mh_is_token(name) ? "the name is not an HTTP token"
                     : !mh_is_field_value(value)
                         ? "the value holds CR, LF or another control character"
                         : "the core sets this header");
        return MH_E_INVAL;
    }
    mh_th_pairs_add(&req->resp_headers, name, value);
    return MH_OK;
}

static enum mh_status api_reply(struct mh_req *req, int status, const char *content_type,
                                const void *body, size_t len)
{
    enum mh_status rc = reply_check(req, "mh_reply", status, content_type);

    if (rc == MH_OK)
        reply_set(req, status, content_type, body, len);
    return rc;
}

static enum mh_status api_reply_json(struct mh_req *req, int status, struct json_object *body)
{
    enum mh_status rc = reply_check(req, "mh_reply_json", status, NULL);

    if (rc == MH_OK) {
        size_t len = 0;
        const char *s = json_object_to_json_string_length(
            body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

        reply_set(req, status, "application/json", s, len);
    }
    json_object_put(body);
    return rc;
}

/* A problem+json body; @p detail may be NULL. */
static void reply_problem_set(struct mh_req *req, int status, const char *type, const char *detail)
{
    struct json_object *o = json_object_new_object();
    size_t len = 0;
    const char *s;

    json_object_object_add(o, "type", json_object_new_string(type ? type : "about:blank"));
    json_object_object_add(o, "title", json_object_new_string(reason(status)));
    json_object_object_add(o, "status", json_object_new_int(status));
    if (detail)
        json_object_object_add(o, "detail", json_object_new_string(detail));
    s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    reply_set(req, status, "application/problem+json", s, len);
    json_object_put(o);
}

static enum mh_status api_reply_problemv(struct mh_req *req, int status, const char *type,
                                         const char *fmt, va_list ap) MH_VPRINTF(4);
static enum mh_status api_reply_problemv(struct mh_req *req, int status, const char *type,
                                         const char *fmt, va_list ap)
{
    enum mh_status rc = reply_check(req, "mh_reply_problem", status, NULL);
    char *detail;

    if (rc != MH_OK)
        return rc;
    detail = fmt ? mh_xvasprintf(fmt, ap) : NULL;
    reply_problem_set(req, status, type, detail);
    free(detail);
    return MH_OK;
}

static enum mh_status api_reply_problem(struct mh_req *req, int status, const char *type,
                                        const char *fmt, ...) MH_PRINTF(4, 5);
static enum mh_status api_reply_problem(struct mh_req *req, int status, const char *type,
                                        const char *fmt, ...)
{
    enum mh_status rc;
    va_list ap;

    va_start(ap, fmt);
    rc = api_reply_problemv(req, status, type, fmt, ap);
    va_end(ap);
    return rc;
}

static enum mh_status api_req_json_body(struct mh_req *req, struct json_object **out)
{
    const char *detail = NULL;
    enum mh_status rc;

    if (req->replied)
        return MH_E_STATE;
    rc = api_req_json(req, out, &detail);
    if (rc == MH_E_INVAL || rc == MH_E_LIMIT)
        reply_problem_set(req, rc == MH_E_LIMIT ? 413 : 400, NULL, detail);
    return rc;
}

static int status_http(enum mh_status rc)
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

/* After the handler and its tasks: answer for it as the server does. */
void mh_th_settle(struct mh_req *req, const char *handler, enum mh_status rc)
{
    if (req->replied || (rc == MH_PENDING && req->pending > 0))
        return;
    if (rc == MH_OK || rc == MH_PENDING) {
        mh_th_misuse(req->t, "handler '%s' returned %s without a reply", handler,
                     rc == MH_OK ? "MH_OK" : "MH_PENDING");
        reply_problem_set(req, 500, NULL, "the handler sent no reply");
    } else {
        if (status_http(rc) >= 500)
            mh_th_log_line(req->t, MH_LOG_ERROR, "handler failed");
        reply_problem_set(req, status_http(rc), NULL, mh_status_str(rc));
    }
}

enum mh_status mh_testing_call(struct mh_req *req, const char *handler)
{
    struct mh_testing *t = req->t;
    const struct mh_handler_def *h = t->def.handlers;
    enum mh_status rc;

    while (h && h->name && strcmp(h->name, handler) != 0)
        h++;
    if (!h || !h->name) {
        mh_th_error_set(t, "module '%s' has no handler '%s'", t->def.name, handler);
        return MH_E_NOTFOUND;
    }
    if (!t->initialized || req->called) {
        mh_th_error_set(t, "%s",
                        !t->initialized ? "the module is not started" : "request already used");
        return MH_E_STATE;
    }
    req->called = true;
    t->on_worker = (h->flags & MH_HANDLER_BLOCKING) != 0;
    rc = h->fn(req, t->state);
    t->on_worker = false;
    mh_testing_run_tasks(t);
    mh_th_settle(req, handler, rc);
    run_defers(req);
    return rc;
}

int mh_testing_status(const struct mh_req *req)
{
    return req->status;
}

const char *mh_testing_header(const struct mh_req *req, const char *name)
{
    return mh_th_pairs_get(&req->resp_headers, name, strcasecmp);
}

const char *mh_testing_body(const struct mh_req *req, size_t *len)
{
    if (len)
        *len = req->resp_len;
    return req->resp_body;
}

struct json_object *mh_testing_json(struct mh_req *req)
{
    if (!req->resp_json_parsed) {
        req->resp_json = json_tokener_parse(req->resp_body);
        req->resp_json_parsed = true;
    }
    return req->resp_json;
}

struct json_object *mh_testing_json_get(struct mh_req *req, const char *key)
{
    struct json_object *v = NULL;

    return json_object_object_get_ex(mh_testing_json(req), key, &v) ? v : NULL;
}

const char *mh_testing_json_str(struct mh_req *req, const char *key)
{
    struct json_object *v = mh_testing_json_get(req, key);

    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int api_req_cancelled(const struct mh_req *req)
{
    return atomic_load(&((struct mh_req *)(uintptr_t)req)->cancelled);
}

static bool api_req_is_cancelled(const struct mh_req *req)
{
    return api_req_cancelled(req) != 0;
}

/* --- 1.2: streamed answers. The host writes every piece at once: the stream is always
 * drained, its body is the reply body once it ended. --- */

static enum mh_status api_stream_begin(struct mh_req *req, int status, const char *content_type)
{
    enum mh_status rc;

    if (req->stream) {
        mh_th_misuse(req->t, "mh_stream_begin: a stream was already begun");
        return MH_E_STATE;
    }
    rc = reply_check(req, "mh_stream_begin", status, content_type);
    if (rc != MH_OK)
        return rc;
    reply_set(req, status, content_type, NULL, 0);
    req->stream = 1;
    return MH_OK;
}

static enum mh_status api_stream_write(struct mh_req *req, const void *data, size_t len)
{
    char *body;

    if (req->stream != 1 || (len && !data))
        return MH_E_STATE;
    if (atomic_load(&req->cancelled))
        return MH_E_CANCELLED;
    body = mh_xrealloc(req->resp_body, req->resp_len + len + 1);
    memcpy(body + req->resp_len, data, len);
    req->resp_len += len;
    body[req->resp_len] = '\0';
    req->resp_body = body;
    return MH_OK;
}

static enum mh_status api_stream_on_drain(struct mh_req *req,
                                          void (*fn)(struct mh_req *req, void *arg), void *arg)
{
    if (req->stream != 1)
        return MH_E_STATE;
    if (fn)
        fn(req, arg); /* nothing is ever left unsent here */
    return MH_OK;
}

static enum mh_status api_stream_end(struct mh_req *req)
{
    if (req->stream != 1)
        return MH_E_STATE;
    req->stream = 2;
    return MH_OK;
}

void mh_th_api_req(struct mh_api *a)
{
    a->req_method = api_req_method;
    a->req_path = api_req_path;
    a->req_param = api_req_param;
    a->req_query = api_req_query;
    a->req_header = api_req_header;
    a->req_headers = api_req_headers;
    a->req_body = api_req_body;
    a->req_json = api_req_json;
    a->req_alloc = api_req_alloc;
    a->req_defer = api_req_defer;
    a->req_id = api_req_id;
    a->req_request_id = api_req_request_id;
    a->resp_header = api_resp_header;
    a->reply = api_reply;
    a->reply_json = api_reply_json;
    a->reply_problem = api_reply_problem;
    a->req_cancelled = api_req_cancelled;
    a->reply_problemv = api_reply_problemv;
    a->req_json_body = api_req_json_body;
    a->stream_begin = api_stream_begin;
    a->stream_write = api_stream_write;
    a->stream_on_drain = api_stream_on_drain;
    a->stream_end = api_stream_end;
    a->req_is_cancelled = api_req_is_cancelled;
}
