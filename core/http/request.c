/*
 * The request path: evhttp request -> route -> handler -> recorded reply -> evhttp. Also the
 * SDK's request/response calls, problem+json errors and the access log line.
 */
#include "http/request.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>

#include "conf/config.h"
#include "mod/gen.h"
#include "http/guard.h"
#include "base/json.h"
#include "mod/host.h"
#include "mod/loader.h"
#include "base/log.h"
#include "base/mailbox.h"
#include "base/mem.h"
#include "base/pool.h"
#include "mod/router.h"
#include "ws/ws.h"

/* --- Per-request memory --- */

struct chunk {
    struct chunk *next;
    size_t cap;
    alignas(max_align_t) unsigned char data[];
};

struct arena {
    struct chunk *chunks; /* heap chunks, freed with the request */
    unsigned char *cur;
    size_t left;
};

struct defer {
    struct defer *next;
    void (*fn)(void *);
    void *arg;
};

struct header {
    struct header *next;
    const char *name;
    const char *value;
};

struct qpair {
    const char *name;
    const char *value;
};

struct mh_req {
    struct evhttp_request *ev;
    struct mh_gen *gen; /* referenced: the request finishes on the generation it started on */
    struct mh_dispatch *dispatch;
    const struct mh_route_target *target;
    enum mh_method method;
    const char *method_name;
    const char *path;
    size_t path_len;
    const char *query_raw; /* NULL if none */
    size_t nparams;
    const char *param_names[MH_ROUTE_MAX_PARAMS];
    const char *param_values[MH_ROUTE_MAX_PARAMS];
    struct qpair *query;
    size_t nquery;
    bool query_parsed;
    uint64_t id;
    struct timespec start;

    struct json_object *json; /* parsed body, owned (NULL for the document `null`) */
    bool json_parsed;

    bool replied;
    int status;
    const char *content_type;
    struct header *headers; /* in reverse order of mh_resp_header calls */
    struct evbuffer *out;
    size_t body_len;

    struct defer *defers;

    /* Requests answered on the pool or by a task (the loop thread owns all but `cancel`). */
    struct mh_task task;         /* runs a blocking handler */
    enum mh_status handler_rc;   /* its return, read by the loop after completion */
    atomic_int cancel;           /* 0, MH_E_CANCELLED or MH_E_TIMEOUT */
    int pending;                 /* tasks not yet completed */
    bool async;                  /* counted in dispatch->inflight until responded */
    bool responded;              /* the answer was handed to evhttp, or dropped */
    bool detached;               /* request data copied out of ev (ev may vanish) */
    struct header *in_headers;   /* when detached, in order */
    struct evbuffer *in;         /* when detached */
    struct event *deadline_ev;
    struct event *close_ev;
    struct evhttp_connection *evcon;

    struct arena arena;
    alignas(max_align_t) unsigned char inline_mem[1024];
};

struct req_task {
    struct mh_task base; /* first: the pool hands back this pointer */
    struct mh_req *req;
    mh_task_fn work;
    mh_req_done_fn done;
    void *arg;
};

struct host_task {
    struct mh_task base;
    struct mh_gen *gen; /* referenced: the module's code and state stay until done ran */
    mh_task_fn work;
    mh_task_done_fn done;
    void *arg;
};

static void arena_init(struct arena *a, unsigned char *mem, size_t size)
{
    a->chunks = NULL;
    a->cur = mem;
    a->left = size;
}

static void *arena_alloc(struct arena *a, size_t size)
{
    size_t align = alignof(max_align_t);
    size_t need = (size + align - 1) & ~(align - 1);
    void *p;

    if (need < size)
        abort(); /* overflow: a module asked for an absurd size */
    if (need > a->left) {
        size_t cap = need > 4096 ? need : 4096;
        struct chunk *c = mh_xmalloc(sizeof(*c) + cap);

        c->next = a->chunks;
        c->cap = cap;
        a->chunks = c;
        a->cur = c->data;
        a->left = cap;
    }
    p = a->cur;
    a->cur += need;
    a->left -= need;
    memset(p, 0, size);
    return p;
}

static void arena_cleanup(struct arena *a)
{
    while (a->chunks) {
        struct chunk *c = a->chunks;

        a->chunks = c->next;
        free(c);
    }
}

static char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

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

/* --- Decoding --- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Percent-decodes [s, s+n) into the arena. @p plus_is_space for query strings. Strict mode
 * (path parameters) refuses a bad escape or an encoded NUL; lenient mode keeps them literally.
 */
