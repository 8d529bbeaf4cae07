/*
 * Building a generation: load and check each enabled module, validate its settings against
 * what it declares, run init, then bind every route to its handler in a fresh route table.
 */
#include "mod/gen.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "conf/files.h"
#include "conf/schema.h"
#include "mod/host.h"
#include "mod/loader.h"
#include "mod/router.h"
#include "mod/store.h"

static const char *setting_type_name(enum mh_setting_type t)
{
    switch (t) {
    case MH_SETTING_STRING:
        return "a string";
    case MH_SETTING_INT:
        return "an integer";
    case MH_SETTING_BOOL:
        return "a boolean";
    case MH_SETTING_FLOAT:
        return "a number";
    }
    return "?";
}

static bool setting_type_ok(enum mh_setting_type t, int type)
{
    switch (t) {
    case MH_SETTING_STRING:
        return type == CONFIG_TYPE_STRING;
    case MH_SETTING_INT:
        return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
    case MH_SETTING_BOOL:
        return type == CONFIG_TYPE_BOOL;
    case MH_SETTING_FLOAT:
        return type == CONFIG_TYPE_FLOAT || type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
    }
    return false;
}

/* Reports setting @p s, which none of @p names declares: a suggestion, or the whole list. */
static void unknown_setting(const config_setting_t *s, const char *const *names, size_t nnames,
                            const char *kind, const char *owner, struct mh_errlist *errs)
{
    const char *name = config_setting_name(s);
    const char *hint = mh_config_suggest(name, names, nnames);
    const char *file = mh_config_setting_file(s);
    int line = config_setting_source_line(s);
    char known[512];
    size_t n = 0;

    if (hint) {
        mh_errlist_add(errs, MH_E_INVAL, file, line,
                       "unknown setting '%s' for %s '%s' (did you mean '%s'?)", name, kind, owner,
                       hint);
        return;
    }
    known[0] = '\0';
    for (size_t j = 0; j < nnames && n < sizeof(known); j++)
        n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", j ? ", " : "", names[j]);
    mh_errlist_add(errs, MH_E_INVAL, file, line,
                   "unknown setting '%s' for %s '%s' (its settings: %s)", name, kind, owner,
                   nnames ? known : "none");
}

/* Checks a settings group against declared settings; returns the number of errors added. */
static size_t check_setting_list(const struct mh_setting_def *defs, const config_setting_t *group,
                                 const char *kind, const char *owner, struct mh_errlist *errs)
{
    const char *names[64];
    size_t nnames = 0, before = errs->count;

    for (const struct mh_setting_def *d = defs; d->name && nnames < 64; d++)
        names[nnames++] = d->name;
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);
        const struct mh_setting_def *d = defs;
        const char *file = mh_config_setting_file(s);
        int line = config_setting_source_line(s);

        while (d->name && strcmp(d->name, name) != 0)
            d++;
        if (!d->name) {
            unknown_setting(s, names, nnames, kind, owner, errs);
            continue;
        }
        if (!setting_type_ok(d->type, config_setting_type(s)))
            mh_errlist_add(errs, MH_E_INVAL, file, line, "setting '%s' of %s '%s' must be %s%s%s",
                           name, kind, owner, setting_type_name(d->type), d->help ? ": " : "",
                           d->help ? d->help : "");
    }
    return errs->count - before;
}

/* Checks the module's settings group against its declared settings; returns errors added. */
static size_t check_settings(const struct mh_module *mod, const struct mh_module_conf *mc,
                             struct mh_errlist *errs)
{
    if (!mod->def.settings || !mc->settings)
        return 0;
    return check_setting_list(mod->def.settings, mc->settings, "module", mod->name, errs);
}

/* A WebSocket hook of the module named @p name that sets the function @p which asks for. */
static const struct mh_ws_hook_def *find_hook(const struct mh_module *mod, const char *name,
                                              int which)
{
    for (const struct mh_ws_hook_def *h = mod->def.ws_hooks; h && h->name; h++) {
        if (strcmp(h->name, name) == 0 &&
            ((which == 0 && h->on_open) || (which == 1 && h->on_message) ||
             (which == 2 && h->on_close)))
            return h;
    }
    return NULL;
}

