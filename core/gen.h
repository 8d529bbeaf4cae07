/*
 * A generation: one validated configuration with its modules loaded and initialised, its
 * stores open and its route table built. Loop threads serve from a generation.
 */
#ifndef MH_GEN_H
#define MH_GEN_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"

struct mh_module;
struct mh_router;
struct mh_store;

struct mh_route_target {
    struct mh_module *module;
    const struct mh_handler_def *handler; /* points into the module's static data */
    const struct mh_route_conf *conf;     /* method, path, handler, timeout, file:line */
    long long timeout_ms;                 /* effective deadline for pool requests */
    /* WebSocket endpoints (handler is NULL): */
    const struct mh_ws_conf *ws;
    mh_ws_open_fn ws_open;
    mh_ws_message_fn ws_message;
    mh_ws_close_fn ws_close;
};

struct mh_gen {
    struct mh_config *config;
    struct mh_module **modules; /* in initialisation order: driver providers first */
    size_t nmodules;
    struct mh_store **stores;
    size_t nstores;
    struct mh_route_target *targets;
    size_t ntargets;
    struct mh_router *router;
};

/**
 * Builds a generation from @p config (consumed): loads every module, checks its settings,
 * initialises the modules that provide store drivers, opens the declared stores, initialises
 * the other modules, binds routes to handlers. Every problem goes to @p errs.
 * @return MH_OK with *out set, or an error (and *out NULL) if errs got any entry.
 */
enum mh_status mh_gen_build(struct mh_config *config, struct mh_gen **out,
                            struct mh_errlist *errs);
/** Finalises user modules, closes stores, finalises driver modules, frees everything. */
void mh_gen_free(struct mh_gen *g);

#endif
