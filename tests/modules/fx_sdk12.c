/*
 * fx_sdk12: calls every SDK 1.2 addition that needs a request or a host, so that the core's
 * implementations are tested through the real dispatcher (test_host). Each handler answers
 * what the calls returned.
 */
#include <stdarg.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "modhost/sdk.h"

struct fx_state {
    struct mh_host *host;
};

static enum mh_status fx_errorf(struct mh_host *host, const char *fmt, ...) MH_PRINTF(2, 3);
static enum mh_status fx_errorf(struct mh_host *host, const char *fmt, ...)
{
    va_list ap;
    enum mh_status rc;

    va_start(ap, fmt);
    rc = mh_host_errorv(host, fmt, ap);
    va_end(ap);
    return rc;
}

static enum mh_status fx_init(struct mh_host *host, const struct mh_conf *settings, void **state)
{
    struct fx_state *st;
    int fail = 0;

    if (mh_conf_bool(settings, "fail", &fail) == MH_OK && fail) {
        fx_errorf(host, "failing as asked (%d)", 42);
        return MH_E_INVAL;
    }
    st = calloc(1, sizeof(*st));
    if (!st)
        return MH_E_NOMEM;
    st->host = host;
    *state = st;
    return MH_OK;
}

static void fx_fini(struct mh_host *host, void *state)
{
    (void)host;
    free(state);
}

/* A module's own wrapper around the problem call, as the va_list variants allow. */
static enum mh_status fx_problem(struct mh_req *req, int status, const char *fmt, ...)
    MH_PRINTF(3, 4);
static enum mh_status fx_problem(struct mh_req *req, int status, const char *fmt, ...)
{
    va_list ap;
    enum mh_status rc;

    va_start(ap, fmt);
    mh_req_logv(req, MH_LOG_INFO, fmt, ap);
    va_end(ap);
    va_start(ap, fmt);
    rc = mh_reply_problemv(req, status, "https://example.com/fx", fmt, ap);
    va_end(ap);
    return rc;
}

static enum mh_status fx_problemv(struct mh_req *req, void *state)
{
    (void)state;
    return fx_problem(req, 422, "n=%d s=%s", 7, "x");
}

static enum mh_status fx_json(struct mh_req *req, void *state)
{
    struct json_object *doc = NULL;
    enum mh_status rc = mh_req_json_body(req, &doc);

    (void)state;
    if (rc != MH_OK)
        return rc; /* already answered */
    return mh_reply_json(req, 200, json_object_get(doc));
}

/* Parses twice: the second call finds the reply made and must refuse. */
static enum mh_status fx_json_twice(struct mh_req *req, void *state)
{
    struct json_object *doc = NULL;
    enum mh_status first = mh_req_json_body(req, &doc);
    enum mh_status second = mh_req_json_body(req, &doc);
    struct json_object *o = json_object_new_object();

    (void)state;
    json_object_object_add(o, "first", json_object_new_string(mh_strerror(first)));
    json_object_object_add(o, "second", json_object_new_string(mh_strerror(second)));
    mh_req_log(req, MH_LOG_DEBUG, "second=%d", (int)second);
    /* The first call replied (bad JSON); this reply is refused (MH_E_STATE) and, being a
     * second reply, is a misuse: the server answers 500 and logs it. */
    return mh_reply_json(req, 200, o) == MH_E_STATE ? MH_OK : MH_E_IO;
}

static enum mh_status fx_facts(struct mh_req *req, void *state)
{
    const struct fx_state *st = state;
    struct json_object *o = json_object_new_object();
    uint64_t t1 = mh_clock_ns(), t2 = mh_clock_ns();

    json_object_object_add(o, "cancelled", json_object_new_boolean(mh_req_is_cancelled(req)));
    json_object_object_add(o, "utf8_ok", json_object_new_boolean(mh_is_utf8("caf\xc3\xa9", 5)));
    json_object_object_add(o, "utf8_bad", json_object_new_boolean(mh_is_utf8("\xc0\xaf", 2)));
    json_object_object_add(o, "utf8_empty", json_object_new_boolean(mh_is_utf8(NULL, 0)));
    json_object_object_add(o, "clock_monotonic", json_object_new_boolean(t1 > 0 && t2 >= t1));
    json_object_object_add(o, "error_enabled",
                           json_object_new_boolean(mh_log_is_enabled(MH_LOG_ERROR)));
    json_object_object_add(o, "name", json_object_new_string(mh_host_name(st->host)));
    return mh_reply_json(req, 200, o);
}

static const struct mh_handler_def fx_handlers[] = {
    {"problemv", fx_problemv, 0}, {"json", fx_json, 0}, {"json_twice", fx_json_twice, 0},
    {"facts", fx_facts, 0},       {NULL, NULL, 0},
};

MH_MODULE(.name = "fx_sdk12", .version = "1.2.0", .init = fx_init, .fini = fx_fini,
          .handlers = fx_handlers)
