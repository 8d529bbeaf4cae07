/*
 * TLS (see tls.h), built as modhost_tls.so: the only code that links OpenSSL. It reaches the
 * core only through struct mh_tls_host (tls_plugin.h). A connection's SSL object reads and writes
 * the socket itself; the engine sees read/writev like plain TCP. Handshakes run inside the first
 * reads; output a read must send first waits for EV_WRITE (mh_conn_want_write). Small writes are
 * gathered into one record; large blocks go to SSL_write in place. Contexts are reference-counted
 * so a reload never pulls them from under a handshake. Ticket keys rotate and are shared by the
 * loops.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conf/config.h"
#include "http/tls_plugin.h"

#define GATHER      16384 /* one TLS record: smaller writes are copied together into one */
#define TICKET_KEYS 3     /* the key that encrypts and two older ones that still decrypt */

static const struct mh_tls_host *core; /* the core's calls; set by the entry point */

/* --- What the core does for us --- */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (!p)
        abort(); /* as the core's mh_xcalloc: small fixed allocations never fail softly */
    return p;
}

static void tls_log(enum mh_log_level level, const char *fmt, ...) MH_PRINTF(2, 3);

static void tls_log(enum mh_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    core->vlog(level, "tls", fmt, ap);
    va_end(ap);
}

static void err_add(struct mh_errlist *errs, enum mh_status code, const char *file, int line,
                    const char *fmt, ...) MH_PRINTF(5, 6);

static void err_add(struct mh_errlist *errs, enum mh_status code, const char *file, int line,
                    const char *fmt, ...)
{
    struct mh_err e = {.code = code, .line = line};
    va_list ap;

    (void)snprintf(e.file, sizeof(e.file), "%s", file ? file : "");
    va_start(ap, fmt);
    (void)vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
    va_end(ap);
    core->errlist_push(errs, &e);
}

/* --- Contexts --- */

struct sni_ctx {
    SSL_CTX *ctx;
    X509 *leaf; /* borrowed from ctx */
};

struct mh_tls_contexts {
    atomic_int refs;
    SSL_CTX *main;
    X509 *leaf; /* borrowed from main */
    struct sni_ctx *sni;
    size_t nsni;
    long long ticket_key_rotate_s;
};

struct ticket_key {
    unsigned char name[16], aes[32], hmac[32];
    int64_t epoch; /* the rotation period it encrypts in */
};

struct mh_tls {
    pthread_mutex_t lock; /* guards cur and the ticket keys */
    struct mh_tls_contexts *cur;
    /* Made once where the listener is built (the master, before the workers are forked):
     * every worker process derives the same keys from it, period by period. */
    unsigned char seed[32];
    struct ticket_key keys[TICKET_KEYS]; /* keys[0] encrypts new tickets */
    size_t nkeys;
};

/* A connection's TLS state. */
struct tls_conn {
    SSL *ssl;
    struct mh_tls *tls;
    struct mh_tls_contexts *ctxs; /* referenced: what the handshake started with */
    size_t retry_len;             /* an SSL_write that would block: the length to repeat */
    bool handshake_done, peeked, plain, failed;
};

static void contexts_ref(struct mh_tls_contexts *c)
{
    atomic_fetch_add(&c->refs, 1);
}

static void contexts_free(struct mh_tls_contexts *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    SSL_CTX_free(c->main);
    for (size_t i = 0; i < c->nsni; i++)
        SSL_CTX_free(c->sni[i].ctx);
    free(c->sni);
    free(c);
}

static int64_t mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec;
}

/* --- Failures: counted, logged at most once a second --- */

static atomic_ullong failures[MH_TLS_FAIL_COUNT];
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t fail_logged_s = -1;
static unsigned long fail_unlogged;

static void failure_counts(uint64_t out[MH_TLS_FAIL_COUNT])
{
    for (int i = 0; i < MH_TLS_FAIL_COUNT; i++)
        out[i] = atomic_load(&failures[i]);
}