static char *pct_decode(struct arena *a, const char *s, size_t n, bool plus_is_space, bool strict)
{
    char *out = arena_alloc(a, n + 1), *o = out;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;

            /* An encoded NUL is never decoded: it would cut the value short. */
            if (hi >= 0 && lo >= 0 && (hi || lo)) {
                *o++ = (char)(hi * 16 + lo);
                i += 2;
                continue;
            }
            if (strict)
                return NULL;
        }
        *o++ = plus_is_space && c == '+' ? ' ' : (char)c;
    }
    *o = '\0';
    return out;
}

/* --- For ws.c --- */

struct evhttp_request *mh_req_evhttp(const struct mh_req *req)
{
    return req->ev;
}

size_t mh_req_param_count(const struct mh_req *req)
{
    return req->nparams;
}

void mh_req_param_at(const struct mh_req *req, size_t i, const char **name, const char **value)
{
    *name = req->param_names[i];
    *value = req->param_values[i];
}

bool mh_req_replied(const struct mh_req *req)
{
    return req->replied;
}

/* --- SDK: request --- */

const char *mh_req_method_impl(const struct mh_req *req)
{
    return req->method_name;
}

const char *mh_req_path_impl(const struct mh_req *req)
{
    return req->path;
}

const char *mh_req_param_impl(const struct mh_req *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++) {
        if (strcmp(req->param_names[i], name) == 0)
            return req->param_values[i];
    }
    return NULL;
}

static void parse_query(struct mh_req *req)
{
    const char *q = req->query_raw;
    size_t cap = 0;

    req->query_parsed = true;
    if (!q || !*q)
        return;
    for (const char *p = q; *p; p++)
        cap += *p == '&';
    cap++;
    req->query = arena_alloc(&req->arena, cap * sizeof(*req->query));
    while (*q) {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);
        const char *eq = memchr(q, '=', len);

        if (len > 0) {
            size_t nlen = eq ? (size_t)(eq - q) : len;
            struct qpair *pair = &req->query[req->nquery++];

            pair->name = pct_decode(&req->arena, q, nlen, true, false);
            pair->value = eq ? pct_decode(&req->arena, eq + 1, len - nlen - 1, true, false) : "";
        }
        if (!end)
            break;
        q = end + 1;
    }
}

const char *mh_req_query_impl(struct mh_req *req, const char *name)
{
    if (!req->query_parsed)
        parse_query(req);
    for (size_t i = 0; i < req->nquery; i++) {
        if (strcmp(req->query[i].name, name) == 0)
            return req->query[i].value;
    }
    return NULL;
}

const char *mh_req_header_impl(const struct mh_req *req, const char *name)
{
    if (req->detached) {
        for (const struct header *h = req->in_headers; h; h = h->next) {
            if (strcasecmp(h->name, name) == 0)
                return h->value;
        }
        return NULL;
    }
    return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

enum mh_status mh_req_headers_impl(const struct mh_req *req, mh_header_fn fn, void *arg)
{
    struct evkeyvalq *hs;
    struct evkeyval *h;

    if (req->detached) {
        for (const struct header *dh = req->in_headers; dh; dh = dh->next) {
            if (fn(dh->name, dh->value, arg))
                break;
        }
        return MH_OK;
    }
    hs = evhttp_request_get_input_headers(req->ev);
    for (h = hs->tqh_first; h; h = h->next.tqe_next) {
        if (fn(h->key, h->value, arg))
            break;
    }
    return MH_OK;
}

const void *mh_req_body_impl(struct mh_req *req, size_t *len)
{
    struct evbuffer *in = req->detached ? req->in : evhttp_request_get_input_buffer(req->ev);
    size_t n = evbuffer_get_length(in);

    *len = n;
    return n ? evbuffer_pullup(in, -1) : NULL;
}

enum mh_status mh_req_json_impl(struct mh_req *req, struct json_object **out,
                                const char **detail)
{
    const struct mh_limits *lim = req->dispatch->limits;
    struct json_tokener *tok;
    enum json_tokener_error jerr;
    struct json_object *obj;
    const char *body;
    size_t len;

    if (req->json_parsed) {
        *out = req->json;
        return MH_OK;
    }
    body = mh_req_body_impl(req, &len);
    if (len > (size_t)lim->max_json_bytes || len > INT32_MAX) {
        if (detail) {
            char msg[128];
            int n = snprintf(msg, sizeof(msg), "JSON body of %zu bytes exceeds the limit of %lld",
                             len, lim->max_json_bytes);
            *detail = arena_strndup(&req->arena, msg, (size_t)n);
        }
        return MH_E_LIMIT;
    }
    if (len == 0) {
        if (detail)
            *detail = "request body is empty; a JSON document was expected";
        return MH_E_INVAL;
    }
    {
        size_t at = 0;
        const char *why = NULL;
        enum mh_json_verdict v = mh_json_check(body, len, (int)lim->max_json_depth, &at, &why);

        if (v != MH_JSON_VALID) {
            if (detail) {
                char msg[256];
                int n = snprintf(msg, sizeof(msg), "invalid JSON: %s at offset %zu", why, at);

                *detail = arena_strndup(&req->arena, msg, (size_t)n);
            }
            return v == MH_JSON_TOO_DEEP ? MH_E_LIMIT : MH_E_INVAL;
        }
    }
    /* Valid JSON now; json-c builds the objects (its depth counts the top level too). */
    tok = json_tokener_new_ex((int)lim->max_json_depth + 1);
    if (!tok)
        return MH_E_NOMEM;
    obj = json_tokener_parse_ex(tok, body, (int)len);
    jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        /* A top-level number or literal ends only at a delimiter: supply the end of input. */
        obj = json_tokener_parse_ex(tok, " ", 1);
        jerr = json_tokener_get_error(tok);
    }
    json_tokener_free(tok);
    if (jerr != json_tokener_success) {
        if (detail)
            *detail = "invalid JSON";
        return MH_E_INVAL;
    }
    req->json = obj;
    req->json_parsed = true;
    *out = obj;
    return MH_OK;
}

