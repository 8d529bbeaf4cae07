/*
 * The core's side of TLS (see tls.h): finds and loads modhost_tls.so the first time a TLS
 * listener needs it, hands it the core's calls it uses, and forwards tls.h to it. Nothing of
 * OpenSSL is mapped before that.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/sys.h"
#include "conf/config.h"
#include "conf/files.h"
#include "http/tls.h"
#include "http/tls_plugin.h"

#ifndef MH_TLS_PLUGIN_PATH
#define MH_TLS_PLUGIN_PATH "/usr/lib/modhost/modhost_tls.so"
#endif

#ifdef MH_DLOPEN_NODELETE
#define TLS_DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)
#else
#define TLS_DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL)
#endif

static const struct mh_tls_ops *ops; /* set once, by the main thread, before any loop runs */

static void host_vlog(enum mh_log_level level, const char *component, const char *fmt, va_list ap)
{
    if (mh_log_enabled(level))
        mh_log_vwrite(level, component, fmt, ap);
}

static const char *const failure_names[MH_TLS_FAIL_COUNT] = {
    "protocol", "cipher", "certificate", "plain_http", "not_tls", "closed", "unfinished", "other",
};

static const struct mh_tls_host host = {
    .size = sizeof(struct mh_tls_host),
    .conn_fd = mh_conn_fd,
    .conn_transport_data = mh_conn_transport_data,
    .conn_set_transport_data = mh_conn_set_transport_data,
    .conn_refuse = mh_conn_refuse,
    .conn_want_write = mh_conn_want_write,
    .conn_read_again = mh_conn_read_again,
    .vlog = host_vlog,
    .errlist_push = mh_errlist_push,
    .failure_names = failure_names,
};

/* Beside the binary (a build tree), else where the install put it. */
static void plugin_path(char *buf, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n > 0) {
        char *slash;

        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            (void)snprintf(buf, size, "%.*s/modhost_tls.so", (int)(slash - exe), exe);
            if (access(buf, F_OK) == 0)
                return;
        }
    }
    (void)snprintf(buf, size, "%s", MH_TLS_PLUGIN_PATH);
}

static bool load(const struct mh_tls_conf *conf, struct mh_errlist *errs)
{
    char path[PATH_MAX + 32];
    struct mh_err e = {0};
    mh_tls_plugin_fn entry;
    void *h;

    if (ops)
        return true;
    plugin_path(path, sizeof(path));
    if (access(path, R_OK) != 0) {
        mh_errlist_add(errs, MH_E_NOTFOUND, conf->cert.file, conf->cert.line,
                       "TLS needs %s, which cannot be read: %s", path, MH_STRERROR(errno));
        return false;
    }
    if (mh_config_check_permissions(path, "TLS plugin", &e) != MH_OK) {
        mh_errlist_push(errs, &e);
        return false;
    }
    h = dlopen(path, TLS_DLOPEN_FLAGS);
    if (!h) {
        mh_errlist_add(errs, MH_E_INVAL, conf->cert.file, conf->cert.line,
                       "cannot load the TLS plugin: %s", dlerror());
        return false;
    }
    *(void **)&entry = dlsym(h, MH_TLS_PLUGIN_ENTRY);
    if (!entry || !(ops = entry(MH_VERSION, &host)) || ops->size != sizeof(*ops)) {
        mh_errlist_add(errs, MH_E_INVAL, conf->cert.file, conf->cert.line,
                       "%s is not the TLS plugin of modhost %s", path, MH_VERSION);
        ops = NULL;
        dlclose(h);
        return false;
    }
    mh_debug("tls", "loaded %s", path);
    return true; /* never unloaded: connections run its code until the process ends */
}

const struct mh_transport *mh_tls_transport(void)
{
    return ops ? ops->transport : NULL;
}

enum mh_status mh_tls_contexts_build(const struct mh_tls_conf *conf, struct mh_tls_contexts **out,
                                     struct mh_errlist *errs)
{
    if (!load(conf, errs))
        return MH_E_INVAL;
    return ops->contexts_build(conf, out, errs);
}

void mh_tls_contexts_free(struct mh_tls_contexts *c)
{
    if (c)
        ops->contexts_free(c);
}

struct mh_tls *mh_tls_new(struct mh_tls_contexts *contexts)
{
    return ops->tls_new(contexts);
}

void mh_tls_install(struct mh_tls *t, struct mh_tls_contexts *contexts)
{
    ops->install(t, contexts);
}

void mh_tls_free(struct mh_tls *t)
{
    if (t)
        ops->tls_free(t);
}

void mh_tls_check(const struct mh_server_conf *s, struct mh_errlist *errs)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        struct mh_tls_contexts *c = NULL;

        if (s->listeners[i].tls && mh_tls_contexts_build(s->listeners[i].tls, &c, errs) == MH_OK)
            mh_tls_contexts_free(c);
    }
}

const char *mh_tls_failure_name(enum mh_tls_failure f)
{
    return f < MH_TLS_FAIL_COUNT ? failure_names[f] : "?";
}

void mh_tls_failure_counts(uint64_t out[MH_TLS_FAIL_COUNT])
{
    if (ops) {
        ops->failure_counts(out);
        return;
    }
    for (int i = 0; i < MH_TLS_FAIL_COUNT; i++)
        out[i] = 0;
}
