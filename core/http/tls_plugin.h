/*
 * The contract between the core and modhost_tls.so (tls_openssl.c), the TLS code that links
 * OpenSSL. The core loads it (tls_load.c) only when a listener uses TLS, so a server without TLS
 * maps no crypto library. The core binary exports nothing: what the plugin needs from the core it
 * gets in struct mh_tls_host; what it offers comes back in struct mh_tls_ops. Both are built
 * from the same tree: the entry point checks the version string and the sizes.
 */
#ifndef MH_TLS_PLUGIN_H
#define MH_TLS_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "http/conn.h"
#include "http/tls.h"

#define MH_TLS_PLUGIN_ENTRY "mh_tls_plugin_v1"

/* The core's calls the plugin uses. Thread: as the functions they point to. */
struct mh_tls_host {
    size_t size;
    int (*conn_fd)(const struct mh_conn *c);
    void *(*conn_transport_data)(const struct mh_conn *c);
    void (*conn_set_transport_data)(struct mh_conn *c, void *data);
    void (*conn_refuse)(struct mh_conn *c, int status, const char *reason, const char *why);
    void (*conn_want_write)(struct mh_conn *c);
    void (*conn_read_again)(struct mh_conn *c);
    /** A log line (dropped when @p level is not enabled). */
    void (*vlog)(enum mh_log_level level, const char *component, const char *fmt, va_list ap);
    /** Appends a copy of @p e to @p list. */
    void (*errlist_push)(struct mh_errlist *list, const struct mh_err *e);
    const char *const *failure_names; /* by enum mh_tls_failure */
};

/* What the plugin offers: the functions of tls.h, same meaning. */
struct mh_tls_ops {
    size_t size;
    const struct mh_transport *transport;
    enum mh_status (*contexts_build)(const struct mh_tls_conf *conf, struct mh_tls_contexts **out,
                                     struct mh_errlist *errs);
    void (*contexts_free)(struct mh_tls_contexts *c);
    struct mh_tls *(*tls_new)(struct mh_tls_contexts *contexts);
    void (*install)(struct mh_tls *t, struct mh_tls_contexts *contexts);
    void (*tls_free)(struct mh_tls *t);
    void (*failure_counts)(uint64_t out[MH_TLS_FAIL_COUNT]);
};

/** The plugin's entry point: NULL if @p version (the core's MH_VERSION) or the size of
 *  @p host is not the plugin's. @p host is borrowed for the life of the process. */
typedef const struct mh_tls_ops *(*mh_tls_plugin_fn)(const char *version,
                                                     const struct mh_tls_host *host);

#endif
