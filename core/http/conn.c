/*
 * Connections (see conn.h), their life: accepting, the events, the deadline timer, writing,
 * refusals and the end; reading requests is conn_read.c's (conn_int.h joins the two). Output
 * is a queue of blocks (outq.c) written with writev. One timer per connection carries its
 * deadline (head, body, idle, write, linger); moving a deadline later never touches the timer:
 * when it fires early it is set again for the rest.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mem.h"
#include "base/problem.h"
#include "conf/config.h"
#include "http/access.h"
#include "http/caps.h"
#include "http/conn_int.h"
#include "http/head.h"
#include "http/http_scan.h"
#include "http/outq.h"
#include "http/req.h"
#include "http/request.h"

#define MAX_IOV   16
#define LINGER_MS 2000 /* after a refusal: how long we read and drop before closing */

int mh_conn_open_count(void)
{
    return mh_caps_open_count();
}

/* --- Time and the deadline timer --- */

static int64_t now_ms(struct mh_loop *loop)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    loop->now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return loop->now_ms;
}

static void arm_timer(struct mh_conn *c)
{
    int64_t when = 0;

    if (c->dkind != MH_DL_NONE)
        when = c->deadline;
    if (c->write_deadline && (!when || c->write_deadline < when))
        when = c->write_deadline;
    if (!when)
        return; /* a timer still armed finds nothing to do and is not set again */
    if (c->armed_for && c->armed_for <= when)
        return; /* it fires earlier and is set again for the rest */
    {
        int64_t ms = when - c->loop->now_ms;
        struct timeval tv;

        if (ms < 0)
            ms = 0;
        tv.tv_sec = (time_t)(ms / 1000);
        tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
        evtimer_add(&c->timer, &tv);
        c->armed_for = when;
    }
}

void mh_conn_set_deadline(struct mh_conn *c, enum deadline kind, long long ms)
{
    c->dkind = kind;
    c->deadline = c->loop->now_ms + ms;
    arm_timer(c);
}

/* --- Output --- */

void mh_conn_write_head(struct mh_conn *c, const struct mh_reply_head *h)
{
    char *start = mh_conn_space(c, mh_head_max(c->loop, h));

    mh_conn_commit(c, (size_t)(mh_head_put(start, c->loop, h) - start));
}

char *mh_conn_space(struct mh_conn *c, size_t n)
{
    return mh_outq_space(&c->out, c->loop, n);
}

void mh_conn_commit(struct mh_conn *c, size_t used)
{
    mh_outq_commit(&c->out, used);
}

void mh_conn_send(struct mh_conn *c, const void *data, size_t len)
{
    mh_outq_add(&c->out, c->loop, data, len);
}

void mh_conn_send_owned(struct mh_conn *c, void *block, size_t len)
{
    mh_outq_give(&c->out, block, len);
}

size_t mh_conn_unsent(const struct mh_conn *c)
{
    return c->out.unsent;
}

unsigned mh_conn_requests(const struct mh_conn *c)
{
    return c ? c->requests : 0;
}

static void linger(struct mh_conn *c);

/* No more reads for now: the client's sends back up in TCP (backpressure). */
void mh_conn_pause_reading(struct mh_conn *c)
{
    if (!c->paused && c->fd >= 0) {
        event_del(&c->rev);
        c->paused = true;
    }
}

void mh_conn_resume_reading(struct mh_conn *c)
{
    if (c->paused && c->fd >= 0) {
        event_add(&c->rev, NULL);
        c->paused = false;
        if (c->read_again)
            event_active(&c->rev, EV_READ, 0);
    }
}

void mh_conn_read_again(struct mh_conn *c)
{
    c->read_again = true;
    if (!c->paused && c->fd >= 0)
        event_active(&c->rev, EV_READ, 0);
}

void mh_conn_want_write(struct mh_conn *c)
{
    c->read_wants_write = true;
    if (!c->write_armed && c->fd >= 0) {
        event_add(&c->wev, NULL);
        c->write_armed = true;
    }
}

/* Keeps the struct alive across a callback that may close the connection. */
void mh_conn_hold(struct mh_conn *c)
{
    c->depth++;
}

void mh_conn_release(struct mh_conn *c)
{
    if (--c->depth == 0 && c->fd < 0)
        free(c);
}

/* A streamed answer is told how much is left once a flush is over (it may write more). */
static void stream_progress(struct mh_conn *c)
{
    if (c->fd >= 0 && c->active && c->active->streaming)
        mh_req_stream_progress(c->active, c->out.unsent);
}

