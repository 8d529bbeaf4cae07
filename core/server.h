/*
 * The running server: listening sockets (one per loop, SO_REUSEPORT), loop threads each with
 * an event_base and an evhttp, signal handling, and the graceful stop.
 */
#ifndef MH_SERVER_H
#define MH_SERVER_H

#include "err.h"

struct mh_gen;

struct mh_serve_opts {
    const char *port_file; /* if set, the bound port is written there once serving */
};

/**
 * Serves @p gen (consumed) until SIGTERM or SIGINT, then drains and runs every module's fini.
 * @return MH_OK after a clean stop; an error (logged) if the server could not start.
 */
enum mh_status mh_server_run(struct mh_gen *gen, const struct mh_serve_opts *opts);

#endif
