/*
 * One worker process: loop threads and their lifecycle. Each loop owns an event_base and
 * accepts on its own copy of one of the master's listening sockets (SO_REUSEPORT); its
 * connections are the HTTP engine's (http/conn.c). Nothing on the request path is shared
 * between loops. The main thread waits for signals: it builds new generations on reload and
 * hands them to the loops, frees drained ones, and tells the loops to drain at the end.
 */
#include "run/server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "admin/admin.h"
#include "base/board.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mailbox.h"
#include "base/mem.h"
#include "base/pool.h"
#include "base/sys.h"
#include "conf/config.h"
#include "http/access.h"
#include "http/conn.h"
#include "http/request.h"
#include "http/tls.h"
#include "mod/gen.h"
#include "mod/loader.h"
#include "run/dispatch.h"
#include "run/listeners.h"
#include "ws/pubsub.h"
#include "ws/ws.h"

struct loop_thread;

/* One listener's socket in a loop. */
struct loop_listen {
    struct loop_thread *lt;
    const struct mh_service *svc; /* the listener's (struct mh_listeners outlives the loops) */
    int fd;
    struct event *ev;
};

struct loop_thread {
    pthread_t thread;
    struct mh_loop loop;
    struct loop_listen *listen; /* one per listener */
    size_t nlisten;
    int admin_fd; /* -1: no admin listener */
    struct event *admin_ev;
    struct event *drain_ev; /* activated from the main thread */
    struct event *drain_tick;
    struct timespec drain_deadline;
    struct event *publish_ev; /* loop 0, several workers: metrics pinned for the others */
};

/* The admin listener: its own pages, its own cap (set from the configuration at start). */
static atomic_int admin_open;
static struct mh_service admin_service = {
    .on_request = mh_admin_request,
    .name = "admin",
    .is_private = true,
    .max_connections = 16,
    .open = &admin_open,
};

#define READ_SCRATCH 65536 /* per loop: requests are parsed where they were read */
#define ACCEPT_BATCH 64

/* --- Loop threads --- */

static void apply_limits(struct mh_loop *loop, const struct mh_server_conf *c)
{
    loop->limits = &c->limits;
    loop->access_log = c->access_log;
    loop->access_format = (enum mh_access_format)c->access_format;
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct loop_listen *ll = arg;
    struct loop_thread *lt = ll->lt;

    (void)what;
    for (int i = 0; i < ACCEPT_BATCH && !lt->loop.draining; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                mh_warn("server", "loop %u: cannot accept: %s", lt->loop.index, MH_STRERROR(errno));
            return; /* EAGAIN: none left; others: the next readiness tries again */
        }
        mh_conn_accept(&lt->loop, ll->svc, cfd, (struct sockaddr *)&ss, len);
    }
}

static void on_admin_accept(evutil_socket_t fd, short what, void *arg)
{
    struct loop_thread *lt = arg;

    (void)what;
    /* Accepted while draining too: /readyz says so until the loop ends. */
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd < 0)
            return;
        mh_conn_accept(&lt->loop, &admin_service, cfd, (struct sockaddr *)&ss, len);
    }
}

static void stop_admin(struct loop_thread *lt)
{
    if (lt->admin_ev) {
        event_free(lt->admin_ev);
        lt->admin_ev = NULL;
    }
    if (lt->admin_fd >= 0) {
        close(lt->admin_fd);
        lt->admin_fd = -1;
    }
}

static void stop_listening(struct loop_thread *lt)
{
    for (size_t i = 0; i < lt->nlisten; i++) {
        struct loop_listen *ll = &lt->listen[i];

        if (ll->ev) {
            event_free(ll->ev);
            ll->ev = NULL;
        }
        if (ll->fd >= 0) {
            close(ll->fd);
            ll->fd = -1;
        }
    }
}