/* The socket is full: wait for it to drain, under the write deadline. */
static void wait_writable(struct mh_conn *c, bool progressed)
{
    if (!c->reading && c->mode == MH_CONN_HTTP)
        mh_conn_pause_reading(c); /* the last answer waits: the client's bytes wait in TCP, and a
                             half-close of theirs cannot end the connection before it */
    if (!c->write_armed) {
        event_add(&c->wev, NULL);
        c->write_armed = true;
    }
    if (!c->write_deadline) {
        c->write_deadline = c->loop->now_ms + c->loop->limits->write_timeout_ms;
        arm_timer(c);
    }
    if (progressed)
        stream_progress(c);
}

/* Everything queued is written: stop watching for writability and tell whoever waits. */
static void flushed(struct mh_conn *c, bool progressed)
{
    if (c->write_armed && !c->read_wants_write) {
        event_del(&c->wev);
        c->write_armed = false;
    }
    c->write_deadline = 0;
    if (c->close_after_flush) {
        linger(c);
        return;
    }
    if (c->mode == MH_CONN_PROTO && c->proto->on_drained)
        c->proto->on_drained(c->proto_arg);
    if (progressed)
        stream_progress(c);
}

/* Writes what is queued; closes the connection if the peer is gone. */
void mh_conn_write_out(struct mh_conn *c)
{
    bool progressed = false;

    while (c->out.unsent) {
        struct iovec iov[MAX_IOV];
        int n = mh_outq_iov(&c->out, iov, MAX_IOV);
        ssize_t w = c->tp->writev(c, iov, n);

        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wait_writable(c, progressed);
            return;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            mh_conn_close_now(c); /* the peer is gone */
            return;
        }
        if (!c->svc->is_private)
            mh_stat_add(&c->loop->stats.bytes_out, (uint64_t)w);
        mh_outq_consume(&c->out, c->loop, (size_t)w);
        progressed = true;
        if (c->write_armed)
            c->write_deadline = c->loop->now_ms + c->loop->limits->write_timeout_ms;
    }
    flushed(c, progressed);
}

void mh_conn_flush(struct mh_conn *c)
{
    if (c->in_process || c->fd < 0)
        return; /* flushed when the read batch ends */
    mh_conn_hold(c);
    mh_conn_write_out(c);
    mh_conn_release(c);
}

/* --- Ending --- */

void mh_conn_free_input(struct mh_conn *c)
{
    if (!c->in_scratch)
        free(c->in);
    c->in = NULL;
    c->in_scratch = false;
    c->len = c->off = c->cap = c->scanned = 0;
}

void mh_conn_close_now(struct mh_conn *c)
{
    struct mh_loop *loop = c->loop;

    if (c->fd < 0)
        return;
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->timer);
    if (c->active) {
        struct mh_req *req = c->active;

        c->active = NULL;
        mh_req_client_gone(req);
    }
    if (c->mode == MH_CONN_PROTO && c->proto->on_close) {
        const struct mh_conn_proto *p = c->proto;

        c->mode = MH_CONN_HTTP;
        p->on_close(c->proto_arg);
    }
    c->tp->close(c);
    close(c->fd);
    c->fd = -1;
    mh_outq_clear(&c->out, loop);
    mh_conn_free_input(c);
    if (c->counted && c->svc->is_private) {
        atomic_fetch_sub(c->svc->open, 1);
    } else if (c->counted) {
        mh_caps_server_add(-1);
        mh_stat_add(&loop->stats.closed, 1);
        if (c->has_ip)
            mh_caps_client_add(c->ip, -1);
    }
    if (loop->conns == c)
        loop->conns = c->next;
    else
        c->prev->next = c->next;
    if (c->next)
        c->next->prev = c->prev;
    loop->nconns--;
    if (c->depth == 0)
        free(c); /* otherwise the callback under way frees it (release) */
}

/* Stops writing, reads and drops what the client still sends for a while, then closes: a
 * close with unread input would reset the connection and could destroy our last answer. */
static void linger(struct mh_conn *c)
{
    c->close_after_flush = false;
    if (c->mode == MH_CONN_PROTO && c->proto->on_close) {
        const struct mh_conn_proto *p = c->proto;

        c->mode = MH_CONN_LINGER;
        p->on_close(c->proto_arg); /* the other protocol's end: its last bytes are out */
    }
    c->mode = MH_CONN_LINGER;
    c->tp->shutdown(c);
    mh_conn_free_input(c);
    mh_conn_resume_reading(c);
    mh_conn_set_deadline(c, MH_DL_LINGER, LINGER_MS);
}

void mh_conn_end(struct mh_conn *c, bool after_flush)
{
    if (c->fd < 0)
        return;
    if (!after_flush) {
        mh_conn_close_now(c);
        return;
    }
    c->close_after_flush = true;
    c->reading = false;
    mh_conn_pause_reading(c);
    mh_conn_flush(c);
}

