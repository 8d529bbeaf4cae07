/*
 * Fuzz target for the whole request path over TLS: each input is the plaintext a client sends
 * as application data on one TLS connection. The server is request_harness.c's, with its
 * listener on the TLS transport of modhost_tls.so (loaded through http/tls_load.c, as a server
 * with a TLS listener does) and the fixed test-only key and certificate of tests/fuzz/tls/; the
 * client is OpenSSL over a pair of memory BIOs whose bytes the target carries to and from the
 * loopback socket, so that it decides how the records are cut. Bits of the input's hash pick,
 * per connection: TLS 1.2 or 1.3, records sent whole or in small pieces with the loop run in
 * between, each piece's record sent at once or all of them together in one write, and a
 * close_notify or none at the end.
 *
 * Checked, beyond the harness's checks on the decrypted answers: every handshake completes,
 * and every record the server sends decrypts (a corrupted or reordered write would not).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/err.h"
#include "conf/config.h"
#include "http/conn.h"
#include "http/tls.h"
#include "request_harness.h"

#ifndef MH_FUZZ_TLS_DIR
#error "MH_FUZZ_TLS_DIR must name tests/fuzz/tls (the test-only key and certificate)"
#endif

#define HANDSHAKE_TURNS 4000 /* a bound on the handshake's loop turns */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static SSL_CTX *client_ctx;
static char server_name[] = "localhost"; /* not const: SSL_set_tlsext_host_name casts it */
static struct mh_tls *server_tls;        /* the listener's TLS, for the life of the process */

/* The client's side of one connection. */
struct tls_client {
    SSL *ssl;
    BIO *rbio;      /* what the server sent, for the SSL to read (owned by ssl) */
    BIO *wbio;      /* what the SSL wrote, to send (owned by ssl) */
    size_t chunk;   /* 0: send records as they are; else in pieces of this many bytes */
    bool coalesce;  /* keep the records of every piece and send them together after the last */
    bool goodbye;   /* send close_notify before closing */
    bool write_off; /* a write failed: the client writes no more */
};

static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;

    return why ? why : "no error queued";
}

/* --- The server's side: the test-only key and certificate, the TLS listener --- */

static void copy_file(const char *from, const char *dir, const char *name)
{
    char path[512], buf[4096];
    FILE *in = fopen(from, "r"), *out;
    size_t n;

    MH_FUZZ_CHECK(in != NULL, "cannot read %s: errno %d", from, errno);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    out = fopen(path, "w");
    MH_FUZZ_CHECK(out != NULL, "cannot write %s: errno %d", path, errno);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        MH_FUZZ_CHECK(fwrite(buf, 1, n, out) == n, "cannot write %s", path);
    fclose(in);
    MH_FUZZ_CHECK(fclose(out) == 0 && chmod(path, 0600) == 0, "cannot write %s", path);
}

static void tls_prepare(const char *conf_dir, char *server_extra, size_t size)
{
    /* Copies, so that the key is the server's own 0600 file whatever the checkout did. */
    copy_file(MH_FUZZ_TLS_DIR "/test-only-key.pem", conf_dir, "key.pem");
    copy_file(MH_FUZZ_TLS_DIR "/test-only-cert.pem", conf_dir, "cert.pem");
    snprintf(server_extra, size,
             "  listeners = ( { listen = \"127.0.0.1:0\";\n"
             "    tls: { certificate = \"%s/cert.pem\"; key = \"%s/key.pem\"; }; } );",
             conf_dir, conf_dir);
}

static void tls_serve(struct mh_service *svc, const struct mh_config *config)
{
    struct mh_errlist errs = {0};
    struct mh_tls_contexts *contexts = NULL;

    MH_FUZZ_CHECK(config->server.nlisteners == 1 && config->server.listeners[0].tls,
                  "the configuration has no TLS listener");
    if (mh_tls_contexts_build(config->server.listeners[0].tls, &contexts, &errs) != MH_OK) {
        mh_errlist_print(&errs, stderr);
        abort();
    }
    mh_errlist_cleanup(&errs);
    server_tls = mh_tls_new(contexts);
    svc->transport = mh_tls_transport();
    svc->transport_ctx = server_tls;

    client_ctx = SSL_CTX_new(TLS_client_method());
    MH_FUZZ_CHECK(client_ctx != NULL, "SSL_CTX_new: %s", ossl_reason());
    SSL_CTX_set_min_proto_version(client_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL); /* the test-only certificate */
}

/* --- The client's side --- */

/* Sends what the client's SSL wrote; in pieces of tc->chunk bytes when @p split. */
static void pump(struct mh_fuzz_client *c, bool split)
{
    struct tls_client *tc = c->state;
    char buf[16384];
    int n;

    while ((n = BIO_read(tc->wbio, buf, sizeof(buf))) > 0) {
        if (!split || !tc->chunk) {
            mh_fuzz_req_send(c, buf, (size_t)n);
            continue;
        }
        for (size_t off = 0; off < (size_t)n; off += tc->chunk) {
            size_t k = (size_t)n - off < tc->chunk ? (size_t)n - off : tc->chunk;

            mh_fuzz_req_send(c, buf + off, k);
            mh_fuzz_req_run_until_idle(c);
        }
    }
}

