/*
 * abi10: a module built only against the frozen SDK 1.0 header (tests/abi/sdk-1.0.h), which
 * calls every member of the 1.0 function table. test_abi loads it into the current core and
 * serves requests with it: a 1.x core that breaks a 1.0 module fails there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "modhost/sdk.h"

#if MH_ABI_MAJOR != 1 || MH_ABI_MINOR != 0
#error "abi10 must be compiled against the frozen SDK 1.0 header, not the current one"
#endif

struct abi_state {
    const char *greeting; /* borrowed from the settings until fini */
    long long n;
    int flag;
    double ratio;
};

/* Read by test_abi through dlsym: deferred callbacks that ran, and fini calls. */
MH_EXPORT extern int abi10_defers_run;
MH_EXPORT extern int abi10_finis;
MH_EXPORT int abi10_defers_run;
MH_EXPORT int abi10_finis;

static enum mh_status abi_init(struct mh_host *host, const struct mh_conf *settings, void **state)
{
    struct abi_state *st = calloc(1, sizeof(*st));

    if (!st)
        return MH_E_NOMEM;
    st->greeting = "hello";
    mh_conf_string(settings, "greeting", &st->greeting);
    mh_conf_int(settings, "n", &st->n);
    mh_conf_bool(settings, "flag", &st->flag);
    mh_conf_float(settings, "ratio", &st->ratio);
    if (st->n < 0) {
        mh_host_error(host, "n must not be negative (%s)", mh_strerror(MH_E_INVAL));
        free(st);
        return MH_E_INVAL;
    }
    mh_log(host, MH_LOG_DEBUG, "greeting=%s n=%lld", st->greeting, st->n);
    *state = st;
    return MH_OK;
}

static void abi_fini(struct mh_host *host, void *state)
{
    mh_log(host, MH_LOG_DEBUG, "fini");
    free(state);
    abi10_finis++;
}

static void count_defer(void *arg)
{
    int *runs = arg;

    (*runs)++;
}

static int count_header(const char *name, const char *value, void *arg)
{
    size_t *n = arg;

    (void)value;
    if (strncmp(name, "X-", 2) == 0)
        (*n)++;
    return 0;
}

/* Answers with everything the request calls return, as JSON. */
static enum mh_status abi_echo(struct mh_req *req, void *state)
{
    const struct abi_state *st = state;
    const char *name = mh_req_param(req, "name");
    const char *q = mh_req_query(req, "q");
    const char *hdr = mh_req_header(req, "X-Abi-Test");
    struct json_object *o = json_object_new_object();
    struct json_object *doc = NULL;
    const char *detail = NULL;
    size_t nx = 0, len = 0;
    const void *body = mh_req_body(req, &len);
    char *copy;

    if (!o)
        return MH_E_NOMEM;
    mh_req_headers(req, count_header, &nx);
    copy = mh_req_alloc(req, strlen(name ? name : "") + 2);
    (void)snprintf(copy, strlen(name ? name : "") + 2, "%s!", name ? name : "");
    mh_req_defer(req, count_defer, &abi10_defers_run);
    mh_req_logf(req, MH_LOG_DEBUG, "echo %s", mh_req_path(req));

    json_object_object_add(o, "greeting", json_object_new_string(st->greeting));
    json_object_object_add(o, "n", json_object_new_int64(st->n));
    json_object_object_add(o, "flag", json_object_new_boolean(st->flag));
    json_object_object_add(o, "ratio", json_object_new_double(st->ratio));
    json_object_object_add(o, "method", json_object_new_string(mh_req_method(req)));
    json_object_object_add(o, "path", json_object_new_string(mh_req_path(req)));
    json_object_object_add(o, "name", name ? json_object_new_string(name) : NULL);
    json_object_object_add(o, "alloc", json_object_new_string(copy));
    json_object_object_add(o, "q", q ? json_object_new_string(q) : NULL);
    json_object_object_add(o, "header", hdr ? json_object_new_string(hdr) : NULL);
    json_object_object_add(o, "x_headers", json_object_new_int64((int64_t)nx));
    json_object_object_add(o, "body_len", json_object_new_int64((int64_t)len));
    json_object_object_add(o, "id_nonzero", json_object_new_boolean(mh_req_id(req) != 0));
    if (len > 0) {
        enum mh_status rc = mh_req_json(req, &doc, &detail);

        if (rc == MH_OK)
            json_object_object_add(o, "json", json_object_get(doc));
        else
            json_object_object_add(o, "json_error", json_object_new_string(mh_strerror(rc)));
    } else {
        json_object_object_add(o, "raw_body", json_object_new_boolean(body == NULL));
    }
    mh_resp_header(req, "X-Abi", "1.0");
    return mh_reply_json(req, 200, o); /* o belongs to the core now */
}

static enum mh_status abi_raw(struct mh_req *req, void *state)
{
    (void)state;
    return mh_reply(req, 201, "text/plain", "raw", 3);
}

static enum mh_status abi_problem(struct mh_req *req, void *state)
{
    (void)state;
    return mh_reply_problem(req, 409, "https://example.com/abi10", "detail %d", 7);
}

static enum mh_status abi_fail(struct mh_req *req, void *state)
{
    (void)req;
    (void)state;
    return MH_E_NOTFOUND; /* no reply: the core answers 404 */
}

static const struct mh_handler_def abi_handlers[] = {
    {"echo", abi_echo, 0}, {"raw", abi_raw, 0}, {"problem", abi_problem, 0},
    {"fail", abi_fail, 0}, {NULL, NULL, 0},
};

static const struct mh_setting_def abi_settings[] = {
    {"greeting", MH_SETTING_STRING, NULL},
    {"n", MH_SETTING_INT, "zero or more"},
    {"flag", MH_SETTING_BOOL, NULL},
    {"ratio", MH_SETTING_FLOAT, NULL},
    {NULL, 0, NULL},
};

MH_MODULE(.name = "abi10", .version = "1.0.0", .init = abi_init, .fini = abi_fini,
          .handlers = abi_handlers, .settings = abi_settings)