static void hook_list(const struct mh_module *mod, int which, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (const struct mh_ws_hook_def *h = mod->def.ws_hooks; h && h->name && n < size; h++) {
        if ((which == 0 && h->on_open) || (which == 1 && h->on_message) ||
            (which == 2 && h->on_close))
            n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "", h->name);
    }
    if (!buf[0])
        (void)snprintf(buf, size, "none");
}

static void add_target(struct mh_gen *g, struct mh_route_target *t, const char *method,
                       const char *path, const char *file, int line, struct mh_errlist *errs)
{
    struct mh_err e = {0};

    if (mh_router_add(g->router, method, path, t, &e) != MH_OK) {
        const struct mh_route_target *other = mh_router_find(g->router, method, path);

        if (other)
            mh_errlist_add(errs, e.code, file, line, "%s (module '%s', at %s:%d)", e.msg,
                           other->module->name, other->conf ? other->conf->file : other->ws->file,
                           other->conf ? other->conf->line : other->ws->line);
        else
            mh_errlist_add(errs, e.code, file, line, "%s", e.msg);
        return;
    }
    g->ntargets++;
}

static void bind_websockets(struct mh_gen *g, struct mh_module *mod,
                            const struct mh_module_conf *mc, struct mh_errlist *errs)
{
    static const char *const kinds[] = {"on_open", "on_message", "on_close"};

    for (size_t i = 0; i < mc->nws; i++) {
        const struct mh_ws_conf *w = &mc->ws[i];
        const char *names[3] = {w->on_open, w->on_message, w->on_close};
        const struct mh_ws_hook_def *hooks[3] = {NULL, NULL, NULL};
        struct mh_route_target *t;
        bool ok = true;

        for (int k = 0; k < 3; k++) {
            if (!names[k])
                continue;
            hooks[k] = find_hook(mod, names[k], k);
            if (!hooks[k]) {
                char list[512];

                hook_list(mod, k, list, sizeof(list));
                mh_errlist_add(errs, MH_E_NOTFOUND, w->file, w->line,
                               "module '%s' has no %s hook '%s' (its %s hooks: %s)", mod->name,
                               kinds[k], names[k], kinds[k], list);
                ok = false;
            }
        }
        if (!ok)
            continue;
        assert(hooks[1]); /* config.c admits no endpoint without on_message */
        t = &g->targets[g->ntargets];
        t->module = mod;
        t->ws = w;
        t->ws_open = hooks[0] ? hooks[0]->on_open : NULL;
        t->ws_message = hooks[1]->on_message;
        t->ws_close = hooks[2] ? hooks[2]->on_close : NULL;
        add_target(g, t, "GET", w->path, w->file, w->line, errs);
    }
}

static void bind_routes(struct mh_gen *g, struct mh_module *mod, const struct mh_module_conf *mc,
                        struct mh_errlist *errs)
{
    for (size_t i = 0; i < mc->nroutes; i++) {
        const struct mh_route_conf *rc = &mc->routes[i];
        const struct mh_handler_def *h = mh_module_handler(mod, rc->handler);
        struct mh_route_target *t;

        if (!h) {
            char list[512];

            mh_module_handler_list(mod, list, sizeof(list));
            mh_errlist_add(errs, MH_E_NOTFOUND, rc->file, rc->line,
                           "module '%s' has no handler '%s' (its handlers: %s)", mod->name,
                           rc->handler, list);
            continue;
        }
        t = &g->targets[g->ntargets];
        t->module = mod;
        t->handler = h;
        t->conf = rc;
        t->timeout_ms =
            rc->timeout_ms ? rc->timeout_ms : g->config->server.limits.handler_timeout_ms;
        add_target(g, t, rc->method, rc->path, rc->file, rc->line, errs);
    }
    bind_websockets(g, mod, mc, errs);
}

