/* Counters, histograms and per-route entries for /metrics (see metrics.h). */
#include "base/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

const uint64_t mh_latency_bounds_us[MH_LATENCY_BUCKETS - 1] = {
    100,   250,    500,    1000,   2500,    5000,    10000,    25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 10000000,
};

void mh_histogram_add(struct mh_histogram *h, uint64_t us, bool shared)
{
    size_t i = 0;

    while (i < MH_LATENCY_BUCKETS - 1 && us > mh_latency_bounds_us[i])
        i++;
    if (shared) {
        mh_stat_add_shared(&h->buckets[i], 1);
        mh_stat_add_shared(&h->sum_us, us);
    } else {
        mh_stat_add(&h->buckets[i], 1);
        mh_stat_add(&h->sum_us, us);
    }
}

void mh_histogram_merge(struct mh_histogram *into, const struct mh_histogram *h)
{
    for (size_t i = 0; i < MH_LATENCY_BUCKETS; i++)
        mh_stat_add(&into->buckets[i], mh_stat_get(&h->buckets[i]));
    mh_stat_add(&into->sum_us, mh_stat_get(&h->sum_us));
}

uint64_t mh_histogram_count(const struct mh_histogram *h)
{
    uint64_t n = 0;

    for (size_t i = 0; i < MH_LATENCY_BUCKETS; i++)
        n += mh_stat_get(&h->buckets[i]);
    return n;
}

double mh_buckets_quantile(const uint64_t *counts, double q)
{
    uint64_t total = 0, seen = 0;
    double rank;

    for (size_t i = 0; i < MH_LATENCY_BUCKETS; i++)
        total += counts[i];
    if (total == 0)
        return 0;
    rank = q * (double)total;
    for (size_t i = 0; i < MH_LATENCY_BUCKETS; i++) {
        uint64_t n = counts[i];
        double lo = i ? (double)mh_latency_bounds_us[i - 1] : 0;
        double hi = i < MH_LATENCY_BUCKETS - 1 ? (double)mh_latency_bounds_us[i] : lo;

        if (n && (double)(seen + n) >= rank)
            return lo + (hi - lo) * ((rank - (double)seen) / (double)n);
        seen += n;
    }
    return (double)mh_latency_bounds_us[MH_LATENCY_BUCKETS - 2];
}

double mh_histogram_quantile(const struct mh_histogram *h, double q)
{
    uint64_t counts[MH_LATENCY_BUCKETS];

    for (size_t i = 0; i < MH_LATENCY_BUCKETS; i++)
        counts[i] = mh_stat_get(&h->buckets[i]);
    return mh_buckets_quantile(counts, q);
}

struct mh_route_stats *mh_route_stats_get(_Atomic(struct mh_route_stats *) *head,
                                          const char *module, const char *method, const char *path,
                                          bool is_ws)
{
    struct mh_route_stats *first = atomic_load_explicit(head, memory_order_relaxed), *e;

    for (e = first; e; e = e->next) {
        if (e->is_ws == is_ws && strcmp(e->path, path) == 0 && strcmp(e->method, method) == 0 &&
            strcmp(e->module, module) == 0)
            return e;
    }
    e = mh_xcalloc(1, sizeof(*e));
    e->module = mh_xstrdup(module);
    e->method = mh_xstrdup(method);
    e->path = mh_xstrdup(path);
    e->is_ws = is_ws;
    e->next = first;
    atomic_store_explicit(head, e, memory_order_release); /* readers see it whole */
    return e;
}

void mh_route_stats_free(_Atomic(struct mh_route_stats *) *head)
{
    struct mh_route_stats *e = atomic_load(head);

    while (e) {
        struct mh_route_stats *next = e->next;

        free(e->module);
        free(e->method);
        free(e->path);
        free(e);
        e = next;
    }
    atomic_store(head, NULL);
}
