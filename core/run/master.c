/*
 * The master: it checks the configuration (libconfig only: no module code runs here), owns
 * the pid file lock and the listening sockets, drops privileges, and supervises the worker
 * processes. A worker that dies is replaced at once, from the master's current configuration;
 * the sockets stay open here, so connections wait in the backlog meanwhile. What the dead
 * worker was running comes from the crash table (base/crash.h), as does the loop watchdog.
 */
#include "run/master.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/crash.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sys.h"
#include "conf/config.h"
#include "run/dispatch.h"
#include "run/listeners.h"
#include "run/master_int.h"
#include "run/owner.h"
#include "run/relay.h"

int64_t mh_master_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* @p n ports, one a line, written to @p path atomically (renamed in). */
static void write_port_file(const char *path, const int *ports, size_t n)
{
    char *tmp = mh_xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL;

    for (size_t i = 0; ok && i < n; i++)
        ok = fprintf(f, "%d\n", ports[i]) >= 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0)
        mh_error("server", "cannot write port file %s: %s", path, MH_STRERROR(errno));
    free(tmp);
}

/* One line per listener, in order: its bound port. */
static void write_listener_ports(const char *path, const struct mh_listeners *ls)
{
    int *ports = mh_xcalloc(ls->n, sizeof(*ports));

    for (size_t i = 0; i < ls->n; i++)
        ports[i] = ls->items[i].port;
    write_port_file(path, ports, ls->n);
    free(ports);
}

/* Writes the locked pid file and opens the reload status file beside it (before dropping). */
static enum mh_status write_pid_file(const char *path, int fd, struct master *s)
{
    char *status = mh_xasprintf("%s.reload", path);
    enum mh_status rc = MH_OK;

    if (mh_pidfile_write(fd, getpid()) != MH_OK) {
        mh_error("server", "cannot write pid file %s: %s", path, MH_STRERROR(errno));
        rc = MH_E_IO;
    } else {
        s->status_fd = open(status, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (s->status_fd < 0)
            mh_warn("server", "cannot open %s: %s", status, MH_STRERROR(errno));
    }
    free(status);
    return rc;
}

static enum mh_status drop_privileges(const struct mh_server_conf *c, int status_fd)
{
    uid_t uid = getuid();
    gid_t gid = getgid();

    if (!c->user && !c->group)
        return MH_OK;
    if (c->user && !mh_user_find(c->user, &uid, &gid)) {
        mh_error("server", "server.user '%s' does not exist", c->user);
        return MH_E_INVAL;
    }
    if (c->group && !mh_group_find(c->group, &gid)) {
        mh_error("server", "server.group '%s' does not exist", c->group);
        return MH_E_INVAL;
    }
    if (geteuid() != 0) {
        if (uid == geteuid() && gid == getegid())
            return MH_OK;
        mh_error("server", "server.user/group need the server to start as root (it runs as uid %d)",
                 (int)geteuid());
        return MH_E_INVAL;
    }
    if (status_fd >= 0 && fchown(status_fd, uid, gid) != 0)
        mh_warn("server", "cannot hand the reload status file to uid %d", (int)uid);
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        mh_error("server", "cannot drop privileges to uid %d gid %d: %s", (int)uid, (int)gid,
                 MH_STRERROR(errno));
        return MH_E_IO;
    }
    if (setuid(0) == 0) { /* must not be possible any more */
        mh_error("server", "privileges could be regained after dropping them; stopping");
        return MH_E_IO;
    }
    mh_info("server", "running as uid %d gid %d", (int)uid, (int)gid);
    return MH_OK;
}

/* --- Workers --- */

void mh_master_close_ctl(struct worker *w)
{
    if (w->ctl >= 0)
        close(w->ctl);
    w->ctl = -1;
}

static void close_relay(struct worker *w)
{
    mh_relay_close(&w->relay);
}

/* In a child of the master: the descriptors only the master may hold. */
void mh_master_close_fds(struct master *m)
{
    close(m->sigfd);
    if (m->pid_fd >= 0)
        close(m->pid_fd);
    if (m->status_fd >= 0)
        close(m->status_fd);
    if (m->check_fd >= 0)
        close(m->check_fd);
    for (int k = 0; k < m->nworkers; k++) {
        mh_master_close_ctl(&m->workers[k]);
        close_relay(&m->workers[k]);
    }
}

