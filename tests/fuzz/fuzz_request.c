/*
 * Fuzz target for the whole request path over plain TCP: each input is what a client writes on
 * one connection, as it is. The server, the exchange and the checks are request_harness.c's;
 * fuzz_request_tls.c sends the same inputs inside TLS.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "request_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void plain_open(struct mh_fuzz_client *c, uint64_t h)
{
    (void)c;
    (void)h;
}

static void plain_write(struct mh_fuzz_client *c, const uint8_t *data, size_t size, bool last)
{
    (void)last;
    mh_fuzz_req_send(c, data, size);
}

static bool plain_read(struct mh_fuzz_client *c)
{
    bool got = false;

    while (!c->eof) {
        char buf[16384];
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

        if (n > 0) {
            mh_fuzz_req_append(c, buf, (size_t)n);
            got = true;
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            c->eof = true; /* closed or reset */
        } else {
            break;
        }
    }
    return got;
}

static void plain_close(struct mh_fuzz_client *c)
{
    close(c->fd);
}

static const struct mh_fuzz_channel plain = {
    .open = plain_open,
    .write = plain_write,
    .read = plain_read,
    .close = plain_close,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mh_fuzz_req_exchange(&plain, data, size);
    return 0;
}
