/*
 * fx_req: handlers that report what the SDK request and response calls return, for the
 * dispatcher tests in tests/unit/test_request.c. Results that exist only after the reply
 * (late calls, deferred callbacks) go to exported variables the test reads through dlsym.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "modhost/sdk.h"

/* After-the-reply results, read by the test. */
MH_EXPORT extern int fx_req_late_header;  /* mh_resp_header after the reply */
MH_EXPORT extern int fx_req_second_reply; /* a second mh_reply */
MH_EXPORT extern char fx_req_defer_order[8];
MH_EXPORT extern char fx_req_codes[1024]; /* the JSON of the return codes of /headers */
MH_EXPORT char fx_req_codes[1024];
MH_EXPORT int fx_req_late_header;
MH_EXPORT int fx_req_second_reply;
MH_EXPORT char fx_req_defer_order[8];

static enum mh_status reply_text(struct mh_req *req, int status, const char *text)
{
    return mh_reply(req, status, "text/plain", text, strlen(text));
}

/* The path parameter "id", decoded. */
static enum mh_status fx_param(struct mh_req *req, void *state)
{
    const char *id = mh_req_param(req, "id");

    (void)state;
    return reply_text(req, 200, id ? id : "(null)");
}

/* The query parameters a..e as JSON (null when absent). */
static enum mh_status fx_query(struct mh_req *req, void *state)
{
    static const char *const names[] = {"a", "b", "c", "d", "e", "missing"};
    struct json_object *o = json_object_new_object();

    (void)state;
    for (size_t i = 0; o && i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = mh_req_query(req, names[i]);

        json_object_object_add(o, names[i], v ? json_object_new_string(v) : NULL);
    }
    return o ? mh_reply_json(req, 200, o) : MH_E_NOMEM;
}

/* The body parsed by mh_req_json, or a problem with the status for its error. */
static enum mh_status fx_json(struct mh_req *req, void *state)
{
    struct json_object *doc = NULL, *again = NULL;
    const char *detail = NULL;
    enum mh_status rc = mh_req_json(req, &doc, &detail);

    (void)state;
    if (rc != MH_OK)
        return mh_reply_problem(req, rc == MH_E_LIMIT ? 413 : 400, NULL, "%s",
                                detail ? detail : "(no detail)");
    /* A second call hands back the same document. */
    if (mh_req_json(req, &again, NULL) != MH_OK || again != doc)
        return mh_reply_problem(req, 500, NULL, "second mh_req_json differs");
    return mh_reply_json(req, 200, json_object_get(doc));
}

/* What mh_resp_header and mh_reply return for bad arguments, then the same after replying. */
static enum mh_status fx_headers(struct mh_req *req, void *state)
{
    struct json_object *o = json_object_new_object();
    const char *value = mh_req_query(req, "v");
    enum mh_status rc;

    (void)state;
    if (!o)
        return MH_E_NOMEM;
    json_object_object_add(o, "ok", json_object_new_int(mh_resp_header(req, "X-Ok", "v1")));
    json_object_object_add(o, "ok2", json_object_new_int(mh_resp_header(req, "X-Ok", "v2")));
    json_object_object_add(o, "tab", json_object_new_int(mh_resp_header(req, "X-Tab", "a\tb")));
    if (mh_req_query(req, "clean")) { /* only good calls: the reply goes out as recorded */
        if (value)
            mh_resp_header(req, "X-Query", value);
        return mh_reply_json(req, 200, o);
    }
    json_object_object_add(o, "space", json_object_new_int(mh_resp_header(req, "Bad Name", "v")));
    json_object_object_add(o, "colon", json_object_new_int(mh_resp_header(req, "X:Y", "v")));
    json_object_object_add(o, "empty", json_object_new_int(mh_resp_header(req, "", "v")));
    json_object_object_add(o, "crlf",
                           json_object_new_int(mh_resp_header(req, "X-Inject", "a\r\nX-Evil: 1")));
    json_object_object_add(o, "del", json_object_new_int(mh_resp_header(req, "X-Del", "a\x7f")));
    json_object_object_add(o, "cl",
                           json_object_new_int(mh_resp_header(req, "content-length", "1")));
    json_object_object_add(o, "te",
                           json_object_new_int(mh_resp_header(req, "Transfer-Encoding", "x")));
    json_object_object_add(o, "conn", json_object_new_int(mh_resp_header(req, "Connection", "x")));
    json_object_object_add(o, "query",
                           json_object_new_int(value ? mh_resp_header(req, "X-Query", value) : 99));
    json_object_object_add(o, "status199", json_object_new_int(mh_reply(req, 199, NULL, NULL, 0)));
    json_object_object_add(o, "status600", json_object_new_int(mh_reply(req, 600, NULL, NULL, 0)));
    json_object_object_add(o, "ctype_crlf",
                           json_object_new_int(mh_reply(req, 200, "text/plain\r\nX: 1", "x", 1)));
    snprintf(fx_req_codes, sizeof(fx_req_codes), "%s", json_object_to_json_string(o));
    rc = mh_reply_json(req, 200, o);
    fx_req_late_header = mh_resp_header(req, "X-Late", "v");
    fx_req_second_reply = reply_text(req, 200, "again");
    return rc;
}

