/* The admin listener's routes (see admin.h). */
#include "admin/admin.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "admin/merge.h"
#include "base/board.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mem.h"
#include "http/request.h"
#include "mod/gen.h"
#include "mod/loader.h"
#include "mod/router.h"
#include "mod/store.h"

struct mh_admin {
    struct mh_loop **loops;
    size_t nloops;
    struct mh_pool *pool;
    struct timespec started;
    _Atomic unsigned reloads_ok, reloads_failed;
    atomic_bool draining;
    _Atomic long long probe_timeout_ms;
    pthread_mutex_t mu; /* guards gens */
    struct mh_admin_gen *gens;
    size_t ngens;
};

struct mh_admin *mh_admin_new(struct mh_loop **loops, size_t nloops, struct mh_pool *pool,
                              long long probe_timeout_ms)
{
    struct mh_admin *a = mh_xcalloc(1, sizeof(*a));

    a->loops = loops;
    a->nloops = nloops;
    a->pool = pool;
    clock_gettime(CLOCK_MONOTONIC, &a->started);
    atomic_init(&a->probe_timeout_ms, probe_timeout_ms);
    pthread_mutex_init(&a->mu, NULL);
    return a;
}

void mh_admin_free(struct mh_admin *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->mu);
    free(a->gens);
    free(a);
}

void mh_admin_note_reload(struct mh_admin *a, bool ok)
{
    if (a)
        atomic_fetch_add(ok ? &a->reloads_ok : &a->reloads_failed, 1);
}

void mh_admin_set_generations(struct mh_admin *a, const struct mh_admin_gen *gens, size_t n)
{
    struct mh_admin_gen *copy;

    if (!a)
        return;
    copy = mh_xcalloc(n + 1, sizeof(*copy));
    memcpy(copy, gens, n * sizeof(*copy));
    pthread_mutex_lock(&a->mu);
    free(a->gens);
    a->gens = copy;
    a->ngens = n;
    pthread_mutex_unlock(&a->mu);
}

void mh_admin_set_draining(struct mh_admin *a)
{
    if (a)
        atomic_store(&a->draining, true);
}

void mh_admin_set_probe_timeout(struct mh_admin *a, long long ms)
{
    if (a)
        atomic_store(&a->probe_timeout_ms, ms);
}

void mh_admin_view(struct mh_admin *a, struct mh_admin_view *v)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    v->reloads_ok = atomic_load(&a->reloads_ok);
    v->reloads_failed = atomic_load(&a->reloads_failed);
    pthread_mutex_lock(&a->mu);
    v->ngens = a->ngens ? a->ngens : 1;
    pthread_mutex_unlock(&a->mu);
    v->uptime_s =
        (double)(now.tv_sec - a->started.tv_sec) + (double)(now.tv_nsec - a->started.tv_nsec) / 1e9;
}

struct mh_loop **mh_admin_loops(struct mh_admin *a, size_t *n)
{
    *n = a->nloops;
    return a->loops;
}

struct mh_pool *mh_admin_pool(struct mh_admin *a)
{
    return a->pool;
}

/* --- Replies --- */

static void reply_buf(struct mh_req *req, int status, const char *type, struct mh_buf *b)
{
    mh_resp_header_impl(req, "Cache-Control", "no-store");
    mh_reply_impl(req, status, type, b->data, b->len);
    mh_buf_cleanup(b);
    mh_req_answer(req);
}

static void reply_json(struct mh_req *req, struct json_object *o)
{
    mh_resp_header_impl(req, "Cache-Control", "no-store");
    mh_reply_json_impl(req, 200, o);
    mh_req_answer(req);
}

/* --- /modules, /routes, /generations --- */

