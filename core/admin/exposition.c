/*
 * /metrics and /status.json: the loops' counters summed at read time, the pool's, the stores'
 * and the server's, in the Prometheus text exposition format (version 0.0.4) or as JSON.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "base/crash.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "base/pool.h"
#include "http/http_scan.h"
#include "http/tls.h"
#include "mod/gen.h"
#include "mod/loader.h"
#include "mod/store.h"
#include "ws/pubsub.h"

static const char *const class_names[MH_CLASS_COUNT] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

/* Every route of the serving generation (so quiet ones show as zeros), plus every entry any
 * loop has, summed per (module, method, path). The caller frees the list. */
static void gather_routes(struct mh_admin *a, const struct mh_gen *gen,
                          _Atomic(struct mh_route_stats *) *out)
{
    struct mh_loop **loops;
    size_t nloops;

    atomic_init(out, NULL);
    loops = mh_admin_loops(a, &nloops);
    for (size_t i = gen->ntargets; i-- > 0;) {
        const struct mh_route_target *t = &gen->targets[i];

        mh_route_stats_get(out, t->module->name, t->ws ? "GET" : t->conf->method,
                           t->ws ? t->ws->path : t->conf->path, t->ws != NULL);
    }
    for (size_t l = 0; l < nloops; l++) {
        for (const struct mh_route_stats *e =
                 atomic_load_explicit(&loops[l]->route_stats, memory_order_acquire);
             e; e = e->next) {
            struct mh_route_stats *s =
                mh_route_stats_get(out, e->module, e->method, e->path, e->is_ws);

            for (int c = 0; c < MH_CLASS_COUNT; c++)
                mh_stat_add(&s->by_class[c], mh_stat_get(&e->by_class[c]));
            mh_stat_add(&s->timeouts, mh_stat_get(&e->timeouts));
            mh_stat_add(&s->cancelled, mh_stat_get(&e->cancelled));
            mh_stat_add(&s->errors, mh_stat_get(&e->errors));
            mh_stat_add(&s->loop_ns, mh_stat_get(&e->loop_ns));
            mh_stat_add(&s->pool_ns, mh_stat_get(&e->pool_ns));
            mh_histogram_merge(&s->latency, &e->latency);
            mh_stat_add(&s->ws_opened, mh_stat_get(&e->ws_opened));
            mh_stat_add(&s->ws_closed, mh_stat_get(&e->ws_closed));
            mh_stat_add(&s->ws_slow_closes, mh_stat_get(&e->ws_slow_closes));
            mh_stat_add(&s->ws_msgs_in, mh_stat_get(&e->ws_msgs_in));
            mh_stat_add(&s->ws_msgs_out, mh_stat_get(&e->ws_msgs_out));
            mh_stat_add(&s->ws_bytes_in, mh_stat_get(&e->ws_bytes_in));
            mh_stat_add(&s->ws_bytes_out, mh_stat_get(&e->ws_bytes_out));
        }
    }
}

struct totals {
    uint64_t accepted, closed, refused_cap, requests, answered, bytes_in, bytes_out;
    uint64_t refused[MH_LOOP_REFUSALS];
    uint64_t ws_opened, ws_closed, joins, leaves;
};

static void sum_loops(struct mh_admin *a, struct totals *t)
{
    size_t n;
    struct mh_loop **loops = mh_admin_loops(a, &n);

    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        const struct mh_loop_stats *s = &loops[i]->stats;

        t->accepted += mh_stat_get(&s->accepted);
        t->closed += mh_stat_get(&s->closed);
        t->refused_cap += mh_stat_get(&s->refused_cap);
        t->requests += mh_stat_get(&s->requests);
        t->answered += mh_stat_get(&s->answered);
        t->bytes_in += mh_stat_get(&s->bytes_in);
        t->bytes_out += mh_stat_get(&s->bytes_out);
        for (int r = 0; r < MH_LOOP_REFUSALS; r++)
            t->refused[r] += mh_stat_get(&s->refused[r]);
        t->ws_opened += mh_stat_get(&s->ws_opened);
        t->ws_closed += mh_stat_get(&s->ws_closed);
        t->joins += mh_stat_get(&s->channel_joins);
        t->leaves += mh_stat_get(&s->channel_leaves);
    }
}