static bool past(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct loop_thread *lt = arg;
    struct mh_loop *loop = &lt->loop;

    (void)fd;
    (void)what;
    mh_conn_drain_loop(loop); /* connections that went idle since */
    if (loop->nconns == 0 || past(&lt->drain_deadline)) {
        if (loop->nconns)
            mh_warn("server",
                    "loop %u: drain deadline passed with %llu requests and %zu WebSockets "
                    "unfinished, %zu connections open",
                    loop->index, (unsigned long long)loop->inflight, loop->nws, loop->nconns);
        /* Close this loop's connections now: other loops may still be draining, and nobody
         * would answer these meanwhile. */
        loop->stopped = true;
        stop_admin(lt); /* the other loops' admin sockets take new probes from now on */
        mh_conn_close_all(loop);
        mh_access_flush(loop);
        event_base_loopexit(loop->base, NULL);
    }
}

static void timespec_after_ms(struct timespec *t, long long ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += (time_t)(ms / 1000);
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static void on_publish(evutil_socket_t fd, short what, void *arg)
{
    struct loop_thread *lt = arg;

    (void)fd;
    (void)what;
    mh_admin_publish(lt->loop.admin, &lt->loop);
}

static void stop_publishing(struct loop_thread *lt)
{
    if (lt->publish_ev) {
        event_free(lt->publish_ev);
        lt->publish_ev = NULL;
    }
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct loop_thread *lt = arg;
    struct timeval tick = {0, 10000}; /* 10 ms */

    (void)fd;
    (void)what;
    stop_publishing(lt); /* the loop ends once drained: no timer may keep it */
    stop_listening(lt);
    lt->loop.draining = true;
    mh_ws_close_all(&lt->loop, NULL);
    timespec_after_ms(&lt->drain_deadline, lt->loop.gen->config->server.shutdown_timeout_ms);
    lt->drain_tick = event_new(lt->loop.base, -1, EV_PERSIST, on_drain_tick, lt);
    event_add(lt->drain_tick, &tick);
    on_drain_tick(-1, 0, lt);
}

static void *loop_main(void *arg)
{
    struct loop_thread *lt = arg;

    mh_mailbox_current = lt->loop.mailbox;
    event_base_dispatch(lt->loop.base);
    lt->loop.stopped = true;
    mh_mailbox_current = NULL;
    return NULL;
}

static enum mh_status loop_setup(struct loop_thread *lt, struct mh_gen *gen, struct mh_pool *pool,
                                 struct mh_listeners *ls, struct mh_err *err)
{
    struct mh_loop *loop = &lt->loop;

    lt->listen = mh_xcalloc(ls->n, sizeof(*lt->listen));
    lt->nlisten = ls->n;
    for (size_t i = 0; i < ls->n; i++) {
        lt->listen[i].lt = lt;
        lt->listen[i].svc = &ls->items[i].svc;
        lt->listen[i].fd = mh_listeners_take_fd(ls, i, (int)loop->index);
    }
    loop->base = event_base_new();
    if (!loop->base)
        return mh_err_set(err, MH_E_NOMEM, NULL, 0, "cannot create event base");
    apply_limits(loop, &gen->config->server);
    loop->gen = gen;
    mh_gen_ref(gen);
    loop->mailbox = mh_mailbox_new(loop->base);
    loop->pool = pool;
    loop->pubsub = mh_pubsub_local_new();
    loop->ws_leave_all = mh_pubsub_leave_all;
    loop->rbuf_cap = READ_SCRATCH;
    loop->rbuf = mh_xmalloc(READ_SCRATCH);
    mh_access_start(loop);
    lt->drain_ev = event_new(loop->base, -1, 0, on_drain, lt);
    if (!lt->drain_ev)
        return mh_err_set(err, MH_E_IO, NULL, 0, "cannot create the drain event");
    for (size_t i = 0; i < lt->nlisten; i++) {
        struct loop_listen *ll = &lt->listen[i];

        ll->ev = event_new(loop->base, ll->fd, EV_READ | EV_PERSIST, on_accept, ll);
        if (!ll->ev || event_add(ll->ev, NULL) != 0)
            return mh_err_set(err, MH_E_IO, NULL, 0, "cannot accept on listening socket");
    }
    if (lt->admin_fd >= 0) {
        lt->admin_ev =
            event_new(loop->base, lt->admin_fd, EV_READ | EV_PERSIST, on_admin_accept, lt);
        if (!lt->admin_ev || event_add(lt->admin_ev, NULL) != 0)
            return mh_err_set(err, MH_E_IO, NULL, 0, "cannot accept on the admin socket");
    }
    if (loop->index == 0 && loop->admin && mh_board_active()) {
        struct timeval second = {1, 0};

        lt->publish_ev = event_new(loop->base, -1, EV_PERSIST, on_publish, lt);
        if (!lt->publish_ev || event_add(lt->publish_ev, &second) != 0)
            return mh_err_set(err, MH_E_IO, NULL, 0, "cannot start the metrics publisher");
        event_active(lt->publish_ev, 0, 0); /* the first snapshot as soon as the loop runs */
    }
    return MH_OK;
}

static void loop_cleanup(struct loop_thread *lt)
{
    struct mh_loop *loop = &lt->loop;

    stop_publishing(lt);
    if (lt->drain_tick)
        event_free(lt->drain_tick);
    if (lt->drain_ev)
        event_free(lt->drain_ev);
    stop_listening(lt);
    free(lt->listen);
    lt->listen = NULL;
    lt->nlisten = 0;
    stop_admin(lt);
    loop->stopped = true;
    if (!loop->base)
        return;
    /* Connections first (WebSocket on_close hooks run here), then what is still posted:
     * with `stopped` set, completions drop their answers. */
    mh_conn_loop_cleanup(loop);
    mh_mailbox_free(loop->mailbox);
    mh_request_spares_free(loop);
    mh_pubsub_local_free(loop->pubsub);
    mh_access_stop(loop);
    mh_route_stats_free(&loop->route_stats);
    free(loop->rbuf);
    if (loop->gen)
        mh_gen_unref(loop->gen);
    event_base_free(loop->base);
}

/* --- Generations: switching the loops, retiring the old ones --- */

struct loop_msg {
    struct mh_task base;
    struct loop_thread *lt;
    struct mh_gen *gen; /* referenced by the message */
    bool close_ws;      /* false: serve gen from now on; true: close gen's WebSockets */
};

static void on_loop_msg(struct mh_task *t)
{
    struct loop_msg *m = (struct loop_msg *)t;
    struct mh_loop *loop = &m->lt->loop;

    if (m->close_ws) {
        mh_ws_close_all(loop, m->gen);
        mh_gen_unref(m->gen);
    } else if (!loop->stopped) {
        struct mh_gen *old = loop->gen;
        size_t moved;

        mh_access_flush(loop); /* lines of the old generation go out before the switch */
        moved = mh_ws_adopt_all(loop, old, m->gen);
        if (moved)
            mh_info("reload",
                    "loop %u: %zu WebSockets of unchanged endpoints moved to "
                    "generation %u",
                    loop->index, moved, m->gen->id);
        loop->gen = m->gen; /* the message's reference becomes the loop's */
        apply_limits(loop, &m->gen->config->server);
        mh_gen_unref(old);
    } else {
        mh_gen_unref(m->gen);
    }
    free(m);
}

static void post_to_loop(struct loop_thread *lt, struct mh_gen *gen, bool close_ws)
{
    struct loop_msg *m = mh_xcalloc(1, sizeof(*m));

    m->base.complete = on_loop_msg;
    m->lt = lt;
    m->gen = gen;
    m->close_ws = close_ws;
    mh_gen_ref(gen);
    mh_mailbox_post(lt->loop.mailbox, &m->base);
}

struct mh_server {
    const struct mh_serve_opts *opts;
    struct loop_thread *loops;
    int nloops;
    int port;
    struct mh_listeners *listeners;
    struct mh_pool *pool;
    struct mh_gen *current;
    struct mh_gen *retired;
    unsigned next_gen_id;
    unsigned reloads, reloads_failed;
    int ctl_fd; /* to the master: "ready", then one reload status per SIGHUP */
    struct mh_admin *admin;
    int admin_port;
};

/* Tells the admin listener which generations are live. */
static void publish_generations(struct mh_server *s)
{
    struct mh_admin_gen gens[64];
    size_t n = 0;
    struct timespec now;

    if (!s->admin)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    for (const struct mh_gen *g = s->current; g && n < 64;
         g = g == s->current ? s->retired : g->next_retired) {
        long long left = (long long)(g->drain_deadline.tv_sec - now.tv_sec) * 1000 +
                         (g->drain_deadline.tv_nsec - now.tv_nsec) / 1000000;

        gens[n++] = (struct mh_admin_gen){
            .id = g->id,
            .current = g == s->current,
            .refs = g == s->current ? -1 : mh_gen_refs((struct mh_gen *)(uintptr_t)g),
            .nmodules = g->nmodules,
            .nroutes = g->ntargets,
            .drain_left_ms = left > 0 ? left : 0,
        };
    }
    mh_admin_set_generations(s->admin, gens, n);
}

/* Sends access lines where the configuration says (again: reopens the file). */
static void open_access_log(const struct mh_server_conf *c)
{
    struct mh_err err = {0};

    if (mh_access_open(c->access_file, &err) != MH_OK)
        mh_error("server", "%s; access lines go where they went before", err.msg);
}

static size_t live_generations(const struct mh_server *s)
{
    size_t n = 1;

    for (const struct mh_gen *g = s->retired; g; g = g->next_retired)
        n++;
    return n;
}

/* Frees drained generations; closes the WebSockets of those past their drain deadline. */
static void reap(struct mh_server *s)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    for (struct mh_gen **pp = &s->retired; *pp;) {
        struct mh_gen *g = *pp;

        if (mh_gen_refs(g) == 0) {
            *pp = g->next_retired;
            mh_info("reload", "generation %u drained: finalising its %zu modules", g->id,
                    g->nmodules);
            mh_gen_free(g);
            mh_info("reload",
                    "%zu generations live, %zu module files mapped (%zu KiB of "
                    "private copies)",
                    live_generations(s), mh_loader_mapped_count(), mh_loader_copy_bytes() / 1024);
            publish_generations(s);
            continue;
        }
        if (!g->ws_closed &&
            (now.tv_sec > g->drain_deadline.tv_sec || (now.tv_sec == g->drain_deadline.tv_sec &&
                                                       now.tv_nsec >= g->drain_deadline.tv_nsec))) {
            mh_warn("reload",
                    "generation %u: drain deadline passed with %d references; closing its "
                    "WebSockets (1001)",
                    g->id, mh_gen_refs(g));
            g->ws_closed = true;
            for (int i = 0; i < s->nloops; i++)
                post_to_loop(&s->loops[i], g, true);
        }
        pp = &g->next_retired;
    }
    if (s->retired)
        publish_generations(s); /* their references, every tick while they drain */
}