static void spawn(struct master *m, int i)
{
    struct worker *w = &m->workers[i];
    int sv[2], rv[2] = {-1, -1};
    pid_t pid, master;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 ||
        (m->nworkers > 1 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rv) != 0)) {
        mh_error("master", "cannot create the sockets for worker %d: %s", i, MH_STRERROR(errno));
        w->retry_at_ms = mh_master_now_ms() + RETRY_MS;
        return;
    }
    mh_crash_proc_reset(m->crash, (unsigned)i);
    mh_board_reset(m->board, (unsigned)i);
    master = getpid();
    pid = fork();
    if (pid == 0) {
        struct mh_worker_ctx ctx = {.opts = m->opts,
                                    .listeners = m->listeners,
                                    .nloops = m->nloops,
                                    .admin_fds = m->admin_fds,
                                    .admin_port = m->admin_port,
                                    .ctl_fd = sv[1],
                                    .relay_fd = rv[1],
                                    .first_gen_id = m->gen_id - 1};
        enum mh_status rc;

        /* A worker never outlives its master (a killed master must not leave servers). */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != master)
            exit(1); /* NOLINT(concurrency-mt-unsafe): a child of the one-thread master */
        close(sv[0]);
        if (rv[0] >= 0)
            close(rv[0]);
        mh_master_close_fds(m);
        mh_crash_attach(m->crash, (unsigned)i);
        mh_board_attach(m->board, (unsigned)i);
        rc = mh_server_run(m->config, &ctx);
        /* Exit from here: the master's memory stays reachable for the leak checker. */
        /* NOLINTNEXTLINE(concurrency-mt-unsafe): mh_server_run joined its threads */
        exit(rc == MH_OK ? 0 : rc == MH_E_INVAL ? EXIT_CONFIG : 1);
    }
    close(sv[1]);
    if (rv[1] >= 0)
        close(rv[1]);
    if (pid < 0) {
        mh_error("master", "cannot fork worker %d: %s", i, MH_STRERROR(errno));
        close(sv[0]);
        if (rv[0] >= 0)
            close(rv[0]);
        w->retry_at_ms = mh_master_now_ms() + RETRY_MS;
        return;
    }
    if (rv[0] >= 0)
        fcntl(rv[0], F_SETFL, O_NONBLOCK);
    *w = (struct worker){
        .pid = pid, .ctl = sv[0], .relay = {.fd = rv[0], .pid = pid}, .died_ms = w->died_ms};
}

static int count_running(const struct master *m)
{
    int n = 0;

    for (int i = 0; i < m->nworkers; i++)
        n += m->workers[i].pid > 0;
    return n;
}

/* --- Crash reports and quarantine --- */

static void record_crash(struct master *m, const char *module)
{
    int64_t now = mh_master_now_ms(), since = now - m->config->server.crash_window_ms;
    long long limit = m->config->server.crash_limit;
    unsigned n = 0;

    /* Names come from the crash table, whose slots are MH_CRASH_NAME bytes too: they fit. */
    (void)snprintf(m->crashes[m->ncrashes % CRASH_HISTORY].module, MH_CRASH_NAME, "%s", module);
    m->crashes[m->ncrashes % CRASH_HISTORY].at_ms = now;
    m->ncrashes++;
    for (unsigned i = 0; i < CRASH_HISTORY && i < m->ncrashes; i++) {
        const struct crash_event *e = &m->crashes[i];

        n += e->at_ms >= since && strcmp(e->module, module) == 0;
    }
    if (limit <= 0 || n < (unsigned)limit || mh_crash_quarantined(module))
        return;
    mh_crash_quarantine(m->crash, module);
    mh_error("master",
             "module '%s' crashed a worker %u times within %lld ms (server.crash_limit %lld): "
             "quarantined, its routes answer 503 until the next successful reload",
             module, n, m->config->server.crash_window_ms, limit);
}

static void report_death(struct master *m, int i, int status)
{
    struct worker *w = &m->workers[i];
    char what[4096];
    const char *blamed = NULL;
    char module[MH_CRASH_NAME] = "";

    mh_crash_describe(m->crash, (unsigned)i, what, sizeof(what), &blamed);
    if (w->watchdog_killed)
        blamed = w->blamed;
    if (blamed)
        (void)snprintf(module, sizeof(module), "%s", blamed); /* a crash table name: fits */
    if (WIFSIGNALED(status))
        mh_error("master", "worker %d pid %d died of signal %d (%s)%s: %s", i, (int)w->pid,
                 WTERMSIG(status), mh_signal_str(WTERMSIG(status)),
                 w->watchdog_killed ? ", killed by the loop watchdog" : "", what);
    else
        mh_error("master", "worker %d pid %d exited with status %d: %s", i, (int)w->pid,
                 WEXITSTATUS(status), what);
    if (module[0])
        record_crash(m, module);
}

