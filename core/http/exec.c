/*
 * Running a request's handler: on the loop, or on the worker pool with a deadline and
 * cancellation when the client goes away; request tasks and host tasks; settling the answer
 * once the handler (and its last task) is done.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>

#include "base/crash.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mailbox.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "base/pool.h"
#include "http/access.h"
#include "http/conn.h"
#include "http/req.h"
#include "http/request.h"
#include "mod/gen.h"
#include "mod/host.h"
#include "mod/loader.h"

struct req_task {
    struct mh_task base; /* first: the pool hands back this pointer */
    struct mh_req *req;
    mh_task_fn work;
    mh_req_done_fn done;
    void *arg;
};

struct host_task {
    struct mh_task base;
    struct mh_gen *gen; /* referenced: the module's code and state stay until done ran */
    mh_task_fn work;
    mh_task_done_fn done;
    void *arg;
};

/* Marks the handler's entry in the crash table (see base/crash.h). */
static struct mh_crash_slot *mark(const struct mh_req *req, bool on_loop)
{
    const struct mh_route_target *t = req->target;

    return mh_crash_enter(t->module->name, t->handler->name, t->conf->path, req->method_name,
                          req->path, req->path_len, on_loop);
}

/* --- For the dispatcher --- */

struct mh_loop *mh_req_loop(const struct mh_req *req)
{
    return req->loop;
}

struct mh_arena *mh_req_arena(struct mh_req *req)
{
    return &req->arena;
}

void mh_req_set_target(struct mh_req *req, const struct mh_route_target *t)
{
    req->target = t;
}

const struct mh_route_target *mh_req_target(const struct mh_req *req)
{
    return req->target;
}

void mh_req_set_param(struct mh_req *req, size_t i, const char *name, const char *value)
{
    req->param_names[i] = name;
    req->param_values[i] = value;
}

void mh_req_set_nparams(struct mh_req *req, size_t n)
{
    req->nparams = n;
}

enum mh_method mh_req_method_id(const struct mh_req *req)
{
    return req->method;
}

size_t mh_req_path_len(const struct mh_req *req)
{
    return req->path_len;
}

bool mh_req_is_http11(const struct mh_req *req)
{
    return req->http11;
}

bool mh_req_replied(const struct mh_req *req)
{
    return req->replied;
}

void mh_req_answer(struct mh_req *req)
{
    mh_req_respond(req);
    mh_req_finish_if_done(req);
}

struct mh_conn *mh_req_upgraded(struct mh_req *req)
{
    struct mh_conn *c = req->conn;

    mh_req_account(req, 101);
    if (req->loop->access_log) {
        char peer[64];

        mh_access_request(req->loop, req, mh_conn_peer(c, peer, sizeof(peer)), 101, 0);
    }
    mh_req_mark_responded(req);
    req->conn = NULL;
    mh_req_finish_if_done(req);
    return c;
}

/* --- Metrics --- */

struct mh_route_stats *mh_route_stats_of(struct mh_loop *loop, const struct mh_route_target *t)
{
    struct mh_route_stats *rs;

    if (!t) {
        if (!loop->unrouted)
            loop->unrouted = mh_route_stats_get(&loop->route_stats, "", "", "", false);
        return loop->unrouted;
    }
    if (loop->index < t->nstats && t->stats[loop->index])
        return t->stats[loop->index];
    rs = mh_route_stats_get(&loop->route_stats, t->module->name, t->ws ? "GET" : t->conf->method,
                            t->ws ? t->ws->path : t->conf->path, t->ws != NULL);
    if (loop->index < t->nstats)
        t->stats[loop->index] = rs; /* only this loop writes its slot */
    return rs;
}

