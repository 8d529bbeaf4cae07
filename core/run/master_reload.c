/*
 * The master's reloads: the new configuration read, its certificates loaded, a check in a
 * child process when several workers serve (the master itself loads no module code), then
 * every worker asked to switch and their answers gathered into one reload status.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/crash.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sys.h"
#include "conf/config.h"
#include "mod/gen.h"
#include "run/listeners.h"
#include "run/master.h"
#include "run/master_int.h"

static void ask_workers(struct master *m);
static bool start_check(struct master *m);

static void write_status(struct master *m, const char *text)
{
    char buf[8300];
    const char *rest = strchr(text, ' ');
    int n;

    if (m->status_fd < 0)
        return;
    /* The worker's text with the master's sequence number. */
    n = snprintf(buf, sizeof(buf), "%u%s", m->reloads + m->reloads_failed, rest ? rest : "\n");
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf))
        n = (int)sizeof(buf) - 1;
    if (ftruncate(m->status_fd, 0) != 0 || pwrite(m->status_fd, buf, (size_t)n, 0) != n)
        mh_warn("reload", "cannot write the reload status file: %s", MH_STRERROR(errno));
}

void mh_master_reload(struct master *m)
{
    const struct mh_serve_opts *o = m->opts;
    struct mh_errlist errs = {0};
    struct mh_config *config = NULL;

    if (m->reloading) {
        m->reload_again = true; /* after this one: the files may have changed since */
        return;
    }
    /* Read here for the replacements to come; the workers check it in full (module errors
     * beside configuration errors) and report, and each keeps its generation on any error. */
    mh_config_load(o->conf_dir, &config, &errs);
    if (errs.count) {
        mh_config_free(config);
        config = NULL;
    } else if (o->listen_host) {
        free(config->server.host);
        config->server.host = mh_xstrdup(o->listen_host);
        config->server.port = o->listen_port;
    }
    if (config && m->listeners) {
        /* New certificates for the replacements to come, committed with the reload. The
         * workers read them too and report a bad one (and count the failure). */
        m->staged = mh_listeners_reload_prepare(m->listeners, &config->server, &errs);
        m->staged_failed = errs.count != 0;
    }
    mh_errlist_cleanup(&errs);
    m->pending = config;
    m->reloading = true;
    m->reload_ok = true;
    m->reload_text[0] = '\0';
    /* One worker checks and switches in one step; several are asked only after a check
     * passed, so that they never end up on different generations. */
    if (!config || m->nworkers == 1 || !start_check(m))
        ask_workers(m);
}

/* Has every running worker load m->pending (SIGHUP); each answers over its control socket. */
static void ask_workers(struct master *m)
{
    int asked = 0;

    for (int i = 0; i < m->nworkers; i++) {
        struct worker *w = &m->workers[i];

        if (w->pid > 0 && w->ready && kill(w->pid, SIGHUP) == 0) {
            w->awaited = true;
            asked++;
        }
    }
    if (!asked) {
        m->reload_ok = false;
        (void)snprintf(m->reload_text, sizeof(m->reload_text),
                       "0 failed %u\nno worker process is running to load it\n", m->gen_id);
        mh_error("master", "reload refused: no worker process is running");
    }
    mh_master_reload_done(m);
}

/* --- The reload's check in a child process --- */

/* Builds m->pending's generation in a child (modules loaded, init and fini run, as `modhost
 * check` does), its errors written to a pipe; the master loads no module code itself.
 * @return false if the child could not be started (the workers check on their own). */
static bool start_check(struct master *m)
{
    int p[2];
    pid_t pid, master = getpid();

    if (pipe2(p, O_CLOEXEC) != 0) {
        mh_warn("reload", "cannot start the check process: %s", MH_STRERROR(errno));
        return false;
    }
    pid = fork();
    if (pid == 0) {
        struct mh_errlist errs = {0};
        struct mh_gen *g = NULL;
        FILE *out;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != master)
            _exit(1);
        close(p[0]);
        mh_master_close_fds(m);
        out = fdopen(p[1], "w");
        mh_gen_build(m->pending, &g, &errs); /* consumes the child's copy */
        for (size_t i = 0; out && i < errs.count; i++) {
            char line[2048];

            mh_err_format(&errs.items[i], line, sizeof(line));
            (void)fprintf(out, "%s\n", line); /* the exit status is the verdict; these explain */
        }
        if (g)
            mh_gen_free(g);
        if (out)
            (void)fclose(out);
        /* NOLINTNEXTLINE(concurrency-mt-unsafe): the modules' fini stopped their threads */
        exit(errs.count ? 1 : 0);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        mh_warn("reload", "cannot fork the check process: %s", MH_STRERROR(errno));
        return false;
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    m->check_pid = pid;
    m->check_fd = p[0];
    m->check_len = 0;
    m->check_exited = false;
    mh_info("reload", "checking the new configuration in pid %d before the workers switch",
            (int)pid);
    return true;
}

