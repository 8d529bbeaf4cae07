/*
 * The store contract of the "postgres" driver: binary parameters, running a prepared
 * statement on a pooled connection, get, put and delete with compare-and-set, and scans in
 * key order. Connections are pg_conn.c's; the statements' text is pg_sql.c's; the paging of
 * scans is store_scan.h's.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "../store_common/store_link.h"
#include "../store_common/store_scan.h"
#include "modhost/sdk.h"
#include "store_postgres.h"

/* --- Statements --- */

static void put_be64(unsigned char *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const PGresult *r, int row, int col)
{
    const unsigned char *b = (const unsigned char *)PQgetvalue(r, row, col);
    uint64_t v = 0;

    if (PQgetlength(r, row, col) != 8)
        return 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

struct params {
    const char *values[3];
    int lengths[3];
    int formats[3];
    unsigned char num[8];
};

static void param_bytes(struct params *p, int i, const void *data, size_t len)
{
    p->values[i] = len ? data : ""; /* a NULL value would be SQL NULL */
    p->lengths[i] = (int)len;
    p->formats[i] = 1;
}

static void param_int(struct params *p, int i, uint64_t v)
{
    put_be64(p->num, v);
    p->values[i] = (const char *)p->num;
    p->lengths[i] = 8;
    p->formats[i] = 1;
}

/*
 * Runs prepared statement @p id with binary parameters and results. @return MH_OK with *out
 * (caller clears) holding tuples; or the failure (message set; the connection dropped if the
 * link failed).
 */
static enum mh_status exec(struct pg_store *s, struct conn *c, enum stmt_id id,
                           const struct params *p, int64_t deadline, const char *what,
                           PGresult **out)
{
    bool timed_out;
    PGresult *r;

    if (!PQsendQueryPrepared(c->pg, mh_pg_stmt_name[id], mh_pg_stmt_nparams[id], p->values,
                             p->lengths, p->formats, 1))
        return mh_pg_link_lost(s, c, what, false);
    r = mh_pg_await_result(c->pg, deadline, &timed_out);
    if (!r)
        return mh_pg_link_lost(s, c, what, timed_out);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return mh_pg_result_failed(s, c, r, what);
    *out = r;
    return MH_OK;
}

/* Takes a connection, runs @p id, gives the connection back. */
static enum mh_status run(struct pg_store *s, enum stmt_id id, const struct params *p,
                          const char *what, PGresult **out)
{
    int64_t deadline = link_now_ms() + s->timeout_ms;
    struct conn *c;
    enum mh_status rc = mh_pg_conn_take(s, deadline, &c);

    if (rc != MH_OK)
        return rc;
    rc = exec(s, c, id, p, deadline, what, out);
    mh_pg_conn_give(s, c);
    return rc;
}

/* --- Records --- */

enum mh_status mh_pg_get(void *arg, const void *key, size_t klen, struct mh_value *out)
{
    struct pg_store *s = arg;
    struct params p;
    PGresult *r = NULL;
    enum mh_status rc;
    size_t vlen;

    param_bytes(&p, 0, key, klen);
    rc = run(s, MH_PG_GET, &p, "cannot read", &r);
    if (rc != MH_OK)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        mh_store_set_error("no such key (%zu bytes)", klen);
        return MH_E_NOTFOUND;
    }
    vlen = (size_t)PQgetlength(r, 0, 0);
    out->data = malloc(vlen + 1);
    if (!out->data) {
        PQclear(r);
        mh_store_set_error("out of memory copying a value of %zu bytes", vlen);
        return MH_E_NOMEM;
    }
    memcpy(out->data, PQgetvalue(r, 0, 0), vlen);
    ((char *)out->data)[vlen] = '\0';
    out->len = vlen;
    out->version = get_be64(r, 0, 1);
    PQclear(r);
    return MH_OK;
}

