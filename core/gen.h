/*
 * A generation: one validated configuration with its modules loaded and initialised and its
 * route table built. Loop threads serve from a generation; reload (later) swaps generations.
 */
#ifndef MH_GEN_H
#define MH_GEN_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"

struct mh_module;
struct mh_router;

struct mh_route_target {
    struct mh_module *module;
    const struct mh_handler_def *handler; /* points into the module's static data */
    const struct mh_route_conf *conf;     /* method, path, handler, file:line */
};

struct mh_gen {
    struct mh_config *config;
    struct mh_module **modules;
    size_t nmodules;
    struct mh_route_target *targets;
    size_t ntargets;
    struct mh_router *router;
};

/**
 * Builds a generation from @p config (consumed): loads every module, checks its settings,
 * runs init, binds routes to handlers. Every problem goes to @p errs.
 * @return MH_OK with *out set, or an error (and *out NULL) if errs got any entry.
 */
enum mh_status mh_gen_build(struct mh_config *config, struct mh_gen **out,
                            struct mh_errlist *errs);
/** Runs every module's fini (in reverse load order) and frees the generation. */
void mh_gen_free(struct mh_gen *g);

#endif