/* The check has written everything and exited: ask the workers, or fail the reload. */
void mh_master_check_done(struct master *m)
{
    int st = m->check_status;
    char *line, *save = NULL;
    unsigned nerr = 0;

    if (m->check_fd >= 0 || !m->check_exited)
        return;
    m->check_pid = 0;
    m->check_out[m->check_len] = '\0';
    if (m->stopping) {
        m->reload_ok = false;
        (void)snprintf(m->reload_text, sizeof(m->reload_text),
                       "0 failed %u\nthe server is stopping\n", m->gen_id);
        mh_master_reload_done(m);
        return;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        ask_workers(m);
        return;
    }
    m->reload_ok = false;
    /* (cut to fit: the errors are logged whole below) */
    (void)snprintf(m->reload_text, sizeof(m->reload_text), "0 failed %u\n%.*s", m->gen_id,
                   (int)sizeof(m->reload_text) - 32,
                   WIFSIGNALED(st) ? "the check process died of a signal: see the log\n"
                                   : m->check_out);
    for (line = strtok_r(m->check_out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        mh_error("reload", "%s", line);
        nerr++;
    }
    if (WIFSIGNALED(st))
        mh_error("reload", "the check process died of signal %d (%s)", WTERMSIG(st),
                 mh_signal_str(WTERMSIG(st)));
    mh_error("reload",
             "reload failed with %u error%s (%u failed so far); the workers were not asked "
             "and still serve generation %u",
             nerr, nerr == 1 ? "" : "s", m->reloads_failed + 1, m->gen_id);
    mh_master_reload_done(m);
}

/* The check's pipe is readable: its errors, or the end. */
void mh_master_check_read(struct master *m)
{
    for (;;) {
        size_t room = sizeof(m->check_out) - 1 - m->check_len;
        char sink[512];
        ssize_t n = room ? read(m->check_fd, m->check_out + m->check_len, room)
                         : read(m->check_fd, sink, sizeof(sink)); /* past the cap: dropped */

        if (n > 0) {
            if (room)
                m->check_len += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        close(m->check_fd);
        m->check_fd = -1;
        mh_master_check_done(m);
        return;
    }
}

/* Every worker asked has answered: the reload is decided. */
void mh_master_reload_done(struct master *m)
{
    for (int i = 0; i < m->nworkers; i++) {
        if (m->workers[i].awaited)
            return;
    }
    if (!m->reloading)
        return;
    m->reloading = false;
    if (m->reload_ok) {
        if (m->pending) {
            mh_config_free(m->config);
            m->config = m->pending; /* replacements start with it from now on */
        }
        if (m->staged_failed)
            mh_warn("reload", "the workers loaded the new certificates but the master could "
                              "not (the files changed meanwhile?): a replaced worker starts "
                              "with the previous ones until the next reload");
        mh_listeners_reload_commit(m->listeners, m->staged);
        m->reloads++;
        if (atomic_load(&m->crash->nquarantined)) {
            mh_crash_quarantine_clear(m->crash);
            mh_info("master", "reload succeeded: quarantined modules are back in service");
        }
        m->ncrashes = 0;
    } else {
        mh_config_free(m->pending);
        mh_listeners_reload_abort(m->listeners, m->staged);
        m->reloads_failed++;
    }
    m->staged = NULL;
    m->staged_failed = false;
    m->pending = NULL;
    write_status(m, m->reload_text[0] ? m->reload_text : "0 failed 0\nno worker answered\n");
    if (m->reload_again && !m->stopping) {
        m->reload_again = false;
        mh_master_reload(m);
    }
}

void mh_master_on_worker_message(struct master *m, int i)
{
    struct worker *w = &m->workers[i];
    char buf[8192];
    ssize_t n = recv(w->ctl, buf, sizeof(buf) - 1, 0);

    if (n <= 0) {
        mh_master_close_ctl(w); /* it is exiting: its SIGCHLD follows */
        return;
    }
    buf[n] = '\0';
    if (strcmp(buf, "ready") == 0) {
        w->ready = true;
        if (w->died_ms)
            mh_info("master", "worker %d pid %d serving %lld ms after its predecessor died", i,
                    (int)w->pid, (long long)(mh_master_now_ms() - w->died_ms));
        return;
    }
    if (!w->awaited)
        return;
    w->awaited = false;
    {
        const char *sp = strchr(buf, ' ');
        bool ok = sp && strncmp(sp, " ok ", 4) == 0;

        if (ok) {
            m->gen_id = (unsigned)strtoul(sp + 4, NULL, 10);
            if (!m->reload_text[0])
                (void)snprintf(m->reload_text, sizeof(m->reload_text), "%s", buf);
        } else if (m->reload_ok) {
            m->reload_ok = false;
            (void)snprintf(m->reload_text, sizeof(m->reload_text), "%s", buf);
        }
    }
    mh_master_reload_done(m);
}
