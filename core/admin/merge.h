/*
 * Several worker processes' Prometheus text (exposition format 0.0.4) merged into one: the
 * admin listener of a server with `processes > 1` answers /metrics for all of them.
 *
 * Contract: each input is what mh_admin_metrics renders (HELP and TYPE lines before a family's
 * samples, one sample a line, "SERIES VALUE"). A series present in several inputs becomes one
 * sample: counters and histograms add up; gauges add up too (connections, in-flight requests,
 * busy workers are per process) except the ones every process reports alike (build info,
 * uptime, generation, generations live, modules loaded), which take the largest value; and
 * modhost_reloads_total, which every worker counts for the same reload, takes the largest.
 * Families and series keep the order of their first appearance, so the output is valid
 * exposition text whenever the inputs are. Lines that fit none of these shapes are dropped.
 * Pure: no I/O, no global state.
 */
#ifndef MH_ADMIN_MERGE_H
#define MH_ADMIN_MERGE_H

#include <stddef.h>

#include "base/buf.h"

struct mh_prom_text {
    const char *data;
    size_t len;
};

/** Appends the merge of @p n texts to @p out. */
void mh_prom_merge(const struct mh_prom_text *texts, size_t n, struct mh_buf *out);

/**
 * Appends the merge of @p n workers' /status.json documents (what mh_admin_status_json
 * renders) to @p out. The first document that parses is the base (pass the answering
 * worker's first): its version, pid and bounds stand. uptime, generation, generations live
 * and the reload counts take the largest value (every worker reports the same ones); per
 * module (matched by name) and in the totals, the counts and the latency buckets add up
 * (a module's routes count, the same in every worker, does not), `quarantined` is true if
 * any says so, and p50_us and p99_us are computed again from the summed buckets. A module
 * that only some workers have loaded is taken as they report it. Documents that do not parse
 * are left out; `workers` says how many were merged. Pure: no I/O, no global state.
 */
void mh_status_merge(const struct mh_prom_text *docs, size_t n, struct mh_buf *out);

#endif
