/*
 * kv: a JSON REST API over a named store. GET/PUT/DELETE /kv/{key} with ETag versions and
 * If-Match / If-None-Match (any entity-tag list, RFC 9110), and GET /kv?prefix=&limit=&cursor= for
 * ordered pages of keys. Store calls may block, so every handler runs on the worker pool.
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
        mh_host_error(host,
                      store ? "store '%s' is not in this module's `stores` list"
                            : "no store: list one in the module's `stores`",
                      store);
        free(st);
        return MH_E_INVAL;
    }
    if (st->max_key_bytes < 1 || st->max_key_bytes > MH_STORE_MAX_KEY || st->max_value_bytes < 0 ||
        st->max_page < 1 || st->default_page < 1 || st->default_page > st->max_page) {
        mh_host_error(host,
                      "limits out of range: max_key_bytes 1..%d, max_value_bytes >= 0, "
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

/* The length of the valid multi-byte UTF-8 sequence at @p s (@p n bytes left), or 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;

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
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0; /* overlong, a surrogate, or past U+10FFFF */
    return len;
}

/* Keys are UTF-8 text without control characters, so they travel in URLs and JSON. */
static int valid_key_text(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len;

        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        len = utf8_seq_len(s + i, n - i);
        if (!len)
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

    (void)snprintf(etag, sizeof(etag), "\"%" PRIu64 "\"", version);
    mh_resp_header(req, "ETag", etag);
}

/* --- Preconditions (RFC 9110, section 13.1) --- */

#define MAX_TAGS 32

/* A parsed If-Match or If-None-Match field: "*", or a list of entity tags. */
struct tag_list {
    int is_present;
    int is_any; /* "*" */
    size_t n;
    struct {
        const char *opaque; /* between the quotes; borrowed from the header */
        size_t len;
        int is_weak;
    } tags[MAX_TAGS];
};

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* etagc = %x21 / %x23-7E / obs-text */
static int is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

/*
 * Parses `"*" / #entity-tag` from @p s, where entity-tag = [ W/ ] DQUOTE *etagc DQUOTE and
 * empty list elements are ignored. @return 1, or 0 for a malformed value (or more than
 * MAX_TAGS tags).
 */
/* Adds the entity-tag at @p s (before @p end) to @p out. @return the rest of the list
 * after it and its spaces (at a comma or @p end), or NULL if it is malformed. */
static const char *parse_tag(const char *s, const char *end, struct tag_list *out)
{
    int is_weak = 0;
    const char *open;

    if (end - s >= 2 && s[0] == 'W' && s[1] == '/') {
        is_weak = 1;
        s += 2;
    }
    if (s >= end || *s != '"')
        return NULL;
    open = ++s;
    while (s < end && is_etagc((unsigned char)*s))
        s++;
    if (s >= end || *s != '"' || out->n == MAX_TAGS)
        return NULL;
    out->tags[out->n].opaque = open;
    out->tags[out->n].len = (size_t)(s - open);
    out->tags[out->n].is_weak = is_weak;
    out->n++;
    s++;
    while (s < end && is_ows(*s))
        s++;
    if (s < end && *s != ',')
        return NULL; /* two tags need a comma between them */
    return s;
}

static int parse_tags(const char *s, struct tag_list *out)
{
    size_t len = strlen(s);

    memset(out, 0, sizeof(*out));
    out->is_present = 1;
    while (len && is_ows(*s)) {
        s++;
        len--;
    }
    while (len && is_ows(s[len - 1]))
        len--;
    if (len == 1 && *s == '*') {
        out->is_any = 1;
        return 1;
    }
    for (const char *end = s + len; s && s < end;) {
        if (*s == ',' || is_ows(*s)) /* empty elements and the space around commas */
            s++;
        else
            s = parse_tag(s, end, out);
    }
    return s != NULL;
}

/*
 * Whether the record at @p version (0: absent) matches @p l: "*" matches any record; a tag
 * matches when its opaque part is the version's digits. If-Match compares strongly (a weak
 * tag never matches), If-None-Match weakly (section 8.8.3.2).
 */
static int tags_match(const struct tag_list *l, uint64_t version, int is_weak_ok)
{
    char digits[24];
    size_t n;

    if (!version)
        return 0;
    if (l->is_any)
        return 1;
    n = (size_t)snprintf(digits, sizeof(digits), "%" PRIu64, version);
    for (size_t i = 0; i < l->n; i++) {
        if ((is_weak_ok || !l->tags[i].is_weak) && l->tags[i].len == n &&
            memcmp(l->tags[i].opaque, digits, n) == 0)
            return 1;
    }
    return 0;
}

/* The one version a strong If-Match list can match, if it has one candidate: a tag of our
 * form "N". @return the number of candidates (0, 1 or more); *version is the first. */