void mh_req_account(struct mh_req *req, int status)
{
    struct mh_route_stats *rs;
    struct timespec now;
    long long us;
    int cls = status / 100 - 1;

    if (req->is_private)
        return;
    rs = mh_route_stats_of(req->loop, req->target);
    clock_gettime(CLOCK_MONOTONIC, &now);
    us = (long long)(now.tv_sec - req->start.tv_sec) * 1000000 +
         (now.tv_nsec - req->start.tv_nsec) / 1000;
    mh_stat_add(&rs->by_class[cls < 0 ? 0 : cls >= MH_CLASS_COUNT ? MH_CLASS_COUNT - 1 : cls], 1);
    if (status == 504)
        mh_stat_add(&rs->timeouts, 1);
    else if (status == 499)
        mh_stat_add(&rs->cancelled, 1);
    if (status != 101)
        mh_histogram_add(&rs->latency, us > 0 ? (uint64_t)us : 0, false);
}

/* --- Settling --- */

/* A streamed answer ends with mh_stream_end. A handler that failed after beginning one
 * leaves an answer that cannot be completed: the connection closes. */
static void settle_stream(struct mh_req *req, enum mh_status rc)
{
    const struct mh_route_target *t = req->target;

    if ((int)rc >= 0 || atomic_load(&req->stream_phase) != 1) {
        mh_req_finish_if_done(req);
        return;
    }
    mh_log_write(MH_LOG_ERROR, t->module->name,
                 "handler '%s' failed after starting a stream: %s; closing the "
                 "connection req=%s",
                 t->handler ? t->handler->name : "-", mh_status_str(rc), req->rid);
    /* What was written goes out, without the last chunk: the client sees a body cut short,
     * never one that looks complete. */
    req->stream_chunked = false;
    req->close_after = true;
    mh_stream_end_impl(req);
}

/* The answer for a handler that returned @p rc without a reply: 500 if it claimed success,
 * else the status @p rc stands for. */
static void reply_for_status(struct mh_req *req, enum mh_status rc)
{
    const struct mh_route_target *t = req->target;
    const char *what = t->handler ? t->handler->name : t->ws->path;

    if (rc == MH_OK || rc == MH_PENDING) {
        mh_stat_add(&mh_route_stats_of(req->loop, t)->errors, 1);
        mh_log_write(MH_LOG_ERROR, t->module->name, "handler '%s' returned without a reply req=%s",
                     what, req->rid);
        mh_reply_problem_impl(req, 500, NULL, "the handler sent no reply");
        return;
    }
    if (mh_status_http(rc) >= 500) {
        mh_stat_add(&mh_route_stats_of(req->loop, t)->errors, 1);
        mh_log_write(MH_LOG_ERROR, t->module->name, "%s '%s' failed: %s req=%s",
                     t->handler ? "handler" : "WebSocket endpoint", what, mh_status_str(rc),
                     req->rid);
    }
    mh_reply_problem_impl(req, mh_status_http(rc), NULL, "%s", mh_status_str(rc));
}

void mh_req_settle(struct mh_req *req, enum mh_status rc)
{
    if (req->responded) {
        mh_req_finish_if_done(req);
        return;
    }
    if (atomic_load(&req->stream_phase) != 0 && !req->misuse) {
        settle_stream(req, rc);
        return;
    }
    if (req->misuse) {
        /* A module's bug (logged when it happened): 500, not what it may have recorded. */
        req->replied = false;
        req->resp_fields = NULL;
        mh_buf_reset(&req->out);
        mh_reply_problem_impl(req, 500, NULL, "the module misused the server's API: %s",
                              req->misuse);
    } else if (!req->replied) {
        if (rc == MH_PENDING && req->pending > 0)
            return; /* a request task will reply */
        reply_for_status(req, rc);
    }
    mh_req_respond(req);
    mh_req_finish_if_done(req);
}

void mh_req_settle_status(struct mh_req *req, enum mh_status rc)
{
    mh_req_settle(req, rc);
}

/* --- Waiting for the pool: deadlines and clients that go away --- */

