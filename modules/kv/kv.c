/*
 * kv: a JSON REST API over a named store. GET/PUT/DELETE /kv/{key} with ETag versions and
 * If-Match / If-None-Match, and GET /kv?prefix=&limit=&cursor= for ordered pages of keys.
 * Store calls may block, so every handler runs on the worker pool.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "modhost/sdk.h"

struct kv_state {
    struct mh_store *store;
    long long max_key_bytes;
    long long max_value_bytes;
    long long max_page;
    long long default_page;
};

static enum mh_status kv_init(struct mh_host *host, const struct mh_conf *settings, void **state)
{
    struct kv_state *st = calloc(1, sizeof(*st));
    const char *store = NULL;

    if (!st)
        return MH_E_NOMEM;
    st->max_key_bytes = 256;
    st->max_value_bytes = 1 << 20;
    st->max_page = 1000;
    st->default_page = 100;
    mh_conf_string(settings, "store", &store);
    mh_conf_int(settings, "max_key_bytes", &st->max_key_bytes);
    mh_conf_int(settings, "max_value_bytes", &st->max_value_bytes);
    mh_conf_int(settings, "max_page", &st->max_page);
    mh_conf_int(settings, "default_page", &st->default_page);
    st->store = mh_store_find(host, store);
    if (!st->store) {
        mh_host_error(host, store ? "store '%s' is not in this module's `stores` list"
                                  : "no store: list one in the module's `stores`",
                      store);
        free(st);
        return MH_E_INVAL;
    }
    if (st->max_key_bytes < 1 || st->max_key_bytes > MH_STORE_MAX_KEY || st->max_value_bytes < 0 ||
        st->max_page < 1 || st->default_page < 1 || st->default_page > st->max_page) {
        mh_host_error(host, "limits out of range: max_key_bytes 1..%d, max_value_bytes >= 0, "
                            "1 <= default_page <= max_page",
                      MH_STORE_MAX_KEY);
        free(st);
        return MH_E_INVAL;
    }
    *state = st;
    return MH_OK;
}

static void kv_fini(struct mh_host *host, void *state)
{
    (void)host;
    free(state);
}

/* Keys are UTF-8 text without control characters, so they travel in URLs and JSON. */
static int valid_key_text(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;

        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += len;
    }
    return 1;
}

/* The key from the path, or NULL after replying with the problem. */
static const char *key_of(struct mh_req *req, const struct kv_state *st, size_t *klen)
{
    const char *key = mh_req_param(req, "key");

    if (!key || !*key) {
        mh_reply_problem(req, 400, NULL, "the key is empty");
        return NULL;
    }
    *klen = strlen(key);
    if ((long long)*klen > st->max_key_bytes) {
        mh_reply_problem(req, 400, NULL, "the key is %zu bytes; the limit is %lld", *klen,
                         st->max_key_bytes);
        return NULL;
    }
    if (!valid_key_text((const unsigned char *)key, *klen)) {
        mh_reply_problem(req, 400, NULL, "the key must be UTF-8 text without control characters");
        return NULL;
    }
    return key;
}

static void set_etag(struct mh_req *req, uint64_t version)
{
    char etag[32];

    snprintf(etag, sizeof(etag), "\"%" PRIu64 "\"", version);
    mh_resp_header(req, "ETag", etag);
}

/* Parses one strong entity tag "N". @return 1 and *version, or 0. */
static int parse_etag(const char *s, uint64_t *version)
{
    char *end;
    unsigned long long v;

    while (*s == ' ' || *s == '\t')
        s++;
    if (*s != '"' || s[1] < '0' || s[1] > '9')
        return 0;
    errno = 0;
    v = strtoull(s + 1, &end, 10);
    if (errno || *end != '"' || v == 0)
        return 0;
    for (end++; *end == ' ' || *end == '\t'; end++)
        ;
    if (*end)
        return 0;
    *version = v;
    return 1;
}