/* Sends @p sig to every running worker. */
static void signal_workers(const struct master *m, int sig)
{
    for (int i = 0; i < m->nworkers; i++) {
        if (m->workers[i].pid > 0)
            kill(m->workers[i].pid, sig);
    }
}

/* Worker @p i, whose reload answer was awaited, died: the reload failed. */
static void fail_awaited_reload(struct master *m, int i)
{
    m->workers[i].awaited = false;
    m->reload_ok = false;
    (void)snprintf(m->reload_text, sizeof(m->reload_text),
                   "0 failed %u\nworker pid %d "
                   "died during the reload\n",
                   m->gen_id, (int)m->workers[i].pid);
    mh_master_reload_done(m);
}

/* Worker @p i (pid @p pid) ended: report it and replace it (unless stopping). */
static void worker_ended(struct master *m, int i, pid_t pid, int status)
{
    struct worker *w = &m->workers[i];

    mh_master_close_ctl(w);
    close_relay(w);
    if (w->awaited)
        fail_awaited_reload(m, i);
    if (m->stopping) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            mh_error("master", "worker %d pid %d ended with status %d while stopping", i, (int)pid,
                     status);
            m->unclean = true;
        }
        w->pid = 0;
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_CONFIG) {
        mh_error("master", "worker %d pid %d could not load its modules%s", i, (int)pid,
                 m->started ? "; trying again in a second" : "");
        w->pid = 0;
        w->retry_at_ms = mh_master_now_ms() + RETRY_MS;
        if (!m->started) { /* the first start failed: give up, with the others */
            m->stopping = true;
            signal_workers(m, SIGTERM);
        }
        return;
    }
    report_death(m, i, status);
    w->pid = 0;
    w->died_ms = mh_master_now_ms();
    spawn(m, i); /* at once: the sockets kept the new connections waiting */
    if (m->workers[i].pid > 0)
        mh_info("master", "worker %d replaced by pid %d", i, (int)m->workers[i].pid);
}

/* A child ended: the reload's check process, or a worker (see worker_ended). */
static void on_exit_status(struct master *m, pid_t pid, int status)
{
    if (pid == m->check_pid) {
        m->check_exited = true;
        m->check_status = status;
        mh_master_check_done(m);
        return;
    }
    for (int i = 0; i < m->nworkers; i++) {
        if (m->workers[i].pid == pid) {
            worker_ended(m, i, pid, status);
            return;
        }
    }
}

/* --- The loop watchdog --- */

static void watch_loops(struct master *m)
{
    const struct mh_limits *l = &m->config->server.limits;
    int64_t now = mh_master_now_ms();

    if (l->loop_stall_ms <= 0)
        return;
    for (int i = 0; i < m->nworkers; i++) {
        struct worker *w = &m->workers[i];
        struct mh_crash_proc *p = &m->crash->procs[i];
        unsigned n = atomic_load(&p->nslots);

        if (w->pid <= 0 || w->watchdog_killed)
            continue;
        for (unsigned k = 0; k < n && k < MH_CRASH_THREADS; k++) {
            struct mh_crash_slot *s = &p->slots[k];
            unsigned seq = atomic_load_explicit(&s->seq, memory_order_acquire);
            char module[MH_CRASH_NAME], handler[MH_CRASH_NAME], path[160];
            int64_t since = s->since_ms;

            if (!(seq & 1u) || !s->is_loop || now - since < l->loop_stall_ms)
                continue;
            memcpy(module, s->module, sizeof(module));
            memcpy(handler, s->handler, sizeof(handler));
            memcpy(path, s->path, sizeof(path));
            module[sizeof(module) - 1] = handler[sizeof(handler) - 1] = path[sizeof(path) - 1] = 0;
            if (atomic_load_explicit(&s->seq, memory_order_acquire) != seq)
                continue; /* it moved on while we read */
            if (l->loop_stall_kill_ms > 0 && now - since >= l->loop_stall_kill_ms) {
                mh_error("master",
                         "worker %d pid %d: loop thread %d stuck for %lld ms in module %s "
                         "handler %s (%s %s), past limits.loop_stall_kill_ms %lld: replacing "
                         "the worker",
                         i, (int)w->pid, atomic_load(&s->tid), (long long)(now - since), module,
                         handler, s->method, path, l->loop_stall_kill_ms);
                w->watchdog_killed = true;
                (void)snprintf(w->blamed, sizeof(w->blamed), "%s", module); /* same size */
                kill(w->pid, SIGKILL);
                break;
            }
            if (s->reported != seq) {
                s->reported = seq;
                mh_warn("master",
                        "worker %d pid %d: loop thread %d has been in module %s handler %s (%s "
                        "%s) for %lld ms (limits.loop_stall_ms %lld): every connection of that "
                        "loop waits",
                        i, (int)w->pid, atomic_load(&s->tid), module, handler, s->method, path,
                        (long long)(now - since), l->loop_stall_ms);
            }
        }
    }
}

