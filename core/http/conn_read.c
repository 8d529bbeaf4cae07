/*
 * Reading requests (see conn_int.h): the input buffer (the loop's scratch buffer, or the
 * connection's own while bytes wait), the scanner run on the bytes as they arrive, refusals
 * of what it rejects, dispatch of each complete request in order, and going on once a
 * request is answered. Writing, deadlines and the connection's end are conn.c's.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/loop.h"
#include "base/metrics.h"
#include "conf/config.h"
#include "http/conn_int.h"
#include "http/req.h"
#include "http/request.h"

#define HOLD_LIMIT ((size_t)256 * 1024) /* bytes read ahead while a request waits for the pool */

/* The scanner refused the input: answer its status and end the connection. */
static void refuse_scan(struct mh_conn *c)
{
    if (!c->svc->is_private)
        mh_stat_add(&c->loop->stats.refused[c->scan.refusal], 1);
    mh_conn_refuse_queue(c, c->scan.status, mh_refusal_name(c->scan.refusal), c->scan.why);
}

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
    mh_conn_set_deadline(c, MH_DL_BODY, c->loop->limits->body_timeout_ms);
}

/* Scans and dispatches what is buffered, in order, while no request is being answered. */
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
        mh_conn_set_deadline(c, MH_DL_IDLE, c->loop->limits->keepalive_timeout_ms);
    else if (c->dkind != MH_DL_HEAD)
        mh_conn_set_deadline(c, MH_DL_HEAD, c->loop->limits->head_timeout_ms);
}

/* Keeps unconsumed bytes across reads: the scratch buffer is the loop's. */
static void keep_input(struct mh_conn *c)
{
    size_t rest = c->len - c->off;

    if (c->fd < 0)
        return;
    if (rest == 0) {
        mh_conn_free_input(c);
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
            mh_conn_close_now(c);
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

void mh_conn_read_ready(struct mh_conn *c)
{
    ssize_t n;

    c->read_again = false;
    if (c->mode == MH_CONN_LINGER || !c->reading) {
        unsigned char sink[4096];

        n = c->tp->read(c, sink, sizeof(sink));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            mh_conn_close_now(c);
        return;
    }
    if (!input_room(c)) {
        mh_conn_close_now(c);
        return;
    }
    n = c->tp->read(c, c->in + c->len, c->cap - c->len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            keep_input(c);
        else
            mh_conn_close_now(c); /* EOF or an error: the client is gone (a waiting request: 499) */
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
        mh_conn_pause_reading(c); /* enough read ahead while a request runs */
    if (c->fd >= 0)
        mh_conn_write_out(c);
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
    mh_conn_hold(c);
    if (c->reading)
        mh_conn_resume_reading(c);
    process(c);
    keep_input(c);
    if (c->fd >= 0)
        mh_conn_write_out(c);
    mh_conn_release(c);
}
