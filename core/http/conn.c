/*
 * Connections (see conn.h). A connection reads into the loop's scratch buffer and keeps a
 * buffer of its own only for bytes that wait (an incomplete request, pipelined requests behind
 * one that runs on the pool); it is freed again when empty. Output is a queue of blocks
 * (outq.c) written with writev. One timer per connection carries its deadline (head, body, idle,
 * write, linger); moving a deadline later never touches the timer: when it fires early it is
 * set again for the rest.
 */
#include "http/conn.h"

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
#include "base/chars.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mem.h"
#include "base/problem.h"
#include "conf/config.h"
#include "http/access.h"
#include "http/caps.h"
#include "http/head.h"
#include "http/http_scan.h"
#include "http/outq.h"
#include "http/req.h"
#include "http/request.h"

#define MAX_IOV    16
#define LINGER_MS  2000 /* after a refusal: how long we read and drop before closing */
#define HOLD_LIMIT ((size_t)256 * 1024) /* bytes read ahead while a request waits for the pool */

enum conn_mode { MH_CONN_HTTP, MH_CONN_PROTO, MH_CONN_LINGER };
enum deadline { MH_DL_NONE, MH_DL_HEAD, MH_DL_BODY, MH_DL_IDLE, MH_DL_LINGER };

struct mh_conn {
    struct mh_loop *loop;
    struct mh_conn *prev, *next;
    int fd;
    struct event rev, wev, timer;
    const struct mh_service *svc;
    const struct mh_transport *tp;
    void *tp_data;

    /* Input: [in + off, in + len) unconsumed; `scanned` bytes of it scanned already. */
    unsigned char *in;
    size_t len, cap, off, scanned, head_len;
    bool in_scratch;
    struct mh_http_scan scan;
    unsigned scan_requests, scan_completed;

    /* Output. */
    struct mh_outq out;
    bool write_armed;

    enum conn_mode mode;
    const struct mh_conn_proto *proto;
    void *proto_arg;
    struct mh_req *active; /* the request being answered */
    unsigned requests;     /* answers queued */
    int depth;             /* event callbacks under way: the struct is freed when 0 */
    bool in_process, close_after_flush, reading, paused, refused, counted, has_ip, continue_sent,
        chunked;
    bool read_wants_write; /* the transport's read waits for EV_WRITE (mh_conn_want_write) */
    bool read_again;       /* the transport holds bytes: read without waiting for the socket */
    enum deadline dkind;
    int64_t deadline, write_deadline, armed_for; /* ms, monotonic; armed_for 0: not armed */
    unsigned char ip[16];
};

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

static void set_deadline(struct mh_conn *c, enum deadline kind, long long ms)
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

static void conn_close(struct mh_conn *c);
static void linger(struct mh_conn *c);

/* No more reads for now: the client's sends back up in TCP (backpressure). */
static void pause_reading(struct mh_conn *c)
{
    if (!c->paused && c->fd >= 0) {
        event_del(&c->rev);
        c->paused = true;
    }
}

static void resume_reading(struct mh_conn *c)
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
static void hold(struct mh_conn *c)
{
    c->depth++;
}

static void release(struct mh_conn *c)
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
        pause_reading(c); /* the last answer waits: the client's bytes wait in TCP, and a
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
static void flush(struct mh_conn *c)
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
            conn_close(c); /* the peer is gone */
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
    hold(c);
    flush(c);
    release(c);
}

/* --- Ending --- */

static void free_input(struct mh_conn *c)
{
    if (!c->in_scratch)
        free(c->in);
    c->in = NULL;
    c->in_scratch = false;
    c->len = c->off = c->cap = c->scanned = 0;
}

static void conn_close(struct mh_conn *c)
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
    free_input(c);
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
    free_input(c);
    resume_reading(c);
    set_deadline(c, MH_DL_LINGER, LINGER_MS);
}

