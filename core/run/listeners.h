/*
 * The server's listeners: each address from server.listen or server.listeners, its service
 * (requests to the dispatcher, over plain TCP or TLS) and one SO_REUSEPORT socket per loop.
 * TLS contexts are built here (key files read before privileges drop) and replaced on reload.
 */
#ifndef MH_LISTENERS_H
#define MH_LISTENERS_H

#include <stddef.h>

#include "base/err.h"
#include "http/conn.h"

struct mh_server_conf;
struct mh_tls;
struct mh_tls_contexts;

struct mh_listener {
    char *host;
    int port;              /* the bound port once bound (port 0: the one the kernel chose) */
    struct mh_service svc; /* what its connections get; lives as long as the listeners */
    struct mh_tls *tls;    /* NULL: plain HTTP */
    int *fds;              /* one socket per loop; -1 once a loop has taken it */
};

struct mh_listeners {
    struct mh_listener *items;
    size_t n;
    int nloops;
};

/** A listening socket on @p host:@p port (SO_REUSEPORT, non-blocking); *@p bound_port gets the
 *  port bound (port 0: the one the kernel chose). @return the socket, or -1 with @p err. */
int mh_listener_socket(const char *host, int port, int *bound_port, struct mh_err *err);

/** The listeners of @p c (listener 0 at c->host:c->port); builds their TLS contexts, reading
 *  every certificate and key now. @return MH_OK and *@p out, or errors in @p errs. */
enum mh_status mh_listeners_new(const struct mh_server_conf *c,
                                void (*on_request)(struct mh_req *req), struct mh_listeners **out,
                                struct mh_errlist *errs);
/** Opens @p nloops sockets per listener. */
enum mh_status mh_listeners_bind(struct mh_listeners *ls, int nloops, struct mh_err *err);
/** Takes loop @p loop's socket of listener @p i (the caller closes it). */
int mh_listeners_take_fd(struct mh_listeners *ls, size_t i, int loop);

/** For a reload: builds the TLS contexts @p next gives the running TLS listeners (by
 *  position). @return an array (one per listener, NULL where nothing changes) for commit or
 *  abort; NULL with errors in @p errs if a certificate or key is unusable. */
struct mh_tls_contexts **mh_listeners_reload_prepare(struct mh_listeners *ls,
                                                     const struct mh_server_conf *next,
                                                     struct mh_errlist *errs);
/** New handshakes use the prepared contexts (consumed with the array). */
void mh_listeners_reload_commit(struct mh_listeners *ls, struct mh_tls_contexts **staged);
void mh_listeners_reload_abort(struct mh_listeners *ls, struct mh_tls_contexts **staged);
/** Logs a warning if @p next moves, adds or removes a listener (a restart does that). */
void mh_listeners_warn_fixed(const struct mh_listeners *ls, const struct mh_server_conf *next);

/** "127.0.0.1:8080 (http), 0.0.0.0:8443 (https)" into @p buf. */
void mh_listeners_describe(const struct mh_listeners *ls, char *buf, size_t size);
/** Closes the sockets no loop took, frees TLS state (after every connection has closed). */
void mh_listeners_free(struct mh_listeners *ls);

#endif
