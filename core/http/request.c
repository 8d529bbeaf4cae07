/*
 * One HTTP exchange: the request object's life (spare objects per loop, reading the head the
 * scanner validated, detaching from the connection's buffer) and the SDK's request calls.
 * Replies are in reply.c, handlers on the pool and tasks in exec.c.
 */
#include "http/request.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <json-c/json.h>

#include "base/json.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mem.h"
#include "conf/config.h"
#include "http/req.h"
#include "http/uri.h"
#include "mod/gen.h"
#include "mod/loader.h"

#define MAX_SPARES 256 /* per loop: requests in flight at once rarely exceed this */

/* --- Request ids --- */

static uint32_t rid_salt; /* per process, so ids of instances behind one balancer differ */

void mh_request_ids_init(void)
{
    struct timespec ts;

    if (getentropy(&rid_salt, sizeof(rid_salt)) != 0) {
        clock_gettime(CLOCK_REALTIME, &ts);
        rid_salt = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid();
    }
}

/* A client's id is taken when it is 1..64 bytes of letters, digits and - _ . : + / = @. */
static bool sane_request_id(const char *v)
{
    size_t n = 0;

    for (; *v; v++, n++) {
        unsigned char ch = (unsigned char)*v;

        if (n >= MH_REQ_ID_MAX || !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                                    (ch >= 'A' && ch <= 'Z') || strchr("-_.:+/=@", ch)))
            return false;
    }
    return n > 0;
}

const char *mh_req_rid(const struct mh_req *req)
{
    return req->rid;
}

static void make_rid(struct mh_req *req)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t v = req->id;

    /* 8 hex digits of the process's salt, 12 of the request's number. */
    for (int i = 7; i >= 0; i--)
        req->rid[7 - i] = hex[(rid_salt >> (i * 4)) & 0xf];
    for (int i = 19; i >= 8; i--, v >>= 4)
        req->rid[i] = hex[v & 0xf];
    req->rid[20] = '\0';
}

const char *mh_req_request_id_impl(const struct mh_req *req)
{
    return req->rid;
}

/* --- Life --- */

struct mh_req *mh_req_new(struct mh_loop *loop, struct mh_conn *conn)
{
    struct mh_req *req = loop->spare;
    struct mh_buf out = {0};

    if (req) {
        loop->spare = req->next_spare;
        loop->nspare--;
        out = req->out;
    } else {
        req = mh_xmalloc(sizeof(*req));
    }
    memset(req, 0, offsetof(struct mh_req, inline_mem));
    mh_arena_init(&req->arena, req->inline_mem, sizeof(req->inline_mem));
    out.len = 0;
    req->out = out;
    req->loop = loop;
    req->conn = conn;
    req->gen = loop->gen;
    mh_gen_ref(req->gen);
    req->id = (++loop->next_seq << 8) | (loop->index & 0xff);
    make_rid(req); /* now, not on first use: a worker and the loop may both ask */
    clock_gettime(CLOCK_MONOTONIC, &req->start);
    return req;
}

void mh_request_spares_free(struct mh_loop *loop)
{
    while (loop->spare) {
        struct mh_req *r = loop->spare;

        loop->spare = r->next_spare;
        mh_buf_cleanup(&r->out);
        free(r);
    }
    loop->nspare = 0;
}

static void req_free(struct mh_req *req)
{
    struct mh_loop *loop = req->loop;

    mh_req_stop_watchers(req);
    if (req->gen)
        mh_gen_unref(req->gen);
    while (req->defers) {
        struct mh_defer *df = req->defers;

        req->defers = df->next;
        df->fn(df->arg);
    }
    json_object_put(req->json);
    mh_arena_cleanup(&req->arena);
    /* Large enough to miss malloc's fast paths: keep it for the loop's next request. */
    if (loop->nspare < MAX_SPARES && !loop->stopped) {
        if (req->out.cap > 65536)
            mh_buf_cleanup(&req->out); /* keep no large body buffer around */
        req->next_spare = loop->spare;
        loop->spare = req;
        loop->nspare++;
        return;
    }
    mh_buf_cleanup(&req->out);
    free(req);
}

