/* Routing a request to its handler or WebSocket endpoint (see dispatch.h). */
#include "run/dispatch.h"

#include <stdio.h>

#include "base/crash.h"
#include "base/loop.h"
#include "http/request.h"
#include "http/uri.h"
#include "mod/gen.h"
#include "mod/loader.h"
#include "mod/router.h"
#include "ws/ws.h"

/* @return whether the request goes on to a target (otherwise it holds its answer). */
static bool route(struct mh_req *req)
{
    const struct mh_gen *gen = mh_req_loop(req)->gen;
    enum mh_method method = mh_req_method_id(req);
    const char *path = mh_req_path_impl(req), *name = mh_req_method_impl(req);
    size_t plen = mh_req_path_len(req);
    struct mh_route_match m;
    char allow[96];

    if (method == MH_METHOD_UNKNOWN) {
        mh_router_match(gen->router, method, path, plen, &m);
        mh_router_allow_str(m.allow, allow, sizeof(allow));
        if (m.allow)
            mh_resp_header_impl(req, "Allow", allow);
        mh_reply_problem_impl(req, m.allow ? 405 : 501, NULL, "method %s is not supported%s", name,
                              m.allow ? " on this path" : "");
        return false;
    }
    switch (mh_router_match(gen->router, method, path, plen, &m)) {
    case MH_ROUTE_NOT_FOUND:
        mh_reply_problem_impl(req, 404, NULL, "no route for %s %s", name, path);
        return false;
    case MH_ROUTE_BAD_METHOD:
        mh_router_allow_str(m.allow, allow, sizeof(allow));
        mh_resp_header_impl(req, "Allow", allow);
        if (method == MH_METHOD_OPTIONS) {
            mh_reply_impl(req, 204, NULL, NULL, 0);
            return false;
        }
        mh_reply_problem_impl(req, 405, NULL, "method %s is not allowed on %s (allowed: %s)", name,
                              path, allow);
        return false;
    case MH_ROUTE_FOUND:
        break;
    }
    mh_req_set_nparams(req, m.nparams);
    for (size_t i = 0; i < m.nparams; i++) {
        char *v = mh_pct_decode(mh_req_arena(req), m.values[i], m.lens[i], false, true);

        if (!v) {
            mh_reply_problem_impl(req, 400, NULL,
                                  "path segment for parameter '%s' has an invalid percent escape",
                                  m.names[i]);
            return false;
        }
        mh_req_set_param(req, i, m.names[i], v);
    }
    mh_req_set_target(req, m.target);
    return true;
}

void mh_dispatch_request(struct mh_req *req)
{
    const struct mh_route_target *t;

    if (!route(req)) {
        mh_req_answer(req);
        return;
    }
    t = mh_req_target(req);
    if (mh_crash_quarantined(t->module->name)) {
        mh_reply_problem_impl(req, 503, NULL,
                              "module '%s' is out of service after repeated crashes (until the "
                              "next reload)",
                              t->module->name);
        mh_req_answer(req);
        return;
    }
    if (t->ws) {
        enum mh_status rc = MH_OK;

        if (mh_ws_upgrade(req, t, &rc) == MH_WS_TAKEN)
            return;
        mh_req_settle_status(req, rc);
        return;
    }
    mh_req_run(req);
}