void mh_conn_end(struct mh_conn *c, bool after_flush)
{
    if (c->fd < 0)
        return;
    if (!after_flush) {
        conn_close(c);
        return;
    }
    c->close_after_flush = true;
    c->reading = false;
    pause_reading(c);
    mh_conn_flush(c);
}

void mh_conn_stop_reading(struct mh_conn *c)
{
    c->reading = false;
    pause_reading(c);
}

/* --- Refusals --- */

static void refuse(struct mh_conn *c, int status, const char *reason, const char *why)
{
    struct mh_buf body = {0};
    struct mh_reply_head h = {
        .status = status, .content_type = "application/problem+json", .close = true};

    c->refused = true;
    c->reading = false;
    pause_reading(c);
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
    refuse(c, status, reason, why);
    mh_conn_flush(c);
}

static void refuse_scan(struct mh_conn *c)
{
    if (!c->svc->is_private)
        mh_stat_add(&c->loop->stats.refused[c->scan.refusal], 1);
    refuse(c, c->scan.status, mh_refusal_name(c->scan.refusal), c->scan.why);
}

/* --- Reading requests --- */

static void dispatch(struct mh_conn *c, size_t total)
{
    struct mh_loop *loop = c->loop;
    unsigned char *base = c->in + c->off;
    struct mh_req *req = mh_req_new(loop, c);
    bool ok;

    c->active = req;
    req->is_private = c->svc->is_private;
    if (!c->svc->is_private)
        mh_stat_add(&loop->stats.requests, 1);
    req->raw_len = total;
    ok = mh_req_read_head(req, (char *)base, c->head_len);
    if (c->head_len < total) {
        if (c->chunked) {
            req->body_len = mh_http_dechunk(base + c->head_len, total - c->head_len);
        } else {
            req->body_len = total - c->head_len;
        }
        req->body = base + c->head_len;
    }
    /* The bytes belong to the request now: sync handlers read them in place, others detach
     * (copy) before the buffer may change. */
    c->off += total;
    c->scanned = 0;
    c->head_len = 0;
    c->continue_sent = false;
    if (!ok) {
        mh_reply_problem_impl(req, 400, NULL, "request target must be an absolute path");
        mh_req_answer(req);
        return;
    }
    c->svc->on_request(req);
}

/* Scans and dispatches what is buffered, in order, while no request is being answered. */
/* A request's head is complete: its body (if any) is read under the body deadline. */
static void head_scanned(struct mh_conn *c)
{
    c->scan_requests = c->scan.requests;
    c->head_len = c->scanned;
    c->chunked = c->scan.te_chunked; /* the scanner forgets it at the request's end */
    if (c->scan.expect_continue && c->scan.http11 && c->scan.completed == c->scan_completed &&
        !c->continue_sent) {
        /* The client waits for our word before it sends the body. */
        mh_conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        c->continue_sent = true;
    }
    set_deadline(c, MH_DL_BODY, c->loop->limits->body_timeout_ms);
}

static void process(struct mh_conn *c)
{
    c->in_process = true;
    while (c->fd >= 0 && c->mode == MH_CONN_HTTP && !c->active && c->reading) {
        size_t avail = c->len - c->off - c->scanned, used;
        unsigned char *p = c->in + c->off + c->scanned;

        if (c->scan.state == MH_SCAN_HOLD) {
            /* An upgrade request answered with plain HTTP: what follows is HTTP again. */
            mh_http_scan_resume(&c->scan);
        }
        if (avail == 0)
            break;
        if (c->scan.state == MH_SCAN_BODY || c->scan.state == MH_SCAN_CHUNK_DATA)
            used = mh_http_scan_skip(&c->scan, avail);
        else
            used = mh_http_scan(&c->scan, p, avail);
        c->scanned += used;
        if (c->scan.state == MH_SCAN_FAILED) {
            refuse_scan(c);
            break;
        }
        if (c->scan.requests != c->scan_requests)
            head_scanned(c);
        if (c->scan.completed != c->scan_completed) {
            c->scan_completed = c->scan.completed;
            c->dkind = MH_DL_NONE;
            dispatch(c, c->scanned);
            continue;
        }
        if (used == 0)
            break; /* an incomplete line: wait for more */
    }
    c->in_process = false;
    if (c->fd < 0 || c->mode != MH_CONN_HTTP || c->active || !c->reading || c->head_len)
        return; /* (a body under way keeps its deadline) */
    if (c->len - c->off == 0)
        set_deadline(c, MH_DL_IDLE, c->loop->limits->keepalive_timeout_ms);
    else if (c->dkind != MH_DL_HEAD)
        set_deadline(c, MH_DL_HEAD, c->loop->limits->head_timeout_ms);
}