/* "ADDRESS" of the peer (@p local false) or "ADDRESS:PORT" of our end of @p fd. */
static void sock_name(int fd, bool local, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[64], port[16];
    int rc = local ? getsockname(fd, (struct sockaddr *)&ss, &len)
                   : getpeername(fd, (struct sockaddr *)&ss, &len);

    if (rc != 0 || getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port, sizeof(port),
                               NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        (void)snprintf(buf, size, "?");
    else if (local)
        (void)snprintf(buf, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    else
        (void)snprintf(buf, size, "%s", host);
}

static void fail(struct tls_conn *tc, int fd, enum mh_tls_failure f, const char *detail)
{
    unsigned long skipped;
    int64_t now = mono_s();
    char peer[64], at[96];

    if (tc->failed || tc->handshake_done)
        return;
    tc->failed = true;
    atomic_fetch_add(&failures[f], 1);
    pthread_mutex_lock(&fail_lock);
    if (now == fail_logged_s) {
        fail_unlogged++;
        pthread_mutex_unlock(&fail_lock);
        return;
    }
    fail_logged_s = now;
    skipped = fail_unlogged;
    fail_unlogged = 0;
    pthread_mutex_unlock(&fail_lock);
    sock_name(fd, false, peer, sizeof(peer));
    sock_name(fd, true, at, sizeof(at));
    if (skipped)
        tls_log(MH_LOG_INFO,
                "handshake failed on %s from %s: %s (%s); %lu more failures not logged", at, peer,
                core->failure_names[f], detail, skipped);
    else
        tls_log(MH_LOG_INFO, "handshake failed on %s from %s: %s (%s)", at, peer,
                core->failure_names[f], detail);
}

/* The reason of the last OpenSSL error, and what it counts as. Clears the error queue. */
static enum mh_tls_failure classify(char *detail, size_t size)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    enum mh_tls_failure f = MH_TLS_FAIL_OTHER;

    (void)snprintf(detail, size, "%s", why ? why : "unknown error");
    if (e && ERR_GET_LIB(e) == ERR_LIB_SSL) {
        switch (ERR_GET_REASON(e)) {
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_VERSION_TOO_LOW:
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_UNKNOWN_PROTOCOL:
        case SSL_R_UNSUPPORTED_SSL_VERSION:
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
            f = MH_TLS_FAIL_PROTOCOL;
            break;
        case SSL_R_NO_SHARED_CIPHER:
        case SSL_R_NO_SHARED_GROUPS:
        case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
        case SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY:
            f = MH_TLS_FAIL_CIPHER;
            break;
        case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
            f = MH_TLS_FAIL_CERTIFICATE;
            break;
        case SSL_R_HTTP_REQUEST:
        case SSL_R_HTTPS_PROXY_REQUEST:
            f = MH_TLS_FAIL_PLAIN_HTTP;
            break;
        case SSL_R_UNEXPECTED_EOF_WHILE_READING:
            /* OpenSSL 3 reports a peer that closed mid-handshake as an error, not as EOF */
            f = MH_TLS_FAIL_CLOSED;
            break;
        default:
            break;
        }
    }
    ERR_clear_error();
    return f;
}

/* --- Callbacks of the contexts --- */

/* Picks the certificate whose names match the client's server name (the default first). */
/* NOLINTNEXTLINE(readability-non-const-parameter): OpenSSL's callback type fixes it */
static int on_servername(SSL *s, int *alert, void *arg)
{
    struct tls_conn *tc = SSL_get_app_data(s);
    const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);

    (void)alert;
    (void)arg;
    if (!tc || !name || X509_check_host(tc->ctxs->leaf, name, 0, 0, NULL) == 1)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < tc->ctxs->nsni; i++) {
        if (X509_check_host(tc->ctxs->sni[i].leaf, name, 0, 0, NULL) == 1) {
            SSL_set_SSL_CTX(s, tc->ctxs->sni[i].ctx);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN: http/1.1 when the client offers it; without it, no protocol is named. */
static int on_alpn(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)s;
    (void)arg;
    for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
        if (in[i] == 8 && i + 9 <= inlen && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* The key of rotation period @p epoch: HMAC-SHA256 of the period under the listener's seed,
 * one per part. Every process that shares the seed derives the same key without talking to
 * the others, so a ticket made by one worker resumes on any other. */
static bool derive_ticket_key(const unsigned char seed[32], int64_t epoch, struct ticket_key *k)
{
    static const char *const parts[] = {"modhost ticket name", "modhost ticket aes",
                                        "modhost ticket hmac"};
    unsigned char *const outs[] = {k->name, k->aes, k->hmac};
    const size_t sizes[] = {sizeof(k->name), sizeof(k->aes), sizeof(k->hmac)};

    k->epoch = epoch;
    for (size_t i = 0; i < 3; i++) {
        unsigned char msg[64], mac[32];
        size_t len = strlen(parts[i]), maclen = 0;

        memcpy(msg, parts[i], len);
        for (int b = 0; b < 8; b++)
            msg[len++] = (unsigned char)((uint64_t)epoch >> (56 - 8 * b));
        if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, seed, 32, msg, len, mac, sizeof(mac),
                       &maclen) ||
            maclen != sizeof(mac))
            return false;
        memcpy(outs[i], mac, sizes[i]);
        OPENSSL_cleanse(mac, sizeof(mac));
    }
    return true;
}

/* Called with t->lock held: the ring of the current period's key and the previous ones'. */
static void rotate_keys(struct mh_tls *t)
{
    long long period = t->cur->ticket_key_rotate_s > 0 ? t->cur->ticket_key_rotate_s : 3600;
    int64_t epoch = mono_s() / period;
    struct ticket_key ring[TICKET_KEYS];
    size_t n = 0;

    if (t->nkeys && t->keys[0].epoch == epoch)
        return;
    for (int64_t e = epoch; e >= 0 && n < TICKET_KEYS; e--) {
        if (!derive_ticket_key(t->seed, e, &ring[n]))
            break;
        n++;
    }
    if (n) { /* otherwise keep the old keys rather than none */
        memcpy(t->keys, ring, n * sizeof(ring[0]));
        t->nkeys = n;
    }
    OPENSSL_cleanse(ring, sizeof(ring));
}

/* Session tickets: encrypted with the listener's current key, accepted with any in the ring
 * (renewed when not the current one). */
static int on_ticket_key(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                         EVP_MAC_CTX *hctx, int enc)
{
    struct tls_conn *tc = SSL_get_app_data(s);
    struct ticket_key k;
    char digest[] = "sha256";
    OSSL_PARAM params[3];
    int found = -1, rc;

    if (!tc)
        return 0;
    pthread_mutex_lock(&tc->tls->lock);
    rotate_keys(tc->tls);
    for (size_t i = 0; i < tc->tls->nkeys; i++) {
        if (enc || memcmp(name, tc->tls->keys[i].name, 16) == 0) {
            k = tc->tls->keys[i];
            found = (int)i;
            break;
        }
    }
    pthread_mutex_unlock(&tc->tls->lock);
    if (found < 0)
        return 0; /* an unknown key: a full handshake */
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[2] = OSSL_PARAM_construct_end();
    if (enc) {
        memcpy(name, k.name, 16);
        rc = RAND_bytes(iv, 16) == 1 &&
             EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 &&
             EVP_MAC_CTX_set_params(hctx, params) == 1;
    } else {
        rc = EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 &&
             EVP_MAC_CTX_set_params(hctx, params) == 1;
    }
    OPENSSL_cleanse(&k, sizeof(k));
    if (!rc)
        return -1;
    /* 2: a new ticket with the current key. TLS 1.3 clients use a ticket once, so a resumed
     * TLS 1.3 session always gets a new one, or the next connection is a full handshake. */
    return enc || (found == 0 && SSL_version(s) < TLS1_3_VERSION) ? 1 : 2;
}

/* --- Building contexts --- */

static void add_ossl_error(struct mh_errlist *errs, const struct mh_tls_cert_conf *cc,
                           const char *what, const char *path)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;

    if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
        why = "it does not belong to the certificate";
    err_add(errs, MH_E_INVAL, cc->file, cc->line, "%s %s: %s", what, path,
            why ? why : "not usable");
    ERR_clear_error();
}