void *mh_req_alloc_impl(struct mh_req *req, size_t size)
{
    return arena_alloc(&req->arena, size);
}

enum mh_status mh_req_defer_impl(struct mh_req *req, void (*fn)(void *), void *arg)
{
    struct defer *d = arena_alloc(&req->arena, sizeof(*d));

    d->fn = fn;
    d->arg = arg;
    d->next = req->defers;
    req->defers = d;
    return MH_OK;
}

uint64_t mh_req_id_impl(const struct mh_req *req)
{
    return req->id;
}

/* --- SDK: response --- */

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c)))
            return false;
    }
    return true;
}

static bool is_field_value(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

enum mh_status mh_resp_header_impl(struct mh_req *req, const char *name, const char *value)
{
    struct header *h;

    if (req->replied)
        return MH_E_STATE;
    if (!name || !value || !is_token(name) || !is_field_value(value) ||
        strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
        strcasecmp(name, "Connection") == 0)
        return MH_E_INVAL;
    h = arena_alloc(&req->arena, sizeof(*h));
    h->name = arena_strndup(&req->arena, name, strlen(name));
    h->value = arena_strndup(&req->arena, value, strlen(value));
    h->next = req->headers;
    req->headers = h;
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
    if (content_type && !is_field_value(content_type))
        return MH_E_INVAL;
    req->replied = true;
    req->status = status;
    req->content_type =
        content_type ? arena_strndup(&req->arena, content_type, strlen(content_type)) : NULL;
    return MH_OK;
}

enum mh_status mh_reply_impl(struct mh_req *req, int status, const char *content_type,
                             const void *body, size_t len)
{
    enum mh_status rc = reply_begin(req, status, content_type);

    if (rc != MH_OK)
        return rc;
    if (len && evbuffer_add(req->out, body, len) != 0)
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
        if (!s || evbuffer_add(req->out, s, len) != 0)
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
    struct json_object *o;
    enum mh_status rc = reply_begin(req, status, "application/problem+json");
    const char *s;
    size_t len;

    if (rc != MH_OK)
        return rc;
    o = json_object_new_object();
    if (!o)
        return MH_E_NOMEM;
    json_object_object_add(o, "type", json_object_new_string(type ? type : "about:blank"));
    json_object_object_add(o, "title", json_object_new_string(mh_http_reason(status)));
    json_object_object_add(o, "status", json_object_new_int(status));
    if (fmt) {
        char detail[1024];

        vsnprintf(detail, sizeof(detail), fmt, ap);
        json_object_object_add(o, "detail", json_object_new_string(detail));
    }
    s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                          &len);
    if (!s || evbuffer_add(req->out, s, len) != 0)
        rc = MH_E_NOMEM;
    json_object_put(o);
    return rc;
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

void mh_req_log_impl(const struct mh_req *req, enum mh_log_level level, const char *fmt, ...)
{
    char msg[1024];
    const char *name = req->target ? req->target->module->name : "core";
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mh_log_write(level, name, "%s req=%" PRIu64, msg, req->id);
}

/* --- Dispatch --- */

static enum mh_method method_of(struct evhttp_request *ev, const char **name)
{
    switch (evhttp_request_get_command(ev)) {
    case EVHTTP_REQ_GET: *name = "GET"; return MH_METHOD_GET;
    case EVHTTP_REQ_HEAD: *name = "HEAD"; return MH_METHOD_HEAD;
    case EVHTTP_REQ_POST: *name = "POST"; return MH_METHOD_POST;
    case EVHTTP_REQ_PUT: *name = "PUT"; return MH_METHOD_PUT;
    case EVHTTP_REQ_DELETE: *name = "DELETE"; return MH_METHOD_DELETE;
    case EVHTTP_REQ_PATCH: *name = "PATCH"; return MH_METHOD_PATCH;
    case EVHTTP_REQ_OPTIONS: *name = "OPTIONS"; return MH_METHOD_OPTIONS;
    case EVHTTP_REQ_TRACE: *name = "TRACE"; return MH_METHOD_UNKNOWN;
    case EVHTTP_REQ_CONNECT: *name = "CONNECT"; return MH_METHOD_UNKNOWN;
    }
    *name = "?";
    return MH_METHOD_UNKNOWN;
}

/*
 * Responses in flight: counted from evhttp_send_reply until evhttp wrote them (on_complete),
 * or until the connection died first (its close callback, set only while a response is in
 * flight), so a stop never waits for a response that can no longer be written.
 */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct mh_dispatch *d = arg;

    evhttp_connection_set_closecb(evcon, NULL, NULL);
    d->inflight--;
}