/* Replies for a store failure; @return MH_OK (a reply was made). */
static enum mh_status store_failed(struct mh_req *req, enum mh_status rc)
{
    switch (rc) {
    case MH_E_NOTFOUND:
        return mh_reply_problem(req, 404, NULL, "no such key");
    case MH_E_CONFLICT:
        return mh_reply_problem(req, 412, NULL, "the key's version does not match the request's "
                                                "precondition");
    case MH_E_INVAL:
        return mh_reply_problem(req, 400, NULL, "%s", mh_store_error());
    case MH_E_LIMIT:
        return mh_reply_problem(req, 413, NULL, "%s", mh_store_error());
    case MH_E_UNAVAILABLE:
        mh_resp_header(req, "Retry-After", "1");
        return mh_reply_problem(req, 503, NULL, "the store is busy: %s", mh_store_error());
    default:
        mh_req_logf(req, MH_LOG_ERROR, "store failure: %s: %s", mh_strerror(rc),
                    mh_store_error());
        return mh_reply_problem(req, 500, NULL, "the store failed");
    }
}

static enum mh_status kv_get(struct mh_req *req, void *state)
{
    const struct kv_state *st = state;
    struct mh_value v;
    size_t klen;
    const char *key = key_of(req, st, &klen);
    enum mh_status rc;

    if (!key)
        return MH_OK;
    rc = mh_store_get(st->store, key, klen, &v);
    if (rc != MH_OK)
        return store_failed(req, rc);
    set_etag(req, v.version);
    rc = mh_reply(req, 200, "application/json", v.data, v.len);
    mh_value_free(&v);
    return rc;
}

/* The expectation a precondition demands: MH_STORE_ANY, MH_STORE_ABSENT, MH_STORE_EXISTS or a
 * version. @return MH_OK, or an error after replying. */
static enum mh_status precondition(struct mh_req *req, int for_put, uint64_t *expect)
{
    const char *im = mh_req_header(req, "If-Match");
    const char *inm = mh_req_header(req, "If-None-Match");

    *expect = MH_STORE_ANY;
    if (im && inm) {
        mh_reply_problem(req, 400, NULL, "use either If-Match or If-None-Match, not both");
        return MH_E_INVAL;
    }
    if (inm) {
        if (!for_put || strcmp(inm, "*") != 0) {
            mh_reply_problem(req, 400, NULL, "only 'If-None-Match: *' (create only) is "
                                             "supported, on PUT");
            return MH_E_INVAL;
        }
        *expect = MH_STORE_ABSENT;
        return MH_OK;
    }
    if (!im)
        return MH_OK;
    if (strcmp(im, "*") == 0) {
        *expect = MH_STORE_EXISTS; /* atomic in the store: no read-then-write race */
        return MH_OK;
    }
    if (!parse_etag(im, expect)) {
        mh_reply_problem(req, 400, NULL, "If-Match must be one entity tag like \"12\", or *");
        return MH_E_INVAL;
    }
    if (*expect >= MH_STORE_EXISTS) { /* no record has such a version */
        mh_reply_problem(req, 412, NULL, "the key's version does not match the request's "
                                         "precondition");
        return MH_E_CONFLICT;
    }
    return MH_OK;
}

static enum mh_status kv_put(struct mh_req *req, void *state)
{
    const struct kv_state *st = state;
    struct json_object *doc = NULL, *out;
    const char *detail = NULL;
    uint64_t expect, version = 0;
    int created = 0;
    size_t klen, blen;
    const char *key = key_of(req, st, &klen);
    const void *body;
    enum mh_status rc;

    if (!key)
        return MH_OK;
    body = mh_req_body(req, &blen);
    if ((long long)blen > st->max_value_bytes)
        return mh_reply_problem(req, 413, NULL, "the value is %zu bytes; the limit is %lld", blen,
                                st->max_value_bytes);
    rc = mh_req_json(req, &doc, &detail);
    if (rc == MH_E_LIMIT)
        return mh_reply_problem(req, 413, NULL, "%s", detail);
    if (rc != MH_OK)
        return mh_reply_problem(req, 400, NULL, "the value must be JSON: %s",
                                detail ? detail : "invalid");
    if (precondition(req, 1, &expect) != MH_OK)
        return MH_OK; /* replied */
    rc = mh_store_put(st->store, key, klen, body, blen, expect, &version, &created);
    if (rc != MH_OK)
        return store_failed(req, rc);
    out = json_object_new_object();
    if (!out)
        return MH_E_NOMEM;
    json_object_object_add(out, "key", json_object_new_string_len(key, (int)klen));
    json_object_object_add(out, "version", json_object_new_int64((int64_t)version));
    set_etag(req, version);
    return mh_reply_json(req, created ? 201 : 200, out);
}