static bool provides_drivers(const struct mh_module *m)
{
    return m->def.drivers && m->def.drivers[0].name;
}

static const struct mh_store_driver *find_driver(const struct mh_gen *g, const char *name,
                                                 const struct mh_module **provider)
{
    for (size_t i = 0; i < g->nmodules; i++) {
        for (const struct mh_store_driver *d = g->modules[i]->def.drivers; d && d->name; d++) {
            if (strcmp(d->name, name) == 0) {
                *provider = g->modules[i];
                return d;
            }
        }
    }
    return NULL;
}

static struct mh_store *reusable_store(const struct mh_gen *prev, const char *name,
                                       const struct mh_store_driver *d, const char *signature)
{
    for (size_t i = 0; prev && i < prev->nstores; i++) {
        struct mh_store *s = prev->stores[i];

        if (strcmp(s->name, name) == 0 && s->driver == d && strcmp(s->signature, signature) == 0)
            return s;
    }
    return NULL;
}

/* Reports store @p sc's driver as unknown, with the drivers there are. */
static void unknown_driver(const struct mh_gen *g, const struct mh_store_conf *sc,
                           struct mh_errlist *errs)
{
    char known[512];
    size_t n = 0;

    known[0] = '\0';
    for (size_t j = 0; j < g->nmodules && n < sizeof(known); j++) {
        for (const struct mh_store_driver *v = g->modules[j]->def.drivers;
             v && v->name && n < sizeof(known); v++)
            n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s (module %s)", n ? ", " : "",
                                  v->name, g->modules[j]->name);
    }
    mh_errlist_add(errs, MH_E_NOTFOUND, sc->file, sc->line,
                   "store '%s': unknown driver '%s' (drivers of the enabled modules: %s)", sc->name,
                   sc->driver, n ? known : "none");
}

/* Adds @p prev's store for @p sc to @p g if its driver and settings are unchanged, so that
 * it keeps its open connections. @return whether it did. */
static bool keep_store(struct mh_gen *g, const struct mh_gen *prev, const struct mh_store_conf *sc,
                       const struct mh_store_driver *d)
{
    char *sig = mh_store_signature(d->name, sc->settings);
    struct mh_store *same = reusable_store(prev, sc->name, d, sig);

    free(sig);
    if (!same)
        return false;
    same->refs++;
    g->stores[g->nstores++] = same;
    return true;
}

static void open_stores(struct mh_gen *g, const struct mh_gen *prev, struct mh_errlist *errs)
{
    const struct mh_config *c = g->config;

    g->stores = mh_xcalloc(c->nstores + 1, sizeof(*g->stores));
    for (size_t i = 0; i < c->nstores; i++) {
        const struct mh_store_conf *sc = &c->stores[i];
        const struct mh_module *provider = NULL;
        const struct mh_store_driver *d = find_driver(g, sc->driver, &provider);
        struct mh_err e = {0};

        if (!d) {
            unknown_driver(g, sc, errs);
            continue;
        }
        if (!provider->initialized)
            continue; /* the provider's failure is reported; its stores cannot open */
        if (d->size >= offsetof(struct mh_store_driver, settings) + sizeof(void *) && d->settings &&
            sc->settings &&
            check_setting_list(d->settings, sc->settings, "store", sc->name, errs) > 0)
            continue;
        if (keep_store(g, prev, sc, d))
            continue;
        if (mh_store_open(sc->name, d, provider, sc->settings, &g->stores[g->nstores], &e) !=
            MH_OK) {
            mh_errlist_add(errs, e.code, sc->file, sc->line, "%s", e.msg);
            continue;
        }
        g->nstores++;
    }
}