static void on_complete(struct evhttp_request *ev, void *arg)
{
    struct mh_dispatch *d = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    struct mh_conn *c = mh_guard_conn(d, evcon);

    if (c) {
        mh_guard_response_done(c);
        return;
    }
    if (evcon)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    d->inflight--;
}

/* Counts a response in flight. @return whether the connection must close after it. Through
 * the guard (guard.c) the connection's close callback is the guard's; without it (a bare evhttp
 * in tests) the close callback is set only while a response is in flight. */
static bool track_send(struct mh_dispatch *d, struct evhttp_request *ev)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    struct mh_conn *c = mh_guard_conn(d, evcon);

    evhttp_request_set_on_complete_cb(ev, on_complete, d);
    if (c)
        return mh_guard_response_start(c) || d->draining;
    d->inflight++;
    if (evcon)
        evhttp_connection_set_closecb(evcon, on_conn_close, d);
    return d->draining;
}

static void access_log_line(const struct mh_req *req, int status, size_t bytes)
{
    struct timespec now;
    long long us;

    clock_gettime(CLOCK_MONOTONIC, &now);
    us = (long long)(now.tv_sec - req->start.tv_sec) * 1000000 +
         (now.tv_nsec - req->start.tv_nsec) / 1000;
    mh_log_write(MH_LOG_INFO, "access", "%s %s%s%s %d %zu %lldus req=%" PRIu64,
                 req->method_name, req->path, req->query_raw ? "?" : "",
                 req->query_raw ? req->query_raw : "", status, bytes, us, req->id);
}

static void stop_watchers(struct mh_req *req)
{
    if (req->deadline_ev) {
        event_free(req->deadline_ev);
        req->deadline_ev = NULL;
    }
    if (req->close_ev) {
        event_free(req->close_ev);
        req->close_ev = NULL;
    }
}

/* The client's answer is out of our hands (sent or dropped): ev is no longer ours. */
static void mark_responded(struct mh_req *req)
{
    stop_watchers(req);
    req->responded = true;
    req->ev = NULL;
    if (req->async) {
        req->async = false;
        req->dispatch->inflight--;
    }
}

/*
 * Date and Content-Length are added here: evhttp formats both with snprintf for every
 * response (the Date through gmtime), about a tenth of a small request's instructions; a Date
 * made once per second per loop, and a hand-made number, cost almost nothing.
 */
static void add_date(struct mh_dispatch *d, struct evkeyvalq *oh)
{
    struct timeval now;

    if (d->base && event_base_gettimeofday_cached(d->base, &now) == 0) {
        if (now.tv_sec != d->date_sec) {
            struct tm tm;

            gmtime_r(&now.tv_sec, &tm);
            strftime(d->date_header, sizeof(d->date_header), "%a, %d %b %Y %H:%M:%S GMT", &tm);
            d->date_sec = now.tv_sec;
        }
        evhttp_add_header(oh, "Date", d->date_header);
    }
}

