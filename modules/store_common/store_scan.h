/*
 * What the first-party store drivers share for scans: records copied out in batches, so that
 * the callback runs with no lock held and no connection taken (it may call the store), and
 * the paging loop over such batches. Header-only: each driver is its own module file.
 */
#ifndef MH_STORE_SCAN_H
#define MH_STORE_SCAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "modhost/sdk.h"

#define SCAN_BATCH_RECORDS 64
#define SCAN_BATCH_BYTES   ((size_t)1024 * 1024)

struct rec {
    uint64_t version;
    size_t klen;
    size_t vlen;
    unsigned char *key; /* key bytes, then value bytes: one allocation */
};

struct batch {
    struct rec recs[SCAN_BATCH_RECORDS];
    size_t n;
    bool is_last; /* nothing after the batch matches */
};

static inline void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->recs[i].key);
    b->n = 0;
}

/* Byte order; on a common prefix the shorter key sorts first. */
static inline int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* Fills @p b with up to @p want records with @p prefix from @p start on (after it if
 * @p exclusive); sets is_last when nothing further matches. */
typedef enum mh_status (*scan_collect_fn)(void *db, const void *prefix, size_t plen,
                                          const void *start, size_t slen, bool exclusive,
                                          size_t want, struct batch *b);

/* The driver's scan: pages through batches from @p collect and hands each record to @p fn. */
static inline enum mh_status store_scan_pages(void *db, scan_collect_fn collect, const void *prefix,
                                              size_t plen, const void *after, size_t alen,
                                              size_t limit, mh_scan_fn fn, void *fn_arg)
{
    unsigned char cursor[MH_STORE_MAX_KEY];
    struct batch *b = malloc(sizeof(*b));
    enum mh_status rc = MH_OK;
    bool exclusive = true;
    bool stop = false;
    size_t clen;

    if (!b) {
        mh_store_set_error("out of memory starting a scan");
        return MH_E_NOMEM;
    }
    b->n = 0;
    /* Start after the cursor, unless it sorts before the prefix: then at the prefix. */
    if (alen == 0 || key_cmp(after, alen, prefix, plen) < 0) {
        after = prefix;
        alen = plen;
        exclusive = false;
    }
    memcpy(cursor, after, alen);
    clen = alen;
    while (limit > 0 && !stop) {
        rc = collect(db, prefix, plen, cursor, clen, exclusive, limit, b);
        if (rc != MH_OK)
            break;
        for (size_t i = 0; i < b->n && !stop; i++) {
            const struct rec *r = &b->recs[i];

            stop = fn(r->key, r->klen, r->key + r->klen, r->vlen, r->version, fn_arg) != 0;
        }
        limit -= b->n;
        if (b->is_last || b->n == 0 || b->recs[b->n - 1].klen > sizeof(cursor))
            break;
        clen = b->recs[b->n - 1].klen;
        memcpy(cursor, b->recs[b->n - 1].key, clen);
        exclusive = true;
        batch_clear(b);
    }
    batch_clear(b);
    free(b);
    return rc;
}

#endif
