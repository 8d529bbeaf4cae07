/*
 * Stores: named instances of a driver (provided by a module) declared in conf.d, and the SDK's
 * store calls, which check keys and delegate to the driver. Error messages are per thread.
 */
#ifndef MH_STORE_H
#define MH_STORE_H

#include <libconfig.h>

#include "base/err.h"
#include "base/metrics.h"
#include "modhost/sdk.h"

struct mh_module;

enum mh_store_op {
    MH_STORE_OP_GET,
    MH_STORE_OP_PUT,
    MH_STORE_OP_DELETE,
    MH_STORE_OP_SCAN,
    MH_STORE_OPS
};
extern const char *const mh_store_op_names[MH_STORE_OPS];

struct mh_store {
    char *name;
    const struct mh_store_driver *driver; /* borrowed from the providing module's file */
    char *signature; /* driver and settings, to tell an unchanged declaration on reload */
    int refs;        /* generations using it; main thread only */
    struct mh_conf *conf;
    config_t *settings_copy; /* the settings, copied: the store may outlive its config */
    void *db;
    /* Metrics (any thread adds, shared counters): calls and failures by operation (not
     * found and conflicts are answers, not failures), and how long the driver took. */
    _Atomic uint64_t calls[MH_STORE_OPS], errors[MH_STORE_OPS];
    struct mh_histogram latency;
};

/** Opens store @p name with @p driver. @return MH_OK or the reason in err. */
enum mh_status mh_store_open(const char *name, const struct mh_store_driver *driver,
                             const struct mh_module *provider, const config_setting_t *settings,
                             struct mh_store **out, struct mh_err *err);
/** Closes a store nobody shares (tests); the same as mh_store_unref on a single reference. */
void mh_store_close(struct mh_store *s);
/** Drops a generation's reference; the last one closes the store. Thread: main. */
void mh_store_unref(struct mh_store *s);
/** "driver{key=value;...}" for a declaration: equal strings mean an unchanged store. */
char *mh_store_signature(const char *driver, const config_setting_t *settings);

enum mh_status mh_store_get_impl(struct mh_store *st, const void *key, size_t klen,
                                 struct mh_value *out);
enum mh_status mh_store_put_impl(struct mh_store *st, const void *key, size_t klen, const void *val,
                                 size_t vlen, uint64_t expect, uint64_t *version, int *created);
enum mh_status mh_store_delete_impl(struct mh_store *st, const void *key, size_t klen,
                                    uint64_t expect);
enum mh_status mh_store_scan_impl(struct mh_store *st, const void *prefix, size_t plen,
                                  const void *after, size_t alen, size_t limit, mh_scan_fn fn,
                                  void *arg);
const char *mh_store_error_impl(void);
void mh_store_set_error_impl(const char *fmt, ...) MH_PRINTF(1, 2);
void mh_value_free_impl(struct mh_value *v);

/** The store @p name among those @p host's module lists (the first if NULL), or NULL. */
struct mh_store *mh_host_store_find(struct mh_host *host, const char *name);

#endif
