/*
 * TLS on a listener (OpenSSL 3): a transport (conn.h) that runs each connection's handshake on
 * its loop and carries its bytes through SSL_read/SSL_write over the socket, and the contexts
 * a listener's settings build (certificates, SNI, protocol floor, ciphers, ALPN, tickets).
 * Contexts are swapped on reload; connections keep the ones they started with. The code that
 * links OpenSSL is modhost_tls.so (tls_openssl.c), loaded by tls_load.c the first time contexts are
 * built: a server without a TLS listener maps no crypto library.
 */
#ifndef MH_TLS_H
#define MH_TLS_H

#include <stdint.h>

#include "base/err.h"
#include "http/conn.h"

struct mh_server_conf;
struct mh_tls_conf;

/* One listener's TLS: its current contexts and its session ticket keys, shared by the loops. */
struct mh_tls;
/* Contexts built from a listener's settings, not serving yet. */
struct mh_tls_contexts;

/* Why handshakes failed or were refused (counted per process, logged at most once a second). */
enum mh_tls_failure {
    MH_TLS_FAIL_PROTOCOL,    /* a protocol below the floor, or not TLS at all at the version */
    MH_TLS_FAIL_CIPHER,      /* no cipher, group or signature algorithm in common */
    MH_TLS_FAIL_CERTIFICATE, /* the client refused our certificate */
    MH_TLS_FAIL_PLAIN_HTTP,  /* plain HTTP sent to the TLS port (answered with 400) */
    MH_TLS_FAIL_NOT_TLS,     /* other bytes that are not a TLS handshake */
    MH_TLS_FAIL_CLOSED,      /* the client closed the connection during the handshake */
    MH_TLS_FAIL_UNFINISHED,  /* the server closed it first (head deadline, connection cap, stop) */
    MH_TLS_FAIL_OTHER,
    MH_TLS_FAIL_COUNT
};

/** The TLS transport (transport_ctx: a struct mh_tls); NULL until contexts were built. */
const struct mh_transport *mh_tls_transport(void);

/** Builds the contexts of @p conf (borrowed: copied what is needed): loads modhost_tls.so the
 *  first time, reads and checks every certificate and key. @return MH_OK and *@p out (release
 *  with mh_tls_contexts_free or hand to mh_tls_new/mh_tls_install); otherwise every problem
 *  is in @p errs with its file:line. Thread: the main thread. */
enum mh_status mh_tls_contexts_build(const struct mh_tls_conf *conf, struct mh_tls_contexts **out,
                                     struct mh_errlist *errs);
void mh_tls_contexts_free(struct mh_tls_contexts *c);

/** A listener's TLS serving @p contexts (consumed). */
struct mh_tls *mh_tls_new(struct mh_tls_contexts *contexts);
/** New handshakes use @p contexts (consumed) from now on; established connections and
 *  handshakes under way keep theirs. Session ticket keys carry over. Thread: any. */
void mh_tls_install(struct mh_tls *t, struct mh_tls_contexts *contexts);
/** After every connection using @p t has closed. */
void mh_tls_free(struct mh_tls *t);

/** Builds (and frees) the contexts of every TLS listener in @p s: what `modhost check` runs. */
void mh_tls_check(const struct mh_server_conf *s, struct mh_errlist *errs);

/** Failures so far in this process, by enum mh_tls_failure. */
void mh_tls_failure_counts(uint64_t out[MH_TLS_FAIL_COUNT]);
const char *mh_tls_failure_name(enum mh_tls_failure f);

#endif
