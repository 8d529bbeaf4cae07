/*
 * @NAME@: a modhost module. GET /@NAME@/hello/{name} answers JSON on the loop; POST /@NAME@/count
 * counts the words of its body on the worker pool (a blocking handler); the WebSocket endpoint
 * /@NAME@/ws relays every text message to everyone connected, through a channel.
 * The SDK contract (ownership, threads, return codes) is in modhost/sdk.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "modhost/sdk.h"

struct state {
    struct mh_host *host;
    char greeting[64];
};

/* Runs once per load, on the main thread, before any request. */
static enum mh_status module_init(struct mh_host *host, const struct mh_conf *settings, void **out)
{
    struct state *st = calloc(1, sizeof(*st));
    const char *greeting = "Hello";

    if (!st)
        return MH_E_NOMEM;
    if (mh_conf_string(settings, "greeting", &greeting) == MH_OK &&
        (!greeting[0] || strlen(greeting) >= sizeof(st->greeting))) {
        free(st);
        mh_host_error(host, "setting 'greeting' must be 1 to %zu characters",
                      sizeof(st->greeting) - 1);
        return MH_E_INVAL;
    }
    st->host = host;
    memcpy(st->greeting, greeting, strlen(greeting) + 1); /* fits: checked above */
    *out = st;
    return MH_OK;
}

static void module_fini(struct mh_host *host, void *state)
{
    (void)host;
    free(state);
}

/* GET /@NAME@/hello/{name}: on a loop thread, so it must not block. */
static enum mh_status hello(struct mh_req *req, void *state)
{
    const struct state *st = state;
    const char *name = mh_req_param(req, "name"); /* borrowed until the request ends */
    struct json_object *o = json_object_new_object();
    char msg[160];

    if (!o)
        return MH_E_NOMEM; /* the core answers 500 problem+json */
    (void)snprintf(msg, sizeof(msg), "%s, %s!", st->greeting, name ? name : "world");
    json_object_object_add(o, "message", json_object_new_string(msg));
    return mh_reply_json(req, 200, o); /* o belongs to the core now */
}

/* POST /@NAME@/count: flagged blocking, so it runs on the worker pool and may take its time. */
static enum mh_status count(struct mh_req *req, void *state)
{
    size_t len, words = 0;
    const char *body = mh_req_body(req, &len);
    struct json_object *o;
    int in_word = 0;

    (void)state;
    for (size_t i = 0; i < len; i++) {
        int space = body[i] == ' ' || body[i] == '\n' || body[i] == '\t' || body[i] == '\r';

        words += !space && !in_word;
        in_word = !space;
        if (i % 65536 == 0 && mh_req_is_cancelled(req))
            return MH_E_CANCELLED; /* the client left or the deadline passed */
    }
    o = json_object_new_object();
    if (!o)
        return MH_E_NOMEM;
    json_object_object_add(o, "words", json_object_new_int64((int64_t)words));
    return mh_reply_json(req, 200, o);
}

/* WebSocket hooks, on the connection's loop thread. */
static enum mh_status ws_open(struct mh_ws *ws, struct mh_req *req, void *state)
{
    (void)req;
    (void)state;
    return mh_ws_join(ws, "@NAME@"); /* an error refuses the connection */
}

static void ws_message(struct mh_ws *ws, int is_binary, const void *data, size_t len, void *state)
{
    const struct state *st = state;

    if (is_binary) {
        mh_ws_close(ws, MH_WS_BAD_DATA, "text only");
        return;
    }
    mh_ws_publish(st->host, "@NAME@", 0, data, len); /* to every member, this one included */
}

static void ws_close(struct mh_ws *ws, int code, void *state)
{
    (void)ws;
    (void)code;
    (void)state; /* channels are left by the core */
}

static const struct mh_handler_def handlers[] = {
    {"hello", hello, 0},
    {"count", count, MH_HANDLER_BLOCKING},
    {NULL, NULL, 0},
};

static const struct mh_ws_hook_def ws_hooks[] = {
    {"ws_open", ws_open, NULL, NULL},
    {"ws_message", NULL, ws_message, NULL},
    {"ws_close", NULL, NULL, ws_close},
    {NULL, NULL, NULL, NULL},
};

static const struct mh_setting_def settings[] = {
    {"greeting", MH_SETTING_STRING, "the word before the name (default \"Hello\")"},
    {NULL, 0, NULL},
};

MH_MODULE(.name = "@NAME@", .version = "0.1.0", .flags = MH_MODULE_UNLOAD_SAFE, .init = module_init,
          .fini = module_fini, .handlers = handlers, .ws_hooks = ws_hooks, .settings = settings)
