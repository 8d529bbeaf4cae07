/*
 * it_probe: a module for the integration tests that says in the server log when the core runs
 * its init and fini, so a test can see the order of events at start-up and shutdown. Its one
 * handler answers "pong" and counts requests; fini logs the count init's state has seen.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "modhost/sdk.h"

struct probe_state {
    atomic_long requests; /* handlers run on every loop thread */
};

static enum mh_status probe_init(struct mh_host *host, const struct mh_conf *settings, void **state)
{
    struct probe_state *st = calloc(1, sizeof(*st));

    (void)settings;
    if (!st)
        return MH_E_NOMEM;
    atomic_init(&st->requests, 0);
    *state = st;
    mh_log(host, MH_LOG_INFO, "probe init");
    return MH_OK;
}

static void probe_fini(struct mh_host *host, void *state)
{
    struct probe_state *st = state;

    mh_log(host, MH_LOG_INFO, "probe fini requests=%ld", atomic_load(&st->requests));
    free(st);
}

static enum mh_status probe_ping(struct mh_req *req, void *state)
{
    struct probe_state *st = state;

    atomic_fetch_add(&st->requests, 1);
    return mh_reply(req, 200, "text/plain", "pong", 4);
}

static const struct mh_handler_def probe_handlers[] = {
    {"ping", probe_ping, 0},
    {NULL, NULL, 0},
};

MH_MODULE(.name = "it_probe", .version = "0.0.1", .init = probe_init, .fini = probe_fini,
          .handlers = probe_handlers, .settings = (const struct mh_setting_def[]){{NULL, 0, NULL}})