static void add_length(struct evkeyvalq *oh, size_t n)
{
    char num[24], *p = num + sizeof(num);

    *--p = '\0';
    do {
        *--p = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    evhttp_add_header(oh, "Content-Length", p);
}

static void send_reply(struct mh_req *req)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req->ev);
    bool bodyless = req->status == 204 || req->status == 304;
    struct header *h, *rev = NULL;

    /* Headers were pushed in reverse; restore the module's order. */
    for (h = req->headers; h;) {
        struct header *next = h->next;

        h->next = rev;
        rev = h;
        h = next;
    }
    for (h = rev; h; h = h->next) {
        if (req->content_type && strcasecmp(h->name, "Content-Type") == 0)
            continue;
        evhttp_add_header(oh, h->name, h->value);
    }
    if (req->content_type && !bodyless)
        evhttp_add_header(oh, "Content-Type", req->content_type);
    req->body_len = bodyless ? 0 : evbuffer_get_length(req->out);
    add_date(req->dispatch, oh);
    if (track_send(req->dispatch, req->ev))
        evhttp_add_header(oh, "Connection", "close");
    if (evhttp_request_get_command(req->ev) == EVHTTP_REQ_CONNECT) {
        /* evhttp frames no body for CONNECT (and never closes after one): answer with an
         * empty, framed body so that the next request on the connection stays in sync. */
        evhttp_remove_header(oh, "Content-Type");
        evhttp_add_header(oh, "Content-Length", "0");
        req->body_len = 0;
        evhttp_send_reply(req->ev, req->status, mh_http_reason(req->status), NULL);
    } else if (req->method == MH_METHOD_HEAD || bodyless) {
        /* evhttp would append the body to a HEAD reply; send the length the GET would have. */
        if (!bodyless)
            add_length(oh, req->body_len);
        evhttp_send_reply(req->ev, req->status, mh_http_reason(req->status), NULL);
    } else {
        add_length(oh, req->body_len);
        evhttp_send_reply(req->ev, req->status, mh_http_reason(req->status), req->out);
    }
}

/* Sends the recorded reply (loop thread, ev still ours). */
static void respond(struct mh_req *req)
{
    if (req->dispatch->stopped) {
        mark_responded(req); /* the loop is gone; evhttp_free closes the connection */
        return;
    }
    send_reply(req);
    if (req->dispatch->access_log && mh_log_enabled(MH_LOG_INFO))
        access_log_line(req, req->status, req->body_len);
    mark_responded(req);
}

#define MAX_SPARES 256 /* per loop: requests in flight at once rarely exceed this */

void mh_request_spares_free(struct mh_dispatch *d)
{
    while (d->spare) {
        struct mh_req *r = d->spare;

        d->spare = (struct mh_req *)(void *)r->ev; /* the link lives in ev while spare */
        evbuffer_free(r->out);
        free(r);
    }
    d->nspare = 0;
}

static void req_free(struct mh_req *req)
{
    struct mh_dispatch *d = req->dispatch;

    stop_watchers(req);
    if (req->gen)
        mh_gen_unref(req->gen);
    while (req->defers) {
        struct defer *df = req->defers;

        req->defers = df->next;
        df->fn(df->arg);
    }
    json_object_put(req->json);
    if (req->in)
        evbuffer_free(req->in);
    arena_cleanup(&req->arena);
    /* Large enough to miss malloc's fast paths: keep it for the loop's next request. */
    if (d->nspare < MAX_SPARES && !d->stopped) {
        evbuffer_drain(req->out, evbuffer_get_length(req->out));
        req->ev = (struct evhttp_request *)(void *)d->spare;
        d->spare = req;
        d->nspare++;
        return;
    }
    evbuffer_free(req->out);
    free(req);
}

static void finish_if_done(struct mh_req *req)
{
    if (req->responded && req->pending == 0)
        req_free(req);
}

/*
 * Answers a request on the loop without touching the fields a worker may be writing (the
 * reply being built): used for deadlines and for refusals before any handler ran.
 */
static void respond_direct(struct mh_req *req, int status, const char *extra_header,
                           const char *extra_value, const char *fmt, ...) MH_PRINTF(5, 6);
static void respond_direct(struct mh_req *req, int status, const char *extra_header,
                           const char *extra_value, const char *fmt, ...)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req->ev);
    struct evbuffer *body = evbuffer_new();
    struct json_object *o = json_object_new_object();
    char detail[512];
    const char *s;
    size_t len = 0;
    va_list ap;

    if (req->dispatch->stopped) {
        evbuffer_free(body);
        json_object_put(o);
        mark_responded(req);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (!body || !o)
        abort();
    json_object_object_add(o, "type", json_object_new_string("about:blank"));
    json_object_object_add(o, "title", json_object_new_string(mh_http_reason(status)));
    json_object_object_add(o, "status", json_object_new_int(status));
    json_object_object_add(o, "detail", json_object_new_string(detail));
    s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    evhttp_add_header(oh, "Content-Type", "application/problem+json");
    if (extra_header)
        evhttp_add_header(oh, extra_header, extra_value);
    if (track_send(req->dispatch, req->ev))
        evhttp_add_header(oh, "Connection", "close");
    if (req->method == MH_METHOD_HEAD) {
        char num[24];

        snprintf(num, sizeof(num), "%zu", len);
        evhttp_add_header(oh, "Content-Length", num);
    } else {
        evbuffer_add(body, s, len);
    }
    evhttp_send_reply(req->ev, status, mh_http_reason(status), body);
    if (req->dispatch->access_log && mh_log_enabled(MH_LOG_INFO))
        access_log_line(req, status, len);
    evbuffer_free(body);
    json_object_put(o);
    mark_responded(req);
}