/* --- Channels between workers --- */

/* Passes what worker @p i published to every other running worker. */
static void relay_read(struct master *m, int i)
{
    struct mh_relay_end **to = mh_xcalloc((size_t)m->nworkers, sizeof(*to));
    size_t n = 0;

    for (int k = 0; k < m->nworkers; k++) {
        struct worker *o = &m->workers[k];

        if (k != i && o->pid > 0 && o->relay.fd >= 0)
            to[n++] = &o->relay;
    }
    mh_relay_forward(&m->workers[i].relay, to, n);
    free(to);
}

/* --- Start and stop --- */

static bool all_ready(const struct master *m)
{
    for (int i = 0; i < m->nworkers; i++) {
        if (m->workers[i].pid <= 0 || !m->workers[i].ready)
            return false;
    }
    return true;
}

/* Closes the admin listener's sockets (the workers keep theirs until they exit). */
static void close_admin(struct master *m)
{
    for (int i = 0; m->admin_fds && i < m->nloops; i++) {
        if (m->admin_fds[i] >= 0)
            close(m->admin_fds[i]);
        m->admin_fds[i] = -1;
    }
}

/* SIGTERM or SIGINT: passes it on to the workers, which drain, and closes the listeners. */
static void stop(struct master *m, int sig)
{
    mh_info("master", "stopping %d worker%s (%s)", count_running(m),
            count_running(m) == 1 ? "" : "s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    m->stopping = true;
    signal_workers(m, sig);
    if (m->check_pid > 0)
        kill(m->check_pid, SIGKILL); /* a reload under way ends here */
    /* New connections are refused from now on, as the workers drain. */
    mh_listeners_reload_abort(m->listeners, m->staged);
    m->staged = NULL;
    mh_listeners_free(m->listeners);
    m->listeners = NULL;
    close_admin(m);
}

static void on_signal(struct master *m)
{
    struct signalfd_siginfo si;

    while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        int status;
        pid_t pid;

        switch (si.ssi_signo) {
        case SIGCHLD:
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                on_exit_status(m, pid, status);
            break;
        case SIGHUP:
            if (!m->stopping)
                mh_master_reload(m);
            break;
        case SIGUSR1:
            signal_workers(m, SIGUSR1); /* they reopen their access logs */
            break;
        default: /* SIGTERM, SIGINT */
            if (!m->stopping)
                stop(m, (int)si.ssi_signo);
            break;
        }
    }
}

static int poll_timeout(const struct master *m)
{
    long long stall = m->config->server.limits.loop_stall_ms;
    int64_t now = mh_master_now_ms();
    int t = -1;

    if (stall > 0 && !m->stopping)
        t = stall / 4 < 10 ? 10 : stall / 4 > 100 ? 100 : (int)(stall / 4);
    for (int i = 0; i < m->nworkers; i++) {
        const struct worker *w = &m->workers[i];

        if (w->pid <= 0 && w->retry_at_ms && !m->stopping) {
            int left = w->retry_at_ms > now ? (int)(w->retry_at_ms - now) : 0;

            t = t < 0 || left < t ? left : t;
        }
    }
    return t;
}

/* What supervise polls: the signalfd, each worker's control socket, each worker's relay
 * (for writing too while it has output queued), and the reload check's pipe. */
