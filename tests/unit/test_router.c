/*
 * Route table (core/router.c): precedence of literals over parameters with backtracking,
 * 404 against 405 and the Allow set, HEAD, conflicts, template errors, parameters and order.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "mh_test.h"
#include "mod/router.h"

/* Distinct targets: only their addresses matter. */
static int t_a, t_b, t_c, t_d;

struct route {
    const char *method;
    const char *tmpl;
    void *target;
};

/* A table holding @p routes (ending with a NULL method). */
static struct mh_router *router_with(const struct route *routes)
{
    struct mh_router *rt = NULL;
    struct mh_err err = {0};

    CU_ASSERT_EQUAL(mh_router_new(&rt), MH_OK);
    for (const struct route *r = routes; rt && r->method; r++) {
        if (mh_router_add(rt, r->method, r->tmpl, r->target, &err) != MH_OK) {
            fprintf(stderr, "cannot add %s %s: %s\n", r->method, r->tmpl, err.msg);
            CU_FAIL("route setup");
        }
    }
    return rt;
}

static enum mh_route_result match(const struct mh_router *rt, enum mh_method method,
                                  const char *path, struct mh_route_match *m)
{
    return mh_router_match(rt, method, path, strlen(path), m);
}

static uint32_t bits(enum mh_method a, enum mh_method b, enum mh_method c, enum mh_method d)
{
    uint32_t v = 0;
    const enum mh_method ms[] = {a, b, c, d};

    for (size_t i = 0; i < 4; i++) {
        if (ms[i] != MH_METHOD_UNKNOWN)
            v |= 1u << ms[i];
    }
    return v;
}

#define NONE MH_METHOD_UNKNOWN

/* The parameter @p i of a match as a string, for comparisons. */
static const char *param(const struct mh_route_match *m, size_t i, char *buf, size_t size)
{
    snprintf(buf, size, "%s=%.*s", m->names[i], (int)m->lens[i], m->values[i]);
    return buf;
}

/* --- Precedence and backtracking --- */

