/*
 * The master process of `modhost serve`: one server per pid file and address, the listening
 * sockets, privileges, and the supervision of server.processes worker processes (respawn,
 * crash reports, quarantine, the loop watchdog, reload and stop). It loads no module code.
 */
#ifndef MH_MASTER_H
#define MH_MASTER_H

#include "run/server.h"

/**
 * Serves @p config (consumed; its configuration already checked) with worker processes until
 * SIGTERM or SIGINT. @return the process exit status: 0 after a clean stop, 1 if the server
 * could not start (logged). In a worker process it does not return: the worker exits.
 */
int mh_master_run(struct mh_config *config, const struct mh_serve_opts *opts);

#endif