static uint64_t diff(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0; /* summed without a lock: a gauge may be read mid-change */
}

/* --- Prometheus text --- */

static void label(struct mh_buf *b, const char *name, const char *value, bool first)
{
    mh_buf_printf(b, "%s%s=\"", first ? "" : ",", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            mh_buf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            mh_buf_add(b, "\\n", 2);
        else
            mh_buf_add(b, p, 1);
    }
    mh_buf_add(b, "\"", 1);
}

static void family(struct mh_buf *b, const char *name, const char *type, const char *help)
{
    mh_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void route_labels(struct mh_buf *b, const struct mh_route_stats *e, const char *what)
{
    label(b, "module", e->module, true);
    label(b, what, e->path, false);
    if (!e->is_ws)
        label(b, "method", e->method, false);
}

static void histogram(struct mh_buf *b, const char *name, const struct mh_histogram *h,
                      void (*labels)(struct mh_buf *, const void *), const void *arg)
{
    uint64_t cum = 0;

    for (int i = 0; i < MH_LATENCY_BUCKETS; i++) {
        cum += mh_stat_get(&h->buckets[i]);
        mh_buf_printf(b, "%s_bucket{", name);
        if (labels) {
            labels(b, arg);
            mh_buf_add(b, ",", 1);
        }
        if (i < MH_LATENCY_BUCKETS - 1)
            mh_buf_printf(b, "le=\"%g\"} %llu\n", (double)mh_latency_bounds_us[i] / 1e6,
                          (unsigned long long)cum);
        else
            mh_buf_printf(b, "le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    mh_buf_printf(b, "%s_sum", name);
    if (labels) {
        mh_buf_add(b, "{", 1);
        labels(b, arg);
        mh_buf_add(b, "}", 1);
    }
    mh_buf_printf(b, " %.6f\n%s_count", (double)mh_stat_get(&h->sum_us) / 1e6, name);
    if (labels) {
        mh_buf_add(b, "{", 1);
        labels(b, arg);
        mh_buf_add(b, "}", 1);
    }
    mh_buf_printf(b, " %llu\n", (unsigned long long)cum);
}

static void http_route_labels(struct mh_buf *b, const void *arg)
{
    route_labels(b, arg, "route");
}

static void store_labels(struct mh_buf *b, const void *arg)
{
    const struct mh_store *st = arg;

    label(b, "store", st->name, true);
    label(b, "driver", st->driver->name, false);
}

/* Every reason, zeros too (and on a server without a TLS listener), so that a rate over the
 * series never starts from a missing sample. */
static void tls_failures(struct mh_buf *b)
{
    uint64_t n[MH_TLS_FAIL_COUNT];

    mh_tls_failure_counts(n);
    family(b, "modhost_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed or were refused on a TLS listener, by reason.");
    for (int f = 0; f < MH_TLS_FAIL_COUNT; f++) {
        mh_buf_add(b, "modhost_tls_handshake_failures_total{", 37);
        label(b, "reason", mh_tls_failure_name((enum mh_tls_failure)f), true);
        mh_buf_printf(b, "} %llu\n", (unsigned long long)n[f]);
    }
}

/* One counter line per route entry (HTTP ones when !ws, WebSocket endpoints when ws). */
#define PER_ROUTE(b, list, ws, name, field)                          \
    for (const struct mh_route_stats *e = (list); e; e = e->next) {  \
        if (e->is_ws != (ws))                                        \
            continue;                                                \
        mh_buf_printf((b), "%s{", (name));                           \
        route_labels((b), e, (ws) ? "endpoint" : "route");           \
        mh_buf_printf((b), "} %llu\n", (unsigned long long)(field)); \
    }

/* Requests per route: counts by status class, latency, handler failures and time. */
static void metrics_requests(struct mh_buf *b, const struct mh_route_stats *routes)
{
    family(b, "modhost_requests_total", "counter",
           "Answered requests by module, route template, method and status class (module and "
           "route empty: no route took the request).");
    for (const struct mh_route_stats *e = routes; e; e = e->next) {
        for (int c = 0; c < MH_CLASS_COUNT; c++) {
            if (e->is_ws && c != 0 && mh_stat_get(&e->by_class[c]) == 0)
                continue;
            mh_buf_add(b, "modhost_requests_total{", 23);
            route_labels(b, e, "route");
            if (e->is_ws)
                label(b, "method", "GET", false);
            label(b, "class", class_names[c], false);
            mh_buf_printf(b, "} %llu\n", (unsigned long long)mh_stat_get(&e->by_class[c]));
        }
    }
    family(b, "modhost_request_duration_seconds", "histogram",
           "Time from reading a request to queueing its answer, per route.");
    for (const struct mh_route_stats *e = routes; e; e = e->next) {
        if (!e->is_ws)
            histogram(b, "modhost_request_duration_seconds", &e->latency, http_route_labels, e);
    }
    family(b, "modhost_handler_errors_total", "counter",
           "Handlers that failed or returned without a reply (answered 5xx by the core).");
    PER_ROUTE(b, routes, false, "modhost_handler_errors_total", mh_stat_get(&e->errors))
    family(b, "modhost_handler_seconds_total", "counter",
           "Time spent inside the route's handler, on a loop thread (where=\"loop\") or on a "
           "worker (where=\"pool\"): what each module costs the server.");
    for (const struct mh_route_stats *e = routes; e; e = e->next) {
        static const char *const where[] = {"loop", "pool"};

        if (e->is_ws)
            continue;
        for (int w = 0; w < 2; w++) {
            uint64_t ns = mh_stat_get(w ? &e->pool_ns : &e->loop_ns);

            mh_buf_printf(b, "modhost_handler_seconds_total{");
            route_labels(b, e, "route");
            mh_buf_printf(b, ",where=\"%s\"} %llu.%09llu\n", where[w],
                          (unsigned long long)(ns / 1000000000u),
                          (unsigned long long)(ns % 1000000000u));
        }
    }
    family(b, "modhost_deadline_exceeded_total", "counter",
           "Requests answered 504 because the route's deadline passed.");
    PER_ROUTE(b, routes, false, "modhost_deadline_exceeded_total", mh_stat_get(&e->timeouts))
    family(b, "modhost_requests_cancelled_total", "counter",
           "Requests whose client went away before the answer (logged as 499).");
    PER_ROUTE(b, routes, false, "modhost_requests_cancelled_total", mh_stat_get(&e->cancelled))
}

/* The worker pool of this process. */
static void metrics_pool(struct mh_admin *a, struct mh_buf *b)
{
    struct mh_pool_stats ps;

    mh_pool_stats(mh_admin_pool(a), &ps);
    family(b, "modhost_pool_workers", "gauge", "Worker pool threads.");
    mh_buf_printf(b, "modhost_pool_workers %zu\n", ps.workers);
    family(b, "modhost_pool_busy_workers", "gauge", "Workers running a task now.");
    mh_buf_printf(b, "modhost_pool_busy_workers %zu\n", ps.running);
    family(b, "modhost_pool_queue_depth", "gauge", "Tasks waiting for a worker.");
    mh_buf_printf(b, "modhost_pool_queue_depth %zu\n", ps.queued);
    family(b, "modhost_pool_queue_capacity", "gauge", "Tasks that may wait (server.worker_queue).");
    mh_buf_printf(b, "modhost_pool_queue_capacity %zu\n", ps.queue_max);
    family(b, "modhost_pool_tasks_total", "counter", "Tasks the workers ran.");
    mh_buf_printf(b, "modhost_pool_tasks_total %llu\n", (unsigned long long)ps.done);
    family(b, "modhost_pool_rejected_total", "counter", "Tasks refused with a full queue (503).");
    mh_buf_printf(b, "modhost_pool_rejected_total %llu\n", (unsigned long long)ps.rejected);
    family(b, "modhost_pool_queue_wait_seconds", "histogram",
           "Time a task waited in the queue before a worker took it.");
    histogram(b, "modhost_pool_queue_wait_seconds", &ps.wait, NULL, NULL);
}

/* WebSocket endpoints and channels. */
static void metrics_websocket(struct mh_buf *b, const struct mh_route_stats *routes,
                              const struct totals *t)
{
    family(b, "modhost_websocket_connections_total", "counter",
           "WebSocket connections opened, by endpoint.");
    PER_ROUTE(b, routes, true, "modhost_websocket_connections_total", mh_stat_get(&e->ws_opened))
    family(b, "modhost_websocket_connections_open", "gauge", "WebSocket connections open now.");
    PER_ROUTE(b, routes, true, "modhost_websocket_connections_open",
              diff(mh_stat_get(&e->ws_opened), mh_stat_get(&e->ws_closed)))
    family(b, "modhost_websocket_messages_total", "counter",
           "WebSocket messages by endpoint and direction (in: from clients).");
    family(b, "modhost_websocket_bytes_total", "counter",
           "WebSocket message payload bytes by endpoint and direction.");
    for (const struct mh_route_stats *e = routes; e; e = e->next) {
        if (!e->is_ws)
            continue;
        for (int d = 0; d < 2; d++) {
            mh_buf_add(b, "modhost_websocket_messages_total{", 33);
            route_labels(b, e, "endpoint");
            label(b, "direction", d ? "out" : "in", false);
            mh_buf_printf(b, "} %llu\n",
                          (unsigned long long)mh_stat_get(d ? &e->ws_msgs_out : &e->ws_msgs_in));
            mh_buf_add(b, "modhost_websocket_bytes_total{", 30);
            route_labels(b, e, "endpoint");
            label(b, "direction", d ? "out" : "in", false);
            mh_buf_printf(b, "} %llu\n",
                          (unsigned long long)mh_stat_get(d ? &e->ws_bytes_out : &e->ws_bytes_in));
        }
    }
    family(b, "modhost_websocket_slow_consumer_closes_total", "counter",
           "WebSocket connections closed (1008) for leaving too much unsent.");
    PER_ROUTE(b, routes, true, "modhost_websocket_slow_consumer_closes_total",
              mh_stat_get(&e->ws_slow_closes))
    family(b, "modhost_channel_members", "gauge", "Channel memberships of WebSocket connections.");
    mh_buf_printf(b, "modhost_channel_members %llu\n",
                  (unsigned long long)diff(t->joins, t->leaves));
    family(b, "modhost_channel_publishes_total", "counter", "Messages published on channels.");
    mh_buf_printf(b, "modhost_channel_publishes_total %llu\n",
                  (unsigned long long)mh_pubsub_publishes());
}

/* The serving generation's stores. */
static void metrics_stores(struct mh_buf *b, const struct mh_gen *gen)
{
    family(b, "modhost_store_calls_total", "counter",
           "Store calls by store, driver and operation.");
    family(b, "modhost_store_errors_total", "counter",
           "Store calls that failed (not found and conflicts are answers, not failures).");
    for (size_t i = 0; i < gen->nstores; i++) {
        const struct mh_store *st = gen->stores[i];

        for (int op = 0; op < MH_STORE_OPS; op++) {
            mh_buf_add(b, "modhost_store_calls_total{", 26);
            store_labels(b, st);
            label(b, "op", mh_store_op_names[op], false);
            mh_buf_printf(b, "} %llu\n", (unsigned long long)mh_stat_get(&st->calls[op]));
            mh_buf_add(b, "modhost_store_errors_total{", 27);
            store_labels(b, st);
            label(b, "op", mh_store_op_names[op], false);
            mh_buf_printf(b, "} %llu\n", (unsigned long long)mh_stat_get(&st->errors[op]));
        }
    }
    family(b, "modhost_store_call_duration_seconds", "histogram",
           "How long store calls took, by store and driver.");
    for (size_t i = 0; i < gen->nstores; i++)
        histogram(b, "modhost_store_call_duration_seconds", &gen->stores[i]->latency, store_labels,
                  gen->stores[i]);
}

/* Reloads, generations and modules. */
static void metrics_generations(struct mh_buf *b, const struct mh_admin_view *v,
                                const struct mh_gen *gen)
{
    family(b, "modhost_reloads_total", "counter", "Reloads by result.");
    mh_buf_printf(b, "modhost_reloads_total{result=\"ok\"} %u\n", v->reloads_ok);
    mh_buf_printf(b, "modhost_reloads_total{result=\"failed\"} %u\n", v->reloads_failed);
    family(b, "modhost_generations_live", "gauge",
           "Generations in memory: the serving one and those still draining.");
    mh_buf_printf(b, "modhost_generations_live %zu\n", v->ngens);
    family(b, "modhost_generation", "gauge", "The id of the serving generation.");
    mh_buf_printf(b, "modhost_generation %u\n", gen->id);
    family(b, "modhost_modules_loaded", "gauge", "Module instances of the serving generation.");
    mh_buf_printf(b, "modhost_modules_loaded %zu\n", gen->nmodules);
}

/* What the engine saw: bytes, connections, refusals, TLS failures. */
static void metrics_engine(struct mh_buf *b, const struct totals *t)
{
    family(b, "modhost_requests_in_flight", "gauge", "Requests read and not yet answered.");
    mh_buf_printf(b, "modhost_requests_in_flight %llu\n",
                  (unsigned long long)diff(t->requests, t->answered));
    family(b, "modhost_received_bytes_total", "counter", "Bytes read from clients.");
    mh_buf_printf(b, "modhost_received_bytes_total %llu\n", (unsigned long long)t->bytes_in);
    family(b, "modhost_sent_bytes_total", "counter", "Bytes written to clients.");
    mh_buf_printf(b, "modhost_sent_bytes_total %llu\n", (unsigned long long)t->bytes_out);
    family(b, "modhost_refusals_total", "counter",
           "Requests and connections the engine refused before any handler, by reason.");
    for (int r = 1; r < MH_REFUSE_COUNT; r++) { /* 0 is "none" */
        mh_buf_add(b, "modhost_refusals_total{", 23);
        label(b, "reason", mh_refusal_name((enum mh_refusal)r), true);
        mh_buf_printf(b, "} %llu\n", (unsigned long long)t->refused[r]);
    }
    tls_failures(b);
    family(b, "modhost_connections_accepted_total", "counter", "Client connections accepted.");
    mh_buf_printf(b, "modhost_connections_accepted_total %llu\n", (unsigned long long)t->accepted);
    family(b, "modhost_connections_open", "gauge", "Client connections open now.");
    mh_buf_printf(b, "modhost_connections_open %llu\n",
                  (unsigned long long)diff(t->accepted, t->closed));
    family(b, "modhost_connections_refused_total", "counter",
           "Connections refused (503) at limits.max_connections or max_connections_per_client.");
    mh_buf_printf(b, "modhost_connections_refused_total %llu\n",
                  (unsigned long long)t->refused_cap);
    family(b, "modhost_websocket_connections_open_all", "gauge",
           "WebSocket connections open now, all endpoints.");
    mh_buf_printf(b, "modhost_websocket_connections_open_all %llu\n",
                  (unsigned long long)diff(t->ws_opened, t->ws_closed));
}

/* Everything a page reports: the routes' numbers (list, freed by the page), the server's view
 * and the loops' totals. */
struct numbers {
    _Atomic(struct mh_route_stats *) list;
    const struct mh_route_stats *routes;
    struct mh_admin_view v;
    struct totals t;
};

static void gather(struct mh_admin *a, const struct mh_gen *gen, struct numbers *n)
{
    gather_routes(a, gen, &n->list);
    sum_loops(a, &n->t);
    mh_admin_view(a, &n->v);
    n->routes = atomic_load(&n->list);
}

void mh_admin_metrics(struct mh_admin *a, struct mh_loop *here, struct mh_buf *b)
{
    const struct mh_gen *gen = here->gen;
    struct numbers n;

    gather(a, gen, &n);

    family(b, "modhost_build_info", "gauge", "The server's version and SDK ABI.");
    mh_buf_printf(b, "modhost_build_info{version=\"%s\",abi=\"%d.%d\"} 1\n", MH_VERSION,
                  MH_ABI_MAJOR, MH_ABI_MINOR);
    family(b, "modhost_uptime_seconds", "gauge", "Seconds since the server started.");
    mh_buf_printf(b, "modhost_uptime_seconds %.3f\n", n.v.uptime_s);
    metrics_requests(b, n.routes);
    metrics_pool(a, b);
    metrics_websocket(b, n.routes, &n.t);
    metrics_stores(b, gen);
    metrics_generations(b, &n.v, gen);
    metrics_engine(b, &n.t);
    mh_route_stats_free(&n.list);
}

/* --- /status.json: per module, for the status page and `modhost status` --- */

static void json_str(struct mh_buf *b, const char *s)
{
    mh_buf_add(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            mh_buf_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            mh_buf_printf(b, "\\u%04x", (unsigned)(unsigned char)*s);
        else
            mh_buf_add(b, s, 1);
    }
    mh_buf_add(b, "\"", 1);
}

static void json_buckets(struct mh_buf *b, const struct mh_histogram *h)
{
    mh_buf_add(b, "[", 1);
    for (int i = 0; i < MH_LATENCY_BUCKETS; i++)
        mh_buf_printf(b, "%s%llu", i ? "," : "", (unsigned long long)mh_stat_get(&h->buckets[i]));
    mh_buf_add(b, "]", 1);
}

/* One module's figures: its routes summed. */
static void status_module(struct mh_buf *b, const struct mh_module *m,
                          const struct mh_route_stats *routes, bool first)
{
    struct mh_histogram lat;
    uint64_t cls[MH_CLASS_COUNT] = {0}, requests = 0, ws_open = 0, ws_msgs = 0, nroutes = 0;

    memset(&lat, 0, sizeof(lat));
    for (const struct mh_route_stats *e = routes; e; e = e->next) {
        if (strcmp(e->module, m->name) != 0)
            continue;
        nroutes++;
        for (int c = 0; c < MH_CLASS_COUNT; c++)
            cls[c] += mh_stat_get(&e->by_class[c]);
        if (!e->is_ws)
            mh_histogram_merge(&lat, &e->latency);
        ws_open += diff(mh_stat_get(&e->ws_opened), mh_stat_get(&e->ws_closed));
        ws_msgs += mh_stat_get(&e->ws_msgs_in) + mh_stat_get(&e->ws_msgs_out);
    }
    for (int c = 0; c < MH_CLASS_COUNT; c++)
        requests += cls[c];
    mh_buf_printf(b, "%s{\"name\":", first ? "" : ",");
    json_str(b, m->name);
    mh_buf_add(b, ",\"version\":", 11);
    json_str(b, m->def.version ? m->def.version : "");
    mh_buf_printf(b, ",\"quarantined\":%s", mh_crash_quarantined(m->name) ? "true" : "false");
    mh_buf_printf(b,
                  ",\"routes\":%llu,\"requests\":%llu,\"errors\":%llu,\"client_errors\":%llu,"
                  "\"ws_open\":%llu,\"ws_messages\":%llu,\"p50_us\":%.0f,\"p99_us\":%.0f,"
                  "\"latency\":",
                  (unsigned long long)nroutes, (unsigned long long)requests,
                  (unsigned long long)cls[MH_CLASS_5XX], (unsigned long long)cls[MH_CLASS_4XX],
                  (unsigned long long)ws_open, (unsigned long long)ws_msgs,
                  mh_histogram_quantile(&lat, 0.5), mh_histogram_quantile(&lat, 0.99));
    json_buckets(b, &lat);
    mh_buf_add(b, "}", 1);
}

/* The whole process: every route, the engine's totals and the pool. */
static void status_totals(struct mh_admin *a, struct mh_buf *b, const struct mh_route_stats *routes,
                          const struct totals *t)
{
    struct mh_histogram all;
    struct mh_pool_stats ps;
    uint64_t total_5xx = 0, total_req = 0;

    mh_pool_stats(mh_admin_pool(a), &ps);
    memset(&all, 0, sizeof(all));
    for (const struct mh_route_stats *e = routes; e; e = e->next) {
        if (!e->is_ws)
            mh_histogram_merge(&all, &e->latency);
        for (int c = 0; c < MH_CLASS_COUNT; c++)
            total_req += mh_stat_get(&e->by_class[c]);
        total_5xx += mh_stat_get(&e->by_class[MH_CLASS_5XX]);
    }
    mh_buf_printf(b,
                  "\"totals\":{\"requests\":%llu,\"errors\":%llu,\"in_flight\":%llu,"
                  "\"connections_open\":%llu,\"ws_open\":%llu,\"bytes_in\":%llu,"
                  "\"bytes_out\":%llu,\"pool_busy\":%zu,\"pool_queued\":%zu,"
                  "\"pool_workers\":%zu,\"p50_us\":%.0f,\"p99_us\":%.0f,\"latency\":",
                  (unsigned long long)total_req, (unsigned long long)total_5xx,
                  (unsigned long long)diff(t->requests, t->answered),
                  (unsigned long long)diff(t->accepted, t->closed),
                  (unsigned long long)diff(t->ws_opened, t->ws_closed),
                  (unsigned long long)t->bytes_in, (unsigned long long)t->bytes_out, ps.running,
                  ps.queued, ps.workers, mh_histogram_quantile(&all, 0.5),
                  mh_histogram_quantile(&all, 0.99));
    json_buckets(b, &all);
    mh_buf_add(b, "}", 1);
}

void mh_admin_status_json(struct mh_admin *a, struct mh_loop *here, struct mh_buf *b)
{
    const struct mh_gen *gen = here->gen;
    struct numbers n;

    gather(a, gen, &n);
    mh_buf_printf(b,
                  "{\"version\":\"%s\",\"pid\":%d,\"uptime_s\":%.3f,\"generation\":%u,"
                  "\"generations_live\":%zu,\"reloads_ok\":%u,\"reloads_failed\":%u,",
                  MH_VERSION, (int)getpid(), n.v.uptime_s, gen->id, n.v.ngens, n.v.reloads_ok,
                  n.v.reloads_failed);
    mh_buf_add(b, "\"bounds_us\":[", 13);
    for (int i = 0; i < MH_LATENCY_BUCKETS - 1; i++)
        mh_buf_printf(b, "%s%llu", i ? "," : "", (unsigned long long)mh_latency_bounds_us[i]);
    mh_buf_add(b, "],\"modules\":[", 13);
    for (size_t i = 0; i < gen->nmodules; i++)
        status_module(b, gen->modules[i], n.routes, i == 0);
    mh_buf_add(b, "],", 2);
    status_totals(a, b, n.routes, &n.t);
    mh_buf_add(b, "}", 1);
    mh_route_stats_free(&n.list);
}