static struct json_object *jstr(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static void modules(struct mh_req *req, const struct mh_gen *gen)
{
    struct json_object *arr = json_object_new_array();
    char abi[32];

    for (size_t i = 0; i < gen->nmodules; i++) {
        const struct mh_module *m = gen->modules[i];
        struct json_object *o = json_object_new_object(), *stores = json_object_new_array();
        size_t nroutes = 0, nws = 0;

        for (size_t j = 0; j < gen->ntargets; j++) {
            if (gen->targets[j].module == m) {
                nroutes += gen->targets[j].ws == NULL;
                nws += gen->targets[j].ws != NULL;
            }
        }
        (void)snprintf(abi, sizeof(abi), "%u.%u", (unsigned)m->def.abi_major,
                       (unsigned)m->def.abi_minor);
        json_object_object_add(o, "name", jstr(m->name));
        json_object_object_add(o, "module", jstr(m->def.name));
        json_object_object_add(o, "version", jstr(m->def.version));
        json_object_object_add(o, "file", jstr(m->path));
        json_object_object_add(o, "inode", json_object_new_uint64(mh_module_inode(m)));
        json_object_object_add(o, "abi", json_object_new_string(abi));
        json_object_object_add(o, "generation", json_object_new_int64(gen->id));
        json_object_object_add(o, "initialized", json_object_new_boolean(m->initialized));
        json_object_object_add(o, "routes", json_object_new_int64((int64_t)nroutes));
        json_object_object_add(o, "websocket_endpoints", json_object_new_int64((int64_t)nws));
        for (size_t j = 0; j < m->nstores; j++)
            json_object_array_add(stores, jstr(m->stores[j]->name));
        json_object_object_add(o, "stores", stores);
        json_object_array_add(arr, o);
    }
    reply_json(req, arr);
}

static void routes(struct mh_req *req, const struct mh_gen *gen)
{
    struct json_object *arr = json_object_new_array();

    for (size_t i = 0; i < gen->ntargets; i++) {
        const struct mh_route_target *t = &gen->targets[i];
        struct json_object *o = json_object_new_object();
        char where[512];

        json_object_object_add(o, "method", jstr(t->ws ? "GET" : t->conf->method));
        json_object_object_add(o, "path", jstr(t->ws ? t->ws->path : t->conf->path));
        json_object_object_add(o, "module", jstr(t->module->name));
        if (t->ws) {
            json_object_object_add(o, "websocket", json_object_new_boolean(true));
            json_object_object_add(o, "on_message", jstr(t->ws->on_message));
            (void)snprintf(where, sizeof(where), "%s:%d", t->ws->file, t->ws->line);
        } else {
            json_object_object_add(o, "handler", jstr(t->handler->name));
            json_object_object_add(
                o, "blocking",
                json_object_new_boolean((t->handler->flags & MH_HANDLER_BLOCKING) != 0));
            json_object_object_add(o, "timeout_ms", json_object_new_int64(t->timeout_ms));
            (void)snprintf(where, sizeof(where), "%s:%d", t->conf->file, t->conf->line);
        }
        json_object_object_add(o, "defined_at", json_object_new_string(where));
        json_object_array_add(arr, o);
    }
    reply_json(req, arr);
}

static void generations(struct mh_req *req, struct mh_admin *a, const struct mh_gen *gen)
{
    struct json_object *arr = json_object_new_array();

    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->ngens; i++) {
        const struct mh_admin_gen *g = &a->gens[i];
        struct json_object *o = json_object_new_object();

        json_object_object_add(o, "id", json_object_new_int64(g->id));
        json_object_object_add(o, "state",
                               json_object_new_string(g->current ? "serving" : "draining"));
        if (!g->current)
            json_object_object_add(o, "references", json_object_new_int(g->refs));
        json_object_object_add(o, "modules", json_object_new_int64((int64_t)g->nmodules));
        json_object_object_add(o, "routes", json_object_new_int64((int64_t)g->nroutes));
        if (!g->current)
            json_object_object_add(o, "drain_left_ms", json_object_new_int64(g->drain_left_ms));
        json_object_array_add(arr, o);
    }
    pthread_mutex_unlock(&a->mu);
    if (json_object_array_length(arr) == 0) { /* before the first snapshot */
        struct json_object *o = json_object_new_object();

        json_object_object_add(o, "id", json_object_new_int64(gen->id));
        json_object_object_add(o, "state", json_object_new_string("serving"));
        json_object_object_add(o, "modules", json_object_new_int64((int64_t)gen->nmodules));
        json_object_object_add(o, "routes", json_object_new_int64((int64_t)gen->ntargets));
        json_object_array_add(arr, o);
    }
    reply_json(req, arr);
}

/* --- /readyz: every store answers a probe within the deadline, and no drain --- */

#define PROBE_KEY "modhost:readyz"

struct probe {
    struct mh_req *req;
    struct event *timer;
    const struct mh_gen *gen; /* the request holds a reference */
    long long timeout_ms;
    size_t n;
    _Atomic int *rc; /* per store: 1 while unanswered, else the store's status */
    bool answered;
};