/* server.channels: the store must be declared and its driver must carry channels (1.2). */
static void bind_channels(struct mh_gen *g, struct mh_errlist *errs)
{
    const struct mh_server_conf *c = &g->config->server;
    const struct mh_store_driver *d;

    if (!c->channels)
        return;
    for (size_t i = 0; i < g->nstores; i++) {
        if (strcmp(g->stores[i]->name, c->channels) == 0)
            g->channels = g->stores[i];
    }
    if (!g->channels) {
        mh_errlist_add(errs, MH_E_NOTFOUND, c->channels_file, c->channels_line,
                       "'server.channels' = \"%s\": no store of that name is open", c->channels);
        return;
    }
    d = g->channels->driver;
    if (!(d->caps & MH_STORE_CAP_PUBSUB) ||
        d->size < offsetof(struct mh_store_driver, publish) + sizeof(void *) || !d->subscribe ||
        !d->unsubscribe || !d->publish) {
        mh_errlist_add(errs, MH_E_INVAL, c->channels_file, c->channels_line,
                       "'server.channels' = \"%s\": driver '%s' cannot carry channels (no "
                       "publish/subscribe; the redis driver can)",
                       c->channels, d->name);
        g->channels = NULL;
    }
}

static void attach_stores(struct mh_gen *g, struct mh_module *mod, const struct mh_module_conf *mc)
{
    mod->stores = mh_xcalloc(mc->nstores + 1, sizeof(*mod->stores));
    for (size_t i = 0; i < mc->nstores; i++) {
        for (size_t j = 0; j < g->nstores; j++) {
            if (strcmp(g->stores[j]->name, mc->stores[i]) == 0)
                mod->stores[mod->nstores++] = g->stores[j];
        }
    }
}

static void init_module(struct mh_module *mod, const struct mh_module_conf *mc,
                        struct mh_errlist *errs)
{
    struct mh_err e = {0};

    if (mh_module_init(mod, mh_conf_new(mc->settings), &e) != MH_OK)
        mh_errlist_add(errs, e.code, mc->file, mc->line, "%s", e.msg);
}

enum mh_status mh_gen_build(struct mh_config *config, struct mh_gen **out, struct mh_errlist *errs)
{
    return mh_gen_build_next(config, NULL, out, errs);
}

/* The modules of a generation being built, in configuration order until they join it. */
struct opened {
    struct mh_module **mods; /* NULL once it is in the generation */
    const struct mh_module_conf **confs;
    bool *skip; /* settings errors: checked, not initialised */
    size_t n;
    const struct mh_module_conf **bound; /* the conf of g->modules[i] */
};

/* 1. Opens and checks every module file of @p g's configuration into @p o. A module whose
 * settings are wrong is kept, not initialised, so that its routes and hooks are still checked
 * in the same run. */
static void open_modules(struct mh_gen *g, struct opened *o, struct mh_errlist *errs)
{
    const struct mh_config *config = g->config;

    for (size_t i = 0; i < config->nmodules; i++) {
        const struct mh_module_conf *mc = &config->modules[i];
        struct mh_module *mod = NULL;
        struct mh_err e = {0};

        if (!config->server.insecure_permissions &&
            mh_config_check_permissions(mc->path, "module file", &e) != MH_OK) {
            mh_errlist_add(errs, e.code, mc->file, mc->line, "module '%s' (%s): %s", mc->name,
                           mc->path, e.msg);
            continue;
        }
        if (mh_module_open(mc->name, mc->path, &mod, &e) != MH_OK) {
            mh_errlist_add(errs, e.code, mc->file, mc->line, "%s", e.msg);
            continue;
        }
        mod->gen = g;
        if (strcmp(mc->instance, mc->name) != 0) { /* logs and hosts name the instance */
            free(mod->name);
            mod->name = mh_xstrdup(mc->instance);
        }
        o->skip[o->n] = check_settings(mod, mc, errs) > 0;
        o->confs[o->n] = mc;
        o->mods[o->n++] = mod;
    }
}

