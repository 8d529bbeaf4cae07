/*
 * Listeners, loop threads and lifecycle. Each loop owns an event_base, an evhttp and its own
 * listening socket on the shared port; nothing on the request path is shared between loops.
 * The main thread only waits for signals and tells the loops to drain.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "config.h"
#include "gen.h"
#include "loader.h"
#include "log.h"
#include "mailbox.h"
#include "mem.h"
#include "pool.h"
#include "pubsub.h"
#include "request.h"
#include "ws.h"

struct mh_loop {
    pthread_t thread;
    unsigned index;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct event *drain_ev;  /* activated from the main thread */
    struct event *drain_tick;
    struct timeval keepalive_tv, write_tv;
    struct timespec drain_deadline;
    const struct mh_server_conf *conf;
    struct mh_dispatch dispatch;
    struct mh_mailbox *mailbox;
};

static void ms_to_tv(long long ms, struct timeval *tv)
{
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

/* --- Listening sockets --- */

static int open_listener(const char *host, int port, int *bound_port, struct mh_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    int fd = -1, rc, saved = 0;

    snprintf(portstr, sizeof(portstr), "%d", port);
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
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);

            if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
                *bound_port = ntohs(ss.ss_family == AF_INET6
                                        ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                        : ((struct sockaddr_in *)&ss)->sin_port);
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        mh_err_set(err, MH_E_IO, NULL, 0, "cannot listen on %s:%d: %s", host, port,
                   strerror(saved));
    return fd;
}

/* --- Loop threads --- */

static void on_request(struct evhttp_request *ev, void *arg)
{
    struct mh_loop *loop = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);

    /* After the first request, the read timeout is the keep-alive idle time. */
    if (evcon)
        bufferevent_set_timeouts(evhttp_connection_get_bufferevent(evcon), &loop->keepalive_tv,
                                 &loop->write_tv);
    mh_request_dispatch(&loop->dispatch, ev);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct mh_loop *loop = arg;
    struct timespec now;

    (void)fd;
    (void)what;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((loop->dispatch.inflight == 0 && loop->dispatch.nws == 0) ||
        now.tv_sec > loop->drain_deadline.tv_sec ||
        (now.tv_sec == loop->drain_deadline.tv_sec &&
         now.tv_nsec >= loop->drain_deadline.tv_nsec)) {
        if (loop->dispatch.inflight || loop->dispatch.nws)
            mh_warn("server",
                    "loop %u: drain deadline passed with %llu responses and %zu WebSockets "
                    "unfinished",
                    loop->index, (unsigned long long)loop->dispatch.inflight,
                    loop->dispatch.nws);
        /* Close this loop's connections now (idle keep-alives, WebSockets past the deadline):
         * other loops may still be draining, and nobody would answer these meanwhile. */
        loop->dispatch.stopped = true;
        evhttp_free(loop->http);
        loop->http = NULL;
        event_base_loopexit(loop->base, NULL);
    }
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct mh_loop *loop = arg;
    struct timeval tick = {0, 10 * 1000};
    long long ms = loop->conf->shutdown_timeout_ms;

    (void)fd;
    (void)what;
    if (loop->bound) {
        evhttp_del_accept_socket(loop->http, loop->bound);
        loop->bound = NULL;
    }
    loop->dispatch.draining = true;
    mh_ws_close_all(&loop->dispatch);
    clock_gettime(CLOCK_MONOTONIC, &loop->drain_deadline);
    loop->drain_deadline.tv_sec += (time_t)(ms / 1000);
    loop->drain_deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (loop->drain_deadline.tv_nsec >= 1000000000L) {
        loop->drain_deadline.tv_sec++;
        loop->drain_deadline.tv_nsec -= 1000000000L;
    }
    loop->drain_tick = event_new(loop->base, -1, EV_PERSIST, on_drain_tick, loop);
    event_add(loop->drain_tick, &tick);
    on_drain_tick(-1, 0, loop);
}

static void *loop_main(void *arg)
{
    struct mh_loop *loop = arg;

    mh_mailbox_current = loop->mailbox;
    event_base_dispatch(loop->base);
    loop->dispatch.stopped = true;
    mh_mailbox_current = NULL;
    return NULL;
}

static enum mh_status loop_setup(struct mh_loop *loop, const struct mh_gen *gen,
                                 struct mh_pool *pool, int fd, struct mh_err *err)
{
    const struct mh_server_conf *c = &gen->config->server;
    struct timeval read_tv;

