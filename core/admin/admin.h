/*
 * The admin listener: /healthz, /readyz, /metrics (Prometheus text), /modules, /routes,
 * /generations and /status.json as JSON, and the status page at /. Served by the same loops
 * as the application, on its own address with its own small connection cap; its requests never
 * reach a module and are never counted in the metrics. It reads the loops' counters without
 * locks (base/metrics.h) and what only the main thread knows (reloads, generations) from a
 * snapshot the server keeps current under a mutex.
 */
#ifndef MH_ADMIN_H
#define MH_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

struct mh_loop;
struct mh_pool;
struct mh_req;

/* A generation as /generations shows it. */
struct mh_admin_gen {
    unsigned id;
    bool current;
    int refs; /* retired ones: requests, WebSockets and tasks still on it */
    size_t nmodules, nroutes;
    long long drain_left_ms; /* retired ones: until its WebSockets are closed; 0 past it */
};

struct mh_admin;

/** @p loops (borrowed; they outlive the admin) and the pool. Thread: main, before serving. */
struct mh_admin *mh_admin_new(struct mh_loop **loops, size_t nloops, struct mh_pool *pool,
                              long long probe_timeout_ms);
void mh_admin_free(struct mh_admin *a);

/** The server reloaded (@p ok) or failed to. Thread: main. */
void mh_admin_note_reload(struct mh_admin *a, bool ok);
/** The live generations now (copied). Thread: main. */
void mh_admin_set_generations(struct mh_admin *a, const struct mh_admin_gen *gens, size_t n);
/** The server is stopping: /readyz answers 503 from now on. Thread: any. */
void mh_admin_set_draining(struct mh_admin *a);
void mh_admin_set_probe_timeout(struct mh_admin *a, long long ms);

/** The admin listener's request handler (struct mh_service.on_request). Thread: a loop's. */
void mh_admin_request(struct mh_req *req);

/* --- metrics.c --- */

/** Appends the Prometheus text exposition of everything the server counts to @p b. */
void mh_admin_metrics(struct mh_admin *a, struct mh_loop *here, struct mh_buf *b);
/** With several worker processes: pins this worker's /metrics text on the board for the
 *  others to merge (called about once a second on one loop). Otherwise does nothing. */
void mh_admin_publish(struct mh_admin *a, struct mh_loop *here);
/** Appends the status page's JSON (totals, per module, latency buckets) to @p b. */
void mh_admin_status_json(struct mh_admin *a, struct mh_loop *here, struct mh_buf *b);

/* --- page.c --- */

extern const char mh_admin_page[];

/* --- shared by admin.c and metrics.c --- */

struct mh_admin_view {
    unsigned reloads_ok, reloads_failed;
    size_t ngens;
    double uptime_s;
};
void mh_admin_view(struct mh_admin *a, struct mh_admin_view *v);
struct mh_loop **mh_admin_loops(struct mh_admin *a, size_t *n);
struct mh_pool *mh_admin_pool(struct mh_admin *a);

#endif
