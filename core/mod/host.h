/*
 * The core as a module sees it: struct mh_host (one per loaded module), module settings
 * (struct mh_conf over a libconfig group) and the function table handed to every module.
 */
#ifndef MH_HOST_H
#define MH_HOST_H

#include <stdarg.h>
#include <stdbool.h>

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
    char *base_dir;                /* relative paths resolve here (NULL: as given) */
    char **paths;                  /* strings handed out by conf_path */
    size_t npaths;
};

/* The table handed to every module (defined in run/api.c, where every layer's calls meet). */
extern const struct mh_api mh_core_api;

/* The calls implemented here (see sdk.h for their contracts). */
int mh_host_log_enabled(enum mh_log_level level);
void mh_host_log(const struct mh_host *host, enum mh_log_level level, const char *fmt, ...)
    MH_PRINTF(3, 4);
enum mh_status mh_host_error_impl(struct mh_host *host, const char *fmt, ...) MH_PRINTF(2, 3);
bool mh_host_log_is_enabled(enum mh_log_level level);
void mh_host_logv(const struct mh_host *host, enum mh_log_level level, const char *fmt, va_list ap)
    MH_VPRINTF(3);
enum mh_status mh_host_errorv_impl(struct mh_host *host, const char *fmt, va_list ap) MH_VPRINTF(2);
const char *mh_host_name_impl(const struct mh_host *host);
enum mh_status mh_host_conf_string(const struct mh_conf *conf, const char *path, const char **out);
enum mh_status mh_host_conf_path(const struct mh_conf *conf, const char *path, const char **out);
enum mh_status mh_host_conf_int(const struct mh_conf *conf, const char *path, long long *out);
enum mh_status mh_host_conf_bool(const struct mh_conf *conf, const char *path, int *out);
enum mh_status mh_host_conf_float(const struct mh_conf *conf, const char *path, double *out);

struct mh_host *mh_host_new(const struct mh_module *m, const char *name);
void mh_host_free(struct mh_host *h);
/** Settings over @p group; relative paths resolve against the directory of its file. */
struct mh_conf *mh_conf_new(const config_setting_t *group);
/** Sets the directory relative paths resolve against (copied). */
void mh_conf_set_base(struct mh_conf *c, const char *file_or_dir, int is_file);
void mh_conf_free(struct mh_conf *c);

#endif
