/*
 * The store layer between modules and drivers: opening and closing declared stores, argument
 * checks common to every driver, and the per-thread error message.
 */
#include "mod/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "base/metrics.h"
#include "mod/host.h"
#include "mod/loader.h"

static _Thread_local char store_errmsg[512];

const char *mh_store_error_impl(void)
{
    return store_errmsg;
}

void mh_store_set_error_impl(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(store_errmsg, sizeof(store_errmsg), fmt, ap);
    va_end(ap);
}

void mh_value_free_impl(struct mh_value *v)
{
    if (!v)
        return;
    free(v->data);
    v->data = NULL;
    v->len = 0;
    v->version = 0;
}

static void sig_append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);

    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = mh_xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

static void sig_setting(char **buf, size_t *len, size_t *cap, const config_setting_t *s)
{
    char num[64];

    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP:
    case CONFIG_TYPE_LIST:
    case CONFIG_TYPE_ARRAY:
        sig_append(buf, len, cap, config_setting_type(s) == CONFIG_TYPE_GROUP ? "{" : "(");
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

            if (config_setting_name(e)) {
                sig_append(buf, len, cap, config_setting_name(e));
                sig_append(buf, len, cap, "=");
            }
            sig_setting(buf, len, cap, e);
            sig_append(buf, len, cap, ";");
        }
        sig_append(buf, len, cap, config_setting_type(s) == CONFIG_TYPE_GROUP ? "}" : ")");
        break;
    case CONFIG_TYPE_STRING:
        sig_append(buf, len, cap, "\"");
        sig_append(buf, len, cap, config_setting_get_string(s));
        sig_append(buf, len, cap, "\"");
        break;
    case CONFIG_TYPE_BOOL:
        sig_append(buf, len, cap, config_setting_get_bool(s) ? "true" : "false");
        break;
    case CONFIG_TYPE_FLOAT:
        (void)snprintf(num, sizeof(num), "%.17g", config_setting_get_float(s));
        sig_append(buf, len, cap, num);
        break;
    default:
        (void)snprintf(num, sizeof(num), "%lld", config_setting_get_int64(s));
        sig_append(buf, len, cap, num);
    }
}

char *mh_store_signature(const char *driver, const config_setting_t *settings)
{
    size_t len = 0, cap = 64;
    char *buf = mh_xmalloc(cap);

    buf[0] = '\0';
    sig_append(&buf, &len, &cap, driver);
    if (settings) {
        const char *file = config_setting_source_file(settings);

        sig_setting(&buf, &len, &cap, settings);
        /* Relative paths resolve against the file's directory: part of the identity. */
        sig_append(&buf, &len, &cap, "@");
        sig_append(&buf, &len, &cap, file ? file : "");
    }
    return buf;
}

/* Copies a settings group into a config of its own, so the store can outlive the files. */
static void copy_setting(config_setting_t *dst, const config_setting_t *src)
{
    for (int i = 0; i < config_setting_length(src); i++) {
        const config_setting_t *e = config_setting_get_elem(src, (unsigned)i);
        int type = config_setting_type(e);
        config_setting_t *d = config_setting_add(dst, config_setting_name(e), type);

        if (!d)
            continue;
        switch (type) {
        case CONFIG_TYPE_GROUP:
        case CONFIG_TYPE_LIST:
        case CONFIG_TYPE_ARRAY:
            copy_setting(d, e);
            break;
        case CONFIG_TYPE_STRING:
            config_setting_set_string(d, config_setting_get_string(e));
            break;
        case CONFIG_TYPE_BOOL:
            config_setting_set_bool(d, config_setting_get_bool(e));
            break;
        case CONFIG_TYPE_FLOAT:
            config_setting_set_float(d, config_setting_get_float(e));
            break;
        case CONFIG_TYPE_INT:
            config_setting_set_int(d, config_setting_get_int(e));
            break;
        default:
            config_setting_set_int64(d, config_setting_get_int64(e));
        }
    }
}

enum mh_status mh_store_open(const char *name, const struct mh_store_driver *driver,
                             const struct mh_module *provider, const config_setting_t *settings,
                             struct mh_store **out, struct mh_err *err)
{
    struct mh_store *s = mh_xcalloc(1, sizeof(*s));
    const config_setting_t *copy = NULL;
    enum mh_status rc;

    s->name = mh_xstrdup(name);
    s->driver = driver;
    s->signature = mh_store_signature(driver->name, settings);
    s->refs = 1;
    if (settings) {
        s->settings_copy = mh_xcalloc(1, sizeof(*s->settings_copy));
        config_init(s->settings_copy);
        copy_setting(config_root_setting(s->settings_copy), settings);
        copy = config_root_setting(s->settings_copy);
    }
    s->conf = mh_conf_new(copy);
    if (settings && config_setting_source_file(settings))
        mh_conf_set_base(s->conf, config_setting_source_file(settings), 1);
    store_errmsg[0] = '\0';
    /* The provider's host is valid during open only: the store may outlive its generation. */
    rc = driver->open(provider->host, s->conf, &s->db);
    if (rc != MH_OK) {
        mh_err_set(err, rc, NULL, 0, "store '%s' (driver '%s' of module '%s'): cannot open: %s",
                   name, driver->name, provider->name,
                   store_errmsg[0] ? store_errmsg : mh_status_str(rc));
        s->driver = NULL; /* nothing to close */
        mh_store_unref(s);
        return rc;
    }
    *out = s;
    return MH_OK;
}