static void write_status(struct mh_server *s, bool ok, const struct mh_errlist *errs)
{
    char buf[8192], line[2048];
    size_t n;

    if (s->ctl_fd < 0)
        return;
    n = (size_t)snprintf(buf, sizeof(buf), "%u %s %u\n", s->reloads + s->reloads_failed,
                         ok ? "ok" : "failed", s->current->id);
    for (size_t i = 0; errs && i < errs->count && n < sizeof(buf); i++) {
        mh_err_format(&errs->items[i], line, sizeof(line));
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\n", line);
    }
    if (n > sizeof(buf))
        n = sizeof(buf);
    if (send(s->ctl_fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n)
        mh_warn("reload", "cannot tell the master how the reload went: %s", MH_STRERROR(errno));
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void warn_fixed(const struct mh_server *s, const struct mh_server_conf *run,
                       const struct mh_server_conf *next)
{
    if (strcmp(run->host, next->host) != 0 || run->port != next->port ||
        run->threads != next->threads || run->workers != next->workers ||
        run->worker_queue != next->worker_queue || run->processes != next->processes)
        mh_warn("reload",
                "listen, threads, workers, worker_queue and processes change only "
                "with a restart; keeping %s:%d, %d threads, %d workers, %d processes",
                run->host, s->port, run->threads, run->workers, run->processes);
    if (!same_str(run->admin_host, next->admin_host) || run->admin_port != next->admin_port ||
        run->admin_max_connections != next->admin_max_connections)
        mh_warn("reload",
                "admin.listen and admin.max_connections change only with a restart; "
                "keeping %s:%d",
                run->admin_host ? run->admin_host : "(off)", s->admin_port);
    if (!same_str(run->pid_file, next->pid_file) || !same_str(run->user, next->user) ||
        !same_str(run->group, next->group))
        mh_warn("reload",
                "pid_file, user and group change only with a restart; keeping "
                "pid_file %s, user %s, group %s",
                run->pid_file ? run->pid_file : "(none)", run->user ? run->user : "(unchanged)",
                run->group ? run->group : "(unchanged)");
}

static void reload(struct mh_server *s)
{
    const struct mh_serve_opts *o = s->opts;
    struct mh_errlist errs = {0};
    struct mh_config *config = NULL;
    struct mh_gen *g = NULL, *old = s->current;
    struct mh_tls_contexts **staged = NULL;

    mh_info("reload", "reading %s", o->conf_dir);
    mh_config_load(o->conf_dir, &config, &errs);
    if (o->listen_host) {
        free(config->server.host);
        config->server.host = mh_xstrdup(o->listen_host);
        config->server.port = o->listen_port;
    }
    if (errs.count == 0) {
        warn_fixed(s, &old->config->server, &config->server);
        mh_listeners_warn_fixed(s->listeners, &config->server);
    }
    /* Build even after configuration errors, so that module errors are reported too. */
    mh_gen_build_next(config, old, &g, &errs);
    if (errs.count == 0 && g)
        staged = mh_listeners_reload_prepare(s->listeners, &g->config->server, &errs);
    if (errs.count && g) {
        mh_gen_free(g);
        g = NULL;
    }
    if (errs.count || !g) { /* no generation without an error is a bug: keep serving */
        for (size_t i = 0; i < errs.count; i++) {
            char line[2048];

            mh_err_format(&errs.items[i], line, sizeof(line));
            mh_error("reload", "%s", line);
        }
        s->reloads_failed++;
        mh_admin_note_reload(s->admin, false);
        mh_error("reload",
                 "reload failed with %zu error%s (%u failed so far); still serving "
                 "generation %u",
                 errs.count, errs.count == 1 ? "" : "s", s->reloads_failed, old->id);
        write_status(s, false, &errs);
        mh_errlist_cleanup(&errs);
        return;
    }
    g->id = ++s->next_gen_id;
    mh_listeners_reload_commit(s->listeners, staged); /* new handshakes use new certificates */
    mh_log_set_level((enum mh_log_level)g->config->server.log_level);
    for (int i = 0; i < s->nloops; i++)
        post_to_loop(&s->loops[i], g, false);
    s->current = g; /* the build's reference is the server's */
    mh_pubsub_set_bus(g->channels);
    timespec_after_ms(&old->drain_deadline, g->config->server.reload_drain_ms);
    old->next_retired = s->retired;
    s->retired = old;
    mh_gen_unref(old);
    s->reloads++;
    mh_admin_note_reload(s->admin, true);
    mh_admin_set_probe_timeout(s->admin, g->config->server.admin_probe_timeout_ms);
    if (!same_str(old->config->server.access_file, g->config->server.access_file))
        open_access_log(&g->config->server);
    publish_generations(s);
    mh_info("reload",
            "generation %u serving: %zu modules, %zu routes, %zu stores; %zu "
            "generations live, %zu module files mapped (%zu KiB of private copies)",
            g->id, g->nmodules, g->ntargets, g->nstores, live_generations(s),
            mh_loader_mapped_count(), mh_loader_copy_bytes() / 1024);
    write_status(s, true, NULL);
    reap(s);
}

/* --- Start and stop --- */

static void log_tls_failures(void)
{
    uint64_t n[MH_TLS_FAIL_COUNT], total = 0;
    char buf[512];
    size_t len = 0;

    mh_tls_failure_counts(n);
    buf[0] = '\0';
    for (int i = 0; i < MH_TLS_FAIL_COUNT; i++) {
        total += n[i];
        if (n[i] && len < sizeof(buf))
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, " %s=%llu",
                                    mh_tls_failure_name((enum mh_tls_failure)i),
                                    (unsigned long long)n[i]);
    }
    if (total)
        mh_info("tls", "handshakes failed since start: %llu:%s", (unsigned long long)total, buf);
}

static void log_start(const struct mh_gen *gen, const struct mh_listeners *ls, int nloops)
{
    char where[512];
    char mods[512];
    size_t n = 0;

    mh_listeners_describe(ls, where, sizeof(where));
    mods[0] = '\0';
    for (size_t i = 0; i < gen->nmodules && n < sizeof(mods); i++)
        n += (size_t)snprintf(mods + n, sizeof(mods) - n, "%s%s %s", i ? ", " : "",
                              gen->modules[i]->name,
                              gen->modules[i]->def.version ? gen->modules[i]->def.version : "");
    mh_info("server",
            "modhost %s (SDK %d.%d) pid %d listening on %s with %d loop threads, %d "
            "workers, %zu routes, %zu stores; modules: %s",
            MH_VERSION, MH_ABI_MAJOR, MH_ABI_MINOR, (int)getpid(), where, nloops,
            gen->config->server.workers, gen->ntargets, gen->nstores, n ? mods : "none");
}

static struct mh_gen *build_first(struct mh_config *config)
{
    struct mh_errlist errs = {0};
    struct mh_gen *gen = NULL;

    mh_gen_build(config, &gen, &errs);
    if (errs.count) {
        mh_errlist_print(&errs, stderr);
        (void)fprintf(stderr, "modhost: %zu error%s in the configuration\n", errs.count,
                      errs.count == 1 ? "" : "s");
    }
    mh_errlist_cleanup(&errs);
    return gen;
}

void mh_server_sigset(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1); /* logrotate's "reopen your logs": never the default (exit) */
}

