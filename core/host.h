/*
 * The core as a module sees it: struct mh_host (one per loaded module), module settings
 * (struct mh_conf over a libconfig group) and the function table handed to every module.
 */
#ifndef MH_HOST_H
#define MH_HOST_H

#include <libconfig.h>

#include "modhost/sdk.h"

struct mh_module;

struct mh_host {
    const struct mh_module *module;
    char name[72];
    char error[512]; /* set by mh_host_error during init */
};

struct mh_conf {
    const config_setting_t *group; /* NULL: no settings */
};

extern const struct mh_api mh_core_api;

struct mh_host *mh_host_new(const struct mh_module *m, const char *name);
void mh_host_free(struct mh_host *h);
struct mh_conf *mh_conf_new(const config_setting_t *group);
void mh_conf_free(struct mh_conf *c);

#endif
