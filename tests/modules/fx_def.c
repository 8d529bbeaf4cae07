/*
 * A module definition written by hand, so that one field can be wrong: CMake builds this file
 * once per fixture with one FX_* macro overridden (fx_major: FX_ABI_MAJOR, fx_magic: FX_MAGIC,
 * ...). Without overrides it is a valid module with one handler "h".
 */
#include <stddef.h>

#include "modhost/sdk.h"

#ifndef FX_NAME
#error "FX_NAME must be defined"
#endif
#ifndef FX_MAGIC
#define FX_MAGIC MH_MODULE_MAGIC
#endif
#ifndef FX_ABI_MAJOR
#define FX_ABI_MAJOR MH_ABI_MAJOR
#endif
#ifndef FX_ABI_MINOR
#define FX_ABI_MINOR MH_ABI_MINOR
#endif
#ifndef FX_SIZE
#define FX_SIZE sizeof(struct mh_module_def)
#endif
#ifndef FX_FINGERPRINT
#define FX_FINGERPRINT MH_BUILD_FINGERPRINT
#endif
#ifndef FX_API
#define FX_API (&mh_api)
#endif
#ifndef FX_HANDLER_FN
#define FX_HANDLER_FN fx_h
#endif
#ifndef FX_DEF
#define FX_DEF (&fx_def)
#endif

MH_HIDDEN const struct mh_api *mh_api;

static enum mh_status fx_h(struct mh_req *req, void *state)
{
    (void)state;
    return mh_reply(req, 204, NULL, NULL, 0);
}

static const struct mh_handler_def fx_handlers[] = {
    {"h", FX_HANDLER_FN, 0},
    {NULL, NULL, 0},
};

static const struct mh_module_def fx_def = {
    .magic = FX_MAGIC,
    .abi_major = FX_ABI_MAJOR,
    .abi_minor = FX_ABI_MINOR,
    .size = (uint32_t)(FX_SIZE),
    .fingerprint = FX_FINGERPRINT,
    .api = FX_API,
    .name = FX_NAME,
    .version = "0.0.1",
    .handlers = fx_handlers,
};

MH_EXPORT const struct mh_module_def *mh_module_v1(void);

MH_EXPORT const struct mh_module_def *mh_module_v1(void)
{
    (void)fx_def; /* unused when FX_DEF is NULL */
    (void)fx_h;
    return FX_DEF;
}
