/*
 * ver: one module, built twice (ver_a.so with VER_TEXT "A", ver_b.so with "B"), so the reload
 * tests can replace a module file and see which code answers. Both define the module "ver":
 *   handler `v`     replies VER_TEXT as text/plain;
 *   handler `slow`  (blocking: runs on the worker pool) logs "ver VER_TEXT slow N ms", sleeps
 *                   ?ms=N milliseconds, then, given ?gate=FILE, waits until FILE exists (a
 *                   test holds the request in flight for as long as it needs, without
 *                   guessing times), and replies {"version": VER_TEXT, "slept_ms": N};
 *   hook `ws`       (on_message) echoes each message prefixed with "VER_TEXT:";
 *   hook `ws_gone`  (on_close) logs the close code.
 * init and fini log "ver VER_TEXT init" / "ver VER_TEXT fini", so a test can read in the log
 * when each version's instance started and ended. With VER_UNLOAD_SAFE the module declares
 * MH_MODULE_UNLOAD_SAFE (the core may unmap it after fini); without, it stays mapped.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "modhost/sdk.h"

#ifndef VER_TEXT
#error "build with -DVER_TEXT=\"A\" (or another version text)"
#endif

#ifdef VER_UNLOAD_SAFE
#define VER_FLAGS MH_MODULE_UNLOAD_SAFE
#else
#define VER_FLAGS 0u
#endif

#define SLOW_MAX_MS  60000L
#define SLOW_STEP_MS 10L

static enum mh_status ver_init(struct mh_host *host, const struct mh_conf *settings, void **state)
{
    (void)settings;
    *state = host;
    mh_log(host, MH_LOG_INFO, "ver %s init", VER_TEXT);
    return MH_OK;
}

static void ver_fini(struct mh_host *host, void *state)
{
    (void)state;
    mh_log(host, MH_LOG_INFO, "ver %s fini", VER_TEXT);
}

static enum mh_status ver_v(struct mh_req *req, void *state)
{
    (void)state;
    return mh_reply(req, 200, "text/plain", VER_TEXT, strlen(VER_TEXT));
}

static void sleep_step(long ms)
{
    struct timespec ts = {0, ms * 1000000L};

    nanosleep(&ts, NULL);
}

/* Sleeps in short steps so that a cancelled request (client gone, deadline) ends early; the
 * gate wait is bounded by the same maximum. */
static enum mh_status ver_slow(struct mh_req *req, void *state)
{
    const char *arg = mh_req_query(req, "ms"), *gate = mh_req_query(req, "gate");
    struct json_object *o;
    char *end = NULL;
    long ms = arg ? strtol(arg, &end, 10) : 0;

    (void)state;
    if (!arg || end == arg || *end != '\0' || ms < 0 || ms > SLOW_MAX_MS)
        return mh_reply_problem(req, 400, NULL, "?ms= must be 0..%ld", SLOW_MAX_MS);
    mh_req_logf(req, MH_LOG_INFO, "ver %s slow %ld ms", VER_TEXT, ms);
    for (long left = ms; left > 0 && !mh_req_cancelled(req); left -= SLOW_STEP_MS)
        sleep_step(left < SLOW_STEP_MS ? left : SLOW_STEP_MS);
    for (long waited = 0;
         gate && access(gate, F_OK) != 0 && !mh_req_cancelled(req) && waited < SLOW_MAX_MS;
         waited += SLOW_STEP_MS)
        sleep_step(SLOW_STEP_MS);
    o = json_object_new_object();
    if (!o)
        return MH_E_NOMEM;
    json_object_object_add(o, "version", json_object_new_string(VER_TEXT));
    json_object_object_add(o, "slept_ms", json_object_new_int64(ms));
    return mh_reply_json(req, 200, o);
}

static void ver_ws(struct mh_ws *ws, int is_binary, const void *data, size_t len, void *state)
{
    size_t plen = strlen(VER_TEXT) + 1;
    char *buf = malloc(plen + len + 1);

    (void)state;
    if (!buf)
        return;
    memcpy(buf, VER_TEXT ":", plen);
    if (len)
        memcpy(buf + plen, data, len);
    mh_ws_send(ws, is_binary, buf, plen + len); /* fails only if the connection is closing */
    free(buf);
}

static void ver_ws_gone(struct mh_ws *ws, int code, void *state)
{
    mh_log((struct mh_host *)state, MH_LOG_INFO, "ver %s ws %llu closed %d", VER_TEXT,
           (unsigned long long)mh_ws_id(ws), code);
}

static const struct mh_ws_hook_def ver_ws_hooks[] = {
    {"ws", NULL, ver_ws, NULL},
    {"ws_gone", NULL, NULL, ver_ws_gone},
    {NULL, NULL, NULL, NULL},
};

static const struct mh_handler_def ver_handlers[] = {
    {"v", ver_v, 0},
    {"slow", ver_slow, MH_HANDLER_BLOCKING},
    {NULL, NULL, 0},
};

MH_MODULE(.name = "ver", .version = VER_TEXT, .flags = VER_FLAGS, .init = ver_init,
          .fini = ver_fini, .handlers = ver_handlers, .ws_hooks = ver_ws_hooks,
          .settings = (const struct mh_setting_def[]){{NULL, 0, NULL}})