/* After the handler (or its last task) is done: reply with what it recorded, or for it. */
static void settle(struct mh_req *req, enum mh_status rc)
{
    const struct mh_route_target *t = req->target;

    if (req->responded) {
        finish_if_done(req);
        return;
    }
    if (!req->replied) {
        if (rc == MH_PENDING && req->pending > 0)
            return; /* a request task will reply */
        if (rc == MH_OK || rc == MH_PENDING) {
            mh_log_write(MH_LOG_ERROR, t->module->name,
                         "handler '%s' returned without a reply req=%" PRIu64,
                         t->handler ? t->handler->name : t->ws->path,
                         req->id);
            mh_reply_problem_impl(req, 500, NULL, "the handler sent no reply");
        } else {
            if (mh_status_http(rc) >= 500)
                mh_log_write(MH_LOG_ERROR, t->module->name, "%s '%s' failed: %s req=%" PRIu64,
                             t->handler ? "handler" : "WebSocket endpoint",
                             t->handler ? t->handler->name : t->ws->path, mh_status_str(rc),
                             req->id);
            mh_reply_problem_impl(req, mh_status_http(rc), NULL, "%s", mh_status_str(rc));
        }
    }
    respond(req);
    finish_if_done(req);
}

/* --- Waiting for the pool: deadlines and clients that go away --- */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct mh_req *req = arg;

    (void)fd;
    (void)what;
    if (req->responded)
        return;
    atomic_store(&req->cancel, MH_E_TIMEOUT);
    respond_direct(req, 504, NULL, NULL, "the handler did not finish within %lld ms",
                   req->target->timeout_ms);
}

static void on_client_gone(evutil_socket_t fd, short what, void *arg)
{
    struct mh_req *req = arg;
    struct evhttp_connection *evcon = req->evcon;

    (void)fd;
    (void)what;
    if (req->responded)
        return;
    atomic_store(&req->cancel, MH_E_CANCELLED);
    if (req->dispatch->access_log && mh_log_enabled(MH_LOG_INFO))
        access_log_line(req, 499, 0); /* nginx's code for "client closed request" */
    mark_responded(req);
    evhttp_connection_free(evcon); /* frees the request too */
}

/* Copies what a handler may read out of ev, which can vanish while a worker runs. */
static void detach(struct mh_req *req)
{
    struct evkeyvalq *hs = evhttp_request_get_input_headers(req->ev);
    struct header **tail = &req->in_headers;

    for (struct evkeyval *kv = hs->tqh_first; kv; kv = kv->next.tqe_next) {
        struct header *h = arena_alloc(&req->arena, sizeof(*h));

        h->name = arena_strndup(&req->arena, kv->key, strlen(kv->key));
        h->value = arena_strndup(&req->arena, kv->value, strlen(kv->value));
        *tail = h;
        tail = &h->next;
    }
    req->in = evbuffer_new();
    if (!req->in)
        abort();
    evbuffer_add_buffer(req->in, evhttp_request_get_input_buffer(req->ev)); /* no copy */
    req->path = arena_strndup(&req->arena, req->path, req->path_len);
    if (req->query_raw)
        req->query_raw = arena_strndup(&req->arena, req->query_raw, strlen(req->query_raw));
    req->detached = true;
}

/* The request now waits for the pool: watch the deadline and the client. */
static void await_async(struct mh_req *req)
{
    struct event_base *base = req->dispatch->base;

    if (!req->async) {
        req->async = true;
        req->dispatch->inflight++;
    }
    req->evcon = evhttp_request_get_connection(req->ev);
    if (req->target && req->target->timeout_ms > 0 && !req->deadline_ev) {
        struct timeval tv = {(time_t)(req->target->timeout_ms / 1000),
                             (suseconds_t)(req->target->timeout_ms % 1000) * 1000};

        req->deadline_ev = evtimer_new(base, on_deadline, req);
        evtimer_add(req->deadline_ev, &tv);
    }
    if (req->evcon && !req->close_ev &&
        (event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE)) {
        evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(req->evcon));

        req->close_ev = event_new(base, fd, EV_CLOSED, on_client_gone, req);
        event_add(req->close_ev, NULL);
    }
}

static void blocking_run(struct mh_task *t)
{
    struct mh_req *req = (struct mh_req *)((char *)t - offsetof(struct mh_req, task));
    const struct mh_route_target *tg = req->target;

    if (atomic_load(&req->cancel)) {
        req->handler_rc = MH_E_CANCELLED;
        return;
    }
    req->handler_rc = tg->handler->fn(req, tg->module->state);
}

