/*
 * A WebSocket echo load client in C, so that the load generator is not what limits the
 * measured server: one thread, epoll, N connections each sending a masked message, waiting for
 * its echo and sending the next (a closed loop). Prints one line in the format bench/run
 * parses (the Go wsload's echo line) plus the client's own CPU use, which shows whether it was
 * the bottleneck.
 *
 *   wsload_c -url ws://127.0.0.1:PORT/PATH -c 64 -d 10 -size 32 -type text [-window W]
 *
 * -window W keeps W messages in flight per connection (sent in one write; the next one goes out
 * as each echo arrives), so that the client spends less per message than the server; latency
 * is then measured per message from the write that carried it.
 *
 * Loopback only (the URL must name 127.0.0.1 or localhost).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "args.h"

#define MAX_CONNS 4096
#define MAX_LAT   (1 << 22)

#define MAX_WINDOW 64

struct conn {
    int fd;
    int upgraded;
    unsigned char in[4 + 65535]; /* the largest echo: a 4-byte head and 65535 bytes */
    size_t have;
    uint64_t sent_ns[MAX_WINDOW]; /* a ring: when each message in flight was sent */
    unsigned head, inflight;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static unsigned char frame[16 + 65536];
static size_t frame_len;

static void build_frame(size_t size, int binary)
{
    static const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    size_t h = 2;

    frame[0] = (unsigned char)(0x80 | (binary ? 2 : 1));
    if (size < 126) {
        frame[1] = (unsigned char)(0x80 | size);
    } else {
        frame[1] = 0x80 | 126;
        frame[2] = (unsigned char)(size >> 8);
        frame[3] = (unsigned char)size;
        h = 4;
    }
    memcpy(frame + h, mask, 4);
    for (size_t i = 0; i < size; i++)
        frame[h + 4 + i] = (unsigned char)('a' + i % 26) ^ mask[i & 3];
    frame_len = h + 4 + size;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n) {
        ssize_t w = write(fd, c, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1; /* the socket buffer of a closed-loop client never fills */
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* What the command line asks for. */
struct opts {
    int nconns, seconds, binary, window, port;
    size_t size;
    char path[512];
};

/* What the run has seen so far. */
struct load {
    int ep, window, failed, errors;
    uint64_t messages, nlat;
    uint32_t *lat; /* MAX_LAT latencies in µs, the first nlat of them filled */
};

static int parse_long(const char *name, const char *s, long min, long max, long *out)
{
    return bench_parse_long("wsload_c", name, s, min, max, out);
}

static int parse_int(const char *name, const char *s, int min, int max, int *out)
{
    return bench_parse_int("wsload_c", name, s, min, max, out);
}

/* ws://HOST:PORT/PATH with HOST 127.0.0.1 or localhost into o->port and o->path; 0, or -1
 * after a message. */
static int parse_url(const char *url, struct opts *o)
{
    static const char scheme[] = "ws://";
    const char *host = url + strlen(scheme), *colon, *slash;
    char port[16];
    size_t host_len, port_len;

    if (strncmp(url, scheme, strlen(scheme)) != 0 || !(colon = strchr(host, ':')) ||
        !(slash = strchr(colon, '/'))) {
        (void)fprintf(stderr, "wsload_c: -url: '%s' is not ws://HOST:PORT/PATH\n", url);
        return -1;
    }
    host_len = (size_t)(colon - host);
    if (!(host_len == 9 &&
          (strncmp(host, "127.0.0.1", 9) == 0 || strncmp(host, "localhost", 9) == 0))) {
        (void)fprintf(stderr, "wsload_c: -url: '%.*s' is not 127.0.0.1 or localhost\n",
                      (int)host_len, host);
        return -1;
    }
    port_len = (size_t)(slash - colon - 1);
    if (port_len >= sizeof(port)) {
        (void)fprintf(stderr, "wsload_c: -url port: '%.*s' is not a whole number from 1 to 65535\n",
                      (int)port_len, colon + 1);
        return -1;
    }
    memcpy(port, colon + 1, port_len);
    port[port_len] = '\0';
    if (parse_int("-url port", port, 1, 65535, &o->port) != 0)
        return -1;
    if (strlen(slash) >= sizeof(o->path) || strpbrk(slash, " \t\r\n")) {
        (void)fprintf(stderr, "wsload_c: -url: the path is longer than %zu bytes or has a space\n",
                      sizeof(o->path) - 1);
        return -1;
    }
    memcpy(o->path, slash, strlen(slash) + 1);
    return 0;
}

/* Options come in pairs; one this client does not know is skipped with its value. 0, or 2
 * after a message (the exit status for a bad command line). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    const char *url = "ws://127.0.0.1:8080/ws/echo";
    long size = (long)o->size;
    int rc = 0;

    for (int i = 1; rc == 0 && i + 1 < argc; i += 2) {
        const char *name = argv[i], *value = argv[i + 1];

        if (strcmp(name, "-url") == 0)
            url = value;
        else if (strcmp(name, "-c") == 0)
            rc = parse_int(name, value, 1, MAX_CONNS, &o->nconns);
        else if (strcmp(name, "-d") == 0)
            rc = parse_int(name, value, 1, INT_MAX, &o->seconds);
        else if (strcmp(name, "-size") == 0)
            rc = parse_long(name, value, 0, 65535, &size);
        else if (strcmp(name, "-type") == 0)
            o->binary = strcmp(value, "binary") == 0;
        else if (strcmp(name, "-window") == 0)
            rc = parse_int(name, value, 1, MAX_WINDOW, &o->window);
    }
    if (rc == 0)
        rc = parse_url(url, o);
    o->size = (size_t)size;
    if (rc == 0)
        return 0;
    (void)fprintf(stderr, "usage: wsload_c -url ws://127.0.0.1:PORT/PATH -c N -d SECONDS "
                          "-size BYTES -type text|binary [-window W] (loopback only)\n");
    return 2;
}

/* Opens the connections and sends each its upgrade request; those that fail count in
 * ld->failed and keep fd -1. 0, or -1 after a message. */
static int connect_all(const struct opts *o, struct conn *conns, struct load *ld)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)o->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[1024];
    int n = snprintf(
        req, sizeof(req),
        "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        o->path, o->port);

    if (n < 0 || (size_t)n >= sizeof(req)) {
        (void)fprintf(stderr, "wsload_c: the upgrade request does not fit in %zu bytes\n",
                      sizeof(req));
        return -1;
    }
    for (int i = 0; i < o->nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        int one = 1;

        conns[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(conns[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(conns[i].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            send_all(conns[i].fd, req, (size_t)n) != 0) {
            ld->failed++;
            close(conns[i].fd);
            conns[i].fd = -1;
            continue;
        }
        epoll_ctl(ld->ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    return 0;
}

/* The answer to the upgrade request, once whole: on a 101, the first window of messages. */
static void on_upgrade(struct conn *c, struct load *ld)
{
    static unsigned char burst[MAX_WINDOW * sizeof(frame)];
    unsigned char *e = memmem(c->in, c->have, "\r\n\r\n", 4);
    uint64_t t0;

    if (!e)
        return;
    if (c->have < 12 || memcmp(c->in + 9, "101", 3) != 0) {
        ld->failed++;
        epoll_ctl(ld->ep, EPOLL_CTL_DEL, c->fd, NULL);
        return;
    }
    c->have -= (size_t)(e + 4 - c->in);
    memmove(c->in, e + 4, c->have);
    c->upgraded = 1;
    t0 = now_ns();
    for (int w = 0; w < ld->window; w++) {
        memcpy(burst + (size_t)w * frame_len, frame, frame_len);
        c->sent_ns[w] = t0;
    }
    c->head = 0;
    c->inflight = (unsigned)ld->window;
    send_all(c->fd, burst, (size_t)ld->window * frame_len);
}

/* Consumes the whole echoed frames in c->in (unmasked); the number of messages among them. */
static unsigned take_echoes(struct conn *c, struct load *ld)
{
    unsigned echoed = 0;

    for (;;) {
        size_t h = 2, len;

        if (c->have < 2)
            break;
        len = c->in[1] & 0x7f;
        if (len == 126) {
            if (c->have < 4)
                break;
            len = ((size_t)c->in[2] << 8) | c->in[3];
            h = 4;
        }
        if (c->have < h + len)
            break;
        if ((c->in[0] & 0x0f) == 0x1 || (c->in[0] & 0x0f) == 0x2) {
            uint64_t now = now_ns();
            unsigned slot = c->head;

            ld->messages++;
            if (ld->nlat < MAX_LAT)
                ld->lat[ld->nlat++] = (uint32_t)((now - c->sent_ns[slot]) / 1000);
            c->sent_ns[slot] = now; /* the next message takes its place */
            c->head = (c->head + 1) % (unsigned)ld->window;
            echoed++;
        } else if ((c->in[0] & 0x0f) == 0x8) {
            ld->errors++;
        }
        c->have -= h + len;
        memmove(c->in, c->in + h + len, c->have);
    }
    return echoed;
}

static void on_readable(struct conn *c, struct load *ld)
{
    ssize_t r = read(c->fd, c->in + c->have, sizeof(c->in) - c->have);
    unsigned echoed;

    if (r <= 0) {
        ld->errors++;
        epoll_ctl(ld->ep, EPOLL_CTL_DEL, c->fd, NULL);
        return;
    }
    c->have += (size_t)r;
    if (!c->upgraded) {
        on_upgrade(c, ld);
        return;
    }
    echoed = take_echoes(c, ld);
    if (echoed) { /* one write for every message the echoes make room for */
        static unsigned char burst[MAX_WINDOW * sizeof(frame)];

        for (unsigned w = 0; w < echoed; w++)
            memcpy(burst + (size_t)w * frame_len, frame, frame_len);
        send_all(c->fd, burst, (size_t)echoed * frame_len);
    }
}

static void run_until(uint64_t end, struct load *ld)
{
    for (;;) {
        struct epoll_event evs[256];
        uint64_t t = now_ns();
        int n;

        if (t >= end)
            break;
        n = epoll_wait(ld->ep, evs, 256, (int)((end - t) / 1000000 + 1));
        for (int k = 0; k < n; k++)
            on_readable(evs[k].data.ptr, ld);
    }
}

static void report(const struct opts *o, struct load *ld, double secs, double cpu)
{
    uint32_t p50 = 0, p99 = 0, p999 = 0, max = 0;
    uint64_t nlat = ld->nlat;

    if (nlat) {
        qsort(ld->lat, nlat, sizeof(*ld->lat), cmp_u32);
        p50 = ld->lat[nlat / 2];
        p99 = ld->lat[nlat * 99 / 100];
        p999 = ld->lat[nlat * 999 / 1000];
        max = ld->lat[nlat - 1];
    }
    printf("WSLOAD mode=echo conns=%d failed=%d size=%zu duration_s=%.2f messages=%llu "
           "msgs_per_s=%.1f p50_us=%u p99_us=%u p999_us=%u max_us=%u errors=%d "
           "client_cpu_pct=%.0f\n",
           o->nconns - ld->failed, ld->failed, o->size, secs, (unsigned long long)ld->messages,
           (double)ld->messages / secs, p50, p99, p999, max, ld->errors, 100.0 * cpu / secs);
}

static double cpu_seconds(const struct rusage *ru)
{
    return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) +
           (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
    struct opts o = {.nconns = 64, .seconds = 10, .window = 1, .size = 32};
    struct load ld = {.ep = -1};
    struct conn *conns = NULL;
    struct rusage ru0, ru1;
    uint64_t start;
    int rc = parse_opts(argc, argv, &o);

    if (rc != 0)
        return rc;
    rc = 1;
    ld.window = o.window;
    build_frame(o.size, o.binary);
    ld.lat = malloc(MAX_LAT * sizeof(uint32_t));
    conns = calloc((size_t)o.nconns, sizeof(*conns));
    if (!ld.lat || !conns) {
        (void)fprintf(stderr, "wsload_c: out of memory\n");
        goto out;
    }
    for (int i = 0; i < o.nconns; i++)
        conns[i].fd = -1;
    ld.ep = epoll_create1(0);
    if (ld.ep < 0) {
        perror("wsload_c: epoll_create1");
        goto out;
    }
    if (connect_all(&o, conns, &ld) != 0)
        goto out;
    getrusage(RUSAGE_SELF, &ru0);
    start = now_ns();
    run_until(start + (uint64_t)o.seconds * 1000000000u, &ld);
    getrusage(RUSAGE_SELF, &ru1);
    report(&o, &ld, (double)(now_ns() - start) / 1e9, cpu_seconds(&ru1) - cpu_seconds(&ru0));
    rc = ld.failed == o.nconns ? 1 : 0;
out:
    for (int i = 0; conns && i < o.nconns; i++) {
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    }
    if (ld.ep >= 0)
        close(ld.ep);
    free(conns);
    free(ld.lat);
    return rc;
}
