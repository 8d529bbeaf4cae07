/*
 * The calls a module makes that are not about a request: logging with the module's name,
 * settings look-ups, init error messages, finding its stores. The function table that hands
 * them (and every other layer's calls) to modules is assembled in run/api.c.
 */
#include "mod/host.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

struct mh_host *mh_host_new(const struct mh_module *m, const char *name)
{
    struct mh_host *h = mh_xcalloc(1, sizeof(*h));

    h->module = m;
    (void)snprintf(h->name, sizeof(h->name), "%s", name);
    return h;
}

void mh_host_free(struct mh_host *h)
{
    free(h);
}

struct mh_conf *mh_conf_new(const config_setting_t *group)
{
    struct mh_conf *c = mh_xcalloc(1, sizeof(*c));

    c->group = group;
    if (group && config_setting_source_file(group))
        mh_conf_set_base(c, config_setting_source_file(group), 1);
    return c;
}

void mh_conf_set_base(struct mh_conf *c, const char *file_or_dir, int is_file)
{
    const char *slash = is_file ? strrchr(file_or_dir, '/') : NULL;

    free(c->base_dir);
    if (!is_file)
        c->base_dir = mh_xstrdup(file_or_dir);
    else if (slash)
        c->base_dir =
            mh_xstrndup(file_or_dir, slash == file_or_dir ? 1 : (size_t)(slash - file_or_dir));
    else
        c->base_dir = NULL;
}

void mh_conf_free(struct mh_conf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npaths; i++)
        free(c->paths[i]);
    free(c->paths);
    free(c->base_dir);
    free(c);
}

int mh_host_log_enabled(enum mh_log_level level)
{
    return mh_log_enabled(level);
}

bool mh_host_log_is_enabled(enum mh_log_level level)
{
    return mh_log_enabled(level);
}

void mh_host_logv(const struct mh_host *host, enum mh_log_level level, const char *fmt, va_list ap)
{
    if (mh_log_enabled(level))
        mh_log_vwrite(level, host ? host->name : "module", fmt, ap);
}

enum mh_status mh_host_errorv_impl(struct mh_host *host, const char *fmt, va_list ap)
{
    (void)vsnprintf(host->error, sizeof(host->error), fmt, ap);
    return MH_OK;
}

const char *mh_host_name_impl(const struct mh_host *host)
{
    return host->name;
}

void mh_host_log(const struct mh_host *host, enum mh_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mh_host_logv(host, level, fmt, ap);
    va_end(ap);
}

enum mh_status mh_host_error_impl(struct mh_host *host, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mh_host_errorv_impl(host, fmt, ap);
    va_end(ap);
    return MH_OK;
}

static const config_setting_t *conf_find(const struct mh_conf *conf, const char *path)
{
    if (!conf || !conf->group || !path)
        return NULL;
    return config_setting_lookup((config_setting_t *)(uintptr_t)conf->group, path);
}

enum mh_status mh_host_conf_string(const struct mh_conf *conf, const char *path, const char **out)
{
    const config_setting_t *s = conf_find(conf, path);

    if (!s)
        return MH_E_NOTFOUND;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return MH_E_INVAL;
    *out = config_setting_get_string(s);
    return MH_OK;
}

enum mh_status mh_host_conf_path(const struct mh_conf *conf, const char *path, const char **out)
{
    struct mh_conf *c = (struct mh_conf *)(uintptr_t)conf;
    const char *v = NULL;
    enum mh_status rc = mh_host_conf_string(conf, path, &v);
    char *full;

    if (rc != MH_OK)
        return rc;
    if (v[0] == '/' || !c->base_dir || !v[0]) {
        *out = v;
        return MH_OK;
    }
    full = mh_xasprintf("%s/%s", c->base_dir, v);
    c->paths = mh_xrealloc(c->paths, (c->npaths + 1) * sizeof(*c->paths));
    c->paths[c->npaths++] = full;
    *out = full;
    return MH_OK;
}

enum mh_status mh_host_conf_int(const struct mh_conf *conf, const char *path, long long *out)
{
    const config_setting_t *s = conf_find(conf, path);

    if (!s)
        return MH_E_NOTFOUND;
    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
        return MH_E_INVAL;
    *out = config_setting_get_int64(s);
    return MH_OK;
}

enum mh_status mh_host_conf_bool(const struct mh_conf *conf, const char *path, int *out)
{
    const config_setting_t *s = conf_find(conf, path);

    if (!s)
        return MH_E_NOTFOUND;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return MH_E_INVAL;
    *out = config_setting_get_bool(s);
    return MH_OK;
}

enum mh_status mh_host_conf_float(const struct mh_conf *conf, const char *path, double *out)
{
    const config_setting_t *s = conf_find(conf, path);

    if (!s)
        return MH_E_NOTFOUND;
    if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
        *out = config_setting_get_float(s);
    else if (config_setting_type(s) == CONFIG_TYPE_INT ||
             config_setting_type(s) == CONFIG_TYPE_INT64)
        *out = (double)config_setting_get_int64(s);
    else
        return MH_E_INVAL;
    return MH_OK;
}