/* Returns the status given as ?rc=N without replying. */
static enum mh_status fx_error(struct mh_req *req, void *state)
{
    const char *rc = mh_req_query(req, "rc");

    (void)state;
    return rc ? (enum mh_status)strtol(rc, NULL, 10) : MH_E_INVAL; /* the tests pass numbers */
}

static enum mh_status fx_noreply(struct mh_req *req, void *state)
{
    (void)req;
    (void)state;
    return MH_OK;
}

static void record_defer(void *arg)
{
    size_t n = strlen(fx_req_defer_order);

    if (n + 1 < sizeof(fx_req_defer_order))
        fx_req_defer_order[n] = *(const char *)arg;
}

/* Many request allocations across the arena's chunks, and three deferred callbacks. */
static enum mh_status fx_alloc(struct mh_req *req, void *state)
{
    static char marks[] = "123";
    unsigned char *blocks[64];
    size_t sizes[64];

    (void)state;
    memset(fx_req_defer_order, 0, sizeof(fx_req_defer_order));
    for (size_t i = 0; i < 64; i++) {
        sizes[i] = i * 97 % 5000 + 1;
        blocks[i] = mh_req_alloc(req, sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++) {
            if (blocks[i][j] != 0)
                return reply_text(req, 500, "not zeroed");
        }
        if ((uintptr_t)blocks[i] % alignof(max_align_t) != 0)
            return reply_text(req, 500, "misaligned");
        memset(blocks[i], (int)i, sizes[i]);
    }
    for (size_t i = 0; i < 64; i++) {
        for (size_t j = 0; j < sizes[i]; j++) {
            if (blocks[i][j] != (unsigned char)i)
                return reply_text(req, 500, "overlapping blocks");
        }
    }
    for (size_t i = 0; i < 3; i++)
        mh_req_defer(req, record_defer, &marks[i]);
    return reply_text(req, 200, "ok");
}

/* The method and request id as the handler sees them, and the body with its Content-Type. */
static enum mh_status fx_echo(struct mh_req *req, void *state)
{
    size_t len;
    const void *body = mh_req_body(req, &len);
    const char *ctype = mh_req_header(req, "content-type");
    char id[24];

    (void)state;
    snprintf(id, sizeof(id), "%llu", (unsigned long long)mh_req_id(req));
    mh_resp_header(req, "X-Method", mh_req_method(req));
    mh_resp_header(req, "X-Id", id);
    return mh_reply(req, 200, ctype ? ctype : "application/octet-stream", body, len);
}

/* 204 with a body and a type: the core must send neither. */
static enum mh_status fx_nocontent(struct mh_req *req, void *state)
{
    (void)state;
    return mh_reply(req, 204, "text/plain", "x", 1);
}

static const struct mh_handler_def fx_handlers[] = {
    {"param", fx_param, 0},         {"query", fx_query, 0},
    {"json", fx_json, 0},           {"headers", fx_headers, 0},
    {"error", fx_error, 0},         {"noreply", fx_noreply, 0},
    {"alloc", fx_alloc, 0},         {"echo", fx_echo, 0},
    {"nocontent", fx_nocontent, 0}, {NULL, NULL, 0},
};

MH_MODULE(.name = "fx_req", .version = "0.0.1", .handlers = fx_handlers)