void mh_store_close(struct mh_store *s)
{
    mh_store_unref(s);
}

void mh_store_unref(struct mh_store *s)
{
    if (!s || --s->refs > 0)
        return;
    if (s->driver && s->driver->close)
        s->driver->close(s->db);
    mh_conf_free(s->conf);
    if (s->settings_copy) {
        config_destroy(s->settings_copy);
        free(s->settings_copy);
    }
    free(s->signature);
    free(s->name);
    free(s);
}

static enum mh_status check_key(const void *key, size_t klen)
{
    store_errmsg[0] = '\0';
    if (!key || klen == 0) {
        mh_store_set_error_impl("key is empty");
        return MH_E_INVAL;
    }
    if (klen > MH_STORE_MAX_KEY) {
        mh_store_set_error_impl("key of %zu bytes exceeds the limit of %d", klen, MH_STORE_MAX_KEY);
        return MH_E_INVAL;
    }
    return MH_OK;
}

/* --- Metrics: store calls come from any thread (workers mostly), so the counters are
 * shared; a store call costs far more than the add. --- */

const char *const mh_store_op_names[MH_STORE_OPS] = {"get", "put", "delete", "scan"};

static int64_t op_start(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static enum mh_status op_end(struct mh_store *st, enum mh_store_op op, int64_t t0,
                             enum mh_status rc)
{
    int64_t ns = op_start() - t0;

    mh_stat_add_shared(&st->calls[op], 1);
    if (rc != MH_OK && rc != MH_E_NOTFOUND && rc != MH_E_CONFLICT)
        mh_stat_add_shared(&st->errors[op], 1);
    mh_histogram_add(&st->latency, ns > 0 ? (uint64_t)ns / 1000 : 0, true);
    return rc;
}

enum mh_status mh_store_get_impl(struct mh_store *st, const void *key, size_t klen,
                                 struct mh_value *out)
{
    enum mh_status rc;

    memset(out, 0, sizeof(*out)); /* so that mh_value_free is safe after any failure */
    rc = check_key(key, klen);
    if (rc != MH_OK)
        return rc;
    return op_end(st, MH_STORE_OP_GET, op_start(), st->driver->get(st->db, key, klen, out));
}

enum mh_status mh_store_put_impl(struct mh_store *st, const void *key, size_t klen, const void *val,
                                 size_t vlen, uint64_t expect, uint64_t *version, int *created)
{
    enum mh_status rc = check_key(key, klen);
    uint64_t v = 0;
    int c = 0;

    if (rc != MH_OK)
        return rc;
    if (vlen && !val) {
        mh_store_set_error_impl("value is NULL with a length of %zu", vlen);
        return MH_E_INVAL;
    }
    if (expect != MH_STORE_ANY && !(st->driver->caps & MH_STORE_CAP_CAS)) {
        mh_store_set_error_impl("store '%s' (driver '%s') does not support versioned writes",
                                st->name, st->driver->name);
        return MH_E_INVAL;
    }
    rc = op_end(st, MH_STORE_OP_PUT, op_start(),
                st->driver->put(st->db, key, klen, vlen ? val : "", vlen, expect, &v, &c));
    if (rc == MH_OK) {
        if (version)
            *version = v;
        if (created)
            *created = c;
    }
    return rc;
}

enum mh_status mh_store_delete_impl(struct mh_store *st, const void *key, size_t klen,
                                    uint64_t expect)
{
    enum mh_status rc = check_key(key, klen);

    if (rc != MH_OK)
        return rc;
    if (expect == MH_STORE_ABSENT) {
        mh_store_set_error_impl("delete cannot expect the key to be absent");
        return MH_E_INVAL;
    }
    if (expect != MH_STORE_ANY && !(st->driver->caps & MH_STORE_CAP_CAS)) {
        mh_store_set_error_impl("store '%s' (driver '%s') does not support versioned deletes",
                                st->name, st->driver->name);
        return MH_E_INVAL;
    }
    return op_end(st, MH_STORE_OP_DELETE, op_start(), st->driver->del(st->db, key, klen, expect));
}

enum mh_status mh_store_scan_impl(struct mh_store *st, const void *prefix, size_t plen,
                                  const void *after, size_t alen, size_t limit, mh_scan_fn fn,
                                  void *arg)
{
    store_errmsg[0] = '\0';
    if (!(st->driver->caps & MH_STORE_CAP_SCAN) || !st->driver->scan) {
        mh_store_set_error_impl("store '%s' (driver '%s') does not support scans", st->name,
                                st->driver->name);
        return MH_E_INVAL;
    }
    if (plen > MH_STORE_MAX_KEY || alen > MH_STORE_MAX_KEY || !fn || limit == 0 ||
        (plen && !prefix) || (alen && !after)) {
        mh_store_set_error_impl("invalid scan arguments (prefix %zu bytes, cursor %zu bytes, "
                                "limit %zu)",
                                plen, alen, limit);
        return MH_E_INVAL;
    }
    return op_end(st, MH_STORE_OP_SCAN, op_start(),
                  st->driver->scan(st->db, plen ? prefix : "", plen, alen ? after : "", alen, limit,
                                   fn, arg));
}

/* The SDK's store_find: a module finds the stores its conf.d entry lists. */
struct mh_store *mh_host_store_find(struct mh_host *host, const char *name)
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
