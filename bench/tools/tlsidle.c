/*
 * tlsidle: opens N connections to 127.0.0.1:PORT, plain or TLS (-t; the certificate is not
 * checked), sends GET /hello/world on each and reads the answer, then holds them all open and
 * idle until SIGTERM. Prints "TLSIDLE phase=ready opened=N" once all are open, so a caller
 * can read the server's memory per idle connection.
 *
 *   cc -O2 -D_GNU_SOURCE -o tlsidle tlsidle.c -lssl -lcrypto
 *   tlsidle -p PORT [-n N] [-t]         (N: 1000 by default)
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "args.h"

static const char request[] = "GET /hello/world HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/* Reads one answer with a Content-Length; 0 on success. */
static int read_answer(int fd, SSL *ssl)
{
    char buf[4096];
    size_t have = 0;

    for (;;) {
        int n = ssl ? SSL_read(ssl, buf + have, (int)(sizeof(buf) - 1 - have))
                    : (int)read(fd, buf + have, sizeof(buf) - 1 - have);
        char *end, *cl;

        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
        cl = strcasestr(buf, "content-length:");
        if (end && cl && have >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10))
            return 0;
        if (have == sizeof(buf) - 1)
            return -1;
    }
}

/* The whole of @p s as a whole number from @p min to @p max, or a message naming option -@p opt. */
static int parse_int(int opt, const char *s, int min, int max, int *out)
{
    const char name[] = {'-', (char)opt, '\0'};

    return bench_parse_int("tlsidle", name, s, min, max, out);
}

/* 0, or 2 after a message (the exit status for a bad command line). */
static int parse_opts(int argc, char **argv, int *port, int *n, int *tls)
{
    int opt, rc = 0;

    /* NOLINTNEXTLINE(concurrency-mt-unsafe): the command line is parsed before threads start */
    while (rc == 0 && (opt = getopt(argc, argv, "p:n:t")) != -1) {
        switch (opt) {
        case 'p':
            rc = parse_int(opt, optarg, 1, 65535, port);
            break;
        case 'n':
            rc = parse_int(opt, optarg, 1, INT_MAX, n);
            break;
        case 't':
            *tls = 1;
            break;
        default:
            rc = -1;
            break;
        }
    }
    if (rc == 0 && *port > 0)
        return 0;
    (void)fprintf(stderr, "usage: tlsidle -p PORT [-n N] [-t]\n");
    return 2;
}

/* Opens connection @p i and reads its answer; the socket and @p ctx's SSL object stay open
 * until the process ends. 0, or -1 after a message. */
static int open_one(int i, int port, SSL_CTX *ctx)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    SSL *ssl = NULL;

    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (ctx) {
        ssl = SSL_new(ctx);
        if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1 ||
            SSL_write(ssl, request, sizeof(request) - 1) <= 0) {
            (void)fprintf(stderr, "TLS handshake or write failed on connection %d\n", i);
            return -1;
        }
    } else if (write(fd, request, sizeof(request) - 1) <= 0) {
        perror("write");
        return -1;
    }
    if (read_answer(fd, ssl) != 0) {
        (void)fprintf(stderr, "no answer on connection %d\n", i);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int port = 0, n = 1000, tls = 0, opened = 0, rc;
    SSL_CTX *ctx = NULL;
    sigset_t set;

    rc = parse_opts(argc, argv, &port, &n, &tls);
    if (rc != 0)
        return rc;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0) {
        errno = rc;
        perror("tlsidle: pthread_sigmask");
        return 1;
    }
    if (tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) {
            (void)fprintf(stderr, "tlsidle: cannot create a TLS context\n");
            return 1;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    while (opened < n && open_one(opened, port, ctx) == 0)
        opened++;
    printf("TLSIDLE phase=ready opened=%d tls=%d\n", opened, tls);
    if (fflush(stdout) != 0) {
        perror("tlsidle: stdout");
        return 1;
    }
    sigwaitinfo(&set, NULL);
    return 0;
}