void mh_req_finish_if_done(struct mh_req *req)
{
    if (req->responded && req->pending == 0)
        req_free(req);
}

/* --- Reading the head --- */

static const struct {
    const char *name;
    size_t len;
    enum mh_method method;
} methods[] = {
    {"GET", 3, MH_METHOD_GET},         {"POST", 4, MH_METHOD_POST},
    {"PUT", 3, MH_METHOD_PUT},         {"DELETE", 6, MH_METHOD_DELETE},
    {"HEAD", 4, MH_METHOD_HEAD},       {"PATCH", 5, MH_METHOD_PATCH},
    {"OPTIONS", 7, MH_METHOD_OPTIONS}, {"TRACE", 5, MH_METHOD_UNKNOWN},
    {"CONNECT", 7, MH_METHOD_UNKNOWN},
};

/* Whether the comma-separated list @p v holds @p tok (case-insensitive). */
bool mh_http_has_token(const char *v, const char *tok)
{
    size_t n = strlen(tok);

    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        if (strncasecmp(v, tok, n) == 0 &&
            (v[n] == '\0' || v[n] == ',' || v[n] == ' ' || v[n] == '\t' || v[n] == ';'))
            return true;
        v = strchr(v, ',');
    }
    return false;
}

/* The end of the line starting at @p p (its LF, or its CR before the LF). */
static char *line_end(char *p, char *end, char **next)
{
    char *nl = memchr(p, '\n', (size_t)(end - p));

    if (!nl) {
        *next = end;
        return end;
    }
    *next = nl + 1;
    return nl > p && nl[-1] == '\r' ? nl - 1 : nl;
}

bool mh_req_read_head(struct mh_req *req, char *head, size_t len)
{
    char *end = head + len, *p = head, *next, *eol, *sp, *target;
    size_t nlines = 0;
    bool ok;

    req->raw_base = head;
    /* The request line: METHOD SP TARGET SP HTTP/1.x */
    eol = line_end(p, end, &next);
    sp = memchr(p, ' ', (size_t)(eol - p));
    req->method = MH_METHOD_UNKNOWN;
    req->method_name = "?";
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if ((size_t)(sp - p) == methods[i].len && memcmp(p, methods[i].name, methods[i].len) == 0) {
            req->method = methods[i].method;
            req->method_name = methods[i].name;
            break;
        }
    }
    req->is_head = req->method == MH_METHOD_HEAD;
    req->is_connect = strcmp(req->method_name, "CONNECT") == 0;
    target = sp + 1;
    sp = memchr(target, ' ', (size_t)(eol - target));
    *sp = '\0';
    req->http11 = eol[-1] == '1';
    /* Header fields: one per line up to the empty line. */
    for (char *q = next; (q = memchr(q, '\n', (size_t)(end - q))); q++)
        nlines++;
    req->fields = nlines ? mh_arena_alloc(&req->arena, nlines * sizeof(*req->fields)) : NULL;
    /* Every field line ends with one of the newlines counted: nfields never passes nlines. */
    for (p = next; p < end && req->nfields < nlines; p = next) {
        char *colon, *v, *ve;

        eol = line_end(p, end, &next);
        if (eol == p)
            break;
        colon = memchr(p, ':', (size_t)(eol - p));
        *colon = '\0';
        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
            ;
        for (ve = eol; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
            ;
        *ve = '\0';
        req->fields[req->nfields].name = p;
        req->fields[req->nfields].value = v;
        req->nfields++;
        if (colon - p == 12 && strcasecmp(p, "X-Request-Id") == 0 && sane_request_id(v))
            memcpy(req->rid, v, (size_t)(ve - v) + 1);
    }
    ok = mh_target_split(target, &req->path, &req->path_len, &req->query_raw);
    if (!ok) {
        req->path = target;
        req->path_len = strlen(target);
    }
    {
        const char *conn = mh_req_header_impl(req, "Connection");

        req->keep_alive = req->http11 ? !(conn && mh_http_has_token(conn, "close"))
                                      : (conn && mh_http_has_token(conn, "keep-alive"));
    }
    return ok;
}

