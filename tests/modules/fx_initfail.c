/* fx_initfail: a module whose init always refuses, with a message of its own. */
#include "modhost/sdk.h"

static enum mh_status fx_init(struct mh_host *host, const struct mh_conf *settings, void **state)
{
    (void)settings;
    (void)state;
    mh_host_error(host, "database unreachable: connection refused");
    return MH_E_INVAL;
}

static enum mh_status fx_h(struct mh_req *req, void *state)
{
    (void)state;
    return mh_reply(req, 204, NULL, NULL, 0);
}

MH_MODULE(.name = "fx_initfail", .version = "0.0.1", .init = fx_init,
          .handlers = (const struct mh_handler_def[]){{"h", fx_h, 0}, {NULL, NULL, 0}})