/* Keeps unconsumed bytes across reads: the scratch buffer is the loop's. */
static void keep_input(struct mh_conn *c)
{
    size_t rest = c->len - c->off;

    if (c->fd < 0)
        return;
    if (rest == 0) {
        free_input(c);
        return;
    }
    if (!c->in_scratch && c->cap > 65536 && rest <= 16384) {
        unsigned char *small = malloc(16384); /* shrink what a large body grew */

        if (small) {
            memcpy(small, c->in + c->off, rest);
            free(c->in);
            c->in = small;
            c->cap = 16384;
            c->len = rest;
            c->off = 0;
            return;
        }
    }
    if (c->in_scratch || c->off > 0) {
        size_t cap = rest < 4096 ? 4096 : rest;
        unsigned char *own = c->in_scratch ? malloc(cap) : c->in;

        if (!own) {
            conn_close(c);
            return;
        }
        memmove(own, c->in + c->off, rest);
        if (c->in_scratch) {
            c->cap = cap;
            c->in_scratch = false;
        }
        c->in = own;
        c->len = rest;
        c->off = 0;
    }
}

/* Room to read into: the scratch buffer, or the connection's own grown as needed. */
static bool input_room(struct mh_conn *c)
{
    struct mh_loop *loop = c->loop;

    if (!c->in) {
        c->in = loop->rbuf;
        c->cap = loop->rbuf_cap;
        c->in_scratch = true;
        c->len = c->off = 0;
        return true;
    }
    if (c->len < c->cap)
        return true;
    {
        size_t cap = c->cap * 2;
        unsigned char *p = malloc(cap);

        if (!p)
            return false;
        memcpy(p, c->in + c->off, c->len - c->off);
        if (!c->in_scratch)
            free(c->in);
        c->in = p;
        c->len -= c->off;
        c->off = 0;
        c->cap = cap;
        c->in_scratch = false;
        return true;
    }
}

/* The socket is readable (or a TLS read waited for writability): read, scan, answer.
 * The caller holds the connection. */