/* Rebases a pointer into the raw bytes onto their copy. */
static const char *rebase(const char *p, const char *from, size_t len, const char *to)
{
    if (p >= from && p < from + len)
        return to + (p - from);
    return p;
}

void mh_req_detach(struct mh_req *req)
{
    const char *from = req->raw_base;
    size_t len = req->raw_len;
    char *copy;

    if (req->detached)
        return;
    req->detached = true;
    if (!from)
        return;
    copy = mh_arena_alloc(&req->arena, len + 1);
    memcpy(copy, from, len);
    req->path = rebase(req->path, from, len, copy);
    req->query_raw = req->query_raw ? rebase(req->query_raw, from, len, copy) : NULL;
    for (size_t i = 0; i < req->nfields; i++) {
        req->fields[i].name = rebase(req->fields[i].name, from, len, copy);
        req->fields[i].value = rebase(req->fields[i].value, from, len, copy);
    }
    if (req->body)
        req->body = (const unsigned char *)rebase((const char *)req->body, from, len, copy);
    req->raw_base = copy;
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

size_t mh_req_param_count(const struct mh_req *req)
{
    return req->nparams;
}

void mh_req_param_at(const struct mh_req *req, size_t i, const char **name, const char **value)
{
    *name = req->param_names[i];
    *value = req->param_values[i];
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
    req->query = mh_arena_alloc(&req->arena, cap * sizeof(*req->query));
    while (*q) {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);
        const char *eq = memchr(q, '=', len);

        if (len > 0) {
            size_t nlen = eq ? (size_t)(eq - q) : len;
            struct mh_qpair *pair = &req->query[req->nquery++];

            pair->name = mh_pct_decode(&req->arena, q, nlen, true, false);
            pair->value = eq ? mh_pct_decode(&req->arena, eq + 1, len - nlen - 1, true, false) : "";
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
    for (size_t i = 0; i < req->nfields; i++) {
        if (strcasecmp(req->fields[i].name, name) == 0)
            return req->fields[i].value;
    }
    return NULL;
}

enum mh_status mh_req_headers_impl(const struct mh_req *req, mh_header_fn fn, void *arg)
{
    for (size_t i = 0; i < req->nfields; i++) {
        if (fn(req->fields[i].name, req->fields[i].value, arg))
            break;
    }
    return MH_OK;
}

const void *mh_req_body_impl(struct mh_req *req, size_t *len)
{
    *len = req->body_len;
    return req->body_len ? req->body : NULL;
}

static const char *arena_printf(struct mh_arena *a, const char *fmt, ...) MH_PRINTF(2, 3);
static const char *arena_printf(struct mh_arena *a, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return "";
    return mh_arena_strndup(a, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

enum mh_status mh_req_json_impl(struct mh_req *req, struct json_object **out, const char **detail)
{
    /* The request's own generation, not the loop's: a blocking handler parses on a pool
     * thread while the loop may switch generations (and limits) under it. */
    const struct mh_limits *lim = &req->gen->config->server.limits;
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
        if (detail)
            *detail = arena_printf(&req->arena, "JSON body of %zu bytes exceeds the limit of %lld",
                                   len, lim->max_json_bytes);
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
            if (detail)
                *detail = arena_printf(&req->arena, "invalid JSON: %s at offset %zu", why, at);
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
    return mh_arena_alloc(&req->arena, size);
}

enum mh_status mh_req_defer_impl(struct mh_req *req, void (*fn)(void *), void *arg)
{
    struct mh_defer *d = mh_arena_alloc(&req->arena, sizeof(*d));

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

void mh_req_log_impl(const struct mh_req *req, enum mh_log_level level, const char *fmt, ...)
{
    char msg[1024];
    const char *name = req->target ? req->target->module->name : "core";
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mh_log_write(level, name, "%s req=%s", msg, req->rid);
}
