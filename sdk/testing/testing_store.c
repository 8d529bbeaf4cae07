/*
 * The testing host's stores: an in-memory store with versions and compare-and-set (a sorted
 * array under a mutex), or a driver store that checks keys and delegates to the module's driver.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "base/err.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "testing_int.h"

/* --- Stores --- */

static const char *api_store_error(void)
{
    return mh_th_store_err;
}

static void api_store_set_errorv(const char *fmt, va_list ap) MH_VPRINTF(1);
static void api_store_set_errorv(const char *fmt, va_list ap)
{
    (void)vsnprintf(mh_th_store_err, sizeof(mh_th_store_err), fmt, ap);
}

static void api_store_set_error(const char *fmt, ...) MH_PRINTF(1, 2);
static void api_store_set_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    api_store_set_errorv(fmt, ap);
    va_end(ap);
}

static void api_value_free(struct mh_value *v)
{
    if (!v)
        return;
    free(v->data);
    v->data = NULL;
    v->len = 0;
    v->version = 0;
}

void mh_th_store_free(struct mh_store *s)
{
    if (s->driver && s->driver->close && s->db)
        s->driver->close(s->db);
    for (size_t i = 0; i < s->n; i++) {
        free(s->recs[i].key);
        free(s->recs[i].val);
    }
    free(s->recs);
    mh_th_conf_free(s->conf);
    pthread_mutex_destroy(&s->mu);
    free(s->name);
    free(s);
}

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    return c ? c : (alen > blen) - (alen < blen);
}