static void read_ready(struct mh_conn *c)
{
    ssize_t n;

    c->read_again = false;
    if (c->mode == MH_CONN_LINGER || !c->reading) {
        unsigned char sink[4096];

        n = c->tp->read(c, sink, sizeof(sink));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            conn_close(c);
        return;
    }
    if (!input_room(c)) {
        conn_close(c);
        return;
    }
    n = c->tp->read(c, c->in + c->len, c->cap - c->len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            keep_input(c);
        else
            conn_close(c); /* EOF or an error: the client is gone (a waiting request: 499) */
        return;
    }
    c->len += (size_t)n;
    if (!c->svc->is_private)
        mh_stat_add(&c->loop->stats.bytes_in, (uint64_t)n);
    if (c->mode == MH_CONN_PROTO) {
        c->in_process = true;
        c->off += c->proto->on_data(c->proto_arg, c->in + c->off, c->len - c->off);
        c->in_process = false;
    } else {
        process(c);
    }
    if (c->fd < 0)
        return;
    if (c->mode == MH_CONN_PROTO && !c->reading)
        c->off = c->len; /* a failed protocol: nothing more counts */
    keep_input(c);
    if (c->fd >= 0 && c->active && c->len - c->off > HOLD_LIMIT)
        pause_reading(c); /* enough read ahead while a request runs */
    if (c->fd >= 0)
        flush(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct mh_conn *c = arg;

    (void)fd;
    (void)what;
    now_ms(c->loop);
    hold(c);
    read_ready(c);
    release(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct mh_conn *c = arg;

    (void)fd;
    (void)what;
    now_ms(c->loop);
    hold(c);
    if (c->read_wants_write) {
        c->read_wants_write = false;
        read_ready(c);
        if (c->fd >= 0 && c->out.unsent) {
            flush(c);
        } else if (c->fd >= 0 && !c->read_wants_write && c->write_armed) {
            event_del(&c->wev);
            c->write_armed = false;
        }
    } else {
        flush(c);
    }
    release(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mh_conn *c = arg;
    int64_t now = now_ms(c->loop);

    (void)fd;
    (void)what;
    c->armed_for = 0;
    hold(c);
    if (c->write_deadline && now >= c->write_deadline) {
        /* The client stopped reading: reset the connection, so that the kernel drops what
         * is queued for it now instead of holding it behind a zero window. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};

        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        conn_close(c);
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
            refuse(c, 408, mh_refusal_name(MH_REFUSE_TIMEOUT),
                   k == MH_DL_HEAD ? "the request head did not arrive in time"
                                   : "the request body did not arrive in time");
            flush(c);
            goto out;
        case MH_DL_IDLE:
        case MH_DL_LINGER:
            conn_close(c);
            goto out;
        case MH_DL_NONE:
            break;
        }
    }
    arm_timer(c);
out:
    release(c);
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
            conn_close(c);
            return;
        }
        event_add(&c->rev, NULL);
        if (total > svc->max_connections) {
            refuse(c, 503, mh_refusal_name(MH_REFUSE_CONNECTIONS),
                   "too many connections to the admin listener");
            hold(c);
            flush(c);
            release(c);
            return;
        }
        set_deadline(c, MH_DL_HEAD, l->head_timeout_ms);
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
        conn_close(c);
        return;
    }
    event_add(&c->rev, NULL);
    if (total > l->max_connections || mine > l->max_connections_per_client) {
        mh_stat_add(&loop->stats.refused_cap, 1);
        mh_stat_add(&loop->stats.refused[MH_REFUSE_CONNECTIONS], 1);
        refuse(c, 503, mh_refusal_name(MH_REFUSE_CONNECTIONS),
               total > l->max_connections ? "too many connections to the server"
                                          : "too many connections from this address");
        hold(c);
        flush(c);
        release(c);
        return;
    }
    /* A new connection must send its first request head in time. */
    set_deadline(c, MH_DL_HEAD, l->head_timeout_ms);
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

void mh_conn_request_done(struct mh_conn *c, bool close)
{
    c->active = NULL;
    c->requests++;
    if (close) {
        /* No more requests. Reading pauses only if the answer cannot all be written now
         * (wait_writable): otherwise the connection lingers at once and reads on. */
        c->close_after_flush = true;
        c->reading = false;
    }
    if (c->in_process)
        return; /* process() goes on with the next request */
    /* An answer from the pool, a deadline: go on with what is buffered, then write. */
    hold(c);
    if (c->reading)
        resume_reading(c);
    process(c);
    keep_input(c);
    if (c->fd >= 0)
        flush(c);
    release(c);
}

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
            conn_close(c); /* idle keep-alive */
    }
}

void mh_conn_close_all(struct mh_loop *loop)
{
    /* Each close unlinks the head (c->loop is this loop); a close may close others too. */
    while (loop->conns)
        conn_close(loop->conns); /* NOLINT(clang-analyzer-unix.Malloc): unlinked before freed */
}

void mh_conn_loop_cleanup(struct mh_loop *loop)
{
    mh_conn_close_all(loop);
    mh_outq_spares_free(loop);
}