static void blocking_complete(struct mh_task *t)
{
    struct mh_req *req = (struct mh_req *)((char *)t - offsetof(struct mh_req, task));

    req->pending--;
    if (!t->ran && !req->responded)
        respond_direct(req, 503, "Retry-After", "1", "the server is stopping");
    else if (req->handler_rc == MH_PENDING)
        req->handler_rc = MH_OK; /* a blocking handler cannot start tasks: no reply is a bug */
    settle(req, req->handler_rc);
}

static void run_blocking(struct mh_req *req)
{
    enum mh_status rc;

    detach(req);
    req->task.home = req->dispatch->mailbox;
    req->task.run = blocking_run;
    req->task.complete = blocking_complete;
    req->pending++;
    rc = mh_pool_submit(req->dispatch->pool, &req->task);
    if (rc != MH_OK) {
        req->pending--;
        if (rc == MH_E_UNAVAILABLE)
            mh_warn("pool", "queue full: refusing %s %s req=%" PRIu64, req->method_name,
                    req->path, req->id);
        respond_direct(req, 503, "Retry-After", "1", "%s",
                       rc == MH_E_UNAVAILABLE ? "all workers are busy and the queue is full"
                                              : "the server is stopping");
        finish_if_done(req);
        return;
    }
    await_async(req);
}

/* --- SDK: tasks --- */

int mh_req_cancelled_impl(const struct mh_req *req)
{
    return atomic_load(&((struct mh_req *)(uintptr_t)req)->cancel) != 0;
}

static void req_task_run(struct mh_task *t)
{
    struct req_task *rt = (struct req_task *)t;

    rt->work(rt->arg);
}

static void req_task_complete(struct mh_task *t)
{
    struct req_task *rt = (struct req_task *)t;
    struct mh_req *req = rt->req;
    int cancel = atomic_load(&req->cancel);
    enum mh_status st = !t->ran ? MH_E_CANCELLED : cancel ? (enum mh_status)cancel : MH_OK;

    rt->done(req, rt->arg, st);
    req->pending--;
    if (!req->responded && !t->ran && !req->replied && req->pending == 0) {
        respond_direct(req, 503, "Retry-After", "1", "the server is stopping");
        finish_if_done(req);
        return;
    }
    settle(req, req->replied ? MH_OK : (req->pending ? MH_PENDING : MH_OK));
}

enum mh_status mh_req_task_impl(struct mh_req *req, mh_task_fn work, mh_req_done_fn done,
                                void *arg)
{
    struct req_task *rt;
    enum mh_status rc;

    if (!work || !done)
        return MH_E_INVAL;
    if (req->replied || req->responded || mh_mailbox_current != req->dispatch->mailbox)
        return MH_E_STATE;
    rt = arena_alloc(&req->arena, sizeof(*rt));
    rt->base.home = req->dispatch->mailbox;
    rt->base.run = req_task_run;
    rt->base.complete = req_task_complete;
    rt->req = req;
    rt->work = work;
    rt->done = done;
    rt->arg = arg;
    rc = mh_pool_submit(req->dispatch->pool, &rt->base);
    if (rc != MH_OK)
        return rc == MH_E_CANCELLED ? MH_E_UNAVAILABLE : rc;
    req->pending++;
    return MH_OK;
}

static void host_task_run(struct mh_task *t)
{
    struct host_task *ht = (struct host_task *)t;

    ht->work(ht->arg);
}

static void host_task_complete(struct mh_task *t)
{
    struct host_task *ht = (struct host_task *)t;

    ht->done(ht->arg, t->ran ? MH_OK : MH_E_CANCELLED);
    if (ht->gen)
        mh_gen_unref(ht->gen);
    free(ht);
}

enum mh_status mh_task_submit_impl(struct mh_host *host, mh_task_fn work, mh_task_done_fn done,
                                   void *arg)
{
    struct mh_pool *pool = mh_pool_global();
    struct host_task *ht;
    enum mh_status rc;

    if (!work || !done)
        return MH_E_INVAL;
    if (!mh_mailbox_current || !pool)
        return MH_E_STATE;
    ht = mh_xcalloc(1, sizeof(*ht));
    ht->gen = host && host->module ? host->module->gen : NULL;
    if (ht->gen)
        mh_gen_ref(ht->gen);
    ht->base.home = mh_mailbox_current;
    ht->base.run = host_task_run;
    ht->base.complete = host_task_complete;
    ht->work = work;
    ht->done = done;
    ht->arg = arg;
    rc = mh_pool_submit(pool, &ht->base);
    if (rc != MH_OK) {
        if (ht->gen)
            mh_gen_unref(ht->gen);
        free(ht);
        return rc == MH_E_CANCELLED ? MH_E_UNAVAILABLE : rc;
    }
    return MH_OK;
}

