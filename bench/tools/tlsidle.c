/*
 * tlsidle: opens N connections to 127.0.0.1:PORT, plain or TLS (-tls; the certificate is not
 * checked), sends GET /hello/world on each and reads the answer, then holds them all open and
 * idle until SIGTERM. Prints "TLSIDLE phase=ready opened=N" once all are open, so a caller
 * can read the server's memory per idle connection.
 *
 *   cc -O2 -o tlsidle tlsidle.c -lssl -lcrypto
 *   tlsidle -p PORT -n 2000 [-tls]
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

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

int main(int argc, char **argv)
{
    int port = 0, n = 1000, tls = 0, opened = 0, opt;
    SSL_CTX *ctx = NULL;
    sigset_t set;

    while ((opt = getopt(argc, argv, "p:n:t")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'n':
            n = atoi(optarg);
            break;
        case 't':
            tls = 1;
            break;
        default:
            fprintf(stderr, "usage: tlsidle -p PORT [-n N] [-t]\n");
            return 2;
        }
    }
    if (port <= 0 || n <= 0) {
        fprintf(stderr, "usage: tlsidle -p PORT [-n N] [-t]\n");
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    for (int i = 0; i < n; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        SSL *ssl = NULL;

        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            perror("connect");
            break;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (ctx) {
            ssl = SSL_new(ctx);
            SSL_set_fd(ssl, fd);
            if (SSL_connect(ssl) != 1 || SSL_write(ssl, request, sizeof(request) - 1) <= 0) {
                fprintf(stderr, "TLS handshake or write failed on connection %d\n", i);
                break;
            }
        } else if (write(fd, request, sizeof(request) - 1) <= 0) {
            perror("write");
            break;
        }
        if (read_answer(fd, ssl) != 0) {
            fprintf(stderr, "no answer on connection %d\n", i);
            break;
        }
        opened++; /* kept open (and its SSL object) until the process ends */
    }
    printf("TLSIDLE phase=ready opened=%d tls=%d\n", opened, tls);
    fflush(stdout);
    sigwaitinfo(&set, NULL);
    return 0;
}