static void probe_work(void *arg)
{
    struct probe *p = arg;

    for (size_t i = 0; i < p->n; i++) {
        struct mh_value v;
        enum mh_status rc =
            mh_store_get_impl(p->gen->stores[i], PROBE_KEY, sizeof(PROBE_KEY) - 1, &v);

        mh_value_free_impl(&v);
        atomic_store(&p->rc[i], rc == MH_E_NOTFOUND ? MH_OK : (int)rc);
    }
}

/* Replies with what is known now: 200 if every store answered well, else 503 naming them. */
static void probe_answer(struct probe *p)
{
    struct mh_buf names = {0};
    size_t bad = 0;

    if (p->answered)
        return;
    p->answered = true;
    for (size_t i = 0; i < p->n; i++) {
        int rc = atomic_load(&p->rc[i]);

        if (rc == MH_OK)
            continue;
        mh_buf_printf(&names, "%s%s (%s)", bad++ ? ", " : "", p->gen->stores[i]->name,
                      rc == 1 ? "no answer in time" : mh_status_str((enum mh_status)rc));
    }
    if (bad) {
        mh_buf_add(&names, "", 1);
        mh_resp_header_impl(p->req, "Cache-Control", "no-store");
        mh_reply_problem_impl(p->req, 503, NULL, "not ready: store%s %s", bad > 1 ? "s" : "",
                              names.data);
    } else {
        mh_resp_header_impl(p->req, "Cache-Control", "no-store");
        mh_reply_impl(p->req, 200, "text/plain; charset=utf-8", "ready\n", 6);
    }
    mh_buf_cleanup(&names);
    mh_req_answer(p->req);
}

static void probe_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    probe_answer(arg);
}

static void probe_done(struct mh_req *req, void *arg, enum mh_status st)
{
    struct probe *p = arg;

    (void)req;
    (void)st;
    probe_answer(p);
    event_free(p->timer);
    free(p->rc);
    free(p);
}