/* --- Routing --- */

static void route(struct mh_req *req)
{
    const struct mh_gen *gen = req->gen;
    struct mh_route_match m;
    char allow[96];

    if (req->method == MH_METHOD_UNKNOWN) {
        mh_router_match(gen->router, req->method, req->path, req->path_len, &m);
        mh_router_allow_str(m.allow, allow, sizeof(allow));
        if (m.allow)
            mh_resp_header_impl(req, "Allow", allow);
        mh_reply_problem_impl(req, m.allow ? 405 : 501, NULL, "method %s is not supported%s",
                              req->method_name, m.allow ? " on this path" : "");
        return;
    }
    switch (mh_router_match(gen->router, req->method, req->path, req->path_len, &m)) {
    case MH_ROUTE_NOT_FOUND:
        mh_reply_problem_impl(req, 404, NULL, "no route for %s %s", req->method_name, req->path);
        return;
    case MH_ROUTE_BAD_METHOD:
        mh_router_allow_str(m.allow, allow, sizeof(allow));
        mh_resp_header_impl(req, "Allow", allow);
        if (req->method == MH_METHOD_OPTIONS) {
            mh_reply_impl(req, 204, NULL, NULL, 0);
            return;
        }
        mh_reply_problem_impl(req, 405, NULL, "method %s is not allowed on %s (allowed: %s)",
                              req->method_name, req->path, allow);
        return;
    case MH_ROUTE_FOUND:
        break;
    }
    req->nparams = m.nparams;
    for (size_t i = 0; i < m.nparams; i++) {
        req->param_names[i] = m.names[i];
        req->param_values[i] = pct_decode(&req->arena, m.values[i], m.lens[i], false, true);
        if (!req->param_values[i]) {
            mh_reply_problem_impl(req, 400, NULL,
                                  "path segment for parameter '%s' has an invalid percent escape",
                                  m.names[i]);
            return;
        }
    }
    req->target = m.target;
}

void mh_request_dispatch(struct mh_dispatch *d, struct evhttp_request *ev)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    struct mh_req *req = d->spare;
    struct evbuffer *out = NULL;
    const struct mh_route_target *t;
    const char *path;

    if (req) {
        d->spare = (struct mh_req *)(void *)req->ev;
        d->nspare--;
        out = req->out;
    } else {
        req = mh_xmalloc(sizeof(*req));
    }
    memset(req, 0, offsetof(struct mh_req, inline_mem));
    arena_init(&req->arena, req->inline_mem, sizeof(req->inline_mem));
    req->ev = ev;
    req->dispatch = d;
    req->gen = d->gen;
    mh_gen_ref(req->gen);
    req->id = (++d->next_seq << 8) | (d->loop_index & 0xff);
    if (d->access_log)
        clock_gettime(CLOCK_MONOTONIC, &req->start);
    req->method = method_of(ev, &req->method_name);
    path = uri ? evhttp_uri_get_path(uri) : NULL;
    req->path = path && *path ? path : "/";
    req->path_len = strlen(req->path);
    req->query_raw = uri ? evhttp_uri_get_query(uri) : NULL;
    req->out = out ? out : evbuffer_new();
    if (!req->out)
        abort();

    if (evhttp_request_get_command(ev) == EVHTTP_REQ_CONNECT)
        mh_reply_problem_impl(req, 501, NULL, "CONNECT is not supported");
    else if (!path || path[0] != '/')
        mh_reply_problem_impl(req, 400, NULL, "request target must be an absolute path");
    else
        route(req);

    t = req->target;
    if (!t || req->replied) {
        respond(req);
        finish_if_done(req);
        return;
    }
    if (t->ws) {
        enum mh_status rc = MH_OK;

        if (mh_ws_upgrade(d, req, t, &rc) == MH_WS_TAKEN) {
            if (d->access_log && mh_log_enabled(MH_LOG_INFO))
                access_log_line(req, 101, 0);
            req->responded = true; /* the connection is the WebSocket's now */
            req->ev = NULL;
            finish_if_done(req);
            return;
        }
        settle(req, rc);
        return;
    }
    if ((t->handler->flags & MH_HANDLER_BLOCKING) && d->pool && !t->conf->run_inline) {
        run_blocking(req);
        return;
    }
    req->handler_rc = t->handler->fn(req, t->module->state);
    if (req->handler_rc == MH_PENDING && req->pending > 0 && !req->replied)
        await_async(req);
    settle(req, req->handler_rc);
}