enum mh_status mh_pg_put(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
                         uint64_t expect, uint64_t *version, int *created)
{
    struct pg_store *s = arg;
    enum stmt_id id = expect == MH_STORE_ANY      ? MH_PG_PUT_ANY
                      : expect == MH_STORE_ABSENT ? MH_PG_PUT_ABSENT
                      : expect == MH_STORE_EXISTS ? MH_PG_PUT_EXISTS
                                                  : MH_PG_PUT_VERSION;
    struct params p;
    PGresult *r = NULL;
    enum mh_status rc;

    if (vlen > INT32_MAX) {
        mh_store_set_error("a value of %zu bytes is too large for PostgreSQL", vlen);
        return MH_E_LIMIT;
    }
    param_bytes(&p, 0, key, klen);
    param_bytes(&p, 1, val, vlen);
    if (id == MH_PG_PUT_VERSION)
        param_int(&p, 2, expect);
    rc = run(s, id, &p, "cannot write", &r);
    if (rc != MH_OK)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        if (id == MH_PG_PUT_ABSENT)
            mh_store_set_error("the key exists");
        else if (id == MH_PG_PUT_EXISTS)
            mh_store_set_error("expected an existing key, but the key does not exist");
        else
            mh_store_set_error("expected version %" PRIu64 ", but the key has another version "
                               "or does not exist",
                               expect);
        return MH_E_CONFLICT;
    }
    *version = get_be64(r, 0, 0);
    *created = PQgetlength(r, 0, 1) == 1 && PQgetvalue(r, 0, 1)[0] != 0;
    PQclear(r);
    return MH_OK;
}

enum mh_status mh_pg_del(void *arg, const void *key, size_t klen, uint64_t expect)
{
    struct pg_store *s = arg;
    bool by_version = expect != MH_STORE_ANY && expect != MH_STORE_EXISTS;
    struct params p;
    PGresult *r = NULL;
    enum mh_status rc;

    param_bytes(&p, 0, key, klen);
    if (by_version)
        param_int(&p, 1, expect);
    rc = run(s, by_version ? MH_PG_DEL_VERSION : MH_PG_DEL_ANY, &p, "cannot delete", &r);
    if (rc != MH_OK)
        return rc;
    if (!by_version) {
        rc = PQntuples(r) > 0 ? MH_OK : MH_E_NOTFOUND;
    } else if (get_be64(r, 0, 0) == 1) {
        rc = MH_OK;
    } else {
        bool found = PQgetlength(r, 0, 1) == 1 && PQgetvalue(r, 0, 1)[0] != 0;

        rc = found ? MH_E_CONFLICT : MH_E_NOTFOUND;
        if (found)
            mh_store_set_error("expected version %" PRIu64 ", but the key has another version",
                               expect);
    }
    if (rc == MH_E_NOTFOUND)
        mh_store_set_error("no such key (%zu bytes)", klen);
    PQclear(r);
    return rc;
}

/* --- Scans --- */

static enum mh_status collect(void *arg, const void *prefix, size_t plen, const void *start,
                              size_t slen, bool exclusive, size_t want, struct batch *b)
{
    struct pg_store *s = arg;
    struct params p;
    PGresult *r = NULL;
    size_t bytes = 0;
    enum mh_status rc;
    int n, i;

    if (want > SCAN_BATCH_RECORDS)
        want = SCAN_BATCH_RECORDS;
    b->is_last = false;
    param_bytes(&p, 0, start, slen);
    param_int(&p, 1, want);
    rc = run(s, exclusive ? MH_PG_SCAN_AFTER : MH_PG_SCAN_FROM, &p, "cannot scan", &r);
    if (rc != MH_OK)
        return rc;
    n = PQntuples(r);
    for (i = 0; i < n && bytes < SCAN_BATCH_BYTES; i++) {
        size_t klen = (size_t)PQgetlength(r, i, 0), vlen = (size_t)PQgetlength(r, i, 1);
        const char *k = PQgetvalue(r, i, 0);
        struct rec *rec = &b->recs[b->n];

        if (klen < plen || memcmp(k, prefix, plen) != 0) {
            b->is_last = true; /* past the prefix: no later key has it */
            break;
        }
        rec->key = malloc(klen + vlen + 1);
        if (!rec->key) {
            PQclear(r);
            mh_store_set_error("out of memory copying scan results");
            return MH_E_NOMEM;
        }
        memcpy(rec->key, k, klen);
        memcpy(rec->key + klen, PQgetvalue(r, i, 1), vlen);
        rec->klen = klen;
        rec->vlen = vlen;
        rec->version = get_be64(r, i, 2);
        b->n++;
        bytes += klen + vlen;
    }
    if (i == n && (size_t)n < want)
        b->is_last = true;
    PQclear(r);
    return MH_OK;
}

enum mh_status mh_pg_scan(void *arg, const void *prefix, size_t plen, const void *after,
                          size_t alen, size_t limit, mh_scan_fn fn, void *fn_arg)
{
    return store_scan_pages(arg, collect, prefix, plen, after, alen, limit, fn, fn_arg);
}
