/*
 * The store layer between modules and drivers: opening and closing declared stores, argument
 * checks common to every driver, and the per-thread error message.
 */
#include "store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "loader.h"
#include "mem.h"

static _Thread_local char store_errmsg[512];

const char *mh_store_error_impl(void)
{
    return store_errmsg;
}

void mh_store_set_error_impl(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(store_errmsg, sizeof(store_errmsg), fmt, ap);
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

enum mh_status mh_store_open(const char *name, const struct mh_store_driver *driver,
                             const struct mh_module *provider, const config_setting_t *settings,
                             struct mh_store **out, struct mh_err *err)
{
    struct mh_store *s = mh_xcalloc(1, sizeof(*s));
    enum mh_status rc;

    s->name = mh_xstrdup(name);
    s->driver = driver;
    s->provider = provider;
    s->conf = mh_conf_new(settings);
    store_errmsg[0] = '\0';
    rc = driver->open(provider->host, s->conf, &s->db);
    if (rc != MH_OK) {
        mh_err_set(err, rc, NULL, 0, "store '%s' (driver '%s' of module '%s'): cannot open: %s",
                   name, driver->name, provider->name,
                   store_errmsg[0] ? store_errmsg : mh_status_str(rc));
        mh_conf_free(s->conf);
        free(s->name);
        free(s);
        return rc;
    }
    *out = s;
    return MH_OK;
}

void mh_store_close(struct mh_store *s)
{
    if (!s)
        return;
    if (s->driver->close)
        s->driver->close(s->db);
    mh_conf_free(s->conf);
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
        mh_store_set_error_impl("key of %zu bytes exceeds the limit of %d", klen,
                                MH_STORE_MAX_KEY);
        return MH_E_INVAL;
    }
    return MH_OK;
}

enum mh_status mh_store_get_impl(struct mh_store *st, const void *key, size_t klen,
                                 struct mh_value *out)
{
    enum mh_status rc = check_key(key, klen);

    if (rc != MH_OK)
        return rc;
    memset(out, 0, sizeof(*out));
    return st->driver->get(st->db, key, klen, out);
}

enum mh_status mh_store_put_impl(struct mh_store *st, const void *key, size_t klen,
                                 const void *val, size_t vlen, uint64_t expect, uint64_t *version,
                                 int *created)
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
    if (expect != MH_STORE_ANY && expect != MH_STORE_ABSENT &&
        !(st->driver->caps & MH_STORE_CAP_CAS)) {
        mh_store_set_error_impl("store '%s' (driver '%s') does not support versioned writes",
                                st->name, st->driver->name);
        return MH_E_INVAL;
    }
    rc = st->driver->put(st->db, key, klen, vlen ? val : "", vlen, expect, &v, &c);
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
    return st->driver->del(st->db, key, klen, expect);
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
    if (plen > MH_STORE_MAX_KEY || alen > MH_STORE_MAX_KEY || !fn || limit == 0) {
        mh_store_set_error_impl("invalid scan arguments (prefix %zu bytes, cursor %zu bytes, "
                                "limit %zu)",
                                plen, alen, limit);
        return MH_E_INVAL;
    }
    return st->driver->scan(st->db, plen ? prefix : "", plen, alen ? after : "", alen, limit, fn,
                            arg);
}
