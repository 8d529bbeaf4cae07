/*
 * The running server: listening sockets (one per loop, SO_REUSEPORT), loop threads each with
 * an event_base and an evhttp, signal handling, and the graceful stop.
 */
#ifndef MH_SERVER_H
#define MH_SERVER_H

#include "base/err.h"

struct mh_gen;

struct mh_config;

struct mh_serve_opts {
    const char *conf_dir;    /* read again on SIGHUP */
    const char *listen_host; /* --listen, kept across reloads; NULL: from the config */
    int listen_port;
    const char *port_file; /* if set, the bound port is written there once serving */
};

/**
 * Serves @p config (consumed; already validated) until SIGTERM or SIGINT: loads its modules,
 * binds, drops privileges if configured, reloads on SIGHUP, then drains and runs every
 * module's fini. @return MH_OK after a clean stop; an error (logged) if it could not start.
 */
enum mh_status mh_server_run(struct mh_config *config, const struct mh_serve_opts *opts);

#endif
