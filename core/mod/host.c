/*
 * The function table every module receives, and the calls that are not about a request:
 * logging with the module's name, settings look-ups and init error messages.
 */
#include "mod/host.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "mod/loader.h"
#include "base/log.h"
#include "base/mem.h"
#include "http/request.h"
#include "ws/pubsub.h"
#include "mod/store.h"
#include "ws/ws.h"

struct mh_host *mh_host_new(const struct mh_module *m, const char *name)
{
    struct mh_host *h = mh_xcalloc(1, sizeof(*h));

    h->module = m;
    snprintf(h->name, sizeof(h->name), "%s", name);
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
        c->base_dir = mh_xstrndup(file_or_dir, slash == file_or_dir ? 1 : (size_t)(slash - file_or_dir));
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

static int api_log_enabled(enum mh_log_level level)
{
    return mh_log_enabled(level);
}

static void api_log(const struct mh_host *host, enum mh_log_level level, const char *fmt, ...)
    MH_PRINTF(3, 4);
static void api_log(const struct mh_host *host, enum mh_log_level level, const char *fmt, ...)
{
    va_list ap;

    if (!mh_log_enabled(level))
        return;
    va_start(ap, fmt);
    mh_log_vwrite(level, host ? host->name : "module", fmt, ap);
    va_end(ap);
}

static enum mh_status api_host_error(struct mh_host *host, const char *fmt, ...) MH_PRINTF(2, 3);
static enum mh_status api_host_error(struct mh_host *host, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(host->error, sizeof(host->error), fmt, ap);
    va_end(ap);
    return MH_OK;
}

static const config_setting_t *conf_find(const struct mh_conf *conf, const char *path)
{
    if (!conf || !conf->group || !path)
        return NULL;
    return config_setting_lookup((config_setting_t *)(uintptr_t)conf->group, path);
}

static enum mh_status api_conf_string(const struct mh_conf *conf, const char *path,
                                      const char **out)
{
    const config_setting_t *s = conf_find(conf, path);

    if (!s)
        return MH_E_NOTFOUND;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return MH_E_INVAL;
    *out = config_setting_get_string(s);
    return MH_OK;
}

static enum mh_status api_conf_path(const struct mh_conf *conf, const char *path,
                                    const char **out)
{
    struct mh_conf *c = (struct mh_conf *)(uintptr_t)conf;
    const char *v = NULL;
    enum mh_status rc = api_conf_string(conf, path, &v);
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

static enum mh_status api_conf_int(const struct mh_conf *conf, const char *path, long long *out)
{
    const config_setting_t *s = conf_find(conf, path);

    if (!s)
        return MH_E_NOTFOUND;
    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
        return MH_E_INVAL;
    *out = config_setting_get_int64(s);
    return MH_OK;
}

static enum mh_status api_conf_bool(const struct mh_conf *conf, const char *path, int *out)
{
    const config_setting_t *s = conf_find(conf, path);

    if (!s)
        return MH_E_NOTFOUND;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return MH_E_INVAL;
    *out = config_setting_get_bool(s);
    return MH_OK;
}

static enum mh_status api_conf_float(const struct mh_conf *conf, const char *path, double *out)
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

static struct mh_store *api_store_find(struct mh_host *host, const char *name)
{
    const struct mh_module *m = host ? host->module : NULL;

    if (!m || m->nstores == 0)
        return NULL;
    if (!name)
        return m->stores[0];
    for (size_t i = 0; i < m->nstores; i++) {
        if (strcmp(m->stores[i]->name, name) == 0)
            return m->stores[i];
    }
    return NULL;
}

const struct mh_api mh_core_api = {
    .size = sizeof(struct mh_api),
    .req_method = mh_req_method_impl,
    .req_path = mh_req_path_impl,
    .req_param = mh_req_param_impl,
    .req_query = mh_req_query_impl,
    .req_header = mh_req_header_impl,
    .req_headers = mh_req_headers_impl,
    .req_body = mh_req_body_impl,
    .req_json = mh_req_json_impl,
    .req_alloc = mh_req_alloc_impl,
    .req_defer = mh_req_defer_impl,
    .req_id = mh_req_id_impl,
    .resp_header = mh_resp_header_impl,
    .reply = mh_reply_impl,
    .reply_json = mh_reply_json_impl,
    .reply_problem = mh_reply_problem_impl,
    .log_enabled = api_log_enabled,
    .log = api_log,
    .req_log = mh_req_log_impl,
    .host_error = api_host_error,
    .conf_string = api_conf_string,
    .conf_int = api_conf_int,
    .conf_bool = api_conf_bool,
    .conf_float = api_conf_float,
    .strerror = mh_status_str,
    .req_cancelled = mh_req_cancelled_impl,
    .task_submit = mh_task_submit_impl,
    .req_task = mh_req_task_impl,
    .store_find = api_store_find,
    .store_get = mh_store_get_impl,
    .store_put = mh_store_put_impl,
    .store_delete = mh_store_delete_impl,
    .store_scan = mh_store_scan_impl,
    .store_error = mh_store_error_impl,
    .store_set_error = mh_store_set_error_impl,
    .value_free = mh_value_free_impl,
    .ws_send = mh_ws_send_impl,
    .ws_close = mh_ws_close_impl,
    .ws_ref = mh_ws_ref_impl,
    .ws_unref = mh_ws_unref_impl,
    .ws_set_data = mh_ws_set_data_impl,
    .ws_data = mh_ws_data_impl,
    .ws_id = mh_ws_id_impl,
    .ws_param = mh_ws_param_impl,
    .ws_join = mh_ws_join_impl,
    .ws_leave = mh_ws_leave_impl,
    .ws_publish = mh_ws_publish_impl,
    .conf_path = api_conf_path,
};