    loop->conf = c;
    loop->base = event_base_new();
    if (!loop->base)
        return mh_err_set(err, MH_E_NOMEM, NULL, 0, "cannot create event base");
    loop->http = evhttp_new(loop->base);
    if (!loop->http)
        return mh_err_set(err, MH_E_NOMEM, NULL, 0, "cannot create evhttp");
    evhttp_set_max_headers_size(loop->http, (ev_ssize_t)c->limits.max_header_bytes);
    evhttp_set_max_body_size(loop->http, (ev_ssize_t)c->limits.max_body_bytes);
    ms_to_tv(c->limits.read_timeout_ms, &read_tv);
    ms_to_tv(c->limits.keepalive_timeout_ms, &loop->keepalive_tv);
    ms_to_tv(c->limits.write_timeout_ms, &loop->write_tv);
    evhttp_set_timeout_tv(loop->http, &read_tv);
    /* Let every method through: the dispatcher answers 405/501 as problem+json. */
    evhttp_set_allowed_methods(loop->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                               EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                               EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                               EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(loop->http, NULL);
    evhttp_set_gencb(loop->http, on_request, loop);
    loop->bound = evhttp_accept_socket_with_handle(loop->http, fd);
    if (!loop->bound) {
        close(fd);
        return mh_err_set(err, MH_E_IO, NULL, 0, "cannot accept on listening socket");
    }
    loop->drain_ev = event_new(loop->base, -1, 0, on_drain, loop);
    loop->dispatch.gen = gen;
    loop->dispatch.limits = &c->limits;
    loop->dispatch.access_log = c->access_log;
    loop->dispatch.loop_index = loop->index;
    loop->mailbox = mh_mailbox_new(loop->base);
    loop->dispatch.base = loop->base;
    loop->dispatch.mailbox = loop->mailbox;
    loop->dispatch.pool = pool;
    loop->dispatch.pubsub = mh_pubsub_local_new();
    return MH_OK;
}

static void loop_cleanup(struct mh_loop *loop)
{
    if (loop->drain_tick)
        event_free(loop->drain_tick);
    if (loop->drain_ev)
        event_free(loop->drain_ev);
    loop->dispatch.stopped = true;
    /* Connections first (WebSocket on_close hooks run here), then what is still posted:
     * with `stopped` set, completions drop their answers instead of touching evhttp. */
    if (loop->http)
        evhttp_free(loop->http);
    mh_mailbox_free(loop->mailbox);
    mh_pubsub_local_free(loop->dispatch.pubsub);
    if (loop->base)
        event_base_free(loop->base);
}

static void write_port_file(const char *path, int port)
{
    char *tmp = mh_xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");

    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
        mh_error("server", "cannot write port file %s: %s", path, strerror(errno));
    free(tmp);
}

static void log_start(const struct mh_gen *gen, int port, int nloops)
{
    char mods[512];
    size_t n = 0;

    mods[0] = '\0';
    for (size_t i = 0; i < gen->nmodules && n < sizeof(mods); i++)
        n += (size_t)snprintf(mods + n, sizeof(mods) - n, "%s%s %s", i ? ", " : "",
                              gen->modules[i]->name,
                              gen->modules[i]->def.version ? gen->modules[i]->def.version : "");
    mh_info("server",
            "modhost %s (SDK %d.%d) listening on %s:%d with %d loop threads, %d workers, "
            "%zu routes, %zu stores; modules: %s",
            MH_VERSION, MH_ABI_MAJOR, MH_ABI_MINOR, gen->config->server.host, port, nloops,
            gen->config->server.workers, gen->ntargets, gen->nstores, n ? mods : "none");
}

enum mh_status mh_server_run(struct mh_gen *gen, const struct mh_serve_opts *opts)
{
    const struct mh_server_conf *c = &gen->config->server;
    int nloops = c->threads, port = c->port, started = 0, sig = 0;
    struct mh_loop *loops = mh_xcalloc((size_t)nloops, sizeof(*loops));
    enum mh_status rc = MH_OK;
    struct mh_pool *pool = NULL;
    struct mh_err err = {0};
    sigset_t set;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* loop threads inherit the mask */
    evthread_use_pthreads();

    if (mh_pool_new(c->workers, (size_t)c->worker_queue, &pool) != MH_OK) {
        rc = MH_E_IO;
        goto out;
    }
    mh_pool_set_global(pool);
    for (int i = 0; i < nloops; i++) {
        int fd = open_listener(c->host, port, &port, &err);

        loops[i].index = (unsigned)i;
        if (fd < 0 || loop_setup(&loops[i], gen, pool, fd, &err) != MH_OK) {
            rc = err.code ? err.code : MH_E_IO;
            mh_error("server", "%s", err.msg);
            goto out;
        }
    }
    for (; started < nloops; started++) {
        if (pthread_create(&loops[started].thread, NULL, loop_main, &loops[started]) != 0) {
            mh_error("server", "cannot start loop thread %d", started);
            rc = MH_E_IO;
            goto out;
        }
    }
    {
        struct mh_dispatch **ds = mh_xcalloc((size_t)nloops, sizeof(*ds));

        for (int i = 0; i < nloops; i++)
            ds[i] = &loops[i].dispatch;
        mh_pubsub_set_loops(ds, (size_t)nloops);
    }
    log_start(gen, port, nloops);
    if (opts && opts->port_file)
        write_port_file(opts->port_file, port);

    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            mh_warn("server", "SIGHUP received: configuration reload is not supported by this "
                              "build; keeping the running configuration");
            continue;
        }
        break;
    }
    mh_info("server", "%s received: stopping (draining for up to %lld ms)",
            sig == SIGINT ? "SIGINT" : "SIGTERM", c->shutdown_timeout_ms);

out:
    for (int i = 0; i < started; i++)
        event_active(loops[i].drain_ev, 0, 0);
    for (int i = 0; i < started; i++)
        pthread_join(loops[i].thread, NULL);
    /* Workers finish what they run; what they never started comes back cancelled. */
    mh_pool_stop(pool);
    {
        struct mh_dispatch **ds = NULL;
        size_t n = 0;

        /* No publish may reach a loop from here on. */
        mh_pubsub_get_loops(&ds, &n);
        mh_pubsub_set_loops(NULL, 0);
        free(ds);
    }
    mh_pool_set_global(NULL);
    for (int i = 0; i < nloops; i++)
        loop_cleanup(&loops[i]);
    mh_pool_free(pool);
    free(loops);
    mh_gen_free(gen); /* every module's fini */
    if (rc == MH_OK)
        mh_info("server", "stopped");
    return rc;
}