static bool readable(const char *path, const struct mh_tls_cert_conf *cc, const char *what,
                     struct mh_errlist *errs)
{
    FILE *f = fopen(path, "r");

    if (!f) {
        char ebuf[128];

        /* The GNU strerror_r: its result may be a constant string instead of ebuf. */
        err_add(errs, MH_E_IO, cc->file, cc->line, "cannot read %s %s: %s", what, path,
                strerror_r(errno, ebuf, sizeof(ebuf)));
        return false;
    }
    (void)fclose(f); /* read only: nothing to lose */
    return true;
}

static SSL_CTX *ctx_build(const struct mh_tls_conf *conf, const struct mh_tls_cert_conf *cc,
                          struct mh_errlist *errs)
{
    SSL_CTX *ctx;
    size_t before = errs->count;
    bool cert_ok = readable(cc->certificate, cc, "certificate file", errs);
    bool key_ok = readable(cc->key, cc, "private key file", errs);

    ERR_clear_error();
    if (!cert_ok || !key_ok)
        return NULL;
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        err_add(errs, MH_E_NOMEM, cc->file, cc->line, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, conf->min_protocol);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION |
                                 (conf->session_tickets ? 0 : SSL_OP_NO_TICKET));
    /* Partial writes and a moving buffer: a write repeated after EAGAIN may come from another
     * gather buffer (same bytes). Idle connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Stateless resumption only: tickets, no session cache shared (and locked) by the loops. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_timeout(ctx, (long)conf->session_timeout_s);
    SSL_CTX_set_num_tickets(ctx, conf->session_tickets ? 1 : 0);
    if (SSL_CTX_set_cipher_list(ctx, conf->ciphers) != 1) {
        err_add(errs, MH_E_INVAL, cc->file, cc->line,
                "'ciphers' = \"%s\": no cipher in the list is usable", conf->ciphers);
        ERR_clear_error();
    }
    if (SSL_CTX_set_ciphersuites(ctx, conf->ciphersuites) != 1) {
        err_add(errs, MH_E_INVAL, cc->file, cc->line,
                "'ciphersuites' = \"%s\": not a list of TLS 1.3 cipher suites", conf->ciphersuites);
        ERR_clear_error();
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cc->certificate) != 1)
        add_ossl_error(errs, cc, "cannot use certificate chain", cc->certificate);
    else if (SSL_CTX_use_PrivateKey_file(ctx, cc->key, SSL_FILETYPE_PEM) != 1 ||
             SSL_CTX_check_private_key(ctx) != 1)
        add_ossl_error(errs, cc, "cannot use private key", cc->key);
    if (errs->count != before) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    {
        X509 *leaf = SSL_CTX_get0_certificate(ctx);

        if (leaf && X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
            tls_log(MH_LOG_WARN, "%s:%d: certificate %s has expired", cc->file, cc->line,
                    cc->certificate);
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    if (conf->session_tickets)
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
    return ctx;
}

static enum mh_status contexts_build(const struct mh_tls_conf *conf, struct mh_tls_contexts **out,
                                     struct mh_errlist *errs)
{
    struct mh_tls_contexts *c = xcalloc(1, sizeof(*c));
    size_t before = errs->count;

    atomic_init(&c->refs, 1);
    c->ticket_key_rotate_s = conf->ticket_key_rotate_s;
    c->main = ctx_build(conf, &conf->cert, errs);
    c->sni = xcalloc(conf->nsni + 1, sizeof(*c->sni));
    for (size_t i = 0; i < conf->nsni; i++) {
        SSL_CTX *ctx = ctx_build(conf, &conf->sni[i], errs);

        if (ctx) {
            c->sni[c->nsni].ctx = ctx;
            c->sni[c->nsni++].leaf = SSL_CTX_get0_certificate(ctx);
        }
    }
    if (errs->count != before || !c->main) {
        contexts_free(c);
        return MH_E_INVAL;
    }
    c->leaf = SSL_CTX_get0_certificate(c->main);
    *out = c;
    return MH_OK;
}

/* --- A listener's TLS --- */