static size_t strong_candidates(const struct tag_list *l, uint64_t *version)
{
    size_t count = 0;

    for (size_t i = 0; i < l->n; i++) {
        const char *p = l->tags[i].opaque;
        size_t len = l->tags[i].len;
        uint64_t v = 0;
        size_t k;

        if (l->tags[i].is_weak || len == 0 || len > 20 || p[0] == '0')
            continue;
        for (k = 0; k < len && p[k] >= '0' && p[k] <= '9'; k++) {
            if (v > (UINT64_MAX - (uint64_t)(p[k] - '0')) / 10)
                break;
            v = v * 10 + (uint64_t)(p[k] - '0');
        }
        if (k < len || v >= MH_STORE_EXISTS)
            continue; /* not a version any record can have */
        if (count++ == 0)
            *version = v;
    }
    return count;
}

/* Both precondition fields of a request. */
struct conds {
    struct tag_list im, inm;
};

/* Parses If-Match and If-None-Match. @return MH_OK, or MH_E_INVAL after replying 400. */
static enum mh_status read_conds(struct mh_req *req, struct conds *c)
{
    const char *im = mh_req_header(req, "If-Match");
    const char *inm = mh_req_header(req, "If-None-Match");

    memset(c, 0, sizeof(*c));
    if (im && !parse_tags(im, &c->im)) {
        mh_reply_problem(req, 400, NULL,
                         "If-Match must be * or a list of entity tags like "
                         "\"12\" (at most %d)",
                         MAX_TAGS);
        return MH_E_INVAL;
    }
    if (inm && !parse_tags(inm, &c->inm)) {
        mh_reply_problem(req, 400, NULL,
                         "If-None-Match must be * or a list of entity tags "
                         "like \"12\" (at most %d)",
                         MAX_TAGS);
        return MH_E_INVAL;
    }
    return MH_OK;
}

/* Whether the preconditions hold for the record at @p version (0: absent). */
static int conds_hold(const struct conds *c, uint64_t version)
{
    if (c->im.is_present && !tags_match(&c->im, version, 0))
        return 0;
    if (c->inm.is_present && tags_match(&c->inm, version, 1))
        return 0;
    return 1;
}

/*
 * The expectation that makes the write atomic with the preconditions, when one exists
 * without reading the record first: MH_STORE_ANY, MH_STORE_ABSENT, MH_STORE_EXISTS or one
 * version. @return 1 with *expect; 0 if the record must be read (lists, both fields); -1 if
 * no record can satisfy the preconditions.
 */
static int direct_expect(const struct conds *c, int for_put, uint64_t *expect)
{
    if (!c->im.is_present && !c->inm.is_present) {
        *expect = MH_STORE_ANY;
        return 1;
    }
    if (c->im.is_present && c->inm.is_present)
        return 0;
    if (c->im.is_present) {
        size_t n;

        if (c->im.is_any) {
            *expect = MH_STORE_EXISTS; /* atomic in the store: no read-then-write race */
            return 1;
        }
        n = strong_candidates(&c->im, expect);
        return n == 0 ? -1 : n == 1 ? 1 : 0;
    }
    if (c->inm.is_any && for_put) {
        *expect = MH_STORE_ABSENT;
        return 1;
    }
    return 0;
}

static enum mh_status precondition_failed(struct mh_req *req)
{
    return mh_reply_problem(req, 412, NULL,
                            "the key's version does not match the request's "
                            "precondition");
}

/* How many times a write made under read preconditions is retried when the record changed
 * between the read and the write. */
#define PRECONDITION_ROUNDS 8

/* Replies for a store failure; @return MH_OK (a reply was made). */
static enum mh_status store_failed(struct mh_req *req, enum mh_status rc)
{
    switch (rc) {
    case MH_E_NOTFOUND:
        return mh_reply_problem(req, 404, NULL, "no such key");
    case MH_E_CONFLICT:
        return mh_reply_problem(req, 412, NULL,
                                "the key's version does not match the request's "
                                "precondition");
    case MH_E_INVAL:
        return mh_reply_problem(req, 400, NULL, "%s", mh_store_error());
    case MH_E_LIMIT:
        return mh_reply_problem(req, 413, NULL, "%s", mh_store_error());
    case MH_E_UNAVAILABLE:
        mh_resp_header(req, "Retry-After", "1");
        return mh_reply_problem(req, 503, NULL, "the store is unavailable: %s", mh_store_error());
    default:
        mh_req_logf(req, MH_LOG_ERROR, "store failure: %s: %s", mh_strerror(rc), mh_store_error());
        return mh_reply_problem(req, 500, NULL, "the store failed");
    }
}

static enum mh_status kv_get(struct mh_req *req, void *state)
{
    const struct kv_state *st = state;
    struct mh_value v;
    struct conds c;
    size_t klen;
    const char *key = key_of(req, st, &klen);
    enum mh_status rc;

    if (!key || read_conds(req, &c) != MH_OK)
        return MH_OK; /* replied */
    rc = mh_store_get(st->store, key, klen, &v);
    if (rc != MH_OK && rc != MH_E_NOTFOUND)
        return store_failed(req, rc);
    if (c.im.is_present && !tags_match(&c.im, v.version, 0)) {
        mh_value_free(&v);
        return precondition_failed(req);
    }
    if (rc == MH_E_NOTFOUND)
        return store_failed(req, rc);
    set_etag(req, v.version);
    if (c.inm.is_present && tags_match(&c.inm, v.version, 1))
        rc = mh_reply(req, 304, NULL, NULL, 0); /* the client's copy is current */
    else
        rc = mh_reply(req, 200, "application/json", v.data, v.len);
    mh_value_free(&v);
    return rc;
}