static void test_router_literal_beats_parameter(void)
{
    static const struct route routes[] = {
        {"GET", "/users/{id}", &t_a},
        {"GET", "/users/me", &t_b},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;
    char buf[64];

    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/users/me", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_b);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m.template), "/users/me");
    CU_ASSERT_EQUAL(m.nparams, 0);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/users/mee", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_a);
    CU_ASSERT_EQUAL_FATAL(m.nparams, 1);
    CU_ASSERT_STRING_EQUAL(param(&m, 0, buf, sizeof(buf)), "id=mee");
    CU_ASSERT_STRING_EQUAL(mh_test_str(m.template), "/users/{id}");
    mh_router_free(rt);
}

static void test_router_backtracks_from_literal_to_parameter(void)
{
    /* PUT /users/me has no literal route: the parameter route must still take it. */
    static const struct route routes[] = {
        {"GET", "/users/me", &t_a},
        {"PUT", "/users/{id}", &t_b},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;
    char buf[64];

    CU_ASSERT_EQUAL(match(rt, MH_METHOD_PUT, "/users/me", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_b);
    CU_ASSERT_EQUAL_FATAL(m.nparams, 1);
    CU_ASSERT_STRING_EQUAL(param(&m, 0, buf, sizeof(buf)), "id=me");
    CU_ASSERT_EQUAL(m.lens[0], 2);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/users/me", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_a);
    mh_router_free(rt);
}

static void test_router_backtracks_deep_and_forgets_parameters(void)
{
    /* /a/b/c: the literal branch binds {x}=b, fails at c, and must drop that binding. */
    static const struct route routes[] = {
        {"GET", "/a/{x}/d", &t_a},
        {"GET", "/{y}/b/c", &t_b},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;
    char buf[64];

    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/a/b/c", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_b);
    CU_ASSERT_EQUAL_FATAL(m.nparams, 1);
    CU_ASSERT_STRING_EQUAL(param(&m, 0, buf, sizeof(buf)), "y=a");
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/a/b/d", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_a);
    CU_ASSERT_STRING_EQUAL(param(&m, 0, buf, sizeof(buf)), "x=b");
    mh_router_free(rt);
}

static void test_router_parameter_names_come_from_the_matched_route(void)
{
    /* Both routes share the parameter node at the first position but name it differently. */
    static const struct route routes[] = {
        {"GET", "/{p}/lit/z", &t_a},
        {"GET", "/{q}/{r}/w", &t_b},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;
    char buf[64];

    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/v/lit/w", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_b);
    CU_ASSERT_EQUAL_FATAL(m.nparams, 2);
    CU_ASSERT_STRING_EQUAL(param(&m, 0, buf, sizeof(buf)), "q=v");
    CU_ASSERT_STRING_EQUAL(param(&m, 1, buf, sizeof(buf)), "r=lit");
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/v/lit/z", &m), MH_ROUTE_FOUND);
    CU_ASSERT_EQUAL_FATAL(m.nparams, 1);
    CU_ASSERT_STRING_EQUAL(param(&m, 0, buf, sizeof(buf)), "p=v");
    mh_router_free(rt);
}

/* --- 404, 405 and Allow --- */

static void test_router_tells_404_from_405_with_the_allow_set(void)
{
    static const struct route routes[] = {
        {"GET", "/items", &t_a},
        {"POST", "/items", &t_b},
        {"DELETE", "/items/{id}", &t_c},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;
    char allow[96];

    CU_ASSERT_EQUAL(match(rt, MH_METHOD_DELETE, "/items", &m), MH_ROUTE_BAD_METHOD);
    CU_ASSERT_PTR_NULL(m.target);
    CU_ASSERT_EQUAL(m.allow,
                    bits(MH_METHOD_GET, MH_METHOD_HEAD, MH_METHOD_POST, MH_METHOD_OPTIONS));
    mh_router_allow_str(m.allow, allow, sizeof(allow));
    CU_ASSERT_STRING_EQUAL(allow, "GET, HEAD, POST, OPTIONS");

    /* No GET here, so no HEAD either; OPTIONS always. */
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_PUT, "/items/7", &m), MH_ROUTE_BAD_METHOD);
    CU_ASSERT_EQUAL(m.allow, bits(MH_METHOD_DELETE, MH_METHOD_OPTIONS, NONE, NONE));
    mh_router_allow_str(m.allow, allow, sizeof(allow));
    CU_ASSERT_STRING_EQUAL(allow, "DELETE, OPTIONS");

    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/nothing", &m), MH_ROUTE_NOT_FOUND);
    CU_ASSERT_EQUAL(m.allow, 0);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/items/7/more", &m), MH_ROUTE_NOT_FOUND);
    CU_ASSERT_EQUAL(m.allow, 0);
    /* A method no route can have still gets 405 on an existing path, 404 elsewhere. */
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_UNKNOWN, "/items", &m), MH_ROUTE_BAD_METHOD);
    CU_ASSERT_EQUAL(m.allow,
                    bits(MH_METHOD_GET, MH_METHOD_HEAD, MH_METHOD_POST, MH_METHOD_OPTIONS));
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_UNKNOWN, "/nothing", &m), MH_ROUTE_NOT_FOUND);
    mh_router_free(rt);
}

static void test_router_allow_joins_literal_and_parameter_routes(void)
{
    /* /users/me is served by GET (literal) and by PUT (parameter): both are allowed. */
    static const struct route routes[] = {
        {"GET", "/users/me", &t_a},
        {"PUT", "/users/{id}", &t_b},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;

    CU_ASSERT_EQUAL(match(rt, MH_METHOD_DELETE, "/users/me", &m), MH_ROUTE_BAD_METHOD);
    CU_ASSERT_EQUAL(m.allow, bits(MH_METHOD_GET, MH_METHOD_HEAD, MH_METHOD_PUT, MH_METHOD_OPTIONS));
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_DELETE, "/users/you", &m), MH_ROUTE_BAD_METHOD);
    CU_ASSERT_EQUAL(m.allow, bits(MH_METHOD_PUT, MH_METHOD_OPTIONS, NONE, NONE));
    mh_router_free(rt);
}