/* The admin listener's service on the loops (it answers on sockets the loops own). */
static void start_admin(struct mh_server *s, const struct mh_server_conf *c)
{
    struct mh_loop **ls = mh_xcalloc((size_t)s->nloops, sizeof(*ls));

    admin_service.max_connections = c->admin_max_connections;
    for (int i = 0; i < s->nloops; i++)
        ls[i] = &s->loops[i].loop;
    s->admin = mh_admin_new(ls, (size_t)s->nloops, s->pool, c->admin_probe_timeout_ms);
    publish_generations(s);
}

/* Sets up every loop (not started yet) and tells the channels about them. */
static enum mh_status set_up_loops(struct mh_server *s, const struct mh_worker_ctx *w)
{
    struct mh_err err = {0};
    struct mh_loop **ds;

    for (int i = 0; i < s->nloops; i++) {
        s->loops[i].loop.index = (unsigned)i;
        s->loops[i].loop.admin = s->admin;
        /* The loop owns this process's copies of the master's sockets. */
        s->loops[i].admin_fd = w->admin_fds ? w->admin_fds[i] : -1;
        if (loop_setup(&s->loops[i], s->current, s->pool, s->listeners, &err) != MH_OK) {
            mh_error("server", "%s", err.msg);
            return err.code ? err.code : MH_E_IO;
        }
    }
    ds = mh_xcalloc((size_t)s->nloops, sizeof(*ds));
    for (int i = 0; i < s->nloops; i++)
        ds[i] = &s->loops[i].loop;
    mh_pubsub_set_loops(ds, (size_t)s->nloops);
    mh_pubsub_set_bus(s->current->channels);
    if (w->relay_fd >= 0)
        mh_pubsub_set_relay(&s->loops[0].loop, w->relay_fd);
    return MH_OK;
}