static void readyz(struct mh_req *req, struct mh_admin *a, struct mh_loop *loop)
{
    const struct mh_gen *gen = loop->gen;
    struct probe *p;
    struct timeval tv;
    enum mh_status rc;

    if (loop->draining || atomic_load(&a->draining)) {
        mh_resp_header_impl(req, "Cache-Control", "no-store");
        mh_reply_problem_impl(req, 503, NULL, "not ready: the server is draining");
        mh_req_answer(req);
        return;
    }
    if (gen->nstores == 0) {
        mh_resp_header_impl(req, "Cache-Control", "no-store");
        mh_reply_impl(req, 200, "text/plain; charset=utf-8", "ready\n", 6);
        mh_req_answer(req);
        return;
    }
    p = mh_xcalloc(1, sizeof(*p));
    p->req = req;
    p->gen = gen;
    p->n = gen->nstores;
    p->timeout_ms = atomic_load(&a->probe_timeout_ms);
    p->rc = mh_xcalloc(p->n, sizeof(*p->rc));
    for (size_t i = 0; i < p->n; i++)
        atomic_init(&p->rc[i], 1);
    rc = mh_req_task_impl(req, probe_work, probe_done, p);
    if (rc != MH_OK) {
        free(p->rc);
        free(p);
        mh_resp_header_impl(req, "Cache-Control", "no-store");
        mh_reply_problem_impl(req, 503, NULL,
                              "not ready: the worker pool cannot take the "
                              "store probe (%s)",
                              mh_status_str(rc));
        mh_req_answer(req);
        return;
    }
    mh_req_wait(req);
    p->timer = evtimer_new(loop->base, probe_timeout, p);
    if (!p->timer)
        abort();
    tv.tv_sec = (time_t)(p->timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(p->timeout_ms % 1000) * 1000;
    evtimer_add(p->timer, &tv);
}

/* --- Dispatch --- */

/* With several worker processes, each pins on the board (about once a second) a snapshot of
 * its /metrics text and its /status.json, separated by a NUL byte; whichever worker answers
 * merges its own current numbers with the others' snapshots. */
typedef void (*render_fn)(struct mh_admin *a, struct mh_loop *loop, struct mh_buf *b);
typedef void (*merge_fn)(const struct mh_prom_text *texts, size_t n, struct mh_buf *out);

/* Worker @p proc's part @p part (0: metrics, 1: status) of its snapshot into @p text. */
static bool snapshot_part(unsigned proc, int part, struct mh_buf *buf, struct mh_prom_text *text)
{
    const char *nul;

    buf->len = 0; /* what a failed read of another worker left */
    if (!mh_board_read(proc, buf))
        return false;
    nul = memchr(buf->data, '\0', buf->len);
    if (part == 0) {
        *text = (struct mh_prom_text){buf->data, nul ? (size_t)(nul - buf->data) : buf->len};
        return true;
    }
    if (!nul)
        return false;
    *text = (struct mh_prom_text){nul + 1, buf->len - (size_t)(nul + 1 - buf->data)};
    return true;
}

static void every_worker(struct mh_admin *a, struct mh_loop *loop, struct mh_buf *b,
                         render_fn render, int part, merge_fn merge)
{
    unsigned n = mh_board_nprocs(), self = mh_board_self(), k = 1;
    struct mh_buf *bufs;
    struct mh_prom_text *views;

    if (!mh_board_active()) {
        render(a, loop, b);
        return;
    }
    bufs = mh_xcalloc(n, sizeof(*bufs));
    views = mh_xcalloc(n, sizeof(*views));
    render(a, loop, &bufs[0]);
    views[0] = (struct mh_prom_text){bufs[0].data, bufs[0].len};
    for (unsigned p = 0; p < n; p++) {
        if (p != self && snapshot_part(p, part, &bufs[k], &views[k]))
            k++;
    }
    merge(views, k, b);
    for (unsigned i = 0; i < n; i++)
        mh_buf_cleanup(&bufs[i]);
    free(bufs);
    free(views);
}

void mh_admin_publish(struct mh_admin *a, struct mh_loop *here)
{
    struct mh_buf b = {0};
    static atomic_bool warned;

    if (!a || !mh_board_active())
        return;
    mh_admin_metrics(a, here, &b);
    mh_buf_add(&b, "", 1);
    mh_admin_status_json(a, here, &b);
    if (!mh_board_publish(b.data, b.len) && !atomic_exchange(&warned, true))
        mh_warn("admin",
                "this worker's metrics and status (%zu bytes) do not fit its board slot (%u "
                "bytes): the other workers' /metrics and /status.json leave them out",
                b.len, (unsigned)MH_BOARD_SLOT);
    mh_buf_cleanup(&b);
}

void mh_admin_request(struct mh_req *req)
{
    struct mh_loop *loop = mh_req_loop(req);
    struct mh_admin *a = loop->admin;
    const char *path = mh_req_path_impl(req);
    enum mh_method m = mh_req_method_id(req);
    struct mh_buf b = {0};

    if (m != MH_METHOD_GET && m != MH_METHOD_HEAD) {
        mh_resp_header_impl(req, "Allow", "GET, HEAD");
        mh_reply_problem_impl(req, 405, NULL, "the admin listener answers only GET and HEAD");
        mh_req_answer(req);
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        mh_buf_add(&b, "ok\n", 3);
        reply_buf(req, 200, "text/plain; charset=utf-8", &b);
    } else if (strcmp(path, "/readyz") == 0) {
        readyz(req, a, loop);
    } else if (strcmp(path, "/metrics") == 0) {
        every_worker(a, loop, &b, mh_admin_metrics, 0, mh_prom_merge);
        reply_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
    } else if (strcmp(path, "/status.json") == 0) {
        every_worker(a, loop, &b, mh_admin_status_json, 1, mh_status_merge);
        reply_buf(req, 200, "application/json", &b);
    } else if (strcmp(path, "/modules") == 0) {
        modules(req, loop->gen);
    } else if (strcmp(path, "/routes") == 0) {
        routes(req, loop->gen);
    } else if (strcmp(path, "/generations") == 0) {
        generations(req, a, loop->gen);
    } else if (strcmp(path, "/") == 0) {
        mh_buf_add(&b, mh_admin_page, strlen(mh_admin_page));
        reply_buf(req, 200, "text/html; charset=utf-8", &b);
    } else {
        mh_reply_problem_impl(req, 404, NULL,
                              "no admin page %s (try /, /healthz, /readyz, /metrics, "
                              "/modules, /routes, /generations, /status.json)",
                              path);
        mh_req_answer(req);
    }
}
