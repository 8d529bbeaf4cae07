/*
 * Streamed answers (SDK 1.2): the head goes out at mh_stream_begin, the body in pieces —
 * chunked to HTTP/1.1 clients, until the close to HTTP/1.0 ones — with a 1 MiB window for
 * backpressure, until mh_stream_end. Calls from other threads than the request's loop are handed
 * to the loop through its mailbox, so one thread's pieces keep their order; the counters a
 * caller checks (phase, bytes in flight) are atomic.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/chars.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mailbox.h"
#include "base/mem.h"
#include "http/access.h"
#include "http/conn.h"
#include "http/head.h"
#include "http/req.h"
#include "http/request.h"
#include "mod/gen.h"
#include "mod/loader.h"

#define WINDOW ((size_t)1024 * 1024) /* bytes of a stream that may be queued and unsent */

enum op_kind { MH_STREAM_OP_BEGIN, MH_STREAM_OP_WRITE, MH_STREAM_OP_END };

struct stream_op {
    struct mh_task base; /* first: the mailbox hands back this pointer */
    struct mh_req *req;
    enum op_kind kind;
    int status;
    size_t len;
    char data[]; /* MH_STREAM_OP_WRITE: the bytes; MH_STREAM_OP_BEGIN: the content type ("" for
                    none) */
};

static bool on_loop(const struct mh_req *req)
{
    return mh_mailbox_current == req->loop->mailbox;
}

static void misuse_log(const struct mh_req *req, const char *what)
{
    const struct mh_route_target *t = req->target;

    mh_log_write(MH_LOG_ERROR, t ? t->module->name : "core",
                 "SDK misuse in handler '%s': %s req=%s", t && t->handler ? t->handler->name : "-",
                 what, req->rid);
}

/* --- On the loop --- */

static void begin_local(struct mh_req *req, int status, const char *content_type)
{
    struct mh_conn *c = req->conn;
    struct mh_reply_head h = {.status = status,
                              .content_type = content_type,
                              .fields = req->resp_fields,
                              .request_id = req->rid};

    mh_req_stop_watchers(req); /* a stream may run for long: no route deadline */
    req->pending++;            /* the stream holds the request until its end */
    req->replied = true;
    req->status = status;
    if (!c || req->loop->stopped || req->responded)
        return; /* the client is gone: writes are dropped until the end lets go */
    req->streaming = true;
    req->stream_chunked = req->http11 && !req->is_head;
    h.chunked = req->stream_chunked;
    h.until_close = !req->http11 && !req->is_head;
    h.close = !req->http11 || req->close_after || !req->keep_alive || req->loop->draining;
    req->close_after = h.close;
    mh_conn_write_head(c, &h);
    mh_conn_flush(c);
}

static void write_local(struct mh_req *req, const char *data, size_t len)
{
    struct mh_conn *c = req->conn;

    if (!req->streaming || !c || req->is_head || len == 0)
        return;
    if (req->stream_chunked) {
        char size[24];
        int n = snprintf(size, sizeof(size), "%zx\r\n", len);

        mh_conn_send(c, size, (size_t)n);
        mh_conn_send(c, data, len);
        mh_conn_send(c, "\r\n", 2);
    } else {
        mh_conn_send(c, data, len);
    }
    req->stream_bytes += len;
    atomic_store(&req->stream_unsent, mh_conn_unsent(c));
    mh_conn_flush(c);
}

static void end_local(struct mh_req *req)
{
    struct mh_conn *c = req->conn;

    if (req->streaming && c) {
        if (req->stream_chunked)
            mh_conn_send(c, "0\r\n\r\n", 5);
        mh_req_account(req, req->status);
        if (req->loop->access_log && !req->is_private) {
            char peer[64];

            mh_access_request(req->loop, req, mh_conn_peer(c, peer, sizeof(peer)), req->status,
                              (size_t)req->stream_bytes);
        }
        mh_req_mark_responded(req);
        req->conn = NULL;
        mh_conn_request_done(c, req->close_after);
    } else if (!req->responded) {
        mh_req_mark_responded(req);
        req->conn = NULL;
    }
    req->streaming = false;
    req->stream_drain_fn = NULL;
    req->pending--;
    mh_req_finish_if_done(req);
}