static void fill_pollfds(const struct master *m, struct pollfd *pfd)
{
    int nw = m->nworkers;

    pfd[0] = (struct pollfd){.fd = m->sigfd, .events = POLLIN};
    for (int i = 0; i < nw; i++) {
        const struct worker *w = &m->workers[i];

        pfd[i + 1] = (struct pollfd){.fd = w->ctl, .events = POLLIN};
        pfd[nw + i + 1] = (struct pollfd){
            .fd = w->relay.fd, .events = (short)(POLLIN | (w->relay.out.len ? POLLOUT : 0))};
    }
    pfd[2 * nw + 1] = (struct pollfd){.fd = m->check_fd, .events = POLLIN};
}

/* Worker @p i's relay and control sockets, as @p pfd found them. */
static void serve_worker(struct master *m, int i, const struct pollfd *pfd)
{
    struct worker *w = &m->workers[i];
    const struct pollfd *ctl = &pfd[i + 1], *relay = &pfd[m->nworkers + i + 1];

    /* Channel messages first: a worker's relay never waits behind its control. */
    if (relay->fd >= 0 && relay->revents && w->relay.fd == relay->fd) {
        if (relay->revents & POLLIN)
            relay_read(m, i);
        mh_relay_flush(&w->relay);
    }
    if (ctl->fd >= 0 && ctl->revents && w->ctl == ctl->fd)
        mh_master_on_worker_message(m, i);
}

/* Every first worker is ready: says so and writes the port files. */
static void announce_start(struct master *m)
{
    char where[512];

    m->started = true;
    mh_listeners_describe(m->listeners, where, sizeof(where));
    mh_info("master", "modhost %s master pid %d: %d worker process%s serving %s", MH_VERSION,
            (int)getpid(), m->nworkers, m->nworkers == 1 ? "" : "es", where);
    if (m->opts->port_file && m->admin_fds) {
        char *admin_file = mh_xasprintf("%s.admin", m->opts->port_file);

        write_port_file(admin_file, &m->admin_port, 1);
        free(admin_file);
    }
    if (m->opts->port_file)
        write_listener_ports(m->opts->port_file, m->listeners);
}

/* Replaces the workers whose wait after failing to load their modules is over. */
static void respawn_due(struct master *m)
{
    for (int i = 0; i < m->nworkers; i++) {
        const struct worker *w = &m->workers[i];

        if (w->pid <= 0 && w->retry_at_ms && mh_master_now_ms() >= w->retry_at_ms)
            spawn(m, i);
    }
}

static void supervise(struct master *m)
{
    int nw = m->nworkers;
    struct pollfd *pfd = mh_xcalloc(2 * (size_t)nw + 2, sizeof(*pfd));
    const struct pollfd *check = &pfd[2 * nw + 1];

    while (!m->stopping || count_running(m) > 0) {
        int n;

        fill_pollfds(m, pfd);
        n = poll(pfd, 2 * (nfds_t)nw + 2, poll_timeout(m));
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; n > 0 && i < nw; i++)
            serve_worker(m, i, pfd);
        if (n > 0 && check->fd >= 0 && check->revents && check->fd == m->check_fd)
            mh_master_check_read(m);
        if (n > 0 && pfd[0].revents)
            on_signal(m);
        if (!m->started && !m->stopping && all_ready(m))
            announce_start(m);
        if (!m->stopping) {
            respawn_due(m);
            watch_loops(m);
        }
    }
    free(pfd);
}

/* The admin listener's sockets, one per loop; false after logging why not. */
static bool open_admin(struct master *m, const struct mh_server_conf *c)
{
    struct mh_err err = {0};

    m->admin_port = c->admin_port;
    m->admin_fds = mh_xcalloc((size_t)m->nloops, sizeof(int));
    for (int i = 0; i < m->nloops; i++)
        m->admin_fds[i] = -1;
    for (int i = 0; i < m->nloops; i++) {
        m->admin_fds[i] = mh_listener_socket(c->admin_host, m->admin_port, &m->admin_port, &err);
        if (m->admin_fds[i] < 0) {
            mh_error("server", "admin listener: %s", err.msg);
            return false;
        }
    }
    return true;
}

/* Reads the listeners' certificates and keys (here, before privileges are dropped: the
 * workers inherit the contexts), makes sure no other server has one of the addresses, and
 * binds them and the admin listener. False after logging why not. */