static enum mh_status kv_delete(struct mh_req *req, void *state)
{
    const struct kv_state *st = state;
    uint64_t expect;
    size_t klen;
    const char *key = key_of(req, st, &klen);
    enum mh_status rc;

    if (!key)
        return MH_OK;
    if (precondition(req, 0, &expect) != MH_OK)
        return MH_OK; /* replied */
    rc = mh_store_delete(st->store, key, klen, expect);
    if (rc == MH_E_NOTFOUND && expect != MH_STORE_ANY)
        rc = MH_E_CONFLICT; /* an If-Match on a missing key is a failed precondition */
    if (rc != MH_OK)
        return store_failed(req, rc);
    return mh_reply(req, 204, NULL, NULL, 0);
}

struct page {
    struct json_object *keys;
    size_t count, limit;
    char *last; /* the limit-th key: the next cursor if more follow */
    int more;
};

static int collect(const void *key, size_t klen, const void *val, size_t vlen, uint64_t version,
                   void *arg)
{
    struct page *p = arg;

    (void)val;
    (void)vlen;
    (void)version;
    if (p->count == p->limit) {
        p->more = 1; /* one record past the page: there is a next page */
        return 1;
    }
    json_object_array_add(p->keys, json_object_new_string_len(key, (int)klen));
    p->count++;
    if (p->count == p->limit) {
        free(p->last);
        p->last = strndup(key, klen);
    }
    return 0;
}

static int parse_limit(const char *s, long long max, long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max)
        return 0;
    *out = v;
    return 1;
}

static enum mh_status kv_list(struct mh_req *req, void *state)
{
    const struct kv_state *st = state;
    const char *prefix = mh_req_query(req, "prefix");
    const char *cursor = mh_req_query(req, "cursor");
    const char *limit_s = mh_req_query(req, "limit");
    long long limit = st->default_page;
    struct page p = {0};
    struct json_object *out;
    enum mh_status rc;

    if (limit_s && !parse_limit(limit_s, st->max_page, &limit))
        return mh_reply_problem(req, 400, NULL, "limit must be an integer 1..%lld",
                                st->max_page);
    if (!prefix)
        prefix = "";
    if (!cursor)
        cursor = "";
    if ((long long)strlen(prefix) > st->max_key_bytes ||
        (long long)strlen(cursor) > st->max_key_bytes)
        return mh_reply_problem(req, 400, NULL, "prefix and cursor are at most %lld bytes",
                                st->max_key_bytes);
    p.keys = json_object_new_array();
    p.limit = (size_t)limit;
    if (!p.keys)
        return MH_E_NOMEM;
    rc = mh_store_scan(st->store, prefix, strlen(prefix), cursor, strlen(cursor),
                       (size_t)limit + 1, collect, &p);
    if (rc != MH_OK) {
        json_object_put(p.keys);
        free(p.last);
        return store_failed(req, rc);
    }
    out = json_object_new_object();
    if (!out) {
        json_object_put(p.keys);
        free(p.last);
        return MH_E_NOMEM;
    }
    json_object_object_add(out, "keys", p.keys);
    json_object_object_add(out, "next_cursor",
                           p.more && p.last ? json_object_new_string(p.last) : NULL);
    free(p.last);
    return mh_reply_json(req, 200, out);
}

static const struct mh_handler_def kv_handlers[] = {
    {"get", kv_get, MH_HANDLER_BLOCKING},
    {"put", kv_put, MH_HANDLER_BLOCKING},
    {"delete", kv_delete, MH_HANDLER_BLOCKING},
    {"list", kv_list, MH_HANDLER_BLOCKING},
    {NULL, NULL, 0},
};

static const struct mh_setting_def kv_settings[] = {
    {"store", MH_SETTING_STRING, "which of the module's stores to use (default: the first)"},
    {"max_key_bytes", MH_SETTING_INT, "longest key, 1..1024 (default 256)"},
    {"max_value_bytes", MH_SETTING_INT, "largest value in bytes (default 1048576)"},
    {"max_page", MH_SETTING_INT, "largest page of keys a list may ask for (default 1000)"},
    {"default_page", MH_SETTING_INT, "page size when a list gives no limit (default 100)"},
    {NULL, 0, NULL},
};

MH_MODULE(.name = "kv", .version = "1.0.0", .flags = MH_MODULE_UNLOAD_SAFE, .init = kv_init,
          .fini = kv_fini, .handlers = kv_handlers, .settings = kv_settings)
