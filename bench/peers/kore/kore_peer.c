/*
 * The Kore peer: an app (a shared object) for Kore 4.2.3 built without TLS, one worker.
 *   GET  /hello/NAME  -> 200 {"message":"Hello, NAME!"}
 *   POST /echo/json   -> 200 the body parsed by Kore's JSON parser and serialized again;
 *                        400 problem+json if it does not parse
 * Routes and the port are in kore.conf.in (bench/run fills it in).
 *
 * Kore 4.2.3 does not pass regex capture groups to a handler, so the name is the rest of the
 * request path. Kore's own kore_json_item_tobuf neither escapes strings nor keeps the
 * precision of numbers (it prints doubles with %f), so the document is written here with
 * escaping and the shortest decimal that reads back as the same double.
 */
#include <kore/kore.h>
#include <kore/http.h>

#include <float.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hello(struct http_request *);
int echo_json(struct http_request *);

static void put_string(struct kore_buf *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *run = p;

    kore_buf_append(out, "\"", 1);
    for (; *p; p++) {
        unsigned char c = *p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (p > run)
            kore_buf_append(out, run, (size_t)(p - run));
        run = p + 1;
        switch (c) {
        case '"': kore_buf_append(out, "\\\"", 2); break;
        case '\\': kore_buf_append(out, "\\\\", 2); break;
        case '\b': kore_buf_append(out, "\\b", 2); break;
        case '\f': kore_buf_append(out, "\\f", 2); break;
        case '\n': kore_buf_append(out, "\\n", 2); break;
        case '\r': kore_buf_append(out, "\\r", 2); break;
        case '\t': kore_buf_append(out, "\\t", 2); break;
        default: {
            char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            kore_buf_append(out, u, sizeof u);
        }
        }
    }
    if (p > run)
        kore_buf_append(out, run, (size_t)(p - run));
    kore_buf_append(out, "\"", 1);
}

static void put_double(struct kore_buf *out, double d)
{
    char tmp[40];
    int prec;

    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    kore_buf_append(out, tmp, strlen(tmp));
}

static void put_item(struct kore_buf *out, struct kore_json_item *item)
{
    struct kore_json_item *child;
    char tmp[32];
    int n;

    if (item->name) {
        put_string(out, item->name);
        kore_buf_append(out, ":", 1);
    }
    switch (item->type) {
    case KORE_JSON_TYPE_OBJECT:
    case KORE_JSON_TYPE_ARRAY:
        kore_buf_append(out, item->type == KORE_JSON_TYPE_OBJECT ? "{" : "[", 1);
        TAILQ_FOREACH(child, &item->data.items, list) {
            if (child != TAILQ_FIRST(&item->data.items))
                kore_buf_append(out, ",", 1);
            put_item(out, child);
        }
        kore_buf_append(out, item->type == KORE_JSON_TYPE_OBJECT ? "}" : "]", 1);
        break;
    case KORE_JSON_TYPE_STRING:
        put_string(out, item->data.string);
        break;
    case KORE_JSON_TYPE_NUMBER:
        put_double(out, item->data.number);
        break;
    case KORE_JSON_TYPE_INTEGER:
        n = snprintf(tmp, sizeof tmp, "%" PRId64, item->data.integer);
        kore_buf_append(out, tmp, (size_t)n);
        break;
    case KORE_JSON_TYPE_INTEGER_U64:
        n = snprintf(tmp, sizeof tmp, "%" PRIu64, item->data.u64);
        kore_buf_append(out, tmp, (size_t)n);
        break;
    case KORE_JSON_TYPE_LITERAL:
        if (item->data.literal == KORE_JSON_TRUE)
            kore_buf_append(out, "true", 4);
        else if (item->data.literal == KORE_JSON_FALSE)
            kore_buf_append(out, "false", 5);
        else
            kore_buf_append(out, "null", 4);
        break;
    }
}

static void reply(struct http_request *req, int code, const char *type, struct kore_buf *body)
{
    http_response_header(req, "content-type", type);
    http_response(req, code, body->data, body->offset);
}

static void reply_problem(struct http_request *req, int code, const char *title, const char *detail)
{
    struct kore_buf out;
    char status[32];

    kore_buf_init(&out, 128);
    kore_buf_appendf(&out, "{\"type\":\"about:blank\",\"title\":");
    put_string(&out, title);
    snprintf(status, sizeof status, ",\"status\":%d,\"detail\":", code);
    kore_buf_append(&out, status, strlen(status));
    put_string(&out, detail);
    kore_buf_append(&out, "}", 1);
    reply(req, code, "application/problem+json", &out);
    kore_buf_cleanup(&out);
}

int hello(struct http_request *req)
{
    struct kore_buf out;
    const char *name = req->path + sizeof("/hello/") - 1; /* the route's regex ensures the prefix */
    char msg[512];

    snprintf(msg, sizeof msg, "Hello, %s!", name);
    kore_buf_init(&out, 64);
    kore_buf_append(&out, "{\"message\":", 11);
    put_string(&out, msg);
    kore_buf_append(&out, "}", 1);
    reply(req, 200, "application/json", &out);
    kore_buf_cleanup(&out);
    return KORE_RESULT_OK;
}

int echo_json(struct http_request *req)
{
    struct kore_json json;
    struct kore_buf out;
    const void *data = "";
    size_t len = 0;

    if (req->http_body != NULL) {
        /* the whole body is in memory (no disk offload); offset is a read cursor */
        data = req->http_body->data;
        len = (size_t)req->content_length;
    }
    kore_json_init(&json, data, len);
    if (!kore_json_parse(&json)) {
        reply_problem(req, 400, "Bad Request", kore_json_strerror());
        kore_json_cleanup(&json);
        return KORE_RESULT_OK;
    }
    kore_buf_init(&out, len + 64);
    put_item(&out, json.root);
    reply(req, 200, "application/json", &out);
    kore_buf_cleanup(&out);
    kore_json_cleanup(&json);
    return KORE_RESULT_OK;
}
