/*
 * Listeners (see listeners.h): addresses into sockets, one per loop on the same port
 * (SO_REUSEPORT), each serving plain HTTP or TLS; their TLS contexts across reloads.
 */
#include "run/listeners.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/sys.h"
#include "conf/config.h"
#include "http/tls.h"

int mh_listener_socket(const char *host, int port, int *bound_port, struct mh_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    int fd = -1, rc, saved = 0;

    (void)snprintf(portstr, sizeof(portstr), "%d", port); /* fits any int */
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        mh_err_set(err, MH_E_INVAL, NULL, 0, "cannot resolve listen address %s: %s", host,
                   gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0) {
            union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
                struct sockaddr_storage any;
            } a = {0};
            socklen_t len = sizeof(a);

            if (getsockname(fd, &a.sa, &len) == 0)
                *bound_port = ntohs(a.sa.sa_family == AF_INET6 ? a.in6.sin6_port : a.in.sin_port);
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        mh_err_set(err, MH_E_IO, NULL, 0, "cannot listen on %s:%d: %s", host, port,
                   MH_STRERROR(saved));
    return fd;
}

/* The address of listener @p i of @p c: listener 0's is c->host:c->port (--listen). */
static void conf_address(const struct mh_server_conf *c, size_t i, const char **host, int *port)
{
    if (i == 0 || c->nlisteners == 0) {
        *host = c->host;
        *port = c->port;
    } else {
        *host = c->listeners[i].host;
        *port = c->listeners[i].port;
    }
}

static const struct mh_tls_conf *conf_tls(const struct mh_server_conf *c, size_t i)
{
    return i < c->nlisteners ? c->listeners[i].tls : NULL;
}

enum mh_status mh_listeners_new(const struct mh_server_conf *c,
                                void (*on_request)(struct mh_req *req), struct mh_listeners **out,
                                struct mh_errlist *errs)
{
    struct mh_listeners *ls = mh_xcalloc(1, sizeof(*ls));
    size_t before = errs->count;

    ls->n = c->nlisteners ? c->nlisteners : 1;
    ls->items = mh_xcalloc(ls->n, sizeof(*ls->items));
    for (size_t i = 0; i < ls->n; i++) {
        struct mh_listener *l = &ls->items[i];
        const struct mh_tls_conf *tc = conf_tls(c, i);
        const char *host;

        conf_address(c, i, &host, &l->port);
        l->host = mh_xstrdup(host);
        l->svc.on_request = on_request;
        l->svc.name = tc ? "https" : "http";
        if (tc) {
            struct mh_tls_contexts *ctxs = NULL;

            if (mh_tls_contexts_build(tc, &ctxs, errs) == MH_OK) {
                l->tls = mh_tls_new(ctxs);
                l->svc.transport = mh_tls_transport();
                l->svc.transport_ctx = l->tls;
            }
        }
    }
    if (errs->count != before) {
        mh_listeners_free(ls);
        return MH_E_INVAL;
    }
    *out = ls;
    return MH_OK;
}

enum mh_status mh_listeners_bind(struct mh_listeners *ls, int nloops, struct mh_err *err)
{
    ls->nloops = nloops;
    for (size_t i = 0; i < ls->n; i++) {
        struct mh_listener *l = &ls->items[i];

        l->fds = mh_xcalloc((size_t)nloops, sizeof(int));
        for (int k = 0; k < nloops; k++)
            l->fds[k] = -1;
        for (int k = 0; k < nloops; k++) {
            /* Port 0: the first socket gets a free port, the others share it. */
            l->fds[k] = mh_listener_socket(l->host, l->port, &l->port, err);
            if (l->fds[k] < 0)
                return err->code ? err->code : MH_E_IO;
        }
    }
    return MH_OK;
}

int mh_listeners_take_fd(struct mh_listeners *ls, size_t i, int loop)
{
    int fd = ls->items[i].fds[loop];

    ls->items[i].fds[loop] = -1;
    return fd;
}

struct mh_tls_contexts **mh_listeners_reload_prepare(struct mh_listeners *ls,
                                                     const struct mh_server_conf *next,
                                                     struct mh_errlist *errs)
{
    struct mh_tls_contexts **staged = mh_xcalloc(ls->n, sizeof(*staged));
    size_t before = errs->count;

    for (size_t i = 0; i < ls->n; i++) {
        const struct mh_tls_conf *tc = conf_tls(next, i);

        if (!ls->items[i].tls)
            continue; /* plain stays plain until a restart */
        if (!tc) {
            mh_errlist_add(errs, MH_E_INVAL, NULL, 0,
                           "listener %s:%d serves TLS; turning TLS off needs a restart",
                           ls->items[i].host, ls->items[i].port);
            continue;
        }
        mh_tls_contexts_build(tc, &staged[i], errs);
    }
    if (errs->count != before) {
        mh_listeners_reload_abort(ls, staged);
        return NULL;
    }
    return staged;
}

void mh_listeners_reload_commit(struct mh_listeners *ls, struct mh_tls_contexts **staged)
{
    for (size_t i = 0; staged && i < ls->n; i++) {
        if (staged[i])
            mh_tls_install(ls->items[i].tls, staged[i]);
    }
    free(staged);
}

void mh_listeners_reload_abort(struct mh_listeners *ls, struct mh_tls_contexts **staged)
{
    for (size_t i = 0; staged && i < ls->n; i++)
        mh_tls_contexts_free(staged[i]);
    free(staged);
}

void mh_listeners_warn_fixed(const struct mh_listeners *ls, const struct mh_server_conf *next)
{
    size_t n = next->nlisteners ? next->nlisteners : 1;
    bool same = n == ls->n;

    for (size_t i = 1; same && i < n; i++) {
        const char *host;
        int port;

        conf_address(next, i, &host, &port);
        same = strcmp(host, ls->items[i].host) == 0 && (port == ls->items[i].port || port == 0) &&
               (conf_tls(next, i) != NULL) == (ls->items[i].tls != NULL);
    }
    if (!same) {
        char desc[512];

        mh_listeners_describe(ls, desc, sizeof(desc));
        mh_warn("reload", "listeners are added, moved or removed only with a restart; keeping %s",
                desc);
    }
}

void mh_listeners_describe(const struct mh_listeners *ls, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < ls->n && n < size; i++) {
        const struct mh_listener *l = &ls->items[i];
        bool v6 = strchr(l->host, ':') != NULL;

        n += (size_t)snprintf(buf + n, size - n, "%s%s%s%s:%d (%s)", i ? ", " : "", v6 ? "[" : "",
                              l->host, v6 ? "]" : "", l->port, l->svc.name);
    }
}

void mh_listeners_free(struct mh_listeners *ls)
{
    if (!ls)
        return;
    for (size_t i = 0; i < ls->n; i++) {
        struct mh_listener *l = &ls->items[i];

        for (int k = 0; l->fds && k < ls->nloops; k++) {
            if (l->fds[k] >= 0)
                close(l->fds[k]);
        }
        free(l->fds);
        mh_tls_free(l->tls);
        free(l->host);
    }
    free(ls->items);
    free(ls);
}