static void test_router_options_without_a_route_reports_allow(void)
{
    static const struct route routes[] = {
        {"POST", "/jobs", &t_a},
        {"OPTIONS", "/open", &t_b},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;

    CU_ASSERT_EQUAL(match(rt, MH_METHOD_OPTIONS, "/jobs", &m), MH_ROUTE_BAD_METHOD);
    CU_ASSERT_EQUAL(m.allow, bits(MH_METHOD_POST, MH_METHOD_OPTIONS, NONE, NONE));
    /* An OPTIONS route of its own is an ordinary route. */
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_OPTIONS, "/open", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_b);
    mh_router_free(rt);
}

static void test_router_head_falls_back_to_get(void)
{
    static const struct route routes[] = {
        {"GET", "/page", &t_a},  {"GET", "/both", &t_b}, {"HEAD", "/both", &t_c},
        {"POST", "/form", &t_d}, {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;

    CU_ASSERT_EQUAL(match(rt, MH_METHOD_HEAD, "/page", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_a);
    CU_ASSERT_EQUAL(m.head_as_get, 1);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/page", &m), MH_ROUTE_FOUND);
    CU_ASSERT_EQUAL(m.head_as_get, 0);
    /* An explicit HEAD route wins over the fallback. */
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_HEAD, "/both", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_c);
    CU_ASSERT_EQUAL(m.head_as_get, 0);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_HEAD, "/form", &m), MH_ROUTE_BAD_METHOD);
    CU_ASSERT_EQUAL(m.head_as_get, 0);
    CU_ASSERT_EQUAL(m.allow, bits(MH_METHOD_POST, MH_METHOD_OPTIONS, NONE, NONE));
    mh_router_free(rt);
}

/* --- Path shapes --- */

static void test_router_trailing_slash_is_a_different_path(void)
{
    static const struct route routes[] = {
        {"GET", "/a", &t_a},
        {"GET", "/a/", &t_b},
        {"GET", "/only", &t_c},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;

    CU_ASSERT_EQUAL(mh_router_count(rt), 3);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/a", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_a);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/a/", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_b);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/only/", &m), MH_ROUTE_NOT_FOUND);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/a//", &m), MH_ROUTE_NOT_FOUND);
    mh_router_free(rt);
}

static void test_router_root_path(void)
{
    static const struct route routes[] = {
        {"GET", "/", &t_a},
        {"GET", "/{x}", &t_b},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;

    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_a);
    CU_ASSERT_EQUAL(m.nparams, 0);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/x", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_b);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "", &m), MH_ROUTE_NOT_FOUND);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "x", &m), MH_ROUTE_NOT_FOUND);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "*", &m), MH_ROUTE_NOT_FOUND);
    mh_router_free(rt);
}

static void test_router_empty_segment_never_matches_a_parameter(void)
{
    static const struct route routes[] = {
        {"GET", "/users/{id}", &t_a},
        {"GET", "/f/{a}/x", &t_b},
        {"GET", "/{top}", &t_c},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;

    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/users/", &m), MH_ROUTE_NOT_FOUND);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/f//x", &m), MH_ROUTE_NOT_FOUND);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/", &m), MH_ROUTE_NOT_FOUND);
    CU_ASSERT_EQUAL(m.allow, 0);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/f/a/x", &m), MH_ROUTE_FOUND);
    mh_router_free(rt);
}

