/*
 * The master's side of the channel relay between worker processes (see relay.h).
 */
#include "run/relay.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"

void mh_relay_flush(struct mh_relay_end *e)
{
    while (e->out.len) {
        ssize_t n = send(e->fd, e->out.data, e->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n <= 0)
            return; /* EAGAIN: POLLOUT tells us when; errors: its death follows */
        memmove(e->out.data, e->out.data + n, e->out.len - (size_t)n);
        e->out.len -= (size_t)n;
    }
}

static void append(struct mh_relay_end *e, const unsigned char *p, size_t n)
{
    if (e->out.len + n > MH_RELAY_MAX_QUEUED) {
        mh_warn("channels", "worker pid %d reads its channel messages too slowly: one dropped",
                (int)e->pid);
        return;
    }
    if (e->out.cap < e->out.len + n) {
        while (e->out.cap < e->out.len + n)
            e->out.cap = e->out.cap ? e->out.cap * 2 : 65536;
        e->out.data = mh_xrealloc(e->out.data, e->out.cap);
    }
    memcpy(e->out.data + e->out.len, p, n);
    e->out.len += n;
}

void mh_relay_forward(struct mh_relay_end *from, struct mh_relay_end *const *to, size_t nto)
{
    struct mh_relay_buf *in = &from->in;
    size_t off = 0;

    for (;;) {
        ssize_t r;

        if (in->cap - in->len < 65536) {
            in->cap = in->cap ? in->cap * 2 : 131072;
            in->data = mh_xrealloc(in->data, in->cap);
        }
        r = recv(from->fd, in->data + in->len, in->cap - in->len, MSG_DONTWAIT);
        if (r <= 0)
            break;
        in->len += (size_t)r;
    }
    while (in->len - off >= 4) {
        uint32_t n;

        memcpy(&n, in->data + off, 4);
        if (in->len - off - 4 < n)
            break;
        for (size_t k = 0; k < nto; k++) {
            append(to[k], in->data + off, 4 + (size_t)n);
            mh_relay_flush(to[k]);
        }
        off += 4 + (size_t)n;
    }
    memmove(in->data, in->data + off, in->len - off);
    in->len -= off;
}

void mh_relay_close(struct mh_relay_end *e)
{
    if (e->fd >= 0)
        close(e->fd);
    e->fd = -1;
    free(e->in.data);
    free(e->out.data);
    e->in = e->out = (struct mh_relay_buf){0};
}
