/*
 * Route table as a segment trie: each node has sorted literal children, at most one parameter
 * child, and an endpoint per method. Matching backtracks so that a literal is preferred but a
 * parameter still matches when the literal branch leads nowhere.
 */
#include "mod/router.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

static const char *const method_names[MH_METHOD_COUNT] = {"GET",    "HEAD",  "POST",   "PUT",
                                                          "DELETE", "PATCH", "OPTIONS"};

struct endpoint {
    void *target;
    char *tmpl;
    size_t nparams;
    char *names[MH_ROUTE_MAX_PARAMS];
};

struct node {
    char *seg;
    size_t len;
    struct node **kids; /* sorted by (seg, len) */
    size_t nkids;
    struct node *param;
    struct endpoint *ep[MH_METHOD_COUNT];
};

struct mh_router {
    struct node root;
    size_t count;
};

/* A parsed template segment: a literal or a parameter name. */
struct tseg {
    const char *s;
    size_t len;
    bool is_param;
};

enum mh_method mh_method_parse(const char *name)
{
    for (int i = 0; i < MH_METHOD_COUNT; i++) {
        if (strcmp(name, method_names[i]) == 0)
            return (enum mh_method)i;
    }
    return MH_METHOD_UNKNOWN;
}

const char *mh_method_name(enum mh_method m)
{
    if (m < 0 || m >= MH_METHOD_COUNT)
        return "?";
    return method_names[m];
}

/* --- Templates --- */

static bool is_pchar(unsigned char c)
{
    /* RFC 3986 pchar without '%', which is checked separately, and without braces. */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_name_char(unsigned char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

/* Checks the parameter segment @p p of @p tmpl ("{name}", @p len bytes) against the @p n
 * segments before it. */
static enum mh_status check_param(const char *tmpl, const char *p, size_t len,
                                  const struct tseg *segs, size_t n, struct mh_err *err)
{
    if (len < 3 || p[len - 1] != '}')
        return mh_err_set(err, MH_E_INVAL, NULL, 0,
                          "path '%s': a parameter is a whole segment like '{name}'", tmpl);
    for (size_t i = 1; i < len - 1; i++) {
        if (!is_name_char((unsigned char)p[i], i == 1))
            return mh_err_set(err, MH_E_INVAL, NULL, 0,
                              "path '%s': parameter name '%.*s' must match "
                              "[A-Za-z_][A-Za-z0-9_]*",
                              tmpl, (int)(len - 2), p + 1);
    }
    for (size_t i = 0; i < n; i++) {
        if (segs[i].is_param && segs[i].len == len - 2 && memcmp(segs[i].s, p + 1, len - 2) == 0)
            return mh_err_set(err, MH_E_INVAL, NULL, 0, "path '%s': parameter '%.*s' appears twice",
                              tmpl, (int)(len - 2), p + 1);
    }
    return MH_OK;
}

/* Checks the literal segment @p p of @p tmpl (@p len bytes): pchars and %XX escapes. */
static enum mh_status check_literal(const char *tmpl, const char *p, size_t len, struct mh_err *err)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c == '%') {
            if (i + 2 < len && is_hex((unsigned char)p[i + 1]) && is_hex((unsigned char)p[i + 2])) {
                i += 2;
                continue;
            }
            return mh_err_set(err, MH_E_INVAL, NULL, 0, "path '%s': '%%' must start a %%XX escape",
                              tmpl);
        }
        if (!is_pchar(c))
            return mh_err_set(err, MH_E_INVAL, NULL, 0,
                              "path '%s': character '%c' is not allowed in a path "
                              "segment (parameters are whole segments: '{name}')",
                              tmpl, c >= 0x20 && c < 0x7f ? c : '?');
    }
    return MH_OK;
}

/* Splits @p tmpl into @p segs (MH_ROUTE_MAX_SEGMENTS of them); *@p nsegs is 0 on failure. */
static enum mh_status parse_template(const char *tmpl, struct tseg *segs, size_t *nsegs,
                                     struct mh_err *err)
{
    const char *p = tmpl;
    size_t n = 0, nparams = 0;

    *nsegs = 0;
    if (tmpl[0] != '/')
        return mh_err_set(err, MH_E_INVAL, NULL, 0, "path '%s' must start with '/'", tmpl);
    p++;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool is_param = len > 0 && p[0] == '{';
        enum mh_status rc;

