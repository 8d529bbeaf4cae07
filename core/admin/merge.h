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

#endif
