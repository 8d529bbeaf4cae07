/*
 * One worker process of the server: loop threads each with an event_base on the master's
 * listening sockets, the worker pool, reloads, signal handling, and the graceful stop.
 */
#ifndef MH_SERVER_H
#define MH_SERVER_H

#include <signal.h>

#include "base/err.h"

struct mh_gen;
struct mh_listeners;

struct mh_config;

struct mh_serve_opts {
    const char *conf_dir;    /* read again on SIGHUP */
    const char *listen_host; /* --listen, kept across reloads; NULL: from the config */
    int listen_port;
    const char *port_file; /* if set, the bound port is written there once serving */
};

/* What the master hands a worker process. */
struct mh_worker_ctx {
    const struct mh_serve_opts *opts;
    struct mh_listeners *listeners; /* the master's, bound (one socket per loop), with their
                                       TLS contexts: the worker's copy after fork is its own */
    int nloops;
    const int *admin_fds; /* the admin listener's sockets, one per loop; NULL: none */
    int admin_port;
    int ctl_fd;            /* to the master; -1: none */
    int relay_fd;          /* channels to and from the other workers; -1: none */
    unsigned first_gen_id; /* the worker's first generation gets this + 1 */
};

/**
 * Runs one worker: loads the modules of @p config (consumed; already validated), serves on
 * the master's sockets, reloads on SIGHUP (reporting to the master), and on SIGTERM or SIGINT
 * drains and runs every module's fini. @return MH_OK after a clean stop; MH_E_INVAL if the
 * configuration's modules failed to load (errors printed); another error if it could not run.
 */
enum mh_status mh_server_run(struct mh_config *config, const struct mh_worker_ctx *w);
/** The signals a server process takes synchronously: SIGINT, SIGTERM, SIGHUP, SIGUSR1. */
void mh_server_sigset(sigset_t *set);

#endif
