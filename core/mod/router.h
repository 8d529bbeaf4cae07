/*
 * Route table: method + path template -> an opaque target. Templates are made of literal
 * segments and whole-segment parameters (`/users/{id}`); a literal beats a parameter at the
 * same position. Matching works on the raw (still percent-encoded) path; decoding parameter
 * values is the caller's job. The table is immutable once built, so loops share it unlocked.
 */
#ifndef MH_ROUTER_H
#define MH_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define MH_ROUTE_MAX_PARAMS   16
#define MH_ROUTE_MAX_SEGMENTS 64

enum mh_method {
    MH_METHOD_GET,
    MH_METHOD_HEAD,
    MH_METHOD_POST,
    MH_METHOD_PUT,
    MH_METHOD_DELETE,
    MH_METHOD_PATCH,
    MH_METHOD_OPTIONS,
    MH_METHOD_COUNT,
    MH_METHOD_UNKNOWN = -1
};

/** "GET" -> MH_METHOD_GET (exact, upper case); MH_METHOD_UNKNOWN otherwise. */
enum mh_method mh_method_parse(const char *name);
const char *mh_method_name(enum mh_method m);

struct mh_router;

struct mh_route_match {
    void *target;
    const char *template; /* the matched route's template; borrowed from the router */
    size_t nparams;
    const char *names[MH_ROUTE_MAX_PARAMS];  /* borrowed from the router */
    const char *values[MH_ROUTE_MAX_PARAMS]; /* raw, point into the matched path */
    size_t lens[MH_ROUTE_MAX_PARAMS];
    uint32_t allow;  /* on MH_ROUTE_BAD_METHOD / OPTIONS: bit (1 << method) per allowed method */
    int head_as_get; /* HEAD answered by the GET route */
};

enum mh_route_result {
    MH_ROUTE_FOUND,
    MH_ROUTE_NOT_FOUND,
    MH_ROUTE_BAD_METHOD /* the path exists, not with this method; see allow */
};

enum mh_status mh_router_new(struct mh_router **out);
void mh_router_free(struct mh_router *rt);

/**
 * Adds a route.
 * @return MH_OK; MH_E_INVAL for a bad method or template (err says why); MH_E_CONFLICT if a
 *         route with the same method and shape exists (err names it). On failure the table is
 *         unchanged.
 */
enum mh_status mh_router_add(struct mh_router *rt, const char *method, const char *tmpl,
                             void *target, struct mh_err *err);
/** Checks a template alone (the same rules as mh_router_add). */
enum mh_status mh_router_check_template(const char *tmpl, struct mh_err *err);
/** The target registered for exactly @p method and the shape of @p tmpl, or NULL. */
void *mh_router_find(const struct mh_router *rt, const char *method, const char *tmpl);
size_t mh_router_count(const struct mh_router *rt);

/** Matches @p path (no query) of length @p len. */
enum mh_route_result mh_router_match(const struct mh_router *rt, enum mh_method method,
                                     const char *path, size_t len, struct mh_route_match *m);

/** Writes "GET, HEAD, OPTIONS" for @p allow into @p buf. */
void mh_router_allow_str(uint32_t allow, char *buf, size_t size);

/** Calls @p fn for each route in a stable order (path, then method). */
void mh_router_each(const struct mh_router *rt,
                    void (*fn)(const char *method, const char *tmpl, void *target, void *arg),
                    void *arg);

#endif