static struct mh_tls *tls_new(struct mh_tls_contexts *contexts)
{
    struct mh_tls *t = xcalloc(1, sizeof(*t));

    pthread_mutex_init(&t->lock, NULL);
    t->cur = contexts;
    if (RAND_bytes(t->seed, sizeof(t->seed)) != 1)
        abort(); /* no randomness: nothing safe to encrypt tickets with */
    pthread_mutex_lock(&t->lock);
    rotate_keys(t);
    pthread_mutex_unlock(&t->lock);
    return t;
}

static void install(struct mh_tls *t, struct mh_tls_contexts *contexts)
{
    struct mh_tls_contexts *old;

    pthread_mutex_lock(&t->lock);
    old = t->cur;
    t->cur = contexts;
    pthread_mutex_unlock(&t->lock);
    contexts_free(old); /* connections that use it hold their own reference */
}

static void tls_free(struct mh_tls *t)
{
    if (!t)
        return;
    contexts_free(t->cur);
    OPENSSL_cleanse(t->keys, sizeof(t->keys));
    OPENSSL_cleanse(t->seed, sizeof(t->seed));
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* --- The transport --- */

static int tls_open(struct mh_conn *c, void *ctx)
{
    struct mh_tls *t = ctx;
    struct tls_conn *tc = xcalloc(1, sizeof(*tc));

    tc->tls = t;
    pthread_mutex_lock(&t->lock);
    tc->ctxs = t->cur;
    contexts_ref(tc->ctxs);
    pthread_mutex_unlock(&t->lock);
    core->conn_set_transport_data(c, tc);
    tc->ssl = SSL_new(tc->ctxs->main);
    if (!tc->ssl || SSL_set_fd(tc->ssl, core->conn_fd(c)) != 1) {
        ERR_clear_error();
        return -1; /* tls_close frees what there is */
    }
    SSL_set_app_data(tc->ssl, tc);
    SSL_set_accept_state(tc->ssl);
    return 0;
}

/* Before the first handshake byte: plain HTTP on the TLS port gets a 400 it can read. */
static ssize_t first_byte(struct mh_conn *c, struct tls_conn *tc)
{
    int fd = core->conn_fd(c);
    unsigned char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK);

    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            fail(tc, fd, MH_TLS_FAIL_CLOSED, "closed before sending anything");
        return n;
    }
    tc->peeked = true;
    if (b == 0x16)
        return 1; /* a handshake record */
    if (b >= 'A' && b <= 'Z') {
        tc->plain = true; /* from now on the socket is read and written as it is */
        fail(tc, fd, MH_TLS_FAIL_PLAIN_HTTP, "a plain HTTP request");
        core->conn_refuse(c, 400, "plain_http",
                          "this port speaks HTTPS: send the request over TLS (an https:// URL)");
        errno = EAGAIN;
        return -1;
    }
    fail(tc, fd, MH_TLS_FAIL_NOT_TLS, "the first byte is not a TLS handshake");
    return 0;
}