void mh_req_stop_watchers(struct mh_req *req)
{
    if (req->deadline_ev) {
        event_free(req->deadline_ev);
        req->deadline_ev = NULL;
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct mh_req *req = arg;

    (void)fd;
    (void)what;
    if (req->responded || atomic_load(&req->stream_phase) != 0)
        return;
    atomic_store(&req->cancel, MH_E_TIMEOUT);
    mh_req_respond_problem(req, 504, NULL, NULL, "the handler did not finish within %lld ms",
                           req->target->timeout_ms);
}

void mh_req_client_gone(struct mh_req *req)
{
    if (req->responded)
        return;
    atomic_store(&req->cancel, MH_E_CANCELLED);
    mh_req_account(req, 499); /* nginx's code for "client closed request" */
    if (req->loop->access_log) {
        char peer[64];

        mh_access_request(req->loop, req, mh_conn_peer(req->conn, peer, sizeof(peer)), 499,
                          (size_t)req->stream_bytes);
    }
    req->conn = NULL;
    mh_req_mark_responded(req);
    if (req->streaming) {
        req->pending++; /* the module may end the stream from its drain callback */
        mh_req_stream_gone(req);
        req->pending--;
    }
    mh_req_finish_if_done(req);
}

void mh_req_await(struct mh_req *req)
{
    mh_req_detach(req);
    if (!req->async) {
        req->async = true;
        req->loop->inflight++;
    }
    if (req->target && req->target->timeout_ms > 0 && !req->deadline_ev) {
        struct timeval tv = {(time_t)(req->target->timeout_ms / 1000),
                             (suseconds_t)(req->target->timeout_ms % 1000) * 1000};

        req->deadline_ev = evtimer_new(req->loop->base, on_deadline, req);
        if (!req->deadline_ev)
            abort();
        evtimer_add(req->deadline_ev, &tv);
    }
}

void mh_req_wait(struct mh_req *req)
{
    mh_req_await(req);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void blocking_run(struct mh_task *t)
{
    struct mh_req *req = (struct mh_req *)((char *)t - offsetof(struct mh_req, task));
    const struct mh_route_target *tg = req->target;
    struct mh_crash_slot *slot;
    uint64_t t0;

    if (atomic_load(&req->cancel)) {
        req->handler_rc = MH_E_CANCELLED;
        return;
    }
    slot = mark(req, false);
    t0 = now_ns();
    req->handler_rc = tg->handler->fn(req, tg->module->state);
    req->pool_ns = now_ns() - t0; /* handed to the loop with the completion */
    mh_crash_leave(slot);
}

static void blocking_complete(struct mh_task *t)
{
    struct mh_req *req = (struct mh_req *)((char *)t - offsetof(struct mh_req, task));

    if (req->pool_ns && !req->is_private)
        mh_stat_add(&mh_route_stats_of(req->loop, req->target)->pool_ns, req->pool_ns);

    req->pending--;
    if (!t->ran && !req->responded)
        mh_req_respond_problem(req, 503, "Retry-After", "1", "the server is stopping");
    else if (req->handler_rc == MH_PENDING)
        req->handler_rc = MH_OK; /* a blocking handler cannot start tasks: no reply is a bug */
    mh_req_settle(req, req->handler_rc);
}

void mh_req_run_blocking(struct mh_req *req)
{
    enum mh_status rc;

    mh_req_detach(req);
    req->task.home = req->loop->mailbox;
    req->task.run = blocking_run;
    req->task.complete = blocking_complete;
    req->pending++;
    rc = mh_pool_submit(req->loop->pool, &req->task);
    if (rc != MH_OK) {
        req->pending--;
        if (rc == MH_E_UNAVAILABLE)
            mh_warn(req->target->module->name, "worker pool queue full: refusing %s %s req=%s",
                    req->method_name, req->path, req->rid);
        mh_req_respond_problem(req, 503, "Retry-After", "1", "%s",
                               rc == MH_E_UNAVAILABLE ? "all workers are busy and the queue is full"
                                                      : "the server is stopping");
        mh_req_finish_if_done(req);
        return;
    }
    mh_req_await(req);
}

void mh_req_run(struct mh_req *req)
{
    const struct mh_route_target *t = req->target;
    struct mh_crash_slot *slot;

    if ((t->handler->flags & MH_HANDLER_BLOCKING) && req->loop->pool && !t->conf->run_inline) {
        mh_req_run_blocking(req);
        return;
    }
    req->pending++; /* the handler may end a stream: the request outlives the call */
    slot = mark(req, true);
    {
        uint64_t t0 = now_ns();

        req->handler_rc = t->handler->fn(req, t->module->state);
        mh_stat_add(&mh_route_stats_of(req->loop, t)->loop_ns, now_ns() - t0);
    }
    mh_crash_leave(slot);
    req->pending--;
    if (req->handler_rc == MH_PENDING && req->pending > 0 && !req->replied)
        mh_req_await(req);
    mh_req_settle(req, req->handler_rc);
}

/* --- SDK: tasks --- */

int mh_req_cancelled_impl(const struct mh_req *req)
{
    return atomic_load(&((struct mh_req *)(uintptr_t)req)->cancel) != 0;
}

static void req_task_run(struct mh_task *t)
{
    struct req_task *rt = (struct req_task *)t;

    rt->work(rt->arg);
}

static void req_task_complete(struct mh_task *t)
{
    struct req_task *rt = (struct req_task *)t;
    struct mh_req *req = rt->req;
    int cancel = atomic_load(&req->cancel);
    enum mh_status st = !t->ran ? MH_E_CANCELLED : cancel ? (enum mh_status)cancel : MH_OK;

    rt->done(req, rt->arg, st);
    req->pending--;
    if (!req->responded && !t->ran && !req->replied && req->pending == 0) {
        mh_req_respond_problem(req, 503, "Retry-After", "1", "the server is stopping");
        mh_req_finish_if_done(req);
        return;
    }
    mh_req_settle(req, req->replied ? MH_OK : (req->pending ? MH_PENDING : MH_OK));
}

enum mh_status mh_req_task_impl(struct mh_req *req, mh_task_fn work, mh_req_done_fn done, void *arg)
{
    struct req_task *rt;
    enum mh_status rc;

    if (!work || !done)
        return MH_E_INVAL;
    if (req->replied || req->responded || mh_mailbox_current != req->loop->mailbox)
        return MH_E_STATE;
    rt = mh_arena_alloc(&req->arena, sizeof(*rt));
    rt->base.home = req->loop->mailbox;
    rt->base.run = req_task_run;
    rt->base.complete = req_task_complete;
    rt->req = req;
    rt->work = work;
    rt->done = done;
    rt->arg = arg;
    rc = mh_pool_submit(req->loop->pool, &rt->base);
    if (rc != MH_OK)
        return rc == MH_E_CANCELLED ? MH_E_UNAVAILABLE : rc;
    req->pending++;
    return MH_OK;
}

static void host_task_run(struct mh_task *t)
{
    struct host_task *ht = (struct host_task *)t;

    ht->work(ht->arg);
}

static void host_task_complete(struct mh_task *t)
{
    struct host_task *ht = (struct host_task *)t;

    ht->done(ht->arg, t->ran ? MH_OK : MH_E_CANCELLED);
    if (ht->gen)
        mh_gen_unref(ht->gen);
    free(ht);
}

enum mh_status mh_task_submit_impl(struct mh_host *host, mh_task_fn work, mh_task_done_fn done,
                                   void *arg)
{
    struct mh_pool *pool = mh_pool_global();
    struct host_task *ht;
    enum mh_status rc;

    if (!work || !done)
        return MH_E_INVAL;
    if (!mh_mailbox_current || !pool)
        return MH_E_STATE;
    ht = mh_xcalloc(1, sizeof(*ht));
    ht->gen = host && host->module ? host->module->gen : NULL;
    if (ht->gen)
        mh_gen_ref(ht->gen);
    ht->base.home = mh_mailbox_current;
    ht->base.run = host_task_run;
    ht->base.complete = host_task_complete;
    ht->work = work;
    ht->done = done;
    ht->arg = arg;
    rc = mh_pool_submit(pool, &ht->base);
    if (rc != MH_OK) {
        if (ht->gen)
            mh_gen_unref(ht->gen);
        free(ht);
        return rc == MH_E_CANCELLED ? MH_E_UNAVAILABLE : rc;
    }
    return MH_OK;
}