/* SIGUSR1: logrotate moved the access log away, so write to a new file of that name. The
 * server's own log is stderr, which the service manager owns. */
static void reopen_access_log(const struct mh_server *s)
{
    const char *path = s->current->config->server.access_file;

    if (path) {
        open_access_log(&s->current->config->server);
        mh_info("server", "SIGUSR1: access log %s reopened", path);
    } else {
        mh_info("server", "SIGUSR1: access lines go to stderr; nothing to reopen");
    }
}

/* Serves signals until SIGINT or SIGTERM, which it returns; retired generations are reaped
 * every 100 ms while there are any. */
static int wait_for_stop(struct mh_server *s, const sigset_t *set)
{
    for (;;) {
        struct timespec tick = {0, 100000000}; /* 100 ms */
        int sig = s->retired ? sigtimedwait(set, NULL, &tick) : sigwaitinfo(set, NULL);

        if (sig == SIGUSR1)
            reopen_access_log(s);
        else if (sig == SIGHUP)
            reload(s);
        else if (sig == SIGINT || sig == SIGTERM)
            return sig;
        else
            reap(s);
    }
}

/* Stops the @p started loop threads and frees what mh_server_run set up, every generation
 * last (nothing runs any more). */
static void server_cleanup(struct mh_server *s, int started)
{
    struct mh_err err = {0};
    struct mh_loop **ds = NULL;
    size_t n = 0;

    for (int i = 0; i < started; i++)
        event_active(s->loops[i].drain_ev, 0, 0);
    for (int i = 0; i < started; i++)
        pthread_join(s->loops[i].thread, NULL);
    /* Workers finish what they run; what they never started comes back cancelled. */
    mh_pool_stop(s->pool);
    /* No publish may reach a loop from here on. */
    mh_pubsub_set_bus(NULL);
    mh_pubsub_set_relay(NULL, -1);
    mh_pubsub_get_loops(&ds, &n);
    mh_pubsub_set_loops(NULL, 0);
    free(ds);
    mh_pool_set_global(NULL);
    for (int i = 0; i < s->nloops; i++)
        loop_cleanup(&s->loops[i]);
    mh_listeners_free(s->listeners); /* every connection has closed */
    log_tls_failures();
    mh_pool_free(s->pool);
    if (s->admin) {
        struct mh_loop **ls = mh_admin_loops(s->admin, &n);

        free(ls);
        mh_admin_free(s->admin);
    }
    /* Nothing runs any more: every generation can be finalised, newest first. */
    if (s->current)
        mh_gen_free(s->current);
    while (s->retired) {
        struct mh_gen *g = s->retired;

        s->retired = g->next_retired;
        mh_gen_free(g);
    }
    mh_access_open(NULL, &err); /* back to stderr; closes the file */
    free(s->loops);
}