        if (n == MH_ROUTE_MAX_SEGMENTS)
            return mh_err_set(err, MH_E_INVAL, NULL, 0, "path '%s' has more than %d segments", tmpl,
                              MH_ROUTE_MAX_SEGMENTS);
        if (len == 0 && end)
            return mh_err_set(err, MH_E_INVAL, NULL, 0, "path '%s' has an empty segment ('//')",
                              tmpl);
        rc = is_param ? check_param(tmpl, p, len, segs, n, err) : check_literal(tmpl, p, len, err);
        if (rc != MH_OK)
            return rc;
        if (is_param && ++nparams > MH_ROUTE_MAX_PARAMS)
            return mh_err_set(err, MH_E_INVAL, NULL, 0, "path '%s' has more than %d parameters",
                              tmpl, MH_ROUTE_MAX_PARAMS);
        segs[n++] = is_param ? (struct tseg){p + 1, len - 2, true} : (struct tseg){p, len, false};
        if (!end)
            break;
        p = end + 1;
    }
    *nsegs = n;
    return MH_OK;
}

enum mh_status mh_router_check_template(const char *tmpl, struct mh_err *err)
{
    struct tseg segs[MH_ROUTE_MAX_SEGMENTS];
    size_t n;

    return parse_template(tmpl, segs, &n, err);
}

/* --- Trie --- */