void mh_conn_stop_reading(struct mh_conn *c)
{
    c->reading = false;
    mh_conn_pause_reading(c);
}

/* --- Refusals --- */

void mh_conn_refuse_queue(struct mh_conn *c, int status, const char *reason, const char *why)
{
    struct mh_buf body = {0};
    struct mh_reply_head h = {
        .status = status, .content_type = "application/problem+json", .close = true};

    c->refused = true;
    c->reading = false;
    mh_conn_pause_reading(c);
    if (!mh_problem_build(&body, status, mh_http_reason(status), NULL, why))
        abort();
    h.content_length = body.len;
    mh_conn_write_head(c, &h);
    mh_conn_send(c, body.data, body.len);
    if (c->loop->access_log && !c->svc->is_private) {
        char peer[64];

        mh_access_refusal(c->loop, mh_conn_peer(c, peer, sizeof(peer)), status, body.len, reason,
                          why);
    }
    mh_buf_cleanup(&body);
    c->close_after_flush = true;
}

void mh_conn_refuse(struct mh_conn *c, int status, const char *reason, const char *why)
{
    if (c->fd < 0)
        return;
    mh_conn_refuse_queue(c, status, reason, why);
    mh_conn_flush(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct mh_conn *c = arg;

    (void)fd;
    (void)what;
    now_ms(c->loop);
    mh_conn_hold(c);
    mh_conn_read_ready(c);
    mh_conn_release(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct mh_conn *c = arg;

    (void)fd;
    (void)what;
    now_ms(c->loop);
    mh_conn_hold(c);
    if (c->read_wants_write) {
        c->read_wants_write = false;
        mh_conn_read_ready(c);
        if (c->fd >= 0 && c->out.unsent) {
            mh_conn_write_out(c);
        } else if (c->fd >= 0 && !c->read_wants_write && c->write_armed) {
            event_del(&c->wev);
            c->write_armed = false;
        }
    } else {
        mh_conn_write_out(c);
    }
    mh_conn_release(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mh_conn *c = arg;
    int64_t now = now_ms(c->loop);

    (void)fd;
    (void)what;
    c->armed_for = 0;
    mh_conn_hold(c);
    if (c->write_deadline && now >= c->write_deadline) {
        /* The client stopped reading: reset the connection, so that the kernel drops what
         * is queued for it now instead of holding it behind a zero window. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};

        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        mh_conn_close_now(c);
        goto out;
    }
    if (c->dkind != MH_DL_NONE && now >= c->deadline) {
        enum deadline k = c->dkind;

        c->dkind = MH_DL_NONE;
        switch (k) {
        case MH_DL_HEAD:
        case MH_DL_BODY:
            if (c->active || c->mode != MH_CONN_HTTP)
                break;
            if (!c->svc->is_private)
                mh_stat_add(&c->loop->stats.refused[MH_REFUSE_TIMEOUT], 1);
            mh_conn_refuse_queue(c, 408, mh_refusal_name(MH_REFUSE_TIMEOUT),
                                 k == MH_DL_HEAD ? "the request head did not arrive in time"
                                                 : "the request body did not arrive in time");
            mh_conn_write_out(c);
            goto out;
        case MH_DL_IDLE:
        case MH_DL_LINGER:
            mh_conn_close_now(c);
            goto out;
        case MH_DL_NONE:
            break;
        }
    }
    arm_timer(c);
out:
    mh_conn_release(c);
}

/* --- Accepting --- */

int mh_conn_fd(const struct mh_conn *c)
{
    return c->fd;
}

const struct mh_service *mh_conn_service(const struct mh_conn *c)
{
    return c->svc;
}

void *mh_conn_transport_data(const struct mh_conn *c)
{
    return c->tp_data;
}

void mh_conn_set_transport_data(struct mh_conn *c, void *data)
{
    c->tp_data = data;
}

void mh_conn_accept(struct mh_loop *loop, const struct mh_service *svc, int fd,
                    const struct sockaddr *peer, socklen_t len)
{
    const struct mh_limits *l = loop->limits;
    struct mh_conn *c = mh_xcalloc(1, sizeof(*c));
    struct mh_scan_limits lim = {
        .max_request_line = (size_t)l->max_request_line_bytes,
        .max_header_bytes = (size_t)l->max_header_bytes,
        .max_headers = (unsigned)l->max_headers,
        .max_body_bytes = (uint64_t)l->max_body_bytes,
    };
    int one = 1, total, mine = 0;

    (void)len;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->loop = loop;
    c->fd = fd;
    c->svc = svc;
    c->tp = svc->transport ? svc->transport : &mh_tcp_transport;
    c->reading = true;
    mh_http_scan_init(&c->scan, &lim);
    event_assign(&c->rev, loop->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, loop->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    evtimer_assign(&c->timer, loop->base, on_timer, c);
    c->next = loop->conns;
    if (loop->conns)
        loop->conns->prev = c;
    loop->conns = c;
    loop->nconns++;
    now_ms(loop);

    c->counted = true;
    if (svc->is_private) {
        /* Its own small cap, outside the server's: an overloaded server still answers. */
        total = atomic_fetch_add(svc->open, 1) + 1;
        if (c->tp->open && c->tp->open(c, svc->transport_ctx) != 0) {
            mh_conn_close_now(c);
            return;
        }
        event_add(&c->rev, NULL);
        if (total > svc->max_connections) {
            mh_conn_refuse_queue(c, 503, mh_refusal_name(MH_REFUSE_CONNECTIONS),
                                 "too many connections to the admin listener");
            mh_conn_hold(c);
            mh_conn_write_out(c);
            mh_conn_release(c);
            return;
        }
        mh_conn_set_deadline(c, MH_DL_HEAD, l->head_timeout_ms);
        return;
    }
    mh_stat_add(&loop->stats.accepted, 1);
    total = mh_caps_server_add(1);
    if (peer && peer->sa_family == AF_INET) {
        c->ip[10] = c->ip[11] = 0xff; /* as an IPv4-mapped IPv6 address */
        memcpy(c->ip + 12, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4);
        c->has_ip = true;
    } else if (peer && peer->sa_family == AF_INET6) {
        memcpy(c->ip, &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr, 16);
        c->has_ip = true;
    }
    if (c->has_ip)
        mine = mh_caps_client_add(c->ip, 1);
    if (c->tp->open && c->tp->open(c, svc->transport_ctx) != 0) {
        mh_conn_close_now(c);
        return;
    }
    event_add(&c->rev, NULL);
    if (total > l->max_connections || mine > l->max_connections_per_client) {
        mh_stat_add(&loop->stats.refused_cap, 1);
        mh_stat_add(&loop->stats.refused[MH_REFUSE_CONNECTIONS], 1);
        mh_conn_refuse_queue(c, 503, mh_refusal_name(MH_REFUSE_CONNECTIONS),
                             total > l->max_connections ? "too many connections to the server"
                                                        : "too many connections from this address");
        mh_conn_hold(c);
        mh_conn_write_out(c);
        mh_conn_release(c);
        return;
    }
    /* A new connection must send its first request head in time. */
    mh_conn_set_deadline(c, MH_DL_HEAD, l->head_timeout_ms);
}

const char *mh_conn_peer(const struct mh_conn *c, char *buf, size_t size)
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (!c || !c->has_ip)
        return "-";
    if (memcmp(c->ip, v4mapped, 12) == 0)
        inet_ntop(AF_INET, c->ip + 12, buf, (socklen_t)size);
    else
        inet_ntop(AF_INET6, c->ip, buf, (socklen_t)size);
    return buf;
}

/* --- The request's side --- */

void mh_conn_switch(struct mh_conn *c, const struct mh_conn_proto *proto, void *arg)
{
    c->mode = MH_CONN_PROTO;
    c->proto = proto;
    c->proto_arg = arg;
    c->dkind = MH_DL_NONE;
    c->requests++;
    c->active = NULL;
    /* Bytes that came with the upgrade request belong to the new protocol. */
    if (c->len - c->off > 0) {
        size_t used = proto->on_data(arg, c->in + c->off, c->len - c->off);

        c->off += used;
    }
}

/* --- The loop's side --- */

void mh_conn_drain_loop(struct mh_loop *loop)
{
    for (struct mh_conn *c = loop->conns, *next; c; c = next) {
        next = c->next;
        if (c->mode == MH_CONN_HTTP && !c->active && c->out.unsent == 0 && c->len - c->off == 0)
            mh_conn_close_now(c); /* idle keep-alive */
    }
}

void mh_conn_close_all(struct mh_loop *loop)
{
    /* Each close unlinks the head (c->loop is this loop); a close may close others too. The
     * analyzer, which cannot see that c->loop is this loop, takes the head for freed. */
    while (loop->conns)
        mh_conn_close_now(loop->conns); /* NOLINT(clang-analyzer-unix.Malloc) */
}

void mh_conn_loop_cleanup(struct mh_loop *loop)
{
    mh_conn_close_all(loop);
    mh_outq_spares_free(loop);
}
