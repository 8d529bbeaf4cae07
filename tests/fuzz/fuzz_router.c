/*
 * Fuzz target for the router (core/router.c). The input is lines: "METHOD TEMPLATE" lines add
 * routes until an empty line, "METHOD PATH" lines after it are matched (without an empty line,
 * every template is matched as a path too). Checked: mh_router_check_template agrees with
 * mh_router_add; the count is the number of routes added; a match returns a target that was
 * added for that template, parameters that point into the path, one per parameter of the
 * template, and mh_router_find finds it again; a 405 has allowed methods; mh_router_each visits
 * every route; mh_router_allow_str stays inside buffers of any size.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "mod/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROUTES 256

/* A failed check aborts, so that libFuzzer keeps the input. */
#define CHECK(cond) (void)((cond) || (check_failed(#cond, __LINE__), 0))

static _Noreturn void check_failed(const char *cond, int line)
{
    fprintf(stderr, "fuzz_router: line %d: check failed: %s\n", line, cond);
    abort();
}

struct route {
    char method[16];
    char *tmpl;
    size_t nparams;
};

struct state {
    struct mh_router *rt;
    struct route routes[MAX_ROUTES];
    size_t nroutes;
    size_t visited;
};

/* Parameters of a template that mh_router_add accepted: its "{...}" segments. */
static size_t count_params(const char *tmpl)
{
    size_t n = 0;

    for (const char *p = tmpl; *p; p++) {
        if (*p == '{' && p[-1] == '/')
            n++;
    }
    return n;
}

static void on_route(const char *method, const char *tmpl, void *target, void *arg)
{
    struct state *st = arg;
    const struct route *r = target;

    CHECK(r >= st->routes && r < st->routes + st->nroutes);
    CHECK(strcmp(r->method, method) == 0 && strcmp(r->tmpl, tmpl) == 0);
    st->visited++;
}

/* Splits "METHOD REST" (REST may be empty); @return false if there is no space. */
static bool split_line(char *line, char **method, char **rest)
{
    char *sp = strchr(line, ' ');

    if (!sp)
        return false;
    *sp = '\0';
    *method = line;
    *rest = sp + 1;
    return true;
}

static void check_added(struct state *st, struct route *r, const char *method, const char *tmpl)
{
    CHECK(mh_method_parse(method) != MH_METHOD_UNKNOWN);
    CHECK(mh_router_find(st->rt, method, tmpl) == r);
    memcpy(r->method, method, strlen(method) + 1);
    r->tmpl = mh_xstrdup(tmpl);
    r->nparams = count_params(tmpl);
    CHECK(r->nparams <= MH_ROUTE_MAX_PARAMS);
    st->nroutes++;
}

static void add_line(struct state *st, char *line)
{
    struct mh_err err = {0};
    char *method, *tmpl;
    enum mh_status check, rc;
    struct route *r;

    if (!split_line(line, &method, &tmpl) || st->nroutes == MAX_ROUTES || strlen(method) > 15)
        return;
    r = &st->routes[st->nroutes];
    check = mh_router_check_template(tmpl, &err);
    rc = mh_router_add(st->rt, method, tmpl, r, &err);
    /* The template check and the add agree; a failed add names its reason. */
    CHECK(check == MH_OK || rc == MH_E_INVAL);
    CHECK(rc != MH_OK || check == MH_OK);
    CHECK(rc == MH_OK || ((rc == MH_E_INVAL || rc == MH_E_CONFLICT) && err.msg[0] != '\0'));
    CHECK(rc != MH_E_CONFLICT || mh_router_find(st->rt, method, tmpl) != NULL);
    if (rc == MH_OK)
        check_added(st, r, method, tmpl);
    CHECK(mh_router_count(st->rt) == st->nroutes);
}

static void check_found(const struct state *st, const struct mh_route_match *m,
                        enum mh_method method, const char *name, const char *path, size_t len)
{
    const struct route *r = m->target;

    CHECK(r >= st->routes && r < st->routes + st->nroutes);
    CHECK(m->template != NULL && strcmp(m->template, r->tmpl) == 0);
    CHECK(m->nparams == r->nparams);
    for (size_t i = 0; i < m->nparams; i++) {
        CHECK(m->values[i] > path && m->values[i] + m->lens[i] <= path + len);
        CHECK(m->lens[i] > 0 && memchr(m->values[i], '/', m->lens[i]) == NULL);
        CHECK(m->names[i] != NULL && m->names[i][0] != '\0');
    }
    CHECK(mh_router_find(st->rt, r->method, r->tmpl) == r);
    if (m->head_as_get)
        CHECK(method == MH_METHOD_HEAD && strcmp(r->method, "GET") == 0);
    else
        CHECK(strcmp(r->method, name) == 0);
}

static void check_not_found(const struct mh_route_match *m, enum mh_method method,
                            enum mh_route_result res)
{
    CHECK(m->target == NULL);
    if (res == MH_ROUTE_BAD_METHOD) {
        /* The method itself is never allowed, except OPTIONS (always listed). */
        CHECK(m->allow != 0);
        CHECK(method == MH_METHOD_UNKNOWN || !(m->allow & (1u << method)) ||
              method == MH_METHOD_OPTIONS);
    } else {
        CHECK(res == MH_ROUTE_NOT_FOUND);
    }
    /* Buffers of many sizes, the smallest first: nothing is written past the end. */
    for (size_t n = 1; n <= 64; n += 7) {
        char *small = mh_xmalloc(n);

        mh_router_allow_str(m->allow, small, n);
        CHECK(memchr(small, '\0', n) != NULL);
        free(small);
    }
}

static void match_line(const struct state *st, char *line)
{
    struct mh_route_match m;
    enum mh_route_result res;
    enum mh_method method;
    char *name, *path;
    size_t len;

    if (!split_line(line, &name, &path))
        return;
    method = mh_method_parse(name);
    len = strlen(path);
    memset(&m, 0xa5, sizeof(m)); /* the matcher must set what it reports */
    res = mh_router_match(st->rt, method, path, len, &m);
    if (res == MH_ROUTE_FOUND)
        check_found(st, &m, method, name, path, len);
    else
        check_not_found(&m, method, res);
}

/* Matches every line of @p text as "METHOD PATH". */
static void match_all(const struct state *st, char *text)
{
    char *p = text, *line;

    while ((line = strsep(&p, "\n")))
        match_line(st, line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct state st = {.nroutes = 0};
    char *text = mh_xmalloc(size + 1), *p, *line;
    bool matching = false;

    memcpy(text, data, size);
    text[size] = '\0';
    if (strlen(text) != size) { /* a NUL byte: C strings cannot carry it */
        free(text);
        return 0;
    }
    CHECK(mh_router_new(&st.rt) == MH_OK);
    for (p = text; !matching && (line = strsep(&p, "\n"));) {
        if (line[0] == '\0')
            matching = true; /* the rest are paths */
        else
            add_line(&st, line);
    }
    if (matching) {
        match_all(&st, p ? p : text + size);
    } else {
        /* No match section: match every template as a path. */
        memcpy(text, data, size);
        match_all(&st, text);
    }
    mh_router_each(st.rt, on_route, &st);
    CHECK(st.visited == st.nroutes);
    mh_router_free(st.rt);
    for (size_t i = 0; i < st.nroutes; i++)
        free(st.routes[i].tmpl);
    free(text);
    return 0;
}
