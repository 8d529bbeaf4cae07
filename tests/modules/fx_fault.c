/*
 * fx_fault: fault injection for the master/worker tests. Each handler fails one way a third
 * party's handler can: a NULL dereference on a loop and on the worker pool, abort(), a loop
 * that never ends, and a sleep on the loop ({ms} milliseconds). "ok" answers normally. The
 * WebSocket hooks crash in on_open ("ws_segv_open") or in on_close ("ws_segv_close", which
 * echoes messages until then).
 */
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "modhost/sdk.h"

/* volatile: the compiler must not prove the dereference away. */
static int *volatile nowhere;

static enum mh_status fx_ok(struct mh_req *req, void *state)
{
    (void)state;
    return mh_reply(req, 200, "text/plain", "ok", 2);
}

static enum mh_status fx_segv(struct mh_req *req, void *state)
{
    (void)req;
    (void)state;
    *nowhere = 1;
    return MH_OK;
}

static enum mh_status fx_abort(struct mh_req *req, void *state)
{
    (void)req;
    (void)state;
    abort();
}

static enum mh_status fx_spin(struct mh_req *req, void *state)
{
    volatile unsigned long n = 0;

    (void)req;
    (void)state;
    while (n != ~0UL) /* 2^64 steps: never, in practice */
        n++;
    return MH_OK;
}

static enum mh_status fx_sleep(struct mh_req *req, void *state)
{
    const char *ms = mh_req_param(req, "ms");
    long v = ms ? strtol(ms, NULL, 10) : 0;
    struct timespec ts = {v / 1000, (v % 1000) * 1000000L};

    (void)state;
    nanosleep(&ts, NULL); /* on the loop: exactly what a handler must not do */
    return mh_reply(req, 200, "text/plain", "slept", 5);
}

static enum mh_status ws_segv_open(struct mh_ws *ws, struct mh_req *req, void *state)
{
    (void)ws;
    (void)req;
    (void)state;
    *nowhere = 1;
    return MH_OK;
}

static void ws_echo(struct mh_ws *ws, int is_binary, const void *data, size_t len, void *state)
{
    (void)state;
    mh_ws_send(ws, is_binary, data, len);
}

static void ws_segv_close(struct mh_ws *ws, int code, void *state)
{
    (void)ws;
    (void)code;
    (void)state;
    *nowhere = 1;
}

static const struct mh_ws_hook_def fx_ws_hooks[] = {
    {"ws_segv_open", ws_segv_open, NULL, NULL},
    {"ws_echo", NULL, ws_echo, NULL},
    {"ws_segv_close", NULL, NULL, ws_segv_close},
    {NULL, NULL, NULL, NULL},
};

static const struct mh_handler_def fx_handlers[] = {
    {"ok", fx_ok, 0},       {"segv_loop", fx_segv, 0}, {"segv_pool", fx_segv, MH_HANDLER_BLOCKING},
    {"abort", fx_abort, 0}, {"spin", fx_spin, 0},      {"sleep", fx_sleep, 0},
    {NULL, NULL, 0},
};

MH_MODULE(.name = "fx_fault", .version = "0.0.1", .handlers = fx_handlers, .ws_hooks = fx_ws_hooks)