static int seg_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* Index of the kid with this segment, or -(insertion point) - 1. */
static long kid_search(const struct node *n, const char *s, size_t len)
{
    size_t lo = 0, hi = n->nkids;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = seg_cmp(n->kids[mid]->seg, n->kids[mid]->len, s, len);

        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

static struct node *kid_find(const struct node *n, const char *s, size_t len)
{
    long i = kid_search(n, s, len);

    return i >= 0 ? n->kids[i] : NULL;
}

static struct node *kid_add(struct node *n, const char *s, size_t len)
{
    long i = kid_search(n, s, len);
    size_t at;
    struct node *k;

    if (i >= 0)
        return n->kids[i];
    at = (size_t)(-i - 1);
    k = mh_xcalloc(1, sizeof(*k));
    k->seg = mh_xstrndup(s, len);
    k->len = len;
    n->kids = mh_xrealloc(n->kids, (n->nkids + 1) * sizeof(*n->kids));
    memmove(n->kids + at + 1, n->kids + at, (n->nkids - at) * sizeof(*n->kids));
    n->kids[at] = k;
    n->nkids++;
    return k;
}

static void node_cleanup(struct node *n)
{
    for (size_t i = 0; i < n->nkids; i++) {
        node_cleanup(n->kids[i]);
        free(n->kids[i]);
    }
    free(n->kids);
    free(n->seg);
    if (n->param) {
        node_cleanup(n->param);
        free(n->param);
    }
    for (int m = 0; m < MH_METHOD_COUNT; m++) {
        struct endpoint *ep = n->ep[m];

        if (!ep)
            continue;
        for (size_t i = 0; i < ep->nparams; i++)
            free(ep->names[i]);
        free(ep->tmpl);
        free(ep);
    }
}

enum mh_status mh_router_new(struct mh_router **out)
{
    *out = mh_xcalloc(1, sizeof(**out));
    return MH_OK;
}

void mh_router_free(struct mh_router *rt)
{
    if (!rt)
        return;
    node_cleanup(&rt->root);
    free(rt);
}

size_t mh_router_count(const struct mh_router *rt)
{
    return rt->count;
}

static const struct node *find_shape(const struct mh_router *rt, const struct tseg *segs, size_t n)
{
    const struct node *node = &rt->root;

    for (size_t i = 0; i < n; i++) {
        node = segs[i].is_param ? node->param : kid_find(node, segs[i].s, segs[i].len);
        if (!node)
            return NULL;
    }
    return node;
}

void *mh_router_find(const struct mh_router *rt, const char *method, const char *tmpl)
{
    struct tseg segs[MH_ROUTE_MAX_SEGMENTS];
    enum mh_method m = mh_method_parse(method);
    const struct node *node;
    size_t n;

    if (m == MH_METHOD_UNKNOWN || parse_template(tmpl, segs, &n, NULL) != MH_OK)
        return NULL;
    node = find_shape(rt, segs, n);
    return node && node->ep[m] ? node->ep[m]->target : NULL;
}

enum mh_status mh_router_add(struct mh_router *rt, const char *method, const char *tmpl,
                             void *target, struct mh_err *err)
{
    struct tseg segs[MH_ROUTE_MAX_SEGMENTS];
    enum mh_method m = mh_method_parse(method);
    const struct node *existing;
    struct node *node = &rt->root;
    struct endpoint *ep;
    enum mh_status rc;
    size_t n;

    assert(rt); /* and so &rt->root, the node of a shape with no segments, is not NULL */
    if (m == MH_METHOD_UNKNOWN)
        return mh_err_set(err, MH_E_INVAL, NULL, 0,
                          "method '%s' is not one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS",
                          method);
    rc = parse_template(tmpl, segs, &n, err);
    if (rc != MH_OK)
        return rc;
    existing = find_shape(rt, segs, n);
    if (existing && existing->ep[m])
        return mh_err_set(err, MH_E_CONFLICT, NULL, 0, "route %s %s conflicts with %s %s", method,
                          tmpl, method, existing->ep[m]->tmpl);

    for (size_t i = 0; i < n; i++) {
        if (segs[i].is_param) {
            if (!node->param)
                node->param = mh_xcalloc(1, sizeof(*node->param));
            node = node->param;
        } else {
            node = kid_add(node, segs[i].s, segs[i].len);
        }
    }
    ep = mh_xcalloc(1, sizeof(*ep));
    ep->target = target;
    ep->tmpl = mh_xstrdup(tmpl);
    for (size_t i = 0; i < n; i++) {
        if (segs[i].is_param)
            ep->names[ep->nparams++] = mh_xstrndup(segs[i].s, segs[i].len);
    }
    node->ep[m] = ep;
    rt->count++;
    return MH_OK;
}

/* --- Matching --- */

static uint32_t node_allow(const struct node *n)
{
    uint32_t allow = 0;

    for (int m = 0; m < MH_METHOD_COUNT; m++) {
        if (n->ep[m])
            allow |= 1u << m;
    }
    if (allow) {
        if (allow & (1u << MH_METHOD_GET))
            allow |= 1u << MH_METHOD_HEAD;
        allow |= 1u << MH_METHOD_OPTIONS;
    }
    return allow;
}

static const struct endpoint *endpoint_for(const struct node *n, enum mh_method method,
                                           struct mh_route_match *m)
{
    if (method < MH_METHOD_COUNT && n->ep[method])
        return n->ep[method];
    if (method == MH_METHOD_HEAD && n->ep[MH_METHOD_GET]) {
        m->head_as_get = 1;
        return n->ep[MH_METHOD_GET];
    }
    m->allow |= node_allow(n);
    return NULL;
}

static const struct endpoint *walk(const struct node *n, const char *p, const char *end,
                                   enum mh_method method, struct mh_route_match *m)
{
    const char *se = memchr(p, '/', (size_t)(end - p));
    const struct endpoint *ep;
    const struct node *lit;
    size_t len;

    if (!se)
        se = end;
    len = (size_t)(se - p);
    lit = kid_find(n, p, len);
    if (lit) {
        ep = se == end ? endpoint_for(lit, method, m) : walk(lit, se + 1, end, method, m);
        if (ep)
            return ep;
    }
    if (n->param && len > 0 && m->nparams < MH_ROUTE_MAX_PARAMS) {
        size_t k = m->nparams;

        m->values[k] = p;
        m->lens[k] = len;
        m->nparams++;
        ep = se == end ? endpoint_for(n->param, method, m) : walk(n->param, se + 1, end, method, m);
        if (ep)
            return ep;
        m->nparams = k;
    }
    return NULL;
}

enum mh_route_result mh_router_match(const struct mh_router *rt, enum mh_method method,
                                     const char *path, size_t len, struct mh_route_match *m)
{
    const struct endpoint *ep = NULL;

    m->target = NULL;
    m->template = NULL;
    m->nparams = 0;
    m->allow = 0;
    m->head_as_get = 0;
    if (len == 0 || path[0] != '/')
        return MH_ROUTE_NOT_FOUND;
    if (method >= 0 && method < MH_METHOD_COUNT)
        ep = walk(&rt->root, path + 1, path + len, method, m);
    else /* a method no route can have: still tell 404 from 405 */
        walk(&rt->root, path + 1, path + len, MH_METHOD_COUNT, m);
    if (!ep)
        return m->allow ? MH_ROUTE_BAD_METHOD : MH_ROUTE_NOT_FOUND;
    m->target = ep->target;
    m->template = ep->tmpl;
    for (size_t i = 0; i < ep->nparams; i++)
        m->names[i] = ep->names[i];
    return MH_ROUTE_FOUND;
}

void mh_router_allow_str(uint32_t allow, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (int m = 0; m < MH_METHOD_COUNT; m++) {
        if (!(allow & (1u << m)))
            continue;
        n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s", n ? ", " : "",
                              method_names[m]);
        if (n >= size)
            break;
    }
}

static void each_node(const struct node *n,
                      void (*fn)(const char *method, const char *tmpl, void *target, void *arg),
                      void *arg)
{
    for (int m = 0; m < MH_METHOD_COUNT; m++) {
        if (n->ep[m])
            fn(method_names[m], n->ep[m]->tmpl, n->ep[m]->target, arg);
    }
    for (size_t i = 0; i < n->nkids; i++)
        each_node(n->kids[i], fn, arg);
    if (n->param)
        each_node(n->param, fn, arg);
}

void mh_router_each(const struct mh_router *rt,
                    void (*fn)(const char *method, const char *tmpl, void *target, void *arg),
                    void *arg)
{
    each_node(&rt->root, fn, arg);
}
