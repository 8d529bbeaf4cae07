/*
 * abi11: a module built only against the frozen SDK 1.1 header (tests/abi/sdk-1.1.h) that uses
 * the 1.1 additions a released module may rely on: a blocking handler, stores, settings paths,
 * cancellation and WebSocket hooks. test_abi11 loads it into the current core and serves with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "modhost/sdk.h"

#if MH_ABI_MAJOR != 1 || MH_ABI_MINOR != 1
#error "abi11 must be compiled against the frozen SDK 1.1 header, not the current one"
#endif

struct abi_state {
    struct mh_store *store;
    const char *data_path; /* borrowed from the settings until fini */
};

static enum mh_status abi_init(struct mh_host *host, const struct mh_conf *settings, void **state)
{
    struct abi_state *st = calloc(1, sizeof(*st));

    if (!st)
        return MH_E_NOMEM;
    st->store = mh_store_find(host, NULL);
    if (!st->store) {
        mh_host_error(host, "abi11 needs a store");
        free(st);
        return MH_E_INVAL;
    }
    if (mh_conf_path(settings, "data", &st->data_path) != MH_OK)
        st->data_path = "";
    *state = st;
    return MH_OK;
}

static void abi_fini(struct mh_host *host, void *state)
{
    (void)host;
    free(state);
}

/* PUT then GET the key {key} with the body as value; answers what the store said. */
static enum mh_status abi_store(struct mh_req *req, void *state)
{
    const struct abi_state *st = state;
    const char *key = mh_req_param(req, "key");
    struct json_object *o;
    struct mh_value v = {0};
    uint64_t version = 0;
    int created = 0;
    size_t len;
    const void *body = mh_req_body(req, &len);
    enum mh_status rc;

    if (mh_req_cancelled(req))
        return MH_E_CANCELLED;
    rc = mh_store_put(st->store, key, strlen(key), body, len, MH_STORE_ANY, &version, &created);
    if (rc != MH_OK)
        return mh_reply_problem(req, 500, NULL, "put: %s", mh_store_error());
    rc = mh_store_get(st->store, key, strlen(key), &v);
    if (rc != MH_OK)
        return mh_reply_problem(req, 500, NULL, "get: %s", mh_store_error());
    o = json_object_new_object();
    json_object_object_add(o, "value", json_object_new_string_len(v.data, (int)v.len));
    json_object_object_add(o, "version_matches", json_object_new_boolean(v.version == version));
    json_object_object_add(o, "created", json_object_new_boolean(created));
    json_object_object_add(o, "data", json_object_new_string(st->data_path));
    mh_value_free(&v);
    rc = mh_store_get(st->store, "absent", 6, &v);
    json_object_object_add(o, "absent", json_object_new_string(mh_strerror(rc)));
    return mh_reply_json(req, 200, o);
}

static void abi_ws_message(struct mh_ws *ws, int is_binary, const void *data, size_t len,
                           void *state)
{
    (void)state;
    mh_ws_send(ws, is_binary, data, len);
}

static const struct mh_handler_def abi_handlers[] = {
    {"store", abi_store, MH_HANDLER_BLOCKING},
    {NULL, NULL, 0},
};

static const struct mh_ws_hook_def abi_hooks[] = {
    {"echo", NULL, abi_ws_message, NULL},
    {NULL, NULL, NULL, NULL},
};

static const struct mh_setting_def abi_settings[] = {
    {"data", MH_SETTING_STRING, "a path relative to the conf.d file"},
    {NULL, 0, NULL},
};

MH_MODULE(.name = "abi11", .version = "1.1.0", .init = abi_init, .fini = abi_fini,
          .handlers = abi_handlers, .ws_hooks = abi_hooks, .settings = abi_settings)
