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

#define MAX_CONNS 4096
#define MAX_LAT   (1 << 22)

#define MAX_WINDOW 64

struct conn {
    int fd;
    int upgraded;
    unsigned char in[65536];
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

int main(int argc, char **argv)
{
    const char *url = "ws://127.0.0.1:8080/ws/echo";
    int nconns = 64, seconds = 10, binary = 0, ep, port = 80, failed = 0, errors = 0, window = 1;
    size_t size = 32;
    char host[64], path[512], req[1024];
    struct conn *conns;
    uint32_t *lat = malloc(MAX_LAT * sizeof(uint32_t));
    uint64_t messages = 0, start, end, nlat = 0;
    struct rusage ru0, ru1;
    struct sockaddr_in sa = {.sin_family = AF_INET};

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-url"))
            url = argv[i + 1];
        else if (!strcmp(argv[i], "-c"))
            nconns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-d"))
            seconds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-size"))
            size = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-type"))
            binary = !strcmp(argv[i + 1], "binary");
        else if (!strcmp(argv[i], "-window"))
            window = atoi(argv[i + 1]);
    }
    if (nconns < 1 || nconns > MAX_CONNS || size > 65535 || !lat || window < 1 ||
        window > MAX_WINDOW || sscanf(url, "ws://%63[^:/]:%d%511s", host, &port, path) != 3 ||
        (strcmp(host, "127.0.0.1") && strcmp(host, "localhost"))) {
        (void)fprintf(stderr, "usage: wsload_c -url ws://127.0.0.1:PORT/PATH -c N -d SECONDS "
                              "-size BYTES -type text|binary (loopback only)\n");
        return 2;
    }
    build_frame(size, binary);
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)snprintf(
        req, sizeof(req),
        "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        path, port);
    conns = calloc((size_t)nconns, sizeof(*conns));
    ep = epoll_create1(0);
    for (int i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        int one = 1;

        conns[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(conns[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(conns[i].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            send_all(conns[i].fd, req, strlen(req)) != 0) {
            failed++;
            close(conns[i].fd);
            conns[i].fd = -1;
            continue;
        }
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    getrusage(RUSAGE_SELF, &ru0);
    start = now_ns();
    end = start + (uint64_t)seconds * 1000000000u;
    for (;;) {
        struct epoll_event evs[256];
        uint64_t t = now_ns();
        int n;

        if (t >= end)
            break;
        n = epoll_wait(ep, evs, 256, (int)((end - t) / 1000000 + 1));
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            ssize_t r = read(c->fd, c->in + c->have, sizeof(c->in) - c->have);

            if (r <= 0) {
                errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                continue;
            }
            c->have += (size_t)r;
            if (!c->upgraded) {
                unsigned char *e = memmem(c->in, c->have, "\r\n\r\n", 4);

                if (!e)
                    continue;
                if (c->have < 12 || memcmp(c->in + 9, "101", 3) != 0) {
                    failed++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    continue;
                }
                c->have -= (size_t)(e + 4 - c->in);
                memmove(c->in, e + 4, c->have);
                c->upgraded = 1;
                {
                    static unsigned char burst[MAX_WINDOW * sizeof(frame)];
                    uint64_t t0 = now_ns();

                    for (int w = 0; w < window; w++) {
                        memcpy(burst + (size_t)w * frame_len, frame, frame_len);
                        c->sent_ns[w] = t0;
                    }
                    c->head = 0;
                    c->inflight = (unsigned)window;
                    send_all(c->fd, burst, (size_t)window * frame_len);
                }
                continue;
            }
            {
                unsigned echoed = 0;

                for (;;) { /* whole echoed frames, unmasked */
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

                        messages++;
                        if (nlat < MAX_LAT)
                            lat[nlat++] = (uint32_t)((now - c->sent_ns[slot]) / 1000);
                        c->sent_ns[slot] = now; /* the next message takes its place */
                        c->head = (c->head + 1) % (unsigned)window;
                        echoed++;
                    } else if ((c->in[0] & 0x0f) == 0x8) {
                        errors++;
                    }
                    c->have -= h + len;
                    memmove(c->in, c->in + h + len, c->have);
                }
                if (echoed) { /* one write for every message the echoes make room for */
                    static unsigned char burst[MAX_WINDOW * sizeof(frame)];

                    for (unsigned w = 0; w < echoed; w++)
                        memcpy(burst + (size_t)w * frame_len, frame, frame_len);
                    send_all(c->fd, burst, (size_t)echoed * frame_len);
                }
            }
        }
    }
    getrusage(RUSAGE_SELF, &ru1);
    {
        double secs = (double)(now_ns() - start) / 1e9;
        double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                              ru0.ru_stime.tv_sec) +
                     (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                              ru0.ru_stime.tv_usec) /
                         1e6;
        uint32_t p50 = 0, p99 = 0, p999 = 0, max = 0;

        if (nlat) {
            qsort(lat, nlat, sizeof(*lat), cmp_u32);
            p50 = lat[nlat / 2];
            p99 = lat[nlat * 99 / 100];
            p999 = lat[nlat * 999 / 1000];
            max = lat[nlat - 1];
        }
        printf("WSLOAD mode=echo conns=%d failed=%d size=%zu duration_s=%.2f messages=%llu "
               "msgs_per_s=%.1f p50_us=%u p99_us=%u p999_us=%u max_us=%u errors=%d "
               "client_cpu_pct=%.0f\n",
               nconns - failed, failed, size, secs, (unsigned long long)messages,
               (double)messages / secs, p50, p99, p999, max, errors, 100.0 * cpu / secs);
    }
    for (int i = 0; i < nconns; i++) {
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    }
    free(conns);
    free(lat);
    return failed == nconns ? 1 : 0;
}