enum mh_status mh_server_run(struct mh_config *config, const struct mh_worker_ctx *w)
{
    struct mh_server s = {.opts = w->opts,
                          .nloops = w->nloops,
                          .port = w->listeners->items[0].port,
                          .listeners = w->listeners,
                          .ctl_fd = w->ctl_fd,
                          .next_gen_id = w->first_gen_id,
                          .admin_port = w->admin_port};
    const struct mh_server_conf *c;
    int started = 0, sig;
    enum mh_status rc = MH_OK;
    sigset_t set;

    (void)signal(SIGPIPE, SIG_IGN);
    mh_server_sigset(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits the mask */
    evthread_use_pthreads();
    s.loops = mh_xcalloc((size_t)s.nloops, sizeof(*s.loops));
    for (int i = 0; i < s.nloops; i++)
        s.loops[i].admin_fd = -1;
    mh_request_ids_init();

    s.current = build_first(config);
    if (!s.current) {
        rc = MH_E_INVAL;
        goto out;
    }
    c = &s.current->config->server;
    s.current->id = ++s.next_gen_id;

    if (mh_pool_new(c->workers, (size_t)c->worker_queue, &s.pool) != MH_OK) {
        rc = MH_E_IO;
        goto out;
    }
    mh_pool_set_global(s.pool);
    open_access_log(c);
    if (c->admin_host && w->admin_fds)
        start_admin(&s, c);
    rc = set_up_loops(&s, w);
    if (rc != MH_OK)
        goto out;
    for (; started < s.nloops; started++) {
        if (pthread_create(&s.loops[started].thread, NULL, loop_main, &s.loops[started]) != 0) {
            mh_error("server", "cannot start loop thread %d", started);
            rc = MH_E_IO;
            goto out;
        }
    }
    log_start(s.current, s.listeners, s.nloops);
    if (s.admin)
        mh_info("server",
                "admin listener on %s:%d (/, /healthz, /readyz, /metrics, /modules, "
                "/routes, /generations)",
                c->admin_host, s.admin_port);
    if (s.ctl_fd >= 0 && send(s.ctl_fd, "ready", 5, MSG_NOSIGNAL) != 5)
        mh_warn("server", "cannot tell the master this worker is ready: %s", MH_STRERROR(errno));

    sig = wait_for_stop(&s, &set);
    mh_admin_set_draining(s.admin);
    mh_info("server", "%s received: stopping (draining for up to %lld ms)",
            sig == SIGINT ? "SIGINT" : "SIGTERM", s.current->config->server.shutdown_timeout_ms);

out:
    server_cleanup(&s, started);
    if (rc == MH_OK)
        mh_info("server", "stopped after %u reloads (%u failed)", s.reloads, s.reloads_failed);
    return rc;
}