static bool open_listeners(struct master *m, const struct mh_server_conf *c)
{
    struct mh_errlist errs = {0};
    struct mh_err err = {0};

    if (mh_listeners_new(c, mh_dispatch_request, &m->listeners, &errs) != MH_OK) {
        for (size_t i = 0; i < errs.count; i++) {
            char line[2048];

            mh_err_format(&errs.items[i], line, sizeof(line));
            mh_error("server", "%s", line);
        }
        mh_errlist_cleanup(&errs);
        return false;
    }
    for (size_t i = 0; i < m->listeners->n; i++) {
        if (mh_addr_probe(m->listeners->items[i].host, m->listeners->items[i].port, &err) !=
            MH_OK) {
            mh_error("server", "%s", err.msg);
            return false;
        }
    }
    if (c->admin_host && mh_addr_probe(c->admin_host, c->admin_port, &err) != MH_OK) {
        mh_error("server", "admin listener: %s", err.msg);
        return false;
    }
    if (mh_listeners_bind(m->listeners, m->nloops, &err) != MH_OK) {
        mh_error("server", "%s", err.msg);
        return false;
    }
    return !c->admin_host || open_admin(m, c);
}

/* Undoes what mh_master_run set up; removes @p pid_file (owned) if it is ours. */
static void master_cleanup(struct master *m, char *pid_file)
{
    if (m->listeners)
        mh_listeners_reload_abort(m->listeners, m->staged);
    mh_listeners_free(m->listeners);
    close_admin(m);
    free(m->admin_fds);
    for (int i = 0; i < m->nworkers; i++) {
        mh_master_close_ctl(&m->workers[i]);
        close_relay(&m->workers[i]);
    }
    if (pid_file) {
        char *status = mh_xasprintf("%s.reload", pid_file);

        unlink(pid_file); /* may fail after dropping privileges: harmless, the pid is stale */
        unlink(status);
        free(status);
        free(pid_file);
    }
    if (m->status_fd >= 0)
        close(m->status_fd);
    if (m->pid_fd >= 0)
        close(m->pid_fd); /* the lock ends after the file is gone: a new server finds it free */
    if (m->sigfd >= 0)
        close(m->sigfd);
    if (m->check_fd >= 0)
        close(m->check_fd);
    mh_crash_table_free(m->crash);
    mh_board_free(m->board);
    mh_config_free(m->pending);
    mh_config_free(m->config);
    free(m->workers);
}

int mh_master_run(struct mh_config *config, const struct mh_serve_opts *opts)
{
    const struct mh_server_conf *c = &config->server;
    struct master m = {.opts = opts,
                       .config = config,
                       .nloops = c->threads,
                       .nworkers = c->processes,
                       .sigfd = -1,
                       .status_fd = -1,
                       .pid_fd = -1,
                       .check_fd = -1,
                       .gen_id = 1};
    char *pid_file = c->pid_file ? mh_xstrdup(c->pid_file) : NULL;
    int rc = 1;
    struct mh_err err = {0};
    sigset_t set;

    (void)signal(SIGPIPE, SIG_IGN);
    mh_server_sigset(&set);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the master has one thread: sigprocmask's job */
    m.workers = mh_xcalloc((size_t)m.nworkers, sizeof(*m.workers));
    for (int i = 0; i < m.nworkers; i++)
        m.workers[i].ctl = m.workers[i].relay.fd = -1;

    /* One server per pid file and per address, decided before anything is bound. */
    if (pid_file && (m.pid_fd = mh_pidfile_lock(pid_file, &err)) < 0) {
        mh_error("server", "%s", err.msg);
        free(pid_file);
        pid_file = NULL; /* another server's: never unlinked by this one */
        goto out;
    }
    if (!open_listeners(&m, c))
        goto out;
    if (pid_file && write_pid_file(pid_file, m.pid_fd, &m) != MH_OK)
        goto out;
    if (drop_privileges(c, m.status_fd) != MH_OK)
        goto out;
    m.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    m.crash = mh_crash_table_new((unsigned)m.nworkers);
    if (m.nworkers > 1 && c->admin_host)
        m.board = mh_board_new((unsigned)m.nworkers); /* NULL: each worker's own numbers */
    if (m.sigfd < 0 || !m.crash) {
        mh_error("master", "cannot set up supervision: %s", MH_STRERROR(errno));
        goto out;
    }
    for (int i = 0; i < m.nworkers; i++)
        spawn(&m, i);
    supervise(&m);
    rc = m.started && !m.unclean ? 0 : 1;
    for (int i = 0; i < m.nworkers; i++) {
        if (m.workers[i].pid > 0)
            rc = 1;
    }

out:
    master_cleanup(&m, pid_file);
    if (rc == 0)
        mh_info("master", "stopped after %u reloads (%u failed)", m.reloads, m.reloads_failed);
    return rc;
}