/* Decrypts what has arrived into the client's input. */
static void decrypt(struct mh_fuzz_client *c)
{
    struct tls_client *tc = c->state;

    for (;;) {
        char buf[16384];
        size_t n = 0;
        int r = SSL_read_ex(tc->ssl, buf, sizeof(buf), &n);

        if (r == 1) {
            mh_fuzz_req_append(c, buf, n);
            continue;
        }
        r = SSL_get_error(tc->ssl, r);
        /* A memory BIO never ends: a record cut by the server's close waits for bytes that
         * never come (WANT_READ), like any record not complete yet. */
        MH_FUZZ_CHECK(r == SSL_ERROR_WANT_READ || r == SSL_ERROR_ZERO_RETURN,
                      "the server's records do not read (SSL error %d: %s)", r, ossl_reason());
        return;
    }
}

static bool tls_read(struct mh_fuzz_client *c)
{
    struct tls_client *tc = c->state;
    bool got = false;

    while (!c->eof) {
        char buf[16384];
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

        if (n > 0) {
            MH_FUZZ_CHECK(tc != NULL, "the server sent %zd bytes before the ClientHello", n);
            MH_FUZZ_CHECK(BIO_write(tc->rbio, buf, (int)n) == (int)n, "BIO_write");
            got = true;
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            c->eof = true; /* closed or reset */
        } else {
            break;
        }
    }
    if (tc && SSL_is_init_finished(tc->ssl))
        decrypt(c);
    return got;
}

static void tls_open(struct mh_fuzz_client *c, uint64_t h)
{
    struct tls_client *tc = calloc(1, sizeof(*tc));
    unsigned bits = (unsigned)(h >> 48); /* the harness's cuts use the low 48 bits */
    int r = 0;

    MH_FUZZ_CHECK(tc != NULL, "out of memory");
    tc->ssl = SSL_new(client_ctx);
    tc->rbio = BIO_new(BIO_s_mem());
    tc->wbio = BIO_new(BIO_s_mem());
    MH_FUZZ_CHECK(tc->ssl && tc->rbio && tc->wbio, "SSL_new: %s", ossl_reason());
    SSL_set_bio(tc->ssl, tc->rbio, tc->wbio);
    SSL_set_connect_state(tc->ssl);
    SSL_set_tlsext_host_name(tc->ssl, server_name);
    if ((bits & 3) == 0)
        SSL_set_max_proto_version(tc->ssl, TLS1_2_VERSION); /* one connection in four */
    if (((bits >> 2) & 3) == 0)
        tc->chunk = 1 + ((bits >> 4) & 63); /* one in four: pieces of 1 to 64 bytes */
    tc->coalesce = ((bits >> 10) & 3) == 0;
    tc->goodbye = (bits >> 12) & 1;
    c->state = tc;

    /* The handshake, sent as the SSL writes it (the TLS tests cut handshakes at every byte). */
    for (int turn = 0; turn < HANDSHAKE_TURNS; turn++) {
        int err;

        r = SSL_do_handshake(tc->ssl);
        err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(tc->ssl, r); /* before the BIOs move */
        pump(c, false);
        if (r == 1)
            break;
        MH_FUZZ_CHECK(err == SSL_ERROR_WANT_READ, "the handshake failed (SSL error %d: %s)", err,
                      ossl_reason());
        MH_FUZZ_CHECK(!c->eof, "the server closed the connection during the handshake");
        mh_fuzz_req_turn();
        tls_read(c);
    }
    MH_FUZZ_CHECK(r == 1, "the handshake did not finish in %d loop turns", HANDSHAKE_TURNS);
}

static void tls_write(struct mh_fuzz_client *c, const uint8_t *data, size_t size, bool last)
{
    struct tls_client *tc = c->state;
    size_t n = 0;

    if (size && !tc->write_off && SSL_write_ex(tc->ssl, data, size, &n) != 1) {
        tc->write_off = true; /* the server sent close_notify, say: no more requests */
        ERR_clear_error();
    }
    if (!tc->coalesce || last)
        pump(c, true);
}

static void tls_close(struct mh_fuzz_client *c)
{
    struct tls_client *tc = c->state;

    if (tc->goodbye && !c->eof && SSL_is_init_finished(tc->ssl)) {
        SSL_shutdown(tc->ssl); /* close_notify: the server reads it as the end */
        pump(c, false);
    }
    SSL_free(tc->ssl); /* and both BIOs */
    ERR_clear_error();
    free(tc);
    c->state = NULL;
    close(c->fd);
}

static const struct mh_fuzz_channel tls_channel = {
    .prepare = tls_prepare,
    .serve = tls_serve,
    .open = tls_open,
    .write = tls_write,
    .read = tls_read,
    .close = tls_close,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mh_fuzz_req_exchange(&tls_channel, data, size);
    return 0;
}