static void test_router_matches_only_len_bytes_of_the_path(void)
{
    static const struct route routes[] = {
        {"GET", "/users/me", &t_a},
        {"GET", "/users/{id}", &t_b},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;
    const char *path = "/users/me/and/more";

    CU_ASSERT_EQUAL(mh_router_match(rt, MH_METHOD_GET, path, 9, &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_a);
    CU_ASSERT_EQUAL(mh_router_match(rt, MH_METHOD_GET, path, 8, &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_b);
    CU_ASSERT_EQUAL(m.lens[0], 1); /* "m" */
    mh_router_free(rt);
}

static void test_router_returns_raw_parameters_with_lengths(void)
{
    static const struct route routes[] = {
        {"GET", "/files/{dir}/{name}", &t_a},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;
    const char *path = "/files/a%20b/c.txt";

    CU_ASSERT_EQUAL_FATAL(match(rt, MH_METHOD_GET, path, &m), MH_ROUTE_FOUND);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m.template), "/files/{dir}/{name}");
    CU_ASSERT_EQUAL_FATAL(m.nparams, 2);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m.names[0]), "dir");
    CU_ASSERT_STRING_EQUAL(mh_test_str(m.names[1]), "name");
    /* Not decoded, not copied: pointers into the path. */
    CU_ASSERT_PTR_EQUAL(m.values[0], path + 7);
    CU_ASSERT_EQUAL(m.lens[0], 5);
    CU_ASSERT_PTR_EQUAL(m.values[1], path + 13);
    CU_ASSERT_EQUAL(m.lens[1], 5);
    mh_router_free(rt);
}

static void test_router_takes_sixteen_parameters(void)
{
    struct mh_router *rt = NULL;
    struct mh_err err = {0};
    struct mh_route_match m;
    char tmpl[256] = "", path[128] = "";

    for (int i = 0; i < MH_ROUTE_MAX_PARAMS; i++) {
        snprintf(tmpl + strlen(tmpl), sizeof(tmpl) - strlen(tmpl), "/{p%d}", i);
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%c", 'a' + i);
    }
    CU_ASSERT_EQUAL_FATAL(mh_router_new(&rt), MH_OK);
    CU_ASSERT_EQUAL(mh_router_add(rt, "GET", tmpl, &t_a, &err), MH_OK);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, path, &m), MH_ROUTE_FOUND);
    CU_ASSERT_EQUAL_FATAL(m.nparams, MH_ROUTE_MAX_PARAMS);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m.names[15]), "p15");
    CU_ASSERT_EQUAL(m.values[15][0], 'p');
    CU_ASSERT_EQUAL(m.lens[15], 1);
    mh_router_free(rt);
}

/* --- Conflicts and template errors --- */

static void test_router_rejects_same_shape_with_other_parameter_names(void)
{
    struct mh_router *rt = NULL;
    struct mh_err err = {0};
    struct mh_route_match m;

    CU_ASSERT_EQUAL_FATAL(mh_router_new(&rt), MH_OK);
    CU_ASSERT_EQUAL(mh_router_add(rt, "GET", "/users/{id}", &t_a, &err), MH_OK);
    CU_ASSERT_EQUAL(mh_router_add(rt, "GET", "/users/{uid}", &t_b, &err), MH_E_CONFLICT);
    CU_ASSERT_EQUAL(err.code, MH_E_CONFLICT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/users/{uid}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/users/{id}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "GET"));
    CU_ASSERT_EQUAL(mh_router_count(rt), 1); /* the failed add changed nothing */
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/users/1", &m), MH_ROUTE_FOUND);
    CU_ASSERT_PTR_EQUAL(m.target, &t_a);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m.names[0]), "id");

    CU_ASSERT_EQUAL(mh_router_add(rt, "GET", "/users/{id}", &t_b, &err), MH_E_CONFLICT);
    CU_ASSERT_EQUAL(mh_router_count(rt), 1);
    /* Another method, or a literal at the same position, is not a conflict. */
    CU_ASSERT_EQUAL(mh_router_add(rt, "PUT", "/users/{uid}", &t_b, &err), MH_OK);
    CU_ASSERT_EQUAL(mh_router_add(rt, "GET", "/users/me", &t_c, &err), MH_OK);
    CU_ASSERT_EQUAL(mh_router_add(rt, "GET", "/users/me", &t_d, &err), MH_E_CONFLICT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/users/me"));
    CU_ASSERT_EQUAL(mh_router_count(rt), 3);
    CU_ASSERT_PTR_EQUAL(mh_router_find(rt, "GET", "/users/{other}"), &t_a);
    CU_ASSERT_PTR_EQUAL(mh_router_find(rt, "PUT", "/users/{x}"), &t_b);
    CU_ASSERT_PTR_EQUAL(mh_router_find(rt, "GET", "/users/me"), &t_c);
    CU_ASSERT_PTR_NULL(mh_router_find(rt, "DELETE", "/users/me"));
    CU_ASSERT_PTR_NULL(mh_router_find(rt, "GET", "/users"));
    CU_ASSERT_PTR_NULL(mh_router_find(rt, "FETCH", "/users/me"));
    CU_ASSERT_PTR_NULL(mh_router_find(rt, "GET", "users"));
    mh_router_free(rt);
}