static void op_complete(struct mh_task *t)
{
    struct stream_op *op = (struct stream_op *)t;
    struct mh_req *req = op->req;

    switch (op->kind) {
    case MH_STREAM_OP_BEGIN:
        begin_local(req, op->status, op->data[0] ? op->data : NULL);
        break;
    case MH_STREAM_OP_WRITE:
        atomic_fetch_sub(&req->stream_posted, op->len);
        write_local(req, op->data, op->len);
        break;
    case MH_STREAM_OP_END:
        end_local(req);
        break;
    }
    free(op);
}

static void post(struct mh_req *req, enum op_kind kind, int status, const void *data, size_t len)
{
    struct stream_op *op = mh_xmalloc(sizeof(*op) + len + 1);

    memset(&op->base, 0, sizeof(op->base));
    op->base.complete = op_complete;
    op->req = req;
    op->kind = kind;
    op->status = status;
    op->len = len;
    if (len)
        memcpy(op->data, data, len);
    op->data[len] = '\0';
    mh_mailbox_post(req->loop->mailbox, &op->base);
}

void mh_req_stream_progress(struct mh_req *req, size_t unsent)
{
    void (*fn)(struct mh_req *, void *) = req->stream_drain_fn;

    atomic_store(&req->stream_unsent, unsent);
    if (fn && atomic_load(&req->stream_posted) + unsent < WINDOW / 2) {
        req->stream_drain_fn = NULL;
        fn(req, req->stream_drain_arg);
    }
}

void mh_req_stream_gone(struct mh_req *req)
{
    void (*fn)(struct mh_req *, void *) = req->stream_drain_fn;

    req->streaming = false;
    if (fn) {
        req->stream_drain_fn = NULL;
        fn(req, req->stream_drain_arg);
    }
}

/* --- SDK --- */

enum mh_status mh_stream_begin_impl(struct mh_req *req, int status, const char *content_type)
{
    if (atomic_load(&req->cancel))
        return MH_E_CANCELLED;
    if (req->replied || atomic_load(&req->stream_phase) != 0) {
        misuse_log(req, "mh_stream_begin after a reply or a stream");
        if (!req->misuse)
            req->misuse = "mh_stream_begin after a reply or a stream";
        return MH_E_STATE;
    }
    if (status < 200 || status > 599 || (content_type && !mh_is_field_value(content_type))) {
        char what[96];

        (void)snprintf(what, sizeof(what), "mh_stream_begin(status %d%s)", status,
                       status >= 200 && status <= 599 ? ", a bad content type" : "");
        misuse_log(req, what);
        if (!req->misuse)
            req->misuse = "mh_stream_begin with a bad status or content type";
        return MH_E_INVAL;
    }
    atomic_store(&req->stream_phase, 1);
    if (on_loop(req))
        begin_local(req, status, content_type);
    else
        post(req, MH_STREAM_OP_BEGIN, status, content_type ? content_type : "",
             content_type ? strlen(content_type) : 0);
    return MH_OK;
}

enum mh_status mh_stream_write_impl(struct mh_req *req, const void *data, size_t len)
{
    if (atomic_load(&req->stream_phase) != 1 || (len && !data))
        return MH_E_STATE;
    if (atomic_load(&req->cancel))
        return MH_E_CANCELLED;
    if (atomic_load(&req->stream_posted) + atomic_load(&req->stream_unsent) + len > WINDOW &&
        atomic_load(&req->stream_posted) + atomic_load(&req->stream_unsent) > 0)
        return MH_E_LIMIT;
    if (on_loop(req)) {
        write_local(req, data, len);
    } else {
        atomic_fetch_add(&req->stream_posted, len);
        post(req, MH_STREAM_OP_WRITE, 0, data, len);
    }
    return MH_OK;
}

enum mh_status mh_stream_on_drain_impl(struct mh_req *req,
                                       void (*fn)(struct mh_req *req, void *arg), void *arg)
{
    if (atomic_load(&req->stream_phase) != 1 || !on_loop(req))
        return MH_E_STATE;
    req->stream_drain_fn = fn;
    req->stream_drain_arg = arg;
    if (fn && atomic_load(&req->cancel))
        mh_req_stream_gone(req);
    else if (fn && req->conn)
        mh_req_stream_progress(req, mh_conn_unsent(req->conn));
    return MH_OK;
}

enum mh_status mh_stream_end_impl(struct mh_req *req)
{
    if (atomic_load(&req->stream_phase) != 1)
        return MH_E_STATE;
    atomic_store(&req->stream_phase, 2);
    if (on_loop(req))
        end_local(req);
    else
        post(req, MH_STREAM_OP_END, 0, NULL, 0);
    return MH_OK;
}