static ssize_t tls_read(struct mh_conn *c, void *buf, size_t len)
{
    struct tls_conn *tc = core->conn_transport_data(c);
    size_t got = 0;
    int r;

    if (tc->plain)
        return read(core->conn_fd(c), buf, len);
    if (!tc->peeked) {
        ssize_t n = first_byte(c, tc);

        if (n <= 0)
            return n;
    }
    ERR_clear_error();
    r = SSL_read_ex(tc->ssl, buf, len, &got);
    if (r == 1) {
        tc->handshake_done = true;
        if (SSL_has_pending(tc->ssl))
            core->conn_read_again(c); /* decrypted or read ahead, not returned yet */
        return (ssize_t)got;
    }
    switch (SSL_get_error(tc->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        if (SSL_is_init_finished(tc->ssl))
            tc->handshake_done = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        core->conn_want_write(c);
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0; /* close_notify */
    case SSL_ERROR_SYSCALL:
        fail(tc, core->conn_fd(c), MH_TLS_FAIL_CLOSED, "the connection ended");
        ERR_clear_error();
        return 0;
    default:
        if (!tc->handshake_done) {
            char detail[128];
            enum mh_tls_failure f = classify(detail, sizeof(detail));

            fail(tc, core->conn_fd(c), f, detail);
        }
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

static ssize_t tls_writev(struct mh_conn *c, const struct iovec *iov, int n)
{
    struct tls_conn *tc = core->conn_transport_data(c);
    unsigned char gather[GATHER];
    const void *p = iov[0].iov_base;
    size_t want = tc->retry_len, written = 0;
    int r;

    if (tc->plain)
        return writev(core->conn_fd(c), iov, n);
    if (!tc->handshake_done) {
        /* An answer before the handshake finished (the head deadline, a connection cap): it
         * cannot be sent; the connection closes. */
        fail(tc, core->conn_fd(c), MH_TLS_FAIL_UNFINISHED,
             "closed by the server during the handshake");
        errno = ECONNABORTED;
        return -1;
    }
    if (!want) {
        size_t total = 0;

        for (int i = 0; i < n && total < GATHER; i++)
            total += iov[i].iov_len;
        want = iov[0].iov_len >= GATHER ? iov[0].iov_len : (total < GATHER ? total : GATHER);
        if (want > INT_MAX)
            want = INT_MAX;
    }
    if (iov[0].iov_len < want) {
        size_t off = 0;

        for (int i = 0; i < n && off < want; i++) {
            size_t k = iov[i].iov_len < want - off ? iov[i].iov_len : want - off;

            memcpy(gather + off, iov[i].iov_base, k);
            off += k;
        }
        p = gather;
    }
    ERR_clear_error();
    r = SSL_write_ex(tc->ssl, p, want, &written);
    if (r == 1) {
        tc->retry_len = 0;
        return (ssize_t)written;
    }
    switch (SSL_get_error(tc->ssl, r)) {
    case SSL_ERROR_WANT_WRITE:
        tc->retry_len = want; /* the same bytes again, at least as many */
        errno = EAGAIN;
        return -1;
    default:
        /* WANT_READ cannot happen once the handshake is done (no renegotiation); anything
         * else: the peer is gone. */
        ERR_clear_error();
        errno = EPIPE;
        return -1;
    }
}

static void tls_shutdown(struct mh_conn *c)
{
    struct tls_conn *tc = core->conn_transport_data(c);

    if (!tc->plain && tc->handshake_done) {
        ERR_clear_error();
        if (SSL_shutdown(tc->ssl) < 0) /* close_notify, if the socket takes it now */
            ERR_clear_error();
    }
    shutdown(core->conn_fd(c), SHUT_WR);
}

static void tls_close(struct mh_conn *c)
{
    struct tls_conn *tc = core->conn_transport_data(c);

    if (!tc)
        return;
    if (!tc->handshake_done && !tc->plain)
        fail(tc, core->conn_fd(c), MH_TLS_FAIL_UNFINISHED, "closed by the server");
    SSL_free(tc->ssl);
    ERR_clear_error();
    contexts_free(tc->ctxs);
    free(tc);
    core->conn_set_transport_data(c, NULL);
}

static const struct mh_transport transport = {
    .open = tls_open,
    .read = tls_read,
    .writev = tls_writev,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

/* --- The entry point --- */

static const struct mh_tls_ops ops = {
    .size = sizeof(struct mh_tls_ops),
    .transport = &transport,
    .contexts_build = contexts_build,
    .contexts_free = contexts_free,
    .tls_new = tls_new,
    .install = install,
    .tls_free = tls_free,
    .failure_counts = failure_counts,
};

MH_EXPORT const struct mh_tls_ops *mh_tls_plugin_v1(const char *version,
                                                    const struct mh_tls_host *h);

MH_EXPORT const struct mh_tls_ops *mh_tls_plugin_v1(const char *version,
                                                    const struct mh_tls_host *h)
{
    if (strcmp(version, MH_VERSION) != 0 || h->size != sizeof(*h))
        return NULL;
    core = h;
    return &ops;
}