/* Moves opened module @p i into @p g. */
static void join(struct mh_gen *g, struct opened *o, size_t i)
{
    o->bound[g->nmodules] = o->confs[i];
    g->modules[g->nmodules++] = o->mods[i];
    o->mods[i] = NULL;
}

/* 2. and 3.: initialises the opened modules and moves them into @p g. */
static void init_modules(struct mh_gen *g, const struct mh_gen *prev, struct opened *o,
                         struct mh_errlist *errs)
{
    /* Driver providers first, so that stores can open before their users' init. */
    for (size_t i = 0; i < o->n; i++) {
        if (!provides_drivers(o->mods[i]))
            continue;
        if (!o->skip[i])
            init_module(o->mods[i], o->confs[i], errs);
        attach_stores(g, o->mods[i], o->confs[i]);
        join(g, o, i);
    }
    open_stores(g, prev, errs);
    bind_channels(g, errs);

    /* Everything else, in configuration order. A module one of whose stores did not open
     * (reported above) is not initialised: its init would only fail for want of the store. */
    for (size_t i = 0; i < o->n; i++) {
        if (!o->mods[i])
            continue;
        attach_stores(g, o->mods[i], o->confs[i]);
        if (!o->skip[i] && o->mods[i]->nstores == o->confs[i]->nstores)
            init_module(o->mods[i], o->confs[i], errs);
        join(g, o, i);
    }
}

enum mh_status mh_gen_build_next(struct mh_config *config, const struct mh_gen *prev,
                                 struct mh_gen **out, struct mh_errlist *errs)
{
    struct mh_gen *g = mh_xcalloc(1, sizeof(*g));
    size_t before = errs->count, nroutes = 0, nmods = config->nmodules + 1;
    struct opened o = {.mods = mh_xcalloc(nmods, sizeof(*o.mods)),
                       .confs = mh_xcalloc(nmods, sizeof(*o.confs)),
                       .skip = mh_xcalloc(nmods, sizeof(*o.skip)),
                       .bound = mh_xcalloc(nmods, sizeof(*o.bound))};

    *out = NULL;
    g->config = config;
    atomic_init(&g->refs, 1);
    mh_router_new(&g->router);
    for (size_t i = 0; i < config->nmodules; i++)
        nroutes += config->modules[i].nroutes + config->modules[i].nws;
    g->targets = mh_xcalloc(nroutes + 1, sizeof(*g->targets));
    g->modules = mh_xcalloc(nmods, sizeof(*g->modules));

    open_modules(g, &o, errs);
    init_modules(g, prev, &o, errs);
    /* 4. Routes and hooks of every module that loaded, initialised or not. */
    for (size_t i = 0; i < g->nmodules; i++)
        bind_routes(g, g->modules[i], o.bound[i], errs);
    free(o.mods);
    free(o.confs);
    free(o.skip);
    free(o.bound);
    if (errs->count > before) {
        mh_gen_free(g);
        return MH_E_INVAL;
    }
    for (size_t i = 0; i < g->ntargets; i++) {
        g->targets[i].nstats = (size_t)(config->server.threads > 0 ? config->server.threads : 1);
        g->targets[i].stats = mh_xcalloc(g->targets[i].nstats, sizeof(*g->targets[i].stats));
    }
    *out = g;
    return MH_OK;
}

void mh_gen_free(struct mh_gen *g)
{
    if (!g)
        return;
    mh_router_free(g->router);
    /* Users of stores first, then the stores, then the drivers' modules. */
    for (size_t i = g->nmodules; i-- > 0;) {
        if (!provides_drivers(g->modules[i]))
            mh_module_fini(g->modules[i]);
    }
    for (size_t i = g->nstores; i-- > 0;)
        mh_store_unref(g->stores[i]);
    free(g->stores);
    for (size_t i = g->nmodules; i-- > 0;)
        mh_module_free(g->modules[i]);
    free(g->modules);
    for (size_t i = 0; i < g->ntargets; i++)
        free(g->targets[i].stats);
    free(g->targets);
    mh_config_free(g->config);
    free(g);
}
