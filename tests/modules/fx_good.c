/*
 * fx_good: a well-formed module for the loader and generation tests. Two handlers, two
 * declared settings, and init/fini counters the tests read through dlsym to see that the core
 * called them (the module is never unmapped: it does not declare MH_MODULE_UNLOAD_SAFE).
 */
#include <stdlib.h>

#include "modhost/sdk.h"

struct fx_state {
    long long count;
    const char *label; /* borrowed from the settings, valid until fini */
};

/* Read by the tests: how often init succeeded and fini ran with the state init made. */
MH_EXPORT extern int fx_good_inits;
MH_EXPORT extern int fx_good_finis;
MH_EXPORT int fx_good_inits;
MH_EXPORT int fx_good_finis;

static enum mh_status fx_init(struct mh_host *host, const struct mh_conf *settings, void **state)
{
    struct fx_state *st;
    long long count = 1;
    const char *label = "";

    if (mh_conf_int(settings, "count", &count) == MH_OK && count <= 0) {
        mh_host_error(host, "count must be positive");
        return MH_E_INVAL;
    }
    mh_conf_string(settings, "label", &label);
    st = calloc(1, sizeof(*st));
    if (!st)
        return MH_E_NOMEM;
    st->count = count;
    st->label = label;
    *state = st;
    fx_good_inits++;
    return MH_OK;
}

static void fx_fini(struct mh_host *host, void *state)
{
    (void)host;
    if (state)
        fx_good_finis++;
    free(state);
}

static enum mh_status fx_a(struct mh_req *req, void *state)
{
    (void)state;
    return mh_reply(req, 200, "text/plain", "a", 1);
}

static enum mh_status fx_b(struct mh_req *req, void *state)
{
    (void)state;
    return mh_reply(req, 200, "text/plain", "b", 1);
}

static const struct mh_handler_def fx_handlers[] = {
    {"a", fx_a, 0},
    {"b", fx_b, MH_HANDLER_BLOCKING},
    {NULL, NULL, 0},
};

static const struct mh_setting_def fx_settings[] = {
    {"count", MH_SETTING_INT, "how many, at least 1"},
    {"label", MH_SETTING_STRING, NULL},
    {NULL, 0, NULL},
};

MH_MODULE(.name = "fx_good", .version = "0.0.1", .init = fx_init, .fini = fx_fini,
          .handlers = fx_handlers, .settings = fx_settings)
