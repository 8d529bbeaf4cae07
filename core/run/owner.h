/*
 * One server per pid file and per address: an exclusive lock on the pid file for the life of
 * the server, and a probe of the listen address without SO_REUSEPORT before binding with it.
 */
#ifndef MH_OWNER_H
#define MH_OWNER_H

#include <sys/types.h>

#include "base/err.h"

/**
 * Opens @p path, takes an exclusive lock on it (flock) and writes this process's pid into it.
 * The lock lasts until the returned descriptor is closed (also when the process dies).
 * @return the descriptor (close-on-exec); -1 with err set, naming the running pid when the
 * lock is held by another server.
 */
int mh_pidfile_lock(const char *path, struct mh_err *err);

/** Writes @p pid into the locked pid file @p fd (replacing what was there). */
enum mh_status mh_pidfile_write(int fd, pid_t pid);

/**
 * Checks that no other socket listens on @p host:@p port by binding one without
 * SO_REUSEPORT (a listener with SO_REUSEPORT would otherwise share the port silently).
 * Port 0 always passes. @return MH_OK, or MH_E_CONFLICT with err naming the address and, when
 * it can be found (same user), the pid that serves it.
 */
enum mh_status mh_addr_probe(const char *host, int port, struct mh_err *err);

#endif
