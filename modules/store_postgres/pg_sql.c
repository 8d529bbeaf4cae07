/*
 * The SQL of a "postgres" store: the statements' templates, names and parameter counts, and
 * their text for the store's table and sequence, with the schema. Preparing and running them
 * is pg_conn.c's and pg_records.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modhost/sdk.h"
#include "store_postgres.h"

/* @T stands for the quoted table, @S for the quoted sequence as a string literal. */
static const char *const stmt_sql[MH_PG_NSTMT] = {
    [MH_PG_GET] = "SELECT v, ver FROM @T WHERE k = $1",
    /* xmax is 0 on a freshly inserted row version, the updater's id on an update. */
    [MH_PG_PUT_ANY] = "INSERT INTO @T AS r (k, v, ver) VALUES ($1, $2, nextval(@S))"
                      " ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, ver = EXCLUDED.ver"
                      " RETURNING r.ver, r.xmax = 0",
    [MH_PG_PUT_ABSENT] = "INSERT INTO @T (k, v, ver) VALUES ($1, $2, nextval(@S))"
                         " ON CONFLICT (k) DO NOTHING RETURNING ver, true",
    [MH_PG_PUT_EXISTS] = "UPDATE @T SET v = $2, ver = nextval(@S) WHERE k = $1"
                         " RETURNING ver, false",
    [MH_PG_PUT_VERSION] = "UPDATE @T SET v = $2, ver = nextval(@S) WHERE k = $1 AND ver = $3"
                          " RETURNING ver, false",
    [MH_PG_DEL_ANY] = "DELETE FROM @T WHERE k = $1 RETURNING ver",
    /* The statement's snapshot sees the row before its own delete: found tells a missing key
     * from another version. */
    [MH_PG_DEL_VERSION] = "WITH d AS (DELETE FROM @T WHERE k = $1 AND ver = $2 RETURNING 1)"
                          " SELECT (SELECT count(*) FROM d),"
                          " EXISTS (SELECT 1 FROM @T WHERE k = $1)",
    [MH_PG_SCAN_FROM] = "SELECT k, v, ver FROM @T WHERE k >= $1 ORDER BY k LIMIT $2",
    [MH_PG_SCAN_AFTER] = "SELECT k, v, ver FROM @T WHERE k > $1 ORDER BY k LIMIT $2",
};

const int mh_pg_stmt_nparams[MH_PG_NSTMT] = {
    [MH_PG_GET] = 1,         [MH_PG_PUT_ANY] = 2,     [MH_PG_PUT_ABSENT] = 2,
    [MH_PG_PUT_EXISTS] = 2,  [MH_PG_PUT_VERSION] = 3, [MH_PG_DEL_ANY] = 1,
    [MH_PG_DEL_VERSION] = 2, [MH_PG_SCAN_FROM] = 2,   [MH_PG_SCAN_AFTER] = 2,
};

const char *const mh_pg_stmt_name[MH_PG_NSTMT] = {
    "mh_get",     "mh_put_any",     "mh_put_absent", "mh_put_exists", "mh_put_version",
    "mh_del_any", "mh_del_version", "mh_scan_from",  "mh_scan_after",
};

/* @p tmpl with @T replaced by @p table and @S by @p seq. Caller frees; NULL if out of memory. */
static char *expand_sql(const char *tmpl, const char *table, const char *seq)
{
    size_t n = strlen(tmpl) + 1;
    char *out, *o;

    for (const char *p = strchr(tmpl, '@'); p; p = strchr(p + 1, '@'))
        n += strlen(table) + strlen(seq);
    out = malloc(n);
    if (!out)
        return NULL;
    o = out;
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '@' && (p[1] == 'T' || p[1] == 'S')) {
            o = stpcpy(o, p[1] == 'T' ? table : seq);
            p++;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

enum mh_status mh_pg_build_sql(struct pg_store *s, const char *table)
{
    (void)snprintf(s->table, sizeof(s->table), "\"%s\"", table);
    (void)snprintf(s->sequence, sizeof(s->sequence), "'\"%s_ver\"'", table);
    for (int i = 0; i < MH_PG_NSTMT; i++) {
        s->sql[i] = expand_sql(stmt_sql[i], s->table, s->sequence);
        if (!s->sql[i]) {
            mh_store_set_error("out of memory");
            return MH_E_NOMEM;
        }
    }
    if (asprintf(&s->schema_sql,
                 "BEGIN;"
                 "SELECT pg_advisory_xact_lock(hashtext('modhost table %s'));"
                 "CREATE TABLE IF NOT EXISTS \"%s\" (k bytea PRIMARY KEY, v bytea NOT NULL,"
                 " ver bigint NOT NULL);"
                 "CREATE SEQUENCE IF NOT EXISTS \"%s_ver\";"
                 "COMMIT;",
                 table, table, table) < 0) {
        s->schema_sql = NULL;
        mh_store_set_error("out of memory");
        return MH_E_NOMEM;
    }
    return MH_OK;
}
