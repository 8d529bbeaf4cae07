/*
 * Counters for /metrics. Every counter has one writer (the loop thread that owns it, or the
 * few cold paths that say otherwise) and is read by the admin listener from any thread. The
 * writer adds with a relaxed load and store, not a read-modify-write: no lock and no bus-locked
 * instruction on the request path, and a reader never sees a torn value. Gauges are the
 * difference of two such counters (opened - closed), summed over the loops when read.
 */
#ifndef MH_METRICS_H
#define MH_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Adds @p n to a counter only the calling thread writes. */
static inline void mh_stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/** Adds @p n to a counter several threads write (cold paths only: stores, publishes). */
static inline void mh_stat_add_shared(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t mh_stat_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit((_Atomic uint64_t *)(uintptr_t)c, memory_order_relaxed);
}

/* Latency buckets (upper bounds in microseconds) of every histogram; the last is +Inf. */
#define MH_LATENCY_BUCKETS 16
extern const uint64_t mh_latency_bounds_us[MH_LATENCY_BUCKETS - 1];

struct mh_histogram {
    _Atomic uint64_t buckets[MH_LATENCY_BUCKETS]; /* not cumulative: one bucket per value */
    _Atomic uint64_t sum_us;
};

/** Records @p us in @p h (the caller is its only writer, or @p shared). */
void mh_histogram_add(struct mh_histogram *h, uint64_t us, bool shared);
/** Adds @p h into @p into (both read without a lock; @p into is the caller's). */
void mh_histogram_merge(struct mh_histogram *into, const struct mh_histogram *h);
/** The @p q quantile (0..1) in microseconds, by linear interpolation inside its bucket;
 *  0 when empty. */
double mh_histogram_quantile(const struct mh_histogram *h, double q);
/** The same over plain bucket counts (@p counts[MH_LATENCY_BUCKETS], not cumulative). */
double mh_buckets_quantile(const uint64_t *counts, double q);
uint64_t mh_histogram_count(const struct mh_histogram *h);

enum mh_status_class {
    MH_CLASS_1XX,
    MH_CLASS_2XX,
    MH_CLASS_3XX,
    MH_CLASS_4XX,
    MH_CLASS_5XX,
    MH_CLASS_COUNT
};

/*
 * One route (or WebSocket endpoint) of one module instance, as one loop saw it. Entries are
 * keyed by module instance, method and path template, so they outlive generations: a reload
 * that keeps a route keeps counting where it was. Created and written by the loop's thread,
 * published with a release store on the loop's list; freed only after the loop stopped.
 */
struct mh_route_stats {
    struct mh_route_stats *next;
    char *module; /* instance name; "" for requests no route took */
    char *method; /* the route's method; "" for those */
    char *path;   /* path template; "" for those */
    bool is_ws;

    _Atomic uint64_t by_class[MH_CLASS_COUNT]; /* answers by status class */
    _Atomic uint64_t timeouts;                 /* 504: the deadline passed */
    _Atomic uint64_t cancelled;                /* 499: the client went away */
    _Atomic uint64_t errors;                   /* handlers that failed (5xx from the core) */
    _Atomic uint64_t loop_ns, pool_ns;         /* time inside the handler, on a loop / a worker */
    struct mh_histogram latency;

    /* WebSocket endpoints. */
    _Atomic uint64_t ws_opened, ws_closed, ws_slow_closes;
    _Atomic uint64_t ws_msgs_in, ws_msgs_out, ws_bytes_in, ws_bytes_out;
};

/** Finds or adds the entry (@p module, @p method, @p path) on list @p head. Thread: the list's
 *  owner. */
struct mh_route_stats *mh_route_stats_get(_Atomic(struct mh_route_stats *) *head,
                                          const char *module, const char *method, const char *path,
                                          bool is_ws);
/** Frees a list (its owner stopped). */
void mh_route_stats_free(_Atomic(struct mh_route_stats *) *head);

#endif