/* Adds a bad route to a table holding one route and checks nothing changed. */
static void expect_bad(const char *method, const char *tmpl, const char *needle)
{
    struct mh_router *rt = NULL;
    struct mh_err err = {0};
    struct mh_route_match m;

    CU_ASSERT_EQUAL_FATAL(mh_router_new(&rt), MH_OK);
    CU_ASSERT_EQUAL(mh_router_add(rt, "GET", "/keep", &t_a, &err), MH_OK);
    CU_ASSERT_EQUAL(mh_router_add(rt, method, tmpl, &t_b, &err), MH_E_INVAL);
    CU_ASSERT_EQUAL(err.code, MH_E_INVAL);
    if (!strstr(err.msg, needle)) {
        fprintf(stderr, "\n%s %s: message \"%s\" lacks \"%s\"\n", method, tmpl, err.msg, needle);
        CU_FAIL("message text");
    }
    CU_ASSERT_EQUAL(mh_router_count(rt), 1);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/keep", &m), MH_ROUTE_FOUND);
    if (strcmp(method, "GET") == 0) {
        memset(&err, 0, sizeof(err));
        CU_ASSERT_EQUAL(mh_router_check_template(tmpl, &err), MH_E_INVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
    }
    mh_router_free(rt);
}

static void test_router_rejects_bad_templates(void)
{
    expect_bad("GET", "users", "must start with '/'");
    expect_bad("GET", "", "must start with '/'");
    expect_bad("GET", "/a//b", "empty segment ('//')");
    expect_bad("GET", "//", "empty segment");
    expect_bad("GET", "/a/{}", "a parameter is a whole segment like '{name}'");
    expect_bad("GET", "/a/{", "a parameter is a whole segment");
    expect_bad("GET", "/a/{a-b}", "parameter name 'a-b' must match [A-Za-z_][A-Za-z0-9_]*");
    expect_bad("GET", "/a/{1x}", "parameter name '1x'");
    expect_bad("GET", "/a/{x}y", "a parameter is a whole segment");
    expect_bad("GET", "/a/y{x}", "character '{' is not allowed");
    expect_bad("GET", "/a/{x}/b/{x}", "parameter 'x' appears twice");
    expect_bad("GET", "/a%2", "'%' must start a %XX escape");
    expect_bad("GET", "/a%zz/b", "'%' must start a %XX escape");
    expect_bad("GET", "/a/%", "'%' must start a %XX escape");
    expect_bad("GET", "/a b", "character ' ' is not allowed");
    expect_bad("GET", "/a?b", "character '?' is not allowed");
    expect_bad("FETCH", "/x", "method 'FETCH' is not one of GET, HEAD, POST, PUT, DELETE");
    expect_bad("get", "/x", "method 'get'");
}

static void test_router_accepts_escapes_and_sub_delims(void)
{
    static const struct route routes[] = {
        {"GET", "/a%2Fb/%7e", &t_a},
        {"GET", "/x-._~!$&'()*+,;=:@", &t_b},
        {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct mh_route_match m;

    CU_ASSERT_EQUAL(mh_router_count(rt), 2);
    /* Matching compares raw bytes: %2F is not '/', and escapes are not normalised. */
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/a%2Fb/%7e", &m), MH_ROUTE_FOUND);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/a/b/%7e", &m), MH_ROUTE_NOT_FOUND);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/x-._~!$&'()*+,;=:@", &m), MH_ROUTE_FOUND);
    mh_router_free(rt);
}

static void test_router_limits_parameters_and_segments(void)
{
    char tmpl[512] = "";

    for (int i = 0; i <= MH_ROUTE_MAX_PARAMS; i++)
        snprintf(tmpl + strlen(tmpl), sizeof(tmpl) - strlen(tmpl), "/{p%d}", i);
    expect_bad("GET", tmpl, "has more than 16 parameters");

    tmpl[0] = '\0';
    for (int i = 0; i < MH_ROUTE_MAX_SEGMENTS; i++)
        snprintf(tmpl + strlen(tmpl), sizeof(tmpl) - strlen(tmpl), "/s");
    CU_ASSERT_EQUAL(mh_router_check_template(tmpl, NULL), MH_OK);
    snprintf(tmpl + strlen(tmpl), sizeof(tmpl) - strlen(tmpl), "/s");
    expect_bad("GET", tmpl, "has more than 64 segments");
}

/* --- Many routes, order, helpers --- */

static void test_router_many_routes(void)
{
    struct mh_router *rt = NULL;
    struct mh_err err = {0};
    struct mh_route_match m;
    static char targets[600];
    char tmpl[64];
    int misses = 0;

    CU_ASSERT_EQUAL_FATAL(mh_router_new(&rt), MH_OK);
    for (int i = 0; i < 300; i++) {
        snprintf(tmpl, sizeof(tmpl), "/r/%d", (i * 7919) % 300);
        CU_ASSERT_EQUAL(mh_router_add(rt, "GET", tmpl, &targets[(i * 7919) % 300], &err), MH_OK);
        snprintf(tmpl, sizeof(tmpl), "/r/%d/{x}", i);
        CU_ASSERT_EQUAL(mh_router_add(rt, "POST", tmpl, &targets[300 + i], &err), MH_OK);
    }
    CU_ASSERT_EQUAL(mh_router_count(rt), 600);
    for (int i = 0; i < 300; i++) {
        snprintf(tmpl, sizeof(tmpl), "/r/%d", i);
        if (match(rt, MH_METHOD_GET, tmpl, &m) != MH_ROUTE_FOUND || m.target != &targets[i])
            misses++;
        snprintf(tmpl, sizeof(tmpl), "/r/%d/v", i);
        if (match(rt, MH_METHOD_POST, tmpl, &m) != MH_ROUTE_FOUND || m.target != &targets[300 + i])
            misses++;
    }
    CU_ASSERT_EQUAL(misses, 0);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/r/300", &m), MH_ROUTE_NOT_FOUND);
    CU_ASSERT_EQUAL(match(rt, MH_METHOD_GET, "/r/299/v", &m), MH_ROUTE_BAD_METHOD);
    mh_router_free(rt);
}

struct seen {
    char text[512];
    int calls;
};

/* cppcheck-suppress constParameter ; the callback type of mh_router_each decides */
static void collect(const char *method, const char *tmpl, void *target, void *arg)
{
    struct seen *s = arg;
    size_t n = strlen(s->text);

    snprintf(s->text + n, sizeof(s->text) - n, "%s%s %s%s", n ? "; " : "", method, tmpl,
             target == &t_a ? "" : "*");
    s->calls++;
}

static void test_router_each_walks_by_path_then_method(void)
{
    static const struct route routes[] = {
        {"POST", "/b", &t_a},    {"GET", "/a/{id}", &t_a}, {"GET", "/", &t_a},
        {"DELETE", "/a", &t_a},  {"GET", "/a", &t_a},      {"GET", "/a/b", &t_a},
        {"PATCH", "/a/b", &t_b}, {NULL, NULL, NULL},
    };
    struct mh_router *rt = router_with(routes);
    struct seen s = {{0}, 0};

    mh_router_each(rt, collect, &s);
    CU_ASSERT_EQUAL(s.calls, 7);
    CU_ASSERT_STRING_EQUAL(s.text, "GET /; GET /a; DELETE /a; GET /a/b; PATCH /a/b*; "
                                   "GET /a/{id}; POST /b");
    mh_router_free(rt);

    s = (struct seen){{0}, 0};
    CU_ASSERT_EQUAL_FATAL(mh_router_new(&rt), MH_OK);
    mh_router_each(rt, collect, &s);
    CU_ASSERT_EQUAL(s.calls, 0);
    mh_router_free(rt);
}

static void test_router_method_names(void)
{
    CU_ASSERT_EQUAL(mh_method_parse("GET"), MH_METHOD_GET);
    CU_ASSERT_EQUAL(mh_method_parse("OPTIONS"), MH_METHOD_OPTIONS);
    CU_ASSERT_EQUAL(mh_method_parse("PATCH"), MH_METHOD_PATCH);
    CU_ASSERT_EQUAL(mh_method_parse("get"), MH_METHOD_UNKNOWN);
    CU_ASSERT_EQUAL(mh_method_parse("TRACE"), MH_METHOD_UNKNOWN);
    CU_ASSERT_EQUAL(mh_method_parse(""), MH_METHOD_UNKNOWN);
    CU_ASSERT_STRING_EQUAL(mh_method_name(MH_METHOD_DELETE), "DELETE");
    CU_ASSERT_STRING_EQUAL(mh_method_name(MH_METHOD_UNKNOWN), "?");
    CU_ASSERT_STRING_EQUAL(mh_method_name(MH_METHOD_COUNT), "?");
}

static void test_router_allow_str(void)
{
    char buf[96], small[8];

    mh_router_allow_str(0, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "");
    mh_router_allow_str((1u << MH_METHOD_COUNT) - 1, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
    mh_router_allow_str((1u << MH_METHOD_COUNT) - 1, small, sizeof(small));
    CU_ASSERT_STRING_EQUAL(small, "GET, HE"); /* truncated, still terminated */
}

static void test_router_free_null(void)
{
    mh_router_free(NULL);
}

static const struct mh_test_case router_tests[] = {
    {"literal beats parameter", test_router_literal_beats_parameter},
    {"backtracks from literal to parameter", test_router_backtracks_from_literal_to_parameter},
    {"backtracks deep and forgets parameters", test_router_backtracks_deep_and_forgets_parameters},
    {"parameter names come from the matched route",
     test_router_parameter_names_come_from_the_matched_route},
    {"tells 404 from 405 with the allow set", test_router_tells_404_from_405_with_the_allow_set},
    {"allow joins literal and parameter routes",
     test_router_allow_joins_literal_and_parameter_routes},
    {"options without a route reports allow", test_router_options_without_a_route_reports_allow},
    {"head falls back to get", test_router_head_falls_back_to_get},
    {"trailing slash is a different path", test_router_trailing_slash_is_a_different_path},
    {"root path", test_router_root_path},
    {"empty segment never matches a parameter",
     test_router_empty_segment_never_matches_a_parameter},
    {"matches only len bytes of the path", test_router_matches_only_len_bytes_of_the_path},
    {"returns raw parameters with lengths", test_router_returns_raw_parameters_with_lengths},
    {"takes sixteen parameters", test_router_takes_sixteen_parameters},
    {"rejects same shape with other parameter names",
     test_router_rejects_same_shape_with_other_parameter_names},
    {"rejects bad templates", test_router_rejects_bad_templates},
    {"accepts escapes and sub-delims", test_router_accepts_escapes_and_sub_delims},
    {"limits parameters and segments", test_router_limits_parameters_and_segments},
    {"many routes", test_router_many_routes},
    {"each walks by path then method", test_router_each_walks_by_path_then_method},
    {"method names", test_router_method_names},
    {"allow str", test_router_allow_str},
    {"free null", test_router_free_null},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "router", router_tests);
}
