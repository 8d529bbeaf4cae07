/*
 * hello: the smallest useful module. GET /hello/{name} -> {"message": "Hello, NAME!"}.
 * The greeting word is a setting, to show how a module reads its conf.d settings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "modhost/sdk.h"

struct hello_state {
    char greeting[64];
};

static enum mh_status hello_init(struct mh_host *host, const struct mh_conf *settings, void **state)
{
    struct hello_state *st = calloc(1, sizeof(*st));
    const char *greeting = "Hello";

    if (!st)
        return MH_E_NOMEM;
    if (mh_conf_string(settings, "greeting", &greeting) == MH_OK &&
        (greeting[0] == '\0' || strlen(greeting) >= sizeof(st->greeting))) {
        free(st);
        mh_host_error(host, "setting 'greeting' must be 1 to %zu characters",
                      sizeof(st->greeting) - 1);
        return MH_E_INVAL;
    }
    memcpy(st->greeting, greeting, strlen(greeting) + 1); /* fits: checked above */
    *state = st;
    return MH_OK;
}

static void hello_fini(struct mh_host *host, void *state)
{
    (void)host;
    free(state);
}

static enum mh_status hello(struct mh_req *req, void *state)
{
    const struct hello_state *st = state;
    const char *name = mh_req_param(req, "name"); /* borrowed, decoded */
    struct json_object *o = json_object_new_object();
    size_t n = strlen(st->greeting) + strlen(name ? name : "world") + 4;
    char *msg = mh_req_alloc(req, n); /* freed with the request */

    if (!o)
        return MH_E_NOMEM;
    (void)snprintf(msg, n, "%s, %s!", st->greeting, name ? name : "world"); /* n fits it */
    json_object_object_add(o, "message", json_object_new_string(msg));
    return mh_reply_json(req, 200, o); /* o belongs to the core now */
}

static const struct mh_handler_def hello_handlers[] = {
    {"hello", hello, 0},
    {NULL, NULL, 0},
};

static const struct mh_setting_def hello_settings[] = {
    {"greeting", MH_SETTING_STRING, "the word before the name (default \"Hello\")"},
    {NULL, 0, NULL},
};

MH_MODULE(.name = "hello", .version = "1.0.0", .flags = MH_MODULE_UNLOAD_SAFE, .init = hello_init,
          .fini = hello_fini, .handlers = hello_handlers, .settings = hello_settings)