/* A write of one key with an expectation, as kv_put and kv_delete make it. */
typedef enum mh_status (*write_fn)(const struct kv_state *st, const char *key, size_t klen,
                                   uint64_t expect, void *arg);

/*
 * Runs @p write so that the preconditions @p c hold for the record it replaces: in one store
 * call when an expectation says it all (no field, "*", one tag), else by reading the record,
 * checking, and writing with its version as the expectation (again if it changed meanwhile).
 * @return the write's status; MH_E_CONFLICT when the preconditions fail; MH_E_NOTFOUND when
 * they hold for a missing key that a delete cannot remove.
 */
static enum mh_status conditional_write(const struct kv_state *st, const char *key, size_t klen,
                                        const struct conds *c, int for_put, write_fn write,
                                        void *arg)
{
    uint64_t expect = MH_STORE_ANY;
    int direct = direct_expect(c, for_put, &expect);
    enum mh_status rc = MH_E_CONFLICT;

    if (direct < 0)
        return MH_E_CONFLICT; /* e.g. If-Match: "nope-999": no record has that tag */
    if (direct > 0)
        return write(st, key, klen, expect, arg);
    for (int round = 0; round < PRECONDITION_ROUNDS && rc == MH_E_CONFLICT; round++) {
        struct mh_value v;
        uint64_t cur;

        rc = mh_store_get(st->store, key, klen, &v);
        if (rc != MH_OK && rc != MH_E_NOTFOUND)
            return rc;
        cur = v.version; /* 0 if absent */
        mh_value_free(&v);
        if (!conds_hold(c, cur))
            return MH_E_CONFLICT;
        if (!cur && !for_put)
            return MH_E_NOTFOUND;
        rc = write(st, key, klen, cur ? cur : MH_STORE_ABSENT, arg);
    }
    return rc;
}

struct put_args {
    const void *body;
    size_t len;
    uint64_t version;
    int created;
};

static enum mh_status put_write(const struct kv_state *st, const char *key, size_t klen,
                                uint64_t expect, void *arg)
{
    struct put_args *a = arg;

    return mh_store_put(st->store, key, klen, a->body, a->len, expect, &a->version, &a->created);
}

static enum mh_status kv_put(struct mh_req *req, void *state)
{
    const struct kv_state *st = state;
    struct json_object *doc = NULL, *out;
    const char *detail = NULL;
    struct put_args a = {0};
    struct conds c;
    size_t klen;
    const char *key = key_of(req, st, &klen);
    enum mh_status rc;

    if (!key)
        return MH_OK;
    a.body = mh_req_body(req, &a.len);
    if ((long long)a.len > st->max_value_bytes)
        return mh_reply_problem(req, 413, NULL, "the value is %zu bytes; the limit is %lld", a.len,
                                st->max_value_bytes);
    rc = mh_req_json(req, &doc, &detail);
    if (rc == MH_E_LIMIT)
        return mh_reply_problem(req, 413, NULL, "%s", detail);
    if (rc != MH_OK)
        return mh_reply_problem(req, 400, NULL, "the value must be JSON: %s",
                                detail ? detail : "invalid");
    if (read_conds(req, &c) != MH_OK)
        return MH_OK; /* replied */
    rc = conditional_write(st, key, klen, &c, 1, put_write, &a);
    if (rc != MH_OK)
        return store_failed(req, rc);
    out = json_object_new_object();
    if (!out)
        return MH_E_NOMEM;
    json_object_object_add(out, "key", json_object_new_string_len(key, (int)klen));
    json_object_object_add(out, "version", json_object_new_int64((int64_t)a.version));
    set_etag(req, a.version);
    return mh_reply_json(req, a.created ? 201 : 200, out);
}

static enum mh_status delete_write(const struct kv_state *st, const char *key, size_t klen,
                                   uint64_t expect, void *arg)
{
    enum mh_status rc = mh_store_delete(st->store, key, klen, expect);

    (void)arg;
    if (rc == MH_E_NOTFOUND && expect != MH_STORE_ANY)
        rc = MH_E_CONFLICT; /* an If-Match on a missing key is a failed precondition */
    return rc;
}

static enum mh_status kv_delete(struct mh_req *req, void *state)
{
    const struct kv_state *st = state;
    struct conds c;
    size_t klen;
    const char *key = key_of(req, st, &klen);
    enum mh_status rc;

    if (!key || read_conds(req, &c) != MH_OK)
        return MH_OK; /* replied */
    rc = conditional_write(st, key, klen, &c, 0, delete_write, NULL);
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
        return mh_reply_problem(req, 400, NULL, "limit must be an integer 1..%lld", st->max_page);
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
    rc = mh_store_scan(st->store, prefix, strlen(prefix), cursor, strlen(cursor), (size_t)limit + 1,
                       collect, &p);
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