/* The index of the first record whose key is >= key (> if @p after). */
static size_t store_seek(const struct mh_store *s, const void *key, size_t klen, bool after)
{
    size_t lo = 0, hi = s->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = key_cmp(s->recs[mid].key, s->recs[mid].klen, key, klen);

        if (c < 0 || (after && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct record *store_find(struct mh_store *s, const void *key, size_t klen, size_t *at)
{
    *at = store_seek(s, key, klen, false);
    if (*at < s->n && key_cmp(s->recs[*at].key, s->recs[*at].klen, key, klen) == 0)
        return &s->recs[*at];
    return NULL;
}

static enum mh_status key_check(const void *key, size_t klen)
{
    mh_th_store_err[0] = '\0';
    if (!key || klen == 0 || klen > MH_STORE_MAX_KEY) {
        api_store_set_error("keys are 1..%d bytes, not %zu", MH_STORE_MAX_KEY, klen);
        return MH_E_INVAL;
    }
    return MH_OK;
}

static enum mh_status api_store_get(struct mh_store *st, const void *key, size_t klen,
                                    struct mh_value *out)
{
    enum mh_status rc = key_check(key, klen);
    struct record *r;
    size_t at;

    memset(out, 0, sizeof(*out));
    if (rc != MH_OK)
        return rc;
    if (st->driver) {
        rc = st->driver->get(st->db, key, klen, out);
        if (rc == MH_E_NOTFOUND && !mh_th_store_err[0])
            api_store_set_error("no such key");
        return rc;
    }
    pthread_mutex_lock(&st->mu);
    r = store_find(st, key, klen, &at);
    if (r) {
        out->data = mh_xstrndup((const char *)r->val, r->vlen);
        out->len = r->vlen;
        out->version = r->version;
    }
    pthread_mutex_unlock(&st->mu);
    if (!r) {
        api_store_set_error("no such key");
        return MH_E_NOTFOUND;
    }
    return MH_OK;
}

/* Whether record @p r (NULL: absent) meets the precondition @p expect of a put. */
static bool put_allowed(const struct record *r, uint64_t expect)
{
    if (!r)
        return expect == MH_STORE_ANY || expect == MH_STORE_ABSENT;
    return expect != MH_STORE_ABSENT &&
           (expect == MH_STORE_ANY || expect == MH_STORE_EXISTS || expect == r->version);
}

/* A new record for @p key at index @p at, which keeps the records sorted. */
static struct record *insert_record(struct mh_store *st, size_t at, const void *key, size_t klen)
{
    struct record *r;

    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 16;
        st->recs = mh_xrealloc(st->recs, st->cap * sizeof(*st->recs));
    }
    memmove(&st->recs[at + 1], &st->recs[at], (st->n - at) * sizeof(*st->recs));
    st->n++;
    r = &st->recs[at];
    r->key = (unsigned char *)mh_xstrndup(key, klen);
    r->klen = klen;
    r->val = NULL;
    return r;
}

/* A put into the host's own in-memory store (no driver). */
static enum mh_status memory_put(struct mh_store *st, const void *key, size_t klen, const void *val,
                                 size_t vlen, uint64_t expect, uint64_t *v, int *made)
{
    struct record *r;
    size_t at;

    pthread_mutex_lock(&st->mu);
    r = store_find(st, key, klen, &at);
    if (!put_allowed(r, expect)) {
        pthread_mutex_unlock(&st->mu);
        api_store_set_error("the expected version does not hold");
        return MH_E_CONFLICT;
    }
    if (!r) {
        r = insert_record(st, at, key, klen);
        *made = 1;
    }
    free(r->val);
    r->val = (unsigned char *)mh_xstrndup(val ? val : "", val ? vlen : 0);
    r->vlen = vlen;
    r->version = *v = ++st->version;
    pthread_mutex_unlock(&st->mu);
    return MH_OK;
}

static enum mh_status api_store_put(struct mh_store *st, const void *key, size_t klen,
                                    const void *val, size_t vlen, uint64_t expect,
                                    uint64_t *version, int *created)
{
    enum mh_status rc = key_check(key, klen);
    uint64_t v = 0;
    int made = 0;

    if (rc != MH_OK)
        return rc;
    if (st->driver)
        rc = st->driver->put(st->db, key, klen, val, vlen, expect, &v, &made);
    else
        rc = memory_put(st, key, klen, val, vlen, expect, &v, &made);
    if (rc == MH_OK) {
        if (version)
            *version = v;
        if (created)
            *created = made;
    }
    return rc;
}

static enum mh_status api_store_delete(struct mh_store *st, const void *key, size_t klen,
                                       uint64_t expect)
{
    enum mh_status rc = key_check(key, klen);
    struct record *r;
    size_t at;

    if (rc != MH_OK)
        return rc;
    if (st->driver)
        return st->driver->del(st->db, key, klen, expect);
    pthread_mutex_lock(&st->mu);
    r = store_find(st, key, klen, &at);
    if (!r) {
        rc = MH_E_NOTFOUND;
    } else if (expect != MH_STORE_ANY && expect != MH_STORE_EXISTS && expect != r->version) {
        rc = MH_E_CONFLICT;
    } else {
        free(r->key);
        free(r->val);
        memmove(&st->recs[at], &st->recs[at + 1], (st->n - at - 1) * sizeof(*st->recs));
        st->n--;
    }
    pthread_mutex_unlock(&st->mu);
    if (rc != MH_OK)
        api_store_set_error("%s", rc == MH_E_NOTFOUND ? "no such key"
                                                      : "the expected version does not hold");
    return rc;
}

static enum mh_status api_store_scan(struct mh_store *st, const void *prefix, size_t plen,
                                     const void *after, size_t alen, size_t limit, mh_scan_fn fn,
                                     void *arg)
{
    struct record *copy;
    size_t n = 0, i;

    mh_th_store_err[0] = '\0';
    if (plen > MH_STORE_MAX_KEY || alen > MH_STORE_MAX_KEY || !fn) {
        api_store_set_error("prefix and cursor are at most %d bytes", MH_STORE_MAX_KEY);
        return MH_E_INVAL;
    }
    if (st->driver) {
        if (!st->driver->scan) {
            api_store_set_error("driver '%s' cannot scan", st->driver->name);
            return MH_E_INVAL;
        }
        return st->driver->scan(st->db, prefix, plen, after, alen, limit, fn, arg);
    }
    /* Copied under the lock, delivered without it: the callback may call the store. */
    pthread_mutex_lock(&st->mu);
    i = alen > 0 && key_cmp(after, alen, prefix, plen) >= 0 ? store_seek(st, after, alen, true)
                                                            : store_seek(st, prefix, plen, false);
    copy = mh_xcalloc(st->n - i + 1, sizeof(*copy));
    for (; i < st->n && n < limit; i++) {
        const struct record *r = &st->recs[i];

        if (r->klen < plen || (plen && memcmp(r->key, prefix, plen) != 0))
            break;
        copy[n].key = (unsigned char *)mh_xstrndup((const char *)r->key, r->klen);
        copy[n].klen = r->klen;
        copy[n].val = (unsigned char *)mh_xstrndup((const char *)r->val, r->vlen);
        copy[n].vlen = r->vlen;
        copy[n].version = r->version;
        n++;
    }
    pthread_mutex_unlock(&st->mu);
    for (i = 0; i < n; i++) {
        if (fn(copy[i].key, copy[i].klen, copy[i].val, copy[i].vlen, copy[i].version, arg))
            break;
    }
    for (i = 0; i < n; i++) {
        free(copy[i].key);
        free(copy[i].val);
    }
    free(copy);
    return MH_OK;
}

static struct mh_store *api_store_find(struct mh_host *host, const char *name)
{
    return mh_testing_store(host->t, name);
}

void mh_th_api_store(struct mh_api *a)
{
    a->store_find = api_store_find;
    a->store_get = api_store_get;
    a->store_put = api_store_put;
    a->store_delete = api_store_delete;
    a->store_scan = api_store_scan;
    a->store_error = api_store_error;
    a->store_set_error = api_store_set_error;
    a->value_free = api_value_free;
    a->store_set_errorv = api_store_set_errorv;
}
