/*
 * echo: POST /echo returns the request body unchanged with its Content-Type; POST /echo/json
 * parses the body as JSON and returns it re-serialized (400 problem+json if it is not JSON);
 * the WebSocket hook `ws_echo` sends every text or binary message back unchanged.
 */
#include <stddef.h>

#include <json-c/json.h>

#include "modhost/sdk.h"

static enum mh_status echo(struct mh_req *req, void *state)
{
    const char *ctype = mh_req_header(req, "Content-Type");
    size_t len;
    const void *body = mh_req_body(req, &len); /* borrowed until the request ends */

    (void)state;
    return mh_reply(req, 200, ctype ? ctype : "application/octet-stream", body, len);
}

static enum mh_status echo_json(struct mh_req *req, void *state)
{
    struct json_object *doc = NULL;
    const char *detail = NULL;
    enum mh_status rc = mh_req_json(req, &doc, &detail);

    (void)state;
    if (rc == MH_E_LIMIT)
        return mh_reply_problem(req, 413, NULL, "%s", detail ? detail : "body too large");
    if (rc != MH_OK)
        return mh_reply_problem(req, 400, NULL, "%s", detail ? detail : "invalid JSON");
    /* doc is borrowed from the request; the reply consumes a reference of its own. */
    return mh_reply_json(req, 200, json_object_get(doc));
}

static void ws_echo(struct mh_ws *ws, int is_binary, const void *data, size_t len, void *state)
{
    (void)state;
    mh_ws_send(ws, is_binary, data, len); /* fails only if the connection is closing */
}

static const struct mh_ws_hook_def echo_ws_hooks[] = {
    {"ws_echo", NULL, ws_echo, NULL},
    {NULL, NULL, NULL, NULL},
};

static const struct mh_handler_def echo_handlers[] = {
    {"echo", echo, 0},
    {"echo_json", echo_json, 0},
    {NULL, NULL, 0},
};

MH_MODULE(.name = "echo", .version = "1.0.0", .flags = MH_MODULE_UNLOAD_SAFE,
          .handlers = echo_handlers, .ws_hooks = echo_ws_hooks,
          .settings = (const struct mh_setting_def[]){{NULL, 0, NULL}})
