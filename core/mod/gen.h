/*
 * A generation: one validated configuration with its modules loaded and initialised, its
 * stores open and its route table built. Loop threads serve from a generation.
 */
#ifndef MH_GEN_H
#define MH_GEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "base/err.h"
#include "conf/config.h"

struct mh_module;
struct mh_route_stats;
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
    /* Each loop's metrics entry for this route, found on its first request (written only by
     * loop i at stats[i]; a loop at or past nstats looks its entry up every time). */
    struct mh_route_stats **stats;
    size_t nstats;
};

struct mh_gen {
    struct mh_config *config;
    struct mh_module **modules; /* in initialisation order: driver providers first */
    size_t nmodules;
    struct mh_store **stores;
    size_t nstores;
    struct mh_store *channels; /* server.channels: one of stores, or NULL */
    struct mh_route_target *targets;
    size_t ntargets;
    struct mh_router *router;
    /* Lifetime: the server's reference while current, one per loop serving it, one per
     * request, WebSocket and task started on it. Freed by the main thread at zero. */
    unsigned id;
    atomic_int refs;
    struct mh_gen *next_retired;
    struct timespec drain_deadline;
    bool ws_closed; /* its WebSockets were told to close at the drain deadline */
};

/**
 * Builds a generation from @p config (consumed): loads every module, checks its settings,
 * initialises the modules that provide store drivers, opens the declared stores, initialises
 * the other modules, binds routes to handlers. Every problem goes to @p errs.
 * @return MH_OK with *out set, or an error (and *out NULL) if errs got any entry.
 */
enum mh_status mh_gen_build(struct mh_config *config, struct mh_gen **out, struct mh_errlist *errs);
/** As mh_gen_build, on reload: @p prev (may be NULL) is the running generation, and stores
 *  declared the same way (same name, driver and settings) are shared with it, not reopened. */
enum mh_status mh_gen_build_next(struct mh_config *config, const struct mh_gen *prev,
                                 struct mh_gen **out, struct mh_errlist *errs);

static inline void mh_gen_ref(struct mh_gen *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

static inline void mh_gen_unref(struct mh_gen *g)
{
    atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel);
}

static inline int mh_gen_refs(struct mh_gen *g)
{
    return atomic_load_explicit(&g->refs, memory_order_acquire);
}
/** Finalises user modules, closes stores, finalises driver modules, frees everything. */
void mh_gen_free(struct mh_gen *g);

#endif
